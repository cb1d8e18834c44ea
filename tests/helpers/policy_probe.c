/*
 * policy_probe — drive the policy/ library from the command line, as the
 * gate would, and print what a client would see. For integration tests
 * and for operators checking a config against live DNS.
 *
 *   policy_probe -c FILE spf IP HELO SENDER
 *   policy_probe -c FILE dnsbl IP
 *   policy_probe -c FILE dnsbl-many IP...   (all at once through the
 *                event-loop API: policy_dnsbl_start + policy_dns_fds/
 *                timeout_ms/process, as the screen runs them)
 *   policy_probe -c FILE grey IP FROM TO [allow|dnswl|spfpass]
 *   policy_probe -c FILE rate connect|disconnect|msg|rcpt|err IP [COUNT]
 *   policy_probe -c FILE access IP
 *   policy_probe -c FILE store get|del KEY | set KEY VAL [TTL] |
 *                incr KEY DELTA [TTL] | purge
 *   policy_probe -c FILE check            (config only: prints "ok")
 *
 * FILE holds only policy keys (policy_config.h); with -g it may be a whole
 * gate.conf (other keys are left alone). Each decision prints two
 * lines: "VERDICT[ CODE ENH TEXT]" and the log fragment
 * (policy_result_format); spf adds the Received-SPF line when
 * received_spf_header = yes. Exit status: 0 pass/skip/allow, 1 tempfail,
 * 2 reject, 3 usage or setup error.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "policy.h"
#include "policy_config.h"
#include "policy_dns.h"
#include "policy_store.h"

static int
usage(void)
{
	fprintf(stderr, "usage: policy_probe [-g] -c FILE spf|dnsbl|grey|rate|access|"
	    "store|check ARGS...\n");
	return 3;
}

static int
show(const struct policy_result *r)
{
	char reply[POLICY_TEXT_MAX + 32], line[2 * POLICY_TEXT_MAX + 128];

	if (policy_result_reply(r, reply, sizeof(reply)) == 0 &&
	    (r->verdict == POLICY_TEMPFAIL || r->verdict == POLICY_REJECT))
		printf("%s %s\n", policy_verdict_name(r->verdict), reply);
	else
		printf("%s\n", policy_verdict_name(r->verdict));
	printf("%s\n", policy_result_format(r, line, sizeof(line)));
	fflush(stdout);
	switch (r->verdict) {
	case POLICY_TEMPFAIL:	return 1;
	case POLICY_REJECT:	return 2;
	default:		return 0;
	}
}

static int
parse_ll(const char *s, long long *v)
{
	char *end;

	errno = 0;
	*v = strtoll(s, &end, 10);
	return errno != 0 || end == s || *end != '\0' ? -1 : 0;
}

static int
open_store(const struct policy_config *pc, struct policy_store **st)
{
	char err[512];

	if (policy_store_open(pc->store, pc->store_prefix, st, err,
	    sizeof(err)) < 0) {
		fprintf(stderr, "policy_probe: %s\n", err);
		return -1;
	}
	return 0;
}

static int
open_dns(const struct policy_config *pc, struct policy_dns **dns)
{
	char err[512];

	if (policy_dns_open(pc->resolver, pc->dns_timeout_ms, pc->dns_tries,
	    dns, err, sizeof(err)) < 0) {
		fprintf(stderr, "policy_probe: %s\n", err);
		return -1;
	}
	return 0;
}

static int
cmd_store(struct policy_store *st, int argc, char **argv)
{
	char val[STORE_VAL_MAX + 1];
	size_t len;
	long long n, ttl = 0;
	unsigned long removed;
	enum policy_store_status s;
	const char *names[] = { "ok", "notfound", "exists", "error" };

	if (argc < 1)
		return usage();
	if (strcmp(argv[0], "purge") == 0) {
		s = policy_store_purge(st, &removed);
		printf("%s %lu\n", names[s], removed);
		return s == STORE_OK ? 0 : 1;
	}
	if (argc < 2)
		return usage();
	if (strcmp(argv[0], "get") == 0) {
		s = policy_store_get(st, argv[1], val, sizeof(val) - 1, &len, NULL);
		if (s == STORE_OK) {
			val[len] = '\0';
			printf("ok %s\n", val);
		} else
			printf("%s\n", names[s]);
	} else if (strcmp(argv[0], "del") == 0) {
		s = policy_store_del(st, argv[1]);
		printf("%s\n", names[s]);
	} else if (strcmp(argv[0], "set") == 0 && argc >= 3) {
		if (argc >= 4 && (parse_ll(argv[3], &ttl) < 0 || ttl < 0))
			return usage();
		s = policy_store_set(st, argv[1], argv[2], strlen(argv[2]),
		    (unsigned)ttl, 0);
		printf("%s\n", names[s]);
	} else if (strcmp(argv[0], "incr") == 0 && argc >= 3) {
		if (parse_ll(argv[2], &n) < 0)
			return usage();
		if (argc >= 4 && (parse_ll(argv[3], &ttl) < 0 || ttl < 0))
			return usage();
		s = policy_store_incr(st, argv[1], n, (unsigned)ttl, 0, &n);
		if (s == STORE_OK)
			printf("ok %lld\n", n);
		else
			printf("%s\n", names[s]);
	} else
		return usage();
	return s == STORE_OK ? 0 : 1;
}

struct many {
	struct policy_dnsbl_lookup	*lk;
};

static void
many_done(void *arg, struct policy_dnsbl_lookup *lk)
{
	((struct many *)arg)->lk = lk;
}

/* Start every lookup, then drive the resolver from a poll loop. */
static int
cmd_dnsbl_many(const struct policy_config *pc, struct policy_dns *dns,
    struct policy_store *st, int argc, char **argv)
{
	struct many *m = calloc((size_t)argc, sizeof(*m));
	struct sockaddr_storage ss;
	struct policy_result r;
	struct pollfd fds[32];
	int i, n, t, rounds = 0, rc = 0;

	if (m == NULL)
		return 3;
	for (i = 0; i < argc; i++) {
		if (policy_ip_parse(argv[i], &ss) < 0 ||
		    policy_dnsbl_start(&pc->dnsbl, dns, st, &ss, many_done,
		    &m[i]) < 0) {
			fprintf(stderr, "policy_probe: bad IP %s\n", argv[i]);
			rc = 3;
		}
	}
	while (policy_dns_pending(dns) > 0 && rounds++ < 10000) {
		n = policy_dns_fds(dns, fds, 32);
		if ((t = policy_dns_timeout_ms(dns, 1000)) < 0)
			break;
		if (poll(fds, (nfds_t)n, t) < 0 && errno != EINTR)
			break;
		policy_dns_process(dns, fds, n);
	}
	(void)policy_dns_run(dns, 0);	/* cancels anything left */
	for (i = 0; i < argc; i++) {
		if (m[i].lk == NULL)
			continue;
		(void)policy_dnsbl_finish(m[i].lk, &r, NULL);
		printf("%s ", argv[i]);
		if (show(&r) > rc && rc < 3)
			rc = r.verdict == POLICY_REJECT ? 2 : 1;
	}
	free(m);
	return rc;
}

int
main(int argc, char **argv)
{
	struct policy_config pc;
	struct policy_store *st = NULL;
	struct policy_dns *dns = NULL;
	struct policy_result r;
	struct sockaddr_storage ss;
	struct conf c;
	const char *file = NULL;
	char err[512];
	int ch, rc = 3, gate = 0;

	while ((ch = getopt(argc, argv, "+c:g")) != -1) {
		if (ch == 'c')
			file = optarg;
		else if (ch == 'g')
			gate = 1;
		else
			return usage();
	}
	argc -= optind;
	argv += optind;
	if (file == NULL || argc < 1)
		return usage();
	log_init("policy_probe", 1);
	if (conf_load(file, &c, err, sizeof(err)) < 0) {
		fprintf(stderr, "policy_probe: %s\n", err);
		return 3;
	}
	if (policy_config_load(&c, &pc, err, sizeof(err)) < 0 ||
	    (!gate && conf_check_unused(&c, err, sizeof(err)) < 0)) {
		fprintf(stderr, "policy_probe: %s\n", err);
		conf_free(&c);
		return 3;
	}
	conf_free(&c);

	if (strcmp(argv[0], "check") == 0) {
		printf("ok\n");
		rc = 0;
	} else if (strcmp(argv[0], "dnsbl-many") == 0) {
		if (open_dns(&pc, &dns) == 0 && open_store(&pc, &st) == 0)
			rc = cmd_dnsbl_many(&pc, dns, st, argc - 1, argv + 1);
	} else if (strcmp(argv[0], "store") == 0) {
		if (open_store(&pc, &st) == 0)
			rc = cmd_store(st, argc - 1, argv + 1);
	} else if (argc < 2 || policy_ip_parse(
	    strcmp(argv[0], "rate") == 0 && argc >= 3 ? argv[2] : argv[1],
	    &ss) < 0) {
		fprintf(stderr, "policy_probe: missing or bad IP address\n");
		rc = 3;
	} else if (strcmp(argv[0], "access") == 0) {
		rc = show((policy_access_check(&pc.access, &ss, &r), &r));
	} else if (strcmp(argv[0], "spf") == 0 && argc >= 4) {
		enum policy_spf_result sr;
		if (open_dns(&pc, &dns) == 0) {
			char hdr[1024];
			(void)policy_spf_check(&pc.spf, dns, &ss, argv[2], argv[3],
			    &r, &sr);
			rc = show(&r);
			if (pc.spf.received_header && policy_spf_received(sr,
			    "probe.invalid", &ss, argv[2], argv[3], hdr,
			    sizeof(hdr)) == 0)
				printf("%s\n", hdr);
		}
	} else if (strcmp(argv[0], "dnsbl") == 0) {
		int score;
		if (open_dns(&pc, &dns) == 0 && open_store(&pc, &st) == 0) {
			(void)policy_dnsbl_check(&pc.dnsbl, dns, st, &ss, &r, &score);
			rc = show(&r);
		}
	} else if (strcmp(argv[0], "grey") == 0 && argc >= 4) {
		unsigned flags = 0;
		if (argc >= 5 && strcmp(argv[4], "allow") == 0)
			flags = POLICY_GREY_ALLOWED;
		else if (argc >= 5 && strcmp(argv[4], "dnswl") == 0)
			flags = POLICY_GREY_DNSWL;
		else if (argc >= 5 && strcmp(argv[4], "spfpass") == 0)
			flags = POLICY_GREY_SPF_PASS;
		if (open_store(&pc, &st) == 0) {
			(void)policy_grey_check(&pc.grey, st, &ss, argv[2], argv[3],
			    flags, time(NULL), &r);
			rc = show(&r);
		}
	} else if (strcmp(argv[0], "rate") == 0 && argc >= 3) {
		long long count = 1, i;
		if (argc >= 4 && (parse_ll(argv[3], &count) < 0 || count < 1 ||
		    count > 100000))
			rc = usage();
		else if (open_store(&pc, &st) == 0) {
			for (i = 0; i < count; i++) {
				if (strcmp(argv[1], "connect") == 0)
					(void)policy_rate_connect(&pc.rate, st, &ss, &r);
				else if (strcmp(argv[1], "disconnect") == 0) {
					policy_result_init(&r, "rate");
					if (policy_rate_disconnect(&pc.rate, st, &ss) < 0)
						policy_result_detail(&r, "store=error");
				} else if (strcmp(argv[1], "msg") == 0)
					(void)policy_rate_msg(&pc.rate, st, &ss, &r);
				else if (strcmp(argv[1], "rcpt") == 0)
					(void)policy_rate_rcpt(&pc.rate, st, &ss, &r);
				else if (strcmp(argv[1], "err") == 0)
					(void)policy_rate_error(&pc.rate, st, &ss, &r);
				else {
					rc = usage();
					break;
				}
				rc = show(&r);
			}
		}
	} else
		rc = usage();

	policy_dns_close(dns);
	policy_store_close(st);
	policy_config_free(&pc);
	return rc;
}

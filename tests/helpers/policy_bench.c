/*
 * policy_bench — store and decision throughput for `make bench`.
 *
 *   policy_bench STORE-SPEC [OPS] [PROCS]
 *
 * Runs OPS (default 20000) operations of each kind in each of PROCS
 * processes (default 1) against the store, all on shared keys so that
 * processes contend like pre-forked workers do, and prints one line per
 * kind: "KIND ops/s=N" (N summed over the processes):
 *   incr   policy_store_incr on 64 shared counters
 *   get    policy_store_get of those counters
 *   set    policy_store_set of 64 shared keys
 *   rate   policy_rate_connect + policy_rate_disconnect (conn + concurrency,
 *          per IP and per /24: 8 store writes) from 256 client addresses
 *   grey   policy_grey_check of known triplets (get + set + incr)
 * Exit status 0, or 1 if any operation failed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "policy_grey.h"
#include "policy_rate.h"
#include "policy_store.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
parse_pos(const char *s, long *v)
{
	char *end;

	errno = 0;
	*v = strtol(s, &end, 10);
	return errno != 0 || *end != '\0' || *v <= 0 ? -1 : 0;
}

/* One kind in this process; writes the elapsed seconds to fd. */
static int
run_kind(struct policy_store *st, const char *kind, long ops)
{
	struct policy_rate_config rc;
	struct policy_grey_config gc;
	struct policy_result r;
	struct sockaddr_storage ss;
	char key[32], ip[32], buf[64];
	long i;
	int bad = 0;

	policy_rate_config_init(&rc);
	policy_grey_config_init(&gc);
	gc.delay = 0;
	gc.awl_count = 0;
	if (policy_rate_parse("conn 100000000/1h, concurrency 1000000, "
	    "net_conn 100000000/1h, net_concurrency 1000000", &rc.def) != NULL)
		return 1;
	for (i = 0; i < ops; i++) {
		snprintf(key, sizeof(key), "bench:%ld", i % 64);
		snprintf(ip, sizeof(ip), "10.%ld.%ld.%ld", (i / 65536) % 256,
		    (i / 256) % 256, i % 256);
		if (strcmp(kind, "incr") == 0)
			bad |= policy_store_incr(st, key, 1, 3600, 0, NULL) != STORE_OK;
		else if (strcmp(kind, "get") == 0)
			bad |= policy_store_get(st, key, buf, sizeof(buf), NULL,
			    NULL) == STORE_ERROR;
		else if (strcmp(kind, "set") == 0)
			bad |= policy_store_set(st, key, "value", 5, 3600, 0) != STORE_OK;
		else if (strcmp(kind, "rate") == 0) {
			snprintf(ip, sizeof(ip), "10.0.%ld.%ld", (i / 256) % 4, i % 256);
			if (policy_ip_parse(ip, &ss) < 0)
				return 1;
			bad |= policy_rate_connect(&rc, st, &ss, &r) != POLICY_PASS ||
			    r.detail[0] != '\0';
			bad |= policy_rate_disconnect(&rc, st, &ss) < 0;
		} else if (strcmp(kind, "grey") == 0) {
			if (policy_ip_parse("192.0.2.1", &ss) < 0)
				return 1;
			snprintf(buf, sizeof(buf), "rcpt%ld@example.test", i % 64);
			(void)policy_grey_check(&gc, st, &ss, "s@example.org", buf, 0,
			    time(NULL), &r);
			bad |= strstr(r.detail, "store=error") != NULL;
		}
	}
	policy_rate_free(&rc);
	return bad;
}

int
main(int argc, char **argv)
{
	static const char *kinds[] = { "incr", "get", "set", "rate", "grey" };
	struct policy_store *st;
	char err[512];
	long ops = 20000, procs = 1, p;
	size_t k;
	int fail = 0;

	if (argc < 2 || (argc > 2 && parse_pos(argv[2], &ops) < 0) ||
	    (argc > 3 && parse_pos(argv[3], &procs) < 0) || procs > 64) {
		fprintf(stderr, "usage: policy_bench STORE-SPEC [OPS] [PROCS]\n");
		return 2;
	}
	log_init("policy_bench", 1);
	if (policy_store_open(argv[1], "bench:", &st, err, sizeof(err)) < 0) {
		fprintf(stderr, "policy_bench: %s\n", err);
		return 1;
	}
	for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		double t0 = now(), dt;
		for (p = 0; p < procs; p++) {
			pid_t pid = fork();
			if (pid < 0) {
				fail = 1;
				break;
			}
			if (pid == 0)
				_exit(run_kind(st, kinds[k], ops));
		}
		for (p = 0; p < procs; p++) {
			int ws;
			if (wait(&ws) < 0 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
				fail = 1;
		}
		dt = now() - t0;
		printf("%s %s procs=%ld ops=%ld ops/s=%.0f\n", policy_store_kind(st),
		    kinds[k], procs, ops * procs, (double)(ops * procs) / dt);
		fflush(stdout);
	}
	policy_store_close(st);
	return fail;
}

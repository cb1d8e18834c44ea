/*
 * milter_probe — plays one SMTP session's stages against one or more
 * milters through the gate's milter client (gate/gate_milter*.c, compiled in
 * here), prints each stage's verdict and the modified message. Integration
 * scripts test the client against real milters with it.
 *
 *   milter_probe [options] MILTER...      (inet:127.0.0.1:PORT, unix:/path)
 *     --from ADDR        sender (default sender@example.test; "" = <>)
 *     --rcpt ADDR        recipient, repeatable (default user@example.test)
 *     --msg FILE         the message, CRLF or LF lines (default: a small one)
 *     --helo NAME        (default client.example.test)
 *     --client IP        client address (default 127.0.0.1), --port N (40000)
 *     --client-name NAME verified PTR name (default: none, "[IP]" is sent)
 *     --macro NAME=VAL   a macro (repeatable), e.g. --macro '{auth_authen}=bob'
 *     --default-action A tempfail|accept|reject   (milter_default_action)
 *     --timeout S, --eom-timeout S, --connect-timeout S
 *     --config FILE      read the milter keys from a gate.conf instead
 *     --out FILE         write the modified message there, not to stdout
 *     --sessions N       run N sessions (leak and soak test), print a summary
 *     --verbose          debug log to stderr
 * Output, one line per stage: "STAGE VERDICT [reply]", e.g.
 *   connect continue / rcpt <c@d> reject 550 5.7.1 Command rejected /
 *   message continue / add_rcpt <x> / del_rcpt <x> / quarantine REASON /
 *   new_from <x>, then "--- message" and the message (CRLF as sent on).
 * Exit: 0 when the dialogue ran (whatever the verdicts), 2 on usage or setup
 * errors.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "../../gate/gate_milter.c"
#include "../../gate/gate_milter_wire.c"
#include "../../gate/gate_milter_stage.c"
#include "../../gate/gate_milter_mods.c"
#include "../../gate/gate_milter_conf.c"
#include "../../gate/gate_milter_msg.c"

#define PROBE_MAX 64

struct probe {
	const char	*names[PROBE_MAX], *values[PROBE_MAX];
	size_t		 n;
	char		 client_addr[64], client_port[16], client_name[256];
	const char	*mail_addr, *rcpt_addr;
	char		 queue_id[32];
};

static const char *
probe_macro(void *ctx, const char *name)
{
	struct probe *p = ctx;

	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->names[i], name) == 0)
			return p->values[i];
	if (strcmp(name, "j") == 0)
		return "mx.example.test";
	if (strcmp(name, "{daemon_name}") == 0)
		return "tailwart-gate";
	if (strcmp(name, "v") == 0)
		return "tailwart";
	if (strcmp(name, "{client_addr}") == 0)
		return p->client_addr;
	if (strcmp(name, "{client_port}") == 0)
		return p->client_port;
	if (strcmp(name, "{client_name}") == 0)
		return p->client_name[0] ? p->client_name : "unknown";
	if (strcmp(name, "i") == 0)
		return p->queue_id;
	if (strcmp(name, "{mail_addr}") == 0)
		return p->mail_addr;
	if (strcmp(name, "{rcpt_addr}") == 0)
		return p->rcpt_addr;
	return NULL;
}

static const char probe_default_msg[] =
	"From: Sender <sender@example.test>\r\n"
	"To: User <user@example.test>\r\n"
	"Subject: milter probe\r\n"
	"Date: Wed, 25 Nov 2026 12:00:00 +0000\r\n"
	"Message-ID: <probe.1@example.test>\r\n"
	"\r\n"
	"Hello from milter_probe.\r\n";

/* The message as CRLF text in a spool (LF-only input is converted); a small
 * memory bound so that both the memory and the file side are exercised. */
static FILE *
probe_load(const char *path, struct gate_milter_spool *sp)
{
	FILE *in;
	int c, prev = 0;
	char ch;

	if (gate_milter_spool_init(sp, 8192) != 0)
		return NULL;
	if (path == NULL) {
		if (gate_milter_spool_write(sp, probe_default_msg,
		    sizeof probe_default_msg - 1) != 0)
			return NULL;
	} else {
		if ((in = fopen(path, "rb")) == NULL)
			return NULL;
		while ((c = fgetc(in)) != EOF) {
			if (c == '\n' && prev != '\r' && gate_milter_spool_write(sp, "\r", 1) != 0)
				break;
			ch = (char)c;
			if (gate_milter_spool_write(sp, &ch, 1) != 0)
				break;
			prev = c;
		}
		if (fclose(in) != 0)
			return NULL;
	}
	return gate_milter_spool_done(sp);
}

/* gate_milter_msg_lines() callback: the lines to a FILE */
static int
probe_line(void *arg, const char *p, size_t n, int bol)
{
	(void)bol;
	return fwrite(p, 1, n, (FILE *)arg) == n ? 0 : -1;
}

struct probe_opts {
	const char	*from, *rcpt[PROBE_MAX], *msg, *helo, *client, *out, *config;
	size_t		 nrcpt;
	unsigned	 port;
	int		 quiet;
};

/* One session. Returns 0 when it ran, -1 on a local error. */
static int
probe_session(const struct gate_milter_set *set, struct probe *p,
    const struct probe_opts *o, int print)
{
	struct gate_milter_session *s;
	struct sockaddr_storage ss;
	char reply[GATE_MILTER_REPLY_MAX];
	enum gate_milter_verdict v;
	struct gate_milter_msg msg;
	size_t accepted = 0;
	const char *why = "?";
	struct gate_milter_spool sp;
	FILE *spool, *out;
	int rc = 0;

	memset(&ss, 0, sizeof ss);
	if (strchr(o->client, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)o->port);
		if (inet_pton(AF_INET6, o->client, &s6->sin6_addr) != 1)
			return -1;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)o->port);
		if (inet_pton(AF_INET, o->client, &s4->sin_addr) != 1)
			return -1;
	}
	if ((s = gate_milter_session_new(set, "probe", probe_macro, p)) == NULL)
		return -1;
#define SAY(...) do { if (print) { printf(__VA_ARGS__); fflush(stdout); } } while (0)
	v = gate_milter_connect(s, p->client_name[0] ? p->client_name : NULL, &ss,
	    reply, sizeof reply);
	SAY("connect %s%s%s\n", gate_milter_verdict_name(v), reply[0] ? " " : "", reply);
	if (v != GMV_CONTINUE)
		goto done;
	v = gate_milter_helo(s, o->helo, reply, sizeof reply);
	SAY("helo %s%s%s\n", gate_milter_verdict_name(v), reply[0] ? " " : "", reply);
	if (v != GMV_CONTINUE)
		goto done;
	p->mail_addr = o->from;
	v = gate_milter_mail(s, o->from, "", reply, sizeof reply);
	SAY("mail %s%s%s\n", gate_milter_verdict_name(v), reply[0] ? " " : "", reply);
	if (v != GMV_CONTINUE) {
		gate_milter_abort(s);
		goto done;
	}
	for (size_t i = 0; i < o->nrcpt; i++) {
		p->rcpt_addr = o->rcpt[i];
		v = gate_milter_rcpt(s, o->rcpt[i], "", reply, sizeof reply);
		SAY("rcpt <%s> %s%s%s\n", o->rcpt[i], gate_milter_verdict_name(v),
		    reply[0] ? " " : "", reply);
		if (v == GMV_CONTINUE)
			accepted++;
		else if (v == GMV_SHUTDOWN)
			goto done;
	}
	if (accepted == 0) {
		gate_milter_abort(s);
		goto done;
	}
	v = gate_milter_data(s, reply, sizeof reply);
	SAY("data %s%s%s\n", gate_milter_verdict_name(v), reply[0] ? " " : "", reply);
	if (v != GMV_CONTINUE) {
		gate_milter_abort(s);
		goto done;
	}
	if ((spool = probe_load(o->msg, &sp)) == NULL) {
		fprintf(stderr, "milter_probe: cannot read the message\n");
		gate_milter_spool_free(&sp);
		gate_milter_abort(s);
		rc = -1;
		goto done;
	}
	if (gate_milter_msg_read(&msg, spool, &why) != 0) {
		fprintf(stderr, "milter_probe: message: %s\n", why);
		gate_milter_spool_free(&sp);
		gate_milter_abort(s);
		rc = -1;
		goto done;
	}
	v = gate_milter_message(s, &msg, reply, sizeof reply);
	SAY("message %s%s%s\n", gate_milter_verdict_name(v), reply[0] ? " " : "", reply);
	for (size_t i = 0; i < msg.nadd_rcpt; i++)
		SAY("add_rcpt <%s>%s%s\n", msg.add_rcpt[i],
		    msg.add_rcpt_args[i] ? " " : "",
		    msg.add_rcpt_args[i] ? msg.add_rcpt_args[i] : "");
	for (size_t i = 0; i < msg.ndel_rcpt; i++)
		SAY("del_rcpt <%s>\n", msg.del_rcpt[i]);
	if (msg.new_from)
		SAY("new_from <%s>\n", msg.new_from);
	if (msg.quarantine)
		SAY("quarantine %s\n", msg.quarantine);
	if (print && v == GMV_CONTINUE && !o->quiet) {
		if (o->out) {
			/* the gate's path: line by line (gate_data.c's forward()) */
			if ((out = fopen(o->out, "wb")) == NULL ||
			    gate_milter_msg_lines(&msg, probe_line, out) != 0 ||
			    fclose(out) != 0) {
				fprintf(stderr, "milter_probe: cannot write %s\n", o->out);
				rc = -1;
			}
		} else {
			SAY("--- message\n");
			if (gate_milter_msg_write(&msg, stdout) != 0)
				rc = -1;
			fflush(stdout);
		}
	}
	gate_milter_msg_free(&msg);
	gate_milter_spool_free(&sp);
done:
	gate_milter_session_free(s);
	return rc;
#undef SAY
}

int
main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "from", required_argument, NULL, 'f' },
		{ "rcpt", required_argument, NULL, 'r' },
		{ "msg", required_argument, NULL, 'm' },
		{ "helo", required_argument, NULL, 'e' },
		{ "client", required_argument, NULL, 'c' },
		{ "port", required_argument, NULL, 'p' },
		{ "client-name", required_argument, NULL, 'n' },
		{ "macro", required_argument, NULL, 'D' },
		{ "default-action", required_argument, NULL, 'a' },
		{ "timeout", required_argument, NULL, 't' },
		{ "eom-timeout", required_argument, NULL, 'E' },
		{ "connect-timeout", required_argument, NULL, 'T' },
		{ "config", required_argument, NULL, 'C' },
		{ "out", required_argument, NULL, 'o' },
		{ "sessions", required_argument, NULL, 'N' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	struct probe_opts o = { .from = "sender@example.test", .helo = "client.example.test",
		.client = "127.0.0.1", .port = 40000 };
	struct probe p;
	struct gate_milter_set set;
	struct conf conf;
	char cbuf[8192], err[512];
	size_t cl = 0;
	const char *action = NULL, *to = NULL, *eto = NULL, *cto = NULL, *why;
	unsigned long long sessions = 1, ull;
	int c, verbose = 0, rc = 0, failed = 0;

	memset(&p, 0, sizeof p);
	while ((c = getopt_long(argc, argv, "f:r:m:e:c:p:n:D:a:t:E:T:C:o:N:qv", lopts, NULL)) != -1) {
		switch (c) {
		case 'f': o.from = optarg; break;
		case 'r':
			if (o.nrcpt < PROBE_MAX)
				o.rcpt[o.nrcpt++] = optarg;
			break;
		case 'm': o.msg = optarg; break;
		case 'e': o.helo = optarg; break;
		case 'c': o.client = optarg; break;
		case 'p':
			if (conf_parse_uint(optarg, &ull, &why) != 0 || ull > 65535) {
				fprintf(stderr, "milter_probe: bad port\n");
				return 2;
			}
			o.port = (unsigned)ull;
			break;
		case 'n': snprintf(p.client_name, sizeof p.client_name, "%s", optarg); break;
		case 'D': {
			char *eq = strchr(optarg, '=');

			if (eq == NULL || p.n >= PROBE_MAX) {
				fprintf(stderr, "milter_probe: --macro NAME=VALUE\n");
				return 2;
			}
			*eq = 0;
			p.names[p.n] = optarg;
			p.values[p.n++] = eq + 1;
			break;
		}
		case 'a': action = optarg; break;
		case 't': to = optarg; break;
		case 'E': eto = optarg; break;
		case 'T': cto = optarg; break;
		case 'C': o.config = optarg; break;
		case 'o': o.out = optarg; break;
		case 'N':
			if (conf_parse_uint(optarg, &sessions, &why) != 0 || sessions == 0 ||
			    sessions > 1000000) {
				fprintf(stderr, "milter_probe: bad --sessions\n");
				return 2;
			}
			break;
		case 'q': o.quiet = 1; break;
		case 'v': verbose = 1; break;
		default:
			fprintf(stderr, "usage: milter_probe [options] MILTER... (see source)\n");
			return 2;
		}
	}
	log_init("milter_probe", 1);
	log_set_debug(verbose);
	if (o.nrcpt == 0)
		o.rcpt[o.nrcpt++] = "user@example.test";
	if (o.config) {
		if (conf_load(o.config, &conf, err, sizeof err) != 0) {
			fprintf(stderr, "milter_probe: %s\n", err);
			return 2;
		}
	} else {
		if (optind >= argc) {
			fprintf(stderr, "milter_probe: no milter given\n");
			return 2;
		}
		/* build a gate.conf fragment, so the config parser is exercised too */
		cl += (size_t)snprintf(cbuf + cl, sizeof cbuf - cl, "milters =");
		for (int i = optind; i < argc && cl < sizeof cbuf; i++)
			cl += (size_t)snprintf(cbuf + cl, sizeof cbuf - cl, "%s %s",
			    i > optind ? "," : "", argv[i]);
		if (action && cl < sizeof cbuf)
			cl += (size_t)snprintf(cbuf + cl, sizeof cbuf - cl,
			    "\nmilter_default_action = %s", action);
		if (to && cl < sizeof cbuf)
			cl += (size_t)snprintf(cbuf + cl, sizeof cbuf - cl,
			    "\nmilter_command_timeout = %s", to);
		if (eto && cl < sizeof cbuf)
			cl += (size_t)snprintf(cbuf + cl, sizeof cbuf - cl,
			    "\nmilter_eom_timeout = %s", eto);
		if (cto && cl < sizeof cbuf)
			cl += (size_t)snprintf(cbuf + cl, sizeof cbuf - cl,
			    "\nmilter_connect_timeout = %s", cto);
		if (cl >= sizeof cbuf - 2) {
			fprintf(stderr, "milter_probe: arguments too long\n");
			return 2;
		}
		cbuf[cl++] = '\n';
		cbuf[cl] = 0;
		if (conf_load_buf("milter_probe", cbuf, cl, &conf, err, sizeof err) != 0) {
			fprintf(stderr, "milter_probe: %s\n", err);
			return 2;
		}
	}
	if (gate_milter_config(&conf, &set, err, sizeof err) != 0) {
		fprintf(stderr, "milter_probe: %s\n", err);
		conf_free(&conf);
		return 2;
	}
	conf_free(&conf);
	snprintf(p.client_addr, sizeof p.client_addr, "%s", o.client);
	snprintf(p.client_port, sizeof p.client_port, "%u", o.port);
	for (unsigned long long i = 0; i < sessions; i++) {
		snprintf(p.queue_id, sizeof p.queue_id, "PROBE%06llu", i + 1);
		if (probe_session(&set, &p, &o, sessions == 1) != 0)
			failed++;
	}
	if (sessions > 1)
		printf("sessions %llu failed %d\n", sessions, failed);
	if (failed)
		rc = 2;
	gate_milter_set_free(&set);
	return rc;
}

/*
 * smtpd_toy.h — the harness of tests/unit/test_smtpd*.c (header only, one
 * copy per test binary): a toy program for lib/smtpd and a scripted client.
 *
 * The toy supplies the hooks: it accepts, refuses the addresses and HELO
 * names that start with "refuse", refuses to open messages when asked, may
 * end the session from its error hook, and records every message byte the
 * data hook gets (checking `bol`). The engine runs in the test's process on
 * one end of a socketpair; a client thread writes the script to the other
 * end (all at once, or in parts, each after a number of replies) and keeps
 * every reply byte. EXPECT_REPLIES compares the replies after the banner,
 * each by its last line, with a list.
 */
#ifndef TESTS_SMTPD_TOY_H
#define TESTS_SMTPD_TOY_H

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <unistd.h>

#include "unit.h"
#include "smtpd.h"

/* ------------------------------------------------------------ the toy */

#define TOY_MSGS	4

struct toy {
	struct smtpd	 e;
	char		*msg;		/* the message being received */
	size_t		 msglen, msgcap;
	char		*ended[TOY_MSGS];	/* messages data_end saw */
	size_t		 endedlen[TOY_MSGS];
	unsigned	 ends, begins, aborts, resets_abort, resets_done, bad_bol;
	int		 tls_begun, tls_ok;	/* tls_done's ok, -1 before */
	enum smtpd_msg_fault abort_why;
	int		 refuse_data;
	unsigned	 error_limit;	/* the error hook ends the session at this many */
	char		 rcpt_param[64];	/* KEY=VALUE of the last RCPT's first parameter */
};

static enum smtpd_verdict toy_helo(void *ctx, const char *name, int esmtp)
{
	struct toy *t = ctx;

	(void)esmtp;
	if (strncmp(name, "refuse", 6) != 0)
		return SMTPD_ACCEPT;
	(void)smtpd_reply(&t->e, "550 5.7.1 HELO refused");
	return SMTPD_REFUSE;
}

/* MAIL/RCPT: addresses starting with "refuse" get no. */
static enum smtpd_verdict toy_answer(struct toy *t, const char *addr, const char *no,
    const char *yes)
{
	int refuse = strncmp(addr, "refuse", 6) == 0;

	(void)smtpd_reply(&t->e, "%s", refuse ? no : yes);
	return refuse ? SMTPD_REFUSE : SMTPD_ACCEPT;
}

static enum smtpd_verdict toy_mail(void *ctx, const struct smtp_path *p,
    const struct smtpd_mail *m)
{
	struct toy *t = ctx;

	(void)m;
	return toy_answer(t, p->addr, "550 5.7.1 Sender refused", "250 2.1.0 Ok");
}

static enum smtpd_verdict toy_rcpt(void *ctx, const struct smtp_path *p)
{
	struct toy *t = ctx;

	if (p->nparams > 0)
		snprintf(t->rcpt_param, sizeof(t->rcpt_param), "%s=%s", p->params[0].key,
		    p->params[0].value ? p->params[0].value : "");
	return toy_answer(t, p->addr, "550 5.1.1 Recipient refused", "250 2.1.5 Ok");
}

static enum smtpd_verdict toy_data_begin(void *ctx, int bdat)
{
	struct toy *t = ctx;

	t->begins++;
	t->msglen = 0;
	if (t->refuse_data) {
		if (!bdat)
			(void)smtpd_reply(&t->e, "451 4.3.0 Not now");
		return SMTPD_REFUSE;
	}
	if (!bdat)
		(void)smtpd_reply(&t->e, SMTPD_354);
	return SMTPD_ACCEPT;
}

static void toy_data(void *ctx, const char *p, size_t n, int bol)
{
	struct toy *t = ctx;

	/* bol must say whether p starts a line of what came before */
	if (bol != (t->msglen == 0 || t->msg[t->msglen - 1] == '\n'))
		t->bad_bol++;
	if (t->msglen + n > t->msgcap) {
		t->msgcap = (t->msglen + n) * 2;
		if ((t->msg = realloc(t->msg, t->msgcap)) == NULL)
			abort();
	}
	memcpy(t->msg + t->msglen, p, n);
	t->msglen += n;
}

static void toy_data_end(void *ctx)
{
	struct toy *t = ctx;

	if (t->ends < TOY_MSGS) {
		if ((t->ended[t->ends] = malloc(t->msglen + 1)) == NULL)
			abort();
		if (t->msglen > 0)
			memcpy(t->ended[t->ends], t->msg, t->msglen);
		t->ended[t->ends][t->msglen] = '\0';
		t->endedlen[t->ends] = t->msglen;
	}
	t->ends++;
	(void)smtpd_reply(&t->e, "250 2.0.0 Ok: queued as %u", t->ends);
}

static void toy_data_abort(void *ctx, enum smtpd_msg_fault why)
{
	struct toy *t = ctx;

	t->aborts++;
	t->abort_why = why;
}

static void toy_reset(void *ctx, enum smtpd_reset why)
{
	struct toy *t = ctx;

	if (why == SMTPD_RESET_ABORT)
		t->resets_abort++;
	else
		t->resets_done++;
}

/* a program's own error rate limit (the gate's error policy) */
static int toy_error(void *ctx)
{
	struct toy *t = ctx;

	if (t->error_limit == 0 || t->e.errors < t->error_limit)
		return 0;
	(void)smtpd_reply(&t->e, "421 4.7.0 t.test Error rate limit exceeded");
	return -1;
}

static void toy_tls_begin(void *ctx)
{
	((struct toy *)ctx)->tls_begun++;
}

static void toy_tls_done(void *ctx, int ok)
{
	((struct toy *)ctx)->tls_ok = ok;
}

static const struct smtpd_hooks toy_hooks = {
	.helo = toy_helo, .mail = toy_mail, .rcpt = toy_rcpt,
	.data_begin = toy_data_begin, .data = toy_data, .data_end = toy_data_end,
	.data_abort = toy_data_abort, .reset = toy_reset, .error = toy_error,
	.tls_begin = toy_tls_begin, .tls_done = toy_tls_done,
};

static struct smtpd_conf toy_conf(void)
{
	struct smtpd_conf c;

	memset(&c, 0, sizeof(c));
	c.hostname = "t.test";
	c.size_limit = 10000;
	c.max_errors = 100;
	c.max_recipients = 3;
	c.timeout_command = 5;
	c.timeout_data = 5;
	c.smtputf8 = 1;
	c.chunking = 1;
	return c;
}

/* ------------------------------------------------------------ the client */

#define PARTS	4

struct client {
	int		 fd;
	const char	*part[PARTS];	/* part[i] is sent once after[i] replies came */
	size_t		 len[PARTS];
	unsigned	 after[PARTS];
	int		 eof;		/* shut the writing side after the last part */
	int		 refuse_data;	/* the toy refuses to open messages */
	unsigned	 error_limit;	/* the toy's error hook ends the session */
	void		(*run)(struct client *);	/* instead of the parts */
	const struct smtpd_hooks *hooks;	/* instead of toy_hooks */
	char		 out[1 << 16];
	size_t		 outlen;
};

/* Complete replies (final lines "NNN ") in out. */
static unsigned replies_in(const char *o, size_t n)
{
	unsigned count = 0;

	for (size_t i = 0; i < n; i++)
		if ((i == 0 || o[i - 1] == '\n') && i + 3 < n && o[i + 3] == ' ')
			count++;
	return count;
}

static int client_read(struct client *c)
{
	ssize_t n = read(c->fd, c->out + c->outlen, sizeof(c->out) - 1 - c->outlen);

	if (n <= 0)
		return -1;
	c->outlen += (size_t)n;
	c->out[c->outlen] = '\0';
	return 0;
}

static void *client_run(void *arg)
{
	struct client *c = arg;

	if (c->run != NULL) {
		c->run(c);
		return NULL;
	}
	for (int i = 0; i < PARTS && c->part[i] != NULL; i++) {
		size_t off = 0;

		while (replies_in(c->out, c->outlen) < c->after[i])
			if (client_read(c) != 0)
				return NULL;
		while (off < c->len[i]) {
			ssize_t n = write(c->fd, c->part[i] + off, c->len[i] - off);

			if (n <= 0)
				return NULL;
			off += (size_t)n;
		}
	}
	if (c->eof)
		(void)shutdown(c->fd, SHUT_WR);
	while (client_read(c) == 0)
		;
	return NULL;
}

/* Run one session of the toy on conf: the client's parts as set in c
 * (c->part[0] at once). The replies end up in c->out. refusal: e->refusal. */
static void converse(struct toy *t, const struct smtpd_conf *conf, struct client *c,
    const char *refusal)
{
	int sv[2], big = 1 << 20;
	pthread_t th;

	memset(t, 0, sizeof(*t));
	t->refuse_data = c->refuse_data;
	t->error_limit = c->error_limit;
	t->tls_ok = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		abort();
	(void)setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	c->fd = sv[1];
	if (smtpd_init(&t->e, sv[0], 8192, conf, c->hooks != NULL ? c->hooks : &toy_hooks, t,
	    "test") != 0) {
		FAILF("smtpd_init failed");
		abort();
	}
	if (refusal != NULL)
		snprintf(t->e.refusal, sizeof(t->e.refusal), "%s", refusal);
	if (pthread_create(&th, NULL, client_run, c) != 0)
		abort();
	(void)smtpd_reply(&t->e, "220 t.test ESMTP");
	smtpd_run(&t->e);
	smtpd_free(&t->e);
	if (close(sv[0]) != 0)
		FAILF("close: %s", strerror(errno));
	if (pthread_join(th, NULL) != 0)
		abort();
	(void)close(sv[1]);
	if (t->bad_bol)
		FAILF("the data hook's bol was wrong %u times", t->bad_bol);
}

/* A client that sends in[0..len) at once, then EOF (eof = 1) or silence. */
static void client_once(struct client *c, const char *in, size_t len, int eof)
{
	memset(c, 0, sizeof(*c));
	c->part[0] = in;
	c->len[0] = len;
	c->eof = eof;
}

/* One session with client_once: the replies. */
static const char *session(struct toy *t, const struct smtpd_conf *conf,
    const char *in, size_t len, int eof)
{
	static struct client c;

	client_once(&c, in, len, eof);
	converse(t, conf, &c, NULL);
	return c.out;
}

#define SESSION(t, conf, lit)	session((t), (conf), (lit), sizeof(lit) - 1, 1)

/* Does a reply line (n bytes, no CRLF) match want ('*' at the end: a prefix)? */
static int reply_is(const char *ln, size_t n, const char *want)
{
	size_t wl = strlen(want);

	if (wl > 0 && want[wl - 1] == '*')
		return n >= wl - 1 && memcmp(ln, want, wl - 1) == 0;
	return n == wl && memcmp(ln, want, wl) == 0;
}

/* The replies after the banner, each by its last line, must be the
 * arguments (an argument ending in '*' matches a prefix), nothing more. */
static void expect_replies(const char *file, int line, const char *out, ...)
{
	const char *got[256], *want[256], *p = out;
	size_t gotlen[256];
	unsigned ng = 0, nw = 0;
	int bad = 0;
	va_list ap;

	if (strncmp(p, "220 t.test ESMTP\r\n", 18) != 0)
		bad = 1;
	else
		p += 18;
	while (ng < 256) {
		const char *eol = strstr(p, "\r\n");

		if (eol == NULL)
			break;
		if (eol - p < 4 || p[3] != '-') {	/* the last line of a reply */
			got[ng] = p;
			gotlen[ng++] = (size_t)(eol - p);
		}
		p = eol + 2;
	}
	va_start(ap, out);
	while (nw < 256 && (want[nw] = va_arg(ap, const char *)) != NULL)
		nw++;
	va_end(ap);
	for (unsigned i = 0; i < nw || i < ng; i++)
		if (i >= nw || i >= ng || !reply_is(got[i], gotlen[i], want[i]))
			bad = 1;
	if (!bad && *p == '\0')
		return;
	fprintf(stderr, "  %s:%d: replies:\n", file, line);
	for (unsigned i = 0; i < ng; i++)
		fprintf(stderr, "    %.*s\n", (int)gotlen[i], got[i]);
	if (*p != '\0')
		fprintf(stderr, "    (then, without CRLF) %.60s\n", p);
	fprintf(stderr, "  expected (after the banner):\n");
	for (unsigned i = 0; i < nw; i++)
		fprintf(stderr, "    %s\n", want[i]);
	unit_case_failed = 1;
}

#define EXPECT_REPLIES(out, ...)	expect_replies(__FILE__, __LINE__, (out), __VA_ARGS__, \
	(const char *)NULL)

#define EXPECT_MSG(t, i, lit) do { EXPECT((t)->ends > (i)); if ((t)->ends > (i)) { \
	EXPECT_INT((t)->endedlen[i], sizeof(lit) - 1); \
	if ((t)->endedlen[i] == sizeof(lit) - 1) EXPECT_MEM((t)->ended[i], lit, sizeof(lit) - 1); } } while (0)

#define HELLO	"EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@t.test>\r\n"
#define HELLO_R	"250 ENHANCEDSTATUSCODES", "250 2.1.0 Ok", "250 2.1.5 Ok"

#endif

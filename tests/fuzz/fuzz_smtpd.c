/*
 * fuzz_smtpd — libFuzzer target for lib/smtpd, the SMTP server engine of the
 * gate and the relay. Byte 0 chooses the session's settings (below); the
 * rest is what a client sends, byte for byte (pipelined groups, DATA, BDAT
 * chunks, long lines, STARTTLS with no certificate...), over a socketpair
 * to smtpd_run() and a toy program, until EOF.
 *
 * Oracles (besides ASan/UBSan/leaks):
 *   - hook contract: MAIL only in the helo state with a valid mailbox, RCPT
 *     only in a transaction and under max_recipients, message bytes only
 *     between data_begin and the message's end, with a right `bol`, never
 *     a bare CR or LF, never more than the size limit; data_end only for a
 *     message without a bare CR or LF and within the limit;
 *   - the wire (fuzz_smtpd_check): the replies frame the client's bytes as
 *     a strict reader must — exactly one reply (group) per complete command
 *     line, a DATA message ends only at CRLF.CRLF after a CRLF line and gets
 *     one reply, a BDAT chunk of n octets is eaten whole whenever the BDAT
 *     line was taken (any reply but 500/501), 221 and 421 end the session;
 *   - the message: for every message the model reads, the reply must be
 *     550 5.6.0 when it holds a bare CR/LF, 552 5.3.4 when it is over the
 *     limit, else the toy's "queued as N" — and then the bytes data_end saw
 *     must equal the model's message (DATA unstuffed; BDAT the chunks as
 *     sent since the last accepted MAIL).
 *
 * Byte 0: bit 0 CHUNKING, 1 SMTPUTF8, 2 DSN, 3 the toy refuses to open
 * messages, 4 a 4 KiB read buffer (else 64 KiB), 5 size limit 100 (else
 * 4096), 6 the session is refused by the program (e->refusal; a BDAT's
 * chunk is still eaten), 7 mail_params/rcpt_params set and max_errors 5
 * (else 30, and the toy's error hook ends the session at 4 errors). No TLS context: STARTTLS is never offered (502).
 *
 * Built and run by `make fuzz` (see tests/fuzz/README.md);
 * FUZZ_DEBUG=1 prints the replies when reproducing.
 */
#include <strings.h>

#include "fuzz.h"
#include "smtpd.h"

#define FZ_MSGS		64

struct fz_toy {
	struct smtpd	 e;
	unsigned	 flags;
	int		 in_msg;	/* between data_begin and the message's end */
	char		*msg;
	size_t		 msglen, msgcap;
	char		*ended[FZ_MSGS];	/* what data_end saw, in order */
	size_t		 endedlen[FZ_MSGS];
	unsigned	 ends;
};

static void
fz_keep(char **p, size_t *len, size_t *cap, const char *add, size_t n)
{
	if (*len + n > *cap) {
		*cap = (*len + n) * 2 + 64;
		if ((*p = realloc(*p, *cap)) == NULL)
			abort();
	}
	if (n > 0)
		memcpy(*p + *len, add, n);
	*len += n;
}

/* The toy's answer to MAIL/RCPT: addresses starting with "refuse" get no. */
static enum smtpd_verdict
fz_answer(struct fz_toy *t, const char *addr, const char *no, const char *yes)
{
	int refuse = strncmp(addr, "refuse", 6) == 0;

	(void)smtpd_reply(&t->e, "%s", refuse ? no : yes);
	return refuse ? SMTPD_REFUSE : SMTPD_ACCEPT;
}

static enum smtpd_verdict
fz_mail(void *ctx, const struct smtp_path *p, const struct smtpd_mail *m)
{
	struct fz_toy *t = ctx;

	(void)m;
	if (t->e.state != SMTPD_HELO || !smtp_valid_mailbox(p->addr, 1) || t->in_msg)
		abort();
	return fz_answer(t, p->addr, "550 5.7.1 Sender refused", "250 2.1.0 Ok");
}

static enum smtpd_verdict
fz_rcpt(void *ctx, const struct smtp_path *p)
{
	struct fz_toy *t = ctx;

	if ((t->e.state != SMTPD_MAIL && t->e.state != SMTPD_RCPT) || p->addr[0] == '\0' ||
	    !smtp_valid_mailbox(p->addr, 1) || t->e.nrcpt >= t->e.conf.max_recipients)
		abort();
	return fz_answer(t, p->addr, "550 5.1.1 Recipient refused", "250 2.1.5 Ok");
}

static enum smtpd_verdict
fz_data_begin(void *ctx, int bdat)
{
	struct fz_toy *t = ctx;

	if (t->in_msg || t->e.nrcpt == 0 ||
	    (t->e.state != SMTPD_RCPT && t->e.state != SMTPD_BDAT))
		abort();
	if (t->flags & 0x08) {
		if (!bdat)
			(void)smtpd_reply(&t->e, "451 4.3.0 Not now");
		return SMTPD_REFUSE;
	}
	t->in_msg = 1;
	t->msglen = 0;
	if (!bdat)
		(void)smtpd_reply(&t->e, SMTPD_354);
	return SMTPD_ACCEPT;
}

static void
fz_data(void *ctx, const char *p, size_t n, int bol)
{
	struct fz_toy *t = ctx;

	if (!t->in_msg || bol != (t->msglen == 0 || t->msg[t->msglen - 1] == '\n'))
		abort();
	/* no bare CR or LF ever reaches the hook (a CR may end a piece, its
	 * LF starting the next one) */
	for (size_t i = 0; i < n; i++) {
		char prev = i > 0 ? p[i - 1] : t->msglen > 0 ? t->msg[t->msglen - 1] : '\0';

		if ((p[i] == '\n' && prev != '\r') || (prev == '\r' && p[i] != '\n'))
			abort();
	}
	fz_keep(&t->msg, &t->msglen, &t->msgcap, p, n);
	if (t->msglen > t->e.conf.size_limit)
		abort();	/* the hook got more than the limit */
}

static void
fz_data_end(void *ctx)
{
	struct fz_toy *t = ctx;

	if (!t->in_msg || !fuzz_crlf_only(t->msg, t->msglen) || t->msglen > t->e.conf.size_limit)
		abort();
	t->in_msg = 0;
	if (t->ends < FZ_MSGS) {
		size_t cap = 0;

		t->endedlen[t->ends] = 0;
		fz_keep(&t->ended[t->ends], &t->endedlen[t->ends], &cap, t->msg, t->msglen);
	}
	t->ends++;
	(void)smtpd_reply(&t->e, "250 2.0.0 Ok: queued as %u", t->ends);
}

static void
fz_data_abort(void *ctx, enum smtpd_msg_fault why)
{
	struct fz_toy *t = ctx;

	if (why < SMTPD_MSG_BARE_LF || why > SMTPD_MSG_LOST)
		abort();
	t->in_msg = 0;
}

static void
fz_reset(void *ctx, enum smtpd_reset why)
{
	struct fz_toy *t = ctx;

	(void)why;
	t->in_msg = 0;
}

/* The program's own error limit (the gate's error-rate policy): at 4
 * errors, when the engine's max_errors is 30 (bit 7 clear). */
static int
fz_error(void *ctx)
{
	struct fz_toy *t = ctx;

	if ((t->flags & 0x80) || t->e.errors < 4)
		return 0;
	(void)smtpd_reply(&t->e, "421 4.7.0 fuzz.test Error rate limit exceeded");
	return -1;
}

static const struct smtpd_hooks fz_hooks = {
	.mail = fz_mail, .rcpt = fz_rcpt, .data_begin = fz_data_begin, .data = fz_data,
	.data_end = fz_data_end, .data_abort = fz_data_abort, .reset = fz_reset,
	.error = fz_error,
};

/* ---------------------------------------------------------------- the wire */

struct fz_wire {
	const uint8_t	*in;
	size_t		 n, i;		/* client bytes, read up to i */
	const char	*o;
	size_t		 on, ro;	/* replies, read up to ro */
	const char	*last;		/* the last line of the reply just read */
	size_t		 lastlen;
	int		 code;
	unsigned	 queued;	/* "queued as N" replies seen */
};

/* Next reply: its code (and w->last), or -1 when there is none. */
static int
fz_reply(struct fz_wire *w)
{
	size_t from = w->ro;

	w->code = fuzz_reply_next(w->o, w->on, &w->ro);
	if (w->code < 0)
		return -1;
	w->last = w->o + w->ro - 2;
	while (w->last > w->o + from && w->last[-1] != '\n')
		w->last--;
	w->lastlen = (size_t)(w->o + w->ro - 2 - w->last);
	return w->code;
}

static int
fz_reply_is(const struct fz_wire *w, const char *prefix)
{
	return w->lastlen >= strlen(prefix) && memcmp(w->last, prefix, strlen(prefix)) == 0;
}

/* The reply to a whole message the model read (msg, len): 550 5.6.0 for a
 * bare CR/LF, 552 5.3.4 over the limit, else the toy's, and then data_end
 * saw exactly msg. */
static void
fz_check_message(struct fz_wire *w, const struct fz_toy *t, const char *msg, size_t len)
{
	int bad = !fuzz_crlf_only(msg, len), big = len > t->e.conf.size_limit;
	unsigned long nr;
	char *end;

	if (bad && fz_reply_is(w, "550 5.6.0 "))
		return;
	if (big && fz_reply_is(w, "552 5.3.4 "))
		return;
	if (bad || big || !fz_reply_is(w, "250 2.0.0 Ok: queued as "))
		abort();
	nr = strtoul(w->last + 24, &end, 10);
	if (nr != ++w->queued || end != w->last + w->lastlen)
		abort();
	if (nr <= FZ_MSGS && (t->endedlen[nr - 1] != len ||
	    (len > 0 && memcmp(t->ended[nr - 1], msg, len) != 0)))
		abort();	/* data_end saw other bytes than the client's message */
}

/* After DATA's 354: read the message to CRLF.CRLF (unstuffed into *buf),
 * then its reply. 0, or -1 at EOF inside the message. */
static int
fz_wire_data(struct fz_wire *w, const struct fz_toy *t, char **buf, size_t *cap)
{
	size_t len = 0;
	int prev_crlf = 1;

	for (;;) {
		size_t le, s;

		if (w->i >= w->n)
			return -1;
		le = fuzz_line_end(w->in, w->n, w->i);
		if (prev_crlf && le - w->i == 3 && memcmp(w->in + w->i, ".\r\n", 3) == 0) {
			w->i = le;
			break;
		}
		prev_crlf = le - w->i >= 2 && w->in[le - 1] == '\n' && w->in[le - 2] == '\r';
		s = w->i + (w->in[w->i] == '.');
		fz_keep(buf, &len, cap, (const char *)w->in + s, le - s);
		w->i = le;
	}
	if (fz_reply(w) < 0)
		abort();	/* a message got no reply */
	fz_check_message(w, t, *buf, len);
	return 0;
}

/* "BDAT n ..." (the line without its end): n (at most about 2^44), or -1. */
static long long
fz_bdat_size(const uint8_t *l, size_t len)
{
	long long v = 0;
	size_t k = 4;

	if (len < 6 || strncasecmp((const char *)l, "BDAT", 4) != 0 || l[4] != ' ')
		return -1;
	while (k < len && l[k] == ' ')
		k++;
	if (k >= len || l[k] < '0' || l[k] > '9')
		return -1;
	for (; k < len && l[k] >= '0' && l[k] <= '9'; k++)
		if (v <= (1LL << 40))
			v = v * 10 + (l[k] - '0');
	return v;		/* over 2^40: "too big" is all that counts */
}

/* The BDAT line [ls, le) got w's reply. 0 go on, 1 the session ended. */
static int
fz_wire_bdat(struct fz_wire *w, const struct fz_toy *t, size_t ls, size_t le,
    char **chunks, size_t *clen, size_t *ccap)
{
	long long n;
	size_t take;

	if (w->code == 500 || w->code == 501)
		return 0;		/* not taken: no chunk follows */
	n = fz_bdat_size(w->in + ls, le - ls);
	if (n < 0)
		abort();		/* taken, but not "BDAT n" */
	if ((unsigned long long)n > t->e.conf.size_limit + (1ULL << 20)) {
		if (!fz_reply_is(w, "552 5.3.4 "))
			abort();
		return 1;		/* not read: the session ends */
	}
	take = (unsigned long long)n > w->n - w->i ? w->n - w->i : (size_t)n;
	if ((size_t)n != take)
		abort();		/* a reply although the chunk never came whole */
	if (w->code == 250 && fz_reply_is(w, "250 2.0.0 ") && !fz_reply_is(w, "250 2.0.0 Ok: queued")) {
		char want[64];

		snprintf(want, sizeof(want), "250 2.0.0 %lld octets received", n);
		if (w->lastlen != strlen(want) || memcmp(w->last, want, w->lastlen) != 0)
			abort();
		fz_keep(chunks, clen, ccap, (const char *)w->in + w->i, take);
	} else if (fz_reply_is(w, "250 2.0.0 Ok: queued") || fz_reply_is(w, "550 5.6.0 ") ||
	    fz_reply_is(w, "552 5.3.4 ")) {
		fz_keep(chunks, clen, ccap, (const char *)w->in + w->i, take);
		fz_check_message(w, t, *chunks, *clen);
		*clen = 0;
	}
	w->i += take;
	return 0;
}

/*
 * Walk the client's bytes as the rule set reads them, in step with the
 * replies: one reply per command line (up to LF; a tail without LF at EOF
 * gets none, or a 500 when it is longer than the read buffer), DATA and
 * BDAT as above; 221 or 421 end the session,
 * and a 421 may follow any reply (the error limit). Every reply must be
 * accounted for.
 */
static void
fuzz_smtpd_check(const uint8_t *in, size_t n, const char *o, size_t on, const struct fz_toy *t)
{
	struct fz_wire w = { .in = in, .n = n, .o = o, .on = on };
	char *msg = NULL, *chunks = NULL;
	size_t msgcap = 0, clen = 0, ccap = 0;

	int debug = getenv("FUZZ_DEBUG") != NULL;

	if (debug)
		fprintf(stderr, "--- replies:\n%.*s---\n", (int)on, o);
	if (on >= FUZZ_KEEP || fz_reply(&w) != 220)
		abort();	/* the toy's banner first */
	while (w.i < n) {
		size_t ls = w.i, le = fuzz_line_end(in, n, w.i);
		/* the line without its CRLF (or LF) */
		size_t cl = in[le - 1] != '\n' ? le : le - 1 - (le - 1 > ls && in[le - 2] == '\r');
		int bdat = cl - ls >= 5 && strncasecmp((const char *)in + ls, "BDAT ", 5) == 0;

		w.i = le;
		if (le == n && in[n - 1] != '\n' && n - ls < 4000) {
			if (fz_reply(&w) >= 0)
				abort();	/* a tail without LF before EOF is no command */
			goto eof;
		}
		if (fz_reply(&w) < 0) {
			if (le == n && in[n - 1] != '\n')
				goto eof;	/* a tail longer than the buffer: maybe 500 */
			if (bdat && fz_bdat_size(in + ls, cl - ls) > (long long)(n - le))
				goto eof;	/* the chunk never came whole */
			abort();	/* a command line got no reply */
		}
		if (le - ls >= 4 && strncasecmp((const char *)in + ls, "MAIL", 4) == 0 && w.code == 250)
			clen = 0;	/* a new transaction: BDAT chunks count from here */
		if (w.code == 354 && fz_wire_data(&w, t, &msg, &msgcap) != 0)
			goto eof;	/* client gone inside the message: no reply */
		if (debug)
			fprintf(stderr, "model: %.*s -> %.*s\n", (int)(cl - ls > 60 ? 60 : cl - ls),
			    (const char *)in + ls, (int)w.lastlen, w.last);
		if (bdat && fz_wire_bdat(&w, t, ls, cl, &chunks, &clen, &ccap) != 0)
			goto eof;
		if (w.code == 221 || w.code == 421)
			goto eof;
		{
			size_t peek = w.ro;

			if (fuzz_reply_next(o, on, &peek) == 421) {
				w.ro = peek;
				goto eof;
			}
		}
	}
eof:
	if (w.ro != on)
		abort();	/* replies to commands nobody sent (or sent inside a message) */
	if (w.queued != t->ends)
		abort();
	free(msg);
	free(chunks);
}

/* ---------------------------------------------------------------- the run */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtpd_conf conf;
	struct fuzz_client c;
	struct fz_toy t;
	unsigned f;

	fuzz_once();
	if (size < 1 || size > 16384)
		return 0;
	f = data[0];
	memset(&conf, 0, sizeof(conf));
	conf.hostname = "fuzz.test";
	conf.size_limit = (f & 0x20) ? 100 : 4096;
	conf.max_errors = (f & 0x80) ? 5 : 30;
	conf.max_recipients = 3;
	conf.timeout_command = conf.timeout_data = 5;
	conf.chunking = f & 1;
	conf.smtputf8 = (f & 2) != 0;
	conf.dsn = (f & 4) != 0;
	if (f & 0x80) {
		conf.mail_params = "RET ENVID";
		conf.rcpt_params = "NOTIFY ORCPT";
	}
	if (fuzz_client_open(&c, data + 1, size - 1) != 0)
		return 0;
	memset(&t, 0, sizeof(t));
	t.flags = f;
	if (smtpd_init(&t.e, c.fd, (f & 0x10) ? 4096 : 65536, &conf, &fz_hooks, &t, "fuzz") != 0)
		abort();
	if (f & 0x40)
		snprintf(t.e.refusal, sizeof(t.e.refusal), "554 5.7.1 Refused");
	(void)smtpd_reply(&t.e, "220 fuzz.test ESMTP");
	smtpd_run(&t.e);
	smtpd_free(&t.e);
	fuzz_client_close(&c, 0);
	fuzz_smtpd_check(data + 1, size - 1, c.out, c.outlen, &t);
	fuzz_client_free(&c);
	for (unsigned i = 0; i < t.ends && i < FZ_MSGS; i++)
		free(t.ended[i]);
	free(t.msg);
	return 0;
}

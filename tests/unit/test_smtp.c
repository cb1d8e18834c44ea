/*
 * test_smtp — lib/smtp: verb split, MAIL/RCPT path and parameter parsing,
 * reply parsing over a real socket (socketpair + struct io) including
 * multi-line and malformed replies, EHLO capability parsing, dot-stuffing,
 * and smtp_command's round trip.
 *
 * Reply tests write the peer's bytes into one end of a socketpair (closing
 * it when the case wants EOF) and read them through io on the other end.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "unit.h"
#include "io.h"
#include "smtp.h"

/* ------------------------------------------------------------ helpers */

struct pair {
	struct io	io;
	int		peer;		/* -1 once closed */
};

/* io on one end; `script` already written to the other; close it if eof. */
static int pair_open(struct pair *p, const char *script, size_t len, int eof, size_t rcap)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return -1;
	if (io_init(&p->io, sv[0], rcap, 500) != 0)
		return -1;
	p->peer = sv[1];
	while (len > 0) {
		ssize_t n = write(p->peer, script, len);

		if (n <= 0)
			return -1;
		script += n;
		len -= (size_t)n;
	}
	if (eof) {
		if (close(p->peer) != 0)
			return -1;
		p->peer = -1;
	}
	return 0;
}

static void pair_close(struct pair *p)
{
	int fd = p->io.fd;

	io_free(&p->io);
	if (close(fd) != 0)
		FAILF("close: %s", strerror(errno));
	if (p->peer >= 0 && close(p->peer) != 0)
		FAILF("close: %s", strerror(errno));
}

/* Read whatever the peer end has received (after io_flush). */
static size_t peer_read(struct pair *p, char *buf, size_t cap)
{
	size_t got = 0;

	if (shutdown(p->io.fd, SHUT_WR) != 0)
		return 0;
	while (got + 1 < cap) {
		ssize_t n = read(p->peer, buf + got, cap - 1 - got);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	return got;
}

static enum smtp_rstatus read_one(const char *script, int eof, struct smtp_reply *r)
{
	struct pair p;
	enum smtp_rstatus st;

	if (pair_open(&p, script, strlen(script), eof, 4096) != 0) {
		FAILF("socketpair/io_init failed");
		return SMTP_R_ERROR;
	}
	st = smtp_read_reply(&p.io, r);
	pair_close(&p);
	return st;
}

/* ------------------------------------------------------------ verbs */

TEST(verb_split)
{
	static const struct { const char *line; size_t len; const char *args; } t[] = {
		{ "QUIT", 4, "" },
		{ "MAIL FROM:<a@b>", 4, "FROM:<a@b>" },
		{ "rcpt   TO:<a@b> NOTIFY=NEVER", 4, "TO:<a@b> NOTIFY=NEVER" },
		{ "EHLO mx.example.net", 4, "mx.example.net" },
		{ "NOOP ", 4, "" },
		{ "", 0, "" },
		{ " EHLO x", 0, "EHLO x" },
		{ "XCLIENT ADDR=1.2.3.4", 7, "ADDR=1.2.3.4" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		const char *args = NULL;

		EXPECT_INT(smtp_verb(t[i].line, &args), t[i].len);
		EXPECT_STR(args, t[i].args);
	}
}

/* ------------------------------------------------------------ paths */

struct path_ok {
	const char *in, *prefix;
	int allow_null;
	const char *addr;
	size_t nparams;
	const char *k0, *v0, *k1, *v1;		/* v == NULL: no '=' */
};

static const struct path_ok path_oks[] = {
	{ "FROM:<a@example.com>", "FROM:", 1, "a@example.com", 0, NULL, NULL, NULL, NULL },
	{ "from:<a@example.com>", "FROM:", 1, "a@example.com", 0, NULL, NULL, NULL, NULL },
	{ "FROM: <a@example.com>", "FROM:", 1, "a@example.com", 0, NULL, NULL, NULL, NULL },
	{ "FROM:<>", "FROM:", 1, "", 0, NULL, NULL, NULL, NULL },
	{ "FROM:<> SIZE=0", "FROM:", 1, "", 1, "SIZE", "0", NULL, NULL },
	{ "FROM:<a@b.example> SIZE=1000 body=8BITMIME", "FROM:", 1, "a@b.example", 2,
	  "SIZE", "1000", "BODY", "8BITMIME" },
	{ "FROM:<a@b.example>  smtputf8 ", "FROM:", 1, "a@b.example", 1,
	  "SMTPUTF8", NULL, NULL, NULL },
	{ "TO:<c@d.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c+40d.example", "TO:", 0,
	  "c@d.example", 2, "NOTIFY", "SUCCESS,FAILURE", "ORCPT", "rfc822;c+40d.example" },
	{ "TO:<postmaster>", "TO:", 0, "postmaster", 0, NULL, NULL, NULL, NULL },
	/* quoted local part may hold '>' ' ' '<' */
	{ "TO:<\"a> <b\"@d.example>", "TO:", 0, "\"a> <b\"@d.example", 0, NULL, NULL, NULL, NULL },
	{ "TO:<\"a\\\"b\"@d.example>", "TO:", 0, "\"a\\\"b\"@d.example", 0, NULL, NULL, NULL, NULL },
	/* source route accepted and dropped (RFC 5321 4.1.1.3) */
	{ "TO:<@relay1,@relay2:user@d.example>", "TO:", 0, "user@d.example", 0,
	  NULL, NULL, NULL, NULL },
	{ "FROM:<a@b> X-EXT-1=v", "FROM:", 1, "a@b", 1, "X-EXT-1", "v", NULL, NULL },
};

TEST(path_ok)
{
	for (size_t i = 0; i < sizeof(path_oks) / sizeof(path_oks[0]); i++) {
		const struct path_ok *c = &path_oks[i];
		struct smtp_path p;
		char buf[1024];
		const char *why = NULL;

		snprintf(buf, sizeof(buf), "%s", c->in);
		if (smtp_parse_path(buf, c->prefix, c->allow_null, &p, &why) != 0) {
			FAILF("\"%s\": refused (%s)", c->in, why ? why : "-");
			continue;
		}
		EXPECT_STR(p.addr, c->addr);
		EXPECT_INT(p.nparams, c->nparams);
		if (c->nparams >= 1 && p.nparams >= 1) {
			EXPECT_STR(p.params[0].key, c->k0);
			EXPECT_STR(p.params[0].value, c->v0);
		}
		if (c->nparams >= 2 && p.nparams >= 2) {
			EXPECT_STR(p.params[1].key, c->k1);
			EXPECT_STR(p.params[1].value, c->v1);
		}
	}
}

struct path_bad {
	const char *name, *in, *prefix;
	int allow_null;
	const char *why;
};

static const struct path_bad path_bads[] = {
	{ "no <>", "FROM:a@b", "FROM:", 1, "Syntax: address must be enclosed in <>" },
	{ "no >", "FROM:<a@b", "FROM:", 1, "Syntax: missing closing >" },
	{ "no <", "FROM:a@b>", "FROM:", 1, "Syntax: address must be enclosed in <>" },
	{ "double <", "FROM:<<a@b>>", "FROM:", 1, "Syntax: bad character in address" },
	{ "unbalanced quote", "TO:<\"a@b>", "TO:", 0, "Syntax: missing closing >" },
	{ "space inside", "TO:<a b@c>", "TO:", 0, "Syntax: bad character in address" },
	{ "space before >", "TO:<a@c >", "TO:", 0, "Syntax: bad character in address" },
	{ "garbage after >", "TO:<a@c>x", "TO:", 0, "Syntax: garbage after address" },
	{ "null RCPT", "TO:<>", "TO:", 0, "Syntax: empty address not allowed here" },
	{ "wrong prefix", "TO:<a@b>", "FROM:", 1, "Syntax: expected FROM:<address> or TO:<address>" },
	{ "no colon", "FROM <a@b>", "FROM:", 1, "Syntax: expected FROM:<address> or TO:<address>" },
	{ "bad source route", "TO:<@relay>", "TO:", 0, "Syntax: bad source route" },
	{ "param without key", "FROM:<a@b> =x", "FROM:", 1, "Syntax: bad parameter" },
	{ "param key bad char", "FROM:<a@b> SI_ZE=1", "FROM:", 1, "Syntax: bad parameter" },
	{ "param key starts with -", "FROM:<a@b> -X=1", "FROM:", 1, "Syntax: bad parameter" },
	{ "param value with =", "FROM:<a@b> SIZE=1=2", "FROM:", 1, "Syntax: bad parameter value" },
	{ "param value control", "FROM:<a@b> SIZE=1\x01", "FROM:", 1, "Syntax: bad parameter value" },
};

TEST(path_bad)
{
	for (size_t i = 0; i < sizeof(path_bads) / sizeof(path_bads[0]); i++) {
		const struct path_bad *c = &path_bads[i];
		struct smtp_path p;
		char buf[1024];
		const char *why = NULL;

		snprintf(buf, sizeof(buf), "%s", c->in);
		if (smtp_parse_path(buf, c->prefix, c->allow_null, &p, &why) == 0) {
			FAILF("%s: \"%s\" accepted as <%s>", c->name, c->in, p.addr);
			continue;
		}
		if (why == NULL || strcmp(why, c->why) != 0)
			FAILF("%s: reason \"%s\", expected \"%s\"", c->name, why ? why : "(null)", c->why);
	}
}

TEST(path_length)
{
	char buf[1024], addr[300];
	struct smtp_path p;
	const char *why = NULL;

	/* exactly SMTP_PATH_MAX (256) characters between <> is accepted */
	memset(addr, 'a', 256 - 12);
	memcpy(addr + 256 - 12, "@example.com", 13);
	EXPECT_INT(strlen(addr), 256);
	snprintf(buf, sizeof(buf), "FROM:<%s>", addr);
	EXPECT_INT(smtp_parse_path(buf, "FROM:", 1, &p, &why), 0);
	EXPECT_STR(p.addr, addr);

	/* 257 is refused */
	memset(addr, 'a', 257 - 12);
	memcpy(addr + 257 - 12, "@example.com", 13);
	snprintf(buf, sizeof(buf), "FROM:<%s>", addr);
	EXPECT_INT(smtp_parse_path(buf, "FROM:", 1, &p, &why), -1);
	EXPECT_STR(why, "Path too long");

	/* much longer, still no overflow of p.addr */
	memset(buf, 'b', sizeof(buf));
	memcpy(buf, "TO:<", 4);
	memcpy(buf + sizeof(buf) - 2, ">", 2);
	EXPECT_INT(smtp_parse_path(buf, "TO:", 0, &p, &why), -1);
	EXPECT_STR(why, "Path too long");
}

TEST(path_params_limit)
{
	char buf[1024];
	struct smtp_path p;
	const char *why = NULL;
	size_t off = (size_t)snprintf(buf, sizeof(buf), "FROM:<a@b>");

	for (int i = 0; i < SMTP_PARAMS_MAX; i++)
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, " P%d=%d", i, i);
	EXPECT_INT(smtp_parse_path(buf, "FROM:", 1, &p, &why), 0);
	EXPECT_INT(p.nparams, SMTP_PARAMS_MAX);
	EXPECT_STR(p.params[SMTP_PARAMS_MAX - 1].key, "P15");

	off = (size_t)snprintf(buf, sizeof(buf), "FROM:<a@b>");
	for (int i = 0; i <= SMTP_PARAMS_MAX; i++)
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, " P%d=%d", i, i);
	EXPECT_INT(smtp_parse_path(buf, "FROM:", 1, &p, &why), -1);
	EXPECT_STR(why, "Too many parameters");
}

/*
 * RFC 5321 4.1.2: esmtp-value = 1*(%d33-60 / %d62-126), so "SIZE=" (an
 * empty value) is a syntax error. KNOWN FAILING against lib/smtp.c as of
 * this writing: smtp_parse_path accepts it with value "" (reported to the
 * lead; lib/smtp.c is not ours to change).
 */
TEST(path_param_empty_value)
{
	char buf[64] = "FROM:<a@b> SIZE=";
	struct smtp_path p;
	const char *why = NULL;

	EXPECT_INT(smtp_parse_path(buf, "FROM:", 1, &p, &why), -1);
}

TEST(mailbox_and_helo)
{
	EXPECT_INT(smtp_valid_mailbox("", 0), 1);
	EXPECT_INT(smtp_valid_mailbox("a@example.com", 0), 1);
	EXPECT_INT(smtp_valid_mailbox("first.last+tag@sub.example.com", 0), 1);
	EXPECT_INT(smtp_valid_mailbox("\"a b\"@example.com", 0), 1);
	EXPECT_INT(smtp_valid_mailbox("a@[192.0.2.1]", 0), 1);
	EXPECT_INT(smtp_valid_mailbox("Postmaster", 0), 1);
	EXPECT_INT(smtp_valid_mailbox("a..b@example.com", 0), 0);
	EXPECT_INT(smtp_valid_mailbox(".a@example.com", 0), 0);
	EXPECT_INT(smtp_valid_mailbox("a.@example.com", 0), 0);
	EXPECT_INT(smtp_valid_mailbox("a@", 0), 0);
	EXPECT_INT(smtp_valid_mailbox("@example.com", 0), 0);
	EXPECT_INT(smtp_valid_mailbox("a@b..c", 0), 0);
	EXPECT_INT(smtp_valid_mailbox("a\tb@example.com", 0), 0);
	EXPECT_INT(smtp_valid_mailbox("j\xc3\xb6rg@example.com", 0), 0);
	EXPECT_INT(smtp_valid_mailbox("j\xc3\xb6rg@example.com", 1), 1);
	{
		char lp[100];

		memset(lp, 'l', 65);
		memcpy(lp + 65, "@example.com", 13);
		EXPECT_INT(smtp_valid_mailbox(lp, 0), 0);	/* local part > 64 */
		lp[64] = '@';
		memcpy(lp + 64, "@example.com", 13);
		EXPECT_INT(smtp_valid_mailbox(lp, 0), 1);	/* exactly 64 */
	}
	EXPECT_INT(smtp_valid_helo("mx.example.net"), 1);
	EXPECT_INT(smtp_valid_helo("[192.0.2.1]"), 1);
	EXPECT_INT(smtp_valid_helo("[IPv6:2001:db8::1]"), 1);
	EXPECT_INT(smtp_valid_helo(""), 0);
	EXPECT_INT(smtp_valid_helo("a..b"), 0);
	EXPECT_INT(smtp_valid_helo("bad_name.example"), 0);
	EXPECT_INT(smtp_valid_helo("[1.2.3.4"), 0);
}

/* ------------------------------------------------------------ replies */

TEST(reply_single_and_multi)
{
	struct smtp_reply r;

	EXPECT_INT(read_one("220 mx.example.net ESMTP\r\n", 0, &r), SMTP_R_OK);
	EXPECT_INT(r.code, 220);
	EXPECT_INT(r.nlines, 1);
	EXPECT_STR(r.text, "220 mx.example.net ESMTP\r\n");
	EXPECT_INT(r.len, strlen("220 mx.example.net ESMTP\r\n"));
	EXPECT_STR(r.enhanced, "");

	EXPECT_INT(read_one("250-mx.example.net\r\n250-PIPELINING\r\n250 SIZE 1000\r\n", 0, &r),
	    SMTP_R_OK);
	EXPECT_INT(r.code, 250);
	EXPECT_INT(r.nlines, 3);
	EXPECT_STR(r.text, "250-mx.example.net\r\n250-PIPELINING\r\n250 SIZE 1000\r\n");

	/* a bare code is a complete reply line */
	EXPECT_INT(read_one("354\r\n", 0, &r), SMTP_R_OK);
	EXPECT_INT(r.code, 354);

	/* "250-" with empty text continues */
	EXPECT_INT(read_one("250-\r\n250 ok\r\n", 0, &r), SMTP_R_OK);
	EXPECT_INT(r.nlines, 2);

	/* LF-only line ends are accepted from a server and relayed as CRLF */
	EXPECT_INT(read_one("250-a\n250 b\n", 0, &r), SMTP_R_OK);
	EXPECT_STR(r.text, "250-a\r\n250 b\r\n");
}

TEST(reply_enhanced)
{
	static const struct { const char *in, *enh; } t[] = {
		{ "550 5.1.1 <x@y>: Recipient address rejected\r\n", "5.1.1" },
		{ "250 2.0.0 Ok: queued as 4F2A9C01\r\n", "2.0.0" },
		{ "451 4.7.1 Try again later\r\n", "4.7.1" },
		{ "421 4.4.2 timeout\r\n", "4.4.2" },
		{ "250-2.1.0 first\r\n250 2.1.0 last\r\n", "2.1.0" },
		{ "550 4.1.1 class differs from the code\r\n", "" },
		{ "250 ok\r\n", "" },
		{ "250 2.0 short\r\n", "" },
		{ "250 2.0.0x\r\n", "" },
		{ "250 2..0 x\r\n", "" },
		{ "250 2.0.0\r\n", "2.0.0" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct smtp_reply r;

		if (read_one(t[i].in, 0, &r) != SMTP_R_OK) {
			FAILF("\"%s\": not OK", t[i].in);
			continue;
		}
		EXPECT_STR(r.enhanced, t[i].enh);
	}
}

TEST(reply_malformed)
{
	static const struct { const char *name, *in; } t[] = {
		{ "code mismatch between lines", "250-a\r\n251 b\r\n" },
		{ "class mismatch between lines", "250-a\r\n550 b\r\n" },
		{ "no code", "hello\r\n" },
		{ "empty line", "\r\n" },
		{ "two digits", "25 ok\r\n" },
		{ "letter after code", "250x ok\r\n" },
		{ "code 650", "650 ok\r\n" },
		{ "code 199", "199 ok\r\n" },
		{ "second line without code", "250-a\r\nb\r\n" },
		{ "tab separator", "250\tok\r\n" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct smtp_reply r;
		enum smtp_rstatus st = read_one(t[i].in, 0, &r);

		if (st != SMTP_R_BAD)
			FAILF("%s: status %d, expected SMTP_R_BAD", t[i].name, (int)st);
		EXPECT_INT(r.code, 0);
	}
}

TEST(reply_eof)
{
	struct smtp_reply r;
	enum smtp_rstatus st;

	EXPECT_INT(read_one("", 1, &r), SMTP_R_EOF);
	/* EOF after a continuation line: the reply never ended */
	EXPECT_INT(read_one("250-a\r\n250-b\r\n", 1, &r), SMTP_R_EOF);
	/* EOF in the middle of a line: never OK */
	st = read_one("250-a\r\n250 b", 1, &r);
	EXPECT(st == SMTP_R_EOF || st == SMTP_R_BAD);
	st = read_one("25", 1, &r);
	EXPECT(st == SMTP_R_EOF || st == SMTP_R_BAD);
}

TEST(reply_timeout)
{
	struct pair p;
	struct smtp_reply r;

	EXPECT_INT(pair_open(&p, "250-a\r\n", 7, 0, 4096), 0);
	p.io.timeout_ms = 100;
	EXPECT_INT(smtp_read_reply(&p.io, &r), SMTP_R_TIMEOUT);
	pair_close(&p);
}

/* After a malformed reply the reader is still in step with the stream. */
TEST(reply_resync_and_pipelined)
{
	struct pair p;
	struct smtp_reply r;
	static const char s[] = "250 2.1.0 Ok\r\n"
	    "250-a\r\n251 b\r\n"
	    "550 5.1.1 nope\r\n"
	    "354 End data with <CR><LF>.<CR><LF>\r\n";

	EXPECT_INT(pair_open(&p, s, sizeof(s) - 1, 1, 4096), 0);
	EXPECT_INT(smtp_read_reply(&p.io, &r), SMTP_R_OK);
	EXPECT_INT(r.code, 250);
	EXPECT_INT(smtp_read_reply(&p.io, &r), SMTP_R_BAD);
	EXPECT_INT(smtp_read_reply(&p.io, &r), SMTP_R_OK);
	EXPECT_INT(r.code, 550);
	EXPECT_STR(r.enhanced, "5.1.1");
	EXPECT_INT(smtp_read_reply(&p.io, &r), SMTP_R_OK);
	EXPECT_INT(r.code, 354);
	EXPECT_INT(smtp_read_reply(&p.io, &r), SMTP_R_EOF);
	pair_close(&p);
}

TEST(reply_too_big)
{
	struct pair p;
	struct smtp_reply r;
	char *s;
	size_t len = 0;

	/* an overlong line (longer than the io buffer) */
	s = malloc(20000);
	EXPECT(s != NULL);
	if (s == NULL)
		return;
	memcpy(s, "250 ", 4);
	memset(s + 4, 'x', 300);
	memcpy(s + 304, "\r\n", 2);
	EXPECT_INT(pair_open(&p, s, 306, 1, 128), 0);
	EXPECT_INT(smtp_read_reply(&p.io, &r), SMTP_R_BAD);
	pair_close(&p);

	/* more than SMTP_REPLY_MAX bytes of lines */
	for (int i = 0; i < 200; i++)
		len += (size_t)sprintf(s + len, "250-%060d\r\n", i);
	len += (size_t)sprintf(s + len, "250 end\r\n");
	EXPECT(len > SMTP_REPLY_MAX);
	EXPECT_INT(pair_open(&p, s, len, 1, 4096), 0);
	EXPECT_INT(smtp_read_reply(&p.io, &r), SMTP_R_BAD);
	EXPECT(r.len <= SMTP_REPLY_MAX);
	pair_close(&p);

	/* more than 200 short lines */
	len = 0;
	for (int i = 0; i < 300; i++)
		len += (size_t)sprintf(s + len, "250-x\r\n");
	len += (size_t)sprintf(s + len, "250 end\r\n");
	EXPECT_INT(pair_open(&p, s, len, 1, 4096), 0);
	EXPECT_INT(smtp_read_reply(&p.io, &r), SMTP_R_BAD);
	pair_close(&p);
	free(s);
}

TEST(reply_line)
{
	struct smtp_reply r;
	const char *p;
	size_t n;

	EXPECT_INT(read_one("250-mx.example.net hi\r\n250-\r\n250 SIZE 10\r\n", 0, &r), SMTP_R_OK);
	EXPECT_INT(smtp_reply_line(&r, 0, &p, &n), 0);
	EXPECT_INT(n, strlen("mx.example.net hi"));
	EXPECT(n > 0 && memcmp(p, "mx.example.net hi", n) == 0);
	EXPECT_INT(smtp_reply_line(&r, 1, &p, &n), 0);
	EXPECT_INT(n, 0);
	EXPECT_INT(smtp_reply_line(&r, 2, &p, &n), 0);
	EXPECT(n == 7 && memcmp(p, "SIZE 10", 7) == 0);
	EXPECT_INT(smtp_reply_line(&r, 3, &p, &n), -1);
}

/* ------------------------------------------------------------ EHLO caps */

TEST(ehlo_caps)
{
	struct smtp_reply r;
	struct smtp_caps c;

	EXPECT_INT(read_one(
	    "250-mx.example.net greets PIPELINING\r\n"	/* greeting: not a capability */
	    "250-pipelining\r\n"
	    "250-SIZE 52428800\r\n"
	    "250-8BITMIME\r\n"
	    "250-SMTPUTF8\r\n"
	    "250-CHUNKING\r\n"
	    "250-STARTTLS\r\n"
	    "250-ENHANCEDSTATUSCODES\r\n"
	    "250-DSN\r\n"
	    "250-AUTH LOGIN plain CRAM-MD5\r\n"
	    "250-XCLIENT NAME ADDR PROTO HELO\r\n"
	    "250 X-UNKNOWN-EXTENSION\r\n", 0, &r), SMTP_R_OK);
	smtp_parse_caps(&r, &c);
	EXPECT_INT(c.pipelining, 1);
	EXPECT_INT(c.size, 1);
	EXPECT_INT(c.size_max, 52428800);
	EXPECT_INT(c.eightbit, 1);
	EXPECT_INT(c.smtputf8, 1);
	EXPECT_INT(c.chunking, 1);
	EXPECT_INT(c.starttls, 1);
	EXPECT_INT(c.enhanced, 1);
	EXPECT_INT(c.dsn, 1);
	EXPECT_INT(c.auth_plain, 1);
	EXPECT_INT(c.auth_login, 1);
	EXPECT_INT(c.xclient, 1);
	EXPECT(strstr(c.xclient_attrs, " ADDR ") != NULL);
	EXPECT(strstr(c.xclient_attrs, " HELO ") != NULL);

	/* only the greeting: nothing */
	EXPECT_INT(read_one("250 mx.example.net PIPELINING SIZE STARTTLS\r\n", 0, &r), SMTP_R_OK);
	smtp_parse_caps(&r, &c);
	EXPECT_INT(c.pipelining, 0);
	EXPECT_INT(c.size, 0);
	EXPECT_INT(c.starttls, 0);

	/* near misses are not capabilities */
	EXPECT_INT(read_one(
	    "250-mx\r\n"
	    "250-PIPELININGX\r\n"
	    "250-XSTARTTLS\r\n"
	    "250-AUTH=PLAIN\r\n"
	    "250-AUTH PLAINX LOGINX\r\n"
	    "250 SIZE\r\n", 0, &r), SMTP_R_OK);
	smtp_parse_caps(&r, &c);
	EXPECT_INT(c.pipelining, 0);
	EXPECT_INT(c.starttls, 0);
	EXPECT_INT(c.auth_plain, 0);
	EXPECT_INT(c.auth_login, 0);
	EXPECT_INT(c.size, 1);		/* SIZE without a limit */
	EXPECT_INT(c.size_max, 0);
}

/* ------------------------------------------------------------ dot-stuffing */

TEST(dot_stuffing)
{
	struct pair p;
	char got[256];
	static const struct { const char *chunk; int bol; } w[] = {
		{ ".leading dot\r\n", 1 },
		{ "no dot\r\n", 1 },
		{ ".\r\n", 1 },			/* a lone dot line */
		{ "..two\r\n", 1 },
		{ "part one, ", 1 },
		{ ".not at bol\r\n", 0 },	/* continues the previous line */
		{ "", 1 },
	};

	EXPECT_INT(pair_open(&p, "", 0, 0, 4096), 0);
	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
		EXPECT_INT(smtp_write_stuffed(&p.io, w[i].chunk, strlen(w[i].chunk), w[i].bol), 0);
	EXPECT_INT(io_flush(&p.io), 0);
	peer_read(&p, got, sizeof(got));
	EXPECT_STR(got, "..leading dot\r\n"
	    "no dot\r\n"
	    "..\r\n"
	    "...two\r\n"
	    "part one, .not at bol\r\n");
	pair_close(&p);
}

/*
 * smtp.h's contract is one line (or one piece of a long line) per call:
 * only a '.' at the start of the chunk is doubled. A chunk holding several
 * lines ("a\r\n.\r\n") would NOT be stuffed after its embedded CRLF and
 * would end DATA early at the backend. gate_data.c calls it per line from
 * io_getline, so no caller is wrong today; this test pins the contract so
 * a change to it is noticed.
 */
TEST(dot_stuffing_only_leading_dot)
{
	struct pair p;
	char got[256];
	static const char chunk[] = ".a\r\nb\r\n";

	EXPECT_INT(pair_open(&p, "", 0, 0, 4096), 0);
	EXPECT_INT(smtp_write_stuffed(&p.io, chunk, sizeof(chunk) - 1, 1), 0);
	EXPECT_INT(io_flush(&p.io), 0);
	peer_read(&p, got, sizeof(got));
	EXPECT_STR(got, "..a\r\nb\r\n");
	pair_close(&p);
}

/* ------------------------------------------------------------ smtp_command */

TEST(command_round_trip)
{
	struct pair p;
	struct smtp_reply r;
	char got[256];
	static const char s[] = "250-mx.example.net\r\n250 PIPELINING\r\n";

	EXPECT_INT(pair_open(&p, s, sizeof(s) - 1, 0, 4096), 0);
	EXPECT_INT(smtp_command(&p.io, &r, "EHLO %s", "gate.example.net"), SMTP_R_OK);
	EXPECT_INT(r.code, 250);
	EXPECT_INT(r.nlines, 2);
	peer_read(&p, got, sizeof(got));
	EXPECT_STR(got, "EHLO gate.example.net\r\n");
	pair_close(&p);

	/* a command too long for one line is refused, nothing sent */
	{
		char big[SMTP_LINE_MAX + 600];

		memset(big, 'x', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		EXPECT_INT(pair_open(&p, "", 0, 0, 4096), 0);
		EXPECT_INT(smtp_command(&p.io, &r, "MAIL FROM:<%s>", big), SMTP_R_ERROR);
		EXPECT_INT(peer_read(&p, got, sizeof(got)), 0);
		pair_close(&p);
	}
}

int main(void)
{
	RUN(verb_split);
	RUN(path_ok);
	RUN(path_bad);
	RUN(path_length);
	RUN(path_params_limit);
	RUN(path_param_empty_value);
	RUN(mailbox_and_helo);
	RUN(reply_single_and_multi);
	RUN(reply_enhanced);
	RUN(reply_malformed);
	RUN(reply_eof);
	RUN(reply_timeout);
	RUN(reply_resync_and_pipelined);
	RUN(reply_too_big);
	RUN(reply_line);
	RUN(ehlo_caps);
	RUN(dot_stuffing);
	RUN(dot_stuffing_only_leading_dot);
	RUN(command_round_trip);
	return unit_done();
}

/*
 * fuzz_gate — libFuzzer target for the gate's SMTP session: the input is
 * what a client sends, byte for byte, over a socketpair (gate_session_run:
 * the engine lib/smtpd.c with the gate's hooks from gate/gate_session.c,
 * gate_data.c, gate_backend.c; lib/io.c, lib/smtp.c, policy checks with an
 * empty policy), until EOF.
 *
 * The backend is in-process and synchronous: gate_backend.c's net_connect()
 * and lib/io.c's read/write/send/poll are replaced, in this file only, by
 * macros that send the backend's fd to fuzz_be_*() (every other fd goes to
 * the real system call). The backend aborts on anything the gate must never
 * forward:
 *   - a PROXY v2 header that does not decode as one write with the client's
 *     address, or a command line not ending in CRLF or holding a bare CR/LF;
 *   - a command other than EHLO XCLIENT MAIL RCPT DATA BDAT RSET QUIT, an
 *     RCPT/DATA/BDAT outside a transaction (but for the one RCPT right
 *     after a MAIL it refused: the gate pipelines MAIL with the first
 *     RCPT, and a DATA pipelined with the RCPT, which is answered 503/554
 *     as Postfix does), BDAT to a backend without CHUNKING;
 *   - a MAIL/RCPT whose address (and parameters) does not come from a
 *     client command line, in order, after the last forwarded one;
 *   - message content with a bare CR or LF, a line starting with a dot
 *     that is not stuffed, or content that is not exactly (un-stuffed) a
 *     DATA body the client sent after "DATA<CRLF>" and ended with
 *     <CRLF>.<CRLF> (so a message ended on <LF>.<CR><LF> or a bare LF,
 *     i.e. SMTP smuggling, aborts).
 * The backend's behaviour varies with the input size: CHUNKING offered or
 * not (bit 0), PROXY v2 or XCLIENT hand-off (bit 1). Recipients whose
 * local part starts with "reject"/"temp"/"bye" get 550/451/421, a MAIL
 * with "mailfail" 550, a message containing "REJECTME" 554.
 * The client's side must see well-formed replies only, exactly one per
 * command line and one per message as a strict reader frames the input
 * (fuzz_check_framing in fuzz.h: the smuggling oracle).
 *
 * Built and run by `make fuzz` (see tests/fuzz/README.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <openssl/ssl.h>

#include "fuzz.h"
#include "../../gate/gate_session.h"
#include "proxy.h"

enum fuzz_be_state { BE_PROXY, BE_CMD, BE_DATA, BE_BDAT, BE_CLOSED };

struct fuzz_be {
	int		 fd;		/* -1: not connected */
	int		 chunking, xclient;
	enum fuzz_be_state state;
	char		 line[4096];
	size_t		 llen;
	char		*raw;		/* DATA: stuffed bytes; BDAT: chunks */
	size_t		 rawlen, rawcap;
	size_t		 bdat_left;
	int		 bdat_last;
	char		 reply[16384];
	size_t		 rlen, roff;
	int		 in_txn;
	int		 mail_refused;	/* the last command was a MAIL we refused */
	unsigned	 writes;	/* the gate's writes so far */
	unsigned	 rcpt_write;	/* the write that held the last command, if a RCPT */
	unsigned	 nrcpt;
};

static struct fuzz_be be = { .fd = -1 };
static const uint8_t *fz_in;		/* the client's bytes */
static size_t fz_inlen, fz_cursor;	/* forwarded so far: fz_in[0..fz_cursor) */

static void
be_say(const char *s)
{
	size_t n = strlen(s);

	if (n > sizeof(be.reply) - be.rlen)
		abort();	/* the gate does not read the backend's replies */
	memcpy(be.reply + be.rlen, s, n);
	be.rlen += n;
}

static void
be_raw_add(const char *p, size_t n)
{
	if (be.rawlen + n > be.rawcap) {
		size_t cap = (be.rawlen + n) * 2 + 1024;
		char *x = realloc(be.raw, cap);
		if (x == NULL)
			abort();
		be.raw = x;
		be.rawcap = cap;
	}
	memcpy(be.raw + be.rawlen, p, n);
	be.rawlen += n;
}

/* Does the client input hold, at `a`, a DATA body that un-stuffs to c and
 * ends with <CRLF>.<CRLF>? Returns the offset after the final ".\r\n" or 0. */
static size_t
body_at(size_t a, const char *c, size_t clen)
{
	size_t i = a, j = 0;

	for (;;) {
		if (i + 3 <= fz_inlen && memcmp(fz_in + i, ".\r\n", 3) == 0)
			return j == clen ? i + 3 : 0;
		if (i < fz_inlen && fz_in[i] == '.')
			i++;
		for (;;) {
			if (i >= fz_inlen || j >= clen || fz_in[i] != (uint8_t)c[j])
				return 0;
			i++;
			j++;
			if (c[j - 1] == '\n')
				break;
		}
	}
}

static size_t
line_end(size_t ls)
{
	const uint8_t *lf = memchr(fz_in + ls, '\n', fz_inlen - ls);

	return lf ? (size_t)(lf - fz_in) + 1 : fz_inlen;
}

/* "DATA" CRLF, with the trailing spaces smtp_verb() skips ("DATA " is
 * accepted as DATA, as Postfix does). */
static int
is_data_line(size_t ls, size_t le)
{
	size_t i = ls + 4;

	if (le - ls < 6 || strncasecmp((const char *)fz_in + ls, "DATA", 4) != 0)
		return 0;
	while (i < le - 2 && fz_in[i] == ' ')
		i++;
	return i == le - 2 && fz_in[i] == '\r' && fz_in[i + 1] == '\n';
}

/* The accepted content must be a complete DATA body of the client. */
static void
be_check_message(const char *c, size_t clen)
{
	if (!fuzz_crlf_only(c, clen))
		abort();	/* bare CR or LF forwarded */
	if (clen > 0 && c[clen - 1] != '\n')
		abort();
	for (size_t ls = fz_cursor; ls < fz_inlen; ls = line_end(ls)) {
		size_t le = line_end(ls), end;

		if (is_data_line(ls, le) && (end = body_at(le, c, clen)) != 0) {
			fz_cursor = end;
			return;
		}
	}
	abort();	/* not a message the client sent and ended with CRLF.CRLF */
}

/* MAIL/RCPT: the address must be in a client command line after the last
 * forwarded thing, and the parameters ones the client gave. */
static void
be_check_envelope(const char *verb, const char *addr, size_t alen, const char *params)
{
	static const char *const ok[] = { "", " SMTPUTF8", " BODY=8BITMIME",
		" BODY=8BITMIME SMTPUTF8" };
	const char *p = params;
	int good = 0;

	if (*verb == 'M' && strncmp(p, " SIZE=", 6) == 0) {
		p += 6;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if ((*verb == 'M' || i == 0) && strcmp(p, ok[i]) == 0)
			good = 1;
	if (!good)
		abort();	/* parameters the gate must not send */
	for (size_t ls = fz_cursor; ls < fz_inlen; ls = line_end(ls)) {
		size_t le = line_end(ls);
		const uint8_t *l = fz_in + ls;

		if (le - ls < 6 || strncasecmp((const char *)l, verb, 4) != 0 ||
		    l[le - ls - 2] != '\r')
			continue;
		if (alen == 0 || memmem(l, le - ls, addr, alen) != NULL) {
			fz_cursor = le;
			return;
		}
	}
	abort();	/* an envelope command the client did not send */
}

static void
be_end_message(const char *c, size_t clen)
{
	be_check_message(c, clen);
	if (clen == 0)
		be_say("250 2.0.0 Ok: queued as FUZZ0000\r\n");
	else if (memmem(c, clen, "REJECTME", 8) != NULL)
		be_say("554 5.7.1 Rejected by backend\r\n");
	else if (memmem(c, clen, "BYE421", 6) != NULL)
		be_say("421 4.3.2 Backend shutting down\r\n");
	else
		be_say("250 2.0.0 Ok: queued as FUZZ0001\r\n");
	be.in_txn = 0;
	be.nrcpt = 0;
}

static void
be_bdat_done(void)
{
	be.state = BE_CMD;
	if (be.bdat_last) {
		be_end_message(be.raw, be.rawlen);
		be.rawlen = 0;
	} else
		be_say("250 2.0.0 chunk\r\n");
}

static void
be_command(char *l, size_t n)
{
	char *addr, *gt;
	int refused, pipelined;

	if (n < 2 || l[n - 2] != '\r' || memchr(l, '\r', n - 2) != NULL || memchr(l, '\0', n))
		abort();	/* bad line end / bare CR / NUL toward the backend */
	l[n - 2] = '\0';
	refused = be.mail_refused;
	be.mail_refused = 0;
	pipelined = be.rcpt_write == be.writes;	/* DATA right behind a RCPT, same write */
	be.rcpt_write = 0;
	if (!strncmp(l, "EHLO ", 5)) {
		be_say("250-backend.test\r\n250-PIPELINING\r\n250-SIZE 20000000\r\n"
		    "250-8BITMIME\r\n250-SMTPUTF8\r\n");
		if (be.chunking)
			be_say("250-CHUNKING\r\n");
		if (be.xclient)
			be_say("250-XCLIENT ADDR PORT NAME PROTO HELO\r\n");
		be_say("250 ENHANCEDSTATUSCODES\r\n");
	} else if (!strncmp(l, "XCLIENT ", 8) && be.xclient) {
		be_say("220 backend.test ESMTP\r\n");
	} else if (!strncmp(l, "MAIL FROM:<", 11) && (gt = strrchr(l, '>')) != NULL) {
		addr = l + 11;
		be_check_envelope("MAIL", addr, (size_t)(gt - addr), gt + 1);
		*gt = '\0';
		if (strstr(addr, "mailfail") != NULL) {
			be_say("550 5.1.0 Sender refused\r\n");
			be.in_txn = 0;
			be.mail_refused = 1;
			return;
		}
		be.in_txn = 1;
		be.nrcpt = 0;
		be.rawlen = 0;
		be_say("250 2.1.0 Ok\r\n");
	} else if (!strncmp(l, "RCPT TO:<", 9) && (gt = strrchr(l, '>')) != NULL) {
		addr = l + 9;
		be.rcpt_write = be.writes;
		if (!be.in_txn && refused) {
			/* the one RCPT pipelined with a MAIL we refused */
			be_check_envelope("RCPT", addr, (size_t)(gt - addr), gt + 1);
			be_say("503 5.5.1 Error: need MAIL command\r\n");
			return;
		}
		if (!be.in_txn)
			abort();	/* RCPT outside a transaction */
		be_check_envelope("RCPT", addr, (size_t)(gt - addr), gt + 1);
		if (!strncasecmp(addr, "reject", 6))
			be_say("550 5.1.1 No such user\r\n");
		else if (!strncasecmp(addr, "temp", 4))
			be_say("451 4.3.0 Try later\r\n");
		else if (!strncasecmp(addr, "bye", 3))
			be_say("421 4.3.2 Backend closing\r\n");
		else {
			be.nrcpt++;
			be_say("250 2.1.5 Ok\r\n");
		}
	} else if (!strcmp(l, "DATA")) {
		/* DATA pipelined with the RCPT (RFC 2920) may follow a refused
		 * MAIL or a refused only RCPT: answered as Postfix does, and the
		 * gate must send no content (it would be read as commands) */
		if (!be.in_txn || be.nrcpt == 0) {
			if (!pipelined)
				abort();	/* DATA with no recipient, not pipelined */
			be_say(!be.in_txn ? "503 5.5.1 Error: need RCPT command\r\n" :
			    "554 5.5.1 Error: no valid recipients\r\n");
			return;
		}
		be.state = BE_DATA;
		be.rawlen = 0;
		be_say("354 End data with <CR><LF>.<CR><LF>\r\n");
	} else if (!strncmp(l, "BDAT ", 5)) {
		char *end;
		unsigned long long len;

		if (!be.chunking || !be.in_txn || be.nrcpt == 0)
			abort();
		errno = 0;
		len = strtoull(l + 5, &end, 10);
		if (errno || end == l + 5 || (*end && strcmp(end, " LAST")) || len > 1 << 20)
			abort();
		be.bdat_left = (size_t)len;
		be.bdat_last = *end != '\0';
		be.state = BE_BDAT;
		if (len == 0)
			be_bdat_done();
	} else if (!strcmp(l, "RSET")) {
		be.in_txn = 0;
		be.nrcpt = 0;
		be_say("250 2.0.0 Ok\r\n");
	} else if (!strcmp(l, "QUIT")) {
		be_say("221 2.0.0 Bye\r\n");
		be.state = BE_CLOSED;
	} else
		abort();	/* a command the gate must never forward */
}

/* DATA: the stuffed content up to <CRLF>.<CRLF>. Returns bytes used. */
static size_t
be_data(const char *p, size_t n)
{
	size_t old = be.rawlen, from, i;
	char *c;
	size_t clen = 0;

	be_raw_add(p, n);
	from = old > 4 ? old - 4 : 0;
	for (i = from; i + 3 <= be.rawlen; i++) {
		if (memcmp(be.raw + i, ".\r\n", 3) != 0 || (i != 0 && (i < 2 ||
		    be.raw[i - 1] != '\n' || be.raw[i - 2] != '\r')))
			continue;
		/* un-stuff raw[0..i): every line starting with a dot had one added */
		if ((c = malloc(i + 1)) == NULL)
			abort();
		for (size_t k = 0, bol = 1; k < i; k++) {
			if (bol && be.raw[k] == '.') {
				if (k + 1 >= i || be.raw[k + 1] != '.')
					abort();	/* an unstuffed dot line */
				k++;
			}
			c[clen++] = be.raw[k];
			bol = be.raw[k] == '\n';
		}
		be.state = BE_CMD;
		be_end_message(c, clen);
		free(c);
		return n - (be.rawlen - (i + 3));
	}
	return n;
}

static void
be_feed(const char *p, size_t n)
{
	while (n > 0) {
		size_t used;

		switch (be.state) {
		case BE_PROXY: {
			struct proxy_info pi;
			const char *why;
			const struct sockaddr_in *src = (const struct sockaddr_in *)&pi.src;

			if (proxy_decode((const unsigned char *)p, n, &pi, &used, &why) != PROXY_OK ||
			    used != n || pi.local || pi.src.ss_family != AF_INET ||
			    src->sin_addr.s_addr != htonl(0xc0000201) || ntohs(src->sin_port) != 40000)
				abort();	/* not the client's address in one write */
			be.state = BE_CMD;
			be_say("220 backend.test ESMTP\r\n");
			return;
		}
		case BE_CMD: {
			const char *lf = memchr(p, '\n', n);

			used = lf ? (size_t)(lf - p) + 1 : n;
			if (be.llen + used > sizeof(be.line) - 1)
				abort();	/* a command line longer than any we send */
			memcpy(be.line + be.llen, p, used);
			be.llen += used;
			if (lf) {
				be.line[be.llen] = '\0';
				be_command(be.line, be.llen);
				be.llen = 0;
			}
			break;
		}
		case BE_DATA:
			used = be_data(p, n);
			break;
		case BE_BDAT:
			used = n < be.bdat_left ? n : be.bdat_left;
			be_raw_add(p, used);
			be.bdat_left -= used;
			if (be.bdat_left == 0)
				be_bdat_done();
			break;
		case BE_CLOSED:
		default:
			abort();	/* bytes after QUIT */
		}
		p += used;
		n -= used;
	}
}

static int
fuzz_be_connect(const struct net_endpoint *ep, int timeout_ms)
{
	(void)ep;
	(void)timeout_ms;
	if (be.fd >= 0)
		abort();	/* two backend connections at once */
	if ((be.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		abort();
	be.state = be.xclient ? BE_CMD : BE_PROXY;
	be.llen = be.rlen = be.roff = be.rawlen = 0;
	be.in_txn = 0;
	be.nrcpt = 0;
	if (be.xclient)
		be_say("220 backend.test ESMTP\r\n");
	return be.fd;
}

static ssize_t
fuzz_write(int fd, const void *p, size_t n)
{
	if (fd != be.fd || fd < 0)
		return write(fd, p, n);
	if (be.state == BE_CLOSED) {
		errno = EPIPE;
		return -1;
	}
	be.writes++;
	be_feed(p, n);
	return (ssize_t)n;
}

static ssize_t
fuzz_send(int fd, const void *p, size_t n, int flags)
{
	if (fd != be.fd || fd < 0)
		return send(fd, p, n, flags);
	return fuzz_write(fd, p, n);
}

static ssize_t
fuzz_read(int fd, void *p, size_t n)
{
	size_t left;

	if (fd != be.fd || fd < 0)
		return read(fd, p, n);
	left = be.rlen - be.roff;
	if (left == 0)
		return 0;	/* nothing to say: a real backend would wait */
	if (n > left)
		n = left;
	memcpy(p, be.reply + be.roff, n);
	be.roff += n;
	if (be.roff == be.rlen)
		be.roff = be.rlen = 0;
	return (ssize_t)n;
}

static int
fuzz_poll(struct pollfd *pfd, nfds_t n, int timeout)
{
	if (n != 1 || pfd->fd != be.fd || be.fd < 0)
		return poll(pfd, n, timeout);
	pfd->revents = pfd->events & (POLLIN | POLLOUT);
	return 1;
}

static int
fuzz_close(int fd)
{
	if (fd == be.fd && fd >= 0) {
		if (be.state == BE_DATA || be.state == BE_BDAT)
			be.rawlen = 0;	/* a message cut off is never accepted */
		be.fd = -1;
	}
	return close(fd);
}

#define read fuzz_read
#define write fuzz_write
#define send fuzz_send
#define poll fuzz_poll
#include "../../lib/io.c"
#define net_connect fuzz_be_connect
#define close fuzz_close
#include "../../gate/gate_backend.c"
#undef close
#undef net_connect
#undef poll
#undef send
#undef write
#undef read

static struct gate_settings fz_cfg;
static struct gate_runtime fz_rt;

static void
fuzz_init(void)
{
	fuzz_once();
	fz_cfg.hostname = (char *)(uintptr_t)"fuzz.gate.test";
	fz_cfg.message_size_limit = 4096;
	fz_cfg.max_recipients = 5;
	fz_cfg.max_errors = 20;
	fz_cfg.timeout_command = 5;
	fz_cfg.timeout_data = 5;
	fz_cfg.timeout_session = 3600;	/* the config's minimum is 1 s; 0 expired at once */
	fz_cfg.backend_connect_timeout = 5;
	fz_cfg.backend_timeout = 5;
	fz_cfg.backend_data_timeout = 5;
	fz_cfg.smtputf8 = 1;
	snprintf(fz_cfg.backend.host, sizeof(fz_cfg.backend.host), "backend.test");
	snprintf(fz_cfg.backend.port, sizeof(fz_cfg.backend.port), "25");
	fz_cfg.backends.v[0].ep = fz_cfg.backend;
	snprintf(fz_cfg.backends.v[0].name, sizeof(fz_cfg.backends.v[0].name), "backend.test:25");
	fz_cfg.backends.n = 1;
	fz_rt.cfg = &fz_cfg;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_storage peer, local;
	struct sockaddr_in *p4 = (struct sockaddr_in *)&peer, *l4 = (struct sockaddr_in *)&local;
	struct fuzz_client c;

	if (fz_rt.cfg == NULL)
		fuzz_init();
	if (size > 8192 || fuzz_client_open(&c, data, size) != 0)
		return 0;
	fz_in = data;
	fz_inlen = size;
	fz_cursor = 0;
	be.chunking = size & 1;
	be.xclient = (size & 2) != 0;
	fz_cfg.handoff = be.xclient ? HANDOFF_XCLIENT : HANDOFF_PROXY_V2;
	memset(&peer, 0, sizeof(peer));
	memset(&local, 0, sizeof(local));
	p4->sin_family = l4->sin_family = AF_INET;
	p4->sin_addr.s_addr = htonl(0xc0000201);	/* 192.0.2.1 */
	p4->sin_port = htons(40000);
	l4->sin_addr.s_addr = htonl(0xc0000219);
	l4->sin_port = htons(25);
	gate_session_run(&fz_rt, c.fd, &peer, &local, NULL);
	if (be.fd >= 0)
		abort();	/* the session left its backend open */
	fuzz_client_close(&c, 0);
	fuzz_check_framing(data, size, c.out, c.outlen, NULL);
	fuzz_client_free(&c);
	return 0;
}

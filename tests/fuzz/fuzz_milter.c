/*
 * fuzz_milter — libFuzzer target for the gate's milter client
 * (gate/gate_milter*.c): the input is everything one milter answers
 * during a whole session — option negotiation, the replies
 * to connect, HELO, MAIL, two RCPTs, DATA, the headers, end of headers,
 * body and end of message with its modifications (add/insert/change/delete
 * header, replace body, change sender, add/delete recipient, quarantine),
 * `y` replies, progress, garbage — through the public calls the gate makes
 * (gate_milter_connect ... gate_milter_message, msg_write, abort, a second
 * transaction, session_free), then a second session on the connection the
 * first parked in the pool (QUIT_NC), or on a new one. Also the `y` reply
 * and header validators on the raw bytes.
 *
 * No milter process and no system call per packet: in the protocol files
 * included below only (gate_milter.c, _wire.c with the socket calls,
 * _stage.c, _mods.c with tmpfile(); macros in this file; _msg.c and
 * _conf.c come from the archive untouched), connect() on its AF_UNIX
 * socket succeeds at once, and poll/recv/send on that socket read the
 * input and discard what the client writes; tmpfile() (a replaced body) is an fmemopen() buffer.
 * Contract checked: no crash, leak or hang; every reply for a refusal is a
 * NUL-terminated 4xx/5xx line without CR or LF; the message written after
 * the modifications has CRLF line ends only (no bare CR or LF), and the
 * envelope changes are NUL-terminated strings without CR/LF.
 *
 * Built and run by `make fuzz` (see tests/fuzz/README.md).
 */
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>

#include "fuzz.h"

static int fz_mfd = -1;			/* the milter's socket */
static const uint8_t *fz_mdata;		/* what the milter says */
static size_t fz_mlen, fz_moff;
static char fz_obuf[1 << 18];		/* the message after the milter */

static int
fuzz_m_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	(void)sa;
	(void)len;
	fz_mfd = fd;
	return 0;
}

static int
fuzz_m_poll(struct pollfd *pfd, nfds_t n, int timeout)
{
	if (n != 1 || pfd->fd != fz_mfd)
		return poll(pfd, n, timeout);
	if (timeout == 0) {
		/* the pool's check of a parked connection: alive and quiet */
		pfd->revents = 0;
		return 0;
	}
	pfd->revents = pfd->events & (POLLIN | POLLOUT);
	return 1;
}

static ssize_t
fuzz_m_recv(int fd, void *p, size_t n, int flags)
{
	if (fd != fz_mfd)
		return recv(fd, p, n, flags);
	if (n > fz_mlen - fz_moff)
		n = fz_mlen - fz_moff;
	memcpy(p, fz_mdata + fz_moff, n);
	fz_moff += n;
	return (ssize_t)n;	/* 0 at the end: the milter closed */
}

static ssize_t
fuzz_m_send(int fd, const void *p, size_t n, int flags)
{
	if (fd != fz_mfd)
		return send(fd, p, n, flags);
	return (ssize_t)n;
}

static FILE *
fuzz_m_tmpfile(void)
{
	return fmemopen(NULL, 65536 + 4096, "w+");
}

#define connect fuzz_m_connect
#define poll fuzz_m_poll
#define recv fuzz_m_recv
#define send fuzz_m_send
#define tmpfile fuzz_m_tmpfile
#include "../../gate/gate_milter.c"
#include "../../gate/gate_milter_wire.c"
#include "../../gate/gate_milter_stage.c"
#include "../../gate/gate_milter_mods.c"
#undef tmpfile
#undef send
#undef recv
#undef poll
#undef connect

static const char fuzz_msg[] =
	"From: a@example.test\r\nSubject: s\r\nX-Two: a\r\n b\r\n\r\nbody\r\n.dot\r\n";

static void
fuzz_check_output(FILE *f)
{
	int c, prev = 0;

	if (fseek(f, 0, SEEK_SET) != 0)
		abort();
	while ((c = fgetc(f)) != EOF) {
		if (c == '\n' && prev != '\r')
			abort();	/* bare LF written */
		if (prev == '\r' && c != '\n')
			abort();	/* bare CR written */
		prev = c;
	}
	if (prev == '\r')
		abort();
}

static void
fuzz_check_reply(enum gate_milter_verdict v, const char *reply)
{
	if (strnlen(reply, GATE_MILTER_REPLY_MAX) == GATE_MILTER_REPLY_MAX)
		abort();
	if (strpbrk(reply, "\r\n") != NULL)
		abort();
	if ((v == GMV_REJECT && reply[0] != '5') || (v == GMV_TEMPFAIL && reply[0] != '4') ||
	    (v == GMV_SHUTDOWN && strncmp(reply, "421", 3) != 0))
		abort();
}

static void
fuzz_check_str(const char *s)
{
	if (s != NULL && strpbrk(s, "\r\n") != NULL)
		abort();
}

static const char *
fuzz_macro(void *ctx, const char *name)
{
	(void)ctx;
	if (!strcmp(name, "j"))
		return "mx.example.test";
	if (!strcmp(name, "i"))
		return "ABCDEF0123";
	if (!strcmp(name, "{client_addr}"))
		return "192.0.2.1";
	return NULL;
}

/* One transaction: MAIL, two RCPTs, DATA, the message. */
static void
fuzz_transaction(struct gate_milter_session *s, char *reply)
{
	struct gate_milter_msg msg;
	enum gate_milter_verdict v;
	const char *why;
	FILE *in, *out;

	v = gate_milter_mail(s, "a@example.test", "SIZE=100 BODY=8BITMIME", reply,
	    GATE_MILTER_REPLY_MAX);
	fuzz_check_reply(v, reply);
	v = gate_milter_rcpt(s, "b@example.test", "", reply, GATE_MILTER_REPLY_MAX);
	fuzz_check_reply(v, reply);
	v = gate_milter_rcpt(s, "c@example.test", NULL, reply, GATE_MILTER_REPLY_MAX);
	fuzz_check_reply(v, reply);
	v = gate_milter_data(s, reply, GATE_MILTER_REPLY_MAX);
	fuzz_check_reply(v, reply);
	in = fmemopen((void *)fuzz_msg, sizeof fuzz_msg - 1, "r");
	if (in == NULL || gate_milter_msg_read(&msg, in, &why) != 0)
		abort();
	v = gate_milter_message(s, &msg, reply, GATE_MILTER_REPLY_MAX);
	fuzz_check_reply(v, reply);
	if ((out = fmemopen(fz_obuf, sizeof(fz_obuf), "w+")) == NULL)
		abort();
	if (gate_milter_msg_write(&msg, out) == 0)
		fuzz_check_output(out);
	for (size_t i = 0; i < msg.nadd_rcpt; i++)
		fuzz_check_str(msg.add_rcpt[i]);
	for (size_t i = 0; i < msg.ndel_rcpt; i++)
		fuzz_check_str(msg.del_rcpt[i]);
	fuzz_check_str(msg.new_from);
	fuzz_check_str(msg.new_from_args);
	fclose(out);
	gate_milter_msg_free(&msg);
	fclose(in);
	gate_milter_abort(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gate_milter_conf conf = { .spec = (char *)"unix:/fuzz", .family = AF_UNIX,
		.path = "/fuzz", .default_action = GMD_TEMPFAIL, .connect_timeout = 1,
		.command_timeout = 2, .eom_timeout = 2 };
	struct gate_milter_set set = { &conf, 1, 1 << 16, NULL };
	struct gate_milter_session *s;
	struct sockaddr_storage peer;
	struct sockaddr_in *sin = (struct sockaddr_in *)&peer;
	char reply[GATE_MILTER_REPLY_MAX], *copy;
	enum gate_milter_verdict v;

	fuzz_once();
	if (size > 60000)
		return 0;
	/* validators on the raw bytes */
	if ((copy = malloc(size + 1)) == NULL)
		return 0;
	memcpy(copy, data, size);
	copy[size] = 0;
	(void)gm_check_yreply(copy, size + 1, &v, reply, sizeof reply);
	(void)gm_check_hname(copy);
	(void)gm_check_hvalue("X-Fuzz", copy);
	free(copy);

	/* the bytes as everything the milter answers */
	fz_mdata = data;
	fz_mlen = size;
	fz_moff = 0;
	fz_mfd = -1;
	memset(&peer, 0, sizeof(peer));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(40000);
	sin->sin_addr.s_addr = htonl(0xc0000201);
	if ((set.pool = gm_pool_new(1)) == NULL)
		abort();
	for (int session = 0; session < 2; session++) {
		if ((s = gate_milter_session_new(&set, "fuzz", fuzz_macro, NULL)) == NULL)
			abort();
		v = gate_milter_connect(s, NULL, &peer, reply, sizeof reply);
		fuzz_check_reply(v, reply);
		v = gate_milter_helo(s, "client.example.test", reply, sizeof reply);
		fuzz_check_reply(v, reply);
		fuzz_transaction(s, reply);
		if (session == 0)
			fuzz_transaction(s, reply);
		gate_milter_session_free(s);
	}
	gm_pool_free(set.pool);
	fz_mfd = -1;
	return 0;
}

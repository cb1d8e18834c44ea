/*
 * test_milter_proto — unit tests for the gate's milter client
 * (gate/gate_milter*.c, included to reach their static functions): packet
 * framing over a socketpair, field extraction, validation of what a milter
 * sends (header names and values, `y` replies), endpoint and config
 * parsing, the message parser/writer and body-replacement normalisation.
 * Sessions against real milters are in tests/integration/50-milter-*.sh.
 */
#include "unit.h"
#include "../../gate/gate_milter.c"
#include "../../gate/gate_milter_wire.c"
#include "../../gate/gate_milter_stage.c"
#include "../../gate/gate_milter_mods.c"
#include "../../gate/gate_milter_conf.c"
#include "../../gate/gate_milter_msg.c"

static void
put_packet(int fd, uint32_t len, const char *bytes, size_t n)
{
	uint32_t be = htonl(len);

	if (write(fd, &be, 4) != 4 || (n && write(fd, bytes, n) != (ssize_t)n))
		FAILF("write failed");
}

static const char *
read_one(int fd, unsigned char *cmd, size_t *len, unsigned char *buf, size_t max)
{
	return gm_read_packet(fd, NULL, 0, gm_now_ms() + 500, buf, max, cmd, len);
}

TEST(packet_ok)
{
	int sv[2];
	unsigned char buf[64], cmd = 0;
	size_t len = 0;

	EXPECT_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	put_packet(sv[1], 4, "yabc", 4);
	EXPECT(read_one(sv[0], &cmd, &len, buf, 32) == NULL);
	EXPECT_INT(cmd, 'y');
	EXPECT_INT(len, 3);
	EXPECT_STR((char *)buf, "abc");
	/* a command without data */
	put_packet(sv[1], 1, "c", 1);
	EXPECT(read_one(sv[0], &cmd, &len, buf, 32) == NULL);
	EXPECT_INT(cmd, 'c');
	EXPECT_INT(len, 0);
	close(sv[0]);
	close(sv[1]);
}

TEST(packet_bad)
{
	int sv[2];
	unsigned char buf[64], cmd = 0;
	size_t len = 0;

	EXPECT_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	put_packet(sv[1], 0, "", 0);
	EXPECT_STR(read_one(sv[0], &cmd, &len, buf, 32), "bad packet length 0");
	put_packet(sv[1], 0xffffffffu, "", 0);
	EXPECT_STR(read_one(sv[0], &cmd, &len, buf, 32),
	    "packet larger than the negotiated maximum");
	put_packet(sv[1], 34, "h", 1);		/* 33 data bytes > max 32 */
	EXPECT_STR(read_one(sv[0], &cmd, &len, buf, 32),
	    "packet larger than the negotiated maximum");
	close(sv[0]);
	close(sv[1]);

	EXPECT_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	EXPECT_STR(read_one(sv[0], &cmd, &len, buf, 32), "timeout");
	put_packet(sv[1], 20, "hab", 3);
	close(sv[1]);
	EXPECT_STR(read_one(sv[0], &cmd, &len, buf, 32), "truncated packet");
	EXPECT_STR(read_one(sv[0], &cmd, &len, buf, 32), "connection closed");
	close(sv[0]);

	/* half a length field, then EOF */
	EXPECT_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	EXPECT_INT(write(sv[1], "\0\0", 2), 2);
	close(sv[1]);
	EXPECT_STR(read_one(sv[0], &cmd, &len, buf, 32), "connection closed");
	close(sv[0]);
}

TEST(fields)
{
	const unsigned char d[] = { 0, 0, 0, 7, 'a', 0, 'b', 'c' };
	size_t off = 0;
	uint32_t v = 0;

	EXPECT_INT(gm_take_u32(d, sizeof d, &off, &v), 0);
	EXPECT_INT(v, 7);
	EXPECT_STR(gm_take_str(d, sizeof d, &off), "a");
	EXPECT(gm_take_str(d, sizeof d, &off) == NULL);	/* "bc" has no NUL */
	off = 6;
	EXPECT_INT(gm_take_u32(d, sizeof d, &off, &v), -1);
	off = 100;
	EXPECT_INT(gm_take_u32(d, sizeof d, &off, &v), -1);
	EXPECT(gm_take_str(d, sizeof d, &off) == NULL);
}

TEST(header_values)
{
	char v1[] = "plain value", v2[] = "first\r\n\tsecond", v3[] = "a\nb",
	    v4[] = "a\rb", v5[] = "end\n", v6[] = "ctl\001x", v7[] = "fold\n second";
	char big[1200];

	EXPECT(gm_check_hvalue("X-A", v1) == NULL);
	EXPECT(gm_check_hvalue("X-A", v2) == NULL);
	EXPECT_STR(v2, "first\n\tsecond");
	EXPECT_STR(gm_check_hvalue("X-A", v3), "bare LF in header value");
	EXPECT_STR(gm_check_hvalue("X-A", v4), "bare CR in header value");
	EXPECT_STR(gm_check_hvalue("X-A", v5), "bare LF in header value");
	EXPECT_STR(gm_check_hvalue("X-A", v6), "control character in header value");
	EXPECT(gm_check_hvalue("X-A", v7) == NULL);
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = 0;
	EXPECT_STR(gm_check_hvalue("X-A", big), "overlong header line");
	/* a long value folded into short lines is fine */
	for (size_t i = 80; i < sizeof big - 1; i += 80)
		big[i] = '\n', big[i + 1] = ' ';
	EXPECT(gm_check_hvalue("X-A", big) == NULL);

	EXPECT(gm_check_hname("DKIM-Signature") == NULL);
	EXPECT_STR(gm_check_hname(""), "empty header name");
	EXPECT_STR(gm_check_hname("Bad Name"), "bad character in header name");
	EXPECT_STR(gm_check_hname("A:B"), "bad character in header name");
	EXPECT_STR(gm_check_hname("X\r\nInjected"), "bad character in header name");
}

static const char *
yr(const char *s, enum gate_milter_verdict *v, char *out)
{
	return gm_check_yreply(s, strlen(s) + 1, v, out, GATE_MILTER_REPLY_MAX);
}

TEST(y_replies)
{
	enum gate_milter_verdict v = GMV_CONTINUE;
	char out[GATE_MILTER_REPLY_MAX], big[700];

	EXPECT(yr("550 5.7.1 go away", &v, out) == NULL);
	EXPECT_INT(v, GMV_REJECT);
	EXPECT_STR(out, "550 5.7.1 go away");
	EXPECT(yr("451 4.7.1 later 100%% sure", &v, out) == NULL);
	EXPECT_INT(v, GMV_TEMPFAIL);
	EXPECT_STR(out, "451 4.7.1 later 100% sure");
	EXPECT(yr("421 4.7.0 bye", &v, out) == NULL);
	EXPECT_INT(v, GMV_SHUTDOWN);
	EXPECT(yr("554", &v, out) == NULL);
	EXPECT_STR(yr("250 2.0.0 ok", &v, out), "reply code not 4xx or 5xx");
	EXPECT_STR(yr("55", &v, out), "reply code of bad length");
	EXPECT_STR(yr("550-5.7.1 a", &v, out),
	    "reply code not followed by a blank (multi-line replies are refused)");
	EXPECT_STR(yr("550 5.7.1 a\r\n550 b", &v, out), "CR or LF in reply");
	EXPECT_STR(yr("550 a\nb", &v, out), "CR or LF in reply");
	EXPECT_STR(yr("450 5.7.1 mixed", &v, out), "enhanced status code of another class");
	EXPECT_STR(yr("550 \001", &v, out), "control or non-ASCII character in reply");
	memset(big, 'x', sizeof big - 1);
	memcpy(big, "550 ", 4);
	big[sizeof big - 1] = 0;
	EXPECT_STR(yr(big, &v, out), "reply code of bad length");
	EXPECT_STR(gm_check_yreply("550 x", 5, &v, out, sizeof out), "reply code not a string");
}

TEST(specs)
{
	struct gate_milter_conf m;
	const char *why = NULL;

	memset(&m, 0, sizeof m);
	EXPECT_INT(gate_milter_parse_spec("inet:127.0.0.1:8891", &m, &why), 0);
	EXPECT_INT(m.family, AF_INET);
	EXPECT_STR(m.ep.host, "127.0.0.1");
	EXPECT_STR(m.ep.port, "8891");
	EXPECT_INT(gate_milter_parse_spec("inet:11332@127.0.0.2", &m, &why), 0);
	EXPECT_STR(m.ep.host, "127.0.0.2");
	EXPECT_STR(m.ep.port, "11332");
	EXPECT_INT(gate_milter_parse_spec("inet:[::1]:8891", &m, &why), 0);
	EXPECT_STR(m.ep.host, "::1");
	EXPECT_INT(gate_milter_parse_spec("inet:8891@[::1]", &m, &why), 0);
	EXPECT_STR(m.ep.host, "::1");
	EXPECT_INT(gate_milter_parse_spec("unix:/run/rspamd/milter.sock", &m, &why), 0);
	EXPECT_INT(m.family, AF_UNIX);
	EXPECT_STR(m.path, "/run/rspamd/milter.sock");
	EXPECT_INT(gate_milter_parse_spec("unix:relative", &m, &why), -1);
	EXPECT_INT(gate_milter_parse_spec("tcp:1.2.3.4:5", &m, &why), -1);
	EXPECT_INT(gate_milter_parse_spec("inet:127.0.0.1:0", &m, &why), -1);
	EXPECT_INT(gate_milter_parse_spec("inet:127.0.0.1:70000", &m, &why), -1);
	EXPECT_INT(gate_milter_parse_spec("inet:@127.0.0.1", &m, &why), -1);
}

static int
load(const char *text, struct gate_milter_set *set, char *err, size_t errlen)
{
	struct conf c;
	int r;

	if (conf_load_buf("gate.conf", text, strlen(text), &c, err, errlen) != 0)
		return -2;
	r = gate_milter_config(&c, set, err, errlen);
	if (r == 0 && conf_check_unused(&c, err, errlen) != 0)
		r = -3;
	conf_free(&c);
	return r;
}

TEST(config)
{
	struct gate_milter_set set;
	char err[256] = "";

	EXPECT_INT(load("milters = inet:127.0.0.1:8891, unix:/run/r.sock\n"
	    "milter_default_action = accept\n"
	    "milter_command_timeout = 10s\n"
	    "milter_eom_timeout[unix:/run/r.sock] = 5m\n"
	    "milter_default_action[unix:/run/r.sock] = reject\n", &set, err, sizeof err), 0);
	EXPECT_INT(set.n, 2);
	EXPECT_STR(set.v[0].spec, "inet:127.0.0.1:8891");
	EXPECT_INT(set.v[0].default_action, GMD_ACCEPT);
	EXPECT_INT(set.v[0].command_timeout, 10);
	EXPECT_INT(set.v[0].eom_timeout, 120);
	EXPECT_INT(set.v[0].connect_timeout, 5);
	EXPECT_INT(set.v[1].default_action, GMD_REJECT);
	EXPECT_INT(set.v[1].eom_timeout, 300);
	EXPECT_INT(set.v[1].command_timeout, 10);
	gate_milter_set_free(&set);

	/* no milters at all */
	EXPECT_INT(load("hostname = x\n", &set, err, sizeof err), -3);
	EXPECT_INT(load("", &set, err, sizeof err), 0);
	EXPECT_INT(set.n, 0);
	gate_milter_set_free(&set);

	EXPECT_INT(load("milters = inet:127.0.0.1:8891\nmilter_default_action = maybe\n",
	    &set, err, sizeof err), -1);
	EXPECT_STR(err, "gate.conf:2: milter_default_action: expected tempfail, accept or reject");
	EXPECT_INT(load("milters = inet:127.0.0.1:8891\n"
	    "milter_default_action[inet:127.0.0.1:9999] = accept\n", &set, err, sizeof err), -1);
	EXPECT_STR(err, "gate.conf:2: milter_default_action[inet:127.0.0.1:9999]: "
	    "no such milter in \"milters\"");
	EXPECT_INT(load("milters = inet:127.0.0.1:8891, inet:127.0.0.1:8891\n",
	    &set, err, sizeof err), -1);
	EXPECT_INT(load("milters = smtp:x\n", &set, err, sizeof err), -1);
	EXPECT_INT(load("milters = inet:127.0.0.1:1\nmilter_eom_timeout = 0s\n",
	    &set, err, sizeof err), -1);
}

static FILE *
mem(const char *s)
{
	FILE *f = tmpfile();

	if (f == NULL || fputs(s, f) == EOF || fseek(f, 0, SEEK_SET) != 0)
		return NULL;
	return f;
}

static char *
dump(const struct gate_milter_msg *m)
{
	static char out[4096];	/* test-only */
	FILE *f = tmpfile();
	size_t n;

	if (f == NULL || gate_milter_msg_write(m, f) != 0 || fseek(f, 0, SEEK_SET) != 0)
		return NULL;
	n = fread(out, 1, sizeof out - 1, f);
	out[n] = 0;
	fclose(f);
	return out;
}

TEST(message_roundtrip)
{
	const char *text = "From: a@b\r\nSubject: one\r\n two\r\nX-Empty:\r\n\r\nbody\r\n.line\r\n";
	struct gate_milter_msg m;
	const char *why = NULL;
	FILE *f = mem(text);

	EXPECT(f != NULL);
	EXPECT_INT(gate_milter_msg_read(&m, f, &why), 0);
	EXPECT_INT(m.nhdr, 3);
	EXPECT_STR(m.hdr[1].name, "Subject");
	EXPECT_STR(m.hdr[1].value, " one\n two");
	EXPECT_STR(m.hdr[2].value, "");
	EXPECT_INT(m.had_blank, 1);
	EXPECT_STR(dump(&m), text);
	gate_milter_msg_free(&m);
	fclose(f);

	/* blanks before the colon are kept byte for byte */
	f = mem("Subject : spaced\r\n\r\nb\r\n");
	EXPECT_INT(gate_milter_msg_read(&m, f, &why), 0);
	EXPECT_STR(m.hdr[0].name, "Subject ");
	EXPECT_INT(gm_name_len(m.hdr[0].name), 7);
	EXPECT_STR(dump(&m), "Subject : spaced\r\n\r\nb\r\n");
	gate_milter_msg_free(&m);
	fclose(f);

	/* no empty line: the body starts at the first non-header line */
	f = mem("Subject: x\r\nnot a header line\r\n");
	EXPECT_INT(gate_milter_msg_read(&m, f, &why), 0);
	EXPECT_INT(m.nhdr, 1);
	EXPECT_INT(m.had_blank, 0);
	EXPECT_STR(dump(&m), "Subject: x\r\nnot a header line\r\n");
	gate_milter_msg_free(&m);
	fclose(f);

	/* headers only, no body */
	f = mem("Subject: x\r\n");
	EXPECT_INT(gate_milter_msg_read(&m, f, &why), 0);
	EXPECT_STR(dump(&m), "Subject: x\r\n");
	gate_milter_msg_free(&m);
	fclose(f);
}

struct lines_acc {
	char	buf[300000];
	size_t	len;
	int	calls, bols;
};

static int
lines_cb(void *arg, const char *p, size_t n, int bol)
{
	struct lines_acc *a = arg;

	if (a->len + n >= sizeof a->buf)
		return 7;
	memcpy(a->buf + a->len, p, n);
	a->len += n;
	a->buf[a->len] = 0;
	a->calls++;
	a->bols += bol;
	return 0;
}

TEST(message_lines)
{
	const char *text = "From: a@b\r\nSubject: one\r\n two\r\n\r\nbody\r\n.dot\r\n";
	static struct lines_acc a;	/* test-only, large */
	struct gate_milter_msg m;
	const char *why = NULL;
	FILE *f = mem(text);

	EXPECT_INT(gate_milter_msg_read(&m, f, &why), 0);
	memset(&a, 0, sizeof a);
	EXPECT_INT(gate_milter_msg_lines(&m, lines_cb, &a), 0);
	EXPECT_STR(a.buf, text);
	EXPECT_INT(a.calls, 6);		/* From, Subject, fold, blank, 2 body lines */
	EXPECT_INT(a.bols, 6);
	gate_milter_msg_free(&m);
	fclose(f);

	/* a 100 000-byte body line comes in pieces, bol only on the first */
	f = tmpfile();
	fputs("Subject: long\r\n\r\n", f);
	for (int i = 0; i < 100000; i++)
		fputc('x', f);
	fputs("\r\nend\r\n", f);
	fseek(f, 0, SEEK_SET);
	EXPECT_INT(gate_milter_msg_read(&m, f, &why), 0);
	memset(&a, 0, sizeof a);
	EXPECT_INT(gate_milter_msg_lines(&m, lines_cb, &a), 0);
	EXPECT_INT(a.len, strlen("Subject: long\r\n\r\n") + 100002 + 5);
	EXPECT_INT(a.calls, 5);		/* header, blank, 2 pieces, end */
	EXPECT_INT(a.bols, 4);
	gate_milter_msg_free(&m);
	fclose(f);
}

TEST(spool)
{
	struct gate_milter_spool sp;
	char buf[64];
	FILE *f;
	size_t n;

	EXPECT_INT(gate_milter_spool_init(&sp, 16), 0);
	EXPECT_INT(sp.on_disk, 0);
	EXPECT_INT(gate_milter_spool_write(&sp, "0123456789", 10), 0);
	EXPECT_INT(sp.on_disk, 0);
	EXPECT_INT(gate_milter_spool_write(&sp, "abcdefghij", 10), 0);
	EXPECT_INT(sp.on_disk, 1);		/* over 16 bytes: moved to a file */
	EXPECT_INT(gate_milter_spool_write(&sp, "XYZ", 3), 0);
	EXPECT((f = gate_milter_spool_done(&sp)) != NULL);
	n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = 0;
	EXPECT_STR(buf, "0123456789abcdefghijXYZ");
	gate_milter_spool_free(&sp);
}

TEST(body_replacement)
{
	struct gm_mods x;
	char buf[128];
	size_t n;

	memset(&x, 0, sizeof x);
	EXPECT(gm_body_chunk(&x, (const unsigned char *)"a\nb\r", 4, 1000) == NULL);
	EXPECT(gm_body_chunk(&x, (const unsigned char *)"\nc", 2, 1000) == NULL);
	EXPECT(gm_body_finish(&x) == NULL);
	EXPECT_INT(fseek(x.body, 0, SEEK_SET), 0);
	n = fread(buf, 1, sizeof buf - 1, x.body);
	buf[n] = 0;
	EXPECT_STR(buf, "a\r\nb\r\nc\r\n");
	gm_mods_free(&x);

	memset(&x, 0, sizeof x);
	EXPECT_STR(gm_body_chunk(&x, (const unsigned char *)"a\rb", 3, 1000),
	    "bare CR in replaced body");
	gm_mods_free(&x);

	memset(&x, 0, sizeof x);
	EXPECT_STR(gm_body_chunk(&x, (const unsigned char *)"0123456789", 10, 5),
	    "replaced body larger than the limit");
	gm_mods_free(&x);
}

TEST(no_milters)
{
	struct gate_milter_set set = { NULL, 0, 0, NULL };
	struct gate_milter_session *s = gate_milter_session_new(&set, "t", NULL, NULL);
	char reply[GATE_MILTER_REPLY_MAX];

	EXPECT(s != NULL);
	EXPECT_INT(gate_milter_count(s), 0);
	EXPECT_INT(gate_milter_connect(s, NULL, NULL, reply, sizeof reply), GMV_CONTINUE);
	EXPECT_INT(gate_milter_mail(s, "a@b", NULL, reply, sizeof reply), GMV_CONTINUE);
	EXPECT_STR(reply, "");
	gate_milter_session_free(s);
}

TEST(unreachable_default_action)
{
	struct gate_milter_conf c = { .spec = (char *)"inet:127.0.0.1:1", .family = AF_INET,
		.default_action = GMD_REJECT, .connect_timeout = 1, .command_timeout = 1,
		.eom_timeout = 1 };
	struct gate_milter_set set = { &c, 1, 1 << 20, NULL };
	struct gate_milter_session *s;
	char reply[GATE_MILTER_REPLY_MAX];

	snprintf(c.ep.host, sizeof c.ep.host, "127.0.0.1");
	snprintf(c.ep.port, sizeof c.ep.port, "1");
	log_init("test", 1);
	s = gate_milter_session_new(&set, "t", NULL, NULL);
	EXPECT_INT(gate_milter_connect(s, NULL, NULL, reply, sizeof reply), GMV_REJECT);
	EXPECT_STR(reply, "550 5.7.1 Command rejected");
	/* and at every later stage */
	EXPECT_INT(gate_milter_rcpt(s, "a@b", NULL, reply, sizeof reply), GMV_REJECT);
	gate_milter_session_free(s);
	c.default_action = GMD_ACCEPT;
	s = gate_milter_session_new(&set, "t", NULL, NULL);
	EXPECT_INT(gate_milter_connect(s, NULL, NULL, reply, sizeof reply), GMV_CONTINUE);
	EXPECT_INT(gate_milter_data(s, reply, sizeof reply), GMV_CONTINUE);
	gate_milter_session_free(s);
}

/* A session's milter 0 holding one end of a socketpair, as after an EOM
 * answered `continue` on a protocol 6 connection. */
static struct gate_milter_session *
pool_session(struct gate_milter_set *set, int fd)
{
	struct gate_milter_session *s = gate_milter_session_new(set, "t", NULL, NULL);

	if (s == NULL)
		FAILF("out of memory");
	s->m[0].c.fd = fd;
	s->m[0].c.version = 6;
	s->m[0].state = GS_ENVELOPE;
	s->m[0].reusable = 1;
	return s;
}

TEST(pool_reuse)
{
	struct gate_milter_conf c = { .spec = (char *)"unix:/x", .family = AF_UNIX,
		.default_action = GMD_TEMPFAIL, .connect_timeout = 1, .command_timeout = 1,
		.eom_timeout = 1 };
	struct gate_milter_set set = { &c, 1, 1 << 20, gm_pool_new(1) };
	struct gate_milter_session *s;
	unsigned char k[5];
	int sv[2];

	EXPECT(set.pool != NULL);
	EXPECT_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	/* session end: QUIT_NC, the connection parked */
	s = pool_session(&set, sv[0]);
	gate_milter_session_free(s);
	EXPECT_INT(set.pool->nidle[0], 1);
	EXPECT_INT(read(sv[1], k, sizeof k), 5);
	EXPECT(memcmp(k, "\0\0\0\1K", 5) == 0);
	/* the next session takes it: same socket, nothing negotiated again */
	s = gate_milter_session_new(&set, "t", NULL, NULL);
	EXPECT_INT(gm_pool_take(s, 0, &s->m[0]), 0);
	EXPECT_INT(s->m[0].c.fd, sv[0]);
	EXPECT_INT(s->m[0].c.version, 6);
	EXPECT_INT(set.pool->nidle[0], 0);
	/* not reusable (e.g. the milter answered accept at EOM): QUIT, closed */
	s->m[0].state = GS_ENVELOPE;
	gate_milter_session_free(s);
	EXPECT_INT(set.pool->nidle[0], 0);
	EXPECT_INT(read(sv[1], k, sizeof k), 5);
	EXPECT_INT(k[4], 'Q');
	EXPECT_INT(read(sv[1], k, sizeof k), 0);	/* closed */
	close(sv[1]);
	/* a parked connection the milter wrote to (or closed) is dropped */
	EXPECT_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	gate_milter_session_free(pool_session(&set, sv[0]));
	EXPECT_INT(set.pool->nidle[0], 1);
	close(sv[1]);
	s = gate_milter_session_new(&set, "t", NULL, NULL);
	EXPECT_INT(gm_pool_take(s, 0, &s->m[0]), -1);
	EXPECT_INT(set.pool->nidle[0], 0);
	gate_milter_session_free(s);
	/* protocol 2: never parked */
	EXPECT_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	s = pool_session(&set, sv[0]);
	s->m[0].c.version = 2;
	gate_milter_session_free(s);
	EXPECT_INT(set.pool->nidle[0], 0);
	close(sv[1]);
	gm_pool_free(set.pool);
}

int
main(void)
{
	RUN(packet_ok);
	RUN(packet_bad);
	RUN(fields);
	RUN(header_values);
	RUN(y_replies);
	RUN(specs);
	RUN(config);
	RUN(message_roundtrip);
	RUN(message_lines);
	RUN(spool);
	RUN(body_replacement);
	RUN(no_milters);
	RUN(unreachable_default_action);
	RUN(pool_reuse);
	return unit_done();
}

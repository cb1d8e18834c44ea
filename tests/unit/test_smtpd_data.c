/*
 * test_smtpd_data — lib/smtpd's message readers (lib/smtpd_data.c) against
 * the rule set (docs/smtpd.md): DATA dot-unstuffing, the end at CRLF.CRLF
 * only (a "." after a bare LF or CR is text: no SMTP smuggling), bare CR/LF
 * -> 550 5.6.0 after the client's end with data_end never called, size ->
 * 552 5.3.4 (the hook never gets more than the limit), a message the
 * program refuses to open, the client lost or timed out inside a message,
 * and BDAT chunks with CHUNKING on (CRLF across chunks, no unstuffing, 501,
 * the bare-CR at the end of LAST, 552 per message and per oversized chunk)
 * and off (500). The toy program and the client: smtpd_toy.h.
 */
#include "smtpd_toy.h"
#include "log.h"

/* ------------------------------------------------------------ DATA */

TEST(data_unstuffing)
{
	struct smtpd_conf conf = toy_conf();
	struct toy t;
	const char *out = SESSION(&t, &conf, HELLO "DATA\r\n..leading\r\n...\r\n.x\r\n"
	    ". \r\nmid.dle\r\n\r\n.\r\n" "MAIL FROM:<a@b.test>\r\nRCPT TO:<u@t.test>\r\nDATA\r\n.\r\n");

	EXPECT_REPLIES(out, HELLO_R, SMTPD_354, "250 2.0.0 Ok: queued as 1",
	    "250 2.1.0 Ok", "250 2.1.5 Ok", SMTPD_354, "250 2.0.0 Ok: queued as 2");
	EXPECT_MSG(&t, 0, ".leading\r\n..\r\nx\r\n \r\nmid.dle\r\n\r\n");
	EXPECT_MSG(&t, 1, "");
}

/* SMTP smuggling: only CRLF.CRLF ends a message; a "." line after a bare
 * LF (or CR) is text, and the message is refused for its bare line end
 * once the client's real end comes. */
TEST(data_end_only_at_crlf_dot_crlf)
{
	static const struct { const char *name, *body, *reply; enum smtpd_msg_fault why; } c[] = {
		{ "lf-dot-crlf", "hello\n.\r\nMAIL FROM:<x@y.test>\r\n", "550 5.6.0 Message contains bare LF; lines must end in CRLF", SMTPD_MSG_BARE_LF },
		{ "lf-dot-lf", "hello\n.\nMAIL FROM:<x@y.test>\r\n", "550 5.6.0 Message contains bare LF; lines must end in CRLF", SMTPD_MSG_BARE_LF },
		{ "crlf-dot-lf", "hello\r\n.\nRCPT TO:<x@y.test>\r\n", "550 5.6.0 Message contains bare LF; lines must end in CRLF", SMTPD_MSG_BARE_LF },
		{ "cr-dot-cr", "hello\r.\rMAIL FROM:<x@y.test>\r\n", "550 5.6.0 Message contains bare CR; lines must end in CRLF", SMTPD_MSG_BARE_CR },
		{ "cr-dot-crlf", "hello\r.\r\nRSET\r\n", "550 5.6.0 Message contains bare CR; lines must end in CRLF", SMTPD_MSG_BARE_CR },
		{ "bare-cr-mid", "a\rb\r\n", "550 5.6.0 Message contains bare CR; lines must end in CRLF", SMTPD_MSG_BARE_CR },
	};

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct smtpd_conf conf = toy_conf();
		char in[512];
		struct toy t;
		const char *out;
		int n = snprintf(in, sizeof(in), HELLO "DATA\r\n%s.\r\nMAIL FROM:<a@b.test>\r\n", c[i].body);

		out = session(&t, &conf, in, (size_t)n, 1);
		EXPECT_REPLIES(out, HELLO_R, SMTPD_354, c[i].reply, "250 2.1.0 Ok");
		EXPECT_INT(t.ends, 0);
		EXPECT_INT(t.aborts, 1);
		EXPECT_INT(t.abort_why, c[i].why);
		EXPECT_INT(t.e.errors, 1);
		EXPECT_INT(t.resets_done, 1);
		if (unit_case_failed)
			fprintf(stderr, "  (case %s)\n", c[i].name);
	}
}

TEST(data_size_limit)
{
	struct smtpd_conf conf = toy_conf();
	char in[4096], body[2048];
	struct toy t;
	const char *out;
	int n;

	conf.size_limit = 1000;
	for (int i = 0; i < 10; i++)	/* 10 lines of 100 bytes: 1000 */
		snprintf(body + i * 100, sizeof(body) - (size_t)i * 100, "%098d\r\n", i);
	n = snprintf(in, sizeof(in), HELLO "DATA\r\n%s.\r\n" "MAIL FROM:<a@b.test>\r\n"
	    "RCPT TO:<u@t.test>\r\nDATA\r\nx%s.\r\nNOOP\r\n", body, body);	/* 1001 */
	out = session(&t, &conf, in, (size_t)n, 1);
	EXPECT_REPLIES(out, HELLO_R, SMTPD_354, "250 2.0.0 Ok: queued as 1", "250 2.1.0 Ok",
	    "250 2.1.5 Ok", SMTPD_354, "552 5.3.4 Message size exceeds fixed limit", "250 2.0.0 Ok");
	EXPECT_INT(t.ends, 1);
	EXPECT_INT(t.endedlen[0], 1000);
	EXPECT_INT(t.aborts, 1);
	EXPECT_INT(t.abort_why, SMTPD_MSG_TOO_BIG);
	EXPECT(t.msglen <= 1000);	/* the data hook never got more */
}

TEST(data_refused_by_program)
{
	struct smtpd_conf conf = toy_conf();
	struct client c;
	struct toy t;
	static const char in[] = HELLO "DATA\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@t.test>\r\n"
	    "BDAT 3\r\nabcBDAT 2 LAST\r\nxyMAIL FROM:<a@b.test>\r\n";

	client_once(&c, in, sizeof(in) - 1, 1);
	c.refuse_data = 1;
	converse(&t, &conf, &c, NULL);
	/* DATA: the program's refusal ends the transaction; BDAT: 452 per chunk */
	EXPECT_REPLIES(c.out, HELLO_R, "451 4.3.0 Not now", "250 2.1.0 Ok", "250 2.1.5 Ok",
	    "452 4.3.1 Insufficient system storage", "452 4.3.1 Insufficient system storage",
	    "250 2.1.0 Ok");
	EXPECT_INT(t.begins, 2);
	EXPECT_INT(t.ends, 0);
	EXPECT_INT(t.msglen, 0);
	EXPECT_INT(t.resets_done, 2);
}

TEST(data_client_lost)
{
	struct smtpd_conf conf = toy_conf();
	struct toy t;
	const char *out = SESSION(&t, &conf, HELLO "DATA\r\nhalf a message\r\n");

	EXPECT_REPLIES(out, HELLO_R, SMTPD_354);
	EXPECT_INT(t.ends, 0);
	EXPECT_INT(t.aborts, 1);
	EXPECT_INT(t.abort_why, SMTPD_MSG_LOST);
	EXPECT_INT(t.e.end, SMTPD_END_LOST);
}

/* ------------------------------------------------------------ BDAT */

TEST(bdat_chunks)
{
	struct smtpd_conf conf = toy_conf();
	struct toy t;
	const char *out = SESSION(&t, &conf, HELLO "BDAT 5\r\nhelloBDAT 10\r\n\r\n.\r\n..x\r\nBDAT 0 LAST\r\n"
	    "MAIL FROM:<a@b.test>\r\nRCPT TO:<u@t.test>\r\nBDAT 3\r\nab\rBDAT 1 last\r\n\n"
	    "MAIL FROM:<a@b.test>\r\nRCPT TO:<u@t.test>\r\nbdat 6 LAST\r\nDATA\r\nQUIT\r\n");

	EXPECT_REPLIES(out, HELLO_R, "250 2.0.0 5 octets received", "250 2.0.0 10 octets received",
	    "250 2.0.0 Ok: queued as 1", "250 2.1.0 Ok", "250 2.1.5 Ok",
	    "250 2.0.0 3 octets received", "250 2.0.0 Ok: queued as 2",
	    "250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.0.0 Ok: queued as 3", "221 2.0.0 Bye");
	EXPECT_MSG(&t, 0, "hello\r\n.\r\n..x\r\n");	/* BDAT: no unstuffing */
	EXPECT_MSG(&t, 1, "ab\r\n");	/* CR LF across two chunks */
	EXPECT_MSG(&t, 2, "DATA\r\n");
	EXPECT_INT(t.begins, 3);
}

TEST(bdat_bad)
{
	struct smtpd_conf conf = toy_conf();
	char in[4096];
	struct toy t;
	const char *out;
	int n;

	conf.size_limit = 1000;
	n = snprintf(in, sizeof(in), HELLO "BDAT x\r\nBDAT 3 FOO\r\nBDAT -1\r\nBDAT 4 LAST\r\na\nbc"
	    "MAIL FROM:<a@b.test>\r\nRCPT TO:<u@t.test>\r\nBDAT 3 LAST\r\nab\r"
	    "MAIL FROM:<a@b.test>\r\nRCPT TO:<u@t.test>\r\nBDAT 600\r\n%0598d\r\n"
	    "BDAT 600 LAST\r\n%0598d\r\nNOOP\r\nBDAT 2000000\r\nNOOP\r\n", 1, 2);
	out = session(&t, &conf, in, (size_t)n, 1);
	EXPECT_REPLIES(out, HELLO_R, "501 5.5.4 Syntax: BDAT size [LAST]",
	    "501 5.5.4 Syntax: BDAT size [LAST]", "501 5.5.4 Syntax: BDAT size [LAST]",
	    "550 5.6.0 Message contains bare LF; lines must end in CRLF",
	    "250 2.1.0 Ok", "250 2.1.5 Ok",
	    "550 5.6.0 Message contains bare CR; lines must end in CRLF",
	    "250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.0.0 600 octets received",
	    "552 5.3.4 Message size exceeds fixed limit", "250 2.0.0 Ok",
	    "552 5.3.4 Message size exceeds fixed limit");
	EXPECT_INT(t.ends, 0);
	EXPECT_INT(t.aborts, 3);
	EXPECT_INT(t.abort_why, SMTPD_MSG_TOO_BIG);
	EXPECT(t.msglen <= 1000);
}

TEST(bdat_without_chunking)
{
	struct smtpd_conf conf = toy_conf();
	struct toy t;
	const char *out;

	conf.chunking = 0;
	out = SESSION(&t, &conf, HELLO "BDAT 4 LAST\r\nNOOP\r\nQUIT\r\n");
	EXPECT(strstr(out, "CHUNKING") == NULL);
	/* the chunk is not a chunk: "NOOP" is a command */
	EXPECT_REPLIES(out, HELLO_R, "500 5.5.2 Command unrecognized", "250 2.0.0 Ok", "221 2.0.0 Bye");
	EXPECT_INT(t.begins, 0);
}

/* ------------------------------------------------------------ timeouts */

TEST(timeout_data)
{
	struct smtpd_conf conf = toy_conf();
	struct toy t;
	static const char in[] = HELLO "DATA\r\nsome text\r\n";
	const char *out;

	conf.timeout_data = 1;
	out = session(&t, &conf, in, sizeof(in) - 1, 0);
	EXPECT_REPLIES(out, HELLO_R, SMTPD_354, "421 4.4.2 t.test Error: timeout exceeded");
	EXPECT_INT(t.e.end, SMTPD_END_TIMEOUT);
	EXPECT_INT(t.ends, 0);
	EXPECT_INT(t.abort_why, SMTPD_MSG_LOST);
}

int main(void)
{
	log_init("test_smtpd_data", 1);
	signal(SIGPIPE, SIG_IGN);
	RUN(data_unstuffing);
	RUN(data_end_only_at_crlf_dot_crlf);
	RUN(data_size_limit);
	RUN(data_refused_by_program);
	RUN(data_client_lost);
	RUN(bdat_chunks);
	RUN(bdat_bad);
	RUN(bdat_without_chunking);
	RUN(timeout_data);
	return unit_done();
}

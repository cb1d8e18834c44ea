/*
 * test_smtpd — lib/smtpd, the SMTP server engine of the gate and the relay,
 * against its rule set (docs/smtpd.md): EHLO capabilities and the small
 * commands, one reply per command in pipelined groups (and flushed before
 * the engine waits), the 503 sequence replies, the line rules (500/501),
 * the error limit and the program's error hook (421), MAIL/RCPT parameters
 * and addresses (555/552/553/452), STARTTLS (502 without a certificate;
 * with one: pipelined plaintext discarded, EHLO again, 503 when active),
 * AUTH framing, the command and session timeouts (421) and the engine's
 * log lines. The message readers are in test_smtpd_data.c; the toy program
 * and the client in smtpd_toy.h.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "smtpd_toy.h"
#include "log.h"

/* ------------------------------------------------------------ EHLO, others */

TEST(ehlo_capabilities)
{
	struct smtpd_conf conf = toy_conf();
	struct toy t;
	const char *out = SESSION(&t, &conf, "EHLO c.test\r\nHELO c.test\r\nQUIT\r\n");

	EXPECT_STR(out, "220 t.test ESMTP\r\n"
	    "250-t.test\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-8BITMIME\r\n"
	    "250-SMTPUTF8\r\n250-CHUNKING\r\n250 ENHANCEDSTATUSCODES\r\n"
	    "250 t.test\r\n221 2.0.0 Bye\r\n");
	EXPECT_INT(t.e.end, SMTPD_END_QUIT);
	EXPECT_STR(t.e.helo, "c.test");
	EXPECT_INT(t.e.esmtp, 0);

	conf.chunking = conf.smtputf8 = 0;
	conf.dsn = 1;
	out = SESSION(&t, &conf, "EHLO c.test\r\n");
	EXPECT_STR(out, "220 t.test ESMTP\r\n"
	    "250-t.test\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-8BITMIME\r\n"
	    "250-DSN\r\n250 ENHANCEDSTATUSCODES\r\n");
	EXPECT_INT(t.e.end, SMTPD_END_LOST);
}

TEST(others)
{
	struct smtpd_conf conf = toy_conf();
	struct toy t;
	const char *out = SESSION(&t, &conf, "NOOP\r\nNOOP anything\r\nRSET\r\nVRFY u\r\n"
	    "EXPN list\r\nHELP\r\nHELP MAIL\r\nEHLO c.test\r\nAUTH PLAIN\r\nQUIT\r\nNOOP\r\n");

	EXPECT_REPLIES(out, "250 2.0.0 Ok", "250 2.0.0 Ok", "250 2.0.0 Ok",
	    "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery",
	    "502 5.5.1 EXPN not available",
	    "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY",
	    "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY",
	    "250 ENHANCEDSTATUSCODES", "500 5.5.2 Command unrecognized", "221 2.0.0 Bye");
	conf.chunking = 0;
	out = SESSION(&t, &conf, "HELP\r\n");
	EXPECT_REPLIES(out, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT HELP VRFY");
}

TEST(helo_refused_by_program)
{
	struct smtpd_conf conf = toy_conf();
	struct toy t;
	const char *out = SESSION(&t, &conf, "EHLO refuse.test\r\nMAIL FROM:<a@b.test>\r\n"
	    "HELO c.test\r\nEHLO refuse.test\r\nMAIL FROM:<a@b.test>\r\n");

	EXPECT_REPLIES(out, "550 5.7.1 HELO refused", "503 5.5.1 Send EHLO first",
	    "250 t.test", "550 5.7.1 HELO refused", "250 2.1.0 Ok");
	EXPECT_STR(t.e.helo, "c.test");		/* the previous name is kept */
}

TEST(session_refused_by_program)
{
	struct smtpd_conf conf = toy_conf();
	struct client c;
	struct toy t;
	static const char in[] = "EHLO c.test\r\nNOOP\r\nMAIL FROM:<a@b.test>\r\nRSET\r\nQUIT\r\n";

	client_once(&c, in, sizeof(in) - 1, 1);
	converse(&t, &conf, &c, "554 5.7.1 Go away");
	EXPECT_REPLIES(c.out, "554 5.7.1 Go away", "250 2.0.0 Ok", "554 5.7.1 Go away",
	    "250 2.0.0 Ok", "221 2.0.0 Bye");
	EXPECT_INT(t.e.errors, 2);
}

TEST(starttls_without_certificate)
{
	struct smtpd_conf conf = toy_conf();
	struct toy t;
	const char *out = SESSION(&t, &conf, "EHLO c.test\r\nSTARTTLS\r\nSTARTTLS now\r\nNOOP\r\n");

	EXPECT(strstr(out, "STARTTLS\r\n") == NULL);	/* not advertised */
	EXPECT_REPLIES(out, "250 ENHANCEDSTATUSCODES", "502 5.5.1 STARTTLS not available",
	    "501 5.5.4 Syntax: STARTTLS takes no argument", "250 2.0.0 Ok");
	EXPECT_INT(t.e.tls, 0);
}

TEST(starttls_in_transaction)
{
	struct smtpd_conf conf = toy_conf();
	struct toy t;
	const char *out;

	conf.tls = SSL_CTX_new(TLS_server_method());	/* offered; never reached */
	EXPECT(conf.tls != NULL);
	out = SESSION(&t, &conf, "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nSTARTTLS\r\nQUIT\r\n");
	EXPECT(strstr(out, "250-STARTTLS\r\n") != NULL);
	EXPECT_REPLIES(out, "250 ENHANCEDSTATUSCODES", "250 2.1.0 Ok",
	    "503 5.5.1 STARTTLS not allowed in a transaction", "221 2.0.0 Bye");
	SSL_CTX_free(conf.tls);
}

/* A server context with a fresh self-signed P-256 certificate for t.test. */
static SSL_CTX *tls_server_ctx(void)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	X509_NAME *name;

	if (key == NULL || x == NULL || ctx == NULL)
		abort();
	name = X509_get_subject_name(x);
	if (X509_set_version(x, 2) != 1 || ASN1_INTEGER_set(X509_get_serialNumber(x), 1) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), 0) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 3600) == NULL || X509_set_pubkey(x, key) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"t.test",
	    -1, -1, 0) != 1 || X509_set_issuer_name(x, name) != 1 ||
	    X509_sign(x, key, EVP_sha256()) == 0 || SSL_CTX_use_certificate(ctx, x) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, key) != 1)
		abort();
	X509_free(x);
	EVP_PKEY_free(key);
	return ctx;
}

/* Plaintext: EHLO, STARTTLS and a pipelined NOOP in one write (the NOOP must
 * be discarded), then after the 220 a TLS handshake (or, with c->eof set,
 * garbage instead of it) and over TLS: MAIL before EHLO, EHLO, STARTTLS,
 * QUIT. Every reply, plain and TLS, lands in c->out. */
static void tls_client(struct client *c)
{
	static const char plain[] = "EHLO c.test\r\nSTARTTLS\r\nNOOP\r\n";
	static const char secure[] = "MAIL FROM:<a@b.test>\r\nEHLO c.test\r\nSTARTTLS\r\nQUIT\r\n";
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl;
	int n;

	if (write(c->fd, plain, sizeof(plain) - 1) != (ssize_t)sizeof(plain) - 1)
		abort();
	while (strstr(c->out, "220 2.0.0 ") == NULL)
		if (client_read(c) != 0)
			goto done;
	if (c->eof) {	/* not TLS: the handshake fails */
		if (write(c->fd, "HELLO\r\n\r\n", 9) != 9)
			abort();
		while (client_read(c) == 0)
			;
		goto done;
	}
	if (ctx == NULL || (ssl = SSL_new(ctx)) == NULL || SSL_set_fd(ssl, c->fd) != 1)
		abort();
	if (SSL_connect(ssl) == 1 && SSL_write(ssl, secure, sizeof(secure) - 1) > 0)
		while ((n = SSL_read(ssl, c->out + c->outlen, (int)(sizeof(c->out) - 1 - c->outlen))) > 0)
			c->out[c->outlen += (size_t)n] = '\0';
	SSL_free(ssl);
done:
	SSL_CTX_free(ctx);
}

TEST(starttls)
{
	struct smtpd_conf conf = toy_conf();
	struct client c;
	struct toy t;

	conf.tls = tls_server_ctx();
	memset(&c, 0, sizeof(c));
	c.run = tls_client;
	converse(&t, &conf, &c, NULL);
	EXPECT(strstr(c.out, "250-STARTTLS\r\n") != NULL);
	/* no reply to the NOOP; after TLS the state is reset: EHLO again, and
	 * STARTTLS is no longer offered */
	EXPECT_REPLIES(c.out, "250 ENHANCEDSTATUSCODES", "220 2.0.0 Ready to start TLS",
	    "503 5.5.1 Send EHLO first", "250 ENHANCEDSTATUSCODES", "503 5.5.1 TLS already active",
	    "221 2.0.0 Bye");
	EXPECT(strstr(strstr(c.out, "220 2.0.0 "), "STARTTLS\r\n") == NULL);
	EXPECT_INT(t.e.tls, 1);
	EXPECT(t.e.tls_version[0] != '\0' && t.e.tls_cipher[0] != '\0');
	EXPECT_INT(t.tls_begun, 1);
	EXPECT_INT(t.tls_ok, 1);
	EXPECT_INT(t.e.errors, 2);

	memset(&c, 0, sizeof(c));
	c.run = tls_client;
	c.eof = 1;	/* the client does not speak TLS */
	converse(&t, &conf, &c, NULL);
	EXPECT_REPLIES(c.out, "250 ENHANCEDSTATUSCODES", "220 2.0.0 Ready to start TLS");
	EXPECT_INT(t.e.tls, 0);
	EXPECT_INT(t.tls_ok, 0);
	EXPECT_INT(t.e.state, SMTPD_QUIT);
	SSL_CTX_free(conf.tls);
}

/* AUTH framing: the engine checks state and argument, the exchange is the
 * program's (here: one line, 235 for "PLAIN good", else 535). */
static void toy_auth(void *ctx, const char *args)
{
	struct toy *t = ctx;

	(void)smtpd_reply(&t->e, strcmp(args, "PLAIN good") == 0 ?
	    "235 2.7.0 Authentication successful" : "535 5.7.8 Authentication credentials invalid");
}

static const char *toy_auth_offer(void *ctx)
{
	(void)ctx;
	return "PLAIN LOGIN";
}

TEST(auth_framing)
{
	struct smtpd_hooks hooks = toy_hooks;
	struct smtpd_conf conf = toy_conf();
	static const char in[] = "AUTH PLAIN good\r\nEHLO c.test\r\nAUTH\r\nAUTH PLAIN bad\r\n"
	    "AUTH PLAIN good\r\nMAIL FROM:<a@b.test>\r\nAUTH PLAIN good\r\nHELP\r\n";
	struct client c;
	struct toy t;

	hooks.auth = toy_auth;
	hooks.auth_offer = toy_auth_offer;
	client_once(&c, in, sizeof(in) - 1, 1);
	c.hooks = &hooks;
	converse(&t, &conf, &c, NULL);
	EXPECT(strstr(c.out, "\r\n250-AUTH PLAIN LOGIN\r\n250 ENHANCEDSTATUSCODES\r\n") != NULL);
	EXPECT_REPLIES(c.out, "503 5.5.1 Send EHLO first", "250 ENHANCEDSTATUSCODES",
	    "501 5.5.4 Syntax: AUTH needs an argument", "535 5.7.8 Authentication credentials invalid",
	    "235 2.7.0 Authentication successful", "250 2.1.0 Ok", "503 5.5.1 Bad sequence of commands",
	    "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY AUTH");
}

/* ------------------------------------------------------------ pipelining */

TEST(pipelined_groups)
{
	struct smtpd_conf conf = toy_conf();
	struct toy t;
	const char *out = SESSION(&t, &conf,
	    "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@t.test>\r\nRCPT TO:<refuse@t.test>\r\n"
	    "RCPT TO:<v@t.test>\r\nDATA\r\nSubject: 1\r\n\r\nfirst\r\n.\r\n"
	    "MAIL FROM:<refuse@b.test>\r\nMAIL FROM:<>\r\nRCPT TO:<w@t.test>\r\nDATA\r\n"
	    "second\r\n.\r\nNOOP\r\nQUIT\r\n");

	EXPECT_REPLIES(out, "250 ENHANCEDSTATUSCODES", "250 2.1.0 Ok", "250 2.1.5 Ok",
	    "550 5.1.1 Recipient refused", "250 2.1.5 Ok", SMTPD_354, "250 2.0.0 Ok: queued as 1",
	    "550 5.7.1 Sender refused", "250 2.1.0 Ok", "250 2.1.5 Ok", SMTPD_354,
	    "250 2.0.0 Ok: queued as 2", "250 2.0.0 Ok", "221 2.0.0 Bye");
	EXPECT_MSG(&t, 0, "Subject: 1\r\n\r\nfirst\r\n");
	EXPECT_MSG(&t, 1, "second\r\n");
	EXPECT_INT(t.resets_done, 2);
}

/* Replies go out before the engine waits: a client that sends one
 * command and waits for its reply is answered. */
TEST(replies_flushed_before_wait)
{
	struct smtpd_conf conf = toy_conf();
	struct client c;
	struct toy t;

	memset(&c, 0, sizeof(c));
	c.part[0] = "EHLO c.test\r\n";
	c.part[1] = "MAIL FROM:<a@b.test>\r\nRCPT TO:<u@t.test>\r\n";
	c.after[1] = 2;
	c.part[2] = "DATA\r\n";
	c.after[2] = 4;
	c.part[3] = "x\r\n.\r\nQUIT\r\n";
	c.after[3] = 5;
	for (int i = 0; i < PARTS; i++)
		c.len[i] = strlen(c.part[i]);
	c.eof = 1;
	converse(&t, &conf, &c, NULL);
	EXPECT_REPLIES(c.out, "250 ENHANCEDSTATUSCODES", "250 2.1.0 Ok", "250 2.1.5 Ok",
	    SMTPD_354, "250 2.0.0 Ok: queued as 1", "221 2.0.0 Bye");
	EXPECT_MSG(&t, 0, "x\r\n");
}

/* ------------------------------------------------------------ sequence */

TEST(sequence_503)
{
	struct smtpd_conf conf = toy_conf();
	struct toy t;
	const char *out = SESSION(&t, &conf,
	    "MAIL FROM:<a@b.test>\r\nRCPT TO:<u@t.test>\r\nDATA\r\n"
	    "EHLO c.test\r\nRCPT TO:<u@t.test>\r\nDATA\r\n"
	    "MAIL FROM:<a@b.test>\r\nMAIL FROM:<a@b.test>\r\nDATA\r\n"
	    "RCPT TO:<refuse@t.test>\r\nDATA\r\nRCPT TO:<u@t.test>\r\n"
	    "BDAT 3\r\nabcDATA\r\nEHLO c.test\r\nRSET\r\nBDAT 2\r\nxyNOOP\r\n");

	EXPECT_REPLIES(out, "503 5.5.1 Send EHLO first", "503 5.5.1 Send EHLO first",
	    "503 5.5.1 Send EHLO first",
	    "250 ENHANCEDSTATUSCODES", "503 5.5.1 Need MAIL first",
	    "503 5.5.1 Need MAIL and RCPT first",
	    "250 2.1.0 Ok", "503 5.5.1 Nested MAIL command", "554 5.5.1 No valid recipients",
	    "550 5.1.1 Recipient refused", "554 5.5.1 No valid recipients", "250 2.1.5 Ok",
	    "250 2.0.0 3 octets received", "503 5.5.1 DATA not allowed after BDAT",
	    "503 5.5.1 Bad sequence of commands", "250 2.0.0 Ok",
	    "503 5.5.1 Bad sequence of commands", "250 2.0.0 Ok");
	EXPECT_INT(t.resets_abort, 1);
	EXPECT_INT(t.ends, 0);
}

TEST(transaction_resets)
{
	struct smtpd_conf conf = toy_conf();
	struct toy t;
	const char *out = SESSION(&t, &conf, HELLO "RSET\r\nRCPT TO:<u@t.test>\r\n"
	    "MAIL FROM:<a@b.test>\r\nEHLO d.test\r\nRCPT TO:<u@t.test>\r\n");

	EXPECT_REPLIES(out, HELLO_R, "250 2.0.0 Ok", "503 5.5.1 Need MAIL first",
	    "250 2.1.0 Ok", "250 ENHANCEDSTATUSCODES", "503 5.5.1 Need MAIL first");
	EXPECT_INT(t.resets_abort, 2);
	EXPECT_STR(t.e.helo, "d.test");
}

/* ------------------------------------------------------------ lines */

TEST(line_rules)
{
	struct smtpd_conf conf = toy_conf();
	char in[40000];
	struct toy t;
	const char *out;
	size_t n = 0;

	n += (size_t)snprintf(in + n, sizeof(in) - n, "NOOP %01200d\r\nNOOP\r\n", 0);
	memset(in + n, 'A', 30000);	/* longer than the read buffer */
	n += 30000;
	n += (size_t)snprintf(in + n, sizeof(in) - n, "\r\nNOOP\r\nNOOP\nNOOP\rX\r\n");
	memcpy(in + n, "NO\0OP\r\n", 7);
	n += 7;
	/* argument rules where the state allows the command */
	n += (size_t)snprintf(in + n, sizeof(in) - n, "FOO bar\r\nEHLO c.test\r\nMAIL\r\n"
	    "MAIL FROM:<a@b.test>\r\nRCPT \r\nRCPT TO:<u@t.test>\r\nDATA x\r\nRSET x\r\n"
	    "QUIT x\r\nVRFY\r\nBDAT\r\nEHLO\r\nEHLO a\x01" "b\r\nHELO %0300d\r\nRSET\r\n", 0);
	out = session(&t, &conf, in, n, 1);
	EXPECT_REPLIES(out, "500 5.5.2 Line too long", "250 2.0.0 Ok", "500 5.5.2 Line too long",
	    "250 2.0.0 Ok", "501 5.5.2 Bare CR or LF in command; lines must end in CRLF",
	    "501 5.5.2 Bare CR or LF in command; lines must end in CRLF",
	    "500 5.5.2 NUL character in command", "500 5.5.2 Command unrecognized",
	    "250 ENHANCEDSTATUSCODES", "501 5.5.4 Syntax: MAIL needs an argument", "250 2.1.0 Ok",
	    "501 5.5.4 Syntax: RCPT needs an argument", "250 2.1.5 Ok",
	    "501 5.5.4 Syntax: DATA takes no argument",
	    "501 5.5.4 Syntax: RSET takes no argument", "501 5.5.4 Syntax: QUIT takes no argument",
	    "501 5.5.4 Syntax: VRFY needs an argument", "501 5.5.4 Syntax: BDAT needs an argument",
	    "501 5.5.4 Syntax: EHLO needs an argument",
	    "501 5.5.4 Syntax: EHLO hostname", "501 5.5.4 Syntax: hostname too long",
	    "250 2.0.0 Ok");
	EXPECT_INT(t.e.errors, 16);
	EXPECT_INT(t.e.state, SMTPD_HELO);
	EXPECT_INT(t.resets_abort, 1);
}

/* A last line without CRLF before EOF is no command: no reply, unless it
 * is longer than the read buffer (then it is a line too long). */
TEST(unterminated_tail)
{
	struct smtpd_conf conf = toy_conf();
	char in[9100];
	struct toy t;
	const char *out = SESSION(&t, &conf, "EHLO c.test\r\nNOOP");

	EXPECT_REPLIES(out, "250 ENHANCEDSTATUSCODES");
	EXPECT_INT(t.e.end, SMTPD_END_LOST);
	EXPECT_INT(t.e.errors, 0);
	memcpy(in, "NOOP ", 5);
	memset(in + 5, 'x', sizeof(in) - 5);	/* more than the 8 KiB buffer */
	out = session(&t, &conf, in, sizeof(in), 1);
	EXPECT_REPLIES(out, "500 5.5.2 Line too long");
}

TEST(error_limit)
{
	struct smtpd_conf conf = toy_conf();
	struct toy t;
	const char *out;

	conf.max_errors = 3;
	out = SESSION(&t, &conf, "FOO\r\nEHLO c.test\r\nMAIL FROM:<a@b.test> SIZE=99999\r\n"
	    "MAIL FROM:<a@b.test> SIZE=99999\r\nRCPT TO:<x@t.test>\r\nBAR\r\nNOOP\r\nNOOP\r\n");
	/* 552 for SIZE is not an error */
	EXPECT_REPLIES(out, "500 5.5.2 Command unrecognized", "250 ENHANCEDSTATUSCODES",
	    "552 5.3.4 Message size exceeds fixed limit", "552 5.3.4 Message size exceeds fixed limit",
	    "503 5.5.1 Need MAIL first", "500 5.5.2 Command unrecognized",
	    "421 4.7.0 t.test Too many errors, closing");
	EXPECT_INT(t.e.end, SMTPD_END_ERRORS);
	EXPECT_INT(t.e.errors, 3);
}

/* The program's error hook ends the session: the erring command gets its
 * reply, then the hook's 421, the last reply (nothing after it). */
TEST(error_hook_ends_session)
{
	static const char *in[] = {
		"FOO\r\nBAR\r\nNOOP\r\n",
		"EHLO c.test\r\nRCPT TO:<u@t.test>\r\nMAIL FROM:a@b.test\r\nNOOP\r\n",
	};
	static const char *first[] = { "500 5.5.2 Command unrecognized", "503 5.5.1 Need MAIL first" };
	static const char *second[] = { "500 5.5.2 Command unrecognized",
	    "501 5.5.4 Syntax: address must be enclosed in <>" };

	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		struct smtpd_conf conf = toy_conf();
		struct client c;
		struct toy t;

		client_once(&c, in[i], strlen(in[i]), 1);
		c.error_limit = 2;
		converse(&t, &conf, &c, NULL);
		if (i == 0)
			EXPECT_REPLIES(c.out, first[i], second[i],
			    "421 4.7.0 t.test Error rate limit exceeded");
		else
			EXPECT_REPLIES(c.out, "250 ENHANCEDSTATUSCODES", first[i], second[i],
			    "421 4.7.0 t.test Error rate limit exceeded");
		EXPECT_INT(t.e.state, SMTPD_QUIT);
	}
}

/* An overlong line that reaches max_errors closes the session at once,
 * also one longer than the read buffer. */
TEST(error_limit_long_line)
{
	struct smtpd_conf conf = toy_conf();
	char in[12000];
	struct toy t;
	const char *out;
	int n;

	conf.max_errors = 2;
	n = snprintf(in, sizeof(in), "FOO\r\nNOOP %010000d\r\nNOOP\r\n", 0);
	out = session(&t, &conf, in, (size_t)n, 1);
	EXPECT_REPLIES(out, "500 5.5.2 Command unrecognized", "500 5.5.2 Line too long",
	    "421 4.7.0 t.test Too many errors, closing");
	EXPECT_INT(t.e.end, SMTPD_END_ERRORS);
}

/* ------------------------------------------------------------ MAIL, RCPT */

TEST(mail_parameters)
{
	struct smtpd_conf conf = toy_conf();
	struct toy t;
	const char *out;

	conf.mail_params = "RET ENVID";
	out = SESSION(&t, &conf, "EHLO c.test\r\n"
	    "MAIL FROM:a@b.test\r\nMAIL FROM:<a@b.test> SIZE=abc\r\nMAIL FROM:<a@b.test> SIZE=10001\r\n"
	    "MAIL FROM:<a@b.test> BODY=BINARYMIME\r\nMAIL FROM:<a@b.test> FOO=1\r\n"
	    "MAIL FROM:<a@b.test> SMTPUTF8=yes\r\nMAIL FROM:<a..b@b.test>\r\n"
	    "MAIL FROM:<us\xc3\xa9r@b.test>\r\nMAIL FROM:<a@b.test> SIZE=10000 BODY=8BITMIME RET=HDRS\r\n"
	    "RSET\r\nMAIL FROM:<us\xc3\xa9r@b.test> SMTPUTF8 BODY=7BIT\r\nRSET\r\n"
	    "HELO c.test\r\nMAIL FROM:<a@b.test> SIZE=10\r\nMAIL FROM:<>\r\n");
	EXPECT_REPLIES(out, "250 ENHANCEDSTATUSCODES",
	    "501 5.5.4 Syntax: address must be enclosed in <>", "501 5.5.4 Bad SIZE parameter",
	    "552 5.3.4 Message size exceeds fixed limit", "555 5.5.4 Unsupported parameter BODY",
	    "555 5.5.4 Unsupported parameter FOO", "555 5.5.4 Unsupported parameter SMTPUTF8",
	    "553 5.1.7 Bad sender address syntax", "553 5.1.7 Bad sender address syntax",
	    "250 2.1.0 Ok", "250 2.0.0 Ok", "250 2.1.0 Ok", "250 2.0.0 Ok",
	    "250 t.test", "555 5.5.4 Parameters need EHLO", "250 2.1.0 Ok");

	conf.smtputf8 = 0;	/* not offered: SMTPUTF8 is an unknown parameter */
	out = SESSION(&t, &conf, "EHLO c.test\r\nMAIL FROM:<a@b.test> SMTPUTF8\r\n");
	EXPECT_REPLIES(out, "250 ENHANCEDSTATUSCODES", "555 5.5.4 Unsupported parameter SMTPUTF8");
}

TEST(rcpt_rules)
{
	struct smtpd_conf conf = toy_conf();
	struct toy t;
	const char *out;

	out = SESSION(&t, &conf, HELLO "RCPT TO:<>\r\nRCPT TO:<v@t.test> NOTIFY=NEVER\r\n"
	    "RCPT TO:<user>\r\nRCPT TO:<\xc3\xa9@t.test>\r\nRCPT TO:<refuse@t.test>\r\n"
	    "RCPT TO:<postmaster>\r\nRCPT TO:<w@t.test>\r\nRCPT TO:<x@t.test>\r\nRCPT TO:<bad>\r\n");
	EXPECT_REPLIES(out, HELLO_R, "501 5.5.4 Syntax: empty address not allowed here",
	    "555 5.5.4 Unsupported parameter NOTIFY", "553 5.1.3 Bad recipient address syntax",
	    "553 5.1.3 Bad recipient address syntax", "550 5.1.1 Recipient refused",
	    "250 2.1.5 Ok", "250 2.1.5 Ok",
	    "452 4.5.3 Too many recipients", "452 4.5.3 Too many recipients");
	EXPECT_INT(t.e.nrcpt, 3);
	EXPECT_INT(t.e.errors, 4);	/* 452 is not an error */

	conf.rcpt_params = "NOTIFY ORCPT";
	out = SESSION(&t, &conf, HELLO "RCPT TO:<v@t.test> NOTIFY=NEVER\r\n");
	EXPECT_REPLIES(out, HELLO_R, "250 2.1.5 Ok");
	EXPECT_STR(t.rcpt_param, "NOTIFY=NEVER");
}

/* ------------------------------------------------------------ timeouts */

TEST(timeout_command)
{
	struct smtpd_conf conf = toy_conf();
	struct toy t;
	long long t0 = smtpd_now_ms();
	const char *out;

	conf.timeout_command = 1;
	out = session(&t, &conf, "EHLO c.test\r\n", 13, 0);
	EXPECT_REPLIES(out, "250 ENHANCEDSTATUSCODES", "421 4.4.2 t.test Error: timeout exceeded");
	EXPECT_INT(t.e.end, SMTPD_END_TIMEOUT);
	EXPECT(smtpd_now_ms() - t0 >= 900);
}

TEST(timeout_session)
{
	struct smtpd_conf conf = toy_conf();
	struct toy t;
	long long t0 = smtpd_now_ms();
	const char *out;

	conf.timeout_session = 1;	/* the command timeout is 5 s */
	out = session(&t, &conf, "EHLO c.test\r\n", 13, 0);
	EXPECT_REPLIES(out, "250 ENHANCEDSTATUSCODES", "421 4.4.2 t.test Error: timeout exceeded");
	EXPECT_INT(t.e.end, SMTPD_END_TIMEOUT);
	EXPECT(smtpd_now_ms() - t0 < 4000);
}

/* ------------------------------------------------------------ logs */

/* The engine's log lines (stderr in the foreground) during one session. */
static void logged(struct toy *t, const struct smtpd_conf *conf, const char *in, size_t len,
    int eof, char *buf, size_t cap)
{
	int fd = memfd_create("log", 0), saved = dup(2);
	ssize_t n;

	if (fd < 0 || saved < 0 || dup2(fd, 2) < 0)
		abort();
	(void)session(t, conf, in, len, eof);
	fflush(stderr);
	if (dup2(saved, 2) < 0 || lseek(fd, 0, SEEK_SET) != 0)
		abort();
	n = read(fd, buf, cap - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
	close(saved);
}

#define EXPECT_LOGGED(buf, s) do { if (strstr((buf), (s)) == NULL) \
	FAILF("not logged: %s\n  log:\n%s", (s), (buf)); } while (0)

TEST(log_lines)
{
	struct smtpd_conf conf = toy_conf();
	static const char bare[] = HELLO "DATA\r\na\nb\r\n.\r\nQUIT\r\n";
	static const char bdat[] = HELLO "BDAT 2000000\r\n";
	static const char lost[] = HELLO "DATA\r\nabc\r\n";
	char buf[8192];
	struct toy t;

	logged(&t, &conf, bare, sizeof(bare) - 1, 1, buf, sizeof(buf));
	EXPECT_LOGGED(buf, " test reject stage=data reason=bare-lf from=\"<a@b.test>\" size=5 reply=\"550 5.6.0\"\n");
	logged(&t, &conf, bdat, sizeof(bdat) - 1, 1, buf, sizeof(buf));
	EXPECT_LOGGED(buf, " test reject reason=bdat-size size=2000000\n");
	logged(&t, &conf, lost, sizeof(lost) - 1, 1, buf, sizeof(buf));
	EXPECT_LOGGED(buf, " test data status=client-lost size=5\n");
	logged(&t, &conf, "NOOP\r\n", 6, 1, buf, sizeof(buf));
	EXPECT_LOGGED(buf, " test lost connection state=connected\n");
	conf.max_errors = 1;
	logged(&t, &conf, "FOO\r\n", 5, 1, buf, sizeof(buf));
	EXPECT_LOGGED(buf, " test disconnect reason=too-many-errors\n");
	conf.timeout_command = 1;
	logged(&t, &conf, "EHLO c.test\r\n", 13, 0, buf, sizeof(buf));
	EXPECT_LOGGED(buf, " test timeout state=helo\n");
}

int main(void)
{
	log_init("test_smtpd", 1);
	signal(SIGPIPE, SIG_IGN);
	RUN(ehlo_capabilities);
	RUN(others);
	RUN(helo_refused_by_program);
	RUN(session_refused_by_program);
	RUN(starttls_without_certificate);
	RUN(starttls_in_transaction);
	RUN(starttls);
	RUN(auth_framing);
	RUN(pipelined_groups);
	RUN(replies_flushed_before_wait);
	RUN(sequence_503);
	RUN(transaction_resets);
	RUN(line_rules);
	RUN(unterminated_tail);
	RUN(error_limit);
	/* both failed on the engine as it landed (d19fdd4), fixed in b6ed9dd */
	RUN(error_hook_ends_session);
	RUN(error_limit_long_line);
	RUN(mail_parameters);
	RUN(rcpt_rules);
	RUN(timeout_command);
	RUN(timeout_session);
	RUN(log_lines);
	return unit_done();
}

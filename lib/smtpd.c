/*
 * smtpd — the SMTP server engine: the session loop, the command table and
 * its dispatcher, the line rules, replies, HELO/EHLO, STARTTLS, MAIL and
 * RCPT parsing, and the small commands. The message readers are in
 * smtpd_data.c. The rule set (every reply code) is docs/smtpd.md.
 *
 * The table gives each verb the states where it is allowed and its
 * argument rule; the dispatcher answers 500/501/503 and the row's handler
 * proceeds. Replies are buffered in the io and flushed when the reader
 * needs more input, so a pipelined group is answered in order in one write.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "smtpd_int.h"
#include "tls.h"

#define ALL_STATES	(SMTPD_CONNECTED | SMTPD_HELO | SMTPD_MAIL | SMTPD_RCPT | SMTPD_BDAT)
#define IN_TXN		(SMTPD_MAIL | SMTPD_RCPT | SMTPD_BDAT)

enum cmd_args { ARGS_NONE, ARGS_REQUIRED, ARGS_OPTIONAL };

struct smtpd_cmd {
	const char	*verb;
	unsigned	 states;
	enum cmd_args	 args;
	void		(*proceed)(struct smtpd *, char *);
};

long long
smtpd_now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *
smtpd_state_name(enum smtpd_state st)
{
	switch (st) {
	case SMTPD_CONNECTED: return "connected";
	case SMTPD_HELO: return "helo";
	case SMTPD_MAIL: return "mail";
	case SMTPD_RCPT: return "rcpt";
	case SMTPD_BDAT: return "bdat";
	case SMTPD_QUIT: return "quit";
	}
	return "?";
}

static int
vreply(struct smtpd *e, const char *fmt, va_list ap)
{
	char buf[1024];
	int n;

	n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	if (n < 0)
		return -1;
	if ((size_t)n >= sizeof(buf) - 2)
		n = (int)sizeof(buf) - 3;
	memcpy(buf + n, "\r\n", 2);
	if (buf[0] == '4' || buf[0] == '5')
		log_debug("%s reply=\"%.*s\"", e->id, n, buf);
	if (e->hooks->replied != NULL)
		e->hooks->replied(e->ctx, buf, (size_t)n);
	if (io_write(&e->io, buf, (size_t)n + 2) != 0) {
		e->state = SMTPD_QUIT;
		return -1;
	}
	return 0;
}

int
smtpd_reply(struct smtpd *e, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vreply(e, fmt, ap);
	va_end(ap);
	return rc;
}

void
smtpd_fail(struct smtpd *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vreply(e, fmt, ap);
	va_end(ap);
	smtpd_error(e);
}

void
smtpd_reply_timeout(struct smtpd *e)
{
	(void)smtpd_reply(e, "421 4.4.2 %s Error: timeout exceeded", e->conf.hostname);
	e->end = SMTPD_END_TIMEOUT;
}

void
smtpd_enter(struct smtpd *e, enum smtpd_state st)
{
	if (e->state != st)
		log_debug("%s state %s -> %s", e->id, smtpd_state_name(e->state),
		    smtpd_state_name(st));
	e->state = st;
}

void
smtpd_error(struct smtpd *e)
{
	e->errors++;
	if (e->hooks->error != NULL && e->hooks->error(e->ctx) != 0)
		smtpd_enter(e, SMTPD_QUIT);
}

int
smtpd_timeout_ms(const struct smtpd *e, unsigned base_s)
{
	long long left;

	if (e->conf.timeout_session == 0)
		return (int)base_s * 1000;
	left = e->started_ms + (long long)e->conf.timeout_session * 1000 - smtpd_now_ms();
	if (left < 1)
		left = 1;
	return (long long)base_s * 1000 < left ? (int)base_s * 1000 : (int)left;
}

int
smtpd_expired(const struct smtpd *e)
{
	if (e->conf.timeout_session == 0 ||
	    smtpd_now_ms() < e->started_ms + (long long)e->conf.timeout_session * 1000)
		return 0;
	log_info("%s disconnect reason=session-deadline timeout_session=%u state=%s", e->id,
	    e->conf.timeout_session, smtpd_state_name(e->state));
	return 1;
}

void
smtpd_txn_end(struct smtpd *e, enum smtpd_reset why)
{
	if (e->hooks->reset != NULL)
		e->hooks->reset(e->ctx, why);
	e->mail_from[0] = '\0';
	memset(&e->mail, 0, sizeof(e->mail));
	e->nrcpt = 0;
	e->size = 0;
	e->bol = e->prev_cr = e->bad_lf = e->bad_cr = e->too_big = e->bdat_refused = 0;
	if (e->state != SMTPD_QUIT)
		smtpd_enter(e, SMTPD_HELO);
}

/* Is key one of the space-separated words of list? */
static int
listed(const char *list, const char *key)
{
	size_t kl = strlen(key);

	for (const char *p = list; p != NULL && *p; ) {
		size_t wl = strcspn(p, " ");
		if (wl == kl && strncmp(p, key, kl) == 0)
			return 1;
		p += wl;
		p += strspn(p, " ");
	}
	return 0;
}

static int
ascii_only(const char *p)
{
	for (; *p; p++)
		if ((unsigned char)*p >= 0x80)
			return 0;
	return 1;
}

/* ---- commands --------------------------------------------------------- */

static void
cmd_helo_common(struct smtpd *e, char *arg, int esmtp)
{
	char old[sizeof(e->helo)];
	int old_esmtp = e->esmtp;
	char *sp = strchr(arg, ' ');

	if (sp != NULL)
		*sp = '\0';
	for (char *p = arg; *p; p++)
		if ((unsigned char)*p < 33 || *p == 127) {
			smtpd_fail(e, "501 5.5.4 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
			return;
		}
	if (strlen(arg) >= sizeof(e->helo)) {
		smtpd_fail(e, "501 5.5.4 Syntax: hostname too long");
		return;
	}
	if (e->state & IN_TXN)
		smtpd_txn_end(e, SMTPD_RESET_ABORT);
	memcpy(old, e->helo, sizeof(old));
	snprintf(e->helo, sizeof(e->helo), "%s", arg);
	e->esmtp = esmtp;
	if (e->hooks->helo != NULL && e->hooks->helo(e->ctx, e->helo, esmtp) != SMTPD_ACCEPT) {
		memcpy(e->helo, old, sizeof(old));
		e->esmtp = old_esmtp;
		return;
	}
	if (e->state == SMTPD_QUIT)
		return;
	smtpd_enter(e, SMTPD_HELO);
	if (!esmtp) {
		smtpd_reply(e, "250 %s", e->conf.hostname);
		return;
	}
	{
		const char *auth = e->hooks->auth_offer != NULL ? e->hooks->auth_offer(e->ctx) : NULL;
		smtpd_reply(e, "250-%s", e->conf.hostname);
		smtpd_reply(e, "250-PIPELINING");
		smtpd_reply(e, "250-SIZE %zu", e->conf.size_limit);
		smtpd_reply(e, "250-8BITMIME");
		if (e->conf.smtputf8)
			smtpd_reply(e, "250-SMTPUTF8");
		if (e->conf.chunking)
			smtpd_reply(e, "250-CHUNKING");
		if (e->conf.dsn)
			smtpd_reply(e, "250-DSN");
		if (e->conf.tls != NULL && !e->tls)
			smtpd_reply(e, "250-STARTTLS");
		if (auth != NULL)
			smtpd_reply(e, "250-AUTH %s", auth);
		smtpd_reply(e, "250 ENHANCEDSTATUSCODES");
	}
}

static void
cmd_ehlo(struct smtpd *e, char *arg)
{
	cmd_helo_common(e, arg, 1);
}

static void
cmd_helo(struct smtpd *e, char *arg)
{
	cmd_helo_common(e, arg, 0);
}

static void
cmd_starttls(struct smtpd *e, char *arg)
{
	(void)arg;
	if (e->conf.tls == NULL) {
		smtpd_fail(e, "502 5.5.1 STARTTLS not available");
		return;
	}
	if (e->tls) {
		smtpd_fail(e, "503 5.5.1 TLS already active");
		return;
	}
	smtpd_reply(e, "220 2.0.0 Ready to start TLS");
	if (io_flush(&e->io) != 0) {
		smtpd_enter(e, SMTPD_QUIT);
		return;
	}
	if (e->hooks->tls_begin != NULL)
		e->hooks->tls_begin(e->ctx);
	/* anything pipelined after STARTTLS is discarded (RFC 3207 §6) */
	if (io_starttls_server(&e->io, e->conf.tls) != 0) {
		char why[256];
		log_info("%s tls status=failed reason=\"%s\"", e->id,
		    log_q(tls_last_error(why, sizeof(why))));
		if (e->hooks->tls_done != NULL)
			e->hooks->tls_done(e->ctx, 0);
		smtpd_enter(e, SMTPD_QUIT);
		return;
	}
	e->tls = 1;
	snprintf(e->tls_version, sizeof(e->tls_version), "%s", SSL_get_version(e->io.ssl));
	snprintf(e->tls_cipher, sizeof(e->tls_cipher), "%s", SSL_get_cipher_name(e->io.ssl));
	log_info("%s tls status=ok version=%s cipher=%s", e->id, e->tls_version, e->tls_cipher);
	if (e->hooks->tls_done != NULL)
		e->hooks->tls_done(e->ctx, 1);
	e->helo[0] = '\0';
	e->esmtp = 0;
	smtpd_enter(e, SMTPD_CONNECTED);
}

/* MAIL's parameters: the engine's own into m, the program's left in p.
 * 0, or -1 after the reply. */
static int
mail_params(struct smtpd *e, const struct smtp_path *p, struct smtpd_mail *m)
{
	for (size_t i = 0; i < p->nparams; i++) {
		const char *k = p->params[i].key, *v = p->params[i].value;
		if (!e->esmtp) {
			smtpd_fail(e, "555 5.5.4 Parameters need EHLO");
			return -1;
		}
		if (!strcmp(k, "SIZE") && v != NULL) {
			char *end;
			errno = 0;
			m->size = strtoull(v, &end, 10);
			if (errno != 0 || *end != '\0' || !isdigit((unsigned char)*v)) {
				smtpd_fail(e, "501 5.5.4 Bad SIZE parameter");
				return -1;
			}
			m->have_size = 1;
		} else if (!strcmp(k, "BODY") && v != NULL &&
		    (!strcasecmp(v, "8BITMIME") || !strcasecmp(v, "7BIT"))) {
			m->body8 = !strcasecmp(v, "8BITMIME");
		} else if (!strcmp(k, "SMTPUTF8") && v == NULL && e->conf.smtputf8) {
			m->smtputf8 = 1;
		} else if (!listed(e->conf.mail_params, k)) {
			smtpd_fail(e, "555 5.5.4 Unsupported parameter %s", k);
			return -1;
		}
	}
	return 0;
}

static void
cmd_mail(struct smtpd *e, char *arg)
{
	struct smtp_path p;
	struct smtpd_mail m;
	const char *why = NULL;

	memset(&m, 0, sizeof(m));
	if (smtp_parse_path(arg, "FROM:", 1, &p, &why) != 0) {
		smtpd_fail(e, "501 5.5.4 %s", why);
		return;
	}
	if (mail_params(e, &p, &m) != 0)
		return;
	if (m.have_size && m.size > e->conf.size_limit) {
		smtpd_reply(e, "552 5.3.4 Message size exceeds fixed limit");
		return;
	}
	if (!smtp_valid_mailbox(p.addr, m.smtputf8) || (!m.smtputf8 && !ascii_only(p.addr))) {
		smtpd_fail(e, "553 5.1.7 Bad sender address syntax");
		return;
	}
	if (e->hooks->mail(e->ctx, &p, &m) != SMTPD_ACCEPT || e->state == SMTPD_QUIT)
		return;
	snprintf(e->mail_from, sizeof(e->mail_from), "%s", p.addr);
	e->mail = m;
	e->nrcpt = 0;
	smtpd_enter(e, SMTPD_MAIL);
}

static void
cmd_rcpt(struct smtpd *e, char *arg)
{
	struct smtp_path p;
	const char *why = NULL;

	if (e->nrcpt >= e->conf.max_recipients) {
		smtpd_reply(e, "452 4.5.3 Too many recipients");
		return;
	}
	if (smtp_parse_path(arg, "TO:", 0, &p, &why) != 0) {
		smtpd_fail(e, "501 5.5.4 %s", why);
		return;
	}
	for (size_t i = 0; i < p.nparams; i++) {
		if (!e->esmtp || !listed(e->conf.rcpt_params, p.params[i].key)) {
			smtpd_fail(e, "555 5.5.4 Unsupported parameter %s", p.params[i].key);
			return;
		}
	}
	if (!smtp_valid_mailbox(p.addr, e->mail.smtputf8) ||
	    (!e->mail.smtputf8 && !ascii_only(p.addr))) {
		smtpd_fail(e, "553 5.1.3 Bad recipient address syntax");
		return;
	}
	if (e->hooks->rcpt(e->ctx, &p) != SMTPD_ACCEPT || e->state == SMTPD_QUIT)
		return;
	e->nrcpt++;
	smtpd_enter(e, SMTPD_RCPT);
}

static void
cmd_rset(struct smtpd *e, char *arg)
{
	(void)arg;
	if (e->state & IN_TXN)
		smtpd_txn_end(e, SMTPD_RESET_ABORT);
	smtpd_reply(e, "250 2.0.0 Ok");
}

static void
cmd_noop(struct smtpd *e, char *arg)
{
	(void)arg;
	smtpd_reply(e, "250 2.0.0 Ok");
}

static void
cmd_quit(struct smtpd *e, char *arg)
{
	(void)arg;
	smtpd_reply(e, "221 2.0.0 Bye");
	smtpd_enter(e, SMTPD_QUIT);
}

static void
cmd_help(struct smtpd *e, char *arg)
{
	(void)arg;
	smtpd_reply(e, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA%s RSET NOOP QUIT HELP VRFY%s%s",
	    e->conf.chunking ? " BDAT" : "", e->conf.tls != NULL ? " STARTTLS" : "",
	    e->hooks->auth != NULL ? " AUTH" : "");
}

static void
cmd_vrfy(struct smtpd *e, char *arg)
{
	(void)arg;
	smtpd_reply(e, "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
}

static void
cmd_expn(struct smtpd *e, char *arg)
{
	(void)arg;
	smtpd_reply(e, "502 5.5.1 EXPN not available");
}

static void
cmd_auth(struct smtpd *e, char *arg)
{
	e->hooks->auth(e->ctx, arg);
}

static const struct smtpd_cmd smtpd_cmds[] = {
	{ "EHLO",	ALL_STATES & ~SMTPD_BDAT,	ARGS_REQUIRED,	cmd_ehlo },
	{ "HELO",	ALL_STATES & ~SMTPD_BDAT,	ARGS_REQUIRED,	cmd_helo },
	{ "STARTTLS",	SMTPD_HELO,		ARGS_NONE,	cmd_starttls },
	{ "AUTH",	SMTPD_HELO,		ARGS_REQUIRED,	cmd_auth },
	{ "MAIL",	SMTPD_HELO,		ARGS_REQUIRED,	cmd_mail },
	{ "RCPT",	SMTPD_MAIL | SMTPD_RCPT, ARGS_REQUIRED,	cmd_rcpt },
	{ "DATA",	SMTPD_MAIL | SMTPD_RCPT, ARGS_NONE,	smtpd_cmd_data },
	{ "BDAT",	ALL_STATES,		ARGS_REQUIRED,	smtpd_cmd_bdat },
	{ "RSET",	ALL_STATES,		ARGS_NONE,	cmd_rset },
	{ "NOOP",	ALL_STATES,		ARGS_OPTIONAL,	cmd_noop },
	{ "QUIT",	ALL_STATES,		ARGS_NONE,	cmd_quit },
	{ "HELP",	ALL_STATES,		ARGS_OPTIONAL,	cmd_help },
	{ "VRFY",	ALL_STATES,		ARGS_REQUIRED,	cmd_vrfy },
	{ "EXPN",	ALL_STATES,		ARGS_REQUIRED,	cmd_expn },
	{ NULL, 0, 0, NULL }
};

static void
out_of_sequence(struct smtpd *e, const struct smtpd_cmd *c)
{
	const char *why = "Bad sequence of commands";

	if (e->state == SMTPD_BDAT && c->proceed == smtpd_cmd_data)
		why = "DATA not allowed after BDAT";
	else if (e->state == SMTPD_CONNECTED)
		why = "Send EHLO first";
	else if (c->proceed == cmd_mail)
		why = "Nested MAIL command";
	else if (c->proceed == cmd_rcpt && e->state == SMTPD_HELO)
		why = "Need MAIL first";
	else if (c->proceed == smtpd_cmd_data && e->state == SMTPD_HELO)
		why = "Need MAIL and RCPT first";
	else if (c->proceed == cmd_starttls && (e->state & IN_TXN))
		why = "STARTTLS not allowed in a transaction";
	smtpd_fail(e, "503 5.5.1 %s", why);
}

static void
dispatch(struct smtpd *e, char *line)
{
	const struct smtpd_cmd *c;
	const char *args;
	size_t vlen = smtp_verb(line, &args);

	e->ncommands++;
	for (c = smtpd_cmds; c->verb; c++)
		if (strlen(c->verb) == vlen && strncasecmp(c->verb, line, vlen) == 0)
			break;
	if (c->verb == NULL || (c->proceed == smtpd_cmd_bdat && !e->conf.chunking) ||
	    (c->proceed == cmd_auth && e->hooks->auth == NULL)) {
		smtpd_fail(e, "500 5.5.2 Command unrecognized");
		return;
	}
	if (e->refusal[0] != '\0' && c->proceed != cmd_quit && c->proceed != cmd_noop &&
	    c->proceed != cmd_rset && c->proceed != smtpd_cmd_bdat) {
		/* the program refused the session: every command but QUIT gets
		 * its answer (as Postfix does after a milter's reject) */
		smtpd_fail(e, "%s", e->refusal);
		return;
	}
	/* BDAT checks its state after eating its bytes */
	if (!(c->states & e->state) && c->proceed != smtpd_cmd_bdat) {
		out_of_sequence(e, c);
		return;
	}
	if (c->args == ARGS_REQUIRED && *args == '\0') {
		smtpd_fail(e, "501 5.5.4 Syntax: %s needs an argument", c->verb);
		return;
	}
	if (c->args == ARGS_NONE && *args != '\0') {
		smtpd_fail(e, "501 5.5.4 Syntax: %s takes no argument", c->verb);
		return;
	}
	c->proceed(e, line + (args - line));
}

/* A raw command line: 0 and a NUL-terminated copy in buf, or -1 after
 * the reply. */
static int
command_line(struct smtpd *e, const char *l, size_t n, char *buf, size_t buflen)
{
	if (n > SMTP_LINE_MAX) {
		smtpd_fail(e, "500 5.5.2 Line too long");
		return -1;
	}
	if (n < 2 || l[n - 2] != '\r' || memchr(l, '\r', n - 2) != NULL) {
		smtpd_fail(e, "501 5.5.2 Bare CR or LF in command; lines must end in CRLF");
		return -1;
	}
	if (memchr(l, '\0', n) != NULL) {
		smtpd_fail(e, "500 5.5.2 NUL character in command");
		return -1;
	}
	n -= 2;
	if (n + 1 > buflen)
		n = buflen - 1;
	memcpy(buf, l, n);
	buf[n] = '\0';
	return 0;
}

int
smtpd_init(struct smtpd *e, int fd, size_t rbuf, const struct smtpd_conf *conf,
    const struct smtpd_hooks *hooks, void *ctx, const char *id)
{
	memset(e, 0, sizeof(*e));
	e->conf = *conf;
	e->hooks = hooks;
	e->ctx = ctx;
	snprintf(e->id, sizeof(e->id), "%s", id);
	e->started_ms = smtpd_now_ms();
	e->state = SMTPD_CONNECTED;
	e->end = SMTPD_END_QUIT;
	return io_init(&e->io, fd, rbuf, (int)conf->timeout_command * 1000);
}

void
smtpd_free(struct smtpd *e)
{
	io_free(&e->io);
}

void
smtpd_run(struct smtpd *e)
{
	char line[SMTP_LINE_MAX + 1];
	int skipping = 0;

	while (e->state != SMTPD_QUIT) {
		const char *l;
		size_t n;
		enum io_status st;

		if (e->errors >= e->conf.max_errors) {
			smtpd_reply(e, "421 4.7.0 %s Too many errors, closing", e->conf.hostname);
			log_info("%s disconnect reason=too-many-errors", e->id);
			e->end = SMTPD_END_ERRORS;
			break;
		}
		e->io.timeout_ms = smtpd_timeout_ms(e, e->conf.timeout_command);
		st = io_getline(&e->io, &l, &n);
		if (st == IO_TIMEOUT) {
			smtpd_reply_timeout(e);
			if (!smtpd_expired(e))
				log_info("%s timeout state=%s", e->id, smtpd_state_name(e->state));
			break;
		}
		if (st == IO_EOF || st == IO_ERROR) {
			log_info("%s lost connection state=%s", e->id, smtpd_state_name(e->state));
			e->end = SMTPD_END_LOST;
			break;
		}
		/* a partial chunk shorter than the buffer is an unterminated
		 * tail before EOF: no command, the next read says EOF */
		if (st == IO_PARTIAL && n + 1 < e->io.rcap)
			continue;
		if (st == IO_PARTIAL) {
			if (!skipping) {
				smtpd_fail(e, "500 5.5.2 Line too long");
			}
			skipping = 1;
			continue;
		}
		if (skipping) {		/* the tail of an overlong line */
			skipping = 0;
			continue;
		}
		if (command_line(e, l, n, line, sizeof(line)) == 0) {
			dispatch(e, line);
			if (e->hooks->command != NULL)
				e->hooks->command(e->ctx, line);
		}
	}
	(void)io_flush(&e->io);
}

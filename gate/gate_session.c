/*
 * gate_session — the SMTP server side of one client session: an explicit
 * state machine driven by a command table (OpenSMTPD's shape). Each row
 * names the verb, the states where it is allowed and whether it takes an
 * argument; the dispatcher does those checks (503 / 501) and the row's
 * handler proceeds. Replies are buffered and flushed when the reader needs
 * more input, so pipelined commands (RFC 2920) are answered in order and in
 * one write. The gate answers 250 to a message only after the backend did.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "gate_session.h"
#include "gate_metrics.h"
#include "log.h"
#include "tls.h"

#define CLIENT_RBUF	16384
#define ALL_STATES	(ST_CONNECTED | ST_HELO | ST_MAIL | ST_RCPT)

enum cmd_args { ARGS_NONE, ARGS_REQUIRED, ARGS_OPTIONAL };

struct gate_cmd {
	const char	*verb;
	unsigned	 states;
	enum cmd_args	 args;
	void		(*proceed)(struct gate_session *, char *);
};

int
gate_reply(struct gate_session *s, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n >= sizeof(buf) - 2)
		n = (int)sizeof(buf) - 3;
	memcpy(buf + n, "\r\n", 2);
	if (buf[0] == '4' || buf[0] == '5')
		log_debug("%s reply=\"%.*s\"", s->id, n, buf);
	gate_metric_reply(s, buf, (size_t)n);
	return io_write(&s->io, buf, (size_t)n + 2);
}

static const char *
state_name(enum gate_state st)
{
	switch (st) {
	case ST_CONNECTED: return "connected";
	case ST_HELO: return "helo";
	case ST_MAIL: return "mail";
	case ST_RCPT: return "rcpt";
	case ST_QUIT: return "quit";
	}
	return "?";
}

int
gate_client_timeout(const struct gate_session *s, unsigned base_s)
{
	long long left = s->started_ms + (long long)s->cfg->timeout_session * 1000 - gate_now_ms();

	if (left < 1)
		left = 1;
	return (long long)base_s * 1000 < left ? (int)base_s * 1000 : (int)left;
}

int
gate_session_expired(struct gate_session *s)
{
	if (gate_now_ms() < s->started_ms + (long long)s->cfg->timeout_session * 1000)
		return 0;
	log_info("%s disconnect reason=session-deadline timeout_session=%u state=%s", s->id,
	    s->cfg->timeout_session, state_name(s->state));
	return 1;
}

void
gate_enter_state(struct gate_session *s, enum gate_state st)
{
	if (s->state != st)
		log_debug("%s state %s -> %s", s->id, state_name(s->state), state_name(st));
	s->state = st;
	s->io.timeout_ms = gate_client_timeout(s, s->cfg->timeout_command);
}

void
gate_error(struct gate_session *s)
{
	s->errors++;
	if (gate_policy_error(s) != 0)
		gate_enter_state(s, ST_QUIT);
}

static void
reset_transaction(struct gate_session *s)
{
	s->mail_from[0] = '\0';
	s->mail_params[0] = '\0';
	s->smtputf8 = s->body8 = 0;
	s->declared_size = 0;
	s->nrcpt = 0;
	gate_rcpts_clear(s);
	if (s->milters != NULL)
		gate_milter_abort(s->milters);
}


/* HELO/EHLO name: 0 when taken, -1 when refused (its reply is queued). */
static int
cmd_helo_common(struct gate_session *s, char *arg, int esmtp)
{
	char *sp;

	sp = strchr(arg, ' ');
	if (sp)
		*sp = '\0';
	for (char *p = arg; *p; p++)
		if ((unsigned char)*p < 33 || *p == 127) {
			gate_error(s);
			gate_reply(s, "501 5.5.4 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
			return -1;
		}
	if (strlen(arg) >= sizeof(s->helo)) {
		gate_error(s);
		gate_reply(s, "501 5.5.4 Syntax: hostname too long");
		return -1;
	}
	if (s->state == ST_MAIL || s->state == ST_RCPT)
		gate_backend_rset(s);
	reset_transaction(s);
	snprintf(s->helo, sizeof(s->helo), "%s", arg);
	s->esmtp = esmtp;
	gate_enter_state(s, ST_HELO);
	return 0;
}

static void
cmd_ehlo(struct gate_session *s, char *arg)
{
	const char *caps[8];
	char size[48];
	size_t n = 0;

	/* a refused name after an earlier good EHLO leaves the state at
	 * ST_HELO: one reply per command (found by fuzz_gate) */
	if (cmd_helo_common(s, arg, 1) != 0 || s->state != ST_HELO)
		return;
	if (gate_filter_helo(s) != 0)
		return;
	caps[n++] = "PIPELINING";
	snprintf(size, sizeof(size), "SIZE %zu", s->cfg->message_size_limit);
	caps[n++] = size;
	caps[n++] = "8BITMIME";
	caps[n++] = "ENHANCEDSTATUSCODES";
	if (s->cfg->smtputf8)
		caps[n++] = "SMTPUTF8";
	if (s->rt->tls != NULL && !s->tls)
		caps[n++] = "STARTTLS";
	gate_reply(s, "250-%s", s->cfg->hostname);
	for (size_t i = 0; i < n; i++)
		gate_reply(s, "250%c%s", i + 1 == n ? ' ' : '-', caps[i]);
}

static void
cmd_helo(struct gate_session *s, char *arg)
{
	if (cmd_helo_common(s, arg, 0) == 0 && s->state == ST_HELO &&
	    gate_filter_helo(s) == 0)
		gate_reply(s, "250 %s", s->cfg->hostname);
}

static void
cmd_starttls(struct gate_session *s, char *arg)
{
	(void)arg;
	if (s->rt->tls == NULL) {
		gate_error(s);
		gate_reply(s, "502 5.5.1 STARTTLS not available");
		return;
	}
	if (s->tls) {
		gate_error(s);
		gate_reply(s, "503 5.5.1 TLS already active");
		return;
	}
	gate_reply(s, "220 2.0.0 Ready to start TLS");
	if (io_flush(&s->io) != 0) {
		gate_enter_state(s, ST_QUIT);
		return;
	}
	/* Anything pipelined after STARTTLS is discarded (RFC 3207 §6); the
	 * backend connection, if any, was announced without TLS: drop it. */
	gate_backend_close(s, 1);
	if (io_starttls_server(&s->io, s->rt->tls) != 0) {
		char e[256];
		log_info("%s tls status=failed reason=\"%s\"", s->id, tls_last_error(e, sizeof(e)));
		gate_metric_tls(NULL);
		gate_enter_state(s, ST_QUIT);
		return;
	}
	s->tls = 1;
	snprintf(s->tls_version, sizeof(s->tls_version), "%s", SSL_get_version(s->io.ssl));
	snprintf(s->tls_cipher, sizeof(s->tls_cipher), "%s", SSL_get_cipher_name(s->io.ssl));
	log_info("%s tls status=ok version=%s cipher=%s", s->id, s->tls_version, s->tls_cipher);
	gate_metric_tls(s->tls_version);
	reset_transaction(s);
	s->helo[0] = '\0';
	gate_enter_state(s, ST_CONNECTED);
}

/* helo_check = fqdn: a well-formed domain name with at least two labels;
 * no address literal (Stalwart's port 25 refuses those names at EHLO, as
 * Postfix's reject_non_fqdn_helo_hostname refuses single labels). */
static int
helo_fqdn(const char *helo)
{
	return helo[0] != '[' && strchr(helo, '.') != NULL && smtp_valid_helo(helo);
}

static int
ascii_only(const char *p)
{
	for (; *p; p++)
		if ((unsigned char)*p >= 0x80)
			return 0;
	return 1;
}

static void
cmd_mail(struct gate_session *s, char *arg)
{
	struct smtp_path path;
	const char *why = NULL;
	char replay[SMTP_LINE_MAX], params[64];
	int n, code, utf8 = 0, body8 = 0, have_size = 0;
	unsigned long long size = 0;

	if (smtp_parse_path(arg, "FROM:", 1, &path, &why) != 0) {
		gate_error(s);
		gate_reply(s, "501 5.5.4 %s", why);
		return;
	}
	for (size_t i = 0; i < path.nparams; i++) {
		struct smtp_param *p = &path.params[i];
		if (!s->esmtp) {
			gate_error(s);
			gate_reply(s, "555 5.5.4 Parameters need EHLO");
			return;
		}
		if (!strcmp(p->key, "SIZE") && p->value) {
			char *end;
			errno = 0;
			size = strtoull(p->value, &end, 10);
			if (errno || *end || !isdigit((unsigned char)*p->value)) {
				gate_error(s);
				gate_reply(s, "501 5.5.4 Bad SIZE parameter");
				return;
			}
			have_size = 1;
		} else if (!strcmp(p->key, "BODY") && p->value &&
		    (!strcasecmp(p->value, "8BITMIME") || !strcasecmp(p->value, "7BIT"))) {
			body8 = !strcasecmp(p->value, "8BITMIME");
		} else if (!strcmp(p->key, "SMTPUTF8") && !p->value && s->cfg->smtputf8) {
			utf8 = 1;
		} else {
			gate_error(s);
			gate_reply(s, "555 5.5.4 Unsupported parameter %s", p->key);
			return;
		}
	}
	if (have_size && size > s->cfg->message_size_limit) {
		gate_reply(s, "552 5.3.4 Message size exceeds fixed limit");
		return;
	}
	if (!smtp_valid_mailbox(path.addr, utf8) || (!utf8 && !ascii_only(path.addr))) {
		gate_error(s);
		gate_reply(s, "553 5.1.7 Bad sender address syntax");
		return;
	}
	if (s->cfg->helo_check == HELO_CHECK_FQDN && !helo_fqdn(s->helo)) {
		gate_error(s);
		log_info("%s reject stage=mail reason=helo-not-fqdn helo=\"%s\" from=\"<%s>\" reply=\"550 5.5.2\"",
		    s->id, log_q(s->helo), log_q(path.addr));
		gate_reply(s, "550 5.5.2 Helo command rejected: need a fully-qualified hostname");
		return;
	}
	if (gate_policy_mail(s, path.addr) != 0)
		return;
	{
		/* the client's parameters as one string, for milters */
		char cp[512];
		size_t o = 0;
		cp[0] = '\0';
		for (size_t i = 0; i < path.nparams && o < sizeof(cp); i++)
			o += (size_t)snprintf(cp + o, sizeof(cp) - o, "%s%s%s%s", i ? " " : "",
			    path.params[i].key, path.params[i].value ? "=" : "",
			    path.params[i].value ? path.params[i].value : "");
		snprintf(s->mail_from, sizeof(s->mail_from), "%s", path.addr);	/* for macros */
		if (gate_filter_mail(s, path.addr, cp) != 0) {
			s->mail_from[0] = '\0';
			return;
		}
		s->mail_from[0] = '\0';
	}
	if (gate_backend_open(s) != 0)
		return;
	if (utf8 && !s->be.caps.smtputf8) {
		gate_reply(s, "553 5.6.7 SMTPUTF8 is not supported for this destination");
		return;
	}
	/* the parameters we pass on are the ones we parsed and understood,
	 * never text cut from the client's line (a quoted local part may
	 * hold '>'): they are replayed as such after a milter's CHGFROM */
	n = 0;
	params[0] = '\0';
	if (have_size && s->be.caps.size)
		n += snprintf(params + n, sizeof(params) - (size_t)n, " SIZE=%llu", size);
	if (body8 && s->be.caps.eightbit)
		n += snprintf(params + n, sizeof(params) - (size_t)n, " BODY=8BITMIME");
	if (utf8)
		n += snprintf(params + n, sizeof(params) - (size_t)n, " SMTPUTF8");
	snprintf(s->mail_params, sizeof(s->mail_params), "%s", params);
	n = snprintf(replay, sizeof(replay), "MAIL FROM:<%s>%s", path.addr, params);
	if (n < 0 || (size_t)n >= sizeof(replay)) {
		gate_reply(s, "501 5.5.4 Parameters too long");
		return;
	}
	code = gate_backend_mail(s, replay);
	if (code < 0)
		return;
	if (code / 100 == 2)
		log_debug("%s mail from=\"<%s>\" reply=%d", s->id, log_q(path.addr), code);
	else
		log_info("%s refused stage=mail from=\"<%s>\" reply=%d", s->id, log_q(path.addr), code);
	if (code / 100 != 2)
		return;
	snprintf(s->mail_from, sizeof(s->mail_from), "%s", path.addr);
	s->smtputf8 = utf8;
	s->body8 = body8;
	s->declared_size = (size_t)size;
	s->nrcpt = 0;
	s->nmail++;
	s->metric_mail_us = gate_metric_now_us();
	gate_enter_state(s, ST_MAIL);
}

static void
cmd_rcpt(struct gate_session *s, char *arg)
{
	struct smtp_path path;
	const char *why = NULL;
	int code;

	if (s->nrcpt >= s->cfg->max_recipients) {
		gate_reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	if (smtp_parse_path(arg, "TO:", 0, &path, &why) != 0) {
		gate_error(s);
		gate_reply(s, "501 5.5.4 %s", why);
		return;
	}
	if (path.nparams > 0) {
		gate_error(s);
		gate_reply(s, "555 5.5.4 Unsupported parameter %s", path.params[0].key);
		return;
	}
	if (!smtp_valid_mailbox(path.addr, s->smtputf8) ||
	    (!s->smtputf8 && !ascii_only(path.addr))) {
		gate_error(s);
		gate_reply(s, "553 5.1.3 Bad recipient address syntax");
		return;
	}
	if (gate_policy_rcpt(s, path.addr) != 0)
		return;
	snprintf(s->cur_rcpt, sizeof(s->cur_rcpt), "%s", path.addr);
	if (gate_filter_rcpt(s, path.addr) != 0)
		return;
	code = gate_backend_relay(s, "RCPT TO:<%s>", path.addr);
	if (code < 0)
		return;
	if (code / 100 == 2)
		log_debug("%s rcpt to=\"<%s>\" reply=%d", s->id, log_q(path.addr), code);
	else
		log_info("%s refused stage=rcpt from=\"<%s>\" to=\"<%s>\" reply=%d", s->id,
		    log_q(s->mail_from), log_q(path.addr), code);
	if (code / 100 == 2) {
		s->nrcpt++;
		if (s->milters != NULL && gate_rcpts_add(s, path.addr) != 0) {
			gate_reply(s, "451 4.3.0 Out of memory");
			return;
		}
		gate_enter_state(s, ST_RCPT);
	} else if (code / 100 == 5)
		gate_error(s);
}

static void
cmd_data(struct gate_session *s, char *arg)
{
	(void)arg;
	if (s->nrcpt == 0) {
		gate_error(s);
		gate_reply(s, "554 5.5.1 No valid recipients");
		return;
	}
	gate_data_run(s);
}

static void
cmd_rset(struct gate_session *s, char *arg)
{
	(void)arg;
	if (s->state == ST_MAIL || s->state == ST_RCPT)
		gate_backend_rset(s);
	reset_transaction(s);
	if (s->state == ST_MAIL || s->state == ST_RCPT)
		gate_enter_state(s, ST_HELO);
	gate_reply(s, "250 2.0.0 Ok");
}

static void
cmd_noop(struct gate_session *s, char *arg)
{
	(void)arg;
	gate_reply(s, "250 2.0.0 Ok");
}

static void
cmd_quit(struct gate_session *s, char *arg)
{
	(void)arg;
	gate_reply(s, "221 2.0.0 Bye");
	gate_enter_state(s, ST_QUIT);
}

static void
cmd_help(struct gate_session *s, char *arg)
{
	(void)arg;
	gate_reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT HELP VRFY%s",
	    s->rt->tls ? " STARTTLS" : "");
}

static void
cmd_vrfy(struct gate_session *s, char *arg)
{
	(void)arg;
	gate_reply(s, "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
}

static void
cmd_expn(struct gate_session *s, char *arg)
{
	(void)arg;
	gate_reply(s, "502 5.5.1 EXPN not available");
}

static const struct gate_cmd gate_cmds[] = {
	{ "EHLO",	ALL_STATES,		ARGS_REQUIRED,	cmd_ehlo },
	{ "HELO",	ALL_STATES,		ARGS_REQUIRED,	cmd_helo },
	{ "STARTTLS",	ST_HELO,		ARGS_NONE,	cmd_starttls },
	{ "MAIL",	ST_HELO,		ARGS_REQUIRED,	cmd_mail },
	{ "RCPT",	ST_MAIL | ST_RCPT,	ARGS_REQUIRED,	cmd_rcpt },
	{ "DATA",	ST_MAIL | ST_RCPT,	ARGS_NONE,	cmd_data },
	{ "RSET",	ALL_STATES,		ARGS_NONE,	cmd_rset },
	{ "NOOP",	ALL_STATES,		ARGS_OPTIONAL,	cmd_noop },
	{ "QUIT",	ALL_STATES,		ARGS_NONE,	cmd_quit },
	{ "HELP",	ALL_STATES,		ARGS_OPTIONAL,	cmd_help },
	{ "VRFY",	ALL_STATES,		ARGS_REQUIRED,	cmd_vrfy },
	{ "EXPN",	ALL_STATES,		ARGS_REQUIRED,	cmd_expn },
	{ NULL, 0, 0, NULL }
};

static void
dispatch(struct gate_session *s, char *line)
{
	const struct gate_cmd *c;
	const char *args;
	size_t vlen = smtp_verb(line, &args);

	s->ncommands++;
	for (c = gate_cmds; c->verb; c++)
		if (strlen(c->verb) == vlen && strncasecmp(c->verb, line, vlen) == 0)
			break;
	if (c->verb == NULL) {
		gate_error(s);
		gate_reply(s, "500 5.5.2 Command unrecognized");
		return;
	}
	if (s->milter_refusal[0] != '\0' && c->proceed != cmd_quit && c->proceed != cmd_noop &&
	    c->proceed != cmd_rset) {
		/* a milter refused the session at connect/HELO: every command
		 * but QUIT gets its answer (as Postfix does) */
		gate_error(s);
		gate_reply(s, "%s", s->milter_refusal);
		return;
	}
	if (!(c->states & s->state)) {
		gate_error(s);
		if (c->proceed == cmd_data && s->state == ST_HELO)
			gate_reply(s, "503 5.5.1 Need MAIL and RCPT first");
		else if (s->state == ST_CONNECTED)
			gate_reply(s, "503 5.5.1 Send EHLO first");
		else if (c->proceed == cmd_mail)
			gate_reply(s, "503 5.5.1 Nested MAIL command");
		else if (c->proceed == cmd_starttls)
			gate_reply(s, "503 5.5.1 STARTTLS not allowed in a transaction");
		else
			gate_reply(s, "503 5.5.1 Bad sequence of commands");
		return;
	}
	if (c->args == ARGS_REQUIRED && *args == '\0') {
		gate_error(s);
		gate_reply(s, "501 5.5.4 Syntax: %s needs an argument", c->verb);
		return;
	}
	if (c->args == ARGS_NONE && *args != '\0') {
		gate_error(s);
		gate_reply(s, "501 5.5.4 Syntax: %s takes no argument", c->verb);
		return;
	}
	c->proceed(s, (char *)args);
}

/* Validate a raw command line; returns 0 and a NUL-terminated copy in buf,
 * or -1 after replying. */
static int
command_line(struct gate_session *s, const char *l, size_t n, char *buf, size_t buflen)
{
	if (n > SMTP_LINE_MAX) {
		gate_error(s);
		gate_reply(s, "500 5.5.2 Line too long");
		return -1;
	}
	if (n < 2 || l[n - 2] != '\r' || memchr(l, '\r', n - 2) != NULL) {
		gate_error(s);
		gate_reply(s, "501 5.5.2 Bare CR or LF in command; lines must end in CRLF");
		return -1;
	}
	if (memchr(l, '\0', n) != NULL) {
		gate_error(s);
		gate_reply(s, "500 5.5.2 NUL character in command");
		return -1;
	}
	n -= 2;
	if (n + 1 > buflen)
		n = buflen - 1;
	memcpy(buf, l, n);
	buf[n] = '\0';
	return 0;
}

static void
new_session_id(char *id, size_t len)
{
	unsigned char r[5];

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		unsigned long long t = (unsigned long long)gate_now_ms() ^ (unsigned long long)getpid() << 20;
		memcpy(r, &t, sizeof(r));
	}
	snprintf(id, len, "%02X%02X%02X%02X%02X", r[0], r[1], r[2], r[3], r[4]);
}

void
gate_session_run(struct gate_runtime *rt, int fd, const struct sockaddr_storage *peer,
    const struct sockaddr_storage *local, const struct gate_pass *pass)
{
	struct gate_session *s = calloc(1, sizeof(*s));
	char line[SMTP_LINE_MAX + 1], laddr[64];
	unsigned lport = 0;
	int skipping = 0, greeted;

	if (s == NULL)
		return;
	s->rt = rt;
	s->cfg = rt->cfg;
	s->be.fd = -1;
	s->peer = *peer;
	s->local = *local;
	s->started_ms = gate_now_ms();
	if (pass != NULL)
		snprintf(s->id, sizeof(s->id), "%s", pass->id);	/* the screen's id */
	else
		new_session_id(s->id, sizeof(s->id));
	(void)net_addr_str(&s->peer, s->peer_ip, sizeof(s->peer_ip), &s->peer_port);
	(void)net_addr_str(&s->local, laddr, sizeof(laddr), &lport);
	if (io_init(&s->io, fd, CLIENT_RBUF, (int)s->cfg->timeout_command * 1000) != 0) {
		free(s);
		return;
	}
	log_info("%s connect client=%s port=%u listener=%s:%u", s->id, s->peer_ip,
	    s->peer_port, laddr, lport);
	s->state = ST_CONNECTED;
	s->spf_result = -1;
	greeted = pass != NULL && (pass->flags & GATE_PASS_GREETED);
	if (pass != NULL) {
		/* the screen ran the connect-stage checks (and the greeting) */
		s->allowlisted = (pass->flags & GATE_PASS_ALLOW) != 0;
		s->dnswl = (pass->flags & GATE_PASS_DNSWL) != 0;
		s->rate_owed = (pass->flags & GATE_PASS_RATE_OWED) != 0;
		if (pass->nbytes > 0 && io_preload(&s->io, pass->bytes, pass->nbytes) != 0)
			s->state = ST_QUIT;
	} else if (gate_policy_connect(s) != 0) {
		s->refused = 1;		/* the refusal is the greeting; then close */
		s->state = ST_QUIT;
	}
	/* milters see the connection; a refusal before the greeting is the
	 * greeting, after it (the screen greeted) it answers every command */
	if (s->state != ST_QUIT && gate_filter_open(s) != 0 && !greeted) {
		s->refused = 1;
		s->state = ST_QUIT;
	}
	if (s->state != ST_QUIT && !greeted)
		gate_reply(s, "220 %s ESMTP tailwart", s->cfg->hostname);

	while (s->state != ST_QUIT) {
		const char *l;
		size_t n;
		enum io_status st;

		s->io.timeout_ms = gate_client_timeout(s, s->cfg->timeout_command);
		st = io_getline(&s->io, &l, &n);
		if (st == IO_TIMEOUT) {
			gate_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->cfg->hostname);
			if (!gate_session_expired(s))
				log_info("%s timeout state=%s", s->id, state_name(s->state));
			s->metric_outcome = GMO_TIMEOUT;
			break;
		}
		if (st == IO_EOF || st == IO_ERROR) {
			if (s->state != ST_QUIT)
				log_info("%s lost connection state=%s", s->id, state_name(s->state));
			s->metric_outcome = GMO_LOST;
			break;
		}
		if (st == IO_PARTIAL) {
			if (!skipping) {
				gate_error(s);
				gate_reply(s, "500 5.5.2 Line too long");
			}
			skipping = 1;
			continue;
		}
		if (skipping) {		/* the tail of an overlong line */
			skipping = 0;
			continue;
		}
		if (command_line(s, l, n, line, sizeof(line)) == 0) {
			dispatch(s, line);
			gate_metric_command(s, line);
		}
		if (s->errors >= s->cfg->max_errors && s->state != ST_QUIT) {
			gate_reply(s, "421 4.7.0 %s Too many errors, closing", s->cfg->hostname);
			log_info("%s disconnect reason=too-many-errors", s->id);
			s->metric_outcome = GMO_ERRORS;
			break;
		}
	}
	(void)io_flush(&s->io);
	gate_backend_close(s, 1);
	gate_policy_end(s);
	gate_filter_close(s);
	gate_rcpts_clear(s);
	free(s->rcpts);
	gate_metric_session(s);
	log_info("%s disconnect client=%s%s helo=\"%s\" tls=%s mails=%u accepted=%u commands=%u errors=%u duration_ms=%lld",
	    s->id, s->peer_ip, s->refused ? " refused=yes" : "", s->helo[0] ? log_q(s->helo) : "-", s->tls ? s->tls_version : "no",
	    s->nmail, s->naccepted, s->ncommands, s->errors, gate_now_ms() - s->started_ms);
	io_free(&s->io);
	free(s);
}

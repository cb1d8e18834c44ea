/*
 * gate_session — one client session of tailwart-gate on the shared SMTP
 * server engine (lib/smtpd.h). The engine owns the wire and the rules
 * (command table, sequence, line rules, EHLO, STARTTLS, MAIL/RCPT parsing,
 * the DATA reader, timeouts, the error limit); this file gives it the
 * gate's hooks, which decide each step and hand the transaction to the
 * backend:
 *   before the engine runs: connect-time policy, the milters' connect
 *             stage and the banner (unless the screen greeted);
 *   helo:     the milters' HELO stage;
 *   mail:     helo_check, policy, milters, backend open, MAIL replayed
 *             with only the parameters we understood (the backend replies);
 *   rcpt:     policy, milters, the backend's reply;
 *   data:     without milters straight to the backend (BDAT or DATA), with
 *             milters through gate_filter.c's spool; the final reply is the
 *             backend's, so the client gets 250 only after the backend did;
 *   reset, tls, error, replies, commands: backend RSET/drop, milter abort,
 *             the error-rate policy, metrics.
 * It calls gate_policy.c, gate_filter.c, gate_backend.c and gate_data.c;
 * none of them calls back here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "gate_session.h"
#include "gate_metrics.h"
#include "log.h"

#define CLIENT_RBUF	16384

/* helo_check = fqdn: a well-formed domain name with at least two labels;
 * no address literal (Stalwart's port 25 refuses those names at EHLO, as
 * Postfix's reject_non_fqdn_helo_hostname refuses single labels). */
static int
helo_fqdn(const char *helo)
{
	return helo[0] != '[' && strchr(helo, '.') != NULL && smtp_valid_helo(helo);
}

static enum smtpd_verdict
hook_helo(void *ctx, const char *name, int esmtp)
{
	(void)name;
	(void)esmtp;
	return gate_filter_helo(ctx) == 0 ? SMTPD_ACCEPT : SMTPD_REFUSE;
}

/* The client's MAIL parameters as one string, for milters. */
static void
params_text(const struct smtp_path *p, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < p->nparams && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%s%s%s", i ? " " : "",
		    p->params[i].key, p->params[i].value ? "=" : "",
		    p->params[i].value ? p->params[i].value : "");
}

/* The MAIL we send: the sender and the parameters we parsed and understood
 * (and the backend offers), never text cut from the client's line (a quoted
 * local part may hold '>'); kept in mail_params for a replay after a
 * milter's CHGFROM. 0, or -1 when it does not fit. */
static int
mail_command(struct gate_session *s, const struct smtp_path *p, const struct smtpd_mail *m,
    char *cmd, size_t len)
{
	char params[64];
	int n = 0;

	params[0] = '\0';
	if (m->have_size && s->be.caps.size)
		n += snprintf(params + n, sizeof(params) - (size_t)n, " SIZE=%llu", m->size);
	if (m->body8 && s->be.caps.eightbit)
		n += snprintf(params + n, sizeof(params) - (size_t)n, " BODY=8BITMIME");
	if (m->smtputf8)
		n += snprintf(params + n, sizeof(params) - (size_t)n, " SMTPUTF8");
	snprintf(s->mail_params, sizeof(s->mail_params), "%s", params);
	n = snprintf(cmd, len, "MAIL FROM:<%s>%s", p->addr, params);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

static enum smtpd_verdict
hook_mail(void *ctx, const struct smtp_path *p, const struct smtpd_mail *m)
{
	struct gate_session *s = ctx;
	char cmd[SMTP_LINE_MAX], cp[512];
	int code;

	if (s->cfg->helo_check == HELO_CHECK_FQDN && !helo_fqdn(s->e.helo)) {
		log_info("%s reject stage=mail reason=helo-not-fqdn helo=\"%s\" from=\"<%s>\" reply=\"550 5.5.2\"",
		    s->id, log_q(s->e.helo), log_q(p->addr));
		smtpd_fail(&s->e, "550 5.5.2 Helo command rejected: need a fully-qualified hostname");
		return SMTPD_REFUSE;
	}
	if (gate_policy_mail(s, p->addr) != 0)
		return SMTPD_REFUSE;
	params_text(p, cp, sizeof(cp));
	snprintf(s->e.mail_from, sizeof(s->e.mail_from), "%s", p->addr);	/* for macros */
	code = gate_filter_mail(s, p->addr, cp);
	s->e.mail_from[0] = '\0';
	if (code != 0 || gate_backend_open(s) != 0)
		return SMTPD_REFUSE;
	if (m->smtputf8 && !s->be.caps.smtputf8) {
		smtpd_reply(&s->e, "553 5.6.7 SMTPUTF8 is not supported for this destination");
		return SMTPD_REFUSE;
	}
	if (mail_command(s, p, m, cmd, sizeof(cmd)) != 0) {
		smtpd_reply(&s->e, "501 5.5.4 Parameters too long");
		return SMTPD_REFUSE;
	}
	code = gate_backend_mail(s, cmd);
	if (code < 0)
		return SMTPD_REFUSE;
	if (code / 100 != 2) {
		log_info("%s refused stage=mail from=\"<%s>\" reply=%d", s->id, log_q(p->addr), code);
		return SMTPD_REFUSE;
	}
	log_debug("%s mail from=\"<%s>\" reply=%d", s->id, log_q(p->addr), code);
	s->nmail++;
	s->metric_mail_us = gate_metric_now_us();
	return SMTPD_ACCEPT;
}

/* Is DATA the client's next command, already here (pipelined)? */
static int
client_sent_data(const struct gate_session *s)
{
	size_t n;
	const char *p = io_peek(&s->e.io, &n);

	return n >= 6 && strncasecmp(p, "DATA\r\n", 6) == 0;
}

static enum smtpd_verdict
hook_rcpt(void *ctx, const struct smtp_path *p)
{
	struct gate_session *s = ctx;
	int code;

	if (gate_policy_rcpt(s, p->addr) != 0)
		return SMTPD_REFUSE;
	snprintf(s->cur_rcpt, sizeof(s->cur_rcpt), "%s", p->addr);
	if (gate_filter_rcpt(s, p->addr) != 0)
		return SMTPD_REFUSE;
	if (s->milters != NULL && gate_rcpts_add(s, p->addr) != 0) {
		smtpd_reply(&s->e, "451 4.3.0 Out of memory");
		return SMTPD_REFUSE;
	}
	code = gate_backend_rcpt(s, p->addr, !gate_filter_active(s) && client_sent_data(s));
	if (code < 0)
		return SMTPD_REFUSE;
	if (code / 100 == 2) {
		log_debug("%s rcpt to=\"<%s>\" reply=%d", s->id, log_q(p->addr), code);
		return SMTPD_ACCEPT;
	}
	log_info("%s refused stage=rcpt from=\"<%s>\" to=\"<%s>\" reply=%d", s->id,
	    log_q(s->e.mail_from), log_q(p->addr), code);
	if (code / 100 == 5)
		smtpd_error(&s->e);
	return SMTPD_REFUSE;
}

/* The gate offers no CHUNKING to clients (conf.chunking is 0): bdat is 0. */
static enum smtpd_verdict
hook_data_begin(void *ctx, int bdat)
{
	struct gate_session *s = ctx;

	(void)bdat;
	memset(&s->d, 0, sizeof(s->d));
	if (gate_filter_active(s))
		return gate_filter_data_begin(s);
	if (gate_data_begin(s, 1) != 0)
		return SMTPD_REFUSE;
	if (s->d.chunk != NULL)		/* BDAT to the backend: the 354 is ours */
		smtpd_reply(&s->e, "%s", SMTPD_354);
	return SMTPD_ACCEPT;
}

static void
hook_data(void *ctx, const char *p, size_t n, int bol)
{
	struct gate_session *s = ctx;

	if (s->d.spooling)
		gate_filter_data_write(s, p, n);
	else
		gate_data_forward(s, p, n, bol);
}

static void
hook_data_end(void *ctx)
{
	struct gate_session *s = ctx;

	if (s->d.spooling)
		gate_filter_data_end(s);
	else
		gate_data_finish(s);
}

/* The engine refused the message (bare CR/LF, size) or lost the client:
 * content that reached the backend must never be accepted by it, so that
 * connection is dropped; with milters nothing went out yet. */
static void
hook_data_abort(void *ctx, enum smtpd_msg_fault why)
{
	struct gate_session *s = ctx;

	if (s->d.spooling)
		gate_filter_data_drop(s, why == SMTPD_MSG_LOST);
	else
		gate_data_drop(s, 1);
}

static void
hook_reset(void *ctx, enum smtpd_reset why)
{
	struct gate_session *s = ctx;

	if (why == SMTPD_RESET_ABORT)
		gate_backend_rset(s);
	s->mail_params[0] = '\0';
	gate_filter_reset(s);
}

/* The backend connection, if any, was announced without TLS: drop it. */
static void
hook_tls_begin(void *ctx)
{
	gate_backend_close(ctx, 1);
}

static void
hook_tls_done(void *ctx, int ok)
{
	struct gate_session *s = ctx;

	gate_metric_tls(ok ? s->e.tls_version : NULL);
}

static int
hook_error(void *ctx)
{
	return gate_policy_error(ctx);
}

static void
hook_replied(void *ctx, const char *line, size_t n)
{
	gate_metric_reply(ctx, line, n);
}

static void
hook_command(void *ctx, const char *line)
{
	gate_metric_command(ctx, line);
}

static const struct smtpd_hooks gate_hooks = {
	/* the envelope, each step decided here and by the backend */
	.helo = hook_helo, .mail = hook_mail, .rcpt = hook_rcpt, .reset = hook_reset,
	/* the message */
	.data_begin = hook_data_begin, .data = hook_data, .data_end = hook_data_end,
	.data_abort = hook_data_abort,
	/* around the protocol: TLS, the error-rate policy, metrics */
	.tls_begin = hook_tls_begin, .tls_done = hook_tls_done, .error = hook_error,
	.replied = hook_replied, .command = hook_command,
};

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

static int
session_init(struct gate_session *s, int fd)
{
	const struct gate_settings *cfg = s->cfg;
	struct smtpd_conf c;

	memset(&c, 0, sizeof(c));
	c.hostname = cfg->hostname;
	c.size_limit = cfg->message_size_limit;
	c.max_errors = (unsigned)cfg->max_errors;
	c.max_recipients = (unsigned)cfg->max_recipients;
	c.timeout_command = cfg->timeout_command;
	c.timeout_data = cfg->timeout_data;
	c.timeout_session = cfg->timeout_session;
	c.tls = s->rt->tls;
	c.smtputf8 = cfg->smtputf8;
	c.mail_params = "";	/* SIZE, BODY, SMTPUTF8: the engine's */
	c.rcpt_params = "";
	return smtpd_init(&s->e, fd, CLIENT_RBUF, &c, &gate_hooks, s, s->id);
}

static enum gate_metric_outcome
outcome(const struct gate_session *s)
{
	if (s->refused)
		return GMO_REFUSED;
	switch (s->e.end) {
	case SMTPD_END_QUIT: return GMO_QUIT;
	case SMTPD_END_LOST: return GMO_LOST;
	case SMTPD_END_TIMEOUT: return GMO_TIMEOUT;
	case SMTPD_END_ERRORS: return GMO_ERRORS;
	}
	return GMO_NONE;
}

/* Before the engine runs: what the screen decided, or the connect-time
 * policy; the milters' connect stage; the banner. A refusal before the
 * greeting is the greeting (then close); a milter's after it (the screen
 * greeted) answers every command. */
static void
session_open(struct gate_session *s, const struct gate_pass *pass)
{
	int greeted = pass != NULL && (pass->flags & GATE_PASS_GREETED);

	s->spf_result = -1;
	if (pass != NULL) {
		s->allowlisted = (pass->flags & GATE_PASS_ALLOW) != 0;
		s->dnswl = (pass->flags & GATE_PASS_DNSWL) != 0;
		s->rate_owed = (pass->flags & GATE_PASS_RATE_OWED) != 0;
		if (pass->nbytes > 0 && io_preload(&s->e.io, pass->bytes, pass->nbytes) != 0)
			smtpd_enter(&s->e, SMTPD_QUIT);
	} else if (gate_policy_connect(s) != 0) {
		s->refused = 1;
		smtpd_enter(&s->e, SMTPD_QUIT);
	}
	if (s->e.state != SMTPD_QUIT && gate_filter_open(s) != 0 && !greeted) {
		s->refused = 1;
		smtpd_enter(&s->e, SMTPD_QUIT);
	}
	if (s->e.state != SMTPD_QUIT && !greeted)
		smtpd_reply(&s->e, "220 %s ESMTP tailwart", s->cfg->hostname);
}

void
gate_session_run(struct gate_runtime *rt, int fd, const struct sockaddr_storage *peer,
    const struct sockaddr_storage *local, const struct gate_pass *pass)
{
	struct gate_session *s = calloc(1, sizeof(*s));
	char laddr[64];
	unsigned lport = 0;

	if (s == NULL)
		return;
	s->rt = rt;
	s->cfg = rt->cfg;
	s->be.fd = -1;
	s->peer = *peer;
	s->local = *local;
	if (pass != NULL)
		snprintf(s->id, sizeof(s->id), "%s", pass->id);	/* the screen's id */
	else
		new_session_id(s->id, sizeof(s->id));
	(void)net_addr_str(&s->peer, s->peer_ip, sizeof(s->peer_ip), &s->peer_port);
	(void)net_addr_str(&s->local, laddr, sizeof(laddr), &lport);
	if (session_init(s, fd) != 0) {
		free(s);
		return;
	}
	log_info("%s connect client=%s port=%u listener=%s:%u", s->id, s->peer_ip,
	    s->peer_port, laddr, lport);
	session_open(s, pass);
	if (s->e.state != SMTPD_QUIT)
		smtpd_run(&s->e);
	(void)io_flush(&s->e.io);
	gate_data_drop(s, 0);		/* a BDAT buffer left by a lost client */
	gate_backend_close(s, 1);
	gate_policy_end(s);
	gate_filter_close(s);
	gate_metric_session(outcome(s));
	log_info("%s disconnect client=%s%s helo=\"%s\" tls=%s mails=%u accepted=%u commands=%u errors=%u duration_ms=%lld",
	    s->id, s->peer_ip, s->refused ? " refused=yes" : "",
	    s->e.helo[0] ? log_q(s->e.helo) : "-", s->e.tls ? s->e.tls_version : "no",
	    s->nmail, s->naccepted, s->e.ncommands, s->e.errors,
	    smtpd_now_ms() - s->e.started_ms);
	smtpd_free(&s->e);
	free(s);
}

/*
 * relay_smtpd — the relay's SMTP receiver: a session on the shared SMTP
 * engine (lib/smtpd.h), which owns the wire, the command table, the line
 * rules, the DATA and BDAT readers, the size limit and the timeouts, and
 * answers every command but those whose answer is the relay's. This file
 * holds what is the relay's: the connect-time refusals and the banner, the
 * relay's checks on EHLO, MAIL and RCPT (client_networks or AUTH before
 * MAIL, a domain in every recipient), the DSN parameters (RFC 3461), and
 * the spool: the message goes to a queue file as it arrives, is DKIM
 * signed at its end, and nothing is answered 250 before
 * relay_spool_commit() returned 0 (a failed commit, disk full, is
 * 452 4.3.1).
 *
 * Clients in client_networks may send without AUTH. With smtpd_auth_user
 * set (and a certificate), others may connect too, but must STARTTLS and
 * AUTH PLAIN/LOGIN (never offered in clear) before MAIL
 * (relay_smtpd_auth.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include "io.h"
#include "log.h"
#include "net.h"
#include "smtp.h"
#include "smtpd.h"
#include "relay_config.h"
#include "relay_dkim.h"
#include "relay_metrics.h"
#include "relay_proc.h"
#include "relay_smtpd.h"
#include "relay_smtpd_int.h"
#include "relay_spool.h"

#define SMTPD_RBUF	65536
#define SMTPD_MAX_ERRORS 10
#define reply(s, ...)	((void)smtpd_reply(&(s)->e, __VA_ARGS__))

/* The transaction's own facts; the engine clears its envelope after. */
static void
txn_reset(struct relay_session *s)
{
	for (size_t i = 0; i < s->nrcpts; i++) {
		free(s->rcpts[i]);
		free(s->orcpt[i]);
		s->orcpt[i] = NULL;
	}
	s->nrcpts = 0;
	s->ret = RELAY_RET_NONE;
	s->envid[0] = '\0';
	if (s->w) {
		relay_spool_abort(s->w);
		free(s->w);
		s->w = NULL;
	}
}

/* ---- EHLO, MAIL, RCPT ----------------------------------------------------- */

static enum smtpd_verdict
hook_helo(void *ctx, const char *name, int esmtp)
{
	struct relay_session *s = ctx;

	if (smtp_valid_helo(name))
		return SMTPD_ACCEPT;
	reply(s, "501 5.5.4 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
	return SMTPD_REFUSE;
}

static enum smtpd_verdict
hook_mail(void *ctx, const struct smtp_path *p, const struct smtpd_mail *m)
{
	struct relay_session *s = ctx;
	const char *envid = NULL;
	enum relay_ret ret = RELAY_RET_NONE;

	(void)m;
	if (!s->trusted && !s->authed) {
		/* a temporary failure: a misconfigured client (Stalwart's relay
		 * route without credentials) must queue and retry, not bounce */
		log_warn("%s reject reason=no-auth stage=mail reply=\"450 4.7.0\": "
		    "not in client_networks and not authenticated (check the client's credentials)",
		    s->e.id);
		reply(s, "450 4.7.0 Authentication required");
		return SMTPD_REFUSE;
	}
	/* the engine took SIZE, BODY and SMTPUTF8 and let through only the
	 * keys of conf.mail_params, after EHLO */
	for (size_t i = 0; i < p->nparams; i++) {
		const char *k = p->params[i].key, *v = p->params[i].value;
		if (strcmp(k, "AUTH") == 0 && s->authed)
			;	/* RFC 4954 AUTH=: accepted, not relayed */
		else if (strcmp(k, "RET") == 0 && v && ret == RELAY_RET_NONE &&
		    (strcasecmp(v, "FULL") == 0 || strcasecmp(v, "HDRS") == 0))
			ret = strcasecmp(v, "FULL") == 0 ? RELAY_RET_FULL : RELAY_RET_HDRS;
		else if (strcmp(k, "ENVID") == 0 && v && envid == NULL) {
			if (!relay_dsn_xtext_ok(v, 100)) {
				reply(s, "501 5.5.4 Bad ENVID parameter");
				return SMTPD_REFUSE;
			}
			envid = v;
		} else if (strcmp(k, "SIZE") != 0 && strcmp(k, "BODY") != 0 &&
		    strcmp(k, "SMTPUTF8") != 0) {
			reply(s, "555 5.5.4 Unsupported parameter %s", k);
			return SMTPD_REFUSE;
		}
	}
	s->ret = ret;
	snprintf(s->envid, sizeof(s->envid), "%s", envid ? envid : "");
	reply(s, "250 2.1.0 Ok");
	return SMTPD_ACCEPT;
}

static enum smtpd_verdict
hook_rcpt(void *ctx, const struct smtp_path *p)
{
	struct relay_session *s = ctx;
	const char *orcpt = NULL;
	unsigned notify = 0;

	for (size_t i = 0; i < p->nparams; i++) {
		const char *k = p->params[i].key, *v = p->params[i].value;
		/* only after EHLO, and only these two (the engine checks) */
		if (strcmp(k, "NOTIFY") == 0 && v && notify == 0) {
			if (relay_dsn_notify_parse(v, &notify) != 0) {
				reply(s, "501 5.5.4 Bad NOTIFY parameter");
				return SMTPD_REFUSE;
			}
		} else if (strcmp(k, "ORCPT") == 0 && v && orcpt == NULL) {
			if (!relay_dsn_orcpt_ok(v)) {
				reply(s, "501 5.5.4 Bad ORCPT parameter");
				return SMTPD_REFUSE;
			}
			orcpt = v;
		} else {
			reply(s, "555 5.5.4 Unsupported parameter %s", k);
			return SMTPD_REFUSE;
		}
	}
	if (p->addr[0] == '\0' || strchr(p->addr, '@') == NULL) {
		reply(s, "553 5.1.3 Bad recipient address syntax");
		return SMTPD_REFUSE;
	}
	if (s->nrcpts >= RELAY_RCPT_MAX) {	/* the engine's max_recipients */
		reply(s, "452 4.5.3 Too many recipients");
		return SMTPD_REFUSE;
	}
	s->rcpts[s->nrcpts] = strdup(p->addr);
	s->orcpt[s->nrcpts] = orcpt ? strdup(orcpt) : NULL;
	if (s->rcpts[s->nrcpts] == NULL || (orcpt && s->orcpt[s->nrcpts] == NULL)) {
		free(s->rcpts[s->nrcpts]);
		free(s->orcpt[s->nrcpts]);
		s->orcpt[s->nrcpts] = NULL;
		reply(s, "451 4.3.0 Out of memory");
		return SMTPD_REFUSE;
	}
	s->notify[s->nrcpts] = notify;
	s->nrcpts++;
	reply(s, "250 2.1.5 Ok");
	return SMTPD_ACCEPT;
}

/* ---- the message: spool, DKIM, commit -------------------------------------- */

static int
body_begin(struct relay_session *s)
{
	char date[64], hdr[1024];
	time_t now = time(NULL);
	struct tm tm;
	struct relay_spool_dsn dsn = { s->ret, s->envid[0] ? s->envid : NULL, s->notify,
		s->orcpt };
	int utf8 = s->e.mail.smtputf8, n;

	s->w = malloc(sizeof(*s->w));
	if (s->w == NULL)
		return -1;
	if (relay_spool_create_ext(s->cfg->spool_dir, s->w, s->e.mail_from, utf8,
	    s->e.mail.body8, s->client, s->rcpts, s->nrcpts, &dsn) != 0) {
		log_err("%s spool create failed: %s", s->e.id, strerror(errno));
		free(s->w);
		s->w = NULL;
		return -1;
	}
	if (localtime_r(&now, &tm) == NULL ||
	    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		snprintf(date, sizeof(date), "Thu, 01 Jan 1970 00:00:00 +0000");
	n = snprintf(hdr, sizeof(hdr),
	    "Received: from %s ([%s])\r\n\tby %s (tailwart-relay) with %s id %s;\r\n\t%s\r\n",
	    s->e.helo[0] ? s->e.helo : "unknown", s->client, s->cfg->hostname,
	    utf8 ? (s->authed ? "UTF8SMTPSA" : s->e.tls ? "UTF8SMTPS" : "UTF8SMTP") :
	    !s->e.esmtp ? "SMTP" : s->authed ? "ESMTPSA" : s->e.tls ? "ESMTPS" : "ESMTP",
	    s->w->id, date);
	if (n > 0 && (size_t)n < sizeof(hdr))
		relay_spool_write(s->w, hdr, (size_t)n);
	return 0;
}

/* DATA (bdat 0): the 354 or 452; first BDAT chunk: nothing (the engine
 * answers 452 4.3.1 per chunk on REFUSE). */
static enum smtpd_verdict
hook_data_begin(void *ctx, int bdat)
{
	struct relay_session *s = ctx;

	if (body_begin(s) != 0) {
		if (!bdat)
			reply(s, "452 4.3.1 Insufficient system storage");
		return SMTPD_REFUSE;
	}
	if (!bdat)
		reply(s, SMTPD_354);
	return SMTPD_ACCEPT;
}

static void
hook_data(void *ctx, const char *p, size_t n, int bol)
{
	struct relay_session *s = ctx;

	(void)bol;
	if (s->w)
		relay_spool_write(s->w, p, n);
}

static void
hook_data_abort(void *ctx, enum smtpd_msg_fault why)
{
	struct relay_session *s = ctx;

	(void)why;	/* the engine answers and logs */
	if (s->w) {
		relay_spool_abort(s->w);
		free(s->w);
		s->w = NULL;
	}
}

/* Commit the queue file; 0 with its id in id, or -1 (reply queued). */
static int
body_commit(struct relay_session *s, char *id, enum relay_dkim_result *dr)
{
	char why[256], *dkim = NULL;
	size_t dkim_len = 0;
	long long t0;

	/* a BDAT message need not end with CRLF; delivery needs it to */
	if (s->w->last2[0] != '\r' || s->w->last2[1] != '\n')
		relay_spool_write(s->w, "\r\n", 2);
	if (relay_spool_flush(s->w) != 0) {
		log_err("%s spool write failed: %s", s->w->id, strerror(errno));
		reply(s, "452 4.3.1 Insufficient system storage");
		return -1;
	}
	why[0] = '\0';
	*dr = relay_dkim_sign(s->cfg, s->w->id, s->w->fd, s->w->body_off,
	    s->w->off - s->w->body_off, &dkim, &dkim_len, why, sizeof(why));
	if (*dr == RELAY_DKIM_SIGNED || *dr == RELAY_DKIM_ERROR)
		relay_metric_dkim(*dr == RELAY_DKIM_ERROR);
	if (*dr == RELAY_DKIM_ERROR) {
		log_err("%s dkim signing failed: %s", s->w->id, why);
		reply(s, "451 4.3.0 Signing failed, try again later");
		return -1;
	}
	memcpy(id, s->w->id, RELAY_ID_LEN + 1);
	t0 = relay_metric_now_us();
	if (relay_spool_commit(s->cfg->spool_dir, s->w, dkim, dkim_len) != 0) {
		log_err("%s spool commit failed: %s", id, strerror(errno));
		free(dkim);
		free(s->w);
		s->w = NULL;
		reply(s, "452 4.3.1 Insufficient system storage");
		return -1;
	}
	free(dkim);
	free(s->w);
	s->w = NULL;
	relay_metric_received(t0);
	return 0;
}

/* A clean message ended: DKIM, commit, the one final reply, notify. */
static void
hook_data_end(void *ctx)
{
	struct relay_session *s = ctx;
	char id[RELAY_ID_LEN + 1], msg[64];
	enum relay_dkim_result dr = RELAY_DKIM_NOKEY;

	if (s->w == NULL) {	/* not opened: the engine should not get here */
		reply(s, "452 4.3.1 Insufficient system storage");
		return;
	}
	if (body_commit(s, id, &dr) != 0)
		return;		/* the engine's reset hook releases the rest */
	log_info("%s queued client=%s from=\"<%s>\" nrcpt=%zu size=%zu dkim=%s",
	    id, s->client, log_q(s->e.mail_from), s->nrcpts, s->e.size,
	    dr == RELAY_DKIM_SIGNED ? "signed" : "none");
	reply(s, "250 2.0.0 Ok: queued as %s", id);
	snprintf(msg, sizeof(msg), "new %s", id);
	(void)relay_notify(s->cfg->spool_dir, msg);	/* the scheduler also scans */
}

static void
hook_reset(void *ctx, enum smtpd_reset why)
{
	(void)why;
	txn_reset(ctx);
}

static const struct smtpd_hooks relay_hooks = {
	.helo = hook_helo,
	.mail = hook_mail,
	.rcpt = hook_rcpt,
	.data_begin = hook_data_begin,
	.data = hook_data,
	.data_end = hook_data_end,
	.data_abort = hook_data_abort,
	.reset = hook_reset,
	.auth = relay_smtpd_auth,
	.auth_offer = relay_smtpd_auth_offer,
};

/* ---- the session ------------------------------------------------------------- */

int
relay_smtpd_session(const struct relay_config *cfg, int fd)
{
	return relay_smtpd_serve(cfg, fd, 0) < 0 ? 1 : 0;
}

/* Refuse at connect: one reply, then the end. */
static void
refuse(struct relay_session *s, const char *line)
{
	reply(s, "%s", line);
	(void)io_flush(&s->e.io);
}

int
relay_smtpd_serve(const struct relay_config *cfg, int fd, unsigned auth_prior)
{
	struct relay_session *s;
	struct smtpd_conf conf;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	unsigned port = 0;
	char id[96], line[160];
	int fails;

	s = calloc(1, sizeof(*s));	/* ~24 KiB of recipient slots */
	if (s == NULL || getpeername(fd, (struct sockaddr *)&ss, &sl) != 0) {
		free(s);
		(void)close(fd);
		return -1;
	}
	s->cfg = cfg;
	s->fd = fd;
	s->auth_prior = auth_prior;
	net_unmap(&ss);
	if (net_addr_str(&ss, s->client, sizeof(s->client), &port) != 0)
		snprintf(s->client, sizeof(s->client), "unknown");
	memset(&conf, 0, sizeof(conf));
	conf.hostname = cfg->hostname;
	conf.size_limit = cfg->message_size_limit;
	conf.max_errors = SMTPD_MAX_ERRORS;
	conf.max_recipients = RELAY_RCPT_MAX;
	conf.timeout_command = cfg->smtp_timeout;
	conf.timeout_data = cfg->smtp_timeout;
	conf.tls = cfg->smtpd_tls;
	conf.smtputf8 = 1;
	conf.chunking = 1;
	conf.dsn = 1;
	conf.mail_params = "AUTH RET ENVID";
	conf.rcpt_params = "NOTIFY ORCPT";
	snprintf(id, sizeof(id), "smtpd client=%s", s->client);
	if (smtpd_init(&s->e, fd, SMTPD_RBUF, &conf, &relay_hooks, s, id) != 0) {
		free(s);
		(void)close(fd);
		return -1;
	}
	s->trusted = net_cidr_list_match(&cfg->client_networks, &ss);
	if (!s->trusted && !relay_config_set(cfg->smtpd_auth_user)) {
		/* 4xx, not 5xx: a client that should be here but is not listed
		 * (a misconfiguration) queues and retries instead of bouncing */
		log_warn("%s reject reason=client_networks reply=\"421 4.7.0\": "
		    "not in client_networks and no smtpd_auth_user (add it to client_networks "
		    "if it should relay)", s->e.id);
		snprintf(line, sizeof(line), "421 4.7.0 %s: client not in client_networks",
		    s->client);
		refuse(s, line);
	} else if (!s->trusted && relay_smtpd_auth_blocked(s)) {
		log_warn("%s reject reason=auth-limit client_failures=%u", s->e.id,
		    s->auth_prior);
		refuse(s, "421 4.7.0 Too many failed authentication attempts, try again later");
	} else {
		log_debug("%s connect port=%u", s->e.id, port);
		reply(s, "220 %s ESMTP tailwart-relay", cfg->hostname);
		smtpd_run(&s->e);
		txn_reset(s);
	}
	smtpd_free(&s->e);
	(void)close(fd);	/* the session is over either way */
	fails = (int)s->auth_fails;
	free(s);
	return fails;
}

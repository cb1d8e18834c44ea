/*
 * gate_filter — the session side of the milter client (gate_milter.c):
 * macros from the session, one call per SMTP stage with the verdict turned
 * into the reply at the right scope (connect/HELO: the session; MAIL: the
 * transaction; RCPT: that recipient; DATA and the message: the message),
 * and the DATA path with milters (the session's data hooks choose it): the
 * gate answers 354 itself, spools the message the engine hands over
 * (memory up to GATE_FILTER_SPOOL_MEM, then a temp file), lets the
 * milters see and modify it, replays the backend transaction when they
 * changed the envelope, and only then streams the result to the backend,
 * whose final reply is the client's. A milter's discard is the one case
 * where the client gets 250 for a message the backend never saw (the
 * milter asked for exactly that); it is logged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gate_metrics.h"
#include "gate_session.h"
#include "log.h"

#define GATE_FILTER_SPOOL_MEM	(1024 * 1024)

static const char *
macro(void *ctx, const char *name)
{
	struct gate_session *s = ctx;

	if (!strcmp(name, "j"))
		return s->cfg->hostname;
	if (!strcmp(name, "{daemon_name}"))
		return "tailwart-gate";
	if (!strcmp(name, "v"))
		return "tailwart";
	if (!strcmp(name, "{client_addr}"))
		return s->peer_ip;
	if (!strcmp(name, "{client_name}") || !strcmp(name, "_")) {
		snprintf(s->mbuf, sizeof(s->mbuf), "[%s]", s->peer_ip);
		return s->mbuf;
	}
	if (!strcmp(name, "{client_port}")) {
		snprintf(s->mbuf, sizeof(s->mbuf), "%u", s->peer_port);
		return s->mbuf;
	}
	if (!strcmp(name, "{daemon_addr}")) {
		if (net_addr_str(&s->local, s->mbuf, sizeof(s->mbuf), NULL) != 0)
			return NULL;
		return s->mbuf;
	}
	if (!strcmp(name, "i")) {
		snprintf(s->mbuf, sizeof(s->mbuf), "%s.%u", s->id, s->ntrans);
		return s->mbuf;
	}
	if (!strcmp(name, "{tls_version}"))
		return s->e.tls ? s->e.tls_version : NULL;
	if (!strcmp(name, "{cipher}"))
		return s->e.tls ? s->e.tls_cipher : NULL;
	if (!strcmp(name, "{mail_addr}"))
		return s->e.mail_from;
	if (!strcmp(name, "{rcpt_addr}"))
		return s->cur_rcpt;
	if (!strcmp(name, "{mail_mailer}") || !strcmp(name, "{rcpt_mailer}"))
		return "smtp";
	return NULL;	/* {auth_*}: the MX takes no AUTH; the rest unknown */
}

static void
log_verdict(struct gate_session *s, const char *stage, enum gate_milter_verdict v,
    const char *reply)
{
	char q[300];

	if (v == GMV_CONTINUE)
		return;
	log_info("%s milter stage=%s verdict=%s reply=\"%s\"", s->id, stage,
	    gate_milter_verdict_name(v), log_quote(q, sizeof(q), reply, strlen(reply)));
}

/* A refusal at MAIL/RCPT/DATA: the milter's reply is the client's. */
static int
refuse(struct gate_session *s, const char *stage, enum gate_milter_verdict v, const char *reply)
{
	log_verdict(s, stage, v, reply);
	if (v == GMV_CONTINUE || v == GMV_DISCARD)
		return 0;
	smtpd_reply(&s->e, "%s", *reply ? reply : v == GMV_REJECT ? "550 5.7.1 Command rejected" :
	    "451 4.7.1 Service unavailable - try again later");
	if (v == GMV_SHUTDOWN)
		smtpd_enter(&s->e, SMTPD_QUIT);
	return -1;
}

/* A milter refused the session: its reply (or def) answers every command
 * from now on (the engine's e.refusal holds it). */
static const char *
refuse_session(struct gate_session *s, const char *reply, const char *def)
{
	snprintf(s->e.refusal, sizeof(s->e.refusal), "%s", *reply ? reply : def);
	return s->e.refusal;
}

int
gate_filter_open(struct gate_session *s)
{
	char reply[GATE_MILTER_REPLY_MAX] = "";
	enum gate_milter_verdict v;

	if (s->cfg->milters.n == 0)
		return 0;
	gate_metric_milters(s->rt->cfg);
	s->milters = gate_milter_session_new(&s->cfg->milters, s->id, macro, s);
	if (s->milters == NULL) {
		log_err("%s milter session: out of memory", s->id);
		return 0;
	}
	v = gate_milter_connect(s->milters, NULL, &s->peer, reply, sizeof(reply));
	log_verdict(s, "connect", v, reply);
	if (v == GMV_CONTINUE || v == GMV_DISCARD)
		return 0;
	smtpd_reply(&s->e, "%s", refuse_session(s, reply, v == GMV_REJECT ?
	    "554 5.7.1 Service unavailable" : "421 4.7.0 Service unavailable - try again later"));
	if (v == GMV_SHUTDOWN)
		smtpd_enter(&s->e, SMTPD_QUIT);
	return -1;
}

int
gate_filter_helo(struct gate_session *s)
{
	char reply[GATE_MILTER_REPLY_MAX] = "";
	enum gate_milter_verdict v;

	if (s->milters == NULL)
		return 0;
	v = gate_milter_helo(s->milters, s->e.helo, reply, sizeof(reply));
	if (v == GMV_CONTINUE || v == GMV_DISCARD)
		return 0;
	/* a refusal at HELO refuses the session, like one at connect */
	return refuse(s, "helo", v, refuse_session(s, reply, v == GMV_REJECT ?
	    "550 5.7.1 Command rejected" : "451 4.7.1 Service unavailable - try again later"));
}

int
gate_filter_mail(struct gate_session *s, const char *addr, const char *params)
{
	char reply[GATE_MILTER_REPLY_MAX] = "";

	if (s->milters == NULL)
		return 0;
	s->ntrans++;
	return refuse(s, "mail", gate_milter_mail(s->milters, addr, params, reply, sizeof(reply)),
	    reply);
}

int
gate_filter_rcpt(struct gate_session *s, const char *addr)
{
	char reply[GATE_MILTER_REPLY_MAX] = "";

	if (s->milters == NULL)
		return 0;
	return refuse(s, "rcpt", gate_milter_rcpt(s->milters, addr, "", reply, sizeof(reply)),
	    reply);
}

void
gate_filter_close(struct gate_session *s)
{
	if (s->d.spooling)
		gate_filter_data_drop(s, 1);
	gate_milter_session_free(s->milters);
	s->milters = NULL;
	gate_rcpts_clear(s);
	free(s->rcpts);
	s->rcpts = NULL;
	s->rcpts_cap = 0;
}

void
gate_filter_reset(struct gate_session *s)
{
	gate_rcpts_clear(s);
	if (s->milters != NULL)
		gate_milter_abort(s->milters);
}

int
gate_rcpts_add(struct gate_session *s, const char *addr)
{
	size_t i = s->e.nrcpt;
	char *d;

	if (i >= s->rcpts_cap) {
		size_t cap = s->rcpts_cap ? s->rcpts_cap * 2 : 8;
		char **nv;
		while (cap <= i)
			cap *= 2;
		nv = realloc(s->rcpts, cap * sizeof(*nv));
		if (nv == NULL)
			return -1;
		memset(nv + s->rcpts_cap, 0, (cap - s->rcpts_cap) * sizeof(*nv));
		s->rcpts = nv;
		s->rcpts_cap = cap;
	}
	d = strdup(addr);
	if (d == NULL)
		return -1;
	free(s->rcpts[i]);
	s->rcpts[i] = d;
	return 0;
}

void
gate_rcpts_clear(struct gate_session *s)
{
	for (size_t i = 0; i < s->rcpts_cap; i++) {
		free(s->rcpts[i]);
		s->rcpts[i] = NULL;
	}
}

/* "<a@b>" or "a@b" -> "a@b" in buf: only a pair of enclosing brackets is
 * removed, so a quoted local part holding '>' stays whole. */
static const char *
bare(const char *a, char *buf, size_t len)
{
	size_t n;

	while (*a == ' ')
		a++;
	n = strlen(a);
	if (n >= 2 && a[0] == '<' && a[n - 1] == '>') {
		a++;
		n -= 2;
	}
	if (n >= len)
		n = len - 1;
	memcpy(buf, a, n);
	buf[n] = '\0';
	return buf;
}

/* The backend went away while the envelope was replayed. */
static int
replay_lost(struct gate_session *s)
{
	gate_backend_close(s, 0);
	smtpd_reply(&s->e, "451 4.4.2 Backend connection lost, message not accepted");
	return -1;
}

/* The milters changed the envelope: reset the backend transaction and
 * replay it with the new sender and recipients. 0, or -1 (client told). */
static int
replay(struct gate_session *s, const struct gate_milter_msg *m)
{
	struct smtp_reply r;
	char from[SMTP_PATH_MAX + 1], a[SMTP_PATH_MAX + 1], b[SMTP_PATH_MAX + 1];
	unsigned accepted = 0;
	int last = 0;

	if (m->new_from != NULL)
		(void)bare(m->new_from, from, sizeof(from));
	else
		snprintf(from, sizeof(from), "%s", s->e.mail_from);
	gate_backend_rset(s);
	if (s->be.fd < 0 && gate_backend_open(s) != 0)
		return -1;
	if (smtp_command(&s->be.io, &r, "MAIL FROM:<%s>%s", from, s->mail_params) != SMTP_R_OK)
		return replay_lost(s);
	if (r.code / 100 != 2) {
		(void)gate_backend_pass(s, &r);
		return -1;
	}
	snprintf(s->e.mail_from, sizeof(s->e.mail_from), "%s", from);
	for (size_t pass = 0; pass < 2; pass++) {
		size_t n = pass == 0 ? s->e.nrcpt : m->nadd_rcpt;
		for (size_t i = 0; i < n; i++) {
			const char *rc = pass == 0 ? s->rcpts[i] : bare(m->add_rcpt[i], a, sizeof(a));
			int deleted = 0;
			if (rc == NULL)
				continue;
			for (size_t k = 0; pass == 0 && k < m->ndel_rcpt; k++)
				if (!strcasecmp(rc, bare(m->del_rcpt[k], b, sizeof(b))))
					deleted = 1;
			if (deleted)
				continue;
			if (smtp_command(&s->be.io, &r, "RCPT TO:<%s>", rc) != SMTP_R_OK)
				return replay_lost(s);
			last = r.code;
			if (r.code / 100 == 2)
				accepted++;
			else
				log_info("%s milter replay rcpt=\"<%s>\" reply=%d", s->id, log_q(rc), r.code);
		}
	}
	log_info("%s milter envelope changed from=\"<%s>\" added=%zu deleted=%zu accepted=%u",
	    s->id, log_q(from), m->nadd_rcpt, m->ndel_rcpt, accepted);
	if (accepted == 0) {
		smtpd_reply(&s->e, "%d 5.5.1 No valid recipients after filtering",
		    last / 100 == 4 ? 451 : 554);
		return -1;
	}
	s->e.nrcpt = accepted;
	return 0;
}

int
gate_filter_active(const struct gate_session *s)
{
	return s->milters != NULL && gate_milter_count(s->milters) > 0;
}

/* DATA with milters: their DATA stage, then our own 354 and a spool. On
 * REFUSE the backend transaction is reset (the engine ends ours). */
enum smtpd_verdict
gate_filter_data_begin(struct gate_session *s)
{
	char reply[GATE_MILTER_REPLY_MAX] = "";
	enum gate_milter_verdict v;

	v = gate_milter_data(s->milters, reply, sizeof(reply));
	if (refuse(s, "data", v, reply) != 0) {
		gate_backend_rset(s);
		return SMTPD_REFUSE;
	}
	if (gate_milter_spool_init(&s->d.spool, GATE_FILTER_SPOOL_MEM) != 0) {
		smtpd_reply(&s->e, "451 4.3.0 Cannot spool the message, try again later");
		gate_backend_rset(s);
		return SMTPD_REFUSE;
	}
	s->d.spooling = 1;
	smtpd_reply(&s->e, "%s", SMTPD_354);
	return SMTPD_ACCEPT;
}

void
gate_filter_data_write(struct gate_session *s, const char *p, size_t n)
{
	if (!s->d.spool_failed && gate_milter_spool_write(&s->d.spool, p, n) != 0)
		s->d.spool_failed = 1;
}

void
gate_filter_data_drop(struct gate_session *s, int lost)
{
	if (s->d.spooling)
		gate_milter_spool_free(&s->d.spool);
	s->d.spooling = 0;
	if (lost)
		gate_backend_close(s, 0);
	else
		gate_backend_rset(s);
	gate_data_drop(s, 0);
}

static int
line_cb(void *arg, const char *p, size_t n, int bol)
{
	struct gate_session *s = arg;

	gate_data_forward(s, p, n, bol);
	return s->d.be_failed ? 1 : 0;
}

/* The milters' verdict on the spooled message, applied. 0: send it to the
 * backend; -1: the client got its reply (the backend transaction is to be
 * reset). */
static int
judge(struct gate_session *s, struct gate_milter_msg *msg)
{
	char reply[GATE_MILTER_REPLY_MAX] = "";
	enum gate_milter_verdict v;
	const char *why = NULL;
	FILE *f;

	if (s->d.spool_failed || (f = gate_milter_spool_done(&s->d.spool)) == NULL ||
	    gate_milter_msg_read(msg, f, &why) != 0) {
		log_warn("%s milter spool error: %s", s->id, why ? why : "write failed");
		smtpd_reply(&s->e, "451 4.3.0 Cannot spool the message, try again later");
		return -1;
	}
	v = gate_milter_message(s->milters, msg, reply, sizeof(reply));
	if (v == GMV_DISCARD) {
		log_verdict(s, "eom", v, reply);
		log_info("%s discarded from=\"<%s>\" rcpts=%u size=%zu reason=milter", s->id,
		    log_q(s->e.mail_from), s->e.nrcpt, s->e.size);
		smtpd_reply(&s->e, "250 2.0.0 Ok: message discarded by a content filter");
		return -1;
	}
	if (refuse(s, "eom", v, reply) != 0)
		return -1;
	if (msg->quarantine != NULL)
		log_info("%s milter quarantine reason=\"%s\"", s->id, log_q(msg->quarantine));
	if ((msg->nadd_rcpt > 0 || msg->ndel_rcpt > 0 || msg->new_from != NULL) &&
	    replay(s, msg) != 0)
		return -1;
	return 0;
}

/* The client ended the message: the milters judge it, then it goes to the
 * backend (as modified), whose final reply is the client's. */
void
gate_filter_data_end(struct gate_session *s)
{
	struct gate_milter_msg msg;

	memset(&msg, 0, sizeof(msg));
	if (judge(s, &msg) != 0)
		gate_backend_rset(s);
	else if (gate_data_begin(s, 0) == 0) {
		if (gate_milter_msg_lines(&msg, line_cb, s) < 0 && !s->d.be_failed) {
			log_warn("%s milter spool read error", s->id);
			gate_backend_close(s, 0);
			smtpd_reply(&s->e, "451 4.3.0 Cannot read the spooled message, try again later");
		} else
			gate_data_finish(s);
	}
	gate_milter_msg_free(&msg);
	gate_milter_spool_free(&s->d.spool);
	s->d.spooling = 0;
	gate_data_drop(s, 0);
}

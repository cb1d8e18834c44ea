/*
 * gate_filter — the session side of the milter client (gate_milter.c):
 * macros from the session, one call per SMTP stage with the verdict turned
 * into the reply at the right scope (connect/HELO: the session; MAIL: the
 * transaction; RCPT: that recipient; DATA and the message: the message),
 * and the DATA path with milters: the gate answers 354 itself, spools the
 * message (memory up to GATE_FILTER_SPOOL_MEM, then a temp file), lets the
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
		return s->tls ? s->tls_version : NULL;
	if (!strcmp(name, "{cipher}"))
		return s->tls ? s->tls_cipher : NULL;
	if (!strcmp(name, "{mail_addr}"))
		return s->mail_from;
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
	gate_reply(s, "%s", *reply ? reply : v == GMV_REJECT ? "550 5.7.1 Command rejected" :
	    "451 4.7.1 Service unavailable - try again later");
	if (v == GMV_SHUTDOWN)
		gate_enter_state(s, ST_QUIT);
	return -1;
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
	snprintf(s->milter_refusal, sizeof(s->milter_refusal), "%s", *reply ? reply :
	    v == GMV_REJECT ? "554 5.7.1 Service unavailable" :
	    "421 4.7.0 Service unavailable - try again later");
	gate_reply(s, "%s", s->milter_refusal);
	if (v == GMV_SHUTDOWN)
		gate_enter_state(s, ST_QUIT);
	return -1;
}

int
gate_filter_helo(struct gate_session *s)
{
	char reply[GATE_MILTER_REPLY_MAX] = "";
	enum gate_milter_verdict v;

	if (s->milters == NULL)
		return 0;
	v = gate_milter_helo(s->milters, s->helo, reply, sizeof(reply));
	if (v == GMV_CONTINUE || v == GMV_DISCARD)
		return 0;
	/* a refusal at HELO refuses the session, like one at connect */
	snprintf(s->milter_refusal, sizeof(s->milter_refusal), "%s", *reply ? reply :
	    v == GMV_REJECT ? "550 5.7.1 Command rejected" :
	    "451 4.7.1 Service unavailable - try again later");
	return refuse(s, "helo", v, s->milter_refusal);
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
	gate_milter_session_free(s->milters);
	s->milters = NULL;
}

int
gate_rcpts_add(struct gate_session *s, const char *addr)
{
	char *d;

	if (s->nrcpt > s->rcpts_cap) {
		size_t cap = s->rcpts_cap ? s->rcpts_cap * 2 : 8;
		char **nv;
		while (cap < s->nrcpt)
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
	free(s->rcpts[s->nrcpt - 1]);
	s->rcpts[s->nrcpt - 1] = d;
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
		snprintf(from, sizeof(from), "%s", s->mail_from);
	gate_backend_rset(s);
	if (s->be.fd < 0 && gate_backend_open(s) != 0)
		return -1;
	if (smtp_command(&s->be.io, &r, "MAIL FROM:<%s>%s", from, s->mail_params) != SMTP_R_OK) {
		gate_backend_close(s, 0);
		gate_reply(s, "451 4.4.2 Backend connection lost, message not accepted");
		return -1;
	}
	if (r.code / 100 != 2) {
		(void)io_write(&s->io, r.text, r.len);
		return -1;
	}
	snprintf(s->mail_from, sizeof(s->mail_from), "%s", from);
	for (size_t pass = 0; pass < 2; pass++) {
		size_t n = pass == 0 ? s->nrcpt : m->nadd_rcpt;
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
			if (smtp_command(&s->be.io, &r, "RCPT TO:<%s>", rc) != SMTP_R_OK) {
				gate_backend_close(s, 0);
				gate_reply(s, "451 4.4.2 Backend connection lost, message not accepted");
				return -1;
			}
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
		gate_reply(s, "%d 5.5.1 No valid recipients after filtering", last / 100 == 4 ? 451 : 554);
		return -1;
	}
	s->nrcpt = accepted;
	return 0;
}

struct line_ctx {
	struct gate_session	*s;
	struct gate_data	*d;
};

static int
line_cb(void *arg, const char *p, size_t n, int bol)
{
	struct line_ctx *lc = arg;

	gate_data_forward(lc->s, lc->d, p, n, bol);
	return lc->d->be_failed ? 1 : 0;
}

void
gate_filter_data(struct gate_session *s)
{
	char reply[GATE_MILTER_REPLY_MAX] = "";
	struct gate_milter_spool sp;
	struct gate_milter_msg msg;
	struct gate_data d;
	enum gate_milter_verdict v;
	const char *why = NULL;
	FILE *f;

	v = gate_milter_data(s->milters, reply, sizeof(reply));
	if (refuse(s, "data", v, reply) != 0) {
		gate_backend_rset(s);
		gate_data_end_transaction(s);
		return;
	}
	memset(&d, 0, sizeof(d));
	memset(&msg, 0, sizeof(msg));
	if (gate_milter_spool_init(&sp, GATE_FILTER_SPOOL_MEM) != 0) {
		gate_reply(s, "451 4.3.0 Cannot spool the message, try again later");
		gate_backend_rset(s);
		gate_data_end_transaction(s);
		return;
	}
	d.spool = &sp;
	gate_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	if (gate_data_read(s, &d) != 0) {
		gate_milter_spool_free(&sp);
		gate_backend_close(s, 0);
		gate_enter_state(s, ST_QUIT);
		return;
	}
	if (d.bad_cr || d.bad_lf || d.too_big) {
		gate_data_refuse_bad(s, &d);
		goto reset;
	}
	if (d.spool_failed || (f = gate_milter_spool_done(&sp)) == NULL ||
	    gate_milter_msg_read(&msg, f, &why) != 0) {
		log_warn("%s milter spool error: %s", s->id, why ? why : "write failed");
		gate_reply(s, "451 4.3.0 Cannot spool the message, try again later");
		goto reset;
	}
	v = gate_milter_message(s->milters, &msg, reply, sizeof(reply));
	if (v == GMV_DISCARD) {
		log_verdict(s, "eom", v, reply);
		log_info("%s discarded from=\"<%s>\" rcpts=%u size=%zu reason=milter", s->id,
		    log_q(s->mail_from), s->nrcpt, d.size);
		gate_reply(s, "250 2.0.0 Ok: message discarded by a content filter");
		goto reset;
	}
	if (refuse(s, "eom", v, reply) != 0)
		goto reset;
	if (msg.quarantine != NULL)
		log_info("%s milter quarantine reason=\"%s\"", s->id, log_q(msg.quarantine));
	if ((msg.nadd_rcpt > 0 || msg.ndel_rcpt > 0 || msg.new_from != NULL) &&
	    replay(s, &msg) != 0)
		goto reset;
	d.spool = NULL;
	if (gate_data_begin(s, &d, 0) != 0)
		goto out;
	{
		struct line_ctx lc = { s, &d };
		if (gate_milter_msg_lines(&msg, line_cb, &lc) < 0 && !d.be_failed) {
			log_warn("%s milter spool read error", s->id);
			gate_backend_close(s, 0);
			gate_reply(s, "451 4.3.0 Cannot read the spooled message, try again later");
			gate_data_end_transaction(s);
			goto out;
		}
	}
	gate_data_finish(s, &d);
	goto out;
reset:
	gate_backend_rset(s);
	gate_data_end_transaction(s);
out:
	gate_milter_msg_free(&msg);
	gate_milter_spool_free(&sp);
	free(d.chunk);
}

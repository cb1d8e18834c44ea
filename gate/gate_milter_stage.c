/*
 * gate_milter_stage.c — the SMTP-stage events of the gate's milter client:
 * macros before each stage, connect, HELO, MAIL, RCPT, DATA, ABORT, then
 * the message (headers, end of headers, body chunks) to each milter in
 * turn, the final replies and the verdict of each stage (gate_milter.h
 * says what each verdict means and its scope).
 *
 * As Postfix's milter8.c: macros are sent before an event even when the
 * milter asked not to see the event, `accept` at CONNECT/HELO ends the
 * milter's part in the session and later `accept` ends it for the message,
 * DISCARD is refused at CONNECT/HELO. End of message is gate_milter_mods.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "gate_milter.h"
#include "log.h"
#include "smtp.h"
#include "gate_milter_int.h"

static const char gm_stage_cmd[M_NSTAGES] = { 'C', 'H', 'M', 'R', 'T', 'E', 'N' };
static const char *const gm_default_macros[M_NSTAGES] = {
	"j {daemon_name} {daemon_addr} v _ {client_addr} {client_name} {client_port} {client_ptr}",
	"{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
	"i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}",
	"i {rcpt_addr} {rcpt_host} {rcpt_mailer}",
	"i",
	"i",
	"i",
};

/* Append the macro packet for a stage to s->out (nothing if none defined). */
int
gm_add_macros(struct gate_milter_session *s, struct gm_milter *m, int stage)
{
	const char *list = m->c.macros[stage] ? m->c.macros[stage] : gm_default_macros[stage];
	struct gm_buf mb = { NULL, 0, 0, 0 };
	unsigned char c = (unsigned char)gm_stage_cmd[stage];
	int any = 0, rc = 0;
	char name[128];

	if (s->macro == NULL)
		return 0;
	if (gm_buf_add(&mb, &c, 1) != 0)
		return -1;
	for (const char *p = list; *p;) {
		size_t n;
		const char *val;

		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		n = strcspn(p, " ,\t");
		if (n == 0)
			break;
		if (n < sizeof name) {
			memcpy(name, p, n);
			name[n] = 0;
			val = s->macro(s->ctx, name);
			if (val && strlen(val) < 4096) {
				gm_buf_str(&mb, name);
				gm_buf_str(&mb, val);
				any = 1;
			}
		}
		p += n;
	}
	if (mb.oom)
		rc = -1;
	else if (any)
		rc = gm_buf_packet(&s->out, 'D', mb.p, mb.len);
	free(mb.p);
	return rc;
}

const char *
gm_stage_name(char cmd)
{
	switch (cmd) {
	case 'C': return "connect";
	case 'H': return "helo";
	case 'M': return "mail";
	case 'R': return "rcpt";
	case 'T': return "data";
	case 'L': return "header";
	case 'N': return "eoh";
	case 'B': return "body";
	case 'E': return "eom";
	case 'O': return "optneg";
	}
	return "?";
}

/*
 * Interpret one final reply to an event (not the EOM modifications).
 * Returns 1 when the exchange is over (verdict in *v), 0 for progress,
 * -1 with *why for a protocol error. *skip is set for SMFIR_SKIP.
 */
int
gm_final_reply(struct gate_milter_session *s, struct gm_milter *m, char event,
    unsigned char cmd, const unsigned char *data, size_t len,
    enum gate_milter_verdict *v, int *skip, char *reply, size_t replylen,
    const char **why)
{
	int conn_event = (event == 'C' || event == 'H');
	char line[GATE_MILTER_REPLY_MAX];

	(void)s;
	if (cmd != 'y' && len != 0) {
		*why = "reply followed by unexpected data";
		return -1;
	}
	switch (cmd) {
	case 'p':
		return 0;
	case 'c':
		*v = GMV_CONTINUE;
		return 1;
	case 'a':
		m->state = conn_event ? GS_ACCEPT_CON : GS_ACCEPT_MSG;
		*v = GMV_CONTINUE;
		return 1;
	case 's':
		if (event != 'B') {
			*why = "skip reply outside the body";
			return -1;
		}
		*skip = 1;
		*v = GMV_CONTINUE;
		return 1;
	case 'd':
		if (conn_event) {
			*why = "discard at connect or helo";
			return -1;
		}
		m->state = GS_ACCEPT_MSG;
		*v = GMV_DISCARD;
		return 1;
	case 'r':
		*v = GMV_REJECT;
		gm_set_reply(reply, replylen, GM_REPLY_REJECT);
		break;
	case 't':
		*v = GMV_TEMPFAIL;
		gm_set_reply(reply, replylen, GM_REPLY_TEMPFAIL);
		break;
	case '4':
		*v = GMV_SHUTDOWN;
		gm_set_reply(reply, replylen, GM_REPLY_SHUTDOWN);
		m->state = GS_REJECT_CON;
		m->sticky = *v;
		snprintf(m->sticky_reply, sizeof m->sticky_reply, "%s", GM_REPLY_SHUTDOWN);
		return 1;
	case 'y':
		if ((*why = gm_check_yreply((const char *)data, len, v, line,
		    sizeof line)) != NULL)
			return -1;
		gm_set_reply(reply, replylen, line);
		break;
	default:
		*why = "unexpected reply command";
		return -1;
	}
	if (conn_event || *v == GMV_SHUTDOWN) {
		m->state = GS_REJECT_CON;
		m->sticky = *v;
		snprintf(m->sticky_reply, sizeof m->sticky_reply, "%s",
		    reply ? reply : "");
	}
	return 1;
}

/*
 * One event to one milter: macros for `stage` (or -1), then the event
 * (cmd + s->pay) unless the milter negotiated no_bit, then its reply unless
 * it negotiated nr_bit. *skip: the milter answered SMFIR_SKIP.
 */
enum gate_milter_verdict
gm_event(struct gate_milter_session *s, struct gm_milter *m, int stage,
    char cmd, uint32_t no_bit, uint32_t nr_bit, unsigned timeout_s,
    int *skip, char *reply, size_t replylen)
{
	long long deadline = gm_now_ms() + (long long)timeout_s * 1000;
	int send_event = (m->c.proto & no_bit) == 0;
	char ebuf[96];

	gm_set_reply(reply, replylen, "");
	/* DATA exists from protocol version 4 on: an older milter gets
	 * neither the event nor its macros (as Postfix does) */
	if (cmd == 'T' && m->c.version < 4)
		return GMV_CONTINUE;
	gm_buf_reset(&s->out);
	if (stage >= 0 && gm_add_macros(s, m, stage) != 0)
		return gm_fail(s, m, gm_stage_name(cmd), "out of memory", reply, replylen);
	if (send_event && gm_buf_packet(&s->out, cmd, s->pay.p, s->pay.len) != 0)
		return gm_fail(s, m, gm_stage_name(cmd), "out of memory", reply, replylen);
	if (s->out.len) {
		enum gm_io w;

		m->reusable = 0;
		w = gm_write_all(m->c.fd, s->out.p, s->out.len, deadline);

		if (w != GM_IO_OK)
			return gm_fail(s, m, gm_stage_name(cmd),
			    w == GM_IO_TIMEOUT ? "write timeout" : "write error",
			    reply, replylen);
	}
	if (!send_event || (m->c.proto & nr_bit))
		return GMV_CONTINUE;
	for (int i = 0; i < GM_MAX_REPLIES; i++) {
		unsigned char rc = 0;
		size_t len = 0;
		const char *why;
		enum gate_milter_verdict v = GMV_CONTINUE;
		int r;

		why = gm_conn_read(&m->c, i > 0, deadline, &rc, &len);
		if (why)
			return gm_fail(s, m, gm_stage_name(cmd), why, reply, replylen);
		m->reused = 0;
		r = gm_final_reply(s, m, cmd, rc, m->c.rbuf, len, &v, skip, reply,
		    replylen, &why);
		if (r < 0) {
			snprintf(ebuf, sizeof ebuf, "%s (0x%02x)", why, rc);
			return gm_fail(s, m, gm_stage_name(cmd), ebuf, reply, replylen);
		}
		if (r > 0) {
			if (v != GMV_CONTINUE)
				log_info("%s milter=%s stage=%s verdict=%s reply=\"%s\"",
				    s->id, m->conf->spec, gm_stage_name(cmd),
				    gate_milter_verdict_name(v), reply ? reply : "");
			return v;
		}
	}
	return gm_fail(s, m, gm_stage_name(cmd), "too many progress replies",
	    reply, replylen);
}

/*
 * Send the event in s->pay to every milter in turn; the first refusal ends
 * the chain. msg_scope: a message-level event (milters that accepted the
 * message are skipped).
 */
static enum gate_milter_verdict
gm_chain(struct gate_milter_session *s, int stage, char cmd, uint32_t no_bit,
    uint32_t nr_bit, int msg_scope, char *reply, size_t replylen)
{
	gm_set_reply(reply, replylen, "");
	for (size_t i = 0; i < s->n; i++) {
		struct gm_milter *m = &s->m[i];
		enum gate_milter_verdict v;
		int skip = 0;

		if (gm_skipped(m, msg_scope, &v, reply, replylen) == 0) {
			if (v != GMV_CONTINUE)
				return v;
			continue;
		}
		if (m->state != GS_ENVELOPE && m->state != GS_ACCEPT_MSG)
			continue;
		long long t0 = gm_now_ms();
		if (s->pay.oom)
			v = gm_fail(s, m, gm_stage_name(cmd), "out of memory", reply, replylen);
		else
			v = gm_event(s, m, stage, cmd, no_bit, nr_bit,
			    m->conf->command_timeout, &skip, reply, replylen);
		if (m->state == GS_CLOSED) {
			/* a reused connection was found closed (gm_fail): the
			 * session gets a new one, negotiated afresh */
			const char *why = NULL;

			if (gm_open(s, m, &why) != 0)
				v = gm_fail(s, m, "connect", why, reply, replylen);
			else {
				m->state = GS_ENVELOPE;
				v = gm_event(s, m, stage, cmd, no_bit, nr_bit,
				    m->conf->command_timeout, &skip, reply, replylen);
			}
		}
		if (m->conf->observe != NULL)
			m->conf->observe(i, (int)v, gm_now_ms() - t0);
		if (v == GMV_DISCARD) {
			s->discard = 1;
			gm_set_reply(reply, replylen, "");
			return GMV_CONTINUE;
		}
		if (v != GMV_CONTINUE)
			return v;
	}
	return GMV_CONTINUE;
}

enum gate_milter_verdict
gate_milter_connect(struct gate_milter_session *s, const char *client_name,
    const struct sockaddr_storage *peer, char *reply, size_t replylen)
{
	char addr[INET6_ADDRSTRLEN + 8], name[300];
	unsigned port = 0;
	char fam = 'U';
	uint16_t nport;
	enum gate_milter_verdict v;

	gm_set_reply(reply, replylen, "");
	if (s == NULL || s->n == 0)
		return GMV_CONTINUE;
	addr[0] = 0;
	if (peer && (peer->ss_family == AF_INET || peer->ss_family == AF_INET6)) {
		struct sockaddr_storage ss = *peer;

		net_unmap(&ss);
		if (net_addr_str(&ss, addr, sizeof addr, &port) == 0)
			fam = ss.ss_family == AF_INET ? '4' : '6';
	}
	if (client_name && client_name[0] && strcmp(client_name, "unknown") != 0)
		snprintf(name, sizeof name, "%s", client_name);
	else if (fam != 'U')
		snprintf(name, sizeof name, "[%s]", addr);
	else
		snprintf(name, sizeof name, "localhost");
	for (size_t i = 0; i < s->n; i++) {
		struct gm_milter *m = &s->m[i];
		const char *why = NULL;

		if (m->state != GS_CLOSED)
			continue;
		if (gm_pool_take(s, i, m) == 0)
			m->state = GS_ENVELOPE;
		else if (gm_open(s, m, &why) != 0)
			(void)gm_fail(s, m, "connect", why, NULL, 0);
		else
			m->state = GS_ENVELOPE;
	}
	gm_buf_reset(&s->pay);
	gm_buf_str(&s->pay, name);
	gm_buf_add(&s->pay, &fam, 1);
	if (fam != 'U') {
		nport = htons((uint16_t)port);
		gm_buf_add(&s->pay, &nport, 2);
		gm_buf_str(&s->pay, addr);
	}
	v = gm_chain(s, M_CONNECT, 'C', P_NOCONNECT, P_NR_CONN, 0, reply, replylen);
	for (size_t i = 0; i < s->n; i++)
		s->m[i].reused = 0;	/* past the first exchange */
	return v;
}

enum gate_milter_verdict
gate_milter_helo(struct gate_milter_session *s, const char *helo, char *reply,
    size_t replylen)
{
	gm_set_reply(reply, replylen, "");
	if (s == NULL || s->n == 0)
		return GMV_CONTINUE;
	if (s->in_txn)
		gate_milter_abort(s);
	gm_buf_reset(&s->pay);
	gm_buf_str(&s->pay, helo ? helo : "");
	return gm_chain(s, M_HELO, 'H', P_NOHELO, P_NR_HELO, 0, reply, replylen);
}

/* "<addr>\0param\0param\0..." into s->pay */
static void
gm_envelope_args(struct gate_milter_session *s, const char *addr, const char *params)
{
	gm_buf_reset(&s->pay);
	gm_buf_add(&s->pay, "<", 1);
	gm_buf_add(&s->pay, addr ? addr : "", addr ? strlen(addr) : 0);
	gm_buf_str(&s->pay, ">");
	for (const char *p = params ? params : ""; *p;) {
		size_t n;

		while (*p == ' ' || *p == '\t')
			p++;
		n = strcspn(p, " \t");
		if (n == 0)
			break;
		gm_buf_add(&s->pay, p, n);
		gm_buf_add(&s->pay, "", 1);
		p += n;
	}
}

enum gate_milter_verdict
gate_milter_mail(struct gate_milter_session *s, const char *addr,
    const char *params, char *reply, size_t replylen)
{
	gm_set_reply(reply, replylen, "");
	if (s == NULL || s->n == 0)
		return GMV_CONTINUE;
	if (s->in_txn)
		gate_milter_abort(s);
	s->in_txn = 1;
	s->discard = 0;
	gm_envelope_args(s, addr, params);
	return gm_chain(s, M_MAIL, 'M', P_NOMAIL, P_NR_MAIL, 1, reply, replylen);
}

enum gate_milter_verdict
gate_milter_rcpt(struct gate_milter_session *s, const char *addr,
    const char *params, char *reply, size_t replylen)
{
	gm_set_reply(reply, replylen, "");
	if (s == NULL || s->n == 0)
		return GMV_CONTINUE;
	gm_envelope_args(s, addr, params);
	return gm_chain(s, M_RCPT, 'R', P_NORCPT, P_NR_RCPT, 1, reply, replylen);
}

enum gate_milter_verdict
gate_milter_data(struct gate_milter_session *s, char *reply, size_t replylen)
{
	gm_set_reply(reply, replylen, "");
	if (s == NULL || s->n == 0)
		return GMV_CONTINUE;
	gm_buf_reset(&s->pay);
	return gm_chain(s, M_DATA, 'T', P_NODATA, P_NR_DATA, 1, reply, replylen);
}

void
gate_milter_abort(struct gate_milter_session *s)
{
	if (s == NULL)
		return;
	if (s->in_txn)
		for (size_t i = 0; i < s->n; i++) {
			struct gm_milter *m = &s->m[i];

			if (m->state != GS_ENVELOPE && m->state != GS_ACCEPT_MSG)
				continue;
			if (gm_send_simple(s, m, 'A', m->conf->command_timeout) != 0)
				(void)gm_fail(s, m, "abort", "write error", NULL, 0);
			else
				m->state = GS_ENVELOPE;
		}
	s->in_txn = 0;
	s->discard = 0;
}

/* Headers, EOH, body and EOM to one milter. */
static enum gate_milter_verdict
gm_message_one(struct gate_milter_session *s, struct gm_milter *m,
    struct gate_milter_msg *msg, char *reply, size_t replylen)
{
	unsigned to = m->conf->eom_timeout;
	long long deadline = gm_now_ms() + (long long)to * 1000;
	int lead = (m->c.proto & P_HDR_LEADSPC) != 0, skip = 0;
	enum gate_milter_verdict v;
	unsigned char *chunk = NULL;
	FILE *f;
	size_t n;

	for (size_t i = 0; i < msg->nhdr; i++) {
		const char *val = msg->hdr[i].value;
		size_t nl = gm_name_len(msg->hdr[i].name), vl;

		if (!lead && *val == ' ')
			val++;
		vl = strlen(val);
		if (nl + 2 > GM_DATA_MAX)
			continue;
		if (nl + vl + 2 > GM_DATA_MAX)
			vl = GM_DATA_MAX - nl - 2;	/* libmilter's limit */
		gm_buf_reset(&s->pay);
		gm_buf_add(&s->pay, msg->hdr[i].name, nl);	/* blanks before ':' go */
		gm_buf_add(&s->pay, "", 1);
		gm_buf_add(&s->pay, val, vl);
		gm_buf_add(&s->pay, "", 1);
		if (s->pay.oom)
			return gm_fail(s, m, "header", "out of memory", reply, replylen);
		v = gm_event(s, m, -1, 'L', P_NOHDRS, P_NR_HDR, to, &skip, reply, replylen);
		if (v != GMV_CONTINUE || m->state != GS_ENVELOPE)
			return v;
		if (gm_now_ms() > deadline)
			return gm_fail(s, m, "header", "timeout", reply, replylen);
	}
	gm_buf_reset(&s->pay);
	v = gm_event(s, m, M_EOH, 'N', P_NOEOH, P_NR_EOH, to, &skip, reply, replylen);
	if (v != GMV_CONTINUE || m->state != GS_ENVELOPE)
		return v;
	if (!(m->c.proto & P_NOBODY)) {
		if ((f = gm_body_rewind(msg)) == NULL && (msg->in || msg->body))
			return gm_fail(s, m, "body", "cannot read the spooled body",
			    reply, replylen);
		if (f && (chunk = malloc(GM_CHUNK)) == NULL)
			return gm_fail(s, m, "body", "out of memory", reply, replylen);
		while (f && !skip && (n = fread(chunk, 1, GM_CHUNK, f)) > 0) {
			gm_buf_reset(&s->pay);
			gm_buf_add(&s->pay, chunk, n);
			v = gm_event(s, m, -1, 'B', P_NOBODY, P_NR_BODY, to, &skip,
			    reply, replylen);
			if (v != GMV_CONTINUE || m->state != GS_ENVELOPE) {
				free(chunk);
				return v;
			}
			if (gm_now_ms() > deadline) {
				free(chunk);
				return gm_fail(s, m, "body", "timeout", reply, replylen);
			}
		}
		if (f && ferror(f)) {
			free(chunk);
			return gm_fail(s, m, "body", "spool read error", reply, replylen);
		}
		free(chunk);
	}
	return gm_eom(s, m, msg, deadline, reply, replylen);
}

enum gate_milter_verdict
gate_milter_message(struct gate_milter_session *s, struct gate_milter_msg *msg,
    char *reply, size_t replylen)
{
	enum gate_milter_verdict v = GMV_CONTINUE;

	gm_set_reply(reply, replylen, "");
	if (s == NULL || s->n == 0)
		return GMV_CONTINUE;
	s->hdr_bytes = 0;
	if (s->discard) {
		log_info("%s milter stage=eom verdict=discard (asked for earlier)", s->id);
		gate_milter_abort(s);
		return GMV_DISCARD;
	}
	for (size_t i = 0; i < s->n; i++) {
		struct gm_milter *m = &s->m[i];

		if (gm_skipped(m, 1, &v, reply, replylen) == 0) {
			if (m->state == GS_ACCEPT_MSG)
				m->state = GS_ENVELOPE;
			if (v != GMV_CONTINUE)
				break;
			continue;
		}
		if (m->state != GS_ENVELOPE)
			continue;
		long long t0 = gm_now_ms();
		v = gm_message_one(s, m, msg, reply, replylen);
		if (m->conf->observe != NULL)
			m->conf->observe(i, (int)v, gm_now_ms() - t0);
		if (m->state == GS_ACCEPT_MSG)
			m->state = GS_ENVELOPE;
		if (v != GMV_CONTINUE)
			break;
	}
	if (v != GMV_CONTINUE) {
		/* milters after the one that decided are inside the message */
		gate_milter_abort(s);
		if (v == GMV_DISCARD)
			gm_set_reply(reply, replylen, "");
		return v;
	}
	s->in_txn = 0;
	s->discard = 0;
	return GMV_CONTINUE;
}

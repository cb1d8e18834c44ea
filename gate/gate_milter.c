/*
 * gate_milter.c — the session object of the gate's milter client (MTA side
 * of the milter protocol, version 6): create and free a session (QUIT to
 * every milter), a milter's failure and its default action, and the states
 * in which a milter skips events (accepted, refused, failed). The API and
 * its rules are in gate_milter.h; the file map in gate_milter_int.h.
 *
 * Behaviour follows Postfix's milter8.c (the reference MTA side).
 *
 * Ownership: struct gate_milter_session owns one struct gm_milter per
 * configured milter (socket, macro lists, read buffer) and two packet
 * buffers (out: what is written next; pay: the payload of the event).
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

void
gm_set_reply(char *reply, size_t replylen, const char *s)
{
	if (reply == NULL || replylen == 0)
		return;
	snprintf(reply, replylen, "%s", s);
}

const char *
gate_milter_verdict_name(enum gate_milter_verdict v)
{
	switch (v) {
	case GMV_CONTINUE:	return "continue";
	case GMV_REJECT:	return "reject";
	case GMV_TEMPFAIL:	return "tempfail";
	case GMV_DISCARD:	return "discard";
	case GMV_SHUTDOWN:	return "shutdown";
	}
	return "?";
}

const char *
gm_default_name(int d)
{
	return d == GMD_ACCEPT ? "accept" : d == GMD_REJECT ? "reject" : "tempfail";
}


/* ---- session --------------------------------------------------------- */

struct gate_milter_session *
gate_milter_session_new(const struct gate_milter_set *set, const char *log_id,
    gate_milter_macro_fn macro, void *ctx)
{
	struct gate_milter_session *s;

	if ((s = calloc(1, sizeof *s)) == NULL)
		return NULL;
	s->set = set;
	snprintf(s->id, sizeof s->id, "%s", log_id ? log_id : "-");
	s->macro = macro;
	s->ctx = ctx;
	s->n = set ? set->n : 0;
	if (s->n && (s->m = calloc(s->n, sizeof *s->m)) == NULL) {
		free(s);
		return NULL;
	}
	for (size_t i = 0; i < s->n; i++) {
		s->m[i].conf = &set->v[i];
		s->m[i].c.fd = -1;
		s->m[i].state = GS_CLOSED;
	}
	return s;
}

size_t
gate_milter_count(const struct gate_milter_session *s)
{
	return s ? s->n : 0;
}

int
gate_milter_discarding(const struct gate_milter_session *s)
{
	return s && s->discard;
}

static void
gm_conn_close(struct gm_conn *c, const char *spec)
{
	if (c->fd >= 0) {
		if (close(c->fd) != 0)
			log_debug("milter=%s close: %s", spec, strerror(errno));
		c->fd = -1;
	}
	free(c->rbuf);
	c->rbuf = NULL;
	for (int i = 0; i < M_NSTAGES; i++) {
		free(c->macros[i]);
		c->macros[i] = NULL;
	}
}

void
gm_close(struct gm_milter *m)
{
	gm_conn_close(&m->c, m->conf->spec);
	m->reusable = m->reused = 0;
}

/* A packet without data (ABORT, QUIT, QUIT_NC) on c. 0 / -1. */
static int
gm_conn_send(struct gm_conn *c, char cmd, unsigned timeout_s)
{
	unsigned char p[5] = { 0, 0, 0, 1, (unsigned char)cmd };

	return gm_write_all(c->fd, p, sizeof p,
	    gm_now_ms() + (long long)timeout_s * 1000) == GM_IO_OK ? 0 : -1;
}

/* Send one packet without waiting for a reply (ABORT, QUIT). */
int
gm_send_simple(struct gate_milter_session *s, struct gm_milter *m, char cmd,
    unsigned timeout_s)
{
	(void)s;
	m->reusable = 0;
	return gm_conn_send(&m->c, cmd, timeout_s);
}

/* ---- the pool of idle connections ------------------------------------ */

struct gate_milter_pool *
gm_pool_new(size_t n)
{
	struct gate_milter_pool *p = calloc(1, sizeof *p);

	if (p == NULL)
		return NULL;
	p->n = n;
	if ((p->nidle = calloc(n ? n : 1, sizeof *p->nidle)) == NULL ||
	    (p->idle = calloc((n ? n : 1) * GM_POOL_MAX, sizeof *p->idle)) == NULL) {
		gm_pool_free(p);
		return NULL;
	}
	return p;
}

/* After QUIT_NC a milter waits for CONNECT (libmilter ignores a QUIT
 * then): closing is the end of a parked connection. */
static void
gm_pool_close_all(struct gate_milter_pool *p)
{
	for (size_t i = 0; p && i < p->n; i++)
		while (p->nidle[i] > 0)
			gm_conn_close(&p->idle[i * GM_POOL_MAX + --p->nidle[i]], "pool");
}

void
gm_pool_free(struct gate_milter_pool *p)
{
	if (p == NULL)
		return;
	gm_pool_close_all(p);
	free(p->nidle);
	free(p->idle);
	free(p);
}

/*
 * Park milter i's connection in the pool with QUIT_NC when it may be
 * reused (see gate_milter.h). 0: parked (m no longer owns it); -1: not.
 */
static int
gm_pool_put(struct gate_milter_session *s, size_t i, struct gm_milter *m)
{
	struct gate_milter_pool *p = s->set ? s->set->pool : NULL;
	struct gm_conn *slot;

	if (p == NULL || i >= p->n || p->nidle[i] >= GM_POOL_MAX || !m->reusable ||
	    m->c.version < 6 || m->state != GS_ENVELOPE || m->c.in.off < m->c.in.len)
		return -1;
	if (gm_conn_send(&m->c, 'K', 1) != 0)
		return -1;
	slot = &p->idle[i * GM_POOL_MAX + p->nidle[i]++];
	*slot = m->c;
	slot->since = gm_now_ms();
	memset(&m->c, 0, sizeof m->c);
	m->c.fd = -1;
	return 0;
}

/*
 * Take a parked connection for milter i into m: the newest one that is
 * neither readable (closed, or bytes nobody asked for) nor too old; the
 * others met on the way are closed. 0: taken; -1: none.
 */
int
gm_pool_take(struct gate_milter_session *s, size_t i, struct gm_milter *m)
{
	struct gate_milter_pool *p = s->set ? s->set->pool : NULL;
	long long now = gm_now_ms();

	while (p != NULL && i < p->n && p->nidle[i] > 0) {
		struct gm_conn *c = &p->idle[i * GM_POOL_MAX + --p->nidle[i]];
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

		if (now - c->since > GM_POOL_IDLE_MS || poll(&pfd, 1, 0) != 0) {
			log_debug("%s milter=%s idle connection dropped (%s)", s->id,
			    m->conf->spec, now - c->since > GM_POOL_IDLE_MS ?
			    "idle too long" : "closed or readable");
			gm_conn_close(c, m->conf->spec);
			continue;
		}
		m->c = *c;
		memset(c, 0, sizeof *c);
		c->fd = -1;
		m->reused = 1;
		m->reusable = 0;
		return 0;
	}
	return -1;
}

void
gate_milter_session_free(struct gate_milter_session *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++) {
		struct gm_milter *m = &s->m[i];

		if (m->c.fd >= 0 && m->state != GS_ERROR && gm_pool_put(s, i, m) != 0)
			(void)gm_send_simple(s, m, 'Q', 1);
		gm_close(m);
	}
	free(s->m);
	free(s->out.p);
	free(s->pay.p);
	free(s);
}

/* The milter failed: log, close, default action from now on. */
enum gate_milter_verdict
gm_fail(struct gate_milter_session *s, struct gm_milter *m, const char *stage,
    const char *why, char *reply, size_t replylen)
{
	if (m->reused && (strcmp(why, "connection closed") == 0 ||
	    strcmp(why, "read error") == 0 || strcmp(why, "write error") == 0)) {
		/* a parked connection the milter closed meanwhile: not a
		 * failure of the milter; gm_chain() opens a new one */
		log_debug("%s milter=%s stage=%s reused connection failed (%s): reconnecting",
		    s->id, m->conf->spec, stage, why);
		gm_close(m);
		m->state = GS_CLOSED;
		gm_set_reply(reply, replylen, "");
		return GMV_CONTINUE;
	}
	log_warn("%s milter=%s stage=%s error=\"%s\" default_action=%s", s->id,
	    m->conf->spec, stage, why, gm_default_name(m->conf->default_action));
	gm_close(m);
	m->state = GS_ERROR;
	switch (m->conf->default_action) {
	case GMD_ACCEPT:
		gm_set_reply(reply, replylen, "");
		return GMV_CONTINUE;
	case GMD_REJECT:
		gm_set_reply(reply, replylen, GM_REPLY_REJECT);
		return GMV_REJECT;
	default:
		gm_set_reply(reply, replylen, GM_REPLY_TEMPFAIL);
		return GMV_TEMPFAIL;
	}
}

/* What a milter in a state that skips events answers. -1: not skipped. */
int
gm_skipped(struct gm_milter *m, int msg_scope, enum gate_milter_verdict *v,
    char *reply, size_t replylen)
{
	switch (m->state) {
	case GS_ERROR:
		switch (m->conf->default_action) {
		case GMD_ACCEPT:
			*v = GMV_CONTINUE;
			gm_set_reply(reply, replylen, "");
			break;
		case GMD_REJECT:
			*v = GMV_REJECT;
			gm_set_reply(reply, replylen, GM_REPLY_REJECT);
			break;
		default:
			*v = GMV_TEMPFAIL;
			gm_set_reply(reply, replylen, GM_REPLY_TEMPFAIL);
			break;
		}
		return 0;
	case GS_REJECT_CON:
		*v = m->sticky;
		gm_set_reply(reply, replylen, m->sticky_reply);
		return 0;
	case GS_ACCEPT_CON:
		*v = GMV_CONTINUE;
		return 0;
	case GS_ACCEPT_MSG:
		if (msg_scope) {
			*v = GMV_CONTINUE;
			return 0;
		}
		return -1;
	default:
		return -1;
	}
}

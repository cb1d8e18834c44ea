/*
 * relay_worker — the delivery worker: batches from the scheduler, one
 * smarthost connection kept between them, the outcome of each attempt
 * written back to the spool (sent, bounced with a DSN, or deferred with
 * the next attempt time).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "log.h"
#include "relay_bounce.h"
#include "relay_deliver.h"
#include "relay_metrics.h"
#include "relay_proc.h"
#include "relay_sched.h"
#include "relay_spool.h"
#include "relay_worker.h"

/* nothing from the scheduler for this long: it is gone; stop */
#define WORKER_ORPHAN_MS	(600 * 1000)

struct worker {
	const struct relay_config *cfg;
	SSL_CTX		*ctx;
	struct relay_conn c;
	int		 failed;	/* no connection for the rest of this batch */
	char		 err[512];	/* why (a deferral reason) */
};

static unsigned
rnd32(void)
{
	unsigned r = 0;

	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
		r = (unsigned)time(NULL) ^ (unsigned)getpid();
	return r;
}

static void
log_attempt(const struct relay_msg *m, const struct relay_rcpt *r, const char *relay,
    const char *status)
{
	char to[300], rep[600];
	const char *reply = r->reply ? r->reply : "";

	log_info("%s to=\"<%s>\" relay=%s delay=%llds attempts=%u status=%s reply=\"%s\"",
	    m->id, log_quote(to, sizeof(to), r->addr, strlen(r->addr)),
	    relay && *relay ? relay : "none",
	    (long long)(time(NULL) - m->arrival), m->attempts, status,
	    log_quote(rep, sizeof(rep), reply, strlen(reply)));
}

/* A DSN was queued: log it and wake the scheduler for it. */
static void
dsn_announce(const struct relay_config *cfg, const char *id, const char *what,
    const char *newid)
{
	char msg[64];

	log_info("%s sender %s notification: %s", id, what, newid);
	snprintf(msg, sizeof(msg), "new %s", newid);
	(void)relay_notify(cfg->spool_dir, msg);
}

/* Apply this attempt's outcomes, decide retry/expiry/bounce, persist. */
static void
finish_msg(const struct relay_config *cfg, struct relay_msg *m, int fd,
    const char *relay)
{
	time_t now = time(NULL);
	size_t pending = 0, bounced = 0;
	char newid[RELAY_ID_LEN + 1], buf[700];

	m->attempts++;
	for (size_t i = 0; i < m->nrcpts; i++) {
		struct relay_rcpt *r = &m->rcpts[i];
		switch (r->outcome) {
		case RELAY_O_SENT:
			r->status = RELAY_R_SENT;
			relay_metric_rcpt(RMR_DELIVERED, m->arrival);
			/* NOTIFY=SUCCESS the smarthost was not told about */
			r->relayed = !m->hop_dsn && (r->notify & RELAY_NOTIFY_SUCCESS);
			log_attempt(m, r, relay, "sent");
			break;
		case RELAY_O_BOUNCED:
			r->status = RELAY_R_BOUNCED;
			relay_metric_rcpt(RMR_BOUNCED, m->arrival);
			log_attempt(m, r, relay, "bounced");
			break;
		case RELAY_O_DEFERRED:
			if (now - m->arrival >= (time_t)cfg->max_queue_lifetime) {
				snprintf(buf, sizeof(buf), "4.4.7 message expired after %llds in queue; last error: %s",
				    (long long)(now - m->arrival), r->reply ? r->reply : "none");
				free(r->reply);
				r->reply = strdup(buf);
				r->status = RELAY_R_BOUNCED;
				relay_metric_rcpt(RMR_EXPIRED, m->arrival);
				log_attempt(m, r, relay, "bounced");
			} else {
				relay_metric_rcpt(RMR_DEFERRED, m->arrival);
				log_attempt(m, r, relay, "deferred");
			}
			break;
		default:
			break;
		}
		r->outcome = RELAY_O_NONE;
		if (r->status == RELAY_R_PENDING)
			pending++;
		else if (r->status == RELAY_R_BOUNCED)
			bounced++;
	}
	if (relay_bounce_queue(cfg, m, fd, RELAY_DSN_RELAYED, relay, newid) == RELAY_DSN_QUEUED)
		dsn_announce(cfg, m->id, "relayed", newid);
	if (pending == 0) {
		if (bounced > 0 && !m->notified) {
			enum relay_dsn_result rc = relay_bounce_queue(cfg, m, fd,
			    RELAY_DSN_FAILED, relay, newid);
			if (rc == RELAY_DSN_ERROR) {
				log_err("%s dsn failed: %s; will retry", m->id, strerror(errno));
				m->next_attempt = now + cfg->min_backoff;
				if (relay_state_save(cfg->spool_dir, m) != 0)
					log_err("%s state save failed: %s", m->id, strerror(errno));
				return;
			}
			if (rc == RELAY_DSN_QUEUED) {
				relay_metric_dsn(RMD_FAILED);
				dsn_announce(cfg, m->id, "non-delivery", newid);
			}
			m->notified = 1;
		}
		if (relay_spool_remove(cfg->spool_dir, RELAY_DIR_QUEUE, m->id) != 0)
			log_err("%s remove failed: %s", m->id, strerror(errno));
		else
			log_info("%s removed", m->id);
		return;
	}
	if (cfg->delay_warning > 0 && !m->warned && now - m->arrival >= (time_t)cfg->delay_warning) {
		enum relay_dsn_result rc = relay_bounce_queue(cfg, m, fd, RELAY_DSN_DELAYED,
		    relay, newid);
		if (rc == RELAY_DSN_QUEUED) {
			relay_metric_dsn(RMD_DELAYED);
			dsn_announce(cfg, m->id, "delay", newid);
		}
		if (rc != RELAY_DSN_ERROR)
			m->warned = 1;
	}
	m->next_attempt = now + relay_sched_backoff(cfg, m->attempts, rnd32());
	if (relay_state_save(cfg->spool_dir, m) != 0)
		log_err("%s state save failed: %s", m->id, strerror(errno));
}

static void
defer_pending(struct relay_msg *m, const char *err)
{
	for (size_t k = 0; k < m->nrcpts; k++)
		if (m->rcpts[k].status == RELAY_R_PENDING) {
			m->rcpts[k].outcome = RELAY_O_DEFERRED;
			free(m->rcpts[k].reply);
			m->rcpts[k].reply = strdup(err);
		}
}

/* Open the connection if it is not: 0, or -1 with w->err set (and the
 * rest of the batch deferred without another connect). */
static int
conn_ready(struct worker *w)
{
	char e2[256];

	if (w->c.open)
		return 0;
	if (w->failed)
		return -1;
	if (relay_conn_open(w->cfg, w->ctx, &w->c, e2, sizeof(e2)) != 0) {
		snprintf(w->err, sizeof(w->err), "4.4.1 %s", e2);
		w->failed = 1;
		return -1;
	}
	return 0;
}

static void
deliver_one(struct worker *w, const char *id)
{
	const struct relay_config *cfg = w->cfg;
	struct relay_msg m;
	const char *why = NULL;
	int fd, any = 0;
	enum relay_lock lk = relay_spool_lock(cfg->spool_dir, RELAY_DIR_QUEUE, id, &fd);

	if (lk != RELAY_LOCK_OK) {
		if (lk == RELAY_LOCK_ERROR)
			log_warn("%s cannot open: %s", id, strerror(errno));
		else
			log_debug("%s skipped: %s", id,
			    lk == RELAY_LOCK_BUSY ? "owned by another process" : "gone");
		return;
	}
	if (relay_spool_read(fd, &m, &why) != 0) {
		log_err("%s corrupt queue file (%s): moved to corrupt/", id, why);
		if (relay_spool_corrupt(cfg->spool_dir, RELAY_DIR_QUEUE, id) != 0)
			log_err("%s move to corrupt/ failed: %s", id, strerror(errno));
		(void)close(fd);
		return;
	}
	if (relay_state_load(cfg->spool_dir, &m) != 0)
		log_warn("%s state file unreadable; treating all unsent as pending", m.id);
	for (size_t k = 0; k < m.nrcpts; k++)
		if (m.rcpts[k].status == RELAY_R_PENDING)
			any = 1;
	for (int tries = 0; any; tries++) {
		int rc;
		if (conn_ready(w) != 0) {
			defer_pending(&m, w->err);
			break;
		}
		rc = relay_deliver_msg(cfg, &w->c, &m, fd);
		if (rc == 0)
			break;
		relay_metric_smarthost_lost();
		relay_conn_close(&w->c);
		/* -2: a kept connection was found closed before anything of
		 * this message was sent: once more on a new one */
		if (rc != -2 || tries > 0) {
			if (rc == -2)
				defer_pending(&m, "4.4.2 lost connection with the smarthost");
			break;
		}
	}
	finish_msg(cfg, &m, fd, w->c.open ? w->c.relay : (w->c.relay[0] ? w->c.relay : "none"));
	relay_msg_free(&m);
	(void)close(fd);	/* releases the lock; the file was only read */
}

int
relay_worker_run(const struct relay_config *cfg, int sfd)
{
	struct worker w;
	char buf[RELAY_WORKER_BATCH_MAX * RELAY_WORKER_IDLEN], e2[256];
	int ctx_failed = 0;

	memset(&w, 0, sizeof(w));
	w.cfg = cfg;
	w.c.fd = -1;
	if (cfg->tls != RELAY_TLS_NONE) {
		w.ctx = relay_deliver_ctx(cfg, e2, sizeof(e2));
		if (w.ctx == NULL)
			ctx_failed = 1;
	}
	for (;;) {
		struct pollfd p[2];
		ssize_t n;
		int r;

		p[0].fd = sfd;
		p[0].events = POLLIN;
		p[1].fd = w.c.open ? w.c.fd : -1;
		p[1].events = POLLIN;
		p[0].revents = p[1].revents = 0;
		r = poll(p, 2, WORKER_ORPHAN_MS);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (p[1].revents != 0) {
			/* idle, yet the smarthost spoke (421 before its timeout)
			 * or closed: this connection is over */
			log_info("relay connection to %s closed by the smarthost while idle",
			    w.c.relay);
			relay_conn_abort(&w.c);
		}
		if (p[0].revents == 0)
			continue;
		n = recv(sfd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;		/* the scheduler closed our end */
		w.failed = ctx_failed;
		if (ctx_failed)
			snprintf(w.err, sizeof(w.err), "4.7.5 TLS setup: %s", e2);
		for (size_t i = 0; i + RELAY_WORKER_IDLEN <= (size_t)n; i += RELAY_WORKER_IDLEN) {
			char *id = buf + i;
			id[RELAY_WORKER_IDLEN - 1] = '\0';
			if (relay_spool_valid_id(id))
				deliver_one(&w, id);
		}
		if (send(sfd, "d", 1, MSG_NOSIGNAL) != 1)
			break;
	}
	relay_conn_close(&w.c);
	if (w.ctx)
		SSL_CTX_free(w.ctx);
	return 0;
}

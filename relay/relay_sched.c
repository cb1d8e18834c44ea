/*
 * relay_sched — scheduling, retries, lifetime, worker processes.
 *
 * Back-off: after n failed attempts the next one is min_backoff * 2^(n-1),
 * capped at max_backoff, times a random factor in [0.75, 1.25] (clipped to
 * [min_backoff, max_backoff]), so a queue that failed together does not
 * retry together. The time is written to the state file, so a restart
 * keeps it. A message whose age reached max_queue_lifetime when an attempt
 * fails temporarily is bounced (4.4.7); with delay_warning set, one
 * "delayed" DSN is sent when the age passes it.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "log.h"
#include "relay_bounce.h"
#include "relay_deliver.h"
#include "relay_proc.h"
#include "relay_metrics.h"
#include "relay_sched.h"
#include "relay_spool.h"

#define SCHED_SCAN_SECS		5	/* directory rescan without a wake-up */
#define SCHED_BUSY_RETRY	2	/* a message owned by someone else */
#define SCHED_BURST_MAX		10	/* rate_limit burst */

struct sched_entry {
	char	id[RELAY_ID_LEN + 1];
	time_t	next;
	pid_t	worker;		/* 0 = not in flight */
	int	seen;		/* found in the last scan */
};

struct sched {
	const struct relay_config *cfg;
	struct sched_entry *v;
	size_t	n, cap;
	pid_t	*workers;
	size_t	nworkers;
	double	tokens;
	struct timespec last_refill;
};

unsigned
relay_sched_backoff(const struct relay_config *cfg, unsigned attempts, unsigned rnd)
{
	unsigned long long d = cfg->min_backoff;
	double f;

	for (unsigned i = 1; i < attempts && d < cfg->max_backoff; i++)
		d *= 2;
	if (d > cfg->max_backoff)
		d = cfg->max_backoff;
	f = 0.75 + (double)(rnd % 1001) / 2000.0;	/* 0.75 .. 1.25 */
	d = (unsigned long long)((double)d * f);
	if (d < cfg->min_backoff)
		d = cfg->min_backoff;
	if (d > cfg->max_backoff)
		d = cfg->max_backoff;
	return (unsigned)d;
}

static unsigned
rnd32(void)
{
	unsigned r = 0;

	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
		r = (unsigned)time(NULL) ^ (unsigned)getpid();
	return r;
}

/* ---- worker --------------------------------------------------------------- */

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
	if (relay_bounce_queue(cfg, m, fd, RELAY_DSN_RELAYED, relay, newid) == RELAY_DSN_QUEUED) {
		char msg[64];
		log_info("%s sender relayed notification: %s", m->id, newid);
		snprintf(msg, sizeof(msg), "new %s", newid);
		(void)relay_notify(cfg->spool_dir, msg);
	}
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
				char msg[64];
				log_info("%s sender non-delivery notification: %s", m->id, newid);
				relay_metric_dsn(RMD_FAILED);
				snprintf(msg, sizeof(msg), "new %s", newid);
				(void)relay_notify(cfg->spool_dir, msg);
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
			char msg[64];
			log_info("%s sender delay notification: %s", m->id, newid);
			relay_metric_dsn(RMD_DELAYED);
			snprintf(msg, sizeof(msg), "new %s", newid);
			(void)relay_notify(cfg->spool_dir, msg);
		}
		if (rc != RELAY_DSN_ERROR)
			m->warned = 1;
	}
	m->next_attempt = now + relay_sched_backoff(cfg, m->attempts, rnd32());
	if (relay_state_save(cfg->spool_dir, m) != 0)
		log_err("%s state save failed: %s", m->id, strerror(errno));
}

int
relay_sched_deliver_batch(const struct relay_config *cfg, char (*ids)[17], size_t n)
{
	struct relay_conn c;
	char err[512], e2[256];
	SSL_CTX *ctx = NULL;
	int conn_failed = 0;

	memset(&c, 0, sizeof(c));
	c.fd = -1;
	err[0] = '\0';
	if (cfg->tls != RELAY_TLS_NONE) {
		ctx = relay_deliver_ctx(cfg, e2, sizeof(e2));
		if (ctx == NULL) {
			snprintf(err, sizeof(err), "4.7.5 TLS setup: %s", e2);
			conn_failed = 1;
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct relay_msg m;
		const char *why = NULL;
		int fd;
		enum relay_lock lk = relay_spool_lock(cfg->spool_dir, RELAY_DIR_QUEUE, ids[i], &fd);

		if (lk != RELAY_LOCK_OK) {
			if (lk == RELAY_LOCK_ERROR)
				log_warn("%s cannot open: %s", ids[i], strerror(errno));
			else
				log_debug("%s skipped: %s", ids[i],
				    lk == RELAY_LOCK_BUSY ? "owned by another process" : "gone");
			continue;
		}
		if (relay_spool_read(fd, &m, &why) != 0) {
			log_err("%s corrupt queue file (%s): moved to corrupt/", ids[i], why);
			if (relay_spool_corrupt(cfg->spool_dir, RELAY_DIR_QUEUE, ids[i]) != 0)
				log_err("%s move to corrupt/ failed: %s", ids[i], strerror(errno));
			(void)close(fd);
			continue;
		}
		if (relay_state_load(cfg->spool_dir, &m) != 0)
			log_warn("%s state file unreadable; treating all unsent as pending", m.id);
		int any = 0;
		for (size_t k = 0; k < m.nrcpts; k++)
			if (m.rcpts[k].status == RELAY_R_PENDING)
				any = 1;
		if (any) {
			if (!c.open && !conn_failed) {
				if (relay_conn_open(cfg, ctx, &c, e2, sizeof(e2)) != 0) {
					snprintf(err, sizeof(err), "4.4.1 %s", e2);
					conn_failed = 1;
				}
			}
			if (c.open) {
				if (relay_deliver_msg(cfg, &c, &m, fd) != 0) {
					relay_metric_smarthost_lost();
					relay_conn_close(&c);
					/* one reconnect per batch, then give up on it */
					if (relay_conn_open(cfg, ctx, &c, e2, sizeof(e2)) != 0) {
						snprintf(err, sizeof(err), "4.4.1 %s", e2);
						conn_failed = 1;
					}
				}
			} else {
				for (size_t k = 0; k < m.nrcpts; k++)
					if (m.rcpts[k].status == RELAY_R_PENDING) {
						m.rcpts[k].outcome = RELAY_O_DEFERRED;
						free(m.rcpts[k].reply);
						m.rcpts[k].reply = strdup(err);
					}
			}
		}
		finish_msg(cfg, &m, fd, c.open ? c.relay : (c.relay[0] ? c.relay : "none"));
		relay_msg_free(&m);
		(void)close(fd);	/* releases the lock; the file was only read */
	}
	relay_conn_close(&c);
	if (ctx)
		SSL_CTX_free(ctx);
	return 0;
}

/* ---- scheduler ------------------------------------------------------------ */

static struct sched_entry *
find(struct sched *s, const char *id)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i].id, id) == 0)
			return &s->v[i];
	return NULL;
}

static time_t
load_next(const struct relay_config *cfg, const char *id)
{
	struct relay_msg m;

	memset(&m, 0, sizeof(m));
	memcpy(m.id, id, RELAY_ID_LEN + 1);
	if (relay_state_load(cfg->spool_dir, &m) != 0)
		return 0;
	return m.next_attempt;
}

static struct sched_entry *
add(struct sched *s, const char *id)
{
	struct sched_entry *e = find(s, id);

	if (e)
		return e;
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 256;
		struct sched_entry *nv = realloc(s->v, nc * sizeof(*nv));
		if (nv == NULL)
			return NULL;
		s->v = nv;
		s->cap = nc;
	}
	e = &s->v[s->n++];
	memset(e, 0, sizeof(*e));
	memcpy(e->id, id, RELAY_ID_LEN + 1);
	e->next = load_next(s->cfg, id);
	e->seen = 1;
	return e;
}

static void
scan(struct sched *s)
{
	char p[4096];
	struct dirent *de;
	DIR *d;

	if (relay_pathf(p, sizeof(p), "%s/queue", s->cfg->spool_dir) != 0 ||
	    (d = opendir(p)) == NULL) {
		log_err("scheduler: cannot read %s/queue: %s", s->cfg->spool_dir, strerror(errno));
		return;
	}
	for (size_t i = 0; i < s->n; i++)
		s->v[i].seen = 0;
	while ((de = readdir(d)) != NULL) {
		struct sched_entry *e;
		if (!relay_spool_valid_id(de->d_name))
			continue;
		e = find(s, de->d_name);
		if (e == NULL)
			e = add(s, de->d_name);
		if (e)
			e->seen = 1;
	}
	(void)closedir(d);
	/* forget what is gone (delivered, deleted, held), unless in flight */
	for (size_t i = 0; i < s->n; ) {
		if (!s->v[i].seen && s->v[i].worker == 0)
			s->v[i] = s->v[--s->n];
		else
			i++;
	}
}

static void
refill(struct sched *s)
{
	struct timespec now;
	double el, cap;

	if (s->cfg->rate_count == 0)
		return;
	(void)clock_gettime(CLOCK_MONOTONIC, &now);
	el = (double)(now.tv_sec - s->last_refill.tv_sec) +
	    (double)(now.tv_nsec - s->last_refill.tv_nsec) / 1e9;
	s->last_refill = now;
	cap = s->cfg->rate_count < SCHED_BURST_MAX ? (double)s->cfg->rate_count : SCHED_BURST_MAX;
	s->tokens += el * (double)s->cfg->rate_count / (double)s->cfg->rate_period;
	if (s->tokens > cap)
		s->tokens = cap;
}

static int
cmp_next(const void *a, const void *b)
{
	const struct sched_entry *x = *(struct sched_entry *const *)a;
	const struct sched_entry *y = *(struct sched_entry *const *)b;

	return x->next < y->next ? -1 : x->next > y->next;
}

static void
dispatch(struct sched *s)
{
	time_t now = time(NULL);
	struct sched_entry **due;
	size_t ndue = 0, k = 0;

	if (s->nworkers >= s->cfg->max_connections || s->n == 0)
		return;
	due = malloc(s->n * sizeof(*due));
	if (due == NULL)
		return;
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].worker == 0 && s->v[i].next <= now)
			due[ndue++] = &s->v[i];
	qsort(due, ndue, sizeof(*due), cmp_next);
	refill(s);
	while (k < ndue && s->nworkers < s->cfg->max_connections) {
		size_t free_w = s->cfg->max_connections - s->nworkers;
		size_t left = ndue - k, b = (left + free_w - 1) / free_w;
		char (*ids)[17];
		pid_t pid;

		if (b > s->cfg->batch_size)
			b = s->cfg->batch_size;
		if (s->cfg->rate_count) {
			if (s->tokens < 1.0)
				break;
			if ((double)b > s->tokens)
				b = (size_t)s->tokens;
			s->tokens -= (double)b;
		}
		ids = malloc(b * sizeof(*ids));
		if (ids == NULL)
			break;
		for (size_t j = 0; j < b; j++)
			memcpy(ids[j], due[k + j]->id, RELAY_ID_LEN + 1);
		pid = fork();
		if (pid < 0) {
			log_err("scheduler fork: %s", strerror(errno));
			free(ids);
			break;
		}
		if (pid == 0) {
			int rc;
			relay_sig_reset();
			free(due);
			rc = relay_sched_deliver_batch(s->cfg, ids, b);
			free(ids);
			_exit(rc);
		}
		free(ids);
		log_debug("scheduler: worker %ld takes %zu message(s), %zu due, tokens %.2f",
		    (long)pid, b, ndue - k, s->tokens);
		for (size_t j = 0; j < b; j++)
			due[k + j]->worker = pid;
		k += b;
		s->workers[s->nworkers++] = pid;
	}
	free(due);
}

static void
reap(struct sched *s)
{
	pid_t pid;
	int st;
	time_t now = time(NULL);

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (size_t i = 0; i < s->nworkers; i++)
			if (s->workers[i] == pid) {
				s->workers[i] = s->workers[--s->nworkers];
				break;
			}
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			log_warn("delivery worker %ld ended abnormally (status %d)", (long)pid, st);
		for (size_t i = 0; i < s->n; i++)
			if (s->v[i].worker == pid) {
				struct stat sb;
				char p[4096];
				s->v[i].worker = 0;
				if (relay_pathf(p, sizeof(p), "%s/queue/%s", s->cfg->spool_dir,
				    s->v[i].id) != 0 || stat(p, &sb) != 0) {
					s->v[i].seen = -1;	/* gone: dropped below */
					continue;
				}
				s->v[i].next = load_next(s->cfg, s->v[i].id);
				/* still due: someone else owns it or it was skipped */
				if (s->v[i].next <= now)
					s->v[i].next = now + SCHED_BUSY_RETRY;
			}
	}
	/* forget delivered, deleted or held messages now, not at the next
	 * scan: a stale entry would be due and waste a worker and a token */
	for (size_t i = 0; i < s->n; ) {
		if (s->v[i].seen == -1)
			s->v[i] = s->v[--s->n];
		else
			i++;
	}
}

static int
control_open(const char *spool)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (relay_pathf(sun.sun_path, sizeof(sun.sun_path), "%s/control", spool) != 0)
		return -1;
	if (unlink(sun.sun_path) != 0 && errno != ENOENT)
		return -1;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	/* the mode comes from the umask at bind (0660: the relay user's group
	 * may send "flush"), never from a chmod of a path in a directory the
	 * service user can write */
	{
		mode_t old = umask(0117);
		int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
		int e = errno;
		(void)umask(old);
		if (rc != 0) {
			(void)close(fd);
			errno = e;
			return -1;
		}
	}
	{
		/* room for bursts of "new" datagrams; a lost one only delays
		 * a message until the next scan (see control_read) */
		int sz = 1 << 20;
		if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz)) != 0)
			log_warn("scheduler: SO_RCVBUF: %s", strerror(errno));
	}
	return fd;
}

static void
control_read(struct sched *s, int fd, int *rescan)
{
	char buf[128];
	ssize_t n;

	int got = 0;

	for (int i = 0; i < 1000 && (n = recv(fd, buf, sizeof(buf) - 1, 0)) > 0; i++) {
		buf[n] = '\0';
		got++;
		if (strncmp(buf, "new ", 4) == 0 && relay_spool_valid_id(buf + 4)) {
			struct sched_entry *e = add(s, buf + 4);
			if (e && e->worker == 0)
				e->next = 0;
		} else if (strcmp(buf, "flush") == 0) {
			*rescan = 1;
			for (size_t k = 0; k < s->n; k++)
				s->v[k].next = 0;
			log_info("scheduler: flush all");
		} else if (strncmp(buf, "flush ", 6) == 0 && relay_spool_valid_id(buf + 6)) {
			struct sched_entry *e = add(s, buf + 6);
			if (e)
				e->next = 0;
			log_info("%s flush requested", buf + 6);
		}
	}
	/* a burst of wake-ups may overflow the socket (the receiver does not
	 * block on it): while mail is arriving, the directory is scanned
	 * every second (see relay_sched_run) */
	if (got > 0)
		*rescan = 2;
}

int
relay_sched_run(const struct relay_config *cfg)
{
	struct sched s;
	int cfd;
	time_t last_scan = 0, last_wake = 0;

	memset(&s, 0, sizeof(s));
	s.cfg = cfg;
	s.workers = calloc(cfg->max_connections, sizeof(pid_t));
	if (s.workers == NULL)
		return 1;
	(void)clock_gettime(CLOCK_MONOTONIC, &s.last_refill);
	s.tokens = cfg->rate_count < SCHED_BURST_MAX ? (double)cfg->rate_count : SCHED_BURST_MAX;
	cfd = control_open(cfg->spool_dir);
	if (cfd < 0) {
		log_err("scheduler: control socket in %s: %s", cfg->spool_dir, strerror(errno));
		free(s.workers);
		return 1;
	}
	log_info("scheduler started smarthosts=%zu max_connections=%llu",
	    cfg->nsmarthosts, cfg->max_connections);
	for (;;) {
		struct pollfd pfd[2];
		int rescan = 0, timeout = 1000;
		time_t now = time(NULL);

		if (now - last_scan >= (now - last_wake < SCHED_SCAN_SECS ? 1 : SCHED_SCAN_SECS)) {
			scan(&s);
			last_scan = now;
		}
		dispatch(&s);
		if (cfg->rate_count && s.tokens < 1.0)
			timeout = 200;
		pfd[0].fd = cfd;
		pfd[0].events = POLLIN;
		pfd[1].fd = relay_sig_fd();
		pfd[1].events = POLLIN;
		pfd[0].revents = pfd[1].revents = 0;
		if (poll(pfd, 2, timeout) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents & POLLIN)
			control_read(&s, cfd, &rescan);
		if (rescan == 1)
			last_scan = 0;
		else if (rescan == 2)
			last_wake = now;
		if (relay_sig_take(RELAY_SIG_CHLD) || s.nworkers > 0)
			reap(&s);
		if (relay_sig_take(RELAY_SIG_TERM))
			break;
		(void)relay_sig_take(RELAY_SIG_HUP);
	}
	/* workers keep their locks and finish on their own */
	(void)close(cfd);
	free(s.v);
	free(s.workers);
	log_info("scheduler stopped");
	return 0;
}

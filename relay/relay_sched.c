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
#include "relay_worker.h"

#define SCHED_SCAN_SECS		5	/* directory rescan without a wake-up */
#define SCHED_BUSY_RETRY	2	/* a message owned by someone else */
#define SCHED_BURST_MAX		10	/* rate_limit burst */

struct sched_entry {
	char	id[RELAY_ID_LEN + 1];
	time_t	next;
	pid_t	worker;		/* 0 = not in flight */
	int	seen;		/* found in the last scan */
	int	renew;		/* "new ID" came while in flight: due at once after */
};

/* A delivery worker. It counts against max_connections until reaped;
 * fd = -1 once we closed our end (it is then finishing and quitting). */
struct sched_worker {
	pid_t	pid;
	int	fd;		/* our end of its SOCK_SEQPACKET pair */
	size_t	inflight;	/* ids of the batch it is delivering; 0 = idle */
	unsigned long long given;	/* ids handed to it in all */
	time_t	idle_since;
};

struct sched {
	const struct relay_config *cfg;
	struct sched_entry *v;
	size_t	n, cap;
	struct sched_worker *workers;
	size_t	nworkers;
	int	cfd;		/* control socket (closed in workers) */
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

/* A worker's batch is over (or the worker is gone): its messages are no
 * longer in flight; what is still queued gets its next time from disk. */
static void
release(struct sched *s, pid_t pid)
{
	time_t now = time(NULL);

	for (size_t i = 0; i < s->n; i++) {
		struct stat sb;
		char p[4096];
		if (s->v[i].worker != pid)
			continue;
		s->v[i].worker = 0;
		if (relay_pathf(p, sizeof(p), "%s/queue/%s", s->cfg->spool_dir,
		    s->v[i].id) != 0 || stat(p, &sb) != 0) {
			s->v[i].seen = -1;	/* gone: dropped below */
			continue;
		}
		s->v[i].next = load_next(s->cfg, s->v[i].id);
		/* still due: someone else owns it (a receiver still syncing it,
		 * the queue command) or it was skipped */
		if (s->v[i].next <= now)
			s->v[i].next = s->v[i].renew ? 0 : now + SCHED_BUSY_RETRY;
		s->v[i].renew = 0;
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

static struct sched_worker *
spawn_worker(struct sched *s)
{
	struct sched_worker *w;
	int fd;
	pid_t pid = relay_fork_paired("scheduler", &fd);

	if (pid < 0)
		return NULL;
	if (pid == 0) {
		/* only our own pair stays open: a worker sees the end of the
		 * scheduler's interest in it as EOF on its end */
		(void)close(s->cfd);
		for (size_t i = 0; i < s->nworkers; i++)
			if (s->workers[i].fd >= 0)
				(void)close(s->workers[i].fd);
		_exit(relay_worker_run(s->cfg, fd));
	}
	w = &s->workers[s->nworkers++];
	memset(w, 0, sizeof(*w));
	w->pid = pid;
	w->fd = fd;
	w->idle_since = time(NULL);
	return w;
}

static struct sched_worker *
idle_worker(struct sched *s)
{
	for (size_t i = 0; i < s->nworkers; i++)
		if (s->workers[i].fd >= 0 && s->workers[i].inflight == 0)
			return &s->workers[i];
	return NULL;
}

static void
dispatch(struct sched *s)
{
	time_t now = time(NULL);
	struct sched_entry **due;
	size_t ndue = 0, k = 0, idle = 0;
	char (*ids)[RELAY_WORKER_IDLEN];

	if (s->n == 0)
		return;
	/* workers first, forked before anything is allocated here */
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].worker == 0 && s->v[i].next <= now)
			ndue++;
	for (size_t i = 0; i < s->nworkers; i++)
		if (s->workers[i].fd >= 0 && s->workers[i].inflight == 0)
			idle++;
	refill(s);
	while (idle < ndue && s->nworkers < s->cfg->max_connections &&
	    (!s->cfg->rate_count || s->tokens >= 1.0 + (double)idle) &&
	    spawn_worker(s) != NULL)
		idle++;
	if (ndue == 0)
		return;
	ndue = 0;
	due = malloc(s->n * sizeof(*due));
	ids = malloc(RELAY_WORKER_BATCH_MAX * sizeof(*ids));
	if (due == NULL || ids == NULL) {
		free(due);
		free(ids);
		return;
	}
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].worker == 0 && s->v[i].next <= now)
			due[ndue++] = &s->v[i];
	qsort(due, ndue, sizeof(*due), cmp_next);
	while (k < ndue) {
		struct sched_worker *w = idle_worker(s);
		size_t left = ndue - k, b;

		if (w == NULL)
			break;
		/* spread what is due over all the connections, busy ones
		 * included: the next one free takes the next share */
		b = (left + s->cfg->max_connections - 1) / s->cfg->max_connections;
		if (b > s->cfg->batch_size - w->given)
			b = s->cfg->batch_size - w->given;
		if (b > RELAY_WORKER_BATCH_MAX)
			b = RELAY_WORKER_BATCH_MAX;
		if (s->cfg->rate_count) {
			if (s->tokens < 1.0)
				break;
			if ((double)b > s->tokens)
				b = (size_t)s->tokens;
		}
		for (size_t j = 0; j < b; j++)
			memcpy(ids[j], due[k + j]->id, RELAY_WORKER_IDLEN);
		if (send(w->fd, ids, b * sizeof(*ids), MSG_DONTWAIT | MSG_NOSIGNAL) !=
		    (ssize_t)(b * sizeof(*ids))) {
			log_warn("scheduler: worker %ld does not take work: %s", (long)w->pid,
			    strerror(errno));
			relay_pair_close(&w->fd);
			continue;
		}
		if (s->cfg->rate_count)
			s->tokens -= (double)b;
		log_debug("scheduler: worker %ld takes %zu message(s), %zu due, tokens %.2f",
		    (long)w->pid, b, ndue - k, s->tokens);
		for (size_t j = 0; j < b; j++)
			due[k + j]->worker = w->pid;
		w->inflight = b;
		w->given += b;
		k += b;
	}
	free(ids);
	free(due);
}

/* A worker's word: one byte per finished batch; EOF when it is gone. */
static void
worker_read(struct sched *s, struct sched_worker *w)
{
	char c;
	ssize_t n = recv(w->fd, &c, 1, MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n == 1) {
		w->inflight = 0;
		w->idle_since = time(NULL);
		release(s, w->pid);
		if (w->given >= s->cfg->batch_size)
			relay_pair_close(&w->fd);	/* carried its share: a fresh connection next */
		return;
	}
	relay_pair_close(&w->fd);	/* gone: its messages are released when it is reaped */
}

/* Idle connections are kept connection_reuse_time, then closed. */
static void
expire_idle(struct sched *s)
{
	time_t now = time(NULL);

	for (size_t i = 0; i < s->nworkers; i++) {
		struct sched_worker *w = &s->workers[i];
		if (w->fd >= 0 && w->inflight == 0 &&
		    now - w->idle_since >= (time_t)s->cfg->connection_reuse_time)
			relay_pair_close(&w->fd);
	}
}

static void
reap(struct sched *s)
{
	pid_t pid;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (size_t i = 0; i < s->nworkers; i++)
			if (s->workers[i].pid == pid) {
				relay_pair_close(&s->workers[i].fd);
				s->workers[i] = s->workers[--s->nworkers];
				break;
			}
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			log_warn("delivery worker %ld ended abnormally (status %d)", (long)pid, st);
		release(s, pid);
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
			else if (e)
				e->renew = 1;
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
	struct pollfd *pfd;
	time_t last_scan = 0, last_wake = 0;

	memset(&s, 0, sizeof(s));
	s.cfg = cfg;
	s.workers = calloc(cfg->max_connections, sizeof(*s.workers));
	pfd = calloc(cfg->max_connections + 2, sizeof(*pfd));
	if (s.workers == NULL || pfd == NULL) {
		free(s.workers);
		free(pfd);
		return 1;
	}
	(void)clock_gettime(CLOCK_MONOTONIC, &s.last_refill);
	s.tokens = cfg->rate_count < SCHED_BURST_MAX ? (double)cfg->rate_count : SCHED_BURST_MAX;
	s.cfd = control_open(cfg->spool_dir);
	if (s.cfd < 0) {
		log_err("scheduler: control socket in %s: %s", cfg->spool_dir, strerror(errno));
		free(s.workers);
		free(pfd);
		return 1;
	}
	log_info("scheduler started smarthosts=%zu max_connections=%llu",
	    cfg->nsmarthosts, cfg->max_connections);
	for (;;) {
		int rescan = 0, timeout = 1000;
		size_t np = 2, nw;
		pid_t polled[256];
		time_t now = time(NULL);

		if (now - last_scan >= (now - last_wake < SCHED_SCAN_SECS ? 1 : SCHED_SCAN_SECS)) {
			scan(&s);
			last_scan = now;
		}
		dispatch(&s);
		expire_idle(&s);
		if (cfg->rate_count && s.tokens < 1.0)
			timeout = 200;
		pfd[0].fd = s.cfd;
		pfd[1].fd = relay_sig_fd();
		for (size_t i = 0; i < s.nworkers; i++)
			if (s.workers[i].fd >= 0) {
				polled[np - 2] = s.workers[i].pid;
				pfd[np++].fd = s.workers[i].fd;
			}
		nw = np - 2;
		for (size_t i = 0; i < np; i++) {
			pfd[i].events = POLLIN;
			pfd[i].revents = 0;
		}
		if (poll(pfd, np, timeout) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents & POLLIN)
			control_read(&s, s.cfd, &rescan);
		for (size_t i = 0; i < nw; i++) {
			if (pfd[i + 2].revents == 0)
				continue;
			for (size_t j = 0; j < s.nworkers; j++)
				if (s.workers[j].pid == polled[i] && s.workers[j].fd >= 0)
					worker_read(&s, &s.workers[j]);
		}
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
	/* workers finish their batch, keeping their locks, and quit at the
	 * end of our ends of their pairs */
	for (size_t i = 0; i < s.nworkers; i++)
		relay_pair_close(&s.workers[i].fd);
	(void)close(s.cfd);
	free(s.v);
	free(s.workers);
	free(pfd);
	log_info("scheduler stopped");
	return 0;
}

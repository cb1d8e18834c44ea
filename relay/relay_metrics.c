/*
 * relay_metrics — tailwart-relay's Prometheus metrics: the family table,
 * the master's side (map the shared region, bind metrics_listen, keep the
 * endpoint child alive) and the queue gauges computed at scrape time.
 *
 * Design. Same as the gate (see gate/gate_metrics.c): the master maps the
 * counter region (lib/metrics.c) before it forks the receiver and the
 * scheduler, so both, and the scheduler's delivery children, add to it
 * with relaxed atomic adds, and the counts survive their restarts and a
 * HUP. The endpoint is a small child of the master, forked from its
 * one-second tick (after daemonizing), dropped to `user` and tied to the
 * master by PDEATHSIG; it serves GET /metrics from a poll loop
 * (lib/metrics_http.c). Before each scrape it counts the spool: files in
 * incoming/ (being received), queue/ (active: due now or being delivered;
 * deferred: next attempt in the future, from state/), hold/; and the age of
 * the oldest message in queue/ and hold/ (the queue file's mtime is its
 * arrival). It only reads: it takes no lock, so it never delays a delivery.
 * metrics_listen is read at start; a reload that changes it is ignored.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "relay_config.h"
#include "relay_metrics.h"
#include "relay_proc.h"
#include "relay_spool.h"

static const char *const v_rcpt[] = { "delivered", "deferred", "bounced", "expired" };
static const char *const v_state[] = { "incoming", "active", "deferred", "held" };
static const char *const v_kind[] = { "dns", "connect", "tls", "auth", "protocol", "lost" };
static const char *const v_dsn[] = { "failed", "delayed" };
static const char *const v_dkim[] = { "signed", "failed" };

static const double b_delay[] = { 1, 5, 15, 60, 300, 900, 3600, 14400, 86400, 432000 };
static const double b_commit[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1 };

static const struct metrics_family relay_families[RMF_COUNT] = {
	[RMF_RECEIVED] = { "tailwart_relay_messages_received_total",
	    "Messages committed to the spool (answered 250).", METRICS_COUNTER,
	    { METRICS_NOLABEL, METRICS_NOLABEL }, NULL, 0 },
	[RMF_RCPTS] = { "tailwart_relay_recipients_total",
	    "Recipient outcomes of delivery attempts: delivered, deferred (will retry), "
	    "bounced (permanent failure), expired (max_queue_lifetime passed).", METRICS_COUNTER,
	    { METRICS_LABEL("result", v_rcpt), METRICS_NOLABEL }, NULL, 0 },
	[RMF_DELAY] = { "tailwart_relay_delivery_delay_seconds",
	    "Time from arrival in the spool to delivery, per delivered recipient.",
	    METRICS_HISTOGRAM, { METRICS_NOLABEL, METRICS_NOLABEL }, METRICS_BUCKETS(b_delay) },
	[RMF_QUEUE] = { "tailwart_relay_queue_messages",
	    "Messages in the spool by state (counted at scrape time).", METRICS_GAUGE,
	    { METRICS_LABEL("state", v_state), METRICS_NOLABEL }, NULL, 0 },
	[RMF_OLDEST] = { "tailwart_relay_queue_oldest_age_seconds",
	    "Age of the oldest message in queue/ and hold/ (0 when empty).", METRICS_GAUGE,
	    { METRICS_NOLABEL, METRICS_NOLABEL }, NULL, 0 },
	[RMF_SMARTHOST] = { "tailwart_relay_smarthost_errors_total",
	    "Failed smarthost attempts by kind (dns, connect, tls, auth, protocol, lost).",
	    METRICS_COUNTER, { METRICS_LABEL("kind", v_kind), METRICS_NOLABEL }, NULL, 0 },
	[RMF_DSN] = { "tailwart_relay_bounces_sent_total",
	    "Delivery status notifications queued to senders: failed or delayed.",
	    METRICS_COUNTER, { METRICS_LABEL("kind", v_dsn), METRICS_NOLABEL }, NULL, 0 },
	[RMF_DKIM] = { "tailwart_relay_dkim_signatures_total",
	    "DKIM signing at receipt: signed, or failed (the message was tempfailed).",
	    METRICS_COUNTER, { METRICS_LABEL("result", v_dkim), METRICS_NOLABEL }, NULL, 0 },
	[RMF_COMMIT] = { "tailwart_relay_spool_commit_seconds",
	    "Time to make a received message durable (trailer, fsync, rename, fsync dir).",
	    METRICS_HISTOGRAM, { METRICS_NOLABEL, METRICS_NOLABEL }, METRICS_BUCKETS(b_commit) },
};

struct relay_metrics_state {
	int		 lfd;
	int		 alive;		/* read end; EOF when the endpoint child is gone */
	time_t		 next_spawn;
};

static struct relay_metrics_state rm = { -1, -1, 0 };	/* master only */

int
relay_metrics_init(const struct relay_config *cfg, char *err, size_t errlen)
{
	struct metrics *m;

	if (!relay_config_set(cfg->metrics_listen))
		return 0;
	m = metrics_create(relay_families, RMF_COUNT, err, errlen);
	if (m == NULL)
		return -1;
	rm.lfd = metrics_http_listen(cfg->metrics_listen, err, errlen);
	if (rm.lfd < 0) {
		metrics_free(m);
		return -1;
	}
	metrics_set_default(m);
	log_info("metrics listening on %s", cfg->metrics_listen);
	return 0;
}

/* Count one spool directory; fills *n and lowers *oldest (mtime). */
static void
count_dir(const char *spool, const char *sub, long long *n, time_t *oldest, long long *due,
    time_t now)
{
	char p[4096];
	DIR *d;
	struct dirent *e;

	if (relay_pathf(p, sizeof(p), "%s/%s", spool, sub) != 0 || (d = opendir(p)) == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		struct stat st;

		if (e->d_name[0] == '.' || fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		(*n)++;
		if (oldest != NULL && (*oldest == 0 || st.st_mtime < *oldest))
			*oldest = st.st_mtime;
		if (due != NULL && relay_spool_valid_id(e->d_name)) {
			struct relay_msg m;
			memset(&m, 0, sizeof(m));
			snprintf(m.id, sizeof(m.id), "%.*s", (int)sizeof(m.id) - 1, e->d_name);
			if (relay_state_load(spool, &m) == 0 && m.next_attempt <= now)
				(*due)++;
		}
	}
	(void)closedir(d);
}

static void
scrape(struct metrics *m, void *arg)
{
	const struct relay_config *cfg = arg;
	long long incoming = 0, queued = 0, held = 0, due = 0;
	time_t oldest = 0, now = time(NULL);

	count_dir(cfg->spool_dir, "incoming", &incoming, NULL, NULL, now);
	count_dir(cfg->spool_dir, "queue", &queued, &oldest, &due, now);
	count_dir(cfg->spool_dir, "hold", &held, &oldest, NULL, now);
	metrics_set(m, RMF_QUEUE, 0, 0, incoming);
	metrics_set(m, RMF_QUEUE, 1, 0, due);
	metrics_set(m, RMF_QUEUE, 2, 0, queued - due);
	metrics_set(m, RMF_QUEUE, 3, 0, held);
	metrics_set(m, RMF_OLDEST, 0, 0, oldest == 0 || oldest > now ? 0 : (int64_t)(now - oldest));
}

static volatile sig_atomic_t rm_stop;

static void
rm_on_term(int sig)
{
	(void)sig;
	rm_stop = 1;
}

static void
spawn_server(const struct relay_config *cfg)
{
	char why[256];
	int p[2];
	pid_t pid, master = getpid();

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0)
		return;
	pid = fork();
	if (pid < 0) {
		log_err("metrics: fork: %s", strerror(errno));
		(void)close(p[0]);
		(void)close(p[1]);
		return;
	}
	if (pid == 0) {
		struct sigaction sa;

		(void)close(p[0]);
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = rm_on_term;
		sigemptyset(&sa.sa_mask);
		(void)sigaction(SIGTERM, &sa, NULL);
		(void)sigaction(SIGINT, &sa, NULL);
		sa.sa_handler = SIG_IGN;
		(void)sigaction(SIGHUP, &sa, NULL);
		(void)sigaction(SIGUSR1, &sa, NULL);
		(void)sigaction(SIGPIPE, &sa, NULL);
		if (relay_drop_privileges(cfg->user, why, sizeof(why)) != 0) {
			log_err("metrics: %s", why);
			_exit(1);
		}
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != master)
			_exit(0);
		metrics_http_serve(rm.lfd, metrics_default(), scrape, (void *)cfg, &rm_stop);
		_exit(0);
	}
	(void)close(p[1]);
	rm.alive = p[0];
}

void
relay_metrics_tick(const struct relay_config *cfg)
{
	char c;
	time_t now = time(NULL);

	if (metrics_default() == NULL)
		return;
	if (rm.alive >= 0 && read(rm.alive, &c, 1) == 0) {
		(void)close(rm.alive);
		rm.alive = -1;
		rm.next_spawn = now + 1;
	}
	if (rm.alive < 0 && now >= rm.next_spawn)
		spawn_server(cfg);
}

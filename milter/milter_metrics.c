/*
 * milter_metrics — tailwart-milter's Prometheus metrics: the family table
 * and the endpoint.
 *
 * Design. The milter is one process whose libmilter sessions are threads,
 * so the counters need no sharing across processes: the region from
 * lib/metrics.c is used as is (relaxed atomic adds from every session
 * thread, no lock). `milter_metrics_listen` (in gate.conf, next to the
 * other milter_* keys; off when empty) is bound by main() as root before
 * the privilege drop; one dedicated thread, started after daemon() and
 * running without privileges like the rest of the process, serves GET
 * /metrics from a non-blocking poll loop (lib/metrics_http.c), so a scrape
 * never waits on a session and a session never waits on a scrape. The
 * thread is told to stop and joined when smfi_main() returns.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "milter.h"
#include "milter_metrics.h"

static const char *const v_check[] = { "access", "rate", "dnsbl", "spf", "greylist", "other" };
static const char *const v_verdict[] = { "pass", "skip", "allow", "tempfail", "reject" };
static const char *const v_dkim[] = {
	"none", "pass", "fail", "neutral", "policy", "temperror", "permerror", "other",
};

static const struct metrics_family milter_families[MMF_COUNT] = {
	[MMF_SESSIONS] = { "tailwart_milter_sessions_total",
	    "MTA connections (SMTP sessions) the milter was asked about.", METRICS_COUNTER,
	    { METRICS_NOLABEL, METRICS_NOLABEL }, NULL, 0 },
	[MMF_DECISIONS] = { "tailwart_milter_decisions_total",
	    "Policy decisions by check and verdict (before the mode: log-only checks count "
	    "what enforce would do).", METRICS_COUNTER,
	    { METRICS_LABEL("check", v_check), METRICS_LABEL("verdict", v_verdict) }, NULL, 0 },
	[MMF_DKIM] = { "tailwart_milter_dkim_results_total",
	    "DKIM verification results written into Authentication-Results, per message.",
	    METRICS_COUNTER, { METRICS_LABEL("result", v_dkim), METRICS_NOLABEL }, NULL, 0 },
};

/* Written by main() before the thread exists, then read by it. */
struct milter_metrics_state {
	int			 lfd;
	pthread_t		 thread;
	int			 running;
	volatile sig_atomic_t	 stop;
};

static struct milter_metrics_state mm = { -1, 0, 0, 0 };

int
milter_metrics_init(const struct milter_settings *cfg, char *err, size_t errlen)
{
	struct metrics *m;

	if (cfg->metrics_listen == NULL || *cfg->metrics_listen == '\0')
		return 0;
	if ((m = metrics_create(milter_families, MMF_COUNT, err, errlen)) == NULL)
		return -1;
	mm.lfd = metrics_http_listen(cfg->metrics_listen, err, errlen);
	if (mm.lfd < 0) {
		metrics_free(m);
		return -1;
	}
	metrics_set_default(m);
	return 0;
}

static void *
serve(void *arg)
{
	sigset_t all;

	(void)arg;
	/* signals are libmilter's business (its own thread waits for them) */
	sigfillset(&all);
	(void)pthread_sigmask(SIG_BLOCK, &all, NULL);
	metrics_http_serve(mm.lfd, metrics_default(), NULL, NULL, &mm.stop);
	return NULL;
}

int
milter_metrics_start(void)
{
	if (mm.lfd < 0)
		return 0;
	if (pthread_create(&mm.thread, NULL, serve, NULL) != 0)
		return -1;
	mm.running = 1;
	return 0;
}

void
milter_metrics_stop(void)
{
	if (!mm.running)
		return;
	mm.stop = 1;
	(void)pthread_join(mm.thread, NULL);
	mm.running = 0;
	(void)close(mm.lfd);
	mm.lfd = -1;
}

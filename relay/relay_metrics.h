/*
 * relay_metrics.h — tailwart-relay's metric families (indexes into the
 * table in relay_metrics.c) and the one-line hooks the receiver, the
 * scheduler, the delivery and DKIM code call. The hooks are inline and go
 * through metrics_default(): they need nothing but lib/, so the unit tests
 * and fuzzers that include relay .c files link as before (and count
 * nothing). Every hook is a no-op when metrics_listen is empty.
 */
#ifndef RELAY_METRICS_H
#define RELAY_METRICS_H

#include <string.h>
#include <time.h>

#include "metrics.h"

struct relay_config;

enum relay_metric_family {
	RMF_RECEIVED, RMF_RCPTS, RMF_DELAY, RMF_QUEUE, RMF_OLDEST, RMF_SMARTHOST,
	RMF_DSN, RMF_DKIM, RMF_COMMIT, RMF_COUNT
};
enum relay_metric_rcpt { RMR_DELIVERED, RMR_DEFERRED, RMR_BOUNCED, RMR_EXPIRED };
enum relay_metric_dsn { RMD_FAILED, RMD_DELAYED };
enum relay_metric_smarthost {
	RMS_DNS, RMS_CONNECT, RMS_TLS, RMS_AUTH, RMS_PROTOCOL, RMS_LOST
};

/* master (relay_metrics.c): map, bind, then keep the endpoint child alive */
int  relay_metrics_init(const struct relay_config *cfg, char *err, size_t errlen);
void relay_metrics_tick(const struct relay_config *cfg);

/* A message committed to the spool; t0_us: when the commit began. */
static inline void
relay_metric_received(long long t0_us)
{
	struct metrics *m = metrics_default();

	if (m == NULL)
		return;
	metrics_add(m, RMF_RECEIVED, 0, 0, 1);
	metrics_observe(m, RMF_COMMIT, 0, 0, metrics_now_us() - t0_us);
}

static inline long long
relay_metric_now_us(void)
{
	return metrics_default() != NULL ? metrics_now_us() : 0;
}

/* One recipient's outcome of a delivery attempt; arrival for "delivered". */
static inline void
relay_metric_rcpt(enum relay_metric_rcpt r, time_t arrival)
{
	struct metrics *m = metrics_default();

	metrics_add(m, RMF_RCPTS, r, 0, 1);
	if (r == RMR_DELIVERED && m != NULL)
		metrics_observe(m, RMF_DELAY, 0, 0, (long long)(time(NULL) - arrival) * 1000000);
}

static inline void
relay_metric_dsn(enum relay_metric_dsn kind)
{
	metrics_add(metrics_default(), RMF_DSN, kind, 0, 1);
}

/* DKIM: 0 signed, 1 failed. */
static inline void
relay_metric_dkim(int failed)
{
	metrics_add(metrics_default(), RMF_DKIM, failed ? 1 : 0, 0, 1);
}

/* A failed smarthost attempt, classified by the reason text
 * relay_deliver.c wrote ("connect to ...", "TLS handshake failed", ...). */
static inline void
relay_metric_smarthost(const char *err)
{
	enum relay_metric_smarthost k = RMS_PROTOCOL;

	if (strstr(err, "connect to ") != NULL)
		k = RMS_CONNECT;
	else if (strstr(err, "TLS") != NULL || strstr(err, "STARTTLS") != NULL)
		k = RMS_TLS;
	else if (strstr(err, "AUTH") != NULL || strstr(err, "credentials") != NULL)
		k = RMS_AUTH;
	else if (strstr(err, " lookup for ") != NULL || strstr(err, "resolver ") != NULL ||
	    strstr(err, "c-ares") != NULL)
		k = RMS_DNS;
	metrics_add(metrics_default(), RMF_SMARTHOST, k, 0, 1);
}

static inline void
relay_metric_smarthost_lost(void)
{
	metrics_add(metrics_default(), RMF_SMARTHOST, RMS_LOST, 0, 1);
}

#endif

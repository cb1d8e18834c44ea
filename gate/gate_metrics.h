/*
 * gate_metrics.h — tailwart-gate's metric families and the one-line hooks
 * the other gate files call (see gate_metrics.c). Every hook does nothing
 * when metrics_listen is empty.
 */
#ifndef GATE_METRICS_H
#define GATE_METRICS_H

#include <sys/types.h>

#include "policy.h"

struct gate_settings;
struct gate_runtime;
struct gate_session;

/* why the screen (or a worker without screen) ended a connection early */
enum gate_metric_refusal {
	GMR_ACCESS, GMR_RATE, GMR_CONCURRENCY, GMR_DNSBL, GMR_PREGREET, GMR_BUSY,
	GMR_PROXY, GMR_FULL, GMR_COUNT
};
enum gate_metric_outcome {
	GMO_NONE, GMO_QUIT, GMO_REFUSED, GMO_TIMEOUT, GMO_LOST, GMO_ERRORS, GMO_COUNT
};
enum gate_metric_backend {
	GMB_CONNECT, GMB_TIMEOUT, GMB_LOST, GMB_PROTOCOL, GMB_4XX, GMB_5XX, GMB_COUNT
};

/* master */
int  gate_metrics_init(const struct gate_settings *cfg, char *err, size_t errlen);
void gate_metrics_master_tick(const struct gate_runtime *rt, uid_t uid, gid_t gid);
void gate_metrics_reload_begin(const struct gate_runtime *rt);
void gate_metrics_reload_end(const struct gate_runtime *rt);

/* children: spawn() closes the master's metrics descriptors */
void gate_metrics_child_close(void);
long long gate_metric_now_us(void);
void gate_metric_accepted(void);
void gate_metric_refused(enum gate_metric_refusal why);
void gate_metric_refused_policy(const struct policy_result *r);
void gate_metric_screen_held(size_t n);
void gate_metric_policy(const struct policy_result *r);
void gate_metric_reply(struct gate_session *s, const char *reply, size_t len);
void gate_metric_command(struct gate_session *s, const char *line);
void gate_metric_session(const struct gate_session *s);
void gate_metric_message(struct gate_session *s, int code);
void gate_metric_handoff(long long t0_us);
void gate_metric_backend(enum gate_metric_backend kind);
void gate_metric_backend_reply(int code);
/* One try of the backend on board slot `slot` (hand-off, pass-through or
 * health check): ok 1 (connected, banner 220) or 0. */
void gate_metric_backend_result(unsigned slot, int ok);
void gate_metric_tls(const char *version);
void gate_metric_milters(struct gate_settings *cfg);

#endif

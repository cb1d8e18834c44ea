/*
 * milter_metrics.h — tailwart-milter's metric families and the one-line
 * hooks milter_filter.c calls (inline, through metrics_default(), so they
 * need nothing but lib/; no-ops when milter_metrics_listen is empty).
 * milter_metrics.c holds the table and the endpoint thread.
 */
#ifndef MILTER_METRICS_H
#define MILTER_METRICS_H

#include <string.h>

#include "metrics.h"
#include "policy.h"

struct milter_settings;

enum milter_metric_family { MMF_SESSIONS, MMF_DECISIONS, MMF_DKIM, MMF_COUNT };

/* main(): bind as root (before the privilege drop); start the serving
 * thread after daemon(); stop and join it when smfi_main() returned. */
int  milter_metrics_init(const struct milter_settings *cfg, char *err, size_t errlen);
int  milter_metrics_start(void);
void milter_metrics_stop(void);

/* index of s in v[0..n), n when absent */
static inline unsigned
milter_metric_index(const char *const *v, unsigned n, const char *s, size_t len)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (strlen(v[i]) == len && strncmp(v[i], s, len) == 0)
			break;
	return i;
}

static inline void
milter_metric_session(void)
{
	metrics_add(metrics_default(), MMF_SESSIONS, 0, 0, 1);
}

/* A policy decision (every one: pass included). */
static inline void
milter_metric_policy(const struct policy_result *r)
{
	static const char *const checks[] = { "access", "rate", "dnsbl", "spf", "greylist" };
	unsigned c;

	if (metrics_default() == NULL)
		return;
	c = milter_metric_index(checks, 5, r->check, strlen(r->check));
	metrics_add(metrics_default(), MMF_DECISIONS, c, (unsigned)r->decided, 1);
}

/* The Authentication-Results DKIM fragment ("dkim=pass ...", "" = none). */
static inline void
milter_metric_dkim(const char *frag)
{
	static const char *const res[] = {
		"none", "pass", "fail", "neutral", "policy", "temperror", "permerror",
	};
	const char *p = strncmp(frag, "dkim=", 5) == 0 ? frag + 5 : "none";
	unsigned i;

	if (metrics_default() == NULL)
		return;
	i = milter_metric_index(res, 7, p, strcspn(p, " ;\n\t"));
	metrics_add(metrics_default(), MMF_DKIM, i < 7 ? i : 7, 0, 1);
}

#endif

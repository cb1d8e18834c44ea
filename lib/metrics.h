/*
 * metrics.h — Prometheus metrics shared by the processes of one program.
 *
 * A program describes its metric families in a static table (name, help,
 * type, up to two labels, each with a fixed set of values). metrics_create()
 * lays the families out in one shared anonymous mapping (MAP_SHARED), made
 * by the master before it forks: every child adds to the same 64-bit cells
 * with relaxed atomic adds, no lock is ever held across processes, and the
 * counts survive a child's exit and a reload (the master keeps the mapping).
 *
 * A label whose values come from the configuration (a DNSBL zone, a milter)
 * names a "dynamic set": METRICS_DYN_MAX slots whose names live in the
 * mapping too (metrics_dyn_name), so the process serving the scrape sees
 * what the master configured after a reload. An empty slot is not shown.
 *
 * Histograms have fixed upper bounds in seconds; observations are given in
 * microseconds. Gauges are set (metrics_set) or added to (metrics_add with
 * a negative value cast, see metrics_gauge_add).
 *
 * metrics_render() writes the text exposition format 0.0.4 (# HELP, # TYPE,
 * one sample per label combination) into a malloc'd buffer the caller frees.
 * metrics_http.c serves it (see there). All functions accept a NULL
 * `struct metrics *` and then do nothing: metrics off costs one test.
 */
#ifndef METRICS_H
#define METRICS_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

enum metrics_type { METRICS_COUNTER, METRICS_GAUGE, METRICS_HISTOGRAM };

#define METRICS_DYN_SETS	4	/* dynamic label sets per program */
#define METRICS_DYN_MAX		16	/* slots per dynamic set */
#define METRICS_DYN_NAME	64	/* bytes per slot name */

struct metrics_label {
	const char		*name;		/* NULL: no label */
	const char *const	*values;	/* static values, or NULL */
	unsigned		 n;		/* number of static values */
	int			 dyn;		/* >0: dynamic set dyn-1 (values unused) */
};

struct metrics_family {
	const char		*name;		/* tailwart_gate_..._total */
	const char		*help;
	enum metrics_type	 type;
	struct metrics_label	 l[2];
	const double		*buckets;	/* histograms: upper bounds, seconds */
	unsigned		 nbuckets;
};

/* Table helpers: a label with static values, no label, a bucket list. */
#define METRICS_LABEL(n, v)	{ n, v, sizeof(v) / sizeof(v[0]), 0 }
#define METRICS_DYN(n, d)	{ n, NULL, 0, d }
#define METRICS_NOLABEL		{ NULL, NULL, 0, 0 }
#define METRICS_BUCKETS(b)	b, sizeof(b) / sizeof(b[0])

struct metrics;

/* Map the shared region for `fams` (a static table that must outlive the
 * handle). NULL with err set on failure. Call before forking. */
struct metrics *metrics_create(const struct metrics_family *fams, unsigned nfams,
	    char *err, size_t errlen);
void metrics_free(struct metrics *m);

/* Counter/gauge: add v to the cell (fam, label value a, label value b).
 * Out-of-range indexes are ignored (never a crash). */
void metrics_add(struct metrics *m, unsigned fam, unsigned a, unsigned b, uint64_t v);
void metrics_gauge_add(struct metrics *m, unsigned fam, unsigned a, unsigned b, int64_t v);
void metrics_set(struct metrics *m, unsigned fam, unsigned a, unsigned b, int64_t v);
/* Histogram: one observation of `usec` microseconds. */
void metrics_observe(struct metrics *m, unsigned fam, unsigned a, unsigned b, long long usec);
/* Name slot `slot` of dynamic set `set` ("" clears it). When the name
 * changes, the cells of that slot are zeroed (a counter reset). */
void metrics_dyn_name(struct metrics *m, unsigned set, unsigned slot, const char *name);
/* The slot of set `set` named name[0..len), or -1. */
int  metrics_dyn_find(const struct metrics *m, unsigned set, const char *name, size_t len);
/* Read one cell (tests, scrape-time hooks); 0 when out of range. */
uint64_t metrics_get(const struct metrics *m, unsigned fam, unsigned a, unsigned b);

/* The handle of this process, for hooks called from code that has no
 * other way to reach it: set once by the main process before it forks or
 * starts threads, read-only afterwards (like the configuration). NULL
 * until then: every hook is a no-op. */
void metrics_set_default(struct metrics *m);
struct metrics *metrics_default(void);
/* Monotonic clock in microseconds (for metrics_observe). */
long long metrics_now_us(void);

/* The exposition text. 0, or -1 (out of memory). *out is malloc'd. */
int  metrics_render(const struct metrics *m, char **out, size_t *outlen);

/* metrics_http.c: the endpoint.
 * metrics_http_listen: bind "host:port" (as root, before dropping). fd/-1.
 * metrics_http_serve: poll loop until *stop is set; `before` (may be NULL)
 * runs before each scrape to refresh gauges computed at scrape time. */
typedef void (*metrics_scrape_fn)(struct metrics *m, void *arg);
int  metrics_http_listen(const char *hostport, char *err, size_t errlen);
void metrics_http_serve(int lfd, struct metrics *m, metrics_scrape_fn before, void *arg,
	    volatile sig_atomic_t *stop);
/* One connection's request bytes: what to answer. Exposed for unit tests.
 * Returns 0 while the request is incomplete, else the HTTP status (200,
 * 400, 404, 405, 431). */
int  metrics_http_parse(const char *req, size_t len);

#endif

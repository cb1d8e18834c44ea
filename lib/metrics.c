/*
 * metrics — the shared counter region and the Prometheus text exposition.
 *
 * Layout: one anonymous MAP_SHARED mapping holding a header, the names of
 * the dynamic label slots, then an array of 64-bit cells. Each family owns
 * a contiguous run of cells: for every label combination (a, b) one cell
 * (counter, gauge) or nbuckets + 3 cells (histogram: one per bucket, +Inf,
 * the sum in microseconds, the count). Bucket cells are not cumulative;
 * metrics_render() adds them up, so an observation is two atomic adds
 * (bucket, sum) plus one (count), all relaxed: a scrape may see a sum one
 * observation ahead of its count, which Prometheus tolerates.
 *
 * The handle (struct metrics) is malloc'd in the master and copied into
 * every child by fork; only the region is shared. Nothing here blocks.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "metrics.h"

struct metrics_shm {
	char		dyn[METRICS_DYN_SETS][METRICS_DYN_MAX][METRICS_DYN_NAME];
	uint64_t	cells[];
};

struct metrics {
	const struct metrics_family	*fams;
	unsigned			 nfams;
	size_t				*off;		/* first cell of each family */
	size_t				 ncells, maplen;
	struct metrics_shm		*shm;
};

static unsigned
label_count(const struct metrics_label *l)
{
	if (l->name == NULL)
		return 1;
	return l->dyn > 0 ? METRICS_DYN_MAX : l->n;
}

static size_t
cells_per_combo(const struct metrics_family *f)
{
	return f->type == METRICS_HISTOGRAM ? (size_t)f->nbuckets + 3 : 1;
}

struct metrics *
metrics_create(const struct metrics_family *fams, unsigned nfams, char *err, size_t errlen)
{
	struct metrics *m = calloc(1, sizeof(*m));
	size_t n = 0;

	if (m == NULL || (m->off = calloc(nfams ? nfams : 1, sizeof(*m->off))) == NULL) {
		snprintf(err, errlen, "metrics: out of memory");
		free(m);
		return NULL;
	}
	for (unsigned i = 0; i < nfams; i++) {
		const struct metrics_family *f = &fams[i];
		for (int k = 0; k < 2; k++)
			if (f->l[k].dyn > METRICS_DYN_SETS) {
				snprintf(err, errlen, "metrics: %s: bad dynamic set", f->name);
				free(m->off);
				free(m);
				return NULL;
			}
		m->off[i] = n;
		n += (size_t)label_count(&f->l[0]) * label_count(&f->l[1]) * cells_per_combo(f);
	}
	m->fams = fams;
	m->nfams = nfams;
	m->ncells = n;
	m->maplen = sizeof(struct metrics_shm) + n * sizeof(uint64_t);
	m->shm = mmap(NULL, m->maplen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (m->shm == MAP_FAILED) {
		snprintf(err, errlen, "metrics: mmap %zu bytes: %s", m->maplen, strerror(errno));
		free(m->off);
		free(m);
		return NULL;
	}
	return m;
}

void
metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	(void)munmap(m->shm, m->maplen);
	free(m->off);
	free(m);
}

/* The first cell of combination (a, b) of family fam, or NULL. */
static uint64_t *
cell(const struct metrics *m, unsigned fam, unsigned a, unsigned b)
{
	const struct metrics_family *f;
	unsigned na, nb;

	if (m == NULL || fam >= m->nfams)
		return NULL;
	f = &m->fams[fam];
	na = label_count(&f->l[0]);
	nb = label_count(&f->l[1]);
	if (a >= na || b >= nb)
		return NULL;
	return &m->shm->cells[m->off[fam] + ((size_t)a * nb + b) * cells_per_combo(f)];
}

void
metrics_add(struct metrics *m, unsigned fam, unsigned a, unsigned b, uint64_t v)
{
	uint64_t *c = cell(m, fam, a, b);

	if (c != NULL)
		(void)__atomic_fetch_add(c, v, __ATOMIC_RELAXED);
}

void
metrics_gauge_add(struct metrics *m, unsigned fam, unsigned a, unsigned b, int64_t v)
{
	metrics_add(m, fam, a, b, (uint64_t)v);	/* two's complement wraps right */
}

void
metrics_set(struct metrics *m, unsigned fam, unsigned a, unsigned b, int64_t v)
{
	uint64_t *c = cell(m, fam, a, b);

	if (c != NULL)
		__atomic_store_n(c, (uint64_t)v, __ATOMIC_RELAXED);
}

uint64_t
metrics_get(const struct metrics *m, unsigned fam, unsigned a, unsigned b)
{
	uint64_t *c = cell(m, fam, a, b);

	return c != NULL ? __atomic_load_n(c, __ATOMIC_RELAXED) : 0;
}

void
metrics_observe(struct metrics *m, unsigned fam, unsigned a, unsigned b, long long usec)
{
	uint64_t *c = cell(m, fam, a, b);
	const struct metrics_family *f;
	unsigned i;

	if (c == NULL || m->fams[fam].type != METRICS_HISTOGRAM)
		return;
	f = &m->fams[fam];
	if (usec < 0)
		usec = 0;
	for (i = 0; i < f->nbuckets; i++)
		if ((double)usec <= f->buckets[i] * 1e6)
			break;
	(void)__atomic_fetch_add(&c[i], 1, __ATOMIC_RELAXED);
	(void)__atomic_fetch_add(&c[f->nbuckets + 1], (uint64_t)usec, __ATOMIC_RELAXED);
	(void)__atomic_fetch_add(&c[f->nbuckets + 2], 1, __ATOMIC_RELAXED);
}

void
metrics_dyn_name(struct metrics *m, unsigned set, unsigned slot, const char *name)
{
	char *dst;

	if (m == NULL || set >= METRICS_DYN_SETS || slot >= METRICS_DYN_MAX)
		return;
	dst = m->shm->dyn[set][slot];
	if (strncmp(dst, name, METRICS_DYN_NAME - 1) == 0)
		return;
	/* a new meaning for this slot: its counts start again from zero */
	for (unsigned fam = 0; fam < m->nfams; fam++) {
		const struct metrics_family *f = &m->fams[fam];
		unsigned na = label_count(&f->l[0]), nb = label_count(&f->l[1]);
		for (unsigned a = 0; a < na; a++)
			for (unsigned b = 0; b < nb; b++) {
				uint64_t *c;
				if (!((f->l[0].dyn == (int)set + 1 && a == slot) ||
				    (f->l[1].dyn == (int)set + 1 && b == slot)))
					continue;
				c = cell(m, fam, a, b);
				for (size_t k = 0; k < cells_per_combo(f); k++)
					__atomic_store_n(&c[k], 0, __ATOMIC_RELAXED);
			}
	}
	snprintf(dst, METRICS_DYN_NAME, "%s", name);
}

int
metrics_dyn_find(const struct metrics *m, unsigned set, const char *name, size_t len)
{
	if (m == NULL || set >= METRICS_DYN_SETS || len == 0 || len >= METRICS_DYN_NAME)
		return -1;
	for (unsigned i = 0; i < METRICS_DYN_MAX; i++) {
		const char *s = m->shm->dyn[set][i];
		if (strncmp(s, name, len) == 0 && s[len] == '\0')
			return (int)i;
	}
	return -1;
}

static struct metrics *metrics_process;	/* see metrics_set_default() */

void
metrics_set_default(struct metrics *m)
{
	metrics_process = m;
}

struct metrics *
metrics_default(void)
{
	return metrics_process;
}

long long
metrics_now_us(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- exposition ---- */

struct out {
	char	*p;
	size_t	 len, cap;
	int	 failed;
};

static void
outf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->failed)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			o->failed = 1;
			return;
		}
		if ((size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		{
			size_t ncap = (o->cap + (size_t)n + 1) * 2;
			char *np = realloc(o->p, ncap);
			if (np == NULL) {
				o->failed = 1;
				return;
			}
			o->p = np;
			o->cap = ncap;
		}
	}
}

/* A label value, escaped for the exposition format (\\, \", \n). */
static void
out_value(struct out *o, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			outf(o, "\\%c", *v);
		else if (*v == '\n')
			outf(o, "\\n");
		else
			outf(o, "%c", *v);
	}
}

/* The value name of label l at index i; NULL when the slot is unused. */
static const char *
label_value(const struct metrics *m, const struct metrics_label *l, unsigned i)
{
	if (l->dyn > 0) {
		const char *s = m->shm->dyn[l->dyn - 1][i];
		return *s ? s : NULL;
	}
	return l->values[i];
}

/* {a="x",b="y"[,le="0.5"]} or nothing */
static void
out_labels(struct out *o, const struct metrics *m, const struct metrics_family *f,
    unsigned a, unsigned b, const char *le)
{
	const unsigned idx[2] = { a, b };
	int first = 1;

	for (int k = 0; k < 2; k++) {
		if (f->l[k].name == NULL)
			continue;
		outf(o, "%s%s=\"", first ? "{" : ",", f->l[k].name);
		out_value(o, label_value(m, &f->l[k], idx[k]));
		outf(o, "\"");
		first = 0;
	}
	if (le != NULL) {
		outf(o, "%sle=\"%s\"", first ? "{" : ",", le);
		first = 0;
	}
	if (!first)
		outf(o, "}");
}

static void
render_histogram(struct out *o, const struct metrics *m, const struct metrics_family *f,
    unsigned a, unsigned b, const uint64_t *c)
{
	uint64_t cum = 0;
	char le[32];

	for (unsigned i = 0; i <= f->nbuckets; i++) {
		cum += __atomic_load_n(&c[i], __ATOMIC_RELAXED);
		if (i < f->nbuckets)
			snprintf(le, sizeof(le), "%g", f->buckets[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		outf(o, "%s_bucket", f->name);
		out_labels(o, m, f, a, b, le);
		outf(o, " %" PRIu64 "\n", cum);
	}
	outf(o, "%s_sum", f->name);
	out_labels(o, m, f, a, b, NULL);
	outf(o, " %.6f\n", (double)__atomic_load_n(&c[f->nbuckets + 1], __ATOMIC_RELAXED) / 1e6);
	outf(o, "%s_count", f->name);
	out_labels(o, m, f, a, b, NULL);
	/* the count is never below the buckets already shown */
	{
		uint64_t n = __atomic_load_n(&c[f->nbuckets + 2], __ATOMIC_RELAXED);
		outf(o, " %" PRIu64 "\n", n > cum ? n : cum);
	}
}

int
metrics_render(const struct metrics *m, char **out, size_t *outlen)
{
	static const char *const tname[] = { "counter", "gauge", "histogram" };
	struct out o = { NULL, 0, 0, 0 };

	*out = NULL;
	*outlen = 0;
	if (m == NULL)
		return -1;
	o.cap = 16384;
	if ((o.p = malloc(o.cap)) == NULL)
		return -1;
	o.p[0] = '\0';
	for (unsigned fam = 0; fam < m->nfams; fam++) {
		const struct metrics_family *f = &m->fams[fam];
		unsigned na = label_count(&f->l[0]), nb = label_count(&f->l[1]);

		outf(&o, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, tname[f->type]);
		for (unsigned a = 0; a < na; a++) {
			if (f->l[0].name != NULL && label_value(m, &f->l[0], a) == NULL)
				continue;
			for (unsigned b = 0; b < nb; b++) {
				const uint64_t *c = cell(m, fam, a, b);
				if (f->l[1].name != NULL && label_value(m, &f->l[1], b) == NULL)
					continue;
				if (f->type == METRICS_HISTOGRAM) {
					render_histogram(&o, m, f, a, b, c);
					continue;
				}
				outf(&o, "%s", f->name);
				out_labels(&o, m, f, a, b, NULL);
				if (f->type == METRICS_GAUGE)
					outf(&o, " %" PRId64 "\n",
					    (int64_t)__atomic_load_n(c, __ATOMIC_RELAXED));
				else
					outf(&o, " %" PRIu64 "\n", __atomic_load_n(c, __ATOMIC_RELAXED));
			}
		}
	}
	if (o.failed) {
		free(o.p);
		return -1;
	}
	*out = o.p;
	*outlen = o.len;
	return 0;
}

/*
 * test_metrics — lib/metrics: the exposition text of a small table
 * (golden), cumulative histogram buckets, dynamic label slots (hidden when
 * empty, zeroed when renamed, escaped), out-of-range indexes ignored, a
 * NULL handle a no-op, exact counts from 8 forked processes adding at once
 * through the shared region, and the HTTP request classifier.
 */
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>

#include "unit.h"
#include "metrics.h"

static const char *const v_res[] = { "ok", "failed" };
static const double b[] = { 0.1, 1 };

static const struct metrics_family fams[] = {
	{ "t_events_total", "Events.", METRICS_COUNTER,
	    { METRICS_LABEL("result", v_res), METRICS_NOLABEL }, NULL, 0 },
	{ "t_level", "A gauge.", METRICS_GAUGE, { METRICS_NOLABEL, METRICS_NOLABEL }, NULL, 0 },
	{ "t_seconds", "Latency.", METRICS_HISTOGRAM,
	    { METRICS_NOLABEL, METRICS_NOLABEL }, METRICS_BUCKETS(b) },
	{ "t_zone_total", "Per zone.", METRICS_COUNTER,
	    { METRICS_DYN("zone", 1), METRICS_LABEL("result", v_res) }, NULL, 0 },
};

static struct metrics *
mk(void)
{
	char err[256];
	struct metrics *m = metrics_create(fams, 4, err, sizeof(err));

	if (m == NULL) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	return m;
}

static char *
text(const struct metrics *m)
{
	char *out;
	size_t len;

	if (metrics_render(m, &out, &len) != 0)
		abort();
	return out;
}

TEST(golden)
{
	struct metrics *m = mk();
	char *t;

	metrics_add(m, 0, 0, 0, 3);
	metrics_add(m, 0, 1, 0, 1);
	metrics_set(m, 1, 0, 0, -5);
	metrics_observe(m, 2, 0, 0, 50000);	/* 0.05 s */
	metrics_observe(m, 2, 0, 0, 500000);	/* 0.5 s */
	metrics_observe(m, 2, 0, 0, 5000000);	/* 5 s */
	metrics_dyn_name(m, 0, 1, "bl.\"x\"");
	metrics_add(m, 3, 1, 1, 2);
	t = text(m);
	EXPECT_STR(t,
	    "# HELP t_events_total Events.\n# TYPE t_events_total counter\n"
	    "t_events_total{result=\"ok\"} 3\nt_events_total{result=\"failed\"} 1\n"
	    "# HELP t_level A gauge.\n# TYPE t_level gauge\nt_level -5\n"
	    "# HELP t_seconds Latency.\n# TYPE t_seconds histogram\n"
	    "t_seconds_bucket{le=\"0.1\"} 1\nt_seconds_bucket{le=\"1\"} 2\n"
	    "t_seconds_bucket{le=\"+Inf\"} 3\nt_seconds_sum 5.550000\nt_seconds_count 3\n"
	    "# HELP t_zone_total Per zone.\n# TYPE t_zone_total counter\n"
	    "t_zone_total{zone=\"bl.\\\"x\\\"\",result=\"ok\"} 0\n"
	    "t_zone_total{zone=\"bl.\\\"x\\\"\",result=\"failed\"} 2\n");
	free(t);
	metrics_free(m);
}

TEST(dyn_rename_zeroes)
{
	struct metrics *m = mk();

	metrics_dyn_name(m, 0, 0, "a.test");
	metrics_add(m, 3, 0, 0, 7);
	metrics_dyn_name(m, 0, 0, "a.test");	/* same name: kept */
	EXPECT_INT(metrics_get(m, 3, 0, 0), 7);
	EXPECT_INT(metrics_dyn_find(m, 0, "a.test(3)", 6), 0);
	EXPECT_INT(metrics_dyn_find(m, 0, "b.test", 6), -1);
	metrics_dyn_name(m, 0, 0, "b.test");	/* new meaning: reset */
	EXPECT_INT(metrics_get(m, 3, 0, 0), 0);
	metrics_free(m);
}

TEST(out_of_range_and_null)
{
	struct metrics *m = mk();
	char *t0 = text(m), *t1;

	metrics_add(m, 0, 2, 0, 1);
	metrics_add(m, 0, 0, 1, 1);
	metrics_add(m, 9, 0, 0, 1);
	metrics_observe(m, 0, 0, 0, 1);	/* not a histogram */
	metrics_add(m, 3, METRICS_DYN_MAX, 0, 1);
	t1 = text(m);
	EXPECT_STR(t1, t0);
	free(t0);
	free(t1);
	metrics_add(NULL, 0, 0, 0, 1);
	metrics_observe(NULL, 2, 0, 0, 1);
	metrics_dyn_name(NULL, 0, 0, "x");
	EXPECT_INT(metrics_get(NULL, 0, 0, 0), 0);
	metrics_free(m);
}

TEST(exact_across_processes)
{
	struct metrics *m = mk();
	pid_t kids[8];

	for (int k = 0; k < 8; k++) {
		kids[k] = fork();
		if (kids[k] == 0) {
			for (int i = 0; i < 2000000; i++)
				metrics_add(m, 0, 0, 0, 1);
			for (int i = 0; i < 100000; i++)
				metrics_observe(m, 2, 0, 0, i);
			_exit(0);
		}
	}
	for (int k = 0; k < 8; k++)
		(void)waitpid(kids[k], NULL, 0);
	EXPECT_INT(metrics_get(m, 0, 0, 0), 16000000);
	{
		char *t = text(m);
		EXPECT(strstr(t, "t_seconds_count 800000\n") != NULL);
		free(t);
	}
	metrics_free(m);
}

TEST(http_parse)
{
	static const struct { const char *req; int want; } cases[] = {
		{ "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 200 },
		{ "GET /metrics?x=1 HTTP/1.0\r\n\r\n", 200 },
		{ "GET /metrics HTTP/1.1\n\n", 200 },
		{ "GET /metrics HTTP/1.1\r\nHost: x\r\n", 0 },	/* headers not ended */
		{ "GET /metr", 0 },
		{ "GET / HTTP/1.1\r\n\r\n", 404 },
		{ "GET /metricsx HTTP/1.1\r\n\r\n", 404 },
		{ "POST /metrics HTTP/1.1\r\n\r\n", 405 },
		{ "HEAD /metrics HTTP/1.1\r\n\r\n", 405 },
		{ "get /metrics HTTP/1.1\r\n\r\n", 405 },
		{ "GET /metrics\r\n\r\n", 400 },
		{ "GET  HTTP/1.1\r\n\r\n", 400 },
		{ "GET /metrics SMTP/1.0\r\n\r\n", 400 },
		{ "\r\n\r\n", 400 },
	};
	char big[4096];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (metrics_http_parse(cases[i].req, strlen(cases[i].req)) != cases[i].want)
			FAILF("case %zu \"%s\": %d, expected %d", i, cases[i].req,
			    metrics_http_parse(cases[i].req, strlen(cases[i].req)), cases[i].want);
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26);
	EXPECT_INT(metrics_http_parse(big, sizeof(big)), 431);
}

int
main(void)
{
	RUN(golden);
	RUN(dyn_rename_zeroes);
	RUN(out_of_range_and_null);
	RUN(exact_across_processes);
	RUN(http_parse);
	return unit_done();
}

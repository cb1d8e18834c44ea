/*
 * test_policy_rate.c — rate_limit parsing, most-specific-network lookup,
 * and the counters against an LMDB store: each limit trips exactly after
 * its configured number, concurrency slots are given back, overrides win.
 */
#include <stdlib.h>

#include "policy_rate.h"
#include "unit.h"

static struct policy_store *
open_tmp(void)
{
	static char dir[64];	/* test-local; each case is its own process */
	struct policy_store *st = NULL;
	char spec[300], err[256];

	snprintf(dir, sizeof(dir), "/tmp/twrateXXXXXX");
	if (mkdtemp(dir) == NULL)
		return NULL;
	snprintf(spec, sizeof(spec), "lmdb:%s/db", dir);
	if (policy_store_open(spec, NULL, &st, err, sizeof(err)) < 0)
		return NULL;
	return st;
}

static struct sockaddr_storage
ip(const char *s)
{
	struct sockaddr_storage ss;

	if (policy_ip_parse(s, &ss) < 0)
		memset(&ss, 0, sizeof(ss));
	return ss;
}

TEST(parse_ok)
{
	struct policy_rate_spec s;

	memset(&s, 0, sizeof(s));
	EXPECT(policy_rate_parse("conn 30/1m, concurrency 10, msg 60/1h, "
	    "rcpt 300/1h, err 20/10m, net_conn 100/30s", &s) == NULL);
	EXPECT_INT(s.ip[RATE_CONN].count, 30);
	EXPECT_INT(s.ip[RATE_CONN].window, 60);
	EXPECT_INT(s.ip[RATE_CONC].count, 10);
	EXPECT_INT(s.ip[RATE_CONC].window, 0);
	EXPECT_INT(s.ip[RATE_MSG].window, 3600);
	EXPECT_INT(s.ip[RATE_RCPT].count, 300);
	EXPECT_INT(s.ip[RATE_ERR].window, 600);
	EXPECT_INT(s.net[RATE_CONN].count, 100);
	EXPECT_INT(s.net[RATE_CONN].window, 30);
	EXPECT_INT(s.net[RATE_MSG].set, 0);
	memset(&s, 0, sizeof(s));
	EXPECT(policy_rate_parse("none", &s) == NULL);
	EXPECT_INT(s.ip[RATE_CONN].set, 1);
	EXPECT_INT(s.ip[RATE_CONN].count, 0);
	EXPECT(policy_rate_parse("msg none", &s) == NULL);
}

TEST(parse_bad)
{
	struct policy_rate_spec s;
	const char *bad[] = {
		"conn", "conn 30", "conn 30/", "conn 30/1y", "conn -3/1m",
		"conn 0/1m", "concurrency 10/1m", "bogus 1/1m", "conn x/1m",
		"conn 99999999999/1m", "conn 30/0s", "", "conn 3O/1m",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&s, 0, sizeof(s));
		if (policy_rate_parse(bad[i], &s) == NULL)
			FAILF("accepted \"%s\"", bad[i]);
	}
}

TEST(most_specific)
{
	struct policy_rate_config rc;
	const struct policy_rate_spec *sp;
	struct sockaddr_storage a;

	policy_rate_config_init(&rc);
	EXPECT(policy_rate_parse("conn 30/1m, msg 60/1h", &rc.def) == NULL);
	EXPECT(policy_rate_add_rule(&rc, "203.0.113.0/24", "conn 300/1m", 1) == NULL);
	EXPECT(policy_rate_add_rule(&rc, "203.0.0.0/8", "conn 5/1m", 2) == NULL);
	EXPECT(policy_rate_add_rule(&rc, "127.0.0.0/8", "none", 3) == NULL);
	EXPECT(policy_rate_add_rule(&rc, "2001:db8::/32", "conn 7/1m", 4) == NULL);
	EXPECT(policy_rate_add_rule(&rc, "bogus", "conn 7/1m", 5) != NULL);
	EXPECT(policy_rate_add_rule(&rc, "10.0.0.0/8", "conn 7", 5) != NULL);

	a = ip("203.0.113.9");
	sp = policy_rate_lookup(&rc, &a);
	EXPECT_INT(sp->ip[RATE_CONN].count, 300);
	EXPECT_INT(sp->ip[RATE_MSG].count, 60);		/* inherited */
	a = ip("203.0.114.9");
	EXPECT_INT(policy_rate_lookup(&rc, &a)->ip[RATE_CONN].count, 5);
	a = ip("198.51.100.1");
	EXPECT_INT(policy_rate_lookup(&rc, &a)->ip[RATE_CONN].count, 30);
	a = ip("127.0.0.5");
	EXPECT_INT(policy_rate_lookup(&rc, &a)->ip[RATE_CONN].count, 0);
	EXPECT_INT(policy_rate_lookup(&rc, &a)->ip[RATE_MSG].count, 0);
	a = ip("::ffff:203.0.113.9");		/* v4-mapped */
	EXPECT_INT(policy_rate_lookup(&rc, &a)->ip[RATE_CONN].count, 300);
	a = ip("2001:db8::1");
	EXPECT_INT(policy_rate_lookup(&rc, &a)->ip[RATE_CONN].count, 7);
	policy_rate_free(&rc);
}

TEST(conn_trips_exactly)
{
	struct policy_rate_config rc;
	struct policy_store *st = open_tmp();
	struct policy_result r;
	struct sockaddr_storage a = ip("192.0.2.7"), b = ip("192.0.2.8");
	int i;

	policy_rate_config_init(&rc);
	EXPECT(policy_rate_parse("conn 3/1m", &rc.def) == NULL);
	for (i = 0; i < 3; i++)
		EXPECT_INT(policy_rate_connect(&rc, st, &a, &r), POLICY_PASS);
	EXPECT_INT(policy_rate_connect(&rc, st, &a, &r), POLICY_TEMPFAIL);
	EXPECT_INT(r.code, 421);
	EXPECT_STR(r.enh, "4.7.0");
	EXPECT(strstr(r.detail, "limit=conn count=4 max=3") != NULL);
	EXPECT_INT(policy_rate_connect(&rc, st, &b, &r), POLICY_PASS);
	policy_rate_free(&rc);
}

TEST(net_limit)
{
	struct policy_rate_config rc;
	struct policy_store *st = open_tmp();
	struct policy_result r;
	struct sockaddr_storage a = ip("192.0.2.7"), b = ip("192.0.2.8"),
	    c = ip("192.0.3.1");

	policy_rate_config_init(&rc);
	EXPECT(policy_rate_parse("net_msg 2/1h, msg 10/1h", &rc.def) == NULL);
	EXPECT_INT(policy_rate_msg(&rc, st, &a, &r), POLICY_PASS);
	EXPECT_INT(policy_rate_msg(&rc, st, &b, &r), POLICY_PASS);
	EXPECT_INT(policy_rate_msg(&rc, st, &b, &r), POLICY_TEMPFAIL);
	EXPECT_INT(r.code, 451);
	EXPECT_STR(r.enh, "4.7.1");
	EXPECT(strstr(r.text, "network") != NULL);
	EXPECT_INT(policy_rate_msg(&rc, st, &c, &r), POLICY_PASS);
	policy_rate_free(&rc);
}

TEST(concurrency_slots)
{
	struct policy_rate_config rc;
	struct policy_store *st = open_tmp();
	struct policy_result r;
	struct sockaddr_storage a = ip("2001:db8::7");

	policy_rate_config_init(&rc);
	EXPECT(policy_rate_parse("concurrency 2", &rc.def) == NULL);
	EXPECT_INT(policy_rate_connect(&rc, st, &a, &r), POLICY_PASS);
	EXPECT_INT(policy_rate_connect(&rc, st, &a, &r), POLICY_PASS);
	EXPECT_INT(policy_rate_connect(&rc, st, &a, &r), POLICY_TEMPFAIL);
	EXPECT(strstr(r.text, "concurrent") != NULL);
	/* the refused one gave its slot back: one disconnect frees a slot */
	EXPECT_INT(policy_rate_disconnect(&rc, st, &a), 0);
	EXPECT_INT(policy_rate_connect(&rc, st, &a, &r), POLICY_PASS);
	EXPECT_INT(policy_rate_connect(&rc, st, &a, &r), POLICY_TEMPFAIL);
	policy_rate_free(&rc);
}

TEST(rcpt_and_err)
{
	struct policy_rate_config rc;
	struct policy_store *st = open_tmp();
	struct policy_result r;
	struct sockaddr_storage a = ip("192.0.2.9");
	int i;

	policy_rate_config_init(&rc);
	EXPECT(policy_rate_parse("rcpt 2/1h, err 2/10m", &rc.def) == NULL);
	EXPECT_INT(policy_rate_rcpt(&rc, st, &a, &r), POLICY_PASS);
	EXPECT_INT(policy_rate_rcpt(&rc, st, &a, &r), POLICY_PASS);
	EXPECT_INT(policy_rate_rcpt(&rc, st, &a, &r), POLICY_TEMPFAIL);
	EXPECT_INT(r.code, 452);
	EXPECT_STR(r.enh, "4.5.3");
	for (i = 0; i < 2; i++)
		EXPECT_INT(policy_rate_error(&rc, st, &a, &r), POLICY_PASS);
	EXPECT_INT(policy_rate_error(&rc, st, &a, &r), POLICY_TEMPFAIL);
	EXPECT_INT(r.code, 421);
	/* and a new connection is refused for the rest of the window */
	EXPECT_INT(policy_rate_connect(&rc, st, &a, &r), POLICY_TEMPFAIL);
	EXPECT(strstr(r.text, "errors") != NULL);
	policy_rate_free(&rc);
}

TEST(override_wins_and_log_mode)
{
	struct policy_rate_config rc;
	struct policy_store *st = open_tmp();
	struct policy_result r;
	struct sockaddr_storage a = ip("203.0.113.5"), l = ip("127.0.0.1");
	int i;

	policy_rate_config_init(&rc);
	EXPECT(policy_rate_parse("conn 1/1m", &rc.def) == NULL);
	EXPECT(policy_rate_add_rule(&rc, "203.0.113.0/24", "conn 3/1m", 1) == NULL);
	EXPECT(policy_rate_add_rule(&rc, "127.0.0.0/8", "none", 2) == NULL);
	for (i = 0; i < 3; i++)
		EXPECT_INT(policy_rate_connect(&rc, st, &a, &r), POLICY_PASS);
	EXPECT_INT(policy_rate_connect(&rc, st, &a, &r), POLICY_TEMPFAIL);
	for (i = 0; i < 10; i++)
		EXPECT_INT(policy_rate_connect(&rc, st, &l, &r), POLICY_PASS);
	rc.mode = POLICY_LOG;
	EXPECT_INT(policy_rate_connect(&rc, st, &a, &r), POLICY_PASS);
	EXPECT_INT(r.decided, POLICY_TEMPFAIL);
	rc.mode = POLICY_IGNORE;
	EXPECT_INT(policy_rate_connect(&rc, st, &a, &r), POLICY_SKIP);
	policy_rate_free(&rc);
}

TEST(store_down)
{
	struct policy_rate_config rc;
	struct policy_store *st = NULL;
	struct policy_result r;
	struct sockaddr_storage a = ip("192.0.2.1");
	char err[256];

	/* nothing listens on port 1: every call is a store error */
	EXPECT_INT(policy_store_open("redis://127.0.0.1:1/0", NULL, &st, err,
	    sizeof(err)), 0);
	policy_rate_config_init(&rc);
	EXPECT(policy_rate_parse("conn 3/1m, msg 5/1h", &rc.def) == NULL);
	EXPECT_INT(policy_rate_connect(&rc, st, &a, &r), POLICY_PASS);
	EXPECT(strstr(r.detail, "store=error") != NULL);
	rc.on_store_error = POLICY_FAIL_TEMP;
	EXPECT_INT(policy_rate_msg(&rc, st, &a, &r), POLICY_TEMPFAIL);
	EXPECT_INT(r.code, 451);
	EXPECT_STR(r.enh, "4.3.0");
	policy_store_close(st);
	/* no store at all behaves like a dead one */
	EXPECT_INT(policy_rate_msg(&rc, NULL, &a, &r), POLICY_TEMPFAIL);
	rc.on_store_error = POLICY_FAIL_OPEN;
	EXPECT_INT(policy_rate_connect(&rc, NULL, &a, &r), POLICY_PASS);
	policy_rate_free(&rc);
}

int
main(void)
{
	RUN(parse_ok);
	RUN(parse_bad);
	RUN(most_specific);
	RUN(conn_trips_exactly);
	RUN(net_limit);
	RUN(concurrency_slots);
	RUN(rcpt_and_err);
	RUN(override_wins_and_log_mode);
	RUN(store_down);
	return unit_done();
}

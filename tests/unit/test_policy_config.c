/*
 * test_policy_config.c — policy_config_load(): defaults, every key family,
 * indexed rate_limit overrides, and "file:line: message" errors.
 */
#include <stdlib.h>

#include "policy_config.h"
#include "unit.h"

static int
load(const char *text, struct policy_config *pc, char *err, size_t errlen)
{
	struct conf c;
	int rc;

	if (conf_load_buf("t.conf", text, strlen(text), &c, err, errlen) < 0)
		return -2;
	rc = policy_config_load(&c, pc, err, errlen);
	if (rc == 0 && conf_check_unused(&c, err, errlen) < 0)
		rc = -3;
	conf_free(&c);
	return rc;
}

TEST(defaults)
{
	struct policy_config pc;
	char err[256];

	EXPECT_INT(load("", &pc, err, sizeof(err)), 0);
	EXPECT_STR(pc.store, "lmdb:/var/lib/tailwart/gate.lmdb");
	EXPECT_STR(pc.store_prefix, "tw:");
	EXPECT_STR(pc.resolver, "system");
	EXPECT_INT(pc.dns_timeout_ms, 2000);
	EXPECT_INT(pc.grey.delay, 300);
	EXPECT_INT(pc.grey.max_wait, 172800);
	EXPECT_INT(pc.grey.retention, 35 * 86400);
	EXPECT_INT(pc.grey.awl_count, 5);
	EXPECT_INT(pc.dnsbl.threshold, 1);
	EXPECT_INT(pc.dnsbl.wl_threshold, -1);
	EXPECT_INT(pc.spf.act[SPF_RES_FAIL], SPF_ACT_REJECT);
	EXPECT_INT(pc.spf.act[SPF_RES_SOFTFAIL], SPF_ACT_LOG);
	EXPECT_INT(pc.spf.act[SPF_RES_TEMPERROR], SPF_ACT_TEMPFAIL);
	EXPECT_INT(pc.rate.def.ip[RATE_CONN].count, 0);
	policy_config_free(&pc);
}

TEST(full)
{
	struct policy_config pc;
	char err[256];
	const char *text =
	    "store = redis://127.0.0.1:6390/2\n"
	    "store_prefix = gate1:\n"
	    "store_failure = tempfail\n"
	    "resolver = 127.0.0.1:5353\n"
	    "dns_timeout = 1s\n"
	    "dns_tries = 3\n"
	    "allow = 192.0.2.0/24\n"
	    "deny = 198.51.100.0/24, 2001:db8::/32\n"
	    "access_action = log\n"
	    "rate_limit = conn 30/1m, concurrency 10, msg 60/1h\n"
	    "rate_limit[203.0.113.0/24] = conn 300/1m,\n"
	    "    concurrency 50\n"
	    "rate_limit[127.0.0.0/8] = none\n"
	    "rate_limit_action = enforce\n"
	    "greylist_delay = 1s\n"
	    "greylist_max_wait = 1h\n"
	    "greylist_awl_count = 3\n"
	    "greylist_spf_exempt = example.com, example.net\n"
	    "dnsbl_sites = bl.test=127.0.0.[2..11]*3, wl.test*-5\n"
	    "dnsbl_threshold = 3\n"
	    "dnswl_threshold = -5\n"
	    "spf_softfail = tempfail\n"
	    "spf_permerror = reject\n";

	EXPECT_INT(load(text, &pc, err, sizeof(err)), 0);
	EXPECT_STR(pc.store, "redis://127.0.0.1:6390/2");
	EXPECT_INT(pc.store_failure, POLICY_FAIL_TEMP);
	EXPECT_INT(pc.rate.on_store_error, POLICY_FAIL_TEMP);
	EXPECT_INT(pc.dns_timeout_ms, 1000);
	EXPECT_INT(pc.dns_tries, 3);
	EXPECT_INT(pc.access.allow.n, 1);
	EXPECT_INT(pc.access.deny.n, 2);
	EXPECT_INT(pc.access.mode, POLICY_LOG);
	EXPECT_INT(pc.rate.nrules, 2);
	EXPECT_INT(pc.rate.rules[0].spec.ip[RATE_CONC].count, 50);
	EXPECT_INT(pc.rate.rules[0].spec.ip[RATE_MSG].count, 60);
	EXPECT_INT(pc.grey.delay, 1);
	EXPECT_INT(pc.grey.spf_exempt.n, 2);
	EXPECT_INT(pc.dnsbl.nzones, 2);
	EXPECT_INT(pc.dnsbl.threshold, 3);
	EXPECT_INT(pc.dnsbl.wl_threshold, -5);
	EXPECT_INT(pc.dnsbl.timeout_ms, 3000);
	EXPECT_INT(pc.spf.act[SPF_RES_SOFTFAIL], SPF_ACT_TEMPFAIL);
	EXPECT_INT(pc.spf.act[SPF_RES_PERMERROR], SPF_ACT_REJECT);
	policy_config_free(&pc);
}

TEST(errors)
{
	static const struct { const char *text, *want; } t[] = {
		{ "\nrate_limit = conn 30\n", "t.conf:2: rate_limit: " },
		{ "rate_limit[10.0.0.0/33] = none\n", "t.conf:1: rate_limit[10.0.0.0/33]: " },
		{ "a = 1\n", "t.conf:1: unknown key" },
		{ "\n\ndnsbl_sites = bad zone\n", "t.conf:3: dnsbl_sites: " },
		{ "greylist_delay = 5y\n", "t.conf:1: greylist_delay: " },
		{ "greylist_action = maybe\n", "t.conf:1: greylist_action: expected ignore" },
		{ "spf_fail = bounce\n", "t.conf:1: spf_fail: expected reject" },
		{ "deny = 300.1.1.1\n", "t.conf:1: deny: " },
		{ "greylist_delay[x] = 5m\n", "t.conf:1: greylist_delay does not take an index" },
		{ "dnsbl_threshold = -2\ndnswl_threshold = -1\n", "dnsbl_threshold: must be above" },
		{ "store_failure = maybe\n", "t.conf:1: store_failure: expected pass or tempfail" },
	};
	struct policy_config pc;
	char err[256];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		err[0] = '\0';
		if (load(t[i].text, &pc, err, sizeof(err)) == 0) {
			FAILF("accepted: %s", t[i].text);
			policy_config_free(&pc);
			continue;
		}
		if (strstr(err, t[i].want) == NULL)
			FAILF("\"%s\" lacks \"%s\"", err, t[i].want);
	}
}

int
main(void)
{
	RUN(defaults);
	RUN(full);
	RUN(errors);
	return unit_done();
}

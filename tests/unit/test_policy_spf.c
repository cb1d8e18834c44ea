/*
 * test_policy_spf.c — the pure parts of policy_spf: result and action
 * names, explanation macro expansion, the Received-SPF header, and the
 * verdict of a check that never reaches DNS (no identity, bad address,
 * mode ignore). Real evaluations are in tests/integration/30-policy-spf.sh.
 */
#include "policy_spf.h"
#include "unit.h"

static struct sockaddr_storage
ip(const char *s)
{
	struct sockaddr_storage ss;

	if (policy_ip_parse(s, &ss) < 0)
		memset(&ss, 0, sizeof(ss));
	return ss;
}

TEST(names)
{
	enum policy_spf_result r;
	enum policy_spf_action a;

	EXPECT_INT(policy_spf_result_parse("SoftFail", &r), 0);
	EXPECT_INT(r, SPF_RES_SOFTFAIL);
	EXPECT_STR(policy_spf_result_name(SPF_RES_PERMERROR), "permerror");
	EXPECT_INT(policy_spf_result_parse("bogus", &r), -1);
	EXPECT_INT(policy_spf_action_parse("tempfail", &a), 0);
	EXPECT_INT(a, SPF_ACT_TEMPFAIL);
	EXPECT_INT(policy_spf_action_parse("bounce", &a), -1);
}

TEST(expand)
{
	char out[200];

	policy_spf_expand(out, sizeof(out), "%{i} may not send for %{d}, see %{h}",
	    "192.0.2.1", "u@x.example", "x.example", "mx.example");
	EXPECT_STR(out, "192.0.2.1 may not send for x.example, see mx.example");
	policy_spf_expand(out, sizeof(out), "%{l}%%%_%{o}%-%{s}%{v}%{ir}.%{x}%",
	    "2001:db8::1", "u@x.example", "x.example", "h");
	EXPECT_STR(out, "u% x.example%20u@x.exampleip62001:db8::1.unknown%");
	policy_spf_expand(out, 8, "%{i} is long", "192.0.2.1", "", "d", "h");
	EXPECT_STR(out, "192.0.2");
	policy_spf_expand(out, sizeof(out), "%{", "1", "", "d", "h");
	EXPECT(strlen(out) < sizeof(out));
	policy_spf_expand(out, sizeof(out), "by %{l}", "1", "", "d", "h");
	EXPECT_STR(out, "by postmaster");
}

TEST(received)
{
	char buf[512];
	struct sockaddr_storage a = ip("192.0.2.1");

	EXPECT_INT(policy_spf_received(SPF_RES_PASS, "mx.example", &a, "h.example",
	    "u@d.example", buf, sizeof(buf)), 0);
	EXPECT_STR(buf, "Received-SPF: pass (mx.example: domain of u@d.example "
	    "designates 192.0.2.1 as permitted sender) client-ip=192.0.2.1; "
	    "envelope-from=\"u@d.example\"; helo=h.example;");
	EXPECT_INT(policy_spf_received(SPF_RES_FAIL, "mx", &a, "bad\r\nX: y",
	    "a\"b;c@d", buf, sizeof(buf)), 0);
	EXPECT(strchr(buf, '\r') == NULL && strchr(buf, '\n') == NULL);
	EXPECT(strstr(buf, "envelope-from=\"a?b?c@d\"") != NULL);
	EXPECT_INT(policy_spf_received(SPF_RES_NONE, "mx", &a, "h", "", buf, 20), -1);
}

TEST(no_dns_needed)
{
	struct policy_spf_config sc;
	struct policy_result r;
	struct sockaddr_storage a = ip("192.0.2.1"), bad;
	enum policy_spf_result res;

	policy_spf_config_init(&sc);
	/* no identity at all: none, logged, passes (no resolver touched) */
	EXPECT_INT(policy_spf_check(&sc, NULL, &a, "", "", &r, &res), POLICY_PASS);
	EXPECT_INT(res, SPF_RES_NONE);
	memset(&bad, 0, sizeof(bad));
	EXPECT_INT(policy_spf_check(&sc, NULL, &bad, "h", "u@d", &r, &res), POLICY_PASS);
	EXPECT(strstr(r.detail, "bad-client-address") != NULL);
	/* an identity but no resolver: temperror, never a crash */
	EXPECT_INT(policy_spf_check(&sc, NULL, &a, "h", "u@d", &r, &res), POLICY_TEMPFAIL);
	EXPECT_INT(res, SPF_RES_TEMPERROR);
	sc.mode = POLICY_IGNORE;
	EXPECT_INT(policy_spf_check(&sc, NULL, &a, "h", "u@d", &r, &res), POLICY_SKIP);
}

int
main(void)
{
	RUN(names);
	RUN(expand);
	RUN(received);
	RUN(no_dns_needed);
	return unit_done();
}

/*
 * test_policy_grey.c — sender normalization table and the greylisting
 * decision table (first sight, early retry, pass, known triplet, too late,
 * auto-allowlist, exemptions, /24 grouping) with a fake clock and an LMDB
 * store.
 */
#include <stdlib.h>

#include "policy_grey.h"
#include "unit.h"

static struct policy_store *
open_tmp(void)
{
	char dir[64], spec[300], err[256];
	struct policy_store *st = NULL;

	snprintf(dir, sizeof(dir), "/tmp/twgreyXXXXXX");
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

TEST(normalize)
{
	static const struct { const char *in, *out; } t[] = {
		{ "User@Example.COM", "user@example.com" },
		{ "user+tag@example.com", "user@example.com" },
		{ "user+a+b@example.com", "user@example.com" },
		{ "+only@example.com", "+only@example.com" },
		{ "prvs=1234567890=bob@example.com", "bob@example.com" },
		{ "PRVS=0123abcdef=Bob+x@Example.com", "bob@example.com" },
		{ "msprvs1=17707abcdefx=carol@example.com", "carol@example.com" },
		{ "SRS0=HHH=TT=orig.example=alice@fwd.example", "alice@orig.example" },
		{ "SRS0+HHH=TT=orig.example=alice+x@fwd.example", "alice@orig.example" },
		{ "SRS1=HHH=fwd1.example==HHH=TT=orig.example=dave@fwd2.example",
		  "dave@orig.example" },
		{ "srs0=broken@fwd.example", "srs0=broken@fwd.example" },
		{ "", "" },
		{ "postmaster", "postmaster" },
		{ "a=b@c", "a=b@c" },
	};
	char out[320];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		EXPECT_INT(policy_grey_normalize(t[i].in, out, sizeof(out)), 0);
		EXPECT_STR(out, t[i].out);
	}
	EXPECT_INT(policy_grey_normalize("averylongaddress@example.com", out, 8), -1);
	EXPECT_INT(strlen(out), 7);
}

TEST(flow)
{
	struct policy_grey_config gc;
	struct policy_store *st = open_tmp();
	struct policy_result r;
	struct sockaddr_storage a = ip("192.0.2.10"), b = ip("192.0.2.77"),
	    c = ip("198.51.100.1");
	time_t t0 = time(NULL);

	policy_grey_config_init(&gc);
	gc.delay = 60;
	gc.max_wait = 3600;
	gc.awl_count = 0;
	EXPECT_INT(policy_grey_check(&gc, st, &a, "s+x@Ex.org", "r@d", 0, t0, &r),
	    POLICY_TEMPFAIL);
	EXPECT_INT(r.code, 451);
	EXPECT_STR(r.enh, "4.7.1");
	EXPECT_STR(r.text, "Greylisted, please try again in 60 seconds");
	EXPECT(strstr(r.detail, "state=new") != NULL);
	/* early retry, from another host of the same /24 */
	EXPECT_INT(policy_grey_check(&gc, st, &b, "s@ex.org", "r@d", 0, t0 + 20, &r),
	    POLICY_TEMPFAIL);
	EXPECT_STR(r.text, "Greylisted, please try again in 40 seconds");
	/* a different network is a different triplet */
	EXPECT_INT(policy_grey_check(&gc, st, &c, "s@ex.org", "r@d", 0, t0 + 70, &r),
	    POLICY_TEMPFAIL);
	EXPECT(strstr(r.detail, "state=new") != NULL);
	/* retry after the delay passes */
	EXPECT_INT(policy_grey_check(&gc, st, &a, "s@ex.org", "r@d", 0, t0 + 61, &r),
	    POLICY_PASS);
	EXPECT(strstr(r.detail, "state=passed") != NULL);
	EXPECT_INT(policy_grey_check(&gc, st, &a, "s@ex.org", "r@d", 0, t0 + 62, &r),
	    POLICY_PASS);
	EXPECT(strstr(r.detail, "state=known") != NULL);
	/* another recipient is new */
	EXPECT_INT(policy_grey_check(&gc, st, &a, "s@ex.org", "R2@d", 0, t0 + 62, &r),
	    POLICY_TEMPFAIL);
	/* too late: starts over */
	EXPECT_INT(policy_grey_check(&gc, st, &a, "s@ex.org", "r2@d", 0,
	    t0 + 62 + 3601, &r), POLICY_TEMPFAIL);
	EXPECT(strstr(r.detail, "state=new") != NULL);
	policy_grey_free(&gc);
}

TEST(awl_and_exemptions)
{
	struct policy_grey_config gc;
	struct policy_store *st = open_tmp();
	struct policy_result r;
	struct sockaddr_storage a = ip("2001:db8:1:2::5"), b = ip("2001:db8:1:2::99");
	time_t t0 = time(NULL);
	char rcpt[32];
	int i;

	policy_grey_config_init(&gc);
	gc.delay = 10;
	gc.awl_count = 2;
	EXPECT_INT(conf_split_list("spf.example", &gc.spf_exempt), 0);
	for (i = 0; i < 2; i++) {
		snprintf(rcpt, sizeof(rcpt), "r%d@d", i);
		EXPECT_INT(policy_grey_check(&gc, st, &a, "s@x", rcpt, 0, t0, &r),
		    POLICY_TEMPFAIL);
		EXPECT_INT(policy_grey_check(&gc, st, &a, "s@x", rcpt, 0, t0 + 10, &r),
		    POLICY_PASS);
	}
	/* the /64 is now auto-allowlisted */
	EXPECT_INT(policy_grey_check(&gc, st, &b, "new@y", "z@d", 0, t0 + 11, &r),
	    POLICY_SKIP);
	EXPECT(strstr(r.detail, "exempt=awl") != NULL);
	a = ip("192.0.2.1");
	EXPECT_INT(policy_grey_check(&gc, st, &a, "s@x", "r@d",
	    POLICY_GREY_DNSWL, t0, &r), POLICY_SKIP);
	EXPECT_INT(policy_grey_check(&gc, st, &a, "s@x", "r@d",
	    POLICY_GREY_ALLOWED, t0, &r), POLICY_SKIP);
	EXPECT_INT(policy_grey_check(&gc, st, &a, "s@SPF.example", "r@d",
	    POLICY_GREY_SPF_PASS, t0, &r), POLICY_SKIP);
	EXPECT_INT(policy_grey_check(&gc, st, &a, "s@other.example", "r@d",
	    POLICY_GREY_SPF_PASS, t0, &r), POLICY_TEMPFAIL);
	gc.mode = POLICY_LOG;
	EXPECT_INT(policy_grey_check(&gc, st, &a, "s@o", "q@d", 0, t0, &r),
	    POLICY_PASS);
	EXPECT_INT(r.decided, POLICY_TEMPFAIL);
	policy_grey_free(&gc);
}

TEST(store_down)
{
	struct policy_grey_config gc;
	struct policy_store *st = NULL;
	struct policy_result r;
	struct sockaddr_storage a = ip("192.0.2.1");
	char err[256];

	EXPECT_INT(policy_store_open("redis://127.0.0.1:1/0", NULL, &st, err,
	    sizeof(err)), 0);
	policy_grey_config_init(&gc);
	EXPECT_INT(policy_grey_check(&gc, st, &a, "s@x", "r@d", 0, time(NULL), &r),
	    POLICY_PASS);
	gc.on_store_error = POLICY_FAIL_TEMP;
	EXPECT_INT(policy_grey_check(&gc, st, &a, "s@x", "r@d", 0, time(NULL), &r),
	    POLICY_TEMPFAIL);
	EXPECT_STR(r.enh, "4.3.0");
	policy_store_close(st);
	policy_grey_free(&gc);
}

int
main(void)
{
	RUN(normalize);
	RUN(flow);
	RUN(awl_and_exemptions);
	RUN(store_down);
	return unit_done();
}

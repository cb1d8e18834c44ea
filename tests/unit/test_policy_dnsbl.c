/*
 * test_policy_dnsbl.c — dnsbl_sites parsing, answer classification,
 * reversed-octet / nibble query names, the bounded DNS answer parser on
 * good and hostile packets, TXT joining, and the access lists.
 */
#include <stdlib.h>

#include "policy_access.h"
#include "policy_dnsbl.h"
#include "unit.h"

static struct sockaddr_storage
ip(const char *s)
{
	struct sockaddr_storage ss;

	if (policy_ip_parse(s, &ss) < 0)
		memset(&ss, 0, sizeof(ss));
	return ss;
}

TEST(parse_sites)
{
	struct policy_dnsbl_config bc;

	policy_dnsbl_config_init(&bc);
	EXPECT(policy_dnsbl_parse("zen.example=127.0.0.[2..11]*3, "
	    "wl.example=127.0.[0..255].[1..3]*-5, plain.example, "
	    "star.example=127.0.0.*, w.example.*2", &bc) == NULL);
	EXPECT_INT(bc.nzones, 5);
	EXPECT_STR(bc.zones[0].zone, "zen.example");
	EXPECT_INT(bc.zones[0].weight, 3);
	EXPECT_INT(bc.zones[0].has_filter, 1);
	EXPECT_INT(bc.zones[0].lo[3], 2);
	EXPECT_INT(bc.zones[0].hi[3], 11);
	EXPECT_INT(bc.zones[1].weight, -5);
	EXPECT_INT(bc.zones[1].lo[2], 0);
	EXPECT_INT(bc.zones[1].hi[2], 255);
	EXPECT_INT(bc.zones[2].weight, 1);
	EXPECT_INT(bc.zones[2].has_filter, 0);
	EXPECT_INT(bc.zones[3].lo[3], 0);
	EXPECT_INT(bc.zones[3].hi[3], 255);
	EXPECT_INT(bc.zones[3].weight, 1);
	EXPECT_STR(bc.zones[4].zone, "w.example");
	EXPECT_INT(bc.zones[4].weight, 2);
	policy_dnsbl_free(&bc);
}

TEST(parse_sites_bad)
{
	const char *bad[] = {
		"=127.0.0.2", "z.example=127.0.0", "z.example=127.0.0.256",
		"z.example=127.0.0.[5..2]", "z.example=127.0.0.[1..]",
		"z.example*0", "z.example*abc1", "bad zone.example",
		"z.example=127.0.0.2.5", "z.example=127.0.0.[1..3*2",
		"z.example*99999",
	};
	struct policy_dnsbl_config bc;
	size_t i;

	policy_dnsbl_config_init(&bc);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (policy_dnsbl_parse(bad[i], &bc) == NULL)
			FAILF("accepted \"%s\"", bad[i]);
	EXPECT_INT(bc.nzones, 0);
}

TEST(classify)
{
	struct policy_dnsbl_config bc;
	static const struct { int zone; unsigned char a[4]; int want; } t[] = {
		{ 0, { 127, 0, 0, 2 }, DNSBL_MATCH },
		{ 0, { 127, 0, 0, 11 }, DNSBL_MATCH },
		{ 0, { 127, 0, 0, 12 }, DNSBL_NOMATCH },
		{ 0, { 127, 0, 0, 1 }, DNSBL_NOMATCH },
		{ 0, { 127, 0, 1, 2 }, DNSBL_NOMATCH },
		{ 0, { 10, 0, 0, 1 }, DNSBL_INVALID },
		{ 0, { 127, 255, 255, 254 }, DNSBL_INVALID },
		{ 1, { 127, 255, 255, 252 }, DNSBL_INVALID },
		{ 1, { 127, 255, 254, 1 }, DNSBL_MATCH },
		{ 1, { 128, 0, 0, 2 }, DNSBL_INVALID },
		{ 1, { 127, 0, 0, 2 }, DNSBL_MATCH },
	};
	size_t i;

	policy_dnsbl_config_init(&bc);
	EXPECT(policy_dnsbl_parse("a.example=127.0.0.[2..11], b.example", &bc) == NULL);
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if ((int)policy_dnsbl_classify(&bc.zones[t[i].zone], t[i].a) != t[i].want)
			FAILF("case %zu: got %d want %d", i,
			    policy_dnsbl_classify(&bc.zones[t[i].zone], t[i].a), t[i].want);
	policy_dnsbl_free(&bc);
}

TEST(query_names)
{
	char buf[300];
	struct sockaddr_storage a = ip("192.0.2.99");

	EXPECT_INT(policy_dnsbl_name(&a, "bl.test", buf, sizeof(buf)), 0);
	EXPECT_STR(buf, "99.2.0.192.bl.test");
	a = ip("::ffff:192.0.2.1");
	EXPECT_INT(policy_dnsbl_name(&a, "bl.test", buf, sizeof(buf)), 0);
	EXPECT_STR(buf, "1.2.0.192.bl.test");
	a = ip("2001:db8::99");
	EXPECT_INT(policy_dnsbl_name(&a, "bl.test", buf, sizeof(buf)), 0);
	EXPECT_STR(buf, "9.9.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
	    "8.b.d.0.1.0.0.2.bl.test");
	EXPECT_INT(policy_dnsbl_name(&a, "bl.test", buf, 40), -1);
	a = ip("192.0.2.99");
	EXPECT_INT(policy_dnsbl_name(&a, "bl.test", buf, 10), -1);
}

/* A response for 99.2.0.192.bl.test with the given answer RRs appended. */
static size_t
packet(unsigned char *p, int ancount, const unsigned char *ans, size_t anslen)
{
	static const unsigned char hdr[] = {
		0x12, 0x34, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0,
		2, '9', '9', 1, '2', 1, '0', 3, '1', '9', '2',
		2, 'b', 'l', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1,
	};
	memcpy(p, hdr, sizeof(hdr));
	p[7] = (unsigned char)ancount;
	memcpy(p + sizeof(hdr), ans, anslen);
	return sizeof(hdr) + anslen;
}

struct seen { int n; unsigned ttl; unsigned char a[4]; };

static int
on_rr(void *arg, const struct policy_dns_rr *rr)
{
	struct seen *s = arg;

	s->n++;
	s->ttl = rr->ttl;
	if (rr->rdlen == 4)
		memcpy(s->a, rr->rdata, 4);
	return 0;
}

TEST(dns_parse)
{
	static const unsigned char a_rr[] = {
		0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 127, 0, 0, 2,
	};
	static const unsigned char cname_then_a[] = {
		0xc0, 0x0c, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 0x0c,
		0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 127, 0, 0, 3,
	};
	static const unsigned char overrun[] = {	/* rdlength past the end */
		0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0x40, 0, 127, 0, 0, 2,
	};
	static const unsigned char loop_name[] = {	/* owner points at itself */
		0xc0, 0x24, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 2,
	};
	unsigned char p[512];
	struct seen s;
	size_t n;

	memset(&s, 0, sizeof(s));
	n = packet(p, 1, a_rr, sizeof(a_rr));
	EXPECT_INT(policy_dns_parse(p, (int)n, ns_t_a, on_rr, &s), 1);
	EXPECT_INT(s.ttl, 3600);
	EXPECT_INT(s.a[3], 2);
	memset(&s, 0, sizeof(s));
	n = packet(p, 2, cname_then_a, sizeof(cname_then_a));
	EXPECT_INT(policy_dns_parse(p, (int)n, ns_t_a, on_rr, &s), 1);
	EXPECT_INT(s.a[3], 3);
	/* truncated anywhere: -1 or fewer RRs, never a crash */
	for (size_t cut = 0; cut < n; cut++)
		EXPECT(policy_dns_parse(p, (int)cut, ns_t_a, on_rr, &s) < 1 ||
		    cut >= n - 16);
	n = packet(p, 1, overrun, sizeof(overrun));
	EXPECT_INT(policy_dns_parse(p, (int)n, ns_t_a, on_rr, &s), -1);
	n = packet(p, 1, loop_name, sizeof(loop_name));
	EXPECT_INT(policy_dns_parse(p, (int)n, ns_t_a, on_rr, &s), -1);
	n = packet(p, 5, a_rr, sizeof(a_rr));	/* claims 5 answers, has 1 */
	EXPECT_INT(policy_dns_parse(p, (int)n, ns_t_a, on_rr, &s), -1);
	EXPECT_INT(policy_dns_parse(NULL, 0, ns_t_a, on_rr, &s), -1);
}

TEST(txt_join)
{
	static const unsigned char ok[] = { 3, 'a', 'b', 'c', 2, 'd', 'e' };
	static const unsigned char bad[] = { 9, 'a', 'b' };
	char out[8];

	EXPECT_INT(policy_dns_txt(ok, sizeof(ok), out, sizeof(out)), 5);
	EXPECT_STR(out, "abcde");
	EXPECT_INT(policy_dns_txt(ok, sizeof(ok), out, 3), 5);
	EXPECT_STR(out, "ab");
	EXPECT_INT(policy_dns_txt(bad, sizeof(bad), out, sizeof(out)), -1);
}

TEST(access_lists)
{
	struct policy_access_config ac;
	struct policy_result r;
	struct sockaddr_storage a;
	char err[256];

	policy_access_config_init(&ac);
	EXPECT_INT(net_cidr_list_parse("192.0.2.0/24, 2001:db8::/32", &ac.deny,
	    err, sizeof(err)), 0);
	EXPECT_INT(net_cidr_list_parse("192.0.2.5", &ac.allow, err, sizeof(err)), 0);
	a = ip("192.0.2.5");
	EXPECT_INT(policy_access_check(&ac, &a, &r), POLICY_ALLOW);
	a = ip("192.0.2.6");
	EXPECT_INT(policy_access_check(&ac, &a, &r), POLICY_REJECT);
	EXPECT_INT(r.code, 554);
	EXPECT_STR(r.text, "Access denied for 192.0.2.6");
	a = ip("::ffff:192.0.2.7");
	EXPECT_INT(policy_access_check(&ac, &a, &r), POLICY_REJECT);
	a = ip("2001:db8::1");
	EXPECT_INT(policy_access_check(&ac, &a, &r), POLICY_REJECT);
	a = ip("198.51.100.1");
	EXPECT_INT(policy_access_check(&ac, &a, &r), POLICY_PASS);
	ac.mode = POLICY_LOG;
	a = ip("192.0.2.6");
	EXPECT_INT(policy_access_check(&ac, &a, &r), POLICY_PASS);
	EXPECT_INT(r.decided, POLICY_REJECT);
	policy_access_free(&ac);
}

TEST(result_helpers)
{
	struct policy_result r;
	char buf[600];

	policy_result_init(&r, "x");
	EXPECT_INT(policy_result_reply(&r, buf, sizeof(buf)), -1);
	policy_result_set(&r, POLICY_REJECT, 550, "5.7.1", "no \"way\"");
	policy_result_detail(&r, "a=%d", 1);
	policy_result_detail(&r, "b=2");
	EXPECT_INT(policy_result_reply(&r, buf, sizeof(buf)), 0);
	EXPECT_STR(buf, "550 5.7.1 no \"way\"");
	EXPECT_STR(policy_result_format(&r, buf, sizeof(buf)),
	    "check=x verdict=reject decided=reject mode=enforce "
	    "reply=\"550 5.7.1 no 'way'\" a=1 b=2");
	EXPECT_INT(policy_result_reply(&r, buf, 5), -1);
	{
		struct sockaddr_storage a = ip("2001:db8:1:2:3:4:5:6");
		EXPECT_INT(policy_net_str(&a, 24, 64, buf, sizeof(buf)), 0);
		EXPECT_STR(buf, "2001:db8:1:2::/64");
		a = ip("192.0.2.200");
		EXPECT_INT(policy_net_str(&a, 24, 64, buf, sizeof(buf)), 0);
		EXPECT_STR(buf, "192.0.2.0/24");
		EXPECT_INT(policy_net_str(&a, 20, 64, buf, sizeof(buf)), 0);
		EXPECT_STR(buf, "192.0.0.0/20");
	}
}

int
main(void)
{
	RUN(parse_sites);
	RUN(parse_sites_bad);
	RUN(classify);
	RUN(query_names);
	RUN(dns_parse);
	RUN(txt_join);
	RUN(access_lists);
	RUN(result_helpers);
	return unit_done();
}

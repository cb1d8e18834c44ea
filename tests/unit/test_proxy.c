/*
 * test_proxy — lib/proxy: PROXY protocol v1/v2 encoders and decoder.
 *
 * Vectors from haproxy's doc/proxy-protocol.txt (the v1 maximum-length
 * lines, the v2 signature), a v2 header computed by hand from the spec,
 * encode/decode round trips, CRC32c (the RFC 3720 / "123456789" vectors),
 * every truncation of a valid header (NEED_MORE), a table of malformed
 * headers (BAD, with the reason), and encoders given every buffer size
 * below the one needed (-1, and not one byte written past the size).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include "unit.h"
#include "proxy.h"

/* The signature as printed in section 2.2, typed in independently. */
static const unsigned char spec_sig[12] = {
	0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A
};

static void set_addr(struct sockaddr_storage *ss, const char *ip, unsigned port)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(ip, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, ip, &s6->sin6_addr) != 1)
			abort();
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, ip, &s4->sin_addr) != 1)
			abort();
	}
}

static void mkinfo(struct proxy_info *pi, const char *src, unsigned sport,
    const char *dst, unsigned dport)
{
	memset(pi, 0, sizeof(*pi));
	set_addr(&pi->src, src, sport);
	set_addr(&pi->dst, dst, dport);
}

/* "ip port" of a decoded address, for EXPECT_STR. */
static const char *fmt_addr(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
	char ip[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		snprintf(out, outlen, "%s %u", ip, ntohs(s4->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		snprintf(out, outlen, "[%s] %u", ip, ntohs(s6->sin6_port));
	} else {
		snprintf(out, outlen, "family %d", ss->ss_family);
	}
	return out;
}

static enum proxy_status dec(const void *buf, size_t len, struct proxy_info *pi,
    size_t *used, const char **why)
{
	*used = 12345;
	*why = NULL;
	return proxy_decode(buf, len, pi, used, why);
}

/* Decode must ask for more at every proper prefix of a valid header. */
static void expect_need_more_prefixes(const unsigned char *h, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		struct proxy_info pi;
		const char *why;
		size_t used;
		enum proxy_status st = dec(h, k, &pi, &used, &why);

		if (st != PROXY_NEED_MORE)
			FAILF("prefix %zu of %zu: status %d (%s), expected NEED_MORE",
			    k, n, (int)st, why ? why : "-");
	}
}

/* ------------------------------------------------------------ CRC32c */

TEST(crc32c_vectors)
{
	unsigned char b[32];

	EXPECT_INT(proxy_crc32c("123456789", 9), 0xE3069283u);
	EXPECT_INT(proxy_crc32c("", 0), 0);
	/* RFC 3720 B.4 */
	memset(b, 0, sizeof(b));
	EXPECT_INT(proxy_crc32c(b, sizeof(b)), 0x8A9136AAu);
	memset(b, 0xFF, sizeof(b));
	EXPECT_INT(proxy_crc32c(b, sizeof(b)), 0x62A8AB43u);
	for (unsigned i = 0; i < 32; i++)
		b[i] = (unsigned char)i;
	EXPECT_INT(proxy_crc32c(b, sizeof(b)), 0x46DD794Eu);
}

/* ------------------------------------------------------------ v1 decode */

struct v1_ok {
	const char *in;
	size_t consumed;
	int local;
	const char *src, *dst;		/* fmt_addr form; NULL when local */
};

static const struct v1_ok v1_ok_cases[] = {
	/* section 2.1: the maximum lengths a receiver must support */
	{ "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", 56, 0,
	  "255.255.255.255 65535", "255.255.255.255 65535" },
	{ "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n", 104, 0,
	  "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff] 65535",
	  "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff] 65535" },
	{ "PROXY UNKNOWN\r\n", 15, 1, NULL, NULL },
	{ "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n", 107, 1, NULL, NULL },
	/* the example line of section 2.1, followed by the proxied request */
	{ "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n"
	  "Host: 192.168.0.11\r\n\r\n", 47, 0, "192.168.0.1 56324", "192.168.0.11 443" },
	{ "PROXY TCP4 0.0.0.0 10.0.0.1 0 25\r\nEHLO x\r\n", 34, 0, "0.0.0.0 0", "10.0.0.1 25" },
	{ "PROXY TCP6 2001:db8::1 ::1 1 65535\r\n", 36, 0, "[2001:db8::1] 1", "[::1] 65535" },
	{ "PROXY TCP6 2001:DB8:0:0:0:0:0:7 ::ffff:192.0.2.1 40000 25\r\n", 59, 0,
	  "[2001:db8::7] 40000", "[::ffff:192.0.2.1] 25" },
};

TEST(v1_decode_ok)
{
	for (size_t i = 0; i < sizeof(v1_ok_cases) / sizeof(v1_ok_cases[0]); i++) {
		const struct v1_ok *c = &v1_ok_cases[i];
		struct proxy_info pi;
		const char *why;
		size_t used;
		char a[80];

		if (dec(c->in, strlen(c->in), &pi, &used, &why) != PROXY_OK) {
			FAILF("case %zu \"%.40s...\": not OK (%s)", i, c->in, why ? why : "-");
			continue;
		}
		EXPECT_INT(used, c->consumed);
		EXPECT_INT(pi.local, c->local);
		EXPECT_INT(pi.ssl, 0);
		EXPECT_STR(pi.unique_id, "");
		if (c->src != NULL) {
			EXPECT_STR(fmt_addr(&pi.src, a, sizeof(a)), c->src);
			EXPECT_STR(fmt_addr(&pi.dst, a, sizeof(a)), c->dst);
		}
		/* every proper prefix of the header is NEED_MORE */
		expect_need_more_prefixes((const unsigned char *)c->in, c->consumed);
	}
}

struct bad_case {
	const char *name;
	const char *in;
	size_t len;		/* 0 = strlen(in) */
	const char *why;	/* case-insensitive substring of the reason */
};

static const struct bad_case v1_bad_cases[] = {
	/* the 107-byte worst case is 94 bytes + "65535 65535\r\n" */
	{ "no CRLF within 107 bytes",
	  "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 6553555", 0, "too long" },
	{ "CRLF as bytes 108-109",
	  "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 6553555\r\n", 0, "too long" },
	{ "CR as byte 107 (LF would be 108)",
	  "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 655355\r", 0, "too long" },
	{ "bare LF", "PROXY UNKNOWN\n", 0, "LF" },
	{ "bare CR", "PROXY UNKNOWN\rX\r\n", 0, "CR" },
	{ "NUL byte", "PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n", 34, "v1" },
	{ "tab", "PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n", 0, "v1" },
	{ "octet 256", "PROXY TCP4 256.1.1.1 5.6.7.8 1 2\r\n", 0, "address" },
	{ "three octets", "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", 0, "address" },
	{ "five octets", "PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", 0, "address" },
	{ "empty octet", "PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n", 0, "address" },
	{ "leading zero octet", "PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n", 0, "address" },
	{ "hex octet", "PROXY TCP4 1.2.3.a 5.6.7.8 1 2\r\n", 0, "address" },
	{ "v6 in TCP4", "PROXY TCP4 ::1 5.6.7.8 1 2\r\n", 0, "address" },
	{ "v4 in TCP6", "PROXY TCP6 1.2.3.4 ::1 1 2\r\n", 0, "address" },
	{ "bad v6", "PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", 0, "address" },
	{ "two double colons", "PROXY TCP6 1::2::3 ::1 1 2\r\n", 0, "address" },
	{ "v6 with zone", "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", 0, "address" },
	{ "port 65536", "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", 0, "port" },
	{ "port 99999", "PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n", 0, "port" },
	{ "port 6 digits", "PROXY TCP4 1.2.3.4 5.6.7.8 1 000025\r\n", 0, "port" },
	{ "leading zero port", "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", 0, "port" },
	{ "port 00", "PROXY TCP4 1.2.3.4 5.6.7.8 00 2\r\n", 0, "port" },
	{ "signed port", "PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", 0, "port" },
	{ "negative port", "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", 0, "port" },
	{ "double space", "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", 0, "v1" },
	{ "trailing space", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", 0, "v1" },
	{ "extra field", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", 0, "v1" },
	{ "missing port", "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", 0, "v1" },
	{ "space before protocol", "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 0, "v1" },
	{ "unknown protocol", "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", 0, "v1" },
	{ "lower-case protocol", "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", 0, "v1" },
	{ "UNKNOWN glued", "PROXY UNKNOWNX\r\n", 0, "v1" },
	{ "no protocol", "PROXY \r\n", 0, "v1" },
	{ "lower-case signature", "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 0, "" },
	{ "PROXZ", "PROXZ", 0, "" },
	{ "PROXY without space", "PROXY\r\n", 0, "" },
	{ "SMTP instead", "EHLO example.com\r\n", 0, "" },
	{ "one wrong byte", "X", 0, "" },
};

static void run_bad(const struct bad_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct bad_case *c = &cases[i];
		size_t len = c->len ? c->len : strlen(c->in);
		struct proxy_info pi;
		const char *why;
		size_t used;
		enum proxy_status st = dec(c->in, len, &pi, &used, &why);

		if (st != PROXY_BAD) {
			FAILF("%s: status %d, expected BAD", c->name, (int)st);
			continue;
		}
		if (why == NULL || why[0] == '\0')
			FAILF("%s: BAD without a reason", c->name);
		else if (strcasestr(why, c->why) == NULL)
			FAILF("%s: reason \"%s\" lacks \"%s\"", c->name, why, c->why);
	}
}

TEST(v1_decode_bad)
{
	run_bad(v1_bad_cases, sizeof(v1_bad_cases) / sizeof(v1_bad_cases[0]));
}

TEST(v1_need_more)
{
	static const char *partial[] = {
		"", "P", "PRO", "PROXY", "PROXY ", "PROXY TCP4 1.2.3.4",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r",
		/* 106 bytes of a line that may still end at 107 */
		"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r",
	};

	for (size_t i = 0; i < sizeof(partial) / sizeof(partial[0]); i++) {
		struct proxy_info pi;
		const char *why;
		size_t used;

		EXPECT_INT(dec(partial[i], strlen(partial[i]), &pi, &used, &why), PROXY_NEED_MORE);
	}
}

/* ------------------------------------------------------------ v1 encode */

TEST(v1_encode)
{
	struct proxy_info pi;
	char buf[200];
	ssize_t n;
	const char *why;
	size_t used;
	struct proxy_info out;
	char a[80];

	mkinfo(&pi, "192.0.2.1", 56324, "198.51.100.7", 25);
	n = proxy_v1_encode(&pi, buf, sizeof(buf));
	EXPECT_STR(buf, "PROXY TCP4 192.0.2.1 198.51.100.7 56324 25\r\n");
	EXPECT_INT(n, strlen("PROXY TCP4 192.0.2.1 198.51.100.7 56324 25\r\n"));

	mkinfo(&pi, "2001:db8::1", 1, "2001:db8::2", 65535);
	n = proxy_v1_encode(&pi, buf, sizeof(buf));
	EXPECT_STR(buf, "PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n");
	EXPECT_INT(dec(buf, (size_t)n, &out, &used, &why), PROXY_OK);
	EXPECT_INT(used, n);
	EXPECT_STR(fmt_addr(&out.src, a, sizeof(a)), "[2001:db8::1] 1");
	EXPECT_STR(fmt_addr(&out.dst, a, sizeof(a)), "[2001:db8::2] 65535");

	/* v4-mapped pair goes out as TCP4 */
	mkinfo(&pi, "::ffff:192.0.2.9", 4000, "::ffff:10.1.2.3", 25);
	n = proxy_v1_encode(&pi, buf, sizeof(buf));
	EXPECT_STR(buf, "PROXY TCP4 192.0.2.9 10.1.2.3 4000 25\r\n");

	/* mixed families */
	mkinfo(&pi, "192.0.2.9", 4000, "2001:db8::2", 25);
	EXPECT_INT(proxy_v1_encode(&pi, buf, sizeof(buf)), -1);

	memset(&pi, 0, sizeof(pi));
	pi.local = 1;
	n = proxy_v1_encode(&pi, buf, sizeof(buf));
	EXPECT_STR(buf, "PROXY UNKNOWN\r\n");
	EXPECT_INT(n, 15);
}

/* ------------------------------------------------------------ v2 encode */

TEST(v2_signature)
{
	unsigned char b[64];

	EXPECT_INT(proxy_v2_encode_local(b, sizeof(b)), 16);
	EXPECT_MEM(b, spec_sig, 12);
	/* version 2, LOCAL; UNSPEC/UNSPEC; no address */
	EXPECT_INT(b[12], 0x20);
	EXPECT_INT(b[13], 0x00);
	EXPECT_INT(b[14], 0);
	EXPECT_INT(b[15], 0);
}

/* 192.0.2.1:56324 -> 198.51.100.7:25, PROXY, TCP over IPv4, no TLV:
 * worked out by hand from section 2.2. */
static const unsigned char v2_v4_plain[28] = {
	0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
	0x21,			/* version 2, command PROXY */
	0x11,			/* AF_INET, STREAM */
	0x00, 0x0C,		/* 12 address bytes follow */
	192, 0, 2, 1,		/* source address */
	198, 51, 100, 7,	/* destination address */
	0xDC, 0x04,		/* source port 56324 */
	0x00, 0x19,		/* destination port 25 */
};

TEST(v2_encode_exact_v4)
{
	struct proxy_info pi, out;
	unsigned char b[128];
	const char *why;
	size_t used;
	char a[80];

	mkinfo(&pi, "192.0.2.1", 56324, "198.51.100.7", 25);
	EXPECT_INT(proxy_v2_encode(&pi, b, sizeof(b)), 28);
	EXPECT_MEM(b, v2_v4_plain, sizeof(v2_v4_plain));

	/* the same from a v4-mapped pair */
	mkinfo(&pi, "::ffff:192.0.2.1", 56324, "::ffff:198.51.100.7", 25);
	EXPECT_INT(proxy_v2_encode(&pi, b, sizeof(b)), 28);
	EXPECT_MEM(b, v2_v4_plain, sizeof(v2_v4_plain));

	/* mapped source with a plain v4 destination: both end up v4 */
	mkinfo(&pi, "::ffff:192.0.2.1", 56324, "198.51.100.7", 25);
	EXPECT_INT(proxy_v2_encode(&pi, b, sizeof(b)), 28);
	EXPECT_MEM(b, v2_v4_plain, sizeof(v2_v4_plain));

	EXPECT_INT(dec(v2_v4_plain, sizeof(v2_v4_plain), &out, &used, &why), PROXY_OK);
	EXPECT_INT(used, 28);
	EXPECT_INT(out.local, 0);
	EXPECT_STR(fmt_addr(&out.src, a, sizeof(a)), "192.0.2.1 56324");
	EXPECT_STR(fmt_addr(&out.dst, a, sizeof(a)), "198.51.100.7 25");
}

TEST(v2_encode_exact_v6_ssl)
{
	struct proxy_info pi;
	unsigned char b[256];
	static const unsigned char want[] = {
		0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
		0x21, 0x21, 0x00, 36 + 3 + 5 + 3 + 7 + 3 + 1 + 3 + 2,
		0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
		0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
		0x04, 0x00, 0x00, 0x19,
		0x20, 0x00, 5 + 3 + 7 + 3 + 1,	/* SSL TLV */
		0x01, 0x00, 0x00, 0x00, 0x01,	/* client SSL, verify != 0 */
		0x21, 0x00, 0x07, 'T', 'L', 'S', 'v', '1', '.', '3',
		0x23, 0x00, 0x01, 'X',
		0x05, 0x00, 0x02, 'i', 'd',	/* UNIQUE_ID */
	};

	mkinfo(&pi, "2001:db8::1", 1024, "2001:db8::2", 25);
	pi.ssl = 1;
	strcpy(pi.ssl_version, "TLSv1.3");
	strcpy(pi.ssl_cipher, "X");
	strcpy(pi.unique_id, "id");
	EXPECT_INT(proxy_v2_encode(&pi, b, sizeof(b)), sizeof(want));
	EXPECT_MEM(b, want, sizeof(want));
}

TEST(v2_encode_invalid)
{
	struct proxy_info pi;
	unsigned char b[1024];

	mkinfo(&pi, "192.0.2.1", 1, "2001:db8::2", 25);
	EXPECT_INT(proxy_v2_encode(&pi, b, sizeof(b)), -1);
	mkinfo(&pi, "2001:db8::2", 1, "192.0.2.1", 25);
	EXPECT_INT(proxy_v2_encode(&pi, b, sizeof(b)), -1);
	/* a v4-mapped client on an IPv6 address: TCP6, the mapped form kept */
	mkinfo(&pi, "::ffff:192.0.2.1", 1, "2001:db8::2", 25);
	EXPECT_INT(proxy_v2_encode(&pi, b, sizeof(b)), 16 + 36);
	EXPECT_INT(b[13], 0x21);
	EXPECT_INT(b[16 + 10], 0xff);
	EXPECT_INT(b[16 + 12], 192);

	mkinfo(&pi, "192.0.2.1", 1, "192.0.2.2", 25);
	pi.src.ss_family = AF_UNIX;
	pi.dst.ss_family = AF_UNIX;
	EXPECT_INT(proxy_v2_encode(&pi, b, sizeof(b)), -1);
	memset(&pi, 0, sizeof(pi));		/* AF_UNSPEC */
	EXPECT_INT(proxy_v2_encode(&pi, b, sizeof(b)), -1);

	/* unterminated string fields */
	mkinfo(&pi, "192.0.2.1", 1, "192.0.2.2", 25);
	memset(pi.unique_id, 'u', sizeof(pi.unique_id));
	EXPECT_INT(proxy_v2_encode(&pi, b, sizeof(b)), -1);
	mkinfo(&pi, "192.0.2.1", 1, "192.0.2.2", 25);
	pi.ssl = 1;
	memset(pi.ssl_cipher, 'c', sizeof(pi.ssl_cipher));
	EXPECT_INT(proxy_v2_encode(&pi, b, sizeof(b)), -1);

	/* every field at its maximum: 16+36 + 3+5+3+31+3+63 + 3+128 + 3+255
	 * = 549 > PROXY_MAX_HEADER, which Postfix could not read in one peek */
	mkinfo(&pi, "2001:db8::1", 1, "2001:db8::2", 25);
	pi.ssl = 1;
	memset(pi.ssl_version, 'v', sizeof(pi.ssl_version) - 1);
	memset(pi.ssl_cipher, 'c', sizeof(pi.ssl_cipher) - 1);
	memset(pi.unique_id, 'u', sizeof(pi.unique_id) - 1);
	memset(pi.authority, 'a', sizeof(pi.authority) - 1);
	EXPECT_INT(proxy_v2_encode(&pi, b, sizeof(b)), -1);
	/* one field less fits */
	pi.authority[0] = '\0';
	EXPECT_INT(proxy_v2_encode(&pi, b, sizeof(b)), 16 + 36 + 3 + 5 + 3 + 31 + 3 + 63 + 3 + 128);
}

/* ------------------------------------------------------------ round trips */

struct rt_case {
	const char *src;
	unsigned sport;
	const char *dst;
	unsigned dport;
	int ssl;
	const char *version, *cipher, *uid, *authority;
};

static const struct rt_case rt_cases[] = {
	{ "192.0.2.1", 56324, "198.51.100.7", 25, 0, "", "", "", "" },
	{ "0.0.0.0", 0, "255.255.255.255", 65535, 0, "", "", "", "" },
	{ "2001:db8::1", 40000, "2001:db8::25", 25, 0, "", "", "", "" },
	{ "192.0.2.1", 56324, "198.51.100.7", 25, 1, "TLSv1.3", "TLS_AES_256_GCM_SHA384", "", "" },
	{ "2001:db8::1", 40000, "2001:db8::25", 25, 1, "TLSv1.2",
	  "ECDHE-RSA-AES128-GCM-SHA256", "4f2a9c01", "" },
	{ "192.0.2.1", 1, "198.51.100.7", 2, 0, "", "", "4f2a9c01", "" },
	{ "192.0.2.1", 1, "198.51.100.7", 2, 1, "TLSv1.3", "", "", "mx.example.net" },
	{ "2001:db8::1", 1, "2001:db8::2", 2, 0, "", "", "", "mx.example.net" },
	/* 128-byte unique id, the spec's maximum */
	{ "2001:db8::1", 1, "2001:db8::2", 2, 1, "TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256",
	  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "" },
};

TEST(v2_round_trip)
{
	for (size_t i = 0; i < sizeof(rt_cases) / sizeof(rt_cases[0]); i++) {
		const struct rt_case *c = &rt_cases[i];
		struct proxy_info pi, out;
		unsigned char b[PROXY_MAX_HEADER + 64];
		const char *why;
		size_t used;
		ssize_t n;
		char a1[80], a2[80];

		mkinfo(&pi, c->src, c->sport, c->dst, c->dport);
		pi.ssl = c->ssl;
		strcpy(pi.ssl_version, c->version);
		strcpy(pi.ssl_cipher, c->cipher);
		strcpy(pi.unique_id, c->uid);
		strcpy(pi.authority, c->authority);
		n = proxy_v2_encode(&pi, b, sizeof(b));
		if (n <= 0) {
			FAILF("case %zu: encode %zd", i, n);
			continue;
		}
		EXPECT_INT(b[14] * 256 + b[15] + 16, n);
		/* followed by the client's first command: only the header is consumed */
		memcpy(b + n, "EHLO x\r\n", 8);
		if (dec(b, (size_t)n + 8, &out, &used, &why) != PROXY_OK) {
			FAILF("case %zu: decode BAD (%s)", i, why ? why : "-");
			continue;
		}
		EXPECT_INT(used, n);
		EXPECT_INT(out.local, 0);
		EXPECT_STR(fmt_addr(&out.src, a1, sizeof(a1)), fmt_addr(&pi.src, a2, sizeof(a2)));
		EXPECT_STR(fmt_addr(&out.dst, a1, sizeof(a1)), fmt_addr(&pi.dst, a2, sizeof(a2)));
		EXPECT_INT(out.ssl, c->ssl);
		EXPECT_STR(out.ssl_version, c->version);
		EXPECT_STR(out.ssl_cipher, c->cipher);
		EXPECT_STR(out.unique_id, c->uid);
		EXPECT_STR(out.authority, c->authority);
		expect_need_more_prefixes(b, (size_t)n);
	}
}

TEST(v2_local)
{
	unsigned char b[64];
	struct proxy_info pi;
	const char *why;
	size_t used;
	/* LOCAL with an INET address block: accepted, addresses ignored */
	static const unsigned char local4[] = {
		0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
		0x20, 0x11, 0x00, 0x0C, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2, 'Q',
	};

	EXPECT_INT(proxy_v2_encode_local(b, sizeof(b)), 16);
	EXPECT_INT(dec(b, 16, &pi, &used, &why), PROXY_OK);
	EXPECT_INT(pi.local, 1);
	EXPECT_INT(used, 16);
	expect_need_more_prefixes(b, 16);

	EXPECT_INT(dec(local4, sizeof(local4), &pi, &used, &why), PROXY_OK);
	EXPECT_INT(pi.local, 1);
	EXPECT_INT(used, 28);
	EXPECT_INT(pi.src.ss_family, AF_UNSPEC);
}

/* ------------------------------------------------------------ CRC32c TLV */

/* Append a CRC32C TLV to the header h of length n (room assumed), fix the
 * length field, compute the checksum with the field zeroed. */
static size_t add_crc(unsigned char *h, size_t n)
{
	uint32_t crc;
	size_t len;

	h[n] = PROXY_PP2_TYPE_CRC32C;
	h[n + 1] = 0;
	h[n + 2] = 4;
	memset(h + n + 3, 0, 4);
	n += 7;
	len = n - 16;
	h[14] = (unsigned char)(len >> 8);
	h[15] = (unsigned char)len;
	crc = proxy_crc32c(h, n);
	h[n - 4] = (unsigned char)(crc >> 24);
	h[n - 3] = (unsigned char)(crc >> 16);
	h[n - 2] = (unsigned char)(crc >> 8);
	h[n - 1] = (unsigned char)crc;
	return n;
}

TEST(v2_crc32c)
{
	struct proxy_info pi, out;
	unsigned char b[PROXY_MAX_HEADER], bad[PROXY_MAX_HEADER];
	const char *why;
	size_t used, n;
	ssize_t m;

	mkinfo(&pi, "192.0.2.1", 56324, "198.51.100.7", 25);
	strcpy(pi.unique_id, "crc-test");
	m = proxy_v2_encode(&pi, b, sizeof(b));
	EXPECT_INT(m, 28 + 3 + 8);
	n = add_crc(b, (size_t)m);
	EXPECT_INT(n, 28 + 3 + 8 + 7);
	EXPECT_INT(dec(b, n, &out, &used, &why), PROXY_OK);
	EXPECT_INT(used, n);
	EXPECT_STR(out.unique_id, "crc-test");
	expect_need_more_prefixes(b, n);

	/* any flipped bit anywhere in the header is caught */
	for (size_t i = 16; i < n; i++) {
		if (i == 14 || i == 15)
			continue;
		memcpy(bad, b, n);
		bad[i] ^= 0x01;
		/* a flipped TLV type or length may turn the header into another
		 * valid one (e.g. CRC32C into AUTHORITY): skip those bytes */
		if ((i >= 28 && i < 28 + 3) || (i >= n - 7 && i < n - 4))
			continue;
		if (dec(bad, n, &out, &used, &why) != PROXY_BAD)
			FAILF("flipped byte %zu accepted", i);
	}
	memcpy(bad, b, n);
	bad[n - 1] ^= 0x80;
	EXPECT_INT(dec(bad, n, &out, &used, &why), PROXY_BAD);
	EXPECT(why != NULL && strcasestr(why, "crc") != NULL);

	/* CRC TLV of the wrong length */
	memcpy(bad, b, n);
	bad[n - 5] = 3;
	EXPECT_INT(dec(bad, n, &out, &used, &why), PROXY_BAD);
}

/* ------------------------------------------------------------ v2 TLV parsing */

/* A v4 PROXY header with the given TLV bytes appended. */
static size_t v4_with(unsigned char *h, const void *tlvs, size_t tlen)
{
	memcpy(h, v2_v4_plain, 28);
	memcpy(h + 28, tlvs, tlen);
	h[14] = (unsigned char)((12 + tlen) >> 8);
	h[15] = (unsigned char)(12 + tlen);
	return 28 + tlen;
}

TEST(v2_tlv_skip)
{
	unsigned char h[PROXY_MAX_HEADER];
	struct proxy_info pi;
	const char *why;
	size_t used, n;
	static const unsigned char tlvs[] = {
		0x04, 0x00, 0x00,			/* NOOP, empty */
		0x04, 0x00, 0x03, 0, 0, 0,		/* NOOP, padding */
		0x01, 0x00, 0x04, 's', 'm', 't', 'p',	/* ALPN: ignored */
		0xE0, 0x00, 0x02, 0xFF, 0x00,		/* custom: ignored */
		0x30, 0x00, 0x02, 'n', 's',		/* NETNS: ignored */
		0x05, 0x00, 0x03, 'a', 'b', 'c',	/* UNIQUE_ID */
		0x02, 0x00, 0x04, 'h', 'o', 's', 't',	/* AUTHORITY */
		0x20, 0x00, 0x05, 0x00, 0, 0, 0, 1,	/* SSL, client bit clear */
	};

	n = v4_with(h, tlvs, sizeof(tlvs));
	EXPECT_INT(dec(h, n, &pi, &used, &why), PROXY_OK);
	EXPECT_INT(used, n);
	EXPECT_STR(pi.unique_id, "abc");
	EXPECT_STR(pi.authority, "host");
	EXPECT_INT(pi.ssl, 0);
}

TEST(v2_tlv_ssl_unknown_subtlv)
{
	unsigned char h[PROXY_MAX_HEADER];
	struct proxy_info pi;
	const char *why;
	size_t used, n;
	static const unsigned char tlvs[] = {
		0x20, 0x00, 5 + 3 + 3 + 3 + 2 + 3 + 1,
		0x07, 0x00, 0x00, 0x00, 0x00,		/* SSL + certs, verified */
		0x22, 0x00, 0x03, 'c', 'n', '1',	/* SSL_CN: ignored */
		0x21, 0x00, 0x02, 'v', '1',
		0x23, 0x00, 0x01, 'C',
	};

	n = v4_with(h, tlvs, sizeof(tlvs));
	EXPECT_INT(dec(h, n, &pi, &used, &why), PROXY_OK);
	EXPECT_INT(pi.ssl, 1);
	EXPECT_STR(pi.ssl_version, "v1");
	EXPECT_STR(pi.ssl_cipher, "C");
}

/* The header's size limit is PROXY_MAX_HEADER, inclusive. */
TEST(v2_max_size)
{
	unsigned char h[PROXY_MAX_HEADER + 1], noop[PROXY_MAX_HEADER];
	struct proxy_info pi;
	const char *why;
	size_t used, n;

	memset(noop, 0, sizeof(noop));
	noop[0] = PROXY_PP2_TYPE_NOOP;
	/* 28 + 3 + 505 = 536 */
	noop[1] = 505 >> 8;
	noop[2] = 505 & 0xff;
	n = v4_with(h, noop, 3 + 505);
	EXPECT_INT(n, PROXY_MAX_HEADER);
	EXPECT_INT(dec(h, n, &pi, &used, &why), PROXY_OK);
	EXPECT_INT(used, PROXY_MAX_HEADER);

	noop[1] = 506 >> 8;
	noop[2] = 506 & 0xff;
	n = v4_with(h, noop, 3 + 506);
	EXPECT_INT(n, PROXY_MAX_HEADER + 1);
	EXPECT_INT(dec(h, n, &pi, &used, &why), PROXY_BAD);
	/* refused from the length field alone, without waiting for the body */
	EXPECT_INT(dec(h, 16, &pi, &used, &why), PROXY_BAD);
}

/* ------------------------------------------------------------ v2 bad */

#define SIG "\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A"
#define V4ADDR "\xC0\x00\x02\x01\xC6\x33\x64\x07\xDC\x04\x00\x19"
#define B(name, s, why) { name, s, sizeof(s) - 1, why }

static const struct bad_case v2_bad_cases[] = {
	B("signature byte 12 wrong", "\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0B"
	  "\x21\x11\x00\x0C" V4ADDR, "signature"),
	B("signature wrong early", "\x0D\x0A\x0D\x0B", "signature"),
	B("signature NUL missing", "\x0D\x0A\x0D\x0A\x01", "signature"),
	B("version 1 nibble", SIG "\x11\x11\x00\x0C" V4ADDR, "version"),
	B("version 3 nibble", SIG "\x31\x11\x00\x0C" V4ADDR, "version"),
	B("version 0, early", SIG "\x01", "version"),
	B("command 2", SIG "\x22\x11\x00\x0C" V4ADDR, "command"),
	B("command F, early", SIG "\x2F", "command"),
	B("family 4", SIG "\x21\x41\x00\x0C" V4ADDR, "family"),
	B("transport 3", SIG "\x21\x13\x00\x0C" V4ADDR, ""),
	B("UNIX stream", SIG "\x21\x31\x00\xD8", "unsupported"),
	B("UDP over IPv4", SIG "\x21\x12\x00\x0C" V4ADDR, "unsupported"),
	B("UDP over IPv6", SIG "\x21\x22\x00\x24", "unsupported"),
	B("UNSPEC with PROXY", SIG "\x21\x00\x00\x00", "unsupported"),
	B("INET with UNSPEC transport", SIG "\x21\x10\x00\x0C" V4ADDR, "unsupported"),
	B("length overrun (4096)", SIG "\x21\x11\x10\x00", ""),
	B("length 65535", SIG "\x21\x11\xFF\xFF", ""),
	B("v4 address block short", SIG "\x21\x11\x00\x08" "\1\2\3\4\5\6\7\x08", "address"),
	B("v6 address block short", SIG "\x21\x21\x00\x0C" V4ADDR, "address"),
	B("TLV header cut (2 bytes)", SIG "\x21\x11\x00\x0E" V4ADDR "\x04\x00", "truncated TLV"),
	B("TLV length overrun", SIG "\x21\x11\x00\x11" V4ADDR "\x04\x00\x0A\x00\x00", "truncated TLV"),
	B("TLV length overrun (FFFF)", SIG "\x21\x11\x00\x0F" V4ADDR "\x05\xFF\xFF", "truncated TLV"),
	B("SSL TLV shorter than 5", SIG "\x21\x11\x00\x13" V4ADDR "\x20\x00\x04\x01\x00\x00\x00", "SSL"),
	B("SSL sub-TLV overrun", SIG "\x21\x11\x00\x16" V4ADDR "\x20\x00\x07\x01\x00\x00\x00\x00\x21\x00",
	  "SSL"),
	B("SSL sub-TLV length overrun", SIG "\x21\x11\x00\x19" V4ADDR
	  "\x20\x00\x0A\x01\x00\x00\x00\x00\x21\x00\x09\x41\x42", ""),
	B("CRC32c TLV length 3", SIG "\x21\x11\x00\x12" V4ADDR "\x03\x00\x03\x00\x00\x00", "crc"),
	B("CRC32c wrong", SIG "\x21\x11\x00\x13" V4ADDR "\x03\x00\x04\x12\x34\x56\x78", "crc"),
};

TEST(v2_decode_bad)
{
	run_bad(v2_bad_cases, sizeof(v2_bad_cases) / sizeof(v2_bad_cases[0]));
}

TEST(v2_unique_id_too_long)
{
	unsigned char h[PROXY_MAX_HEADER], t[3 + 129];
	struct proxy_info pi;
	const char *why;
	size_t used, n;

	t[0] = PROXY_PP2_TYPE_UNIQUE_ID;
	t[1] = 0;
	t[2] = 129;
	memset(t + 3, 'u', 129);
	n = v4_with(h, t, sizeof(t));
	EXPECT_INT(dec(h, n, &pi, &used, &why), PROXY_BAD);
	t[2] = 128;
	n = v4_with(h, t, sizeof(t) - 1);
	EXPECT_INT(dec(h, n, &pi, &used, &why), PROXY_OK);
	EXPECT_INT(strlen(pi.unique_id), 128);
}

/* String TLVs that would not be safe in a C string or a log line, or do not
 * fit their field, are ignored (proxy.h), never copied half. */
TEST(v2_string_tlv_hygiene)
{
	unsigned char h[PROXY_MAX_HEADER], t[3 + 300];
	struct proxy_info pi;
	const char *why;
	size_t used, n;
	static const unsigned char ctl[] = {
		0x02, 0x00, 0x05, 'a', '\r', '\n', 'b', 'c',	/* AUTHORITY with CRLF */
		0x05, 0x00, 0x03, 'x', 0x00, 'y',		/* UNIQUE_ID with NUL */
	};

	n = v4_with(h, ctl, sizeof(ctl));
	EXPECT_INT(dec(h, n, &pi, &used, &why), PROXY_OK);
	EXPECT_STR(pi.authority, "");
	EXPECT_STR(pi.unique_id, "");

	/* authority of 256 bytes does not fit authority[256] */
	t[0] = PROXY_PP2_TYPE_AUTHORITY;
	t[1] = 256 >> 8;
	t[2] = 256 & 0xff;
	memset(t + 3, 'a', 256);
	n = v4_with(h, t, 3 + 256);
	EXPECT_INT(dec(h, n, &pi, &used, &why), PROXY_OK);
	EXPECT_STR(pi.authority, "");
}

TEST(not_proxy)
{
	static const char *in[] = { "EHLO x\r\n", "\x16\x03\x01", "GET / HTTP/1.0\r\n", "\r\n\r\n\r\n" };

	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		struct proxy_info pi;
		const char *why;
		size_t used;

		EXPECT_INT(dec(in[i], strlen(in[i]), &pi, &used, &why), PROXY_BAD);
		EXPECT(why != NULL);
	}
}

/* ------------------------------------------------------------ small buffers */

#define CANARY 0xA5

/* encode into buf of size k for every k < need: -1, and nothing written at
 * or past buf[k]; at k == need, success. */
static void small_buffers_v2(const struct proxy_info *pi)
{
	unsigned char ref[PROXY_MAX_HEADER], b[PROXY_MAX_HEADER + 16];
	ssize_t need = proxy_v2_encode(pi, ref, sizeof(ref));

	if (need <= 0) {
		FAILF("reference encode failed");
		return;
	}
	for (size_t k = 0; k <= (size_t)need; k++) {
		ssize_t r;

		memset(b, CANARY, sizeof(b));
		r = proxy_v2_encode(pi, b, k);
		if (k < (size_t)need && r != -1)
			FAILF("size %zu < %zd: returned %zd", k, need, r);
		if (k == (size_t)need && (r != need || memcmp(b, ref, (size_t)need) != 0))
			FAILF("size %zu: returned %zd or different bytes", k, r);
		for (size_t j = k; j < sizeof(b); j++)
			if (b[j] != CANARY) {
				FAILF("size %zu: byte %zu written", k, j);
				break;
			}
	}
}

TEST(small_buffers)
{
	struct proxy_info pi;
	unsigned char b[64];
	char c[PROXY_MAX_HEADER];
	ssize_t need;

	mkinfo(&pi, "192.0.2.1", 56324, "198.51.100.7", 25);
	small_buffers_v2(&pi);
	mkinfo(&pi, "2001:db8::1", 40000, "2001:db8::25", 25);
	pi.ssl = 1;
	strcpy(pi.ssl_version, "TLSv1.3");
	strcpy(pi.ssl_cipher, "TLS_AES_256_GCM_SHA384");
	strcpy(pi.unique_id, "4f2a9c01");
	strcpy(pi.authority, "mx.example.net");
	small_buffers_v2(&pi);

	for (size_t k = 0; k <= 16; k++) {
		memset(b, CANARY, sizeof(b));
		EXPECT_INT(proxy_v2_encode_local(b, k), k < 16 ? -1 : 16);
		for (size_t j = k; j < sizeof(b); j++)
			if (b[j] != CANARY) {
				FAILF("local, size %zu: byte %zu written", k, j);
				break;
			}
	}

	/* v1 needs room for the NUL as well */
	mkinfo(&pi, "2001:db8::1", 40000, "2001:db8::25", 25);
	need = proxy_v1_encode(&pi, c, sizeof(c));
	EXPECT_INT(need, strlen("PROXY TCP6 2001:db8::1 2001:db8::25 40000 25\r\n"));
	for (size_t k = 0; k <= (size_t)need + 1; k++) {
		char d[PROXY_MAX_HEADER];

		memset(d, CANARY, sizeof(d));
		EXPECT_INT(proxy_v1_encode(&pi, d, k), k <= (size_t)need ? -1 : need);
		for (size_t j = k; j < sizeof(d); j++)
			if ((unsigned char)d[j] != CANARY) {
				FAILF("v1, size %zu: byte %zu written", k, j);
				break;
			}
	}
}

/* ------------------------------------------------------------ decoder hygiene */

TEST(decode_clears_info)
{
	struct proxy_info pi;
	const char *why;
	size_t used;

	memset(&pi, 0x5A, sizeof(pi));
	EXPECT_INT(dec("PROXY UNKNOWN\r\n", 15, &pi, &used, &why), PROXY_OK);
	EXPECT_INT(pi.ssl, 0);
	EXPECT_STR(pi.ssl_version, "");
	EXPECT_STR(pi.authority, "");
	EXPECT_STR(pi.unique_id, "");
}

int main(void)
{
	RUN(crc32c_vectors);
	RUN(v1_decode_ok);
	RUN(v1_decode_bad);
	RUN(v1_need_more);
	RUN(v1_encode);
	RUN(v2_signature);
	RUN(v2_encode_exact_v4);
	RUN(v2_encode_exact_v6_ssl);
	RUN(v2_encode_invalid);
	RUN(v2_round_trip);
	RUN(v2_local);
	RUN(v2_crc32c);
	RUN(v2_tlv_skip);
	RUN(v2_tlv_ssl_unknown_subtlv);
	RUN(v2_max_size);
	RUN(v2_decode_bad);
	RUN(v2_unique_id_too_long);
	RUN(v2_string_tlv_hygiene);
	RUN(not_proxy);
	RUN(small_buffers);
	RUN(decode_clears_info);
	return unit_done();
}

/*
 * proxy — PROXY protocol v1/v2 encoder and strict decoder (see proxy.h and
 * haproxy's doc/proxy-protocol.txt).
 *
 * Encoders write into one caller-owned buffer through a small cursor that
 * checks the room before every field, so a too-small buffer is -1, never an
 * overrun. The decoder reads only buf[0..len), never writes to it, and
 * copies what it keeps into the caller's struct proxy_info.
 */
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "proxy.h"

#define V2_VERSION	0x20
#define V2_CMD_LOCAL	0x00
#define V2_CMD_PROXY	0x01
#define V2_FAM_UNSPEC	0x0
#define V2_FAM_INET	0x1
#define V2_FAM_INET6	0x2
#define V2_FAM_UNIX	0x3
#define V2_PROTO_UNSPEC	0x0
#define V2_PROTO_STREAM	0x1
#define V2_PROTO_DGRAM	0x2
#define V2_ADDR4_LEN	12	/* 2*4 + 2*2 */
#define V2_ADDR6_LEN	36	/* 2*16 + 2*2 */
#define SSL_TLV_FIXED	5	/* client (1) + verify (4) */

/* Strings the decoder keeps: printable ASCII only, so they are safe to log. */
#define STR_OK(c)	((c) >= 0x20 && (c) < 0x7f)

/* ---------------------------------------------------------------- CRC32c */

/* Chainable form: start with crc = 0 and feed the pieces in order. */
static uint32_t proxy_crc32c_update(uint32_t crc, const void *data, size_t len)
{
	const unsigned char *p = data;

	crc = ~crc;
	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
	}
	return ~crc;
}

uint32_t proxy_crc32c(const void *buf, size_t len)
{
	return proxy_crc32c_update(0, buf, len);
}

/* ---------------------------------------------------------------- encoding */

struct proxy_wbuf {
	unsigned char	*p;
	size_t		 len, cap;
	int		 err;		/* sticky: one failed put fails the whole header */
};

static void proxy_put(struct proxy_wbuf *w, const void *data, size_t n)
{
	if (w->err || n > w->cap - w->len) {
		w->err = 1;
		return;
	}
	if (n > 0)
		memcpy(w->p + w->len, data, n);
	w->len += n;
}

static void proxy_put8(struct proxy_wbuf *w, unsigned v)
{
	unsigned char b = (unsigned char)v;

	proxy_put(w, &b, 1);
}

static void proxy_put16(struct proxy_wbuf *w, size_t v)
{
	unsigned char b[2] = { (unsigned char)(v >> 8), (unsigned char)v };

	proxy_put(w, b, 2);
}

/* A TLV header followed by its value. */
static void proxy_put_tlv(struct proxy_wbuf *w, unsigned type, const void *val, size_t n)
{
	proxy_put8(w, type);
	proxy_put16(w, n);
	proxy_put(w, val, n);
}

/* Length of a NUL-terminated string inside an array of size cap, or -1. */
static ssize_t proxy_strlen(const char *s, size_t cap)
{
	size_t n = strnlen(s, cap);

	return n < cap ? (ssize_t)n : -1;
}

/* Copy src to dst, turning a v4-mapped AF_INET6 address into AF_INET. */
static void proxy_unmap(const struct sockaddr_storage *src, struct sockaddr_storage *dst)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)src;

	memset(dst, 0, sizeof(*dst));
	if (src->ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		struct sockaddr_in *d4 = (struct sockaddr_in *)dst;

		d4->sin_family = AF_INET;
		d4->sin_port = s6->sin6_port;
		memcpy(&d4->sin_addr, &s6->sin6_addr.s6_addr[12], 4);
	} else {
		memcpy(dst, src, sizeof(*dst));
	}
}

/* Normalise the address pair for encoding: a v4-mapped pair goes as IPv4;
 * a v4-mapped address beside a real IPv6 one stays IPv6 (TCP6 carries it
 * whole). An IPv4 address beside an IPv6 one is refused: -1. */
static int proxy_addr_pair(const struct proxy_info *info, struct sockaddr_storage *src,
			   struct sockaddr_storage *dst)
{
	proxy_unmap(&info->src, src);
	proxy_unmap(&info->dst, dst);
	if (src->ss_family != dst->ss_family && info->src.ss_family == AF_INET6 &&
	    info->dst.ss_family == AF_INET6) {
		memcpy(src, &info->src, sizeof(*src));
		memcpy(dst, &info->dst, sizeof(*dst));
	}
	if (src->ss_family != dst->ss_family)
		return -1;
	if (src->ss_family != AF_INET && src->ss_family != AF_INET6)
		return -1;
	return 0;
}

ssize_t proxy_v2_encode_local(unsigned char *buf, size_t buflen)
{
	struct proxy_wbuf w = { buf, 0, buflen, 0 };

	if (buf == NULL)
		return -1;
	proxy_put(&w, PROXY_V2_SIG, PROXY_V2_SIG_LEN);
	proxy_put8(&w, V2_VERSION | V2_CMD_LOCAL);
	proxy_put8(&w, (V2_FAM_UNSPEC << 4) | V2_PROTO_UNSPEC);
	proxy_put16(&w, 0);
	return w.err ? -1 : (ssize_t)w.len;
}

ssize_t proxy_v2_encode(const struct proxy_info *info, unsigned char *buf, size_t buflen)
{
	struct sockaddr_storage src, dst;
	struct proxy_wbuf w = { buf, 0, buflen, 0 };
	ssize_t vlen = 0, clen = 0, ulen, alen;
	size_t total, lenpos;

	if (info == NULL || buf == NULL)
		return -1;
	if (info->local)
		return proxy_v2_encode_local(buf, buflen);
	if (proxy_addr_pair(info, &src, &dst) < 0)
		return -1;
	if (info->ssl) {
		vlen = proxy_strlen(info->ssl_version, sizeof(info->ssl_version));
		clen = proxy_strlen(info->ssl_cipher, sizeof(info->ssl_cipher));
		if (vlen < 0 || clen < 0)
			return -1;
	}
	ulen = proxy_strlen(info->unique_id, sizeof(info->unique_id));
	alen = proxy_strlen(info->authority, sizeof(info->authority));
	if (ulen < 0 || alen < 0)
		return -1;

	proxy_put(&w, PROXY_V2_SIG, PROXY_V2_SIG_LEN);
	proxy_put8(&w, V2_VERSION | V2_CMD_PROXY);
	if (src.ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)&src;
		const struct sockaddr_in *d = (const struct sockaddr_in *)&dst;

		proxy_put8(&w, (V2_FAM_INET << 4) | V2_PROTO_STREAM);
		lenpos = w.len;
		proxy_put16(&w, 0);	/* patched below */
		proxy_put(&w, &s->sin_addr, 4);
		proxy_put(&w, &d->sin_addr, 4);
		proxy_put(&w, &s->sin_port, 2);
		proxy_put(&w, &d->sin_port, 2);
	} else {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&src;
		const struct sockaddr_in6 *d = (const struct sockaddr_in6 *)&dst;

		proxy_put8(&w, (V2_FAM_INET6 << 4) | V2_PROTO_STREAM);
		lenpos = w.len;
		proxy_put16(&w, 0);
		proxy_put(&w, &s->sin6_addr, 16);
		proxy_put(&w, &d->sin6_addr, 16);
		proxy_put(&w, &s->sin6_port, 2);
		proxy_put(&w, &d->sin6_port, 2);
	}
	if (info->ssl) {
		size_t sslen = SSL_TLV_FIXED + (vlen > 0 ? 3 + (size_t)vlen : 0) +
			       (clen > 0 ? 3 + (size_t)clen : 0);

		proxy_put8(&w, PROXY_PP2_TYPE_SSL);
		proxy_put16(&w, sslen);
		proxy_put8(&w, PROXY_PP2_CLIENT_SSL);
		proxy_put(&w, "\0\0\0\1", 4);	/* verify != 0: no client certificate verified */
		if (vlen > 0)
			proxy_put_tlv(&w, PROXY_PP2_SUBTYPE_SSL_VERSION, info->ssl_version,
				      (size_t)vlen);
		if (clen > 0)
			proxy_put_tlv(&w, PROXY_PP2_SUBTYPE_SSL_CIPHER, info->ssl_cipher, (size_t)clen);
	}
	if (ulen > 0)
		proxy_put_tlv(&w, PROXY_PP2_TYPE_UNIQUE_ID, info->unique_id, (size_t)ulen);
	if (alen > 0)
		proxy_put_tlv(&w, PROXY_PP2_TYPE_AUTHORITY, info->authority, (size_t)alen);
	if (w.err)
		return -1;
	total = w.len;
	if (total > PROXY_MAX_HEADER)
		return -1;
	buf[lenpos] = (unsigned char)((total - PROXY_V2_HDR_LEN) >> 8);
	buf[lenpos + 1] = (unsigned char)(total - PROXY_V2_HDR_LEN);
	return (ssize_t)total;
}

ssize_t proxy_v1_encode(const struct proxy_info *info, char *buf, size_t buflen)
{
	struct sockaddr_storage src, dst;
	char line[PROXY_V1_MAX + 1], a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
	unsigned sport, dport;
	const char *proto;
	int n;

	if (info == NULL || buf == NULL)
		return -1;
	if (info->local) {
		n = snprintf(line, sizeof(line), "PROXY UNKNOWN\r\n");
	} else {
		if (proxy_addr_pair(info, &src, &dst) < 0)
			return -1;
		if (src.ss_family == AF_INET) {
			const struct sockaddr_in *s = (const struct sockaddr_in *)&src;
			const struct sockaddr_in *d = (const struct sockaddr_in *)&dst;

			proto = "TCP4";
			if (inet_ntop(AF_INET, &s->sin_addr, a, sizeof(a)) == NULL ||
			    inet_ntop(AF_INET, &d->sin_addr, b, sizeof(b)) == NULL)
				return -1;
			sport = ntohs(s->sin_port);
			dport = ntohs(d->sin_port);
		} else {
			const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&src;
			const struct sockaddr_in6 *d = (const struct sockaddr_in6 *)&dst;

			proto = "TCP6";
			if (inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof(a)) == NULL ||
			    inet_ntop(AF_INET6, &d->sin6_addr, b, sizeof(b)) == NULL)
				return -1;
			sport = ntohs(s->sin6_port);
			dport = ntohs(d->sin6_port);
		}
		n = snprintf(line, sizeof(line), "PROXY %s %s %s %u %u\r\n", proto, a, b,
			     sport, dport);
	}
	if (n < 0 || (size_t)n >= sizeof(line) || (size_t)n >= buflen)
		return -1;
	memcpy(buf, line, (size_t)n + 1);
	return n;
}

/* ---------------------------------------------------------------- decoding */

static enum proxy_status proxy_bad(const char **why, const char *reason)
{
	if (why != NULL)
		*why = reason;
	return PROXY_BAD;
}

/* Canonical decimal 0..max, 1..digits long, no leading zero. */
static int proxy_parse_dec(const char *s, size_t n, unsigned max, unsigned *out)
{
	unsigned v = 0;

	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

/* Exactly four canonical decimal octets separated by single dots. */
static int proxy_parse_v4(const char *s, size_t n, struct in_addr *out)
{
	unsigned char b[4];
	size_t i = 0;

	for (int k = 0; k < 4; k++) {
		size_t start = i;
		unsigned v;

		while (i < n && s[i] != '.')
			i++;
		if (i - start > 3 || proxy_parse_dec(s + start, i - start, 255, &v) < 0)
			return -1;
		b[k] = (unsigned char)v;
		if (k < 3) {
			if (i >= n)
				return -1;
			i++;	/* the dot */
		}
	}
	if (i != n)
		return -1;
	memcpy(out, b, 4);
	return 0;
}

static int proxy_parse_v6(const char *s, size_t n, struct in6_addr *out)
{
	char tmp[INET6_ADDRSTRLEN];

	if (n == 0 || n >= sizeof(tmp))
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!(s[i] == ':' || s[i] == '.' || (s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F')))
			return -1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	return inet_pton(AF_INET6, tmp, out) == 1 ? 0 : -1;
}

/* Next space-separated field of line[*pos..end); fields are separated by
 * exactly one space, so an empty field (double space) fails. */
static int proxy_field(const char *line, size_t end, size_t *pos, const char **f, size_t *flen)
{
	size_t i = *pos;

	while (i < end && line[i] != ' ')
		i++;
	if (i == *pos)
		return -1;
	*f = line + *pos;
	*flen = i - *pos;
	*pos = i;
	return 0;
}

static int proxy_v1_addr(int fam, const char *s, size_t n, unsigned port,
			 struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (fam == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		if (proxy_parse_v4(s, n, &sin->sin_addr) < 0)
			return -1;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		if (proxy_parse_v6(s, n, &sin6->sin6_addr) < 0)
			return -1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
	}
	return 0;
}

/* buf starts with a prefix of "PROXY " (checked by the caller). */
static enum proxy_status proxy_v1_decode(const unsigned char *buf, size_t len,
					 struct proxy_info *info, size_t *consumed,
					 const char **why)
{
	const char *line = (const char *)buf;
	size_t scan = len < PROXY_V1_MAX ? len : PROXY_V1_MAX;
	size_t end = 0, pos;
	const char *f[5];
	size_t fl[5];
	unsigned sport, dport;
	int fam, found = 0;

	/* Find CRLF; refuse bare CR, bare LF and non-printables on the way, so
	 * garbage fails at once instead of waiting for 107 bytes. */
	for (size_t i = 0; i < scan; i++) {
		unsigned char c = buf[i];

		if (c == '\r') {
			if (i + 1 >= len)
				break;			/* CR is the last byte: need more */
			if (buf[i + 1] != '\n')
				return proxy_bad(why, "v1 bare CR");
			if (i + 1 >= PROXY_V1_MAX)
				return proxy_bad(why, "v1 line too long");
			end = i;
			found = 1;
			break;
		}
		if (c == '\n')
			return proxy_bad(why, "v1 bare LF");
		if (c < 0x20 || c > 0x7e)
			return proxy_bad(why, "v1 non-printable byte");
	}
	if (!found)
		return len >= PROXY_V1_MAX ? proxy_bad(why, "v1 line too long")
						: PROXY_NEED_MORE;

	/* line[0..end) is "PROXY <proto>..." without the CRLF */
	pos = 6;
	if (end < pos)
		return proxy_bad(why, "v1 bad protocol");
	if (end - pos >= 7 && memcmp(line + pos, "UNKNOWN", 7) == 0 &&
	    (end == pos + 7 || line[pos + 7] == ' ')) {
		/* the rest of an UNKNOWN line is ignored (section 2.1) */
		info->local = 1;
		*consumed = end + 2;
		return PROXY_OK;
	}
	if (end - pos > 4 && memcmp(line + pos, "TCP4 ", 5) == 0)
		fam = AF_INET;
	else if (end - pos > 4 && memcmp(line + pos, "TCP6 ", 5) == 0)
		fam = AF_INET6;
	else
		return proxy_bad(why, "v1 bad protocol");
	pos += 5;
	for (int k = 0; k < 4; k++) {
		if (proxy_field(line, end, &pos, &f[k], &fl[k]) < 0)
			return proxy_bad(why, "v1 bad field separator");
		if (k < 3) {
			if (pos >= end)
				return proxy_bad(why, "v1 missing field");
			pos++;	/* the single space */
		}
	}
	if (pos != end)
		return proxy_bad(why, "v1 trailing data");
	if (proxy_parse_dec(f[2], fl[2], 65535, &sport) < 0 ||
	    proxy_parse_dec(f[3], fl[3], 65535, &dport) < 0)
		return proxy_bad(why, "v1 bad port");
	if (proxy_v1_addr(fam, f[0], fl[0], sport, &info->src) < 0 ||
	    proxy_v1_addr(fam, f[1], fl[1], dport, &info->dst) < 0)
		return proxy_bad(why, "v1 bad address");
	*consumed = end + 2;
	return PROXY_OK;
}

/* Copy a string TLV value into dst[cap]. A value that does not fit or holds
 * anything but printable ASCII is ignored (dst stays ""), per proxy.h. */
static void proxy_tlv_str(char *dst, size_t cap, const unsigned char *v, size_t n)
{
	if (n >= cap)
		return;
	for (size_t i = 0; i < n; i++)
		if (!STR_OK(v[i]))
			return;
	memcpy(dst, v, n);
	dst[n] = '\0';
}

static enum proxy_status proxy_v2_ssl(const unsigned char *v, size_t n, struct proxy_info *info,
				      const char **why)
{
	size_t i = SSL_TLV_FIXED;
	int have_version = 0, have_cipher = 0;

	if (n < SSL_TLV_FIXED)
		return proxy_bad(why, "truncated SSL TLV");
	info->ssl = (v[0] & PROXY_PP2_CLIENT_SSL) != 0;
	while (i < n) {
		unsigned type;
		size_t sl;

		if (n - i < 3)
			return proxy_bad(why, "truncated SSL sub-TLV");
		type = v[i];
		sl = ((size_t)v[i + 1] << 8) | v[i + 2];
		i += 3;
		if (sl > n - i)
			return proxy_bad(why, "truncated SSL sub-TLV");
		if (type == PROXY_PP2_SUBTYPE_SSL_VERSION) {
			if (have_version++)
				return proxy_bad(why, "duplicate SSL version TLV");
			proxy_tlv_str(info->ssl_version, sizeof(info->ssl_version), v + i, sl);
		} else if (type == PROXY_PP2_SUBTYPE_SSL_CIPHER) {
			if (have_cipher++)
				return proxy_bad(why, "duplicate SSL cipher TLV");
			proxy_tlv_str(info->ssl_cipher, sizeof(info->ssl_cipher), v + i, sl);
		}
		i += sl;
	}
	return PROXY_OK;
}

/* Parse the TLVs in hdr[start..total); hdr[0..total) is the whole header,
 * over which a CRC32C TLV is verified (with its own value taken as 0). */
static enum proxy_status proxy_v2_tlvs(const unsigned char *hdr, size_t start, size_t total,
				       struct proxy_info *info, const char **why)
{
	size_t i = start, crcpos = 0;
	int have_crc = 0, have_ssl = 0, have_uid = 0, have_auth = 0;

	while (i < total) {
		unsigned type;
		size_t n;

		if (total - i < 3)
			return proxy_bad(why, "truncated TLV");
		type = hdr[i];
		n = ((size_t)hdr[i + 1] << 8) | hdr[i + 2];
		i += 3;
		if (n > total - i)
			return proxy_bad(why, "truncated TLV");
		switch (type) {
		case PROXY_PP2_TYPE_AUTHORITY:
			if (have_auth++)
				return proxy_bad(why, "duplicate authority TLV");
			proxy_tlv_str(info->authority, sizeof(info->authority), hdr + i, n);
			break;
		case PROXY_PP2_TYPE_CRC32C:
			if (have_crc++)
				return proxy_bad(why, "duplicate CRC32c TLV");
			if (n != 4)
				return proxy_bad(why, "bad CRC32c TLV length");
			crcpos = i;
			break;
		case PROXY_PP2_TYPE_UNIQUE_ID:
			if (have_uid++)
				return proxy_bad(why, "duplicate unique id TLV");
			if (n > PROXY_UNIQUE_ID_MAX)
				return proxy_bad(why, "unique id too long");
			proxy_tlv_str(info->unique_id, sizeof(info->unique_id), hdr + i, n);
			break;
		case PROXY_PP2_TYPE_SSL:
			if (have_ssl++)
				return proxy_bad(why, "duplicate SSL TLV");
			if (proxy_v2_ssl(hdr + i, n, info, why) != PROXY_OK)
				return PROXY_BAD;
			break;
		default:	/* NOOP, ALPN, NETNS, custom, unknown: skipped */
			break;
		}
		i += n;
	}
	if (have_crc) {
		static const unsigned char zero[4];
		uint32_t want = ((uint32_t)hdr[crcpos] << 24) | ((uint32_t)hdr[crcpos + 1] << 16) |
				((uint32_t)hdr[crcpos + 2] << 8) | hdr[crcpos + 3];
		uint32_t crc = proxy_crc32c_update(0, hdr, crcpos);

		crc = proxy_crc32c_update(crc, zero, 4);
		crc = proxy_crc32c_update(crc, hdr + crcpos + 4, total - crcpos - 4);
		if (crc != want)
			return proxy_bad(why, "CRC32c mismatch");
	}
	return PROXY_OK;
}

/* Checks on the fixed 16 bytes, done on whatever prefix has arrived so a
 * bad header fails at the first wrong byte. */
static enum proxy_status proxy_v2_prefix(const unsigned char *buf, size_t len, const char **why)
{
	unsigned cmd, fam, proto;
	size_t alen;

	if (len <= 12)
		return PROXY_OK;
	if ((buf[12] & 0xF0) != V2_VERSION)
		return proxy_bad(why, "bad v2 version");
	cmd = buf[12] & 0x0F;
	if (cmd > V2_CMD_PROXY)
		return proxy_bad(why, "bad v2 command");
	if (len <= 13)
		return PROXY_OK;
	fam = buf[13] >> 4;
	proto = buf[13] & 0x0F;
	if (fam > V2_FAM_UNIX)
		return proxy_bad(why, "bad v2 family");
	if (proto > V2_PROTO_DGRAM)
		return proxy_bad(why, "bad v2 transport");
	if (cmd == V2_CMD_PROXY) {
		if (fam == V2_FAM_UNSPEC)
			return proxy_bad(why, "unsupported family UNSPEC");
		if (fam == V2_FAM_UNIX)
			return proxy_bad(why, "unsupported family UNIX");
		if (proto == V2_PROTO_UNSPEC)
			return proxy_bad(why, "unsupported transport UNSPEC");
		if (proto == V2_PROTO_DGRAM)
			return proxy_bad(why, "unsupported transport DGRAM");
	}
	if (len < PROXY_V2_HDR_LEN)
		return PROXY_OK;
	alen = ((size_t)buf[14] << 8) | buf[15];
	if (PROXY_V2_HDR_LEN + alen > PROXY_MAX_HEADER)
		return proxy_bad(why, "v2 header too long");
	if (cmd == V2_CMD_PROXY &&
	    alen < (fam == V2_FAM_INET ? V2_ADDR4_LEN : V2_ADDR6_LEN))
		return proxy_bad(why, "v2 address block too short");
	return PROXY_OK;
}

/* buf starts with a prefix of the v2 signature (checked by the caller). */
static enum proxy_status proxy_v2_decode(const unsigned char *buf, size_t len,
					 struct proxy_info *info, size_t *consumed,
					 const char **why)
{
	const unsigned char *a = buf + PROXY_V2_HDR_LEN;
	size_t total, alen;

	if (proxy_v2_prefix(buf, len, why) != PROXY_OK)
		return PROXY_BAD;
	if (len < PROXY_V2_HDR_LEN)
		return PROXY_NEED_MORE;
	total = PROXY_V2_HDR_LEN + (((size_t)buf[14] << 8) | buf[15]);
	if (len < total)
		return PROXY_NEED_MORE;

	if ((buf[12] & 0x0F) == V2_CMD_LOCAL) {
		/* health check: the block, family and TLVs are ignored (2.2) */
		info->local = 1;
		*consumed = total;
		return PROXY_OK;
	}
	if ((buf[13] >> 4) == V2_FAM_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)&info->src;
		struct sockaddr_in *d = (struct sockaddr_in *)&info->dst;

		alen = V2_ADDR4_LEN;
		s->sin_family = AF_INET;
		d->sin_family = AF_INET;
		memcpy(&s->sin_addr, a, 4);
		memcpy(&d->sin_addr, a + 4, 4);
		memcpy(&s->sin_port, a + 8, 2);
		memcpy(&d->sin_port, a + 10, 2);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&info->src;
		struct sockaddr_in6 *d = (struct sockaddr_in6 *)&info->dst;

		alen = V2_ADDR6_LEN;
		s->sin6_family = AF_INET6;
		d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, a, 16);
		memcpy(&d->sin6_addr, a + 16, 16);
		memcpy(&s->sin6_port, a + 32, 2);
		memcpy(&d->sin6_port, a + 34, 2);
	}
	if (proxy_v2_tlvs(buf, PROXY_V2_HDR_LEN + alen, total, info, why) != PROXY_OK)
		return PROXY_BAD;
	*consumed = total;
	return PROXY_OK;
}

enum proxy_status proxy_decode(const unsigned char *buf, size_t len, struct proxy_info *info,
			       size_t *consumed, const char **why)
{
	static const char v1sig[6] = "PROXY ";
	size_t n, used = 0;
	enum proxy_status st;

	if (why != NULL)
		*why = NULL;
	if (consumed != NULL)
		*consumed = 0;
	if (info == NULL || consumed == NULL || (buf == NULL && len > 0))
		return proxy_bad(why, "invalid arguments");
	memset(info, 0, sizeof(*info));
	if (len == 0)
		return PROXY_NEED_MORE;

	if (buf[0] == (unsigned char)PROXY_V2_SIG[0]) {
		n = len < PROXY_V2_SIG_LEN ? len : PROXY_V2_SIG_LEN;
		if (memcmp(buf, PROXY_V2_SIG, n) != 0)
			return proxy_bad(why, "bad v2 signature");
		st = proxy_v2_decode(buf, len, info, &used, why);
	} else if (buf[0] == (unsigned char)v1sig[0]) {
		n = len < sizeof(v1sig) ? len : sizeof(v1sig);
		if (memcmp(buf, v1sig, n) != 0)
			return proxy_bad(why, "bad v1 signature");
		st = proxy_v1_decode(buf, len, info, &used, why);
	} else {
		return proxy_bad(why, "not a PROXY header");
	}
	if (st == PROXY_OK)
		*consumed = used;
	else
		memset(info, 0, sizeof(*info));	/* nothing half-decoded */
	return st;
}

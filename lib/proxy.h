/*
 * proxy — the PROXY protocol, versions 1 and 2 (haproxy doc/proxy-protocol.txt).
 *
 * The gate writes a v2 header in front of every backend connection; Postfix
 * (smtpd_upstream_proxy_protocol = haproxy) reads it with one peek of at
 * most PROXY_MAX_HEADER bytes, so the encoders build the whole header in one
 * caller-owned buffer and the caller sends it in one write. The screen reads
 * a v1 or v2 header from a configured trusted proxy with proxy_decode().
 *
 * Ownership: everything lives in caller storage; nothing is allocated, no
 * state is kept between calls (safe from several sessions and threads).
 * proxy_decode() never reads past `len`, never writes past `info`, and
 * reports anything a remote peer got wrong as PROXY_BAD with a constant
 * reason string, never by aborting.
 */
#ifndef LIB_PROXY_H
#define LIB_PROXY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>

/* Postfix's peek size, and the smallest TCP segment every host accepts. */
#define PROXY_MAX_HEADER	536
/* v1: the longest line a receiver must accept, CRLF included. */
#define PROXY_V1_MAX		107
/* The v2 signature; byte 5 is NUL, so use it with PROXY_V2_SIG_LEN, never as a C string. */
#define PROXY_V2_SIG		"\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A"
#define PROXY_V2_SIG_LEN	12
#define PROXY_V2_HDR_LEN	16	/* signature, ver/cmd, fam, length */

/* v2 TLV types (section 2.2) and SSL client bits (2.2.6). */
#define PROXY_PP2_TYPE_ALPN		0x01
#define PROXY_PP2_TYPE_AUTHORITY	0x02
#define PROXY_PP2_TYPE_CRC32C		0x03
#define PROXY_PP2_TYPE_NOOP		0x04
#define PROXY_PP2_TYPE_UNIQUE_ID	0x05
#define PROXY_PP2_TYPE_SSL		0x20
#define PROXY_PP2_SUBTYPE_SSL_VERSION	0x21
#define PROXY_PP2_SUBTYPE_SSL_CN	0x22
#define PROXY_PP2_SUBTYPE_SSL_CIPHER	0x23
#define PROXY_PP2_CLIENT_SSL		0x01
#define PROXY_UNIQUE_ID_MAX		128

struct proxy_info {
	int local;			/* 1 = LOCAL command / v1 UNKNOWN: addresses absent */
	struct sockaddr_storage src, dst;	/* AF_INET or AF_INET6 */
	int ssl;			/* SSL TLV present with PP2_CLIENT_SSL */
	char ssl_version[32];		/* PP2_SUBTYPE_SSL_VERSION, e.g. "TLSv1.3" */
	char ssl_cipher[64];		/* PP2_SUBTYPE_SSL_CIPHER */
	char unique_id[PROXY_UNIQUE_ID_MAX + 1];	/* PP2_TYPE_UNIQUE_ID */
	char authority[256];		/* PP2_TYPE_AUTHORITY (SNI) if present */
};

/*
 * Encode a v2 header into buf: command PROXY, TCP over IPv4 or IPv6 from the
 * src/dst families (a v4-mapped IPv6 address is sent as IPv4; families that
 * still differ are invalid), then TLVs: SSL (client = PP2_CLIENT_SSL, verify
 * = 1, i.e. no client certificate verified) with VERSION and CIPHER sub-TLVs
 * (each when non-empty) when info->ssl; UNIQUE_ID when unique_id[0];
 * AUTHORITY when authority[0]. With info->local, the LOCAL header of
 * proxy_v2_encode_local(). The room is checked before every field.
 * Returns the header length (<= PROXY_MAX_HEADER), or -1 if buf is too
 * small, info is invalid (unsupported family, unterminated string) or the
 * header would exceed PROXY_MAX_HEADER. On -1 buf's contents are undefined.
 */
ssize_t proxy_v2_encode(const struct proxy_info *info, unsigned char *buf,
	    size_t buflen);
/* The 16-byte LOCAL header (family UNSPEC, no address), for health checks. */
ssize_t proxy_v2_encode_local(unsigned char *buf, size_t buflen);
/*
 * Encode a v1 line "PROXY TCP4|TCP6 src dst sport dport\r\n" (or
 * "PROXY UNKNOWN\r\n" when info->local), NUL-terminated. Returns the line
 * length without the NUL, or -1 if buf (which needs room for the NUL) is
 * too small or info invalid.
 */
ssize_t proxy_v1_encode(const struct proxy_info *info, char *buf, size_t buflen);

enum proxy_status { PROXY_OK, PROXY_NEED_MORE, PROXY_BAD };

/*
 * Decode a v1 or v2 header at the start of buf (detected by its signature).
 *  PROXY_OK:        *consumed = header length, *info filled (all string
 *                   fields NUL-terminated, absent ones "").
 *  PROXY_NEED_MORE: buf is a valid prefix of a header; the caller reads more,
 *                   at most PROXY_MAX_HEADER bytes in all.
 *  PROXY_BAD:       *why = a constant reason string ("bad v2 signature",
 *                   "v1 line too long", "unsupported family UNIX",
 *                   "truncated TLV", "CRC32c mismatch", ...).
 * Invalid prefixes are refused as soon as they are seen, so a client that
 * is not a PROXY sender is caught without waiting for more bytes.
 * v1 is strict: single spaces, CRLF within PROXY_V1_MAX bytes (no bare CR
 * or LF, no control bytes), dotted-quad IPv4 without leading zeros, IPv6
 * in inet_pton form, decimal ports 0..65535 without leading zeros;
 * "PROXY UNKNOWN" with anything up to CRLF gives info->local = 1.
 * v2: version 2, command LOCAL or PROXY; PROXY needs TCP over INET/INET6
 * (UNSPEC, UNIX and DGRAM are refused as "unsupported ..."); LOCAL ignores
 * the address block and TLVs as the spec requires (info->local = 1), but
 * unassigned family or transport values are refused either way. TLVs are
 * bounds-checked; unknown types and NOOP are skipped; a CRC32C TLV is
 * verified; a UNIQUE_ID longer than 128 bytes is refused. A string TLV
 * (authority, SSL version/cipher, unique id) that holds control or NUL
 * bytes or does not fit its field is ignored (left "").
 * `info`, `consumed` and `why` may not be NULL; *info is cleared first.
 */
enum proxy_status proxy_decode(const unsigned char *buf, size_t len,
	    struct proxy_info *info, size_t *consumed, const char **why);

/* CRC32c (Castagnoli, RFC 4960 appendix B) of len bytes:
 * proxy_crc32c("123456789", 9) == 0xE3069283. */
uint32_t proxy_crc32c(const void *buf, size_t len);

#endif

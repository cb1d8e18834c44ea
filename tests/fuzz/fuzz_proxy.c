/*
 * fuzz_proxy — libFuzzer target for lib/proxy.c: proxy_decode() on arbitrary
 * bytes, checking its contract (consumed within bounds, NEED_MORE never at
 * PROXY_MAX_HEADER bytes, a reason with every BAD, printable NUL-terminated
 * strings), and re-encoding every decoded address pair as v2 and v1 to check
 * that both decode back to the same addresses.
 *
 * Built and run by `make fuzz` (see tests/fuzz/README.md).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check_str(const char *s, size_t cap)
{
	size_t n = strnlen(s, cap);

	if (n == cap)
		abort();		/* not NUL-terminated */
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			abort();	/* the decoder keeps printable ASCII only */
}

static int fuzz_same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const struct sockaddr_in *)a;
		const struct sockaddr_in *y = (const struct sockaddr_in *)b;

		return x->sin_port == y->sin_port &&
		       memcmp(&x->sin_addr, &y->sin_addr, sizeof(x->sin_addr)) == 0;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
		const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;

		return x->sin6_port == y->sin6_port &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	return 0;
}

/* Encode info again (v2, then v1) and check it decodes to the same pair.
 * v4-mapped IPv6 addresses are sent as IPv4 by design, so they are skipped. */
static void fuzz_round_trip(const struct proxy_info *info)
{
	unsigned char v2[PROXY_MAX_HEADER];
	char v1[PROXY_V1_MAX + 1];
	struct proxy_info back;
	size_t used;
	const char *why;
	ssize_t n;

	if (info->src.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&info->src;
		const struct sockaddr_in6 *d = (const struct sockaddr_in6 *)&info->dst;

		if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr) || IN6_IS_ADDR_V4MAPPED(&d->sin6_addr))
			return;
	}
	/* what we re-encode was all in the decoded header (which was at most
	 * PROXY_MAX_HEADER), and never longer there, so it must fit */
	n = proxy_v2_encode(info, v2, sizeof(v2));
	if (n < 0) {
		abort();
	} else {
		if (proxy_decode(v2, (size_t)n, &back, &used, &why) != PROXY_OK ||
		    used != (size_t)n || back.local ||
		    !fuzz_same_addr(&info->src, &back.src) ||
		    !fuzz_same_addr(&info->dst, &back.dst) ||
		    back.ssl != info->ssl ||
		    strcmp(back.unique_id, info->unique_id) != 0 ||
		    strcmp(back.authority, info->authority) != 0 ||
		    (info->ssl && (strcmp(back.ssl_version, info->ssl_version) != 0 ||
				   strcmp(back.ssl_cipher, info->ssl_cipher) != 0)))
			abort();
	}
	n = proxy_v1_encode(info, v1, sizeof(v1));
	if (n < 0 || proxy_decode((const unsigned char *)v1, (size_t)n, &back, &used, &why) !=
			     PROXY_OK ||
	    used != (size_t)n || !fuzz_same_addr(&info->src, &back.src) ||
	    !fuzz_same_addr(&info->dst, &back.dst))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_info info;
	size_t used = 12345;
	const char *why = NULL;

	switch (proxy_decode(data, size, &info, &used, &why)) {
	case PROXY_OK:
		if (why != NULL || used == 0 || used > size || used > PROXY_MAX_HEADER)
			abort();
		fuzz_check_str(info.ssl_version, sizeof(info.ssl_version));
		fuzz_check_str(info.ssl_cipher, sizeof(info.ssl_cipher));
		fuzz_check_str(info.unique_id, sizeof(info.unique_id));
		fuzz_check_str(info.authority, sizeof(info.authority));
		if (!info.local)
			fuzz_round_trip(&info);
		break;
	case PROXY_NEED_MORE:
		if (used != 0 || size >= PROXY_MAX_HEADER)
			abort();
		break;
	case PROXY_BAD:
		if (used != 0 || why == NULL || why[0] == '\0')
			abort();
		break;
	default:
		abort();
	}
	return 0;
}

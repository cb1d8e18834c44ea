/*
 * policy_grey.c — greylisting triplets in the store, sender normalization.
 * See policy_grey.h for the rules and the store layout.
 */
#include <ctype.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "policy_grey.h"

void
policy_grey_config_init(struct policy_grey_config *gc)
{
	memset(gc, 0, sizeof(*gc));
	gc->mode = POLICY_ENFORCE;
	gc->delay = 300;
	gc->max_wait = 2 * 86400;
	gc->retention = 35 * 86400;
	gc->awl_count = 5;
	gc->v4bits = 24;
	gc->v6bits = 64;
	gc->on_store_error = POLICY_FAIL_OPEN;
}

void
policy_grey_free(struct policy_grey_config *gc)
{
	conf_list_free(&gc->spf_exempt);
}

/* SRS0 body "HASH=TT=domain=local" -> local@domain into out. */
static int
srs0_body(const char *p, char *out, size_t len)
{
	const char *f[3];
	int i, n;

	for (i = 0; i < 3; i++) {
		f[i] = p;
		if ((p = strchr(p, '=')) == NULL)
			return -1;
		p++;
	}
	/* f[2] is the domain up to '=', p the original local part */
	n = snprintf(out, len, "%s@%.*s", p, (int)(p - 1 - f[2]), f[2]);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* Rewrite an SRS/BATV local part in place (lowercase input). */
static void
unwrap(char *addr, size_t cap)
{
	char *at = strrchr(addr, '@'), *p;
	char tmp[512];

	if (at == NULL)
		return;
	if ((strncmp(addr, "srs0", 4) == 0) &&
	    (addr[4] == '=' || addr[4] == '+' || addr[4] == '-')) {
		*at = '\0';
		if (srs0_body(addr + 5, tmp, sizeof(tmp)) == 0 &&
		    strlen(tmp) < cap) {
			memcpy(addr, tmp, strlen(tmp) + 1);
			return;
		}
		*at = '@';
		return;
	}
	if ((strncmp(addr, "srs1", 4) == 0) &&
	    (addr[4] == '=' || addr[4] == '+' || addr[4] == '-')) {
		*at = '\0';
		p = strstr(addr + 5, "==");
		if (p != NULL && srs0_body(p + 2, tmp, sizeof(tmp)) == 0 &&
		    strlen(tmp) < cap) {
			memcpy(addr, tmp, strlen(tmp) + 1);
			return;
		}
		*at = '@';
		return;
	}
	if (strncmp(addr, "prvs=", 5) == 0 || strncmp(addr, "msprvs1=", 8) == 0) {
		p = strchr(addr, '=') + 1;
		p = strchr(p, '=');
		if (p != NULL && p < at && p + 1 < at)
			memmove(addr, p + 1, strlen(p + 1) + 1);
	}
}

int
policy_grey_normalize(const char *addr, char *out, size_t len)
{
	char *at, *plus;
	size_t i, n = strlen(addr);
	int rc = 0;

	if (len == 0)
		return -1;
	if (n >= len) {
		n = len - 1;
		rc = -1;
	}
	for (i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)addr[i]);
	out[n] = '\0';
	unwrap(out, len);
	at = strrchr(out, '@');
	plus = strchr(out, '+');
	if (plus != NULL && plus != out && (at == NULL || plus < at)) {
		if (at != NULL)
			memmove(plus, at, strlen(at) + 1);
		else
			*plus = '\0';
	}
	return rc;
}

static int
triplet_key(const char *net, const char *from, const char *rcpt,
    char *key, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;
	size_t off;

	if (ctx == NULL)
		return -1;
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, net, strlen(net) + 1) == 1 &&
	    EVP_DigestUpdate(ctx, from, strlen(from) + 1) == 1 &&
	    EVP_DigestUpdate(ctx, rcpt, strlen(rcpt) + 1) == 1 &&
	    EVP_DigestFinal_ex(ctx, md, &mdlen) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok || len < 4 + 2 * 20 + 1)
		return -1;
	memcpy(key, "g:t:", 4);
	off = 4;
	for (i = 0; i < 20 && i < mdlen; i++, off += 2)
		snprintf(key + off, len - off, "%02x", md[i]);
	return 0;
}

static enum policy_verdict
grey_store_failed(const struct policy_grey_config *gc,
    struct policy_result *res)
{
	policy_result_detail(res, "store=error");
	if (gc->on_store_error == POLICY_FAIL_TEMP)
		policy_result_set(res, POLICY_TEMPFAIL, 451, "4.3.0",
		    "Temporary local problem, try again later");
	return policy_result_mode(res, gc->mode);
}

static int
spf_exempt(const struct policy_grey_config *gc, const char *from)
{
	const char *at = strrchr(from, '@');
	size_t i;

	if (at == NULL)
		return 0;
	for (i = 0; i < gc->spf_exempt.n; i++)
		if (strcasecmp(at + 1, gc->spf_exempt.v[i]) == 0)
			return 1;
	return 0;
}

enum policy_verdict
policy_grey_check(const struct policy_grey_config *gc, struct policy_store *st,
    const struct sockaddr_storage *ss, const char *from, const char *rcpt,
    unsigned flags, time_t now, struct policy_result *res)
{
	char net[64], sender[320], to[320], key[64], akey[96], val[64];
	long long first = 0, passed = 0, n;
	size_t len;
	enum policy_store_status s;
	char *end;
	int vn;

	policy_result_init(res, "greylist");
	if (gc->mode == POLICY_IGNORE)
		return policy_result_mode(res, gc->mode);
	if (flags & (POLICY_GREY_ALLOWED | POLICY_GREY_DNSWL)) {
		policy_result_set(res, POLICY_SKIP, 0, NULL, NULL);
		policy_result_detail(res, "exempt=%s",
		    flags & POLICY_GREY_ALLOWED ? "allow" : "dnswl");
		return policy_result_mode(res, gc->mode);
	}
	if ((flags & POLICY_GREY_SPF_PASS) && spf_exempt(gc, from)) {
		policy_result_set(res, POLICY_SKIP, 0, NULL, NULL);
		policy_result_detail(res, "exempt=spf");
		return policy_result_mode(res, gc->mode);
	}
	if (policy_net_str(ss, gc->v4bits, gc->v6bits, net, sizeof(net)) < 0)
		return policy_result_mode(res, gc->mode);
	(void)policy_grey_normalize(from, sender, sizeof(sender));
	(void)policy_grey_normalize(rcpt, to, sizeof(to));
	/* recipients keep their +ext: only lowercase them */
	for (len = 0; rcpt[len] != '\0' && len + 1 < sizeof(to); len++)
		to[len] = (char)tolower((unsigned char)rcpt[len]);
	to[len] = '\0';
	snprintf(akey, sizeof(akey), "g:a:%s", net);

	if (gc->awl_count > 0) {
		s = policy_store_get(st, akey, val, sizeof(val), &len, NULL);
		if (s == STORE_ERROR)
			return grey_store_failed(gc, res);
		if (s == STORE_OK && (n = strtoll(val, &end, 10)) >=
		    (long long)gc->awl_count && *end == '\0') {
			policy_result_set(res, POLICY_SKIP, 0, NULL, NULL);
			policy_result_detail(res, "exempt=awl net=%s passes=%lld",
			    net, n);
			return policy_result_mode(res, gc->mode);
		}
	}
	if (triplet_key(net, sender, to, key, sizeof(key)) < 0)
		return grey_store_failed(gc, res);
	s = policy_store_get(st, key, val, sizeof(val), &len, NULL);
	if (s == STORE_ERROR)
		return grey_store_failed(gc, res);
	if (s == STORE_OK && sscanf(val, "%lld %lld", &first, &passed) != 2)
		s = STORE_NOTFOUND;	/* garbage: start over */
	if (s == STORE_OK && !passed && now - first > (long long)gc->max_wait)
		s = STORE_NOTFOUND;	/* came back too late: start over */
	if (s == STORE_OK && first > now)
		first = now;		/* clock went back */

	policy_result_detail(res, "net=%s from=\"<%s>\" to=\"<%s>\"", net, log_q(sender),
	    log_q(to));
	if (s == STORE_NOTFOUND) {
		vn = snprintf(val, sizeof(val), "%lld 0", (long long)now);
		if (policy_store_set(st, key, val, (size_t)vn,
		    gc->max_wait + gc->delay, 0) != STORE_OK)
			return grey_store_failed(gc, res);
		policy_result_set(res, POLICY_TEMPFAIL, 451, "4.7.1",
		    "Greylisted, please try again in %u seconds", gc->delay);
		policy_result_detail(res, "age=0 state=new");
		return policy_result_mode(res, gc->mode);
	}
	if (!passed && now - first < (long long)gc->delay) {
		policy_result_set(res, POLICY_TEMPFAIL, 451, "4.7.1",
		    "Greylisted, please try again in %lld seconds",
		    (long long)gc->delay - (now - first));
		policy_result_detail(res, "age=%lld state=early",
		    (long long)(now - first));
		return policy_result_mode(res, gc->mode);
	}
	vn = snprintf(val, sizeof(val), "%lld 1", first);
	if (policy_store_set(st, key, val, (size_t)vn, gc->retention, 0) !=
	    STORE_OK)
		return grey_store_failed(gc, res);
	if (gc->awl_count > 0 &&
	    policy_store_incr(st, akey, 1, gc->retention, STORE_REFRESH, &n) !=
	    STORE_OK)
		log_warn("greylist error=\"cannot count pass\" net=%s", net);
	policy_result_set(res, POLICY_PASS, 0, NULL, NULL);
	policy_result_detail(res, "age=%lld state=%s", (long long)(now - first),
	    passed ? "known" : "passed");
	return policy_result_mode(res, gc->mode);
}

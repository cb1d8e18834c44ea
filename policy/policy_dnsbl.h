/*
 * policy_dnsbl — weighted DNS block and allow lists.
 *
 * `dnsbl_sites = zen.example=127.0.0.[2..11]*3, wl.example=127.0.[0..255].[1..3]*-5`
 * Each site: ZONE[=FILTER][*WEIGHT]. FILTER is four dot-separated octet
 * patterns, each a number, `[lo..hi]` or `*`; no filter = any 127.0.0.0/8
 * answer. WEIGHT (default 1) may be negative (allow lists). All zones are
 * queried in parallel; the weights of matching zones add up to a score
 * (each zone counts once even if it answers several addresses).
 * score >= dnsbl_threshold: REJECT 554 5.7.1 quoting the zone's TXT;
 * score <= dnswl_threshold: POLICY_ALLOW (skip greylisting, pregreet).
 *
 * An answer outside 127.0.0.0/8, or in 127.255.255.0/24 (what public lists
 * return to blocked resolvers), is an error, never a listing. A timeout or
 * error in some zone: the score of the others stands; if it stays under
 * the threshold, dns_failure decides (pass, or 421 4.4.3).
 *
 * Results are cached in the store per client IP ("d:CONFHASH:IP" =
 * "SCORE ZONES TXT") for the smallest answer TTL clamped to [dnsbl_cache_min,
 * dnsbl_cache_max]; answers with errors are not cached.
 *
 * Queries: IPv4 as reversed octets (99.2.0.192.zone), IPv6 as 32 reversed
 * nibbles. Async use: policy_dnsbl_start() then, from the callback or
 * later, policy_dnsbl_finish(); sync use: policy_dnsbl_check().
 */
#ifndef POLICY_DNSBL_H
#define POLICY_DNSBL_H

#include <stddef.h>

#include "policy.h"
#include "policy_dns.h"
#include "policy_store.h"

struct policy_dnsbl_zone {
	char		 zone[256];
	int		 has_filter;
	unsigned char	 lo[4], hi[4];
	int		 weight;
};

struct policy_dnsbl_config {
	enum policy_mode		 mode;
	struct policy_dnsbl_zone	*zones;		/* owned */
	size_t				 nzones;
	int				 threshold;	/* default 1 */
	int				 wl_threshold;	/* default -1 */
	unsigned			 cache_min, cache_max;	/* s */
	unsigned			 timeout_ms;	/* whole lookup */
	enum policy_failure		 on_dns_error;
	enum policy_failure		 on_store_error;
};

enum policy_dnsbl_answer {
	DNSBL_MATCH,		/* a listing the filter accepts */
	DNSBL_NOMATCH,		/* in 127/8 but the filter rejects it */
	DNSBL_INVALID,		/* outside 127/8 or in 127.255.255.0/24 */
};

void policy_dnsbl_config_init(struct policy_dnsbl_config *bc);
void policy_dnsbl_free(struct policy_dnsbl_config *bc);

/* Parse a dnsbl_sites value (replacing bc->zones). NULL or a reason. */
const char *policy_dnsbl_parse(const char *s, struct policy_dnsbl_config *bc);
/* Classify one A answer (4 bytes, network order) for a zone. */
enum policy_dnsbl_answer policy_dnsbl_classify(
	    const struct policy_dnsbl_zone *z, const unsigned char a[4]);
/* Query name: reversed octets / nibbles + "." + zone. 0 / -1 (too long or
 * not an IP). */
int  policy_dnsbl_name(const struct sockaddr_storage *ss, const char *zone,
	    char *buf, size_t len);

struct policy_dnsbl_lookup;
typedef void (*policy_dnsbl_done)(void *arg, struct policy_dnsbl_lookup *lk);

/* Start an async lookup. done(arg, lk) is called exactly once — possibly
 * before this function returns (cache hit, no zones) — and the caller then
 * calls policy_dnsbl_finish(lk, ...) to get the verdict and free lk.
 * -1 only on out-of-memory (done is then not called). */
int  policy_dnsbl_start(const struct policy_dnsbl_config *bc,
	    struct policy_dns *dns, struct policy_store *st,
	    const struct sockaddr_storage *ss, policy_dnsbl_done done,
	    void *arg);
/* Verdict of a finished lookup; frees lk. *score may be NULL. */
enum policy_verdict policy_dnsbl_finish(struct policy_dnsbl_lookup *lk,
	    struct policy_result *res, int *score);
/* Synchronous: start, run the resolver up to bc->timeout_ms, finish. */
enum policy_verdict policy_dnsbl_check(const struct policy_dnsbl_config *bc,
	    struct policy_dns *dns, struct policy_store *st,
	    const struct sockaddr_storage *ss, struct policy_result *res,
	    int *score);

#endif

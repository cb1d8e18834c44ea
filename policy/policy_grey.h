/*
 * policy_grey — greylisting at RCPT TO.
 *
 * Triplet = (client network /24 or /64, normalized sender, recipient).
 * First sight: 451 4.7.1 with the retry hint, triplet remembered for
 * greylist_max_wait. A retry before greylist_delay: 451 again (same first
 * sight). A retry between delay and max_wait: pass; the triplet is kept
 * for greylist_retention and every later message passes at once (and
 * refreshes the retention). After max_wait an unpassed triplet starts over.
 * Each pass also counts for the client network; after greylist_awl_count
 * passes (within greylist_retention) the whole network skips greylisting.
 *
 * Exemptions the caller signals with flags: POLICY_GREY_ALLOWED (allow list),
 * POLICY_GREY_DNSWL (score at or below dnswl_threshold), POLICY_GREY_SPF_PASS
 * (SPF pass: exempt only if the sender's domain is in greylist_spf_exempt).
 *
 * Sender normalization (policy_grey_normalize): lowercase; BATV
 * "prvs=TAG=user" (also msprvs1=) and SRS0/SRS1 rewritten to the original
 * address; "+ext" stripped from the local part. The null sender stays "". The
 * recipient is only lowercased (its +ext is a different mailbox).
 *
 * State lives in the store: "g:t:<sha256 of the triplet>" = "FIRST PASSED"
 * and "g:a:<network>" = pass count. `now` is passed in so decisions are
 * testable; the store's own expiries use the clock.
 */
#ifndef POLICY_GREY_H
#define POLICY_GREY_H

#include <stddef.h>
#include <time.h>

#include "config.h"
#include "policy.h"
#include "policy_store.h"

#define POLICY_GREY_ALLOWED	0x1
#define POLICY_GREY_DNSWL	0x2
#define POLICY_GREY_SPF_PASS	0x4

struct policy_grey_config {
	enum policy_mode	 mode;
	unsigned		 delay;		/* s, default 300 */
	unsigned		 max_wait;	/* s, default 2d */
	unsigned		 retention;	/* s, default 35d */
	unsigned		 awl_count;	/* default 5; 0 = off */
	unsigned		 v4bits, v6bits;	/* default 24 / 64 */
	struct conf_list	 spf_exempt;	/* domains (owned) */
	enum policy_failure	 on_store_error;
};

void policy_grey_config_init(struct policy_grey_config *gc);
void policy_grey_free(struct policy_grey_config *gc);

/* Normalize a sender address (without <>) into out. 0, or -1 if it does
 * not fit (out then holds a truncated copy). */
int  policy_grey_normalize(const char *addr, char *out, size_t len);

/* Decide for one recipient. Fills res (check "greylist"); returns its
 * verdict: POLICY_PASS, POLICY_SKIP (exempt / ignore), POLICY_TEMPFAIL. */
enum policy_verdict policy_grey_check(const struct policy_grey_config *gc,
	    struct policy_store *st, const struct sockaddr_storage *ss,
	    const char *from, const char *rcpt, unsigned flags, time_t now,
	    struct policy_result *res);

#endif

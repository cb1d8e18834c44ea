/*
 * policy_access — the `allow` and `deny` CIDR lists (inline networks or
 * `file:PATH` items, one CIDR per line; re-read whenever the config is
 * re-loaded, i.e. on HUP). An allowed client is POLICY_ALLOW (skips
 * greylisting, DNSBL and pregreet), a denied one is refused with
 * 554 5.7.1 at connect (caller closes); allow wins over deny, so a deny of
 * a /16 can carry an allow of one host inside it.
 */
#ifndef POLICY_ACCESS_H
#define POLICY_ACCESS_H

#include "net.h"
#include "policy.h"

struct policy_access_config {
	enum policy_mode	 mode;		/* access_action */
	struct net_cidr_list	 allow;		/* owned */
	struct net_cidr_list	 deny;		/* owned */
};

void policy_access_config_init(struct policy_access_config *ac);
void policy_access_free(struct policy_access_config *ac);

/* POLICY_ALLOW, POLICY_REJECT (554 5.7.1), or POLICY_PASS (no match). */
enum policy_verdict policy_access_check(const struct policy_access_config *ac,
	    const struct sockaddr_storage *ss, struct policy_result *res);

#endif

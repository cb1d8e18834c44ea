/*
 * policy_access.c — allow/deny CIDR list decisions. See policy_access.h.
 * Matching is lib/net.c's net_cidr_list_match on the unmapped address.
 */
#include <string.h>

#include "policy_access.h"

void
policy_access_config_init(struct policy_access_config *ac)
{
	memset(ac, 0, sizeof(*ac));
	ac->mode = POLICY_ENFORCE;
}

void
policy_access_free(struct policy_access_config *ac)
{
	net_cidr_list_free(&ac->allow);
	net_cidr_list_free(&ac->deny);
}

enum policy_verdict
policy_access_check(const struct policy_access_config *ac,
    const struct sockaddr_storage *ss, struct policy_result *res)
{
	struct sockaddr_storage plain;
	unsigned char b[16];
	int fam = policy_ip_bytes(ss, b);
	char ip[64];

	policy_result_init(res, "access");
	if (ac->mode == POLICY_IGNORE || fam < 0)
		return policy_result_mode(res, ac->mode);
	memset(&plain, 0, sizeof(plain));
	if (fam == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&plain;
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, b, 4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&plain;
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, b, 16);
	}
	if (policy_ip_str(ss, ip, sizeof(ip)) < 0)
		ip[0] = '\0';
	if (ac->allow.n > 0 && net_cidr_list_match(&ac->allow, &plain)) {
		policy_result_set(res, POLICY_ALLOW, 0, NULL, NULL);
		policy_result_detail(res, "list=allow client=%s", ip);
	} else if (ac->deny.n > 0 && net_cidr_list_match(&ac->deny, &plain)) {
		policy_result_set(res, POLICY_REJECT, 554, "5.7.1",
		    "Access denied for %s", ip);
		policy_result_detail(res, "list=deny client=%s", ip);
	}
	return policy_result_mode(res, ac->mode);
}

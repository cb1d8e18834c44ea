/*
 * policy_config — reads the policy keys of gate.conf from a loaded struct
 * conf, so the gate and tailwart-milter share one set of names.
 *
 * The caller loads the file (conf_load), applies its own schema
 * (conf_apply) — which must NOT list the keys below — then calls
 * policy_config_load(), then conf_check_unused(). Every key here is
 * optional; the value is consumed with conf_take(), so unknown-key
 * checking keeps working. Errors are "file:line: message".
 *
 * Keys (defaults in brackets):
 *   store [lmdb:/var/lib/tailwart/gate.lmdb], store_prefix [tw:],
 *   store_failure = pass | tempfail [pass]
 *   resolver = system | ADDR[:PORT], ... [system], dns_timeout [2s],
 *   dns_tries [2], dns_failure = pass | tempfail [pass]
 *   allow, deny = CIDR, ..., file:PATH [none]; access_action [enforce]
 *   rate_limit [none], rate_limit[NET] (any number), rate_limit_action
 *   [enforce], rate_limit_net_v4 [24], rate_limit_net_v6 [64],
 *   rate_limit_concurrency_ttl [1h]
 *   greylist_action [enforce], greylist_delay [5m], greylist_max_wait [2d],
 *   greylist_retention [35d], greylist_awl_count [5], greylist_net_v4
 *   [24], greylist_net_v6 [64], greylist_spf_exempt = domain, ... [none]
 *   dnsbl_sites [none], dnsbl_threshold [1], dnswl_threshold [-1],
 *   dnsbl_action [enforce], dnsbl_cache_min [1m], dnsbl_cache_max [1h],
 *   dnsbl_timeout [dns_timeout * dns_tries]
 *   spf_action [enforce], spf_pass, spf_none, spf_neutral, spf_softfail
 *   [log], spf_fail [reject], spf_temperror [tempfail], spf_permerror
 *   [log], spf_timeout [10s], received_spf_header = yes | no [no]
 * `ignore | log | enforce` for every *_action.
 *
 * Ownership: struct policy_config owns its strings and lists; free with
 * policy_config_free(). A failed load leaves nothing to free (it frees).
 */
#ifndef POLICY_CONFIG_H
#define POLICY_CONFIG_H

#include <stddef.h>

#include "config.h"
#include "policy.h"
#include "policy_access.h"
#include "policy_dnsbl.h"
#include "policy_grey.h"
#include "policy_rate.h"
#include "policy_spf.h"

struct policy_config {
	char				*store;		/* spec */
	char				*store_prefix;
	enum policy_failure		 store_failure;
	char				*resolver;
	unsigned			 dns_timeout_ms;
	unsigned			 dns_tries;
	enum policy_failure		 dns_failure;
	struct policy_access_config	 access;
	struct policy_rate_config	 rate;
	struct policy_grey_config	 grey;
	struct policy_dnsbl_config	 dnsbl;
	struct policy_spf_config	 spf;
};

/* 0 / -1 with "file:line: message" in err. */
int  policy_config_load(struct conf *c, struct policy_config *pc,
	    char *err, size_t errlen);
void policy_config_free(struct policy_config *pc);

#endif

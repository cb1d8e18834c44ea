/*
 * policy_spf — SPF (RFC 7208) at MAIL FROM with libspf2, its DNS going
 * through policy_dns (same resolver, same port), and our own limits on
 * top of libspf2 1.2.10: at most 10 DNS-querying terms over the whole
 * evaluation (libspf2 restarts its count in each include), at most 2 void
 * lookups, a hard cap on queries and a deadline; SERVFAIL/timeouts become
 * temperror and syntax errors permerror (libspf2 reports both as
 * "invalid"). The obsolete SPF RR type (99) is never queried. The exp=
 * text is fetched through the layer's get_exp hook (not a counted term)
 * and expanded by policy_spf_expand(), since libspf2 1.2.10 mangles
 * explanations.
 *
 * The identity is the sender's domain, or the HELO name for the null
 * sender. Each result maps to an action from the config:
 *   spf_pass / spf_none / spf_neutral / spf_softfail / spf_fail /
 *   spf_temperror / spf_permerror = reject | tempfail | log | ignore
 * Replies: fail 550 5.7.23 with the explanation, permerror 550 5.7.24,
 * temperror 451 4.7.24, others 550 5.7.1 / 451 4.7.1.
 * Defaults: fail=reject, temperror=tempfail, everything else log.
 * `received_spf_header = yes` asks the caller to prepend the header built
 * by policy_spf_received() (off by default: Stalwart computes its own).
 *
 * One SPF_server_t is built per check (libspf2 servers are not thread
 * safe, and our limit counters are per evaluation); the dns handle must not
 * be used by another thread meanwhile.
 */
#ifndef POLICY_SPF_H
#define POLICY_SPF_H

#include "policy.h"
#include "policy_dns.h"

enum policy_spf_result {
	SPF_RES_NONE, SPF_RES_NEUTRAL, SPF_RES_PASS, SPF_RES_FAIL,
	SPF_RES_SOFTFAIL, SPF_RES_TEMPERROR, SPF_RES_PERMERROR, SPF_RES_COUNT
};

enum policy_spf_action {
	SPF_ACT_IGNORE, SPF_ACT_LOG, SPF_ACT_TEMPFAIL, SPF_ACT_REJECT
};

struct policy_spf_config {
	enum policy_mode	 mode;		/* spf_action master switch */
	enum policy_spf_action	 act[SPF_RES_COUNT];
	unsigned		 timeout_ms;	/* whole evaluation */
	unsigned		 max_lookups;	/* 10 */
	unsigned		 max_void;	/* 2 */
	int			 received_header;	/* received_spf_header */
};

void policy_spf_config_init(struct policy_spf_config *sc);
const char *policy_spf_result_name(enum policy_spf_result r);
/* "pass" ... "permerror" -> 0, else -1. */
int  policy_spf_result_parse(const char *s, enum policy_spf_result *r);
/* "reject" | "tempfail" | "log" | "ignore" -> 0, else -1. */
int  policy_spf_action_parse(const char *s, enum policy_spf_action *a);

/* Evaluate. helo may be empty; sender without <> ("" = null sender).
 * *result (if not NULL) gets the SPF result even when the action is to
 * ignore it (for Received-SPF / Authentication-Results). */
enum policy_verdict policy_spf_check(const struct policy_spf_config *sc,
	    struct policy_dns *dns, const struct sockaddr_storage *ss,
	    const char *helo, const char *sender, struct policy_result *res,
	    enum policy_spf_result *result);

/* Received-SPF header field (RFC 7208 9.1), one line without CRLF:
 * `Received-SPF: fail (HOST: domain of S does not designate IP as
 * permitted sender) client-ip=IP; envelope-from="S"; helo=H;`.
 * Addresses are sanitized (no quotes, controls, ';'). 0 / -1 (too long). */
int  policy_spf_received(enum policy_spf_result r, const char *host,
	    const struct sockaddr_storage *ss, const char *helo,
	    const char *sender, char *buf, size_t len);

/* Expand the macros of an exp= explanation that make sense in a reply
 * (%{i} %{c} %{s} %{l} %{o} %{d} %{h} %{v}, %% %_ %-); unknown letters
 * become "unknown", transformers are ignored. Always NUL-terminates. */
void policy_spf_expand(char *out, size_t len, const char *in, const char *ip,
	    const char *sender, const char *domain, const char *helo);

#endif

/*
 * policy_rate — connection, concurrency, message, recipient and error
 * limits per client IP and per client network (/24, /64 by default).
 *
 * Config values (gate.conf):
 *   rate_limit = conn 30/1m, concurrency 10, msg 60/1h, rcpt 300/1h, err 20/10m
 *   rate_limit[203.0.113.0/24] = conn 300/1m, concurrency 50
 *   rate_limit[127.0.0.0/8] = none
 * Items: conn N/DUR, concurrency N, msg N/DUR, rcpt N/DUR, err N/DUR count
 * per client IP; the same names prefixed with `net_` (net_conn 100/1m ...)
 * count per client network. `KIND none` switches one limit off, `none`
 * alone switches all off. An override names a network; the most specific
 * (longest prefix) network containing the client wins; kinds it does not
 * name are inherited from the default `rate_limit`.
 *
 * Counters are fixed windows in the store (key "r:KIND:IP-or-NET"), started
 * by the first event, so the limit N admits exactly N events per window
 * and refuses event N+1. Concurrency is a counter incremented by
 * policy_rate_connect() and decremented by policy_rate_disconnect(); it
 * carries an expiry (rate_limit_concurrency_ttl, refreshed on each
 * connect) so a crashed worker cannot leak a slot forever. A client over
 * its error limit is also refused at connect for the rest of that window.
 * The IP and network counters of one kind are updated together (one LMDB
 * transaction, one Redis round trip).
 *
 * Replies: conn/concurrency/err limits 421 4.7.0 (caller closes), msg
 * 451 4.7.1, rcpt 452 4.5.3. A store failure gives POLICY_PASS (fail open)
 * or 451 4.3.0 per `store_failure`.
 */
#ifndef POLICY_RATE_H
#define POLICY_RATE_H

#include <time.h>

#include "net.h"
#include "policy.h"
#include "policy_store.h"

enum policy_rate_kind {
	RATE_CONN, RATE_CONC, RATE_MSG, RATE_RCPT, RATE_ERR, RATE_KINDS
};

struct policy_rate_limit {
	int		 set;		/* named in this spec (for inheritance) */
	unsigned long	 count;		/* 0 with set = "none" (off) */
	unsigned	 window;	/* seconds; 0 for concurrency */
};

struct policy_rate_spec {
	struct policy_rate_limit ip[RATE_KINDS];
	struct policy_rate_limit net[RATE_KINDS];
};

struct policy_rate_rule {
	struct net_cidr		 net;
	struct policy_rate_spec	 spec;
	int			 line;
};

struct policy_rate_config {
	enum policy_mode	 mode;
	struct policy_rate_spec	 def;
	struct policy_rate_rule	*rules;		/* owned; policy_rate_free() */
	size_t			 nrules;
	unsigned		 v4bits, v6bits;	/* network grouping */
	unsigned		 conc_ttl;		/* concurrency safety expiry */
	enum policy_failure	 on_store_error;
};

/* Defaults: mode enforce, no limits, /24 and /64, conc_ttl 3600 s. */
void policy_rate_config_init(struct policy_rate_config *rc);
void policy_rate_free(struct policy_rate_config *rc);

/* Parse a rate_limit value into spec (which the caller zeroed or filled
 * with a base to override). NULL on success, else a constant reason. */
const char *policy_rate_parse(const char *s, struct policy_rate_spec *spec);
/* Add an override for `net` (text of the index) parsed from `value`, on top
 * of the default spec. NULL or a constant reason. Call after def is set. */
const char *policy_rate_add_rule(struct policy_rate_config *rc,
	    const char *net, const char *value, int line);
/* The effective spec for a client: most specific rule, else the default. */
const struct policy_rate_spec *policy_rate_lookup(
	    const struct policy_rate_config *rc, const struct sockaddr_storage *ss);

/* Session start: counts the connection (per IP and net) and takes a
 * concurrency slot. On a refusal the slot is given back. PASS (also a
 * would-be refusal under rate_limit_action = log) means the caller owes
 * exactly one policy_rate_disconnect() at session end; SKIP (action
 * ignore) and refusals owe nothing. */
enum policy_verdict policy_rate_connect(const struct policy_rate_config *rc,
	    struct policy_store *st, const struct sockaddr_storage *ss,
	    struct policy_result *res);
/* Session end: gives the concurrency slot back. 0 / -1 (store error). */
int  policy_rate_disconnect(const struct policy_rate_config *rc,
	    struct policy_store *st, const struct sockaddr_storage *ss);
/* Counts one message (MAIL FROM) / one recipient (RCPT TO) / one error. */
enum policy_verdict policy_rate_msg(const struct policy_rate_config *rc,
	    struct policy_store *st, const struct sockaddr_storage *ss,
	    struct policy_result *res);
enum policy_verdict policy_rate_rcpt(const struct policy_rate_config *rc,
	    struct policy_store *st, const struct sockaddr_storage *ss,
	    struct policy_result *res);
enum policy_verdict policy_rate_error(const struct policy_rate_config *rc,
	    struct policy_store *st, const struct sockaddr_storage *ss,
	    struct policy_result *res);

#endif

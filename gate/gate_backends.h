/*
 * gate_backends.h — several backends for the hand-off and the pass-through
 * listeners: the address list (from `backend = a:25, b:25` or a
 * pass-through target `a:587|b:587`, names resolved when the config is
 * loaded, i.e. at start and on HUP), the order in which one hand-off tries
 * them (backend_policy), and their passive health, kept in a board shared
 * (MAP_SHARED, atomics, no lock) by the master and all its children.
 */
#ifndef GATE_BACKENDS_H
#define GATE_BACKENDS_H

#include <stddef.h>

#include "net.h"

#define GATE_BACKENDS_MAX	64	/* addresses per list, and slots on the board */

enum gate_backend_policy { GBP_ROUND_ROBIN, GBP_FAILOVER, GBP_LEAST_SESSIONS };

struct gate_backend_addr {
	struct net_endpoint	ep;	/* numeric host (or the name when it did not resolve) */
	char			name[300];	/* ep as "host:port", for logs */
	unsigned		slot;	/* index on the board (set by gate_backends_bind) */
};

struct gate_backend_list {
	struct gate_backend_addr v[GATE_BACKENDS_MAX];
	size_t			 n;
};

/* Passive health of one address, shared by every process. Only the master
 * writes `key`/`used` (before it forks); the rest is updated with atomics. */
struct gate_backend_state {
	char		key[300];	/* the address's name; "" = free slot */
	unsigned	fails;		/* failures in a row */
	unsigned	down;		/* 1 while in back-off (state=down logged) */
	long long	down_until_ms;	/* monotonic; skipped until then */
	long long	backoff_ms;	/* current back-off, doubled per failed retry */
	int		sessions;	/* hand-offs open now (least-sessions) */
};

struct gate_backend_board {
	unsigned long	rr;		/* round-robin counter */
	struct gate_backend_state v[GATE_BACKENDS_MAX];
};

/* Health rule, from gate.conf (backend_fail_max, backend_backoff, backend_backoff_max). */
struct gate_backend_rule {
	unsigned	fail_max;
	unsigned	backoff_s, backoff_max_s;
	int		policy;		/* enum gate_backend_policy */
};

/* Parse a list of HOST:PORT items separated by `sep` (',' or '|') and resolve
 * each name (every address it has). 0, or -1 with why (a static string) set. */
int  gate_backends_parse(const char *s, char sep, struct gate_backend_list *l, const char **why);
/* Master, after each config load and before forking: give each address of
 * l a slot on the board (an address keeps its slot across reloads). */
void gate_backends_bind(struct gate_backend_board *b, struct gate_backend_list *l);
/* The order in which to try l for one hand-off: up to GATE_BACKENDS_MAX
 * indices into l->v. Addresses in back-off are left out, unless all are;
 * then only the one whose back-off ends first. b may be NULL (no health). */
size_t gate_backends_plan(struct gate_backend_board *b, const struct gate_backend_list *l,
	    const struct gate_backend_rule *r, unsigned *order);
/* The outcome of one try of l->v[i]: ok 1 (banner 220) or 0. Logs
 * `backend=... state=down|up` once per change of state. */
void gate_backends_result(struct gate_backend_board *b, const struct gate_backend_addr *a,
	    const struct gate_backend_rule *r, int ok);
/* A hand-off opened (+1) or closed (-1) on this address. */
void gate_backends_sessions(struct gate_backend_board *b, unsigned slot, int delta);

#endif

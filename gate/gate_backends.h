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
#define GATE_BACKENDS_HOLDERS	8192	/* processes that may hold a hand-off (>= GATE_MAX_CHILDREN) */

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
};

/* The hand-offs open now (least-sessions) are not a counter but one entry
 * per holder (the child's scoreboard slot): held[h] = board slot + 1 of
 * the address child h is handed off to, 0 = none. A child that dies holding
 * one (kill -9, a crash) cannot leak it: the master releases its entry when
 * it reaps it. The counts are summed over held[0 .. holders) when needed. */
struct gate_backend_board {
	unsigned long	rr;		/* round-robin counter */
	unsigned	holders;	/* highest holder index used + 1 */
	struct gate_backend_state v[GATE_BACKENDS_MAX];
	unsigned char	held[GATE_BACKENDS_HOLDERS];
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
/* Holder h (a child's scoreboard slot; one hand-off at a time) opened a
 * hand-off on board slot `slot`, or has none open any more (release: the
 * child itself on close, or the master when it reaps the child). */
void gate_backends_hold(struct gate_backend_board *b, unsigned h, unsigned slot);
void gate_backends_release(struct gate_backend_board *b, unsigned h);
/* Hand-offs open now per board slot (cnt: GATE_BACKENDS_MAX entries). */
void gate_backends_count(const struct gate_backend_board *b, unsigned *cnt);

#endif

/*
 * policy_store — the one owner of shared policy state (rate counters,
 * greylist triplets, DNSBL cache): get / set / increment with expiry,
 * delete, purge. Two backends behind one interface:
 *
 *   lmdb:/var/lib/tailwart/gate.lmdb    embedded (a file plus "-lock";
 *                                        "?mapsize=1G" sets the map size)
 *   redis://HOST:PORT/DB                 shared between gates (hiredis)
 *
 * Every value carries an expiry (seconds from now, 0 = never). Expired
 * entries are invisible to get/incr; policy_store_purge() removes them
 * from LMDB (Redis expires keys itself). Keys are prefixed with the
 * configured prefix (store_prefix, default "tw:").
 *
 * Atomicity: each call is one LMDB write transaction or one Redis Lua
 * script, so concurrent workers and several gates never lose an update.
 *
 * Processes and threads: a handle remembers the pid that opened it. Used
 * in a child after fork(), it notices and opens its own LMDB environment
 * or Redis connection (an inherited MDB_env is abandoned, never used or
 * closed: LMDB forbids sharing one across fork; an inherited Redis socket
 * is closed in the child without a word on the wire). So the master may
 * open the store (as root, creating the file) before forking workers. A
 * handle is safe to share between threads (the milter): LMDB runs with
 * MDB_NOTLS, the Redis connection is behind a mutex.
 *
 * LMDB is opened with MDB_NOSYNC: counters and greylist state survive a
 * process restart (page cache); an OS crash may lose the writes since the
 * last flush (and on a filesystem that reorders writes may damage the
 * file: it holds only counters, greylist and cache state, so deleting it
 * is the cure). policy_store_purge() removes expired records in batches
 * and flushes (mdb_env_sync): call it periodically (the master does).
 * A write that finds the map full purges expired records and retries once.
 *
 * Return values: enum policy_store_status; STORE_ERROR means the backend
 * failed (down, full, corrupt): the caller applies its failure policy
 * (fail open or tempfail). A NULL handle is a store that is down
 * (STORE_ERROR), so checks given no store follow store_failure. Nothing
 * here exits or aborts.
 */
#ifndef POLICY_STORE_H
#define POLICY_STORE_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

enum policy_store_status {
	STORE_OK,
	STORE_NOTFOUND,		/* absent or expired */
	STORE_EXISTS,		/* set with STORE_NX found a live entry */
	STORE_ERROR,
};

#define STORE_KEY_MAX	400	/* prefix + key, bytes */
#define STORE_VAL_MAX	1024	/* value bytes */

/* flags for set / incr */
#define STORE_NX	0x1	/* set: only if absent (or expired) */
#define STORE_REFRESH	0x2	/* incr: reset the expiry on every call */

struct policy_store;

/* Open from a spec string ("lmdb:PATH" | "redis://HOST[:PORT][/DB]").
 * prefix may be NULL ("tw:"). 0 / -1 with the reason in err. */
int  policy_store_open(const char *spec, const char *prefix,
	    struct policy_store **out, char *err, size_t errlen);
void policy_store_close(struct policy_store *st);

/* Value into val (not NUL-terminated unless room: a NUL is added when
 * len < cap), length into *len; *expires (absolute time, 0 = never) if
 * not NULL. A value longer than cap is STORE_ERROR. */
enum policy_store_status policy_store_get(struct policy_store *st,
	    const char *key, void *val, size_t cap, size_t *len, time_t *expires);
/* Set with ttl seconds (0 = never). flags: STORE_NX. */
enum policy_store_status policy_store_set(struct policy_store *st,
	    const char *key, const void *val, size_t len, unsigned ttl, int flags);
/* Atomically add delta to a decimal counter. An absent key starts at 0 and
 * gets the expiry ttl; a live one keeps its expiry unless STORE_REFRESH.
 * The result never goes below 0 (a decrement of an absent key stores
 * nothing and yields 0). New value into *out (may be NULL). */
enum policy_store_status policy_store_incr(struct policy_store *st,
	    const char *key, long long delta, unsigned ttl, int flags,
	    long long *out);
/* policy_store_incr on n keys (n <= STORE_MULTI_MAX) in one transaction /
 * one Redis round trip; ttls[i] per key, results into out[i]. */
#define STORE_MULTI_MAX	8
enum policy_store_status policy_store_incr_many(struct policy_store *st,
	    const char *const *keys, size_t n, long long delta,
	    const unsigned *ttls, int flags, long long *out);
/* Remove; STORE_NOTFOUND if there was nothing. */
enum policy_store_status policy_store_del(struct policy_store *st,
	    const char *key);
/* Remove expired entries (LMDB; a no-op for Redis); count into *removed. */
enum policy_store_status policy_store_purge(struct policy_store *st,
	    unsigned long *removed);
/* Give the store's files to uid:gid (the master, as root, before the
 * children drop privileges): the LMDB data file and its "-lock" file. A
 * no-op for Redis. 0 / -1 with the reason in err. */
int  policy_store_chown(struct policy_store *st, uid_t uid, gid_t gid,
	    char *err, size_t errlen);
/* "lmdb" or "redis". */
const char *policy_store_kind(const struct policy_store *st);

/* --- backend interface (policy_store_*.c only) --- */
struct policy_store_ops {
	const char *kind;
	enum policy_store_status (*get)(struct policy_store *, const char *,
	    void *, size_t, size_t *, time_t *);
	enum policy_store_status (*set)(struct policy_store *, const char *,
	    const void *, size_t, unsigned, int);
	enum policy_store_status (*incr)(struct policy_store *, const char *const *,
	    size_t, long long, const unsigned *, int, long long *);
	enum policy_store_status (*del)(struct policy_store *, const char *);
	enum policy_store_status (*purge)(struct policy_store *, unsigned long *);
	int (*chown)(struct policy_store *, uid_t, gid_t, char *, size_t);
	void (*close)(struct policy_store *);
};

struct policy_store {
	const struct policy_store_ops	*ops;
	char				 prefix[64];
	void				*impl;
};

int  policy_store_lmdb_open(struct policy_store *st, const char *path,
	    char *err, size_t errlen);
int  policy_store_redis_open(struct policy_store *st, const char *url,
	    char *err, size_t errlen);

#endif

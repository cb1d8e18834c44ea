/*
 * policy_store.c — opens a store from its spec and dispatches every call
 * to the backend (policy_store_lmdb.c, policy_store_redis.c), adding the
 * key prefix. See policy_store.h for the contract.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_store.h"

static int
full_key(const struct policy_store *st, const char *key, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s%s", st->prefix, key);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int
policy_store_open(const char *spec, const char *prefix,
    struct policy_store **out, char *err, size_t errlen)
{
	struct policy_store *st;
	int rc;

	*out = NULL;
	if (prefix == NULL)
		prefix = "tw:";
	if (strlen(prefix) >= sizeof(st->prefix)) {
		snprintf(err, errlen, "store prefix too long");
		return -1;
	}
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(st->prefix, sizeof(st->prefix), "%s", prefix);
	if (strncmp(spec, "lmdb:", 5) == 0)
		rc = policy_store_lmdb_open(st, spec + 5, err, errlen);
	else if (strncmp(spec, "redis://", 8) == 0)
		rc = policy_store_redis_open(st, spec, err, errlen);
	else {
		snprintf(err, errlen, "store: expected lmdb:PATH or "
		    "redis://HOST:PORT/DB, got \"%.80s\"", spec);
		rc = -1;
	}
	if (rc < 0) {
		free(st);
		return -1;
	}
	*out = st;
	return 0;
}

void
policy_store_close(struct policy_store *st)
{
	if (st == NULL)
		return;
	st->ops->close(st);
	free(st);
}

const char *
policy_store_kind(const struct policy_store *st)
{
	return st->ops->kind;
}

enum policy_store_status
policy_store_get(struct policy_store *st, const char *key, void *val,
    size_t cap, size_t *len, time_t *expires)
{
	char k[STORE_KEY_MAX];
	size_t dummy;

	if (expires != NULL)
		*expires = 0;
	if (st == NULL || full_key(st, key, k, sizeof(k)) < 0)
		return STORE_ERROR;
	return st->ops->get(st, k, val, cap, len ? len : &dummy, expires);
}

enum policy_store_status
policy_store_set(struct policy_store *st, const char *key, const void *val,
    size_t len, unsigned ttl, int flags)
{
	char k[STORE_KEY_MAX];

	if (st == NULL || len > STORE_VAL_MAX || full_key(st, key, k, sizeof(k)) < 0)
		return STORE_ERROR;
	return st->ops->set(st, k, val, len, ttl, flags);
}

enum policy_store_status
policy_store_incr(struct policy_store *st, const char *key, long long delta,
    unsigned ttl, int flags, long long *out)
{
	return policy_store_incr_many(st, &key, 1, delta, &ttl, flags, out);
}

enum policy_store_status
policy_store_incr_many(struct policy_store *st, const char *const *keys,
    size_t n, long long delta, const unsigned *ttls, int flags,
    long long *out)
{
	char k[STORE_MULTI_MAX][STORE_KEY_MAX];
	const char *kp[STORE_MULTI_MAX];
	long long dummy[STORE_MULTI_MAX];
	size_t i;

	if (st == NULL || n > STORE_MULTI_MAX)
		return STORE_ERROR;
	if (n == 0)
		return STORE_OK;
	for (i = 0; i < n; i++) {
		if (full_key(st, keys[i], k[i], sizeof(k[i])) < 0)
			return STORE_ERROR;
		kp[i] = k[i];
	}
	return st->ops->incr(st, kp, n, delta, ttls, flags, out ? out : dummy);
}

enum policy_store_status
policy_store_del(struct policy_store *st, const char *key)
{
	char k[STORE_KEY_MAX];

	if (st == NULL || full_key(st, key, k, sizeof(k)) < 0)
		return STORE_ERROR;
	return st->ops->del(st, k);
}

enum policy_store_status
policy_store_purge(struct policy_store *st, unsigned long *removed)
{
	unsigned long dummy;

	if (st == NULL)
		return STORE_ERROR;
	return st->ops->purge(st, removed ? removed : &dummy);
}

int
policy_store_chown(struct policy_store *st, uid_t uid, gid_t gid, char *err,
    size_t errlen)
{
	if (st == NULL || st->ops->chown == NULL)
		return 0;
	return st->ops->chown(st, uid, gid, err, errlen);
}

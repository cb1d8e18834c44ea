/*
 * policy_store_redis.c — the shared store backend (redis://HOST:PORT/DB),
 * so several gates behind one MX see the same greylist and rate state.
 *
 * One hiredis connection per process (reopened in a child after fork, the
 * inherited one freed without a word on the wire), guarded by a mutex for
 * threaded callers. Every operation is a single Redis command or Lua
 * script, hence atomic across gates: SET .. EX .. NX for set, a script for
 * get (value + TTL) and for incr (create with expiry, clamp at 0, keep or
 * refresh the TTL). Needs Redis >= 6 (SET KEEPTTL). Redis expires keys by
 * itself, so purge is a no-op.
 *
 * A connection failure (refused, timeout, protocol error) returns
 * STORE_ERROR and drops the connection; the next call reconnects, but not
 * more than once per second, so a dead Redis costs each call at most one
 * short timeout per second, not one per operation. Timeouts: 500 ms for
 * connect and for each command.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "policy_store.h"

#define REDIS_TIMEOUT_MS	500

struct redis_store {
	char		 host[256];
	int		 port;
	int		 db;
	redisContext	*ctx;
	pid_t		 pid;
	time_t		 last_fail;
	time_t		 last_log;	/* error replies logged once a second */
	unsigned long	 suppressed;
	pthread_mutex_t	 lock;
};

static const char script_get[] =
	"local v = redis.call('GET', KEYS[1]) "
	"if not v then return false end "
	"return {v, redis.call('TTL', KEYS[1])}";

/* KEYS = counters; ARGV = delta, refresh flag, then one ttl per key.
 * Returns the new values in key order. */
static const char script_incr[] =
	"local d = tonumber(ARGV[1]) "
	"local out = {} "
	"for i, k in ipairs(KEYS) do "
	"  local ttl = tonumber(ARGV[i + 2]) "
	"  local cur = redis.call('GET', k) "
	"  local v "
	"  if not cur then "
	"    if d <= 0 then v = 0 "
	"    else "
	"      v = d "
	"      if ttl > 0 then redis.call('SET', k, v, 'EX', ttl) "
	"      else redis.call('SET', k, v) end "
	"    end "
	"  else "
	"    v = (tonumber(cur) or 0) + d "
	"    if v < 0 then v = 0 end "
	"    if ARGV[2] == '1' and ttl > 0 then redis.call('SET', k, v, 'EX', ttl) "
	"    elseif ARGV[2] == '1' then redis.call('SET', k, v) "
	"    else redis.call('SET', k, v, 'KEEPTTL') end "
	"  end "
	"  out[i] = v "
	"end "
	"return out";

static void
redis_drop(struct redis_store *rs, const char *why)
{
	if (rs->ctx != NULL) {
		log_warn("store error=\"redis %s:%d: %s\"", rs->host, rs->port,
		    why ? why : (rs->ctx->err ? rs->ctx->errstr : "failed"));
		redisFree(rs->ctx);
		rs->ctx = NULL;
	}
	rs->last_fail = time(NULL);
}

static int
redis_connect(struct redis_store *rs, char *err, size_t errlen)
{
	struct timeval tv = { 0, REDIS_TIMEOUT_MS * 1000 };
	redisContext *c;
	redisReply *r;

	c = redisConnectWithTimeout(rs->host, rs->port, tv);
	if (c == NULL || c->err) {
		snprintf(err, errlen, "redis %s:%d: %s", rs->host, rs->port,
		    c ? c->errstr : "out of memory");
		if (c != NULL)
			redisFree(c);
		return -1;
	}
	if (redisSetTimeout(c, tv) != REDIS_OK) {
		snprintf(err, errlen, "redis %s:%d: cannot set timeout",
		    rs->host, rs->port);
		redisFree(c);
		return -1;
	}
	if (rs->db != 0) {
		r = redisCommand(c, "SELECT %d", rs->db);
		if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			snprintf(err, errlen, "redis %s:%d: SELECT %d failed",
			    rs->host, rs->port, rs->db);
			if (r != NULL)
				freeReplyObject(r);
			redisFree(c);
			return -1;
		}
		freeReplyObject(r);
	}
	rs->ctx = c;
	rs->pid = getpid();
	return 0;
}

/* Lock and return a live connection, or NULL (unlocked) on failure. */
static redisContext *
redis_acquire(struct redis_store *rs)
{
	char err[512];

	if (pthread_mutex_lock(&rs->lock) != 0)
		return NULL;
	if (rs->ctx != NULL && rs->pid != getpid()) {
		redisFree(rs->ctx);	/* inherited: close our copy of the fd */
		rs->ctx = NULL;
	}
	if (rs->ctx == NULL) {
		if (rs->last_fail == time(NULL) ||
		    redis_connect(rs, err, sizeof(err)) < 0) {
			if (rs->last_fail != time(NULL))
				log_warn("store error=\"%s\"", err);
			rs->last_fail = time(NULL);
			(void)pthread_mutex_unlock(&rs->lock);
			return NULL;
		}
	}
	return rs->ctx;
}

static void
redis_release(struct redis_store *rs)
{
	(void)pthread_mutex_unlock(&rs->lock);
}

/* A reply or NULL; on NULL or an error reply the connection is dropped. */
static redisReply *
redis_check(struct redis_store *rs, redisReply *r)
{
	if (r == NULL) {
		redis_drop(rs, NULL);
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {	/* OOM, READONLY, ...: per call */
		if (rs->last_log != time(NULL)) {
			rs->last_log = time(NULL);
			log_warn("store error=\"redis: %.200s\" suppressed=%lu",
			    r->str, rs->suppressed);
			rs->suppressed = 0;
		} else
			rs->suppressed++;
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

static enum policy_store_status
redis_get(struct policy_store *st, const char *key, void *val, size_t cap,
    size_t *len, time_t *expires)
{
	struct redis_store *rs = st->impl;
	redisContext *c = redis_acquire(rs);
	redisReply *r;
	enum policy_store_status ret = STORE_ERROR;

	if (c == NULL)
		return STORE_ERROR;
	r = redis_check(rs, redisCommand(c, "EVAL %s 1 %s", script_get, key));
	if (r == NULL)
		goto out;
	if (r->type == REDIS_REPLY_NIL)
		ret = STORE_NOTFOUND;
	else if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    r->element[0]->type == REDIS_REPLY_STRING &&
	    r->element[1]->type == REDIS_REPLY_INTEGER &&
	    r->element[0]->len <= cap) {
		*len = r->element[0]->len;
		memcpy(val, r->element[0]->str, *len);
		if (*len < cap)
			((char *)val)[*len] = '\0';
		if (expires != NULL)
			*expires = r->element[1]->integer > 0 ?
			    time(NULL) + (time_t)r->element[1]->integer : 0;
		ret = STORE_OK;
	}
	freeReplyObject(r);
out:
	redis_release(rs);
	return ret;
}

static enum policy_store_status
redis_set(struct policy_store *st, const char *key, const void *val,
    size_t len, unsigned ttl, int flags)
{
	struct redis_store *rs = st->impl;
	redisContext *c = redis_acquire(rs);
	redisReply *r;
	enum policy_store_status ret = STORE_ERROR;
	const char *nx = (flags & STORE_NX) ? "NX" : "";

	if (c == NULL)
		return STORE_ERROR;
	if (ttl > 0 && nx[0])
		r = redisCommand(c, "SET %s %b EX %u NX", key, val, len, ttl);
	else if (ttl > 0)
		r = redisCommand(c, "SET %s %b EX %u", key, val, len, ttl);
	else if (nx[0])
		r = redisCommand(c, "SET %s %b NX", key, val, len);
	else
		r = redisCommand(c, "SET %s %b", key, val, len);
	if ((r = redis_check(rs, r)) != NULL) {
		if (r->type == REDIS_REPLY_NIL)
			ret = STORE_EXISTS;
		else if (r->type == REDIS_REPLY_STATUS)
			ret = STORE_OK;
		freeReplyObject(r);
	}
	redis_release(rs);
	return ret;
}

static enum policy_store_status
redis_incr(struct policy_store *st, const char *const *keys, size_t n,
    long long delta, const unsigned *ttls, int flags, long long *out)
{
	struct redis_store *rs = st->impl;
	redisContext *c;
	redisReply *r;
	enum policy_store_status ret = STORE_ERROR;
	const char *argv[4 + 2 * STORE_MULTI_MAX + 2];
	size_t argl[4 + 2 * STORE_MULTI_MAX + 2];
	char nkeys[16], d[32], ttl[STORE_MULTI_MAX][16];
	size_t i, argc = 0;

	if (n == 0 || n > STORE_MULTI_MAX)
		return STORE_ERROR;
	snprintf(nkeys, sizeof(nkeys), "%zu", n);
	snprintf(d, sizeof(d), "%lld", delta);
	argv[argc++] = "EVAL";
	argv[argc++] = script_incr;
	argv[argc++] = nkeys;
	for (i = 0; i < n; i++)
		argv[argc++] = keys[i];
	argv[argc++] = d;
	argv[argc++] = (flags & STORE_REFRESH) ? "1" : "0";
	for (i = 0; i < n; i++) {
		snprintf(ttl[i], sizeof(ttl[i]), "%u", ttls[i]);
		argv[argc++] = ttl[i];
	}
	for (i = 0; i < argc; i++)
		argl[i] = strlen(argv[i]);
	if ((c = redis_acquire(rs)) == NULL)
		return STORE_ERROR;
	r = redis_check(rs, redisCommandArgv(c, (int)argc, argv, argl));
	if (r != NULL) {
		if (r->type == REDIS_REPLY_ARRAY && r->elements == n) {
			ret = STORE_OK;
			for (i = 0; i < n; i++) {
				if (r->element[i]->type != REDIS_REPLY_INTEGER) {
					ret = STORE_ERROR;
					break;
				}
				out[i] = r->element[i]->integer;
			}
		}
		freeReplyObject(r);
	}
	redis_release(rs);
	return ret;
}

static enum policy_store_status
redis_del(struct policy_store *st, const char *key)
{
	struct redis_store *rs = st->impl;
	redisContext *c = redis_acquire(rs);
	redisReply *r;
	enum policy_store_status ret = STORE_ERROR;

	if (c == NULL)
		return STORE_ERROR;
	if ((r = redis_check(rs, redisCommand(c, "DEL %s", key))) != NULL) {
		if (r->type == REDIS_REPLY_INTEGER)
			ret = r->integer > 0 ? STORE_OK : STORE_NOTFOUND;
		freeReplyObject(r);
	}
	redis_release(rs);
	return ret;
}

static enum policy_store_status
redis_purge(struct policy_store *st, unsigned long *removed)
{
	(void)st;
	*removed = 0;
	return STORE_OK;
}

static void
redis_close(struct policy_store *st)
{
	struct redis_store *rs = st->impl;

	if (rs == NULL)
		return;
	if (rs->ctx != NULL)
		redisFree(rs->ctx);
	(void)pthread_mutex_destroy(&rs->lock);
	free(rs);
	st->impl = NULL;
}

static const struct policy_store_ops redis_ops = {
	"redis", redis_get, redis_set, redis_incr, redis_del, redis_purge,
	NULL, redis_close,
};

/* redis://HOST[:PORT][/DB], HOST may be [v6]. 0 / -1. */
static int
parse_url(const char *url, struct redis_store *rs)
{
	const char *p = url + 8, *hend, *rest;
	unsigned long v;
	char *end;
	size_t hl;

	rs->port = 6379;
	rs->db = 0;
	if (*p == '[') {
		if ((hend = strchr(p, ']')) == NULL)
			return -1;
		p++;
		rest = hend + 1;
	} else {
		hend = p + strcspn(p, ":/");
		rest = hend;
	}
	hl = (size_t)(hend - p);
	if (hl == 0 || hl >= sizeof(rs->host))
		return -1;
	memcpy(rs->host, p, hl);
	rs->host[hl] = '\0';
	if (*rest == ':') {
		errno = 0;
		v = strtoul(rest + 1, &end, 10);
		if (errno || end == rest + 1 || v == 0 || v > 65535)
			return -1;
		rs->port = (int)v;
		rest = end;
	}
	if (*rest == '/' && rest[1] != '\0') {
		errno = 0;
		v = strtoul(rest + 1, &end, 10);
		if (errno || end == rest + 1 || *end != '\0' || v > 1000)
			return -1;
		rs->db = (int)v;
	} else if (*rest != '\0' && strcmp(rest, "/") != 0)
		return -1;
	return 0;
}

int
policy_store_redis_open(struct policy_store *st, const char *url,
    char *err, size_t errlen)
{
	struct redis_store *rs;

	if ((rs = calloc(1, sizeof(*rs))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (parse_url(url, rs) < 0) {
		snprintf(err, errlen, "store: bad redis URL \"%.80s\" "
		    "(redis://HOST[:PORT][/DB])", url);
		free(rs);
		return -1;
	}
	if (pthread_mutex_init(&rs->lock, NULL) != 0) {
		snprintf(err, errlen, "redis: mutex");
		free(rs);
		return -1;
	}
	/* Connect now so a wrong address shows at start-up; a Redis that is
	 * down is not fatal here (the gate may start first): log and retry
	 * on first use. */
	if (redis_connect(rs, err, errlen) < 0) {
		log_warn("store error=\"%s\" (will retry)", err);
		rs->last_fail = time(NULL);
		err[0] = '\0';
	}
	st->impl = rs;
	st->ops = &redis_ops;
	return 0;
}

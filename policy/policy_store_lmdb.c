/*
 * policy_store_lmdb.c — the embedded store backend (lmdb:PATH).
 *
 * One LMDB environment per process: PATH is the data file (MDB_NOSUBDIR,
 * PATH-lock beside it), opened with MDB_NOTLS so transactions are not tied
 * to threads, MDB_NOSYNC for speed (see policy_store.h). Each operation is
 * one transaction: reads use a read-only one, set/incr/del one write
 * transaction, so increments from many pre-forked workers are serialised
 * by LMDB's own lock and never lost.
 *
 * Value layout: 8 bytes big-endian expiry (unix seconds, 0 = never), then
 * the payload. Expired records are invisible and removed by purge (or
 * overwritten by the next set/incr).
 *
 * Spec: lmdb:PATH or lmdb:PATH?mapsize=SIZE (default 256M; the map is
 * sparse, so a large size costs only address space).
 *
 * Root: the master (gate) and tailwart-milter open the store as root
 * before they drop privileges, in a directory the service user may own.
 * Root never follows a name that user could have planted: in such a
 * directory a link, a hard link or a non-file in place of PATH or
 * PATH-lock is refused, and mdb_env_open runs with the directory owner's
 * file-system identity (setfsuid), so whatever LMDB opens is opened with
 * that user's rights. policy_store_chown works on descriptors opened with
 * O_NOFOLLOW (fstat-checked, fchown), never on a path.
 *
 * Fork rule: the handle records its pid; in a child the inherited MDB_env
 * is abandoned (never closed, never used) and a new one is opened.
 * Full map: a write that fails with MDB_MAP_FULL purges expired records
 * and retries once; MDB_MAP_RESIZED (another process grew the map) adopts
 * the new size and retries.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/fsuid.h>
#include <sys/stat.h>

#include "config.h"
#include "log.h"
#include "policy_store.h"

#define LMDB_MAPSIZE	((size_t)256 << 20)

struct lmdb_store {
	char		 path[PATH_MAX];
	size_t		 mapsize;
	MDB_env		*env;
	MDB_dbi		 dbi;
	pid_t		 pid;
	pthread_mutex_t	 lock;		/* guards reopen only */
	time_t		 last_log;	/* errors are logged once a second */
	unsigned long	 suppressed;
};

/* Open the directory of path; *base gets the file's name in it. */
static int
lmdb_dir_open(const char *path, const char **base)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');

	if (slash == NULL) {
		*base = path;
		return open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	*base = slash + 1;
	if (slash == path)
		return open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	return open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* Give dfd/name to uid:gid through a descriptor opened without following a
 * link; refuse a link, a hard link or anything but a regular file. Absent:
 * nothing to do. 0 / -1 (err). */
static int
lmdb_fchown_at(int dfd, const char *name, const char *shown, uid_t uid, gid_t gid,
    char *err, size_t errlen)
{
	struct stat st;
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "store %s: %s", shown, errno == ELOOP ?
		    "a symbolic link: refusing to touch it as root" : strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
		snprintf(err, errlen, "store %s: not a regular file with one link: "
		    "refusing to touch it as root", shown);
		(void)close(fd);	/* read-only, never written */
		return -1;
	}
	if ((st.st_uid != uid || st.st_gid != gid) && fchown(fd, uid, gid) != 0) {
		snprintf(err, errlen, "store %s: chown: %s", shown, strerror(errno));
		(void)close(fd);
		return -1;
	}
	(void)close(fd);
	return 0;
}

/* Root about to open the store: if its directory is writable by someone
 * else, check PATH and PATH-lock (no link, no hard link, a regular file;
 * one of root's from an older version goes to the directory's owner) and
 * say whose identity mdb_env_open must use (*as_uid = -1: root's own). */
static int
lmdb_root_guard(const struct lmdb_store *ls, uid_t *as_uid, gid_t *as_gid,
    char *err, size_t errlen)
{
	const char *base;
	char lockname[PATH_MAX], shown[PATH_MAX + 8];
	struct stat ds;
	int dfd, rc = 0;

	*as_uid = (uid_t)-1;
	if ((dfd = lmdb_dir_open(ls->path, &base)) < 0) {
		snprintf(err, errlen, "store %s: directory: %s", ls->path, strerror(errno));
		return -1;
	}
	if (fstat(dfd, &ds) != 0) {
		snprintf(err, errlen, "store %s: directory: %s", ls->path, strerror(errno));
		(void)close(dfd);
		return -1;
	}
	if (ds.st_uid != 0 || (ds.st_mode & (S_IWGRP | S_IWOTH))) {
		uid_t ou = ds.st_uid;
		gid_t og = ds.st_uid != 0 ? ds.st_gid : 0;
		snprintf(lockname, sizeof(lockname), "%s-lock", base);
		rc = lmdb_fchown_at(dfd, base, ls->path, ou, og, err, errlen);
		snprintf(shown, sizeof(shown), "%s-lock", ls->path);
		if (rc == 0)
			rc = lmdb_fchown_at(dfd, lockname, shown, ou, og, err, errlen);
		if (ds.st_uid != 0) {
			*as_uid = ds.st_uid;
			*as_gid = ds.st_gid;
		}
	}
	(void)close(dfd);
	return rc;
}

static int
lmdb_env_open(struct lmdb_store *ls, char *err, size_t errlen)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	int rc, dead = 0;
	uid_t as_uid = (uid_t)-1, old_uid = 0;
	gid_t as_gid = 0, old_gid = 0;

	if (geteuid() == 0 && lmdb_root_guard(ls, &as_uid, &as_gid, err, errlen) != 0)
		return -1;
	if ((rc = mdb_env_create(&env)) != 0)
		goto fail;
	if ((rc = mdb_env_set_mapsize(env, ls->mapsize)) != 0 ||
	    (rc = mdb_env_set_maxreaders(env, 1024)) != 0)
		goto fail;
	if (as_uid != (uid_t)-1) {
		/* open with the directory owner's rights (this thread only) */
		old_gid = (gid_t)setfsgid(as_gid);
		old_uid = (uid_t)setfsuid(as_uid);
		if ((uid_t)setfsuid(as_uid) != as_uid) {
			(void)setfsuid(old_uid);
			(void)setfsgid(old_gid);
			mdb_env_close(env);
			snprintf(err, errlen, "store %s: setfsuid failed", ls->path);
			return -1;
		}
	}
	rc = mdb_env_open(env, ls->path,
	    MDB_NOSUBDIR | MDB_NOTLS | MDB_NOSYNC | MDB_NORDAHEAD, 0600);
	if (as_uid != (uid_t)-1) {
		(void)setfsuid(old_uid);
		(void)setfsgid(old_gid);
	}
	if (rc != 0)
		goto fail;
	if (mdb_reader_check(env, &dead) != 0)
		dead = 0;
	if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0)
		goto fail;
	if ((rc = mdb_dbi_open(txn, NULL, 0, &ls->dbi)) != 0)
		goto fail;
	if ((rc = mdb_txn_commit(txn)) != 0) {
		txn = NULL;
		goto fail;
	}
	ls->env = env;
	ls->pid = getpid();
	return 0;
fail:
	if (txn != NULL)
		mdb_txn_abort(txn);
	if (env != NULL)
		mdb_env_close(env);
	snprintf(err, errlen, "lmdb %s: %s", ls->path, mdb_strerror(rc));
	return -1;
}

/* The environment of this process, reopening after a fork. */
static MDB_env *
lmdb_env(struct lmdb_store *ls)
{
	char err[PATH_MAX + 64];
	MDB_env *env;

	if (pthread_mutex_lock(&ls->lock) != 0)
		return NULL;
	if (ls->env != NULL && ls->pid != getpid())
		ls->env = NULL;		/* inherited across fork: abandon */
	if (ls->env == NULL && lmdb_env_open(ls, err, sizeof(err)) < 0)
		log_warn("store error=\"%s\"", err);
	env = ls->env;
	(void)pthread_mutex_unlock(&ls->lock);
	return env;
}

static void
put_expiry(unsigned char *p, time_t t)
{
	uint64_t v = (uint64_t)t;
	int i;

	for (i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)(v & 0xff);
}

static time_t
get_expiry(const unsigned char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return (time_t)v;
}

static int
live(const MDB_val *v, time_t now)
{
	time_t exp;

	if (v->mv_size < 8)
		return 0;
	exp = get_expiry(v->mv_data);
	return exp == 0 || exp > now;
}

/* A full or broken store fails every call: log once a second, with the
 * number of errors not logged. */
static void
lmdb_log(struct lmdb_store *ls, const char *op, int rc)
{
	time_t now = time(NULL);
	unsigned long suppressed;

	if (pthread_mutex_lock(&ls->lock) != 0)
		return;
	if (now == ls->last_log) {
		ls->suppressed++;
		(void)pthread_mutex_unlock(&ls->lock);
		return;
	}
	ls->last_log = now;
	suppressed = ls->suppressed;
	ls->suppressed = 0;
	(void)pthread_mutex_unlock(&ls->lock);
	log_warn("store error=\"lmdb %s %s: %s\" suppressed=%lu", ls->path, op,
	    mdb_strerror(rc), suppressed);
}

static int
txn_begin(struct lmdb_store *ls, MDB_env *env, unsigned flags, MDB_txn **txn)
{
	int rc = mdb_txn_begin(env, NULL, flags, txn);

	if (rc == MDB_MAP_RESIZED) {
		if (mdb_env_set_mapsize(env, 0) == 0)
			rc = mdb_txn_begin(env, NULL, flags, txn);
	}
	if (rc != 0)
		lmdb_log(ls, "begin", rc);
	return rc;
}

static enum policy_store_status
lmdb_get(struct policy_store *st, const char *key, void *val, size_t cap,
    size_t *len, time_t *expires)
{
	struct lmdb_store *ls = st->impl;
	MDB_env *env = lmdb_env(ls);
	MDB_txn *txn;
	MDB_val k, v;
	enum policy_store_status ret;
	int rc;

	if (env == NULL || txn_begin(ls, env, MDB_RDONLY, &txn) != 0)
		return STORE_ERROR;
	k.mv_data = (void *)key;
	k.mv_size = strlen(key);
	rc = mdb_get(txn, ls->dbi, &k, &v);
	if (rc == MDB_NOTFOUND || (rc == 0 && !live(&v, time(NULL))))
		ret = STORE_NOTFOUND;
	else if (rc != 0) {
		lmdb_log(ls, "get", rc);
		ret = STORE_ERROR;
	} else if (v.mv_size - 8 > cap) {
		ret = STORE_ERROR;
	} else {
		*len = v.mv_size - 8;
		memcpy(val, (unsigned char *)v.mv_data + 8, *len);
		if (*len < cap)
			((char *)val)[*len] = '\0';
		if (expires != NULL)
			*expires = get_expiry(v.mv_data);
		ret = STORE_OK;
	}
	mdb_txn_abort(txn);
	return ret;
}

static unsigned long purge_txn(struct lmdb_store *ls, MDB_txn *txn, time_t now,
    int *rcp);

/* One write transaction running fn; retries once after MDB_MAP_FULL. */
typedef int (*lmdb_write_fn)(struct lmdb_store *, MDB_txn *, void *);

static enum policy_store_status
lmdb_write(struct lmdb_store *ls, lmdb_write_fn fn, void *arg)
{
	MDB_env *env = lmdb_env(ls);
	MDB_txn *txn;
	int attempt, rc = 0, prc;

	if (env == NULL)
		return STORE_ERROR;
	for (attempt = 0; attempt < 2; attempt++) {
		if (txn_begin(ls, env, 0, &txn) != 0)
			return STORE_ERROR;
		if (attempt > 0) {	/* map was full: make room first */
			(void)purge_txn(ls, txn, time(NULL), &prc);
		}
		rc = fn(ls, txn, arg);
		if (rc != 0 && rc != MDB_NOTFOUND && rc != MDB_KEYEXIST) {
			mdb_txn_abort(txn);
			if (rc == MDB_MAP_FULL)
				continue;
			break;
		}
		prc = mdb_txn_commit(txn);
		if (prc == MDB_MAP_FULL)
			continue;
		if (prc != 0) {
			rc = prc;
			break;
		}
		if (rc == MDB_NOTFOUND)
			return STORE_NOTFOUND;
		if (rc == MDB_KEYEXIST)
			return STORE_EXISTS;
		return STORE_OK;
	}
	lmdb_log(ls, "write", rc == 0 ? MDB_MAP_FULL : rc);
	return STORE_ERROR;
}

struct set_arg {
	const char	*key;
	const void	*val;
	size_t		 len;
	unsigned	 ttl;
	int		 flags;
};

static int
do_set(struct lmdb_store *ls, MDB_txn *txn, void *a)
{
	struct set_arg *sa = a;
	MDB_val k, v, old;
	time_t now = time(NULL);
	int rc;

	k.mv_data = (void *)sa->key;
	k.mv_size = strlen(sa->key);
	if (sa->flags & STORE_NX) {
		rc = mdb_get(txn, ls->dbi, &k, &old);
		if (rc == 0 && live(&old, now))
			return MDB_KEYEXIST;
		if (rc != 0 && rc != MDB_NOTFOUND)
			return rc;
	}
	v.mv_size = sa->len + 8;
	v.mv_data = NULL;
	if ((rc = mdb_put(txn, ls->dbi, &k, &v, MDB_RESERVE)) != 0)
		return rc;
	put_expiry(v.mv_data, sa->ttl ? now + (time_t)sa->ttl : 0);
	if (sa->len > 0)
		memcpy((unsigned char *)v.mv_data + 8, sa->val, sa->len);
	return 0;
}

static enum policy_store_status
lmdb_set(struct policy_store *st, const char *key, const void *val,
    size_t len, unsigned ttl, int flags)
{
	struct set_arg sa = { key, val, len, ttl, flags };

	return lmdb_write(st->impl, do_set, &sa);
}

struct incr_arg {
	const char	*key;
	long long	 delta;
	unsigned	 ttl;
	int		 flags;
	long long	 result;
};

struct incr_many_arg {
	const char *const	*keys;
	size_t			 n;
	long long		 delta;
	const unsigned		*ttls;
	int			 flags;
	long long		*out;
};

static int
parse_counter(const MDB_val *v, long long *out)
{
	char buf[32];
	char *end;
	size_t n = v->mv_size - 8;

	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, (unsigned char *)v->mv_data + 8, n);
	buf[n] = '\0';
	errno = 0;
	*out = strtoll(buf, &end, 10);
	return errno != 0 || *end != '\0' ? -1 : 0;
}

static int
do_incr(struct lmdb_store *ls, MDB_txn *txn, void *a)
{
	struct incr_arg *ia = a;
	MDB_val k, v, old;
	time_t now = time(NULL), exp;
	long long cur = 0;
	char num[32];
	int rc, n;

	k.mv_data = (void *)ia->key;
	k.mv_size = strlen(ia->key);
	exp = ia->ttl ? now + (time_t)ia->ttl : 0;
	rc = mdb_get(txn, ls->dbi, &k, &old);
	if (rc == 0 && live(&old, now)) {
		if (parse_counter(&old, &cur) < 0)
			cur = 0;
		if (!(ia->flags & STORE_REFRESH))
			exp = get_expiry(old.mv_data);
	} else if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	else if (ia->delta <= 0) {	/* nothing to decrement */
		ia->result = 0;
		if (rc == 0)
			(void)mdb_del(txn, ls->dbi, &k, NULL);
		return 0;
	}
	if ((ia->delta > 0 && cur > LLONG_MAX - ia->delta) ||
	    (ia->delta < 0 && cur < LLONG_MIN - ia->delta))
		cur = ia->delta > 0 ? LLONG_MAX : 0;
	else
		cur += ia->delta;
	if (cur < 0)
		cur = 0;
	ia->result = cur;
	n = snprintf(num, sizeof(num), "%lld", cur);
	v.mv_size = (size_t)n + 8;
	v.mv_data = NULL;
	if ((rc = mdb_put(txn, ls->dbi, &k, &v, MDB_RESERVE)) != 0)
		return rc;
	put_expiry(v.mv_data, exp);
	memcpy((unsigned char *)v.mv_data + 8, num, (size_t)n);
	return 0;
}

static int
do_incr_many(struct lmdb_store *ls, MDB_txn *txn, void *a)
{
	struct incr_many_arg *ma = a;
	size_t i;
	int rc;

	for (i = 0; i < ma->n; i++) {
		struct incr_arg ia = { ma->keys[i], ma->delta, ma->ttls[i],
		    ma->flags, 0 };
		if ((rc = do_incr(ls, txn, &ia)) != 0)
			return rc;
		ma->out[i] = ia.result;
	}
	return 0;
}

static enum policy_store_status
lmdb_incr(struct policy_store *st, const char *const *keys, size_t n,
    long long delta, const unsigned *ttls, int flags, long long *out)
{
	struct incr_many_arg ma = { keys, n, delta, ttls, flags, out };

	return lmdb_write(st->impl, do_incr_many, &ma);
}

static int
do_del(struct lmdb_store *ls, MDB_txn *txn, void *a)
{
	MDB_val k;

	k.mv_data = a;
	k.mv_size = strlen(a);
	return mdb_del(txn, ls->dbi, &k, NULL);
}

static enum policy_store_status
lmdb_del(struct policy_store *st, const char *key)
{
	return lmdb_write(st->impl, do_del, (void *)key);
}

static unsigned long
purge_txn(struct lmdb_store *ls, MDB_txn *txn, time_t now, int *rcp)
{
	MDB_cursor *cur;
	MDB_val k, v;
	unsigned long n = 0;
	int rc;

	if ((*rcp = mdb_cursor_open(txn, ls->dbi, &cur)) != 0)
		return 0;
	rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	while (rc == 0) {
		if (!live(&v, now)) {
			if ((rc = mdb_cursor_del(cur, 0)) != 0)
				break;
			n++;
		}
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	*rcp = rc == MDB_NOTFOUND ? 0 : rc;
	return n;
}

/* Purge in batches of PURGE_BATCH scanned records per write transaction,
 * so the writer lock is never held for a whole scan of a big store. */
#define PURGE_BATCH	2000

struct purge_arg {
	unsigned long	 n;
	time_t		 now;
	unsigned char	 resume[512];	/* first key of the next batch */
	size_t		 resume_len;	/* 0: start at the beginning */
	int		 done;
};

static int
do_purge(struct lmdb_store *ls, MDB_txn *txn, void *a)
{
	struct purge_arg *pa = a;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc, scanned = 0;

	if ((rc = mdb_cursor_open(txn, ls->dbi, &cur)) != 0)
		return rc;
	if (pa->resume_len > 0) {
		k.mv_data = pa->resume;
		k.mv_size = pa->resume_len;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	} else
		rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	while (rc == 0 && scanned++ < PURGE_BATCH) {
		if (!live(&v, pa->now)) {
			if ((rc = mdb_cursor_del(cur, 0)) != 0)
				break;
			pa->n++;
		}
		/* after a delete LMDB's cursor rests on the following record
		 * and MDB_NEXT returns it (C_DEL), so nothing is skipped */
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	if (rc == 0 && k.mv_size <= sizeof(pa->resume)) {
		memcpy(pa->resume, k.mv_data, k.mv_size);
		pa->resume_len = k.mv_size;
	} else if (rc == MDB_NOTFOUND) {
		pa->done = 1;
		rc = 0;
	} else if (rc == 0)
		pa->done = 1;	/* a key too long to resume from: stop here */
	mdb_cursor_close(cur);
	return rc;
}

static enum policy_store_status
lmdb_purge(struct policy_store *st, unsigned long *removed)
{
	struct lmdb_store *ls = st->impl;
	struct purge_arg pa;
	enum policy_store_status s = STORE_OK;
	MDB_env *env;
	int batches = 0;

	memset(&pa, 0, sizeof(pa));
	pa.now = time(NULL);
	while (!pa.done && s == STORE_OK && batches++ < 1000000)
		s = lmdb_write(ls, do_purge, &pa);
	*removed = pa.n;
	if (s == STORE_OK && (env = lmdb_env(ls)) != NULL &&
	    mdb_env_sync(env, 1) != 0)
		s = STORE_ERROR;
	return s;
}

static int
lmdb_chown(struct policy_store *st, uid_t uid, gid_t gid, char *err,
    size_t errlen)
{
	struct lmdb_store *ls = st->impl;
	char lock[PATH_MAX + 8], lockname[PATH_MAX];
	const char *base;
	int dfd, rc;

	if ((dfd = lmdb_dir_open(ls->path, &base)) < 0) {
		snprintf(err, errlen, "store %s: directory: %s", ls->path, strerror(errno));
		return -1;
	}
	snprintf(lock, sizeof(lock), "%s-lock", ls->path);
	snprintf(lockname, sizeof(lockname), "%s-lock", base);
	rc = lmdb_fchown_at(dfd, base, ls->path, uid, gid, err, errlen);
	if (rc == 0)
		rc = lmdb_fchown_at(dfd, lockname, lock, uid, gid, err, errlen);
	(void)close(dfd);
	return rc;
}

static void
lmdb_close(struct policy_store *st)
{
	struct lmdb_store *ls = st->impl;

	if (ls == NULL)
		return;
	if (ls->env != NULL && ls->pid == getpid()) {
		(void)mdb_env_sync(ls->env, 1);
		mdb_env_close(ls->env);
	}
	(void)pthread_mutex_destroy(&ls->lock);
	free(ls);
	st->impl = NULL;
}

static const struct policy_store_ops lmdb_ops = {
	"lmdb", lmdb_get, lmdb_set, lmdb_incr, lmdb_del, lmdb_purge, lmdb_chown,
	lmdb_close,
};

int
policy_store_lmdb_open(struct policy_store *st, const char *path,
    char *err, size_t errlen)
{
	struct lmdb_store *ls;

	const char *q = strstr(path, "?mapsize="), *why = NULL;
	size_t plen = q ? (size_t)(q - path) : strlen(path), msize = LMDB_MAPSIZE;

	if (plen == 0 || plen >= sizeof(ls->path)) {
		snprintf(err, errlen, "lmdb: bad path");
		return -1;
	}
	if (q != NULL && (conf_parse_size(q + 9, &msize, &why) < 0 ||
	    msize < 32768)) {
		snprintf(err, errlen, "lmdb: bad mapsize: %s",
		    why ? why : "at least 32K");
		return -1;
	}
	if ((ls = calloc(1, sizeof(*ls))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(ls->path, path, plen);
	ls->path[plen] = '\0';
	ls->mapsize = msize;
	if (pthread_mutex_init(&ls->lock, NULL) != 0) {
		free(ls);
		snprintf(err, errlen, "lmdb: mutex");
		return -1;
	}
	if (lmdb_env_open(ls, err, errlen) < 0) {
		(void)pthread_mutex_destroy(&ls->lock);
		free(ls);
		return -1;
	}
	st->impl = ls;
	st->ops = &lmdb_ops;
	return 0;
}

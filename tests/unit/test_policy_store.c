/*
 * test_policy_store.c — the LMDB store backend: get/set/NX/incr/expiry/
 * purge/del, values across fork (each process its own env), concurrent
 * increments from several processes. (Redis is covered by
 * tests/integration/30-policy-store.sh against a real redis-server.)
 */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "policy_store.h"
#include "unit.h"

static struct policy_store *
open_tmp(char *dir, size_t len)
{
	struct policy_store *st = NULL;
	char spec[300], err[256];

	snprintf(dir, len, "/tmp/twstoreXXXXXX");
	if (mkdtemp(dir) == NULL)
		return NULL;
	snprintf(spec, sizeof(spec), "lmdb:%s/db", dir);
	if (policy_store_open(spec, "t:", &st, err, sizeof(err)) < 0) {
		fprintf(stderr, "open: %s\n", err);
		return NULL;
	}
	return st;
}

TEST(bad_spec)
{
	struct policy_store *st;
	char err[256];

	EXPECT_INT(policy_store_open("memcache://x", NULL, &st, err, sizeof(err)), -1);
	EXPECT(strstr(err, "lmdb:PATH") != NULL);
	EXPECT_INT(policy_store_open("redis://", NULL, &st, err, sizeof(err)), -1);
	EXPECT_INT(policy_store_open("redis://h:99999/1", NULL, &st, err, sizeof(err)), -1);
	EXPECT_INT(policy_store_open("redis://h:6379/x", NULL, &st, err, sizeof(err)), -1);
	EXPECT_INT(policy_store_open("lmdb:/nonexistent/dir/db", NULL, &st, err, sizeof(err)), -1);
}

TEST(set_get_del)
{
	char dir[64], buf[64];
	size_t len = 0;
	time_t exp = 1;
	struct policy_store *st = open_tmp(dir, sizeof(dir));

	EXPECT(st != NULL);
	EXPECT_STR(policy_store_kind(st), "lmdb");
	EXPECT_INT(policy_store_get(st, "k", buf, sizeof(buf), &len, NULL), STORE_NOTFOUND);
	EXPECT_INT(policy_store_set(st, "k", "hello", 5, 0, 0), STORE_OK);
	EXPECT_INT(policy_store_get(st, "k", buf, sizeof(buf), &len, &exp), STORE_OK);
	EXPECT_INT(len, 5);
	EXPECT_STR(buf, "hello");
	EXPECT_INT(exp, 0);
	EXPECT_INT(policy_store_set(st, "k", "x", 1, 0, STORE_NX), STORE_EXISTS);
	EXPECT_INT(policy_store_set(st, "k2", "x", 1, 100, STORE_NX), STORE_OK);
	EXPECT_INT(policy_store_get(st, "k2", buf, sizeof(buf), &len, &exp), STORE_OK);
	EXPECT(exp >= time(NULL) + 99 && exp <= time(NULL) + 100);
	EXPECT_INT(policy_store_get(st, "k", buf, 3, &len, NULL), STORE_ERROR);
	EXPECT_INT(policy_store_chown(st, getuid(), getgid(), (char[64]){0}, 64), 0);
	EXPECT_INT(policy_store_del(st, "k"), STORE_OK);
	EXPECT_INT(policy_store_del(st, "k"), STORE_NOTFOUND);
	EXPECT_INT(policy_store_get(st, "k", buf, sizeof(buf), &len, NULL), STORE_NOTFOUND);
	policy_store_close(st);
}

TEST(incr_clamp)
{
	char dir[64];
	long long v = -1;
	struct policy_store *st = open_tmp(dir, sizeof(dir));

	EXPECT_INT(policy_store_incr(st, "c", -1, 60, 0, &v), STORE_OK);
	EXPECT_INT(v, 0);
	EXPECT_INT(policy_store_incr(st, "c", 1, 60, 0, &v), STORE_OK);
	EXPECT_INT(v, 1);
	EXPECT_INT(policy_store_incr(st, "c", 5, 60, 0, &v), STORE_OK);
	EXPECT_INT(v, 6);
	EXPECT_INT(policy_store_incr(st, "c", -10, 60, 0, &v), STORE_OK);
	EXPECT_INT(v, 0);
	policy_store_close(st);
}

TEST(incr_many)
{
	char dir[64];
	const char *keys[3] = { "a", "b", "c" };
	unsigned ttls[3] = { 60, 0, 1 };
	long long v[3] = { -1, -1, -1 };
	time_t exp;
	char buf[16];
	struct policy_store *st = open_tmp(dir, sizeof(dir));

	EXPECT_INT(policy_store_incr(st, "b", 5, 0, 0, NULL), STORE_OK);
	EXPECT_INT(policy_store_incr_many(st, keys, 3, 2, ttls, 0, v), STORE_OK);
	EXPECT_INT(v[0], 2);
	EXPECT_INT(v[1], 7);
	EXPECT_INT(v[2], 2);
	EXPECT_INT(policy_store_get(st, "a", buf, sizeof(buf), NULL, &exp), STORE_OK);
	EXPECT(exp > time(NULL) + 50);
	EXPECT_INT(policy_store_incr_many(st, keys, 3, -3, ttls, 0, v), STORE_OK);
	EXPECT_INT(v[0], 0);
	EXPECT_INT(v[1], 4);
	EXPECT_INT(policy_store_incr_many(st, keys, STORE_MULTI_MAX + 1, 1, ttls, 0, v),
	    STORE_ERROR);
	EXPECT_INT(policy_store_incr_many(st, keys, 0, 1, ttls, 0, v), STORE_OK);
	policy_store_close(st);
}

TEST(expiry_and_purge)
{
	char dir[64], buf[16];
	long long v;
	unsigned long removed = 9;
	struct policy_store *st = open_tmp(dir, sizeof(dir));

	EXPECT_INT(policy_store_set(st, "a", "1", 1, 1, 0), STORE_OK);
	EXPECT_INT(policy_store_incr(st, "b", 3, 1, 0, &v), STORE_OK);
	EXPECT_INT(policy_store_set(st, "keep", "1", 1, 0, 0), STORE_OK);
	sleep(2);
	EXPECT_INT(policy_store_get(st, "a", buf, sizeof(buf), NULL, NULL), STORE_NOTFOUND);
	/* an expired counter starts over */
	EXPECT_INT(policy_store_incr(st, "b", 1, 60, 0, &v), STORE_OK);
	EXPECT_INT(v, 1);
	EXPECT_INT(policy_store_set(st, "a", "2", 1, 0, STORE_NX), STORE_OK);
	EXPECT_INT(policy_store_set(st, "z", "1", 1, 1, 0), STORE_OK);
	sleep(2);
	EXPECT_INT(policy_store_purge(st, &removed), STORE_OK);
	EXPECT_INT(removed, 1);
	EXPECT_INT(policy_store_get(st, "keep", buf, sizeof(buf), NULL, NULL), STORE_OK);
	policy_store_close(st);
}

/* Many consecutive expired records, live ones between, more than one
 * purge batch: every expired one goes, every live one stays. */
TEST(purge_batches)
{
	char dir[64], key[32], buf[16];
	unsigned long removed = 0;
	int i, live = 0;
	struct policy_store *st = open_tmp(dir, sizeof(dir));

	for (i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "p%05d", i);
		EXPECT_INT(policy_store_set(st, key, "x", 1, i % 7 == 0 ? 0 : 1, 0),
		    STORE_OK);
	}
	sleep(2);
	EXPECT_INT(policy_store_purge(st, &removed), STORE_OK);
	for (i = 0; i < 5000; i++)
		if (i % 7 != 0)
			live++;
	EXPECT_INT(removed, live);
	for (i = 0; i < 5000; i += 7) {
		snprintf(key, sizeof(key), "p%05d", i);
		EXPECT_INT(policy_store_get(st, key, buf, sizeof(buf), NULL, NULL),
		    STORE_OK);
	}
	EXPECT_INT(policy_store_purge(st, &removed), STORE_OK);
	EXPECT_INT(removed, 0);
	policy_store_close(st);
}

TEST(refresh_keeps_counter_alive)
{
	char dir[64], buf[32];
	time_t exp;
	long long v;
	struct policy_store *st = open_tmp(dir, sizeof(dir));

	EXPECT_INT(policy_store_incr(st, "cc", 1, 10, STORE_REFRESH, &v), STORE_OK);
	EXPECT_INT(policy_store_incr(st, "cc", 1, 1000, STORE_REFRESH, &v), STORE_OK);
	EXPECT_INT(policy_store_get(st, "cc", buf, sizeof(buf), NULL, &exp), STORE_OK);
	EXPECT(exp > time(NULL) + 900);
	EXPECT_INT(policy_store_incr(st, "cc", 1, 5, 0, &v), STORE_OK);
	EXPECT_INT(policy_store_get(st, "cc", buf, sizeof(buf), NULL, &exp), STORE_OK);
	EXPECT(exp > time(NULL) + 900);	/* no REFRESH: expiry kept */
	EXPECT_STR(buf, "3");
	policy_store_close(st);
}

/* The parent opens, forks 4 children that each use the inherited handle
 * (so each must open its own env) for 200 increments. */
TEST(fork_concurrent_incr)
{
	char dir[64];
	long long v = 0;
	int i, st_ok = 1;
	struct policy_store *st = open_tmp(dir, sizeof(dir));

	EXPECT_INT(policy_store_incr(st, "n", 1, 0, 0, &v), STORE_OK);
	for (i = 0; i < 4; i++) {
		pid_t pid = fork();
		if (pid == 0) {
			int k, bad = 0;
			for (k = 0; k < 200; k++)
				if (policy_store_incr(st, "n", 1, 0, 0, NULL) != STORE_OK)
					bad = 1;
			_exit(bad);
		}
	}
	for (i = 0; i < 4; i++) {
		int ws;
		if (wait(&ws) < 0 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0)
			st_ok = 0;
	}
	EXPECT(st_ok);
	EXPECT_INT(policy_store_incr(st, "n", 0, 0, 0, &v), STORE_OK);
	EXPECT_INT(v, 801);
	policy_store_close(st);
}

/* The milter shares one handle between its threads. */
static void *
thread_incr(void *arg)
{
	struct policy_store *st = arg;
	long bad = 0;
	int k;

	for (k = 0; k < 300; k++)
		if (policy_store_incr(st, "t", 1, 0, 0, NULL) != STORE_OK)
			bad++;
	return (void *)bad;
}

TEST(threads_share_handle)
{
	char dir[64];
	pthread_t th[8];
	long long v = 0;
	void *ret;
	int i;
	struct policy_store *st = open_tmp(dir, sizeof(dir));

	for (i = 0; i < 8; i++)
		EXPECT_INT(pthread_create(&th[i], NULL, thread_incr, st), 0);
	for (i = 0; i < 8; i++) {
		EXPECT_INT(pthread_join(th[i], &ret), 0);
		EXPECT_INT((long)ret, 0);
	}
	EXPECT_INT(policy_store_incr(st, "t", 0, 0, 0, &v), STORE_OK);
	EXPECT_INT(v, 2400);
	policy_store_close(st);
}

TEST(long_key)
{
	char dir[64], key[600];
	struct policy_store *st = open_tmp(dir, sizeof(dir));

	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	EXPECT_INT(policy_store_set(st, key, "1", 1, 0, 0), STORE_ERROR);
	policy_store_close(st);
}

/* A tiny map fills up: sets fail with STORE_ERROR (never a crash), and
 * once entries expire a write purges them and succeeds again. */
TEST(map_full)
{
	char dir[64], spec[300], err[256], key[32], val[1000];
	struct policy_store *st = NULL;
	int i, full = -1, fails;

	snprintf(dir, sizeof(dir), "/tmp/twstoreXXXXXX");
	EXPECT(mkdtemp(dir) != NULL);
	snprintf(spec, sizeof(spec), "lmdb:%s/db?mapsize=64K", dir);
	EXPECT_INT(policy_store_open(spec, NULL, &st, err, sizeof(err)), 0);
	memset(val, 'v', sizeof(val));
	for (i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		if (policy_store_set(st, key, val, sizeof(val), 3, 0) != STORE_OK) {
			full = i;
			break;
		}
	}
	EXPECT(full > 0);
	for (i = 0, fails = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "more%d", i);
		if (policy_store_set(st, key, val, sizeof(val), 0, 0) == STORE_ERROR)
			fails++;
	}
	EXPECT(fails > 10);
	sleep(4);	/* the k* entries expire: writes purge and succeed */
	for (i = 0; i < 5; i++) {
		snprintf(key, sizeof(key), "again%d", i);
		EXPECT_INT(policy_store_set(st, key, val, sizeof(val), 0, 0), STORE_OK);
	}
	EXPECT_INT(policy_store_get(st, "again4", val, sizeof(val), NULL, NULL), STORE_OK);
	policy_store_close(st);
	EXPECT_INT(policy_store_open("lmdb:/tmp/x?mapsize=1", NULL, &st, err, sizeof(err)), -1);
}

int
main(void)
{
	RUN(bad_spec);
	RUN(set_get_del);
	RUN(incr_clamp);
	RUN(incr_many);
	RUN(expiry_and_purge);
	RUN(purge_batches);
	RUN(refresh_keeps_counter_alive);
	RUN(fork_concurrent_incr);
	RUN(threads_share_handle);
	RUN(long_key);
	RUN(map_full);
	return unit_done();
}

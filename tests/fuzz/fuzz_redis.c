/*
 * fuzz_redis — libFuzzer target for the Redis store's reply handling
 * (policy/policy_store_redis.c through policy_store.c): the input is
 * everything a Redis server answers — to SELECT, then to get, set NX,
 * incr_many, incr, del and get again — in RESP. No Redis: in
 * policy_store_redis.c only, redisConnectWithTimeout() is replaced (a
 * macro) by redisConnectFd() on a socketpair whose other end already holds
 * the input, shut for writing. The bytes also go through a bare hiredis
 * reader (redisReaderFeed / redisReaderGetReply).
 *
 * Contract checked: no crash, leak or hang; every call returns a status of
 * the enum; a value got fits the caller's buffer. (What the numbers mean
 * is Redis's business: the Lua scripts clamp counters there.)
 *
 * Built and run by `make fuzz` (see tests/fuzz/README.md).
 */
#include <hiredis/hiredis.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "fuzz.h"

static const uint8_t *fz_rdata;
static size_t fz_rlen;
static int fz_peer = -1;	/* the server's end: open until the store closes */

static redisContext *
fuzz_redis_connect(const char *host, int port, const struct timeval tv)
{
	int sv[2], sz = 1 << 20;
	size_t off = 0;

	(void)host;
	(void)port;
	(void)tv;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		abort();
	(void)setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	(void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	while (off < fz_rlen) {
		ssize_t n = write(sv[1], fz_rdata + off, fz_rlen - off);
		if (n <= 0)
			abort();
		off += (size_t)n;
	}
	/* the server has said everything; what the client sends stays in
	 * the socket buffer until the server end is closed */
	if (shutdown(sv[1], SHUT_WR) != 0)
		abort();
	fz_rdata = NULL;	/* one connection per input */
	fz_rlen = 0;
	if (fz_peer >= 0)
		close(fz_peer);
	fz_peer = sv[1];
	return redisConnectFd(sv[0]);
}

#define redisConnectWithTimeout fuzz_redis_connect
#include "../../policy/policy_store_redis.c"
#undef redisConnectWithTimeout

static void
fuzz_status(enum policy_store_status s)
{
	if (getenv("FUZZ_DEBUG") != NULL)
		fprintf(stderr, "status %d\n", (int)s);
	if (s != STORE_OK && s != STORE_NOTFOUND && s != STORE_EXISTS && s != STORE_ERROR)
		abort();
}

static void
fuzz_reader(const uint8_t *data, size_t size)
{
	redisReader *r = redisReaderCreate();
	void *reply;
	int n = 0;

	if (r == NULL)
		abort();
	if (redisReaderFeed(r, (const char *)data, size) == REDIS_OK)
		while (n++ < 1000 && redisReaderGetReply(r, &reply) == REDIS_OK && reply != NULL)
			freeReplyObject(reply);
	redisReaderFree(r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const keys[] = { "rate:conn:192.0.2.1", "rate:msg:192.0.2.1" };
	static const unsigned ttls[] = { 60, 3600 };
	struct policy_store *st = NULL;
	char err[256], val[64];
	size_t len = 0;
	time_t exp = 0;
	long long out[2] = { 0, 0 }, one = 0;
	enum policy_store_status s;

	fuzz_once();
	if (size > 65536)
		return 0;
	fuzz_reader(data, size);
	fz_rdata = data;
	fz_rlen = size;
	if (policy_store_open("redis://127.0.0.1:6379/3", "tw:", &st, err, sizeof(err)) != 0)
		abort();
	s = policy_store_get(st, "grey:a", val, sizeof(val), &len, &exp);
	fuzz_status(s);
	if (s == STORE_OK && len > sizeof(val))
		abort();
	fuzz_status(policy_store_set(st, "grey:b", "1", 1, 300, STORE_NX));
	fuzz_status(policy_store_incr_many(st, keys, 2, 1, ttls, STORE_REFRESH, out));
	fuzz_status(policy_store_incr(st, "conc:192.0.2.1", -1, 3600, 0, &one));
	fuzz_status(policy_store_del(st, "grey:b"));
	fuzz_status(policy_store_get(st, "dnsbl:x", val, 4, &len, NULL));
	policy_store_close(st);
	if (fz_peer >= 0)
		close(fz_peer);
	fz_peer = -1;
	fz_rdata = NULL;
	fz_rlen = 0;
	return 0;
}

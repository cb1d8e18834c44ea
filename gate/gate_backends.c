/*
 * gate_backends — the list of backend addresses, the order one hand-off
 * tries them in, and their passive health (see gate_backends.h).
 *
 * Health rule: an address that failed backend_fail_max times in a row
 * (no connect, no banner in time, a banner other than 220) is skipped for
 * backend_backoff; when that ends, the next hand-off tries it again: a
 * success brings it back (state=up), a failure skips it again for twice the
 * last back-off, up to backend_backoff_max. The board lives in memory the
 * master shares with its children; every field is changed with atomics, and
 * the compare-and-swap winner of a change of state is the one that logs it.
 */
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "gate.h"
#include "gate_backends.h"
#include "gate_metrics.h"
#include "log.h"

#define LD(p)		__atomic_load_n((p), __ATOMIC_RELAXED)
#define ST(p, v)	__atomic_store_n((p), (v), __ATOMIC_RELAXED)

static int
add_addr(struct gate_backend_list *l, const char *host, const char *port)
{
	struct gate_backend_addr *a;

	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->v[i].ep.host, host) && !strcmp(l->v[i].ep.port, port))
			return 0;	/* named twice: used once */
	if (l->n >= GATE_BACKENDS_MAX)
		return -1;
	a = &l->v[l->n++];
	memset(a, 0, sizeof(*a));
	snprintf(a->ep.host, sizeof(a->ep.host), "%s", host);
	snprintf(a->ep.port, sizeof(a->ep.port), "%s", port);
	snprintf(a->name, sizeof(a->name), strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
	return 0;
}

/* Every address of ep's name; a name that does not resolve now is kept
 * as it is (resolved at connect time, as a single backend always was). */
static int
resolve(const struct net_endpoint *ep, struct gate_backend_list *l)
{
	struct addrinfo hints, *res = NULL, *ai;
	char host[INET6_ADDRSTRLEN];
	int rc = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(ep->host, ep->port, &hints, &res) != 0 || res == NULL) {
		log_warn("backend=%s:%s resolve=failed (tried again at each connect)",
		    ep->host, ep->port);
		return add_addr(l, ep->host, ep->port);
	}
	for (ai = res; ai != NULL && rc == 0; ai = ai->ai_next) {
		struct sockaddr_storage ss;
		if (ai->ai_addrlen > sizeof(ss))
			continue;
		memset(&ss, 0, sizeof(ss));
		memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
		if (net_addr_str(&ss, host, sizeof(host), NULL) == 0)
			rc = add_addr(l, host, ep->port);
	}
	freeaddrinfo(res);
	return rc;
}

int
gate_backends_parse(const char *s, char sep, struct gate_backend_list *l, const char **why)
{
	char item[300];

	l->n = 0;
	while (*s) {
		const char *end = strchr(s, sep);
		size_t len = end ? (size_t)(end - s) : strlen(s);
		struct net_endpoint ep;

		while (len > 0 && (*s == ' ' || *s == '\t'))
			s++, len--;
		while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
		if (len == 0 || len >= sizeof(item)) {
			*why = len ? "address too long" : "empty item in the list";
			return -1;
		}
		memcpy(item, s, len);
		item[len] = '\0';
		if (net_parse_endpoint(item, &ep, why) != 0)
			return -1;
		if (resolve(&ep, l) != 0) {
			*why = "too many addresses (64 at most)";
			return -1;
		}
		if (end == NULL)
			break;
		s = end + 1;
	}
	if (l->n == 0) {
		*why = "no address";
		return -1;
	}
	return 0;
}

void
gate_backends_bind(struct gate_backend_board *b, struct gate_backend_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		size_t k, free_k = GATE_BACKENDS_MAX;
		for (k = 0; k < GATE_BACKENDS_MAX; k++) {
			if (!strcmp(b->v[k].key, l->v[i].name))
				break;
			if (b->v[k].key[0] == '\0' && free_k == GATE_BACKENDS_MAX)
				free_k = k;
		}
		if (k == GATE_BACKENDS_MAX) {
			/* a new address: a free slot, or (board full after many
			 * reloads) the oldest one recycled */
			k = free_k < GATE_BACKENDS_MAX ? free_k : i;
			memset(&b->v[k], 0, sizeof(b->v[k]));
			snprintf(b->v[k].key, sizeof(b->v[k].key), "%s", l->v[i].name);
		}
		l->v[i].slot = (unsigned)k;
	}
}

/* Open hand-offs per board slot, summed over the holders. */
void
gate_backends_count(const struct gate_backend_board *b, unsigned *cnt)
{
	unsigned n = LD(&b->holders);

	memset(cnt, 0, GATE_BACKENDS_MAX * sizeof(*cnt));
	if (n > GATE_BACKENDS_HOLDERS)
		n = GATE_BACKENDS_HOLDERS;
	for (unsigned h = 0; h < n; h++) {
		unsigned v = LD(&b->held[h]);
		if (v > 0 && v <= GATE_BACKENDS_MAX)
			cnt[v - 1]++;
	}
}

size_t
gate_backends_plan(struct gate_backend_board *b, const struct gate_backend_list *l,
    const struct gate_backend_rule *r, unsigned *order)
{
	size_t n = 0, start = 0, best = 0;
	long long now = gate_now_ms(), best_until = 0;

	if (l->n == 0)
		return 0;
	if (b != NULL && r->policy != GBP_FAILOVER)
		start = (size_t)(__atomic_fetch_add(&b->rr, 1, __ATOMIC_RELAXED) % l->n);
	for (size_t j = 0; j < l->n; j++) {
		size_t i = (start + j) % l->n;
		long long until = b ? LD(&b->v[l->v[i].slot].down_until_ms) : 0;
		if (until > now) {
			if (best_until == 0 || until < best_until)
				best_until = until, best = i;
			continue;
		}
		order[n++] = (unsigned)i;
	}
	if (n == 0) {
		order[n++] = (unsigned)best;
		return n;
	}
	if (b != NULL && r->policy == GBP_LEAST_SESSIONS) {
		unsigned cnt[GATE_BACKENDS_MAX];
		gate_backends_count(b, cnt);
		for (size_t j = 1; j < n; j++)	/* stable: ties keep the rotation */
			for (size_t k = j; k > 0 && cnt[l->v[order[k]].slot] <
			    cnt[l->v[order[k - 1]].slot]; k--) {
				unsigned t = order[k];
				order[k] = order[k - 1];
				order[k - 1] = t;
			}
	}
	return n;
}

void
gate_backends_result(struct gate_backend_board *b, const struct gate_backend_addr *a,
    const struct gate_backend_rule *r, int ok)
{
	struct gate_backend_state *st;
	long long now, until, bo, nb;
	unsigned zero = 0, one = 1;

	if (b == NULL)
		return;
	gate_metric_backend_result(a->slot, ok);
	st = &b->v[a->slot];
	if (ok) {
		if (LD(&st->fails) != 0)
			ST(&st->fails, 0);
		if (__atomic_compare_exchange_n(&st->down, &one, 0, 0, __ATOMIC_RELAXED,
		    __ATOMIC_RELAXED)) {
			ST(&st->backoff_ms, 0);
			ST(&st->down_until_ms, 0);
			log_info("backend=%s state=up", a->name);
		}
		return;
	}
	if (__atomic_add_fetch(&st->fails, 1, __ATOMIC_RELAXED) < r->fail_max)
		return;
	now = gate_now_ms();
	until = LD(&st->down_until_ms);
	if (until > now)
		return;		/* already skipped: another process noticed first */
	bo = LD(&st->backoff_ms);
	nb = bo ? bo * 2 : (long long)r->backoff_s * 1000;
	if (nb > (long long)r->backoff_max_s * 1000)
		nb = (long long)r->backoff_max_s * 1000;
	if (!__atomic_compare_exchange_n(&st->down_until_ms, &until, now + nb, 0,
	    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		return;
	ST(&st->backoff_ms, nb);
	if (__atomic_compare_exchange_n(&st->down, &zero, 1, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		log_warn("backend=%s state=down fails=%u backoff=%llds", a->name,
		    LD(&st->fails), nb / 1000);
	else
		log_debug("backend=%s still down backoff=%llds", a->name, nb / 1000);
}

void
gate_backends_hold(struct gate_backend_board *b, unsigned h, unsigned slot)
{
	unsigned n;

	if (b == NULL || h >= GATE_BACKENDS_HOLDERS || slot >= GATE_BACKENDS_MAX)
		return;
	ST(&b->held[h], (unsigned char)(slot + 1));
	n = LD(&b->holders);
	while (n < h + 1 && !__atomic_compare_exchange_n(&b->holders, &n, h + 1, 0,
	    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;	/* n reloaded by the failed exchange */
}

void
gate_backends_release(struct gate_backend_board *b, unsigned h)
{
	if (b != NULL && h < GATE_BACKENDS_HOLDERS)
		ST(&b->held[h], 0);
}

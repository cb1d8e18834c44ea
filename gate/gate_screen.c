/*
 * gate_screen — the one event-loop process between the listeners and the
 * workers (postscreen's role). For every connection it:
 *   1. reads the inbound PROXY header when the peer is a trusted proxy;
 *   2. applies the connection-stage checks to the real client IP: access
 *      lists, per-IP/per-network connection rate and concurrency, the
 *      weighted DNSBL/DNSWL score (all zones in parallel through c-ares,
 *      without blocking other connections);
 *   3. runs the pregreet test: a "220-" teaser, then pregreet_wait of
 *      silence; a client that talks first is refused;
 *   4. sends the final "220 " greeting and waits, cheaply, for the
 *      client's first command;
 *   5. passes the socket, the verdict and the bytes already read to an
 *      idle worker over a unix socket (SCM_RIGHTS). When no worker is idle
 *      it answers 421 4.3.2 instead of queueing without bound.
 * A client that passed is remembered in the store for screen_cache_ttl
 * (postscreen's temporary allowlist) and skips DNSBL and pregreet next time.
 * Thousands of idle or hostile connections cost the screen a slot each and
 * never occupy a worker. The connections are watched with epoll (one
 * registration each, so a wake-up costs what is ready, not what is held);
 * the listeners and the resolver's few sockets with poll, beside it.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "gate.h"
#include "gate_metrics.h"
#include "log.h"
#include "proxy.h"

enum sc_state { SC_PROXY, SC_CHECKS, SC_WAIT_CMD };

/* How long a client that spoke may wait for a worker when all are busy. */
#define GATE_SCREEN_BUSY_WAIT_MS	3000

struct sc_conn {
	enum sc_state		 state;
	int			 fd;
	struct sockaddr_storage	 peer, local;
	char			 ip[64];
	char			 id[11];
	long long		 started_ms;
	long long		 deadline_ms;	/* of the current state */
	long long		 pregreet_end_ms; /* 0 = no pregreet test */
	int			 dnsbl_pending;
	int			 flags;		/* GATE_PASS_* */
	int			 cached;	/* passed before: no dnsbl/pregreet */
	int			 dead;		/* closed; freed once the DNSBL callback ran */
	long long		 busy_until_ms;	/* waiting for an idle worker until then */
	struct policy_dnsbl_lookup *lk;	/* owned until finished */
	unsigned char		 buf[GATE_PASS_BYTES];
	size_t			 blen;
};

struct screen {
	struct gate_runtime	*rt;
	const struct gate_settings *cfg;
	struct sc_conn		**conns;
	size_t			 max, live;
	unsigned long long	 seq;
	unsigned		 idbase;	/* per screen process: ids stay unique across reloads */
	size_t			 hi;		/* slots [hi, max) are all free */
	size_t			 board;		/* scoreboard slots worth scanning */
	int			 ep;		/* epoll: the held connections, by slot */
};

static void
sc_send(struct sc_conn *c, const char *line)
{
	/* greeting-sized replies on a fresh socket: one non-blocking send;
	 * a client that does not read them is not worth waiting for */
	if (send(c->fd, line, strlen(line), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_debug("%s screen send: %s", c->id, strerror(errno));
}

static void
sc_close(struct screen *sc, struct sc_conn **slot, const char *why, int rate_release)
{
	struct sc_conn *c = *slot;

	if (why != NULL)
		log_info("%s screen client=%s status=closed reason=%s duration_ms=%lld", c->id, c->ip,
		    why, gate_now_ms() - c->started_ms);
	if (c->lk != NULL) {
		struct policy_result r;
		(void)policy_dnsbl_finish(c->lk, &r, NULL);
		c->lk = NULL;
	}
	if (rate_release && (c->flags & GATE_PASS_RATE_OWED) && sc->rt->store != NULL)
		(void)policy_rate_disconnect(&sc->cfg->policy.rate, sc->rt->store, &c->peer);
	c->flags &= ~GATE_PASS_RATE_OWED;
	if (c->fd >= 0) {
		/* out of the epoll set first: a socket passed to a worker
		 * stays open there, and would go on waking us */
		(void)epoll_ctl(sc->ep, EPOLL_CTL_DEL, c->fd, NULL);
		(void)close(c->fd);
	}
	c->fd = -1;
	if (c->dnsbl_pending) {
		c->dead = 1;	/* the resolver still holds a pointer to c */
		return;
	}
	free(c);
	*slot = NULL;
	sc->live--;
}

static void
sc_refuse(struct screen *sc, struct sc_conn **slot, const struct policy_result *r,
    const char *stage, const char *def)
{
	char line[600], buf[1200];
	struct sc_conn *c = *slot;

	log_info("%s policy stage=%s client=%s %s", c->id, stage, c->ip,
	    policy_result_format(r, buf, sizeof(buf)));
	gate_metric_refused_policy(r);
	if (policy_result_reply(r, line, sizeof(line) - 2) != 0)
		snprintf(line, sizeof(line) - 2, "%s", def);
	strcat(line, "\r\n");
	sc_send(c, line);
	sc_close(sc, slot, NULL, 1);
}

static int
idle_workers(const struct screen *sc)
{
	int n = 0;

	/* idle workers, and workers still starting (they will read the pass
	 * socket within moments: after a reload, for instance). The master
	 * hands out the lowest free slots, so the old and the new generation
	 * fit in the first `board` slots; one is enough. */
	for (size_t i = 0; i < sc->board; i++) {
		unsigned char st = __atomic_load_n(&sc->rt->scoreboard[i], __ATOMIC_RELAXED);
		if (st == 'I' || st == 'S')
			return ++n;
	}
	return n;
}

static void
sc_cache_key(const struct sc_conn *c, char *key, size_t len)
{
	snprintf(key, len, "s:%s", c->ip);
}

/* Hand the connection to an idle worker. */
static void
sc_pass(struct screen *sc, struct sc_conn **slot)
{
	struct sc_conn *c = *slot;
	struct gate_pass p;
	struct msghdr msg;
	struct iovec iov;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct cmsghdr *cmsg;

	if (idle_workers(sc) == 0) {
		/* every worker is busy: wait a little (the master grows the pool
		 * up to workers_max), then refuse rather than queue unbounded */
		if (c->busy_until_ms == 0) {
			struct epoll_event e = { .events = 0,
			    .data.u64 = (uint64_t)(slot - sc->conns) };

			c->busy_until_ms = gate_now_ms() + GATE_SCREEN_BUSY_WAIT_MS;
			/* not read while it waits (sc_tick retries the hand-off) */
			(void)epoll_ctl(sc->ep, EPOLL_CTL_MOD, c->fd, &e);
		}
		if (gate_now_ms() < c->busy_until_ms)
			return;
		log_info("%s screen client=%s status=busy reply=\"421 4.3.2\"", c->id, c->ip);
		gate_metric_refused(GMR_BUSY);
		sc_send(c, "421 4.3.2 All server ports are busy, try again later\r\n");
		sc_close(sc, slot, NULL, 1);
		return;
	}
	memset(&p, 0, sizeof(p));
	p.magic = GATE_PASS_MAGIC;
	p.flags = (unsigned)c->flags;
	p.peer = c->peer;
	p.local = c->local;
	memcpy(p.id, c->id, sizeof(p.id));
	memcpy(p.bytes, c->buf, c->blen);
	p.nbytes = (unsigned)c->blen;
	memset(&msg, 0, sizeof(msg));
	memset(&cm, 0, sizeof(cm));
	iov.iov_base = &p;
	iov.iov_len = sizeof(p);
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cm.buf;
	msg.msg_controllen = sizeof(cm.buf);
	cmsg = CMSG_FIRSTHDR(&msg);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &c->fd, sizeof(int));
	if (sendmsg(sc->rt->pass_fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)sizeof(p)) {
		log_warn("%s screen client=%s status=busy reason=\"pass: %s\" reply=\"421 4.3.2\"",
		    c->id, c->ip, strerror(errno));
		gate_metric_refused(GMR_BUSY);
		sc_send(c, "421 4.3.2 All server ports are busy, try again later\r\n");
		sc_close(sc, slot, NULL, 1);
		return;
	}
	if (!c->cached && !(c->flags & (GATE_PASS_ALLOW | GATE_PASS_DNSWL)) &&
	    sc->rt->store != NULL && sc->cfg->screen_cache_ttl > 0) {
		char key[128];
		sc_cache_key(c, key, sizeof(key));
		(void)policy_store_set(sc->rt->store, key, "1", 1, sc->cfg->screen_cache_ttl, 0);
	}
	log_debug("%s screen client=%s status=passed flags=%x bytes=%zu", c->id, c->ip, c->flags,
	    c->blen);
	/* the worker owns the session (and the concurrency slot) now */
	c->flags &= ~GATE_PASS_RATE_OWED;
	sc_close(sc, slot, NULL, 0);
}

static int sc_dnsbl_eval(struct screen *sc, struct sc_conn **slot);

static void
sc_greet(struct screen *sc, struct sc_conn *c)
{
	char line[400];

	snprintf(line, sizeof(line), "220 %s ESMTP tailwart\r\n", sc->cfg->hostname);
	sc_send(c, line);
	c->flags |= GATE_PASS_GREETED;
	c->state = SC_WAIT_CMD;
	c->deadline_ms = gate_now_ms() + (long long)sc->cfg->timeout_command * 1000;
}

static void
sc_dnsbl_done(void *arg, struct policy_dnsbl_lookup *lk)
{
	struct sc_conn *c = arg;

	c->lk = lk;
	c->dnsbl_pending = 0;
}

/* Connection-stage checks that need no waiting; then start the DNSBL
 * lookup and the pregreet timer. */
static void
sc_checks(struct screen *sc, struct sc_conn **slot)
{
	const struct policy_config *pc = &sc->cfg->policy;
	struct sc_conn *c = *slot;
	struct policy_result r;
	enum policy_verdict v;
	char key[128], val[8];
	size_t vlen;

	(void)net_addr_str(&c->peer, c->ip, sizeof(c->ip), NULL);
	policy_result_init(&r, "access");
	v = policy_access_check(&pc->access, &c->peer, &r);
	gate_metric_policy(&r);
	if (v == POLICY_REJECT || v == POLICY_TEMPFAIL) {
		sc_refuse(sc, slot, &r, "connect", "554 5.7.1 Access denied");
		return;
	}
	if (v == POLICY_ALLOW)
		c->flags |= GATE_PASS_ALLOW;
	if (sc->rt->store != NULL) {
		policy_result_init(&r, "rate");
		v = policy_rate_connect(&pc->rate, sc->rt->store, &c->peer, &r);
		gate_metric_policy(&r);
		if (v == POLICY_REJECT || v == POLICY_TEMPFAIL) {
			sc_refuse(sc, slot, &r, "connect", "421 4.7.0 Too many connections");
			return;
		}
		c->flags |= GATE_PASS_RATE_OWED;
		sc_cache_key(c, key, sizeof(key));
		if (!(c->flags & GATE_PASS_ALLOW) && sc->cfg->screen_cache_ttl > 0 &&
		    policy_store_get(sc->rt->store, key, val, sizeof(val), &vlen, NULL) == STORE_OK)
			c->cached = 1;
	}
	c->state = SC_CHECKS;
	c->deadline_ms = gate_now_ms() + (long long)sc->cfg->timeout_command * 1000;
	if (!(c->flags & GATE_PASS_ALLOW) && !c->cached && pc->dnsbl.nzones > 0 &&
	    pc->dnsbl.mode != POLICY_IGNORE && sc->rt->dns != NULL) {
		c->dnsbl_pending = 1;
		if (policy_dnsbl_start(&pc->dnsbl, sc->rt->dns, sc->rt->store, &c->peer,
		    sc_dnsbl_done, c) != 0)
			c->dnsbl_pending = 0;
		/* a cached answer is there at once: a listed client is refused
		 * now, before any teaser or wait */
		if (!c->dnsbl_pending && sc_dnsbl_eval(sc, slot) != 0)
			return;
	}
	if (!(c->flags & GATE_PASS_ALLOW) && !c->cached && sc->cfg->pregreet_action != 0) {
		char line[400];
		snprintf(line, sizeof(line), "220-%s ESMTP tailwart\r\n", sc->cfg->hostname);
		sc_send(c, line);
		c->pregreet_end_ms = gate_now_ms() + (long long)sc->cfg->pregreet_wait * 1000;
	}
}

/* The DNSBL lookup finished: log and act on its verdict. 0 to go on, -1
 * when the connection was refused (and closed). */
static int
sc_dnsbl_eval(struct screen *sc, struct sc_conn **slot)
{
	struct sc_conn *c = *slot;
	struct policy_result r;
	enum policy_verdict v;
	int score = 0;

	if (c->lk == NULL)
		return 0;
	policy_result_init(&r, "dnsbl");
	v = policy_dnsbl_finish(c->lk, &r, &score);
	c->lk = NULL;
	gate_metric_policy(&r);
	if (r.decided != POLICY_PASS && r.decided != POLICY_SKIP) {
		char buf[1200];
		log_info("%s policy stage=connect client=%s %s", c->id, c->ip,
		    policy_result_format(&r, buf, sizeof(buf)));
	}
	if (v == POLICY_REJECT || v == POLICY_TEMPFAIL) {
		char line[600];
		gate_metric_refused(GMR_DNSBL);
		if (policy_result_reply(&r, line, sizeof(line) - 2) != 0)
			snprintf(line, sizeof(line), "554 5.7.1 Service unavailable");
		strcat(line, "\r\n");
		sc_send(c, line);
		sc_close(sc, slot, NULL, 1);
		return -1;
	}
	if (v == POLICY_ALLOW)
		c->flags |= GATE_PASS_DNSWL;
	return 0;
}

/* Called when nothing more is pending for a connection in SC_CHECKS. A
 * client that already talked (no pregreet test was pending, or its action
 * only logs) has its command in our buffer and waits for our answer: pass
 * it on at once rather than wait for bytes that will not come. */
static void
sc_checks_done(struct screen *sc, struct sc_conn **slot)
{
	if (sc_dnsbl_eval(sc, slot) != 0)
		return;
	sc_greet(sc, *slot);
	if ((*slot)->blen > 0)
		sc_pass(sc, slot);
}

/* Client bytes arrived. */
static void
sc_readable(struct screen *sc, struct sc_conn **slot)
{
	struct sc_conn *c = *slot;
	ssize_t n;

	if (c->state == SC_PROXY) {
		const char *why = NULL;
		size_t used = 0;
		int closed = 0;

		switch (gate_inproxy_feed(c->fd, c->buf, &c->blen, &c->peer, &c->local, &used,
		    &why, &closed)) {
		case PROXY_NEED_MORE:
			return;
		case PROXY_BAD:
			if (!closed)
				log_warn("%s proxy client=%s status=refused reason=\"%s\"", c->id, c->ip, why);
			gate_metric_refused(GMR_PROXY);
			sc_close(sc, slot, closed ? "closed-before-proxy-header" : "bad-proxy-header", 0);
			return;
		case PROXY_OK:
			break;
		}
		/* anything after the header is a client that talked first */
		memmove(c->buf, c->buf + used, c->blen - used);
		c->blen -= used;
		sc_checks(sc, slot);
		if (*slot != NULL && c->blen > 0 && c->pregreet_end_ms > 0) {
			n = 0;
			goto pregreet;
		}
		return;
	}
	n = recv(c->fd, c->buf + c->blen, sizeof(c->buf) - c->blen, MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		sc_close(sc, slot, c->state == SC_CHECKS ? "lost-during-screen" : "lost-before-command", 1);
		return;
	}
	if (n < 0)
		return;
	c->blen += (size_t)n;
	if (c->state == SC_WAIT_CMD) {
		/* the client spoke: its first bytes go to the worker with it */
		sc_pass(sc, slot);
		return;
	}
	if (c->pregreet_end_ms == 0) {
		/* talked early without a pregreet test: keep the bytes, the
		 * session will answer them in order */
		if (c->blen >= sizeof(c->buf))
			sc_close(sc, slot, "too-much-before-greeting", 1);
		return;
	}
pregreet:
	{
		struct policy_result r;
		policy_result_init(&r, "pregreet");
		policy_result_set(&r, POLICY_REJECT, 554, "5.5.1",
		    "Protocol error: you talked before the greeting");
		policy_result_detail(&r, "bytes=%zu", c->blen);
		gate_metric_policy(&r);
		if (policy_result_mode(&r, (enum policy_mode)sc->cfg->pregreet_action) == POLICY_PASS) {
			char buf[1200];
			log_info("%s policy stage=connect client=%s %s", c->id, c->ip,
			    policy_result_format(&r, buf, sizeof(buf)));
			c->pregreet_end_ms = 0;	/* logged once; keep the bytes */
			return;
		}
		sc_refuse(sc, slot, &r, "connect", "554 5.5.1 Protocol error");
	}
}

static void
sc_accept(struct screen *sc, const struct gate_listener *l)
{
	for (int burst = 0; burst < 64; burst++) {
		struct sockaddr_storage peer;
		socklen_t sl = sizeof(peer);
		struct sc_conn *c;
		size_t slot;
		int fd;

		memset(&peer, 0, sizeof(peer));
		fd = accept4(l->fd, (struct sockaddr *)&peer, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0)
			return;
		for (slot = 0; slot < sc->max && sc->conns[slot] != NULL; slot++)
			;
		c = slot < sc->max ? calloc(1, sizeof(*c)) : NULL;
		if (c == NULL) {
			(void)send(fd, "421 4.3.2 Too many connections, try again later\r\n", 49,
			    MSG_DONTWAIT | MSG_NOSIGNAL);
			(void)close(fd);
			log_warn("screen status=full reply=\"421 4.3.2\"");
			gate_metric_refused(GMR_FULL);
			continue;
		}
		c->fd = fd;
		c->peer = peer;
		c->started_ms = gate_now_ms();
		snprintf(c->id, sizeof(c->id), "%02X%08llX", sc->idbase,
		    ++sc->seq & 0xffffffffULL);
		sl = sizeof(c->local);
		if (getsockname(fd, (struct sockaddr *)&c->local, &sl) != 0) {
			(void)close(fd);
			free(c);
			continue;
		}
		net_unmap(&c->peer);
		net_unmap(&c->local);
		(void)net_addr_str(&c->peer, c->ip, sizeof(c->ip), NULL);
		sc->conns[slot] = c;
		sc->live++;
		gate_metric_accepted();
		if (slot >= sc->hi)
			sc->hi = slot + 1;
		{
			struct epoll_event e = { .events = EPOLLIN, .data.u64 = slot };
			if (epoll_ctl(sc->ep, EPOLL_CTL_ADD, fd, &e) != 0) {
				log_warn("%s screen epoll: %s", c->id, strerror(errno));
				sc_close(sc, &sc->conns[slot], "no-resources", 0);
				continue;
			}
		}
		if (sc->cfg->trusted_proxies.n > 0 &&
		    net_cidr_list_match(&sc->cfg->trusted_proxies, &c->peer)) {
			c->state = SC_PROXY;
			c->deadline_ms = gate_now_ms() + (long long)sc->cfg->timeout_proxy * 1000;
		} else
			sc_checks(sc, &sc->conns[slot]);
	}
}

/* Deadlines and completed checks. */
static void
sc_tick(struct screen *sc)
{
	long long now = gate_now_ms();

	for (size_t i = 0; i < sc->hi; i++) {
		struct sc_conn *c = sc->conns[i];

		if (c == NULL)
			continue;
		if (c->dead) {
			if (!c->dnsbl_pending)
				sc_close(sc, &sc->conns[i], NULL, 0);
			continue;
		}
		if (c->busy_until_ms != 0) {
			sc_pass(sc, &sc->conns[i]);	/* retry the hand-off */
			continue;
		}
		if (c->state == SC_CHECKS && !c->dnsbl_pending && c->lk != NULL &&
		    sc_dnsbl_eval(sc, &sc->conns[i]) != 0)
			continue;	/* listed: refused without waiting for pregreet */
		if (c->state == SC_CHECKS && !c->dnsbl_pending &&
		    (c->pregreet_end_ms == 0 || now >= c->pregreet_end_ms)) {
			sc_checks_done(sc, &sc->conns[i]);
			continue;
		}
		if (now >= c->deadline_ms) {
			if (c->state == SC_WAIT_CMD) {
				char line[400];
				snprintf(line, sizeof(line), "421 4.4.2 %s Error: timeout exceeded\r\n",
				    sc->cfg->hostname);
				sc_send(c, line);
			}
			sc_close(sc, &sc->conns[i], c->state == SC_PROXY ? "proxy-timeout" : "timeout", 1);
		}
	}
}

void
gate_screen_main(struct gate_runtime *rt)
{
	struct screen sc;
	struct pollfd *pfd;
	size_t npfd;
	long long stop_deadline = 0, next_purge = gate_now_ms() + 60000;
	char err[256];

	memset(&sc, 0, sizeof(sc));
	sc.rt = rt;
	sc.cfg = rt->cfg;
	sc.idbase = (unsigned)(getpid() & 0xff);
	sc.board = (size_t)rt->cfg->workers_max * 3 + 16;
	if (sc.board > GATE_MAX_CHILDREN)
		sc.board = GATE_MAX_CHILDREN;
	{
		/* session ids: a random start, so a restart does not repeat ids */
		unsigned char r[4];
		if (getrandom(r, sizeof(r), 0) == (ssize_t)sizeof(r))
			sc.seq = ((unsigned long long)r[0] << 24 | (unsigned)r[1] << 16 |
			    (unsigned)r[2] << 8 | r[3]) & 0x0fffffffULL;
	}
	sc.max = (size_t)rt->cfg->screen_max_connections;
	sc.conns = calloc(sc.max, sizeof(*sc.conns));
	npfd = rt->cfg->nlisteners + 16 + 1;
	pfd = calloc(npfd, sizeof(*pfd));
	if (sc.conns == NULL || pfd == NULL)
		fatal("out of memory");
	if ((sc.ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		fatal("epoll: %s", strerror(errno));
	gate_child_signals();
	if (rt->cfg->policy.dnsbl.nzones > 0 &&
	    policy_dns_open(rt->cfg->policy.resolver, rt->cfg->policy.dns_timeout_ms,
	    rt->cfg->policy.dns_tries, &rt->dns, err, sizeof(err)) != 0) {
		log_warn("screen resolver %s: %s (DNSBL checks skipped)", rt->cfg->policy.resolver, err);
		rt->dns = NULL;
	}

	for (;;) {
		size_t n = 0, nl, ndns = 0;
		int timeout = 200;

		if (gate_sig_term && stop_deadline == 0) {
			stop_deadline = gate_now_ms() + (long long)rt->cfg->drain_timeout * 1000;
			for (size_t i = 0; i < rt->cfg->nlisteners; i++)
				if (rt->cfg->listeners[i].fd >= 0) {
					(void)close(rt->cfg->listeners[i].fd);
					rt->cfg->listeners[i].fd = -1;
				}
		}
		if (gate_sig_term && (sc.live == 0 || gate_now_ms() > stop_deadline))
			break;
		if (!gate_sig_term)
			for (size_t i = 0; i < rt->cfg->nlisteners; i++)
				if (rt->cfg->listeners[i].kind == LISTEN_SMTP && rt->cfg->listeners[i].fd >= 0) {
					pfd[n].fd = rt->cfg->listeners[i].fd;
					pfd[n].events = POLLIN;
					n++;
				}
		nl = n;
		if (rt->dns != NULL) {
			ndns = (size_t)policy_dns_fds(rt->dns, pfd + n, 16);
			n += ndns;
			timeout = policy_dns_timeout_ms(rt->dns, 200);
			if (timeout < 0 || timeout > 200)
				timeout = 200;
		}
		while (sc.hi > 0 && sc.conns[sc.hi - 1] == NULL)
			sc.hi--;
		pfd[n].fd = sc.ep;	/* the held connections, all behind one fd */
		pfd[n].events = POLLIN;
		n++;
		if (poll(pfd, n, timeout) < 0 && errno != EINTR)
			fatal("poll: %s", strerror(errno));
		if (rt->dns != NULL)
			policy_dns_process(rt->dns, pfd + nl, (int)ndns);
		if (pfd[n - 1].revents & POLLIN) {
			struct epoll_event ev[256];
			int ne = epoll_wait(sc.ep, ev, 256, 0);

			for (int k = 0; k < ne; k++) {
				size_t i = (size_t)ev[k].data.u64;
				struct sc_conn *c = i < sc.max ? sc.conns[i] : NULL;

				if (c != NULL && !c->dead && c->busy_until_ms == 0 && c->fd >= 0)
					sc_readable(&sc, &sc.conns[i]);
			}
		}
		for (size_t i = 0; i < nl; i++)
			if (pfd[i].revents & POLLIN)
				for (size_t j = 0; j < rt->cfg->nlisteners; j++)
					if (rt->cfg->listeners[j].fd == pfd[i].fd)
						sc_accept(&sc, &rt->cfg->listeners[j]);
		sc_tick(&sc);
		gate_metric_screen_held(sc.live);
		if (rt->store != NULL && gate_now_ms() >= next_purge) {
			/* the store's expired entries: the screen is the one
			 * long-lived process that can afford it */
			unsigned long removed = 0;
			next_purge = gate_now_ms() + 600000;
			if (policy_store_purge(rt->store, &removed) != STORE_OK)
				log_warn("store purge failed");
			else if (removed > 0)
				log_info("store purge removed=%lu", removed);
		}
	}
	for (size_t i = 0; i < sc.max; i++)
		if (sc.conns[i] != NULL && !sc.conns[i]->dead)
			sc_close(&sc, &sc.conns[i], "shutdown", 1);
	if (rt->dns != NULL)
		policy_dns_close(rt->dns);	/* runs pending callbacks */
	for (size_t i = 0; i < sc.max; i++)
		if (sc.conns[i] != NULL)
			sc_close(&sc, &sc.conns[i], NULL, 0);
	if (rt->store != NULL)
		policy_store_close(rt->store);
	free(sc.conns);
	free(pfd);
	(void)close(sc.ep);
	exit(0);
}

/*
 * gate_passthrough — pass-through listeners (465, 587, 143, 993): accept,
 * read an inbound PROXY header when the peer is a trusted proxy, connect to
 * the listener's backend, write one PROXY v2 header carrying the client's
 * address, then splice bytes both ways (with half-close) until both sides
 * are done. One event-loop process serves every pass-through connection, so
 * long IMAP sessions never occupy an SMTP worker. Bounded by
 * passthrough_max_connections and passthrough_max_per_ip (counted on the
 * real client address, after a trusted PROXY header); every buffer is
 * fixed-size. A connection with no byte moved for passthrough_idle_timeout
 * is closed; once one side has closed and what it sent was delivered, the
 * other side has PT_LINGER_MS to finish, then the slot is freed (a peer that
 * keeps its half open cannot hold a slot for ever).
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gate.h"
#include "log.h"
#include "proxy.h"

#define PT_BUF	16384
#define PT_LINGER_MS	5000	/* after one side closed */

enum pt_state { PT_PROXY, PT_CONNECTING, PT_SPLICE };

struct pt_dir {
	char	buf[PT_BUF];
	size_t	off, len;
	int	eof;		/* reader saw EOF */
	int	shut;		/* writer side shut down */
};

struct pt_conn {
	enum pt_state		 state;
	int			 cfd, bfd;
	const struct gate_listener *l;
	struct sockaddr_storage	 peer, local;
	long long		 deadline_ms;	/* PROXY wait / connect */
	long long		 active_ms;	/* splice: last byte moved */
	long long		 linger_ms;	/* splice: one side closed; 0 = none */
	struct pt_dir		 c2b, b2c;
	char			 ip[64];
	unsigned		 order[GATE_BACKENDS_MAX];	/* targets to try, in turn */
	size_t			 norder, tried;
};

static void
pt_close(struct pt_conn **slot, const char *why)
{
	struct pt_conn *c = *slot;

	log_info("passthrough client=%s listener=%s:%s status=closed reason=%s",
	    c->ip, c->l->addr.host, c->l->addr.port, why);
	if (c->cfd >= 0)
		(void)close(c->cfd);
	if (c->bfd >= 0)
		(void)close(c->bfd);
	free(c);
	*slot = NULL;
}

/* The target being tried failed: note it, drop its socket. */
static void
pt_next_target(struct pt_conn *c, const struct gate_runtime *rt, const char *why)
{
	const struct gate_backend_addr *a = &c->l->targets.v[c->order[c->tried - 1]];

	gate_backends_result(rt->backends, a, &rt->cfg->be_rule, 0);
	if (c->tried < c->norder)
		log_info("passthrough client=%s listener=%s:%s backend=%s status=unavailable reason=\"%s\"",
		    c->ip, c->l->addr.host, c->l->addr.port, a->name, why);
	if (c->bfd >= 0)
		(void)close(c->bfd);
	c->bfd = -1;
}

/* Start a non-blocking connect to the next target of the plan (made at
 * the first call). 0, or -1 when every target failed. */
static int
pt_start_connect(struct pt_conn *c, const struct gate_runtime *rt)
{
	const struct gate_backend_list *tl = &c->l->targets;

	if (c->tried == 0 && c->norder == 0)
		c->norder = gate_backends_plan(rt->backends, tl, &rt->cfg->be_rule, c->order);
	while (c->tried < c->norder) {
		const struct gate_backend_addr *a = &tl->v[c->order[c->tried++]];
		struct addrinfo hints, *res = NULL;
		int r;

		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_NUMERICSERV;
		if (getaddrinfo(a->ep.host, a->ep.port, &hints, &res) != 0 || res == NULL) {
			gate_backends_result(rt->backends, a, &rt->cfg->be_rule, 0);
			continue;
		}
		c->bfd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		r = c->bfd < 0 ? -1 : connect(c->bfd, res->ai_addr, res->ai_addrlen);
		freeaddrinfo(res);
		if (r != 0 && errno != EINPROGRESS) {
			pt_next_target(c, rt, strerror(errno));
			continue;
		}
		c->state = PT_CONNECTING;
		c->deadline_ms = gate_now_ms() + (long long)rt->cfg->backend_connect_timeout * 1000;
		return 0;
	}
	return -1;
}

static int
pt_send_header(struct pt_conn *c)
{
	struct proxy_info pi;
	unsigned char hdr[PROXY_MAX_HEADER];
	ssize_t n, w;

	memset(&pi, 0, sizeof(pi));
	gate_inproxy_pair(&pi, &c->peer, &c->local);
	n = proxy_v2_encode(&pi, hdr, sizeof(hdr));
	if (n < 0)
		return -1;
	w = send(c->bfd, hdr, (size_t)n, MSG_NOSIGNAL);
	return w == n ? 0 : -1;
}

/* Move bytes for one direction. Returns -1 on a hard error; sets *moved
 * when a byte went through. */
static int
pt_pump(int from, int to, struct pt_dir *d, short rev_from, short rev_to, int *moved)
{
	if ((rev_from & (POLLIN | POLLHUP | POLLERR)) && d->len == 0 && !d->eof) {
		ssize_t n = recv(from, d->buf, sizeof(d->buf), MSG_DONTWAIT);
		if (n > 0) {
			d->off = 0;
			d->len = (size_t)n;
			*moved = 1;
		} else if (n == 0)
			d->eof = 1;
		else if (errno != EAGAIN && errno != EINTR)
			return -1;
	}
	if (d->len > 0 && (rev_to & POLLOUT)) {
		ssize_t n = send(to, d->buf + d->off, d->len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			d->off += (size_t)n;
			d->len -= (size_t)n;
			*moved = 1;
		} else if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
	}
	if (d->eof && d->len == 0 && !d->shut) {
		(void)shutdown(to, SHUT_WR);
		d->shut = 1;
	}
	return 0;
}

/* Connections from this client address already in the table. */
static unsigned long long
pt_count_ip(struct pt_conn *const *conns, size_t max, const struct pt_conn *c)
{
	unsigned long long n = 0;

	for (size_t i = 0; i < max; i++)
		if (conns[i] != NULL && conns[i] != c && conns[i]->state != PT_PROXY &&
		    strcmp(conns[i]->ip, c->ip) == 0)
			n++;
	return n;
}

/* The real client is known: admit it under its per-IP cap and start the
 * backend connection, or close the slot. */
static void
pt_admit(const struct gate_runtime *rt, struct pt_conn **conns, size_t max, size_t i)
{
	struct pt_conn *c = conns[i];

	if (pt_count_ip(conns, max, c) >= rt->cfg->passthrough_max_per_ip) {
		log_warn("passthrough client=%s listener=%s:%s status=refused reason=too-many-from-ip max=%llu",
		    c->ip, c->l->addr.host, c->l->addr.port, rt->cfg->passthrough_max_per_ip);
		pt_close(&conns[i], "too-many-from-ip");
		return;
	}
	if (pt_start_connect(c, rt) != 0)
		pt_close(&conns[i], "backend-unreachable");
}

static void
pt_accept(const struct gate_runtime *rt, const struct gate_listener *l,
    struct pt_conn **conns, size_t max)
{
	for (int burst = 0; burst < 64; burst++) {
		struct sockaddr_storage peer;
		socklen_t sl = sizeof(peer);
		struct pt_conn *c;
		size_t slot;
		int fd = accept4(l->fd, (struct sockaddr *)&peer, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0)
			return;
		for (slot = 0; slot < max && conns[slot] != NULL; slot++)
			;
		c = slot < max ? calloc(1, sizeof(*c)) : NULL;
		if (c == NULL) {
			log_warn("passthrough listener=%s:%s status=refused reason=too-many-connections",
			    l->addr.host, l->addr.port);
			(void)close(fd);
			continue;
		}
		c->cfd = fd;
		c->bfd = -1;
		c->l = l;
		c->peer = peer;
		sl = sizeof(c->local);
		if (getsockname(fd, (struct sockaddr *)&c->local, &sl) != 0) {
			(void)close(fd);
			free(c);
			continue;
		}
		net_unmap(&c->peer);
		net_unmap(&c->local);
		(void)net_addr_str(&c->peer, c->ip, sizeof(c->ip), NULL);
		conns[slot] = c;
		if (rt->cfg->trusted_proxies.n > 0 &&
		    net_cidr_list_match(&rt->cfg->trusted_proxies, &c->peer)) {
			c->state = PT_PROXY;
			c->deadline_ms = gate_now_ms() + (long long)rt->cfg->timeout_proxy * 1000;
		} else
			pt_admit(rt, conns, max, slot);
	}
}

static void
pt_proxy_step(const struct gate_runtime *rt, struct pt_conn **conns, size_t max, size_t i)
{
	struct pt_conn **slot = &conns[i], *c = *slot;
	struct pt_dir *d = &c->c2b;
	const char *why = NULL;
	size_t used = 0;
	int closed = 0;

	/* read (not peek) into the client-to-backend buffer: bytes after the
	 * header stay there and are forwarded once the backend is connected */
	switch (gate_inproxy_feed(c->cfd, (unsigned char *)d->buf, &d->len, &c->peer, &c->local,
	    &used, &why, &closed)) {
	case PROXY_NEED_MORE:
		return;
	case PROXY_BAD:
		if (!closed)
			log_warn("passthrough client=%s status=refused reason=\"%s\"", c->ip, why);
		pt_close(slot, closed ? "closed-before-proxy-header" : "bad-proxy-header");
		return;
	case PROXY_OK:
		break;
	}
	d->off = used;
	d->len -= used;
	(void)net_addr_str(&c->peer, c->ip, sizeof(c->ip), NULL);
	pt_admit(rt, conns, max, i);
}

void
gate_passthrough_main(struct gate_runtime *rt)
{
	const struct gate_settings *cfg = rt->cfg;
	size_t max = (size_t)cfg->passthrough_max_connections;
	struct pt_conn **conns = calloc(max, sizeof(*conns));
	struct pollfd *pfd = calloc(max * 2 + cfg->nlisteners, sizeof(*pfd));
	long long stop_deadline = 0;

	if (conns == NULL || pfd == NULL)
		fatal("out of memory");
	gate_child_signals();

	for (;;) {
		size_t n = 0, live = 0;
		long long now = gate_now_ms();

		if (gate_sig_term && stop_deadline == 0) {
			stop_deadline = now + (long long)cfg->drain_timeout * 1000;
			for (size_t i = 0; i < cfg->nlisteners; i++)
				if (cfg->listeners[i].fd >= 0) {
					(void)close(cfg->listeners[i].fd);
					cfg->listeners[i].fd = -1;
				}
		}
		if (!gate_sig_term)
			for (size_t i = 0; i < cfg->nlisteners; i++)
				if (cfg->listeners[i].kind == LISTEN_PASSTHROUGH && cfg->listeners[i].fd >= 0) {
					pfd[n].fd = cfg->listeners[i].fd;
					pfd[n].events = POLLIN;
					n++;
				}
		size_t nl = n;
		for (size_t i = 0; i < max; i++) {
			struct pt_conn *c = conns[i];
			if (c == NULL)
				continue;
			live++;
			if (c->state == PT_CONNECTING && now > c->deadline_ms) {
				pt_next_target(c, rt, "connect timeout");
				if (pt_start_connect(c, rt) != 0) {
					pt_close(&conns[i], "connect-timeout");
					live--;
					continue;
				}
			}
			if (c->state != PT_SPLICE && now > c->deadline_ms) {
				pt_close(&conns[i], c->state == PT_PROXY ? "proxy-timeout" : "connect-timeout");
				live--;
				continue;
			}
			if (c->state == PT_SPLICE &&
			    (now - c->active_ms > (long long)cfg->passthrough_idle_timeout * 1000 ||
			    (c->linger_ms != 0 && now > c->linger_ms))) {
				pt_close(&conns[i], c->linger_ms != 0 ? "half-closed" : "idle-timeout");
				live--;
				continue;
			}
			pfd[n].fd = c->cfd;
			pfd[n].events = 0;
			pfd[n + 1].fd = c->bfd;
			pfd[n + 1].events = 0;
			if (c->state == PT_PROXY)
				pfd[n].events = POLLIN;
			else if (c->state == PT_CONNECTING)
				pfd[n + 1].events = POLLOUT;
			else {
				if (c->c2b.len == 0 && !c->c2b.eof)
					pfd[n].events |= POLLIN;
				if (c->b2c.len == 0 && !c->b2c.eof)
					pfd[n + 1].events |= POLLIN;
				if (c->c2b.len > 0)
					pfd[n + 1].events |= POLLOUT;
				if (c->b2c.len > 0)
					pfd[n].events |= POLLOUT;
			}
			if (c->bfd < 0)
				pfd[n + 1].fd = -1;
			n += 2;
		}
		if (gate_sig_term && (live == 0 || now > stop_deadline))
			break;
		if (poll(pfd, n, 500) < 0) {
			if (errno == EINTR)
				continue;
			fatal("poll: %s", strerror(errno));
		}
		for (size_t i = 0; i < nl; i++)
			if (pfd[i].revents & POLLIN)
				for (size_t j = 0; j < cfg->nlisteners; j++)
					if (cfg->listeners[j].fd == pfd[i].fd)
						pt_accept(rt, &cfg->listeners[j], conns, max);
		size_t k = nl;
		for (size_t i = 0; i < max && k < n; i++) {
			struct pt_conn *c = conns[i];
			short rc, rb;
			if (c == NULL)
				continue;
			if (pfd[k].fd != c->cfd) {
				/* slot filled by an accept in this round: next round */
				continue;
			}
			rc = pfd[k].revents;
			rb = pfd[k + 1].revents;
			k += 2;
			if (c->state == PT_PROXY) {
				if (rc)
					pt_proxy_step(rt, conns, max, i);
				continue;
			}
			if (c->state == PT_CONNECTING) {
				int err = 0;
				socklen_t sl = sizeof(err);
				if (!rb)
					continue;
				if (getsockopt(c->bfd, SOL_SOCKET, SO_ERROR, &err, &sl) != 0 || err != 0 ||
				    pt_send_header(c) != 0) {
					pt_next_target(c, rt, strerror(err ? err : errno));
					if (pt_start_connect(c, rt) != 0)
						pt_close(&conns[i], "backend-unreachable");
					continue;
				}
				gate_backends_result(rt->backends, &c->l->targets.v[c->order[c->tried - 1]],
				    &rt->cfg->be_rule, 1);
				c->state = PT_SPLICE;
				c->active_ms = gate_now_ms();
				log_info("passthrough client=%s listener=%s:%s backend=%s status=connected",
				    c->ip, c->l->addr.host, c->l->addr.port,
				    c->l->targets.v[c->order[c->tried - 1]].name);
				continue;
			}
			{
				int moved = 0;
				if (pt_pump(c->cfd, c->bfd, &c->c2b, rc, rb, &moved) != 0 ||
				    pt_pump(c->bfd, c->cfd, &c->b2c, rb, rc, &moved) != 0) {
					pt_close(&conns[i], "error");
					continue;
				}
				if (moved)
					c->active_ms = gate_now_ms();
			}
			if (c->c2b.shut && c->b2c.shut)
				pt_close(&conns[i], "done");
			else if ((c->c2b.shut || c->b2c.shut) && c->linger_ms == 0)
				c->linger_ms = gate_now_ms() + PT_LINGER_MS;
		}
	}
	free(conns);
	free(pfd);
	exit(0);
}

/*
 * gate_worker — one pre-forked worker: wait for a connection, serve one
 * session, report idle/busy to the master, repeat until told to stop (TERM:
 * finish the current session, then exit) or until worker_max_sessions.
 *
 * Where connections come from is one function, worker_next_conn(), so it
 * can switch from accept() on the shared listeners to receiving a socket
 * passed by the screen process.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gate.h"
#include "gate_metrics.h"
#include "log.h"

static void
worker_status(struct gate_runtime *rt, char state)
{
	__atomic_store_n(&rt->scoreboard[rt->slot], (unsigned char)state, __ATOMIC_RELAXED);
}

/* Wait for the next client on any SMTP listener. Each worker has its own
 * epoll set with the listeners added EPOLLEXCLUSIVE, so one connection
 * wakes one idle worker, not the whole pool. Returns an fd, or -1 when the
 * worker should exit. */
static int
worker_next_conn(struct gate_runtime *rt, int ep, struct sockaddr_storage *peer)
{
	while (!gate_sig_term) {
		struct epoll_event ev[8];
		int r = epoll_wait(ep, ev, 8, 1000);

		if (r < 0 && errno != EINTR)
			return -1;
		for (int i = 0; i < r; i++) {
			socklen_t sl = sizeof(*peer);
			int fd = accept4(ev[i].data.fd, (struct sockaddr *)peer, &sl, SOCK_CLOEXEC);

			if (fd >= 0) {
				gate_metric_accepted();
				(void)net_nodelay(fd);
				return fd;
			}
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("accept: %s", strerror(errno));
		}
	}
	(void)rt;
	return -1;
}

static int
worker_epoll(const struct gate_runtime *rt)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0)
		return -1;
	for (size_t i = 0; i < rt->cfg->nlisteners; i++) {
		const struct gate_listener *l = &rt->cfg->listeners[i];
		struct epoll_event ev;

		if (l->kind != LISTEN_SMTP || l->fd < 0)
			continue;
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN | EPOLLEXCLUSIVE;
		ev.data.fd = l->fd;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, l->fd, &ev) != 0) {
			(void)close(ep);
			return -1;
		}
	}
	return ep;
}

/* Screen mode: wait for a connection passed by the screen. The shared
 * receive socket has a 1 s timeout so that TERM is noticed. */
static int
worker_recv_conn(struct gate_runtime *rt, struct gate_pass *p)
{
	while (!gate_sig_term) {
		union {
			struct cmsghdr	hdr;
			char		buf[CMSG_SPACE(sizeof(int) * 4)];
		} cm;
		struct msghdr msg;
		struct iovec iov = { .iov_base = p, .iov_len = sizeof(*p) };
		struct cmsghdr *cmsg;
		int fd = -1;
		ssize_t n;

		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = cm.buf;
		msg.msg_controllen = sizeof(cm.buf);
		n = recvmsg(rt->pass_fd, &msg, MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				continue;
			log_warn("pass socket: %s", strerror(errno));
			return -1;
		}
		if (n == 0)
			return -1;	/* the master is gone */
		for (cmsg = CMSG_FIRSTHDR(&msg); cmsg; cmsg = CMSG_NXTHDR(&msg, cmsg))
			if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS &&
			    cmsg->cmsg_len >= CMSG_LEN(sizeof(int))) {
				size_t nfd = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
				for (size_t i = 0; i < nfd; i++) {
					int x;
					memcpy(&x, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
					if (fd < 0)
						fd = x;
					else
						(void)close(x);
				}
			}
		if (fd < 0)
			continue;
		if ((size_t)n != sizeof(*p) || p->magic != GATE_PASS_MAGIC ||
		    p->nbytes > GATE_PASS_BYTES || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
			log_warn("pass socket: malformed hand-off dropped");
			(void)close(fd);
			continue;
		}
		p->id[sizeof(p->id) - 1] = '\0';
		(void)net_nodelay(fd);
		return fd;
	}
	return -1;
}

static void
worker_serve(struct gate_runtime *rt, int fd, struct sockaddr_storage *peer)
{
	struct sockaddr_storage local;
	socklen_t sl = sizeof(local);

	memset(&local, 0, sizeof(local));
	if (getsockname(fd, (struct sockaddr *)&local, &sl) != 0) {
		log_warn("getsockname: %s", strerror(errno));
		return;
	}
	net_unmap(peer);
	net_unmap(&local);
	if (rt->cfg->trusted_proxies.n > 0 && net_cidr_list_match(&rt->cfg->trusted_proxies, peer)) {
		const char *why = NULL;
		char ip[64];
		if (gate_inproxy_read(fd, (int)rt->cfg->timeout_proxy * 1000, peer, &local, &why) != 0) {
			(void)net_addr_str(peer, ip, sizeof(ip), NULL);
			log_warn("proxy client=%s status=refused reason=\"%s\"", ip, why);
			return;
		}
		net_unmap(peer);
		net_unmap(&local);
	}
	gate_session_run(rt, fd, peer, &local, NULL);
}

void
gate_worker_main(struct gate_runtime *rt)
{
	unsigned long long served = 0;
	int ep;

	gate_child_signals();

	ep = rt->cfg->screen ? -1 : worker_epoll(rt);
	if (!rt->cfg->screen && ep < 0)
		fatal("epoll: %s", strerror(errno));
	while (!gate_sig_term && served < rt->cfg->worker_max_sessions) {
		struct sockaddr_storage peer;
		int fd;

		memset(&peer, 0, sizeof(peer));
		worker_status(rt, 'I');
		if (rt->cfg->screen) {
			struct gate_pass *p = malloc(sizeof(*p));
			if (p == NULL)
				break;
			fd = worker_recv_conn(rt, p);
			if (fd < 0) {
				free(p);
				break;
			}
			worker_status(rt, 'B');
			gate_session_run(rt, fd, &p->peer, &p->local, p);
			free(p);
		} else {
			fd = worker_next_conn(rt, ep, &peer);
			if (fd < 0)
				break;
			worker_status(rt, 'B');
			worker_serve(rt, fd, &peer);
		}
		if (close(fd) != 0)
			log_debug("close: %s", strerror(errno));
		served++;
	}
	if (rt->store != NULL)
		policy_store_close(rt->store);
	if (rt->dns != NULL)
		policy_dns_close(rt->dns);
	exit(0);
}

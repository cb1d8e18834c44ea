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
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gate.h"
#include "log.h"

static void
worker_status(struct gate_runtime *rt, char state)
{
	struct gate_status st;
	ssize_t n;

	memset(&st, 0, sizeof(st));
	st.pid = (int)getpid();
	st.generation = rt->generation;
	st.state = state;
	do
		n = write(rt->status_fd, &st, sizeof(st));
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(st))
		log_debug("status write failed: %s", strerror(errno));
}

/* Wait for the next client on any SMTP listener. Returns an fd, or -1 when
 * the worker should exit. */
static int
worker_next_conn(struct gate_runtime *rt, struct sockaddr_storage *peer)
{
	const struct gate_settings *cfg = rt->cfg;
	struct pollfd pfd[64];
	size_t n = 0;

	for (size_t i = 0; i < cfg->nlisteners && n < 64; i++)
		if (cfg->listeners[i].kind == LISTEN_SMTP) {
			pfd[n].fd = cfg->listeners[i].fd;
			pfd[n].events = POLLIN;
			n++;
		}
	while (!gate_sig_term) {
		int r = poll(pfd, n, 1000);

		if (r < 0 && errno != EINTR)
			return -1;
		if (r <= 0)
			continue;
		for (size_t i = 0; i < n; i++) {
			socklen_t sl = sizeof(*peer);
			int fd;

			if (!(pfd[i].revents & POLLIN))
				continue;
			fd = accept4(pfd[i].fd, (struct sockaddr *)peer, &sl, SOCK_CLOEXEC);
			if (fd >= 0)
				return fd;
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("accept: %s", strerror(errno));
		}
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
	gate_session_run(rt, fd, peer, &local);
}

static void
on_term(int sig)
{
	(void)sig;
	gate_sig_term = 1;
}

void
gate_worker_main(struct gate_runtime *rt)
{
	struct sigaction sa;
	unsigned long long served = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	(void)sigaction(SIGPIPE, &sa, NULL);
	(void)sigaction(SIGHUP, &sa, NULL);
	(void)sigaction(SIGUSR1, &sa, NULL);
	(void)sigaction(SIGINT, &sa, NULL);

	while (!gate_sig_term && served < rt->cfg->worker_max_sessions) {
		struct sockaddr_storage peer;
		int fd;

		memset(&peer, 0, sizeof(peer));
		worker_status(rt, 'I');
		fd = worker_next_conn(rt, &peer);
		if (fd < 0)
			break;
		worker_status(rt, 'B');
		worker_serve(rt, fd, &peer);
		if (close(fd) != 0)
			log_debug("close: %s", strerror(errno));
		served++;
	}
	exit(0);
}

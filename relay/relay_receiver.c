/*
 * relay_receiver — accept, then hand the connection to a pooled session
 * process (no fork per connection).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "log.h"
#include "net.h"
#include "relay_proc.h"
#include "relay_receiver.h"
#include "relay_smtpd.h"
#include "relay_smtpd_int.h"

#define RECEIVER_IDLE_SECS	60	/* an idle session process quits */
#define RECEIVER_SESSIONS_MAX	1000	/* sessions per process, then a fresh one */
#define RECEIVER_LISTEN_MAX	16

struct rcv_proc {
	pid_t	 pid;
	int	 fd;		/* our end of its pair; -1 once closed */
	int	 busy;		/* serving a connection */
	unsigned served;
	time_t	 idle_since;
};

struct receiver {
	const struct relay_config *cfg;
	const int *lfds;
	size_t	 nl;
	struct rcv_proc *p;
	size_t	 np, cap;	/* cap = 2 * max_clients: room for quitting ones */
	size_t	 nbusy;
	struct relay_auth_table auth;
	struct pollfd *pfd;	/* the loop's; freed in a session process */
	pid_t	*polled;
};

/* The session process: connections in, one int (failed AUTHs) out per
 * connection, until the receiver closes the pair. */
static int
session_proc(const struct relay_config *cfg, int sfd)
{
	for (;;) {
		char cbuf[CMSG_SPACE(sizeof(int))];
		unsigned prior = 0;
		struct iovec iov = { &prior, sizeof(prior) };
		struct msghdr mh;
		struct cmsghdr *cm;
		ssize_t n;
		int fd = -1, fails;

		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		n = recvmsg(sfd, &mh, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;	/* the receiver closed our pair */
		for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm))
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
			    cm->cmsg_len == CMSG_LEN(sizeof(int)))
				memcpy(&fd, CMSG_DATA(cm), sizeof(int));
		if (fd < 0)
			continue;
		fails = relay_smtpd_serve(cfg, fd, prior);	/* closes fd */
		if (fails < 0)
			fails = 0;
		if (send(sfd, &fails, sizeof(fails), MSG_NOSIGNAL) != (ssize_t)sizeof(fails))
			return 0;
	}
}

/* A new session process; `conn` (the connection being handed over, or -1)
 * is closed in it: it receives its own copy through the pair. */
static struct rcv_proc *
spawn(struct receiver *r, int conn)
{
	struct rcv_proc *p;
	int fd;
	pid_t pid;

	if (r->np >= r->cap || (pid = relay_fork_paired("receiver", &fd)) < 0)
		return NULL;
	if (pid == 0) {
		/* keep only our pair: the listeners and the other pairs belong
		 * to the receiver (a pair held here would never see EOF) */
		if (conn >= 0)
			(void)close(conn);
		for (size_t i = 0; i < r->nl; i++)
			(void)close(r->lfds[i]);
		for (size_t i = 0; i < r->np; i++)
			if (r->p[i].fd >= 0)
				(void)close(r->p[i].fd);
		free(r->p);
		free(r->pfd);
		free(r->polled);
		relay_auth_table_free(&r->auth);
		_exit(session_proc(r->cfg, fd));
	}
	p = &r->p[r->np++];
	memset(p, 0, sizeof(*p));
	p->pid = pid;
	p->fd = fd;
	p->idle_since = time(NULL);
	return p;
}

static struct rcv_proc *
idle_proc(struct receiver *r, int conn)
{
	for (size_t i = 0; i < r->np; i++)
		if (r->p[i].fd >= 0 && !r->p[i].busy)
			return &r->p[i];
	return spawn(r, conn);
}

/* Pass connection c to a session process. 0, or -1 (c still ours). */
static int
hand_over(struct receiver *r, int c, const char *addr)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	unsigned prior = relay_auth_prior(&r->auth, addr, time(NULL));
	struct iovec iov = { &prior, sizeof(prior) };
	struct msghdr mh;
	struct cmsghdr *cm;

	for (int tries = 0; tries < 2; tries++) {
		struct rcv_proc *p = idle_proc(r, c);
		if (p == NULL)
			return -1;
		memset(&mh, 0, sizeof(mh));
		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &c, sizeof(int));
		if (sendmsg(p->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
			log_warn("receiver: session process %ld does not take a connection: %s",
			    (long)p->pid, strerror(errno));
			relay_pair_close(&p->fd);
			continue;
		}
		p->busy = 1;
		r->nbusy++;
		relay_auth_started(&r->auth, p->pid, addr);
		return 0;
	}
	return -1;
}

/* A session ended (its failed AUTHs in), or the process is gone. */
static void
proc_read(struct receiver *r, struct rcv_proc *p)
{
	int fails;
	ssize_t n = recv(p->fd, &fails, sizeof(fails), MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n == (ssize_t)sizeof(fails) && p->busy) {
		p->busy = 0;
		r->nbusy--;
		p->served++;
		p->idle_since = time(NULL);
		/* counted as if the session had been a child exiting with it */
		relay_auth_ended(&r->auth, p->pid,
		    W_EXITCODE(fails < 0 ? 0 : fails > 100 ? 100 : fails, 0), time(NULL));
		if (p->served >= RECEIVER_SESSIONS_MAX)
			relay_pair_close(&p->fd);
		return;
	}
	relay_pair_close(&p->fd);	/* gone: reaped below */
}

static void
reap(struct receiver *r)
{
	pid_t pid;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (size_t i = 0; i < r->np; i++) {
			if (r->p[i].pid != pid)
				continue;
			if (r->p[i].busy)
				r->nbusy--;
			relay_pair_close(&r->p[i].fd);
			r->p[i] = r->p[--r->np];
			break;
		}
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			log_warn("session process %ld ended abnormally (status %d)", (long)pid, st);
		relay_auth_ended(&r->auth, pid, st, time(NULL));	/* if it was serving */
	}
}

static void
accept_one(struct receiver *r, int lfd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char addr[64];
	unsigned port;
	int c = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);

	if (c < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			log_warn("receiver accept: %s", strerror(errno));
			usleep(100000);	/* do not spin on a full table */
		}
		return;
	}
	net_unmap(&ss);
	if (net_addr_str(&ss, addr, sizeof(addr), &port) != 0)
		snprintf(addr, sizeof(addr), "unknown");
	if (r->nbusy >= r->cfg->max_clients || hand_over(r, c, addr) != 0) {
		static const char busy[] = "421 4.3.2 Too many connections, try later\r\n";
		ssize_t w = write(c, busy, sizeof(busy) - 1);
		(void)w;	/* best effort; the client retries anyway */
	}
	(void)close(c);	/* the session process has its own copy */
}

int
relay_receiver_run(const struct relay_config *cfg, const int *fds, size_t nfds)
{
	struct receiver r;
	struct pollfd *pfd;
	pid_t *polled;
	int rc = 0;

	memset(&r, 0, sizeof(r));
	r.cfg = cfg;
	r.lfds = fds;
	r.nl = nfds < RECEIVER_LISTEN_MAX ? nfds : RECEIVER_LISTEN_MAX;
	r.cap = 2 * cfg->max_clients;
	r.p = calloc(r.cap, sizeof(*r.p));
	pfd = r.pfd = calloc(r.nl + 1 + r.cap, sizeof(*pfd));
	polled = r.polled = calloc(r.cap, sizeof(*polled));
	if (r.p == NULL || pfd == NULL || polled == NULL ||
	    relay_auth_table_init(&r.auth, cfg->max_clients) != 0) {
		log_err("receiver: out of memory");
		free(r.p);
		free(pfd);
		free(polled);
		return 1;
	}
	for (;;) {
		size_t np = 0, base = r.nl + 1;
		time_t now = time(NULL);

		for (size_t i = 0; i < r.nl; i++)
			pfd[np++].fd = fds[i];
		pfd[np++].fd = relay_sig_fd();
		for (size_t i = 0; i < r.np; i++) {
			struct rcv_proc *p = &r.p[i];
			if (p->fd >= 0 && !p->busy && now - p->idle_since >= RECEIVER_IDLE_SECS)
				relay_pair_close(&p->fd);
			if (p->fd >= 0) {
				polled[np - base] = p->pid;
				pfd[np++].fd = p->fd;
			}
		}
		for (size_t i = 0; i < np; i++) {
			pfd[i].events = POLLIN;
			pfd[i].revents = 0;
		}
		if (poll(pfd, np, 5000) < 0 && errno != EINTR) {
			log_err("receiver poll: %s", strerror(errno));
			rc = 1;
			break;
		}
		/* session ends first: their processes take the new connections */
		for (size_t i = base; i < np; i++) {
			if (pfd[i].revents == 0)
				continue;
			for (size_t j = 0; j < r.np; j++)
				if (r.p[j].pid == polled[i - base] && r.p[j].fd >= 0)
					proc_read(&r, &r.p[j]);
		}
		if (relay_sig_take(RELAY_SIG_CHLD) || r.np > 0)
			reap(&r);
		if (relay_sig_take(RELAY_SIG_TERM))
			break;
		(void)relay_sig_take(RELAY_SIG_HUP);	/* the master restarts us */
		for (size_t i = 0; i < r.nl; i++)
			if (pfd[i].revents & POLLIN)
				accept_one(&r, fds[i]);
	}
	/* running sessions finish on their own; idle processes quit */
	for (size_t i = 0; i < r.np; i++)
		relay_pair_close(&r.p[i].fd);
	relay_auth_table_free(&r.auth);
	free(r.p);
	free(pfd);
	free(polled);
	return rc;
}

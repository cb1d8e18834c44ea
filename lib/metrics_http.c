/*
 * metrics_http — the smallest HTTP/1.x server that Prometheus needs.
 *
 * metrics_http_serve() is the whole life of a dedicated process (or
 * thread) that runs without privileges: the master binds the socket as
 * root (metrics_http_listen) and hands it over. One poll() loop, every
 * socket non-blocking, at most METRICS_HTTP_CONNS connections at a time
 * (more are accepted and closed at once), each with a deadline of
 * METRICS_HTTP_TIMEOUT_MS for the whole exchange (a slow or silent client is
 * dropped), a request of at most METRICS_HTTP_REQ_MAX bytes (431 beyond).
 * `GET /metrics` gets the exposition text (version 0.0.4); any other path
 * 404, any other method 405; a malformed request line 400. Every answer
 * closes the connection. Nothing here can block the mail processes: they
 * only write to the shared region, never talk to this loop.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"
#include "net.h"

#define METRICS_HTTP_CONNS	16
#define METRICS_HTTP_REQ_MAX	4096
#define METRICS_HTTP_TIMEOUT_MS	3000

struct mh_conn {
	int		 fd;		/* -1: free */
	long long	 deadline;
	char		 req[METRICS_HTTP_REQ_MAX];
	size_t		 rlen;
	char		*out;		/* response, once decided */
	size_t		 olen, ooff;
};

static long long
mh_now(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
metrics_http_listen(const char *hostport, char *err, size_t errlen)
{
	struct net_endpoint ep;
	const char *why = NULL;
	int fd;

	if (net_parse_endpoint(hostport, &ep, &why) != 0) {
		snprintf(err, errlen, "metrics_listen \"%s\": %s", hostport, why);
		return -1;
	}
	fd = net_listen(&ep, 16);
	if (fd < 0)
		snprintf(err, errlen, "metrics_listen %s: %s", hostport, strerror(errno));
	return fd;
}

int
metrics_http_parse(const char *req, size_t len)
{
	const char *eol = memchr(req, '\n', len), *sp1, *sp2, *path;
	size_t plen;

	if (eol == NULL)
		return len >= METRICS_HTTP_REQ_MAX ? 431 : 0;
	/* the request line decides; the headers only have to end */
	if (memmem(req, len, "\r\n\r\n", 4) == NULL && memmem(req, len, "\n\n", 2) == NULL)
		return len >= METRICS_HTTP_REQ_MAX ? 431 : 0;
	sp1 = memchr(req, ' ', (size_t)(eol - req));
	if (sp1 == NULL || sp1 == req)
		return 400;
	path = sp1 + 1;
	sp2 = memchr(path, ' ', (size_t)(eol - path));
	if (sp2 == NULL || sp2 == path || strncmp(sp2 + 1, "HTTP/1.", 7) != 0)
		return 400;
	if (sp1 - req != 3 || memcmp(req, "GET", 3) != 0)
		return 405;
	plen = (size_t)(sp2 - path);
	if ((plen == 8 && memcmp(path, "/metrics", 8) == 0) ||
	    (plen > 8 && memcmp(path, "/metrics?", 9) == 0))
		return 200;
	return 404;
}

/* Build the response for status st (200: render the metrics). */
static void
mh_respond(struct mh_conn *c, int st, struct metrics *m, metrics_scrape_fn before, void *arg)
{
	const char *reason = st == 404 ? "Not Found" : st == 405 ? "Method Not Allowed" :
	    st == 431 ? "Request Header Fields Too Large" : "Bad Request";
	char *body = NULL, hdr[256];
	size_t blen = 0;
	int hlen;

	if (st == 200) {
		if (before != NULL)
			before(m, arg);
		if (metrics_render(m, &body, &blen) != 0) {
			st = 500;
			reason = "Internal Server Error";
		}
	}
	if (st != 200) {
		char msg[64];
		int n = snprintf(msg, sizeof(msg), "%d %s\n", st, reason);
		body = strdup(msg);
		blen = body != NULL && n > 0 ? (size_t)n : 0;
	}
	hlen = snprintf(hdr, sizeof(hdr),
	    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
	    "Connection: close\r\n\r\n", st, st == 200 ? "OK" : reason,
	    st == 200 ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8",
	    blen, st == 405 ? "Allow: GET\r\n" : "");
	c->out = malloc((size_t)hlen + blen);
	if (c->out == NULL || body == NULL) {
		free(c->out);
		c->out = NULL;
		free(body);
		return;
	}
	memcpy(c->out, hdr, (size_t)hlen);
	memcpy(c->out + hlen, body, blen);
	c->olen = (size_t)hlen + blen;
	c->ooff = 0;
	free(body);
	(void)shutdown(c->fd, SHUT_RD);
}

static void
mh_close(struct mh_conn *c)
{
	if (c->fd >= 0)
		(void)close(c->fd);
	c->fd = -1;
	free(c->out);
	c->out = NULL;
	c->rlen = c->olen = c->ooff = 0;
}

static void
mh_accept(int lfd, struct mh_conn *conns)
{
	for (int burst = 0; burst < 32; burst++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), i;

		if (fd < 0)
			return;
		for (i = 0; i < METRICS_HTTP_CONNS && conns[i].fd >= 0; i++)
			;
		if (i == METRICS_HTTP_CONNS) {
			(void)close(fd);	/* full: drop, the scraper retries */
			continue;
		}
		conns[i].fd = fd;
		conns[i].deadline = mh_now() + METRICS_HTTP_TIMEOUT_MS;
	}
}

/* Read what the client sent; once the request is complete, answer. */
static void
mh_readable(struct mh_conn *c, struct metrics *m, metrics_scrape_fn before, void *arg)
{
	ssize_t n = recv(c->fd, c->req + c->rlen, sizeof(c->req) - c->rlen, 0);
	int st;

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		mh_close(c);
		return;
	}
	if (n < 0)
		return;
	c->rlen += (size_t)n;
	st = metrics_http_parse(c->req, c->rlen);
	if (st == 0)
		return;
	mh_respond(c, st, m, before, arg);
	if (c->out == NULL)
		mh_close(c);
}

static void
mh_writable(struct mh_conn *c)
{
	ssize_t n = send(c->fd, c->out + c->ooff, c->olen - c->ooff, MSG_NOSIGNAL);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		mh_close(c);
		return;
	}
	c->ooff += (size_t)n;
	if (c->ooff == c->olen)
		mh_close(c);
}

void
metrics_http_serve(int lfd, struct metrics *m, metrics_scrape_fn before, void *arg,
    volatile sig_atomic_t *stop)
{
	struct mh_conn conns[METRICS_HTTP_CONNS];
	struct pollfd pfd[METRICS_HTTP_CONNS + 1];

	for (int i = 0; i < METRICS_HTTP_CONNS; i++) {
		memset(&conns[i], 0, sizeof(conns[i]));
		conns[i].fd = -1;
	}
	while (!*stop) {
		long long now;

		pfd[0].fd = lfd;
		pfd[0].events = POLLIN;
		for (int i = 0; i < METRICS_HTTP_CONNS; i++) {
			pfd[i + 1].fd = conns[i].fd;
			pfd[i + 1].events = conns[i].out != NULL ? POLLOUT : POLLIN;
			pfd[i + 1].revents = 0;
		}
		if (poll(pfd, METRICS_HTTP_CONNS + 1, 250) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < METRICS_HTTP_CONNS; i++) {
			if (conns[i].fd < 0 || pfd[i + 1].fd != conns[i].fd || pfd[i + 1].revents == 0)
				continue;
			if (conns[i].out != NULL)
				mh_writable(&conns[i]);
			else
				mh_readable(&conns[i], m, before, arg);
		}
		if (pfd[0].revents & POLLIN)
			mh_accept(lfd, conns);
		now = mh_now();
		for (int i = 0; i < METRICS_HTTP_CONNS; i++)
			if (conns[i].fd >= 0 && now > conns[i].deadline)
				mh_close(&conns[i]);
	}
	for (int i = 0; i < METRICS_HTTP_CONNS; i++)
		mh_close(&conns[i]);
}

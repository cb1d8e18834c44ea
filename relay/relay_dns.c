/*
 * relay_dns — one synchronous MX query through c-ares.
 *
 * A channel is made per call (delivery workers look up a smarthost once
 * per connection, so caching buys nothing). The loop that drives c-ares
 * is bounded: at most 1000 poll rounds, each bounded by ares_timeout(). `resolver` is "system" or
 * "ADDR[:PORT]" / "[V6]:PORT" for a private server (tests use unbound on
 * loopback).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "relay_dns.h"

struct mx_result {
	int	done;
	int	status;
	char	(*hosts)[256];
	size_t	max, n;
	int	nomx;
};

static void
mx_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct mx_result *r = arg;
	struct ares_mx_reply *mx = NULL, *p;
	unsigned short prefs[RELAY_MX_MAX];

	(void)timeouts;
	r->done = 1;
	r->status = status;
	if (status == ARES_ENODATA) {
		r->nomx = 1;
		return;
	}
	if (status != ARES_SUCCESS)
		return;
	if ((r->status = ares_parse_mx_reply(abuf, alen, &mx)) != ARES_SUCCESS) {
		if (r->status == ARES_ENODATA)
			r->nomx = 1;
		return;
	}
	for (p = mx; p; p = p->next) {
		size_t i;
		if (r->n >= r->max || strlen(p->host) >= 256 || p->host[0] == '\0')
			continue;
		/* insertion sort by preference */
		for (i = r->n; i > 0 && prefs[i - 1] > p->priority; i--) {
			memcpy(r->hosts[i], r->hosts[i - 1], 256);
			prefs[i] = prefs[i - 1];
		}
		snprintf(r->hosts[i], 256, "%s", p->host);
		prefs[i] = p->priority;
		r->n++;
	}
	ares_free_data(mx);
	if (r->n == 0)
		r->nomx = 1;
}

static int
channel_open(ares_channel *ch, const char *resolver, int timeout_ms,
    char *err, size_t errlen)
{
	struct ares_options o;
	int rc;

	memset(&o, 0, sizeof(o));
	o.timeout = timeout_ms > 0 ? timeout_ms / 2 : 2500;
	o.tries = 2;
	rc = ares_library_init(ARES_LIB_INIT_ALL);
	if (rc == ARES_SUCCESS)
		rc = ares_init_options(ch, &o, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares init: %s", ares_strerror(rc));
		return -1;
	}
	if (resolver && *resolver && strcmp(resolver, "system") != 0) {
		rc = ares_set_servers_ports_csv(*ch, resolver);
		if (rc != ARES_SUCCESS) {
			snprintf(err, errlen, "resolver %s: %s", resolver, ares_strerror(rc));
			ares_destroy(*ch);
			return -1;
		}
	}
	return 0;
}

/* Drive the channel until *done is set or nothing is pending. */
static void
channel_run(ares_channel ch, const int *done)
{
	for (int rounds = 0; !*done && rounds < 1000; rounds++) {
		ares_socket_t socks[ARES_GETSOCK_MAXNUM];
		struct pollfd pfd[ARES_GETSOCK_MAXNUM];
		struct timeval tv, *tvp;
		/* the bit masks by hand: c-ares' ARES_GETSOCK_WRITABLE shifts a
		 * signed 1 into bit 31 (undefined behaviour) */
		unsigned bits = (unsigned)ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
		int np = 0, ms;

		for (unsigned i = 0; i < ARES_GETSOCK_MAXNUM && i < 16; i++) {
			short ev = 0;
			if (bits & (1u << i))
				ev |= POLLIN;
			if (bits & (1u << (i + 16)))
				ev |= POLLOUT;
			if (ev) {
				pfd[np].fd = socks[i];
				pfd[np].events = ev;
				pfd[np].revents = 0;
				np++;
			}
		}
		if (np == 0)
			break;
		tvp = ares_timeout(ch, NULL, &tv);
		ms = tvp ? (int)(tvp->tv_sec * 1000 + tvp->tv_usec / 1000) : 1000;
		if (poll(pfd, (nfds_t)np, ms) < 0)
			break;
		for (int i = 0; i < np; i++)
			ares_process_fd(ch,
			    pfd[i].revents & (POLLIN | POLLERR | POLLHUP) ? pfd[i].fd : ARES_SOCKET_BAD,
			    pfd[i].revents & POLLOUT ? pfd[i].fd : ARES_SOCKET_BAD);
		if (!*done)
			ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	}
}

int
relay_dns_mx(const char *name, const char *resolver, int timeout_ms,
    char hosts[][256], size_t *n, char *err, size_t errlen)
{
	ares_channel ch;
	struct mx_result r;

	*n = 0;
	memset(&r, 0, sizeof(r));
	r.hosts = hosts;
	r.max = RELAY_MX_MAX;
	if (channel_open(&ch, resolver, timeout_ms, err, errlen) != 0)
		return -1;
	ares_query(ch, name, ns_c_in, ns_t_mx, mx_cb, &r);
	channel_run(ch, &r.done);
	ares_destroy(ch);
	if (!r.done) {
		snprintf(err, errlen, "MX lookup for %s: timed out", name);
		return -1;
	}
	if (r.nomx) {
		snprintf(hosts[0], 256, "%s", name);
		*n = 1;
		return 0;
	}
	if (r.status != ARES_SUCCESS || r.n == 0) {
		snprintf(err, errlen, "MX lookup for %s: %s", name, ares_strerror(r.status));
		return -1;
	}
	*n = r.n;
	return 0;
}

struct addr_result {
	int	done;
	int	status;
	char	(*addrs)[64];
	size_t	max, n;
};

static void
addr_cb(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
	struct addr_result *r = arg;

	(void)timeouts;
	r->done = 1;
	r->status = status;
	if (status != ARES_SUCCESS || ai == NULL)
		return;
	for (struct ares_addrinfo_node *p = ai->nodes; p && r->n < r->max; p = p->ai_next) {
		const void *a = NULL;
		if (p->ai_family == AF_INET)
			a = &((const struct sockaddr_in *)(const void *)p->ai_addr)->sin_addr;
		else if (p->ai_family == AF_INET6)
			a = &((const struct sockaddr_in6 *)(const void *)p->ai_addr)->sin6_addr;
		if (a && inet_ntop(p->ai_family, a, r->addrs[r->n], 64) != NULL)
			r->n++;
	}
	ares_freeaddrinfo(ai);
}

int
relay_dns_addrs(const char *name, const char *resolver, int timeout_ms,
    char addrs[][64], size_t *n, char *err, size_t errlen)
{
	struct ares_addrinfo_hints hints;
	ares_channel ch;
	struct addr_result r;

	*n = 0;
	memset(&r, 0, sizeof(r));
	r.addrs = addrs;
	r.max = RELAY_ADDR_MAX;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if (channel_open(&ch, resolver, timeout_ms, err, errlen) != 0)
		return -1;
	ares_getaddrinfo(ch, name, NULL, &hints, addr_cb, &r);
	channel_run(ch, &r.done);
	ares_destroy(ch);
	if (!r.done) {
		snprintf(err, errlen, "address lookup for %s: timed out", name);
		return -1;
	}
	if (r.status != ARES_SUCCESS || r.n == 0) {
		snprintf(err, errlen, "address lookup for %s: %s", name,
		    r.status != ARES_SUCCESS ? ares_strerror(r.status) : "no address");
		return -1;
	}
	*n = r.n;
	return 0;
}

/*
 * relay_dns — one synchronous MX query through c-ares.
 *
 * A channel is made per call (delivery workers look up a smarthost once
 * per connection, so caching buys nothing). `resolver` is "system" or
 * "ADDR[:PORT]" / "[V6]:PORT" for a private server (tests use unbound on
 * loopback).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <ares.h>
#include <arpa/nameser.h>

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

int
relay_dns_mx(const char *name, const char *resolver, int timeout_ms,
    char hosts[][256], size_t *n, char *err, size_t errlen)
{
	struct ares_options o;
	ares_channel ch;
	struct mx_result r;
	int rc;

	*n = 0;
	memset(&r, 0, sizeof(r));
	r.hosts = hosts;
	r.max = RELAY_MX_MAX;
	memset(&o, 0, sizeof(o));
	o.timeout = timeout_ms > 0 ? timeout_ms / 2 : 2500;
	o.tries = 2;
	rc = ares_library_init(ARES_LIB_INIT_ALL);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares init: %s", ares_strerror(rc));
		return -1;
	}
	rc = ares_init_options(&ch, &o, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares init: %s", ares_strerror(rc));
		return -1;
	}
	if (resolver && *resolver && strcmp(resolver, "system") != 0) {
		rc = ares_set_servers_ports_csv(ch, resolver);
		if (rc != ARES_SUCCESS) {
			snprintf(err, errlen, "resolver %s: %s", resolver, ares_strerror(rc));
			ares_destroy(ch);
			return -1;
		}
	}
	ares_query(ch, name, ns_c_in, ns_t_mx, mx_cb, &r);
	for (int rounds = 0; !r.done && rounds < 1000; rounds++) {
		ares_socket_t socks[ARES_GETSOCK_MAXNUM];
		struct pollfd pfd[ARES_GETSOCK_MAXNUM];
		struct timeval tv, *tvp;
		int bits = ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM), np = 0, ms;

		for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
			short ev = 0;
			if (ARES_GETSOCK_READABLE(bits, i))
				ev |= POLLIN;
			if (ARES_GETSOCK_WRITABLE(bits, i))
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
		if (np > 0 && !r.done)
			ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	}
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

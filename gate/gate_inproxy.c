/*
 * gate_inproxy — read the PROXY v1/v2 header a trusted proxy (haproxy, a
 * cloud load balancer) sends before any SMTP byte. Like Postfix, we peek
 * (MSG_PEEK) until the header is complete, then consume exactly its length,
 * so no SMTP byte the client pipelined after it is lost. Bounded by a
 * deadline and by PROXY_MAX_HEADER. Addresses come out with v4-mapped
 * ones as IPv4; gate_inproxy_pair() fills an outbound header's pair.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "gate.h"
#include "proxy.h"

int
gate_inproxy_read(int fd, int timeout_ms, struct sockaddr_storage *peer,
    struct sockaddr_storage *local, const char **why)
{
	unsigned char buf[PROXY_MAX_HEADER];
	long long deadline = gate_now_ms() + timeout_ms;
	size_t have = 0;

	for (;;) {
		struct proxy_info info;
		size_t used = 0;
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		long long left = deadline - gate_now_ms();
		ssize_t n;
		int r;

		if (left <= 0) {
			*why = "timeout waiting for the PROXY header";
			return -1;
		}
		r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			*why = r == 0 ? "timeout waiting for the PROXY header" : "poll error";
			return -1;
		}
		n = recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			*why = n == 0 ? "connection closed before the PROXY header" : "read error";
			return -1;
		}
		if ((size_t)n == have) {
			/* nothing new arrived yet: wait a little instead of spinning */
			struct timespec ts = { 0, 5 * 1000 * 1000 };
			nanosleep(&ts, NULL);
			continue;
		}
		have = (size_t)n;
		switch (proxy_decode(buf, have, &info, &used, why)) {
		case PROXY_NEED_MORE:
			if (have >= sizeof(buf)) {
				*why = "PROXY header too long";
				return -1;
			}
			continue;
		case PROXY_BAD:
			return -1;
		case PROXY_OK:
			break;
		}
		/* consume exactly the header */
		for (size_t got = 0; got < used; ) {
			n = recv(fd, buf, used - got, MSG_DONTWAIT);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				*why = "read error";
				return -1;
			}
			got += (size_t)n;
		}
		if (!info.local) {
			*peer = info.src;
			*local = info.dst;
			net_unmap(peer);
			net_unmap(local);
		}
		return 0;
	}
}

/* Event-loop form (the screen, the passthrough process): read what the
 * socket has into buf (len bytes so far, at most PROXY_MAX_HEADER) and
 * try to decode. PROXY_OK: *used is the header length (bytes after it stay
 * in buf for the caller), peer/local are replaced by the header's
 * addresses (unless LOCAL). PROXY_NEED_MORE: call again when readable.
 * PROXY_BAD: *why says what went wrong and *closed whether the peer just
 * went away (a reason for the log, not a protocol error). */
enum proxy_status
gate_inproxy_feed(int fd, unsigned char *buf, size_t *len, struct sockaddr_storage *peer,
    struct sockaddr_storage *local, size_t *used, const char **why, int *closed)
{
	struct proxy_info pi;
	enum proxy_status st;
	ssize_t n;

	*closed = 0;
	if (*len >= PROXY_MAX_HEADER) {
		*why = "PROXY header too long";
		return PROXY_BAD;
	}
	n = recv(fd, buf + *len, PROXY_MAX_HEADER - *len, MSG_DONTWAIT);
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return PROXY_NEED_MORE;
		*closed = 1;
		*why = "closed before the PROXY header";
		return PROXY_BAD;
	}
	*len += (size_t)n;
	st = proxy_decode(buf, *len, &pi, used, why);
	if (st == PROXY_NEED_MORE && *len >= PROXY_MAX_HEADER) {
		*why = "PROXY header too long";
		return PROXY_BAD;
	}
	if (st == PROXY_OK && !pi.local) {
		*peer = pi.src;
		*local = pi.dst;
		net_unmap(peer);
		net_unmap(local);
	}
	return st;
}

/* The address pair of the PROXY v2 header we send on: the client and the
 * address it reached. A trusted proxy may give an IPv4 (v4-mapped) client
 * on an IPv6 address; the header has one family, so the IPv4 side then
 * goes as its v4-mapped IPv6 form and still names the real client. */
void
gate_inproxy_pair(struct proxy_info *pi, const struct sockaddr_storage *peer,
    const struct sockaddr_storage *local)
{
	struct sockaddr_storage *v[2] = { &pi->src, &pi->dst };

	pi->src = *peer;
	pi->dst = *local;
	net_unmap(&pi->src);
	net_unmap(&pi->dst);
	if (pi->src.ss_family == pi->dst.ss_family)
		return;
	for (int i = 0; i < 2; i++)
		if (v[i]->ss_family == AF_INET) {
			struct sockaddr_in s4;
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)v[i];

			memcpy(&s4, v[i], sizeof(s4));
			memset(v[i], 0, sizeof(*v[i]));
			s6->sin6_family = AF_INET6;
			s6->sin6_port = s4.sin_port;
			s6->sin6_addr.s6_addr[10] = 0xff;
			s6->sin6_addr.s6_addr[11] = 0xff;
			memcpy(&s6->sin6_addr.s6_addr[12], &s4.sin_addr, 4);
		}
}

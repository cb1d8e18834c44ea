/*
 * gate_inproxy — read the PROXY v1/v2 header a trusted proxy (haproxy, a
 * cloud load balancer) sends before any SMTP byte. Like Postfix, we peek
 * (MSG_PEEK) until the header is complete, then consume exactly its length,
 * so no SMTP byte the client pipelined after it is lost. Bounded by a
 * deadline and by PROXY_MAX_HEADER.
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

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

/*
 * proxy_dump — test helper: accept connections on a loopback port, decode the
 * PROXY header each one starts with (lib/proxy.c's proxy_decode), print one
 * line per connection, answer "220 proxy_dump\r\n" and close.
 *
 *   proxy_dump PORT COUNT [SECONDS]
 *
 * Exits after COUNT connections, or with status 1 when SECONDS (default 30)
 * pass without one. Output (stdout, flushed per line):
 *   OK v1|v2 len=N local=0|1 src=ADDR:PORT dst=ADDR:PORT ssl=0|1
 *      version="..." cipher="..." unique_id="..." authority="..."
 *   BAD why="reason"        NEED_MORE (the peer stopped mid-header)
 * Used by tests/integration/15-proxy-interop.sh with haproxy as the sender.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "proxy.h"

static int dump_num(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static const char *dump_addr(const struct sockaddr_storage *ss, char *out, size_t n)
{
	char a[INET6_ADDRSTRLEN] = "-";
	unsigned port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)ss;

		if (inet_ntop(AF_INET, &s->sin_addr, a, sizeof(a)) == NULL)
			snprintf(a, sizeof(a), "?");
		port = ntohs(s->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;

		if (inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof(a)) == NULL)
			snprintf(a, sizeof(a), "?");
		port = ntohs(s->sin6_port);
	}
	snprintf(out, n, "%s:%u", a, port);
	return out;
}

/* Peek until the header is complete (or bad), then consume exactly it. */
static void dump_one(int fd)
{
	unsigned char buf[PROXY_MAX_HEADER];
	struct proxy_info pi;
	size_t used = 0;
	const char *why = NULL;
	enum proxy_status st = PROXY_NEED_MORE;
	char a[80], b[80];
	ssize_t n = 0;

	for (int tries = 0; tries < 300 && st == PROXY_NEED_MORE; tries++) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };

		if (poll(&pfd, 1, 1000) <= 0)
			break;
		n = recv(fd, buf, sizeof(buf), MSG_PEEK);
		if (n <= 0)
			break;
		st = proxy_decode(buf, (size_t)n, &pi, &used, &why);
		if (st == PROXY_NEED_MORE) {
			struct timespec ts = { 0, 10 * 1000 * 1000 };

			nanosleep(&ts, NULL);
		}
	}
	if (st == PROXY_OK) {
		printf("OK %s len=%zu local=%d src=%s dst=%s ssl=%d version=\"%s\" cipher=\"%s\" "
		       "unique_id=\"%s\" authority=\"%s\"\n", buf[0] == 'P' ? "v1" : "v2", used,
		       pi.local, dump_addr(&pi.src, a, sizeof(a)), dump_addr(&pi.dst, b, sizeof(b)),
		       pi.ssl, pi.ssl_version, pi.ssl_cipher, pi.unique_id, pi.authority);
		if (recv(fd, buf, used, 0) != (ssize_t)used)
			printf("ERROR consuming the header\n");
	} else if (st == PROXY_BAD) {
		printf("BAD why=\"%s\"\n", why ? why : "");
	} else {
		printf("NEED_MORE after %zd bytes\n", n);
	}
	if (write(fd, "220 proxy_dump\r\n", 16) != 16)
		printf("ERROR writing the reply: %s\n", strerror(errno));
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa;
	long port, count, secs = 30;
	int l, one = 1;

	if (argc < 3 || dump_num(argv[1], 1, 65535, &port) < 0 ||
	    dump_num(argv[2], 1, INT_MAX, &count) < 0 ||
	    (argc > 3 && dump_num(argv[3], 1, 3600, &secs) < 0)) {
		fprintf(stderr, "usage: proxy_dump PORT COUNT [SECONDS]\n");
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(l, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(l, 16) != 0) {
		fprintf(stderr, "proxy_dump: listen on 127.0.0.1:%ld: %s\n", port, strerror(errno));
		return 1;
	}
	for (long c = 0; c < count; c++) {
		struct pollfd pfd = { .fd = l, .events = POLLIN };
		int fd;

		if (poll(&pfd, 1, (int)secs * 1000) <= 0) {
			fprintf(stderr, "proxy_dump: no connection within %lds\n", secs);
			return 1;
		}
		fd = accept(l, NULL, NULL);
		if (fd < 0) {
			fprintf(stderr, "proxy_dump: accept: %s\n", strerror(errno));
			return 1;
		}
		dump_one(fd);
		if (close(fd) != 0)
			fprintf(stderr, "proxy_dump: close: %s\n", strerror(errno));
	}
	return close(l) == 0 ? 0 : 1;
}

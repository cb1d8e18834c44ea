/*
 * proxy_send — test helper: connect to a loopback port, send one PROXY
 * header built by lib/proxy.c, then "hello\r\n", and print the first reply
 * line (or "(closed)").
 *
 *   proxy_send HOST PORT v2|v1 SRC SPORT DST DPORT [ssl]
 *   proxy_send HOST PORT local|none
 *
 * HOST, SRC and DST are numeric IPv4 or IPv6 addresses. With "ssl" the v2
 * header carries an SSL TLV (TLSv1.3, TLS_AES_128_GCM_SHA256) and an
 * AUTHORITY TLV "mx.example.test"; v1 and v2 headers carry the UNIQUE_ID
 * "4f2a9c01" (v2 only). "none" sends no header. Exit status 0 when a reply
 * line was read. Used by tests/integration/15-proxy-interop.sh.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "proxy.h"

static int send_addr(const char *a, const char *port, struct sockaddr_storage *ss)
{
	char *end;
	long p;

	errno = 0;
	p = strtol(port, &end, 10);
	if (errno != 0 || end == port || *end != '\0' || p < 0 || p > 65535)
		return -1;
	memset(ss, 0, sizeof(*ss));
	if (strchr(a, ':') != NULL) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;

		s->sin6_family = AF_INET6;
		s->sin6_port = htons((uint16_t)p);
		return inet_pton(AF_INET6, a, &s->sin6_addr) == 1 ? 0 : -1;
	} else {
		struct sockaddr_in *s = (struct sockaddr_in *)ss;

		s->sin_family = AF_INET;
		s->sin_port = htons((uint16_t)p);
		return inet_pton(AF_INET, a, &s->sin_addr) == 1 ? 0 : -1;
	}
}

static int send_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_storage peer;
	struct proxy_info pi;
	unsigned char hdr[PROXY_MAX_HEADER];
	char reply[512];
	ssize_t n = 0;
	size_t got = 0;
	int fd;

	if (argc < 4 || send_addr(argv[1], argv[2], &peer) < 0)
		goto usage;
	memset(&pi, 0, sizeof(pi));
	if (strcmp(argv[3], "local") == 0) {
		n = proxy_v2_encode_local(hdr, sizeof(hdr));
	} else if (strcmp(argv[3], "none") == 0) {
		n = 0;
	} else if (strcmp(argv[3], "v1") == 0 || strcmp(argv[3], "v2") == 0) {
		if (argc < 8 || send_addr(argv[4], argv[5], &pi.src) < 0 ||
		    send_addr(argv[6], argv[7], &pi.dst) < 0)
			goto usage;
		if (argc > 8 && strcmp(argv[8], "ssl") == 0) {
			pi.ssl = 1;
			snprintf(pi.ssl_version, sizeof(pi.ssl_version), "TLSv1.3");
			snprintf(pi.ssl_cipher, sizeof(pi.ssl_cipher), "TLS_AES_128_GCM_SHA256");
			snprintf(pi.authority, sizeof(pi.authority), "mx.example.test");
		}
		snprintf(pi.unique_id, sizeof(pi.unique_id), "4f2a9c01");
		n = argv[3][1] == '1' ? proxy_v1_encode(&pi, (char *)hdr, sizeof(hdr))
				      : proxy_v2_encode(&pi, hdr, sizeof(hdr));
	} else {
		goto usage;
	}
	if (n < 0) {
		fprintf(stderr, "proxy_send: cannot encode that header\n");
		return 1;
	}
	fd = socket(peer.ss_family, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&peer, peer.ss_family == AF_INET ?
			      sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)) != 0) {
		fprintf(stderr, "proxy_send: connect: %s\n", strerror(errno));
		return 1;
	}
	/* the header in one write, as the gate does */
	if ((n > 0 && send_all(fd, hdr, (size_t)n) != 0) || send_all(fd, "hello\r\n", 7) != 0) {
		fprintf(stderr, "proxy_send: write: %s\n", strerror(errno));
		return 1;
	}
	while (got < sizeof(reply) - 1 && memchr(reply, '\n', got) == NULL) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&pfd, 1, 5000) <= 0)
			break;
		r = read(fd, reply + got, sizeof(reply) - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	reply[got] = '\0';
	reply[strcspn(reply, "\r\n")] = '\0';
	printf("sent %zd header bytes; reply: %s\n", n, got > 0 ? reply : "(closed)");
	if (close(fd) != 0)
		fprintf(stderr, "proxy_send: close: %s\n", strerror(errno));
	return got > 0 ? 0 : 1;
usage:
	fprintf(stderr, "usage: proxy_send HOST PORT v2|v1 SRC SPORT DST DPORT [ssl]\n"
			"       proxy_send HOST PORT local|none\n");
	return 2;
}

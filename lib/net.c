/*
 * net — endpoint parsing, listening sockets, connects with a deadline, and
 * CIDR lists. No state; every function returns 0/-1 or an fd/-1.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "net.h"

int
net_parse_endpoint(const char *s, struct net_endpoint *ep, const char **why)
{
	const char *colon, *host = s;
	size_t hlen;
	char *end;
	unsigned long port;

	memset(ep, 0, sizeof(*ep));
	if (*s == '[') {
		const char *rb = strchr(s, ']');
		if (rb == NULL || rb[1] != ':') {
			*why = "expected [address]:port";
			return -1;
		}
		host = s + 1;
		hlen = (size_t)(rb - host);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL) {
			*why = "expected host:port";
			return -1;
		}
		if (memchr(s, ':', (size_t)(colon - s)) != NULL) {
			*why = "IPv6 addresses must be written [address]:port";
			return -1;
		}
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= sizeof(ep->host)) {
		*why = "bad host";
		return -1;
	}
	memcpy(ep->host, host, hlen);
	ep->host[hlen] = '\0';
	for (size_t i = 0; i < hlen; i++)
		if (isspace((unsigned char)ep->host[i])) {
			*why = "bad host";
			return -1;
		}
	errno = 0;
	if (!isdigit((unsigned char)colon[1])) {
		*why = "bad port";
		return -1;
	}
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end != '\0' || port == 0 || port > 65535) {
		*why = "bad port";
		return -1;
	}
	snprintf(ep->port, sizeof(ep->port), "%lu", port);
	return 0;
}

static int
set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -1;
	fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
	return fcntl(fd, F_SETFL, fl);
}

int
net_listen(const struct net_endpoint *ep, int backlog)
{
	struct addrinfo hints, *res = NULL;
	int fd = -1, one = 1, rc;
	const char *host = ep->host;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if (strcmp(host, "*") == 0)
		host = NULL;
	rc = getaddrinfo(host, ep->port, &hints, &res);
	if (rc != 0 || res == NULL) {
		errno = EADDRNOTAVAIL;
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
		goto fail;
	if (res->ai_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)
		goto fail;
	if (bind(fd, res->ai_addr, res->ai_addrlen) != 0)
		goto fail;
	if (listen(fd, backlog) != 0)
		goto fail;
	freeaddrinfo(res);
	return fd;
fail:
	{
		int saved = errno;
		if (fd >= 0)
			(void)close(fd);
		freeaddrinfo(res);
		errno = saved;
	}
	return -1;
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
net_connect(const struct net_endpoint *ep, int timeout_ms)
{
	struct addrinfo hints, *res = NULL, *ai;
	long long deadline = now_ms() + timeout_ms;
	int fd = -1, err = ECONNREFUSED;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (getaddrinfo(ep->host, ep->port, &hints, &res) != 0 || res == NULL) {
		errno = EHOSTUNREACH;
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		struct pollfd pfd;
		long long left = deadline - now_ms();
		int soerr = 0;
		socklen_t sl = sizeof(soerr);

		if (left <= 0) {
			err = ETIMEDOUT;
			break;
		}
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			err = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			goto connected;
		if (errno != EINPROGRESS) {
			err = errno;
			(void)close(fd);
			fd = -1;
			continue;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		for (;;) {
			int r = poll(&pfd, 1, (int)left);
			if (r < 0 && errno == EINTR) {
				left = deadline - now_ms();
				if (left <= 0) { r = 0; } else continue;
			}
			if (r <= 0) {
				err = r == 0 ? ETIMEDOUT : errno;
				break;
			}
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
				soerr = errno;
			if (soerr == 0)
				goto connected;
			err = soerr;
			break;
		}
		(void)close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	errno = err;
	return -1;
connected:
	freeaddrinfo(res);
	(void)net_nodelay(fd);
	if (set_nonblock(fd, 0) != 0) {
		(void)close(fd);
		return -1;
	}
	return fd;
}

void
net_unmap(struct sockaddr_storage *ss)
{
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in s4;

	if (ss->ss_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
		return;
	memset(&s4, 0, sizeof(s4));
	s4.sin_family = AF_INET;
	s4.sin_port = s6->sin6_port;
	memcpy(&s4.sin_addr, &s6->sin6_addr.s6_addr[12], 4);
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, &s4, sizeof(s4));
}

int
net_addr_str(const struct sockaddr_storage *ss, char *buf, size_t len, unsigned *port)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
		if (inet_ntop(AF_INET, &s4->sin_addr, buf, (socklen_t)len) == NULL)
			return -1;
		if (port)
			*port = ntohs(s4->sin_port);
		return 0;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		if (inet_ntop(AF_INET6, &s6->sin6_addr, buf, (socklen_t)len) == NULL)
			return -1;
		if (port)
			*port = ntohs(s6->sin6_port);
		return 0;
	}
	snprintf(buf, len, "unknown");
	if (port)
		*port = 0;
	return -1;
}

int
net_cidr_parse(const char *s, struct net_cidr *c, const char **why)
{
	char buf[INET6_ADDRSTRLEN + 8];
	char *slash;
	unsigned long bits;
	unsigned maxbits;

	memset(c, 0, sizeof(*c));
	if (strlen(s) >= sizeof(buf)) {
		*why = "bad network";
		return -1;
	}
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	if (inet_pton(AF_INET, buf, c->addr) == 1) {
		c->family = AF_INET;
		maxbits = 32;
	} else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
		c->family = AF_INET6;
		maxbits = 128;
	} else {
		*why = "bad network address";
		return -1;
	}
	bits = maxbits;
	if (slash) {
		char *end;
		if (!isdigit((unsigned char)slash[1])) {
			*why = "bad prefix length";
			return -1;
		}
		errno = 0;
		bits = strtoul(slash + 1, &end, 10);
		if (errno || *end || bits > maxbits) {
			*why = "bad prefix length";
			return -1;
		}
	}
	c->bits = (unsigned)bits;
	/* clear host bits so matching is a plain prefix compare */
	for (unsigned i = 0; i < maxbits / 8; i++) {
		unsigned lo = i * 8;
		if (lo >= c->bits)
			c->addr[i] = 0;
		else if (lo + 8 > c->bits)
			c->addr[i] &= (uint8_t)(0xff << (8 - (c->bits - lo)));
	}
	return 0;
}

int
net_cidr_match(const struct net_cidr *c, const struct sockaddr_storage *ss)
{
	const uint8_t *a;
	uint8_t mapped[16];
	int fam = ss->ss_family;

	if (fam == AF_INET) {
		a = (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr;
	} else if (fam == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		a = s6->sin6_addr.s6_addr;
		if (c->family == AF_INET && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			memcpy(mapped, a + 12, 4);
			a = mapped;
			fam = AF_INET;
		}
	} else
		return 0;
	if (fam != c->family)
		return 0;
	unsigned full = c->bits / 8, rest = c->bits % 8;
	if (memcmp(a, c->addr, full) != 0)
		return 0;
	if (rest && ((a[full] & (uint8_t)(0xff << (8 - rest))) != c->addr[full]))
		return 0;
	return 1;
}

static int
cidr_add(struct net_cidr_list *l, const char *item, const char *src, int line,
    char *err, size_t errlen)
{
	struct net_cidr c, *nv;
	const char *why = NULL;

	if (net_cidr_parse(item, &c, &why) != 0) {
		if (src)
			snprintf(err, errlen, "%s:%d: \"%s\": %s", src, line, item, why);
		else
			snprintf(err, errlen, "\"%s\": %s", item, why);
		return -1;
	}
	nv = realloc(l->v, (l->n + 1) * sizeof(*nv));
	if (nv == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	l->v = nv;
	l->v[l->n++] = c;
	return 0;
}

static int
cidr_file(struct net_cidr_list *l, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char line[256];
	int lineno = 0;

	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *p = line, *e;
		lineno++;
		while (*p == ' ' || *p == '\t')
			p++;
		e = p + strcspn(p, " \t\r\n#");
		*e = '\0';
		if (*p == '\0')
			continue;
		if (cidr_add(l, p, path, lineno, err, errlen) != 0) {
			fclose(f);
			return -1;
		}
	}
	fclose(f);
	return 0;
}

int
net_cidr_list_parse(const char *s, struct net_cidr_list *l, char *err, size_t errlen)
{
	char *copy = strdup(s), *p, *save = NULL;
	int rc = 0;

	memset(l, 0, sizeof(*l));
	if (copy == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (p = strtok_r(copy, ", \t", &save); p && rc == 0; p = strtok_r(NULL, ", \t", &save)) {
		if (strncmp(p, "file:", 5) == 0)
			rc = cidr_file(l, p + 5, err, errlen);
		else
			rc = cidr_add(l, p, NULL, 0, err, errlen);
	}
	free(copy);
	if (rc != 0)
		net_cidr_list_free(l);
	return rc;
}

int
net_cidr_list_match(const struct net_cidr_list *l, const struct sockaddr_storage *ss)
{
	for (size_t i = 0; i < l->n; i++)
		if (net_cidr_match(&l->v[i], ss))
			return 1;
	return 0;
}

void
net_cidr_list_free(struct net_cidr_list *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}

int
net_nodelay(int fd)
{
	int one = 1;

	return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

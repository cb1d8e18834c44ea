/*
 * net — addresses, listeners, outbound connects with a deadline, CIDRs.
 *
 * Endpoints are written `host:port`, `[v6addr]:port` or `v4addr:port`.
 * net_listen() is called by masters as root before privileges are dropped.
 * net_connect() resolves with getaddrinfo (names from /etc/hosts or the
 * system resolver; the gate's backend is normally an address or a
 * container name) and tries each address until one connects before the
 * deadline. All functions return 0 / -1 (or an fd / -1) and never exit.
 */
#ifndef LIB_NET_H
#define LIB_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>

struct net_endpoint {
	char	host[256];	/* without brackets */
	char	port[16];
};

/* Parse "host:port" / "[v6]:port". -1 on syntax error (why set). */
int  net_parse_endpoint(const char *s, struct net_endpoint *ep, const char **why);

/* Bind+listen (SO_REUSEADDR, IPV6_V6ONLY for v6, non-blocking, CLOEXEC). */
int  net_listen(const struct net_endpoint *ep, int backlog);

/* Connect with a deadline in milliseconds; returns a blocking fd or -1
 * (errno set; ETIMEDOUT on deadline). */
int  net_connect(const struct net_endpoint *ep, int timeout_ms);

/* Disable Nagle on a TCP socket (SMTP replies and commands are small and
 * already batched by io). 0 / -1. */
int  net_nodelay(int fd);

/* Numeric text of an address and its port. buf >= INET6_ADDRSTRLEN. */
int  net_addr_str(const struct sockaddr_storage *ss, char *buf, size_t len,
	    unsigned *port);
/* Same for a v4-mapped v6 address: reported as plain IPv4. */
void net_unmap(struct sockaddr_storage *ss);

/* CIDR networks: "192.0.2.0/24", "2001:db8::/32", or a bare address. */
struct net_cidr {
	int		family;		/* AF_INET or AF_INET6 */
	uint8_t		addr[16];
	unsigned	bits;
};

int  net_cidr_parse(const char *s, struct net_cidr *c, const char **why);
int  net_cidr_match(const struct net_cidr *c, const struct sockaddr_storage *ss);

struct net_cidr_list {
	struct net_cidr	*v;
	size_t		 n;
};
/* Parse a comma list of CIDRs (`file:PATH` items read one CIDR per line,
 * `#` comments). Error text goes to err. */
int  net_cidr_list_parse(const char *s, struct net_cidr_list *l,
	    char *err, size_t errlen);
int  net_cidr_list_match(const struct net_cidr_list *l,
	    const struct sockaddr_storage *ss);
void net_cidr_list_free(struct net_cidr_list *l);

#endif

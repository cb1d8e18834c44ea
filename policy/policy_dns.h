/*
 * policy_dns — one c-ares channel per process (per thread in a threaded
 * caller: a channel must not be used by two threads at once), pointed at
 * the configured resolver: `resolver = system` (/etc/resolv.conf) or
 * `ADDR[:PORT], ...` (IPv6 as [ADDR]:PORT). Timeout per try and number of
 * tries come from the config (dns_timeout, dns_tries).
 *
 * Two ways to drive it:
 *   - event loop (the screen): policy_dns_query() starts queries;
 *     policy_dns_fds() gives the sockets to poll, policy_dns_timeout_ms()
 *     the longest wait, policy_dns_process() hands back what poll saw.
 *   - synchronous (a worker): start queries, then policy_dns_run() polls
 *     until none is pending or the deadline passes (then pending queries
 *     are cancelled: their callbacks see DNS_TEMPFAIL).
 * Callbacks run inside policy_dns_process()/policy_dns_run() and may start
 * further queries.
 *
 * Answers are checked by policy_dns_parse() (every read bounded by the
 * packet length; names expanded by c-ares' ares_expand_name): hostile or truncated packets become DNS_BAD,
 * never a crash. Owner of a struct policy_dns: the caller of
 * policy_dns_open(); policy_dns_close() cancels pending queries (their
 * callbacks run with DNS_TEMPFAIL) and frees it.
 */
#ifndef POLICY_DNS_H
#define POLICY_DNS_H

#include <arpa/nameser.h>
#include <poll.h>
#include <stddef.h>

enum policy_dns_status {
	DNS_OK,			/* an answer (may still hold no RR of the type) */
	DNS_NXDOMAIN,
	DNS_NODATA,		/* the name exists, no RR of the type */
	DNS_TEMPFAIL,		/* timeout, SERVFAIL, refused, cancelled */
	DNS_BAD,		/* malformed or unparsable answer */
};

struct policy_dns;

/* status, then the raw answer (NULL/0 unless DNS_OK). */
typedef void (*policy_dns_cb)(void *arg, enum policy_dns_status status,
	    const unsigned char *abuf, int alen);

int  policy_dns_open(const char *servers, unsigned timeout_ms, unsigned tries,
	    struct policy_dns **out, char *err, size_t errlen);
void policy_dns_close(struct policy_dns *dns);

/* Start a query (class IN) for name and type (ns_t_a, ns_t_txt, ...). */
int  policy_dns_query(struct policy_dns *dns, const char *name, int type,
	    policy_dns_cb cb, void *arg);
/* Number of queries in flight. */
int  policy_dns_pending(const struct policy_dns *dns);

/* Event loop: fill up to max pollfds; returns how many. */
int  policy_dns_fds(struct policy_dns *dns, struct pollfd *fds, int max);
/* Milliseconds until c-ares wants to be called even without I/O
 * (at most max_ms; -1 = nothing pending). */
int  policy_dns_timeout_ms(struct policy_dns *dns, int max_ms);
/* Process poll results for the fds from policy_dns_fds() (revents
 * honoured) and any timeouts. */
void policy_dns_process(struct policy_dns *dns, const struct pollfd *fds, int n);

/* Synchronous: poll until nothing is pending or timeout_ms passed; then
 * cancel what is left. 0, or -1 if queries had to be cancelled. */
int  policy_dns_run(struct policy_dns *dns, int timeout_ms);

/* One query, synchronously (a worker): start it and run the channel up
 * to timeout_ms (other queries on the channel are run too, and cancelled
 * at the deadline). On DNS_OK the raw answer is copied into buf (cap
 * bytes; a longer answer is DNS_BAD) and its length stored in *len. */
enum policy_dns_status policy_dns_lookup(struct policy_dns *dns,
	    const char *name, int type, int timeout_ms, unsigned char *buf,
	    size_t cap, size_t *len);

/* The addresses (A and AAAA, IPv4 first as the resolver gives them) of
 * name, /etc/hosts included, synchronously like policy_dns_lookup: up to
 * max of them in out as text, their count in *n. DNS_OK with *n > 0, or
 * why not. */
enum policy_dns_status policy_dns_addrs(struct policy_dns *dns,
	    const char *name, int timeout_ms, char out[][64], size_t max, size_t *n);

/* Walk the answer section of abuf: fn is called for each RR of `type`
 * (any type if 0) with the RR's TTL and rdata; msg/eom let fn expand
 * compressed names (policy_dns_name). Returns the number of RRs
 * delivered, or -1 (DNS_BAD) if the packet is malformed. */
struct policy_dns_rr {
	int			 type;
	unsigned		 ttl;
	const unsigned char	*rdata;
	unsigned		 rdlen;
	const unsigned char	*msg, *eom;
};
typedef int (*policy_dns_rr_fn)(void *arg, const struct policy_dns_rr *rr);
int  policy_dns_parse(const unsigned char *abuf, int alen, int type,
	    policy_dns_rr_fn fn, void *arg);
/* Expand the (compressed) domain name at `at` inside rr's packet (e.g.
 * rr->rdata for PTR, rr->rdata + 2 for MX) into out. 0 / -1. */
int  policy_dns_name(const struct policy_dns_rr *rr, const unsigned char *at,
	    char *out, size_t cap);
/* Join the character-strings of a TXT rdata into out (NUL-terminated,
 * truncated to cap-1). Returns the full length or -1 if malformed. */
int  policy_dns_txt(const unsigned char *rdata, unsigned rdlen, char *out,
	    size_t cap);
const char *policy_dns_status_name(enum policy_dns_status s);
/* For a policy_dns_cb that keeps the answer: copy a DNS_OK answer into buf
 * (cap bytes), *len its length; DNS_BAD if it is missing or does not fit;
 * any other status is returned as it is, with *len = 0. */
enum policy_dns_status policy_dns_copy_answer(enum policy_dns_status status,
	    const unsigned char *abuf, int alen, unsigned char *buf, size_t cap,
	    size_t *len);

#endif

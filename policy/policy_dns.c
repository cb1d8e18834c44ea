/*
 * policy_dns.c — the c-ares channel wrapper and a bounded answer parser.
 * See policy_dns.h. The struct owns the channel; each in-flight query owns
 * a small record (callback + arg) freed when c-ares calls back.
 */
#include <ares.h>
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy_dns.h"

struct policy_dns {
	ares_channel	 channel;
	int		 pending;
};

/* ares_library_init() is not thread safe: run it once per process (the
 * milter opens channels from several threads) and never clean up. */
static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_rc = ARES_SUCCESS;	/* written once, inside pthread_once */

static void
lib_init(void)
{
	lib_rc = ares_library_init(ARES_LIB_INIT_ALL);
}

struct dns_query {
	struct policy_dns	*dns;
	policy_dns_cb		 cb;
	void			*arg;
};

const char *
policy_dns_status_name(enum policy_dns_status s)
{
	switch (s) {
	case DNS_OK:		return "ok";
	case DNS_NXDOMAIN:	return "nxdomain";
	case DNS_NODATA:	return "nodata";
	case DNS_TEMPFAIL:	return "tempfail";
	case DNS_BAD:		return "bad";
	}
	return "?";
}

/* "127.0.0.1:5353, [::1]:53" -> "127.0.0.1:5353,[::1]:53" */
static int
servers_csv(const char *in, char *out, size_t len)
{
	size_t n = 0;

	for (; *in != '\0'; in++) {
		if (*in == ' ' || *in == '\t')
			continue;
		if (n + 1 >= len)
			return -1;
		out[n++] = *in;
	}
	out[n] = '\0';
	return n > 0 ? 0 : -1;
}

int
policy_dns_open(const char *servers, unsigned timeout_ms, unsigned tries,
    struct policy_dns **out, char *err, size_t errlen)
{
	struct ares_options opt;
	struct policy_dns *dns;
	char csv[1024];
	int rc;

	*out = NULL;
	if (pthread_once(&lib_once, lib_init) != 0 || lib_rc != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares init: %s", ares_strerror(lib_rc));
		return -1;
	}
	if ((dns = calloc(1, sizeof(*dns))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memset(&opt, 0, sizeof(opt));
	opt.timeout = (int)(timeout_ms ? timeout_ms : 2000);
	opt.tries = (int)(tries ? tries : 1);
	opt.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	/* the screen may have hundreds of lookups in flight: room for their
	 * answers (the kernel caps this at net.core.rmem_max) */
	opt.socket_receive_buffer_size = 1 << 20;
	rc = ares_init_options(&dns->channel, &opt,
	    ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS |
	    ARES_OPT_SOCK_RCVBUF);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
		free(dns);
		return -1;
	}
	if (servers != NULL && strcmp(servers, "system") != 0) {
		if (servers_csv(servers, csv, sizeof(csv)) < 0 ||
		    (rc = ares_set_servers_ports_csv(dns->channel, csv)) !=
		    ARES_SUCCESS) {
			snprintf(err, errlen, "resolver \"%.100s\": %s", servers,
			    servers_csv(servers, csv, sizeof(csv)) < 0 ?
			    "empty or too long" : ares_strerror(rc));
			ares_destroy(dns->channel);
			free(dns);
			return -1;
		}
	}
	*out = dns;
	return 0;
}

void
policy_dns_close(struct policy_dns *dns)
{
	if (dns == NULL)
		return;
	ares_destroy(dns->channel);	/* callbacks see ARES_EDESTRUCTION */
	free(dns);
}

static enum policy_dns_status
status_of(int status)
{
	switch (status) {
	case ARES_SUCCESS:
		return DNS_OK;
	case ARES_ENOTFOUND:
	case ARES_EBADNAME:	/* a name that cannot exist (label > 63, ...) */
		return DNS_NXDOMAIN;
	case ARES_ENODATA:
		return DNS_NODATA;
	case ARES_EBADRESP:
	case ARES_EFORMERR:
		return DNS_BAD;
	default:
		return DNS_TEMPFAIL;
	}
}

static void
query_done(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_query *q = arg;
	enum policy_dns_status s;

	(void)timeouts;
	s = status_of(status);
	if (s == DNS_OK && (abuf == NULL || alen <= 0))
		s = DNS_BAD;
	q->dns->pending--;
	q->cb(q->arg, s, s == DNS_OK ? abuf : NULL, s == DNS_OK ? alen : 0);
	free(q);
}

int
policy_dns_query(struct policy_dns *dns, const char *name, int type,
    policy_dns_cb cb, void *arg)
{
	struct dns_query *q = malloc(sizeof(*q));

	if (q == NULL)
		return -1;
	q->dns = dns;
	q->cb = cb;
	q->arg = arg;
	dns->pending++;
	ares_query(dns->channel, name, ns_c_in, type, query_done, q);
	return 0;
}

int
policy_dns_pending(const struct policy_dns *dns)
{
	return dns->pending;
}

int
policy_dns_fds(struct policy_dns *dns, struct pollfd *fds, int max)
{
	ares_socket_t socks[ARES_GETSOCK_MAXNUM];
	int bits, i, n = 0;

	bits = ares_getsock(dns->channel, socks, ARES_GETSOCK_MAXNUM);
	for (i = 0; i < ARES_GETSOCK_MAXNUM && n < max; i++) {
		short ev = 0;
		/* c-ares' ARES_GETSOCK_WRITABLE shifts a signed 1 into bit
		 * 31 (undefined behaviour): test the bits unsigned. */
		if ((unsigned)bits & (1u << i))
			ev |= POLLIN;
		if ((unsigned)bits & (1u << (i + ARES_GETSOCK_MAXNUM)))
			ev |= POLLOUT;
		if (ev == 0)
			continue;
		fds[n].fd = socks[i];
		fds[n].events = ev;
		fds[n].revents = 0;
		n++;
	}
	return n;
}

int
policy_dns_timeout_ms(struct policy_dns *dns, int max_ms)
{
	struct timeval maxtv, tv, *t;
	long ms;

	if (dns->pending == 0)
		return -1;
	maxtv.tv_sec = max_ms / 1000;
	maxtv.tv_usec = (max_ms % 1000) * 1000;
	t = ares_timeout(dns->channel, &maxtv, &tv);
	ms = t->tv_sec * 1000 + (t->tv_usec + 999) / 1000;
	return ms > max_ms ? max_ms : (int)ms;
}

void
policy_dns_process(struct policy_dns *dns, const struct pollfd *fds, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		if (fds[i].revents == 0)
			continue;
		ares_process_fd(dns->channel,
		    fds[i].revents & (POLLIN | POLLERR | POLLHUP) ?
		    fds[i].fd : ARES_SOCKET_BAD,
		    fds[i].revents & POLLOUT ? fds[i].fd : ARES_SOCKET_BAD);
	}
	/* timeouts and retries */
	ares_process_fd(dns->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
policy_dns_run(struct policy_dns *dns, int timeout_ms)
{
	struct pollfd fds[ARES_GETSOCK_MAXNUM];
	long long deadline = now_ms() + timeout_ms, left;
	int n, t, guard = 0;

	while (dns->pending > 0 && guard++ < 100000) {
		left = deadline - now_ms();
		if (left <= 0)
			break;
		n = policy_dns_fds(dns, fds, ARES_GETSOCK_MAXNUM);
		t = policy_dns_timeout_ms(dns, (int)left);
		if (t < 0)
			t = (int)left;
		if (poll(fds, (nfds_t)n, t) < 0 && errno != EINTR)
			break;
		policy_dns_process(dns, fds, n);
	}
	if (dns->pending > 0) {
		ares_cancel(dns->channel);	/* callbacks: ARES_ECANCELLED */
		return -1;
	}
	return 0;
}

struct sync_query {
	int			 done;
	enum policy_dns_status	 status;
	unsigned char		*buf;
	size_t			 cap, len;
};

static void
sync_cb(void *arg, enum policy_dns_status status, const unsigned char *abuf,
    int alen)
{
	struct sync_query *q = arg;

	q->done = 1;
	q->status = policy_dns_copy_answer(status, abuf, alen, q->buf, q->cap, &q->len);
}

enum policy_dns_status
policy_dns_copy_answer(enum policy_dns_status status, const unsigned char *abuf,
    int alen, unsigned char *buf, size_t cap, size_t *len)
{
	*len = 0;
	if (status != DNS_OK)
		return status;
	if (abuf == NULL || alen <= 0 || (size_t)alen > cap)
		return DNS_BAD;
	memcpy(buf, abuf, (size_t)alen);
	*len = (size_t)alen;
	return DNS_OK;
}

enum policy_dns_status
policy_dns_lookup(struct policy_dns *dns, const char *name, int type,
    int timeout_ms, unsigned char *buf, size_t cap, size_t *len)
{
	struct sync_query q = { 0, DNS_TEMPFAIL, buf, cap, 0 };

	*len = 0;
	if (policy_dns_query(dns, name, type, sync_cb, &q) < 0)
		return DNS_TEMPFAIL;
	if (!q.done)
		(void)policy_dns_run(dns, timeout_ms);
	if (!q.done)		/* cannot happen: run cancels what is left */
		return DNS_TEMPFAIL;
	*len = q.len;
	return q.status;
}

struct addr_query {
	struct policy_dns	*dns;
	int			 done;
	enum policy_dns_status	 status;
	char			(*out)[64];
	size_t			 max, n;
};

static void
addrs_done(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
	struct addr_query *q = arg;

	(void)timeouts;
	q->dns->pending--;
	q->done = 1;
	q->status = status_of(status);
	for (struct ares_addrinfo_node *p = ai ? ai->nodes : NULL; p && q->n < q->max;
	    p = p->ai_next) {
		const void *a = NULL;
		if (p->ai_family == AF_INET)
			a = &((const struct sockaddr_in *)(const void *)p->ai_addr)->sin_addr;
		else if (p->ai_family == AF_INET6)
			a = &((const struct sockaddr_in6 *)(const void *)p->ai_addr)->sin6_addr;
		if (a && inet_ntop(p->ai_family, a, q->out[q->n], 64) != NULL)
			q->n++;
	}
	if (ai != NULL)
		ares_freeaddrinfo(ai);
}

enum policy_dns_status
policy_dns_addrs(struct policy_dns *dns, const char *name, int timeout_ms,
    char out[][64], size_t max, size_t *n)
{
	struct ares_addrinfo_hints hints;
	struct addr_query q = { dns, 0, DNS_TEMPFAIL, out, max, 0 };

	*n = 0;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	dns->pending++;
	ares_getaddrinfo(dns->channel, name, NULL, &hints, addrs_done, &q);
	if (!q.done)
		(void)policy_dns_run(dns, timeout_ms);
	if (!q.done)		/* cannot happen: run cancels what is left */
		return DNS_TEMPFAIL;
	*n = q.n;
	return q.status == DNS_OK && q.n == 0 ? DNS_NODATA : q.status;
}

/* Validate the (possibly compressed) name at off and return the offset
 * just after it, or -1. Every compression pointer must point strictly
 * backwards (so no loops) and the expanded name stays within 255 bytes. */
static int
skip_name(const unsigned char *p, int len, int off)
{
	int pos = off, end = -1, total = 0, hops = 0;

	while (pos < len) {
		unsigned l = p[pos];
		if ((l & 0xc0) == 0xc0) {
			int target;
			if (pos + 2 > len || ++hops > 64)
				return -1;
			target = (int)(((l & 0x3f) << 8) | p[pos + 1]);
			if (target >= pos || target < 12)
				return -1;
			if (end < 0)
				end = pos + 2;
			pos = target;
			continue;
		}
		if ((l & 0xc0) != 0)
			return -1;
		if (l == 0)
			return end >= 0 ? end : pos + 1;
		total += (int)l + 1;
		if (total > 255 || pos + 1 + (int)l > len)
			return -1;
		pos += 1 + (int)l;
	}
	return -1;
}

int
policy_dns_parse(const unsigned char *abuf, int alen, int type,
    policy_dns_rr_fn fn, void *arg)
{
	int off = 12, i, qd, an, n = 0;

	if (abuf == NULL || alen < 12)
		return -1;
	qd = (abuf[4] << 8) | abuf[5];
	an = (abuf[6] << 8) | abuf[7];
	for (i = 0; i < qd; i++) {
		if ((off = skip_name(abuf, alen, off)) < 0 || off + 4 > alen)
			return -1;
		off += 4;
	}
	for (i = 0; i < an; i++) {
		struct policy_dns_rr r;
		int rtype, rclass;
		if ((off = skip_name(abuf, alen, off)) < 0 || off + 10 > alen)
			return -1;
		rtype = (abuf[off] << 8) | abuf[off + 1];
		rclass = (abuf[off + 2] << 8) | abuf[off + 3];
		r.ttl = ((unsigned)abuf[off + 4] << 24) |
		    ((unsigned)abuf[off + 5] << 16) |
		    ((unsigned)abuf[off + 6] << 8) | abuf[off + 7];
		if (r.ttl > 0x7fffffffu)	/* RFC 2181 8 */
			r.ttl = 0;
		r.rdlen = (unsigned)((abuf[off + 8] << 8) | abuf[off + 9]);
		off += 10;
		if (off + (int)r.rdlen > alen)
			return -1;
		r.type = rtype;
		r.rdata = abuf + off;
		r.msg = abuf;
		r.eom = abuf + alen;
		off += (int)r.rdlen;
		if (rclass != ns_c_in || (type != 0 && rtype != type))
			continue;	/* CNAMEs and strays */
		n++;
		if (fn != NULL && fn(arg, &r) < 0)
			break;
	}
	return n;
}

int
policy_dns_name(const struct policy_dns_rr *rr, const unsigned char *at,
    char *out, size_t cap)
{
	char *name = NULL;
	long enclen = 0;
	size_t l;

	if (at < rr->msg || at >= rr->eom ||
	    ares_expand_name(at, rr->msg, (int)(rr->eom - rr->msg), &name,
	    &enclen) != ARES_SUCCESS)
		return -1;
	l = strlen(name);
	if (l >= cap) {
		ares_free_string(name);
		return -1;
	}
	memcpy(out, name, l + 1);
	ares_free_string(name);
	return 0;
}

int
policy_dns_txt(const unsigned char *rdata, unsigned rdlen, char *out,
    size_t cap)
{
	unsigned off = 0;
	size_t n = 0;
	int total = 0;

	if (cap == 0)
		return -1;
	while (off < rdlen) {
		unsigned l = rdata[off++];
		if (off + l > rdlen) {
			out[n] = '\0';
			return -1;
		}
		for (unsigned i = 0; i < l; i++)
			if (n + 1 < cap)
				out[n++] = (char)rdata[off + i];
		total += (int)l;
		off += l;
	}
	out[n] = '\0';
	return total;
}

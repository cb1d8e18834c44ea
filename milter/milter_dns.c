/*
 * milter_dns.c — DKIM key lookups through the configured resolver.
 * libopendkim lets a caller replace its DNS functions (query start, wait
 * for the reply, cancel); here they run on policy_dns (c-ares), so the
 * keys come from the same `resolver = ADDR:PORT` (with the same
 * dns_timeout and dns_tries) as SPF and DNSBL, not from libresolv.
 *
 * Each key query gets its own policy_dns channel (a channel belongs to
 * one thread; libopendkim calls these from the message's thread and
 * gives us no per-connection handle). libopendkim reads a raw DNS
 * answer: a real one is copied; NXDOMAIN and "no such record" become a
 * header with that rcode, the question (libopendkim checks its type and
 * class) and no records: libopendkim's "no key" (dkim=permerror);
 * a timeout or SERVFAIL is a failed query (dkim=temperror).
 *
 * The service handle given to libopendkim is the (read-only) settings.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "log.h"
#include "milter.h"

struct mdns_query {
	struct policy_dns	*dns;
	unsigned char		*buf;
	size_t			 cap, len;
	int			 done;
	enum policy_dns_status	 status;
	int			 wait_ms;
	char			 name[256];	/* the question */
};

/* An answer with no records: header (rcode), question name TXT IN. */
static size_t
mdns_empty_answer(const char *name, int rcode, unsigned char *buf, size_t cap)
{
	size_t o = 12;
	const char *p = name;

	if (cap < 12 + 2 + 4 + strlen(name))
		return 0;
	memset(buf, 0, 12);
	buf[2] = 0x80;			/* QR */
	buf[3] = (unsigned char)rcode;
	buf[5] = 1;			/* qdcount */
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);

		if (n == 0 || n > 63)
			return 0;
		buf[o++] = (unsigned char)n;
		memcpy(buf + o, p, n);
		o += n;
		p += n + (dot != NULL);
	}
	buf[o++] = 0;
	buf[o++] = 0;
	buf[o++] = 16;			/* TXT */
	buf[o++] = 0;
	buf[o++] = 1;			/* IN */
	return o;
}

static void
mdns_done(void *arg, enum policy_dns_status status, const unsigned char *abuf,
    int alen)
{
	struct mdns_query *q = arg;

	q->done = 1;
	q->status = policy_dns_copy_answer(status, abuf, alen, q->buf, q->cap, &q->len);
	if (status == DNS_NXDOMAIN || status == DNS_NODATA)
		q->len = mdns_empty_answer(q->name, status == DNS_NXDOMAIN ? 3 : 0, q->buf,
		    q->cap);
}

static int
mdns_start(void *srv, int type, unsigned char *query, unsigned char *buf,
    size_t buflen, void **qh)
{
	const struct milter_settings *s = srv;
	struct mdns_query *q;
	char err[256];

	if ((q = calloc(1, sizeof *q)) == NULL)
		return DKIM_DNS_ERROR;
	q->buf = buf;
	q->cap = buflen;
	if (snprintf(q->name, sizeof q->name, "%s", (const char *)query) >=
	    (int)sizeof q->name) {
		free(q);
		return DKIM_DNS_ERROR;
	}
	q->status = DNS_TEMPFAIL;
	q->wait_ms = (int)(s->pc.dns_timeout_ms * (s->pc.dns_tries ? s->pc.dns_tries : 1));
	if (policy_dns_open(s->pc.resolver, s->pc.dns_timeout_ms, s->pc.dns_tries, &q->dns,
	    err, sizeof err) != 0) {
		log_warn("dkim key %s: resolver: %s", (const char *)query, err);
		free(q);
		return DKIM_DNS_ERROR;
	}
	if (policy_dns_query(q->dns, (const char *)query, type, mdns_done, q) < 0) {
		policy_dns_close(q->dns);
		free(q);
		return DKIM_DNS_ERROR;
	}
	*qh = q;
	return DKIM_DNS_SUCCESS;
}

static int
mdns_waitreply(void *srv, void *qh, struct timeval *to, size_t *bytes, int *error,
    int *dnssec)
{
	struct mdns_query *q = qh;
	int ms = q->wait_ms;

	(void)srv;
	if (to && to->tv_sec >= 0 && to->tv_sec < 3600 &&
	    to->tv_sec * 1000 + to->tv_usec / 1000 < ms)
		ms = (int)(to->tv_sec * 1000 + to->tv_usec / 1000);
	if (!q->done)
		(void)policy_dns_run(q->dns, ms > 0 ? ms : 1);
	if (dnssec)
		*dnssec = DKIM_DNSSEC_UNKNOWN;
	if (error)
		*error = 0;
	if (!q->done)
		return DKIM_DNS_EXPIRED;
	switch (q->status) {
	case DNS_OK:
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		if (q->len == 0)
			return DKIM_DNS_ERROR;
		if (bytes)
			*bytes = q->len;
		return DKIM_DNS_SUCCESS;
	case DNS_TEMPFAIL:
		return DKIM_DNS_EXPIRED;
	default:
		return DKIM_DNS_ERROR;
	}
}

static int
mdns_cancel(void *srv, void *qh)
{
	struct mdns_query *q = qh;

	(void)srv;
	if (q == NULL)
		return DKIM_DNS_SUCCESS;
	policy_dns_close(q->dns);	/* runs mdns_done: q still alive */
	free(q);
	return DKIM_DNS_SUCCESS;
}

int
milter_dns_setup(DKIM_LIB *lib, const struct milter_settings *s)
{
	/* no libresolv service: init/close would replace ours */
	dkim_dns_set_init(lib, NULL);
	dkim_dns_set_close(lib, NULL);
	dkim_dns_set_nslist(lib, NULL);
	dkim_dns_set_config(lib, NULL);
	dkim_dns_set_trustanchor(lib, NULL);
	(void)dkim_dns_set_query_service(lib, (void *)s);
	dkim_dns_set_query_start(lib, mdns_start);
	dkim_dns_set_query_waitreply(lib, mdns_waitreply);
	dkim_dns_set_query_cancel(lib, mdns_cancel);
	return dkim_dns_init(lib) == DKIM_DNS_SUCCESS ? 0 : -1;
}

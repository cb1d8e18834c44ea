/*
 * relay_dns — the smarthost's MX hosts and addresses, synchronously, through
 * the one c-ares wrapper (policy/policy_dns.c): a channel per call
 * (delivery workers look a smarthost up once per connection, so caching
 * buys nothing), each call bounded by timeout_ms. `resolver` is "system"
 * or "ADDR[:PORT]" / "[V6]:PORT" for a private server (tests use unbound
 * on loopback). Addresses come through ares_getaddrinfo, /etc/hosts
 * included, so "[localhost]:2525" works as a smarthost.
 */
#include <stdio.h>
#include <string.h>
#include <arpa/nameser.h>

#include "policy_dns.h"
#include "relay_dns.h"

struct mx_result {
	char		(*hosts)[256];
	unsigned short	 prefs[RELAY_MX_MAX];
	size_t		 max, n;
};

/* One MX RR: kept in preference order (insertion sort), "." skipped. */
static int
mx_rr(void *arg, const struct policy_dns_rr *rr)
{
	struct mx_result *r = arg;
	char host[256];
	unsigned short pref;
	size_t i;

	if (rr->rdlen < 3 || policy_dns_name(rr, rr->rdata + 2, host, sizeof(host)) != 0)
		return -1;
	if (host[0] == '\0' || r->n >= r->max)
		return 0;
	pref = (unsigned short)(rr->rdata[0] << 8 | rr->rdata[1]);
	for (i = r->n; i > 0 && r->prefs[i - 1] > pref; i--) {
		memcpy(r->hosts[i], r->hosts[i - 1], 256);
		r->prefs[i] = r->prefs[i - 1];
	}
	snprintf(r->hosts[i], 256, "%s", host);
	r->prefs[i] = pref;
	r->n++;
	return 0;
}

static struct policy_dns *
channel(const char *resolver, int timeout_ms, char *err, size_t errlen)
{
	struct policy_dns *dns;

	/* two tries, each half the time */
	if (policy_dns_open(resolver && *resolver ? resolver : "system",
	    timeout_ms > 0 ? (unsigned)timeout_ms / 2 : 2500, 2, &dns, err, errlen) != 0)
		return NULL;
	return dns;
}

int
relay_dns_mx(const char *name, const char *resolver, int timeout_ms,
    char hosts[][256], size_t *n, char *err, size_t errlen)
{
	struct mx_result r = { hosts, { 0 }, RELAY_MX_MAX, 0 };
	struct policy_dns *dns;
	unsigned char buf[4096];
	size_t len;
	enum policy_dns_status st;

	*n = 0;
	if ((dns = channel(resolver, timeout_ms, err, errlen)) == NULL)
		return -1;
	st = policy_dns_lookup(dns, name, ns_t_mx, timeout_ms > 0 ? timeout_ms : 5000,
	    buf, sizeof(buf), &len);
	policy_dns_close(dns);
	if (st == DNS_OK && policy_dns_parse(buf, (int)len, ns_t_mx, mx_rr, &r) < 0)
		st = DNS_BAD;
	if (st == DNS_NODATA || (st == DNS_OK && r.n == 0)) {
		snprintf(hosts[0], 256, "%s", name);	/* no MX: the name itself */
		*n = 1;
		return 0;
	}
	if (st != DNS_OK) {
		snprintf(err, errlen, "MX lookup for %s: %s", name, policy_dns_status_name(st));
		return -1;
	}
	*n = r.n;
	return 0;
}

int
relay_dns_addrs(const char *name, const char *resolver, int timeout_ms,
    char addrs[][64], size_t *n, char *err, size_t errlen)
{
	struct policy_dns *dns;
	enum policy_dns_status st;

	*n = 0;
	if ((dns = channel(resolver, timeout_ms, err, errlen)) == NULL)
		return -1;
	st = policy_dns_addrs(dns, name, timeout_ms > 0 ? timeout_ms : 5000, addrs,
	    RELAY_ADDR_MAX, n);
	policy_dns_close(dns);
	if (st != DNS_OK) {
		snprintf(err, errlen, "address lookup for %s: %s", name,
		    st == DNS_NODATA ? "no address" : policy_dns_status_name(st));
		return -1;
	}
	return 0;
}

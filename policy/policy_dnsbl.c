/*
 * policy_dnsbl.c — dnsbl_sites parsing, answer classification, parallel
 * lookups through policy_dns, per-IP cache in the store. See
 * policy_dnsbl.h. A struct policy_dnsbl_lookup is owned by the lookup
 * until `done` runs, then by the caller until policy_dnsbl_finish().
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "policy_dnsbl.h"

void
policy_dnsbl_config_init(struct policy_dnsbl_config *bc)
{
	memset(bc, 0, sizeof(*bc));
	bc->mode = POLICY_ENFORCE;
	bc->threshold = 1;
	bc->wl_threshold = -1;
	bc->cache_min = 60;
	bc->cache_max = 3600;
	bc->timeout_ms = 4000;
	bc->on_dns_error = POLICY_FAIL_OPEN;
	bc->on_store_error = POLICY_FAIL_OPEN;
}

void
policy_dnsbl_free(struct policy_dnsbl_config *bc)
{
	free(bc->zones);
	bc->zones = NULL;
	bc->nzones = 0;
}

static const char *
parse_octet_num(const char **pp, unsigned char *out)
{
	const char *p = *pp;
	unsigned v = 0;
	int digits = 0;

	while (isdigit((unsigned char)*p) && digits < 4) {
		v = v * 10 + (unsigned)(*p - '0');
		p++;
		digits++;
	}
	if (digits == 0 || digits > 3 || v > 255)
		return "filter octet must be 0..255";
	*out = (unsigned char)v;
	*pp = p;
	return NULL;
}

/* "127.0.0.[2..11]" into lo/hi. */
static const char *
parse_filter(const char *p, struct policy_dnsbl_zone *z)
{
	const char *why;
	int i;

	for (i = 0; i < 4; i++) {
		if (*p == '*') {
			z->lo[i] = 0;
			z->hi[i] = 255;
			p++;
		} else if (*p == '[') {
			p++;
			if ((why = parse_octet_num(&p, &z->lo[i])) != NULL)
				return why;
			if (strncmp(p, "..", 2) != 0)
				return "filter range must be [lo..hi]";
			p += 2;
			if ((why = parse_octet_num(&p, &z->hi[i])) != NULL)
				return why;
			if (*p++ != ']')
				return "filter range must be [lo..hi]";
			if (z->lo[i] > z->hi[i])
				return "filter range lo is above hi";
		} else {
			if ((why = parse_octet_num(&p, &z->lo[i])) != NULL)
				return why;
			z->hi[i] = z->lo[i];
		}
		if (i < 3 && *p++ != '.')
			return "filter must have four octets, like 127.0.0.[2..11]";
	}
	if (*p != '\0')
		return "junk after the filter";
	z->has_filter = 1;
	return NULL;
}

static const char *
parse_site(char *s, struct policy_dnsbl_zone *z)
{
	char *star = strrchr(s, '*'), *eq, *end;
	size_t i, zl;
	long w = 1;

	memset(z, 0, sizeof(*z));
	if (star != NULL && star[1] != '\0' &&
	    (star[1] == '-' || star[1] == '+' || isdigit((unsigned char)star[1]))) {
		errno = 0;
		w = strtol(star + 1, &end, 10);
		if (errno != 0 || *end != '\0' || w < -1000 || w > 1000 || w == 0)
			return "weight must be a non-zero integer in -1000..1000";
		*star = '\0';
	}
	z->weight = (int)w;
	if ((eq = strchr(s, '=')) != NULL)
		*eq = '\0';
	zl = strlen(s);
	while (zl > 0 && s[zl - 1] == '.')
		s[--zl] = '\0';
	if (zl == 0 || zl > 200)
		return "zone name missing or too long";
	for (i = 0; i < zl; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' &&
		    s[i] != '-' && s[i] != '_')
			return "bad character in zone name";
	memcpy(z->zone, s, zl + 1);
	if (eq != NULL)
		return parse_filter(eq + 1, z);
	return NULL;
}

const char *
policy_dnsbl_parse(const char *s, struct policy_dnsbl_config *bc)
{
	struct conf_list l;
	struct policy_dnsbl_zone *zones;
	const char *why = NULL;
	size_t i;

	if (conf_split_list(s, &l) < 0)
		return "out of memory";
	if (l.n > 64) {
		conf_list_free(&l);
		return "too many zones (64 at most)";
	}
	zones = l.n ? calloc(l.n, sizeof(*zones)) : NULL;
	if (l.n && zones == NULL) {
		conf_list_free(&l);
		return "out of memory";
	}
	for (i = 0; i < l.n && why == NULL; i++)
		why = parse_site(l.v[i], &zones[i]);
	if (why != NULL) {
		free(zones);
	} else {
		free(bc->zones);
		bc->zones = zones;
		bc->nzones = l.n;
	}
	conf_list_free(&l);
	return why;
}

enum policy_dnsbl_answer
policy_dnsbl_classify(const struct policy_dnsbl_zone *z,
    const unsigned char a[4])
{
	int i;

	if (a[0] != 127 || (a[1] == 255 && a[2] == 255))
		return DNSBL_INVALID;
	if (!z->has_filter)
		return DNSBL_MATCH;
	for (i = 0; i < 4; i++)
		if (a[i] < z->lo[i] || a[i] > z->hi[i])
			return DNSBL_NOMATCH;
	return DNSBL_MATCH;
}

int
policy_dnsbl_name(const struct sockaddr_storage *ss, const char *zone,
    char *buf, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	int fam = policy_ip_bytes(ss, b), n, i;
	size_t off = 0;

	if (fam == AF_INET) {
		n = snprintf(buf, len, "%u.%u.%u.%u.%s", b[3], b[2], b[1], b[0],
		    zone);
		return n < 0 || (size_t)n >= len ? -1 : 0;
	}
	if (fam != AF_INET6 || len < 64 + 1)
		return -1;
	for (i = 15; i >= 0; i--) {
		buf[off++] = hex[b[i] & 0xf];
		buf[off++] = '.';
		buf[off++] = hex[b[i] >> 4];
		buf[off++] = '.';
	}
	n = snprintf(buf + off, len - off, "%s", zone);
	return n < 0 || (size_t)n >= len - off ? -1 : 0;
}

/* ---- lookups ---- */

enum zstate { Z_PENDING, Z_LISTED, Z_CLEAN, Z_ERROR };

struct zone_query {
	struct policy_dnsbl_lookup	*lk;
	size_t				 idx;
};

struct zone_state {
	enum zstate	 state;
	unsigned	 ttl;
	unsigned char	 addr[4];
	char		 txt[256];
	const char	*why;		/* error reason */
	struct zone_query q;
};

struct policy_dnsbl_lookup {
	const struct policy_dnsbl_config *bc;
	struct policy_dns	*dns;
	struct policy_store	*st;
	char			 ip[64];
	struct sockaddr_storage	 ss;
	policy_dnsbl_done	 done;
	void			*arg;
	int			 outstanding;
	int			 store_error;
	int			 cached;
	int			 cached_score;
	char			 cached_zones[256];
	char			 cached_txt[256];
	struct zone_state	*z;
};

struct a_walk {
	const struct policy_dnsbl_zone	*zone;
	struct zone_state		*zs;
	int				 match, invalid;
	unsigned			 ttl;
};

static int
a_rr(void *arg, const struct policy_dns_rr *rr)
{
	struct a_walk *w = arg;

	if (rr->rdlen != 4) {
		w->invalid++;
		return 0;
	}
	switch (policy_dnsbl_classify(w->zone, rr->rdata)) {
	case DNSBL_MATCH:
		if (!w->match)
			memcpy(w->zs->addr, rr->rdata, 4);
		w->match++;
		break;
	case DNSBL_INVALID:
		w->invalid++;
		memcpy(w->zs->addr, rr->rdata, 4);
		break;
	case DNSBL_NOMATCH:
		break;
	}
	if (rr->ttl < w->ttl)
		w->ttl = rr->ttl;
	return 0;
}

static void
lookup_step_done(struct policy_dnsbl_lookup *lk)
{
	if (--lk->outstanding == 0)
		lk->done(lk->arg, lk);
}

static int
txt_rr(void *arg, const struct policy_dns_rr *rr)
{
	struct zone_state *zs = arg;

	if (policy_dns_txt(rr->rdata, rr->rdlen, zs->txt, sizeof(zs->txt)) < 0)
		zs->txt[0] = '\0';
	return -1;		/* the first TXT is enough */
}

static void
txt_cb(void *arg, enum policy_dns_status status, const unsigned char *abuf,
    int alen)
{
	struct zone_query *q = arg;
	struct zone_state *zs = &q->lk->z[q->idx];
	size_t n;

	if (status == DNS_OK &&
	    policy_dns_parse(abuf, alen, ns_t_txt, txt_rr, zs) < 0)
		zs->txt[0] = '\0';
	/* it goes into a reply line: printable ASCII only */
	for (n = 0; zs->txt[n] != '\0'; n++)
		if ((unsigned char)zs->txt[n] < 0x20 ||
		    (unsigned char)zs->txt[n] > 0x7e)
			zs->txt[n] = '?';
	lookup_step_done(q->lk);
}

static void
a_cb(void *arg, enum policy_dns_status status, const unsigned char *abuf,
    int alen)
{
	struct zone_query *q = arg;
	struct policy_dnsbl_lookup *lk = q->lk;
	const struct policy_dnsbl_zone *zone = &lk->bc->zones[q->idx];
	struct zone_state *zs = &lk->z[q->idx];
	struct a_walk w = { zone, zs, 0, 0, 0xffffffffu };
	char name[320];

	switch (status) {
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		zs->state = Z_CLEAN;
		zs->ttl = lk->bc->cache_max;
		break;
	case DNS_OK:
		if (policy_dns_parse(abuf, alen, ns_t_a, a_rr, &w) < 0) {
			zs->state = Z_ERROR;
			zs->why = "malformed";
		} else if (w.invalid) {
			zs->state = Z_ERROR;
			zs->why = "invalid-answer";
		} else if (w.match) {
			zs->state = Z_LISTED;
			zs->ttl = w.ttl;
		} else {
			zs->state = Z_CLEAN;
			zs->ttl = w.ttl == 0xffffffffu ? lk->bc->cache_max : w.ttl;
		}
		break;
	default:
		zs->state = Z_ERROR;
		zs->why = policy_dns_status_name(status);
		break;
	}
	if (zs->state == Z_LISTED && zone->weight > 0 &&
	    policy_dnsbl_name(&lk->ss, zone->zone, name, sizeof(name)) == 0) {
		lk->outstanding++;
		if (policy_dns_query(lk->dns, name, ns_t_txt, txt_cb, q) < 0)
			lk->outstanding--;
	}
	lookup_step_done(lk);
}

/* Cache key "d:CONFHASH:IP": a change of zones, filters or weights makes
 * earlier scores unreachable (they expire on their own). */
static void
cache_key(const struct policy_dnsbl_lookup *lk, char *key, size_t len)
{
	const struct policy_dnsbl_config *bc = lk->bc;
	unsigned h = 2166136261u;
	size_t i, k;

	for (i = 0; i < bc->nzones; i++) {
		const unsigned char *p = (const unsigned char *)&bc->zones[i];
		for (k = 0; k < sizeof(bc->zones[i].zone) && p[k]; k++)
			h = (h ^ p[k]) * 16777619u;
		for (k = 0; k < 4; k++)
			h = ((h ^ bc->zones[i].lo[k]) * 16777619u ^
			    bc->zones[i].hi[k]) * 16777619u;
		h = (h ^ (unsigned)bc->zones[i].weight) * 16777619u;
		h = (h ^ (unsigned)bc->zones[i].has_filter) * 16777619u;
	}
	snprintf(key, len, "d:%08x:%s", h, lk->ip);
}

/* Cached "SCORE\tZONES\tTXT" for this IP? 1 hit, 0 miss, -1 store error. */
static int
cache_get(struct policy_dnsbl_lookup *lk)
{
	char key[96], val[600], *t1, *t2, *end;
	size_t len;
	long v;
	enum policy_store_status s;

	cache_key(lk, key, sizeof(key));
	s = policy_store_get(lk->st, key, val, sizeof(val) - 1, &len, NULL);
	if (s == STORE_ERROR)
		return -1;
	if (s != STORE_OK)
		return 0;
	val[len] = '\0';
	if ((t1 = strchr(val, '\t')) == NULL ||
	    (t2 = strchr(t1 + 1, '\t')) == NULL)
		return 0;
	*t1++ = '\0';
	*t2++ = '\0';
	errno = 0;
	v = strtol(val, &end, 10);
	if (errno != 0 || *end != '\0' || v < -100000 || v > 100000)
		return 0;
	lk->cached_score = (int)v;
	snprintf(lk->cached_zones, sizeof(lk->cached_zones), "%s", t1);
	snprintf(lk->cached_txt, sizeof(lk->cached_txt), "%s", t2);
	lk->cached = 1;
	return 1;
}

int
policy_dnsbl_start(const struct policy_dnsbl_config *bc,
    struct policy_dns *dns, struct policy_store *st,
    const struct sockaddr_storage *ss, policy_dnsbl_done done, void *arg)
{
	struct policy_dnsbl_lookup *lk;
	char name[320];
	size_t i;

	if ((lk = calloc(1, sizeof(*lk))) == NULL)
		return -1;
	if (bc->nzones > 0 && (lk->z = calloc(bc->nzones, sizeof(*lk->z))) == NULL) {
		free(lk);
		return -1;
	}
	lk->bc = bc;
	lk->dns = dns;
	lk->st = st;
	lk->ss = *ss;
	lk->done = done;
	lk->arg = arg;
	if (policy_ip_str(ss, lk->ip, sizeof(lk->ip)) < 0)
		snprintf(lk->ip, sizeof(lk->ip), "?");
	lk->outstanding = 1;	/* held until every query is started */
	if (bc->mode != POLICY_IGNORE && bc->nzones > 0 && st != NULL) {
		int c = cache_get(lk);
		if (c < 0)
			lk->store_error = 1;
		if (c > 0) {
			lookup_step_done(lk);
			return 0;
		}
	}
	for (i = 0; bc->mode != POLICY_IGNORE && i < bc->nzones; i++) {
		struct zone_state *zs = &lk->z[i];
		zs->q.lk = lk;
		zs->q.idx = i;
		if (dns == NULL) {
			zs->state = Z_ERROR;
			zs->why = "no-resolver";
			continue;
		}
		if (policy_dnsbl_name(ss, bc->zones[i].zone, name,
		    sizeof(name)) < 0) {
			zs->state = Z_ERROR;
			zs->why = "bad-name";
			continue;
		}
		lk->outstanding++;
		if (policy_dns_query(dns, name, ns_t_a, a_cb, &zs->q) < 0) {
			lk->outstanding--;
			zs->state = Z_ERROR;
			zs->why = "no-memory";
		}
	}
	lookup_step_done(lk);
	return 0;
}

static void
cache_put(struct policy_dnsbl_lookup *lk, int score, const char *zones,
    const char *txt, unsigned ttl)
{
	char key[96], val[600];
	int n;

	if (lk->st == NULL || lk->store_error)
		return;
	if (ttl < lk->bc->cache_min)
		ttl = lk->bc->cache_min;
	if (ttl > lk->bc->cache_max)
		ttl = lk->bc->cache_max;
	if (ttl == 0)
		return;
	cache_key(lk, key, sizeof(key));
	n = snprintf(val, sizeof(val), "%d\t%s\t%s", score, zones, txt);
	if (n < 0 || (size_t)n >= sizeof(val))
		return;
	(void)policy_store_set(lk->st, key, val, (size_t)n, ttl, 0);
}

enum policy_verdict
policy_dnsbl_finish(struct policy_dnsbl_lookup *lk, struct policy_result *res,
    int *scorep)
{
	const struct policy_dnsbl_config *bc = lk->bc;
	char zones[256] = "", errs[256] = "", txt[256] = "", top[256] = "";
	int score = 0, toph = 0, errors = 0, n;
	unsigned ttl = 0xffffffffu;
	size_t i, zl = 0, el = 0;

	policy_result_init(res, "dnsbl");
	if (bc->mode == POLICY_IGNORE || bc->nzones == 0) {
		free(lk->z);
		free(lk);
		if (scorep)
			*scorep = 0;
		policy_result_set(res, POLICY_SKIP, 0, NULL, NULL);
		return policy_result_mode(res, bc->mode);
	}
	if (lk->cached) {
		score = lk->cached_score;
		snprintf(zones, sizeof(zones), "%s", lk->cached_zones);
		snprintf(txt, sizeof(txt), "%s", lk->cached_txt);
		snprintf(top, sizeof(top), "%.*s", (int)strcspn(zones, "("),
		    zones);
	}
	for (i = 0; !lk->cached && i < bc->nzones; i++) {
		const struct policy_dnsbl_zone *z = &bc->zones[i];
		struct zone_state *zs = &lk->z[i];
		if (zs->state == Z_ERROR || zs->state == Z_PENDING) {
			errors++;
			n = snprintf(errs + el, sizeof(errs) - el, "%s%s(%s)",
			    el ? "," : "", z->zone, zs->why ? zs->why : "timeout");
			if (n > 0 && (size_t)n < sizeof(errs) - el)
				el += (size_t)n;
			continue;
		}
		if (zs->ttl < ttl)
			ttl = zs->ttl;
		if (zs->state != Z_LISTED)
			continue;
		score += z->weight;
		n = snprintf(zones + zl, sizeof(zones) - zl, "%s%s(%d)",
		    zl ? "," : "", z->zone, z->weight);
		if (n > 0 && (size_t)n < sizeof(zones) - zl)
			zl += (size_t)n;
		if (z->weight > toph) {
			toph = z->weight;
			snprintf(top, sizeof(top), "%s", z->zone);
			snprintf(txt, sizeof(txt), "%s", zs->txt);
		}
	}
	if (!lk->cached && errors == 0)
		cache_put(lk, score, zones, txt, ttl);
	policy_result_detail(res, "client=%s score=%d", lk->ip, score);
	if (zones[0])
		policy_result_detail(res, "listed=%s", zones);
	if (errs[0])
		policy_result_detail(res, "errors=%s", errs);
	if (lk->cached)
		policy_result_detail(res, "cached=yes");
	if (score >= bc->threshold) {
		if (txt[0])
			policy_result_set(res, POLICY_REJECT, 554, "5.7.1",
			    "Service unavailable; client [%s] blocked using "
			    "%s; %s", lk->ip, top, txt);
		else
			policy_result_set(res, POLICY_REJECT, 554, "5.7.1",
			    "Service unavailable; client [%s] blocked using %s",
			    lk->ip, top);
	} else if (score <= bc->wl_threshold) {
		policy_result_set(res, POLICY_ALLOW, 0, NULL, NULL);
	} else if (errors > 0 && bc->on_dns_error == POLICY_FAIL_TEMP) {
		policy_result_set(res, POLICY_TEMPFAIL, 421, "4.4.3",
		    "Temporary DNS failure, try again later");
	}
	if (scorep)
		*scorep = score;
	free(lk->z);
	free(lk);
	return policy_result_mode(res, bc->mode);
}

struct sync_wait {
	struct policy_dnsbl_lookup	*lk;
};

static void
sync_done(void *arg, struct policy_dnsbl_lookup *lk)
{
	((struct sync_wait *)arg)->lk = lk;
}

enum policy_verdict
policy_dnsbl_check(const struct policy_dnsbl_config *bc,
    struct policy_dns *dns, struct policy_store *st,
    const struct sockaddr_storage *ss, struct policy_result *res, int *score)
{
	struct sync_wait w = { NULL };

	if (policy_dnsbl_start(bc, dns, st, ss, sync_done, &w) < 0) {
		policy_result_init(res, "dnsbl");
		policy_result_detail(res, "error=no-memory");
		if (bc->on_dns_error == POLICY_FAIL_TEMP)
			policy_result_set(res, POLICY_TEMPFAIL, 421, "4.3.0",
			    "Temporary local problem, try again later");
		if (score)
			*score = 0;
		return policy_result_mode(res, bc->mode);
	}
	if (w.lk == NULL)
		(void)policy_dns_run(dns, (int)bc->timeout_ms);
	/* policy_dns_run cancels what is left, so done has run by now */
	if (w.lk == NULL) {
		policy_result_init(res, "dnsbl");
		policy_result_detail(res, "error=stuck");
		return policy_result_mode(res, bc->mode);
	}
	return policy_dnsbl_finish(w.lk, res, score);
}

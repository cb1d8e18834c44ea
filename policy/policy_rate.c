/*
 * policy_rate.c — rate_limit parsing, most-specific-network lookup and the
 * store-backed counters. See policy_rate.h for the config syntax and the
 * semantics (fixed windows, concurrency slots, replies).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "log.h"
#include "policy_rate.h"

static const char *const kind_names[RATE_KINDS] = {
	"conn", "concurrency", "msg", "rcpt", "err",
};
static const char *const kind_keys[RATE_KINDS] = { "c", "cc", "m", "r", "e" };

void
policy_rate_config_init(struct policy_rate_config *rc)
{
	memset(rc, 0, sizeof(*rc));
	rc->mode = POLICY_ENFORCE;
	rc->v4bits = 24;
	rc->v6bits = 64;
	rc->conc_ttl = 3600;
	rc->on_store_error = POLICY_FAIL_OPEN;
}

void
policy_rate_free(struct policy_rate_config *rc)
{
	free(rc->rules);
	rc->rules = NULL;
	rc->nrules = 0;
}

/* "30/1m" (or "10" when window is not wanted). */
static const char *
parse_limit(const char *s, int want_window, struct policy_rate_limit *l)
{
	char num[32], *end;
	const char *slash = strchr(s, '/'), *why;
	unsigned long long v;
	size_t n = slash ? (size_t)(slash - s) : strlen(s);

	if (strcasecmp(s, "none") == 0) {
		l->set = 1;
		l->count = 0;
		l->window = 0;
		return NULL;
	}
	if (n == 0 || n >= sizeof(num))
		return "expected a number";
	memcpy(num, s, n);
	num[n] = '\0';
	errno = 0;
	v = strtoull(num, &end, 10);
	if (errno != 0 || *end != '\0' || num[0] == '-' || v == 0 ||
	    v > 100000000ULL)
		return "expected a count between 1 and 100000000";
	if (want_window) {
		if (slash == NULL)
			return "expected COUNT/DURATION, like 30/1m";
		if (conf_parse_duration(slash + 1, &l->window, &why) < 0)
			return why ? why : "bad duration";
		if (l->window == 0)
			return "window must be at least 1s";
	} else {
		if (slash != NULL)
			return "concurrency takes a count, not a rate";
		l->window = 0;
	}
	l->set = 1;
	l->count = (unsigned long)v;
	return NULL;
}

const char *
policy_rate_parse(const char *s, struct policy_rate_spec *spec)
{
	struct conf_list items;
	const char *why = NULL;
	size_t i;
	int k;

	while (*s == ' ' || *s == '\t')
		s++;
	if (strcasecmp(s, "none") == 0) {
		for (k = 0; k < RATE_KINDS; k++) {
			spec->ip[k] = (struct policy_rate_limit){ 1, 0, 0 };
			spec->net[k] = (struct policy_rate_limit){ 1, 0, 0 };
		}
		return NULL;
	}
	if (conf_split_list(s, &items) < 0)
		return "cannot parse list";
	if (items.n == 0)
		why = "empty rate_limit (use none)";
	for (i = 0; i < items.n && why == NULL; i++) {
		char *item = items.v[i], *arg;
		const char *name = item;
		int net = 0, found = -1;

		arg = item + strcspn(item, " \t");
		if (*arg == '\0') {
			why = "expected KIND VALUE, like conn 30/1m";
			break;
		}
		*arg++ = '\0';
		while (*arg == ' ' || *arg == '\t')
			arg++;
		if (strncasecmp(name, "net_", 4) == 0) {
			net = 1;
			name += 4;
		}
		for (k = 0; k < RATE_KINDS; k++)
			if (strcasecmp(name, kind_names[k]) == 0)
				found = k;
		if (found < 0) {
			why = "unknown limit (conn, concurrency, msg, rcpt, err, "
			    "net_...)";
			break;
		}
		why = parse_limit(arg, found != RATE_CONC,
		    net ? &spec->net[found] : &spec->ip[found]);
	}
	conf_list_free(&items);
	return why;
}

const char *
policy_rate_add_rule(struct policy_rate_config *rc, const char *net,
    const char *value, int line)
{
	struct policy_rate_rule *nr, *r;
	const char *why;

	nr = realloc(rc->rules, (rc->nrules + 1) * sizeof(*nr));
	if (nr == NULL)
		return "out of memory";
	rc->rules = nr;
	r = &nr[rc->nrules];
	memset(r, 0, sizeof(*r));
	if (net_cidr_parse(net, &r->net, &why) < 0)
		return why ? why : "bad network";
	r->spec = rc->def;
	for (int k = 0; k < RATE_KINDS; k++) {	/* inherited, not named */
		r->spec.ip[k].set = 0;
		r->spec.net[k].set = 0;
	}
	if ((why = policy_rate_parse(value, &r->spec)) != NULL)
		return why;
	r->line = line;
	rc->nrules++;
	return NULL;
}

const struct policy_rate_spec *
policy_rate_lookup(const struct policy_rate_config *rc,
    const struct sockaddr_storage *ss)
{
	const struct policy_rate_rule *best = NULL;
	struct sockaddr_storage plain = *ss;
	unsigned char b[16];
	int fam = policy_ip_bytes(ss, b);
	size_t i;

	if (fam == AF_INET && ss->ss_family == AF_INET6) {	/* unmap */
		struct sockaddr_in *sin = (struct sockaddr_in *)&plain;
		memset(&plain, 0, sizeof(plain));
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, b, 4);
	}
	for (i = 0; i < rc->nrules; i++) {
		const struct policy_rate_rule *r = &rc->rules[i];
		if (r->net.family != plain.ss_family ||
		    !net_cidr_match(&r->net, &plain))
			continue;
		if (best == NULL || r->net.bits > best->net.bits)
			best = r;
	}
	return best ? &best->spec : &rc->def;
}

static enum policy_verdict
store_failed(const struct policy_rate_config *rc, struct policy_result *res)
{
	policy_result_detail(res, "store=error");
	if (rc->on_store_error == POLICY_FAIL_TEMP) {
		policy_result_set(res, POLICY_TEMPFAIL, 451, "4.3.0",
		    "Temporary local problem, try again later");
		return POLICY_TEMPFAIL;
	}
	return POLICY_PASS;
}

struct scope {
	char	 key[2][96];	/* [0] per IP, [1] per net */
	char	 ip[64], net[64];
};

static int
make_scope(const struct policy_rate_config *rc,
    const struct sockaddr_storage *ss, struct scope *sc)
{
	if (policy_ip_str(ss, sc->ip, sizeof(sc->ip)) < 0 ||
	    policy_net_str(ss, rc->v4bits, rc->v6bits, sc->net,
	    sizeof(sc->net)) < 0)
		return -1;
	return 0;
}

/* Add delta to KIND for IP and net. *exceeded = 1 (ip) / 2 (net) when a
 * count passes its limit. -1 on store error. */
static int
count(const struct policy_rate_config *rc, struct policy_store *st,
    const struct policy_rate_spec *spec, const struct scope *sc,
    enum policy_rate_kind k, long long delta, int *exceeded,
    long long *seen)
{
	const struct policy_rate_limit *lim[2] = { &spec->ip[k], &spec->net[k] };
	const char *who[2] = { sc->ip, sc->net };
	char key[2][128];
	const char *keys[2];
	unsigned ttls[2];
	long long v[2];
	int which[2], i, n = 0, flags = 0;

	*exceeded = 0;
	for (i = 0; i < 2; i++) {
		if (lim[i]->count == 0)
			continue;
		snprintf(key[n], sizeof(key[n]), "r:%s%s:%s", i ? "n" : "",
		    kind_keys[k], who[i]);
		keys[n] = key[n];
		ttls[n] = k == RATE_CONC ? rc->conc_ttl : lim[i]->window;
		which[n] = i;
		n++;
	}
	if (n == 0)
		return 0;
	if (k == RATE_CONC)
		flags = STORE_REFRESH;
	/* IP and network counters in one transaction / round trip */
	if (policy_store_incr_many(st, keys, (size_t)n, delta, ttls, flags, v) !=
	    STORE_OK)
		return -1;
	for (i = 0; i < n; i++) {
		if (delta > 0 && v[i] > (long long)lim[which[i]]->count &&
		    !*exceeded) {
			*exceeded = which[i] + 1;
			*seen = v[i];
		}
	}
	return 0;
}

static void
give_back(const struct policy_rate_config *rc, struct policy_store *st,
    const struct policy_rate_spec *spec, const struct scope *sc)
{
	int ex;
	long long seen;

	if (count(rc, st, spec, sc, RATE_CONC, -1, &ex, &seen) < 0)
		log_warn("rate error=\"cannot release concurrency slot\" "
		    "client=%s", sc->ip);
}

static void
describe(struct policy_result *res, const struct policy_rate_spec *spec,
    const struct scope *sc, enum policy_rate_kind k, int exceeded,
    long long seen)
{
	const struct policy_rate_limit *l =
	    exceeded == 2 ? &spec->net[k] : &spec->ip[k];

	policy_result_detail(res, "limit=%s%s count=%lld max=%lu window=%us %s=%s",
	    exceeded == 2 ? "net_" : "", kind_names[k], seen, l->count,
	    l->window, exceeded == 2 ? "net" : "client",
	    exceeded == 2 ? sc->net : sc->ip);
}

enum policy_verdict
policy_rate_connect(const struct policy_rate_config *rc,
    struct policy_store *st, const struct sockaddr_storage *ss,
    struct policy_result *res)
{
	const struct policy_rate_spec *spec;
	struct scope sc;
	long long seen = 0;
	int ex = 0, kind = -1, i;
	char key[128], buf[32];
	size_t len;

	policy_result_init(res, "rate");
	if (rc->mode == POLICY_IGNORE) {
		policy_result_mode(res, rc->mode);
		return res->verdict;
	}
	if (make_scope(rc, ss, &sc) < 0)
		return POLICY_PASS;
	spec = policy_rate_lookup(rc, ss);
	/* A client over its error limit stays out for the rest of the window. */
	for (i = 0; i < 2 && kind < 0; i++) {
		const struct policy_rate_limit *l =
		    i ? &spec->net[RATE_ERR] : &spec->ip[RATE_ERR];
		long long v;
		char *end;
		if (l->count == 0)
			continue;
		snprintf(key, sizeof(key), "r:%se:%s", i ? "n" : "",
		    i ? sc.net : sc.ip);
		enum policy_store_status s =
		    policy_store_get(st, key, buf, sizeof(buf), &len, NULL);
		if (s == STORE_ERROR)
			return policy_result_mode(res, (store_failed(rc, res),
			    rc->mode));
		if (s != STORE_OK)
			continue;
		errno = 0;
		v = strtoll(buf, &end, 10);
		if (errno == 0 && *end == '\0' && v > (long long)l->count) {
			kind = RATE_ERR;
			ex = i + 1;
			seen = v;
		}
	}
	if (kind < 0) {
		if (count(rc, st, spec, &sc, RATE_CONN, 1, &ex, &seen) < 0)
			return policy_result_mode(res, (store_failed(rc, res),
			    rc->mode));
		if (ex)
			kind = RATE_CONN;
	}
	if (kind < 0) {
		if (count(rc, st, spec, &sc, RATE_CONC, 1, &ex, &seen) < 0)
			return policy_result_mode(res, (store_failed(rc, res),
			    rc->mode));
		if (ex)
			kind = RATE_CONC;
	}
	if (kind >= 0) {
		describe(res, spec, &sc, (enum policy_rate_kind)kind, ex, seen);
		policy_result_set(res, POLICY_TEMPFAIL, 421, "4.7.0",
		    kind == RATE_CONC ? "Too many concurrent connections from "
		    "your %s, try again later" : kind == RATE_ERR ?
		    "Too many errors from your %s, try again later" :
		    "Too many connections from your %s, try again later",
		    ex == 2 ? "network" : "address");
	}
	policy_result_mode(res, rc->mode);
	/* A refused session will not call disconnect: return its slot now.
	 * (A CONN or ERR refusal never took one.) */
	if (res->verdict != POLICY_PASS && kind == RATE_CONC)
		give_back(rc, st, spec, &sc);
	if (res->verdict == POLICY_PASS && kind == RATE_CONN)
		(void)count(rc, st, spec, &sc, RATE_CONC, 1, &ex, &seen);
	return res->verdict;
}

int
policy_rate_disconnect(const struct policy_rate_config *rc,
    struct policy_store *st, const struct sockaddr_storage *ss)
{
	struct scope sc;
	int ex;
	long long seen;

	if (rc->mode == POLICY_IGNORE || make_scope(rc, ss, &sc) < 0)
		return 0;
	return count(rc, st, policy_rate_lookup(rc, ss), &sc, RATE_CONC, -1,
	    &ex, &seen);
}

static enum policy_verdict
event(const struct policy_rate_config *rc, struct policy_store *st,
    const struct sockaddr_storage *ss, struct policy_result *res,
    enum policy_rate_kind k)
{
	const struct policy_rate_spec *spec;
	struct scope sc;
	long long seen = 0;
	int ex = 0;

	policy_result_init(res, "rate");
	if (rc->mode == POLICY_IGNORE)
		return policy_result_mode(res, rc->mode);
	if (make_scope(rc, ss, &sc) < 0)
		return POLICY_PASS;
	spec = policy_rate_lookup(rc, ss);
	if (count(rc, st, spec, &sc, k, 1, &ex, &seen) < 0) {
		store_failed(rc, res);
		return policy_result_mode(res, rc->mode);
	}
	if (ex) {
		describe(res, spec, &sc, k, ex, seen);
		if (k == RATE_MSG)
			policy_result_set(res, POLICY_TEMPFAIL, 451, "4.7.1",
			    "Message rate limit exceeded for your %s, try "
			    "again later", ex == 2 ? "network" : "address");
		else if (k == RATE_RCPT)
			policy_result_set(res, POLICY_TEMPFAIL, 452, "4.5.3",
			    "Recipient rate limit exceeded for your %s, try "
			    "again later", ex == 2 ? "network" : "address");
		else
			policy_result_set(res, POLICY_TEMPFAIL, 421, "4.7.0",
			    "Too many errors from your %s, closing connection",
			    ex == 2 ? "network" : "address");
	}
	return policy_result_mode(res, rc->mode);
}

enum policy_verdict
policy_rate_msg(const struct policy_rate_config *rc, struct policy_store *st,
    const struct sockaddr_storage *ss, struct policy_result *res)
{
	return event(rc, st, ss, res, RATE_MSG);
}

enum policy_verdict
policy_rate_rcpt(const struct policy_rate_config *rc, struct policy_store *st,
    const struct sockaddr_storage *ss, struct policy_result *res)
{
	return event(rc, st, ss, res, RATE_RCPT);
}

enum policy_verdict
policy_rate_error(const struct policy_rate_config *rc, struct policy_store *st,
    const struct sockaddr_storage *ss, struct policy_result *res)
{
	return event(rc, st, ss, res, RATE_ERR);
}

/*
 * policy_config.c — the policy keys of gate.conf into struct
 * policy_config. See policy_config.h for the keys and their defaults.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy_config.h"

struct loader {
	struct conf	*c;
	char		*err;
	size_t		 errlen;
	int		 failed;
};

/* Next value of a non-indexed key, or NULL (absent, or error set). */
static const char *
take(struct loader *ld, const char *key, int *line)
{
	struct conf_entry *e = conf_take(ld->c, key);

	if (e == NULL || ld->failed)
		return NULL;
	*line = e->line;
	if (e->index != NULL) {
		conf_error(ld->err, ld->errlen, ld->c, e->line,
		    "%s does not take an index", key);
		ld->failed = 1;
		return NULL;
	}
	return e->value;
}

static void
bad(struct loader *ld, int line, const char *key, const char *why)
{
	if (ld->failed)
		return;
	conf_error(ld->err, ld->errlen, ld->c, line, "%s: %s", key,
	    why ? why : "bad value");
	ld->failed = 1;
}

static void
get_str(struct loader *ld, const char *key, const char *def, char **out)
{
	int line = 0;
	const char *v = take(ld, key, &line);

	if ((*out = strdup(v ? v : def)) == NULL)
		bad(ld, line, key, "out of memory");
}

static void
get_dur(struct loader *ld, const char *key, unsigned *out)
{
	int line = 0;
	const char *v = take(ld, key, &line), *why = NULL;

	if (v != NULL && conf_parse_duration(v, out, &why) < 0)
		bad(ld, line, key, why);
}

static void
get_uint(struct loader *ld, const char *key, unsigned max, unsigned *out)
{
	int line = 0;
	const char *v = take(ld, key, &line), *why = NULL;
	unsigned long long n;

	if (v == NULL)
		return;
	if (conf_parse_uint(v, &n, &why) < 0)
		bad(ld, line, key, why);
	else if (n > max)
		bad(ld, line, key, "value too large");
	else
		*out = (unsigned)n;
}

static void
get_int(struct loader *ld, const char *key, int *out)
{
	int line = 0;
	const char *v = take(ld, key, &line);
	char *end;
	long n;

	if (v == NULL)
		return;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || n < -100000 ||
	    n > 100000)
		bad(ld, line, key, "expected an integer");
	else
		*out = (int)n;
}

static void
get_mode(struct loader *ld, const char *key, enum policy_mode *out)
{
	int line = 0;
	const char *v = take(ld, key, &line);

	if (v != NULL && policy_mode_parse(v, out) < 0)
		bad(ld, line, key, "expected ignore, log or enforce");
}

static void
get_failure(struct loader *ld, const char *key, enum policy_failure *out)
{
	int line = 0;
	const char *v = take(ld, key, &line);

	if (v == NULL)
		return;
	if (strcasecmp(v, "pass") == 0)
		*out = POLICY_FAIL_OPEN;
	else if (strcasecmp(v, "tempfail") == 0)
		*out = POLICY_FAIL_TEMP;
	else
		bad(ld, line, key, "expected pass or tempfail");
}

static void
get_cidrs(struct loader *ld, const char *key, struct net_cidr_list *out)
{
	int line = 0;
	const char *v = take(ld, key, &line);
	char why[256];

	if (v == NULL)
		return;
	if (net_cidr_list_parse(v, out, why, sizeof(why)) < 0)
		bad(ld, line, key, why);
}

static void
load_rate(struct loader *ld, struct policy_rate_config *rc)
{
	struct conf_entry *e, *idx[256];
	size_t nidx = 0, i;
	const char *why;
	int have_def = 0;

	while (!ld->failed && (e = conf_take(ld->c, "rate_limit")) != NULL) {
		if (e->index != NULL) {
			if (nidx == sizeof(idx) / sizeof(idx[0])) {
				bad(ld, e->line, "rate_limit", "too many overrides");
				return;
			}
			idx[nidx++] = e;
			continue;
		}
		have_def = 1;
		if ((why = policy_rate_parse(e->value, &rc->def)) != NULL)
			bad(ld, e->line, "rate_limit", why);
	}
	(void)have_def;
	for (i = 0; i < nidx && !ld->failed; i++) {
		if ((why = policy_rate_add_rule(rc, idx[i]->index, idx[i]->value,
		    idx[i]->line)) != NULL) {
			conf_error(ld->err, ld->errlen, ld->c, idx[i]->line,
			    "rate_limit[%s]: %s", idx[i]->index, why);
			ld->failed = 1;
		}
	}
}

static void
load_spf(struct loader *ld, struct policy_spf_config *sc)
{
	char key[32];
	int r, line = 0;
	const char *v;
	enum policy_spf_action a;

	get_mode(ld, "spf_action", &sc->mode);
	for (r = 0; r < SPF_RES_COUNT; r++) {
		snprintf(key, sizeof(key), "spf_%s",
		    policy_spf_result_name((enum policy_spf_result)r));
		if ((v = take(ld, key, &line)) == NULL)
			continue;
		if (policy_spf_action_parse(v, &a) < 0)
			bad(ld, line, key, "expected reject, tempfail, log or ignore");
		else
			sc->act[r] = a;
	}
	if ((v = take(ld, "received_spf_header", &line)) != NULL) {
		const char *why = NULL;
		if (conf_parse_bool(v, &sc->received_header, &why) < 0)
			bad(ld, line, "received_spf_header", why);
	}
	unsigned secs = sc->timeout_ms / 1000;
	get_dur(ld, "spf_timeout", &secs);
	if (secs == 0)
		secs = 1;
	sc->timeout_ms = secs > UINT_MAX / 1000 ? UINT_MAX : secs * 1000;
}

int
policy_config_load(struct conf *c, struct policy_config *pc, char *err,
    size_t errlen)
{
	struct loader ld = { c, err, errlen, 0 };
	unsigned secs, tries, tmo = 0;
	const char *v;
	int line = 0;

	memset(pc, 0, sizeof(*pc));
	policy_access_config_init(&pc->access);
	policy_rate_config_init(&pc->rate);
	policy_grey_config_init(&pc->grey);
	policy_dnsbl_config_init(&pc->dnsbl);
	policy_spf_config_init(&pc->spf);

	get_str(&ld, "store", "lmdb:/var/lib/tailwart/gate.lmdb", &pc->store);
	get_str(&ld, "store_prefix", "tw:", &pc->store_prefix);
	pc->store_failure = POLICY_FAIL_OPEN;
	get_failure(&ld, "store_failure", &pc->store_failure);

	get_str(&ld, "resolver", "system", &pc->resolver);
	secs = 2;
	get_dur(&ld, "dns_timeout", &secs);
	if (secs == 0)
		secs = 1;
	pc->dns_timeout_ms = secs > 60 ? 60000 : secs * 1000;
	tries = 2;
	get_uint(&ld, "dns_tries", 10, &tries);
	pc->dns_tries = tries ? tries : 1;
	pc->dns_failure = POLICY_FAIL_OPEN;
	get_failure(&ld, "dns_failure", &pc->dns_failure);

	get_mode(&ld, "access_action", &pc->access.mode);
	get_cidrs(&ld, "allow", &pc->access.allow);
	get_cidrs(&ld, "deny", &pc->access.deny);

	get_mode(&ld, "rate_limit_action", &pc->rate.mode);
	get_uint(&ld, "rate_limit_net_v4", 32, &pc->rate.v4bits);
	get_uint(&ld, "rate_limit_net_v6", 128, &pc->rate.v6bits);
	get_dur(&ld, "rate_limit_concurrency_ttl", &pc->rate.conc_ttl);
	if (pc->rate.conc_ttl == 0)
		pc->rate.conc_ttl = 60;
	pc->rate.on_store_error = pc->store_failure;
	load_rate(&ld, &pc->rate);

	get_mode(&ld, "greylist_action", &pc->grey.mode);
	get_dur(&ld, "greylist_delay", &pc->grey.delay);
	get_dur(&ld, "greylist_max_wait", &pc->grey.max_wait);
	get_dur(&ld, "greylist_retention", &pc->grey.retention);
	get_uint(&ld, "greylist_awl_count", 1000000, &pc->grey.awl_count);
	get_uint(&ld, "greylist_net_v4", 32, &pc->grey.v4bits);
	get_uint(&ld, "greylist_net_v6", 128, &pc->grey.v6bits);
	if ((v = take(&ld, "greylist_spf_exempt", &line)) != NULL &&
	    conf_split_list(v, &pc->grey.spf_exempt) < 0)
		bad(&ld, line, "greylist_spf_exempt", "out of memory");
	pc->grey.on_store_error = pc->store_failure;
	if (!ld.failed && pc->grey.max_wait < pc->grey.delay)
		bad(&ld, line, "greylist_max_wait", "shorter than greylist_delay");

	get_mode(&ld, "dnsbl_action", &pc->dnsbl.mode);
	if ((v = take(&ld, "dnsbl_sites", &line)) != NULL) {
		const char *why = policy_dnsbl_parse(v, &pc->dnsbl);
		if (why != NULL)
			bad(&ld, line, "dnsbl_sites", why);
	}
	get_int(&ld, "dnsbl_threshold", &pc->dnsbl.threshold);
	get_int(&ld, "dnswl_threshold", &pc->dnsbl.wl_threshold);
	get_dur(&ld, "dnsbl_cache_min", &pc->dnsbl.cache_min);
	get_dur(&ld, "dnsbl_cache_max", &pc->dnsbl.cache_max);
	get_dur(&ld, "dnsbl_timeout", &tmo);
	pc->dnsbl.timeout_ms = tmo ? (tmo > 60 ? 60000 : tmo * 1000) :
	    pc->dns_timeout_ms * pc->dns_tries;
	if (pc->dnsbl.cache_max < pc->dnsbl.cache_min)
		pc->dnsbl.cache_max = pc->dnsbl.cache_min;
	pc->dnsbl.on_dns_error = pc->dns_failure;
	pc->dnsbl.on_store_error = pc->store_failure;
	if (!ld.failed && pc->dnsbl.threshold <= pc->dnsbl.wl_threshold)
		bad(&ld, line, "dnsbl_threshold", "must be above dnswl_threshold");

	load_spf(&ld, &pc->spf);

	if (ld.failed) {
		policy_config_free(pc);
		return -1;
	}
	return 0;
}

void
policy_config_free(struct policy_config *pc)
{
	free(pc->store);
	free(pc->store_prefix);
	free(pc->resolver);
	pc->store = pc->store_prefix = pc->resolver = NULL;
	policy_access_free(&pc->access);
	policy_rate_free(&pc->rate);
	policy_grey_free(&pc->grey);
	policy_dnsbl_free(&pc->dnsbl);
}

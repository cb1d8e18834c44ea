/*
 * milter_config.c — load tailwart-milter's settings from a gate.conf: the
 * policy keys (policy_config_load) and the milter_* keys listed in
 * milter.h. Keys of the gate itself are left alone; an unused key that
 * belongs to the policy or to tailwart-milter (a typo) is an error.
 * The settings own their strings; milter_config_free() releases them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "milter.h"

/* keys a typo of ours would look like */
static const char *const milter_own_prefixes[] = {
	"store", "resolver", "dns_", "allow", "deny", "access_", "rate_limit",
	"greylist_", "dnsbl_", "dnswl_", "spf_", "received_spf", "milter_listen",
	"milter_authserv", "milter_dkim", "milter_timeout", "milter_metrics", NULL,
};

static int
milter_take_str(struct conf *c, const char *key, char **out, const char *def,
    char *err, size_t errlen)
{
	struct conf_entry *e = conf_take(c, key);

	if (e && e->index) {
		conf_error(err, errlen, c, e->line, "%s takes no [index]", key);
		return -1;
	}
	if ((*out = strdup(e ? e->value : def)) == NULL) {
		conf_error(err, errlen, c, e ? e->line : 0, "out of memory");
		return -1;
	}
	return 0;
}

/* milter_metrics_listen: empty, or host:port. */
static int
milter_check_endpoint(struct conf *c, const char *v, char *err, size_t errlen)
{
	struct net_endpoint ep;
	const char *why = NULL;

	if (*v == '\0' || net_parse_endpoint(v, &ep, &why) == 0)
		return 0;
	conf_error(err, errlen, c, 0, "milter_metrics_listen: \"%s\": %s", v, why);
	return -1;
}

void
milter_config_free(struct milter_settings *s)
{
	policy_config_free(&s->pc);
	free(s->listen);
	free(s->authserv_id);
	free(s->dkim_keys);
	free(s->user);
	free(s->metrics_listen);
	memset(s, 0, sizeof *s);
}

int
milter_config_load(const char *path, struct milter_settings *s, char *err,
    size_t errlen)
{
	struct conf c;
	struct conf_entry *e;
	char host[256], *v = NULL;
	const char *why = NULL;

	memset(s, 0, sizeof *s);
	s->file = path;
	if (conf_load(path, &c, err, errlen) != 0)
		return -1;
	if (policy_config_load(&c, &s->pc, err, errlen) != 0) {
		conf_free(&c);
		return -1;
	}
	if (milter_take_str(&c, "milter_listen", &s->listen, "inet:11332@127.0.0.1",
	    err, errlen) != 0)
		goto fail;
	if (gethostname(host, sizeof host) != 0)
		snprintf(host, sizeof host, "localhost");
	host[sizeof host - 1] = 0;
	if ((e = conf_take(&c, "milter_authserv_id")) == NULL)
		e = conf_take(&c, "hostname");
	if ((s->authserv_id = strdup(e ? e->value : host)) == NULL)
		goto oom;
	for (const char *p = s->authserv_id; *p; p++)
		if (*p <= ' ' || *p == ';' || *p == '(' || *p == ')' || *p == '"' ||
		    (unsigned char)*p >= 127) {
			conf_error(err, errlen, &c, e ? e->line : 0,
			    "milter_authserv_id: not a plain host name");
			goto fail;
		}
	s->dkim = 1;
	if ((e = conf_take(&c, "milter_dkim")) != NULL &&
	    conf_parse_bool(e->value, &s->dkim, &why) != 0) {
		conf_error(err, errlen, &c, e->line, "milter_dkim: %s", why);
		goto fail;
	}
	if ((e = conf_take(&c, "milter_dkim_keys")) != NULL) {
		if (strncmp(e->value, "file:", 5) != 0 || e->value[5] != '/') {
			conf_error(err, errlen, &c, e->line,
			    "milter_dkim_keys: expected file:/PATH");
			goto fail;
		}
		if ((s->dkim_keys = strdup(e->value + 5)) == NULL)
			goto oom;
	}
	s->timeout = 120;
	if ((e = conf_take(&c, "milter_timeout")) != NULL &&
	    (conf_parse_duration(e->value, &s->timeout, &why) != 0 || s->timeout == 0)) {
		conf_error(err, errlen, &c, e->line, "milter_timeout: %s",
		    why ? why : "must be > 0");
		goto fail;
	}
	if ((e = conf_take(&c, "user")) != NULL && (s->user = strdup(e->value)) == NULL)
		goto oom;
	if (milter_take_str(&c, "milter_metrics_listen", &s->metrics_listen, "", err, errlen) != 0 ||
	    milter_check_endpoint(&c, s->metrics_listen, err, errlen) != 0)
		goto fail;
	for (size_t i = 0; i < c.n; i++) {
		if (c.v[i].used)
			continue;
		for (int k = 0; milter_own_prefixes[k]; k++)
			if (strncmp(c.v[i].key, milter_own_prefixes[k],
			    strlen(milter_own_prefixes[k])) == 0) {
				conf_error(err, errlen, &c, c.v[i].line,
				    "unknown key \"%s\"", c.v[i].key);
				goto fail;
			}
	}
	free(v);
	conf_free(&c);
	return 0;
oom:
	conf_error(err, errlen, &c, 0, "out of memory");
fail:
	free(v);
	conf_free(&c);
	milter_config_free(s);
	return -1;
}

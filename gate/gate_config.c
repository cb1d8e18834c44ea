/*
 * gate_config — gate.conf: the schema of the gate's own keys, and the
 * derived values (listeners, backend endpoint, trusted proxies). The policy
 * keys are read by policy_config_load() from the same struct conf (so
 * tailwart-milter reads the same names); any key nobody claims is an error.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gate.h"
#include "log.h"
#include "smtp.h"

#define OFF(f) offsetof(struct gate_settings, f)

static const struct conf_key gate_schema[] = {
	{ "listen", CT_LIST, "0.0.0.0:25", OFF(listen), NULL, 0, 0 },
	{ "passthrough", CT_LIST, CONF_OPTIONAL, OFF(passthrough), NULL, 0, 0 },
	{ "trusted_proxies", CT_STR, CONF_OPTIONAL, OFF(trusted_proxies_s), NULL, 0, 0 },
	{ "hostname", CT_STR, CONF_OPTIONAL, OFF(hostname), NULL, 0, 0 },
	{ "backend", CT_STR, NULL, OFF(backend_s), NULL, 0, 0 },
	{ "backend_handoff", CT_ENUM, "proxy-v2", OFF(handoff), "proxy-v2|xclient|none", 0, 0 },
	{ "workers_min", CT_UINT, "4", OFF(workers_min), NULL, 1, 4096 },
	{ "workers_max", CT_UINT, "64", OFF(workers_max), NULL, 1, 4096 },
	{ "worker_max_sessions", CT_UINT, "1000", OFF(worker_max_sessions), NULL, 1, 10000000 },
	{ "user", CT_STR, "tailwart", OFF(user), NULL, 0, 0 },
	{ "pid_file", CT_STR, CONF_OPTIONAL, OFF(pid_file), NULL, 0, 0 },
	{ "tls_cert", CT_STR, CONF_OPTIONAL, OFF(tls_cert), NULL, 0, 0 },
	{ "tls_key", CT_STR, CONF_OPTIONAL, OFF(tls_key), NULL, 0, 0 },
	{ "message_size_limit", CT_SIZE, "50M", OFF(message_size_limit), NULL, 1024, 1ULL << 34 },
	{ "max_recipients", CT_UINT, "100", OFF(max_recipients), NULL, 1, 100000 },
	{ "max_errors", CT_UINT, "10", OFF(max_errors), NULL, 1, 1000 },
	{ "passthrough_max_connections", CT_UINT, "1000", OFF(passthrough_max_connections), NULL, 1, 100000 },
	{ "passthrough_max_per_ip", CT_UINT, "50", OFF(passthrough_max_per_ip), NULL, 1, 100000 },
	{ "passthrough_idle_timeout", CT_DURATION, "30m", OFF(passthrough_idle_timeout), NULL, 1, 86400 },
	{ "timeout_command", CT_DURATION, "5m", OFF(timeout_command), NULL, 1, 3600 },
	{ "timeout_data", CT_DURATION, "3m", OFF(timeout_data), NULL, 1, 3600 },
	{ "timeout_proxy", CT_DURATION, "5s", OFF(timeout_proxy), NULL, 1, 300 },
	{ "timeout_session", CT_DURATION, "1h", OFF(timeout_session), NULL, 1, 86400 },
	{ "backend_connect_timeout", CT_DURATION, "10s", OFF(backend_connect_timeout), NULL, 1, 300 },
	{ "backend_timeout", CT_DURATION, "2m", OFF(backend_timeout), NULL, 1, 3600 },
	{ "backend_data_timeout", CT_DURATION, "10m", OFF(backend_data_timeout), NULL, 1, 3600 },
	{ "backend_policy", CT_ENUM, "round-robin", OFF(backend_policy), "round-robin|failover|least-sessions", 0, 0 },
	{ "backend_fail_max", CT_UINT, "2", OFF(backend_fail_max), NULL, 1, 1000 },
	{ "backend_backoff", CT_DURATION, "10s", OFF(backend_backoff), NULL, 1, 3600 },
	{ "backend_backoff_max", CT_DURATION, "5m", OFF(backend_backoff_max), NULL, 1, 86400 },
	{ "backend_check_interval", CT_DURATION, "0", OFF(backend_check_interval), NULL, 0, 86400 },
	{ "drain_timeout", CT_DURATION, "60s", OFF(drain_timeout), NULL, 1, 3600 },
	{ "smtputf8", CT_BOOL, "yes", OFF(smtputf8), NULL, 0, 0 },
	{ "helo_check", CT_ENUM, "none", OFF(helo_check), "none|fqdn", 0, 0 },
	{ "screen", CT_BOOL, "yes", OFF(screen), NULL, 0, 0 },
	{ "pregreet_action", CT_ENUM, "enforce", OFF(pregreet_action), "ignore|log|enforce", 0, 0 },
	{ "pregreet_wait", CT_DURATION, "6s", OFF(pregreet_wait), NULL, 0, 60 },
	{ "screen_cache_ttl", CT_DURATION, "1d", OFF(screen_cache_ttl), NULL, 0, 0 },
	{ "screen_max_connections", CT_UINT, "5000", OFF(screen_max_connections), NULL, 1, 1000000 },
	{ "metrics_listen", CT_STR, CONF_OPTIONAL, OFF(metrics_listen), NULL, 0, 0 },
	{ NULL, 0, NULL, 0, NULL, 0, 0 }
};

/* Keys of tailwart-milter, which reads this same file: the gate leaves
 * them alone (but still refuses anything else it does not know). */
static const char *const gate_foreign_keys[] = {
	"milter_listen", "milter_authserv_id", "milter_dkim", "milter_dkim_keys",
	"milter_timeout", "milter_metrics_listen", NULL,
};

static int
add_listener(struct gate_settings *s, enum gate_listener_kind kind,
    const struct net_endpoint *addr, const struct net_endpoint *target)
{
	struct gate_listener *nv = realloc(s->listeners, (s->nlisteners + 1) * sizeof(*nv));

	if (nv == NULL)
		return -1;
	s->listeners = nv;
	memset(&nv[s->nlisteners], 0, sizeof(*nv));
	nv[s->nlisteners].kind = kind;
	nv[s->nlisteners].addr = *addr;
	if (target)
		nv[s->nlisteners].target = *target;
	nv[s->nlisteners].fd = -1;
	s->nlisteners++;
	return 0;
}

static int
derive(struct conf *c, struct gate_settings *s, char *err, size_t errlen)
{
	const char *why = NULL;
	char e2[512];

	if (gate_backends_parse(s->backend_s, ',', &s->backends, &why) != 0) {
		conf_error(err, errlen, c, conf_line(c, "backend"), "backend: \"%s\": %s",
		    s->backend_s, why);
		return -1;
	}
	s->backend = s->backends.v[0].ep;
	s->be_rule.policy = s->backend_policy;
	s->be_rule.fail_max = (unsigned)s->backend_fail_max;
	s->be_rule.backoff_s = s->backend_backoff;
	s->be_rule.backoff_max_s = s->backend_backoff_max < s->backend_backoff ?
	    s->backend_backoff : s->backend_backoff_max;
	if (s->listen.n == 0) {
		conf_error(err, errlen, c, conf_line(c, "listen"), "listen: no address");
		return -1;
	}
	for (size_t i = 0; i < s->listen.n; i++) {
		struct net_endpoint ep;
		if (net_parse_endpoint(s->listen.v[i], &ep, &why) != 0) {
			conf_error(err, errlen, c, conf_line(c, "listen"), "listen: \"%s\": %s",
			    s->listen.v[i], why);
			return -1;
		}
		if (add_listener(s, LISTEN_SMTP, &ep, NULL) != 0)
			goto oom;
	}
	for (size_t i = 0; i < s->passthrough.n; i++) {
		struct net_endpoint ep;
		struct gate_backend_list tl;
		char *item = s->passthrough.v[i], *eq = strchr(item, '=');
		if (eq == NULL) {
			conf_error(err, errlen, c, conf_line(c, "passthrough"),
			    "passthrough: \"%s\": expected LISTEN=BACKEND", item);
			return -1;
		}
		*eq = '\0';
		if (net_parse_endpoint(item, &ep, &why) != 0 ||
		    gate_backends_parse(eq + 1, '|', &tl, &why) != 0) {
			conf_error(err, errlen, c, conf_line(c, "passthrough"),
			    "passthrough: \"%s=%s\": %s", item, eq + 1, why);
			*eq = '=';
			return -1;
		}
		*eq = '=';
		if (add_listener(s, LISTEN_PASSTHROUGH, &ep, &tl.v[0].ep) != 0)
			goto oom;
		s->listeners[s->nlisteners - 1].targets = tl;
	}
	for (size_t i = 0; i < s->nlisteners; i++)
		for (size_t j = i + 1; j < s->nlisteners; j++)
			if (!strcmp(s->listeners[i].addr.host, s->listeners[j].addr.host) &&
			    !strcmp(s->listeners[i].addr.port, s->listeners[j].addr.port)) {
				conf_error(err, errlen, c, conf_line(c, "passthrough"),
				    "address %s:%s is used by two listeners",
				    s->listeners[i].addr.host, s->listeners[i].addr.port);
				return -1;
			}
	if (net_cidr_list_parse(s->trusted_proxies_s, &s->trusted_proxies, e2, sizeof(e2)) != 0) {
		conf_error(err, errlen, c, conf_line(c, "trusted_proxies"), "trusted_proxies: %s", e2);
		return -1;
	}
	if (*s->metrics_listen && net_parse_endpoint(s->metrics_listen, &s->metrics_ep, &why) != 0) {
		conf_error(err, errlen, c, conf_line(c, "metrics_listen"), "metrics_listen: \"%s\": %s",
		    s->metrics_listen, why);
		return -1;
	}
	if (s->workers_min > s->workers_max) {
		conf_error(err, errlen, c, conf_line(c, "workers_min"),
		    "workers_min (%llu) is larger than workers_max (%llu)",
		    s->workers_min, s->workers_max);
		return -1;
	}
	if ((*s->tls_cert == '\0') != (*s->tls_key == '\0')) {
		conf_error(err, errlen, c, conf_line(c, *s->tls_cert ? "tls_cert" : "tls_key"),
		    "tls_cert and tls_key must be set together");
		return -1;
	}
	if (*s->hostname == '\0') {
		char h[256];
		if (gethostname(h, sizeof(h)) != 0)
			snprintf(h, sizeof(h), "localhost");
		h[sizeof(h) - 1] = '\0';
		free(s->hostname);
		s->hostname = strdup(h);
		if (s->hostname == NULL)
			goto oom;
	} else if (!smtp_valid_helo(s->hostname)) {
		conf_error(err, errlen, c, conf_line(c, "hostname"), "hostname: \"%s\" is not a domain name",
		    s->hostname);
		return -1;
	}
	return 0;
oom:
	snprintf(err, errlen, "%s: out of memory", c->file);
	return -1;
}

int
gate_config_load(const char *path, struct gate_settings *s, char *err, size_t errlen)
{
	struct conf c;
	int rc = -1;

	memset(s, 0, sizeof(*s));
	if (conf_load(path, &c, err, errlen) != 0)
		return -1;
	if (conf_apply(&c, gate_schema, s, err, errlen) == 0 &&
	    derive(&c, s, err, errlen) == 0 &&
	    policy_config_load(&c, &s->policy, err, errlen) == 0) {
		s->policy_loaded = 1;
		{
			/* a concurrency slot must not expire while its session
			 * can still run: the screen's wait, the whole session
			 * and the drain fit inside the slot's safety expiry */
			unsigned need = s->timeout_session + s->timeout_command + s->pregreet_wait +
			    s->drain_timeout + 60;
			if (s->policy.rate.conc_ttl < need)
				s->policy.rate.conc_ttl = need;
		}
		for (size_t i = 0; gate_foreign_keys[i] != NULL; i++)
			while (conf_take(&c, gate_foreign_keys[i]) != NULL)
				;
		if (gate_milter_config(&c, &s->milters, err, errlen) == 0 &&
		    conf_check_unused(&c, err, errlen) == 0)
			rc = 0;
		/* a milter's replaced body and added headers: no more than a
		 * client may send */
		if (s->milters.body_limit > s->message_size_limit)
			s->milters.body_limit = s->message_size_limit;
	}
	s->file = NULL;
	conf_free(&c);
	if (rc != 0)
		gate_config_free(s);
	return rc;
}

void
gate_config_free(struct gate_settings *s)
{
	conf_release(gate_schema, s);
	if (s->policy_loaded)
		policy_config_free(&s->policy);
	gate_milter_set_free(&s->milters);
	net_cidr_list_free(&s->trusted_proxies);
	free(s->listeners);
	memset(s, 0, sizeof(*s));
}

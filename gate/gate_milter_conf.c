/*
 * gate_milter_conf — the gate.conf keys of the milter client: `milters`,
 * milter_default_action and the timeouts, with per-milter indexed
 * overrides (see gate_milter.h). The protocol lives in gate_milter.c,
 * _wire.c, _stage.c and _mods.c, the message and the spool in _msg.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include "gate_milter.h"
#include "log.h"
#include "smtp.h"
#include "gate_milter_int.h"

/* ---- configuration --------------------------------------------------- */

int
gate_milter_parse_spec(const char *spec, struct gate_milter_conf *m, const char **why)
{
	const char *at;

	if (strncmp(spec, "unix:", 5) == 0 || strncmp(spec, "local:", 6) == 0) {
		const char *p = strchr(spec, ':') + 1;

		if (*p != '/') {
			*why = "unix socket path must be absolute";
			return -1;
		}
		if (strlen(p) >= sizeof m->path) {
			*why = "unix socket path too long";
			return -1;
		}
		m->family = AF_UNIX;
		snprintf(m->path, sizeof m->path, "%s", p);
		return 0;
	}
	if (strncmp(spec, "inet:", 5) != 0 && strncmp(spec, "inet6:", 6) != 0) {
		*why = "milter must be inet:HOST:PORT or unix:/PATH";
		return -1;
	}
	spec = strchr(spec, ':') + 1;
	m->family = AF_INET;
	if ((at = strchr(spec, '@')) != NULL) {
		/* libmilter style PORT@HOST */
		size_t pl = (size_t)(at - spec), hl = strlen(at + 1);

		if (pl == 0 || pl >= sizeof m->ep.port || hl == 0 ||
		    hl >= sizeof m->ep.host) {
			*why = "bad PORT@HOST";
			return -1;
		}
		memcpy(m->ep.port, spec, pl);
		m->ep.port[pl] = 0;
		snprintf(m->ep.host, sizeof m->ep.host, "%s", at + 1);
		if (m->ep.host[0] == '[') {
			size_t l = strlen(m->ep.host);

			if (l < 3 || m->ep.host[l - 1] != ']') {
				*why = "bad [address]";
				return -1;
			}
			memmove(m->ep.host, m->ep.host + 1, l - 2);
			m->ep.host[l - 2] = 0;
		}
	} else if (net_parse_endpoint(spec, &m->ep, why) != 0)
		return -1;
	{
		unsigned long long port;

		if (conf_parse_uint(m->ep.port, &port, why) != 0 || port == 0 ||
		    port > 65535) {
			*why = "bad port";
			return -1;
		}
	}
	return 0;
}

void
gate_milter_set_free(struct gate_milter_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		free(set->v[i].spec);
	free(set->v);
	gm_pool_free(set->pool);
	set->pool = NULL;
	set->v = NULL;
	set->n = 0;
}

enum { OPT_ACTION, OPT_CONNECT, OPT_COMMAND, OPT_EOM, OPT_N };
static const char *const gm_opt_key[OPT_N] = {
	"milter_default_action", "milter_connect_timeout",
	"milter_command_timeout", "milter_eom_timeout",
};

static int
gm_opt_apply(struct conf *c, struct conf_entry *e, int opt,
    struct gate_milter_conf *m, char *err, size_t errlen)
{
	const char *why = NULL;
	unsigned secs;

	if (opt == OPT_ACTION) {
		if (strcmp(e->value, "tempfail") == 0)
			m->default_action = GMD_TEMPFAIL;
		else if (strcmp(e->value, "accept") == 0)
			m->default_action = GMD_ACCEPT;
		else if (strcmp(e->value, "reject") == 0)
			m->default_action = GMD_REJECT;
		else {
			conf_error(err, errlen, c, e->line,
			    "%s: expected tempfail, accept or reject", e->key);
			return -1;
		}
		return 0;
	}
	if (conf_parse_duration(e->value, &secs, &why) != 0 || secs == 0 ||
	    secs > 3600) {
		conf_error(err, errlen, c, e->line, "%s: %s", e->key,
		    why ? why : "must be between 1s and 1h");
		return -1;
	}
	if (opt == OPT_CONNECT)
		m->connect_timeout = secs;
	else if (opt == OPT_COMMAND)
		m->command_timeout = secs;
	else
		m->eom_timeout = secs;
	return 0;
}

int
gate_milter_config(struct conf *c, struct gate_milter_set *out, char *err,
    size_t errlen)
{
	struct conf_entry *e, *list = NULL;
	struct conf_list l = { NULL, 0 };
	struct gate_milter_conf def = {
		.default_action = GMD_TEMPFAIL,
		.connect_timeout = 5, .command_timeout = 30, .eom_timeout = 120,
	};

	memset(out, 0, sizeof *out);
	out->body_limit = 64u << 20;
	while ((e = conf_take(c, "milters")) != NULL) {
		if (e->index || list) {
			conf_error(err, errlen, c, e->line, "milters: give one list");
			return -1;
		}
		list = e;
	}
	/* global options first, so that overrides win whatever the order */
	for (int o = 0; o < OPT_N; o++) {
		for (size_t i = 0; i < c->n; i++) {
			e = &c->v[i];
			if (e->used || e->index || strcmp(e->key, gm_opt_key[o]) != 0)
				continue;
			e->used = 1;
			if (gm_opt_apply(c, e, o, &def, err, errlen) != 0)
				return -1;
		}
	}
	if (list && list->value[0]) {
		if (conf_split_list(list->value, &l) != 0) {
			conf_error(err, errlen, c, list->line, "milters: bad list");
			return -1;
		}
		if ((out->v = calloc(l.n ? l.n : 1, sizeof *out->v)) == NULL) {
			conf_list_free(&l);
			conf_error(err, errlen, c, list->line, "out of memory");
			return -1;
		}
		for (size_t i = 0; i < l.n; i++) {
			struct gate_milter_conf *m = &out->v[out->n];
			const char *why = "?";

			*m = def;
			m->spec = NULL;
			if (gate_milter_parse_spec(l.v[i], m, &why) != 0) {
				conf_error(err, errlen, c, list->line,
				    "milters: \"%s\": %s", l.v[i], why);
				goto fail;
			}
			for (size_t j = 0; j < out->n; j++)
				if (strcmp(out->v[j].spec, l.v[i]) == 0) {
					conf_error(err, errlen, c, list->line,
					    "milters: \"%s\" listed twice", l.v[i]);
					goto fail;
				}
			if ((m->spec = strdup(l.v[i])) == NULL) {
				conf_error(err, errlen, c, list->line, "out of memory");
				goto fail;
			}
			out->n++;
		}
		conf_list_free(&l);
	}
	/* per-milter overrides: key[spec] */
	for (int o = 0; o < OPT_N; o++) {
		while ((e = conf_take(c, gm_opt_key[o])) != NULL) {
			size_t j;

			if (e->index == NULL) {
				conf_error(err, errlen, c, e->line,
				    "%s given twice", e->key);
				goto fail;
			}
			for (j = 0; j < out->n; j++)
				if (strcmp(out->v[j].spec, e->index) == 0)
					break;
			if (j == out->n) {
				conf_error(err, errlen, c, e->line,
				    "%s[%s]: no such milter in \"milters\"", e->key,
				    e->index);
				goto fail;
			}
			if (gm_opt_apply(c, e, o, &out->v[j], err, errlen) != 0)
				goto fail;
		}
	}
	if (out->n && (out->pool = gm_pool_new(out->n)) == NULL) {
		conf_error(err, errlen, c, list->line, "out of memory");
		goto fail;
	}
	return 0;
fail:
	conf_list_free(&l);
	gate_milter_set_free(out);
	return -1;
}


/*
 * relay_config — smarthost.conf: schema, defaults, derived values.
 *
 * Every key is documented in smarthost.conf and docs/smarthost.conf.5.md.
 * DKIM keys may be given either as a list on one line
 *     dkim_sign = example.net mail /etc/k1.pem, example.org s1 /etc/k2.pem
 * or indexed by domain, one line each (a key may appear once in the grammar)
 *     dkim_sign[example.com] = mail /etc/k3.pem
 * Both forms may be mixed; a domain may be named once.
 * Key files are read here (as root, before privileges are dropped), so the
 * running processes never need to open them.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

#include "config.h"
#include "net.h"
#include "tls.h"
#include "relay_config.h"

#define OFF(f) offsetof(struct relay_config, f)

static const struct conf_key relay_schema[] = {
	{ "listen", CT_LIST, "127.0.0.1:10026", OFF(listen), NULL, 0, 0 },
	{ "client_networks", CT_STR, "127.0.0.0/8, ::1", OFF(client_networks_s), NULL, 0, 0 },
	{ "spool_dir", CT_STR, "/var/spool/tailwart", OFF(spool_dir), NULL, 0, 0 },
	{ "smarthost", CT_LIST, NULL, OFF(smarthost_s), NULL, 0, 0 },
	{ "tls", CT_ENUM, "verify", OFF(tls), "none|may|encrypt|verify|implicit", 0, 0 },
	{ "tls_ca", CT_STR, CONF_OPTIONAL, OFF(tls_ca), NULL, 0, 0 },
	{ "auth_user", CT_STR, CONF_OPTIONAL, OFF(auth_user), NULL, 0, 0 },
	{ "auth_password", CT_STR, CONF_OPTIONAL, OFF(auth_password), NULL, 0, 0 },
	{ "dkim_sign", CT_LIST, CONF_OPTIONAL, OFF(dkim_sign_s), NULL, 0, 0 },
	{ "min_backoff", CT_DURATION, "5m", OFF(min_backoff), NULL, 1, 86400 * 7 },
	{ "max_backoff", CT_DURATION, "1h", OFF(max_backoff), NULL, 1, 86400 * 30 },
	{ "max_queue_lifetime", CT_DURATION, "5d", OFF(max_queue_lifetime), NULL, 1, 86400 * 365 },
	{ "delay_warning", CT_DURATION, "0", OFF(delay_warning), NULL, 0, 0 },
	{ "max_connections", CT_UINT, "4", OFF(max_connections), NULL, 1, 256 },
	{ "max_clients", CT_UINT, "50", OFF(max_clients), NULL, 1, 10000 },
	{ "batch_size", CT_UINT, "100", OFF(batch_size), NULL, 1, 10000 },
	{ "connection_reuse_time", CT_DURATION, "2s", OFF(connection_reuse_time), NULL, 0, 3600 },
	{ "rate_limit", CT_STR, CONF_OPTIONAL, OFF(rate_limit_s), NULL, 0, 0 },
	{ "message_size_limit", CT_SIZE, "100M", OFF(message_size_limit), NULL, 1024, 1ULL << 31 },
	{ "user", CT_STR, "tailwart", OFF(user), NULL, 0, 0 },
	{ "hostname", CT_STR, CONF_OPTIONAL, OFF(hostname), NULL, 0, 0 },
	{ "smtp_timeout", CT_DURATION, "300s", OFF(smtp_timeout), NULL, 1, 3600 },
	{ "connect_timeout", CT_DURATION, "30s", OFF(connect_timeout), NULL, 1, 600 },
	{ "resolver", CT_STR, "system", OFF(resolver), NULL, 0, 0 },
	{ "smtpd_tls_cert", CT_STR, CONF_OPTIONAL, OFF(smtpd_tls_cert), NULL, 0, 0 },
	{ "smtpd_tls_key", CT_STR, CONF_OPTIONAL, OFF(smtpd_tls_key), NULL, 0, 0 },
	{ "smtpd_auth_user", CT_STR, CONF_OPTIONAL, OFF(smtpd_auth_user), NULL, 0, 0 },
	{ "smtpd_auth_password", CT_STR, CONF_OPTIONAL, OFF(smtpd_auth_password), NULL, 0, 0 },
	{ "metrics_listen", CT_STR, CONF_OPTIONAL, OFF(metrics_listen), NULL, 0, 0 },
	{ NULL, 0, NULL, 0, NULL, 0, 0 },
};

int
relay_config_set(const char *s)
{
	return s != NULL && *s != '\0';
}

int
relay_config_parse_smarthost(const char *s, struct relay_smarthost *sh,
    const char **why)
{
	const char *p = s, *hend, *port = "25";
	size_t hl;

	memset(sh, 0, sizeof(*sh));
	if (*p == '[') {
		hend = strchr(p, ']');
		if (hend == NULL) {
			*why = "missing ']'";
			return -1;
		}
		p++;
		hl = (size_t)(hend - p);
		if (hend[1] == ':')
			port = hend + 2;
		else if (hend[1] != '\0') {
			*why = "junk after ']'";
			return -1;
		}
		sh->mx = 0;
	} else {
		hend = strrchr(p, ':');
		if (hend != NULL && strchr(p, ':') != hend) {
			*why = "IPv6 address must be written [addr]:port";
			return -1;
		}
		hl = hend ? (size_t)(hend - p) : strlen(p);
		if (hend)
			port = hend + 1;
		sh->mx = 1;
	}
	if (hl == 0 || hl >= sizeof(sh->host)) {
		*why = "bad host name";
		return -1;
	}
	memcpy(sh->host, p, hl);
	sh->host[hl] = '\0';
	for (size_t i = 0; i < hl; i++) {
		char c = sh->host[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '-' || c == ':' || c == '_')) {
			*why = "bad character in host name";
			return -1;
		}
	}
	unsigned long long pn;
	const char *pw;
	if (conf_parse_uint(port, &pn, &pw) != 0 || pn == 0 || pn > 65535) {
		*why = "bad port";
		return -1;
	}
	snprintf(sh->port, sizeof(sh->port), "%llu", pn);
	/* an address literal never has MX records */
	if (sh->mx && strspn(sh->host, "0123456789.") == strlen(sh->host))
		sh->mx = 0;
	return 0;
}

/* Read a whole small file (a PEM key) into a NUL-terminated string. */
static char *
read_small_file(const char *path, const char **why)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf;
	size_t off = 0;

	if (fd < 0) {
		*why = strerror(errno);
		return NULL;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > 65536 ||
	    st.st_size == 0) {
		*why = "not a regular file of at most 64K";
		(void)close(fd);
		return NULL;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		*why = "out of memory";
		(void)close(fd);
		return NULL;
	}
	while (off < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			*why = n == 0 ? "short read" : strerror(errno);
			free(buf);
			(void)close(fd);
			return NULL;
		}
		off += (size_t)n;
	}
	buf[off] = '\0';
	if (close(fd) != 0) {
		*why = strerror(errno);
		free(buf);
		return NULL;
	}
	return buf;
}

static int
add_dkim(struct relay_config *cfg, const char *domain, const char *rest,
    const struct conf *c, int line, char *err, size_t errlen)
{
	char sel[128], file[1024], junk[2];
	struct relay_dkim_key *nv, *k;
	const char *why = NULL;

	/* widths bound every field */
	if (sscanf(rest, "%127s %1023s %1s", sel, file, junk) != 2) {
		conf_error(err, errlen, c, line,
		    "dkim_sign: expected \"DOMAIN SELECTOR KEYFILE\" for %s", domain);
		return -1;
	}
	for (size_t i = 0; i < cfg->ndkim; i++)
		if (strcasecmp(cfg->dkim[i].domain, domain) == 0) {
			conf_error(err, errlen, c, line, "dkim_sign: domain %s named twice", domain);
			return -1;
		}
	nv = realloc(cfg->dkim, (cfg->ndkim + 1) * sizeof(*nv));
	if (nv == NULL) {
		conf_error(err, errlen, c, line, "out of memory");
		return -1;
	}
	cfg->dkim = nv;
	k = &cfg->dkim[cfg->ndkim];
	memset(k, 0, sizeof(*k));
	k->domain = strdup(domain);
	k->selector = strdup(sel);
	k->keyfile = strdup(file);
	cfg->ndkim++;
	if (k->domain == NULL || k->selector == NULL || k->keyfile == NULL) {
		conf_error(err, errlen, c, line, "out of memory");
		return -1;
	}
	k->key = read_small_file(file, &why);
	if (k->key == NULL) {
		conf_error(err, errlen, c, line, "dkim_sign: key file %s: %s", file, why);
		return -1;
	}
	if (strstr(k->key, "PRIVATE KEY-----") == NULL) {
		conf_error(err, errlen, c, line, "dkim_sign: %s is not a PEM private key", file);
		return -1;
	}
	return 0;
}

/* The line of a key's (first) entry, for errors about its value; 0 if
 * the key was not in the file (its default was used). */
static int
parse_rate(struct relay_config *cfg, const struct conf *c, char *err, size_t errlen)
{
	const char *s = cfg->rate_limit_s, *slash, *why = NULL;
	char num[32];
	unsigned long long n;
	unsigned per;

	cfg->rate_count = 0;
	cfg->rate_period = 0;
	if (!relay_config_set(s) || strcasecmp(s, "none") == 0)
		return 0;
	slash = strchr(s, '/');
	if (slash == NULL || (size_t)(slash - s) >= sizeof(num)) {
		conf_error(err, errlen, c, conf_line(c, "rate_limit"), "rate_limit: expected COUNT/PERIOD, e.g. 250/1h");
		return -1;
	}
	memcpy(num, s, (size_t)(slash - s));
	num[slash - s] = '\0';
	if (conf_parse_uint(num, &n, &why) != 0 || n == 0 ||
	    conf_parse_duration(slash + 1, &per, &why) != 0 || per == 0) {
		conf_error(err, errlen, c, conf_line(c, "rate_limit"), "rate_limit: bad value \"%s\"", s);
		return -1;
	}
	cfg->rate_count = n;
	cfg->rate_period = per;
	return 0;
}

static int
check_metrics_listen(const struct relay_config *cfg, struct conf *c, char *err, size_t errlen)
{
	struct net_endpoint ep;
	const char *why = NULL;

	if (net_parse_endpoint(cfg->metrics_listen, &ep, &why) == 0)
		return 0;
	conf_error(err, errlen, c, conf_line(c, "metrics_listen"), "metrics_listen: \"%s\": %s",
	    cfg->metrics_listen, why);
	return -1;
}

int
relay_config_load(const char *path, struct relay_config *cfg, char *err, size_t errlen)
{
	struct conf c;
	struct conf_entry *e;

	memset(cfg, 0, sizeof(*cfg));
	if (conf_load(path, &c, err, errlen) != 0)
		return -1;
	cfg->file = strdup(path);
	if (cfg->file == NULL || conf_apply(&c, relay_schema, cfg, err, errlen) != 0)
		goto fail;

	/* indexed dkim_sign[domain] = SELECTOR KEYFILE */
	while ((e = conf_take(&c, "dkim_sign")) != NULL) {
		if (e->index == NULL || *e->index == '\0') {
			conf_error(err, errlen, &c, e->line, "dkim_sign: repeated key");
			goto fail;
		}
		if (add_dkim(cfg, e->index, e->value, &c, e->line, err, errlen) != 0)
			goto fail;
	}
	if (conf_check_unused(&c, err, errlen) != 0)
		goto fail;
	for (size_t i = 0; i < cfg->dkim_sign_s.n; i++) {
		char dom[256];
		const char *v = cfg->dkim_sign_s.v[i];
		size_t dl = strcspn(v, " \t");
		if (dl == 0 || dl >= sizeof(dom)) {
			conf_error(err, errlen, &c, conf_line(&c, "dkim_sign"), "dkim_sign: bad entry \"%s\"", v);
			goto fail;
		}
		memcpy(dom, v, dl);
		dom[dl] = '\0';
		if (add_dkim(cfg, dom, v + dl, &c, conf_line(&c, "dkim_sign"), err, errlen) != 0)
			goto fail;
	}

	if (net_cidr_list_parse(cfg->client_networks_s, &cfg->client_networks,
	    err, errlen) != 0)
		goto fail;
	if (cfg->smarthost_s.n == 0) {
		conf_error(err, errlen, &c, conf_line(&c, "smarthost"), "smarthost: at least one is required");
		goto fail;
	}
	cfg->smarthosts = calloc(cfg->smarthost_s.n, sizeof(*cfg->smarthosts));
	if (cfg->smarthosts == NULL)
		goto fail;
	for (size_t i = 0; i < cfg->smarthost_s.n; i++) {
		const char *why = NULL;
		if (relay_config_parse_smarthost(cfg->smarthost_s.v[i],
		    &cfg->smarthosts[i], &why) != 0) {
			conf_error(err, errlen, &c, conf_line(&c, "smarthost"), "smarthost \"%s\": %s",
			    cfg->smarthost_s.v[i], why);
			goto fail;
		}
		cfg->nsmarthosts++;
	}
	for (size_t i = 0; i < cfg->listen.n; i++) {
		struct net_endpoint ep;
		const char *why = NULL;
		if (net_parse_endpoint(cfg->listen.v[i], &ep, &why) != 0) {
			conf_error(err, errlen, &c, conf_line(&c, "listen"), "listen \"%s\": %s", cfg->listen.v[i], why);
			goto fail;
		}
	}
	if (cfg->listen.n == 0) {
		conf_error(err, errlen, &c, conf_line(&c, "listen"), "listen: at least one address is required");
		goto fail;
	}
	if (cfg->min_backoff > cfg->max_backoff) {
		conf_error(err, errlen, &c, conf_line(&c, "min_backoff"), "min_backoff is larger than max_backoff");
		goto fail;
	}
	if (relay_config_set(cfg->auth_user) != relay_config_set(cfg->auth_password)) {
		conf_error(err, errlen, &c, conf_line(&c, "auth_user"), "auth_user and auth_password go together");
		goto fail;
	}
	if (relay_config_set(cfg->metrics_listen) && check_metrics_listen(cfg, &c, err, errlen) != 0)
		goto fail;
	if (cfg->spool_dir[0] != '/') {
		conf_error(err, errlen, &c, conf_line(&c, "spool_dir"), "spool_dir must be an absolute path");
		goto fail;
	}
	if (parse_rate(cfg, &c, err, errlen) != 0)
		goto fail;
	if (relay_config_set(cfg->smtpd_tls_cert) != relay_config_set(cfg->smtpd_tls_key)) {
		conf_error(err, errlen, &c, conf_line(&c, "smtpd_tls_cert"), "smtpd_tls_cert and smtpd_tls_key go together");
		goto fail;
	}
	if (relay_config_set(cfg->smtpd_auth_user) != relay_config_set(cfg->smtpd_auth_password)) {
		conf_error(err, errlen, &c, conf_line(&c, "smtpd_auth_user"), "smtpd_auth_user and smtpd_auth_password go together");
		goto fail;
	}
	if (relay_config_set(cfg->smtpd_auth_user) && !relay_config_set(cfg->smtpd_tls_cert)) {
		conf_error(err, errlen, &c, conf_line(&c, "smtpd_auth_user"), "smtpd_auth_user needs smtpd_tls_cert: AUTH is offered only over TLS");
		goto fail;
	}
	if (relay_config_set(cfg->smtpd_tls_cert)) {
		char te[512];
		cfg->smtpd_tls = tls_server_ctx(cfg->smtpd_tls_cert, cfg->smtpd_tls_key, te, sizeof(te));
		if (cfg->smtpd_tls == NULL) {
			conf_error(err, errlen, &c, conf_line(&c, "smtpd_tls_cert"), "smtpd_%s", te);
			goto fail;
		}
	}
	if (!relay_config_set(cfg->hostname)) {
		char h[256];
		if (gethostname(h, sizeof(h) - 1) != 0)
			snprintf(h, sizeof(h), "localhost");
		h[sizeof(h) - 1] = '\0';
		free(cfg->hostname);
		cfg->hostname = strdup(h);
		if (cfg->hostname == NULL)
			goto fail;
	}
	conf_free(&c);
	return 0;
fail:
	if (err[0] == '\0')
		snprintf(err, errlen, "%s: out of memory", path);
	conf_free(&c);
	relay_config_free(cfg);
	return -1;
}

void
relay_config_free(struct relay_config *cfg)
{
	if (cfg->smtpd_tls)
		SSL_CTX_free(cfg->smtpd_tls);
	if (cfg->smtpd_auth_password)
		explicit_bzero(cfg->smtpd_auth_password, strlen(cfg->smtpd_auth_password));
	if (cfg->auth_password)
		explicit_bzero(cfg->auth_password, strlen(cfg->auth_password));
	conf_release(relay_schema, cfg);
	net_cidr_list_free(&cfg->client_networks);
	free(cfg->smarthosts);
	for (size_t i = 0; i < cfg->ndkim; i++) {
		free(cfg->dkim[i].domain);
		free(cfg->dkim[i].selector);
		free(cfg->dkim[i].keyfile);
		if (cfg->dkim[i].key) {
			explicit_bzero(cfg->dkim[i].key, strlen(cfg->dkim[i].key));
			free(cfg->dkim[i].key);
		}
	}
	free(cfg->dkim);
	free(cfg->file);
	memset(cfg, 0, sizeof(*cfg));
}

const struct relay_dkim_key *
relay_config_dkim_key(const struct relay_config *cfg, const char *domain)
{
	const char *d = domain;

	while (d && *d) {
		for (size_t i = 0; i < cfg->ndkim; i++)
			if (strcasecmp(cfg->dkim[i].domain, d) == 0)
				return &cfg->dkim[i];
		d = strchr(d, '.');
		if (d)
			d++;
	}
	for (size_t i = 0; i < cfg->ndkim; i++)
		if (strcmp(cfg->dkim[i].domain, "*") == 0)
			return &cfg->dkim[i];
	return NULL;
}

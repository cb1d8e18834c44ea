/*
 * relay_config — the smarthost.conf schema of tailwart-relay.
 *
 * relay_config_load() parses and validates a file (lib/config.h grammar)
 * into a struct relay_config, reads the DKIM private keys and parses the
 * smarthost list and rate limit, and builds the receiver's TLS context
 * (certificate and key read as root). It is called by the master as root at
 * start-up and on HUP (the old config stays if the new one is invalid),
 * and by `-n` and the queue command line. The struct owns every string and
 * key it holds; relay_config_free() releases them.
 */
#ifndef RELAY_CONFIG_H
#define RELAY_CONFIG_H

#include <stddef.h>
#include <time.h>
#include <openssl/ssl.h>
#include "config.h"
#include "net.h"

enum relay_tls {
	RELAY_TLS_NONE,		/* never STARTTLS */
	RELAY_TLS_MAY,		/* STARTTLS when offered, no verification */
	RELAY_TLS_ENCRYPT,	/* STARTTLS required, no verification */
	RELAY_TLS_VERIFY,	/* STARTTLS required, chain + host name vs tls_ca */
	RELAY_TLS_IMPLICIT,	/* TLS from the first byte (port 465), verified */
};

struct relay_smarthost {
	char	host[256];
	char	port[16];
	int	mx;		/* 1: "host:port", look up MX first */
};

struct relay_dkim_key {
	char	*domain;	/* "*" = default for any sender domain */
	char	*selector;
	char	*keyfile;
	char	*key;		/* PEM text, read at load time */
};

struct relay_config {
	/* filled by conf_apply() */
	struct conf_list	 listen;
	char			*client_networks_s;
	char			*spool_dir;
	struct conf_list	 smarthost_s;
	int			 tls;
	char			*tls_ca;
	char			*auth_user;
	char			*auth_password;
	struct conf_list	 dkim_sign_s;
	unsigned		 min_backoff, max_backoff;
	unsigned		 max_queue_lifetime, delay_warning;
	unsigned long long	 max_connections;
	unsigned long long	 max_clients;
	unsigned long long	 batch_size;
	unsigned		 connection_reuse_time;	/* idle worker kept, s */
	char			*rate_limit_s;
	size_t			 message_size_limit;
	char			*user;
	char			*metrics_listen;	/* "" = no metrics endpoint */
	char			*hostname;
	unsigned		 smtp_timeout;
	unsigned		 connect_timeout;
	char			*resolver;
	char			*smtpd_tls_cert, *smtpd_tls_key;
	char			*smtpd_auth_user, *smtpd_auth_password;
	/* derived */
	char			*file;
	struct net_cidr_list	 client_networks;
	struct relay_smarthost	*smarthosts;
	size_t			 nsmarthosts;
	struct relay_dkim_key	*dkim;
	size_t			 ndkim;
	unsigned long long	 rate_count;	/* 0 = no limit */
	unsigned		 rate_period;	/* seconds */
	SSL_CTX			*smtpd_tls;	/* receiver STARTTLS, or NULL */
};

/* 0 / -1 with "file:line: message" in err. */
int  relay_config_load(const char *path, struct relay_config *cfg,
	    char *err, size_t errlen);
void relay_config_free(struct relay_config *cfg);
/* The key for a sender domain (exact, then parent domains, then "*"), or NULL. */
const struct relay_dkim_key *relay_config_dkim_key(const struct relay_config *cfg,
	    const char *domain);
/* Parse "[host]:port" / "host:port" / "host" (port 25). 0 / -1. */
int  relay_config_parse_smarthost(const char *s, struct relay_smarthost *sh,
	    const char **why);
/* Is a string value set (not NULL, not empty)? */
int  relay_config_set(const char *s);

#endif

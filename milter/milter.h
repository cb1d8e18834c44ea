/*
 * milter.h — tailwart-milter's shared types: settings (the policy keys of
 * gate.conf plus the milter_* keys below), the read-only runtime every
 * libmilter callback thread uses, per-connection state (only through
 * smfi_setpriv), and the DKIM verification wrapper. Nothing outside
 * milter/ includes it.
 *
 * Keys read by tailwart-milter (all other gate.conf keys are left to the
 * gate and ignored here; an unknown key that looks like a policy or
 * milter_* key of ours is an error):
 *   every policy key of policy_config.h (store, resolver, allow, deny,
 *   rate_limit..., greylist_..., dnsbl_..., spf_..., received_spf_header)
 *   milter_listen      = inet:11332@127.0.0.1   (libmilter socket syntax)
 *   milter_authserv_id = mx.example.net  (Authentication-Results; default:
 *                        `hostname`, else the system host name)
 *   milter_dkim        = yes | no        (verify DKIM at end of message)
 *   milter_dkim_keys   = file:PATH       (tests only: public keys from a
 *                        file, lines "SEL._domainkey.DOMAIN v=DKIM1; ...")
 *   milter_timeout     = 2m              (libmilter's MTA socket timeout)
 *   user               = tailwart        (the gate's key: started as root,
 *                        tailwart-milter drops to it after binding)
 */
#ifndef MILTER_H
#define MILTER_H

#include <stddef.h>
#include <sys/socket.h>

#include <libmilter/mfapi.h>
#include <opendkim/dkim.h>

#include "config.h"
#include "policy.h"
#include "policy_config.h"
#include "policy_dns.h"
#include "policy_spf.h"
#include "policy_store.h"
#include "smtp.h"

struct milter_settings {
	struct policy_config	 pc;
	char			*listen;
	char			*authserv_id;
	int			 dkim;
	char			*dkim_keys;	/* path, or NULL for DNS */
	unsigned		 timeout;	/* s */
	char			*user;		/* or NULL */
	char			*metrics_listen;	/* milter_metrics_listen; "" = off */
	const char		*file;
};

/* Built once at start-up, read-only afterwards (shared by all threads). */
struct milter_runtime {
	const struct milter_settings	*cfg;
	struct policy_store		*store;	/* thread-safe handle */
	DKIM_LIB			*dkim;	/* NULL when milter_dkim = no */
};

/* The runtime for the callbacks (libmilter gives them no user pointer);
 * set by main() before smfi_main() and never changed after. */
extern const struct milter_runtime *milter_rt;

#define MILTER_AR_MAX	16	/* our own forged A-R headers we remove */

/* Per SMTP connection (smfi_setpriv); one thread at a time uses it. */
struct milter_conn {
	char			 id[20];		/* log id */
	int			 leadspc;		/* SMFIP_HDR_LEADSPC negotiated */
	int			 has_ip;
	struct sockaddr_storage	 ss;
	char			 ip[64];
	char			 host[256];		/* the MTA's name for the client */
	char			 helo[256];
	int			 allowed, dnswl, rate_owed, refused;
	struct policy_dns	*dns;
	/* transaction */
	char			 from[SMTP_PATH_MAX + 1];
	int			 have_from;
	enum policy_spf_result	 spf;
	int			 spf_done;
	DKIM			*dkim;
	int			 dkim_failed;
	unsigned		 nar;			/* A-R headers seen */
	unsigned		 ar_forged[MILTER_AR_MAX];	/* their indexes (1-based) */
	unsigned		 nforged;
};

/* milter_config.c */
int  milter_config_load(const char *path, struct milter_settings *s,
	    char *err, size_t errlen);
void milter_config_free(struct milter_settings *s);

/* milter_priv.c: give the store (and a unix socket) to `user` and become
 * it; 0 when done or nothing to do, -1 with the reason in err. */
int  milter_priv_drop(const char *user, struct policy_store *st,
	    const char *listen, char *err, size_t errlen);

/* milter_filter.c: the callback table for smfi_register(); the number of
 * connections still holding state (main waits for 0 before freeing). */
void milter_filter_desc(struct smfiDesc *d);
int  milter_filter_active(void);

/* milter_dkim.c: DKIM verification (libopendkim). */
DKIM_LIB *milter_dkim_init(const struct milter_settings *s, char *err, size_t errlen);
/* Start verifying a message; NULL (logged) on failure. */
DKIM *milter_dkim_start(DKIM_LIB *lib, const char *id);
/* Feed a header "Name:value" (value as received, leading blank kept). */
int  milter_dkim_header(DKIM *d, const char *name, const char *value, int leadspc);
int  milter_dkim_eoh(DKIM *d);
int  milter_dkim_body(DKIM *d, const unsigned char *p, size_t len);
/* Finish and write the A-R result fragments ("dkim=pass header.d=...;"
 * separated by ";\n\t") into out. Returns the number of results (0 = none). */
int  milter_dkim_finish(DKIM *d, char *out, size_t outlen);
void milter_dkim_free(DKIM *d);

#endif

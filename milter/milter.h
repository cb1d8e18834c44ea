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
 *   milter_dkim_keys   = file:PATH       (a test aid, not in the user docs:
 *                        public keys from a file, lines
 *                        "SEL._domainkey.DOMAIN v=DKIM1; ..."; without
 *                        it keys are looked up through `resolver`)
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

struct milter_sessions;

/* Built once at start-up, read-only afterwards (shared by all threads). */
struct milter_runtime {
	const struct milter_settings	*cfg;
	struct policy_store		*store;	/* thread-safe handle */
	DKIM_LIB			*dkim;	/* NULL when milter_dkim = no */
	struct milter_sessions		*sess;	/* replayed sessions (locked) */
};

/* The runtime for the callbacks (libmilter gives them no user pointer);
 * set by main() before smfi_main() and never changed after. */
extern const struct milter_runtime *milter_rt;

/* The raw header block Stalwart sends at the start of the body (it
 * carries the whole message in BODY chunks): collected, then fed to the
 * DKIM verifier as the real headers (milter_dkim_raw_*). */
struct milter_rawhdr {
	int			 state;		/* RAWHDR_OFF, _COLLECT, _DONE */
	char			*buf;
	size_t			 len, cap;
};
enum { RAWHDR_OFF, RAWHDR_COLLECT, RAWHDR_DONE };
#define MILTER_RAWHDR_MAX	(1024 * 1024)	/* larger: dkim=temperror */

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
	int			 stalwart;		/* {daemon_name} "Stalwart..." */
	char			 skey[96];		/* session key ("" = none) */
	struct policy_dns	*dns;
	/* transaction */
	char			 from[SMTP_PATH_MAX + 1];
	int			 have_from;
	enum policy_spf_result	 spf;
	int			 spf_done;
	DKIM			*dkim;
	int			 dkim_failed;
	struct milter_rawhdr	 raw;
	int			 body_seen;
	char			 first_hdr[80];		/* name of the first header */
	unsigned		 nar;			/* A-R headers seen */
	unsigned		*ar_forged;		/* forged ones' indexes (1-based) */
	unsigned		 nforged, forged_cap;
	int			 ar_lost;		/* could not note one: tempfail */
};

/* milter_ar.c: Authentication-Results authserv-id (RFC 8601). */
int  milter_ar_authserv_id(const char *value, char *out, size_t len);
int  milter_ar_ours(const char *value, const char *id);
int  milter_ar_note(struct milter_conn *c, unsigned index);

/*
 * milter_sess.c: sessions of an MTA that opens a new milter connection
 * per stage and replays the session so far (Stalwart), keyed by
 * "{client_addr} {client_port}", kept 15 minutes after their last use.
 * What was counted or decided there is not counted or decided again.
 * Every call locks the table; results are copied out.
 */
struct milter_sess_conn {
	int			 checked;	/* passed the connect checks */
	int			 allowed, dnswl;
};
enum milter_sess_step { SESS_NEW, SESS_REPLAY, SESS_OWED, SESS_NONE };
struct milter_sessions *milter_sess_new(void);
void milter_sess_free(struct milter_sessions *t);
/* SESS_REPLAY (out filled) for a known session that passed the connect
 * checks, SESS_NEW (now created, or refused before: checked again),
 * SESS_NONE (table full or no memory: count as a plain connection). */
enum milter_sess_step milter_sess_connect(struct milter_sessions *t,
	    const char *key, struct milter_sess_conn *out);
void milter_sess_set_conn(struct milter_sessions *t, const char *key,
	    const struct milter_sess_conn *in);
/* MAIL: SESS_REPLAY when this transaction is open already (*spf_done and
 * *spf from the first evaluation), else SESS_NEW (a new transaction). */
enum milter_sess_step milter_sess_mail(struct milter_sessions *t,
	    const char *key, const char *from, int *spf_done,
	    enum policy_spf_result *spf);
void milter_sess_set_spf(struct milter_sessions *t, const char *key,
	    enum policy_spf_result spf);
void milter_sess_txn_end(struct milter_sessions *t, const char *key);
/* RCPT: SESS_NEW (not yet decided), SESS_REPLAY (passed before),
 * SESS_OWED (greylisted before; the refusal is given at DATA). */
enum milter_sess_step milter_sess_rcpt(struct milter_sessions *t,
	    const char *key, const char *rcpt);
int  milter_sess_rcpt_set(struct milter_sessions *t, const char *key,
	    const char *rcpt, const struct policy_result *owed);
/* 1 and the first owed refusal in *r if the open transaction has one. */
int  milter_sess_owed(struct milter_sessions *t, const char *key,
	    struct policy_result *r);

/* milter_dns.c: libopendkim's key lookups through policy_dns (the
 * configured resolver). 0 / -1. */
int  milter_dns_setup(DKIM_LIB *lib, const struct milter_settings *s);

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
/* Feed body bytes that start with the raw header block (Stalwart): the
 * headers found there go to the verifier as headers, the rest as body. */
int  milter_dkim_raw_body(DKIM *d, struct milter_rawhdr *rh,
	    const unsigned char *p, size_t len);
/* End of message in raw mode: a header block with no blank line after it
 * is all headers. */
int  milter_dkim_raw_end(DKIM *d, struct milter_rawhdr *rh);
void milter_dkim_raw_free(struct milter_rawhdr *rh);
/* Finish and write the A-R result fragments ("dkim=pass header.d=...")
 * separated by sep (";\n\t", or "; " unfolded) into out. Returns the
 * number of results (0 = none). */
int  milter_dkim_finish(DKIM *d, char *out, size_t outlen, const char *sep);
void milter_dkim_free(DKIM *d);

#endif

/*
 * relay_smtpd_int — what the receiver's files share (relay_smtpd.c, the
 * session: the engine's hooks for the envelope and the spool;
 * relay_smtpd_auth.c, AUTH and its limits): the session struct around the
 * shared SMTP engine (lib/smtpd.h), which owns the wire, the commands and
 * their rules. Not for other modules.
 */
#ifndef RELAY_SMTPD_INT_H
#define RELAY_SMTPD_INT_H

#include <sys/types.h>
#include <time.h>

#include "smtp.h"
#include "smtpd.h"
#include "relay_config.h"
#include "relay_spool.h"

struct relay_session {
	struct smtpd	 e;		/* the engine: io, state, helo, tls, sender */
	const struct relay_config *cfg;
	int		 fd;
	char		 client[64];
	int		 trusted;	/* in client_networks */
	int		 authed;
	char		 auth_user[128];
	unsigned	 auth_fails;	/* failed AUTH in this session */
	unsigned	 auth_prior;	/* ... by this client in the last window */
	/* transaction (the sender is e.mail_from, its parameters e.mail) */
	char		*rcpts[RELAY_RCPT_MAX];
	size_t		 nrcpts;
	enum relay_ret	 ret;		/* RFC 3461 */
	char		 envid[101];
	unsigned	 notify[RELAY_RCPT_MAX];
	char		*orcpt[RELAY_RCPT_MAX];
	struct relay_spool_writer *w;
};

/* AUTH PLAIN/LOGIN (relay_smtpd_auth.c), the engine's auth and
 * auth_offer hooks (ctx is the struct relay_session). A failure is
 * answered after a delay that grows with the session's failures (1 s,
 * 2 s, ... 5 s); the RELAY_AUTH_SESSION_MAX-th ends the session with
 * 421 4.7.0, and a client with RELAY_AUTH_CLIENT_MAX failures in
 * RELAY_AUTH_WINDOW seconds (counted by the receiver over all its
 * sessions) gets 421 4.7.0 at once. */
#define RELAY_AUTH_SESSION_MAX	3
#define RELAY_AUTH_CLIENT_MAX	5
#define RELAY_AUTH_WINDOW	600
const char *relay_smtpd_auth_offer(void *ctx);
void relay_smtpd_auth(void *ctx, const char *args);
/* The client has used up its failures: true when it must be refused. */
int  relay_smtpd_auth_blocked(const struct relay_session *s);

/* The receiver's per-client count of failed AUTH (over sessions): each
 * session reports its number of failures to the receiver when it ends
 * (relay_receiver.c passes it on as a wait status with that exit code). */
struct relay_auth_client {
	char	 addr[64];
	unsigned fails;
	time_t	 since;		/* first failure of the window */
};
struct relay_auth_kid {
	pid_t	 pid;
	char	 addr[64];
};
struct relay_auth_table {
	struct relay_auth_client *c;
	size_t	 nc, cap;
	struct relay_auth_kid *k;
	size_t	 nk, kcap;
};
int  relay_auth_table_init(struct relay_auth_table *t, size_t kids);
void relay_auth_table_free(struct relay_auth_table *t);
/* Failures of addr in the current window. */
unsigned relay_auth_prior(struct relay_auth_table *t, const char *addr, time_t now);
/* A session started in process pid for addr / ended with wait status st. */
void relay_auth_started(struct relay_auth_table *t, pid_t pid, const char *addr);
void relay_auth_ended(struct relay_auth_table *t, pid_t pid, int st, time_t now);

#endif

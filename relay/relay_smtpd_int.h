/*
 * relay_smtpd_int — what the receiver's files share (relay_smtpd.c, the
 * session and its commands; relay_smtpd_auth.c, AUTH and its limits): the
 * session struct, its states, the reply and state-change functions. Not
 * for other modules.
 */
#ifndef RELAY_SMTPD_INT_H
#define RELAY_SMTPD_INT_H

#include <sys/types.h>
#include <time.h>

#include "io.h"
#include "smtp.h"
#include "relay_config.h"
#include "relay_spool.h"

enum smtpd_state {
	ST_GREET = 1 << 0,	/* before EHLO/HELO */
	ST_READY = 1 << 1,	/* after EHLO, no transaction */
	ST_MAIL  = 1 << 2,	/* MAIL accepted, no RCPT yet */
	ST_RCPT  = 1 << 3,	/* at least one RCPT */
	ST_BDAT  = 1 << 4,	/* inside a BDAT sequence */
	ST_QUIT  = 1 << 5,
};
#define ST_ANY	(ST_GREET | ST_READY | ST_MAIL | ST_RCPT | ST_BDAT)

struct smtpd {
	const struct relay_config *cfg;
	struct io	 io;
	int		 fd;
	char		 client[64];
	char		 helo[256];
	int		 esmtp;
	int		 trusted;	/* in client_networks */
	int		 tls;
	int		 authed;
	char		 auth_user[128];
	unsigned	 auth_fails;	/* failed AUTH in this session */
	unsigned	 auth_prior;	/* ... by this client in the last window */
	enum smtpd_state state;
	/* transaction */
	char		 from[SMTP_PATH_MAX + 1];
	int		 utf8, eightbit;
	char		*rcpts[RELAY_RCPT_MAX];
	size_t		 nrcpts;
	enum relay_ret	 ret;		/* RFC 3461 */
	char		 envid[101];
	unsigned	 notify[RELAY_RCPT_MAX];
	char		*orcpt[RELAY_RCPT_MAX];
	struct relay_spool_writer *w;
	off_t		 size;
	int		 too_big, bad_lf, bad_cr, prev_cr, bdat_failed;
	int		 errors;
};

/* Buffered reply line (CRLF added); a write error ends the session. */
void relay_smtpd_reply(struct smtpd *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void relay_smtpd_enter(struct smtpd *s, enum smtpd_state st);

/* AUTH PLAIN/LOGIN (relay_smtpd_auth.c). A failure is answered after a
 * delay that grows with the session's failures (1 s, 2 s, ... 5 s); the
 * RELAY_AUTH_SESSION_MAX-th ends the session with 421 4.7.0, and a client
 * with RELAY_AUTH_CLIENT_MAX failures in RELAY_AUTH_WINDOW seconds (counted
 * by the receiver over all its sessions) gets 421 4.7.0 at once. */
#define RELAY_AUTH_SESSION_MAX	3
#define RELAY_AUTH_CLIENT_MAX	5
#define RELAY_AUTH_WINDOW	600
int  relay_smtpd_auth_offered(const struct smtpd *s);
void relay_smtpd_auth(struct smtpd *s, const char *args);
/* The client has used up its failures: true when it must be refused. */
int  relay_smtpd_auth_blocked(const struct smtpd *s);

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

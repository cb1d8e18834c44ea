/*
 * gate_session.h — one client session inside a worker: the state machine's
 * state, the client side (io, TLS facts, HELO, envelope) and the backend
 * side. Shared by gate_session.c (commands), gate_data.c (the message) and
 * gate_backend.c (hand-off). Lives on the worker's stack for one session.
 */
#ifndef GATE_SESSION_H
#define GATE_SESSION_H

#include <stdint.h>
#include <sys/socket.h>

#include "gate.h"
#include "gate_milter.h"
#include "io.h"
#include "smtp.h"

enum gate_state {
	ST_CONNECTED = 1 << 0,	/* banner sent, no EHLO yet (also after STARTTLS) */
	ST_HELO      = 1 << 1,	/* EHLO/HELO done, no transaction */
	ST_MAIL      = 1 << 2,	/* MAIL accepted, no recipient yet */
	ST_RCPT      = 1 << 3,	/* at least one recipient accepted */
	ST_QUIT      = 1 << 4,	/* closing */
};

struct gate_backend {
	int		 fd;		/* -1 when not connected */
	struct io	 io;
	struct smtp_caps caps;
	char		 addr[300];	/* for logs */
	int		 counted;	/* held on the backend board (least-sessions) */
	/* MAIL held for the first RCPT when the backend pipelines (the two
	 * go in one write); its refusal (code != 0) answers every RCPT */
	char		 mail_cmd[SMTP_LINE_MAX];
	int		 mail_pending;
	struct smtp_reply mail_refusal;
};

struct gate_session {
	struct gate_runtime	*rt;
	const struct gate_settings *cfg;
	char			 id[17];
	enum gate_state		 state;
	struct io		 io;		/* client side */
	struct sockaddr_storage	 peer, local;
	char			 peer_ip[64];
	unsigned		 peer_port;
	char			 helo[256];
	int			 esmtp;
	int			 tls;
	char			 tls_version[32], tls_cipher[64];

	/* transaction */
	char			 mail_from[SMTP_PATH_MAX + 1];
	char			 mail_params[512];	/* what we replayed */
	int			 smtputf8, body8;
	size_t			 declared_size;
	unsigned		 nrcpt;

	/* policy facts */
	int			 allowlisted, dnswl, rate_owed, refused;
	int			 spf_result;		/* enum policy_spf_result, -1 = none */

	/* counters for the summary line */
	unsigned		 errors, nmail, naccepted, ncommands;
	long long		 started_ms;
	int			 metric_reply, metric_outcome;	/* gate_metrics.c */
	long long		 metric_mail_us;

	struct gate_backend	 be;

	/* milters */
	struct gate_milter_session *milters;	/* NULL without milters */
	char			 milter_refusal[GATE_MILTER_REPLY_MAX];	/* session refused */
	char			 cur_rcpt[SMTP_PATH_MAX + 1];
	char			 mbuf[96];		/* macro scratch */
	unsigned		 ntrans;
	char			**rcpts;
	size_t			 rcpts_cap;
};

/* reply helpers (gate_session.c) */
int  gate_reply(struct gate_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void gate_enter_state(struct gate_session *s, enum gate_state st);
void gate_error(struct gate_session *s);	/* counts client errors */
/* The wait for the client: base_s seconds, cut to what is left of
 * timeout_session (at least 1 ms; the deadline then shows as a timeout). */
int  gate_client_timeout(const struct gate_session *s, unsigned base_s);
/* After a client timeout: was it the whole-session deadline? Logs it. */
int  gate_session_expired(struct gate_session *s);

/* backend (gate_backend.c). On failure, the open and relay functions
 * have already sent the client the right 4xx and logged it. */
int  gate_backend_open(struct gate_session *s);
void gate_backend_close(struct gate_session *s, int send_quit);
void gate_backend_rset(struct gate_session *s);
int  gate_backend_mail(struct gate_session *s, const char *cmd);
/* Send a command, relay the backend's reply to the client verbatim.
 * Returns the reply code, or -1 when the backend is gone (client got
 * 421 4.4.2 and the session must end). */
int  gate_backend_relay(struct gate_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* DATA (gate_data.c): read the message from the client and stream it to
 * the backend; the final reply is the backend's. The steps are shared
 * with the milter path (gate_filter.c). */
struct gate_data {
	char		*chunk;		/* BDAT only */
	size_t		 clen;
	size_t		 size;		/* unstuffed message bytes */
	int		 bad_cr, bad_lf, too_big;
	int		 be_failed;	/* 1 backend gone, 2 backend refused a chunk */
	struct smtp_reply be_reply;	/* a refusal to relay at the end */
	struct gate_milter_spool *spool;	/* milters: content goes here first */
	int		 spool_failed;
};
void gate_data_run(struct gate_session *s);
int  gate_data_begin(struct gate_session *s, struct gate_data *d, int relay_354);
int  gate_data_read(struct gate_session *s, struct gate_data *d);
void gate_data_forward(struct gate_session *s, struct gate_data *d, const char *p,
	    size_t n, int bol);
void gate_data_refuse_bad(struct gate_session *s, struct gate_data *d);
void gate_data_finish(struct gate_session *s, struct gate_data *d);
void gate_data_end_transaction(struct gate_session *s);

/* Milters (gate_filter.c): the session side of gate_milter.c. Each returns
 * 0 to go on or -1 when the command was refused (reply queued). */
int  gate_filter_open(struct gate_session *s);
int  gate_filter_helo(struct gate_session *s);
int  gate_filter_mail(struct gate_session *s, const char *addr, const char *params);
int  gate_filter_rcpt(struct gate_session *s, const char *addr);
void gate_filter_data(struct gate_session *s);
void gate_filter_close(struct gate_session *s);

/* Accepted recipients of the transaction (replayed after milter changes). */
int  gate_rcpts_add(struct gate_session *s, const char *addr);
void gate_rcpts_clear(struct gate_session *s);


#endif

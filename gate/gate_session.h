/*
 * gate_session.h — one client session inside a worker: the SMTP server
 * engine's session (struct smtpd: the wire, the state, HELO, TLS facts,
 * the envelope, from lib/smtpd.h) and what is the gate's own: policy
 * facts, the backend side, the message in flight, the milters. Lives on
 * the heap for one session (gate_session.c owns it).
 *
 * The calls point one way: gate_session.c (the engine's hooks) calls
 * gate_policy.c, gate_filter.c, gate_backend.c and gate_data.c; those call
 * each other only sideways and downward (filter -> data -> backend, filter
 * -> backend, data -> policy for the Received-SPF line) and reply to the
 * client through lib/smtpd.h, never back into gate_session.c.
 */
#ifndef GATE_SESSION_H
#define GATE_SESSION_H

#include <stdint.h>
#include <sys/socket.h>

#include "gate.h"
#include "gate_milter.h"
#include "io.h"
#include "smtp.h"
#include "smtpd.h"

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
	/* DATA sent with the last RCPT (the client pipelined it, the backend
	 * pipelines and has no CHUNKING): its reply (code != 0), kept for the
	 * data_begin hook. 354 means the backend waits for content. */
	struct smtp_reply data_reply;
};

/* The message in flight (between the data_begin and data_end/abort hooks). */
struct gate_data {
	char		*chunk;		/* BDAT to the backend only */
	size_t		 clen;
	int		 be_failed;	/* 1 backend gone, 2 backend refused a chunk */
	struct smtp_reply be_reply;	/* a refusal to relay at the end */
	int		 spooling;	/* milters: content goes to spool first */
	int		 spool_failed;
	struct gate_milter_spool spool;
};

struct gate_session {
	struct smtpd		 e;		/* the engine's session (client side) */
	struct gate_runtime	*rt;
	const struct gate_settings *cfg;
	char			 id[17];
	struct sockaddr_storage	 peer, local;
	char			 peer_ip[64];
	unsigned		 peer_port;

	char			 mail_params[512];	/* MAIL parameters we replayed */

	/* policy facts */
	int			 allowlisted, dnswl, rate_owed, refused;
	int			 spf_result;		/* enum policy_spf_result, -1 = none */

	/* counters for the summary line and metrics (gate_metrics.c) */
	unsigned		 nmail, naccepted;
	int			 metric_reply;
	long long		 metric_mail_us;

	struct gate_backend	 be;
	struct gate_data	 d;

	/* milters */
	struct gate_milter_session *milters;	/* NULL without milters */
	char			 cur_rcpt[SMTP_PATH_MAX + 1];
	char			 mbuf[96];		/* macro scratch */
	unsigned		 ntrans;
	char			**rcpts;		/* accepted, e.nrcpt of them */
	size_t			 rcpts_cap;
};

/* backend (gate_backend.c). On failure, the open and relay functions
 * have already sent the client the right 4xx and logged it. */
int  gate_backend_open(struct gate_session *s);
void gate_backend_close(struct gate_session *s, int send_quit);
void gate_backend_rset(struct gate_session *s);
int  gate_backend_mail(struct gate_session *s, const char *cmd);
/* Send a command, relay the backend's reply to the client verbatim.
 * Returns the reply code, or -1 when the backend is gone (client got
 * 421 4.4.2 and the session ends). */
int  gate_backend_relay(struct gate_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* RCPT, with DATA in the same write when the client pipelined it (and
 * the backend can take it); DATA, or the reply to that pipelined DATA. */
int  gate_backend_rcpt(struct gate_session *s, const char *addr, int with_data);
int  gate_backend_data(struct gate_session *s);
/* A reply the backend gave, to the client as it is (all its lines). */
int  gate_backend_pass(struct gate_session *s, const struct smtp_reply *r);

/* The message toward the backend (gate_data.c): open the content channel
 * (BDAT chunks, or DATA and the backend's 354, relayed to the client when
 * relay_354), stream content, end it and pass on the backend's final reply.
 * gate_data_begin: 0, or -1 when the message is over (client answered). */
int  gate_data_begin(struct gate_session *s, int relay_354);
void gate_data_forward(struct gate_session *s, const char *p, size_t n, int bol);
void gate_data_finish(struct gate_session *s);
/* Drop the message in flight; drop_backend: its content went out. */
void gate_data_drop(struct gate_session *s, int drop_backend);

/* Milters (gate_filter.c): the session side of gate_milter.c. Each returns
 * 0 to go on or -1 when the command was refused (reply queued). */
int  gate_filter_open(struct gate_session *s);
int  gate_filter_helo(struct gate_session *s);
int  gate_filter_mail(struct gate_session *s, const char *addr, const char *params);
int  gate_filter_rcpt(struct gate_session *s, const char *addr);
/* The message with milters: the gate answers 354, spools the content, and
 * at the end lets the milters judge it before it goes to the backend. */
int  gate_filter_active(const struct gate_session *s);
enum smtpd_verdict gate_filter_data_begin(struct gate_session *s);
void gate_filter_data_write(struct gate_session *s, const char *p, size_t n);
void gate_filter_data_end(struct gate_session *s);
/* The message was dropped (the engine refused it or lost the client). */
void gate_filter_data_drop(struct gate_session *s, int lost);
/* The transaction ended: recipients forgotten, milters told. */
void gate_filter_reset(struct gate_session *s);
void gate_filter_close(struct gate_session *s);

/* Recipients of the transaction (replayed after milter changes): the
 * copy is made before the backend is asked, as rcpts[e.nrcpt]; the engine
 * counts it in when the RCPT is accepted. 0 / -1 (out of memory). */
int  gate_rcpts_add(struct gate_session *s, const char *addr);
void gate_rcpts_clear(struct gate_session *s);

#endif

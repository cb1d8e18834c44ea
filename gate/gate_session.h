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

	struct gate_backend	 be;
};

/* reply helpers (gate_session.c) */
int  gate_reply(struct gate_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void gate_enter_state(struct gate_session *s, enum gate_state st);
void gate_error(struct gate_session *s);	/* counts client errors */

/* backend (gate_backend.c). On failure, the open and relay functions
 * have already sent the client the right 4xx and logged it. */
int  gate_backend_open(struct gate_session *s);
void gate_backend_close(struct gate_session *s, int send_quit);
/* Send a command, relay the backend's reply to the client verbatim.
 * Returns the reply code, or -1 when the backend is gone (client got
 * 421 4.4.2 and the session must end). */
int  gate_backend_relay(struct gate_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* DATA (gate_data.c): read the message from the client and stream it to
 * the backend; the final reply is the backend's. */
void gate_data_run(struct gate_session *s);

long long gate_now_ms(void);

#endif

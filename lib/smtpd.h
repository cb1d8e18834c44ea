/*
 * smtpd — the SMTP server protocol engine of tailwart-gate and
 * tailwart-relay. It owns the wire and the rules; the program owns what
 * happens to a message.
 *
 * The engine: an explicit state machine driven by a command table (verb,
 * states where it is allowed, argument rule), the strict line rules, the
 * error limit, per-state timeouts and the session deadline, replies
 * buffered so that a pipelined group (RFC 2920) is answered in order and in
 * one write, EHLO capabilities from the program's description,
 * HELO/EHLO/RSET/NOOP/QUIT/HELP/VRFY/EXPN, STARTTLS (pipelined plaintext
 * discarded, state reset), AUTH framing (the exchange is the program's),
 * MAIL/RCPT path and parameter parsing, and the DATA and BDAT readers,
 * which hand the program the canonical message (CRLF lines only,
 * dot-unstuffed, size-checked) in chunks. The rules and reply codes are
 * listed in docs/smtpd.md; both programs' man pages point there.
 *
 * The program gives hooks (struct smtpd_hooks): each decides one step and,
 * where the step has a program-specific answer (MAIL, RCPT, the final
 * reply to a message), queues that reply itself with smtpd_reply(). Every
 * command gets exactly one reply. The banner is the program's: it queues
 * it (or not, when something else greeted) before smtpd_run().
 */
#ifndef LIB_SMTPD_H
#define LIB_SMTPD_H

#include <stddef.h>
#include <openssl/ssl.h>

#include "io.h"
#include "smtp.h"

enum smtpd_state {
	SMTPD_CONNECTED = 1 << 0,	/* banner sent, no EHLO yet (also after STARTTLS) */
	SMTPD_HELO      = 1 << 1,	/* EHLO/HELO done, no transaction */
	SMTPD_MAIL      = 1 << 2,	/* MAIL accepted, no recipient yet */
	SMTPD_RCPT      = 1 << 3,	/* at least one recipient accepted */
	SMTPD_BDAT      = 1 << 4,	/* inside a BDAT sequence */
	SMTPD_QUIT      = 1 << 5,	/* closing */
};

enum smtpd_verdict {
	SMTPD_ACCEPT,		/* go on (for MAIL/RCPT: the hook queued the 2xx) */
	SMTPD_REFUSE,		/* the hook queued its refusal */
};

/* Why a transaction ends (the reset hook). */
enum smtpd_reset {
	SMTPD_RESET_ABORT,	/* RSET, EHLO/HELO inside a transaction */
	SMTPD_RESET_DONE,	/* the message got its final reply, or DATA was refused */
};

/* Why the engine dropped a message (the data_abort hook). For the first
 * three the engine answers (550 5.6.0 / 552 5.3.4) after the client's end
 * of data; for LOST the client is gone or timed out and the session ends. */
enum smtpd_msg_fault {
	SMTPD_MSG_BARE_LF = 1,
	SMTPD_MSG_BARE_CR,
	SMTPD_MSG_TOO_BIG,
	SMTPD_MSG_LOST,
};

/* How the session ended (for the program's summary and metrics). */
enum smtpd_end {
	SMTPD_END_QUIT,		/* QUIT, or the program closed it */
	SMTPD_END_LOST,		/* the client went away */
	SMTPD_END_TIMEOUT,	/* a command/data timeout or the session deadline */
	SMTPD_END_ERRORS,	/* max_errors reached */
};

/* The MAIL parameters the engine understands (SIZE, BODY, SMTPUTF8). */
struct smtpd_mail {
	unsigned long long size;	/* SIZE=, 0 when absent */
	int		 have_size;
	int		 body8;		/* BODY=8BITMIME */
	int		 smtputf8;	/* SMTPUTF8 (only when offered) */
};

/* What the program offers; fixed for the session unless it changes it. */
struct smtpd_conf {
	const char	*hostname;	/* in 250/421 replies */
	size_t		 size_limit;	/* SIZE advertised, DATA/BDAT enforced */
	unsigned	 max_errors;	/* client errors before 421 4.7.0 */
	unsigned	 max_recipients;	/* 452 4.5.3 beyond */
	unsigned	 timeout_command;	/* seconds, waiting for a command */
	unsigned	 timeout_data;	/* seconds, waiting inside DATA/BDAT */
	unsigned	 timeout_session;	/* seconds for the whole session, 0 = none */
	SSL_CTX		*tls;		/* STARTTLS offered while set and not active */
	int		 smtputf8;	/* offer SMTPUTF8 */
	int		 chunking;	/* offer CHUNKING (BDAT) */
	int		 dsn;		/* offer DSN */
	/* ESMTP parameter keys the program handles itself (space separated,
	 * upper case, e.g. "RET ENVID AUTH"); others get 555 5.5.4. They
	 * reach the mail/rcpt hooks in the parsed path. */
	const char	*mail_params;
	const char	*rcpt_params;
};

struct smtpd;

/* Every hook may be NULL unless marked required. ctx is smtpd.ctx. */
struct smtpd_hooks {
	/* EHLO/HELO with a name that passed the engine's syntax check; the
	 * transaction (if any) is already reset and e->helo holds the name.
	 * ACCEPT: the engine answers 250 (EHLO: with the capabilities) and
	 * enters SMTPD_HELO. REFUSE: the hook replied, the previous name and
	 * state are restored. */
	enum smtpd_verdict (*helo)(void *ctx, const char *name, int esmtp);
	/* required: MAIL with a valid path and parameters. ACCEPT: the hook
	 * queued the 2xx and the engine records the sender (e->mail_from,
	 * e->mail) and enters SMTPD_MAIL. */
	enum smtpd_verdict (*mail)(void *ctx, const struct smtp_path *p,
	    const struct smtpd_mail *m);
	/* required: RCPT with a valid path. ACCEPT: the hook queued the 2xx,
	 * the engine counts it (e->nrcpt) and enters SMTPD_RCPT. */
	enum smtpd_verdict (*rcpt)(void *ctx, const struct smtp_path *p);
	/* required: open the message. DATA (bdat 0): on ACCEPT the hook has
	 * queued the 354 (SMTPD_354, or a backend's); on REFUSE its refusal,
	 * and the transaction ends (reset hook, SMTPD_RESET_DONE). First BDAT
	 * chunk (bdat 1): the hook queues nothing; on REFUSE the engine eats
	 * the chunks and answers each 452 4.3.1. */
	enum smtpd_verdict (*data_begin)(void *ctx, int bdat);
	/* required: message bytes, canonical, in order; bol: p starts a
	 * line. Not called once the message is known bad or too big. */
	void (*data)(void *ctx, const char *p, size_t n, int bol);
	/* required: the client ended a clean message; the hook queues the
	 * final reply (it may end the session with smtpd_enter(QUIT)). */
	void (*data_end)(void *ctx);
	/* the engine dropped the message (see enum smtpd_msg_fault). */
	void (*data_abort)(void *ctx, enum smtpd_msg_fault why);
	/* the transaction ended (RSET/EHLO inside one, or after the message
	 * or a refused DATA); the engine clears its own envelope facts after. */
	void (*reset)(void *ctx, enum smtpd_reset why);
	/* STARTTLS: before the handshake (tls_begin) and after it (tls_done,
	 * ok 0/1; the engine logs either way). */
	void (*tls_begin)(void *ctx);
	void (*tls_done)(void *ctx, int ok);
	/* AUTH in SMTPD_HELO; NULL: AUTH unknown (500). The hook runs the
	 * exchange on e->io and replies. auth_offer: the mechanisms to
	 * advertise now ("PLAIN LOGIN"), or NULL. */
	void (*auth)(void *ctx, const char *args);
	const char *(*auth_offer)(void *ctx);
	/* a client error was counted: return -1 to end the session (the hook
	 * queued the reply, e.g. a rate limit's 421). */
	int  (*error)(void *ctx);
	/* observers (metrics): every reply line the engine formats, every
	 * command line after it was handled (the verb is intact; the handler
	 * may have cut the arguments in place). */
	void (*replied)(void *ctx, const char *line, size_t n);
	void (*command)(void *ctx, const char *line);
};

#define SMTPD_354	"354 End data with <CR><LF>.<CR><LF>"

struct smtpd {
	/* set by smtpd_init, the program may adjust conf before smtpd_run */
	struct smtpd_conf	 conf;
	const struct smtpd_hooks *hooks;
	void			*ctx;
	char			 id[80];	/* log prefix: session id or "smtpd client=…" */
	struct io		 io;		/* the client connection */
	long long		 started_ms;	/* smtpd_now_ms() at init */

	/* the session, for the program to read */
	enum smtpd_state	 state;
	enum smtpd_end		 end;
	char			 helo[256];
	int			 esmtp;
	int			 tls;
	char			 tls_version[32], tls_cipher[64];
	unsigned		 errors, ncommands;
	/* set by the program: the session was refused (a milter at connect
	 * or HELO); every command but QUIT, NOOP and RSET gets this reply */
	char			 refusal[1024];

	/* the transaction (the program may rewrite mail_from and nrcpt when
	 * a filter changes the envelope) */
	char			 mail_from[SMTP_PATH_MAX + 1];
	struct smtpd_mail	 mail;
	unsigned		 nrcpt;		/* accepted recipients */
	size_t			 size;		/* message bytes so far (unstuffed) */

	/* message reader (private) */
	int			 bol, prev_cr, bad_lf, bad_cr, too_big, bdat_refused;
};

/* Monotonic milliseconds. */
long long smtpd_now_ms(void);

/* Set up a session on a connected socket (the fd stays the caller's).
 * conf and hooks are copied / referenced; id is the log prefix. 0 / -1. */
int  smtpd_init(struct smtpd *e, int fd, size_t rbuf, const struct smtpd_conf *conf,
	    const struct smtpd_hooks *hooks, void *ctx, const char *id);
void smtpd_free(struct smtpd *e);

/* Serve commands until QUIT, loss, timeout or the error limit; flushes.
 * The transaction is left as it was for the program to release. */
void smtpd_run(struct smtpd *e);

/* One reply line (CRLF added), buffered; 4xx/5xx are logged at debug.
 * A write error ends the session. 0 / -1. */
int  smtpd_reply(struct smtpd *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Count a client error (the error hook may end the session). */
void smtpd_error(struct smtpd *e);
/* A refusal that is the client's fault: the reply, then smtpd_error()
 * (so an error hook's own 421 comes after it and is the last word). */
void smtpd_fail(struct smtpd *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Change state (the only place it changes; logged at debug). */
void smtpd_enter(struct smtpd *e, enum smtpd_state st);
/* The wait for the client: base_s seconds, cut to what is left of the
 * session deadline (at least 1 ms). */
int  smtpd_timeout_ms(const struct smtpd *e, unsigned base_s);
/* After a client timeout: was it the session deadline? Logs it. */
int  smtpd_expired(const struct smtpd *e);
const char *smtpd_state_name(enum smtpd_state st);

#endif

/*
 * gate_milter — the gate's milter CLIENT: it calls external milters
 * (rspamd, opendkim, ...) over the Sendmail milter protocol version 6 and
 * turns their answers into verdicts and message modifications.
 * (libmilter implements only the filter side; this is the MTA side.)
 *
 * Configuration (gate.conf), parsed by gate_milter_config() with conf_take(),
 * so it plugs into the gate's loader before conf_check_unused():
 *
 *   milters                = inet:127.0.0.1:8891, unix:/run/rspamd/milter.sock
 *   milter_default_action  = tempfail          # tempfail | accept | reject
 *   milter_connect_timeout = 5s
 *   milter_command_timeout = 30s
 *   milter_eom_timeout     = 2m                # headers, body and end of message
 *   milter_default_action[inet:127.0.0.1:8891] = accept     # per milter
 *   milter_command_timeout[unix:/run/rspamd/milter.sock] = 10s
 *
 * Endpoints: inet:HOST:PORT, inet:[V6]:PORT, inet:PORT@HOST (libmilter's
 * form), unix:/path or local:/path. The index of an override must be
 * written exactly as in `milters`.
 *
 * Use, by one worker for one SMTP session (not thread-safe; one object per
 * session):
 *
 *   s = gate_milter_session_new(&set, sid, macro_cb, sess);   once
 *   v = gate_milter_connect(s, client_name, &peer, reply, sizeof reply);
 *   v = gate_milter_helo(s, helo, reply, ...);        each HELO/EHLO
 *   v = gate_milter_mail(s, "a@b", "SIZE=10 BODY=8BITMIME", reply, ...);
 *   v = gate_milter_rcpt(s, "c@d", "", reply, ...);   each RCPT
 *   v = gate_milter_data(s, reply, ...);              on DATA/BDAT, before 354
 *   ... the gate spools the message into a FILE * ...
 *   gate_milter_msg_read(&msg, spool, &why);
 *   v = gate_milter_message(s, &msg, reply, ...);     headers, EOH, body, EOM
 *   gate_milter_msg_write(&msg, out);                 the modified message
 *   gate_milter_abort(s);                             RSET, a transaction
 *                                                     that ends otherwise
 *   gate_milter_session_free(s);                      QUIT to every milter
 *
 * Verdicts (scope as Postfix's smtpd applies them):
 *   GMV_CONTINUE  go on. `reply` is "".
 *   GMV_REJECT    5xx in `reply` (a milter's own `y` line, validated, or
 *                 "550 5.7.1 Command rejected").
 *   GMV_TEMPFAIL  4xx in `reply` (own line or
 *                 "451 4.7.1 Service unavailable - try again later").
 *   GMV_DISCARD   only from gate_milter_message(): answer 250 to the client,
 *                 deliver nothing. A discard asked for at MAIL/RCPT/DATA is
 *                 remembered (gate_milter_discarding() says so), those calls
 *                 return CONTINUE, and gate_milter_message() then returns
 *                 DISCARD without sending the content.
 *   GMV_SHUTDOWN  "421 4.7.0 ..." in `reply`: say it and close the session.
 *   Scope: at connect (and HELO) a REJECT/TEMPFAIL refuses the session: the
 *   same verdict and reply are returned by every later call, so the gate may
 *   answer every command but QUIT with it (Postfix does) or close. At MAIL
 *   it refuses that transaction, at RCPT that recipient only, at DATA and
 *   at the message the whole message.
 *
 * A milter that cannot be reached, times out, closes, or sends anything
 * malformed (bad length, unknown or unexpected command, truncated packet,
 * a packet larger than the negotiated maximum, a `y` reply that is not
 * 4xx/5xx, has CR/LF or is too long, header names/values with bare CR or LF
 * or lines over 998 bytes, bad indexes) is closed, logged with the reason,
 * and from then on gives its default action for the rest of the session:
 * accept = it is skipped; tempfail/reject = that verdict at every stage.
 *
 * Macros: before each stage the milter's macro list for that stage (the
 * defaults below, or what the milter asked for with SMFIR_SETSYMLIST in
 * option negotiation) is resolved through macro(ctx, name) with the name as
 * written in the list, braces included ("j", "{client_addr}", "i"). NULL or
 * an unknown name means "not defined" and it is not sent. Defaults:
 *   connect: j {daemon_name} {daemon_addr} v _ {client_addr} {client_name}
 *            {client_port} {client_ptr}
 *   helo:    {tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}
 *   mail:    i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host}
 *            {mail_mailer}
 *   rcpt:    i {rcpt_addr} {rcpt_host} {rcpt_mailer}
 *   data, eoh, eom: i
 * The callback is called during the stage call only; the returned string is
 * copied at once.
 *
 * The message (struct gate_milter_msg): gate_milter_msg_read() parses the
 * header section of a CRLF message from `in` into name/value pairs and
 * leaves the body in `in` from the current offset (in is not owned and
 * must stay open until gate_milter_msg_free()). gate_milter_message()
 * sends the headers and the body (chunks of at most 65535 bytes, body
 * only) to each milter in turn, and applies each milter's end-of-message
 * modifications before the next milter sees the message (add, insert,
 * change, delete header; replace body into a temp file owned by msg;
 * quarantine adds an "X-Quarantine: reason" header). Envelope changes are
 * recorded in msg for the gate: add_rcpt[] (with add_rcpt_args[], NULL when
 * none), del_rcpt[], new_from/new_from_args (SMFIR_CHGFROM), quarantine.
 * The gate resets and replays the backend transaction when they are set.
 * gate_milter_msg_write() then writes header section, empty line, body
 * with CRLF line ends (no dot-stuffing).
 *
 * Timeouts: connect_timeout for the TCP connect; command_timeout for the
 * negotiation and each envelope stage; eom_timeout for the whole content
 * phase of one milter (headers, body chunks, end of message and its
 * modifications). SMFIR_PROGRESS is accepted but does not extend it.
 * gate_milter_connect() must come first: it opens the connections; stage
 * calls before it skip the milters.
 *
 * Wiring in the gate's DATA path (with milters configured): answer 354
 * yourself, write the client's unstuffed CRLF lines into a
 * gate_milter_spool (memory, then a temp file past the bound), then
 * gate_milter_spool_done() -> gate_milter_msg_read() ->
 * gate_milter_message(); on CONTINUE open the backend's DATA/BDAT and feed
 * gate_milter_msg_lines() into the same forward() that streams today,
 * after replaying the transaction when add_rcpt/del_rcpt/new_from are set.
 *
 * Connection reuse: a set made by gate_milter_config() has a pool of idle
 * milter connections (at most GM_POOL_MAX per milter, in each process: a
 * worker fills its own after fork; the master, which runs no session,
 * keeps it empty). gate_milter_session_free() parks a milter's connection
 * there with SMFIC_QUIT_NC ('K', protocol 6) instead of QUIT when it can be
 * reused: protocol version 6, and the last exchange was an end of message
 * answered `continue` (libmilter accepts 'K' only in that state).
 * gate_milter_connect() takes a parked connection before opening a new one
 * (no connect, no option negotiation: the values negotiated then hold) and
 * drops, never reuses, one that is readable or closed, idle longer than
 * GM_POOL_IDLE_MS, or that fails at its first CONNECT exchange (then a new
 * connection is opened for the session at once). gate_milter_set_free()
 * closes what is parked (closing is how a parked connection ends: after
 * QUIT_NC a milter waits for CONNECT only; a worker's exit does the same).
 *
 * Ownership: the session owns its sockets and buffers; strings in msg are
 * owned by msg and freed by gate_milter_msg_free(). `reply` buffers are the
 * caller's (GATE_MILTER_REPLY_MAX is enough). No function exits or aborts
 * on anything a milter sends; errors are logged with the session id.
 */
#ifndef GATE_MILTER_H
#define GATE_MILTER_H

#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "config.h"
#include "net.h"

#define GATE_MILTER_REPLY_MAX	520	/* longest `y` line accepted + NUL */

enum gate_milter_verdict {
	GMV_CONTINUE = 0,
	GMV_REJECT,
	GMV_TEMPFAIL,
	GMV_DISCARD,
	GMV_SHUTDOWN,
};

enum gate_milter_default { GMD_TEMPFAIL, GMD_ACCEPT, GMD_REJECT };

struct gate_milter_conf {
	char			*spec;		/* as written in `milters` */
	int			 family;	/* AF_INET (inet:, any IP) or AF_UNIX */
	struct net_endpoint	 ep;		/* inet */
	char			 path[108];	/* unix */
	int			 default_action;	/* enum gate_milter_default */
	unsigned		 connect_timeout, command_timeout, eom_timeout; /* s */
	void			(*observe)(size_t idx, int verdict, long long ms);	/* metrics, or NULL */
};

struct gate_milter_pool;

struct gate_milter_set {
	struct gate_milter_conf	*v;
	size_t			 n;
	size_t			 body_limit;	/* largest replaced body, and most bytes of
						   added/changed headers of one milter
						   (default 64M; the gate sets its
						   message_size_limit) */
	struct gate_milter_pool	*pool;		/* idle connections kept between
						   sessions (gate_milter_config
						   makes it; NULL: none kept) */
};

/* Take the milter keys out of `c` (conf_take) and fill `out`; an empty or
 * absent `milters` gives n == 0. 0, or -1 with "file:line: message". */
int  gate_milter_config(struct conf *c, struct gate_milter_set *out,
	    char *err, size_t errlen);
void gate_milter_set_free(struct gate_milter_set *set);
/* Parse one endpoint ("inet:127.0.0.1:8891"); fills family/ep/path only.
 * 0, or -1 with *why. */
int  gate_milter_parse_spec(const char *spec, struct gate_milter_conf *m,
	    const char **why);

typedef const char *(*gate_milter_macro_fn)(void *ctx, const char *name);

struct gate_milter_session;

/* The set must outlive the session. log_id is copied (session id for logs).
 * NULL only when out of memory. Nothing is connected yet. */
struct gate_milter_session *gate_milter_session_new(
	    const struct gate_milter_set *set, const char *log_id,
	    gate_milter_macro_fn macro, void *ctx);
/* QUIT to every connected milter, close, free. NULL is fine. */
void gate_milter_session_free(struct gate_milter_session *s);

/* Connect to every milter (connect timeout), negotiate, send CONNECT.
 * client_name: the verified PTR name or NULL ("[addr]" is sent);
 * peer: the real client address (after an inbound PROXY header). */
enum gate_milter_verdict gate_milter_connect(struct gate_milter_session *s,
	    const char *client_name, const struct sockaddr_storage *peer,
	    char *reply, size_t replylen);
enum gate_milter_verdict gate_milter_helo(struct gate_milter_session *s,
	    const char *helo, char *reply, size_t replylen);
/* addr without <> ("" for the null sender); params: the ESMTP parameters as
 * one blank-separated string, "" or NULL for none. */
enum gate_milter_verdict gate_milter_mail(struct gate_milter_session *s,
	    const char *addr, const char *params, char *reply, size_t replylen);
enum gate_milter_verdict gate_milter_rcpt(struct gate_milter_session *s,
	    const char *addr, const char *params, char *reply, size_t replylen);
enum gate_milter_verdict gate_milter_data(struct gate_milter_session *s,
	    char *reply, size_t replylen);

struct gate_milter_hdr {
	char	*name;		/* without the colon */
	char	*value;		/* after the colon, leading blank kept, folded
				   lines joined by "\n" (no CR), no final EOL */
};

struct gate_milter_msg {
	struct gate_milter_hdr	*hdr;
	size_t			 nhdr, hcap;
	FILE			*in;		/* original body from in_off (not owned) */
	off_t			 in_off;
	FILE			*body;		/* replaced body (owned) or NULL */
	int			 had_blank;	/* the header section ended with an empty line */
	/* envelope changes for the gate (owned) */
	char			**add_rcpt, **add_rcpt_args;
	size_t			 nadd_rcpt;
	char			**del_rcpt;
	size_t			 ndel_rcpt;
	char			*new_from, *new_from_args;
	char			*quarantine;
};

/* Parse the header section from the current position of `in`; 0 / -1. */
int  gate_milter_msg_read(struct gate_milter_msg *m, FILE *in, const char **why);
/* Header section, empty line, body; 0 / -1 (write error). */
int  gate_milter_msg_write(const struct gate_milter_msg *m, FILE *out);
void gate_milter_msg_free(struct gate_milter_msg *m);

/* Stream the message as CRLF lines to fn (for the backend: dot-stuffing or
 * BDAT framing is the caller's): each call gets one complete line with its
 * CRLF, or a piece of a line longer than 64 KiB (bol = 1 only for the
 * first piece of a line) — the shape of gate_data.c's forward(). fn
 * returns 0 to go on, anything else stops the walk and is returned;
 * -1 on a read error of the body. */
typedef int (*gate_milter_line_fn)(void *arg, const char *p, size_t n, int bol);
int  gate_milter_msg_lines(const struct gate_milter_msg *m, gate_milter_line_fn fn,
	    void *arg);

/*
 * A spool for the message while milters look at it: memory (memfd) up to
 * mem_limit bytes, then a temp file (the content is moved over once).
 * init, write the client's bytes (CRLF, unstuffed), then done() flushes,
 * rewinds and hands out the FILE for gate_milter_msg_read(); the spool
 * keeps owning it until gate_milter_spool_free(). 0 / -1 (errno set).
 */
struct gate_milter_spool {
	FILE	*f;
	size_t	 len, mem_limit;
	int	 on_disk;
};
int   gate_milter_spool_init(struct gate_milter_spool *sp, size_t mem_limit);
int   gate_milter_spool_write(struct gate_milter_spool *sp, const void *p, size_t n);
FILE *gate_milter_spool_done(struct gate_milter_spool *sp);
void  gate_milter_spool_free(struct gate_milter_spool *sp);

/* Headers, EOH, body, EOM to each milter; modifications applied to m. */
enum gate_milter_verdict gate_milter_message(struct gate_milter_session *s,
	    struct gate_milter_msg *m, char *reply, size_t replylen);
/* End the current transaction (ABORT to milters inside one). */
void gate_milter_abort(struct gate_milter_session *s);
/* A milter asked to discard the current message at MAIL/RCPT/DATA. */
int  gate_milter_discarding(const struct gate_milter_session *s);
/* Number of milters configured (0: the gate need not spool). */
size_t gate_milter_count(const struct gate_milter_session *s);

const char *gate_milter_verdict_name(enum gate_milter_verdict v);

#endif

/*
 * gate_milter_int.h — internals shared by the files of the gate's milter
 * client (one module split along the protocol; not for use outside them):
 *
 *   gate_milter.c        the session object: create, free, failure and the
 *                        per-milter states that skip events
 *   gate_milter_wire.c   packet framing, socket I/O with deadlines, connect
 *                        and option negotiation (OPTNEG)
 *   gate_milter_stage.c  macros, the SMTP-stage events (connect ... data),
 *                        the per-stage verdicts, the message's headers/body
 *   gate_milter_mods.c   validation of what a milter sends, end of message:
 *                        modification requests parsed and applied
 *   gate_milter_msg.c    the message object and the spool
 *   gate_milter_conf.c   the gate.conf keys
 */
#ifndef GATE_MILTER_INT_H
#define GATE_MILTER_INT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gate_milter.h"

#define GM_LINE_MAX	998	/* header line, RFC 5322 2.1.1 */
#define GM_MAX_HDRS	10000
#define GM_MAX_MODS	1000	/* modification requests of one milter per message */

/* protocol constants (mfdef.h / mfapi.h values; we do not include libmilter
 * headers: this is the other side of the protocol) */
#define GM_VERSION	6
#define GM_DATA_MAX	65535		/* MILTER_MAX_DATA_SIZE: no MDS bits offered */
#define GM_CHUNK	65535		/* body chunk */

#define F_ADDHDRS	0x001u
#define F_CHGBODY	0x002u
#define F_ADDRCPT	0x004u
#define F_DELRCPT	0x008u
#define F_CHGHDRS	0x010u
#define F_QUARANTINE	0x020u
#define F_CHGFROM	0x040u
#define F_ADDRCPT_PAR	0x080u
#define F_SETSYMLIST	0x100u
#define GM_ACTIONS	0x1ffu

#define P_NOCONNECT	0x00000001u
#define P_NOHELO	0x00000002u
#define P_NOMAIL	0x00000004u
#define P_NORCPT	0x00000008u
#define P_NOBODY	0x00000010u
#define P_NOHDRS	0x00000020u
#define P_NOEOH		0x00000040u
#define P_NR_HDR	0x00000080u
#define P_NOUNKNOWN	0x00000100u
#define P_NODATA	0x00000200u
#define P_SKIP		0x00000400u
#define P_RCPT_REJ	0x00000800u
#define P_NR_CONN	0x00001000u
#define P_NR_HELO	0x00002000u
#define P_NR_MAIL	0x00004000u
#define P_NR_RCPT	0x00008000u
#define P_NR_DATA	0x00010000u
#define P_NR_UNKN	0x00020000u
#define P_NR_EOH	0x00040000u
#define P_NR_BODY	0x00080000u
#define P_HDR_LEADSPC	0x00100000u
/* everything but RCPT_REJ (we never send rejected recipients) */
#define GM_PROTO	(0x001fffffu & ~P_RCPT_REJ)

enum { M_CONNECT, M_HELO, M_MAIL, M_RCPT, M_DATA, M_EOM, M_EOH, M_NSTAGES };

#define GM_REPLY_REJECT		"550 5.7.1 Command rejected"
#define GM_REPLY_TEMPFAIL	"451 4.7.1 Service unavailable - try again later"
#define GM_REPLY_SHUTDOWN	"421 4.7.0 Server closing connection"
#define GM_Y_MAX		512	/* longest `y` reply line */
#define GM_MAX_REPLIES		100000	/* packets per event, bounded */
#define GM_MACRO_LIST_MAX	1024	/* bytes of one SETSYMLIST list */
#define GM_POOL_MAX		2	/* idle connections kept per milter per process */
#define GM_POOL_IDLE_MS		60000	/* an older idle connection is closed, not reused */

enum gm_state {
	GS_CLOSED,	/* not connected yet */
	GS_ERROR,	/* failed: default action from now on */
	GS_READY,	/* negotiated, CONNECT not sent */
	GS_ENVELOPE,	/* in the session */
	GS_ACCEPT_CON,	/* accepted the connection: skipped */
	GS_REJECT_CON,	/* refused the connection: sticky verdict */
	GS_ACCEPT_MSG,	/* accepted (or discarded) this message: skipped until the next */
};

struct gm_buf {
	unsigned char	*p;
	size_t		 len, cap;
	int		 oom;
};

/* Bytes read from a milter ahead of the packet being parsed. */
struct gm_in {
	unsigned char	 b[1024];
	size_t		 off, len;
};

/* An open, negotiated connection to one milter (what the pool keeps). */
struct gm_conn {
	struct gm_in	 in;
	int		 fd;
	int		 tcp;			/* inet: (TCP options apply) */
	uint32_t	 version, actions, proto;
	char		*macros[M_NSTAGES];	/* from SETSYMLIST, or NULL: default */
	unsigned char	*rbuf;			/* GM_DATA_MAX + 1 */
	long long	 since;			/* parked at (ms, monotonic) */
};

struct gm_milter {
	const struct gate_milter_conf *conf;
	struct gm_conn	 c;
	enum gm_state	 state;
	int		 reusable;	/* last exchange: EOM answered `continue` */
	int		 reused;	/* from the pool, no reply read on it yet */
	enum gate_milter_verdict sticky;
	char		 sticky_reply[GATE_MILTER_REPLY_MAX];
};

/* Idle connections of one set, per milter (the set's index). */
struct gate_milter_pool {
	size_t		 n;
	size_t		*nidle;			/* n */
	struct gm_conn	*idle;			/* n x GM_POOL_MAX */
};

struct gate_milter_session {
	const struct gate_milter_set *set;
	char		 id[64];
	gate_milter_macro_fn macro;
	void		*ctx;
	struct gm_milter *m;
	size_t		 n;
	struct gm_buf	 out, pay;
	int		 in_txn, discard;
	size_t		 hdr_bytes;	/* header bytes all milters added to this message */
};

/* ---- gate_milter_msg.c ------------------------------------------------ */

/* Length of a header name without blanks before the colon. */
size_t gm_name_len(const char *name);
/* Insert a header at pos, taking ownership of name and value. 0 / -1. */
int    gm_hdr_insert(struct gate_milter_msg *m, size_t pos, char *name, char *value);
/* The body stream positioned at its start, or NULL. */
FILE  *gm_body_rewind(const struct gate_milter_msg *m);

/* ---- gate_milter.c ---------------------------------------------------- */

/* A pool for n milters, or NULL (out of memory). */
struct gate_milter_pool *gm_pool_new(size_t n);
void        gm_pool_free(struct gate_milter_pool *p);
/* Take a parked connection for milter i into m. 0, or -1: none usable. */
int         gm_pool_take(struct gate_milter_session *s, size_t i, struct gm_milter *m);

void        gm_set_reply(char *reply, size_t replylen, const char *s);
const char *gm_default_name(int d);
/* Close the socket, free the read buffer and macro lists. */
void        gm_close(struct gm_milter *m);
/* Send one packet without waiting for a reply (ABORT, QUIT). 0 / -1. */
int         gm_send_simple(struct gate_milter_session *s, struct gm_milter *m,
		char cmd, unsigned timeout_s);
/* The milter failed: log, close, its default action from now on. */
enum gate_milter_verdict gm_fail(struct gate_milter_session *s, struct gm_milter *m,
		const char *stage, const char *why, char *reply, size_t replylen);
/* What a milter in a state that skips events answers. -1: not skipped. */
int         gm_skipped(struct gm_milter *m, int msg_scope,
		enum gate_milter_verdict *v, char *reply, size_t replylen);

/* ---- gate_milter_wire.c ----------------------------------------------- */

enum gm_io { GM_IO_OK, GM_IO_EOF, GM_IO_TIMEOUT, GM_IO_ERR };

long long   gm_now_ms(void);
int         gm_buf_add(struct gm_buf *b, const void *p, size_t n);
int         gm_buf_str(struct gm_buf *b, const char *s);
int         gm_buf_u32(struct gm_buf *b, uint32_t v);
void        gm_buf_reset(struct gm_buf *b);
/* Append one packet (cmd + data) to b. */
int         gm_buf_packet(struct gm_buf *b, char cmd, const void *data, size_t len);
enum gm_io  gm_write_all(int fd, const unsigned char *p, size_t n, long long deadline);
/* One packet into buf (room for max + NUL), through in (or NULL: no
 * read-ahead); tcp: quick ACKs. NULL, or why it failed. */
const char *gm_read_packet(int fd, struct gm_in *in, int tcp, long long deadline,
		unsigned char *buf, size_t max, unsigned char *cmd, size_t *len);
/* One packet of c into c->rbuf; more: not the first packet of a reply. */
const char *gm_conn_read(struct gm_conn *c, int more, long long deadline,
		unsigned char *cmd, size_t *len);
const char *gm_take_str(const unsigned char *data, size_t len, size_t *off);
int         gm_take_u32(const unsigned char *data, size_t len, size_t *off, uint32_t *v);
/* Connect and negotiate. 0, or -1 with *why. */
int         gm_open(struct gate_milter_session *s, struct gm_milter *m, const char **why);

/* ---- gate_milter_stage.c ---------------------------------------------- */

/* Append the macro packet for a stage to s->out (nothing if none defined). */
int         gm_add_macros(struct gate_milter_session *s, struct gm_milter *m, int stage);
const char *gm_stage_name(char cmd);
/* One final reply to an event: 1 over (*v), 0 progress, -1 error (*why). */
int         gm_final_reply(struct gate_milter_session *s, struct gm_milter *m,
		char event, unsigned char cmd, const unsigned char *data, size_t len,
		enum gate_milter_verdict *v, int *skip, char *reply, size_t replylen,
		const char **why);
/* One event (cmd + s->pay) with the macros of `stage` to one milter. */
enum gate_milter_verdict gm_event(struct gate_milter_session *s, struct gm_milter *m,
		int stage, char cmd, uint32_t no_bit, uint32_t nr_bit,
		unsigned timeout_s, int *skip, char *reply, size_t replylen);

/* ---- gate_milter_mods.c ----------------------------------------------- */

/* A `y` reply checked and copied to out (%% unescaped); NULL or why not. */
const char *gm_check_yreply(const char *s, size_t len, enum gate_milter_verdict *v,
		char *out, size_t outlen);
/* End of message to one milter: EOM, its modifications, its final reply. */
enum gate_milter_verdict gm_eom(struct gate_milter_session *s, struct gm_milter *m,
		struct gate_milter_msg *msg, long long deadline, char *reply,
		size_t replylen);

#endif

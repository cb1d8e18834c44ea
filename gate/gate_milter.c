/*
 * gate_milter.c — MTA side of the milter protocol (version 6) for the gate:
 * configuration, connection and option negotiation, the SMTP-stage events,
 * the message (headers, body chunks, end of message) and the end-of-message
 * modifications. The API and its rules are in gate_milter.h.
 *
 * Wire format: every packet is a 4-byte big-endian length (command byte
 * plus data), the command byte, the data. Strings are NUL-terminated.
 * Behaviour follows Postfix's milter8.c (the reference MTA side): macros
 * are sent before an event even when the milter asked not to see the event,
 * `accept` at CONNECT/HELO ends the milter's part in the session and later
 * `accept` ends it for the message, DISCARD is refused at CONNECT/HELO,
 * chgheader index 0 means 1, insheader index 0 means the top.
 *
 * Ownership: struct gate_milter_session owns one struct gm_milter per
 * configured milter (socket, macro lists, read buffer) and two packet
 * buffers; struct gate_milter_msg owns its headers and envelope changes.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "gate_milter.h"
#include "log.h"
#include "smtp.h"
#include "gate_milter_int.h"

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
static const char gm_stage_cmd[M_NSTAGES] = { 'C', 'H', 'M', 'R', 'T', 'E', 'N' };
static const char *const gm_default_macros[M_NSTAGES] = {
	"j {daemon_name} {daemon_addr} v _ {client_addr} {client_name} {client_port} {client_ptr}",
	"{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
	"i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}",
	"i {rcpt_addr} {rcpt_host} {rcpt_mailer}",
	"i",
	"i",
	"i",
};

#define GM_REPLY_REJECT		"550 5.7.1 Command rejected"
#define GM_REPLY_TEMPFAIL	"451 4.7.1 Service unavailable - try again later"
#define GM_REPLY_SHUTDOWN	"421 4.7.0 Server closing connection"
#define GM_Y_MAX		512	/* longest `y` reply line */
#define GM_MAX_REPLIES		100000	/* packets per event, bounded */
#define GM_MACRO_LIST_MAX	1024	/* bytes of one SETSYMLIST list */

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

struct gm_milter {
	const struct gate_milter_conf *conf;
	int		 fd;
	enum gm_state	 state;
	uint32_t	 version, actions, proto;
	char		*macros[M_NSTAGES];	/* from SETSYMLIST, or NULL: default */
	unsigned char	*rbuf;			/* GM_DATA_MAX + 1 */
	enum gate_milter_verdict sticky;
	char		 sticky_reply[GATE_MILTER_REPLY_MAX];
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

/* ---- small helpers ---------------------------------------------------- */

static long long
gm_now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
gm_set_reply(char *reply, size_t replylen, const char *s)
{
	if (reply == NULL || replylen == 0)
		return;
	snprintf(reply, replylen, "%s", s);
}

const char *
gate_milter_verdict_name(enum gate_milter_verdict v)
{
	switch (v) {
	case GMV_CONTINUE:	return "continue";
	case GMV_REJECT:	return "reject";
	case GMV_TEMPFAIL:	return "tempfail";
	case GMV_DISCARD:	return "discard";
	case GMV_SHUTDOWN:	return "shutdown";
	}
	return "?";
}

static const char *
gm_default_name(int d)
{
	return d == GMD_ACCEPT ? "accept" : d == GMD_REJECT ? "reject" : "tempfail";
}

static int
gm_buf_add(struct gm_buf *b, const void *p, size_t n)
{
	if (b->oom)
		return -1;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		unsigned char *np;

		while (cap < b->len + n)
			cap *= 2;
		if ((np = realloc(b->p, cap)) == NULL) {
			b->oom = 1;
			return -1;
		}
		b->p = np;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

static int
gm_buf_str(struct gm_buf *b, const char *s)
{
	return gm_buf_add(b, s, strlen(s) + 1);
}

static int
gm_buf_u32(struct gm_buf *b, uint32_t v)
{
	uint32_t n = htonl(v);

	return gm_buf_add(b, &n, 4);
}

static void
gm_buf_reset(struct gm_buf *b)
{
	b->len = 0;
	b->oom = 0;
}

/* Append one packet (cmd + data) to b. */
static int
gm_buf_packet(struct gm_buf *b, char cmd, const void *data, size_t len)
{
	unsigned char c = (unsigned char)cmd;

	if (len + 1 > UINT32_MAX)
		return -1;
	if (gm_buf_u32(b, (uint32_t)(len + 1)) != 0 || gm_buf_add(b, &c, 1) != 0 ||
	    gm_buf_add(b, data, len) != 0)
		return -1;
	return 0;
}

/* ---- socket I/O with deadlines -------------------------------------- */

enum gm_io { GM_IO_OK, GM_IO_EOF, GM_IO_TIMEOUT, GM_IO_ERR };

static enum gm_io
gm_wait(int fd, short events, long long deadline)
{
	for (;;) {
		long long left = deadline - gm_now_ms();
		struct pollfd pfd = { .fd = fd, .events = events };
		int r;

		if (left <= 0)
			return GM_IO_TIMEOUT;
		r = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (r > 0)
			return GM_IO_OK;
		if (r < 0 && errno != EINTR)
			return GM_IO_ERR;
	}
}

static enum gm_io
gm_write_all(int fd, const unsigned char *p, size_t n, long long deadline)
{
	while (n > 0) {
		enum gm_io w = gm_wait(fd, POLLOUT, deadline);
		ssize_t r;

		if (w != GM_IO_OK)
			return w;
		r = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
				continue;
			return GM_IO_ERR;
		}
		p += r;
		n -= (size_t)r;
	}
	return GM_IO_OK;
}

static enum gm_io
gm_read_all(int fd, unsigned char *p, size_t n, long long deadline)
{
	while (n > 0) {
		enum gm_io w = gm_wait(fd, POLLIN, deadline);
		ssize_t r;

		if (w != GM_IO_OK)
			return w;
		r = recv(fd, p, n, MSG_DONTWAIT);
		if (r == 0)
			return GM_IO_EOF;
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
				continue;
			return GM_IO_ERR;
		}
		p += r;
		n -= (size_t)r;
	}
	return GM_IO_OK;
}

/*
 * Read one packet: *cmd, data into buf (room for max bytes plus a NUL),
 * *len. Returns NULL, or why it failed.
 */
static const char *
gm_read_packet(int fd, long long deadline, unsigned char *buf, size_t max,
    unsigned char *cmd, size_t *len)
{
	unsigned char hdr[4];
	uint32_t n;
	enum gm_io r;
	int one = 1;

	/*
	 * libmilter writes each reply packet on its own; with Nagle on its side
	 * and delayed ACKs on ours, a second packet (e.g. "continue" after an
	 * "insert header") waits 40 ms for our ACK. Ask for quick ACKs before
	 * every read (Linux resets the mode by itself). Not a TCP socket
	 * (unix:) or an old kernel: ENOPROTOOPT/EOPNOTSUPP, nothing to do.
	 */
	if (setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one) != 0 &&
	    errno != ENOPROTOOPT && errno != EOPNOTSUPP && errno != EINVAL)
		log_debug("milter TCP_QUICKACK: %s", strerror(errno));

	r = gm_read_all(fd, hdr, 4, deadline);
	if (r == GM_IO_EOF)
		return "connection closed";
	if (r == GM_IO_TIMEOUT)
		return "timeout";
	if (r != GM_IO_OK)
		return "read error";
	n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
	if (n == 0)
		return "bad packet length 0";
	if (n - 1 > max)
		return "packet larger than the negotiated maximum";
	r = gm_read_all(fd, cmd, 1, deadline);
	if (r == GM_IO_OK && n > 1)
		r = gm_read_all(fd, buf, n - 1, deadline);
	if (r == GM_IO_EOF)
		return "truncated packet";
	if (r == GM_IO_TIMEOUT)
		return "timeout";
	if (r != GM_IO_OK)
		return "read error";
	*len = n - 1;
	buf[*len] = 0;
	return NULL;
}

/* Take a NUL-terminated string at *off from data; NULL when there is none. */
static const char *
gm_take_str(const unsigned char *data, size_t len, size_t *off)
{
	const unsigned char *p = data + *off, *z;

	if (*off >= len)
		return NULL;
	if ((z = memchr(p, 0, len - *off)) == NULL)
		return NULL;
	*off += (size_t)(z - p) + 1;
	return (const char *)p;
}

static int
gm_take_u32(const unsigned char *data, size_t len, size_t *off, uint32_t *v)
{
	if (*off > len || len - *off < 4)
		return -1;
	*v = (uint32_t)data[*off] << 24 | (uint32_t)data[*off + 1] << 16 |
	    (uint32_t)data[*off + 2] << 8 | data[*off + 3];
	*off += 4;
	return 0;
}

/* ---- validation of what a milter sends ------------------------------- */

/* A header name: printable ASCII but ':' and blanks, 1..GM_LINE_MAX-2. */
static const char *
gm_check_hname(const char *name)
{
	size_t n = strlen(name);

	if (n == 0)
		return "empty header name";
	if (n > GM_LINE_MAX - 2)
		return "overlong header name";
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p <= 32 || *p >= 127 || *p == ':')
			return "bad character in header name";
	return NULL;
}

/*
 * Normalise a header value in place: CR LF becomes LF; every LF must be
 * followed by a blank (a folded line) and may not end the value; no bare
 * CR, no other control characters; no line (the first counted with the
 * name and ": ") longer than GM_LINE_MAX. NULL, or why it is refused.
 */
static const char *
gm_check_hvalue(const char *name, char *value)
{
	char *r = value, *w = value;
	size_t line = strlen(name) + 2;

	while (*r) {
		unsigned char c = (unsigned char)*r;

		if (c == '\r') {
			if (r[1] != '\n')
				return "bare CR in header value";
			r++;
			continue;
		}
		if (c == '\n') {
			if (r[1] != ' ' && r[1] != '\t')
				return "bare LF in header value";
			*w++ = *r++;
			line = 0;
			continue;
		}
		if ((c < 32 && c != '\t') || c == 127)
			return "control character in header value";
		if (++line > GM_LINE_MAX)
			return "overlong header line";
		*w++ = *r++;
	}
	*w = 0;
	return NULL;
}

/*
 * A `y` reply: one line "4xx text" or "5xx text", printable, bounded, an
 * enhanced code (when present) of the same class. Sendmail treats the text
 * as a format string, so "%%" becomes "%". Writes the line to out.
 */
static const char *
gm_check_yreply(const char *s, size_t len, enum gate_milter_verdict *v,
    char *out, size_t outlen)
{
	size_t i, o = 0;

	if (len == 0 || memchr(s, 0, len) == NULL)
		return "reply code not a string";
	len = strlen(s);
	if (len < 3 || len > GM_Y_MAX)
		return "reply code of bad length";
	if ((s[0] != '4' && s[0] != '5') || s[1] < '0' || s[1] > '9' ||
	    s[2] < '0' || s[2] > '9')
		return "reply code not 4xx or 5xx";
	if (s[3] != 0 && s[3] != ' ')
		return "reply code not followed by a blank (multi-line replies are refused)";
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\r' || c == '\n')
			return "CR or LF in reply";
		if (c < 32 || c > 126)
			return "control or non-ASCII character in reply";
	}
	/* an enhanced status code must agree with the class */
	if (s[3] == ' ' && s[4] >= '2' && s[4] <= '5' && s[5] == '.' && s[4] != s[0])
		return "enhanced status code of another class";
	if (outlen == 0)
		return "no room";
	for (i = 0; i < len && o + 1 < outlen; i++) {
		if (s[i] == '%') {
			if (s[i + 1] == '%')
				i++;
			else
				continue;
		}
		out[o++] = s[i];
	}
	out[o] = 0;
	if (s[0] == '5')
		*v = GMV_REJECT;
	else if (s[1] == '2' && s[2] == '1')
		*v = GMV_SHUTDOWN;
	else
		*v = GMV_TEMPFAIL;
	return NULL;
}

/* An envelope address from a milter: "<a@b>" or "a@b"; copied without <>. */
static char *
gm_check_addr(const char *s, const char **why)
{
	size_t n = strlen(s);
	char *a;

	if (n >= 2 && s[0] == '<' && s[n - 1] == '>') {
		s++;
		n -= 2;
	}
	if (n == 0 || n > SMTP_PATH_MAX) {
		*why = "bad address length";
		return NULL;
	}
	if ((a = strndup(s, n)) == NULL) {
		*why = "out of memory";
		return NULL;
	}
	if (!smtp_valid_mailbox(a, 1)) {
		free(a);
		*why = "invalid address";
		return NULL;
	}
	return a;
}

/* ESMTP arguments from a milter: one printable line, bounded. */
static const char *
gm_check_args(const char *s)
{
	if (strlen(s) > 512)
		return "overlong ESMTP arguments";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 32 || *p > 126)
			return "bad character in ESMTP arguments";
	return NULL;
}

/* ---- session --------------------------------------------------------- */

struct gate_milter_session *
gate_milter_session_new(const struct gate_milter_set *set, const char *log_id,
    gate_milter_macro_fn macro, void *ctx)
{
	struct gate_milter_session *s;

	if ((s = calloc(1, sizeof *s)) == NULL)
		return NULL;
	s->set = set;
	snprintf(s->id, sizeof s->id, "%s", log_id ? log_id : "-");
	s->macro = macro;
	s->ctx = ctx;
	s->n = set ? set->n : 0;
	if (s->n && (s->m = calloc(s->n, sizeof *s->m)) == NULL) {
		free(s);
		return NULL;
	}
	for (size_t i = 0; i < s->n; i++) {
		s->m[i].conf = &set->v[i];
		s->m[i].fd = -1;
		s->m[i].state = GS_CLOSED;
	}
	return s;
}

size_t
gate_milter_count(const struct gate_milter_session *s)
{
	return s ? s->n : 0;
}

int
gate_milter_discarding(const struct gate_milter_session *s)
{
	return s && s->discard;
}

static void
gm_close(struct gm_milter *m)
{
	if (m->fd >= 0) {
		if (close(m->fd) != 0)
			log_debug("milter=%s close: %s", m->conf->spec, strerror(errno));
		m->fd = -1;
	}
	free(m->rbuf);
	m->rbuf = NULL;
	for (int i = 0; i < M_NSTAGES; i++) {
		free(m->macros[i]);
		m->macros[i] = NULL;
	}
}

/* Send one packet without waiting for a reply (ABORT, QUIT). */
static int
gm_send_simple(struct gate_milter_session *s, struct gm_milter *m, char cmd,
    unsigned timeout_s)
{
	gm_buf_reset(&s->out);
	if (gm_buf_packet(&s->out, cmd, NULL, 0) != 0)
		return -1;
	if (gm_write_all(m->fd, s->out.p, s->out.len,
	    gm_now_ms() + (long long)timeout_s * 1000) != GM_IO_OK)
		return -1;
	return 0;
}

void
gate_milter_session_free(struct gate_milter_session *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++) {
		struct gm_milter *m = &s->m[i];

		if (m->fd >= 0 && m->state != GS_ERROR)
			(void)gm_send_simple(s, m, 'Q', 1);
		gm_close(m);
	}
	free(s->m);
	free(s->out.p);
	free(s->pay.p);
	free(s);
}

/* The milter failed: log, close, default action from now on. */
static enum gate_milter_verdict
gm_fail(struct gate_milter_session *s, struct gm_milter *m, const char *stage,
    const char *why, char *reply, size_t replylen)
{
	log_warn("%s milter=%s stage=%s error=\"%s\" default_action=%s", s->id,
	    m->conf->spec, stage, why, gm_default_name(m->conf->default_action));
	gm_close(m);
	m->state = GS_ERROR;
	switch (m->conf->default_action) {
	case GMD_ACCEPT:
		gm_set_reply(reply, replylen, "");
		return GMV_CONTINUE;
	case GMD_REJECT:
		gm_set_reply(reply, replylen, GM_REPLY_REJECT);
		return GMV_REJECT;
	default:
		gm_set_reply(reply, replylen, GM_REPLY_TEMPFAIL);
		return GMV_TEMPFAIL;
	}
}

/* What a milter in a state that skips events answers. -1: not skipped. */
static int
gm_skipped(struct gm_milter *m, int msg_scope, enum gate_milter_verdict *v,
    char *reply, size_t replylen)
{
	switch (m->state) {
	case GS_ERROR:
		switch (m->conf->default_action) {
		case GMD_ACCEPT:
			*v = GMV_CONTINUE;
			gm_set_reply(reply, replylen, "");
			break;
		case GMD_REJECT:
			*v = GMV_REJECT;
			gm_set_reply(reply, replylen, GM_REPLY_REJECT);
			break;
		default:
			*v = GMV_TEMPFAIL;
			gm_set_reply(reply, replylen, GM_REPLY_TEMPFAIL);
			break;
		}
		return 0;
	case GS_REJECT_CON:
		*v = m->sticky;
		gm_set_reply(reply, replylen, m->sticky_reply);
		return 0;
	case GS_ACCEPT_CON:
		*v = GMV_CONTINUE;
		return 0;
	case GS_ACCEPT_MSG:
		if (msg_scope) {
			*v = GMV_CONTINUE;
			return 0;
		}
		return -1;
	default:
		return -1;
	}
}

/* Append the macro packet for a stage to s->out (nothing if none defined). */
static int
gm_add_macros(struct gate_milter_session *s, struct gm_milter *m, int stage)
{
	const char *list = m->macros[stage] ? m->macros[stage] : gm_default_macros[stage];
	struct gm_buf mb = { NULL, 0, 0, 0 };
	unsigned char c = (unsigned char)gm_stage_cmd[stage];
	int any = 0, rc = 0;
	char name[128];

	if (s->macro == NULL)
		return 0;
	if (gm_buf_add(&mb, &c, 1) != 0)
		return -1;
	for (const char *p = list; *p;) {
		size_t n;
		const char *val;

		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		n = strcspn(p, " ,\t");
		if (n == 0)
			break;
		if (n < sizeof name) {
			memcpy(name, p, n);
			name[n] = 0;
			val = s->macro(s->ctx, name);
			if (val && strlen(val) < 4096) {
				gm_buf_str(&mb, name);
				gm_buf_str(&mb, val);
				any = 1;
			}
		}
		p += n;
	}
	if (mb.oom)
		rc = -1;
	else if (any)
		rc = gm_buf_packet(&s->out, 'D', mb.p, mb.len);
	free(mb.p);
	return rc;
}

static const char *
gm_stage_name(char cmd)
{
	switch (cmd) {
	case 'C': return "connect";
	case 'H': return "helo";
	case 'M': return "mail";
	case 'R': return "rcpt";
	case 'T': return "data";
	case 'L': return "header";
	case 'N': return "eoh";
	case 'B': return "body";
	case 'E': return "eom";
	case 'O': return "optneg";
	}
	return "?";
}

/*
 * Interpret one final reply to an event (not the EOM modifications).
 * Returns 1 when the exchange is over (verdict in *v), 0 for progress,
 * -1 with *why for a protocol error. *skip is set for SMFIR_SKIP.
 */
static int
gm_final_reply(struct gate_milter_session *s, struct gm_milter *m, char event,
    unsigned char cmd, const unsigned char *data, size_t len,
    enum gate_milter_verdict *v, int *skip, char *reply, size_t replylen,
    const char **why)
{
	int conn_event = (event == 'C' || event == 'H');
	char line[GATE_MILTER_REPLY_MAX];

	(void)s;
	if (cmd != 'y' && len != 0) {
		*why = "reply followed by unexpected data";
		return -1;
	}
	switch (cmd) {
	case 'p':
		return 0;
	case 'c':
		*v = GMV_CONTINUE;
		return 1;
	case 'a':
		m->state = conn_event ? GS_ACCEPT_CON : GS_ACCEPT_MSG;
		*v = GMV_CONTINUE;
		return 1;
	case 's':
		if (event != 'B') {
			*why = "skip reply outside the body";
			return -1;
		}
		*skip = 1;
		*v = GMV_CONTINUE;
		return 1;
	case 'd':
		if (conn_event) {
			*why = "discard at connect or helo";
			return -1;
		}
		m->state = GS_ACCEPT_MSG;
		*v = GMV_DISCARD;
		return 1;
	case 'r':
		*v = GMV_REJECT;
		gm_set_reply(reply, replylen, GM_REPLY_REJECT);
		break;
	case 't':
		*v = GMV_TEMPFAIL;
		gm_set_reply(reply, replylen, GM_REPLY_TEMPFAIL);
		break;
	case '4':
		*v = GMV_SHUTDOWN;
		gm_set_reply(reply, replylen, GM_REPLY_SHUTDOWN);
		m->state = GS_REJECT_CON;
		m->sticky = *v;
		snprintf(m->sticky_reply, sizeof m->sticky_reply, "%s", GM_REPLY_SHUTDOWN);
		return 1;
	case 'y':
		if ((*why = gm_check_yreply((const char *)data, len, v, line,
		    sizeof line)) != NULL)
			return -1;
		gm_set_reply(reply, replylen, line);
		break;
	default:
		*why = "unexpected reply command";
		return -1;
	}
	if (conn_event || *v == GMV_SHUTDOWN) {
		m->state = GS_REJECT_CON;
		m->sticky = *v;
		snprintf(m->sticky_reply, sizeof m->sticky_reply, "%s",
		    reply ? reply : "");
	}
	return 1;
}

/*
 * One event to one milter: macros for `stage` (or -1), then the event
 * (cmd + s->pay) unless the milter negotiated no_bit, then its reply unless
 * it negotiated nr_bit. *skip: the milter answered SMFIR_SKIP.
 */
static enum gate_milter_verdict
gm_event(struct gate_milter_session *s, struct gm_milter *m, int stage,
    char cmd, uint32_t no_bit, uint32_t nr_bit, unsigned timeout_s,
    int *skip, char *reply, size_t replylen)
{
	long long deadline = gm_now_ms() + (long long)timeout_s * 1000;
	int send_event = (m->proto & no_bit) == 0;
	char ebuf[96];

	gm_set_reply(reply, replylen, "");
	/* DATA exists from protocol version 4 on: an older milter gets
	 * neither the event nor its macros (as Postfix does) */
	if (cmd == 'T' && m->version < 4)
		return GMV_CONTINUE;
	gm_buf_reset(&s->out);
	if (stage >= 0 && gm_add_macros(s, m, stage) != 0)
		return gm_fail(s, m, gm_stage_name(cmd), "out of memory", reply, replylen);
	if (send_event && gm_buf_packet(&s->out, cmd, s->pay.p, s->pay.len) != 0)
		return gm_fail(s, m, gm_stage_name(cmd), "out of memory", reply, replylen);
	if (s->out.len) {
		enum gm_io w = gm_write_all(m->fd, s->out.p, s->out.len, deadline);

		if (w != GM_IO_OK)
			return gm_fail(s, m, gm_stage_name(cmd),
			    w == GM_IO_TIMEOUT ? "write timeout" : "write error",
			    reply, replylen);
	}
	if (!send_event || (m->proto & nr_bit))
		return GMV_CONTINUE;
	for (int i = 0; i < GM_MAX_REPLIES; i++) {
		unsigned char rc = 0;
		size_t len = 0;
		const char *why;
		enum gate_milter_verdict v = GMV_CONTINUE;
		int r;

		why = gm_read_packet(m->fd, deadline, m->rbuf, GM_DATA_MAX, &rc, &len);
		if (why)
			return gm_fail(s, m, gm_stage_name(cmd), why, reply, replylen);
		r = gm_final_reply(s, m, cmd, rc, m->rbuf, len, &v, skip, reply,
		    replylen, &why);
		if (r < 0) {
			snprintf(ebuf, sizeof ebuf, "%s (0x%02x)", why, rc);
			return gm_fail(s, m, gm_stage_name(cmd), ebuf, reply, replylen);
		}
		if (r > 0) {
			if (v != GMV_CONTINUE)
				log_info("%s milter=%s stage=%s verdict=%s reply=\"%s\"",
				    s->id, m->conf->spec, gm_stage_name(cmd),
				    gate_milter_verdict_name(v), reply ? reply : "");
			return v;
		}
	}
	return gm_fail(s, m, gm_stage_name(cmd), "too many progress replies",
	    reply, replylen);
}

/* Connect and negotiate. 0, or -1 with *why. */
static int
gm_open(struct gate_milter_session *s, struct gm_milter *m, const char **why)
{
	const struct gate_milter_conf *c = m->conf;
	long long deadline;
	unsigned char rc;
	size_t len, off = 0;
	uint32_t ver, act, proto;

	if ((m->rbuf = malloc(GM_DATA_MAX + 1)) == NULL) {
		*why = "out of memory";
		return -1;
	}
	if (c->family == AF_UNIX) {
		struct sockaddr_un sun;

		memset(&sun, 0, sizeof sun);
		sun.sun_family = AF_UNIX;
		snprintf(sun.sun_path, sizeof sun.sun_path, "%s", c->path);
		/* non-blocking: a full backlog must not block the session */
		m->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (m->fd < 0 || connect(m->fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
			*why = errno == ENOENT ? "no such socket" :
			    errno == ECONNREFUSED ? "connection refused" :
			    errno == EAGAIN ? "milter busy (backlog full)" : "connect failed";
			return -1;
		}
	} else {
		m->fd = net_connect(&c->ep, (int)c->connect_timeout * 1000);
		if (m->fd < 0) {
			*why = errno == ETIMEDOUT ? "connect timeout" :
			    errno == ECONNREFUSED ? "connection refused" : "connect failed";
			return -1;
		}
		if (fcntl(m->fd, F_SETFD, FD_CLOEXEC) != 0)
			log_debug("%s milter=%s FD_CLOEXEC: %s", s->id, c->spec,
			    strerror(errno));
		{
			int one = 1;

			/* every command goes out in one write: no need to wait */
			if (setsockopt(m->fd, IPPROTO_TCP, TCP_NODELAY, &one,
			    sizeof one) != 0)
				log_debug("%s milter=%s TCP_NODELAY: %s", s->id,
				    c->spec, strerror(errno));
		}
	}
	deadline = gm_now_ms() + (long long)c->command_timeout * 1000;
	gm_buf_reset(&s->out);
	gm_buf_reset(&s->pay);
	gm_buf_u32(&s->pay, GM_VERSION);
	gm_buf_u32(&s->pay, GM_ACTIONS);
	gm_buf_u32(&s->pay, GM_PROTO);
	if (s->pay.oom || gm_buf_packet(&s->out, 'O', s->pay.p, s->pay.len) != 0) {
		*why = "out of memory";
		return -1;
	}
	if (gm_write_all(m->fd, s->out.p, s->out.len, deadline) != GM_IO_OK) {
		*why = "write error in negotiation";
		return -1;
	}
	if ((*why = gm_read_packet(m->fd, deadline, m->rbuf, GM_DATA_MAX, &rc, &len)) != NULL)
		return -1;
	if (rc != 'O') {
		*why = "unexpected reply to option negotiation";
		return -1;
	}
	if (gm_take_u32(m->rbuf, len, &off, &ver) != 0 ||
	    gm_take_u32(m->rbuf, len, &off, &act) != 0 ||
	    gm_take_u32(m->rbuf, len, &off, &proto) != 0) {
		*why = "short option negotiation";
		return -1;
	}
	if (ver < 2 || ver > GM_VERSION) {
		*why = "unsupported protocol version";
		return -1;
	}
	if ((act & GM_ACTIONS) != act) {
		*why = "milter asks for actions we do not offer";
		return -1;
	}
	if ((proto & GM_PROTO) != proto)
		log_debug("%s milter=%s protocol bits 0x%x beyond offer 0x%x ignored",
		    s->id, c->spec, proto, GM_PROTO);
	m->version = ver;
	m->actions = act;
	m->proto = proto & GM_PROTO;
	/* SETSYMLIST: (stage u32, list string)* */
	while (off < len) {
		uint32_t st;
		const char *list;

		if (gm_take_u32(m->rbuf, len, &off, &st) != 0 ||
		    (list = gm_take_str(m->rbuf, len, &off)) == NULL) {
			*why = "malformed macro list";
			return -1;
		}
		if (!(act & F_SETSYMLIST)) {
			*why = "macro list without SETSYMLIST";
			return -1;
		}
		if (st >= M_NSTAGES || strlen(list) > GM_MACRO_LIST_MAX) {
			log_warn("%s milter=%s ignoring macro list for stage %u",
			    s->id, c->spec, st);
			continue;
		}
		free(m->macros[st]);
		if ((m->macros[st] = strdup(list)) == NULL) {
			*why = "out of memory";
			return -1;
		}
	}
	log_debug("%s milter=%s version=%u actions=0x%x protocol=0x%x", s->id,
	    c->spec, ver, act, m->proto);
	m->state = GS_READY;
	return 0;
}

/*
 * Send the event in s->pay to every milter in turn; the first refusal ends
 * the chain. msg_scope: a message-level event (milters that accepted the
 * message are skipped).
 */
static enum gate_milter_verdict
gm_chain(struct gate_milter_session *s, int stage, char cmd, uint32_t no_bit,
    uint32_t nr_bit, int msg_scope, char *reply, size_t replylen)
{
	gm_set_reply(reply, replylen, "");
	for (size_t i = 0; i < s->n; i++) {
		struct gm_milter *m = &s->m[i];
		enum gate_milter_verdict v;
		int skip = 0;

		if (gm_skipped(m, msg_scope, &v, reply, replylen) == 0) {
			if (v != GMV_CONTINUE)
				return v;
			continue;
		}
		if (m->state != GS_ENVELOPE && m->state != GS_ACCEPT_MSG)
			continue;
		long long t0 = gm_now_ms();
		if (s->pay.oom)
			v = gm_fail(s, m, gm_stage_name(cmd), "out of memory", reply, replylen);
		else
			v = gm_event(s, m, stage, cmd, no_bit, nr_bit,
			    m->conf->command_timeout, &skip, reply, replylen);
		if (m->conf->observe != NULL)
			m->conf->observe(i, (int)v, gm_now_ms() - t0);
		if (v == GMV_DISCARD) {
			s->discard = 1;
			gm_set_reply(reply, replylen, "");
			return GMV_CONTINUE;
		}
		if (v != GMV_CONTINUE)
			return v;
	}
	return GMV_CONTINUE;
}

enum gate_milter_verdict
gate_milter_connect(struct gate_milter_session *s, const char *client_name,
    const struct sockaddr_storage *peer, char *reply, size_t replylen)
{
	char addr[INET6_ADDRSTRLEN + 8], name[300];
	unsigned port = 0;
	char fam = 'U';
	uint16_t nport;

	gm_set_reply(reply, replylen, "");
	if (s == NULL || s->n == 0)
		return GMV_CONTINUE;
	addr[0] = 0;
	if (peer && (peer->ss_family == AF_INET || peer->ss_family == AF_INET6)) {
		struct sockaddr_storage ss = *peer;

		net_unmap(&ss);
		if (net_addr_str(&ss, addr, sizeof addr, &port) == 0)
			fam = ss.ss_family == AF_INET ? '4' : '6';
	}
	if (client_name && client_name[0] && strcmp(client_name, "unknown") != 0)
		snprintf(name, sizeof name, "%s", client_name);
	else if (fam != 'U')
		snprintf(name, sizeof name, "[%s]", addr);
	else
		snprintf(name, sizeof name, "localhost");
	for (size_t i = 0; i < s->n; i++) {
		struct gm_milter *m = &s->m[i];
		const char *why = NULL;

		if (m->state != GS_CLOSED)
			continue;
		if (gm_open(s, m, &why) != 0)
			(void)gm_fail(s, m, "connect", why, NULL, 0);
		else
			m->state = GS_ENVELOPE;
	}
	/* after gm_open(), which used the payload buffer */
	gm_buf_reset(&s->pay);
	gm_buf_str(&s->pay, name);
	gm_buf_add(&s->pay, &fam, 1);
	if (fam != 'U') {
		nport = htons((uint16_t)port);
		gm_buf_add(&s->pay, &nport, 2);
		gm_buf_str(&s->pay, addr);
	}
	return gm_chain(s, M_CONNECT, 'C', P_NOCONNECT, P_NR_CONN, 0, reply, replylen);
}

enum gate_milter_verdict
gate_milter_helo(struct gate_milter_session *s, const char *helo, char *reply,
    size_t replylen)
{
	gm_set_reply(reply, replylen, "");
	if (s == NULL || s->n == 0)
		return GMV_CONTINUE;
	if (s->in_txn)
		gate_milter_abort(s);
	gm_buf_reset(&s->pay);
	gm_buf_str(&s->pay, helo ? helo : "");
	return gm_chain(s, M_HELO, 'H', P_NOHELO, P_NR_HELO, 0, reply, replylen);
}

/* "<addr>\0param\0param\0..." into s->pay */
static void
gm_envelope_args(struct gate_milter_session *s, const char *addr, const char *params)
{
	gm_buf_reset(&s->pay);
	gm_buf_add(&s->pay, "<", 1);
	gm_buf_add(&s->pay, addr ? addr : "", addr ? strlen(addr) : 0);
	gm_buf_str(&s->pay, ">");
	for (const char *p = params ? params : ""; *p;) {
		size_t n;

		while (*p == ' ' || *p == '\t')
			p++;
		n = strcspn(p, " \t");
		if (n == 0)
			break;
		gm_buf_add(&s->pay, p, n);
		gm_buf_add(&s->pay, "", 1);
		p += n;
	}
}

enum gate_milter_verdict
gate_milter_mail(struct gate_milter_session *s, const char *addr,
    const char *params, char *reply, size_t replylen)
{
	gm_set_reply(reply, replylen, "");
	if (s == NULL || s->n == 0)
		return GMV_CONTINUE;
	if (s->in_txn)
		gate_milter_abort(s);
	s->in_txn = 1;
	s->discard = 0;
	gm_envelope_args(s, addr, params);
	return gm_chain(s, M_MAIL, 'M', P_NOMAIL, P_NR_MAIL, 1, reply, replylen);
}

enum gate_milter_verdict
gate_milter_rcpt(struct gate_milter_session *s, const char *addr,
    const char *params, char *reply, size_t replylen)
{
	gm_set_reply(reply, replylen, "");
	if (s == NULL || s->n == 0)
		return GMV_CONTINUE;
	gm_envelope_args(s, addr, params);
	return gm_chain(s, M_RCPT, 'R', P_NORCPT, P_NR_RCPT, 1, reply, replylen);
}

enum gate_milter_verdict
gate_milter_data(struct gate_milter_session *s, char *reply, size_t replylen)
{
	gm_set_reply(reply, replylen, "");
	if (s == NULL || s->n == 0)
		return GMV_CONTINUE;
	gm_buf_reset(&s->pay);
	return gm_chain(s, M_DATA, 'T', P_NODATA, P_NR_DATA, 1, reply, replylen);
}

void
gate_milter_abort(struct gate_milter_session *s)
{
	if (s == NULL)
		return;
	if (s->in_txn)
		for (size_t i = 0; i < s->n; i++) {
			struct gm_milter *m = &s->m[i];

			if (m->state != GS_ENVELOPE && m->state != GS_ACCEPT_MSG)
				continue;
			if (gm_send_simple(s, m, 'A', m->conf->command_timeout) != 0)
				(void)gm_fail(s, m, "abort", "write error", NULL, 0);
			else
				m->state = GS_ENVELOPE;
		}
	s->in_txn = 0;
	s->discard = 0;
}

/* Modifications of one milter, collected until its final reply. */
struct gm_mod {
	char		 type;		/* h i m + 2 - e q */
	uint32_t	 index;
	char		*a, *b;
};

struct gm_mods {
	struct gm_mod	*v;
	size_t		 n, cap;
	FILE		*body;		/* replacement body, CRLF normalised */
	int		 body_cr;	/* a CR ended the previous chunk */
	size_t		 body_len;
	int		 body_done;	/* another request came after REPLBODY */
	size_t		 hdr_bytes;	/* header names and values added or changed */
};

static void
gm_mods_free(struct gm_mods *x)
{
	for (size_t i = 0; i < x->n; i++) {
		free(x->v[i].a);
		free(x->v[i].b);
	}
	free(x->v);
	if (x->body && fclose(x->body) != 0)
		log_debug("milter body tmpfile close: %s", strerror(errno));
	memset(x, 0, sizeof *x);
}

static int
gm_mods_add(struct gm_mods *x, char type, uint32_t index, char *a, char *b)
{
	if (x->n >= GM_MAX_MODS)
		return -1;
	if (x->n == x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 16;
		struct gm_mod *nv = realloc(x->v, cap * sizeof *nv);

		if (nv == NULL)
			return -1;
		x->v = nv;
		x->cap = cap;
	}
	x->v[x->n].type = type;
	x->v[x->n].index = index;
	x->v[x->n].a = a;
	x->v[x->n].b = b;
	x->n++;
	return 0;
}

/* A body replacement chunk: LF alone becomes CR LF, a bare CR is refused. */
static const char *
gm_body_chunk(struct gm_mods *x, const unsigned char *p, size_t len, size_t limit)
{
	if (x->body_done)
		return "body replacement mixed with other requests";
	if (x->body == NULL && (x->body = tmpfile()) == NULL)
		return "cannot create a temp file";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];

		if (x->body_cr) {
			x->body_cr = 0;
			if (c != '\n')
				return "bare CR in replaced body";
			if (fputs("\r\n", x->body) == EOF)
				return "write error";
			x->body_len += 2;
			continue;
		}
		if (c == '\r') {
			x->body_cr = 1;
			continue;
		}
		if (c == '\n') {
			if (fputs("\r\n", x->body) == EOF)
				return "write error";
			x->body_len += 2;
			continue;
		}
		if (fputc(c, x->body) == EOF)
			return "write error";
		x->body_len++;
	}
	if (x->body_len > limit)
		return "replaced body larger than the limit";
	return NULL;
}

static const char *
gm_body_finish(struct gm_mods *x)
{
	long end;
	int last = -1;

	if (x->body == NULL)
		return NULL;
	if (x->body_cr)
		return "bare CR at the end of the replaced body";
	if (fflush(x->body) != 0)
		return "write error";
	end = ftell(x->body);
	if (end > 0) {
		if (fseek(x->body, -1, SEEK_END) != 0)
			return "seek error";
		last = fgetc(x->body);
		if (fseek(x->body, 0, SEEK_END) != 0)
			return "seek error";
		if (last != '\n' && fputs("\r\n", x->body) == EOF)
			return "write error";
	}
	if (fflush(x->body) != 0)
		return "write error";
	return NULL;
}

/* Parse one modification packet into x. NULL, or why it is refused. */
static const char *
gm_parse_mod(struct gate_milter_session *s, struct gm_milter *m, struct gm_mods *x,
    unsigned char cmd, const unsigned char *data, size_t len)
{
	size_t off = 0;
	uint32_t index = 0;
	const char *a = NULL, *b = NULL, *why;
	char *ca = NULL, *cb = NULL;
	uint32_t need;

	switch (cmd) {
	case 'h': need = F_ADDHDRS; break;
	case 'i': need = F_ADDHDRS; break;
	case 'm': need = F_CHGHDRS; break;
	case 'b': need = F_CHGBODY; break;
	case '+': need = F_ADDRCPT; break;
	case '2': need = F_ADDRCPT_PAR; break;
	case '-': need = F_DELRCPT; break;
	case 'e': need = F_CHGFROM; break;
	case 'q': need = F_QUARANTINE; break;
	default:
		return "unexpected reply command";
	}
	if (!(m->actions & need))
		return "modification not negotiated";
	if (cmd == 'b')
		return gm_body_chunk(x, data, len, s->set->body_limit);
	if (x->body)
		x->body_done = 1;
	if ((cmd == 'i' || cmd == 'm') && gm_take_u32(data, len, &off, &index) != 0)
		return "truncated header index";
	if ((a = gm_take_str(data, len, &off)) == NULL)
		return "truncated modification";
	if (cmd == 'h' || cmd == 'i' || cmd == 'm' ||
	    ((cmd == '2' || cmd == 'e') && off < len)) {
		if ((b = gm_take_str(data, len, &off)) == NULL)
			return "truncated modification";
	}
	if (off != len)
		return "trailing data after modification";
	switch (cmd) {
	case 'h':
	case 'i':
	case 'm':
		if ((why = gm_check_hname(a)) != NULL)
			return why;
		if ((ca = strdup(a)) == NULL || (cb = strdup(b)) == NULL)
			goto oom;
		if ((why = gm_check_hvalue(a, cb)) != NULL) {
			free(ca);
			free(cb);
			return why;
		}
		if (cmd == 'm' && index == 0)
			index = 1;
		if (cmd == 'm' && index > GM_MAX_HDRS) {
			free(ca);
			free(cb);
			return "bad header index";
		}
		/* what a milter may make us hold is bounded like a message */
		x->hdr_bytes += strlen(ca) + strlen(cb) + 4;
		if (x->hdr_bytes > s->set->body_limit) {
			free(ca);
			free(cb);
			return "header changes larger than the message size limit";
		}
		break;
	case 'q':
		if ((ca = strdup(a)) == NULL)
			goto oom;
		if ((why = gm_check_hvalue("X-Quarantine", ca)) != NULL ||
		    strchr(ca, '\n') != NULL) {
			free(ca);
			return why ? why : "bad quarantine reason";
		}
		break;
	default: /* + 2 - e */
		if (cmd == 'e' && strcmp(a, "<>") == 0) {
			if ((ca = strdup("")) == NULL)
				goto oom;
		} else if ((ca = gm_check_addr(a, &why)) == NULL)
			return why;
		if (b && b[0]) {
			if ((why = gm_check_args(b)) != NULL) {
				free(ca);
				return why;
			}
			if ((cb = strdup(b)) == NULL)
				goto oom;
		}
		break;
	}
	if (gm_mods_add(x, (char)cmd, index, ca, cb) != 0) {
		free(ca);
		free(cb);
		return "too many modifications";
	}
	return NULL;
oom:
	free(ca);
	free(cb);
	return "out of memory";
}

static int
gm_push(char ***v, size_t *n, char *s)
{
	char **nv = realloc(*v, (*n + 1) * sizeof *nv);

	if (nv == NULL)
		return -1;
	*v = nv;
	nv[(*n)++] = s;
	return 0;
}

/* Apply x to msg (header edits in order; envelope changes recorded). */
static int
gm_apply(struct gate_milter_session *s, struct gm_milter *m,
    struct gate_milter_msg *msg, struct gm_mods *x)
{
	int lead = (m->proto & P_HDR_LEADSPC) != 0;

	for (size_t i = 0; i < x->n; i++) {
		struct gm_mod *d = &x->v[i];
		char *v = NULL;

		if ((d->type == 'h' || d->type == 'i' || d->type == 'm') && !lead &&
		    d->b[0]) {
			/* the milter gave the value without the blank after ':' */
			if (asprintf(&v, " %s", d->b) < 0)
				return -1;
			free(d->b);
			d->b = v;
		}
		switch (d->type) {
		case 'h':
		case 'i':
			if (gm_hdr_insert(msg, d->type == 'h' ? msg->nhdr : d->index,
			    d->a, d->b) != 0)
				return -1;
			log_info("%s milter=%s %s header=%s", s->id, m->conf->spec,
			    d->type == 'h' ? "add" : "insert", d->a);
			d->a = d->b = NULL;
			break;
		case 'm': {
			size_t k, seen = 0;

			for (k = 0; k < msg->nhdr; k++)
				if (gm_name_len(msg->hdr[k].name) == strlen(d->a) &&
				    strncasecmp(msg->hdr[k].name, d->a, strlen(d->a)) == 0 &&
				    ++seen == d->index)
					break;
			if (k == msg->nhdr) {
				/* not there: a change adds it, a delete is a no-op */
				if (d->b[0] == 0)
					break;
				if (gm_hdr_insert(msg, msg->nhdr, d->a, d->b) != 0)
					return -1;
				d->a = d->b = NULL;
			} else if (d->b[0] == 0) {
				free(msg->hdr[k].name);
				free(msg->hdr[k].value);
				memmove(&msg->hdr[k], &msg->hdr[k + 1],
				    (msg->nhdr - k - 1) * sizeof *msg->hdr);
				msg->nhdr--;
				log_info("%s milter=%s delete header=%s", s->id,
				    m->conf->spec, d->a);
			} else {
				free(msg->hdr[k].value);
				msg->hdr[k].value = d->b;
				d->b = NULL;
				log_info("%s milter=%s change header=%s", s->id,
				    m->conf->spec, d->a);
			}
			break;
		}
		case '+':
		case '2':
			{
				size_t na = msg->nadd_rcpt, nb = msg->nadd_rcpt;

				/* grow both arrays before either holds the new entry */
				if (gm_push(&msg->add_rcpt_args, &nb, NULL) != 0 ||
				    gm_push(&msg->add_rcpt, &na, d->a) != 0)
					return -1;
				msg->add_rcpt_args[msg->nadd_rcpt] = d->b;
				msg->nadd_rcpt++;
			}
			log_info("%s milter=%s add rcpt=\"<%s>\"", s->id, m->conf->spec, log_q(d->a));
			d->a = d->b = NULL;
			break;
		case '-':
			if (gm_push(&msg->del_rcpt, &msg->ndel_rcpt, d->a) != 0)
				return -1;
			log_info("%s milter=%s delete rcpt=\"<%s>\"", s->id, m->conf->spec, log_q(d->a));
			d->a = NULL;
			break;
		case 'e':
			free(msg->new_from);
			free(msg->new_from_args);
			msg->new_from = d->a;
			msg->new_from_args = d->b;
			log_info("%s milter=%s change from=\"<%s>\"", s->id, m->conf->spec, log_q(d->a));
			d->a = d->b = NULL;
			break;
		case 'q': {
			char *name = strdup("X-Quarantine"), *val = NULL;

			if (name == NULL || asprintf(&val, " %s", d->a) < 0) {
				free(name);
				return -1;
			}
			if (gm_hdr_insert(msg, msg->nhdr, name, val) != 0) {
				free(name);
				free(val);
				return -1;
			}
			log_info("%s milter=%s quarantine reason=\"%s\"", s->id,
			    m->conf->spec, log_q(d->a));
			free(msg->quarantine);
			msg->quarantine = d->a;
			d->a = NULL;
			break;
		}
		}
	}
	if (x->body) {
		if (msg->body && fclose(msg->body) != 0)
			log_debug("milter body tmpfile close: %s", strerror(errno));
		msg->body = x->body;
		x->body = NULL;
		log_info("%s milter=%s replace body size=%zu", s->id, m->conf->spec,
		    x->body_len);
	}
	return 0;
}

/* End of message: read modifications and the final reply. */
static enum gate_milter_verdict
gm_eom(struct gate_milter_session *s, struct gm_milter *m,
    struct gate_milter_msg *msg, long long deadline, char *reply, size_t replylen)
{
	struct gm_mods x;
	enum gate_milter_verdict v = GMV_CONTINUE;
	char ebuf[96];

	memset(&x, 0, sizeof x);
	x.hdr_bytes = s->hdr_bytes;	/* the limit holds for all milters together */
	gm_buf_reset(&s->out);
	if (gm_add_macros(s, m, M_EOM) != 0 || gm_buf_packet(&s->out, 'E', NULL, 0) != 0)
		return gm_fail(s, m, "eom", "out of memory", reply, replylen);
	if (gm_write_all(m->fd, s->out.p, s->out.len, deadline) != GM_IO_OK)
		return gm_fail(s, m, "eom", "write error", reply, replylen);
	for (int i = 0; i < GM_MAX_REPLIES; i++) {
		unsigned char rc = 0;
		size_t len = 0;
		const char *why;
		int skip = 0, r, have;

		why = gm_read_packet(m->fd, deadline, m->rbuf, GM_DATA_MAX, &rc, &len);
		have = why == NULL || strcmp(why, "truncated packet") == 0;
		if (why == NULL && strchr("hibm+2-eq", rc) != NULL && rc != 0) {
			if ((why = gm_parse_mod(s, m, &x, rc, m->rbuf, len)) == NULL)
				continue;
		} else if (why == NULL) {
			if (rc == 's') {
				why = "skip reply at end of message";
			} else if ((r = gm_final_reply(s, m, 'E', rc, m->rbuf, len, &v,
			    &skip, reply, replylen, &why)) == 0)
				continue;
			else if (r > 0) {
				if (v == GMV_CONTINUE || v == GMV_DISCARD) {
					if ((why = gm_body_finish(&x)) == NULL &&
					    v == GMV_CONTINUE &&
					    gm_apply(s, m, msg, &x) != 0)
						why = "cannot apply modifications";
					else if (why == NULL && v == GMV_CONTINUE)
						s->hdr_bytes = x.hdr_bytes;
				}
				gm_mods_free(&x);
				if (why)
					return gm_fail(s, m, "eom", why, reply, replylen);
				if (m->state == GS_ACCEPT_MSG)
					m->state = GS_ENVELOPE;
				if (v != GMV_CONTINUE)
					log_info("%s milter=%s stage=eom verdict=%s reply=\"%s\"",
					    s->id, m->conf->spec, gate_milter_verdict_name(v),
					    reply ? reply : "");
				return v;
			}
		}
		gm_mods_free(&x);
		if (!have)
			snprintf(ebuf, sizeof ebuf, "%s", why);
		else if (rc >= 32 && rc < 127)
			snprintf(ebuf, sizeof ebuf, "%s ('%c')", why, rc);
		else
			snprintf(ebuf, sizeof ebuf, "%s (0x%02x)", why, rc);
		return gm_fail(s, m, "eom", ebuf, reply, replylen);
	}
	gm_mods_free(&x);
	return gm_fail(s, m, "eom", "too many replies", reply, replylen);
}

/* Headers, EOH, body and EOM to one milter. */
static enum gate_milter_verdict
gm_message_one(struct gate_milter_session *s, struct gm_milter *m,
    struct gate_milter_msg *msg, char *reply, size_t replylen)
{
	unsigned to = m->conf->eom_timeout;
	long long deadline = gm_now_ms() + (long long)to * 1000;
	int lead = (m->proto & P_HDR_LEADSPC) != 0, skip = 0;
	enum gate_milter_verdict v;
	unsigned char *chunk = NULL;
	FILE *f;
	size_t n;

	for (size_t i = 0; i < msg->nhdr; i++) {
		const char *val = msg->hdr[i].value;
		size_t nl = gm_name_len(msg->hdr[i].name), vl;

		if (!lead && *val == ' ')
			val++;
		vl = strlen(val);
		if (nl + 2 > GM_DATA_MAX)
			continue;
		if (nl + vl + 2 > GM_DATA_MAX)
			vl = GM_DATA_MAX - nl - 2;	/* libmilter's limit */
		gm_buf_reset(&s->pay);
		gm_buf_add(&s->pay, msg->hdr[i].name, nl);	/* blanks before ':' go */
		gm_buf_add(&s->pay, "", 1);
		gm_buf_add(&s->pay, val, vl);
		gm_buf_add(&s->pay, "", 1);
		if (s->pay.oom)
			return gm_fail(s, m, "header", "out of memory", reply, replylen);
		v = gm_event(s, m, -1, 'L', P_NOHDRS, P_NR_HDR, to, &skip, reply, replylen);
		if (v != GMV_CONTINUE || m->state != GS_ENVELOPE)
			return v;
		if (gm_now_ms() > deadline)
			return gm_fail(s, m, "header", "timeout", reply, replylen);
	}
	gm_buf_reset(&s->pay);
	v = gm_event(s, m, M_EOH, 'N', P_NOEOH, P_NR_EOH, to, &skip, reply, replylen);
	if (v != GMV_CONTINUE || m->state != GS_ENVELOPE)
		return v;
	if (!(m->proto & P_NOBODY)) {
		if ((f = gm_body_rewind(msg)) == NULL && (msg->in || msg->body))
			return gm_fail(s, m, "body", "cannot read the spooled body",
			    reply, replylen);
		if (f && (chunk = malloc(GM_CHUNK)) == NULL)
			return gm_fail(s, m, "body", "out of memory", reply, replylen);
		while (f && !skip && (n = fread(chunk, 1, GM_CHUNK, f)) > 0) {
			gm_buf_reset(&s->pay);
			gm_buf_add(&s->pay, chunk, n);
			v = gm_event(s, m, -1, 'B', P_NOBODY, P_NR_BODY, to, &skip,
			    reply, replylen);
			if (v != GMV_CONTINUE || m->state != GS_ENVELOPE) {
				free(chunk);
				return v;
			}
			if (gm_now_ms() > deadline) {
				free(chunk);
				return gm_fail(s, m, "body", "timeout", reply, replylen);
			}
		}
		if (f && ferror(f)) {
			free(chunk);
			return gm_fail(s, m, "body", "spool read error", reply, replylen);
		}
		free(chunk);
	}
	return gm_eom(s, m, msg, deadline, reply, replylen);
}

enum gate_milter_verdict
gate_milter_message(struct gate_milter_session *s, struct gate_milter_msg *msg,
    char *reply, size_t replylen)
{
	enum gate_milter_verdict v = GMV_CONTINUE;

	gm_set_reply(reply, replylen, "");
	if (s == NULL || s->n == 0)
		return GMV_CONTINUE;
	s->hdr_bytes = 0;
	if (s->discard) {
		log_info("%s milter stage=eom verdict=discard (asked for earlier)", s->id);
		gate_milter_abort(s);
		return GMV_DISCARD;
	}
	for (size_t i = 0; i < s->n; i++) {
		struct gm_milter *m = &s->m[i];

		if (gm_skipped(m, 1, &v, reply, replylen) == 0) {
			if (m->state == GS_ACCEPT_MSG)
				m->state = GS_ENVELOPE;
			if (v != GMV_CONTINUE)
				break;
			continue;
		}
		if (m->state != GS_ENVELOPE)
			continue;
		long long t0 = gm_now_ms();
		v = gm_message_one(s, m, msg, reply, replylen);
		if (m->conf->observe != NULL)
			m->conf->observe(i, (int)v, gm_now_ms() - t0);
		if (m->state == GS_ACCEPT_MSG)
			m->state = GS_ENVELOPE;
		if (v != GMV_CONTINUE)
			break;
	}
	if (v != GMV_CONTINUE) {
		/* milters after the one that decided are inside the message */
		gate_milter_abort(s);
		if (v == GMV_DISCARD)
			gm_set_reply(reply, replylen, "");
		return v;
	}
	s->in_txn = 0;
	s->discard = 0;
	return GMV_CONTINUE;
}

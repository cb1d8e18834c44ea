/*
 * gate_milter_mods.c — end of message for the gate's milter client: the
 * validation of what a milter sends (header names and values, `y` replies,
 * addresses, ESMTP arguments), the modification requests collected until
 * the final reply (add, insert, change, delete header, replace body into a
 * temp file, envelope changes, quarantine) and applied to the message in
 * order. chgheader index 0 means 1, insheader index 0 means the top.
 *
 * Ownership: a struct gm_mods lives for one milter's end of message; what
 * is applied moves into struct gate_milter_msg, the rest is freed. The
 * only file with tmpfile() (fuzz_milter.c replaces it here).
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
const char *
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
	if (!(m->c.actions & need))
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
	int lead = (m->c.proto & P_HDR_LEADSPC) != 0;

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
enum gate_milter_verdict
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
	m->reusable = 0;
	if (gm_write_all(m->c.fd, s->out.p, s->out.len, deadline) != GM_IO_OK)
		return gm_fail(s, m, "eom", "write error", reply, replylen);
	for (int i = 0; i < GM_MAX_REPLIES; i++) {
		unsigned char rc = 0;
		size_t len = 0;
		const char *why;
		int skip = 0, r, have;

		why = gm_conn_read(&m->c, i > 0, deadline, &rc, &len);
		have = why == NULL || strcmp(why, "truncated packet") == 0;
		if (why == NULL && strchr("hibm+2-eq", rc) != NULL && rc != 0) {
			if ((why = gm_parse_mod(s, m, &x, rc, m->c.rbuf, len)) == NULL)
				continue;
		} else if (why == NULL) {
			if (rc == 's') {
				why = "skip reply at end of message";
			} else if ((r = gm_final_reply(s, m, 'E', rc, m->c.rbuf, len, &v,
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
				/* libmilter stays in its end-of-message state only
				 * after `continue`: QUIT_NC may follow then */
				m->reusable = rc == 'c';
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

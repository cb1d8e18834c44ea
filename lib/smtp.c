/*
 * smtp — SMTP syntax helpers and a small blocking client (see smtp.h).
 * Stateless; every parser works on caller-owned buffers.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp.h"

size_t
smtp_verb(const char *line, const char **args)
{
	size_t n = 0;

	while (line[n] && line[n] != ' ')
		n++;
	*args = line + n;
	while (**args == ' ')
		(*args)++;
	return n;
}

static int
atext(unsigned char c, int utf8)
{
	if (isalnum(c))
		return 1;
	if (c >= 0x80)
		return utf8;
	return strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL && c != 0;
}

static int
valid_domain(const char *d, size_t len, int utf8)
{
	size_t label = 0;

	if (len == 0 || len > 255)
		return 0;
	if (d[0] == '[') {
		/* address literal: [IPv4] or [IPv6:...] — printable, no brackets inside */
		if (len < 3 || d[len - 1] != ']')
			return 0;
		for (size_t i = 1; i + 1 < len; i++) {
			unsigned char c = (unsigned char)d[i];
			if (c <= 32 || c >= 127 || c == '[' || c == ']' || c == '\\')
				return 0;
		}
		return 1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)d[i];
		if (c == '.') {
			if (label == 0 || d[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!(isalnum(c) || c == '-' || (utf8 && c >= 0x80)))
			return 0;
		if (c == '-' && label == 0)
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0 && d[len - 1] != '-';
}

int
smtp_valid_helo(const char *s)
{
	return valid_domain(s, strlen(s), 1);
}

int
smtp_valid_mailbox(const char *addr, int utf8)
{
	const char *p = addr, *at;
	size_t local = 0;

	if (*addr == '\0')
		return 1;
	if (*p == '"') {
		p++;
		for (; *p && *p != '"'; p++) {
			unsigned char c = (unsigned char)*p;
			if (c == '\\') {
				p++;
				if (*p == '\0' || (unsigned char)*p < 32)
					return 0;
				continue;
			}
			if (c < 32 || c == 127 || (c >= 0x80 && !utf8))
				return 0;
		}
		if (*p != '"')
			return 0;
		p++;
		at = p;
		if (*at != '@')
			return 0;
		local = 1;
	} else {
		int dot_ok = 0;
		for (; *p && *p != '@'; p++) {
			if (*p == '.') {
				if (!dot_ok)
					return 0;
				dot_ok = 0;
				continue;
			}
			if (!atext((unsigned char)*p, utf8))
				return 0;
			dot_ok = 1;
			local++;
		}
		if (*p != '@')
			return strcasecmp(addr, "postmaster") == 0;
		if (!dot_ok || local == 0 || (size_t)(p - addr) > 64)
			return 0;
		at = p;
	}
	return valid_domain(at + 1, strlen(at + 1), utf8);
}

int
smtp_parse_path(char *buf, const char *prefix, int allow_null,
    struct smtp_path *pp, const char **why)
{
	size_t plen = strlen(prefix);
	char *p = buf, *start, *end;
	int inq = 0;

	memset(pp, 0, sizeof(*pp));
	if (strncasecmp(p, prefix, plen) != 0) {
		*why = "Syntax: expected FROM:<address> or TO:<address>";
		return -1;
	}
	p += plen;
	while (*p == ' ')
		p++;
	if (*p != '<') {
		*why = "Syntax: address must be enclosed in <>";
		return -1;
	}
	start = ++p;
	for (end = p; *end; end++) {
		if (inq && *end == '\\' && end[1]) {
			end++;
			continue;
		}
		if (*end == '"')
			inq = !inq;
		else if (!inq && *end == '>')
			break;
		else if (!inq && (*end == '<' || *end == ' ')) {
			*why = "Syntax: bad character in address";
			return -1;
		}
	}
	if (*end != '>') {
		*why = "Syntax: missing closing >";
		return -1;
	}
	*end = '\0';
	/* a source route (@a,@b:user@d) is accepted and ignored (RFC 5321 4.1.1.3) */
	if (*start == '@') {
		char *colon = strchr(start, ':');
		if (colon == NULL) {
			*why = "Syntax: bad source route";
			return -1;
		}
		start = colon + 1;
	}
	if (strlen(start) > SMTP_PATH_MAX) {
		*why = "Path too long";
		return -1;
	}
	if (*start == '\0' && !allow_null) {
		*why = "Syntax: empty address not allowed here";
		return -1;
	}
	strcpy(pp->addr, start);
	p = end + 1;
	if (*p != '\0' && *p != ' ') {
		*why = "Syntax: garbage after address";
		return -1;
	}
	while (*p) {
		char *kw, *eq;
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		kw = p;
		while (*p && *p != ' ')
			p++;
		if (*p)
			*p++ = '\0';
		if (pp->nparams == SMTP_PARAMS_MAX) {
			*why = "Too many parameters";
			return -1;
		}
		eq = strchr(kw, '=');
		if (eq)
			*eq = '\0';
		if (*kw == '\0' || !isalnum((unsigned char)*kw)) {
			*why = "Syntax: bad parameter";
			return -1;
		}
		for (char *k = kw; *k; k++) {
			if (!isalnum((unsigned char)*k) && *k != '-') {
				*why = "Syntax: bad parameter";
				return -1;
			}
			*k = (char)toupper((unsigned char)*k);
		}
		if (eq) {
			if (eq[1] == '\0') {
				*why = "Syntax: empty parameter value";
				return -1;
			}
			for (char *v = eq + 1; *v; v++) {
				unsigned char c = (unsigned char)*v;
				if (c < 33 || c == '=' || c == 127) {
					*why = "Syntax: bad parameter value";
					return -1;
				}
			}
		}
		pp->params[pp->nparams].key = kw;
		pp->params[pp->nparams].value = eq ? eq + 1 : NULL;
		pp->nparams++;
	}
	return 0;
}

static int
reply_code(const char *l, size_t n)
{
	if (n < 3 || !isdigit((unsigned char)l[0]) || !isdigit((unsigned char)l[1]) ||
	    !isdigit((unsigned char)l[2]) || l[0] < '2' || l[0] > '5')
		return -1;
	if (n > 3 && l[3] != ' ' && l[3] != '-')
		return -1;
	return (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
}

static void
parse_enhanced(struct smtp_reply *r, const char *t, size_t n)
{
	size_t i = 0, dots = 0, digits = 0;

	r->enhanced[0] = '\0';
	if (n < 5 || (t[0] != '2' && t[0] != '4' && t[0] != '5') || t[0] != r->text[0])
		return;
	for (; i < n && i < sizeof(r->enhanced) - 1; i++) {
		if (t[i] == '.') {
			if (digits == 0)
				return;
			dots++;
			digits = 0;
		} else if (isdigit((unsigned char)t[i]))
			digits++;
		else
			break;
	}
	if (dots != 2 || digits == 0 || (i < n && t[i] != ' '))
		return;
	memcpy(r->enhanced, t, i);
	r->enhanced[i] = '\0';
}

enum smtp_rstatus
smtp_read_reply(struct io *io, struct smtp_reply *r)
{
	int bad = 0;

	r->code = 0;
	r->len = 0;
	r->nlines = 0;
	r->enhanced[0] = '\0';
	r->text[0] = '\0';
	for (;;) {
		const char *l;
		size_t n;
		enum io_status st = io_getline(io, &l, &n);
		int code;

		if (st == IO_TIMEOUT)
			return SMTP_R_TIMEOUT;
		if (st == IO_EOF)
			return SMTP_R_EOF;
		if (st == IO_ERROR)
			return SMTP_R_ERROR;
		if (st == IO_PARTIAL) {
			/* overlong reply line: not SMTP; give up on this peer */
			return SMTP_R_BAD;
		}
		n--;			/* LF */
		if (n > 0 && l[n - 1] == '\r')
			n--;
		code = reply_code(l, n);
		if (code < 0 || (r->code && code != r->code))
			bad = 1;
		if (r->nlines >= 200)
			return SMTP_R_BAD;	/* endless continuation: give up on this peer */
		if (r->code == 0 && code > 0) {
			r->code = code;
		}
		if (r->len + n + 3 <= sizeof(r->text) && !bad) {
			memcpy(r->text + r->len, l, n);
			r->len += n;
			memcpy(r->text + r->len, "\r\n", 3);
			r->len += 2;
		} else
			bad = 1;
		if (r->nlines == 0 && n > 4 && code > 0)
			parse_enhanced(r, l + 4, n - 4);
		r->nlines++;
		if (code < 0 || n == 3 || l[3] == ' ')
			break;
	}
	if (bad) {
		r->code = 0;
		return SMTP_R_BAD;
	}
	return SMTP_R_OK;
}

int
smtp_reply_line(const struct smtp_reply *r, unsigned i, const char **p, size_t *len)
{
	const char *s = r->text, *e;

	for (;;) {
		e = strstr(s, "\r\n");
		if (e == NULL)
			return -1;
		if (i == 0)
			break;
		i--;
		s = e + 2;
	}
	if (e - s < 4) {
		*p = e;
		*len = 0;
	} else {
		*p = s + 4;
		*len = (size_t)(e - s - 4);
	}
	return 0;
}

static int
cap_is(const char *p, size_t n, const char *word, const char **rest)
{
	size_t wl = strlen(word);

	if (n < wl || strncasecmp(p, word, wl) != 0 || (n > wl && p[wl] != ' '))
		return 0;
	*rest = p + wl;
	return 1;
}

void
smtp_parse_caps(const struct smtp_reply *ehlo, struct smtp_caps *caps)
{
	memset(caps, 0, sizeof(*caps));
	for (unsigned i = 1; i < ehlo->nlines; i++) {
		const char *p, *rest;
		size_t n;

		if (smtp_reply_line(ehlo, i, &p, &n) != 0)
			break;
		if (cap_is(p, n, "PIPELINING", &rest))
			caps->pipelining = 1;
		else if (cap_is(p, n, "8BITMIME", &rest))
			caps->eightbit = 1;
		else if (cap_is(p, n, "SMTPUTF8", &rest))
			caps->smtputf8 = 1;
		else if (cap_is(p, n, "CHUNKING", &rest))
			caps->chunking = 1;
		else if (cap_is(p, n, "STARTTLS", &rest))
			caps->starttls = 1;
		else if (cap_is(p, n, "ENHANCEDSTATUSCODES", &rest))
			caps->enhanced = 1;
		else if (cap_is(p, n, "DSN", &rest))
			caps->dsn = 1;
		else if (cap_is(p, n, "SIZE", &rest)) {
			caps->size = 1;
			caps->size_max = strtoull(rest, NULL, 10);
		} else if (cap_is(p, n, "AUTH", &rest)) {
			size_t rl = n - (size_t)(rest - p);
			char tmp[256];
			snprintf(tmp, sizeof(tmp), " %.*s ", (int)rl, rest);
			for (char *c = tmp; *c; c++)
				*c = (char)toupper((unsigned char)*c);
			if (strstr(tmp, " PLAIN "))
				caps->auth_plain = 1;
			if (strstr(tmp, " LOGIN "))
				caps->auth_login = 1;
		} else if (cap_is(p, n, "XCLIENT", &rest)) {
			size_t rl = n - (size_t)(rest - p);
			caps->xclient = 1;
			snprintf(caps->xclient_attrs, sizeof(caps->xclient_attrs),
			    "%.*s ", (int)rl, rest);
		}
	}
}

int
smtp_write_stuffed(struct io *io, const char *p, size_t len, int at_bol)
{
	if (at_bol && len > 0 && p[0] == '.' && io_write(io, ".", 1) != 0)
		return -1;
	return io_write(io, p, len);
}

enum smtp_rstatus
smtp_command(struct io *io, struct smtp_reply *r, const char *fmt, ...)
{
	char buf[SMTP_LINE_MAX + 512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf) - 2)
		return SMTP_R_ERROR;
	memcpy(buf + n, "\r\n", 2);
	if (io_write(io, buf, (size_t)n + 2) != 0 || io_flush(io) != 0)
		return SMTP_R_ERROR;
	return smtp_read_reply(io, r);
}

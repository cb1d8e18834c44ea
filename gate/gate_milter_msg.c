/*
 * gate_milter_msg — the message as milters see it: the header section
 * parsed into name/value pairs, the body left in the spool, writing the
 * (modified) message back out as CRLF lines, and the spool itself (memory
 * up to a bound, then a temp file). See gate_milter.h; the file map is in
 * gate_milter_int.h.
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

/* ---- the message ----------------------------------------------------- */

void
gate_milter_msg_free(struct gate_milter_msg *m)
{
	for (size_t i = 0; i < m->nhdr; i++) {
		free(m->hdr[i].name);
		free(m->hdr[i].value);
	}
	free(m->hdr);
	if (m->body && fclose(m->body) != 0)
		log_debug("milter body tmpfile close: %s", strerror(errno));
	for (size_t i = 0; i < m->nadd_rcpt; i++) {
		free(m->add_rcpt[i]);
		free(m->add_rcpt_args[i]);
	}
	free(m->add_rcpt);
	free(m->add_rcpt_args);
	for (size_t i = 0; i < m->ndel_rcpt; i++)
		free(m->del_rcpt[i]);
	free(m->del_rcpt);
	free(m->new_from);
	free(m->new_from_args);
	free(m->quarantine);
	memset(m, 0, sizeof *m);
}

/* Length of a header name without blanks before the colon ("Subject "). */
size_t
gm_name_len(const char *name)
{
	size_t n = strlen(name);

	while (n > 0 && (name[n - 1] == ' ' || name[n - 1] == '\t'))
		n--;
	return n;
}

/* Insert a header (taking ownership of name and value) at position pos. */
int
gm_hdr_insert(struct gate_milter_msg *m, size_t pos, char *name, char *value)
{
	if (m->nhdr >= GM_MAX_HDRS)
		return -1;
	if (m->nhdr == m->hcap) {
		size_t cap = m->hcap ? m->hcap * 2 : 32;
		struct gate_milter_hdr *nh = realloc(m->hdr, cap * sizeof *nh);

		if (nh == NULL)
			return -1;
		m->hdr = nh;
		m->hcap = cap;
	}
	if (pos > m->nhdr)
		pos = m->nhdr;
	memmove(&m->hdr[pos + 1], &m->hdr[pos], (m->nhdr - pos) * sizeof *m->hdr);
	m->hdr[pos].name = name;
	m->hdr[pos].value = value;
	m->nhdr++;
	return 0;
}

static int
gm_is_header_start(const char *line, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if (c == ':')
			return i > 0;
		if (c <= 32 || c >= 127)
			break;
	}
	/* "Name :" with blanks before the colon */
	if (i == 0)
		return 0;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	return i < len && line[i] == ':';
}

int
gate_milter_msg_read(struct gate_milter_msg *m, FILE *in, const char **why)
{
	char *line = NULL;
	size_t cap = 0, total = 0;
	ssize_t n;
	off_t start;

	memset(m, 0, sizeof *m);
	m->in = in;
	for (;;) {
		if ((start = ftello(in)) < 0) {
			*why = "cannot tell the spool offset";
			goto fail;
		}
		n = getline(&line, &cap, in);
		if (n <= 0) {
			if (ferror(in)) {
				*why = "read error";
				goto fail;
			}
			m->in_off = start;
			break;
		}
		total += (size_t)n;
		if (total > (8u << 20)) {
			*why = "header section too large";
			goto fail;
		}
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = 0;
		if (n > 0 && line[n - 1] == '\r')
			line[--n] = 0;
		if (n == 0) {
			m->had_blank = 1;
			if ((m->in_off = ftello(in)) < 0) {
				*why = "cannot tell the spool offset";
				goto fail;
			}
			break;
		}
		if ((line[0] == ' ' || line[0] == '\t') && m->nhdr > 0) {
			struct gate_milter_hdr *h = &m->hdr[m->nhdr - 1];
			size_t ol = strlen(h->value);
			char *nv = realloc(h->value, ol + (size_t)n + 2);

			if (nv == NULL) {
				*why = "out of memory";
				goto fail;
			}
			nv[ol] = '\n';
			memcpy(nv + ol + 1, line, (size_t)n + 1);
			h->value = nv;
			continue;
		}
		if (!gm_is_header_start(line, (size_t)n)) {
			/* not a header: the body starts here, without an empty line */
			m->in_off = start;
			break;
		}
		{
			char *colon = strchr(line, ':'), *name, *value;
			size_t nl = (size_t)(colon - line);

			/* kept as written ("Subject :" too): the message must go on
			 * byte for byte, or an upstream DKIM signature breaks */
			name = strndup(line, nl);
			value = strdup(colon + 1);
			if (name == NULL || value == NULL ||
			    gm_hdr_insert(m, m->nhdr, name, value) != 0) {
				free(name);
				free(value);
				*why = "too many headers";
				goto fail;
			}
		}
	}
	free(line);
	return 0;
fail:
	free(line);
	m->in = NULL;
	gate_milter_msg_free(m);
	return -1;
}

/* Position the body stream at its start; returns it or NULL. */
FILE *
gm_body_rewind(const struct gate_milter_msg *m)
{
	FILE *f = m->body ? m->body : m->in;
	off_t off = m->body ? 0 : m->in_off;

	if (f == NULL)
		return NULL;
	if (fseeko(f, off, SEEK_SET) != 0)
		return NULL;
	return f;
}

int
gate_milter_msg_write(const struct gate_milter_msg *m, FILE *out)
{
	char buf[16384];
	FILE *f;
	size_t n;

	for (size_t i = 0; i < m->nhdr; i++) {
		const char *v = m->hdr[i].value;

		if (fputs(m->hdr[i].name, out) == EOF || fputc(':', out) == EOF)
			return -1;
		for (; *v; v++) {
			if (*v == '\n' && fputc('\r', out) == EOF)
				return -1;
			if (fputc(*v, out) == EOF)
				return -1;
		}
		if (fputs("\r\n", out) == EOF)
			return -1;
	}
	if ((m->had_blank || m->body) && fputs("\r\n", out) == EOF)
		return -1;
	if ((f = gm_body_rewind(m)) == NULL)
		return m->in == NULL && m->body == NULL ? 0 : -1;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		if (fwrite(buf, 1, n, out) != n)
			return -1;
	if (ferror(f))
		return -1;
	return 0;
}

int
gate_milter_msg_lines(const struct gate_milter_msg *m, gate_milter_line_fn fn,
    void *arg)
{
	char *buf;
	FILE *f;
	size_t n, cap = 65536;
	int rc = 0, bol = 1;

	for (size_t i = 0; i < m->nhdr && rc == 0; i++) {
		const char *v = m->hdr[i].value, *nl;
		char *line = NULL;
		int w;

		/* first line "Name:value", then each folded line on its own */
		nl = strchr(v, '\n');
		w = asprintf(&line, "%s:%.*s\r\n", m->hdr[i].name,
		    (int)(nl ? (size_t)(nl - v) : strlen(v)), v);
		if (w < 0)
			return -1;
		rc = fn(arg, line, (size_t)w, 1);
		free(line);
		while (rc == 0 && nl) {
			const char *start = nl + 1;

			nl = strchr(start, '\n');
			line = NULL;
			w = asprintf(&line, "%.*s\r\n",
			    (int)(nl ? (size_t)(nl - start) : strlen(start)), start);
			if (w < 0)
				return -1;
			rc = fn(arg, line, (size_t)w, 1);
			free(line);
		}
	}
	if (rc != 0)
		return rc;
	if ((m->had_blank || m->body) && (rc = fn(arg, "\r\n", 2, 1)) != 0)
		return rc;
	if ((f = gm_body_rewind(m)) == NULL)
		return m->in == NULL && m->body == NULL ? 0 : -1;
	if ((buf = malloc(cap)) == NULL)
		return -1;
	/* lines up to cap bytes; a longer line goes in pieces */
	while (rc == 0) {
		int c = 0;

		n = 0;
		while (n < cap && (c = getc(f)) != EOF) {
			buf[n++] = (char)c;
			if (c == '\n')
				break;
		}
		if (n == 0)
			break;
		rc = fn(arg, buf, n, bol);
		bol = n > 0 && buf[n - 1] == '\n';
		if (c == EOF)
			break;
	}
	if (rc == 0 && ferror(f))
		rc = -1;
	free(buf);
	return rc;
}

int
gate_milter_spool_init(struct gate_milter_spool *sp, size_t mem_limit)
{
	int fd;

	memset(sp, 0, sizeof *sp);
	sp->mem_limit = mem_limit;
	if (mem_limit > 0 && (fd = memfd_create("tailwart-spool", MFD_CLOEXEC)) >= 0) {
		if ((sp->f = fdopen(fd, "w+")) != NULL)
			return 0;
		if (close(fd) != 0)
			log_debug("spool memfd close: %s", strerror(errno));
	}
	sp->on_disk = 1;
	return (sp->f = tmpfile()) != NULL ? 0 : -1;
}

int
gate_milter_spool_write(struct gate_milter_spool *sp, const void *p, size_t n)
{
	if (sp->f == NULL)
		return -1;
	if (!sp->on_disk && sp->len + n > sp->mem_limit) {
		/* over the memory bound: move what we have to a temp file */
		FILE *t = tmpfile();
		char buf[16384];
		size_t k;

		if (t == NULL || fflush(sp->f) != 0 || fseeko(sp->f, 0, SEEK_SET) != 0) {
			if (t)
				fclose(t);
			return -1;
		}
		while ((k = fread(buf, 1, sizeof buf, sp->f)) > 0)
			if (fwrite(buf, 1, k, t) != k) {
				fclose(t);
				return -1;
			}
		if (ferror(sp->f)) {
			fclose(t);
			return -1;
		}
		if (fclose(sp->f) != 0)
			log_debug("spool memfd close: %s", strerror(errno));
		sp->f = t;
		sp->on_disk = 1;
	}
	if (n && fwrite(p, 1, n, sp->f) != n)
		return -1;
	sp->len += n;
	return 0;
}

FILE *
gate_milter_spool_done(struct gate_milter_spool *sp)
{
	if (sp->f == NULL || fflush(sp->f) != 0 || fseeko(sp->f, 0, SEEK_SET) != 0)
		return NULL;
	return sp->f;
}

void
gate_milter_spool_free(struct gate_milter_spool *sp)
{
	if (sp->f && fclose(sp->f) != 0)
		log_debug("spool close: %s", strerror(errno));
	memset(sp, 0, sizeof *sp);
}


/*
 * fuzz_smtp — libFuzzer target for lib/smtp.c, what the gate and the relay
 * use on both sides of SMTP. The first byte picks the surface, the rest is
 * its input:
 *   0  a server's replies, read with smtp_read_reply() through lib/io.c
 *      from an anonymous file until it fails; every reply is parsed as an
 *      EHLO answer (smtp_parse_caps) and split (smtp_reply_line). A reply
 *      must have a code 200..599 with every line "NNN[ -]" and CRLF, its
 *      text must fit, the capability strings be NUL-terminated;
 *   1  a MAIL/RCPT argument (smtp_parse_path with FROM:/TO:, then
 *      smtp_valid_mailbox): the address fits and is NUL-terminated, every
 *      parameter key is non-empty and upper case;
 *   2  message content written with smtp_write_stuffed() line by line: read
 *      back and un-stuffed it must be the input again, and no written line
 *      may start with a single dot;
 *   3  smtp_verb, smtp_valid_helo on a command line.
 *
 * Built and run by `make fuzz` (see tests/fuzz/README.md).
 */
#include <ctype.h>
#include <stdio.h>

#include "fuzz.h"
#include "io.h"
#include "smtp.h"

static void
fuzz_replies(const uint8_t *data, size_t size)
{
	struct smtp_reply *r = malloc(sizeof(*r));
	struct smtp_caps caps;
	struct io io;
	int fd = fuzz_memfd(data, size);

	if (r == NULL || io_init(&io, fd, 4096, 1000) != 0)
		abort();
	while (smtp_read_reply(&io, r) == SMTP_R_OK) {
		const char *p;
		size_t len;

		if (r->code < 200 || r->code > 599 || r->len > sizeof(r->text) || r->nlines == 0 ||
		    strnlen(r->enhanced, sizeof(r->enhanced)) == sizeof(r->enhanced))
			abort();
		for (size_t i = 0, bol = 1; i < r->len; i++) {
			if (bol && (i + 4 > r->len || r->text[i] != '0' + r->code / 100 ||
			    r->text[i + 1] != '0' + r->code / 10 % 10 ||
			    r->text[i + 2] != '0' + r->code % 10))
				abort();	/* a line of another code relayed */
			bol = r->text[i] == '\n';
			if (bol && (i == 0 || r->text[i - 1] != '\r'))
				abort();	/* a bare LF relayed verbatim */
		}
		for (unsigned i = 0; i < r->nlines; i++)
			if (smtp_reply_line(r, i, &p, &len) == 0 &&
			    (p < r->text || p + len > r->text + r->len))
				abort();
		memset(&caps, 0, sizeof(caps));
		smtp_parse_caps(r, &caps);
		if (strnlen(caps.xclient_attrs, sizeof(caps.xclient_attrs)) ==
		    sizeof(caps.xclient_attrs))
			abort();
	}
	io_free(&io);
	close(fd);
	free(r);
}

static void
fuzz_path(char *s)
{
	struct smtp_path p;
	const char *why = NULL;
	char *copy = strdup(s);

	if (copy == NULL)
		return;
	for (int allow_null = 0; allow_null < 2; allow_null++) {
		strcpy(copy, s);
		if (smtp_parse_path(copy, allow_null ? "FROM:" : "TO:", allow_null, &p, &why) != 0) {
			if (why == NULL)
				abort();
			continue;
		}
		if (strnlen(p.addr, sizeof(p.addr)) == sizeof(p.addr) ||
		    p.nparams > SMTP_PARAMS_MAX)
			abort();
		for (size_t i = 0; i < p.nparams; i++) {
			if (p.params[i].key == NULL || p.params[i].key[0] == '\0')
				abort();
			for (const char *k = p.params[i].key; *k; k++)
				if (islower((unsigned char)*k))
					abort();
		}
		(void)smtp_valid_mailbox(p.addr, 0);
		(void)smtp_valid_mailbox(p.addr, 1);
	}
	free(copy);
}

static void
fuzz_stuffing(const uint8_t *data, size_t size)
{
	struct io io;
	int fd = fuzz_memfd(NULL, 0);
	char *back, *out;
	size_t i = 0, o = 0;
	off_t n;

	if (io_init(&io, fd, 4096, 1000) != 0)
		abort();
	while (i < size) {
		const uint8_t *lf = memchr(data + i, '\n', size - i);
		size_t len = lf ? (size_t)(lf - (data + i)) + 1 : size - i;
		/* a long line goes in two chunks: the second is not at a line start */
		size_t half = len > 8 ? len / 2 : len;

		if (smtp_write_stuffed(&io, (const char *)data + i, half, 1) != 0 ||
		    (half < len && smtp_write_stuffed(&io, (const char *)data + i + half,
		    len - half, 0) != 0))
			abort();
		i += len;
	}
	if (io_flush(&io) != 0)
		abort();
	io_free(&io);
	n = lseek(fd, 0, SEEK_END);
	if (n < 0 || (out = malloc((size_t)n + 1)) == NULL || (back = malloc((size_t)n + 1)) == NULL ||
	    pread(fd, out, (size_t)n, 0) != n)
		abort();
	for (off_t k = 0, bol = 1; k < n; k++) {
		if (bol && out[k] == '.') {
			if (k + 1 >= n || out[k + 1] != '.')
				abort();	/* a dot line left unstuffed */
			k++;
		}
		back[o++] = out[k];
		bol = out[k] == '\n';
	}
	if (o != size || memcmp(back, data, size) != 0)
		abort();
	free(out);
	free(back);
	close(fd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;
	const char *args;

	fuzz_once();
	if (size < 1 || size > 65536)
		return 0;
	switch (data[0] % 4) {
	case 0:
		fuzz_replies(data + 1, size - 1);
		return 0;
	case 2:
		fuzz_stuffing(data + 1, size - 1);
		return 0;
	}
	if ((s = malloc(size)) == NULL)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	if (data[0] % 4 == 1)
		fuzz_path(s);
	else {
		if (smtp_verb(s, &args) > strlen(s) || args < s || args > s + strlen(s))
			abort();
		(void)smtp_valid_helo(s);
	}
	free(s);
	return 0;
}

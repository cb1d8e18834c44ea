/*
 * fuzz_milterd — libFuzzer target for tailwart-milter's callbacks
 * (milter/milter_filter.c, milter_dkim.c), called as libmilter would call
 * them, from the table milter_filter_desc() fills, without libmilter's
 * socket: SMFICTX is a fake context of this file, and the libmilter calls
 * the callbacks make (smfi_getpriv, smfi_setpriv, smfi_setreply,
 * smfi_chgheader, smfi_insheader) are defined here, so they keep the
 * message's header list as an MTA would.
 *
 * Input: "HELO\nMAIL\nRCPT\n" then a message (header section, blank line,
 * body). Bit 0 of the length: SMFIP_HDR_LEADSPC negotiated or not (headers
 * passed with or without their leading blank). DKIM verification is on,
 * keys from an (empty) file: no DNS. Policy checks are off (empty policy).
 * Event order as libmilter's: negotiate, connect, helo, envfrom, envrcpt,
 * header..., eoh, body (chunks of 65535), eom, then a second message that
 * is aborted, then close.
 *
 * Contract checked: no crash, leak or hang; replies set are 4xx/5xx
 * without CR/LF; after eom exactly one Authentication-Results header
 * carries our authserv-id (the one added; forged ones, however many and
 * however written — after a comment, quoted — are removed: defect 5 of
 * issue 8), and the added one is first.
 *
 * Built and run by `make fuzz` (see tests/fuzz/README.md).
 */
#include <fcntl.h>
#include <stdio.h>
#include <strings.h>
#include <arpa/inet.h>

#include "fuzz.h"
#include "../../milter/milter.h"

const struct milter_runtime *milter_rt;	/* milter_main.c is not linked */

#define FZ_HMAX		256
#define FZ_AUTHSERV	"mx.fuzz.test"

struct fz_hdr {
	char	*name, *value;
};

struct smfi_str {
	void		*priv;
	struct fz_hdr	 h[FZ_HMAX];
	size_t		 nh;
};

void *
smfi_getpriv(SMFICTX *ctx)
{
	return ctx->priv;
}

int
smfi_setpriv(SMFICTX *ctx, void *p)
{
	ctx->priv = p;
	return MI_SUCCESS;
}

int
smfi_setreply(SMFICTX *ctx, char *code, char *xcode, char *text)
{
	(void)ctx;
	if (code == NULL || (code[0] != '4' && code[0] != '5') || strlen(code) != 3 ||
	    (xcode != NULL && strpbrk(xcode, "\r\n") != NULL) ||
	    (text != NULL && strpbrk(text, "\r\n") != NULL))
		abort();
	return MI_SUCCESS;
}

static void
fz_hdr_free(struct fz_hdr *h)
{
	free(h->name);
	free(h->value);
}

/* Change or (value NULL) delete the idx-th (1-based) header `name`. */
int
smfi_chgheader(SMFICTX *ctx, char *name, int idx, char *value)
{
	int seen = 0;

	for (size_t i = 0; i < ctx->nh; i++) {
		if (strcasecmp(ctx->h[i].name, name) != 0 || ++seen != idx)
			continue;
		if (value == NULL) {
			fz_hdr_free(&ctx->h[i]);
			memmove(&ctx->h[i], &ctx->h[i + 1], (ctx->nh - i - 1) * sizeof(ctx->h[0]));
			ctx->nh--;
		} else {
			free(ctx->h[i].value);
			if ((ctx->h[i].value = strdup(value)) == NULL)
				abort();
		}
		return MI_SUCCESS;
	}
	return MI_SUCCESS;	/* an index past the end is no error for the MTA */
}

int
smfi_insheader(SMFICTX *ctx, int idx, char *name, char *value)
{
	size_t at = idx < 0 ? 0 : (size_t)idx;

	if (strpbrk(name, ": \r\n") != NULL || ctx->nh >= FZ_HMAX)
		abort();
	for (const char *p = value; *p; p++)
		if (*p == '\r' || (*p == '\n' && p[1] != '\t' && p[1] != ' '))
			abort();	/* folded with a blank after every LF, no CR */
	if (at > ctx->nh)
		at = ctx->nh;
	memmove(&ctx->h[at + 1], &ctx->h[at], (ctx->nh - at) * sizeof(ctx->h[0]));
	if ((ctx->h[at].name = strdup(name)) == NULL || (ctx->h[at].value = strdup(value)) == NULL)
		abort();
	ctx->nh++;
	return MI_SUCCESS;
}

/* RFC 8601: skip CFWS (blanks, line breaks, nested comments). */
static const char *
fz_cfws(const char *p)
{
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		if (*p != '(')
			return p;
		for (int depth = 0; *p; p++) {
			if (*p == '\\' && p[1])
				p++;
			else if (*p == '(')
				depth++;
			else if (*p == ')' && --depth == 0) {
				p++;
				break;
			}
		}
	}
}

/* Is this a well-formed A-R value whose authserv-id is ours? */
static int
fz_ours(const char *v)
{
	char id[256];
	size_t n = 0;

	v = fz_cfws(v);
	if (*v == '"') {
		for (v++; *v && *v != '"'; v++) {
			if (*v == '\\' && v[1])
				v++;
			if (n + 1 < sizeof(id))
				id[n++] = *v;
		}
		if (*v++ != '"')
			return 0;
	} else
		while (*v && !strchr(" \t\r\n;(\"", *v) && n + 1 < sizeof(id))
			id[n++] = *v++;
	id[n] = '\0';
	if (strcasecmp(id, FZ_AUTHSERV) != 0)
		return 0;
	v = fz_cfws(v);
	if (*v >= '0' && *v <= '9') {		/* authres-version */
		while (*v >= '0' && *v <= '9')
			v++;
		v = fz_cfws(v);
	}
	return *v == ';';
}

static struct milter_settings fz_set;
static struct milter_runtime fz_rt;

static void
fuzz_init(void)
{
	char dir[64], keys[96], err[256];
	int fd;

	fuzz_once();
	fuzz_tmpdir(dir, sizeof(dir), "fuzz_milterd");
	snprintf(keys, sizeof(keys), "%s/keys", dir);
	if ((fd = open(keys, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0 || close(fd) != 0)
		abort();
	fz_set.authserv_id = (char *)(uintptr_t)FZ_AUTHSERV;
	fz_set.dkim = 1;
	fz_set.dkim_keys = strdup(keys);
	fz_set.timeout = 5;
	fz_rt.cfg = &fz_set;
	if ((fz_rt.dkim = milter_dkim_init(&fz_set, err, sizeof(err))) == NULL)
		abort();
	milter_rt = &fz_rt;
}

/* Next line of the input (without its LF) into buf; NULL at the end. */
static const char *
fz_line(const uint8_t **p, const uint8_t *end, char *buf, size_t cap)
{
	const uint8_t *lf;
	size_t n;

	if (*p >= end)
		return NULL;
	lf = memchr(*p, '\n', (size_t)(end - *p));
	n = lf ? (size_t)(lf - *p) : (size_t)(end - *p);
	if (n >= cap)
		n = cap - 1;
	memcpy(buf, *p, n);
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\r')
		buf[n - 1] = '\0';
	*p = lf ? lf + 1 : end;
	return buf;
}

/* One message: headers, eoh, body, then eom or abort. */
static void
fz_message(struct smfiDesc *d, SMFICTX *ctx, const uint8_t *p, const uint8_t *end,
    int leadspc, int eom)
{
	char line[2048], name[256], *value;

	while (fz_line(&p, end, line, sizeof(line)) != NULL && line[0] != '\0') {
		char *colon = strchr(line, ':');

		if (colon == NULL || colon == line || (size_t)(colon - line) >= sizeof(name))
			continue;
		memcpy(name, line, (size_t)(colon - line));
		name[colon - line] = '\0';
		value = colon + 1;
		if (!leadspc && (*value == ' ' || *value == '\t'))
			value++;
		if (eom && ctx->nh < FZ_HMAX - 2) {
			if ((ctx->h[ctx->nh].name = strdup(name)) == NULL ||
			    (ctx->h[ctx->nh].value = strdup(value)) == NULL)
				abort();
			ctx->nh++;
		}
		if (d->xxfi_header(ctx, name, value) != SMFIS_CONTINUE)
			return;
	}
	if (d->xxfi_eoh(ctx) != SMFIS_CONTINUE)
		return;
	while (p < end) {
		size_t n = (size_t)(end - p) > 65535 ? 65535 : (size_t)(end - p);
		if (d->xxfi_body(ctx, (unsigned char *)(uintptr_t)p, n) != SMFIS_CONTINUE)
			return;
		p += n;
	}
	if (!eom) {
		(void)d->xxfi_abort(ctx);
		return;
	}
	if (d->xxfi_eom(ctx) != SMFIS_CONTINUE)
		return;
	{
		int ours = 0;

		for (size_t i = 0; i < ctx->nh; i++)
			if (strcasecmp(ctx->h[i].name, "Authentication-Results") == 0 &&
			    fz_ours(ctx->h[i].value)) {
				if (ours++ == 0 && i != 0)
					abort();	/* ours is not the first header */
			}
		if (ours != 1)
			abort();	/* a forged A-R with our authserv-id is left */
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static SMFICTX ctx;
	struct smfiDesc d;
	struct sockaddr_in sin;
	unsigned long f0, f1, f2, f3;
	const uint8_t *p = data, *end = data + size;
	char helo[300], from[300], rcpt[300], *argv[2] = { NULL, NULL };
	int leadspc = size & 1;

	if (milter_rt == NULL)
		fuzz_init();
	if (size > 65536)
		return 0;
	milter_filter_desc(&d);
	memset(&ctx, 0, sizeof(ctx));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(0xc0000201);
	sin.sin_port = htons(40000);
	if (d.xxfi_negotiate(&ctx, 0x1ff, leadspc ? SMFIP_HDR_LEADSPC : 0, 0, 0, &f0, &f1,
	    &f2, &f3) != SMFIS_CONTINUE)
		goto out;
	leadspc = (f1 & SMFIP_HDR_LEADSPC) != 0;
	if (fz_line(&p, end, helo, sizeof(helo)) == NULL ||
	    fz_line(&p, end, from, sizeof(from)) == NULL ||
	    fz_line(&p, end, rcpt, sizeof(rcpt)) == NULL)
		goto out;
	if (d.xxfi_connect(&ctx, (char *)(uintptr_t)"client.example.org",
	    (struct sockaddr *)&sin) != SMFIS_CONTINUE ||
	    d.xxfi_helo(&ctx, helo) != SMFIS_CONTINUE)
		goto out;
	argv[0] = from;
	if (d.xxfi_envfrom(&ctx, argv) != SMFIS_CONTINUE)
		goto out;
	argv[0] = rcpt;
	if (d.xxfi_envrcpt(&ctx, argv) != SMFIS_CONTINUE)
		goto out;
	fz_message(&d, &ctx, p, end, leadspc, 1);
	argv[0] = from;
	if (d.xxfi_envfrom(&ctx, argv) == SMFIS_CONTINUE)
		fz_message(&d, &ctx, p, end, leadspc, 0);
out:
	(void)d.xxfi_close(&ctx);
	for (size_t i = 0; i < ctx.nh; i++)
		fz_hdr_free(&ctx.h[i]);
	ctx.nh = 0;
	return 0;
}

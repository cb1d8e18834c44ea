/*
 * milter_dkim.c — DKIM verification for tailwart-milter with libopendkim:
 * one DKIM_LIB for the process (built at start-up, read-only afterwards;
 * libopendkim handles are per message and used by one thread at a time),
 * one DKIM verify handle per message, fed header by header and in body
 * chunks as libmilter delivers them, results rendered as
 * Authentication-Results fragments (RFC 8601: dkim=pass|fail|neutral|
 * temperror|permerror, header.d, header.s, header.b).
 * Keys come from DNS through the configured resolver (milter_dns.c) or,
 * as a test aid, from a file (milter_dkim_keys).
 *
 * Raw mode (Stalwart): the BODY chunks carry the whole message, headers
 * included. The header block at their start is collected (at most
 * MILTER_RAWHDR_MAX bytes), split into fields as they were on the wire
 * (folding and spacing kept, which the trimmed HEADER values lose) and
 * fed as the headers; what follows the blank line is the body.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "milter.h"

DKIM_LIB *
milter_dkim_init(const struct milter_settings *s, char *err, size_t errlen)
{
	DKIM_LIB *lib = dkim_init(NULL, NULL);
	unsigned int flags = DKIM_LIBFLAGS_FIXCRLF;

	if (lib == NULL) {
		snprintf(err, errlen, "dkim_init failed");
		return NULL;
	}
	if (dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags,
	    sizeof flags) != DKIM_STAT_OK) {
		snprintf(err, errlen, "dkim_options(FLAGS) failed");
		dkim_close(lib);
		return NULL;
	}
	if (s->dkim_keys) {
		dkim_query_t qm = DKIM_QUERY_FILE;

		if (dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYMETHOD, &qm,
		    sizeof qm) != DKIM_STAT_OK ||
		    dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYINFO,
		    s->dkim_keys, strlen(s->dkim_keys)) != DKIM_STAT_OK) {
			snprintf(err, errlen, "dkim_options(QUERYINFO %s) failed",
			    s->dkim_keys);
			dkim_close(lib);
			return NULL;
		}
	} else if (milter_dns_setup(lib, s) != 0) {
		snprintf(err, errlen, "cannot route DKIM key lookups to resolver %s",
		    s->pc.resolver ? s->pc.resolver : "system");
		dkim_close(lib);
		return NULL;
	}
	return lib;
}

DKIM *
milter_dkim_start(DKIM_LIB *lib, const char *id)
{
	DKIM_STAT st = DKIM_STAT_OK;
	DKIM *d;

	if (lib == NULL)
		return NULL;
	d = dkim_verify(lib, (const unsigned char *)id, NULL, &st);
	if (d == NULL)
		log_warn("%s dkim_verify: %s", id, dkim_getresultstr(st));
	return d;
}

int
milter_dkim_header(DKIM *d, const char *name, const char *value, int leadspc)
{
	size_t nl = strlen(name), vl = strlen(value), o = 0;
	char *h;
	int rc;

	/* MTAs send folded lines joined by a bare LF: canonical form is CRLF */
	if ((h = malloc(nl + 2 + 2 * vl + 1)) == NULL)
		return -1;
	memcpy(h, name, nl);
	o = nl;
	h[o++] = ':';
	if (!leadspc)
		h[o++] = ' ';
	for (size_t i = 0; i < vl; i++) {
		if (value[i] == '\n' && (i == 0 || value[i - 1] != '\r'))
			h[o++] = '\r';
		h[o++] = value[i];
	}
	h[o] = 0;
	rc = dkim_header(d, (unsigned char *)h, o) == DKIM_STAT_OK ? 0 : -1;
	free(h);
	return rc;
}

int
milter_dkim_eoh(DKIM *d)
{
	DKIM_STAT st = dkim_eoh(d);

	/* NOSIG: nothing to verify; still a valid state for dkim_eom() */
	return st == DKIM_STAT_OK || st == DKIM_STAT_NOSIG ? 0 : -1;
}

int
milter_dkim_body(DKIM *d, const unsigned char *p, size_t len)
{
	return dkim_body(d, (unsigned char *)p, len) == DKIM_STAT_OK ? 0 : -1;
}

/* A-R dkim result word for one signature. */
static const char *
milter_dkim_result(DKIM_SIGINFO *sig)
{
	if (DKIM_SIG_CHECK(sig))
		return "pass";
	switch (dkim_sig_geterror(sig)) {
	case DKIM_SIGERROR_KEYFAIL:
		return "temperror";
	case DKIM_SIGERROR_NOKEY:
	case DKIM_SIGERROR_DNSSYNTAX:
	case DKIM_SIGERROR_KEYREVOKED:
		return "permerror";
	default:
		break;
	}
	if (!(dkim_sig_getflags(sig) & DKIM_SIGFLAG_PROCESSED))
		return "neutral";
	return "fail";
}

/* Copy s keeping only characters safe inside an A-R value. */
static void
milter_dkim_token(char *out, size_t len, const char *s)
{
	size_t o = 0;

	for (; s && *s && o + 1 < len; s++)
		if ((unsigned char)*s > ' ' && (unsigned char)*s < 127 &&
		    !strchr(";()\"\\", *s))
			out[o++] = *s;
	out[o] = 0;
}

/* Feed the header fields of block[0..len) (lines ending in LF or CRLF;
 * a line starting with a blank continues the field), then end them. */
static int
milter_dkim_raw_fields(DKIM *d, const char *block, size_t len)
{
	size_t start = 0, i = 0;

	while (start < len) {
		size_t end;

		/* the field runs to the LF not followed by a blank */
		for (i = start; i < len; i++)
			if (block[i] == '\n' && (i + 1 >= len ||
			    (block[i + 1] != ' ' && block[i + 1] != '\t')))
				break;
		end = i;
		if (end > start && block[end - 1] == '\r')
			end--;
		if (end > start && dkim_header(d, (unsigned char *)block + start,
		    end - start) != DKIM_STAT_OK)
			return -1;
		start = i + 1;
	}
	return milter_dkim_eoh(d);
}

int
milter_dkim_raw_body(DKIM *d, struct milter_rawhdr *rh, const unsigned char *p,
    size_t len)
{
	size_t from, hdr_end = 0, body_at = 0;
	int found = 0;

	if (rh->state == RAWHDR_DONE)
		return len ? milter_dkim_body(d, p, len) : 0;
	if (rh->len + len > MILTER_RAWHDR_MAX)
		return -1;
	if (rh->len + len + 1 > rh->cap) {
		size_t cap = rh->cap ? rh->cap : 65536;
		char *n;

		while (cap < rh->len + len + 1)
			cap *= 2;
		if ((n = realloc(rh->buf, cap)) == NULL)
			return -1;
		rh->buf = n;
		rh->cap = cap;
	}
	/* a blank line may straddle the chunks: look from a little before */
	from = rh->len >= 3 ? rh->len - 3 : 0;
	memcpy(rh->buf + rh->len, p, len);
	rh->len += len;
	if (rh->buf[0] == '\n' || (rh->len >= 2 && rh->buf[0] == '\r' && rh->buf[1] == '\n')) {
		found = 1;		/* no header at all */
		body_at = rh->buf[0] == '\n' ? 1 : 2;
	}
	for (size_t i = from; !found && i + 1 < rh->len; i++) {
		if (rh->buf[i] != '\n')
			continue;
		if (rh->buf[i + 1] == '\n') {
			found = 1;
			hdr_end = i + 1;
			body_at = i + 2;
		} else if (rh->buf[i + 1] == '\r' && i + 2 < rh->len && rh->buf[i + 2] == '\n') {
			found = 1;
			hdr_end = i + 1;
			body_at = i + 3;
		}
	}
	if (!found)
		return 0;
	rh->state = RAWHDR_DONE;
	if (milter_dkim_raw_fields(d, rh->buf, hdr_end) != 0)
		return -1;
	return body_at < rh->len ? milter_dkim_body(d, (unsigned char *)rh->buf + body_at,
	    rh->len - body_at) : 0;
}

int
milter_dkim_raw_end(DKIM *d, struct milter_rawhdr *rh)
{
	if (rh->state != RAWHDR_COLLECT)
		return 0;
	rh->state = RAWHDR_DONE;
	return milter_dkim_raw_fields(d, rh->buf ? rh->buf : "", rh->len);
}

void
milter_dkim_raw_free(struct milter_rawhdr *rh)
{
	free(rh->buf);
	memset(rh, 0, sizeof *rh);
}

int
milter_dkim_finish(DKIM *d, char *out, size_t outlen, const char *sep)
{
	DKIM_SIGINFO **sigs = NULL;
	DKIM_STAT st;
	int nsigs = 0, n = 0;
	size_t o = 0;

	out[0] = 0;
	st = dkim_eom(d, NULL);
	if (st == DKIM_STAT_NOSIG) {
		snprintf(out, outlen, "dkim=none");
		return 1;
	}
	if (dkim_getsiglist(d, &sigs, &nsigs) != DKIM_STAT_OK || nsigs <= 0) {
		snprintf(out, outlen, "dkim=%s",
		    st == DKIM_STAT_CANTVRFY ? "temperror" : "none");
		return 1;
	}
	for (int i = 0; i < nsigs && i < 8; i++) {
		char dom[256], sel[128], b[16] = "";
		unsigned char sub[16];
		size_t sl = sizeof sub - 1;
		int w;

		milter_dkim_token(dom, sizeof dom, (const char *)dkim_sig_getdomain(sigs[i]));
		milter_dkim_token(sel, sizeof sel, (const char *)dkim_sig_getselector(sigs[i]));
		if (dkim_get_sigsubstring(d, sigs[i], (char *)sub, &sl) == DKIM_STAT_OK) {
			sub[sl < sizeof sub ? sl : sizeof sub - 1] = 0;
			milter_dkim_token(b, 9, (const char *)sub);
		}
		w = snprintf(out + o, outlen - o, "%sdkim=%s header.d=%s header.s=%s%s%s",
		    n ? sep : "", milter_dkim_result(sigs[i]), dom[0] ? dom : "unknown",
		    sel[0] ? sel : "unknown", b[0] ? " header.b=" : "", b);
		if (w < 0 || (size_t)w >= outlen - o)
			break;
		o += (size_t)w;
		n++;
	}
	return n;
}

void
milter_dkim_free(DKIM *d)
{
	if (d && dkim_free(d) != DKIM_STAT_OK)
		log_debug("dkim_free failed");
}

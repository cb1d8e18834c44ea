/*
 * milter_dkim.c — DKIM verification for tailwart-milter with libopendkim:
 * one DKIM_LIB for the process (built at start-up, read-only afterwards;
 * libopendkim handles are per message and used by one thread at a time),
 * one DKIM verify handle per message, fed header by header and in body
 * chunks as libmilter delivers them, results rendered as
 * Authentication-Results fragments (RFC 8601: dkim=pass|fail|neutral|
 * temperror|permerror, header.d, header.s, header.b).
 * Keys come from DNS (libopendkim's resolver; `resolver = ADDR:PORT`
 * is handed to it) or, for tests, from a file (milter_dkim_keys).
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
	} else if (s->pc.resolver && strcmp(s->pc.resolver, "system") != 0) {
		if (dkim_dns_nslist(lib, s->pc.resolver) != DKIM_DNS_SUCCESS)
			log_warn("milter dkim: cannot use resolver %s for DKIM keys; "
			    "using the system resolver", s->pc.resolver);
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

int
milter_dkim_finish(DKIM *d, char *out, size_t outlen)
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
		    n ? ";\n\t" : "", milter_dkim_result(sigs[i]), dom[0] ? dom : "unknown",
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

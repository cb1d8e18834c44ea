/*
 * relay_dkim — sign a spooled message with libopendkim.
 *
 * The message is read back from the incoming file in 64K pieces (it is in
 * the page cache: it was just written), fed to dkim_chunk(), and the
 * DKIM-Signature header is returned with CRLF line ends. Headers signed:
 * the usual user-visible and threading headers; From is over-signed
 * (listed once more than it appears) so nobody can add a second From.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <opendkim/dkim.h>

#include "relay_dkim.h"
#include "relay_spool.h"

static const char *const relay_dkim_hdrs[] = {
	"from", "sender", "reply-to", "subject", "date", "message-id", "to", "cc",
	"mime-version", "content-type", "content-transfer-encoding",
	"content-disposition", "in-reply-to", "references", "list-id",
	"list-unsubscribe", "list-unsubscribe-post", NULL
};
static const char *const relay_dkim_over[] = { "from", NULL };

int
relay_dkim_from_domain(const char *h, size_t len, char *dom, size_t domlen)
{
	size_t i = 0;

	while (i < len) {
		size_t eol = i;
		while (eol < len && h[eol] != '\n')
			eol++;
		if (eol - i <= 2)	/* empty line: end of headers */
			return -1;
		if (eol - i > 5 && strncasecmp(h + i, "from:", 5) == 0) {
			/* unfold: the value continues on lines starting with a blank */
			size_t end = eol;
			while (end + 1 < len && (h[end + 1] == ' ' || h[end + 1] == '\t')) {
				end++;
				while (end < len && h[end] != '\n')
					end++;
			}
			const char *v = h + i + 5, *ve = h + end, *at = NULL, *lt;
			lt = memchr(v, '<', (size_t)(ve - v));
			if (lt) {
				const char *gt = memchr(lt, '>', (size_t)(ve - lt));
				if (gt == NULL)
					return -1;
				v = lt + 1;
				ve = gt;
			}
			for (const char *p = v; p < ve; p++)
				if (*p == '@')
					at = p;
			if (at == NULL)
				return -1;
			size_t n = 0;
			for (const char *p = at + 1; p < ve && n + 1 < domlen; p++) {
				if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' ||
				    *p == '>' || *p == ',' || *p == ';' || *p == ')')
					break;
				dom[n++] = *p;
			}
			dom[n] = '\0';
			return n > 0 ? 0 : -1;
		}
		i = eol + 1;
	}
	return -1;
}

static DKIM_LIB *
lib_open(char *why, size_t whylen)
{
	DKIM_LIB *lib = dkim_init(NULL, NULL);

	if (lib == NULL) {
		snprintf(why, whylen, "dkim_init failed");
		return NULL;
	}
	if (dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS,
	    (void *)relay_dkim_hdrs, sizeof(char **)) != DKIM_STAT_OK ||
	    dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS,
	    (void *)relay_dkim_over, sizeof(char **)) != DKIM_STAT_OK) {
		snprintf(why, whylen, "dkim_options failed");
		dkim_close(lib);
		return NULL;
	}
	return lib;
}

/* Feed `src` (fd range or memory) into a signing handle; return the header. */
static enum relay_dkim_result
sign_common(DKIM_LIB *lib, const struct relay_dkim_key *k, const char *id,
    int fd, off_t off, off_t len, const char *mem, char **hdr, size_t *hdrlen,
    char *why, size_t whylen)
{
	DKIM_STAT st = DKIM_STAT_OK;
	DKIM *d;
	unsigned char *sig = NULL;
	size_t siglen = 0;
	char *buf = NULL;
	enum relay_dkim_result rc = RELAY_DKIM_ERROR;
	const size_t piece = 65536;

	d = dkim_sign(lib, (const unsigned char *)id, NULL,
	    (dkim_sigkey_t)k->key, (const unsigned char *)k->selector,
	    (const unsigned char *)k->domain, DKIM_CANON_RELAXED,
	    DKIM_CANON_RELAXED, DKIM_SIGN_RSASHA256, -1, &st);
	if (d == NULL) {
		snprintf(why, whylen, "dkim_sign: %s", dkim_getresultstr(st));
		return RELAY_DKIM_ERROR;
	}
	if (mem == NULL && (buf = malloc(piece)) == NULL) {
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	for (off_t done = 0; done < len; ) {
		size_t n = (size_t)(len - done) < piece ? (size_t)(len - done) : piece;
		unsigned char *p;
		if (mem)
			p = (unsigned char *)(uintptr_t)(mem + done);
		else {
			if (relay_spool_pread(fd, buf, n, off + done) != 0) {
				snprintf(why, whylen, "read back failed");
				goto out;
			}
			p = (unsigned char *)buf;
		}
		st = dkim_chunk(d, p, n);
		if (st != DKIM_STAT_OK) {
			snprintf(why, whylen, "dkim_chunk: %s", dkim_getresultstr(st));
			goto out;
		}
		done += (off_t)n;
	}
	if ((st = dkim_chunk(d, NULL, 0)) != DKIM_STAT_OK ||
	    (st = dkim_eom(d, NULL)) != DKIM_STAT_OK) {
		const char *e = dkim_geterror(d);
		snprintf(why, whylen, "dkim_eom: %s%s%s", dkim_getresultstr(st),
		    e ? ": " : "", e ? e : "");
		goto out;
	}
	st = dkim_getsighdr_d(d, strlen(DKIM_SIGNHEADER) + 2, &sig, &siglen);
	if (st != DKIM_STAT_OK || sig == NULL) {
		snprintf(why, whylen, "dkim_getsighdr: %s", dkim_getresultstr(st));
		goto out;
	}
	/* "DKIM-Signature: " + value with LF folding turned into CRLF + CRLF */
	{
		size_t cap = strlen(DKIM_SIGNHEADER) + 2 + siglen * 2 + 3, n = 0;
		char *h = malloc(cap);
		if (h == NULL) {
			snprintf(why, whylen, "out of memory");
			goto out;
		}
		n = (size_t)snprintf(h, cap, "%s: ", DKIM_SIGNHEADER);
		for (size_t i = 0; i < siglen; i++) {
			if (sig[i] == '\r')
				continue;
			if (sig[i] == '\n')
				h[n++] = '\r';
			h[n++] = (char)sig[i];
		}
		h[n++] = '\r';
		h[n++] = '\n';
		h[n] = '\0';
		*hdr = h;
		*hdrlen = n;
	}
	rc = RELAY_DKIM_SIGNED;
out:
	free(buf);
	(void)dkim_free(d);
	return rc;
}

enum relay_dkim_result
relay_dkim_sign(const struct relay_config *cfg, const char *id, int fd,
    off_t off, off_t len, char **hdr, size_t *hdrlen, char *why, size_t whylen)
{
	char head[65536], dom[256];
	size_t hl = len < (off_t)sizeof(head) ? (size_t)len : sizeof(head);
	const struct relay_dkim_key *k;
	enum relay_dkim_result rc;
	DKIM_LIB *lib;

	*hdr = NULL;
	*hdrlen = 0;
	if (cfg->ndkim == 0)
		return RELAY_DKIM_NOKEY;
	if (relay_spool_pread(fd, head, hl, off) != 0) {
		snprintf(why, whylen, "read back failed");
		return RELAY_DKIM_ERROR;
	}
	if (relay_dkim_from_domain(head, hl, dom, sizeof(dom)) != 0)
		return RELAY_DKIM_NOKEY;
	k = relay_config_dkim_key(cfg, dom);
	if (k == NULL)
		return RELAY_DKIM_NOKEY;
	if ((lib = lib_open(why, whylen)) == NULL)
		return RELAY_DKIM_ERROR;
	{
		/* the `*` key signs as the sender's own domain (d=From domain) */
		struct relay_dkim_key kk = *k;
		if (strcmp(kk.domain, "*") == 0)
			kk.domain = dom;
		rc = sign_common(lib, &kk, id, fd, off, len, NULL, hdr, hdrlen, why, whylen);
	}
	dkim_close(lib);
	return rc;
}

int
relay_dkim_check_keys(const struct relay_config *cfg, char *why, size_t whylen)
{
	static const char msg[] = "From: <t@example.invalid>\r\nSubject: t\r\n\r\nt\r\n";
	DKIM_LIB *lib;
	int rc = 0;

	if (cfg->ndkim == 0)
		return 0;
	if ((lib = lib_open(why, whylen)) == NULL)
		return -1;
	for (size_t i = 0; i < cfg->ndkim && rc == 0; i++) {
		char *h = NULL, w[256];
		size_t hl = 0;
		struct relay_dkim_key k = cfg->dkim[i];
		if (strcmp(k.domain, "*") == 0)
			k.domain = (char *)(uintptr_t)"example.invalid";
		if (sign_common(lib, &k, "check", -1, 0, (off_t)strlen(msg), msg,
		    &h, &hl, w, sizeof(w)) != RELAY_DKIM_SIGNED) {
			snprintf(why, whylen, "dkim key %s for %s: %s", cfg->dkim[i].keyfile,
			    cfg->dkim[i].domain, w);
			rc = -1;
		}
		free(h);
	}
	dkim_close(lib);
	return rc;
}

/*
 * milter_ar.c — Authentication-Results helpers for tailwart-milter:
 *
 *   milter_ar_authserv_id()  the authserv-id of an A-R value, parsed as
 *                            RFC 8601 section 2.2 says: [CFWS] then a
 *                            `value` (RFC 2045: a token or a quoted-string,
 *                            quoted-pairs undone); comments nest and may
 *                            hold quoted-pairs; folding whitespace (the
 *                            CR/LF the MTA leaves in a value) is skipped.
 *   milter_ar_ours()         is that id ours (case-insensitive)? Such a
 *                            header reaching us is forged and is removed.
 *   milter_ar_note()         remember the index of a forged one (no limit:
 *                            every forged header goes).
 *
 * Pure functions over caller memory; nothing here keeps state.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "milter.h"

static int
ar_wsp(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* Skip CFWS from p; NULL when a comment or quoted-pair is unterminated. */
static const char *
ar_cfws(const char *p)
{
	for (;;) {
		while (ar_wsp(*p))
			p++;
		if (*p != '(')
			return p;
		for (int depth = 0;; p++) {
			if (*p == 0)
				return NULL;
			if (*p == '\\') {
				if (*++p == 0)
					return NULL;
			} else if (*p == '(')
				depth++;
			else if (*p == ')' && --depth == 0) {
				p++;
				break;
			}
		}
	}
}

/* RFC 2045 tspecials, space and CTLs end a token. */
static int
ar_token_char(unsigned char ch)
{
	return ch > ' ' && ch < 127 && strchr("()<>@,;:\\\"/[]?=", ch) == NULL;
}

int
milter_ar_authserv_id(const char *value, char *out, size_t len)
{
	const char *p = ar_cfws(value);
	size_t o = 0;

	if (len == 0)
		return -1;
	out[0] = 0;
	if (p == NULL || *p == 0)
		return -1;
	if (*p == '"') {
		for (p++; *p != '"'; p++) {
			if (*p == 0)
				return -1;
			if (*p == '\\' && *++p == 0)
				return -1;
			if (*p == '\r' || *p == '\n')
				continue;	/* folding inside the quotes */
			if (o + 1 >= len)
				return -1;
			out[o++] = *p;
		}
	} else {
		for (; ar_token_char((unsigned char)*p); p++) {
			if (o + 1 >= len)
				return -1;
			out[o++] = *p;
		}
	}
	out[o] = 0;
	return o > 0 ? 0 : -1;
}

int
milter_ar_ours(const char *value, const char *id)
{
	char got[256];

	return milter_ar_authserv_id(value, got, sizeof got) == 0 &&
	    strcasecmp(got, id) == 0;
}

int
milter_ar_note(struct milter_conn *c, unsigned index)
{
	if (c->nforged == c->forged_cap) {
		unsigned cap = c->forged_cap ? 2 * c->forged_cap : 16;
		unsigned *n = realloc(c->ar_forged, cap * sizeof *n);

		if (n == NULL)
			return -1;
		c->ar_forged = n;
		c->forged_cap = cap;
	}
	c->ar_forged[c->nforged++] = index;
	return 0;
}

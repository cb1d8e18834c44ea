/*
 * smtp — SMTP syntax shared by the gate, the relay and tests: command verb
 * lookup, path and ESMTP-parameter parsing (RFC 5321 §4.1.2, RFC 1869),
 * reply parsing, dot-stuffing, and a small blocking SMTP client on top of
 * struct io (used by the gate's backend hand-off and the relay's delivery).
 *
 * Parsers take NUL-terminated lines without CRLF and return 0 / -1 with a
 * constant reason string; results point into caller-owned storage.
 */
#ifndef LIB_SMTP_H
#define LIB_SMTP_H

#include <stddef.h>
#include "io.h"

#define SMTP_LINE_MAX		1000	/* RFC 5321 4.5.3.1.4/5, incl. CRLF */
#define SMTP_PATH_MAX		256	/* 4.5.3.1.3 */
#define SMTP_REPLY_MAX		8192	/* all lines of one reply */
#define SMTP_PARAMS_MAX		16

/* Split "VERB args": verb is matched case-insensitively against a table by
 * the caller; *args points after the blanks (or at ""). Returns the verb
 * length. */
size_t smtp_verb(const char *line, const char **args);

struct smtp_param {
	char	*key;		/* upper-cased in place */
	char	*value;		/* NULL if no '=' */
};

struct smtp_path {
	char			 addr[SMTP_PATH_MAX + 1]; /* without <>; "" = null path */
	struct smtp_param	 params[SMTP_PARAMS_MAX];
	size_t			 nparams;
};

/* Parse `FROM:<a@b> PARAM=V ...` (prefix "FROM:" or "TO:", case-insensitive,
 * blanks after the colon tolerated as most MTAs do). `buf` is modified in
 * place (params point into it). allow_null: MAIL accepts <>. */
int smtp_parse_path(char *buf, const char *prefix, int allow_null,
	    struct smtp_path *p, const char **why);

/* Is this a syntactically valid mailbox (local@domain, or <> when empty)?
 * Accepts UTF-8 (SMTPUTF8) when utf8 is set. */
int smtp_valid_mailbox(const char *addr, int utf8);
/* EHLO/HELO argument: a domain or an address literal. */
int smtp_valid_helo(const char *s);

/* A parsed reply: code, and all lines joined with CRLF (each line as sent,
 * including "250-" prefixes), ready to be relayed verbatim. */
struct smtp_reply {
	int	code;			/* 0 if unparsable */
	char	text[SMTP_REPLY_MAX];	/* raw lines with CRLF */
	size_t	len;
	char	enhanced[16];		/* "5.1.1" or "" */
	unsigned nlines;
};

enum smtp_rstatus { SMTP_R_OK, SMTP_R_BAD, SMTP_R_EOF, SMTP_R_TIMEOUT, SMTP_R_ERROR };

/* Read one (possibly multi-line) reply. A reply that does not follow the
 * grammar (code mismatch across lines, no code, overlong) is SMTP_R_BAD. */
enum smtp_rstatus smtp_read_reply(struct io *io, struct smtp_reply *r);
/* The text of line i (without the "250-" prefix and CRLF) for EHLO parsing. */
int smtp_reply_line(const struct smtp_reply *r, unsigned i, const char **p, size_t *len);

/* EHLO capabilities seen on a server. */
struct smtp_caps {
	unsigned	pipelining:1, size:1, eightbit:1, smtputf8:1, chunking:1,
			starttls:1, enhanced:1, dsn:1, auth_plain:1, auth_login:1,
			xclient:1;
	unsigned long long size_max;
	char		xclient_attrs[256];
};
void smtp_parse_caps(const struct smtp_reply *ehlo, struct smtp_caps *caps);

/* Dot-stuffing for DATA: writes `line` (a chunk; at_bol says whether it
 * starts a line) to io, doubling a leading '.'. Returns 0 / -1. */
int smtp_write_stuffed(struct io *io, const char *p, size_t len, int at_bol);

/* Send a command line (CRLF appended) and read its reply. */
enum smtp_rstatus smtp_command(struct io *io, struct smtp_reply *r,
	    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif

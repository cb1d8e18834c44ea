/*
 * config — the `key = value` grammar shared by every tailwart program.
 *
 * Grammar (DESIGN.md, Configuration):
 *   - `#` starts a comment only at the start of a line (after blanks);
 *     a `#` inside a value is part of the value (passwords contain `#`).
 *   - `key = value`; a key may carry an index: `rate_limit[203.0.113.0/24]`.
 *   - a line starting with a blank continues the previous value (joined
 *     with one space).
 *   - `%{env:NAME}%` is replaced by the environment variable NAME; an unset
 *     variable is an error.
 *   - a key may appear once (per index); a repeat is an error.
 *
 * conf_load() parses a file into a list of entries; conf_apply() validates
 * the entries against a program's schema (a table of struct conf_key) and
 * stores typed values into the program's settings struct. Errors are
 * "file:line: message" strings written into a caller buffer.
 *
 * Ownership: struct conf owns its strings; conf_free() releases them.
 * CT_STR/CT_LIST values stored by conf_apply() are strdup'ed and owned by
 * the settings struct; conf_release() frees them using the same schema.
 */
#ifndef LIB_CONFIG_H
#define LIB_CONFIG_H

#include <stddef.h>
#include <stdint.h>

struct conf_entry {
	char	*key;		/* without the index */
	char	*index;		/* text inside [...], or NULL */
	char	*value;		/* after %{env:}% substitution, trimmed */
	int	 line;
	int	 used;		/* set by conf_apply / conf_take */
};

struct conf {
	char			*file;
	struct conf_entry	*v;
	size_t			 n;
};

enum conf_type {
	CT_STR,		/* char * (strdup'ed) */
	CT_UINT,	/* unsigned long long */
	CT_DURATION,	/* unsigned (seconds): 30s 5m 4h 35d, bare number = s */
	CT_SIZE,	/* size_t: 512, 10K, 50M, 1G */
	CT_BOOL,	/* int: yes/no, true/false, on/off, 1/0 */
	CT_ENUM,	/* int: index into `choices` ("a|b|c") */
	CT_LIST,	/* struct conf_list: comma separated, trimmed, non-empty */
};

struct conf_list {
	char	**v;
	size_t	  n;
};

struct conf_key {
	const char	*name;
	enum conf_type	 type;
	const char	*def;		/* default as text; NULL = required */
	size_t		 off;		/* offsetof(settings, field) */
	const char	*choices;	/* CT_ENUM: "ignore|log|enforce" */
	unsigned long long min, max;	/* CT_UINT/CT_DURATION/CT_SIZE; 0,0 = any */
};

#define CONF_OPTIONAL	""		/* def for "may be empty/unset" */

int  conf_load(const char *path, struct conf *out, char *err, size_t errlen);
/* Parse from memory (tests); `name` is used in error messages. */
int  conf_load_buf(const char *name, const char *buf, size_t len,
	    struct conf *out, char *err, size_t errlen);
void conf_free(struct conf *c);

/* Apply `schema` (terminated by a {NULL} row) to `c`, filling `target`.
 * Indexed entries are not handled here (see conf_take). After this,
 * conf_check_unused() reports any entry nobody consumed. */
int  conf_apply(struct conf *c, const struct conf_key *schema, void *target,
	    char *err, size_t errlen);
void conf_release(const struct conf_key *schema, void *target);
/* Mark and return the next unused entry with this key (and any index),
 * or NULL. For indexed keys like rate_limit[...] and program-specific keys. */
struct conf_entry *conf_take(struct conf *c, const char *key);
/* The line where key was set (its first setting), or 0 when it was not. */
int  conf_line(const struct conf *c, const char *key);
int  conf_check_unused(const struct conf *c, char *err, size_t errlen);

/* Value parsers: 0 on success, -1 with a short reason in *why. */
int  conf_parse_uint(const char *s, unsigned long long *v, const char **why);
int  conf_parse_duration(const char *s, unsigned *secs, const char **why);
int  conf_parse_size(const char *s, size_t *v, const char **why);
int  conf_parse_bool(const char *s, int *v, const char **why);
int  conf_split_list(const char *s, struct conf_list *out);
void conf_list_free(struct conf_list *l);

/* Format "file:line: msg" into err. */
void conf_error(char *err, size_t errlen, const struct conf *c, int line,
	    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif

/*
 * config — parser for the `key = value` grammar and schema application.
 * See config.h for the grammar. Everything allocated here is owned by the
 * struct conf (entries) or by the caller's settings struct (conf_apply).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define CONF_MAX_FILE	(4 * 1024 * 1024)

void
conf_error(char *err, size_t errlen, const struct conf *c, int line,
    const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(err, errlen, "%s:%d: ", c->file ? c->file : "config", line);
	if (n < 0 || (size_t)n >= errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* Replace %{env:NAME}% in v; returns a new string or NULL with err set. */
static char *
subst_env(const struct conf *c, int line, const char *v, char *err, size_t errlen)
{
	size_t cap = strlen(v) + 1, len = 0;
	char *out = malloc(cap);
	const char *p = v;

	if (out == NULL) {
		conf_error(err, errlen, c, line, "out of memory");
		return NULL;
	}
	while (*p) {
		if (strncmp(p, "%{env:", 6) == 0) {
			const char *name = p + 6, *end = strstr(name, "}%");
			char nbuf[128];
			const char *val;
			size_t nlen, vlen;

			if (end == NULL || end == name || (size_t)(end - name) >= sizeof(nbuf)) {
				conf_error(err, errlen, c, line, "malformed %%{env:NAME}%%");
				free(out);
				return NULL;
			}
			nlen = (size_t)(end - name);
			memcpy(nbuf, name, nlen);
			nbuf[nlen] = '\0';
			for (size_t i = 0; i < nlen; i++)
				if (!isalnum((unsigned char)nbuf[i]) && nbuf[i] != '_') {
					conf_error(err, errlen, c, line,
					    "bad environment variable name \"%s\"", nbuf);
					free(out);
					return NULL;
				}
			val = getenv(nbuf);
			if (val == NULL) {
				conf_error(err, errlen, c, line,
				    "environment variable %s is not set", nbuf);
				free(out);
				return NULL;
			}
			vlen = strlen(val);
			if (len + vlen + 1 > cap) {
				char *n;
				cap = len + vlen + strlen(end) + 1;
				n = realloc(out, cap);
				if (n == NULL) {
					free(out);
					conf_error(err, errlen, c, line, "out of memory");
					return NULL;
				}
				out = n;
			}
			memcpy(out + len, val, vlen);
			len += vlen;
			p = end + 2;
			continue;
		}
		if (len + 2 > cap) {
			char *n;
			cap = cap * 2 + 2;
			n = realloc(out, cap);
			if (n == NULL) {
				free(out);
				conf_error(err, errlen, c, line, "out of memory");
				return NULL;
			}
			out = n;
		}
		out[len++] = *p++;
	}
	out[len] = '\0';
	return out;
}

static int
valid_key(const char *k)
{
	if (*k == '\0')
		return 0;
	for (; *k; k++)
		if (!islower((unsigned char)*k) && !isdigit((unsigned char)*k) && *k != '_')
			return 0;
	return 1;
}

static int
add_entry(struct conf *c, char *key, char *value, int line, char *err, size_t errlen)
{
	struct conf_entry *e, *nv;
	char *idx = NULL, *br, *v;

	br = strchr(key, '[');
	if (br != NULL) {
		char *close = strchr(br, ']');
		if (close == NULL || close[1] != '\0' || close == br + 1) {
			conf_error(err, errlen, c, line, "malformed index in key \"%s\"", key);
			return -1;
		}
		*br = '\0';
		*close = '\0';
		idx = trim(br + 1);
	}
	if (!valid_key(key)) {
		conf_error(err, errlen, c, line, "malformed key \"%s\"", key);
		return -1;
	}
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->v[i].key, key) == 0 &&
		    ((idx == NULL && c->v[i].index == NULL) ||
		    (idx != NULL && c->v[i].index != NULL && strcmp(idx, c->v[i].index) == 0))) {
			conf_error(err, errlen, c, line, "%s%s%s%s is set twice (first at line %d)",
			    key, idx ? "[" : "", idx ? idx : "", idx ? "]" : "", c->v[i].line);
			return -1;
		}
	v = subst_env(c, line, value, err, errlen);
	if (v == NULL)
		return -1;
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p < 0x20 && *p != '\t') {
			conf_error(err, errlen, c, line, "%s: control character in value", key);
			free(v);
			return -1;
		}
	nv = realloc(c->v, (c->n + 1) * sizeof(*c->v));
	if (nv == NULL) {
		free(v);
		conf_error(err, errlen, c, line, "out of memory");
		return -1;
	}
	c->v = nv;
	e = &c->v[c->n];
	memset(e, 0, sizeof(*e));
	e->key = strdup(key);
	e->index = idx ? strdup(idx) : NULL;
	e->value = v;
	e->line = line;
	c->n++;
	if (e->key == NULL || (idx && e->index == NULL)) {
		conf_error(err, errlen, c, line, "out of memory");
		return -1;
	}
	return 0;
}

int
conf_load_buf(const char *name, const char *buf, size_t len, struct conf *out,
    char *err, size_t errlen)
{
	char *copy, *p, *key = NULL, *val = NULL;
	size_t vlen = 0;
	int lineno = 0, keyline = 0, rc = 0;

	memset(out, 0, sizeof(*out));
	out->file = strdup(name);
	copy = malloc(len + 1);
	if (out->file == NULL || copy == NULL) {
		free(copy);
		snprintf(err, errlen, "%s: out of memory", name);
		conf_free(out);
		return -1;
	}
	memcpy(copy, buf, len);
	copy[len] = '\0';
	if (memchr(copy, '\0', len) != NULL) {
		free(copy);
		snprintf(err, errlen, "%s: contains a NUL byte", name);
		conf_free(out);
		return -1;
	}

	for (p = copy; p != NULL && rc == 0; ) {
		char *nl = strchr(p, '\n'), *line = p, *t;

		if (nl)
			*nl = '\0';
		p = nl ? nl + 1 : NULL;
		lineno++;
		if (p == NULL && *line == '\0')
			break;
		t = trim(line);
		if (*t == '\0' || *t == '#')
			continue;
		if (line[0] == ' ' || line[0] == '\t') {
			/* continuation of the previous value */
			char *nv;
			size_t tl = strlen(t);
			if (key == NULL) {
				conf_error(err, errlen, out, lineno,
				    "continuation line without a key before it");
				rc = -1;
				break;
			}
			nv = realloc(val, vlen + tl + 2);
			if (nv == NULL) {
				conf_error(err, errlen, out, lineno, "out of memory");
				rc = -1;
				break;
			}
			val = nv;
			if (vlen > 0)
				val[vlen++] = ' ';
			memcpy(val + vlen, t, tl + 1);
			vlen += tl;
			continue;
		}
		if (key != NULL) {
			rc = add_entry(out, key, val, keyline, err, errlen);
			free(key);
			free(val);
			key = val = NULL;
			if (rc != 0)
				break;
		}
		{
			char *eq = strchr(t, '=');
			if (eq == NULL) {
				conf_error(err, errlen, out, lineno,
				    "expected \"key = value\", got \"%.40s\"", t);
				rc = -1;
				break;
			}
			*eq = '\0';
			key = strdup(trim(t));
			val = strdup(trim(eq + 1));
			if (key == NULL || val == NULL) {
				conf_error(err, errlen, out, lineno, "out of memory");
				rc = -1;
				break;
			}
			vlen = strlen(val);
			keyline = lineno;
		}
	}
	if (rc == 0 && key != NULL)
		rc = add_entry(out, key, val, keyline, err, errlen);
	free(key);
	free(val);
	free(copy);
	if (rc != 0) {
		conf_free(out);
		return -1;
	}
	return 0;
}

int
conf_load(const char *path, struct conf *out, char *err, size_t errlen)
{
	FILE *f;
	char *buf;
	size_t n;
	int rc;

	memset(out, 0, sizeof(*out));
	f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	buf = malloc(CONF_MAX_FILE + 1);
	if (buf == NULL) {
		fclose(f);
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	n = fread(buf, 1, CONF_MAX_FILE + 1, f);
	if (ferror(f) || n > CONF_MAX_FILE) {
		snprintf(err, errlen, "%s: %s", path, ferror(f) ? "read error" : "file too large");
		fclose(f);
		free(buf);
		return -1;
	}
	fclose(f);
	rc = conf_load_buf(path, buf, n, out, err, errlen);
	free(buf);
	return rc;
}

void
conf_free(struct conf *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].key);
		free(c->v[i].index);
		free(c->v[i].value);
	}
	free(c->v);
	free(c->file);
	memset(c, 0, sizeof(*c));
}

int
conf_parse_uint(const char *s, unsigned long long *v, const char **why)
{
	unsigned long long n;
	char *end;

	if (!isdigit((unsigned char)*s)) {
		*why = "not a number";
		return -1;
	}
	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0') {
		*why = errno ? "number out of range" : "not a number";
		return -1;
	}
	*v = n;
	return 0;
}

static int
parse_scaled(const char *s, unsigned long long *v, const char *units,
    const unsigned long long *mult, const char **why)
{
	char *end;
	unsigned long long n, m = 1;

	if (!isdigit((unsigned char)*s)) {
		*why = "not a number";
		return -1;
	}
	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno != 0) {
		*why = "number out of range";
		return -1;
	}
	if (*end != '\0') {
		const char *u = strchr(units, *end);
		if (u == NULL || end[1] != '\0') {
			*why = "unknown unit";
			return -1;
		}
		m = mult[u - units];
	}
	if (m != 0 && n > ~0ULL / m) {
		*why = "number out of range";
		return -1;
	}
	*v = n * m;
	return 0;
}

int
conf_parse_duration(const char *s, unsigned *secs, const char **why)
{
	static const unsigned long long mult[] = { 1, 60, 3600, 86400, 604800 };
	unsigned long long v;

	if (parse_scaled(s, &v, "smhdw", mult, why) != 0) {
		if (*why && strcmp(*why, "unknown unit") == 0)
			*why = "unknown unit (use s, m, h, d or w)";
		return -1;
	}
	if (v > 0xffffffffULL) {
		*why = "duration out of range";
		return -1;
	}
	*secs = (unsigned)v;
	return 0;
}

int
conf_parse_size(const char *s, size_t *v, const char **why)
{
	static const unsigned long long mult[] = { 1024ULL, 1024ULL, 1048576ULL,
	    1048576ULL, 1073741824ULL, 1073741824ULL };
	unsigned long long n;

	if (parse_scaled(s, &n, "kKmMgG", mult, why) != 0) {
		if (*why && strcmp(*why, "unknown unit") == 0)
			*why = "unknown unit (use K, M or G)";
		return -1;
	}
	if (n > (unsigned long long)SIZE_MAX) {
		*why = "size out of range";
		return -1;
	}
	*v = (size_t)n;
	return 0;
}

int
conf_parse_bool(const char *s, int *v, const char **why)
{
	if (!strcasecmp(s, "yes") || !strcasecmp(s, "true") || !strcasecmp(s, "on") || !strcmp(s, "1"))
		*v = 1;
	else if (!strcasecmp(s, "no") || !strcasecmp(s, "false") || !strcasecmp(s, "off") || !strcmp(s, "0"))
		*v = 0;
	else {
		*why = "expected yes or no";
		return -1;
	}
	return 0;
}

int
conf_split_list(const char *s, struct conf_list *out)
{
	char *copy = strdup(s), *p, *save = NULL;

	memset(out, 0, sizeof(*out));
	if (copy == NULL)
		return -1;
	for (p = strtok_r(copy, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		char *t = trim(p), **nv;
		if (*t == '\0')
			continue;
		nv = realloc(out->v, (out->n + 1) * sizeof(char *));
		if (nv == NULL)
			goto fail;
		out->v = nv;
		out->v[out->n] = strdup(t);
		if (out->v[out->n] == NULL)
			goto fail;
		out->n++;
	}
	free(copy);
	return 0;
fail:
	free(copy);
	conf_list_free(out);
	return -1;
}

void
conf_list_free(struct conf_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int
enum_index(const char *choices, const char *v)
{
	const char *p = choices;
	int i = 0;
	size_t vl = strlen(v);

	while (*p) {
		const char *bar = strchr(p, '|');
		size_t l = bar ? (size_t)(bar - p) : strlen(p);
		if (l == vl && strncasecmp(p, v, l) == 0)
			return i;
		i++;
		if (bar == NULL)
			break;
		p = bar + 1;
	}
	return -1;
}

static int
apply_one(const struct conf_key *k, const char *v, void *target, const char **why)
{
	char *field = (char *)target + k->off;
	unsigned long long n = 0;

	switch (k->type) {
	case CT_STR: {
		char *d = strdup(v);
		if (d == NULL) {
			*why = "out of memory";
			return -1;
		}
		free(*(char **)field);
		*(char **)field = d;
		return 0;
	}
	case CT_UINT:
		if (conf_parse_uint(v, &n, why) != 0)
			return -1;
		break;
	case CT_DURATION: {
		unsigned s;
		if (conf_parse_duration(v, &s, why) != 0)
			return -1;
		n = s;
		break;
	}
	case CT_SIZE: {
		size_t s;
		if (conf_parse_size(v, &s, why) != 0)
			return -1;
		n = s;
		break;
	}
	case CT_BOOL:
		return conf_parse_bool(v, (int *)field, why);
	case CT_ENUM: {
		int i = enum_index(k->choices, v);
		if (i < 0) {
			*why = k->choices;
			return -1;
		}
		*(int *)field = i;
		return 0;
	}
	case CT_LIST: {
		struct conf_list l;
		if (conf_split_list(v, &l) != 0) {
			*why = "out of memory";
			return -1;
		}
		conf_list_free((struct conf_list *)field);
		*(struct conf_list *)field = l;
		return 0;
	}
	}
	if ((k->min || k->max) && (n < k->min || n > k->max)) {
		*why = "out of range";
		return -1;
	}
	switch (k->type) {
	case CT_UINT:
		*(unsigned long long *)field = n;
		break;
	case CT_DURATION:
		*(unsigned *)field = (unsigned)n;
		break;
	case CT_SIZE:
		*(size_t *)field = (size_t)n;
		break;
	default:
		break;
	}
	return 0;
}

int
conf_apply(struct conf *c, const struct conf_key *schema, void *target,
    char *err, size_t errlen)
{
	for (const struct conf_key *k = schema; k->name; k++) {
		struct conf_entry *e = NULL;
		const char *why = NULL;

		for (size_t i = 0; i < c->n; i++)
			if (c->v[i].index == NULL && strcmp(c->v[i].key, k->name) == 0) {
				e = &c->v[i];
				break;
			}
		if (e == NULL) {
			if (k->def == NULL) {
				snprintf(err, errlen, "%s: missing required key \"%s\"",
				    c->file ? c->file : "config", k->name);
				return -1;
			}
			if (apply_one(k, k->def, target, &why) != 0) {
				snprintf(err, errlen, "%s: bad built-in default for %s: %s",
				    c->file ? c->file : "config", k->name, why);
				return -1;
			}
			continue;
		}
		e->used = 1;
		if (*e->value == '\0' && k->def != NULL && *k->def == '\0' &&
		    (k->type == CT_STR || k->type == CT_LIST)) {
			(void)apply_one(k, "", target, &why);
			continue;
		}
		if (*e->value == '\0') {
			conf_error(err, errlen, c, e->line, "%s: empty value", k->name);
			return -1;
		}
		if (apply_one(k, e->value, target, &why) != 0) {
			if (k->type == CT_ENUM)
				conf_error(err, errlen, c, e->line,
				    "%s: bad value \"%s\" (expected %s)", k->name, e->value, why);
			else
				conf_error(err, errlen, c, e->line,
				    "%s: bad value \"%s\": %s", k->name, e->value, why);
			return -1;
		}
	}
	return 0;
}

void
conf_release(const struct conf_key *schema, void *target)
{
	for (const struct conf_key *k = schema; k->name; k++) {
		char *field = (char *)target + k->off;
		if (k->type == CT_STR) {
			free(*(char **)field);
			*(char **)field = NULL;
		} else if (k->type == CT_LIST)
			conf_list_free((struct conf_list *)field);
	}
}

int
conf_line(const struct conf *c, const char *key)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->v[i].key, key) == 0)
			return c->v[i].line;
	return 0;
}

struct conf_entry *
conf_take(struct conf *c, const char *key)
{
	for (size_t i = 0; i < c->n; i++)
		if (!c->v[i].used && strcmp(c->v[i].key, key) == 0) {
			c->v[i].used = 1;
			return &c->v[i];
		}
	return NULL;
}

int
conf_check_unused(const struct conf *c, char *err, size_t errlen)
{
	for (size_t i = 0; i < c->n; i++)
		if (!c->v[i].used) {
			if (c->v[i].index)
				conf_error(err, errlen, c, c->v[i].line,
				    "unknown key \"%s[%s]\"", c->v[i].key, c->v[i].index);
			else
				conf_error(err, errlen, c, c->v[i].line,
				    "unknown key \"%s\"", c->v[i].key);
			return -1;
		}
	return 0;
}

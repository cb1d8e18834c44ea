/*
 * policy.c — struct policy_result helpers, verdict/mode names, address
 * helpers shared by the checks. See policy.h. No state of its own.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "policy.h"

void
policy_result_init(struct policy_result *r, const char *check)
{
	memset(r, 0, sizeof(*r));
	r->verdict = POLICY_PASS;
	r->decided = POLICY_PASS;
	r->mode = POLICY_ENFORCE;
	r->check = check;
}

void
policy_result_set(struct policy_result *r, enum policy_verdict v, int code,
    const char *enh, const char *fmt, ...)
{
	va_list ap;

	r->verdict = v;
	r->decided = v;
	r->code = code;
	snprintf(r->enh, sizeof(r->enh), "%s", enh ? enh : "");
	r->text[0] = '\0';
	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(r->text, sizeof(r->text), fmt, ap);
		va_end(ap);
	}
}

void
policy_result_detail(struct policy_result *r, const char *fmt, ...)
{
	va_list ap;
	size_t n = strlen(r->detail);

	if (n + 2 >= sizeof(r->detail))
		return;
	if (n > 0)
		r->detail[n++] = ' ';
	va_start(ap, fmt);
	vsnprintf(r->detail + n, sizeof(r->detail) - n, fmt, ap);
	va_end(ap);
}

enum policy_verdict
policy_result_mode(struct policy_result *r, enum policy_mode m)
{
	r->mode = m;
	if (m == POLICY_IGNORE)
		r->verdict = POLICY_SKIP;
	else if (m == POLICY_LOG &&
	    (r->decided == POLICY_TEMPFAIL || r->decided == POLICY_REJECT))
		r->verdict = POLICY_PASS;
	else
		r->verdict = r->decided;
	return r->verdict;
}

int
policy_result_reply(const struct policy_result *r, char *buf, size_t len)
{
	int n;

	if (len == 0)
		return -1;
	buf[0] = '\0';
	if (r->code == 0)
		return -1;
	if (r->enh[0] != '\0')
		n = snprintf(buf, len, "%d %s %s", r->code, r->enh, r->text);
	else
		n = snprintf(buf, len, "%d %s", r->code, r->text);
	if (n < 0 || (size_t)n >= len)
		return -1;
	return 0;
}

char *
policy_result_format(const struct policy_result *r, char *buf, size_t len)
{
	char reply[POLICY_TEXT_MAX + 32];
	size_t i;

	if (len == 0)
		return buf;
	if (policy_result_reply(r, reply, sizeof(reply)) < 0)
		reply[0] = '\0';
	for (i = 0; reply[i] != '\0'; i++)	/* keep the value quotable */
		if (reply[i] == '"' || (unsigned char)reply[i] < 0x20)
			reply[i] = '\'';
	snprintf(buf, len, "check=%s verdict=%s decided=%s mode=%s%s%s%s%s%s",
	    r->check ? r->check : "?", policy_verdict_name(r->verdict),
	    policy_verdict_name(r->decided), policy_mode_name(r->mode),
	    reply[0] ? " reply=\"" : "", reply, reply[0] ? "\"" : "",
	    r->detail[0] ? " " : "", r->detail);
	return buf;
}

const char *
policy_verdict_name(enum policy_verdict v)
{
	switch (v) {
	case POLICY_PASS:	return "pass";
	case POLICY_SKIP:	return "skip";
	case POLICY_ALLOW:	return "allow";
	case POLICY_TEMPFAIL:	return "tempfail";
	case POLICY_REJECT:	return "reject";
	}
	return "?";
}

const char *
policy_mode_name(enum policy_mode m)
{
	switch (m) {
	case POLICY_IGNORE:	return "ignore";
	case POLICY_LOG:	return "log";
	case POLICY_ENFORCE:	return "enforce";
	}
	return "?";
}

int
policy_mode_parse(const char *s, enum policy_mode *m)
{
	if (strcasecmp(s, "ignore") == 0 || strcasecmp(s, "off") == 0)
		*m = POLICY_IGNORE;
	else if (strcasecmp(s, "log") == 0)
		*m = POLICY_LOG;
	else if (strcasecmp(s, "enforce") == 0)
		*m = POLICY_ENFORCE;
	else
		return -1;
	return 0;
}

int
policy_ip_bytes(const struct sockaddr_storage *ss, unsigned char out[16])
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
		memcpy(out, &sin->sin_addr, 4);
		return AF_INET;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			memcpy(out, s6->sin6_addr.s6_addr + 12, 4);
			return AF_INET;
		}
		memcpy(out, &s6->sin6_addr, 16);
		return AF_INET6;
	}
	return -1;
}

int
policy_ip_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	unsigned char b[16];
	int fam = policy_ip_bytes(ss, b);

	if (fam < 0 || inet_ntop(fam, b, buf, (socklen_t)len) == NULL)
		return -1;
	return 0;
}

int
policy_ip_parse(const char *s, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	if (inet_pton(AF_INET, s, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		return 0;
	}
	return -1;
}

int
policy_net_str(const struct sockaddr_storage *ss, unsigned v4bits,
    unsigned v6bits, char *buf, size_t len)
{
	unsigned char b[16];
	char txt[INET6_ADDRSTRLEN];
	int fam = policy_ip_bytes(ss, b);
	unsigned bits, nbytes, i;
	int n;

	if (fam < 0)
		return -1;
	bits = fam == AF_INET ? v4bits : v6bits;
	nbytes = fam == AF_INET ? 4 : 16;
	if (bits > nbytes * 8)
		bits = nbytes * 8;
	for (i = 0; i < nbytes; i++) {
		if (bits >= (i + 1) * 8)
			continue;
		if (bits <= i * 8)
			b[i] = 0;
		else
			b[i] &= (unsigned char)(0xff << (8 - (bits - i * 8)));
	}
	if (inet_ntop(fam, b, txt, sizeof(txt)) == NULL)
		return -1;
	n = snprintf(buf, len, "%s/%u", txt, bits);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

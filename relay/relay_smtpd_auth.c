/*
 * relay_smtpd_auth — the receiver's AUTH PLAIN/LOGIN and its limits.
 *
 * Offered only after STARTTLS, when smtpd_auth_user is set; the one
 * credential pair is compared in constant time and never logged. Failed
 * attempts are answered late (1 s, 2 s, ... up to 5 s, growing with the
 * session's failures), RELAY_AUTH_SESSION_MAX of them end the session
 * with 421 4.7.0, and the receiver counts failures per client address over
 * all its sessions (relay_auth_*: each session reports its count)
 * so that a client with RELAY_AUTH_CLIENT_MAX failures in the last
 * RELAY_AUTH_WINDOW seconds is turned away with 421 4.7.0 at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/wait.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "io.h"
#include "log.h"
#include "smtpd.h"
#include "relay_smtpd_int.h"

#define reply(s, ...)	((void)smtpd_reply(&(s)->e, __VA_ARGS__))

int
relay_smtpd_auth_blocked(const struct relay_session *s)
{
	return s->auth_prior + s->auth_fails >= RELAY_AUTH_CLIENT_MAX;
}

static int
auth_offered(const struct relay_session *s)
{
	return s->e.tls && !s->authed && relay_config_set(s->cfg->smtpd_auth_user);
}

/* The engine's auth_offer hook: what EHLO advertises now. */
const char *
relay_smtpd_auth_offer(void *ctx)
{
	return auth_offered(ctx) ? "PLAIN LOGIN" : NULL;
}

/* Base64 text to bytes; -1 on bad input. out gets a NUL after the data. */
static int
b64_decode(const char *in, unsigned char *out, size_t outlen, size_t *n)
{
	size_t il = strlen(in), pad = 0;
	int r;

	if (il == 0 || il % 4 != 0 || il / 4 * 3 + 1 > outlen)
		return -1;
	if (in[il - 1] == '=')
		pad++;
	if (il > 1 && in[il - 2] == '=')
		pad++;
	r = EVP_DecodeBlock(out, (const unsigned char *)in, (int)il);
	if (r < 0 || (size_t)r < pad)
		return -1;
	*n = (size_t)r - pad;
	out[*n] = '\0';
	return 0;
}

/* Constant-time comparison of a candidate with the configured secret. */
static int
same_secret(const char *a, size_t al, const char *b)
{
	size_t bl = strlen(b);
	unsigned char x[256], y[256];

	if (al >= sizeof(x) || bl >= sizeof(y))
		return 0;
	memset(x, 0, sizeof(x));
	memset(y, 0, sizeof(y));
	memcpy(x, a, al);
	memcpy(y, b, bl);
	return CRYPTO_memcmp(x, y, sizeof(x)) == 0 && al == bl;
}

/* Read one base64 line of an AUTH exchange ("*" cancels). */
static int
auth_line(struct relay_session *s, unsigned char *out, size_t outlen, size_t *n)
{
	const char *line;
	size_t len;
	char buf[1024];

	(void)io_flush(&s->e.io);
	s->e.io.timeout_ms = smtpd_timeout_ms(&s->e, s->e.conf.timeout_command);
	if (io_getline(&s->e.io, &line, &len) != IO_OK || len < 2 || len > sizeof(buf) ||
	    line[len - 2] != '\r') {
		smtpd_enter(&s->e, SMTPD_QUIT);
		return -1;
	}
	memcpy(buf, line, len - 2);
	buf[len - 2] = '\0';
	if (strcmp(buf, "*") == 0) {
		reply(s, "501 5.7.0 Authentication cancelled");
		return -1;
	}
	if (b64_decode(buf, out, outlen, n) != 0) {
		reply(s, "501 5.5.2 Bad base64 data");
		return -1;
	}
	return 0;
}

static void
auth_result(struct relay_session *s, const char *user, size_t ul, const char *pw, size_t pl)
{
	char q[160];

	if (same_secret(user, ul, s->cfg->smtpd_auth_user) &
	    same_secret(pw, pl, s->cfg->smtpd_auth_password)) {
		s->authed = 1;
		snprintf(s->auth_user, sizeof(s->auth_user), "%.*s", (int)ul, user);
		log_info("%s auth=%s", s->e.id, log_quote(q, sizeof(q), user, ul));
		reply(s, "235 2.7.0 Authentication successful");
		return;
	}
	s->auth_fails++;
	log_info("%s reject reason=auth user=\"%s\" failures=%u client_failures=%u",
	    s->e.id, log_quote(q, sizeof(q), user, ul), s->auth_fails,
	    s->auth_prior + s->auth_fails);
	/* slow down guessing: the answer comes later with every failure */
	(void)io_flush(&s->e.io);
	sleep(s->auth_fails < 5 ? s->auth_fails : 5);
	if (s->auth_fails >= RELAY_AUTH_SESSION_MAX || relay_smtpd_auth_blocked(s)) {
		log_warn("%s reject reason=auth-limit failures=%u client_failures=%u",
		    s->e.id, s->auth_fails, s->auth_prior + s->auth_fails);
		reply(s, "421 4.7.0 Too many failed authentication attempts, try again later");
		smtpd_enter(&s->e, SMTPD_QUIT);
		return;
	}
	/* a failure is a client error too (replied, then counted) */
	smtpd_fail(&s->e, "535 5.7.8 Authentication credentials invalid");
}

/* The engine's auth hook: AUTH in SMTPD_HELO, the exchange on e.io. */
void
relay_smtpd_auth(void *ctx, const char *args)
{
	struct relay_session *s = ctx;
	unsigned char buf[800], pwb[800];
	size_t n = 0, pn = 0;
	const char *sp = strchr(args, ' ');
	size_t ml = sp ? (size_t)(sp - args) : strlen(args);

	if (!auth_offered(s)) {
		reply(s, s->authed ? "503 5.5.1 Already authenticated" :
		    "502 5.5.1 AUTH not available");
		return;
	}
	if (ml == 5 && strncasecmp(args, "PLAIN", 5) == 0) {
		/* initial response, or "=" for an empty one, or ask for it */
		if (sp && strcmp(sp + 1, "=") != 0) {
			if (b64_decode(sp + 1, buf, sizeof(buf), &n) != 0) {
				reply(s, "501 5.5.2 Bad base64 data");
				return;
			}
		} else {
			reply(s, "334 ");
			if (auth_line(s, buf, sizeof(buf), &n) != 0)
				return;
		}
		/* authzid NUL authcid NUL passwd */
		const unsigned char *z1 = memchr(buf, '\0', n);
		const unsigned char *z2 = z1 ? memchr(z1 + 1, '\0', n - (size_t)(z1 + 1 - buf)) : NULL;
		if (z1 == NULL || z2 == NULL) {
			reply(s, "501 5.5.2 Bad PLAIN response");
			return;
		}
		auth_result(s, (const char *)z1 + 1, (size_t)(z2 - z1 - 1),
		    (const char *)z2 + 1, n - (size_t)(z2 + 1 - buf));
	} else if (ml == 5 && strncasecmp(args, "LOGIN", 5) == 0 && sp == NULL) {
		reply(s, "334 VXNlcm5hbWU6");
		if (auth_line(s, buf, sizeof(buf), &n) != 0)
			return;
		reply(s, "334 UGFzc3dvcmQ6");
		if (auth_line(s, pwb, sizeof(pwb), &pn) != 0)
			return;
		auth_result(s, (const char *)buf, n, (const char *)pwb, pn);
	} else {
		reply(s, "504 5.5.4 Unrecognized authentication type");
		return;
	}
	explicit_bzero(buf, sizeof(buf));
	explicit_bzero(pwb, sizeof(pwb));
}

/* ---- the receiver's per-client count ------------------------------------ */

int
relay_auth_table_init(struct relay_auth_table *t, size_t kids)
{
	memset(t, 0, sizeof(*t));
	t->cap = 1024;
	t->kcap = kids > 0 ? kids : 1;
	t->c = calloc(t->cap, sizeof(*t->c));
	t->k = calloc(t->kcap, sizeof(*t->k));
	if (t->c == NULL || t->k == NULL) {
		relay_auth_table_free(t);
		return -1;
	}
	return 0;
}

void
relay_auth_table_free(struct relay_auth_table *t)
{
	free(t->c);
	free(t->k);
	memset(t, 0, sizeof(*t));
}

unsigned
relay_auth_prior(struct relay_auth_table *t, const char *addr, time_t now)
{
	for (size_t i = 0; i < t->nc; i++)
		if (strcmp(t->c[i].addr, addr) == 0)
			return now - t->c[i].since < RELAY_AUTH_WINDOW ? t->c[i].fails : 0;
	return 0;
}

void
relay_auth_started(struct relay_auth_table *t, pid_t pid, const char *addr)
{
	if (t->nk >= t->kcap)
		return;		/* more sessions than max_clients: not counted */
	t->k[t->nk].pid = pid;
	snprintf(t->k[t->nk].addr, sizeof(t->k[t->nk].addr), "%s", addr);
	t->nk++;
}

void
relay_auth_ended(struct relay_auth_table *t, pid_t pid, int st, time_t now)
{
	struct relay_auth_client *c = NULL;
	char addr[64];
	unsigned fails;
	size_t i;

	for (i = 0; i < t->nk && t->k[i].pid != pid; i++)
		;
	if (i == t->nk)
		return;
	memcpy(addr, t->k[i].addr, sizeof(addr));
	t->k[i] = t->k[--t->nk];
	if (!WIFEXITED(st) || WEXITSTATUS(st) == 0 || WEXITSTATUS(st) > 100)
		return;
	fails = (unsigned)WEXITSTATUS(st);
	/* the client's entry; else an expired one, else the oldest */
	for (i = 0; i < t->nc && c == NULL; i++)
		if (strcmp(t->c[i].addr, addr) == 0)
			c = &t->c[i];
	for (i = 0; i < t->nc && c == NULL; i++)
		if (now - t->c[i].since >= RELAY_AUTH_WINDOW) {
			c = &t->c[i];
			c->fails = 0;
		}
	if (c == NULL && t->nc < t->cap) {
		c = &t->c[t->nc++];
		c->fails = 0;
	}
	if (c == NULL) {
		c = &t->c[0];
		for (i = 1; i < t->nc; i++)
			if (t->c[i].since < c->since)
				c = &t->c[i];
		c->fails = 0;
	}
	if (strcmp(c->addr, addr) != 0 || now - c->since >= RELAY_AUTH_WINDOW) {
		snprintf(c->addr, sizeof(c->addr), "%s", addr);
		c->fails = 0;
		c->since = now;
	}
	c->fails += fails;
}

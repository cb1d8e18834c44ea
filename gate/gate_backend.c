/*
 * gate_backend — the hand-off to the backend (Stalwart, or Postfix in
 * tests). At the first accepted MAIL FROM the session opens one backend
 * connection and keeps it for further transactions:
 *   proxy-v2: the whole PROXY v2 header in one write (client address, the
 *             listener's address, SSL TLV when the client used TLS, the
 *             session id as UNIQUE_ID), then the banner, then EHLO with the
 *             client's own HELO name;
 *   xclient:  banner, EHLO, XCLIENT ADDR/PORT/HELO/PROTO (attributes the
 *             backend offers), new banner, EHLO again;
 *   none:     banner, EHLO (plain sinks for benchmarks).
 * Every backend reply is relayed to the client verbatim; a backend that is
 * unreachable gives 451 4.4.1, one that is lost later 421 4.4.2.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "gate_session.h"
#include "gate_metrics.h"
#include "log.h"
#include "net.h"
#include "proxy.h"

#define BACKEND_RBUF	8192

static int
backend_fail_open(struct gate_session *s, const char *what)
{
	log_warn("%s backend=%s status=unavailable reason=\"%s\" reply=\"451 4.4.1\"",
	    s->id, s->be.addr, what);
	gate_metric_backend(s->be.fd < 0 ? GMB_CONNECT : strstr(what, "timeout") ? GMB_TIMEOUT : GMB_PROTOCOL);
	smtpd_reply(&s->e, "451 4.4.1 Service temporarily unavailable, try again later");
	gate_backend_close(s, 0);
	return -1;
}

/* The backend refused the client's HELO name (5xx to our EHLO: Stalwart's
 * "550 5.5.0 Invalid EHLO domain."). Retrying cannot help: its reply,
 * code and text, is the client's reply to MAIL. */
static int
backend_refused_helo(struct gate_session *s, const struct smtp_reply *r)
{
	char q[300], h[300];

	log_info("%s refused stage=mail reason=backend-helo helo=\"%s\" backend=%s reply=\"%s\"",
	    s->id, log_quote(h, sizeof(h), s->e.helo, strlen(s->e.helo)), s->be.addr,
	    log_quote(q, sizeof(q), r->text, r->len));
	(void)gate_backend_pass(s, r);
	smtpd_error(&s->e);
	gate_backend_close(s, 1);
	return -1;
}

static int
send_proxy_header(struct gate_session *s)
{
	struct proxy_info pi;
	unsigned char hdr[PROXY_MAX_HEADER];
	ssize_t n, w;

	memset(&pi, 0, sizeof(pi));
	gate_inproxy_pair(&pi, &s->peer, &s->local);
	if (s->e.tls) {
		pi.ssl = 1;
		snprintf(pi.ssl_version, sizeof(pi.ssl_version), "%s", s->e.tls_version);
		snprintf(pi.ssl_cipher, sizeof(pi.ssl_cipher), "%s", s->e.tls_cipher);
	}
	snprintf(pi.unique_id, sizeof(pi.unique_id), "%s", s->id);
	n = proxy_v2_encode(&pi, hdr, sizeof(hdr));
	if (n < 0)
		return -1;
	/* one write: Postfix reads the header with a single peek */
	do
		w = write(s->be.fd, hdr, (size_t)n);
	while (w < 0 && errno == EINTR);
	return w == n ? 0 : -1;
}

static enum smtp_rstatus
backend_ehlo(struct gate_session *s, struct smtp_reply *r)
{
	enum smtp_rstatus st = smtp_command(&s->be.io, r, "EHLO %s", s->e.helo);

	if (st == SMTP_R_OK && r->code == 250)
		smtp_parse_caps(r, &s->be.caps);
	return st;
}

/* RFC 1891 xtext, as XCLIENT attribute values are sent (Postfix's
 * XCLIENT_README): '+', '=' and bytes outside '!'..'~' become "+HH".
 * Returns 0, or -1 when out does not hold the result. */
static int
xtext(const char *in, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
		if (*p < '!' || *p > '~' || *p == '+' || *p == '=') {
			if (o + 4 > outlen)
				return -1;
			out[o++] = '+';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		} else {
			if (o + 2 > outlen)
				return -1;
			out[o++] = (char)*p;
		}
	}
	out[o] = '\0';
	return 0;
}

static int
xclient(struct gate_session *s, struct smtp_reply *r)
{
	char helo[sizeof(s->e.helo) * 3];
	char cmd[1200];
	const char *a = s->be.caps.xclient_attrs;
	int n;

	if (!s->be.caps.xclient)
		return -1;
	n = snprintf(cmd, sizeof(cmd), "XCLIENT");
	if (strstr(a, " ADDR "))
		n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " ADDR=%s%s",
		    s->peer.ss_family == AF_INET6 ? "IPV6:" : "", s->peer_ip);
	if (strstr(a, " PORT "))
		n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " PORT=%u", s->peer_port);
	if (strstr(a, " NAME "))
		n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " NAME=[UNAVAILABLE]");
	if (strstr(a, " PROTO "))
		n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " PROTO=%s",
		    s->e.esmtp ? "ESMTP" : "SMTP");
	if (strstr(a, " HELO ") && xtext(s->e.helo, helo, sizeof(helo)) == 0)
		n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " HELO=%s", helo);
	if (n <= 0 || (size_t)n >= sizeof(cmd))
		return -1;
	if (smtp_command(&s->be.io, r, "%s", cmd) != SMTP_R_OK || r->code != 220)
		return -1;
	return 0;
}

/* Connect, PROXY header, banner: to one address. NULL, or why not. */
static const char *
backend_try(struct gate_session *s, const struct gate_backend_addr *a)
{
	const struct gate_settings *cfg = s->cfg;
	struct smtp_reply r;
	enum smtp_rstatus st;

	snprintf(s->be.addr, sizeof(s->be.addr), "%s", a->name);
	s->be.fd = net_connect(&a->ep, (int)cfg->backend_connect_timeout * 1000);
	if (s->be.fd < 0)
		return strerror(errno);
	if (io_init(&s->be.io, s->be.fd, BACKEND_RBUF, (int)cfg->backend_timeout * 1000) != 0)
		return "out of memory";
	if (cfg->handoff == HANDOFF_PROXY_V2 && send_proxy_header(s) != 0)
		return "cannot write PROXY header";
	st = smtp_read_reply(&s->be.io, &r);
	if (st != SMTP_R_OK || r.code != 220)
		return st == SMTP_R_OK ? "banner is not 220" :
		    st == SMTP_R_TIMEOUT ? "banner timeout" : "no banner";
	return NULL;
}

/* Try the backends in the order backend_policy gives until one greets
 * with 220; nothing has been sent to the client meanwhile, so a failover
 * is invisible to it. 0, or -1 after 451 4.4.1 (every address failed). */
static int
backend_connect_any(struct gate_session *s)
{
	const struct gate_settings *cfg = s->cfg;
	unsigned order[GATE_BACKENDS_MAX];
	size_t n = gate_backends_plan(s->rt->backends, &cfg->backends, &cfg->be_rule, order);
	const char *why = "no backend address";

	for (size_t i = 0; i < n; i++) {
		const struct gate_backend_addr *a = &cfg->backends.v[order[i]];
		why = backend_try(s, a);
		gate_backends_result(s->rt->backends, a, &cfg->be_rule, why == NULL);
		if (why == NULL) {
			gate_backends_hold(s->rt->backends, s->rt->slot, a->slot);
			s->be.counted = 1;
			return 0;
		}
		if (i + 1 == n)
			break;
		log_info("%s backend=%s status=unavailable reason=\"%s\" next=%s", s->id, a->name,
		    why, cfg->backends.v[order[i + 1]].name);
		gate_metric_backend(s->be.fd < 0 ? GMB_CONNECT : strstr(why, "timeout") ? GMB_TIMEOUT : GMB_PROTOCOL);
		gate_backend_close(s, 0);
	}
	return backend_fail_open(s, why);
}

int
gate_backend_open(struct gate_session *s)
{
	const struct gate_settings *cfg = s->cfg;
	struct smtp_reply r;
	enum smtp_rstatus st;

	if (s->be.fd >= 0)
		return 0;
	long long metric_t0 = gate_metric_now_us();
	if (backend_connect_any(s) != 0)
		return -1;
	st = backend_ehlo(s, &r);
	if (st == SMTP_R_OK && r.code / 100 == 5)
		return backend_refused_helo(s, &r);
	if (st != SMTP_R_OK || r.code != 250)
		return backend_fail_open(s, "EHLO refused");
	if (cfg->handoff == HANDOFF_XCLIENT) {
		if (xclient(s, &r) != 0)
			return backend_fail_open(s, "XCLIENT refused or not offered");
		st = backend_ehlo(s, &r);
		if (st == SMTP_R_OK && r.code / 100 == 5)
			return backend_refused_helo(s, &r);
		if (st != SMTP_R_OK || r.code != 250)
			return backend_fail_open(s, "EHLO after XCLIENT refused");
	}
	log_debug("%s backend=%s status=connected handoff=%s chunking=%d", s->id, s->be.addr,
	    cfg->handoff == HANDOFF_PROXY_V2 ? "proxy-v2" :
	    cfg->handoff == HANDOFF_XCLIENT ? "xclient" : "none", s->be.caps.chunking);
	gate_metric_handoff(metric_t0);
	return 0;
}

void
gate_backend_close(struct gate_session *s, int send_quit)
{
	if (s->be.fd < 0)
		return;
	if (send_quit) {
		/* say goodbye but do not wait for the 221: the worker is free
		 * for the next client one round trip sooner */
		s->be.io.timeout_ms = 1000;
		if (io_write(&s->be.io, "QUIT\r\n", 6) != 0 || io_flush(&s->be.io) != 0)
			log_debug("%s backend QUIT not sent", s->id);
	}
	io_free(&s->be.io);
	if (s->be.counted)
		gate_backends_release(s->rt->backends, s->rt->slot);
	s->be.counted = 0;
	if (close(s->be.fd) != 0)
		log_debug("%s backend close: %s", s->id, strerror(errno));
	s->be.fd = -1;
	s->be.mail_pending = 0;
	s->be.mail_refusal.code = 0;
	s->be.data_reply.code = 0;
	memset(&s->be.caps, 0, sizeof(s->be.caps));
}

/* MAIL FROM toward the backend. A backend that pipelines gets it with the
 * first RCPT, in one write (RFC 2920): the client's 250 here is ours, and a
 * refusal by the backend becomes the reply to each RCPT, in its words. The
 * client still never sees a 250 for a message the backend did not accept. */
int
gate_backend_mail(struct gate_session *s, const char *cmd)
{
	s->be.mail_pending = 0;
	s->be.mail_refusal.code = 0;
	if (!s->be.caps.pipelining)
		return gate_backend_relay(s, "%s", cmd);
	snprintf(s->be.mail_cmd, sizeof(s->be.mail_cmd), "%s", cmd);
	s->be.mail_pending = 1;
	smtpd_reply(&s->e, "250 2.1.0 Ok");
	return 250;
}

/* The MAIL held by gate_backend_mail went out with this RCPT: read its
 * reply into r. 1: accepted, read on; 0: refused, r answers the RCPT (whose
 * own reply was read and dropped); -1: backend lost (st says how). */
static int
backend_mail_reply(struct gate_session *s, struct smtp_reply *r, enum smtp_rstatus *st)
{
	struct smtp_reply rr;
	char q[300];

	s->be.mail_pending = 0;
	if (r->code / 100 == 2) {
		*st = smtp_read_reply(&s->be.io, r);
		return *st == SMTP_R_OK ? 1 : -1;
	}
	if (r->code != 421 && (*st = smtp_read_reply(&s->be.io, &rr)) != SMTP_R_OK)
		return -1;
	log_info("%s refused stage=mail from=\"<%s>\" backend=%s reply=\"%s\"", s->id,
	    log_q(s->e.mail_from), s->be.addr, log_quote(q, sizeof(q), r->text, r->len));
	if (r->code != 421) {
		s->be.mail_refusal = *r;
	}
	return 0;
}

/* The backend's reply to a relayed command, to the client; a 421 ends
 * the session with the backend's words. The code, or -1. */
static int
relay_reply(struct gate_session *s, const struct smtp_reply *r)
{
	gate_metric_backend_reply(r->code);
	if (gate_backend_pass(s, r) != 0)
		return -1;
	if (r->code == 421) {
		/* the backend is closing: so do we, with its words */
		log_warn("%s backend=%s status=closing reply=\"421\"", s->id, s->be.addr);
		gate_backend_close(s, 0);
		smtpd_enter(&s->e, SMTPD_QUIT);
		return -1;
	}
	return r->code;
}

/* Send cmd (after a held MAIL, and followed by DATA when with_data, all
 * in one write) and relay its reply; DATA's reply is kept in
 * s->be.data_reply. */
static int
relay_cmd(struct gate_session *s, const char *cmd, int with_data)
{
	struct smtp_reply r;
	enum smtp_rstatus st;
	int mail_ok = 1;

	if (s->be.data_reply.code == 354) {
		/* the backend waits for content the client never sent (the
		 * engine ends such a transaction first): never reached */
		log_warn("%s backend=%s status=reset reason=\"left in DATA\"", s->id, s->be.addr);
		gate_backend_close(s, 0);
	}
	s->be.data_reply.code = 0;
	if (s->be.mail_refusal.code != 0) {	/* the backend refused the MAIL: its reply again */
		if (gate_backend_pass(s, &s->be.mail_refusal) != 0)
			return -1;
		return s->be.mail_refusal.code;
	}
	if (s->be.fd < 0)
		st = SMTP_R_ERROR;
	else if (s->be.mail_pending && io_printf(&s->be.io, "%s\r\n", s->be.mail_cmd) != 0)
		st = SMTP_R_ERROR;
	else if (with_data && io_printf(&s->be.io, "%s\r\n", cmd) != 0)
		st = SMTP_R_ERROR;
	else
		st = smtp_command(&s->be.io, &r, "%s", with_data ? "DATA" : cmd);
	if (st == SMTP_R_OK && s->be.mail_pending) {
		int rc = backend_mail_reply(s, &r, &st);
		if (rc < 0)
			st = st == SMTP_R_OK ? SMTP_R_ERROR : st;
		mail_ok = rc > 0;
	}
	if (st == SMTP_R_OK && with_data && r.code != 421) {
		struct smtp_reply dr;
		st = smtp_read_reply(&s->be.io, &dr);
		if (st == SMTP_R_OK && mail_ok)
			s->be.data_reply = dr;
	}
	if (st != SMTP_R_OK || r.code < 200) {
		log_warn("%s backend=%s status=lost during=\"%.20s\" reason=%s reply=\"421 4.4.2\"",
		    s->id, s->be.addr, cmd,
		    st == SMTP_R_TIMEOUT ? "timeout" : st == SMTP_R_BAD ? "bad-reply" : "closed");
		gate_metric_backend(st == SMTP_R_TIMEOUT ? GMB_TIMEOUT : GMB_LOST);
		gate_backend_close(s, 0);
		smtpd_reply(&s->e, "421 4.4.2 %s Backend connection lost, closing", s->cfg->hostname);
		smtpd_enter(&s->e, SMTPD_QUIT);
		return -1;
	}
	return relay_reply(s, &r);
}

int
gate_backend_relay(struct gate_session *s, const char *fmt, ...)
{
	char cmd[SMTP_LINE_MAX + 512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(cmd)) {
		smtpd_reply(&s->e, "500 5.5.2 Line too long");
		return 500;
	}
	return relay_cmd(s, cmd, 0);
}

/* RCPT toward the backend. When the client pipelined DATA right behind it
 * and the backend pipelines (and has no CHUNKING: BDAT needs no DATA),
 * DATA goes in the same write (RFC 2920 allows DATA last in a group): one
 * round trip less per message. Its reply waits for gate_backend_data. */
int
gate_backend_rcpt(struct gate_session *s, const char *addr, int with_data)
{
	char cmd[SMTP_PATH_MAX + 16];

	with_data = with_data && s->be.caps.pipelining && !s->be.caps.chunking;
	snprintf(cmd, sizeof(cmd), "RCPT TO:<%s>", addr);
	return relay_cmd(s, cmd, with_data);
}

/* DATA toward the backend, or the reply it gave to the DATA that went
 * with the last RCPT; relayed to the client. The code, or -1. */
int
gate_backend_data(struct gate_session *s)
{
	struct smtp_reply r;

	if (s->be.data_reply.code == 0)
		return gate_backend_relay(s, "DATA");
	r = s->be.data_reply;
	s->be.data_reply.code = 0;
	return relay_reply(s, &r);
}

/* The backend's reply, all its lines, queued for the client as it is
 * (after the engine's earlier replies: both go through the client's io). */
int
gate_backend_pass(struct gate_session *s, const struct smtp_reply *r)
{
	gate_metric_reply(s, r->text, 3);
	if (io_write(&s->e.io, r->text, r->len) != 0) {
		smtpd_enter(&s->e, SMTPD_QUIT);		/* as smtpd_reply does */
		return -1;
	}
	return 0;
}

/* RSET toward the backend (a transaction to drop). A failure just drops
 * the backend connection; the next MAIL opens a new one. */
void
gate_backend_rset(struct gate_session *s)
{
	struct smtp_reply r;
	int sent = !s->be.mail_pending && s->be.mail_refusal.code == 0;

	s->be.mail_pending = 0;
	s->be.mail_refusal.code = 0;
	if (s->be.data_reply.code == 354) {
		gate_backend_close(s, 0);	/* it waits for content: only a close ends that */
		return;
	}
	s->be.data_reply.code = 0;
	if (s->be.fd < 0 || !sent)
		return;		/* no transaction open at the backend: nothing to reset */
	if (smtp_command(&s->be.io, &r, "RSET") != SMTP_R_OK || r.code != 250)
		gate_backend_close(s, 0);
}

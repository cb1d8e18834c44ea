/*
 * relay_deliver — connect to the smarthost and send messages.
 *
 * With PIPELINING the envelope (MAIL, every RCPT, and DATA when there is
 * no CHUNKING) goes out in one write and the replies are read in order.
 * With CHUNKING the message goes as one `BDAT <n> LAST` (no dot-stuffing);
 * else DATA with fresh dot-stuffing. The DKIM-Signature made at enqueue is
 * sent before the message bytes. Base64 for AUTH is OpenSSL's
 * EVP_EncodeBlock; the password never reaches a log line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/socket.h>
#include <openssl/evp.h>

#include "io.h"
#include "log.h"
#include "net.h"
#include "smtp.h"
#include "tls.h"
#include "relay_metrics.h"
#include "relay_deliver.h"
#include "relay_dns.h"

/* A reply as one log-safe line: its lines joined by spaces. */
static void
flat_reply(const struct smtp_reply *r, char *out, size_t outlen)
{
	size_t n = 0;

	for (size_t i = 0; i < r->len && n + 1 < outlen; i++) {
		char ch = r->text[i];
		if (ch == '\r')
			continue;
		if (ch == '\n') {
			if (i + 1 < r->len)
				out[n++] = ' ';
			continue;
		}
		out[n++] = (ch == '"' || (unsigned char)ch < 32) ? '\'' : ch;
	}
	out[n] = '\0';
}

static const char *
rstatus_text(enum smtp_rstatus st)
{
	switch (st) {
	case SMTP_R_BAD: return "malformed reply";
	case SMTP_R_EOF: return "connection closed";
	case SMTP_R_TIMEOUT: return "timeout";
	default: return "I/O error";
	}
}

SSL_CTX *
relay_deliver_ctx(const struct relay_config *cfg, char *err, size_t errlen)
{
	int verify = cfg->tls == RELAY_TLS_VERIFY || cfg->tls == RELAY_TLS_IMPLICIT;

	if (cfg->tls == RELAY_TLS_NONE)
		return NULL;
	return tls_client_ctx(verify, relay_config_set(cfg->tls_ca) ? cfg->tls_ca : NULL,
	    err, errlen);
}

static int
b64(const unsigned char *in, size_t len, char *out, size_t outlen)
{
	if (len > 600 || outlen < 4 * ((len + 2) / 3) + 1)
		return -1;
	(void)EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	return 0;
}

static int
do_auth(const struct relay_config *cfg, struct relay_conn *c, char *err, size_t errlen)
{
	struct smtp_reply r;
	enum smtp_rstatus st;
	char enc[1024], line[300];
	const char *u = cfg->auth_user, *pw = cfg->auth_password;

	if (c->caps.auth_plain) {
		unsigned char raw[600];
		size_t ul = strlen(u), pl = strlen(pw), n = 0;
		if (ul + pl + 2 > sizeof(raw)) {
			snprintf(err, errlen, "credentials too long");
			return -1;
		}
		raw[n++] = '\0';
		memcpy(raw + n, u, ul);
		n += ul;
		raw[n++] = '\0';
		memcpy(raw + n, pw, pl);
		n += pl;
		int ok = b64(raw, n, enc, sizeof(enc));
		explicit_bzero(raw, sizeof(raw));
		if (ok != 0) {
			snprintf(err, errlen, "credentials too long");
			return -1;
		}
		st = smtp_command(&c->io, &r, "AUTH PLAIN %s", enc);
		explicit_bzero(enc, sizeof(enc));
	} else if (c->caps.auth_login) {
		st = smtp_command(&c->io, &r, "AUTH LOGIN");
		if (st == SMTP_R_OK && r.code == 334) {
			if (b64((const unsigned char *)u, strlen(u), enc, sizeof(enc)) != 0) {
				snprintf(err, errlen, "credentials too long");
				return -1;
			}
			st = smtp_command(&c->io, &r, "%s", enc);
			if (st == SMTP_R_OK && r.code == 334) {
				if (b64((const unsigned char *)pw, strlen(pw), enc, sizeof(enc)) != 0) {
					snprintf(err, errlen, "credentials too long");
					return -1;
				}
				st = smtp_command(&c->io, &r, "%s", enc);
				explicit_bzero(enc, sizeof(enc));
			}
		}
	} else {
		snprintf(err, errlen, "smarthost offers no AUTH PLAIN or LOGIN");
		return -1;
	}
	if (st != SMTP_R_OK) {
		snprintf(err, errlen, "AUTH: %s", rstatus_text(st));
		return -1;
	}
	if (r.code != 235) {
		flat_reply(&r, line, sizeof(line));
		snprintf(err, errlen, "AUTH failed: %s", line);
		return -1;
	}
	return 0;
}

static int
ehlo(const struct relay_config *cfg, struct relay_conn *c, char *err, size_t errlen)
{
	struct smtp_reply r;
	enum smtp_rstatus st = smtp_command(&c->io, &r, "EHLO %s", cfg->hostname);
	char line[300];

	if (st != SMTP_R_OK) {
		snprintf(err, errlen, "EHLO: %s", rstatus_text(st));
		return -1;
	}
	if (r.code != 250) {
		flat_reply(&r, line, sizeof(line));
		snprintf(err, errlen, "EHLO refused: %s", line);
		return -1;
	}
	memset(&c->caps, 0, sizeof(c->caps));
	smtp_parse_caps(&r, &c->caps);
	return 0;
}

/* Everything after connect on one host. 0 / -1 (err set; connection closed). */
static int
session_setup(const struct relay_config *cfg, SSL_CTX *ctx, struct relay_conn *c,
    const char *host, char *err, size_t errlen)
{
	struct smtp_reply r;
	enum smtp_rstatus st;
	char line[300], e[256];

	if (cfg->tls == RELAY_TLS_IMPLICIT) {
		if (io_starttls_client(&c->io, ctx, host) != 0) {
			snprintf(err, errlen, "TLS handshake failed: %s", tls_last_error(e, sizeof(e)));
			return -1;
		}
		c->tls = 1;
	}
	st = smtp_read_reply(&c->io, &r);
	if (st != SMTP_R_OK) {
		snprintf(err, errlen, "banner: %s", rstatus_text(st));
		return -1;
	}
	if (r.code != 220) {
		flat_reply(&r, line, sizeof(line));
		snprintf(err, errlen, "banner: %s", line);
		return -1;
	}
	if (ehlo(cfg, c, err, errlen) != 0)
		return -1;
	if (!c->tls && cfg->tls != RELAY_TLS_NONE) {
		if (!c->caps.starttls) {
			if (cfg->tls != RELAY_TLS_MAY) {
				snprintf(err, errlen, "TLS required but STARTTLS not offered");
				return -1;
			}
		} else {
			st = smtp_command(&c->io, &r, "STARTTLS");
			if (st != SMTP_R_OK || r.code != 220) {
				if (st == SMTP_R_OK)
					flat_reply(&r, line, sizeof(line));
				snprintf(err, errlen, "STARTTLS: %s",
				    st == SMTP_R_OK ? line : rstatus_text(st));
				return -1;
			}
			if (io_starttls_client(&c->io, ctx, host) != 0) {
				snprintf(err, errlen, "TLS handshake failed: %s",
				    tls_last_error(e, sizeof(e)));
				return -1;
			}
			c->tls = 1;
			if (ehlo(cfg, c, err, errlen) != 0)
				return -1;
		}
	}
	if (relay_config_set(cfg->auth_user)) {
		if (!c->tls && cfg->tls != RELAY_TLS_NONE) {
			snprintf(err, errlen, "refusing to send credentials without TLS");
			return -1;
		}
		if (do_auth(cfg, c, err, errlen) != 0)
			return -1;
	}
	return 0;
}

/* Connect to `addr` (a numeric address, or a name for the system
 * resolver) and set up the session; `host` is the name for TLS and logs. */
static int
try_host(const struct relay_config *cfg, SSL_CTX *ctx, struct relay_conn *c,
    const char *host, const char *addr, const char *port, char *err, size_t errlen)
{
	struct net_endpoint ep;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char ip[64];
	unsigned pn = 0;

	memset(&ep, 0, sizeof(ep));
	snprintf(ep.host, sizeof(ep.host), "%s", addr);
	snprintf(ep.port, sizeof(ep.port), "%s", port);
	c->fd = net_connect(&ep, (int)cfg->connect_timeout * 1000);
	if (c->fd < 0) {
		snprintf(err, errlen, "connect to %s[%s]:%s: %s", host, addr, port, strerror(errno));
		return -1;
	}
	if (getpeername(c->fd, (struct sockaddr *)&ss, &sl) != 0 ||
	    net_addr_str(&ss, ip, sizeof(ip), &pn) != 0)
		snprintf(ip, sizeof(ip), "?");
	snprintf(c->relay, sizeof(c->relay), "%.255s[%.45s]:%.15s", host, ip, port);
	if (io_init(&c->io, c->fd, 8192, (int)cfg->smtp_timeout * 1000) != 0) {
		(void)close(c->fd);
		c->fd = -1;
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	c->tls = 0;
	if (session_setup(cfg, ctx, c, host, err, errlen) != 0) {
		/* keep the host in the reason: the operator wants to know which */
		char tmp[512];
		snprintf(tmp, sizeof(tmp), "%s: %s", c->relay, err);
		snprintf(err, errlen, "%s", tmp);
		io_free(&c->io);
		(void)close(c->fd);	/* failed session: nothing to flush */
		c->fd = -1;
		return -1;
	}
	c->open = 1;
	c->nmsgs = 0;
	return 0;
}

int
relay_conn_open(const struct relay_config *cfg, SSL_CTX *ctx, struct relay_conn *c,
    char *err, size_t errlen)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	snprintf(err, errlen, "no smarthost");
	for (size_t i = 0; i < cfg->nsmarthosts; i++) {
		const struct relay_smarthost *sh = &cfg->smarthosts[i];
		char hosts[RELAY_MX_MAX][256];
		size_t nh = 1;

		if (sh->mx) {
			if (relay_dns_mx(sh->host, cfg->resolver, (int)cfg->connect_timeout * 1000,
			    hosts, &nh, err, errlen) != 0)
				continue;
		} else
			snprintf(hosts[0], sizeof(hosts[0]), "%s", sh->host);
		for (size_t j = 0; j < nh; j++) {
			char addrs[RELAY_ADDR_MAX][64];
			size_t na = 1;

			if (!sh->mx) {
				/* [host]: the system resolver, inside net_connect */
				if (try_host(cfg, ctx, c, hosts[j], hosts[j], sh->port, err, errlen) == 0)
					return 0;
				log_info("relay connect failed: %s", err);
				relay_metric_smarthost(err);
				continue;
			}
			if (relay_dns_addrs(hosts[j], cfg->resolver,
			    (int)cfg->connect_timeout * 1000, addrs, &na, err, errlen) != 0) {
				log_info("relay connect failed: %s", err);
				relay_metric_smarthost(err);
				continue;
			}
			for (size_t k = 0; k < na; k++) {
				if (try_host(cfg, ctx, c, hosts[j], addrs[k], sh->port, err, errlen) == 0)
					return 0;
				log_info("relay connect failed: %s", err);
				relay_metric_smarthost(err);
			}
		}
	}
	return -1;
}

void
relay_conn_close(struct relay_conn *c)
{
	if (!c->open)
		return;
	(void)io_printf(&c->io, "QUIT\r\n");
	if (io_flush(&c->io) == 0) {
		struct smtp_reply r;
		c->io.timeout_ms = 2000;
		(void)smtp_read_reply(&c->io, &r);	/* courtesy only */
	}
	io_free(&c->io);
	(void)close(c->fd);	/* after QUIT nothing is pending */
	c->fd = -1;
	c->open = 0;
}

void
relay_conn_abort(struct relay_conn *c)
{
	if (!c->open)
		return;
	io_free(&c->io);
	(void)close(c->fd);	/* the peer closed it: nothing to send */
	c->fd = -1;
	c->open = 0;
}

static void
set_outcome(struct relay_rcpt *r, int outcome, const char *text)
{
	char *d = strdup(text);

	r->outcome = outcome;
	if (d) {
		free(r->reply);
		r->reply = d;
	}
}

static void
all_pending(struct relay_msg *m, int outcome, const char *text)
{
	for (size_t i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].status == RELAY_R_PENDING && m->rcpts[i].outcome == RELAY_O_NONE)
			set_outcome(&m->rcpts[i], outcome, text);
}

/* Send the message bytes: DKIM header, then the body, stuffed if `stuff`. */
static int
send_body(struct relay_conn *c, const struct relay_msg *m, int fd, int stuff)
{
	char buf[65536];
	int at_bol = 1;

	if (m->dkim_len > 0 && io_write(&c->io, m->dkim, m->dkim_len) != 0)
		return -1;
	for (off_t done = 0; done < m->body_len; ) {
		size_t n = (size_t)(m->body_len - done) < sizeof(buf) ?
		    (size_t)(m->body_len - done) : sizeof(buf);
		if (relay_spool_pread(fd, buf, n, m->body_off + done) != 0)
			return -1;
		done += (off_t)n;
		if (!stuff) {
			if (io_write(&c->io, buf, n) != 0)
				return -1;
			continue;
		}
		size_t s = 0;
		for (size_t i = 0; i < n; i++) {
			if (at_bol && buf[i] == '.') {
				if (io_write(&c->io, buf + s, i - s) != 0 ||
				    io_write(&c->io, ".", 1) != 0)
					return -1;
				s = i;
			}
			at_bol = buf[i] == '\n';
		}
		if (io_write(&c->io, buf + s, n - s) != 0)
			return -1;
	}
	return 0;
}

/* RCPT, with the RFC 3461 parameters when the smarthost offers DSN. */
static int
rcpt_cmd(struct relay_conn *c, const struct relay_rcpt *r)
{
	char nl[64] = "";

	if (c->caps.dsn && r->notify)
		relay_dsn_notify_str(r->notify, nl, sizeof(nl));
	return io_printf(&c->io, "RCPT TO:<%s>%s%s%s%s\r\n", r->addr,
	    nl[0] ? " NOTIFY=" : "", nl,
	    c->caps.dsn && r->orcpt ? " ORCPT=" : "", c->caps.dsn && r->orcpt ? r->orcpt : "");
}

int
relay_deliver_msg(const struct relay_config *cfg, struct relay_conn *c,
    struct relay_msg *m, int fd)
{
	struct smtp_reply r;
	enum smtp_rstatus st;
	char text[600], mailcmd[700];
	size_t idx[RELAY_RCPT_MAX], nidx = 0, naccepted = 0;
	int accepted[RELAY_RCPT_MAX];
	unsigned long long size = (unsigned long long)m->body_len + m->dkim_len;
	int chunking = c->caps.chunking, pipe = c->caps.pipelining, mail_ok, reused;
	const char *phase = "MAIL";

	(void)cfg;
	for (size_t i = 0; i < m->nrcpts; i++) {
		m->rcpts[i].outcome = RELAY_O_NONE;
		if (m->rcpts[i].status == RELAY_R_PENDING)
			idx[nidx++] = i;
	}
	if (nidx == 0)
		return 0;
	if (m->utf8 && !c->caps.smtputf8) {
		all_pending(m, RELAY_O_BOUNCED,
		    "554 5.6.7 SMTPUTF8 required but not offered by the smarthost");
		return 0;
	}
	if (c->caps.size && c->caps.size_max && size > c->caps.size_max) {
		all_pending(m, RELAY_O_BOUNCED, "552 5.3.4 Message too big for the smarthost");
		return 0;
	}
	reused = c->nmsgs > 0;
	if (c->txn_open) {
		st = smtp_command(&c->io, &r, "RSET");
		if (st != SMTP_R_OK || r.code != 250)
			goto lost_rset;
	}
	c->nmsgs++;
	c->txn_open = 1;
	snprintf(mailcmd, sizeof(mailcmd), "MAIL FROM:<%s>%s%s", m->from,
	    m->eightbit && c->caps.eightbit ? " BODY=8BITMIME" : "",
	    m->utf8 ? " SMTPUTF8" : "");
	if (c->caps.size) {
		size_t l = strlen(mailcmd);
		snprintf(mailcmd + l, sizeof(mailcmd) - l, " SIZE=%llu", size);
	}
	if (c->caps.dsn) {
		size_t l = strlen(mailcmd);
		snprintf(mailcmd + l, sizeof(mailcmd) - l, "%s%s%s",
		    m->ret == RELAY_RET_FULL ? " RET=FULL" : m->ret == RELAY_RET_HDRS ? " RET=HDRS" : "",
		    m->envid ? " ENVID=" : "", m->envid ? m->envid : "");
	}
	m->hop_dsn = c->caps.dsn;
	/* envelope: pipelined when offered */
	if (io_printf(&c->io, "%s\r\n", mailcmd) != 0)
		goto lost;
	if (pipe) {
		for (size_t k = 0; k < nidx; k++)
			if (rcpt_cmd(c, &m->rcpts[idx[k]]) != 0)
				goto lost;
		if (!chunking && io_printf(&c->io, "DATA\r\n") != 0)
			goto lost;
	}
	if (io_flush(&c->io) != 0)
		goto lost;
	st = smtp_read_reply(&c->io, &r);
	if (st != SMTP_R_OK)
		goto lost_st;
	mail_ok = r.code >= 200 && r.code < 300;
	if (!mail_ok) {
		flat_reply(&r, text, sizeof(text));
		all_pending(m, r.code >= 500 ? RELAY_O_BOUNCED : RELAY_O_DEFERRED, text);
		if (!pipe)
			return 0;
	}
	phase = "RCPT";
	for (size_t k = 0; k < nidx; k++) {
		accepted[k] = 0;
		if (!pipe && !mail_ok)
			break;
		if (!pipe && rcpt_cmd(c, &m->rcpts[idx[k]]) != 0)
			goto lost;
		st = smtp_read_reply(&c->io, &r);
		if (st != SMTP_R_OK)
			goto lost_st;
		if (!mail_ok)
			continue;
		if (r.code >= 200 && r.code < 300) {
			accepted[k] = 1;
			naccepted++;
		} else {
			flat_reply(&r, text, sizeof(text));
			set_outcome(&m->rcpts[idx[k]],
			    r.code >= 500 ? RELAY_O_BOUNCED : RELAY_O_DEFERRED, text);
		}
	}
	phase = "DATA";
	if (pipe && !chunking) {
		/* the pipelined DATA's reply */
		st = smtp_read_reply(&c->io, &r);
		if (st != SMTP_R_OK)
			goto lost_st;
		if (naccepted == 0 || !mail_ok) {
			if (r.code == 354) {
				/* the server wants a message nobody will accept: end it */
				if (io_printf(&c->io, ".\r\n") != 0 || io_flush(&c->io) != 0)
					goto lost;
				st = smtp_read_reply(&c->io, &r);
				if (st != SMTP_R_OK)
					goto lost_st;
			}
			return 0;
		}
		if (r.code != 354) {
			flat_reply(&r, text, sizeof(text));
			all_pending(m, r.code >= 500 ? RELAY_O_BOUNCED : RELAY_O_DEFERRED, text);
			return 0;
		}
	} else if (naccepted == 0 || !mail_ok) {
		return 0;
	} else if (!chunking) {
		st = smtp_command(&c->io, &r, "DATA");
		if (st != SMTP_R_OK)
			goto lost_st;
		if (r.code != 354) {
			flat_reply(&r, text, sizeof(text));
			all_pending(m, r.code >= 500 ? RELAY_O_BOUNCED : RELAY_O_DEFERRED, text);
			return 0;
		}
	}
	phase = "end of data";
	if (chunking) {
		if (io_printf(&c->io, "BDAT %llu LAST\r\n", size) != 0 ||
		    send_body(c, m, fd, 0) != 0)
			goto lost;
	} else {
		if (send_body(c, m, fd, 1) != 0 || io_write(&c->io, ".\r\n", 3) != 0)
			goto lost;
	}
	if (io_flush(&c->io) != 0)
		goto lost;
	st = smtp_read_reply(&c->io, &r);
	if (st != SMTP_R_OK)
		goto lost_st;
	c->txn_open = 0;	/* the reply to the data ends the transaction */
	flat_reply(&r, text, sizeof(text));
	for (size_t k = 0; k < nidx; k++)
		if (accepted[k])
			set_outcome(&m->rcpts[idx[k]], r.code >= 200 && r.code < 300 ?
			    RELAY_O_SENT : r.code >= 500 ? RELAY_O_BOUNCED : RELAY_O_DEFERRED, text);
	return 0;
lost_rset:
	if (reused)
		return -2;
	snprintf(text, sizeof(text), "lost connection with %s after RSET", c->relay);
	all_pending(m, RELAY_O_DEFERRED, text);
	return -1;
lost_st:
	if (reused && strcmp(phase, "MAIL") == 0 && st != SMTP_R_BAD &&
	    st != SMTP_R_TIMEOUT)
		return -2;	/* closed while we were away: nothing was taken */
	snprintf(text, sizeof(text), "4.4.2 %s with %s in reply to %s",
	    rstatus_text(st), c->relay, phase);
	all_pending(m, RELAY_O_DEFERRED, text);
	return -1;
lost:
	if (reused && strcmp(phase, "MAIL") == 0)
		return -2;
	snprintf(text, sizeof(text), "4.4.2 write error to %s during %s", c->relay, phase);
	all_pending(m, RELAY_O_DEFERRED, text);
	return -1;
}

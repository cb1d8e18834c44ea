/*
 * relay_smtpd — receiver process and SMTP session.
 *
 * The session is an explicit state machine driven by a command table:
 * each row names the verb, the states where it is allowed and the handler
 * (syntax checks, then the action). enter_state() is the only place the
 * state changes. Lines come from lib/io (never "one read"); replies are
 * buffered and flushed by io before it blocks, so a pipelined group gets
 * its replies together (RFC 2920).
 *
 * Clients in client_networks may send without AUTH. With smtpd_auth_user
 * set (and a certificate), others may connect too, but must STARTTLS and
 * AUTH PLAIN/LOGIN (never offered in clear) before MAIL; the one
 * credential pair is compared in constant time and never logged.
 *
 * Strictness: a command line must end in CRLF and hold no other CR or LF;
 * in DATA and BDAT every LF must follow a CR and every CR precede an LF,
 * else the message is refused with 550 5.6.0 after its end (the gate's
 * reply). DATA ends only on CRLF.CRLF: a "." line after a bare LF is text. The size limit
 * is enforced while reading (552 5.3.4). Nothing is answered 250 before
 * relay_spool_commit() returned 0; a failed commit (disk full) is 452 4.3.1.
 */
#include <errno.h>
#include <stdarg.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "config.h"
#include "io.h"
#include "log.h"
#include "net.h"
#include "smtp.h"
#include "tls.h"
#include "relay_config.h"
#include "relay_dkim.h"
#include "relay_metrics.h"
#include "relay_proc.h"
#include "relay_smtpd.h"
#include "relay_smtpd_int.h"
#include "relay_spool.h"

#define SMTPD_RBUF	65536
#define reply		relay_smtpd_reply
#define enter_state	relay_smtpd_enter
#define SMTPD_MAX_ERRORS 10
#define BDAT_MIN_RATE	8192	/* bytes/s a BDAT chunk may count on */

static const char *
state_name(enum smtpd_state s)
{
	switch (s) {
	case ST_GREET: return "greet";
	case ST_READY: return "ready";
	case ST_MAIL: return "mail";
	case ST_RCPT: return "rcpt";
	case ST_BDAT: return "bdat";
	default: return "quit";
	}
}

void
relay_smtpd_enter(struct smtpd *s, enum smtpd_state st)
{
	if (s->state != st)
		log_debug("smtpd client=%s state %s -> %s", s->client,
		    state_name(s->state), state_name(st));
	s->state = st;
}

void
relay_smtpd_reply(struct smtpd *s, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(buf) - 3)
		n = (int)sizeof(buf) - 3;
	memcpy(buf + n, "\r\n", 2);
	if (io_write(&s->io, buf, (size_t)n + 2) != 0)
		enter_state(s, ST_QUIT);
}

static void
txn_reset(struct smtpd *s)
{
	for (size_t i = 0; i < s->nrcpts; i++) {
		free(s->rcpts[i]);
		free(s->orcpt[i]);
		s->orcpt[i] = NULL;
	}
	s->nrcpts = 0;
	s->from[0] = '\0';
	s->ret = RELAY_RET_NONE;
	s->envid[0] = '\0';
	s->utf8 = s->eightbit = 0;
	if (s->w) {
		relay_spool_abort(s->w);
		free(s->w);
		s->w = NULL;
	}
	s->size = 0;
	s->too_big = s->bad_lf = s->bad_cr = s->prev_cr = s->bdat_failed = 0;
}

static long long
mono_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- message body ----------------------------------------------------- */

static int
body_begin(struct smtpd *s)
{
	char date[64], hdr[1024];
	time_t now = time(NULL);
	struct tm tm;
	struct relay_spool_dsn dsn = { s->ret, s->envid[0] ? s->envid : NULL, s->notify,
		s->orcpt };
	int n;

	s->w = malloc(sizeof(*s->w));
	if (s->w == NULL)
		return -1;
	if (relay_spool_create_ext(s->cfg->spool_dir, s->w, s->from, s->utf8, s->eightbit,
	    s->client, s->rcpts, s->nrcpts, &dsn) != 0) {
		log_err("smtpd client=%s spool create failed: %s", s->client, strerror(errno));
		free(s->w);
		s->w = NULL;
		return -1;
	}
	if (localtime_r(&now, &tm) == NULL ||
	    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		snprintf(date, sizeof(date), "Thu, 01 Jan 1970 00:00:00 +0000");
	n = snprintf(hdr, sizeof(hdr),
	    "Received: from %s ([%s])\r\n\tby %s (tailwart-relay) with %s id %s;\r\n\t%s\r\n",
	    s->helo[0] ? s->helo : "unknown", s->client, s->cfg->hostname,
	    s->utf8 ? (s->authed ? "UTF8SMTPSA" : s->tls ? "UTF8SMTPS" : "UTF8SMTP") :
	    !s->esmtp ? "SMTP" : s->authed ? "ESMTPSA" : s->tls ? "ESMTPS" : "ESMTP",
	    s->w->id, date);
	if (n > 0 && (size_t)n < sizeof(hdr))
		relay_spool_write(s->w, hdr, (size_t)n);
	s->size = 0;
	return 0;
}

static void
body_add(struct smtpd *s, const char *p, size_t len)
{
	s->size += (off_t)len;
	if (s->too_big || s->size > (off_t)s->cfg->message_size_limit) {
		s->too_big = 1;
		return;
	}
	relay_spool_write(s->w, p, len);
}

/* Finish the message: checks, DKIM, commit, the one final reply. */
static void
body_end(struct smtpd *s)
{
	char why[256], *dkim = NULL;
	size_t dkim_len = 0;
	char id[RELAY_ID_LEN + 1];
	enum relay_dkim_result dr;

	if (s->bad_lf || s->bad_cr) {
		/* the gate's reply for the same thing (gate_data.c) */
		log_info("smtpd client=%s reject reason=%s from=\"<%s>\" reply=\"550 5.6.0\"",
		    s->client, s->bad_lf ? "bare-lf" : "bare-cr", log_q(s->from));
		reply(s, "550 5.6.0 Message contains bare %s; lines must end in CRLF",
		    s->bad_lf ? "LF" : "CR");
		s->errors++;
		goto done;
	}
	if (s->too_big) {
		log_info("smtpd client=%s reject reason=size size=%lld", s->client,
		    (long long)s->size);
		reply(s, "552 5.3.4 Message too big");
		goto done;
	}
	/* a BDAT message need not end with CRLF; delivery needs it to */
	if (s->w->last2[0] != '\r' || s->w->last2[1] != '\n')
		relay_spool_write(s->w, "\r\n", 2);
	if (relay_spool_flush(s->w) != 0) {
		log_err("%s spool write failed: %s", s->w->id, strerror(errno));
		reply(s, "452 4.3.1 Insufficient system storage");
		goto done;
	}
	why[0] = '\0';
	dr = relay_dkim_sign(s->cfg, s->w->id, s->w->fd, s->w->body_off,
	    s->w->off - s->w->body_off, &dkim, &dkim_len, why, sizeof(why));
	if (dr == RELAY_DKIM_SIGNED || dr == RELAY_DKIM_ERROR)
		relay_metric_dkim(dr == RELAY_DKIM_ERROR);
	if (dr == RELAY_DKIM_ERROR) {
		log_err("%s dkim signing failed: %s", s->w->id, why);
		reply(s, "451 4.3.0 Signing failed, try again later");
		goto done;
	}
	memcpy(id, s->w->id, sizeof(id));
	long long metric_t0 = relay_metric_now_us();
	if (relay_spool_commit(s->cfg->spool_dir, s->w, dkim, dkim_len) != 0) {
		log_err("%s spool commit failed: %s", id, strerror(errno));
		free(dkim);
		free(s->w);
		s->w = NULL;
		reply(s, "452 4.3.1 Insufficient system storage");
		goto done;
	}
	free(dkim);
	free(s->w);
	s->w = NULL;
	relay_metric_received(metric_t0);
	{
		char to[512];
		log_info("%s queued client=%s from=\"<%s>\" nrcpt=%zu size=%lld dkim=%s",
		    id, s->client, log_quote(to, sizeof(to), s->from, strlen(s->from)),
		    s->nrcpts, (long long)s->size,
		    dr == RELAY_DKIM_SIGNED ? "signed" : "none");
	}
	reply(s, "250 2.0.0 Ok: queued as %s", id);
	{
		char msg[64];
		snprintf(msg, sizeof(msg), "new %s", id);
		(void)relay_notify(s->cfg->spool_dir, msg);	/* the scheduler also scans */
	}
done:
	txn_reset(s);
	enter_state(s, ST_READY);
}

/* ---- commands ----------------------------------------------------------- */

static void
cmd_starttls(struct smtpd *s, const char *args)
{
	if (s->cfg->smtpd_tls == NULL || s->tls) {
		reply(s, "502 5.5.1 STARTTLS not available");
		return;
	}
	if (*args) {
		reply(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	reply(s, "220 2.0.0 Ready to start TLS");
	/* anything pipelined after STARTTLS is discarded by io */
	if (io_starttls_server(&s->io, s->cfg->smtpd_tls) != 0) {
		char e[256];
		log_info("smtpd client=%s TLS handshake failed: %s", s->client,
		    tls_last_error(e, sizeof(e)));
		enter_state(s, ST_QUIT);
		return;
	}
	s->tls = 1;
	txn_reset(s);
	s->helo[0] = '\0';
	enter_state(s, ST_GREET);	/* a new EHLO is required */
}

static void
cmd_ehlo(struct smtpd *s, const char *args, int esmtp)
{
	if (*args == '\0' || strlen(args) >= sizeof(s->helo) || !smtp_valid_helo(args)) {
		reply(s, "501 5.5.4 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
		return;
	}
	txn_reset(s);
	snprintf(s->helo, sizeof(s->helo), "%s", args);
	s->esmtp = esmtp;
	if (!esmtp)
		reply(s, "250 %s", s->cfg->hostname);
	else
		reply(s, "250-%s\r\n250-PIPELINING\r\n250-SIZE %zu\r\n250-8BITMIME\r\n"
		    "250-SMTPUTF8\r\n250-CHUNKING\r\n250-DSN\r\n%s%s250 ENHANCEDSTATUSCODES",
		    s->cfg->hostname, s->cfg->message_size_limit,
		    s->cfg->smtpd_tls && !s->tls ? "250-STARTTLS\r\n" : "",
		    relay_smtpd_auth_offered(s) ? "250-AUTH PLAIN LOGIN\r\n" : "");
	enter_state(s, ST_READY);
}

static void
cmd_mail(struct smtpd *s, char *args)
{
	struct smtp_path p;
	const char *why, *envid = NULL;
	int utf8 = 0, eightbit = 0;
	enum relay_ret ret = RELAY_RET_NONE;

	if (!s->trusted && !s->authed) {
		/* a temporary failure: a misconfigured client (Stalwart's relay
		 * route without credentials) must queue and retry, not bounce */
		log_warn("smtpd client=%s reject reason=no-auth stage=mail reply=\"450 4.7.0\": "
		    "not in client_networks and not authenticated (check the client's credentials)",
		    s->client);
		reply(s, "450 4.7.0 Authentication required");
		return;
	}
	if (smtp_parse_path(args, "FROM:", 1, &p, &why) != 0) {
		reply(s, "501 5.5.4 %s", why);
		return;
	}
	for (size_t i = 0; i < p.nparams; i++) {
		const char *k = p.params[i].key, *v = p.params[i].value;
		if (strcmp(k, "SIZE") == 0 && v) {
			unsigned long long n;
			if (conf_parse_uint(v, &n, &why) != 0) {
				reply(s, "501 5.5.4 Bad SIZE parameter");
				return;
			}
			if (n > s->cfg->message_size_limit) {
				reply(s, "552 5.3.4 Message too big");
				return;
			}
		} else if (strcmp(k, "BODY") == 0 && v && strcasecmp(v, "8BITMIME") == 0)
			eightbit = 1;
		else if (strcmp(k, "BODY") == 0 && v && strcasecmp(v, "7BIT") == 0)
			eightbit = 0;
		else if (strcmp(k, "SMTPUTF8") == 0 && v == NULL && s->esmtp)
			utf8 = 1;
		else if (strcmp(k, "AUTH") == 0 && s->authed)
			;	/* RFC 4954 AUTH=: accepted, not relayed */
		else if (strcmp(k, "RET") == 0 && v && s->esmtp && ret == RELAY_RET_NONE &&
		    (strcasecmp(v, "FULL") == 0 || strcasecmp(v, "HDRS") == 0))
			ret = strcasecmp(v, "FULL") == 0 ? RELAY_RET_FULL : RELAY_RET_HDRS;
		else if (strcmp(k, "ENVID") == 0 && v && s->esmtp && envid == NULL) {
			if (!relay_dsn_xtext_ok(v, 100)) {
				reply(s, "501 5.5.4 Bad ENVID parameter");
				return;
			}
			envid = v;
		} else {
			reply(s, "555 5.5.4 Unsupported parameter %s", k);
			return;
		}
	}
	if (!smtp_valid_mailbox(p.addr, utf8)) {
		reply(s, "553 5.1.7 Bad sender address syntax");
		return;
	}
	snprintf(s->from, sizeof(s->from), "%s", p.addr);
	s->utf8 = utf8;
	s->eightbit = eightbit;
	s->ret = ret;
	snprintf(s->envid, sizeof(s->envid), "%s", envid ? envid : "");
	reply(s, "250 2.1.0 Ok");
	enter_state(s, ST_MAIL);
}

static void
cmd_rcpt(struct smtpd *s, char *args)
{
	struct smtp_path p;
	const char *why, *orcpt = NULL;
	unsigned notify = 0;

	if (smtp_parse_path(args, "TO:", 0, &p, &why) != 0) {
		reply(s, "501 5.5.4 %s", why);
		return;
	}
	for (size_t i = 0; i < p.nparams; i++) {
		const char *k = p.params[i].key, *v = p.params[i].value;
		if (strcmp(k, "NOTIFY") == 0 && v && s->esmtp && notify == 0) {
			if (relay_dsn_notify_parse(v, &notify) != 0) {
				reply(s, "501 5.5.4 Bad NOTIFY parameter");
				return;
			}
		} else if (strcmp(k, "ORCPT") == 0 && v && s->esmtp && orcpt == NULL) {
			if (!relay_dsn_orcpt_ok(v)) {
				reply(s, "501 5.5.4 Bad ORCPT parameter");
				return;
			}
			orcpt = v;
		} else {
			reply(s, "555 5.5.4 Unsupported parameter %s", k);
			return;
		}
	}
	if (p.addr[0] == '\0' || !smtp_valid_mailbox(p.addr, s->utf8) ||
	    strchr(p.addr, '@') == NULL) {
		reply(s, "553 5.1.3 Bad recipient address syntax");
		return;
	}
	if (s->nrcpts >= RELAY_RCPT_MAX) {
		reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	s->rcpts[s->nrcpts] = strdup(p.addr);
	s->orcpt[s->nrcpts] = orcpt ? strdup(orcpt) : NULL;
	if (s->rcpts[s->nrcpts] == NULL || (orcpt && s->orcpt[s->nrcpts] == NULL)) {
		free(s->rcpts[s->nrcpts]);
		free(s->orcpt[s->nrcpts]);
		s->orcpt[s->nrcpts] = NULL;
		reply(s, "451 4.3.0 Out of memory");
		return;
	}
	s->notify[s->nrcpts] = notify;
	s->nrcpts++;
	reply(s, "250 2.1.5 Ok");
	enter_state(s, ST_RCPT);
}

static void
cmd_data(struct smtpd *s, const char *args)
{
	int at_bol = 1, prev_crlf = 1;	/* "DATA\r\n" ended in CRLF */

	if (*args) {
		reply(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (body_begin(s) != 0) {
		reply(s, "452 4.3.1 Insufficient system storage");
		txn_reset(s);
		enter_state(s, ST_READY);
		return;
	}
	reply(s, "354 End data with <CR><LF>.<CR><LF>");
	for (;;) {
		const char *line;
		size_t len;
		enum io_status st = io_getline(&s->io, &line, &len);

		if (st != IO_OK && st != IO_PARTIAL) {
			log_info("smtpd client=%s lost in DATA: %s", s->client,
			    st == IO_TIMEOUT ? "timeout" : st == IO_EOF ? "eof" : "error");
			txn_reset(s);
			enter_state(s, ST_QUIT);
			return;
		}
		/* The end is CRLF.CRLF and nothing else: a "." line after a
		 * line that ended in a bare LF (or CR) is message text, else
		 * a client could smuggle a second transaction past the first
		 * (SMTP smuggling); the message is refused at its real end. */
		if (st == IO_OK && at_bol && prev_crlf && len == 3 &&
		    memcmp(line, ".\r\n", 3) == 0)
			break;
		if (st == IO_OK) {
			if (len < 2 || line[len - 2] != '\r')
				s->bad_lf = 1;
			if (len > 2 && memchr(line, '\r', len - 2) != NULL)
				s->bad_cr = 1;
		} else if (memchr(line, '\r', len) != NULL)
			s->bad_cr = 1;
		if (at_bol && line[0] == '.') {
			line++;
			len--;
		}
		body_add(s, line, len);
		at_bol = st == IO_OK;
		prev_crlf = at_bol && len >= 2 && line[len - 2] == '\r';
	}
	body_end(s);
}

static void
cmd_bdat(struct smtpd *s, const char *args)
{
	char num[32];
	unsigned long long n;
	const char *why, *sp = strchr(args, ' ');
	size_t nl = sp ? (size_t)(sp - args) : strlen(args);
	int last = 0, ok_state;

	if (nl == 0 || nl >= sizeof(num)) {
		reply(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		return;
	}
	memcpy(num, args, nl);
	num[nl] = '\0';
	if (conf_parse_uint(num, &n, &why) != 0) {
		reply(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		return;
	}
	if (sp) {
		while (*sp == ' ')
			sp++;
		if (strcasecmp(sp, "LAST") != 0) {
			reply(s, "501 5.5.4 Syntax: BDAT size [LAST]");
			return;
		}
		last = 1;
	}
	if (n > (unsigned long long)s->cfg->message_size_limit + 1024 * 1024) {
		/* no chunk this size can be part of an acceptable message, and
		 * eating it would take as long as the client wants: hang up */
		log_info("smtpd client=%s reject reason=bdat-size size=%llu", s->client, n);
		reply(s, "552 5.3.4 Message too big");
		txn_reset(s);
		enter_state(s, ST_QUIT);
		return;
	}
	ok_state = (s->state & (ST_RCPT | ST_BDAT)) != 0;
	if (ok_state && s->w == NULL && body_begin(s) != 0)
		s->bdat_failed = 1;
	/* always consume the announced bytes, else they would be read as
	 * commands; the whole chunk has one deadline (smtp_timeout, plus a
	 * second per BDAT_MIN_RATE bytes), not a fresh timeout per read, so a
	 * client cannot hold the session by dribbling a byte now and then */
	long long deadline = mono_ms() + (long long)s->cfg->smtp_timeout * 1000 +
	    (long long)(n / BDAT_MIN_RATE) * 1000;
	int step_ms = s->io.timeout_ms;
	for (unsigned long long left = n; left > 0; ) {
		const char *p;
		size_t got;
		long long rest = deadline - mono_ms();
		enum io_status st;

		s->io.timeout_ms = rest < 1 ? 1 : rest < step_ms ? (int)rest : step_ms;
		st = rest < 1 ? IO_TIMEOUT : io_getbytes(&s->io,
		    left > SIZE_MAX ? SIZE_MAX : (size_t)left, &p, &got);
		s->io.timeout_ms = step_ms;
		if (st != IO_OK) {
			log_info("smtpd client=%s lost in BDAT: %s size=%llu left=%llu", s->client,
			    st == IO_TIMEOUT ? "timeout" : "eof", n, left);
			if (st == IO_TIMEOUT)
				reply(s, "421 4.4.2 Timeout");
			txn_reset(s);
			enter_state(s, ST_QUIT);
			return;
		}
		left -= got;
		if (!ok_state || s->bdat_failed)
			continue;
		for (size_t i = 0; i < got; i++) {
			char c = p[i];
			if (s->prev_cr && c != '\n')
				s->bad_cr = 1;
			if (!s->prev_cr && c == '\n')
				s->bad_lf = 1;
			s->prev_cr = c == '\r';
		}
		body_add(s, p, got);
	}
	if (!ok_state) {
		reply(s, "503 5.5.1 Bad sequence of commands");
		return;
	}
	if (s->bdat_failed) {
		reply(s, "452 4.3.1 Insufficient system storage");
		if (last) {
			txn_reset(s);
			enter_state(s, ST_READY);
		} else
			enter_state(s, ST_BDAT);
		return;
	}
	if (!last) {
		reply(s, "250 2.0.0 %llu octets received", n);
		enter_state(s, ST_BDAT);
		return;
	}
	if (s->prev_cr)
		s->bad_cr = 1;
	body_end(s);
}

static void
cmd_rset(struct smtpd *s, const char *args)
{
	(void)args;
	txn_reset(s);
	reply(s, "250 2.0.0 Ok");
	enter_state(s, s->state == ST_GREET ? ST_GREET : ST_READY);
}

static void
cmd_noop(struct smtpd *s, const char *args)
{
	(void)args;
	reply(s, "250 2.0.0 Ok");
}

static void
cmd_quit(struct smtpd *s, const char *args)
{
	(void)args;
	reply(s, "221 2.0.0 Bye");
	enter_state(s, ST_QUIT);
}

static void
cmd_vrfy(struct smtpd *s, const char *args)
{
	(void)args;
	reply(s, "252 2.5.2 Cannot VRFY user");
}

static void
cmd_help(struct smtpd *s, const char *args)
{
	(void)args;
	reply(s, "214 2.0.0 See RFC 5321");
}

static void
cmd_expn(struct smtpd *s, const char *args)
{
	(void)args;
	reply(s, "502 5.5.1 EXPN not available");
}

enum cmd_id { C_EHLO, C_HELO, C_MAIL, C_RCPT, C_DATA, C_BDAT, C_RSET, C_NOOP,
	C_QUIT, C_VRFY, C_EXPN, C_HELP, C_STARTTLS, C_AUTH };

static const struct smtpd_cmd {
	const char	*verb;
	enum cmd_id	 id;
	int		 states;	/* where it is allowed */
} smtpd_cmds[] = {
	{ "EHLO", C_EHLO, ST_GREET | ST_READY | ST_MAIL | ST_RCPT },
	{ "HELO", C_HELO, ST_GREET | ST_READY | ST_MAIL | ST_RCPT },
	{ "MAIL", C_MAIL, ST_READY },
	{ "RCPT", C_RCPT, ST_MAIL | ST_RCPT },
	{ "DATA", C_DATA, ST_RCPT },
	{ "BDAT", C_BDAT, ST_ANY },	/* checks its state after eating its bytes */
	{ "RSET", C_RSET, ST_ANY },
	{ "NOOP", C_NOOP, ST_ANY },
	{ "QUIT", C_QUIT, ST_ANY },
	{ "VRFY", C_VRFY, ST_ANY },
	{ "EXPN", C_EXPN, ST_ANY },
	{ "HELP", C_HELP, ST_ANY },
	{ "STARTTLS", C_STARTTLS, ST_GREET | ST_READY },
	{ "AUTH", C_AUTH, ST_READY },
};

static void
dispatch(struct smtpd *s, char *line)
{
	const char *args;
	size_t vl = smtp_verb(line, &args);
	const struct smtpd_cmd *c = NULL;

	for (size_t i = 0; i < sizeof(smtpd_cmds) / sizeof(smtpd_cmds[0]); i++)
		if (strlen(smtpd_cmds[i].verb) == vl &&
		    strncasecmp(smtpd_cmds[i].verb, line, vl) == 0) {
			c = &smtpd_cmds[i];
			break;
		}
	if (c == NULL) {
		s->errors++;
		reply(s, "500 5.5.2 Command unrecognized");
		return;
	}
	if (!(c->states & s->state)) {
		s->errors++;
		if (s->state == ST_BDAT && c->id == C_DATA)
			reply(s, "503 5.5.1 DATA not allowed after BDAT");
		else if (s->state == ST_GREET)
			reply(s, "503 5.5.1 Send EHLO first");
		else if (c->id == C_MAIL)
			reply(s, "503 5.5.1 Nested MAIL command");
		else if (c->id == C_RCPT)
			reply(s, "503 5.5.1 Need MAIL first");
		else if (c->id == C_DATA)
			reply(s, "503 5.5.1 Need RCPT first");
		else
			reply(s, "503 5.5.1 Bad sequence of commands");
		return;
	}
	char *a = line + (args - line);
	switch (c->id) {
	case C_EHLO: cmd_ehlo(s, a, 1); break;
	case C_HELO: cmd_ehlo(s, a, 0); break;
	case C_MAIL: cmd_mail(s, a); break;
	case C_RCPT: cmd_rcpt(s, a); break;
	case C_DATA: cmd_data(s, a); break;
	case C_BDAT: cmd_bdat(s, a); break;
	case C_RSET: cmd_rset(s, a); break;
	case C_NOOP: cmd_noop(s, a); break;
	case C_QUIT: cmd_quit(s, a); break;
	case C_VRFY: cmd_vrfy(s, a); break;
	case C_HELP: cmd_help(s, a); break;
	case C_STARTTLS: cmd_starttls(s, a); break;
	case C_AUTH: relay_smtpd_auth(s, a); break;
	case C_EXPN: cmd_expn(s, a); break;
	}
}

int
relay_smtpd_session(const struct relay_config *cfg, int fd)
{
	return relay_smtpd_serve(cfg, fd, 0) < 0 ? 1 : 0;
}

int
relay_smtpd_serve(const struct relay_config *cfg, int fd, unsigned auth_prior)
{
	struct smtpd s;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	unsigned port = 0;
	int skipping = 0;

	memset(&s, 0, sizeof(s));
	s.cfg = cfg;
	s.fd = fd;
	s.state = ST_GREET;
	s.auth_prior = auth_prior;
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0) {
		(void)close(fd);
		return -1;
	}
	net_unmap(&ss);
	if (net_addr_str(&ss, s.client, sizeof(s.client), &port) != 0)
		snprintf(s.client, sizeof(s.client), "unknown");
	if (io_init(&s.io, fd, SMTPD_RBUF, (int)cfg->smtp_timeout * 1000) != 0) {
		(void)close(fd);
		return -1;
	}
	s.trusted = net_cidr_list_match(&cfg->client_networks, &ss);
	if (!s.trusted && !relay_config_set(cfg->smtpd_auth_user)) {
		/* 4xx, not 5xx: a client that should be here but is not listed
		 * (a misconfiguration) queues and retries instead of bouncing */
		log_warn("smtpd client=%s reject reason=client_networks reply=\"421 4.7.0\": "
		    "not in client_networks and no smtpd_auth_user (add it to client_networks "
		    "if it should relay)", s.client);
		reply(&s, "421 4.7.0 %s: client not in client_networks", s.client);
		(void)io_flush(&s.io);
		io_free(&s.io);
		(void)close(fd);
		return 0;
	}
	if (!s.trusted && relay_smtpd_auth_blocked(&s)) {
		log_warn("smtpd client=%s reject reason=auth-limit client_failures=%u",
		    s.client, s.auth_prior);
		reply(&s, "421 4.7.0 Too many failed authentication attempts, try again later");
		(void)io_flush(&s.io);
		io_free(&s.io);
		(void)close(fd);
		return 0;
	}
	log_debug("smtpd connect client=%s port=%u", s.client, port);
	reply(&s, "220 %s ESMTP tailwart-relay", cfg->hostname);
	while (s.state != ST_QUIT) {
		const char *line;
		size_t len;
		char buf[SMTP_LINE_MAX + 1];
		enum io_status st;

		if (s.errors >= SMTPD_MAX_ERRORS) {
			reply(&s, "421 4.7.0 Too many errors");
			break;
		}
		st = io_getline(&s.io, &line, &len);
		if (st == IO_TIMEOUT) {
			reply(&s, "421 4.4.2 Timeout");
			break;
		}
		if (st == IO_EOF || st == IO_ERROR)
			break;
		if (st == IO_PARTIAL) {
			skipping = 1;	/* an overlong line: 500 when it ends */
			continue;
		}
		if (skipping || len > SMTP_LINE_MAX) {
			skipping = 0;
			s.errors++;
			reply(&s, "500 5.5.2 Line too long");
			continue;
		}
		if (len < 2 || line[len - 2] != '\r' || memchr(line, '\r', len - 2) ||
		    memchr(line, '\0', len)) {
			s.errors++;
			reply(&s, "500 5.5.2 Syntax error: bare CR or LF, or NUL");
			continue;
		}
		memcpy(buf, line, len - 2);
		buf[len - 2] = '\0';
		dispatch(&s, buf);
	}
	(void)io_flush(&s.io);
	txn_reset(&s);
	io_free(&s.io);
	(void)close(fd);	/* the session is over either way */
	return (int)s.auth_fails;
}

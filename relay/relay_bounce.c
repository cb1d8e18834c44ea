/*
 * relay_bounce — build and queue a DSN (RFC 3464, RFC 6522 multipart/report).
 *
 * The DSN goes through the same spool as any message (so it is durable,
 * DKIM-signed when the relay's hostname has a key, and retried), from the
 * null sender, so a DSN that fails itself is never bounced again.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "relay_bounce.h"
#include "relay_dkim.h"

void
relay_bounce_status(const char *reply, const char *def, char *out, size_t outlen)
{
	const char *p = reply;

	snprintf(out, outlen, "%s", def);
	if (p == NULL)
		return;
	/* skip a 3-digit code */
	if (isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1]) &&
	    isdigit((unsigned char)p[2]) && (p[3] == ' ' || p[3] == '-'))
		p += 4;
	if ((p[0] == '2' || p[0] == '4' || p[0] == '5') && p[1] == '.') {
		size_t n = 2, dots = 1;
		while (isdigit((unsigned char)p[n]) || (p[n] == '.' && dots < 2)) {
			if (p[n] == '.')
				dots++;
			n++;
		}
		if (dots == 2 && n < outlen && n <= 11 && isdigit((unsigned char)p[n - 1])) {
			memcpy(out, p, n);
			out[n] = '\0';
		}
	}
}

static void
rfc822_date(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		snprintf(buf, len, "Thu, 01 Jan 1970 00:00:00 +0000");
}

static void
wprintf_(struct relay_spool_writer *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void
wprintf_(struct relay_spool_writer *w, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = (int)sizeof(buf) - 1;
	relay_spool_write(w, buf, (size_t)n);
}

/* Copy the original header block (up to the empty line, at most 64K). */
static void
copy_headers(struct relay_spool_writer *w, const struct relay_msg *m, int fd)
{
	char buf[65536];
	size_t n = m->body_len < (off_t)sizeof(buf) ? (size_t)m->body_len : sizeof(buf);
	size_t end = 0;

	if (m->dkim_len > 0)
		relay_spool_write(w, m->dkim, m->dkim_len);
	if (n == 0 || relay_spool_pread(fd, buf, n, m->body_off) != 0)
		return;
	{
		const char *e = memmem(buf, n, "\r\n\r\n", 4);
		end = e ? (size_t)(e - buf) + 2 : n;
	}
	relay_spool_write(w, buf, end);
	if (end < 2 || buf[end - 1] != '\n')
		relay_spool_write(w, "\r\n", 2);
}

/* Whether a recipient belongs in a report of this kind (RFC 3461 NOTIFY:
 * not given = failure and delay reports). */
static int
reported(const struct relay_rcpt *r, enum relay_dsn_kind kind)
{
	switch (kind) {
	case RELAY_DSN_FAILED:
		return r->status == RELAY_R_BOUNCED &&
		    (r->notify == 0 || (r->notify & RELAY_NOTIFY_FAILURE));
	case RELAY_DSN_DELAYED:
		return r->status == RELAY_R_PENDING &&
		    (r->notify == 0 || (r->notify & RELAY_NOTIFY_DELAY));
	default:
		return r->relayed && (r->notify & RELAY_NOTIFY_SUCCESS);
	}
}

enum relay_dsn_result
relay_bounce_queue(const struct relay_config *cfg, const struct relay_msg *m,
    int fd, enum relay_dsn_kind kind, const char *remote_mta,
    char newid[RELAY_ID_LEN + 1])
{
	struct relay_spool_writer *w;
	char *rcpt = m->from, date[64], arr[64], st[16], *dkim = NULL, why[256];
	char *const rcpts[1] = { rcpt };
	size_t dkim_len = 0, n = 0;
	const char *host = cfg->hostname;

	if (m->from == NULL || m->from[0] == '\0')
		return RELAY_DSN_NONE;
	for (size_t i = 0; i < m->nrcpts; i++)
		if (reported(&m->rcpts[i], kind))
			n++;
	if (n == 0)
		return RELAY_DSN_NONE;
	w = malloc(sizeof(*w));
	if (w == NULL)
		return RELAY_DSN_ERROR;
	if (relay_spool_create(cfg->spool_dir, w, "", m->utf8, 0, NULL, rcpts, 1) != 0) {
		free(w);
		return RELAY_DSN_ERROR;
	}
	rfc822_date(time(NULL), date, sizeof(date));
	rfc822_date(m->arrival, arr, sizeof(arr));
	wprintf_(w, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", host);
	wprintf_(w, "To: <%s>\r\n", rcpt);
	wprintf_(w, "Subject: %s\r\n", kind == RELAY_DSN_FAILED ?
	    "Undelivered Mail Returned to Sender" : kind == RELAY_DSN_DELAYED ?
	    "Delayed Mail (still being retried)" : "Successful Mail Delivery Report");
	wprintf_(w, "Date: %s\r\nMessage-ID: <%s.%s@%s>\r\n", date, w->id, m->id, host);
	wprintf_(w, "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n");
	wprintf_(w, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	    "\tboundary=\"%s/%s\"\r\n", m->id, host);
	wprintf_(w, "Content-Transfer-Encoding: 8bit\r\n\r\n");
	wprintf_(w, "This is a MIME-encapsulated message.\r\n\r\n");
	/* part 1: for humans */
	wprintf_(w, "--%s/%s\r\nContent-Description: Notification\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n\r\n", m->id, host);
	wprintf_(w, "This is the mail system at host %s.\r\n\r\n", host);
	if (kind == RELAY_DSN_FAILED)
		wprintf_(w, "Your message could not be delivered to one or more\r\n"
		    "recipients. It is attached below.\r\n\r\n");
	else if (kind == RELAY_DSN_RELAYED)
		wprintf_(w, "Your message was relayed to a mail system that does not\r\n"
		    "report delivery; no further notification will be sent.\r\n\r\n");
	else
		wprintf_(w, "Your message could not be delivered yet to one or more\r\n"
		    "recipients. Delivery will be retried; you need not resend it.\r\n\r\n");
	for (size_t i = 0; i < m->nrcpts; i++) {
		const struct relay_rcpt *r = &m->rcpts[i];
		if (!reported(r, kind))
			continue;
		wprintf_(w, "<%s>: %s\r\n", r->addr, r->reply ? r->reply : "(no reply)");
	}
	/* part 2: for machines */
	wprintf_(w, "\r\n--%s/%s\r\nContent-Description: Delivery report\r\n"
	    "Content-Type: message/delivery-status\r\n\r\n", m->id, host);
	wprintf_(w, "Reporting-MTA: dns; %s\r\nX-Tailwart-Queue-ID: %s\r\n", host, m->id);
	if (m->from[0])
		wprintf_(w, "X-Tailwart-Sender: rfc822; %s\r\n", m->from);
	if (m->envid)
		wprintf_(w, "Original-Envelope-Id: %s\r\n", m->envid);
	wprintf_(w, "Arrival-Date: %s\r\n", arr);
	for (size_t i = 0; i < m->nrcpts; i++) {
		const struct relay_rcpt *r = &m->rcpts[i];
		if (!reported(r, kind))
			continue;
		if (kind == RELAY_DSN_RELAYED)
			snprintf(st, sizeof(st), "2.0.0");
		else
			relay_bounce_status(r->reply, kind == RELAY_DSN_FAILED ? "5.0.0" : "4.0.0",
			    st, sizeof(st));
		if (r->orcpt)
			wprintf_(w, "\r\nOriginal-Recipient: %s", r->orcpt);
		/* an expired message's last error may be a 4.x.x: report it as it was */
		wprintf_(w, "\r\nFinal-Recipient: rfc822; %s\r\nAction: %s\r\nStatus: %s\r\n",
		    r->addr, kind == RELAY_DSN_FAILED ? "failed" : kind == RELAY_DSN_DELAYED ?
		    "delayed" : "relayed", st);
		if (remote_mta && *remote_mta)
			wprintf_(w, "Remote-MTA: dns; %s\r\n", remote_mta);
		if (r->reply && r->reply[0] >= '2' && r->reply[0] <= '5')
			wprintf_(w, "Diagnostic-Code: smtp; %s\r\n", r->reply);
		else
			wprintf_(w, "Diagnostic-Code: X-tailwart; %s\r\n",
			    r->reply ? r->reply : "unknown");
	}
	/* part 3: the original headers */
	wprintf_(w, "\r\n--%s/%s\r\nContent-Description: Undelivered Message Headers\r\n"
	    "Content-Type: text/rfc822-headers\r\n\r\n", m->id, host);
	copy_headers(w, m, fd);
	wprintf_(w, "\r\n--%s/%s--\r\n", m->id, host);
	if (relay_spool_flush(w) != 0)
		goto fail;
	why[0] = '\0';
	if (relay_dkim_sign(cfg, w->id, w->fd, w->body_off, w->off - w->body_off,
	    &dkim, &dkim_len, why, sizeof(why)) == RELAY_DKIM_ERROR)
		log_warn("%s dsn not signed: %s", w->id, why);
	memcpy(newid, w->id, RELAY_ID_LEN + 1);
	if (relay_spool_commit(cfg->spool_dir, w, dkim, dkim_len) != 0) {
		free(dkim);
		free(w);
		return RELAY_DSN_ERROR;
	}
	free(dkim);
	free(w);
	return RELAY_DSN_QUEUED;
fail:
	relay_spool_abort(w);
	free(w);
	return RELAY_DSN_ERROR;
}

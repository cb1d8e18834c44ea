/*
 * smtpd_data — the engine's message readers: DATA (dot-terminated, strict
 * CRLF lines) and BDAT (length-framed chunks, RFC 3030). Both hand the
 * program the canonical message through the data hook: unstuffed, in
 * order, never past the size limit and never after a bare CR or LF was
 * seen. Such a message is refused when the client has finished sending it
 * (550 5.6.0 / 552 5.3.4), so the session stays in step; the program's
 * data_abort hook drops what it stored and data_end never sees it.
 *
 * DATA ends on CRLF.CRLF and nothing else: a "." line after a line that
 * ended in a bare LF is message text, else a client could smuggle a second
 * transaction past the first (SMTP smuggling).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "smtpd_int.h"

#define BDAT_MIN_RATE	8192		/* bytes/s a BDAT chunk may count on */
#define BDAT_SLACK	(1024 * 1024)	/* a chunk larger than limit + this: hang up */

/* Message bytes, already canonical: counted, and passed on while the
 * message is still good. */
static void
add(struct smtpd *e, const char *p, size_t n, int bol)
{
	e->size += n;
	if (e->size > e->conf.size_limit)
		e->too_big = 1;
	if (!e->bad_lf && !e->bad_cr && !e->too_big && n > 0)
		e->hooks->data(e->ctx, p, n, bol);
}

/* The client has sent the whole message: refuse it or let the program
 * give the final reply; the transaction is over either way. */
static void
message_end(struct smtpd *e)
{
	if (e->bad_lf || e->bad_cr || e->too_big) {
		const char *reason = e->too_big ? "size" : e->bad_lf ? "bare-lf" : "bare-cr";
		if (e->hooks->data_abort != NULL)
			e->hooks->data_abort(e->ctx, e->too_big ? SMTPD_MSG_TOO_BIG :
			    e->bad_lf ? SMTPD_MSG_BARE_LF : SMTPD_MSG_BARE_CR);
		if (e->too_big)
			smtpd_reply(e, "552 5.3.4 Message size exceeds fixed limit");
		else
			smtpd_reply(e, "550 5.6.0 Message contains bare %s; lines must end in CRLF",
			    e->bad_lf ? "LF" : "CR");
		smtpd_error(e);
		log_info("%s reject stage=data reason=%s from=\"<%s>\" size=%zu reply=\"%s\"", e->id,
		    reason, log_q(e->mail_from), e->size, e->too_big ? "552 5.3.4" : "550 5.6.0");
	} else
		e->hooks->data_end(e->ctx);
	smtpd_txn_end(e, SMTPD_RESET_DONE);
}

/* The client went away or timed out inside the message. */
static void
message_lost(struct smtpd *e, int timed_out, int opened)
{
	if (!timed_out || !smtpd_expired(e))
		log_info("%s data status=%s size=%zu", e->id,
		    timed_out ? "timeout" : "client-lost", e->size);
	if (timed_out)
		smtpd_reply_timeout(e);
	else
		e->end = SMTPD_END_LOST;
	if (opened && e->hooks->data_abort != NULL)
		e->hooks->data_abort(e->ctx, SMTPD_MSG_LOST);
	smtpd_enter(e, SMTPD_QUIT);
}

void
smtpd_cmd_data(struct smtpd *e, char *arg)
{
	int bol = 1, prev_crlf = 1;	/* "DATA\r\n" ended in CRLF */

	(void)arg;
	if (e->nrcpt == 0) {
		smtpd_fail(e, "554 5.5.1 No valid recipients");
		return;
	}
	e->size = 0;
	e->bad_lf = e->bad_cr = e->too_big = 0;
	if (e->hooks->data_begin(e->ctx, 0) != SMTPD_ACCEPT) {
		if (e->state != SMTPD_QUIT)
			smtpd_txn_end(e, SMTPD_RESET_DONE);
		return;
	}
	if (e->state == SMTPD_QUIT)
		return;
	for (;;) {
		const char *l;
		size_t n;
		enum io_status st;

		e->io.timeout_ms = smtpd_timeout_ms(e, e->conf.timeout_data);
		st = io_getline(&e->io, &l, &n);
		if (st == IO_TIMEOUT || st == IO_EOF || st == IO_ERROR) {
			message_lost(e, st == IO_TIMEOUT, 1);
			return;
		}
		if (st == IO_OK && bol && prev_crlf && n == 3 && memcmp(l, ".\r\n", 3) == 0)
			break;
		if (st == IO_OK) {
			if (n < 2 || l[n - 2] != '\r')
				e->bad_lf = 1;
			if (n > 2 && memchr(l, '\r', n - 2) != NULL)
				e->bad_cr = 1;
		} else if (memchr(l, '\r', n) != NULL)
			e->bad_cr = 1;
		if (bol && n > 0 && l[0] == '.') {	/* un-stuff */
			l++;
			n--;
		}
		add(e, l, n, bol);
		bol = st == IO_OK;
		prev_crlf = bol && n >= 2 && l[n - 2] == '\r';
	}
	message_end(e);
}

/* "n" or "n LAST": 0, or -1 after the reply. */
static int
bdat_args(struct smtpd *e, const char *arg, unsigned long long *n, int *last)
{
	const char *sp = strchr(arg, ' ');
	size_t nl = sp != NULL ? (size_t)(sp - arg) : strlen(arg);
	char num[32], *end;

	*last = 0;
	if (nl == 0 || nl >= sizeof(num))
		goto bad;
	memcpy(num, arg, nl);
	num[nl] = '\0';
	for (size_t i = 0; i < nl; i++)
		if (num[i] < '0' || num[i] > '9')
			goto bad;
	*n = strtoull(num, &end, 10);
	if (*end != '\0' || nl > 19)
		goto bad;
	if (sp != NULL) {
		while (*sp == ' ')
			sp++;
		if (strcasecmp(sp, "LAST") != 0)
			goto bad;
		*last = 1;
	}
	return 0;
bad:
	smtpd_fail(e, "501 5.5.4 Syntax: BDAT size [LAST]");
	return -1;
}

/* Read the chunk's n bytes (always, else they would be read as commands),
 * under one deadline for the whole chunk — timeout_data plus a second per
 * BDAT_MIN_RATE bytes — so a client cannot hold the session by dribbling.
 * take: pass them on. 0, or -1 when the client is gone. */
static int
bdat_read(struct smtpd *e, unsigned long long n, int take)
{
	long long deadline = smtpd_now_ms() + (long long)e->conf.timeout_data * 1000 +
	    (long long)(n / BDAT_MIN_RATE) * 1000;

	for (unsigned long long left = n; left > 0; ) {
		const char *p;
		size_t got;
		long long rest = deadline - smtpd_now_ms();
		int step = smtpd_timeout_ms(e, e->conf.timeout_data);
		enum io_status st;

		e->io.timeout_ms = rest < 1 ? 1 : rest < step ? (int)rest : step;
		st = rest < 1 ? IO_TIMEOUT : io_getbytes(&e->io,
		    left > SIZE_MAX ? SIZE_MAX : (size_t)left, &p, &got);
		if (st != IO_OK) {
			message_lost(e, st == IO_TIMEOUT, take);
			return -1;
		}
		left -= got;
		if (!take)
			continue;
		for (size_t i = 0; i < got; i++) {
			if (e->prev_cr && p[i] != '\n')
				e->bad_cr = 1;
			if (!e->prev_cr && p[i] == '\n')
				e->bad_lf = 1;
			e->prev_cr = p[i] == '\r';
		}
		add(e, p, got, e->bol);
		e->bol = p[got - 1] == '\n';
	}
	return 0;
}

void
smtpd_cmd_bdat(struct smtpd *e, char *arg)
{
	unsigned long long n = 0;
	int last, in_seq;

	if (bdat_args(e, arg, &n, &last) != 0)
		return;
	if (n > (unsigned long long)e->conf.size_limit + BDAT_SLACK) {
		/* no chunk this size can be part of an acceptable message, and
		 * eating it would take as long as the client wants: hang up */
		log_info("%s reject reason=bdat-size size=%llu", e->id, n);
		smtpd_reply(e, "552 5.3.4 Message size exceeds fixed limit");
		if (e->state == SMTPD_BDAT && !e->bdat_refused && e->hooks->data_abort != NULL)
			e->hooks->data_abort(e->ctx, SMTPD_MSG_TOO_BIG);
		smtpd_enter(e, SMTPD_QUIT);
		return;
	}
	in_seq = (e->state & (SMTPD_RCPT | SMTPD_BDAT)) && e->refusal[0] == '\0';
	if (in_seq && e->state == SMTPD_RCPT) {
		e->size = 0;
		e->bol = 1;
		e->prev_cr = e->bad_lf = e->bad_cr = e->too_big = 0;
		e->bdat_refused = e->hooks->data_begin(e->ctx, 1) != SMTPD_ACCEPT;
		if (e->state == SMTPD_QUIT)
			return;
		smtpd_enter(e, SMTPD_BDAT);
	}
	if (bdat_read(e, n, in_seq && !e->bdat_refused) != 0)
		return;
	if (!in_seq) {
		smtpd_fail(e, "%s", e->refusal[0] != '\0' ? e->refusal :
		    "503 5.5.1 Bad sequence of commands");
		return;
	}
	if (e->bdat_refused) {
		smtpd_reply(e, "452 4.3.1 Insufficient system storage");
		if (last)
			smtpd_txn_end(e, SMTPD_RESET_DONE);
		return;
	}
	if (!last) {
		smtpd_reply(e, "250 2.0.0 %llu octets received", n);
		return;
	}
	if (e->prev_cr)
		e->bad_cr = 1;
	message_end(e);
}

/*
 * gate_data — the message: read DATA from the client as strict CRLF lines
 * and stream it to the backend, as BDAT chunks when the backend offers
 * CHUNKING (length-framed, no dot ambiguity) or as DATA with our own fresh
 * dot-stuffing after the backend's 354. A bare CR or bare LF anywhere, or a
 * message over message_size_limit, is refused with a 5xx once the client
 * has finished, and the backend connection carrying the partial content is
 * dropped, so the backend never accepts it. The client's final reply is the
 * backend's (with its queue id), never ours.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gate_session.h"
#include "gate_metrics.h"
#include "log.h"

#define BDAT_CHUNK	65536

static int
bdat_send(struct gate_session *s, struct gate_data *d, int last)
{
	enum smtp_rstatus st;

	if (io_printf(&s->be.io, "BDAT %zu%s\r\n", d->clen, last ? " LAST" : "") != 0 ||
	    io_write(&s->be.io, d->chunk, d->clen) != 0 || io_flush(&s->be.io) != 0)
		return -1;
	d->clen = 0;
	st = smtp_read_reply(&s->be.io, &d->be_reply);
	if (st != SMTP_R_OK)
		return -1;
	if (!last && d->be_reply.code != 250) {
		d->be_failed = 2;	/* refused: relay its reply at the end */
		return -1;
	}
	return 0;
}

void
gate_data_forward(struct gate_session *s, struct gate_data *d, const char *p, size_t n, int bol)
{
	if (d->bad_cr || d->bad_lf || d->too_big)
		return;
	if (d->spool != NULL) {
		if (gate_milter_spool_write(d->spool, p, n) != 0)
			d->spool_failed = 1;
		return;
	}
	if (d->be_failed)
		return;
	if (d->chunk == NULL) {
		if (smtp_write_stuffed(&s->be.io, p, n, bol) != 0)
			d->be_failed = 1;
		return;
	}
	while (n > 0) {
		size_t take = BDAT_CHUNK - d->clen;
		if (take > n)
			take = n;
		memcpy(d->chunk + d->clen, p, take);
		d->clen += take;
		p += take;
		n -= take;
		if (d->clen == BDAT_CHUNK && bdat_send(s, d, 0) != 0) {
			if (!d->be_failed)
				d->be_failed = 1;
			return;
		}
	}
}

/* Read the client's message up to CRLF.CRLF. Returns 0 at the end of data,
 * -1 if the client went away or timed out. */
int
gate_data_read(struct gate_session *s, struct gate_data *d)
{
	int bol = 1, prev_crlf = 1;	/* "DATA\r\n" ended in CRLF */

	for (;;) {
		const char *l;
		size_t n;
		enum io_status st;

		s->io.timeout_ms = gate_client_timeout(s, s->cfg->timeout_data);
		st = io_getline(&s->io, &l, &n);
		if (st == IO_TIMEOUT || st == IO_EOF || st == IO_ERROR) {
			if (st != IO_TIMEOUT || !gate_session_expired(s))
				log_info("%s data status=%s size=%zu", s->id,
				    st == IO_TIMEOUT ? "timeout" : "client-lost", d->size);
			if (st == IO_TIMEOUT)
				gate_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->cfg->hostname);
			return -1;
		}
		/* The end of data is CRLF.CRLF and nothing else, even after a
		 * bare LF was seen: ending on LF.LF would let a client smuggle
		 * commands past the message (SMTP smuggling). */
		if (st == IO_OK && bol && prev_crlf && n == 3 && memcmp(l, ".\r\n", 3) == 0)
			return 0;
		if (st == IO_OK) {
			if (n < 2 || l[n - 2] != '\r')
				d->bad_lf = 1;
			if (n > 2 && memchr(l, '\r', n - 2) != NULL)
				d->bad_cr = 1;
		} else if (memchr(l, '\r', n) != NULL)
			d->bad_cr = 1;
		if (bol && n > 0 && l[0] == '.') {	/* un-stuff */
			l++;
			n--;
		}
		d->size += n;
		if (d->size > s->cfg->message_size_limit)
			d->too_big = 1;
		gate_data_forward(s, d, l, n, bol);
		bol = (st == IO_OK);
		prev_crlf = bol && n >= 2 && l[n - 2] == '\r';
	}
}

void
gate_data_end_transaction(struct gate_session *s)
{
	s->mail_from[0] = '\0';
	s->nrcpt = 0;
	gate_rcpts_clear(s);
	if (s->milters != NULL)
		gate_milter_abort(s->milters);
	gate_enter_state(s, ST_HELO);
}

/* Open the content channel to the backend: a BDAT chunk buffer, or DATA
 * and the backend's 354 (relayed to the client when relay_354). 0, or -1
 * when the transaction is over (the client got the reply). */
int
gate_data_begin(struct gate_session *s, struct gate_data *d, int relay_354)
{
	if (s->be.fd < 0) {
		gate_reply(s, "451 4.4.2 Backend connection lost");
		gate_data_end_transaction(s);
		return -1;
	}
	if (s->be.caps.chunking) {
		d->chunk = malloc(BDAT_CHUNK);
		if (d->chunk == NULL) {
			gate_reply(s, "451 4.3.0 Out of memory");
			gate_data_end_transaction(s);
			return -1;
		}
	} else if (relay_354) {
		/* DATA: content goes to the backend only after its 354 */
		int code = gate_backend_relay(s, "DATA");
		if (code < 0)
			return -1;
		if (code != 354) {
			gate_metric_message(s, code);
			gate_data_end_transaction(s);
			return -1;
		}
		/* the backend's 354 was relayed to the client as is */
	} else {
		struct smtp_reply r;
		enum smtp_rstatus st = smtp_command(&s->be.io, &r, "DATA");
		if (st != SMTP_R_OK) {
			d->be_failed = 1;
			return 0;	/* reported at the end, like any loss */
		}
		if (r.code != 354) {
			(void)io_write(&s->io, r.text, r.len);
			gate_metric_message(s, r.code);
			gate_metric_backend_reply(r.code);
			log_info("%s refused stage=data from=\"<%s>\" backend=%s reply=%d", s->id,
			    log_q(s->mail_from), s->be.addr, r.code);
			gate_data_end_transaction(s);
			return -1;
		}
	}
	s->be.io.timeout_ms = (int)s->cfg->backend_timeout * 1000;
	if (s->cfg->policy.spf.received_header) {
		char h[1024];
		if (gate_policy_received_spf(s, h, sizeof(h)) == 0)
			gate_data_forward(s, d, h, strlen(h), 1);
	}
	return 0;
}

/* The client sent a message we refuse (bare CR/LF, too big): reply. */
void
gate_data_refuse_bad(struct gate_session *s, struct gate_data *d)
{
	if (d->too_big)
		gate_reply(s, "552 5.3.4 Message size exceeds fixed limit");
	else
		gate_reply(s, "550 5.6.0 Message contains bare %s; lines must end in CRLF",
		    d->bad_lf ? "LF" : "CR");
	gate_error(s);
	log_info("%s reject stage=data reason=%s from=\"<%s>\" size=%zu reply=\"%s\"", s->id,
	    d->too_big ? "size" : d->bad_lf ? "bare-lf" : "bare-cr", log_q(s->mail_from), d->size,
	    d->too_big ? "552 5.3.4" : "550 5.6.0");
}

/* End of content toward the backend; its final reply is the client's. */
void
gate_data_finish(struct gate_session *s, struct gate_data *d)
{
	struct smtp_reply r;
	char q[256];

	s->be.io.timeout_ms = (int)s->cfg->backend_data_timeout * 1000;
	if (d->be_failed == 0) {
		if (d->chunk != NULL) {
			if (bdat_send(s, d, 1) != 0)
				d->be_failed = 1;
			else
				r = d->be_reply;
		} else if (io_write(&s->be.io, ".\r\n", 3) != 0 || io_flush(&s->be.io) != 0 ||
		    smtp_read_reply(&s->be.io, &r) != SMTP_R_OK)
			d->be_failed = 1;
	} else if (d->be_failed == 2)
		r = d->be_reply;
	if (d->be_failed == 1) {
		log_warn("%s backend=%s status=lost during=data from=\"<%s>\" size=%zu reply=\"451 4.4.2\"",
		    s->id, s->be.addr, log_q(s->mail_from), d->size);
		gate_backend_close(s, 0);
		gate_reply(s, "451 4.4.2 Backend connection lost, message not accepted");
		gate_metric_message(s, -1);
		gate_data_end_transaction(s);
		return;
	}
	if (d->be_failed == 2)
		gate_backend_close(s, 0);	/* its transaction state is unclear: start fresh */
	(void)io_write(&s->io, r.text, r.len);
	gate_metric_message(s, r.code);
	gate_metric_backend_reply(r.code);
	if (r.code / 100 == 2)
		s->naccepted++;
	log_info("%s %s from=\"<%s>\" rcpts=%u size=%zu backend=%s reply=\"%s\"", s->id,
	    r.code / 100 == 2 ? "accepted" : "refused", log_q(s->mail_from), s->nrcpt, d->size,
	    s->be.addr, log_quote(q, sizeof(q), r.text, r.len));
	if (r.code == 421) {
		gate_backend_close(s, 0);
		gate_enter_state(s, ST_QUIT);
		return;
	}
	gate_data_end_transaction(s);
}

void
gate_data_run(struct gate_session *s)
{
	struct gate_data d;

	if (s->milters != NULL && gate_milter_count(s->milters) > 0) {
		gate_filter_data(s);
		return;
	}
	memset(&d, 0, sizeof(d));
	if (gate_data_begin(s, &d, 1) != 0)
		return;
	if (d.chunk != NULL)
		gate_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	if (gate_data_read(s, &d) != 0) {
		/* client gone mid-message: the partial message must not be
		 * accepted by the backend; dropping the connection aborts it */
		gate_backend_close(s, 0);
		free(d.chunk);
		gate_enter_state(s, ST_QUIT);
		return;
	}
	if (d.bad_cr || d.bad_lf || d.too_big) {
		gate_backend_close(s, 0);
		gate_data_refuse_bad(s, &d);
		free(d.chunk);
		gate_data_end_transaction(s);
		return;
	}
	gate_data_finish(s, &d);
	free(d.chunk);
}

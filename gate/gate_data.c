/*
 * gate_data — the message toward the backend. The engine (lib/smtpd.c)
 * reads the client's message and hands it over canonical (CRLF lines,
 * un-stuffed, size-checked); this file streams it to the backend as BDAT
 * chunks when the backend offers CHUNKING (length-framed, no dot
 * ambiguity) or as DATA with our own fresh dot-stuffing after the
 * backend's 354, and passes the backend's final reply (with its queue id)
 * to the client: never ours. A message the engine refuses or a client lost
 * in the middle drops the backend connection carrying the partial content,
 * so the backend never accepts it. Used by the session's data hooks and by
 * gate_filter.c after the milters (s->d is the message in flight).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gate_session.h"
#include "gate_metrics.h"
#include "log.h"

#define BDAT_CHUNK	65536

static int
bdat_send(struct gate_session *s, int last)
{
	struct gate_data *d = &s->d;
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
gate_data_forward(struct gate_session *s, const char *p, size_t n, int bol)
{
	struct gate_data *d = &s->d;

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
		if (d->clen == BDAT_CHUNK && bdat_send(s, 0) != 0) {
			if (!d->be_failed)
				d->be_failed = 1;
			return;
		}
	}
}

/* The backend refused DATA (its reply is the client's). */
static void
data_refused(struct gate_session *s, const struct smtp_reply *r)
{
	(void)gate_backend_pass(s, r);
	gate_metric_message(s, r->code);
	gate_metric_backend_reply(r->code);
	log_info("%s refused stage=data from=\"<%s>\" backend=%s reply=%d", s->id,
	    log_q(s->e.mail_from), s->be.addr, r->code);
}

/* Open the content channel to the backend: a BDAT chunk buffer, or DATA
 * and the backend's 354 (relayed to the client when relay_354). 0, or -1
 * when the message is over (the client got the reply). */
int
gate_data_begin(struct gate_session *s, int relay_354)
{
	struct gate_data *d = &s->d;

	if (s->be.fd < 0) {
		smtpd_reply(&s->e, "451 4.4.2 Backend connection lost");
		return -1;
	}
	if (s->be.caps.chunking) {
		d->chunk = malloc(BDAT_CHUNK);
		if (d->chunk == NULL) {
			smtpd_reply(&s->e, "451 4.3.0 Out of memory");
			return -1;
		}
	} else if (relay_354) {
		/* DATA: content goes to the backend only after its 354 */
		int code = gate_backend_data(s);
		if (code < 0)
			return -1;
		if (code != 354) {
			gate_metric_message(s, code);
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
			data_refused(s, &r);
			return -1;
		}
	}
	s->be.io.timeout_ms = (int)s->cfg->backend_timeout * 1000;
	if (s->cfg->policy.spf.received_header) {
		char h[1024];
		if (gate_policy_received_spf(s, h, sizeof(h)) == 0)
			gate_data_forward(s, h, strlen(h), 1);
	}
	return 0;
}

/* The backend's final reply, read into r. 0, or -1: the backend is gone. */
static int
data_end(struct gate_session *s, struct smtp_reply *r)
{
	struct gate_data *d = &s->d;

	s->be.io.timeout_ms = (int)s->cfg->backend_data_timeout * 1000;
	if (d->be_failed == 2) {
		*r = d->be_reply;
		gate_backend_close(s, 0);	/* its transaction state is unclear: start fresh */
		return 0;
	}
	if (d->be_failed)
		return -1;
	if (d->chunk != NULL) {
		if (bdat_send(s, 1) != 0)
			return -1;
		*r = d->be_reply;
		return 0;
	}
	if (io_write(&s->be.io, ".\r\n", 3) != 0 || io_flush(&s->be.io) != 0 ||
	    smtp_read_reply(&s->be.io, r) != SMTP_R_OK)
		return -1;
	return 0;
}

/* End of content toward the backend; its final reply is the client's. */
void
gate_data_finish(struct gate_session *s)
{
	struct smtp_reply r;
	char q[256];

	if (data_end(s, &r) != 0) {
		log_warn("%s backend=%s status=lost during=data from=\"<%s>\" size=%zu reply=\"451 4.4.2\"",
		    s->id, s->be.addr, log_q(s->e.mail_from), s->e.size);
		gate_backend_close(s, 0);
		smtpd_reply(&s->e, "451 4.4.2 Backend connection lost, message not accepted");
		gate_metric_message(s, -1);
		gate_data_drop(s, 0);
		return;
	}
	(void)gate_backend_pass(s, &r);
	gate_metric_message(s, r.code);
	gate_metric_backend_reply(r.code);
	if (r.code / 100 == 2)
		s->naccepted++;
	log_info("%s %s from=\"<%s>\" rcpts=%u size=%zu backend=%s reply=\"%s\"", s->id,
	    r.code / 100 == 2 ? "accepted" : "refused", log_q(s->e.mail_from), s->e.nrcpt,
	    s->e.size, s->be.addr, log_quote(q, sizeof(q), r.text, r.len));
	if (r.code == 421) {
		gate_backend_close(s, 0);
		smtpd_enter(&s->e, SMTPD_QUIT);
	}
	gate_data_drop(s, 0);
}

void
gate_data_drop(struct gate_session *s, int drop_backend)
{
	if (drop_backend)
		gate_backend_close(s, 0);
	free(s->d.chunk);
	s->d.chunk = NULL;
	s->d.clen = 0;
}

/*
 * relay_bounce — RFC 3464 delivery status notifications.
 *
 * relay_bounce_queue() writes a multipart/report DSN (text part, a
 * message/delivery-status part with one block per recipient, and the
 * original headers as text/rfc822-headers) into the spool as a new message
 * from the null sender to m->from, and commits it durably. kind FAILED
 * reports the recipients whose status is RELAY_R_BOUNCED; kind DELAYED
 * (delay_warning) reports the pending ones; kind RELAYED (RFC 3461
 * NOTIFY=SUCCESS handed to a smarthost that does not offer DSN) those
 * marked `relayed`. A recipient's NOTIFY is honoured: NEVER gets nothing,
 * a list without FAILURE (DELAY) no failure (delay) report; ENVID and ORCPT
 * are reported as Original-Envelope-Id and Original-Recipient. It never
 * writes a DSN for a null sender (RELAY_DSN_NONE: nothing to queue).
 */
#ifndef RELAY_BOUNCE_H
#define RELAY_BOUNCE_H

#include "relay_config.h"
#include "relay_spool.h"

enum relay_dsn_kind { RELAY_DSN_FAILED, RELAY_DSN_DELAYED, RELAY_DSN_RELAYED };
enum relay_dsn_result {
	RELAY_DSN_QUEUED,	/* newid set; durable */
	RELAY_DSN_NONE,		/* null sender or nobody to report */
	RELAY_DSN_ERROR,	/* errno set; nothing queued */
};

enum relay_dsn_result relay_bounce_queue(const struct relay_config *cfg, const struct relay_msg *m,
	    int fd, enum relay_dsn_kind kind, const char *remote_mta,
	    char newid[RELAY_ID_LEN + 1]);
/* The enhanced status in a reply text ("550 5.1.1 ..." -> "5.1.1"), or
 * the default. */
void relay_bounce_status(const char *reply, const char *def, char *out, size_t outlen);

#endif

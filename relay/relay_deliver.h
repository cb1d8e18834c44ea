/*
 * relay_deliver — the smarthost client.
 *
 * relay_conn_open() walks the smarthost list in order (failover): MX
 * lookup for `host:port`, connect, banner, EHLO, TLS per policy
 * (STARTTLS none|may|encrypt|verify, or implicit), EHLO again, AUTH
 * PLAIN or LOGIN. relay_deliver_msg() sends one message on an open
 * connection (RSET first when the last transaction on it did not end
 * with a reply to its data) and sets each pending recipient's outcome and
 * reply; it returns -1 when the connection can no longer be used, and -2
 * (no outcome set) when a connection that carried earlier messages turns
 * out to be closed before anything of this message was sent: the caller
 * may send it again on a new connection. Every failure before the final reply
 * is a deferral, never a bounce: only a 5xx aimed at a recipient, the
 * sender or the message is permanent.
 * The connection owns its io and fd; relay_conn_close() sends QUIT and
 * releases them, relay_conn_abort() only releases them (the peer is gone).
 */
#ifndef RELAY_DELIVER_H
#define RELAY_DELIVER_H

#include <stddef.h>
#include <openssl/ssl.h>
#include "io.h"
#include "smtp.h"
#include "relay_config.h"
#include "relay_spool.h"

struct relay_conn {
	struct io	 io;
	int		 fd;
	int		 open;
	int		 tls;
	struct smtp_caps caps;
	char		 relay[320];	/* host[ip]:port for logs */
	unsigned	 nmsgs;
	int		 txn_open;	/* a transaction may be open: RSET first */
};

/* TLS client context for the configured policy (NULL for tls = none). */
SSL_CTX *relay_deliver_ctx(const struct relay_config *cfg, char *err, size_t errlen);
int  relay_conn_open(const struct relay_config *cfg, SSL_CTX *ctx,
	    struct relay_conn *c, char *err, size_t errlen);
int  relay_deliver_msg(const struct relay_config *cfg, struct relay_conn *c,
	    struct relay_msg *m, int fd);
void relay_conn_close(struct relay_conn *c);
void relay_conn_abort(struct relay_conn *c);

#endif

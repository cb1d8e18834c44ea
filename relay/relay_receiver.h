/*
 * relay_receiver — the receiver process: accepts on the listeners and
 * hands each connection to a session process from a pool.
 *
 * relay_receiver_run() (already unprivileged) accepts, refuses with
 * 421 4.3.2 when max_clients sessions are running, and passes the
 * connection (SCM_RIGHTS, with the client's recent AUTH failures) to an
 * idle session process over its SOCK_SEQPACKET pair, forking a new one
 * only when none is idle. A session process serves the connection
 * (relay_smtpd_serve), reports its number of failed AUTHs back, and
 * waits for the next; the receiver closes the pair (the process quits)
 * after RECEIVER_IDLE_SECS idle or RECEIVER_SESSIONS_MAX sessions, and at
 * stop, so running sessions finish on their own. The receiver alone keeps
 * the per-client AUTH failure counts.
 */
#ifndef RELAY_RECEIVER_H
#define RELAY_RECEIVER_H

#include <stddef.h>
#include "relay_config.h"

int relay_receiver_run(const struct relay_config *cfg, const int *fds, size_t nfds);

#endif

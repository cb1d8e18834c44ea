/*
 * relay_worker — a delivery worker: one smarthost connection, kept open
 * between the batches of queued messages the scheduler hands it.
 *
 * relay_worker_run() is the body of a worker process forked by the
 * scheduler (relay_sched.c). It reads batches of ids from `fd` (its end
 * of a SOCK_SEQPACKET pair: one datagram = RELAY_WORKER_IDLEN-byte,
 * NUL-terminated ids back to back), delivers them over its connection
 * (opened on the first batch, RSET only after an unfinished transaction),
 * answers each batch with one byte, and waits for the next one. It
 * returns when the scheduler closes its end (idle longer than
 * connection_reuse_time, batch_size messages carried, or shutdown); a
 * smarthost that closes the idle connection is noticed while waiting and
 * the next batch opens a new one. It locks each queue file before
 * touching it (relay_spool_lock), so it never owns a message another
 * process owns.
 */
#ifndef RELAY_WORKER_H
#define RELAY_WORKER_H

#include <stddef.h>
#include "relay_config.h"

#define RELAY_WORKER_IDLEN	17	/* RELAY_ID_LEN + NUL */
#define RELAY_WORKER_BATCH_MAX	256	/* ids in one datagram */

int relay_worker_run(const struct relay_config *cfg, int fd);

#endif

/*
 * relay_sched — the scheduler process and its delivery workers.
 *
 * relay_sched_run() (unprivileged) owns the control socket spool_dir/control,
 * keeps an in-memory table of queued ids with their next-attempt times
 * (read from the state files; the disk is the truth, the table a cache),
 * and keeps up to max_connections delivery workers (relay_worker.c), each
 * with its smarthost connection: it hands an idle worker the next due ids
 * over the worker's socket pair, and closes that pair (the worker quits)
 * after connection_reuse_time idle or batch_size messages. It paces
 * dispatch by rate_limit. Control datagrams: "new ID", "flush", "flush ID".
 *
 * A worker locks each queue file before touching it (relay_spool_lock),
 * so an orphaned worker from a previous scheduler, the queue command line
 * and a new worker never own one message at once.
 */
#ifndef RELAY_SCHED_H
#define RELAY_SCHED_H

#include <stddef.h>
#include <time.h>
#include "relay_config.h"

int relay_sched_run(const struct relay_config *cfg);
/* Jittered exponential back-off after `attempts` failed attempts. */
unsigned relay_sched_backoff(const struct relay_config *cfg, unsigned attempts,
	    unsigned rnd);

#endif

/*
 * relay_queue_cli — `tailwart-relay queue list|show ID|flush [ID]|delete ID|
 * hold ID|release ID`.
 *
 * Works directly on the spool, as the relay user, and is safe while the
 * daemon runs: it takes the same per-message lock as a delivery worker
 * (a message being delivered is reported busy, never changed under the
 * worker), and tells the scheduler about flushes through the control
 * socket. Output goes to stdout; the exit status is 0 on success.
 */
#ifndef RELAY_QUEUE_CLI_H
#define RELAY_QUEUE_CLI_H

#include "relay_config.h"

int relay_queue_cli(const struct relay_config *cfg, int argc, char **argv);

#endif

/*
 * relay_smtpd — the relay's SMTP receiver.
 *
 * A session process of the receiver (relay_receiver.c) runs
 * relay_smtpd_serve() per connection: client_networks check, then the
 * shared SMTP engine (lib/smtpd.h) with the relay's hooks: AUTH, the DSN
 * parameters, and the spool commit before every 250.
 */
#ifndef RELAY_SMTPD_H
#define RELAY_SMTPD_H

#include <stddef.h>
#include "relay_config.h"

/* One session on a connected socket (closes it). Exit status for the child. */
int relay_smtpd_session(const struct relay_config *cfg, int fd);
/* The same, for a client that failed AUTH auth_prior times lately (the
 * receiver's count): -1 if the session could not start, else the number
 * of failed AUTH attempts in it. */
int relay_smtpd_serve(const struct relay_config *cfg, int fd, unsigned auth_prior);

#endif

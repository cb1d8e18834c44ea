/*
 * smtpd_int — what the engine's two files share (smtpd.c: the session,
 * its commands and the wire; smtpd_data.c: the DATA and BDAT readers).
 * Not for programs: they use smtpd.h.
 */
#ifndef LIB_SMTPD_INT_H
#define LIB_SMTPD_INT_H

#include "smtpd.h"

/* DATA (the dispatcher checked the state) and BDAT (any state: it eats
 * the announced bytes first). */
void smtpd_cmd_data(struct smtpd *e, char *arg);
void smtpd_cmd_bdat(struct smtpd *e, char *arg);

/* The transaction is over: the reset hook, then the engine's envelope
 * facts cleared and SMTPD_HELO (unless the session is closing). */
void smtpd_txn_end(struct smtpd *e, enum smtpd_reset why);

/* The 421 for a client that timed out (command or data). */
void smtpd_reply_timeout(struct smtpd *e);

#endif

/*
 * relay_proc — process plumbing shared by the master, the receiver and
 * the scheduler: the self-pipe signal flags, privilege dropping, and the
 * datagram the receiver and `queue flush` send to wake the scheduler.
 *
 * Signal handlers only set a flag and write one byte to the self-pipe;
 * each process's loop polls relay_sig_fd() and reads the flags with
 * relay_sig_take(). The flags are the only mutable globals.
 */
#ifndef RELAY_PROC_H
#define RELAY_PROC_H

#include <signal.h>
#include <sys/types.h>

enum relay_sig { RELAY_SIG_TERM, RELAY_SIG_HUP, RELAY_SIG_CHLD, RELAY_SIG_USR1, RELAY_SIG_N };

/* Install handlers for TERM, INT, HUP, CHLD, USR1 (and ignore PIPE). 0 / -1.
 * Called again in a child, it makes a fresh pipe. */
int  relay_sig_init(void);
int  relay_sig_fd(void);
/* Drain the pipe; returns 1 and clears the flag if `s` was raised. */
int  relay_sig_take(enum relay_sig s);
/* Restore default dispositions (before exec or in a session child). */
void relay_sig_reset(void);

/* Look up `user`; as root, drop to it (setgroups, setresgid, setresuid,
 * each checked, then verify). As non-root, or with an empty user, it does
 * nothing. 0 / -1 (why set). */
int  relay_drop_privileges(const char *user, char *why, size_t whylen);
int  relay_user_ids(const char *user, uid_t *uid, gid_t *gid);

/* Fork a child joined to us by a SOCK_SEQPACKET pair (a pooled session
 * process or delivery worker). Parent: the child's pid, *fd = our end.
 * Child: 0, *fd = its end, signals reset, log pid updated. -1 on failure
 * (logged with `who`). */
pid_t relay_fork_paired(const char *who, int *fd);
/* Close our end of such a pair (if open) and set *fd to -1: the child
 * sees EOF, finishes what it has and quits. */
void  relay_pair_close(int *fd);

/* Send "flush" / "flush ID" / "new ID" to the scheduler's control socket
 * (spool_dir/control). Returns 0 if it was sent, -1 if nobody listens. */
int  relay_notify(const char *spool_dir, const char *msg);

#endif

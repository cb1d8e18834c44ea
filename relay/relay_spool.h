/*
 * relay_spool — the durable queue on disk.
 *
 * Layout under spool_dir (created by relay_spool_init as root, owned by the
 * relay user):
 *   incoming/ID   being written by a receiver; never answered 250
 *   queue/ID      committed messages (immutable once renamed here)
 *   hold/ID       messages put on hold by `queue hold`
 *   state/ID      per-message delivery state, replaced atomically
 *   corrupt/ID    queue files that failed validation (torn, bad syntax)
 *   control       the scheduler's unix datagram socket
 *
 * Queue file (text records, then the raw message, then a trailer):
 *   "TWQ1\n" "id ID\n" "time EPOCH\n" "from ADDR\n" ["utf8\n"] ["8bit\n"]
 *   ["client IP\n"] ["ret FULL|HDRS\n"] ["envid XTEXT\n"]
 *   ("rcpt ADDR\n" ["notify LIST\n"] ["orcpt TYPE;XTEXT\n"])...
 *   "data\n" MESSAGE(CRLF, unstuffed)
 *   trailer at offset T: ["8bit\n"] ["dkim LEN\n" BYTES "\n"] "end %016llx\n" (T)
 * notify/orcpt (RFC 3461 DSN parameters) belong to the rcpt before them;
 * the "8bit" trailer says the message holds bytes over 127 (seen while it
 * was spooled, whatever the client declared).
 * The final "end" record, fixed width, is written last and fsynced with
 * the rest: a file without it is torn and goes to corrupt/.
 *
 * State file (absent = fresh: all recipients pending, no attempts):
 *   "TWS1\n" "attempts N\n" "next EPOCH\n" "warned 0|1\n" "notified 0|1\n"
 *   "r INDEX sent|bounced|pending REPLY\n"... "end\n"
 *
 * Ownership: whoever holds flock(LOCK_EX) on queue/ID owns the message
 * (delivery, hold, delete, flush); the lock dies with its process, so a
 * kill -9 never leaves a message owned. After locking, the owner checks the
 * path still names the same inode (a concurrent hold/delete moved it).
 * struct relay_msg owns its strings; relay_msg_free() releases them.
 */
#ifndef RELAY_SPOOL_H
#define RELAY_SPOOL_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#define RELAY_ID_LEN	16
#define RELAY_RCPT_MAX	1000

enum relay_rstatus { RELAY_R_PENDING, RELAY_R_SENT, RELAY_R_BOUNCED };

/* RFC 3461 NOTIFY (0 = not given: the default, failure and delay) */
#define RELAY_NOTIFY_SUCCESS	0x1
#define RELAY_NOTIFY_FAILURE	0x2
#define RELAY_NOTIFY_DELAY	0x4
#define RELAY_NOTIFY_NEVER	0x8
enum relay_ret { RELAY_RET_NONE, RELAY_RET_FULL, RELAY_RET_HDRS };

struct relay_rcpt {
	char			*addr;
	unsigned		 notify;	/* RELAY_NOTIFY_*, 0 = not given */
	char			*orcpt;		/* "rfc822;xtext" as given, or NULL */
	int			 relayed;	/* sent this attempt to a hop without DSN */
	enum relay_rstatus	 status;
	char			*reply;		/* last reply/diagnostic, or NULL */
	int			 outcome;	/* this attempt (enum relay_outcome), not stored */
};

enum relay_outcome { RELAY_O_NONE, RELAY_O_SENT, RELAY_O_DEFERRED, RELAY_O_BOUNCED };

struct relay_msg {
	char			 id[RELAY_ID_LEN + 1];
	time_t			 arrival;
	char			*from;		/* "" = null sender */
	char			*client;	/* IP of the submitting client, or NULL */
	int			 utf8, eightbit;
	enum relay_ret		 ret;		/* RFC 3461 RET */
	int			 hop_dsn;	/* the smarthost took the DSN parameters (this attempt) */
	char			*envid;		/* RFC 3461 ENVID (xtext), or NULL */
	struct relay_rcpt	*rcpts;
	size_t			 nrcpts;
	off_t			 body_off;	/* message bytes in the queue file */
	off_t			 body_len;
	char			*dkim;		/* header to prepend (with CRLF), or NULL */
	size_t			 dkim_len;
	/* state */
	unsigned		 attempts;
	time_t			 next_attempt;
	int			 warned, notified;
};

enum relay_spool_dir { RELAY_DIR_QUEUE, RELAY_DIR_HOLD };

/* Writer for one new message in incoming/. */
struct relay_spool_writer {
	int	 fd;
	char	 id[RELAY_ID_LEN + 1];
	char	 path[4096];
	off_t	 body_off;
	off_t	 off;		/* bytes written so far */
	char	 buf[65536];
	size_t	 blen;
	int	 failed;	/* a write failed (ENOSPC...); errno kept in err */
	int	 err;
	int	 last2[2];	/* last two body bytes, -1 if none */
	int	 body8;		/* a byte over 127 was written */
};

/* The DSN parameters of a new message (relay_spool_create_ext). */
struct relay_spool_dsn {
	enum relay_ret	 ret;
	const char	*envid;		/* or NULL */
	const unsigned	*notify;	/* per recipient, or NULL */
	char *const	*orcpt;		/* per recipient (entries may be NULL), or NULL */
};
/* RFC 3461 syntax checks: 1 if valid. */
int  relay_dsn_xtext_ok(const char *s, size_t max);
int  relay_dsn_orcpt_ok(const char *s);
/* "NEVER" / "SUCCESS,FAILURE,DELAY" into flags; -1 if invalid. */
int  relay_dsn_notify_parse(const char *s, unsigned *flags);
/* Flags back into the parameter's text. */
void relay_dsn_notify_str(unsigned flags, char *out, size_t outlen);

int  relay_spool_init(const char *dir, uid_t uid, gid_t gid);
/* Drop stale incoming/ files and state files without a message. */
int  relay_spool_recover(const char *dir);
int  relay_spool_valid_id(const char *id);

/* Create incoming/ID and write the envelope. 0 / -1 (errno set). */
int  relay_spool_create(const char *dir, struct relay_spool_writer *w,
	    const char *from, int utf8, int eightbit, const char *client,
	    char *const *rcpts, size_t nrcpts);
/* The same with RFC 3461 parameters (dsn may be NULL). */
int  relay_spool_create_ext(const char *dir, struct relay_spool_writer *w,
	    const char *from, int utf8, int eightbit, const char *client,
	    char *const *rcpts, size_t nrcpts, const struct relay_spool_dsn *dsn);
/* Append message bytes (buffered); errors are sticky, reported by finish. */
void relay_spool_write(struct relay_spool_writer *w, const void *p, size_t len);
/* Flush the buffer (body complete, before DKIM reads it back). 0 / -1. */
int  relay_spool_flush(struct relay_spool_writer *w);
/* Trailer, fsync, close, rename into queue/, fsync queue/. 0 / -1; on -1
 * the incoming file is removed. On 0 the message is durable. */
int  relay_spool_commit(const char *dir, struct relay_spool_writer *w,
	    const char *dkim, size_t dkim_len);
void relay_spool_abort(struct relay_spool_writer *w);

enum relay_lock {
	RELAY_LOCK_OK,		/* *fd is open and locked; close it to unlock */
	RELAY_LOCK_BUSY,	/* another process owns the message */
	RELAY_LOCK_GONE,	/* not (or no longer) in that directory */
	RELAY_LOCK_ERROR,	/* errno set */
};
/* Open and lock dir/ID without waiting. */
enum relay_lock relay_spool_lock(const char *dir, enum relay_spool_dir d,
	    const char *id, int *fd);
/* Parse a locked (or any) queue file. 0; -1 = corrupt (why set). */
int  relay_spool_read(int fd, struct relay_msg *m, const char **why);
/* Load / save state/ID into m (save: tmp file, fsync, rename, fsync dir). */
int  relay_state_load(const char *dir, struct relay_msg *m);
int  relay_state_save(const char *dir, const struct relay_msg *m);
/* Remove a finished message (queue file first, then its state). */
int  relay_spool_remove(const char *dir, enum relay_spool_dir d, const char *id);
/* Move between queue/ and hold/ (caller holds the lock), or to corrupt/. */
int  relay_spool_move(const char *dir, enum relay_spool_dir from,
	    enum relay_spool_dir to, const char *id);
int  relay_spool_corrupt(const char *dir, enum relay_spool_dir from, const char *id);
void relay_msg_free(struct relay_msg *m);
const char *relay_spool_subdir(enum relay_spool_dir d);
/* Read [off, off+len) of the body (pread loop). 0 / -1. */
int  relay_spool_pread(int fd, void *buf, size_t len, off_t off);
/* fsync a directory by path. 0 / -1. */
int  relay_fsync_dir(const char *path);
/* snprintf a path; -1 (ENAMETOOLONG) if it does not fit. */
int  relay_pathf(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Write all of buf (EINTR-safe). 0 / -1. */
int  relay_write_all(int fd, const void *buf, size_t len);

#endif

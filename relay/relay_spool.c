/*
 * relay_spool — durable queue files, state files, locking, recovery.
 *
 * See relay_spool.h for the layout and the file formats. The rule that
 * makes "250 means durable" true: relay_spool_commit() writes the trailer
 * with its end record, locks the file, renames it from incoming/ to
 * queue/, fsyncs it and fsyncs queue/ (one journal commit for both on
 * ext4), then closes it (unlocking it); only when all of these returned 0
 * does the receiver answer 250. State files are replaced by rename, so a
 * reader sees the old or the new state, never half of one.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "config.h"
#include "log.h"
#include "relay_spool.h"


static const char *const subdirs[] = { "incoming", "queue", "hold", "state", "corrupt" };

const char *
relay_spool_subdir(enum relay_spool_dir d)
{
	return d == RELAY_DIR_HOLD ? "hold" : "queue";
}

int
relay_pathf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int
relay_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
relay_spool_pread(int fd, void *buf, size_t len, off_t off)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

int
relay_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	if (close(fd) != 0)
		rc = -1;
	return rc;
}

/* Create (if absent) and open the directory `name` relative to dfd without
 * following a link, check it is a directory owned by root or uid, and give
 * it to uid:gid through the fd: the relay user owns the spool, so root
 * must never act on a name it could have replaced by a link. */
static int
spool_own_dir(int dfd, const char *name, uid_t uid, gid_t gid)
{
	struct stat st;
	int fd;

	if (mkdirat(dfd, name, 0750) != 0 && errno != EEXIST)
		return -1;
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ELOOP || errno == ENOTDIR)
			log_err("spool %s: a symbolic link or not a directory: refusing to use it",
			    name);
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISDIR(st.st_mode) ||
	    (st.st_uid != 0 && st.st_uid != uid)) {
		log_err("spool %s: owned by uid %ld, neither root nor the relay user: refusing",
		    name, (long)st.st_uid);
		(void)close(fd);
		errno = EPERM;
		return -1;
	}
	if ((st.st_uid != uid || st.st_gid != gid) && fchown(fd, uid, gid) != 0) {
		int e = errno;
		(void)close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int
relay_spool_init(const char *dir, uid_t uid, gid_t gid)
{
	int top, rc = 0;

	/* spool_dir itself sits in a directory of the administrator's */
	if (mkdir(dir, 0750) != 0 && errno != EEXIST)
		return -1;
	if ((top = spool_own_dir(AT_FDCWD, dir, uid, gid)) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]) && rc == 0; i++) {
		int fd = spool_own_dir(top, subdirs[i], uid, gid);
		if (fd < 0)
			rc = -1;
		else
			(void)close(fd);	/* read-only directory fd */
	}
	if (rc == 0 && fsync(top) != 0)
		rc = -1;
	{
		int e = errno;
		(void)close(top);
		errno = e;
	}
	return rc;
}

int
relay_spool_valid_id(const char *id)
{
	if (strlen(id) != RELAY_ID_LEN)
		return 0;
	for (const char *p = id; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'F')))
			return 0;
	return 1;
}

/* Open dir/sub for reading without following a link at `sub`. */
static DIR *
open_subdir(const char *dir, const char *sub)
{
	char p[4096];
	int fd;
	DIR *d;

	if (relay_pathf(p, sizeof(p), "%s/%s", dir, sub) != 0)
		return NULL;
	fd = open(p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	if ((d = fdopendir(fd)) == NULL)
		(void)close(fd);	/* read-only directory fd */
	return d;
}

int
relay_spool_recover(const char *dir)
{
	char q[4096];
	struct dirent *de;
	DIR *d;
	int rc = 0;

	/* incoming/: never answered 250, so never promised to anyone. Runs
	 * as the relay user (relay_main); entries are removed relative to
	 * the directory fd, and a link is removed, never followed. */
	if ((d = open_subdir(dir, "incoming")) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) != 0 && errno != ENOENT)
			rc = -1;
	}
	(void)closedir(d);
	/* state/: temporary files and states whose message is gone */
	if ((d = open_subdir(dir, "state")) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		int stale;
		if (de->d_name[0] == '.')
			continue;
		stale = !relay_spool_valid_id(de->d_name);
		if (!stale) {
			if (relay_pathf(q, sizeof(q), "%s/queue/%s", dir, de->d_name) != 0)
				continue;
			stale = lstat(q, &st) != 0;
			if (stale) {
				if (relay_pathf(q, sizeof(q), "%s/hold/%s", dir, de->d_name) != 0)
					continue;
				stale = lstat(q, &st) != 0;
			}
		}
		if (stale && unlinkat(dirfd(d), de->d_name, 0) != 0 && errno != ENOENT)
			rc = -1;
	}
	(void)closedir(d);
	return rc;
}

static void
new_id(char id[RELAY_ID_LEN + 1])
{
	unsigned char r[4] = { 0, 0, 0, 0 };
	struct timespec ts;

	(void)clock_gettime(CLOCK_REALTIME, &ts);
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		unsigned x = (unsigned)ts.tv_nsec ^ ((unsigned)getpid() << 12);
		memcpy(r, &x, sizeof(r));
	}
	snprintf(id, RELAY_ID_LEN + 1, "%08llX%02X%02X%02X%02X",
	    (unsigned long long)ts.tv_sec & 0xffffffffULL, r[0], r[1], r[2], r[3]);
}

static void
w_raw(struct relay_spool_writer *w, const void *p, size_t len)
{
	const char *s = p;

	if (w->failed)
		return;
	while (len > 0) {
		size_t room = sizeof(w->buf) - w->blen;
		size_t n = len < room ? len : room;
		memcpy(w->buf + w->blen, s, n);
		w->blen += n;
		s += n;
		len -= n;
		w->off += (off_t)n;
		if (w->blen == sizeof(w->buf)) {
			if (relay_write_all(w->fd, w->buf, w->blen) != 0) {
				w->failed = 1;
				w->err = errno;
				return;
			}
			w->blen = 0;
		}
	}
}

static void
w_printf(struct relay_spool_writer *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void
w_printf(struct relay_spool_writer *w, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line)) {
		w->failed = 1;
		w->err = EINVAL;
		return;
	}
	w_raw(w, line, (size_t)n);
}

static int
clean_field(const char *s)
{
	return strpbrk(s, "\r\n") == NULL && strlen(s) <= 512;
}

int
relay_spool_create(const char *dir, struct relay_spool_writer *w,
    const char *from, int utf8, int eightbit, const char *client,
    char *const *rcpts, size_t nrcpts)
{
	return relay_spool_create_ext(dir, w, from, utf8, eightbit, client, rcpts,
	    nrcpts, NULL);
}

int
relay_spool_create_ext(const char *dir, struct relay_spool_writer *w,
    const char *from, int utf8, int eightbit, const char *client,
    char *const *rcpts, size_t nrcpts, const struct relay_spool_dsn *dsn)
{
	memset(w, 0, sizeof(*w));
	w->fd = -1;
	w->last2[0] = w->last2[1] = -1;
	if (!clean_field(from) || (client && !clean_field(client)) || nrcpts == 0 ||
	    nrcpts > RELAY_RCPT_MAX) {
		errno = EINVAL;
		return -1;
	}
	for (size_t i = 0; i < nrcpts; i++)
		if (!clean_field(rcpts[i]) || rcpts[i][0] == '\0' ||
		    (dsn && dsn->orcpt && dsn->orcpt[i] && !relay_dsn_orcpt_ok(dsn->orcpt[i]))) {
			errno = EINVAL;
			return -1;
		}
	if (dsn && dsn->envid && !relay_dsn_xtext_ok(dsn->envid, 100)) {
		errno = EINVAL;
		return -1;
	}
	for (int tries = 0; tries < 16; tries++) {
		new_id(w->id);
		if (relay_pathf(w->path, sizeof(w->path), "%s/incoming/%s", dir, w->id) != 0)
			return -1;
		w->fd = open(w->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (w->fd >= 0 || errno != EEXIST)
			break;
	}
	if (w->fd < 0)
		return -1;
	w_printf(w, "TWQ1\nid %s\ntime %lld\nfrom %s\n", w->id, (long long)time(NULL), from);
	if (utf8)
		w_raw(w, "utf8\n", 5);
	if (eightbit)
		w_raw(w, "8bit\n", 5);
	if (client)
		w_printf(w, "client %s\n", client);
	if (dsn && dsn->ret != RELAY_RET_NONE)
		w_printf(w, "ret %s\n", dsn->ret == RELAY_RET_FULL ? "FULL" : "HDRS");
	if (dsn && dsn->envid)
		w_printf(w, "envid %s\n", dsn->envid);
	for (size_t i = 0; i < nrcpts; i++) {
		w_printf(w, "rcpt %s\n", rcpts[i]);
		if (dsn && dsn->notify && dsn->notify[i]) {
			char nl[64];
			relay_dsn_notify_str(dsn->notify[i], nl, sizeof(nl));
			w_printf(w, "notify %s\n", nl);
		}
		if (dsn && dsn->orcpt && dsn->orcpt[i])
			w_printf(w, "orcpt %s\n", dsn->orcpt[i]);
	}
	w_raw(w, "data\n", 5);
	w->body_off = w->off;
	if (w->failed) {
		errno = w->err;
		relay_spool_abort(w);
		return -1;
	}
	return 0;
}

void
relay_spool_write(struct relay_spool_writer *w, const void *p, size_t len)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < len && !w->body8; i++)
		if (s[i] & 0x80)
			w->body8 = 1;
	if (len >= 2) {
		w->last2[0] = s[len - 2];
		w->last2[1] = s[len - 1];
	} else if (len == 1) {
		w->last2[0] = w->last2[1];
		w->last2[1] = s[0];
	}
	w_raw(w, p, len);
}

int
relay_spool_flush(struct relay_spool_writer *w)
{
	if (!w->failed && w->blen > 0) {
		if (relay_write_all(w->fd, w->buf, w->blen) != 0) {
			w->failed = 1;
			w->err = errno;
		}
		w->blen = 0;
	}
	if (w->failed) {
		errno = w->err;
		return -1;
	}
	return 0;
}

int
relay_spool_commit(const char *dir, struct relay_spool_writer *w,
    const char *dkim, size_t dkim_len)
{
	char qpath[4096], qdir[4096];
	off_t t = w->off;

	if (w->body8)
		w_raw(w, "8bit\n", 5);
	if (dkim && dkim_len > 0) {
		w_printf(w, "dkim %zu\n", dkim_len);
		w_raw(w, dkim, dkim_len);
		w_raw(w, "\n", 1);
	}
	w_printf(w, "end %016llx\n", (unsigned long long)t);
	if (relay_spool_flush(w) != 0)
		goto fail;
	if (relay_pathf(qdir, sizeof(qdir), "%s/queue", dir) != 0 ||
	    relay_pathf(qpath, sizeof(qpath), "%s/%s", qdir, w->id) != 0)
		goto fail;
	/* Complete (end record written), so renamed before its fsync: the
	 * fsync of the file then commits the data and the new entry in one
	 * journal transaction, and the fsync of queue/ after it finds its
	 * change already committed; fsync, rename, fsync(dir) waits for two
	 * commits in a row. Until both fsyncs returned, the file is locked:
	 * a delivery worker that finds it by a directory scan skips it
	 * (relay_spool_lock says busy), so nothing leaves before it is on disk. */
	if (flock(w->fd, LOCK_EX | LOCK_NB) != 0)
		goto fail;
	if (rename(w->path, qpath) != 0)
		goto fail;
	w->path[0] = '\0';
	if (fsync(w->fd) != 0 || relay_fsync_dir(qdir) != 0) {
		/* in queue/ but maybe not durably: do not promise it (still
		 * locked: nobody delivered it) */
		int e = errno;
		(void)unlink(qpath);
		(void)close(w->fd);	/* removed: nothing to keep */
		w->fd = -1;
		errno = e;
		return -1;
	}
	(void)close(w->fd);	/* releases the lock; the data is synced */
	w->fd = -1;
	return 0;
fail:
	{
		int e = w->failed ? w->err : errno;
		relay_spool_abort(w);
		errno = e;
	}
	return -1;
}

void
relay_spool_abort(struct relay_spool_writer *w)
{
	if (w->fd >= 0) {
		(void)close(w->fd);	/* the file is removed: nothing to keep */
		w->fd = -1;
	}
	if (w->path[0] != '\0')
		(void)unlink(w->path);
	w->path[0] = '\0';
}

enum relay_lock
relay_spool_lock(const char *dir, enum relay_spool_dir d, const char *id, int *fdp)
{
	char p[4096];
	struct stat a, b;
	int fd;

	*fdp = -1;
	if (!relay_spool_valid_id(id)) {
		errno = EINVAL;
		return RELAY_LOCK_ERROR;
	}
	if (relay_pathf(p, sizeof(p), "%s/%s/%s", dir, relay_spool_subdir(d), id) != 0)
		return RELAY_LOCK_ERROR;
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? RELAY_LOCK_GONE : RELAY_LOCK_ERROR;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		(void)close(fd);	/* read-only, never written */
		errno = e;
		return e == EWOULDBLOCK ? RELAY_LOCK_BUSY : RELAY_LOCK_ERROR;
	}
	/* someone may have moved or removed it between open and lock */
	if (fstat(fd, &a) != 0 || stat(p, &b) != 0 || a.st_ino != b.st_ino ||
	    a.st_dev != b.st_dev) {
		(void)close(fd);
		return RELAY_LOCK_GONE;
	}
	*fdp = fd;
	return RELAY_LOCK_OK;
}

void
relay_msg_free(struct relay_msg *m)
{
	free(m->from);
	free(m->client);
	free(m->envid);
	for (size_t i = 0; i < m->nrcpts; i++) {
		free(m->rcpts[i].addr);
		free(m->rcpts[i].orcpt);
		free(m->rcpts[i].reply);
	}
	free(m->rcpts);
	free(m->dkim);
	memset(m, 0, sizeof(*m));
}

static const char *
rstatus_name(enum relay_rstatus s)
{
	switch (s) {
	case RELAY_R_SENT: return "sent";
	case RELAY_R_BOUNCED: return "bounced";
	default: return "pending";
	}
}

int
relay_state_save(const char *dir, const struct relay_msg *m)
{
	char tmp[4096], dst[4096], sdir[4096];
	struct relay_spool_writer w;

	memset(&w, 0, sizeof(w));
	if (relay_pathf(sdir, sizeof(sdir), "%s/state", dir) != 0)
		return -1;
	if (relay_pathf(tmp, sizeof(tmp), "%s/.%s.%ld", sdir, m->id, (long)getpid()) != 0)
		return -1;
	if (relay_pathf(dst, sizeof(dst), "%s/%s", sdir, m->id) != 0)
		return -1;
	w.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (w.fd < 0)
		return -1;
	snprintf(w.path, sizeof(w.path), "%s", tmp);
	w_printf(&w, "TWS1\nattempts %u\nnext %lld\nwarned %d\nnotified %d\n",
	    m->attempts, (long long)m->next_attempt, m->warned ? 1 : 0, m->notified ? 1 : 0);
	for (size_t i = 0; i < m->nrcpts; i++) {
		char reply[600];
		const char *r = m->rcpts[i].reply ? m->rcpts[i].reply : "";
		size_t j;
		for (j = 0; r[j] && j < sizeof(reply) - 1; j++)
			reply[j] = (r[j] == '\n' || r[j] == '\r') ? ' ' : r[j];
		reply[j] = '\0';
		w_printf(&w, "r %zu %s %s\n", i, rstatus_name(m->rcpts[i].status), reply);
	}
	w_raw(&w, "end\n", 4);
	if (relay_spool_flush(&w) != 0 || fsync(w.fd) != 0) {
		relay_spool_abort(&w);
		return -1;
	}
	if (close(w.fd) != 0) {
		w.fd = -1;
		relay_spool_abort(&w);
		return -1;
	}
	w.fd = -1;
	if (rename(tmp, dst) != 0) {
		relay_spool_abort(&w);
		return -1;
	}
	return relay_fsync_dir(sdir);
}

int
relay_spool_remove(const char *dir, enum relay_spool_dir d, const char *id)
{
	char p[4096];
	int rc = 0;

	if (relay_pathf(p, sizeof(p), "%s/%s/%s", dir, relay_spool_subdir(d), id) != 0)
		return -1;
	/* not fsynced: after a power loss the worst case is a message that
	 * comes back and is delivered again, never one that is lost */
	if (unlink(p) != 0 && errno != ENOENT)
		return -1;
	if (relay_pathf(p, sizeof(p), "%s/state/%s", dir, id) != 0)
		return -1;
	if (unlink(p) != 0 && errno != ENOENT)
		rc = -1;
	return rc;
}

int
relay_spool_move(const char *dir, enum relay_spool_dir from,
    enum relay_spool_dir to, const char *id)
{
	char a[4096], b[4096], bd[4096];

	if (relay_pathf(a, sizeof(a), "%s/%s/%s", dir, relay_spool_subdir(from), id) != 0)
		return -1;
	if (relay_pathf(bd, sizeof(bd), "%s/%s", dir, relay_spool_subdir(to)) != 0)
		return -1;
	if (relay_pathf(b, sizeof(b), "%s/%s", bd, id) != 0)
		return -1;
	if (rename(a, b) != 0)
		return -1;
	return relay_fsync_dir(bd);
}

int
relay_spool_corrupt(const char *dir, enum relay_spool_dir from, const char *id)
{
	char a[4096], b[4096], bd[4096];

	if (relay_pathf(a, sizeof(a), "%s/%s/%s", dir, relay_spool_subdir(from), id) != 0)
		return -1;
	if (relay_pathf(bd, sizeof(bd), "%s/corrupt", dir) != 0)
		return -1;
	if (relay_pathf(b, sizeof(b), "%s/%s", bd, id) != 0)
		return -1;
	if (rename(a, b) != 0)
		return -1;
	if (relay_pathf(a, sizeof(a), "%s/state/%s", dir, id) != 0)
		return -1;
	(void)unlink(a);	/* a stale state is harmless; recovery removes it */
	return relay_fsync_dir(bd);
}

/* ---- RFC 3461 parameters --------------------------------------------------- */

int
relay_dsn_xtext_ok(const char *s, size_t max)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '+') {
			if (i + 2 >= n || strchr(hex, s[i + 1]) == NULL || strchr(hex, s[i + 2]) == NULL)
				return 0;
			i += 2;
		} else if (c < 33 || c > 126 || c == '=')
			return 0;
	}
	return 1;
}

int
relay_dsn_orcpt_ok(const char *s)
{
	const char *semi = strchr(s, ';');

	if (semi == NULL || semi == s || strlen(s) > 500)
		return 0;
	for (const char *p = s; p < semi; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-'))
			return 0;
	return relay_dsn_xtext_ok(semi + 1, 500);
}

int
relay_dsn_notify_parse(const char *s, unsigned *flags)
{
	char buf[64], *tok, *save = NULL;
	unsigned f = 0;

	if (strlen(s) >= sizeof(buf))
		return -1;
	if (strcasecmp(s, "NEVER") == 0) {
		*flags = RELAY_NOTIFY_NEVER;
		return 0;
	}
	snprintf(buf, sizeof(buf), "%s", s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (strcasecmp(tok, "SUCCESS") == 0)
			f |= RELAY_NOTIFY_SUCCESS;
		else if (strcasecmp(tok, "FAILURE") == 0)
			f |= RELAY_NOTIFY_FAILURE;
		else if (strcasecmp(tok, "DELAY") == 0)
			f |= RELAY_NOTIFY_DELAY;
		else
			return -1;
	}
	if (f == 0)
		return -1;
	*flags = f;
	return 0;
}

void
relay_dsn_notify_str(unsigned flags, char *out, size_t outlen)
{
	if (flags & RELAY_NOTIFY_NEVER) {
		snprintf(out, outlen, "NEVER");
		return;
	}
	snprintf(out, outlen, "%s%s%s%s%s",
	    flags & RELAY_NOTIFY_SUCCESS ? "SUCCESS" : "",
	    (flags & RELAY_NOTIFY_SUCCESS) && (flags & (RELAY_NOTIFY_FAILURE | RELAY_NOTIFY_DELAY)) ? "," : "",
	    flags & RELAY_NOTIFY_FAILURE ? "FAILURE" : "",
	    (flags & RELAY_NOTIFY_FAILURE) && (flags & RELAY_NOTIFY_DELAY) ? "," : "",
	    flags & RELAY_NOTIFY_DELAY ? "DELAY" : "");
}

/*
 * relay_spool — durable queue files, state files, locking, recovery.
 *
 * See relay_spool.h for the layout and the file formats. The rule that
 * makes "250 means durable" true: relay_spool_commit() writes the trailer
 * with its end record, fsyncs the file, closes it, renames it from
 * incoming/ to queue/ and fsyncs queue/; only when all of these returned 0
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
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "config.h"
#include "relay_spool.h"

#define HDR_MAX		(2 * 1024 * 1024)	/* envelope records */
#define END_LEN		21			/* "end %016llx\n" */

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

int
relay_spool_init(const char *dir, uid_t uid, gid_t gid)
{
	char p[4096];

	if (mkdir(dir, 0750) != 0 && errno != EEXIST)
		return -1;
	if (chown(dir, uid, gid) != 0)
		return -1;
	for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		if (relay_pathf(p, sizeof(p), "%s/%s", dir, subdirs[i]) != 0)
			return -1;
		if (mkdir(p, 0750) != 0 && errno != EEXIST)
			return -1;
		if (chown(p, uid, gid) != 0)
			return -1;
	}
	return relay_fsync_dir(dir);
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

int
relay_spool_recover(const char *dir)
{
	char p[4096], q[4096];
	struct dirent *de;
	DIR *d;
	int rc = 0;

	/* incoming/: never answered 250, so never promised to anyone */
	if (relay_pathf(p, sizeof(p), "%s/incoming", dir) != 0)
		return -1;
	if ((d = opendir(p)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (relay_pathf(q, sizeof(q), "%s/%s", p, de->d_name) != 0)
			continue;
		if (unlink(q) != 0 && errno != ENOENT)
			rc = -1;
	}
	(void)closedir(d);
	/* state/: temporary files and states whose message is gone */
	if (relay_pathf(p, sizeof(p), "%s/state", dir) != 0)
		return -1;
	if ((d = opendir(p)) == NULL)
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
			stale = stat(q, &st) != 0;
			if (stale) {
				if (relay_pathf(q, sizeof(q), "%s/hold/%s", dir, de->d_name) != 0)
					continue;
				stale = stat(q, &st) != 0;
			}
		}
		if (stale) {
			if (relay_pathf(q, sizeof(q), "%s/%s", p, de->d_name) != 0)
				continue;
			if (unlink(q) != 0 && errno != ENOENT)
				rc = -1;
		}
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
	memset(w, 0, sizeof(*w));
	w->fd = -1;
	w->last2[0] = w->last2[1] = -1;
	if (!clean_field(from) || (client && !clean_field(client)) || nrcpts == 0 ||
	    nrcpts > RELAY_RCPT_MAX) {
		errno = EINVAL;
		return -1;
	}
	for (size_t i = 0; i < nrcpts; i++)
		if (!clean_field(rcpts[i]) || rcpts[i][0] == '\0') {
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
	for (size_t i = 0; i < nrcpts; i++)
		w_printf(w, "rcpt %s\n", rcpts[i]);
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

	if (dkim && dkim_len > 0) {
		w_printf(w, "dkim %zu\n", dkim_len);
		w_raw(w, dkim, dkim_len);
		w_raw(w, "\n", 1);
	}
	w_printf(w, "end %016llx\n", (unsigned long long)t);
	if (relay_spool_flush(w) != 0)
		goto fail;
	if (fsync(w->fd) != 0)
		goto fail;
	if (close(w->fd) != 0) {
		w->fd = -1;
		goto fail;
	}
	w->fd = -1;
	if (relay_pathf(qdir, sizeof(qdir), "%s/queue", dir) != 0)
		return -1;
	if (relay_pathf(qpath, sizeof(qpath), "%s/%s", qdir, w->id) != 0)
		return -1;
	if (rename(w->path, qpath) != 0)
		goto fail;
	if (relay_fsync_dir(qdir) != 0) {
		/* the file is in queue/ but maybe not durably: do not promise it */
		int e = errno;
		(void)unlink(qpath);
		errno = e;
		return -1;
	}
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
	for (size_t i = 0; i < m->nrcpts; i++) {
		free(m->rcpts[i].addr);
		free(m->rcpts[i].reply);
	}
	free(m->rcpts);
	free(m->dkim);
	memset(m, 0, sizeof(*m));
}

static int
parse_ll(const char *s, long long *v)
{
	unsigned long long u;
	const char *why;

	if (conf_parse_uint(s, &u, &why) != 0 || u > (1ULL << 62))
		return -1;
	*v = (long long)u;
	return 0;
}

static int
add_rcpt(struct relay_msg *m, const char *addr)
{
	struct relay_rcpt *nv;

	if (m->nrcpts >= RELAY_RCPT_MAX)
		return -1;
	nv = realloc(m->rcpts, (m->nrcpts + 1) * sizeof(*nv));
	if (nv == NULL)
		return -1;
	m->rcpts = nv;
	memset(&m->rcpts[m->nrcpts], 0, sizeof(*nv));
	m->rcpts[m->nrcpts].addr = strdup(addr);
	if (m->rcpts[m->nrcpts].addr == NULL)
		return -1;
	m->nrcpts++;
	return 0;
}

int
relay_spool_read(int fd, struct relay_msg *m, const char **why)
{
	struct stat st;
	char endrec[END_LEN + 1], *hdr = NULL, *p, *nl;
	unsigned long long t;
	size_t hlen;
	int got_data = 0;

	memset(m, 0, sizeof(*m));
	if (fstat(fd, &st) != 0) {
		*why = "fstat failed";
		return -1;
	}
	if (st.st_size < END_LEN + 10) {
		*why = "file too short";
		return -1;
	}
	if (relay_spool_pread(fd, endrec, END_LEN, st.st_size - END_LEN) != 0) {
		*why = "read error";
		return -1;
	}
	endrec[END_LEN] = '\0';
	if (memcmp(endrec, "end ", 4) != 0 || endrec[END_LEN - 1] != '\n' ||
	    strspn(endrec + 4, "0123456789abcdef") != 16 ||
	    sscanf(endrec + 4, "%16llx", &t) != 1 || t >= (unsigned long long)st.st_size) {
		*why = "missing end record (torn file)";
		return -1;
	}
	/* the envelope is small unless there are many recipients: read 64K
	 * first, and up to HDR_MAX only if the data record is not in it */
	hlen = st.st_size < 65536 ? (size_t)st.st_size : 65536;
	for (;;) {
		size_t most = st.st_size < HDR_MAX ? (size_t)st.st_size : HDR_MAX;
		hdr = malloc(hlen + 1);
		if (hdr == NULL || relay_spool_pread(fd, hdr, hlen, 0) != 0) {
			*why = "read error";
			goto bad;
		}
		if (memmem(hdr, hlen, "\ndata\n", 6) != NULL || hlen >= most)
			break;
		free(hdr);
		hdr = NULL;
		hlen = most;
	}
	hdr[hlen] = '\0';
	if (strncmp(hdr, "TWQ1\n", 5) != 0) {
		*why = "bad magic";
		goto bad;
	}
	for (p = hdr + 5; !got_data; p = nl + 1) {
		long long v;
		nl = memchr(p, '\n', hlen - (size_t)(p - hdr));
		if (nl == NULL) {
			*why = "envelope too long or unterminated";
			goto bad;
		}
		*nl = '\0';
		if (strncmp(p, "id ", 3) == 0) {
			if (!relay_spool_valid_id(p + 3)) {
				*why = "bad id";
				goto bad;
			}
			memcpy(m->id, p + 3, RELAY_ID_LEN + 1);
		} else if (strncmp(p, "time ", 5) == 0) {
			if (parse_ll(p + 5, &v) != 0) {
				*why = "bad time";
				goto bad;
			}
			m->arrival = (time_t)v;
		} else if (strncmp(p, "from ", 5) == 0 || strcmp(p, "from") == 0) {
			free(m->from);
			m->from = strdup(p[4] ? p + 5 : "");
			if (m->from == NULL)
				goto oom;
		} else if (strncmp(p, "client ", 7) == 0) {
			free(m->client);
			m->client = strdup(p + 7);
			if (m->client == NULL)
				goto oom;
		} else if (strcmp(p, "utf8") == 0) {
			m->utf8 = 1;
		} else if (strcmp(p, "8bit") == 0) {
			m->eightbit = 1;
		} else if (strncmp(p, "rcpt ", 5) == 0) {
			if (add_rcpt(m, p + 5) != 0) {
				*why = "too many recipients";
				goto bad;
			}
		} else if (strcmp(p, "data") == 0) {
			got_data = 1;
			m->body_off = (off_t)(nl + 1 - hdr);
		} else {
			*why = "unknown envelope record";
			goto bad;
		}
	}
	if (m->id[0] == '\0' || m->from == NULL || m->nrcpts == 0 || m->arrival == 0) {
		*why = "incomplete envelope";
		goto bad;
	}
	if ((off_t)t < m->body_off) {
		*why = "trailer before body";
		goto bad;
	}
	m->body_len = (off_t)t - m->body_off;
	/* trailer: optional dkim record between T and the end record */
	{
		size_t tl = (size_t)(st.st_size - END_LEN - (off_t)t);
		char *tr;
		if (tl > 0) {
			if (tl > 65536) {
				*why = "trailer too long";
				goto bad;
			}
			tr = malloc(tl + 1);
			if (tr == NULL)
				goto oom;
			if (relay_spool_pread(fd, tr, tl, (off_t)t) != 0) {
				free(tr);
				*why = "read error";
				goto bad;
			}
			tr[tl] = '\0';
			unsigned long long dl;
			char *e = memchr(tr, '\n', tl);
			if (strncmp(tr, "dkim ", 5) != 0 || e == NULL ||
			    sscanf(tr + 5, "%llu", &dl) != 1 ||
			    (size_t)(e - tr) + 1 + dl + 1 != tl || tr[tl - 1] != '\n') {
				free(tr);
				*why = "bad trailer";
				goto bad;
			}
			m->dkim = malloc(dl + 1);
			if (m->dkim == NULL) {
				free(tr);
				goto oom;
			}
			memcpy(m->dkim, e + 1, dl);
			m->dkim[dl] = '\0';
			m->dkim_len = dl;
			free(tr);
		}
	}
	free(hdr);
	return 0;
oom:
	*why = "out of memory";
bad:
	free(hdr);
	relay_msg_free(m);
	return -1;
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
relay_state_load(const char *dir, struct relay_msg *m)
{
	char p[4096], *buf = NULL, *line, *save = NULL;
	struct stat st;
	int fd, ok = 0;

	m->attempts = 0;
	m->next_attempt = 0;
	m->warned = m->notified = 0;
	if (relay_pathf(p, sizeof(p), "%s/state/%s", dir, m->id) != 0)
		return -1;
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (fstat(fd, &st) != 0 || st.st_size > 4 * 1024 * 1024 ||
	    (buf = malloc((size_t)st.st_size + 1)) == NULL ||
	    relay_spool_pread(fd, buf, (size_t)st.st_size, 0) != 0) {
		free(buf);
		(void)close(fd);
		return -1;
	}
	(void)close(fd);	/* read-only: nothing to lose */
	buf[st.st_size] = '\0';
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		long long v;
		if (strncmp(line, "attempts ", 9) == 0 && parse_ll(line + 9, &v) == 0)
			m->attempts = (unsigned)v;
		else if (strncmp(line, "next ", 5) == 0 && parse_ll(line + 5, &v) == 0)
			m->next_attempt = (time_t)v;
		else if (strcmp(line, "warned 1") == 0)
			m->warned = 1;
		else if (strcmp(line, "notified 1") == 0)
			m->notified = 1;
		else if (strncmp(line, "r ", 2) == 0) {
			char num[16], st_name[16];
			int off = 0;
			unsigned long long idx;
			const char *why;
			if (sscanf(line + 2, "%15s %15s %n", num, st_name, &off) < 2 ||
			    conf_parse_uint(num, &idx, &why) != 0 || idx >= m->nrcpts)
				continue;
			struct relay_rcpt *r = &m->rcpts[idx];
			r->status = strcmp(st_name, "sent") == 0 ? RELAY_R_SENT :
			    strcmp(st_name, "bounced") == 0 ? RELAY_R_BOUNCED : RELAY_R_PENDING;
			free(r->reply);
			r->reply = off > 0 && line[2 + off] ? strdup(line + 2 + off) : NULL;
		} else if (strcmp(line, "end") == 0)
			ok = 1;
	}
	free(buf);
	return ok ? 0 : -1;
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

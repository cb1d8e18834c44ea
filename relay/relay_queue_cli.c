/*
 * relay_queue_cli — inspect and steer the queue.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "relay_proc.h"
#include "relay_queue_cli.h"
#include "relay_spool.h"

static const char *
status_word(enum relay_rstatus s)
{
	return s == RELAY_R_SENT ? "sent" : s == RELAY_R_BOUNCED ? "bounced" : "pending";
}

static void
fmt_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (t == 0) {
		snprintf(buf, len, "now");
		return;
	}
	if (gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "%lld", (long long)t);
}

/* Read a message without taking its lock (list/show only look). */
static int
peek(const struct relay_config *cfg, enum relay_spool_dir d, const char *id,
    struct relay_msg *m, int *fdp)
{
	char p[4096];
	const char *why = NULL;
	int fd;

	if (relay_pathf(p, sizeof(p), "%s/%s/%s", cfg->spool_dir, relay_spool_subdir(d), id) != 0)
		return -1;
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (relay_spool_read(fd, m, &why) != 0) {
		printf("%s %s: unreadable (%s)\n", id, relay_spool_subdir(d), why);
		(void)close(fd);
		return -2;
	}
	(void)relay_state_load(cfg->spool_dir, m);
	if (fdp)
		*fdp = fd;
	else
		(void)close(fd);	/* read-only */
	return 0;
}

static int
cmd_list(const struct relay_config *cfg)
{
	size_t total = 0;
	enum relay_spool_dir dirs[2] = { RELAY_DIR_QUEUE, RELAY_DIR_HOLD };

	for (int k = 0; k < 2; k++) {
		char p[4096];
		DIR *d;
		struct dirent *de;

		if (relay_pathf(p, sizeof(p), "%s/%s", cfg->spool_dir,
		    relay_spool_subdir(dirs[k])) != 0 || (d = opendir(p)) == NULL) {
			fprintf(stderr, "cannot read %s: %s\n", p, strerror(errno));
			return 1;
		}
		while ((de = readdir(d)) != NULL) {
			struct relay_msg m;
			char at[40], nx[40];
			if (!relay_spool_valid_id(de->d_name))
				continue;
			if (peek(cfg, dirs[k], de->d_name, &m, NULL) != 0)
				continue;
			fmt_time(m.arrival, at, sizeof(at));
			fmt_time(m.next_attempt, nx, sizeof(nx));
			printf("%s%s size=%lld arrival=%s attempts=%u next=%s from=<%s>\n",
			    m.id, dirs[k] == RELAY_DIR_HOLD ? " HOLD" : "",
			    (long long)(m.body_len + (off_t)m.dkim_len), at, m.attempts, nx, m.from);
			for (size_t i = 0; i < m.nrcpts; i++)
				printf("    <%s> %s%s%s\n", m.rcpts[i].addr,
				    status_word(m.rcpts[i].status),
				    m.rcpts[i].reply ? " " : "",
				    m.rcpts[i].reply ? m.rcpts[i].reply : "");
			relay_msg_free(&m);
			total++;
		}
		(void)closedir(d);
	}
	printf("%zu message%s\n", total, total == 1 ? "" : "s");
	return 0;
}

static int
cmd_show(const struct relay_config *cfg, const char *id)
{
	struct relay_msg m;
	enum relay_spool_dir d = RELAY_DIR_QUEUE;
	char at[40], nx[40], buf[65536];
	int fd = -1, rc = peek(cfg, d, id, &m, &fd);
	size_t n;

	if (rc == -1) {
		d = RELAY_DIR_HOLD;
		rc = peek(cfg, d, id, &m, &fd);
	}
	if (rc != 0) {
		if (rc == -1)
			fprintf(stderr, "%s: no such message\n", id);
		return 1;
	}
	fmt_time(m.arrival, at, sizeof(at));
	fmt_time(m.next_attempt, nx, sizeof(nx));
	printf("id: %s\nqueue: %s\narrival: %s\nsize: %lld\nfrom: <%s>\nclient: %s\n"
	    "smtputf8: %s\n8bitmime: %s\ndkim: %s\nattempts: %u\nnext: %s\n",
	    m.id, relay_spool_subdir(d), at, (long long)(m.body_len + (off_t)m.dkim_len),
	    m.from, m.client ? m.client : "-", m.utf8 ? "yes" : "no",
	    m.eightbit ? "yes" : "no", m.dkim_len ? "signed" : "none", m.attempts, nx);
	for (size_t i = 0; i < m.nrcpts; i++)
		printf("rcpt: <%s> %s%s%s\n", m.rcpts[i].addr, status_word(m.rcpts[i].status),
		    m.rcpts[i].reply ? " " : "", m.rcpts[i].reply ? m.rcpts[i].reply : "");
	printf("\n");
	n = m.body_len < (off_t)sizeof(buf) ? (size_t)m.body_len : sizeof(buf);
	if (n > 0 && relay_spool_pread(fd, buf, n, m.body_off) == 0) {
		const char *e = memmem(buf, n, "\r\n\r\n", 4);
		size_t hl = e ? (size_t)(e - buf) + 2 : n;
		if (m.dkim_len)
			fwrite(m.dkim, 1, m.dkim_len, stdout);
		fwrite(buf, 1, hl, stdout);
	}
	(void)close(fd);	/* read-only */
	relay_msg_free(&m);
	return 0;
}

/* Lock a message for a change; says why not on stderr. fd or -1. */
static int
lock_or_say(const struct relay_config *cfg, enum relay_spool_dir d, const char *id)
{
	int fd;

	switch (relay_spool_lock(cfg->spool_dir, d, id, &fd)) {
	case RELAY_LOCK_OK:
		return fd;
	case RELAY_LOCK_BUSY:
		fprintf(stderr, "%s: being delivered right now; try again\n", id);
		break;
	case RELAY_LOCK_GONE:
		fprintf(stderr, "%s: no such message in %s/\n", id, relay_spool_subdir(d));
		break;
	case RELAY_LOCK_ERROR:
		fprintf(stderr, "%s: %s\n", id, strerror(errno));
		break;
	}
	return -1;
}

/* Make the next attempt "now" on disk (the state survives a restart). */
static int
make_due(const struct relay_config *cfg, int fd)
{
	struct relay_msg m;
	const char *why = NULL;
	int rc;

	if (relay_spool_read(fd, &m, &why) != 0) {
		fprintf(stderr, "corrupt queue file: %s\n", why);
		return -1;
	}
	(void)relay_state_load(cfg->spool_dir, &m);
	m.next_attempt = 0;
	rc = relay_state_save(cfg->spool_dir, &m);
	if (rc != 0)
		fprintf(stderr, "%s: saving state: %s\n", m.id, strerror(errno));
	relay_msg_free(&m);
	return rc;
}

static int
cmd_flush(const struct relay_config *cfg, const char *id)
{
	char msg[64];

	if (id == NULL) {
		if (relay_notify(cfg->spool_dir, "flush") != 0) {
			fprintf(stderr, "the relay is not running (no control socket)\n");
			return 1;
		}
		printf("flush requested\n");
		return 0;
	}
	int fd = lock_or_say(cfg, RELAY_DIR_QUEUE, id);
	if (fd < 0)
		return 1;
	int rc = make_due(cfg, fd);
	(void)close(fd);	/* unlock */
	if (rc != 0)
		return 1;
	snprintf(msg, sizeof(msg), "flush %s", id);
	if (relay_notify(cfg->spool_dir, msg) != 0)
		printf("%s: due now; the relay is not running, it will be sent at start\n", id);
	else
		printf("%s: flush requested\n", id);
	return 0;
}

static int
cmd_delete(const struct relay_config *cfg, const char *id)
{
	enum relay_spool_dir d = RELAY_DIR_QUEUE;
	int fd;

	/* in queue/, else in hold/ */
	if (relay_spool_lock(cfg->spool_dir, d, id, &fd) == RELAY_LOCK_GONE)
		d = RELAY_DIR_HOLD;
	if (fd < 0)
		fd = lock_or_say(cfg, d, id);
	if (fd < 0)
		return 1;
	int rc = relay_spool_remove(cfg->spool_dir, d, id);
	(void)close(fd);
	if (rc != 0) {
		fprintf(stderr, "%s: delete failed: %s\n", id, strerror(errno));
		return 1;
	}
	printf("%s: deleted\n", id);
	return 0;
}

static int
cmd_move(const struct relay_config *cfg, const char *id, int hold)
{
	enum relay_spool_dir a = hold ? RELAY_DIR_QUEUE : RELAY_DIR_HOLD;
	int fd = lock_or_say(cfg, a, id), rc;
	char msg[64];

	if (fd < 0)
		return 1;
	if (!hold && make_due(cfg, fd) != 0) {
		(void)close(fd);
		return 1;
	}
	rc = relay_spool_move(cfg->spool_dir, a, hold ? RELAY_DIR_HOLD : RELAY_DIR_QUEUE, id);
	(void)close(fd);
	if (rc != 0) {
		fprintf(stderr, "%s: %s failed: %s\n", id, hold ? "hold" : "release", strerror(errno));
		return 1;
	}
	if (!hold) {
		snprintf(msg, sizeof(msg), "flush %s", id);
		(void)relay_notify(cfg->spool_dir, msg);	/* else picked up at start */
	}
	printf("%s: %s\n", id, hold ? "held" : "released");
	return 0;
}

int
relay_queue_cli(const struct relay_config *cfg, int argc, char **argv)
{
	const char *cmd = argc > 0 ? argv[0] : "list";
	const char *id = argc > 1 ? argv[1] : NULL;
	int need_id = strcmp(cmd, "show") == 0 || strcmp(cmd, "delete") == 0 ||
	    strcmp(cmd, "hold") == 0 || strcmp(cmd, "release") == 0;

	if (argc > 2 || (need_id && id == NULL)) {
		fprintf(stderr, "usage: tailwart-relay queue list|show ID|flush [ID]|delete ID|hold ID|release ID\n");
		return 2;
	}
	if (id && !relay_spool_valid_id(id)) {
		fprintf(stderr, "%s: not a queue id\n", id);
		return 2;
	}
	if (strcmp(cmd, "list") == 0 && id == NULL)
		return cmd_list(cfg);
	if (strcmp(cmd, "show") == 0)
		return cmd_show(cfg, id);
	if (strcmp(cmd, "flush") == 0)
		return cmd_flush(cfg, id);
	if (strcmp(cmd, "delete") == 0)
		return cmd_delete(cfg, id);
	if (strcmp(cmd, "hold") == 0)
		return cmd_move(cfg, id, 1);
	if (strcmp(cmd, "release") == 0)
		return cmd_move(cfg, id, 0);
	fprintf(stderr, "unknown queue command %s\n", cmd);
	return 2;
}

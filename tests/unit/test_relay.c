/*
 * test_relay — unit tests for tailwart-relay's spool (commit, torn-file
 * detection, state round trip, locking, recovery), back-off bounds,
 * smarthost parsing, DSN status extraction, From-domain parsing and the
 * config schema. Includes the relay's sources directly (not relay_main.c,
 * relay_smtpd.c or relay_queue_cli.c).
 */
#include "unit.h"
#include "../../relay/relay_spool.c"
#include "../../relay/relay_spool_read.c"
#include "../../relay/relay_config.c"
#include "../../relay/relay_dkim.c"
#include "../../relay/relay_bounce.c"
#include "../../relay/relay_proc.c"
#include "../../relay/relay_dns.c"
#include "../../relay/relay_deliver.c"
#include "../../relay/relay_sched.c"
#include "../../relay/relay_worker.c"

#include <ftw.h>
#include <sys/wait.h>

static int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(path);
}

/* remove a test spool (called at the end of each case) */
static void
rmtree(const char *d)
{
	if (d != NULL && strncmp(d, "/tmp/test_relay.", 16) == 0)
		(void)nftw(d, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *
tmpspool(void)
{
	static char tmpl[64];
	snprintf(tmpl, sizeof(tmpl), "/tmp/test_relay.XXXXXX");
	if (mkdtemp(tmpl) == NULL)
		return NULL;
	if (relay_spool_init(tmpl, getuid(), getgid()) != 0)
		return NULL;
	return tmpl;
}

static int
commit_one(const char *dir, char id[RELAY_ID_LEN + 1], const char *body)
{
	struct relay_spool_writer *w = malloc(sizeof(*w));
	char *rc[2] = { "a@example.test", "b@example.test" };
	const char *dk = "DKIM-Signature: v=1; x\r\n";
	int r;

	if (w == NULL || relay_spool_create(dir, w, "s@example.test", 0, 1, "127.0.0.1", rc, 2) != 0)
		return -1;
	relay_spool_write(w, body, strlen(body));
	memcpy(id, w->id, RELAY_ID_LEN + 1);
	r = relay_spool_commit(dir, w, dk, strlen(dk));
	free(w);
	return r;
}

TEST(spool_roundtrip)
{
	char *d = tmpspool(), id[RELAY_ID_LEN + 1], buf[256];
	const char *body = "Subject: x\r\n\r\n.line\r\nend\r\n", *why = NULL;
	struct relay_msg m;
	int fd;

	EXPECT(d != NULL);
	EXPECT_INT(commit_one(d, id, body), 0);
	EXPECT(relay_spool_valid_id(id));
	EXPECT_INT(relay_spool_lock(d, RELAY_DIR_QUEUE, id, &fd), RELAY_LOCK_OK);
	EXPECT(fd >= 0);
	EXPECT_INT(relay_spool_read(fd, &m, &why), 0);
	EXPECT_STR(m.id, id);
	EXPECT_STR(m.from, "s@example.test");
	EXPECT_STR(m.client, "127.0.0.1");
	EXPECT_INT(m.nrcpts, 2);
	EXPECT_STR(m.rcpts[1].addr, "b@example.test");
	EXPECT_INT(m.eightbit, 1);
	EXPECT_INT(m.body_len, strlen(body));
	EXPECT_STR(m.dkim, "DKIM-Signature: v=1; x\r\n");
	EXPECT_INT(relay_spool_pread(fd, buf, (size_t)m.body_len, m.body_off), 0);
	EXPECT_MEM(buf, body, strlen(body));
	relay_msg_free(&m);
	close(fd);
	rmtree(d);
}

TEST(spool_many_recipients)
{
	char *d = tmpspool(), *rc[RELAY_RCPT_MAX], id[RELAY_ID_LEN + 1];
	struct relay_spool_writer *w = malloc(sizeof(*w));
	const char *why = NULL;
	struct relay_msg m;
	int fd;

	/* ~100 KB of envelope: more than the first 64 KB read */
	for (int i = 0; i < RELAY_RCPT_MAX; i++) {
		rc[i] = malloc(128);
		snprintf(rc[i], 128, "recipient-number-%04d-with-a-long-local-part@a-rather-long-domain.example.test", i);
	}
	EXPECT_INT(relay_spool_create(d, w, "s@example.test", 0, 0, NULL, rc, RELAY_RCPT_MAX), 0);
	relay_spool_write(w, "Subject: x\r\n\r\ndata\r\n", 21);
	memcpy(id, w->id, sizeof(id));
	EXPECT_INT(relay_spool_commit(d, w, NULL, 0), 0);
	EXPECT_INT(relay_spool_lock(d, RELAY_DIR_QUEUE, id, &fd), RELAY_LOCK_OK);
	EXPECT_INT(relay_spool_read(fd, &m, &why), 0);
	EXPECT_INT(m.nrcpts, RELAY_RCPT_MAX);
	EXPECT_STR(m.rcpts[999].addr, rc[999]);
	EXPECT_INT(m.body_len, 21);
	EXPECT(m.dkim == NULL);
	close(fd);
	relay_msg_free(&m);
	rmtree(d);
}

TEST(spool_torn_detected)
{
	char *d = tmpspool(), id[RELAY_ID_LEN + 1], p[512];
	const char *why = NULL;
	struct relay_msg m;
	struct stat st;
	int fd;

	EXPECT_INT(commit_one(d, id, "Subject: x\r\n\r\nbody\r\n"), 0);
	snprintf(p, sizeof(p), "%s/queue/%s", d, id);
	EXPECT_INT(stat(p, &st), 0);
	for (off_t cut = 1; cut < 30; cut += 7) {
		EXPECT_INT(truncate(p, st.st_size - cut), 0);
		fd = open(p, O_RDONLY);
		EXPECT_INT(relay_spool_read(fd, &m, &why), -1);
		close(fd);
		st.st_size -= cut;
	}
	EXPECT(why != NULL && (strstr(why, "torn") || strstr(why, "short") || strstr(why, "trailer")));
	/* garbage with a plausible end record */
	fd = open(p, O_WRONLY | O_TRUNC);
	EXPECT(write(fd, "XXXX\nend 0000000000000001\n", 26) == 26);
	close(fd);
	fd = open(p, O_RDONLY);
	EXPECT_INT(relay_spool_read(fd, &m, &why), -1);
	close(fd);
	rmtree(d);
}

TEST(state_roundtrip)
{
	char *d = tmpspool(), id[RELAY_ID_LEN + 1];
	const char *why = NULL;
	struct relay_msg m, n;
	int fd;

	EXPECT_INT(commit_one(d, id, "Subject: x\r\n\r\nbody\r\n"), 0);
	EXPECT_INT(relay_spool_lock(d, RELAY_DIR_QUEUE, id, &fd), RELAY_LOCK_OK);
	EXPECT_INT(relay_spool_read(fd, &m, &why), 0);
	EXPECT_INT(relay_state_load(d, &m), 0);	/* absent: fresh */
	EXPECT_INT(m.attempts, 0);
	m.attempts = 3;
	m.next_attempt = 1234567;
	m.warned = 1;
	m.rcpts[0].status = RELAY_R_SENT;
	m.rcpts[0].reply = strdup("250 ok\r\nsecond line");
	m.rcpts[1].status = RELAY_R_BOUNCED;
	m.rcpts[1].reply = strdup("550 5.1.1 no");
	EXPECT_INT(relay_state_save(d, &m), 0);
	EXPECT_INT(relay_spool_read(fd, &n, &why), 0);
	EXPECT_INT(relay_state_load(d, &n), 0);
	EXPECT_INT(n.attempts, 3);
	EXPECT_INT(n.next_attempt, 1234567);
	EXPECT_INT(n.warned, 1);
	EXPECT_INT(n.notified, 0);
	EXPECT_INT(n.rcpts[0].status, RELAY_R_SENT);
	EXPECT_STR(n.rcpts[0].reply, "250 ok  second line");
	EXPECT_INT(n.rcpts[1].status, RELAY_R_BOUNCED);
	EXPECT_STR(n.rcpts[1].reply, "550 5.1.1 no");
	relay_msg_free(&m);
	relay_msg_free(&n);
	close(fd);
	rmtree(d);
}

TEST(lock_is_exclusive)
{
	char *d = tmpspool(), id[RELAY_ID_LEN + 1];
	int fd, st = 0;
	pid_t pid;

	EXPECT_INT(commit_one(d, id, "Subject: x\r\n\r\nbody\r\n"), 0);
	EXPECT_INT(relay_spool_lock(d, RELAY_DIR_QUEUE, id, &fd), RELAY_LOCK_OK);
	EXPECT(fd >= 0);
	pid = fork();
	if (pid == 0)
		_exit(relay_spool_lock(d, RELAY_DIR_QUEUE, id, &fd) == RELAY_LOCK_BUSY ? 0 : 1);
	waitpid(pid, &st, 0);
	EXPECT_INT(WEXITSTATUS(st), 0);
	/* held elsewhere: gone from queue/ after a move */
	EXPECT_INT(relay_spool_move(d, RELAY_DIR_QUEUE, RELAY_DIR_HOLD, id), 0);
	close(fd);
	EXPECT_INT(relay_spool_lock(d, RELAY_DIR_QUEUE, id, &fd), RELAY_LOCK_GONE);
	EXPECT_INT(relay_spool_lock(d, RELAY_DIR_HOLD, id, &fd), RELAY_LOCK_OK);
	EXPECT(fd >= 0);
	close(fd);
	EXPECT_INT(relay_spool_lock(d, RELAY_DIR_QUEUE, "../../etc/passwd", &fd), RELAY_LOCK_ERROR);
	rmtree(d);
}

TEST(recover)
{
	char *d = tmpspool(), id[RELAY_ID_LEN + 1], p[512];
	struct relay_msg m;
	const char *why;
	int fd;

	EXPECT_INT(commit_one(d, id, "Subject: x\r\n\r\nbody\r\n"), 0);
	EXPECT_INT(relay_spool_lock(d, RELAY_DIR_QUEUE, id, &fd), RELAY_LOCK_OK);
	EXPECT_INT(relay_spool_read(fd, &m, &why), 0);
	EXPECT_INT(relay_state_save(d, &m), 0);
	close(fd);
	snprintf(p, sizeof(p), "%s/incoming/0000000100000001", d);
	close(open(p, O_CREAT | O_WRONLY, 0600));
	snprintf(p, sizeof(p), "%s/state/0000000100000002", d);
	close(open(p, O_CREAT | O_WRONLY, 0600));
	EXPECT_INT(relay_spool_recover(d), 0);
	EXPECT(access(p, F_OK) != 0);
	snprintf(p, sizeof(p), "%s/incoming/0000000100000001", d);
	EXPECT(access(p, F_OK) != 0);
	snprintf(p, sizeof(p), "%s/state/%s", d, id);
	EXPECT(access(p, F_OK) == 0);
	relay_msg_free(&m);
	rmtree(d);
}

TEST(backoff_bounds)
{
	struct relay_config c;

	memset(&c, 0, sizeof(c));
	c.min_backoff = 300;
	c.max_backoff = 3600;
	for (unsigned a = 1; a < 40; a++)
		for (unsigned r = 0; r < 3000; r += 499) {
			unsigned d = relay_sched_backoff(&c, a, r);
			if (d < 300 || d > 3600)
				FAILF("attempt %u rnd %u: %u out of [300,3600]", a, r, d);
		}
	EXPECT_INT(relay_sched_backoff(&c, 1, 500), 300);	/* factor 1.0 */
	EXPECT_INT(relay_sched_backoff(&c, 2, 500), 600);
	EXPECT_INT(relay_sched_backoff(&c, 3, 500), 1200);
	EXPECT_INT(relay_sched_backoff(&c, 30, 500), 3600);
	EXPECT_INT(relay_sched_backoff(&c, 2, 0), 450);	/* factor 0.75 */
}

TEST(smarthost_parse)
{
	struct relay_smarthost sh;
	const char *why = NULL;

	EXPECT_INT(relay_config_parse_smarthost("[smtp.example.com]:587", &sh, &why), 0);
	EXPECT_STR(sh.host, "smtp.example.com");
	EXPECT_STR(sh.port, "587");
	EXPECT_INT(sh.mx, 0);
	EXPECT_INT(relay_config_parse_smarthost("example.com:25", &sh, &why), 0);
	EXPECT_INT(sh.mx, 1);
	EXPECT_INT(relay_config_parse_smarthost("example.com", &sh, &why), 0);
	EXPECT_STR(sh.port, "25");
	EXPECT_INT(relay_config_parse_smarthost("192.0.2.1:25", &sh, &why), 0);
	EXPECT_INT(sh.mx, 0);
	EXPECT_INT(relay_config_parse_smarthost("[2001:db8::1]:465", &sh, &why), 0);
	EXPECT_STR(sh.host, "2001:db8::1");
	EXPECT_INT(relay_config_parse_smarthost("2001:db8::1:25", &sh, &why), -1);
	EXPECT_INT(relay_config_parse_smarthost("[x]:0", &sh, &why), -1);
	EXPECT_INT(relay_config_parse_smarthost("[x]:99999", &sh, &why), -1);
	EXPECT_INT(relay_config_parse_smarthost("[x", &sh, &why), -1);
	EXPECT_INT(relay_config_parse_smarthost("a b:25", &sh, &why), -1);
	EXPECT_INT(relay_config_parse_smarthost(":25", &sh, &why), -1);
}

TEST(dsn_status)
{
	char st[16];

	relay_bounce_status("550 5.1.1 <x>: unknown", "5.0.0", st, sizeof(st));
	EXPECT_STR(st, "5.1.1");
	relay_bounce_status("4.4.7 message expired", "5.0.0", st, sizeof(st));
	EXPECT_STR(st, "4.4.7");
	relay_bounce_status("554 5.6.7 SMTPUTF8", "5.0.0", st, sizeof(st));
	EXPECT_STR(st, "5.6.7");
	relay_bounce_status("550 no enhanced code", "5.0.0", st, sizeof(st));
	EXPECT_STR(st, "5.0.0");
	relay_bounce_status("550 5.1.", "5.0.0", st, sizeof(st));
	EXPECT_STR(st, "5.0.0");
	relay_bounce_status(NULL, "4.0.0", st, sizeof(st));
	EXPECT_STR(st, "4.0.0");
	relay_bounce_status("550 5.123.4567 x", "5.0.0", st, sizeof(st));
	EXPECT_STR(st, "5.123.4567");
}

TEST(from_domain)
{
	char dom[256];
	const char *h1 = "Subject: x\r\nFrom: \"A, B\" <a@Example.NET>\r\n\r\n";
	const char *h2 = "From:\r\n  someone@folded.example\r\nTo: x\r\n\r\n";
	const char *h3 = "To: x@y\r\n\r\nFrom: body@not.header\r\n";
	const char *h4 = "From: a@b.example (comment)\r\n\r\n";

	EXPECT_INT(relay_dkim_from_domain(h1, strlen(h1), dom, sizeof(dom)), 0);
	EXPECT_STR(dom, "Example.NET");
	EXPECT_INT(relay_dkim_from_domain(h2, strlen(h2), dom, sizeof(dom)), 0);
	EXPECT_STR(dom, "folded.example");
	EXPECT_INT(relay_dkim_from_domain(h3, strlen(h3), dom, sizeof(dom)), -1);
	EXPECT_INT(relay_dkim_from_domain(h4, strlen(h4), dom, sizeof(dom)), 0);
	EXPECT_STR(dom, "b.example");
}

static int
write_conf(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return -1;
	fputs(text, f);
	return fclose(f);
}

TEST(config_schema)
{
	struct relay_config c;
	char err[512], p[] = "/tmp/test_relay_conf.XXXXXX";
	int fd = mkstemp(p);

	close(fd);
	EXPECT_INT(write_conf(p, "smarthost = [a.example]:587, b.example\n"
	    "rate_limit = 250/1h\nmin_backoff = 1m\nmax_backoff = 2h\n"
	    "auth_user = u\nauth_password = p#w # not a comment\n"), 0);
	EXPECT_INT(relay_config_load(p, &c, err, sizeof(err)), 0);
	EXPECT_INT(c.nsmarthosts, 2);
	EXPECT_INT(c.smarthosts[1].mx, 1);
	EXPECT_INT(c.rate_count, 250);
	EXPECT_INT(c.rate_period, 3600);
	EXPECT_INT(c.tls, RELAY_TLS_VERIFY);
	EXPECT_STR(c.auth_password, "p#w # not a comment");
	EXPECT_INT(c.min_backoff, 60);
	relay_config_free(&c);

	EXPECT_INT(write_conf(p, "listen = 127.0.0.1:1\n"), 0);
	EXPECT_INT(relay_config_load(p, &c, err, sizeof(err)), -1);
	EXPECT(strstr(err, "smarthost") != NULL);
	EXPECT_INT(write_conf(p, "smarthost = [a]:25\ntls = sometimes\n"), 0);
	EXPECT_INT(relay_config_load(p, &c, err, sizeof(err)), -1);
	EXPECT(strstr(err, ":2: tls") != NULL);
	EXPECT_INT(write_conf(p, "smarthost = [a]:25\nmin_backoff = 2h\nmax_backoff = 1h\n"), 0);
	EXPECT_INT(relay_config_load(p, &c, err, sizeof(err)), -1);
	EXPECT_INT(write_conf(p, "smarthost = [a]:25\nauth_user = x\n"), 0);
	EXPECT_INT(relay_config_load(p, &c, err, sizeof(err)), -1);
	EXPECT_INT(write_conf(p, "smarthost = [a]:25\nrate_limit = lots\n"), 0);
	EXPECT_INT(relay_config_load(p, &c, err, sizeof(err)), -1);
	EXPECT_INT(write_conf(p, "smarthost = [a]:25\ndkim_sign[x.example] = sel /nonexistent.pem\n"), 0);
	EXPECT_INT(relay_config_load(p, &c, err, sizeof(err)), -1);
	EXPECT(strstr(err, ":2: dkim_sign: key file /nonexistent.pem") != NULL);
	unlink(p);
}

int
main(void)
{
	log_init("test_relay", 1);
	RUN(spool_roundtrip);
	RUN(spool_many_recipients);
	RUN(spool_torn_detected);
	RUN(state_roundtrip);
	RUN(lock_is_exclusive);
	RUN(recover);
	RUN(backoff_bounds);
	RUN(smarthost_parse);
	RUN(dsn_status);
	RUN(from_domain);
	RUN(config_schema);
	return unit_done();
}

/*
 * relay_main — tailwart-relay: arguments, start-up, and the master process.
 *
 *   tailwart-relay [-c FILE] [-f] [-n] [-d]
 *   tailwart-relay [-c FILE] queue list|show ID|flush [ID]|delete ID|hold ID|release ID
 *
 * The master (root) parses the config, reads the DKIM keys, creates the
 * spool (never following a link the relay user planted), has it recovered
 * by a child running as the relay user, binds the listeners, then forks the receiver and the
 * scheduler; each child drops to `user` before touching anything remote.
 * The master speaks no SMTP: it reaps and respawns children (after a
 * one-second pause if one died within a second of starting), reloads on
 * HUP (the new file is parsed first; if it is invalid the old config
 * stays; the children are restarted with the new one, their running
 * sessions and deliveries finish on their own), re-opens logs on USR1 and
 * stops on TERM/INT. Listener addresses are bound once: changing `listen`
 * needs a restart. The children stop when the master dies (PDEATHSIG).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "log.h"
#include "net.h"
#include "notify.h"
#include "relay_config.h"
#include "relay_dkim.h"
#include "relay_metrics.h"
#include "relay_proc.h"
#include "relay_queue_cli.h"
#include "relay_receiver.h"
#include "relay_sched.h"
#include "relay_smtpd.h"
#include "relay_spool.h"

#define RELAY_DEFAULT_CONF	"/etc/tailwart/smarthost.conf"
#define RELAY_MAX_LISTEN	16

enum child_role { CHILD_RECEIVER, CHILD_SCHED, CHILD_N };

struct master {
	struct relay_config cfg;
	int	 fds[RELAY_MAX_LISTEN];
	size_t	 nfds;
	pid_t	 pid[CHILD_N];
	time_t	 started[CHILD_N];
	time_t	 respawn_at[CHILD_N];
	pid_t	 master;
};

static void
usage(void)
{
	fprintf(stderr, "usage: tailwart-relay [-c FILE] [-f] [-n] [-d]\n"
	    "       tailwart-relay [-c FILE] queue list|show ID|flush [ID]|delete ID|hold ID|release ID\n");
	exit(2);
}

static int
load(const char *path, struct relay_config *cfg, char *err, size_t errlen)
{
	if (relay_config_load(path, cfg, err, errlen) != 0)
		return -1;
	if (relay_dkim_check_keys(cfg, err, errlen) != 0) {
		relay_config_free(cfg);
		return -1;
	}
	return 0;
}

static pid_t
spawn(struct master *ms, enum child_role role)
{
	char why[256];
	pid_t pid = fork();

	if (pid < 0) {
		log_err("fork: %s", strerror(errno));
		return -1;
	}
	if (pid > 0) {
		ms->pid[role] = pid;
		ms->started[role] = time(NULL);
		return pid;
	}
	log_after_fork();	/* log lines carry this process's pid */
	if (relay_sig_init() != 0)
		_exit(1);
	if (relay_drop_privileges(ms->cfg.user, why, sizeof(why)) != 0) {
		log_err("%s", why);
		_exit(1);
	}
	/* if the master dies (even by kill -9), stop too, so that a new
	 * master can bind the listeners; set after the privilege drop, which
	 * clears it. Sessions and deliveries in progress still finish. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != ms->master)
		_exit(0);
	if (role == CHILD_RECEIVER)
		_exit(relay_receiver_run(&ms->cfg, ms->fds, ms->nfds));
	for (size_t i = 0; i < ms->nfds; i++)
		(void)close(ms->fds[i]);
	_exit(relay_sched_run(&ms->cfg));
}

static int
daemonize(void)
{
	pid_t pid = fork();
	int fd;

	if (pid < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	if (chdir("/") != 0)
		return -1;
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd < 0 || dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
		return -1;
	if (fd > 2 && close(fd) != 0)
		return -1;
	return 0;
}

static void
stop_children(struct master *ms)
{
	for (int r = 0; r < CHILD_N; r++)
		if (ms->pid[r] > 0 && kill(ms->pid[r], SIGTERM) != 0 && errno != ESRCH)
			log_warn("kill %ld: %s", (long)ms->pid[r], strerror(errno));
	/* bounded wait: 100 x 50 ms */
	for (int i = 0; i < 100; i++) {
		int alive = 0;
		for (int r = 0; r < CHILD_N; r++) {
			if (ms->pid[r] <= 0)
				continue;
			if (waitpid(ms->pid[r], NULL, WNOHANG) == ms->pid[r])
				ms->pid[r] = 0;
			else
				alive = 1;
		}
		if (!alive)
			return;
		usleep(50000);
	}
	for (int r = 0; r < CHILD_N; r++)
		if (ms->pid[r] > 0) {
			(void)kill(ms->pid[r], SIGKILL);
			(void)waitpid(ms->pid[r], NULL, 0);
			ms->pid[r] = 0;
		}
}

/* Spool recovery deletes files in directories the relay user owns: do it
 * as that user (a child that drops privileges first), never as root. */
static void
recover_as_user(const struct relay_config *cfg)
{
	char why[256];
	int st = 0;
	pid_t pid = fork();

	if (pid < 0)
		fatal("fork: %s", strerror(errno));
	if (pid == 0) {
		if (relay_drop_privileges(cfg->user, why, sizeof(why)) != 0) {
			log_err("%s", why);
			_exit(1);
		}
		if (relay_spool_recover(cfg->spool_dir) != 0) {
			log_warn("spool recovery in %s was incomplete: %s", cfg->spool_dir,
			    strerror(errno));
			_exit(1);
		}
		_exit(0);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			fatal("waitpid: %s", strerror(errno));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		log_warn("spool recovery in %s did not finish (status %d)", cfg->spool_dir, st);
}

static int
run_master(const char *path, int foreground)
{
	struct master ms;
	char err[1024];
	uid_t uid;
	gid_t gid;

	memset(&ms, 0, sizeof(ms));
	if (load(path, &ms.cfg, err, sizeof(err)) != 0)
		fatal("%s", err);
	if (relay_user_ids(ms.cfg.user, &uid, &gid) != 0)
		fatal("user %s does not exist", ms.cfg.user);
	if (relay_spool_init(ms.cfg.spool_dir, uid, gid) != 0)
		fatal("spool_dir %s: %s", ms.cfg.spool_dir, strerror(errno));
	recover_as_user(&ms.cfg);
	for (size_t i = 0; i < ms.cfg.listen.n && i < RELAY_MAX_LISTEN; i++) {
		struct net_endpoint ep;
		const char *why = NULL;
		if (net_parse_endpoint(ms.cfg.listen.v[i], &ep, &why) != 0)
			fatal("listen %s: %s", ms.cfg.listen.v[i], why);
		int fd = net_listen(&ep, 128);
		if (fd < 0)
			fatal("listen %s: %s", ms.cfg.listen.v[i], strerror(errno));
		ms.fds[ms.nfds++] = fd;
	}
	if (relay_metrics_init(&ms.cfg, err, sizeof(err)) != 0)
		fatal("%s", err);
	if (!foreground && daemonize() != 0)
		fatal("daemonize: %s", strerror(errno));
	if (relay_sig_init() != 0)
		fatal("signals: %s", strerror(errno));
	ms.master = getpid();
	log_info("tailwart-relay started listen=%s spool=%s", ms.cfg.listen.v[0],
	    ms.cfg.spool_dir);
	for (int r = 0; r < CHILD_N; r++)
		if (spawn(&ms, (enum child_role)r) < 0)
			ms.respawn_at[r] = time(NULL) + 1;
	(void)notify_ready();
	for (;;) {
		struct pollfd pfd;
		time_t now;

		pfd.fd = relay_sig_fd();
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (poll(&pfd, 1, 1000) < 0 && errno != EINTR)
			fatal("poll: %s", strerror(errno));
		if (relay_sig_take(RELAY_SIG_TERM)) {
			log_info("tailwart-relay stopping");
			(void)notify_stopping();
			stop_children(&ms);
			break;
		}
		if (relay_sig_take(RELAY_SIG_USR1))
			log_reopen();
		if (relay_sig_take(RELAY_SIG_HUP)) {
			struct relay_config nc;
			(void)notify_reloading();
			if (load(path, &nc, err, sizeof(err)) != 0)
				log_err("reload refused, keeping the running config: %s", err);
			else {
				int same = nc.listen.n == ms.cfg.listen.n;
				for (size_t i = 0; same && i < nc.listen.n; i++)
					same = strcmp(nc.listen.v[i], ms.cfg.listen.v[i]) == 0;
				if (!same)
					log_warn("reload: listen changed; the old listeners stay until a restart");
				log_info("reloading %s", path);
				stop_children(&ms);
				relay_config_free(&ms.cfg);
				ms.cfg = nc;
				for (int r = 0; r < CHILD_N; r++)
					ms.respawn_at[r] = time(NULL);
			}
			(void)notify_ready();
		}
		(void)relay_sig_take(RELAY_SIG_CHLD);
		for (;;) {
			int st;
			pid_t p = waitpid(-1, &st, WNOHANG);
			if (p <= 0)
				break;
			for (int r = 0; r < CHILD_N; r++)
				if (ms.pid[r] == p) {
					ms.pid[r] = 0;
					now = time(NULL);
					log_warn("%s %ld exited (status %d); restarting",
					    r == CHILD_RECEIVER ? "receiver" : "scheduler", (long)p, st);
					ms.respawn_at[r] = now - ms.started[r] < 1 ? now + 1 : now;
				}
		}
		now = time(NULL);
		for (int r = 0; r < CHILD_N; r++)
			if (ms.pid[r] == 0 && ms.respawn_at[r] != 0 && ms.respawn_at[r] <= now) {
				ms.respawn_at[r] = 0;
				if (spawn(&ms, (enum child_role)r) < 0)
					ms.respawn_at[r] = now + 1;
			}
		relay_metrics_tick(&ms.cfg);
	}
	for (size_t i = 0; i < ms.nfds; i++)
		(void)close(ms.fds[i]);
	relay_config_free(&ms.cfg);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *path = RELAY_DEFAULT_CONF;
	int foreground = 0, check = 0, debug = 0, ch;

	while ((ch = getopt(argc, argv, "+c:fnd")) != -1) {
		switch (ch) {
		case 'c': path = optarg; break;
		case 'f': foreground = 1; break;
		case 'n': check = 1; break;
		case 'd': debug = 1; break;
		default: usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (check) {
		struct relay_config cfg;
		char err[1024];
		if (argc != 0)
			usage();
		if (load(path, &cfg, err, sizeof(err)) != 0) {
			fprintf(stderr, "%s\n", err);
			return 1;
		}
		printf("%s: ok\n", path);
		relay_config_free(&cfg);
		return 0;
	}
	if (argc > 0) {
		struct relay_config cfg;
		char err[1024];
		int rc;
		if (strcmp(argv[0], "queue") != 0)
			usage();
		log_init("tailwart-relay", 1);
		if (relay_config_load(path, &cfg, err, sizeof(err)) != 0) {
			fprintf(stderr, "%s\n", err);
			return 1;
		}
		if (relay_drop_privileges(cfg.user, err, sizeof(err)) != 0) {
			fprintf(stderr, "%s\n", err);
			relay_config_free(&cfg);
			return 1;
		}
		rc = relay_queue_cli(&cfg, argc - 1, argv + 1);
		relay_config_free(&cfg);
		return rc;
	}
	log_init("tailwart-relay", foreground);
	log_set_debug(debug);
	return run_master(path, foreground);
}

/*
 * gate_master — the root process. It binds the listeners, builds the TLS
 * context, forks the worker pool (between workers_min and workers_max) and
 * the passthrough process, drops their privileges, reaps and respawns them
 * (with a back-off after crashes) and owns the signals:
 *   HUP  parse the new config; only if valid, start a new generation of
 *        children and tell the old one to finish its sessions and exit;
 *   TERM stop accepting, let sessions finish within drain_timeout, then kill;
 *   USR1 reopen logs.
 * Signal handlers only set a flag and write a byte to a self-pipe. The
 * master speaks no SMTP.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gate.h"
#include "gate_metrics.h"
#include "log.h"
#include "notify.h"
#include "tls.h"

_Static_assert(GATE_MAX_CHILDREN <= GATE_BACKENDS_HOLDERS, "one holder entry per child slot");

volatile sig_atomic_t gate_sig_term;
static volatile sig_atomic_t sig_hup, sig_chld, sig_usr1;
static int self_pipe[2] = { -1, -1 };

#define MAX_CHILDREN	GATE_MAX_CHILDREN

struct child {
	pid_t		pid;
	unsigned	gen;
	char		kind;		/* 'W' worker, 'C' screen, 'P' passthrough */
	char		state;		/* 'I' idle, 'B' busy, 'S' starting */
	long long	started_ms;
	unsigned	slot;		/* index into the scoreboard */
};

struct master {
	const char		*conf_path;
	struct gate_settings	*cfg;
	struct gate_runtime	 rt;
	struct child		*kids;
	size_t			 nkids;
	unsigned char		*slot_used;	/* master-side: slot taken */
	int			 store_wanted;	/* children open the policy store */
	int			 pass[2];	/* screen -> workers (SOCK_SEQPACKET) */
	uid_t			 uid;
	gid_t			 gid;
	unsigned		 crashes;
	long long		 next_spawn_ms;
};

static void
on_signal(int sig)
{
	int saved = errno;
	char c = (char)sig;

	switch (sig) {
	case SIGHUP: sig_hup = 1; break;
	case SIGCHLD: sig_chld = 1; break;
	case SIGUSR1: sig_usr1 = 1; break;
	default: gate_sig_term = 1; break;
	}
	if (write(self_pipe[1], &c, 1) < 0) {
		/* pipe full: the flag is set, the loop will see it */
	}
	errno = saved;
}

static int
bind_listeners(struct gate_settings *cfg, const struct gate_settings *old)
{
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		struct gate_listener *l = &cfg->listeners[i];
		if (old != NULL)
			for (size_t j = 0; j < old->nlisteners; j++) {
				struct gate_listener *o = &old->listeners[j];
				if (o->fd >= 0 && o->kind == l->kind &&
				    !strcmp(o->addr.host, l->addr.host) &&
				    !strcmp(o->addr.port, l->addr.port)) {
					l->fd = o->fd;
					o->fd = -1;	/* moved */
					break;
				}
			}
		if (l->fd >= 0)
			continue;
		/* a deep accept queue (the kernel caps it at net.core.somaxconn):
		 * the screen accepts in bursts, and a burst of thousands of
		 * connections must wait there, not be dropped and retried */
		l->fd = net_listen(&l->addr, 4096);
		if (l->fd < 0) {
			log_err("listen %s:%s: %s", l->addr.host, l->addr.port, strerror(errno));
			return -1;
		}
		if (l->kind == LISTEN_PASSTHROUGH)
			log_info("listening on %s:%s passthrough to %s:%s%s", l->addr.host,
			    l->addr.port, l->target.host, l->target.port,
			    l->targets.n > 1 ? " (and more)" : "");
		else
			log_info("listening on %s:%s", l->addr.host, l->addr.port);
	}
	return 0;
}

static void
close_listeners(struct gate_settings *cfg)
{
	for (size_t i = 0; i < cfg->nlisteners; i++)
		if (cfg->listeners[i].fd >= 0) {
			(void)close(cfg->listeners[i].fd);
			cfg->listeners[i].fd = -1;
		}
}

static int
has_passthrough(const struct gate_settings *cfg)
{
	for (size_t i = 0; i < cfg->nlisteners; i++)
		if (cfg->listeners[i].kind == LISTEN_PASSTHROUGH)
			return 1;
	return 0;
}

/* Give a directory root just created to uid:gid through a descriptor
 * opened without following a link (never chown a path). */
static int
own_new_dir(const char *dir, uid_t uid, gid_t gid)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = fchown(fd, uid, gid);
	(void)close(fd);	/* read-only directory fd */
	return rc;
}

/* Prepare the policy store as root before forking: open it once (LMDB:
 * create the parent directory and the files and hand them to the workers'
 * user; Redis: check that it answers), then close it. Each child opens its
 * own handle after dropping privileges (an LMDB environment must never
 * cross a fork). *out stays NULL when no check needs the store. */
static int
prepare_store(const struct gate_settings *cfg, uid_t uid, gid_t gid, int *wanted,
    char *err, size_t errlen)
{
	const struct policy_config *pc = &cfg->policy;
	struct policy_store *st = NULL;

	*wanted = 0;
	if (!gate_policy_needs_store(cfg))
		return 0;
	if (strncmp(pc->store, "lmdb:", 5) == 0) {
		/* the directory of the file (an optional ?options suffix aside) */
		char dir[1024], *slash;
		snprintf(dir, sizeof(dir), "%s", pc->store + 5);
		dir[strcspn(dir, "?")] = '\0';
		slash = strrchr(dir, '/');
		if (slash != NULL && slash != dir) {
			*slash = '\0';
			if (mkdir(dir, 0750) == 0 && geteuid() == 0 &&
			    own_new_dir(dir, uid, gid) != 0) {
				snprintf(err, errlen, "store %.200s: chown: %s", dir, strerror(errno));
				return -1;
			}
		}
	}
	if (policy_store_open(pc->store, pc->store_prefix, &st, err, errlen) != 0)
		return -1;
	if (geteuid() == 0 && policy_store_chown(st, uid, gid, err, errlen) != 0) {
		policy_store_close(st);
		return -1;
	}
	policy_store_close(st);
	*wanted = 1;
	return 0;
}

static SSL_CTX *
make_tls(const struct gate_settings *cfg, char *err, size_t errlen)
{
	if (*cfg->tls_cert == '\0')
		return NULL;
	return tls_server_ctx(cfg->tls_cert, cfg->tls_key, err, errlen);
}

static void
spawn(struct master *m, char kind)
{
	pid_t pid;
	unsigned slot;

	if (m->nkids >= MAX_CHILDREN)
		return;
	for (slot = 0; slot < MAX_CHILDREN && m->slot_used[slot]; slot++)
		;
	if (slot == MAX_CHILDREN)
		return;
	m->rt.scoreboard[slot] = 'S';
	pid = fork();
	if (pid < 0) {
		log_err("fork: %s", strerror(errno));
		m->next_spawn_ms = gate_now_ms() + 1000;
		return;
	}
	if (pid == 0) {
		struct sigaction sa;

		log_after_fork();
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_DFL;
		sigemptyset(&sa.sa_mask);
		(void)sigaction(SIGCHLD, &sa, NULL);
		(void)close(self_pipe[0]);
		(void)close(self_pipe[1]);
		m->rt.slot = slot;
		/* only workers count as idle/busy in the scoreboard */
		if (kind != 'W')
			__atomic_store_n(&m->rt.scoreboard[slot], 'X', __ATOMIC_RELAXED);
		m->rt.pass_fd = -1;
		if (kind == 'C') {
			m->rt.pass_fd = m->pass[0];
			(void)close(m->pass[1]);
		} else if (kind == 'W') {
			m->rt.pass_fd = m->pass[1];
			(void)close(m->pass[0]);
		} else {
			(void)close(m->pass[0]);
			(void)close(m->pass[1]);
		}
		gate_sig_term = 0;
		gate_metrics_child_close();
		if (gate_priv_drop(m->uid, m->gid) != 0)
			fatal("cannot drop privileges to %s: %s", m->cfg->user, strerror(errno));
		m->rt.store = NULL;
		if (m->store_wanted && kind != 'P' && kind != 'H') {
			char serr[512];
			if (policy_store_open(m->cfg->policy.store, m->cfg->policy.store_prefix,
			    &m->rt.store, serr, sizeof(serr)) != 0)
				fatal("store %s: %s", m->cfg->policy.store, serr);
		}
		/* each child keeps only the listeners it serves */
		for (size_t i = 0; i < m->cfg->nlisteners; i++) {
			struct gate_listener *l = &m->cfg->listeners[i];
			int keep = l->kind == LISTEN_SMTP ?
			    (kind == 'C' || (kind == 'W' && !m->cfg->screen)) : kind == 'P';
			if (!keep) {
				(void)close(l->fd);
				l->fd = -1;
			}
		}
		if (kind == 'P')
			gate_passthrough_main(&m->rt);
		if (kind == 'H')
			gate_health_main(&m->rt);
		if (kind == 'C')
			gate_screen_main(&m->rt);
		gate_worker_main(&m->rt);
	}
	m->kids[m->nkids].pid = pid;
	m->kids[m->nkids].gen = m->rt.generation;
	m->kids[m->nkids].kind = kind;
	m->kids[m->nkids].state = 'S';
	m->kids[m->nkids].started_ms = gate_now_ms();
	m->kids[m->nkids].slot = slot;
	m->slot_used[slot] = 1;
	m->nkids++;
}

static struct child *
find_kid(struct master *m, pid_t pid)
{
	for (size_t i = 0; i < m->nkids; i++)
		if (m->kids[i].pid == pid)
			return &m->kids[i];
	return NULL;
}

static void
reap(struct master *m)
{
	for (;;) {
		int st;
		pid_t pid = waitpid(-1, &st, WNOHANG);
		struct child *k;

		if (pid <= 0)
			break;
		k = find_kid(m, pid);
		if (k == NULL)
			continue;
		if (WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) != 0)) {
			if (WIFSIGNALED(st))
				log_warn("child pid=%ld kind=%c exited on signal %d", (long)pid,
				    k->kind, WTERMSIG(st));
			else
				log_warn("child pid=%ld kind=%c exited with status %d", (long)pid,
				    k->kind, WEXITSTATUS(st));
			if (k->gen == m->rt.generation && !gate_sig_term) {
				long long backoff;
				m->crashes++;
				backoff = 100LL << (m->crashes < 8 ? m->crashes : 8);
				if (backoff > 10000)
					backoff = 10000;
				m->next_spawn_ms = gate_now_ms() + backoff;
			}
		} else if (k->gen == m->rt.generation)
			m->crashes = 0;
		/* a hand-off it held (least-sessions count) ends with it */
		gate_backends_release(m->rt.backends, k->slot);
		m->slot_used[k->slot] = 0;
		m->rt.scoreboard[k->slot] = 0;
		*k = m->kids[--m->nkids];
	}
}

static void
read_status(struct master *m)
{
	for (size_t i = 0; i < m->nkids; i++) {
		unsigned char st = __atomic_load_n(&m->rt.scoreboard[m->kids[i].slot], __ATOMIC_RELAXED);
		if (st == 'I' || st == 'B')
			m->kids[i].state = (char)st;
	}
}

static void
signal_generation(struct master *m, int sig, int old_only)
{
	for (size_t i = 0; i < m->nkids; i++)
		if (!old_only || m->kids[i].gen != m->rt.generation)
			(void)kill(m->kids[i].pid, sig);
}

static void
maintain_pool(struct master *m)
{
	size_t total = 0, idle = 0, pt = 0, scr = 0, hc = 0;
	struct child *an_idle = NULL;

	if (gate_sig_term)
		return;
	for (size_t i = 0; i < m->nkids; i++) {
		struct child *k = &m->kids[i];
		if (k->gen != m->rt.generation)
			continue;
		if (k->kind == 'P') {
			pt++;
			continue;
		}
		if (k->kind == 'C') {
			scr++;
			continue;
		}
		if (k->kind == 'H') {
			hc++;
			continue;
		}
		total++;
		if (k->state != 'B') {
			idle++;
			if (k->state == 'I')
				an_idle = k;
		}
	}
	if (gate_now_ms() < m->next_spawn_ms)
		return;
	if (pt == 0 && has_passthrough(m->cfg))
		spawn(m, 'P');
	if (scr == 0 && m->cfg->screen)
		spawn(m, 'C');
	if (hc == 0 && m->cfg->backend_check_interval > 0)
		spawn(m, 'H');
	while (total < m->cfg->workers_min) {
		spawn(m, 'W');
		total++;
		idle++;
	}
	/* keep one spare; grow in small steps up to workers_max */
	for (int k = 0; idle == 0 && total < m->cfg->workers_max && k < 4; k++) {
		spawn(m, 'W');
		total++;
		if (total >= m->cfg->workers_max)
			break;
	}
	if (idle > 2 && total > m->cfg->workers_min && an_idle != NULL &&
	    gate_now_ms() - an_idle->started_ms > 10000) {
		(void)kill(an_idle->pid, SIGTERM);
		an_idle->state = 'B';	/* not counted as idle again */
		an_idle->gen = m->rt.generation - 1;
	}
}

/* Slots on the shared board for the backends and pass-through targets. */
static void
bind_backends(struct gate_backend_board *b, struct gate_settings *cfg)
{
	gate_backends_bind(b, &cfg->backends);
	for (size_t i = 0; i < cfg->nlisteners; i++)
		if (cfg->listeners[i].kind == LISTEN_PASSTHROUGH)
			gate_backends_bind(b, &cfg->listeners[i].targets);
}

static void
reload(struct master *m)
{
	struct gate_settings *n = calloc(1, sizeof(*n));
	char err[1024];
	SSL_CTX *tls = NULL;
	uid_t uid = m->uid;
	gid_t gid = m->gid;

	if (n == NULL)
		return;
	if (gate_config_load(m->conf_path, n, err, sizeof(err)) != 0) {
		log_err("reload refused, keeping the running configuration: %s", err);
		free(n);
		return;
	}
	if (geteuid() == 0 && gate_priv_lookup(n->user, &uid, &gid) != 0) {
		log_err("reload refused: unknown user %s", n->user);
		gate_config_free(n);
		free(n);
		return;
	}
	err[0] = '\0';
	if (*n->tls_cert && (tls = make_tls(n, err, sizeof(err))) == NULL) {
		log_err("reload refused: %s", err);
		gate_config_free(n);
		free(n);
		return;
	}
	{
		int wanted = 0;
		if (prepare_store(n, uid, gid, &wanted, err, sizeof(err)) != 0) {
			log_err("reload refused: %s", err);
			gate_config_free(n);
			free(n);
			if (tls)
				SSL_CTX_free(tls);
			return;
		}
		m->store_wanted = wanted;
	}
	if (bind_listeners(n, m->cfg) != 0) {
		log_err("reload refused: cannot bind listeners");
		/* give moved fds back */
		for (size_t i = 0; i < n->nlisteners; i++)
			for (size_t j = 0; j < m->cfg->nlisteners; j++)
				if (m->cfg->listeners[j].fd < 0 && n->listeners[i].fd >= 0 &&
				    n->listeners[i].kind == m->cfg->listeners[j].kind &&
				    !strcmp(n->listeners[i].addr.host, m->cfg->listeners[j].addr.host) &&
				    !strcmp(n->listeners[i].addr.port, m->cfg->listeners[j].addr.port)) {
					m->cfg->listeners[j].fd = n->listeners[i].fd;
					n->listeners[i].fd = -1;
				}
		close_listeners(n);
		gate_config_free(n);
		free(n);
		if (tls)
			SSL_CTX_free(tls);
		return;
	}
	bind_backends(m->rt.backends, n);
	close_listeners(m->cfg);	/* the ones not carried over */
	gate_config_free(m->cfg);
	free(m->cfg);
	m->cfg = n;
	m->rt.cfg = n;
	if (m->rt.tls)
		SSL_CTX_free(m->rt.tls);
	m->rt.tls = tls;
	m->uid = uid;
	m->gid = gid;
	m->rt.generation++;
	m->crashes = 0;
	m->next_spawn_ms = 0;
	signal_generation(m, SIGTERM, 1);
	maintain_pool(m);
	log_info("reload generation=%u workers_min=%llu workers_max=%llu", m->rt.generation,
	    n->workers_min, n->workers_max);
}

static void
drain(struct master *m)
{
	long long deadline = gate_now_ms() + (long long)m->cfg->drain_timeout * 1000;

	log_info("stopping: draining %zu children (deadline %us)", m->nkids, m->cfg->drain_timeout);
	close_listeners(m->cfg);
	signal_generation(m, SIGTERM, 0);
	while (m->nkids > 0 && gate_now_ms() < deadline) {
		struct pollfd pfd = { .fd = self_pipe[0], .events = POLLIN };
		char buf[64];
		if (poll(&pfd, 1, 200) > 0)
			while (read(self_pipe[0], buf, sizeof(buf)) > 0)
				;
		read_status(m);
		reap(m);
	}
	if (m->nkids > 0) {
		log_warn("drain deadline passed: killing %zu children", m->nkids);
		signal_generation(m, SIGKILL, 0);
		while (m->nkids > 0) {
			int st;
			pid_t pid = waitpid(-1, &st, 0);
			struct child *k;
			if (pid < 0)
				break;
			if ((k = find_kid(m, pid)) != NULL)
				*k = m->kids[--m->nkids];
		}
	}
}

static int
setup_pipes(struct master *m)
{
	struct timeval tv = { 1, 0 };
	struct rlimit rl;

	if (pipe2(self_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
		return -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, m->pass) != 0 ||
	    setsockopt(m->pass[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0)
		return -1;
	/* the screen holds many connections: raise the descriptor limit */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	m->rt.scoreboard = mmap(NULL, MAX_CHILDREN, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (m->rt.scoreboard == MAP_FAILED)
		return -1;
	m->rt.backends = mmap(NULL, sizeof(*m->rt.backends), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (m->rt.backends == MAP_FAILED)
		return -1;
	bind_backends(m->rt.backends, m->cfg);
	m->slot_used = calloc(MAX_CHILDREN, 1);
	return m->slot_used ? 0 : -1;
}

/* The pid file, written by root: never through a link (O_NOFOLLOW), only
 * into a regular file with one link that root owns (checked with fstat on
 * what was opened, before it is truncated), so a pid directory the workers'
 * user can write gives them no way to make root overwrite another file. */
static void
write_pid_file(const char *path)
{
	char line[32];
	struct stat st;
	int fd, n;

	if (*path == '\0')
		return;
	fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
	if (fd < 0) {
		log_warn("pid_file %s: %s", path, errno == ELOOP ?
		    "a symbolic link: not written" : strerror(errno));
		return;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
	    st.st_uid != geteuid()) {
		log_warn("pid_file %s: not a regular file of ours with one link: not written", path);
		(void)close(fd);	/* nothing written */
		return;
	}
	n = snprintf(line, sizeof(line), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || write(fd, line, (size_t)n) != n)
		log_warn("pid_file %s: %s", path, strerror(errno));
	if (close(fd) != 0)
		log_warn("pid_file %s: %s", path, strerror(errno));
}

int
gate_master_run(const char *conf_path, struct gate_settings *cfg, int foreground)
{
	struct master m;
	struct sigaction sa;
	char err[1024] = "";
	int sigs[] = { SIGHUP, SIGCHLD, SIGUSR1, SIGTERM, SIGINT };

	(void)foreground;
	memset(&m, 0, sizeof(m));
	m.conf_path = conf_path;
	m.cfg = cfg;
	m.rt.cfg = cfg;
	m.rt.generation = 1;
	m.kids = calloc(MAX_CHILDREN, sizeof(*m.kids));
	if (m.kids == NULL)
		fatal("out of memory");
	if (geteuid() == 0) {
		if (gate_priv_lookup(cfg->user, &m.uid, &m.gid) != 0)
			fatal("user %s does not exist (create it, or set user = in %s)", cfg->user, conf_path);
		if (m.uid == 0)
			fatal("user %s is root: workers never run as root", cfg->user);
	} else
		log_warn("not started as root: workers keep uid %ld", (long)geteuid());
	if (*cfg->tls_cert && (m.rt.tls = make_tls(cfg, err, sizeof(err))) == NULL)
		fatal("%s", err);
	if (prepare_store(cfg, m.uid, m.gid, &m.store_wanted, err, sizeof(err)) != 0)
		fatal("%s", err);
	if (bind_listeners(cfg, NULL) != 0)
		fatal("cannot bind listeners");
	if (setup_pipes(&m) != 0)
		fatal("pipe: %s", strerror(errno));
	if (gate_metrics_init(cfg, err, sizeof(err)) != 0)
		fatal("%s", err);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (sigaction(sigs[i], &sa, NULL) != 0)
			fatal("sigaction: %s", strerror(errno));
	sa.sa_handler = SIG_IGN;
	(void)sigaction(SIGPIPE, &sa, NULL);

	write_pid_file(cfg->pid_file);
	log_info("started generation=1 workers_min=%llu workers_max=%llu backend=\"%s\" addresses=%zu",
	    cfg->workers_min, cfg->workers_max, cfg->backend_s, cfg->backends.n);
	maintain_pool(&m);
	(void)notify_ready();

	while (!gate_sig_term) {
		struct pollfd pfd[1] = {
			{ .fd = self_pipe[0], .events = POLLIN },
		};
		char buf[64];

		if (poll(pfd, 1, 250) < 0 && errno != EINTR)
			fatal("poll: %s", strerror(errno));
		while (read(self_pipe[0], buf, sizeof(buf)) > 0)
			;
		read_status(&m);
		if (sig_chld) {
			sig_chld = 0;
			reap(&m);
		}
		if (sig_usr1) {
			sig_usr1 = 0;
			log_reopen();
			log_info("logs reopened");
		}
		if (sig_hup) {
			sig_hup = 0;
			log_info("reload requested");
			(void)notify_reloading();
			gate_metrics_reload_begin(&m.rt);
			reload(&m);
			gate_metrics_reload_end(&m.rt);
			(void)notify_ready();
		}
		maintain_pool(&m);
		gate_metrics_master_tick(&m.rt, m.uid, m.gid);
	}
	(void)notify_stopping();
	drain(&m);
	if (*m.cfg->pid_file)
		(void)unlink(m.cfg->pid_file);
	log_info("stopped");
	if (m.rt.tls)
		SSL_CTX_free(m.rt.tls);
	close_listeners(m.cfg);
	gate_config_free(m.cfg);	/* main's, or the one a reload installed */
	free(m.cfg);
	free(m.kids);
	free(m.slot_used);
	return 0;
}

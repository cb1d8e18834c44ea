/*
 * relay_proc — signals through a self-pipe, privilege drop, wake-ups.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "log.h"
#include "relay_proc.h"
#include "relay_spool.h"

static volatile sig_atomic_t relay_sig_flags[RELAY_SIG_N];
static int relay_sig_pipe[2] = { -1, -1 };

static void
relay_sig_handler(int sig)
{
	int saved = errno;
	enum relay_sig s;

	switch (sig) {
	case SIGTERM: case SIGINT: s = RELAY_SIG_TERM; break;
	case SIGHUP: s = RELAY_SIG_HUP; break;
	case SIGCHLD: s = RELAY_SIG_CHLD; break;
	default: s = RELAY_SIG_USR1; break;
	}
	relay_sig_flags[s] = 1;
	if (relay_sig_pipe[1] >= 0) {
		char c = 0;
		ssize_t n = write(relay_sig_pipe[1], &c, 1);
		(void)n;	/* a full pipe already wakes the loop */
	}
	errno = saved;
}

int
relay_sig_init(void)
{
	struct sigaction sa;
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGUSR1 };

	if (relay_sig_pipe[0] >= 0) {
		(void)close(relay_sig_pipe[0]);
		(void)close(relay_sig_pipe[1]);
	}
	if (pipe2(relay_sig_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
		return -1;
	for (int i = 0; i < RELAY_SIG_N; i++)
		relay_sig_flags[i] = 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = relay_sig_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (sigaction(sigs[i], &sa, NULL) != 0)
			return -1;
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) != 0)
		return -1;
	return 0;
}

int
relay_sig_fd(void)
{
	return relay_sig_pipe[0];
}

int
relay_sig_take(enum relay_sig s)
{
	char buf[64];

	while (read(relay_sig_pipe[0], buf, sizeof(buf)) > 0)
		;
	if (relay_sig_flags[s]) {
		relay_sig_flags[s] = 0;
		return 1;
	}
	return 0;
}

void
relay_sig_reset(void)
{
	struct sigaction sa;
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGUSR1 };

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		(void)sigaction(sigs[i], &sa, NULL);
	if (relay_sig_pipe[0] >= 0) {
		(void)close(relay_sig_pipe[0]);
		(void)close(relay_sig_pipe[1]);
		relay_sig_pipe[0] = relay_sig_pipe[1] = -1;
	}
}

int
relay_user_ids(const char *user, uid_t *uid, gid_t *gid)
{
	struct passwd *pw;

	*uid = getuid();
	*gid = getgid();
	if (user == NULL || *user == '\0' || getuid() != 0)
		return 0;
	pw = getpwnam(user);
	if (pw == NULL)
		return -1;
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return 0;
}

int
relay_drop_privileges(const char *user, char *why, size_t whylen)
{
	uid_t uid, ru, eu, su;
	gid_t gid;

	if (user == NULL || *user == '\0' || geteuid() != 0)
		return 0;
	if (relay_user_ids(user, &uid, &gid) != 0) {
		snprintf(why, whylen, "unknown user %s", user);
		return -1;
	}
	if (setgroups(1, &gid) != 0 || setresgid(gid, gid, gid) != 0 ||
	    setresuid(uid, uid, uid) != 0) {
		snprintf(why, whylen, "dropping to %s: %s", user, strerror(errno));
		return -1;
	}
	if (getresuid(&ru, &eu, &su) != 0 || ru != uid || eu != uid || su != uid ||
	    (uid != 0 && setuid(0) == 0)) {
		snprintf(why, whylen, "privileges not dropped");
		return -1;
	}
	return 0;
}

int
relay_notify(const char *spool_dir, const char *msg)
{
	struct sockaddr_un sun;
	int fd, rc = 0;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (relay_pathf(sun.sun_path, sizeof(sun.sun_path), "%s/control", spool_dir) != 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	if (sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		rc = -1;
	(void)close(fd);	/* datagram socket: nothing buffered to lose */
	return rc;
}

pid_t
relay_fork_paired(const char *who, int *fd)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		log_err("%s socketpair: %s", who, strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		log_err("%s fork: %s", who, strerror(errno));
		(void)close(sv[0]);
		(void)close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		relay_sig_reset();
		log_after_fork();
		(void)close(sv[0]);
		*fd = sv[1];
		return 0;
	}
	(void)close(sv[1]);
	*fd = sv[0];
	return pid;
}

void
relay_pair_close(int *fd)
{
	if (*fd >= 0)
		(void)close(*fd);	/* a datagram pair: nothing buffered to lose */
	*fd = -1;
}

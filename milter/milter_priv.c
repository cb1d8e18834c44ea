/*
 * milter_priv.c — open as root, then drop: after tailwart-milter has bound
 * its socket and opened the store, it gives the store's files (and a unix
 * listening socket) to the `user` of gate.conf and switches to that user,
 * each step checked. Not started as root, or no `user`: nothing to do.
 * Root never follows a link here: the store's files are given away through
 * descriptors opened with O_NOFOLLOW (policy_store_lmdb.c, which also opens
 * the store with the directory owner's rights), the socket with
 * AT_SYMLINK_NOFOLLOW after lstat said it is one.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "milter.h"

int
milter_priv_drop(const char *user, struct policy_store *st, const char *listen,
    char *err, size_t errlen)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	uid_t r, e, s;
	uid_t uid;
	gid_t gid;

	if (geteuid() != 0 || user == NULL || user[0] == 0)
		return 0;
	if (getpwnam_r(user, &pw, buf, sizeof buf, &res) != 0 || res == NULL) {
		snprintf(err, errlen, "user %s: no such user", user);
		return -1;
	}
	uid = pw.pw_uid;
	gid = pw.pw_gid;
	if (uid == 0) {
		snprintf(err, errlen, "user %s is root: refusing", user);
		return -1;
	}
	if (policy_store_chown(st, uid, gid, err, errlen) != 0)
		return -1;
	if (strncmp(listen, "unix:", 5) == 0 || strncmp(listen, "local:", 6) == 0) {
		const char *path = strchr(listen, ':') + 1;
		struct stat sb;

		/* the socket's directory may be the user's: never follow a
		 * link there; change the socket itself or nothing */
		if (lstat(path, &sb) != 0 || !S_ISSOCK(sb.st_mode)) {
			snprintf(err, errlen, "%s: not a socket (a link?): refusing to chown it",
			    path);
			return -1;
		}
		if (fchownat(AT_FDCWD, path, uid, gid, AT_SYMLINK_NOFOLLOW) != 0) {
			snprintf(err, errlen, "chown %s: %s", path, strerror(errno));
			return -1;
		}
	}
	if (setgroups(1, &gid) != 0 || setresgid(gid, gid, gid) != 0 ||
	    setresuid(uid, uid, uid) != 0) {
		snprintf(err, errlen, "cannot become %s: %s", user, strerror(errno));
		return -1;
	}
	if (getresuid(&r, &e, &s) != 0 || r != uid || e != uid || s != uid) {
		snprintf(err, errlen, "still privileged after dropping to %s", user);
		return -1;
	}
	return 0;
}

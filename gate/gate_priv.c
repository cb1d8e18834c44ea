/*
 * gate_priv — look up the unprivileged user (as root, at start-up) and
 * drop to it in every child: setgroups, setresgid, setresuid, each checked,
 * then verified (OpenSMTPD's pattern). Failure is fatal for the child.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

#include "gate.h"
#include "log.h"

int
gate_priv_lookup(const char *user, uid_t *uid, gid_t *gid)
{
	struct passwd *pw = getpwnam(user);

	if (pw == NULL)
		return -1;
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return 0;
}

int
gate_priv_drop(uid_t uid, gid_t gid)
{
	uid_t r, e, s;

	if (geteuid() != 0)
		return 0;	/* not started as root: nothing to drop */
	if (uid == 0)
		return -1;	/* refusing to run children as root */
	if (setgroups(1, &gid) != 0 || setresgid(gid, gid, gid) != 0 ||
	    setresuid(uid, uid, uid) != 0)
		return -1;
	if (getresuid(&r, &e, &s) != 0 || r != uid || e != uid || s != uid)
		return -1;
	return 0;
}

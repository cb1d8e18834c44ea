/*
 * relay_spool_sync — group commit of the queue/ directory sync.
 *
 * Every message the receiver accepts is renamed into queue/ and queue/ is
 * fsynced before the 250 (relay_spool_commit). With many sessions at once,
 * one fsync of queue/ that STARTS after a rename covers that rename, so
 * sessions share them: each session takes a ticket after its rename
 * (renamed++), then waits for the sync lock (flock on its own fd of
 * queue/, released by the kernel if the holder dies). Holding it, a
 * session whose ticket is already covered (synced >= ticket) is done
 * without a syscall more; else it reads renamed (every ticket up to it has
 * its rename done), fsyncs, and only on success sets synced to that value.
 * So "250 only after the message and its directory entry are on disk"
 * holds for every message; only the number of fsync calls shrinks.
 *
 * The counters live in a MAP_SHARED page made by the receiver before it
 * forks its sessions; without one (delivery workers, tools) it is a plain
 * fsync of the directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/mman.h>

#include "relay_spool.h"

struct relay_sync_group {
	uint64_t renamed;	/* tickets handed out (renames done) */
	uint64_t synced;	/* every ticket <= this is durable */
	uint64_t fsyncs;	/* directory fsyncs made (for tests/metrics) */
};

struct relay_sync_group *
relay_sync_group_new(void)
{
	void *p = mmap(NULL, sizeof(struct relay_sync_group), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;	/* zero-filled */
}

int
relay_sync_dir(struct relay_sync_group *g, const char *path)
{
	uint64_t ticket, upto;
	int fd, rc = 0, e;

	if (g == NULL)
		return relay_fsync_dir(path);
	ticket = __atomic_add_fetch(&g->renamed, 1, __ATOMIC_SEQ_CST);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	while (flock(fd, LOCK_EX) != 0) {
		if (errno != EINTR) {
			e = errno;
			(void)close(fd);
			errno = e;
			return -1;
		}
	}
	if (__atomic_load_n(&g->synced, __ATOMIC_SEQ_CST) < ticket) {
		upto = __atomic_load_n(&g->renamed, __ATOMIC_SEQ_CST);
		rc = fsync(fd);
		if (rc == 0) {
			__atomic_store_n(&g->synced, upto, __ATOMIC_SEQ_CST);
			__atomic_add_fetch(&g->fsyncs, 1, __ATOMIC_SEQ_CST);
		}
	}
	e = errno;
	(void)flock(fd, LOCK_UN);
	if (close(fd) != 0 && rc == 0)
		return -1;
	errno = e;
	return rc;
}

unsigned long long
relay_sync_group_fsyncs(const struct relay_sync_group *g)
{
	return g ? (unsigned long long)__atomic_load_n(&g->fsyncs, __ATOMIC_SEQ_CST) : 0;
}

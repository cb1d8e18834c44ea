/*
 * fuzz_spool — libFuzzer target for the relay's readers of its own files
 * (relay/relay_spool.c), which STYLE.md says are input like any other: the
 * first byte picks the reader, the rest is the file.
 *   even: a queue file, read by relay_spool_read() from an anonymous file
 *         (memfd), as the delivery worker and `queue list/show` do; when it
 *         parses, every length must lie inside the file, every string be
 *         one line, and the body must read back (relay_spool_pread);
 *   odd:  a state file state/ID (in a tmpfs spool under /dev/shm, else
 *         /tmp) for a message of three recipients, read by
 *         relay_state_load(); when it loads, it is saved and loaded twice
 *         more (relay_state_save): the second and third loads must agree
 *         (what we write, we read back the same).
 * Nothing may crash, leak or allocate without bound.
 *
 * Built and run by `make fuzz` (see tests/fuzz/README.md).
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "../../relay/relay_spool.h"

static char fz_dir[64];
static char fz_state[128];

static void
fuzz_init(void)
{
	fuzz_once();
	fuzz_tmpdir(fz_dir, sizeof(fz_dir), "fuzz_spool");
	if (relay_spool_init(fz_dir, getuid(), getgid()) != 0)
		abort();
	snprintf(fz_state, sizeof(fz_state), "%s/state/0123456789ABCDEF", fz_dir);
}

static void
fuzz_one_line(const char *s)
{
	if (s != NULL && strchr(s, '\n') != NULL)
		abort();
}

static void
fuzz_queue(const uint8_t *data, size_t size)
{
	struct relay_msg m;
	const char *why = NULL;
	int fd = fuzz_memfd(data, size);

	if (relay_spool_read(fd, &m, &why) == 0) {
		char *body;

		if (m.body_off <= 0 || m.body_len < 0 || (size_t)m.body_off > size ||
		    (size_t)m.body_len > size - (size_t)m.body_off || m.nrcpts == 0 ||
		    !relay_spool_valid_id(m.id) || m.from == NULL ||
		    (m.dkim != NULL && m.dkim_len > size))
			abort();
		fuzz_one_line(m.from);
		fuzz_one_line(m.client);
		for (size_t i = 0; i < m.nrcpts; i++)
			fuzz_one_line(m.rcpts[i].addr);
		if ((body = malloc((size_t)m.body_len + 1)) == NULL ||
		    relay_spool_pread(fd, body, (size_t)m.body_len, m.body_off) != 0)
			abort();
		free(body);
		relay_msg_free(&m);
	} else if (why == NULL || why[0] == '\0')
		abort();	/* a refusal says why (it goes to the log) */
	else if (getenv("FUZZ_DEBUG") != NULL)
		fprintf(stderr, "refused: %s\n", why);
	close(fd);
}

static void
fuzz_msg3(struct relay_msg *m, struct relay_rcpt *r)
{
	memset(m, 0, sizeof(*m));
	memset(r, 0, 3 * sizeof(*r));
	snprintf(m->id, sizeof(m->id), "0123456789ABCDEF");
	m->rcpts = r;
	m->nrcpts = 3;
}

static void
fuzz_msg3_free(struct relay_msg *m)
{
	for (size_t i = 0; i < m->nrcpts; i++)
		free(m->rcpts[i].reply);
}

static void
fuzz_state(const uint8_t *data, size_t size)
{
	struct relay_rcpt r1[3], r2[3], r3[3];
	struct relay_msg m1, m2, m3;
	int fd = open(fz_state, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size) || close(fd) != 0)
		abort();
	fuzz_msg3(&m1, r1);
	fuzz_msg3(&m2, r2);
	fuzz_msg3(&m3, r3);
	if (relay_state_load(fz_dir, &m1) == 0) {
		if (relay_state_save(fz_dir, &m1) != 0 || relay_state_load(fz_dir, &m2) != 0 ||
		    relay_state_save(fz_dir, &m2) != 0 || relay_state_load(fz_dir, &m3) != 0)
			abort();	/* our own file does not read back */
		if (m2.attempts != m3.attempts || m2.next_attempt != m3.next_attempt ||
		    m2.warned != m3.warned || m2.notified != m3.notified)
			abort();
		for (size_t i = 0; i < 3; i++) {
			const char *a = r2[i].reply, *b = r3[i].reply;
			if (r2[i].status != r3[i].status || (a == NULL) != (b == NULL) ||
			    (a != NULL && strcmp(a, b) != 0))
				abort();
			fuzz_one_line(a);
		}
	}
	fuzz_msg3_free(&m1);
	fuzz_msg3_free(&m2);
	fuzz_msg3_free(&m3);
	(void)unlink(fz_state);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (fz_dir[0] == '\0')
		fuzz_init();
	if (size < 1 || size > 65536 + 4096)
		return 0;
	if (data[0] & 1)
		fuzz_state(data + 1, size - 1);
	else
		fuzz_queue(data + 1, size - 1);
	return 0;
}

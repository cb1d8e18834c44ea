/*
 * fuzz_config — libFuzzer target for the configuration parsers: the
 * grammar (lib/config.c) and the loaders of every program on top of it.
 * The first byte picks the reader, the rest is the file:
 *   0  conf_load_buf + conf_apply with a schema of every value type,
 *      indexed keys (conf_take), conf_check_unused, conf_release;
 *   1  gate_config_load (gate.conf: listeners, backend, policy keys,
 *      milters);
 *   2  relay_config_load (smarthost.conf);
 *   3  milter_config_load (tailwart-milter's file).
 * The file is written to a tmpfs directory (/dev/shm, else /tmp) and loaded
 * by path, as the programs do. A file that names /dev, /proc or /sys is
 * skipped: an operator pointing a key at /dev/zero is not a finding.
 *
 * Contract checked: no crash, leak or hang; a refusal comes with a
 * NUL-terminated, non-empty message (the operator's only clue).
 *
 * Built and run by `make fuzz` (see tests/fuzz/README.md).
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>

#include "fuzz.h"
#include "config.h"
#include "../../gate/gate.h"
#include "../../relay/relay_config.h"
#include "../../milter/milter.h"

struct fuzz_settings {
	char		*s;
	unsigned long long u;
	unsigned	 d;
	size_t		 z;
	int		 b, e;
	struct conf_list l;
	char		*req;
};

static const struct conf_key fuzz_schema[] = {
	{ "name", CT_STR, CONF_OPTIONAL, offsetof(struct fuzz_settings, s), NULL, 0, 0 },
	{ "count", CT_UINT, "5", offsetof(struct fuzz_settings, u), NULL, 1, 1000 },
	{ "timeout", CT_DURATION, "30s", offsetof(struct fuzz_settings, d), NULL, 0, 0 },
	{ "size", CT_SIZE, "10M", offsetof(struct fuzz_settings, z), NULL, 0, 0 },
	{ "flag", CT_BOOL, "no", offsetof(struct fuzz_settings, b), NULL, 0, 0 },
	{ "mode", CT_ENUM, "log", offsetof(struct fuzz_settings, e), "ignore|log|enforce", 0, 0 },
	{ "list", CT_LIST, CONF_OPTIONAL, offsetof(struct fuzz_settings, l), NULL, 0, 0 },
	{ "required", CT_STR, NULL, offsetof(struct fuzz_settings, req), NULL, 0, 0 },
	{ NULL, 0, NULL, 0, NULL, 0, 0 },
};

static char fz_path[96];

static void
fuzz_err(const char *err, size_t cap)
{
	if (strnlen(err, cap) == cap || err[0] == '\0')
		abort();	/* refused without a word */
}

static void
fuzz_grammar(const uint8_t *data, size_t size)
{
	struct fuzz_settings t;
	struct conf c;
	struct conf_entry *e;
	char err[512] = "";

	if (conf_load_buf("fuzz.conf", (const char *)data, size, &c, err, sizeof(err)) != 0) {
		fuzz_err(err, sizeof(err));
		return;
	}
	while ((e = conf_take(&c, "limit")) != NULL)
		if (e->value == NULL)
			abort();
	memset(&t, 0, sizeof(t));
	err[0] = '\0';
	if (conf_apply(&c, fuzz_schema, &t, err, sizeof(err)) == 0) {
		err[0] = '\0';
		if (conf_check_unused(&c, err, sizeof(err)) != 0)
			fuzz_err(err, sizeof(err));
		for (size_t i = 0; i < t.l.n; i++)
			if (t.l.v[i] == NULL || t.l.v[i][0] == '\0')
				abort();	/* lists are trimmed and non-empty */
	} else
		fuzz_err(err, sizeof(err));
	conf_release(fuzz_schema, &t);
	conf_free(&c);
}

static void
fuzz_file(int which, const uint8_t *data, size_t size)
{
	union {
		struct gate_settings	g;
		struct relay_config	r;
		struct milter_settings	m;
	} u;
	char err[1024] = "";
	int rc, fd = open(fz_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size) || close(fd) != 0)
		abort();
	memset(&u, 0, sizeof(u));
	rc = which == 1 ? gate_config_load(fz_path, &u.g, err, sizeof(err)) :
	    which == 2 ? relay_config_load(fz_path, &u.r, err, sizeof(err)) :
	    milter_config_load(fz_path, &u.m, err, sizeof(err));
	if (rc != 0)
		fuzz_err(err, sizeof(err));
	else if (which == 1)
		gate_config_free(&u.g);
	else if (which == 2)
		relay_config_free(&u.r);
	else
		milter_config_free(&u.m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (fz_path[0] == '\0') {
		char dir[64];

		fuzz_once();
		(void)setenv("TW_FUZZ_ENV", "from-env", 1);
		fuzz_tmpdir(dir, sizeof(dir), "fuzz_config");
		snprintf(fz_path, sizeof(fz_path), "%s/fuzz.conf", dir);
	}
	if (size < 1 || size > 16384 || memmem(data, size, "/dev", 4) != NULL ||
	    memmem(data, size, "/proc", 5) != NULL || memmem(data, size, "/sys", 4) != NULL)
		return 0;
	if (data[0] % 4 == 0)
		fuzz_grammar(data + 1, size - 1);
	else
		fuzz_file(data[0] % 4, data + 1, size - 1);
	return 0;
}

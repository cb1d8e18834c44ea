/*
 * unit.h — a tiny table-driven test runner for tests/unit/test_*.c.
 *
 * Each TEST(name) runs in its own forked process with an alarm(10), so one
 * crash or hang fails one case, not the file. Assertions print both values.
 * The binary prints "N passed, N failed" and exits non-zero on failure.
 *
 *   TEST(parse_ok) { EXPECT_INT(f(1), 0); EXPECT_STR(buf, "x"); }
 *   int main(void) { RUN(parse_ok); return unit_done(); }
 */
#ifndef TESTS_UNIT_H
#define TESTS_UNIT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <signal.h>
#include <sys/wait.h>

static int unit_pass, unit_fail;
static int unit_case_failed;

#define TEST(name) static void test_##name(void)

#define FAILF(...) do { fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); unit_case_failed = 1; } while (0)

#define EXPECT(cond) do { if (!(cond)) FAILF("expected: %s", #cond); } while (0)
#define EXPECT_INT(a, b) do { long long _a = (long long)(a), _b = (long long)(b); \
	if (_a != _b) FAILF("%s == %lld, expected %lld", #a, _a, _b); } while (0)
#define EXPECT_STR(a, b) do { const char *_a = (a), *_b = (b); \
	if (_a == NULL || _b == NULL ? _a != _b : strcmp(_a, _b) != 0) \
		FAILF("%s == \"%s\", expected \"%s\"", #a, _a ? _a : "(null)", _b ? _b : "(null)"); } while (0)
#define EXPECT_MEM(a, b, n) do { if (memcmp((a), (b), (n)) != 0) { \
	FAILF("%s differs from %s over %zu bytes", #a, #b, (size_t)(n)); } } while (0)

static inline void unit_run(const char *name, void (*fn)(void))
{
	fflush(stdout); fflush(stderr);
	pid_t pid = fork();
	if (pid == 0) {
		alarm(10);
		unit_case_failed = 0;
		fn();
		fflush(stderr);
		_exit(unit_case_failed ? 1 : 0);
	}
	int st = 0;
	if (pid < 0 || waitpid(pid, &st, 0) < 0) st = 1 << 8;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) { unit_pass++; printf("ok   %s\n", name); }
	else {
		unit_fail++;
		if (WIFSIGNALED(st)) printf("FAIL %s (signal %d)\n", name, WTERMSIG(st));
		else printf("FAIL %s\n", name);
	}
}
#define RUN(name) unit_run(#name, test_##name)

static inline int unit_done(void)
{
	printf("%d passed, %d failed\n", unit_pass, unit_fail);
	return unit_fail ? 1 : 0;
}

#endif

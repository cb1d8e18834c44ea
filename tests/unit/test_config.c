/*
 * test_config — lib/config: the `key = value` grammar, schema application,
 * and the exact "file:line: message" errors an operator sees (golden
 * strings: a change of wording is a visible change and must show here).
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "config.h"

struct settings {
	char			*hostname;
	char			*backend;
	unsigned		 greylist_delay;
	size_t			 size_limit;
	int			 dnsbl_action;
	int			 tls_required;
	unsigned long long	 workers_max;
	struct conf_list	 listen;
	char			*auth_password;
};

static const struct conf_key schema[] = {
	{ "hostname", CT_STR, NULL, offsetof(struct settings, hostname), NULL, 0, 0 },
	{ "backend", CT_STR, NULL, offsetof(struct settings, backend), NULL, 0, 0 },
	{ "greylist_delay", CT_DURATION, "5m", offsetof(struct settings, greylist_delay), NULL, 0, 0 },
	{ "message_size_limit", CT_SIZE, "50M", offsetof(struct settings, size_limit), NULL, 0, 0 },
	{ "dnsbl_action", CT_ENUM, "enforce", offsetof(struct settings, dnsbl_action),
	  "ignore|log|enforce", 0, 0 },
	{ "tls_required", CT_BOOL, "no", offsetof(struct settings, tls_required), NULL, 0, 0 },
	{ "workers_max", CT_UINT, "64", offsetof(struct settings, workers_max), NULL, 1, 1024 },
	{ "listen", CT_LIST, "0.0.0.0:25", offsetof(struct settings, listen), NULL, 0, 0 },
	{ "auth_password", CT_STR, CONF_OPTIONAL, offsetof(struct settings, auth_password), NULL, 0, 0 },
	{ NULL, CT_STR, NULL, 0, NULL, 0, 0 },
};

#define REQ "hostname = mx.example.net\nbackend = stalwart:25\n"

/* Load text as "t.conf", apply the schema, check for unused keys.
 * Returns the first failing step's rc; err holds its message. */
static int load_apply(const char *text, struct conf *c, struct settings *s,
    char *err, size_t errlen)
{
	err[0] = '\0';
	memset(s, 0, sizeof(*s));
	if (conf_load_buf("t.conf", text, strlen(text), c, err, errlen) != 0)
		return -1;
	if (conf_apply(c, schema, s, err, errlen) != 0)
		return -2;
	if (conf_check_unused(c, err, errlen) != 0)
		return -3;
	return 0;
}

static void done(struct conf *c, struct settings *s)
{
	conf_release(schema, s);
	conf_free(c);
}

/* Golden error cases: input, the step that fails, the exact message. */
struct golden {
	const char *name;
	const char *in;
	int rc;
	const char *err;
};

static const struct golden goldens[] = {
	{ "unknown key", REQ "bogus_key = 1\n", -3,
	  "t.conf:3: unknown key \"bogus_key\"" },
	{ "unknown indexed key", REQ "\nrate_limit[10.0.0.0/8] = conn 1/1m\n", -3,
	  "t.conf:4: unknown key \"rate_limit[10.0.0.0/8]\"" },
	{ "bad duration unit", REQ "greylist_delay = 5x\n", -2,
	  "t.conf:3: greylist_delay: bad value \"5x\": unknown unit (use s, m, h, d or w)" },
	{ "duration not a number", REQ "greylist_delay = soon\n", -2,
	  "t.conf:3: greylist_delay: bad value \"soon\": not a number" },
	{ "duration with two units", REQ "greylist_delay = 5mm\n", -2,
	  "t.conf:3: greylist_delay: bad value \"5mm\": unknown unit (use s, m, h, d or w)" },
	{ "negative duration", REQ "greylist_delay = -5m\n", -2,
	  "t.conf:3: greylist_delay: bad value \"-5m\": not a number" },
	{ "bad size unit", REQ "message_size_limit = 10Q\n", -2,
	  "t.conf:3: message_size_limit: bad value \"10Q\": unknown unit (use K, M or G)" },
	{ "size overflow", REQ "message_size_limit = 99999999999999999999G\n", -2,
	  "t.conf:3: message_size_limit: bad value \"99999999999999999999G\": number out of range" },
	{ "size overflow by unit", REQ "message_size_limit = 18014398509481984K\n", -2,
	  "t.conf:3: message_size_limit: bad value \"18014398509481984K\": number out of range" },
	{ "missing =", "hostname = a\n\nbackend stalwart:25\n", -1,
	  "t.conf:3: expected \"key = value\", got \"backend stalwart:25\"" },
	{ "unset env", REQ "auth_password = %{env:TW_TEST_UNSET_VAR}%\n", -1,
	  "t.conf:3: environment variable TW_TEST_UNSET_VAR is not set" },
	{ "malformed env", REQ "auth_password = %{env:TW_TEST_SET\n", -1,
	  "t.conf:3: malformed %{env:NAME}%" },
	{ "empty env name", REQ "auth_password = %{env:}%\n", -1,
	  "t.conf:3: malformed %{env:NAME}%" },
	{ "bad env name", REQ "auth_password = %{env:A-B}%\n", -1,
	  "t.conf:3: bad environment variable name \"A-B\"" },
	{ "repeated key", "hostname = a\nbackend = b\n# comment\nhostname = c\n", -1,
	  "t.conf:4: hostname is set twice (first at line 1)" },
	{ "repeated indexed key", REQ "rate_limit[10.0.0.0/8] = a\nrate_limit[10.0.0.0/8] = b\n", -1,
	  "t.conf:4: rate_limit[10.0.0.0/8] is set twice (first at line 3)" },
	{ "bad enum", REQ "dnsbl_action = maybe\n", -2,
	  "t.conf:3: dnsbl_action: bad value \"maybe\" (expected ignore|log|enforce)" },
	{ "bad bool", REQ "tls_required = perhaps\n", -2,
	  "t.conf:3: tls_required: bad value \"perhaps\": expected yes or no" },
	{ "uint out of range", REQ "workers_max = 0\n", -2,
	  "t.conf:3: workers_max: bad value \"0\": out of range" },
	{ "uint not a number", REQ "workers_max = 12abc\n", -2,
	  "t.conf:3: workers_max: bad value \"12abc\": not a number" },
	{ "uint with sign", REQ "workers_max = +5\n", -2,
	  "t.conf:3: workers_max: bad value \"+5\": not a number" },
	{ "missing required key", "hostname = a\n", -2,
	  "t.conf: missing required key \"backend\"" },
	{ "empty required value", "hostname =\nbackend = b\n", -2,
	  "t.conf:1: hostname: empty value" },
	{ "continuation first", "  indented = 1\n", -1,
	  "t.conf:1: continuation line without a key before it" },
	{ "upper-case key", REQ "Hostname = x\n", -1,
	  "t.conf:3: malformed key \"Hostname\"" },
	{ "empty key", REQ "= x\n", -1,
	  "t.conf:3: malformed key \"\"" },
	{ "unclosed index", REQ "rate_limit[10.0.0.0/8 = x\n", -1,
	  "t.conf:3: malformed index in key \"rate_limit[10.0.0.0/8\"" },
	{ "empty index", REQ "rate_limit[] = x\n", -1,
	  "t.conf:3: malformed index in key \"rate_limit[]\"" },
	/* the error names the key's line even when the value continued */
	{ "bad value on continued line", REQ "greylist_delay = 5\n  x\n", -2,
	  "t.conf:3: greylist_delay: bad value \"5 x\": unknown unit (use s, m, h, d or w)" },
};

TEST(golden_errors)
{
	setenv("TW_TEST_SET", "v", 1);
	unsetenv("TW_TEST_UNSET_VAR");
	for (size_t i = 0; i < sizeof(goldens) / sizeof(goldens[0]); i++) {
		const struct golden *g = &goldens[i];
		struct conf c;
		struct settings s;
		char err[512];
		int rc = load_apply(g->in, &c, &s, err, sizeof(err));

		if (rc != g->rc)
			FAILF("%s: rc %d, expected %d (err \"%s\")", g->name, rc, g->rc, err);
		else if (strcmp(err, g->err) != 0)
			FAILF("%s:\n    got      \"%s\"\n    expected \"%s\"", g->name, err, g->err);
		if (rc != -1)
			done(&c, &s);
	}
}

TEST(defaults_and_values)
{
	struct conf c;
	struct settings s;
	char err[256];

	EXPECT_INT(load_apply(REQ, &c, &s, err, sizeof(err)), 0);
	EXPECT_STR(s.hostname, "mx.example.net");
	EXPECT_STR(s.backend, "stalwart:25");
	EXPECT_INT(s.greylist_delay, 300);
	EXPECT_INT(s.size_limit, 50ULL * 1024 * 1024);
	EXPECT_INT(s.dnsbl_action, 2);
	EXPECT_INT(s.tls_required, 0);
	EXPECT_INT(s.workers_max, 64);
	EXPECT_INT(s.listen.n, 1);
	EXPECT_STR(s.listen.v[0], "0.0.0.0:25");
	EXPECT_STR(s.auth_password, "");
	done(&c, &s);

	EXPECT_INT(load_apply(REQ "greylist_delay = 35d\nmessage_size_limit = 10M\n"
	    "dnsbl_action = LOG\ntls_required = yes\nworkers_max = 1024\n"
	    "listen = 0.0.0.0:25, [::]:25 ,, 127.0.0.1:2525\n", &c, &s, err, sizeof(err)), 0);
	EXPECT_STR(err, "");
	EXPECT_INT(s.greylist_delay, 35 * 86400);
	EXPECT_INT(s.size_limit, 10 * 1048576);
	EXPECT_INT(s.dnsbl_action, 1);
	EXPECT_INT(s.tls_required, 1);
	EXPECT_INT(s.workers_max, 1024);
	EXPECT_INT(s.listen.n, 3);
	if (s.listen.n == 3) {
		EXPECT_STR(s.listen.v[0], "0.0.0.0:25");
		EXPECT_STR(s.listen.v[1], "[::]:25");
		EXPECT_STR(s.listen.v[2], "127.0.0.1:2525");
	}
	done(&c, &s);
}

TEST(value_parsers)
{
	unsigned secs = 0;
	size_t sz = 0;
	unsigned long long u = 0;
	int b = -1;
	const char *why = NULL;

	EXPECT_INT(conf_parse_duration("30", &secs, &why), 0);
	EXPECT_INT(secs, 30);
	EXPECT_INT(conf_parse_duration("30s", &secs, &why), 0);
	EXPECT_INT(secs, 30);
	EXPECT_INT(conf_parse_duration("5m", &secs, &why), 0);
	EXPECT_INT(secs, 300);
	EXPECT_INT(conf_parse_duration("4h", &secs, &why), 0);
	EXPECT_INT(secs, 4 * 3600);
	EXPECT_INT(conf_parse_duration("35d", &secs, &why), 0);
	EXPECT_INT(secs, 35 * 86400);
	EXPECT_INT(conf_parse_duration("", &secs, &why), -1);
	EXPECT_INT(conf_parse_duration("5 m", &secs, &why), -1);
	EXPECT_INT(conf_parse_duration("99999999999d", &secs, &why), -1);

	EXPECT_INT(conf_parse_size("512", &sz, &why), 0);
	EXPECT_INT(sz, 512);
	EXPECT_INT(conf_parse_size("10K", &sz, &why), 0);
	EXPECT_INT(sz, 10240);
	EXPECT_INT(conf_parse_size("1G", &sz, &why), 0);
	EXPECT_INT(sz, 1073741824ULL);
	EXPECT_INT(conf_parse_size("1.5M", &sz, &why), -1);

	EXPECT_INT(conf_parse_uint("0", &u, &why), 0);
	EXPECT_INT(u, 0);
	EXPECT_INT(conf_parse_uint("18446744073709551615", &u, &why), 0);
	EXPECT_INT(conf_parse_uint("18446744073709551616", &u, &why), -1);
	EXPECT_STR(why, "number out of range");
	EXPECT_INT(conf_parse_uint(" 1", &u, &why), -1);
	EXPECT_INT(conf_parse_uint("", &u, &why), -1);

	EXPECT_INT(conf_parse_bool("On", &b, &why), 0);
	EXPECT_INT(b, 1);
	EXPECT_INT(conf_parse_bool("0", &b, &why), 0);
	EXPECT_INT(b, 0);
	EXPECT_INT(conf_parse_bool("", &b, &why), -1);
}

TEST(env_substitution)
{
	struct conf c;
	struct settings s;
	char err[256];

	setenv("TW_TEST_PW", "p#ss %{env:TW_TEST_NOPE}% w", 1);
	setenv("TW_TEST_HOST", "smtp.example.org", 1);
	EXPECT_INT(load_apply(REQ "auth_password = x-%{env:TW_TEST_PW}%-%{env:TW_TEST_HOST}%:587\n",
	    &c, &s, err, sizeof(err)), 0);
	/* substituted once: the value of a variable is not expanded again */
	EXPECT_STR(s.auth_password, "x-p#ss %{env:TW_TEST_NOPE}% w-smtp.example.org:587");
	done(&c, &s);

	setenv("TW_TEST_EMPTY", "", 1);
	EXPECT_INT(load_apply(REQ "auth_password = %{env:TW_TEST_EMPTY}%\n", &c, &s, err,
	    sizeof(err)), 0);
	EXPECT_STR(s.auth_password, "");
	done(&c, &s);

	/* a long value grows the buffer */
	{
		char big[3000];

		memset(big, 'z', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		setenv("TW_TEST_BIG", big, 1);
		EXPECT_INT(load_apply(REQ "auth_password = <%{env:TW_TEST_BIG}%%{env:TW_TEST_BIG}%>\n",
		    &c, &s, err, sizeof(err)), 0);
		EXPECT_INT(strlen(s.auth_password), 2 * 2999 + 2);
		EXPECT(s.auth_password[0] == '<' && s.auth_password[2 * 2999 + 1] == '>');
		done(&c, &s);
	}
}

TEST(continuation_lines)
{
	struct conf c;
	struct settings s;
	char err[256];

	EXPECT_INT(load_apply(REQ "listen = 0.0.0.0:25,\n   [::]:25,\n\t127.0.0.1:2525\n"
	    "greylist_delay = 4h\n", &c, &s, err, sizeof(err)), 0);
	EXPECT_STR(err, "");
	EXPECT_INT(s.listen.n, 3);
	if (s.listen.n == 3)
		EXPECT_STR(s.listen.v[2], "127.0.0.1:2525");
	EXPECT_INT(s.greylist_delay, 4 * 3600);
	EXPECT_INT(c.n, 4);
	if (c.n == 4) {
		EXPECT_STR(c.v[2].value, "0.0.0.0:25, [::]:25, 127.0.0.1:2525");
		EXPECT_INT(c.v[2].line, 3);
		EXPECT_INT(c.v[3].line, 6);
	}
	done(&c, &s);

	/* a value may start on the next line */
	EXPECT_INT(load_apply("hostname =\n  mx.example.net\nbackend = b\n", &c, &s, err,
	    sizeof(err)), 0);
	EXPECT_STR(s.hostname, "mx.example.net");
	done(&c, &s);
}

TEST(comments_and_hash_in_values)
{
	struct conf c;
	struct settings s;
	char err[256];

	EXPECT_INT(load_apply("# leading comment\n\n   # indented comment\n" REQ
	    "auth_password = se#cret # not a comment\n#hostname = ignored\n",
	    &c, &s, err, sizeof(err)), 0);
	EXPECT_STR(err, "");
	EXPECT_STR(s.auth_password, "se#cret # not a comment");
	EXPECT_STR(s.hostname, "mx.example.net");
	done(&c, &s);

	/* CRLF line ends, blanks around '=', no final newline */
	EXPECT_INT(load_apply("hostname\t=\t a b \r\nbackend=b", &c, &s, err, sizeof(err)), 0);
	EXPECT_STR(s.hostname, "a b");
	EXPECT_STR(s.backend, "b");
	done(&c, &s);

	/* a value may hold '=' */
	EXPECT_INT(load_apply(REQ "auth_password = a=b==\n", &c, &s, err, sizeof(err)), 0);
	EXPECT_STR(s.auth_password, "a=b==");
	done(&c, &s);
}

TEST(indexed_keys_take)
{
	struct conf c;
	struct settings s;
	struct conf_entry *e;
	char err[256];

	static const char text[] = REQ
	    "rate_limit = conn 30/1m\n"
	    "rate_limit[203.0.113.0/24] = conn 300/1m, concurrency 50\n"
	    "rate_limit[ 2001:db8::/32 ] = conn 5/1m\n"
	    "spf_fail = reject\n";

	memset(&s, 0, sizeof(s));
	EXPECT_INT(conf_load_buf("t.conf", text, strlen(text), &c, err, sizeof(err)), 0);
	EXPECT_STR(err, "");
	EXPECT_INT(conf_apply(&c, schema, &s, err, sizeof(err)), 0);
	/* program-specific keys are still unconsumed */
	EXPECT_INT(conf_check_unused(&c, err, sizeof(err)), -1);
	EXPECT_STR(err, "t.conf:3: unknown key \"rate_limit\"");

	e = conf_take(&c, "rate_limit");
	EXPECT(e != NULL);
	if (e != NULL) {
		EXPECT(e->index == NULL);
		EXPECT_STR(e->value, "conn 30/1m");
		EXPECT_INT(e->line, 3);
	}
	e = conf_take(&c, "rate_limit");
	EXPECT(e != NULL);
	if (e != NULL) {
		EXPECT_STR(e->index, "203.0.113.0/24");
		EXPECT_STR(e->value, "conn 300/1m, concurrency 50");
		EXPECT_INT(e->line, 4);
	}
	e = conf_take(&c, "rate_limit");
	EXPECT(e != NULL);
	if (e != NULL) {
		EXPECT_STR(e->index, "2001:db8::/32");
		EXPECT_INT(e->line, 5);
	}
	EXPECT(conf_take(&c, "rate_limit") == NULL);
	EXPECT(conf_take(&c, "no_such_key") == NULL);
	err[0] = '\0';
	EXPECT_INT(conf_check_unused(&c, err, sizeof(err)), -1);
	EXPECT_STR(err, "t.conf:6: unknown key \"spf_fail\"");
	e = conf_take(&c, "spf_fail");
	EXPECT(e != NULL && strcmp(e->value, "reject") == 0);
	EXPECT_INT(conf_check_unused(&c, err, sizeof(err)), 0);
	done(&c, &s);
}

TEST(load_file)
{
	char path[] = "/tmp/tw-test-config-XXXXXX";
	int fd = mkstemp(path);
	static const char text[] = "hostname = f\nbackend = b\nworkers_max = x\n";
	struct conf c;
	struct settings s;
	char err[512], want[600];

	EXPECT(fd >= 0);
	if (fd < 0)
		return;
	EXPECT_INT(write(fd, text, sizeof(text) - 1), sizeof(text) - 1);
	EXPECT_INT(close(fd), 0);

	memset(&s, 0, sizeof(s));
	EXPECT_INT(conf_load(path, &c, err, sizeof(err)), 0);
	EXPECT_INT(conf_apply(&c, schema, &s, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:3: workers_max: bad value \"x\": not a number", path);
	EXPECT_STR(err, want);
	done(&c, &s);
	unlink(path);

	EXPECT_INT(conf_load(path, &c, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	EXPECT_STR(err, want);
}

TEST(nul_byte)
{
	struct conf c;
	char err[256];

	EXPECT_INT(conf_load_buf("t.conf", "hostname = a\0b\n", 15, &c, err, sizeof(err)), -1);
	EXPECT_STR(err, "t.conf: contains a NUL byte");
}

TEST(error_buffer_small)
{
	struct conf c;
	char err[8];

	memset(err, 'X', sizeof(err));
	EXPECT_INT(conf_load_buf("t.conf", "nokey\n", 6, &c, err, sizeof(err)), -1);
	EXPECT_INT(strlen(err), sizeof(err) - 1);
	EXPECT_STR(err, "t.conf:");
}

int main(void)
{
	RUN(golden_errors);
	RUN(defaults_and_values);
	RUN(value_parsers);
	RUN(env_substitution);
	RUN(continuation_lines);
	RUN(comments_and_hash_in_values);
	RUN(indexed_keys_take);
	RUN(load_file);
	RUN(nul_byte);
	RUN(error_buffer_small);
	return unit_done();
}

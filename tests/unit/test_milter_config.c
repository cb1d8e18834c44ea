/*
 * test_milter_config — unit tests for tailwart-milter's configuration
 * (milter/milter_config.c, included): the milter_* keys, gate keys left
 * alone, typos of our own keys refused with file:line, defaults.
 */
#include "unit.h"
#include "../../milter/milter_config.c"

static int
load(const char *text, struct milter_settings *s, char *err, size_t errlen)
{
	char path[] = "/tmp/test_milter_config.XXXXXX";
	int fd = mkstemp(path), r;

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		FAILF("cannot write %s", path);
		return -9;
	}
	close(fd);
	r = milter_config_load(path, s, err, errlen);
	unlink(path);
	if (r != 0) {
		/* drop the temp file name: compare from the line number on */
		char *c = strchr(err, ':');

		if (c)
			memmove(err, c + 1, strlen(c + 1) + 1);
	}
	return r;
}

TEST(defaults)
{
	struct milter_settings s;
	char err[512] = "";

	EXPECT_INT(load("store = lmdb:/tmp/x.lmdb\n", &s, err, sizeof err), 0);
	EXPECT_STR(s.listen, "inet:11332@127.0.0.1");
	EXPECT_INT(s.dkim, 1);
	EXPECT(s.dkim_keys == NULL);
	EXPECT_INT(s.timeout, 120);
	EXPECT(s.user == NULL);
	EXPECT(s.authserv_id != NULL && s.authserv_id[0] != 0);
	milter_config_free(&s);
}

TEST(keys)
{
	struct milter_settings s;
	char err[512] = "";

	EXPECT_INT(load("listen = 0.0.0.0:25\nbackend = stalwart:25\n"
	    "milters = inet:127.0.0.1:8891\nmilter_default_action = accept\n"
	    "hostname = mx.example.net\n"
	    "milter_listen = unix:/run/tailwart/milter.sock\n"
	    "milter_dkim = no\nmilter_timeout = 30s\nuser = tailwart\n"
	    "greylist_delay = 1m\n", &s, err, sizeof err), 0);
	EXPECT_STR(s.listen, "unix:/run/tailwart/milter.sock");
	EXPECT_STR(s.authserv_id, "mx.example.net");	/* from hostname */
	EXPECT_INT(s.dkim, 0);
	EXPECT_INT(s.timeout, 30);
	EXPECT_STR(s.user, "tailwart");
	EXPECT_INT(s.pc.grey.delay, 60);
	milter_config_free(&s);

	EXPECT_INT(load("hostname = mx.example.net\nmilter_authserv_id = edge.example.net\n"
	    "milter_dkim_keys = file:/etc/keys.txt\n", &s, err, sizeof err), 0);
	EXPECT_STR(s.authserv_id, "edge.example.net");
	EXPECT_STR(s.dkim_keys, "/etc/keys.txt");
	milter_config_free(&s);
}

TEST(errors)
{
	struct milter_settings s;
	char err[512] = "";

	EXPECT_INT(load("greylist_dely = 5m\n", &s, err, sizeof err), -1);
	EXPECT_STR(err, "1: unknown key \"greylist_dely\"");
	EXPECT_INT(load("x = 1\nmilter_dkim_key = file:/x\n", &s, err, sizeof err), -1);
	EXPECT_STR(err, "2: unknown key \"milter_dkim_key\"");
	EXPECT_INT(load("milter_dkim = maybe\n", &s, err, sizeof err), -1);
	EXPECT(strstr(err, "milter_dkim:") != NULL);
	EXPECT_INT(load("milter_dkim_keys = /etc/keys\n", &s, err, sizeof err), -1);
	EXPECT_STR(err, "1: milter_dkim_keys: expected file:/PATH");
	EXPECT_INT(load("milter_authserv_id = bad;id\n", &s, err, sizeof err), -1);
	EXPECT_STR(err, "1: milter_authserv_id: not a plain host name");
	EXPECT_INT(load("milter_timeout = 0s\n", &s, err, sizeof err), -1);
	EXPECT_INT(load("milter_listen[x] = inet:1@127.0.0.1\n", &s, err, sizeof err), -1);
	EXPECT_STR(err, "1: milter_listen takes no [index]");
	EXPECT_INT(load("dnsbl_threshold = many\n", &s, err, sizeof err), -1);
}

int
main(void)
{
	RUN(defaults);
	RUN(keys);
	RUN(errors);
	return unit_done();
}

/*
 * gate_main — tailwart-gate's command line:
 *   tailwart-gate [-f] [-d] [-c FILE]    run (master process)
 *   tailwart-gate -n [-c FILE]           check the configuration and exit
 * -f: stay in the foreground and log to stderr; -d: debug logging.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gate.h"
#include "log.h"

#define DEFAULT_CONF	"/etc/tailwart/gate.conf"

static void
usage(void)
{
	fprintf(stderr, "usage: tailwart-gate [-f] [-d] [-n] [-c FILE]\n");
	exit(2);
}

static void
daemonize(void)
{
	pid_t pid = fork();
	int fd;

	if (pid < 0)
		fatal("fork: %s", strerror(errno));
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		fatal("setsid: %s", strerror(errno));
	if (chdir("/") != 0)
		fatal("chdir /: %s", strerror(errno));
	fd = open("/dev/null", O_RDWR);
	if (fd < 0)
		fatal("/dev/null: %s", strerror(errno));
	if (dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
		fatal("dup2: %s", strerror(errno));
	if (fd > 2)
		(void)close(fd);
}

int
main(int argc, char **argv)
{
	const char *conf = DEFAULT_CONF;
	int foreground = 0, check = 0, debug = 0, ch;
	struct gate_settings *cfg;
	char err[1024];

	/* A fixed mmap threshold: glibc raises it after a large block is
	 * freed (LMDB's 2 MB dirty-page list, when the master prepares the
	 * store), and each child's copy would then come from the heap and be
	 * zeroed by hand: 2 MB of private memory per idle worker. */
	if (mallopt(M_MMAP_THRESHOLD, 128 * 1024) != 1)
		fprintf(stderr, "tailwart-gate: mallopt failed\n");

	while ((ch = getopt(argc, argv, "c:fdnh")) != -1) {
		switch (ch) {
		case 'c': conf = optarg; break;
		case 'f': foreground = 1; break;
		case 'd': debug = 1; break;
		case 'n': check = 1; break;
		default: usage();
		}
	}
	if (optind != argc)
		usage();
	cfg = calloc(1, sizeof(*cfg));
	if (cfg == NULL) {
		fprintf(stderr, "tailwart-gate: out of memory\n");
		return 1;
	}
	if (gate_config_load(conf, cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		free(cfg);
		return 1;
	}
	if (check) {
		printf("%s: configuration ok\n", conf);
		gate_config_free(cfg);
		free(cfg);
		return 0;
	}
	log_init("tailwart-gate", foreground);
	log_set_debug(debug);
	if (!foreground)
		daemonize();
	return gate_master_run(conf, cfg, foreground);
}

/*
 * milter_main.c — tailwart-milter: start-up and the libmilter main loop.
 *
 *   tailwart-milter [-f] [-n] [-d] -c /etc/tailwart/gate.conf
 *     -c FILE  gate.conf (policy keys, milter_* keys; see milter.h)
 *     -f       foreground, log to stderr
 *     -n       check the configuration and exit (0 = valid)
 *     -d       debug logging
 *
 * Opens the store (shared with the gate, e.g. the same LMDB file or Redis)
 * and the DKIM library once, binds, drops to `user` when started as root,
 * then hands over to libmilter, which runs each
 * MTA connection in its own thread and stops on SIGTERM/SIGINT. The
 * runtime built here is read-only for the callbacks (milter_rt).
 */
#include <errno.h>
#include <signal.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "milter.h"
#include "milter_metrics.h"
#include "notify.h"

const struct milter_runtime *milter_rt;

/* Static storage, not main()'s stack: session threads read them until the
 * last one has finished (see the end of main). */
static struct milter_settings milter_cfg;
static struct milter_runtime milter_runtime;

static void
milter_usage(void)
{
	fprintf(stderr, "usage: tailwart-milter [-f] [-n] [-d] -c FILE\n");
}

/*
 * libmilter writes each reply packet with its own write(): a header change
 * followed by "continue" makes Nagle hold the second packet until the MTA
 * ACKs the first, which a delayed ACK puts off by up to 40 ms per message.
 * libmilter does not expose its sockets, but Linux hands TCP_NODELAY down
 * from a listening socket to the sockets it accepts: find our listener
 * (the only socket in accept state in this process) and set it there.
 */
static void
milter_nodelay(void)
{
	struct rlimit rl;
	rlim_t max = 1024;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < max)
		max = rl.rlim_cur;
	for (int fd = 3; fd < (int)max; fd++) {
		int acc = 0, one = 1;
		socklen_t len = sizeof acc;
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;

		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) != 0 || !acc)
			continue;
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0 ||
		    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6))
			continue;
		if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
			log_warn("TCP_NODELAY on the listener: %s", strerror(errno));
	}
}

int
main(int argc, char **argv)
{
	struct milter_settings *cfgp = &milter_cfg;
	struct milter_runtime *rtp = &milter_runtime;
	struct smfiDesc desc;
	const char *path = "/etc/tailwart/gate.conf";
	char err[1024];
	int c, fg = 0, check = 0, debug = 0, rc;

	while ((c = getopt(argc, argv, "c:fnd")) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'f': fg = 1; break;
		case 'n': check = 1; break;
		case 'd': debug = 1; break;
		default:
			milter_usage();
			return 2;
		}
	}
	log_init("tailwart-milter", fg || check);
	log_set_debug(debug);
	if (milter_config_load(path, cfgp, err, sizeof err) != 0) {
		fprintf(stderr, "tailwart-milter: %s\n", err);
		return 1;
	}
	if (check) {
		printf("%s: ok (listen %s, authserv-id %s)\n", path, cfgp->listen,
		    cfgp->authserv_id);
		milter_config_free(cfgp);
		return 0;
	}
	memset(rtp, 0, sizeof *rtp);
	rtp->cfg = cfgp;
	if (policy_store_open(cfgp->pc.store, cfgp->pc.store_prefix, &rtp->store, err,
	    sizeof err) != 0) {
		log_err("store %s: %s", cfgp->pc.store, err);
		milter_config_free(cfgp);
		return 1;
	}
	if (cfgp->dkim && (rtp->dkim = milter_dkim_init(cfgp, err, sizeof err)) == NULL) {
		log_err("dkim: %s", err);
		policy_store_close(rtp->store);
		milter_config_free(cfgp);
		return 1;
	}
	if ((rtp->sess = milter_sess_new()) == NULL) {
		log_err("out of memory");
		rc = 1;
		goto out;
	}
	milter_rt = rtp;
	signal(SIGPIPE, SIG_IGN);
	milter_filter_desc(&desc);
	if (smfi_setconn(cfgp->listen) != MI_SUCCESS || smfi_settimeout((int)cfgp->timeout) !=
	    MI_SUCCESS || smfi_register(desc) != MI_SUCCESS) {
		log_err("cannot register the filter on %s", cfgp->listen);
		rc = 1;
		goto out;
	}
	if (smfi_opensocket(1) != MI_SUCCESS) {
		log_err("cannot listen on %s", cfgp->listen);
		rc = 1;
		goto out;
	}
	milter_nodelay();
	if (milter_metrics_init(cfgp, err, sizeof err) != 0) {
		log_err("%s", err);
		rc = 1;
		goto out;
	}
	if (milter_priv_drop(cfgp->user, rtp->store, cfgp->listen, err, sizeof err) != 0) {
		log_err("%s", err);
		rc = 1;
		goto out;
	}
	if (!fg && daemon(0, 0) != 0) {
		log_err("daemon: %s", strerror(errno));
		rc = 1;
		goto out;
	}
	log_info("tailwart-milter listening on %s authserv-id=%s dkim=%s", cfgp->listen,
	    cfgp->authserv_id, rtp->dkim ? "verify" : "off");
	if (milter_metrics_start() != 0)
		log_warn("metrics: cannot start the endpoint thread");
	(void)notify_ready();
	rc = smfi_main() == MI_SUCCESS ? 0 : 1;
	(void)notify_stopping();
	milter_metrics_stop();
	/* libmilter does not join its session threads: wait for them (10 s)
	 * before the runtime they use goes away */
	for (int i = 0; i < 100 && milter_filter_active() > 0; i++)
		usleep(100000);
	if (milter_filter_active() > 0) {
		log_warn("tailwart-milter stopped with %d sessions still open",
		    milter_filter_active());
		_exit(rc);
	}
	log_info("tailwart-milter stopped");
out:
	milter_sess_free(rtp->sess);
	if (rtp->dkim)
		dkim_close(rtp->dkim);
	policy_store_close(rtp->store);
	milter_config_free(cfgp);
	return rc;
}

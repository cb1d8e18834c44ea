/*
 * gate_health — active health checks of the backends (backend_check_interval,
 * 0 = off). A small child of the master (kind 'H', no listener, no store)
 * connects to every address of `backend` in turn, sends the PROXY v2 LOCAL
 * header (with backend_handoff = proxy-v2), reads the banner, says QUIT, and
 * records the outcome on the shared board exactly as a hand-off would
 * (gate_backends_result): a check can take a backend down after
 * backend_fail_max failures, and bring it back at the first 220. Checks run
 * one at a time, so a slow backend delays the next check, never a session.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "gate.h"
#include "io.h"
#include "log.h"
#include "smtp.h"

/* One check: 1 when the address greets with 220, else 0. */
static int
health_check(const struct gate_settings *cfg, const struct gate_backend_addr *a)
{
	unsigned char hdr[PROXY_MAX_HEADER];
	struct smtp_reply r;
	struct io io;
	int ok = 0, tmo = (int)cfg->backend_connect_timeout * 1000;
	int fd = net_connect(&a->ep, tmo);

	if (fd < 0) {
		log_debug("health backend=%s check=failed reason=\"%s\"", a->name, strerror(errno));
		return 0;
	}
	if (cfg->handoff == HANDOFF_PROXY_V2) {
		ssize_t n = proxy_v2_encode_local(hdr, sizeof(hdr)), w = -1;
		if (n > 0)
			do
				w = write(fd, hdr, (size_t)n);
			while (w < 0 && errno == EINTR);
		if (w != n) {
			(void)close(fd);
			return 0;
		}
	}
	if (io_init(&io, fd, 4096, tmo) == 0) {
		ok = smtp_read_reply(&io, &r) == SMTP_R_OK && r.code == 220;
		if (io_write(&io, "QUIT\r\n", 6) != 0 || io_flush(&io) != 0)
			log_debug("health backend=%s QUIT not sent", a->name);
		io_free(&io);
	}
	(void)close(fd);
	if (!ok)
		log_debug("health backend=%s check=failed reason=banner", a->name);
	return ok;
}

void
gate_health_main(struct gate_runtime *rt)
{
	const struct gate_settings *cfg = rt->cfg;

	gate_child_signals();
	log_info("health checks every %us for %zu backend addresses", cfg->backend_check_interval,
	    cfg->backends.n);
	while (!gate_sig_term) {
		long long next = gate_now_ms() + (long long)cfg->backend_check_interval * 1000;
		for (size_t i = 0; i < cfg->backends.n && !gate_sig_term; i++)
			gate_backends_result(rt->backends, &cfg->backends.v[i], &cfg->be_rule,
			    health_check(cfg, &cfg->backends.v[i]));
		while (!gate_sig_term && gate_now_ms() < next)
			(void)poll(NULL, 0, (int)(next - gate_now_ms() > 1000 ? 1000 : next - gate_now_ms()));
	}
	_exit(0);
}

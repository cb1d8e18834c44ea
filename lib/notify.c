/*
 * notify — sd_notify() wrappers for Type=notify units; see notify.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "log.h"
#include "notify.h"

static int
notify_send(const char *state)
{
	int rc = sd_notify(0, state);

	if (rc < 0) {
		log_warn("sd_notify state=\"%s\": %s", state, strerror(-rc));
		return -1;
	}
	return 0;
}

int
notify_ready(void)
{
	return notify_send("READY=1");
}

int
notify_reloading(void)
{
	struct timespec ts;
	char msg[64];

	/* systemd 253's Type=notify-reload wants the time the reload began */
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return notify_send("RELOADING=1");
	(void)snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%" PRIu64,
	    (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
	return notify_send(msg);
}

int
notify_stopping(void)
{
	return notify_send("STOPPING=1");
}

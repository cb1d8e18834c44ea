/*
 * gate_child — what every child of the master (screen, workers,
 * passthrough) shares: its signal set-up (TERM sets gate_sig_term: finish
 * what is running, then exit; PIPE, HUP, USR1 and INT are the master's
 * business) and the monotonic clock in milliseconds.
 */
#include <signal.h>
#include <string.h>
#include <time.h>

#include "gate.h"

static void
on_term(int sig)
{
	(void)sig;
	gate_sig_term = 1;
}

void
gate_child_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGTERM, &sa, NULL);	/* no SA_RESTART: blocking calls see EINTR */
	sa.sa_handler = SIG_IGN;
	(void)sigaction(SIGPIPE, &sa, NULL);
	(void)sigaction(SIGHUP, &sa, NULL);
	(void)sigaction(SIGUSR1, &sa, NULL);
	(void)sigaction(SIGINT, &sa, NULL);
}

long long
gate_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

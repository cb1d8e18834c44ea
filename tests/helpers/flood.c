/*
 * flood — a bounded connection load for tests and benchmarks (loopback
 * only: the target must be 127.0.0.0/8 or ::1).
 *
 *   flood -m turn  -c CONC -n TOTAL [-t SECS] [-b BINDIP] HOST PORT
 *       CONC connections at a time; each reads the server's first reply
 *       line and closes; prints "turned N in S s = R/s, first=CODE".
 *   flood -m hold  -n COUNT [-t SECS] [-b BINDIP] HOST PORT
 *       opens COUNT connections, reads what the server says first (the
 *       screen's greeting), then holds them all silently until SIGTERM or
 *       SECS; prints "held N" once all are open, and "closed" at the end.
 * Every loop is bounded by count and time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void
on_sig(int sig)
{
	(void)sig;
	stop = 1;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
open_conn(const struct sockaddr_in *dst, const char *bind_ip)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (bind_ip != NULL) {
		struct sockaddr_in b;
		memset(&b, 0, sizeof(b));
		b.sin_family = AF_INET;
		if (inet_pton(AF_INET, bind_ip, &b.sin_addr) != 1 ||
		    bind(fd, (struct sockaddr *)&b, sizeof(b)) != 0) {
			(void)close(fd);
			return -1;
		}
	}
	if (connect(fd, (const struct sockaddr *)dst, sizeof(*dst)) != 0 && errno != EINPROGRESS) {
		(void)close(fd);
		return -1;
	}
	return fd;
}

static unsigned long
parse_ul(const char *s)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || end == s) {
		fprintf(stderr, "flood: bad number %s\n", s);
		exit(2);
	}
	return v;
}

int
main(int argc, char **argv)
{
	const char *mode = "turn", *bind_ip = NULL;
	unsigned long conc = 50, total = 1000, secs = 30;
	struct sockaddr_in dst;
	struct rlimit rl;
	int ch, ep;

	while ((ch = getopt(argc, argv, "m:c:n:t:b:")) != -1) {
		switch (ch) {
		case 'm': mode = optarg; break;
		case 'c': conc = parse_ul(optarg); break;
		case 'n': total = parse_ul(optarg); break;
		case 't': secs = parse_ul(optarg); break;
		case 'b': bind_ip = optarg; break;
		default: return 2;
		}
	}
	if (argc - optind != 2 || conc == 0 || conc > 10000 || total > 1000000 || secs > 600)
		return fprintf(stderr, "usage: see the header of tests/helpers/flood.c\n"), 2;
	memset(&dst, 0, sizeof(dst));
	dst.sin_family = AF_INET;
	dst.sin_port = htons((unsigned short)parse_ul(argv[optind + 1]));
	if (inet_pton(AF_INET, argv[optind], &dst.sin_addr) != 1 ||
	    (ntohl(dst.sin_addr.s_addr) >> 24) != 127)
		return fprintf(stderr, "flood: target must be a 127.0.0.0/8 address\n"), 2;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGTERM, on_sig);
	signal(SIGINT, on_sig);
	signal(SIGPIPE, SIG_IGN);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		return perror("epoll"), 1;

	double t0 = now(), deadline = t0 + (double)secs;
	unsigned long started = 0, done = 0, failed = 0, open_now = 0;
	char first[8] = "";

	if (strcmp(mode, "hold") == 0)
		conc = total;
	while (!stop && now() < deadline && done + failed < total) {
		struct epoll_event ev[256];
		int n;

		while (open_now < conc && started < total) {
			struct epoll_event e;
			int fd = open_conn(&dst, bind_ip);
			started++;
			if (fd < 0) {
				failed++;
				continue;
			}
			memset(&e, 0, sizeof(e));
			e.events = EPOLLIN;
			e.data.fd = fd;
			if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) != 0) {
				(void)close(fd);
				failed++;
				continue;
			}
			open_now++;
		}
		n = epoll_wait(ep, ev, 256, 100);
		for (int i = 0; i < n; i++) {
			char buf[512];
			ssize_t r = recv(ev[i].data.fd, buf, sizeof(buf), 0);
			if (r > 0 && first[0] == '\0' && r >= 3)
				memcpy(first, buf, 3);
			if (strcmp(mode, "hold") == 0 && r > 0) {
				/* greeting read: hold silently */
				struct epoll_event e;
				memset(&e, 0, sizeof(e));
				(void)epoll_ctl(ep, EPOLL_CTL_DEL, ev[i].data.fd, &e);
				done++;
				continue;
			}
			(void)close(ev[i].data.fd);
			open_now--;
			if (r > 0)
				done++;
			else
				failed++;
		}
	}
	double el = now() - t0;
	if (strcmp(mode, "hold") == 0) {
		printf("held %lu failed %lu first=%s\n", done, failed, first);
		fflush(stdout);
		while (!stop && now() < deadline)
			(void)usleep(100000);
		printf("closed\n");
		return failed ? 1 : 0;
	}
	printf("turned %lu failed %lu in %.3f s = %.0f/s first=%s\n", done, failed, el,
	    el > 0 ? (double)done / el : 0.0, first);
	return 0;
}

/*
 * bad_milter — a raw-socket milter (no libmilter) that answers correctly
 * until a chosen stage and then misbehaves, to test that the gate's milter
 * client turns every malformed or hostile reply into its default action.
 *
 *   bad_milter -p PORT -m MODE [-t STAGE] [-l LOG] [-n MAXCONN] [-T SECS] [-k K]
 *
 * STAGE is the MTA command byte the misbehaviour answers: C H M R T L N B E
 * (default E, end of message). Modes:
 *   ok            answer every event with continue, accept at eom
 *   len0          a packet of length 0
 *   huge          a length of 1 MiB (more than the 64 KiB negotiated)
 *   unknown       an unknown reply command 'Z'
 *   truncated     a length of 100, 10 bytes, then close
 *   close         close the connection when STAGE arrives
 *   hang          never answer STAGE (the client's timeout must fire)
 *   hdr-lf hdr-cr hdr-long hdr-name   at eom, an add-header whose value has a
 *                 bare LF / a bare CR / a 2000-byte line, or a bad name
 *   y-good        `y` "554 5.7.1 custom %% reply"   (valid: passed through)
 *   y-250 y-crlf y-long               invalid `y` replies
 *   optneg-bad    answer option negotiation with 'c'
 *   optneg-act    ask for actions that were not offered
 *   v2            negotiate protocol version 2, then behave (no DATA event
 *                 may be sent to it)
 *   body-cr       at eom, a replacement body with a bare CR
 *   hdr-flood     at eom, K add-headers (-k, default 2000) of a 64000-byte
 *                 folded value each (a worker that keeps them all: 128 MB)
 *   hdr-many      at eom, K add-headers (-k, default 1500) of a short value
 *   mods          at eom, raw modifications: add, insert, change, delete
 *                 header, replace body (LF-only lines), quarantine, add and
 *                 delete recipient; then accept
 * Each command received is logged ("cmd X len N") to LOG. One connection at
 * a time; exits after MAXCONN connections (default 1000) or SECS seconds
 * (default 300), so a forgotten instance cannot linger.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static FILE *logfp;
static unsigned long opt_k;	/* -k: count for hdr-flood / hdr-many; 0 = default */

static int
write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t r = write(fd, c, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

static int
read_all(int fd, void *p, size_t n)
{
	char *c = p;

	while (n > 0) {
		ssize_t r = read(fd, c, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

static int
send_pkt(int fd, char cmd, const void *data, size_t len)
{
	uint32_t n = htonl((uint32_t)(len + 1));

	if (write_all(fd, &n, 4) != 0 || write_all(fd, &cmd, 1) != 0)
		return -1;
	return len ? write_all(fd, data, len) : 0;
}

/* name\0value\0, with an optional 4-byte index first */
static int
send_hdr(int fd, char cmd, int with_index, uint32_t idx, const char *name,
    const char *value)
{
	size_t nl = strlen(name) + 1, vl = strlen(value) + 1, off = 0;
	char *b = malloc(4 + nl + vl);
	int r;

	if (b == NULL)
		return -1;
	if (with_index) {
		uint32_t n = htonl(idx);

		memcpy(b, &n, 4);
		off = 4;
	}
	memcpy(b + off, name, nl);
	memcpy(b + off + nl, value, vl);
	r = send_pkt(fd, cmd, b, off + nl + vl);
	free(b);
	return r;
}

static int
send_str(int fd, char cmd, const char *s)
{
	return send_pkt(fd, cmd, s, strlen(s) + 1);
}

/* The misbehaviour (or the scripted answer) at the chosen stage.
 * Returns -1 to close the connection. */
static int
misbehave(int fd, const char *mode)
{
	char big[2100];

	if (strcmp(mode, "len0") == 0) {
		uint32_t z = 0;
		return write_all(fd, &z, 4);
	}
	if (strcmp(mode, "huge") == 0) {
		uint32_t n = htonl(1u << 20);
		return write_all(fd, &n, 4) == 0 ? write_all(fd, "h", 1) : -1;
	}
	if (strcmp(mode, "unknown") == 0)
		return send_pkt(fd, 'Z', NULL, 0);
	if (strcmp(mode, "truncated") == 0) {
		uint32_t n = htonl(100);

		if (write_all(fd, &n, 4) == 0)
			(void)write_all(fd, "hX-A\0bbbbb", 10);
		return -1;
	}
	if (strcmp(mode, "close") == 0)
		return -1;
	if (strcmp(mode, "hang") == 0) {
		/* until the client gives up and closes (bounded by the alarm) */
		while (read(fd, big, sizeof big) > 0)
			;
		return -1;
	}
	if (strcmp(mode, "hdr-lf") == 0)
		return send_hdr(fd, 'h', 0, 0, "X-Bad", "a\nb") == 0 ? send_pkt(fd, 'a', NULL, 0) : -1;
	if (strcmp(mode, "hdr-cr") == 0)
		return send_hdr(fd, 'h', 0, 0, "X-Bad", "a\rb") == 0 ? send_pkt(fd, 'a', NULL, 0) : -1;
	if (strcmp(mode, "hdr-long") == 0) {
		memset(big, 'a', 2000);
		big[2000] = 0;
		return send_hdr(fd, 'h', 0, 0, "X-Bad", big) == 0 ? send_pkt(fd, 'a', NULL, 0) : -1;
	}
	if (strcmp(mode, "hdr-name") == 0)
		return send_hdr(fd, 'h', 0, 0, "Bad Name", "x") == 0 ? send_pkt(fd, 'a', NULL, 0) : -1;
	if (strcmp(mode, "y-good") == 0)
		return send_str(fd, 'y', "554 5.7.1 custom %% reply");
	if (strcmp(mode, "y-250") == 0)
		return send_str(fd, 'y', "250 2.0.0 ok");
	if (strcmp(mode, "y-crlf") == 0)
		return send_str(fd, 'y', "550 5.7.1 a\r\n550 5.7.1 b");
	if (strcmp(mode, "y-long") == 0) {
		memcpy(big, "550 ", 4);
		memset(big + 4, 'x', 1000);
		big[1004] = 0;
		return send_str(fd, 'y', big);
	}
	if (strcmp(mode, "hdr-flood") == 0 || strcmp(mode, "hdr-many") == 0) {
		int flood = mode[4] == 'f';
		unsigned long k = opt_k ? opt_k : flood ? 2000 : 1500;
		size_t vlen = flood ? 64000 : 8;
		char *v = malloc(vlen + 1);

		if (v == NULL)
			return -1;
		memset(v, 'a', vlen);
		for (size_t i = 900; flood && i + 2 < vlen; i += 900)
			memcpy(v + i, "\n\t", 2);	/* folded: every line < 998 */
		v[vlen] = 0;
		for (unsigned long i = 0; i < k; i++)
			if (send_hdr(fd, 'h', 0, 0, "X-Flood", v) != 0)
				break;	/* the MTA gave up on us: fine */
		free(v);
		return send_pkt(fd, 'a', NULL, 0);
	}
	if (strcmp(mode, "body-cr") == 0)
		return send_pkt(fd, 'b', "a\rb\r\n", 5) == 0 ? send_pkt(fd, 'a', NULL, 0) : -1;
	if (strcmp(mode, "mods") == 0) {
		if (send_hdr(fd, 'h', 0, 0, "X-Added", "added value") ||
		    send_hdr(fd, 'h', 0, 0, "X-Folded", "first\n\tsecond") ||
		    send_hdr(fd, 'i', 1, 0, "X-Top", "top") ||
		    send_hdr(fd, 'm', 1, 1, "Subject", "changed subject") ||
		    send_hdr(fd, 'm', 1, 1, "X-Remove", "") ||
		    send_pkt(fd, 'b', "new body line 1\nnew ", 20) ||
		    send_pkt(fd, 'b', "body line 2\n", 12) ||
		    send_str(fd, 'q', "held by bad_milter") ||
		    send_str(fd, '+', "<added@example.test>") ||
		    send_str(fd, '-', "<user@example.test>"))
			return -1;
		return send_pkt(fd, 'a', NULL, 0);
	}
	/* ok */
	return send_pkt(fd, 'a', NULL, 0);
}

static void
serve(int fd, const char *mode, char stage)
{
	unsigned char buf[1 << 17];
	int is_optneg_mode = strncmp(mode, "optneg", 6) == 0;

	for (int i = 0; i < 100000; i++) {
		uint32_t n;
		unsigned char cmd;

		if (read_all(fd, &n, 4) != 0)
			return;
		n = ntohl(n);
		if (n == 0 || n > sizeof buf || read_all(fd, buf, n) != 0)
			return;
		cmd = buf[0];
		if (logfp) {
			fprintf(logfp, "cmd %c len %u\n", cmd, n - 1);
			fflush(logfp);
		}
		switch (cmd) {
		case 'O': {
			uint32_t v[3] = { htonl(6), htonl(0x1ff), htonl(0) };

			if (strcmp(mode, "optneg-bad") == 0) {
				(void)send_pkt(fd, 'c', NULL, 0);
				return;
			}
			if (strcmp(mode, "optneg-act") == 0)
				v[1] = htonl(0x3ff);
			if (strcmp(mode, "v2") == 0)
				v[0] = htonl(2);	/* an old milter: no DATA event */
			if (send_pkt(fd, 'O', v, sizeof v) != 0)
				return;
			continue;
		}
		case 'D':
		case 'A':
			continue;
		case 'Q':
			return;
		default:
			break;
		}
		if (!is_optneg_mode && cmd == (unsigned char)stage) {
			if (misbehave(fd, mode) != 0)
				return;
			continue;
		}
		if (send_pkt(fd, cmd == 'E' ? 'a' : 'c', NULL, 0) != 0)
			return;
	}
}

int
main(int argc, char **argv)
{
	const char *mode = "ok", *logpath = NULL;
	char stage = 'E';
	unsigned long port = 0, maxconn = 1000, secs = 300;
	struct sockaddr_in sin;
	int c, lfd, one = 1;

	while ((c = getopt(argc, argv, "p:m:t:l:n:T:k:")) != -1) {
		switch (c) {
		case 'p': port = strtoul(optarg, NULL, 10); break;
		case 'm': mode = optarg; break;
		case 't': stage = optarg[0]; break;
		case 'l': logpath = optarg; break;
		case 'n': maxconn = strtoul(optarg, NULL, 10); break;
		case 'T': secs = strtoul(optarg, NULL, 10); break;
		case 'k': opt_k = strtoul(optarg, NULL, 10); break;
		default:
			fprintf(stderr, "usage: bad_milter -p PORT -m MODE [-t STAGE]\n");
			return 2;
		}
	}
	if (port == 0 || port > 65535) {
		fprintf(stderr, "bad_milter: -p PORT needed\n");
		return 2;
	}
	if (logpath && (logfp = fopen(logpath, "a")) == NULL) {
		perror(logpath);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	alarm((unsigned)secs);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    bind(lfd, (struct sockaddr *)&sin, sizeof sin) != 0 || listen(lfd, 16) != 0) {
		perror("bad_milter: listen");
		return 1;
	}
	for (unsigned long i = 0; i < maxconn; i++) {
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		serve(fd, mode, stage);
		if (close(fd) != 0)
			perror("bad_milter: close");
	}
	return 0;
}

/*
 * pipe_source — a pipelining SMTP load generator for the benchmarks.
 *
 * smtp-source never pipelines; real MTAs do (RFC 2920). This client opens
 * N sessions in parallel (one poll() loop), sends EHLO once per session,
 * then for each message MAIL + RCPT + DATA in one write, waits for the
 * three replies, then the body and "." in one write and its reply, like
 * Postfix's smtp client. Bounded: -m messages in all, -T seconds of wall
 * time. Loopback targets only (127.0.0.0/8, ::1); anything else is refused.
 *
 *   pipe_source [-s sessions] [-m messages] [-l size] [-T secs]
 *               [-f from] [-t to] host:port
 *
 * Prints one line: messages sent, seconds, messages/s and error counts.
 * Exit 0 when every message got its 250, 1 otherwise, 2 on usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PS_MAX_SESS	1000
#define PS_IN_MAX	8192

enum ps_state { PS_GREET, PS_EHLO, PS_ENV, PS_BODY, PS_RSET, PS_QUIT, PS_DONE };

struct ps_sess {
	int	fd;
	enum ps_state st;
	int	want;		/* replies still expected in this state */
	int	bad;		/* a reply in this group was not the expected one */
	char	in[PS_IN_MAX];
	size_t	inlen;
	char	*out;		/* pending output (points into env or body) */
	size_t	outlen, outoff;
};

struct ps_run {
	const char *env;	/* "MAIL...RCPT...DATA\r\n" */
	size_t	envlen;
	char	*body;		/* body + ".\r\n" */
	size_t	bodylen;
	long	total, started, ok, rejected, proto, conn;
};

static double
now_s(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
parse_ulong(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v == 0 || v > max)
		return -1;
	*out = v;
	return 0;
}

/* host:port or [v6]:port, loopback only */
static int
parse_target(const char *arg, struct sockaddr_storage *ss, socklen_t *sl)
{
	char host[128];
	const char *colon = strrchr(arg, ':');
	unsigned long port;
	size_t hl;

	if (colon == NULL || parse_ulong(colon + 1, 65535, &port) != 0)
		return -1;
	hl = (size_t)(colon - arg);
	if (hl >= 2 && arg[0] == '[' && arg[hl - 1] == ']') {
		arg++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof(host))
		return -1;
	memcpy(host, arg, hl);
	host[hl] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (strcmp(host, "localhost") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	{
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
			if ((ntohl(s4->sin_addr.s_addr) >> 24) != 127)
				return -2;
			s4->sin_family = AF_INET;
			s4->sin_port = htons((unsigned short)port);
			*sl = sizeof(*s4);
			return 0;
		}
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
			if (!IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
				return -2;
			s6->sin6_family = AF_INET6;
			s6->sin6_port = htons((unsigned short)port);
			*sl = sizeof(*s6);
			return 0;
		}
	}
	return -1;
}

static char *
make_body(unsigned long size, size_t *len)
{
	static const char hdr[] = "From: <pipe_source@example.org>\r\nTo: <user@example.test>\r\n"
	    "Subject: pipe_source load\r\n\r\n";
	size_t cap = sizeof(hdr) + size + 128, n;
	char *b = malloc(cap);

	if (b == NULL)
		return NULL;
	memcpy(b, hdr, sizeof(hdr) - 1);
	n = sizeof(hdr) - 1;
	while (n < size) {
		size_t line = size - n > 78 ? 76 : (size - n > 2 ? size - n - 2 : 1);
		memset(b + n, 'x', line);
		n += line;
		b[n++] = '\r';
		b[n++] = '\n';
	}
	memcpy(b + n, ".\r\n", 3);
	*len = n + 3;
	return b;
}

static void
sess_close(struct ps_sess *s)
{
	if (s->fd >= 0)
		(void)close(s->fd);
	s->fd = -1;
	s->st = PS_DONE;
}

static void
sess_send(struct ps_sess *s, const char *p, size_t n, enum ps_state st, int want)
{
	s->out = (char *)p;
	s->outlen = n;
	s->outoff = 0;
	s->st = st;
	s->want = want;
	s->bad = 0;
}

/* next message or QUIT */
static void
sess_next(struct ps_run *r, struct ps_sess *s)
{
	if (r->started < r->total) {
		r->started++;
		sess_send(s, r->env, r->envlen, PS_ENV, 3);
	} else
		sess_send(s, "QUIT\r\n", 6, PS_QUIT, 1);
}

/* one complete reply with code `code` arrived */
static void
on_reply(struct ps_run *r, struct ps_sess *s, int code, int ehlo_pipelining)
{
	switch (s->st) {
	case PS_GREET:
		if (code != 220) {
			r->conn++;
			sess_close(s);
			return;
		}
		sess_send(s, "EHLO pipe-source.test\r\n", 23, PS_EHLO, 1);
		return;
	case PS_EHLO:
		if (code != 250 || !ehlo_pipelining) {
			r->proto++;
			sess_close(s);
			return;
		}
		sess_next(r, s);
		return;
	case PS_ENV:
		/* MAIL 250, RCPT 250, DATA 354, in that order */
		if ((s->want == 3 && code != 250) || (s->want == 2 && code != 250) ||
		    (s->want == 1 && code != 354))
			s->bad = 1;
		if (--s->want > 0)
			return;
		if (s->bad) {
			r->rejected++;
			if (code == 354) {	/* DATA went through: end it empty */
				sess_send(s, ".\r\n", 3, PS_RSET, 1);
				return;
			}
			sess_send(s, "RSET\r\n", 6, PS_RSET, 1);
			return;
		}
		sess_send(s, r->body, r->bodylen, PS_BODY, 1);
		return;
	case PS_BODY:
		if (code == 250)
			r->ok++;
		else
			r->rejected++;
		sess_next(r, s);
		return;
	case PS_RSET:
		sess_next(r, s);
		return;
	case PS_QUIT:
	case PS_DONE:
		sess_close(s);
		return;
	}
}

/* parse complete reply lines in s->in; returns -1 on a protocol error */
static int
sess_input(struct ps_run *r, struct ps_sess *s)
{
	size_t off = 0;
	static const char pipe_kw[] = "PIPELINING";

	for (;;) {
		char *nl = memchr(s->in + off, '\n', s->inlen - off);
		char *line = s->in + off;
		size_t ll;
		int code;

		if (nl == NULL)
			break;
		ll = (size_t)(nl - line) + 1;
		if (ll < 4 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
		    line[2] < '0' || line[2] > '9')
			return -1;
		code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
		if (s->st == PS_EHLO && ll >= 4 + sizeof(pipe_kw) - 1 &&
		    strncasecmp(line + 4, pipe_kw, sizeof(pipe_kw) - 1) == 0)
			s->bad = 1;	/* in PS_EHLO, "bad" records PIPELINING seen */
		off += ll;
		if (line[3] == '-')
			continue;
		on_reply(r, s, code, s->st == PS_EHLO ? s->bad : 0);
		if (s->st == PS_DONE)
			return 0;
	}
	memmove(s->in, s->in + off, s->inlen - off);
	s->inlen -= off;
	return s->inlen == sizeof(s->in) ? -1 : 0;
}

static int
sess_open(struct ps_sess *s, const struct sockaddr_storage *ss, socklen_t sl)
{
	int one = 1;

	s->fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		return -1;
	(void)setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(s->fd, (const struct sockaddr *)ss, sl) != 0 && errno != EINPROGRESS) {
		sess_close(s);
		return -1;
	}
	s->st = PS_GREET;
	s->want = 1;
	s->inlen = 0;
	s->outlen = s->outoff = 0;
	return 0;
}

static void
usage(void)
{
	fprintf(stderr, "usage: pipe_source [-s sessions] [-m messages] [-l size] [-T secs] "
	    "[-f from] [-t to] host:port (loopback only)\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	unsigned long nsess = 20, nmsg = 1000, size = 1024, tlimit = 60;
	const char *from = "pipe_source@example.org", *to = "user@example.test";
	struct sockaddr_storage ss;
	socklen_t sl = 0;
	struct ps_run r;
	struct ps_sess *sv;
	struct pollfd *pv;
	char env[1200];
	double t0, el;
	int c, live;

	while ((c = getopt(argc, argv, "s:m:l:T:f:t:")) != -1) {
		switch (c) {
		case 's': if (parse_ulong(optarg, PS_MAX_SESS, &nsess) != 0) usage(); break;
		case 'm': if (parse_ulong(optarg, 10000000, &nmsg) != 0) usage(); break;
		case 'l': if (parse_ulong(optarg, 50000000, &size) != 0) usage(); break;
		case 'T': if (parse_ulong(optarg, 3600, &tlimit) != 0) usage(); break;
		case 'f': from = optarg; break;
		case 't': to = optarg; break;
		default: usage();
		}
	}
	if (optind != argc - 1 || strlen(from) > 500 || strlen(to) > 500 ||
	    strpbrk(from, "\r\n<>") || strpbrk(to, "\r\n<>"))
		usage();
	c = parse_target(argv[optind], &ss, &sl);
	if (c == -2) {
		fprintf(stderr, "pipe_source: %s is not a loopback address: refused\n", argv[optind]);
		return 2;
	}
	if (c != 0)
		usage();
	memset(&r, 0, sizeof(r));
	r.total = (long)nmsg;
	c = snprintf(env, sizeof(env), "MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n", from, to);
	if (c < 0 || (size_t)c >= sizeof(env))
		usage();
	r.env = env;
	r.envlen = (size_t)c;
	r.body = make_body(size, &r.bodylen);
	sv = calloc(nsess, sizeof(*sv));
	pv = calloc(nsess, sizeof(*pv));
	if (r.body == NULL || sv == NULL || pv == NULL) {
		fprintf(stderr, "pipe_source: out of memory\n");
		return 1;
	}
	t0 = now_s();
	for (unsigned long i = 0; i < nsess; i++)
		if (sess_open(&sv[i], &ss, sl) != 0) {
			r.conn++;
			sv[i].st = PS_DONE;
		}
	for (;;) {
		live = 0;
		for (unsigned long i = 0; i < nsess; i++) {
			pv[i].fd = sv[i].fd;
			pv[i].events = POLLIN | (sv[i].outoff < sv[i].outlen ? POLLOUT : 0);
			pv[i].revents = 0;
			if (sv[i].fd >= 0)
				live++;
		}
		el = now_s() - t0;
		if (live == 0 || el >= (double)tlimit)
			break;
		if (poll(pv, nsess, 200) < 0 && errno != EINTR)
			break;
		for (unsigned long i = 0; i < nsess; i++) {
			struct ps_sess *s = &sv[i];
			if (s->fd < 0 || pv[i].revents == 0)
				continue;
			if ((pv[i].revents & POLLOUT) && s->outoff < s->outlen) {
				ssize_t n = write(s->fd, s->out + s->outoff, s->outlen - s->outoff);
				if (n < 0 && errno != EAGAIN && errno != EINTR) {
					r.conn++;
					sess_close(s);
					continue;
				}
				if (n > 0)
					s->outoff += (size_t)n;
			}
			if (pv[i].revents & (POLLIN | POLLHUP | POLLERR)) {
				ssize_t n = read(s->fd, s->in + s->inlen, sizeof(s->in) - s->inlen);
				if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
					if (s->st != PS_QUIT)
						r.conn++;
					sess_close(s);
					continue;
				}
				if (n > 0) {
					s->inlen += (size_t)n;
					if (sess_input(&r, s) != 0) {
						r.proto++;
						sess_close(s);
					}
				}
			}
		}
	}
	el = now_s() - t0;
	for (unsigned long i = 0; i < nsess; i++)
		sess_close(&sv[i]);
	printf("pipe_source: %ld of %ld messages in %.3f s = %.0f msg/s; rejected=%ld "
	    "protocol=%ld connection=%ld%s\n", r.ok, r.total, el, el > 0 ? (double)r.ok / el : 0.0,
	    r.rejected, r.proto, r.conn, el >= (double)tlimit ? " (time limit)" : "");
	free(r.body);
	free(sv);
	free(pv);
	return r.ok == r.total ? 0 : 1;
}

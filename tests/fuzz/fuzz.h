/*
 * fuzz.h — helpers shared by the libFuzzer targets in tests/fuzz/ (header
 * only: each target is one translation unit, built by `make fuzz`).
 *
 *   fuzz_once()          quiet logs (stderr, no debug), SIGPIPE ignored;
 *   fuzz_client_open()   a socketpair whose client end already holds the
 *                        whole input and is shut for writing; what the
 *                        session writes is kept (up to FUZZ_KEEP bytes):
 *                        as root the session's send buffer is made big
 *                        enough (SO_SNDBUFFORCE) to hold it all, else a
 *                        drain thread reads it, so a chatty session never
 *                        blocks;
 *   fuzz_client_close()  closes the server end the session left open, joins
 *                        the drain thread; the replies stay in c->out;
 *   fuzz_memfd()         an fd on an anonymous file holding the bytes;
 *   fuzz_tmpdir()        a fresh directory on tmpfs (/dev/shm), else /tmp;
 *   fuzz_crlf_only()     1 when every CR is followed by LF and every LF
 *                        preceded by CR;
 *   fuzz_check_framing() the replies must be exactly what a strict reader
 *                        of the client's bytes expects (see there).
 * No sockets leave the process: no TIME_WAIT, no ports, no network.
 */
#ifndef FUZZ_H
#define FUZZ_H

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_KEEP	(256 * 1024)

struct fuzz_client {
	int		 fd;		/* the session's end */
	int		 peer;		/* ours: input written, replies read */
	pthread_t	 th;
	int		 threaded;
	char		*out;		/* replies, NUL-terminated (static) */
	size_t		 outlen;
};

static inline void
fuzz_once(void)
{
	static int done;

	if (done)
		return;
	done = 1;
	/* log lines go to a closed stderr: no /etc/localtime per line */
	(void)setenv("TZ", "UTC", 1);
	setvbuf(stderr, NULL, _IOFBF, 1 << 16);	/* log lines: few writes */
	log_init("fuzz", 1);
	log_set_debug(0);
	signal(SIGPIPE, SIG_IGN);
}

static inline void *
fuzz_drain(void *arg)
{
	struct fuzz_client *c = arg;
	char buf[16384];
	ssize_t n;

	while ((n = read(c->peer, buf, sizeof(buf))) > 0) {
		size_t take = (size_t)n;
		if (take > FUZZ_KEEP - c->outlen)
			take = FUZZ_KEEP - c->outlen;
		memcpy(c->out + c->outlen, buf, take);
		c->outlen += take;
	}
	c->out[c->outlen] = '\0';
	return NULL;
}

/* 0, or -1 when the input does not fit the socket buffer (skip it). */
static inline int
fuzz_client_open(struct fuzz_client *c, const uint8_t *data, size_t size)
{
	static char out[FUZZ_KEEP + 1];
	int sv[2], sz = 1 << 20, big = 8 << 20;
	size_t off = 0;

	memset(c, 0, sizeof(*c));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		abort();
	c->fd = sv[0];
	c->peer = sv[1];
	(void)setsockopt(c->peer, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	while (off < size) {
		ssize_t n = write(c->peer, data + off, size - off);
		if (n <= 0) {
			close(sv[0]);
			close(sv[1]);
			return -1;
		}
		off += (size_t)n;
	}
	if (shutdown(c->peer, SHUT_WR) != 0)
		abort();
	c->out = out;
	c->threaded = setsockopt(c->fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big)) != 0;
	if (c->threaded && pthread_create(&c->th, NULL, fuzz_drain, c) != 0)
		abort();
	return 0;
}

/* fd_closed: the session already closed c->fd. */
static inline void
fuzz_client_close(struct fuzz_client *c, int fd_closed)
{
	if (!fd_closed)
		close(c->fd);
	if (!c->threaded)
		(void)fuzz_drain(c);
	else if (pthread_join(c->th, NULL) != 0)
		abort();
	close(c->peer);
}

static inline void
fuzz_client_free(struct fuzz_client *c)
{
	c->out = NULL;
}

static inline int
fuzz_memfd(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz", MFD_CLOEXEC);
	size_t off = 0;

	if (fd < 0)
		abort();
	while (off < size) {
		ssize_t n = write(fd, data + off, size - off);
		if (n <= 0)
			abort();
		off += (size_t)n;
	}
	if (lseek(fd, 0, SEEK_SET) != 0)
		abort();
	return fd;
}

static inline void
fuzz_tmpdir(char *dir, size_t len, const char *name)
{
	snprintf(dir, len, "/dev/shm/%s.XXXXXX", name);
	if (mkdtemp(dir) != NULL)
		return;
	snprintf(dir, len, "/tmp/%s.XXXXXX", name);
	if (mkdtemp(dir) == NULL)
		abort();
}

static inline int
fuzz_crlf_only(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			return 0;
		if (p[i] == '\r' && (i + 1 >= n || p[i + 1] != '\n'))
			return 0;
	}
	return 1;
}

/* Next reply (all its lines) at *ro: its code, or -1 at the end. Aborts on
 * a reply line that is not "NNN[ -]text<CRLF>". */
static inline int
fuzz_reply_next(const char *o, size_t n, size_t *ro)
{
	while (*ro < n) {
		const char *l = o + *ro, *lf = memchr(l, '\n', n - *ro);
		size_t len;

		if (lf == NULL)
			abort();	/* a reply without its line end */
		len = (size_t)(lf - l) + 1;
		if (len < 6 || l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '9' ||
		    l[2] < '0' || l[2] > '9' || (l[3] != ' ' && l[3] != '-') ||
		    l[len - 2] != '\r' || memchr(l, '\r', len - 2) != NULL)
			abort();
		*ro += len;
		if (l[3] == ' ')
			return (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
	}
	return -1;
}

static inline size_t
fuzz_line_end(const uint8_t *in, size_t n, size_t i)
{
	const uint8_t *lf = memchr(in + i, '\n', n - i);

	return lf ? (size_t)(lf - in) + 1 : n;
}

/*
 * The SMTP framing oracle (against smuggling): walk the client's bytes as a
 * strict server must read them, in step with the replies it got. Every
 * command line (up to LF; an unterminated tail at EOF at most one) gets
 * exactly one reply; a 354 starts a message that ends only at a line "." CRLF whose
 * previous line ended in CRLF, and gets one reply; 221 or 421 end the
 * session (421 may follow any reply: too many errors). A server that ends
 * a message anywhere else answers the smuggled commands and the counts no
 * longer match: abort. Returns without checking at the first command that
 * starts with `stop` (e.g. "BDAT": its chunk is not line-framed), or when
 * the replies were cut at FUZZ_KEEP.
 */
static inline void
fuzz_check_framing(const uint8_t *in, size_t n, const char *o, size_t on,
    const char *stop)
{
	size_t i = 0, ro = 0;
	int code;

	if (getenv("FUZZ_DEBUG") != NULL)	/* show the replies when reproducing */
		fprintf(stderr, "--- replies:\n%.*s---\n", (int)on, o);
	if (on >= FUZZ_KEEP || fuzz_reply_next(o, on, &ro) != 220)
		return;		/* cut, or refused at connect */
	while (i < n) {
		size_t le = fuzz_line_end(in, n, i);

		if (stop != NULL && le - i >= strlen(stop) &&
		    strncasecmp((const char *)in + i, stop, strlen(stop)) == 0)
			return;
		i = le;
		if ((code = fuzz_reply_next(o, on, &ro)) < 0) {
			if (le == n && in[n - 1] != '\n')
				goto eof;	/* a tail without LF may go unanswered */
			abort();	/* a command line got no reply */
		}
		if (code == 354) {
			int prev_crlf = 1;

			for (;;) {
				if (i >= n)
					goto eof;	/* client gone mid-message: no reply */
				le = fuzz_line_end(in, n, i);
				if (prev_crlf && le - i == 3 && memcmp(in + i, ".\r\n", 3) == 0) {
					i = le;
					break;
				}
				prev_crlf = le - i >= 2 && in[le - 1] == '\n' && in[le - 2] == '\r';
				i = le;
			}
			if ((code = fuzz_reply_next(o, on, &ro)) < 0)
				abort();	/* a message got no reply */
		}
		if (code == 221 || code == 421)
			goto eof;
		{
			size_t peek = ro;
			if (fuzz_reply_next(o, on, &peek) == 421) {
				ro = peek;
				goto eof;
			}
		}
	}
eof:
	if (ro != on)
		abort();	/* replies to commands the client sent inside a message */
}

#endif

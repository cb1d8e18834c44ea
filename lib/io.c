/*
 * io — buffered line I/O with deadlines over a non-blocking socket, plain or
 * TLS. See io.h for the contract. The fd is put in blocking mode with
 * SO_RCVTIMEO/SO_SNDTIMEO set to io->timeout_ms, so the common case — wait
 * for the peer's next line — is one read() system call; a whole io_getline()
 * is further bounded by a deadline of timeout_ms from its start.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include <openssl/err.h>

#include "io.h"

#define IO_WCAP	16384

static long long
io_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
io_init(struct io *io, int fd, size_t rcap, int timeout_ms)
{
	int fl;

	memset(io, 0, sizeof(*io));
	io->fd = fd;
	io->timeout_ms = timeout_ms;
	io->rcap = rcap;
	io->wcap = IO_WCAP;
	io->rbuf = malloc(rcap);
	io->wbuf = malloc(io->wcap);
	if (io->rbuf == NULL || io->wbuf == NULL) {
		io_free(io);
		return -1;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || ((fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)) {
		io_free(io);
		return -1;
	}
	io->cur_timeout = -1;
	return 0;
}

/* Bound a blocking read or write on the socket by ms. The socket keeps a
 * timeout that is not longer than ms but within a factor of 4 of it: a
 * shorter one only wakes the caller's loop early (it goes on until its
 * deadline), so the timeouts of commands, data and the session deadline
 * do not cost two setsockopt calls each time they differ. Not a socket
 * (tests on pipes): no timeout. */
static void
io_timeouts(struct io *io, int ms)
{
	struct timeval tv;

	if (ms <= 0)
		ms = 1;
	if (io->cur_timeout > 0 && io->cur_timeout <= ms && io->cur_timeout >= ms / 4)
		return;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	if (setsockopt(io->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0 &&
	    setsockopt(io->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0)
		io->cur_timeout = ms;
}

void
io_free(struct io *io)
{
	if (io->ssl) {
		SSL_free(io->ssl);
		io->ssl = NULL;
	}
	free(io->rbuf);
	free(io->wbuf);
	io->rbuf = io->wbuf = NULL;
	io->rlen = io->wlen = io->roff = 0;
}

/* Wait for `events` until deadline: 1 ready, 0 timeout, -1 error. */
static int
io_poll(int fd, short events, long long deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };

	for (;;) {
		long long left = deadline - io_now();
		int r;

		if (left <= 0)
			return 0;
		r = poll(&pfd, 1, left > 0x7fffffff ? 0x7fffffff : (int)left);
		if (r > 0)
			return 1;
		if (r == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

/* One read into the free tail of rbuf. Returns bytes (>0), 0 on EOF, or
 * -1 with *st set (IO_TIMEOUT / IO_ERROR). */
static ssize_t
io_fill(struct io *io, long long deadline, enum io_status *st)
{
	if (io->roff > 0 && io->rlen > 0)
		memmove(io->rbuf, io->rbuf + io->roff, io->rlen);
	io->roff = 0;
	if (io->rlen >= io->rcap) {
		*st = IO_ERROR;
		return -1;
	}
	for (;;) {
		long long left = deadline - io_now();
		ssize_t n;

		if (left <= 0) {
			*st = IO_TIMEOUT;
			return -1;
		}
		/* the socket timeout is the per-step timeout (set once, not per
		 * read); the whole call is bounded by the deadline checked above */
		io_timeouts(io, io->timeout_ms);
		if (io->ssl) {
			int r, e;
			ERR_clear_error();
			r = SSL_read(io->ssl, io->rbuf + io->rlen, (int)(io->rcap - io->rlen));
			if (r > 0)
				n = r;
			else {
				e = SSL_get_error(io->ssl, r);
				if (e == SSL_ERROR_ZERO_RETURN)
					return 0;
				if (e == SSL_ERROR_SYSCALL && r == 0)
					return 0;	/* unexpected EOF: treat as close */
				if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ||
				    e == SSL_ERROR_SYSCALL) && (errno == EAGAIN || errno == EWOULDBLOCK))
					continue;	/* the socket's timeout: on to the deadline */
				if (e == SSL_ERROR_SYSCALL && errno == EINTR)
					continue;
				*st = IO_ERROR;
				return -1;
			}
		} else
			n = read(io->fd, io->rbuf + io->rlen, io->rcap - io->rlen);
		if (n > 0) {
			io->rlen += (size_t)n;
			io->rbytes += (unsigned long long)n;
			return n;
		}
		if (n == 0)
			return 0;
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			continue;	/* a signal, or the socket's timeout: on to the deadline */
		*st = IO_ERROR;
		return -1;
	}
}

enum io_status
io_getline(struct io *io, const char **line, size_t *len)
{
	long long deadline = io_now() + io->timeout_ms;
	size_t scanned = 0;

	for (;;) {
		char *start = io->rbuf + io->roff;
		char *nl = memchr(start + scanned, '\n', io->rlen - scanned);
		enum io_status st = IO_ERROR;
		ssize_t n;

		if (nl != NULL) {
			*line = start;
			*len = (size_t)(nl - start) + 1;
			io->roff += *len;
			io->rlen -= *len;
			return IO_OK;
		}
		scanned = io->rlen;
		if (io->rlen == io->rcap) {
			/* full buffer, no LF: hand out a chunk, keep a trailing CR */
			size_t take = io->rlen;
			if (take > 1 && start[take - 1] == '\r')
				take--;
			*line = start;
			*len = take;
			io->roff += take;
			io->rlen -= take;
			return IO_PARTIAL;
		}
		if (io->wlen > 0 && io_flush(io) != 0)
			return IO_ERROR;
		n = io_fill(io, deadline, &st);
		if (n < 0)
			return st;
		if (n == 0) {
			if (io->rlen > 0) {
				*line = io->rbuf + io->roff;
				*len = io->rlen;
				io->roff += io->rlen;
				io->rlen = 0;
				return IO_PARTIAL;
			}
			return IO_EOF;
		}
	}
}

enum io_status
io_getbytes(struct io *io, size_t want, const char **p, size_t *got)
{
	long long deadline = io_now() + io->timeout_ms;

	while (io->rlen == 0) {
		enum io_status st = IO_ERROR;
		ssize_t n;

		if (io->wlen > 0 && io_flush(io) != 0)
			return IO_ERROR;
		n = io_fill(io, deadline, &st);
		if (n < 0)
			return st;
		if (n == 0)
			return IO_EOF;
	}
	*p = io->rbuf + io->roff;
	*got = io->rlen < want ? io->rlen : want;
	io->roff += *got;
	io->rlen -= *got;
	if (io->rlen == 0)
		io->roff = 0;
	return IO_OK;
}

size_t
io_pending(const struct io *io)
{
	return io->rlen;
}

const char *
io_peek(const struct io *io, size_t *n)
{
	*n = io->rlen;
	return io->rbuf + io->roff;
}

int
io_preload(struct io *io, const void *p, size_t n)
{
	if (io->roff > 0 && io->rlen > 0)
		memmove(io->rbuf, io->rbuf + io->roff, io->rlen);
	io->roff = 0;
	if (n > io->rcap - io->rlen)
		return -1;
	memmove(io->rbuf + n, io->rbuf, io->rlen);
	memcpy(io->rbuf, p, n);
	io->rlen += n;
	return 0;
}

void
io_discard_input(struct io *io)
{
	io->roff = io->rlen = 0;
}

int
io_flush(struct io *io)
{
	long long deadline = io_now() + io->timeout_ms;
	size_t off = 0;

	while (off < io->wlen) {
		long long left = deadline - io_now();
		ssize_t n;

		if (left <= 0)
			goto fail;
		io_timeouts(io, io->timeout_ms);
		if (io->ssl) {
			int r;
			ERR_clear_error();
			r = SSL_write(io->ssl, io->wbuf + off, (int)(io->wlen - off));
			if (r <= 0) {
				int e = SSL_get_error(io->ssl, r);
				if (e == SSL_ERROR_SYSCALL && errno == EINTR)
					continue;
				if ((e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ||
				    e == SSL_ERROR_SYSCALL) && (errno == EAGAIN || errno == EWOULDBLOCK))
					continue;	/* same buffer again, until the deadline */
				goto fail;
			}
			n = r;
		} else {
			n = send(io->fd, io->wbuf + off, io->wlen - off, MSG_NOSIGNAL);
			if (n < 0 && errno == ENOTSOCK)
				n = write(io->fd, io->wbuf + off, io->wlen - off);
		}
		if (n > 0) {
			off += (size_t)n;
			io->wbytes += (unsigned long long)n;
			continue;
		}
		if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;	/* the deadline decides, above */
		goto fail;
	}
	io->wlen = 0;
	return 0;
fail:
	io->wlen = 0;
	return -1;
}

int
io_write(struct io *io, const void *p, size_t len)
{
	const char *s = p;

	while (len > 0) {
		size_t room = io->wcap - io->wlen, take;

		if (room == 0) {
			if (io_flush(io) != 0)
				return -1;
			continue;
		}
		take = len < room ? len : room;
		memcpy(io->wbuf + io->wlen, s, take);
		io->wlen += take;
		s += take;
		len -= take;
	}
	return 0;
}

int
io_printf(struct io *io, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n >= sizeof(buf))
		n = (int)sizeof(buf) - 1;
	return io_write(io, buf, (size_t)n);
}

int
io_wait_readable(struct io *io, int timeout_ms)
{
	if (io->rlen > 0 || (io->ssl && SSL_pending(io->ssl) > 0))
		return 1;
	return io_poll(io->fd, POLLIN, io_now() + timeout_ms);
}

static int
io_handshake(struct io *io, int server)
{
	long long deadline = io_now() + io->timeout_ms;

	for (;;) {
		int r, e;

		if (io_now() >= deadline)
			return -1;
		io_timeouts(io, io->timeout_ms);
		ERR_clear_error();
		r = server ? SSL_accept(io->ssl) : SSL_connect(io->ssl);
		if (r == 1)
			return 0;
		e = SSL_get_error(io->ssl, r);
		if (e == SSL_ERROR_SYSCALL && errno == EINTR)
			continue;
		if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ||
		    e == SSL_ERROR_SYSCALL) && (errno == EAGAIN || errno == EWOULDBLOCK))
			continue;	/* the socket's timeout: on to the deadline */
		return -1;
	}
}

int
io_starttls_server(struct io *io, SSL_CTX *ctx)
{
	io_discard_input(io);
	if (io->wlen > 0 && io_flush(io) != 0)
		return -1;
	io->ssl = SSL_new(ctx);
	if (io->ssl == NULL || SSL_set_fd(io->ssl, io->fd) != 1)
		return -1;
	return io_handshake(io, 1);
}

int
io_starttls_client(struct io *io, SSL_CTX *ctx, const char *sni)
{
	if (io->wlen > 0 && io_flush(io) != 0)
		return -1;
	io_discard_input(io);
	io->ssl = SSL_new(ctx);
	if (io->ssl == NULL || SSL_set_fd(io->ssl, io->fd) != 1)
		return -1;
	if (sni != NULL && *sni) {
		if (SSL_set_tlsext_host_name(io->ssl, sni) != 1)
			return -1;
		if (SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER) {
			if (SSL_set1_host(io->ssl, sni) != 1)
				return -1;
		}
	}
	return io_handshake(io, 0);
}

/*
 * io — buffered, line-oriented I/O on one socket, plain or TLS, where every
 * blocking step has a deadline.
 *
 * The reader hands out lines, never "what one read returned": pipelined
 * commands stay in the buffer and are served in order. A line is at most
 * the buffer's capacity; past that io_getline returns IO_PARTIAL with a
 * chunk, so the caller decides (a command: 500 and skip; DATA: stream on).
 * A trailing CR at the end of a partial chunk is held back so that CR LF is
 * never split across two chunks.
 *
 * Output is buffered; io_flush() writes it. Servers call io_flush() before
 * every blocking read when no complete line is buffered (RFC 2920: replies
 * to a pipelined group go out together).
 *
 * The struct io owns its buffers and the SSL object, not the fd: io_free()
 * releases buffers and SSL; the caller closes the fd.
 */
#ifndef LIB_IO_H
#define LIB_IO_H

#include <stddef.h>
#include <sys/types.h>
#include <openssl/ssl.h>

enum io_status {
	IO_OK,		/* complete line (ends with LF) */
	IO_PARTIAL,	/* buffer full with no LF: a chunk of a long line */
	IO_EOF,		/* peer closed (any unterminated rest is returned as IO_OK=no) */
	IO_TIMEOUT,
	IO_ERROR,
};

struct io {
	int	 fd;
	SSL	*ssl;
	char	*rbuf;
	size_t	 rcap, roff, rlen;	/* data is rbuf[roff .. roff+rlen) */
	char	*wbuf;
	size_t	 wcap, wlen;
	int	 timeout_ms;		/* per blocking step */
	int	 cur_timeout;		/* SO_RCVTIMEO in force (ms), -1 unknown */
	unsigned long long rbytes, wbytes;
};

int  io_init(struct io *io, int fd, size_t rcap, int timeout_ms);
void io_free(struct io *io);

/* Next line. *line points into the buffer, valid until the next io call;
 * *len includes the LF (IO_OK). Returns IO_EOF at end of stream with no
 * pending bytes; pending bytes without LF at EOF are returned as
 * IO_PARTIAL first. */
enum io_status io_getline(struct io *io, const char **line, size_t *len);

/* Read up to `want` raw bytes (for BDAT): *p into the buffer, *got > 0. */
enum io_status io_getbytes(struct io *io, size_t want, const char **p, size_t *got);

/* Bytes already buffered and not consumed (pipelining detection). */
size_t io_pending(const struct io *io);
/* Those bytes themselves (*n of them), without consuming them. */
const char *io_peek(const struct io *io, size_t *n);
/* Put bytes already read elsewhere (by another process) in front of the
 * input. 0, or -1 if they do not fit. */
int  io_preload(struct io *io, const void *p, size_t n);
/* Drop everything buffered (plaintext pipelined after STARTTLS). */
void io_discard_input(struct io *io);

int  io_write(struct io *io, const void *p, size_t len);	/* buffered */
int  io_printf(struct io *io, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int  io_flush(struct io *io);					/* 0 / -1 */

/* Wait until the socket is readable or the deadline passes: 1 readable,
 * 0 timeout, -1 error. Counts buffered data as readable. */
int  io_wait_readable(struct io *io, int timeout_ms);

/* TLS on an established connection. Server: discards buffered plaintext
 * first. Client: sni may be NULL. 0 / -1 (reason logged by caller via
 * tls_last_error()). */
int  io_starttls_server(struct io *io, SSL_CTX *ctx);
int  io_starttls_client(struct io *io, SSL_CTX *ctx, const char *sni);

#endif

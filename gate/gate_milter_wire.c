/*
 * gate_milter_wire.c — the milter protocol on the wire: packet buffers,
 * socket I/O with deadlines, packet reading with its limits, field
 * extraction, and opening a milter (connect, option negotiation with the
 * macro lists a milter asks for). Owns no state beyond what the caller's
 * struct gm_milter holds.
 *
 * Wire format: every packet is a 4-byte big-endian length (command byte
 * plus data), the command byte, the data. Strings are NUL-terminated.
 *
 * The only file with connect/poll/recv/send: tests/fuzz/fuzz_milter.c
 * replaces them here by macros.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "gate_milter.h"
#include "log.h"
#include "smtp.h"
#include "gate_milter_int.h"

/* ---- small helpers ---------------------------------------------------- */

long long
gm_now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


int
gm_buf_add(struct gm_buf *b, const void *p, size_t n)
{
	if (b->oom)
		return -1;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		unsigned char *np;

		while (cap < b->len + n)
			cap *= 2;
		if ((np = realloc(b->p, cap)) == NULL) {
			b->oom = 1;
			return -1;
		}
		b->p = np;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

int
gm_buf_str(struct gm_buf *b, const char *s)
{
	return gm_buf_add(b, s, strlen(s) + 1);
}

int
gm_buf_u32(struct gm_buf *b, uint32_t v)
{
	uint32_t n = htonl(v);

	return gm_buf_add(b, &n, 4);
}

void
gm_buf_reset(struct gm_buf *b)
{
	b->len = 0;
	b->oom = 0;
}

/* Append one packet (cmd + data) to b. */
int
gm_buf_packet(struct gm_buf *b, char cmd, const void *data, size_t len)
{
	unsigned char c = (unsigned char)cmd;

	if (len + 1 > UINT32_MAX)
		return -1;
	if (gm_buf_u32(b, (uint32_t)(len + 1)) != 0 || gm_buf_add(b, &c, 1) != 0 ||
	    gm_buf_add(b, data, len) != 0)
		return -1;
	return 0;
}

/* ---- socket I/O with deadlines -------------------------------------- */

static enum gm_io
gm_wait(int fd, short events, long long deadline)
{
	for (;;) {
		long long left = deadline - gm_now_ms();
		struct pollfd pfd = { .fd = fd, .events = events };
		int r;

		if (left <= 0)
			return GM_IO_TIMEOUT;
		r = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (r > 0)
			return GM_IO_OK;
		if (r < 0 && errno != EINTR)
			return GM_IO_ERR;
	}
}

/*
 * libmilter writes each reply packet on its own; with Nagle on its side and
 * delayed ACKs on ours, a second packet (e.g. "continue" after "insert
 * header") would wait 40 ms for our ACK. Quick ACKs before waiting for a
 * reply (Linux resets the mode by itself; setting it also sends an ACK that
 * is due). inet: only.
 */
static void
gm_quickack(int fd, int tcp)
{
	int one = 1;

	if (tcp && setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one) != 0)
		log_debug("milter TCP_QUICKACK: %s", strerror(errno));
}

/*
 * Write wp or read into rp (the other is NULL): n bytes by the deadline.
 * The system call comes first and poll() only when it would block (a
 * reply is often there already). Reads go through `in` when given: small
 * reads are served from it and refill it with what the socket holds, so a
 * packet's length, command and data take one recv(), not three. tcp: ask
 * for a quick ACK before waiting (see gm_read_packet).
 */
static enum gm_io
gm_xfer(int fd, struct gm_in *in, int tcp, const unsigned char *wp,
    unsigned char *rp, size_t n, long long deadline)
{
	while (n > 0) {
		ssize_t r;
		enum gm_io w;

		if (rp && in && in->off < in->len) {
			size_t k = in->len - in->off < n ? in->len - in->off : n;

			memcpy(rp, in->b + in->off, k);
			in->off += k;
			rp += k;
			n -= k;
			continue;
		}
		if (wp)
			r = send(fd, wp, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		else if (in && n < sizeof in->b) {
			r = recv(fd, in->b, sizeof in->b, MSG_DONTWAIT);
			if (r > 0) {
				in->off = 0;
				in->len = (size_t)r;
				continue;
			}
		} else
			r = recv(fd, rp, n, MSG_DONTWAIT);
		if (r == 0 && rp)
			return GM_IO_EOF;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return GM_IO_ERR;
			if (rp)
				gm_quickack(fd, tcp);
			if ((w = gm_wait(fd, wp ? POLLOUT : POLLIN, deadline)) != GM_IO_OK)
				return w;
			continue;
		}
		if (wp)
			wp += r;
		else
			rp += r;
		n -= (size_t)r;
	}
	return GM_IO_OK;
}

enum gm_io
gm_write_all(int fd, const unsigned char *p, size_t n, long long deadline)
{
	return gm_xfer(fd, NULL, 0, p, NULL, n, deadline);
}

/*
 * Read one packet from fd (through in, when not NULL): *cmd, data into buf
 * (room for max bytes plus a NUL), *len. Returns NULL, or why it failed.
 */
const char *
gm_read_packet(int fd, struct gm_in *in, int tcp, long long deadline,
    unsigned char *buf, size_t max, unsigned char *cmd, size_t *len)
{
	unsigned char hdr[4];
	uint32_t n;
	enum gm_io r = GM_IO_OK;

	/* nothing read ahead: the reply to what was just sent is seldom
	 * there yet, so wait first rather than try a read that would block */
	if (in != NULL && in->off == in->len) {
		gm_quickack(fd, tcp);
		r = gm_wait(fd, POLLIN, deadline);
	}
	if (r == GM_IO_OK)
		r = gm_xfer(fd, in, tcp, NULL, hdr, 4, deadline);
	if (r == GM_IO_EOF)
		return "connection closed";
	if (r == GM_IO_TIMEOUT)
		return "timeout";
	if (r != GM_IO_OK)
		return "read error";
	n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
	if (n == 0)
		return "bad packet length 0";
	if (n - 1 > max)
		return "packet larger than the negotiated maximum";
	r = gm_xfer(fd, in, tcp, NULL, cmd, 1, deadline);
	if (r == GM_IO_OK && n > 1)
		r = gm_xfer(fd, in, tcp, NULL, buf, n - 1, deadline);
	if (r == GM_IO_EOF)
		return "truncated packet";
	if (r == GM_IO_TIMEOUT)
		return "timeout";
	if (r != GM_IO_OK)
		return "read error";
	*len = n - 1;
	buf[*len] = 0;
	return NULL;
}

/*
 * Quick ACKs only for a packet after the first of a reply (modifications
 * then `continue`, progress): the milter's first packet goes out at once,
 * our next command carries the ACK of its reply.
 */
const char *
gm_conn_read(struct gm_conn *c, int more, long long deadline, unsigned char *cmd,
    size_t *len)
{
	return gm_read_packet(c->fd, &c->in, c->tcp && more, deadline, c->rbuf,
	    GM_DATA_MAX, cmd, len);
}

/* Take a NUL-terminated string at *off from data; NULL when there is none. */
const char *
gm_take_str(const unsigned char *data, size_t len, size_t *off)
{
	const unsigned char *p = data + *off, *z;

	if (*off >= len)
		return NULL;
	if ((z = memchr(p, 0, len - *off)) == NULL)
		return NULL;
	*off += (size_t)(z - p) + 1;
	return (const char *)p;
}

int
gm_take_u32(const unsigned char *data, size_t len, size_t *off, uint32_t *v)
{
	if (*off > len || len - *off < 4)
		return -1;
	*v = (uint32_t)data[*off] << 24 | (uint32_t)data[*off + 1] << 16 |
	    (uint32_t)data[*off + 2] << 8 | data[*off + 3];
	*off += 4;
	return 0;
}

/* Connect and negotiate. 0, or -1 with *why. */
int
gm_open(struct gate_milter_session *s, struct gm_milter *m, const char **why)
{
	const struct gate_milter_conf *c = m->conf;
	long long deadline;
	unsigned char rc;
	size_t len, off = 0;
	uint32_t ver, act, proto, offer[3];

	if ((m->c.rbuf = malloc(GM_DATA_MAX + 1)) == NULL) {
		*why = "out of memory";
		return -1;
	}
	if (c->family == AF_UNIX) {
		struct sockaddr_un sun;

		memset(&sun, 0, sizeof sun);
		sun.sun_family = AF_UNIX;
		snprintf(sun.sun_path, sizeof sun.sun_path, "%s", c->path);
		/* non-blocking: a full backlog must not block the session */
		m->c.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (m->c.fd < 0 || connect(m->c.fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
			*why = errno == ENOENT ? "no such socket" :
			    errno == ECONNREFUSED ? "connection refused" :
			    errno == EAGAIN ? "milter busy (backlog full)" : "connect failed";
			return -1;
		}
	} else {
		m->c.fd = net_connect(&c->ep, (int)c->connect_timeout * 1000);
		if (m->c.fd < 0) {
			*why = errno == ETIMEDOUT ? "connect timeout" :
			    errno == ECONNREFUSED ? "connection refused" : "connect failed";
			return -1;
		}
		m->c.tcp = 1;
		if (fcntl(m->c.fd, F_SETFD, FD_CLOEXEC) != 0)
			log_debug("%s milter=%s FD_CLOEXEC: %s", s->id, c->spec,
			    strerror(errno));
		{
			int one = 1;

			/* every command goes out in one write: no need to wait */
			if (setsockopt(m->c.fd, IPPROTO_TCP, TCP_NODELAY, &one,
			    sizeof one) != 0)
				log_debug("%s milter=%s TCP_NODELAY: %s", s->id,
				    c->spec, strerror(errno));
		}
	}
	deadline = gm_now_ms() + (long long)c->command_timeout * 1000;
	/* s->pay is left alone: it may hold the event being sent */
	gm_buf_reset(&s->out);
	offer[0] = htonl(GM_VERSION);
	offer[1] = htonl(GM_ACTIONS);
	offer[2] = htonl(GM_PROTO);
	if (gm_buf_packet(&s->out, 'O', offer, sizeof offer) != 0) {
		*why = "out of memory";
		return -1;
	}
	if (gm_write_all(m->c.fd, s->out.p, s->out.len, deadline) != GM_IO_OK) {
		*why = "write error in negotiation";
		return -1;
	}
	if ((*why = gm_conn_read(&m->c, 0, deadline, &rc, &len)) != NULL)
		return -1;
	if (rc != 'O') {
		*why = "unexpected reply to option negotiation";
		return -1;
	}
	if (gm_take_u32(m->c.rbuf, len, &off, &ver) != 0 ||
	    gm_take_u32(m->c.rbuf, len, &off, &act) != 0 ||
	    gm_take_u32(m->c.rbuf, len, &off, &proto) != 0) {
		*why = "short option negotiation";
		return -1;
	}
	if (ver < 2 || ver > GM_VERSION) {
		*why = "unsupported protocol version";
		return -1;
	}
	if ((act & GM_ACTIONS) != act) {
		*why = "milter asks for actions we do not offer";
		return -1;
	}
	if ((proto & GM_PROTO) != proto)
		log_debug("%s milter=%s protocol bits 0x%x beyond offer 0x%x ignored",
		    s->id, c->spec, proto, GM_PROTO);
	m->c.version = ver;
	m->c.actions = act;
	m->c.proto = proto & GM_PROTO;
	/* SETSYMLIST: (stage u32, list string)* */
	while (off < len) {
		uint32_t st;
		const char *list;

		if (gm_take_u32(m->c.rbuf, len, &off, &st) != 0 ||
		    (list = gm_take_str(m->c.rbuf, len, &off)) == NULL) {
			*why = "malformed macro list";
			return -1;
		}
		if (!(act & F_SETSYMLIST)) {
			*why = "macro list without SETSYMLIST";
			return -1;
		}
		if (st >= M_NSTAGES || strlen(list) > GM_MACRO_LIST_MAX) {
			log_warn("%s milter=%s ignoring macro list for stage %u",
			    s->id, c->spec, st);
			continue;
		}
		free(m->c.macros[st]);
		if ((m->c.macros[st] = strdup(list)) == NULL) {
			*why = "out of memory";
			return -1;
		}
	}
	log_debug("%s milter=%s version=%u actions=0x%x protocol=0x%x", s->id,
	    c->spec, ver, act, m->c.proto);
	m->state = GS_READY;
	return 0;
}

/*
 * relay_spool_read — the readers of our own spool files: queue files
 * (relay_spool_read) and state files (relay_state_load).
 *
 * Files we wrote ourselves are still input (the relay user, or a torn
 * write, may have changed them): every number is parsed digits-only with
 * strtoull and checked against the file before it sizes an allocation or
 * an offset; anything else makes the file "corrupt" (the caller moves it
 * to corrupt/), never a crash. See relay_spool.h for the formats.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "config.h"
#include "relay_spool.h"

#define HDR_MAX		(2 * 1024 * 1024)	/* envelope records */
#define END_LEN		21			/* "end %016llx\n" */

static int
parse_ll(const char *s, long long *v)
{
	unsigned long long u;
	const char *why;

	if (conf_parse_uint(s, &u, &why) != 0 || u > (1ULL << 62))
		return -1;
	*v = (long long)u;
	return 0;
}

static int
add_rcpt(struct relay_msg *m, const char *addr)
{
	struct relay_rcpt *nv;

	if (m->nrcpts >= RELAY_RCPT_MAX)
		return -1;
	nv = realloc(m->rcpts, (m->nrcpts + 1) * sizeof(*nv));
	if (nv == NULL)
		return -1;
	m->rcpts = nv;
	memset(&m->rcpts[m->nrcpts], 0, sizeof(*nv));
	m->rcpts[m->nrcpts].addr = strdup(addr);
	if (m->rcpts[m->nrcpts].addr == NULL)
		return -1;
	m->nrcpts++;
	return 0;
}

int
relay_spool_read(int fd, struct relay_msg *m, const char **why)
{
	struct stat st;
	char endrec[END_LEN + 1], *hdr = NULL, *p, *nl;
	unsigned long long t;
	size_t hlen;
	int got_data = 0;

	memset(m, 0, sizeof(*m));
	if (fstat(fd, &st) != 0) {
		*why = "fstat failed";
		return -1;
	}
	if (st.st_size < END_LEN + 10) {
		*why = "file too short";
		return -1;
	}
	if (relay_spool_pread(fd, endrec, END_LEN, st.st_size - END_LEN) != 0) {
		*why = "read error";
		return -1;
	}
	endrec[END_LEN] = '\0';
	if (memcmp(endrec, "end ", 4) != 0 || endrec[END_LEN - 1] != '\n' ||
	    strspn(endrec + 4, "0123456789abcdef") != 16 ||
	    (t = strtoull(endrec + 4, NULL, 16)) >= (unsigned long long)st.st_size) {
		*why = "missing end record (torn file)";
		return -1;
	}
	/* the envelope is small unless there are many recipients: read 64K
	 * first, and up to HDR_MAX only if the data record is not in it */
	hlen = st.st_size < 65536 ? (size_t)st.st_size : 65536;
	for (;;) {
		size_t most = st.st_size < HDR_MAX ? (size_t)st.st_size : HDR_MAX;
		hdr = malloc(hlen + 1);
		if (hdr == NULL || relay_spool_pread(fd, hdr, hlen, 0) != 0) {
			*why = "read error";
			goto bad;
		}
		if (memmem(hdr, hlen, "\ndata\n", 6) != NULL || hlen >= most)
			break;
		free(hdr);
		hdr = NULL;
		hlen = most;
	}
	hdr[hlen] = '\0';
	if (strncmp(hdr, "TWQ1\n", 5) != 0) {
		*why = "bad magic";
		goto bad;
	}
	for (p = hdr + 5; !got_data; p = nl + 1) {
		long long v;
		nl = memchr(p, '\n', hlen - (size_t)(p - hdr));
		if (nl == NULL) {
			*why = "envelope too long or unterminated";
			goto bad;
		}
		*nl = '\0';
		if (strncmp(p, "id ", 3) == 0) {
			if (!relay_spool_valid_id(p + 3)) {
				*why = "bad id";
				goto bad;
			}
			memcpy(m->id, p + 3, RELAY_ID_LEN + 1);
		} else if (strncmp(p, "time ", 5) == 0) {
			if (parse_ll(p + 5, &v) != 0) {
				*why = "bad time";
				goto bad;
			}
			m->arrival = (time_t)v;
		} else if (strncmp(p, "from ", 5) == 0 || strcmp(p, "from") == 0) {
			free(m->from);
			m->from = strdup(p[4] ? p + 5 : "");
			if (m->from == NULL)
				goto oom;
		} else if (strncmp(p, "client ", 7) == 0) {
			free(m->client);
			m->client = strdup(p + 7);
			if (m->client == NULL)
				goto oom;
		} else if (strcmp(p, "utf8") == 0) {
			m->utf8 = 1;
		} else if (strcmp(p, "8bit") == 0) {
			m->eightbit = 1;
		} else if (strncmp(p, "ret ", 4) == 0) {
			if (strcmp(p + 4, "FULL") != 0 && strcmp(p + 4, "HDRS") != 0) {
				*why = "bad ret";
				goto bad;
			}
			m->ret = p[4] == 'F' ? RELAY_RET_FULL : RELAY_RET_HDRS;
		} else if (strncmp(p, "envid ", 6) == 0) {
			if (!relay_dsn_xtext_ok(p + 6, 100)) {
				*why = "bad envid";
				goto bad;
			}
			free(m->envid);
			if ((m->envid = strdup(p + 6)) == NULL)
				goto oom;
		} else if (strncmp(p, "notify ", 7) == 0) {
			if (m->nrcpts == 0 ||
			    relay_dsn_notify_parse(p + 7, &m->rcpts[m->nrcpts - 1].notify) != 0) {
				*why = "bad notify";
				goto bad;
			}
		} else if (strncmp(p, "orcpt ", 6) == 0) {
			struct relay_rcpt *r = m->nrcpts ? &m->rcpts[m->nrcpts - 1] : NULL;
			if (r == NULL || !relay_dsn_orcpt_ok(p + 6)) {
				*why = "bad orcpt";
				goto bad;
			}
			free(r->orcpt);
			if ((r->orcpt = strdup(p + 6)) == NULL)
				goto oom;
		} else if (strncmp(p, "rcpt ", 5) == 0) {
			if (add_rcpt(m, p + 5) != 0) {
				*why = "too many recipients";
				goto bad;
			}
		} else if (strcmp(p, "data") == 0) {
			got_data = 1;
			m->body_off = (off_t)(nl + 1 - hdr);
		} else {
			*why = "unknown envelope record";
			goto bad;
		}
	}
	if (m->id[0] == '\0' || m->from == NULL || m->nrcpts == 0 || m->arrival == 0) {
		*why = "incomplete envelope";
		goto bad;
	}
	if ((off_t)t < m->body_off) {
		*why = "trailer before body";
		goto bad;
	}
	m->body_len = (off_t)t - m->body_off;
	/* trailer: optional 8bit and dkim records between T and the end record */
	{
		size_t tl = (size_t)(st.st_size - END_LEN - (off_t)t);
		char *tr;
		if (tl >= 5) {
			char r8[5];
			if (relay_spool_pread(fd, r8, 5, (off_t)t) != 0) {
				*why = "read error";
				goto bad;
			}
			if (memcmp(r8, "8bit\n", 5) == 0) {
				m->eightbit = 1;
				t += 5;
				tl -= 5;
			}
		}
		if (tl > 0) {
			if (tl > 65536) {
				*why = "trailer too long";
				goto bad;
			}
			tr = malloc(tl + 1);
			if (tr == NULL)
				goto oom;
			if (relay_spool_pread(fd, tr, tl, (off_t)t) != 0) {
				free(tr);
				*why = "read error";
				goto bad;
			}
			tr[tl] = '\0';
			/* our own file, still input: the length is parsed
			 * digits-only and checked against what is there
			 * before it sizes anything ("dkim -1" must not wrap) */
			unsigned long long dl = 0;
			const char *perr;
			char *e = memchr(tr, '\n', tl);
			if (e != NULL)
				*e = '\0';
			if (strncmp(tr, "dkim ", 5) != 0 || e == NULL ||
			    conf_parse_uint(tr + 5, &dl, &perr) != 0 || dl >= tl ||
			    (size_t)(e - tr) + 1 + dl + 1 != tl || tr[tl - 1] != '\n') {
				free(tr);
				*why = "bad trailer";
				goto bad;
			}
			m->dkim = malloc(dl + 1);
			if (m->dkim == NULL) {
				free(tr);
				goto oom;
			}
			memcpy(m->dkim, e + 1, dl);
			m->dkim[dl] = '\0';
			m->dkim_len = dl;
			free(tr);
		}
	}
	free(hdr);
	return 0;
oom:
	*why = "out of memory";
bad:
	free(hdr);
	relay_msg_free(m);
	return -1;
}

int
relay_state_load(const char *dir, struct relay_msg *m)
{
	char p[4096], *buf = NULL, *line, *save = NULL;
	struct stat st;
	int fd, ok = 0;

	m->attempts = 0;
	m->next_attempt = 0;
	m->warned = m->notified = 0;
	if (relay_pathf(p, sizeof(p), "%s/state/%s", dir, m->id) != 0)
		return -1;
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (fstat(fd, &st) != 0 || st.st_size > 4 * 1024 * 1024 ||
	    (buf = malloc((size_t)st.st_size + 1)) == NULL ||
	    relay_spool_pread(fd, buf, (size_t)st.st_size, 0) != 0) {
		free(buf);
		(void)close(fd);
		return -1;
	}
	(void)close(fd);	/* read-only: nothing to lose */
	buf[st.st_size] = '\0';
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		long long v;
		if (strncmp(line, "attempts ", 9) == 0 && parse_ll(line + 9, &v) == 0 &&
		    v <= 1000000)
			m->attempts = (unsigned)v;
		else if (strncmp(line, "next ", 5) == 0 && parse_ll(line + 5, &v) == 0)
			m->next_attempt = (time_t)v;
		else if (strcmp(line, "warned 1") == 0)
			m->warned = 1;
		else if (strcmp(line, "notified 1") == 0)
			m->notified = 1;
		else if (strncmp(line, "r ", 2) == 0) {
			char num[16], st_name[16];
			int off = 0;
			unsigned long long idx;
			const char *why;
			if (sscanf(line + 2, "%15s %15s %n", num, st_name, &off) < 2 ||
			    conf_parse_uint(num, &idx, &why) != 0 || idx >= m->nrcpts)
				continue;
			struct relay_rcpt *r = &m->rcpts[idx];
			r->status = strcmp(st_name, "sent") == 0 ? RELAY_R_SENT :
			    strcmp(st_name, "bounced") == 0 ? RELAY_R_BOUNCED : RELAY_R_PENDING;
			free(r->reply);
			r->reply = off > 0 && line[2 + off] ? strdup(line + 2 + off) : NULL;
		} else if (strcmp(line, "end") == 0)
			ok = 1;
	}
	free(buf);
	return ok ? 0 : -1;
}


/*
 * milter_sess.c — sessions of an MTA that replays: Stalwart opens a new
 * milter connection for every enabled stage and replays the SMTP session
 * so far on it (CONNECT, HELO, MAIL, every recipient accepted so far,
 * then the message). Without memory across those connections one message
 * with N recipients would be counted 4+N times as a connection, 2+N times
 * as a message and N(N+1)/2+N times as recipients, and SPF and DNSBL
 * evaluated 2+N times.
 *
 * The table remembers, per "{client_addr} {client_port}" key: that the
 * connection was counted and passed the connect checks (a session refused
 * there is checked again on its next connection: Stalwart lets a client
 * retry a refused EHLO) and its access/DNSWL verdict; the open
 * transaction (sender, SPF result, recipients decided: passed, or
 * greylisted with the refusal still owed). An entry lives 15 minutes
 * after its last use (a later SMTP session from the same address and
 * port within that time is taken for the same one: it is then not
 * counted as a connection; its transactions are). At most
 * SESS_MAX entries; beyond that callers count as for a plain MTA.
 *
 * Thread safety: one mutex over the table; every call copies results out.
 * Owner: main() creates the table (milter_sess_new) and frees it after
 * the last session thread has ended.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "milter.h"

#define SESS_BUCKETS	1024
#define SESS_MAX	50000
#define SESS_TTL	(15 * 60)
#define SESS_RCPT_MAX	1000	/* recipients remembered per transaction */

struct sess_rcpt {
	char			*addr;
	int			 owed;
	struct policy_result	 res;	/* the refusal, when owed */
};

struct sess {
	struct sess		*next;
	char			 key[96];
	time_t			 seen;
	struct milter_sess_conn	 conn;
	int			 in_txn, spf_done;
	enum policy_spf_result	 spf;
	char			 from[SMTP_PATH_MAX + 1];
	struct sess_rcpt	*rcpts;
	size_t			 nrcpt, cap;
};

struct milter_sessions {
	pthread_mutex_t		 mu;
	struct sess		*b[SESS_BUCKETS];
	size_t			 n;
};

static unsigned
sess_hash(const char *k)
{
	unsigned h = 2166136261u;

	for (; *k; k++)
		h = (h ^ (unsigned char)*k) * 16777619u;
	return h % SESS_BUCKETS;
}

static void
sess_txn_clear(struct sess *s)
{
	for (size_t i = 0; i < s->nrcpt; i++)
		free(s->rcpts[i].addr);
	free(s->rcpts);
	s->rcpts = NULL;
	s->nrcpt = s->cap = 0;
	s->in_txn = s->spf_done = 0;
	s->from[0] = 0;
}

struct milter_sessions *
milter_sess_new(void)
{
	struct milter_sessions *t = calloc(1, sizeof *t);

	if (t && pthread_mutex_init(&t->mu, NULL) != 0) {
		free(t);
		return NULL;
	}
	return t;
}

void
milter_sess_free(struct milter_sessions *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < SESS_BUCKETS; i++)
		while (t->b[i]) {
			struct sess *s = t->b[i];

			t->b[i] = s->next;
			sess_txn_clear(s);
			free(s);
		}
	(void)pthread_mutex_destroy(&t->mu);
	free(t);
}

/* Find key (dropping expired entries of its bucket on the way); with
 * create, add it when absent. Called locked. */
static struct sess *
sess_find(struct milter_sessions *t, const char *key, int create, int *created)
{
	struct sess **pp = &t->b[sess_hash(key)], *s;
	time_t now = time(NULL);

	while ((s = *pp) != NULL) {
		if (now - s->seen > SESS_TTL) {
			*pp = s->next;
			sess_txn_clear(s);
			free(s);
			t->n--;
			continue;
		}
		if (strcmp(s->key, key) == 0) {
			s->seen = now;
			return s;
		}
		pp = &s->next;
	}
	if (!create || t->n >= SESS_MAX || (s = calloc(1, sizeof *s)) == NULL)
		return NULL;
	snprintf(s->key, sizeof s->key, "%s", key);
	s->seen = now;
	s->next = t->b[sess_hash(key)];
	t->b[sess_hash(key)] = s;
	t->n++;
	*created = 1;
	return s;
}

enum milter_sess_step
milter_sess_connect(struct milter_sessions *t, const char *key,
    struct milter_sess_conn *out)
{
	enum milter_sess_step r = SESS_NONE;
	int created = 0;
	struct sess *s;

	if (t == NULL || pthread_mutex_lock(&t->mu) != 0)
		return SESS_NONE;
	if ((s = sess_find(t, key, 1, &created)) != NULL) {
		r = created || !s->conn.checked ? SESS_NEW : SESS_REPLAY;
		*out = s->conn;
	}
	(void)pthread_mutex_unlock(&t->mu);
	return r;
}

void
milter_sess_set_conn(struct milter_sessions *t, const char *key,
    const struct milter_sess_conn *in)
{
	struct sess *s;

	if (t == NULL || pthread_mutex_lock(&t->mu) != 0)
		return;
	if ((s = sess_find(t, key, 0, NULL)) != NULL)
		s->conn = *in;
	(void)pthread_mutex_unlock(&t->mu);
}

enum milter_sess_step
milter_sess_mail(struct milter_sessions *t, const char *key, const char *from,
    int *spf_done, enum policy_spf_result *spf)
{
	enum milter_sess_step r = SESS_NONE;
	struct sess *s;

	*spf_done = 0;
	if (t == NULL || pthread_mutex_lock(&t->mu) != 0)
		return SESS_NONE;
	if ((s = sess_find(t, key, 0, NULL)) != NULL) {
		if (s->in_txn && strcasecmp(s->from, from) == 0) {
			r = SESS_REPLAY;
			*spf_done = s->spf_done;
			*spf = s->spf;
		} else {
			sess_txn_clear(s);
			s->in_txn = 1;
			snprintf(s->from, sizeof s->from, "%s", from);
			r = SESS_NEW;
		}
	}
	(void)pthread_mutex_unlock(&t->mu);
	return r;
}

void
milter_sess_set_spf(struct milter_sessions *t, const char *key,
    enum policy_spf_result spf)
{
	struct sess *s;

	if (t == NULL || pthread_mutex_lock(&t->mu) != 0)
		return;
	if ((s = sess_find(t, key, 0, NULL)) != NULL && s->in_txn) {
		s->spf = spf;
		s->spf_done = 1;
	}
	(void)pthread_mutex_unlock(&t->mu);
}

void
milter_sess_txn_end(struct milter_sessions *t, const char *key)
{
	struct sess *s;

	if (t == NULL || pthread_mutex_lock(&t->mu) != 0)
		return;
	if ((s = sess_find(t, key, 0, NULL)) != NULL)
		sess_txn_clear(s);
	(void)pthread_mutex_unlock(&t->mu);
}

/* Called locked. */
static struct sess_rcpt *
sess_rcpt_find(struct sess *s, const char *rcpt)
{
	for (size_t i = 0; i < s->nrcpt; i++)
		if (strcasecmp(s->rcpts[i].addr, rcpt) == 0)
			return &s->rcpts[i];
	return NULL;
}

enum milter_sess_step
milter_sess_rcpt(struct milter_sessions *t, const char *key, const char *rcpt)
{
	enum milter_sess_step r = SESS_NONE;
	struct sess_rcpt *sr;
	struct sess *s;

	if (t == NULL || pthread_mutex_lock(&t->mu) != 0)
		return SESS_NONE;
	if ((s = sess_find(t, key, 0, NULL)) != NULL && s->in_txn) {
		if ((sr = sess_rcpt_find(s, rcpt)) == NULL)
			r = SESS_NEW;
		else
			r = sr->owed ? SESS_OWED : SESS_REPLAY;
	}
	(void)pthread_mutex_unlock(&t->mu);
	return r;
}

int
milter_sess_rcpt_set(struct milter_sessions *t, const char *key,
    const char *rcpt, const struct policy_result *owed)
{
	struct sess_rcpt *sr;
	struct sess *s;
	int rc = -1;

	if (t == NULL || pthread_mutex_lock(&t->mu) != 0)
		return -1;
	if ((s = sess_find(t, key, 0, NULL)) == NULL || !s->in_txn)
		goto out;
	if ((sr = sess_rcpt_find(s, rcpt)) == NULL) {
		if (s->nrcpt >= SESS_RCPT_MAX)
			goto out;
		if (s->nrcpt == s->cap) {
			size_t cap = s->cap ? 2 * s->cap : 8;
			struct sess_rcpt *n = realloc(s->rcpts, cap * sizeof *n);

			if (n == NULL)
				goto out;
			s->rcpts = n;
			s->cap = cap;
		}
		sr = &s->rcpts[s->nrcpt];
		memset(sr, 0, sizeof *sr);
		if ((sr->addr = strdup(rcpt)) == NULL)
			goto out;
		s->nrcpt++;
	}
	sr->owed = owed != NULL;
	if (owed)
		sr->res = *owed;
	rc = 0;
out:
	(void)pthread_mutex_unlock(&t->mu);
	return rc;
}

int
milter_sess_owed(struct milter_sessions *t, const char *key,
    struct policy_result *r)
{
	struct sess *s;
	int found = 0;

	if (t == NULL || pthread_mutex_lock(&t->mu) != 0)
		return 0;
	if ((s = sess_find(t, key, 0, NULL)) != NULL && s->in_txn)
		for (size_t i = 0; i < s->nrcpt && !found; i++)
			if (s->rcpts[i].owed) {
				*r = s->rcpts[i].res;
				found = 1;
			}
	(void)pthread_mutex_unlock(&t->mu);
	return found;
}

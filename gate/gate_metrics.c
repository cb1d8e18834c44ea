/*
 * gate_metrics — tailwart-gate's Prometheus metrics: the family table,
 * the one-line hooks the session, screen, backend, policy and milter code
 * call, and the endpoint process.
 *
 * Design. With `metrics_listen` set, the master (root, before it forks
 * anything) maps the shared counter region (lib/metrics.c) and binds the
 * metrics socket. Every child inherits the mapping and adds to it with
 * relaxed atomic adds: no lock, no syscall, no message to anyone, so a
 * worker is never slowed by a scrape. The region belongs to the master and
 * lives as long as it does: a worker's exit loses nothing, a HUP keeps
 * every count (the generation gauge and the reload counters say what
 * happened). The endpoint is one small child of the master, outside the
 * worker table (generations and reloads do not touch it), forked after the
 * region exists: it drops to `user`, dies with the master (PDEATHSIG),
 * and serves GET /metrics from a non-blocking poll loop
 * (lib/metrics_http.c). The master's 250 ms tick restarts it if it dies
 * (noticed through a pipe only the child holds), at most once a second,
 * and refreshes the worker gauges from the scoreboard.
 *
 * The handle below is written once by the master before its first fork and
 * only read afterwards (every process sees the same pointer); it plays the
 * role the configuration plays, so that a hook is one call with no
 * plumbing. metrics_listen is read at start: a reload that changes it is
 * logged and needs a restart.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "gate.h"
#include "gate_metrics.h"
#include "gate_session.h"
#include "log.h"
#include "metrics.h"

enum {
	F_CONN_ACCEPTED, F_CONN_REFUSED, F_SCREEN_HELD, F_SESSIONS, F_COMMANDS, F_MESSAGES,
	F_POLICY, F_SPF, F_DNSBL, F_GREYLIST, F_RATE, F_HANDOFF, F_TXN, F_BACKEND,
	F_MILTER, F_MILTER_LAT, F_TLS, F_WORKERS, F_GENERATION, F_RELOADS, F_STORE,
	F_BE_UP, F_BE_OPEN, F_BE_TRIES,
	F_COUNT
};

#define DYN_ZONE	1	/* dynamic set 0: DNSBL zones */
#define DYN_MILTER	2	/* dynamic set 1: milters */
#define DYN_BACKEND	3	/* dynamic set 2: backend addresses (board slots) */

static const char *const v_refusal[GMR_COUNT] = {
	"access", "rate", "concurrency", "dnsbl", "pregreet", "busy", "proxy_error", "full",
};
static const char *const v_outcome[GMO_COUNT] = {
	"other", "quit", "refused", "timeout", "lost", "errors",
};
static const char *const v_verb[] = {
	"EHLO", "HELO", "STARTTLS", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT", "HELP",
	"VRFY", "EXPN", "unknown",
};
#define NVERB	(sizeof(v_verb) / sizeof(v_verb[0]))
static const char *const v_class[] = { "2xx", "3xx", "4xx", "5xx", "other" };
static const char *const v_message[] = { "accepted", "refused", "tempfailed" };
static const char *const v_check[] = {
	"access", "rate", "dnsbl", "pregreet", "spf", "greylist", "other",
};
#define NCHECK	(sizeof(v_check) / sizeof(v_check[0]))
static const char *const v_verdict[] = { "pass", "skip", "allow", "tempfail", "reject" };
static const char *const v_spf[] = {
	"none", "neutral", "pass", "fail", "softfail", "temperror", "permerror",
};
static const char *const v_grey[] = { "new", "early", "passed", "known", "awl", "exempt" };
static const char *const v_rate[] = { "conn", "concurrency", "msg", "rcpt", "err" };
static const char *const v_backend[GMB_COUNT] = {
	"connect", "timeout", "lost", "protocol", "4xx", "5xx",
};
static const char *const v_mverdict[] = {
	"continue", "reject", "tempfail", "discard", "shutdown",
};
static const char *const v_tls[] = {
	"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3", "other", "failed",
};
static const char *const v_try[] = { "ok", "failed" };
static const char *const v_workers[] = { "busy", "idle", "max" };
static const char *const v_reload[] = { "ok", "failed" };

static const double b_fast[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
static const double b_txn[] = { 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300 };

static const struct metrics_family gate_families[F_COUNT] = {
	[F_CONN_ACCEPTED] = { "tailwart_gate_connections_accepted_total",
	    "SMTP connections accepted on the listeners (refused ones included).", METRICS_COUNTER, { METRICS_NOLABEL, METRICS_NOLABEL }, NULL, 0 },
	[F_CONN_REFUSED] = { "tailwart_gate_connections_refused_total",
	    "SMTP connections refused before a session, by reason.", METRICS_COUNTER,
	    { METRICS_LABEL("reason", v_refusal), METRICS_NOLABEL }, NULL, 0 },
	[F_SCREEN_HELD] = { "tailwart_gate_screen_connections",
	    "Connections held by the screen now (checks, pregreet, waiting for a command).",
	    METRICS_GAUGE, { METRICS_NOLABEL, METRICS_NOLABEL }, NULL, 0 },
	[F_SESSIONS] = { "tailwart_gate_sessions_total",
	    "SMTP sessions served by workers, by how they ended.", METRICS_COUNTER,
	    { METRICS_LABEL("outcome", v_outcome), METRICS_NOLABEL }, NULL, 0 },
	[F_COMMANDS] = { "tailwart_gate_commands_total",
	    "SMTP commands, by verb and the class of the reply the client got.", METRICS_COUNTER,
	    { METRICS_LABEL("verb", v_verb), METRICS_LABEL("class", v_class) }, NULL, 0 },
	[F_MESSAGES] = { "tailwart_gate_messages_total",
	    "Messages by the backend's final answer (tempfailed includes a lost backend).",
	    METRICS_COUNTER, { METRICS_LABEL("result", v_message), METRICS_NOLABEL }, NULL, 0 },
	[F_POLICY] = { "tailwart_gate_policy_decisions_total",
	    "Policy decisions by check and verdict (before the mode: a log-only check counts "
	    "what enforce would do).",
	    METRICS_COUNTER, { METRICS_LABEL("check", v_check), METRICS_LABEL("verdict", v_verdict) }, NULL, 0 },
	[F_SPF] = { "tailwart_gate_spf_results_total", "SPF evaluations by result.",
	    METRICS_COUNTER, { METRICS_LABEL("result", v_spf), METRICS_NOLABEL }, NULL, 0 },
	[F_DNSBL] = { "tailwart_gate_dnsbl_listings_total",
	    "Clients found listed, by DNSBL/DNSWL zone.", METRICS_COUNTER,
	    { METRICS_DYN("zone", DYN_ZONE), METRICS_NOLABEL }, NULL, 0 },
	[F_GREYLIST] = { "tailwart_gate_greylist_total",
	    "Greylisting decisions: new and early are tempfails, passed/known go through, "
	    "awl/exempt skip the check.", METRICS_COUNTER, { METRICS_LABEL("result", v_grey), METRICS_NOLABEL }, NULL, 0 },
	[F_RATE] = { "tailwart_gate_rate_limited_total",
	    "Rate limits exceeded, by kind.", METRICS_COUNTER, { METRICS_LABEL("kind", v_rate), METRICS_NOLABEL }, NULL, 0 },
	[F_HANDOFF] = { "tailwart_gate_handoff_seconds",
	    "Time to open the backend connection (connect, PROXY header, banner, EHLO).",
	    METRICS_HISTOGRAM, { METRICS_NOLABEL, METRICS_NOLABEL }, METRICS_BUCKETS(b_fast) },
	[F_TXN] = { "tailwart_gate_transaction_seconds",
	    "Time from the accepted MAIL FROM to the final reply to the message.",
	    METRICS_HISTOGRAM, { METRICS_LABEL("result", v_message), METRICS_NOLABEL }, METRICS_BUCKETS(b_txn) },
	[F_BACKEND] = { "tailwart_gate_backend_errors_total",
	    "Backend failures (connect, timeout, lost, protocol) and 4xx/5xx replies it gave.",
	    METRICS_COUNTER, { METRICS_LABEL("kind", v_backend), METRICS_NOLABEL }, NULL, 0 },
	[F_MILTER] = { "tailwart_gate_milter_verdicts_total",
	    "Verdicts of each configured milter (one per milter per stage).", METRICS_COUNTER,
	    { METRICS_DYN("milter", DYN_MILTER), METRICS_LABEL("verdict", v_mverdict) }, NULL, 0 },
	[F_MILTER_LAT] = { "tailwart_gate_milter_seconds",
	    "Time a milter took to answer one stage.", METRICS_HISTOGRAM,
	    { METRICS_DYN("milter", DYN_MILTER), METRICS_NOLABEL }, METRICS_BUCKETS(b_fast) },
	[F_TLS] = { "tailwart_gate_tls_sessions_total",
	    "STARTTLS handshakes, by negotiated protocol version (failed: handshake error).",
	    METRICS_COUNTER, { METRICS_LABEL("version", v_tls), METRICS_NOLABEL }, NULL, 0 },
	[F_WORKERS] = { "tailwart_gate_workers", "Worker processes: busy, idle, and workers_max.",
	    METRICS_GAUGE, { METRICS_LABEL("state", v_workers), METRICS_NOLABEL }, NULL, 0 },
	[F_GENERATION] = { "tailwart_gate_config_generation",
	    "Configuration generation (1 at start, +1 per successful reload).", METRICS_GAUGE,
	    { METRICS_NOLABEL, METRICS_NOLABEL }, NULL, 0 },
	[F_RELOADS] = { "tailwart_gate_reloads_total", "Reloads (HUP) by result.",
	    METRICS_COUNTER, { METRICS_LABEL("result", v_reload), METRICS_NOLABEL }, NULL, 0 },
	[F_STORE] = { "tailwart_gate_store_errors_total",
	    "Policy store (LMDB/Redis) errors met by a check.", METRICS_COUNTER,
	    { METRICS_NOLABEL, METRICS_NOLABEL }, NULL, 0 },
	[F_BE_UP] = { "tailwart_gate_backend_up",
	    "1 while the backend address is used, 0 while it is skipped (back-off after failures).",
	    METRICS_GAUGE, { METRICS_DYN("backend", DYN_BACKEND), METRICS_NOLABEL }, NULL, 0 },
	[F_BE_OPEN] = { "tailwart_gate_backend_handoffs",
	    "Client sessions handed off to the backend address now.",
	    METRICS_GAUGE, { METRICS_DYN("backend", DYN_BACKEND), METRICS_NOLABEL }, NULL, 0 },
	[F_BE_TRIES] = { "tailwart_gate_backend_connects_total",
	    "Connections to the backend address (hand-offs, pass-through, health checks) by result: "
	    "ok = banner 220, failed = no connection, no banner in time or another banner.",
	    METRICS_COUNTER, { METRICS_DYN("backend", DYN_BACKEND), METRICS_LABEL("result", v_try) }, NULL, 0 },
};

struct gate_metrics {
	struct metrics	*m;
	int		 lfd;		/* listening socket (master keeps it) */
	int		 alive;		/* read end: EOF when the child is gone */
	pid_t		 pid;
	long long	 next_spawn_ms;
	const char	*listen;	/* for the reload check */
	unsigned	 gen_before;
};

static struct gate_metrics gm = { NULL, -1, -1, 0, 0, NULL, 0 };

long long
gate_metric_now_us(void)
{
	struct timespec ts;

	if (gm.m == NULL)
		return 0;
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
name_slots(const struct gate_settings *cfg)
{
	for (unsigned i = 0; i < METRICS_DYN_MAX; i++) {
		const char *z = i < cfg->policy.dnsbl.nzones ? cfg->policy.dnsbl.zones[i].zone : "";
		const char *ml = i < cfg->milters.n ? cfg->milters.v[i].spec : "";
		metrics_dyn_name(gm.m, DYN_ZONE - 1, i, z);
		metrics_dyn_name(gm.m, DYN_MILTER - 1, i, ml);
	}
}

int
gate_metrics_init(const struct gate_settings *cfg, char *err, size_t errlen)
{
	if (*cfg->metrics_listen == '\0')
		return 0;
	gm.m = metrics_create(gate_families, F_COUNT, err, errlen);
	if (gm.m == NULL)
		return -1;
	gm.lfd = metrics_http_listen(cfg->metrics_listen, err, errlen);
	if (gm.lfd < 0) {
		metrics_free(gm.m);
		gm.m = NULL;
		return -1;
	}
	gm.listen = strdup(cfg->metrics_listen);
	name_slots(cfg);
	metrics_set(gm.m, F_GENERATION, 0, 0, 1);
	log_info("metrics listening on %s", cfg->metrics_listen);
	return 0;
}

static void
spawn_server(const struct gate_runtime *rt, uid_t uid, gid_t gid)
{
	int p[2];
	pid_t master = getpid();

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0)
		return;
	gm.pid = fork();
	if (gm.pid < 0) {
		log_err("metrics: fork: %s", strerror(errno));
		(void)close(p[0]);
		(void)close(p[1]);
		return;
	}
	if (gm.pid == 0) {
		log_after_fork();
		(void)close(p[0]);
		gate_child_signals();
		gate_sig_term = 0;
		for (size_t i = 0; i < rt->cfg->nlisteners; i++)
			if (rt->cfg->listeners[i].fd >= 0)
				(void)close(rt->cfg->listeners[i].fd);
		if (geteuid() == 0 && gate_priv_drop(uid, gid) != 0)
			fatal("metrics: cannot drop privileges: %s", strerror(errno));
		/* after the drop, which clears it; the master may be pid 1 */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != master)
			_exit(0);
		metrics_http_serve(gm.lfd, gm.m, NULL, NULL, &gate_sig_term);
		_exit(0);
	}
	(void)close(p[1]);
	gm.alive = p[0];
}

void
gate_metrics_master_tick(const struct gate_runtime *rt, uid_t uid, gid_t gid)
{
	long long busy = 0, idle = 0;
	char c;

	if (gm.m == NULL)
		return;
	if (gm.alive >= 0 && read(gm.alive, &c, 1) == 0) {
		(void)close(gm.alive);		/* the endpoint child is gone */
		gm.alive = -1;
		gm.next_spawn_ms = gate_now_ms() + 1000;
	}
	if (gm.alive < 0 && !gate_sig_term && gate_now_ms() >= gm.next_spawn_ms)
		spawn_server(rt, uid, gid);
	for (size_t i = 0; i < GATE_MAX_CHILDREN; i++) {
		unsigned char st = __atomic_load_n(&rt->scoreboard[i], __ATOMIC_RELAXED);
		busy += st == 'B';
		idle += st == 'I';
	}
	metrics_set(gm.m, F_WORKERS, 0, 0, busy);
	metrics_set(gm.m, F_WORKERS, 1, 0, idle);
	metrics_set(gm.m, F_WORKERS, 2, 0, (int64_t)rt->cfg->workers_max);
	if (rt->backends != NULL) {
		unsigned open[GATE_BACKENDS_MAX];
		gate_backends_count(rt->backends, open);
		for (unsigned i = 0; i < METRICS_DYN_MAX && i < GATE_BACKENDS_MAX; i++) {
			const struct gate_backend_state *st = &rt->backends->v[i];
			metrics_dyn_name(gm.m, DYN_BACKEND - 1, i, st->key);
			if (st->key[0] == '\0')
				continue;
			metrics_set(gm.m, F_BE_UP, i, 0,
			    __atomic_load_n(&st->down, __ATOMIC_RELAXED) ? 0 : 1);
			metrics_set(gm.m, F_BE_OPEN, i, 0, open[i]);
		}
	}
}

void
gate_metric_backend_result(unsigned slot, int ok)
{
	metrics_add(gm.m, F_BE_TRIES, slot, ok ? 0 : 1, 1);
}

void
gate_metrics_child_close(void)
{
	if (gm.lfd >= 0)
		(void)close(gm.lfd);
	if (gm.alive >= 0)
		(void)close(gm.alive);
	gm.lfd = gm.alive = -1;
}

void
gate_metrics_reload_begin(const struct gate_runtime *rt)
{
	gm.gen_before = rt->generation;
}

void
gate_metrics_reload_end(const struct gate_runtime *rt)
{
	if (gm.m == NULL) {
		if (*rt->cfg->metrics_listen && rt->generation != gm.gen_before)
			log_warn("metrics_listen is read at start: restart to enable it");
		return;
	}
	metrics_add(gm.m, F_RELOADS, rt->generation != gm.gen_before ? 0 : 1, 0, 1);
	metrics_set(gm.m, F_GENERATION, 0, 0, rt->generation);
	if (rt->generation == gm.gen_before)
		return;
	name_slots(rt->cfg);
	if (strcmp(rt->cfg->metrics_listen, gm.listen) != 0)
		log_warn("metrics_listen changed: still serving %s until a restart", gm.listen);
}

void
gate_metric_accepted(void)
{
	metrics_add(gm.m, F_CONN_ACCEPTED, 0, 0, 1);
}

void
gate_metric_refused(enum gate_metric_refusal why)
{
	metrics_add(gm.m, F_CONN_REFUSED, why, 0, 1);
}

/* A connect-stage refusal described by a policy result. */
void
gate_metric_refused_policy(const struct policy_result *r)
{
	enum gate_metric_refusal why = GMR_ACCESS;

	if (gm.m == NULL)
		return;
	if (!strcmp(r->check, "rate"))
		why = strstr(r->detail, "limit=concurrency") || strstr(r->detail, "limit=net_concurrency") ?
		    GMR_CONCURRENCY : GMR_RATE;
	else if (!strcmp(r->check, "dnsbl"))
		why = GMR_DNSBL;
	else if (!strcmp(r->check, "pregreet"))
		why = GMR_PREGREET;
	gate_metric_refused(why);
}

void
gate_metric_screen_held(size_t n)
{
	metrics_set(gm.m, F_SCREEN_HELD, 0, 0, (int64_t)n);
}

/* The value of "key=" in a policy detail string, copied into buf. */
static const char *
detail_value(const char *detail, const char *key, char *buf, size_t len)
{
	const char *p = strstr(detail, key);

	if (p == NULL || (p != detail && p[-1] != ' '))
		return NULL;
	p += strlen(key);
	snprintf(buf, len, "%.*s", (int)strcspn(p, " ,("), p);
	return buf;
}

static unsigned
index_of(const char *const *v, unsigned n, const char *s)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (strcasecmp(v[i], s) == 0)
			break;
	return i;
}

/* DNSBL zones named in "listed=zone(w),zone(w)". */
static void
count_zones(const char *detail)
{
	const char *p = strstr(detail, "listed=");

	if (p == NULL)
		return;
	p += 7;
	while (*p && *p != ' ') {
		size_t n = strcspn(p, "(, ");
		int slot = metrics_dyn_find(gm.m, DYN_ZONE - 1, p, n);

		if (slot >= 0)
			metrics_add(gm.m, F_DNSBL, (unsigned)slot, 0, 1);
		p += n;
		p += strcspn(p, ", ");
		if (*p == ',')
			p++;
	}
}

void
gate_metric_policy(const struct policy_result *r)
{
	char v[32];
	unsigned check;

	if (gm.m == NULL)
		return;
	check = index_of(v_check, NCHECK - 1, r->check);
	if (strstr(r->detail, "store=error") != NULL)
		metrics_add(gm.m, F_STORE, 0, 0, 1);
	if (check == 4 && detail_value(r->detail, "result=", v, sizeof(v)) != NULL)
		metrics_add(gm.m, F_SPF, index_of(v_spf, 7, v), 0, 1);
	if (check == 5) {
		if (detail_value(r->detail, "state=", v, sizeof(v)) != NULL)
			metrics_add(gm.m, F_GREYLIST, index_of(v_grey, 6, v), 0, 1);
		else if (detail_value(r->detail, "exempt=", v, sizeof(v)) != NULL)
			metrics_add(gm.m, F_GREYLIST, strcmp(v, "awl") ? 5 : 4, 0, 1);
	}
	metrics_add(gm.m, F_POLICY, check, (unsigned)r->decided, 1);
	if (r->decided == POLICY_PASS || r->decided == POLICY_SKIP)
		return;
	if (check == 1 && detail_value(r->detail, "limit=", v, sizeof(v)) != NULL)
		metrics_add(gm.m, F_RATE, index_of(v_rate, 5, strncmp(v, "net_", 4) ? v : v + 4), 0, 1);
	if (check == 2)
		count_zones(r->detail);
}

/* A reply line the client gets: remember the code of the final line. */
void
gate_metric_reply(struct gate_session *s, const char *reply, size_t len)
{
	if (gm.m == NULL || len < 3 || (len > 3 && reply[3] == '-'))
		return;
	s->metric_reply = (reply[0] - '0') * 100 + (reply[1] - '0') * 10 + (reply[2] - '0');
}

void
gate_metric_command(struct gate_session *s, const char *line)
{
	size_t n = strcspn(line, " ");
	unsigned verb, cls;

	if (gm.m == NULL)
		return;
	for (verb = 0; verb < NVERB - 1; verb++)
		if (strlen(v_verb[verb]) == n && strncasecmp(v_verb[verb], line, n) == 0)
			break;
	cls = s->metric_reply >= 200 && s->metric_reply < 600 ? (unsigned)s->metric_reply / 100 - 2 : 4;
	metrics_add(gm.m, F_COMMANDS, verb, cls, 1);
	s->metric_reply = 0;
}

void
gate_metric_session(const struct gate_session *s)
{
	enum gate_metric_outcome o = (enum gate_metric_outcome)s->metric_outcome;

	if (gm.m == NULL)
		return;
	if (s->refused)
		o = GMO_REFUSED;
	else if (o == GMO_NONE && s->state == ST_QUIT)
		o = GMO_QUIT;
	metrics_add(gm.m, F_SESSIONS, o, 0, 1);
}

/* The message's final reply (code), or -1: the backend was lost. */
void
gate_metric_message(struct gate_session *s, int code)
{
	unsigned r = code / 100 == 2 ? 0 : code / 100 == 5 ? 1 : 2;

	if (gm.m == NULL)
		return;
	s->metric_reply = code < 0 ? 451 : code;
	metrics_add(gm.m, F_MESSAGES, r, 0, 1);
	if (s->metric_mail_us > 0)
		metrics_observe(gm.m, F_TXN, r, 0, gate_metric_now_us() - s->metric_mail_us);
	if (code < 0)
		gate_metric_backend(GMB_LOST);
}

void
gate_metric_handoff(long long t0_us)
{
	if (gm.m != NULL)
		metrics_observe(gm.m, F_HANDOFF, 0, 0, gate_metric_now_us() - t0_us);
}

void
gate_metric_backend(enum gate_metric_backend kind)
{
	metrics_add(gm.m, F_BACKEND, kind, 0, 1);
}

void
gate_metric_backend_reply(int code)
{
	if (code >= 400 && code < 500)
		gate_metric_backend(GMB_4XX);
	else if (code >= 500 && code < 600)
		gate_metric_backend(GMB_5XX);
}

/* gate_milter.c's observer (struct gate_milter_conf): one milter, one stage. */
static void
milter_observed(size_t idx, int verdict, long long ms)
{
	metrics_add(gm.m, F_MILTER, (unsigned)idx, (unsigned)verdict, 1);
	metrics_observe(gm.m, F_MILTER_LAT, (unsigned)idx, 0, ms * 1000);
}

/* Hook the observer into this process's copy of the milter list. */
void
gate_metric_milters(struct gate_settings *cfg)
{
	if (gm.m == NULL)
		return;
	for (size_t i = 0; i < cfg->milters.n && i < METRICS_DYN_MAX; i++)
		cfg->milters.v[i].observe = milter_observed;
}

void
gate_metric_tls(const char *version)
{
	if (gm.m == NULL)
		return;
	metrics_add(gm.m, F_TLS, version == NULL ? 5 : index_of(v_tls, 4, version), 0, 1);
}

/*
 * milter_filter.c — tailwart-milter's libmilter callbacks: the policy
 * checks at each SMTP stage and the Authentication-Results header at the
 * end of the message.
 *
 *   connect  access lists (allow skips DNSBL and greylisting; deny 554),
 *            connection rate and concurrency (421), DNSBL/DNSWL score
 *   helo     remembered for SPF
 *   mail     message rate (451), SPF of the sender (or HELO for <>)
 *   rcpt     recipient rate (452), greylisting (451; exempt: allow list,
 *            DNSWL, SPF pass for greylist_spf_exempt domains)
 *   headers/body  fed to the DKIM verifier; A-R headers whose
 *            authserv-id (RFC 8601) is ours are noted: all are forged and
 *            all are removed at eom
 *   data     a greylisting refusal owed by a replaying MTA (below)
 *   eom      prepends "Authentication-Results: ID; spf=...; dkim=..." and,
 *            with received_spf_header = yes, Received-SPF
 *   abort    ends the message; close gives the concurrency slot back.
 *
 * Stalwart ({daemon_name} "Stalwart ...") opens a connection per stage
 * and replays the session on it: its session ({client_addr} and
 * {client_port}) is remembered (milter_sess.c) so each connection,
 * transaction and recipient is counted and decided once; a greylisted
 * recipient is refused at DATA (451 for the message) after every
 * recipient was seen, so a retry passes them all; its BODY chunks hold
 * the raw message with the headers (DKIM reads them from there); A-R is
 * sent on one line (Stalwart stores header values verbatim: a fold would
 * become a bare LF).
 *
 * State: struct milter_conn per connection via smfi_setpriv, allocated in
 * negotiate (or connect), freed in close. The runtime (settings, store,
 * DKIM library) is read-only and shared. One log line per decision:
 * "ID check=... verdict=... client=IP stage=...".
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/random.h>

#include "log.h"
#include "milter_metrics.h"
#include "milter.h"
#include "policy_access.h"
#include "policy_dnsbl.h"
#include "policy_grey.h"
#include "policy_rate.h"

/*
 * Connections holding state. libmilter's smfi_main() returns on SIGTERM
 * without waiting for its session threads; main() waits for this to reach
 * 0 before it frees the shared runtime (the one mutable global here, like
 * a signal flag: atomic, written by the callbacks, read by main).
 */
static atomic_int mf_active;

int
milter_filter_active(void)
{
	return atomic_load(&mf_active);
}

static struct milter_conn *
mf_conn(SMFICTX *ctx)
{
	struct milter_conn *c = smfi_getpriv(ctx);
	unsigned char rnd[6];

	if (c)
		return c;
	if ((c = calloc(1, sizeof *c)) == NULL)
		return NULL;
	if (getrandom(rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd)
		memset(rnd, 0, sizeof rnd);
	snprintf(c->id, sizeof c->id, "m%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1],
	    rnd[2], rnd[3], rnd[4], rnd[5]);
	if (smfi_setpriv(ctx, c) != MI_SUCCESS) {
		free(c);
		return NULL;
	}
	atomic_fetch_add(&mf_active, 1);
	milter_metric_session();
	return c;
}

/* End the message part of the state (abort, eom). */
static void
mf_message_reset(struct milter_conn *c)
{
	milter_dkim_free(c->dkim);
	c->dkim = NULL;
	c->dkim_failed = 0;
	milter_dkim_raw_free(&c->raw);
	c->body_seen = 0;
	c->first_hdr[0] = 0;
	c->ar_lost = 0;
	c->have_from = 0;
	c->from[0] = 0;
	c->spf_done = 0;
	c->nar = 0;
	c->nforged = 0;
}

/* Log a decision (when it is not a plain pass) and turn it into a reply. */
static sfsistat
mf_verdict(SMFICTX *ctx, struct milter_conn *c, const char *stage,
    struct policy_result *r)
{
	char line[2 * POLICY_TEXT_MAX + 128], text[2 * POLICY_TEXT_MAX];
	char code[8];
	size_t o = 0;

	milter_metric_policy(r);
	if (r->verdict != POLICY_PASS || r->decided != POLICY_PASS)
		log_info("%s stage=%s client=%s %s", c->id, stage, c->ip,
		    policy_result_format(r, line, sizeof line));
	if (r->verdict != POLICY_REJECT && r->verdict != POLICY_TEMPFAIL)
		return SMFIS_CONTINUE;
	/* libmilter treats the text as a format string: double every '%' */
	for (const char *p = r->text; *p && o + 2 < sizeof text; p++) {
		if (*p == '%')
			text[o++] = '%';
		text[o++] = (*p == '\r' || *p == '\n') ? ' ' : *p;
	}
	text[o] = 0;
	snprintf(code, sizeof code, "%03d", r->code);
	if (r->code >= 400 && r->code < 600 &&
	    smfi_setreply(ctx, code, r->enh[0] ? r->enh : NULL,
	    text[0] ? text : NULL) != MI_SUCCESS)
		log_warn("%s smfi_setreply %s failed", c->id, code);
	return r->verdict == POLICY_REJECT ? SMFIS_REJECT : SMFIS_TEMPFAIL;
}

static sfsistat
mf_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
    unsigned long f3, unsigned long *pf0, unsigned long *pf1, unsigned long *pf2,
    unsigned long *pf3)
{
	struct milter_conn *c = mf_conn(ctx);

	(void)f2;
	(void)f3;
	*pf0 = f0 & (SMFIF_ADDHDRS | SMFIF_CHGHDRS);
	*pf1 = f1 & SMFIP_HDR_LEADSPC;
	if (!milter_rt->dkim)
		*pf1 |= f1 & SMFIP_NOBODY;
	*pf2 = 0;
	*pf3 = 0;
	if (c)
		c->leadspc = (*pf1 & SMFIP_HDR_LEADSPC) != 0;
	if ((*pf0 & SMFIF_ADDHDRS) == 0)
		log_warn("milter: the MTA cannot add headers (actions 0x%lx)", f0);
	return SMFIS_CONTINUE;
}

/*
 * A replaying MTA (Stalwart)? Then find its session: SESS_REPLAY (the
 * connection was counted and checked: its verdicts are copied), SESS_NEW,
 * or SESS_NONE (not replaying, or no room: a plain connection).
 */
static enum milter_sess_step
mf_replaying(SMFICTX *ctx, struct milter_conn *c, const _SOCK_ADDR *sa)
{
	const char *dn = smfi_getsymval(ctx, (char *)"{daemon_name}");
	const char *port = smfi_getsymval(ctx, (char *)"{client_port}");
	struct milter_sess_conn sc;
	enum milter_sess_step st;
	unsigned p = 0;

	if (dn == NULL || strncasecmp(dn, "Stalwart", 8) != 0)
		return SESS_NONE;
	c->stalwart = 1;
	if (port == NULL || *port == 0) {
		p = sa->sa_family == AF_INET ?
		    ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port) :
		    ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
		if (p == 0)
			return SESS_NONE;
	}
	if (port && *port)
		snprintf(c->skey, sizeof c->skey, "%s %.10s", c->ip, port);
	else
		snprintf(c->skey, sizeof c->skey, "%s %u", c->ip, p);
	st = milter_sess_connect(milter_rt->sess, c->skey, &sc);
	if (st == SESS_NONE)
		c->skey[0] = 0;
	if (st == SESS_REPLAY) {
		c->allowed = sc.allowed;
		c->dnswl = sc.dnswl;
		log_debug("%s replayed session %s", c->id, c->skey);
	}
	return st;
}

static sfsistat
mf_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *sa)
{
	const struct milter_runtime *rt = milter_rt;
	const struct policy_config *pc = &rt->cfg->pc;
	struct milter_conn *c = mf_conn(ctx);
	struct policy_result r;
	char err[256];
	sfsistat st;
	int score = 0;

	if (c == NULL)
		return SMFIS_TEMPFAIL;
	snprintf(c->host, sizeof c->host, "%s", host ? host : "unknown");
	if (sa == NULL || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)) {
		/* local or unknown client: no IP policy applies */
		snprintf(c->ip, sizeof c->ip, "local");
		return SMFIS_CONTINUE;
	}
	memset(&c->ss, 0, sizeof c->ss);
	memcpy(&c->ss, sa, sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) :
	    sizeof(struct sockaddr_in6));
	if (policy_ip_str(&c->ss, c->ip, sizeof c->ip) != 0) {
		snprintf(c->ip, sizeof c->ip, "unknown");
		return SMFIS_CONTINUE;
	}
	c->has_ip = 1;
	if (policy_dns_open(pc->resolver, pc->dns_timeout_ms, pc->dns_tries, &c->dns,
	    err, sizeof err) != 0) {
		log_warn("%s resolver: %s", c->id, err);
		c->dns = NULL;
	}
	if (mf_replaying(ctx, c, sa) == SESS_REPLAY)
		return SMFIS_CONTINUE;

	policy_result_init(&r, "access");
	switch (policy_access_check(&pc->access, &c->ss, &r)) {
	case POLICY_ALLOW:
		c->allowed = 1;
		break;
	default:
		if ((st = mf_verdict(ctx, c, "connect", &r)) != SMFIS_CONTINUE) {
			c->refused = 1;
			return st;
		}
	}

	policy_result_init(&r, "rate");
	if (policy_rate_connect(&pc->rate, rt->store, &c->ss, &r) == POLICY_PASS)
		c->rate_owed = 1;
	if ((st = mf_verdict(ctx, c, "connect", &r)) != SMFIS_CONTINUE) {
		c->refused = 1;
		return st;
	}

	if (!c->allowed && pc->dnsbl.nzones > 0 && c->dns) {
		policy_result_init(&r, "dnsbl");
		if (policy_dnsbl_check(&pc->dnsbl, c->dns, rt->store, &c->ss, &r,
		    &score) == POLICY_ALLOW)
			c->dnswl = 1;
		if ((st = mf_verdict(ctx, c, "connect", &r)) != SMFIS_CONTINUE) {
			c->refused = 1;
			return st;
		}
	}
	if (c->skey[0]) {
		struct milter_sess_conn sc = { 1, c->allowed, c->dnswl };

		milter_sess_set_conn(rt->sess, c->skey, &sc);
	}
	return SMFIS_CONTINUE;
}

static sfsistat
mf_helo(SMFICTX *ctx, char *helo)
{
	struct milter_conn *c = mf_conn(ctx);

	if (c == NULL)
		return SMFIS_TEMPFAIL;
	snprintf(c->helo, sizeof c->helo, "%s", helo ? helo : "");
	return SMFIS_CONTINUE;
}

/* "<a@b>" -> "a@b" into out */
static void
mf_unbracket(const char *in, char *out, size_t len)
{
	size_t n = strlen(in);

	if (n >= 2 && in[0] == '<' && in[n - 1] == '>') {
		in++;
		n -= 2;
	}
	if (n >= len)
		n = len - 1;
	memcpy(out, in, n);
	out[n] = 0;
}

static sfsistat
mf_envfrom(SMFICTX *ctx, char **argv)
{
	const struct milter_runtime *rt = milter_rt;
	const struct policy_config *pc = &rt->cfg->pc;
	struct milter_conn *c = mf_conn(ctx);
	struct policy_result r;
	sfsistat st;

	if (c == NULL)
		return SMFIS_TEMPFAIL;
	mf_message_reset(c);
	mf_unbracket(argv && argv[0] ? argv[0] : "", c->from, sizeof c->from);
	c->have_from = 1;
	if (rt->dkim)
		c->dkim = milter_dkim_start(rt->dkim, c->id);
	if (!c->has_ip)
		return SMFIS_CONTINUE;
	/* a transaction replayed: counted and checked when it was new */
	if (c->skey[0] && milter_sess_mail(rt->sess, c->skey, c->from, &c->spf_done,
	    &c->spf) == SESS_REPLAY)
		return SMFIS_CONTINUE;

	policy_result_init(&r, "rate");
	(void)policy_rate_msg(&pc->rate, rt->store, &c->ss, &r);
	if ((st = mf_verdict(ctx, c, "mail", &r)) != SMFIS_CONTINUE)
		goto refused;

	if (c->dns && pc->spf.mode != POLICY_IGNORE) {
		policy_result_init(&r, "spf");
		(void)policy_spf_check(&pc->spf, c->dns, &c->ss, c->helo, c->from, &r,
		    &c->spf);
		c->spf_done = 1;
		if (c->skey[0])
			milter_sess_set_spf(rt->sess, c->skey, c->spf);
		if ((st = mf_verdict(ctx, c, "mail", &r)) != SMFIS_CONTINUE)
			goto refused;
	}
	return SMFIS_CONTINUE;
refused:
	if (c->skey[0])
		milter_sess_txn_end(rt->sess, c->skey);
	return st;
}

static sfsistat
mf_envrcpt(SMFICTX *ctx, char **argv)
{
	const struct milter_runtime *rt = milter_rt;
	const struct policy_config *pc = &rt->cfg->pc;
	struct milter_conn *c = mf_conn(ctx);
	struct policy_result r;
	char rcpt[SMTP_PATH_MAX + 1], line[2 * POLICY_TEXT_MAX + 128];
	unsigned flags = 0;
	sfsistat st;

	if (c == NULL)
		return SMFIS_TEMPFAIL;
	if (!c->has_ip)
		return SMFIS_CONTINUE;
	mf_unbracket(argv && argv[0] ? argv[0] : "", rcpt, sizeof rcpt);
	if (c->skey[0])
		switch (milter_sess_rcpt(rt->sess, c->skey, rcpt)) {
		case SESS_REPLAY:
		case SESS_OWED:		/* refused at DATA */
			return SMFIS_CONTINUE;
		default:
			break;
		}

	policy_result_init(&r, "rate");
	(void)policy_rate_rcpt(&pc->rate, rt->store, &c->ss, &r);
	if ((st = mf_verdict(ctx, c, "rcpt", &r)) != SMFIS_CONTINUE)
		return st;

	if (c->allowed)
		flags |= POLICY_GREY_ALLOWED;
	if (c->dnswl)
		flags |= POLICY_GREY_DNSWL;
	if (c->spf_done && c->spf == SPF_RES_PASS)
		flags |= POLICY_GREY_SPF_PASS;
	policy_result_init(&r, "greylist");
	(void)policy_grey_check(&pc->grey, rt->store, &c->ss, c->from, rcpt, flags,
	    time(NULL), &r);
	if (c->skey[0]) {
		/* owed: every recipient is seen (and its triplet recorded)
		 * before the message gets the refusal at DATA */
		int owed = r.verdict == POLICY_TEMPFAIL;

		if (milter_sess_rcpt_set(rt->sess, c->skey, rcpt, owed ? &r : NULL) == 0 &&
		    owed) {
			log_info("%s stage=rcpt client=%s %s deferred=data", c->id, c->ip,
			    policy_result_format(&r, line, sizeof line));
			return SMFIS_CONTINUE;
		}
	}
	return mf_verdict(ctx, c, "rcpt", &r);
}

/* A refusal a replaying MTA's session owes (greylisting), at DATA or at
 * the end of the message (protocol version 2 has no DATA). */
static sfsistat
mf_owed(SMFICTX *ctx, struct milter_conn *c, const char *stage)
{
	struct policy_result r;
	sfsistat st;

	if (!c->skey[0] || !milter_sess_owed(milter_rt->sess, c->skey, &r))
		return SMFIS_CONTINUE;
	st = mf_verdict(ctx, c, stage, &r);
	milter_sess_txn_end(milter_rt->sess, c->skey);
	return st;
}

static sfsistat
mf_data(SMFICTX *ctx)
{
	struct milter_conn *c = mf_conn(ctx);

	if (c == NULL)
		return SMFIS_TEMPFAIL;
	return mf_owed(ctx, c, "data");
}

static sfsistat
mf_header(SMFICTX *ctx, char *name, char *value)
{
	struct milter_conn *c = mf_conn(ctx);

	if (c == NULL)
		return SMFIS_TEMPFAIL;
	if (strcasecmp(name, "Authentication-Results") == 0) {
		c->nar++;
		if (milter_ar_ours(value, milter_rt->cfg->authserv_id) &&
		    milter_ar_note(c, c->nar) != 0)
			c->ar_lost = 1;
	}
	if (c->first_hdr[0] == 0)
		snprintf(c->first_hdr, sizeof c->first_hdr, "%s", name);
	if (c->dkim && !c->dkim_failed &&
	    milter_dkim_header(c->dkim, name, value, c->leadspc) != 0)
		c->dkim_failed = 1;
	return SMFIS_CONTINUE;
}

static sfsistat
mf_eoh(SMFICTX *ctx)
{
	struct milter_conn *c = mf_conn(ctx);

	if (c == NULL)
		return SMFIS_TEMPFAIL;
	if (c->dkim && !c->dkim_failed && milter_dkim_eoh(c->dkim) != 0)
		c->dkim_failed = 1;
	return SMFIS_CONTINUE;
}

/* Does the body start with the header block already received (an MTA
 * that sends the whole message as body)? "Name:" of the first header. */
static int
mf_body_has_headers(const struct milter_conn *c, const unsigned char *p, size_t len)
{
	size_t n = strlen(c->first_hdr);

	return n > 0 && len > n && strncasecmp((const char *)p, c->first_hdr, n) == 0 &&
	    p[n] == ':';
}

static sfsistat
mf_body(SMFICTX *ctx, unsigned char *p, size_t len)
{
	struct milter_conn *c = mf_conn(ctx);

	if (c == NULL)
		return SMFIS_TEMPFAIL;
	if (!c->body_seen && c->dkim && (c->stalwart || mf_body_has_headers(c, p, len))) {
		/* the headers are in the body: verify from the raw block */
		milter_dkim_free(c->dkim);
		c->dkim = milter_dkim_start(milter_rt->dkim, c->id);
		c->dkim_failed = 0;
		c->raw.state = RAWHDR_COLLECT;
	}
	c->body_seen = 1;
	if (c->dkim && !c->dkim_failed && (c->raw.state != RAWHDR_OFF ?
	    milter_dkim_raw_body(c->dkim, &c->raw, p, len) :
	    milter_dkim_body(c->dkim, p, len)) != 0)
		c->dkim_failed = 1;
	return SMFIS_CONTINUE;
}

/* A-R value fragment for SPF into out. */
static void
mf_spf_fragment(const struct milter_conn *c, char *out, size_t len)
{
	char id[SMTP_PATH_MAX + 1];
	size_t o = 0;
	const char *src = c->from[0] ? c->from : c->helo;

	/* an address in A-R may not carry ; ( ) " or blanks */
	for (const char *p = src; *p && o + 1 < sizeof id; p++)
		if ((unsigned char)*p > ' ' && (unsigned char)*p < 127 &&
		    !strchr(";()\"\\", *p))
			id[o++] = *p;
	id[o] = 0;
	snprintf(out, len, "spf=%s %s=%s", policy_spf_result_name(c->spf),
	    c->from[0] ? "smtp.mailfrom" : "smtp.helo", id[0] ? id : "unknown");
}

static sfsistat
mf_eom(SMFICTX *ctx)
{
	const struct milter_runtime *rt = milter_rt;
	struct milter_conn *c = mf_conn(ctx);
	char spf[SMTP_PATH_MAX + 64], dkim[2048], value[4096], rs[1024];
	/* Stalwart stores values verbatim: a fold would be a bare LF there */
	const char *lead, *fold = c && c->stalwart ? " " : "\n\t",
	    *sep = c && c->stalwart ? "; " : ";\n\t";
	sfsistat st;
	int n;

	if (c == NULL)
		return SMFIS_TEMPFAIL;
	if ((st = mf_owed(ctx, c, "eom")) != SMFIS_CONTINUE) {
		mf_message_reset(c);
		return st;
	}
	if (c->ar_lost) {
		log_warn("%s out of memory noting forged Authentication-Results", c->id);
		mf_message_reset(c);
		return SMFIS_TEMPFAIL;
	}
	lead = c->leadspc ? " " : "";
	spf[0] = dkim[0] = 0;
	if (c->spf_done)
		mf_spf_fragment(c, spf, sizeof spf);
	if (c->dkim && !c->dkim_failed && c->raw.state != RAWHDR_OFF &&
	    milter_dkim_raw_end(c->dkim, &c->raw) != 0)
		c->dkim_failed = 1;
	if (c->dkim && !c->dkim_failed && milter_dkim_finish(c->dkim, dkim, sizeof dkim,
	    sep) <= 0)
		dkim[0] = 0;
	else if (c->dkim && c->dkim_failed)
		snprintf(dkim, sizeof dkim, "dkim=temperror");
	/* forged A-R headers with our id go, last first so indexes hold */
	for (unsigned i = c->nforged; i > 0; i--)
		if (smfi_chgheader(ctx, "Authentication-Results", (int)c->ar_forged[i - 1],
		    NULL) != MI_SUCCESS)
			log_warn("%s cannot remove a forged Authentication-Results", c->id);
		else
			log_info("%s removed forged Authentication-Results (authserv-id %s)",
			    c->id, rt->cfg->authserv_id);
	n = snprintf(value, sizeof value, "%s%s;%s%s%s%s%s", lead, rt->cfg->authserv_id,
	    spf[0] || dkim[0] ? fold : " none",
	    spf, spf[0] && dkim[0] ? sep : "", dkim, "");
	if (n > 0 && (size_t)n < sizeof value &&
	    smfi_insheader(ctx, 0, "Authentication-Results", value) != MI_SUCCESS)
		log_warn("%s cannot add Authentication-Results", c->id);
	if (c->spf_done && rt->cfg->pc.spf.received_header && c->has_ip &&
	    policy_spf_received(c->spf, rt->cfg->authserv_id, &c->ss, c->helo,
	    c->from, rs, sizeof rs) == 0) {
		const char *colon = strchr(rs, ':');

		if (colon && strncmp(rs, "Received-SPF", 12) == 0) {
			char v[1100];

			snprintf(v, sizeof v, "%s%s", lead, colon + 1 + (colon[1] == ' '));
			if (smfi_insheader(ctx, 0, "Received-SPF", v) != MI_SUCCESS)
				log_warn("%s cannot add Received-SPF", c->id);
		}
	}
	milter_metric_dkim(dkim);
	log_info("%s eom client=%s from=\"<%s>\" %s%s%s", c->id, c->ip,
	    log_q(c->from), spf,
	    spf[0] ? " " : "", dkim[0] ? dkim : "dkim=none");
	if (c->skey[0])
		milter_sess_txn_end(rt->sess, c->skey);
	mf_message_reset(c);
	return SMFIS_CONTINUE;
}

static sfsistat
mf_abort(SMFICTX *ctx)
{
	struct milter_conn *c = smfi_getpriv(ctx);

	if (c)
		mf_message_reset(c);
	return SMFIS_CONTINUE;
}

static sfsistat
mf_close(SMFICTX *ctx)
{
	struct milter_conn *c = smfi_getpriv(ctx);

	if (c == NULL)
		return SMFIS_CONTINUE;
	mf_message_reset(c);
	if (c->rate_owed &&
	    policy_rate_disconnect(&milter_rt->cfg->pc.rate, milter_rt->store, &c->ss) != 0)
		log_warn("%s rate: cannot give the concurrency slot back", c->id);
	if (c->dns)
		policy_dns_close(c->dns);
	if (smfi_setpriv(ctx, NULL) != MI_SUCCESS)
		log_debug("%s smfi_setpriv(NULL) failed", c->id);
	free(c->ar_forged);
	free(c);
	atomic_fetch_sub(&mf_active, 1);
	return SMFIS_CONTINUE;
}

void
milter_filter_desc(struct smfiDesc *d)
{
	memset(d, 0, sizeof *d);
	d->xxfi_name = (char *)"tailwart-milter";
	d->xxfi_version = SMFI_VERSION;
	d->xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS;
	d->xxfi_connect = mf_connect;
	d->xxfi_helo = mf_helo;
	d->xxfi_envfrom = mf_envfrom;
	d->xxfi_envrcpt = mf_envrcpt;
	d->xxfi_data = mf_data;
	d->xxfi_header = mf_header;
	d->xxfi_eoh = mf_eoh;
	d->xxfi_body = mf_body;
	d->xxfi_eom = mf_eom;
	d->xxfi_abort = mf_abort;
	d->xxfi_close = mf_close;
	d->xxfi_negotiate = mf_negotiate;
}

/*
 * gate_policy — the policy checks of a session, on the real client IP:
 *   connect: access lists, connection rate and concurrency, DNSBL/DNSWL;
 *   MAIL:    message rate, SPF (HELO identity for the null sender);
 *   RCPT:    recipient rate, greylisting (exempt: allow list, DNSWL, SPF
 *            pass of a listed domain);
 *   errors:  error rate;  end: the concurrency slot is given back.
 * Decisions come from policy/ (which owns the counters, in the store); this
 * file turns them into SMTP replies and one log line per decision. Each
 * function returns 0 to go on, or -1 when the reply was refused (the
 * reply is already queued; *_connect and *_error refusals end the session).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gate_session.h"
#include "gate_metrics.h"
#include "log.h"
#include "policy_config.h"

static void
log_decision(struct gate_session *s, const char *stage, const struct policy_result *r)
{
	char buf[1200];

	gate_metric_policy(r);
	if (!strcmp(stage, "connect") && (r->verdict == POLICY_REJECT || r->verdict == POLICY_TEMPFAIL))
		gate_metric_refused_policy(r);	/* screen = no: the worker refuses */
	if (r->decided == POLICY_PASS || r->decided == POLICY_SKIP)
		return;
	log_info("%s policy stage=%s client=%s %s", s->id, stage, s->peer_ip,
	    policy_result_format(r, buf, sizeof(buf)));
}

static void
reply_result(struct gate_session *s, const struct policy_result *r, int def_code,
    const char *def_enh)
{
	char line[600];

	if (policy_result_reply(r, line, sizeof(line)) == 0)
		smtpd_reply(&s->e, "%s", line);
	else
		smtpd_reply(&s->e, "%d %s Policy refusal", def_code, def_enh);
}

static int
refused(enum policy_verdict v)
{
	return v == POLICY_REJECT || v == POLICY_TEMPFAIL;
}

/* The resolver, opened on first use in this process. */
static struct policy_dns *
dns_handle(struct gate_session *s)
{
	const struct policy_config *pc = &s->cfg->policy;
	char err[256];

	if (s->rt->dns == NULL &&
	    policy_dns_open(pc->resolver, pc->dns_timeout_ms, pc->dns_tries,
	    &s->rt->dns, err, sizeof(err)) != 0) {
		log_warn("%s resolver %s: %s", s->id, pc->resolver, err);
		s->rt->dns = NULL;
	}
	return s->rt->dns;
}

int
gate_policy_connect(struct gate_session *s)
{
	const struct policy_config *pc = &s->cfg->policy;
	struct policy_result r;
	enum policy_verdict v;

	policy_result_init(&r, "access");
	v = policy_access_check(&pc->access, &s->peer, &r);
	log_decision(s, "connect", &r);
	if (v == POLICY_ALLOW)
		s->allowlisted = 1;
	else if (refused(v)) {
		reply_result(s, &r, 554, "5.7.1");
		return -1;
	}
	if (s->rt->store != NULL) {
		policy_result_init(&r, "rate");
		v = policy_rate_connect(&pc->rate, s->rt->store, &s->peer, &r);
		log_decision(s, "connect", &r);
		if (refused(v)) {
			reply_result(s, &r, 421, "4.7.0");
			return -1;
		}
		s->rate_owed = 1;
	}
	if (!s->allowlisted && pc->dnsbl.nzones > 0 && pc->dnsbl.mode != POLICY_IGNORE) {
		struct policy_dns *dns = dns_handle(s);
		int score = 0;

		policy_result_init(&r, "dnsbl");
		v = dns ? policy_dnsbl_check(&pc->dnsbl, dns, s->rt->store, &s->peer, &r, &score) :
		    POLICY_SKIP;
		log_decision(s, "connect", &r);
		if (v == POLICY_ALLOW)
			s->dnswl = 1;
		else if (refused(v)) {
			reply_result(s, &r, 554, "5.7.1");
			return -1;
		}
	}
	return 0;
}

int
gate_policy_mail(struct gate_session *s, const char *sender)
{
	const struct policy_config *pc = &s->cfg->policy;
	struct policy_result r;
	enum policy_verdict v;
	enum policy_spf_result spf = SPF_RES_NONE;

	s->spf_result = -1;
	if (s->rt->store != NULL) {
		policy_result_init(&r, "rate");
		v = policy_rate_msg(&pc->rate, s->rt->store, &s->peer, &r);
		log_decision(s, "mail", &r);
		if (refused(v)) {
			reply_result(s, &r, 451, "4.7.1");
			return -1;
		}
	}
	if (pc->spf.mode != POLICY_IGNORE && !s->allowlisted) {
		struct policy_dns *dns = dns_handle(s);

		policy_result_init(&r, "spf");
		if (dns == NULL)
			return 0;
		v = policy_spf_check(&pc->spf, dns, &s->peer, s->e.helo, sender, &r, &spf);
		s->spf_result = (int)spf;
		log_decision(s, "mail", &r);
		if (refused(v)) {
			reply_result(s, &r, 550, "5.7.23");
			return -1;
		}
	}
	return 0;
}

int
gate_policy_rcpt(struct gate_session *s, const char *rcpt)
{
	const struct policy_config *pc = &s->cfg->policy;
	struct policy_result r;
	enum policy_verdict v;
	unsigned flags = 0;

	if (s->rt->store == NULL)
		return 0;
	policy_result_init(&r, "rate");
	v = policy_rate_rcpt(&pc->rate, s->rt->store, &s->peer, &r);
	log_decision(s, "rcpt", &r);
	if (refused(v)) {
		reply_result(s, &r, 452, "4.5.3");
		return -1;
	}
	if (s->allowlisted)
		flags |= POLICY_GREY_ALLOWED;
	if (s->dnswl)
		flags |= POLICY_GREY_DNSWL;
	if (s->spf_result == (int)SPF_RES_PASS)
		flags |= POLICY_GREY_SPF_PASS;
	policy_result_init(&r, "greylist");
	v = policy_grey_check(&pc->grey, s->rt->store, &s->peer, s->e.mail_from, rcpt, flags,
	    time(NULL), &r);
	log_decision(s, "rcpt", &r);
	if (refused(v)) {
		reply_result(s, &r, 451, "4.7.1");
		return -1;
	}
	return 0;
}

int
gate_policy_error(struct gate_session *s)
{
	struct policy_result r;

	if (s->rt->store == NULL)
		return 0;
	policy_result_init(&r, "rate");
	if (refused(policy_rate_error(&s->cfg->policy.rate, s->rt->store, &s->peer, &r))) {
		log_decision(s, "error", &r);
		reply_result(s, &r, 421, "4.7.0");
		return -1;
	}
	return 0;
}

void
gate_policy_end(struct gate_session *s)
{
	if (s->rate_owed && s->rt->store != NULL &&
	    policy_rate_disconnect(&s->cfg->policy.rate, s->rt->store, &s->peer) != 0)
		log_warn("%s rate store error at disconnect", s->id);
	s->rate_owed = 0;
}

/* Does this configuration need the store at all? */
int
gate_policy_needs_store(const struct gate_settings *cfg)
{
	const struct policy_config *pc = &cfg->policy;

	int limits = 0;

	for (int k = 0; k < RATE_KINDS; k++)
		if (pc->rate.def.ip[k].count > 0 || pc->rate.def.net[k].count > 0)
			limits = 1;
	for (size_t i = 0; i < pc->rate.nrules && !limits; i++)
		for (int k = 0; k < RATE_KINDS; k++)
			if (pc->rate.rules[i].spec.ip[k].count > 0 ||
			    pc->rate.rules[i].spec.net[k].count > 0)
				limits = 1;
	return pc->grey.mode != POLICY_IGNORE || (pc->rate.mode != POLICY_IGNORE && limits) ||
	    (pc->dnsbl.nzones > 0 && pc->dnsbl.mode != POLICY_IGNORE) ||
	    (cfg->screen && cfg->pregreet_action != POLICY_IGNORE && cfg->screen_cache_ttl > 0);
}

/* Received-SPF header line (RFC 7208 §9.1, with CRLF), or -1. */
int
gate_policy_received_spf(const struct gate_session *s, char *buf, size_t len)
{
	size_t n;

	if (s->spf_result < 0)
		return -1;
	if (policy_spf_received((enum policy_spf_result)s->spf_result, s->cfg->hostname, &s->peer,
	    s->e.helo, s->e.mail_from, buf, len - 2) != 0)
		return -1;
	n = strlen(buf);
	if (n < 2 || buf[n - 2] != '\r') {
		if (n + 3 > len)
			return -1;
		memcpy(buf + n, "\r\n", 3);
	}
	return 0;
}

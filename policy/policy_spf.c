/*
 * policy_spf.c — SPF evaluation with libspf2 over policy_dns, result to
 * action mapping. See policy_spf.h.
 */
#include <sys/types.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <spf2/spf.h>
#include <spf2/spf_dns.h>

#include "log.h"
#include "policy_spf.h"

static const char *const result_names[SPF_RES_COUNT] = {
	"none", "neutral", "pass", "fail", "softfail", "temperror", "permerror",
};

void
policy_spf_config_init(struct policy_spf_config *sc)
{
	int r;

	memset(sc, 0, sizeof(*sc));
	sc->mode = POLICY_ENFORCE;
	for (r = 0; r < SPF_RES_COUNT; r++)
		sc->act[r] = SPF_ACT_LOG;
	sc->act[SPF_RES_FAIL] = SPF_ACT_REJECT;
	sc->act[SPF_RES_TEMPERROR] = SPF_ACT_TEMPFAIL;
	sc->timeout_ms = 10000;
	sc->max_lookups = 10;
	sc->max_void = 2;
}

const char *
policy_spf_result_name(enum policy_spf_result r)
{
	return (unsigned)r < SPF_RES_COUNT ? result_names[r] : "?";
}

int
policy_spf_result_parse(const char *s, enum policy_spf_result *r)
{
	int i;

	for (i = 0; i < SPF_RES_COUNT; i++)
		if (strcasecmp(s, result_names[i]) == 0) {
			*r = (enum policy_spf_result)i;
			return 0;
		}
	return -1;
}

int
policy_spf_action_parse(const char *s, enum policy_spf_action *a)
{
	if (strcasecmp(s, "reject") == 0)
		*a = SPF_ACT_REJECT;
	else if (strcasecmp(s, "tempfail") == 0)
		*a = SPF_ACT_TEMPFAIL;
	else if (strcasecmp(s, "log") == 0)
		*a = SPF_ACT_LOG;
	else if (strcasecmp(s, "ignore") == 0)
		*a = SPF_ACT_IGNORE;
	else
		return -1;
	return 0;
}

/* ---- evaluation ---- */


#define SPF_MAX_QUERIES	40	/* hard cap per evaluation, any kind */
#define SPF_HOSTS_MAX	32
#define SPF_ANSWER_MAX	65536	/* largest DNS message (TCP) */

/* Per-evaluation state behind our SPF_dns_server_t (its `hook`). */
struct spf_eval {
	struct policy_dns	*dns;
	long long		 deadline;	/* monotonic ms */
	unsigned		 max_lookups, max_void;
	int			 queries;	/* every query sent */
	int			 txt_seen;	/* TXT record fetches */
	int			 lookups;	/* DNS-querying terms (RFC 7208 4.6.4) */
	int			 voids;
	int			 temp;		/* a query timed out / SERVFAIL */
	int			 over;		/* a limit was crossed */
	const char		*over_why;
	char			 hosts[SPF_HOSTS_MAX][256];	/* MX/PTR targets */
	int			 nhosts;
	char			 exp_txt[512];	/* exp= TXT, unexpanded */
};

static long long
spf_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
host_known(const struct spf_eval *ev, const char *name)
{
	int i;

	for (i = 0; i < ev->nhosts; i++)
		if (strcasecmp(ev->hosts[i], name) == 0)
			return 1;
	return 0;
}

static void
host_add(struct spf_eval *ev, const char *name)
{
	if (ev->nhosts < SPF_HOSTS_MAX && strlen(name) < sizeof(ev->hosts[0]))
		snprintf(ev->hosts[ev->nhosts++], sizeof(ev->hosts[0]), "%s", name);
}

struct fill {
	SPF_dns_rr_t	*rr;
	struct spf_eval	*ev;
	int		 cnt;
	unsigned	 ttl;
};

static int
fill_rr(void *arg, const struct policy_dns_rr *r)
{
	struct fill *f = arg;
	char name[256];
	size_t need;

	if (f->cnt >= 100)
		return -1;
	switch (r->type) {
	case ns_t_a:
		if (r->rdlen != 4)
			return 0;
		need = sizeof(struct in_addr);
		break;
	case ns_t_aaaa:
		if (r->rdlen != 16)
			return 0;
		need = sizeof(struct in6_addr);
		break;
	case ns_t_mx:
		if (r->rdlen < 3 ||
		    policy_dns_name(r, r->rdata + 2, name, sizeof(name)) < 0)
			return 0;
		need = strlen(name) + 1;
		break;
	case ns_t_ptr:
		if (policy_dns_name(r, r->rdata, name, sizeof(name)) < 0)
			return 0;
		need = strlen(name) + 1;
		break;
	case ns_t_txt:
		need = r->rdlen + 1;
		break;
	default:
		return 0;
	}
	if (SPF_dns_rr_buf_realloc(f->rr, f->cnt, need) != SPF_E_SUCCESS)
		return -1;
	switch (r->type) {
	case ns_t_a:
		memcpy(&f->rr->rr[f->cnt]->a, r->rdata, 4);
		break;
	case ns_t_aaaa:
		memcpy(&f->rr->rr[f->cnt]->aaaa, r->rdata, 16);
		break;
	case ns_t_mx:
		memcpy(f->rr->rr[f->cnt]->mx, name, need);
		host_add(f->ev, name);
		break;
	case ns_t_ptr:
		memcpy(f->rr->rr[f->cnt]->ptr, name, need);
		host_add(f->ev, name);
		break;
	case ns_t_txt:
		if (policy_dns_txt(r->rdata, r->rdlen, f->rr->rr[f->cnt]->txt,
		    need) < 0)
			return 0;	/* malformed string: skip the RR */
		break;
	}
	if (r->ttl < f->ttl)
		f->ttl = r->ttl;
	f->cnt++;
	return 0;
}

static SPF_dns_rr_t *
spf_layer_lookup(SPF_dns_server_t *server, const char *domain, ns_type type,
    int should_cache)
{
	struct spf_eval *ev = server->hook;
	unsigned char *abuf;
	size_t alen = 0;
	enum policy_dns_status st;
	struct fill f;
	SPF_dns_rr_t *rr;
	long long left;
	int counted = 0, n;

	(void)should_cache;
	if (domain == NULL)
		domain = "";
	/* The SPF RR type is obsolete (RFC 7208 3.1): never ask for it. */
	if (type == ns_t_spf)
		return SPF_dns_rr_new_init(server, domain, type, 0, NO_DATA);
	/* RFC 7208 4.6.4: count the terms that cause DNS queries. The first
	 * TXT is the record itself; A/AAAA for names an MX or PTR answer
	 * gave us are part of that mx/ptr term. */
	if (type == ns_t_txt)	/* exp= comes through spf_layer_get_exp */
		counted = ev->txt_seen++ > 0;
	else if (type == ns_t_mx || type == ns_t_ptr)
		counted = 1;
	else if (type == ns_t_a || type == ns_t_aaaa)
		counted = !host_known(ev, domain);
	if (counted)
		ev->lookups++;
	if (ev->over || (counted && ev->lookups > (int)ev->max_lookups) ||
	    ev->queries >= SPF_MAX_QUERIES) {
		if (!ev->over)
			ev->over_why = ev->queries >= SPF_MAX_QUERIES ?
			    "too many DNS queries" : "too many DNS lookups";
		ev->over = 1;
		return SPF_dns_rr_new_init(server, domain, type, 0, NO_RECOVERY);
	}
	left = ev->deadline - spf_now_ms();
	if (left <= 0) {
		ev->temp = 1;
		return SPF_dns_rr_new_init(server, domain, type, 0, TRY_AGAIN);
	}
	ev->queries++;
	if ((abuf = malloc(SPF_ANSWER_MAX)) == NULL) {
		ev->temp = 1;
		return SPF_dns_rr_new_init(server, domain, type, 0, TRY_AGAIN);
	}
	st = policy_dns_lookup(ev->dns, domain, type, (int)left, abuf,
	    SPF_ANSWER_MAX, &alen);
	if (st != DNS_OK)
		free(abuf);
	switch (st) {
	case DNS_NXDOMAIN:
		if (counted && ++ev->voids > (int)ev->max_void && !ev->over) {
			ev->over = 1;
			ev->over_why = "too many void lookups";
		}
		return SPF_dns_rr_new_init(server, domain, type, 0, HOST_NOT_FOUND);
	case DNS_NODATA:
		if (counted && ++ev->voids > (int)ev->max_void && !ev->over) {
			ev->over = 1;
			ev->over_why = "too many void lookups";
		}
		return SPF_dns_rr_new_init(server, domain, type, 0, NO_DATA);
	case DNS_OK:
		break;
	default:
		ev->temp = 1;
		return SPF_dns_rr_new_init(server, domain, type, 0, TRY_AGAIN);
	}
	rr = SPF_dns_rr_new_init(server, domain, type, 0, NETDB_SUCCESS);
	if (rr == NULL) {
		free(abuf);
		return NULL;
	}
	f.rr = rr;
	f.ev = ev;
	f.cnt = 0;
	f.ttl = 86400;
	n = policy_dns_parse(abuf, (int)alen, type, fill_rr, &f);
	free(abuf);
	if (n < 0) {			/* malformed answer: a DNS error */
		ev->temp = 1;
		rr->herrno = TRY_AGAIN;
		rr->num_rr = 0;
		return rr;
	}
	rr->num_rr = f.cnt;
	rr->ttl = f.ttl;
	if (f.cnt == 0) {
		rr->herrno = NO_DATA;
		if (counted && ++ev->voids > (int)ev->max_void && !ev->over) {
			ev->over = 1;
			ev->over_why = "too many void lookups";
		}
	}
	return rr;
}

static int
exp_rr(void *arg, const struct policy_dns_rr *rr)
{
	struct spf_eval *ev = arg;

	if (policy_dns_txt(rr->rdata, rr->rdlen, ev->exp_txt,
	    sizeof(ev->exp_txt)) < 0)
		ev->exp_txt[0] = '\0';
	return -1;		/* the first TXT only */
}

/* libspf2 calls this with the (macro-expanded) exp= domain after a fail.
 * The lookup is not a term (RFC 7208 6.2: no limit applies); its text is
 * kept raw for policy_spf_expand(): libspf2 1.2.10 mangles spaces and
 * macros of explanations. libspf2 passes its own buffer as domain and
 * output, so the name is copied first. */
static SPF_errcode_t
spf_layer_get_exp(SPF_server_t *server, const char *domain, char **bufp,
    size_t *buflenp)
{
	struct spf_eval *ev = server->resolver->hook;
	char name[256];
	unsigned char *abuf;
	size_t alen = 0, need;
	long long left = ev->deadline - spf_now_ms();
	char *tmp;

	ev->exp_txt[0] = '\0';
	if (domain != NULL && strlen(domain) < sizeof(name) && left > 0 &&
	    (abuf = malloc(SPF_ANSWER_MAX)) != NULL) {
		memcpy(name, domain, strlen(domain) + 1);
		if (policy_dns_lookup(ev->dns, name, ns_t_txt, (int)left, abuf,
		    SPF_ANSWER_MAX, &alen) == DNS_OK)
			(void)policy_dns_parse(abuf, (int)alen, ns_t_txt, exp_rr, ev);
		free(abuf);
	}
	need = strlen(ev->exp_txt) + 1;
	if (*bufp == NULL || *buflenp < need) {
		if ((tmp = realloc(*bufp, need)) == NULL)
			return SPF_E_NO_MEMORY;
		*bufp = tmp;
		*buflenp = need;
	}
	memcpy(*bufp, ev->exp_txt, need);
	return SPF_E_SUCCESS;
}

static void
spf_log_warning(const char *file, int line, const char *msg)
{
	(void)file;
	(void)line;
	log_debug("spf warning=\"%s\"", msg ? msg : "");
}

static void
spf_log_quiet(const char *file, int line, const char *msg)
{
	(void)file;
	(void)line;
	(void)msg;
}

/* libspf2's message handlers are process globals: set them once. */
static pthread_once_t spf_handlers_once = PTHREAD_ONCE_INIT;

static void
spf_handlers_init(void)
{
	SPF_warning_handler = spf_log_warning;
	SPF_info_handler = spf_log_quiet;
	SPF_debug_handler = spf_log_quiet;
}

static enum policy_spf_result
map_result(SPF_result_t r)
{
	switch (r) {
	case SPF_RESULT_PASS:		return SPF_RES_PASS;
	case SPF_RESULT_FAIL:		return SPF_RES_FAIL;
	case SPF_RESULT_SOFTFAIL:	return SPF_RES_SOFTFAIL;
	case SPF_RESULT_NEUTRAL:	return SPF_RES_NEUTRAL;
	case SPF_RESULT_NONE:		return SPF_RES_NONE;
	case SPF_RESULT_TEMPERROR:	return SPF_RES_TEMPERROR;
	case SPF_RESULT_PERMERROR:	return SPF_RES_PERMERROR;
	default:			return SPF_RES_PERMERROR;
	}
}

/* Make a string safe for a reply line: printable ASCII, bounded. */
static void
clean(char *dst, size_t len, const char *src)
{
	size_t i;

	if (len == 0)
		return;
	for (i = 0; src != NULL && src[i] != '\0' && i + 1 < len; i++)
		dst[i] = (unsigned char)src[i] < 0x20 ||
		    (unsigned char)src[i] > 0x7e ? '?' : src[i];
	dst[i] = '\0';
}

void
policy_spf_expand(char *out, size_t len, const char *in, const char *ip,
    const char *sender, const char *domain, const char *helo)
{
	const char *at = strrchr(sender, '@');
	char local[128];
	size_t n = 0;

	snprintf(local, sizeof(local), "%.*s",
	    at ? (int)(at - sender) : 10, at ? sender : "postmaster");
	if (len == 0)
		return;
	while (*in != '\0' && n + 1 < len) {
		const char *v = NULL;
		char one[2] = { 0, 0 };
		if (*in != '%') {
			out[n++] = *in++;
			continue;
		}
		in++;
		if (*in == '%' || *in == '_' || *in == '-') {
			v = *in == '%' ? "%" : *in == '_' ? " " : "%20";
			in++;
		} else if (*in == '{' && in[1] != '\0') {
			switch (in[1] | 0x20) {
			case 'i': case 'c':	v = ip; break;
			case 's':		v = sender; break;
			case 'l':		v = local; break;
			case 'o': case 'd':	v = domain; break;
			case 'h':		v = helo; break;
			case 'v':		v = strchr(ip, ':') ? "ip6" : "in-addr"; break;
			default:		v = "unknown"; break;
			}
			in += strcspn(in, "}");
			if (*in == '}')
				in++;
		} else {
			one[0] = '%';
			v = one;
		}
		while (*v != '\0' && n + 1 < len)
			out[n++] = *v++;
	}
	out[n] = '\0';
}

enum policy_verdict
policy_spf_check(const struct policy_spf_config *sc, struct policy_dns *dns,
    const struct sockaddr_storage *ss, const char *helo, const char *sender,
    struct policy_result *res, enum policy_spf_result *resultp)
{
	struct spf_eval ev;
	SPF_dns_server_t layer;
	SPF_server_t *server = NULL;
	SPF_request_t *req = NULL;
	SPF_response_t *resp = NULL;
	enum policy_spf_result result = SPF_RES_NONE;
	enum policy_spf_action act;
	char ip[64], expl[POLICY_TEXT_MAX - 16], domain[256], hs[256];
	const char *at, *identity;
	unsigned char b[16];
	int fam, libres = -1, errcode = 0;

	policy_result_init(res, "spf");
	if (resultp != NULL)
		*resultp = SPF_RES_NONE;
	if (sc->mode == POLICY_IGNORE)
		return policy_result_mode(res, sc->mode);
	if (helo == NULL)
		helo = "";
	if (sender == NULL)
		sender = "";
	fam = policy_ip_bytes(ss, b);
	if (fam < 0 || policy_ip_str(ss, ip, sizeof(ip)) < 0) {
		policy_result_detail(res, "error=bad-client-address");
		return policy_result_mode(res, sc->mode);
	}
	at = strrchr(sender, '@');
	identity = sender[0] != '\0' ? sender : helo;
	clean(domain, sizeof(domain), at ? at + 1 : (sender[0] ? sender : helo));
	clean(hs, sizeof(hs), helo);

	(void)pthread_once(&spf_handlers_once, spf_handlers_init);

	memset(&ev, 0, sizeof(ev));
	ev.dns = dns;
	ev.deadline = spf_now_ms() + (sc->timeout_ms ? sc->timeout_ms : 10000);
	ev.max_lookups = sc->max_lookups ? sc->max_lookups : 10;
	ev.max_void = sc->max_void;

	if (identity[0] == '\0') {
		result = SPF_RES_NONE;
		policy_result_detail(res, "error=no-identity");
		goto decide;
	}
	if (dns == NULL) {
		result = SPF_RES_TEMPERROR;
		policy_result_detail(res, "error=no-resolver");
		goto decide;
	}
	/* Our layer lives on this stack frame: SPF_server_new_dns() servers
	 * never free their resolver (destroy_resolver = 0). */
	memset(&layer, 0, sizeof(layer));
	layer.lookup = spf_layer_lookup;
	layer.get_exp = spf_layer_get_exp;
	layer.name = "tailwart";
	layer.hook = &ev;
	if ((server = SPF_server_new_dns(&layer, 0)) == NULL)
		goto temp;
	if ((req = SPF_request_new(server)) == NULL)
		goto temp;
	if (fam == AF_INET) {
		struct in_addr a4;
		memcpy(&a4, b, 4);
		(void)SPF_request_set_ipv4(req, a4);
	} else {
		struct in6_addr a6;
		memcpy(&a6, b, 16);
		(void)SPF_request_set_ipv6(req, a6);
	}
	if (helo[0] != '\0')
		(void)SPF_request_set_helo_dom(req, helo);
	if (sender[0] != '\0' && SPF_request_set_env_from(req, sender) != 0) {
		policy_result_detail(res, "error=bad-sender");
		result = SPF_RES_NONE;
		goto decide;
	}
	(void)SPF_request_query_mailfrom(req, &resp);
	if (resp == NULL)
		goto temp;
	libres = SPF_response_result(resp);
	errcode = SPF_response_errcode(resp);
	result = map_result(SPF_response_result(resp));
	/* Our limits and libspf2's "invalid"/error codes, RFC 7208 style. */
	if (ev.over)
		result = SPF_RES_PERMERROR;
	else if (ev.temp && result != SPF_RES_PASS && result != SPF_RES_FAIL)
		result = SPF_RES_TEMPERROR;
	else if (libres == SPF_RESULT_INVALID)
		result = SPF_RES_PERMERROR;
	/* libspf2 1.2.10 mangles explanations (spaces, macros): expand the
	 * exp= text it fetched through our layer ourselves. */
	if (result == SPF_RES_FAIL) {
		char raw[sizeof(expl)];
		if (ev.exp_txt[0] != '\0') {
			policy_spf_expand(raw, sizeof(raw), ev.exp_txt, ip,
			    sender[0] ? sender : helo, domain, hs);
			clean(expl, sizeof(expl), raw);
		} else
			snprintf(expl, sizeof(expl), "%s is not allowed to send "
			    "mail for %s", ip, domain);
	}
	goto decide;
temp:
	result = SPF_RES_TEMPERROR;
	policy_result_detail(res, "error=no-memory");
decide:
	if (resp != NULL)
		SPF_response_free(resp);
	if (req != NULL)
		SPF_request_free(req);
	if (server != NULL)
		SPF_server_free(server);
	if (resultp != NULL)
		*resultp = result;
	policy_result_detail(res, "result=%s identity=%s client=%s helo=\"%s\" "
	    "lookups=%d voids=%d", policy_spf_result_name(result),
	    sender[0] ? "mailfrom" : "helo", ip, hs[0] ? log_q(hs) : "-",
	    ev.lookups, ev.voids);
	if (ev.over_why != NULL)
		policy_result_detail(res, "limit=\"%s\"", ev.over_why);
	if (libres >= 0 && errcode != 0)
		policy_result_detail(res, "libspf2_error=%d", errcode);
	act = sc->act[result];
	if (act == SPF_ACT_IGNORE) {
		policy_result_set(res, POLICY_SKIP, 0, NULL, NULL);
		return policy_result_mode(res, sc->mode);
	}
	if (act == SPF_ACT_LOG) {
		policy_result_set(res, POLICY_PASS, 0, NULL, NULL);
		return policy_result_mode(res, sc->mode);
	}
	switch (result) {
	case SPF_RES_FAIL:
		if (act == SPF_ACT_REJECT)
			policy_result_set(res, POLICY_REJECT, 550, "5.7.23",
			    "SPF fail: %s", expl);
		else
			policy_result_set(res, POLICY_TEMPFAIL, 451, "4.7.23",
			    "SPF fail: %s", expl);
		break;
	case SPF_RES_TEMPERROR:
		if (act == SPF_ACT_REJECT)
			policy_result_set(res, POLICY_REJECT, 550, "5.7.24",
			    "SPF temporary error for %s", domain);
		else
			policy_result_set(res, POLICY_TEMPFAIL, 451, "4.7.24",
			    "SPF temporary error for %s, try again later",
			    domain);
		break;
	case SPF_RES_PERMERROR:
		if (act == SPF_ACT_REJECT)
			policy_result_set(res, POLICY_REJECT, 550, "5.7.24",
			    "SPF permanent error for %s%s%s", domain,
			    ev.over_why ? ": " : "",
			    ev.over_why ? ev.over_why : "");
		else
			policy_result_set(res, POLICY_TEMPFAIL, 451, "4.7.24",
			    "SPF permanent error for %s", domain);
		break;
	default:
		if (act == SPF_ACT_REJECT)
			policy_result_set(res, POLICY_REJECT, 550, "5.7.1",
			    "SPF %s for %s", policy_spf_result_name(result),
			    domain);
		else
			policy_result_set(res, POLICY_TEMPFAIL, 451, "4.7.1",
			    "SPF %s for %s, try again later",
			    policy_spf_result_name(result), domain);
		break;
	}
	return policy_result_mode(res, sc->mode);
}

/* Copy for a header value: no controls, quotes, backslashes or ';'. */
static void
header_safe(char *dst, size_t len, const char *src)
{
	size_t i;

	for (i = 0; src[i] != '\0' && i + 1 < len; i++)
		dst[i] = (unsigned char)src[i] <= 0x20 ||
		    (unsigned char)src[i] > 0x7e || src[i] == '"' ||
		    src[i] == '\\' || src[i] == ';' ? '?' : src[i];
	dst[i] = '\0';
}

int
policy_spf_received(enum policy_spf_result r, const char *host,
    const struct sockaddr_storage *ss, const char *helo, const char *sender,
    char *buf, size_t len)
{
	char ip[64], h[256], s[320], hn[256], who[340];
	const char *comment;
	int n;

	if (policy_ip_str(ss, ip, sizeof(ip)) < 0 || (unsigned)r >= SPF_RES_COUNT)
		return -1;
	header_safe(h, sizeof(h), helo ? helo : "");
	header_safe(s, sizeof(s), sender ? sender : "");
	header_safe(hn, sizeof(hn), host ? host : "localhost");
	if (s[0] != '\0')
		snprintf(who, sizeof(who), "domain of %s", s);
	else
		snprintf(who, sizeof(who), "domain of postmaster@%s", h);
	switch (r) {
	case SPF_RES_PASS:	comment = "designates"; break;
	case SPF_RES_FAIL:	comment = "does not designate"; break;
	case SPF_RES_SOFTFAIL:	comment = "does not designate (softfail)"; break;
	case SPF_RES_NEUTRAL:	comment = "neither permits nor denies"; break;
	case SPF_RES_NONE:	comment = "publishes no SPF record for"; break;
	case SPF_RES_TEMPERROR:	comment = "could not be checked (temporary error) for"; break;
	default:		comment = "has an invalid SPF record for"; break;
	}
	n = snprintf(buf, len, "Received-SPF: %s (%s: %s %s %s%s) client-ip=%s; "
	    "envelope-from=\"%s\"; helo=%s;", policy_spf_result_name(r), hn,
	    who, comment, ip, r == SPF_RES_PASS || r == SPF_RES_FAIL ||
	    r == SPF_RES_SOFTFAIL ? " as permitted sender" : "", ip, s,
	    h[0] ? h : "unknown");
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

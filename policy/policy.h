/*
 * policy — verdicts, modes and results shared by every policy check.
 *
 * Every check (access, rate, greylist, dnsbl, spf) fills a caller-owned
 * struct policy_result: the verdict after the check's mode was applied,
 * the verdict the check reached before the mode (for "would reject" log
 * lines), the SMTP reply (code, enhanced status, text) and key=value facts
 * for the one log line the caller writes per decision. Nothing here is
 * static or global; results live in the caller's memory.
 *
 * Modes: POLICY_IGNORE (the check is not run; its functions return
 * POLICY_SKIP), POLICY_LOG (the check runs, a REJECT/TEMPFAIL is reported in
 * `decided` but `verdict` is POLICY_PASS), POLICY_ENFORCE.
 *
 * Also here: small address helpers used by all checks (text of an IP, the
 * /24 or /64 network of an IP, parsing an IP literal).
 */
#ifndef POLICY_POLICY_H
#define POLICY_POLICY_H

#include <stddef.h>
#include <sys/socket.h>
#include <netinet/in.h>

enum policy_verdict {
	POLICY_PASS,		/* checked and fine: go on with the next check */
	POLICY_SKIP,		/* not applicable (mode ignore, exempt, no data) */
	POLICY_ALLOW,		/* trusted (allow list, DNSWL): skip optional checks */
	POLICY_TEMPFAIL,	/* 4xx; code 421 means "and close the session" */
	POLICY_REJECT,		/* 5xx; code 421/554 at connect means close */
};

enum policy_mode {
	POLICY_IGNORE,
	POLICY_LOG,
	POLICY_ENFORCE,
};

#define POLICY_TEXT_MAX	400

struct policy_result {
	enum policy_verdict	 verdict;	/* what the caller acts on */
	enum policy_verdict	 decided;	/* before the mode: what enforce does */
	enum policy_mode	 mode;
	const char		*check;		/* "access", "rate", ... (constant) */
	int			 code;		/* SMTP code of the reply, 0 on pass */
	char			 enh[12];	/* enhanced status "4.7.1", "" if none */
	char			 text[POLICY_TEXT_MAX];	/* reply text, no code */
	char			 detail[POLICY_TEXT_MAX]; /* key=value facts for logs */
};

/* Reset r: verdict PASS, no reply, check name set (a string constant). */
void policy_result_init(struct policy_result *r, const char *check);
/* Set the decision (both verdict and decided) and the reply. */
void policy_result_set(struct policy_result *r, enum policy_verdict v,
	    int code, const char *enh, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* Append " key=value..." to r->detail (truncates silently). */
void policy_result_detail(struct policy_result *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Apply a mode: LOG turns TEMPFAIL/REJECT into PASS (decided keeps them),
 * IGNORE turns everything into SKIP. Returns r->verdict. */
enum policy_verdict policy_result_mode(struct policy_result *r, enum policy_mode m);
/* "451 4.7.1 text" into buf; 0, or -1 when there is no reply (pass) or the
 * buffer is too small (buf then holds a truncated line). */
int  policy_result_reply(const struct policy_result *r, char *buf, size_t len);
/* One log fragment: `check=grey verdict=tempfail mode=enforce reply="451
 * 4.7.1 ..." detail...` into buf. Returns buf. */
char *policy_result_format(const struct policy_result *r, char *buf, size_t len);

const char *policy_verdict_name(enum policy_verdict v);
const char *policy_mode_name(enum policy_mode m);
/* "ignore" | "log" | "enforce" -> 0, else -1. */
int  policy_mode_parse(const char *s, enum policy_mode *m);

/* What to do when the store or the resolver fails. */
enum policy_failure {
	POLICY_FAIL_OPEN,	/* pass, log the error */
	POLICY_FAIL_TEMP,	/* 451 4.3.0 */
};

/* Numeric text of an IP (v4-mapped v6 shown as v4). 0 / -1. */
int  policy_ip_str(const struct sockaddr_storage *ss, char *buf, size_t len);
/* Parse an IPv4 or IPv6 literal into ss (port 0). 0 / -1. */
int  policy_ip_parse(const char *s, struct sockaddr_storage *ss);
/* The network of ss as text "192.0.2.0/24" or "2001:db8::/64" using
 * v4bits / v6bits (v4-mapped addresses count as IPv4). 0 / -1. */
int  policy_net_str(const struct sockaddr_storage *ss, unsigned v4bits,
	    unsigned v6bits, char *buf, size_t len);
/* Address bytes of ss: family AF_INET (4 bytes) or AF_INET6 (16), with
 * v4-mapped v6 reported as AF_INET. Returns the family or -1. */
int  policy_ip_bytes(const struct sockaddr_storage *ss, unsigned char out[16]);

#endif

/*
 * testmilter — a small milter written with libmilter (the real filter
 * side) that tests drive the gate's milter client with. Every behaviour is
 * chosen on the command line:
 *
 *   testmilter -s inet:PORT@127.0.0.1 [-l LOGFILE] [options]
 *     -a ACTION     accept|reject|tempfail|discard|reply|hang|continue|
 *                   skip (body: SMFIS_SKIP)|progress (eom: 3 x smfi_progress)
 *     -t STAGE      connect|helo|mail|rcpt|data|header|eoh|body|eom (default eom)
 *     -m ADDR       act at rcpt only for this recipient
 *     -r "CODE X.Y.Z text"   reply for -a reply (smfi_setreply)
 *     -w SECS       sleep for -a hang (default 30)
 *     -H "Name:value"        add a header at eom (repeatable)
 *     -I "IDX:Name:value"    insert a header at eom (repeatable)
 *     -C "IDX:Name:value"    change header IDX of Name; empty value deletes
 *     -B TEXT       replace the body with TEXT (\n become CRLF)
 *     -Q REASON     quarantine
 *     -R ADDR       add a recipient;  -D ADDR  delete a recipient
 *     -F ADDR       change the sender (smfi_chgfrom, no ESMTP arguments)
 *     -P FLAGS      protocol flags (hex) asked for in xxfi_negotiate
 *                   (e.g. 0x80 = no reply for headers, 0x2 = no HELO)
 *     -M "STAGE:list"  ask for a macro list (smfi_setsymlist), STAGE 0..6
 *
 * The log (-l) gets one line per callback with what the MTA sent: connect
 * name/address/port, macros seen, HELO, envelope with arguments, headers,
 * body size, so a test can check the client's side of the protocol.
 * Runs until killed. State per connection: none needed beyond the log.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

#define MAXMOD 16

static const char *opt_action = "continue", *opt_stage = "eom", *opt_match;
static const char *opt_reply = "550 5.7.1 rejected by test_milter";
static unsigned opt_wait = 30;
static const char *opt_add[MAXMOD], *opt_ins[MAXMOD], *opt_chg[MAXMOD];
static int n_add, n_ins, n_chg;
static const char *opt_body, *opt_quar, *opt_addrcpt, *opt_delrcpt, *opt_chgfrom;
static unsigned long opt_pflags;
static int opt_pflags_set;
static const char *opt_macros[7];
static FILE *logfp;
static pthread_mutex_t logmu = PTHREAD_MUTEX_INITIALIZER;

static void tlog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
tlog(const char *fmt, ...)
{
	va_list ap;

	if (logfp == NULL)
		return;
	pthread_mutex_lock(&logmu);
	va_start(ap, fmt);
	vfprintf(logfp, fmt, ap);
	va_end(ap);
	fputc('\n', logfp);
	fflush(logfp);
	pthread_mutex_unlock(&logmu);
}

static void
log_macros(SMFICTX *ctx, const char *stage)
{
	static const char *const names[] = { "j", "{daemon_name}", "{client_addr}",
		"{client_name}", "{client_port}", "i", "{mail_addr}", "{rcpt_addr}",
		"{tls_version}", "{cipher}", "{auth_authen}", "_", NULL };

	for (int i = 0; names[i]; i++) {
		char *v = smfi_getsymval(ctx, (char *)names[i]);

		if (v)
			tlog("macro %s %s=%s", stage, names[i], v);
	}
}

/* The configured action if this is its stage; SMFIS_CONTINUE otherwise. */
static sfsistat
act(SMFICTX *ctx, const char *stage)
{
	if (strcmp(stage, opt_stage) != 0)
		return SMFIS_CONTINUE;
	tlog("act %s %s", stage, opt_action);
	if (strcmp(opt_action, "accept") == 0)
		return SMFIS_ACCEPT;
	if (strcmp(opt_action, "reject") == 0)
		return SMFIS_REJECT;
	if (strcmp(opt_action, "tempfail") == 0)
		return SMFIS_TEMPFAIL;
	if (strcmp(opt_action, "discard") == 0)
		return SMFIS_DISCARD;
	if (strcmp(opt_action, "reply") == 0) {
		char code[4] = { 0 }, xcode[16] = { 0 };
		const char *p = opt_reply, *text;

		memcpy(code, p, 3);
		p += 3;
		while (*p == ' ')
			p++;
		text = p;
		if (strchr(p, ' ') && (p[0] == '4' || p[0] == '5') && p[1] == '.') {
			size_t n = (size_t)(strchr(p, ' ') - p);

			if (n < sizeof xcode) {
				memcpy(xcode, p, n);
				text = p + n + 1;
			}
		}
		if (smfi_setreply(ctx, code, xcode[0] ? xcode : NULL, (char *)text) != MI_SUCCESS)
			tlog("setreply failed");
		return code[0] == '4' ? SMFIS_TEMPFAIL : SMFIS_REJECT;
	}
	if (strcmp(opt_action, "skip") == 0)
		return SMFIS_SKIP;	/* body: no more chunks, please */
	if (strcmp(opt_action, "progress") == 0) {
		for (int i = 0; i < 3; i++)
			if (smfi_progress(ctx) != MI_SUCCESS)
				tlog("progress failed");
		return SMFIS_CONTINUE;
	}
	if (strcmp(opt_action, "hang") == 0) {
		sleep(opt_wait);
		return SMFIS_CONTINUE;
	}
	return SMFIS_CONTINUE;
}

static sfsistat
t_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1, unsigned long f2,
    unsigned long f3, unsigned long *pf0, unsigned long *pf1, unsigned long *pf2,
    unsigned long *pf3)
{
	(void)f2;
	(void)f3;
	tlog("negotiate actions=0x%lx protocol=0x%lx", f0, f1);
	*pf0 = f0 & (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_ADDRCPT |
	    SMFIF_DELRCPT | SMFIF_QUARANTINE | SMFIF_SETSYMLIST | SMFIF_CHGFROM);
	*pf1 = opt_pflags_set ? (f1 & opt_pflags) : 0;
	*pf2 = 0;
	*pf3 = 0;
	for (int i = 0; i < 7; i++)
		if (opt_macros[i] && smfi_setsymlist(ctx, i, (char *)opt_macros[i]) != MI_SUCCESS)
			tlog("setsymlist %d failed", i);
	return SMFIS_CONTINUE;
}

static sfsistat
t_connect(SMFICTX *ctx, char *host, struct sockaddr *sa)
{
	char addr[INET6_ADDRSTRLEN] = "-";
	unsigned port = 0;

	if (sa && sa->sa_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &in->sin_addr, addr, sizeof addr);
		port = ntohs(in->sin_port);
	} else if (sa && sa->sa_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof addr);
		port = ntohs(in6->sin6_port);
	}
	tlog("connect host=%s addr=%s port=%u", host ? host : "-", addr, port);
	log_macros(ctx, "connect");
	return act(ctx, "connect");
}

static sfsistat
t_helo(SMFICTX *ctx, char *helo)
{
	tlog("helo %s", helo);
	log_macros(ctx, "helo");
	return act(ctx, "helo");
}

static sfsistat
t_mail(SMFICTX *ctx, char **argv)
{
	tlog("mail %s", argv[0]);
	for (int i = 1; argv[i]; i++)
		tlog("mail-arg %s", argv[i]);
	log_macros(ctx, "mail");
	return act(ctx, "mail");
}

static sfsistat
t_rcpt(SMFICTX *ctx, char **argv)
{
	tlog("rcpt %s", argv[0]);
	for (int i = 1; argv[i]; i++)
		tlog("rcpt-arg %s", argv[i]);
	log_macros(ctx, "rcpt");
	if (opt_match && strcmp(opt_stage, "rcpt") == 0) {
		char want[300];

		snprintf(want, sizeof want, "<%s>", opt_match);
		if (strcasecmp(argv[0], want) != 0)
			return SMFIS_CONTINUE;
	}
	return act(ctx, "rcpt");
}

static sfsistat
t_data(SMFICTX *ctx)
{
	tlog("data");
	return act(ctx, "data");
}

static sfsistat
t_header(SMFICTX *ctx, char *name, char *value)
{
	tlog("header %s:%s", name, value);
	return act(ctx, "header");
}

static sfsistat
t_eoh(SMFICTX *ctx)
{
	tlog("eoh");
	return act(ctx, "eoh");
}

static sfsistat
t_body(SMFICTX *ctx, unsigned char *p, size_t len)
{
	(void)p;
	tlog("body %zu", len);
	return act(ctx, "body");
}

/* "IDX:Name:value" */
static int
split3(const char *s, int *idx, char *name, size_t nl, const char **value)
{
	const char *c1 = strchr(s, ':'), *c2;
	char *end;
	long v;

	if (c1 == NULL || (c2 = strchr(c1 + 1, ':')) == NULL ||
	    (size_t)(c2 - c1 - 1) >= nl)
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end != c1 || v < 0 || v > 10000)
		return -1;
	*idx = (int)v;
	memcpy(name, c1 + 1, (size_t)(c2 - c1 - 1));
	name[c2 - c1 - 1] = 0;
	*value = c2 + 1;
	return 0;
}

static sfsistat
t_eom(SMFICTX *ctx)
{
	char name[256];
	const char *value;
	int idx;

	tlog("eom");
	log_macros(ctx, "eom");
	for (int i = 0; i < n_add; i++) {
		const char *c = strchr(opt_add[i], ':');

		if (c && (size_t)(c - opt_add[i]) < sizeof name) {
			memcpy(name, opt_add[i], (size_t)(c - opt_add[i]));
			name[c - opt_add[i]] = 0;
			if (smfi_addheader(ctx, name, (char *)c + 1) != MI_SUCCESS)
				tlog("addheader failed");
		}
	}
	for (int i = 0; i < n_ins; i++)
		if (split3(opt_ins[i], &idx, name, sizeof name, &value) == 0 &&
		    smfi_insheader(ctx, idx, name, (char *)value) != MI_SUCCESS)
			tlog("insheader failed");
	for (int i = 0; i < n_chg; i++)
		if (split3(opt_chg[i], &idx, name, sizeof name, &value) == 0 &&
		    smfi_chgheader(ctx, name, idx, value[0] ? (char *)value : NULL) != MI_SUCCESS)
			tlog("chgheader failed");
	if (opt_body) {
		size_t n = strlen(opt_body);
		unsigned char *b = malloc(n * 2 + 1), *w = b;

		if (b) {
			for (const char *p = opt_body; *p; p++) {
				if (*p == '\n')
					*w++ = '\r';
				*w++ = (unsigned char)*p;
			}
			if (smfi_replacebody(ctx, b, (int)(w - b)) != MI_SUCCESS)
				tlog("replacebody failed");
			free(b);
		}
	}
	if (opt_quar && smfi_quarantine(ctx, (char *)opt_quar) != MI_SUCCESS)
		tlog("quarantine failed");
	if (opt_addrcpt && smfi_addrcpt(ctx, (char *)opt_addrcpt) != MI_SUCCESS)
		tlog("addrcpt failed");
	if (opt_delrcpt && smfi_delrcpt(ctx, (char *)opt_delrcpt) != MI_SUCCESS)
		tlog("delrcpt failed");
	if (opt_chgfrom && smfi_chgfrom(ctx, (char *)opt_chgfrom, NULL) != MI_SUCCESS)
		tlog("chgfrom failed");
	return act(ctx, "eom");
}

static sfsistat
t_abort(SMFICTX *ctx)
{
	(void)ctx;
	tlog("abort");
	return SMFIS_CONTINUE;
}

static sfsistat
t_close(SMFICTX *ctx)
{
	(void)ctx;
	tlog("close");
	return SMFIS_CONTINUE;
}

int
main(int argc, char **argv)
{
	const char *sock = NULL, *logpath = NULL;
	struct smfiDesc desc;
	int c;

	while ((c = getopt(argc, argv, "s:l:a:t:m:r:w:H:I:C:B:Q:R:D:F:P:M:d:")) != -1) {
		switch (c) {
		case 's': sock = optarg; break;
		case 'l': logpath = optarg; break;
		case 'a': opt_action = optarg; break;
		case 't': opt_stage = optarg; break;
		case 'm': opt_match = optarg; break;
		case 'r': opt_reply = optarg; break;
		case 'w': opt_wait = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'H': if (n_add < MAXMOD) opt_add[n_add++] = optarg; break;
		case 'I': if (n_ins < MAXMOD) opt_ins[n_ins++] = optarg; break;
		case 'C': if (n_chg < MAXMOD) opt_chg[n_chg++] = optarg; break;
		case 'B': opt_body = optarg; break;
		case 'Q': opt_quar = optarg; break;
		case 'R': opt_addrcpt = optarg; break;
		case 'D': opt_delrcpt = optarg; break;
		case 'F': opt_chgfrom = optarg; break;
		case 'P':
			opt_pflags = strtoul(optarg, NULL, 16);
			opt_pflags_set = 1;
			break;
		case 'd':
			if (smfi_setdbg((int)strtol(optarg, NULL, 10)) != MI_SUCCESS)
				fprintf(stderr, "testmilter: bad -d\n");
			break;
		case 'M':
			if (optarg[0] >= '0' && optarg[0] <= '6' && optarg[1] == ':')
				opt_macros[optarg[0] - '0'] = optarg + 2;
			break;
		default:
			fprintf(stderr, "usage: testmilter -s SOCKET [options] (see source)\n");
			return 2;
		}
	}
	if (sock == NULL) {
		fprintf(stderr, "testmilter: -s SOCKET needed\n");
		return 2;
	}
	if (logpath && (logfp = fopen(logpath, "a")) == NULL) {
		perror(logpath);
		return 1;
	}
	memset(&desc, 0, sizeof desc);
	desc.xxfi_name = (char *)"testmilter";
	desc.xxfi_version = SMFI_VERSION;
	desc.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_ADDRCPT |
	    SMFIF_DELRCPT | SMFIF_QUARANTINE | SMFIF_SETSYMLIST | SMFIF_CHGFROM;
	desc.xxfi_connect = t_connect;
	desc.xxfi_helo = t_helo;
	desc.xxfi_envfrom = t_mail;
	desc.xxfi_envrcpt = t_rcpt;
	desc.xxfi_header = t_header;
	desc.xxfi_eoh = t_eoh;
	desc.xxfi_body = t_body;
	desc.xxfi_eom = t_eom;
	desc.xxfi_abort = t_abort;
	desc.xxfi_close = t_close;
	desc.xxfi_data = t_data;
	desc.xxfi_negotiate = t_negotiate;
	if (smfi_setconn((char *)sock) != MI_SUCCESS || smfi_register(desc) != MI_SUCCESS) {
		fprintf(stderr, "testmilter: cannot register on %s\n", sock);
		return 1;
	}
	if (smfi_opensocket(1) != MI_SUCCESS) {
		fprintf(stderr, "testmilter: cannot open %s\n", sock);
		return 1;
	}
	tlog("ready %s", sock);
	return smfi_main() == MI_SUCCESS ? 0 : 1;
}

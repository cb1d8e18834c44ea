/*
 * fuzz_relay — libFuzzer target for tailwart-relay's SMTP receiver
 * (relay/relay_smtpd.c and the spool writer under it): the input is what a
 * client in client_networks sends, byte for byte, over a socketpair (no
 * TCP: no TIME_WAIT); the session runs in-process until EOF. Nothing a client
 * sends may crash, leak or hang the receiver; every message it commits
 * must parse back (relay_spool_read) with a body of CRLF lines only (no
 * bare CR or LF); and the replies must match a strict reading of the
 * input, one per command line and one per message ended by <CRLF>.<CRLF>
 * (fuzz_check_framing in fuzz.h, up to the first BDAT): a receiver that
 * ends DATA anywhere else (SMTP smuggling, defect 1 of issue 8) fails.
 *
 * Built and run by `make fuzz` (see tests/fuzz/README.md).
 */
#include <sys/socket.h>

#include "fuzz.h"

/* the session asks who the client is: a socketpair has no address, so it
 * is 127.0.0.1, inside client_networks */
static int fuzz_getpeername(int fd, struct sockaddr *sa, socklen_t *sl);
#define getpeername fuzz_getpeername
#include "../../relay/relay_smtpd.c"
#undef getpeername

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>

static struct relay_config fuzz_cfg;
static char fuzz_spool[64];

static int
fuzz_getpeername(int fd, struct sockaddr *sa, socklen_t *sl)
{
	struct sockaddr_in sin;

	(void)fd;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(40000);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (*sl < sizeof(sin))
		return -1;
	memcpy(sa, &sin, sizeof(sin));
	*sl = sizeof(sin);
	return 0;
}

static void
fuzz_init(void)
{
	char err[256];

	fuzz_once();
	/* tmpfs: a commit is two fsyncs */
	fuzz_tmpdir(fuzz_spool, sizeof(fuzz_spool), "fuzz_relay");
	if (relay_spool_init(fuzz_spool, getuid(), getgid()) != 0)
		abort();
	memset(&fuzz_cfg, 0, sizeof(fuzz_cfg));
	fuzz_cfg.spool_dir = fuzz_spool;
	fuzz_cfg.hostname = (char *)(uintptr_t)"fuzz.relay.test";
	fuzz_cfg.message_size_limit = 8192;
	fuzz_cfg.smtp_timeout = 2;
	fuzz_cfg.smtpd_auth_user = (char *)(uintptr_t)"";
	if (net_cidr_list_parse("127.0.0.0/8", &fuzz_cfg.client_networks, err, sizeof(err)) != 0)
		abort();
}

/* Every committed message must read back with CRLF-only lines. */
static void
fuzz_check_queue(void)
{
	char p[4096], buf[16384];
	struct dirent *de;
	DIR *d;

	snprintf(p, sizeof(p), "%s/queue", fuzz_spool);
	if ((d = opendir(p)) == NULL)
		abort();
	while ((de = readdir(d)) != NULL) {
		struct relay_msg m;
		const char *why = NULL;
		char f[4400];
		int fd;

		if (de->d_name[0] == '.')
			continue;
		snprintf(f, sizeof(f), "%s/%s", p, de->d_name);
		fd = open(f, O_RDONLY);
		if (fd < 0 || relay_spool_read(fd, &m, &why) != 0)
			abort();
		if (m.body_len > (off_t)sizeof(buf) ||
		    relay_spool_pread(fd, buf, (size_t)m.body_len, m.body_off) != 0)
			abort();
		for (off_t i = 0; i < m.body_len; i++) {
			if (buf[i] == '\n' && (i == 0 || buf[i - 1] != '\r'))
				abort();
			if (buf[i] == '\r' && (i + 1 >= m.body_len || buf[i + 1] != '\n'))
				abort();
		}
		if (m.body_len < 2 || buf[m.body_len - 2] != '\r' || buf[m.body_len - 1] != '\n')
			abort();
		relay_msg_free(&m);
		close(fd);
		unlink(f);
	}
	closedir(d);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_client c;

	if (fuzz_spool[0] == '\0')
		fuzz_init();
	if (size > 16384 || fuzz_client_open(&c, data, size) != 0)
		return 0;
	(void)relay_smtpd_session(&fuzz_cfg, c.fd);	/* closes c.fd */
	fuzz_client_close(&c, 1);
	fuzz_check_framing(data, size, c.out, c.outlen, "BDAT");
	fuzz_client_free(&c);
	fuzz_check_queue();
	return 0;
}

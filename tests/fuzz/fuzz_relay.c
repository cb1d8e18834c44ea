/*
 * fuzz_relay — libFuzzer target for tailwart-relay's SMTP receiver
 * (relay/relay_smtpd.c and the spool writer under it): the input is what a
 * client in client_networks sends, byte for byte, over a loopback TCP
 * connection; the session runs in-process until EOF. Nothing a client
 * sends may crash, leak or hang the receiver, and every message it
 * commits must parse back (relay_spool_read) with a body of CRLF lines
 * only (no bare CR or LF).
 *
 * Build and run (from the project root; clang from Debian's clang package):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=gnu11 -D_GNU_SOURCE \
 *     -Ilib -Ipolicy -I/usr/include/opendkim tests/fuzz/fuzz_relay.c lib/config.c \
 *     lib/log.c lib/net.c lib/smtp.c lib/io.c lib/tls.c \
 *     -lssl -lcrypto -lopendkim -lcares -o build/fuzz_relay
 *   mkdir -p build/fuzz_relay.corpus && build/fuzz_relay -max_total_time=60 \
 *     -max_len=16384 build/fuzz_relay.corpus
 * It has no main(): the Makefile does not build tests/fuzz/.
 */
#include "../../relay/relay_smtpd.c"
#include "../../relay/relay_spool.c"
#include "../../relay/relay_config.c"
#include "../../relay/relay_dkim.c"
#include "../../relay/relay_proc.c"

#include <dirent.h>
#include <netinet/in.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct relay_config fuzz_cfg;
static int fuzz_lfd = -1;
static struct sockaddr_in fuzz_addr;
static char fuzz_spool[64];

static void
fuzz_init(void)
{
	char err[256];
	socklen_t sl = sizeof(fuzz_addr);

	log_init("fuzz_relay", 1);
	snprintf(fuzz_spool, sizeof(fuzz_spool), "/tmp/fuzz_relay.XXXXXX");
	if (mkdtemp(fuzz_spool) == NULL || relay_spool_init(fuzz_spool, getuid(), getgid()) != 0)
		abort();
	memset(&fuzz_cfg, 0, sizeof(fuzz_cfg));
	fuzz_cfg.spool_dir = fuzz_spool;
	fuzz_cfg.hostname = (char *)(uintptr_t)"fuzz.relay.test";
	fuzz_cfg.message_size_limit = 8192;
	fuzz_cfg.smtp_timeout = 1;
	fuzz_cfg.smtpd_auth_user = (char *)(uintptr_t)"";
	if (net_cidr_list_parse("127.0.0.0/8", &fuzz_cfg.client_networks, err, sizeof(err)) != 0)
		abort();
	fuzz_lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&fuzz_addr, 0, sizeof(fuzz_addr));
	fuzz_addr.sin_family = AF_INET;
	fuzz_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fuzz_lfd < 0 || bind(fuzz_lfd, (struct sockaddr *)&fuzz_addr, sizeof(fuzz_addr)) != 0 ||
	    listen(fuzz_lfd, 4) != 0 ||
	    getsockname(fuzz_lfd, (struct sockaddr *)&fuzz_addr, &sl) != 0)
		abort();
	signal(SIGPIPE, SIG_IGN);
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
	int c, s, fl;
	size_t off = 0;
	char sink[65536];

	if (fuzz_lfd < 0)
		fuzz_init();
	if (size > 16384)
		return 0;
	c = socket(AF_INET, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&fuzz_addr, sizeof(fuzz_addr)) != 0)
		abort();
	s = accept(fuzz_lfd, NULL, NULL);
	if (s < 0)
		abort();
	/* the whole input is in the kernel before the session starts */
	while (off < size) {
		ssize_t n = write(c, data + off, size - off);
		if (n <= 0)
			abort();
		off += (size_t)n;
	}
	shutdown(c, SHUT_WR);
	fl = fcntl(c, F_GETFL);
	fcntl(c, F_SETFL, fl | O_NONBLOCK);
	(void)relay_smtpd_session(&fuzz_cfg, s);	/* closes s */
	while (read(c, sink, sizeof(sink)) > 0)
		;
	close(c);
	fuzz_check_queue();
	return 0;
}

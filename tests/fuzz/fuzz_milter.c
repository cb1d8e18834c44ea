/*
 * fuzz_milter — libFuzzer target for the gate's milter client
 * (gate/gate_milter.c, included for its static functions): arbitrary bytes
 * play a milter's replies to the end-of-message event — packets with
 * modifications, `y` replies, garbage — read over a socketpair and applied
 * to a small message, then the message is written out. Also the `y` reply
 * and header value validators on the raw input. Nothing a milter sends may
 * crash, leak or hang the client; the written message must keep CRLF line
 * ends and no bare CR or LF.
 *
 * Build and run (from the project root; clang from Debian's clang package):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=gnu11 -D_GNU_SOURCE \
 *     -Ilib -Ipolicy tests/fuzz/fuzz_milter.c lib/config.c lib/log.c lib/net.c \
 *     lib/smtp.c lib/io.c lib/tls.c -lssl -lcrypto -o build/fuzz_milter
 *   mkdir -p build/fuzz_milter.corpus && build/fuzz_milter -max_total_time=60 \
 *     -max_len=4096 build/fuzz_milter.corpus
 * It has no main(): the Makefile does not build tests/fuzz/.
 */
#include "../../gate/gate_milter.c"
#include "../../gate/gate_milter_conf.c"
#include "../../gate/gate_milter_msg.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fuzz_msg[] =
	"From: a@example.test\r\nSubject: s\r\nX-Two: a\r\n b\r\n\r\nbody\r\n";

static void
fuzz_check_output(FILE *f)
{
	int c, prev = 0, in_value = 0;

	(void)in_value;
	if (fseek(f, 0, SEEK_SET) != 0)
		abort();
	while ((c = fgetc(f)) != EOF) {
		if (c == '\n' && prev != '\r')
			abort();	/* bare LF written */
		if (prev == '\r' && c != '\n')
			abort();	/* bare CR written */
		prev = c;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gate_milter_conf conf = { .spec = (char *)"fuzz", .family = AF_UNIX,
		.default_action = GMD_TEMPFAIL, .connect_timeout = 1,
		.command_timeout = 1, .eom_timeout = 1 };
	struct gate_milter_set set = { &conf, 1, 1 << 16 };
	struct gate_milter_session *s;
	struct gate_milter_msg msg;
	struct gm_milter *m;
	char reply[GATE_MILTER_REPLY_MAX], *copy;
	enum gate_milter_verdict v;
	const char *why;
	FILE *in, *out;
	int sv[2];

	static int once;
	if (!once) {
		log_init("fuzz", 1);
		log_set_debug(0);
		once = 1;
	}
	/* validators on the raw bytes */
	if ((copy = malloc(size + 1)) == NULL)
		return 0;
	memcpy(copy, data, size);
	copy[size] = 0;
	(void)gm_check_yreply(copy, size + 1, &v, reply, sizeof reply);
	(void)gm_check_hname(copy);
	(void)gm_check_hvalue("X-Fuzz", copy);
	free(copy);

	/* the bytes as a milter's replies at end of message */
	if (size > 60000 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return 0;
	if (size && write(sv[1], data, size) != (ssize_t)size) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	shutdown(sv[1], SHUT_WR);
	s = gate_milter_session_new(&set, "fuzz", NULL, NULL);
	in = fmemopen((void *)fuzz_msg, sizeof fuzz_msg - 1, "r");
	if (s == NULL || in == NULL || gate_milter_msg_read(&msg, in, &why) != 0)
		abort();
	m = &s->m[0];
	m->fd = sv[0];
	m->state = GS_ENVELOPE;
	m->actions = GM_ACTIONS;
	m->proto = (size & 1) ? P_HDR_LEADSPC : 0;
	if ((m->rbuf = malloc(GM_DATA_MAX + 1)) == NULL)
		abort();
	s->in_txn = 1;
	(void)gm_eom(s, m, &msg, gm_now_ms() + 1000, reply, sizeof reply);
	if ((out = tmpfile()) == NULL)
		abort();
	if (gate_milter_msg_write(&msg, out) == 0)
		fuzz_check_output(out);
	fclose(out);
	gate_milter_msg_free(&msg);
	fclose(in);
	gate_milter_session_free(s);	/* closes sv[0] if still open */
	close(sv[1]);
	return 0;
}

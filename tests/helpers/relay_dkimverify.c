/*
 * relay_dkimverify — verify the DKIM signatures of one message with
 * libopendkim, taking the public keys from a local file instead of DNS
 * (DKIM_QUERY_FILE), for tests of tailwart-relay's signing.
 *
 *   relay_dkimverify KEYS MESSAGE
 *
 * KEYS holds lines "SELECTOR._domainkey.DOMAIN v=DKIM1; k=rsa; p=BASE64".
 * MESSAGE may have LF or CRLF line ends (a Maildir file has LF).
 * Prints "pass d=DOMAIN s=SELECTOR" and exits 0 when a signature verified;
 * otherwise prints "fail: REASON" and exits 1 (2 on usage errors).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <opendkim/dkim.h>

int main(int argc, char **argv);

int
main(int argc, char **argv)
{
	DKIM_LIB *lib;
	DKIM *d;
	DKIM_STAT st;
	DKIM_SIGINFO *sig;
	FILE *f;
	unsigned char buf[65536];
	size_t n;
	unsigned int flags = DKIM_LIBFLAGS_FIXCRLF;
	dkim_query_t qm = DKIM_QUERY_FILE;

	if (argc != 3) {
		fprintf(stderr, "usage: relay_dkimverify KEYS MESSAGE\n");
		return 2;
	}
	lib = dkim_init(NULL, NULL);
	if (lib == NULL) {
		printf("fail: dkim_init\n");
		return 1;
	}
	if (dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof(flags)) != DKIM_STAT_OK ||
	    dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYMETHOD, &qm, sizeof(qm)) != DKIM_STAT_OK ||
	    dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYINFO, argv[1], strlen(argv[1])) != DKIM_STAT_OK) {
		printf("fail: dkim_options\n");
		return 1;
	}
	d = dkim_verify(lib, (const unsigned char *)"verify", NULL, &st);
	if (d == NULL) {
		printf("fail: dkim_verify: %s\n", dkim_getresultstr(st));
		return 1;
	}
	f = fopen(argv[2], "rb");
	if (f == NULL) {
		printf("fail: cannot open %s\n", argv[2]);
		return 1;
	}
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		st = dkim_chunk(d, buf, n);
		if (st != DKIM_STAT_OK) {
			printf("fail: dkim_chunk: %s\n", dkim_getresultstr(st));
			return 1;
		}
	}
	if (fclose(f) != 0) {
		printf("fail: read error\n");
		return 1;
	}
	(void)dkim_chunk(d, NULL, 0);
	st = dkim_eom(d, NULL);
	sig = dkim_getsignature(d);
	if (st != DKIM_STAT_OK || sig == NULL) {
		const char *e = dkim_geterror(d);
		printf("fail: %s%s%s", dkim_getresultstr(st), e ? ": " : "", e ? e : "");
		if (sig)
			printf(" (%s)", dkim_sig_geterrorstr(dkim_sig_geterror(sig)));
		printf("\n");
		return 1;
	}
	if (!(dkim_sig_getflags(sig) & DKIM_SIGFLAG_PASSED) ||
	    dkim_sig_getbh(sig) != DKIM_SIGBH_MATCH) {
		printf("fail: signature did not pass (%s)\n",
		    dkim_sig_geterrorstr(dkim_sig_geterror(sig)));
		return 1;
	}
	printf("pass d=%s s=%s\n", dkim_sig_getdomain(sig), dkim_sig_getselector(sig));
	(void)dkim_free(d);
	dkim_close(lib);
	return 0;
}

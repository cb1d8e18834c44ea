/*
 * fuzz_policy — libFuzzer target for the parsers of policy/ that see
 * remote or operator input. The first byte picks the parser, the rest is
 * its input:
 *   0  policy_dns_parse (any type) + policy_dns_name / policy_dns_txt on
 *      every RR: a DNS answer from the network
 *   1  policy_dnsbl_parse + policy_dnsbl_classify: a dnsbl_sites value
 *   2  policy_rate_parse: a rate_limit value
 *   3  policy_grey_normalize: a sender address from MAIL FROM
 *   4  policy_spf_expand: an exp= explanation from DNS
 * Contract checked: no crash, outputs NUL-terminated within their buffers.
 *
 * Built and run by `make fuzz` (see tests/fuzz/README.md).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy_dns.h"
#include "policy_dnsbl.h"
#include "policy_grey.h"
#include "policy_rate.h"
#include "policy_spf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_str(const char *s, size_t cap)
{
	if (strnlen(s, cap) == cap)
		abort();
}

static int
on_rr(void *arg, const struct policy_dns_rr *rr)
{
	char name[256], txt[512];

	(void)arg;
	if (rr->rdata < rr->msg || rr->rdata + rr->rdlen > rr->eom)
		abort();	/* rdata must lie inside the packet */
	if (policy_dns_name(rr, rr->rdata, name, sizeof(name)) == 0)
		check_str(name, sizeof(name));
	if (rr->rdlen >= 3 && policy_dns_name(rr, rr->rdata + 2, name,
	    sizeof(name)) == 0)
		check_str(name, sizeof(name));
	(void)policy_dns_txt(rr->rdata, rr->rdlen, txt, sizeof(txt));
	check_str(txt, sizeof(txt));
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s, out[400];
	size_t i;

	if (size < 1)
		return 0;
	if (data[0] % 5 == 0) {
		(void)policy_dns_parse(data + 1, (int)(size - 1), 0, on_rr, NULL);
		return 0;
	}
	if ((s = malloc(size)) == NULL)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	switch (data[0] % 5) {
	case 1: {
		struct policy_dnsbl_config bc;
		policy_dnsbl_config_init(&bc);
		if (policy_dnsbl_parse(s, &bc) == NULL) {
			for (i = 0; i < bc.nzones; i++) {
				unsigned char a[4] = { 127, 0, 0, (unsigned char)i };
				check_str(bc.zones[i].zone, sizeof(bc.zones[i].zone));
				(void)policy_dnsbl_classify(&bc.zones[i], a);
			}
		}
		policy_dnsbl_free(&bc);
		break;
	}
	case 2: {
		struct policy_rate_spec spec;
		memset(&spec, 0, sizeof(spec));
		(void)policy_rate_parse(s, &spec);
		break;
	}
	case 3:
		(void)policy_grey_normalize(s, out, sizeof(out));
		check_str(out, sizeof(out));
		break;
	case 4:
		policy_spf_expand(out, sizeof(out), s, "192.0.2.1", "u@example.org",
		    "example.org", "mx.example.org");
		check_str(out, sizeof(out));
		break;
	}
	free(s);
	return 0;
}

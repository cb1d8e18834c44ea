/*
 * test_milter_ar — unit tests for tailwart-milter's Authentication-Results
 * helpers (milter/milter_ar.c, included): the authserv-id parsed as RFC
 * 8601 says (CFWS before it, nested comments with quoted-pairs, a
 * quoted-string id, folding), ours or not, and noting forged headers with
 * no upper limit (issue 8, defect 5: the 17th and later were kept).
 */
#include "unit.h"
#include "../../milter/milter_ar.c"

struct ar_case {
	const char	*value;
	const char	*id;		/* NULL: no id */
};

static const struct ar_case ar_cases[] = {
	{ "mx.test; spf=pass", "mx.test" },
	{ " mx.test; spf=pass", "mx.test" },
	{ "mx.test", "mx.test" },
	{ "mx.test 1; spf=pass", "mx.test" },
	{ "(trusted) mx.test; dkim=pass", "mx.test" },
	{ " (a (nested \\) comment) here)\r\n\tmx.test; none", "mx.test" },
	{ "\"mx.test\"; dkim=pass", "mx.test" },
	{ " \"mx.\\test\" ; none", "mx.test" },
	{ "\r\n mx.test;none", "mx.test" },
	{ "(c)\"mx.test\";none", "mx.test" },
	{ "mx.test.evil; none", "mx.test.evil" },
	{ "mx.test(comment); none", "mx.test" },
	{ "", NULL },
	{ "   ", NULL },
	{ "(unterminated comment mx.test; none", NULL },
	{ "\"unterminated mx.test; none", NULL },
	{ "; spf=pass", NULL },
	{ "(only a comment)", NULL },
};

TEST(authserv_id)
{
	for (size_t i = 0; i < sizeof ar_cases / sizeof ar_cases[0]; i++) {
		char out[64];
		int r = milter_ar_authserv_id(ar_cases[i].value, out, sizeof out);

		if (ar_cases[i].id == NULL) {
			if (r != -1)
				FAILF("case %zu \"%s\": got id \"%s\", expected none", i,
				    ar_cases[i].value, out);
		} else if (r != 0 || strcmp(out, ar_cases[i].id) != 0)
			FAILF("case %zu \"%s\": r=%d id \"%s\", expected \"%s\"", i,
			    ar_cases[i].value, r, out, ar_cases[i].id);
	}
}

TEST(ours)
{
	EXPECT_INT(milter_ar_ours("(trusted) mx.test; dkim=pass", "mx.test"), 1);
	EXPECT_INT(milter_ar_ours("\"MX.Test\"; dkim=pass", "mx.test"), 1);
	EXPECT_INT(milter_ar_ours("mx.test.evil; none", "mx.test"), 0);
	EXPECT_INT(milter_ar_ours("mx.tes; none", "mx.test"), 0);
	EXPECT_INT(milter_ar_ours("other.example (mx.test); none", "mx.test"), 0);
	/* an id longer than the buffer is not ours */
	char big[600];

	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = 0;
	EXPECT_INT(milter_ar_ours(big, "mx.test"), 0);
}

TEST(note_many)
{
	struct milter_conn c;

	memset(&c, 0, sizeof c);
	for (unsigned i = 1; i <= 500; i++)
		EXPECT_INT(milter_ar_note(&c, i), 0);
	EXPECT_INT(c.nforged, 500);
	EXPECT_INT(c.ar_forged[0], 1);
	EXPECT_INT(c.ar_forged[16], 17);
	EXPECT_INT(c.ar_forged[499], 500);
	free(c.ar_forged);
}

int
main(void)
{
	RUN(authserv_id);
	RUN(ours);
	RUN(note_many);
	return unit_done();
}

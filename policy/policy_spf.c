/*
 * policy_spf.c — SPF evaluation with libspf2 over policy_dns, result to
 * action mapping. See policy_spf.h.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

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

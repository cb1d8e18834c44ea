/*
 * relay_dkim — DKIM signing at enqueue (libopendkim), relaxed/relaxed,
 * rsa-sha256, one key per sender domain (the From: header's domain, then
 * its parents, then the `*` key).
 *
 * The receiver calls relay_dkim_sign() once, after the message bytes are
 * in the incoming file and before the commit, so every retry sends the same
 * signed bytes. The returned header (caller frees) ends with CRLF and is
 * stored in the queue file's trailer; delivery sends it before the message.
 */
#ifndef RELAY_DKIM_H
#define RELAY_DKIM_H

#include <stddef.h>
#include <sys/types.h>
#include "relay_config.h"

enum relay_dkim_result {
	RELAY_DKIM_SIGNED,
	RELAY_DKIM_NOKEY,	/* no key for this domain: sent unsigned */
	RELAY_DKIM_ERROR,	/* why set; the receiver answers 451 */
};

enum relay_dkim_result relay_dkim_sign(const struct relay_config *cfg,
	    const char *id, int fd, off_t off, off_t len,
	    char **hdr, size_t *hdrlen, char *why, size_t whylen);
/* Sign a tiny message with every configured key (start-up / -n). 0 / -1. */
int relay_dkim_check_keys(const struct relay_config *cfg, char *why, size_t whylen);
/* The domain of the first From: header in a header block, or -1. */
int relay_dkim_from_domain(const char *hdrs, size_t len, char *dom, size_t domlen);

#endif

/*
 * gate_milter_int.h — internals shared by gate_milter.c, gate_milter_conf.c
 * and gate_milter_msg.c (one module split over three files). Not for use
 * outside them.
 */
#ifndef GATE_MILTER_INT_H
#define GATE_MILTER_INT_H

#include <stddef.h>
#include <stdio.h>

#include "gate_milter.h"

#define GM_LINE_MAX	998	/* header line, RFC 5322 2.1.1 */
#define GM_MAX_HDRS	10000
#define GM_MAX_MODS	1000	/* modification requests of one milter per message */

/* Length of a header name without blanks before the colon. */
size_t gm_name_len(const char *name);
/* Insert a header at pos, taking ownership of name and value. 0 / -1. */
int    gm_hdr_insert(struct gate_milter_msg *m, size_t pos, char *name, char *value);
/* The body stream positioned at its start, or NULL. */
FILE  *gm_body_rewind(const struct gate_milter_msg *m);

#endif

/*
 * relay_dns — MX lookup for `smarthost = host:port` (c-ares, synchronous,
 * bounded by a deadline). The A/AAAA step is done by net_connect().
 *
 * relay_dns_mx() fills `hosts` with the exchangers in preference order, or
 * with the name itself when the domain has no MX (RFC 5321 5.1 implicit
 * MX). Returns 0, or -1 on any DNS failure (timeout, SERVFAIL, NXDOMAIN):
 * the caller defers, never bounces.
 */
#ifndef RELAY_DNS_H
#define RELAY_DNS_H

#include <stddef.h>

#define RELAY_MX_MAX	8

int relay_dns_mx(const char *name, const char *resolver, int timeout_ms,
	    char hosts[][256], size_t *n, char *err, size_t errlen);

#endif

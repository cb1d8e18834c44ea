/*
 * relay_dns — DNS for `smarthost = host:port` (c-ares, synchronous, each
 * call bounded by a deadline): the MX lookup, then the A/AAAA lookup of
 * each exchanger, both through the configured resolver. (`[host]:port`
 * entries skip both and connect through the system resolver, so /etc/hosts
 * and container names work.)
 *
 * relay_dns_mx() fills `hosts` with the exchangers in preference order, or
 * with the name itself when the domain has no MX (RFC 5321 5.1 implicit
 * MX). relay_dns_addrs() fills numeric addresses. Both return 0, or -1 on
 * any DNS failure (timeout, SERVFAIL, NXDOMAIN, no address) with a reason
 * in err: the caller defers, never bounces.
 */
#ifndef RELAY_DNS_H
#define RELAY_DNS_H

#include <stddef.h>

#define RELAY_MX_MAX	8
#define RELAY_ADDR_MAX	8

int relay_dns_mx(const char *name, const char *resolver, int timeout_ms,
	    char hosts[][256], size_t *n, char *err, size_t errlen);
int relay_dns_addrs(const char *name, const char *resolver, int timeout_ms,
	    char addrs[][64], size_t *n, char *err, size_t errlen);

#endif

/*
 * tls — OpenSSL contexts and facts about a TLS session.
 *
 * tls_server_ctx() loads a certificate chain and key (re-called on reload);
 * tls_client_ctx() builds a client context: verify = 0 accepts anything
 * (opportunistic), verify = 1 checks the chain against `ca_file` (NULL =
 * system default) — the host name is checked per connection by
 * io_starttls_client() when sni is given and the ctx verifies.
 */
#ifndef LIB_TLS_H
#define LIB_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

SSL_CTX	*tls_server_ctx(const char *cert, const char *key, char *err, size_t errlen);
SSL_CTX	*tls_client_ctx(int verify, const char *ca_file, char *err, size_t errlen);
/* Last OpenSSL error (or errno text) into buf; returns buf. */
const char *tls_last_error(char *buf, size_t len);

#endif

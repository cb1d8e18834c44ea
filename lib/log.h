/*
 * log — one key=value line per event, to syslog (LOG_MAIL) or to stderr
 * when the program runs in the foreground (-f).
 *
 * log_init() once at start-up; log_reopen() on SIGUSR1 (re-opens the syslog
 * connection). Every line should start with the session or queue id, then
 * key=value pairs: "4f2a9c01 reject stage=rcpt reason=greylist ...".
 * fatal() is for start-up, config and broken invariants only: it logs and
 * exits(1). Nothing a remote peer sends may lead to fatal().
 */
#ifndef LIB_LOG_H
#define LIB_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

enum log_level { LOG_LVL_ERR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

void log_init(const char *ident, int foreground);
void log_set_debug(int on);
void log_reopen(void);
/* Call in a child right after fork() (the cached pid changes). */
void log_after_fork(void);
void log_msg(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level lvl, const char *fmt, va_list ap);

#define log_err(...)   log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

void fatal(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

/* Copy s into dst (size dstlen) so that it is safe inside a quoted log value:
 * control characters and '"' become '?'/'\''; truncated with "..." if long.
 * Returns dst. */
char *log_quote(char *dst, size_t dstlen, const char *s, size_t slen);

/* log_q(s): log_quote() of a NUL-terminated value (an address or name the
 * client chose) into a buffer that lives to the end of the enclosing block,
 * for a quoted field in one log call: log_info("from=\"<%s>\"", log_q(a)).
 * A quoted local part cannot then fake key=value fields. */
#define LOG_QMAX	320
#define log_q(s)	log_quote((char[LOG_QMAX]){ 0 }, LOG_QMAX, (s), strlen(s))

#endif

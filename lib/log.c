/*
 * log — syslog (LOG_MAIL) or stderr output of one-line events.
 * State: the ident and the foreground flag, set once by log_init().
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static char log_ident[32] = "tailwart";
static int log_foreground = 1;
static int log_debug_on;
static long log_pid;		/* getpid() is a system call: cached */

void
log_init(const char *ident, int foreground)
{
	snprintf(log_ident, sizeof(log_ident), "%s", ident);
	log_foreground = foreground;
	log_pid = (long)getpid();
	if (!foreground)
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_set_debug(int on)
{
	log_debug_on = on;
}

void
log_after_fork(void)
{
	log_pid = (long)getpid();
}

void
log_reopen(void)
{
	if (!log_foreground) {
		closelog();
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
	}
}

void
log_vmsg(enum log_level lvl, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	static const char *const name[] = { "error: ", "warning: ", "", "debug: " };
	char buf[2048];
	int saved = errno;

	if (lvl == LOG_LVL_DEBUG && !log_debug_on)
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (log_foreground) {
		struct timespec ts;
		struct tm tm;
		char tbuf[32] = "";
		if (clock_gettime(CLOCK_REALTIME, &ts) == 0 &&
		    localtime_r(&ts.tv_sec, &tm) != NULL)
			strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ld %s[%ld]: %s%s\n", tbuf,
		    ts.tv_nsec / 1000000, log_ident, log_pid ? log_pid : (long)getpid(), name[lvl], buf);
	} else
		syslog(prio[lvl], "%s%s", name[lvl], buf);
	errno = saved;
}

void
log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(lvl, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_ERR, fmt, ap);
	va_end(ap);
	exit(1);
}

char *
log_quote(char *dst, size_t dstlen, const char *s, size_t slen)
{
	size_t i, o = 0;

	if (dstlen == 0)
		return dst;
	for (i = 0; i < slen && o + 1 < dstlen; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\r' || c == '\n')
			continue;
		if (o + 4 >= dstlen && i + 1 < slen) {
			memcpy(dst + o, "...", 3);
			o += 3;
			break;
		}
		dst[o++] = (c < 0x20 || c == 0x7f) ? '?' : (c == '"' ? '\'' : (char)c);
	}
	dst[o] = '\0';
	return dst;
}

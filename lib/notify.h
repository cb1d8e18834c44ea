/*
 * notify — tells systemd (Type=notify units) where a daemon stands, through
 * libsystemd's sd_notify().  Each call sends one state to $NOTIFY_SOCKET;
 * without NOTIFY_SOCKET (not started by systemd, or by systemd for a unit of
 * another type) it does nothing and returns 0.
 *
 * Call from the main process only (a unit's NotifyAccess=main):
 *   notify_ready()      the listeners are bound and the workers are up, and
 *                       again when a reload is done
 *   notify_reloading()  a reload (HUP) starts
 *   notify_stopping()   a stop (TERM) starts
 * Each returns 0, or -1 after logging why the message could not be sent.
 */
#ifndef LIB_NOTIFY_H
#define LIB_NOTIFY_H

int notify_ready(void);
int notify_reloading(void);
int notify_stopping(void);

#endif

/*
 * gate.h — tailwart-gate's shared types: settings (from gate.conf), the
 * listener set, and the entry points of each process (master, worker,
 * passthrough). Owned by the gate; nothing outside gate/ includes it.
 */
#ifndef GATE_H
#define GATE_H

#include <signal.h>
#include <stddef.h>
#include <sys/socket.h>
#include <openssl/ssl.h>

#include "config.h"
#include "net.h"
#include "policy_config.h"
#include "policy_dns.h"
#include "policy_store.h"
#include "gate_milter.h"
#include "proxy.h"
#include "gate_backends.h"

enum gate_handoff { HANDOFF_PROXY_V2, HANDOFF_XCLIENT, HANDOFF_NONE };
enum gate_helo_check { HELO_CHECK_NONE, HELO_CHECK_FQDN };

/* Settings from gate.conf. Filled by gate_config_load(), freed by
 * gate_config_free(); the master owns the current one and hands a copy
 * (by fork) to each child. */
struct gate_settings {
	struct conf_list listen;
	struct conf_list passthrough;
	char		*trusted_proxies_s;
	char		*hostname;
	char		*backend_s;
	int		 handoff;		/* enum gate_handoff */
	unsigned long long workers_min, workers_max, worker_max_sessions;
	char		*user;
	char		*pid_file;
	char		*tls_cert, *tls_key;
	size_t		 message_size_limit;
	unsigned long long max_recipients, max_errors, passthrough_max_connections;
	unsigned long long passthrough_max_per_ip;
	unsigned	 passthrough_idle_timeout;
	unsigned	 timeout_command, timeout_data, timeout_proxy;
	unsigned	 timeout_session;	/* whole session, from the worker's start */
	unsigned	 backend_connect_timeout, backend_timeout, backend_data_timeout;
	unsigned	 drain_timeout;
	int		 backend_policy;	/* enum gate_backend_policy */
	unsigned long long backend_fail_max;
	unsigned	 backend_backoff, backend_backoff_max;
	unsigned	 backend_check_interval;	/* 0 = no active checks */
	int		 smtputf8;
	int		 helo_check;		/* enum gate_helo_check */
	int		 screen;		/* connections go through the screen */
	int		 pregreet_action;	/* enum policy_mode order: ignore|log|enforce */
	unsigned	 pregreet_wait, screen_cache_ttl;
	unsigned long long screen_max_connections;
	char		*metrics_listen;	/* "" = no metrics endpoint */
	struct policy_config policy;		/* the policy keys (policy_config_load) */
	struct gate_milter_set milters;		/* external milters (gate_milter_config) */
	int		 policy_loaded;

	/* derived */
	struct net_endpoint	 backend;	/* the first of backends (for logs) */
	struct gate_backend_list backends;	/* every address of `backend` */
	struct gate_backend_rule be_rule;
	struct net_endpoint	 metrics_ep;	/* metrics_listen, parsed */
	struct net_cidr_list	 trusted_proxies;
	struct gate_listener	*listeners;
	size_t			 nlisteners;
	const char		*file;
};

enum gate_listener_kind { LISTEN_SMTP, LISTEN_PASSTHROUGH };

struct gate_listener {
	enum gate_listener_kind kind;
	struct net_endpoint	addr;
	struct net_endpoint	target;		/* passthrough only: the first of targets */
	struct gate_backend_list targets;	/* passthrough: LISTEN=A|B, every address */
	int			fd;		/* -1 until bound */
};

int  gate_config_load(const char *path, struct gate_settings *s, char *err, size_t errlen);
void gate_config_free(struct gate_settings *s);

/* Runtime handed to children: settings plus opened resources. */
struct gate_runtime {
	struct gate_settings	*cfg;
	SSL_CTX			*tls;		/* NULL: no STARTTLS */
	/* Scoreboard shared (MAP_SHARED) between the master and its children:
	 * a child stores its state ('I' idle, 'B' busy) in scoreboard[slot];
	 * the master reads it on its tick. No syscall, no wake-up per session. */
	unsigned char		*scoreboard;
	unsigned		 slot;
	/* Backend health shared the same way (gate_backends.h). */
	struct gate_backend_board *backends;
	struct policy_store	*store;		/* NULL when no check needs it */
	struct policy_dns	*dns;		/* per process, opened on first use */
	int			 pass_fd;	/* screen: send end; worker: receive end */
	unsigned		 generation;
};

#define GATE_MAX_CHILDREN	8192

/* Screen -> worker hand-off message (with the socket as SCM_RIGHTS). */
#define GATE_PASS_MAGIC		0x74776731u
#define GATE_PASS_BYTES		1024
#define GATE_PASS_ALLOW		0x01	/* on the allow list */
#define GATE_PASS_DNSWL		0x02	/* DNSWL score: skip greylisting */
#define GATE_PASS_RATE_OWED	0x04	/* a concurrency slot to give back */
#define GATE_PASS_GREETED	0x08	/* the 220 greeting was sent */

struct gate_pass {
	unsigned		magic;
	unsigned		flags;
	struct sockaddr_storage	peer, local;
	char			id[11];
	unsigned		nbytes;
	char			bytes[GATE_PASS_BYTES];	/* read by the screen */
};

/* Screen: accept and screen connections, pass them to workers. */
void gate_screen_main(struct gate_runtime *rt) __attribute__((noreturn));
/* Worker: serve sessions until told to stop. Never returns. */
void gate_worker_main(struct gate_runtime *rt) __attribute__((noreturn));
/* Passthrough: event loop splicing the passthrough listeners. */
void gate_passthrough_main(struct gate_runtime *rt) __attribute__((noreturn));
/* Health: active checks of the backends (backend_check_interval). */
void gate_health_main(struct gate_runtime *rt) __attribute__((noreturn));
/* Master: supervise until TERM. Returns the exit code. */
int  gate_master_run(const char *conf_path, struct gate_settings *cfg, int foreground);


/* Signal flags (set by handlers, read by loops). */
extern volatile sig_atomic_t gate_sig_term;

/* gate_child.c: signal set-up of every child; monotonic milliseconds. */
void gate_child_signals(void);
long long gate_now_ms(void);

/* Session (gate_session.c): serve one client connection to the end.
 * `peer` is the real client address (after an inbound PROXY header), `local`
 * the address it connected to; `pass` (or NULL) what the screen decided
 * and read. Closes nothing: the caller owns fd. */
void gate_session_run(struct gate_runtime *rt, int fd,
	    const struct sockaddr_storage *peer, const struct sockaddr_storage *local,
	    const struct gate_pass *pass);

/* Policy hooks (gate_policy.c); see there. */
struct gate_session;
int  gate_policy_connect(struct gate_session *s);
int  gate_policy_mail(struct gate_session *s, const char *sender);
int  gate_policy_rcpt(struct gate_session *s, const char *rcpt);
int  gate_policy_error(struct gate_session *s);
void gate_policy_end(struct gate_session *s);
int  gate_policy_needs_store(const struct gate_settings *cfg);
int  gate_policy_received_spf(const struct gate_session *s, char *buf, size_t len);

/* Privileges (gate_priv.c). */
int  gate_priv_lookup(const char *user, uid_t *uid, gid_t *gid);
int  gate_priv_drop(uid_t uid, gid_t gid);

/* Inbound PROXY header from a trusted peer (gate_inproxy.c): reads exactly
 * the header (peek, then consume) within timeout_ms; fills peer/local.
 * Returns 0, or -1 with *why set. */
int  gate_inproxy_read(int fd, int timeout_ms, struct sockaddr_storage *peer,
	    struct sockaddr_storage *local, const char **why);
/* The same without blocking, for event loops (see gate_inproxy.c). */
enum proxy_status gate_inproxy_feed(int fd, unsigned char *buf, size_t *len,
	    struct sockaddr_storage *peer, struct sockaddr_storage *local, size_t *used,
	    const char **why, int *closed);
/* The src/dst pair of an outbound PROXY header (mixed families mapped). */
void gate_inproxy_pair(struct proxy_info *pi, const struct sockaddr_storage *peer,
	    const struct sockaddr_storage *local);

#endif

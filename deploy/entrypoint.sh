#!/bin/bash
# entrypoint.sh - the tailwart image's entry point (/usr/local/bin/tailwart).
#
#   tailwart gate [ARGS]       tailwart-gate in the foreground, logs on stderr
#   tailwart relay [ARGS]      tailwart-relay likewise
#   tailwart milter [ARGS]     tailwart-milter likewise (reads gate.conf)
#   tailwart check [gate|relay] check the configuration(s) (-n) and exit
#   tailwart queue CMD [ID]    the relay's queue commands (list, flush ...)
#   tailwart health gate|relay SMTP greeting probe of the first listener,
#                              for the healthchecks: exit 0 when it answers
#   anything else              run as given (tailwart-gate -n, bash ...)
#
# Configurations: /etc/tailwart/gate.conf and /etc/tailwart/smarthost.conf
# (override with TAILWART_GATE_CONF / TAILWART_RELAY_CONF). Each program
# starts as root and drops to the user "tailwart" in its children.
set -eu

GATE_CONF=${TAILWART_GATE_CONF:-/etc/tailwart/gate.conf}
RELAY_CONF=${TAILWART_RELAY_CONF:-/etc/tailwart/smarthost.conf}

# health_probe LISTEN: connect to the first ADDR:PORT of a listen list (a
# wildcard address means loopback), read one line within 5 s; healthy when
# it is an SMTP greeting: 220, or 554 from a relay that refuses this address
# (the daemon still answers). The gate's screen sends its "220-" teaser at
# once, so the probe never waits out the pregreet delay, and it sends
# nothing, so it is never a pregreet offender.
health_probe() {
	local ep=${1%%,*} host port line
	ep=${ep//[[:space:]]/}
	port=${ep##*:}
	host=${ep%:*}
	host=${host#[}
	host=${host%]}
	case $host in
	0.0.0.0 | '') host=127.0.0.1 ;;
	::) host=::1 ;;
	esac
	exec 3<>"/dev/tcp/$host/$port" || return 1
	IFS= read -r -t 5 line <&3 || return 1
	exec 3<&-
	[[ $line =~ ^(220|554)[\ -] ]] || { echo "unexpected greeting: $line" >&2; return 1; }
	echo "ok $host:$port ${line%$'\r'}"
}

cmd=${1:-gate}
[ $# -gt 0 ] && shift
case $cmd in
gate) exec tailwart-gate -f -c "$GATE_CONF" "$@" ;;
relay) exec tailwart-relay -f -c "$RELAY_CONF" "$@" ;;
milter) exec tailwart-milter -f -c "$GATE_CONF" "$@" ;;
queue) exec tailwart-relay -c "$RELAY_CONF" queue "$@" ;;
check)
	case ${1:-both} in
	gate) exec tailwart-gate -n -c "$GATE_CONF" ;;
	relay) exec tailwart-relay -n -c "$RELAY_CONF" ;;
	both) tailwart-gate -n -c "$GATE_CONF" && exec tailwart-relay -n -c "$RELAY_CONF" ;;
	*) echo "usage: tailwart check [gate|relay]" >&2; exit 2 ;;
	esac
	;;
health)
	case ${1:-} in
	gate) health_probe "${GATE_LISTEN:?}" ;;
	relay) health_probe "${RELAY_LISTEN:?}" ;;
	*) echo "usage: tailwart health gate|relay" >&2; exit 2 ;;
	esac
	;;
*) exec "$cmd" "$@" ;;
esac

#!/bin/sh
# sink.sh - Postfix's smtp-sink on loopback, a fast backend for benchmarks.
#
#   sh tests/peers/sink.sh start PORT     (extra smtp-sink flags in $SINK_OPTS)
#   sh tests/peers/sink.sh stop PORT
#
# smtp-sink accepts and discards every message; it speaks plain SMTP, not
# PROXY, so point a gate at it with backend_handoff = none.  (Its XCLIENT
# knows only NAME and HELO and answers 250 instead of the 220 greeting that
# Postfix sends, so a gate with backend_handoff = xclient refuses it.)  Its pid is kept in ${TW_SINK_DIR:-/tmp}/tailwart-sink-PORT.pid
# and its output in ...-PORT.log.
set -eu

SINK=/usr/sbin/smtp-sink
[ -x "$SINK" ] || SINK=$(command -v smtp-sink || true)
dir=${TW_SINK_DIR:-/tmp}

usage() { echo "usage: $0 start|stop PORT" >&2; exit 2; }
[ $# -ge 2 ] || usage
port=$2
pidf="$dir/tailwart-sink-$port.pid"
logf="$dir/tailwart-sink-$port.log"

case "$1" in
start)
	[ -n "$SINK" ] || { echo "sink.sh: smtp-sink not found (postfix package)" >&2; exit 1; }
	if nc -z -w 1 127.0.0.1 "$port" >/dev/null 2>&1; then
		echo "sink.sh: 127.0.0.1:$port is already in use" >&2
		exit 1
	fi
	# shellcheck disable=SC2086
	"$SINK" -u postfix -m 1024 ${SINK_OPTS:-} "127.0.0.1:$port" 1000 \
		>"$logf" 2>&1 </dev/null &
	echo $! >"$pidf"
	i=0
	while ! nc -z -w 1 127.0.0.1 "$port" >/dev/null 2>&1; do
		i=$((i + 1))
		if [ $i -gt 50 ] || ! kill -0 "$(cat "$pidf")" 2>/dev/null; then
			echo "sink.sh: smtp-sink did not come up on 127.0.0.1:$port" >&2
			cat "$logf" >&2
			exit 1
		fi
		sleep 0.1
	done
	echo "sink.sh: smtp-sink on 127.0.0.1:$port, pid $(cat "$pidf")"
	;;
stop)
	[ -r "$pidf" ] || exit 0
	pid=$(cat "$pidf")
	if kill "$pid" 2>/dev/null; then
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
			i=$((i + 1)); sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$pidf"
	;;
*) usage ;;
esac

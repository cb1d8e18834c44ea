#!/bin/sh
# redis.sh - a private redis-server on loopback for the shared-store tests.
#
#   tests/peers/redis.sh start DIR [PORT]     (default 6390, 127.0.0.1 only)
#   tests/peers/redis.sh stop DIR
#
# No persistence (save "", appendonly no), protected mode on, daemonized,
# pid and log in DIR. It never touches the system redis service.
set -eu

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR [PORT]" >&2; exit 2; }

stop() {
	[ -f "$dir/redis.pid" ] || return 0
	pid=$(cat "$dir/redis.pid" 2>/dev/null || true)
	case "$pid" in ''|*[!0-9]*) rm -f "$dir/redis.pid"; return 0 ;; esac
	kill "$pid" 2>/dev/null || true
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -9 "$pid" 2>/dev/null || true
	rm -f "$dir/redis.pid"
}

if [ "$cmd" = stop ]; then
	stop
	exit 0
fi
[ "$cmd" = start ] || { echo "usage: $0 start|stop DIR [PORT]" >&2; exit 2; }

port=${3:-6390}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
stop
redis-server --port "$port" --bind 127.0.0.1 --daemonize yes \
	--pidfile "$dir/redis.pid" --dir "$dir" --logfile "$dir/redis.log" \
	--save "" --appendonly no --protected-mode yes >/dev/null
i=0
while [ $i -lt 50 ]; do
	if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
		exit 0
	fi
	sleep 0.1
	i=$((i + 1))
done
echo "redis.sh: redis-server did not answer on $port, see $dir/redis.log" >&2
exit 1

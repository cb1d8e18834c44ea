#!/bin/sh
# prometheus.sh - a private Prometheus (the Debian package's binary) on
# loopback, scraping the targets it is given every second.
#
#   sh tests/peers/prometheus.sh start DIR PORT JOB=HOST:PORT...
#   sh tests/peers/prometheus.sh stop DIR
#   sh tests/peers/prometheus.sh query DIR PROMQL   (prints the first value,
#                                                    or nothing)
#
# DIR holds prometheus.yml, the TSDB (data/), prometheus.log and the pid
# file; nothing outside it is read or written (the system service and
# /etc/prometheus are left alone). Waits until the HTTP API answers.
set -eu

usage() { echo "usage: $0 start DIR PORT JOB=HOST:PORT... | stop DIR | query DIR EXPR" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1 dir=$2
shift 2

case "$cmd" in
start)
	[ $# -ge 2 ] || usage
	port=$1
	shift
	command -v prometheus >/dev/null || { echo "prometheus.sh: prometheus not installed" >&2; exit 1; }
	mkdir -p "$dir/data"
	{
		echo "global:"
		echo "  scrape_interval: 1s"
		echo "  scrape_timeout: 1s"
		echo "  evaluation_interval: 1s"
		echo "scrape_configs:"
		for t in "$@"; do
			echo "  - job_name: '${t%%=*}'"
			echo "    static_configs:"
			echo "      - targets: ['${t#*=}']"
		done
	} >"$dir/prometheus.yml"
	echo "$port" >"$dir/port"
	prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
		--web.listen-address="127.0.0.1:$port" --log.level=warn \
		>"$dir/prometheus.log" 2>&1 </dev/null &
	echo $! >"$dir/pid"
	i=0
	until curl -fs "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1; do
		i=$((i + 1))
		if [ $i -gt 100 ] || ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
			echo "prometheus.sh: not ready on 127.0.0.1:$port" >&2
			cat "$dir/prometheus.log" >&2
			exit 1
		fi
		sleep 0.2
	done
	;;
stop)
	[ -r "$dir/pid" ] || exit 0
	pid=$(cat "$dir/pid")
	# TERM, up to 5 s to flush the TSDB, then KILL
	kill "$pid" 2>/dev/null && ! timeout 5 tail --pid="$pid" -f /dev/null &&
		kill -9 "$pid" 2>/dev/null
	rm -f "$dir/pid"
	;;
query)
	[ $# -eq 1 ] || usage
	port=$(cat "$dir/port")
	curl -fsG "http://127.0.0.1:$port/api/v1/query" --data-urlencode "query=$1" |
		python3 -c 'import json,sys
r = json.load(sys.stdin)["data"]["result"]
print(r[0]["value"][1] if r else "")'
	;;
*) usage ;;
esac

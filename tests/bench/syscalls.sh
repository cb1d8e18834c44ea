#!/bin/sh
# bench/syscalls.sh — `make bench`: system calls per message in the gate
# (strace -c -f over the master, the screen and the worker: everything the
# gate does), 1,000 messages of 1 KiB over one session, backend_handoff =
# none in front of smtp-sink (no CHUNKING: the message goes as DATA, two
# round trips), then in front of Postfix (PROXY v2, CHUNKING: one BDAT LAST).
# Two clients: smtp-source -d (one command per write, waits for each reply)
# and tests/helpers/pipe_source (MAIL+RCPT+DATA in one write, RFC 2920).
# Issue 14's targets: <= 12 non-pipelined, <= 8 pipelined. One log line per
# message (a write(2) to the log) is counted. Loopback only, bounded.
set -eu
cd "$(dirname "$0")/../.."
. tests/bench/lib.sh
D=$(mktemp -d /tmp/tailwart-bench-sc.XXXXXX)
chmod 755 "$D"
N=${BENCH_SYSCALL_MSGS:-1000}
SESS=1	# workers_min in gate_conf: one worker serves the one session
SINK_PORT=29301 BE_PORT=29302 G_PORT=29310
command -v strace >/dev/null || { echo "syscalls: strace missing (make deps)"; exit 1; }

cleanup() {
	[ -f "$D/g.conf.pidfile" ] && kill "$(cat "$D/g.conf.pidfile")" 2>/dev/null || true
	TW_SINK_DIR=$D sh tests/peers/sink.sh stop $SINK_PORT >/dev/null 2>&1 || true
	sh tests/peers/backend.sh stop "$D/be" >/dev/null 2>&1 || true
	sleep 1
	rm -rf "$D"
}
trap cleanup EXIT INT TERM

TW_SINK_DIR=$D SINK_OPTS="-h bench.sink.test" sh tests/peers/sink.sh start $SINK_PORT >/dev/null
sh tests/peers/backend.sh start "$D/be" $BE_PORT proxy >/dev/null
postconf -c "$D/be/etc" -e 'virtual_transport = discard:' >/dev/null
postfix -c "$D/be/etc" reload >/dev/null 2>&1

# count BACKEND HANDOFF CLIENT -> "calls/msg (top calls)"
count() {
	gate_conf "$D/g.conf" $G_PORT "$1" "$2"
	GATE_WRAP="strace -f -c -S calls -o $D/strace.txt" start_gate "$D/g.conf" $G_PORT "$D/g.pid"
	if [ "$3" = pipe ]; then
		"$B/tests/pipe_source" -s 1 -m "$N" -l "$SIZE" -T 120 -f bench@example.org \
			-t user@example.test 127.0.0.1:$G_PORT >"$D/src.out" 2>&1
	else
		"$SRC" -c -d -s 1 -m "$N" -l "$SIZE" -f bench@example.org -t user@example.test \
			127.0.0.1:$G_PORT >"$D/src.out" 2>&1
	fi
	sleep 0.5
	kill "$(cat "$D/g.conf.pidfile")"	# the gate; strace ends with it
	wait "$(cat "$D/g.pid")" 2>/dev/null || true
	rm -f "$D/g.pid" "$D/g.conf.pidfile"
	ok=$(grep -c ' accepted from=' "$D/g.conf.log" || true)
	[ "$ok" -eq "$N" ] || { echo "syscalls: $ok of $N accepted" >&2; tail -n 3 "$D/g.conf.log" >&2; }
	awk -v n="$N" '$NF == "total" { t = $4 }
		$1 ~ /^[0-9.]+$/ && $NF != "total" && $4 / n >= 0.5 {
			top = top (top == "" ? "" : ", ") sprintf("%s %.1f", $NF, $4 / n) }
		END { printf "%5.1f /msg (%s)\n", t / n, top }' "$D/strace.txt"
}

echo "system calls per message in the gate (strace -c -f, $N messages, 1 session):"
printf '  %-60s %s\n' "smtp-source -d -> gate (none) -> smtp-sink (DATA)" "$(count 127.0.0.1:$SINK_PORT none src)"
printf '  %-60s %s\n' "pipe_source    -> gate (none) -> smtp-sink (DATA)" "$(count 127.0.0.1:$SINK_PORT none pipe)"
printf '  %-60s %s\n' "smtp-source -d -> gate (PROXY v2) -> Postfix (BDAT)" "$(count 127.0.0.1:$BE_PORT proxy-v2 src)"
printf '  %-60s %s\n' "pipe_source    -> gate (PROXY v2) -> Postfix (BDAT)" "$(count 127.0.0.1:$BE_PORT proxy-v2 pipe)"
echo "  (targets, issue 14: <= 12 non-pipelined, <= 8 pipelined; one log write per message included)"

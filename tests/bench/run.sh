#!/bin/sh
# bench/run.sh — `make bench`: tailwart-gate against the same backend driven
# directly, in the same run on the same machine; prints messages/s and ratios.
#
#   (a) smtp-source -> smtp-sink                      (b) smtp-source -> gate (handoff none) -> smtp-sink
#   (c) smtp-source -> gate (PROXY v2) -> Postfix     (d) smtp-source -> Postfix (same instance, plain port)
#   (g) pipe_source -> smtp-sink                      (h) pipe_source -> gate (handoff none) -> smtp-sink
#   (pipe_source: tests/helpers/pipe_source.c, MAIL+RCPT+DATA in one write like Postfix's client)
#   (e) smtp-source -> gate (handoff none) + 1 no-op milter -> smtp-sink
#   (m) smtp-source -> Postfix (same instance, plain port) + the same no-op milter:
#       m/d is what that milter costs Postfix, the reference for e/b
#
# Then the private memory (Private_Dirty, /proc/PID/smaps_rollup) of an idle
# worker. Everything runs on 127.0.0.1; counts are bounded (BENCH_MSGS,
# default 5000, 20 sessions, 1 KiB messages). Postfix discards what it
# queues (virtual_transport = discard) so delivery does not skew the runs.
set -eu
cd "$(dirname "$0")/../.."
. tests/bench/lib.sh	# gate_conf, start_gate, run; B MSGS SESS SIZE ROUNDS SRC RUNUSER
SRC_OPTS=${BENCH_SRC_OPTS--d}	# smtp-source -d: messages over SESS long sessions (issue 14's rows)
D=$(mktemp -d /tmp/tailwart-bench.XXXXXX)
chmod 755 "$D"	# Postfix (user postfix) must reach its queue below
SINK_PORT=29025 BE_PORT=29026 BE_PLAIN=29027 GA_PORT=29125 GC_PORT=29126 GM_PORT=29127 TM_PORT=29128
GX_PORT=29129 GX_METRICS=29130 BE_MILTER=29131

cleanup() {
	[ -f "$D/ga.pid" ] && kill "$(cat "$D/ga.pid")" 2>/dev/null || true
	[ -f "$D/gc.pid" ] && kill "$(cat "$D/gc.pid")" 2>/dev/null || true
	[ -f "$D/gm.pid" ] && kill "$(cat "$D/gm.pid")" 2>/dev/null || true
	[ -f "$D/tm.pid" ] && kill -9 "$(cat "$D/tm.pid")" 2>/dev/null || true
	[ -f "$D/gx.pid" ] && kill "$(cat "$D/gx.pid")" 2>/dev/null || true
	TW_SINK_DIR=$D sh tests/peers/sink.sh stop $SINK_PORT >/dev/null 2>&1 || true
	sh tests/peers/backend.sh stop "$D/be" >/dev/null 2>&1 || true
	sleep 1
	rm -rf "$D"
}
trap cleanup EXIT INT TERM

# prun PORT -> seconds, with the pipelining client (MAIL+RCPT+DATA in one write)
prun() {
	t0=$(date +%s.%N)
	"$B/tests/pipe_source" -s "$SESS" -m "$MSGS" -l "$SIZE" -T 120 -f bench@example.org \
		-t user@example.test 127.0.0.1:"$1" >"$D/src.out" 2>&1 || { cat "$D/src.out" >&2; return 1; }
	t1=$(date +%s.%N)
	echo "$t0 $t1" | awk '{ printf "%.3f\n", $2 - $1 }'
}

best() { # best PORT [RUNNER]: the fastest of ROUNDS runs (msgs/s)
	b=0
	for _ in $(seq 1 "$ROUNDS"); do
		s=$(${2:-run} "$1")
		r=$(echo "$MSGS $s" | awk '{ printf "%.0f", $1 / $2 }')
		[ "$r" -gt "$b" ] && b=$r
	done
	echo "$b"
}

echo "tailwart bench: $MSGS messages x ${SIZE} B, $SESS sessions, best of $ROUNDS; $(nproc) cores, $(uname -m)"

TW_SINK_DIR=$D SINK_OPTS="-h bench.sink.test" sh tests/peers/sink.sh start $SINK_PORT >/dev/null
sh tests/peers/backend.sh start "$D/be" $BE_PORT proxy >/dev/null
# same Postfix instance, a second smtpd without PROXY for (d), a third with
# the no-op milter of (e) for (m); discard on delivery
cat >>"$D/be/etc/master.cf" <<CF
127.0.0.1:$BE_PLAIN inet n  -       n       -       -       smtpd -o smtpd_upstream_proxy_protocol=
127.0.0.1:$BE_MILTER inet n  -       n       -       -       smtpd -o smtpd_upstream_proxy_protocol= -o smtpd_milters=inet:127.0.0.1:$TM_PORT -o milter_default_action=tempfail
CF
postconf -c "$D/be/etc" -e 'virtual_transport = discard:' 'default_process_limit = 200' >/dev/null
postfix -c "$D/be/etc" reload >/dev/null 2>&1
for _ in $(seq 1 50); do nc -z 127.0.0.1 $BE_PLAIN 2>/dev/null && break; sleep 0.1; done

gate_conf "$D/ga.conf" $GA_PORT 127.0.0.1:$SINK_PORT none
gate_conf "$D/gc.conf" $GC_PORT 127.0.0.1:$BE_PORT proxy-v2
start_gate "$D/ga.conf" $GA_PORT "$D/ga.pid"
start_gate "$D/gc.conf" $GC_PORT "$D/gc.pid"
# (e): the gate of (b) with one no-op milter (libmilter, continue/accept)
"$B/tests/testmilter" -s "inet:$TM_PORT@127.0.0.1" -a continue >/dev/null 2>&1 &
echo $! >"$D/tm.pid"
gate_conf "$D/gm.conf" $GM_PORT 127.0.0.1:$SINK_PORT none
echo "milters = inet:127.0.0.1:$TM_PORT" >>"$D/gm.conf"
start_gate "$D/gm.conf" $GM_PORT "$D/gm.pid"
# (f): the gate of (b) with metrics_listen set (counters on, endpoint up)
gate_conf "$D/gx.conf" $GX_PORT 127.0.0.1:$SINK_PORT none
echo "metrics_listen = 127.0.0.1:$GX_METRICS" >>"$D/gx.conf"
start_gate "$D/gx.conf" $GX_PORT "$D/gx.pid"

# warm-up (not measured)
MSGS_SAVED=$MSGS; MSGS=200
run $SINK_PORT >/dev/null; run $GA_PORT >/dev/null; run $BE_PLAIN >/dev/null; run $GC_PORT >/dev/null
run $GM_PORT >/dev/null; run $BE_MILTER >/dev/null; run $GX_PORT >/dev/null; prun $SINK_PORT >/dev/null; prun $GA_PORT >/dev/null
MSGS=$MSGS_SAVED

a=$(best $SINK_PORT); b=$(best $GA_PORT)
d=$(best $BE_PLAIN); c=$(best $GC_PORT)
e=$(best $GM_PORT); m=$(best $BE_MILTER)
# metrics on/off, alternated round by round so both see the same load
bx=0; f=0
for _ in $(seq 1 "$ROUNDS"); do
	r=$(best $GA_PORT); [ "$r" -gt "$bx" ] && bx=$r
	r=$(best $GX_PORT); [ "$r" -gt "$f" ] && f=$r
done
g=$(best $SINK_PORT prun); h=$(best $GA_PORT prun)
printf '%-52s %8s msg/s\n' "(a) smtp-sink directly" "$a"
printf '%-52s %8s msg/s\n' "(b) gate (handoff none) -> smtp-sink" "$b"
printf '%-52s %8s msg/s\n' "(c) gate (PROXY v2) -> Postfix backend" "$c"
printf '%-52s %8s msg/s\n' "(d) Postfix backend directly" "$d"
printf '%-52s %8s msg/s\n' "(e) gate (handoff none) + 1 no-op milter -> smtp-sink" "$e"
printf '%-52s %8s msg/s\n' "(m) Postfix directly + the same no-op milter" "$m"
printf '%-52s %8s msg/s (b again: %s)\n' "(f) gate (handoff none) with metrics -> smtp-sink" "$f" "$bx"
printf '%-52s %8s msg/s\n' "(g) pipelining client -> smtp-sink" "$g"
printf '%-52s %8s msg/s\n' "(h) pipelining client -> gate (none) -> smtp-sink" "$h"
echo "$g $h" | awk '{ printf "ratio h/g = %.2f (pipelining client, %s / %s msg/s, target >= 0.60)\n", $2/$1, $2, $1 }'
echo "$a $b $c $d $e" | awk '{ printf "ratio b/a = %.2f (target >= 0.50)\nratio c/d = %.2f (target >= 0.95)\nratio e/b = %.2f (milter, target >= 0.80)\n", $2/$1, $3/$4, $5/$2 }'
echo "$d $m" | awk '{ printf "ratio m/d = %.2f (what the same milter costs Postfix, %s / %s msg/s: the reference for e/b)\n", $2/$1, $2, $1 }'
echo "$bx $f" | awk '{ printf "ratio f/b = %.2f (metrics on/off, target >= 0.98)\n", $2/$1 }'
curl -fs "http://127.0.0.1:$GX_METRICS/metrics" | grep '^tailwart_gate_messages_total{result="accepted"}' || true

# memory of an idle worker (a child of gate (c)'s master that is idle now)
master=$(cat "$D/gc.pid")
sleep 1
best_kb=""
for p in $(pgrep -P "$master"); do
	kb=$(awk '/^Private_Dirty:/ { print $2 }' /proc/"$p"/smaps_rollup 2>/dev/null || true)
	[ -n "$kb" ] || continue
	if [ -z "$best_kb" ] || [ "$kb" -lt "$best_kb" ]; then best_kb=$kb; fi
	all="${all:-}$kb "
done
echo "idle worker Private_Dirty: ${best_kb:-?} KiB (all workers: ${all:-?}KiB; target <= 1024 KiB)"

#!/bin/bash
# bench/backends.sh — `make bench`: the cost of a second backend (issue 13).
#
#   (i) smtp-source -> gate (PROXY v2) -> 1 Postfix backend
#   (j) smtp-source -> gate (PROXY v2) -> 2 Postfix backends, round-robin
#   (m) smtp-source -> gate (PROXY v2) -> 2 backends that are two smtpd
#       services (own listener, own process pool) of the first Postfix
#       instance: the backend side does the same work as in (i), so m/i
#       is what balancing over two backends costs the gate itself
#
# The gates run side by side; the rows are measured in rotating order
# (i j m, m j i, ...) so all see the same load, best of BENCH_ROUNDS each
# (default 2). Prints both rates, ratio j/i (target >= 0.95) and how the
# messages of the (j) runs were split over the two backends (from their
# logs: one smtpd "client=" line per message received).
# As in run.sh: loopback only, bounded counts (BENCH_MSGS, default 5000;
# BENCH_SESSIONS, 20; 1 KiB), one connection per message (no -d), so every
# message is one hand-off and one choice of backend; Postfix discards
# what it queues (virtual_transport = discard). Ports 29201-29211.
set -eu
cd "$(dirname "$0")/../.."
. tests/bench/lib.sh
D=$(mktemp -d /tmp/tailwart-bebench.XXXXXX)
chmod 755 "$D"	# Postfix (user postfix) must reach its queue below
BE1_PORT=29201 BE2_PORT=29202 GI_PORT=29210 GJ_PORT=29211 P1_PORT=29203 P2_PORT=29204
BE1B_PORT=29205 GM_PORT=29212

cleanup() {
	for f in "$D"/*.pid; do
		[ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
	done
	sh tests/peers/backend.sh stop "$D/be1" >/dev/null 2>&1 || true
	sh tests/peers/backend.sh stop "$D/be2" >/dev/null 2>&1 || true
	sleep 1
	rm -rf "$D"
}
trap cleanup EXIT INT TERM

start_backend() { # start_backend DIR PORT PLAIN: PROXY v2 Postfix that discards,
	# and a plain smtpd on PLAIN for the control rows (k)/(l)
	sh tests/peers/backend.sh start "$1" "$2" proxy >/dev/null
	echo "127.0.0.1:$3 inet n - n - - smtpd -o smtpd_upstream_proxy_protocol=" >>"$1/etc/master.cf"
	postconf -c "$1/etc" -e 'virtual_transport = discard:' 'default_process_limit = 200' >/dev/null
	postfix -c "$1/etc" reload >/dev/null 2>&1
}

# rate PORT -> msg/s for MSGS messages; fails if any message failed
rate() {
	t=$(run "$1") || return 1
	echo "$MSGS $t" | awk '{ printf "%.0f\n", $1 / $2 }'
}

# received DIR: messages the backend's smtpd took so far, once its log
# (written by postlogd, a little behind) stops growing
received() {
	n=-1
	for _ in $(seq 1 30); do
		m=$(grep -c ': client=' "$1/maillog" || true)
		[ "$m" = "$n" ] && break
		n=$m
		sleep 0.3
	done
	echo "$n"
}

echo "tailwart bench (backends): $MSGS messages x ${SIZE} B, $SESS sessions, best of $ROUNDS (ABBA); $(nproc) cores, $(uname -m)"

start_backend "$D/be1" $BE1_PORT $P1_PORT
start_backend "$D/be2" $BE2_PORT $P2_PORT
# (m): a second PROXY listener of the first instance (main.cf's haproxy mode)
echo "127.0.0.1:$BE1B_PORT inet n - n - - smtpd" >>"$D/be1/etc/master.cf"
postfix -c "$D/be1/etc" reload >/dev/null 2>&1
for p in $BE1_PORT $BE2_PORT $P1_PORT $P2_PORT $BE1B_PORT; do
	for _ in $(seq 1 50); do ss -Hltn | grep -q "127.0.0.1:$p " && break; sleep 0.1; done
done
gate_conf "$D/gi.conf" $GI_PORT "127.0.0.1:$BE1_PORT" proxy-v2
gate_conf "$D/gj.conf" $GJ_PORT "127.0.0.1:$BE1_PORT, 127.0.0.1:$BE2_PORT" proxy-v2 \
	"backend_policy = round-robin"
gate_conf "$D/gm.conf" $GM_PORT "127.0.0.1:$BE1_PORT, 127.0.0.1:$BE1B_PORT" proxy-v2 \
	"backend_policy = round-robin"
start_gate "$D/gi.conf" $GI_PORT "$D/gi.pid"
start_gate "$D/gj.conf" $GJ_PORT "$D/gj.pid"
start_gate "$D/gm.conf" $GM_PORT "$D/gm.pid"

# warm-up (not measured)
MSGS_SAVED=$MSGS; MSGS=200
rate $GI_PORT >/dev/null; rate $GJ_PORT >/dev/null; rate $GM_PORT >/dev/null
MSGS=$MSGS_SAVED

i=0 j=0 m=0 s1=0 s2=0
jrun() { # one measured (j) run; adds what each backend received to s1/s2
	a1=$(received "$D/be1") a2=$(received "$D/be2")
	r=$(rate $GJ_PORT)
	if [ "$r" -gt "$j" ]; then j=$r; fi
	s1=$((s1 + $(received "$D/be1") - a1)) s2=$((s2 + $(received "$D/be2") - a2))
}
irun() {
	r=$(rate $GI_PORT)
	if [ "$r" -gt "$i" ]; then i=$r; fi
}
mrun() {
	r=$(rate $GM_PORT)
	if [ "$r" -gt "$m" ]; then m=$r; fi
}
for k in $(seq 1 "$ROUNDS"); do
	if [ $((k % 2)) -eq 1 ]; then irun; jrun; mrun; else mrun; jrun; irun; fi
done

# control: the same Postfix instances driven directly, one vs both (half
# the sessions each, at once): what two backends on this machine can take
# without any gate. On one small host two Postfix instances share the
# cores and the disk, so l/k is the ceiling for j/i here.
kk=0 ll=0
for _ in $(seq 1 "$ROUNDS"); do
	r=$(rate $P1_PORT); [ "$r" -gt "$kk" ] && kk=$r
	t0=$(date +%s.%N)
	"$SRC" -c -s $((SESS / 2)) -m $((MSGS / 2)) -l "$SIZE" -f bench@example.org -t user@example.test \
		127.0.0.1:$P1_PORT >"$D/p1.out" 2>&1 &
	p1=$!
	"$SRC" -c -s $((SESS / 2)) -m $((MSGS / 2)) -l "$SIZE" -f bench@example.org -t user@example.test \
		127.0.0.1:$P2_PORT >"$D/p2.out" 2>&1
	wait "$p1"	# not a bare wait: the gates run in the background too
	t1=$(date +%s.%N)
	r=$(echo "$MSGS $t0 $t1" | awk '{ printf "%.0f", $1 / ($3 - $2) }'); [ "$r" -gt "$ll" ] && ll=$r
done

printf '%-52s %8s msg/s\n' "(i) gate -> 1 Postfix backend" "$i"
printf '%-52s %8s msg/s\n' "(j) gate -> 2 Postfix backends (round-robin)" "$j"
printf '%-52s %8s msg/s\n' "(m) gate -> 2 smtpd services of 1 Postfix" "$m"
printf '%-52s %8s msg/s\n' "(k) 1 Postfix directly (control)" "$kk"
printf '%-52s %8s msg/s\n' "(l) 2 Postfix directly, half the sessions each" "$ll"
echo "$i $j" | awk '{ printf "ratio j/i = %.2f (two backends vs one, %s / %s msg/s, target >= 0.95)\n", $2/$1, $2, $1 }'
echo "$kk $ll $i $j" | awk '{ printf "ratio l/k = %.2f (the same two Postfix without the gate: this machine'"'"'s ceiling for j/i); (j/i)/(l/k) = %.2f\n", $2/$1, ($4/$3)/($2/$1) }'
echo "$i $m" | awk '{ printf "ratio m/i = %.2f (two backends vs one, the backend work held equal: the gate'"'"'s own cost, %s / %s msg/s, target >= 0.95)\n", $2/$1, $2, $1 }'
echo "(j) split over the backends: $s1 on 127.0.0.1:$BE1_PORT, $s2 on 127.0.0.1:$BE2_PORT" \
	"(of $((MSGS * ROUNDS)) sent)"
if [ "$s1" -eq 0 ] || [ "$s2" -eq 0 ]; then
	echo "backends.sh: one backend received nothing in the (j) runs" >&2
	exit 1
fi

#!/bin/sh
# bench/milter.sh — milter costs, measured in one run on this machine:
#
#   (a) smtp-source -> Postfix                          (no milter)
#   (b) smtp-source -> Postfix -> tailwart-milter       (smtpd_milters; SPF via
#       the local unbound peer, DKIM verification, A-R header; the client is
#       allow-listed so greylisting does not stop the load)
#   (c) milter_probe (the gate's milter client) -> testmilter (a no-op libmilter
#       filter): full sessions per second, client + filter
#   (d) milter_probe -> tailwart-milter: sessions per second
#
# Prints messages/s and the ratio b/a. Loopback only; bounded counts
# (BENCH_MSGS, default 2000; BENCH_SESSIONS, 10). Postfix discards what it
# queues. Run: sh tests/bench/milter.sh (after make).
set -eu
cd "$(dirname "$0")/../.."
B=${TW_BUILD:-build}
MSGS=${BENCH_MSGS:-2000}
SESS=${BENCH_SESSIONS:-10}
SIZE=${BENCH_SIZE:-1024}
PROBES=${BENCH_PROBES:-1000}
D=$(mktemp -d /tmp/tailwart-milterbench.XXXXXX)
chmod 755 "$D"
BE_PORT=28901 DNS_PORT=28902 M_PORT=28903 TM_PORT=28904
SRC=$(command -v smtp-source || echo /usr/sbin/smtp-source)

cleanup() {
	for f in "$D"/*.pid; do
		[ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null || true
	done
	sh tests/peers/backend.sh stop "$D/be" >/dev/null 2>&1 || true
	sh tests/peers/dns.sh stop "$D/dns" >/dev/null 2>&1 || true
	rm -rf "$D"
}
trap cleanup EXIT INT TERM

wait_port() {
	for _ in $(seq 1 100); do
		ss -Hltn 2>/dev/null | grep -q "127.0.0.1:$1 " && return 0
		sleep 0.1
	done
	echo "nothing listens on $1" >&2
	return 1
}

rate() { # rate T0 T1 N
	echo "$1 $2 $3" | awk '{ printf "%.1f", $3 / ($2 - $1) }'
}

smtp_run() { # smtp_run PORT -> msgs/s
	t0=$(date +%s.%N)
	"$SRC" -c -s "$SESS" -m "$MSGS" -l "$SIZE" -f bench@pass.spf.test \
		-t user@example.test 127.0.0.1:"$1" >"$D/src.out" 2>&1
	t1=$(date +%s.%N)
	if grep -qiE 'error|refused|fatal|warning|reject|4[0-9][0-9] ' "$D/src.out"; then
		grep -iE 'error|refused|fatal|warning|reject|4[0-9][0-9] ' "$D/src.out" | head -3 >&2
		return 1
	fi
	rate "$t0" "$t1" "$MSGS"
}

sh tests/peers/dns.sh start "$D/dns" $DNS_PORT >/dev/null
sh tests/peers/backend.sh start "$D/be" $BE_PORT plain >/dev/null
postconf -c "$D/be/etc" -e "virtual_transport = discard" "smtpd_peername_lookup = no" \
	"milter_protocol = 6" "milter_default_action = tempfail"
postfix -c "$D/be/etc" reload >/dev/null 2>&1
sleep 1

cat >"$D/gate.conf" <<EOF
hostname = bench.example.test
store = lmdb:$D/store.lmdb
resolver = 127.0.0.1:$DNS_PORT
allow = 127.0.0.0/8
spf_fail = log
milter_listen = inet:$M_PORT@127.0.0.1
EOF
"$B/tailwart-milter" -f -c "$D/gate.conf" >"$D/milter.log" 2>&1 &
echo $! >"$D/milter.pid"
"$B/tests/testmilter" -s "inet:$TM_PORT@127.0.0.1" >/dev/null 2>&1 &
echo $! >"$D/tm.pid"
wait_port $M_PORT
wait_port $TM_PORT

a=$(smtp_run $BE_PORT)
postconf -c "$D/be/etc" -e "smtpd_milters = inet:127.0.0.1:$M_PORT"
postfix -c "$D/be/etc" reload >/dev/null 2>&1
sleep 1
b=$(smtp_run $BE_PORT)

t0=$(date +%s.%N)
"$B/tests/milter_probe" --sessions "$PROBES" "inet:127.0.0.1:$TM_PORT" >"$D/p1.out" 2>&1
t1=$(date +%s.%N)
c=$(rate "$t0" "$t1" "$PROBES")
t0=$(date +%s.%N)
"$B/tests/milter_probe" --sessions "$PROBES" --client 127.0.0.1 --from bench@pass.spf.test \
	"inet:127.0.0.1:$M_PORT" >"$D/p2.out" 2>&1
t1=$(date +%s.%N)
d=$(rate "$t0" "$t1" "$PROBES")
grep -q "failed 0" "$D/p1.out" && grep -q "failed 0" "$D/p2.out" ||
	{ echo "milter_probe sessions failed" >&2; cat "$D/p1.out" "$D/p2.out" >&2; exit 1; }

echo "milter bench: $MSGS messages x $SIZE bytes, $SESS sessions; $PROBES client sessions"
echo "  (a) Postfix, no milter:                 $a msgs/s"
echo "  (b) Postfix + tailwart-milter:          $b msgs/s"
echo "  ratio b/a:                              $(echo "$b $a" | awk '{ printf "%.2f", $1 / $2 }')"
echo "  (c) gate milter client -> no-op milter: $c sessions/s"
echo "  (d) gate milter client -> tailwart-milter: $d sessions/s"

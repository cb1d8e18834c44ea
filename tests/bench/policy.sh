#!/bin/bash
# bench/policy.sh — issue 3's benchmark, part of `make bench`:
#  (1) hostile flood: clients from a DNSBL-listed address (the listing
#      cached by the screen's store) connect and read the refusal; turned
#      away per second (target >= 5,000/s);
#  (2) greylisting (triplet already passed), SPF and DNSBL (cached) on: the
#      gate's messages/s against the same Postfix backend driven directly
#      (target ratio >= 0.90). Note: the clients are loopback, for which
#      libspf2 answers pass without DNS;
#  (3) store operations per second, LMDB and Redis (policy_bench);
#  (4) the screen's private memory per held idle connection (target <= 4 KiB).
# Loopback only; every load is bounded in count and time.
set -eu
cd "$(dirname "$0")/../.."
B=${TW_BUILD:-build}
MSGS=${BENCH_MSGS:-3000}
D=$(mktemp -d /tmp/tailwart-pbench.XXXXXX)
chmod 755 "$D"
GP=29225 BE=29226 BEP=29227 DNSP=29253 RP=29279
SRC=$(command -v smtp-source || echo /usr/sbin/smtp-source)
id tailwart >/dev/null 2>&1 && RUNUSER=tailwart || RUNUSER=nobody

cleanup() {
	[ -f "$D/g.pid" ] && kill "$(cat "$D/g.pid")" 2>/dev/null || true
	sh tests/peers/backend.sh stop "$D/be" >/dev/null 2>&1 || true
	sh tests/peers/dns.sh stop "$D/dns" >/dev/null 2>&1 || true
	sh tests/peers/redis.sh stop "$D/redis" >/dev/null 2>&1 || true
	sleep 1
	rm -rf "$D"
}
trap cleanup EXIT INT TERM
wait_port() { for _ in $(seq 1 100); do nc -z 127.0.0.1 "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }

echo "tailwart policy bench: $(nproc) cores, $(uname -m)"
sh tests/peers/dns.sh start "$D/dns" $DNSP 127.0.0.1 >/dev/null 2>&1
sh tests/peers/backend.sh start "$D/be" $BE proxy >/dev/null
cat >>"$D/be/etc/master.cf" <<CF
127.0.0.1:$BEP inet n  -       n       -       -       smtpd -o smtpd_upstream_proxy_protocol=
CF
postconf -c "$D/be/etc" -e 'virtual_transport = discard:' 'default_process_limit = 200' >/dev/null
postfix -c "$D/be/etc" reload >/dev/null 2>&1
wait_port $BEP
wait_port $DNSP

cat >"$D/g.conf" <<CONF
listen = 127.0.0.1:$GP
hostname = bench.gate.test
backend = 127.0.0.1:$BE
user = $RUNUSER
pid_file = $D/g.pidfile
workers_min = 20
workers_max = 64
store = lmdb:$D/g.lmdb
resolver = 127.0.0.1:$DNSP
dnsbl_sites = bl.test=127.0.0.[2..11]*3
dnsbl_threshold = 3
greylist_action = enforce
greylist_delay = 1s
spf_action = enforce
pregreet_action = enforce
pregreet_wait = 1s
screen_max_connections = 10500
CONF
"$B/tailwart-gate" -f -c "$D/g.conf" 2>"$D/g.log" &
echo $! >"$D/g.pid"
wait_port $GP
sleep 1

# (1) 127.0.0.2 is listed in bl.test: first lookup caches it, then the flood
"$B/tests/flood" -m turn -c 1 -n 1 -b 127.0.0.2 127.0.0.1 $GP >/dev/null
"$B/tests/flood" -m turn -c 50 -n 20000 -t 30 -b 127.0.0.2 127.0.0.1 $GP >"$D/flood.out"
echo "(1) DNSBL-listed flood:    $(cat "$D/flood.out")"

# (2) pass the triplet once (greylisting), then the load
swaks --server 127.0.0.1:$GP --from bench@example.org --to user@example.test >/dev/null 2>&1 || true
sleep 2
swaks --server 127.0.0.1:$GP --from bench@example.org --to user@example.test >/dev/null 2>&1 || true
run() { # run PORT -> msgs/s
	t0=$(date +%s.%N)
	"$SRC" -c -s 20 -m "$MSGS" -l 1024 -f bench@example.org -t user@example.test 127.0.0.1:"$1" \
		>"$D/src.out" 2>&1 || { tail -3 "$D/src.out" >&2; echo 0; return; }
	t1=$(date +%s.%N)
	echo "$MSGS $t0 $t1" | awk '{ printf "%.0f\n", $1 / ($3 - $2) }'
}
run $GP >/dev/null; run $BEP >/dev/null	# warm-up
g=$(run $GP); d=$(run $BEP)
g2=$(run $GP); d2=$(run $BEP)
[ "$g2" -gt "$g" ] && g=$g2
[ "$d2" -gt "$d" ] && d=$d2
echo "(2) policy on: gate $g msg/s, backend direct $d msg/s, ratio $(echo "$g $d" | awk '{ printf "%.2f", $1/$2 }') (target >= 0.90)"

# (3) store operations
echo "(3) store operations (policy_bench, 20000 ops, 1 process):"
"$B/tests/policy_bench" "lmdb:$D/pb.lmdb" 20000 1 | sed 's/^/      lmdb  /'
sh tests/peers/redis.sh start "$D/redis" $RP >/dev/null 2>&1 && wait_port $RP &&
	"$B/tests/policy_bench" "redis://127.0.0.1:$RP/5" 20000 1 | sed 's/^/      redis /'

# (4) the screen's memory per held connection
master=$(cat "$D/g.pid")
screen=""
for p in $(ss -Hltnp 2>/dev/null | grep ":$GP " | grep -o 'pid=[0-9]*' | cut -d= -f2); do
	[ "$p" != "$master" ] && screen=$p
done
before=$(awk '/^Private_Dirty:/ { print $2 }' /proc/"$screen"/smaps_rollup)
HOLD=10000
"$B/tests/flood" -m hold -n $HOLD -t 90 -b 127.0.0.67 127.0.0.1 $GP >"$D/hold.out" &
hp=$!
for _ in $(seq 1 900); do grep -q '^held' "$D/hold.out" && break; sleep 0.1; done
after=$(awk '/^Private_Dirty:/ { print $2 }' /proc/"$screen"/smaps_rollup)
kill $hp 2>/dev/null || true
wait $hp 2>/dev/null || true
echo "(4) screen: $(head -1 "$D/hold.out"); Private_Dirty $before -> $after KiB = $(( (after - before) * 1024 / HOLD )) bytes per held connection (target <= 4096)"

#!/bin/sh
# 30-policy-store: the Redis store backend against a real redis-server on
# 127.0.0.1:6390: get/set/incr/del with expiry and key prefix, greylisting
# and rate limits shared by two "gates" (two configs, separate processes)
# on one Redis, atomic increments from many processes, and a Redis that
# goes away (fail open, or 451 4.3.0 with store_failure = tempfail) and
# comes back (reconnect without a restart of the caller's config).
# Ports: redis 6390.
. "$(dirname "$0")/../lib.sh"
T=$(tw_tmpdir)
PROBE="$TW_BUILD/tests/policy_probe"
[ -x "$PROBE" ] || { tw_fail "policy_probe built" "$PROBE missing"; tw_summary; exit 1; }
RP=6390

sh "$TW_ROOT/tests/peers/redis.sh" start "$T/redis" $RP || { tw_fail "redis starts"; tw_summary; exit 1; }
tw_cleanup_add "sh '$TW_ROOT/tests/peers/redis.sh' stop '$T/redis'"
tw_ok "redis-server answers on 127.0.0.1:$RP"
rcli() { redis-cli -h 127.0.0.1 -p $RP "$@"; }

run() { OUT=$("$PROBE" -c "$@" 2>>"$T/probe.stderr" </dev/null); }
expect() {	# expect NAME ERE CONF args...
	name=$1 ere=$2
	shift 2
	run "$@"
	if printf '%s\n' "$OUT" | head -n 1 | grep -Eq -- "$ere"; then tw_ok "$name"
	else tw_fail "$name" "got: $OUT"; fi
}

A="$T/gate-a.conf"
B="$T/gate-b.conf"
for f in "$A" "$B"; do
	cat >"$f" <<EOF2
store = redis://127.0.0.1:$RP/3
store_prefix = mx1:
greylist_delay = 2s
greylist_awl_count = 0
rate_limit = conn 4/1m, msg 3/1h
EOF2
done

# ---- basic operations ----------------------------------------------------------
expect "set" '^ok$' "$A" store set k1 hello 60
expect "get" '^ok hello$' "$A" store get k1
tw_check "the key carries the prefix and lives in db 3" sh -c "redis-cli -h 127.0.0.1 -p $RP -n 3 get mx1:k1 | grep -qx hello"
ttl=$(rcli -n 3 ttl mx1:k1)
[ "$ttl" -gt 50 ] && [ "$ttl" -le 60 ] && tw_ok "expiry set in Redis (ttl $ttl)" || tw_fail "expiry set in Redis" "ttl=$ttl"
expect "incr creates" '^ok 5$' "$A" store incr c1 5 60
expect "incr adds" '^ok 7$' "$A" store incr c1 2 60
expect "decrement clamps at 0" '^ok 0$' "$A" store incr c1 -100 60
expect "decrement of an absent key stores nothing" '^ok 0$' "$A" store incr absent -1 60
tw_check "... really nothing" sh -c "[ \$(redis-cli -h 127.0.0.1 -p $RP -n 3 exists mx1:absent) = 0 ]"
expect "del" '^ok$' "$A" store del k1
expect "get after del" '^notfound$' "$A" store get k1
expect "set with 1s expiry" '^ok$' "$A" store set short x 1
sleep 2
expect "expired value is gone" '^notfound$' "$A" store get short

# ---- two gates share greylisting -----------------------------------------------
expect "gate A: first sight 451 4.7.1" '^tempfail 451 4\.7\.1 Greylisted' "$A" grey 192.0.2.10 s@example.org u@example.test
expect "gate B: early retry 451 (same state)" '^tempfail 451 4\.7\.1' "$B" grey 192.0.2.10 s@example.org u@example.test
sleep 3
expect "gate B: retry after the delay accepted" '^pass$' "$B" grey 192.0.2.10 s@example.org u@example.test
expect "gate A: knows the triplet" '^pass$' "$A" grey 192.0.2.10 s@example.org u@example.test

# ---- two gates share rate limits -----------------------------------------------
"$PROBE" -c "$A" rate connect 192.0.2.30 2 >/dev/null 2>&1
"$PROBE" -c "$B" rate connect 192.0.2.30 2 >/dev/null 2>&1
expect "conn 4/1m counted across both gates: the 5th is refused" '^tempfail 421 4\.7\.0 Too many connections' "$A" rate connect 192.0.2.30

# ---- atomic increments ------------------------------------------------------------
i=0
while [ $i -lt 8 ]; do
	( j=0; while [ $j -lt 25 ]; do "$PROBE" -c "$A" store incr hits 1 >/dev/null 2>&1; j=$((j + 1)); done ) &
	i=$((i + 1))
done
wait
expect "8 processes x 25 increments = 200" '^ok 200$' "$B" store incr hits 0

# ---- Redis goes away and comes back ------------------------------------------------
sh "$TW_ROOT/tests/peers/redis.sh" stop "$T/redis"
expect "redis down, store_failure=pass (default): greylisting fails open" '^pass$' "$A" grey 192.0.2.40 s@example.org u@example.test
printf '%s\n' "$OUT" | grep -q 'store=error' && tw_ok "... and logs store=error" || tw_fail "... and logs store=error" "$OUT"
expect "redis down: rate limits fail open" '^pass$' "$A" rate connect 192.0.2.41
echo "store_failure = tempfail" >>"$A"
expect "redis down, store_failure=tempfail: 451 4.3.0" '^tempfail 451 4\.3\.0 Temporary local problem' "$A" grey 192.0.2.40 s@example.org u@example.test
expect "redis down, store_failure=tempfail: rate 451 4.3.0" '^tempfail 451 4\.3\.0' "$A" rate msg 192.0.2.41
t0=$(date +%s)
"$PROBE" -c "$A" rate connect 192.0.2.42 20 >/dev/null 2>&1
t1=$(date +%s)
[ $((t1 - t0)) -le 3 ] && tw_ok "20 decisions against a dead redis take $((t1 - t0))s" || tw_fail "dead redis is fast" "$((t1 - t0))s"
sh "$TW_ROOT/tests/peers/redis.sh" start "$T/redis" $RP || tw_fail "redis restarts"
expect "redis back: greylisting works again (empty db: first sight)" '^tempfail 451 4\.7\.1 Greylisted' "$B" grey 192.0.2.40 s@example.org u@example.test

# a bad URL is a config error, not a crash
printf 'store = redis://127.0.0.1:99999/3\n' >"$T/bad.conf"
"$PROBE" -c "$T/bad.conf" store get x >"$T/bad.out" 2>&1
[ $? = 3 ] && grep -q 'bad redis URL' "$T/bad.out" && tw_ok "bad redis URL is reported" || tw_fail "bad redis URL is reported" "$(cat "$T/bad.out")"
tw_summary

#!/bin/sh
# 30-policy-grey-rate: greylisting, rate limits and access lists of policy/
# on the embedded LMDB store, driven through policy_probe (each probe run is
# a separate process, like the gate's workers and like a gate restart, so
# every step also shows that state lives in the store and survives).
# Greylisting: first try 451, early retry 451, retry after the delay
# accepted, normalized senders, auto-allowlist after N passes, exemptions.
# Rate limits: each limit trips exactly at its number, per-network override
# wins, `none` for a network, concurrency slots, error limit, log mode.
# Also: many processes incrementing one LMDB counter at once lose nothing.
# Ports: none (no servers).
. "$(dirname "$0")/../lib.sh"
T=$(tw_tmpdir)
PROBE="$TW_BUILD/tests/policy_probe"
[ -x "$PROBE" ] || { tw_fail "policy_probe built" "$PROBE missing"; tw_summary; exit 1; }

run() { OUT=$("$PROBE" -c "$@" 2>>"$T/probe.stderr" </dev/null); }
expect() {	# expect NAME ERE CONF args...
	name=$1 ere=$2
	shift 2
	run "$@"
	if printf '%s\n' "$OUT" | head -n 1 | grep -Eq -- "$ere"; then tw_ok "$name"
	else tw_fail "$name" "got: $OUT"; fi
}
# nth N ERE NAME CONF rate KIND IP COUNT: line N of the verdict lines
count_lines() {	# count_lines ERE: how many verdict lines of $OUT match
	printf '%s\n' "$OUT" | awk 'NR % 2 == 1' | grep -Ec -- "$1"
}
verdict_line() { printf '%s\n' "$OUT" | awk 'NR % 2 == 1' | sed -n "${1}p"; }

tw_check "the sample gate.conf's policy keys load" "$PROBE" -g -c "$TW_ROOT/gate.conf" check

# ---- greylisting -----------------------------------------------------------
G="$T/grey.conf"
cat >"$G" <<EOF2
store = lmdb:$T/grey.lmdb
greylist_delay = 2s
greylist_max_wait = 1h
greylist_awl_count = 4
greylist_spf_exempt = trusted.example
allow = 198.51.100.0/24
EOF2
expect "first sight: 451 4.7.1 with the retry hint" '^tempfail 451 4\.7\.1 Greylisted, please try again in 2 seconds$' \
	"$G" grey 192.0.2.10 Sender+tag@Example.ORG user@example.test
expect "early retry: 451 again" '^tempfail 451 4\.7\.1 Greylisted, please try again in [12] seconds$' \
	"$G" grey 192.0.2.10 sender@example.org user@example.test
sleep 3
expect "retry after the delay from another host of the /24: accepted" '^pass$' \
	"$G" grey 192.0.2.11 sender@example.org user@example.test
printf '%s\n' "$OUT" | grep -q 'state=passed' && tw_ok "log says state=passed" || tw_fail "log says state=passed" "$OUT"
expect "known triplet: accepted at once" '^pass$' "$G" grey 192.0.2.10 sender@example.org user@example.test
expect "other recipient: new triplet" '^tempfail 451 4\.7\.1' "$G" grey 192.0.2.10 sender@example.org other@example.test
expect "other /24: new triplet" '^tempfail 451 4\.7\.1' "$G" grey 192.0.3.10 sender@example.org user@example.test
expect "BATV-tagged sender is the same triplet" '^pass$' "$G" grey 192.0.2.10 prvs=0123456789=sender@example.org user@example.test
expect "a network with 3 passes is not yet auto-allowlisted" '^tempfail 451' "$G" grey 192.0.2.200 new@elsewhere.example boss@example.test
expect "SRS-rewritten sender is the same triplet" '^pass$' "$G" grey 192.0.2.10 SRS0=HHHH=TT=example.org=sender@forwarder.example user@example.test
# 192.0.2.0/24 now has 4 passes (passed, known, BATV, SRS) = greylist_awl_count
expect "auto-allowlisted /24 after 4 passes: a new triplet skips greylisting" '^skip$' "$G" grey 192.0.2.201 new2@elsewhere.example boss@example.test
printf '%s\n' "$OUT" | grep -q 'exempt=awl net=192\.0\.2\.0/24' && tw_ok "log says exempt=awl" || tw_fail "log says exempt=awl" "$OUT"
expect "IPv6 client: first sight" '^tempfail 451 4\.7\.1' "$G" grey 2001:db8:1:2::10 s@example.org user@example.test
sleep 3
expect "IPv6 client: same /64 passes after the delay" '^pass$' "$G" grey 2001:db8:1:2::99 s@example.org user@example.test
expect "allow-listed client (flag from access check): exempt" '^skip$' "$G" grey 192.0.4.1 x@example.org user@example.test allow
expect "SPF-pass sender of an exempt domain: exempt" '^skip$' "$G" grey 192.0.4.1 x@trusted.example user@example.test spfpass
expect "SPF-pass sender of another domain: greylisted" '^tempfail 451' "$G" grey 192.0.4.1 x@other.example user@example.test spfpass
cat "$G" >"$T/greylog.conf"; echo "greylist_action = log" >>"$T/greylog.conf"
expect "greylist_action=log: first sight passes" '^pass$' "$T/greylog.conf" grey 192.0.6.1 a@b.example c@d.example
printf '%s\n' "$OUT" | grep -q 'decided=tempfail mode=log' && tw_ok "log mode logs decided=tempfail" || tw_fail "log mode logs decided=tempfail" "$OUT"
run "$G" store purge
printf '%s\n' "$OUT" | grep -q '^ok ' && tw_ok "store purge runs" || tw_fail "store purge runs" "$OUT"
expect "state survives purge and new processes" '^pass$' "$G" grey 2001:db8:1:2::10 s@example.org user@example.test
printf '%s\n' "$OUT" | grep -q 'state=known' && tw_ok "... as a known triplet" || tw_fail "... as a known triplet" "$OUT"

# ---- rate limits -------------------------------------------------------------
R="$T/conn.conf"
cat >"$R" <<EOF2
store = lmdb:$T/rate.lmdb
rate_limit = conn 5/1m
rate_limit[192.0.2.128/25] = conn 8/1m
rate_limit[192.0.2.192/26] = conn 2/1m
rate_limit[127.0.0.0/8] = none
EOF2
run "$R" rate connect 192.0.2.1 6
[ "$(count_lines '^pass$')" = 5 ] && tw_ok "conn 5/1m: 5 connections pass" || tw_fail "conn 5/1m: 5 pass" "$OUT"
verdict_line 6 | grep -Eq '^tempfail 421 4\.7\.0 Too many connections from your address' \
	&& tw_ok "conn 5/1m: the 6th gets 421 4.7.0" || tw_fail "the 6th gets 421" "$OUT"
run "$R" rate connect 192.0.2.130 9
[ "$(count_lines '^pass$')" = 8 ] && verdict_line 9 | grep -q '^tempfail 421' \
	&& tw_ok "override /25 conn 8/1m wins over the default 5" || tw_fail "override /25 wins" "$OUT"
run "$R" rate connect 192.0.2.200 3
[ "$(count_lines '^pass$')" = 2 ] && verdict_line 3 | grep -q '^tempfail 421' \
	&& tw_ok "most specific /26 (conn 2) wins over the /25" || tw_fail "most specific /26 wins" "$OUT"
run "$R" rate connect 127.0.0.1 50
[ "$(count_lines '^pass$')" = 50 ] && tw_ok "rate_limit[127.0.0.0/8] = none: 50 connections pass" || tw_fail "none for 127/8" "$OUT"
cat "$R" >"$T/ratelog.conf"; echo "rate_limit_action = log" >>"$T/ratelog.conf"
expect "rate_limit_action=log: over the limit still passes" '^pass$' "$T/ratelog.conf" rate connect 192.0.2.1
printf '%s\n' "$OUT" | grep -q 'decided=tempfail mode=log' && tw_ok "rate log mode logs decided=tempfail" || tw_fail "rate log mode" "$OUT"

R="$T/conc.conf"
printf 'store = lmdb:%s/conc.lmdb\nrate_limit = concurrency 3\n' "$T" >"$R"
run "$R" rate connect 192.0.2.2 4
verdict_line 4 | grep -Eq '^tempfail 421 4\.7\.0 Too many concurrent connections' \
	&& [ "$(count_lines '^pass$')" = 3 ] && tw_ok "concurrency 3: the 4th concurrent session refused" || tw_fail "concurrency 3" "$OUT"
run "$R" rate disconnect 192.0.2.2 1
expect "after one session ends, a slot is free" '^pass$' "$R" rate connect 192.0.2.2
expect "... and only one" '^tempfail 421 4\.7\.0 Too many concurrent' "$R" rate connect 192.0.2.2
run "$R" rate disconnect 192.0.2.2 3
run "$R" rate connect 192.0.2.2 3
[ "$(count_lines '^pass$')" = 3 ] && tw_ok "all sessions ended: 3 slots again" || tw_fail "all sessions ended: 3 slots again" "$OUT"

R="$T/net.conf"
printf 'store = lmdb:%s/net.lmdb\nrate_limit = net_conn 4/1m\n' "$T" >"$R"
for h in 1 2 3 4; do "$PROBE" -c "$R" rate connect 192.0.2.$h >/dev/null 2>&1; done
expect "net_conn 4/1m: a 5th address of the /24 is refused" '^tempfail 421 4\.7\.0 Too many connections from your network' \
	"$R" rate connect 192.0.2.5
expect "net_conn 4/1m: another /24 is fine" '^pass$' "$R" rate connect 192.0.3.5

R="$T/msg.conf"
printf 'store = lmdb:%s/msg.lmdb\nrate_limit = msg 4/1h, rcpt 6/1h, err 2/10m\n' "$T" >"$R"
run "$R" rate msg 192.0.2.20 5
[ "$(count_lines '^pass$')" = 4 ] && verdict_line 5 | grep -Eq '^tempfail 451 4\.7\.1 Message rate limit exceeded' \
	&& tw_ok "msg 4/1h: the 5th message gets 451 4.7.1" || tw_fail "msg 4/1h" "$OUT"
run "$R" rate rcpt 192.0.2.20 7
[ "$(count_lines '^pass$')" = 6 ] && verdict_line 7 | grep -Eq '^tempfail 452 4\.5\.3 Recipient rate limit exceeded' \
	&& tw_ok "rcpt 6/1h: the 7th recipient gets 452 4.5.3" || tw_fail "rcpt 6/1h" "$OUT"
run "$R" rate err 192.0.2.21 3
[ "$(count_lines '^pass$')" = 2 ] && verdict_line 3 | grep -Eq '^tempfail 421 4\.7\.0 Too many errors' \
	&& tw_ok "err 2/10m: the 3rd error gets 421" || tw_fail "err 2/10m" "$OUT"
expect "after the error limit, new connections are refused" '^tempfail 421 4\.7\.0 Too many errors' "$R" rate connect 192.0.2.21

# ---- access lists ------------------------------------------------------------
A="$T/access.conf"
printf '192.0.2.0/24\n# comment\n2001:db8:bad::/48\n' >"$T/deny.cidr"
cat >"$A" <<EOF2
store = lmdb:$T/access.lmdb
allow = 192.0.2.7
deny = file:$T/deny.cidr, 203.0.113.0/24
EOF2
expect "deny list (file): 554 5.7.1" '^reject 554 5\.7\.1 Access denied for 192\.0\.2\.8$' "$A" access 192.0.2.8
expect "deny list (inline)" '^reject 554 5\.7\.1' "$A" access 203.0.113.9
expect "deny list IPv6" '^reject 554 5\.7\.1' "$A" access 2001:db8:bad::1
expect "allow wins inside a denied network" '^allow$' "$A" access 192.0.2.7
expect "other client passes" '^pass$' "$A" access 198.51.100.1

# ---- concurrency on one LMDB file --------------------------------------------
S="$T/store.conf"
echo "store = lmdb:$T/shared.lmdb" >"$S"
i=0
while [ $i -lt 8 ]; do
	( j=0; while [ $j -lt 50 ]; do "$PROBE" -c "$S" store incr hits 1 >/dev/null 2>&1; j=$((j + 1)); done ) &
	i=$((i + 1))
done
wait
expect "8 processes x 50 increments = 400" '^ok 400$' "$S" store incr hits 0
tw_summary

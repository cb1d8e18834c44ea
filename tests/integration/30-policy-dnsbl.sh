#!/bin/sh
# 30-policy-dnsbl: weighted DNSBL/DNSWL decisions of policy/ against a real
# resolver (unbound serving bl.test., bl2.test., wl.test. on 127.0.0.1:5353)
# through policy_probe, as the gate's screen calls them at connect: a listed
# client rejected with the zone's TXT, weights adding up, an allow-listed
# client (score <= dnswl_threshold) skipping greylisting, IPv6 nibble
# queries, hostile answers (outside 127/8, 127.255.255.x) counted as errors,
# the cache in the store, resolver down (pass or 421), log mode.
# Ports: unbound 5353; nothing listens on 5399.
. "$(dirname "$0")/../lib.sh"
T=$(tw_tmpdir)
PROBE="$TW_BUILD/tests/policy_probe"
[ -x "$PROBE" ] || { tw_fail "policy_probe built" "$PROBE missing"; tw_summary; exit 1; }

sh "$TW_ROOT/tests/peers/dns.sh" start "$T/dns" 5353 || { tw_fail "unbound starts"; tw_summary; exit 1; }
tw_cleanup_add "sh '$TW_ROOT/tests/peers/dns.sh' stop '$T/dns'"
tw_check "unbound listens on 127.0.0.1:5353" tw_wait_port 127.0.0.1 5353 10

conf() {	# conf NAME extra-lines...: writes $T/NAME.conf, sets C; an extra
	# line replaces the default line with the same key
	C="$T/$1.conf"
	st="$T/$1.lmdb"
	shift
	for d in "store = lmdb:$st" "resolver = 127.0.0.1:5353" "dns_timeout = 1s" \
	    "dns_tries = 1" \
	    "dnsbl_sites = bl.test=127.0.0.[2..11]*3, bl2.test*1, wl.test=127.0.[0..255].[1..3]*-5" \
	    "dnsbl_threshold = 3" "dnswl_threshold = -2"; do
		k=${d%% =*}
		over=0
		for l in "$@"; do [ "${l%% =*}" = "$k" ] && over=1; done
		[ $over = 1 ] || echo "$d"
	done >"$C"
	for l in "$@"; do echo "$l"; done >>"$C"
}
run() {	# run CONF args... -> output in $OUT
	OUT=$("$PROBE" -c "$@" 2>>"$T/probe.stderr" </dev/null)
}
first() { printf '%s\n' "$OUT" | head -n 1; }
expect() {	# expect NAME ERE CONF args...
	name=$1 ere=$2
	shift 2
	run "$@"
	if first | grep -Eq -- "$ere"; then tw_ok "$name"; else tw_fail "$name" "got: $OUT"; fi
}
logline() {	# logline NAME ERE  (on the last run's log fragment)
	if printf '%s\n' "$OUT" | sed -n 2p | grep -Eq -- "$2"; then tw_ok "$1"; else tw_fail "$1" "got: $OUT"; fi
}

conf plain
expect "listed client rejected with the zone's TXT" \
	'^reject 554 5\.7\.1 Service unavailable; client \[192\.0\.2\.99\] blocked using bl\.test; Listed by bl\.test, see https://bl\.test/q\?ip=192\.0\.2\.99$' \
	"$C" dnsbl 192.0.2.99
logline "log line has score and zones" 'score=4 listed=bl\.test\(3\),bl2\.test\(1\)'
expect "second lookup is answered from the cache" '^reject 554 5\.7\.1 .*Listed by bl\.test' "$C" dnsbl 192.0.2.99
logline "cached=yes in the log" 'cached=yes'
expect "RFC 5782 test point 127.0.0.2 is listed" '^reject 554 5\.7\.1 .*blocked using bl\.test; test point$' "$C" dnsbl 127.0.0.2
expect "IPv6 client (nibble query) listed" '^reject 554 5\.7\.1 Service unavailable; client \[2001:db8::99\] blocked using bl\.test; IPv6 listed$' \
	"$C" dnsbl 2001:db8::99
expect "unlisted client passes" '^pass$' "$C" dnsbl 192.0.2.1
expect "unlisted IPv6 client passes" '^pass$' "$C" dnsbl 2001:db8::1
expect "DNSWL client (score -5 <= -2) is allow-listed" '^allow$' "$C" dnsbl 192.0.2.50
logline "DNSWL log line" 'score=-5 listed=wl\.test\(-5\)'
expect "answer 10.0.0.1 (outside 127/8) is not a listing" '^pass$' "$C" dnsbl 192.0.2.66
logline "... but an error of the zone" 'errors=bl\.test\(invalid-answer\)'
expect "answer 127.255.255.254 (blocked resolver) is not a listing" '^pass$' "$C" dnsbl 192.0.2.67
logline "... but an error of the zone" 'errors=bl\.test\(invalid-answer\)'
expect "answer 127.0.0.200 outside the zone's filter is not a listing" '^pass$' "$C" dnsbl 192.0.2.68
logline "... and no error" 'score=0$'

conf th5 "dnsbl_threshold = 5"
expect "score 4 under threshold 5 passes" '^pass$' "$C" dnsbl 192.0.2.99
conf logmode "dnsbl_action = log"
expect "dnsbl_action=log: listed client passes" '^pass$' "$C" dnsbl 192.0.2.99
logline "... and the log says what enforce would do" 'verdict=pass decided=reject mode=log'

# A DNSWL client skips greylisting (the gate passes the flag).
conf grey "greylist_delay = 1s"
expect "greylisting: a normal client is greylisted" '^tempfail 451 4\.7\.1 Greylisted' "$C" grey 192.0.2.1 a@example.org b@example.test
expect "greylisting: the DNSWL client is exempt" '^skip$' "$C" grey 192.0.2.50 a@example.org b@example.test dnswl

# The event-loop API, as the screen uses it: 302 lookups (906 queries) at once.
conf many
ips=$(i=1; while [ $i -le 150 ]; do echo 198.51.100.$i 203.0.113.$i; i=$((i + 1)); done)
t0=$(date +%s)
OUT=$("$PROBE" -c "$C" dnsbl-many 192.0.2.99 $ips 2001:db8::99 2>>"$T/probe.stderr" </dev/null)
t1=$(date +%s)
[ "$(printf '%s\n' "$OUT" | grep -c '^[0-9a-f.:]* pass$')" = 300 ] && tw_ok "async: 300 unlisted clients pass" || tw_fail "async: 300 pass" "$(printf '%s\n' "$OUT" | grep -v '^check' | grep -v ' pass$' | head -5)"
printf '%s\n' "$OUT" | grep -q '^192\.0\.2\.99 reject 554 5\.7\.1 .*Listed by bl\.test' && tw_ok "async: listed IPv4 rejected with TXT" || tw_fail "async: listed IPv4" "$OUT"
printf '%s\n' "$OUT" | grep -q '^2001:db8::99 reject 554 5\.7\.1 .*IPv6 listed$' && tw_ok "async: listed IPv6 rejected with TXT" || tw_fail "async: listed IPv6" "$OUT"
printf '%s\n' "$OUT" | grep -q 'errors=' && tw_fail "async: no query lost" "$(printf '%s\n' "$OUT" | grep errors= | head -3)" || tw_ok "async: no query lost or timed out"
[ $((t1 - t0)) -le 3 ] && tw_ok "async: 302 lookups in $((t1 - t0))s" || tw_fail "async: 302 lookups fast" "$((t1 - t0))s"

# The cache outlives the resolver; uncached lookups then follow dns_failure.
conf cache
expect "prime the cache" '^reject 554' "$C" dnsbl 192.0.2.99
sh "$TW_ROOT/tests/peers/dns.sh" stop "$T/dns"
expect "resolver down: cached listing still rejects" '^reject 554 5\.7\.1 .*Listed by bl\.test' "$C" dnsbl 192.0.2.99
expect "resolver down, dns_failure=pass (default): mail flows" '^pass$' "$C" dnsbl 192.0.2.2
logline "... with the errors logged" 'errors=bl\.test\(tempfail\),bl2\.test\(tempfail\),wl\.test\(tempfail\)'
conf dnsfail "dns_failure = tempfail"
expect "resolver down, dns_failure=tempfail: 421 4.4.3" '^tempfail 421 4\.4\.3 Temporary DNS failure' "$C" dnsbl 192.0.2.2
conf refused "resolver = 127.0.0.1:5399"
t0=$(date +%s)
expect "resolver refusing: pass" '^pass$' "$C" dnsbl 192.0.2.3
t1=$(date +%s)
[ $((t1 - t0)) -le 3 ] && tw_ok "refused resolver answers fast ($((t1 - t0))s)" || tw_fail "refused resolver answers fast" "$((t1 - t0))s"

tw_summary

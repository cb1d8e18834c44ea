#!/bin/sh
# 30-policy-spf: SPF decisions of policy/ against a real resolver (unbound
# serving spf.test. on 127.0.0.1:5353), driven through policy_probe the way
# the gate calls it at MAIL FROM: every SPF result and its configured
# action, include chains, the lookup and void-lookup limits libspf2 itself
# does not enforce, exp= explanations in the 550 5.7.23 reply, the HELO
# identity for the null sender, IPv6, a dead or silent resolver, bad input.
# (The client address is passed to libspf2 directly, so TEST-NET addresses
# need no network namespace here.)
# Ports: unbound 5353 (udp+tcp), a silent udp sink on 5398, nothing on 5399.
. "$(dirname "$0")/../lib.sh"
T=$(tw_tmpdir)
PROBE="$TW_BUILD/tests/policy_probe"
[ -x "$PROBE" ] || { tw_fail "policy_probe built" "$PROBE missing"; tw_summary; exit 1; }

sh "$TW_ROOT/tests/peers/dns.sh" start "$T/dns" 5353 || { tw_fail "unbound starts"; tw_summary; exit 1; }
tw_cleanup_add "sh '$TW_ROOT/tests/peers/dns.sh' stop '$T/dns'"
tw_check "unbound listens on 127.0.0.1:5353" tw_wait_port 127.0.0.1 5353 10

conf() {	# conf FILE extra-lines...
	f=$1
	shift
	{
		echo "store = lmdb:$T/store.lmdb"
		echo "resolver = 127.0.0.1:5353"
		echo "dns_timeout = 1s"
		echo "dns_tries = 1"
		for l in "$@"; do echo "$l"; done
	} >"$f"
}

# expect NAME ERE CONF probe-args...: the first output line matches ERE.
expect() {
	name=$1 ere=$2 cf=$3
	shift 3
	out=$("$PROBE" -c "$cf" "$@" 2>>"$T/probe.stderr" </dev/null)
	first=$(printf '%s\n' "$out" | head -n 1)
	if printf '%s\n' "$first" | grep -Eq -- "$ere"; then
		tw_ok "$name"
	else
		tw_fail "$name" "got: $out"
	fi
}
# detail NAME ERE CONF probe-args...: the log line matches ERE.
detail() {
	name=$1 ere=$2 cf=$3
	shift 3
	out=$("$PROBE" -c "$cf" "$@" 2>>"$T/probe.stderr" </dev/null)
	if printf '%s\n' "$out" | sed -n 2p | grep -Eq -- "$ere"; then
		tw_ok "$name"
	else
		tw_fail "$name" "got: $out"
	fi
}

C="$T/spf.conf"
conf "$C" "spf_softfail = tempfail" "spf_permerror = reject" "spf_neutral = log" "spf_none = log"
IP=192.0.2.20

# --- each result -----------------------------------------------------------
expect "pass" '^pass$' "$C" spf $IP mx.example u@pass.spf.test
detail "pass is logged with result=pass" 'result=pass identity=mailfrom client=192\.0\.2\.20' "$C" spf $IP mx.example u@pass.spf.test
expect "fail: 550 5.7.23 with the default explanation" \
	'^reject 550 5\.7\.23 SPF fail: 192\.0\.2\.20 is not allowed to send mail for fail\.spf\.test$' \
	"$C" spf $IP mx.example u@fail.spf.test
expect "fail: 550 5.7.23 with the domain's exp= text, macros expanded" \
	'^reject 550 5\.7\.23 SPF fail: 192\.0\.2\.20 may not send for exp\.spf\.test, see https://spf\.test/why$' \
	"$C" spf $IP mx.example u@exp.spf.test
expect "exp= whose name is a macro" \
	'^reject 550 5\.7\.23 SPF fail: Rejected 192\.0\.2\.20 for expmacro\.spf\.test$' \
	"$C" spf $IP mx.example u@expmacro.spf.test
expect "exp= lookup does not count: 10 terms + exp is a fail, not permerror" \
	'^reject 550 5\.7\.23 SPF fail: 192\.0\.2\.20 may not send for exp10\.spf\.test' \
	"$C" spf $IP mx.example u@exp10.spf.test
expect "softfail with spf_softfail=tempfail: 451 4.7.1" \
	'^tempfail 451 4\.7\.1 SPF softfail for softfail\.spf\.test' "$C" spf $IP mx.example u@softfail.spf.test
expect "neutral with spf_neutral=log passes" '^pass$' "$C" spf $IP mx.example u@neutral.spf.test
detail "neutral is logged" 'result=neutral' "$C" spf $IP mx.example u@neutral.spf.test
expect "none (no SPF record) passes" '^pass$' "$C" spf $IP mx.example u@none.spf.test
detail "none is logged" 'result=none' "$C" spf $IP mx.example u@none.spf.test
detail "nonexistent domain is none" 'result=none' "$C" spf $IP mx.example u@nothere.spf.test
expect "two SPF records: permerror 550 5.7.24" '^reject 550 5\.7\.24 SPF permanent error for multi\.spf\.test' \
	"$C" spf $IP mx.example u@multi.spf.test
expect "syntax error: permerror" '^reject 550 5\.7\.24' "$C" spf $IP mx.example u@syntax.spf.test
expect "record split over several strings" '^pass$' "$C" spf $IP mx.example u@long.spf.test
expect "huge TXT: a defined verdict (permerror)" '^reject 550 5\.7\.24' "$C" spf $IP mx.example u@huge.spf.test

# --- mechanisms needing lookups ---------------------------------------------
expect "mx mechanism" '^pass$' "$C" spf $IP mx.example u@mx.spf.test
expect "mx mechanism, other client fails" '^reject 550 5\.7\.23' "$C" spf 192.0.2.21 mx.example u@mx.spf.test
expect "ptr mechanism (PTR + A validation)" '^pass$' "$C" spf $IP mx.example u@ptr.spf.test
expect "include chain of 3" '^pass$' "$C" spf $IP mx.example u@inc.spf.test
detail "include chain counts 2 lookups" 'lookups=2 ' "$C" spf $IP mx.example u@inc.spf.test
expect "4 nested includes: pass" '^pass$' "$C" spf $IP mx.example u@shallow.spf.test
expect "11 nested includes: permerror (libspf2 alone would pass)" \
	'^reject 550 5\.7\.24 SPF permanent error for deep\.spf\.test: too many DNS lookups$' \
	"$C" spf $IP mx.example u@deep.spf.test
expect "11 a: terms: permerror" '^reject 550 5\.7\.24 .*too many DNS lookups$' "$C" spf $IP mx.example u@flat.spf.test
expect "3 void lookups: permerror" '^reject 550 5\.7\.24 .*too many void lookups$' "$C" spf $IP mx.example u@void.spf.test
expect "2 void lookups: still evaluated (pass)" '^pass$' "$C" spf $IP mx.example u@void2.spf.test
expect "include loop: permerror" '^reject 550 5\.7\.24' "$C" spf $IP mx.example u@loop.spf.test

# --- identities, IPv6 ------------------------------------------------------
expect "null sender: HELO identity passes" '^pass$' "$C" spf $IP helo.spf.test ""
detail "null sender logged as identity=helo" 'identity=helo' "$C" spf $IP helo.spf.test ""
expect "null sender: HELO identity fails" '^reject 550 5\.7\.23 SPF fail: 198\.51\.100\.7 is not allowed to send mail for helo\.spf\.test$' \
	"$C" spf 198.51.100.7 helo.spf.test ""
expect "IPv6 client in ip6: range" '^pass$' "$C" spf 2001:db8::5 mx.example u@pass6.spf.test
expect "IPv6 client outside ip6: range" '^reject 550 5\.7\.23' "$C" spf 2001:db9::5 mx.example u@pass6.spf.test
expect "v4-mapped client is treated as IPv4" '^pass$' "$C" spf ::ffff:192.0.2.20 mx.example u@pass.spf.test

# --- actions ---------------------------------------------------------------
C2="$T/actions.conf"
conf "$C2" "spf_fail = tempfail"
expect "spf_fail=tempfail: 451 4.7.23" '^tempfail 451 4\.7\.23 SPF fail' "$C2" spf $IP mx.example u@fail.spf.test
conf "$C2" "spf_fail = log"
expect "spf_fail=log: passes" '^pass$' "$C2" spf $IP mx.example u@fail.spf.test
conf "$C2" "spf_fail = ignore"
expect "spf_fail=ignore: skip" '^skip$' "$C2" spf $IP mx.example u@fail.spf.test
conf "$C2" "spf_action = log"
expect "spf_action=log: fail would reject, passes" '^pass$' "$C2" spf $IP mx.example u@fail.spf.test
detail "spf_action=log: decided=reject logged" 'decided=reject mode=log' "$C2" spf $IP mx.example u@fail.spf.test
conf "$C2" "spf_action = ignore"
expect "spf_action=ignore: skip" '^skip$' "$C2" spf $IP mx.example u@fail.spf.test

conf "$C2" "received_spf_header = yes"
out=$("$PROBE" -c "$C2" spf $IP mx.example u@pass.spf.test 2>>"$T/probe.stderr" </dev/null)
printf '%s\n' "$out" | sed -n 3p | grep -Eq '^Received-SPF: pass \(probe\.invalid: domain of u@pass\.spf\.test designates 192\.0\.2\.20 as permitted sender\) client-ip=192\.0\.2\.20; envelope-from="u@pass\.spf\.test"; helo=mx\.example;$' \
	&& tw_ok "received_spf_header=yes: Received-SPF line" || tw_fail "Received-SPF line" "$out"

# --- resolver trouble --------------------------------------------------------
C3="$T/dead.conf"
conf "$C3"
sed -i 's/^resolver = .*/resolver = 127.0.0.1:5399/' "$C3"
expect "resolver down: temperror, 451 4.7.24" '^tempfail 451 4\.7\.24 SPF temporary error for pass\.spf\.test' \
	"$C3" spf $IP mx.example u@pass.spf.test
echo "spf_temperror = log" >>"$C3"
expect "resolver down with spf_temperror=log: mail flows" '^pass$' "$C3" spf $IP mx.example u@pass.spf.test

python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 5398))
time.sleep(20)' &
SINK=$!
tw_cleanup_add "kill $SINK"
sleep 0.3
C4="$T/silent.conf"
conf "$C4" "spf_timeout = 3s"
sed -i 's/^resolver = .*/resolver = 127.0.0.1:5398/' "$C4"
t0=$(date +%s)
expect "silent resolver: temperror" '^tempfail 451 4\.7\.24' "$C4" spf $IP mx.example u@pass.spf.test
t1=$(date +%s)
if [ $((t1 - t0)) -le 4 ]; then tw_ok "silent resolver: answer within the timeout ($((t1 - t0))s)"
else tw_fail "silent resolver: answer within the timeout" "took $((t1 - t0))s"; fi
kill $SINK 2>/dev/null

# --- bad input ---------------------------------------------------------------
for s in 'a@@b' '@' 'x@' '<>' 'u@-bad-.spf.test' 'u@pass.spf.test.' "u@$(printf 'a%.0s' $(seq 1 300)).test" 'u@%{i}.spf.test'; do
	"$PROBE" -c "$C" spf $IP mx.example "$s" >"$T/bad.out" 2>&1 </dev/null
	rc=$?
	if [ $rc -le 2 ]; then tw_ok "sender '$(printf '%.40s' "$s")': defined verdict ($(head -n 1 "$T/bad.out"))"
	else tw_fail "sender '$(printf '%.40s' "$s")'" "exit $rc: $(cat "$T/bad.out")"; fi
done
"$PROBE" -c "$C" spf $IP "" "" >"$T/bad.out" 2>&1 </dev/null
[ $? -le 2 ] && tw_ok "no identity at all: defined verdict" || tw_fail "no identity at all" "$(cat "$T/bad.out")"
expect "unbound still answers after the bad input" '^pass$' "$C" spf $IP mx.example u@pass.spf.test

tw_summary

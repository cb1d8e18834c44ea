#!/bin/sh
# 30-policy-baddns: hostile DNS answers never crash policy/ and always give
# a defined verdict. A hostile server (tests/peers/baddns.py on 127.0.0.1:5397,
# UDP and TCP) answers truncated packets, lying counts, wrong types,
# compression loops, rdlength overruns, a huge TXT (TC bit then TCP), CNAME
# loops, SERVFAIL/REFUSED, wrong ids, garbage and silence — both for the SPF
# record itself and for the lookups of its mechanisms, and for DNSBL zones.
# Each probe runs under `timeout`, so a hang is a failure, not a stall.
# Ports: 5397 (udp+tcp).
. "$(dirname "$0")/../lib.sh"
T=$(tw_tmpdir)
PROBE="$TW_BUILD/tests/policy_probe"
[ -x "$PROBE" ] || { tw_fail "policy_probe built" "$PROBE missing"; tw_summary; exit 1; }

python3 "$TW_ROOT/tests/peers/baddns.py" 5397 240 &
BAD=$!
tw_cleanup_add "kill $BAD"
tw_check "hostile DNS server listens on 127.0.0.1:5397" tw_wait_port 127.0.0.1 5397 10
sleep 0.5
kill -0 $BAD 2>/dev/null && tw_ok "hostile DNS server is ours (port was free)" || { tw_fail "hostile DNS server is ours" "port 5397 busy?"; tw_summary; exit 1; }

C="$T/bad.conf"
cat >"$C" <<EOF2
store = lmdb:$T/store.lmdb
resolver = 127.0.0.1:5397
dns_timeout = 1s
dns_tries = 1
spf_timeout = 4s
spf_permerror = reject
dnsbl_sites = good.bad, trunc.bad, lie.bad, wrongtype.bad, ptrloop.bad, rdover.bad, cname.bad, servfail.bad, refused.bad, badid.bad, garbage.bad, silent.bad, bigtxt.bad
dnsbl_threshold = 1
EOF2

# spf CASE ERE: sender u@CASE.bad from 192.0.2.1, first line matches ERE
spf() {
	out=$(timeout 15 "$PROBE" -c "$C" spf 192.0.2.1 helo.bad "u@$1.bad" 2>>"$T/probe.stderr" </dev/null)
	rc=$?
	first=$(printf '%s\n' "$out" | head -n 1)
	if [ $rc -gt 2 ]; then
		tw_fail "spf $1" "exit $rc (crash or hang): $out"
	elif printf '%s\n' "$first" | grep -Eq -- "$2"; then
		tw_ok "spf $1: $first"
	else
		tw_fail "spf $1" "got: $out"
	fi
}
TEMP='^tempfail 451 4\.7\.24 SPF temporary error'
spf good '^pass$'
spf trunc "$TEMP"
spf lie "$TEMP"
spf rdover "$TEMP"
spf ptrloop "$TEMP"
spf servfail "$TEMP"
spf refused "$TEMP"
spf garbage "$TEMP"
spf badid "$TEMP"
spf silent "$TEMP"
spf wrongtype '^pass$'			# no TXT at all: none, logged
spf cname '^pass$'			# CNAME loop, no data: none
spf bigtxt '^reject 550 5\.7\.24'	# 7.7 KB record over TCP, not SPF syntax
# the record is fine, the a: lookup it needs is hostile
spf spfa-trunc "$TEMP"
spf spfa-lie "$TEMP"
spf spfa-rdover "$TEMP"
spf spfa-ptrloop "$TEMP"
spf spfa-servfail "$TEMP"
spf spfa-garbage "$TEMP"
spf spfa-silent "$TEMP"
spf spfa-wrongtype '^pass$'		# a: finds no A (void), ip4: matches
spf spfa-cname '^pass$'
spf spfa-bigtxt '^pass$'

out=$(timeout 20 "$PROBE" -c "$C" dnsbl 192.0.2.1 2>>"$T/probe.stderr" </dev/null)
rc=$?
[ $rc -le 2 ] && tw_ok "dnsbl over 13 hostile zones: exit $rc" || tw_fail "dnsbl over hostile zones" "exit $rc: $out"
printf '%s\n' "$out" | sed -n 2p | grep -q 'score=1 listed=good\.bad(1) ' \
	&& tw_ok "only the sane zone counts as a listing" || tw_fail "only the sane zone counts" "$out"
for z in trunc lie ptrloop rdover servfail refused badid garbage silent; do
	printf '%s\n' "$out" | grep -q "$z\.bad(" && tw_ok "zone $z.bad is an error, not a listing" \
		|| tw_fail "zone $z.bad is an error" "$out"
done
tw_check "no sanitizer or libspf2 noise on stderr" sh -c "! grep -Eq 'ERROR|runtime error|SPF_' '$T/probe.stderr'"
tw_summary

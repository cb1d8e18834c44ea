#!/bin/sh
# 50-milter-gate: tailwart-gate with `milters = ...` in front of the real
# Postfix backend (complements 55-gate-milter.sh: y-reply pass-through,
# per-recipient scope, quarantine, added recipient, per-milter defaults).
#  - opendkim as a milter in sign mode behind the gate: the message reaches
#    the backend with a DKIM-Signature that a second opendkim (verify mode,
#    key from TestPublicKeys) verifies;
#  - testmilter (libmilter) drives each verdict and modification through the
#    gate: reject/tempfail at connect, MAIL, RCPT (that recipient only), end
#    of message; a `y` reply passed through; discard; add header, replace
#    body, quarantine (X-Quarantine), add recipient;
#  - a milter that hangs, one that is down and one that sends a hostile
#    header get their default_action (tempfail, or accept).
# Ports 28700-28799.
. "$(dirname "$0")/../lib.sh"
T=$(tw_tmpdir)
tw_need_gate
PROBE=$TW_BUILD/tests/milter_probe
TM=$TW_BUILD/tests/testmilter
BAD=$TW_BUILD/tests/bad_milter
BE=28701
GP=28702
MP=28710

tw_backend_start be $BE proxy || { tw_fail "backend start"; tw_summary; exit 1; }
MD=$T/be/mail/user

bg() { # bg NAME CMD...: background peer, killed at exit
	n=$1
	shift
	"$@" >"$T/$n.out" 2>&1 </dev/null &
	echo $! >"$T/$n.pid"
	tw_cleanup_add "kill -KILL $! 2>/dev/null"
}
stop_bg() {
	p=$(cat "$T/$1.pid" 2>/dev/null) || return 0
	kill -KILL "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	rm -f "$T/$1.pid"
}

# gate NAME MILTERS [key=value...]: (re)start the gate with these milters
gate() {
	n=$1
	m=$2
	shift 2
	tw_stop_gate gate >/dev/null 2>&1
	tw_gate_conf "$T/$n.conf" listen=127.0.0.1:$GP backend=127.0.0.1:$BE \
		"store=lmdb:$T/store.lmdb" greylist_action=ignore spf_action=ignore \
		"milters=$m" milter_command_timeout=2s milter_eom_timeout=3s "$@"
	tw_start_gate "$T/$n.conf" gate >/dev/null || { tw_fail "$n: gate start"; tw_gate_log gate; return 1; }
}

S="--server 127.0.0.1:$GP --helo client.example.org --from you@example.org"

# ---- testmilter verdicts ------------------------------------------------------

tm() { # tm NAME ARGS...: testmilter on the next port; M is its spec
	MP=$((MP + 1))
	bg "$1" "$TM" -s "inet:$MP@127.0.0.1" -l "$T/$1.log" "$@"
	tw_wait_port 127.0.0.1 $MP 5
	M="inet:127.0.0.1:$MP"
}
n0=0
delivered() { tw_maildir_count "$MD"; }

tm v-connect -t connect -a reject
gate v-connect "$M"
tw_swaks_expect "reject at connect refuses the session" '5[0-9][0-9]' $S --to user@example.test
stop_bg v-connect

tm v-mail -t mail -a tempfail
gate v-mail "$M"
tw_swaks_expect "tempfail at MAIL" '451 4\.7\.1' $S --to user@example.test
stop_bg v-mail

tm v-rcpt -t rcpt -a reject -m other@example.test
gate v-rcpt "$M"
tw_swaks_expect "reject at RCPT refuses that recipient" '550 5\.7\.1' $S --to other@example.test
n0=$(delivered)
tw_swaks_expect "the other recipient still gets the message" '250' $S \
	--to other@example.test,user@example.test
tw_check "delivered to user" tw_wait_maildir "$MD" $((n0 + 1)) 10
stop_bg v-rcpt

tm v-reply -t rcpt -a reply -r "550 5.1.1 no such user here"
gate v-reply "$M"
tw_swaks_expect "a milter's own reply is passed through" '550 5\.1\.1 no such user here' \
	$S --to user@example.test
stop_bg v-reply

tm v-eom -t eom -a reject
gate v-eom "$M"
tw_swaks_expect "reject at end of message" '550 5\.7\.1' $S --to user@example.test
stop_bg v-eom

tm v-discard -t eom -a discard
gate v-discard "$M"
n0=$(delivered)
tw_swaks_expect "discard: 250 to the client" '250' $S --to user@example.test
sleep 2
[ "$(delivered)" -eq "$n0" ] && tw_ok "discard: nothing delivered" ||
	tw_fail "discard: nothing delivered"
stop_bg v-discard

# ---- modifications ---------------------------------------------------------------

tm mods -H "X-Added:by testmilter" -B "replaced body" -Q "held for review" -R other@example.test
gate mods "$M"
n0=$(delivered)
no=$(tw_maildir_count "$T/be/mail/other")
tw_swaks_expect "modifying milter: accepted" '250' $S --to user@example.test \
	--h-Subject "mods through the gate"
if tw_wait_maildir "$MD" $((n0 + 1)) 10; then
	f=$(grep -l 'mods through the gate' "$MD"/new/* | head -n 1)
	grep -q '^X-Added: by testmilter' "$f" && tw_ok "added header delivered" ||
		tw_fail "added header delivered"
	grep -q '^X-Quarantine: held for review' "$f" && tw_ok "quarantine header delivered" ||
		tw_fail "quarantine header delivered"
	grep -q '^replaced body' "$f" && tw_ok "replaced body delivered" ||
		tw_fail "replaced body delivered"
else
	tw_fail "modified message delivered"
fi
tw_check "added recipient got a copy" tw_wait_maildir "$T/be/mail/other" $((no + 1)) 10
stop_bg mods

# ---- opendkim: sign behind the gate, verify what the backend stored ---------------

mkdir -p "$T/dkim"
opendkim-genkey -D "$T/dkim" -d example.org -s sel >/dev/null 2>&1
printf 'sel._domainkey.example.org v=DKIM1; k=rsa; p=%s\n' \
	"$(openssl rsa -in "$T/dkim/sel.private" -pubout -outform DER 2>/dev/null | base64 -w0)" \
	>"$T/dkim/keys.txt"
for mode in sign verify; do
	MP=$((MP + 1))
	eval "DK_$mode=$MP"
	cat >"$T/dkim/$mode.conf" <<EOF
Socket inet:$MP@127.0.0.1
Mode $([ $mode = sign ] && echo sv || echo v)
Domain example.org
Selector sel
KeyFile $T/dkim/sel.private
RequireSafeKeys false
TestPublicKeys $T/dkim/keys.txt
AuthservID verifier.test
InternalHosts 127.0.0.0/8
PidFile $T/dkim/$mode.pid
Background no
EOF
	bg "dk-$mode" opendkim -f -x "$T/dkim/$mode.conf"
	tw_wait_port 127.0.0.1 $MP 10
done
gate dkim "inet:127.0.0.1:$DK_sign"
n0=$(delivered)
tw_swaks_expect "opendkim behind the gate: accepted" '250' $S --to user@example.test \
	--h-From "You <you@example.org>" --h-Subject "signed by opendkim behind the gate"
if tw_wait_maildir "$MD" $((n0 + 1)) 10; then
	f=$(grep -l 'signed by opendkim behind the gate' "$MD"/new/* | head -n 1)
	grep -q '^DKIM-Signature: .*d=example.org' "$f" 2>/dev/null ||
		grep -A3 '^DKIM-Signature:' "$f" | grep -q 'd=example.org'
	[ $? -eq 0 ] && tw_ok "backend stored a DKIM-Signature" ||
		tw_fail "backend stored a DKIM-Signature"
	# the backend added its own Received: above; opendkim signs From, To,
	# Subject, Date..., not Received, so the signature still verifies
	timeout 20 "$PROBE" "inet:127.0.0.1:$DK_verify" --client 198.51.100.7 --msg "$f" \
		>"$T/verify.txt" 2>&1
	grep -q 'dkim=pass' "$T/verify.txt" && tw_ok "opendkim verifies the stored message" ||
		{ tw_fail "opendkim verifies the stored message"; sed 's/^/    | /' "$T/verify.txt" | head; }
else
	tw_fail "signed message delivered"
fi

# ---- failures: default actions ------------------------------------------------------

MP=$((MP + 1))
bg hang "$BAD" -p $MP -m hang -t E -T 120 -n 10
tw_wait_port 127.0.0.1 $MP 5
gate hang "inet:127.0.0.1:$MP"
t0=$(date +%s)
tw_swaks_expect "a hanging milter: tempfail after the eom timeout" '451 4\.7\.1' $S --to user@example.test
t1=$(date +%s)
[ $((t1 - t0)) -le 10 ] && tw_ok "hang: answered within the timeout" ||
	tw_fail "hang: answered within the timeout" "$((t1 - t0)) s"
gate hang-accept "inet:127.0.0.1:$MP" milter_default_action=accept
tw_swaks_expect "a hanging milter with default accept: delivered" '250' $S --to user@example.test
stop_bg hang

MP=$((MP + 1))
gate down "inet:127.0.0.1:$MP"
tw_swaks_expect "a milter that is down: tempfail" '451 4\.7\.1' $S --to user@example.test
gate down-indexed "inet:127.0.0.1:$MP" "milter_default_action[inet:127.0.0.1:$MP]=accept"
tw_swaks_expect "per-milter default accept: delivered" '250' $S --to user@example.test

MP=$((MP + 1))
bg hostile "$BAD" -p $MP -m hdr-lf -t E -T 120 -n 10
tw_wait_port 127.0.0.1 $MP 5
gate hostile "inet:127.0.0.1:$MP"
n0=$(delivered)
tw_swaks_expect "a hostile header value: tempfail, nothing forwarded" '451 4\.7\.1' $S --to user@example.test
sleep 1
[ "$(delivered)" -eq "$n0" ] && tw_ok "hostile: nothing delivered" || tw_fail "hostile: nothing delivered"
stop_bg hostile

tw_summary

#!/bin/bash
# 55-gate-milter.sh — external milters behind the gate, end to end: swaks ->
# tailwart-gate (milter client) -> Postfix backend (PROXY v2) -> maildir.
#  - opendkim in sign mode: the delivered message carries a DKIM-Signature
#    that a second opendkim (verify mode) accepts;
#  - testmilter (libmilter): reject at RCPT refuses that recipient only,
#    tempfail at MAIL, reject at connect, discard, header changes, body
#    replacement, an added recipient (backend transaction replayed);
#  - a milter that is down or hangs gets its default_action;
#  - bad_milter sends a hostile header: default action, nothing forwarded.
. "$(dirname "$0")/../lib.sh"
tw_need_gate
T=$(tw_tmpdir)
TM=$TW_BUILD/tests/testmilter
BAD=$TW_BUILD/tests/bad_milter
PROBE=$TW_BUILD/tests/milter_probe
for b in "$TM" "$BAD" "$PROBE"; do
	[ -x "$b" ] || { tw_fail "binary" "$b missing"; tw_summary; exit 1; }
done
GP=25055
MD="$T/be/mail/user"
MO="$T/be/mail/other"
tw_backend_start be 26055 proxy >/dev/null

bg() { # bg NAME CMD...: background peer, killed at exit
	n=$1
	shift
	"$@" >"$T/$n.out" 2>&1 </dev/null &
	echo $! >"$T/$n.pid"
	tw_cleanup_add "kill -KILL $! 2>/dev/null"
}
stop_bg() { kill -KILL "$(cat "$T/$1.pid")" 2>/dev/null; sleep 0.2; }

# gate NAME key=value...: (re)start the gate with these milter settings
gate() {
	n=$1
	shift
	tw_stop_gate gate >/dev/null 2>&1
	rm -rf "$T/gate.lmdb" "$T/gate.lmdb-lock"
	tw_gate_conf "$T/gate.conf" listen=127.0.0.1:$GP backend=127.0.0.1:26055 \
		milter_command_timeout=3s milter_eom_timeout=5s "$@"
	tw_start_gate "$T/gate.conf" gate >/dev/null || tw_fail "$n: gate start"
}
send() { # send [swaks args]: from 127.0.0.9 to user@ unless --to given
	tw_swaks --server 127.0.0.1:$GP --local-interface 127.0.0.9 --from a@example.org "$@"
}
reply_is() { # reply_is NAME ERE
	r=$(tw_swaks_reply)
	if echo "$r" | grep -Eq "^($2)"; then tw_ok "$1"; else
		tw_fail "$1" "expected /$2/, got \"$r\""
		tail -n 15 "$TW_TMP/swaks.out" | sed 's/^/    | /'
	fi
}
count() { find "$1/new" "$1/cur" -type f 2>/dev/null | wc -l; }
last_msg() { ls -t "$1"/new/* 2>/dev/null | head -n 1; }

# ---- opendkim signs behind the gate; a second opendkim verifies -------------
mkdir -p "$T/dkim"
opendkim-genkey -D "$T/dkim" -d example.org -s sel >/dev/null 2>&1
printf 'sel._domainkey.example.org v=DKIM1; k=rsa; p=%s\n' \
	"$(openssl rsa -in "$T/dkim/sel.private" -pubout -outform DER 2>/dev/null | base64 -w0)" >"$T/dkim/keys.txt"
dk_conf() { # FILE PORT MODE
	cat >"$1" <<-EOF
	Socket inet:$2@127.0.0.1
	Mode $3
	Domain example.org
	Selector sel
	KeyFile $T/dkim/sel.private
	RequireSafeKeys false
	Canonicalization relaxed/relaxed
	TestPublicKeys $T/dkim/keys.txt
	AuthservID verifier.test
	InternalHosts 127.0.0.0/8
	Background no
	EOF
}
dk_conf "$T/dkim/sign.conf" 28551 s
dk_conf "$T/dkim/verify.conf" 28552 v
bg dksign opendkim -f -x "$T/dkim/sign.conf"
bg dkverify opendkim -f -x "$T/dkim/verify.conf"
tw_check "opendkim (sign) listens" tw_wait_port 127.0.0.1 28551 10
tw_check "opendkim (verify) listens" tw_wait_port 127.0.0.1 28552 10
gate dkim milters=inet:127.0.0.1:28551
before=$(count "$MD")
send --to user@example.test --header "Subject: signed by opendkim behind the gate"
reply_is "message through opendkim: the backend's 250" "250 2\.0\.0 Ok: .*queued as"
tw_wait_maildir "$MD" $((before + 1)) 10 >/dev/null
m=$(last_msg "$MD")
if grep -q '^DKIM-Signature: v=1; a=rsa-sha256.*d=example.org' "$m" 2>/dev/null ||
	grep -A3 '^DKIM-Signature:' "$m" 2>/dev/null | grep -q 'd=example.org'; then
	tw_ok "the delivered message carries opendkim's DKIM-Signature"
else tw_fail "the delivered message carries opendkim's DKIM-Signature" "$(head -20 "$m" 2>/dev/null)"; fi
# strip the backend's own trace headers added after signing, then verify
awk 'BEGIN{skip=1} /^DKIM-Signature:/{skip=0} !skip' "$m" >"$T/dkim/delivered.eml"
timeout 30 "$PROBE" "inet:127.0.0.1:28552" --client 198.51.100.7 --from a@example.org \
	--msg "$T/dkim/delivered.eml" >"$T/dkim/verify.txt" 2>&1
if grep -q 'dkim=pass' "$T/dkim/verify.txt"; then tw_ok "opendkim (verify) says dkim=pass"; else
	tw_fail "opendkim (verify) says dkim=pass" "$(grep -i 'dkim' "$T/dkim/verify.txt" | head -3)"; fi
stop_bg dksign
stop_bg dkverify

# ---- testmilter verdicts --------------------------------------------------------
tm() { # tm NAME PORT ARGS...: a testmilter on PORT
	n=$1 p=$2
	shift 2
	bg "$n" "$TM" -s "inet:$p@127.0.0.1" -l "$T/$n.log" "$@"
	tw_wait_port 127.0.0.1 "$p" 5 || tw_fail "$n: testmilter did not listen"
}

tm rcptrej 28561 -a reject -t rcpt -m other@example.test
gate rcptrej milters=inet:127.0.0.1:28561
before=$(count "$MD"); beforeo=$(count "$MO")
send --to user@example.test,other@example.test
if grep -q '^<\*\* *550 5\.7\.1' "$TW_TMP/swaks.out" && grep -q '^<-  250 2\.0\.0 Ok: .*queued' "$TW_TMP/swaks.out"; then
	tw_ok "reject at RCPT refuses that recipient only; the message goes on"
else tw_fail "reject at RCPT refuses that recipient only" "$(grep -E '^<' "$TW_TMP/swaks.out" | tail -8)"; fi
tw_wait_maildir "$MD" $((before + 1)) 10 >/dev/null
[ "$(count "$MO")" -eq "$beforeo" ] && tw_ok "the refused recipient got nothing" || tw_fail "the refused recipient got nothing"
grep -q 'RCPT: <other@example.test>\|rcpt.*other@example.test' "$T/rcptrej.log" && tw_ok "the milter saw the recipient" ||
	tw_fail "the milter saw the recipient" "$(tail -5 "$T/rcptrej.log")"
stop_bg rcptrej

tm mailtemp 28562 -a tempfail -t mail
gate mailtemp milters=inet:127.0.0.1:28562
send --to user@example.test
reply_is "tempfail at MAIL: 451 to the client" "451 4\.7\.1"
stop_bg mailtemp

tm conrej 28563 -a reject -t connect
gate conrej milters=inet:127.0.0.1:28563
send --to user@example.test
reply_is "reject at connect: the session is refused" "5[0-9][0-9] "
stop_bg conrej

tm discard 28564 -a discard -t eom
gate discard milters=inet:127.0.0.1:28564
before=$(count "$MD")
send --to user@example.test --header "Subject: to be discarded"
reply_is "discard at end of message: 250 to the client" "250 2\.0\.0 Ok: message discarded"
sleep 1
[ "$(count "$MD")" -eq "$before" ] && tw_ok "the discarded message never reached the backend" ||
	tw_fail "the discarded message never reached the backend"
stop_bg discard

tm mods 28565 -H "X-Tailwart-Test:added by milter" -C "1:Subject:changed by milter" \
	-B "replaced body\nsecond line\n" -R other@example.test
gate mods milters=inet:127.0.0.1:28565
before=$(count "$MD"); beforeo=$(count "$MO")
send --to user@example.test --header "Subject: original subject"
reply_is "modifications at end of message: the backend's 250" "250 2\.0\.0 Ok: .*queued"
tw_wait_maildir "$MD" $((before + 1)) 10 >/dev/null
m=$(last_msg "$MD")
grep -q '^X-Tailwart-Test: added by milter' "$m" && tw_ok "added header delivered" || tw_fail "added header delivered" "$(head -30 "$m")"
grep -q '^Subject: changed by milter' "$m" && ! grep -q 'original subject' "$m" && tw_ok "changed header delivered" ||
	tw_fail "changed header delivered" "$(grep -i subject "$m")"
grep -q '^replaced body' "$m" && ! grep -q 'This is a test mailing' "$m" && tw_ok "replaced body delivered" ||
	tw_fail "replaced body delivered" "$(tail -5 "$m")"
tw_check "added recipient: the backend transaction was replayed, other@ got a copy" \
	tw_wait_maildir "$MO" $((beforeo + 1)) 10
stop_bg mods

# ---- a milter that is down or hangs gets its default_action --------------------
gate down milters=inet:127.0.0.1:28566 milter_default_action=tempfail
send --to user@example.test
reply_is "milter down, default_action tempfail: 4xx, nothing accepted" "4[0-9][0-9] "
gate downacc milters=inet:127.0.0.1:28566 milter_default_action=accept
send --to user@example.test
reply_is "milter down, default_action accept: delivered" "250 2\.0\.0 Ok: .*queued"
tm hang 28567 -a hang -t eom -w 20
gate hang milters=inet:127.0.0.1:28567 milter_default_action=accept
t0=$(date +%s)
send --to user@example.test
reply_is "milter hangs at end of message, default accept: delivered" "250 2\.0\.0 Ok: .*queued"
[ $(( $(date +%s) - t0 )) -le 12 ] && tw_ok "the eom timeout bounded the wait" || tw_fail "the eom timeout bounded the wait" "$(( $(date +%s) - t0 )) s"
stop_bg hang

# ---- hostile milter: bare LF in an added header -> default action -------------------
bg badm "$BAD" -p 28568 -m hdr-lf -t E -n 50 -T 120
tw_wait_port 127.0.0.1 28568 5 >/dev/null
gate bad milters=inet:127.0.0.1:28568 milter_default_action=tempfail
before=$(count "$MD")
send --to user@example.test
reply_is "hostile header from a milter: its default action (tempfail)" "4[0-9][0-9] "
sleep 1
[ "$(count "$MD")" -eq "$before" ] && tw_ok "nothing with the hostile header was forwarded" ||
	tw_fail "nothing with the hostile header was forwarded"
stop_bg badm

tw_check "gate master still running" kill -0 "$(tw_gate_pid gate)"
if grep -Eq 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T"/gate.log 2>/dev/null; then
	tw_fail "no sanitizer report in the gate log"
else tw_ok "no sanitizer report in the gate log"; fi
tw_summary

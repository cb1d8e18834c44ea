#!/bin/bash
# 56-gate-milter-reuse.sh — the gate keeps milter connections across SMTP
# sessions (SMFIC_QUIT_NC, protocol 6) in its worker's pool:
#  - testmilter (libmilter): 20 sessions through one worker open one milter
#    connection (one option negotiation in the milter's log, 20 connects)
#    and every message carries the milter's added header;
#  - a session whose message the milter refused (reject at RCPT: libmilter
#    takes no QUIT_NC then) is not parked: the next session negotiates anew
#    and still gets its verdict and header;
#  - a milter restarted between sessions (its parked connection closed) is
#    reconnected cleanly: no default action, the message gets the header;
#  - opendkim (libmilter) answers `accept` at end of message, after which
#    libmilter ignores QUIT_NC: 10 sessions, every message signed, and no
#    connection parked (reuse needs `continue` at end of message).
. "$(dirname "$0")/../lib.sh"
tw_need_gate
T=$(tw_tmpdir)
TM=$TW_BUILD/tests/testmilter
[ -x "$TM" ] || { tw_fail "binary" "$TM missing"; tw_summary; exit 1; }
GP=25056
MD="$T/be/mail/user"
tw_backend_start be 26056 proxy >/dev/null
gate() { # gate key=value...: (re)start a one-worker gate
	tw_stop_gate gate >/dev/null 2>&1
	rm -rf "$T/gate.lmdb" "$T/gate.lmdb-lock"
	tw_gate_conf "$T/gate.conf" listen=127.0.0.1:$GP backend=127.0.0.1:26056 \
		workers_min=1 workers_max=1 milter_command_timeout=5s milter_eom_timeout=5s "$@"
	tw_start_gate "$T/gate.conf" gate >/dev/null || tw_fail "gate start"
}
send() { tw_swaks --server 127.0.0.1:$GP --local-interface 127.0.0.9 --from a@example.org "$@"; }
# send_n N SUBJECT: N sessions, one message each; prints how many got no 250
send_n() {
	f=0
	for i in $(seq 1 "$1"); do
		send --to user@example.test --header "Subject: $2 $i" >/dev/null
		tw_swaks_reply | grep -q '^250 2\.0\.0 Ok: .*queued' || f=$((f + 1))
	done
	echo "$f"
}
count() { find "$1/new" "$1/cur" -type f 2>/dev/null | wc -l; }
nlines() { grep -c "$2" "$1" 2>/dev/null || true; }
# with_header N HDR: the last N messages of user@ all carry HDR
with_header() {
	ls -t "$MD"/new/* 2>/dev/null | head -n "$1" | xargs grep -l "^$2" 2>/dev/null | wc -l
}
tm() { # tm NAME PORT ARGS...
	n=$1 p=$2
	shift 2
	tw_bg "$n" "$TM" -s "inet:$p@127.0.0.1" -l "$T/$n.log" "$@"
	tw_wait_port 127.0.0.1 "$p" 5 || tw_fail "$n: testmilter did not listen"
}

# ---- 20 sessions, one milter connection --------------------------------------
tm reuse 28661 -a reject -t rcpt -m other@example.test -H "X-Reuse:yes"
gate milters=inet:127.0.0.1:28661
before=$(count "$MD")
fails=$(send_n 20 reuse)
[ "$fails" -eq 0 ] && tw_ok "20 sessions through one worker: 20 x 250" ||
	tw_fail "20 sessions through one worker: 20 x 250" "$fails refused; $(tw_swaks_reply)"
tw_wait_maildir "$MD" $((before + 20)) 15 >/dev/null
n=$(with_header 20 "X-Reuse: yes")
[ "$n" -eq 20 ] && tw_ok "all 20 messages carry the milter's header" ||
	tw_fail "all 20 messages carry the milter's header" "$n of 20"
neg=$(nlines "$T/reuse.log" '^negotiate') con=$(nlines "$T/reuse.log" '^connect ')
[ "$neg" -eq 1 ] && [ "$con" -eq 20 ] &&
	tw_ok "one milter connection for 20 sessions (1 negotiation, 20 connects)" ||
	tw_fail "one milter connection for 20 sessions" "negotiations=$neg connects=$con"
grep -q 'default_action' "$TW_TMP/gate.log" && tw_fail "no milter error in the gate's log" \
	"$(grep default_action "$TW_TMP/gate.log" | head -3)" || tw_ok "no milter error in the gate's log"

# a refused recipient (libmilter then takes no QUIT_NC): not parked
send --to other@example.test >/dev/null
tw_swaks_reply | grep -q '^5[0-9][0-9] ' && tw_ok "reject at RCPT still refused with reuse on" ||
	tw_fail "reject at RCPT still refused with reuse on" "$(tw_swaks_reply)"
before=$(count "$MD")
send --to user@example.test --header "Subject: after a refusal" >/dev/null
tw_swaks_reply | grep -q '^250 2\.0\.0 Ok' && tw_ok "the session after a refusal: 250" ||
	tw_fail "the session after a refusal: 250" "$(tw_swaks_reply)"
tw_wait_maildir "$MD" $((before + 1)) 10 >/dev/null
[ "$(with_header 1 "X-Reuse: yes")" -eq 1 ] && tw_ok "... and it carries the milter's header" ||
	tw_fail "... and it carries the milter's header"
neg=$(nlines "$T/reuse.log" '^negotiate')
[ "$neg" -eq 2 ] && tw_ok "after a refused message the connection was not reused (2 negotiations)" ||
	tw_fail "after a refused message the connection was not reused" "negotiations=$neg"

# ---- the milter closes its connections between sessions: reconnected ----------
tw_bg_stop reuse
tm reuse2 28661 -a continue -H "X-Reuse:again"
before=$(count "$MD")
fails=$(send_n 3 "after restart")
[ "$fails" -eq 0 ] && tw_ok "milter restarted between sessions: 3 x 250" ||
	tw_fail "milter restarted between sessions: 3 x 250" "$(tw_swaks_reply)"
tw_wait_maildir "$MD" $((before + 3)) 10 >/dev/null
n=$(with_header 3 "X-Reuse: again")
[ "$n" -eq 3 ] && tw_ok "... all 3 carry the restarted milter's header" ||
	tw_fail "... all 3 carry the restarted milter's header" "$n of 3"
neg=$(nlines "$T/reuse2.log" '^negotiate')
[ "$neg" -eq 1 ] && tw_ok "... over one new connection (1 negotiation)" ||
	tw_fail "... over one new connection" "negotiations=$neg"
grep -q 'default_action' "$TW_TMP/gate.log" && tw_fail "... no default action taken" \
	"$(grep default_action "$TW_TMP/gate.log" | head -3)" || tw_ok "... no default action taken"
tw_bg_stop reuse2

# ---- opendkim --------------------------------------------------------------------
mkdir -p "$T/dkim"
opendkim-genkey -D "$T/dkim" -d example.org -s sel >/dev/null 2>&1
cat >"$T/dkim/sign.conf" <<EOF
Socket inet:28662@127.0.0.1
Mode s
Domain example.org
Selector sel
KeyFile $T/dkim/sel.private
RequireSafeKeys false
InternalHosts 127.0.0.0/8
Background no
EOF
tw_bg dksign opendkim -f -x "$T/dkim/sign.conf"
tw_check "opendkim listens" tw_wait_port 127.0.0.1 28662 10
gate milters=inet:127.0.0.1:28662
before=$(count "$MD")
fails=$(send_n 10 dkim)
[ "$fails" -eq 0 ] && tw_ok "opendkim: 10 sessions, 10 x 250" || tw_fail "opendkim: 10 sessions, 10 x 250" "$(tw_swaks_reply)"
tw_wait_maildir "$MD" $((before + 10)) 15 >/dev/null
n=$(with_header 10 "DKIM-Signature:")
[ "$n" -eq 10 ] && tw_ok "opendkim: all 10 messages signed" || tw_fail "opendkim: all 10 messages signed" "$n of 10"
est=$(ss -Htn state established "( dport = :28662 )" 2>/dev/null | wc -l)
[ "$est" -eq 0 ] && tw_ok "opendkim (accept at EOM): no connection parked (0 established)" ||
	tw_fail "opendkim (accept at EOM): no connection parked" "established=$est"
tw_bg_stop dksign
tw_summary

#!/bin/bash
# 41-relay-queue: deferral and retries. Smarthost down -> deferred, kept,
# delivered after `queue flush`; queue list/show/hold/release/delete while
# the daemon runs; a wrong password defers and never bounces; tls = verify
# refuses a certificate with the wrong name; max_queue_lifetime expiry
# bounces (with a delay warning first).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # tests/run uses sh
. "$(dirname "$0")/../lib.sh"
. "$TW_PEERS/relay_lib.sh"
rl_need_relay

T=$(tw_tmpdir)
SH=27201
SH2=27203
MD=$T/sh/mail
S="--server 127.0.0.1:27200"

qid() { sed -n 's/.*queued as \([0-9A-F]\{16\}\).*/\1/p' "$TW_TMP/swaks.out" | tail -n 1; }
subject_count() { grep -l "^Subject: $2\$" "$1"/new/* 2>/dev/null | wc -l | tr -d ' '; }

# the smarthost is down at first (started once to make its CA, then
# stopped); retries only when flushed (1h back-off)
rl_smarthost_start sh $SH || { tw_fail "smarthost start"; tw_summary; exit 1; }
rl_smarthost_stop sh
i=0
while tw_listening 127.0.0.1 $SH && [ $i -lt 50 ]; do i=$((i + 1)); sleep 0.1; done
rl_conf "$T/q.conf" "listen=127.0.0.1:27200" "smarthost=[localhost]:$SH" \
	"spool_dir=$T/spool-q" "min_backoff=1h" "max_backoff=1h"
rl_start "$T/q.conf" q || { tw_fail "relay start"; tw_summary; exit 1; }

tw_swaks_expect "A accepted while the smarthost is down" 250 $S \
	--from sender@example.test --to user@example.test --header "Subject: queue-A"
A=$(qid)
tw_swaks_expect "B accepted while the smarthost is down" 250 $S \
	--from sender@example.test --to user@example.test --header "Subject: queue-B"
B=$(qid)
tw_swaks_expect "D accepted while the smarthost is down" 250 $S \
	--from sender@example.test --to other@example.test --header "Subject: queue-D"
D=$(qid)
if rl_log_wait q "$D to=\"<other@example.test>\" relay=none .*attempts=1 status=deferred reply=\"4\.4\.1 connect" 15; then
	tw_ok "connect failure defers"
else
	tw_fail "connect failure defers" "$(tail -n 5 "$T/q.log")"
fi
rl_q "$T/q.conf" list >"$T/list1" 2>&1
if grep -q "^$A size=.* attempts=1 " "$T/list1" && grep -q "^$B " "$T/list1" &&
	grep -q '^3 messages$' "$T/list1" && grep -q '<user@example.test> pending 4\.4\.1' "$T/list1"; then
	tw_ok "queue list"
else
	tw_fail "queue list" "$(cat "$T/list1")"
fi
rl_q "$T/q.conf" show "$A" >"$T/show1" 2>&1
if grep -q '^from: <sender@example.test>' "$T/show1" && grep -q '^rcpt: <user@example.test> pending' "$T/show1" &&
	grep -q '^Subject: queue-A' "$T/show1"; then
	tw_ok "queue show"
else
	tw_fail "queue show" "$(cat "$T/show1")"
fi
tw_check "queue hold" rl_q "$T/q.conf" hold "$A"
rl_q "$T/q.conf" list >"$T/list2" 2>&1
grep -q "^$A HOLD " "$T/list2" && tw_ok "held message listed as HOLD" ||
	tw_fail "held message listed as HOLD" "$(cat "$T/list2")"
tw_check "queue delete" rl_q "$T/q.conf" delete "$B"
rl_q "$T/q.conf" list >"$T/list3" 2>&1
grep -q "^$B " "$T/list3" && tw_fail "deleted message gone" "$(cat "$T/list3")" ||
	tw_ok "deleted message gone"
if rl_q "$T/q.conf" show 0000000000000000 >/dev/null 2>&1; then
	tw_fail "unknown id refused"
else
	tw_ok "unknown id refused"
fi

rl_smarthost_start sh $SH || { tw_fail "smarthost start"; tw_summary; exit 1; }
sleep 2
if [ "$(tw_maildir_count "$MD/other")" -eq 0 ]; then
	tw_ok "deferred message waits for its back-off"
else
	tw_fail "deferred message waits for its back-off"
fi
tw_check "queue flush ID" rl_q "$T/q.conf" flush "$D"
tw_wait_maildir "$MD/other" 1 20 && tw_ok "flushed message delivered" ||
	tw_fail "flushed message delivered" "$(tail -n 5 "$T/q.log")"
tw_check "queue flush (all)" rl_q "$T/q.conf" flush
sleep 3
[ "$(subject_count "$MD/user" queue-A)" -eq 0 ] && tw_ok "held message not delivered by flush" ||
	tw_fail "held message not delivered by flush"
tw_check "queue release" rl_q "$T/q.conf" release "$A"
if tw_wait_maildir "$MD/user" 1 20 && [ "$(subject_count "$MD/user" queue-A)" -eq 1 ]; then
	tw_ok "released message delivered once"
else
	tw_fail "released message delivered once" "$(tail -n 5 "$T/q.log")"
fi
sleep 1
[ "$(subject_count "$MD/user" queue-B)" -eq 0 ] && tw_ok "deleted message never delivered" ||
	tw_fail "deleted message never delivered"
rl_stop q

# a wrong password defers, retries, never bounces
rl_conf "$T/w.conf" "listen=127.0.0.1:27204" "smarthost=[localhost]:$SH" \
	"spool_dir=$T/spool-w" "auth_password=wrong#password"
rl_start "$T/w.conf" w || { tw_fail "relay start (w)"; tw_summary; exit 1; }
tw_swaks_expect "accepted (wrong password relay)" 250 --server 127.0.0.1:27204 \
	--from sender@example.test --to user@example.test --header "Subject: queue-W"
W=$(qid)
if rl_log_wait w "$W to=\"<user@example.test>\" .*attempts=3 status=deferred reply=\"4\.4\.1 .*AUTH failed: 535" 30; then
	tw_ok "wrong password: deferred, retried"
else
	tw_fail "wrong password: deferred, retried" "$(tail -n 5 "$T/w.log")"
fi
if grep -q "status=bounced" "$T/w.log" || [ "$(tw_maildir_count "$MD/sender")" -ne 0 ]; then
	tw_fail "wrong password never bounces"
else
	tw_ok "wrong password never bounces"
fi
rl_q "$T/w.conf" list | grep -q "^$W " && tw_ok "still queued" || tw_fail "still queued"
rl_stop w

# tls = verify refuses a certificate for another name; encrypt does not verify
rl_smarthost_start sh2 $SH2 wrong.example.test || { tw_fail "smarthost2 start"; tw_summary; exit 1; }
rl_conf "$T/v.conf" "listen=127.0.0.1:27205" "smarthost=[localhost]:$SH2" \
	"spool_dir=$T/spool-v" "tls_ca=$T/sh2/ca.pem"
rl_start "$T/v.conf" v || { tw_fail "relay start (v)"; tw_summary; exit 1; }
tw_swaks_expect "accepted (verify relay)" 250 --server 127.0.0.1:27205 \
	--from sender@example.test --to user@example.test --header "Subject: queue-V"
V=$(qid)
if rl_log_wait v "$V to=\"<user@example.test>\" .*status=deferred reply=\"4\.4\.1 .*TLS handshake failed" 20; then
	tw_ok "tls=verify: wrong certificate name defers"
else
	tw_fail "tls=verify: wrong certificate name defers" "$(tail -n 5 "$T/v.log")"
fi
[ "$(tw_maildir_count "$T/sh2/mail/user")" -eq 0 ] && tw_ok "nothing delivered to the wrong name" ||
	tw_fail "nothing delivered to the wrong name"
rl_stop v
rl_conf "$T/e.conf" "listen=127.0.0.1:27206" "smarthost=[localhost]:$SH2" \
	"spool_dir=$T/spool-v" "tls=encrypt"
rl_start "$T/e.conf" e || { tw_fail "relay start (e)"; tw_summary; exit 1; }
tw_wait_maildir "$T/sh2/mail/user" 1 20 && tw_ok "tls=encrypt delivers the same spool" ||
	tw_fail "tls=encrypt delivers the same spool" "$(tail -n 5 "$T/e.log")"
rl_stop e

# max_queue_lifetime: a recipient the smarthost always defers is bounced
n0=$(tw_maildir_count "$MD/sender")
rl_conf "$T/l.conf" "listen=127.0.0.1:27207" "smarthost=[localhost]:$SH" \
	"spool_dir=$T/spool-l" "max_queue_lifetime=4s" "delay_warning=1s"
rl_start "$T/l.conf" l || { tw_fail "relay start (l)"; tw_summary; exit 1; }
tw_swaks_expect "accepted (lifetime relay)" 250 --server 127.0.0.1:27207 \
	--from sender@example.test --to defer@example.test,postmaster@example.test \
	--header "Subject: queue-L"
L=$(qid)
tw_wait_maildir "$MD/postmaster" 1 20 && tw_ok "the other recipient is delivered" ||
	tw_fail "the other recipient is delivered"
if rl_log_wait l "$L to=\"<defer@example.test>\" .*status=bounced reply=\"4\.4\.7 message expired" 30; then
	tw_ok "expired recipient bounced"
else
	tw_fail "expired recipient bounced" "$(tail -n 5 "$T/l.log")"
fi
if tw_wait_maildir "$MD/sender" $((n0 + 2)) 20; then
	if grep -l '^Action: delayed' "$MD/sender/new/"* >/dev/null 2>&1; then
		tw_ok "delay warning DSN"
	else
		tw_fail "delay warning DSN"
	fi
	f=$(grep -l '^Action: failed' "$MD/sender/new/"* | head -n 1)
	if [ -n "$f" ] && grep -q '^Final-Recipient: rfc822; defer@example.test' "$f" &&
		grep -q '^Status: 4\.4\.7' "$f" && grep -q '^Subject: queue-L' "$f"; then
		tw_ok "expiry DSN"
	else
		tw_fail "expiry DSN" "$(cat "$f" 2>/dev/null | head -n 40)"
	fi
else
	tw_fail "delay and expiry DSNs delivered" "$(ls "$MD/sender/new" 2>&1)"
fi
rl_stop l
tw_summary

#!/bin/bash
# 49-relay-stalwart: the relay as Stalwart's relay route (issue 10 §3),
# against the real Postfix smarthost (debug_peer_list shows the commands
# it received). 8-bit content is detected while spooling and declared
# with BODY=8BITMIME although the client said nothing; DSN is advertised,
# RET/ENVID/NOTIFY/ORCPT are kept in the spool and reach the smarthost
# (its own "delivered" DSN carries them back, ENVID xtext-decoded); NOTIFY=NEVER silences the
# relay's own bounce; NOTIFY=SUCCESS through a smarthost without DSN gets
# the relay's "relayed" report; the default size limit is Stalwart's 100M.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # tests/run uses sh
. "$(dirname "$0")/../lib.sh"
. "$TW_PEERS/relay_lib.sh"
rl_need_relay

T=$(tw_tmpdir)
SH=27901
RP=27900
rl_smarthost_start sh $SH || { tw_fail "smarthost start"; tw_summary; exit 1; }
MD=$T/sh/mail
postconf -c "$T/sh/etc" -e "debug_peer_list = 127.0.0.1" "debug_peer_level = 1" &&
	postfix -c "$T/sh/etc" reload >/dev/null 2>&1 || tw_fail "smarthost debug_peer_list"
sleep 1
rl_conf "$T/relay.conf" "listen=127.0.0.1:$RP" "smarthost=[localhost]:$SH" "spool_dir=$T/spool"
rl_start "$T/relay.conf" || { tw_fail "relay start"; tw_summary; exit 1; }
maillog_has() { tw_wait_file_grep "$T/sh/maillog" "$1" "${2:-20}"; }

# smtpchat lines: txn MAIL_ARGS RCPT SUBJECT BODY (one transaction);
# session NAME (EHLO, the lines on stdin, QUIT)
txn() {
	printf '%s\n' "> MAIL FROM:<sender@example.test>$1" '< 250' "> RCPT TO:$2" '< 250' \
		'> DATA' '< 354' ">> Subject: $3\\r\\n\\r\\n$4\\r\\n.\\r\\n" '< 250 2\.0\.0 Ok: queued as'
}
session() {
	{ printf '%s\n' '< 220' '> EHLO stalwart.example.test' '< 250' '<+ 250.DSN' '<+ 250.SIZE 104857600'
	  cat; printf '%s\n' '> QUIT' '< 221'; } | tw_chat_expect "$1" 127.0.0.1 $RP
}

# Stalwart's envelope: no BODY=, SIZE, and the DSN parameters
txn ' SIZE=200 RET=HDRS ENVID=stalwart+2Bq1' \
	'<user@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;user+40example.test' \
	relay-8bit 'Gr\xc3\xbc\xc3\x9fe' | session "8-bit message without BODY=, with DSN parameters, accepted"
if maillog_has 'MAIL FROM:<sender@example.test> BODY=8BITMIME SIZE=[0-9]+ RET=HDRS ENVID=stalwart\+2Bq1'; then
	tw_ok "smarthost got BODY=8BITMIME and RET/ENVID"
else
	tw_fail "smarthost got BODY=8BITMIME and RET/ENVID" "$(grep -a 'MAIL FROM' "$T/sh/maillog" | tail -n 3)"
fi
maillog_has 'RCPT TO:<user@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;user\+40example.test' &&
	tw_ok "smarthost got NOTIFY and ORCPT" ||
	tw_fail "smarthost got NOTIFY and ORCPT" "$(grep -a 'RCPT TO' "$T/sh/maillog" | tail -n 3)"
# Postfix honours NOTIFY=SUCCESS: its "delivered" DSN comes back to the sender
if tw_wait_file_grep "$MD/sender" '^Action: delivered' 30 &&
	grep -rq '^Original-Envelope-Id: stalwart+q1' "$MD/sender" &&
	grep -rq '^Original-Recipient: rfc822;user@example.test' "$MD/sender"; then
	tw_ok "smarthost's success DSN carries ENVID and ORCPT back"
else
	tw_fail "smarthost's success DSN carries ENVID and ORCPT back" "$(ls -R "$MD/sender" 2>&1 | head)"
fi

txn '' '<other@example.test>' relay-7bit plain | session "7-bit message"
if maillog_has 'MAIL FROM:<sender@example.test> SIZE=[0-9]+$'; then
	tw_ok "7-bit message: no BODY= declared"
else
	tw_fail "7-bit message: no BODY= declared" "$(grep -a 'MAIL FROM' "$T/sh/maillog" | tail -n 3)"
fi

# NOTIFY=NEVER: the smarthost refuses the recipient, the relay stays silent
nb0=$(grep -c 'sender non-delivery notification' "$T/relay.log")
{ txn '' '<unknown@example.test> NOTIFY=NEVER' relay-never x
  txn '' '<unknown2@example.test> NOTIFY=FAILURE' relay-failure x; } |
	session "NOTIFY=NEVER and NOTIFY=FAILURE to refused recipients"
if rl_log_wait relay 'to="<unknown@example.test>" .*status=bounced' 20 &&
	rl_log_wait relay 'to="<unknown2@example.test>" .*status=bounced' 20 &&
	rl_log_wait relay 'sender non-delivery notification' 20; then
	sleep 1
	nb=$(grep -c 'sender non-delivery notification' "$T/relay.log")
	[ $((nb - nb0)) -eq 1 ] && tw_ok "NOTIFY=NEVER: no bounce; NOTIFY=FAILURE: one" ||
		tw_fail "NOTIFY=NEVER: no bounce; NOTIFY=FAILURE: one" "$((nb - nb0)) bounces"
else
	tw_fail "NOTIFY=NEVER: no bounce; NOTIFY=FAILURE: one" "$(tail -n 5 "$T/relay.log")"
fi

# a smarthost without DSN: the relay reports "relayed" itself
postconf -c "$T/sh/etc" -e "smtpd_discard_ehlo_keywords = dsn" &&
	postfix -c "$T/sh/etc" reload >/dev/null 2>&1
sleep 1
txn ' ENVID=nodsn1' '<user@example.test> NOTIFY=SUCCESS ORCPT=rfc822;user@example.test' \
	relay-nodsn x | session "NOTIFY=SUCCESS through a smarthost without DSN"
if rl_log_wait relay 'sender relayed notification' 20 &&
	tw_wait_file_grep "$MD/sender" '^Action: relayed' 30 &&
	grep -rq '^Original-Envelope-Id: nodsn1' "$MD/sender"; then
	tw_ok "relay's own 'relayed' DSN with ENVID"
else
	tw_fail "relay's own 'relayed' DSN with ENVID" "$(tail -n 5 "$T/relay.log")"
fi
maillog_has 'RCPT TO:<user@example.test>$' && tw_ok "no DSN parameters to a smarthost without DSN" ||
	tw_fail "no DSN parameters to a smarthost without DSN" "$(grep -a 'RCPT TO' "$T/sh/maillog" | tail -n 2)"

tw_chat_expect "bad DSN parameters refused" 127.0.0.1 $RP <<'CHAT'
< 220
> EHLO stalwart.example.test
< 250
> MAIL FROM:<sender@example.test> RET=BOTH
< 555
> MAIL FROM:<sender@example.test> ENVID=a=b
< 501
> MAIL FROM:<sender@example.test>
< 250
> RCPT TO:<user@example.test> NOTIFY=NEVER,SUCCESS
< 501
> RCPT TO:<user@example.test> ORCPT=user@example.test
< 501
alive
CHAT

tw_summary

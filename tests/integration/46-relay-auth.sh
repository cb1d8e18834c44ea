#!/bin/bash
# 46-relay-auth: the receiver's optional STARTTLS + AUTH PLAIN/LOGIN for
# clients outside client_networks: AUTH is never offered in clear, MAIL
# needs AUTH (450 4.7.0: a temporary failure, the client retries), wrong credentials get 535, right ones relay; clients in
# client_networks still need nothing; without smtpd_auth_user an outside
# client is refused at connect (covered by 40-relay-basic).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # tests/run uses sh
. "$(dirname "$0")/../lib.sh"
. "$TW_PEERS/relay_lib.sh"
rl_need_relay

T=$(tw_tmpdir)
SH=27701
RP=27700
rl_smarthost_start sh $SH || { tw_fail "smarthost start"; tw_summary; exit 1; }
MD=$T/sh/mail
tw_certs
export RELAY_CLIENT_PW='cl#ient pw'
rl_conf "$T/relay.conf" "listen=127.0.0.1:$RP" "smarthost=[localhost]:$SH" \
	"client_networks=127.0.0.2/32" "smtpd_tls_cert=$T/cert.pem" "smtpd_tls_key=$T/key.pem" \
	"smtpd_auth_user=client@example.test" "smtpd_auth_password=%{env:RELAY_CLIENT_PW}%"
tw_check "config with receiver TLS and AUTH" "$TW_RELAY" -n -c "$T/relay.conf"
rl_conf "$T/bad.conf" "smtpd_auth_user=x" "smtpd_auth_password=y"
out=$("$TW_RELAY" -n -c "$T/bad.conf" 2>&1)
[ $? -ne 0 ] && echo "$out" | grep -q 'bad.conf:[0-9]*: smtpd_auth_user needs smtpd_tls_cert' &&
	tw_ok "AUTH without a certificate refused" || tw_fail "AUTH without a certificate refused" "$out"
rl_start "$T/relay.conf" || { tw_fail "relay start"; tw_summary; exit 1; }

tw_chat_expect "no AUTH in clear; MAIL needs AUTH" -b 127.0.0.1 127.0.0.1 $RP <<'CHAT'
< 220
> EHLO client.example.test
< 250
<+ 250.STARTTLS
<- 250.AUTH
> AUTH PLAIN AGNsaWVudEBleGFtcGxlLnRlc3QAY2wjaWVudCBwdw==
< 502
> MAIL FROM:<client@example.test>
< 450 4\.7\.0
> STARTTLS
< 220
starttls
> EHLO client.example.test
< 250
<+ 250.AUTH PLAIN LOGIN
<- 250.STARTTLS
> STARTTLS
< 503 5\.5\.1 TLS already active
> MAIL FROM:<client@example.test>
< 450 4\.7\.0
> AUTH PLAIN AGNsaWVudEBleGFtcGxlLnRlc3QAd3Jvbmc=
< 535 5\.7\.8
> AUTH PLAIN
< 334
> AGNsaWVudEBleGFtcGxlLnRlc3QAY2wjaWVudCBwdw==
< 235 2\.7\.0
> AUTH PLAIN AGNsaWVudEBleGFtcGxlLnRlc3QAY2wjaWVudCBwdw==
< 503
> MAIL FROM:<client@example.test>
< 250
> RCPT TO:<user@example.test>
< 250
> DATA
< 354
> Subject: relay-auth-plain
>
> hi
> .
< 250 2\.0\.0 Ok: queued as
> QUIT
< 221
CHAT
tw_swaks_expect "AUTH LOGIN over STARTTLS relays" "250 2\.0\.0 Ok: queued as" \
	--server 127.0.0.1:$RP -tls --auth LOGIN --auth-user client@example.test \
	--auth-password "$RELAY_CLIENT_PW" --from client@example.test --to other@example.test \
	--header "Subject: relay-auth-login"
tw_swaks_expect "wrong password refused" "535" \
	--server 127.0.0.1:$RP -tls --auth LOGIN --auth-user client@example.test \
	--auth-password wrong --from client@example.test --to other@example.test
tw_swaks_expect "trusted client needs no AUTH" 250 --server 127.0.0.1:$RP \
	--local-interface 127.0.0.2 --from sender@example.test --to user@example.test \
	--header "Subject: relay-auth-trusted"
if tw_wait_maildir "$MD/user" 2 20 && tw_wait_maildir "$MD/other" 1 20; then
	tw_ok "authenticated and trusted mail delivered"
else
	tw_fail "authenticated and trusted mail delivered" "$(tail -n 5 "$T/relay.log")"
fi
f=$(grep -l 'relay-auth-plain' "$MD/user/new/"* 2>/dev/null | head -n 1)
[ -n "$f" ] && grep -q 'by relay.example.test (tailwart-relay) with ESMTPSA' "$f" &&
	tw_ok "Received: says ESMTPSA" || tw_fail "Received: says ESMTPSA"
grep -q 'auth=client@example.test' "$T/relay.log" && tw_ok "AUTH logged (user only)" ||
	tw_fail "AUTH logged"
grep -q 'cl#ient' "$T/relay.log" && tw_fail "password never logged" || tw_ok "password never logged"
rl_stop relay
grep -q 'warning: smtpd client=127.0.0.1 reject reason=no-auth stage=mail reply="450 4.7.0"' "$T/relay.log" &&
	tw_ok "MAIL without AUTH logged as a warning" || tw_fail "MAIL without AUTH logged as a warning"
tw_summary

#!/bin/bash
# 40-relay-basic: tailwart-relay against a real Postfix smarthost that
# requires STARTTLS and SASL AUTH. Accepted mail reaches the smarthost
# authenticated over TLS (DATA and BDAT); a 5xx recipient bounces to the
# sender with an RFC 3464 DSN while the other is delivered; no DSN for a
# null sender; SMTPUTF8; strict line handling; a client outside
# client_networks is refused; only the master runs as root; tls = implicit
# (port 465 style); config checks (-n, missing secret).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # tests/run uses sh
. "$(dirname "$0")/../lib.sh"
. "$TW_PEERS/relay_lib.sh"
rl_need_relay

T=$(tw_tmpdir)
SH=27101
RP=27100
SMTPS=27102
export SMARTHOST_SMTPS_PORT=$SMTPS
rl_smarthost_start sh $SH || { tw_fail "smarthost start"; tw_summary; exit 1; }
MD=$T/sh/mail

rl_conf "$T/relay.conf" "listen=127.0.0.1:$RP" "smarthost=[localhost]:$SH" \
	"client_networks=127.0.0.2/32, 127.0.0.3/32"
tw_check "config check -n" "$TW_RELAY" -n -c "$T/relay.conf"
out=$(env -u SMARTHOST_PASSWORD "$TW_RELAY" -n -c "$T/relay.conf" 2>&1)
if [ $? -ne 0 ] && echo "$out" | grep -Eq 'relay.conf:[0-9]+: .*SMARTHOST_PASSWORD'; then
	tw_ok "missing secret is a file:line error"
else
	tw_fail "missing secret is a file:line error" "$out"
fi
printf 'listen = 127.0.0.1:1\nsmarthost = [x]:25\nbogus = 1\n' >"$T/bad.conf"
out=$("$TW_RELAY" -n -c "$T/bad.conf" 2>&1)
if [ $? -ne 0 ] && echo "$out" | grep -q 'bad.conf:3: unknown key "bogus"'; then
	tw_ok "unknown key refused"
else
	tw_fail "unknown key refused" "$out"
fi

rl_start "$T/relay.conf" || { tw_fail "relay start"; tw_summary; exit 1; }
S="--server 127.0.0.1:$RP --local-interface 127.0.0.2"

# (1) accepted mail reaches the smarthost, authenticated, over TLS
tw_swaks_expect "accepted with queue id" "250 2\.0\.0 Ok: queued as [0-9A-F]{16}" \
	$S --from sender@example.test --to user@example.test --header "Subject: relay-basic-1"
if tw_wait_maildir "$MD/user" 1 20; then
	tw_ok "delivered to the smarthost's mailbox"
else
	tw_fail "delivered to the smarthost's mailbox" "nothing in $MD/user"
	tail -n 20 "$T/relay.log" | sed 's/^/    | /'
fi
f=$(ls "$MD/user/new/"* 2>/dev/null | head -n 1)
if [ -n "$f" ] && grep -q 'with ESMTPSA' "$f" && grep -q '(using TLSv1' "$f" &&
	grep -q '(Authenticated sender: relay@example.test)' "$f"; then
	tw_ok "smarthost saw TLS and AUTH (ESMTPSA)"
else
	tw_fail "smarthost saw TLS and AUTH (ESMTPSA)" "$(head -n 12 "$f" 2>/dev/null)"
fi
tw_check "smarthost log: sasl_username" grep -q 'sasl_method=PLAIN, sasl_username=relay@example.test' "$T/sh/maillog"
if grep -Eq '^.*[0-9A-F]{16} to="<user@example.test>" relay=localhost\[127\.0\.0\.1\]:'"$SH"' delay=[0-9]+s attempts=1 status=sent reply="250 2\.0\.0' "$T/relay.log"; then
	tw_ok "one log line per attempt"
else
	tw_fail "one log line per attempt" "$(grep 'to="<' "$T/relay.log" | tail -n 3)"
fi
if grep -q 's3cret' "$T/relay.log"; then
	tw_fail "no secret in the log" "the password appears in the log"
else
	tw_ok "no secret in the log"
fi

# (4) a 5xx recipient bounces to the sender while the other is delivered
tw_swaks_expect "two recipients accepted" 250 $S --from sender@example.test \
	--to other@example.test,unknown@example.test --header "Subject: relay-basic-dsn"
tw_wait_maildir "$MD/other" 1 20 && tw_ok "good recipient delivered" ||
	tw_fail "good recipient delivered" "nothing in $MD/other"
if tw_wait_maildir "$MD/sender" 1 20; then
	tw_ok "DSN delivered to the sender"
	d=$(ls "$MD/sender/new/"* | head -n 1)
	ok=1
	for re in '^Return-Path: <>' 'Content-Type: multipart/report; report-type=delivery-status' \
		'^Content-Type: message/delivery-status' '^Reporting-MTA: dns; relay.example.test' \
		'^Final-Recipient: rfc822; unknown@example.test' '^Action: failed' '^Status: 5\.1\.1' \
		'^Diagnostic-Code: smtp; 550 5\.1\.1' '^Content-Type: text/rfc822-headers' \
		'^Subject: relay-basic-dsn'; do
		grep -Eq "$re" "$d" || { ok=0; tw_fail "DSN has /$re/"; }
	done
	[ $ok = 1 ] && tw_ok "DSN is a valid RFC 3464 report"
	if grep -q '^Final-Recipient: rfc822; other@example.test' "$d"; then
		tw_fail "DSN names only the failed recipient"
	else
		tw_ok "DSN names only the failed recipient"
	fi
else
	tw_fail "DSN delivered to the sender" "nothing in $MD/sender"
	tail -n 20 "$T/relay.log" | sed 's/^/    | /'
fi

# no DSN for a null sender
tw_swaks_expect "null sender accepted" 250 $S --from '<>' --to unknown@example.test \
	--header "Subject: relay-basic-null"
id=$(sed -n 's/.*queued as \([0-9A-F]\{16\}\).*/\1/p' "$TW_TMP/swaks.out" | tail -n 1)
if rl_log_wait relay "$id to=\"<unknown@example.test>\" .*status=bounced" 20; then
	sleep 1
	if grep -q "$id sender non-delivery" "$T/relay.log"; then
		tw_fail "no DSN for a null sender" "a DSN was queued"
	else
		tw_ok "no DSN for a null sender"
	fi
else
	tw_fail "no DSN for a null sender" "no bounce logged for $id"
fi

# BDAT (CHUNKING), as Stalwart sends it: one BDAT n LAST
body='From: <sender@example.test>\r\nTo: <user@example.test>\r\nSubject: relay-basic-bdat\r\n\r\n.leading dot\r\nbody\r\n'
len=$(printf "$body" | wc -c)
n0=$(tw_maildir_count "$MD/user")
tw_chat_expect "BDAT accepted" -b 127.0.0.2 127.0.0.1 $RP <<CHAT
< 220
> EHLO client.example.test
< 250
<+ 250.CHUNKING
<+ 250.SMTPUTF8
<+ 250.PIPELINING
> MAIL FROM:<sender@example.test> BODY=8BITMIME
< 250
> RCPT TO:<user@example.test>
< 250
>> BDAT $len LAST\r\n$body
< 250 2\.0\.0 Ok: queued as
> QUIT
< 221
CHAT
if tw_wait_maildir "$MD/user" $((n0 + 1)) 20; then
	f=$(grep -l 'relay-basic-bdat' "$MD/user/new/"* | head -n 1)
	if [ -n "$f" ] && grep -q '^\.leading dot' "$f"; then
		tw_ok "BDAT message delivered intact (leading dot kept)"
	else
		tw_fail "BDAT message delivered intact (leading dot kept)"
	fi
else
	tw_fail "BDAT message delivered" "nothing new in $MD/user"
fi

# BDAT in several chunks; BDAT out of sequence still has its bytes eaten
n0=$(tw_maildir_count "$MD/user")
tw_chat_expect "BDAT in chunks, BDAT out of sequence" -b 127.0.0.2 127.0.0.1 $RP <<'CHAT'
< 220
> EHLO client.example.test
< 250
>> BDAT 8\r\nNOOP\r\n\r\n
< 503
> MAIL FROM:<sender@example.test>
< 250
> RCPT TO:<user@example.test>
< 250
>> BDAT 34\r\nSubject: relay-basic-chunks\r\n\r\nfir
< 250
>> BDAT 0\r\n
< 250
>> BDAT 8 LAST\r\nst\r\nlast
< 250 2\.0\.0 Ok: queued as
> DATA
< 503
alive
CHAT
if tw_wait_maildir "$MD/user" $((n0 + 1)) 20; then
	f=$(grep -l 'relay-basic-chunks' "$MD/user/new/"* | head -n 1)
	[ -n "$f" ] && grep -q '^first$' "$f" && grep -q '^last$' "$f" &&
		tw_ok "chunks joined, missing final CRLF added" || tw_fail "chunks joined" "$(cat "$f")"
else
	tw_fail "chunked message delivered"
fi

tw_chat_expect "absurd BDAT size: 552 and hang up" -b 127.0.0.2 127.0.0.1 $RP <<'CHAT'
< 220
> EHLO client.example.test
< 250
> MAIL FROM:<sender@example.test>
< 250
> RCPT TO:<user@example.test>
< 250
> BDAT 999999999999 LAST
< 552 5\.3\.4
eof
CHAT

# pipelined envelope + DATA with dot-stuffing
n0=$(tw_maildir_count "$MD/user")
tw_chat_expect "pipelined DATA" -b 127.0.0.2 127.0.0.1 $RP <<'CHAT'
< 220
> EHLO client.example.test
< 250
>> MAIL FROM:<sender@example.test>\r\nRCPT TO:<user@example.test>\r\nRCPT TO:<other@example.test>\r\nDATA\r\n
< 250
< 250
< 250
< 354
>> Subject: relay-basic-pipe\r\n\r\n..stuffed\r\n.\r\n
< 250 2\.0\.0 Ok: queued as
> QUIT
< 221
CHAT
if tw_wait_maildir "$MD/user" $((n0 + 1)) 20; then
	f=$(grep -l 'relay-basic-pipe' "$MD/user/new/"* | head -n 1)
	[ -n "$f" ] && grep -q '^\.stuffed' "$f" && tw_ok "dot-stuffing undone and redone" ||
		tw_fail "dot-stuffing undone and redone"
else
	tw_fail "pipelined message delivered"
fi

# strict lines: bare LF in DATA and in a command
tw_chat_expect "bare LF in DATA refused" -b 127.0.0.2 127.0.0.1 $RP <<'CHAT'
< 220
> EHLO client.example.test
< 250
> MAIL FROM:<sender@example.test>
< 250
> RCPT TO:<user@example.test>
< 250
> DATA
< 354
>> Subject: x\r\n\r\nbare\nLF\r\n.\r\n
< 550 5\.6\.0
alive
> QUIT
< 221
CHAT
tw_chat_expect "bare LF in a command refused" -b 127.0.0.2 127.0.0.1 $RP <<'CHAT'
< 220
>> EHLO client.example.test\n
< 501 5\.5\.2 Bare CR or LF
alive
CHAT
tw_chat_expect "oversized SIZE refused, bad sequence, unknown command" -b 127.0.0.2 127.0.0.1 $RP <<'CHAT'
< 220
> MAIL FROM:<a@example.test>
< 503
> EHLO client.example.test
< 250
> MAIL FROM:<a@example.test> SIZE=999999999999
< 552 5\.3\.4
> RCPT TO:<user@example.test>
< 503
> FOO
< 500
> DATA
< 503
alive
CHAT
# the shared engine's rule set (lib/smtpd, docs/smtpd.md), as the gate answers
tw_chat_expect "engine rules: EHLO name, RCPT domain, DATA without RCPT, VRFY, HELP" -b 127.0.0.2 127.0.0.1 $RP <<'CHAT'
< 220
> EHLO -bad-.example.test
< 501 5\.5\.4 Syntax: EHLO hostname
> EHLO client.example.test
< 250
> MAIL FROM:<sender@example.test>
< 250 2\.1\.0
> RCPT TO:<postmaster>
< 553 5\.1\.3
> DATA
< 554 5\.5\.1 No valid recipients
> VRFY user
< 252 2\.5\.0
> HELP
< 214 2\.0\.0 Commands: .*BDAT.*AUTH
> RSET
< 250 2\.0\.0
alive
CHAT

# (6) a client outside client_networks is refused
tw_swaks_expect "client outside client_networks deferred (421 4.7.0, not a bounce)" "421 4\.7\.0" \
	--server 127.0.0.1:$RP --local-interface 127.0.0.1 --from sender@example.test --to user@example.test
grep -q "warning: smtpd client=127.0.0.1 reject reason=client_networks reply=\"421 4.7.0\"" "$T/relay.log" && tw_ok "refusal logged as a warning" ||
	tw_fail "refusal logged as a warning"

# SMTPUTF8: a UTF-8 sender through a smarthost that offers SMTPUTF8
n0=$(tw_maildir_count "$MD/user")
tw_chat_expect "SMTPUTF8 message accepted" -b 127.0.0.2 127.0.0.1 $RP <<'CHAT'
< 220
> EHLO client.example.test
< 250
> MAIL FROM:<j\xc3\xb6rg@example.test> SMTPUTF8
< 250
> RCPT TO:<user@example.test>
< 250
> DATA
< 354
>> From: <j\xc3\xb6rg@example.test>\r\nSubject: relay-basic-utf8\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n.\r\n
< 250
> QUIT
< 221
CHAT
if tw_wait_maildir "$MD/user" $((n0 + 1)) 20; then
	f=$(grep -l 'relay-basic-utf8' "$MD/user/new/"* | head -n 1)
	[ -n "$f" ] && grep -q "^Return-Path: <j$(printf '\303\266')rg@example.test>" "$f" &&
		tw_ok "SMTPUTF8 sender delivered" || tw_fail "SMTPUTF8 sender delivered" "$(head -n 3 "$f")"
else
	tw_fail "SMTPUTF8 sender delivered"
fi
tw_chat_expect "UTF-8 address without SMTPUTF8 refused" -b 127.0.0.2 127.0.0.1 $RP <<'CHAT'
< 220
> EHLO client.example.test
< 250
> MAIL FROM:<j\xc3\xb6rg@example.test>
< 553
alive
CHAT

# never root after start-up: every process but the master runs as the user
pid=$(cat "$T/relay.pid")
others=$(pgrep -g "$pid" | grep -vx "$pid" | while read -r p; do ps -o user= -p "$p"; done | sort -u | tr '\n' ' ')
if [ "$others" = "tailwart " ] && [ "$(ps -o user= -p "$pid")" = root ]; then
	tw_ok "children run as tailwart, only the master as root"
else
	tw_fail "children run as tailwart" "users: $others"
fi

# tls = implicit (wrapper mode, as on port 465)
rl_conf "$T/impl.conf" "listen=127.0.0.1:27103" "smarthost=[localhost]:$SMTPS" \
	"tls=implicit" "spool_dir=$T/spool-impl"
rl_start "$T/impl.conf" impl || tw_fail "relay start (implicit)"
n0=$(tw_maildir_count "$MD/user")
tw_swaks_expect "accepted (implicit TLS relay)" 250 --server 127.0.0.1:27103 \
	--from sender@example.test --to user@example.test --header "Subject: relay-basic-465"
if tw_wait_maildir "$MD/user" $((n0 + 1)) 20; then
	f=$(grep -l 'relay-basic-465' "$MD/user/new/"* | head -n 1)
	grep -q 'with ESMTPSA' "$f" && tw_ok "implicit TLS + AUTH delivered" ||
		tw_fail "implicit TLS + AUTH delivered" "$(head -n 10 "$f")"
else
	tw_fail "implicit TLS delivered" "$(tail -n 3 "$T/impl.log")"
fi
rl_stop impl

# the queue is empty once everything was delivered or bounced
i=0
while [ $i -lt 50 ] && [ "$(rl_q "$T/relay.conf" list | tail -n 1)" != "0 messages" ]; do
	i=$((i + 1)); sleep 0.2
done
tw_check "queue empty at the end" sh -c "'$TW_RELAY' -c '$T/relay.conf' queue list | tail -n 1 | grep -qx '0 messages'"

rl_stop relay
tw_summary

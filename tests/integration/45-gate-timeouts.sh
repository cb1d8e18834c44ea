#!/bin/sh
# 45-gate-timeouts: per-state timeouts (a silent client gets 421 4.4.2 and is
# disconnected; a client that stalls in DATA too, and the backend accepts
# nothing); SMTPUTF8 addresses pass with the SMTPUTF8 parameter and are
# refused without it.
# Ports: gate 25145, backend 26145.
. "$(dirname "$0")/../lib.sh"
T=$(tw_tmpdir)
tw_need_gate

tw_backend_start be 26145 proxy
tw_gate_conf "$T/gate.conf" listen=127.0.0.1:25145 backend=127.0.0.1:26145 \
	timeout_command=2s timeout_data=2s
tw_start_gate "$T/gate.conf" >/dev/null || { tw_fail "gate starts"; tw_summary; exit 1; }
tw_ok "gate starts"
MD="$T/be/mail/user"

tw_chat_expect "silent after EHLO: 421 4.4.2 and closed within the timeout" -t 8 127.0.0.1 25145 <<'EOF2'
< 220
> EHLO client.example.org
< 250 
< 421 4\.4\.2
eof
EOF2

tw_chat_expect "silent in a transaction: 421 4.4.2 and closed" -t 8 127.0.0.1 25145 <<'EOF2'
< 220
> EHLO client.example.org
< 250 
> MAIL FROM:<you@example.org>
< 250
> RCPT TO:<user@example.test>
< 250
< 421 4\.4\.2
eof
EOF2

tw_chat_expect "stalled in DATA: 421 4.4.2 and closed" -t 8 127.0.0.1 25145 <<'EOF2'
< 220
> EHLO client.example.org
< 250 
> MAIL FROM:<stalled@example.org>
< 250
> RCPT TO:<user@example.test>
< 250
> DATA
< 354
> Subject: tw stalled
>
> half a message
< 421 4\.4\.2
eof
EOF2

tw_chat_expect "a slow but steady client is not cut off (1 s pauses < 2 s timeout)" -t 8 127.0.0.1 25145 <<'EOF2'
< 220
> EHLO client.example.org
< 250 
sleep 1
> MAIL FROM:<slow@example.org>
< 250
sleep 1
> RCPT TO:<user@example.test>
< 250
sleep 1
> DATA
< 354
> Subject: tw slow
sleep 1
>
sleep 1
> still here
> .
< 250 2\.0\.0
> QUIT
< 221
EOF2
tw_check "the slow message is delivered" tw_wait_maildir "$MD" 1 15
sleep 1
tw_check "the stalled message is not" sh -c "! grep -rl 'tw stalled' '$MD' | grep -q ."

# --- SMTPUTF8 (RFC 6531) ------------------------------------------------------
tw_chat_expect "UTF-8 sender with SMTPUTF8: accepted and delivered" 127.0.0.1 25145 <<'EOF2'
< 220
> EHLO client.example.org
< 250 
<+ 250.SMTPUTF8
> MAIL FROM:<j\xc3\xbcrgen@example.org> SMTPUTF8
< 250
> RCPT TO:<user@example.test>
< 250
> DATA
< 354
> Subject: tw utf8
>
> gr\xc3\xbc\xc3\x9fe
> .
< 250 2\.0\.0
> QUIT
< 221
EOF2
UPAT=$(printf 'Return-Path: <j\303\274rgen@example.org>')
tw_check "the SMTPUTF8 message is delivered with its UTF-8 sender" \
	tw_wait_file_grep "$MD" "$UPAT" 10

tw_chat_expect "UTF-8 sender without SMTPUTF8: refused with 5xx" 127.0.0.1 25145 <<'EOF2'
< 220
> EHLO client.example.org
< 250 
> MAIL FROM:<j\xc3\xbcrgen@example.org>
< 5[0-9][0-9] 5\.
alive
> QUIT
< 221
EOF2

tw_check "gate stops on SIGTERM within 15 s" tw_stop_gate
tw_summary

#!/bin/sh
# 40-gate-strict: the gate is the strictest parser in the chain - bare CR or
# LF in DATA or in a command, NUL, overlong lines, size and recipient limits;
# after each error the session goes on; nothing refused reaches the backend.
# Ports: gate 25140, backend 26140.
. "$(dirname "$0")/../lib.sh"
T=$(tw_tmpdir)
tw_need_gate

tw_backend_start be 26140 proxy
tw_gate_conf "$T/gate.conf" listen=127.0.0.1:25140 backend=127.0.0.1:26140 \
	message_size_limit=64K max_recipients=3
tw_start_gate "$T/gate.conf" >/dev/null || { tw_fail "gate starts"; tw_summary; exit 1; }
tw_ok "gate starts"
MD="$T/be/mail/user"

# --- DATA ------------------------------------------------------------------
tw_chat_expect "bare LF in DATA: 550 5.6.0" 127.0.0.1 25140 <<'EOF2'
< 220
> EHLO client.example.org
< 250 
> MAIL FROM:<you@example.org>
< 250
> RCPT TO:<user@example.test>
< 250
> DATA
< 354
>> Subject: tw bare LF\r\n\r\nline one\nline two\r\n.\r\n
< 550 5\.6\.0
# the gate may go on or hang up; it must not answer anything else
>? NOOP
<? 250 2\.0\.0
> QUIT
< 221
EOF2

tw_chat_expect "bare CR in DATA: 550 5.6.0" 127.0.0.1 25140 <<'EOF2'
< 220
> EHLO client.example.org
< 250 
> MAIL FROM:<you@example.org>
< 250
> RCPT TO:<user@example.test>
< 250
> DATA
< 354
>> Subject: tw bare CR\r\n\r\nline one\rline two\r\n.\r\n
< 550 5\.6\.0
# the gate may go on or hang up; it must not answer anything else
>? NOOP
<? 250 2\.0\.0
> QUIT
< 221
EOF2

# SMTP smuggling: "\n.\n" is not the end of data; only CRLF.CRLF is.  The
# gate must either read on to CRLF.CRLF and refuse the whole message, or hang
# up; it must never run the commands hidden after "\n.\n".
tw_chat_expect "LF.LF is not end of data (SMTP smuggling)" 127.0.0.1 25140 <<'EOF2'
< 220
> EHLO client.example.org
< 250 
> MAIL FROM:<you@example.org>
< 250
> RCPT TO:<user@example.test>
< 250
> DATA
< 354
>> Subject: tw smuggle\r\n\r\nhello\n.\nMAIL FROM:<smuggled@example.org>\r\nRCPT TO:<user@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n
< 550 5\.6\.0
>? NOOP
<? 250 2\.0\.0
> QUIT
< 221
EOF2

tw_chat_expect "a clean message after the refused ones is accepted" 127.0.0.1 25140 <<'EOF2'
< 220
> EHLO client.example.org
< 250 
> MAIL FROM:<you@example.org>
< 250
> RCPT TO:<user@example.test>
< 250
> DATA
< 354
> Subject: tw strict clean
>
> fine
> .
< 250 2\.0\.0
> QUIT
< 221
EOF2
tw_check "clean message delivered" tw_wait_maildir "$MD" 1 15
sleep 2
tw_check "nothing with a bare CR/LF or smuggled reached the maildir" sh -c \
	"[ \$(find '$MD'/new '$MD'/cur -type f | wc -l) -eq 1 ] && ! grep -rlE 'tw bare|tw smuggle|smuggled' '$MD' | grep -q ."

# --- command lines ---------------------------------------------------------
tw_chat_expect "overlong command (>1000 bytes): 500 5.5.2, session goes on" 127.0.0.1 25140 <<'EOF2'
< 220
> EHLO client.example.org
< 250 
>> NOOP 
>>n 1200 A
>> \r\n
< 500 5\.5\.2
alive
>> MAIL FROM:<
>>n 1100 b
>> @example.org>\r\n
< 50[01] 5\.5\.[24]
alive
> QUIT
< 221
EOF2

tw_chat_expect "very long line (64 KiB) without CRLF then CRLF: 500 5.5.2" 127.0.0.1 25140 <<'EOF2'
< 220
> EHLO client.example.org
< 250 
>>n 65536 X
>> \r\n
<? 500 5\.5\.2
EOF2

tw_chat_expect "bare LF in a command: 501 5.5.2" 127.0.0.1 25140 <<'EOF2'
< 220
> EHLO client.example.org
< 250 
>> NOOP\n
>> \r\n
< 501 5\.5\.2
# whether the CRLF after the bare LF is a second (empty) line is the
# gate's choice: skip to the answer to HELP
sync
alive
> QUIT
< 221
EOF2

tw_chat_expect "bare CR in a command: 501 5.5.2" 127.0.0.1 25140 <<'EOF2'
< 220
> EHLO client.example.org
< 250 
>> MAIL FROM:<a@example.org>\rRCPT TO:<user@example.test>\r\n
< 501 5\.5\.2
alive
> QUIT
< 221
EOF2

tw_chat_expect "NUL in a command: 500 5.5.2" 127.0.0.1 25140 <<'EOF2'
< 220
> EHLO client.example.org
< 250 
>> NO\0OP\r\n
< 500 5\.5\.2
alive
>> MAIL FROM:<a\0b@example.org>\r\n
< 50[01] 5\.5\.[24]
alive
> QUIT
< 221
EOF2

# --- limits ----------------------------------------------------------------
tw_chat_expect "SIZE advertised; MAIL SIZE= over the limit: 552 5.3.4" 127.0.0.1 25140 <<'EOF2'
< 220
> EHLO client.example.org
< 250 
<+ 250.SIZE 65536
> MAIL FROM:<you@example.org> SIZE=100000
< 552 5\.3\.4
> MAIL FROM:<you@example.org> SIZE=1000
< 250
> QUIT
< 221
EOF2

{
	printf '%s\n' "< 220" "> EHLO client.example.org" "< 250 " \
		"> MAIL FROM:<you@example.org>" "< 250" "> RCPT TO:<user@example.test>" \
		"< 250" "> DATA" "< 354" "> Subject: tw too big" ">"
	i=0
	while [ $i -lt 1200 ]; do
		printf '%s\n' "> 0123456789012345678901234567890123456789012345678901234567890123456789"
		i=$((i + 1))
	done
	printf '%s\n' "> ." "< 552 5\\.3\\.4" "alive" "> QUIT" "< 221"
} >"$T/big.chat"
tw_chat_expect "message over message_size_limit: 552 5.3.4 at end of data" 127.0.0.1 25140 <"$T/big.chat"

tw_chat_expect "more than max_recipients: 452 4.5.3" 127.0.0.1 25140 <<'EOF2'
< 220
> EHLO client.example.org
< 250 
> MAIL FROM:<you@example.org>
< 250
> RCPT TO:<user@example.test>
< 250
> RCPT TO:<other@example.test>
< 250
> RCPT TO:<postmaster@example.test>
< 250
> RCPT TO:<user@example.test>
< 452 4\.5\.3
> RSET
< 250
> QUIT
< 221
EOF2

sleep 1
tw_check "the oversized message did not reach the maildir" \
	sh -c "! grep -rl 'tw too big' '$MD' | grep -q ."

# --- error limit -------------------------------------------------------------
{
	printf '%s\n' "< 220"
	i=0
	while [ $i -lt 30 ]; do
		printf '%s\n' ">? BOGUS $i" "<? (500|421)"
		i=$((i + 1))
	done
} >"$T/errors.chat"
tw_chat 127.0.0.1 25140 <"$T/errors.chat" >"$T/errors.out" 2>&1
if grep -q '^S: 421 4\.7\.0' "$T/errors.out" && grep -q '^S: EOF' "$T/errors.out"; then
	tw_ok "too many errors: 421 4.7.0 and the connection is closed"
else
	tw_fail "too many errors: 421 4.7.0 and the connection is closed" "no 421 4.7.0 or no close"
	tail -n 8 "$T/errors.out" | sed 's/^/    | /'
fi

tw_check "master still running" kill -0 "$(tw_gate_pid)"
tw_check "gate stops on SIGTERM within 15 s" tw_stop_gate
tw_summary

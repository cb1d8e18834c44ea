#!/bin/sh
# 10-gate-basic: a message through tailwart-gate reaches the real Postfix
# backend (PROXY v2) with the client's own address; the backend's verdicts
# are the client's; the gate's own verbs and sequence checks.
# Ports: gate 25110, backend 26110.
. "$(dirname "$0")/../lib.sh"
T=$(tw_tmpdir)
tw_need_gate

tw_backend_start be 26110 proxy
tw_gate_conf "$T/gate.conf" listen=127.0.0.1:25110 backend=127.0.0.1:26110
tw_start_gate "$T/gate.conf" >/dev/null || { tw_fail "gate starts"; tw_summary; exit 1; }
tw_ok "gate starts"
MD="$T/be/mail/user"
LOG="$T/be/maillog"

# --- delivery with the real client address --------------------------------
tw_swaks_expect "message accepted (250 with queue id)" "250 2\.0\.0 .*queued as" \
	--server 127.0.0.1:25110 --local-interface 127.0.0.9 --helo client.example.org \
	--from you@example.org --to user@example.test --h-Subject "tw basic 1"
tw_check "message lands in the backend maildir" tw_wait_maildir "$MD" 1 15
tw_check "backend sees client 127.0.0.9 (PROXY v2)" \
	tw_wait_file_grep "$LOG" 'client=[^ ]*\[127\.0\.0\.9\]' 10
tw_check "delivered message has the subject" \
	sh -c "grep -l 'Subject: tw basic 1' '$MD'/new/* '$MD'/cur/* 2>/dev/null | grep -q ."
tw_check "backend got the client's own HELO name and address (Received:)" \
	sh -c "grep -h '^Received: from client.example.org (.*\[127\.0\.0\.9\])' '$MD'/new/* | grep -q ."

# --- the backend's answers are the client's --------------------------------
tw_swaks_expect "unknown recipient: backend's 550 5.1.1" "550 5\.1\.1" \
	--server 127.0.0.1:25110 --from you@example.org --to nobody@example.test
tw_swaks_expect "relaying refused by the backend: 554 5.7.1" "55[0-9] 5\.7\.1" \
	--server 127.0.0.1:25110 --from you@example.org --to someone@elsewhere.example
tw_swaks_expect "two recipients, one unknown: still delivered" "250" \
	--server 127.0.0.1:25110 --from you@example.org \
	--to user@example.test,nobody@example.test,other@example.test
tw_check "second and third message delivered" tw_wait_maildir "$MD" 2 15
tw_check "other@ got its copy" tw_wait_maildir "$T/be/mail/other" 1 15

# --- EHLO: only what the gate implements ---------------------------------
tw_chat_expect "EHLO advertises the gate's own extensions only" 127.0.0.1 25110 <<'EOF'
< 220
> EHLO client.example.org
< 250 
<+ 250.PIPELINING
<+ 250.SIZE
<+ 250.8BITMIME
<+ 250.ENHANCEDSTATUSCODES
<- 250.AUTH
<- 250.CHUNKING
<- 250.DSN
<- 250.ETRN
<- 250.XCLIENT
<- 250.VRFY
<- 250.STARTTLS
> QUIT
< 221
eof
EOF

tw_chat_expect "HELO works too" 127.0.0.1 25110 <<'EOF'
< 220
> HELO client.example.org
< 250
> MAIL FROM:<you@example.org>
< 250
> QUIT
< 221
EOF

# --- verbs answered by the gate --------------------------------------------
tw_chat_expect "VRFY 252, EXPN 502, unknown 500, NOOP/RSET 250, HELP, QUIT 221" 127.0.0.1 25110 <<'EOF'
< 220
> EHLO client.example.org
< 250 
> VRFY user@example.test
< 252 2\.
> EXPN staff
< 502 5\.5\.1
> FROBNICATE now
< 500 5\.5\.2
> NOOP
< 250 2\.0\.0
> RSET
< 250 2\.0\.0
> HELP
< 214
> noop
< 250
> QUIT
< 221 2\.0\.0
eof
EOF

# --- sequence errors --------------------------------------------------------
tw_chat_expect "MAIL before EHLO: 503 5.5.1" 127.0.0.1 25110 <<'EOF'
< 220
> MAIL FROM:<you@example.org>
< 503 5\.5\.1
alive
> QUIT
< 221
EOF

tw_chat_expect "RCPT before MAIL, DATA before RCPT: 503 5.5.1" 127.0.0.1 25110 <<'EOF'
< 220
> EHLO client.example.org
< 250 
> RCPT TO:<user@example.test>
< 503 5\.5\.1
> MAIL FROM:<you@example.org>
< 250
> DATA
< 5(03|54) 5\.5\.1
> MAIL FROM:<again@example.org>
< 503 5\.5\.1
> RSET
< 250
> QUIT
< 221
EOF

tw_chat_expect "syntax errors in arguments: 501 5.5.4" 127.0.0.1 25110 <<'EOF'
< 220
> EHLO
< 501 5\.5\.4
> EHLO client.example.org
< 250 
> MAIL FROM:you@example.org
< 501 5\.5\.4
> MAIL FROM:<you@example.org> FOO=BAR
< 5(55|01) 5\.5\.4
> MAIL FROM:<you@example.org>
< 250
> RCPT TO:<>
< 5(01|53) 5\.[15]\.[0-9]
> RCPT TO:<user@example.test>
< 250
> RSET
< 250
> QUIT
< 221
EOF

# --- a transaction, RSET, a second transaction on one connection ------------
before=$(tw_maildir_count "$MD")
tw_chat_expect "RSET between two transactions on one connection" 127.0.0.1 25110 <<'EOF'
< 220
> EHLO client.example.org
< 250 
> MAIL FROM:<first@example.org>
< 250
> RCPT TO:<user@example.test>
< 250
> RSET
< 250
> MAIL FROM:<second@example.org>
< 250
> RCPT TO:<user@example.test>
< 250
> DATA
< 354
> Subject: tw basic second transaction
>
> body
> .
< 250 2\.0\.0
> MAIL FROM:<third@example.org>
< 250
> RCPT TO:<user@example.test>
< 250
> DATA
< 354
> Subject: tw basic third transaction
>
> ..a dot-stuffed line
> .
< 250 2\.0\.0
> QUIT
< 221
EOF
tw_check "both transactions delivered" tw_wait_maildir "$MD" $((before + 2)) 15
tw_check "the RSET transaction's sender never reached a mailbox" \
	sh -c "! grep -l 'first@example.org' '$MD'/new/* 2>/dev/null | grep -q ."
tw_check "dot-stuffing undone once (backend got '.a dot-stuffed line')" \
	sh -c "grep -h '^\.a dot-stuffed line' '$MD'/new/* | grep -q ."

# --- the gate is still healthy ----------------------------------------------
tw_check "master still running" kill -0 "$(tw_gate_pid)"
tw_check "gate stops on SIGTERM within 15 s" tw_stop_gate
tw_summary

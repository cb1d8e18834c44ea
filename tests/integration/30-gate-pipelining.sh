#!/bin/sh
# 30-gate-pipelining: RFC 2920 pipelining - commands that arrive in one
# write are answered in order, two whole transactions in one write, swaks
# --pipeline; several recipients with the backend's mixed answers.
# MAIL goes to a backend that pipelines together with the first RCPT (one
# write): a sender the backend refuses gets the gate's 250 to MAIL and the
# backend's refusal, in its words, as the reply to every RCPT; nothing is
# accepted; RSET and the next transaction work.
# DATA goes to a backend that pipelines but has no CHUNKING (Postfix with
# smtpd_discard_ehlo_keywords = chunking) in the same write as the last
# RCPT when the client pipelined it: replies in order, a recipient or all
# recipients refused, messages land; the wire (a fake backend logging what
# came with each command) shows RCPT and DATA arriving together only when
# the client pipelined them.
# Ports: gates 25130 25131 25132, backends 26130 26131, fake 26132.
. "$(dirname "$0")/../lib.sh"
T=$(tw_tmpdir)
tw_need_gate

tw_backend_start be 26130 proxy
tw_gate_conf "$T/gate.conf" listen=127.0.0.1:25130 backend=127.0.0.1:26130
tw_start_gate "$T/gate.conf" >/dev/null || { tw_fail "gate starts"; tw_summary; exit 1; }
tw_ok "gate starts"
MD="$T/be/mail/user"

tw_swaks_expect "swaks --pipeline" "250 2\.0\.0" \
	--server 127.0.0.1:25130 --pipeline --local-interface 127.0.0.9 \
	--from you@example.org --to user@example.test --h-Subject "tw pipe 1"
tw_check "pipelined message delivered" tw_wait_maildir "$MD" 1 15

tw_chat_expect "two transactions in one write" -b 127.0.0.9 127.0.0.1 25130 <<'EOF2'
< 220
>> EHLO client.example.org\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<user@example.test>\r\nRCPT TO:<nobody@example.test>\r\nDATA\r\nSubject: tw pipe 2\r\n\r\nfirst\r\n.\r\nMAIL FROM:<b@example.org>\r\nRCPT TO:<user@example.test>\r\nDATA\r\nSubject: tw pipe 3\r\n\r\nsecond\r\n.\r\nQUIT\r\n
< 250 
< 250 2\.1\.0
< 250 2\.1\.5
< 550 5\.1\.1
< 354
< 250 2\.0\.0
< 250 2\.1\.0
< 250 2\.1\.5
< 354
< 250 2\.0\.0
< 221
eof
EOF2
tw_check "both pipelined messages delivered" tw_wait_maildir "$MD" 3 15
tw_check "pipe 2 and pipe 3 both present" sh -c \
	"grep -l 'Subject: tw pipe 2' '$MD'/new/* | grep -q . && grep -l 'Subject: tw pipe 3' '$MD'/new/* | grep -q ."

# Commands split at odd places across writes are still whole lines.
tw_chat_expect "commands split across writes" 127.0.0.1 25130 <<'EOF2'
< 220
>> EH
sleep 0.2
>> LO client.example.org\r
sleep 0.2
>> \nMAIL FROM:<c@exa
< 250 
sleep 0.2
>> mple.org>\r\n
< 250 2\.1\.0
> RSET
< 250
> QUIT
< 221
EOF2

# Errors in a pipelined group are answered in order too.
tw_chat_expect "pipelined group with errors answered in order" 127.0.0.1 25130 <<'EOF2'
< 220
>> EHLO client.example.org\r\nNOOP\r\nBOGUS\r\nMAIL FROM:<d@example.org>\r\nRCPT TO:<nobody@example.test>\r\nDATA\r\nRSET\r\nNOOP\r\n
< 250 
< 250
< 500 5\.5\.2
< 250 2\.1\.0
< 550 5\.1\.1
< 5(03|54) 5\.5\.1
< 250
< 250
> QUIT
< 221
EOF2

# Many recipients in one pipelined transaction.
rcpts=""
i=0
while [ $i -lt 20 ]; do
	rcpts="${rcpts}RCPT TO:<user@example.test>\\r\\n"
	i=$((i + 1))
done
{
	# printf, not echo: dash's echo would turn \r\n into real CR LF
	printf '%s\n' "< 220" "> EHLO client.example.org" "< 250 "
	printf '%s\n' ">> MAIL FROM:<e@example.org>\\r\\n${rcpts}DATA\\r\\nSubject: tw pipe 20\\r\\n\\r\\nx\\r\\n.\\r\\n"
	printf '%s\n' "< 250"
	i=0
	while [ $i -lt 20 ]; do printf '%s\n' "< 250"; i=$((i + 1)); done
	printf '%s\n' "< 354" "< 250 2\\.0\\.0" "> QUIT" "< 221"
} >"$T/many.chat"
tw_chat_expect "20 pipelined RCPTs" 127.0.0.1 25130 <"$T/many.chat"
tw_check "20-recipient message delivered" tw_wait_maildir "$MD" 4 15

# A sender the backend (Postfix, check_sender_access, smtpd_delay_reject = no)
# refuses at MAIL.
printf 'refused@example.org REJECT 5.7.1 sender refused by the backend\n' >"$T/be/etc/senders"
postconf -c "$T/be/etc" -e "smtpd_sender_restrictions = check_sender_access texthash:$T/be/etc/senders" \
	"smtpd_delay_reject = no" &&
	postfix -c "$T/be/etc" reload >/dev/null 2>&1
sleep 1
n0=$(ls "$MD/new" | wc -l)
tw_chat_expect "backend refuses MAIL: its reply answers each RCPT, session goes on" -b 127.0.0.9 127.0.0.1 25130 <<'EOF2'
< 220
> EHLO client.example.org
< 250 
> MAIL FROM:<refused@example.org>
< 250 2\.1\.0
> RCPT TO:<user@example.test>
< 554 5\.7\.1 .*sender refused by the backend
> RCPT TO:<user@example.test>
< 554 5\.7\.1 .*sender refused by the backend
> DATA
< 554 5\.5\.1
> RSET
< 250
> MAIL FROM:<fine@example.org>
< 250 2\.1\.0
> RCPT TO:<user@example.test>
< 250 2\.1\.5
> DATA
< 354
> Subject: tw pipe after refusal
>
> x
> .
< 250 2\.0\.0
> QUIT
< 221
EOF2
tw_check "only the message after the refusal delivered" tw_wait_maildir "$MD" $((n0 + 1)) 15
sleep 1
[ "$(ls "$MD/new" | wc -l)" -eq $((n0 + 1)) ] && ! grep -lq 'refused@example.org' "$MD"/new/* &&
	tw_ok "nothing from the refused sender in the mailbox" ||
	tw_fail "nothing from the refused sender in the mailbox" "$(ls "$MD/new" | wc -l) files"
grep -q 'refused stage=mail from="<refused@example.org>" backend=127.0.0.1:26130 reply="554 5.7.1' "$T/gate.log" &&
	tw_ok "the backend's MAIL refusal is logged" ||
	tw_fail "the backend's MAIL refusal is logged" "$(grep refused "$T/gate.log" | tail -n 3)"
tw_chat_expect "backend refuses MAIL, pipelined client: one reply per command, in order" -b 127.0.0.9 127.0.0.1 25130 <<'EOF2'
< 220
>> EHLO client.example.org\r\nMAIL FROM:<refused@example.org>\r\nRCPT TO:<user@example.test>\r\nDATA\r\nQUIT\r\n
< 250 
< 250 2\.1\.0
< 554 5\.7\.1
< 554 5\.5\.1
< 221
eof
EOF2

tw_check "gate stops on SIGTERM within 15 s" tw_stop_gate

# --- DATA pipelined toward a backend without CHUNKING -------------------------
BACKEND_MAIN_CF="smtpd_discard_ehlo_keywords = chunking" tw_backend_start be2 26131 proxy
tw_gate_conf "$T/g2.conf" listen=127.0.0.1:25131 backend=127.0.0.1:26131 pid_file="$T/g2.pid"
tw_start_gate "$T/g2.conf" g2 >/dev/null || tw_fail "second gate starts"
MD2="$T/be2/mail/user"
tw_chat_expect "no CHUNKING, pipelined: RCPT+DATA together, replies in order" -b 127.0.0.9 127.0.0.1 25131 <<'EOF2'
< 220
>> EHLO client.example.org\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<user@example.test>\r\nRCPT TO:<nobody@example.test>\r\nDATA\r\n
< 250 
< 250 2\.1\.0
< 250 2\.1\.5
< 550 5\.1\.1
< 354
>> Subject: tw dpipe 1\r\n\r\none\r\n.\r\nMAIL FROM:<b@example.org>\r\nRCPT TO:<nobody@example.test>\r\nDATA\r\n
< 250 2\.0\.0
< 250 2\.1\.0
< 550 5\.1\.1
< 554 5\.5\.1
>> RSET\r\nMAIL FROM:<c@example.org>\r\nRCPT TO:<user@example.test>\r\nDATA\r\n
< 250
< 250 2\.1\.0
< 250 2\.1\.5
< 354
>> Subject: tw dpipe 2\r\n\r\ntwo\r\n.\r\nRSET\r\nMAIL FROM:<d@example.org>\r\nRCPT TO:<user@example.test>\r\nDATA\r\n
< 250 2\.0\.0
< 250
< 250 2\.1\.0
< 250 2\.1\.5
< 354
>> Subject: tw dpipe 3\r\n\r\nthree\r\n.\r\nQUIT\r\n
< 250 2\.0\.0
< 221
eof
EOF2
tw_check "no CHUNKING, pipelined: the three messages landed" tw_wait_maildir "$MD2" 3 15
tw_check "no CHUNKING, pipelined: they are dpipe 1, 2 and 3" sh -c \
	"for n in 1 2 3; do grep -l \"Subject: tw dpipe \$n\" '$MD2'/new/* | grep -q . || exit 1; done"
# a client that sends DATA, then drops: the backend (told DATA with the RCPT)
# must not take anything
n2=$(tw_maildir_count "$MD2")
tw_chat_expect "no CHUNKING, pipelined DATA, client gone after 354" -b 127.0.0.9 127.0.0.1 25131 <<'EOF2'
< 220
>> EHLO client.example.org\r\nMAIL FROM:<e@example.org>\r\nRCPT TO:<user@example.test>\r\nDATA\r\n
< 250 
< 250 2\.1\.0
< 250 2\.1\.5
< 354
>> Subject: tw dpipe cut\r\n\r\npart
EOF2
sleep 2
tw_check "no CHUNKING, client gone mid-message: nothing landed" test "$(tw_maildir_count "$MD2")" -eq "$n2"
tw_stop_gate g2

python3 "$TW_PEERS/fakebackend.py" --die-at none --lifetime 60 --log "$T/fakep.log" 26132 \
	>/dev/null 2>&1 </dev/null &
tw_cleanup_add "kill $! 2>/dev/null"
tw_wait_port 127.0.0.1 26132 10
tw_gate_conf "$T/g3.conf" listen=127.0.0.1:25132 backend=127.0.0.1:26132 pid_file="$T/g3.pid"
tw_start_gate "$T/g3.conf" g3 >/dev/null || tw_fail "third gate starts"
tw_chat_expect "fake backend: a client waiting for each reply" 127.0.0.1 25132 <<'EOF2'
< 220
> EHLO client.example.org
< 250 
> MAIL FROM:<a@example.org>
< 250
> RCPT TO:<user@example.test>
< 250
> DATA
< 354
> x
> .
< 250
> QUIT
< 221
EOF2
tw_check "wire: RCPT and DATA apart when the client waited" sh -c \
	"grep -q '^cmd DATA' '$T/fakep.log' && ! grep -q '^ahead [0-9]* after RCPT' '$T/fakep.log'"
tw_chat_expect "fake backend: a pipelining client" 127.0.0.1 25132 <<'EOF2'
< 220
>> EHLO client.example.org\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<user@example.test>\r\nDATA\r\n
< 250 
< 250
< 250
< 354
> x
> .
< 250
> QUIT
< 221
EOF2
tw_check "wire: MAIL, RCPT and DATA in one write when the client pipelined" \
	grep -q '^ahead 2 after MAIL' "$T/fakep.log"
tw_stop_gate g3
tw_summary

#!/bin/sh
# 50-gate-backend-failure: when the backend is down or fails at any point,
# the client gets a 4xx (451 4.4.1 unreachable, 421/451 4.4.2 lost), never a
# 250, and the backend never ends up accepting a partial message.
# Ports: gate 25150, backends 26150 (Postfix), 26151-26155 (fake backends).
. "$(dirname "$0")/../lib.sh"
T=$(tw_tmpdir)
tw_need_gate
FAKE="$TW_PEERS/fakebackend.py"

# fake_start PORT MODE [args]: a fake backend living at most 60 s.
fake_start() {
	port=$1 mode=$2
	shift 2
	python3 "$FAKE" --die-at "$mode" --lifetime 60 --log "$T/fake-$port.log" "$@" "$port" \
		>/dev/null 2>&1 </dev/null &
	echo $! >"$T/fake-$port.pid"
	tw_cleanup_add "kill $! 2>/dev/null"
	tw_wait_port 127.0.0.1 "$port" 10
}

fake_stop() {
	kill "$(cat "$T/fake-$1.pid")" 2>/dev/null
	wait "$(cat "$T/fake-$1.pid")" 2>/dev/null || true
}

# gate_for NAME LISTEN_PORT BACKEND_PORT: a gate in front of that backend.
gate_for() {
	tw_gate_conf "$T/$1.conf" listen=127.0.0.1:$2 backend=127.0.0.1:$3 \
		pid_file="$T/$1.gatepid" backend_connect_timeout=5s backend_timeout=10s
	tw_start_gate "$T/$1.conf" "$1" >/dev/null
}

SW="--from you@example.org --to user@example.test"

# --- backend not running ----------------------------------------------------
gate_for down 25150 26159 || tw_fail "gate starts (no backend)"
tw_swaks_expect "no backend: 451 4.4.1 at MAIL" "451 4\.4\.1" --server 127.0.0.1:25150 $SW
tw_check "no backend: MAIL was the failing step" grep -q '^ -> MAIL FROM' "$T/swaks.out"
tw_chat_expect "no backend: EHLO still answered, session goes on after 451" 127.0.0.1 25150 <<'EOF2'
< 220
> EHLO client.example.org
< 250 
> MAIL FROM:<you@example.org>
< 451 4\.4\.1
> RCPT TO:<user@example.test>
< 503 5\.5\.1
> QUIT
< 221
EOF2

# --- the backend comes back: the same gate delivers -------------------------
tw_backend_start be 26159 proxy
tw_swaks_expect "backend started: delivered" "250 2\.0\.0" --server 127.0.0.1:25150 $SW
tw_check "message in the maildir" tw_wait_maildir "$T/be/mail/user" 1 15

# --- the real backend's smtpd is killed (-9) in the middle of DATA -----------
n0=$(tw_maildir_count "$T/be/mail/user")
tw_chat 127.0.0.1 25150 >"$T/kill9.out" 2>&1 <<'EOF2' &
< 220
> EHLO client.example.org
< 250 
> MAIL FROM:<killed@example.org>
< 250
> RCPT TO:<user@example.test>
< 250
> DATA
< 354
> Subject: tw smtpd killed
>
> first part
sleep 2
> second part
> .
< 4[0-9][0-9] 4\.[0-9]\.[0-9]
EOF2
CH=$!
if tw_wait_file_grep "$T/kill9.out" '^S: 354' 10; then
	mpid=$(tr -dc 0-9 <"$T/be/queue/pid/master.pid")
	spids=$(ps -o pid=,args= --ppid "$mpid" | awk '$2 ~ /smtpd/ { print $1 }')
	# shellcheck disable=SC2086
	[ -n "$spids" ] && kill -9 $spids
fi
if wait $CH; then
	tw_ok "backend smtpd killed mid-DATA: 4xx at end of data"
else
	tw_fail "backend smtpd killed mid-DATA: 4xx at end of data" "$(tail -n 1 "$T/kill9.out")"
	tail -n 6 "$T/kill9.out" | sed 's/^/    | /'
fi
sleep 1
tw_check "nothing from the killed session reached the maildir" sh -c \
	"[ \$(find '$T/be/mail/user/new' -type f | wc -l) -eq $n0 ]"
tw_swaks_expect "the next message goes through (new backend connection)" "250 2\.0\.0" \
	--server 127.0.0.1:25150 $SW
tw_check "and is delivered" tw_wait_maildir "$T/be/mail/user" $((n0 + 1)) 15

# --- the backend is stopped while the gate runs -----------------------------
tw_backend_stop be
tw_swaks_expect "backend stopped: 451 4.4.1, never 250" "451 4\.4\.1" --server 127.0.0.1:25150 $SW
tw_stop_gate down

# --- fake backends failing at each step -------------------------------------
fake_start 26151 banner
gate_for banner 25151 26151
tw_swaks_expect "backend closes before its banner: 4xx at MAIL" "4[0-9][0-9] 4\.4\.[12]" \
	--server 127.0.0.1:25151 $SW
tw_check "fake backend saw the gate connect" \
	grep -q '^conn ' "$T/fake-26151.log"
tw_stop_gate banner
fake_stop 26151

fake_start 26152 mail
gate_for mail 25152 26152
tw_swaks_expect "backend closes at MAIL: 4xx" "4[0-9][0-9] 4\.4\.[12]" --server 127.0.0.1:25152 $SW
tw_check "gate sent PROXY v2 then EHLO to the fake backend" sh -c \
	"grep -q '^proxy v2 0d0a0d0a000d0a515549540a21' '$T/fake-26152.log' && grep -q '^cmd EHLO' '$T/fake-26152.log'"
tw_stop_gate mail
fake_stop 26152

fake_start 26153 rcpt
gate_for rcpt 25153 26153
tw_swaks_expect "backend closes at RCPT: 4xx" "4[0-9][0-9] 4\.4\.[12]" --server 127.0.0.1:25153 $SW
tw_stop_gate rcpt
fake_stop 26153

fake_start 26154 data
gate_for data 25154 26154
tw_swaks_expect "backend dies mid-DATA: 4xx at end of data (or at DATA)" "4[0-9][0-9] 4\.[0-9]\.[0-9]" \
	--server 127.0.0.1:25154 $SW --body "$(printf 'line %s\n' $(seq 1 200))"
tw_check "backend died in DATA, accepted nothing" sh -c \
	"grep -q '^closed-at data' '$T/fake-26154.log' && ! grep -q '^accepted' '$T/fake-26154.log'"
tw_stop_gate data
fake_stop 26154

# the same, BDAT: the fake offers CHUNKING and dies at the first chunk
fake_start 26156 data --chunking
gate_for bdat 25156 26156
tw_swaks_expect "backend dies mid-BDAT: 4xx" "4[0-9][0-9] 4\.[0-9]\.[0-9]" \
	--server 127.0.0.1:25156 $SW
tw_check "gate used BDAT with a CHUNKING backend" grep -q '^cmd BDAT' "$T/fake-26156.log"
tw_stop_gate bdat
fake_stop 26156

fake_start 26155 dot
gate_for dot 25155 26155
tw_swaks_expect "backend closes after the whole message, no reply: 4xx" "4[0-9][0-9] 4\.[0-9]\.[0-9]" \
	--server 127.0.0.1:25155 $SW
tw_stop_gate dot
fake_stop 26155

# --- the backend's own 4xx/5xx at end of data is relayed as is -------------
fake_start 26157 none --reply-at-dot "452 4.3.1 Insufficient system storage"
gate_for full 25157 26157
tw_swaks_expect "backend's 452 4.3.1 at end of data is the client's" "452 4\.3\.1" \
	--server 127.0.0.1:25157 $SW
tw_stop_gate full
fake_stop 26157

fake_start 26158 none --reply-at-dot "554 5.7.1 Rejected by content filter"
gate_for reject 25158 26158
tw_swaks_expect "backend's 554 5.7.1 at end of data is the client's" "554 5\.7\.1" \
	--server 127.0.0.1:25158 $SW
tw_stop_gate reject
fake_stop 26158

tw_summary

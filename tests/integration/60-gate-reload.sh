#!/bin/sh
# 60-gate-reload: -n config check with file:line errors; SIGHUP under load
# loses no session; a bad config on HUP keeps the old one; a session open
# across HUP or TERM finishes; TERM drains and exits.
# Ports: gate 25160, backend 26160.
. "$(dirname "$0")/../lib.sh"
T=$(tw_tmpdir)
tw_need_gate

# --- -n --------------------------------------------------------------------
tw_gate_conf "$T/gate.conf" listen=127.0.0.1:25160 backend=127.0.0.1:26160 \
	workers_min=2 workers_max=8 drain_timeout=10s
tw_check "-n accepts a good config (exit 0)" "$TW_GATE" -n -c "$T/gate.conf"

printf '%s\n' "# bad" "listen = 127.0.0.1:25160" "backend_hanoff = proxy-v2" \
	"backend = 127.0.0.1:26160" >"$T/typo.conf"
"$TW_GATE" -n -c "$T/typo.conf" >"$T/typo.out" 2>&1
rc=$?
if [ $rc -eq 1 ] && grep -q "typo.conf:3: " "$T/typo.out"; then
	tw_ok "-n: typo'd key on line 3 -> file:3: message, exit 1"
else
	tw_fail "-n: typo'd key on line 3 -> file:3: message, exit 1" "exit $rc: $(head -c 300 "$T/typo.out")"
fi

printf '%s\n' "listen = 127.0.0.1:25160" "backend = 127.0.0.1:26160" "" \
	"" "workers_max = lots" >"$T/badval.conf"
"$TW_GATE" -n -c "$T/badval.conf" >"$T/badval.out" 2>&1
rc=$?
if [ $rc -eq 1 ] && grep -q "badval.conf:5: " "$T/badval.out"; then
	tw_ok "-n: bad value on line 5 -> file:5: message, exit 1"
else
	tw_fail "-n: bad value on line 5 -> file:5: message, exit 1" "exit $rc: $(head -c 300 "$T/badval.out")"
fi

printf '%s\n' "listen = 127.0.0.1:25160" >"$T/missing.conf"
"$TW_GATE" -n -c "$T/missing.conf" >"$T/missing.out" 2>&1
rc=$?
if [ $rc -eq 1 ] && grep -q "backend" "$T/missing.out"; then
	tw_ok "-n: missing required key (backend) -> exit 1 naming it"
else
	tw_fail "-n: missing required key (backend) -> exit 1 naming it" "exit $rc: $(head -c 300 "$T/missing.out")"
fi

"$TW_GATE" -n -c "$T/does-not-exist.conf" >"$T/nofile.out" 2>&1
rc=$?
tw_check "-n: missing file -> exit 1" [ $rc -eq 1 ]

# --- workers are recycled after worker_max_sessions ----------------------------
tw_backend_start be 26160 proxy
tw_gate_conf "$T/recycle.conf" listen=127.0.0.1:25161 backend=127.0.0.1:26160 \
	workers_min=1 workers_max=2 worker_max_sessions=2 pid_file="$T/recycle.gatepid"
if tw_start_gate "$T/recycle.conf" recycle >/dev/null; then
	ok=0
	i=0
	while [ $i -lt 10 ]; do
		if tw_swaks --server 127.0.0.1:25161 --from you@example.org --to user@example.test &&
			tw_swaks_reply | grep -q '^250 2\.0\.0'; then
			ok=$((ok + 1))
		fi
		i=$((i + 1))
	done
	if [ $ok -eq 10 ]; then
		tw_ok "10 sessions in a row with worker_max_sessions=2: all 250"
	else
		tw_fail "10 sessions in a row with worker_max_sessions=2: all 250" "$ok of 10"
	fi
	tw_stop_gate recycle
else
	tw_fail "gate with worker_max_sessions=2 starts"
fi
tw_check "those 10 delivered" tw_wait_maildir "$T/be/mail/user" 10 20
rm -rf "$T/be/mail/user"

# --- HUP under load -----------------------------------------------------------
tw_start_gate "$T/gate.conf" >/dev/null || { tw_fail "gate starts"; tw_summary; exit 1; }
tw_ok "gate starts"
MD="$T/be/mail/user"
GP=$(tw_gate_pid)

# -w 1: each of the 5 sessions waits a second between messages, so the load
# lasts about 10 s and both HUPs land in the middle of it.
timeout 120 smtp-source -s 5 -m 50 -w 1 -l 20000 -f you@example.org -t user@example.test \
	-M client.example.org 127.0.0.1:25160 >"$T/source.out" 2>&1 </dev/null &
SRC=$!
sleep 2.5
kill -HUP "$GP"
sleep 3
kill -HUP "$GP"
wait $SRC
rc=$?
if [ $rc -eq 0 ]; then
	tw_ok "smtp-source: 50 messages, 5 sessions, 2 HUPs, none refused"
else
	tw_fail "smtp-source: 50 messages, 5 sessions, 2 HUPs, none refused" "exit $rc"
	tail -n 5 "$T/source.out" | sed 's/^/    | /'
fi
if tw_wait_maildir "$MD" 50 60; then
	tw_ok "all 50 delivered"
else
	tw_fail "all 50 delivered" "$(tw_maildir_count "$MD") in the maildir"
fi
tw_check "master survived two HUPs" kill -0 "$GP"
tw_check "gate logged the reloads" tw_wait_file_grep "$T/gate.log" 'generation=3' 5

# --- a session open across HUP finishes --------------------------------------
n0=$(tw_maildir_count "$MD")
tw_chat 127.0.0.1 25160 >"$T/acrosshup.out" 2>&1 <<'EOF2' &
< 220
> EHLO client.example.org
< 250 
> MAIL FROM:<across-hup@example.org>
< 250
> RCPT TO:<user@example.test>
< 250
sleep 1.5
> DATA
< 354
> Subject: across HUP
>
> x
> .
< 250 2\.0\.0
> QUIT
< 221
EOF2
CH=$!
# HUP once the transaction is open (RCPT answered, DATA not sent yet)
tw_wait_file_grep "$T/acrosshup.out" '^S: 250 2\.1\.5' 10
kill -HUP "$GP"
if wait $CH; then
	tw_ok "a session open across HUP completes with 250"
else
	tw_fail "a session open across HUP completes with 250" "$(tail -n 1 "$T/acrosshup.out")"
fi
tw_check "that message delivered" tw_wait_maildir "$MD" $((n0 + 1)) 15

# --- HUP with an invalid config keeps the old one ----------------------------
cp "$T/gate.conf" "$T/gate.conf.good"
printf '%s\n' "no_such_key = 1" >>"$T/gate.conf"
kill -HUP "$GP"
sleep 1
tw_check "bad config on HUP: master still running" kill -0 "$GP"
tw_check "bad config on HUP: error logged with file:line" \
	tw_wait_file_grep "$T/gate.log" 'gate\.conf:[0-9]+: ' 5
tw_swaks_expect "bad config on HUP: old config still serves" "250 2\.0\.0" \
	--server 127.0.0.1:25160 --from you@example.org --to user@example.test
cp "$T/gate.conf.good" "$T/gate.conf"

# --- TERM drains: an open session finishes, then the master exits ------------
n0=$(tw_maildir_count "$MD")
tw_chat 127.0.0.1 25160 >"$T/acrossterm.out" 2>&1 <<'EOF2' &
< 220
> EHLO client.example.org
< 250 
> MAIL FROM:<across-term@example.org>
< 250
> RCPT TO:<user@example.test>
< 250
sleep 1.5
> DATA
< 354
> Subject: across TERM
>
> x
> .
< 250 2\.0\.0
> QUIT
< 221
EOF2
CH=$!
tw_wait_file_grep "$T/acrossterm.out" '^S: 250 2\.1\.5' 10
kill -TERM "$GP"
i=0
while tw_listening 127.0.0.1 25160 && [ $i -lt 20 ]; do sleep 0.1; i=$((i + 1)); done
if tw_listening 127.0.0.1 25160; then
	tw_fail "TERM: the listener closes within 2 s (new clients go to the next MX)"
else
	tw_ok "TERM: the listener closes within 2 s (new clients go to the next MX)"
fi
if wait $CH; then
	tw_ok "TERM: the open session completes with 250"
else
	tw_fail "TERM: the open session completes with 250" "$(tail -n 1 "$T/acrossterm.out")"
fi
i=0
while kill -0 "$GP" 2>/dev/null && [ $i -lt 120 ]; do sleep 0.1; i=$((i + 1)); done
tw_check "TERM: master exits after the drain (within 12 s)" sh -c "! kill -0 $GP 2>/dev/null"
tw_check "that message delivered" tw_wait_maildir "$MD" $((n0 + 1)) 15
tw_summary

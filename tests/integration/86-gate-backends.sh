#!/bin/sh
# 86-gate-backends: `backend = a, b` with two Postfix backends (PROXY v2):
# round-robin spreads messages over both; one stopped: every client still
# gets 250 (the hand-off fails over within the transaction) and the dead one
# is skipped after backend_fail_max failures (state=down logged once); back:
# it gets traffic again after backend_backoff (state=up); both stopped:
# 451 4.4.1 and nothing accepted.
# Pass-through (LISTEN=A|B) with a dead first target fails over the same way.
# A backend greeting 421 is skipped the same way (fakebackend --banner).
# Active checks (backend_check_interval) see a backend go and come back.
# Metrics per backend address: tailwart_gate_backend_up (0 while skipped),
# tailwart_gate_backend_connects_total by result, and the open hand-offs
# gauge tailwart_gate_backend_handoffs (least-sessions' count).
# least-sessions: a worker killed (-9) while it holds a hand-off leaks no
# session count (the next clients still go to both backends).
# Ports: gates 25185 25186 25187 25189, pass-through 25188, backends 26186 26187, fake
# 26188 (26189 unused), metrics 9186 9187.
. "$(dirname "$0")/../lib.sh"
T=$(tw_tmpdir)
tw_need_gate

tw_backend_start be1 26186 proxy
tw_backend_start be2 26187 proxy
tw_gate_conf "$T/gate.conf" listen=127.0.0.1:25186 \
	"backend=127.0.0.1:26186, 127.0.0.1:26187" backend_policy=round-robin \
	backend_fail_max=2 backend_backoff=2s backend_backoff_max=4s \
	pid_file="$T/gate.pid" backend_connect_timeout=5s backend_timeout=10s \
	"passthrough=127.0.0.1:25188=127.0.0.1:26189|127.0.0.1:26186" metrics_listen=127.0.0.1:9186
tw_start_gate "$T/gate.conf" >/dev/null || tw_fail "gate starts"

# metric PORT SAMPLE: its value on the gate's endpoint ("" when absent)
metric() { curl -fsS --max-time 5 "http://127.0.0.1:$1/metrics" | awk -v s="$2" '$1 == s { print $2 }'; }
# metric_is PORT SAMPLE VALUE: waits up to 5 s (the master refreshes gauges each second)
metric_is() {
	for _ in $(seq 1 25); do
		[ "$(metric "$1" "$2")" = "$3" ] && return 0
		sleep 0.2
	done
	echo "    $2 = '$(metric "$1" "$2")', expected $3"
	return 1
}
M1="$T/be1/mail/user" M2="$T/be2/mail/user"

# send N TAG: N messages, one session each; prints how many got 250
send() {
	ok=0 i=0
	while [ $i -lt "$1" ]; do
		i=$((i + 1))
		if tw_swaks --server 127.0.0.1:25186 --from you@example.org --to user@example.test \
		    --header "Subject: $2 $i" >/dev/null 2>&1 &&
		    grep -q '^<- *250 2\.0\.0' "$T/swaks.out"; then
			ok=$((ok + 1))
		else
			grep '^<\*\{0,1\}-' "$T/swaks.out" | tail -n 1 >>"$T/$2.fail"
		fi
	done
	echo $ok
}

# landed N: both maildirs hold N messages together (waits up to 15 s)
landed() {
	i=0
	while [ $(( $(tw_maildir_count "$M1") + $(tw_maildir_count "$M2") )) -ne "$1" ]; do
		i=$((i + 1))
		[ $i -ge 75 ] && return 1
		sleep 0.2
	done
}

# --- round-robin over both ---------------------------------------------------
n=$(send 100 rr)
tw_check "round-robin: 100 clients got 250" test "$n" -eq 100
tw_wait_maildir "$M1" 1 15
tw_wait_maildir "$M2" 1 15
c1=$(tw_maildir_count "$M1") c2=$(tw_maildir_count "$M2")
tw_check "round-robin: all 100 landed" landed 100
c1=$(tw_maildir_count "$M1") c2=$(tw_maildir_count "$M2")
tw_check "round-robin: each backend got some ($c1, $c2)" sh -c "[ $c1 -ge 20 ] && [ $c2 -ge 20 ]"

# --- pass-through to a dead target (nothing on 26189) and be1 ------------------
b1=$(tw_maildir_count "$M1")
ok=0
for i in 1 2 3 4 5 6; do
	tw_swaks --server 127.0.0.1:25188 --from you@example.org --to user@example.test \
	    --header "Subject: pt $i" >/dev/null 2>&1 && grep -q '^<- *250 2\.0\.0' "$T/swaks.out" &&
	    ok=$((ok + 1))
done
tw_check "pass-through, one target dead: 6 of 6 clients got 250" test "$ok" -eq 6
tw_check "pass-through: all 6 landed on be1" tw_wait_maildir "$M1" $((b1 + 6)) 15
tw_check "pass-through: the dead target was tried, then marked down" sh -c \
	"grep -q 'backend=127.0.0.1:26189 status=unavailable' '$T/gate.log' &&
	 [ \$(grep -c 'backend=127.0.0.1:26189 state=down' '$T/gate.log') -eq 1 ]"

# --- a backend greeting 421: the next one, within the transaction (failover) -----
python3 "$TW_PEERS/fakebackend.py" --banner "421 4.3.2 Shutting down" --lifetime 60 \
	--log "$T/fake421.log" 26188 >/dev/null 2>&1 </dev/null &
tw_cleanup_add "kill $! 2>/dev/null"
tw_wait_port 127.0.0.1 26188 10
tw_gate_conf "$T/g421.conf" listen=127.0.0.1:25189 pid_file="$T/g421.pid" \
	"backend=127.0.0.1:26188, 127.0.0.1:26186" backend_policy=failover
tw_start_gate "$T/g421.conf" g421 >/dev/null || tw_fail "second gate starts"
b1=$(tw_maildir_count "$M1")
for i in 1 2 3; do
	tw_swaks_expect "421 banner first ($i): the client gets 250" "250 2\.0\.0" \
		--server 127.0.0.1:25189 --from you@example.org --to user@example.test
done
tw_check "421 banner: all 3 landed on be1" tw_wait_maildir "$M1" $((b1 + 3)) 15
tw_check "421 banner: the fake was tried (and greeted 421)" grep -q '^closed-at banner-421' "$T/fake421.log"
tw_check "421 banner: skipped after backend_fail_max (2) tries" sh -c \
	"[ \$(grep -c '^closed-at banner-421' '$T/fake421.log') -eq 2 ]"
tw_stop_gate g421

# --- be2 stopped: failover, then skipped --------------------------------------
tw_backend_stop be2
b1=$(tw_maildir_count "$M1")
n=$(send 20 down)
tw_check "be2 down: 20 of 20 clients got 250 (failover in the transaction)" test "$n" -eq 20
tw_check "be2 down: all 20 landed on be1" tw_wait_maildir "$M1" $((b1 + 20)) 15
tw_check "be2 down: state=down logged once" sh -c \
	"[ \$(grep -c 'backend=127.0.0.1:26187 state=down' '$T/gate.log') -eq 1 ]"
tw_check "be2 down: tried at most backend_fail_max times in a row, then skipped" sh -c \
	"[ \$(grep -c 'backend=127.0.0.1:26187 status=unavailable' '$T/gate.log') -le 6 ]"
tw_check "be2 down: metric backend_up is 0 for it" \
	metric_is 9186 'tailwart_gate_backend_up{backend="127.0.0.1:26187"}' 0
tw_check "be2 down: metric backend_up is 1 for be1" \
	metric_is 9186 'tailwart_gate_backend_up{backend="127.0.0.1:26186"}' 1
f=$(metric 9186 'tailwart_gate_backend_connects_total{backend="127.0.0.1:26187",result="failed"}')
ok2=$(metric 9186 'tailwart_gate_backend_connects_total{backend="127.0.0.1:26187",result="ok"}')
tw_check "be2 down: its failed connects counted ($f), its earlier hand-offs too ($ok2)" \
	sh -c "[ '${f:-0}' -ge 2 ] && [ '${ok2:-0}' -ge 20 ]"

# --- be2 back: traffic again after the back-off --------------------------------
tw_backend_start be2 26187 proxy
sleep 5		# longer than backend_backoff_max
b2=$(tw_maildir_count "$M2")
n=$(send 20 up)
tw_check "be2 back: 20 of 20 clients got 250" test "$n" -eq 20
tw_check "be2 back: it gets traffic again" tw_wait_maildir "$M2" $((b2 + 1)) 15
tw_check "be2 back: state=up logged" grep -q 'backend=127.0.0.1:26187 state=up' "$T/gate.log"
tw_check "be2 back: metric backend_up is 1 again" \
	metric_is 9186 'tailwart_gate_backend_up{backend="127.0.0.1:26187"}' 1

# --- active checks (backend_check_interval): down and up with no client ------
tw_gate_conf "$T/hc.conf" listen=127.0.0.1:25185 pid_file="$T/hc.pid" \
	"backend=127.0.0.1:26186, 127.0.0.1:26187" backend_check_interval=1s backend_backoff=1s
tw_start_gate "$T/hc.conf" hc >/dev/null || tw_fail "checking gate starts"
tw_backend_stop be2
tw_check "active check: be2 down noticed with no client" \
	tw_wait_file_grep "$T/hc.log" 'backend=127.0.0.1:26187 state=down' 10
tw_backend_start be2 26187 proxy
tw_check "active check: be2 up again with no client" \
	tw_wait_file_grep "$T/hc.log" 'backend=127.0.0.1:26187 state=up' 10
b2=$(tw_maildir_count "$M2")
for i in 1 2 3 4; do
	tw_swaks --server 127.0.0.1:25185 --from you@example.org --to user@example.test >/dev/null 2>&1
done
tw_check "active check: be2 gets traffic at once" tw_wait_maildir "$M2" $((b2 + 1)) 15
tw_stop_gate hc

# --- least-sessions: a worker killed holding a hand-off leaks no session -------
# A client holds a session past MAIL FROM (the hand-off is open); its worker
# is killed (-9). The master releases what it held: the next clients, one
# at a time, go to both backends in turn (a leaked count would send every
# one of them to the other backend).
tw_gate_conf "$T/ls.conf" listen=127.0.0.1:25187 pid_file="$T/ls.pid" \
	"backend=127.0.0.1:26186, 127.0.0.1:26187" backend_policy=least-sessions \
	metrics_listen=127.0.0.1:9187
tw_start_gate "$T/ls.conf" ls >/dev/null || tw_fail "least-sessions gate starts"
tw_bg hold sh -c "(printf 'EHLO hold.example.org\r\nMAIL FROM:<you@example.org>\r\n'; sleep 20) |
	nc 127.0.0.1 25187"
# held: the gate process with an open hand-off ("PID PORT"), waits up to 10 s
held() {
	for _ in $(seq 1 50); do
		ss -Htnp state established '( dport = :26186 or dport = :26187 )' |
		    sed -n 's/.*:\(2618[67]\) .*tailwart-gate",pid=\([0-9]*\).*/\2 \1/p' | grep . && return 0
		sleep 0.2
	done
	return 1
}
h=$(held | head -n 1)
tw_check "least-sessions: a client holds a hand-off (worker and backend: $h)" test -n "$h"
tw_check "least-sessions: metric backend_handoffs is 1 for that backend" \
	metric_is 9187 "tailwart_gate_backend_handoffs{backend=\"127.0.0.1:${h##* }\"}" 1
kill -KILL "${h%% *}" 2>/dev/null
tw_check "least-sessions: the master reaped the killed worker" \
	tw_wait_file_grep "$T/ls.log" "child pid=${h%% *} kind=W exited on signal 9" 10
tw_check "least-sessions: after the kill, backend_handoffs is 0 again" \
	metric_is 9187 "tailwart_gate_backend_handoffs{backend=\"127.0.0.1:${h##* }\"}" 0
tw_bg_stop hold
b1=$(tw_maildir_count "$M1") b2=$(tw_maildir_count "$M2")
for i in 1 2 3 4 5 6; do
	tw_swaks --server 127.0.0.1:25187 --from you@example.org --to user@example.test \
	    --header "Subject: ls $i" >/dev/null 2>&1
done
tw_check "least-sessions: the 6 landed" landed $((b1 + b2 + 6))
c1=$(( $(tw_maildir_count "$M1") - b1 )) c2=$(( $(tw_maildir_count "$M2") - b2 ))
tw_check "least-sessions after the kill: both backends get clients ($c1, $c2)" \
	sh -c "[ $c1 -ge 2 ] && [ $c2 -ge 2 ]"
tw_stop_gate ls

# --- both stopped: 451 4.4.1, nothing accepted ---------------------------------
tw_backend_stop be1
tw_backend_stop be2
sleep 1
b1=$(tw_maildir_count "$M1") b2=$(tw_maildir_count "$M2")
for i in 1 2 3 4; do
	tw_swaks_expect "both down ($i): 451 4.4.1" "451 4\.4\.1" --server 127.0.0.1:25186 \
		--from you@example.org --to user@example.test
done
tw_check "both down: nothing accepted" landed $((b1 + b2))
tw_swaks --server 127.0.0.1:25188 --from you@example.org --to user@example.test >/dev/null 2>&1
tw_check "both down: pass-through client gets no 250" sh -c "! grep -q '^<- *250 2\.0\.0' '$T/swaks.out'"
tw_check "both down: pass-through accepted nothing" landed $((b1 + b2))

tw_summary

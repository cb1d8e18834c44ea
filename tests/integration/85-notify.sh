#!/bin/sh
# 85-notify: what a Type=notify unit sees.  Each program runs with
# NOTIFY_SOCKET naming a unix datagram socket of this test
# (tests/peers/notify_sock.py records each message with its sender's pid):
#  - the gate's master sends READY=1 once its listener is bound and its
#    workers are up, RELOADING=1 then READY=1 around a HUP, STOPPING=1 on
#    TERM; every message comes from the master's pid (NotifyAccess=main);
#  - the relay's master: READY=1 with its listener bound, RELOADING=1 and
#    READY=1 around a HUP, STOPPING=1 on TERM;
#  - tailwart-milter: READY=1 with its socket open, STOPPING=1 on TERM;
#  - without NOTIFY_SOCKET nothing is sent (the other tests run that way).
. "$(dirname "$0")/../lib.sh"
. "$TW_PEERS/relay_lib.sh"

T=$(tw_tmpdir)
tw_need_gate
rl_need_relay
MILTER=$TW_BUILD/tailwart-milter
GP=28501
RP=28502
MP=28503

# notify_start NAME: the socket $T/NAME.sock, messages in $T/NAME.msgs
notify_start() {
	: >"$T/$1.msgs"
	python3 "$TW_PEERS/notify_sock.py" "$T/$1.sock" "$T/$1.msgs" 120 &
	echo $! >"$T/$1.sockpid"
	tw_cleanup_add "kill $(cat "$T/$1.sockpid") 2>/dev/null"
	i=0
	until [ -S "$T/$1.sock" ]; do
		i=$((i + 1))
		[ $i -ge 50 ] && return 1
		sleep 0.1
	done
}

# msgs NAME: the messages received so far, without the pids, on one line
msgs() {
	cut -d' ' -f2- "$T/$1.msgs" | sed 's/ MONOTONIC_USEC=[0-9]*//' | tr '\n' '|'
}

# expect_msgs NAME WANT WHAT: within 10 s the messages are exactly WANT
expect_msgs() {
	i=0
	while [ "$(msgs "$1")" != "$2" ] && [ $i -lt 100 ]; do
		i=$((i + 1))
		sleep 0.1
	done
	if [ "$(msgs "$1")" = "$2" ]; then
		tw_ok "$3"
	else
		tw_fail "$3" "want '$2', got '$(msgs "$1")'"
	fi
}

# senders NAME PID WHAT: every message came from PID
senders() {
	if [ -s "$T/$1.msgs" ] && ! cut -d' ' -f1 "$T/$1.msgs" | grep -vqx "$2"; then
		tw_ok "$3"
	else
		tw_fail "$3" "pids: $(cut -d' ' -f1 "$T/$1.msgs" | tr '\n' ' ') master $2"
	fi
}

# listening_now NAME PORT: NAME listens on PORT (checked right after READY=1)
listening_now() {
	if tw_listening 127.0.0.1 "$2"; then
		tw_ok "$1: listening when READY=1 arrived"
	else
		tw_fail "$1: listening when READY=1 arrived" "$(tail -n 5 "$T/$1.log")"
	fi
}

# ---- the gate
notify_start gate || { tw_fail "notify socket"; tw_summary; exit 1; }
tw_gate_conf "$T/gate.conf" listen=127.0.0.1:$GP workers_min=3 drain_timeout=2s
NOTIFY_SOCKET=$T/gate.sock
export NOTIFY_SOCKET
GPID=$(tw_start_gate "$T/gate.conf")
unset NOTIFY_SOCKET
expect_msgs gate "READY=1|" "gate: READY=1 at start"
# READY=1 means serving: the listener is bound and three workers are forked
listening_now gate $GP
if [ "$(pgrep -P "$GPID" | wc -l)" -ge 3 ]; then
	tw_ok "gate: workers up when READY=1 arrived"
else
	tw_fail "gate: workers up when READY=1 arrived" "children: $(pgrep -P "$GPID" | wc -l)"
fi
kill -HUP "$GPID"
expect_msgs gate "READY=1|RELOADING=1|READY=1|" "gate: RELOADING=1 then READY=1 on HUP"
if grep -q '^[0-9]* RELOADING=1 MONOTONIC_USEC=[0-9][0-9]*$' "$T/gate.msgs"; then
	tw_ok "gate: RELOADING=1 carries MONOTONIC_USEC"
else
	tw_fail "gate: RELOADING=1 carries MONOTONIC_USEC" "$(grep RELOADING "$T/gate.msgs")"
fi
kill -TERM "$GPID"
expect_msgs gate "READY=1|RELOADING=1|READY=1|STOPPING=1|" "gate: STOPPING=1 on TERM"
senders gate "$GPID" "gate: every message from the master's pid"
tw_stop_gate >/dev/null || true

# ---- the relay (its smarthost is not needed to start)
notify_start relay || { tw_fail "notify socket"; tw_summary; exit 1; }
SMARTHOST_PASSWORD=unused
export SMARTHOST_PASSWORD
mkdir -p "$T/sh"
rl_conf "$T/relay.conf" listen=127.0.0.1:$RP smarthost="[localhost]:$RP" tls=none tls_ca=
NOTIFY_SOCKET=$T/relay.sock
export NOTIFY_SOCKET
rl_start "$T/relay.conf" || tw_fail "relay start"
unset NOTIFY_SOCKET
RPID=$(cat "$T/relay.pid")
expect_msgs relay "READY=1|" "relay: READY=1 at start, listener bound"
kill -HUP "$RPID"
expect_msgs relay "READY=1|RELOADING=1|READY=1|" "relay: RELOADING=1 then READY=1 on HUP"
kill -TERM "$RPID"
expect_msgs relay "READY=1|RELOADING=1|READY=1|STOPPING=1|" "relay: STOPPING=1 on TERM"
senders relay "$RPID" "relay: every message from the master's pid"
rl_stop

# ---- the milter (libmilter: HUP is not a reload, TERM stops)
if [ -x "$MILTER" ]; then
	notify_start milter || { tw_fail "notify socket"; tw_summary; exit 1; }
	cat >"$T/milter.conf" <<EOF
hostname = mx.example.test
store = lmdb:$T/milter.lmdb
user = nobody
milter_listen = inet:$MP@127.0.0.1
EOF
	NOTIFY_SOCKET=$T/milter.sock setsid "$MILTER" -f -c "$T/milter.conf" \
		>"$T/milter.log" 2>&1 </dev/null &
	MPID=$!
	tw_cleanup_add "kill -KILL $MPID 2>/dev/null"
	expect_msgs milter "READY=1|" "milter: READY=1 at start"
	listening_now milter $MP
	kill -TERM "$MPID"
	expect_msgs milter "READY=1|STOPPING=1|" "milter: STOPPING=1 on TERM"
	senders milter "$MPID" "milter: every message from its pid"
	wait "$MPID" 2>/dev/null || true
else
	tw_fail "milter binary" "$MILTER missing"
fi

# ---- without NOTIFY_SOCKET: nothing is sent, the gate runs as before
notify_start none
tw_gate_conf "$T/gate2.conf" listen=127.0.0.1:$GP
tw_start_gate "$T/gate2.conf" g2 >/dev/null
tw_swaks_expect "gate without NOTIFY_SOCKET still serves" 250 \
	--server 127.0.0.1:$GP --to user@example.test --quit-after EHLO
tw_stop_gate g2 >/dev/null || true
if [ ! -s "$T/none.msgs" ]; then tw_ok "no message without NOTIFY_SOCKET"; else
	tw_fail "no message without NOTIFY_SOCKET" "$(cat "$T/none.msgs")"; fi

tw_summary

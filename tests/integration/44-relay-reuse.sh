#!/bin/bash
# 44-relay-reuse: delivery workers keep their smarthost connection for
# connection_reuse_time. (1) Two messages sent one after the other go over
# one connection to the real Postfix smarthost (TLS + AUTH): its log shows
# one connect for both. (2) A smarthost that closes the idle connection with
# 421 is noticed; the next message goes over a new connection, at its first
# attempt. (3) A kept connection that the smarthost drops at the next MAIL
# (closed just as we send): the message is sent again at once over a new
# connection, attempts=1, never deferred. (4) connection_reuse_time = 0:
# one connection per batch, as before. (5) The receiver's session processes
# serve one connection after another (no fork per connection): two
# sequential clients are queued by the same process; with max_clients = 1
# a second concurrent client gets 421 4.3.2, and once the first is gone the
# next one is served.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # tests/run uses sh
. "$(dirname "$0")/../lib.sh"
. "$TW_PEERS/relay_lib.sh"
rl_need_relay

T=$(tw_tmpdir)
RP=27450
SH=27451
BP=27452
fake_start() { rl_fake_start "$1" $BP; }
fake_stop() { rl_fake_stop $BP; }
send() { # send NAME SUBJECT: one message, wait for its delivery; echoes nothing
	tw_swaks_expect "$1: accepted" 250 --server 127.0.0.1:$RP \
		--from sender@example.test --to user@example.test --header "Subject: $2"
	id=$(rl_qid)
	if rl_log_wait relay "$id to=\"<user@example.test>\" .*attempts=1 status=sent" 20; then
		tw_ok "$1: sent at the first attempt"
	else
		tw_fail "$1: sent at the first attempt" "$(grep "$id" "$T/relay.log" | tail -n 3)"
	fi
}

# (1) the real smarthost: one connection for two messages
rl_smarthost_start sh $SH || { tw_fail "smarthost start"; tw_summary; exit 1; }
rl_conf "$T/relay.conf" "listen=127.0.0.1:$RP" "smarthost=[localhost]:$SH" \
	"connection_reuse_time=30s"
rl_start "$T/relay.conf" || { tw_fail "relay start"; tw_summary; exit 1; }
send "first" "reuse-1"
send "second" "reuse-2"
n=$(grep -c 'smtpd.*: connect from' "$T/sh/maillog")
[ "$n" -eq 1 ] && tw_ok "two messages, one smarthost connection" ||
	tw_fail "two messages, one smarthost connection" "$n connects in the smarthost's log"
tw_wait_maildir "$T/sh/mail/user" 2 20 && tw_ok "both in the smarthost's mailbox" ||
	tw_fail "both in the smarthost's mailbox" "$(tw_maildir_count "$T/sh/mail/user")"
rl_stop

# (2) a smarthost that closes the idle connection (421 after 1 s)
rl_conf "$T/relay.conf" "listen=127.0.0.1:$RP" "smarthost=[127.0.0.1]:$BP" \
	"tls=none" "tls_ca=" "auth_user=" "auth_password=" "connection_reuse_time=30s"
rl_start "$T/relay.conf" || { tw_fail "relay start"; tw_summary; exit 1; }
fake_start idleclose
send "idleclose first" "idle-1"
tw_wait_file_grep "$T/fake.log" '^idle-close' 10
rl_log_wait relay 'relay connection to .* closed by the smarthost while idle' 10 &&
	tw_ok "idle close noticed" || tw_fail "idle close noticed" "$(tail -n 3 "$T/relay.log")"
send "idleclose second" "idle-2"
n=$(grep -c '^conn' "$T/fake.log")
[ "$n" -eq 2 ] && tw_ok "idleclose: a new connection for the second" ||
	tw_fail "idleclose: a new connection for the second" "$n connections"
grep -q 'deferred' "$T/relay.log" && tw_fail "idleclose: nothing deferred" ||
	tw_ok "idleclose: nothing deferred"
fake_stop

# (3) dropped at the next MAIL: sent again at once on a new connection
fake_start dropmail
send "dropmail first" "drop-1"
send "dropmail second" "drop-2"
grep -q '^drop-at-mail' "$T/fake.log" && tw_ok "dropmail: the kept connection was dropped" ||
	tw_fail "dropmail: the kept connection was dropped" "$(cat "$T/fake.log")"
n=$(grep -c '^accepted' "$T/fake.log")
[ "$n" -eq 2 ] && tw_ok "dropmail: both accepted" || tw_fail "dropmail: both accepted" "$n"
grep -q 'deferred' "$T/relay.log" && tw_fail "dropmail: nothing deferred" ||
	tw_ok "dropmail: nothing deferred"
fake_stop
rl_stop

# (4) connection_reuse_time = 0: a connection per batch
rl_conf "$T/relay.conf" "listen=127.0.0.1:$RP" "smarthost=[127.0.0.1]:$BP" \
	"tls=none" "tls_ca=" "auth_user=" "auth_password=" "connection_reuse_time=0"
rl_start "$T/relay.conf" || { tw_fail "relay start"; tw_summary; exit 1; }
fake_start split
send "no reuse first" "noreuse-1"
send "no reuse second" "noreuse-2"
n=$(grep -c '^conn' "$T/fake.log")
[ "$n" -eq 2 ] && tw_ok "reuse off: two connections" || tw_fail "reuse off: two connections" "$n"
fake_stop

# (5) pooled session processes; max_clients still holds
pids() { sed -n 's/.*tailwart-relay\[\([0-9]*\)\]: [0-9A-F]\{16\} queued .*/\1/p' "$T/relay.log" | sort -u | wc -l; }
before=$(pids)
tw_swaks_expect "pool: first client" 250 --server 127.0.0.1:$RP \
	--from sender@example.test --to user@example.test --header "Subject: pool-1"
tw_swaks_expect "pool: second client" 250 --server 127.0.0.1:$RP \
	--from sender@example.test --to user@example.test --header "Subject: pool-2"
after=$(pids)
[ "$after" -le $((before + 1)) ] && tw_ok "pool: one session process for two clients in a row" ||
	tw_fail "pool: one session process for two clients in a row" "$before -> $after queuing pids"
rl_stop
rl_conf "$T/relay.conf" "listen=127.0.0.1:$RP" "smarthost=[127.0.0.1]:$BP" \
	"tls=none" "tls_ca=" "auth_user=" "auth_password=" "max_clients=1"
rl_start "$T/relay.conf" || { tw_fail "relay start"; tw_summary; exit 1; }
python3 - $RP >"$T/hold.out" 2>&1 <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
print(s.recv(512).decode().strip(), flush=True)	# the banner: a session holds it
time.sleep(4)
s.close()
PY
HOLD=$!
tw_wait_file_grep "$T/hold.out" '^220 ' 10
tw_swaks_expect "max_clients=1: a second client gets 421 4.3.2" "421 4\.3\.2" \
	--server 127.0.0.1:$RP --from sender@example.test --to user@example.test
wait $HOLD
tw_swaks_expect "max_clients=1: served again once the first left" 250 --server 127.0.0.1:$RP \
	--from sender@example.test --to user@example.test --header "Subject: pool-3"
tw_summary

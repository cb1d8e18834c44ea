#!/bin/bash
# 44-relay-badpeer: a smarthost that hangs mid-reply, answers garbage, says
# 421, or closes after the message without a reply: each is a deferral and
# nothing accepted is lost; replies split into 3-byte packets (multi-line
# ones too) work; a 5xx at end of data bounces. HUP reloads a valid config
# and keeps the running one when the new file is invalid. A full disk gives
# 452 and keeps what was queued.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # tests/run uses sh
. "$(dirname "$0")/../lib.sh"
. "$TW_PEERS/relay_lib.sh"
rl_need_relay

T=$(tw_tmpdir)
RP=27500
BP=27501
fake_start() { rl_fake_start "$1" $BP; }
fake_stop() { rl_fake_stop $BP; }
qid() { sed -n 's/.*queued as \([0-9A-F]\{16\}\).*/\1/p' "$TW_TMP/swaks.out" | tail -n 1; }

rl_conf "$T/relay.conf" "listen=127.0.0.1:$RP" "smarthost=[127.0.0.1]:$BP" \
	"tls=none" "tls_ca=" "auth_user=" "auth_password=" "smtp_timeout=3s" \
	"min_backoff=1s" "max_backoff=1s" "message_size_limit=64K"
rl_start "$T/relay.conf" || { tw_fail "relay start"; tw_summary; exit 1; }

# an oversized message: 552 after its end, nothing queued, session usable
head -c 100000 /dev/zero | tr '\0' 'b' | fold -w 76 >"$T/over.txt"
tw_swaks_expect "oversized DATA: 552 5.3.4" "552 5\.3\.4" --server 127.0.0.1:$RP \
	--from sender@example.test --to user@example.test --body "$T/over.txt"
rl_q "$T/relay.conf" list | grep -q '^0 messages$' && tw_ok "oversized message not queued" ||
	tw_fail "oversized message not queued"

sent=0
for mode in hang garbage busy noreply; do
	fake_start $mode
	n0=$(grep -c 'status=deferred' "$T/relay.log")
	tw_swaks_expect "accepted ($mode)" 250 --server 127.0.0.1:$RP \
		--from sender@example.test --to user@example.test --header "Subject: bad-$mode"
	sent=$((sent + 1))
	id=$(qid)
	case $mode in
	hang) re="timeout" ;;
	garbage) re="malformed reply" ;;
	busy) re="banner: 421" ;;
	noreply) re="connection closed .* in reply to end of data" ;;
	esac
	if rl_log_wait relay "$id to=\"<user@example.test>\" .*status=deferred reply=\".*$re" 20; then
		tw_ok "$mode: deferred"
	else
		tw_fail "$mode: deferred" "$(grep "$id" "$T/relay.log" | tail -n 2)"
	fi
	fake_stop
done
if grep -q 'status=bounced' "$T/relay.log"; then
	tw_fail "nothing bounced by a broken smarthost"
else
	tw_ok "nothing bounced by a broken smarthost"
fi
rl_q "$T/relay.conf" list >"$T/list"
grep -q "^$sent messages\$" "$T/list" && tw_ok "all $sent kept in the queue" ||
	tw_fail "all $sent kept in the queue" "$(tail -n 1 "$T/list")"

# a smarthost whose replies come 3 bytes at a time: everything goes out
fake_start split
tw_check "flush" rl_q "$T/relay.conf" flush
i=0
while [ "$(grep -c '^accepted' "$T/fake.log")" -lt $sent ] && [ $i -lt 100 ]; do
	i=$((i + 1)); sleep 0.2
done
acc=$(grep -c '^accepted' "$T/fake.log")
[ "$acc" -ge $sent ] && tw_ok "split replies: all $sent delivered ($acc)" ||
	tw_fail "split replies: all delivered" "$acc of $sent; $(tail -n 3 "$T/relay.log")"
for mode in hang garbage busy noreply; do
	grep -q "^Subject: bad-$mode" "$T/fake.log.msgs" 2>/dev/null || tw_fail "message bad-$mode delivered"
done
grep -q 'cmd BDAT [0-9]* LAST' "$T/fake.log" && tw_ok "BDAT used toward a CHUNKING smarthost" ||
	tw_fail "BDAT used toward a CHUNKING smarthost"
fake_stop

# a 5xx at end of data bounces (DSN queued for the sender)
fake_start reject
tw_swaks_expect "accepted (reject)" 250 --server 127.0.0.1:$RP \
	--from sender@example.test --to user@example.test --header "Subject: bad-reject"
id=$(qid)
rl_log_wait relay "$id to=\"<user@example.test>\" .*status=bounced reply=\"554.5\.7\.1 rejected 554 5\.7\.1 by policy\"" 20 &&
	tw_ok "5xx at end of data bounces (multi-line reply kept)" ||
	tw_fail "5xx at end of data bounces" "$(grep "$id" "$T/relay.log" | tail -n 2)"
rl_log_wait relay "$id sender non-delivery notification" 10 && tw_ok "DSN queued" || tw_fail "DSN queued"
fake_stop

# HUP: an invalid file is refused and the running config stays
cp "$T/relay.conf" "$T/relay.conf.good"
echo "tls = sometimes" >>"$T/relay.conf"
kill -HUP "$(cat "$T/relay.pid")"
if rl_log_wait relay 'reload refused, keeping the running config: .*relay.conf:[0-9]+: tls' 10; then
	tw_ok "HUP with an invalid file keeps the running config"
else
	tw_fail "HUP with an invalid file keeps the running config" "$(tail -n 3 "$T/relay.log")"
fi
tw_swaks_expect "still accepting after a refused reload" 250 --server 127.0.0.1:$RP \
	--from '<>' --to user@example.test --header "Subject: after-bad-hup"
# a valid change: the new smarthost port is used
BP=27502
rl_conf "$T/relay.conf" "listen=127.0.0.1:$RP" "smarthost=[127.0.0.1]:$BP" \
	"tls=none" "tls_ca=" "auth_user=" "auth_password=" "smtp_timeout=3s" \
	"min_backoff=1s" "max_backoff=1s"
kill -HUP "$(cat "$T/relay.pid")"
rl_log_wait relay 'reloading ' 10 && tw_ok "HUP reloads a valid file" || tw_fail "HUP reloads a valid file"
sleep 1
fake_start split
tw_check "flush after reload" rl_q "$T/relay.conf" flush
i=0
while ! grep -q '^Subject: after-bad-hup' "$T/fake.log.msgs" 2>/dev/null && [ $i -lt 75 ]; do
	i=$((i + 1)); sleep 0.2
done
grep -q '^Subject: after-bad-hup' "$T/fake.log.msgs" 2>/dev/null &&
	tw_ok "delivered through the reloaded smarthost" ||
	tw_fail "delivered through the reloaded smarthost" "$(tail -n 3 "$T/relay.log")"
fake_stop
rl_stop relay

# the master killed alone (kill -9): its children stop, a new master can
# bind the same port and finds the queue
rl_conf "$T/m.conf" "listen=127.0.0.1:$RP" "smarthost=[127.0.0.1]:$BP" \
	"tls=none" "tls_ca=" "auth_user=" "auth_password=" "spool_dir=$T/spool-m" \
	"min_backoff=1h" "max_backoff=1h"
rl_start "$T/m.conf" m || tw_fail "relay start (m)"
tw_swaks_expect "queued before the master dies" 250 --server 127.0.0.1:$RP \
	--from sender@example.test --to user@example.test --header "Subject: master-kill"
mpid=$(cat "$T/m.pid")
kill -KILL "$mpid"
wait "$mpid" 2>/dev/null
i=0
while tw_listening 127.0.0.1 $RP && [ $i -lt 50 ]; do i=$((i + 1)); sleep 0.1; done
if ! tw_listening 127.0.0.1 $RP; then
	tw_ok "children stop when the master is killed"
else
	tw_fail "children stop when the master is killed" "$(pgrep -g "$mpid" | tr '\n' ' ')"
fi
rl_stop m
rl_start "$T/m.conf" m2 && tw_ok "a new master binds the port again" ||
	tw_fail "a new master binds the port again"
rl_q "$T/m.conf" list | grep -q '^1 messages*$' && tw_ok "queue intact after the master's death" ||
	tw_fail "queue intact after the master's death" "$(rl_q "$T/m.conf" list | tail -n 1)"
rl_stop m2

# full disk: a small tmpfs spool; an oversized message gets 452 (not 250,
# not 5xx), a small one is still accepted, nothing queued is lost
mkdir -p "$T/tiny"
if mount -t tmpfs -o size=1m,mode=0755 tmpfs "$T/tiny" 2>/dev/null; then
	tw_cleanup_add "umount '$T/tiny'"
	rl_conf "$T/tiny.conf" "listen=127.0.0.1:$RP" "smarthost=[127.0.0.1]:$BP" \
		"tls=none" "tls_ca=" "auth_user=" "auth_password=" "spool_dir=$T/tiny/spool" \
		"min_backoff=1h" "max_backoff=1h"
	rl_start "$T/tiny.conf" tiny || tw_fail "relay start (tiny)"
	tw_swaks_expect "small message queued" 250 --server 127.0.0.1:$RP \
		--from sender@example.test --to user@example.test --header "Subject: tiny-1"
	head -c 1500000 /dev/zero | tr '\0' 'a' | fold -w 76 >"$T/big.txt"
	tw_swaks_expect "disk full: 452 4.3.1" "452 4\.3\.1" --server 127.0.0.1:$RP \
		--from sender@example.test --to user@example.test --body "$T/big.txt"
	tw_swaks_expect "small message still queued" 250 --server 127.0.0.1:$RP \
		--from sender@example.test --to user@example.test --header "Subject: tiny-2"
	rl_q "$T/tiny.conf" list | grep -q '^2 messages$' && tw_ok "both queued messages kept" ||
		tw_fail "both queued messages kept" "$(rl_q "$T/tiny.conf" list | tail -n 1)"
	[ -z "$(ls "$T/tiny/spool/incoming")" ] && tw_ok "no partial file left in incoming/" ||
		tw_fail "no partial file left in incoming/"
	rl_stop tiny
else
	echo "# full-disk case skipped: cannot mount a tmpfs here"
fi
tw_summary

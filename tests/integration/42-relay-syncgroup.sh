#!/bin/bash
# 42-relay-syncgroup: the receiver's sessions share the fsync of queue/
# (relay/relay_spool_sync.c). 200 messages from 20 pipelining sessions at
# once (tests/helpers/pipe_source): every one gets its 250 and reaches the
# smarthost, and the receiver made fewer fsync calls than two per message
# (one for the file, one for queue/ - what it made before the grouping).
# Durability under kill -9 with the grouping is 42-relay-crash's test.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # tests/run uses sh
. "$(dirname "$0")/../lib.sh"
. "$TW_PEERS/relay_lib.sh"
rl_need_relay

T=$(tw_tmpdir)
SH=27331
RP=27330
N=200
command -v strace >/dev/null || { tw_fail "strace" "not installed (make deps)"; tw_summary; exit 1; }
rl_smarthost_start sh $SH || { tw_fail "smarthost start"; tw_summary; exit 1; }
MD=$T/sh/mail/user
rl_conf "$T/relay.conf" "listen=127.0.0.1:$RP" "smarthost=[localhost]:$SH" \
	"max_connections=4" "batch_size=100" "max_clients=50"
rl_start "$T/relay.conf" || { tw_fail "relay start"; tw_summary; exit 1; }

# trace every process of the relay (master, receiver, scheduler) and
# whatever they fork from now on (sessions, delivery workers)
pids=$(pgrep -g "$(cat "$T/relay.pid")" | sed 's/^/-p /' | tr '\n' ' ')
# shellcheck disable=SC2086
strace -f -qq -e trace=fsync -o "$T/fsync.trace" $pids &
ST=$!
tw_cleanup_add "kill $ST 2>/dev/null"
sleep 1
if "$TW_BUILD/tests/pipe_source" -s 20 -m $N -l 1024 -T 120 127.0.0.1:$RP >"$T/src.out" 2>&1; then
	tw_ok "$N messages got 250 ($(cat "$T/src.out"))"
else
	tw_fail "pipe_source" "$(cat "$T/src.out")"
fi
tw_check "all $N delivered to the smarthost" tw_wait_maildir "$MD" $N 60
kill "$ST" 2>/dev/null
wait "$ST" 2>/dev/null
calls=$(grep -c 'fsync(' "$T/fsync.trace" || true)
echo "# fsync calls for $N messages: $calls (two per message without grouping: $((2 * N)))"
if [ "$calls" -gt 0 ] && [ "$calls" -lt $((2 * N * 95 / 100)) ]; then
	tw_ok "queue/ syncs shared: $calls fsync calls for $N messages"
else
	tw_fail "queue/ syncs shared" "$calls fsync calls for $N messages (no fewer than 2 per message)"
fi
rl_stop relay
tw_summary

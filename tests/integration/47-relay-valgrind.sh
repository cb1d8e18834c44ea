#!/bin/bash
# 47-relay-valgrind: the relay under valgrind (memcheck, every child
# traced: master, receiver, sessions, scheduler, delivery workers) while it
# receives, DKIM-signs, delivers over STARTTLS+AUTH and bounces: no memory
# error and no definite leak in any process.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # tests/run uses sh
. "$(dirname "$0")/../lib.sh"
. "$TW_PEERS/relay_lib.sh"
rl_need_relay
if grep -q __asan_init "$TW_RELAY" 2>/dev/null; then
	echo "# $TW_RELAY is built with ASan: valgrind cannot run it; skipped"
	tw_ok "skipped (ASan build)"
	tw_summary
	exit 0
fi
command -v valgrind >/dev/null || { echo "# valgrind not installed: skipped"; tw_ok "skipped (no valgrind)"; tw_summary; exit 0; }

T=$(tw_tmpdir)
SH=27811
RP=27810
rl_smarthost_start sh $SH || { tw_fail "smarthost start"; tw_summary; exit 1; }
openssl genrsa -out "$T/dk.pem" 2048 2>/dev/null
rl_conf "$T/relay.conf" "listen=127.0.0.1:$RP" "smarthost=[localhost]:$SH" \
	"dkim_sign=example.test sel1 $T/dk.pem"
mkdir -p "$T/vg"
chmod 1777 "$T/vg"
setsid valgrind -q --trace-children=yes --leak-check=full --errors-for-leak-kinds=definite \
	--error-exitcode=99 --vgdb=no --log-file="$T/vg/vg.%p" \
	"$TW_RELAY" -f -c "$T/relay.conf" >"$T/relay.log" 2>&1 </dev/null &
echo $! >"$T/relay.pid"
tw_cleanup_add "rl_stop relay"
tw_wait_port 127.0.0.1 $RP 30 || { tw_fail "relay under valgrind listening"; tw_summary; exit 1; }
for i in 1 2 3; do
	tw_swaks_expect "message $i accepted" 250 --server 127.0.0.1:$RP \
		--from sender@example.test --to user@example.test,unknown@example.test \
		--header "From: <sender@example.test>" --header "Subject: vg-$i"
done
tw_wait_maildir "$T/sh/mail/user" 3 60 && tw_ok "delivered under valgrind" ||
	tw_fail "delivered under valgrind" "$(tail -n 5 "$T/relay.log")"
tw_wait_maildir "$T/sh/mail/sender" 3 60 && tw_ok "DSNs delivered under valgrind" ||
	tw_fail "DSNs delivered under valgrind"
sleep 2
pid=$(cat "$T/relay.pid")
kill -TERM "$pid"
i=0
while rl__alive "$pid" && [ $i -lt 150 ]; do i=$((i + 1)); sleep 0.1; done
sleep 2
rm -f "$T/relay.pid"
n=$(ls "$T/vg" | wc -l)
# with -q valgrind writes only errors and leak records
errs=$(cat "$T/vg"/vg.* 2>/dev/null | grep -E '^==[0-9]+== [^ ]' | grep -vc 'could not unlink')
if [ "$n" -ge 5 ] && [ "$errs" -eq 0 ]; then
	tw_ok "valgrind: $n processes, no error, no definite leak"
else
	tw_fail "valgrind clean" "$n processes, $errs report lines"
	cat "$T/vg"/vg.* | head -n 40 | sed 's/^/    | /'
fi
tw_summary

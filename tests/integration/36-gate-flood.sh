#!/bin/bash
# 36-gate-flood.sh — the screen under hostile load: 10,000 idle connections
# held open (they get the 220- teaser and never a worker) while a real
# client still delivers in under a second; a flood from a denied address is
# turned away with 554 and the gate keeps serving; the screen's memory per
# held connection. The test raises its open-file limit to 30,000 (the
# gate's master raises its own soft limit to the hard one).
. "$(dirname "$0")/../lib.sh"
tw_need_gate
T=$(tw_tmpdir)
HOLD=10000
ulimit -Hn 30000 2>/dev/null || true
ulimit -n 30000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge $((HOLD + 1000)) ] || HOLD=$(( $(ulimit -n) - 1000 ))
FLOOD=$TW_BUILD/tests/flood
[ -x "$FLOOD" ] || { tw_fail "flood helper" "$FLOOD missing"; tw_summary; exit 1; }
tw_backend_start be 26036 proxy >/dev/null
tw_gate_conf "$T/gate.conf" listen=127.0.0.1:25036 backend=127.0.0.1:26036 \
	pregreet_action=enforce pregreet_wait=1s deny=127.0.0.66 workers_min=2 workers_max=4 \
	screen_max_connections=$((HOLD + 500))
tw_start_gate "$T/gate.conf" gate >/dev/null
master=$(tw_gate_pid gate)
sleep 1
screen=""
for p in $(pgrep -P "$master"); do
	# the screen holds the SMTP listener
	if ls -l /proc/"$p"/fd 2>/dev/null | grep -q socket && [ "$(grep -c . /proc/"$p"/status)" -gt 0 ]; then
		if ss -Hltnp 2>/dev/null | grep ':25036 ' | grep -q "pid=$p,"; then screen=$p; fi
	fi
done
[ -n "$screen" ] && tw_ok "found the screen process ($screen)" || tw_fail "found the screen process"
before=$(awk '/^Private_Dirty:/ { print $2 }' /proc/"$screen"/smaps_rollup 2>/dev/null || echo 0)

"$FLOOD" -m hold -n $HOLD -t 90 -b 127.0.0.67 127.0.0.1 25036 >"$T/hold.out" 2>&1 &
holder=$!
tw_cleanup_add "kill $holder 2>/dev/null"
tw_wait_file_grep "$T/hold.out" '^held ' 60 >/dev/null
if grep -q "^held $HOLD failed 0 first=220" "$T/hold.out"; then
	tw_ok "$HOLD idle connections held open, each got the 220- teaser"
else tw_fail "$HOLD idle connections held open" "$(cat "$T/hold.out")"; fi
t0=$(date +%s%N)
tw_swaks_expect "a real client still delivers while $HOLD are held" "250 2\.0\.0 Ok: .*queued" \
	--server 127.0.0.1:25036 --local-interface 127.0.0.9 --from a@example.org --to user@example.test
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "# delivery took $ms ms with $HOLD connections held (pregreet_wait 1 s included)"
[ "$ms" -lt 2000 ] && tw_ok "delivered within pregreet_wait (1 s) + 1 s ($ms ms)" ||
	tw_fail "delivered within pregreet_wait (1 s) + 1 s" "$ms ms"
busy=$(grep -c 'state=busy\|status=busy' "$T/gate.log" || true)
[ "$busy" -eq 0 ] && tw_ok "no worker was taken by an idle connection (no busy refusals)" ||
	tw_fail "no worker was taken by an idle connection" "$busy busy refusals"
after=$(awk '/^Private_Dirty:/ { print $2 }' /proc/"$screen"/smaps_rollup 2>/dev/null || echo 0)
per=$(( (after - before) * 1024 / HOLD ))
echo "# screen Private_Dirty: $before KiB -> $after KiB with $HOLD held: $per bytes per connection"
[ "$per" -le 4096 ] && tw_ok "screen memory per held connection <= 4 KiB ($per bytes)" ||
	tw_fail "screen memory per held connection <= 4 KiB" "$per bytes"
kill $holder 2>/dev/null
wait $holder 2>/dev/null

out=$("$FLOOD" -m turn -c 50 -n 5000 -t 30 -b 127.0.0.66 127.0.0.1 25036)
echo "# $out"
echo "$out" | grep -q '^turned 5000 failed 0 .* first=554' && tw_ok "5,000 connections from a denied address turned away with 554" ||
	tw_fail "5,000 connections from a denied address turned away with 554" "$out"
tw_swaks_expect "the gate still delivers after the flood" "250 2\.0\.0 Ok: .*queued" \
	--server 127.0.0.1:25036 --local-interface 127.0.0.9 --from b@example.org --to user@example.test
tw_check "gate master still running" kill -0 "$master"
tw_summary

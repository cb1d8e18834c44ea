#!/bin/bash
# 90-gate-valgrind.sh — the gate under valgrind (memcheck, every process:
# master, screen, workers, passthrough): TLS sessions, a refused bare-LF
# message, a pregreet refusal, a pass-through connection, a HUP reload and
# TERM. Every process must end with 0 errors and no definite/indirect leaks.
. "$(dirname "$0")/../lib.sh"
tw_need_gate
T=$(tw_tmpdir)
command -v valgrind >/dev/null || { tw_fail "valgrind installed" "missing"; tw_summary; exit 1; }

tw_backend_start be 26090 proxy >/dev/null
tw_backend_start pt 26091 proxy >/dev/null
tw_certs >/dev/null
tw_gate_conf "$T/gate.conf" listen=127.0.0.1:25090 backend=127.0.0.1:26090 \
	passthrough=127.0.0.1:25091=127.0.0.1:26091 workers_min=1 workers_max=2 \
	tls_cert="$T/cert.pem" tls_key="$T/key.pem" \
	pregreet_action=enforce pregreet_wait=1s
valgrind --trace-children=yes --leak-check=full --show-leak-kinds=definite,indirect \
	--errors-for-leak-kinds=definite,indirect --log-file="$T/vg.%p.log" \
	"$TW_GATE" -f -c "$T/gate.conf" 2>"$T/gate.log" &
vg=$!
tw_cleanup_add "kill -9 $vg 2>/dev/null; pkill -9 -f '$T/gate.conf' 2>/dev/null"
tw_check "gate starts under valgrind" tw_wait_port 127.0.0.1 25090 30
sleep 2

for i in 1 2; do
	tw_swaks_expect "TLS message $i delivered" "250 2\.0\.0" --server 127.0.0.1:25090 \
		--local-interface 127.0.0.9 --from a@example.org --to user@example.test -tls
done
out=$( (sleep 2; printf 'EHLO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<user@example.test>\r\nDATA\r\nbare\nlf\r\n.\r\nQUIT\r\n') |
	timeout 20 nc -s 127.0.0.9 127.0.0.1 25090)
echo "$out" | grep -q '^550 5\.6\.0' && tw_ok "bare LF refused" || tw_fail "bare LF refused" "$out"
out=$(printf 'EHLO early\r\n' | timeout 10 nc -s 127.0.0.30 127.0.0.1 25090)
echo "$out" | grep -q '^554 5\.5\.1' && tw_ok "pregreet refused" || tw_fail "pregreet refused" "$out"
tw_swaks_expect "pass-through carries a session" "250 2\.0\.0" --server 127.0.0.1:25091 \
	--local-interface 127.0.0.7 --from a@example.org --to user@example.test
kill -HUP $vg
sleep 4
tw_swaks_expect "message after HUP" "250 2\.0\.0" --server 127.0.0.1:25090 \
	--local-interface 127.0.0.9 --from a@example.org --to user@example.test
kill -TERM $vg
for _ in $(seq 1 60); do kill -0 $vg 2>/dev/null || break; sleep 0.5; done
sleep 2
n=$(ls "$T"/vg.*.log 2>/dev/null | wc -l)
[ "$n" -ge 4 ] && tw_ok "valgrind saw master, screen, passthrough and workers ($n processes)" ||
	tw_fail "valgrind saw every process" "only $n logs"
bad=$(grep -L "ERROR SUMMARY: 0 errors" "$T"/vg.*.log)
if [ -z "$bad" ]; then tw_ok "every process: 0 errors, no definite or indirect leaks"; else
	tw_fail "every process: 0 errors, no definite or indirect leaks" "$bad"
	for f in $bad; do grep -A12 -E "Invalid|uninitialised|definitely lost in|indirectly lost in" "$f" | head -40 | sed 's/^/    | /'; done
fi
tw_summary

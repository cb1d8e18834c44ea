#!/bin/bash
# 35-gate-policy.sh — the gate's policies end to end, on real peers, with
# clients that are not loopback (SPF treats 127/8 as local): the whole
# script runs in a network namespace it creates, with 192.0.2.0/24 and
# 2001:db8::/64 on its lo. Peers: unbound (tests/peers/dns.sh: SPF, DNSBL,
# DNSWL zones), the Postfix backend (PROXY v2), redis-server (shared store).
# Asserts what a client sees (reply code + enhanced status + text) and what
# the backend logged.
if [ -z "${TW_IN_NETNS:-}" ]; then
	ns="tw-policy-$$"
	if ! ip netns add "$ns" 2>/dev/null; then
		echo "FAIL cannot create a network namespace (need root and iproute2)"
		echo "0 passed, 1 failed"
		exit 1
	fi
	ip netns exec "$ns" ip link set lo up
	ip netns exec "$ns" ip addr add 192.0.2.1/24 dev lo
	for a in 1 99 50; do
		ip netns exec "$ns" ip -6 addr add "2001:db8::$a/128" dev lo nodad
	done
	TW_IN_NETNS=1 ip netns exec "$ns" bash "$0" "$@"
	rc=$?
	ip netns del "$ns"
	exit $rc
fi

. "$(dirname "$0")/../lib.sh"
tw_need_gate
T=$(tw_tmpdir)
G=192.0.2.1

# ---- peers ---------------------------------------------------------------
sh "$TW_PEERS/dns.sh" start "$T/dns" 5353 127.0.0.1 >/dev/null 2>&1
tw_cleanup_add "sh '$TW_PEERS/dns.sh' stop '$T/dns'"
tw_check "unbound serves the test zones" tw_wait_port 127.0.0.1 5353 10
tw_backend_start be 26026 proxy >/dev/null
sh "$TW_PEERS/redis.sh" start "$T/redis" 6390 >/dev/null 2>&1
tw_cleanup_add "sh '$TW_PEERS/redis.sh' stop '$T/redis'"
tw_check "redis-server listens" tw_wait_port 127.0.0.1 6390 10

common="backend=127.0.0.1:26026 resolver=127.0.0.1:5353 dns_timeout=1s
 dnsbl_sites=bl.test=127.0.0.[2..11]*3,wl.test*-5 dnsbl_threshold=3 dnswl_threshold=-1
 greylist_action=enforce greylist_delay=2s greylist_awl_count=0 pregreet_action=enforce pregreet_wait=1s
 spf_fail=reject deny=192.0.2.70 allow=192.0.2.77 received_spf_header=yes"
# shellcheck disable=SC2086
tw_gate_conf "$T/gate.conf" listen=$G:25025,[2001:db8::1]:25025 $common \
	"rate_limit=msg 3/1m" "rate_limit[192.0.2.40/32]=conn 2/1m" \
	"rate_limit[192.0.2.41/32]=concurrency 1"
tw_start_gate "$T/gate.conf" gate >/dev/null

sw() { # sw CLIENT_IP FROM [swaks args...]
	c=$1 f=$2
	shift 2
	tw_swaks --server $G:25025 --local-interface "$c" --from "$f" --to user@example.test "$@"
}
expect() { # expect NAME ERE CLIENT FROM [args]
	n=$1 re=$2
	shift 2
	sw "$@"
	r=$(tw_swaks_reply)
	if echo "$r" | grep -Eq "^($re)"; then tw_ok "$n"; else
		tw_fail "$n" "expected /$re/, got \"$r\""
		tail -n 12 "$TW_TMP/swaks.out" | sed 's/^/    | /'
	fi
}

# ---- greylisting, then SPF pass delivered -----------------------------------
expect "first sight of a triplet: 451 4.7.1 greylisted" "451 4\.7\.1" 192.0.2.10 a@pass.spf.test
sleep 2.5
expect "retry after greylist_delay: 250 from the backend" "250 2\.0\.0 Ok: .*queued as" 192.0.2.10 a@pass.spf.test
tw_check "backend logged the real client 192.0.2.10" \
	tw_wait_file_grep "$T/be/maillog" 'client=[^ ]*\[192\.0\.2\.10\]' 5
tw_check "the greylisted message is in the mailbox" tw_wait_maildir "$T/be/mail/user" 1 10
tw_check "received_spf_header: the message carries Received-SPF: pass" \
	sh -c "grep -rh '^Received-SPF: pass .*client-ip=192.0.2.10' '$T/be/mail/user/new' | grep -q ."

# ---- LMDB state survives a gate restart -----------------------------------------
expect "restart: first sight greylisted" "451 4\.7\.1" 192.0.2.16 r16@pass.spf.test
tw_stop_gate gate >/dev/null 2>&1
tw_start_gate "$T/gate.conf" gate >/dev/null
sleep 2.5
expect "restart: the retry passes (the triplet survived in LMDB)" "250 2\.0\.0" 192.0.2.16 r16@pass.spf.test

# ---- SPF ---------------------------------------------------------------------
expect "SPF fail: 550 5.7.23 at MAIL" "550 5\.7\.23" 192.0.2.11 x@fail.spf.test
expect "SPF fail with exp=: the domain's explanation is quoted" \
	"550 5\.7\.23 .*192\.0\.2\.12 may not send for exp\.spf\.test" 192.0.2.12 x@exp.spf.test
expect "SPF softfail (log): not refused at MAIL, greylisted at RCPT" "451 4\.7\.1" 192.0.2.14 x@softfail.spf.test
tw_check "SPF decisions are logged with the session id" \
	tw_wait_file_grep "$T/gate.log" '^.* [0-9A-F]{10} policy stage=mail client=192\.0\.2\.11 check=spf verdict=reject' 3

# ---- DNSBL / DNSWL (screen, at connect) -------------------------------------
expect "DNSBL listed client: 554 5.7.1 at connect, TXT reason quoted" "554 5\.7\.1 .*bl\.test" 192.0.2.99 a@pass.spf.test
expect "DNSBL listed IPv6 client (nibble query): 554 5.7.1" "554 5\.7\.1" 2001:db8::99 a@pass.spf.test \
	--server "[2001:db8::1]:25025"
expect "hostile DNSBL answer (10.0.0.1) is not a listing" "451 4\.7\.1" 192.0.2.66 h66@pass.spf.test
expect "blocked-resolver code 127.255.255.254 is not a listing" "451 4\.7\.1" 192.0.2.67 h67@pass.spf.test
expect "DNSWL client skips greylisting" "250 2\.0\.0" 192.0.2.50 w50@pass.spf.test

# ---- pregreet -----------------------------------------------------------------
out=$(printf 'EHLO early.example\r\n' | timeout 5 nc -s 192.0.2.13 $G 25025)
if echo "$out" | grep -q '^554 5\.5\.1'; then tw_ok "a client that talks first: 554 5.5.1"; else
	tw_fail "a client that talks first: 554 5.5.1" "got: $out"; fi
expect "the screen keeps serving after a pregreet refusal" "451 4\.7\.1" 192.0.2.15 p15@pass.spf.test
sw 192.0.2.15 p15@pass.spf.test >/dev/null
if grep -q '^<-  220-' "$TW_TMP/swaks.out"; then
	tw_fail "a client that passed is not screened again" "got the 220- teaser again"
else tw_ok "a client that passed is not screened again"; fi

# ---- access lists ----------------------------------------------------------------
expect "deny list: 554 5.7.1 at connect" "554 5\.7\.1" 192.0.2.70 a@pass.spf.test
expect "allow list: no greylisting" "250 2\.0\.0" 192.0.2.77 a@pass.spf.test

# ---- rate limits ----------------------------------------------------------------------
expect "msg rate: 2nd message from the allowed client" "250 2\.0\.0" 192.0.2.77 a@pass.spf.test
expect "msg rate: 3rd message" "250 2\.0\.0" 192.0.2.77 a@pass.spf.test
expect "msg rate: 4th message in the window: 451 4.7.1" "451 4\.7\.1" 192.0.2.77 a@pass.spf.test
sw 192.0.2.40 a@pass.spf.test >/dev/null
sw 192.0.2.40 a@pass.spf.test >/dev/null
expect "per-network override conn 2/1m: 3rd connection 421 4.7.0" "421 4\.7\.0" 192.0.2.40 a@pass.spf.test
python3 - "$T/held1" <<'PY' &
import socket, sys, time
s = socket.socket(); s.bind(("192.0.2.41", 0)); s.connect(("192.0.2.1", 25025))
s.settimeout(10); buf = b""
while b"220 " not in buf:
    d = s.recv(1000)
    if not d: break
    buf += d
s.sendall(b"EHLO hold.example\r\n"); s.recv(1000)
open(sys.argv[1], "w").write("held\n"); time.sleep(6); s.close()
PY
holder=$!
# the session is held once the gate answered its EHLO (not after a guessed sleep)
tw_wait_file_grep "$T/held1" held 15 || tw_fail "concurrency 1: the holder got its EHLO reply" "no reply within 15 s"
expect "concurrency 1: a second session while one is open gets 421 4.7.0" "421 4\.7\.0" 192.0.2.41 a@pass.spf.test
wait $holder 2>/dev/null

# ---- all workers busy: 421 4.3.2, nothing queued without bound ----------------
# shellcheck disable=SC2086
tw_gate_conf "$T/busy.conf" listen=$G:25026 backend=127.0.0.1:26026 workers_min=1 workers_max=1 \
	pid_file="$T/busy.pid" store="lmdb:$T/busy.lmdb" spf_action=ignore
tw_start_gate "$T/busy.conf" busy >/dev/null
python3 - "$T/held2" <<'PY' &
import socket, sys, time
s = socket.socket(); s.bind(("192.0.2.42", 0)); s.connect(("192.0.2.1", 25026))
s.settimeout(10); s.recv(1000); s.sendall(b"EHLO hold.example\r\n"); s.recv(1000)
open(sys.argv[1], "w").write("held\n"); time.sleep(9); s.close()
PY
holder=$!
tw_wait_file_grep "$T/held2" held 15 || tw_fail "every worker busy: the holder got its EHLO reply" "no reply within 15 s"
t0=$(date +%s)
tw_swaks --server $G:25026 --local-interface 192.0.2.43 --from a@pass.spf.test --to user@example.test
r=$(tw_swaks_reply)
if echo "$r" | grep -q '^421 4\.3\.2'; then tw_ok "every worker busy: 421 4.3.2 from the screen"; else
	tw_fail "every worker busy: 421 4.3.2 from the screen" "got \"$r\""; fi
[ $(( $(date +%s) - t0 )) -le 6 ] && tw_ok "the refusal comes within the screen's bounded wait" ||
	tw_fail "the refusal comes within the screen's bounded wait" "took $(( $(date +%s) - t0 )) s"
wait $holder 2>/dev/null

# ---- Redis: two gates share greylisting state -----------------------------------
for p in 25027 25028; do
	# shellcheck disable=SC2086
	tw_gate_conf "$T/r$p.conf" listen=$G:$p $common pid_file="$T/r$p.pid" \
		store=redis://127.0.0.1:6390/3 pregreet_action=ignore
	tw_start_gate "$T/r$p.conf" "r$p" >/dev/null
done
tw_swaks --server $G:25027 --local-interface 192.0.2.60 --from a@pass.spf.test --to other@example.test
r=$(tw_swaks_reply)
echo "$r" | grep -q '^451 4\.7\.1' && tw_ok "redis store: gate A greylists the triplet" ||
	tw_fail "redis store: gate A greylists the triplet" "got \"$r\""
sleep 2.5
tw_swaks --server $G:25028 --local-interface 192.0.2.60 --from a@pass.spf.test --to other@example.test
r=$(tw_swaks_reply)
echo "$r" | grep -q '^250 2\.0\.0' && tw_ok "redis store: gate B lets the retry through" ||
	tw_fail "redis store: gate B lets the retry through" "got \"$r\""

tw_check "gate master still running" kill -0 "$(tw_gate_pid gate)"
tw_summary

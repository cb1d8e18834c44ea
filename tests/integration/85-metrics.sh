#!/bin/bash
# 85-metrics.sh — Prometheus metrics of the gate, the relay and the milter,
# scraped by a real Prometheus (tests/peers/prometheus.sh, 1 s interval).
# Runs in its own network namespace with 192.0.2.0/24 on lo (as
# 35-gate-policy: SPF and DNSBL need clients that are not loopback).
# Peers: unbound (DNSBL bl.test), the Postfix backend (PROXY v2), the Postfix
# smarthost (STARTTLS + AUTH), smtp-sink, tailwart-milter, Prometheus.
#  - every endpoint's text passes `promtool check metrics`;
#  - Prometheus sees, through /api/v1/query, exactly what the test sent:
#    5 accepted, one greylist tempfail, one DNSBL refusal with zone="bl.test",
#    the milter's sessions and the gate's per-milter verdicts; the relay's
#    queue gauge goes up while the smarthost is down and back to 0 once it
#    delivered;
#  - a HUP keeps every count (generation 2, one successful reload);
#  - counters are exact under concurrency: smtp-source, 20 parallel sessions,
#    2,000 messages give exactly 2,000;
#  - bad requests to the metrics port (other paths, methods, a huge header,
#    a slow or silent client, more connections than slots) are answered or
#    dropped, and mail goes on meanwhile; the endpoint does not run as root.
if [ -z "${TW_IN_NETNS:-}" ]; then
	exec sh "$(dirname "$0")/../peers/netns.sh" "tw-metrics-$$" 192.0.2.1/24 -- \
		env TW_IN_NETNS=1 bash "$0" "$@"
fi

. "$(dirname "$0")/../lib.sh"
. "$TW_PEERS/relay_lib.sh"
tw_need_gate
rl_need_relay
T=$(tw_tmpdir)
G=192.0.2.1
MILTER=$TW_BUILD/tailwart-milter
P="$TW_PEERS/prometheus.sh"
command -v promtool >/dev/null || { tw_fail "promtool installed (package prometheus)"; tw_summary; exit 1; }

# ---- peers ---------------------------------------------------------------
sh "$TW_PEERS/dns.sh" start "$T/dns" 5353 127.0.0.1 >/dev/null 2>&1
tw_cleanup_add "sh '$TW_PEERS/dns.sh' stop '$T/dns'"
tw_check "unbound serves the test zones" tw_wait_port 127.0.0.1 5353 10
tw_backend_start be 26026 proxy >/dev/null

# tailwart-milter, its own policy file (nothing to decide but connect checks)
cat >"$T/milter.conf" <<EOF
store = lmdb:$T/milter.lmdb
resolver = 127.0.0.1:5353
greylist_action = ignore
spf_action = ignore
milter_dkim = no
user = nobody
milter_listen = inet:28891@127.0.0.1
milter_metrics_listen = 127.0.0.1:9127
EOF
"$MILTER" -f -c "$T/milter.conf" >>"$T/milter.log" 2>&1 </dev/null &
mpid=$!
tw_cleanup_add "kill -TERM $mpid 2>/dev/null; sleep 0.5; kill -KILL $mpid 2>/dev/null"
tw_check "tailwart-milter listens (milter and metrics)" sh -c \
	"i=0; while ! nc -z 127.0.0.1 9127 || ! nc -z 127.0.0.1 28891; do i=\$((i+1)); [ \$i -gt 50 ] && exit 1; sleep 0.2; done"

common="backend=127.0.0.1:26026 resolver=127.0.0.1:5353 dns_timeout=1s
 dnsbl_sites=bl.test=127.0.0.[2..11]*3,wl.test*-5 dnsbl_threshold=3
 greylist_action=enforce greylist_delay=60s greylist_awl_count=0 spf_fail=reject allow=192.0.2.77"
# shellcheck disable=SC2086
tw_gate_conf "$T/gate.conf" listen=$G:25025 $common metrics_listen=127.0.0.1:9125 \
	milters=inet:127.0.0.1:28891
tw_start_gate "$T/gate.conf" gate >/dev/null

# the relay, its smarthost down at first (so the queue fills)
export SMARTHOST_PASSWORD='s3cret#pw'
rl_smarthost_start sh 27101 || { tw_fail "smarthost start"; tw_summary; exit 1; }
rl_smarthost_stop sh
rl_conf "$T/relay.conf" "listen=127.0.0.1:27100" "smarthost=[localhost]:27101" \
	"metrics_listen=127.0.0.1:9126" "connect_timeout=2s"
rl_start "$T/relay.conf" || { tw_fail "relay start"; tw_summary; exit 1; }

sh "$P" start "$T/prom" 9090 gate=127.0.0.1:9125 relay=127.0.0.1:9126 milter=127.0.0.1:9127 ||
	{ tw_fail "prometheus start"; tw_summary; exit 1; }
tw_cleanup_add "sh '$P' stop '$T/prom'"

# promq_is NAME EXPR VALUE [SECS]: Prometheus answers VALUE for EXPR
promq_is() {
	n=$1 e=$2 want=$3 secs=${4:-20}
	i=0
	while [ $i -lt $((secs * 2)) ]; do
		got=$(sh "$P" query "$T/prom" "$e" 2>/dev/null)
		[ "$got" = "$want" ] && { tw_ok "$n"; return 0; }
		sleep 0.5
		i=$((i + 1))
	done
	tw_fail "$n" "query $e: expected $want, got \"$got\""
	return 1
}
# scrape PORT: the endpoint's text
scrape() { curl -fsS --max-time 5 "http://127.0.0.1:$1/metrics"; }
# value PORT SERIES: one sample's value from the endpoint (exact match)
value() { scrape "$1" | awk -v s="$2" '$1 == s { print $2 }'; }

sw() { # sw CLIENT_IP [swaks args...]
	c=$1
	shift
	tw_swaks --server $G:25025 --local-interface "$c" --from a@pass.spf.test --to user@example.test "$@"
}

# ---- mail through the gate -----------------------------------------------
for i in 1 2 3 4 5; do sw 192.0.2.77 >/dev/null; done
sw 192.0.2.10 >/dev/null
tw_check "greylisted client gets 451 4.7.1" sh -c "grep -q '^<[-*]*  *451 4\.7\.1' '$T/swaks.out'"
sw 192.0.2.99 >/dev/null
tw_check "DNSBL-listed client gets 554 5.7.1" sh -c "grep -q '^<[-*]*  *554 5\.7\.1' '$T/swaks.out'"
tw_check "5 messages in the backend's mailbox" tw_wait_maildir "$T/be/mail/user" 5 20

promq_is "prometheus: accepted = 5" 'tailwart_gate_messages_total{result="accepted"}' 5
promq_is "prometheus: one greylist tempfail (new triplet)" 'tailwart_gate_greylist_total{result="new"}' 1
promq_is "prometheus: greylist decision counted as tempfail" \
	'tailwart_gate_policy_decisions_total{check="greylist",verdict="tempfail"}' 1
promq_is "prometheus: one DNSBL refusal" 'tailwart_gate_connections_refused_total{reason="dnsbl"}' 1
promq_is "prometheus: the listing carries zone=\"bl.test\"" 'tailwart_gate_dnsbl_listings_total{zone="bl.test"}' 1
promq_is "prometheus: 7 connections accepted" 'tailwart_gate_connections_accepted_total' 7
promq_is "prometheus: MAIL answered 2xx 6 times" 'tailwart_gate_commands_total{verb="MAIL",class="2xx"}' 6
promq_is "prometheus: the milter saw 6 sessions" 'tailwart_milter_sessions_total' 6
promq_is "prometheus: per-milter verdicts (continue at each stage)" \
	'sum(tailwart_gate_milter_verdicts_total{milter="inet:127.0.0.1:28891",verdict="continue"}) > bool 10' 1
promq_is "prometheus: greylist tempfail ratio (the sample alert's expression)" \
	'sum(tailwart_gate_greylist_total{result=~"new|early"}) / sum(tailwart_gate_commands_total{verb="RCPT"})' 0.16666666666666666

for p in 9125 9126 9127; do
	scrape $p >"$T/m$p.txt" 2>&1
	tw_check "promtool check metrics on :$p" sh -c "promtool check metrics <'$T/m$p.txt'"
done
tw_check "docs/prometheus: promtool check config (with the rules)" \
	promtool check config "$TW_ROOT/docs/prometheus/prometheus.yml"
tw_check "docs/prometheus: promtool test rules (the alerts fire as documented)" \
	sh -c "cd '$TW_ROOT/docs/prometheus' && promtool test rules tailwart.rules.test.yml"
tw_check "every family has # HELP and # TYPE" sh -c \
	"for f in '$T'/m91*.txt; do [ \$(grep -c '^# HELP' \$f) = \$(grep -c '^# TYPE' \$f) ] || exit 1; done"

# ---- the relay: queue up while the smarthost is down, back to 0 after -------
for i in 1 2 3; do
	tw_swaks --server 127.0.0.1:27100 --from s@example.test --to user@example.test >/dev/null
done
promq_is "prometheus: relay received 3" 'tailwart_relay_messages_received_total' 3
promq_is "prometheus: 3 messages in the queue while the smarthost is down" \
	'sum(tailwart_relay_queue_messages{state=~"active|deferred"})' 3
promq_is "prometheus: connect errors counted" 'tailwart_relay_smarthost_errors_total{kind="connect"} > bool 0' 1
rl_smarthost_start sh 27101 || tw_fail "smarthost restart"
tw_check "3 messages reach the smarthost" tw_wait_maildir "$T/sh/mail/user" 3 30
promq_is "prometheus: the relay's queue gauge is back to 0" 'sum(tailwart_relay_queue_messages)' 0
promq_is "prometheus: 3 recipients delivered" 'tailwart_relay_recipients_total{result="delivered"}' 3
promq_is "prometheus: oldest age back to 0" 'tailwart_relay_queue_oldest_age_seconds' 0

# ---- HUP keeps the counts ---------------------------------------------------
kill -HUP "$(tw_gate_pid gate)"
promq_is "after HUP: config generation 2" 'tailwart_gate_config_generation' 2
promq_is "after HUP: one successful reload" 'tailwart_gate_reloads_total{result="ok"}' 1
tw_check "after HUP: accepted is still 5" sh -c \
	"[ \"\$(curl -fsS http://127.0.0.1:9125/metrics | awk '\$1 == \"tailwart_gate_messages_total{result=\\\"accepted\\\"}\" { print \$2 }')\" = 5 ]"
sw 192.0.2.77 >/dev/null
promq_is "after HUP: the next message counts on (6)" 'tailwart_gate_messages_total{result="accepted"}' 6

# ---- exact under concurrency: 20 sessions x 100 messages ---------------------
TW_SINK_DIR=$T sh "$TW_PEERS/sink.sh" start 26099 >/dev/null
tw_cleanup_add "TW_SINK_DIR='$T' sh '$TW_PEERS/sink.sh' stop 26099"
tw_gate_conf "$T/flood.conf" listen=127.0.0.1:25031 backend=127.0.0.1:26099 backend_handoff=none \
	workers_min=24 workers_max=40 allow=127.0.0.1 metrics_listen=127.0.0.1:9128 \
	pid_file="$T/flood.pid" store="lmdb:$T/flood.lmdb"
tw_start_gate "$T/flood.conf" flood >/dev/null
sleep 1
timeout 120 smtp-source -d -s 20 -m 2000 -f a@example.test -t user@example.test 127.0.0.1:25031 \
	>"$T/smtp-source.out" 2>&1
tw_check "smtp-source finished (20 sessions, 2000 messages)" test $? -eq 0
sleep 1
a=$(value 9128 'tailwart_gate_messages_total{result="accepted"}')
[ "$a" = 2000 ] && tw_ok "exactly 2000 messages accepted counted" ||
	tw_fail "exactly 2000 messages accepted counted" "got $a"
a=$(value 9128 'tailwart_gate_commands_total{verb="DATA",class="2xx"}')
[ "$a" = 2000 ] && tw_ok "exactly 2000 DATA 2xx counted" || tw_fail "exactly 2000 DATA 2xx counted" "got $a"
a=$(value 9128 'tailwart_gate_sessions_total{outcome="quit"}')
[ "$a" = 20 ] && tw_ok "exactly 20 sessions counted" || tw_fail "exactly 20 sessions counted" "got $a"
a=$(value 9128 'tailwart_gate_transaction_seconds_count{result="accepted"}')
[ "$a" = 2000 ] && tw_ok "transaction histogram count 2000" || tw_fail "transaction histogram count 2000" "got $a"

# the endpoint child dies with its master (kill -9): the port closes, and no
# worker holds the metrics socket either
kill -9 "$(tw_gate_pid flood)"
i=0
while tw_listening 127.0.0.1 9128 && [ $i -lt 30 ]; do sleep 0.2; i=$((i + 1)); done
tw_listening 127.0.0.1 9128 && tw_fail "kill -9 of the master: the metrics port closes" \
	"$(ss -Hltnp 'sport = :9128')" || tw_ok "kill -9 of the master: the metrics port closes"
tw_stop_gate flood >/dev/null 2>&1

# ---- bad requests to the metrics port ---------------------------------------
python3 - "$T" >"$T/bad.out" 2>&1 <<'PY'
import socket, sys, time
def ask(data, wait=5):
    s = socket.create_connection(("127.0.0.1", 9125), timeout=wait)
    try:
        s.sendall(data)
    except OSError:
        pass
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except OSError:
        pass
    s.close()
    return out.split(b"\r\n", 1)[0].decode(errors="replace")
print("path", ask(b"GET /foo HTTP/1.1\r\nHost: x\r\n\r\n"))
print("root", ask(b"GET / HTTP/1.0\r\n\r\n"))
print("post", ask(b"POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nab"))
print("junk", ask(b"\x16\x03\x01garbage no spaces\r\n\r\n"))
print("huge", ask(b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * 20000 + b"\r\n\r\n") or "closed")
t = time.time()
s = socket.create_connection(("127.0.0.1", 9125))
s.sendall(b"GET /metr")
s.settimeout(10)
try:
    d = s.recv(100)
except OSError:
    d = b"?"
print("slow", "closed" if d == b"" else repr(d), round(time.time() - t))
held = [socket.create_connection(("127.0.0.1", 9125)) for _ in range(40)]
print("held", len(held))
sys.stdout.flush()
time.sleep(4.5)
for h in held:
    h.close()
print("ok", ask(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"))
PY
grep -q '^path HTTP/1.1 404' "$T/bad.out" && tw_ok "other path: 404" || tw_fail "other path: 404" "$(cat "$T/bad.out")"
grep -q '^root HTTP/1.1 404' "$T/bad.out" && tw_ok "/: 404" || tw_fail "/: 404" "$(cat "$T/bad.out")"
grep -q '^post HTTP/1.1 405' "$T/bad.out" && tw_ok "POST: 405" || tw_fail "POST: 405" "$(cat "$T/bad.out")"
grep -q '^junk HTTP/1.1 400' "$T/bad.out" && tw_ok "garbage request line: 400" || tw_fail "garbage request line: 400" "$(cat "$T/bad.out")"
grep -Eq '^huge (HTTP/1.1 431|closed)' "$T/bad.out" && tw_ok "20 KB header: 431 or closed" || tw_fail "20 KB header: 431 or closed" "$(cat "$T/bad.out")"
grep -Eq '^slow closed [2-4]$' "$T/bad.out" && tw_ok "slow request dropped after ~3 s" || tw_fail "slow request dropped after ~3 s" "$(cat "$T/bad.out")"
grep -q '^ok HTTP/1.1 200' "$T/bad.out" && tw_ok "after 40 idle connections: /metrics answers" || tw_fail "after 40 idle connections: /metrics answers" "$(cat "$T/bad.out")"
# mail while the metrics port is being abused
python3 -c '
import socket, time
h = [socket.create_connection(("127.0.0.1", 9125)) for _ in range(30)]
time.sleep(6)' &
abuser=$!
sleep 0.5
sw 192.0.2.77 >/dev/null
r=$(tw_swaks_reply)
echo "$r" | grep -q '^250 2\.0\.0' && tw_ok "mail accepted while the metrics port is flooded" ||
	tw_fail "mail accepted while the metrics port is flooded" "$r"
wait $abuser 2>/dev/null

# ---- privileges ------------------------------------------------------------------
users=$(ss -Hltnp 'sport = :9125' | grep -o 'pid=[0-9]*' | cut -d= -f2 |
	while read -r p; do awk '/^Uid:/ { print $2 }' "/proc/$p/status"; done | sort -u | tr '\n' ' ')
case " $users" in
*" $(id -u nobody) "*) tw_ok "the gate's endpoint process runs as nobody (uids: $users)" ;;
*) tw_fail "the gate's endpoint process runs as nobody" "uids holding :9125: $users" ;;
esac
tw_check "gate.conf typo in metrics_listen is a file:line error" sh -c \
	"printf 'backend = 127.0.0.1:1\nmetrics_listen = nowhere\n' >'$T/bad.conf'; '$TW_GATE' -n -c '$T/bad.conf' 2>&1 | grep -q 'bad.conf:2: metrics_listen'"

tw_summary

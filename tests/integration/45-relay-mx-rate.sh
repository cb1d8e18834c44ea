#!/bin/bash
# 45-relay-mx-rate: `smarthost = host:port` resolves MX, then A/AAAA through
# the configured resolver (a private unbound on loopback); a DNS failure
# defers (never bounces) and the next smarthost in the list takes over
# (failover); rate_limit paces deliveries; AUTH LOGIN when the smarthost
# offers only LOGIN.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # tests/run uses sh
. "$(dirname "$0")/../lib.sh"
. "$TW_PEERS/relay_lib.sh"
rl_need_relay

T=$(tw_tmpdir)
SH=27601
DNS=27603
FP=27604
command -v unbound >/dev/null || { tw_fail "unbound installed"; tw_summary; exit 1; }
rl_smarthost_start sh $SH || { tw_fail "smarthost start"; tw_summary; exit 1; }
MD=$T/sh/mail
qid() { sed -n 's/.*queued as \([0-9A-F]\{16\}\).*/\1/p' "$TW_TMP/swaks.out" | tail -n 1; }

mkdir -p "$T/dns"
cat >"$T/dns/unbound.conf" <<CF
server:
	interface: 127.0.0.1
	port: $DNS
	do-ip6: no
	do-daemonize: yes
	pidfile: "$T/dns/unbound.pid"
	username: ""
	chroot: ""
	directory: "$T/dns"
	logfile: "$T/dns/unbound.log"
	use-syslog: no
	access-control: 127.0.0.0/8 allow
	module-config: "iterator"
	do-not-query-localhost: no
	local-zone: "." static
	local-data: "relay.test. 300 IN MX 20 backup.relay.test."
	local-data: "relay.test. 300 IN MX 10 localhost."
	local-data: "backup.relay.test. 300 IN A 127.0.0.1"
	local-data: "localhost. 300 IN A 127.0.0.1"
	local-data: "nomx.relay.test. 300 IN A 127.0.0.1"
CF
unbound -c "$T/dns/unbound.conf" || { tw_fail "unbound start"; tw_summary; exit 1; }
tw_cleanup_add "kill \$(cat '$T/dns/unbound.pid') 2>/dev/null"
tw_wait_port 127.0.0.1 $DNS 10 || tw_fail "unbound listening"

# MX lookup through the private resolver
rl_conf "$T/mx.conf" "listen=127.0.0.1:27600" "smarthost=relay.test:$SH" \
	"resolver=127.0.0.1:$DNS" "spool_dir=$T/spool-mx"
rl_start "$T/mx.conf" mx || { tw_fail "relay start"; tw_summary; exit 1; }
tw_swaks_expect "accepted (MX)" 250 --server 127.0.0.1:27600 \
	--from sender@example.test --to user@example.test --header "Subject: mx-1"
id=$(qid)
rl_log_wait mx "$id to=\"<user@example.test>\" relay=localhost\[127\.0\.0\.1\]:$SH .*status=sent" 20 &&
	tw_ok "MX lookup: delivered to the preferred exchanger" ||
	tw_fail "MX lookup: delivered" "$(tail -n 3 "$T/mx.log")"
rl_stop mx

# no MX: the name's own address (implicit MX), verified against the cert?
# (its name is not in the certificate: tls = encrypt here)
rl_conf "$T/nomx.conf" "listen=127.0.0.1:27605" "smarthost=nomx.relay.test:$SH" \
	"resolver=127.0.0.1:$DNS" "spool_dir=$T/spool-nomx" "tls=encrypt"
rl_start "$T/nomx.conf" nomx || { tw_fail "relay start"; tw_summary; exit 1; }
tw_swaks_expect "accepted (implicit MX)" 250 --server 127.0.0.1:27605 \
	--from sender@example.test --to user@example.test --header "Subject: mx-2"
id=$(qid)
rl_log_wait nomx "$id to=\"<user@example.test>\" relay=nomx\.relay\.test\[127\.0\.0\.1\]:$SH .*status=sent" 20 &&
	tw_ok "no MX: the A record is used" ||
	tw_fail "no MX: the A record is used" "$(tail -n 3 "$T/nomx.log")"
rl_stop nomx

# DNS failure defers and never bounces; with a second smarthost, failover
rl_conf "$T/dead.conf" "listen=127.0.0.1:27606" "smarthost=dead.relay.test:$SH" \
	"resolver=127.0.0.1:$DNS" "spool_dir=$T/spool-dead"
rl_start "$T/dead.conf" dead || { tw_fail "relay start"; tw_summary; exit 1; }
tw_swaks_expect "accepted (NXDOMAIN)" 250 --server 127.0.0.1:27606 \
	--from sender@example.test --to user@example.test --header "Subject: mx-dead"
id=$(qid)
if rl_log_wait dead "$id to=\"<user@example.test>\" relay=none .*attempts=2 status=deferred reply=\"4\.4\.1 MX lookup for dead\.relay\.test" 20; then
	tw_ok "DNS failure defers"
else
	tw_fail "DNS failure defers" "$(tail -n 3 "$T/dead.log")"
fi
grep -q 'status=bounced' "$T/dead.log" && tw_fail "DNS failure never bounces" ||
	tw_ok "DNS failure never bounces"
rl_stop dead
rl_conf "$T/dead.conf" "listen=127.0.0.1:27606" "smarthost=dead.relay.test:$SH, [localhost]:$SH" \
	"resolver=127.0.0.1:$DNS" "spool_dir=$T/spool-dead"
rl_start "$T/dead.conf" dead2 || { tw_fail "relay restart"; tw_summary; exit 1; }
rl_log_wait dead2 "$id to=\"<user@example.test>\" relay=localhost\[127\.0\.0\.1\]:$SH .*status=sent" 20 &&
	tw_ok "failover to the second smarthost (queued message kept across restart)" ||
	tw_fail "failover to the second smarthost" "$(tail -n 3 "$T/dead2.log")"
rl_stop dead2

# rate_limit = 2/1s: 10 messages take about 4 s or more to leave (the upper
# bound only catches a stuck queue: swaks itself is slow on a loaded machine)
rl_conf "$T/rate.conf" "listen=127.0.0.1:27607" "smarthost=[localhost]:$SH" \
	"spool_dir=$T/spool-rate" "rate_limit=2/1s"
rl_start "$T/rate.conf" rate || { tw_fail "relay start"; tw_summary; exit 1; }
n0=$(tw_maildir_count "$MD/other")
for i in 1 2 3 4 5 6 7 8 9 10; do
	tw_swaks --server 127.0.0.1:27607 --from sender@example.test --to other@example.test \
		--header "Subject: rate-$i" || tw_fail "rate message $i"
done
tw_wait_maildir "$MD/other" $((n0 + 10)) 30 && tw_ok "10 paced messages delivered" ||
	tw_fail "10 paced messages delivered"
first=$(grep 'status=sent' "$T/rate.log" | head -n 1 | cut -c12-23)
last=$(grep 'status=sent' "$T/rate.log" | tail -n 1 | cut -c12-23)
span=$(python3 -c "import sys
def s(t): h,m,x=t.split(':'); return int(h)*3600+int(m)*60+float(x)
print('%.1f' % (s('$last') - s('$first')))")
echo "# rate_limit=2/1s: 10 messages sent over ${span}s (first to last delivery)"
if python3 -c "import sys; sys.exit(0 if 3.0 <= $span <= 25.0 else 1)"; then
	tw_ok "rate_limit paces deliveries (${span}s for 10 at 2/s)"
else
	tw_fail "rate_limit paces deliveries" "10 messages in ${span}s"
fi
rl_stop rate

# AUTH LOGIN (the smarthost offers only LOGIN; tls = none: plain on loopback)
: >"$T/fake.log"
python3 "$TW_PEERS/relay_badsmarthost.py" login $FP "$T/fake.log" 60 &
FAKE=$!
tw_cleanup_add "kill $FAKE 2>/dev/null"
tw_wait_port 127.0.0.1 $FP 10
rl_conf "$T/login.conf" "listen=127.0.0.1:27608" "smarthost=[127.0.0.1]:$FP" \
	"spool_dir=$T/spool-login" "tls=none" "tls_ca="
rl_start "$T/login.conf" login || { tw_fail "relay start"; tw_summary; exit 1; }
tw_swaks_expect "accepted (LOGIN)" 250 --server 127.0.0.1:27608 \
	--from sender@example.test --to user@example.test --header "Subject: login-1"
id=$(qid)
if rl_log_wait login "$id to=\"<user@example.test>\" .*status=sent" 20 && grep -q '^auth ok' "$T/fake.log"; then
	tw_ok "AUTH LOGIN"
else
	tw_fail "AUTH LOGIN" "$(tail -n 3 "$T/login.log"; tail -n 5 "$T/fake.log")"
fi
rl_stop login
kill $FAKE 2>/dev/null
wait $FAKE 2>/dev/null
tw_summary

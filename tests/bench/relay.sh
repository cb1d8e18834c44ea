#!/bin/bash
# bench/relay.sh — tailwart-relay against Postfix as a relayhost client,
# same sink, same run, same machine (issue 4's benchmark).
#
#   (r) smtp-source -> tailwart-relay (spool, fsync) -> smtp-sink
#   (p) smtp-source -> Postfix (relayhost = [sink])   -> smtp-sink
#
# For each: "accepted" = messages/s from the first connection to the last
# 250 (smtp-source's wall time: everything is on disk when it ends), and
# "delivered" = messages/s until the sink has seen all of them (counted in
# the relay's and Postfix's logs). Plain SMTP both ways (no TLS, no DKIM),
# 4 outbound connections each (Postfix: default_destination_concurrency_limit
# = 4). Bounded: BENCH_MSGS (default 2000), 20 sessions, 1 KiB messages.
# Everything listens on 127.0.0.1 and is stopped at exit.
set -eu
cd "$(dirname "$0")/../.."
B=${TW_BUILD:-build}
MSGS=${BENCH_MSGS:-2000}
SESS=${BENCH_SESSIONS:-20}
SIZE=${BENCH_SIZE:-1024}
SINK_PORT=27901 RELAY_PORT=27902 PF_PORT=27903
D=$(mktemp -d /tmp/tailwart-relay-bench.XXXXXX)
chmod 755 "$D"
SINKPID="" RELAYPID=""

cleanup() {
	set +e
	if [ -n "$RELAYPID" ]; then
		kill "$RELAYPID" 2>/dev/null
		sleep 0.5
		pkill -KILL -g "$RELAYPID" 2>/dev/null
	fi
	[ -n "$SINKPID" ] && kill "$SINKPID" 2>/dev/null
	postfix -c "$D/pf/etc" stop >/dev/null 2>&1
	sleep 0.5
	[ -n "${BENCH_KEEP:-}" ] || rm -rf "$D"
	return 0
}
trap cleanup EXIT INT TERM

now() { date +%s.%N; }
rate() { python3 -c "print('%.0f' % ($1 / ($3 - $2)))"; }
wait_count() { # wait_count FILE ERE N SECS
	i=0
	while [ "$(grep -cE "$2" "$1" 2>/dev/null || true)" -lt "$3" ] && [ $i -lt $(($4 * 10)) ]; do
		i=$((i + 1)); sleep 0.1
	done
}

if ss -Hltn | grep -Eq "127\.0\.0\.1:($SINK_PORT|$RELAY_PORT|$PF_PORT) "; then
	echo "bench/relay.sh: a port in $SINK_PORT-$PF_PORT is in use" >&2
	exit 1
fi
/usr/sbin/smtp-sink -u postfix -c 127.0.0.1:$SINK_PORT 256 >/dev/null 2>&1 &
SINKPID=$!
sleep 0.5

# (r) the relay
cat >"$D/relay.conf" <<CF
listen = 127.0.0.1:$RELAY_PORT
spool_dir = $D/spool
smarthost = [127.0.0.1]:$SINK_PORT
tls = none
max_connections = 4
batch_size = 200
max_clients = 50
user = tailwart
hostname = bench.relay.test
CF
setsid "$B/tailwart-relay" -f -c "$D/relay.conf" >"$D/relay.log" 2>&1 </dev/null &
RELAYPID=$!
sleep 0.5
t0=$(now)
/usr/sbin/smtp-source -s "$SESS" -m "$MSGS" -l "$SIZE" -f a@bench.test -t b@bench.test \
	127.0.0.1:$RELAY_PORT
t1=$(now)
wait_count "$D/relay.log" 'status=sent' "$MSGS" 120
t2=$(now)
r_acc=$(rate "$MSGS" "$t0" "$t1")
r_del=$(rate "$(grep -c 'status=sent' "$D/relay.log")" "$t0" "$t2")

# (p) Postfix as a relayhost client
P=$D/pf
mkdir -p "$P/etc" "$P/queue" "$P/data"
chown postfix:postfix "$P/data"
: >"$P/maillog"
cat >"$P/etc/main.cf" <<CF
compatibility_level = 3.6
config_directory = $P/etc
queue_directory = $P/queue
data_directory = $P/data
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.postfix.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:$SINK_PORT
maillog_file = $P/maillog
maillog_file_prefixes = $P
syslog_name = bench-postfix
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
smtp_tls_security_level = none
alias_maps =
alias_database =
local_recipient_maps =
default_destination_concurrency_limit = 4
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
in_flow_delay = 0
default_process_limit = 100
CF
cat >"$P/etc/master.cf" <<CF
127.0.0.1:$PF_PORT inet n  -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
CF
postfix -c "$P/etc" start >/dev/null 2>&1
sleep 1
t0=$(now)
/usr/sbin/smtp-source -s "$SESS" -m "$MSGS" -l "$SIZE" -f a@bench.test -t b@bench.test \
	127.0.0.1:$PF_PORT
t1=$(now)
# postlogd may drop lines under load: count what is left in the queue
i=0
while [ "$(find "$P/queue/maildrop" "$P/queue/incoming" "$P/queue/active" "$P/queue/deferred" -type f 2>/dev/null | wc -l)" -gt 0 ] && [ $i -lt 1200 ]; do
	i=$((i + 1)); sleep 0.1
done
t2=$(now)
left=$(find "$P/queue/deferred" -type f 2>/dev/null | wc -l)
p_acc=$(rate "$MSGS" "$t0" "$t1")
p_del=$(rate "$((MSGS - left))" "$t0" "$t2")

echo "relay bench: $MSGS messages of $SIZE bytes, $SESS sessions, 4 outbound connections"
printf '%-34s %10s %12s\n' "" "accepted/s" "delivered/s"
printf '%-34s %10s %12s\n' "tailwart-relay -> smtp-sink" "$r_acc" "$r_del"
printf '%-34s %10s %12s\n' "Postfix relayhost -> smtp-sink" "$p_acc" "$p_del"
echo "$r_del $p_del" | awk '{ printf "ratio delivered relay/Postfix = %.2f (%s / %s msg/s, target >= 1.2)\n", ($2 > 0 ? $1/$2 : 0), $1, $2 }'

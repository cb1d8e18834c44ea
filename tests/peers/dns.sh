#!/bin/sh
# dns.sh - a private unbound on loopback serving the policy test zones.
#
#   tests/peers/dns.sh start DIR [PORT] [ADDR]   (default 5353, 127.0.0.1)
#   tests/peers/dns.sh stop DIR
#
# It never recurses (local-zone "." static): every name outside the test
# data is NXDOMAIN. Zones:
#   spf.test.   SPF records: pass, fail, softfail, neutral, none, include
#               chains, too many lookups (flat and nested), void lookups,
#               mx, ptr, exp=, syntax error, two records, ip6, helo.
#   bl.test.    DNSBL: 192.0.2.99 and 2001:db8::99 listed (127.0.0.2 + TXT),
#               127.0.0.2 test point, 192.0.2.66 -> 10.0.0.1 (hostile),
#               192.0.2.67 -> 127.255.255.254 (blocked-resolver code),
#               192.0.2.68 -> 127.0.0.200 (outside the filter).
#   wl.test.    DNSWL: 192.0.2.50 -> 127.0.10.2.
#   2.0.192.in-addr.arpa.  PTR 192.0.2.20 -> mail.spf.test.
# The process runs as root without chroot, daemonized, pid in DIR.
# TW_DNS_EXTRA=FILE: more server-clause lines (local-data ...) included.
# $PEER_DNS_ALLOW (default 127.0.0.0/8): the clients it answers besides
# 192.0.2.0/24 (a CIDR; 0.0.0.0/0 for a resolver inside a container).
set -eu

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR [PORT] [ADDR]" >&2; exit 2; }

stop() {
	[ -f "$dir/unbound.pid" ] || return 0
	pid=$(cat "$dir/unbound.pid" 2>/dev/null || true)
	case "$pid" in ''|*[!0-9]*) rm -f "$dir/unbound.pid"; return 0 ;; esac
	kill "$pid" 2>/dev/null || true
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -9 "$pid" 2>/dev/null || true
	rm -f "$dir/unbound.pid"
}

if [ "$cmd" = stop ]; then
	stop
	exit 0
fi
[ "$cmd" = start ] || { echo "usage: $0 start|stop DIR [PORT] [ADDR]" >&2; exit 2; }

port=${3:-5353}
addr=${4:-127.0.0.1}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
conf="$dir/unbound.conf"

extra=
[ -z "${TW_DNS_EXTRA:-}" ] || extra="include: \"$TW_DNS_EXTRA\""

# 63-char filler strings for a long TXT record (several character-strings)
f63=$(printf 'x%.0s' $(seq 1 63))

{
cat <<EOF2
server:
	interface: $addr
	port: $port
	do-ip6: no
	do-daemonize: yes
	pidfile: "$dir/unbound.pid"
	username: ""
	chroot: ""
	directory: "$dir"
	logfile: "$dir/unbound.log"
	use-syslog: no
	verbosity: 1
	so-rcvbuf: 4m
	so-sndbuf: 4m
	access-control: ${PEER_DNS_ALLOW:-127.0.0.0/8} allow
	access-control: 192.0.2.0/24 allow
	module-config: "iterator"
	do-not-query-localhost: no
	local-zone: "." static
	local-zone: "test." static
	local-zone: "2.0.192.in-addr.arpa." static
	local-zone: "8.b.d.0.1.0.0.2.ip6.arpa." static

	# ---- SPF ----
	local-data: 'pass.spf.test. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"'
	local-data: 'fail.spf.test. 300 IN TXT "v=spf1 ip4:198.51.100.1 -all"'
	local-data: 'softfail.spf.test. 300 IN TXT "v=spf1 ip4:198.51.100.1 ~all"'
	local-data: 'neutral.spf.test. 300 IN TXT "v=spf1 ?all"'
	local-data: 'none.spf.test. 300 IN A 192.0.2.1'
	local-data: 'none.spf.test. 300 IN TXT "just some text"'
	local-data: 'pass6.spf.test. 300 IN TXT "v=spf1 ip6:2001:db8::/32 -all"'
	local-data: 'helo.spf.test. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"'
	local-data: 'multi.spf.test. 300 IN TXT "v=spf1 -all"'
	local-data: 'multi.spf.test. 300 IN TXT "v=spf1 +all"'
	local-data: 'syntax.spf.test. 300 IN TXT "v=spf1 ip4:999.1.1.1 -all"'
	local-data: 'exp.spf.test. 300 IN TXT "v=spf1 ip4:198.51.100.1 -all exp=why.spf.test"'
	local-data: 'why.spf.test. 300 IN TXT "%{i} may not send for %{d}, see https://spf.test/why"'
	local-data: 'expmacro.spf.test. 300 IN TXT "v=spf1 ip4:198.51.100.1 -all exp=x.%{d}"'
	local-data: 'x.expmacro.spf.test. 300 IN TXT "Rejected %{i} for %{d}"'
	local-data: 'exp10.spf.test. 300 IN TXT "v=spf1 a:h1.spf.test a:h2.spf.test a:h3.spf.test a:h4.spf.test a:h5.spf.test a:h6.spf.test a:h7.spf.test a:h8.spf.test a:h9.spf.test a:h10.spf.test -all exp=why.spf.test"'
	local-data: 'mx.spf.test. 300 IN TXT "v=spf1 mx -all"'
	local-data: 'mx.spf.test. 300 IN MX 10 mail.spf.test.'
	local-data: 'mail.spf.test. 300 IN A 192.0.2.20'
	local-data: 'ptr.spf.test. 300 IN TXT "v=spf1 ptr:spf.test -all"'
	local-data: '20.2.0.192.in-addr.arpa. 300 IN PTR mail.spf.test.'
	local-data: 'long.spf.test. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 " "ip4:198.51.100.0/24 " "-all"'
	local-data: 'huge.spf.test. 300 IN TXT "v=spf1 $f63" "$f63" "$f63" "$f63" "$f63" "$f63" "$f63" "$f63" " -all"'
	# include chain of 3: pass
	local-data: 'inc.spf.test. 300 IN TXT "v=spf1 include:inc1.spf.test -all"'
	local-data: 'inc1.spf.test. 300 IN TXT "v=spf1 include:inc2.spf.test -all"'
	local-data: 'inc2.spf.test. 300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"'
	# flat: 11 a: terms, all misses -> too many lookups
	local-data: 'flat.spf.test. 300 IN TXT "v=spf1 a:h1.spf.test a:h2.spf.test a:h3.spf.test a:h4.spf.test a:h5.spf.test a:h6.spf.test a:h7.spf.test a:h8.spf.test a:h9.spf.test a:h10.spf.test a:h11.spf.test ip4:192.0.2.0/24 -all"'
	# void lookups: three a: terms that do not exist
	local-data: 'void.spf.test. 300 IN TXT "v=spf1 a:nx1.spf.test a:nx2.spf.test a:nx3.spf.test ip4:192.0.2.0/24 -all"'
	local-data: 'void2.spf.test. 300 IN TXT "v=spf1 a:nx1.spf.test a:nx2.spf.test ip4:192.0.2.0/24 -all"'
	# recursion: includes itself
	local-data: 'loop.spf.test. 300 IN TXT "v=spf1 include:loop.spf.test -all"'
EOF2
i=1
while [ $i -le 11 ]; do
	echo "	local-data: 'h$i.spf.test. 300 IN A 203.0.113.$i'"
	i=$((i + 1))
done
# nested: deep -> d1 -> ... -> d11, the last one passes: 11 includes
echo "	local-data: 'deep.spf.test. 300 IN TXT \"v=spf1 include:d1.spf.test -all\"'"
i=1
while [ $i -le 10 ]; do
	echo "	local-data: 'd$i.spf.test. 300 IN TXT \"v=spf1 include:d$((i + 1)).spf.test -all\"'"
	i=$((i + 1))
done
echo "	local-data: 'd11.spf.test. 300 IN TXT \"v=spf1 ip4:192.0.2.0/24 -all\"'"
# nested but within limits: shallow -> d8 .. d11 (4 includes)
echo "	local-data: 'shallow.spf.test. 300 IN TXT \"v=spf1 include:d8.spf.test -all\"'"
cat <<EOF2

	# ---- DNSBL / DNSWL ----
	local-data: '99.2.0.192.bl.test. 600 IN A 127.0.0.2'
	local-data: '99.2.0.192.bl.test. 600 IN TXT "Listed by bl.test, see https://bl.test/q?ip=192.0.2.99"'
	local-data: '2.0.0.127.bl.test. 600 IN A 127.0.0.2'
	local-data: '2.0.0.127.bl.test. 600 IN TXT "test point"'
	local-data: '66.2.0.192.bl.test. 600 IN A 10.0.0.1'
	local-data: '67.2.0.192.bl.test. 600 IN A 127.255.255.254'
	local-data: '68.2.0.192.bl.test. 600 IN A 127.0.0.200'
	local-data: '9.9.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test. 600 IN A 127.0.0.3'
	local-data: '9.9.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test. 600 IN TXT "IPv6 listed"'
	local-data: '99.2.0.192.bl2.test. 600 IN A 127.0.0.4'
	local-data: '50.2.0.192.wl.test. 600 IN A 127.0.10.2'
	$extra

remote-control:
	control-enable: no
EOF2
} >"$conf"

stop
unbound-checkconf "$conf" >/dev/null
unbound -c "$conf"
i=0
while [ $i -lt 50 ]; do
	if [ -s "$dir/unbound.pid" ] && kill -0 "$(cat "$dir/unbound.pid")" 2>/dev/null; then
		exit 0
	fi
	sleep 0.1
	i=$((i + 1))
done
echo "dns.sh: unbound did not start, see $dir/unbound.log" >&2
exit 1

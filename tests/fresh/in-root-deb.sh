#!/bin/sh
# in-root-deb.sh - the package on a machine that never saw the source, run
# by fresh-check.sh as root inside a second fresh Debian 12 root holding
# /root/tailwart_*.deb and the test peers in /root/peers:
#   apt-get install ./tailwart_*.deb; what the package set up (user, state
#   and spool directories, conffiles, modes); then the packaged gate.conf and
#   smarthost.conf, with only the keys a loopback test must change replaced,
#   run by the packaged binaries with -f in front of a private Postfix
#   backend and smarthost (tests/peers), one message through each.
# Verdicts: tests/fresh/root-lib.sh.
set -u
. /root-lib.sh

# conf SRC DST KEY=VALUE...: SRC with each KEY's line (and continuation
# lines) replaced by KEY = VALUE
conf() {
	src=$1 dst=$2
	shift 2
	{
		awk -v keys="$*" '
			BEGIN { n = split(keys, kv, " "); for (i = 1; i <= n; i++) { split(kv[i], p, "="); drop[p[1]] = 1 } }
			/^[ \t]*#/ || /^[ \t]*$/ { print; next }
			/^[ \t]/ { if (!skip) print; next }
			{ k = $0; sub(/[ \t]*=.*/, "", k); skip = (k in drop); if (!skip) print }' "$src"
		for kv in "$@"; do
			echo "${kv%%=*} = ${kv#*=}"
		done
	} >"$dst"
}

export DEBIAN_FRONTEND=noninteractive
cd /root || exit 1
apt-get update -q || { fail "apt-get update" "exit $?"; exit 1; }
if apt-get install -y -q --no-install-recommends ./tailwart_*.deb; then
	ok "apt-get install ./tailwart_*.deb"
else
	fail "apt-get install ./tailwart_*.deb" "exit $?"
	exit 1
fi
check "programs in /usr/sbin" test -x /usr/sbin/tailwart-gate -a -x /usr/sbin/tailwart-relay -a -x /usr/sbin/tailwart-milter
check "system user tailwart" sh -c 'getent passwd tailwart | grep -q ":/usr/sbin/nologin$"'
check "/var/lib/tailwart owned by tailwart" test "$(stat -c %U:%G /var/lib/tailwart)" = tailwart:tailwart
check "/var/spool/tailwart owned by tailwart" test "$(stat -c %U:%G /var/spool/tailwart)" = tailwart:tailwart
check "smarthost.conf 0640 root:tailwart" test "$(stat -c '%a %U:%G' /etc/tailwart/smarthost.conf)" = "640 root:tailwart"
check "gate.conf and smarthost.conf are conffiles" sh -c \
	'dpkg-query -W -f="\${Conffiles}" tailwart | grep -q "/etc/tailwart/gate.conf" &&
	 dpkg-query -W -f="\${Conffiles}" tailwart | grep -q "/etc/tailwart/smarthost.conf"'
check "units and manual pages installed" test -f /lib/systemd/system/tailwart-gate.service \
	-a -f /lib/systemd/system/tailwart-.service.d/sandbox.conf -a -f /usr/share/man/man8/tailwart-gate.8.gz
check "packaged configs pass -n" sh -c \
	'tailwart-gate -n -c /etc/tailwart/gate.conf >/dev/null &&
	 STALWART_SMARTHOST=x SMARTHOST_USER=x SMARTHOST_PASSWORD=x tailwart-relay -n -c /etc/tailwart/smarthost.conf >/dev/null'

# the test peers' packages (what deps.sh would add; not tailwart's)
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "postfix postfix/mailname string localhost" | debconf-set-selections
if apt-get install -y -q --no-install-recommends postfix swaks sasl2-bin \
	libsasl2-modules openssl iproute2 procps ca-certificates; then
	ok "the peers' packages installed"
else
	fail "the peers' packages installed" "apt-get exit $?"
	exit 1
fi
sh peers/backend.sh start /tmp/backend 2626 proxy || { fail "backend" "did not start"; exit 1; }
sh peers/certs.sh /tmp/tls >/dev/null
sh peers/smarthost.sh start /tmp/smarthost 2587 >/dev/null || { fail "smarthost" "did not start"; exit 1; }

# the packaged configs: loopback addresses, the test certificate and CA;
# the store, the spool, the user and the pid file stay as packaged
conf /etc/tailwart/gate.conf /tmp/gate.conf listen=127.0.0.1:2525 \
	backend=127.0.0.1:2626 hostname=mx.example.test tls_cert=/tmp/tls/cert.pem \
	tls_key=/tmp/tls/key.pem greylist_action=log
conf /etc/tailwart/smarthost.conf /tmp/relay.conf tls_ca=/tmp/smarthost/ca.pem \
	hostname=relay.example.test
mkdir -p /run/tailwart # the unit's RuntimeDirectory
STALWART_SMARTHOST="[localhost]:2587"
SMARTHOST_USER=$(cat /tmp/smarthost/user)
SMARTHOST_PASSWORD=$(cat /tmp/smarthost/password)
export STALWART_SMARTHOST SMARTHOST_USER SMARTHOST_PASSWORD
setsid tailwart-gate -f -c /tmp/gate.conf >/tmp/gate.log 2>&1 </dev/null &
setsid tailwart-relay -f -c /tmp/relay.conf >/tmp/relay.log 2>&1 </dev/null &
if wait_port 2525; then ok "packaged gate started (-f)"; else
	fail "packaged gate started (-f)" "$(tail -n 5 /tmp/gate.log)"; fi
if wait_port 10026; then ok "packaged relay started (-f)"; else
	fail "packaged relay started (-f)" "$(tail -n 5 /tmp/relay.log)"; fi

deliver "through the packaged gate" /tmp/backend/mail/user 20 --server 127.0.0.1:2525 \
	--from you@example.org --to user@example.test --local-interface 127.0.0.9
check "the backend saw the client's address (PROXY v2)" \
	grep -q 'client=unknown\[127\.0\.0\.9\]' /tmp/backend/maillog
check "the gate's store is the packaged one" test -e /var/lib/tailwart/gate.lmdb
deliver "through the packaged relay (spool /var/spool/tailwart)" /tmp/smarthost/mail/other 60 \
	--server 127.0.0.1:10026 --from user@example.test --to other@example.test
cat /tmp/gate.log /tmp/relay.log

#!/bin/sh
# in-root.sh - what a new user does first, run by fresh-check.sh as root
# inside the fresh Debian 12 root: the README's `make run` in a clean clone,
# one message through the gate and one through the relay (the commands
# make run prints), `make stop`, `make check-unit`.
# Verdicts: tests/fresh/root-lib.sh.
set -u
RUN=/tmp/tailwart-run
. /root-lib.sh

cd /root/tailwart || { fail "clone" "no /root/tailwart"; exit 1; }
if make run; then
	ok "make run"
else
	fail "make run" "exit status $? (first command of the README)"
	exit 1
fi

deliver "through the gate" $RUN/backend/mail/user 20 --server 127.0.0.1:2525 \
	--from you@example.org --to user@example.test --local-interface 127.0.0.9
check "the backend saw the client's address (PROXY v2)" \
	grep -q 'client=unknown\[127\.0\.0\.9\]' $RUN/backend/maillog
deliver "through the relay" $RUN/smarthost/mail/other 60 --server 127.0.0.1:10026 \
	--from user@example.test --to other@example.test
tail -n 20 $RUN/relay.log

if make stop; then ok "make stop"; else fail "make stop" "exit status $?"; fi
if pgrep -x tailwart-gate >/dev/null || pgrep -x tailwart-relay >/dev/null; then
	fail "make stop stopped the gate and the relay" "still running: $(pgrep -a tailwart)"
else
	ok "make stop stopped the gate and the relay"
fi

make check-unit >/check-unit.log 2>&1
st=$?
cat /check-unit.log
last=$(tail -n 1 /check-unit.log)
case "$last" in
*" passed, 0 failed") [ $st -eq 0 ] && ok "make check-unit: $last" ||
	fail "make check-unit" "exit status $st" ;;
*) fail "make check-unit" "exit status $st, last line: $last" ;;
esac

# the Debian package, built from the clone (fresh-check.sh installs it in a
# second root)
[ -d debian ] || exit 0
if make deb >/deb.log 2>&1; then
	ok "make deb"
else
	fail "make deb" "exit status $?"
	tail -n 30 /deb.log
	exit 1
fi
mkdir -p /out
cp build/deb/tailwart_*.deb /out/
lintian build/deb/tailwart_*.changes >/lintian.log 2>&1
cat /lintian.log
if grep -q '^E:' /lintian.log; then
	fail "lintian: no error" "$(grep -c '^E:' /lintian.log) errors"
else
	ok "lintian: no error ($(grep -c '^W:' /lintian.log) warnings)"
fi

#!/bin/sh
# 51-milter-stalwart: tailwart-milter behind Stalwart's milter client, played
# by tests/peers/stalwart_milter.py (a new connection per stage replaying
# the session, the whole raw message in BODY chunks, modifications applied
# as Stalwart applies them; see its header):
#  - counters once per SMTP transaction and per recipient with every stage
#    enabled: rate_limit = conn 4/1h, msg 3/1h, rcpt 9/1h and three
#    recipients per message: messages 1-3 pass, the 4th is refused at MAIL
#    (before: the 1st was refused at the data stage);
#  - DKIM: a message signed by opendkim, its key served by unbound through
#    `resolver` (no milter_dkim_keys): dkim=pass with the data stage alone
#    and with every stage (before: dkim=fail, the header block in the body
#    was hashed as body; dkim=temperror, the key lookup ignored `resolver`);
#  - Authentication-Results stored on one line: no bare LF in the stored
#    message (before: "\n\t" folds stored verbatim);
#  - every forged A-R with our authserv-id goes: 20 plain ones, one after
#    an RFC 8601 comment, one quoted; a foreign one stays (before: only the
#    first 16 went, the comment and quoted forms stayed);
#  - a session refused at EHLO (deny) is refused again when it retries;
#  - DKIM pass for a non-Stalwart MTA that also sends headers in the body;
#  - greylisting with three recipients: refused once (451 at DATA, after
#    every recipient was seen), the retry passes them all; with every
#    stage and with the data stage alone.
# Ports 28901-28909.
. "$(dirname "$0")/../lib.sh"

T=$(tw_tmpdir)
MILTER=$TW_BUILD/tailwart-milter
PROBE=$TW_BUILD/tests/milter_probe
SW="python3 $TW_PEERS/stalwart_milter.py"
[ -x "$MILTER" ] || { tw_fail "binary" "$MILTER missing"; tw_summary; exit 1; }
DNSP=28901
MP=28902
DKP=28903
ALL=connect,ehlo,mail,rcpt,data

# a DKIM key; its public half served by unbound
mkdir -p "$T/dkim"
opendkim-genkey -b 1024 -D "$T/dkim" -d example.test -s sel >/dev/null 2>&1
pub=$(openssl rsa -in "$T/dkim/sel.private" -pubout -outform DER 2>/dev/null | base64 -w0)
printf "\tlocal-data: 'sel._domainkey.example.test. 300 IN TXT \"v=DKIM1; k=rsa; \" \"p=%s\"'\n" \
	"$pub" >"$T/dns-extra.conf"

tw_cleanup_add "sh '$TW_PEERS/dns.sh' stop '$T/dns'"
TW_DNS_EXTRA="$T/dns-extra.conf" sh "$TW_PEERS/dns.sh" start "$T/dns" $DNSP >/dev/null 2>&1 ||
	{ tw_fail "dns peer start"; tw_summary; exit 1; }

cat >"$T/gate.conf" <<EOF
hostname = mx.example.test
store = lmdb:$T/store.lmdb
resolver = 127.0.0.1:$DNSP
greylist_delay = 2s
greylist_spf_exempt = pass.spf.test
spf_fail = reject
rate_limit = conn 4/1h, msg 3/1h, rcpt 9/1h
deny = 192.0.2.61
milter_listen = inet:$MP@127.0.0.1
EOF
"$MILTER" -f -c "$T/gate.conf" >"$T/milter.log" 2>&1 </dev/null &
MPID=$!
tw_cleanup_add "kill -KILL $MPID 2>/dev/null"
tw_wait_port 127.0.0.1 $MP 10 || { tw_fail "tailwart-milter start"; cat "$T/milter.log"; tw_summary; exit 1; }

out() { printf '%s/%s.txt' "$T" "$(printf '%s' "$1" | tr -c 'A-Za-z0-9.-' _)"; }
sw() { # sw NAME ARGS...: one SMTP session through "Stalwart"; output in $(out NAME)
	n=$1
	shift
	timeout 60 $SW --milter 127.0.0.1:$MP "$@" >"$(out "$n")" 2>&1
}
expect() { # expect NAME ERE: last line of $(out NAME)
	if tail -n 1 "$(out "$1")" | grep -Eq -- "$2"; then
		tw_ok "$1"
	else
		tw_fail "$1" "want /$2/"
		sed 's/^/    | /' "$(out "$1")"
	fi
}

# ---- counters: once per transaction and recipient --------------------------------
R="--rcpt u1@example.test --rcpt u2@example.test --rcpt u3@example.test"
for i in 1 2 3; do
	sw "rate: message $i with 3 recipients, every stage, passes" \
		--client 192.0.2.31:5000$i --stages $ALL --from a@pass.spf.test $R
	expect "rate: message $i with 3 recipients, every stage, passes" '^result=accepted rcpts=3$'
done
sw "rate: message 4 refused at MAIL (msg 3/1h)" \
	--client 192.0.2.31:50004 --stages $ALL --from a@pass.spf.test $R
expect "rate: message 4 refused at MAIL (msg 3/1h)" '^result=refused stage=mail reply=451 4\.7\.1'
# two messages on one SMTP session (same client port): each counted once
sw "rate: two transactions on one session: first passes" \
	--client 192.0.2.34:50010 --stages $ALL --from a@pass.spf.test $R
sw "rate: two transactions on one session: second passes" \
	--client 192.0.2.34:50010 --stages $ALL --from a@pass.spf.test $R
expect "rate: two transactions on one session: first passes" '^result=accepted rcpts=3$'
expect "rate: two transactions on one session: second passes" '^result=accepted rcpts=3$'

# a session refused at its first stage is checked again on the next one
# (Stalwart lets a client retry a refused EHLO on the same session)
for i in 1 2; do
	sw "denied client refused at ehlo, attempt $i on the same session" \
		--client 192.0.2.61:50020 --stages ehlo,mail,rcpt,data --from a@pass.spf.test $R
	expect "denied client refused at ehlo, attempt $i on the same session" \
		'^result=refused stage=ehlo reply=554 5\.7\.1'
done

# ---- DKIM through unbound, A-R on one line --------------------------------------
printf 'From: a@example.test\nTo: user@example.test\nSubject: signed for\n  Stalwart, folded\nDate: Wed, 25 Nov 2026 12:00:00 +0000\nMessage-ID: <sw.1@example.test>\n\nA signed body.\n' >"$T/dkim/msg.txt"
sh "$TW_PEERS/dkimsign.sh" "$T/dkim" $DKP simple/simple "$T/dkim/msg.txt" "$T/dkim/signed.eml"
grep -q '^DKIM-Signature:' "$T/dkim/signed.eml" 2>/dev/null && tw_ok "opendkim signed the test message" ||
	tw_fail "opendkim signed the test message"

onelineck() { # onelineck FILE: no bare LF, our A-R on one line
	python3 - "$1" <<'EOF'
import re, sys
d = open(sys.argv[1], "rb").read()
if re.search(rb"(?<!\r)\n", d):
    sys.exit("bare LF in the stored message")
ar = [l for l in d.split(b"\r\n") if l.startswith(b"Authentication-Results: mx.example.test;")]
if len(ar) != 1:
    sys.exit("want one A-R line of ours, got %d" % len(ar))
print(ar[0].decode())
EOF
}
k=0
for st in data $ALL; do
	k=$((k + 1))
	n="dkim through unbound, stages $st: dkim=pass"
	sw "$n" --client 192.0.2.40:5100$k --stages $st --from a@pass.spf.test \
		--rcpt user@example.test --msg "$T/dkim/signed.eml" --out "$T/dkim/out.$k.eml"
	if grep -q '^result=accepted' "$(out "$n")" &&
		grep -Eq '^Authentication-Results: mx.example.test; spf=pass smtp.mailfrom=a@pass.spf.test; dkim=pass header.d=example.test header.s=sel' \
		"$T/dkim/out.$k.eml"; then
		tw_ok "$n"
	else
		tw_fail "$n"
		sed 's/^/    | /' "$(out "$n")" "$T/dkim/out.$k.eml" 2>/dev/null | head -n 20
	fi
	tw_check "A-R on one line, no bare LF in the stored message (stages $st)" \
		onelineck "$T/dkim/out.$k.eml"
done

# a selector with no key record (NXDOMAIN from unbound): permerror, not temperror
sed 's/ s=sel;/ s=gone;/' "$T/dkim/signed.eml" >"$T/dkim/nokey.eml"
n="dkim: no key record gives dkim=permerror"
sw "$n" --client 192.0.2.40:51009 --from a@pass.spf.test --rcpt user@example.test \
	--msg "$T/dkim/nokey.eml" --out "$T/dkim/out.nokey.eml"
grep -Eq 'dkim=permerror header.d=example.test header.s=gone' "$T/dkim/out.nokey.eml" && tw_ok "$n" ||
	{ tw_fail "$n"; grep '^Authentication-Results' "$T/dkim/out.nokey.eml" | sed 's/^/    | /'; }

# an MTA that is not Stalwart but also sends the headers in the body: found
# by the body starting with the first header already received
n="dkim: header block in the body found without {daemon_name}"
sw "$n" --client 192.0.2.42:51010 --daemon-name "Other MTA" --from a@pass.spf.test \
	--rcpt user@example.test --msg "$T/dkim/signed.eml" --out "$T/dkim/out.other.eml"
grep -Eq 'dkim=pass header.d=example.test header.s=sel' "$T/dkim/out.other.eml" && tw_ok "$n" ||
	{ tw_fail "$n"; sed 's/^/    | /' "$(out "$n")"; grep -A3 '^Authentication-Results' "$T/dkim/out.other.eml" | sed 's/^/    | /'; }

# ---- forged Authentication-Results -------------------------------------------
{
	printf 'From: a@pass.spf.test\nTo: user@example.test\nSubject: forged\n'
	i=1
	while [ $i -le 20 ]; do
		printf 'Authentication-Results: mx.example.test; dkim=pass header.d=forged%d.example\n' $i
		i=$((i + 1))
	done
	printf 'Authentication-Results: (trusted) mx.example.test; dkim=pass header.d=comment.example\n'
	printf 'Authentication-Results: "mx.example.test"; dkim=pass header.d=quoted.example\n'
	printf 'Authentication-Results: (a (nested) comment)\n MX.Example.Test 1; spf=pass\n'
	printf 'Authentication-Results: other.example; dkim=pass header.d=foreign.example\n'
	printf '\nbody\n'
} >"$T/forged.eml"
sw "forged: message accepted" --client 192.0.2.41:52000 --from a@pass.spf.test \
	--rcpt user@example.test --msg "$T/forged.eml" --out "$T/forged.out"
expect "forged: message accepted" '^result=accepted'
n=$(grep -ci '^Authentication-Results:' "$T/forged.out")
[ "$n" = 2 ] && tw_ok "forged: all 23 forged A-R removed (ours and the foreign one left)" ||
	{ tw_fail "forged: all 23 forged A-R removed" "$n A-R headers left"; grep -i -A1 '^Authentication-Results' "$T/forged.out" | sed 's/^/    | /'; }
grep -q '^Authentication-Results: other.example; dkim=pass header.d=foreign.example' "$T/forged.out" &&
	tw_ok "forged: a foreign authserv-id's A-R kept" || tw_fail "forged: a foreign authserv-id's A-R kept"

# ---- greylisting: one refusal for all recipients ----------------------------------
k=0
for st in $ALL data; do
	k=$((k + 1))
	ip=192.0.2.5$k
	sw "greylist ($st): first attempt 451 at DATA" --client $ip:53001 --stages $st \
		--from g$k@neutral.spf.test $R
	expect "greylist ($st): first attempt 451 at DATA" '^result=refused stage=data reply=451 4\.7\.1'
done
sleep 2.5
k=0
for st in $ALL data; do
	k=$((k + 1))
	ip=192.0.2.5$k
	sw "greylist ($st): the retry passes all three recipients" --client $ip:53002 \
		--stages $st --from g$k@neutral.spf.test $R
	expect "greylist ($st): the retry passes all three recipients" '^result=accepted rcpts=3$'
done

# a clean stop (under ASan: no error or leak report, TW_BUILD=build-asan)
kill -TERM $MPID 2>/dev/null
for i in $(seq 1 100); do kill -0 $MPID 2>/dev/null || break; sleep 0.1; done
if grep -Eq 'runtime error|Sanitizer' "$T/milter.log"; then
	tw_fail "tailwart-milter: stopped with no sanitizer report"
	grep -E -A 10 'runtime error|Sanitizer' "$T/milter.log" | head -n 20 | sed 's/^/    | /'
else
	tw_check "tailwart-milter: stopped with no sanitizer report" \
		grep -q 'tailwart-milter stopped' "$T/milter.log"
fi
tw_summary

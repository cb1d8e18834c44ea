#!/bin/bash
# 43-relay-dkim: messages signed at enqueue (libopendkim, relaxed/relaxed)
# verify after the trip through the relay and the Postfix smarthost, with
# libopendkim's verifier (tests/helpers/relay_dkimverify, keys from a file).
# Both config forms (list and indexed), the `*` default key, DATA and BDAT,
# dot-stuffed lines, 8-bit text; a tampered copy fails; a domain without a
# key is sent unsigned; a bad key file is refused by -n.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # tests/run uses sh
. "$(dirname "$0")/../lib.sh"
. "$TW_PEERS/relay_lib.sh"
rl_need_relay
[ -x "$RL_VERIFY" ] || { tw_fail "verifier" "$RL_VERIFY missing"; tw_summary; exit 1; }

T=$(tw_tmpdir)
SH=27401
RP=27400
rl_smarthost_start sh $SH || { tw_fail "smarthost start"; tw_summary; exit 1; }
MD=$T/sh/mail/user

mkkey() { # mkkey NAME SELECTOR DOMAIN
	openssl genrsa -out "$T/$1.pem" 2048 2>/dev/null
	chmod 0600 "$T/$1.pem"
	printf '%s._domainkey.%s v=DKIM1; k=rsa; p=%s\n' "$2" "$3" \
		"$(openssl rsa -in "$T/$1.pem" -pubout -outform DER 2>/dev/null | base64 -w0)" >>"$T/keys.txt"
}
mkkey k1 sel1 example.test
mkkey k2 s2026 example.org
mkkey k3 dflt sub.example.net

rl_conf "$T/relay.conf" "listen=127.0.0.1:$RP" "smarthost=[localhost]:$SH" \
	"dkim_sign=example.test sel1 $T/k1.pem, * dflt $T/k3.pem" \
	"dkim_sign[example.org]=s2026 $T/k2.pem"
tw_check "config with keys" "$TW_RELAY" -n -c "$T/relay.conf"
echo "not a key" >"$T/bad.pem"
rl_conf "$T/bad.conf" "dkim_sign=example.test sel1 $T/bad.pem"
out=$("$TW_RELAY" -n -c "$T/bad.conf" 2>&1)
[ $? -ne 0 ] && echo "$out" | grep -q 'not a PEM private key' && tw_ok "bad key file refused" ||
	tw_fail "bad key file refused" "$out"
rl_start "$T/relay.conf" || { tw_fail "relay start"; tw_summary; exit 1; }

send_data() { # send_data SUBJECT FROM_HEADER
	printf 'From: Someone <%s>\r\nTo: <user@example.test>\r\nSubject: %s\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <%s@example.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nHello,\r\n.a line that starts with a dot\r\n..two dots\r\ntrailing spaces   \r\n\tTabbed line\r\nGr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln\r\n%s\r\n\r\n\r\n' \
		"$2" "$1" "$1" "$(head -c 3000 /dev/zero | tr '\0' 'y')" >"$T/$1.eml"
	tw_swaks --server 127.0.0.1:$RP --from sender@example.test --to user@example.test \
		--data "$T/$1.eml"
}
verify() { # verify NAME SUBJECT EXPECTED_DOMAIN
	f=$(grep -l "^Subject: $2\$" "$MD"/new/* 2>/dev/null | head -n 1)
	if [ -z "$f" ]; then
		tw_fail "$1" "message $2 not delivered"
		return
	fi
	out=$("$RL_VERIFY" "$T/keys.txt" "$f" 2>&1)
	if echo "$out" | grep -q "^pass d=$3 "; then
		tw_ok "$1 ($out)"
	else
		tw_fail "$1" "$out"
		sed -n '1,30p' "$f" | sed 's/^/    | /'
	fi
}

send_data dkim-list sender@example.test
send_data dkim-indexed news@example.org
send_data dkim-default a@sub.example.net
send_data dkim-sub a@mail.example.test
tw_wait_maildir "$MD" 4 30 || tw_fail "4 messages delivered" "$(tw_maildir_count "$MD")"
verify "list form signs and verifies" dkim-list example.test
verify "indexed form signs and verifies" dkim-indexed example.org
verify "* key signs as the sender's domain" dkim-default sub.example.net
verify "parent domain key for a subdomain" dkim-sub example.test

# BDAT, as Stalwart sends it
body='From: <sender@example.test>\r\nTo: <user@example.test>\r\nSubject: dkim-bdat\r\n\r\n.dot\r\nend\r\n'
len=$(printf "$body" | wc -c)
tw_chat_expect "BDAT accepted" 127.0.0.1 $RP <<CHAT
< 220
> EHLO client.example.test
< 250
> MAIL FROM:<sender@example.test>
< 250
> RCPT TO:<user@example.test>
< 250
>> BDAT $len LAST\r\n$body
< 250
> QUIT
< 221
CHAT
tw_wait_maildir "$MD" 5 20
verify "BDAT message verifies" dkim-bdat example.test

f=$(grep -l '^Subject: dkim-list$' "$MD"/new/* | head -n 1)
sed 's/^Subject: dkim-list$/Subject: dkim-lost/' "$f" >"$T/tampered"
if "$RL_VERIFY" "$T/keys.txt" "$T/tampered" >/dev/null 2>&1; then
	tw_fail "tampered copy fails verification"
else
	tw_ok "tampered copy fails verification"
fi
if grep -q '^DKIM-Signature:.*c=relaxed/relaxed' "$f" && grep -A4 '^DKIM-Signature:' "$f" | grep -qi 'h=.*from:to:subject:date:message-id'; then
	tw_ok "relaxed/relaxed, sane header list"
else
	tw_fail "relaxed/relaxed, sane header list" "$(grep -A5 '^DKIM-Signature:' "$f")"
fi

# no key for the domain: sent unsigned
rl_stop relay
rl_conf "$T/relay2.conf" "listen=127.0.0.1:$RP" "smarthost=[localhost]:$SH" \
	"dkim_sign=example.test sel1 $T/k1.pem"
rl_start "$T/relay2.conf" relay2 || { tw_fail "relay2 start"; tw_summary; exit 1; }
send_data dkim-none x@unsigned.example
tw_wait_maildir "$MD" 6 20
f=$(grep -l '^Subject: dkim-none$' "$MD"/new/* | head -n 1)
if [ -n "$f" ] && ! grep -q '^DKIM-Signature:' "$f"; then
	tw_ok "no key: sent unsigned"
else
	tw_fail "no key: sent unsigned"
fi
rl_stop relay2
tw_summary

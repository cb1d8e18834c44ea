#!/bin/sh
# 50-milter-client: the gate's milter client (gate/gate_milter.c) against real
# milters, driven by tests/helpers/milter_probe before the gate wiring:
#  - opendkim as a milter in sign mode (key from opendkim-genkey): the probe's
#    modified message carries a DKIM-Signature, and a second opendkim in verify
#    mode (public key from TestPublicKeys, no DNS) says dkim=pass; simple and
#    relaxed canonicalisation; a tampered copy fails; signer and verifier
#    chained in one session;
#  - testmilter (libmilter): every verdict at every stage, `y` replies, every
#    modification, macros (defaults, SETSYMLIST), NO*/NR_* protocol bits;
#  - bad_milter (raw socket): malformed packets, hostile header values, bad
#    `y` replies, a milter that closes or hangs, one that is down: each gives
#    the configured default action, logged;
#  - 1,000 sessions under the ASan build (when built): no leak report.
. "$(dirname "$0")/../lib.sh"

T=$(tw_tmpdir)
PROBE=$TW_BUILD/tests/milter_probe
TM=$TW_BUILD/tests/testmilter
BAD=$TW_BUILD/tests/bad_milter
for b in "$PROBE" "$TM" "$BAD"; do
	[ -x "$b" ] || { tw_fail "binary" "$b missing (build first)"; tw_summary; exit 1; }
done
PORT=28300
NL=$(printf '\nx')
NL=${NL%x}
CR=$(printf '\r')

# bg NAME CMD...: start CMD in the background, stopped at exit.
bg() {
	n=$1
	shift
	"$@" >"$T/$n.out" 2>&1 </dev/null &
	echo $! >"$T/$n.pid"
	tw_cleanup_add "kill -KILL $! 2>/dev/null; wait $! 2>/dev/null"
}

stop_bg() {
	p=$(cat "$T/$1.pid" 2>/dev/null) || return 0
	# libmilter takes seconds to drain on TERM; these are our own test peers
	kill -KILL "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	rm -f "$T/$1.pid"
}

next_port() { PORT=$((PORT + 1)); }

# probe NAME ARGS...: run milter_probe, output (stdout+stderr) in $T/NAME.txt
probe() {
	n=$1
	shift
	timeout 30 "$PROBE" "$@" >"$T/$n.txt" 2>&1 </dev/null
	pr=$?
	if grep -Eq 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T/$n.txt"; then
		tw_fail "$n: sanitizer report"
		grep -E -A 15 'Sanitizer|runtime error' "$T/$n.txt" | head -n 30 | sed 's/^/    | /'
	elif [ $pr -ne 0 ]; then
		tw_fail "$n: milter_probe exit $pr"
	fi
}

# expect NAME ERE: the last probe output of NAME matches ERE (grep -E)
expect() {
	if grep -Eq -- "$2" "$T/$1.txt"; then
		tw_ok "$1: /$2/"
	else
		tw_fail "$1" "no /$2/ in output"
		sed 's/^/    | /' "$T/$1.txt" | tail -n 25
	fi
}

expect_not() {
	if grep -Eq -- "$2" "$T/$1.txt"; then
		tw_fail "$1" "unexpected /$2/ in output"
		sed 's/^/    | /' "$T/$1.txt" | tail -n 25
	else
		tw_ok "$1: no /$2/"
	fi
}

# tm NAME ARGS...: a fresh testmilter on the next port, log in $T/NAME.log
tm() {
	n=$1
	shift
	next_port
	: >"$T/$n.log"
	bg "$n" "$TM" -s "inet:$PORT@127.0.0.1" -l "$T/$n.log" "$@"
	tw_wait_port 127.0.0.1 $PORT 5 || tw_fail "$n: testmilter did not listen"
	M="inet:127.0.0.1:$PORT"
}

# ---- opendkim: sign, then verify ------------------------------------------

if command -v opendkim >/dev/null && command -v opendkim-genkey >/dev/null; then
	mkdir -p "$T/dkim"
	opendkim-genkey -D "$T/dkim" -d example.test -s sel >/dev/null 2>&1
	printf 'sel._domainkey.example.test v=DKIM1; k=rsa; p=%s\n' \
		"$(openssl rsa -in "$T/dkim/sel.private" -pubout -outform DER 2>/dev/null | base64 -w0)" \
		>"$T/dkim/keys.txt"
	dk_conf() { # dk_conf FILE PORT MODE CANON INTERNAL_HOSTS
		cat >"$1" <<-EOF
		Socket inet:$2@127.0.0.1
		Mode $3
		Domain example.test
		Selector sel
		KeyFile $T/dkim/sel.private
		RequireSafeKeys false
		Canonicalization $4
		TestPublicKeys $T/dkim/keys.txt
		AuthservID verifier.test
		InternalHosts $5
		PidFile $T/dkim/$2.pid
		Background no
		EOF
	}
	next_port; SIGN_R=$PORT
	next_port; SIGN_S=$PORT
	next_port; VERIFY=$PORT
	dk_conf "$T/dkim/sign_r.conf" $SIGN_R sv relaxed/relaxed "127.0.0.1, 192.0.2.0/24"
	dk_conf "$T/dkim/sign_s.conf" $SIGN_S sv simple/simple "127.0.0.1, 192.0.2.0/24"
	dk_conf "$T/dkim/verify.conf" $VERIFY v relaxed/relaxed 127.0.0.1
	bg dk_sign_r opendkim -f -x "$T/dkim/sign_r.conf"
	bg dk_sign_s opendkim -f -x "$T/dkim/sign_s.conf"
	bg dk_verify opendkim -f -x "$T/dkim/verify.conf"
	for p in $SIGN_R $SIGN_S $VERIFY; do
		tw_wait_port 127.0.0.1 $p 10 || tw_fail "opendkim on $p did not listen"
	done
	printf 'From: Sender <sender@example.test>\nTo: User <user@example.test>\nSubject: dkim through the milter client\nDate: Wed, 25 Nov 2026 12:00:00 +0000\nMessage-ID: <dkim.1@example.test>\nX-Folded: first line\n\tsecond line\n\nLine one.\n.dot line\n\nLast line.\n' >"$T/dkim/msg.txt"

	for c in r s; do
		eval "sp=\$SIGN_$(echo $c | tr rs RS)"
		probe "dkim-sign-$c" "inet:127.0.0.1:$sp" --msg "$T/dkim/msg.txt" --out "$T/dkim/signed_$c.eml"
		expect "dkim-sign-$c" '^message continue'
		if grep -q '^DKIM-Signature: v=1; a=rsa-sha256' "$T/dkim/signed_$c.eml" 2>/dev/null; then
			tw_ok "dkim-sign-$c: DKIM-Signature added"
		else
			tw_fail "dkim-sign-$c: DKIM-Signature added"
		fi
		# the verifier sees a client outside its InternalHosts
		probe "dkim-verify-$c" "inet:127.0.0.1:$VERIFY" --client 198.51.100.7 \
			--msg "$T/dkim/signed_$c.eml"
		expect "dkim-verify-$c" 'dkim=pass .*header.d=example.test.*header.s=sel'
	done
	sed 's/^Line one\./Line One./' "$T/dkim/signed_r.eml" >"$T/dkim/tampered.eml"
	probe dkim-tampered "inet:127.0.0.1:$VERIFY" --client 198.51.100.7 --msg "$T/dkim/tampered.eml"
	expect dkim-tampered 'dkim=fail'
	# both in one chain (a client internal to the signer, external to the
	# verifier): the verifier sees the signer's header
	probe dkim-chain "inet:127.0.0.1:$SIGN_S" "inet:127.0.0.1:$VERIFY" --client 192.0.2.9 \
		--msg "$T/dkim/msg.txt"
	expect dkim-chain '^message continue'
	expect dkim-chain 'dkim=pass'
	expect dkim-chain '^DKIM-Signature: '
	stop_bg dk_sign_r
	stop_bg dk_sign_s
	stop_bg dk_verify
else
	tw_fail "opendkim" "opendkim or opendkim-genkey not installed (make deps)"
fi

# ---- testmilter: verdicts --------------------------------------------------

for stage in connect helo mail data eom; do
	for act in reject tempfail; do
		tm "v-$stage-$act" -t $stage -a $act
		probe "v-$stage-$act" "$M"
		case $act in
		reject) want="^(message|$stage) reject 550 5.7.1 Command rejected" ;;
		tempfail) want="^(message|$stage) tempfail 451 4.7.1 " ;;
		esac
		expect "v-$stage-$act" "$want"
		stop_bg "v-$stage-$act"
	done
done

tm v-rcpt-one -t rcpt -a reject -m b@example.test
probe v-rcpt-one "$M" --rcpt a@example.test --rcpt b@example.test --rcpt c@example.test
expect v-rcpt-one '^rcpt <a@example.test> continue'
expect v-rcpt-one '^rcpt <b@example.test> reject 550 5.7.1 Command rejected'
expect v-rcpt-one '^rcpt <c@example.test> continue'
expect v-rcpt-one '^message continue'
stop_bg v-rcpt-one

tm v-reply -t rcpt -a reply -r "550 5.1.1 no such user here"
probe v-reply "$M"
expect v-reply '^rcpt <user@example.test> reject 550 5.1.1 no such user here'
stop_bg v-reply

tm v-reply4 -t mail -a reply -r "452 4.3.1 come back later"
probe v-reply4 "$M"
expect v-reply4 '^mail tempfail 452 4.3.1 come back later'
stop_bg v-reply4

tm v-discard-rcpt -t rcpt -a discard
probe v-discard-rcpt "$M"
expect v-discard-rcpt '^rcpt <user@example.test> continue'
expect v-discard-rcpt '^message discard'
stop_bg v-discard-rcpt

tm v-discard-eom -t eom -a discard -H "X-Never:seen"
probe v-discard-eom "$M"
expect v-discard-eom '^message discard'
expect_not v-discard-eom 'X-Never'
stop_bg v-discard-eom

tm v-accept-mail -t mail -a accept
probe v-accept-mail "$M"
expect v-accept-mail '^message continue'
if grep -q '^header ' "$T/v-accept-mail.log"; then
	tw_fail "v-accept-mail: milter that accepted at MAIL saw no content"
else
	tw_ok "v-accept-mail: milter that accepted at MAIL saw no content"
fi
stop_bg v-accept-mail

tm v-accept-connect -t connect -a accept
probe v-accept-connect "$M"
expect v-accept-connect '^message continue'
if grep -q '^mail ' "$T/v-accept-connect.log"; then
	tw_fail "v-accept-connect: no events after accept at connect"
else
	tw_ok "v-accept-connect: no events after accept at connect"
fi
stop_bg v-accept-connect

# a body over 64 KiB goes in chunks of at most 65535 bytes
awk 'BEGIN { printf "Subject: big\r\n\r\n"; for (i = 0; i < 3000; i++) printf "%079d\r\n", i }' >"$T/big.txt"
tm chunks
probe chunks "$M" --msg "$T/big.txt"
expect chunks '^message continue'
if awk '/^body / { n++; s += $2; if ($2 > 65535) bad = 1 } END { exit !(n == 4 && s == 243000 && !bad) }' "$T/chunks.log"; then
	tw_ok "chunks: 243000 body bytes in 4 chunks of at most 65535"
else
	tw_fail "chunks: body chunking" "$(grep '^body' "$T/chunks.log" | tr '\n' ' ')"
fi
stop_bg chunks

# SMFIS_SKIP at the first body chunk: no more chunks, end of message still sent
tm skip -t body -a skip -H "X-Skipped:yes"
probe skip "$M" --msg "$T/big.txt"
expect skip '^message continue'
expect skip '^X-Skipped: yes'
[ "$(grep -c '^body ' "$T/skip.log")" -eq 1 ] && tw_ok "skip: one body chunk, then none" ||
	tw_fail "skip: one body chunk, then none" "$(grep -c '^body ' "$T/skip.log") chunks"
stop_bg skip

# progress replies before the final one
tm progress -t eom -a progress -H "X-After-Progress:yes"
probe progress "$M"
expect progress '^message continue'
expect progress '^X-After-Progress: yes'
stop_bg progress

# chgheader index: the second Received is changed, the first left alone
printf 'Received: first\nReceived: second\nSubject: idx\n\nbody\n' >"$T/idxmsg.eml"
tm idx -C "2:Received:changed second" -I "1:X-Second:after the first header"
probe idx "$M" --msg "$T/idxmsg.eml"
expect idx '^Received: first'
expect idx '^Received: changed second'
if awk '/^--- message/{m=1;next} m' "$T/idx.txt" | sed -n 2p | grep -q '^X-Second:'; then
	tw_ok "idx: insheader 1 lands after the first header"
else
	tw_fail "idx: insheader 1 lands after the first header"
	sed 's/^/    | /' "$T/idx.txt" | tail -n 8
fi
stop_bg idx

# ---- testmilter: modifications ------------------------------------------------

tm mods -H "X-Added:added by testmilter" -I "0:X-Top:at the top" -C "1:Subject:changed" \
	-C "1:To:" -B "replaced body${NL}second line" -Q "looks odd" -R extra@example.test \
	-D user@example.test
probe mods "$M"
expect mods '^message continue'
expect mods '^add_rcpt <extra@example.test>'
expect mods '^del_rcpt <user@example.test>'
expect mods '^quarantine looks odd'
expect mods '^X-Added: added by testmilter'
expect mods '^Subject: changed'
expect mods '^X-Quarantine: looks odd'
expect_not mods '^To: '
expect_not mods 'Hello from milter_probe'
expect mods '^replaced body'
# header order: X-Top first, X-Added after the original headers
if awk '/^--- message/{m=1;next} m&&NF{print;exit}' "$T/mods.txt" | grep -q '^X-Top: at the top'; then
	tw_ok "mods: inserted header is first"
else
	tw_fail "mods: inserted header is first"
fi
# every line of the modified message ends in CRLF
if awk '/^--- message/{m=1;next} m' "$T/mods.txt" | grep -v "$CR\$" | grep -q .; then
	tw_fail "mods: CRLF line ends"
else
	tw_ok "mods: CRLF line ends"
fi
stop_bg mods

# ---- macros and protocol bits ----------------------------------------------------

tm macros
probe macros "$M" --client 192.0.2.7 --port 4321 --client-name mail.example.org \
	--macro '{auth_authen}=alice' --from s@example.test --rcpt r@example.test
for re in '^connect host=mail.example.org addr=192.0.2.7 port=4321' \
	'^macro connect \{client_addr\}=192.0.2.7' '^macro connect \{client_port\}=4321' \
	'^macro connect j=mx.example.test' '^macro connect \{daemon_name\}=tailwart-gate' \
	'^macro mail i=PROBE000001' '^macro mail \{auth_authen\}=alice' \
	'^macro mail \{mail_addr\}=s@example.test' '^macro rcpt \{rcpt_addr\}=r@example.test' \
	'^helo client.example.test' '^mail <s@example.test>' '^rcpt <r@example.test>' \
	'^header Subject:milter probe' '^eoh' '^body 26' '^eom'; do
	if grep -Eq -- "$re" "$T/macros.log"; then
		tw_ok "macros: /$re/"
	else
		tw_fail "macros: /$re/" "not in the milter's log"
		sed 's/^/    | /' "$T/macros.log" | tail -n 30
	fi
done
stop_bg macros

# SETSYMLIST: only what the milter asked for at MAIL
tm symlist -M "2:{auth_authen}"
probe symlist "$M" --macro '{auth_authen}=alice'
if grep -q '^macro mail {auth_authen}=alice' "$T/symlist.log" &&
	! grep -q '^macro mail i=' "$T/symlist.log"; then
	tw_ok "symlist: the milter's macro list for MAIL is honoured"
else
	tw_fail "symlist: the milter's macro list for MAIL is honoured"
	sed 's/^/    | /' "$T/symlist.log" | grep macro | tail -n 20
fi
stop_bg symlist

# NOHELO (0x2) and NOBODY (0x10): those events are not sent; NR_HDR (0x80):
# headers without replies still work
tm protobits -P 0x92
probe protobits "$M"
expect protobits '^message continue'
if ! grep -q '^helo ' "$T/protobits.log" && ! grep -q '^body ' "$T/protobits.log" &&
	grep -q '^header Subject' "$T/protobits.log" && grep -q '^eom' "$T/protobits.log"; then
	tw_ok "protobits: NOHELO, NOBODY, NR_HDR honoured"
else
	tw_fail "protobits: NOHELO, NOBODY, NR_HDR honoured"
	sed 's/^/    | /' "$T/protobits.log" | tail -n 20
fi
stop_bg protobits

# ---- bad_milter: malformed input gives the default action --------------------------

bm() { # bm NAME MODE STAGE DEFAULT EXPECT_RE
	next_port
	bg "$1" "$BAD" -p $PORT -m "$2" -t "$3" -T 60 -n 5
	tw_wait_port 127.0.0.1 $PORT 5 || tw_fail "$1: bad_milter did not listen"
	probe "$1" "inet:127.0.0.1:$PORT" --default-action "$4" --timeout 2s --eom-timeout 2s
	expect "$1" "$5"
	stop_bg "$1"
}
TF='tempfail 451 4.7.1 Service unavailable - try again later'
bm bad-len0 len0 E tempfail "^message $TF"
bm bad-huge huge E tempfail "^message $TF"
bm bad-unknown unknown E tempfail "^message $TF"
bm bad-truncated truncated E tempfail "^message $TF"
bm bad-close-eom close E tempfail "^message $TF"
bm bad-close-body close B tempfail "^message $TF"
bm bad-close-rcpt close R reject "^rcpt <user@example.test> reject 550 5.7.1 Command rejected"
bm bad-hdr-lf hdr-lf E tempfail "^message $TF"
bm bad-hdr-cr hdr-cr E tempfail "^message $TF"
bm bad-hdr-long hdr-long E tempfail "^message $TF"
bm bad-hdr-name hdr-name E tempfail "^message $TF"
bm bad-y-250 y-250 E tempfail "^message $TF"
bm bad-y-crlf y-crlf E tempfail "^message $TF"
bm bad-y-long y-long E tempfail "^message $TF"
bm bad-body-cr body-cr E tempfail "^message $TF"
bm bad-optneg optneg-bad E tempfail "^connect $TF"
bm bad-optneg-act optneg-act E reject "^connect reject 550 5.7.1"
bm bad-unknown-rcpt unknown R tempfail "^rcpt <user@example.test> $TF"
bm bad-y-good y-good E tempfail "^message reject 554 5.7.1 custom % reply"
# default accept: the message passes unchanged, the hostile header is not in it
bm bad-accept hdr-lf E accept '^message continue'
expect_not bad-accept 'X-Bad'
expect bad-accept '^Subject: milter probe'
expect bad-len0 'error="bad packet length 0" default_action=tempfail'
expect bad-hdr-lf 'error="bare LF in header value'
# raw modifications are parsed and applied
bm bad-mods mods E tempfail '^message continue'
expect bad-mods '^X-Top: top'
expect bad-mods '^X-Folded: first'
expect bad-mods '^Subject: changed subject'
expect bad-mods '^new body line 2'
expect bad-mods '^add_rcpt <added@example.test>'

# a protocol version 2 milter never sees DATA (defined from version 4 on)
next_port
bg bad-v2 "$BAD" -p $PORT -m v2 -l "$T/v2.log" -T 60 -n 5
tw_wait_port 127.0.0.1 $PORT 5
probe v2 "inet:127.0.0.1:$PORT"
expect v2 '^message continue'
if grep -q '^cmd T' "$T/v2.log" || ! grep -q '^cmd E' "$T/v2.log"; then
	tw_fail "v2: no DATA event for a version 2 milter"
else
	tw_ok "v2: no DATA event for a version 2 milter"
fi
stop_bg bad-v2

# a milter that hangs: the timeout fires, then the default action
next_port
bg bad-hang "$BAD" -p $PORT -m hang -t E -T 60 -n 5
tw_wait_port 127.0.0.1 $PORT 5
t0=$(date +%s)
probe bad-hang "inet:127.0.0.1:$PORT" --timeout 2s --eom-timeout 2s
t1=$(date +%s)
expect bad-hang "^message $TF"
expect bad-hang 'error="timeout"'
if [ $((t1 - t0)) -le 8 ]; then tw_ok "bad-hang: gave up within the timeout ($((t1 - t0))s)"
else tw_fail "bad-hang: gave up within the timeout" "$((t1 - t0))s"; fi
stop_bg bad-hang

# a milter that is down
next_port
probe down "inet:127.0.0.1:$PORT" --connect-timeout 2s
expect down "^connect $TF"
expect down 'error="connection refused"'
probe down-accept "inet:127.0.0.1:$PORT" --default-action accept
expect down-accept '^message continue'

# chain: a good milter and a broken one with default accept
tm chain -H "X-Chain:one"
next_port
bg chain-bad "$BAD" -p $PORT -m unknown -t E -T 60 -n 5
tw_wait_port 127.0.0.1 $PORT 5
probe chain "$M" "inet:127.0.0.1:$PORT" --default-action accept
expect chain '^message continue'
expect chain '^X-Chain: one'
stop_bg chain-bad
stop_bg chain

# a milter on a unix socket
: >"$T/unix.log"
bg unix "$TM" -s "unix:$T/tm.sock" -l "$T/unix.log" -H "X-Unix:yes"
i=0
while [ ! -S "$T/tm.sock" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
probe unix "unix:$T/tm.sock"
expect unix '^message continue'
expect unix '^X-Unix: yes'
stop_bg unix
probe unix-missing "unix:$T/nothing.sock"
expect unix-missing "^connect $TF"
expect unix-missing 'error="no such socket"'

# ---- 1,000 sessions under ASan: no leak, no error ----------------------------------

ASAN_PROBE=$TW_ROOT/build-asan/tests/milter_probe
if [ -x "$ASAN_PROBE" ]; then
	tm soak -H "X-Soak:yes" -C "1:Subject:soaked"
	ASAN_OPTIONS=detect_leaks=1 timeout 300 "$ASAN_PROBE" --sessions 1000 "$M" \
		--rcpt a@example.test --rcpt b@example.test >"$T/soak.txt" 2>&1
	rc=$?
	if [ $rc -eq 0 ] && grep -q '^sessions 1000 failed 0' "$T/soak.txt" &&
		! grep -q 'Sanitizer' "$T/soak.txt"; then
		tw_ok "soak: 1000 sessions under ASan, no leak"
	else
		tw_fail "soak: 1000 sessions under ASan" "rc=$rc"
		tail -n 30 "$T/soak.txt" | sed 's/^/    | /'
	fi
	n=$(grep -c '^eom' "$T/soak.log")
	[ "$n" -eq 1000 ] && tw_ok "soak: the milter saw 1000 messages" ||
		tw_fail "soak: the milter saw 1000 messages" "saw $n"
	stop_bg soak
else
	echo "# build-asan/tests/milter_probe not built: soak skipped (make check builds it)"
fi

tw_summary

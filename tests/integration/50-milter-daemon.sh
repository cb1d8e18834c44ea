#!/bin/sh
# 50-milter-daemon: tailwart-milter (milter/) against real MTA-side peers.
#  - miltertest (Lua, the milter package's test driver): a DNSBL-listed and a
#    denied client refused at connect, SPF fail refused at MAIL, greylisting
#    451 then pass after the delay, DNSWL and allow-list clients exempt, at
#    end of message Authentication-Results and Received-SPF inserted and a
#    forged A-R with our authserv-id removed;
#  - a private Postfix with smtpd_milters (milter_protocol = 6,
#    milter_default_action = tempfail), clients made to look remote with
#    XCLIENT: the same verdicts as SMTP replies, the delivered message
#    carries Authentication-Results (spf=pass, and dkim=pass for a message
#    signed by opendkim), and a milter that is down gives 451;
#  - the gate's own milter client (milter_probe) against tailwart-milter.
# DNS: tests/peers/dns.sh (unbound with the spf.test, bl.test, wl.test data).
. "$(dirname "$0")/../lib.sh"

T=$(tw_tmpdir)
MILTER=$TW_BUILD/tailwart-milter
PROBE=$TW_BUILD/tests/milter_probe
[ -x "$MILTER" ] || { tw_fail "binary" "$MILTER missing"; tw_summary; exit 1; }
DNSP=28601
MP=28602
BP=28603
DKP=28604

tw_cleanup_add "sh '$TW_PEERS/dns.sh' stop '$T/dns'"
sh "$TW_PEERS/dns.sh" start "$T/dns" $DNSP >/dev/null 2>&1 ||
	{ tw_fail "dns peer start"; tw_summary; exit 1; }

# a DKIM key (opendkim-genkey) and its public half for the verifier
mkdir -p "$T/dkim"
opendkim-genkey -D "$T/dkim" -d example.test -s sel >/dev/null 2>&1
printf 'sel._domainkey.example.test v=DKIM1; k=rsa; p=%s\n' \
	"$(openssl rsa -in "$T/dkim/sel.private" -pubout -outform DER 2>/dev/null | base64 -w0)" \
	>"$T/dkim/keys.txt"

cat >"$T/gate.conf" <<EOF
# gate keys tailwart-milter ignores
listen = 127.0.0.1:25025
backend = 127.0.0.1:26026
milters = inet:127.0.0.1:8891
milter_default_action = tempfail
# shared policy keys
hostname = mx.example.test
store = lmdb:$T/store.lmdb
resolver = 127.0.0.1:$DNSP
dnsbl_sites = bl.test, wl.test=127.0.10.2*-5
greylist_delay = 2s
spf_fail = reject
received_spf_header = yes
allow = 192.0.2.60
deny = 192.0.2.61
rate_limit[192.0.2.70/32] = conn 2/1m
user = nobody
# tailwart-milter
milter_listen = inet:$MP@127.0.0.1
milter_dkim_keys = file:$T/dkim/keys.txt
EOF

tw_check "config check (-n)" "$MILTER" -n -c "$T/gate.conf"
printf 'milter_listen = inet:1@127.0.0.1\ngreylist_dely = 5m\n' >"$T/typo.conf"
if "$MILTER" -n -c "$T/typo.conf" 2>"$T/typo.err"; then
	tw_fail "typo in a policy key refused"
else
	grep -q 'typo.conf:2: unknown key "greylist_dely"' "$T/typo.err" &&
		tw_ok "typo in a policy key refused" ||
		tw_fail "typo in a policy key refused" "$(cat "$T/typo.err")"
fi

start_milter() {
	"$MILTER" -f -c "$T/gate.conf" >>"$T/milter.log" 2>&1 </dev/null &
	echo $! >"$T/milter.pid"
	tw_cleanup_add "kill -KILL $! 2>/dev/null"
	tw_wait_port 127.0.0.1 $MP 10
}
stop_milter() {
	p=$(cat "$T/milter.pid" 2>/dev/null) || return 0
	kill -TERM "$p" 2>/dev/null
	i=0
	while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	kill -KILL "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	rm -f "$T/milter.pid"
}
start_milter || { tw_fail "tailwart-milter start"; cat "$T/milter.log"; tw_summary; exit 1; }
# started as root with `user = nobody`: it runs as nobody
u=$(awk '/^Uid:/ { print $2 }' "/proc/$(cat "$T/milter.pid")/status" 2>/dev/null)
[ "$u" = "$(id -u nobody)" ] && tw_ok "dropped privileges to user nobody" ||
	tw_fail "dropped privileges to user nobody" "uid=$u"

# ---- miltertest ------------------------------------------------------------------

cat >"$T/policy.lua" <<'EOF'
-- run: miltertest -D sock=inet:PORT@127.0.0.1 -s policy.lua
local function check(name, cond)
	if cond then print("ok   mt: " .. name) else print("FAIL mt: " .. name) end
end
local function step(name, f)
	local ok, err = pcall(f)
	if not ok then print("FAIL mt: " .. name .. ": " .. tostring(err)) end
end
local function open(ip)
	local conn = mt.connect(sock, 40, 0.25)
	if conn == nil then error("mt.connect failed") end
	local e = mt.negotiate(conn, nil, nil, nil)
	if e ~= nil then error("negotiate: " .. e) end
	e = mt.conninfo(conn, "client.example", ip)
	if e ~= nil then error("conninfo: " .. e) end
	return conn
end
local function envelope(conn, from, rcpt)
	local e = mt.helo(conn, "client.example")
	if e ~= nil then error("helo: " .. e) end
	e = mt.mailfrom(conn, from)
	if e ~= nil then error("mailfrom: " .. e) end
	if rcpt ~= nil and mt.getreply(conn) == SMFIR_CONTINUE then
		e = mt.rcptto(conn, rcpt)
		if e ~= nil then error("rcptto: " .. e) end
	end
end

step("dnsbl", function()
	local conn = open("192.0.2.99")
	check("DNSBL-listed client refused at connect", mt.getreply(conn) == SMFIR_REPLYCODE)
	mt.disconnect(conn)
end)
step("deny", function()
	local conn = open("192.0.2.61")
	check("denied client refused at connect", mt.getreply(conn) == SMFIR_REPLYCODE)
	mt.disconnect(conn)
end)
step("spf", function()
	local conn = open("192.0.2.7")
	check("clean client passes connect", mt.getreply(conn) == SMFIR_CONTINUE)
	envelope(conn, "<a@fail.spf.test>", nil)
	check("SPF fail refused at MAIL", mt.getreply(conn) == SMFIR_REPLYCODE)
	mt.disconnect(conn)
end)
step("greylist", function()
	local conn = open("192.0.2.8")
	envelope(conn, "<a@pass.spf.test>", "<user@example.test>")
	check("greylisted at first sight", mt.getreply(conn) == SMFIR_REPLYCODE)
	mt.disconnect(conn)
	mt.sleep(2.5)
	conn = open("192.0.2.8")
	envelope(conn, "<a@pass.spf.test>", "<user@example.test>")
	check("passes after the delay", mt.getreply(conn) == SMFIR_CONTINUE)
	mt.data(conn)
	mt.header(conn, "From", "a@pass.spf.test")
	mt.header(conn, "Authentication-Results", "mx.example.test; spf=pass (forged)")
	mt.header(conn, "Subject", "hello")
	mt.eoh(conn)
	mt.bodystring(conn, "hello\r\n")
	mt.eom(conn)
	check("end of message continues", mt.getreply(conn) == SMFIR_CONTINUE)
	check("Authentication-Results inserted",
	    mt.eom_check(conn, MT_HDRINSERT, "Authentication-Results"))
	check("Received-SPF inserted", mt.eom_check(conn, MT_HDRINSERT, "Received-SPF"))
	check("forged Authentication-Results removed",
	    mt.eom_check(conn, MT_HDRDELETE, "Authentication-Results") or
	    mt.eom_check(conn, MT_HDRCHANGE, "Authentication-Results"))
	mt.disconnect(conn)
end)
step("dnswl", function()
	local conn = open("192.0.2.50")
	envelope(conn, "<b@pass.spf.test>", "<user@example.test>")
	check("DNSWL client not greylisted", mt.getreply(conn) == SMFIR_CONTINUE)
	mt.disconnect(conn)
end)
step("rate", function()
	for i = 1, 2 do
		local conn = open("192.0.2.70")
		check("connection " .. i .. " within the rate", mt.getreply(conn) == SMFIR_CONTINUE)
		mt.disconnect(conn)
	end
	local conn = open("192.0.2.70")
	check("third connection over the rate refused", mt.getreply(conn) == SMFIR_REPLYCODE)
	mt.disconnect(conn)
end)
step("allow", function()
	local conn = open("192.0.2.60")
	envelope(conn, "<c@example.org>", "<user@example.test>")
	check("allow-listed client not greylisted", mt.getreply(conn) == SMFIR_CONTINUE)
	mt.disconnect(conn)
end)
print("miltertest done")
EOF
if command -v miltertest >/dev/null; then
	timeout 60 miltertest -D "sock=inet:$MP@127.0.0.1" -s "$T/policy.lua" >"$T/mt.out" 2>&1
	rc=$?
	cat "$T/mt.out" | grep -E '^(ok|FAIL) ' | while IFS= read -r l; do
		case "$l" in
		ok*) tw_ok "${l#ok   }" ;;
		*) tw_fail "${l#FAIL }" ;;
		esac
	done
	if [ $rc -ne 0 ] || ! grep -q '^miltertest done' "$T/mt.out"; then
		tw_fail "miltertest script ran to the end" "rc=$rc"
		tail -n 20 "$T/mt.out" | sed 's/^/    | /'
	fi
else
	tw_fail "miltertest" "not installed (make deps)"
fi

# ---- the gate's milter client against tailwart-milter ---------------------------

timeout 20 "$PROBE" "inet:127.0.0.1:$MP" --client 192.0.2.99 >"$T/p1.txt" 2>&1
grep -q '^connect reject 554 5.7.1 .*bl.test' "$T/p1.txt" && tw_ok "probe: listed client 554 at connect" ||
	{ tw_fail "probe: listed client 554 at connect"; sed 's/^/    | /' "$T/p1.txt"; }

# ---- Postfix with smtpd_milters ----------------------------------------------------

tw_backend_start pf $BP xclient || { tw_fail "postfix start"; tw_summary; exit 1; }
PF=$T/pf
postconf -c "$PF/etc" -e "smtpd_milters = inet:127.0.0.1:$MP" "milter_protocol = 6" \
	"milter_default_action = tempfail" "milter_connect_macros = j {daemon_name} v _" \
	"smtpd_peername_lookup = no"
postfix -c "$PF/etc" reload >/dev/null 2>&1
sleep 1
S="--server 127.0.0.1:$BP --to user@example.test"

# (Postfix answers a connect-stage reject after XCLIENT with its own 554 text)
tw_swaks_expect "postfix: DNSBL-listed client refused" '554' $S \
	--xclient-addr 192.0.2.99 --from a@pass.spf.test
grep -q 'stage=connect client=192.0.2.99 check=dnsbl verdict=reject' "$T/milter.log" &&
	tw_ok "postfix: the refusal came from the DNSBL check" ||
	tw_fail "postfix: the refusal came from the DNSBL check"
tw_swaks_expect "postfix: SPF fail refused at MAIL" '550 5\.7\.23' $S \
	--xclient-addr 192.0.2.10 --ehlo client.example --from a@fail.spf.test
tw_swaks_expect "postfix: greylisted at first sight" '451 4\.7\.1' $S \
	--xclient-addr 192.0.2.11 --ehlo client.example --from pf@pass.spf.test
sleep 2.5
tw_swaks_expect "postfix: accepted after the delay" '250' $S \
	--xclient-addr 192.0.2.11 --ehlo client.example --from pf@pass.spf.test \
	--header "Subject: after greylisting"
MD=$PF/mail/user
if tw_wait_maildir "$MD" 1 10; then
	f=$(grep -l 'after greylisting' "$MD"/new/* 2>/dev/null | head -n 1)
	if [ -n "$f" ] && grep -q '^Authentication-Results: mx.example.test;' "$f" &&
		grep -q 'spf=pass smtp.mailfrom=pf@pass.spf.test' "$f" &&
		grep -q '^Received-SPF: pass' "$f"; then
		tw_ok "postfix: delivered message carries Authentication-Results and Received-SPF"
	else
		tw_fail "postfix: delivered message carries Authentication-Results"
		sed 's/^/    | /' "$f" 2>/dev/null | head -n 20
	fi
else
	tw_fail "postfix: message delivered"
fi

# a message signed by opendkim (through the gate's milter client), verified
# by tailwart-milter behind Postfix
printf 'From: a@example.test\nTo: user@example.test\nSubject: signed through the chain\nDate: Wed, 25 Nov 2026 12:00:00 +0000\nMessage-ID: <signed.2@example.test>\n\nA signed body.\n' >"$T/dkim/msg.txt"
sh "$TW_PEERS/dkimsign.sh" "$T/dkim" $DKP relaxed/simple "$T/dkim/msg.txt" "$T/dkim/signed.eml"
if grep -q '^DKIM-Signature:' "$T/dkim/signed.eml" 2>/dev/null; then
	tw_swaks_expect "postfix: signed message accepted" '250' $S \
		--xclient-addr 192.0.2.11 --ehlo client.example --from pf@pass.spf.test \
		--data "$T/dkim/signed.eml"
	if tw_wait_maildir "$MD" 2 10; then
		f=$(grep -l 'signed through the chain' "$MD"/new/* 2>/dev/null | head -n 1)
		if [ -n "$f" ] && grep -Eq 'dkim=pass header.d=example.test header.s=sel' "$f"; then
			tw_ok "postfix: dkim=pass in the delivered message"
		else
			tw_fail "postfix: dkim=pass in the delivered message"
			sed 's/^/    | /' "$f" 2>/dev/null | head -n 20
		fi
	else
		tw_fail "postfix: signed message delivered"
	fi
else
	tw_fail "opendkim signed the test message"
fi

# the milter down: Postfix's milter_default_action = tempfail
stop_milter
tw_swaks_expect "postfix: milter down gives 451" '451 4\.7\.1' $S \
	--xclient-addr 192.0.2.12 --ehlo client.example --from a@pass.spf.test

# 1,000 sessions through an ASan build of tailwart-milter (when built): no
# leak or error report at exit
ASAN_MILTER=$TW_ROOT/build-asan/tailwart-milter
if [ -x "$ASAN_MILTER" ]; then
	AP=28605
	sed "s/^milter_listen = .*/milter_listen = inet:$AP@127.0.0.1/" "$T/gate.conf" >"$T/asan.conf"
	ASAN_OPTIONS=detect_leaks=1 "$ASAN_MILTER" -f -c "$T/asan.conf" >"$T/asan.log" 2>&1 </dev/null &
	ap=$!
	tw_cleanup_add "kill -KILL $ap 2>/dev/null"
	tw_wait_port 127.0.0.1 $AP 10
	timeout 300 "$PROBE" --sessions 1000 "inet:127.0.0.1:$AP" --client 192.0.2.60 \
		--from soak@pass.spf.test >"$T/soak.txt" 2>&1
	grep -q '^sessions 1000 failed 0' "$T/soak.txt" && tw_ok "asan: 1000 sessions" ||
		{ tw_fail "asan: 1000 sessions"; tail -n 5 "$T/soak.txt" | sed 's/^/    | /'; }
	n=$(grep -c ' eom client=192.0.2.60' "$T/asan.log")
	[ "$n" -eq 1000 ] && tw_ok "asan: 1000 messages with Authentication-Results" ||
		tw_fail "asan: 1000 messages" "saw $n"
	kill -TERM $ap 2>/dev/null
	i=0
	while kill -0 $ap 2>/dev/null && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
	if grep -Eq 'ERROR: (Address|Leak)Sanitizer|runtime error' "$T/asan.log"; then
		tw_fail "asan: no leak or error report"
		grep -E -A 15 'Sanitizer|runtime error' "$T/asan.log" | head -n 30 | sed 's/^/    | /'
	elif grep -q 'tailwart-milter stopped' "$T/asan.log"; then
		tw_ok "asan: clean exit, no leak report"
	else
		tw_fail "asan: clean exit" "no 'stopped' line"
	fi
else
	echo "# build-asan/tailwart-milter not built: ASan soak skipped (make check builds it)"
fi

if grep -Eq 'runtime error|Sanitizer' "$T/milter.log"; then
	tw_fail "tailwart-milter: sanitizer report"
	grep -E -A 10 'runtime error|Sanitizer' "$T/milter.log" | head -n 20 | sed 's/^/    | /'
fi
tw_summary

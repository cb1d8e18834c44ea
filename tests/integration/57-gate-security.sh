#!/bin/sh
# 57-gate-security: regression tests for the gate defects of issue 8.
#  - MAIL parameters are passed on as parsed, never cut from the client's
#    line: after a milter's CHGFROM the backend gets the new address and
#    the original parameters, not text from a quoted local part;
#  - a client that talks before the greeting with no pregreet test pending
#    (pregreet_action=log, allow-listed) is served at once, not at the 421;
#  - pass-through: idle timeout, a half-closed connection frees its slot,
#    passthrough_max_per_ip;
#  - a hostile milter's added headers are bounded in bytes (message_size_limit)
#    and count (1000): over it, that milter's default action; the worker
#    stays small;
#  - XCLIENT HELO= is xtext; a trusted PROXY header with a v4-mapped client
#    and an IPv6 destination still hands off (PROXY v2 TCP6, mapped);
#  - client-chosen values (from=, to=, helo=) are quoted in the gate's log;
#  - timeout_session bounds a whole session.
# Ports: gate 25057, pass-through 25058, fake backends 26057-26058, Postfix
# 26059, milters 28571-28579.
. "$(dirname "$0")/../lib.sh"
T=$(tw_tmpdir)
tw_need_gate
TM=$TW_BUILD/tests/testmilter
GP=25057
FAKE="$TW_PEERS/fakebackend.py"

gate() { # gate NAME key=value...: (re)start the gate
	n=$1
	shift
	tw_gate_restart "$n" listen=127.0.0.1:$GP "$@"
}

# ---- 6: MAIL parameters after a milter's CHGFROM --------------------------------
tw_bg fake6 python3 "$FAKE" --die-at none --lifetime 60 --log "$T/fake6.log" 26057
tw_wait_port 127.0.0.1 26057 5 >/dev/null
tw_bg tm6 "$TM" -s inet:28571@127.0.0.1 -l "$T/tm6.log" -F "<new@example.org>"
tw_wait_port 127.0.0.1 28571 5 >/dev/null
gate chgfrom backend=127.0.0.1:26057 milters=inet:127.0.0.1:28571
tw_chat_expect "6: quoted local part holding '>' and a milter's CHGFROM: accepted" \
	-b 127.0.0.9 127.0.0.1 $GP <<'EOF'
< 220
> EHLO client.example.org
< 250
> MAIL FROM:<"x> AUTH=<ceo@mx.test> X-"@evil.example> SIZE=100
< 250
> RCPT TO:<user@example.test>
< 250
> DATA
< 354
> Subject: chgfrom
>
> body
> .
< 250
> QUIT
< 221
EOF
if grep -q '^cmd MAIL FROM:<new@example.org> SIZE=100$' "$T/fake6.log" &&
	! grep -q '^cmd MAIL FROM:<new@example.org>.*AUTH=' "$T/fake6.log"; then
	tw_ok "6: the backend got the new sender and the parsed SIZE only, no AUTH="
else
	tw_fail "6: the backend got the new sender and the parsed SIZE only, no AUTH=" \
		"$(grep '^cmd MAIL' "$T/fake6.log")"
fi
tw_bg_stop tm6
tw_bg_stop fake6

# ---- 8: a client that talks before the greeting, no pregreet test pending -------
# pregreet_action=log (the test only logs) and an allow-listed client (no test
# at all): the screen passes the early bytes on and the client is served at
# once, not after timeout_command (421).
tw_bg fake8 python3 "$FAKE" --die-at none --lifetime 60 --log "$T/fake8.log" 26058
tw_wait_port 127.0.0.1 26058 5 >/dev/null
early() { # early NAME [FIRST]: FIRST (if any), EHLO and NOOP in one write;
	# the greeting and both 250s within 4 s
	tw_chat_expect "$1" -t 4 -b 127.0.0.9 127.0.0.1 $GP <<-EOF
	>> ${2:-}EHLO early.example.org\\r\\nNOOP\\r\\n
	< 220
	< 250
	< 250 2.0.0
	> QUIT
	< 221
	EOF
}
gate pregreetlog backend=127.0.0.1:26058 pregreet_action=log pregreet_wait=1s timeout_command=8s
early "8: pregreet_action=log: an early talker is served promptly"
grep -q 'pregreet' "$T/gate.log" && tw_ok "8: the early talk was logged" ||
	tw_fail "8: the early talk was logged" "$(tw_gate_log gate)"
# allow-listed behind a trusted proxy: the header and the commands in one write
gate allowed backend=127.0.0.1:26058 pregreet_action=enforce allow=192.0.2.9 \
	trusted_proxies=127.0.0.0/8 timeout_command=8s
early "8: an allow-listed early talker (after a PROXY header) is served promptly" \
	'PROXY TCP4 192.0.2.9 127.0.0.1 4000 25\r\n'
tw_bg_stop fake8

# ---- 7: pass-through slots are not held for ever ----------------------------------
# passthrough_max_connections=2: two idle clients are closed after
# passthrough_idle_timeout, so a third gets in; two clients that keep their
# half open after the backend closed (QUIT) free their slots after the
# linger; passthrough_max_per_ip caps one address.
tw_backend_start pt 26059 proxy
hold() { # hold NAME IP SCRIPT: a background client running SCRIPT
	printf '%b\n' "$3" >"$T/$1.chat"
	tw_bg "$1" sh -c "python3 '$TW_PEERS/smtpchat.py' -t 20 -b '$2' 127.0.0.1 25058 <'$T/$1.chat'"
}
third() { # third NAME IP: a client that gets the banner and a 221
	tw_chat_expect "$1" -t 5 -b "$2" 127.0.0.1 25058 <<-'EOF'
	< 220
	> QUIT
	< 221
	EOF
}
refused() { # refused NAME IP: the connection is closed without a banner
	tw_chat_expect "$1" -t 3 -b "$2" 127.0.0.1 25058 <<-'EOF'
	<? 220
	eof
	EOF
}
ptgate() { # ptgate NAME key=value...
	n=$1
	shift
	gate "$n" backend=127.0.0.1:26059 passthrough=127.0.0.1:25058=127.0.0.1:26059 "$@"
	tw_wait_port 127.0.0.1 25058 5 >/dev/null
}
ptgate pt passthrough_max_connections=2 passthrough_idle_timeout=3s
hold idle1 127.0.0.41 '< 220\nsleep 15'
hold idle2 127.0.0.42 '< 220\nsleep 15'
sleep 1
refused "7: two idle clients fill passthrough_max_connections=2" 127.0.0.43
sleep 4
third "7: after passthrough_idle_timeout, a third client gets in" 127.0.0.43
grep -q 'status=closed reason=idle-timeout' "$T/gate.log" && tw_ok "7: idle timeout logged" ||
	tw_fail "7: idle timeout logged" "$(grep passthrough "$T/gate.log" | tail -5)"
tw_bg_stop idle1
tw_bg_stop idle2
ptgate pt2 passthrough_max_connections=2 passthrough_idle_timeout=10m
# the backend closes after 221; these clients never close their side
hold half1 127.0.0.44 '< 220\n> QUIT\n< 221\nsleep 15'
hold half2 127.0.0.45 '< 220\n> QUIT\n< 221\nsleep 15'
sleep 8
third "7: half-closed connections free their slots" 127.0.0.46
tw_bg_stop half1
tw_bg_stop half2
ptgate pt3 passthrough_max_per_ip=1
hold ip1 127.0.0.47 '< 220\nsleep 10'
sleep 1
refused "7: passthrough_max_per_ip=1: a second connection from one address is closed" 127.0.0.47
third "7: another address still gets in" 127.0.0.48
tw_bg_stop ip1

# ---- 9: what a hostile milter can make a worker hold --------------------------------
# bad_milter hdr-flood: 2000 added headers of 64000 bytes (128 MB); the gate
# stops at message_size_limit (1M here) and applies the milter's default
# action; the worker stays small. hdr-many: 1500 small headers, over the
# count bound (1000). Two milters' additions count together.
BAD=$TW_BUILD/tests/bad_milter
tw_bg fake9 python3 "$FAKE" --die-at none --lifetime 120 --log "$T/fake9.log" 26057
tw_wait_port 127.0.0.1 26057 5 >/dev/null
hwm() { # hwm: the largest VmHWM (kB) among the gate master's children
	m=0
	for p in $(pgrep -P "$(tw_gate_pid gate)"); do
		v=$(awk '/^VmHWM:/ { print $2 }' "/proc/$p/status" 2>/dev/null)
		[ -n "$v" ] && [ "$v" -gt "$m" ] && m=$v
	done
	echo "$m"
}
send9() { # send9 NAME ERE: one message; the reply to the end of data matches ^ERE
	tw_chat_expect "$1" -t 60 -b 127.0.0.9 127.0.0.1 $GP <<-EOF
	< 220
	> EHLO client.example.org
	< 250
	> MAIL FROM:<a@example.org>
	< 250
	> RCPT TO:<user@example.test>
	< 250
	> DATA
	< 354
	> Subject: flood
	>
	> body
	> .
	< $2
	> QUIT
	< 221
	EOF
}
tw_bg bad9 "$BAD" -p 28572 -m hdr-flood -t E -n 20 -T 120
tw_wait_port 127.0.0.1 28572 5 >/dev/null
gate flood backend=127.0.0.1:26057 milters=inet:127.0.0.1:28572 \
	milter_default_action=tempfail milter_eom_timeout=60s message_size_limit=1M \
	workers_min=1 workers_max=1
send9 "9: 128 MB of added headers: the milter's default action (tempfail, 4xx)" "4[0-9][0-9] "
kb=$(hwm)
[ "$kb" -gt 0 ] && [ "$kb" -lt 98304 ] && tw_ok "9: the worker stayed small (VmHWM ${kb} kB < 96 MB)" ||
	tw_fail "9: the worker stayed small" "largest VmHWM ${kb} kB"
grep -q 'header changes larger than the message size limit' "$T/gate.log" && tw_ok "9: the refusal is logged" ||
	tw_fail "9: the refusal is logged" "$(tw_gate_log gate)"
tw_bg_stop bad9
tw_bg bad9b "$BAD" -p 28573 -m hdr-many -t E -n 20 -T 120
tw_wait_port 127.0.0.1 28573 5 >/dev/null
gate many backend=127.0.0.1:26057 milters=inet:127.0.0.1:28573 milter_default_action=reject
send9 "9: 1500 added headers (over 1000): the milter's default action (reject, 5xx)" "5[0-9][0-9] "
tw_bg_stop bad9b
# two milters of 10 x 64000 bytes each: 640 kB apiece is under the 1M limit,
# 1.28 MB together is not (the bound holds for all milters of a message)
tw_bg bad9c "$BAD" -p 28574 -m hdr-flood -k 10 -t E -n 20 -T 120
tw_bg bad9d "$BAD" -p 28575 -m hdr-flood -k 10 -t E -n 20 -T 120
tw_wait_port 127.0.0.1 28574 5 >/dev/null
tw_wait_port 127.0.0.1 28575 5 >/dev/null
gate two backend=127.0.0.1:26057 milters="inet:127.0.0.1:28574, inet:127.0.0.1:28575" \
	milter_default_action=tempfail milter_eom_timeout=60s message_size_limit=1M
send9 "9: two milters adding 640 kB each (1.28 MB > 1M together): tempfail (4xx)" "4[0-9][0-9] "
tw_bg_stop bad9c
tw_bg_stop bad9d
grep -q '^accepted' "$T/fake9.log" && tw_fail "9: the backend accepted nothing" "$(cat "$T/fake9.log" | head -5)" ||
	tw_ok "9: the backend accepted nothing"
tw_bg_stop fake9

# ---- XCLIENT attributes are xtext; a v4-mapped client behind a trusted proxy ----------
tw_bg fakex python3 "$FAKE" --die-at none --lifetime 60 --log "$T/fakex.log" \
	--ext "PIPELINING,8BITMIME,ENHANCEDSTATUSCODES,XCLIENT ADDR PORT NAME HELO PROTO" 26058
tw_wait_port 127.0.0.1 26058 5 >/dev/null
gate xclient backend=127.0.0.1:26058 backend_handoff=xclient
helo_mail() { # helo_mail NAME HELO [FIRST]: FIRST (a smtpchat line), EHLO HELO, MAIL gets 250
	printf '%s\n< 220\n> EHLO %s\n< 250\n> MAIL FROM:<a@example.org>\n< 250\n> QUIT\n< 221\n' \
		"${3:-# no header}" "$2" | tw_chat_expect "$1" -b 127.0.0.9 127.0.0.1 $GP
}
helo_mail "xclient: a HELO name with '+' and '=' is handed off" a+b=c.example.org
grep -q '^cmd XCLIENT .*HELO=a+2Bb+3Dc.example.org' "$T/fakex.log" &&
	tw_ok "xclient: HELO= is xtext-encoded (a+2Bb+3Dc.example.org)" ||
	tw_fail "xclient: HELO= is xtext-encoded" "$(grep XCLIENT "$T/fakex.log")"
tw_bg_stop fakex
tw_bg fakem python3 "$FAKE" --die-at none --lifetime 60 --log "$T/fakem.log" 26058
tw_wait_port 127.0.0.1 26058 5 >/dev/null
gate mapped backend=127.0.0.1:26058 trusted_proxies=127.0.0.0/8
helo_mail "trusted PROXY header, v4-mapped client to an IPv6 address: MAIL accepted" \
	client.example.org "proxy2 ::ffff:192.0.2.77 4000 2001:db8::25 25"
grep -q '^proxy v2 .*00000000000000000000ffffc000024d20010db8' "$T/fakem.log" &&
	tw_ok "v4-mapped: the backend's PROXY header names the client (::ffff:192.0.2.77)" ||
	tw_fail "v4-mapped: the backend's PROXY header names the client" "$(grep proxy "$T/fakem.log")"
tw_bg_stop fakem

# ---- log values quoted: a quoted local part cannot fake key=value fields ---------
tw_bg fakel python3 "$FAKE" --die-at none --lifetime 60 --log "$T/fakel.log" 26058
tw_wait_port 127.0.0.1 26058 5 >/dev/null
gate logq backend=127.0.0.1:26058
tw_chat_expect "log: a sender with a quoted local part is accepted" -b 127.0.0.9 127.0.0.1 $GP <<'EOF'
< 220
> EHLO client.example.org
< 250
> MAIL FROM:<"x> reason=ok rcpts=0 y"@evil.example>
< 250
> RCPT TO:<user@example.test>
< 250
> DATA
< 354
> Subject: log
>
> .
< 250
> QUIT
< 221
EOF
grep -q "accepted from=\"<'x> reason=ok rcpts=0 y'@evil.example>\" rcpts=1 " "$T/gate.log" &&
	tw_ok "log: from= is one quoted value (no fake reason=/rcpts= fields)" ||
	tw_fail "log: from= is one quoted value" "$(grep ' accepted ' "$T/gate.log")"
tw_bg_stop fakel

# ---- a whole-session deadline (timeout_session) ---------------------------------------
# a client that keeps talking within timeout_command is still closed when the
# session is older than timeout_session (3 s here)
tw_bg fakes python3 "$FAKE" --die-at none --lifetime 60 --log "$T/fakes.log" 26058
tw_wait_port 127.0.0.1 26058 5 >/dev/null
gate session backend=127.0.0.1:26058 timeout_session=3s timeout_command=60s
tw_chat_expect "timeout_session=3s: a client sending NOOP every second gets 421" -t 6 \
	-b 127.0.0.9 127.0.0.1 $GP <<'EOF'
< 220
> EHLO client.example.org
< 250
sleep 1
> NOOP
< 250
sleep 1
> NOOP
< 250
sleep 1.5
< 421 4.4.2
EOF
grep -q 'disconnect reason=session-deadline' "$T/gate.log" && tw_ok "timeout_session: logged" ||
	tw_fail "timeout_session: logged" "$(tw_gate_log gate)"
tw_bg_stop fakes

tw_summary

#!/bin/bash
# 48-relay-security: issue 8 regressions for the relay.
# (1) SMTP smuggling: DATA ends on CRLF.CRLF only; every bare-CR/LF ending
#     variant with a second transaction behind it gets one 550 5.6.0, the
#     "second" message is never queued, and the session goes on.
# (2) the master (root) never follows links the relay user planted in the
#     spool: a root-owned directory behind incoming/ or state/ keeps its
#     owner, mode and files.
# (4) a queue file with a crafted trailer (dkim -1) goes to corrupt/; the
#     delivery worker and `queue list`/`show` survive it.
# AUTH: failed attempts are delayed and capped per session and per client.
# BDAT: one deadline per chunk (a client dribbling a chunk is cut off).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # tests/run uses sh
. "$(dirname "$0")/../lib.sh"
. "$TW_PEERS/relay_lib.sh"
rl_need_relay

T=$(tw_tmpdir)
RP=27800
AP=27802
SH=27801	# nothing listens there: messages stay queued
asuser() { setpriv --reuid tailwart --regid tailwart --clear-groups "$@"; }

rl_conf "$T/relay.conf" "listen=127.0.0.1:$RP" "smarthost=[localhost]:$SH" \
	"spool_dir=$T/spool" "min_backoff=1h" "max_backoff=1h" "tls=none" \
	"tls_ca=" "auth_user=" "auth_password="
rl_start "$T/relay.conf" || { tw_fail "relay start"; tw_summary; exit 1; }
# the control socket's mode is set at bind (umask), not by a chmod of its path
tw_wait_file_grep "$T/relay.log" 'scheduler started' 10
m=$(stat -c %A "$T/spool/control" 2>/dev/null)
if [ "$m" = "srw-rw----" ]; then tw_ok "control socket mode 0660"
else tw_fail "control socket mode 0660" "got '$m'"; fi

# ---- (1) smuggling --------------------------------------------------------
smuggle() {	# NAME ENDING (smtpchat escapes)
	tw_chat_expect "smuggling $1: one 550 5.6.0, session goes on" 127.0.0.1 $RP <<CHAT
< 220
> EHLO client.example.test
< 250
> MAIL FROM:<sender@example.test>
< 250
> RCPT TO:<user@example.test>
< 250
> DATA
< 354
>> Subject: innocent\\r\\n\\r\\nhello$2MAIL FROM:<ceo@example.com>\\r\\nRCPT TO:<victim@remote.example>\\r\\nDATA\\r\\nSubject: smuggled\\r\\n\\r\\nsmuggled\\r\\n.\\r\\n
< 550 5\\.6\\.0
alive
> MAIL FROM:<sender@example.test>
< 250
> RCPT TO:<user@example.test>
< 250
> DATA
< 354
>> Subject: after-smuggling\\r\\n\\r\\nfine\\r\\n.\\r\\n
< 250 2\\.0\\.0 Ok: queued as
> QUIT
< 221
CHAT
}
smuggle 'LF.CRLF' '\n.\r\n'
smuggle 'CRLF.LF' '\r\n.\n'
smuggle 'LF.LF' '\n.\n'
smuggle 'CR.CRLF' '\r.\r\n'
smuggle 'CRLF.CR' '\r\n.\r'
smuggle 'CR.CR' '\r.\r'
smuggle 'LF.CR' '\n.\r'
smuggle 'CR.LF' '\r.\n'
smuggle 'CRLF.CRCRLF' '\r\n.\r\r\n'
smuggle 'LFLF.CRLF' '\n\n.\r\n'
if grep -q 'queued .*ceo@example.com' "$T/relay.log" ||
	"$TW_RELAY" -c "$T/relay.conf" queue list 2>&1 | grep -q 'ceo@example.com'; then
	tw_fail "no smuggled message queued" "$(grep 'ceo@example.com' "$T/relay.log")"
else
	tw_ok "no smuggled message queued"
fi
n=$(grep -c 'reject stage=data reason=bare-lf' "$T/relay.log")
[ "$n" -ge 1 ] && tw_ok "bare LF refusal logged" || tw_fail "bare LF refusal logged" "$(tail -n 5 "$T/relay.log")"
tw_chat_expect "bare LF in BDAT: 550 5.6.0" 127.0.0.1 $RP <<'CHAT'
< 220
> EHLO client.example.test
< 250
> MAIL FROM:<sender@example.test>
< 250
> RCPT TO:<user@example.test>
< 250
>> BDAT 12 LAST\r\nSubject: x\n\n
< 550 5\.6\.0
alive
CHAT

# ---- log values quoted: a quoted local part cannot fake key=value fields ----
tw_chat_expect "log: a sender with a quoted local part is queued" 127.0.0.1 $RP <<'CHAT'
< 220
> EHLO client.example.test
< 250
> MAIL FROM:<"x> nrcpt=0 dkim=signed y"@example.test>
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
CHAT
grep -q "queued client=127.0.0.1 from=\"<'x> nrcpt=0 dkim=signed y'@example.test>\" nrcpt=1 " "$T/relay.log" &&
	tw_ok "log: from= is one quoted value (no fake nrcpt=/dkim= fields)" ||
	tw_fail "log: from= is one quoted value" "$(grep ' queued ' "$T/relay.log" | tail -n 2)"
rl_log_wait relay "to=\"<user@example.test>\" relay=[^ ]* delay=" 20 &&
	tw_ok "log: to= is one quoted value" ||
	tw_fail "log: to= is one quoted value" "$(grep ' to=' "$T/relay.log" | tail -n 2)"

# ---- (2) links planted by the relay user in the spool ---------------------
rl_stop
mkdir -m 0700 "$T/rootdir"
echo "keep me" >"$T/rootdir/precious"
chmod 0600 "$T/rootdir/precious"
snap() { stat -c '%n %U:%G %a' "$T/rootdir" "$T/rootdir/precious" 2>&1; cat "$T/rootdir/precious" 2>&1; }
before=$(snap)
for sub in incoming state; do
	asuser mv "$T/spool/$sub" "$T/spool/$sub.real"
	asuser ln -s "$T/rootdir" "$T/spool/$sub"
	rl_start "$T/relay.conf" link-$sub >/dev/null 2>&1
	rl_stop link-$sub
	after=$(snap)
	if [ "$before" = "$after" ]; then
		tw_ok "$sub -> root-owned dir: target untouched (owner, mode, files)"
	else
		tw_fail "$sub -> root-owned dir: target untouched (owner, mode, files)" "before: $before / after: $after"
	fi
	grep -q "spool $sub: a symbolic link" "$T/link-$sub.log" && tw_ok "$sub link refused and logged" ||
		tw_fail "$sub link refused and logged" "$(tail -n 3 "$T/link-$sub.log")"
	# put things back (as root, whatever the relay did)
	rm -f "$T/spool/$sub"
	mv "$T/spool/$sub.real" "$T/spool/$sub"
	chown -R root:root "$T/rootdir"; chmod 0700 "$T/rootdir"
	[ -e "$T/rootdir/precious" ] || { echo "keep me" >"$T/rootdir/precious"; chmod 0600 "$T/rootdir/precious"; }
done
rl_start "$T/relay.conf" || { tw_fail "relay restart"; tw_summary; exit 1; }

# ---- (4) crafted queue file: dkim -1 trailer --------------------------------
ID=00000001DEADBEEF
asuser /usr/bin/python3 - "$T/spool/queue/$ID" "$ID" <<'PY'
import sys
path, qid = sys.argv[1], sys.argv[2]
env = ("TWQ1\nid %s\ntime 1700000000\nfrom sender@example.test\nrcpt user@example.test\ndata\n" % qid).encode()
body = b"Subject: crafted\r\n\r\nbody\r\n"
t = len(env) + len(body)
open(path, "wb").write(env + body + b"dkim -1\n" + b"end %016x\n" % t)
PY
out=$(rl_q "$T/relay.conf" list 2>&1); rc=$?
if [ $rc -lt 128 ] && echo "$out" | grep -q "$ID queue: unreadable"; then
	tw_ok "queue list survives the crafted file"
else
	tw_fail "queue list survives the crafted file" "rc=$rc $out"
fi
out=$(rl_q "$T/relay.conf" show $ID 2>&1); rc=$?
[ $rc -lt 128 ] && tw_ok "queue show survives the crafted file" ||
	tw_fail "queue show survives the crafted file" "rc=$rc $out"
rl_q "$T/relay.conf" flush >/dev/null 2>&1
if rl_log_wait relay "$ID corrupt queue file \(bad trailer\): moved to corrupt/" 15 &&
	[ -f "$T/spool/corrupt/$ID" ] && [ ! -e "$T/spool/queue/$ID" ]; then
	tw_ok "delivery worker moves it to corrupt/"
else
	tw_fail "delivery worker moves it to corrupt/" "$(tail -n 5 "$T/relay.log"; ls "$T/spool/corrupt" "$T/spool/queue")"
fi
if grep -Eq 'exited \(status|Sanitizer|runtime error' "$T/relay.log"; then
	tw_fail "no relay process crashed" "$(grep -E 'exited \(status' "$T/relay.log" | head -n 3)"
else
	tw_ok "no relay process crashed"
fi

# ---- AUTH: failures delayed, capped per session and per client --------------
tw_certs
export RELAY_CLIENT_PW='right pw'
rl_conf "$T/auth.conf" "listen=127.0.0.1:$AP" "smarthost=[localhost]:$SH" \
	"spool_dir=$T/spool-auth" "min_backoff=1h" "max_backoff=1h" "tls=none" \
	"tls_ca=" "auth_user=" "auth_password=" "smtp_timeout=3s" \
	"client_networks=127.0.0.2/32" "smtpd_tls_cert=$T/cert.pem" "smtpd_tls_key=$T/key.pem" \
	"smtpd_auth_user=client@example.test" "smtpd_auth_password=%{env:RELAY_CLIENT_PW}%"
rl_start "$T/auth.conf" auth || { tw_fail "auth relay start"; tw_summary; exit 1; }
WRONG=$(printf '\0client@example.test\0wrong' | base64 -w0)
RIGHT=$(printf '\0client@example.test\0right pw' | base64 -w0)
t0=$(date +%s%N)
tls_chat() {	# NAME BIND_IP, the rest of the script on stdin, after STARTTLS and EHLO
	{ printf '%s\n' '< 220' '> EHLO client.example.test' '< 250' '> STARTTLS' '< 220' \
		starttls '> EHLO client.example.test' '< 250'; cat; } |
		tw_chat_expect "$1" -b "$2" -t 30 127.0.0.1 $AP
}
wrongs() {	# N: N-1 wrong passwords get 535, the Nth 421 and the end
	for i in $(seq 2 "$1"); do printf '> AUTH PLAIN %s\n< 535 5\\.7\\.8\n' "$WRONG"; done
	printf '> AUTH PLAIN %s\n< 421 4\\.7\\.0\neof\n' "$WRONG"
}
wrongs 3 | tls_chat "AUTH: 3rd failure in a session ends it with 421 4.7.0" 127.0.0.1
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ $ms -ge 5500 ] && tw_ok "AUTH: failures answered late, growing (3 failures took ${ms} ms)" ||
	tw_fail "AUTH: failures answered late, growing" "3 failures took ${ms} ms"
wrongs 2 | tls_chat "AUTH: the client's 5th failure (2nd session) gets 421 4.7.0" 127.0.0.1
tw_chat_expect "AUTH: that client is then refused at connect (421 4.7.0)" -b 127.0.0.1 127.0.0.1 $AP <<CHAT
< 421 4\.7\.0
eof
CHAT
tls_chat "AUTH: another client still authenticates" 127.0.0.3 <<CHAT
> AUTH PLAIN $RIGHT
< 235 2\.7\.0
> QUIT
< 221
CHAT
grep -q 'client=127.0.0.1 reject reason=auth-limit' "$T/auth.log" && tw_ok "AUTH limit logged" ||
	tw_fail "AUTH limit logged" "$(grep auth "$T/auth.log" | tail -n 3)"

# ---- BDAT: one deadline per chunk ---------------------------------------------
# smtp_timeout = 3s; the client announces 100 bytes and sends one a second
out=$(/usr/bin/python3 - "$AP" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), source_address=("127.0.0.2", 0))
s.settimeout(20)
f = s.makefile("rb")
def reply():
    while True:
        l = f.readline()
        if not l or l[3:4] != b"-":
            return l
reply()
for c in (b"EHLO client.example.test", b"MAIL FROM:<sender@example.test>", b"RCPT TO:<user@example.test>"):
    s.sendall(c + b"\r\n"); reply()
s.sendall(b"BDAT 100 LAST\r\n")
t0 = time.time()
s.settimeout(1)
got = b""
for i in range(20):
    try:
        s.sendall(b"x")
    except OSError:
        break
    try:
        d = s.recv(512)
        got += d
        if not d or got.endswith(b"\r\n"):
            break
    except socket.timeout:
        pass
print("%.1f %s" % (time.time() - t0, got.decode(errors="replace").strip()))
PY
)
secs=${out%% *}
case "$out" in
*"421 4.4.2"*) [ "${secs%.*}" -le 6 ] && tw_ok "BDAT dribbled byte by byte: 421 4.4.2 after ${secs} s" ||
	tw_fail "BDAT dribbled byte by byte: cut off by the chunk deadline" "$out" ;;
*) tw_fail "BDAT dribbled byte by byte: cut off by the chunk deadline" "$out" ;;
esac

tw_summary

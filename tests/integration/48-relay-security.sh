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
if grep -q 'from=<ceo@example.com>' "$T/relay.log" ||
	"$TW_RELAY" -c "$T/relay.conf" queue list 2>&1 | grep -q 'ceo@example.com'; then
	tw_fail "no smuggled message queued" "$(grep 'ceo@example.com' "$T/relay.log")"
else
	tw_ok "no smuggled message queued"
fi
n=$(grep -c 'reject reason=bare-lf' "$T/relay.log")
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

tw_summary

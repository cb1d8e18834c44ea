#!/bin/sh
# 25-gate-data: message content arrives byte for byte through the gate, both
# as BDAT chunks (Postfix offers CHUNKING) and as DATA with the gate's own
# dot-stuffing (a Postfix that hides CHUNKING): dot lines, a lone ".",
# "..", lines of 998 octets, 8-bit text, and 300 KB that cross the chunk
# boundaries.
# Ports: gate 25125 (-> 26125, BDAT), 25126 (-> 26126, DATA).
. "$(dirname "$0")/../lib.sh"
T=$(tw_tmpdir)
tw_need_gate

tw_backend_start bdat 26125 proxy
BACKEND_MAIN_CF="smtpd_discard_ehlo_keywords = chunking" tw_backend_start data 26126 proxy
tw_gate_conf "$T/b.conf" listen=127.0.0.1:25125 backend=127.0.0.1:26125 pid_file="$T/b.gatepid"
tw_gate_conf "$T/d.conf" listen=127.0.0.1:25126 backend=127.0.0.1:26126 pid_file="$T/d.gatepid"
tw_start_gate "$T/b.conf" gb >/dev/null || tw_fail "gate (BDAT backend) starts"
tw_start_gate "$T/d.conf" gd >/dev/null || tw_fail "gate (DATA backend) starts"

# mkmsg FILE SUBJECT: a message full of dot-stuffing traps in FILE, and in
# FILE.chat the smtpchat dialogue that sends it exactly (dot-stuffed by us,
# non-ASCII as \xHH): swaks would add an empty line before the final dot.
mkmsg() {
	python3 - "$1" "$2" <<'PY'
import sys
out = ["From: you@example.org", "To: user@example.test", "Subject: " + sys.argv[2],
       "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
       "Content-Transfer-Encoding: 8bit", ""]
if not sys.argv[2].endswith("tiny"):
    out += [".", "..", "...", ".leading dot", " . not a dot line", "", "."]
    out += ["x" * 998, "." + "y" * 997]
    out += ["gr\u00fc\u00dfe aus k\u00f6ln \u2014 8-bit body"]
    i = 0
    while sum(len(l) + 2 for l in out) < 300000:
        out.append(("." if i % 7 == 0 else "") + "line %06d " % i + "z" * (i % 120))
        i += 1
    out += ["", ".", "last line"]
else:
    out = out[:-1]
msg = ("\r\n".join(out) + "\r\n").encode("utf-8")
open(sys.argv[1], "wb").write(msg)
stuffed = b"".join((b"." + l if l.startswith(b".") else l) for l in msg.splitlines(keepends=True))
esc = "".join(chr(c) if 32 <= c < 127 and c != 92 else
              {13: "\\r", 10: "\\n", 92: "\\\\"}.get(c, "\\x%02x" % c) for c in stuffed)
chat = ["< 220", "> EHLO client.example.org", "< 250 ", "> MAIL FROM:<you@example.org>",
        "< 250", "> RCPT TO:<user@example.test>", "< 250", "> DATA", "< 354",
        ">> " + esc + ".\\r\\n", "< 250 2\\.0\\.0", "> QUIT", "< 221"]
open(sys.argv[1] + ".chat", "w").write("\n".join(chat) + "\n")
PY
}

for mode in bdat data; do
	port=25125
	[ $mode = data ] && port=25126
	mkmsg "$T/$mode.eml" "tw data $mode"
	tw_chat_expect "$mode: 300 KB of dot traps accepted" 127.0.0.1 $port <"$T/$mode.eml.chat"
	if tw_wait_maildir "$T/$mode/mail/user" 1 20; then
		tw_check "$mode: body delivered byte for byte" \
			python3 "$TW_PEERS/msgcmp.py" "$T/$mode.eml" "$T/$mode/mail/user" "tw data $mode"
	else
		tw_fail "$mode: body delivered byte for byte" "nothing in the maildir"
	fi
done
tw_check "the first backend got BDAT" tw_wait_file_grep "$T/bdat/maillog" 'disconnect from .* bdat=[0-9]' 10
tw_check "the second backend got DATA (no CHUNKING offered)" sh -c \
	"grep -q 'disconnect from .* data=1' '$T/data/maillog' && ! grep -q 'bdat=' '$T/data/maillog'"

# The smallest message: headers only, no body.
mkmsg "$T/tiny.eml" "tw data tiny"
tw_chat_expect "headers-only message" 127.0.0.1 25126 <"$T/tiny.eml.chat"
n=$(ls "$T/data/mail/user/new" | wc -l)
if tw_wait_maildir "$T/data/mail/user" 2 20; then
	tw_check "headers-only message delivered with an empty body" \
		python3 "$TW_PEERS/msgcmp.py" "$T/tiny.eml" "$T/data/mail/user" "tw data tiny"
else
	tw_fail "headers-only message delivered with an empty body" "not delivered ($n)"
fi

tw_stop_gate gb
tw_stop_gate gd
tw_summary

#!/bin/bash
# 75-gate-inproxy.sh — the gate behind a load balancer: peers in
# trusted_proxies must send a PROXY v1 or v2 header first, and the address
# in it is the client's for every check and for the backend; from anyone
# else a PROXY line is just an unknown command. Also through a pass-through
# listener, split headers, a bad header, a silent trusted peer (bounded wait).
# SPF is off: the PROXY clients (192.0.2.x) would be checked against the
# machine's own resolver, which a test must not depend on.
. "$(dirname "$0")/../lib.sh"
tw_need_gate
T=$(tw_tmpdir)
tw_backend_start be 26075 proxy >/dev/null
tw_backend_start pt 26076 proxy >/dev/null
tw_gate_conf "$T/gate.conf" listen=127.0.0.1:25075 backend=127.0.0.1:26075 \
	passthrough=127.0.0.1:25076=127.0.0.1:26076 trusted_proxies=127.0.0.5/32 timeout_proxy=2s \
	deny=192.0.2.66 spf_action=ignore
tw_start_gate "$T/gate.conf" gate >/dev/null

# client.py SRC PORT MODE: MODE v1 | v2 | v2split | none | bad | silent,
# then a whole SMTP transaction; prints every server line
cat >"$T/client.py" <<'PY'
import socket, struct, sys, time
src, port, mode, fake = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = socket.socket(); s.bind((src, 0)); s.settimeout(8); s.connect(("127.0.0.1", port))
def v2():
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    addrs = socket.inet_aton(fake) + socket.inet_aton("127.0.0.1") + struct.pack("!HH", 40000, port)
    return sig + bytes([0x21, 0x11]) + struct.pack("!H", len(addrs)) + addrs
if mode == "v1":
    s.sendall(("PROXY TCP4 %s 127.0.0.1 40000 %d\r\n" % (fake, port)).encode())
elif mode == "v2":
    s.sendall(v2())
elif mode == "v2split":
    h = v2(); s.sendall(h[:7]); time.sleep(0.3); s.sendall(h[7:])
elif mode == "bad":
    s.sendall(b"PROXY TCP9 nonsense\r\n")
elif mode == "none":
    s.sendall(b"EHLO client.example.org\r\n")	# SMTP where the header must be
elif mode == "silent":
    time.sleep(4)
f = s.makefile("rb")
def line():
    l = f.readline()
    sys.stdout.write(l.decode(errors="replace")); sys.stdout.flush()
    return l
def reply():
    while True:
        l = line()
        if not l or l[3:4] != b"-":
            return l
try:
    if mode in ("none-untrusted",):
        if not reply().startswith(b"220"): sys.exit(0)
        s.sendall(("PROXY TCP4 %s 127.0.0.1 40000 %d\r\n" % (fake, port)).encode()); reply()
        s.sendall(b"QUIT\r\n"); reply(); sys.exit(0)
    if not reply().startswith(b"220"): sys.exit(0)
    for c in (b"EHLO client.example.org", b"MAIL FROM:<p@example.org>", b"RCPT TO:<user@example.test>", b"DATA"):
        s.sendall(c + b"\r\n"); r = reply()
        if not r or r[:1] in (b"4", b"5"): sys.exit(0)
    s.sendall(b"Subject: via a proxy\r\n\r\nhello\r\n.\r\n"); reply()
    s.sendall(b"QUIT\r\n"); reply()
except (socket.timeout, ConnectionError):
    print("(connection ended)")
PY
run() { python3 "$T/client.py" "$@" >"$T/out" 2>&1; }
md() { tw_maildir_count "$T/$1/mail/user"; }

before=$(md be)
run 127.0.0.5 25075 v1 192.0.2.41
grep -q '^250 2\.0\.0 Ok: .*queued' "$T/out" && tw_ok "trusted peer, PROXY v1: delivered" || tw_fail "trusted peer, PROXY v1: delivered" "$(cat "$T/out")"
tw_check "the backend logged the client from the v1 header" tw_wait_file_grep "$T/be/maillog" 'client=[^ ]*\[192\.0\.2\.41\]' 5
run 127.0.0.5 25075 v2 192.0.2.42
grep -q '^250 2\.0\.0 Ok: .*queued' "$T/out" && tw_ok "trusted peer, PROXY v2: delivered" || tw_fail "trusted peer, PROXY v2: delivered" "$(cat "$T/out")"
tw_check "the backend logged the client from the v2 header" tw_wait_file_grep "$T/be/maillog" 'client=[^ ]*\[192\.0\.2\.42\]' 5
run 127.0.0.5 25075 v2split 192.0.2.43
grep -q '^250 2\.0\.0 Ok: .*queued' "$T/out" && tw_ok "a header split over two writes is assembled" || tw_fail "a header split over two writes" "$(cat "$T/out")"
run 127.0.0.5 25075 v1 192.0.2.66
grep -q '^554 5\.7\.1' "$T/out" && tw_ok "checks apply to the header's address (deny list: 554 5.7.1)" ||
	tw_fail "checks apply to the header's address" "$(cat "$T/out")"
run 127.0.0.5 25075 none 192.0.2.44
! grep -q '^220' "$T/out" && tw_ok "trusted peer talking SMTP without a header: no greeting, closed" || tw_fail "trusted peer without a header" "$(cat "$T/out")"
run 127.0.0.5 25075 bad 192.0.2.45
! grep -q '^220' "$T/out" && tw_ok "trusted peer with a bad header: closed" || tw_fail "trusted peer with a bad header" "$(cat "$T/out")"
# timeout_proxy is 2 s; 10 s leaves room for python3 starting on a loaded machine
t0=$(date +%s)
run 127.0.0.5 25075 silent 192.0.2.46
! grep -q '^220' "$T/out" && [ $(( $(date +%s) - t0 )) -le 10 ] && tw_ok "silent trusted peer: closed after timeout_proxy" ||
	tw_fail "silent trusted peer: closed after timeout_proxy" "$(cat "$T/out")"
run 127.0.0.9 25075 none-untrusted 192.0.2.47
grep -q '^500 5\.5\.2' "$T/out" && tw_ok "untrusted peer: a PROXY line is an unknown command (500 5.5.2)" ||
	tw_fail "untrusted peer: a PROXY line is an unknown command" "$(cat "$T/out")"
run 127.0.0.5 25076 v2 192.0.2.48
grep -q '^250 2\.0\.0 Ok: .*queued' "$T/out" && tw_ok "pass-through listener behind a trusted proxy: delivered" ||
	tw_fail "pass-through listener behind a trusted proxy" "$(cat "$T/out")"
tw_check "the pass-through backend logged the client from the header" tw_wait_file_grep "$T/pt/maillog" 'client=[^ ]*\[192\.0\.2\.48\]' 5
tw_check "the three proxied messages are in the mailbox" tw_wait_maildir "$T/be/mail/user" $((before + 3)) 5
tw_swaks_expect "a plain client still delivers" "250 2\.0\.0" --server 127.0.0.1:25075 \
	--local-interface 127.0.0.9 --from a@example.org --to user@example.test
tw_check "gate master still running" kill -0 "$(tw_gate_pid gate)"
tw_summary

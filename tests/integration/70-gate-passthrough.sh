#!/bin/sh
# 70-gate-passthrough: a pass-through listener writes a PROXY v2 header with
# the client's address and splices bytes both ways (for 465/587/143/993);
# the SMTP listener and the pass-through listener work side by side.
# Ports: gate SMTP 25170, pass-through 25171 -> 26171 (second Postfix),
#        backend 26170; second gate 25173 with pass-through 25172 -> 26172
#        (Postfix with implicit TLS).
. "$(dirname "$0")/../lib.sh"
T=$(tw_tmpdir)
tw_need_gate

tw_backend_start be 26170 proxy
tw_backend_start sub 26171 proxy
tw_gate_conf "$T/gate.conf" listen=127.0.0.1:25170 backend=127.0.0.1:26170 \
	passthrough=127.0.0.1:25171=127.0.0.1:26171
tw_start_gate "$T/gate.conf" >/dev/null || { tw_fail "gate starts"; tw_summary; exit 1; }
tw_ok "gate starts"
tw_check "pass-through listener is up" tw_wait_port 127.0.0.1 25171 5

tw_swaks_expect "SMTP through the pass-through listener" "250 2\.0\.0" \
	--server 127.0.0.1:25171 --local-interface 127.0.0.7 \
	--from you@example.org --to user@example.test --h-Subject "tw passthrough"
tw_check "the second backend sees client 127.0.0.7" \
	tw_wait_file_grep "$T/sub/maillog" 'client=[^ ]*\[127\.0\.0\.7\]' 10
tw_check "delivered by the second backend" tw_wait_maildir "$T/sub/mail/user" 1 15
# Pass-through is bytes only: the banner and EHLO are the backend's own.
tw_check "the banner came from the backend itself" \
	grep -q '^<-  220 backend.example.test' "$T/swaks.out"
tw_check "EHLO answered by the backend (CHUNKING, not a gate EHLO)" \
	grep -q '^<-  250.CHUNKING' "$T/swaks.out"

tw_swaks_expect "the SMTP listener still works beside it" "250 2\.0\.0" \
	--server 127.0.0.1:25170 --local-interface 127.0.0.8 \
	--from you@example.org --to user@example.test
tw_check "first backend sees 127.0.0.8" \
	tw_wait_file_grep "$T/be/maillog" 'client=[^ ]*\[127\.0\.0\.8\]' 10

# Several pass-through connections at once, each with its own address.
i=1
while [ $i -le 5 ]; do
	swaks --timeout 15 --server 127.0.0.1:25171 --local-interface "127.0.0.$((20 + i))" \
		--from you@example.org --to user@example.test >"$T/par.$i.out" 2>&1 </dev/null &
	pids="${pids:-} $!"
	i=$((i + 1))
done
# shellcheck disable=SC2086
wait $pids	# not a bare wait: the gate is a child of this shell too
tw_check "5 parallel pass-through sessions delivered" tw_wait_maildir "$T/sub/mail/user" 6 20
tw_check "each parallel client address reached the backend" sh -c \
	"for a in 21 22 23 24 25; do grep -q \"client=[^ ]*\\[127\\.0\\.0\\.\$a\\]\" '$T/sub/maillog' || exit 1; done"

# Implicit TLS (port 465 style) through a pass-through listener: the gate
# splices the TLS bytes untouched, the backend terminates TLS and still
# learns the client's address from the PROXY v2 header.
tw_certs
BACKEND_MAIN_CF="smtpd_tls_wrappermode = yes
smtpd_tls_cert_file = $T/cert.pem
smtpd_tls_key_file = $T/key.pem
smtpd_tls_security_level = may" tw_backend_start tls 26172 proxy
tw_gate_conf "$T/tls.conf" listen=127.0.0.1:25173 backend=127.0.0.1:26170 \
	passthrough=127.0.0.1:25172=127.0.0.1:26172 pid_file="$T/tls.gatepid"
if tw_start_gate "$T/tls.conf" tlsgate >/dev/null; then
	tw_check "pass-through listener for implicit TLS is up" tw_wait_port 127.0.0.1 25172 5
	tw_swaks_expect "implicit TLS (swaks --tlsc) through the pass-through" "250 2\.0\.0" \
		--server 127.0.0.1:25172 --tlsc --local-interface 127.0.0.6 \
		--from you@example.org --to user@example.test
	tw_check "the TLS backend sees client 127.0.0.6" \
		tw_wait_file_grep "$T/tls/maillog" 'client=[^ ]*\[127\.0\.0\.6\]' 10
	tw_check "and delivered it" tw_wait_maildir "$T/tls/mail/user" 1 15
	tw_stop_gate tlsgate
else
	tw_fail "gate with a TLS pass-through starts"
fi
tw_backend_stop tls

# The backend behind the pass-through is down: the client's connection is
# closed (nothing to splice), the gate lives on.
tw_backend_stop sub
tw_chat_expect "backend of the pass-through down: connection closed" 127.0.0.1 25171 <<'EOF2'
<? 4
eof
EOF2
tw_check "master still running" kill -0 "$(tw_gate_pid)"
tw_check "gate stops on SIGTERM within 15 s" tw_stop_gate
tw_summary

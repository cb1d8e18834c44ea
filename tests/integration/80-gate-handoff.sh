#!/bin/sh
# 80-gate-handoff: the other hand-off modes and IPv6.
#   backend_handoff = xclient: plain SMTP + XCLIENT to a Postfix that
#     authorizes 127.0.0.0/8; the backend logs the real client address.
#   backend_handoff = none: plain SMTP; the backend sees the gate's address.
#   an IPv6 client on [::1] through PROXY v2 (TCP6).
#   the replay to the backend: the client's HELO name, only the MAIL
#     parameters the backend advertised, DATA without CHUNKING.
# Ports: gates 25180-25184, backends 26180 (xclient), 26181 (plain),
#        26182 (proxy), 26183 (fake).
. "$(dirname "$0")/../lib.sh"
T=$(tw_tmpdir)
tw_need_gate
SW="--from you@example.org --to user@example.test"

# --- XCLIENT ------------------------------------------------------------------
tw_backend_start bx 26180 xclient
tw_gate_conf "$T/x.conf" listen=127.0.0.1:25180 backend=127.0.0.1:26180 \
	backend_handoff=xclient pid_file="$T/x.gatepid"
if tw_start_gate "$T/x.conf" x >/dev/null; then
	tw_swaks_expect "xclient: delivered" "250 2\.0\.0" --server 127.0.0.1:25180 \
		--local-interface 127.0.0.9 --helo client.example.org $SW
	tw_check "xclient: backend logs client 127.0.0.9" \
		tw_wait_file_grep "$T/bx/maillog" 'client=[^ ]*\[127\.0\.0\.9\]' 10
	tw_check "xclient: message in the maildir" tw_wait_maildir "$T/bx/mail/user" 1 15
	tw_stop_gate x
else
	tw_fail "xclient: gate starts"
fi

# --- none ---------------------------------------------------------------------
tw_backend_start bp 26181 plain
tw_gate_conf "$T/n.conf" listen=127.0.0.1:25181 backend=127.0.0.1:26181 \
	backend_handoff=none pid_file="$T/n.gatepid"
if tw_start_gate "$T/n.conf" n >/dev/null; then
	tw_swaks_expect "none: delivered" "250 2\.0\.0" --server 127.0.0.1:25181 \
		--local-interface 127.0.0.9 $SW
	tw_check "none: message in the maildir" tw_wait_maildir "$T/bp/mail/user" 1 15
	tw_check "none: backend sees the gate (127.0.0.1), not the client" sh -c \
		"grep -q 'client=[^ ]*\[127\.0\.0\.1\]' '$T/bp/maillog' && ! grep -q '127\.0\.0\.9' '$T/bp/maillog'"
	tw_stop_gate n
else
	tw_fail "none: gate starts"
fi

# --- IPv6 through PROXY v2 ----------------------------------------------------
if ip -6 addr show dev lo 2>/dev/null | grep -q '::1/128'; then
	tw_backend_start b6 26182 proxy
	tw_gate_conf "$T/6.conf" listen="[::1]:25182" backend=127.0.0.1:26182 \
		pid_file="$T/6.gatepid"
	if tw_start_gate "$T/6.conf" six >/dev/null; then
		tw_swaks_expect "IPv6 client: delivered" "250 2\.0\.0" --server "::1" --port 25182 -6 $SW
		tw_check "IPv6 client: backend logs client ::1 (PROXY v2 TCP6)" \
			tw_wait_file_grep "$T/b6/maillog" 'client=[^ ]*\[::1\]' 10
		tw_stop_gate six
	else
		tw_fail "IPv6: gate starts on [::1]"
	fi
else
	echo "# no ::1 on lo: IPv6 part skipped"
fi

# --- two listeners, IPv4 and IPv6, on one gate -------------------------------
if ip -6 addr show dev lo 2>/dev/null | grep -q '::1/128'; then
	tw_gate_conf "$T/2.conf" listen="127.0.0.1:25184, [::1]:25184" backend=127.0.0.1:26182 \
		pid_file="$T/2.gatepid"
	if tw_start_gate "$T/2.conf" two >/dev/null; then
		tw_check "second listener ([::1]:25184) is up" tw_wait_port ::1 25184 5
		tw_swaks_expect "two listeners: IPv4 one" "250 2\.0\.0" --server 127.0.0.1 --port 25184 $SW
		tw_swaks_expect "two listeners: IPv6 one" "250 2\.0\.0" --server ::1 --port 25184 -6 $SW
		tw_stop_gate two
	else
		tw_fail "gate with two listeners starts"
	fi
fi

# --- replay: the client's HELO name, MAIL parameters the backend offers ------
python3 "$TW_PEERS/fakebackend.py" --die-at none --lifetime 60 --log "$T/fake.log" \
	--ext "PIPELINING,SIZE 1000000" 26183 >/dev/null 2>&1 </dev/null &
FAKE=$!
tw_cleanup_add "kill $FAKE 2>/dev/null"
tw_wait_port 127.0.0.1 26183 10
tw_gate_conf "$T/r.conf" listen=127.0.0.1:25183 backend=127.0.0.1:26183 pid_file="$T/r.gatepid"
if tw_start_gate "$T/r.conf" replay >/dev/null; then
	tw_chat_expect "MAIL with BODY=8BITMIME and SIZE to a backend without 8BITMIME" 127.0.0.1 25183 <<'EOF2'
< 220
> EHLO client-name.example.org
< 250 
> MAIL FROM:<you@example.org> BODY=8BITMIME SIZE=1234
< 250
> RCPT TO:<user@example.test>
< 250
> DATA
< 354
> Subject: replay
>
> x
> .
< 250
> QUIT
< 221
EOF2
	tw_check "backend got EHLO with the client's own HELO name" \
		grep -q '^cmd EHLO client-name.example.org$' "$T/fake.log"
	tw_check "backend got SIZE (advertised) but not BODY= (not advertised)" sh -c \
		"grep -q '^cmd MAIL FROM:<you@example.org>.*SIZE=1234' '$T/fake.log' && ! grep -q '^cmd MAIL.*BODY=' '$T/fake.log'"
	tw_check "backend got DATA, not BDAT (no CHUNKING offered)" \
		grep -q '^cmd DATA$' "$T/fake.log"
	tw_stop_gate replay
else
	tw_fail "replay: gate starts"
fi
kill $FAKE 2>/dev/null
wait $FAKE 2>/dev/null

tw_summary

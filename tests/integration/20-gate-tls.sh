#!/bin/sh
# 20-gate-tls: STARTTLS to the gate; the message reaches the backend with the
# client's address; pipelined plaintext after STARTTLS is discarded and a new
# EHLO is required (RFC 3207 section 4.2, CVE-2011-0411 class).
# Ports: gate 25120, backend 26120.
. "$(dirname "$0")/../lib.sh"
T=$(tw_tmpdir)
tw_need_gate

tw_certs
tw_backend_start be 26120 proxy
tw_gate_conf "$T/gate.conf" listen=127.0.0.1:25120 backend=127.0.0.1:26120 \
	tls_cert="$T/cert.pem" tls_key="$T/key.pem"
tw_start_gate "$T/gate.conf" >/dev/null || { tw_fail "gate starts"; tw_summary; exit 1; }
tw_ok "gate starts"
MD="$T/be/mail/user"

tw_swaks_expect "STARTTLS (swaks -tls) and delivery" "250 2\.0\.0" \
	--server 127.0.0.1:25120 --local-interface 127.0.0.9 -tls \
	--from you@example.org --to user@example.test --h-Subject "tw tls 1"
tw_check "swaks negotiated TLS" grep -q 'TLS started' "$T/swaks.out"
tw_check "the TLS message lands in the maildir" tw_wait_maildir "$MD" 1 15
tw_check "backend sees client 127.0.0.9" \
	tw_wait_file_grep "$T/be/maillog" 'client=[^ ]*\[127\.0\.0\.9\]' 10

tw_chat_expect "STARTTLS advertised before TLS, not after; EHLO required after" 127.0.0.1 25120 <<'EOF2'
< 220
> EHLO client.example.org
< 250 
<+ 250.STARTTLS
<- 250.AUTH
> STARTTLS
< 220
starttls
> MAIL FROM:<you@example.org>
< 503 5\.5\.1
> EHLO client.example.org
< 250 
<- 250.STARTTLS
<- 250.AUTH
> STARTTLS
< 503 5\.5\.1
> MAIL FROM:<you@example.org>
< 250
> RCPT TO:<user@example.test>
< 250
> DATA
< 354
> Subject: tw tls 2
>
> over TLS
> .
< 250 2\.0\.0
> QUIT
< 221
EOF2
tw_check "second TLS message delivered" tw_wait_maildir "$MD" 2 15

# Plaintext injected after STARTTLS in the same packet must not be executed
# inside TLS: the first reply inside TLS answers our own command.
tw_chat_expect "junk pipelined after STARTTLS is discarded" 127.0.0.1 25120 <<'EOF2'
< 220
> EHLO client.example.org
< 250 
>> STARTTLS\r\nNOOP\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<user@example.test>\r\n
< 220
starttls
> MAIL FROM:<you@example.org>
< 503 5\.5\.1
> EHLO client.example.org
< 250 
> RCPT TO:<user@example.test>
< 503 5\.5\.1
> QUIT
< 221
EOF2

tw_chat_expect "STARTTLS with an argument: 501 5.5.4" 127.0.0.1 25120 <<'EOF2'
< 220
> EHLO client.example.org
< 250 
> STARTTLS now
< 501 5\.5\.4
alive
> QUIT
< 221
EOF2

tw_chat_expect "STARTTLS inside a transaction: 503 5.5.1" 127.0.0.1 25120 <<'EOF2'
< 220
> EHLO client.example.org
< 250 
> MAIL FROM:<you@example.org>
< 250
> STARTTLS
< 503 5\.5\.1
> QUIT
< 221
EOF2

tw_check "no mail from the injected transaction" \
	sh -c "! grep -l 'evil@example.org' '$MD'/new/* 2>/dev/null | grep -q ."

# The PROXY v2 header the backend gets: the client's address and port, the
# listener as destination, an SSL TLV (client bit, version, cipher) after
# STARTTLS and none without, a UNIQUE_ID TLV (DESIGN: session step 3).
python3 "$TW_PEERS/fakebackend.py" --die-at none --lifetime 60 --log "$T/fake.log" 26122 \
	>/dev/null 2>&1 </dev/null &
FAKE=$!
tw_cleanup_add "kill $FAKE 2>/dev/null"
tw_wait_port 127.0.0.1 26122 10
tw_gate_conf "$T/hdr.conf" listen=127.0.0.1:25122 backend=127.0.0.1:26122 \
	tls_cert="$T/cert.pem" tls_key="$T/key.pem" pid_file="$T/hdr.pid"
if tw_start_gate "$T/hdr.conf" hdr >/dev/null; then
	tw_swaks_expect "TLS client through the gate to a header-logging backend" "250" \
		--server 127.0.0.1:25122 --local-interface 127.0.0.9 -tls \
		--from you@example.org --to user@example.test
	tw_check "PROXY v2: TCP4 127.0.0.9 -> 127.0.0.1:25122, SSL TLV (client, TLSv1.3, cipher), UNIQUE_ID" \
		python3 "$TW_PEERS/proxyv2check.py" "$T/fake.log" cmd=proxy fam=tcp4 \
		src=127.0.0.9 dst=127.0.0.1 dport=25122 ssl=client sslver=TLSv1.3 cipher=any uniqueid=any
	tw_swaks_expect "plaintext client through the same gate" "250" \
		--server 127.0.0.1:25122 --local-interface 127.0.0.10 \
		--from you@example.org --to user@example.test
	tw_check "PROXY v2 without TLS: no SSL client TLV, source 127.0.0.10" \
		python3 "$TW_PEERS/proxyv2check.py" "$T/fake.log" cmd=proxy fam=tcp4 \
		src=127.0.0.10 dst=127.0.0.1 dport=25122 ssl=none uniqueid=any
	tw_stop_gate hdr
else
	tw_fail "header gate starts"
fi
kill $FAKE 2>/dev/null
wait $FAKE 2>/dev/null

# Without a certificate, STARTTLS is neither offered nor accepted.
tw_gate_conf "$T/notls.conf" listen=127.0.0.1:25121 backend=127.0.0.1:26120 \
	pid_file="$T/notls.pid"
tw_start_gate "$T/notls.conf" notls >/dev/null || tw_fail "gate without TLS starts"
tw_chat_expect "no certificate: STARTTLS not offered, 502 or 454" 127.0.0.1 25121 <<'EOF2'
< 220
> EHLO client.example.org
< 250 
<- 250.STARTTLS
> STARTTLS
< (502 5\.5\.1|454 4\.7\.0)
alive
> QUIT
< 221
EOF2
tw_stop_gate notls

tw_check "gate stops on SIGTERM within 15 s" tw_stop_gate
tw_summary

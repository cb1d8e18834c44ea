#!/bin/sh
# 15-proxy-interop: lib/proxy.c against the reference implementation and the
# real backend. haproxy (the protocol's home) sends v1 and v2 headers -- with
# CRC32C, UNIQUE_ID, SSL (version, cipher), AUTHORITY TLVs, over IPv4 and
# IPv6 -- to tests/helpers/proxy_dump, which decodes them with proxy_decode;
# then headers made by proxy_v2_encode / proxy_v1_encode (tests/helpers/
# proxy_send) go to haproxy with accept-proxy, which logs what it decoded,
# and to the Postfix backend (smtpd_upstream_proxy_protocol = haproxy).
# Needs haproxy (Debian package "haproxy", installed by tests/peers/deps.sh).
# Ports: 27190-27198.
. "$(dirname "$0")/../lib.sh"
T=$(tw_tmpdir)
DUMP="$TW_BUILD/tests/proxy_dump"
SEND="$TW_BUILD/tests/proxy_send"

if ! command -v haproxy >/dev/null 2>&1; then
	tw_fail "haproxy installed" "not found (tests/peers/deps.sh installs it)"
	tw_summary
	exit 1
fi
for b in "$DUMP" "$SEND"; do
	if [ ! -x "$b" ]; then
		tw_fail "helper $b" "missing (build it first)"
		tw_summary
		exit 1
	fi
done
HAVE6=0
if ip -6 addr show dev lo 2>/dev/null | grep -q 'inet6 ::1/'; then
	HAVE6=1
fi
tw_certs
cat "$T/cert.pem" "$T/key.pem" >"$T/both.pem"

cat >"$T/haproxy.cfg" <<CFG
global
    log stdout format raw local0
defaults
    mode tcp
    timeout connect 3s
    timeout client 5s
    timeout server 5s
    unique-id-format %{+X}o\ %ci:%cp_%fi:%fp_%Ts_%rt:%pid
# haproxy as the sender, proxy_dump (proxy_decode) as the receiver
frontend fe_v2
    bind 127.0.0.1:27191
    default_backend be_v2
backend be_v2
    server s 127.0.0.1:27190 send-proxy-v2 proxy-v2-options crc32c,unique-id
frontend fe_v2ssl
    bind 127.0.0.1:27192 ssl crt $T/both.pem
    default_backend be_v2ssl
backend be_v2ssl
    server s 127.0.0.1:27190 send-proxy-v2-ssl-cn proxy-v2-options ssl,cert-cn,ssl-cipher,cert-sig,cert-key,authority,crc32c,unique-id
frontend fe_v1
    bind 127.0.0.1:27193
    default_backend be_v1
backend be_v1
    server s 127.0.0.1:27190 send-proxy
frontend fe_v2ssl_plain
    bind 127.0.0.1:27196 ssl crt $T/both.pem
    default_backend be_v2ssl_plain
backend be_v2ssl_plain
    server s 127.0.0.1:27190 send-proxy-v2-ssl proxy-v2-options ssl-cipher,authority
CFG
if [ $HAVE6 = 1 ]; then
	cat >>"$T/haproxy.cfg" <<CFG
frontend fe_v2_6
    bind [::1]:27194
    default_backend be_v2
frontend fe_v1_6
    bind [::1]:27195
    default_backend be_v1
CFG
fi
cat >>"$T/haproxy.cfg" <<CFG
# proxy_send (proxy_*_encode) as the sender, haproxy as the receiver
frontend fe_in
    bind 127.0.0.1:27197 accept-proxy
    log global
    log-format "RECV src=%ci:%cp dst=%fi:%fp uid=%[fc_pp_unique_id] authority=%[fc_pp_authority]"
    tcp-request content reject
CFG

NCONN=5
[ $HAVE6 = 1 ] && NCONN=7
"$DUMP" 27190 $NCONN 60 >"$T/dump.out" 2>"$T/dump.err" &
echo $! >"$T/dump.pid"
tw_cleanup_add "kill \$(cat '$T/dump.pid') 2>/dev/null"
haproxy -db -f "$T/haproxy.cfg" >"$T/haproxy.log" 2>&1 &
echo $! >"$T/haproxy.pid"
tw_cleanup_add "kill \$(cat '$T/haproxy.pid') 2>/dev/null"
if ! tw_wait_port 127.0.0.1 27190 10 || ! tw_wait_port 127.0.0.1 27197 10; then
	tw_fail "haproxy and proxy_dump start" "$(tail -n 5 "$T/haproxy.log" "$T/dump.err")"
	tw_summary
	exit 1
fi
tw_ok "haproxy and proxy_dump start"

tls() { # tls PORT SNI [openssl args]: one TLS connection through haproxy
	p=$1 sni=$2
	shift 2
	timeout 10 openssl s_client -connect "127.0.0.1:$p" -servername "$sni" -quiet "$@" \
		</dev/null >"$T/tls.out" 2>&1
	grep -q '^220 proxy_dump' "$T/tls.out"
}
line() { # line N ERE: line N of proxy_dump's output matches ERE
	tw_wait_file_grep "$T/dump.out" "." 10 || return 1
	i=0
	while [ "$(wc -l <"$T/dump.out")" -lt "$1" ] && [ $i -lt 50 ]; do
		sleep 0.2
		i=$((i + 1))
	done
	sed -n "$1p" "$T/dump.out" | grep -Eq -- "$2" || { sed -n "$1p" "$T/dump.out"; return 1; }
}

# --- haproxy -> proxy_decode ----------------------------------------------
tw_check "v2 through haproxy is answered" "$SEND" 127.0.0.1 27191 none
tw_check "decoded haproxy v2 + CRC32C + UNIQUE_ID" line 1 \
	'^OK v2 len=[0-9]+ local=0 src=127\.0\.0\.1:[0-9]+ dst=127\.0\.0\.1:27191 ssl=0 .*unique_id="7F000001:[0-9A-F]+_7F000001:6A37_[^"]+"'
tw_check "v1 through haproxy is answered" "$SEND" 127.0.0.1 27193 none
tw_check "decoded haproxy v1 TCP4" line 2 \
	'^OK v1 len=[0-9]+ local=0 src=127\.0\.0\.1:[0-9]+ dst=127\.0\.0\.1:27193 ssl=0'
tw_check "TLSv1.3 through haproxy is answered" tls 27192 mx.example.test -tls1_3
tw_check "decoded haproxy v2 SSL TLV (TLSv1.3), AUTHORITY, CRC32C" line 3 \
	'^OK v2 .* dst=127\.0\.0\.1:27192 ssl=1 version="TLSv1\.3" cipher="TLS_[A-Z0-9_]+" unique_id="[^"]+" authority="mx\.example\.test"$'
tw_check "TLSv1.2 through haproxy is answered" tls 27192 mx.example.test -tls1_2
tw_check "decoded haproxy v2 SSL TLV (TLSv1.2 cipher name)" line 4 \
	'^OK v2 .* ssl=1 version="TLSv1\.2" cipher="ECDHE-[A-Z0-9-]+" unique_id="[^"]+" authority="mx\.example\.test"$'
tw_check "TLS without CRC32C is answered" tls 27196 other.example
tw_check "decoded haproxy v2 SSL TLV without CRC32C" line 5 \
	'^OK v2 .* dst=127\.0\.0\.1:27196 ssl=1 version="TLSv1\.3" cipher="TLS_[A-Z0-9_]+" unique_id="" authority="other\.example"$'
if [ $HAVE6 = 1 ]; then
	tw_check "v2 over IPv6 through haproxy is answered" "$SEND" ::1 27194 none
	tw_check "decoded haproxy v2 TCP6" line 6 \
		'^OK v2 .* src=::1:[0-9]+ dst=::1:27194 ssl=0 .*unique_id="0+1:[0-9A-F]+_0+1:6A3A_'
	tw_check "v1 over IPv6 through haproxy is answered" "$SEND" ::1 27195 none
	tw_check "decoded haproxy v1 TCP6" line 7 '^OK v1 .* src=::1:[0-9]+ dst=::1:27195 ssl=0'
else
	tw_ok "SKIPPED: IPv6 cases (no ::1 on lo)"
fi
if grep -Eq '^(BAD|NEED_MORE|ERROR)' "$T/dump.out"; then
	tw_fail "no header refused" "$(grep -E '^(BAD|NEED_MORE|ERROR)' "$T/dump.out")"
else
	tw_ok "no header refused"
fi

# --- proxy_*_encode -> haproxy accept-proxy -------------------------------
"$SEND" 127.0.0.1 27197 v2 192.0.2.7 40000 198.51.100.1 25 >/dev/null 2>&1
"$SEND" 127.0.0.1 27197 v2 192.0.2.7 40001 198.51.100.1 25 ssl >/dev/null 2>&1
"$SEND" 127.0.0.1 27197 v2 2001:db8::7 40002 2001:db8::25 25 ssl >/dev/null 2>&1
"$SEND" 127.0.0.1 27197 v2 ::ffff:192.0.2.8 40003 ::ffff:198.51.100.1 25 >/dev/null 2>&1
"$SEND" 127.0.0.1 27197 v1 192.0.2.9 40004 198.51.100.1 25 >/dev/null 2>&1
"$SEND" 127.0.0.1 27197 v1 2001:db8::9 40005 2001:db8::25 25 >/dev/null 2>&1
"$SEND" 127.0.0.1 27197 local >/dev/null 2>&1
L="$T/haproxy.log"
tw_check "haproxy decodes our v2 TCP4 + UNIQUE_ID" tw_wait_file_grep "$L" \
	'^RECV src=192\.0\.2\.7:40000 dst=198\.51\.100\.1:25 uid=4f2a9c01 authority=-$' 10
tw_check "haproxy decodes our v2 TCP4 + SSL + AUTHORITY" tw_wait_file_grep "$L" \
	'^RECV src=192\.0\.2\.7:40001 dst=198\.51\.100\.1:25 uid=4f2a9c01 authority=mx\.example\.test$' 10
tw_check "haproxy decodes our v2 TCP6 + SSL" tw_wait_file_grep "$L" \
	'^RECV src=2001:db8::7:40002 dst=2001:db8::25:25 uid=4f2a9c01 authority=mx\.example\.test$' 10
tw_check "haproxy decodes our v4-mapped pair as TCP4" tw_wait_file_grep "$L" \
	'^RECV src=192\.0\.2\.8:40003 dst=198\.51\.100\.1:25 ' 10
tw_check "haproxy decodes our v1 TCP4" tw_wait_file_grep "$L" \
	'^RECV src=192\.0\.2\.9:40004 dst=198\.51\.100\.1:25 ' 10
tw_check "haproxy decodes our v1 TCP6" tw_wait_file_grep "$L" \
	'^RECV src=2001:db8::9:40005 dst=2001:db8::25:25 ' 10
tw_check "haproxy takes our LOCAL as the real endpoints" tw_wait_file_grep "$L" \
	'^RECV src=127\.0\.0\.1:[0-9]+ dst=127\.0\.0\.1:27197 ' 10
if grep -qiE 'error|invalid|refus' "$L"; then
	tw_fail "haproxy logged no PROXY error" "$(grep -iE 'error|invalid|refus' "$L" | head -n 5)"
else
	tw_ok "haproxy logged no PROXY error"
fi

# --- proxy_*_encode -> Postfix --------------------------------------------
tw_backend_start be 27198 proxy
tw_check "Postfix answers after our v2 header with SSL, UNIQUE_ID, AUTHORITY TLVs" \
	sh -c "'$SEND' 127.0.0.1 27198 v2 192.0.2.7 40000 198.51.100.1 25 ssl | grep -q 'reply: 220 '"
tw_check "Postfix answers after our v1 header" \
	sh -c "'$SEND' 127.0.0.1 27198 v1 192.0.2.9 40001 198.51.100.1 25 | grep -q 'reply: 220 '"
tw_check "Postfix answers after our LOCAL header" \
	sh -c "'$SEND' 127.0.0.1 27198 local | grep -q 'reply: 220 '"
tw_check "Postfix took 192.0.2.7 from our v2 header" \
	tw_wait_file_grep "$T/be/maillog" 'connect from [^ ]*\[192\.0\.2\.7\]' 10
tw_check "Postfix took 192.0.2.9 from our v1 header" \
	tw_wait_file_grep "$T/be/maillog" 'connect from [^ ]*\[192\.0\.2\.9\]' 10
tw_check "Postfix took the real endpoint for LOCAL" \
	tw_wait_file_grep "$T/be/maillog" 'connect from [^ ]*\[127\.0\.0\.1\]' 10

tw_summary

#!/bin/sh
# dkimsign.sh - sign one message with a real opendkim (sign mode), driven by
# the gate's milter client (milter_probe), then stop that opendkim.
#
#   tests/peers/dkimsign.sh DIR PORT CANON MSG OUT
#     DIR    holds sel.private (opendkim-genkey -d example.test -s sel)
#     PORT   loopback port for opendkim's milter socket
#     CANON  Canonicalization, e.g. relaxed/simple
#     MSG    the message (LF or CRLF lines); OUT gets it signed
# Domain example.test, selector sel. Exit 0 when OUT has a DKIM-Signature.
set -u
dir=$1 port=$2 canon=$3 msg=$4 out=$5
probe=${TW_BUILD:-build}/tests/milter_probe
cat >"$dir/sign.conf" <<EOF2
Socket inet:$port@127.0.0.1
Mode s
Domain example.test
Selector sel
KeyFile $dir/sel.private
RequireSafeKeys false
Canonicalization $canon
PidFile $dir/sign.pid
Background no
EOF2
opendkim -f -x "$dir/sign.conf" >"$dir/opendkim.log" 2>&1 </dev/null &
pid=$!
i=0
while ! ss -Hltn "sport = :$port" 2>/dev/null | grep -q . && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
timeout 20 "$probe" "inet:127.0.0.1:$port" --msg "$msg" --out "$out" >/dev/null 2>&1
kill -KILL $pid 2>/dev/null
wait $pid 2>/dev/null
grep -q '^DKIM-Signature:' "$out" 2>/dev/null

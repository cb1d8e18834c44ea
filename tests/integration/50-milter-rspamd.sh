#!/bin/sh
# 50-milter-rspamd: the gate's milter client (milter_probe) against a private
# rspamd in milter mode (rspamd_proxy, milter = yes, self_scan), the main
# milter a site chains behind the gate: a clean message continues and gets
# rspamd's headers (X-Spamd-Result), GTUBE is refused with rspamd's own
# `y` reply passed through, 50 sessions in a row all complete.
# rspamd's DNS goes to the private unbound (tests/peers/dns.sh), which
# answers nothing outside its test zones: no query leaves the machine.
# Skipped (reported, not failed) when rspamd is not installed.
. "$(dirname "$0")/../lib.sh"

T=$(tw_tmpdir)
PROBE=$TW_BUILD/tests/milter_probe
[ -x "$PROBE" ] || { tw_fail "binary" "$PROBE missing"; tw_summary; exit 1; }
if ! command -v rspamd >/dev/null 2>&1 || ! id _rspamd >/dev/null 2>&1; then
	tw_fail "rspamd installed" "not found (tests/peers/deps.sh installs it)"
	tw_summary
	exit 1
fi
DNSP=28801
RP=28802

tw_cleanup_add "sh '$TW_PEERS/dns.sh' stop '$T/dns'"
sh "$TW_PEERS/dns.sh" start "$T/dns" $DNSP >/dev/null 2>&1 ||
	{ tw_fail "dns peer start"; tw_summary; exit 1; }

R=$T/rspamd
mkdir -p "$R/local.d" "$R/override.d" "$R/db" "$R/run" "$R/log"
cat >"$R/override.d/worker-proxy.inc" <<EOF
bind_socket = "127.0.0.1:$RP";
milter = yes;
timeout = 120s;
count = 1;
upstream "local" {
  default = yes;
  self_scan = yes;
}
EOF
for w in normal controller fuzzy; do
	echo 'enabled = false;' >"$R/override.d/worker-$w.inc"
done
cat >"$R/override.d/options.inc" <<EOF
dns {
  nameserver = ["127.0.0.1:$DNSP"];
  timeout = 1s;
  retransmits = 1;
}
EOF
cat >"$R/override.d/logging.inc" <<EOF
type = "file";
filename = "$R/log/rspamd.log";
level = "info";
EOF
echo 'use = ["x-spamd-result", "x-rspamd-server"];' >"$R/local.d/milter_headers.conf"
chown -R _rspamd:_rspamd "$R"

(cd "$R" && exec rspamd -f -u _rspamd -g _rspamd -c /etc/rspamd/rspamd.conf \
	--var "LOCAL_CONFDIR=$R" --var "DBDIR=$R/db" --var "RUNDIR=$R/run" \
	--var "LOGDIR=$R/log" >"$R/stdout.log" 2>&1 </dev/null) &
RPID=$!
tw_cleanup_add "kill -TERM $RPID 2>/dev/null; sleep 1; kill -KILL $RPID 2>/dev/null"
# rspamd compiles its regexp cache at start: give it time
if ! tw_wait_port 127.0.0.1 $RP 90; then
	tw_fail "rspamd start" "no listener on $RP"
	tail -n 20 "$R/log/rspamd.log" "$R/stdout.log" 2>/dev/null | sed 's/^/    | /'
	tw_summary
	exit 1
fi
tw_ok "rspamd listens in milter mode"

cat >"$T/clean.txt" <<'EOF'
From: Alice Example <alice@example.org>
To: User <user@example.test>
Subject: Meeting notes for Tuesday
Date: Wed, 25 Nov 2026 12:00:00 +0000
Message-ID: <notes.20261125@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

Hello,

here are the notes from Tuesday's meeting. The next one is on Friday.

Alice
EOF
printf 'From: a@example.org\nTo: user@example.test\nSubject: gtube\nDate: Wed, 25 Nov 2026 12:00:00 +0000\nMessage-ID: <gtube.1@example.org>\n\nXJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\n' >"$T/gtube.txt"

P="inet:127.0.0.1:$RP"
timeout 60 "$PROBE" "$P" --client 198.51.100.7 --from alice@example.org --msg "$T/clean.txt" \
	--timeout 10s --eom-timeout 30s >"$T/clean.out" 2>&1
grep -q '^message continue' "$T/clean.out" && tw_ok "clean message continues" ||
	{ tw_fail "clean message continues"; tail -n 20 "$T/clean.out" | sed 's/^/    | /'; }
grep -q '^X-Spamd-Result: ' "$T/clean.out" && tw_ok "rspamd's X-Spamd-Result header applied" ||
	tw_fail "rspamd's X-Spamd-Result header applied"
grep -q '^X-Rspamd-Server: ' "$T/clean.out" && tw_ok "rspamd's X-Rspamd-Server header applied" ||
	tw_fail "rspamd's X-Rspamd-Server header applied"
if awk '/^--- message/{m=1;next} m' "$T/clean.out" | grep -v "$(printf '\r')\$" | grep -q .; then
	tw_fail "rspamd's folded headers written with CRLF"
else
	tw_ok "rspamd's folded headers written with CRLF"
fi

timeout 60 "$PROBE" "$P" --client 198.51.100.7 --msg "$T/gtube.txt" --timeout 10s \
	--eom-timeout 30s >"$T/gtube.out" 2>&1
grep -q '^message reject 554 5.7.1 Gtube pattern' "$T/gtube.out" &&
	tw_ok "GTUBE refused with rspamd's own reply" ||
	{ tw_fail "GTUBE refused with rspamd's own reply"; tail -n 5 "$T/gtube.out" | sed 's/^/    | /'; }

timeout 120 "$PROBE" --sessions 50 "$P" --client 198.51.100.7 --msg "$T/clean.txt" \
	--timeout 10s --eom-timeout 30s >"$T/soak.out" 2>&1
grep -q '^sessions 50 failed 0' "$T/soak.out" && tw_ok "50 sessions through rspamd" ||
	{ tw_fail "50 sessions through rspamd"; tail -n 5 "$T/soak.out" | sed 's/^/    | /'; }
if grep -q 'default_action' "$T/soak.out"; then
	tw_fail "no milter errors in 50 sessions"
	grep 'default_action' "$T/soak.out" | head -n 3 | sed 's/^/    | /'
else
	tw_ok "no milter errors in 50 sessions"
fi

tw_summary

#!/bin/bash
# 62-store-links: issue 8 #3. Root never follows a link the service user
# planted: the gate master on HUP and tailwart-milter at start open and
# chown the LMDB store (PATH and PATH-lock) in a directory the user owns,
# and the gate master writes its pid file. Each link points to a
# root-owned 0600 file, which must keep its content, owner and mode.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"   # tests/run uses sh
. "$(dirname "$0")/../lib.sh"
tw_need_gate
T=$(tw_tmpdir)
MILTER=$TW_BUILD/tailwart-milter
GP=25620
MP=25621
asuser() { setpriv --reuid tailwart --regid tailwart --clear-groups "$@"; }
getent passwd tailwart >/dev/null || { tw_fail "user tailwart"; tw_summary; exit 1; }

# a root-owned secret per case; snap prints what must not change
secret() { printf 'root secret %s\n' "$1" >"$T/secret.$1"; chmod 0600 "$T/secret.$1"; chown root:root "$T/secret.$1"; }
snap() { stat -c '%U:%G %a %s' "$T/secret.$1"; md5sum <"$T/secret.$1"; }
untouched() {	# NAME CASE BEFORE
	if [ "$(snap "$2")" = "$3" ]; then tw_ok "$1"
	else tw_fail "$1" "before: $3 / after: $(snap "$2" | tr '\n' ' ')"; fi
}
userdir() { mkdir -p "$T/$1"; chown tailwart:tailwart "$T/$1"; chmod 0750 "$T/$1"; }

# ---- gate: pid file link at start, lock link at HUP ------------------------
userdir gs
userdir run
secret pid
secret lock
asuser ln -s "$T/secret.pid" "$T/run/gate.pid"
tw_gate_conf "$T/gate.conf" "listen=127.0.0.1:$GP" "user=tailwart" \
	"store=lmdb:$T/gs/gate.lmdb" "rate_limit=conn 1000/1m" "pid_file=$T/run/gate.pid"
b_pid=$(snap pid)
b_lock=$(snap lock)
tw_start_gate "$T/gate.conf" >/dev/null || { tw_fail "gate start"; tw_summary; exit 1; }
untouched "pid file link: root-owned target untouched" pid "$b_pid"
grep -q 'pid_file .*gate.pid: a symbolic link: not written' "$T/gate.log" &&
	tw_ok "pid file link refused and logged" || tw_fail "pid file link refused and logged" "$(tail -n 3 "$T/gate.log")"
# the worker user replaces the lock file by a link, then the master reloads
asuser rm -f "$T/gs/gate.lmdb-lock"
asuser ln -s "$T/secret.lock" "$T/gs/gate.lmdb-lock"
kill -HUP "$(tw_gate_pid)"
tw_wait_file_grep "$T/gate.log" 'reload (refused|done)|generation=2' 10
sleep 1
untouched "gate HUP: lock link target untouched" lock "$b_lock"
grep -q 'reload refused: store .*gate.lmdb-lock' "$T/gate.log" &&
	tw_ok "gate HUP: link refused and logged" || tw_fail "gate HUP: link refused and logged" "$(tail -n 3 "$T/gate.log")"
tw_check "gate still answers" tw_wait_port 127.0.0.1 $GP 2
tw_stop_gate

# ---- tailwart-milter: lock link, data link at start --------------------------
if [ -x "$MILTER" ]; then
	for f in m.lmdb-lock m.lmdb; do
		userdir "ms-$f"
		secret "$f"
		asuser ln -s "$T/secret.$f" "$T/ms-$f/$f"
		cat >"$T/milter-$f.conf" <<EOC
hostname = mx.example.test
store = lmdb:$T/ms-$f/m.lmdb
rate_limit = conn 1000/1m
user = tailwart
milter_listen = inet:$MP@127.0.0.1
milter_dkim = no
EOC
		b=$(snap "$f")
		timeout 10 "$MILTER" -f -c "$T/milter-$f.conf" >"$T/milter-$f.log" 2>&1 </dev/null &
		mpid=$!
		tw_cleanup_add "kill -KILL $mpid 2>/dev/null"
		sleep 2
		kill -TERM $mpid 2>/dev/null
		wait $mpid 2>/dev/null
		untouched "milter start, $f link: target untouched" "$f" "$b"
		grep -q "store .*$f" "$T/milter-$f.log" &&
			tw_ok "milter start, $f link: refused and logged" ||
			tw_fail "milter start, $f link: refused and logged" "$(tail -n 3 "$T/milter-$f.log")"
	done
else
	tw_fail "tailwart-milter built" "$MILTER missing"
fi

tw_summary

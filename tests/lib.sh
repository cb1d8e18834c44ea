# tests/lib.sh - helpers for tests/integration/*.sh (POSIX sh, sourced).
#
#   . "$(dirname "$0")/../lib.sh"
#   T=$(tw_tmpdir)
#   tw_backend_start be 26101 proxy            # Postfix in $T/be, stopped at exit
#   tw_gate_conf "$T/gate.conf" listen=127.0.0.1:25101 backend=127.0.0.1:26101
#   tw_start_gate "$T/gate.conf" >/dev/null     # stopped at exit
#   tw_swaks_expect "delivered" 250 --server 127.0.0.1:25101 --to user@example.test
#   tw_summary                                  # last line: "N passed, N failed"
#
# Results:  tw_ok NAME; tw_fail NAME WHY; tw_check NAME cmd args... (ok if the
#           command exits 0; its output is shown on failure); tw_summary.
#           Results are kept in a file, so they count from subshells too.
# Files:    tw_tmpdir prints this script's fresh directory ($TW_TMP, mode 0755
#           so that Postfix's users can reach a backend inside it); removed at
#           exit unless TW_KEEP=1.
# Cleanup:  tw_cleanup_add "shell command" - run at exit in reverse order, also
#           on failure, SIGINT, SIGTERM.  Works from subshells.
# Waiting:  tw_wait_port HOST PORT [SECS]; tw_wait_file_grep FILE|DIR ERE SECS;
#           tw_wait_maildir MAILDIR N SECS; tw_maildir_count MAILDIR.
# Peers:    tw_backend_start NAME PORT [proxy|xclient|plain [strict-helo]] -> $TW_TMP/NAME,
#           maildir of user@example.test is $TW_TMP/NAME/mail/user.
# Gate:     tw_gate_conf FILE key=value...; tw_start_gate CONF [NAME] (echoes
#           the master's pid, log in $TW_TMP/NAME.log); tw_stop_gate [NAME];
#           tw_gate_pid [NAME]; tw_need_gate (fails the script early if the
#           binary is missing).
# SMTP:     tw_swaks ARGS... (swaks with a timeout, transcript in
#           $TW_TMP/swaks.out); tw_swaks_reply (last server reply before QUIT);
#           tw_swaks_expect NAME ERE ARGS...; tw_chat ARGS... (byte-exact
#           dialogues, see tests/peers/smtpchat.py).
#
# Note: the gate and peers may be children of the script's shell: wait for
# your own background jobs by pid ("wait $pid"), never with a bare "wait".
#
# Environment: TW_ROOT (repo root), TW_BUILD (build tree, default "build",
# relative to TW_ROOT), TW_KEEP=1 keeps $TW_TMP, TW_TMP_PARENT (set by
# tests/run: where per-script directories go, default /tmp).

if [ -z "${TW_ROOT:-}" ]; then
	TW_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
fi
TW_BUILD=${TW_BUILD:-build}
case "$TW_BUILD" in /*) ;; *) TW_BUILD="$TW_ROOT/$TW_BUILD" ;; esac
TW_GATE="$TW_BUILD/tailwart-gate"
TW_PEERS="$TW_ROOT/tests/peers"
export TW_ROOT TW_BUILD

if [ -n "${TW_TMP_REUSE:-}" ]; then
	# tests/run: finish the cleanup of a script that was killed
	TW_TMP=$TW_TMP_REUSE
else
	TW_TMP=$(mktemp -d "${TW_TMP_PARENT:-/tmp}/tw.$(basename "$0" .sh).XXXXXX") || {
		echo "lib.sh: mktemp failed" >&2
		exit 1
	}
	chmod 0755 "$TW_TMP"
	: >"$TW_TMP/.cleanup"
	: >"$TW_TMP/.results"
fi
export TW_TMP

tw_tmpdir() { echo "$TW_TMP"; }

# ---- cleanup --------------------------------------------------------------

tw_cleanup_add() {
	printf '%s\n' "$*" >>"$TW_TMP/.cleanup"
}

tw__run_cleanup() {
	[ -f "$TW_TMP/.cleanup" ] || return 0
	tac "$TW_TMP/.cleanup" >"$TW_TMP/.cleanup.rev" 2>/dev/null || return 0
	: >"$TW_TMP/.cleanup"
	while IFS= read -r tw__c; do
		[ -n "$tw__c" ] || continue
		eval "$tw__c" >>"$TW_TMP/cleanup.log" 2>&1 </dev/null || true
	done <"$TW_TMP/.cleanup.rev"
}

tw__exit() {
	tw__st=$?
	trap - EXIT INT TERM HUP
	tw__run_cleanup
	if [ "${TW_KEEP:-0}" = 1 ]; then
		echo "# kept $TW_TMP" >&2
	else
		rm -rf "$TW_TMP"
	fi
	exit $tw__st
}
trap tw__exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---- results --------------------------------------------------------------

tw_ok() {
	echo "ok   $1"
	echo ok >>"$TW_TMP/.results"
}

tw_fail() {
	echo "FAIL $1${2:+: $2}"
	echo fail >>"$TW_TMP/.results"
}

# tw_check NAME cmd args...: ok if the command exits 0.
tw_check() {
	tw__cname=$1
	shift
	tw__cout="$TW_TMP/check.$(wc -l <"$TW_TMP/.results").out"
	if "$@" >"$tw__cout" 2>&1 </dev/null; then
		tw_ok "$tw__cname"
	else
		tw__crc=$?
		tw_fail "$tw__cname" "exit $tw__crc: $*"
		tail -n 40 "$tw__cout" | sed 's/^/    | /'
		return 1
	fi
}

tw_summary() {
	tw__p=$(grep -c '^ok$' "$TW_TMP/.results" || true)
	tw__f=$(grep -c '^fail$' "$TW_TMP/.results" || true)
	echo "$tw__p passed, $tw__f failed"
	[ "$tw__f" -eq 0 ] && [ "$tw__p" -gt 0 ]
}

# ---- waiting --------------------------------------------------------------

# tw_listening HOST PORT: something listens there (checked without connecting,
# so a server sees no stray connection).
tw_listening() {
	case "$1" in
	*:*) tw__a="[$1]:$2" ;;
	0.0.0.0|"") tw__a="*:$2" ;;
	*) tw__a="$1:$2" ;;
	esac
	if command -v ss >/dev/null 2>&1; then
		ss -Hltn 2>/dev/null | awk -v a="$tw__a" -v p=":$2" \
			'$4 == a || ($4 ~ p"$" && ($4 ~ /^\*:/ || $4 ~ /^0\.0\.0\.0:/ || $4 ~ /^\[::\]:/)) { f = 1 } END { exit !f }'
	else
		nc -z -w 1 "$1" "$2" >/dev/null 2>&1
	fi
}

tw_wait_port() {
	tw__i=0
	tw__max=$(( ${3:-10} * 10 ))
	while ! tw_listening "$1" "$2"; do
		tw__i=$((tw__i + 1))
		[ $tw__i -ge $tw__max ] && return 1
		sleep 0.1
	done
	return 0
}

# tw_wait_file_grep FILE ERE SECS: wait until FILE (or any file under
# FILE, a directory) has a line matching ERE.
tw_wait_file_grep() {
	tw__i=0
	tw__max=$(( ${3:-10} * 5 ))
	while ! grep -rEq -- "$2" "$1" 2>/dev/null; do
		tw__i=$((tw__i + 1))
		[ $tw__i -ge $tw__max ] && return 1
		sleep 0.2
	done
	return 0
}

# tw_maildir_count MAILDIR: number of messages delivered (new/ and cur/).
tw_maildir_count() {
	find "$1/new" "$1/cur" -type f 2>/dev/null | wc -l | tr -d ' '
}

# tw_wait_maildir MAILDIR N SECS: wait until at least N messages arrived.
tw_wait_maildir() {
	tw__i=0
	tw__max=$(( ${3:-10} * 5 ))
	while [ "$(tw_maildir_count "$1")" -lt "$2" ]; do
		tw__i=$((tw__i + 1))
		[ $tw__i -ge $tw__max ] && return 1
		sleep 0.2
	done
	return 0
}

# ---- peers ----------------------------------------------------------------

# tw_backend_start NAME PORT [MODE [OPTION]]: private Postfix in $TW_TMP/NAME.
tw_backend_start() {
	tw_cleanup_add "sh '$TW_PEERS/backend.sh' stop '$TW_TMP/$1'"
	sh "$TW_PEERS/backend.sh" start "$TW_TMP/$1" "$2" "${3:-proxy}" ${4:+"$4"} >/dev/null
}

tw_backend_stop() {
	sh "$TW_PEERS/backend.sh" stop "$TW_TMP/$1"
}

# tw_certs: a certificate in $TW_TMP/cert.pem, key in $TW_TMP/key.pem.
tw_certs() {
	sh "$TW_PEERS/certs.sh" "$TW_TMP"
}

# ---- the gate -------------------------------------------------------------

# tw_need_gate: the script cannot run without the binary.
tw_need_gate() {
	if [ ! -x "$TW_GATE" ]; then
		tw_fail "gate binary" "$TW_GATE missing (build it first)"
		tw_summary
		exit 1
	fi
}

# tw_gate_conf FILE key=value...: a gate config for tests.  Defaults below;
# key=value replaces a default, "key=" drops it, new keys are appended.
tw_gate_conf() {
	tw__f=$1
	shift
	{
		echo "listen=127.0.0.1:25025"
		echo "hostname=mx.example.test"
		echo "backend=127.0.0.1:26026"
		echo "backend_handoff=proxy-v2"
		echo "workers_min=2"
		echo "workers_max=8"
		echo "user=nobody"
		echo "pid_file=$TW_TMP/tailwart-gate.pid"
		echo "store=lmdb:$TW_TMP/gate.lmdb"
		echo "greylist_action=ignore"
		echo "pregreet_action=ignore"
		for tw__kv in "$@"; do
			printf '%s\n' "$tw__kv"
		done
	} | awk -F= '
		{ k = $1; v = substr($0, length(k) + 2)
		  gsub(/^[ \t]+|[ \t]+$/, "", k)
		  if (!(k in val)) order[n++] = k
		  val[k] = v }
		END { print "# generated by tests/lib.sh tw_gate_conf"
		      for (i = 0; i < n; i++) { k = order[i]
			if (val[k] != "") printf "%s = %s\n", k, val[k] } }' >"$tw__f"
}

# tw_start_gate CONF [NAME]: start the gate in the foreground mode, in its own
# session (so its workers can be killed as a group), stderr in
# $TW_TMP/NAME.log; wait for the first listen endpoint; echo the master pid.
tw_start_gate() {
	tw__conf=$1
	tw__name=${2:-gate}
	tw__ep=$(sed -n 's/^[[:space:]]*listen[[:space:]]*=[[:space:]]*//p' "$tw__conf" |
		head -n 1 | cut -d, -f1 | tr -d ' ')
	tw__port=${tw__ep##*:}
	tw__host=${tw__ep%:*}
	tw__host=$(echo "$tw__host" | tr -d '[]')
	[ "$tw__host" = 0.0.0.0 ] && tw__host=127.0.0.1
	[ "$tw__host" = "::" ] && tw__host=::1
	setsid "$TW_GATE" -f -c "$tw__conf" >"$TW_TMP/$tw__name.log" 2>&1 </dev/null &
	tw__pid=$!
	echo "$tw__pid" >"$TW_TMP/$tw__name.pid"
	tw_cleanup_add "tw_stop_gate '$tw__name'"
	tw__i=0
	while ! tw_listening "$tw__host" "$tw__port"; do
		tw__i=$((tw__i + 1))
		if [ $tw__i -ge 100 ] || ! kill -0 "$tw__pid" 2>/dev/null; then
			echo "tw_start_gate: no listener on $tw__host:$tw__port; log:" >&2
			tail -n 30 "$TW_TMP/$tw__name.log" >&2
			return 1
		fi
		sleep 0.1
	done
	echo "$tw__pid"
}

tw_gate_pid() {
	cat "$TW_TMP/${1:-gate}.pid" 2>/dev/null
}

# tw_stop_gate [NAME]: SIGTERM, wait up to 15 s for the drain, then SIGKILL
# the whole session.  Returns 1 if the master needed SIGKILL.  A sanitizer
# report in the log is recorded as a failure.
tw_stop_gate() {
	tw__name=${1:-gate}
	tw__pid=$(tw_gate_pid "$tw__name")
	[ -n "$tw__pid" ] || return 0
	rm -f "$TW_TMP/$tw__name.pid"
	tw__rc=0
	if kill -TERM "$tw__pid" 2>/dev/null; then
		tw__i=0
		while kill -0 "$tw__pid" 2>/dev/null; do
			tw__i=$((tw__i + 1))
			if [ $tw__i -ge 150 ]; then
				tw__rc=1
				break
			fi
			sleep 0.1
		done
	fi
	# the session is named after the master: leftover workers go too
	kill -KILL -- "-$tw__pid" 2>/dev/null || true
	kill -KILL "$tw__pid" 2>/dev/null || true
	wait "$tw__pid" 2>/dev/null || true
	if grep -Eq 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$TW_TMP/$tw__name.log" 2>/dev/null; then
		tw_fail "$tw__name: sanitizer report" "see $TW_TMP/$tw__name.log"
		grep -E -A 20 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$TW_TMP/$tw__name.log" | head -n 40 | sed 's/^/    | /'
	fi
	return $tw__rc
}

# tw_gate_restart NAME key=value...: (re)start the gate named "gate" with a
# fresh store and $TW_TMP/gate.conf from these keys; a failed start is a
# failure named "NAME: gate start".
tw_gate_restart() {
	tw__gn=$1
	shift
	tw_stop_gate gate >/dev/null 2>&1
	rm -rf "$TW_TMP/gate.lmdb" "$TW_TMP/gate.lmdb-lock"
	tw_gate_conf "$TW_TMP/gate.conf" "$@"
	tw_start_gate "$TW_TMP/gate.conf" gate >/dev/null || tw_fail "$tw__gn: gate start"
}

# tw_gate_log NAME: show the tail of a gate log (for failure messages).
tw_gate_log() {
	tail -n "${2:-20}" "$TW_TMP/${1:-gate}.log" 2>/dev/null | sed 's/^/    | /'
}

# ---- SMTP clients ---------------------------------------------------------

# tw_swaks ARGS...: swaks with a timeout; transcript in $TW_TMP/swaks.out.
tw_swaks() {
	tw__n=$(wc -l <"$TW_TMP/.results")
	swaks --timeout "${TW_SWAKS_TIMEOUT:-15}" "$@" >"$TW_TMP/swaks.out" 2>&1 </dev/null
	tw__rc=$?
	cp "$TW_TMP/swaks.out" "$TW_TMP/swaks.$tw__n.out"
	return $tw__rc
}

# tw_swaks_reply: the last server reply line before the client's QUIT (or the
# last reply at all when the session ended otherwise), without swaks' prefix.
tw_swaks_reply() {
	awk '/^ [-~]> QUIT/ { exit }
	     /^<[-~*][-~*]? / { sub(/^<[-~*]+ +/, ""); last = $0 }
	     END { print last }' "$TW_TMP/swaks.out"
}

# tw_swaks_expect NAME ERE ARGS...: run swaks; ok if the last reply before QUIT
# matches ^ERE (e.g. 250, "451 4\.4\.1", "4[0-9][0-9]").
tw_swaks_expect() {
	tw__name=$1
	tw__re=$2
	shift 2
	tw_swaks "$@"
	tw__r=$(tw_swaks_reply)
	if echo "$tw__r" | grep -Eq "^($tw__re)"; then
		tw_ok "$tw__name"
	else
		tw_fail "$tw__name" "expected /$tw__re/, got \"$tw__r\""
		tail -n 25 "$TW_TMP/swaks.out" | sed 's/^/    | /'
		return 1
	fi
}

# tw_bg NAME CMD...: run a peer in the background (output in $TW_TMP/NAME.out,
# pid in $TW_TMP/NAME.pid), killed at exit; tw_bg_stop NAME kills it now.
tw_bg() {
	tw__bn=$1
	shift
	"$@" >"$TW_TMP/$tw__bn.out" 2>&1 </dev/null &
	echo $! >"$TW_TMP/$tw__bn.pid"
	tw_cleanup_add "kill -KILL $! 2>/dev/null"
}
tw_bg_stop() {
	kill -KILL "$(cat "$TW_TMP/$1.pid")" 2>/dev/null
	sleep 0.2
}

# tw_chat ARGS...: tests/peers/smtpchat.py (script on stdin).
tw_chat() {
	PYTHONUNBUFFERED=1 python3 "$TW_PEERS/smtpchat.py" "$@"
}

# tw_chat_expect NAME ARGS... <script: ok if every expectation held.
tw_chat_expect() {
	tw__name=$1
	shift
	tw__n=$(wc -l <"$TW_TMP/.results")
	tw__out="$TW_TMP/chat.$tw__n.out"
	if python3 "$TW_PEERS/smtpchat.py" "$@" >"$tw__out" 2>&1; then
		tw_ok "$tw__name"
	else
		tw_fail "$tw__name" "$(tail -n 1 "$tw__out")"
		tail -n 30 "$tw__out" | sed 's/^/    | /'
		return 1
	fi
}

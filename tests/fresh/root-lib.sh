# root-lib.sh - sourced by the scripts fresh-check.sh runs inside its roots
# (in-root.sh, in-root-deb.sh); it sits next to them at / in the root.
# Verdicts go to /results, one "ok NAME" or "FAIL NAME: why" per line, which
# fresh-check.sh counts.
#   ok NAME; fail NAME WHY; check NAME cmd... (ok if cmd exits 0)
#   wait_files DIR SECS: DIR holds a file within SECS seconds
#   wait_port PORT: something listens on PORT within 10 s
#   deliver WHAT MAILDIR SECS SWAKS_ARGS...: swaks succeeds and a message
#       lands in MAILDIR (new/) within SECS seconds: two verdicts
RESULTS=/results
: >$RESULTS
ok() { echo "ok $1" >>$RESULTS; echo "${0##*/}: ok $1"; }
fail() { echo "FAIL $1: $2" >>$RESULTS; echo "${0##*/}: FAIL $1: $2"; }
check() {
	n=$1
	shift
	if "$@"; then ok "$n"; else fail "$n" "$*"; fi
}
wait_files() {
	i=0
	while [ -z "$(ls -A "$1" 2>/dev/null)" ]; do
		i=$((i + 1))
		[ $i -ge $(($2 * 5)) ] && return 1
		sleep 0.2
	done
}
wait_port() {
	i=0
	until ss -Hltn | awk -v p=":$1" '$4 ~ p"$" { f = 1 } END { exit !f }'; do
		i=$((i + 1))
		[ $i -ge 100 ] && return 1
		sleep 0.1
	done
}
deliver() {
	what=$1 dir=$2 secs=$3
	shift 3
	if swaks --timeout 30 "$@"; then
		ok "swaks $what"
	else
		fail "swaks $what" "exit status $?"
	fi
	if wait_files "$dir/new" "$secs"; then
		ok "the message $what landed in $dir"
	else
		fail "the message $what landed in $dir" "$dir/new is empty"
	fi
}

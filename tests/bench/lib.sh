# bench/lib.sh — shell functions shared by the gate benchmarks (sourced).
# Sourcing it sets the defaults B (build dir), MSGS, SESS, SIZE, ROUNDS
# (from TW_BUILD, BENCH_MSGS, _SESSIONS, _SIZE, _ROUNDS), SRC (smtp-source)
# and RUNUSER; the caller sets D (its scratch dir).
#
#   gate_conf FILE PORT BACKEND HANDOFF [EXTRA]  a gate.conf (EXTRA: more lines)
#   start_gate CONF PORT PIDFILE                 start it, wait for the port
#                                                (under $GATE_WRAP, e.g. strace, if set)
#   run PORT                                     seconds for MSGS messages
#                                                (smtp-source; SRC_OPTS=-d: one
#                                                connection per session, not per message)

B=${TW_BUILD:-build}
MSGS=${BENCH_MSGS:-5000}
SESS=${BENCH_SESSIONS:-20}
SIZE=${BENCH_SIZE:-1024}
ROUNDS=${BENCH_ROUNDS:-2}
SRC=$(command -v smtp-source || echo /usr/sbin/smtp-source)
id tailwart >/dev/null 2>&1 && RUNUSER=tailwart || RUNUSER=nobody

gate_conf() { # gate_conf FILE PORT BACKEND HANDOFF [EXTRA]
	cat >"$1" <<CONF
listen = 127.0.0.1:$2
hostname = bench.gate.test
backend = $3
backend_handoff = $4
user = $RUNUSER
pid_file = $1.pidfile
workers_min = $SESS
workers_max = 64
message_size_limit = 10M
max_recipients = 100
store = lmdb:$1.lmdb
greylist_action = ignore
spf_action = ignore
${BENCH_GATE_EXTRA:-}
${5:-}
CONF
}

start_gate() { # start_gate CONF PORT PIDFILE (GATE_WRAP: a command to run it under)
	# shellcheck disable=SC2086
	${GATE_WRAP:-} "$B/tailwart-gate" -f -c "$1" 2>"$1.log" &
	echo $! >"$3"
	for _ in $(seq 1 50); do
		nc -z 127.0.0.1 "$2" 2>/dev/null && break
		sleep 0.1
	done
	sleep 1	# let the pool fill
}

# run PORT -> prints seconds for MSGS messages; fails if any message failed
run() {
	t0=$(date +%s.%N)
	# shellcheck disable=SC2086
	"$SRC" -c ${SRC_OPTS:-} -s "$SESS" -m "$MSGS" -l "$SIZE" -f bench@example.org -t user@example.test \
		127.0.0.1:"$1" >"$D/src.out" 2>&1 || { cat "$D/src.out" >&2; return 1; }
	t1=$(date +%s.%N)
	# smtp-source -c prints a count; errors show as "smtp-source: ..." lines
	if grep -qiE 'error|refused|fatal|warning' "$D/src.out"; then
		grep -iE 'error|refused|fatal|warning' "$D/src.out" | head -3 >&2
		return 1
	fi
	echo "$t0 $t1" | awk '{ printf "%.3f\n", $2 - $1 }'
}

#!/bin/sh
# run.sh - run every libFuzzer target for a bounded time (called by `make fuzz`).
#
#   sh tests/fuzz/run.sh BINDIR SECONDS [TARGET...]
#
# Each target runs alone (one core), on a scratch copy of its seed corpus
# tests/fuzz/corpus/<target>/ (the committed seeds are never modified), with
# -max_total_time=SECONDS. A target that crashes, leaks or times out fails,
# and the input that did it is printed; it is then run once more on that
# input alone: a failure that does not reproduce (a timeout on a loaded
# machine) is reported but not counted as failed. Last line:
# "N passed, N failed". Then every input in tests/fuzz/crashes/ is run once
# through its target (the name says which) and must run clean.
set -u
bindir=$1
secs=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
scratch=$bindir/run
pass=0
# a small quarantine and no malloc fill: the session targets allocate 64 KiB
# buffers per input, and both cost more than the code under test
: "${ASAN_OPTIONS:=quarantine_size_mb=16:max_malloc_fill_size=0:detect_leaks=1}"
export ASAN_OPTIONS
fail=0

# -max_len per target: big enough for a whole session or file
max_len() {
	case $1 in
	fuzz_proxy) echo 600 ;;
	fuzz_smtp|fuzz_redis|fuzz_policy) echo 4096 ;;
	*) echo 16384 ;;
	esac
}

targets=${*:-$(cd "$bindir" && ls fuzz_* 2>/dev/null | grep -v '\.')}
for t in $targets; do
	[ -x "$bindir/$t" ] || { echo "fuzz: $t not built"; fail=$((fail + 1)); continue; }
	rm -rf "${scratch:?}/$t"
	mkdir -p "$scratch/$t/corpus" "$scratch/$t/crash"
	[ -d "$here/corpus/$t" ] && cp "$here/corpus/$t"/* "$scratch/$t/corpus/" 2>/dev/null
	start=$(date +%s)
	"$bindir/$t" -max_total_time="$secs" -max_len="$(max_len "$t")" -timeout=25 \
		-rss_limit_mb=2048 -close_fd_mask=3 -print_final_stats=1 \
		-artifact_prefix="$scratch/$t/crash/" "$scratch/$t/corpus" \
		>"$scratch/$t/log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/$t/log" | tail -1)
	took=$(($(date +%s) - start))
	if [ $rc -eq 0 ]; then
		echo "fuzz: $t ok runs=${runs:-?} seconds=$took"
		pass=$((pass + 1))
		continue
	fi
	crash=$(ls "$scratch/$t/crash/"* 2>/dev/null | head -1)
	grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$scratch/$t/log" | head -5 | sed 's/^/    /'
	if [ -n "$crash" ] && "$bindir/$t" -timeout=25 -rss_limit_mb=2048 -close_fd_mask=3 \
		"$crash" >"$scratch/$t/rerun.log" 2>&1; then
		echo "fuzz: $t did not reproduce on its input $crash (log $scratch/$t/log): not counted"
		pass=$((pass + 1))
		continue
	fi
	echo "fuzz: $t FAILED rc=$rc input=${crash:-none} log=$scratch/$t/log"
	fail=$((fail + 1))
done

# Every input that once crashed a target (tests/fuzz/crashes/PREFIX-what,
# PREFIX = the target without "fuzz_") must now run clean: the fixes stay.
for c in "$here"/crashes/*; do
	[ -f "$c" ] || continue
	t=fuzz_$(basename "$c" | cut -d- -f1)
	[ -x "$bindir/$t" ] || continue
	case " ${*:-$t} " in *" $t "*) ;; *) continue ;; esac
	if "$bindir/$t" -timeout=25 -rss_limit_mb=2048 -close_fd_mask=3 "$c" \
		>"$scratch/$(basename "$c").log" 2>&1; then
		echo "fuzz: $t ok on the old crash $(basename "$c")"
		pass=$((pass + 1))
	else
		echo "fuzz: $t FAILED on the old crash $c (log $scratch/$(basename "$c").log)"
		fail=$((fail + 1))
	fi
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

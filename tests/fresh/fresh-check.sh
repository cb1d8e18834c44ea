#!/bin/sh
# fresh-check.sh - the README's first commands on a truly fresh Debian 12.
#
#   sh tests/fresh/fresh-check.sh          (root; what `make fresh-check` runs)
#
# 1. Builds a minimal Debian 12 root (mmdebstrap --variant=minbase, plus git
#    and make only) from the mirrors this machine uses (the active files in
#    /etc/apt/sources.list.d/ and /etc/apt/sources.list).
# 2. Puts a clean clone of the repository at FRESH_REF in it (git clone of the
#    commit, not this working tree) and, inside it, runs `make run`, sends one
#    message through the gate and one through the relay with swaks (installed
#    by make run), checks both landed (the backend's maildir, with the client
#    address, and the smarthost's), `make stop`, `make check-unit`, then
#    `make deb` and lintian (no error) when the commit has a debian/.
# 3. In a second fresh root (same base), `apt-get install ./tailwart_*.deb`
#    of that package, checks what it set up, and runs the packaged gate and
#    relay (-f) from the packaged configs, loopback keys replaced, in front
#    of the test peers (tests/peers of the clone): one message through each
#    (tests/fresh/in-root-deb.sh).
#
# Every command in the root runs in a network namespace of this script (lo,
# plus user-mode networking through slirp4netns so apt reaches the mirror:
# nothing is bound on this machine's ports) and in its own mount and pid
# namespaces: every mount and every process it started disappears with it,
# on every exit path.  Ends with "N passed, N failed".
#
# Environment:
#   FRESH_REF    commit to test (default HEAD); FRESH_REF=cc15b79 shows the
#                Makefile that linked with no library flags on a fresh machine
#   FRESH_DIR    work directory (default /var/tmp/tailwart-fresh): the logs
#                of the commands run in the roots (r1.log...), the cache; the
#                roots of a run (run.PID/) are removed at its exit
#   FRESH_CACHE  directory of downloaded .debs kept across runs (default
#                $FRESH_DIR/cache; empty: download everything every time)
#   FRESH_TIMEOUT seconds for the commands inside the root (default 2400)
#   FRESH_BASE   a base tarball of an earlier run ($FRESH_DIR/base.tar, kept
#                by each run) to skip mmdebstrap when iterating; CI leaves it
#                unset
set -eu

TW_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TW_TMP_PARENT=${TW_TMP_PARENT:-/tmp}
. "$TW_ROOT/tests/lib.sh"

REF=${FRESH_REF:-HEAD}
W=${FRESH_DIR:-/var/tmp/tailwart-fresh}
CACHE=${FRESH_CACHE-$W/cache}
LIMIT=${FRESH_TIMEOUT:-2400}
NS=tw-fresh-$$
T0=$(date +%s)

[ "$(id -u)" -eq 0 ] || { echo "fresh-check: run as root" >&2; exit 1; }
for c in mmdebstrap slirp4netns unshare ip git; do
	command -v $c >/dev/null 2>&1 || {
		echo "fresh-check: $c missing (sh tests/peers/deps.sh installs it)" >&2
		exit 1
	}
done
SHA=$(git -C "$TW_ROOT" rev-parse --verify "$REF^{commit}")
# this run's files (roots, base tarball) in R, removed at exit; logs and the
# .deb cache stay in W
R=$W/run.$$
for d in "$W"/run.*; do # of killed runs
	[ -d "$d" ] && ! kill -0 "${d##*.}" 2>/dev/null && rm -rf --one-file-system "$d"
done
mkdir -p "$R"
tw_cleanup_add "rm -rf --one-file-system '$R'"
[ -z "$CACHE" ] || mkdir -p "$CACHE/partial"

step() { echo "# $(($(date +%s) - T0))s: $*"; }

# ---- the network namespace ------------------------------------------------

# Namespaces of killed runs (named after their pid) go first; their
# slirp4netns died with them (--exit-fd).
for n in $(ip netns list 2>/dev/null | sed -n 's/^\(tw-fresh-[0-9]*\).*/\1/p'); do
	kill -0 "${n#tw-fresh-}" 2>/dev/null || ip netns del "$n" 2>/dev/null || true
done
ip netns add "$NS"
tw_cleanup_add "ip netns del '$NS'"
ip netns exec "$NS" ip link set lo up
# slirp4netns exits when the write end of fd 3 closes (this script ends).
rm -f "$R/slirp.exit"
mkfifo "$R/slirp.exit"
slirp4netns --configure --mtu=65520 --disable-host-loopback \
	--netns-type=path --exit-fd=3 "/run/netns/$NS" tap0 \
	>"$R/slirp.log" 2>&1 3<"$R/slirp.exit" &
SLIRP=$!
exec 4>"$R/slirp.exit"
tw_cleanup_add "kill $SLIRP"
i=0
until ip netns exec "$NS" ip -4 addr show tap0 2>/dev/null | grep -q inet; do
	i=$((i + 1))
	if [ $i -ge 50 ]; then
		echo "fresh-check: slirp4netns did not configure tap0" >&2
		cat "$R/slirp.log" >&2
		exit 1
	fi
	sleep 0.1
done

# ---- roots ----------------------------------------------------------------

# mirrors: the active apt source files of this machine, one argument each
set --
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
	/etc/apt/sources.list.d/*.sources; do
	[ -s "$f" ] && grep -Eq '^[[:space:]]*[^#[:space:]]' "$f" && set -- "$@" "$f"
done
[ $# -gt 0 ] || { echo "fresh-check: no apt sources on this machine" >&2; exit 1; }

# base_root MIRROR...: $BASE, Debian 12 minbase plus git and make (a copy
# stays in $W/base.tar for FRESH_BASE); with a cache, the .debs it
# downloaded are kept for the next run.
base_root() {
	step "mmdebstrap --variant=minbase bookworm (+ git, make)"
	hook_in=true hook_out=true
	if [ -n "$CACHE" ]; then
		hook_in="mkdir -p \"\$1\"/var/cache/apt/archives && cp -a '$CACHE'/. \"\$1\"/var/cache/apt/archives/"
		hook_out="sync-out /var/cache/apt/archives '$CACHE'"
	fi
	ip netns exec "$NS" mmdebstrap --quiet --variant=minbase --mode=root \
		--include=git,make --skip=essential/unlink \
		--setup-hook="$hook_in" --customize-hook="$hook_out" \
		bookworm "$BASE" "$@" </dev/null || return 1
	cp "$BASE" "$W/base.tar.$$" && mv "$W/base.tar.$$" "$W/base.tar"
}

# new_root NAME: a fresh copy of the base in $R/NAME.
new_root() {
	rm -rf --one-file-system "${R:?}/$1"
	mkdir -p "$R/$1"
	tar -C "$R/$1" -xf "$BASE"
	# what every installed machine has and minbase lacks
	printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
		>"$R/$1/etc/hosts"
	echo "nameserver 10.0.2.3" >"$R/$1/etc/resolv.conf"
}

# in_root NAME CMD...: CMD chrooted in $R/NAME with /dev, /proc, /sys (and
# the .deb cache) mounted, in the test's network namespace, in new mount and
# pid namespaces: everything it starts and mounts ends with it.
in_root() {
	r="$R/$1"
	shift
	ip netns exec "$NS" timeout -k 10 "$LIMIT" \
		unshare --mount --propagation private --pid --fork --kill-child \
		sh -c 'r=$1 c=$2; shift 2
			mount --rbind /dev "$r/dev" &&
			mount -t proc proc "$r/proc" &&
			mount -t sysfs sysfs "$r/sys" &&
			{ [ -z "$c" ] || mount --bind "$c" "$r/var/cache/apt/archives"; } &&
			exec chroot "$r" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
				PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
				"$@"' sh "$r" "$CACHE" "$@" </dev/null
}

# results NAME: the verdicts the script in root NAME wrote ("ok NAME" /
# "FAIL NAME: why"), and the end of its log if one failed
results() {
	while IFS= read -r l; do
		case "$l" in
		"ok "*) tw_ok "$1: ${l#ok }" ;;
		"FAIL "*) tw_fail "$1: ${l#FAIL }" ;;
		esac
	done <"$R/$1/results" || tw_fail "$1: results" "none written"
	if grep -q '^FAIL' "$R/$1/results" 2>/dev/null || [ ! -s "$R/$1/results" ]; then
		echo "---- last lines of $W/$1.log"
		tail -n 40 "$W/$1.log" | sed 's/^/    | /'
	fi
}

if [ -n "${FRESH_BASE:-}" ]; then
	BASE=$FRESH_BASE
	step "base: $BASE (FRESH_BASE)"
else
	BASE=$R/base.tar
	base_root "$@"
fi
step "root 1: clone of $REF ($SHA)"
new_root r1
git clone -q --no-hardlinks "$TW_ROOT" "$R/r1/root/tailwart"
git -C "$R/r1/root/tailwart" -c advice.detachedHead=false checkout -q "$SHA"
cp "$TW_ROOT/tests/fresh/in-root.sh" "$TW_ROOT/tests/fresh/root-lib.sh" "$R/r1/"

step "root 1: make run; swaks through the gate and the relay; make stop; make check-unit; make deb"
if in_root r1 sh /in-root.sh >"$W/r1.log" 2>&1; then
	tw_ok "commands inside root 1 ran to the end"
else
	tw_fail "commands inside root 1 ran to the end" "exit $? (log $W/r1.log)"
fi
results r1

# ---- root 2: the package built in root 1, on a machine without the source
if ls "$R"/r1/out/tailwart_*.deb >/dev/null 2>&1; then
	step "root 2: apt-get install ./tailwart_*.deb; the packaged gate and relay deliver"
	new_root r2
	cp "$R"/r1/out/tailwart_*.deb "$R/r2/root/"
	cp -r "$R/r1/root/tailwart/tests/peers" "$R/r2/root/peers"
	cp "$TW_ROOT/tests/fresh/in-root-deb.sh" "$TW_ROOT/tests/fresh/root-lib.sh" "$R/r2/"
	if in_root r2 sh /in-root-deb.sh >"$W/r2.log" 2>&1; then
		tw_ok "commands inside root 2 ran to the end"
	else
		tw_fail "commands inside root 2 ran to the end" "exit $? (log $W/r2.log)"
	fi
	results r2
elif [ -d "$R/r1/root/tailwart/debian" ]; then
	tw_fail "root 2" "root 1 built no package"
fi

step "done"
tw_summary

#!/bin/sh
# 86-install: `make install DESTDIR=... PREFIX=/usr` lays out what the Debian
# package installs, and what it installs works:
#  - exactly the expected files with the expected modes (smarthost.conf 0640);
#  - a second install keeps an edited config (configs only if absent);
#  - each manual page renders with `man --warnings` at 80 columns without a
#    warning, `man N NAME` finds all five pages in the installed tree, and
#    mandb's whatis parser reads their NAME lines;
#  - `systemd-analyze verify` is clean on the three units (with the sandbox
#    drop-in, checked against the installed binaries and pages), and
#    `systemd-analyze security --offline` rates each one below 4.0.
. "$(dirname "$0")/../lib.sh"

T=$(tw_tmpdir)
D=$T/root
build_rel=${TW_BUILD#"$TW_ROOT"/}

if ! make -s -C "$TW_ROOT" install B="$build_rel" DESTDIR="$D" PREFIX=/usr \
	>"$T/install.log" 2>&1 </dev/null; then
	tw_fail "make install DESTDIR" "$(tail -n 20 "$T/install.log")"
	tw_summary
	exit 1
fi
tw_ok "make install DESTDIR=... PREFIX=/usr"

# ---- the tree
(cd "$D" && find . -mindepth 1 \( -type f -o -type l \) -printf '%m %p\n' | sort) >"$T/tree"
cat >"$T/want" <<EOF
640 ./etc/tailwart/smarthost.conf
644 ./etc/tailwart/gate.conf
644 ./lib/systemd/system/tailwart-.service.d/sandbox.conf
644 ./lib/systemd/system/tailwart-gate.service
644 ./lib/systemd/system/tailwart-milter.service
644 ./lib/systemd/system/tailwart-relay.service
644 ./usr/share/doc/tailwart/README.md
644 ./usr/share/man/man5/gate.conf.5
644 ./usr/share/man/man5/smarthost.conf.5
644 ./usr/share/man/man8/tailwart-gate.8
644 ./usr/share/man/man8/tailwart-milter.8
644 ./usr/share/man/man8/tailwart-relay.8
755 ./usr/sbin/tailwart-gate
755 ./usr/sbin/tailwart-milter
755 ./usr/sbin/tailwart-relay
EOF
for f in "$TW_ROOT"/docs/*.md; do
	echo "644 ./usr/share/doc/tailwart/${f##*/}"
done >>"$T/want"
sort -o "$T/want" "$T/want"
if diff -u "$T/want" "$T/tree" >"$T/tree.diff"; then
	tw_ok "installed tree: programs, units, pages, docs, configs (modes)"
else
	tw_fail "installed tree: programs, units, pages, docs, configs (modes)"
	sed 's/^/    | /' "$T/tree.diff"
fi

echo "# edited" >>"$D/etc/tailwart/gate.conf"
make -s -C "$TW_ROOT" install B="$build_rel" DESTDIR="$D" PREFIX=/usr >"$T/install2.log" 2>&1 </dev/null
if tail -n 1 "$D/etc/tailwart/gate.conf" | grep -qx '# edited'; then
	tw_ok "a second install keeps an edited config"
else
	tw_fail "a second install keeps an edited config"
fi

# ---- manual pages
for p in "$D"/usr/share/man/man?/*; do
	n=${p##*/}
	w=$(MANWIDTH=80 man --warnings -E UTF-8 -l "$p" 2>&1 >/dev/null)
	if [ -z "$w" ]; then
		tw_ok "man --warnings -l $n: no warning"
	else
		tw_fail "man --warnings -l $n: no warning" "$(echo "$w" | head -n 5)"
	fi
done
for sp in "8 tailwart-gate" "5 gate.conf" "8 tailwart-relay" "5 smarthost.conf" "8 tailwart-milter"; do
	set -- $sp
	out=$(MANWIDTH=80 man -M "$D/usr/share/man" "$1" "$2" 2>&1)
	if echo "$out" | head -n 1 | grep -q "^$2($1) " && echo "$out" | grep -q '^NAME$' &&
		echo "$out" | grep -q '^SYNOPSIS$\|^SYNTAX$'; then
		tw_ok "man $1 $2"
	else
		tw_fail "man $1 $2" "$(echo "$out" | head -n 5)"
	fi
	if lexgrog "$D/usr/share/man/man$1/$2.$1" | grep -q "\"$2 - "; then
		tw_ok "whatis entry of $2($1)"
	else
		tw_fail "whatis entry of $2($1)" "$(lexgrog "$D/usr/share/man/man$1/$2.$1")"
	fi
done

# ---- units: verified against the installed binaries and pages
mkdir -p "$T/units"
cp -r "$D/lib/systemd/system/." "$T/units/"
sed -i "s,/usr/sbin/,$D/usr/sbin/,g" "$T/units"/*.service
for u in gate relay milter; do
	if MANPATH="$D/usr/share/man" systemd-analyze verify "$T/units/tailwart-$u.service" \
		>"$T/verify.$u" 2>&1 && [ ! -s "$T/verify.$u" ]; then
		tw_ok "systemd-analyze verify tailwart-$u.service: clean"
	else
		tw_fail "systemd-analyze verify tailwart-$u.service: clean" "$(head -n 5 "$T/verify.$u")"
	fi
	MANPATH="$D/usr/share/man" systemd-analyze security --offline=yes \
		"$T/units/tailwart-$u.service" >"$T/security.$u" 2>&1
	level=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$T/security.$u")
	if [ -n "$level" ] && awk -v l="$level" 'BEGIN { exit !(l < 4.0) }' &&
		grep -q '✓ ProtectSystem=.*strict read-only' "$T/security.$u" &&
		grep -q '✓ CapabilityBoundingSet=~CAP_SYS_ADMIN' "$T/security.$u"; then
		tw_ok "tailwart-$u.service sandboxed (exposure $level)"
	else
		tw_fail "tailwart-$u.service sandboxed" "exposure '$level'; $(tail -n 3 "$T/security.$u")"
	fi
	grep -q '^Type=notify$' "$T/units/tailwart-$u.service" &&
		grep -q '^Restart=on-failure$' "$T/units/tailwart-$u.service" &&
		tw_ok "tailwart-$u.service: Type=notify, Restart=on-failure" ||
		tw_fail "tailwart-$u.service: Type=notify, Restart=on-failure"
done
for u in gate relay; do
	if grep -q '^ExecReload=/bin/kill -HUP \$MAINPID$' "$T/units/tailwart-$u.service"; then
		tw_ok "tailwart-$u.service: reload is HUP"
	else
		tw_fail "tailwart-$u.service: reload is HUP"
	fi
done

tw_summary

#!/bin/sh
# mkconf.sh - merge a sample configuration with container overrides.
#
#   sh deploy/mkconf.sh SAMPLE OVERRIDES > OUT
#
# OUT is SAMPLE with every key that OVERRIDES sets commented out (with its
# continuation lines), followed by OVERRIDES. A key may appear once in a
# tailwart configuration, so the overrides must replace, not repeat.
set -eu
[ $# -eq 2 ] || { echo "usage: $0 SAMPLE OVERRIDES" >&2; exit 2; }
awk '
	function key(line) { sub(/[ \t]*=.*/, "", line); return line }
	FNR == NR {
		if ($0 !~ /^[ \t]*(#|$)/ && $0 !~ /^[ \t]/) set[key($0)] = 1
		next
	}
	/^[ \t]*(#|$)/ { print; next }
	/^[ \t]/ { print (off ? "#" : "") $0; next }
	{ off = (key($0) in set); print (off ? "#(container) " : "") $0 }
' "$2" "$1"
printf '\n# ---- container settings (deploy/%s) ----\n' "$(basename "$2")"
cat "$2"

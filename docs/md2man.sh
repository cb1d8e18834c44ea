#!/bin/sh
# md2man.sh - a manual page (roff, man macros) from its markdown source.
#
#   sh docs/md2man.sh docs/NAME.SECTION.md OUT
#
# docs/*.md stay the one source, readable as markdown.  The first line must
# be "# NAME(SECTION)" matching the file name: it becomes lowdown's title and
# section metadata (the .TH line), and the "## NAME", "## SYNOPSIS"...
# headings move up one level to become the page's sections.  Two
# adjustments keep `man --warnings` quiet at 80 columns: left-adjusted text
# (no "cannot adjust line" in narrow table cells) and a break point after
# each "_" and "@" inside table cells (long key names such as
# passthrough_max_connections are wider than their column).  The NAME line
# gets the "name \- what" form that mandb's whatis parser wants.
set -eu
src=$1
out=$2
base=$(basename "$src" .md)
name=${base%.*}
sec=${base##*.}
first=$(head -n 1 "$src")
if [ "$first" != "# $name($sec)" ]; then
	echo "$src:1: the first line must be \"# $name($sec)\", not \"$first\"" >&2
	exit 1
fi
sed 1d "$src" |
	lowdown -s -Tman -M "title=$name" -M "section=$sec" -M source=tailwart \
		-M volume="tailwart manual" -M shiftheadinglevelby=-1 |
	sed -e '/^\.TH /a\
.ad l' -e '/^NAME$/,/^\.SH/ s/ — / \\- /' \
		-e '/^\.TS/,/^\.TE/ { /^\./b' -e '/^T[{}]/b' -e 's/[_@]/&\\:/g' -e '}' \
		>"$out.tmp"
mv "$out.tmp" "$out"

#!/bin/sh
# netns.sh - run a command in a fresh private network namespace whose lo
# is up and carries the given extra addresses; the namespace is deleted
# afterwards, whatever the command's exit.
#
#   sh tests/peers/netns.sh NAME [ADDR/PREFIX...] -- COMMAND [ARGS...]
#
# IPv6 addresses are added with nodad. Exits with COMMAND's status, or 1
# (and the line "0 passed, 1 failed", for tests/run) when the namespace
# cannot be created (needs root and iproute2).
set -u
ns=$1
shift
if ! ip netns add "$ns" 2>/dev/null; then
	echo "FAIL cannot create a network namespace $ns (need root and iproute2)"
	echo "0 passed, 1 failed"
	exit 1
fi
ip netns exec "$ns" ip link set lo up
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
	case "$1" in
	*:*) ip netns exec "$ns" ip -6 addr add "$1" dev lo nodad ;;
	*) ip netns exec "$ns" ip addr add "$1" dev lo ;;
	esac
	shift
done
[ $# -gt 0 ] && shift
ip netns exec "$ns" "$@"
rc=$?
ip netns del "$ns"
exit $rc

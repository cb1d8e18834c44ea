#!/bin/sh
# deps.sh - install the build and test dependencies of tailwart on Debian 12.
#
#   sh tests/peers/deps.sh [EXTRA_PACKAGE...]
#
# Idempotent and fast when everything is present: it asks dpkg-query first
# and runs apt-get only for what is missing.  Needs root to install; as
# another user it only reports what is missing and fails.
# Also ensures the system user "tailwart" exists (make run drops to it).
#
# It never starts, stops or reconfigures the system postfix, unbound or
# redis services: our test peers run private instances on their own ports.
set -eu

PKGS="build-essential pkg-config libssl-dev libc-ares-dev libspf2-dev
libmilter-dev libopendkim-dev liblmdb-dev libhiredis-dev libsystemd-dev postfix swaks
unbound redis-server opendkim opendkim-tools miltertest sasl2-bin
libsasl2-modules openssl iproute2 procps netcat-openbsd valgrind
ca-certificates python3 coreutils haproxy libnet-ssleay-perl
libio-socket-inet6-perl libnet-dns-perl rspamd
prometheus curl strace
clang
mmdebstrap slirp4netns lowdown man-db debhelper lintian $*"

missing=""
for p in $PKGS; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in
	*" installed") ;;
	*) missing="$missing $p" ;;
	esac
done

if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps.sh: missing packages:$missing (run as root to install)" >&2
		exit 1
	fi
	echo "deps.sh: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	# Postfix asks what kind of mail server this is; we configure private
	# instances ourselves, so the system one gets no configuration.
	echo "postfix postfix/main_mailer_type select No configuration" |
		debconf-set-selections
	echo "postfix postfix/mailname string localhost" | debconf-set-selections
	apt-get update -q </dev/null
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		$missing </dev/null
fi

if ! getent passwd tailwart >/dev/null 2>&1; then
	if [ "$(id -u)" -eq 0 ]; then
		useradd --system --no-create-home --shell /usr/sbin/nologin tailwart
		echo "deps.sh: created system user tailwart"
	else
		echo "deps.sh: user tailwart missing (run as root to create it)" >&2
	fi
fi

# The backend peers run as the postfix user; make sure it exists even if the
# package's postinst was skipped for some reason.
if ! getent passwd postfix >/dev/null 2>&1; then
	echo "deps.sh: user postfix missing after install" >&2
	exit 1
fi
exit 0

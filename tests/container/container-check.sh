#!/bin/sh
# container-check.sh - `make container-check`: build the tailwart image with
# podman and run deploy/compose.yaml with podman-compose in front of Postfix
# stand-ins for Stalwart and the smarthost; mail through the gate (port 25,
# STARTTLS, and a pass-through port) lands in the Stalwart stand-in with the
# client's address, and mail through the relay reaches the smarthost.
#
#   sh tests/container/container-check.sh        (root; last line "N passed, N failed")
#
# Everything is private to the test's directory $TW_TMP (removed at exit
# unless TW_KEEP=1): podman's containers.conf and storage.conf
# (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF: graphroot, runroot, volumes,
# networks), the base image, the compose project and the peers' mail.
# podman, runc, podman-compose, mmdebstrap, netavark, aardvark-dns and
# catatonit are installed here through tests/peers/deps.sh (as extra
# packages: `make deps` does not install them).
#
# There is no registry: the base image is a minbase Debian 12 made with
# mmdebstrap from this machine's own mirror (sources in
# /etc/apt/sources.list.d/), imported and tagged debian:bookworm and
# debian:bookworm-slim; builds use --pull=never and the host network (no
# firewall rules in the root network namespace). The compose stack runs in
# a network namespace of its own (its bridge, firewall rules and published
# 127.0.0.1 ports die with it).
#
# Environment: TW_KEEP=1 keeps the directory; TW_CT_BASE=FILE.tar reuses a
# base tarball (made by an earlier run kept with TW_KEEP=1); TW_CT_CACHE=DIR
# keeps podman's image store in DIR across runs (layer cache, for work on
# the Containerfile: images are not removed then).
set -u

. "$(dirname "$0")/../lib.sh"
T=$TW_TMP
ROOT=$TW_ROOT
P=twct$$                      # compose project; containers are ${P}_SERVICE_1
NS=tw-ct-$$
START=$(date +%s)

if [ "$(id -u)" -ne 0 ]; then
	tw_fail "root" "rootful podman: run as root"
	tw_summary
	exit 1
fi
sh "$ROOT/tests/peers/deps.sh" podman runc podman-compose mmdebstrap netavark \
	aardvark-dns catatonit </dev/null >"$T/deps.log" 2>&1 || {
	tail -n 20 "$T/deps.log" >&2
	tw_fail "deps" "tests/peers/deps.sh could not install podman & co"
	tw_summary
	exit 1
}

# ---- private podman configuration --------------------------------------------
# runc (crun fails on this hybrid cgroup host), cgroupfs, file events, and
# nofile limits root may set (podman's default 1048576 fails here).
nofile=$(ulimit -Hn)
GRAPHROOT=${TW_CT_CACHE:-$T/storage}
mkdir -p "$GRAPHROOT" "$T/run" "$T/tmp" "$T/volumes" "$T/networks" "$T/tls" \
	"$T/compose" "$T/stalwart" "$T/smarthost"
cat >"$T/containers.conf" <<CF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]
log_driver = "k8s-file"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$T/events.log"
tmp_dir = "$T/tmp"
volume_path = "$T/volumes"
static_dir = "$T/libpod"
[network]
network_backend = "netavark"
network_config_dir = "$T/networks"
CF
cat >"$T/storage.conf" <<CF
[storage]
driver = "overlay"
graphroot = "$GRAPHROOT"
runroot = "$T/run"
CF
CONTAINERS_CONF=$T/containers.conf
CONTAINERS_STORAGE_CONF=$T/storage.conf
export CONTAINERS_CONF CONTAINERS_STORAGE_CONF

# Cleanup runs in reverse order: compose down, containers, network, volumes
# and images, then the storage's own mounts, then the namespace.
ip netns add "$NS"
ip netns exec "$NS" ip link set lo up
tw_cleanup_add "ip netns del '$NS'"
tw_cleanup_add "grep -o ' $T/[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l"
[ -n "${TW_CT_CACHE:-}" ] || tw_cleanup_add "podman rmi -af"
tw_cleanup_add "ns podman volume prune -f"
tw_cleanup_add "ns podman network rm -f ${P}_default"
tw_cleanup_add "ns podman rm -af -t 2"
tw_cleanup_add "cd '$T/compose' && ns timeout 120 podman-compose -p $P -f compose.yaml -f compose.test.yaml down -v"

# ns CMD...: run in the test's network namespace
ns() { nsenter --net="/run/netns/$NS" "$@"; }
# compose ARGS...: podman-compose on the copied files with the test's .env
compose() {
	(cd "$T/compose" && ns timeout 300 podman-compose -p "$P" -f compose.yaml \
		-f compose.test.yaml "$@")
}
# step NAME CMD...: a build step; its output goes to $T/NAME.log, its time is kept
step() {
	st_name=$1
	shift
	st_t0=$(date +%s)
	if "$@" >"$T/$st_name.log" 2>&1 </dev/null; then
		tw_ok "$st_name ($(($(date +%s) - st_t0)) s)"
	else
		tw_fail "$st_name" "exit $? after $(($(date +%s) - st_t0)) s"
		tail -n 30 "$T/$st_name.log" | sed 's/^/    | /'
		return 1
	fi
}
finish() {
	echo "# wall time $(($(date +%s) - START)) s"
	tw_summary
	exit $?
}

# ---- images ------------------------------------------------------------------
# mmdebstrap reads the sources from stdin (deb822 stanzas); the merged-usr hook
# avoids the usrmerge package and the perl it pulls in.
make_base() {
	if [ -n "${TW_CT_CACHE:-}" ] && podman image exists localhost/debian:bookworm-slim; then
		return 0   # the cached base keeps the cached layers valid
	elif [ -n "${TW_CT_BASE:-}" ]; then
		cp "$TW_CT_BASE" "$T/rootfs.tar"
	else
		cat /etc/apt/sources.list.d/*.sources | grep -v '^#' |
			mmdebstrap --variant=minbase --mode=root --format=tar \
			--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
			--dpkgopt='path-exclude=/usr/share/man/*' \
			--dpkgopt='path-exclude=/usr/share/doc/*' \
			--dpkgopt='path-include=/usr/share/doc/*/copyright' \
			--dpkgopt='path-exclude=/usr/share/locale/*' \
			--dpkgopt='path-exclude=/usr/share/info/*' \
			bookworm "$T/rootfs.tar" -
	fi
	podman import --change 'CMD ["bash"]' "$T/rootfs.tar" localhost/debian:bookworm
	podman tag localhost/debian:bookworm localhost/debian:bookworm-slim
}
build_image() {
	cd "$ROOT" && podman build --pull=never --network=host -f deploy/Containerfile \
		-t localhost/tailwart:test .
}
build_peer() {
	cd "$ROOT" && podman build --pull=never --network=host \
		-f tests/container/Containerfile.peer -t localhost/tailwart-test-peer:latest .
}
step base make_base || finish
step image build_image || finish
step peer-image build_peer || finish
size=$(podman image inspect localhost/tailwart:test --format '{{.Size}}')
base=$(podman image inspect localhost/debian:bookworm-slim --format '{{.Size}}')
echo "# image localhost/tailwart:test: $((size / 1000000)) MB (base $((base / 1000000)) MB)"

# ---- the compose stack -------------------------------------------------------
cp "$ROOT/deploy/compose.yaml" "$ROOT/tests/container/compose.test.yaml" "$T/compose/"
sh "$ROOT/tests/peers/certs.sh" "$T/tls" >/dev/null 2>&1
cat >"$T/compose/.env" <<CF
# written by tests/container/container-check.sh
PUBLISH_ADDR=127.0.0.1
MAIL_HOSTNAME=mx.example.test
STALWART_BACKEND=stalwart:25
GATE_PASSTHROUGH=0.0.0.0:465=stalwart:25, 0.0.0.0:587=stalwart:25, 0.0.0.0:993=stalwart:25
GATE_ALLOW=10.0.0.0/8
TLS_DIR=$T/tls
TLS_CERT=/etc/tailwart/tls/cert.pem
TLS_KEY=/etc/tailwart/tls/key.pem
RELAY_PUBLISH_ADDR=127.0.0.1
RELAY_CLIENT_NETWORKS=10.0.0.0/8
STALWART_SMARTHOST=[smarthost]:587
SMARTHOST_TLS=verify
SMARTHOST_TLS_CA=/etc/tailwart/tls/smarthost-ca.pem
SMARTHOST_USER=relay@example.test
SMARTHOST_PASSWORD='s3cret#pw'
TAILWART_IMAGE=localhost/tailwart:test
TEST_DIR=$T
CF

# The peers first: the relay reads the smarthost's CA at start, and the gate
# gets the stand-in's unbound as its policy resolver (every name outside the
# test zones is NXDOMAIN: SPF "none" for example.org; there is no DNS
# outside). GATE_ALLOW (the compose subnet) spares the test clients the
# greylisting; policy has its own tests.
peers_up() {
	compose up -d stalwart smarthost
	i=0
	until [ -s "$T/smarthost/ca.pem" ] &&
		ns podman exec "${P}_smarthost_1" ss -Hltn | grep -q ':587 ' &&
		ns podman exec "${P}_stalwart_1" ss -Hltn | grep -q ':25 ' &&
		ns podman exec "${P}_stalwart_1" ss -Hlun | grep -q ':53 '; do
		i=$((i + 1))
		[ $i -le 60 ] || { echo "peers not listening after 60 s"; return 1; }
		sleep 1
	done
	cp "$T/smarthost/ca.pem" "$T/tls/smarthost-ca.pem"
	dns_ip=$(ns podman inspect "${P}_stalwart_1" --format \
		'{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}')
	echo "GATE_RESOLVER=$dns_ip:53" >>"$T/compose/.env"
}
step peers-up peers_up || finish
step compose-up compose up -d || finish
GATE=${P}_gate_1
RELAY=${P}_relay_1

# healthy NAME: `podman healthcheck run` (nothing schedules it here: PID 1
# is not systemd) until it passes, 30 s at most
healthy() {
	i=0
	until ns podman healthcheck run "$1"; do
		i=$((i + 1))
		[ $i -le 30 ] || return 1
		sleep 1
	done
}
tw_check "gate healthcheck passes" healthy "$GATE"
tw_check "relay healthcheck passes" healthy "$RELAY"

# ---- mail through the gate ---------------------------------------------------
MBOX=$T/stalwart/mail/user
send() { # send NAME SERVER[:PORT] [swaks args]: expect 250 at the end of data
	s_name=$1 s_server=$2
	shift 2
	if ns timeout 60 swaks --server "$s_server" --from sender@example.org \
		--to user@example.test --helo client.example.org \
		--header "Subject: $s_name" "$@" >"$T/swaks.out" 2>&1 &&
		grep -Eq '^<[-~]  250 ' "$T/swaks.out"; then
		tw_ok "$s_name: 250"
	else
		tw_fail "$s_name" "swaks: $(grep -E '^<[-~]\*' "$T/swaks.out" | tail -n 1)"
		tail -n 15 "$T/swaks.out" | sed 's/^/    | /'
	fi
}

send "host -> 127.0.0.1:25 (STARTTLS)" 127.0.0.1:25 -tls
tw_check "delivered to the Stalwart stand-in's mailbox" tw_wait_maildir "$MBOX" 1 30

# The gate's peer for a connection from the host is the host side of the
# compose bridge (published ports are NATed from 127.0.0.1); the stand-in must
# log that address, taken from the PROXY v2 header, not the gate's own one.
gate_ip=$(ns podman inspect "$GATE" --format \
	'{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}')
net_gw=$(ns podman network inspect "${P}_default" --format \
	'{{range .Subnets}}{{.Gateway}}{{end}}')
echo "# gate container $gate_ip, bridge (host side) $net_gw"
if grep -q "client=unknown\[$net_gw\]" "$T/stalwart/maillog" &&
	! grep -q "client=unknown\[$gate_ip\]" "$T/stalwart/maillog"; then
	tw_ok "stand-in logs the client's address $net_gw (not the gate's $gate_ip)"
else
	tw_fail "client address in the stand-in's log" "want $net_gw, not $gate_ip"
	grep 'client=' "$T/stalwart/maillog" | tail -n 5 | sed 's/^/    | /'
fi

# A client with an address of its own, on the compose network (no NAT): the
# stand-in must log exactly that address.
client_ip=${net_gw%.*}.200
if ns podman run --rm --network "${P}_default" --ip "$client_ip" \
	localhost/tailwart-test-peer:latest timeout 60 swaks --server gate:25 \
	--from sender@example.org --to user@example.test --helo client.example.org \
	--header "Subject: from $client_ip" >"$T/swaks-client.out" 2>&1 &&
	grep -q '^<-  250 ' "$T/swaks-client.out"; then
	tw_ok "client container $client_ip -> gate:25: 250"
else
	tw_fail "client container -> gate:25" "$(grep -E '^<[-~]\*' "$T/swaks-client.out" | tail -n 1)"
	tail -n 15 "$T/swaks-client.out" | sed 's/^/    | /'
fi
tw_check "delivered" tw_wait_maildir "$MBOX" 2 30
tw_check "stand-in logs client=unknown[$client_ip]" \
	tw_wait_file_grep "$T/stalwart/maillog" "client=unknown\[$client_ip\]" 10

# Pass-through: the published port 587 is spliced to the stand-in after a
# PROXY v2 header written by the gate's pass-through process.
send "host -> 127.0.0.1:587 (pass-through)" 127.0.0.1:587
tw_check "delivered through the pass-through listener" tw_wait_maildir "$MBOX" 3 30
tw_check "pass-through logs the client's address too" sh -c \
	"[ \$(grep -c 'client=unknown\[$net_gw\]' '$T/stalwart/maillog') -ge 2 ]"

# ---- mail through the relay --------------------------------------------------
send "host -> relay 127.0.0.1:10026" 127.0.0.1:10026
tw_check "relay delivered to the smarthost's mailbox" \
	tw_wait_maildir "$T/smarthost/mail/user" 1 60
tw_check "smarthost saw STARTTLS and AUTH" sh -c \
	"grep -q 'TLS connection established' '$T/smarthost/maillog' &&
	 grep -q 'sasl_username=relay@example.test' '$T/smarthost/maillog'"

# ---- processes ----------------------------------------------------------------
# The gate's master is root (it bound :25), every child runs as tailwart.
uids() { # uids CONTAINER PROGRAM: "uid" of each process, one a line
	ns podman exec "$1" sh -c 'for p in /proc/[0-9]*; do
		[ "$(cat $p/comm 2>/dev/null)" = "'"$2"'" ] &&
		awk "/^Uid:/ { print \$2 }" $p/status; done; true'
}
gu=$(uids "$GATE" tailwart-gate | sort | uniq -c | awk '{ printf "%s%s x uid %s", s, $1, $2; s = ", " }')
if [ "$(uids "$GATE" tailwart-gate | grep -cx 0)" = 1 ] &&
	[ "$(uids "$GATE" tailwart-gate | grep -cx 999)" -ge 2 ] &&
	[ "$(uids "$GATE" tailwart-gate | grep -cvx -e 0 -e 999)" = 0 ]; then
	tw_ok "gate: one root master, its children as tailwart ($gu)"
else
	tw_fail "gate process owners" "$gu"
fi
if ns podman exec "$RELAY" tailwart queue list >"$T/queue.out" 2>&1 &&
	tail -n 1 "$T/queue.out" | grep -q '^0 messages'; then
	tw_ok "relay: tailwart queue list in the container: 0 messages"
else
	tw_fail "relay queue list" "$(tail -n 3 "$T/queue.out" | tr '\n' ' ')"
fi

# ---- the image's tools ----------------------------------------------------------
tw_check "tailwart check gate (in the gate's container)" ns podman exec "$GATE" tailwart check gate
tw_check "tailwart check relay (in the relay's container)" ns podman exec "$RELAY" tailwart check relay
if ns podman exec -e GATE_LISTEN=127.0.0.1:1 "$GATE" tailwart health gate >"$T/health.out" 2>&1; then
	tw_fail "health probe of a closed port fails" "it passed: $(cat "$T/health.out")"
else
	tw_ok "health probe of a closed port fails"
fi
for c in "$GATE" "$RELAY" "${P}_stalwart_1" "${P}_smarthost_1"; do
	ns podman logs "$c" >"$T/$c.log" 2>&1
done

# ---- stop -----------------------------------------------------------------------
t0=$(date +%s)
tw_check "compose down" compose down -v
echo "# compose down took $(($(date +%s) - t0)) s"
finish

#!/bin/sh
# 58-gate-helo: the client's HELO name and a backend that checks it
# (issue 10 §1; Stalwart's port 25 answers "550 5.5.0 Invalid EHLO domain."
# to a single-label name or an address literal).
#  - a Postfix backend that refuses non-FQDN HELO at EHLO (backend.sh
#    strict-helo): its 5xx reaches the client as the reply to MAIL, with the
#    backend's code and text, logged; an FQDN is delivered;
#  - the same refusal as a 4xx, or an unreachable backend: 451 4.4.1;
#  - helo_check = fqdn: the gate itself refuses single-label, malformed and
#    address-literal names with 550 5.5.2 at MAIL.
# Ports: gate 25059, Postfix 26061 (strict), 26062 (strict, 450), 26063
#        (normal), 26064 (nothing listens).
. "$(dirname "$0")/../lib.sh"
T=$(tw_tmpdir)
tw_need_gate
GP=25059
SW="--server 127.0.0.1:$GP --local-interface 127.0.0.9 --from a@example.org --to user@example.test"

# gate NAME key=value...: (re)start the gate
gate() { tw__n=$1; shift; tw_gate_restart "$tw__n" listen=127.0.0.1:$GP "$@"; }

tw_backend_start strict 26061 proxy strict-helo
gate strict backend=127.0.0.1:26061
# shellcheck disable=SC2086
tw_swaks_expect "strict backend, EHLO singlelabel: the backend's 5xx at MAIL" \
	"504 5\.5\.2 .*need fully-qualified hostname" $SW --helo singlelabel
tw_check "the refusal is logged with the backend's reply" \
	grep -q 'refused stage=mail reason=backend-helo helo="singlelabel".*reply="504 5.5.2' "$T/gate.log"
# shellcheck disable=SC2086
tw_swaks_expect "strict backend, EHLO client.example.org: delivered" "250 2\.0\.0" \
	$SW --helo client.example.org
tw_check "delivered to the maildir" tw_wait_maildir "$T/strict/mail/user" 1 15

BACKEND_MAIN_CF="non_fqdn_reject_code = 450" tw_backend_start soft 26062 proxy strict-helo
gate soft backend=127.0.0.1:26062
# shellcheck disable=SC2086
tw_swaks_expect "backend refuses the HELO name with a 4xx: 451 4.4.1" "451 4\.4\.1" \
	$SW --helo singlelabel
gate down backend=127.0.0.1:26064
# shellcheck disable=SC2086
tw_swaks_expect "unreachable backend: 451 4.4.1" "451 4\.4\.1" $SW --helo singlelabel

tw_backend_start normal 26063 proxy
gate fqdn backend=127.0.0.1:26063 helo_check=fqdn
for h in singlelabel '[192.0.2.1]' '[IPv6:2001:db8::1]' 'bad..example.org' 'bad_name.example.org'; do
	# shellcheck disable=SC2086
	tw_swaks_expect "helo_check=fqdn: EHLO $h refused at MAIL" "550 5\.5\.2" $SW --helo "$h"
done
tw_check "the gate's refusal is logged" grep -q 'reject stage=mail reason=helo-not-fqdn' "$T/gate.log"
# shellcheck disable=SC2086
tw_swaks_expect "helo_check=fqdn: EHLO client.example.org delivered" "250 2\.0\.0" \
	$SW --helo client.example.org
tw_wait_maildir "$T/normal/mail/user" 1 15 >/dev/null
n=$(tw_maildir_count "$T/normal/mail/user")
[ "$n" -eq 1 ] && tw_ok "helo_check=fqdn: only the FQDN client's message reached the backend" ||
	tw_fail "helo_check=fqdn: only the FQDN client's message reached the backend" "$n messages"
tw_summary

#!/bin/sh
# certs.sh - a self-signed certificate for STARTTLS tests.
#
#   sh tests/peers/certs.sh DIR
#
# Writes DIR/cert.pem and DIR/key.pem (EC P-256, CN=mx.example.test, SAN
# mx.example.test, localhost, 127.0.0.1), valid 30 days.  Reuses an existing
# pair that is still valid for a day.
set -eu
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
d=$1
mkdir -p "$d"
if [ -s "$d/cert.pem" ] && [ -s "$d/key.pem" ] &&
	openssl x509 -checkend 86400 -noout -in "$d/cert.pem" >/dev/null 2>&1; then
	exit 0
fi
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	-keyout "$d/key.pem" -out "$d/cert.pem" -days 30 \
	-subj "/CN=mx.example.test" \
	-addext "subjectAltName=DNS:mx.example.test,DNS:localhost,IP:127.0.0.1" \
	>/dev/null 2>&1
chmod 0644 "$d/cert.pem"
# The gate may read the key after dropping privileges: keep it 0640 root.
chmod 0640 "$d/key.pem"

#!/usr/bin/env python3
"""proxyv2check.py - check a PROXY v2 header logged by fakebackend.py.

    python3 tests/peers/proxyv2check.py LOGFILE [checks...]

Takes the last "proxy v2 <hex>" line of LOGFILE and applies each check:
    cmd=proxy          command PROXY (not LOCAL)
    fam=tcp4|tcp6      address family and transport
    src=IP  sport=any|N  dst=IP  dport=N
    ssl=client         an SSL TLV (0x20) with the client bit set
    ssl=none           no SSL TLV, or one with the client bit clear
    sslver=TEXT        PP2_SUBTYPE_SSL_VERSION (0x21) equals TEXT
    cipher=any         PP2_SUBTYPE_SSL_CIPHER (0x23) present
    uniqueid=any       a UNIQUE_ID TLV (0x05), 1..128 bytes
Prints the decoded header; exit 0 if all checks hold, 1 otherwise.
"""
import ipaddress
import struct
import sys


def tlvs(b):
    out = []
    i = 0
    while i + 3 <= len(b):
        t, n = b[i], struct.unpack("!H", b[i + 1:i + 3])[0]
        out.append((t, b[i + 3:i + 3 + n]))
        i += 3 + n
    return out


def main():
    lines = [l for l in open(sys.argv[1]) if l.startswith("proxy v2 ")]
    if not lines:
        print("no PROXY v2 header logged")
        return 1
    h = bytes.fromhex(lines[-1].split()[2])
    sig, vc, fam, ln = h[:12], h[12], h[13], struct.unpack("!H", h[14:16])[0]
    body = h[16:16 + ln]
    d = {"cmd": "proxy" if vc == 0x21 else "local" if vc == 0x20 else hex(vc)}
    rest = b""
    if fam == 0x11:
        d["fam"] = "tcp4"
        d["src"] = str(ipaddress.IPv4Address(body[0:4]))
        d["dst"] = str(ipaddress.IPv4Address(body[4:8]))
        d["sport"], d["dport"] = struct.unpack("!HH", body[8:12])
        rest = body[12:]
    elif fam == 0x21:
        d["fam"] = "tcp6"
        d["src"] = str(ipaddress.IPv6Address(body[0:16]))
        d["dst"] = str(ipaddress.IPv6Address(body[16:32]))
        d["sport"], d["dport"] = struct.unpack("!HH", body[32:36])
        rest = body[36:]
    else:
        d["fam"] = hex(fam)
    t = dict(tlvs(rest))
    ssl = t.get(0x20)
    sub = {}
    if ssl is not None and len(ssl) >= 5:
        d["ssl_client"] = ssl[0]
        sub = dict(tlvs(ssl[5:]))
    d["tlvs"] = sorted(hex(k) for k in t)
    d["sslver"] = sub.get(0x21, b"").decode("ascii", "replace")
    d["cipher"] = sub.get(0x23, b"").decode("ascii", "replace")
    d["uniqueid"] = t.get(0x05, b"").hex()
    print("signature ok" if sig == b"\r\n\r\n\x00\r\nQUIT\n" else "BAD SIGNATURE")
    print(d)
    ok = sig == b"\r\n\r\n\x00\r\nQUIT\n"
    for c in sys.argv[2:]:
        k, v = c.split("=", 1)
        if k in ("cmd", "fam", "src", "dst"):
            good = d.get(k) == v
        elif k in ("sport", "dport"):
            good = v == "any" or d.get(k) == int(v)
        elif k == "ssl":
            good = (d.get("ssl_client", 0) & 1) if v == "client" else not (d.get("ssl_client", 0) & 1)
        elif k == "sslver":
            good = d["sslver"] == v
        elif k == "cipher":
            good = bool(d["cipher"])
        elif k == "uniqueid":
            good = 0x05 in t and 1 <= len(t[0x05]) <= 128
        else:
            print("unknown check " + c)
            good = False
        if not good:
            print("check failed: " + c)
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""baddns.py - a hostile DNS server on loopback for the policy bad-input tests.

    tests/peers/baddns.py PORT [LIFETIME_SECONDS]     (127.0.0.1, UDP and TCP)

The behaviour is chosen by a label of the query name (anywhere in it):
  trunc      the reply is cut in the middle of the question
  lie        ancount says 5, one answer follows
  wrongtype  an answer of another type (A asked -> MX given, else A)
  ptrloop    the answer's owner name is a compression pointer to itself
  rdover     an A record whose rdlength runs past the end
  bigtxt     TXT of 30 strings x 255 bytes (UDP: TC bit, full answer on TCP)
  cname      a CNAME loop a -> b -> a, no final answer
  servfail   rcode SERVFAIL       refused   rcode REFUSED
  badid      the reply carries another transaction id (ignored -> timeout)
  garbage    7 random bytes       silent    no reply at all
  spfa-X     TXT "v=spf1 a:X.bad ip4:192.0.2.0/24 -all" (X = a behaviour)
  good       A 127.0.0.2 and TXT "v=spf1 ip4:192.0.2.0/24 -all"
anything else: NXDOMAIN. Exits after LIFETIME seconds (default 120).
"""
import os
import socket
import struct
import sys
import threading
import time


def parse_question(q):
    off, labels = 12, []
    while off < len(q):
        n = q[off]
        if n == 0 or n & 0xC0:
            break
        labels.append(q[off + 1:off + 1 + n].decode("ascii", "replace").lower())
        off += 1 + n
    off += 1
    qtype = struct.unpack("!H", q[off:off + 2])[0] if off + 2 <= len(q) else 1
    return labels, q[12:off + 4], qtype


def rr(name, rtype, rdata, ttl=60):
    return name + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


def txt(*strings):
    out = b""
    for s in strings:
        b = s.encode()
        out += bytes([len(b)]) + b
    return out


def encode_name(labels):
    return b"".join(bytes([len(l)]) + l.encode() for l in labels) + b"\0"


def answer(q, tcp):
    if len(q) < 12:
        return None
    qid = q[:2]
    labels, question, qtype = parse_question(q)
    ptr = b"\xc0\x0c"
    beh = next((l for l in labels if l in BEHAVIOURS or l.startswith("spfa-")), None)

    def msg(rcode=0, answers=(), ancount=None, flags=0x8180):
        an = len(answers) if ancount is None else ancount
        return (qid + struct.pack("!HHHHH", flags | rcode, 1, an, 0, 0)
                + question + b"".join(answers))

    if beh is None:
        return msg(rcode=3)
    if beh == "good":
        if qtype == 16:
            return msg(answers=[rr(ptr, 16, txt("v=spf1 ip4:192.0.2.0/24 -all"))])
        return msg(answers=[rr(ptr, 1, bytes([127, 0, 0, 2]))])
    if beh.startswith("spfa-"):
        if qtype == 16:
            return msg(answers=[rr(ptr, 16, txt("v=spf1 a:%s.bad ip4:192.0.2.0/24 -all" % beh[5:]))])
        return msg(rcode=0)
    if beh == "trunc":
        full = msg(answers=[rr(ptr, 1, bytes([127, 0, 0, 2]))])
        return full[:12 + len(question) // 2]
    if beh == "lie":
        return msg(answers=[rr(ptr, 1, bytes([127, 0, 0, 2]))], ancount=5)
    if beh == "wrongtype":
        if qtype == 1:
            return msg(answers=[rr(ptr, 15, b"\x00\x0a" + encode_name(["mx", "bad"]))])
        return msg(answers=[rr(ptr, 1, bytes([127, 0, 0, 2]))])
    if beh == "ptrloop":
        base = msg()
        here = len(base)
        own = struct.pack("!H", 0xC000 | here)
        return msg(answers=[rr(own, qtype if qtype in (1, 16) else 1,
                               bytes([127, 0, 0, 2]) if qtype != 16 else txt("v=spf1 -all"))])
    if beh == "rdover":
        return msg(answers=[ptr + struct.pack("!HHIH", 1, 1, 60, 400) + bytes([127, 0, 0, 2])])
    if beh == "bigtxt":
        strings = ["v=spf1 " + "x" * 248] + ["y" * 255] * 29
        full = msg(answers=[rr(ptr, 16, txt(*strings))])
        if not tcp and len(full) > 512:
            return msg(flags=0x8380)  # TC bit, no answers
        return full
    if beh == "cname":
        a = encode_name(["a"] + labels[labels.index("cname"):])
        b = encode_name(["b"] + labels[labels.index("cname"):])
        return msg(answers=[rr(ptr, 5, a), rr(a, 5, b), rr(b, 5, a)])
    if beh == "servfail":
        return msg(rcode=2)
    if beh == "refused":
        return msg(rcode=5)
    if beh == "badid":
        m = msg(answers=[rr(ptr, 1, bytes([127, 0, 0, 2]))])
        return bytes([m[0] ^ 0xFF, m[1]]) + m[2:]
    if beh == "garbage":
        return os.urandom(7)
    if beh == "silent":
        return None
    return msg(rcode=3)


BEHAVIOURS = {"trunc", "lie", "wrongtype", "ptrloop", "rdover", "bigtxt", "cname",
              "servfail", "refused", "badid", "garbage", "silent", "good"}


def udp_loop(sock):
    while True:
        try:
            q, peer = sock.recvfrom(4096)
        except OSError:
            return
        try:
            a = answer(q, False)
        except Exception:  # a bad query must not stop the server
            a = None
        if a is not None:
            sock.sendto(a, peer)


def tcp_client(c):
    c.settimeout(5)
    try:
        while True:
            hdr = c.recv(2)
            if len(hdr) < 2:
                return
            n = struct.unpack("!H", hdr)[0]
            q = b""
            while len(q) < n:
                chunk = c.recv(n - len(q))
                if not chunk:
                    return
                q += chunk
            a = answer(q, True)
            if a is None:
                return
            c.sendall(struct.pack("!H", len(a)) + a)
    except OSError:
        pass
    finally:
        c.close()


def tcp_loop(sock):
    while True:
        try:
            c, _ = sock.accept()
        except OSError:
            return
        threading.Thread(target=tcp_client, args=(c,), daemon=True).start()


def main():
    port = int(sys.argv[1])
    life = float(sys.argv[2]) if len(sys.argv) > 2 else 120.0
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", port))
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind(("127.0.0.1", port))
    t.listen(16)
    threading.Thread(target=udp_loop, args=(u,), daemon=True).start()
    threading.Thread(target=tcp_loop, args=(t,), daemon=True).start()
    time.sleep(life)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""stalwart_milter.py - a milter client that stands in for Stalwart's.

It behaves as the milter client of Stalwart v0.16.19 does (written from a
reading of stalwartlabs/stalwart crates/smtp/src/inbound/milter/{client,
message,protocol,macros}.rs and inbound/rcpt.rs; no code copied), so tests
can run tailwart-milter behind "Stalwart" without a Stalwart install:

  - OPTNEG: version 6, actions 0xFF, protocol flags offered 0x42
    (NOHELO|NOEOH); afterwards it honours the NO* / NR_* flags the milter
    returned (and, like Stalwart, sends EOH whenever headers are sent).
  - For every enabled stage a NEW TCP connection that replays the session
    so far: OPTNEG; `D C` + CONNECT (hostname = PTR if known, else the HELO
    name; {daemon_name} "Stalwart v0.16.19", j, {client_addr},
    {client_port}, {client_ptr}); `D H` + HELO (empty at the connect stage;
    {cipher}, {tls_version}); `D M` + MAIL <lowercased> with no ESMTP
    arguments ({mail_addr}, {auth_authen} if authenticated); `D R` + RCPT
    for every recipient accepted so far ({rcpt_addr}); at the data stage
    DATA, one HEADER per field (name and value trimmed), EOH, BODY chunks
    of 65535 bytes carrying the whole raw message (headers included), EOB;
    then QUIT. Never ABORT, QUIT_NC or UNKNOWN.
  - A reply other than continue/accept ends the stage: at RCPT the
    recipient is dropped, elsewhere the command (or the message) is refused.
  - Modifications count only at the data stage and are applied as Stalwart
    applies them: ADDHEADER and INSHEADER 0 at the top, CHGHEADER counts
    headers of that name (empty value = delete), header values stored
    verbatim (a "\\n\\t" fold stays a bare LF), QUARANTINE adds X-Quarantine.

usage: stalwart_milter.py --milter HOST:PORT --client IP[:PORT]
         [--helo NAME] [--ptr NAME] [--hostname mx.test] [--auth USER]
         [--stages connect,ehlo,mail,rcpt,data] --from ADDR --rcpt ADDR...
         [--msg FILE] [--out FILE] [--daemon-name NAME]
Prints one line per stage connection ("stage=rcpt conn=3 reply=...") and
a last line "result=accepted rcpts=N" or "result=refused stage=S reply=...".
The message written to --out is what Stalwart would store (CRLF lines).
"""
import argparse
import socket
import struct
import sys

DAEMON_NAME = "Stalwart v0.16.19"
CHUNK = 65535
(NOCONNECT, NOHELO, NOMAIL, NORCPT, NOBODY, NOHDRS, NOEOH, NR_HDR) = (
    0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80)
NODATA, NR_CONN, NR_HELO, NR_MAIL, NR_RCPT, NR_DATA, NR_EOH, NR_BODY = (
    0x200, 0x1000, 0x2000, 0x4000, 0x8000, 0x10000, 0x40000, 0x80000)


class Refused(Exception):
    def __init__(self, reply):
        Exception.__init__(self, reply)
        self.reply = reply


class Conn:
    """One milter connection (one stage)."""

    def __init__(self, addr, timeout):
        host, port = addr.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), timeout=timeout)
        self.buf = b""
        self.opts = 0

    def send(self, cmd, data=b""):
        self.s.sendall(struct.pack(">I", len(data) + 1) + cmd + data)

    def recv(self):
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                if n == 0 or n > 1 << 24:
                    raise IOError("bad frame length %d" % n)
                if len(self.buf) >= 4 + n:
                    f = self.buf[4:4 + n]
                    self.buf = self.buf[4 + n:]
                    return f[:1], f[1:]
            d = self.s.recv(65536)
            if not d:
                raise IOError("milter closed the connection")
            self.buf += d

    def has(self, flag):
        return self.opts & flag == flag

    def action(self, frame=None):
        """Read one reply (or take frame); an action other than
        continue/accept refuses."""
        cmd, data = frame or self.recv()
        if cmd in (b"c", b"a"):
            return
        if cmd == b"y":
            raise Refused(data.rstrip(b"\0").decode("latin-1"))
        if cmd == b"r":
            raise Refused("550 5.7.1 Rejected")
        if cmd == b"t":
            raise Refused("451 4.3.5 Unable to accept message at this time")
        if cmd == b"d":
            raise Refused("discard")
        raise IOError("unexpected reply %r" % cmd)

    def macros(self, code, pairs):
        self.send(b"D", code + b"".join(k.encode() + b"\0" + v.encode() + b"\0"
                                        for k, v in pairs))

    def step(self, skip_flag, nr_flag, code, pairs, cmd, data):
        if self.has(skip_flag):
            return
        self.macros(code, pairs)
        self.send(cmd, data)
        if not self.has(nr_flag):
            self.action()

    def close(self):
        try:
            self.send(b"Q")
        except OSError:
            pass
        self.s.close()


def parse_headers(raw):
    """Raw header fields [(name, raw value incl. leading blank and CRLF)],
    the header block and the body (after the blank line)."""
    end = raw.find(b"\r\n\r\n")
    if raw.startswith(b"\r\n"):
        hblock, body = b"", raw[2:]
    elif end < 0:
        hblock, body = raw, b""
    else:
        hblock, body = raw[:end + 2], raw[end + 4:]
    fields = []
    for line in hblock.split(b"\r\n")[:-1] if hblock else []:
        line += b"\r\n"
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1][1] += line
        elif b":" in line:
            n, v = line.split(b":", 1)
            fields.append([n, v])
    return fields, hblock + b"\r\n" if hblock else b"\r\n", body


def apply_mods(mods, raw):
    """Apply data-stage modifications the way Stalwart does."""
    fields, hraw, body = parse_headers(raw)
    changes, newbody, rewrite = [], b"", False
    for cmd, data in mods:
        if cmd == b"h":
            n, v = data.split(b"\0")[:2]
            changes.append((0, n, v, False))
        elif cmd in (b"i", b"m"):
            idx = struct.unpack(">I", data[:4])[0]
            n, v = data[4:].split(b"\0")[:2]
            if cmd == b"i":
                changes.append((idx, n, v, False))
                rewrite = True
            elif v == b"" or any(f[0].lower() == n.lower() for f in fields):
                changes.append((idx, n, v, True))
                rewrite = True
            else:
                changes.append((0, n, v, False))
        elif cmd == b"q":
            changes.append((0, b"X-Quarantine", data.rstrip(b"\0"), False))
        elif cmd == b"b":
            newbody += data
    if not changes:
        return (hraw[:-2] + b"\r\n" + newbody) if newbody else raw
    body = newbody or body
    if rewrite:
        hs = [[n, v] for n, v in fields]
        for idx, n, v, change in changes:
            if change:
                cnt = 0
                for pos, h in enumerate(hs):
                    if h[0].lower() == n.lower():
                        cnt += 1
                        if cnt == idx:
                            if v:
                                h[1] = v
                            else:
                                del hs[pos]
                            break
            else:
                pos = 0
                if idx > 0:
                    cnt = 0
                    for p, h in enumerate(hs):
                        if h[0].lower() == n.lower():
                            pos = p
                            cnt += 1
                            if cnt == idx:
                                break
                hs.insert(pos, [n, v])
        out = b""
        for n, v in hs:
            out += n + (b":" if v[:1].isspace() else b": ") + v
            if not v.endswith(b"\n"):
                out += b"\r\n"
        return out + b"\r\n" + body
    out = b""
    for _, n, v, _ in changes:
        out += n + b": " + v + (b"" if v.endswith(b"\n") else b"\r\n")
    return out + hraw[:-2] + b"\r\n" + body


def run_stage(a, stage, sess, rcpts, msg):
    """One stage: a new connection replaying the session; returns the
    modifications (data stage) or raises Refused."""
    c = Conn(a.milter, a.timeout)
    try:
        c.send(b"O", struct.pack(">III", 6, 0xFF, 0x42))
        cmd, data = c.recv()
        if cmd != b"O" or len(data) < 12:
            raise IOError("bad OPTNEG reply %r" % cmd)
        c.opts = struct.unpack(">III", data[:12])[2]
        ip, port = sess["ip"], sess["port"]
        fam = b"6" if ":" in ip else b"4"
        host = a.ptr or sess["helo"]
        c.step(NOCONNECT, NR_CONN, b"C",
               [("{daemon_name}", a.daemon_name), ("j", a.hostname),
                ("{client_addr}", ip), ("{client_port}", str(port)),
                ("{client_ptr}", a.ptr or "unknown")],
               b"C", host.encode() + b"\0" + fam + struct.pack(">H", port) +
               ip.encode() + b"\0")
        c.step(NOHELO, NR_HELO, b"H", [("{cipher}", ""), ("{tls_version}", "")],
               b"H", sess["helo"].encode() + b"\0")
        if sess["from"] is not None:
            frm = sess["from"].lower()
            mac = [("{mail_addr}", frm)]
            if a.auth:
                mac.append(("{auth_authen}", a.auth))
            c.step(NOMAIL, NR_MAIL, b"M", mac, b"M", b"<" + frm.encode() + b">\0")
            for r in rcpts:
                r = r.lower()
                c.step(NORCPT, NR_RCPT, b"R", [("{rcpt_addr}", r)], b"R",
                       b"<" + r.encode() + b">\0")
        if stage != "data":
            return []
        if not c.has(NODATA):
            c.send(b"T")
            if not c.has(NR_DATA):
                c.action()
        if not c.has(NOHDRS):
            for n, v in parse_headers(msg)[0]:
                c.send(b"L", n.strip() + b"\0" + v.strip() + b"\0")
                if not c.has(NR_HDR):
                    c.action()
            c.send(b"N")
            if not c.has(NR_EOH):
                c.action()
        mods = []
        if not c.has(NOBODY):
            for i in range(0, len(msg), CHUNK):
                c.send(b"B", msg[i:i + CHUNK])
                if not c.has(NR_BODY):
                    cmd, data = c.recv()
                    if cmd == b"s":
                        break
                    if cmd not in (b"c", b"a", b"p"):
                        c.action((cmd, data))
            c.send(b"E")
            while True:
                cmd, data = c.recv()
                if cmd == b"p":
                    continue
                if cmd in b"himqb+-2e" and len(cmd) == 1:
                    mods.append((cmd, data))
                    continue
                c.action((cmd, data))
                break
        return mods
    finally:
        c.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--milter", required=True)
    p.add_argument("--client", required=True, help="IP or IP:PORT ([v6]:PORT)")
    p.add_argument("--helo", default="client.example")
    p.add_argument("--ptr")
    p.add_argument("--hostname", default="mx.example.test")
    p.add_argument("--auth")
    p.add_argument("--stages", default="data")
    p.add_argument("--from", dest="frm", required=True)
    p.add_argument("--rcpt", action="append", default=[])
    p.add_argument("--msg")
    p.add_argument("--out")
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--daemon-name", default=DAEMON_NAME,
                   help="{daemon_name} sent (tests of the non-Stalwart path)")
    a = p.parse_args()
    stages = [s.strip() for s in a.stages.split(",") if s.strip()]
    ip, port = a.client, 40000
    if a.client.startswith("["):
        ip, _, rest = a.client[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else port
    elif a.client.count(":") == 1:
        ip, port = a.client.split(":")
        port = int(port)
    sess = {"ip": ip, "port": port, "helo": "", "from": None}
    conns = 0

    def stage(name, rcpts, msg=None):
        nonlocal conns
        if name not in stages:
            return []
        conns += 1
        try:
            mods = run_stage(a, name, sess, rcpts, msg)
            print("stage=%s conn=%d reply=continue" % (name, conns))
            return mods
        except Refused as e:
            print("stage=%s conn=%d reply=%s" % (name, conns, e.reply))
            e.stage = name
            raise

    try:
        stage("connect", [])
        sess["helo"] = a.helo
        stage("ehlo", [])
        sess["from"] = a.frm
        stage("mail", [])
        rcpts = []
        for r in a.rcpt:
            try:
                stage("rcpt", rcpts + [r])
                rcpts.append(r)
            except Refused:
                pass
        if not rcpts:
            print("result=refused stage=rcpt reply=no recipients")
            return 0
        raw = open(a.msg, "rb").read() if a.msg else (
            b"From: <%s>\nTo: <%s>\nSubject: test\n\nhello\n" %
            (a.frm.encode(), rcpts[0].encode()))
        raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        mods = stage("data", rcpts, raw)
        if a.out:
            with open(a.out, "wb") as f:
                f.write(apply_mods(mods, raw))
        print("result=accepted rcpts=%d" % len(rcpts))
    except Refused as e:
        print("result=refused stage=%s reply=%s" % (e.stage, e.reply))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""fakebackend.py - a misbehaving SMTP backend for failure tests.

    python3 tests/peers/fakebackend.py [options] PORT

Listens on 127.0.0.1:PORT. Accepts an optional PROXY v1/v2 header, sends a
banner, answers EHLO/HELO/MAIL/RCPT/RSET/NOOP/QUIT normally, and fails at the
chosen point:

    --die-at banner   close right after accepting (no banner)
    --die-at mail     close on MAIL FROM
    --die-at rcpt     close on RCPT TO
    --die-at data     answer 354 to DATA, read a little content, close (default)
    --die-at dot      read the whole message, then close without a reply
    --die-at none     behave (answer 250 at end of data, but keep nothing)
    --reply-at-dot TEXT   with "none": the reply to the end of data
                          (e.g. "452 4.3.1 queue full")
    --banner TEXT     the greeting (default "220 fake.example.test ESMTP
                      fake"); a non-220 one is followed by a close
    --chunking        advertise CHUNKING (with die-at data: close mid-BDAT)
    --ext LIST        the EHLO keywords to advertise, comma separated
                      (default "PIPELINING,8BITMIME,ENHANCEDSTATUSCODES,
                      SIZE 104857600,SMTPUTF8"); with "XCLIENT ..." in
                      it, XCLIENT is answered with a new 220 banner
    --log FILE        one line per event ("conn", "proxy ...", "cmd ...",
                      "accepted", "closed-at ...", and "ahead N after
                      MAIL|RCPT" when N more lines came with that command)
    --max-conns N     exit after N connections (default 100)
    --lifetime S      exit after S seconds (default 120)

It never stores a message; "accepted" is logged only in mode none, so a test
can assert that nothing was accepted.
"""
import argparse
import signal
import socket
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--die-at", default="data",
                    choices=["banner", "mail", "rcpt", "data", "dot", "none"])
    ap.add_argument("--reply-at-dot", default="250 2.0.0 Ok: queued as FAKE")
    ap.add_argument("--banner", default="220 fake.example.test ESMTP fake")
    ap.add_argument("--chunking", action="store_true")
    ap.add_argument("--ext", default="PIPELINING,8BITMIME,ENHANCEDSTATUSCODES,SIZE 104857600,SMTPUTF8")
    ap.add_argument("--log", default=None)
    ap.add_argument("--max-conns", type=int, default=100)
    ap.add_argument("--lifetime", type=float, default=120)
    a = ap.parse_args()

    logf = open(a.log, "a", buffering=1) if a.log else sys.stdout

    def log(msg):
        logf.write(msg + "\n")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", a.port))
    ls.listen(64)
    end = time.monotonic() + a.lifetime
    conns = 0
    while conns < a.max_conns and time.monotonic() < end:
        ls.settimeout(max(0.1, end - time.monotonic()))
        try:
            s, peer = ls.accept()
        except socket.timeout:
            break
        conns += 1
        log("conn %s:%d" % peer)
        try:
            session(s, a, log)
        except (OSError, ValueError) as e:
            log("error %s" % e)
        finally:
            try:
                s.close()
            except OSError:
                pass
    log("exit")


def session(s, a, log):
    s.settimeout(30)
    buf = bytearray()

    def fill():
        d = s.recv(65536)
        if not d:
            raise ValueError("client closed")
        buf.extend(d)

    def line():
        while b"\n" not in buf:
            fill()
        i = buf.index(b"\n") + 1
        r = bytes(buf[:i])
        del buf[:i]
        return r

    def close(where):
        log("closed-at " + where)
        s.shutdown(socket.SHUT_RDWR)

    if a.die_at == "banner":
        return close("banner")
    # PROXY header, if any: peek at what arrives first (the gate sends it at once).
    s.settimeout(2)
    try:
        fill()
    except socket.timeout:
        pass
    s.settimeout(30)
    sig2 = b"\r\n\r\n\x00\r\nQUIT\n"
    if buf.startswith(sig2):
        while len(buf) < 16:
            fill()
        n = int.from_bytes(buf[14:16], "big")
        while len(buf) < 16 + n:
            fill()
        log("proxy v2 %s" % bytes(buf[:16 + n]).hex())
        del buf[:16 + n]
    elif buf.startswith(b"PROXY "):
        log("proxy v1 %s" % line().decode().strip())
    s.sendall(a.banner.encode() + b"\r\n")
    if not a.banner.startswith("220"):
        return close("banner-" + a.banner[:3])
    while True:
        cmd = line()
        text = cmd.decode("utf-8", "replace").strip()
        log("cmd " + text)
        verb = text.split(" ", 1)[0].upper()
        if verb in ("MAIL", "RCPT") and b"\n" in buf:
            # commands that came with this one (a pipelined group)
            log("ahead %d after %s" % (buf.count(b"\n"), verb))
        if verb in ("EHLO", "HELO"):
            kw = [k.strip() for k in a.ext.split(",") if k.strip()]
            if a.chunking:
                kw.append("CHUNKING")
            lines = ["fake.example.test"] + kw
            ext = "".join("250%s%s\r\n" % ("-" if i < len(lines) - 1 else " ", l)
                          for i, l in enumerate(lines))
            s.sendall(ext.encode() if verb == "EHLO" else b"250 fake.example.test\r\n")
        elif verb == "MAIL":
            if a.die_at == "mail":
                return close("mail")
            s.sendall(b"250 2.1.0 Ok\r\n")
        elif verb == "RCPT":
            if a.die_at == "rcpt":
                return close("rcpt")
            s.sendall(b"250 2.1.5 Ok\r\n")
        elif verb == "DATA":
            s.sendall(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            if a.die_at == "data":
                while len(buf) < 10:
                    fill()
                return close("data")
            while True:
                ln = line()
                if ln == b".\r\n":
                    break
            if a.die_at == "dot":
                return close("dot")
            log("accepted")
            s.sendall(a.reply_at_dot.encode() + b"\r\n")
        elif verb == "BDAT":
            parts = text.split()
            size = int(parts[1])
            if a.die_at == "data":
                return close("data")
            while len(buf) < size:
                fill()
            del buf[:size]
            if len(parts) > 2 and parts[2].upper() == "LAST":
                if a.die_at == "dot":
                    return close("dot")
                log("accepted")
                s.sendall(a.reply_at_dot.encode() + b"\r\n")
            else:
                s.sendall(b"250 2.0.0 chunk ok\r\n")
        elif verb == "XCLIENT" and "XCLIENT" in a.ext:
            s.sendall(b"220 fake.example.test ESMTP fake\r\n")
        elif verb in ("RSET", "NOOP"):
            s.sendall(b"250 2.0.0 Ok\r\n")
        elif verb == "QUIT":
            s.sendall(b"221 2.0.0 Bye\r\n")
            return
        else:
            s.sendall(b"502 5.5.2 Error: command not recognized\r\n")


if __name__ == "__main__":
    main()

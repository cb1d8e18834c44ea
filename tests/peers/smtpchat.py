#!/usr/bin/env python3
"""smtpchat.py - byte-exact SMTP dialogues for tests (OpenSMTPD smtpscript style).

    python3 tests/peers/smtpchat.py [-b BIND_IP] [-t SECS] HOST PORT < script

Script lines (escapes \\r \\n \\t \\0 \\xHH \\\\ are decoded in TEXT):
    > TEXT        send TEXT + CRLF
    >> TEXT       send TEXT as is (no CRLF added): several commands in one write
    >>n N CHAR    send N times CHAR (e.g. ">>n 1200 A" for an overlong line)
    >? TEXT       send TEXT + CRLF; if the server has closed the connection,
                  print "S: EOF" and end the script successfully
    < ERE         read one reply (all its lines); its last line must match ^ERE
    <? ERE        like "<" but a closed connection is accepted too (prints
                  "S: EOF" and ends the script successfully)
    <*            read one reply, whatever it is
    <+ ERE        the reply read last has a line matching ^ERE (reads nothing)
    <- ERE        the reply read last has no line matching ^ERE (reads nothing)
    eof           the server must close the connection (within the timeout)
    alive         a NOOP must still be answered with 250
    sync          send HELP and skip replies until its 214 (at most 5): after
                  input whose number of replies may differ between servers
    starttls      start TLS on the connection (no certificate check)
    proxy2 SRC SPORT DST DPORT   send a PROXY v2 header (TCP4/TCP6)
    sleep SECS
    # comment, blank lines ignored

Prints the transcript ("C:" sent, "S:" received). Exit 0 when every
expectation held, 1 on the first one that did not (the last line says why),
2 on usage errors. Every read has a deadline (-t, default 15 s).
"""
import re
import socket
import ssl
import struct
import sys
import time


def decode(text):
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            n = text[i + 1]
            i += 2
            if n == "r":
                out += b"\r"
            elif n == "n":
                out += b"\n"
            elif n == "t":
                out += b"\t"
            elif n == "0":
                out += b"\0"
            elif n == "\\":
                out += b"\\"
            elif n == "x":
                out.append(int(text[i:i + 2], 16))
                i += 2
            else:
                out += ("\\" + n).encode()
            continue
        out += c.encode("utf-8")
        i += 1
    return bytes(out)


class Conn:
    def __init__(self, host, port, bind, timeout):
        self.timeout = timeout
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.s = socket.socket(fam, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        if bind:
            self.s.bind((bind, 0))
        self.s.connect((host, port))
        self.buf = b""
        self.closed = False

    def send(self, data, label=None):
        if label:
            print("C: " + label)
            self.s.sendall(data)
            return
        show = data.decode("utf-8", "backslashreplace")
        for line in show.split("\r\n"):
            if len(line) > 200:
                line = line[:100] + "...(%d chars)" % len(line)
            if line:
                print("C: " + (line if line.isprintable() else repr(line)[1:-1]))
        self.s.sendall(data)

    def readline(self):
        """One line (up to LF) or None at EOF; raises on timeout."""
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply within %ss" % self.timeout)
            self.s.settimeout(left)
            try:
                d = self.s.recv(65536)
            except (ConnectionResetError, ssl.SSLError, OSError) as e:
                if isinstance(e, socket.timeout):
                    raise TimeoutError("no reply within %ss" % self.timeout)
                d = b""
            if not d:
                self.closed = True
                if self.buf:
                    line, self.buf = self.buf, b""
                    return line
                return None
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"

    def reply(self):
        """A whole reply: list of lines without CRLF, or None at EOF."""
        lines = []
        while True:
            line = self.readline()
            if line is None:
                return lines or None
            text = line.decode("utf-8", "backslashreplace").rstrip("\r\n")
            print("S: " + text)
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                return lines

    def starttls(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if self.buf:
            print("# %d bytes buffered before TLS were dropped" % len(self.buf))
            self.buf = b""
        self.s = ctx.wrap_socket(self.s, server_hostname="mx.example.test")
        print("# TLS " + str(self.s.version()) + " " + str(self.s.cipher()[0]))


def proxy2(src, sport, dst, dport):
    if ":" in src:
        fam, a, b = 0x21, socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
    else:
        fam, a, b = 0x11, socket.inet_aton(src), socket.inet_aton(dst)
    body = a + b + struct.pack("!HH", int(sport), int(dport))
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


def fail(msg):
    print("FAILED: " + msg)
    sys.exit(1)


def main():
    args = sys.argv[1:]
    bind = None
    timeout = 15.0
    while args and args[0].startswith("-"):
        if args[0] == "-b":
            bind = args[1]
            args = args[2:]
        elif args[0] == "-t":
            timeout = float(args[1])
            args = args[2:]
        else:
            print(__doc__, file=sys.stderr)
            sys.exit(2)
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    host, port = args[0].strip("[]"), int(args[1])
    try:
        c = Conn(host, port, bind, timeout)
    except OSError as e:
        fail("connect %s:%d: %s" % (host, port, e))
    n = 0
    last = None
    for raw in sys.stdin.read().splitlines():
        n += 1
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            if line.startswith(">>n "):
                _, count, ch = line.split(" ", 2)
                c.send(decode(ch) * int(count))
            elif line.startswith(">? "):
                try:
                    c.send(decode(raw.split(">? ", 1)[1]) + b"\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    print("S: EOF (send failed)")
                    print("# closed by the server: script ends here")
                    sys.exit(0)
            elif line.startswith(">> "):
                c.send(decode(raw.split(">> ", 1)[1]))
            elif line.startswith("> ") or line == ">":
                c.send(decode(raw.split("> ", 1)[1] if "> " in raw else "") + b"\r\n")
            elif line.startswith("<?"):
                pat = line[2:].strip()
                r = last = c.reply()
                if r is None:
                    print("S: EOF")
                    print("# closed by the server: script ends here")
                    sys.exit(0)
                elif not re.match(pat, r[-1]):
                    fail("line %d: expected /%s/ or EOF, got %r" % (n, pat, r[-1]))
            elif line == "<*":
                last = c.reply()
                if last is None:
                    fail("line %d: connection closed, expected a reply" % n)
            elif line.startswith("<+ ") or line.startswith("<- "):
                pat = line[3:].strip()
                hit = [x for x in (last or []) if re.match(pat, x)]
                if line[1] == "+" and not hit:
                    fail("line %d: no line of the last reply matches /%s/" % (n, pat))
                if line[1] == "-" and hit:
                    fail("line %d: the last reply has %r" % (n, hit[0]))
            elif line.startswith("<"):
                pat = line[1:].strip()
                r = last = c.reply()
                if r is None:
                    fail("line %d: connection closed, expected /%s/" % (n, pat))
                if not re.match(pat, r[-1]):
                    fail("line %d: expected /%s/, got %r" % (n, pat, r[-1]))
            elif line == "eof":
                r = c.reply()
                if r is not None:
                    fail("line %d: expected the connection to close, got %r" % (n, r[-1]))
                print("S: EOF")
            elif line == "alive":
                c.send(b"NOOP\r\n")
                r = c.reply()
                if r is None or not r[-1].startswith("250"):
                    fail("line %d: session not alive after that: %r" % (n, r))
            elif line == "sync":
                c.send(b"HELP\r\n")
                for _ in range(6):
                    r = c.reply()
                    if r is None:
                        fail("line %d: connection closed during sync" % n)
                    if r[-1].startswith("214"):
                        break
                else:
                    fail("line %d: no 214 reply to HELP" % n)
            elif line == "starttls":
                c.starttls()
            elif line.startswith("proxy2 "):
                c.send(proxy2(*line.split()[1:5]), "[PROXY v2 " + " ".join(line.split()[1:5]) + "]")
            elif line.startswith("sleep "):
                time.sleep(float(line.split()[1]))
            else:
                print("bad script line %d: %s" % (n, raw), file=sys.stderr)
                sys.exit(2)
        except TimeoutError as e:
            fail("line %d (%s): %s" % (n, line, e))
        except (BrokenPipeError, ConnectionResetError) as e:
            fail("line %d (%s): %s" % (n, line, e))
        except ssl.SSLError as e:
            fail("line %d (%s): TLS: %s" % (n, line, e))
    print("# all expectations held")
    sys.exit(0)


if __name__ == "__main__":
    main()

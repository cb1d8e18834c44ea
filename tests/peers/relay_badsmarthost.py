#!/usr/bin/env python3
"""relay_badsmarthost.py - a misbehaving plain-SMTP smarthost for
tailwart-relay's failure tests (loopback only).

    python3 tests/peers/relay_badsmarthost.py MODE PORT LOG [LIFETIME]

Modes:
    hang      send the first line of a multi-line EHLO reply, then nothing
    garbage   answer EHLO with a line that is not an SMTP reply
    busy      banner "421 4.3.2 busy", then close
    noreply   take the whole message, then close without a final reply
    split     behave, but send every reply (multi-line ones too) a few
              bytes at a time with pauses; PIPELINING and CHUNKING offered;
              each accepted message is logged as "accepted <bytes>" and its
              content appended to LOG.msgs
    reject    behave, but answer 554 to the end of data
    login     like split, but offers only AUTH LOGIN (no TLS) and requires
              it before MAIL: user relay@example.test, password s3cret#pw
    idleclose behave; 1 s after a message without a next command, send
              "421 4.4.2 idle timeout" and close ("idle-close" in LOG)
    dropmail  behave; close at the second MAIL of a connection, without a
              reply ("drop-at-mail" in LOG)
LOG gets one line per event. Exits after LIFETIME seconds (default 60).
"""
import base64
import socket
import sys
import threading
import time

mode, port, logpath = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lifetime = float(sys.argv[4]) if len(sys.argv) > 4 else 60
lock = threading.Lock()


def log(msg):
    with lock:
        with open(logpath, "a") as f:
            f.write(msg + "\n")


def send(c, data):
    if mode in ("split", "login"):
        for i in range(0, len(data), 3):
            c.sendall(data[i:i + 3])
            time.sleep(0.002)
    else:
        c.sendall(data)


def lines(c, buf):
    while True:
        while b"\n" not in buf[0]:
            d = c.recv(65536)
            if not d:
                raise EOFError
            buf[0] += d
        line, buf[0] = buf[0].split(b"\n", 1)
        yield line + b"\n"


def readn(c, buf, n):
    while len(buf[0]) < n:
        d = c.recv(65536)
        if not d:
            raise EOFError
        buf[0] += d
    out, buf[0] = buf[0][:n], buf[0][n:]
    return out


def session(c):
    buf = [b""]
    authed = [mode != "login"]
    log("conn")
    try:
        if mode == "busy":
            send(c, b"421 4.3.2 busy\r\n")
            return
        send(c, b"220 bad.example.test ESMTP\r\n")
        it = lines(c, buf)
        nmail = 0
        for line in it:
            cmd = line.decode("latin-1").strip()
            verb = cmd.split(" ")[0].upper()
            log("cmd " + cmd)
            if verb in ("EHLO", "HELO"):
                if mode == "hang":
                    send(c, b"250-bad.example.test\r\n")
                    time.sleep(lifetime)
                    return
                if mode == "garbage":
                    send(c, b"hello there, this is not SMTP\r\n")
                    continue
                auth = b"250-AUTH LOGIN\r\n" if mode == "login" else b""
                send(c, b"250-bad.example.test\r\n250-PIPELINING\r\n250-SIZE 10000000\r\n"
                     + auth + b"250-8BITMIME\r\n250-CHUNKING\r\n250 ENHANCEDSTATUSCODES\r\n")
            elif verb == "AUTH" and mode == "login" and cmd.upper() == "AUTH LOGIN":
                send(c, b"334 VXNlcm5hbWU6\r\n")
                u = base64.b64decode(next(it).strip())
                send(c, b"334 UGFzc3dvcmQ6\r\n")
                pw = base64.b64decode(next(it).strip())
                if u == b"relay@example.test" and pw == b"s3cret#pw":
                    authed[0] = True
                    log("auth ok")
                    send(c, b"235 2.7.0 Authentication successful\r\n")
                else:
                    log("auth failed")
                    send(c, b"535 5.7.8 Authentication failed\r\n")
            elif verb == "MAIL" and not authed[0]:
                send(c, b"530 5.7.0 Authentication required\r\n")
            elif verb == "MAIL" and mode == "dropmail" and nmail == 1:
                log("drop-at-mail")
                return
            elif verb in ("MAIL", "RSET", "NOOP"):
                nmail += verb == "MAIL"
                send(c, b"250-2.1.0 first line\r\n250 2.1.0 Ok\r\n")
            elif verb == "RCPT":
                send(c, b"250 2.1.5 Ok\r\n")
            elif verb == "DATA":
                send(c, b"354 go\r\n")
                data = b""
                for l in it:
                    if l == b".\r\n":
                        break
                    data += l
                finish(c, data)
                if idle_close(c, buf):
                    return
            elif verb == "BDAT":
                n = int(cmd.split(" ")[1])
                finish(c, readn(c, buf, n))
                if idle_close(c, buf):
                    return
            elif verb == "QUIT":
                send(c, b"221 2.0.0 Bye\r\n")
                return
            else:
                send(c, b"502 5.5.1 no\r\n")
    except (EOFError, OSError):
        pass
    finally:
        log("closed")
        c.close()


def idle_close(c, buf):
    """idleclose mode: True (and 421 sent) when no command came within 1 s."""
    if mode != "idleclose" or b"\n" in buf[0]:
        return False
    c.settimeout(1.0)
    try:
        d = c.recv(65536)
    except socket.timeout:
        log("idle-close")
        send(c, b"421 4.4.2 idle timeout, closing\r\n")
        return True
    finally:
        c.settimeout(lifetime)
    if not d:
        raise EOFError
    buf[0] += d
    return False


def finish(c, data):
    if mode == "noreply":
        log("closed-at-dot")
        raise EOFError
    if mode == "reject":
        send(c, b"554-5.7.1 rejected\r\n554 5.7.1 by policy\r\n")
        return
    log("accepted %d" % len(data))
    with lock:
        with open(logpath + ".msgs", "ab") as f:
            f.write(data + b"\n=====\n")
    send(c, b"250-2.0.0 multi\r\n250 2.0.0 Ok: queued as SPLIT\r\n")


s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(16)
s.settimeout(0.5)
end = time.time() + lifetime
while time.time() < end:
    try:
        c, _ = s.accept()
    except socket.timeout:
        continue
    c.settimeout(lifetime)
    threading.Thread(target=session, args=(c,), daemon=True).start()
s.close()

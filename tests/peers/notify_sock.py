#!/usr/bin/env python3
"""notify_sock.py - stands in for systemd's notify socket.

    python3 notify_sock.py SOCKET OUT [SECS]

Binds a unix datagram socket at SOCKET (what NOTIFY_SOCKET names) and
appends one line per datagram to OUT: the sender's pid (SCM_CREDENTIALS,
as systemd checks NotifyAccess=main) then the message, its newlines shown
as blanks:  "4242 RELOADING=1 MONOTONIC_USEC=123".  Exits after SECS
seconds (default 60) or on SIGTERM; removes SOCKET.
"""
import os
import signal
import socket
import struct
import sys
import time


def main():
    path, out = sys.argv[1], sys.argv[2]
    secs = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    s.bind(path)
    os.chmod(path, 0o777)
    end = time.monotonic() + secs
    creds = struct.calcsize("3i")
    try:
        with open(out, "a", buffering=1) as f:
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    break
                s.settimeout(left)
                try:
                    data, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(creds))
                except socket.timeout:
                    break
                pid = 0
                for level, kind, value in anc:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                        pid = struct.unpack("3i", value[:creds])[0]
                msg = data.decode("utf-8", "replace").replace("\n", " ")
                f.write("%d %s\n" % (pid, msg))
    finally:
        os.unlink(path)


if __name__ == "__main__":
    main()

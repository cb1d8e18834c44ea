#!/usr/bin/env python3
"""seeds.py - write the seed corpora tests/fuzz/corpus/<target>/ that are
not plain copies of files (milter packet streams, Redis replies, PROXY
headers, spool files built like relay_spool.c writes them). Re-run after a
format change:  python3 tests/fuzz/seeds.py  (it only adds/overwrites the
files it names)."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- milter: everything one milter answers in a session -------------------
def pkt(cmd, data=b""):
    return struct.pack(">I", len(data) + 1) + cmd.encode() + data


def z(*parts):
    return b"".join(p.encode() + b"\0" for p in parts)


def milter_session(proto=0, eom=None, stage_replies=None, nhdr=3):
    """proto 0: every event answered. eom: the end-of-message packets."""
    out = pkt("O", struct.pack(">III", 6, 0x1ff, proto))
    c = pkt("c")
    replies = stage_replies or {}
    for tx in range(2):
        if tx == 0:
            out += replies.get("connect", c) + replies.get("helo", c)
        out += replies.get("mail", c) + c + replies.get("rcpt", c)
        out += replies.get("data", c)
        out += c * nhdr + c          # headers, EOH
        out += replies.get("body", c)
        out += eom if eom is not None else pkt("a")
    return out


EOMS = {
    "accept": pkt("a"),
    "continue": pkt("c"),
    "addhdr": pkt("h", z("X-Spam", " yes")) + pkt("a"),
    "inshdr": pkt("i", struct.pack(">I", 0) + z("X-First", " 1")) + pkt("c"),
    "chghdr": pkt("m", struct.pack(">I", 1) + z("Subject", " new")) + pkt("c"),
    "delhdr": pkt("m", struct.pack(">I", 1) + z("X-Two", "")) + pkt("c"),
    "replbody": pkt("b", b"new body\r\nline two\r\n") + pkt("c"),
    "replbody_lf": pkt("b", b"bare\nlf\rcr") + pkt("c"),
    "chgfrom": pkt("e", z("<new@example.test>", "SIZE=10")) + pkt("c"),
    "addrcpt": pkt("+", z("<x@example.test>")) + pkt("2", z("<y@example.test>", "NOTIFY=NEVER")) + pkt("c"),
    "delrcpt": pkt("-", z("<b@example.test>")) + pkt("c"),
    "quarantine": pkt("q", z("suspicious")) + pkt("c"),
    "progress": pkt("p") + pkt("p") + pkt("a"),
    "yreply": pkt("y", z("550 5.7.1 Rejected by policy")),
    "ymulti": pkt("y", z("451-4.7.1 first\r\n451 4.7.1 second")),
    "reject": pkt("r"),
    "tempfail": pkt("t"),
    "discard": pkt("d"),
    "shutdown": pkt("4"),
    "all": (pkt("h", z("X-A", " 1")) + pkt("i", struct.pack(">I", 2) + z("X-B", " 2")) +
            pkt("m", struct.pack(">I", 1) + z("From", " <c@example.test>")) +
            pkt("b", b"x\r\n") + pkt("e", z("<n@example.test>")) +
            pkt("+", z("<z@example.test>")) + pkt("-", z("<c@example.test>")) +
            pkt("q", z("q")) + pkt("a")),
}
for name, eom in EOMS.items():
    put("fuzz_milter", "eom-" + name, milter_session(eom=eom))
put("fuzz_milter", "nr-all", milter_session(proto=0x1ff000 | 0x80, eom=EOMS["addhdr"]))
put("fuzz_milter", "skip-body", milter_session(proto=0x400, eom=EOMS["accept"],
                                                stage_replies={"body": pkt("s")}))
put("fuzz_milter", "no-events", pkt("O", struct.pack(">III", 6, 0x1ff, 0x7f | 0x200)) + pkt("a") * 2)
put("fuzz_milter", "v2", pkt("O", struct.pack(">III", 2, 0x1, 0)) + pkt("c") * 30)
put("fuzz_milter", "reject-connect", milter_session(stage_replies={"connect": pkt("y", z("554 5.7.1 go away"))}))
put("fuzz_milter", "reject-rcpt", milter_session(stage_replies={"rcpt": pkt("r"), "mail": pkt("t")}))
put("fuzz_milter", "setsymlist", pkt("O", struct.pack(">III", 6, 0x1ff | 0x100, 0) +
                                     struct.pack(">I", 1) + z("{rcpt_addr} i j")) + pkt("c") * 30)
put("fuzz_milter", "garbage", b"\0\0\0\x05Ohello" + b"\xff" * 20)


# ---- SMTP sessions: the client side of the integration dialogues ----------
ROOT = os.path.dirname(os.path.dirname(HERE))


def unescape(t):
    t = t.replace("\\\\", "\\")
    out, i = bytearray(), 0
    while i < len(t):
        ch = t[i]
        if ch == "\\" and i + 1 < len(t):
            n = t[i + 1]
            if n in "rnt0\\":
                out += {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0", "\\": b"\\"}[n]
                i += 2
                continue
            if n == "x" and i + 3 < len(t):
                try:
                    out.append(int(t[i + 2:i + 4], 16))
                    i += 4
                    continue
                except ValueError:
                    pass
        out += ch.encode("utf-8", "replace")
        i += 1
    return bytes(out)


def dialogues(pattern):
    """Client bytes of every smtpchat dialogue in the scripts matching
    pattern, one stream per session (a new one at each EHLO/HELO after a
    MAIL)."""
    import glob
    import re
    rx = re.compile(r"""(?:^|["'])\s*(>>n|>>|>\?|>) (.*?)["']?\s*(?:\\)?$""")
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", "integration", pattern))):
        cur, n = b"", 0
        for line in open(path, encoding="utf-8", errors="replace"):
            m = rx.search(line.rstrip("\n"))
            if not m:
                continue
            kind, text = m.group(1), m.group(2)
            if kind == ">>n":
                parts = text.split()
                try:
                    data = parts[1].encode() * min(int(parts[0]), 4000)
                except (ValueError, IndexError):
                    continue
            elif kind == ">>":
                data = unescape(text)
            else:
                data = unescape(text) + b"\r\n"
            if data[:4].upper() in (b"EHLO", b"HELO") and b"MAIL" in cur.upper():
                yield os.path.basename(path), n, cur
                cur, n = b"", n + 1
            cur += data
        if cur:
            yield os.path.basename(path), n, cur


SESSIONS = {
    "basic": "EHLO client.example.org\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<user@example.test>\r\n"
             "DATA\r\nSubject: hi\r\n\r\nhello\r\n.\r\nQUIT\r\n",
    "helo": "HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<u@x.test>\r\nDATA\r\n.\r\nQUIT\r\n",
    "params": "EHLO c\r\nMAIL FROM:<a@example.org> SIZE=100 BODY=8BITMIME SMTPUTF8\r\n"
              "RCPT TO:<us\xc3\xa9r@example.test>\r\nDATA\r\nx\r\n.\r\n",
    "stuffed": "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@x.test>\r\nDATA\r\n"
               "..leading dot\r\n.\r\n...\r\n.x\r\n\r\n.\r\nRSET\r\nQUIT\r\n",
    "pipelined": "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@x.test>\r\nRCPT TO:<reject@x.test>\r\n"
                 "RCPT TO:<temp@x.test>\r\nDATA\r\nSubject: 1\r\n\r\nfirst\r\n.\r\n"
                 "MAIL FROM:<c@d.example>\r\nRCPT TO:<v@x.test>\r\nDATA\r\nREJECTME\r\n.\r\n"
                 "MAIL FROM:<mailfail@d.example>\r\nNOOP\r\nHELP\r\nVRFY x\r\nEXPN y\r\nQUIT\r\n",
    "smuggle-lf": "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@x.test>\r\nDATA\r\nhello\n.\r\n"
                  "MAIL FROM:<ceo@x.test>\r\nRCPT TO:<victim@remote.example>\r\nDATA\r\nsmuggled\r\n.\r\n",
    "smuggle-lflf": "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@x.test>\r\nDATA\r\nhello\n.\n"
                    "MAIL FROM:<ceo@x.test>\r\nRCPT TO:<victim@remote.example>\r\nDATA\r\nsmuggled\r\n.\r\n",
    "smuggle-cr": "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@x.test>\r\nDATA\r\nhello\r.\r\r\n"
                  "MAIL FROM:<ceo@x.test>\r\nRCPT TO:<victim@remote.example>\r\nDATA\r\nsmuggled\r\n.\r\n",
    "bare": "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@x.test>\r\nDATA\r\none\ntwo\rthree\r\n.\r\nQUIT\r\n",
    "bye421": "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<bye@x.test>\r\nRCPT TO:<u@x.test>\r\n"
              "DATA\r\nBYE421\r\n.\r\nMAIL FROM:<a@b.example>\r\n",
    "errors": "HELO\r\nMAIL FROM:<a@b>\r\nEHLO c d\r\nMAIL TO:<x>\r\nMAIL FROM:a@b\r\nMAIL FROM:<a@b> FOO=1\r\n"
              "RCPT TO:<x@y>\r\nDATA\r\nSTARTTLS\r\nMAIL FROM:<\"q x\"@b.example>\r\n"
              "RCPT TO:<@route,@r2:u@x.test>\r\nRCPT TO:<postmaster>\r\nDATA\r\n.\r\n",
    "long": "EHLO c\r\n" + "A" * 1200 + "\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@x.test>\r\nDATA\r\n"
            + ("x" * 990 + "\r\n") * 5 + ".\r\nQUIT\r\n",
}


def smtp_seeds(target, pattern):
    for name, s in SESSIONS.items():
        put(target, "s-" + name, s.encode("latin-1") if isinstance(s, str) else s)
    for script, n, data in dialogues(pattern):
        if 0 < len(data) <= 8192:
            put(target, "d-%s-%d" % (script.replace(".sh", ""), n), data)


smtp_seeds("fuzz_gate", "*gate*.sh")


# ---- spool: queue files and state files as relay_spool.c writes them -----
def queue_file(rcpts=("user@example.test",), body=b"Subject: x\r\n\r\nhello\r\n",
               dkim=None, extra=b"", sender="a@example.org"):
    env = (b"TWQ1\nid 0123456789ABCDEF\ntime 1700000000\nfrom " + sender.encode() + b"\n" + extra +
           b"".join(b"rcpt " + r.encode() + b"\n" for r in rcpts) + b"data\n")
    t = len(env) + len(body)
    tr = b""
    if dkim is not None:
        tr = b"dkim %d\n" % len(dkim) + dkim + b"\n"
    return b"\0" + env + body + tr + b"end %016x\n" % t


DKIM = b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=sel;\r\n\tb=abc=\r\n"
put("fuzz_spool", "q-basic", queue_file())
put("fuzz_spool", "q-flags", queue_file(extra=b"utf8\n8bit\nclient 192.0.2.7\n",
                                        rcpts=("a@x.test", "b@y.test", "c@z.test")))
put("fuzz_spool", "q-null-sender", queue_file(sender=""))
put("fuzz_spool", "q-dkim", queue_file(dkim=DKIM))
put("fuzz_spool", "q-empty-body", queue_file(body=b""))
# defect 4 of issue 8 (trailer length -1): kept in tests/fuzz/crashes/, not
# here, until the fix is merged
put("fuzz_spool", "q-torn", queue_file()[:-10])
STATE = (b"TWS1\nattempts 3\nnext 1700003600\nwarned 1\nnotified 0\n"
         b"r 0 sent 250 2.0.0 Ok: queued as 4XyZ\nr 1 bounced 550 5.1.1 No such user\n"
         b"r 2 pending 451 4.7.1 Greylisted\nend\n")
put("fuzz_spool", "s-state", b"\1" + STATE)
put("fuzz_spool", "s-fresh", b"\1TWS1\nattempts 0\nnext 0\nwarned 0\nnotified 0\nr 0 pending \nend\n")
put("fuzz_spool", "s-bad", b"\1TWS1\nattempts -5\nnext 99999999999999999999\nr 7 sent x\nr -1 sent\nr 1\n")

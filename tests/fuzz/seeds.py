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


def smtp_seeds(target, pattern, skip=(), prefix=b""):
    for name, s in SESSIONS.items():
        if name in skip:
            continue
        put(target, "s-" + name, prefix + (s.encode("latin-1") if isinstance(s, str) else s))
    for script, n, data in dialogues(pattern):
        if 0 < len(data) <= 8192:
            put(target, "d-%s-%d" % (script.replace(".sh", ""), n), prefix + data)


smtp_seeds("fuzz_gate", "*gate*.sh")
# the relay's DATA smuggling (defect 1 of issue 8) is in tests/fuzz/crashes/
# until the fix is merged
smtp_seeds("fuzz_relay", "*relay*.sh", skip=("smuggle-lf",))
put("fuzz_relay", "s-bdat", "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@x.test>\r\n"
    "BDAT 7\r\nhello\r\nBDAT 0 LAST\r\nQUIT\r\n")

# lib/smtpd (fuzz_smtpd): byte 0 is the session's settings (see the
# target: 0x01 CHUNKING, 0x02 SMTPUTF8, 0x04 DSN, 0x08 messages refused,
# 0x10 4 KiB read buffer, 0x20 size limit 100, 0x40 session refused, 0x80
# MAIL/RCPT parameters and max_errors 5); the gate's and the relay's dialogues
smtp_seeds("fuzz_smtpd", "*gate*.sh", prefix=b"\x03")
for script, n, data in dialogues("*relay*.sh"):
    if 0 < len(data) <= 8192:
        put("fuzz_smtpd", "d-%s-%d" % (script.replace(".sh", ""), n), b"\x87" + data)
TXN = "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@x.test>\r\n"
SMTPD = {
    "bdat": (0x01, TXN + "BDAT 7\r\nhello\r\nBDAT 0 LAST\r\nQUIT\r\n"),
    "bdat-crlf-split": (0x01, TXN + "BDAT 3\r\nab\rBDAT 3 LAST\r\n\n.\r\nQUIT\r\n"),
    "bdat-bare": (0x01, TXN + "BDAT 4 LAST\r\na\nb\rMAIL FROM:<a@b.example>\r\nRCPT TO:<u@x.test>\r\n"
                  "BDAT 3 LAST\r\nab\rNOOP\r\n"),
    "bdat-seq": (0x01, "BDAT 3\r\nabcEHLO c\r\nBDAT 2\r\nxyMAIL FROM:<a@b.example>\r\n"
                 "RCPT TO:<u@x.test>\r\nBDAT 5\r\n12345DATA\r\nEHLO d\r\nRSET\r\nBDAT 1 LAST\r\nz"),
    "bdat-syntax": (0x01, TXN + "BDAT\r\nBDAT x\r\nBDAT 3 FOO\r\nBDAT -1\r\nBDAT 99999999999\r\n"),
    "bdat-big": (0x21, TXN + "BDAT 90\r\n" + "x" * 88 + "\r\nBDAT 20 LAST\r\n" + "y" * 18 + "\r\n"
                 "MAIL FROM:<a@b.example>\r\nRCPT TO:<u@x.test>\r\nBDAT 2000000\r\n"),
    "bdat-off": (0x00, TXN + "BDAT 4 LAST\r\nNOOP\r\nQUIT\r\n"),
    "bdat-refused": (0x09, TXN + "BDAT 3\r\nabcBDAT 2 LAST\r\nxyDATA\r\nRSET\r\n"),
    "data-big": (0x20, TXN + "DATA\r\n" + ("y" * 48 + "\r\n") * 3 + ".\r\n" + TXN[9:] + "DATA\r\nsmall\r\n.\r\n"),
    "data-refused": (0x08, TXN + "DATA\r\nhello\r\n.\r\nMAIL FROM:<a@b.example>\r\n"),
    "starttls": (0x03, "EHLO c\r\nSTARTTLS\r\nSTARTTLS x\r\nEHLO c\r\nMAIL FROM:<a@b.example>\r\nSTARTTLS\r\n"),
    "sequence": (0x03, "MAIL FROM:<a@b>\r\nRCPT TO:<u@x.test>\r\nDATA\r\nEHLO c\r\nRCPT TO:<u@x.test>\r\n"
                 "DATA\r\nMAIL FROM:<a@b.example>\r\nMAIL FROM:<a@b.example>\r\nDATA\r\n"
                 "RCPT TO:<refuse@x.test>\r\nDATA\r\nAUTH PLAIN\r\nHELO c\r\nMAIL FROM:<a@b.example> SIZE=1\r\n"),
    "params": (0x83, "EHLO c\r\nMAIL FROM:<a@b.example> SIZE=abc\r\nMAIL FROM:<a@b.example> SIZE=99999\r\n"
               "MAIL FROM:<a@b.example> BODY=BINARYMIME\r\nMAIL FROM:<a@b.example> RET=HDRS ENVID=x\r\n"
               "RCPT TO:<u@x.test> NOTIFY=NEVER\r\nRCPT TO:<v@x.test> FOO=1\r\nRCPT TO:<w@x.test>\r\n"
               "RCPT TO:<x@x.test>\r\nRCPT TO:<y@x.test>\r\n"),
    "refused-session": (0x41, "EHLO c\r\nNOOP\r\nMAIL FROM:<a@b.example>\r\nRSET\r\nBDAT 3\r\nabcQUIT\r\n"),
    "errors": (0x80, "FOO\r\nBAR\r\nNOOP\nNO\0OP\r\nEHLO a\x01b\r\nEHLO\r\nNOOP\r\n"),
    "huge-line": (0x13, "EHLO c\r\nNOOP " + "A" * 9000 + "\r\nNOOP\r\n" + "B" * 5000 + "\rNOOP\r\nQUIT\r\n"),
    "tail": (0x03, "EHLO c\r\nNOOP"),
}
for name, (flags, text) in SMTPD.items():
    put("fuzz_smtpd", "s-" + name, bytes([flags]) + text.encode("latin-1"))


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


# ---- lib/smtp.c: replies (EHLO of Postfix, Stalwart-like), paths, content --
REPLIES = {
    "postfix-ehlo": "220 mx.example.test ESMTP Postfix (Debian/GNU)\r\n250-mx.example.test\r\n"
                    "250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n250-STARTTLS\r\n"
                    "250-XCLIENT NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN DESTADDR DESTPORT\r\n"
                    "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n"
                    "250 CHUNKING\r\n",
    "auth": "250-smarthost.test\r\n250-AUTH PLAIN LOGIN CRAM-MD5\r\n250-AUTH=LOGIN\r\n250 SIZE\r\n"
            "334 VXNlcm5hbWU6\r\n235 2.7.0 Authentication successful\r\n",
    "errors": "550-5.1.1 first\r\n550 5.1.1 <x@y>: Recipient address rejected\r\n"
              "451 4.7.1 Greylisted\r\n421 4.4.2 mx.example.test Error: timeout exceeded\r\n"
              "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as 4XyZ\r\n",
    "bad": "250-a\r\n251 b\r\n25\r\n250 c\n2500 d\r\n250-" + "x" * 600 + "\r\n250 e\r\n",
}
for name, r in REPLIES.items():
    put("fuzz_smtp", "r-" + name, b"\0" + r.encode())
for i, p in enumerate(["FROM:<a@example.org> SIZE=100 BODY=8BITMIME SMTPUTF8",
                       "FROM:<>", "TO:<@r1,@r2:u@x.test>", "FROM: <\"q x\\\"y\"@b.example> AUTH=<>",
                       "TO:<postmaster>", "FROM:<a@[192.0.2.1]> RET=HDRS ENVID=x+2By",
                       "FROM:<us\u00e9r@ex\u00e4mple.test> SMTPUTF8", "TO:<a@b> NOTIFY=NEVER ORCPT=rfc822;a@b"]):
    put("fuzz_smtp", "p-%d" % i, b"\1" + p.encode())
put("fuzz_smtp", "c-body", b"\2Subject: x\r\n\r\n.hello\r\n..\r\n.\r\nlast\r\n")
put("fuzz_smtp", "c-bare", b"\2a\nb\r.c\r\n.\n")
put("fuzz_smtp", "v-ehlo", b"\3EHLO [IPv6:2001:db8::1]")
put("fuzz_smtp", "v-helo", b"\3HELO  client.example.org")


# ---- Redis: SELECT, get, set NX, incr_many, incr, del, get (RESP) --------
RESP = {
    "normal": "+OK\r\n*2\r\n$3\r\nabc\r\n:120\r\n+OK\r\n*2\r\n:1\r\n:5\r\n*1\r\n:0\r\n:1\r\n*-1\r\n",
    "nil": "+OK\r\n$-1\r\n$-1\r\n*2\r\n:0\r\n:0\r\n*1\r\n:0\r\n:0\r\n$-1\r\n",
    "errors": "+OK\r\n-ERR wrong\r\n-OOM command not allowed\r\n*2\r\n$1\r\nx\r\n:1\r\n"
              "-READONLY\r\n:1\r\n*2\r\n$100\r\nshort\r\n:1\r\n",
    "select-fails": "-ERR DB index is out of range\r\n",
    "big": "+OK\r\n*2\r\n$70\r\n" + "v" * 70 + "\r\n:-1\r\n+OK\r\n*3\r\n:1\r\n:2\r\n:3\r\n"
           "*1\r\n$1\r\n5\r\n:0\r\n*2\r\n$5\r\nabcde\r\n:9\r\n",
    "resp3": "+OK\r\n%1\r\n+a\r\n:1\r\n_\r\n#t\r\n,1.5\r\n(12345678901234567890\r\n=5\r\ntxt:x\r\n",
}
for name, r in RESP.items():
    put("fuzz_redis", name, r)


# ---- configs: the samples and every config file the integration tests write
def configs():
    import glob
    import re
    for name in ("gate.conf", "smarthost.conf"):
        yield name, open(os.path.join(ROOT, name), "rb").read()
    start = re.compile(r"""cat\s+>\s*"?[^"\s]*?([\w.-]*conf)"?\s+<<-?\s*'?(\w+)'?""")
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", "integration", "*.sh"))):
        lines = open(path, encoding="utf-8", errors="replace").read().split("\n")
        i, n = 0, 0
        while i < len(lines):
            m = start.search(lines[i])
            i += 1
            if not m:
                continue
            body = []
            while i < len(lines) and lines[i].strip() != m.group(2):
                body.append(lines[i])
                i += 1
            n += 1
            yield "%s-%d" % (os.path.basename(path).replace(".sh", ""), n), ("\n".join(body) + "\n").encode()


for name, text in configs():
    if b"/dev" in text or b"/proc" in text or b"/sys" in text or len(text) > 16000:
        continue
    for sel in range(4):
        put("fuzz_config", "%d-%s" % (sel, name), bytes([sel]) + text)
put("fuzz_config", "0-grammar", b"\0# comment\nname = x # not a comment\ncount = 7\ntimeout = 5m\n"
    b"size = 10K\nflag = yes\nmode = enforce\nlist = a, b ,c\n  continued\nrequired = %{env:TW_FUZZ_ENV}%\n"
    b"limit[192.0.2.0/24] = 1\nlimit[x] = 2\n")


# ---- tailwart-milter callbacks: HELO, MAIL, RCPT lines, then a message ----
def milterd(headers, body="hello\r\n", env="client.example.org\n<a@example.org>\n<user@mx.fuzz.test>\n"):
    return (env + "".join(h + "\r\n" for h in headers) + "\r\n" + body).encode()


BASE = ["From: a@example.org", "To: user@mx.fuzz.test", "Subject: test", "Message-ID: <1@example.org>"]
put("fuzz_milterd", "plain", milterd(BASE))
put("fuzz_milterd", "plain-even", milterd(BASE + ["X-Pad: x"]))
put("fuzz_milterd", "ar-other", milterd(["Authentication-Results: other.test; spf=pass"] + BASE))
put("fuzz_milterd", "ar-forged", milterd(["Authentication-Results: mx.fuzz.test; spf=pass smtp.mailfrom=ceo"] + BASE))
put("fuzz_milterd", "dkim", milterd(["DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; "
                                      "s=sel; h=from:to:subject; bh=frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=; "
                                      "b=dGVzdA=="] + BASE, body="hello\r\n.\r\n\r\n"))
put("fuzz_milterd", "null-sender", milterd(BASE, env="h\n<>\n<u@x>\n"))
# defect 5 of issue 8 (many forged A-R, comment or quoted authserv-id) is in
# tests/fuzz/crashes/ until the fix is merged

#!/usr/bin/env python3
"""msgcmp.py - is a sent message intact in a delivered Maildir file?

    python3 tests/peers/msgcmp.py SENT_FILE MAILDIR SUBJECT

SENT_FILE holds the message as the client meant it (CRLF or LF lines, not
dot-stuffed). Finds the file in MAILDIR/new or cur whose header has
"Subject: SUBJECT", and checks that its body (after the first empty line)
is exactly the sent body, with LF line ends (the backend adds and rewrites
header lines, never the body).
Exit 0 if intact; 1 with the first difference otherwise.
"""
import glob
import sys


def body(b):
    i = b.find(b"\n\n")
    return b"" if i < 0 else b[i + 2:]


def main():
    sent = open(sys.argv[1], "rb").read().replace(b"\r\n", b"\n")
    subj = ("Subject: " + sys.argv[3] + "\n").encode()
    for f in glob.glob(sys.argv[2] + "/new/*") + glob.glob(sys.argv[2] + "/cur/*"):
        got = open(f, "rb").read()
        if subj not in got.split(b"\n\n", 1)[0] + b"\n":
            continue
        a, b = body(got), body(sent)
        if a == b:
            print("body intact: %d bytes in %s" % (len(b), f))
            return 0
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                print("body differs at offset %d: got %r, sent %r" % (i, a[max(0, i - 40):i + 40],
                                                                      b[max(0, i - 40):i + 40]))
                return 1
        print("body length differs: got %d, sent %d" % (len(a), len(b)))
        return 1
    print("no message with %r in %s" % (subj, sys.argv[2]))
    return 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""badimap.py: a scripted misbehaving IMAP server for the IMAP provider's tests.

    badimap.py --case CASE [--port 0] [--port-file FILE] [--log FILE] [--count N] [--seed S]
               [--bad-fetches K] [--user U --password PW] [--list FILE] [--twin FOLDER]

It serves one mailbox, INBOX, of --count messages (fill_maildir.py's messages
0..N-1 of --seed, CRLF, UIDVALIDITY 1234, UIDs 1..N) as a small but correct
IMAP4rev1 server (CAPABILITY, LOGIN, AUTHENTICATE PLAIN with SASL-IR, ID,
ENABLE, NAMESPACE, LIST, LSUB, STATUS, SELECT/EXAMINE, FETCH/UID FETCH,
UID SEARCH, IDLE, NOOP, CHECK, CLOSE, UNSELECT, LOGOUT), except that on the
first K FETCH commands that ask for a body (--bad-fetches, default 1; -1:
all), whatever connection they come on, it misbehaves in one of these ways
(--case):

  garbage      lines of binary noise that are no IMAP response, then silence
  longline     1 MiB without a line end (a "line" no client should buffer), then silence
  literal      the first message sent as a literal that claims fewer bytes than the
               message has ({N} too small: a careful parser sees junk after the
               literal; a careless one stores a truncated message)
  literal-long a literal that claims more bytes than are sent, then the tagged OK (which a
               careful parser reads as literal data) and silence
  stall        half of the first message's literal, then silence (the client's timeout
               must fire)
  bye          two complete messages, then "* BYE" and a close in the middle of the FETCH
  none         never misbehaves (a reference run)

"Silence" keeps the connection open without sending anything until the
client closes it.  Later fetches behave, so a client that retries must
end with every message stored exactly once.

The log (--log) has one line per event: "conn N open", "conn N C: <command>"
(passwords replaced by ***), "conn N misbehaved: CASE", "conn N sent K
bodies" (a FETCH answered correctly), "conn N closed".
--list FILE writes "uid sha256 size" of every message and exits: the set a
test checks stored messages against.
--twin FOLDER adds a second folder with the same UIDVALIDITY and the same
UIDs 1..N but other messages (those of --seed + 1): two folders may share a
UIDVALIDITY, and a client that keys messages by UIDVALIDITY and UID alone
takes the second folder's mail for duplicates.  With --list, the twin's
messages follow, as "FOLDER uid sha256 size".
"""
import argparse
import base64
import hashlib
import os
import re
import socketserver
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fill_maildir  # noqa: E402

UIDVALIDITY = 1234
CAPS = "IMAP4rev1 SASL-IR AUTH=PLAIN AUTH=LOGIN ID ENABLE IDLE UIDPLUS NAMESPACE LITERAL+"


class State:
    def __init__(self, a):
        self.a = a
        self.msgs = self.make(a.seed)
        self.twin = self.make(a.seed + 1) if a.twin else None
        self.init_rest()

    def make(self, seed):
        msgs = []
        for i in range(self.a.count):
            raw = fill_maildir.make_message(seed, i, "INBOX=1")[0]
            msgs.append({"uid": i + 1, "raw": raw, "flags": "\\Seen" if i % 3 else "",
                         "date": "01-Jan-2024 10:%02d:00 +0000" % (i % 60)})
        return msgs

    def folder(self, name):
        """The messages of a folder, or None."""
        name = name.strip('"')
        if name.upper() == "INBOX":
            return self.msgs
        if self.twin is not None and name == self.a.twin:
            return self.twin
        return None

    def init_rest(self):
        self.conns = 0
        self.bad_left = self.a.bad_fetches
        self.lock = threading.Lock()
        self.logf = open(self.a.log, "a", buffering=1) if self.a.log else sys.stderr

    def log(self, s):
        with self.lock:
            self.logf.write("%.3f %s\n" % (time.time(), s))


def parse_set(s, maxval):
    out = set()
    for part in s.split(","):
        a, _, b = part.partition(":")
        lo = maxval if a == "*" else int(a)
        hi = lo if not b else (maxval if b == "*" else int(b))
        if lo > hi:
            lo, hi = hi, lo
        out.update(range(lo, min(hi, maxval) + 1))
    return out


class Handler(socketserver.StreamRequestHandler):
    timeout = 600

    def setup(self):
        super().setup()
        st = self.server.st
        with st.lock:
            st.conns += 1
            self.n = st.conns
        self.selected = False
        self.cur = st.msgs
        self.authed = False
        st.log("conn %d open" % self.n)

    def send(self, s):
        if isinstance(s, str):
            s = s.encode("utf-8")
        self.wfile.write(s)
        self.wfile.flush()

    def readline(self):
        line = self.rfile.readline(65536)
        if not line:
            return None
        # a command may carry literals: {n} or {n+}
        while True:
            m = re.search(rb"\{(\d+)(\+?)\}\r?\n$", line)
            if not m:
                break
            if not m.group(2):
                self.send("+ go ahead\r\n")
            data = self.rfile.read(int(m.group(1)))
            line = line[:m.start()] + b'"' + data.replace(b'"', b"") + b'"' + self.rfile.readline(65536)
        return line.rstrip(b"\r\n").decode("utf-8", "replace")

    def silence(self):
        """Send nothing more; wait for the client to give up."""
        self.server.st.log("conn %d silent" % self.n)
        try:
            while self.rfile.read(1):
                pass
        except OSError:
            pass
        raise ConnectionAbortedError

    def handle(self):
        st = self.server.st
        try:
            self.send("* OK [CAPABILITY %s] badimap ready\r\n" % CAPS)
            while True:
                line = self.readline()
                if line is None:
                    break
                shown = re.sub(r"(?i)^(\S+ (LOGIN \S+|AUTHENTICATE PLAIN)) .*", r"\1 ***", line)
                st.log("conn %d C: %s" % (self.n, shown))
                if not self.command(line):
                    break
        except (ConnectionError, OSError):
            pass
        st.log("conn %d closed" % self.n)

    def command(self, line):
        st = self.server.st
        parts = line.split(" ", 2)
        if len(parts) < 2:
            self.send("* BAD no tag\r\n")
            return True
        tag, cmd = parts[0], parts[1].upper()
        rest = parts[2] if len(parts) > 2 else ""
        if cmd == "UID":
            sub = rest.split(" ", 1)
            cmd, rest, uid = "UID " + sub[0].upper(), sub[1] if len(sub) > 1 else "", True
        else:
            uid = False
        if cmd == "CAPABILITY":
            self.send("* CAPABILITY %s\r\n%s OK CAPABILITY done\r\n" % (CAPS, tag))
        elif cmd == "NOOP" or cmd == "CHECK":
            self.send("%s OK %s done\r\n" % (tag, cmd))
        elif cmd == "LOGOUT":
            self.send("* BYE logging out\r\n%s OK LOGOUT done\r\n" % tag)
            return False
        elif cmd == "LOGIN":
            args = re.findall(r'"((?:[^"\\]|\\.)*)"|(\S+)', rest)
            vals = [a or b for a, b in args]
            if len(vals) == 2 and vals[0] == st.a.user and vals[1] == st.a.password:
                self.authed = True
                self.send("%s OK [CAPABILITY %s] logged in\r\n" % (tag, CAPS))
            else:
                self.send("%s NO [AUTHENTICATIONFAILED] bad credentials\r\n" % tag)
        elif cmd == "AUTHENTICATE":
            a = rest.split(" ")
            if a[0].upper() != "PLAIN":
                self.send("%s NO unsupported mechanism\r\n" % tag)
                return True
            if len(a) > 1:
                resp = a[1]
            else:
                self.send("+ \r\n")
                resp = self.readline() or ""
            try:
                _, u, p = base64.b64decode(resp).decode().split("\0")
            except Exception:
                self.send("%s BAD bad SASL response\r\n" % tag)
                return True
            if u == st.a.user and p == st.a.password:
                self.authed = True
                self.send("%s OK [CAPABILITY %s] logged in\r\n" % (tag, CAPS))
            else:
                self.send("%s NO [AUTHENTICATIONFAILED] bad credentials\r\n" % tag)
        elif not self.authed:
            self.send("%s BAD log in first\r\n" % tag)
        elif cmd == "ID":
            self.send('* ID ("name" "badimap")\r\n%s OK ID done\r\n' % tag)
        elif cmd == "ENABLE":
            self.send("* ENABLED\r\n%s OK ENABLE done\r\n" % tag)
        elif cmd == "NAMESPACE":
            self.send('* NAMESPACE (("" "/")) NIL NIL\r\n%s OK NAMESPACE done\r\n' % tag)
        elif cmd in ("LIST", "LSUB"):
            if rest.endswith('""'):
                self.send('* %s (\\Noselect) "/" ""\r\n' % cmd)
            else:
                self.send('* %s (\\HasNoChildren) "/" INBOX\r\n' % cmd)
                if st.twin is not None:
                    self.send('* %s (\\HasNoChildren) "/" "%s"\r\n' % (cmd, st.a.twin))
            self.send("%s OK %s done\r\n" % (tag, cmd))
        elif cmd == "STATUS":
            name = rest.split(" ")[0]
            f = st.folder(name)
            if f is None:
                self.send("%s NO [NONEXISTENT] no such mailbox\r\n" % tag)
                return True
            n = len(f)
            self.send("* STATUS %s (MESSAGES %d UIDNEXT %d UIDVALIDITY %d UNSEEN 0)\r\n%s OK STATUS done\r\n"
                      % (name, n, n + 1, UIDVALIDITY, tag))
        elif cmd in ("SELECT", "EXAMINE"):
            f = st.folder(rest.split(" (")[0])
            if f is None:
                self.send("%s NO [NONEXISTENT] no such mailbox\r\n" % tag)
                return True
            self.cur = f
            n = len(f)
            self.selected = True
            self.send("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n* OK [PERMANENTFLAGS ()] none\r\n"
                      "* %d EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY %d] UIDs valid\r\n* OK [UIDNEXT %d] next\r\n"
                      "%s OK [%s] %s done\r\n" % (n, UIDVALIDITY, n + 1, tag,
                                                  "READ-WRITE" if cmd == "SELECT" else "READ-ONLY", cmd))
        elif cmd in ("CLOSE", "UNSELECT"):
            self.selected = False
            self.send("%s OK %s done\r\n" % (tag, cmd))
        elif cmd == "IDLE":
            self.send("+ idling\r\n")
            while True:
                line = self.readline()
                if line is None:
                    return False
                if line.upper() == "DONE":
                    break
            self.send("%s OK IDLE done\r\n" % tag)
        elif cmd in ("UID SEARCH", "SEARCH"):
            uids = [m["uid"] for m in self.cur]
            mm = re.search(r"UID (\S+)", rest, re.I)
            if mm:
                want = parse_set(mm.group(1), len(self.cur))
                uids = [u for u in uids if u in want]
            self.send("* SEARCH%s\r\n%s OK SEARCH done\r\n" % ("".join(" %d" % u for u in uids), tag))
        elif cmd in ("FETCH", "UID FETCH"):
            if not self.selected:
                self.send("%s BAD no mailbox selected\r\n" % tag)
                return True
            return self.fetch(tag, rest, uid)
        else:
            self.send("%s BAD unknown command %s\r\n" % (tag, cmd))
        return True

    def fetch(self, tag, rest, uid):
        st = self.server.st
        sset, _, items = rest.partition(" ")
        items = items.strip()
        if items.startswith("(") and items.endswith(")"):
            items = items[1:-1]
        names = re.findall(r"BODY\.PEEK\[[^\]]*\](?:<[\d.]+>)?|BODY\[[^\]]*\](?:<[\d.]+>)?|\S+", items.upper())
        cur = self.cur
        n = len(cur)
        want = parse_set(sset, n if not uid else (cur[-1]["uid"] if cur else 0))
        msgs = [(i + 1, m) for i, m in enumerate(cur) if (m["uid"] if uid else i + 1) in want]
        has_body = any(x.startswith(("BODY[", "BODY.PEEK[", "RFC822")) and x not in ("RFC822.SIZE",)
                       for x in names)
        bad = False
        if has_body and st.a.case != "none":
            with st.lock:
                if st.bad_left != 0:
                    st.bad_left -= 1
                    bad = True
        if bad:
            st.log("conn %d misbehaved: %s" % (self.n, st.a.case))
            return self.misbehave(tag, msgs)
        for seq, m in msgs:
            self.send(self.fetch_line(seq, m, names, uid))
        self.send("%s OK FETCH done\r\n" % tag)
        if has_body:
            st.log("conn %d sent %d bodies" % (self.n, len(msgs)))
        return True

    def fetch_line(self, seq, m, names, uid):
        """One "* SEQ FETCH (...)" response, the body as a literal."""
        items = []
        if uid and "UID" not in names:
            items.append(b"UID %d" % m["uid"])
        for x in names:
            if x == "UID":
                items.append(b"UID %d" % m["uid"])
            elif x == "FLAGS":
                items.append(b"FLAGS (%s)" % m["flags"].encode())
            elif x == "RFC822.SIZE":
                items.append(b"RFC822.SIZE %d" % len(m["raw"]))
            elif x == "INTERNALDATE":
                items.append(b'INTERNALDATE "%s"' % m["date"].encode())
            elif x in ("BODY[]", "BODY.PEEK[]", "RFC822"):
                key = b"RFC822" if x == "RFC822" else b"BODY[]"
                items.append(key + b" {%d}\r\n" % len(m["raw"]) + m["raw"])
        return b"* %d FETCH (" % seq + b" ".join(items) + b")\r\n"

    def misbehave(self, tag, msgs):
        case = self.server.st.a.case
        if not msgs:
            self.send("%s OK FETCH done\r\n" % tag)
            return True
        seq, m = msgs[0]
        if case == "garbage":
            noise = bytes(range(256)) * 4
            self.send(b"\x16\x03\x01\x02\x00 ))) {{{ garbage ***\r\n" + noise + b"\r\n%%%% NOT IMAP\r\n")
            self.silence()
        elif case == "longline":
            self.send(b"* " + b"A" * (1 << 20))
            self.silence()
        elif case == "literal":
            raw = m["raw"]
            short = len(raw) // 3
            self.send(("* %d FETCH (UID %d RFC822.SIZE %d BODY[] {%d}\r\n" % (seq, m["uid"], len(raw), short))
                      .encode() + raw + b")\r\n" + ("%s OK FETCH done\r\n" % tag).encode())
            self.silence()
        elif case == "literal-long":
            raw = m["raw"]
            self.send(("* %d FETCH (UID %d RFC822.SIZE %d BODY[] {%d}\r\n" % (seq, m["uid"], len(raw),
                                                                              len(raw) + 5000)).encode()
                      + raw + b")\r\n" + ("%s OK FETCH done\r\n" % tag).encode())
            self.silence()
        elif case == "stall":
            raw = m["raw"]
            self.send(("* %d FETCH (UID %d RFC822.SIZE %d BODY[] {%d}\r\n" % (seq, m["uid"], len(raw), len(raw)))
                      .encode() + raw[:len(raw) // 2])
            self.silence()
        elif case == "bye":
            names = ["UID", "RFC822.SIZE", "BODY.PEEK[]"]
            for s, mm in msgs[:2]:
                self.send(self.fetch_line(s, mm, names, True))
            self.send("* BYE server shutting down\r\n")
            return False
        return False


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--case", default="none",
                    choices=["garbage", "longline", "literal", "literal-long", "stall", "bye", "none"])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--seed", type=int, default=99)
    ap.add_argument("--bad-fetches", type=int, default=1)
    ap.add_argument("--user", default="bad")
    ap.add_argument("--password", default="bad-secret-1")
    ap.add_argument("--list", help="write 'uid sha256 size' of every message to this file and exit")
    ap.add_argument("--twin", help="a second folder with the same UIDVALIDITY and UIDs, other messages")
    a = ap.parse_args()
    st = State(a)
    if a.list:
        with open(a.list, "w") as fp:
            for m in st.msgs:
                fp.write("%d %s %d\n" % (m["uid"], hashlib.sha256(m["raw"]).hexdigest(), len(m["raw"])))
            for m in st.twin or []:
                fp.write("%s %d %s %d\n" % (a.twin, m["uid"], hashlib.sha256(m["raw"]).hexdigest(), len(m["raw"])))
        return 0
    srv = Server(("127.0.0.1", a.port), Handler)
    srv.st = st
    port = srv.server_address[1]
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as fp:
            fp.write("%d\n" % port)
        os.rename(a.port_file + ".tmp", a.port_file)
    st.log("listening on 127.0.0.1:%d case %s pid %d" % (port, a.case, os.getpid()))
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

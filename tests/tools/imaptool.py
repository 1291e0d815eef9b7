#!/usr/bin/python3
"""imaptool.py: what the sync tests do to an IMAP source from "another connection".

    imaptool.py [--host H] --port P --user U --password PW [--tls|--starttls] [--ca FILE] COMMAND ...

Commands (folder names are UTF-8 with "/" as the separator; converted here to
the server's delimiter and modified UTF-7):
    dump                            one line per message of every selectable folder:
                                    folder  sha256  size  flags  uid   (BODY.PEEK: changes nothing)
    append FOLDER SEED INDEX [FLAGS]  APPEND message INDEX of fill_maildir.py's SEED; prints
                                    "uid sha256 size" (UIDPLUS) or "- sha256 size"
    append-file FOLDER FILE [FLAGS] APPEND the bytes of FILE as they are
    append-many FOLDER SEED FIRST COUNT  APPEND messages FIRST..FIRST+COUNT-1 on one connection;
                                    prints the UID set they got (UIDPLUS) or "-"
    flags FOLDER UID +FLAGS|-FLAGS  UID STORE ("+\\Flagged"; put "--" before a "-\\Seen")
    expunge FOLDER UIDSET           mark the UIDs \\Deleted and UID EXPUNGE them
    status FOLDER                   "messages uidnext uidvalidity"
    create FOLDER | delete FOLDER | rename OLD NEW
    recreate FOLDER                 copy every message of FOLDER to a new folder, delete FOLDER and
                                    rename the new one to FOLDER: same bytes, a new UIDVALIDITY;
                                    prints "old_uidvalidity new_uidvalidity"
    count [FOLDER]                  number of messages (all folders without FOLDER)
    capability                      the CAPABILITY list
Exit 0 on success, 1 with a message on failure.
"""
import argparse
import base64
import hashlib
import imaplib
import os
import re
import ssl
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fill_maildir  # noqa: E402


def mutf7_decode(s):
    def dec(m):
        b = m.group(1)
        if b == "":
            return "&"
        b = b.replace(",", "/")
        b += "=" * (-len(b) % 4)
        return base64.b64decode(b).decode("utf-16-be")
    return re.sub(r"&([^-]*)-", dec, s)


LIST_RE = re.compile(rb'\((?P<flags>[^)]*)\) (?P<delim>"[^"]*"|NIL) (?P<name>.*)$')


class Src:
    def __init__(self, a):
        if a.tls:
            ctx = ssl.create_default_context(cafile=a.ca)
            self.m = imaplib.IMAP4_SSL(a.host, a.port, ssl_context=ctx)
        else:
            self.m = imaplib.IMAP4(a.host, a.port)
            if a.starttls:
                self.m.starttls(ssl.create_default_context(cafile=a.ca))
        self.m.login(a.user, a.password)
        self.delim = "."
        typ, data = self.m.list('""', '""')
        if typ == "OK" and data and data[0]:
            mm = LIST_RE.match(data[0])
            if mm and mm.group("delim") != b"NIL":
                self.delim = mm.group("delim").decode()[1:-1]

    def wire(self, folder):
        if folder.upper() == "INBOX":
            return "INBOX"
        name = self.delim.join(fill_maildir.mutf7(p) for p in folder.split("/"))
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'

    def folders(self):
        typ, data = self.m.list('""', "*")
        check(typ, data, "LIST")
        out = []
        for line in data:
            if isinstance(line, tuple):
                line = line[0] + b'"' + line[1] + b'"'
            mm = LIST_RE.match(line)
            if not mm:
                continue
            flags = mm.group("flags").decode().lower()
            if "\\noselect" in flags or "\\nonexistent" in flags:
                continue
            name = mm.group("name").decode()
            if name.startswith('"'):
                name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            name = mutf7_decode(name)
            if self.delim:
                name = "/".join(name.split(self.delim))
            out.append(name)
        return sorted(out)

    def select(self, folder, readonly=False):
        typ, data = self.m.select(self.wire(folder), readonly=readonly)
        check(typ, data, "SELECT " + folder)
        return int(data[0])


def check(typ, data, what):
    if typ != "OK":
        raise SystemExit("imaptool: %s failed: %s" % (what, data))


FETCH_RE = re.compile(rb"UID (\d+)|FLAGS \(([^)]*)\)|RFC822\.SIZE (\d+)")


def dump(s, out):
    for folder in s.folders():
        n = s.select(folder, readonly=True)
        if n == 0:
            continue
        typ, data = s.m.uid("FETCH", "1:*", "(UID FLAGS RFC822.SIZE BODY.PEEK[])")
        check(typ, data, "UID FETCH in " + folder)
        for item in data:
            if not isinstance(item, tuple):
                continue
            meta, body = item[0], item[1]
            uid = flags = size = None
            for mm in FETCH_RE.finditer(meta):
                if mm.group(1):
                    uid = int(mm.group(1))
                elif mm.group(2) is not None:
                    flags = " ".join(sorted(f for f in mm.group(2).decode().split() if f != "\\Recent"))
                elif mm.group(3):
                    size = int(mm.group(3))
            out.write("%s\t%s\t%d\t%s\t%s\n" % (folder, hashlib.sha256(body).hexdigest(), len(body),
                                                 flags or "", uid))
            if size is not None and size != len(body):
                raise SystemExit("imaptool: %s UID %s: RFC822.SIZE %d but %d bytes" % (folder, uid, size,
                                                                                       len(body)))


def status(s, folder):
    typ, data = s.m.status(s.wire(folder), "(MESSAGES UIDNEXT UIDVALIDITY)")
    check(typ, data, "STATUS " + folder)
    d = dict(re.findall(rb"(MESSAGES|UIDNEXT|UIDVALIDITY) (\d+)", data[0]))
    return int(d[b"MESSAGES"]), int(d[b"UIDNEXT"]), int(d[b"UIDVALIDITY"])


def append(s, folder, raw, flags):
    typ, data = s.m.append(s.wire(folder), "(%s)" % flags if flags else None, None, raw)
    check(typ, data, "APPEND to " + folder)
    mm = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
    print("%s %s %d" % (mm.group(1).decode() if mm else "-", hashlib.sha256(raw).hexdigest(), len(raw)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--starttls", action="store_true")
    ap.add_argument("--ca")
    ap.add_argument("cmd")
    ap.add_argument("args", nargs="*")
    a = ap.parse_args()
    s = Src(a)
    c, v = a.cmd, a.args
    if c == "dump":
        dump(s, sys.stdout)
    elif c == "append":
        raw = fill_maildir.make_message(int(v[1]), int(v[2]))[0]
        append(s, v[0], raw, v[3] if len(v) > 3 else "")
    elif c == "append-many":
        uids = []
        for i in range(int(v[2]), int(v[2]) + int(v[3])):
            raw = fill_maildir.make_message(int(v[1]), i)[0]
            typ, data = s.m.append(s.wire(v[0]), None, None, raw)
            check(typ, data, "APPEND to " + v[0])
            mm = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
            uids.append(mm.group(1).decode() if mm else "-")
        print("%s:%s" % (uids[0], uids[-1]) if uids and "-" not in uids else "-")
    elif c == "append-file":
        with open(v[1], "rb") as fp:
            raw = fp.read()
        append(s, v[0], raw, v[2] if len(v) > 2 else "")
    elif c == "flags":
        s.select(v[0])
        op = "+FLAGS.SILENT" if v[2].startswith("+") else "-FLAGS.SILENT"
        typ, data = s.m.uid("STORE", v[1], op, "(%s)" % v[2][1:])
        check(typ, data, "UID STORE")
    elif c == "expunge":
        s.select(v[0])
        typ, data = s.m.uid("STORE", v[1], "+FLAGS.SILENT", "(\\Deleted)")
        check(typ, data, "UID STORE \\Deleted")
        typ, data = s.m.uid("EXPUNGE", v[1])
        check(typ, data, "UID EXPUNGE")
    elif c == "status":
        print(*status(s, v[0]))
    elif c == "create":
        check(*s.m.create(s.wire(v[0])), "CREATE")
    elif c == "delete":
        check(*s.m.delete(s.wire(v[0])), "DELETE")
    elif c == "rename":
        check(*s.m.rename(s.wire(v[0]), s.wire(v[1])), "RENAME")
    elif c == "recreate":
        old = status(s, v[0])[2]
        tmp = v[0] + "-tmp-%d" % os.getpid()
        check(*s.m.create(s.wire(tmp)), "CREATE")
        if s.select(v[0]) > 0:
            check(*s.m.copy("1:*", s.wire(tmp)), "COPY")
        s.m.close()
        check(*s.m.delete(s.wire(v[0])), "DELETE")
        check(*s.m.rename(s.wire(tmp), s.wire(v[0])), "RENAME")
        new = status(s, v[0])[2]
        print(old, new)
        if old == new:
            raise SystemExit("imaptool: the UIDVALIDITY of %s did not change" % v[0])
    elif c == "count":
        total = 0
        for f in ([v[0]] if v else s.folders()):
            typ, data = s.m.status(s.wire(f), "(MESSAGES)")
            check(typ, data, "STATUS")
            total += int(re.search(rb"MESSAGES (\d+)", data[0]).group(1))
        print(total)
    elif c == "capability":
        print(" ".join(s.m.capabilities))
    else:
        ap.error("unknown command " + c)
    try:
        s.m.logout()
    except Exception:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

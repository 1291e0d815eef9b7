#!/usr/bin/python3
"""mh_export.py: what a mailhub account holds, read back through the export API.

    mh_export.py --url BASE --token TOKEN [--account ID] [--db HUB.DB] > out.tsv
    mh_export.py --compare WANT.tsv GOT.tsv [--flags]

The first form pages through GET BASE/export?account=ID (docs/api.md), checks
that each message's bytes have the SHA-256 and the size its JSON line states,
and writes one line per message, sorted:
    folder  sha256  size  flags  gone  id
flags are sorted and space-separated; gone is 1 when the hub marks the
message removed at the source ("source_gone" in the message object; with
--db, read from the SQLite store when the API does not show it), 0 when not,
"?" when nothing tells.  Exit 1 if any message's bytes do not match.

--compare reads two such files (or imaptool.py dumps: folder sha256 size
flags uid) and compares the multisets of (folder, sha256), with --flags of
(folder, sha256, flags); it prints what is missing and what is extra, and
exits 0 when they are equal, 1 otherwise.
"""
import argparse
import hashlib
import json
import sqlite3
import sys
import urllib.request


def export(a):
    after, out, bad = 0, [], 0
    gone_db = {}
    if a.db:
        try:
            db = sqlite3.connect("file:%s?mode=ro" % a.db, uri=True, timeout=10)
            cols = [r[1] for r in db.execute("PRAGMA table_info(messages)")]
            if "source_gone" in cols:
                gone_db = dict(db.execute("SELECT id, source_gone FROM messages"))
            db.close()
        except sqlite3.Error:
            pass
    while True:
        q = "%s/export?after=%d&max_bytes=%d" % (a.url, after, 16 << 20)
        if a.account:
            q += "&account=%s" % a.account
        req = urllib.request.Request(q, headers={"Authorization": "Bearer " + a.token})
        with urllib.request.urlopen(req, timeout=120) as r:
            body = r.read()
            nxt = int(r.headers.get("Mailhub-Next-After", after))
            complete = r.headers.get("Mailhub-Complete") == "1"
        pos = 0
        while pos < len(body):
            nl = body.index(b"\n", pos)
            m = json.loads(body[pos:nl])
            size = int(m["size"])
            raw = body[nl + 1:nl + 1 + size]
            pos = nl + 1 + size + 1
            sha = hashlib.sha256(raw).hexdigest()
            if len(raw) != size or (m.get("sha256") and m["sha256"] != sha):
                print("mh_export: message %s: %d bytes, sha256 %s; its record says %d, %s" % (
                    m.get("id"), len(raw), sha, size, m.get("sha256")), file=sys.stderr)
                bad += 1
            flags = " ".join(sorted(f for f in (m.get("flags") or "").split() if f != "\\Recent"))
            if "source_gone" in m or "gone" in m:
                gone = "1" if m.get("source_gone", m.get("gone")) else "0"
            elif m.get("id") in gone_db:
                gone = "1" if gone_db[m["id"]] else "0"
            else:
                gone = "?"
            out.append("%s\t%s\t%d\t%s\t%s\t%s" % (m.get("folder"), sha, len(raw), flags, gone, m.get("id")))
        if complete or nxt == after:
            break
        after = nxt
    out.sort()
    sys.stdout.write("".join(line + "\n" for line in out))
    return 1 if bad else 0


def load(path, with_flags):
    keys = []
    for line in open(path, encoding="utf-8"):
        f = line.rstrip("\n").split("\t")
        if len(f) < 2:
            continue
        k = (f[0], f[1])
        if with_flags:
            k += (" ".join(sorted(f[3].split())) if len(f) > 3 else "",)
        keys.append(k)
    return keys


def compare(a):
    want, got = load(a.compare[0], a.flags), load(a.compare[1], a.flags)
    from collections import Counter
    cw, cg = Counter(want), Counter(got)
    missing, extra = cw - cg, cg - cw
    for k, n in sorted(missing.items())[:10]:
        print("missing %dx: %s" % (n, " | ".join(k)), file=sys.stderr)
    for k, n in sorted(extra.items())[:10]:
        print("extra %dx: %s" % (n, " | ".join(k)), file=sys.stderr)
    if missing or extra:
        print("%d wanted, %d got: %d missing, %d extra" % (len(want), len(got), sum(missing.values()),
                                                          sum(extra.values())), file=sys.stderr)
        return 1
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url")
    ap.add_argument("--token")
    ap.add_argument("--account")
    ap.add_argument("--db")
    ap.add_argument("--compare", nargs=2)
    ap.add_argument("--flags", action="store_true")
    a = ap.parse_args()
    if a.compare:
        return compare(a)
    if not a.url or not a.token:
        ap.error("--url and --token are required")
    return export(a)


if __name__ == "__main__":
    sys.exit(main())

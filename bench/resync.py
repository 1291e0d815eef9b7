#!/usr/bin/env python3
"""bench/resync.py: time one sync pass of a running mailhubd (a "warm" re-sync).

    bench/resync.py --api http://127.0.0.1:PORT --token-file DATA/admin.token \\
        --account NAME --events DATA/events.log --expect N --pid PID [--no-post]

It asks the daemon to sync the account now (POST /api/v1/accounts/{id}/sync)
and waits until the pass is done: a new account.synced line of the account in
the log notifier's events file, and the account holding N messages (the sum of
its folders' "messages" in GET /api/v1/accounts).  The events file is read
every 2 ms (from where it ended before the POST); GET /accounts only once that
line is there, so that the polling costs the daemon nothing while it works.

Printed on stdout, one line:  WALL CPU SCHED_CPU RSS_MB
  WALL       seconds from just before the POST to the poll that saw the line
             (and the count; if the count lags, to the GET that saw it)
  CPU        mailhubd's user+sys seconds over that interval, from
             /proc/PID/stat (clock ticks: 10 ms steps)
  SCHED_CPU  the same from /proc/PID/task/*/schedstat (nanoseconds, all threads)
  RSS_MB     VmRSS of mailhubd afterwards
and on stderr the threads that ran (schedstat, ms).  Everything slow (start-up,
finding the account id, reading the token) happens before the clock starts.
--no-post only waits (for a pass something else started).  Exit 1 on a timeout
or an HTTP error.  Python 3 standard library only.
"""
import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request


def stat_cpu(pid, hz):
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / hz  # utime, stime (fields 14, 15)


def sched_cpu(pid):
    """{tid: (comm, ns on CPU)} of every thread."""
    out = {}
    base = "/proc/%d/task" % pid
    for tid in os.listdir(base):
        try:
            with open("%s/%s/schedstat" % (base, tid)) as f:
                ns = int(f.read().split()[0])
            with open("%s/%s/comm" % (base, tid)) as f:
                comm = f.read().strip()
        except OSError:
            continue
        out[tid] = (comm, ns)
    return out


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    ap = argparse.ArgumentParser(description="time one sync pass of a running mailhubd")
    ap.add_argument("--api", required=True, help="http://127.0.0.1:PORT")
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--account", required=True, help="account name")
    ap.add_argument("--events", required=True, help="the log notifier's file")
    ap.add_argument("--expect", type=int, required=True, help="messages the account holds at the end")
    ap.add_argument("--pid", type=int, required=True, help="mailhubd's PID")
    ap.add_argument("--poll", type=float, default=2.0, help="poll interval, ms (default 2)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds (default 300)")
    ap.add_argument("--no-post", action="store_true", help="do not POST, only wait")
    a = ap.parse_args()

    hz = os.sysconf("SC_CLK_TCK")
    with open(a.token_file) as f:
        token = f.read().strip()
    hdrs = {"Authorization": "Bearer " + token}
    accounts_url = a.api.rstrip("/") + "/api/v1/accounts"

    def get_account():
        req = urllib.request.Request(accounts_url, headers=hdrs)
        with urllib.request.urlopen(req, timeout=30) as r:
            accts = json.load(r)["accounts"]
        for acc in accts:
            if acc["name"] == a.account:
                return acc
        sys.exit("resync: no account %r in GET /accounts" % a.account)

    def held(acc):
        return sum(f.get("messages", 0) for f in acc.get("folders") or [])

    acc = get_account()
    post = urllib.request.Request(
        "%s/%d/sync" % (accounts_url, acc["id"]), data=b"", method="POST", headers=hdrs
    )
    ev = open(a.events, "rb")
    ev.seek(0, os.SEEK_END)  # only lines written after this
    buf = b""
    poll = a.poll / 1000.0

    def synced_line():
        nonlocal buf
        chunk = ev.read()
        if not chunk:
            return False
        buf += chunk
        lines = buf.split(b"\n")
        buf = lines.pop()  # an unfinished line waits for its end
        for line in lines:
            if b'"account.synced"' not in line:
                continue
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("type") == "account.synced" and (e.get("data") or {}).get("account") == a.account:
                return True
        return False

    # ---- the timed interval starts here
    cpu0, sch0 = stat_cpu(a.pid, hz), sched_cpu(a.pid)
    t0 = time.perf_counter()
    if not a.no_post:
        try:
            with urllib.request.urlopen(post, timeout=30) as r:
                r.read()
        except urllib.error.HTTPError as e:
            sys.exit("resync: POST %s: %d %s" % (post.full_url, e.code, e.read().decode(errors="replace")))
    deadline = t0 + a.timeout
    seen = False
    n = -1
    while True:
        if not seen and synced_line():
            seen = True
        if seen:
            t1 = time.perf_counter()
            cpu1, sch1 = stat_cpu(a.pid, hz), sched_cpu(a.pid)
            n = held(get_account())  # the GET's own cost is outside [t0, t1]
            if n == a.expect:
                break
        if time.perf_counter() > deadline:
            sys.exit(
                "resync: no end of the pass after %.1f s (account.synced %s, %d messages, expected %d)"
                % (a.timeout, "seen" if seen else "not seen", n, a.expect)
            )
        time.sleep(poll)
    # ---- done
    sched = sum(ns for _, ns in sch1.values()) - sum(ns for _, ns in sch0.values())
    parts = []
    for tid, (comm, ns) in sorted(sch1.items(), key=lambda kv: int(kv[0])):
        d = ns - sch0.get(tid, (comm, 0))[1]
        if d >= 50000:
            parts.append("%s=%.1fms" % (comm, d / 1e6))
    print("    mailhubd threads (cpu): %s" % " ".join(parts), file=sys.stderr)
    print("%.4f %.2f %.4f %.1f" % (t1 - t0, cpu1 - cpu0, sched / 1e9, rss_mb(a.pid)))


if __name__ == "__main__":
    main()

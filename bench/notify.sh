#!/bin/sh
# bench/notify.sh: how fast a new message becomes a notification.  Not a test: it prints figures.
#
#   bench/notify.sh [BUILD_DIR]        (default: _build, as ./bootstrap.sh leaves it)
#   N=200 ACCOUNTS=1000 bench/notify.sh
#
# 1. Latency.  A private Dovecot (tests/peers/dovecot.sh) and mailhubd with an IMAP account linked
#    through the API (IDLE on INBOX) and a webhook notifier posting to a local receiver.  N messages
#    are APPENDed one at a time from another connection.  A plain IDLE client of our own on the same
#    mailbox times when Dovecot announces each message (`* N EXISTS`): Dovecot's own notification
#    delay (about 0.5 s in Dovecot 2.3's default build) is reported separately from the hub's
#    overhead = (webhook POST received) - (Dovecot announced it).  The hub's part includes the
#    fetch, parse, encryption, store commit, outbox commit, signing and the HTTP POST.
# 2. Throughput.  ACCOUNTS accounts (watched mbox files, so that no IMAP server limit gets in the
#    way) each receive one message at once; the receiver counts webhook POSTs: jobs/s from the first
#    append to the last POST, mailhubd's CPU seconds and peak RSS.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$ROOT/_build}
case $B in /*) ;; *) B=$(pwd)/$B ;; esac
PY=${MH_PYTHON:-/usr/bin/python3}
N=${N:-200}
ACCOUNTS=${ACCOUNTS:-1000}
MAILHUBD=$B/core/mailhubd
[ -x "$MAILHUBD" ] || { echo "bench/notify.sh: build first (./bootstrap.sh test, or make in $B)" >&2; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/mh-bench-notify.XXXXXX")
DPID=""
RXPID=""
cleanup() {
    [ -n "$DPID" ] && kill -TERM "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
    [ -n "$RXPID" ] && kill "$RXPID" 2>/dev/null
    "$ROOT/tests/peers/dovecot.sh" stop "$T/dovecot" >/dev/null 2>&1 || true
    rm -rf "$T"
}
trap cleanup EXIT INT TERM
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# A receiver that records when each POST arrived (time.time(), the event's subject or type).
cat >"$T/rx.py" <<'EOF'
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, log = int(sys.argv[1]), open(sys.argv[2], "a", buffering=1)
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        t = time.time()
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
        try:
            ev = json.loads(body)
            log.write("%.6f\t%s\t%s\n" % (t, ev.get("type"), ev.get("data", {}).get("subject", "")))
        except ValueError:
            log.write("%.6f\tbad\t\n" % t)
    def log_message(self, *a): pass
ThreadingHTTPServer.request_queue_size = 1024
s = ThreadingHTTPServer(("127.0.0.1", port), H)
print("ready", flush=True)
s.serve_forever()
EOF
RX_PORT=$(free_port)
API_PORT=$(free_port)
"$PY" "$T/rx.py" "$RX_PORT" "$T/rx.log" >"$T/rx.out" 2>&1 &
RXPID=$!
SECRET="whsec_$(printf 'bench-notify-secret-0123456789ab' | base64 | tr -d '\n')"

# ------------------------------------------------------------------ 1. latency
"$ROOT/tests/peers/dovecot.sh" start "$T/dovecot" >"$T/dovecot.env"
. "$T/dovecot.env"
mkdir -p "$T/data"
cat >"$T/mailhub.yaml" <<YAML
daemon: {data_dir: $T/data, log_level: warn}
plugins: {path: [$B/plugins]}
store: {plugin: sqlite}
listeners: {api: {address: 127.0.0.1, port: $API_PORT}}
notifiers:
  hook:
    plugin: webhook
    events: [mail.received]
    options: {url: "http://127.0.0.1:$RX_PORT/", secret: "$SECRET", allow_private: true}
YAML
# A proxy between the hub and Dovecot that notes when Dovecot's "* N EXISTS" passes to the hub: the
# hub's overhead is measured from the moment the hub's own connection is told, not another client's.
cat >"$T/proxy.py" <<'EOF'
import socket, sys, threading, time
listen, target, log = int(sys.argv[1]), int(sys.argv[2]), open(sys.argv[3], "a", buffering=1)
def pump(a, b, watch):
    buf = b""
    while True:
        d = a.recv(65536)
        if not d: break
        if watch:
            t = time.time()
            buf = (buf + d)[-4096:]
            while b"\r\n" in buf:
                line, buf = buf.split(b"\r\n", 1)
                p = line.split()
                if len(p) == 3 and p[0] == b"*" and p[2] == b"EXISTS":
                    log.write("%.6f\t%d\n" % (t, int(p[1])))
        b.sendall(d)
    b.close()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", listen)); s.listen(64); print("ready", flush=True)
while True:
    c, _ = s.accept()
    u = socket.create_connection(("127.0.0.1", target))
    for x in (c, u): x.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=pump, args=(c, u, False), daemon=True).start()
    threading.Thread(target=pump, args=(u, c, True), daemon=True).start()
EOF
PROXY_PORT=$(free_port)
"$PY" "$T/proxy.py" "$PROXY_PORT" "$DOVECOT_IMAP_PORT" "$T/exists.log" >"$T/proxy.out" 2>&1 &
PXPID=$!
"$MAILHUBD" -c "$T/mailhub.yaml" 2>"$T/hub.log" &
DPID=$!
BASE="http://127.0.0.1:$API_PORT/api/v1"
for i in $(seq 100); do curl -sf -o /dev/null "$BASE/health" && break; sleep 0.1; done
ADMIN=$(cat "$T/data/admin.token")
curl -sf -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
    -d "{\"name\":\"dovecot\",\"provider\":\"imap\",\"settings\":{\"host\":\"127.0.0.1\",\"port\":$PROXY_PORT,\"tls\":\"none\",\"username\":\"alice\",\"password\":\"alice-secret-1\"}}" \
    "$BASE/accounts" >/dev/null
for i in $(seq 300); do
    curl -sf -H "Authorization: Bearer $ADMIN" "$BASE/accounts" | grep -q '"state": *"idle"' && break
    sleep 0.1
done

"$PY" - "$DOVECOT_IMAP_PORT" "$N" "$T/rx.log" "$T/exists.log" <<'EOF'
import imaplib, socket, sys, threading, time
port, n, rxlog, exlog = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]

def first_exists(count):
    """When the hub's connection was first told that INBOX holds `count` messages."""
    try:
        for line in open(exlog):
            t, c = line.split("\t")
            if int(c) >= count: return float(t)
    except FileNotFoundError: pass
    return None

m = imaplib.IMAP4("127.0.0.1", port)
m.login("alice", "alice-secret-1")

def received(subject):
    try:
        for line in open(rxlog):
            t, typ, subj = line.rstrip("\n").split("\t", 2)
            if subj == subject: return float(t)
    except FileNotFoundError: pass
    return None

rows = []
typ, data = m.select("INBOX")
count = int(data[0])
for i in range(n):
    subject = "bench-%d-%d" % (i, time.time_ns())
    msg = ("From: Bench <bench@example.com>\r\nTo: alice@example.com\r\nSubject: %s\r\n"
           "Message-ID: <%s@bench>\r\n\r\nbody %d\r\n" % (subject, subject, i)).encode()
    count += 1
    t0 = time.time()
    m.append("INBOX", None, None, msg)
    deadline = t0 + 10
    tw = te = None
    while time.time() < deadline:
        tw = received(subject)
        te = first_exists(count)
        if tw and te: break
        time.sleep(0.002)
    if tw is None or te is None:
        print("message %d: no notification within 10 s" % i); continue
    rows.append((te - t0, tw - te, tw - t0))

def pct(v, p):
    v = sorted(v); k = min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1)))); return v[k]
if rows:
    for name, idx in (("Dovecot's notification delay (APPEND -> EXISTS to the hub)", 0),
                      ("hub overhead (EXISTS -> webhook POST received)", 1),
                      ("total (APPEND -> webhook POST)", 2)):
        v = [r[idx] * 1000 for r in rows]
        print("%-52s p50 %8.2f ms   p99 %8.2f ms   max %8.2f ms" % (name, pct(v, 50), pct(v, 99), max(v)))
    print("messages: %d of %d notified" % (len(rows), n))
EOF
kill -TERM "$DPID"; wait "$DPID" 2>/dev/null || true; DPID=""
kill "$PXPID" 2>/dev/null || true
"$ROOT/tests/peers/dovecot.sh" stop "$T/dovecot" >/dev/null 2>&1 || true

# --------------------------------------------------------------- 2. throughput
rm -rf "$T/data" "$T/mbox"; mkdir -p "$T/data" "$T/mbox"
SKIP=$(wc -l <"$T/rx.log" 2>/dev/null || echo 0)
{
    printf 'daemon: {data_dir: %s, log_level: warn, workers: 4}\nplugins: {path: [%s]}\nstore: {plugin: sqlite}\n' "$T/data" "$B/plugins"
    printf 'notifiers:\n  hook:\n    plugin: webhook\n    events: [mail.received]\n'
    printf '    options: {url: "http://127.0.0.1:%s/", secret: "%s", allow_private: true}\nproviders:\n' "$RX_PORT" "$SECRET"
    i=0
    while [ $i -lt "$ACCOUNTS" ]; do
        : >"$T/mbox/a$i.mbox"
        printf '  a%d: {plugin: mbox, user: u%d, options: {path: %s/mbox/a%d.mbox, watch: true, poll_interval: 200ms}}\n' \
            $i $((i % 50)) "$T" $i
        i=$((i + 1))
    done
} >"$T/many.yaml"
"$MAILHUBD" -c "$T/many.yaml" 2>"$T/many.log" &
DPID=$!
sleep 3
"$PY" - "$T/mbox" "$ACCOUNTS" "$T/rx.log" "$DPID" "$SKIP" <<'EOF'
import os, sys, time
d, n, rxlog, pid, skip = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
def cpu():
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
c0 = cpu()
t0 = time.time()
for i in range(n):
    with open("%s/a%d.mbox" % (d, i), "a") as f:
        f.write("From x@example.com Mon Nov 23 09:15:00 2026\nFrom: X <x@example.com>\nSubject: many %d\n"
                "Message-ID: <many%d@example.com>\n\nbody\n\n" % (i, i))
got, last = 0, t0
while time.time() - t0 < 120:
    try: got = sum(1 for _ in open(rxlog)) - skip
    except FileNotFoundError: got = 0
    if got >= n: break
    time.sleep(0.05)
try:
    last = max(float(l.split("\t")[0]) for l in list(open(rxlog))[skip:])
except (FileNotFoundError, ValueError): pass
c1 = cpu()
rss = [l for l in open("/proc/%d/status" % pid) if l.startswith("VmHWM")][0].split()[1]
el = last - t0
print("%d accounts, one new message each: %d webhooks in %.2f s (%.0f jobs/s, includes the 200 ms mbox poll), "
      "mailhubd CPU %.2f s, peak RSS %d MB" % (n, got, el, got / el if el > 0 else 0, c1 - c0, int(rss) // 1024))
EOF

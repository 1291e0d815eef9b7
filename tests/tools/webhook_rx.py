#!/usr/bin/python3
"""A webhook receiver for the tests that checks Standard Webhooks signatures itself.

    webhook_rx.py --port PORT --log FILE --secret whsec_... [--secret whsec_...] [--fail PATH=N]...

Listens on 127.0.0.1:PORT.  For every POST it appends one JSON line to FILE:
    {"t", "path", "id", "timestamp", "status", "attempt", "sig_valid", "sig_matched", "sig_count",
     "fresh", "content_type", "body"}
where sig_valid is true when at least one "v1,<base64>" signature in the
webhook-signature header equals HMAC-SHA256(key, id "." timestamp "." body)
for one of the --secret keys (computed here with Python's hmac, independently
of the C code), sig_matched lists the indexes of the secrets that matched
(rotation: both), fresh says the timestamp is within 5 minutes of now, and
attempt counts deliveries of the same webhook-id to the same path.

--open PATH accepts unsigned requests on PATH (to stand in for an HTTP SMS gateway).
--fail PATH=N answers 500 to the first N attempts of each webhook-id on PATH,
then 200 (--retry-after PATH=S adds "Retry-After: S" to those 500s); every other request gets 200 when the signature is valid, else 401.
Writes "ready" to stdout once listening and its PID to FILE.pid.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def key_of(secret):
    return base64.b64decode(secret[6:] if secret.startswith("whsec_") else secret)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--secret", action="append", required=True)
    ap.add_argument("--fail", action="append", default=[])
    ap.add_argument("--retry-after", action="append", default=[], help="PATH=SECONDS: sent with the 500s")
    ap.add_argument("--open", action="append", default=[], help="PATH: no signature needed (an SMS gateway)")
    a = ap.parse_args()
    keys = [key_of(s) for s in a.secret]
    fail = {}
    for f in a.fail:
        p, n = f.rsplit("=", 1)
        fail[p] = int(n)
    retry_after = dict(r.rsplit("=", 1) for r in a.retry_after)
    attempts = {}
    lock = threading.Lock()

    class H(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            wid = self.headers.get("webhook-id", "")
            ts = self.headers.get("webhook-timestamp", "")
            sigs = self.headers.get("webhook-signature", "").split()
            matched = []
            for i, k in enumerate(keys):
                want = "v1," + base64.b64encode(
                    hmac.new(k, wid.encode() + b"." + ts.encode() + b"." + body, hashlib.sha256).digest()).decode()
                if any(hmac.compare_digest(want, s) for s in sigs):
                    matched.append(i)
            try:
                fresh = abs(time.time() - int(ts)) < 300
            except ValueError:
                fresh = False
            with lock:
                key = (self.path, wid)
                attempts[key] = attempts.get(key, 0) + 1
                attempt = attempts[key]
                if not matched and self.path not in a.open:
                    status = 401
                elif attempt <= fail.get(self.path, 0):
                    status = 500
                else:
                    status = 200
                rec = {"t": time.time(), "path": self.path, "id": wid, "timestamp": ts, "status": status, "attempt": attempt,
                       "sig_valid": bool(matched), "sig_matched": matched, "sig_count": len(sigs),
                       "fresh": fresh, "content_type": self.headers.get("Content-Type", ""),
                       "authorization": self.headers.get("Authorization", ""),
                       "body": body.decode("utf-8", "replace")}
                with open(a.log, "a") as f:
                    f.write(json.dumps(rec) + "\n")
            self.send_response(status)
            if status == 500 and self.path in retry_after:
                self.send_header("Retry-After", retry_after[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()

    srv = ThreadingHTTPServer(("127.0.0.1", a.port), H)
    with open(a.log + ".pid", "w") as f:
        f.write("%d\n" % os.getpid())
    print("ready", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()

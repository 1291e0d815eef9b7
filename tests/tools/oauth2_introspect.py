#!/usr/bin/env python3
"""tests/tools/oauth2_introspect.py: an OAuth 2.0 token introspection endpoint
(RFC 7662) on 127.0.0.1, standing in for the identity provider (Google,
Microsoft) that issues a mailbox's access tokens, which cannot run here.  A
real Dovecot (tests/peers/dovecot.sh --oauth2 URL) asks it whether the bearer
token a client sent with SASL XOAUTH2 or OAUTHBEARER is valid: Dovecot's
oauth2 passdb with introspection_mode = post sends "token=<token>" in a form
POST; the answer is {"active": true, "username": NAME} for a known token,
{"active": false} otherwise.

    oauth2_introspect.py --token TOKEN:USER [--token ...] --port-file FILE [--log FILE]

Every request is logged (one line: the token's first 6 characters and the
verdict), so a test can tell that the server really asked.  Python 3
standard library only.
"""
import argparse
import http.server
import json
import sys
import urllib.parse


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--token", action="append", default=[], help="TOKEN:USER")
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log")
    a = ap.parse_args()
    tokens = dict(t.split(":", 1)[0:2] for t in a.token)
    log = open(a.log, "a", buffering=1) if a.log else sys.stderr

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            pass

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            form = urllib.parse.parse_qs(self.rfile.read(n).decode("utf-8", "replace"))
            token = (form.get("token") or [""])[0]
            user = tokens.get(token)
            body = {"active": True, "username": user} if user else {"active": False}
            log.write("%s %s %s\n" % (self.path, token[:6], "active " + user if user else "inactive"))
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    with open(a.port_file + ".tmp", "w") as f:
        f.write("%d\n" % srv.server_address[1])
    import os
    os.rename(a.port_file + ".tmp", a.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""A private SMTP server for the tests: aiosmtpd with STARTTLS and AUTH (PLAIN/LOGIN).

    smtpd.py --dir DIR --port PORT --cert CERT --key KEY --user NAME:PASSWORD [--implicit-tls | --plain]

Listens on 127.0.0.1:PORT.  By default it offers STARTTLS and refuses AUTH
(and so mail, since auth is required) before it; --implicit-tls speaks TLS
from the first byte (SMTPS); --plain offers neither TLS nor AUTH (to test
that a client requiring STARTTLS refuses it).  Each accepted
message is written to DIR/NNNN.eml exactly as received, preceded by
X-MailFrom, X-RcptTo, X-Auth-User and X-TLS headers so tests can assert who
sent what over which channel.  Writes its PID to DIR/smtpd.pid and prints
"ready" once listening.  Stop it with SIGTERM (by that PID).
"""
import argparse
import asyncio
import os
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Saver:
    def __init__(self, directory):
        self.dir = directory
        self.n = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.n += 1
            n = self.n
        user = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else ""
        tls = "yes" if session.ssl is not None or server.transport.get_extra_info("ssl_object") else "no"
        head = "X-MailFrom: %s\r\nX-RcptTo: %s\r\nX-Auth-User: %s\r\nX-TLS: %s\r\n" % (
            envelope.mail_from, ", ".join(envelope.rcpt_tos), user, tls)
        tmp = os.path.join(self.dir, ".%04d.tmp" % n)
        with open(tmp, "wb") as f:
            f.write(head.encode())
            f.write(envelope.original_content or envelope.content)
        os.rename(tmp, os.path.join(self.dir, "%04d.eml" % n))
        return "250 OK stored as %04d" % n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--user", required=True, help="NAME:PASSWORD")
    ap.add_argument("--implicit-tls", action="store_true")
    ap.add_argument("--plain", action="store_true")
    a = ap.parse_args()
    name, password = a.user.split(":", 1)
    os.makedirs(a.dir, exist_ok=True)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == name
              and auth_data.password.decode() == password)
        return AuthResult(success=ok, auth_data=auth_data if ok else None)

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(a.cert, a.key)
    kw = dict(hostname="127.0.0.1", port=a.port, auth_required=True, authenticator=authenticator,
              server_hostname="mailhub-test-smtpd")
    if a.plain:
        kw.update(auth_required=False, auth_require_tls=False)
    elif a.implicit_tls:
        kw.update(ssl_context=ctx, auth_require_tls=False)
    else:
        kw.update(tls_context=ctx, require_starttls=True, auth_require_tls=True)
    ctl = Controller(Saver(a.dir), **kw)
    ctl.start()
    with open(os.path.join(a.dir, "smtpd.pid"), "w") as f:
        f.write("%d\n" % os.getpid())
    print("ready", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    while not done.wait(0.2):
        pass
    ctl.stop()


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Standard Webhooks signatures computed independently of the C code (hmac + base64 only).

    webhook_vector.py SECRET MSG_ID TIMESTAMP BODY_HEX   -> prints v1,<base64>
    webhook_vector.py --self-check                        -> checks the published example, exit 0/1

SECRET is "whsec_<base64>"; BODY_HEX is the body's bytes in hex (so any bytes survive argv).
"""
import base64
import hashlib
import hmac
import sys


def sign(secret, msg_id, timestamp, body):
    key = base64.b64decode(secret[len("whsec_"):] if secret.startswith("whsec_") else secret)
    mac = hmac.new(key, b"%s.%d.%s" % (msg_id.encode(), int(timestamp), body), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


# The example from the Standard Webhooks specification (standard-webhooks/standard-webhooks, spec).
PUBLISHED = ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
             b'{"test": 2432232314}', "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")

if __name__ == "__main__":
    if sys.argv[1:] == ["--self-check"]:
        got = sign(*PUBLISHED[:4])
        print(got)
        sys.exit(0 if got == PUBLISHED[4] else 1)
    secret, msg_id, ts, body_hex = sys.argv[1:5]
    print(sign(secret, msg_id, ts, bytes.fromhex(body_hex)))

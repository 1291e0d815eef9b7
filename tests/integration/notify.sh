#!/bin/sh
# The notifiers against real peers: the real mailhubd watches an mbox file; a
# message appended to it yields mail.received, which the sms, email and webhook
# notifiers deliver to Kannel (bearerbox + smsbox + fakesmsc), aiosmtpd (STARTTLS
# + AUTH) and a receiver that checks the Standard Webhooks signatures itself.
# Also: a webhook answering 500 twice is delivered on the third attempt, one
# answering 500 + Retry-After is not retried earlier; a webhook to 127.0.0.1
# without allow_private is refused with a clear log line; smtps:// works and a
# server without STARTTLS gets nothing; {phone} and a missing `to` follow the
# user's bound number and address (set with mailhubctl), a changed number gets
# the next SMS; Kannel's smsbox down for a while -> the SMS arrives once it is
# back; the daemon restarted with an SMS pending -> delivered after the start
# (the core's durable outbox).
# Peers missing: exit 77 (skip), unless MH_REQUIRE_PEERS=1 (then fail).
. "$(dirname "$0")/lib.sh"

PY=${MH_PYTHON:-/usr/bin/python3}
PLUG="$top_builddir/plugins"
KANNEL="$top_srcdir/tests/peers/kannel.sh"

skip() {
    if [ "${MH_REQUIRE_PEERS:-0}" = 1 ]; then
        echo "notify.sh: $* and MH_REQUIRE_PEERS=1"
        exit 1
    fi
    echo "notify.sh: $*: skipping"
    exit 77
}
command -v openssl >/dev/null 2>&1 || skip "openssl is not installed"
"$PY" -c 'import aiosmtpd' 2>/dev/null || skip "python3-aiosmtpd is not installed"

SMTPD_PID="" RX_PID="" SMTPS_PID="" PLAIN_PID=""
stop_peers() {
    [ -n "$SMTPD_PID" ] && kill "$SMTPD_PID" 2>/dev/null
    [ -n "$SMTPS_PID" ] && kill "$SMTPS_PID" 2>/dev/null
    [ -n "$PLAIN_PID" ] && kill "$PLAIN_PID" 2>/dev/null
    [ -n "$RX_PID" ] && kill "$RX_PID" 2>/dev/null
    [ -f "$T/kannel/kannel.env" ] && "$KANNEL" stop "$T/kannel" >/dev/null 2>&1
    SMTPD_PID="" RX_PID="" SMTPS_PID="" PLAIN_PID=""
}
trap 'stop_peers; cleanup' EXIT

# ---------------------------------------------------------------- peers
rc=0
"$KANNEL" start "$T/kannel" >"$T/kannel.env" 2>"$T/kannel.err" || rc=$?
if [ "$rc" -eq 77 ]; then skip "$(cat "$T/kannel.err")"; fi
[ "$rc" -eq 0 ] || { cat "$T/kannel.err"; echo "not ok - Kannel did not start"; exit 1; }
. "$T/kannel.env"

ports=$("$PY" - <<'EOF'
import random, socket
ports, start = [], random.SystemRandom().randrange(4000)
for k in range(4000):
    p = 28000 + (start + k) % 4000
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    ports.append(p)
    if len(ports) == 5:
        break
print(*ports)
EOF
)
set -- $ports
SMTP_PORT=$1 RX_PORT=$2 SMTPS_PORT=$3 PLAIN_PORT=$4 API_PORT=$5

# a throw-away CA and a certificate for 127.0.0.1 signed by it
mkdir -p "$T/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=mailhub notify test CA" -keyout "$T/tls/ca.key" -out "$T/tls/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" >/dev/null 2>&1
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$T/tls/key.pem" -out "$T/tls/srv.csr" >/dev/null 2>&1
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$T/tls/ext"
openssl x509 -req -in "$T/tls/srv.csr" -CA "$T/tls/ca.pem" -CAkey "$T/tls/ca.key" -CAcreateserial -days 2 \
    -extfile "$T/tls/ext" -out "$T/tls/cert.pem" >/dev/null 2>&1 || { echo "not ok - openssl"; exit 1; }

export MH_SMTP_PASSWORD="smtp-Pass-7741" MH_SMS_PASSWORD="$KANNEL_PASSWORD"
export MH_WH_SECRET="whsec_bWFpbGh1Yi1ub3RpZnktdGVzdC1zZWNyZXQtMQ=="
export MH_GW_TOKEN="gw-Token-5521"
export MH_WH_OLD="whsec_b2xkLXNlY3JldC1iZWluZy1yb3RhdGVkLW91dA=="

"$PY" "$top_srcdir/tests/peers/smtpd.py" --dir "$T/smtp" --port "$SMTP_PORT" --cert "$T/tls/cert.pem" \
    --key "$T/tls/key.pem" --user "notifier:$MH_SMTP_PASSWORD" >"$T/smtpd.out" 2>"$T/smtpd.err" &
SMTPD_PID=$!
"$PY" "$top_srcdir/tests/peers/smtpd.py" --dir "$T/smtps" --port "$SMTPS_PORT" --cert "$T/tls/cert.pem" \
    --key "$T/tls/key.pem" --user "notifier:$MH_SMTP_PASSWORD" --implicit-tls >"$T/smtps.out" 2>"$T/smtps.err" &
SMTPS_PID=$!
"$PY" "$top_srcdir/tests/peers/smtpd.py" --dir "$T/plain" --port "$PLAIN_PORT" --cert "$T/tls/cert.pem" \
    --key "$T/tls/key.pem" --user "notifier:$MH_SMTP_PASSWORD" --plain >"$T/plain.out" 2>"$T/plain.err" &
PLAIN_PID=$!
"$PY" "$top_srcdir/tests/tools/webhook_rx.py" --port "$RX_PORT" --log "$T/hooks.jsonl" \
    --secret "$MH_WH_SECRET" --secret "$MH_WH_OLD" --fail /flaky=2 \
    --fail /later=1 --retry-after /later=3 --open /gw/send >"$T/rx.out" 2>"$T/rx.err" &
RX_PID=$!
check "aiosmtpd (STARTTLS + AUTH) is ready" wait_for 15 grep -q ready "$T/smtpd.out"
check "aiosmtpd (implicit TLS + AUTH) and a plain one are ready" \
    wait_for 15 sh -c "grep -q ready '$T/smtps.out' && grep -q ready '$T/plain.out'"
check "the webhook receiver is ready" wait_for 15 grep -q ready "$T/rx.out"

# ---------------------------------------------------------------- daemon
msg() { # msg N FROM SUBJECT
    printf 'From sender%s@example.com Mon Nov 23 09:15:00 2026\n' "$1"
    printf 'From: %s\nTo: alice@example.org\nSubject: %s\nMessage-ID: <n%s@example.com>\n' "$2" "$3" "$1"
    printf 'Content-Type: text/plain; charset=UTF-8\n\nbody %s\n\n' "$1"
}
msg 1 "Old Sender <old@example.com>" "already there" >"$T/inbox.mbox"

cat >"$T/mailhub.yaml" <<YAML
daemon:
  data_dir: $T/data
  log_level: info
  shutdown_timeout: 5s
  public_url: http://127.0.0.1:$API_PORT
plugins:
  path: [$PLUG]
listeners:
  api: {address: 127.0.0.1, port: $API_PORT}
store:
  plugin: sqlite
  options: {path: hub.db}
providers:
  inbox:
    plugin: mbox
    user: alice
    options: {path: $T/inbox.mbox, watch: true, poll_interval: 200ms}
notifiers:
  audit:
    plugin: log
    options: {path: $T/events.log}
  sms:
    plugin: sms
    events: [mail.received]
    options:
      url: $KANNEL_SENDSMS_URL
      username: $KANNEL_USER
      password: \${MH_SMS_PASSWORD}
      from: "$KANNEL_FROM"
      to: "+86 138 0013 8000"
  sms_badpw:
    plugin: sms
    events: [mail.received]
    options: {url: "$KANNEL_SENDSMS_URL", username: $KANNEL_USER, password: wrong, to: "+8613800138000"}
  sms_gw:
    plugin: sms
    events: [mail.received]
    options:
      mode: http
      url: http://127.0.0.1:$RX_PORT/gw/send
      body_format: json
      body: '{"phone":"{to}","sign":"mailhub","text":"{text}","coding":"{coding}"}'
      to: "+86 138 0013 8000"
      auth_header: "Authorization: Bearer \${MH_GW_TOKEN}"
  sms_bound:
    plugin: sms
    events: [mail.received]
    options:
      url: $KANNEL_SENDSMS_URL
      username: $KANNEL_USER
      password: \${MH_SMS_PASSWORD}
      template: "bound: {subject}"
  mail_user:
    plugin: email
    events: [mail.received]
    options:
      url: smtp://127.0.0.1:$SMTP_PORT
      username: notifier
      password: \${MH_SMTP_PASSWORD}
      from: "mailhub <hub@example.org>"
      ca_file: $T/tls/ca.pem
  mail:
    plugin: email
    events: [mail.received]
    options:
      url: smtp://127.0.0.1:$SMTP_PORT
      username: notifier
      password: \${MH_SMTP_PASSWORD}
      from: "mailhub <hub@example.org>"
      to: ["Alice <alice@example.org>"]
      ca_file: $T/tls/ca.pem
      link_base: "https://hub.example/#/m/"
      timeout: 20s
  mail_tls:
    plugin: email
    events: [mail.received]
    options:
      url: smtps://127.0.0.1:$SMTPS_PORT
      username: notifier
      password: \${MH_SMTP_PASSWORD}
      from: "邮件中心 <hub@example.org>"
      to: [carol@example.org, dave@example.org]
      ca_file: $T/tls/ca.pem
  mail_plain:
    plugin: email
    events: [mail.received]
    options:
      url: smtp://127.0.0.1:$PLAIN_PORT
      from: hub@example.org
      to: [eve@example.org]
  hook:
    plugin: webhook
    events: ["mail.*"]
    options:
      url: http://127.0.0.1:$RX_PORT/ok
      secret: \${MH_WH_SECRET}
      secret_previous: \${MH_WH_OLD}
      allow_private: true
      headers: ["X-Test: notify"]
  flaky:
    plugin: webhook
    events: [mail.received]
    options: {url: "http://127.0.0.1:$RX_PORT/flaky", secret: "\${MH_WH_SECRET}", allow_private: true}
  later:
    plugin: webhook
    events: [mail.received]
    options: {url: "http://127.0.0.1:$RX_PORT/later", secret: "\${MH_WH_SECRET}", allow_private: true}
  ssrf:
    plugin: webhook
    events: [mail.received]
    options: {url: "http://127.0.0.1:$RX_PORT/ssrf", secret: "\${MH_WH_SECRET}"}
YAML

check "--check-config accepts the three notifiers" "$MAILHUBD" --check-config "$T/mailhub.yaml"
check "the example config/notifiers.yaml is valid" env MAILHUB_SMS_PASSWORD=x MAILHUB_SMTP_PASSWORD=y \
    MAILHUB_WEBHOOK_SECRET=whsec_AAECAwQ= "$MAILHUBD" -P "$PLUG" --check-config "$top_srcdir/config/notifiers.yaml"
"$MAILHUBD" -c "$T/mailhub.yaml" --list-plugins >"$T/list.out" 2>/dev/null
check "--list-plugins shows sms, email and webhook" \
    sh -c "grep -Eq '^notifier +sms ' '$T/list.out' && grep -Eq '^notifier +email ' '$T/list.out' && grep -Eq '^notifier +webhook ' '$T/list.out'"

"$MAILHUBD" -c "$T/mailhub.yaml" 2>"$T/stderr" &
DAEMON_PID=$!
has() { grep -q "\"type\":\"$1\"" "$T/events.log" 2>/dev/null; }
check "the initial import finishes" wait_for 20 has account.synced
CTL() { "$top_builddir/core/mailhubctl" --url "http://127.0.0.1:$API_PORT" --token-file "$T/data/admin.token" -q "$@"; }
bind() { # bind PHONE: alice's phone number and notification address
    CTL user set alice --phone "$1" --email alice.user@example.org >/dev/null 2>&1 ||
        CTL user add alice --phone "$1" --email alice.user@example.org </dev/null >/dev/null 2>&1
}

msg 2 "陈小明 <chen@example.cn>" "季度报告 Q4" >>"$T/inbox.mbox"
check "the appended message yields mail.received" wait_for 20 has mail.received

# fakesmsc's lines as JSON: [{"from","to","text"}], UCS-2 decoded as in PEERS.md
sms_json() {
    "$PY" - "$KANNEL_OUT" <<'EOF'
import json, re, sys, urllib.parse
out = []
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    m = re.search(r"Got message \d+: <(\S+) (\S+) (text|ucs-2) (.*)>$", line.rstrip("\n"))
    if not m:
        continue
    frm, to, kind, text = m.groups()
    if kind == "ucs-2":
        text = urllib.parse.unquote_to_bytes(text.replace("+", "%20")).decode("utf-16-be")
    out.append({"from": frm, "to": to, "kind": kind, "text": text})
print(json.dumps(out, ensure_ascii=False))
EOF
}
sms_count() { # sms_count TEXT: messages with exactly this text
    sms_json | "$PY" -c 'import json, sys; print(sum(m["text"] == sys.argv[1] for m in json.load(sys.stdin)))' "$1"
}
sms_has() { [ "$(sms_count "$1")" -ge 1 ]; }

ZH_TEXT="[inbox] 陈小明: 季度报告 Q4"
check "Kannel's fake SMSC received the SMS, Chinese text intact" wait_for 15 sms_has "$ZH_TEXT"
sms_json >"$T/sms.json"
check "number, sender and coding are right" "$PY" -c 'import json, sys
m = [x for x in json.load(open(sys.argv[1])) if x["text"] == sys.argv[2]]
assert len(m) == 1, m
assert m[0]["to"] == "+8613800138000" and m[0]["from"] == "12345" and m[0]["kind"] == "ucs-2", m' \
    "$T/sms.json" "$ZH_TEXT"

# Kannel calls the job's dlr-url back with its delivery reports (the fake SMSC: 8 accepted, then 1 delivered)
sms_report() {
    "$PY" -c 'import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute("SELECT detail FROM jobs WHERE notifier = ? AND state = ?", ("sms", "delivered")).fetchall()
sys.exit(0 if rows and all("report: delivered to the phone (1)" in (r[0] or "") for r in rows) else 1)' "$T/data/hub.db"
}
check "Kannel's delivery report comes back to the hub and is recorded on the job" wait_for 15 sms_report
check "... and is logged" grep -q "delivery report for notification #[0-9]*: accepted by the SMSC (8)" "$T/stderr"
forged() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$API_PORT/api/v1/reports/1?t=00000000000000000000000000000000&status=1"; }
forged_refused() { [ "$(forged)" = 404 ]; }
check "a report without the job's token is refused (404)" forged_refused
check "Kannel refusing a wrong password (403) is a permanent failure, logged" \
    grep -q 'notifier/sms_badpw.*refused the SMS to +8613800138000 permanently: HTTP 403' "$T/stderr"
check "the generic HTTP gateway got a JSON request with the auth header" wait_for 10 sh -c "grep -q '/gw/send' '$T/hooks.jsonl'"
check "... whose body is valid JSON with the number and the UCS-2 text" "$PY" - "$T/hooks.jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"/gw/send"' in l]
assert len(rows) == 1, rows
r = rows[0]
assert r["content_type"] == "application/json" and r["authorization"] == "Bearer gw-Token-5521", r
body = json.loads(r["body"])
assert body == {"phone": "+8613800138000", "sign": "mailhub", "text": "[inbox] 陈小明: 季度报告 Q4", "coding": "ucs2"}, body
EOF

# ---------------------------------------------------------------- e-mail
check "aiosmtpd received the notification e-mail" wait_for 20 test -f "$T/smtp/0001.eml"
check "the e-mail is well formed (parsed with Python's email package)" "$PY" - "$T/smtp/0001.eml" <<'EOF'
import email, email.policy, email.utils, re, sys
raw = open(sys.argv[1], "rb").read()
head = raw.split(b"\r\n\r\n", 1)[0]
assert all(b < 128 for b in head), "a header is not 7-bit"
assert all(len(l) <= 998 for l in raw.split(b"\r\n")), "a line is over 998 octets"
m = email.message_from_bytes(raw, policy=email.policy.default)
assert m["X-TLS"] == "yes", "not sent over STARTTLS"
assert m["X-Auth-User"] == "notifier", m["X-Auth-User"]
assert m["X-MailFrom"] == "hub@example.org", m["X-MailFrom"]
assert m["X-RcptTo"] == "alice@example.org", m["X-RcptTo"]
assert str(m["Subject"]) == "[inbox] 陈小明: 季度报告 Q4", str(m["Subject"])
assert m["From"].addresses[0].addr_spec == "hub@example.org" and m["From"].addresses[0].display_name == "mailhub"
assert m["To"].addresses[0].addr_spec == "alice@example.org"
assert email.utils.parsedate_to_datetime(m["Date"]) is not None
assert re.fullmatch(r"<evt_[0-9a-f]+\.notify@example\.org>", m["Message-ID"]), m["Message-ID"]
assert m["MIME-Version"] == "1.0"
assert m.get_content_type() == "text/plain" and m.get_content_charset() == "utf-8"
assert m["Content-Transfer-Encoding"] == "quoted-printable"
for h in ("Date", "From", "To", "Subject", "Message-ID"):
    assert len(m.get_all(h)) == 1, h
body = m.get_content()
for want in ("From:    陈小明 <chen@example.cn>", "Subject: 季度报告 Q4", "Mailbox: inbox", "Folder:  INBOX"):
    assert want in body, (want, body)
assert re.search(r"Open:    https://hub\.example/#/m/\d+", body), body
assert not m.defects, m.defects
EOF

check "smtps:// (implicit TLS) delivered too, to both recipients" wait_for 20 test -f "$T/smtps/0001.eml"
check "... with an encoded From display name and AUTH" "$PY" - "$T/smtps/0001.eml" <<'EOF'
import email, email.policy, sys
m = email.message_from_bytes(open(sys.argv[1], "rb").read(), policy=email.policy.default)
assert m["X-Auth-User"] == "notifier" and m["X-TLS"] == "yes", (m["X-Auth-User"], m["X-TLS"])
assert m["X-RcptTo"] == "carol@example.org, dave@example.org", m["X-RcptTo"]
assert m["From"].addresses[0].display_name == "邮件中心", str(m["From"])
assert b"\xe9" not in open(sys.argv[1], "rb").read().split(b"\r\n\r\n")[0]
EOF
check "a server without STARTTLS gets no mail (require_tls), with a clear permanent error" \
    wait_for 15 grep -q 'notifier/mail_plain.*does not offer STARTTLS' "$T/stderr"
check "... and nothing reached it" sh -c "! ls '$T/plain/'*.eml >/dev/null 2>&1"

# ---------------------------------------------------------------- webhooks
rows() { # rows PATH: the receiver's records for PATH, as a JSON list
    "$PY" -c 'import json, sys
try:
    recs = [json.loads(l) for l in open(sys.argv[1])]
except FileNotFoundError:
    recs = []
print(json.dumps([r for r in recs if r["path"] == sys.argv[2]]))' "$T/hooks.jsonl" "$1"
}
delivered() { rows "$1" | "$PY" -c 'import json, sys; sys.exit(0 if any(r["status"] == 200 for r in json.load(sys.stdin)) else 1)'; }
check "the webhook was delivered" wait_for 15 delivered /ok
rows /ok >"$T/ok.json"
check "webhook: signed with both secrets, fresh timestamp, id = event id, JSON envelope" "$PY" - "$T/ok.json" <<'EOF'
import json, sys
rows = json.load(open(sys.argv[1]))
mail = [r for r in rows if json.loads(r["body"])["type"] == "mail.received"]
assert len(mail) == 1, rows
r = mail[0]
assert r["status"] == 200 and r["sig_valid"] and r["sig_matched"] == [0, 1] and r["sig_count"] == 2, r
assert r["fresh"], r
assert r["content_type"] == "application/json", r
env = json.loads(r["body"])
assert env["id"] == r["id"] and env["version"] == 1 and env["user"] == "alice", env
assert env["data"]["subject"] == "季度报告 Q4" and env["data"]["account"] == "inbox", env
assert all(json.loads(x["body"])["type"].startswith("mail.") for x in rows), "events filter not applied"
EOF
check "a webhook answering 500 twice is delivered on the third attempt" wait_for 20 delivered /flaky
rows /flaky >"$T/flaky.json"
check "the retries carry the same webhook-id and a valid signature each" "$PY" - "$T/flaky.json" <<'EOF'
import json, sys
rows = json.load(open(sys.argv[1]))
assert [r["status"] for r in rows] == [500, 500, 200], rows
assert len({r["id"] for r in rows}) == 1 and all(r["sig_valid"] for r in rows), rows
EOF
check "a 500 with Retry-After: 3 is retried, not before 3 s" wait_for 20 delivered /later
rows /later >"$T/later.json"
check "... the second attempt came at least 3 s after the first" "$PY" - "$T/later.json" <<'EOF'
import json, sys
rows = json.load(open(sys.argv[1]))
assert [r["status"] for r in rows] == [500, 200], rows
assert rows[1]["t"] - rows[0]["t"] >= 3.0, rows[1]["t"] - rows[0]["t"]
EOF
check "the core logged the retries" grep -q 'notifier/flaky.*failed (HTTP 500 from http://127.0.0.1' "$T/stderr"
check "a webhook to 127.0.0.1 without allow_private is refused with a clear log line" \
    wait_for 10 grep -q 'notifier/ssrf.*refused to connect to 127.0.0.1 (loopback).*allow_private' "$T/stderr"
check "... and nothing reached the receiver on that path" [ "$(rows /ssrf)" = "[]" ]
check "an SMS to {phone} fails permanently while alice has no number, saying why" \
    grep -q "notifier/sms_bound.*no phone number for user 'alice'" "$T/stderr"
check "an e-mail without 'to' fails permanently while alice has no address, saying why" \
    grep -q "notifier/mail_user.*no recipient address for user 'alice'" "$T/stderr"
check "alice binds a phone number and a notification address (mailhubctl)" bind "+86 138 0013 8000"

# ---------------------------------------------------------------- Kannel down, then back
"$KANNEL" stop-smsbox "$KANNEL_DIR"
msg 3 "Bob <bob@example.com>" "sent while Kannel is down" >>"$T/inbox.mbox"
DOWN_TEXT="[inbox] Bob: sent while Kannel is down"
check "the second message yields mail.received" wait_for 20 sh -c "[ \$(grep -c '\"type\":\"mail.received\"' '$T/events.log') -ge 2 ]"
check "the SMS delivery fails and is retried while smsbox is down" \
    wait_for 10 grep -q 'notifier/sms\].*delivery of mail.received .* failed (.*Couldn.t connect' "$T/stderr"
sleep 2
check "nothing was sent while smsbox was down" [ "$(sms_count "$DOWN_TEXT")" -eq 0 ]
"$KANNEL" start-smsbox "$KANNEL_DIR" >/dev/null
check "after smsbox is back, the SMS arrives (the core's retry)" wait_for 40 sms_has "$DOWN_TEXT"
check "the SMS with the default 'to' ({phone}) arrived" wait_for 10 sms_has "bound: sent while Kannel is down"
sms_json >"$T/sms3.json"
check "... at alice's bound number" "$PY" -c 'import json, sys
m = [x for x in json.load(open(sys.argv[1])) if x["text"] == "bound: sent while Kannel is down"]
assert len(m) == 1 and m[0]["to"] == "+8613800138000", m' "$T/sms3.json"
check "the e-mail without 'to' went to alice's notification address" wait_for 10 sh -c \
    "grep -l '^X-RcptTo: alice.user@example.org' '$T/smtp/'*.eml | xargs grep -q 'sent while Kannel is down'"
check "alice changes her phone number" bind "+86 139 0013 9000"
sleep 1
check "... exactly once" [ "$(sms_count "$DOWN_TEXT")" -eq 1 ]
sms_json >"$T/sms2.json"
check "the GSM-7 SMS was sent without UCS-2" "$PY" -c 'import json, sys
m = [x for x in json.load(open(sys.argv[1])) if x["text"] == sys.argv[2]]
assert len(m) == 1 and m[0]["kind"] == "text", m' "$T/sms2.json" "$DOWN_TEXT"

# ---------------------------------------------------------------- a restart with an SMS pending
# The core's outbox is durable (ABI 1.2): a notification waiting for a retry
# when the daemon stops is delivered after the next start.
"$KANNEL" stop-smsbox "$KANNEL_DIR"
fails_before=$(grep -c 'notifier/sms\].*failed (.*Couldn.t connect' "$T/stderr")
msg 4 "Carol <carol@example.com>" "pending over a restart" >>"$T/inbox.mbox"
PENDING_TEXT="[inbox] Carol: pending over a restart"
check "the third message's SMS fails while smsbox is down" wait_for 20 \
    sh -c "[ \$(grep -c 'notifier/sms\].*failed (.*Couldn.t connect' '$T/stderr') -gt $fails_before ]"
kill -TERM "$DAEMON_PID"
rc=0
wait "$DAEMON_PID" || rc=$?
DAEMON_PID=""
check "the daemon stops cleanly with the SMS pending" [ "$rc" -eq 0 ]
"$KANNEL" start-smsbox "$KANNEL_DIR" >/dev/null
"$MAILHUBD" -c "$T/mailhub.yaml" 2>"$T/stderr2" &
DAEMON_PID=$!
check "after a restart the pending SMS is delivered (durable outbox)" wait_for 40 sms_has "$PENDING_TEXT"
sleep 1
counts="$(sms_count "$PENDING_TEXT") $(sms_count "$ZH_TEXT") $(sms_count "$DOWN_TEXT")"
check "... exactly once, and nothing earlier was sent again (counts: $counts)" [ "$counts" = "1 1 1" ]
check "the SMS queued after the number changed went to the new number" wait_for 10 sms_has "bound: pending over a restart"
sms_json >"$T/sms4.json"
check "... +8613900139000" "$PY" -c 'import json, sys
m = [x for x in json.load(open(sys.argv[1])) if x["text"] == "bound: pending over a restart"]
assert len(m) == 1 and m[0]["to"] == "+8613900139000", m' "$T/sms4.json"

# ---------------------------------------------------------------- digests
# Over a channel's rate limit the core holds notifications and folds them into
# one mail.digest event: the SMS template and the e-mail render it.
printf '%s\n' '{"channels": {"sms_bound": {"rate": {"max": 1, "per": "3s"}}, "mail_user": {"rate": {"max": 1, "per": "3s"}}}}' \
    >"$T/rules.json"
check "alice's SMS and e-mail channels get a rate limit (mailhubctl rules set)" CTL --user alice rules set "$T/rules.json"
for i in 5 6 7; do msg "$i" "Dan Wu <dan@example.com>" "digest $i"; done >>"$T/inbox.mbox"
sms_digest() {
    sms_json | "$PY" -c 'import json, re, sys
sys.exit(0 if any(re.fullmatch(r"bound: [2-9] new messages", m["text"]) for m in json.load(sys.stdin)) else 1)'
}
check "held SMS arrive folded into one digest SMS ('bound: N new messages')" wait_for 30 sms_digest
digest_mail() {
    "$PY" - "$T/smtp" <<'EOF'
import email, email.policy, glob, sys
for f in glob.glob(sys.argv[1] + "/*.eml"):
    m = email.message_from_bytes(open(f, "rb").read(), policy=email.policy.default)
    if m["X-RcptTo"] == "alice.user@example.org" and m["X-Mailhub-Event"] == "mail.digest":
        body = m.get_content()
        assert str(m["Subject"]).startswith("[inbox] Dan Wu") and str(m["Subject"]).endswith("new messages"), m["Subject"]
        assert "Subject: digest 7" in body and "Mailbox: inbox" in body, body
        sys.exit(0)
sys.exit(1)
EOF
}
check "held e-mails arrive as one digest e-mail listing the messages" wait_for 30 digest_mail

kill -TERM "$DAEMON_PID"
rc=0
wait "$DAEMON_PID" || rc=$?
DAEMON_PID=""
check "the daemon stops cleanly" [ "$rc" -eq 0 ]
cat "$T/stderr2" >>"$T/stderr"
check "no secret reached the log" sh -c "! grep -q -e '$MH_SMTP_PASSWORD' -e 'bWFpbGh1Yi1ub3RpZnktdGVzdC1zZWNyZXQtMQ' -e 'b2xkLXNlY3JldC1iZWluZy1yb3RhdGVkLW91dA' -e 'password=$MH_SMS_PASSWORD' -e '$MH_GW_TOKEN' '$T/stderr'"
stop_peers
finish

#!/bin/sh
# The POP3 provider against servers that Dovecot cannot play (tests/integration/pop3.sh
# covers Dovecot): a small POP3 server written for this test serves 30 messages
# (dot-stuffed lines, a lone "." line, an empty body) and, by login name, behaves:
#   plain    no PIPELINING, no UIDL: "sha:<sha256>" ids, one command at a time
#   pipe     PIPELINING + UIDL: commands arrive pipelined
#   garbage  answers UIDL with an HTTP status line on its first session
#   stall    stops in the middle of a RETR on its first session (timeout: 1s)
#   err      refuses RETR 2 every time
#   lies     LIST says every message is 1 TB
#   cut      closes the connection in the middle of LIST on its first session
#   del      with delete_after_days: 1; DELE applied at QUIT
#   authuser auth: user, while the server offers SASL PLAIN before the login
# and a real mailhubd imports from each; then two messages vanish and one is added.
. "$(dirname "$0")/lib.sh"

PY=${MH_PYTHON:-python3}
TOOLS="$top_srcdir/tests/tools"
DATA="$T/data"
SRV_PID=""
export MAILHUB_ARGON2="t=1,m=1024,p=1"
stop_all() {
    if [ -n "$SRV_PID" ]; then kill -TERM "$SRV_PID" 2>/dev/null || true; fi
    cleanup
}
trap stop_all EXIT

wait_secs() { # wait_secs SECONDS COMMAND...
    _end=$(($(date +%s) + $1))
    shift
    while :; do
        if "$@"; then return 0; fi
        [ "$(date +%s)" -lt "$_end" ] || return 1
        sleep 0.2
    done
}

# ---------------------------------------------------------------- the server
cat >"$T/fakepop.py" <<'EOF'
import base64, hashlib, os, socket, socketserver, sys, threading, time

T = sys.argv[1]
msgs = []
for i in range(30):
    lines = ["From: s%d@example.com" % i, "To: t@example.com", "Subject: fault test %d" % i,
             "Message-ID: <f%d@example.com>" % i, ""]
    if i == 7:
        lines.pop()                        # headers only, no body
    else:
        lines += [".starts with a dot", "..two dots", ".", "line %d" % i, "x" * (100 * i)]
    msgs.append(("\r\n".join(lines) + "\r\n").encode())
with open(os.path.join(T, "want.tsv"), "w") as f:
    for m in msgs:
        f.write("INBOX\t%s\t%d\n" % (hashlib.sha256(m).hexdigest(), len(m)))
sessions, deleted, lock = {}, {}, threading.Lock()
NEW = b"From: late@example.com\r\nSubject: arrived later\r\nMessage-ID: <late@example.com>\r\n\r\nhello\r\n"

def box_of(user):
    """(UIDL, bytes) of the user's maildrop; "pipe" changes once $T/changed exists."""
    box = [("U%05d" % i, m) for i, m in enumerate(msgs)]
    if user == "pipe" and os.path.exists(os.path.join(T, "changed")):
        box = box[2:] + [("U%05d" % 30, NEW)]
    with lock:
        gone = deleted.get(user, set())
    return [(u, m) for u, m in box if u not in gone]

def log(text):
    with lock, open(os.path.join(T, "server.log"), "a") as f:
        f.write(text + "\n")

class H(socketserver.BaseRequestHandler):
    def handle(self):
        user = None
        sock = self.request
        buf = b""
        def send(b):
            sock.sendall(b)
        send(b"+OK fake POP3 ready\r\n")
        n = 0
        marked = set()
        while True:
            while b"\n" not in buf:
                d = sock.recv(65536)
                if not d:
                    return
                buf += d
            line, buf = buf.split(b"\n", 1)
            if buf and user:
                log("%s pipelined" % user)  # the next command came before this answer
            cmd = line.decode("ascii", "replace").strip()
            verb = cmd.split(" ")[0].upper()
            arg = cmd[len(verb):].strip()
            if verb == "CAPA":
                caps = ["USER", "TOP"]
                if user is None:
                    caps += ["SASL PLAIN"]  # so that curl prefers AUTH PLAIN to USER/PASS
                if user in (None, "pipe", "garbage", "stall", "err", "lies", "cut", "del", "authuser"):
                    caps += ["UIDL"]
                if user in ("pipe", "err", "lies"):
                    caps += ["PIPELINING"]
                send(b"+OK caps\r\n" + "".join(c + "\r\n" for c in caps).encode() + b".\r\n")
            elif verb == "USER" or (verb == "AUTH" and arg.upper() == "PLAIN"):
                if verb == "AUTH":
                    send(b"+ \r\n")
                    while b"\n" not in buf:
                        d = sock.recv(65536)
                        if not d:
                            return
                        buf += d
                    resp, buf = buf.split(b"\n", 1)
                    _, arg, password = base64.b64decode(resp.strip()).decode().split("\0")
                user = arg
                log("%s login %s" % (user, verb))
                box = box_of(user)
                with lock:
                    sessions[user] = n = sessions.get(user, 0) + 1
                if verb == "AUTH":
                    send(b"+OK logged in\r\n" if password == "secret" else b"-ERR [AUTH] bad password\r\n")
                else:
                    send(b"+OK\r\n")
            elif verb == "PASS":
                send(b"+OK logged in\r\n" if arg == "secret" else b"-ERR [AUTH] bad password\r\n")
            elif verb == "UIDL" and user != "plain":
                if user == "garbage" and n == 1:
                    send(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n")
                    continue
                lines = b"".join(b"%d %s\r\n" % (i + 1, u.encode()) for i, (u, m) in enumerate(box))
                send(b"+OK\r\n" + lines + b".\r\n")
            elif verb == "LIST":
                body = b"".join(b"%d %d\r\n" % (i + 1, 10 ** 12 if user == "lies" else len(m))
                                for i, (u, m) in enumerate(box))
                if user == "cut" and n == 1:
                    send(b"+OK\r\n" + body[:30])
                    return
                send(b"+OK\r\n" + body + b".\r\n")
            elif verb == "RETR":
                k = int(arg)
                log("%s RETR %d" % (user, k))
                if user == "err" and k == 2:
                    send(b"-ERR message is locked\r\n")
                    continue
                m = box[k - 1][1]
                stuffed = b"".join(b"." + l if l.startswith(b".") else l for l in m.splitlines(True))
                if user == "stall" and n == 1 and k == 3:
                    send(b"+OK\r\n" + stuffed[:40])
                    time.sleep(30)
                    return
                send(b"+OK %d octets\r\n" % len(m) + stuffed + b".\r\n")
            elif verb == "DELE" and user == "del":
                marked.add(box[int(arg) - 1][0])
                send(b"+OK marked\r\n")
            elif verb == "QUIT":
                with lock:  # the UPDATE state: DELE only counts once QUIT is answered
                    deleted.setdefault(user, set()).update(marked)
                for u in sorted(marked):
                    log("%s deleted %s" % (user, u))
                send(b"+OK bye\r\n")
                return
            elif verb in ("NOOP", "RSET"):
                send(b"+OK\r\n")
            else:
                send(b"-ERR unknown command\r\n")

class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

srv = S(("127.0.0.1", 0), H)
with open(os.path.join(T, "port.tmp"), "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(os.path.join(T, "port.tmp"), os.path.join(T, "port"))
srv.serve_forever()
EOF
"$PY" "$T/fakepop.py" "$T" 2>"$T/server.err" &
SRV_PID=$!
wait_secs 10 test -s "$T/port" || { cat "$T/server.err"; not_ok "the fake POP3 server starts"; finish; }
SPORT=$(cat "$T/port")
ok "a fake POP3 server listens on 127.0.0.1:$SPORT"

# ---------------------------------------------------------------- the hub
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT/api/v1"
acct() { # acct NAME [EXTRA OPTIONS]
    printf '  %s:\n    plugin: pop3\n    user: admin\n' "$1"
    printf '    options: {host: 127.0.0.1, port: %s, tls: none, username: %s, password: secret, ' \
        "$SPORT" "$1"
    printf 'poll_interval: 2s%s}\n' "${2:+, $2}"
}
{
    cat <<YAML
daemon:
  data_dir: $DATA
  shutdown_timeout: 10s
plugins:
  path: [$top_builddir/plugins]
listeners:
  api:
    port: $PORT
store:
  plugin: sqlite
  options: {path: hub.db}
notifiers:
  events:
    plugin: log
    events: ["mail.*", "account.*"]
    options: {path: events.log}
providers:
YAML
    acct plain; acct pipe; acct garbage; acct stall "timeout: 1s"; acct err; acct lies; acct cut
    acct del "delete_after_days: 1"
    acct authuser "auth: user"
} >"$T/mailhub.yaml"
"$MAILHUBD" -c "$T/mailhub.yaml" 2>"$T/log" &
DAEMON_PID=$!
wait_for 30 curl -sf -o /dev/null "$BASE/health" || { cat "$T/log"; not_ok "mailhubd starts"; finish; }
TOKEN=$(cat "$DATA/admin.token")

acct_id() {
    curl -sf -H "Authorization: Bearer $TOKEN" "$BASE/accounts" | "$PY" -c 'import json, sys
print([a["id"] for a in json.load(sys.stdin)["accounts"] if a["name"] == sys.argv[1]][0])' "$1"
}
count_of() {
    curl -sf -H "Authorization: Bearer $TOKEN" "$BASE/accounts/$(acct_id "$1")" | "$PY" -c 'import json, sys
print(sum(f.get("messages", 0) for f in json.load(sys.stdin).get("folders") or []))'
}
count_is() { [ "$(count_of "$1")" = "$2" ]; }
events() { # events TYPE ACCOUNT [PYEXPR on e]
    "$PY" - "$DATA/events.log" "$1" "$2" "${3:-True}" <<'EOF'
import json, sys
n = 0
try:
    for line in open(sys.argv[1], encoding="utf-8"):
        e = json.loads(line)
        d = e.get("data") or {}
        if e.get("type") == sys.argv[2] and d.get("account") == sys.argv[3] and eval(sys.argv[4]):
            n += 1
except FileNotFoundError:
    pass
print(n)
EOF
}
has_event() { [ "$(events "$@")" -gt 0 ]; }
exported() { # exported NAME FILE: the account's messages (folder sha256 ...)
    "$PY" "$TOOLS/mh_export.py" --url "$BASE" --token "$TOKEN" --account "$(acct_id "$1")" \
        --db "$DATA/hub.db" >"$2"
}
same_as_served() {
    exported "$1" "$T/got.$1" && "$PY" "$TOOLS/mh_export.py" --compare "$T/want.tsv" "$T/got.$1"
}
source_ids() {
    "$PY" -c 'import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, timeout=10)
for (s,) in db.execute("SELECT source_id FROM messages WHERE account_id = ?", (int(sys.argv[2]),)):
    print(s)' "$DATA/hub.db" "$(acct_id "$1")"
}
retr_count() { grep -c "^$1 RETR" "$T/server.log" 2>/dev/null || echo 0; }

for a in plain pipe garbage stall lies cut del authuser; do
    check "$a: all 30 messages are imported" wait_secs 60 count_is "$a" 30
done
check "err: 29 messages are imported (RETR 2 is refused)" wait_secs 60 count_is err 29

check "plain: every message byte-exact (dot-unstuffed, CRLF kept)" same_as_served plain
check "pipe: every message byte-exact" same_as_served pipe
check "lies: every message byte-exact despite LIST sizes of 1 TB" same_as_served lies
source_ids plain | sort >"$T/plain.sids"
cut -f2 "$T/want.tsv" | sed 's/^/sha:/' | sort >"$T/plain.want"
check "plain: without UIDL the source ids are sha:<SHA-256 of the message>" \
    cmp -s "$T/plain.want" "$T/plain.sids"
source_ids pipe | sort >"$T/pipe.sids"
check "pipe: with UIDL the source ids are uidl:<UIDL>" \
    [ "$(grep -c '^uidl:U000[0-2][0-9]$' "$T/pipe.sids")" -eq 30 ]
check "auth: user logs in with USER/PASS although the server offers SASL PLAIN" \
    sh -c "grep -q '^authuser login USER' '$T/server.log' && ! grep -q '^authuser login AUTH' '$T/server.log'"
check "auth: auto lets curl choose SASL PLAIN" \
    sh -c "grep -q '^pipe login AUTH' '$T/server.log' && ! grep -q '^pipe login USER' '$T/server.log'"
check "pipe: commands were pipelined (PIPELINING offered)" grep -q '^pipe pipelined' "$T/server.log"
check "plain: never pipelined (PIPELINING not offered)" sh -c "! grep -q '^plain pipelined' '$T/server.log'"

check "garbage: account.error quotes what the server sent" \
    has_event account.error garbage '"HTTP/1.1 200 OK" in e["data"]["error"]'
check "stall: account.error says the server timed out" \
    has_event account.error stall '"timed out" in e["data"]["error"]'
check "cut: account.error says the connection was lost" \
    has_event account.error cut '"lost" in e["data"]["error"] or "closed" in e["data"]["error"]'
check "err: the pass still ends with account.synced" wait_secs 10 has_event account.synced err
check "err: the refusal is logged" grep -q 'RETR 2 refused: message is locked' "$T/log"
for a in plain pipe garbage stall lies cut; do
    check "$a: account.synced after the import" wait_secs 10 has_event account.synced "$a"
done
check "no mail.received for any initial import" [ "$(grep -c '"mail.received"' "$DATA/events.log")" -eq 0 ]

# Next polls: UIDL accounts fetch nothing more; the no-UIDL account reads everything again.
R0=$(retr_count pipe)
P0=$(retr_count plain)
sleep 5
check "pipe: later polls fetch nothing (RETR count stays $R0)" [ "$(retr_count pipe)" -eq "$R0" ]
check "plain: later polls read every message again but store nothing twice" \
    sh -c "[ $(retr_count plain) -ge $((P0 + 30)) ] && [ $(count_of plain) -eq 30 ]"

# The server drops two messages and gets a new one.
: >"$T/changed"
check "pipe: the new message is imported by a later poll" wait_secs 20 count_is pipe 31
check "pipe: and gives mail.received with its subject" wait_secs 10 has_event mail.received pipe \
    'e["data"].get("subject") == "arrived later"'
gone_two() { exported pipe "$T/got2.pipe" && [ "$(awk -F'\t' '$5 == 1' "$T/got2.pipe" | wc -l)" -eq 2 ]; }
check "pipe: the two messages gone from the server are marked gone, and kept" wait_secs 10 gone_two
check "only that one mail.received in all" [ "$(grep -c '"mail.received"' "$DATA/events.log")" -eq 1 ]

# delete_after_days: nothing goes while the hub has held it for less than a day.
check "del: nothing is deleted from the server in the first day" \
    sh -c "! grep -q '^del deleted' '$T/server.log'"
seen_has_30() {
    "$PY" -c 'import sqlite3, sys
db = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, timeout=10)
v = "".join(r[0] for r in db.execute("SELECT value FROM sync_state WHERE account_id = ? AND key LIKE ?",
                                     (int(sys.argv[2]), "seen.%")))
sys.exit(0 if len(v.splitlines()) == 30 else 1)' "$DATA/hub.db" "$DEL_ID"
}
DEL_ID=$(acct_id del)
check "del: the first-seen times of the 30 messages are in the account's state" wait_secs 10 seen_has_30

kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID"
check "mailhubd stops cleanly on SIGTERM" [ $? -eq 0 ]
DAEMON_PID=""
check "no sanitizer report" sh -c "! grep -q 'Sanitizer' '$T/log'"

# Two days pass for three of them (their first-seen times move back), then the daemon starts again.
"$PY" -c 'import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=10)
old = int(time.time()) - 2 * 86400
for key, value in db.execute("SELECT key, value FROM sync_state WHERE account_id = ? AND key LIKE ?",
                             (int(sys.argv[2]), "seen.%")).fetchall():
    lines = ["%d %s" % (old, l.split(" ", 1)[1]) if l.split(" ", 1)[1] in ("U00003", "U00004", "U00005")
             else l for l in value.splitlines()]
    db.execute("UPDATE sync_state SET value = ? WHERE account_id = ? AND key = ?",
               ("\n".join(lines) + "\n", int(sys.argv[2]), key))
db.commit()' "$DATA/hub.db" "$DEL_ID"
"$MAILHUBD" -c "$T/mailhub.yaml" 2>"$T/log2" &
DAEMON_PID=$!
wait_for 30 curl -sf -o /dev/null "$BASE/health" || { cat "$T/log2"; not_ok "mailhubd starts again"; finish; }
deleted_three() { [ "$(grep -c '^del deleted' "$T/server.log")" -eq 3 ]; }
check "del: the three messages held for two days are deleted from the server (DELE, QUIT)" \
    wait_secs 20 deleted_three
check "del: exactly those" sh -c "grep '^del deleted' '$T/server.log' | sort | tr '\n' ' ' |
    grep -qx 'del deleted U00003 del deleted U00004 del deleted U00005 '"
gone_three() { exported del "$T/got.del" && [ "$(awk -F'\t' '$5 == 1' "$T/got.del" | wc -l)" -eq 3 ]; }
check "del: the hub keeps all 30 and marks those three gone" wait_secs 10 gone_three
check "del: the hub still holds 30 messages" count_is del 30
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID"
check "mailhubd stops cleanly again" [ $? -eq 0 ]
DAEMON_PID=""
check "no sanitizer report after the restart" sh -c "! grep -q 'Sanitizer' '$T/log2'"
if [ "$FAILS" -ne 0 ]; then tail -40 "$T/log" "$T/log2"; fi
finish

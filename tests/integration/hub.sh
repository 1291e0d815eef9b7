#!/bin/sh
# The backbone end to end (issue 3's acceptance test), through mailhubctl and
# the HTTP API of a real mailhubd with the sqlite store and the mbox provider:
#   two users; a generated mbox of a few thousand messages (varied sizes,
#   GBK- and UTF-8-encoded subjects, attachments, duplicates) imported into
#   one of them; counts; the exact bytes back out through export (Maildir and
#   mbox); the quota extended exactly as often as the policy says; user B
#   gets 404 for user A's mail; no plaintext credential or message body in
#   the database files; kill -9 in the middle of an import, restart: nothing
#   lost, nothing doubled; `mailhubctl verify` passes, and finds (exit 5,
#   by id) a body altered in the database file.
. "$(dirname "$0")/lib.sh"

PY=${MH_PYTHON:-python3}
CTL="$top_builddir/core/mailhubctl"
GEN="$top_builddir/tests/tools/gen_mbox"
DATA="$T/data"
export MAILHUB_ARGON2="t=1,m=1024,p=1" # fast password hashing for the test
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export MAILHUB_URL="http://127.0.0.1:$PORT"
BASE="$MAILHUB_URL/api/v1"
MB=1048576

cat >"$T/mailhub.yaml" <<YAML
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
  quota:
    initial: 4MB
    extend_when_free_below: 1MB
    extend_by: 3MB
notifiers:
  audit:
    plugin: log
    events: ["quota.*", "account.*"]
    options: {path: events.log}
YAML

start_daemon() { # start_daemon LOGFILE
    "$MAILHUBD" -c "$T/mailhub.yaml" 2>>"$1" &
    DAEMON_PID=$!
    wait_for 30 curl -sf -o /dev/null "$BASE/health"
}

# jq-like: jget PYEXPR FILE (d = the document)
jget() {
    "$PY" -c 'import json, sys
d = json.load(open(sys.argv[2], encoding="utf-8"))
v = eval(sys.argv[1])
print("null" if v is None else json.dumps(v) if isinstance(v, (bool, dict, list)) else v)' "$1" "$2"
}
status_of() { # status_of TOKEN PATH: the HTTP status of a GET
    curl -s -o "$T/st.body" -w '%{http_code}' -H "Authorization: Bearer $1" "$BASE$2"
}
# messages stored for a user, from the quota endpoint
stored() { # stored TOKEN USER_ID
    curl -sf -H "Authorization: Bearer $1" "$BASE/users/$2/quota" >"$T/q.json" 2>/dev/null &&
        jget 'd["messages"]' "$T/q.json"
}
stored_is() { [ "$(stored "$1" "$2")" = "$3" ]; }
# the unique (sha256) set of a manifest, and the sha256 of each file of a Maildir export
uniq_shas() { cut -f4 "$1" | sort -u; }
maildir_shas() { find "$1" -type f -path '*/cur/*' -exec sha256sum {} + | cut -d' ' -f1 | sort; }

start_daemon "$T/log1" || { cat "$T/log1"; not_ok "mailhubd serves the API"; finish; }
ok "mailhubd serves the API on port $PORT"
check "the first start writes the admin token with mode 0600" [ "$(stat -c %a "$DATA/admin.token")" = 600 ]
check "the master key is created with mode 0600" [ "$(stat -c %a "$DATA/master.key")" = 600 ]
ADMIN=$(cat "$DATA/admin.token")

# ------------------------------------------------------------------ users
for u in alice bob; do
    printf '%s-password-1\n' "$u" | "$CTL" --token "$ADMIN" user add "$u" --password-stdin >"$T/add.$u" 2>&1
    check "the admin registers $u" [ $? -eq 0 ]
done
ALICE=$(printf 'alice-password-1\n' | "$CTL" login alice --password-stdin 2>"$T/login.err")
BOB=$(printf 'bob-password-1\n' | "$CTL" login bob --password-stdin 2>>"$T/login.err")
check "both users log in and get a token" sh -c "case '$ALICE$BOB' in mh_*mh_*) true;; *) false;; esac"
"$CTL" --token "$ALICE" --json whoami >"$T/alice.json"
ALICE_ID=$(jget 'd["id"]' "$T/alice.json")
"$CTL" --token "$BOB" --json whoami >"$T/bob.json"
BOB_ID=$(jget 'd["id"]' "$T/bob.json")
check "the users have distinct ids" [ -n "$ALICE_ID" ] && check "and they differ" [ "$ALICE_ID" != "$BOB_ID" ]
"$CTL" --token "$ALICE" phone set "+86 138-0013-8000" >/dev/null 2>&1
"$CTL" --token "$ALICE" --json whoami >"$T/alice.json"
check "alice binds a phone number, stored as E.164" [ "$(jget 'd["phone"]' "$T/alice.json")" = "+8613800138000" ]
"$CTL" --token "$ALICE" phone set "12345" >/dev/null 2>&1
check "an invalid phone number is refused (exit 1)" [ $? -eq 1 ]

# ----------------------------------------------------------------- import
"$GEN" --count 3000 --seed 7 --dup-every 50 --manifest "$T/a.tsv" >"$T/a.mbox"
UNIQUE=$(uniq_shas "$T/a.tsv" | wc -l)
BYTES=$("$PY" -c 'import sys
seen = {}
for line in open(sys.argv[1], encoding="utf-8"):
    f = line.rstrip("\n").split("\t")
    seen[f[3]] = int(f[2])
print(sum(seen.values()))' "$T/a.tsv")
check "the generated mbox has duplicates to skip ($UNIQUE unique of 3000)" [ "$UNIQUE" -lt 3000 ]
check "some subjects are GBK-encoded" grep -q '=?GBK?B?' "$T/a.mbox"
check "some messages carry attachments" grep -qi 'Content-Disposition: attachment' "$T/a.mbox"

"$CTL" --token "$ALICE" import "$T/a.mbox" --account takeout --wait >"$T/import.out" 2>&1
check "mailhubctl import --wait finishes (exit 0)" [ $? -eq 0 ]
check "every unique message is stored once ($UNIQUE)" wait_for 60 stored_is "$ALICE" "$ALICE_ID" "$UNIQUE"
check "usage is the raw size of the unique messages ($BYTES bytes)" [ "$(jget 'd["usage"]' "$T/q.json")" = "$BYTES" ]

# the quota policy: 4 MB, +3 MB whenever under 1 MB would be free
EXT=$("$PY" -c "import math; n = $BYTES + 1*$MB - 4*$MB; print(max(0, math.ceil(n / (3*$MB))))")
check "the policy calls for several extensions ($EXT)" [ "$EXT" -ge 3 ]
check "the allocation is 4 MB + $EXT x 3 MB" [ "$(jget 'd["allocation"]' "$T/q.json")" = $((4 * MB + EXT * 3 * MB)) ]
check "the quota history records $EXT extensions" \
    [ "$(jget 'sum(1 for h in d["history"] if h["reason"] == "extended")' "$T/q.json")" = "$EXT" ]
wait_for 10 sh -c "[ \$(grep -c '\"quota.extended\".*\"user\":\"alice\"' '$DATA/events.log') -ge $EXT ]"
check "quota.extended was emitted $EXT times for alice" \
    [ "$(grep '"quota.extended"' "$DATA/events.log" | grep -c '"user":"alice"')" -eq "$EXT" ]

# a subject in GBK and one in UTF-8 come out decoded
"$CTL" --token "$ALICE" --json messages --limit 1000 >"$T/msgs.json"
GBK_SUBJ=$("$PY" -c 'import sys
for line in open(sys.argv[1], encoding="utf-8"):
    f = line.rstrip("\n").split("\t")
    if any(ord(c) > 0x4e00 for c in f[4]):
        print(f[4]); break' "$T/a.tsv")
check "a Chinese subject is decoded to UTF-8 in the message list" \
    "$PY" -c 'import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
sys.exit(0 if any(m.get("subject") == sys.argv[2] for m in d["messages"]) else 1)' "$T/msgs.json" "$GBK_SUBJ"

# ----------------------------------------------------------------- export
"$CTL" --token "$ALICE" export --format maildir --output "$T/exp-maildir" >/dev/null 2>"$T/export.err"
check "export --format maildir succeeds" [ $? -eq 0 ]
uniq_shas "$T/a.tsv" >"$T/want.shas"
maildir_shas "$T/exp-maildir" >"$T/got.shas"
check "the Maildir export holds exactly the imported bytes (sha256 of every file)" cmp -s "$T/want.shas" "$T/got.shas"
"$CTL" --token "$ALICE" export --format mbox --output "$T/exp.mbox" >/dev/null 2>>"$T/export.err"
check "the mbox export has one From line per message" [ "$(grep -c '^From ' "$T/exp.mbox")" -eq "$UNIQUE" ]
"$CTL" --token "$ALICE" verify >"$T/verify.out" 2>&1
check "verify finds every message intact (exit 0)" [ $? -eq 0 ]

# ---------------------------------------------------------- tenant isolation
MID=$(jget 'd["messages"][0]["id"]' "$T/msgs.json")
AID=$(jget 'd["messages"][0]["account_id"]' "$T/msgs.json")
check "alice reads her message" [ "$(status_of "$ALICE" "/messages/$MID")" = 200 ]
check "bob gets 404 for alice's message" [ "$(status_of "$BOB" "/messages/$MID")" = 404 ]
check "bob gets 404 for alice's raw message" [ "$(status_of "$BOB" "/messages/$MID/raw")" = 404 ]
check "bob gets 404 for alice's account" [ "$(status_of "$BOB" "/accounts/$AID")" = 404 ]
check "bob gets 404 for alice's quota" [ "$(status_of "$BOB" "/users/$ALICE_ID/quota")" -ge 403 ]
check "bob's message list is empty" [ "$(curl -s -H "Authorization: Bearer $BOB" "$BASE/messages" |
    "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)["messages"]))')" = 0 ]
"$CTL" --token "$BOB" export --format maildir --output "$T/bob-exp" >/dev/null 2>&1
check "bob's export holds none of alice's mail" [ "$(find "$T/bob-exp" -type f 2>/dev/null | wc -l)" -eq 0 ]

# -------------------------------------------------- nothing in plaintext
SECRET="CRED-8c1f-$$-never-on-disk"
head -c 20000 "$T/a.mbox" | awk '/^From /{n++} n<2' >"$T/small.mbox"
cat >"$T/acct.json" <<JSON
{"name":"with-smtp","provider":"mbox","settings":{"path":"$T/small.mbox","watch":false,
 "smtp":{"host":"smtp.example.com","login":"me@example.com","password":"$SECRET"}}}
JSON
code=$(curl -s -o "$T/acct.out" -w '%{http_code}' -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
    --data-binary "@$T/acct.json" "$BASE/accounts")
check "an account with an SMTP password is linked (201)" [ "$code" = 201 ]
check "the API never returns the password" sh -c "! grep -q '$SECRET' '$T/acct.out'"
check "the log never shows the password" sh -c "! grep -q '$SECRET' '$T/log1'"
# a line of body text that no header holds
BODY_LINE=$(grep -m1 -E '^[A-Za-z][A-Za-z ,.]{60,}$' "$T/a.mbox")
check "the generated mail has a plain body line to look for" [ -n "$BODY_LINE" ]
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID"
check "mailhubd stops cleanly on SIGTERM" [ $? -eq 0 ]
DAEMON_PID=""
for f in "$DATA"/hub.db*; do
    check "no plaintext credential in $(basename "$f")" sh -c "! grep -qaF '$SECRET' '$f'"
    check "no plaintext message body in $(basename "$f")" sh -c "! grep -qaF '$BODY_LINE' '$f'"
done

# --------------------------------------------- kill -9 during an import
start_daemon "$T/log2" || not_ok "mailhubd restarts"
"$GEN" --count 5000 --seed 11 --manifest "$T/b.tsv" >"$T/b.mbox"
B_UNIQUE=$(uniq_shas "$T/b.tsv" | wc -l)
"$CTL" --token "$BOB" import "$T/b.mbox" --account big >/dev/null 2>&1
check "bob's upload is accepted" [ $? -eq 0 ]
some_stored() { n=$(stored "$BOB" "$BOB_ID"); [ -n "$n" ] && [ "$n" -ge 300 ]; }
check "the import is under way" wait_for 60 some_stored
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=""
start_daemon "$T/log3" || not_ok "mailhubd starts again after kill -9"
PARTIAL=$(stored "$BOB" "$BOB_ID")
check "after kill -9 the import resumes and stores every message once ($B_UNIQUE, from $PARTIAL)" \
    wait_for 120 stored_is "$BOB" "$BOB_ID" "$B_UNIQUE"
sleep 1
check "and no more than that" stored_is "$BOB" "$BOB_ID" "$B_UNIQUE"
"$CTL" --token "$BOB" export --format maildir --output "$T/exp-b" >/dev/null 2>&1
uniq_shas "$T/b.tsv" >"$T/want-b.shas"
maildir_shas "$T/exp-b" >"$T/got-b.shas"
check "bob's export after the crash is byte-exact" cmp -s "$T/want-b.shas" "$T/got-b.shas"
"$CTL" --token "$BOB" verify >/dev/null 2>&1
check "verify passes after the crash" [ $? -eq 0 ]
check "alice's mail is untouched by the crash" stored_is "$ALICE" "$ALICE_ID" "$UNIQUE"
# Mail is stored first and analysed (search terms, attachments) from a queue in the store: the crash
# left part of it queued; after the restart the queue drains, and each message is indexed exactly once.
bob_analysed() {
    [ "$(curl -sf -H "Authorization: Bearer $BOB" "$BASE/search?q=zzzz" |
        "$PY" -c 'import json, sys; print(json.load(sys.stdin)["pending"])')" = 0 ]
}
check "after the crash the analysis queue drains (search: pending 0)" wait_for 120 bob_analysed
check "every one of bob's messages is in the search index exactly once" [ "$("$PY" - "$DATA/hub.db" "$BOB_ID" <<'PYEOF'
import sqlite3, sys
c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
u = int(sys.argv[2])
rows = c.execute("SELECT count(*) FROM msg_search AS s JOIN messages AS m ON m.id = s.rowid"
                 " WHERE m.user_id = ?", (u,)).fetchone()[0]
msgs = c.execute("SELECT count(*) FROM messages WHERE user_id = ?", (u,)).fetchone()[0]
queued = c.execute("SELECT count(*) FROM index_queue").fetchone()[0]
print(rows, msgs, queued)
PYEOF
)" = "$B_UNIQUE $B_UNIQUE 0" ]

# ------------------------------------------ a damaged blob is found by verify
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID"
DAEMON_PID=""
BAD=$("$PY" -c 'import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
mid = db.execute("SELECT min(id) FROM messages WHERE user_id = ?", (int(sys.argv[2]),)).fetchone()[0]
blob = bytearray(db.execute("SELECT blob FROM messages WHERE id = ?", (mid,)).fetchone()[0])
blob[100] ^= 0x01
db.execute("UPDATE messages SET blob = ? WHERE id = ?", (bytes(blob), mid))
db.commit()
print(mid)' "$DATA/hub.db" "$BOB_ID")
start_daemon "$T/log4" || not_ok "mailhubd starts again"
"$CTL" --token "$BOB" verify >"$T/verify-bad.out" 2>&1
check "verify exits 5 when a stored body was altered" [ $? -eq 5 ]
check "verify names the damaged message ($BAD)" grep -q "message $BAD: cannot decrypt" "$T/verify-bad.out"
check "the other messages still verify" grep -q "$((B_UNIQUE - 1)) ok, 1 failed" "$T/verify-bad.out"
"$CTL" --token "$ALICE" verify >/dev/null 2>&1
check "alice's mail still verifies" [ $? -eq 0 ]

kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID"
DAEMON_PID=""
if [ "$FAILS" -ne 0 ]; then tail -30 "$T/log1" "$T/log2" "$T/log3"; fi
finish

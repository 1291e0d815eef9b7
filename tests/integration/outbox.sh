#!/bin/sh
# The durable notification outbox with the real daemon, the real webhook notifier and a receiver that
# checks signatures itself: retries after 500s, dead letters after the last attempt, replay, jobs left
# pending by kill -9 delivered after the restart (nothing lost, nothing doubled), and the per-user rules
# (mute, VIP, quiet hours, rate limits folded into a digest) asserted on what the receiver got.
. "$(dirname "$0")/lib.sh"

PY=${MH_PYTHON:-/usr/bin/python3}
PLUG="$top_builddir/plugins"
TOOLS="$top_srcdir/tests/tools"
MAILHUBCTL="$top_builddir/core/mailhubctl"
export MAILHUB_ARGON2="t=1,m=1024,p=1"
SECRET="whsec_$(printf 'outbox-test-secret-0123456789' | base64 | tr -d '\n')"
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
RX_PORT=$(free_port)
API_PORT=$(free_port)
RX_PID=""

msg() { # msg N FROM: one mbox message
    printf 'From %s Mon Nov 23 09:15:00 2026\n' "$2"
    printf 'From: Sender %s <%s>\nTo: alice@example.org\n' "$1" "$2"
    printf 'Subject: outbox %s\nMessage-ID: <ob%s@example.com>\n\nbody %s\n\n' "$1" "$1" "$1"
}
: >"$T/inbox.mbox"
: >"$T/news.mbox"

rx_start() { # rx_start [--fail PATH=N]...
    "$PY" "$TOOLS/webhook_rx.py" --port "$RX_PORT" --log "$T/rx.log" --secret "$SECRET" "$@" >"$T/rx.out" 2>&1 &
    RX_PID=$!
    wait_for 10 grep -q ready "$T/rx.out"
}
rx_stop() { [ -n "$RX_PID" ] && kill "$RX_PID" 2>/dev/null; wait "$RX_PID" 2>/dev/null; RX_PID=""; }
cleanup_rx() { rx_stop; cleanup; }
trap cleanup_rx EXIT

cat >"$T/mailhub.yaml" <<YAML
daemon:
  data_dir: $T/data
  log_level: info
  shutdown_timeout: 5s
  notify_attempts: 4
  notify_retry: 200ms
  notify_retry_max: 1s
plugins:
  path: [$PLUG]
store:
  plugin: sqlite
listeners:
  api: {address: 127.0.0.1, port: $API_PORT}
providers:
  inbox:
    plugin: mbox
    user: alice
    options: {path: $T/inbox.mbox, watch: true, poll_interval: 100ms}
  news:
    plugin: mbox
    user: alice
    options: {path: $T/news.mbox, watch: true, poll_interval: 100ms}
notifiers:
  hook:
    plugin: webhook
    events: ["mail.*"]
    options: {url: "http://127.0.0.1:$RX_PORT/hook", secret: "$SECRET", allow_private: true, timeout: 2s}
  doomed:
    plugin: webhook
    events: [mail.received]
    options: {url: "http://127.0.0.1:$RX_PORT/doomed", secret: "$SECRET", allow_private: true, timeout: 2s}
YAML

start_daemon() {
    "$top_builddir/core/mailhubd" -c "$T/mailhub.yaml" 2>>"$T/stderr" &
    DAEMON_PID=$!
    wait_for 20 grep -q 'mailhubd .* started' "$T/stderr"
}
stop_daemon() { kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID" || true; DAEMON_PID=""; }

# rx_count PATH [ID-SUBSTRING] [STATUS]: deliveries the receiver logged
rx_count() {
    "$PY" - "$T/rx.log" "$@" <<'PYEOF'
import json, sys
log, path = sys.argv[1], sys.argv[2]
idsub = sys.argv[3] if len(sys.argv) > 3 else ""
status = int(sys.argv[4]) if len(sys.argv) > 4 else None
n = 0
try:
    for line in open(log):
        r = json.loads(line)
        if r["path"] != path or idsub not in r["body"]:
            continue
        if status is not None and r["status"] != status:
            continue
        n += 1
except FileNotFoundError:
    pass
print(n)
PYEOF
}
rx_has() { [ "$(rx_count "$@")" -ge 1 ]; }
rx_is() { want=$1; shift; [ "$(rx_count "$@")" -eq "$want" ]; }
# jobs STATE [NOTIFIER]: jobs in that state, read from the store file
jobs() {
    "$PY" - "$T/data/mailhub.db" "$@" <<'PYEOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
q = "SELECT count(*) FROM jobs WHERE state = ?"
args = [sys.argv[2]]
if len(sys.argv) > 3:
    q += " AND notifier = ?"
    args.append(sys.argv[3])
print(db.execute(q, args).fetchone()[0])
PYEOF
}
jobs_is() { [ "$(jobs "$2" $3)" -eq "$1" ]; }
# jobs_about TEXT NOTIFIER: jobs of that notifier whose event contains TEXT
jobs_about() {
    "$PY" -c 'import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(db.execute("SELECT count(*) FROM jobs WHERE notifier = ? AND instr(event, ?) > 0", (sys.argv[3], sys.argv[2])).fetchone()[0])' \
        "$T/data/mailhub.db" "$1" "$2"
}
all_signed() { "$PY" -c 'import json,sys; rows=[json.loads(l) for l in open(sys.argv[1])]; sys.exit(0 if rows and all(r["sig_valid"] for r in rows) else 1)' "$T/rx.log"; }

# ------------------------------------------------- retries and dead letters
rx_start --fail /hook=2 --fail /doomed=1000
start_daemon
check "the daemon starts with two webhook notifiers" kill -0 "$DAEMON_PID"
msg 1 a@example.com >>"$T/inbox.mbox"
msg 2 b@example.com >>"$T/inbox.mbox"
both_delivered() { rx_is 1 /hook ob1 200 && rx_is 1 /hook ob2 200; }
check "each message is delivered after two 500s (the third attempt is answered 200)" wait_for 20 both_delivered
check "... and was tried exactly three times" sh -c "[ $(rx_count /hook ob1 500) -eq 2 ] && [ $(rx_count /hook ob2 500) -eq 2 ]"
check "every request carried a valid Standard Webhooks signature" all_signed
both_dead() { rx_is 4 /doomed ob1 500 && rx_is 4 /doomed ob2 500; }
check "a notifier that always fails gets notify_attempts (4) tries per message" wait_for 30 both_dead
check "then both of its jobs are dead in the outbox" wait_for 10 jobs_is 2 dead doomed
check "the delivered jobs are recorded as delivered" wait_for 10 jobs_is 2 delivered hook
check "the log names the dead letter and how to replay it" \
    grep -q 'dead-lettered as notification #[0-9]* (replay: mailhubctl notifications replay' "$T/stderr"
sleep 1
check "no fifth attempt after the dead letter" rx_is 4 /doomed ob1 500

# ------------------------------------------- kill -9 with jobs pending
rx_stop
msg 3 c@example.com >>"$T/inbox.mbox"
check "with the receiver down the job for message 3 waits in the outbox (pending)" wait_for 20 jobs_is 1 pending hook
check "... and is retried" wait_for 20 sh -c "[ \$(grep -c 'delivery of mail.received .* failed' '$T/stderr') -gt 8 ]"
kill -KILL "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null; DAEMON_PID=""
check "after kill -9 the job for message 3 is still pending in the store" jobs_is 1 pending hook
rx_start --fail /doomed=1000
start_daemon
check "the restarted daemon says it found the jobs of the last run" \
    wait_for 10 grep -q 'notification(s) left by the last run' "$T/stderr"
check "message 3 reaches the receiver after the restart" wait_for 20 rx_is 1 /hook ob3 200
sleep 1
check "... exactly once (no duplicate 200)" rx_is 1 /hook ob3 200
check "messages 1 and 2 were not sent again after the restart" sh -c "[ $(rx_count /hook ob1 200) -eq 1 ] && [ $(rx_count /hook ob2 200) -eq 1 ]"

check "every webhook job for messages 1-3 ended delivered" wait_for 10 jobs_is 3 delivered hook

# ------------------------------------------------------------ per-user rules
CTL() { "$MAILHUBCTL" --url "http://127.0.0.1:$API_PORT" --token-file "$T/data/admin.token" --user alice "$@"; }
rules() { printf '%s\n' "$1" >"$T/rules.json"; CTL -q rules set "$T/rules.json"; }
not() { ! "$@"; }
printf '{"quiet_hours": {"start": "25:00", "end": "07:00"}}\n' >"$T/bad-rules.json"
bad_rules() { CTL rules set "$T/bad-rules.json" 2>"$T/rules.err"; }
check "invalid rules are refused" not bad_rules
check "... with the reason" grep -q 'quiet_hours.start: expected HH:MM' "$T/rules.err"

# mute: nothing for the muted account, mail of the others still goes; a disabled channel gets no job
rules '{"mute": ["news"], "channels": {"doomed": {"enabled": false}}}'
shown() { CTL rules show | grep -q '"news"'; }
check "the rules are stored" shown
msg 11 n@example.com >>"$T/news.mbox"
msg 12 a@example.com >>"$T/inbox.mbox"
check "mail of an unmuted account is delivered" wait_for 20 rx_is 1 /hook ob12 200
sleep 1
check "mail of the muted account is not" rx_is 0 /hook ob11 200
no_doomed_job() { [ "$(jobs_about ob12 doomed)" -eq 0 ] && rx_is 0 /doomed ob12 500; }
check "the disabled channel got no job for it" no_doomed_job

# quiet hours (UTC, ending in 8 s) with a VIP: the VIP at once, the other after the quiet hours
NOW=$("$PY" -c 'import time; print(int(time.time()))')
START=$(date -u -d "@$((NOW - 60))" +%H:%M:%S)
END=$(date -u -d "@$((NOW + 8))" +%H:%M:%S)
rules "{\"timezone\": \"UTC\", \"vip\": [\"@vip.example\"], \"quiet_hours\": {\"start\": \"$START\", \"end\": \"$END\"}, \"channels\": {\"doomed\": {\"enabled\": false}}}"
msg 13 plain@example.com >>"$T/inbox.mbox"
msg 14 boss@vip.example >>"$T/inbox.mbox"
check "during quiet hours a VIP's mail is delivered at once" wait_for 4 rx_is 1 /hook ob14 200
held_13() { rx_is 0 /hook ob13 200 && jobs_is 1 held hook; }
check "... while the other is held" held_13
check "the held one is delivered when the quiet hours end" wait_for 15 rx_is 1 /hook ob13 200
check "and not before they ended" [ "$(date +%s)" -ge $((NOW + 8)) ]

# rate limit: one per 3 s; the next two are folded into one digest
rules '{"channels": {"hook": {"rate": {"max": 1, "per": "3s"}}, "doomed": {"enabled": false}}}'
sleep 3.5
msg 15 r1@example.com >>"$T/inbox.mbox"
check "the first message within the rate is delivered at once" wait_for 10 rx_is 1 /hook ob15 200
msg 16 'Ann Lee <r2@example.com>' >>"$T/inbox.mbox"
msg 17 'Bo Wu <r3@example.com>' >>"$T/inbox.mbox"
digest_ok() {
    "$PY" - "$T/rx.log" <<'PYEOF'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["path"] != "/hook" or r["status"] != 200:
        continue
    ev = json.loads(r["body"])
    if ev["type"] == "mail.digest":
        d = ev["data"]
        ok = d["count"] == 2 and d["account"] == "inbox" and d["subject"] == "2 new messages" \
            and "outbox 16" in json.dumps(d["messages"]) and "outbox 17" in json.dumps(d["messages"])
        sys.exit(0 if ok and r["sig_valid"] else 2)
sys.exit(1)
PYEOF
}
check "the two over the rate arrive as one signed mail.digest (count 2, naming both)" wait_for 15 digest_ok
not_single() { rx_is 0 /hook ob16 200 && rx_is 0 /hook ob17 200; }
check "... and not one by one" not_single
check "the outbox records them as folded" jobs_is 2 folded hook

# replay a dead letter through the CLI
CTL rules clear >/dev/null
DEAD=$(CTL --json notifications list --state dead | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["notifications"][0]["id"])')
check "mailhubctl lists the dead letters" sh -c "case '$DEAD' in [0-9]*) true;; *) false;; esac"
CTL notifications list --state dead >"$T/dead.txt"
check "... with the last error" grep -q 'HTTP 500' "$T/dead.txt"
BEFORE=$(rx_count /doomed "" 500)
check "mailhubctl notifications replay queues it again" CTL -q notifications replay "$DEAD"
replayed() { [ "$(rx_count /doomed '' 500)" -ge $((BEFORE + 4)) ]; }
check "the replayed job is tried again (notify_attempts more times)" wait_for 20 replayed
check "a job that is not dead cannot be replayed (409)" not CTL -q notifications replay 1

stop_daemon
finish

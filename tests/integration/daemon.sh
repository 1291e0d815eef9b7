#!/bin/sh
# The real mailhubd with the real plugins: start, import, notify, SIGHUP, SIGTERM.
. "$(dirname "$0")/lib.sh"

PLUG="$top_builddir/plugins"
TPLUG="$top_builddir/tests/plugins"

msg() { # msg N: one mbox message
    printf 'From sender%s@example.com Mon Nov 23 09:15:00 2026\n' "$1"
    printf 'From: Sender %s <sender%s@example.com>\nTo: me@example.org\n' "$1" "$1"
    printf 'Subject: message %s\nMessage-ID: <m%s@example.com>\n\nbody of %s\n>From the archive\n\n' "$1" "$1" "$1"
}
for i in 1 2 3 4 5; do msg "$i"; done >"$T/inbox.mbox"

export MH_TEST_SECRET="tok-Very-Secret-42"
write_config() { # write_config LOGLEVEL DATADIR
    cat >"$T/mailhub.yaml" <<YAML
daemon:
  data_dir: $2
  log_level: $1
  pid_file: $T/mailhubd.pid
  shutdown_timeout: 5s
plugins:
  path: [$PLUG, $TPLUG]
store:
  plugin: sqlite
  options: {path: hub.db}
  quota: {initial: 1MB, extend_when_free_below: 100KB, extend_by: 1MB}
providers:
  inbox:
    plugin: mbox
    user: alice
    options: {path: $T/inbox.mbox, watch: true, poll_interval: 200ms}
notifiers:
  audit:
    plugin: log
    options: {path: $T/events.log}
  mailonly:
    plugin: log
    events: ["mail.*"]
    options: {path: $T/mail.log}
  secretive:
    plugin: t_good
    events: [daemon.started]
    options: {token: "\${MH_TEST_SECRET}"}
YAML
}
write_config info data

check "--check-config accepts the configuration" "$MAILHUBD" --check-config "$T/mailhub.yaml"
"$MAILHUBD" -c "$T/mailhub.yaml" --list-plugins >"$T/list.out" 2>"$T/list.err"
check "--list-plugins shows the log notifier" grep -Eq '^notifier +log ' "$T/list.out"
check "--list-plugins shows the sqlite store" grep -Eq '^store +sqlite ' "$T/list.out"
check "--list-plugins shows the mbox provider" grep -Eq '^provider +mbox ' "$T/list.out"
check "--list-plugins reports refused modules with the reason" grep -q 't_badabi.*ABI 99' "$T/list.err"
"$MAILHUBD" -P "$PLUG" --plugin-help mbox >"$T/help.out"
check "--plugin-help lists options with types" grep -Eq 'path +string' "$T/help.out"

"$MAILHUBD" -c "$T/mailhub.yaml" 2>"$T/stderr" &
DAEMON_PID=$!
count() { n=$(grep -c "\"type\":\"$1\"" "$2" 2>/dev/null) || true; echo "${n:-0}"; }
has() { [ "$(count "$1" "$2")" -ge "$3" ]; }
check "the import finishes with account.synced" wait_for 20 has account.synced "$T/events.log" 1
check "the pid file holds the daemon's pid" grep -qx "$DAEMON_PID" "$T/mailhubd.pid"
check "the initial import emits no mail.received" [ "$(count mail.received "$T/events.log")" -eq 0 ]
check "daemon.started reached the log notifier" has daemon.started "$T/events.log" 1
check "every log line names its component or instance" \
    sh -c "! grep -v -E '^[0-9T:.Z-]+ +(error|warn|info|debug) +\[(core|provider/inbox|notifier/[a-z]+|store/store)\]' '$T/stderr'"

for i in 6 7; do msg "$i"; done >>"$T/inbox.mbox"
check "appended mail emits mail.received for each new message" wait_for 20 has mail.received "$T/events.log" 2
check "mail.received names the mailbox it came from" grep -q '"type":"mail.received".*"account":"inbox"' "$T/events.log"
check "the mail.* notifier got only mail events" sh -c "[ \$(wc -l <'$T/mail.log') -eq 2 ] && ! grep -q account.synced '$T/mail.log'"

# SIGHUP: log level applies, data_dir cannot, an added notifier starts
write_config debug elsewhere
cat >>"$T/mailhub.yaml" <<YAML
  added:
    plugin: log
    options: {path: $T/added.log}
YAML
kill -HUP "$DAEMON_PID"
check "SIGHUP emits config.reloaded" wait_for 10 has config.reloaded "$T/events.log" 1
check "SIGHUP says what it could not apply" grep -q 'not applied: daemon.data_dir' "$T/stderr"
check "SIGHUP starts an added notifier" grep -q 'notifiers.added (added)' "$T/stderr"
check "the daemon is still running after SIGHUP" kill -0 "$DAEMON_PID"

# an invalid reload is refused and changes nothing
printf 'daemon:\n  log_levle: debug\n' >"$T/mailhub.yaml"
kill -HUP "$DAEMON_PID"
check "an invalid reload is refused with the file, position and key" \
    wait_for 10 grep -q "mailhub.yaml:2:3: .*log_levle" "$T/stderr"
check "the daemon survives an invalid reload" kill -0 "$DAEMON_PID"

kill -TERM "$DAEMON_PID"
rc=0
wait "$DAEMON_PID" || rc=$?
DAEMON_PID=""
check "SIGTERM exits 0" [ "$rc" -eq 0 ]
check "SIGTERM removes the pid file" [ ! -e "$T/mailhubd.pid" ]
check "daemon.stopping reached the notifiers" has daemon.stopping "$T/events.log" 1
check "the daemon logged its clean stop" grep -q '\[core\] stopped' "$T/stderr"
check "the secret option never reached the log" sh -c "! grep -q 'tok-Very-Secret-42' '$T/stderr'"
check "the secret was masked where the plugin tried to log it" grep -q '\*\*\*' "$T/stderr"
check "the store file exists under the data directory" [ -s "$T/data/hub.db" ]

# restart: nothing is imported twice
"$MAILHUBD" -c "$T/mailhub.yaml" -L error 2>"$T/stderr2" & # the file is invalid now: must refuse
rc=0; wait $! || rc=$?
check "an invalid configuration refuses to start" [ "$rc" -ne 0 ]
check "the refusal names file:line:column and suggests the key" grep -q "mailhub.yaml:2:3: .*log_levle.*did you mean 'log_level'" "$T/stderr2"
write_config info data
"$MAILHUBD" -c "$T/mailhub.yaml" 2>"$T/stderr3" &
DAEMON_PID=$!
check "after a restart the import completes again" wait_for 20 has account.synced "$T/events.log" 2
kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID" || true; DAEMON_PID=""
# the store itself: 7 messages (5 + the 2 appended), none twice
stored_rows() {
    "${MH_PYTHON:-python3}" -c 'import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(*db.execute("SELECT count(*), count(DISTINCT source_id) FROM messages").fetchone())' "$T/data/hub.db"
}
check "a restart imports nothing twice (7 rows, 7 distinct)" [ "$(stored_rows)" = "7 7" ]
finish

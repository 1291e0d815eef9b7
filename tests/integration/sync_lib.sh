# tests/integration/sync_lib.sh: what imap.sh and pop3.sh share once their Dovecot is up -- a real
# mailhubd (sqlite store, the log notifier writing mail.* and account.* events) with a hub user
# whose accounts are linked through the API, and the helpers that read it back.  Sourced after
# lib.sh, with PY, CTL, DATA and TOOLS set.
#
#   hub_up PROVIDER HUBUSER   checks the plugin is built, starts mailhubd (log in $T/log1), creates
#                             HUBUSER and logs it in: sets PORT, BASE, MAILHUB_URL, ADMIN, TOKEN
#   start_daemon LOGFILE      starts mailhubd again on the same config (DAEMON_PID)
#   link NAME SETTINGS-JSON   links a PROVIDER account; prints its id
#   account ID                the account object into $T/acct.json
#   count_of ID, count_is ID N, count_at_least ID N, sync_now ID
#   events TYPE ACCOUNT-NAME [PYEXPR on e], has_event ...: events the log notifier wrote
#   jget PYEXPR FILE, jtrue PYEXPR FILE: read a JSON document d
hub_up() {
    SYNC_PROVIDER=$1
    if ! "$MAILHUBD" -l -P "$top_builddir/plugins" 2>/dev/null | grep -q "^provider *$1 "; then
        not_ok "the $1 provider plugin is built (mailhubd -l lists it)"
        finish
    fi
    PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    BASE="http://127.0.0.1:$PORT/api/v1"
    MAILHUB_URL="http://127.0.0.1:$PORT"
    export MAILHUB_URL
    cat >"$T/mailhub.yaml" <<YAML
daemon:
  data_dir: $DATA
  shutdown_timeout: 10s
  log_level: info
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
YAML
    start_daemon "$T/log1" || { cat "$T/log1"; not_ok "mailhubd serves the API"; finish; }
    ADMIN=$(cat "$DATA/admin.token")
    printf '%s-hub-password\n' "$2" | "$CTL" --token "$ADMIN" user add "$2" --password-stdin >/dev/null 2>&1
    TOKEN=$(printf '%s-hub-password\n' "$2" | "$CTL" login "$2" --password-stdin 2>/dev/null)
    check "a hub user $2 logs in" sh -c "case '$TOKEN' in mh_*) true;; *) false;; esac"
}
start_daemon() { # start_daemon LOGFILE
    "$MAILHUBD" -c "$T/mailhub.yaml" 2>>"$1" &
    DAEMON_PID=$!
    wait_for 30 curl -sf -o /dev/null "$BASE/health"
}
jget() { # jget PYEXPR FILE (d = the document)
    "$PY" -c 'import json, sys
d = json.load(open(sys.argv[2], encoding="utf-8"))
v = eval(sys.argv[1])
print("null" if v is None else json.dumps(v) if isinstance(v, (bool, dict, list)) else v)' "$1" "$2"
}
jtrue() { # jtrue PYEXPR FILE: exit 0 when the expression holds for the document d
    "$PY" -c 'import json, sys
d = json.load(open(sys.argv[2], encoding="utf-8"))
sys.exit(0 if eval(sys.argv[1]) else 1)' "$1" "$2" 2>/dev/null
}
link() { # link NAME SETTINGS-JSON: prints the new account's id
    printf '{"name":"%s","provider":"%s","settings":%s}' "$1" "$SYNC_PROVIDER" "$2" >"$T/link.json"
    code=$(curl -s -o "$T/link.out" -w '%{http_code}' -H "Authorization: Bearer $TOKEN" \
        -H 'Content-Type: application/json' --data-binary "@$T/link.json" "$BASE/accounts")
    if [ "$code" != 201 ]; then
        echo "linking $1: HTTP $code $(cat "$T/link.out")" >&2
        return 1
    fi
    jget 'd["id"]' "$T/link.out"
}
account() { # account ID: the account object into $T/acct.json
    curl -sf -H "Authorization: Bearer $TOKEN" "$BASE/accounts/$1" >"$T/acct.json"
}
count_of() { # count_of ID: messages the hub holds for the account (its folders' counts)
    account "$1" && jget 'sum(f.get("messages", 0) for f in d.get("folders") or [])' "$T/acct.json"
}
count_is() { [ "$(count_of "$1")" = "$2" ]; }
count_at_least() { _c=$(count_of "$1"); [ -n "$_c" ] && [ "$_c" -ge "$2" ]; }
sync_now() { curl -s -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" "$BASE/accounts/$1/sync"; }
# events TYPE ACCOUNT-NAME [PYEXPR]: how many events of that type the log notifier wrote
# for the account (and, with PYEXPR on e = the event, that match)
events() {
    "$PY" - "$DATA/events.log" "$1" "$2" "${3:-True}" <<'EOF'
import json, sys
n = 0
try:
    for line in open(sys.argv[1], encoding="utf-8"):
        e = json.loads(line)
        if e.get("type") == sys.argv[2] and (e.get("data") or {}).get("account") == sys.argv[3] and eval(sys.argv[4]):
            n += 1
except FileNotFoundError:
    pass
print(n)
EOF
}
has_event() { [ "$(events "$@")" -gt 0 ]; }

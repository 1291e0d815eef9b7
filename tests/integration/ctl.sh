#!/bin/sh
# mailhubctl against the real mailhubd: usage and connection errors first, then
# users, tokens, phone binding, an mbox import, reading, search, export (Maildir
# and mboxrd, byte for byte) and verify, all through mailhubctl alone.
. "$(dirname "$0")/lib.sh"

CTL="$top_builddir/core/mailhubctl"
PLUG="$top_builddir/plugins"
unset MAILHUB_URL MAILHUB_TOKEN MAILHUB_TOKEN_FILE
HOME="$T/home"
export HOME
mkdir -p "$HOME"

# expect_rc DESCRIPTION WANTED-EXIT COMMAND...: stdout in $T/out, stderr in $T/err
expect_rc() {
    d=$1
    want=$2
    shift 2
    "$@" >"$T/out" 2>"$T/err"
    got=$?
    if [ "$got" -eq "$want" ]; then
        ok "$d"
    else
        not_ok "$d (exit $got, wanted $want): $(head -c 400 "$T/err")"
    fi
}
# within SECONDS COMMAND...: run it, killed after SECONDS (a hung wait must fail, not hang the suite)
within() {
    secs=$1
    shift
    "$@" &
    wpid=$!
    (
        n=0
        while [ "$n" -lt "$secs" ] && kill -0 "$wpid" 2>/dev/null; do
            sleep 1
            n=$((n + 1))
        done
        if kill -0 "$wpid" 2>/dev/null; then
            echo "# killed after $secs s: $*"
            kill -TERM "$wpid"
        fi
    ) &
    dog=$!
    wait "$wpid"
    wrc=$?
    wait "$dog"
    return "$wrc"
}
# cksums FILE...: the sorted CRC and size of each file (a multiset of contents)
cksums() { for f in "$@"; do cksum <"$f"; done | sort; }

# ---- without a server ----------------------------------------------------
expect_rc "--help exits 0" 0 "$CTL" --help
check "--help lists the commands" grep -q 'export' "$T/out"
expect_rc "--version exits 0" 0 "$CTL" --version
check "--version names the program" grep -q '^mailhubctl ' "$T/out"
helps_ok=1
for c in health register login logout whoami token "user list" "user add" "user show" "user set" "user delete" \
    "phone set" "phone clear" "email set" "email clear" "account list" "account add" "account show" \
    "account set" "account pause" "account resume" "account remove" "account sync" import messages \
    "message show" "message raw" search export verify quota; do
    # shellcheck disable=SC2086 # the command is two words on purpose
    if ! "$CTL" $c --help >"$T/out" 2>&1 || ! grep -q "^Usage: mailhubctl .*$c" "$T/out"; then
        helps_ok=0
        echo "# '$c --help' failed"
    fi
done
check "every command has --help" [ "$helps_ok" -eq 1 ]
expect_rc "no command is a usage error" 2 "$CTL"
expect_rc "an unknown command is a usage error" 2 "$CTL" frobnicate
expect_rc "an unknown option is a usage error" 2 "$CTL" whoami --frob
expect_rc "a missing argument is a usage error" 2 "$CTL" user add
expect_rc "a password on the command line is refused" 2 "$CTL" login alice --password hunter22
expect_rc "a non-http URL is a usage error" 2 "$CTL" --url ftp://127.0.0.1/ health
expect_rc "export without --format is a usage error" 2 "$CTL" --token x export --output "$T/x"
expect_rc "no token is an authentication error" 3 "$CTL" --url http://127.0.0.1:1 whoami
check "no token says how to log in" grep -q 'not logged in' "$T/err"
expect_rc "a refused connection exits 4" 4 "$CTL" --url http://127.0.0.1:1 health
check "a refused connection is said plainly" \
    grep -qx 'mailhubctl: cannot connect to http://127.0.0.1:1: Connection refused (is mailhubd running?)' "$T/err"

# ---- the daemon -----------------------------------------------------------
write_config() {
    cat >"$T/mailhub.yaml" <<YAML
daemon:
  data_dir: $T/data
  log_level: info
  pid_file: $T/mailhubd.pid
  shutdown_timeout: 5s
  registration: open
listeners:
  api:
    address: 127.0.0.1
    port: $PORT
plugins:
  path: [$PLUG]
store:
  plugin: sqlite
  options: {path: hub.db}
YAML
}
up_or_dead() { "$CTL" --url "$URL" -q health >/dev/null 2>&1 || ! kill -0 "$DAEMON_PID" 2>/dev/null; }
# a port that is free: try a few, the daemon refuses to start on a taken one
seed=$(( $$ + $(date +%s) % 60 * 61 )) # %s: "08" from %S is not a number to sh
for attempt in 1 2 3 4 5 6; do
    PORT=$(( 20000 + (seed + attempt * 1907) % 12000 ))
    URL="http://127.0.0.1:$PORT"
    write_config
    "$MAILHUBD" -c "$T/mailhub.yaml" 2>>"$T/daemon.err" &
    DAEMON_PID=$!
    wait_for 30 up_or_dead || true
    if "$CTL" --url "$URL" -q health >/dev/null 2>&1; then break; fi
    kill -TERM "$DAEMON_PID" 2>/dev/null
    wait "$DAEMON_PID" 2>/dev/null
    DAEMON_PID=""
done
if [ -z "$DAEMON_PID" ]; then
    not_ok "mailhubd serves the API (see $T/daemon.err)"
    finish
fi
export MAILHUB_URL="$URL"
expect_rc "health answers" 0 "$CTL" health
check "health shows the version" grep -q 'ok (mailhubd ' "$T/out"
check "the first start writes admin.token" wait_for 10 test -s "$T/data/admin.token"
check "admin.token is private (0600)" sh -c "ls -l '$T/data/admin.token' | grep -q '^-rw-------'"
ADMIN="--token-file=$T/data/admin.token"

PW_A="alice-Pass-9876"
PW_B="bob-Pass-5432"
expect_rc "admin: user add alice (password from stdin)" 0 \
    sh -c "printf '%s\n' '$PW_A' | '$CTL' '$ADMIN' user add alice --password-stdin --email alice@example.org"
check "user add shows the new user" grep -q '^name *alice' "$T/out"
expect_rc "admin: user add alice again is a conflict" 1 \
    sh -c "printf '%s\n' '$PW_A' | '$CTL' '$ADMIN' user add alice --password-stdin"
check "the conflict shows its code" grep -q '(conflict)$' "$T/err"
expect_rc "admin: a weak password is refused" 1 \
    sh -c "printf 'short\n' | '$CTL' '$ADMIN' user add carol --password-stdin"
check "the refusal shows its code" grep -q '(weak_password)$' "$T/err"
expect_rc "admin: user list" 0 "$CTL" "$ADMIN" user list
check "user list shows alice and admin" sh -c "grep -q ' alice ' '$T/out' && grep -q ' admin ' '$T/out'"

expect_rc "login with a wrong password exits 3" 3 \
    sh -c "printf 'not-her-password\n' | '$CTL' login alice --password-stdin"
check "the wrong password shows unauthorized" grep -q '(unauthorized)$' "$T/err"
TOK=$(printf '%s\n' "$PW_A" | "$CTL" login alice --password-stdin 2>"$T/err")
check "login prints a token" sh -c "printf '%s' '$TOK' | grep -Eqx 'mh_[A-Za-z0-9_-]{43}'"
export MAILHUB_TOKEN="$TOK"
expect_rc "whoami" 0 "$CTL" whoami
check "whoami names alice" grep -q '^name *alice$' "$T/out"
check "whoami does not print the token" sh -c "! grep -qF '$TOK' '$T/out' '$T/err'"
expect_rc "whoami --json" 0 "$CTL" --json whoami
check "whoami --json is the API's user object" grep -q '"name": "alice"' "$T/out"

expect_rc "phone set with a valid number" 0 "$CTL" phone set +8613800138000
expect_rc "whoami after phone set" 0 "$CTL" whoami
check "the phone is bound" grep -q '^phone *+8613800138000$' "$T/out"
expect_rc "phone set with an invalid number exits 1" 1 "$CTL" phone set 12345
check "the invalid number shows invalid_phone" grep -q '(invalid_phone)$' "$T/err"
expect_rc "email set with an invalid address exits 1" 1 "$CTL" email set not-an-address
check "the invalid address shows invalid_email" grep -q '(invalid_email)$' "$T/err"
expect_rc "phone clear" 0 "$CTL" phone clear
expect_rc "user list as a non-admin exits 3" 3 "$CTL" user list
check "the refusal shows forbidden" grep -q '(forbidden)$' "$T/err"

expect_rc "register bob (registration is open)" 0 \
    sh -c "printf '%s\n' '$PW_B' | '$CTL' register bob --password-stdin --phone +14155550100"
TOK_B=$(cat "$T/out")
check "register prints a token" sh -c "printf '%s' '$TOK_B' | grep -Eqx 'mh_[A-Za-z0-9_-]{43}'"

# ---- an mbox import --------------------------------------------------------
# Each message as it must be stored ($T/src/NNN.eml), and an mboxrd file of them.
N=40
mkdir -p "$T/src"
i=1
while [ "$i" -le "$N" ]; do
    f="$T/src/$(printf %03d "$i").eml"
    {
        printf 'From: Sender %s <s%s@example.com>\nTo: alice@example.org\n' "$i" "$i"
        printf 'Date: Mon, 23 Nov 2026 09:%02d:00 +0000\nMessage-ID: <ctl%s@example.com>\n' $((i % 60)) "$i"
        if [ $((i % 3)) -eq 0 ]; then
            printf 'Subject: =?UTF-8?B?5L2g5aW9IOS4lueVjA==?= %s\n' "$i"
        else
            printf 'Subject: message %s\n' "$i"
        fi
        printf '\nbody of message %s\n' "$i"
        if [ $((i % 4)) -eq 0 ]; then
            printf 'From the archive, a line an mbox must quote\n>From already quoted\n>>From twice\nFromage\n'
        fi
        if [ "$i" -eq 10 ]; then # over 8 MiB: an export page of its own
            awk 'BEGIN { for (k = 0; k < 220000; k++) printf "line %06d of a message larger than a page\n", k }'
        fi
        if [ $((i % 9)) -eq 0 ]; then printf '\n\n'; fi # ends with empty lines
    } >"$f"
    if [ $((i % 7)) -eq 0 ]; then # CRLF line endings
        sed 's/$/\r/' "$f" >"$f.crlf" && mv "$f.crlf" "$f"
    fi
    i=$((i + 1))
done
for f in "$T"/src/*.eml; do
    printf 'From sender@example.com Mon Nov 23 09:15:00 2026\n'
    sed 's/^\(>*From \)/>\1/' "$f"
    printf '\n'
done >"$T/takeout.mbox"

expect_rc "import --wait" 0 within 120 "$CTL" import "$T/takeout.mbox" --account takeout --wait
expect_rc "account list" 0 "$CTL" account list
check "account list shows the import" grep -q ' takeout  *mbox ' "$T/out"
expect_rc "messages --account takeout --limit 0" 0 "$CTL" -q messages --account takeout --limit 0
check "every message was imported" [ "$(($(wc -l <"$T/out") - 1))" -eq "$N" ]
awk 'NR > 1 { print $1 }' "$T/out" >"$T/ids"
mkdir -p "$T/raw"
while read -r id; do
    "$CTL" message raw "$id" >"$T/raw/$id" </dev/null || echo "# message raw $id failed"
done <"$T/ids"
cksums "$T"/src/*.eml >"$T/src.sums"
cksums "$T"/raw/* >"$T/raw.sums"
check "message raw returns every message's exact bytes" cmp -s "$T/src.sums" "$T/raw.sums"
id10=$(grep -l 'Message-ID: <ctl10@' "$T"/raw/* | head -n 1)
check "the 9 MB message comes back byte for byte (cmp)" cmp "$T/src/010.eml" "$id10"
expect_rc "message show" 0 "$CTL" message show "$(basename "$id10")"
check "message show has the subject" grep -q '^subject *message 10$' "$T/out"
expect_rc "another user's message is not found" 1 "$CTL" --token "$TOK_B" message raw "$(basename "$id10")"
check "... with not_found" grep -q '(not_found)$' "$T/err"

# ---- search ----------------------------------------------------------------
# The hub stores mail first and analyses it (words, attachments) once its store is idle.
analysed() {
    "$CTL" --json search body >"$T/pend" 2>/dev/null && grep -Eq '"pending": *0($|[,}])' "$T/pend"
}
check "search --json reports pending, and the index catches up with the import" wait_for 30 analysed
# every third message has the subject "你好 世界 N" (RFC 2047); every body says "body of message N"
expect_rc "search a Chinese word" 0 "$CTL" -q search 你好
check "... finds the 13 messages that have it" [ "$(($(wc -l <"$T/out") - 1))" -eq 13 ]
check "... newest first" sh -c "awk 'NR > 1 { print \$1 }' '$T/out' | sort -nrc"
expect_rc "search two words with --limit 5" 0 "$CTL" search 你好 世界 --limit 5
check "... prints 5" [ "$(($(wc -l <"$T/out") - 1))" -eq 5 ]
check "... and says how to get the next page" grep -q 'more messages match: --before [0-9]' "$T/err"
expect_rc "search --limit 0 pages through everything" 0 "$CTL" -q search body --account takeout --limit 0
check "... every message has the word" [ "$(($(wc -l <"$T/out") - 1))" -eq "$N" ]
TENTH=$(awk 'NR == 11 { print $1 }' "$T/out")
expect_rc "search --before the tenth newest" 0 "$CTL" -q search body --before "$TENTH" --limit 0
check "... lists the older ones only" [ "$(($(wc -l <"$T/out") - 1))" -eq $((N - 10)) ]
check "... the first below it" [ "$(awk 'NR == 2 { print ($1 < '"$TENTH"') }' "$T/out")" = 1 ]
expect_rc "search --json" 0 "$CTL" --json search message 10
check "... only message 10 has both words" \
    [ "$("${MH_PYTHON:-python3}" -c 'import json, sys; d = json.load(open(sys.argv[1]))
print(" ".join(m["message_id"] for m in d["messages"]), d["next_before"])' "$T/out")" = "ctl10@example.com None" ]
expect_rc "search an address" 0 "$CTL" --json search S7@Example.com
check "... finds its sender's message" grep -q '"message_id": "ctl7@example.com"' "$T/out"
expect_rc "search with no word is a usage error" 2 "$CTL" search
expect_rc "a query the server finds no word in is refused" 1 "$CTL" search "a !"
check "... with bad_request" grep -q '(bad_request)$' "$T/err"
expect_rc "another user's search" 0 "$CTL" --token "$TOK_B" search 你好
check "... finds none of alice's mail" [ ! -s "$T/out" ]
check "... and says so" grep -q 'no message matches' "$T/err"
expect_rc "search in an account that does not exist" 1 "$CTL" search body --account nosuch
check "... is not_found" grep -q '(not_found)$' "$T/err"

# ---- export ----------------------------------------------------------------
expect_rc "export --format maildir" 0 "$CTL" export --format maildir --output "$T/md"
check "the Maildir has cur, new and tmp" sh -c "[ -d '$T/md/cur' ] && [ -d '$T/md/new' ] && [ -d '$T/md/tmp' ]"
check "the Maildir holds every message" [ "$(find "$T/md/cur" -type f | wc -l)" -eq "$N" ]
check "Maildir file names follow <time>.<id>_<n>.mailhub:2,<flags>" \
    sh -c "! find '$T/md/cur' -type f | sed 's,.*/,,' | grep -Ev '^[0-9]+\.[0-9]+_[0-9]+\.mailhub:2,[DFRST]*$'"
cksums "$T"/md/cur/* >"$T/md.sums"
check "the Maildir files are the exact bytes" cmp -s "$T/src.sums" "$T/md.sums"
expect_rc "export refuses a non-empty output" 1 "$CTL" export --format maildir --output "$T/md"
expect_rc "export --force writes into it" 0 "$CTL" -q export --format maildir --output "$T/md" --force
check "... the same file names again, no duplicates" [ "$(find "$T/md/cur" -type f | wc -l)" -eq "$N" ]
# the admin links that Maildir in place (a directory on the server's side): the same bytes come back in
expect_rc "admin: import of a Maildir directory --wait" 0 \
    within 120 "$CTL" "$ADMIN" import "$T/md" --account fromdir --wait
expect_rc "admin: messages of the Maildir account" 0 "$CTL" "$ADMIN" -q messages --account fromdir --limit 0
check "the Maildir account has every message" [ "$(($(wc -l <"$T/out") - 1))" -eq "$N" ]
mkdir -p "$T/rawdir"
awk 'NR > 1 { print $1 }' "$T/out" | while read -r id; do
    "$CTL" "$ADMIN" message raw "$id" >"$T/rawdir/$id" </dev/null || echo "# message raw $id failed"
done
cksums "$T"/rawdir/* >"$T/rawdir.sums"
check "the Maildir import stored the exact bytes" cmp -s "$T/src.sums" "$T/rawdir.sums"

expect_rc "export --format mbox" 0 "$CTL" export --account takeout --format mbox --output "$T/out.mbox"
check "the mbox holds every message" [ "$(grep -c '^From ' "$T/out.mbox")" -eq "$N" ]
from_re='^From MAILER-DAEMON [A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8} [0-9]{4}$'
check "From_ lines are From MAILER-DAEMON <date>" sh -c "! grep '^From ' '$T/out.mbox' | grep -Evq '$from_re'"
check "body lines starting with From are quoted" grep -q '^>From the archive' "$T/out.mbox"
# read it back the mboxrd way: split at From_ lines, drop the separating empty line, unquote ^>+From
mkdir -p "$T/unq"
LC_ALL=C awk -v dir="$T/unq" '
    function flush() { if (n > 0 && lines[n] == "") n--; f = sprintf("%s/%04d", dir, ++k)
                       printf "" > f; for (j = 1; j <= n; j++) printf "%s\n", lines[j] > f; close(f); n = 0 }
    /^From / { if (started) flush(); started = 1; next }
    { if ($0 ~ /^>+From /) $0 = substr($0, 2); lines[++n] = $0 }
    END { if (started) flush() }' "$T/out.mbox"
cksums "$T"/unq/* >"$T/unq.sums"
check "the mbox reads back to the exact bytes" cmp -s "$T/src.sums" "$T/unq.sums"
expect_rc "export --format mbox refuses to overwrite" 1 "$CTL" export --format mbox --output "$T/out.mbox"

# ---- verify, tokens ------------------------------------------------------------
expect_rc "verify exits 0" 0 "$CTL" verify
check "verify reports no failure" grep -q "^checked $N messages: $N ok, 0 failed$" "$T/out"
expect_rc "quota" 0 "$CTL" quota
check "quota shows the messages" grep -q "^messages *$N$" "$T/out"

expect_rc "login --save" 0 sh -c "printf '%s\n' '$PW_B' | env MAILHUB_TOKEN= '$CTL' login bob --password-stdin --save"
check "the saved token file is private (0600)" sh -c "ls -l '$HOME/.config/mailhub/token' | grep -q '^-rw-------'"
expect_rc "the saved token is used" 0 env MAILHUB_TOKEN= "$CTL" whoami
check "... as bob" grep -q '^name *bob$' "$T/out"
expect_rc "logout" 0 env MAILHUB_TOKEN= "$CTL" logout
check "logout removes the saved token" [ ! -e "$HOME/.config/mailhub/token" ]
expect_rc "logout of alice" 0 "$CTL" logout
expect_rc "a revoked token exits 3" 3 "$CTL" whoami
check "the revoked token shows unauthorized" grep -q '(unauthorized)$' "$T/err"

kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" || true
DAEMON_PID=""
check "no password reached the daemon's log" sh -c "! grep -qF -e '$PW_A' -e '$PW_B' '$T/daemon.err'"
check "no token reached the daemon's log" sh -c "! grep -qF -e '$TOK' -e '$TOK_B' '$T/daemon.err'"
finish

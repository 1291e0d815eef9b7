#!/bin/sh
# The control API over HTTP with curl: users, tokens, accounts, an mbox upload
# that is imported, messages, raw bytes, export, verify, quota, tenant
# isolation, search over the blind index, and the error format.  The real mailhubd with the sqlite store and
# the mbox provider.
. "$(dirname "$0")/lib.sh"

PY=${MH_PYTHON:-python3}
if ! command -v curl >/dev/null 2>&1 || ! command -v "$PY" >/dev/null 2>&1 || [ "$PY" = no ]; then
    echo "SKIP: needs curl and python3"
    exit 77
fi
export MAILHUB_ARGON2="t=1,m=1024,p=1" # fast password hashing for the test

PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT/api/v1"
DATA="$T/data"

write_config() { # write_config REGISTRATION
    cat >"$T/mailhub.yaml" <<YAML
daemon:
  data_dir: $DATA
  log_level: debug
  registration: $1
  max_upload: 64KB
  shutdown_timeout: 5s
plugins:
  path: [$top_builddir/plugins]
listeners:
  api:
    address: 127.0.0.1
    port: $PORT
store:
  plugin: sqlite
  options: {path: hub.db}
YAML
}

start_daemon() { # start_daemon LOGFILE
    "$MAILHUBD" -c "$T/mailhub.yaml" 2>"$1" &
    DAEMON_PID=$!
    wait_for 20 curl -sf -o /dev/null "$BASE/health"
}

stop_daemon() {
    kill -TERM "$DAEMON_PID"
    rc=0
    wait "$DAEMON_PID" || rc=$?
    DAEMON_PID=""
    return $rc
}

# api METHOD PATH TOKEN [curl args...]: the body goes to $T/body, the headers
# to $T/hdr; prints the HTTP status.  Notes any response without no-store.
api() {
    _m=$1 _p=$2 _t=$3
    shift 3
    if [ -n "$_t" ]; then set -- -H "Authorization: Bearer $_t" "$@"; fi
    _st=$(curl -s -o "$T/body" -D "$T/hdr" -w '%{http_code}' -X "$_m" "$@" "$BASE$_p")
    if ! grep -qi '^cache-control: no-store' "$T/hdr"; then echo "$_m $_p" >>"$T/nostore.bad"; fi
    echo "$_st"
}
# jget PYEXPR [FILE]: PYEXPR evaluated with d = the JSON document (default: the last body)
jget() {
    "$PY" -c 'import json, sys
d = json.load(open(sys.argv[2], encoding="utf-8"))
v = eval(sys.argv[1])
print("null" if v is None else json.dumps(v, ensure_ascii=False) if isinstance(v, (bool, dict, list)) else v)' \
        "$1" "${2:-$T/body}" 2>/dev/null
}
# the last body is exactly {"error": {"code": CODE, "message": "..."}}
err_is() {
    [ "$(jget '(d["error"]["code"] if set(d) == {"error"} and set(d["error"]) == {"code", "message"}
               and isinstance(d["error"]["message"], str) else "?")')" = "$1" ]
}
hdr() { sed -n "s/^$1: *//Ip" "$T/hdr" | tr -d '\r'; }
# expect DESCRIPTION STATUS ERRCODE|- METHOD PATH TOKEN [curl args...]
expect() {
    _d=$1 _want=$2 _ec=$3
    shift 3
    _got=$(api "$@")
    if [ "$_got" != "$_want" ]; then
        not_ok "$_d (HTTP $_got, expected $_want: $(head -c 300 "$T/body"))"
        return 1
    fi
    if [ "$_ec" != - ] && ! err_is "$_ec"; then
        not_ok "$_d (expected error $_ec, got: $(head -c 300 "$T/body"))"
        return 1
    fi
    ok "$_d"
}
JSON="Content-Type: application/json"
MBOX="Content-Type: application/mbox"

# ---------------------------------------------------------------- test data
# four messages, one with a GBK RFC 2047 subject ("你好，世界") and one in UTF-8
eml() { # eml N SUBJECT
    printf 'From: Sender %s <sender%s@example.com>\nTo: me@example.org\nSubject: %s\n' "$1" "$1" "$2"
    printf 'Message-ID: <m%s@example.com>\nDate: Mon, 23 Nov 2026 09:15:0%s +0000\n\nbody of message %s\nline two\n' \
        "$1" "$1" "$1"
}
eml 1 "message one" >"$T/m1.eml"
eml 2 "=?GBK?B?xOO6w6OsysC95w==?=" >"$T/m2.eml"
eml 3 "=?UTF-8?B?5rWL6K+V?=" >"$T/m3.eml"
eml 4 "message four" >"$T/m4.eml"
for i in 1 2 3 4; do
    printf 'From sender%s@example.com Mon Nov 23 09:15:0%s 2026\n' "$i" "$i"
    cat "$T/m$i.eml"
    printf '\n'
done >"$T/small.mbox"
SUM=$(cat "$T/m1.eml" "$T/m2.eml" "$T/m3.eml" "$T/m4.eml" | wc -c)

write_config open
check "the daemon starts and answers /health" start_daemon "$T/stderr"

# ------------------------------------------------------------------ basics
expect "GET /health" 200 - GET /health ""
check "/health says ok and the version" [ "$(jget 'd["status"] + " " + d["version"]')" = "ok 0.1.0" ]
check "the first start wrote admin.token" [ -s "$DATA/admin.token" ]
check "admin.token is mode 0600" [ "$(stat -c %a "$DATA/admin.token")" = 600 ]
ADMIN=$(tr -d '\n' <"$DATA/admin.token")
expect "GET /me with the admin token" 200 - GET /me "$ADMIN"
check "the bootstrap user is the administrator" [ "$(jget 'd["name"] + " " + str(d["admin"])')" = "admin True" ]
expect "no token is 401" 401 unauthorized GET /me ""
expect "an unknown token is 401" 401 unauthorized GET /me mh_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
expect "an unknown route is 404" 404 not_found GET /nothing-here "$ADMIN"
expect "a wrong method is 405" 405 method_not_allowed PUT /users "$ADMIN"
check "405 names the allowed methods" [ "$(hdr Allow)" = "GET, POST" ]

# ------------------------------------------------------------------- users
expect "register alice" 201 - POST /register "" -H "$JSON" \
    -d '{"name":"alice","password":"alice-secret-1","email":"alice@example.org"}'
ALICE=$(jget 'd["token"]')
ALICE_ID=$(jget 'd["user"]["id"]')
check "registration returns a token" sh -c "echo '$ALICE' | grep -Eq '^mh_[A-Za-z0-9_-]{43}\$'"
check "a new user gets the initial allocation" [ "$(jget 'd["user"]["quota"]["allocation"]')" -gt 0 ]
expect "registering a taken name is 409" 409 conflict POST /register "" -H "$JSON" \
    -d '{"name":"alice","password":"another-pass"}'
expect "a bad name is invalid_name" 400 invalid_name POST /register "" -H "$JSON" \
    -d '{"name":"-x/y","password":"long-enough"}'
expect "a short password is weak_password" 400 weak_password POST /register "" -H "$JSON" \
    -d '{"name":"carol","password":"short"}'
expect "a bad phone at registration is invalid_phone" 400 invalid_phone POST /register "" -H "$JSON" \
    -d '{"name":"carol","password":"long-enough","phone":"12345"}'
expect "the admin creates bob" 201 - POST /users "$ADMIN" -H "$JSON" -d '{"name":"bob","password":"bob-secret-22"}'
BOB_ID=$(jget 'd["id"]')
check "bob is not an administrator" [ "$(jget 'd["admin"]')" = false ]
expect "bob logs in" 200 - POST /login "" -H "$JSON" -d '{"name":"bob","password":"bob-secret-22","label":"test"}'
BOB=$(jget 'd["token"]')
check "login returns bob's user" [ "$(jget 'd["user"]["name"]')" = bob ]
expect "a wrong password is 401" 401 unauthorized POST /login "" -H "$JSON" \
    -d '{"name":"bob","password":"not-his-pass"}'
expect "an unknown user cannot log in" 401 unauthorized POST /login "" -H "$JSON" \
    -d '{"name":"nobody","password":"whatever1"}'
expect "GET /me for alice" 200 - GET /me "$ALICE"
check "/me is alice, with her e-mail" [ "$(jget 'd["name"] + " " + d["email"]')" = "alice alice@example.org" ]

expect "set a phone number (normalised to E.164)" 200 - PATCH "/users/$ALICE_ID" "$ALICE" -H "$JSON" \
    -d '{"phone":"+86 138-0013-8000"}'
check "the phone is stored as E.164" [ "$(jget 'd["phone"]')" = "+8613800138000" ]
expect "a phone that is not E.164 is invalid_phone" 400 invalid_phone PATCH "/users/$ALICE_ID" "$ALICE" -H "$JSON" \
    -d '{"phone":"0138 0013 8000"}'
expect "the phone survives a refused change" 200 - GET "/users/$ALICE_ID" "$ALICE"
check "the phone is unchanged" [ "$(jget 'd["phone"]')" = "+8613800138000" ]
expect "clear the phone" 200 - PATCH "/users/$ALICE_ID" "$ALICE" -H "$JSON" -d '{"phone":null}'
check "the phone is null" [ "$(jget 'd["phone"]')" = null ]
expect "a bad e-mail address is invalid_email" 400 invalid_email PATCH "/users/$ALICE_ID" "$ALICE" -H "$JSON" \
    -d '{"email":"not-an-address"}'
expect "an unknown field is bad_request" 400 bad_request PATCH "/users/$ALICE_ID" "$ALICE" -H "$JSON" -d '{"phon":"+1"}'
expect "a non-admin cannot list users" 403 forbidden GET /users "$BOB"
expect "a non-admin cannot create users" 403 forbidden POST /users "$BOB" -H "$JSON" -d '{"name":"eve"}'
expect "a non-admin cannot make himself admin" 403 forbidden PATCH "/users/$BOB_ID" "$BOB" -H "$JSON" \
    -d '{"admin":true}'
expect "another user's record is 404" 404 not_found GET "/users/$ALICE_ID" "$BOB"
expect "another user's quota is 404" 404 not_found GET "/users/$ALICE_ID/quota" "$BOB"
expect "a non-admin cannot use ?user=" 403 forbidden GET "/messages?user=$ALICE_ID" "$BOB"
expect "the admin lists users" 200 - GET /users "$ADMIN"
check "the list has admin, alice and bob" [ "$(jget '" ".join(u["name"] for u in d["users"])')" = "admin alice bob" ]

# ------------------------------------------------------------------ tokens
expect "create a token" 201 - POST /tokens "$BOB" -H "$JSON" -d '{"label":"script"}'
TOK2=$(jget 'd["token"]')
expect "the new token works" 200 - GET /me "$TOK2"
expect "logout revokes the token" 204 - POST /logout "$TOK2"
expect "a revoked token is 401" 401 unauthorized GET /me "$TOK2"
expect "the other token still works" 200 - GET /me "$BOB"

# ----------------------------------------------------------- request bodies
expect "malformed JSON is bad_request" 400 bad_request POST /login "" -H "$JSON" -d '{"name": "bob",'
expect "a JSON array is bad_request" 400 bad_request POST /login "" -H "$JSON" -d '["bob"]'
expect "a missing field is bad_request" 400 bad_request POST /login "" -H "$JSON" -d '{"name":"bob"}'
expect "a body without application/json is 415" 415 unsupported_media_type POST /login "" \
    -H "Content-Type: text/plain" -d '{"name":"bob","password":"bob-secret-22"}'
"$PY" -c 'print("{\"label\":\"" + "x" * 1100000 + "\"}")' >"$T/big.json"
expect "a JSON body over 1 MiB is 413" 413 payload_too_large POST /tokens "$BOB" -H "$JSON" --data-binary "@$T/big.json"
expect "a bad query parameter is bad_request" 400 bad_request GET "/messages?limit=5000" "$BOB"

# ---------------------------------------------------------- upload, import
expect "upload an mbox" 201 - POST "/imports?account=takeout&folder=INBOX" "$ALICE" -H "$MBOX" \
    --data-binary "@$T/small.mbox"
ACC=$(jget 'd["id"]')
UPLOAD=$(jget 'd["settings"]["path"]')
check "the upload made an mbox account of alice" \
    [ "$(jget 'd["provider"] + " " + d["name"] + " " + str(d["user_id"]) + " " + d["settings"]["folder"]')" = \
    "mbox takeout $ALICE_ID INBOX" ]
check "the upload is stored under imports/<user id>/" \
    sh -c "case '$UPLOAD' in '$DATA/imports/$ALICE_ID/'*.mbox) true;; *) false;; esac"
check "the upload holds the bytes sent" cmp -s "$UPLOAD" "$T/small.mbox"
check "the upload is mode 0600" [ "$(stat -c %a "$UPLOAD")" = 600 ]
check "the upload directory is mode 0700" [ "$(stat -c %a "$DATA/imports/$ALICE_ID")" = 700 ]
# stored ACCOUNT N: the account's folders hold N messages
stored() {
    api GET "/accounts/$1" "$ALICE" >/dev/null && [ "$(jget 'sum(f["messages"] for f in d["folders"])')" = "$2" ]
}
check "the import stores the 4 messages" wait_for 20 stored "$ACC" 4
check "the account reports the provider's progress" [ "$(jget 'isinstance(d["progress"], dict)')" = true ]
check "the account lists no secrets" [ "$(jget 'd["secrets"]')" = "[]" ]
expect "uploading to a taken account name is 409" 409 conflict POST "/imports?account=takeout" "$ALICE" -H "$MBOX" \
    --data-binary "@$T/small.mbox"
expect "an upload without a token is 401" 401 unauthorized POST /imports "" -H "$MBOX" --data-binary "@$T/small.mbox"
expect "an upload of another type is 415" 415 unsupported_media_type POST /imports "$ALICE" \
    -H "Content-Type: text/plain" --data-binary "@$T/small.mbox"
{
    printf 'From x@example.com Mon Nov 23 09:15:00 2026\n'
    head -c 70000 /dev/zero | tr '\0' 'a'
    printf '\n'
} >"$T/big.mbox"
expect "an upload over max_upload is 413" 413 payload_too_large POST /imports "$ALICE" -H "$MBOX" \
    --data-binary "@$T/big.mbox"
expect "a chunked upload over max_upload is 413" 413 payload_too_large POST /imports "$ALICE" -H "$MBOX" \
    -H "Transfer-Encoding: chunked" --data-binary "@$T/big.mbox"
expect "an upload that is not an mbox is bad_request" 400 bad_request POST /imports "$ALICE" -H "$MBOX" \
    --data-binary "@$T/m1.eml"
check "refused uploads leave no file behind" [ "$(ls "$DATA/imports/$ALICE_ID" | wc -l)" -eq 1 ]

# ---------------------------------------------------------------- accounts
expect "a user's mbox path outside their import directory is 403" 403 forbidden POST /accounts "$ALICE" -H "$JSON" \
    -d "{\"name\":\"etc\",\"provider\":\"mbox\",\"settings\":{\"path\":\"$T/small.mbox\"}}"
expect "another user's upload is 403" 403 forbidden POST /accounts "$BOB" -H "$JSON" \
    -d "{\"name\":\"steal\",\"provider\":\"mbox\",\"settings\":{\"path\":\"$UPLOAD\"}}"
expect "settings.user is invalid_setting" 400 invalid_setting POST /accounts "$ALICE" -H "$JSON" \
    -d "{\"name\":\"x\",\"provider\":\"mbox\",\"settings\":{\"path\":\"$UPLOAD\",\"user\":\"bob\"}}"
expect "a bad option value is invalid_setting" 400 invalid_setting POST /accounts "$ALICE" -H "$JSON" \
    -d "{\"name\":\"x\",\"provider\":\"mbox\",\"settings\":{\"path\":\"$UPLOAD\",\"watch\":\"maybe\"}}"
check "invalid_setting names the key" grep -q 'settings.watch' "$T/body"
expect "an account with an SMTP password" 201 - POST /accounts "$ALICE" -H "$JSON" \
    -d "{\"name\":\"second\",\"provider\":\"mbox\",\"settings\":{\"path\":\"$UPLOAD\",\"watch\":false,
         \"smtp\":{\"host\":\"smtp.example.org\",\"password\":\"Smtp-Pass-9731\"}}}"
ACC2=$(jget 'd["id"]')
check "secrets lists the names, never the values" \
    sh -c "! grep -q Smtp-Pass-9731 '$T/body' && grep -q '\"secrets\":\[\"smtp.password\"\]' '$T/body'"
expect "new settings keep the secrets they leave out" 200 - PATCH "/accounts/$ACC2" "$ALICE" -H "$JSON" \
    -d "{\"settings\":{\"path\":\"$UPLOAD\",\"watch\":false,\"smtp\":{\"host\":\"smtp2.example.org\"}}}"
check "the SMTP password is still there" [ "$(jget 'd["secrets"]')" = '["smtp.password"]' ]
check "the second account imports the same file" wait_for 20 stored "$ACC2" 4
expect "GET /accounts lists both" 200 - GET /accounts "$ALICE"
check "alice has two accounts" [ "$(jget 'len(d["accounts"])')" = 2 ]
expect "bob sees no accounts" 200 - GET /accounts "$BOB"
check "bob's list is empty" [ "$(jget 'len(d["accounts"])')" = 0 ]

# ---------------------------------------------------------------- messages
expect "list alice's messages of the upload" 200 - GET "/messages?account=$ACC" "$ALICE"
check "4 messages, no next page" [ "$(jget 'str(len(d["messages"])) + " " + str(d["next_after"])')" = "4 None" ]
check "the GBK subject is decoded to UTF-8" [ "$(jget 'd["messages"][1]["subject"]')" = "你好，世界" ]
check "the UTF-8 subject is decoded" [ "$(jget 'd["messages"][2]["subject"]')" = "测试" ]
check "messages name their account and folder" \
    [ "$(jget 'd["messages"][0]["account"] + "/" + d["messages"][0]["folder"]')" = "takeout/INBOX" ]
IDS=$(jget '" ".join(str(m["id"]) + ":" + m["message_id"].split("@")[0] for m in d["messages"])')
FIRST=$(jget 'd["messages"][0]["id"]')
expect "a page of one" 200 - GET "/messages?account=$ACC&limit=1" "$ALICE"
check "the page says where the next one starts" [ "$(jget 'd["next_after"]')" = "$FIRST" ]
for pair in $IDS; do
    id=${pair%%:*} mid=${pair#*:}
    expect "GET /messages/$id" 200 - GET "/messages/$id" "$ALICE"
    check "message $id has its size and hash" [ "$(jget 'str(d["size"]) + " " + d["sha256"]')" = \
        "$(wc -c <"$T/$mid.eml" | tr -d ' ') $(sha256sum "$T/$mid.eml" | cut -d' ' -f1)" ]
    expect "GET /messages/$id/raw" 200 - GET "/messages/$id/raw" "$ALICE"
    check "the raw bytes of message $id equal the source" cmp -s "$T/body" "$T/$mid.eml"
    check "raw is message/rfc822" [ "$(hdr Content-Type)" = message/rfc822 ]
    expect "bob gets 404 for alice's message $id" 404 not_found GET "/messages/$id" "$BOB"
    expect "bob gets 404 for its raw bytes" 404 not_found GET "/messages/$id/raw" "$BOB"
done
expect "bob gets 404 for alice's account" 404 not_found GET "/accounts/$ACC" "$BOB"
expect "bob cannot change alice's account" 404 not_found PATCH "/accounts/$ACC" "$BOB" -H "$JSON" -d '{"paused":true}'
expect "bob cannot delete alice's account" 404 not_found DELETE "/accounts/$ACC?purge=true" "$BOB"
expect "bob cannot export alice's account" 404 not_found GET "/export?account=$ACC" "$BOB"
expect "bob cannot list alice's account" 404 not_found GET "/messages?account=$ACC" "$BOB"
expect "bob's own list is empty" 200 - GET /messages "$BOB"
check "bob sees none of alice's mail" [ "$(jget 'len(d["messages"])')" = 0 ]
expect "the admin reads alice's mail with ?user=" 200 - GET "/messages?user=$ALICE_ID&account=$ACC" "$ADMIN"
check "the admin sees her 4 messages" [ "$(jget 'len(d["messages"])')" = 4 ]

# ------------------------------------------------------------------ export
split_batch() { # split_batch FILE DIR: parse a batch; writes DIR/<message-id stem>.eml; prints the count
    "$PY" - "$1" "$2" <<'PY'
import json, sys
data = open(sys.argv[1], "rb").read()
pos, n = 0, 0
while pos < len(data):
    nl = data.index(b"\n", pos)
    meta = json.loads(data[pos:nl])
    pos = nl + 1
    raw = data[pos:pos + meta["size"]]
    pos += meta["size"]
    assert data[pos:pos + 1] == b"\n", "no newline after the raw bytes"
    pos += 1
    assert meta["account"] and meta["folder"] == "INBOX"
    open("%s/%s.eml" % (sys.argv[2], meta["message_id"].split("@")[0]), "wb").write(raw)
    n += 1
print(n)
PY
}
mkdir -p "$T/exp"
expect "export the upload's account" 200 - GET "/export?account=$ACC" "$ALICE"
check "export is application/x-mailhub-batch" [ "$(hdr Content-Type)" = application/x-mailhub-batch ]
check "a complete export says so" [ "$(hdr Mailhub-Complete)" = 1 ]
check "the batch holds 4 messages" [ "$(split_batch "$T/body" "$T/exp")" = 4 ]
for i in 1 2 3 4; do check "exported message m$i round-trips byte for byte" cmp -s "$T/exp/m$i.eml" "$T/m$i.eml"; done
expect "an export page smaller than a message" 200 - GET "/export?account=$ACC&max_bytes=1" "$ALICE"
check "holds one message and is not complete" [ "$(hdr Mailhub-Complete)" = 0 ]
check "names the last message as the next start" [ "$(hdr Mailhub-Next-After)" = "$FIRST" ]
rm -f "$T/exp"/*
check "that page is one message" [ "$(split_batch "$T/body" "$T/exp")" = 1 ]
AFTER=$FIRST
n=1
while [ "$n" -lt 10 ]; do
    api GET "/export?account=$ACC&max_bytes=1&after=$AFTER" "$ALICE" >/dev/null
    AFTER=$(hdr Mailhub-Next-After)
    n=$((n + 1))
    [ "$(hdr Mailhub-Complete)" = 1 ] && break
done
check "paging through the export takes 4 pages" [ "$n" -eq 4 ]

# ------------------------------------------------------------ verify, quota
expect "verify alice's mail" 200 - POST /verify "$ALICE"
check "verify checks 8 messages, all ok" \
    [ "$(jget '"%d %d %d %s" % (d["checked"], d["ok"], len(d["failed"]), d["complete"])')" = "8 8 0 True" ]
expect "verify in pages" 200 - POST "/verify?limit=5" "$ALICE"
check "a partial verify says where to go on" \
    [ "$(jget '"%d %s %s" % (d["checked"], d["complete"], d["next_after"] is not None)')" = "5 False True" ]
expect "alice's quota" 200 - GET "/users/$ALICE_ID/quota" "$ALICE"
check "usage counts both accounts' raw bytes" \
    [ "$(jget 'str(d["usage"]) + " " + str(d["messages"])')" = "$((2 * SUM)) 8" ]
check "the history starts with the initial allocation" [ "$(jget 'd["history"][0]["reason"]')" = initial ]

# ----------------------------------------------------------------- removal
expect "remove the second account (its mail stays)" 204 - DELETE "/accounts/$ACC2" "$ALICE"
expect "a removed account is still shown" 200 - GET "/accounts/$ACC2" "$ALICE"
check "it is marked removed" [ "$(jget 'd["status"]')" = removed ]
expect "its mail stays" 200 - GET "/messages?account=$ACC2" "$ALICE"
check "4 messages remain" [ "$(jget 'len(d["messages"])')" = 4 ]
expect "a removed account cannot be resumed" 409 conflict PATCH "/accounts/$ACC2" "$ALICE" -H "$JSON" \
    -d '{"paused":false}'
expect "purge the upload's account" 204 - DELETE "/accounts/$ACC?purge=true" "$ALICE"
expect "a purged account is gone" 404 not_found GET "/accounts/$ACC" "$ALICE"
expect "its messages are gone" 200 - GET "/messages" "$ALICE"
check "only the removed account's 4 are left" [ "$(jget 'len(d["messages"])')" = 4 ]
check "its uploaded file is gone" [ ! -e "$UPLOAD" ]
expect "quota after the purge" 200 - GET "/users/$ALICE_ID/quota" "$ALICE"
check "the purge gave the space back" [ "$(jget 'd["usage"]')" = "$SUM" ]

# ------------------------------------------------------------------ search
# Four messages for the blind index: Chinese text, HTML with a script and an
# attachment, plain English, a GBK body (会议通知) in base64.
{
    printf 'From zhang.san@example.cn Mon Nov 23 10:00:01 2026\n'
    printf 'From: Zhang San <zhang.san@example.cn>\nTo: alice@example.org\nSubject: =?UTF-8?B?56ys5LiJ5a2j5bqm5oql5ZGK?=\n'
    printf 'Message-ID: <s1@example.cn>\nContent-Type: text/plain; charset=utf-8\n\n请查收第三季度报告。 Uniquezebra\n\n'
    printf 'From carol@example.net Mon Nov 23 10:00:02 2026\n'
    printf 'From: Carol <carol@example.net>\nSubject: Meeting notes\nMessage-ID: <s2@example.net>\n'
    printf 'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=zz\n\n--zz\nContent-Type: text/html\n\n'
    printf '<p>Quarterly <b>budget</b> review</p><script>scriptsecret()</script>\n--zz\n'
    printf 'Content-Type: application/pdf\nContent-Disposition: attachment; filename="report.pdf"\n'
    printf 'Content-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n--zz--\n\n'
    printf 'From bob@example.net Mon Nov 23 10:00:03 2026\n'
    printf 'From: bob@example.net\nSubject: Hello\nMessage-ID: <s3@example.net>\n\nQuarterly party invitation\n\n'
    printf 'From li@example.cn Mon Nov 23 10:00:04 2026\n'
    printf 'From: li@example.cn\nSubject: gbk\nMessage-ID: <s4@example.cn>\nMIME-Version: 1.0\n'
    printf 'Content-Type: text/plain; charset=gb2312\nContent-Transfer-Encoding: base64\n\nu+HS6c2o1qo=\n\n'
} >"$T/search.mbox"
expect "upload the search test mbox" 201 - POST "/imports?account=searchbox&folder=INBOX" "$ALICE" -H "$MBOX" \
    --data-binary "@$T/search.mbox"
SACC=$(jget 'd["id"]')
check "the import stores the 4 search messages" wait_for 20 stored "$SACC" 4
# Stored first, analysed (words, attachments) once the store is idle: "pending" counts what is not yet.
analysed() {
    [ "$(api GET "/search?q=anything" "$ALICE")" = 200 ] && [ "$(jget 'd["pending"]')" = 0 ]
}
check "the search index catches up with the import (pending 0)" wait_for 20 analysed
# found Q [ARGS]: GET /search?q=Q as alice; prints the message ids of the answer (space-separated)
found() {
    _q=$("$PY" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$1")
    [ "$(api GET "/search?q=$_q$2" "${3:-$ALICE}")" = 200 ] || { echo "HTTP error"; return; }
    jget '" ".join(m["message_id"].split("@")[0] for m in d["messages"])'
}
check "a Chinese word finds the Chinese message (季度)" [ "$(found 季度)" = s1 ]
check "another one finds it too (报告)" [ "$(found 报告)" = s1 ]
check "a whole Chinese phrase finds it (季度报告)" [ "$(found 季度报告)" = s1 ]
check "a phrase that is not in it finds nothing (年度报告)" [ "$(found 年度报告)" = "" ]
check "a GBK body is found by its words (会议)" [ "$(found 会议)" = s4 ]
check "an English word finds two messages, newest first" [ "$(found QUARTERLY)" = "s3 s2" ]
check "every word must match (quarterly budget)" [ "$(found 'quarterly budget')" = s2 ]
check "a word of a body's text only (uniquezebra)" [ "$(found uniquezebra)" = s1 ]
check "scripts in HTML are not indexed" [ "$(found scriptsecret)" = "" ]
check "an attachment's name is indexed (pdf)" [ "$(found pdf)" = s2 ]
check "a sender's address finds its message" [ "$(found zhang.san@example.cn)" = s1 ]
check "a part of an address does too" [ "$(found example.net)" = "s3 s2" ]
check "a prefix is not a word (quarter)" [ "$(found quarter)" = "" ]
check "a search limited to the account" [ "$(found quarterly "&account=searchbox")" = "s3 s2" ]
check "a search in another account finds nothing" [ "$(found quarterly "&account=second")" = "" ]
check "an account may be given by its id too" [ "$(found quarterly "&account=$SACC")" = "s3 s2" ]
expect "a search in an unknown account is 404" 404 not_found GET "/search?q=quarterly&account=nosuch" "$ALICE"
expect "a page of one" 200 - GET "/search?q=quarterly&limit=1" "$ALICE"
check "the newest match and a next page" \
    [ "$(jget 'd["messages"][0]["message_id"] + " " + str(d["next_before"] == d["messages"][0]["id"])')" = \
    "s3@example.net True" ]
NB=$(jget 'd["next_before"]')
expect "the next page" 200 - GET "/search?q=quarterly&limit=1&before=$NB" "$ALICE"
check "the older match, the last page" \
    [ "$(jget 'd["messages"][0]["message_id"] + " " + str(d["next_before"])')" = "s2@example.net None" ]
check "search answers message summaries with their attachments" \
    [ "$(jget '[(a["name"], a["type"], a["size"]) for a in d["messages"][0]["attachments"]]')" = \
    '[["report.pdf", "application/pdf", 9]]' ]
check "and source_gone" [ "$(jget 'd["messages"][0]["source_gone"]')" = false ]
expect "the message list shows attachments too" 200 - GET "/messages?account=$SACC" "$ALICE"
check "one message of the four has one" [ "$(jget 'sum(len(m["attachments"]) for m in d["messages"])')" = 1 ]
expect "an empty query is 400" 400 bad_request GET "/search?q=" "$ALICE"
expect "no query is 400" 400 bad_request GET "/search" "$ALICE"
expect "a query without a word is 400" 400 bad_request GET "/search?q=%20a%20%21" "$ALICE"
expect "a bad limit is 400" 400 bad_request GET "/search?q=quarterly&limit=0" "$ALICE"
expect "search needs a token" 401 unauthorized GET "/search?q=quarterly" ""
check "bob finds none of alice's mail" [ "$(found quarterly "" "$BOB")" = "" ]
check "bob finds none of it by a Chinese word" [ "$(found 季度 "" "$BOB")" = "" ]
expect "a non-admin cannot search for another user" 403 forbidden GET "/search?q=quarterly&user=$ALICE_ID" "$BOB"
check "the admin searches alice's mail with ?user=" [ "$(found quarterly "&user=$ALICE_ID" "$ADMIN")" = "s3 s2" ]
check "(control: that grep finds what is in clear, a subject)" sh -c "grep -qF 'Meeting notes' '$DATA'/hub.db*"
for w in Uniquezebra uniquezebra scriptsecret budget 请查收 会议; do
    check "the database never holds the body word '$w' in clear" sh -c "! grep -qF '$w' '$DATA'/hub.db*"
done

# ------------------------------------------------------ docs/openapi.yaml
# Every route of the server's table is described (and nothing else), and every $ref resolves.
if "$PY" -c 'import yaml' 2>/dev/null; then
    check "openapi.yaml describes exactly the server's routes, its references resolve" "$PY" - \
        "$top_srcdir/core/mh_api.c" "$top_srcdir/docs/openapi.yaml" <<'PY'
import re, sys, yaml
src = open(sys.argv[1], encoding="utf-8").read()
routes = {(m.lower(), "/" + p.replace("#", "{id}"))
          for m, p in re.findall(r'\{"(GET|POST|PATCH|DELETE|PUT)", "([^"]+)", B_', src)}
doc = yaml.safe_load(open(sys.argv[2], encoding="utf-8"))
described = {(m, re.sub(r"\{[^}]+\}", "{id}", path)) for path, ops in doc["paths"].items()
             for m in ops if m in ("get", "post", "patch", "delete", "put")}
def refs(o):
    if isinstance(o, dict):
        for k, v in o.items():
            yield from [v] if k == "$ref" else refs(v)
    elif isinstance(o, list):
        for v in o:
            yield from refs(v)
def resolves(r):
    cur = doc
    for part in r.lstrip("#/").split("/"):
        cur = cur.get(part) if isinstance(cur, dict) else None
    return cur is not None
bad = [r for r in refs(doc) if not resolves(r)]
for x in sorted(routes - described):
    print("# not in openapi.yaml:", *x)
for x in sorted(described - routes):
    print("# not a route of the server:", *x)
for r in bad:
    print("# unresolved:", r)
sys.exit(0 if routes and routes == described and not bad else 1)
PY
else
    ok "# SKIP openapi.yaml check (no python3-yaml)"
fi

# --------------------------------------------------------------- the whole
check "every response carried Cache-Control: no-store" [ ! -s "$T/nostore.bad" ]
check "requests are logged with method, path and status" grep -q 'GET /api/v1/me -> 200' "$T/stderr"
for s in "$ADMIN" "$ALICE" "$BOB" "$TOK2" alice-secret-1 bob-secret-22 Smtp-Pass-9731; do
    check "the log never shows a token or password (${s%"${s#????}"}...)" sh -c "! grep -qF -- '$s' '$T/stderr'"
done
check "the database never holds the SMTP password in clear" sh -c "! grep -qF Smtp-Pass-9731 '$DATA'/hub.db*"
check "SIGTERM stops the daemon cleanly" stop_daemon

# a restart with registration closed: the data is still there
write_config closed
check "the daemon restarts" start_daemon "$T/stderr2"
expect "registration can be closed" 403 forbidden POST /register "" -H "$JSON" \
    -d '{"name":"mallory","password":"long-enough"}'
expect "alice's token survives a restart" 200 - GET /me "$ALICE"
expect "her password still works" 200 - POST /login "" -H "$JSON" -d '{"name":"alice","password":"alice-secret-1"}'
check "SIGTERM stops the daemon again" stop_daemon
finish

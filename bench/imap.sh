#!/bin/sh
# bench/imap.sh: the IMAP provider against a private Dovecot, next to mbsync
# (isync) doing the same transfer; bench/pop3.sh runs this with --proto pop3,
# next to mpop.  Run by hand; not part of `make check`.  See bench/README.md.
#
#   bench/imap.sh [--proto imap|pop3] [--build DIR] [--count N] [--seed S] [--new K]
#                 [--variants "plain tls rtt"] [--rtt MS] [--no-ref] [--keep]
#
# It starts Dovecot (tests/peers/dovecot.sh), fills one mailbox with N
# generated messages (tests/tools/fill_maildir.py: the realistic mix, several
# folders for IMAP, the INBOX for POP3), and for each variant (plain: no TLS;
# tls: implicit TLS with the test CA; rtt: plain through tests/tools/cutproxy.py
# adding MS ms of round trip; rtt-tls: both) and each client (mailhubd, then
# the reference: mbsync / mpop) times three runs:
#   fresh   a full import into an empty store (or Maildir)
#   same    a re-sync with nothing new (a restart of mailhubd / a new run of the tool)
#   new     a re-sync after K new messages were appended to the INBOX
# and prints wall seconds, msgs/s and MB/s (of the messages transferred, MB =
# 10^6 bytes), CPU seconds (user+sys; for mailhubd also per thread, on stderr),
# peak RSS, and the ratio mailhub/reference of the wall times.  mailhubd runs with its sqlite store on a fresh data
# directory; a run ends when the account holds every message and its provider
# reports the pass done (progress state "idle" after an account.synced event).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
build=${MH_BUILD:-$top/_build/default}
proto=imap
count=10000
seed=42
newk=100
variants="plain tls rtt"
rtt=20
ref=1
keep=0
while [ $# -gt 0 ]; do
    case $1 in
    --proto) proto=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --count) count=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --new) newk=$2; shift 2 ;;
    --variants) variants=$2; shift 2 ;;
    --rtt) rtt=$2; shift 2 ;;
    --no-ref) ref=0; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--proto imap|pop3] [--build DIR] [--count N] [--seed S] [--new K] [--variants \"plain tls rtt rtt-tls\"] [--rtt MS] [--no-ref] [--keep]" >&2; exit 2 ;;
    esac
done
case $proto in imap | pop3) ;; *) echo "--proto: imap or pop3" >&2; exit 2 ;; esac

say() { printf '%s\n' "$*" >&2; }
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
export PYTHONDONTWRITEBYTECODE=1
TOOLS=$top/tests/tools

# ---------------------------------------------------------------- build
if [ ! -x "$build/core/mailhubd" ] || [ ! -e "$build/plugins/$proto.la" ]; then
    say "building in $build"
    if [ ! -x "$top/configure" ]; then
        (cd "$top" && flock /tmp/autoreconf.lock autoreconf -fi)
    fi
    mkdir -p "$build"
    (cd "$build" && { [ -f Makefile ] || "$top/configure" >/dev/null; } && make -j"$(nproc)" >/dev/null)
fi
mailhubd=$build/core/mailhubd
[ -e "$build/plugins/$proto.la" ] || { say "no $proto plugin in $build/plugins"; exit 1; }

if [ "$proto" = imap ]; then reftool=mbsync refpkg=isync; else reftool=mpop refpkg=mpop; fi
if [ "$ref" -eq 1 ] && ! command -v "$reftool" >/dev/null 2>&1; then
    say "$reftool is not installed (apt-get install $refpkg): no reference figures"
    ref=0
fi

W=$(mktemp -d "${TMPDIR:-/tmp}/mh-bench-$proto.XXXXXX")
chmod 0755 "$W"
DPID="" PPIDS=""
cleanup() {
    if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then kill -KILL "$DPID" 2>/dev/null || true; fi
    for p in $PPIDS; do kill -TERM "$p" 2>/dev/null || true; done
    "$top/tests/peers/dovecot.sh" stop "$W/dovecot" >/dev/null 2>&1 || true
    if [ "$keep" -eq 1 ]; then say "(files kept in $W)"; else rm -rf "$W"; fi
}
trap cleanup EXIT INT TERM

hz=$(getconf CLK_TCK)
now() { date +%s.%N; }
cpu_of() { awk -v hz="$hz" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "$1"; }
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# ---------------------------------------------------------------- the source
MH_REQUIRE_PEERS=1 "$top/tests/peers/dovecot.sh" start "$W/dovecot" --user bench:bench-secret-1 >"$W/dove.env"
. "$W/dove.env"
folders="INBOX=50,Sent=20,Archive/2024=12,Drafts=5,项目/报告=8,Lists/dovecot-users=5"
[ "$proto" = pop3 ] && folders="INBOX=1"
say "filling the mailbox with $count messages (seed $seed)"
"$PY" "$TOOLS/fill_maildir.py" --maildir "$DOVECOT_MAIL/bench/Maildir" --count "$count" --seed "$seed" \
    --folders "$folders" --manifest "$W/manifest" 2>/dev/null
bytes=$(awk -F'\t' '{ s += $4 } END { print s }' "$W/manifest")
nfolders=$(cut -f2 "$W/manifest" | sort -u | wc -l)
say "source: $count messages, $(awk -v b="$bytes" 'BEGIN { printf "%.1f MB", b / 1e6 }'), $nfolders folder(s)"
itool() { "$PY" "$TOOLS/imaptool.py" --port "$DOVECOT_IMAP_PORT" --user bench --password bench-secret-1 "$@"; }

# the proxies that add the round trip
rtt_port="" rtt_tls_port=""
for v in $variants; do
    case $v in
    rtt | rtt-tls)
        target=$([ "$proto" = imap ] && echo "$DOVECOT_IMAP_PORT" || echo "$DOVECOT_POP3_PORT")
        [ "$v" = rtt-tls ] && target=$([ "$proto" = imap ] && echo "$DOVECOT_IMAPS_PORT" || echo "$DOVECOT_POP3S_PORT")
        "$PY" "$TOOLS/cutproxy.py" --target "127.0.0.1:$target" --latency "$rtt" --port-file "$W/$v.port" \
            --log "$W/$v.proxy.log" &
        PPIDS="$PPIDS $!"
        n=100
        while [ ! -s "$W/$v.port" ] && [ $n -gt 0 ]; do sleep 0.05; n=$((n - 1)); done
        [ "$v" = rtt ] && rtt_port=$(cat "$W/$v.port")
        [ "$v" = rtt-tls ] && rtt_tls_port=$(cat "$W/$v.port")
        ;;
    plain | tls) ;;
    *) say "unknown variant $v"; exit 2 ;;
    esac
done
# endpoint VARIANT: sets port and tls
endpoint() {
    if [ "$proto" = imap ]; then plainp=$DOVECOT_IMAP_PORT tlsp=$DOVECOT_IMAPS_PORT; else plainp=$DOVECOT_POP3_PORT tlsp=$DOVECOT_POP3S_PORT; fi
    case $1 in
    plain) port=$plainp tls=none ;;
    tls) port=$tlsp tls=implicit ;;
    rtt) port=$rtt_port tls=none ;;
    rtt-tls) port=$rtt_tls_port tls=implicit ;;
    esac
}

# report NAME MSGS BYTES WALL CPU RSS_MB EXTRA
report() {
    awk -v name="$1" -v n="$2" -v b="$3" -v s="$4" -v cpu="$5" -v rss="$6" -v extra="$7" 'BEGIN {
        if (s <= 0) s = 0.001
        printf "%-26s %6d msgs %7.1f MB %7.2f s %8.0f msgs/s %6.1f MB/s  cpu %6.2f s  peak RSS %6.1f MB  %s\n",
            name, n, b / 1e6, s, n / s, b / 1e6 / s, cpu, rss, extra
    }'
}

# ---------------------------------------------------------------- mailhubd
# mh_run VARIANT PHASE EXPECT MSGS BYTES: one mailhubd run; prints a line and sets last_wall
mh_run() {
    v=$1 phase=$2 expect=$3 msgs=$4 mbytes=$5
    endpoint "$v"
    d=$W/mh-$v
    [ "$phase" = fresh ] && rm -rf "$d"
    mkdir -p "$d"
    api=$(free_port)
    ca=""
    [ "$tls" = implicit ] && ca=", ca_file: $DOVECOT_CA_FILE"
    cat >"$W/mh-$v.yaml" <<EOF
daemon:
  data_dir: $d
  log_level: info
listeners:
  api:
    port: $api
store:
  plugin: sqlite
  options: {path: mailhub.db}
providers:
  bench:
    plugin: $proto
    user: admin
    options: {host: 127.0.0.1, port: $port, tls: $tls, username: bench, password: bench-secret-1$ca}
notifiers:
  events:
    plugin: log
    events: ["account.*"]
    options: {path: events.log}
EOF
    before=0
    [ -f "$d/events.log" ] && before=$(grep -c '"account.synced"' "$d/events.log" || true)
    log=$W/mh-$v-$phase.log
    t0=$(now)
    "$mailhubd" -c "$W/mh-$v.yaml" -P "$build/plugins" >"$log" 2>&1 &
    DPID=$!
    while [ ! -s "$d/admin.token" ] && kill -0 "$DPID" 2>/dev/null; do sleep 0.02; done
    tok=$(cat "$d/admin.token" 2>/dev/null || true)
    while :; do
        if ! kill -0 "$DPID" 2>/dev/null; then say "mailhubd exited early:"; tail -20 "$log" >&2; exit 1; fi
        synced=$(grep -c '"account.synced"' "$d/events.log" 2>/dev/null || true)
        if [ "${synced:-0}" -gt "$before" ] &&
            curl -sf -H "Authorization: Bearer $tok" "http://127.0.0.1:$api/api/v1/accounts" 2>/dev/null |
            "$PY" -c 'import json, sys
a = [x for x in json.load(sys.stdin)["accounts"] if x["name"] == "bench"][0]
n = sum(f.get("messages", 0) for f in a.get("folders") or [])
sys.exit(0 if n == int(sys.argv[1]) and (a.get("progress") or {}).get("state") == "idle" else 1)' "$expect"; then
            break
        fi
        sleep 0.05
    done
    t1=$(now)
    cpu=$(cpu_of "/proc/$DPID/stat")
    hwm=$(awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$DPID/status")
    threads=$(for t in /proc/"$DPID"/task/*; do
        c=$(cpu_of "$t/stat")
        if [ "$c" != 0.00 ]; then printf '%s=%ss ' "$(cat "$t/comm")" "$c"; fi
    done)
    kill -TERM "$DPID"
    wait "$DPID" 2>/dev/null || true
    DPID=""
    last_wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    report "mailhub $v $phase" "$msgs" "$mbytes" "$last_wall" "$cpu" "$hwm" ""
    say "    mailhubd threads (cpu): $threads"
}

# ---------------------------------------------------------------- references
# ref_run VARIANT PHASE MSGS BYTES: one mbsync / mpop run
ref_run() {
    v=$1 phase=$2 msgs=$3 mbytes=$4
    endpoint "$v"
    local=$W/ref-$v
    if [ "$phase" = fresh ]; then rm -rf "$local" "$W/ref-$v.uidls"; fi
    mkdir -p "$local"
    if [ "$proto" = imap ]; then
        cat >"$W/ref-$v.rc" <<EOF
IMAPAccount far
Host 127.0.0.1
Port $port
User bench
Pass bench-secret-1
SSLType $([ "$tls" = implicit ] && echo IMAPS || echo None)
$([ "$tls" = implicit ] && echo "CertificateFile $DOVECOT_CA_FILE")

IMAPStore far
Account far

MaildirStore near
Path $local/
Inbox $local/INBOX
SubFolders Verbatim

Channel bench
Far :far:
Near :near:
Patterns *
Create Near
Sync Pull
SyncState *
Expunge None
EOF
        set -- mbsync -q -c "$W/ref-$v.rc" bench
    else
        mkdir -p "$local/cur" "$local/new" "$local/tmp"
        cat >"$W/ref-$v.rc" <<EOF
defaults
account bench
host 127.0.0.1
port $port
user bench
password bench-secret-1
auth user
tls $([ "$tls" = implicit ] && echo on || echo off)
tls_starttls off
$([ "$tls" = implicit ] && echo "tls_trust_file $DOVECOT_CA_FILE")
delivery maildir $local
keep on
only_new on
uidls_file $W/ref-$v.uidls
received_header off
EOF
        chmod 0600 "$W/ref-$v.rc"
        set -- mpop -q -C "$W/ref-$v.rc" bench
    fi
    ref_wall=""
    /usr/bin/time -f '%e %U %S %M' -o "$W/ref.time" "$@" >"$W/ref.out" 2>&1 ||
        { say "$reftool failed:"; cat "$W/ref.out" >&2; return 0; }
    read -r wall user sys rss <"$W/ref.time"
    have=$(find "$local" -type f \( -path '*/cur/*' -o -path '*/new/*' \) | wc -l)
    ref_wall=$wall
    report "$reftool $v $phase" "$msgs" "$mbytes" "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')" \
        "$(awk -v r="$rss" 'BEGIN { printf "%.1f", r / 1024 }')" "(has $have)"
}

# ---------------------------------------------------------------- runs
say "mailhubd: $mailhubd; work dir: $W; $(nproc) CPUs; variants: $variants; added RTT ${rtt} ms"
first_new=1000000
for v in $variants; do
    for who in mailhub ref; do
        [ "$who" = ref ] && [ "$ref" -eq 0 ] && continue
        # fresh, then nothing new
        if [ "$who" = mailhub ]; then
            mh_run "$v" fresh "$count" "$count" "$bytes"
            eval "w_mh_fresh_$(echo "$v" | tr - _)=$last_wall"
            mh_run "$v" same "$count" 0 0
            eval "w_mh_same_$(echo "$v" | tr - _)=$last_wall"
        else
            ref_run "$v" fresh "$count" "$bytes"
            eval "w_ref_fresh_$(echo "$v" | tr - _)=$ref_wall"
            ref_run "$v" same 0 0
            eval "w_ref_same_$(echo "$v" | tr - _)=$ref_wall"
        fi
        # K new messages in the INBOX (the same K each time), a re-sync, then the source as it was
        uids=$(itool append-many INBOX "$seed" "$first_new" "$newk")
        nb=$("$PY" -c 'import sys; sys.path.insert(0, sys.argv[1]); import fill_maildir
print(sum(len(fill_maildir.make_message(int(sys.argv[2]), i)[0]) for i in range(int(sys.argv[3]), int(sys.argv[3]) + int(sys.argv[4]))))' \
            "$TOOLS" "$seed" "$first_new" "$newk")
        if [ "$who" = mailhub ]; then
            mh_run "$v" "new" $((count + newk)) "$newk" "$nb"
            eval "w_mh_new_$(echo "$v" | tr - _)=$last_wall"
            # the next run starts from a fresh store: leave the source as it was
            itool expunge INBOX "$uids" >/dev/null
        else
            ref_run "$v" "new" "$newk" "$nb"
            eval "w_ref_new_$(echo "$v" | tr - _)=$ref_wall"
            itool expunge INBOX "$uids" >/dev/null
        fi
    done
done

if [ "$ref" -eq 1 ]; then
    echo
    echo "wall time ratio mailhub / $reftool (below 1: mailhub is faster)"
    for v in $variants; do
        vv=$(echo "$v" | tr - _)
        for phase in fresh same new; do
            a=$(eval echo "\${w_mh_${phase}_$vv:-}")
            b=$(eval echo "\${w_ref_${phase}_$vv:-}")
            [ -n "$a" ] && [ -n "$b" ] && awk -v v="$v" -v p="$phase" -v a="$a" -v b="$b" \
                'BEGIN { printf "  %-8s %-6s %6.2f s / %6.2f s = %5.2f\n", v, p, a, b, (b > 0 ? a / b : 0) }'
        done
    done
fi

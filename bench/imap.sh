#!/bin/sh
# bench/imap.sh: the IMAP provider against a private Dovecot, next to mbsync
# (isync) doing the same transfer; bench/pop3.sh runs this with --proto pop3,
# next to mpop.  Run by hand; not part of `make check`.  See bench/README.md.
#
#   bench/imap.sh [--proto imap|pop3] [--build DIR] [--count N] [--seed S] [--new K]
#                 [--variants "plain tls rtt rtt-tls"] [--rtt MS] [--no-ref] [--keep]
#
# It starts Dovecot (tests/peers/dovecot.sh), fills one mailbox with N
# generated messages (tests/tools/fill_maildir.py: the realistic mix, several
# folders for IMAP, the INBOX for POP3), and for each variant (plain: no TLS;
# tls: implicit TLS with the test CA; rtt: plain through tests/tools/cutproxy.py
# adding MS ms of round trip; rtt-tls: both) times, for mailhubd:
#   fresh           a full import into an empty store; the daemon keeps running
#   fresh, indexed  the same, until the search index has caught up as well (the
#                   hub stores mail first and analyses bodies once its store is idle)
#   same (warm)     on that running daemon, a sync pass with nothing new, asked
#                   for with POST /api/v1/accounts/{id}/sync (bench/resync.py)
#   new (warm)      the same after K new messages were appended to the INBOX
#   same (restart)  mailhubd started again on the same data directory, nothing new
#                   (the K were expunged and the running daemon caught up, untimed)
#   new (restart)   the same after the K messages were appended again (new UIDs)
# and for the reference (mbsync / mpop, a one-shot tool: every run of it
# includes its start and login, like the restart runs of mailhubd):
#   fresh, same, new  a full copy into an empty Maildir, a run with nothing new,
#                   a run after K new messages
# It prints wall seconds, msgs/s and MB/s (of the messages transferred, MB =
# 10^6 bytes), CPU seconds (user+sys; for mailhubd also per thread, on stderr),
# peak RSS (the warm rows: the RSS after the pass), and the ratio
# mailhub/reference of the wall times (warm and restart rows against the
# tool's same/new).  mailhubd runs with its sqlite store on a fresh data
# directory, without push (imap: max_connections 1, so no IDLE; both:
# poll_interval 24h), so that only the POST starts a warm pass; a run ends
# when the account holds every message and its provider reports the pass
# done (an account.synced event; for the runs from a start also progress
# state idle or polling).
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
    -h|--help) awk 'NR == 1 { next } /^#/ { print; next } { exit }' "$0"; exit 0 ;;
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
        printf "%-32s %6d msgs %7.1f MB %7.3f s %8.0f msgs/s %6.1f MB/s  cpu %6.2f s  peak RSS %6.1f MB  %s\n",
            name, n, b / 1e6, s, n / s, b / 1e6 / s, cpu, rss, extra
    }'
}
# label PHASE: how a phase is printed
label() {
    case $1 in
    same_warm) echo "same (warm)" ;; new_warm) echo "new (warm)" ;;
    same_restart) echo "same (restart)" ;; new_restart) echo "new (restart)" ;;
    fresh_indexed) echo "fresh, indexed" ;;
    *) echo "$1" ;;
    esac
}

# ---------------------------------------------------------------- mailhubd
# No push, so that a warm pass starts only when the script asks for it: imap
# IDLEs on INBOX (and would fetch the appended mail by itself) unless
# max_connections is 1 (one connection, the one that syncs: no IDLE; status
# "polling" instead of "idle"), and both providers poll every poll_interval
# (24h, the longest allowed).  The sync pass itself is the same: it uses one
# connection either way.
if [ "$proto" = imap ]; then nopush="max_connections: 1, poll_interval: 24h"; else nopush="poll_interval: 24h"; fi

# mh_run VARIANT PHASE EXPECT MSGS BYTES [keep]: one mailhubd run from its start; prints a
# line and sets last_wall.  With "keep" the daemon goes on running (DPID; d, api) for mh_warm.
mh_run() {
    v=$1 phase=$2 expect=$3 msgs=$4 mbytes=$5 keepd=${6:-}
    endpoint "$v"
    d=$W/mh-$v
    [ "$phase" = fresh ] && rm -rf "$d"
    mkdir -p "$d"
    api=$(free_port)
    ca=""
    [ "$tls" = implicit ] && ca=", ca_file: $DOVECOT_CA_FILE"
    cat >"$W/mh-$v.yaml" <<EOC
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
    options: {host: 127.0.0.1, port: $port, tls: $tls, username: bench, password: bench-secret-1$ca, $nopush}
notifiers:
  events:
    plugin: log
    events: ["account.*"]
    options: {path: events.log}
EOC
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
sys.exit(0 if n == int(sys.argv[1]) and (a.get("progress") or {}).get("state") in ("idle", "polling") else 1)' "$expect"; then
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
    if [ -z "$keepd" ]; then mh_stop; fi
    last_wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    report "mailhub $v $(label "$phase")" "$msgs" "$mbytes" "$last_wall" "$cpu" "$hwm" ""
    say "    mailhubd threads (cpu): $threads"
    if [ -n "$keepd" ] && [ "$phase" = fresh ]; then
        # The mail is stored (and acknowledged) first; the bodies are analysed for the search index
        # and the attachment lists once the store is idle.  Also time until that has caught up:
        # GET /search answers how many messages are still pending.
        while :; do
            p=$(curl -sf -H "Authorization: Bearer $tok" "http://127.0.0.1:$api/api/v1/search?q=zzzz" 2>/dev/null |
                "$PY" -c 'import json, sys; print(json.load(sys.stdin).get("pending", 0))' 2>/dev/null || echo x)
            [ "$p" = 0 ] && break
            kill -0 "$DPID" 2>/dev/null || { say "mailhubd exited while indexing"; exit 1; }
            sleep 0.05
        done
        t2=$(now)
        cpu=$(cpu_of "/proc/$DPID/stat")
        threads=$(for t in /proc/"$DPID"/task/*; do
            c=$(cpu_of "$t/stat")
            if [ "$c" != 0.00 ]; then printf '%s=%ss ' "$(cat "$t/comm")" "$c"; fi
        done)
        index_wall=$(awk -v a="$t0" -v b="$t2" 'BEGIN { printf "%.3f", b - a }')
        report "mailhub $v fresh, indexed" "$msgs" "$mbytes" "$index_wall" "$cpu" \
            "$(awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$DPID/status")" "(search index complete)"
        say "    mailhubd threads (cpu): $threads"
    fi
}
mh_stop() {
    kill -TERM "$DPID"
    wait "$DPID" 2>/dev/null || true
    DPID=""
}
# resync EXPECT [ARGS]: bench/resync.py on the running daemon: POST sync, wait for the pass
resync() {
    "$PY" "$top/bench/resync.py" --api "http://127.0.0.1:$api" --token-file "$d/admin.token" --account bench \
        --events "$d/events.log" --pid "$DPID" --expect "$@"
}
# mh_warm VARIANT PHASE EXPECT MSGS BYTES: a sync pass of the running daemon, asked for
# with the API and timed by bench/resync.py (from the POST to the account.synced line
# and the count, polled every 2 ms); prints a line and sets last_wall
mh_warm() {
    v=$1 phase=$2 msgs=$4 mbytes=$5
    out=$(resync "$3") || { say "bench/resync.py failed; the daemon's log:"; tail -20 "$W/mh-$v-fresh.log" >&2; exit 1; }
    # shellcheck disable=SC2086 # four numbers
    set -- $out
    last_wall=$1
    report "mailhub $v $(label "$phase")" "$msgs" "$mbytes" "$1" "$2" "$4" \
        "(RSS now; cpu by schedstat $(awk -v c="$3" 'BEGIN { printf "%.1f ms", c * 1000 }'))"
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
# the K new messages (the same K each time: appended, synced, expunged again)
first_new=1000000
nb=$("$PY" -c 'import sys; sys.path.insert(0, sys.argv[1]); import fill_maildir
print(sum(len(fill_maildir.make_message(int(sys.argv[2]), i)[0]) for i in range(int(sys.argv[3]), int(sys.argv[3]) + int(sys.argv[4]))))' \
    "$TOOLS" "$seed" "$first_new" "$newk")
# keep_wall PREFIX VARIANT SECONDS: sets w_<prefix>_<variant>, for the ratios
keep_wall() { eval "w_$1_$(echo "$2" | tr - _)=$3"; }
for v in $variants; do
    for who in mailhub ref; do
        [ "$who" = ref ] && [ "$ref" -eq 0 ] && continue
        if [ "$who" = mailhub ]; then
            # fresh; the daemon keeps running for the warm passes
            mh_run "$v" fresh "$count" "$count" "$bytes" keep
            keep_wall mh_fresh "$v" "$last_wall"
            keep_wall mh_fresh_indexed "$v" "$index_wall"
            mh_warm "$v" same_warm "$count" 0 0
            keep_wall mh_same_warm "$v" "$last_wall"
            uids=$(itool append-many INBOX "$seed" "$first_new" "$newk")
            mh_warm "$v" new_warm $((count + newk)) "$newk" "$nb"
            keep_wall mh_new_warm "$v" "$last_wall"
            # the source as it was, and one more (untimed) pass, so that the restart
            # below finds nothing to do: the K are marked gone at the source (the
            # store keeps them, and they stay in the folders' counts)
            itool expunge INBOX "$uids" >/dev/null
            resync $((count + newk)) >/dev/null 2>"$W/catchup.err" ||
                { say "the pass after the expunge failed:"; cat "$W/catchup.err" >&2; exit 1; }
            mh_stop
            # from a start: nothing new, then K new (the same messages again, with new UIDs)
            mh_run "$v" same_restart $((count + newk)) 0 0
            keep_wall mh_same_restart "$v" "$last_wall"
            uids=$(itool append-many INBOX "$seed" "$first_new" "$newk")
            mh_run "$v" new_restart $((count + 2 * newk)) "$newk" "$nb"
            keep_wall mh_new_restart "$v" "$last_wall"
            itool expunge INBOX "$uids" >/dev/null
        else
            ref_run "$v" fresh "$count" "$bytes"
            keep_wall ref_fresh "$v" "$ref_wall"
            ref_run "$v" same 0 0
            keep_wall ref_same "$v" "$ref_wall"
            uids=$(itool append-many INBOX "$seed" "$first_new" "$newk")
            ref_run "$v" new "$newk" "$nb"
            keep_wall ref_new "$v" "$ref_wall"
            itool expunge INBOX "$uids" >/dev/null
        fi
    done
done

if [ "$ref" -eq 1 ]; then
    echo
    echo "wall time ratio mailhub / $reftool (below 1: mailhub is faster; $reftool's runs always include its start)"
    for v in $variants; do
        vv=$(echo "$v" | tr - _)
        for phase in fresh fresh_indexed same_restart same_warm new_restart new_warm; do
            a=$(eval echo "\${w_mh_${phase}_$vv:-}")
            b=$(eval echo "\${w_ref_${phase%_*}_$vv:-}")
            if [ -n "$a" ] && [ -n "$b" ]; then
                awk -v v="$v" -v p="$(label "$phase")" -v r="${phase%_*}" -v a="$a" -v b="$b" \
                    'BEGIN { printf "  %-8s %-15s %7.3f s / %7.3f s (%-5s) = %5.2f\n", v, p, a, b, r, (b > 0 ? a / b : 0) }'
            fi
        done
    done
fi

#!/bin/sh
# bench/import.sh: how fast mailhubd imports an mbox (parse, hash, encrypt,
# store, count quota, commit durably), and at what memory cost.  Run by hand;
# not part of `make check`.  See bench/README.md.
#
#   bench/import.sh [--build DIR] [--counts "10000 100000"] [--seed S] [--maildir] [--no-mbsync] [--keep]
#
# For each count it generates a deterministic mbox with tests/tools/gen_mbox,
# starts mailhubd on a fresh data directory with one `mbox` provider pointing
# at the file, waits for the provider to report the import done, and prints
# messages/s, MB/s of input, CPU seconds (user+sys of mailhubd, with the
# per-thread split) and peak RSS (VmHWM).  --maildir also imports the same
# mail as a Maildir++ tree (first count only).  If mbsync (isync) is
# installed, it also times a Maildir->Maildir copy of the same mail as a
# reference figure: not the same work (no parsing, no encryption, no database).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
build=${MH_BUILD:-$top/_build/default}
counts="10000 100000"
seed=42
do_maildir=0
do_mbsync=1
keep=0
while [ $# -gt 0 ]; do
    case $1 in
    --build) build=$2; shift 2 ;;
    --counts) counts=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --maildir) do_maildir=1; shift ;;
    --no-mbsync) do_mbsync=0; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--build DIR] [--counts \"N ...\"] [--seed S] [--maildir] [--no-mbsync] [--keep]" >&2; exit 2 ;;
    esac
done

say() { printf '%s\n' "$*" >&2; }

# ---------------------------------------------------------------- build
if [ ! -x "$build/core/mailhubd" ] || [ ! -e "$build/plugins/mbox.la" ]; then
    say "building in $build"
    if [ ! -x "$top/configure" ]; then
        (cd "$top" && flock /tmp/autoreconf.lock autoreconf -fi)
    fi
    mkdir -p "$build"
    (cd "$build" && { [ -f Makefile ] || "$top/configure" >/dev/null; } && make -j2 >/dev/null)
fi
mailhubd=$build/core/mailhubd
[ -x "$mailhubd" ] || { say "no mailhubd in $build"; exit 1; }

W=$(mktemp -d "${TMPDIR:-/tmp}/mh-bench.XXXXXX")
DPID=""
cleanup() {
    if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then kill -KILL "$DPID" 2>/dev/null || true; fi
    if [ "$keep" -eq 1 ]; then say "(files kept in $W)"; else rm -rf "$W"; fi
}
trap cleanup EXIT INT TERM

# The generator: the build's own, or compiled here.
gen=$build/tests/tools/gen_mbox
if [ ! -x "$gen" ]; then
    (cd "$build" && make tests/tools/gen_mbox >/dev/null 2>&1) || true
fi
if [ ! -x "$gen" ]; then
    gen=$W/gen_mbox
    ${CC:-cc} -std=c11 -O2 -o "$gen" "$top/tests/tools/gen_mbox.c" -lcrypto -lm
fi

hz=$(getconf CLK_TCK)
now() { date +%s.%N; }
# CPU seconds (user+sys) of a process or thread from its stat file
cpu_of() { awk -v hz="$hz" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "$1"; }

# run_import NAME SOURCE BYTES COUNT: one mailhubd run importing SOURCE
run_import() {
    name=$1 src=$2 bytes=$3 count=$4
    d=$W/data-$name
    rm -rf "$d"
    mkdir -p "$d"
    cat >"$W/$name.yaml" <<EOF
daemon:
  data_dir: $d
  log_level: info
store:
  plugin: sqlite
  options:
    path: mailhub.db
providers:
  bench:
    plugin: mbox
    user: admin
    options:
      path: $src
      watch: false
EOF
    log=$W/$name.log
    : >"$log"
    t0=$(now)
    "$mailhubd" -c "$W/$name.yaml" -P "$build/plugins" >"$log" 2>&1 &
    DPID=$!
    # Done when the provider logs its summary (it emits account.synced with it).
    while ! grep -q '\[provider/bench\] imported .*: [0-9]* messages' "$log"; do
        if ! kill -0 "$DPID" 2>/dev/null; then
            say "mailhubd exited early:"; tail -20 "$log" >&2; exit 1
        fi
        sleep 0.2
    done
    t1=$(now)
    cpu=$(cpu_of "/proc/$DPID/stat")
    hwm=$(awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$DPID/status")
    threads=$(for t in /proc/"$DPID"/task/*; do
        printf '%s=%ss ' "$(cat "$t/comm")" "$(cpu_of "$t/stat")"
    done)
    kill -TERM "$DPID"
    wait "$DPID" 2>/dev/null || true
    DPID=""
    summary=$(grep -m1 '\[provider/bench\] imported .*: [0-9]* messages' "$log" | sed 's/.*\] imported [^:]*: //')
    stored=$(echo "$summary" | sed -n 's/^\([0-9]*\) messages, \([0-9]*\) new.*/\2/p')
    db=$(du -sk "$d" | awk '{ printf "%.1f", $1 / 1024 }')
    awk -v n="$count" -v b="$bytes" -v t0="$t0" -v t1="$t1" -v cpu="$cpu" -v hwm="$hwm" -v name="$name" \
        -v stored="$stored" -v db="$db" 'BEGIN {
        s = t1 - t0
        printf "%-16s %8d msgs %8.1f MB  %7.1f s  %8.0f msgs/s  %6.1f MB/s", name, n, b / 1e6, s, n / s, b / 1e6 / s
        printf "  cpu %7.1f s  peak RSS %6.1f MB  stored %s  data %s MB\n", cpu, hwm, stored, db
    }'
    say "    threads (cpu s): $threads"
    say "    provider: $summary"
}

# run_mbsync NAME MAILDIR COUNT BYTES: a Maildir->Maildir copy with mbsync, for reference
run_mbsync() {
    name=$1 md=$2 count=$3 bytes=$4
    out=$W/mbsync-$name
    rm -rf "$out"
    cat >"$W/mbsyncrc" <<EOF
MaildirStore src
Inbox $md
SubFolders Maildir++

MaildirStore dst
Inbox $out
SubFolders Maildir++

Channel bench
Far :src:
Near :dst:
Patterns *
Create Near
Sync Pull
SyncState *
EOF
    if [ -x /usr/bin/time ]; then
        /usr/bin/time -f '%e %U %S %M' -o "$W/mbsync.time" mbsync -q -c "$W/mbsyncrc" -a >/dev/null 2>"$W/mbsync.err" ||
            { say "mbsync failed:"; cat "$W/mbsync.err" >&2; return 0; }
        read -r wall user sys rss <"$W/mbsync.time"
    else
        t0=$(now)
        mbsync -q -c "$W/mbsyncrc" -a >/dev/null 2>"$W/mbsync.err" || { say "mbsync failed"; return 0; }
        wall=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print b - a }')
        user=0 sys=0 rss=0
    fi
    copied=$(find "$out" -type f -path '*/cur/*' -o -type f -path '*/new/*' | wc -l)
    awk -v n="$count" -v b="$bytes" -v s="$wall" -v u="$user" -v y="$sys" -v rss="$rss" -v name="$name" \
        -v c="$copied" 'BEGIN {
        if (s <= 0) s = 0.01
        printf "%-16s %8d msgs %8.1f MB  %7.1f s  %8.0f msgs/s  %6.1f MB/s", name, n, b / 1e6, s, n / s, b / 1e6 / s
        printf "  cpu %7.1f s  peak RSS %6.1f MB  copied %d", u + y, rss / 1024, c
        printf "  (reference: Maildir->Maildir copy, not the same work)\n"
    }'
}

say "mailhubd: $mailhubd; work dir: $W; $(nproc) CPUs"
first=1
for n in $counts; do
    say "generating $n messages (seed $seed)"
    "$gen" --count "$n" --seed "$seed" >"$W/in-$n.mbox"
    bytes=$(wc -c <"$W/in-$n.mbox")
    run_import "mbox-$n" "$W/in-$n.mbox" "$bytes" "$n"
    rm -f "$W/in-$n.mbox"
    rm -rf "$W/data-mbox-$n"
    want_mbsync=0
    if [ "$do_mbsync" -eq 1 ] && command -v mbsync >/dev/null; then want_mbsync=1; fi
    if [ "$first" -eq 1 ] && { [ "$do_maildir" -eq 1 ] || [ "$want_mbsync" -eq 1 ]; }; then
        "$gen" --count "$n" --seed "$seed" --maildir "$W/md-$n"
        mbytes=$(find "$W/md-$n" -type f -name '*.gen*' -exec cat {} + | wc -c)
        if [ "$do_maildir" -eq 1 ]; then
            run_import "maildir-$n" "$W/md-$n" "$mbytes" "$n"
            rm -rf "$W/data-maildir-$n"
        fi
        if [ "$want_mbsync" -eq 1 ]; then
            run_mbsync "mbsync-$n" "$W/md-$n" "$n" "$mbytes"
        fi
        rm -rf "$W/md-$n" "$W/mbsync-mbsync-$n"
    fi
    first=0
done
if [ "$do_mbsync" -eq 1 ] && ! command -v mbsync >/dev/null; then
    say "mbsync not installed (apt-get install isync): no reference figure"
fi

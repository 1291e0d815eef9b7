#!/bin/sh
# mailhub quick start, for a fresh Debian 12 machine, as root (or with sudo):
#
#   ./bootstrap.sh run    install what is missing, build, run mailhubd on config/mailhub.yaml
#   ./bootstrap.sh test   install what is missing, build, run every test; ends "N passed, N failed"
#   ./bootstrap.sh bench  also mbsync and mpop; prints the benchmarks (bench/README.md), not part of CI
#
# Builds go to _build/ (out of tree); the daemon's data goes to data/.
set -eu
cd "$(dirname "$0")"
ROOT=$(pwd)
MODE=${1:-}
JOBS=$(nproc 2>/dev/null || echo 2)

BUILD_PKGS="ca-certificates gcc make autoconf automake libtool libltdl-dev pkg-config libev-dev
 libcurl4-openssl-dev libyaml-dev libssl-dev libsqlite3-dev libjansson-dev libmicrohttpd-dev
 libgmime-3.0-dev libargon2-dev"
TEST_PKGS="libcmocka-dev clang libclang-rt-14-dev procps curl python3 dovecot-imapd dovecot-pop3d openssl kannel kannel-extras python3-aiosmtpd python3-yaml"
# for bench/imap.sh and bench/pop3.sh (reference clients), not for the tests
BENCH_PKGS="isync mpop dovecot-imapd dovecot-pop3d openssl python3 curl"

say() { printf '==> %s\n' "$*"; }

install_missing() {
    missing=""
    for p in $*; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    say "installing:$missing"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing >/dev/null
}

autogen() {
    if [ ! -x configure ] || [ configure.ac -nt configure ]; then
        say "autogen"
        ./autogen.sh >/dev/null
    fi
}

# build DIR CONFIGURE-ARGS...
build() {
    dir=$1; shift
    mkdir -p "$dir"
    if [ ! -f "$dir/Makefile" ] || [ configure -nt "$dir/Makefile" ]; then
        say "configure $dir $*"
        (cd "$dir" && "$ROOT/configure" -q "$@")
    fi
    say "build $dir"
    make -C "$dir" -s -j"$JOBS" >/dev/null
}

PASS=0
FAIL=0
count_suite() { # add the results of DIR/test-suite.log
    log=$1/test-suite.log
    if [ -f "$log" ]; then
        p=$(sed -n 's/^# PASS: *\([0-9]*\).*/\1/p' "$log" | head -1)
        f=$(sed -n 's/^# FAIL: *\([0-9]*\).*/\1/p' "$log" | head -1)
        e=$(sed -n 's/^# ERROR: *\([0-9]*\).*/\1/p' "$log" | head -1)
        x=$(sed -n 's/^# XPASS: *\([0-9]*\).*/\1/p' "$log" | head -1)
        PASS=$((PASS + ${p:-0}))
        FAIL=$((FAIL + ${f:-0} + ${e:-0} + ${x:-0}))
    else
        FAIL=$((FAIL + 1))
    fi
}
step() { # step NAME COMMAND...: one pass/fail for a whole step
    name=$1; shift
    say "$name"
    if "$@"; then PASS=$((PASS + 1)); else say "FAILED: $name"; FAIL=$((FAIL + 1)); fi
}
check_in() { # run make check in DIR, print failures' logs, count
    dir=$1
    rm -f "$dir/test-suite.log"
    if ! make -C "$dir" -s -j"$JOBS" check >"$dir/check.out" 2>&1; then
        cat "$dir/check.out"
        [ -f "$dir/test-suite.log" ] && cat "$dir/test-suite.log"
    else
        grep -E '^(PASS|FAIL|ERROR|XPASS|SKIP):' "$dir/check.out" || true
    fi
    count_suite "$dir"
}

# fuzz_run TARGET CORPUS SECONDS [LIBFUZZER-OPTION]...: a libFuzzer smoke run of one target from its
# seed corpus (copied: the run adds to it); a crash keeps its input under _build/fuzz/.
fuzz_run() {
    target=$1 seeds=$2 secs=$3
    shift 3
    mkdir -p _build/fuzz
    [ -f _build/fuzz/Makefile ] || (cd _build/fuzz && "$ROOT/configure" -q CC=clang --enable-fuzzers)
    make -C _build/fuzz -s -j"$JOBS" "tests/fuzz/$target" >/dev/null
    corpus=$(mktemp -d)
    cp "$ROOT/tests/fuzz/corpus/$seeds"/* "$corpus"/
    "_build/fuzz/tests/fuzz/$target" -max_total_time="$secs" -timeout=10 -artifact_prefix="$ROOT/_build/fuzz/" \
        "$@" "$corpus" >"_build/fuzz/$target.log" 2>&1 || { tail -40 "_build/fuzz/$target.log"; rm -rf "$corpus"; return 1; }
    tail -2 "_build/fuzz/$target.log"
    rm -rf "$corpus"
}

fuzz_smoke() { fuzz_run fuzz_config config "${MH_FUZZ_SECONDS:-60}"; }
fuzz_mime_smoke() { fuzz_run fuzz_mime mime "${MH_FUZZ_SECONDS_MIME:-30}"; }
fuzz_imap_smoke() { fuzz_run fuzz_imap imap "${MH_FUZZ_SECONDS_IMAP:-30}" -rss_limit_mb=2048; }
fuzz_pop3_smoke() { fuzz_run fuzz_pop3 pop3 "${MH_FUZZ_SECONDS_POP3:-30}"; }

distcheck() {
    make -C _build/default -s distcheck >_build/default/distcheck.log 2>&1 || { tail -60 _build/default/distcheck.log; return 1; }
    grep -A2 'archives ready' _build/default/distcheck.log || true
}

case "$MODE" in
run)
    install_missing $BUILD_PKGS
    autogen
    build _build/default --disable-tests
    say "starting mailhubd on config/mailhub.yaml (Ctrl-C stops it; data in data/)"
    exec _build/default/core/mailhubd -c config/mailhub.yaml --plugin-path "$ROOT/_build/default/plugins"
    ;;
test)
    install_missing $BUILD_PKGS $TEST_PKGS
    # the IMAP/POP3 tests fail instead of skipping when their Dovecot peer is missing
    export MH_REQUIRE_PEERS=1
    autogen
    build _build/default --enable-werror
    check_in _build/default
    say "unit and integration tests again under ASan + UBSan"
    build _build/asan --enable-werror --enable-sanitizers
    check_in _build/asan
    step "libFuzzer smoke run of the YAML loader" fuzz_smoke
    step "libFuzzer smoke run of the MIME header decoder" fuzz_mime_smoke
    step "libFuzzer smoke run of the IMAP response parser" fuzz_imap_smoke
    step "libFuzzer smoke run of the POP3 response parser" fuzz_pop3_smoke
    step "make distcheck" distcheck
    echo "$PASS passed, $FAIL failed"
    [ "$FAIL" -eq 0 ]
    ;;
bench)
    # not part of CI: prints figures next to the tools people use today (bench/README.md)
    install_missing $BUILD_PKGS $TEST_PKGS $BENCH_PKGS
    autogen
    build _build/default
    bench/import.sh --build _build/default --counts 10000
    bench/imap.sh --build _build/default
    bench/pop3.sh --build _build/default
    bench/notify.sh _build/default
    ;;
*)
    echo "usage: $0 run|test|bench" >&2
    echo "  run    install what is missing, build, and run mailhubd on config/mailhub.yaml" >&2
    echo "  test   install what is missing, build, and run every test" >&2
    echo "  bench  install what is missing (also mbsync and mpop), build, and print the benchmarks" >&2
    exit 2
    ;;
esac

#!/bin/sh
# mailhub quick start, for a fresh Debian 12 machine, as root (or with sudo):
#
#   ./bootstrap.sh run    install what is missing, build, run mailhubd on config/mailhub.yaml
#   ./bootstrap.sh test   install what is missing, build, run every test; ends "N passed, N failed"
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
TEST_PKGS="libcmocka-dev clang libclang-rt-14-dev procps curl python3 python3-yaml kannel kannel-extras python3-aiosmtpd openssl"

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

fuzz_smoke() {
    mkdir -p _build/fuzz
    [ -f _build/fuzz/Makefile ] || (cd _build/fuzz && "$ROOT/configure" -q CC=clang --enable-fuzzers)
    make -C _build/fuzz -s -j"$JOBS" tests/fuzz/fuzz_config >/dev/null
    corpus=$(mktemp -d)
    cp "$ROOT"/tests/fuzz/corpus/config/* "$corpus"/
 dict=""
    [ -f "$ROOT/tests/fuzz/yaml.dict" ] && dict="-dict=$ROOT/tests/fuzz/yaml.dict"
    # shellcheck disable=SC2086
    _build/fuzz/tests/fuzz/fuzz_config -max_total_time="${MH_FUZZ_SECONDS:-60}" -timeout=10 $dict "$corpus" >_build/fuzz/fuzz.log 2>&1 || { tail -40 _build/fuzz/fuzz.log; return 1; }
    tail -2 _build/fuzz/fuzz.log
    rm -rf "$corpus"
}

fuzz_mime_smoke() {
    mkdir -p _build/fuzz
    [ -f _build/fuzz/Makefile ] || (cd _build/fuzz && "$ROOT/configure" -q CC=clang --enable-fuzzers)
    make -C _build/fuzz -s -j"$JOBS" tests/fuzz/fuzz_mime >/dev/null
    corpus=$(mktemp -d)
    cp "$ROOT"/tests/fuzz/corpus/mime/* "$corpus"/
    _build/fuzz/tests/fuzz/fuzz_mime -max_total_time="${MH_FUZZ_SECONDS_MIME:-30}" -timeout=10 \
        -artifact_prefix="$ROOT/_build/fuzz/" "$corpus" >_build/fuzz/fuzz_mime.log 2>&1 || { tail -40 _build/fuzz/fuzz_mime.log; return 1; }
    tail -2 _build/fuzz/fuzz_mime.log
    rm -rf "$corpus"
}

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
    autogen
    build _build/default --enable-werror
    check_in _build/default
    say "unit and integration tests again under ASan + UBSan"
    build _build/asan --enable-werror --enable-sanitizers
    check_in _build/asan
    step "libFuzzer smoke run of the YAML loader" fuzz_smoke
    step "libFuzzer smoke run of the MIME header decoder" fuzz_mime_smoke
    step "make distcheck" distcheck
    echo "$PASS passed, $FAIL failed"
    [ "$FAIL" -eq 0 ]
    ;;
*)
    echo "usage: $0 run|test" >&2
    echo "  run   install what is missing, build, and run mailhubd on config/mailhub.yaml" >&2
    echo "  test  install what is missing, build, and run every test" >&2
    exit 2
    ;;
esac

# Shared helpers for the integration tests (POSIX sh).
: "${top_builddir:?run through make check}"
: "${top_srcdir:?run through make check}"
MAILHUBD="$top_builddir/core/mailhubd"
T=$(mktemp -d "${TMPDIR:-/tmp}/mh-it.XXXXXX")
DAEMON_PID=""
FAILS=0

cleanup() {
    if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -KILL "$DAEMON_PID" 2>/dev/null || true
    fi
    if [ "$FAILS" -eq 0 ]; then rm -rf "$T"; else echo "(test files kept in $T)"; fi
}
trap cleanup EXIT

ok() { echo "ok - $*"; }
not_ok() { echo "not ok - $*"; FAILS=$((FAILS + 1)); }
check() { # check DESCRIPTION COMMAND...
    d=$1; shift
    if "$@"; then ok "$d"; else not_ok "$d"; fi
}
# wait_for SECONDS COMMAND...: poll until the command succeeds
wait_for() {
    n=$(($1 * 10)); shift
    while [ "$n" -gt 0 ]; do
        if "$@"; then return 0; fi
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}
finish() {
    if [ "$FAILS" -eq 0 ]; then echo "all checks passed"; exit 0; fi
    echo "$FAILS check(s) failed"
    exit 1
}

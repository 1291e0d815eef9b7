#!/bin/sh
# tests/peers/kannel.sh: a private Kannel (bearerbox + smsbox + the fake SMSC
# from kannel-extras) on 127.0.0.1 for the tests, under a directory of the
# caller's.  Never a system service: its own config and logs under DIR, free
# ports picked per run, every process stopped by its recorded PID.
#
#   kannel.sh start DIR
#       Creates DIR, writes DIR/kannel.conf, starts bearerbox, the fake SMSC
#       (fakesmsc, which prints every SMS it receives to DIR/fakesmsc.out) and
#       smsbox, waits until the admin status page shows the SMSC online and the
#       smsbox connected, and prints shell assignments (also in DIR/kannel.env):
#         KANNEL_DIR KANNEL_SENDSMS_URL KANNEL_USER KANNEL_PASSWORD KANNEL_FROM
#         KANNEL_ADMIN_PORT KANNEL_OUT (the fakesmsc output file)
#   kannel.sh stop-smsbox DIR     stop smsbox only (sendsms refuses connections)
#   kannel.sh start-smsbox DIR    start it again and wait until it is connected
#   kannel.sh stop DIR            stop smsbox, fakesmsc and bearerbox
#   kannel.sh env DIR             print the assignments again
#
# fakesmsc prints "DEBUG: Got message N: <from to text TEXT>" for GSM text and
# "<from to ucs-2 HEX...>" style lines for UCS-2 (coding=2): the text is then
# URL-encoded UTF-16BE (see ../shared/docs/PEERS.md and tests/integration/notify.sh).
#
# Exit 77 (skip) when Kannel is not installed, unless MH_REQUIRE_PEERS=1 (then 1).
set -eu

PY=${MH_PYTHON:-/usr/bin/python3}
[ -x "$PY" ] || PY=python3
FAKESMSC=/usr/lib/kannel/test/fakesmsc

die() { echo "kannel.sh: $*" >&2; exit 1; }

need_kannel() {
    if ! command -v bearerbox >/dev/null 2>&1 && [ ! -x /usr/sbin/bearerbox ]; then
        missing="bearerbox (apt-get install kannel kannel-extras)"
    elif [ ! -x "$FAKESMSC" ]; then
        missing="$FAKESMSC (apt-get install kannel-extras)"
    else
        BEARERBOX=$(command -v bearerbox 2>/dev/null || echo /usr/sbin/bearerbox)
        SMSBOX=$(command -v smsbox 2>/dev/null || echo /usr/sbin/smsbox)
        return 0
    fi
    if [ "${MH_REQUIRE_PEERS:-0}" = 1 ]; then
        die "$missing is not installed and MH_REQUIRE_PEERS=1"
    fi
    echo "kannel.sh: $missing is not installed: skipping" >&2
    exit 77
}

free_ports() { # free_ports N BASE: N free TCP ports on 127.0.0.1 in BASE..BASE+3999
    "$PY" - "$1" "$2" <<'EOF'
import random, socket, sys
n, base = int(sys.argv[1]), int(sys.argv[2])
ports, start = [], random.SystemRandom().randrange(4000)
for k in range(4000):
    p = base + (start + k) % 4000
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    ports.append(p)
    if len(ports) == n:
        break
if len(ports) < n:
    sys.exit("no free ports in %d..%d" % (base, base + 3999))
print(" ".join(map(str, ports)))
EOF
}

port_open() {
    "$PY" -c 'import socket, sys
s = socket.socket(); s.settimeout(0.5)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
s.close()' "$1"
}

status() { # the admin status page
    "$PY" -c 'import sys, urllib.request
try:
    print(urllib.request.urlopen("http://127.0.0.1:%s/status.txt?password=adminpw" % sys.argv[1], timeout=2).read().decode())
except Exception:
    sys.exit(1)' "$1"
}

wait_until() { # wait_until SECONDS COMMAND...
    n=$(($1 * 10)); shift
    while [ "$n" -gt 0 ]; do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}

smsc_online() { status "$KANNEL_ADMIN_PORT" | grep -q 'FAKE.*online'; }
smsbox_online() { status "$KANNEL_ADMIN_PORT" | grep -Eq 'smsbox:.*on-?line'; }

load_env() {
    [ -f "$1/kannel.env" ] || die "no Kannel started in $1"
    . "$1/kannel.env"
}

start_smsbox() {
    dir=$1
    "$SMSBOX" -v 1 "$dir/kannel.conf" >"$dir/smsbox.stdout" 2>&1 &
    echo $! >"$dir/smsbox.pid"
    wait_until 15 smsbox_online || die "smsbox did not connect (see $dir/smsbox.log)"
    wait_until 10 port_open "$KANNEL_SENDSMS_PORT" || die "smsbox does not listen on $KANNEL_SENDSMS_PORT"
}

stop_pid() { # stop_pid FILE: TERM, then KILL after 5 s
    [ -f "$1" ] || return 0
    pid=$(cat "$1")
    rm -f "$1"
    kill "$pid" 2>/dev/null || return 0
    n=50
    while kill -0 "$pid" 2>/dev/null && [ "$n" -gt 0 ]; do sleep 0.1; n=$((n - 1)); done
    kill -KILL "$pid" 2>/dev/null || true
}

do_start() {
    dir=$1
    need_kannel
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    set -- $(free_ports 4 24000)
    KANNEL_ADMIN_PORT=$1 KANNEL_BOX_PORT=$2 KANNEL_SMSC_PORT=$3 KANNEL_SENDSMS_PORT=$4
    cat >"$dir/kannel.conf" <<EOF
group = core
admin-port = $KANNEL_ADMIN_PORT
admin-interface = 127.0.0.1
admin-password = adminpw
admin-allow-ip = "127.0.0.1"
smsbox-port = $KANNEL_BOX_PORT
smsbox-interface = 127.0.0.1
box-allow-ip = "127.0.0.1"
log-file = "$dir/bearerbox.log"
log-level = 1

group = smsc
smsc = fake
smsc-id = FAKE
port = $KANNEL_SMSC_PORT
our-host = 127.0.0.1
connect-allow-ip = "127.0.0.1"

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = $KANNEL_BOX_PORT
sendsms-port = $KANNEL_SENDSMS_PORT
sendsms-interface = 127.0.0.1
global-sender = 12345
log-file = "$dir/smsbox.log"
log-level = 1

group = sendsms-user
username = tester
password = foobar
max-messages = 3

group = sms-service
keyword = default
text = "No service specified"
EOF
    cat >"$dir/kannel.env" <<EOF
KANNEL_DIR='$dir'
KANNEL_ADMIN_PORT=$KANNEL_ADMIN_PORT
KANNEL_SENDSMS_PORT=$KANNEL_SENDSMS_PORT
KANNEL_SENDSMS_URL='http://127.0.0.1:$KANNEL_SENDSMS_PORT/cgi-bin/sendsms'
KANNEL_USER=tester
KANNEL_PASSWORD=foobar
KANNEL_FROM=12345
KANNEL_OUT='$dir/fakesmsc.out'
EOF
    "$BEARERBOX" -v 1 "$dir/kannel.conf" >"$dir/bearerbox.stdout" 2>&1 &
    echo $! >"$dir/bearerbox.pid"
    wait_until 15 port_open "$KANNEL_SMSC_PORT" || die "bearerbox did not open the fake SMSC port (see $dir/bearerbox.log)"
    "$FAKESMSC" -H 127.0.0.1 -r "$KANNEL_SMSC_PORT" -i 1 -m 0 "100 200 text nop" >"$dir/fakesmsc.out" 2>&1 &
    echo $! >"$dir/fakesmsc.pid"
    wait_until 15 smsc_online || die "the fake SMSC is not online (see $dir/bearerbox.log)"
    start_smsbox "$dir"
    cat "$dir/kannel.env"
}

do_stop() {
    dir=$1
    [ -f "$dir/kannel.env" ] || return 0
    . "$dir/kannel.env"
    stop_pid "$dir/smsbox.pid"
    stop_pid "$dir/fakesmsc.pid"
    "$PY" -c 'import sys, urllib.request
try:
    urllib.request.urlopen("http://127.0.0.1:%s/shutdown?password=adminpw" % sys.argv[1], timeout=2).read()
except Exception:
    pass' "$KANNEL_ADMIN_PORT"
    if [ -f "$dir/bearerbox.pid" ]; then
        pid=$(cat "$dir/bearerbox.pid")
        n=50
        while kill -0 "$pid" 2>/dev/null && [ "$n" -gt 0 ]; do sleep 0.1; n=$((n - 1)); done
    fi
    stop_pid "$dir/bearerbox.pid"
}

cmd=${1:-}
[ $# -ge 2 ] || die "usage: kannel.sh start|stop|stop-smsbox|start-smsbox|env DIR"
case $cmd in
start) do_start "$2" ;;
stop) do_stop "$2" ;;
stop-smsbox) stop_pid "$2/smsbox.pid" ;;
start-smsbox) need_kannel; load_env "$2"; start_smsbox "$2" ;;
env) cat "$2/kannel.env" ;;
*) die "unknown command '$cmd'" ;;
esac

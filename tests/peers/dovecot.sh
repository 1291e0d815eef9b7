#!/bin/sh
# tests/peers/dovecot.sh: a private Dovecot 2.3 (IMAP + POP3) on 127.0.0.1 for
# the tests and benchmarks, under a directory of the caller's.  Never a system
# service: its own config, base_dir, state_dir and log under DIR, free ports
# picked per run, stopped by its recorded PID.
#
#   dovecot.sh start DIR [--user NAME:PASSWORD]... [--port-base N] [--oauth2 URL]
#       Creates DIR, a throw-away test CA and a server certificate for
#       127.0.0.1/localhost signed by it (plus a second, unrelated CA for
#       "wrong CA" tests), the passwd-file (default users alice and bob, see
#       below), and starts Dovecot with four listeners: IMAP (plain, STARTTLS
#       offered), IMAPS (implicit TLS), POP3 (plain, STLS offered), POP3S.
#       Prints shell assignments (also written to DIR/dovecot.env) to eval:
#         DOVECOT_DIR DOVECOT_CONF DOVECOT_PID DOVECOT_LOG DOVECOT_MAIL
#         DOVECOT_IMAP_PORT DOVECOT_IMAPS_PORT DOVECOT_POP3_PORT DOVECOT_POP3S_PORT
#         DOVECOT_CA_FILE (the CA that signed the server certificate)
#         DOVECOT_WRONG_CA_FILE (a CA that did not)
#       A user's Maildir is $DOVECOT_MAIL/NAME/Maildir (owned by nobody:nogroup
#       when run as root; write files there as that user or chown them).
#       --oauth2 URL also offers SASL XOAUTH2 and OAUTHBEARER, checked by
#       Dovecot's oauth2 passdb against the token introspection endpoint URL
#       (RFC 7662, form POST; tests/tools/oauth2_introspect.py stands in for
#       the identity provider): a token is good when the answer says
#       "active": true with "username" the login name.
#   dovecot.sh adduser DIR NAME PASSWORD     add a user (takes effect at once)
#   dovecot.sh stop DIR                       doveadm stop, then the PID if needed
#   dovecot.sh env DIR                        print the assignments again
#
# The certificate names IP:127.0.0.1 and also DNS:127.0.0.1, since some clients
# (mbsync 1.4) match a numeric host against DNS names only.
# Exit 77 (skip) when Dovecot is not installed, unless MH_REQUIRE_PEERS=1
# (then 1); MH_DOVECOT names another dovecot binary.  Default users:
# alice:alice-secret-1 and bob:bob-secret-1.
set -eu

PY=${MH_PYTHON:-/usr/bin/python3}
[ -x "$PY" ] || PY=python3

die() { echo "dovecot.sh: $*" >&2; exit 1; }

need_dovecot() {
    DOVECOT=${MH_DOVECOT:-$(command -v dovecot 2>/dev/null || echo /usr/sbin/dovecot)}
    if [ ! -x "$DOVECOT" ]; then
        if [ "${MH_REQUIRE_PEERS:-0}" = 1 ]; then
            die "dovecot is not installed (apt-get install dovecot-imapd dovecot-pop3d) and MH_REQUIRE_PEERS=1"
        fi
        echo "dovecot.sh: dovecot is not installed: skipping (apt-get install dovecot-imapd dovecot-pop3d)" >&2
        exit 77
    fi
    command -v openssl >/dev/null 2>&1 || die "openssl is not installed"
}

# free_ports N BASE: N distinct free TCP ports on 127.0.0.1 from a private
# range (BASE..BASE+3999, a random start so parallel runs rarely collide).
free_ports() {
    "$PY" - "$1" "$2" <<'EOF'
import random, socket, sys
n, base = int(sys.argv[1]), int(sys.argv[2])
ports = []
rng = random.SystemRandom()
start = rng.randrange(4000)
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

port_open() { # port_open PORT
    "$PY" -c 'import socket, sys
s = socket.socket(); s.settimeout(0.5)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
s.close()' "$1"
}

# make_ca DIR: CA key/cert pairs and a server certificate for 127.0.0.1 and localhost
make_certs() {
    d=$1
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
        -subj "/O=mailhub tests/CN=mailhub test CA $$" -keyout "$d/ca.key" -out "$d/ca.pem" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        >/dev/null 2>&1 || die "openssl: cannot create the test CA"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
        -subj "/O=mailhub tests/CN=unrelated CA $$" -keyout "$d/wrong-ca.key" -out "$d/wrong-ca.pem" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        >/dev/null 2>&1 || die "openssl: cannot create the second CA"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj "/O=mailhub tests/CN=localhost" -keyout "$d/key.pem" -out "$d/server.csr" \
        >/dev/null 2>&1 || die "openssl: cannot create the server key"
    cat >"$d/server.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:127.0.0.1
EOF
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 30 \
        -extfile "$d/server.ext" -out "$d/cert.pem" >/dev/null 2>&1 || die "openssl: cannot sign the server certificate"
    openssl verify -CAfile "$d/ca.pem" "$d/cert.pem" >/dev/null 2>&1 || die "the server certificate does not verify"
    chmod 0644 "$d/ca.pem" "$d/wrong-ca.pem" "$d/cert.pem"
    chmod 0600 "$d/key.pem" "$d/ca.key" "$d/wrong-ca.key"
}

add_user() { # add_user DIR NAME PASSWORD
    case $2 in *:* | '') die "bad user name '$2'" ;; esac
    printf '%s:{PLAIN}%s\n' "$2" "$3" >>"$1/users"
    mkdir -p "$1/mail/$2/Maildir/cur" "$1/mail/$2/Maildir/new" "$1/mail/$2/Maildir/tmp"
    if [ "$(id -u)" -eq 0 ]; then chown -R nobody:nogroup "$1/mail/$2"; fi
}

print_env() { cat "$1/dovecot.env"; }

do_start() {
    dir=$1; shift
    users=""
    base=21000
    oauth2=""
    while [ $# -gt 0 ]; do
        case $1 in
        --user) users="$users $2"; shift 2 ;;
        --port-base) base=$2; shift 2 ;;
        --oauth2) oauth2=$2; shift 2 ;;
        *) die "unknown option $1" ;;
        esac
    done
    [ -n "$users" ] || users="alice:alice-secret-1 bob:bob-secret-1"
    need_dovecot
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/dovecot.pid" ] && kill -0 "$(cat "$dir/dovecot.pid")" 2>/dev/null; then
        die "a Dovecot already runs for $dir (PID $(cat "$dir/dovecot.pid"))"
    fi
    mkdir -p "$dir/run" "$dir/state" "$dir/mail"
    # The mail processes run as nobody: every directory above the mail must be traversable.
    chmod 0755 "$dir" "$dir/mail"
    p=$dir
    while [ "$p" != / ]; do
        p=$(dirname "$p")
        if [ "$(id -u)" -eq 0 ] && ! runuser -u nobody -- test -x "$p" 2>/dev/null; then chmod o+x "$p"; fi
    done
    make_certs "$dir"
    : >"$dir/users"
    chmod 0644 "$dir/users"
    for u in $users; do add_user "$dir" "${u%%:*}" "${u#*:}"; done

    # shellcheck disable=SC2046 # four words
    set -- $(free_ports 4 "$base")
    imap=$1 imaps=$2 pop3=$3 pop3s=$4
    if [ "$(id -u)" -eq 0 ]; then
        ids="default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 100"
        userdb="uid=nobody gid=nogroup"
    else
        me=$(id -un)
        ids="default_login_user = $me
default_internal_user = $me
default_internal_group = $(id -gn)
first_valid_uid = $(id -u)
last_valid_uid = $(id -u)"
        userdb="uid=$(id -u) gid=$(id -g)"
    fi
    mechs="plain login" oauth2_passdb=""
    if [ -n "$oauth2" ]; then
        mechs="plain login xoauth2 oauthbearer"
        cat >"$dir/oauth2.conf.ext" <<EOF
introspection_mode = post
introspection_url = $oauth2
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
EOF
        oauth2_passdb="passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = $dir/oauth2.conf.ext
}"
    fi
    cat >"$dir/dovecot.conf" <<EOF
# generated by tests/peers/dovecot.sh for a test run
instance_name = mh-test-dovecot-$$
protocols = imap pop3
listen = 127.0.0.1
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/dovecot.log
info_log_path = $dir/dovecot.log
ssl = yes
ssl_cert = <$dir/cert.pem
ssl_key = <$dir/key.pem
disable_plaintext_auth = no
auth_mechanisms = $mechs
mail_location = maildir:~/Maildir
mail_max_userip_connections = 1000
$ids
$oauth2_passdb
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dir/users
}
userdb {
  driver = static
  args = $userdb home=$dir/mail/%u
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = $imap
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $imaps
    ssl = yes
  }
}
service pop3-login {
  chroot =
  inet_listener pop3 {
    address = 127.0.0.1
    port = $pop3
  }
  inet_listener pop3s {
    address = 127.0.0.1
    port = $pop3s
    ssl = yes
  }
}
service anvil {
  chroot =
}
service stats {
  unix_listener stats-reader {
    mode = 0666
  }
  unix_listener stats-writer {
    mode = 0666
  }
}
protocol pop3 {
  pop3_uidl_format = %08Xu%08Xv
}
EOF
    "$DOVECOT" -c "$dir/dovecot.conf" 2>"$dir/start.err" || {
        cat "$dir/start.err" >&2
        [ -f "$dir/dovecot.log" ] && tail -20 "$dir/dovecot.log" >&2
        die "dovecot did not start (config $dir/dovecot.conf)"
    }
    n=100
    while [ ! -s "$dir/run/master.pid" ] && [ $n -gt 0 ]; do sleep 0.05; n=$((n - 1)); done
    [ -s "$dir/run/master.pid" ] || die "dovecot wrote no master.pid"
    pid=$(cat "$dir/run/master.pid")
    echo "$pid" >"$dir/dovecot.pid"
    for port in $imap $imaps $pop3 $pop3s; do
        n=100
        while ! port_open "$port"; do
            n=$((n - 1))
            [ $n -gt 0 ] || { tail -20 "$dir/dovecot.log" >&2; die "port $port does not accept connections"; }
            sleep 0.05
        done
    done
    cat >"$dir/dovecot.env" <<EOF
DOVECOT_DIR='$dir'
DOVECOT_CONF='$dir/dovecot.conf'
DOVECOT_PID='$pid'
DOVECOT_LOG='$dir/dovecot.log'
DOVECOT_MAIL='$dir/mail'
DOVECOT_IMAP_PORT='$imap'
DOVECOT_IMAPS_PORT='$imaps'
DOVECOT_POP3_PORT='$pop3'
DOVECOT_POP3S_PORT='$pop3s'
DOVECOT_CA_FILE='$dir/ca.pem'
DOVECOT_WRONG_CA_FILE='$dir/wrong-ca.pem'
EOF
    print_env "$dir"
}

do_stop() {
    dir=$1
    [ -f "$dir/dovecot.pid" ] || return 0
    pid=$(cat "$dir/dovecot.pid")
    if kill -0 "$pid" 2>/dev/null; then
        DOVEADM=$(command -v doveadm 2>/dev/null || echo /usr/bin/doveadm)
        "$DOVEADM" -c "$dir/dovecot.conf" stop >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
        n=100
        while kill -0 "$pid" 2>/dev/null && [ $n -gt 0 ]; do sleep 0.05; n=$((n - 1)); done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$dir/dovecot.pid"
}

cmd=${1:-}
[ $# -ge 2 ] || { sed -n '2,31p' "$0" >&2; exit 2; }
shift
case $cmd in
start) do_start "$@" ;;
stop) do_stop "$1" ;;
env) print_env "$1" ;;
adduser) [ $# -eq 3 ] || die "usage: dovecot.sh adduser DIR NAME PASSWORD"; add_user "$1" "$2" "$3" ;;
*) sed -n '2,31p' "$0" >&2; exit 2 ;;
esac

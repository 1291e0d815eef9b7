#!/bin/sh
# bench/pop3.sh: the POP3 provider against a private Dovecot, next to mpop doing
# the same transfer (fresh import, a re-sync with nothing new, a re-sync after
# K new messages, for mailhubd each on the running daemon and after a restart;
# plain, TLS, and with an added round trip).  It is
# bench/imap.sh with --proto pop3: see there, and bench/README.md, for the options.
exec "$(dirname "$0")/imap.sh" --proto pop3 "$@"

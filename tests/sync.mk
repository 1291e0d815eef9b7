# tests/sync.mk: the IMAP and POP3 providers against real servers (peers helper).
# The scripts start a private Dovecot (tests/peers/dovecot.sh) and the scripted
# peers under tests/tools/ on 127.0.0.1; without Dovecot they skip (exit 77)
# unless MH_REQUIRE_PEERS=1, which bootstrap.sh sets.
TESTS += tests/integration/imap.sh tests/integration/pop3.sh
EXTRA_DIST += tests/integration/imap.sh tests/integration/pop3.sh tests/integration/sync_lib.sh tests/peers/dovecot.sh \
	tests/tools/fill_maildir.py tests/tools/imaptool.py tests/tools/mh_export.py \
	tests/tools/badimap.py tests/tools/cutproxy.py tests/tools/oauth2_introspect.py \
	bench/imap.sh bench/pop3.sh bench/resync.py

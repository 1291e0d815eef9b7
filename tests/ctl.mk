# tests/ctl.mk: mailhubctl, the command-line client, against the real daemon.
TESTS += tests/integration/ctl.sh
EXTRA_DIST += tests/integration/ctl.sh

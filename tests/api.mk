# tests/api.mk: the control API (helper "api"): an integration test with curl against the real daemon.
TESTS += tests/integration/api.sh
EXTRA_DIST += tests/integration/api.sh

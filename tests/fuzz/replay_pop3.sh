#!/bin/sh
# Replays the POP3 fuzz target's corpus (tests/fuzz/corpus/pop3) through the
# POP3 response parser without libFuzzer, in whatever build `make check` runs.
set -eu
: "${top_srcdir:?}" "${top_builddir:?}"
exec "$top_builddir/tests/fuzz/fuzz_pop3_replay" "$top_srcdir/tests/fuzz/corpus/pop3"

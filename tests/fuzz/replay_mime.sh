#!/bin/sh
# Replays the MIME fuzz target's corpus (tests/fuzz/corpus/mime) through
# mh_mime_parse() without libFuzzer, in whatever build `make check` runs.
set -eu
: "${top_srcdir:?}" "${top_builddir:?}"
exec "$top_builddir/tests/fuzz/fuzz_mime_replay" "$top_srcdir/tests/fuzz/corpus/mime"

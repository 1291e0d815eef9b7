# tests/imap.mk: the IMAP provider's response parser (plugins/imap/imap_parse.c).
check_PROGRAMS += tests/unit/test_imap_parse
TESTS += tests/unit/test_imap_parse
tests_unit_test_imap_parse_SOURCES = tests/unit/test_imap_parse.c plugins/imap/imap_parse.c
tests_unit_test_imap_parse_CFLAGS = $(TEST_CFLAGS) -I$(top_srcdir)/plugins/imap
tests_unit_test_imap_parse_LDADD = $(TEST_LIBS)

# The fuzz target's seed corpus (and every crasher found since) replayed on
# every `make check`, in whatever build it runs (sanitizers included).
check_PROGRAMS += tests/fuzz/fuzz_imap_replay
TESTS += tests/fuzz/fuzz_imap_replay
tests_fuzz_fuzz_imap_replay_SOURCES = tests/fuzz/fuzz_imap.c plugins/imap/imap_parse.c
tests_fuzz_fuzz_imap_replay_CFLAGS = $(TEST_CFLAGS) -I$(top_srcdir)/plugins/imap -DFUZZ_IMAP_REPLAY
tests_fuzz_fuzz_imap_replay_LDADD = $(TEST_LIBS)

# configure --enable-fuzzers CC=clang; run e.g.
#   ./tests/fuzz/fuzz_imap -max_total_time=30 corpus_copy/   (bootstrap.sh: fuzz_imap_smoke)
if FUZZERS
noinst_PROGRAMS += tests/fuzz/fuzz_imap
tests_fuzz_fuzz_imap_SOURCES = tests/fuzz/fuzz_imap.c plugins/imap/imap_parse.c
tests_fuzz_fuzz_imap_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/plugins/imap -fsanitize=fuzzer,address,undefined \
	-fno-omit-frame-pointer
tests_fuzz_fuzz_imap_LDFLAGS = -fsanitize=fuzzer,address,undefined
endif

EXTRA_DIST += tests/fuzz/corpus/imap

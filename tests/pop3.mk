# tests/pop3.mk: the POP3 provider (plugins/pop3/): its response parser (unit test,
# fuzz target and corpus replay), its passes against the mock host, and the real
# daemon against a fake server.  The Dovecot test is tests/integration/pop3.sh (tests/sync.mk).
check_PROGRAMS += tests/unit/test_pop3_parse
TESTS += tests/unit/test_pop3_parse
tests_unit_test_pop3_parse_SOURCES = tests/unit/test_pop3_parse.c plugins/pop3/pop3_parse.c
tests_unit_test_pop3_parse_CFLAGS = $(TEST_CFLAGS) -I$(top_srcdir)/plugins/pop3
tests_unit_test_pop3_parse_LDADD = $(TEST_LIBS)

# The fuzz target's seed corpus (and every crasher found since) replayed by `make check`.
check_PROGRAMS += tests/fuzz/fuzz_pop3_replay
TESTS += tests/fuzz/replay_pop3.sh
tests_fuzz_fuzz_pop3_replay_SOURCES = tests/fuzz/fuzz_pop3.c tests/fuzz/fuzz_main.c plugins/pop3/pop3_parse.c
tests_fuzz_fuzz_pop3_replay_CFLAGS = $(TEST_CFLAGS) -I$(top_srcdir)/plugins/pop3
tests_fuzz_fuzz_pop3_replay_LDADD = $(TEST_LIBS)

# configure --enable-fuzzers CC=clang; run e.g.
#   ./tests/fuzz/fuzz_pop3 -max_total_time=60 corpus_copy/
if FUZZERS
noinst_PROGRAMS += tests/fuzz/fuzz_pop3
tests_fuzz_fuzz_pop3_SOURCES = tests/fuzz/fuzz_pop3.c plugins/pop3/pop3_parse.c
tests_fuzz_fuzz_pop3_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/plugins/pop3 -fsanitize=fuzzer,address,undefined \
	-fno-omit-frame-pointer
tests_fuzz_fuzz_pop3_LDFLAGS = -fsanitize=fuzzer,address,undefined
endif

EXTRA_DIST += tests/fuzz/replay_pop3.sh tests/fuzz/corpus/pop3

# The provider against a fake server (no UIDL, no PIPELINING, garbage, stalls, lies, DELE).
TESTS += tests/integration/pop3_faults.sh
EXTRA_DIST += tests/integration/pop3_faults.sh

# The provider's passes against the mock host and a scripted server behind a fake netconn.
check_PROGRAMS += tests/unit/test_pop3_provider
TESTS += tests/unit/test_pop3_provider
tests_unit_test_pop3_provider_SOURCES = tests/unit/test_pop3_provider.c plugins/pop3/pop3.c \
	plugins/pop3/pop3_parse.c $(MOCK_HOST_SOURCES)
tests_unit_test_pop3_provider_CFLAGS = $(TEST_CFLAGS) -I$(top_srcdir)/plugins/common \
	-I$(top_srcdir)/plugins/pop3
tests_unit_test_pop3_provider_LDADD = $(TEST_LIBS)

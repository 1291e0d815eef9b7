# tests/crypto.mk: cryptography, MIME header decoding and input validation
# (core/mh_crypto.c, core/mh_mime.c, core/mh_valid.c).  The tests link the
# module sources directly, so they build even while libmhcore is mid-change.
MH_CRYPTO_TEST_SOURCES = core/mh_crypto.c core/mh_log.c core/mh_util.c

check_PROGRAMS += tests/unit/test_crypto tests/unit/test_mime tests/unit/test_valid
TESTS += tests/unit/test_crypto tests/unit/test_mime tests/unit/test_valid

tests_unit_test_crypto_SOURCES = tests/unit/test_crypto.c $(MH_CRYPTO_TEST_SOURCES)
tests_unit_test_crypto_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_crypto_LDADD = $(TEST_LIBS)

tests_unit_test_mime_SOURCES = tests/unit/test_mime.c core/mh_mime.c
tests_unit_test_mime_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_mime_LDADD = $(TEST_LIBS)

tests_unit_test_valid_SOURCES = tests/unit/test_valid.c core/mh_valid.c
tests_unit_test_valid_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_valid_LDADD = $(TEST_LIBS)

# MIME header parsing benchmark (bench/mime_bench.c): built by `make check`
# so that it keeps compiling, never run by it (no timing in tests):
#   tests/tools/gen_mbox --count 10000 --seed 42 > m.mbox && bench/mime_bench m.mbox
check_PROGRAMS += bench/mime_bench
bench_mime_bench_SOURCES = bench/mime_bench.c core/mh_mime.c
bench_mime_bench_CFLAGS = $(TEST_CFLAGS)
bench_mime_bench_LDADD = $(TEST_LIBS)

# The MIME fuzz target's corpus replayed by `make check` (see tests/config.mk);
# the script runs the replay program on tests/fuzz/corpus/mime.
check_PROGRAMS += tests/fuzz/fuzz_mime_replay
TESTS += tests/fuzz/replay_mime.sh
tests_fuzz_fuzz_mime_replay_SOURCES = tests/fuzz/fuzz_mime.c tests/fuzz/fuzz_main.c core/mh_mime.c core/mh_search.c
tests_fuzz_fuzz_mime_replay_CFLAGS = $(TEST_CFLAGS)
tests_fuzz_fuzz_mime_replay_LDADD = $(TEST_LIBS)

# configure --enable-fuzzers CC=clang; run e.g.
#   ./tests/fuzz/fuzz_mime -max_total_time=30 corpus_copy/
if FUZZERS
noinst_PROGRAMS += tests/fuzz/fuzz_mime
tests_fuzz_fuzz_mime_SOURCES = tests/fuzz/fuzz_mime.c core/mh_mime.c core/mh_search.c
tests_fuzz_fuzz_mime_CFLAGS = $(AM_CFLAGS) $(GMIME_CFLAGS) $(JANSSON_CFLAGS) $(OPENSSL_CFLAGS) \
	-fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer
tests_fuzz_fuzz_mime_LDFLAGS = -fsanitize=fuzzer,address,undefined
tests_fuzz_fuzz_mime_LDADD = $(GMIME_LIBS) $(JANSSON_LIBS) $(OPENSSL_LIBS) $(PTHREAD_LIBS)
endif

EXTRA_DIST += tests/fuzz/corpus/mime tests/fuzz/replay_mime.sh

# tests/config.mk: the configuration module (YAML tree, ${ENV}, daemon schema, option tables).
MH_CONFIG_TEST_SOURCES = core/mh_config.c core/mh_options.c core/mh_log.c core/mh_util.c

check_PROGRAMS += tests/unit/test_config
TESTS += tests/unit/test_config
tests_unit_test_config_SOURCES = tests/unit/test_config.c $(MH_CONFIG_TEST_SOURCES)
tests_unit_test_config_CFLAGS = $(TEST_CFLAGS) -DMH_TEST_SRCDIR='"$(abs_top_srcdir)"'
tests_unit_test_config_LDADD = $(TEST_LIBS)

# The fuzz target's seed corpus (and every crasher found since) replayed on
# every `make check`, in whatever build it runs (sanitizers included).
check_PROGRAMS += tests/fuzz/fuzz_config_replay
TESTS += tests/fuzz/fuzz_config_replay
tests_fuzz_fuzz_config_replay_SOURCES = tests/fuzz/fuzz_config.c tests/fuzz/fuzz_main.c $(MH_CONFIG_TEST_SOURCES)
tests_fuzz_fuzz_config_replay_CFLAGS = $(TEST_CFLAGS)
tests_fuzz_fuzz_config_replay_LDADD = $(TEST_LIBS)

# configure --enable-fuzzers CC=clang; run e.g.
#   ./tests/fuzz/fuzz_config -max_total_time=60 corpus_copy/
if FUZZERS
noinst_PROGRAMS += tests/fuzz/fuzz_config
tests_fuzz_fuzz_config_SOURCES = tests/fuzz/fuzz_config.c $(MH_CONFIG_TEST_SOURCES)
tests_fuzz_fuzz_config_CFLAGS = $(AM_CFLAGS) $(YAML_CFLAGS) -fsanitize=fuzzer,address,undefined \
	-fno-omit-frame-pointer
tests_fuzz_fuzz_config_LDFLAGS = -fsanitize=fuzzer,address,undefined
tests_fuzz_fuzz_config_LDADD = $(YAML_LIBS) $(PTHREAD_LIBS)
endif

EXTRA_DIST += tests/data/config tests/fuzz/corpus/config

# tests/search.mk: the blind search index (core/mh_search.c).  The test links the
# module source directly, so it builds even while libmhcore is mid-change.
check_PROGRAMS += tests/unit/test_search
TESTS += tests/unit/test_search
tests_unit_test_search_SOURCES = tests/unit/test_search.c core/mh_search.c
tests_unit_test_search_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_search_LDADD = $(TEST_LIBS)

# What ingest adds for the index, stage by stage (bench/search_bench.c): built
# by `make check` so that it keeps compiling, never run by it:
#   tests/tools/gen_mbox --count 10000 --seed 42 > m.mbox && bench/search_bench m.mbox
check_PROGRAMS += bench/search_bench
bench_search_bench_SOURCES = bench/search_bench.c core/mh_mime.c core/mh_search.c
bench_search_bench_CFLAGS = $(TEST_CFLAGS)
bench_search_bench_LDADD = $(TEST_LIBS)

# tests/io.mk: unit tests for the event loop, the transfer layer and the worker pool.
# Each program links the core sources it needs directly (not libmhcore.la).
check_PROGRAMS += tests/unit/test_loop tests/unit/test_xfer tests/unit/test_pool
TESTS += tests/unit/test_loop tests/unit/test_xfer tests/unit/test_pool

tests_unit_test_loop_SOURCES = tests/unit/test_loop.c core/mh_loop.c
tests_unit_test_loop_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_loop_LDADD = $(TEST_LIBS)

tests_unit_test_xfer_SOURCES = tests/unit/test_xfer.c tests/httpd.c tests/httpd.h \
	core/mh_loop.c core/mh_xfer.c core/mh_log.c core/mh_util.c
tests_unit_test_xfer_CFLAGS = $(TEST_CFLAGS) $(MHD_CFLAGS)
tests_unit_test_xfer_LDADD = $(TEST_LIBS) $(MHD_LIBS)

tests_unit_test_pool_SOURCES = tests/unit/test_pool.c core/mh_loop.c core/mh_pool.c
tests_unit_test_pool_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_pool_LDADD = $(TEST_LIBS)

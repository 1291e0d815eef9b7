# Tests of the lead's core modules: loader, bus, the daemon as a whole.
check_PROGRAMS += tests/unit/test_loader tests/unit/test_bus
TESTS += tests/unit/test_loader tests/unit/test_bus
tests_unit_test_loader_SOURCES = tests/unit/test_loader.c
tests_unit_test_loader_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_loader_LDADD = core/libmhcore.la $(TEST_LIBS)
tests_unit_test_bus_SOURCES = tests/unit/test_bus.c
tests_unit_test_bus_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_bus_LDADD = core/libmhcore.la $(TEST_LIBS)

# Integration: the real daemon with the real plugins.
TESTS += tests/integration/daemon.sh tests/integration/sdk_example.sh
EXTRA_DIST += tests/integration/daemon.sh tests/integration/sdk_example.sh tests/integration/lib.sh

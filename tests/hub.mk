# tests/hub.mk: the hub data layer and the store lane over the real SQLite store
# (quota policy, concurrent writers, encryption at rest).
check_PROGRAMS += tests/unit/test_hub
TESTS += tests/unit/test_hub
tests_unit_test_hub_SOURCES = tests/unit/test_hub.c plugins/sqlite/sqlite.c $(MOCK_HOST_SOURCES)
tests_unit_test_hub_CFLAGS = $(TEST_CFLAGS) $(SQLITE_CFLAGS) -I$(top_srcdir)/core
tests_unit_test_hub_LDADD = core/libmhcore.la $(TEST_LIBS) $(SQLITE_LIBS)

# The acceptance test of the backbone: two users, a few thousand generated
# messages, export round trip, quota, tenant isolation, encryption at rest, kill -9.
TESTS += tests/integration/hub.sh
EXTRA_DIST += tests/integration/hub.sh

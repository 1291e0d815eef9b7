# tests/outbox.mk: notification rules and the durable outbox.
check_PROGRAMS += tests/unit/test_rules
TESTS += tests/unit/test_rules
tests_unit_test_rules_SOURCES = tests/unit/test_rules.c
tests_unit_test_rules_CFLAGS = $(TEST_CFLAGS) -I$(top_srcdir)/core
tests_unit_test_rules_LDADD = core/libmhcore.la $(TEST_LIBS)

# The outbox with the real daemon, webhook notifier and a signature-checking receiver.
TESTS += tests/integration/outbox.sh
EXTRA_DIST += tests/integration/outbox.sh

# tests/plugins.mk: the loader's test modules, the mock host and the plugin
# unit tests.
#
# Loader test modules are built as real shared modules (-rpath makes libtool
# build a .so rather than a convenience archive) into tests/plugins/, so that
# one search path entry finds them all.  Each is tiny and wrong in one way;
# t_good, t_provider and t_store are the well-formed ones.
TEST_MODULE_LDFLAGS = $(MH_MODULE_FLAGS) -rpath /nowhere

check_LTLIBRARIES += tests/plugins/t_good.la tests/plugins/t_badabi.la tests/plugins/t_newminor.la \
	tests/plugins/t_short.la tests/plugins/t_nocb.la tests/plugins/t_noinit.la \
	tests/plugins/t_unresolved.la tests/plugins/t_nodesc.la tests/plugins/t_provider.la \
	tests/plugins/t_store.la tests/plugins/hello.la

tests_plugins_t_good_la_SOURCES = tests/plugins/t_good.c
tests_plugins_t_good_la_LDFLAGS = $(TEST_MODULE_LDFLAGS)
tests_plugins_t_badabi_la_SOURCES = tests/plugins/t_badabi.c tests/plugins/t_common.h
tests_plugins_t_badabi_la_LDFLAGS = $(TEST_MODULE_LDFLAGS)
tests_plugins_t_newminor_la_SOURCES = tests/plugins/t_newminor.c tests/plugins/t_common.h
tests_plugins_t_newminor_la_LDFLAGS = $(TEST_MODULE_LDFLAGS)
tests_plugins_t_short_la_SOURCES = tests/plugins/t_short.c
tests_plugins_t_short_la_LDFLAGS = $(TEST_MODULE_LDFLAGS)
tests_plugins_t_nocb_la_SOURCES = tests/plugins/t_nocb.c tests/plugins/t_common.h
tests_plugins_t_nocb_la_LDFLAGS = $(TEST_MODULE_LDFLAGS)
tests_plugins_t_noinit_la_SOURCES = tests/plugins/t_noinit.c tests/plugins/t_common.h
tests_plugins_t_noinit_la_LDFLAGS = $(TEST_MODULE_LDFLAGS)
# Links with the symbol undefined (no -z defs); -z now makes dlopen() fail on it.
tests_plugins_t_unresolved_la_SOURCES = tests/plugins/t_unresolved.c tests/plugins/t_common.h
tests_plugins_t_unresolved_la_LDFLAGS = -module -avoid-version -shared -rpath /nowhere -Wl,-z,now
# Exports a symbol, but not the descriptor.
tests_plugins_t_nodesc_la_SOURCES = tests/plugins/t_nodesc.c
tests_plugins_t_nodesc_la_LDFLAGS = -module -avoid-version -shared -no-undefined -rpath /nowhere -Wl,-z,defs
tests_plugins_t_provider_la_SOURCES = tests/plugins/t_provider.c
tests_plugins_t_provider_la_LDFLAGS = $(TEST_MODULE_LDFLAGS)
tests_plugins_t_store_la_SOURCES = tests/plugins/t_store.c
tests_plugins_t_store_la_LDFLAGS = $(TEST_MODULE_LDFLAGS)
# The SDK example, built with the project's warnings so it stays clean and loadable.
tests_plugins_hello_la_SOURCES = sdk/examples/hello/hello.c
tests_plugins_hello_la_LDFLAGS = $(TEST_MODULE_LDFLAGS)

# Plugin unit tests: the plugin's source linked straight into a cmocka
# program with the mock host (tests/mock_host.c) as its host table.
MOCK_HOST_SOURCES = tests/mock_host.c tests/mock_host.h

PLUGIN_UNIT_TESTS = tests/unit/test_plugin_log tests/unit/test_plugin_sqlite tests/unit/test_plugin_mbox \
	tests/unit/test_store_contract tests/unit/test_store_contract_mem
check_PROGRAMS += $(PLUGIN_UNIT_TESTS)
TESTS += $(PLUGIN_UNIT_TESTS)

tests_unit_test_plugin_log_SOURCES = tests/unit/test_plugin_log.c plugins/log/log.c $(MOCK_HOST_SOURCES)
tests_unit_test_plugin_log_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_plugin_log_LDADD = $(TEST_LIBS)

# test_plugin_sqlite #includes plugins/sqlite/sqlite.c (to read its SQL and migrations).
tests_unit_test_plugin_sqlite_SOURCES = tests/unit/test_plugin_sqlite.c \
	tests/store_contract.c tests/store_contract.h $(MOCK_HOST_SOURCES)
tests_unit_test_plugin_sqlite_CFLAGS = $(TEST_CFLAGS) $(SQLITE_CFLAGS)
tests_unit_test_plugin_sqlite_LDADD = $(TEST_LIBS) $(SQLITE_LIBS)

tests_unit_test_plugin_mbox_SOURCES = tests/unit/test_plugin_mbox.c plugins/mbox/mbox.c $(MOCK_HOST_SOURCES)
tests_unit_test_plugin_mbox_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_plugin_mbox_LDADD = $(TEST_LIBS)

# The store contract, against SQLite and against the in-memory t_store.
tests_unit_test_store_contract_SOURCES = tests/unit/test_store_contract.c plugins/sqlite/sqlite.c \
	tests/store_contract.c tests/store_contract.h $(MOCK_HOST_SOURCES)
tests_unit_test_store_contract_CFLAGS = $(TEST_CFLAGS) $(SQLITE_CFLAGS)
tests_unit_test_store_contract_LDADD = $(TEST_LIBS) $(SQLITE_LIBS)

tests_unit_test_store_contract_mem_SOURCES = tests/unit/test_store_contract.c tests/plugins/t_store.c \
	tests/store_contract.c tests/store_contract.h $(MOCK_HOST_SOURCES)
tests_unit_test_store_contract_mem_CFLAGS = $(TEST_CFLAGS) -DSTORE_CONTRACT_VOLATILE
tests_unit_test_store_contract_mem_LDADD = $(TEST_LIBS)

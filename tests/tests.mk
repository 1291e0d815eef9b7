# tests/: cmocka unit tests, loader test modules, integration scripts, fuzz targets.
# Each part keeps its own fragment; all are run by `make check`.
TEST_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(CURL_CFLAGS) $(YAML_CFLAGS) $(JANSSON_CFLAGS) $(OPENSSL_CFLAGS) \
	$(GMIME_CFLAGS) $(ARGON2_CFLAGS) $(MHD_CFLAGS) \
	-I$(top_srcdir)/tests -Wno-missing-prototypes
TEST_LIBS = $(CMOCKA_LIBS) $(CURL_LIBS) $(YAML_LIBS) $(JANSSON_LIBS) $(OPENSSL_LIBS) $(LIBEV_LIBS) \
	$(GMIME_LIBS) $(ARGON2_LIBS) $(MHD_LIBS) \
	$(LTDL_LIBS) $(DL_LIBS) $(PTHREAD_LIBS) $(MATH_LIBS)
AM_TESTS_ENVIRONMENT = \
	top_srcdir='$(abs_top_srcdir)'; export top_srcdir; \
	top_builddir='$(abs_top_builddir)'; export top_builddir; \
	MH_PYTHON='$(PYTHON3)'; export MH_PYTHON; \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1; export ASAN_OPTIONS; \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1; export UBSAN_OPTIONS;

include tests/config.mk
include tests/io.mk
include tests/plugins.mk
include tests/core.mk
include tests/crypto.mk
include tests/api.mk
include tests/ctl.mk
include tests/mbox.mk
include tests/hub.mk
include tests/outbox.mk
include tests/search.mk
include tests/notify.mk
include tests/pop3.mk
include tests/sync.mk
include tests/imap.mk

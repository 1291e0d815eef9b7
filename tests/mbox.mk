# tests/mbox.mk: see BRIEF.md for who owns it.
# The mail generator for the import tests and the benchmark (bench/import.sh):
# a deterministic mboxrd or Maildir++ writer with a manifest (see its header).
# test_plugin_mbox (tests/plugins.mk) imports its output when it is built.
check_PROGRAMS += tests/tools/gen_mbox
tests_tools_gen_mbox_SOURCES = tests/tools/gen_mbox.c
tests_tools_gen_mbox_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS)
tests_tools_gen_mbox_LDADD = $(OPENSSL_LIBS) $(MATH_LIBS)

# The generator checked on its own: its mboxrd splits back into its manifest.
TESTS += tests/tools/gen_mbox_test.sh
EXTRA_DIST += tests/tools/gen_mbox_test.sh bench/import.sh bench/README.md

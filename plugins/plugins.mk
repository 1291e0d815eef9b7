# plugins/: the plugins shipped with mailhub.  Each is a libtool module whose
# file name is the plugin's name, all built into plugins/ so that one search
# path entry (plugins.path) finds them in the build tree too.
pkgplugins_LTLIBRARIES += plugins/log.la plugins/sqlite.la plugins/mbox.la

# log: notifier appending events as JSON lines to a file.
plugins_log_la_SOURCES = plugins/log/log.c
plugins_log_la_CFLAGS = $(AM_CFLAGS)
plugins_log_la_LDFLAGS = $(MH_MODULE_FLAGS)

# sqlite: the embedded store (records only: the core seals bodies and credentials).
plugins_sqlite_la_SOURCES = plugins/sqlite/sqlite.c
plugins_sqlite_la_CFLAGS = $(AM_CFLAGS) $(SQLITE_CFLAGS)
plugins_sqlite_la_LDFLAGS = $(MH_MODULE_FLAGS)
plugins_sqlite_la_LIBADD = $(SQLITE_LIBS)

# mbox: provider importing an mbox file or a Maildir, then watching it.
plugins_mbox_la_SOURCES = plugins/mbox/mbox.c
plugins_mbox_la_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS) $(JANSSON_CFLAGS)
plugins_mbox_la_LDFLAGS = $(MH_MODULE_FLAGS)
plugins_mbox_la_LIBADD = $(OPENSSL_LIBS) $(JANSSON_LIBS)

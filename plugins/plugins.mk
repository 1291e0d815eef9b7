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

# common/netconn: libcurl CONNECT_ONLY connections on the host loop, shared by imap and pop3.
noinst_LTLIBRARIES += plugins/common/libnetconn.la
plugins_common_libnetconn_la_SOURCES = plugins/common/netconn.c plugins/common/netconn.h
plugins_common_libnetconn_la_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS) -fPIC
plugins_common_libnetconn_la_LIBADD = $(CURL_LIBS)

# common/notify_tpl: templates, SMS segmentation, webhook signatures and mail encodings for the notifiers.
noinst_LTLIBRARIES += plugins/common/libnotify_tpl.la
plugins_common_libnotify_tpl_la_SOURCES = plugins/common/notify_tpl.c plugins/common/notify_tpl.h
plugins_common_libnotify_tpl_la_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS) $(JANSSON_CFLAGS) -fPIC
plugins_common_libnotify_tpl_la_LIBADD = $(OPENSSL_LIBS) $(JANSSON_LIBS)

# sms, email, webhook: notifiers (docs/notifiers.md).
pkgplugins_LTLIBRARIES += plugins/sms.la plugins/email.la plugins/webhook.la
plugins_sms_la_SOURCES = plugins/sms/sms.c
plugins_sms_la_CFLAGS = $(AM_CFLAGS)
plugins_sms_la_LDFLAGS = $(MH_MODULE_FLAGS)
plugins_sms_la_LIBADD = plugins/common/libnotify_tpl.la

plugins_email_la_SOURCES = plugins/email/email.c
plugins_email_la_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS) $(JANSSON_CFLAGS)
plugins_email_la_LDFLAGS = $(MH_MODULE_FLAGS)
plugins_email_la_LIBADD = plugins/common/libnotify_tpl.la $(CURL_LIBS) $(JANSSON_LIBS)

plugins_webhook_la_SOURCES = plugins/webhook/webhook.c
plugins_webhook_la_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS)
plugins_webhook_la_LDFLAGS = $(MH_MODULE_FLAGS)
plugins_webhook_la_LIBADD = plugins/common/libnotify_tpl.la $(CURL_LIBS)

# pop3: provider importing a POP3 maildrop (pipelined RETR over netconn), then polling it.
pkgplugins_LTLIBRARIES += plugins/pop3.la
plugins_pop3_la_SOURCES = plugins/pop3/pop3.c plugins/pop3/pop3_parse.c plugins/pop3/pop3_parse.h
plugins_pop3_la_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS) $(OPENSSL_CFLAGS) $(JANSSON_CFLAGS)
plugins_pop3_la_LDFLAGS = $(MH_MODULE_FLAGS)
plugins_pop3_la_LIBADD = plugins/common/libnetconn.la $(CURL_LIBS) $(OPENSSL_LIBS) $(JANSSON_LIBS)

# imap: provider importing and syncing every folder of an IMAP mailbox, with IDLE push.
pkgplugins_LTLIBRARIES += plugins/imap.la
plugins_imap_la_SOURCES = plugins/imap/imap.c plugins/imap/imap_parse.c plugins/imap/imap_parse.h
plugins_imap_la_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS) $(JANSSON_CFLAGS) -I$(top_srcdir)/plugins/common
plugins_imap_la_LDFLAGS = $(MH_MODULE_FLAGS)
plugins_imap_la_LIBADD = plugins/common/libnetconn.la $(CURL_LIBS) $(JANSSON_LIBS)


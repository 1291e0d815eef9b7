# core/: the daemon.  Each third-party library has one home here:
# ev.h -> mh_loop.c, curl multi -> mh_xfer.c, yaml.h -> mh_config.c, ltdl.h -> mh_loader.c.
noinst_LTLIBRARIES += core/libmhcore.la
core_libmhcore_la_SOURCES = \
	core/mh_util.c core/mh_util.h \
	core/mh_log.c core/mh_log.h \
	core/mh_loop.c core/mh_loop.h \
	core/mh_xfer.c core/mh_xfer.h \
	core/mh_pool.c core/mh_pool.h \
	core/mh_config.c core/mh_config.h \
	core/mh_options.c core/mh_options.h \
	core/mh_bus.c core/mh_bus.h \
	core/mh_loader.c core/mh_loader.h \
	core/mh_host.c core/mh_host.h core/mh_hoststore.c core/mh_hoststore.h \
	core/mh_daemon.c core/mh_daemon.h \
	core/mh_storeq.c core/mh_storeq.h \
	core/mh_hub.c core/mh_hub.h \
	core/mh_crypto.c core/mh_crypto.h \
	core/mh_mime.c core/mh_mime.h \
	core/mh_search.c core/mh_search.h core/mh_utf8.h \
	core/mh_rules.c core/mh_rules.h \
	core/mh_outbox.c core/mh_outbox.h \
	core/mh_valid.c core/mh_valid.h \
	core/mh_api.c core/mh_api.h \
	core/mh_cfgjson.c core/mh_cfgjson.h
core_libmhcore_la_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS) $(YAML_CFLAGS) $(JANSSON_CFLAGS) $(OPENSSL_CFLAGS) \
	$(GMIME_CFLAGS) $(ARGON2_CFLAGS) $(MHD_CFLAGS)
core_libmhcore_la_LIBADD = $(CURL_LIBS) $(YAML_LIBS) $(JANSSON_LIBS) $(OPENSSL_LIBS) \
	$(GMIME_LIBS) $(ARGON2_LIBS) $(MHD_LIBS) \
	$(LIBEV_LIBS) $(LTDL_LIBS) $(DL_LIBS) $(PTHREAD_LIBS) $(MATH_LIBS)

sbin_PROGRAMS += core/mailhubd
core_mailhubd_SOURCES = core/mailhubd.c
core_mailhubd_CFLAGS = $(AM_CFLAGS)
core_mailhubd_LDADD = core/libmhcore.la

# mailhubctl: the command-line client of the control API (libcurl + jansson only).
bin_PROGRAMS += core/mailhubctl
core_mailhubctl_SOURCES = core/mailhubctl.c
core_mailhubctl_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS) $(JANSSON_CFLAGS)
core_mailhubctl_LDADD = $(CURL_LIBS) $(JANSSON_LIBS)

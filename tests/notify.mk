# tests/notify.mk: the notifiers (sms, email, webhook) and their shared helper.
# Unit: plugins/common/notify_tpl (templates, GSM-7, SMS segments, mail encodings, signatures).
# Integration: the real daemon with the three notifiers against Kannel (bearerbox + smsbox +
# fakesmsc), aiosmtpd with STARTTLS + AUTH and a signature-checking webhook receiver.
check_PROGRAMS += tests/unit/test_notify_tpl
TESTS += tests/unit/test_notify_tpl tests/integration/notify.sh
tests_unit_test_notify_tpl_SOURCES = tests/unit/test_notify_tpl.c
tests_unit_test_notify_tpl_CFLAGS = $(TEST_CFLAGS) -I$(top_srcdir)/plugins/common
tests_unit_test_notify_tpl_LDADD = plugins/common/libnotify_tpl.la $(TEST_LIBS)
EXTRA_DIST += tests/integration/notify.sh tests/peers/kannel.sh tests/peers/smtpd.py tests/tools/webhook_rx.py \
	tests/tools/webhook_vector.py

# The sms plugin against the mock host, with a recording mh_http_request.
check_PROGRAMS += tests/unit/test_plugin_sms
TESTS += tests/unit/test_plugin_sms
tests_unit_test_plugin_sms_SOURCES = tests/unit/test_plugin_sms.c plugins/sms/sms.c $(MOCK_HOST_SOURCES)
tests_unit_test_plugin_sms_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_plugin_sms_LDADD = plugins/common/libnotify_tpl.la $(TEST_LIBS)

# The webhook plugin's SSRF classification and configuration (#includes webhook.c).
check_PROGRAMS += tests/unit/test_plugin_webhook
TESTS += tests/unit/test_plugin_webhook
tests_unit_test_plugin_webhook_SOURCES = tests/unit/test_plugin_webhook.c $(MOCK_HOST_SOURCES)
tests_unit_test_plugin_webhook_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_plugin_webhook_LDADD = plugins/common/libnotify_tpl.la $(TEST_LIBS)

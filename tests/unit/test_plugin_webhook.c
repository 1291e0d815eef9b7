/*
 * The webhook notifier's pieces that need no network: the SSRF address
 * classification, the log target (no credentials, path or query) and
 * configuration errors.  Deliveries, signatures and retries are tested
 * against a real receiver in tests/integration/notify.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mock_host.h"

/* the plugin itself, for its static functions */
#include "../../plugins/webhook/webhook.c"

static const char *classify(const char *text)
{
    unsigned char b[16];
    if (inet_pton(AF_INET, text, b) == 1)
        return v4_private((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]);
    assert_int_equal(inet_pton(AF_INET6, text, b), 1);
    return v6_private(b);
}

static void test_ssrf_classes(void **st)
{
    (void)st;
    static const struct {
        const char *addr, *why; /* why NULL: public */
    } cases[] = {
        {"127.0.0.1", "loopback"},
        {"127.255.1.2", "loopback"},
        {"10.1.2.3", "private"},
        {"172.16.0.1", "private"},
        {"172.31.255.255", "private"},
        {"172.32.0.1", NULL},
        {"172.15.255.255", NULL},
        {"192.168.1.1", "private"},
        {"169.254.169.254", "link-local"},
        {"0.0.0.0", "unspecified"},
        {"100.64.0.1", "shared (CGNAT)"},
        {"100.128.0.1", NULL},
        {"224.0.0.1", "multicast or reserved"},
        {"255.255.255.255", "multicast or reserved"},
        {"198.18.0.1", "reserved"},
        {"192.0.0.8", "reserved"},
        {"8.8.8.8", NULL},
        {"93.184.216.34", NULL},
        {"::1", "loopback"},
        {"::", "unspecified"},
        {"fe80::1", "link-local"},
        {"fd00::1", "unique-local"},
        {"fc12::1", "unique-local"},
        {"ff02::1", "multicast"},
        {"::ffff:127.0.0.1", "loopback"},
        {"::ffff:10.0.0.1", "private"},
        {"::ffff:8.8.8.8", NULL},
        {"64:ff9b::a9fe:a9fe", "link-local"},
        {"2001:db8::1", "documentation"},
        {"2001:4860:4860::8888", NULL},
        {"2a00:1450::1", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *why = classify(cases[i].addr);
        if (cases[i].why == NULL) {
            if (why != NULL)
                fail_msg("%s classified as %s, expected public", cases[i].addr, why);
        } else {
            if (why == NULL || strcmp(why, cases[i].why) != 0)
                fail_msg("%s classified as %s, expected %s", cases[i].addr, why ? why : "public",
                         cases[i].why);
        }
    }
}

static void test_url_target(void **st)
{
    (void)st;
    char *t = url_target("https://user:pw@hooks.example.org:8443/p/a?token=secret#x");
    assert_string_equal(t, "https://hooks.example.org:8443");
    free(t);
    t = url_target("http://127.0.0.1:9/");
    assert_string_equal(t, "http://127.0.0.1:9");
    free(t);
    assert_null(url_target("ftp://x/"));
    assert_null(url_target("https:///nohost"));
}

static int init_with(const char *const *kv, char *err, size_t err_len)
{
    struct mock_host *mh = mock_host_new("hook", "webhook");
    const struct mh_config *cfg = mock_host_config(mh, hook_options, kv);
    assert_non_null(cfg);
    void *state = NULL;
    int rc = hook_init(mock_host_ctx(mh), cfg, &state);
    snprintf(err, err_len, "%s", mock_host_error(mh) ? mock_host_error(mh) : "");
    if (rc == MH_OK) {
        assert_non_null(mock_host_log_find(mh, "posting signed events to https://h.example"));
        hook_free(state);
    }
    mock_host_free(&mh);
    return rc;
}

static void test_config(void **st)
{
    (void)st;
    char err[256];
    const char *ok[] = {"url",
                        "https://h.example/x?k=1",
                        "secret",
                        "whsec_AAECAwQ=",
                        "secret_previous",
                        "whsec_BAUG",
                        "headers",
                        "X-A: 1",
                        NULL};
    assert_int_equal(init_with(ok, err, sizeof err), MH_OK);
    const char *bad_secret[] = {"url", "https://h.example/", "secret", "whsec_not base64", NULL};
    assert_int_equal(init_with(bad_secret, err, sizeof err), MH_EINVAL);
    assert_non_null(strstr(err, "secret must be whsec_"));
    const char *bad_prev[] = {
        "url", "https://h.example/", "secret", "whsec_AAECAwQ=", "secret_previous", "%%", NULL};
    assert_int_equal(init_with(bad_prev, err, sizeof err), MH_EINVAL);
    assert_non_null(strstr(err, "secret_previous"));
    const char *bad_url[] = {"url", "file:///etc/passwd", "secret", "whsec_AAECAwQ=", NULL};
    assert_int_equal(init_with(bad_url, err, sizeof err), MH_EINVAL);
    assert_non_null(strstr(err, "http:// or https://"));
    const char *bad_header[] = {"url", "https://h.example/", "secret", "whsec_AAECAwQ=", "headers", "NoColon",
                                NULL};
    assert_int_equal(init_with(bad_header, err, sizeof err), MH_EINVAL);
    assert_non_null(strstr(err, "headers[0]"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ssrf_classes),
        cmocka_unit_test(test_url_target),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * The sms notifier against the mock host, with mh_http_request replaced by a
 * recorder: the Kannel request (number, text, coding), the generic HTTP
 * gateway's rendered body and headers, segment cutting, and how gateway
 * answers map to delivered / retry / permanent.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "mock_host.h"

extern const struct mh_plugin mh_plugin_descriptor;

/* ---------------------------------------------------- recording http */

struct rec {
    int calls;
    char method[16];
    char *url, *body;
    char headers[8][256];
    int n_headers;
    mh_http_cb cb;
    void *arg;
};
static struct rec R; /* test-only global: the fake host function has no other place */
static double retry_after_seen;

static void fake_retry_after(struct mh_job *job, double seconds)
{
    (void)job;
    retry_after_seen = seconds;
}

static int fake_http(struct mh_plugin_ctx *ctx, const struct mh_http_request *req, mh_http_cb cb, void *arg,
                     struct mh_http **handle_out)
{
    (void)ctx;
    R.calls++;
    snprintf(R.method, sizeof R.method, "%s", req->method ? req->method : "");
    free(R.url);
    free(R.body);
    R.url = strdup(req->url);
    R.body = NULL;
    if (req->body != NULL) {
        R.body = calloc(1, req->body_len + 1);
        memcpy(R.body, req->body, req->body_len);
    }
    R.n_headers = 0;
    for (const char *const *h = req->headers; h && *h && R.n_headers < 8; h++)
        snprintf(R.headers[R.n_headers++], sizeof R.headers[0], "%s", *h);
    R.cb = cb;
    R.arg = arg;
    if (handle_out)
        *handle_out = NULL;
    return MH_PENDING;
}

struct fx {
    struct mock_host *mh;
    struct mh_host table;
    void *state;
};

static struct fx *setup_with(const char *const *kv)
{
    struct fx *f = calloc(1, sizeof *f);
    f->mh = mock_host_new("sms", "sms");
    f->table = *mock_host_table(f->mh);
    f->table.http_request = fake_http;
    f->table.job_retry_after = fake_retry_after;
    struct mh_plugin_ctx *ctx = mock_host_ctx(f->mh);
    ctx->host = &f->table;
    const struct mh_config *cfg = mock_host_config(f->mh, mh_plugin_descriptor.options, kv);
    assert_non_null(cfg);
    int rc = mh_plugin_descriptor.init(ctx, cfg, &f->state);
    if (rc != MH_OK) {
        mock_host_free(&f->mh);
        free(f);
        return NULL;
    }
    memset(&R, 0, sizeof R);
    return f;
}

static void teardown_fx(struct fx *f)
{
    mh_plugin_descriptor.free(f->state);
    mock_host_free(&f->mh);
    free(f);
    free(R.url);
    free(R.body);
    memset(&R, 0, sizeof R);
}

static char *envelope(const char *from, const char *subject, const char *phone)
{
    json_t *data = json_pack("{s:s, s:s, s:s, s:s}", "account", "work@corp.com", "folder", "INBOX", "from",
                             from, "subject", subject);
    if (phone)
        json_object_set_new(data, "phone", json_string(phone));
    json_t *env = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:o}", "id", "evt_1", "type", "mail.received",
                            "version", 1, "time", "2026-11-28T20:41:00.123Z", "source", "provider/work",
                            "user", "alice", "data", data);
    char *s = json_dumps(env, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(env);
    return s;
}

static int send_env_phone(struct fx *f, const char *json, const char *phone, struct mh_job **job_out)
{
    struct mh_event ev = mock_event_make("evt_1", "mail.received", json);
    ev.phone = phone;
    *job_out = mock_host_job_new(f->mh);
    (*job_out)->host = &f->table; /* so mh_job_retry_after reaches the recorder */
    return ((const struct mh_notifier_ops *)mh_plugin_descriptor.ops)->send(f->state, &ev, *job_out);
}

static int send_env(struct fx *f, const char *json, struct mh_job **job_out)
{
    return send_env_phone(f, json, NULL, job_out);
}

static void answer(long status, const char *body, int rc)
{
    struct mh_http_response resp = {.struct_size = sizeof resp,
                                    .status = status,
                                    .body = body,
                                    .body_len = body ? strlen(body) : 0,
                                    .error = rc != MH_OK ? "refused" : NULL};
    R.cb(R.arg, &resp, rc);
}

/* The value of query parameter `name` in R.url, URL-decoded (NULL if absent). */
static char *query_param(const char *name)
{
    const char *q = strchr(R.url, '?');
    size_t nl = strlen(name);
    for (const char *p = q; p && *p; p = strchr(p + 1, '&')) {
        if (strncmp(p + 1, name, nl) == 0 && p[1 + nl] == '=') {
            const char *v = p + 2 + nl;
            size_t n = strcspn(v, "&");
            char *out = calloc(1, n + 1);
            size_t k = 0;
            for (size_t i = 0; i < n; i++) {
                if (v[i] == '%' && i + 2 < n + 1) {
                    unsigned x;
                    sscanf(v + i + 1, "%2x", &x);
                    out[k++] = (char)x;
                    i += 2;
                } else {
                    out[k++] = v[i] == '+' ? ' ' : v[i];
                }
            }
            return out;
        }
    }
    return NULL;
}

static const char *const KANNEL[] = {"url",      "http://127.0.0.1:13013/cgi-bin/sendsms",
                                     "username", "tester",
                                     "password", "foo&bar",
                                     "from",     "12345",
                                     "to",       "+86 138-0013 (8000)",
                                     NULL};

static void test_kannel_chinese(void **st)
{
    (void)st;
    struct fx *f = setup_with(KANNEL);
    assert_non_null(f);
    char *json = envelope("陈小明 <chen@example.cn>", "季度报告", NULL);
    struct mh_job *job;
    assert_int_equal(send_env(f, json, &job), MH_PENDING);
    assert_int_equal(R.calls, 1);
    assert_string_equal(R.method, "GET");
    char *to = query_param("to"), *text = query_param("text"), *pw = query_param("password");
    char *coding = query_param("coding"), *charset = query_param("charset"), *from = query_param("from");
    assert_string_equal(to, "+8613800138000");
    assert_string_equal(text, "[work@corp.com] 陈小明: 季度报告");
    assert_string_equal(pw, "foo&bar");
    assert_string_equal(coding, "2");
    assert_string_equal(charset, "UTF-8");
    assert_string_equal(from, "12345");
    free(to), free(text), free(pw), free(coding), free(charset), free(from);
    int rc = 99;
    assert_int_equal(mock_host_job_done(job, &rc, NULL), 0);
    answer(202, "0: Accepted for delivery", MH_OK);
    assert_int_equal(mock_host_job_done(job, &rc, NULL), 1);
    assert_int_equal(rc, MH_OK);
    assert_null(mock_host_log_find(f->mh, "foo&bar"));
    free(json);
    teardown_fx(f);
}

static void test_kannel_gsm_and_cut(void **st)
{
    (void)st;
    const char *kv[] = {"url",       "http://127.0.0.1:13013/cgi-bin/sendsms",
                        "username",  "u",
                        "password",  "p",
                        "to",        "{phone}",
                        "max_parts", "1",
                        NULL};
    struct fx *f = setup_with(kv);
    assert_non_null(f);
    char subject[400];
    memset(subject, 'x', 300);
    subject[300] = '\0';
    char *json = envelope("Bob <bob@example.com>", subject, "+8613900139000");
    struct mh_job *job;
    assert_int_equal(send_env(f, json, &job), MH_PENDING);
    char *to = query_param("to"), *text = query_param("text"), *coding = query_param("coding");
    assert_string_equal(to, "+8613900139000"); /* {phone} is data.phone */
    assert_null(coding);                       /* GSM-7: no UCS-2 */
    assert_int_equal(strlen(text), 158);       /* one part: 160 septets, '[' and ']' take two each */
    assert_memory_equal(text, "[work@corp.com] Bob: xxx", 24);
    free(to), free(text);
    answer(202, "0: Accepted for delivery", MH_OK);
    free(json);

    /* a Chinese subject over one UCS-2 part is cut to 70 characters, on character boundaries */
    char zh[3 * 100 + 1] = "";
    for (int i = 0; i < 100; i++)
        strcat(zh, "报");
    json = envelope("Bob <bob@example.com>", zh, "+8613900139000");
    assert_int_equal(send_env(f, json, &job), MH_PENDING);
    text = query_param("text");
    coding = query_param("coding");
    assert_string_equal(coding, "2");
    /* "[work@corp.com] Bob: " is 21 characters: 49 Chinese ones follow */
    assert_int_equal(strlen(text), 21 + 49 * 3);
    free(text), free(coding);
    answer(202, "0: Accepted for delivery", MH_OK);
    free(json);
    teardown_fx(f);
}

static void test_results(void **st)
{
    (void)st;
    static const struct {
        long status;
        int rc_in, want;
    } cases[] = {
        {202, MH_OK, MH_OK},       {200, MH_OK, MH_OK},          {403, MH_OK, MH_ERR},
        {400, MH_OK, MH_ERR},      {429, MH_OK, MH_ERETRY},      {503, MH_OK, MH_ERETRY},
        {0, MH_ERETRY, MH_ERETRY}, {0, MH_ETIMEDOUT, MH_ERETRY}, {0, MH_ERR, MH_ERR},
    };
    struct fx *f = setup_with(KANNEL);
    char *json = envelope("a@b.c", "hi", NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mh_job *job;
        assert_int_equal(send_env(f, json, &job), MH_PENDING);
        answer(cases[i].status, "x", cases[i].rc_in);
        int rc = 99;
        assert_int_equal(mock_host_job_done(job, &rc, NULL), 1);
        assert_int_equal(rc, cases[i].want);
    }
    free(json);
    teardown_fx(f);
}

static void test_bound_phone_and_retry_after(void **st)
{
    (void)st;
    const char *kv[] = {"url", "http://127.0.0.1:13013/cgi-bin/sendsms", "username", "u", "password", "p",
                        NULL};
    struct fx *f = setup_with(kv);
    char *json = envelope("a@b.c", "hi", "+8613900139000");
    struct mh_job *job;
    /* the user's bound number (mh_event.phone) wins over data.phone */
    assert_int_equal(send_env_phone(f, json, "+86 137 0000 1111", &job), MH_PENDING);
    char *to = query_param("to");
    assert_string_equal(to, "+8613700001111");
    free(to);
    struct mh_http_header h[] = {{"Content-Type", "text/plain"}, {"retry-after", "30"}};
    struct mh_http_response resp = {.struct_size = sizeof resp,
                                    .status = 429,
                                    .body = "slow down",
                                    .body_len = 9,
                                    .headers = h,
                                    .n_headers = 2};
    retry_after_seen = 0;
    R.cb(R.arg, &resp, MH_OK);
    int rc;
    assert_int_equal(mock_host_job_done(job, &rc, NULL), 1);
    assert_int_equal(rc, MH_ERETRY);
    assert_true(retry_after_seen == 30.0);
    free(json);
    teardown_fx(f);
}

static void test_no_number(void **st)
{
    (void)st;
    const char *kv[] = {"url", "http://127.0.0.1:13013/cgi-bin/sendsms", "username", "u", "password", "p",
                        NULL};
    struct fx *f = setup_with(kv);
    char *json = envelope("a@b.c", "hi", NULL);
    struct mh_job *job;
    assert_int_equal(send_env(f, json, &job), MH_ERR); /* permanent: no retry can invent a number */
    assert_int_equal(R.calls, 0);
    assert_non_null(strstr(mock_host_error(f->mh), "no phone number for user 'alice'"));
    free(json);
    json = envelope("a@b.c", "hi", "call me maybe");
    assert_int_equal(send_env(f, json, &job), MH_ERR);
    assert_non_null(strstr(mock_host_error(f->mh), "is not a phone number"));
    free(json);
    teardown_fx(f);
}

static void test_http_gateway_json(void **st)
{
    (void)st;
    const char *kv[] = {"mode",
                        "http",
                        "url",
                        "https://sms.example/v1/{to}/send",
                        "method",
                        "POST",
                        "body_format",
                        "json",
                        "body",
                        "{\"to\":\"{to}\",\"from\":\"{sender}\",\"text\":\"{text}\","
                        "\"enc\":\"{coding}\"}",
                        "from",
                        "Hub \"1\"",
                        "to",
                        "+8613800138000",
                        "auth_header",
                        "Authorization: Bearer tok-secret-9",
                        "headers",
                        "X-A: 1",
                        NULL};
    struct fx *f = setup_with(kv);
    assert_non_null(f);
    char *json = envelope("\"Chen, X\" <x@y.z>", "line1\nline2 \"q\" 😀", NULL);
    struct mh_job *job;
    assert_int_equal(send_env(f, json, &job), MH_PENDING);
    assert_string_equal(R.method, "POST");
    assert_string_equal(R.url, "https://sms.example/v1/%2B8613800138000/send");
    json_error_t err;
    json_t *body = json_loads(R.body, 0, &err);
    assert_non_null(body); /* the rendered body is valid JSON whatever the subject holds */
    assert_string_equal(json_string_value(json_object_get(body, "to")), "+8613800138000");
    assert_string_equal(json_string_value(json_object_get(body, "from")), "Hub \"1\"");
    assert_string_equal(json_string_value(json_object_get(body, "text")),
                        "[work@corp.com] Chen, X: line1\nline2 \"q\" 😀");
    assert_string_equal(json_string_value(json_object_get(body, "enc")), "ucs2");
    json_decref(body);
    assert_string_equal(R.headers[0], "Content-Type: application/json");
    assert_string_equal(R.headers[1], "Authorization: Bearer tok-secret-9");
    assert_string_equal(R.headers[2], "X-A: 1");
    answer(201, "{}", MH_OK);
    int rc;
    assert_int_equal(mock_host_job_done(job, &rc, NULL), 1);
    assert_int_equal(rc, MH_OK);
    free(json);
    teardown_fx(f);
}

static void test_http_gateway_form(void **st)
{
    (void)st;
    const char *kv[] = {
        "mode", "http",          "url", "https://sms.example/send", "body", "To={to}&Body={text}",
        "to",   "8613800138000", NULL};
    struct fx *f = setup_with(kv);
    assert_non_null(f);
    char *json = envelope("A <a@b.c>", "x&y=z", NULL);
    struct mh_job *job;
    assert_int_equal(send_env(f, json, &job), MH_PENDING);
    assert_string_equal(R.body, "To=8613800138000&Body=%5Bwork%40corp.com%5D%20A%3A%20x%26y%3Dz");
    assert_string_equal(R.headers[0], "Content-Type: application/x-www-form-urlencoded");
    answer(200, "", MH_OK);
    free(json);
    teardown_fx(f);
}

static void test_config_errors(void **st)
{
    (void)st;
    const char *bad_tpl[] = {"url",      "http://k/cgi-bin/sendsms", "username", "u", "password", "p",
                             "template", "{acount}: {subject}",      NULL};
    assert_null(setup_with(bad_tpl));
    const char *no_user[] = {"url", "http://k/cgi-bin/sendsms", NULL};
    assert_null(setup_with(no_user));
    const char *no_body[] = {"mode", "http", "url", "https://x/", NULL};
    assert_null(setup_with(no_body));
    const char *bad_url[] = {"url", "ftp://x/", "username", "u", "password", "p", NULL};
    assert_null(setup_with(bad_url));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kannel_chinese),
        cmocka_unit_test(test_kannel_gsm_and_cut),
        cmocka_unit_test(test_results),
        cmocka_unit_test(test_no_number),
        cmocka_unit_test(test_bound_phone_and_retry_after),
        cmocka_unit_test(test_http_gateway_json),
        cmocka_unit_test(test_http_gateway_form),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

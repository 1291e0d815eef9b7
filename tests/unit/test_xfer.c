/* Unit tests for core/mh_xfer.c against a local HTTP server (tests/httpd.c). */
#include "config.h"

#include <curl/curl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>

#include "httpd.h"
#include "mh_loop.h"
#include "mh_xfer.h"

/* Shared across the group: the servers. */
static struct mh_test_httpd *srv;
static int blackhole_fd = -1, refused_fd = -1;
static unsigned short blackhole_port, refused_port;

/* Per test. */
struct fix {
    struct mh_loop *loop;
    struct mh_xfer *xfer;
    struct mh_timer *watchdog;
};

static char *url_for(const char *path)
{
    static char buf[8][256];
    static int next;
    char *b = buf[next++ % 8];
    snprintf(b, sizeof buf[0], "http://127.0.0.1:%u%s", (unsigned)mh_test_httpd_port(srv), path);
    return b;
}

static void watchdog_cb(struct mh_timer *t, void *arg) {}

/*
 * Run the loop until *counter reaches want.  The deadline only keeps a broken build
 * from hanging for ever; no test asserts on elapsed time.
 */
static void run_until(struct fix *f, const int *counter, int want)
{
    double deadline = mh_loop_now(f->loop) + 60;
    while (*counter < want && mh_loop_now(f->loop) < deadline)
        mh_loop_run_once(f->loop, 1);
}

static int group_setup(void **state)
{
    /* Loopback only: never go through a proxy from the environment. */
    setenv("no_proxy", "*", 1);
    setenv("NO_PROXY", "*", 1);
    srv = mh_test_httpd_start();
    blackhole_fd = mh_test_blackhole_open(&blackhole_port);
    refused_fd = mh_test_refused_open(&refused_port);
    return srv != NULL && blackhole_fd >= 0 && refused_fd >= 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    mh_test_httpd_stop(&srv);
    close(blackhole_fd);
    close(refused_fd);
    return 0;
}

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    f->loop = mh_loop_new();
    if (f->loop == NULL)
        return -1;
    f->xfer = mh_xfer_new(f->loop, NULL);
    if (f->xfer == NULL)
        return -1;
    /* Keeps every blocking iteration short, so run_until can check its deadline. */
    f->watchdog = mh_timer_new(f->loop, NULL, 1, 1, watchdog_cb, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    mh_xfer_free(&f->xfer);
    mh_timer_free(&f->watchdog);
    mh_loop_free(&f->loop);
    free(f);
    return 0;
}

/* One request's outcome. */
struct res {
    int calls;
    int rc;
    long status;
    char *body;
    size_t body_len;
    char *error;
    char *hdr_test;   /* X-Echo-Test */
    char *hdr_method; /* X-Echo-Method */
    int *returned;    /* set once mh_xfer_http returned; checked in the callback */
    int *counter;     /* shared completion counter */
    int early;        /* the callback ran before mh_xfer_http returned */
};

static void res_clear(struct res *r)
{
    free(r->body);
    free(r->error);
    free(r->hdr_test);
    free(r->hdr_method);
    memset(r, 0, sizeof *r);
}

static const char *resp_header(const struct mh_http_response *resp, const char *name)
{
    for (size_t i = 0; i < resp->n_headers; i++)
        if (strcasecmp(resp->headers[i].name, name) == 0)
            return resp->headers[i].value;
    return NULL;
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static void res_cb(void *arg, const struct mh_http_response *resp, int rc)
{
    struct res *r = arg;
    r->calls++;
    r->rc = rc;
    if (r->returned != NULL && !*r->returned)
        r->early = 1;
    if (r->calls == 1) {
        r->status = resp->status;
        r->body_len = resp->body_len;
        r->body = malloc(resp->body_len + 1);
        memcpy(r->body, resp->body, resp->body_len + 1); /* NUL-terminated by contract */
        r->error = dup_or_null(resp->error);
        r->hdr_test = dup_or_null(resp_header(resp, "X-Echo-Test"));
        r->hdr_method = dup_or_null(resp_header(resp, "X-Echo-Method"));
    }
    if (r->counter != NULL)
        (*r->counter)++;
}

static int get(struct fix *f, void *owner, const char *url, int64_t timeout_ms, struct res *r,
               struct mh_http **h)
{
    const struct mh_http_request req = {.struct_size = sizeof req, .url = url, .timeout_ms = timeout_ms};
    return mh_xfer_http(f->xfer, owner, &req, res_cb, r, h);
}

/* --------------------------------------------------------------- basics */

static void test_get_status(void **state)
{
    struct fix *f = *state;
    int done = 0;
    struct res r = {.counter = &done};
    assert_int_equal(get(f, NULL, url_for("/status/404"), 0, &r, NULL), MH_PENDING);
    assert_int_equal(mh_xfer_active(f->xfer), 1);
    run_until(f, &done, 1);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.rc, MH_OK); /* an HTTP response, whatever its status */
    assert_int_equal(r.status, 404);
    assert_null(r.error);
    assert_int_equal(mh_xfer_active(f->xfer), 0);
    res_clear(&r);
}

static void test_methods_and_headers(void **state)
{
    struct fix *f = *state;
    int done = 0;
    struct res r = {.counter = &done};
    static const char body[] = "put body\0with a NUL";
    const char *headers[] = {"X-Test: hello there", NULL};
    struct mh_http_request req = {
        .struct_size = sizeof req,
        .method = "PUT",
        .url = url_for("/echo"),
        .headers = headers,
        .body = body,
        .body_len = sizeof body - 1,
    };
    assert_int_equal(mh_xfer_http(f->xfer, NULL, &req, res_cb, &r, NULL), MH_PENDING);
    run_until(f, &done, 1);
    assert_int_equal(r.rc, MH_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, sizeof body - 1);
    assert_memory_equal(r.body, body, sizeof body - 1);
    assert_string_equal(r.hdr_method, "PUT");
    assert_string_equal(r.hdr_test, "hello there");
    res_clear(&r);

    /* A body without a method is a POST. */
    done = 0;
    r.counter = &done;
    req.method = NULL;
    req.headers = NULL;
    assert_int_equal(mh_xfer_http(f->xfer, NULL, &req, res_cb, &r, NULL), MH_PENDING);
    run_until(f, &done, 1);
    assert_int_equal(r.rc, MH_OK);
    assert_string_equal(r.hdr_method, "POST");
    assert_null(r.hdr_test);
    res_clear(&r);
}

static void test_request_copied(void **state)
{
    struct fix *f = *state;
    int done = 0;
    struct res r = {.counter = &done};
    char url[256], body[64], header[64];
    snprintf(url, sizeof url, "%s", url_for("/echo"));
    snprintf(body, sizeof body, "original body");
    snprintf(header, sizeof header, "X-Test: original");
    const char *headers[] = {header, NULL};
    struct mh_http_request req = {
        .struct_size = sizeof req,
        .method = "POST",
        .url = url,
        .headers = headers,
        .body = body,
        .body_len = strlen(body),
    };
    assert_int_equal(mh_xfer_http(f->xfer, NULL, &req, res_cb, &r, NULL), MH_PENDING);
    /* Everything was copied: scribbling over the caller's buffers changes nothing. */
    memset(url, 'x', sizeof url - 1);
    memset(body, 'y', sizeof body - 1);
    memset(header, 'z', sizeof header - 1);
    run_until(f, &done, 1);
    assert_int_equal(r.rc, MH_OK);
    assert_string_equal(r.body, "original body");
    assert_string_equal(r.hdr_test, "original");
    res_clear(&r);
}

static void test_redirect_not_followed(void **state)
{
    struct fix *f = *state;
    int done = 0;
    struct res r = {.counter = &done};
    assert_int_equal(get(f, NULL, url_for("/redirect"), 0, &r, NULL), MH_PENDING);
    run_until(f, &done, 1);
    assert_int_equal(r.rc, MH_OK);
    assert_int_equal(r.status, 302);
    res_clear(&r);
}

static void test_bad_requests(void **state)
{
    struct fix *f = *state;
    struct res r = {0};
    struct mh_http *h = (struct mh_http *)&r; /* must be reset to NULL */
    struct mh_http_request req = {.struct_size = sizeof req, .url = NULL};
    assert_int_equal(mh_xfer_http(f->xfer, NULL, &req, res_cb, &r, &h), MH_EINVAL);
    assert_null(h);
    req.url = url_for("/echo");
    req.method = "GET /x HTTP/1.1\r\nX:";
    assert_int_equal(mh_xfer_http(f->xfer, NULL, &req, res_cb, &r, NULL), MH_EINVAL);
    req.method = "GET";
    const char *headers[] = {"X-Test: a\r\nX-Injected: b", NULL};
    req.headers = headers;
    assert_int_equal(mh_xfer_http(f->xfer, NULL, &req, res_cb, &r, NULL), MH_EINVAL);
    req.headers = NULL;
    assert_int_equal(mh_xfer_http(f->xfer, NULL, &req, NULL, &r, NULL), MH_EINVAL);
    req.struct_size = 0;
    assert_int_equal(mh_xfer_http(f->xfer, NULL, &req, res_cb, &r, NULL), MH_EINVAL);
    assert_int_equal(r.calls, 0);
    assert_int_equal(mh_xfer_active(f->xfer), 0);
}

/* A plugin built against an older SDK passes a shorter request: missing fields read as 0. */
static void test_short_request_struct(void **state)
{
    struct fix *f = *state;
    int done = 0;
    struct res r = {.counter = &done};
    struct mh_http_request req = {.url = url_for("/status/201"), .timeout_ms = 1, .body_len = 99};
    req.struct_size = (uint32_t)offsetof(struct mh_http_request, headers);
    assert_int_equal(mh_xfer_http(f->xfer, NULL, &req, res_cb, &r, NULL), MH_PENDING);
    run_until(f, &done, 1);
    /* timeout_ms = 1 and body_len = 99 lie beyond struct_size and were ignored. */
    assert_int_equal(r.rc, MH_OK);
    assert_int_equal(r.status, 201);
    res_clear(&r);
}

/* ------------------------------------------------------------- parallel */

#define N_PARALLEL 200

static void test_parallel(void **state)
{
    struct fix *f = *state;
    static struct res rs[N_PARALLEL];
    char bodies[N_PARALLEL][64], hdrs[N_PARALLEL][64];
    int done = 0;
    unsigned long served = mh_test_httpd_requests(srv);
    for (int i = 0; i < N_PARALLEL; i++) {
        memset(&rs[i], 0, sizeof rs[i]);
        rs[i].counter = &done;
        snprintf(bodies[i], sizeof bodies[i], "body number %d", i);
        snprintf(hdrs[i], sizeof hdrs[i], "X-Test: %d", i);
        const char *headers[] = {hdrs[i], NULL};
        const struct mh_http_request req = {
            .struct_size = sizeof req,
            .url = url_for("/echo"),
            .headers = headers,
            .body = bodies[i],
            .body_len = strlen(bodies[i]),
        };
        assert_int_equal(mh_xfer_http(f->xfer, NULL, &req, res_cb, &rs[i], NULL), MH_PENDING);
    }
    assert_int_equal(mh_xfer_active(f->xfer), N_PARALLEL);
    run_until(f, &done, N_PARALLEL);
    assert_int_equal(done, N_PARALLEL);
    for (int i = 0; i < N_PARALLEL; i++) {
        char want[16];
        snprintf(want, sizeof want, "%d", i);
        assert_int_equal(rs[i].calls, 1);
        assert_int_equal(rs[i].rc, MH_OK);
        assert_int_equal(rs[i].status, 200);
        assert_string_equal(rs[i].body, bodies[i]);
        assert_string_equal(rs[i].hdr_test, want);
        res_clear(&rs[i]);
    }
    assert_true(mh_test_httpd_requests(srv) - served >= N_PARALLEL);
    assert_int_equal(mh_xfer_active(f->xfer), 0);
}

/* ------------------------------------------------------------- failures */

static void test_timeout(void **state)
{
    struct fix *f = *state;
    int done = 0;
    struct res r = {.counter = &done};
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/", (unsigned)blackhole_port);
    assert_int_equal(get(f, NULL, url, 300, &r, NULL), MH_PENDING);
    run_until(f, &done, 1);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.rc, MH_ETIMEDOUT);
    assert_int_equal(r.status, 0);
    assert_non_null(r.error);
    res_clear(&r);
}

static void test_refused(void **state)
{
    struct fix *f = *state;
    int done = 0;
    struct res r = {.counter = &done};
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/", (unsigned)refused_port);
    assert_int_equal(get(f, NULL, url, 0, &r, NULL), MH_PENDING);
    run_until(f, &done, 1);
    assert_int_equal(r.rc, MH_ERETRY);
    assert_int_equal(r.status, 0);
    /* curl's own error text (CURLOPT_ERRORBUFFER) names the failure. */
    assert_non_null(r.error);
    assert_non_null(strstr(r.error, "onnect"));
    res_clear(&r);
}

static void test_protocols_limited(void **state)
{
    struct fix *f = *state;
    int done = 0;
    struct res r = {.counter = &done};
    assert_int_equal(get(f, NULL, "file:///etc/passwd", 0, &r, NULL), MH_PENDING);
    run_until(f, &done, 1);
    assert_int_equal(r.rc, MH_ERR);
    assert_int_equal(r.body_len, 0);
    assert_non_null(r.error);
    res_clear(&r);
}

static void test_body_cap(void **state)
{
    struct fix *f = *state;
    char path[96];
    const char *variants[] = {"", "&chunked=1"};
    for (int v = 0; v < 2; v++) {
        /* Exactly the cap is fine... */
        int done = 0;
        struct res r = {.counter = &done};
        snprintf(path, sizeof path, "/big?bytes=%zu%s", MH_XFER_MAX_BODY, variants[v]);
        assert_int_equal(get(f, NULL, url_for(path), 0, &r, NULL), MH_PENDING);
        run_until(f, &done, 1);
        assert_int_equal(r.rc, MH_OK);
        assert_int_equal(r.body_len, MH_XFER_MAX_BODY);
        assert_int_equal(r.body[0], 'a');
        assert_int_equal(r.body[MH_XFER_MAX_BODY - 1], 'a' + (MH_XFER_MAX_BODY - 1) % 26);
        res_clear(&r);
        /* ...one byte more is refused, whether or not the size was announced. */
        done = 0;
        r.counter = &done;
        snprintf(path, sizeof path, "/big?bytes=%zu%s", MH_XFER_MAX_BODY + 1, variants[v]);
        assert_int_equal(get(f, NULL, url_for(path), 0, &r, NULL), MH_PENDING);
        run_until(f, &done, 1);
        assert_int_equal(r.rc, MH_ERR);
        assert_non_null(r.error);
        assert_non_null(strstr(r.error, "16 MiB"));
        res_clear(&r);
    }
}

/* --------------------------------------------------------------- cancel */

static void test_cancel(void **state)
{
    struct fix *f = *state;
    int done = 0;
    struct res r = {.counter = &done};
    struct mh_http *h = NULL;
    assert_int_equal(get(f, NULL, url_for("/slow?ms=5000"), 0, &r, &h), MH_PENDING);
    assert_non_null(h);
    /* Let it connect and send. */
    for (int i = 0; i < 5; i++)
        mh_loop_run_once(f->loop, 0);
    assert_int_equal(r.calls, 0);
    mh_xfer_http_cancel(&h);
    assert_null(h);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.rc, MH_ECANCELED);
    assert_non_null(r.error);
    assert_int_equal(mh_xfer_active(f->xfer), 0);
    mh_xfer_http_cancel(&h); /* NULL-safe */

    /* Run another request to completion: the cancelled one never calls back again. */
    int done2 = 0;
    struct res r2 = {.counter = &done2};
    assert_int_equal(get(f, NULL, url_for("/status/200"), 0, &r2, NULL), MH_PENDING);
    run_until(f, &done2, 1);
    assert_int_equal(r2.rc, MH_OK);
    assert_int_equal(r.calls, 1);
    res_clear(&r);
    res_clear(&r2);
}

/* Cancelling before the loop ever ran: still exactly one callback, from the cancel. */
static void test_cancel_immediately(void **state)
{
    struct fix *f = *state;
    struct res r = {0};
    struct mh_http *h = NULL;
    assert_int_equal(get(f, NULL, url_for("/status/200"), 0, &r, &h), MH_PENDING);
    mh_xfer_http_cancel(&h);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.rc, MH_ECANCELED);
    for (int i = 0; i < 10; i++)
        mh_loop_run_once(f->loop, 0);
    assert_int_equal(r.calls, 1);
    res_clear(&r);
}

struct curl_res {
    int calls;
    int result;
    void *easy;
    struct mh_curl *h;
};

static void curl_done_cb(struct mh_curl *h, void *easy, int result, void *arg)
{
    struct curl_res *r = arg;
    r->calls++;
    r->result = result;
    r->easy = easy;
    r->h = h;
}

static void test_cancel_owner(void **state)
{
    struct fix *f = *state;
    int owner_a, owner_b;
    int done_a = 0, done_b = 0;
    struct res ra[3], rb[2];
    memset(ra, 0, sizeof ra);
    memset(rb, 0, sizeof rb);
    for (int i = 0; i < 3; i++) {
        ra[i].counter = &done_a;
        assert_int_equal(get(f, &owner_a, url_for("/slow?ms=3000"), 0, &ra[i], NULL), MH_PENDING);
    }
    for (int i = 0; i < 2; i++) {
        rb[i].counter = &done_b;
        assert_int_equal(get(f, &owner_b, url_for("/slow?ms=100"), 0, &rb[i], NULL), MH_PENDING);
    }
    /* A curl handle of A's goes too (no callback: the instance is going away). */
    struct curl_res cr = {0};
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url_for("/slow?ms=3000"));
    assert_non_null(mh_xfer_curl_add_take(f->xfer, &owner_a, e, curl_done_cb, &cr));
    assert_int_equal(mh_xfer_active(f->xfer), 6);
    for (int i = 0; i < 5; i++)
        mh_loop_run_once(f->loop, 0);

    mh_xfer_cancel_owner(f->xfer, &owner_a);
    assert_int_equal(done_a, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ra[i].calls, 1);
        assert_int_equal(ra[i].rc, MH_ECANCELED);
    }
    assert_int_equal(mh_xfer_active(f->xfer), 2);
    assert_int_equal(cr.calls, 0);
    run_until(f, &done_b, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(rb[i].rc, MH_OK);
        assert_string_equal(rb[i].body, "slow");
        res_clear(&rb[i]);
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ra[i].calls, 1);
        res_clear(&ra[i]);
    }
    assert_int_equal(mh_xfer_active(f->xfer), 0);
}

static void test_free_in_flight(void **state)
{
    struct fix *f = *state;
    int done = 0;
    struct res rs[6];
    memset(rs, 0, sizeof rs);
    char hole[64];
    snprintf(hole, sizeof hole, "http://127.0.0.1:%u/", (unsigned)blackhole_port);
    for (int i = 0; i < 6; i++) {
        rs[i].counter = &done;
        assert_int_equal(get(f, NULL, i < 4 ? url_for("/slow?ms=3000") : hole, 0, &rs[i], NULL), MH_PENDING);
    }
    for (int i = 0; i < 10; i++)
        mh_loop_run_once(f->loop, 0);
    assert_int_equal(done, 0);
    mh_xfer_free(&f->xfer);
    assert_null(f->xfer);
    assert_int_equal(done, 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(rs[i].calls, 1);
        assert_int_equal(rs[i].rc, MH_ECANCELED);
        res_clear(&rs[i]);
    }
    /* Nothing of the transfer layer is left on the loop (only the test's watchdog). */
    assert_int_equal(mh_loop_owner_count(f->loop, NULL), 1);
}

/* ----------------------------------------------- callback ordering / reentrancy */

static void test_never_before_return(void **state)
{
    struct fix *f = *state;
    /* An oversized URL makes curl_easy_setopt fail synchronously inside mh_xfer_http. */
    size_t huge = 9 * 1000 * 1000;
    char *long_url = malloc(huge);
    assert_non_null(long_url);
    memset(long_url, 'a', huge - 1);
    memcpy(long_url, "http://127.0.0.1/", 17);
    long_url[huge - 1] = '\0';
    char refused[64];
    snprintf(refused, sizeof refused, "http://127.0.0.1:%u/", (unsigned)refused_port);
    const char *urls[] = {url_for("/status/200"), refused, "gopher://127.0.0.1/", long_url};
    enum { N = sizeof urls / sizeof urls[0] };
    struct res r[N];
    int returned[N];
    int done = 0;
    for (int i = 0; i < N; i++) {
        memset(&r[i], 0, sizeof r[i]);
        returned[i] = 0;
        r[i].returned = &returned[i];
        r[i].counter = &done;
        assert_int_equal(get(f, NULL, urls[i], 0, &r[i], NULL), MH_PENDING);
        returned[i] = 1;
    }
    free(long_url);
    assert_int_equal(done, 0);
    run_until(f, &done, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_false(r[i].early);
    }
    assert_int_equal(r[0].rc, MH_OK);
    assert_int_equal(r[1].rc, MH_ERETRY);
    assert_int_equal(r[2].rc, MH_ERR);
    assert_int_equal(r[3].rc, MH_EINVAL); /* delivered from the 0 s timer */
    assert_non_null(r[3].error);
    for (int i = 0; i < N; i++)
        res_clear(&r[i]);
}

/* Trap 2: each completion starts the next request from inside the callback. */
#define CHAIN_LEN 300

struct chain {
    struct fix *f;
    int started;
    int completed;
    int failures;
    int returned;
    int early;
};

static void chain_cb(void *arg, const struct mh_http_response *resp, int rc);

static void chain_next(struct chain *c)
{
    char body[32];
    snprintf(body, sizeof body, "link %d", c->started);
    const struct mh_http_request req = {
        .struct_size = sizeof req,
        .url = url_for("/echo"),
        .body = body,
        .body_len = strlen(body),
    };
    c->started++;
    c->returned = 0;
    assert_int_equal(mh_xfer_http(c->f->xfer, NULL, &req, chain_cb, c, NULL), MH_PENDING);
    c->returned = 1;
}

static void chain_cb(void *arg, const struct mh_http_response *resp, int rc)
{
    struct chain *c = arg;
    char want[32];
    snprintf(want, sizeof want, "link %d", c->completed);
    if (!c->returned)
        c->early = 1;
    if (rc != MH_OK || resp->status != 200 || strcmp(resp->body, want) != 0)
        c->failures++;
    c->completed++;
    if (c->started < CHAIN_LEN)
        chain_next(c);
}

static void test_chain_from_callback(void **state)
{
    struct fix *f = *state;
    struct chain c = {.f = f};
    chain_next(&c);
    run_until(f, &c.completed, CHAIN_LEN);
    assert_int_equal(c.completed, CHAIN_LEN);
    assert_int_equal(c.failures, 0);
    assert_int_equal(c.early, 0);
    assert_int_equal(mh_xfer_active(f->xfer), 0);
}

/* The loop does not spin: a 300 ms request costs a handful of wake-ups, not thousands. */
static void test_no_spin(void **state)
{
    struct fix *f = *state;
    int done = 0;
    struct res r = {.counter = &done};
    unsigned long before = mh_xfer_wakeups(f->xfer);
    assert_int_equal(get(f, NULL, url_for("/slow?ms=300"), 0, &r, NULL), MH_PENDING);
    run_until(f, &done, 1);
    unsigned long used = mh_xfer_wakeups(f->xfer) - before;
    print_message("wake-ups for one 300 ms request: %lu\n", used);
    assert_int_equal(r.rc, MH_OK);
    assert_string_equal(r.body, "slow");
    assert_true(used > 0);
    assert_true(used < 100);
    res_clear(&r);
}

/* ----------------------------------------------------------- curl handles */

struct buf {
    char *data;
    size_t len;
};

static size_t buf_write(char *p, size_t size, size_t n, void *ud)
{
    struct buf *b = ud;
    char *q = realloc(b->data, b->len + size * n + 1);
    if (q == NULL)
        return 0;
    b->data = q;
    memcpy(b->data + b->len, p, size * n);
    b->len += size * n;
    b->data[b->len] = '\0';
    return size * n;
}

static void test_curl_add_take(void **state)
{
    struct fix *f = *state;
    struct buf b = {0};
    struct curl_res r = {0};
    CURL *e = curl_easy_init();
    assert_non_null(e);
    curl_easy_setopt(e, CURLOPT_URL, url_for("/big?bytes=1000"));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, buf_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    struct mh_curl *h = mh_xfer_curl_add_take(f->xfer, NULL, e, curl_done_cb, &r);
    assert_non_null(h);
    assert_ptr_equal(mh_xfer_curl_easy(h), e);
    assert_int_equal(mh_xfer_active(f->xfer), 1);
    run_until(f, &r.calls, 1);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.result, CURLE_OK);
    assert_ptr_equal(r.easy, e);
    assert_ptr_equal(r.h, h);
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    assert_int_equal(code, 200);
    assert_int_equal(b.len, 1000);
    assert_int_equal(b.data[999], 'a' + 999 % 26);
    /* The handle stays the core's until removed. */
    assert_int_equal(mh_xfer_active(f->xfer), 1);
    mh_xfer_curl_remove(&h);
    assert_null(h);
    assert_int_equal(mh_xfer_active(f->xfer), 0);
    mh_xfer_curl_remove(&h); /* NULL-safe */
    free(b.data);

    /* A curl failure is reported as the CURLcode. */
    struct curl_res r2 = {0};
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/", (unsigned)refused_port);
    e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    h = mh_xfer_curl_add_take(f->xfer, NULL, e, curl_done_cb, &r2);
    assert_non_null(h);
    run_until(f, &r2.calls, 1);
    assert_int_equal(r2.result, CURLE_COULDNT_CONNECT);
    mh_xfer_curl_remove(&h);

    /* Bad arguments: the handle is cleaned up all the same (ASan would see a leak). */
    assert_null(mh_xfer_curl_add_take(f->xfer, NULL, curl_easy_init(), NULL, NULL));
    assert_null(mh_xfer_curl_add_take(f->xfer, NULL, NULL, curl_done_cb, NULL));
}

/* A CONNECT_ONLY handle completes when connected and keeps its connection while in the multi. */
static void test_curl_connect_only(void **state)
{
    struct fix *f = *state;
    struct curl_res r = {0};
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url_for("/"));
    curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
    struct mh_curl *h = mh_xfer_curl_add_take(f->xfer, NULL, e, curl_done_cb, &r);
    assert_non_null(h);
    run_until(f, &r.calls, 1);
    assert_int_equal(r.result, CURLE_OK);

    /* Let the loop run some more: the connection must survive. */
    for (int i = 0; i < 5; i++)
        mh_loop_run_once(f->loop, 0);
    unsigned long wakeups = mh_xfer_wakeups(f->xfer);

    curl_socket_t s = CURL_SOCKET_BAD;
    assert_int_equal(curl_easy_getinfo(mh_xfer_curl_easy(h), CURLINFO_ACTIVESOCKET, &s), CURLE_OK);
    assert_true(s != CURL_SOCKET_BAD);

    /* Speak HTTP over it ourselves, as a protocol plugin would. */
    const char req[] = "GET /status/204 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    size_t off = 0;
    while (off < sizeof req - 1) {
        size_t sent = 0;
        CURLcode cc = curl_easy_send(e, req + off, sizeof req - 1 - off, &sent);
        if (cc == CURLE_AGAIN) {
            struct pollfd p = {.fd = s, .events = POLLOUT};
            poll(&p, 1, 1000);
            continue;
        }
        assert_int_equal(cc, CURLE_OK);
        off += sent;
    }
    char resp[512];
    size_t got = 0;
    for (int tries = 0; tries < 100 && got < 12; tries++) {
        size_t n = 0;
        CURLcode cc = curl_easy_recv(e, resp + got, sizeof resp - 1 - got, &n);
        if (cc == CURLE_AGAIN) {
            struct pollfd p = {.fd = s, .events = POLLIN};
            poll(&p, 1, 1000);
            continue;
        }
        assert_int_equal(cc, CURLE_OK);
        if (n == 0)
            break;
        got += n;
    }
    resp[got] = '\0';
    assert_true(got >= 12);
    assert_memory_equal(resp, "HTTP/1.1 204", 12);
    /* The core does not watch the socket any more: the reply woke nothing. */
    for (int i = 0; i < 5; i++)
        mh_loop_run_once(f->loop, 0);
    assert_true(mh_xfer_wakeups(f->xfer) - wakeups < 5);

    assert_int_equal(r.calls, 1);
    mh_xfer_curl_remove(&h);
    assert_int_equal(mh_xfer_active(f->xfer), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_get_status),
        T(test_methods_and_headers),
        T(test_request_copied),
        T(test_redirect_not_followed),
        T(test_bad_requests),
        T(test_short_request_struct),
        T(test_parallel),
        T(test_timeout),
        T(test_refused),
        T(test_protocols_limited),
        T(test_body_cap),
        T(test_cancel),
        T(test_cancel_immediately),
        T(test_cancel_owner),
        T(test_free_in_flight),
        T(test_never_before_return),
        T(test_chain_from_callback),
        T(test_no_spin),
        T(test_curl_add_take),
        T(test_curl_connect_only),
    };
#undef T
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

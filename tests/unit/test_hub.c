/*
 * The hub data layer and the store lane over the real SQLite store: the
 * quota-extension policy (the 30/2/30 example, `max`, concurrent writers),
 * encryption at rest (no plaintext in the files, tampering detected, the
 * wrong master key refused), header decoding and dedup.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include <mailhub/plugin.h>
#include <mailhub/store.h>

#include "mock_host.h"
#include "mh_bus.h"
#include "mh_hub.h"
#include "mh_loop.h"
#include "mh_storeq.h"

extern const struct mh_plugin mh_plugin_descriptor; /* plugins/sqlite/sqlite.c */

#define MB (1024u * 1024u)

struct env {
    struct mock_host *mh;
    void *state;
    struct mh_loop *loop;
    struct mh_bus *bus;
    struct mh_bus_sub *sub;
    struct mh_storeq *q;
    unsigned char key[32];
    size_t n_extended, n_max;
    int64_t user_id, acct1, acct2;
};

static void on_quota(const struct mh_event *ev, void *arg)
{
    struct env *e = arg;
    if (strcmp(ev->type, "quota.extended") == 0)
        e->n_extended++;
    else if (strcmp(ev->type, "quota.max_reached") == 0)
        e->n_max++;
}

static int env_start(struct env *e, const struct mh_quota_policy *pol)
{
    const struct mh_plugin *d = &mh_plugin_descriptor;
    static const char *const kv[] = {"path", "hub.db", "synchronous", "normal", NULL};
    const struct mh_config *cfg = mock_host_config(e->mh, d->options, kv);
    if (cfg == NULL || d->init(mock_host_ctx(e->mh), cfg, &e->state) != MH_OK)
        return -1;
    e->loop = mh_loop_new();
    e->bus = mh_bus_new(e->loop);
    static const char *const pats[] = {"quota.*", NULL};
    e->sub = mh_bus_subscribe(e->bus, pats, on_quota, e);
    char *err = NULL;
    e->q = mh_storeq_new(e->loop, e->bus, d->ops, e->state, e->key, pol, &err);
    if (e->q == NULL) {
        fprintf(stderr, "storeq: %s\n", err);
        free(err);
        return -1;
    }
    return 0;
}

static void env_stop(struct env *e)
{
    mh_storeq_free(&e->q);
    mh_bus_unsubscribe(&e->sub);
    mh_bus_free(&e->bus);
    mh_loop_free(&e->loop);
    mh_plugin_descriptor.free(e->state);
    e->state = NULL;
}

static struct mh_quota_policy policy_30_2_30(void)
{
    return (struct mh_quota_policy){30 * MB, 2 * MB, 30 * MB, 0};
}

struct mk_user {
    const char *name;
    int64_t id, acct1, acct2;
    int rc;
};

static void mk_user_fn(struct mh_hub *hub, void *arg)
{
    struct mk_user *m = arg;
    m->rc = mh_hub_user_create(hub, m->name, NULL, 0, NULL, NULL, &m->id);
    if (m->rc != MH_OK)
        return;
    const struct mh_store_ops *ops = mh_hub_ops(hub);
    struct mh_account_rec a = {.struct_size = sizeof a, .user_id = m->id, .name = "work", .provider = "mbox",
                               .settings = "{}", .status = "ok", .origin = "api"};
    m->rc = ops->account_put(mh_hub_state(hub), &a);
    m->acct1 = a.id;
    struct mh_account_rec b = a;
    b.id = 0;
    b.name = "home";
    if (m->rc == MH_OK)
        m->rc = ops->account_put(mh_hub_state(hub), &b);
    m->acct2 = b.id;
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof *e);
    e->mh = mock_host_new("store", "sqlite");
    for (size_t i = 0; i < sizeof e->key; i++)
        e->key[i] = (unsigned char)(i * 7 + 1);
    struct mh_quota_policy pol = policy_30_2_30();
    if (env_start(e, &pol) != 0)
        return -1;
    struct mk_user mu = {.name = "alice"};
    mh_storeq_call_sync(e->q, mk_user_fn, &mu);
    if (mu.rc != MH_OK)
        return -1;
    e->user_id = mu.id;
    e->acct1 = mu.acct1;
    e->acct2 = mu.acct2;
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    struct env *e = *state;
    if (e->q)
        env_stop(e);
    mock_host_free(&e->mh);
    free(e);
    return 0;
}

/* A fresh user (with accounts "work" and "home") under the current policy; it becomes e's user. */
static void new_user(struct env *e, const char *name)
{
    struct mk_user mu = {.name = name};
    mh_storeq_call_sync(e->q, mk_user_fn, &mu);
    assert_int_equal(mu.rc, MH_OK);
    e->user_id = mu.id;
    e->acct1 = mu.acct1;
    e->acct2 = mu.acct2;
}

/* ------------------------------------------------------------ helpers */

struct put_res {
    int done, rc, duplicate;
    int64_t id;
};

static void put_cb(void *arg, int rc, const struct mh_message_ref *ref)
{
    struct put_res *r = arg;
    r->done = 1;
    r->rc = rc;
    r->duplicate = ref ? ref->duplicate : 0;
    r->id = ref ? ref->id : 0;
}

static char *make_msg(size_t size, unsigned n, const char *subject, const char *marker)
{
    char *m = malloc(size + 1);
    int h = snprintf(m, size + 1,
                     "From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: %s\r\n"
                     "Message-ID: <m%u@example.com>\r\nDate: Sat, 28 Nov 2026 10:00:00 +0800\r\n\r\n%s\r\n",
                     subject, n, marker ? marker : "");
    for (size_t i = (size_t)h; i < size; i++)
        m[i] = (i % 64 == 63) ? '\n' : (char)('a' + (i + n) % 26);
    m[size] = '\0';
    return m;
}

/* Put one message and wait for its completion. */
static struct put_res put_one(struct env *e, int64_t acct, const char *raw, size_t len, const char *source_id)
{
    struct mh_message m = {.struct_size = sizeof m, .folder = "INBOX", .source_id = source_id, .raw = raw,
                           .raw_len = len};
    struct put_res r = {0};
    int rc = mh_storeq_put(e->q, e, "mbox", e->user_id, acct, &m, put_cb, &r);
    assert_int_equal(rc, MH_PENDING);
    while (!r.done)
        mh_loop_run_once(e->loop, 1);
    mh_bus_flush(e->bus);
    return r;
}

struct quota_q {
    int64_t user_id;
    uint64_t alloc, usage, count;
    size_t n_hist, n_ext;
    int rc;
};

static int hist_cb(void *arg, uint64_t alloc, const char *reason, int64_t when)
{
    (void)alloc;
    (void)when;
    struct quota_q *q = arg;
    q->n_hist++;
    if (strcmp(reason, "extended") == 0)
        q->n_ext++;
    return 0;
}

static void quota_fn(struct mh_hub *hub, void *arg)
{
    struct quota_q *q = arg;
    q->rc = mh_hub_quota(hub, q->user_id, &q->alloc, &q->usage, &q->count);
    mh_hub_ops(hub)->quota_history(mh_hub_state(hub), q->user_id, hist_cb, q);
}

static struct quota_q quota_of(struct env *e)
{
    struct quota_q q = {.user_id = e->user_id};
    mh_storeq_call_sync(e->q, quota_fn, &q);
    assert_int_equal(q.rc, MH_OK);
    return q;
}

/* ------------------------------------------------------------- tests */

/* The example from the design: 30 MB, extended by 30 MB whenever under 2 MB is free. */
static void test_policy_30_2_30(void **state)
{
    struct env *e = *state;
    struct quota_q q = quota_of(e);
    assert_int_equal(q.alloc, 30 * MB);
    assert_int_equal(q.n_hist, 1); /* "initial" */

    /* 28 messages of 1 MB: 2 MB free, which is not "less than 2 MB": no extension */
    for (unsigned i = 0; i < 28; i++) {
        char *m = make_msg(MB, i, "one megabyte", NULL);
        char sid[32];
        snprintf(sid, sizeof sid, "t:%u", i);
        struct put_res r = put_one(e, e->acct1, m, MB, sid);
        free(m);
        assert_int_equal(r.rc, MH_OK);
    }
    q = quota_of(e);
    assert_int_equal(q.usage, 28 * MB);
    assert_int_equal(q.alloc, 30 * MB);
    assert_int_equal(e->n_extended, 0);

    /* the 29th leaves 1 MB free: extended once, to 60 MB */
    char *m = make_msg(MB, 28, "one megabyte", NULL);
    struct put_res r = put_one(e, e->acct1, m, MB, "t:28");
    free(m);
    assert_int_equal(r.rc, MH_OK);
    q = quota_of(e);
    assert_int_equal(q.alloc, 60 * MB);
    assert_int_equal(q.n_ext, 1);
    assert_int_equal(e->n_extended, 1);

    /* up to 100 MB in all: 30 + 30k >= 100 + 2 first holds at k = 3 */
    for (unsigned i = 29; i < 100; i++) {
        char *mm = make_msg(MB, i, "one megabyte", NULL);
        char sid[32];
        snprintf(sid, sizeof sid, "t:%u", i);
        struct put_res rr = put_one(e, e->acct1, mm, MB, sid);
        free(mm);
        assert_int_equal(rr.rc, MH_OK);
    }
    q = quota_of(e);
    assert_int_equal(q.usage, 100 * MB);
    assert_int_equal(q.count, 100);
    assert_int_equal(q.alloc, 120 * MB);
    assert_int_equal(q.n_ext, 3);
    assert_int_equal(e->n_extended, 3);
    assert_int_equal(e->n_max, 0);
}

struct acct_status {
    int64_t id;
    char status[64];
};

static int status_cb(void *arg, const struct mh_account_rec *a)
{
    struct acct_status *s = arg;
    snprintf(s->status, sizeof s->status, "%s", a->status ? a->status : "");
    return 1;
}

static void status_fn(struct mh_hub *hub, void *arg)
{
    struct acct_status *s = arg;
    mh_hub_ops(hub)->account_get(mh_hub_state(hub), 0, s->id, NULL, status_cb, s);
}

/* At `max`, new mail stays on the source, the account is marked, one event; nothing stored is lost. */
static void test_policy_max(void **state)
{
    struct env *e = *state;
    struct mh_quota_policy pol = {1 * MB, 256 * 1024, 1 * MB, 3 * MB};
    mh_storeq_set_policy(e->q, &pol);
    new_user(e, "carol");
    assert_int_equal(quota_of(e).alloc, 1 * MB);
    const size_t sz = 100 * 1024;
    unsigned stored = 0, refused = 0;
    for (unsigned i = 0; i < 40; i++) {
        char *m = make_msg(sz, i, "hundred k", NULL);
        char sid[32];
        snprintf(sid, sizeof sid, "max:%u", i);
        struct put_res r = put_one(e, e->acct2, m, sz, sid);
        free(m);
        if (r.rc == MH_OK)
            stored++;
        else {
            assert_int_equal(r.rc, MH_EQUOTA);
            refused++;
        }
    }
    /* 30 messages fit under 3 MB (30 * 100 KB = 3000 KB <= 3072 KB); the 31st would not */
    assert_int_equal(stored, 30);
    assert_int_equal(refused, 10);
    struct quota_q q = quota_of(e);
    assert_int_equal(q.alloc, 3 * MB);
    assert_int_equal(q.usage, 30 * sz);
    assert_int_equal(q.count, 30);
    assert_int_equal(e->n_max, 1); /* reported once, not once per refused message */
    struct acct_status st = {.id = e->acct2};
    mh_storeq_call_sync(e->q, status_fn, &st);
    assert_string_equal(st.status, "quota");

    /* the administrator lifts the maximum: the same mail is accepted and the mark goes */
    pol.max = 0;
    mh_storeq_set_policy(e->q, &pol);
    char *m = make_msg(sz, 30, "hundred k", NULL);
    struct put_res r = put_one(e, e->acct2, m, sz, "max:30");
    free(m);
    assert_int_equal(r.rc, MH_OK);
    mh_storeq_call_sync(e->q, status_fn, &st);
    assert_string_equal(st.status, "ok");
}

/* Four threads import into two accounts of one user at once: the accounting stays exact. */
struct writer {
    struct env *e;
    unsigned id;
    uint64_t bytes;
    unsigned n;
};

static unsigned g_done;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static void conc_cb(void *arg, int rc, const struct mh_message_ref *ref)
{
    (void)arg;
    (void)ref;
    assert_int_equal(rc, MH_OK);
    pthread_mutex_lock(&g_lock);
    g_done++;
    pthread_mutex_unlock(&g_lock);
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    unsigned seed = w->id * 7919u + 1;
    for (unsigned i = 0; i < w->n; i++) {
        size_t sz = 2000 + (size_t)(rand_r(&seed) % (200 * 1024));
        char *m = make_msg(sz, w->id * 100000 + i, "concurrent", NULL);
        char sid[48];
        snprintf(sid, sizeof sid, "w%u:%u", w->id, i);
        struct mh_message msg = {.struct_size = sizeof msg, .folder = w->id % 2 ? "Sent" : "INBOX",
                                 .source_id = sid, .raw = m, .raw_len = sz};
        int rc = mh_storeq_put(w->e->q, w->e, "mbox", w->e->user_id, w->id % 2 ? w->e->acct2 : w->e->acct1, &msg,
                               conc_cb, NULL);
        assert_int_equal(rc, MH_PENDING);
        w->bytes += sz;
        free(m);
    }
    return NULL;
}

static void test_concurrent_writers(void **state)
{
    struct env *e = *state;
    struct mh_quota_policy pol = {4 * MB, 1 * MB, 3 * MB, 0};
    mh_storeq_set_policy(e->q, &pol);
    new_user(e, "dave");
    enum { NW = 4, PER = 150 };
    struct writer w[NW];
    pthread_t t[NW];
    g_done = 0;
    for (unsigned i = 0; i < NW; i++) {
        w[i] = (struct writer){.e = e, .id = i, .n = PER};
        assert_int_equal(pthread_create(&t[i], NULL, writer_main, &w[i]), 0);
    }
    for (;;) {
        pthread_mutex_lock(&g_lock);
        unsigned d = g_done;
        pthread_mutex_unlock(&g_lock);
        if (d == NW * PER)
            break;
        mh_loop_run_once(e->loop, 0);
        usleep(1000);
    }
    for (unsigned i = 0; i < NW; i++)
        pthread_join(t[i], NULL);
    mh_bus_flush(e->bus);
    uint64_t total = 0;
    for (unsigned i = 0; i < NW; i++)
        total += w[i].bytes;
    struct quota_q q = quota_of(e);
    assert_int_equal(q.count, NW * PER);
    assert_int_equal(q.usage, total);
    /* extensions depend only on the total: the least k with initial + k*step >= total + threshold */
    uint64_t need = total + pol.extend_when_free_below;
    uint64_t k = need <= pol.initial ? 0 : (need - pol.initial + pol.extend_by - 1) / pol.extend_by;
    assert_int_equal(q.alloc, pol.initial + k * pol.extend_by);
    assert_int_equal(q.n_ext, k);
    assert_int_equal(e->n_extended, k);
}

/* ------------------------------------------------------- encryption */

struct read_ctx {
    int64_t user_id;
    int verify;
    size_t n, n_bad;
    char problem[64];
    char *raw;
    size_t raw_len;
    char subject[256];
    int rc;
};

static int read_cb(void *arg, const struct mh_msg_rec *m, const void *raw, size_t raw_len, const char *problem)
{
    struct read_ctx *c = arg;
    c->n++;
    if (problem) {
        c->n_bad++;
        snprintf(c->problem, sizeof c->problem, "%s", problem);
        return 0;
    }
    if (raw && c->raw == NULL) {
        c->raw = malloc(raw_len + 1);
        memcpy(c->raw, raw, raw_len);
        c->raw_len = raw_len;
        snprintf(c->subject, sizeof c->subject, "%s", m->subject ? m->subject : "");
    }
    return 0;
}

static void read_fn(struct mh_hub *hub, void *arg)
{
    struct read_ctx *c = arg;
    struct mh_msg_query q = {.struct_size = sizeof q, .user_id = c->user_id};
    c->rc = mh_hub_msg_each(hub, &q, 1, c->verify, read_cb, c);
}

static int file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return 0;
    size_t cap = 1 << 20, len = 0, nl = strlen(needle);
    char *buf = malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    fclose(f);
    int found = memmem(buf, len, needle, nl) != NULL;
    free(buf);
    return found;
}

static void test_encrypted_at_rest(void **state)
{
    struct env *e = *state;
    const char *marker = "PLAINTEXT-MARKER-7f3a9c-the-body-must-never-be-on-disk";
    /* Subject: =?GBK?B?...?= is "你好世界" in GBK */
    char *m = make_msg(4096, 1, "=?GBK?B?xOO6w8rAvec=?=", marker);
    struct put_res r = put_one(e, e->acct1, m, 4096, "enc:1");
    assert_int_equal(r.rc, MH_OK);
    r = put_one(e, e->acct1, m, 4096, "enc:1");
    assert_int_equal(r.rc, MH_OK);
    assert_int_equal(r.duplicate, 1);

    struct read_ctx c = {.user_id = e->user_id, .verify = 1};
    mh_storeq_call_sync(e->q, read_fn, &c);
    assert_int_equal(c.rc, MH_OK);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.n_bad, 0);
    assert_int_equal(c.raw_len, 4096);
    assert_memory_equal(c.raw, m, 4096);
    free(m);
    assert_string_equal(c.subject, "\xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c");
    free(c.raw);

    /* nothing of the body in the database, its WAL or anywhere in the data dir's files */
    env_stop(e);
    char path[4096];
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/hub.db%s", mock_host_data_dir(e->mh), suffixes[i]);
        assert_false(file_contains(path, marker));
    }

    /* tamper with the stored body: verify reports it, nothing crashes */
    snprintf(path, sizeof path, "%s/hub.db", mock_host_data_dir(e->mh));
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *err = NULL;
    int rc = sqlite3_exec(db,
                          "UPDATE messages SET blob = substr(blob, 1, 40) || x'00' || substr(blob, 42)", NULL, NULL,
                          &err);
    if (rc != SQLITE_OK)
        fprintf(stderr, "tamper: %s\n", err);
    assert_int_equal(rc, SQLITE_OK);
    sqlite3_close(db);

    struct mh_quota_policy pol = policy_30_2_30();
    assert_int_equal(env_start(e, &pol), 0);
    struct read_ctx t = {.user_id = e->user_id, .verify = 1};
    mh_storeq_call_sync(e->q, read_fn, &t);
    assert_int_equal(t.n, 1);
    assert_int_equal(t.n_bad, 1);
    assert_string_equal(t.problem, "cannot decrypt");
    free(t.raw);
}

struct mail_events {
    int n;
    char last[2048];
};

static void on_mail(const struct mh_event *ev, void *arg)
{
    struct mail_events *m = arg;
    if (strcmp(ev->type, "mail.received") == 0) {
        m->n++;
        snprintf(m->last, sizeof m->last, "%s", ev->json);
    }
}

static struct put_res put_msg(struct env *e, const struct mh_message *m)
{
    struct put_res r = {0};
    assert_int_equal(mh_storeq_put(e->q, e, "imap", e->user_id, e->acct1, m, put_cb, &r), MH_PENDING);
    while (!r.done)
        mh_loop_run_once(e->loop, 1);
    mh_bus_flush(e->bus);
    return r;
}

/* SDK 1.2: new mail flagged by the provider yields one mail.received with the decoded headers, never for a
 * duplicate; after the source renumbered a folder the same content is re-keyed, not stored twice. */
static void test_notify_and_rematch(void **state)
{
    struct env *e = *state;
    struct mail_events got = {0};
    static const char *const pats[] = {"mail.*", NULL};
    struct mh_bus_sub *sub = mh_bus_subscribe(e->bus, pats, on_mail, &got);
    /* Subject: "你好世界" in GBK */
    char *raw = make_msg(2048, 7, "=?GBK?B?xOO6w8rAvec=?=", "body");
    struct mh_message m = {.struct_size = sizeof m, .user = "alice", .account = "work", .folder = "Work/Q4",
                           .source_id = "f3/7/1", .raw = raw, .raw_len = 2048, .notify = 1};
    struct put_res r = put_msg(e, &m);
    assert_int_equal(r.rc, MH_OK);
    assert_int_equal(r.duplicate, 0);
    assert_int_equal(got.n, 1);
    assert_non_null(strstr(got.last, "\"folder\":\"Work/Q4\""));
    assert_non_null(strstr(got.last, "\"account\":\"work\""));
    assert_non_null(strstr(got.last, "\"user\":\"alice\""));
    assert_non_null(strstr(got.last, "Alice <alice@example.com>"));
    assert_non_null(strcasestr(got.last, "\\u4f60\\u597d\\u4e16\\u754c")); /* escaped 7-bit JSON */
    /* the same message again: a duplicate, no event */
    r = put_msg(e, &m);
    assert_int_equal(r.duplicate, 1);
    assert_int_equal(got.n, 1);
    /* new UIDVALIDITY 9: re-keyed by content */
    m.source_id = "f3/9/1";
    m.rematch_prefix = "f3/9/";
    r = put_msg(e, &m);
    assert_int_equal(r.rc, MH_OK);
    assert_int_equal(r.duplicate, 1);
    assert_int_equal(got.n, 1);
    struct quota_q q = quota_of(e);
    assert_int_equal(q.count, 1);
    assert_int_equal(q.usage, 2048);
    /* other content under the new number is stored */
    char *raw2 = make_msg(1024, 8, "other", "body2");
    m.source_id = "f3/9/2";
    m.raw = raw2;
    m.raw_len = 1024;
    m.notify = 0;
    r = put_msg(e, &m);
    assert_int_equal(r.duplicate, 0);
    assert_int_equal(got.n, 1); /* notify 0: the initial import is not news */
    q = quota_of(e);
    assert_int_equal(q.count, 2);
    free(raw);
    free(raw2);
    mh_bus_unsubscribe(&sub);
}

struct search_q {
    int64_t user_id;
    const char *query;
    int rc;
    size_t n;
    char terms[512];
};

static int count_cb(void *arg, const struct mh_msg_rec *m, const void *raw, size_t len, const char *problem)
{
    (void)m;
    (void)raw;
    (void)len;
    (void)problem;
    ((struct search_q *)arg)->n++;
    return 0;
}

static void search_fn(struct mh_hub *hub, void *arg)
{
    struct search_q *q = arg;
    char *terms = NULL;
    q->n = 0;
    q->rc = mh_hub_search_terms(hub, q->user_id, q->query, &terms);
    if (q->rc != MH_OK)
        return;
    snprintf(q->terms, sizeof q->terms, "%s", terms);
    struct mh_msg_query mq = {.struct_size = sizeof mq, .user_id = q->user_id, .search = terms, .descending = 1};
    q->rc = mh_hub_msg_each(hub, &mq, 0, 0, count_cb, q);
    free(terms);
}

static size_t search(struct env *e, int64_t user_id, const char *query, int *rc, char *terms, size_t terms_len)
{
    struct search_q q = {.user_id = user_id, .query = query};
    mh_storeq_call_sync(e->q, search_fn, &q);
    *rc = q.rc;
    if (terms)
        snprintf(terms, terms_len, "%s", q.terms);
    return q.n;
}

struct pending_q {
    int64_t user_id;
    uint64_t n;
    int rc;
};

static void pending_fn(struct mh_hub *hub, void *arg)
{
    struct pending_q *p = arg;
    p->rc = mh_hub_index_pending(hub, p->user_id, &p->n);
}

static uint64_t pending(struct env *e, int64_t user_id)
{
    struct pending_q p = {.user_id = user_id};
    mh_storeq_call_sync(e->q, pending_fn, &p);
    assert_int_equal(p.rc, MH_OK);
    return p.n;
}

/* The store lane analyses queued messages once it is idle: wait (at most 10 s) until none is left. */
static void wait_analysed(struct env *e)
{
    for (int i = 0; i < 1000 && pending(e, 0) > 0; i++)
        usleep(10000);
    assert_int_equal(pending(e, 0), 0);
}

struct att_q {
    int64_t user_id, id;
    char attachments[256];
    int n;
};

static int att_cb(void *arg, const struct mh_msg_rec *m, const void *raw, size_t len, const char *problem)
{
    (void)raw;
    (void)len;
    (void)problem;
    struct att_q *a = arg;
    snprintf(a->attachments, sizeof a->attachments, "%s", m->attachments ? m->attachments : "");
    a->n++;
    return 0;
}

static void att_fn(struct mh_hub *hub, void *arg)
{
    struct att_q *a = arg;
    struct mh_msg_query mq = {.struct_size = sizeof mq, .user_id = a->user_id, .id = a->id};
    mh_hub_msg_each(hub, &mq, 0, 0, att_cb, a);
}

/* Full-text search over the blind index: words of the subject, body and attachment names are found,
 * in any script; the index holds keyed hashes, different for each user, never the words.  The body is
 * analysed after the message is stored (SDK 1.3 stores queue it): searchable once the lane was idle. */
static void test_search(void **state)
{
    struct env *e = *state;
    const char *raw = "From: Alice Chen <alice@corp.example>\r\nTo: bob@example.com\r\n"
                      "Subject: =?UTF-8?B?5a2j5bqm5oql5ZGK?= Quarterly\r\nMessage-ID: <s1@corp.example>\r\n"
                      "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                      "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nRevenue grew in Shenzhen\r\n"
                      "--b\r\nContent-Type: application/pdf; name=budget-plan.pdf\r\n"
                      "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n";
    struct put_res r = put_one(e, e->acct1, raw, strlen(raw), "s:1");
    assert_int_equal(r.rc, MH_OK);
    int64_t alice = e->user_id;
    int rc;
    char t1[512], t2[512];
    /* stored and acknowledged before it was analysed */
    struct att_q att = {.user_id = alice, .id = r.id};
    mh_storeq_call_sync(e->q, att_fn, &att);
    assert_int_equal(att.n, 1);
    wait_analysed(e);
    assert_int_equal(pending(e, alice), 0);
    att.n = 0;
    mh_storeq_call_sync(e->q, att_fn, &att);
    assert_int_equal(att.n, 1);
    assert_non_null(strstr(att.attachments, "budget-plan.pdf"));
    assert_int_equal(search(e, alice, "revenue", &rc, t1, sizeof t1), 1);
    assert_int_equal(rc, MH_OK);
    assert_int_equal(search(e, alice, "季度", &rc, NULL, 0), 1);         /* from the encoded subject */
    assert_int_equal(search(e, alice, "shenzhen REVENUE", &rc, NULL, 0), 1);
    assert_int_equal(search(e, alice, "budget", &rc, NULL, 0), 1);       /* an attachment's name */
    assert_int_equal(search(e, alice, "alice@corp.example", &rc, NULL, 0), 1);
    assert_int_equal(search(e, alice, "revenue missing", &rc, NULL, 0), 0);
    search(e, alice, "  ,, ", &rc, NULL, 0);
    assert_int_equal(rc, MH_EINVAL);
    /* the terms are not the words */
    assert_null(strcasestr(t1, "revenue"));
    /* bob has the same message: his terms for the same word differ, and he finds only his own */
    new_user(e, "bob");
    r = put_one(e, e->acct1, raw, strlen(raw), "s:1");
    wait_analysed(e);
    assert_int_equal(search(e, e->user_id, "revenue", &rc, t2, sizeof t2), 1);
    assert_string_not_equal(t1, t2);
    assert_int_equal(search(e, alice, "revenue", &rc, NULL, 0), 1);
}

/* Another master key cannot open the user's data key: reads fail, nothing is returned. */
static void test_wrong_master_key(void **state)
{
    struct env *e = *state;
    char *m = make_msg(2048, 2, "secret", "another body");
    struct put_res r = put_one(e, e->acct1, m, 2048, "key:1");
    free(m);
    assert_int_equal(r.rc, MH_OK);
    env_stop(e);
    e->key[0] ^= 0x01;
    struct mh_quota_policy pol = policy_30_2_30();
    assert_int_equal(env_start(e, &pol), 0);
    struct read_ctx c = {.user_id = e->user_id};
    mh_storeq_call_sync(e->q, read_fn, &c);
    assert_int_equal(c.rc, MH_ERR);
    assert_null(c.raw);
    /* and no message is accepted for the user either */
    m = make_msg(2048, 3, "secret", "another body");
    r = put_one(e, e->acct1, m, 2048, "key:2");
    free(m);
    assert_int_not_equal(r.rc, MH_OK);
}

int main(void)
{
    setenv("MAILHUB_ARGON2", "t=1,m=1024,p=1", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_policy_30_2_30, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policy_max, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encrypted_at_rest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_master_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify_and_rematch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

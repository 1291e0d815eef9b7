/* The store contract suite: see store_contract.h. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store_contract.h"

struct sc {
    const struct store_contract *c;
    void *st;
};

static int sc_setup(void **state)
{
    const struct store_contract *c = *state;
    c->wipe(c->env);
    struct sc *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    f->c = c;
    f->st = c->open(c->env);
    if (f->st == NULL) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int sc_teardown(void **state)
{
    struct sc *f = *state;
    if (f->st != NULL)
        f->c->close(f->c->env, f->st);
    f->c->wipe(f->c->env);
    free(f);
    return 0;
}

static void sc_reopen(struct sc *f)
{
    f->c->close(f->c->env, f->st);
    f->st = f->c->open(f->c->env);
    assert_non_null(f->st);
}

static int sc_put_raw(struct sc *f, const char *user, const char *account, const char *source_id,
                      const void *raw, size_t len, struct mh_message_ref *ref)
{
    const struct mh_message m = {
        .struct_size = sizeof m,
        .user = user,
        .account = account,
        .folder = "INBOX",
        .source_id = source_id,
        .raw = raw,
        .raw_len = len,
        .flags = "\\Seen",
        .internal_date = 1700000000,
    };
    *ref = (struct mh_message_ref){.struct_size = sizeof *ref, .id = -1, .duplicate = -1};
    return f->c->ops->put_message(f->st, &m, ref);
}

static int sc_put(struct sc *f, const char *user, const char *account, const char *source_id, const char *raw,
                  struct mh_message_ref *ref)
{
    return sc_put_raw(f, user, account, source_id, raw, strlen(raw), ref);
}

static int sc_flush(struct sc *f)
{
    return f->c->ops->flush != NULL ? f->c->ops->flush(f->st) : MH_OK;
}

static void sc_usage(struct sc *f, const char *user, uint64_t bytes, uint64_t count)
{
    uint64_t b = 12345, n = 12345;
    assert_int_equal(f->c->ops->usage(f->st, user, &b, &n), MH_OK);
    assert_int_equal(b, bytes);
    assert_int_equal(n, count);
}

static void test_put(void **state)
{
    struct sc *f = *state;
    struct mh_message_ref a, b;
    assert_int_equal(sc_put(f, "alice", "work", "uv:1:1", "Subject: one\r\n\r\nbody\r\n", &a), MH_OK);
    assert_int_equal(a.duplicate, 0);
    assert_true(a.id > 0);
    assert_int_equal(sc_put(f, "alice", "work", "uv:1:2", "Subject: two\r\n\r\nbody\r\n", &b), MH_OK);
    assert_int_equal(b.duplicate, 0);
    assert_true(b.id > 0);
    assert_int_not_equal(a.id, b.id);
    assert_int_equal(sc_flush(f), MH_OK);
}

static void test_duplicate(void **state)
{
    struct sc *f = *state;
    struct mh_message_ref a, b, c, d;
    assert_int_equal(sc_put(f, "alice", "work", "mid:<x@y>:00", "first", &a), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    /* Same identity, different bytes: still the one stored message. */
    assert_int_equal(sc_put(f, "alice", "work", "mid:<x@y>:00", "second, longer", &b), MH_OK);
    assert_int_equal(b.duplicate, 1);
    assert_int_equal(b.id, a.id);
    /* Identity is per (user, account, source_id). */
    assert_int_equal(sc_put(f, "alice", "home", "mid:<x@y>:00", "first", &c), MH_OK);
    assert_int_equal(c.duplicate, 0);
    assert_int_not_equal(c.id, a.id);
    assert_int_equal(sc_put(f, "bob", "work", "mid:<x@y>:00", "first", &d), MH_OK);
    assert_int_equal(d.duplicate, 0);
    assert_int_equal(sc_flush(f), MH_OK);
    sc_usage(f, "alice", 10, 2);
    sc_usage(f, "bob", 5, 1);
}

static void test_duplicate_in_batch(void **state)
{
    struct sc *f = *state;
    struct mh_message_ref a, b;
    /* A duplicate of a message that is not flushed yet is still a duplicate. */
    assert_int_equal(sc_put(f, "alice", "work", "uidl:42", "abc", &a), MH_OK);
    assert_int_equal(sc_put(f, "alice", "work", "uidl:42", "abc", &b), MH_OK);
    assert_int_equal(b.duplicate, 1);
    assert_int_equal(b.id, a.id);
    assert_int_equal(sc_flush(f), MH_OK);
    sc_usage(f, "alice", 3, 1);
}

static void test_usage_exact(void **state)
{
    struct sc *f = *state;
    struct mh_message_ref r;
    sc_usage(f, "nobody", 0, 0);
    /* Binary content with NULs: the size is the byte count, not strlen. */
    static const char bin[] = {'a', 0, 'b', 0, 0, 'c', '\r', '\n'};
    uint64_t bytes = 0, count = 0;
    char sid[32], raw[600];
    for (int i = 0; i < 50; i++) {
        size_t len = (size_t)(i * 11 % 577);
        memset(raw, 'x', len);
        snprintf(sid, sizeof sid, "uv:7:%d", i);
        assert_int_equal(sc_put_raw(f, "alice", "work", sid, raw, len, &r), MH_OK);
        bytes += len;
        count++;
    }
    assert_int_equal(sc_put_raw(f, "alice", "work", "bin", bin, sizeof bin, &r), MH_OK);
    bytes += sizeof bin;
    count++;
    assert_int_equal(sc_put_raw(f, "alice", "work", "bin", bin, sizeof bin, &r), MH_OK); /* duplicate */
    assert_int_equal(sc_put(f, "bob", "work", "uv:7:1", "12345", &r), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    sc_usage(f, "alice", bytes, count);
    sc_usage(f, "bob", 5, 1);
    sc_usage(f, "carol", 0, 0);
}

static void test_quota(void **state)
{
    struct sc *f = *state;
    uint64_t alloc = 77;
    assert_int_equal(f->c->ops->quota_get(f->st, "alice", &alloc), 0);
    assert_int_equal(f->c->ops->quota_set(f->st, "alice", 30u << 20, "initial"), MH_OK);
    assert_int_equal(f->c->ops->quota_get(f->st, "alice", &alloc), 1);
    assert_int_equal(alloc, 30u << 20);
    assert_int_equal(f->c->ops->quota_set(f->st, "alice", 60u << 20, "extended"), MH_OK);
    assert_int_equal(f->c->ops->quota_get(f->st, "alice", &alloc), 1);
    assert_int_equal(alloc, 60u << 20);
    assert_int_equal(f->c->ops->quota_get(f->st, "bob", &alloc), 0);
    assert_int_equal(f->c->ops->quota_set(f->st, "bob", (uint64_t)1 << 40, "initial"), MH_OK);
    assert_int_equal(f->c->ops->quota_get(f->st, "bob", &alloc), 1);
    assert_int_equal(alloc, (uint64_t)1 << 40);
    assert_int_equal(f->c->ops->quota_get(f->st, "alice", &alloc), 1);
    assert_int_equal(alloc, 60u << 20);
}

static void test_quota_with_pending_puts(void **state)
{
    struct sc *f = *state;
    struct mh_message_ref r;
    uint64_t alloc = 0;
    /* quota_set in the middle of a batch must neither lose the batch nor the allocation. */
    assert_int_equal(sc_put(f, "alice", "work", "a", "aaaa", &r), MH_OK);
    assert_int_equal(f->c->ops->quota_set(f->st, "alice", 1000, "initial"), MH_OK);
    assert_int_equal(sc_put(f, "alice", "work", "b", "bb", &r), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    sc_usage(f, "alice", 6, 2);
    assert_int_equal(f->c->ops->quota_get(f->st, "alice", &alloc), 1);
    assert_int_equal(alloc, 1000);
}

static void test_has_source_id(void **state)
{
    struct sc *f = *state;
    if (f->c->ops->has_source_id == NULL)
        skip();
    struct mh_message_ref r;
    assert_int_equal(f->c->ops->has_source_id(f->st, "alice", "work", "uv:9:9"), 0);
    assert_int_equal(sc_put(f, "alice", "work", "uv:9:9", "x", &r), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    assert_int_equal(f->c->ops->has_source_id(f->st, "alice", "work", "uv:9:9"), 1);
    assert_int_equal(f->c->ops->has_source_id(f->st, "alice", "home", "uv:9:9"), 0);
    assert_int_equal(f->c->ops->has_source_id(f->st, "bob", "work", "uv:9:9"), 0);
    assert_int_equal(f->c->ops->has_source_id(f->st, "alice", "work", "uv:9:8"), 0);
}

static void test_flush(void **state)
{
    struct sc *f = *state;
    struct mh_message_ref r;
    char sid[32];
    assert_int_equal(sc_flush(f), MH_OK); /* nothing pending */
    /* More than any sensible default batch, so commits happen both ways. */
    for (int i = 0; i < 700; i++) {
        snprintf(sid, sizeof sid, "uv:1:%d", i);
        assert_int_equal(sc_put(f, "alice", "work", sid, "0123456789", &r), MH_OK);
        assert_int_equal(r.duplicate, 0);
    }
    assert_int_equal(sc_flush(f), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    sc_usage(f, "alice", 7000, 700);
}

static void test_reopen(void **state)
{
    struct sc *f = *state;
    if (!f->c->persistent)
        skip();
    struct mh_message_ref a, b;
    uint64_t alloc = 0;
    assert_int_equal(sc_put(f, "alice", "work", "uv:3:1", "hello", &a), MH_OK);
    assert_int_equal(sc_put(f, "alice", "work", "uv:3:2", "world!", &b), MH_OK);
    assert_int_equal(f->c->ops->quota_set(f->st, "alice", 4096, "initial"), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    sc_reopen(f);
    sc_usage(f, "alice", 11, 2);
    assert_int_equal(f->c->ops->quota_get(f->st, "alice", &alloc), 1);
    assert_int_equal(alloc, 4096);
    if (f->c->ops->has_source_id != NULL)
        assert_int_equal(f->c->ops->has_source_id(f->st, "alice", "work", "uv:3:2"), 1);
    struct mh_message_ref again;
    assert_int_equal(sc_put(f, "alice", "work", "uv:3:1", "hello", &again), MH_OK);
    assert_int_equal(again.duplicate, 1);
    assert_int_equal(again.id, a.id);
    /* A put that close() ends without an explicit flush is kept too. */
    assert_int_equal(sc_put(f, "alice", "work", "uv:3:3", "abc", &again), MH_OK);
    assert_int_equal(again.duplicate, 0);
    sc_reopen(f);
    sc_usage(f, "alice", 14, 3);
}

int store_contract_run(const struct store_contract *c)
{
    void *pre = (void *)c;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate_setup_teardown(test_put, sc_setup, sc_teardown, pre),
        cmocka_unit_test_prestate_setup_teardown(test_duplicate, sc_setup, sc_teardown, pre),
        cmocka_unit_test_prestate_setup_teardown(test_duplicate_in_batch, sc_setup, sc_teardown, pre),
        cmocka_unit_test_prestate_setup_teardown(test_usage_exact, sc_setup, sc_teardown, pre),
        cmocka_unit_test_prestate_setup_teardown(test_quota, sc_setup, sc_teardown, pre),
        cmocka_unit_test_prestate_setup_teardown(test_quota_with_pending_puts, sc_setup, sc_teardown, pre),
        cmocka_unit_test_prestate_setup_teardown(test_has_source_id, sc_setup, sc_teardown, pre),
        cmocka_unit_test_prestate_setup_teardown(test_flush, sc_setup, sc_teardown, pre),
        cmocka_unit_test_prestate_setup_teardown(test_reopen, sc_setup, sc_teardown, pre),
    };
    return _cmocka_run_group_tests(c->name, tests, sizeof tests / sizeof tests[0], NULL, NULL);
}

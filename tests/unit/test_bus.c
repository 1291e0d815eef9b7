/* The event bus: registry, validation, envelope, patterns, asynchronous ordered delivery. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "mh_bus.h"
#include "mh_log.h"
#include "mh_loop.h"

struct rec {
    int n;
    char types[16][32];
    char ids[16][64];
    char *last_json;
    struct mh_bus *bus;
    int emit_from_cb;
};

static void rec_cb(const struct mh_event *ev, void *arg)
{
    struct rec *r = arg;
    if (r->n < 16) {
        snprintf(r->types[r->n], sizeof r->types[0], "%s", ev->type);
        snprintf(r->ids[r->n], sizeof r->ids[0], "%s", ev->id);
    }
    r->n++;
    free(r->last_json);
    r->last_json = strdup(ev->json);
    assert_int_equal(strlen(ev->json), ev->json_len);
    if (r->emit_from_cb) {
        r->emit_from_cb = 0;
        assert_int_equal(mh_bus_emit(r->bus, "account.synced", "test", NULL, "{\"account\":\"x\"}", NULL), MH_OK);
    }
}

static void test_registry(void **s)
{
    (void)s;
    assert_non_null(mh_event_type_find("mail.received"));
    assert_non_null(mh_event_type_find("quota.extended"));
    assert_non_null(mh_event_type_find("account.error"));
    assert_non_null(mh_event_type_find("account.synced"));
    assert_null(mh_event_type_find("mail.recieved"));
    for (const struct mh_event_type *t = mh_event_types(); t->name; t++) {
        assert_true(t->version >= 1);
        assert_non_null(t->description);
    }
    assert_true(mh_event_pattern_match("*", "mail.received"));
    assert_true(mh_event_pattern_match("mail.*", "mail.received"));
    assert_false(mh_event_pattern_match("mail.*", "mailx.received"));
    assert_false(mh_event_pattern_match("quota.*", "mail.received"));
    assert_true(mh_event_pattern_match("mail.received", "mail.received"));
    assert_false(mh_event_pattern_match("mail.receive", "mail.received"));
}

static void test_validation(void **s)
{
    (void)s;
    mh_log_set_level(MH_LOG_ERROR); /* the refusals below log warnings */
    struct mh_bus *bus = mh_bus_new(NULL);
    assert_int_equal(mh_bus_emit(bus, "no.such", "t", NULL, "{}", NULL), MH_EINVAL);
    assert_int_equal(mh_bus_emit(bus, "account.synced", "t", NULL, "[1]", NULL), MH_EINVAL);
    assert_int_equal(mh_bus_emit(bus, "account.synced", "t", NULL, "{bad json", NULL), MH_EINVAL);
    /* required field missing */
    assert_int_equal(mh_bus_emit(bus, "mail.received", "t", NULL, "{\"account\":\"a\"}", NULL), MH_EINVAL);
    assert_int_equal(mh_bus_queued(bus), 0);
    mh_bus_free(&bus);
    mh_log_set_level(MH_LOG_INFO);
}

static void test_envelope_and_filters(void **s)
{
    (void)s;
    struct mh_bus *bus = mh_bus_new(NULL);
    struct rec all = {0}, mail = {0};
    const char *pats[] = {"mail.*", NULL};
    struct mh_bus_sub *sa = mh_bus_subscribe(bus, NULL, rec_cb, &all);
    struct mh_bus_sub *sm = mh_bus_subscribe(bus, pats, rec_cb, &mail);
    char *id = NULL;
    assert_int_equal(mh_bus_emit(bus, "mail.received", "provider/work", "alice",
                                 "{\"account\":\"work\",\"folder\":\"INBOX\",\"from\":\"Alice <a@x>\","
                                 "\"subject\":\"\\u5468\\u672b\"}",
                                 &id),
                     MH_OK);
    assert_int_equal(mh_bus_emit(bus, "quota.extended", "core", "alice",
                                 "{\"previous\":1,\"allocation\":2,\"usage\":1}", NULL),
                     MH_OK);
    /* nothing is delivered from inside emit */
    assert_int_equal(all.n, 0);
    assert_int_equal(mh_bus_flush(bus), 2);
    assert_int_equal(all.n, 2);
    assert_int_equal(mail.n, 1);
    assert_string_equal(all.types[0], "mail.received");
    assert_string_equal(all.types[1], "quota.extended");
    assert_string_equal(all.ids[0], id);
    assert_string_not_equal(all.ids[0], all.ids[1]);

    json_error_t e;
    json_t *env = json_loads(mail.last_json, 0, &e);
    assert_non_null(env);
    assert_string_equal(json_string_value(json_object_get(env, "type")), "mail.received");
    assert_int_equal(json_integer_value(json_object_get(env, "version")), 1);
    assert_string_equal(json_string_value(json_object_get(env, "source")), "provider/work");
    assert_string_equal(json_string_value(json_object_get(env, "user")), "alice");
    assert_string_equal(json_string_value(json_object_get(env, "id")), id);
    assert_non_null(json_string_value(json_object_get(env, "time")));
    json_t *data = json_object_get(env, "data");
    assert_string_equal(json_string_value(json_object_get(data, "account")), "work");
    assert_string_equal(json_string_value(json_object_get(data, "subject")), "\xe5\x91\xa8\xe6\x9c\xab");
    json_decref(env);

    mh_bus_unsubscribe(&sm);
    assert_null(sm);
    mh_bus_emit(bus, "mail.received", "p", NULL, "{\"account\":\"a\",\"folder\":\"f\",\"from\":\"x\",\"subject\":\"s\"}",
                NULL);
    mh_bus_flush(bus);
    assert_int_equal(mail.n, 1);
    assert_int_equal(all.n, 3);

    /* a subscriber that emits gets its event delivered in the same flush, after the current one */
    all.bus = bus;
    all.emit_from_cb = 1;
    mh_bus_emit(bus, "daemon.stopping", "core", NULL, "{}", NULL);
    assert_int_equal(mh_bus_flush(bus), 2);
    assert_string_equal(all.types[3], "daemon.stopping");
    assert_string_equal(all.types[4], "account.synced");

    free(id);
    free(all.last_json);
    free(mail.last_json);
    mh_bus_unsubscribe(&sa);
    mh_bus_free(&bus);
}

static void stop_loop(struct mh_timer *t, void *arg)
{
    (void)t;
    mh_loop_break(arg);
}

static void test_loop_dispatch(void **s)
{
    (void)s;
    struct mh_loop *loop = mh_loop_new();
    struct mh_bus *bus = mh_bus_new(loop);
    struct rec r = {0};
    struct mh_bus_sub *sub = mh_bus_subscribe(bus, NULL, rec_cb, &r);
    for (int i = 0; i < 10; i++)
        mh_bus_emit(bus, "account.synced", "t", NULL, "{\"account\":\"a\"}", NULL);
    struct mh_timer *t = mh_timer_new(loop, NULL, 0.2, 0, stop_loop, loop);
    mh_loop_run(loop);
    assert_int_equal(r.n, 10);
    assert_int_equal(mh_bus_queued(bus), 0);
    mh_timer_free(&t);
    mh_bus_unsubscribe(&sub);
    mh_bus_free(&bus);
    free(r.last_json);
    mh_loop_free(&loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_envelope_and_filters),
        cmocka_unit_test(test_loop_dispatch),
    };
    return cmocka_run_group_tests_name("bus", tests, NULL, NULL);
}

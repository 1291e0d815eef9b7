/*
 * Per-user notification rules: validation names the key; mute, channel
 * filters, VIP, quiet hours in the user's time zone (across midnight, with a
 * zone offset), and rate limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mh_rules.h"

/* 2026-11-28 14:00:00 UTC = 22:00 in Shanghai (UTC+8) */
#define T_1400Z 1795874400000LL

static struct mh_rules *ok(const char *json)
{
    char *err = NULL;
    struct mh_rules *r = mh_rules_parse(json, &err);
    if (r == NULL)
        fail_msg("rules refused: %s", err);
    return r;
}

static void bad(const char *json, const char *want)
{
    char *err = NULL;
    struct mh_rules *r = mh_rules_parse(json, &err);
    assert_null(r);
    assert_non_null(err);
    if (strstr(err, want) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", err, want);
    free(err);
}

static uint64_t counter(void *arg, int64_t since)
{
    (void)since;
    return *(uint64_t *)arg;
}

static enum mh_rules_verdict dec(const struct mh_rules *r, const char *ch, const char *account, const char *from,
                                 int64_t now, uint64_t sent, int64_t *until)
{
    struct mh_rules_event ev = {.type = "mail.received", .account = account, .folder = "INBOX", .from = from};
    const char *why;
    int64_t u = 0;
    enum mh_rules_verdict v = mh_rules_decide(r, ch, &ev, now, counter, &sent, &u, &why);
    if (until)
        *until = u;
    return v;
}

static void test_validation(void **state)
{
    (void)state;
    bad("[1]", "a JSON object");
    bad("{\"mute\": \"x\"}", "mute: expected a list");
    bad("{\"colour\": 1}", "colour: unknown key");
    bad("{\"timezone\": \"Mars/Olympus\"}", "timezone: unknown time zone \"Mars/Olympus\"");
    bad("{\"quiet_hours\": {\"start\": \"25:00\", \"end\": \"07:00\"}}", "quiet_hours.start: expected HH:MM");
    bad("{\"quiet_hours\": {\"start\": \"07:00\", \"end\": \"07:00\"}}", "the same time");
    bad("{\"channels\": {\"sms\": {\"rate\": {\"max\": 0}}}}", "channels.sms.rate.max");
    bad("{\"channels\": {\"sms\": {\"rate\": {\"max\": 3, \"per\": \"1 week\"}}}}", "channels.sms.rate.per");
    bad("{\"channels\": {\"sms\": {\"loud\": true}}}", "channels.sms.loud: unknown key");
    bad("{\"mute\": [\"a\",", "line 1");
    struct mh_rules *r = ok(NULL);
    assert_string_equal(mh_rules_timezone(r), "UTC");
    mh_rules_free(&r);
    r = ok("{\"timezone\": \"Asia/Shanghai\"}");
    assert_string_equal(mh_rules_timezone(r), "Asia/Shanghai");
    mh_rules_free(&r);
}

static void test_filters_and_vip(void **state)
{
    (void)state;
    struct mh_rules *r = ok("{\"mute\": [\"news@list.example\"], \"vip\": [\"boss@corp.example\", \"@family.example\"],"
                            " \"channels\": {\"sms\": {\"accounts\": [\"work@corp.example\"], \"rate\": {\"max\": 2,"
                            " \"per\": \"1h\"}}, \"email\": {\"enabled\": false}}}");
    assert_int_equal(dec(r, "sms", "work@corp.example", "x@y", T_1400Z, 0, NULL), MH_RULES_SEND);
    assert_int_equal(dec(r, "sms", "home@qq.example", "x@y", T_1400Z, 0, NULL), MH_RULES_DROP);
    assert_int_equal(dec(r, "webhook", "home@qq.example", "x@y", T_1400Z, 0, NULL), MH_RULES_SEND);
    assert_int_equal(dec(r, "email", "work@corp.example", "x@y", T_1400Z, 0, NULL), MH_RULES_DROP);
    assert_int_equal(dec(r, "webhook", "NEWS@list.example", "x@y", T_1400Z, 0, NULL), MH_RULES_DROP);
    /* rate: the third in the hour is held for the window, then folded */
    int64_t until = 0;
    assert_int_equal(dec(r, "sms", "work@corp.example", "x@y", T_1400Z, 1, NULL), MH_RULES_SEND);
    assert_int_equal(dec(r, "sms", "work@corp.example", "x@y", T_1400Z, 2, &until), MH_RULES_HOLD);
    assert_int_equal(until, T_1400Z + 3600000);
    /* ... unless it is from a VIP, by address or by domain */
    assert_int_equal(dec(r, "sms", "work@corp.example", "The Boss <Boss@Corp.Example>", T_1400Z, 9, NULL),
                     MH_RULES_SEND);
    assert_int_equal(dec(r, "sms", "work@corp.example", "Mum <mum@family.example>", T_1400Z, 9, NULL), MH_RULES_SEND);
    assert_int_equal(dec(r, "sms", "work@corp.example", "x@notfamily.example", T_1400Z, 9, NULL), MH_RULES_HOLD);
    mh_rules_free(&r);
}

static void test_quiet_hours(void **state)
{
    (void)state;
    /* 22:00-07:30 in Shanghai, SMS only: 14:00Z is 22:00 there */
    struct mh_rules *r =
        ok("{\"timezone\": \"Asia/Shanghai\", \"quiet_hours\": {\"start\": \"22:00\", \"end\": \"07:30\","
           " \"channels\": [\"sms\"]}}");
    int64_t until = 0;
    assert_int_equal(dec(r, "sms", "a", "x@y", T_1400Z, 0, &until), MH_RULES_HOLD);
    assert_int_equal(until, T_1400Z + (9 * 3600 + 1800) * 1000LL); /* 07:30 next morning */
    assert_int_equal(dec(r, "webhook", "a", "x@y", T_1400Z, 0, NULL), MH_RULES_SEND);
    assert_int_equal(dec(r, "sms", "a", "x@y", T_1400Z - 1000, 0, NULL), MH_RULES_SEND); /* 21:59:59 */
    /* 07:29:59 held, 07:30 free */
    int64_t morning = T_1400Z + (9 * 3600 + 1800) * 1000LL;
    assert_int_equal(dec(r, "sms", "a", "x@y", morning - 1000, 0, &until), MH_RULES_HOLD);
    assert_int_equal(until, morning);
    assert_int_equal(dec(r, "sms", "a", "x@y", morning, 0, NULL), MH_RULES_SEND);
    mh_rules_free(&r);
    /* the same clock times in UTC: 14:00Z is not quiet */
    r = ok("{\"quiet_hours\": {\"start\": \"22:00\", \"end\": \"07:30\"}}");
    assert_int_equal(dec(r, "sms", "a", "x@y", T_1400Z, 0, NULL), MH_RULES_SEND);
    /* a window within one day: 13:00-15:00 UTC */
    mh_rules_free(&r);
    r = ok("{\"quiet_hours\": {\"start\": \"13:00\", \"end\": \"15:00:30\"}}");
    assert_int_equal(dec(r, "email", "a", "x@y", T_1400Z, 0, &until), MH_RULES_HOLD);
    assert_int_equal(until, T_1400Z + 3630 * 1000LL);
    /* system events are held by quiet hours too, never dropped by mail filters */
    struct mh_rules_event ev = {.type = "quota.extended"};
    const char *why;
    assert_int_equal(mh_rules_decide(r, "email", &ev, T_1400Z, NULL, NULL, &until, &why), MH_RULES_HOLD);
    assert_string_equal(why, "quiet hours");
    mh_rules_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_filters_and_vip),
        cmocka_unit_test(test_quiet_hours),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

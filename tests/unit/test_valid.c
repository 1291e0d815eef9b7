/*
 * Validation of what users type: user/account names, E.164 phone numbers
 * (and the normalisation of how people write them), e-mail addresses.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mh_valid.h"

static void test_names(void **state)
{
    (void)state;
    assert_int_equal(mh_valid_name("alice"), 1);
    assert_int_equal(mh_valid_name("a"), 1);
    assert_int_equal(mh_valid_name("Alice.Chen_2+work@home-1"), 1);
    assert_int_equal(mh_valid_name("0day"), 1);
    assert_int_equal(mh_valid_name("_x"), 1);

    assert_int_equal(mh_valid_name(NULL), 0);
    assert_int_equal(mh_valid_name(""), 0);
    assert_int_equal(mh_valid_name(".hidden"), 0);
    assert_int_equal(mh_valid_name("-opt"), 0);
    assert_int_equal(mh_valid_name("a b"), 0);
    assert_int_equal(mh_valid_name("a/b"), 0);
    assert_int_equal(mh_valid_name("a:b"), 0);
    assert_int_equal(mh_valid_name("a\nb"), 0);
    assert_int_equal(mh_valid_name("\xe5\xbc\xa0\xe4\xbc\x9f"), 0); /* UTF-8 张伟 */

    char name[80];
    memset(name, 'a', sizeof name);
    name[64] = '\0';
    assert_int_equal(mh_valid_name(name), 1); /* 64 bytes */
    name[64] = 'a';
    name[65] = '\0';
    assert_int_equal(mh_valid_name(name), 0); /* 65 bytes */
}

static void test_e164(void **state)
{
    (void)state;
    assert_int_equal(mh_valid_e164("+8613800138000"), 1);
    assert_int_equal(mh_valid_e164("+14155550100"), 1);
    assert_int_equal(mh_valid_e164("+1234567"), 1);         /* 7 digits */
    assert_int_equal(mh_valid_e164("+123456789012345"), 1); /* 15 digits */

    assert_int_equal(mh_valid_e164(NULL), 0);
    assert_int_equal(mh_valid_e164(""), 0);
    assert_int_equal(mh_valid_e164("+"), 0);
    assert_int_equal(mh_valid_e164("8613800138000"), 0);     /* no + */
    assert_int_equal(mh_valid_e164("+0613800138000"), 0);    /* leading zero */
    assert_int_equal(mh_valid_e164("+123456"), 0);           /* 6 digits */
    assert_int_equal(mh_valid_e164("+1234567890123456"), 0); /* 16 digits */
    assert_int_equal(mh_valid_e164("+86 13800138000"), 0);   /* not normalised */
    assert_int_equal(mh_valid_e164("+86138001380OO"), 0);
    assert_int_equal(mh_valid_e164("++8613800138000"), 0);
    assert_int_equal(mh_valid_e164("+8613800138000\n"), 0);
}

static void expect_norm(const char *in, const char *want)
{
    char out[17];
    memset(out, 'x', sizeof out);
    int rc = mh_normalize_e164(in, out);
    if (want == NULL) {
        assert_int_equal(rc, -1);
    } else {
        assert_int_equal(rc, 0);
        assert_string_equal(out, want);
        assert_int_equal(mh_valid_e164(out), 1);
    }
}

static void test_normalize(void **state)
{
    (void)state;
    expect_norm("+86 138-0013-8000", "+8613800138000");
    expect_norm("+1 (415) 555 0100", "+14155550100");
    expect_norm("+44.20.7946.0958", "+442079460958");
    expect_norm("  +8613800138000  ", "+8613800138000");
    expect_norm("+8613800138000", "+8613800138000");
    expect_norm("+123 456 789 012 345", "+123456789012345"); /* exactly 15 digits */

    expect_norm("", NULL);
    expect_norm("(", NULL);
    expect_norm("+", NULL);
    expect_norm("+()", NULL);
    expect_norm("+1 (415 555 0100", NULL);    /* unbalanced */
    expect_norm("+1 415) 555 0100", NULL);    /* unbalanced */
    expect_norm("+1 ((415)) 555 0100", NULL); /* nested */
    expect_norm("(+1) 415 555 0100", NULL);   /* the + comes first */
    expect_norm("+0 86 138 0013 8000", NULL);
    expect_norm("+086 138 0013 8000", NULL);
    expect_norm("138 0013 8000", NULL);          /* national format: no country code */
    expect_norm("0086 13800138000", NULL);       /* international prefix instead of + */
    expect_norm("+86 138 0013 8000 1234", NULL); /* 17 digits */
    expect_norm("+1234 5678 9012 3456", NULL);   /* 16 digits */
    expect_norm("+12 345", NULL);                /* 5 digits */
    expect_norm("+86 138/0013/8000", NULL);
    expect_norm("+86 138-0013-8000 ext 5", NULL);
    expect_norm("+86+13800138000", NULL);
    expect_norm("+8613800138000\xef\xbc\x90", NULL); /* fullwidth digit */

    /* a very long input neither overflows out nor passes */
    char longin[4096];
    memset(longin, '1', sizeof longin);
    longin[0] = '+';
    longin[sizeof longin - 1] = '\0';
    expect_norm(longin, NULL);
    memset(longin, ' ', sizeof longin - 1);
    memcpy(longin + 4000, "+8613800138000", 14);
    expect_norm(longin, "+8613800138000"); /* many spaces around are fine */

    char out[17] = "junk";
    assert_int_equal(mh_normalize_e164(NULL, out), -1);
}

/* Copies s with its NUL to dst. */
static void put(char *dst, const char *s)
{
    memcpy(dst, s, strlen(s) + 1);
}

static void test_email(void **state)
{
    (void)state;
    assert_int_equal(mh_valid_email("alice@example.com"), 1);
    assert_int_equal(mh_valid_email("a.b+tag@mail.example.co.uk"), 1);
    assert_int_equal(mh_valid_email("x_y-z!#$%&'*/=?^`{|}~@a-b.cn"), 1);
    assert_int_equal(
        mh_valid_email("\xe5\xbc\xa0\xe4\xbc\x9f@\xe4\xbe\x8b\xe5\xad\x90.\xe4\xb8\xad\xe5\x9b\xbd"),
        1); /* 张伟@例子.中国 (RFC 6531) */
    assert_int_equal(mh_valid_email("1@2.3"), 1);

    assert_int_equal(mh_valid_email(NULL), 0);
    assert_int_equal(mh_valid_email(""), 0);
    assert_int_equal(mh_valid_email("alice"), 0);
    assert_int_equal(mh_valid_email("@example.com"), 0);
    assert_int_equal(mh_valid_email("alice@"), 0);
    assert_int_equal(mh_valid_email("alice@localhost"), 0); /* no dot in the domain */
    assert_int_equal(mh_valid_email("alice@@example.com"), 0);
    assert_int_equal(mh_valid_email("a@b@example.com"), 0);
    assert_int_equal(mh_valid_email(".alice@example.com"), 0);
    assert_int_equal(mh_valid_email("alice.@example.com"), 0);
    assert_int_equal(mh_valid_email("al..ice@example.com"), 0);
    assert_int_equal(mh_valid_email("al ice@example.com"), 0);
    assert_int_equal(mh_valid_email("\"al ice\"@example.com"), 0); /* quoted local parts are not accepted */
    assert_int_equal(mh_valid_email("alice@example..com"), 0);
    assert_int_equal(mh_valid_email("alice@.example.com"), 0);
    assert_int_equal(mh_valid_email("alice@example.com."), 0);
    assert_int_equal(mh_valid_email("alice@-example.com"), 0);
    assert_int_equal(mh_valid_email("alice@example-.com"), 0);
    assert_int_equal(mh_valid_email("alice@exa_mple.com"), 0);
    assert_int_equal(mh_valid_email("alice@[192.0.2.1]"), 0);
    assert_int_equal(mh_valid_email("alice@example.com\n"), 0);
    assert_int_equal(mh_valid_email("<alice@example.com>"), 0);
    assert_int_equal(mh_valid_email("al\xffice@example.com"), 0);   /* not UTF-8 */
    assert_int_equal(mh_valid_email("alice@ex\xc3\x28.com"), 0);    /* broken UTF-8 */
    assert_int_equal(mh_valid_email("alice@example.c\xe4\xb8"), 0); /* truncated UTF-8 at the end */

    /* limits: local part 64, a label 63, the domain 255, the whole 254 */
    char buf[400];
    memset(buf, 'a', 64);
    put(buf + 64, "@example.com");
    assert_int_equal(mh_valid_email(buf), 1);
    memset(buf, 'a', 65);
    put(buf + 65, "@example.com");
    assert_int_equal(mh_valid_email(buf), 0);

    memcpy(buf, "a@", 2);
    memset(buf + 2, 'b', 63);
    put(buf + 65, ".com");
    assert_int_equal(mh_valid_email(buf), 1);
    memset(buf + 2, 'b', 64);
    put(buf + 66, ".com");
    assert_int_equal(mh_valid_email(buf), 0);

    /* 250 = "a@" + 4 labels of 61 + 4 dots... built as a@(x{61}.){3}x{61}.cn */
    size_t o = 0;
    buf[o++] = 'a';
    buf[o++] = '@';
    for (int i = 0; i < 4; i++) {
        memset(buf + o, 'x', 60);
        o += 60;
        buf[o++] = '.';
    }
    put(buf + o, "cn");
    o += 2;
    assert_int_equal(o, 248);
    assert_int_equal(mh_valid_email(buf), 1);
    memmove(buf + 7, buf, o + 1);
    memcpy(buf, "abcdefg", 7); /* local part 8 bytes: 255 in all */
    assert_int_equal(strlen(buf), 255);
    assert_int_equal(mh_valid_email(buf), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_e164),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_email),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

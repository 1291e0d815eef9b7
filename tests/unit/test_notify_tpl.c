/*
 * plugins/common/notify_tpl: templates, GSM-7 detection, SMS segmentation,
 * mail encodings and Standard Webhooks signatures.  Signatures are compared
 * with tests/tools/webhook_vector.py, which computes them with Python's hmac
 * module (and checks the specification's published example itself).
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
#include <openssl/evp.h>

#include "notify_tpl.h"

static const char ENVELOPE[] =
    "{\"id\":\"evt_0193a1f2c4e00000a1b2c3d4e5f60718\",\"type\":\"mail.received\",\"version\":1,"
    "\"time\":\"2026-11-28T20:41:00.123Z\",\"source\":\"provider/work\",\"user\":\"alice\","
    "\"data\":{\"account\":\"work@corp.com\",\"folder\":\"INBOX\",\"from\":\"Alice Chen "
    "<alice@corp.example>\","
    "\"subject\":\"Quarterly report\",\"store_id\":42,\"phone\":\"+86 138 0013 8000\"}}";

/* 1 if s[0..n) is valid UTF-8 (no truncated sequence, no surrogates). */
static int valid_utf8(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        size_t need;
        if (c < 0x80)
            need = 0;
        else if ((c & 0xe0) == 0xc0)
            need = 1;
        else if ((c & 0xf0) == 0xe0)
            need = 2;
        else if ((c & 0xf8) == 0xf0)
            need = 3;
        else
            return 0;
        if (i + need >= n && need > 0)
            return 0;
        for (size_t k = 1; k <= need; k++)
            if ((u[i + k] & 0xc0) != 0x80)
                return 0;
        if (need == 2 && c == 0xed && u[i + 1] >= 0xa0)
            return 0;
        i += need + 1;
    }
    return 1;
}

static char *repeat(const char *unit, size_t times)
{
    size_t ul = strlen(unit);
    char *s = malloc(ul * times + 1);
    assert_non_null(s);
    for (size_t i = 0; i < times; i++)
        memcpy(s + i * ul, unit, ul);
    s[ul * times] = '\0';
    return s;
}

/* ------------------------------------------------------------ events */

static void test_event_parse(void **st)
{
    (void)st;
    struct ntpl_event e;
    char err[128];
    assert_int_equal(ntpl_event_parse(ENVELOPE, strlen(ENVELOPE), &e, err, sizeof err), 0);
    assert_string_equal(e.type, "mail.received");
    assert_string_equal(e.user, "alice");
    assert_string_equal(e.account, "work@corp.com");
    assert_string_equal(e.from_name, "Alice Chen");
    assert_string_equal(e.from_addr, "alice@corp.example");
    assert_string_equal(e.phone, "+86 138 0013 8000");
    assert_int_equal(e.store_id, 42);
    ntpl_event_clear(&e);
    assert_int_equal(ntpl_event_parse("[1]", 3, &e, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a JSON object"));
    /* missing data fields read as "" */
    const char *bare =
        "{\"id\":\"e1\",\"type\":\"daemon.started\",\"user\":null,\"data\":{\"version\":\"1\"}}";
    assert_int_equal(ntpl_event_parse(bare, strlen(bare), &e, err, sizeof err), 0);
    assert_string_equal(e.user, "");
    assert_string_equal(e.subject, "");
    assert_int_equal(e.store_id, -1);
    ntpl_event_clear(&e);
}

static void test_split_address(void **st)
{
    (void)st;
    static const struct {
        const char *in, *name, *addr;
    } cases[] = {
        {"Alice Chen <alice@corp.example>", "Alice Chen", "alice@corp.example"},
        {"\"Chen, Alice\" <alice@corp.example>", "Chen, Alice", "alice@corp.example"},
        {"\"say \\\"hi\\\"\" <x@y.z>", "say \"hi\"", "x@y.z"},
        {"<bob@example.org>", "", "bob@example.org"},
        {"bob@example.org", "", "bob@example.org"},
        {"陈小明 <chen@example.cn>", "陈小明", "chen@example.cn"},
        {"Just A Name", "Just A Name", ""},
        {"", "", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *name, *addr;
        ntpl_split_address(cases[i].in, &name, &addr);
        assert_string_equal(name, cases[i].name);
        assert_string_equal(addr, cases[i].addr);
        free(name);
        free(addr);
    }
}

/* --------------------------------------------------------- templates */

static void test_render(void **st)
{
    (void)st;
    struct ntpl_event e;
    assert_int_equal(ntpl_event_parse(ENVELOPE, strlen(ENVELOPE), &e, NULL, 0), 0);
    char *s = ntpl_render("[{account}] {from}: {subject}", &e, NULL, 0, NTPL_RAW);
    assert_string_equal(s, "[work@corp.com] Alice Chen: Quarterly report");
    free(s);
    s = ntpl_render("{user}/{type}/{folder}/{from_addr}/{store_id} {{x}} {nope} {\"a\":{}} {", &e, NULL, 0,
                    NTPL_RAW);
    assert_string_equal(s, "alice/mail.received/INBOX/alice@corp.example/42 {{x}} {nope} {\"a\":{}} {");
    free(s);
    struct ntpl_var vars[] = {{"text", "a&b c\"d\n"}, {"to", "+8613800138000"}};
    s = ntpl_render("To={to}&Body={text}", &e, vars, 2, NTPL_FORM);
    assert_string_equal(s, "To=%2B8613800138000&Body=a%26b%20c%22d%0A");
    free(s);
    s = ntpl_render("{\"to\":\"{to}\",\"text\":\"{text}\"}", &e, vars, 2, NTPL_JSON);
    assert_string_equal(s, "{\"to\":\"+8613800138000\",\"text\":\"a&b c\\\"d\\n\"}");
    free(s);
    /* UTF-8 survives JSON escaping and is percent-encoded bytewise in forms */
    struct ntpl_var zh[] = {{"text", "季度报告"}};
    s = ntpl_render("{text}", NULL, zh, 1, NTPL_JSON);
    assert_string_equal(s, "季度报告");
    free(s);
    s = ntpl_render("{text}", NULL, zh, 1, NTPL_FORM);
    assert_string_equal(s, "%E5%AD%A3%E5%BA%A6%E6%8A%A5%E5%91%8A");
    free(s);
    /* without a display name, {from} is the address */
    free(e.from_name);
    e.from_name = calloc(1, 1);
    s = ntpl_render("{from}", &e, NULL, 0, NTPL_RAW);
    assert_string_equal(s, "alice@corp.example");
    free(s);
    ntpl_event_clear(&e);
}

static void test_check(void **st)
{
    (void)st;
    char bad[96];
    assert_int_equal(
        ntpl_check("[{account}] {from}: {subject} {\"json\":{\"x\":1}} { }", NULL, bad, sizeof bad), 0);
    assert_int_equal(ntpl_check("{acount}", NULL, bad, sizeof bad), -1);
    assert_string_equal(bad, "unknown placeholder {acount}");
    assert_int_equal(ntpl_check("{text}", NULL, bad, sizeof bad), -1);
    const char *const extra[] = {"text", NULL};
    assert_int_equal(ntpl_check("{text}", extra, bad, sizeof bad), 0);
    const char *const extra2[] = {"to", NULL};
    assert_int_equal(ntpl_check("{\"to\":\"{to}\",\"x\":{\"y\":\"{bogus}\"}}", extra2, bad, sizeof bad), -1);
    assert_string_equal(bad, "unknown placeholder {bogus}");
}

/* --------------------------------------------------------------- SMS */

static void test_gsm7(void **st)
{
    (void)st;
    assert_int_equal(ntpl_gsm7_septets("Hello, world!"), 13);
    assert_int_equal(ntpl_gsm7_septets("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà"), 42); /* all basic */
    assert_int_equal(ntpl_gsm7_septets("€"), 2);
    assert_int_equal(ntpl_gsm7_septets("[x]{y}~|^\\"), 2 * 8 + 2); /* 8 extension characters */
    assert_int_equal(ntpl_gsm7_septets("line\nnext"), 9);
    assert_int_equal(ntpl_gsm7_septets(""), 0);
    assert_int_equal(ntpl_gsm7_septets("季度报告"), -1);
    assert_int_equal(ntpl_gsm7_septets("ok 😀"), -1);
    assert_int_equal(ntpl_gsm7_septets("`"), -1);
    assert_int_equal(ntpl_gsm7_septets("ç"), -1); /* only the capital Ç is in the table */
    assert_int_equal(ntpl_gsm7_septets("\xff"), -1);
}

static void test_sms_gsm_segments(void **st)
{
    (void)st;
    struct ntpl_sms_fit f;
    char *s = repeat("a", 160);
    ntpl_sms_fit(s, 3, &f);
    assert_int_equal(f.ucs2, 0);
    assert_int_equal(f.parts, 1);
    assert_int_equal(f.len, 160);
    assert_int_equal(f.truncated, 0);
    free(s);

    s = repeat("a", 161);
    ntpl_sms_fit(s, 3, &f);
    assert_int_equal(f.parts, 2);
    assert_int_equal(f.len, 161);
    ntpl_sms_fit(s, 1, &f);
    assert_int_equal(f.parts, 1);
    assert_int_equal(f.len, 160);
    assert_int_equal(f.truncated, 1);
    free(s);

    s = repeat("a", 500);
    ntpl_sms_fit(s, 3, &f);
    assert_int_equal(f.parts, 3);
    assert_int_equal(f.len, 3 * 153);
    assert_int_equal(f.truncated, 1);
    free(s);

    /* an extension character is never split: 152 'a' + '€' puts the euro in part 2 */
    s = repeat("a", 152);
    char *t = malloc(strlen(s) + 64);
    sprintf(t, "%s€%s", s, "bbbbbbbbbb");
    ntpl_sms_fit(t, 3, &f);
    assert_int_equal(f.parts, 2);
    assert_int_equal(f.units, 152 + 2 + 10);
    assert_int_equal(f.len, strlen(t));
    /* ... and with one part (160 septets) the euro fits: 152 + 2 + 6 b */
    ntpl_sms_fit(t, 1, &f);
    assert_int_equal(f.units, 160);
    assert_int_equal(f.len, 152 + 3 + 6);
    /* 159 'a' + '€' = 161 septets in one part: the euro is dropped whole */
    free(s);
    s = repeat("a", 159);
    sprintf(t, "%s€", s);
    ntpl_sms_fit(t, 1, &f);
    assert_int_equal(f.len, 159);
    assert_int_equal(f.units, 159);
    assert_int_equal(f.truncated, 1);
    free(s);
    free(t);

    ntpl_sms_fit("", 3, &f);
    assert_int_equal(f.parts, 0);
    assert_int_equal(f.len, 0);
}

static void test_sms_chinese(void **st)
{
    (void)st;
    struct ntpl_sms_fit f;
    char *s = repeat("报", 70);
    ntpl_sms_fit(s, 3, &f);
    assert_int_equal(f.ucs2, 1);
    assert_int_equal(f.parts, 1);
    assert_int_equal(f.len, 70 * 3);
    free(s);
    s = repeat("报", 71);
    ntpl_sms_fit(s, 3, &f);
    assert_int_equal(f.parts, 2);
    assert_int_equal(f.len, 71 * 3);
    free(s);
    s = repeat("报", 300);
    ntpl_sms_fit(s, 3, &f);
    assert_int_equal(f.parts, 3);
    assert_int_equal(f.len, 3 * 67 * 3); /* 201 characters, 603 bytes: never mid-character */
    assert_int_equal(f.truncated, 1);
    assert_true(valid_utf8(s, f.len));
    free(s);
    /* one Chinese character makes the whole text UCS-2 */
    s = repeat("a", 100);
    char *t = malloc(strlen(s) + 8);
    sprintf(t, "%s报", s);
    ntpl_sms_fit(t, 3, &f);
    assert_int_equal(f.ucs2, 1);
    assert_int_equal(f.parts, 2);
    free(s);
    free(t);
}

static void test_sms_emoji(void **st)
{
    (void)st;
    struct ntpl_sms_fit f;
    /* 66 x + an emoji (a surrogate pair) + 10 y: the pair does not fit in part 1 (67 units) and moves */
    char *x = repeat("x", 66), *t = malloc(128);
    sprintf(t, "%s😀yyyyyyyyyy", x);
    ntpl_sms_fit(t, 3, &f);
    assert_int_equal(f.ucs2, 1);
    assert_int_equal(f.units, 66 + 2 + 10);
    assert_int_equal(f.parts, 2);
    assert_int_equal(f.len, strlen(t));
    free(x);
    /* 69 x + emoji = 71 units: one part only keeps the 69 x, never half the pair */
    x = repeat("x", 69);
    sprintf(t, "%s😀", x);
    ntpl_sms_fit(t, 1, &f);
    assert_int_equal(f.len, 69);
    assert_int_equal(f.units, 69);
    assert_int_equal(f.truncated, 1);
    free(x);
    free(t);
    /* all emoji: 35 of them are 70 units (1 part); 36 need 2 parts of 67 (33 pairs + 3) */
    char *e = repeat("😀", 36);
    ntpl_sms_fit(e, 1, &f);
    assert_int_equal(f.len, 35 * 4);
    ntpl_sms_fit(e, 2, &f);
    assert_int_equal(f.len, 36 * 4);
    assert_int_equal(f.parts, 2);
    free(e);
}

/* Every cut of a mixed text, for 1..4 parts, is valid UTF-8 and within the limits. */
static void test_sms_cut_boundaries(void **st)
{
    (void)st;
    const char *units[] = {"a", "报", "😀", "€", "é", "ç", " "};
    char buf[2048];
    unsigned seed = 12345;
    for (int round = 0; round < 400; round++) {
        size_t n = 0;
        int len = 20 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 300;
        for (int i = 0; i < len; i++) {
            const char *u = units[((seed = seed * 1103515245u + 12345u) >> 16) % 7];
            if (round % 3 == 0)
                u = units[((seed >> 16) % 2) ? 0 : 3]; /* GSM-only rounds */
            size_t ul = strlen(u);
            if (n + ul >= sizeof buf)
                break;
            memcpy(buf + n, u, ul);
            n += ul;
        }
        buf[n] = '\0';
        for (int parts = 1; parts <= 4; parts++) {
            struct ntpl_sms_fit f;
            ntpl_sms_fit(buf, parts, &f);
            assert_true(f.len <= n);
            assert_true(valid_utf8(buf, f.len));
            size_t single = f.ucs2 ? 70 : 160, multi = f.ucs2 ? 67 : 153;
            assert_true(f.parts <= parts);
            assert_true(f.units <= (f.parts <= 1 ? single : multi * (size_t)f.parts));
            assert_int_equal(f.truncated, f.len < n);
        }
    }
}

/* ---------------------------------------------------------- signatures */

/* The signature computed by tests/tools/webhook_vector.py (Python's hmac). */
static char *python_sign(const char *secret, const char *id, long long ts, const char *body)
{
    const char *py = getenv("MH_PYTHON");
    const char *src = getenv("top_srcdir");
    char hex[4096] = "";
    for (size_t i = 0; body[i] && i < sizeof hex / 2 - 1; i++)
        sprintf(hex + 2 * i, "%02x", (unsigned char)body[i]);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' '%s/tests/tools/webhook_vector.py' '%s' '%s' %lld %s",
             py ? py : "python3", src ? src : ".", secret, id, ts, hex[0] ? hex : "\"\"");
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[256] = "";
    char *got = fgets(line, sizeof line, p);
    int rc = pclose(p);
    assert_non_null(got);
    assert_int_equal(rc, 0);
    line[strcspn(line, "\n")] = '\0';
    return strdup(line);
}

static void test_signature(void **st)
{
    (void)st;
    const char *py = getenv("MH_PYTHON");
    const char *src = getenv("top_srcdir");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' '%s/tests/tools/webhook_vector.py' --self-check >/dev/null",
             py ? py : "python3", src ? src : ".");
    assert_int_equal(system(cmd), 0); /* the Python reference reproduces the specification's example */

    static const struct {
        const char *secret, *id;
        long long ts;
        const char *body;
    } cases[] = {
        {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
         "{\"test\": 2432232314}"},
        {"whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM=", "evt_0193a1f2c4e00000a1b2c3d4e5f60718", 1764362460, ENVELOPE},
        {"whsec_AAECAwQFBgcICQ==", "evt_x", 0, "{\"subject\":\"季度报告 😀\"}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned char key[128];
        long kl = ntpl_whsec_decode(cases[i].secret, key, sizeof key);
        assert_true(kl > 0);
        char *c = ntpl_webhook_sign(key, (size_t)kl, cases[i].id, cases[i].ts, cases[i].body,
                                    strlen(cases[i].body));
        char *p = python_sign(cases[i].secret, cases[i].id, cases[i].ts, cases[i].body);
        assert_non_null(c);
        assert_string_equal(c, p);
        free(c);
        free(p);
    }
    /* a changed body changes the signature */
    unsigned char key[64];
    long kl = ntpl_whsec_decode("whsec_AAECAwQFBgcICQ==", key, sizeof key);
    assert_int_equal(kl, 10);
    char *a = ntpl_webhook_sign(key, (size_t)kl, "id", 1, "{}", 2);
    char *b = ntpl_webhook_sign(key, (size_t)kl, "id", 1, "{ }", 3);
    assert_string_not_equal(a, b);
    assert_memory_equal(a, "v1,", 3);
    free(a);
    free(b);
}

static void test_whsec_decode(void **st)
{
    (void)st;
    unsigned char key[8];
    assert_int_equal(ntpl_whsec_decode("whsec_AAECAw==", key, sizeof key), 4);
    assert_memory_equal(key, "\x00\x01\x02\x03", 4);
    assert_int_equal(ntpl_whsec_decode("AAECAw", key, sizeof key), 4); /* prefix and padding optional */
    assert_int_equal(ntpl_whsec_decode("whsec_", key, sizeof key), -1);
    assert_int_equal(ntpl_whsec_decode("whsec_not base64!", key, sizeof key), -1);
    assert_int_equal(ntpl_whsec_decode("whsec_AAECAwQFBgcICQoL", key, sizeof key), -1); /* over capacity */
    assert_int_equal(ntpl_whsec_decode(NULL, key, sizeof key), -1);
}

/* --------------------------------------------------------------- mail */

/* Decode one "=?UTF-8?B?...?=" word list back to bytes (test helper). */
static char *decode_words(const char *enc)
{
    char *out = calloc(1, strlen(enc) + 1);
    size_t n = 0;
    const char *p = enc;
    while ((p = strstr(p, "=?UTF-8?B?")) != NULL) {
        p += 10;
        const char *e = strstr(p, "?=");
        assert_non_null(e);
        assert_true(e - p + 12 <= 75);
        unsigned char tmp[128];
        int k = EVP_DecodeBlock(tmp, (const unsigned char *)p, (int)(e - p));
        assert_true(k >= 0);
        int pad = (e[-1] == '=') + (e[-2] == '=');
        memcpy(out + n, tmp, (size_t)(k - pad));
        n += (size_t)(k - pad);
        p = e + 2;
    }
    out[n] = '\0';
    return out;
}

static void test_rfc2047(void **st)
{
    (void)st;
    char *s = ntpl_rfc2047("[work@corp.com] Alice Chen: Quarterly report");
    assert_string_equal(s, "[work@corp.com] Alice Chen: Quarterly report");
    free(s);
    const char *zh = "[work@corp.com] 陈小明: 季度报告，请在周五前审阅附件中的所有表格和图表 😀 谢谢";
    s = ntpl_rfc2047(zh);
    assert_memory_equal(s, "=?UTF-8?B?", 10);
    assert_non_null(strstr(s, "\r\n ")); /* long: folded into several words */
    char *back = decode_words(s);
    assert_string_equal(back, zh); /* words split on character boundaries decode back exactly */
    /* each word alone is valid UTF-8 */
    for (const char *p = s; (p = strstr(p, "=?UTF-8?B?")) != NULL; p += 10) {
        const char *e = strstr(p + 10, "?=");
        char one[128];
        snprintf(one, sizeof one, "%.*s", (int)(e + 2 - p), p);
        char *w = decode_words(one);
        assert_true(valid_utf8(w, strlen(w)));
        free(w);
    }
    free(back);
    free(s);
    s = ntpl_rfc2047("header\r\nBcc: injected@example.org");
    assert_null(strstr(s, "Bcc:"));
    free(s);
}

static void test_mail_address(void **st)
{
    (void)st;
    char *s = ntpl_mail_address("mailhub <hub@example.org>");
    assert_string_equal(s, "mailhub <hub@example.org>");
    free(s);
    s = ntpl_mail_address("Chen, Alice <alice@corp.example>");
    assert_string_equal(s, "\"Chen, Alice\" <alice@corp.example>");
    free(s);
    s = ntpl_mail_address("邮件中心 <hub@example.cn>");
    assert_string_equal(s, "=?UTF-8?B?6YKu5Lu25Lit5b+D?= <hub@example.cn>");
    free(s);
    s = ntpl_mail_address("bob@example.org");
    assert_string_equal(s, "bob@example.org");
    free(s);
}

static void test_qp(void **st)
{
    (void)st;
    char *s = ntpl_qp_encode("café = ok\nend  \n");
    assert_string_equal(s, "caf=C3=A9 =3D ok\r\nend =20\r\n");
    free(s);
    char *long_line = repeat("é", 100);
    s = ntpl_qp_encode(long_line);
    /* every line within 76 characters, soft breaks end in '=' */
    size_t col = 0;
    for (const char *p = s; *p; p++) {
        if (p[0] == '\r' && p[1] == '\n') {
            assert_true(col <= 76);
            assert_true(p > s && p[-1] == '=');
            col = 0;
            p++;
            continue;
        }
        col++;
    }
    assert_true(col <= 76);
    free(s);
    free(long_line);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_parse),
        cmocka_unit_test(test_split_address),
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_gsm7),
        cmocka_unit_test(test_sms_gsm_segments),
        cmocka_unit_test(test_sms_chinese),
        cmocka_unit_test(test_sms_emoji),
        cmocka_unit_test(test_sms_cut_boundaries),
        cmocka_unit_test(test_signature),
        cmocka_unit_test(test_whsec_decode),
        cmocka_unit_test(test_rfc2047),
        cmocka_unit_test(test_mail_address),
        cmocka_unit_test(test_qp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

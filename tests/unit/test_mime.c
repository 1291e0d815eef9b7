/*
 * MIME header decoding: RFC 2047 words in the Chinese and Japanese charsets
 * mail really arrives in, raw 8-bit legacy headers, folding, dates and
 * Message-IDs, and malformed input (which must never fail and must always
 * give clean UTF-8).  The legacy-charset bytes are written out as escapes;
 * each one's text is in the comment next to it.
 */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "mh_mime.h"

/* 会议通知 in GBK */
#define GBK_MEETING "\xbb\xe1\xd2\xe9\xcd\xa8\xd6\xaa"
/* 张伟 in GBK */
#define GBK_ZHANGWEI "\xd5\xc5\xce\xb0"
/* 你好 in GB2312 */
#define GB2312_NIHAO "\xc4\xe3\xba\xc3"
/* 镕基 in GBK: 镕 is not in GB2312, but mailers label such text gb2312 */
#define GBK_RONGJI "\xe9\x46\xbb\xf9"
/* 𠀀€中 in GB18030: a four-byte sequence, then two two-byte ones */
#define GB18030_MIXED "\x95\x32\x82\x36\xa2\xe3\xd6\xd0"
/* 臺灣電腦 in Big5 */
#define BIG5_TAIWAN "\xbb\x4f\xc6\x57\xb9\x71\xb8\xa3"
/* 陳大文 in Big5 */
#define BIG5_CHAN "\xb3\xaf\xa4\x6a\xa4\xe5"
/* こんにちは in ISO-2022-JP */
#define JIS_KONNICHIWA "\x1b\x24\x42\x24\x33\x24\x73\x24\x4b\x24\x41\x24\x4f\x1b\x28\x42"
/* 山田太郎 in ISO-2022-JP */
#define JIS_YAMADA "\x1b\x24\x42\x3b\x33\x45\x44\x42\x40\x4f\x3a\x1b\x28\x42"
/* 会议通知：明天下午三点 in GBK */
#define GBK_NOTICE "\xbb\xe1\xd2\xe9\xcd\xa8\xd6\xaa\xa3\xba\xc3\xf7\xcc\xec\xcf\xc2\xce\xe7\xc8\xfd\xb5\xe3"

/* ------------------------------------------------------------ helpers */

/* A malloc'ed RFC 2047 word "=?charset?B?...?=" of the bytes s. */
static char *bword(const char *charset, const char *s)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *b = (const unsigned char *)s;
    size_t n = strlen(s), o;
    char *w = malloc(strlen(charset) + 4 * (n / 3 + 1) + 16);
    assert_non_null(w);
    o = (size_t)snprintf(w, strlen(charset) + 8, "=?%s?B?", charset);
    for (size_t i = 0; i < n; i += 3) {
        unsigned v =
            (unsigned)b[i] << 16 | (i + 1 < n ? (unsigned)b[i + 1] << 8 : 0) | (i + 2 < n ? b[i + 2] : 0);
        w[o++] = al[v >> 18 & 63];
        w[o++] = al[v >> 12 & 63];
        w[o++] = i + 1 < n ? al[v >> 6 & 63] : '=';
        w[o++] = i + 2 < n ? al[v & 63] : '=';
    }
    memcpy(w + o, "?=", 3);
    return w;
}

/* "=?charset?Q?...?=": bytes >= 0x80 and specials as =XX, spaces as '_'. */
static char *qword(const char *charset, const char *s)
{
    const unsigned char *b = (const unsigned char *)s;
    size_t n = strlen(s), o;
    char *w = malloc(strlen(charset) + 3 * n + 16);
    assert_non_null(w);
    o = (size_t)snprintf(w, strlen(charset) + 8, "=?%s?Q?", charset);
    for (size_t i = 0; i < n; i++) {
        if (b[i] == ' ')
            w[o++] = '_';
        else if (b[i] >= 0x80 || b[i] < 0x20 || strchr("=?_", b[i]) != NULL)
            o += (size_t)snprintf(w + o, 4, "=%02X", b[i]);
        else
            w[o++] = (char)b[i];
    }
    memcpy(w + o, "?=", 3);
    return w;
}

/* Parses a message given as a C string. */
static void parse(const char *msg, struct mh_mime_headers *h)
{
    assert_int_equal(mh_mime_parse(msg, strlen(msg), h), 0);
}

/* Aborts the test unless s is NULL or valid UTF-8 without controls, at most 998 bytes. */
static void assert_clean(const char *s)
{
    if (s == NULL)
        return;
    size_t n = strlen(s);
    assert_true(n > 0 && n <= 998);
    assert_true(s[0] != ' ' && s[n - 1] != ' ');
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        size_t len = c < 0x80                 ? 1
                     : c >= 0xc2 && c <= 0xdf ? 2
                     : c >= 0xe0 && c <= 0xef ? 3
                     : c >= 0xf0 && c <= 0xf4 ? 4
                                              : 0;
        if (len == 0 || i + len > n)
            fail_msg("invalid UTF-8 at byte %zu of \"%s\"", i, s);
        uint32_t cp = len == 1 ? c : (uint32_t)(c & (0x7f >> len));
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                fail_msg("invalid UTF-8 at byte %zu of \"%s\"", i + k, s);
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            fail_msg("invalid UTF-8 at byte %zu of \"%s\"", i, s);
        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
            fail_msg("control character U+%04X in \"%s\"", (unsigned)cp, s);
        if (c == ' ' && i + 1 < n && p[i + 1] == ' ')
            fail_msg("double space in \"%s\"", s);
        i += len;
    }
}

static void assert_all_clean(const struct mh_mime_headers *h)
{
    assert_clean(h->from);
    assert_clean(h->to);
    assert_clean(h->cc);
    assert_clean(h->subject);
    assert_clean(h->message_id);
}

/* Subject: <value>, parsed; returns the malloc'ed decoded subject (or NULL). */
static char *subject_of(const char *value)
{
    size_t n = strlen(value) + 64;
    char *msg = malloc(n);
    assert_non_null(msg);
    snprintf(msg, n, "Subject: %s\r\nFrom: a@example.com\r\n\r\nbody\r\n", value);
    struct mh_mime_headers h;
    parse(msg, &h);
    assert_all_clean(&h);
    char *s = h.subject;
    h.subject = NULL;
    mh_mime_headers_clear(&h);
    free(msg);
    return s;
}

static void expect_subject(const char *value, const char *want)
{
    char *got = subject_of(value);
    if (want == NULL) {
        assert_null(got);
        return;
    }
    if (got == NULL)
        fail_msg("Subject: %s -> NULL, want \"%s\"", value, want);
    if (strcmp(got, want) != 0)
        fail_msg("Subject: %s -> \"%s\", want \"%s\"", value, got, want);
    free(got);
}

/* expect_subject() of one word built by fn(charset, bytes), then freed. */
static void expect_word(char *(*fn)(const char *, const char *), const char *charset, const char *bytes,
                        const char *want)
{
    char *w = fn(charset, bytes);
    expect_subject(w, want);
    free(w);
}

/* ------------------------------------------------------------ encoded words */

static void test_subject_chinese(void **state)
{
    (void)state;
    expect_word(bword, "GBK", GBK_MEETING, "会议通知");
    expect_word(qword, "gbk", GBK_MEETING, "会议通知");
    expect_word(bword, "gb2312", GB2312_NIHAO, "你好");
    expect_word(qword, "GB2312", GB2312_NIHAO, "你好");
    expect_word(bword, "gb2312", GBK_RONGJI, "镕基"); /* GBK text labelled gb2312 */
    expect_word(bword, "GB18030", GB18030_MIXED, "𠀀€中");
    expect_word(qword, "gb18030", GB18030_MIXED, "𠀀€中");
    expect_word(bword, "Big5", BIG5_TAIWAN, "臺灣電腦");
    expect_word(qword, "big5", BIG5_TAIWAN, "臺灣電腦");
    expect_word(bword, "GBK", GBK_NOTICE, "会议通知：明天下午三点");
}

static void test_subject_japanese_utf8(void **state)
{
    (void)state;
    expect_word(bword, "ISO-2022-JP", JIS_KONNICHIWA, "こんにちは");
    expect_word(bword, "iso-2022-jp", JIS_YAMADA, "山田太郎");
    expect_word(bword, "UTF-8", "caf\xc3\xa9 \xf0\x9f\x98\x80", "café 😀");
    expect_word(qword, "utf-8", "na\xc3\xafve test", "naïve test");
    expect_subject("=?utf-8?Q?a_b=5Fc?=", "a b_c");
    expect_subject("=?UTF-8?B?5Lit5paH?=", "中文");
    expect_subject("=?us-ascii?q?plain?=", "plain");
    expect_subject("=?iso-8859-1?q?Gr=FC=DFe?=", "Grüße");
    expect_subject("=?utf-8*zh-cn?B?5Lit5paH?=", "中文"); /* RFC 2231 language suffix */
}

static void test_subject_mixed_words(void **state)
{
    (void)state;
    char *g = bword("GBK", GBK_ZHANGWEI);
    char *b = bword("big5", BIG5_CHAN);
    char *j = bword("ISO-2022-JP", JIS_YAMADA);
    char value[512];

    /* adjacent words: the whitespace between them is not text */
    snprintf(value, sizeof value, "%s %s", g, b);
    expect_subject(value, "张伟陳大文");
    snprintf(value, sizeof value, "%s\r\n %s\r\n\t%s", g, b, j);
    expect_subject(value, "张伟陳大文山田太郎");
    /* words among plain text keep the spaces around them */
    snprintf(value, sizeof value, "Re: [list] %s and %s (fwd)", g, j);
    expect_subject(value, "Re: [list] 张伟 and 山田太郎 (fwd)");
    expect_subject("=?utf-8?q?a?= =?utf-8?q?b?=", "ab");
    expect_subject("=?utf-8?q?a?=   b", "a b");
    free(g);
    free(b);
    free(j);
}

static void test_from_to_cc(void **state)
{
    (void)state;
    char *g = bword("GBK", GBK_ZHANGWEI);
    char *b = qword("big5", BIG5_CHAN);
    char *j = bword("ISO-2022-JP", JIS_YAMADA);
    char *u = bword("utf-8", "Chen, Alice");
    char msg[2048];
    snprintf(msg, sizeof msg,
             "From: %s <zhang.wei@example.cn>\r\n"
             "To: %s <chan@example.hk>, %s <yamada@example.jp>,\r\n"
             "  bob@example.org\r\n"
             "Cc: %s <alice@example.com>, \"Ops Team\" <ops@example.com>\r\n"
             "Subject: hi\r\n"
             "\r\n",
             g, b, j, u);
    struct mh_mime_headers h;
    parse(msg, &h);
    assert_all_clean(&h);
    assert_string_equal(h.from, "张伟 <zhang.wei@example.cn>");
    assert_string_equal(h.to, "陳大文 <chan@example.hk>, 山田太郎 <yamada@example.jp>, bob@example.org");
    /* a decoded name with a comma stays quoted: the list can still be read */
    assert_string_equal(h.cc, "\"Chen, Alice\" <alice@example.com>, Ops Team <ops@example.com>");
    mh_mime_headers_clear(&h);
    free(g);
    free(b);
    free(j);
    free(u);

    /* bare addresses, angle addresses without names, a group */
    parse(
        "From: alice@example.com\nTo: <bob@example.org>\nCc: team: carol@example.net, dave@example.net;\n\n",
        &h);
    assert_string_equal(h.from, "alice@example.com");
    assert_string_equal(h.to, "bob@example.org");
    assert_string_equal(h.cc, "team: carol@example.net, dave@example.net;");
    mh_mime_headers_clear(&h);
}

static void expect_to(const char *value, const char *want)
{
    size_t n = strlen(value) + 32;
    char *msg = malloc(n);
    assert_non_null(msg);
    snprintf(msg, n, "To: %s\r\n\r\n", value);
    struct mh_mime_headers h;
    parse(msg, &h);
    assert_all_clean(&h);
    if (want == NULL)
        assert_null(h.to);
    else if (h.to == NULL || strcmp(h.to, want) != 0)
        fail_msg("To: %s -> \"%s\", want \"%s\"", value, h.to ? h.to : "(null)", want);
    mh_mime_headers_clear(&h);
    free(msg);
}

static void test_address_forms(void **state)
{
    (void)state;
    /* names are unquoted, decoded, and quoted again only when they need it */
    expect_to("\"Smith, J.\" <j@x.example>, J. Smith <k@x.example>, \"Ops\" <o@x.example>",
              "\"Smith, J.\" <j@x.example>, \"J. Smith\" <k@x.example>, Ops <o@x.example>");
    expect_to("=?utf-8?q?a=2Cb?= <x@y.example>, =?utf-8?q?a=5Cb?= <z@y.example>",
              "\"a,b\" <x@y.example>, a\\\\b <z@y.example>");
    expect_to("\"=?utf-8?q?J=C3=B6rg?=\" <j@x.example>", "Jörg <j@x.example>");
    /* empty names and empty elements go */
    expect_to("\"\" <c@d.example>, \" \" <e@f.example>", "c@d.example, e@f.example");
    expect_to("a@b.example, , c@d.example,", "a@b.example, c@d.example");
    expect_to(", ,", ", ,"); /* no address at all: the text */
    /* groups */
    expect_to("undisclosed-recipients:;", "undisclosed-recipients: ;");
    expect_to("=?utf-8?q?Team_A?=: a@b.example, C <c@d.example>;, e@f.example",
              "Team A: a@b.example, C <c@d.example>;, e@f.example");
    /* the rarer forms GMime's address parser handles */
    expect_to("j@x.example (John Smith)", "John Smith <j@x.example>");
    expect_to("\"John \\\"JJ\\\" Smith\" <j@x.example>", "John \"JJ\" Smith <j@x.example>");
    expect_to("John <j@x.example", "John <j@x.example>");
    /* IDNA domains are shown as written */
    expect_to("M <j@xn--mnchen-3ya.example>", "M <j@xn--mnchen-3ya.example>");
    expect_to("", NULL);
}

/* The cleaner's cut of s: the first 998 bytes, without a trailing space. */
static char *capped(const char *s)
{
    size_t n = strlen(s);
    if (n > 998)
        n = 998;
    while (n > 0 && s[n - 1] == ' ')
        n--;
    char *c = malloc(n + 1);
    assert_non_null(c);
    memcpy(c, s, n);
    c[n] = '\0';
    return c;
}

static void test_long_address_list(void **state)
{
    (void)state;
    /* 300 addresses: cut at 998 bytes, the same whether the list is formatted
     * here or by GMime (a comment in the first element sends it there) */
    size_t cap = 300 * 48 + 64;
    char *list = malloc(cap), *want_list = malloc(cap);
    assert_non_null(list);
    assert_non_null(want_list);
    for (int pass = 0; pass < 2; pass++) {
        size_t o = 0, w = 0;
        if (pass == 1) {
            o += (size_t)snprintf(list + o, cap - o, "first@x.example (First), ");
            w += (size_t)snprintf(want_list + w, cap - w, "First <first@x.example>, ");
        }
        for (int i = 0; i < 300; i++) {
            o += (size_t)snprintf(list + o, cap - o, "%sUser %d <user%03d@example.com>", i ? ",\r\n " : "", i,
                                  i);
            w += (size_t)snprintf(want_list + w, cap - w, "%sUser %d <user%03d@example.com>", i ? ", " : "",
                                  i, i);
        }
        char *want = capped(want_list);
        expect_to(list, want);
        free(want);
    }
    free(list);
    free(want_list);
}

static void test_header_block_scan(void **state)
{
    (void)state;
    struct mh_mime_headers h;
    /* the first occurrence of each field wins */
    parse("Subject: one\nsubject: two\nTo: a@b.example\nTo: c@d.example\n"
          "Message-ID: <m1@x.example>\nMessage-ID: <m2@x.example>\n"
          "Date: Thu, 28 Nov 2024 10:00:00 +0800\nDate: Fri, 29 Nov 2024 10:00:00 +0800\n"
          "From: x@y.example\nCc: e@f.example\nCc: g@h.example\nFrom: z@w.example\n\n",
          &h);
    assert_string_equal(h.subject, "one");
    assert_string_equal(h.to, "a@b.example");
    assert_string_equal(h.cc, "e@f.example");
    assert_string_equal(h.from, "x@y.example");
    assert_string_equal(h.message_id, "m1@x.example");
    assert_int_equal(h.date, 1732759200);
    mh_mime_headers_clear(&h);

    /* names: any case, white space before the colon; lines that are not
     * fields are skipped, and so are their continuation lines */
    parse("Received: from a\r\n\tby b; Thu, 28 Nov 2024 10:00:00 +0800\r\nnot a field\r\n"
          "X-Subject: no\r\n Subject: no\r\nSUBJECT : yes\r\nFROM:\ta@b.example\r\n\r\n",
          &h);
    assert_string_equal(h.subject, "yes");
    assert_string_equal(h.from, "a@b.example");
    mh_mime_headers_clear(&h);

    /* a lone CR is dropped, as GMime's parser drops it; a NUL ends the value */
    static const char cr_nul[] = "Subject: a\rb\r\nTo: x@y.example\0junk\r\n\r\n";
    assert_int_equal(mh_mime_parse(cr_nul, sizeof cr_nul - 1, &h), 0);
    assert_string_equal(h.subject, "ab");
    assert_string_equal(h.to, "x@y.example");
    mh_mime_headers_clear(&h);
}

/* ------------------------------------------------------------ raw 8-bit headers */

static void test_raw_8bit(void **state)
{
    (void)state;
    struct mh_mime_headers h;
    parse("From: \"" GBK_ZHANGWEI "\" <zhang.wei@example.cn>\n"
          "Subject: " GBK_NOTICE "\n"
          "To: " GBK_MEETING " <list@example.cn>\n"
          "\n"
          "body\n",
          &h);
    assert_all_clean(&h);
    assert_string_equal(h.subject, "会议通知：明天下午三点");
    assert_string_equal(h.from, "张伟 <zhang.wei@example.cn>");
    assert_string_equal(h.to, "会议通知 <list@example.cn>");
    mh_mime_headers_clear(&h);

    /* raw UTF-8 is kept as it is */
    expect_subject("\xe4\xb8\xad\xe6\x96\x87 subject", "中文 subject");
    /* Latin-1 that no CJK charset can read (a high byte before a space or at
     * the end is not a GB18030 or Big5 character).  GMime converts raw text
     * word by word, and a Latin-1 word that happens to form GB18030 pairs
     * ("cr\xe8me") is read as GB18030: raw 8-bit text names no charset. */
    expect_subject("caf\xe9 ol\xe9", "café olé");
}

/* ------------------------------------------------------------ structure */

static void test_folding_and_whitespace(void **state)
{
    (void)state;
    expect_subject("a long\r\n subject\r\n\tthat folds", "a long subject that folds");
    expect_subject("  lots   of\t\tspace  ", "lots of space");
    expect_subject("tab\there", "tab here");

    struct mh_mime_headers h;
    /* LF-only line ends and a fold in an address list */
    parse("To: a@example.com,\n b@example.com\nSubject: one\n two\n\nSubject: not this\n", &h);
    assert_string_equal(h.to, "a@example.com, b@example.com");
    assert_string_equal(h.subject, "one two");
    mh_mime_headers_clear(&h);
}

static void test_missing_headers(void **state)
{
    (void)state;
    struct mh_mime_headers h;
    memset(&h, 0x55, sizeof h); /* parse zeroes it first */
    parse("X-Other: 1\r\n\r\nFrom: body@example.com\r\nSubject: in the body\r\n", &h);
    assert_null(h.from);
    assert_null(h.to);
    assert_null(h.cc);
    assert_null(h.subject);
    assert_null(h.message_id);
    assert_int_equal(h.date, 0);
    mh_mime_headers_clear(&h);

    assert_int_equal(mh_mime_parse("", 0, &h), 0);
    assert_null(h.subject);
    assert_int_equal(mh_mime_parse(NULL, 0, &h), 0);
    assert_null(h.from);
    /* an empty header block: the message starts with the blank line */
    parse("\r\nSubject: body\r\n", &h);
    assert_null(h.subject);
    parse("\nSubject: body\n", &h);
    assert_null(h.subject);
    /* present but empty */
    parse("Subject:\r\nFrom: \r\nTo:   \r\n\r\n", &h);
    assert_null(h.subject);
    assert_null(h.from);
    assert_null(h.to);
    mh_mime_headers_clear(&h);
    mh_mime_headers_clear(NULL);
}

static void test_message_id(void **state)
{
    (void)state;
    struct mh_mime_headers h;
    parse("Message-ID: <20241128100000.1234@example.com>\n\n", &h);
    assert_string_equal(h.message_id, "20241128100000.1234@example.com");
    mh_mime_headers_clear(&h);
    parse("Message-Id:\n   <abc.def@mail.example.cn>   \n\n", &h);
    assert_string_equal(h.message_id, "abc.def@mail.example.cn");
    mh_mime_headers_clear(&h);
    parse("MESSAGE-ID: <a@b> (comment)\n\n", &h);
    assert_string_equal(h.message_id, "a@b");
    mh_mime_headers_clear(&h);
    /* without brackets it is still an id */
    parse("Message-ID: bare-id@example.com\n\n", &h);
    assert_string_equal(h.message_id, "bare-id@example.com");
    mh_mime_headers_clear(&h);
    parse("Message-ID: <>\n\n", &h);
    assert_null(h.message_id);
    mh_mime_headers_clear(&h);
    /* unparseable: the text, trimmed (found by the fuzzer: a space was left before the '>') */
    parse("Message-ID: >D: >\n\n", &h);
    assert_string_equal(h.message_id, ">D:");
    mh_mime_headers_clear(&h);
    parse("Message-ID: < >\n\n", &h);
    assert_null(h.message_id);
    mh_mime_headers_clear(&h);
}

static void expect_date(const char *value, int64_t want)
{
    char msg[256];
    snprintf(msg, sizeof msg, "Date: %s\r\n\r\n", value);
    struct mh_mime_headers h;
    parse(msg, &h);
    if (h.date != want)
        fail_msg("Date: %s -> %lld, want %lld", value, (long long)h.date, (long long)want);
    mh_mime_headers_clear(&h);
}

static void test_date(void **state)
{
    (void)state;
    /* the expected values are from Python's email.utils.parsedate_to_datetime */
    expect_date("Thu, 28 Nov 2024 10:00:00 +0800", 1732759200);
    expect_date("Mon, 1 Jan 2024 00:00:00 -0500 (EST)", 1704085200);
    expect_date("Sat, 29 Feb 2020 23:59:59 GMT", 1583020799);
    expect_date("Tue, 19 Jan 2038 03:14:08 +0000", INT64_C(2147483648)); /* past 32-bit time_t */
    expect_date("Fri, 13 Feb 2009 23:31:30 PST", 1234596690);
    expect_date("13 Feb 2009 23:31:30 -0800", 1234596690); /* no weekday */
    expect_date("Thu, 28 Nov 2024 10:00:00 GMT", 1732788000);
    expect_date("28 Nov 2024 10:00:00 UT", 1732788000);
    expect_date("Thu, 28 Nov 2024 10:00:00 UTC", 1732788000);
    expect_date("Thu, 28 Nov 2024 10:00:00 -0000", 1732788000);
    expect_date("Thu, 28 Nov 2024 10:00:00 +0530 (IST)", 1732768200);
    expect_date("Thu,  28  Nov  2024\r\n 10:00:00  +0800", 1732759200); /* extra and folded white space */
    expect_date("Sun, 31 Dec 2023 23:59:59 -1200", 1704110399);
    expect_date("Mon, 1 Jan 2024 00:00:00 +1400", 1704016800);
    expect_date("Thu, 28 Nov 2024 10:00:00 EDT", 1732802400);
    expect_date("Thu, 28 Nov 24 10:00:00 +0800", 1732759200); /* two-digit year */
    expect_date("Thu, 28 Nov 2024 10:00 +0800", 1732759200);  /* no seconds */
    expect_date("Wed, 31 Dec 1969 23:59:59 +0000", -1);
    expect_date("Thu, 31 Feb 2024 10:00:00 +0000", 0); /* no such day */
    expect_date("Thu, 28 Nov 2024 24:00:00 +0000", 0);
    expect_date("Thu, 28 Nov 2024 10:00:60 +0000", 0);
    expect_date("yesterday at noon", 0);
    expect_date("", 0);

    struct mh_mime_headers h;
    parse("Subject: no date\n\n", &h);
    assert_int_equal(h.date, 0);
    mh_mime_headers_clear(&h);
}

/* ------------------------------------------------------------ malformed input */

static void test_malformed(void **state)
{
    (void)state;
    struct mh_mime_headers h;

    /* no blank line: everything is the header block */
    parse("Subject: only headers\r\nFrom: a@example.com", &h);
    assert_string_equal(h.subject, "only headers");
    assert_string_equal(h.from, "a@example.com");
    mh_mime_headers_clear(&h);

    /* a truncated word stays as text; an unknown charset falls back */
    expect_subject("=?GBK?B?1dTI", "=?GBK?B?1dTI");
    expect_subject("broken =?utf-8?q?caf=C3", "broken =?utf-8?q?caf=C3");
    char *w = bword("no-such-charset", GB2312_NIHAO);
    expect_subject(w, "你好"); /* unknown charset: the fallback charsets read the bytes */
    free(w);
    expect_subject("=?utf-8?X?abc?=", "=?utf-8?X?abc?=");
    free(subject_of("=?utf-8?B?!!!?=")); /* whatever it gives, it is clean (checked in subject_of) */

    /* invalid bytes inside a word: replaced, never passed through */
    char *s = subject_of("=?utf-8?q?a=FFb=C3=28c?=");
    assert_non_null(s);
    assert_non_null(strstr(s, "a"));
    assert_null(strchr(s, '\xff'));
    free(s);

    /* control characters, raw and encoded */
    expect_subject("a\x01"
                   "b\x7f"
                   "c",
                   "a b c");
    expect_subject("=?utf-8?q?x=01y=0D=0Az=09w?=", "x y z w");
    expect_subject("=?utf-8?b?wpvCnQ==?= end", "end"); /* U+009B U+009D: C1 controls */

    /* NUL bytes in the header block */
    static const char nul_msg[] = "Subject: before\0after\r\nFrom: x@example.com\r\n\r\nbody\0body";
    assert_int_equal(mh_mime_parse(nul_msg, sizeof nul_msg - 1, &h), 0);
    assert_all_clean(&h);
    assert_non_null(h.subject);
    assert_int_equal(strncmp(h.subject, "before", 6), 0);
    mh_mime_headers_clear(&h);

    /* lines that are not headers, a header without a name, binary junk */
    static const char junk[] = "From \xff\xfe junk\n: no name\n\x80\x81\x82: value\nSubject: \xc3\n\xff\n\n";
    assert_int_equal(mh_mime_parse(junk, sizeof junk - 1, &h), 0);
    assert_all_clean(&h);
    mh_mime_headers_clear(&h);

    /* every prefix of a message parses cleanly */
    char *g = bword("GBK", GBK_NOTICE);
    char msg[1024];
    int n = snprintf(
        msg, sizeof msg,
        "From: %s <x@example.cn>\r\nSubject: %s\r\nDate: Thu, 28 Nov 2024 10:00:00 +0800\r\n\r\n", g, g);
    for (int i = 0; i <= n; i++) {
        assert_int_equal(mh_mime_parse(msg, (size_t)i, &h), 0);
        assert_all_clean(&h);
        mh_mime_headers_clear(&h);
    }
    free(g);
}

static void test_huge_header_line(void **state)
{
    (void)state;
    size_t big = 1024 * 1024;
    char *msg = malloc(big + 256);
    assert_non_null(msg);
    size_t o = (size_t)snprintf(msg, 64, "Subject: ");
    memset(msg + o, 'x', big);
    o += big;
    o += (size_t)snprintf(msg + o, 128, "\r\nFrom: after@example.com\r\n\r\nbody");
    struct mh_mime_headers h;
    assert_int_equal(mh_mime_parse(msg, o, &h), 0);
    assert_all_clean(&h);
    assert_non_null(h.subject);
    assert_int_equal(strlen(h.subject), 998);
    assert_int_equal(strspn(h.subject, "x"), 998);
    assert_string_equal(h.from, "after@example.com"); /* the next header is still seen */
    mh_mime_headers_clear(&h);

    /* a 1 MB line of words: whitespace collapsed and still cut */
    for (size_t i = 9; i + 2 < big; i += 2)
        msg[i] = (i / 2) % 5 == 0 ? ' ' : 'y';
    assert_int_equal(mh_mime_parse(msg, o, &h), 0);
    assert_all_clean(&h);
    assert_true(strlen(h.subject) <= 998);
    mh_mime_headers_clear(&h);
    free(msg);
}

static void test_length_cap_utf8(void **state)
{
    (void)state;
    /* 500 x 中 (3 bytes each): cut to 332 characters = 996 bytes, not inside a character */
    char *v = malloc(500 * 3 + 1);
    assert_non_null(v);
    for (int i = 0; i < 500; i++)
        memcpy(v + 3 * i, "\xe4\xb8\xad", 3);
    v[1500] = '\0';
    char *s = subject_of(v);
    assert_non_null(s);
    assert_int_equal(strlen(s), 996);
    for (int i = 0; i < 332; i++)
        assert_memory_equal(s + 3 * i, "\xe4\xb8\xad", 3);
    free(s);

    /* the same through an encoded word, with 4-byte characters: 249 x 4 = 996 */
    char *u = malloc(300 * 4 + 1);
    assert_non_null(u);
    for (int i = 0; i < 300; i++)
        memcpy(u + 4 * i, "\xf0\x9f\x98\x80", 4);
    u[1200] = '\0';
    char *w = bword("utf-8", u);
    s = subject_of(w);
    assert_non_null(s);
    assert_int_equal(strlen(s), 996);
    free(s);
    free(w);
    free(u);

    /* 998 ASCII bytes exactly are kept whole, 999 are cut */
    memset(v, 'a', 999);
    v[998] = '\0';
    s = subject_of(v);
    assert_int_equal(strlen(s), 998);
    free(s);
    v[998] = 'b';
    v[999] = '\0';
    s = subject_of(v);
    assert_int_equal(strlen(s), 998);
    assert_null(strchr(s, 'b'));
    free(s);
    free(v);
}

static void test_body_ignored(void **state)
{
    (void)state;
    /* a big body with header-like lines and junk is not looked at */
    size_t body = 8 * 1024 * 1024;
    const char *head = "Subject: real\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n";
    size_t hl = strlen(head);
    char *msg = malloc(hl + body);
    assert_non_null(msg);
    memcpy(msg, head, hl);
    for (size_t i = 0; i < body; i++)
        msg[hl + i] = "Subject: fake\r\n--zz\r\n\xff\x00"[i % 23];
    struct mh_mime_headers h;
    assert_int_equal(mh_mime_parse(msg, hl + body, &h), 0);
    assert_string_equal(h.subject, "real");
    mh_mime_headers_clear(&h);
    free(msg);
}

/* ------------------------------------------------------------ bodies */

/* Base64 of n bytes, lines of 76 characters (malloc'ed). */
static char *b64(const void *data, size_t n)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *b = data;
    char *w = malloc(4 * (n / 3 + 1) + n / 57 * 2 + 8);
    assert_non_null(w);
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v =
            (unsigned)b[i] << 16 | (i + 1 < n ? (unsigned)b[i + 1] << 8 : 0) | (i + 2 < n ? b[i + 2] : 0);
        w[o++] = al[v >> 18 & 63];
        w[o++] = al[v >> 12 & 63];
        w[o++] = i + 1 < n ? al[v >> 6 & 63] : '=';
        w[o++] = i + 2 < n ? al[v & 63] : '=';
        if ((i / 3 + 1) % 19 == 0)
            w[o++] = '\n';
    }
    w[o] = '\0';
    return w;
}

/* Parses a message (a C string) that must not fail; checks the text is clean UTF-8. */
static void body_of(const char *msg, struct mh_mime_body *b)
{
    assert_int_equal(mh_mime_parse_body(msg, strlen(msg), b), 0);
    if (b->text != NULL) {
        assert_int_equal(strlen(b->text), b->text_len);
        assert_true(b->text_len <= MH_MIME_BODY_TEXT_MAX);
        json_t *j = json_stringn(b->text, b->text_len); /* jansson accepts valid UTF-8 only */
        assert_non_null(j);
        json_decref(j);
        for (size_t i = 0; i < b->text_len; i++) {
            unsigned char c = (unsigned char)b->text[i];
            assert_true(c >= 0x20 || c == '\n' || c == '\t');
            assert_true(c != 0x7f);
        }
    }
}

static void test_body_charsets(void **state)
{
    (void)state;
    struct mh_mime_body b;
    /* GB2312 label (GBK text), base64 */
    char *e = b64(GBK_NOTICE, strlen(GBK_NOTICE));
    char msg[4096];
    snprintf(msg, sizeof msg,
             "Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=gb2312\r\n"
             "Content-Transfer-Encoding: base64\r\n\r\n%s\r\n",
             e);
    free(e);
    body_of(msg, &b);
    assert_non_null(b.text);
    assert_string_equal(b.text, "会议通知：明天下午三点");
    assert_null(b.attachments);
    mh_mime_body_clear(&b);
    /* Big5, quoted-printable */
    body_of("Content-Type: text/plain; charset=big5\nContent-Transfer-Encoding: quoted-printable\n\n"
            "=BB=4F=C6=57=B9=71=B8=A3 ok=\n soft\n",
            &b);
    assert_non_null(b.text);
    assert_non_null(strstr(b.text, "臺灣電腦 ok soft"));
    mh_mime_body_clear(&b);
    /* ISO-2022-JP (stateful), 7bit */
    body_of("Content-Type: text/plain; charset=\"ISO-2022-JP\"\n\n" JIS_KONNICHIWA " " JIS_YAMADA "\n", &b);
    assert_non_null(b.text);
    assert_string_equal(b.text, "こんにちは 山田太郎");
    mh_mime_body_clear(&b);
    /* no charset at all: UTF-8 if valid, else GB18030, else Big5, else ISO-8859-1 */
    body_of("Subject: no MIME\n\n" GBK_MEETING "\n", &b);
    assert_string_equal(b.text, "会议通知");
    mh_mime_body_clear(&b);
    body_of("Subject: no MIME\n\ncaf\xe9 au lait\n", &b);
    assert_string_equal(b.text, "café au lait");
    mh_mime_body_clear(&b);
    body_of("Subject: no MIME\n\nплохо? нет: хорошо\n", &b);
    assert_string_equal(b.text, "плохо? нет: хорошо");
    mh_mime_body_clear(&b);
    /* mislabelled: us-ascii with 8-bit bytes, and an unknown charset */
    body_of("Content-Type: text/plain; charset=us-ascii\n\n" GBK_ZHANGWEI "\n", &b);
    assert_string_equal(b.text, "张伟");
    mh_mime_body_clear(&b);
    body_of("Content-Type: text/plain; charset=x-no-such-charset\n\nna\xc3\xafve\n", &b);
    assert_string_equal(b.text, "naïve");
    mh_mime_body_clear(&b);
    /* declared UTF-8 with a bad byte: U+FFFD; controls become spaces; CRLF and a lone CR are line breaks */
    body_of("Content-Type: text/plain; charset=utf-8\n\nab\xff"
            "cd\x01"
            "e\r\nf\rg\n",
            &b);
    assert_string_equal(b.text, "ab\xef\xbf\xbd"
                                "cd e\nf\ng");
    mh_mime_body_clear(&b);
    /* windows-1252 smart quotes */
    body_of("Content-Type: text/plain; charset=windows-1252\n\n\x93quoted\x94 \x80"
            "5\n",
            &b);
    assert_string_equal(b.text, "“quoted” €5");
    mh_mime_body_clear(&b);
}

static void test_body_html(void **state)
{
    (void)state;
    struct mh_mime_body b;
    body_of("Content-Type: text/html; charset=utf-8\n\n"
            "<!DOCTYPE html><html><head><title>Title words</title>"
            "<style type=\"text/css\">p { color: red }</style>"
            "<script>var secretVariable = \"</p>\";</script></head>\n"
            "<body><p class=\"a>b\">Hello&nbsp;<b>W</b>orld &amp; &#20013;&#x6587; caf&eacute; &bogus; 1 "
            "&lt; 2</p>"
            "<!-- hidden comment --><div>second<br>line</div><SCRIPT type=x>alert(1)</SCRIPT>"
            "<td>cell</td><td>two</td></body></html>\n",
            &b);
    assert_non_null(b.text);
    assert_non_null(strstr(b.text, "Hello\xc2\xa0World & 中文 café &bogus; 1 < 2"));
    assert_non_null(strstr(b.text, "second\nline"));
    assert_non_null(strstr(b.text, "cell\ntwo"));
    assert_null(strstr(b.text, "secretVariable"));
    assert_null(strstr(b.text, "color"));
    assert_null(strstr(b.text, "hidden"));
    assert_null(strstr(b.text, "alert"));
    assert_null(strstr(b.text, "<p"));
    assert_null(strstr(b.text, "<b>"));
    assert_null(strstr(b.text, "DOCTYPE"));
    assert_null(strstr(b.text, "class"));
    mh_mime_body_clear(&b);
    /* charset from a <meta> when the part has none; GBK */
    body_of("Content-Type: text/html\n\n<html><head><meta http-equiv=\"Content-Type\" "
            "content=\"text/html; charset=gbk\"></head><body>" GBK_MEETING "</body></html>\n",
            &b);
    assert_string_equal(b.text, "会议通知");
    mh_mime_body_clear(&b);
    /* broken markup: an unterminated tag, a stray '<', an unclosed comment */
    body_of("Content-Type: text/html\n\na < b and <i>c</i> <a href=\"x>tail\n", &b);
    assert_non_null(b.text);
    assert_non_null(strstr(b.text, "a < b and c"));
    mh_mime_body_clear(&b);
    body_of("Content-Type: text/html\n\nbefore<!-- never closed\n", &b);
    assert_string_equal(b.text, "before");
    mh_mime_body_clear(&b);
    /* tags whose quotes never close, many times over: read in linear time (this took minutes when each
     * tag looked for its quote to the end), and the text between them is kept */
    const char *head = "Content-Type: text/html\n\n";
    size_t reps = 40000, hl = strlen(head), unit = strlen("<a b=\"x>w ");
    char *html = malloc(hl + reps * unit + 1);
    assert_non_null(html);
    memcpy(html, head, hl);
    for (size_t i = 0; i < reps; i++)
        memcpy(html + hl + i * unit, "<a b=\"x>w ", unit);
    html[hl + reps * unit] = '\0';
    body_of(html, &b);
    assert_non_null(b.text);
    assert_int_equal(strncmp(b.text, "w w w ", 6), 0);
    mh_mime_body_clear(&b);
    free(html);
}

static const char nested_msg[] = "From: a@example.com\n"
                                 "Subject: nested\n"
                                 "MIME-Version: 1.0\n"
                                 "Content-Type: multipart/mixed; boundary=\"outer\"\n"
                                 "\n"
                                 "preamble is not text\n"
                                 "--outer\n"
                                 "Content-Type: multipart/alternative; boundary=\"alt\"\n"
                                 "\n"
                                 "--alt\n"
                                 "Content-Type: text/plain; charset=utf-8\n"
                                 "\n"
                                 "plain words 季度报告\n"
                                 "--alt\n"
                                 "Content-Type: text/html; charset=utf-8\n"
                                 "\n"
                                 "<p>htmlonlyword</p>\n"
                                 "--alt--\n"
                                 "--outer\n"
                                 "Content-Type: image/png\n"
                                 "Content-Disposition: attachment; filename*=UTF-8''%E5%9B%BE%E7%89%87.png\n"
                                 "Content-Transfer-Encoding: base64\n"
                                 "\n"
                                 "iVBORw0KGgoAAAANSUhEUgAA\n"
                                 "--outer\n"
                                 "Content-Type: application/pdf; name=\"=?UTF-8?B?5a2j5bqm5oql5ZGK?=.pdf\"\n"
                                 "Content-Transfer-Encoding: base64\n"
                                 "\n"
                                 "JVBERi0xLjQK\n"
                                 "--outer\n"
                                 "Content-Type: text/plain; name=notes.txt\n"
                                 "Content-Disposition: attachment\n"
                                 "\n"
                                 "attachedtextword\n"
                                 "--outer\n"
                                 "Content-Type: message/rfc822\n"
                                 "\n"
                                 "From: Forwarded Sender <fw@example.org>\n"
                                 "Subject: forwarded subject\n"
                                 "Content-Type: multipart/mixed; boundary=inner\n"
                                 "\n"
                                 "--inner\n"
                                 "Content-Type: text/plain\n"
                                 "\n"
                                 "inner body text\n"
                                 "--inner\n"
                                 "Content-Type: application/octet-stream\n"
                                 "Content-Disposition: attachment; filename=data.bin\n"
                                 "\n"
                                 "0123456789\n"
                                 "--inner--\n"
                                 "--outer\n"
                                 "Content-Type: application/pgp-signature\n"
                                 "\n"
                                 "-----BEGIN PGP SIGNATURE-----\n"
                                 "--outer--\n"
                                 "epilogue\n";

/* The attachment of that name in the JSON array text, or NULL. */
static json_t *find_attachment(json_t *arr, const char *name)
{
    size_t i;
    json_t *a;
    json_array_foreach(arr, i, a)
    {
        json_t *n = json_object_get(a, "name");
        if (json_is_string(n) && strcmp(json_string_value(n), name) == 0)
            return a;
    }
    return NULL;
}

static void test_body_nested(void **state)
{
    (void)state;
    struct mh_mime_body b;
    body_of(nested_msg, &b);
    assert_non_null(b.text);
    assert_non_null(strstr(b.text, "plain words 季度报告"));
    assert_null(strstr(b.text, "htmlonlyword"));     /* the alternative's plain part only */
    assert_null(strstr(b.text, "attachedtextword")); /* an attached text file is no body text */
    assert_null(strstr(b.text, "preamble"));
    assert_null(strstr(b.text, "epilogue"));
    assert_non_null(strstr(b.text, "forwarded subject"));
    assert_non_null(strstr(b.text, "fw@example.org"));
    assert_non_null(strstr(b.text, "inner body text"));
    assert_null(strstr(b.text, "0123456789"));
    assert_non_null(b.attachments);
    json_error_t err;
    json_t *arr = json_loads(b.attachments, 0, &err);
    assert_non_null(arr);
    assert_true(json_is_array(arr));
    assert_int_equal(json_array_size(arr), 5); /* png, pdf, notes.txt, the message, data.bin; no signature */
    json_t *png = find_attachment(arr, "图片.png");
    assert_non_null(png);
    assert_string_equal(json_string_value(json_object_get(png, "type")), "image/png");
    assert_int_equal(json_integer_value(json_object_get(png, "size")), 18); /* decoded bytes */
    json_t *pdf = find_attachment(arr, "季度报告.pdf");
    assert_non_null(pdf);
    assert_string_equal(json_string_value(json_object_get(pdf, "type")), "application/pdf");
    assert_int_equal(json_integer_value(json_object_get(pdf, "size")), 9);
    json_t *txt = find_attachment(arr, "notes.txt");
    assert_non_null(txt);
    assert_string_equal(json_string_value(json_object_get(txt, "type")), "text/plain");
    json_t *fwd = find_attachment(arr, "forwarded subject");
    assert_non_null(fwd);
    assert_string_equal(json_string_value(json_object_get(fwd, "type")), "message/rfc822");
    assert_true(json_integer_value(json_object_get(fwd, "size")) > 100);
    json_t *bin = find_attachment(arr, "data.bin");
    assert_non_null(bin);
    assert_int_equal(json_integer_value(json_object_get(bin, "size")),
                     10); /* the line break is the boundary's */
    json_decref(arr);
    assert_non_null(b.attachment_names);
    assert_non_null(strstr(b.attachment_names, "季度报告.pdf"));
    assert_non_null(strstr(b.attachment_names, "图片.png"));
    mh_mime_body_clear(&b);
    assert_null(b.text);
    assert_null(b.attachments);

    /* an alternative without a plain part: its last (richest) part */
    body_of("Content-Type: multipart/alternative; boundary=b\n\n--b\nContent-Type: text/enriched\n\n"
            "enriched\n--b\nContent-Type: text/html\n\n<b>bold</b> text\n--b--\n",
            &b);
    assert_string_equal(b.text, "bold text");
    assert_null(b.attachments);
    mh_mime_body_clear(&b);
}

static void test_body_garbage(void **state)
{
    (void)state;
    struct mh_mime_body b;
    /* nothing */
    assert_int_equal(mh_mime_parse_body(NULL, 0, &b), 0);
    assert_null(b.text);
    assert_int_equal(mh_mime_parse_body("", 0, &b), 0);
    assert_null(b.text);
    /* headers only */
    body_of("Subject: only headers\n", &b);
    assert_null(b.attachments);
    mh_mime_body_clear(&b);
    /* a multipart that never ends, without a boundary, with a missing one */
    body_of("Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: text/plain\n\nunterminated", &b);
    assert_non_null(b.text);
    assert_non_null(strstr(b.text, "unterminated"));
    mh_mime_body_clear(&b);
    body_of("Content-Type: multipart/mixed\n\n--x\n\nno boundary parameter\n", &b);
    mh_mime_body_clear(&b);
    body_of("Content-Type: multipart/mixed; boundary=y\n\nno boundary line at all\n", &b);
    mh_mime_body_clear(&b);
    /* bad transfer encodings */
    body_of("Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n!!!not*base64***\n", &b);
    mh_mime_body_clear(&b);
    body_of("Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\n=ZZ=4 =\n", &b);
    mh_mime_body_clear(&b);
    /* deep nesting */
    size_t cap = 200 * 80 + 256, n = 0;
    char *deep = malloc(cap);
    assert_non_null(deep);
    for (int i = 0; i < 200; i++)
        n += (size_t)snprintf(deep + n, cap - n, "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i,
                              i);
    n += (size_t)snprintf(deep + n, cap - n, "Content-Type: text/plain\n\ndeepest\n");
    assert_int_equal(mh_mime_parse_body(deep, n, &b), 0);
    mh_mime_body_clear(&b);
    free(deep);
    /* random bytes, with NULs */
    unsigned seed = 12345;
    char junk[8192];
    for (int round = 0; round < 50; round++) {
        for (size_t i = 0; i < sizeof junk; i++) {
            seed = seed * 1103515245u + 12345u;
            junk[i] = (char)(seed >> 16);
        }
        if (round % 2)
            memcpy(junk, "Content-Type: multipart/mixed; boundary=q\n\n--q\n", 48);
        assert_int_equal(mh_mime_parse_body(junk, sizeof junk, &b), 0);
        if (b.text != NULL) {
            json_t *j = json_stringn(b.text, b.text_len);
            assert_non_null(j);
            json_decref(j);
        }
        if (b.attachments != NULL) {
            json_t *j = json_loads(b.attachments, 0, NULL);
            assert_non_null(j);
            json_decref(j);
        }
        mh_mime_body_clear(&b);
    }
}

static void test_body_cap(void **state)
{
    (void)state;
    /* 2 MiB of three-byte characters: cut at 1 MiB on a character boundary */
    const char *head = "Content-Type: text/plain; charset=utf-8\n\n";
    size_t hl = strlen(head), body = 2u << 20;
    char *msg = malloc(hl + body + 1);
    assert_non_null(msg);
    memcpy(msg, head, hl);
    for (size_t i = 0; i + 3 <= body; i += 3)
        memcpy(msg + hl + i, "中", 3);
    size_t len = hl + body / 3 * 3;
    struct mh_mime_body b;
    assert_int_equal(mh_mime_parse_body(msg, len, &b), 0);
    assert_non_null(b.text);
    assert_true(b.text_len <= MH_MIME_BODY_TEXT_MAX);
    assert_true(b.text_len > MH_MIME_BODY_TEXT_MAX - 3);
    assert_int_equal(b.text_len % 3, 0);
    json_t *j = json_stringn(b.text, b.text_len);
    assert_non_null(j);
    json_decref(j);
    mh_mime_body_clear(&b);
    free(msg);
}

/* ------------------------------------------------------------ threads */

struct thread_arg {
    const char *msg, *msg2;
    int failures;
};

static void *parse_many(void *p)
{
    struct thread_arg *a = p;
    for (int i = 0; i < 200; i++) {
        struct mh_mime_headers h;
        if (mh_mime_parse(a->msg, strlen(a->msg), &h) != 0 || h.subject == NULL ||
            strcmp(h.subject, "会议通知：明天下午三点臺灣電腦") != 0 || h.from == NULL ||
            strcmp(h.from, "张伟 <zhang.wei@example.cn>") != 0 || h.date != 1732759200)
            a->failures++;
        mh_mime_headers_clear(&h);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    char *g = bword("GBK", GBK_NOTICE);
    char *b = bword("big5", BIG5_TAIWAN);
    char msg[1024];
    snprintf(msg, sizeof msg,
             "From: \"" GBK_ZHANGWEI "\" <zhang.wei@example.cn>\r\nSubject: %s\r\n  %s\r\n"
             "Date: Thu, 28 Nov 2024 10:00:00 +0800\r\n\r\nbody\r\n",
             g, b);
    free(g);
    free(b);

    enum { N = 4 };
    pthread_t th[N];
    struct thread_arg args[N];
    for (int i = 0; i < N; i++) {
        args[i].msg = msg;
        args[i].failures = 0;
        assert_int_equal(pthread_create(&th[i], NULL, parse_many, &args[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(args[i].failures, 0);
    }
}

/* The body parser from several threads at once: charsets (GMime's iconv cache), nesting, attachments. */
static void *parse_bodies(void *p)
{
    struct thread_arg *a = p;
    for (int i = 0; i < 100; i++) {
        struct mh_mime_body b;
        if (mh_mime_parse_body(a->msg, strlen(a->msg), &b) != 0 || b.text == NULL ||
            strstr(b.text, "plain words 季度报告") == NULL || strstr(b.text, "inner body text") == NULL ||
            b.attachments == NULL || strstr(b.attachments, "\"图片.png\"") == NULL)
            a->failures++;
        mh_mime_body_clear(&b);
        if (mh_mime_parse_body(a->msg2, strlen(a->msg2), &b) != 0 || b.text == NULL ||
            strcmp(b.text, "臺灣電腦\nこんにちは") != 0)
            a->failures++;
        mh_mime_body_clear(&b);
    }
    return NULL;
}

static void test_body_threads(void **state)
{
    (void)state;
    const char *two = "Content-Type: multipart/mixed; boundary=q\n\n--q\nContent-Type: text/plain; "
                      "charset=big5\n\n" BIG5_TAIWAN
                      "\n--q\nContent-Type: text/plain; charset=iso-2022-jp\n\n" JIS_KONNICHIWA "\n--q--\n";
    enum { N = 4 };
    pthread_t th[N];
    struct thread_arg args[N];
    for (int i = 0; i < N; i++) {
        args[i].msg = nested_msg;
        args[i].msg2 = two;
        args[i].failures = 0;
        assert_int_equal(pthread_create(&th[i], NULL, parse_bodies, &args[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(args[i].failures, 0);
    }
}

static int group_setup(void **state)
{
    (void)state;
    mh_mime_init();
    mh_mime_init(); /* idempotent */
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subject_chinese),
        cmocka_unit_test(test_subject_japanese_utf8),
        cmocka_unit_test(test_subject_mixed_words),
        cmocka_unit_test(test_from_to_cc),
        cmocka_unit_test(test_address_forms),
        cmocka_unit_test(test_long_address_list),
        cmocka_unit_test(test_header_block_scan),
        cmocka_unit_test(test_raw_8bit),
        cmocka_unit_test(test_folding_and_whitespace),
        cmocka_unit_test(test_missing_headers),
        cmocka_unit_test(test_message_id),
        cmocka_unit_test(test_date),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_huge_header_line),
        cmocka_unit_test(test_length_cap_utf8),
        cmocka_unit_test(test_body_ignored),
        cmocka_unit_test(test_body_charsets),
        cmocka_unit_test(test_body_html),
        cmocka_unit_test(test_body_nested),
        cmocka_unit_test(test_body_garbage),
        cmocka_unit_test(test_body_cap),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_body_threads),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}

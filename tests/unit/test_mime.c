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

/* ------------------------------------------------------------ threads */

struct thread_arg {
    const char *msg;
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
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}

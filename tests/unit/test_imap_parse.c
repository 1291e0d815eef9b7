/*
 * The IMAP response parser (plugins/imap/imap_parse.c): responses split at
 * every byte boundary, literals ({n} and {n+}) that tell the truth and ones
 * that lie, the size limits, BYE, garbage, FETCH/LIST/STATUS/SELECT data,
 * VANISHED sets, dates and modified UTF-7.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "imap_parse.h"

/* What the callback saw, flattened to text so that splits can be compared. */
struct rec {
    char log[65536];
    size_t len;
    int count;
    int stop_after; /* 0: never */
};

static void logf_(struct rec *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(r->log + r->len, sizeof r->log - r->len, fmt, ap);
    va_end(ap);
    if (n > 0 && r->len + (size_t)n < sizeof r->log)
        r->len += (size_t)n;
}

static void dump_val(struct rec *r, const struct imap_val *v)
{
    for (; v != NULL; v = v->next) {
        switch (v->type) {
        case IMAP_ATOM:
            logf_(r, "A<%s>", v->s);
            break;
        case IMAP_STRING:
            logf_(r, "S%s<%zu:", v->literal ? "L" : "", v->len);
            for (size_t i = 0; i < v->len && i < 64; i++)
                logf_(r, "%c", v->s[i] >= 0x20 && v->s[i] < 0x7f ? v->s[i] : '.');
            logf_(r, ">");
            break;
        case IMAP_NIL:
            logf_(r, "NIL");
            break;
        case IMAP_LIST:
            logf_(r, "(");
            dump_val(r, v->child);
            logf_(r, ")");
            break;
        }
        logf_(r, " ");
    }
}

static int rec_cb(void *arg, const struct imap_resp *resp)
{
    struct rec *r = arg;
    r->count++;
    logf_(r, "[k%d t=%s st=%d w=%s n=%u/%d code=%s text=%s args=", resp->kind, resp->tag ? resp->tag : "-",
          resp->status, resp->word ? resp->word : "-", resp->num, resp->has_num,
          resp->code ? resp->code : "-", resp->text ? resp->text : "-");
    dump_val(r, resp->args);
    logf_(r, " cargs=");
    dump_val(r, resp->code_args);
    struct imap_fetch f;
    if (imap_fetch_get(resp, &f) == 0)
        logf_(r, " FETCH uid=%u flags=%s size=%llu date=%lld ms=%llu body=%d/%zu", f.uid, f.flags,
              (unsigned long long)f.size, (long long)f.internal_date, (unsigned long long)f.modseq,
              f.has_body, f.body_len);
    logf_(r, "]\n");
    return r->stop_after > 0 && r->count >= r->stop_after ? 7 : 0;
}

static int parse_all(const char *data, size_t len, struct rec *r, uint64_t max_literal)
{
    struct imap_parser *p = imap_parser_new(max_literal, rec_cb, r);
    assert_non_null(p);
    int rc = imap_parser_feed(p, data, len);
    imap_parser_free(p);
    return rc;
}

static const char STREAM[] = "* OK [CAPABILITY IMAP4rev1 IDLE QRESYNC LITERAL+] ready\r\n"
                             "* 3 EXISTS\r\n"
                             "* OK [UIDVALIDITY 3857529045] UIDs valid\r\n"
                             "* OK [UIDNEXT 4392] Predicted next UID\r\n"
                             "* OK [HIGHESTMODSEQ 715194045007] Highest\r\n"
                             "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
                             "* 1 FETCH (UID 4390 FLAGS (\\Seen \\Recent) RFC822.SIZE 24 "
                             "INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" MODSEQ (12) BODY[] {24}\r\n"
                             "Subject: a\r\n\r\nbody {5}\r\n)\r\n"
                             "* 2 FETCH (UID 4391 BODY[] {3+}\r\nxyz FLAGS ())\r\n"
                             "* 3 FETCH (UID 4392 BODY[] \"quoted \\\"body\\\"\")\r\n"
                             "* VANISHED (EARLIER) 41,43:116,118\r\n"
                             "+ idling\r\n"
                             "A12 OK [READ-ONLY] EXAMINE completed\r\n";

/* The same stream, cut in two at every byte boundary, gives the same responses. */
static void test_split_every_boundary(void **state)
{
    (void)state;
    size_t len = sizeof STREAM - 1;
    struct rec *whole = calloc(1, sizeof *whole), *cut = calloc(1, sizeof *cut);
    assert_non_null(whole);
    assert_non_null(cut);
    assert_int_equal(parse_all(STREAM, len, whole, 0), 0);
    assert_int_equal(whole->count, 12);
    for (size_t i = 0; i <= len; i++) {
        memset(cut, 0, sizeof *cut);
        struct imap_parser *p = imap_parser_new(0, rec_cb, cut);
        assert_int_equal(imap_parser_feed(p, STREAM, i), 0);
        assert_int_equal(imap_parser_feed(p, STREAM + i, len - i), 0);
        imap_parser_free(p);
        assert_int_equal(cut->count, whole->count);
        assert_string_equal(cut->log, whole->log);
    }
    /* one byte at a time */
    memset(cut, 0, sizeof *cut);
    struct imap_parser *p = imap_parser_new(0, rec_cb, cut);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(imap_parser_feed(p, STREAM + i, 1), 0);
    imap_parser_free(p);
    assert_string_equal(cut->log, whole->log);
    free(whole);
    free(cut);
}

static int check_fetch_cb(void *arg, const struct imap_resp *r)
{
    int *n = arg;
    struct imap_fetch f;
    if (r->word == NULL || strcmp(r->word, "FETCH") != 0)
        return 0;
    assert_int_equal(imap_fetch_get(r, &f), 0);
    switch (++*n) {
    case 1:
        assert_int_equal(f.seq, 1);
        assert_int_equal(f.uid, 4390);
        assert_string_equal(f.flags, "\\Seen \\Recent");
        assert_int_equal(f.size, 24);
        assert_int_equal(f.internal_date, 837596665); /* 1996-07-17 09:44:25 UTC */
        assert_int_equal(f.modseq, 12);
        assert_int_equal(f.has_body, 1);
        assert_int_equal(f.body_len, 24); /* ends in "{5}\r\n": literal bytes are never markers */
        assert_memory_equal(f.body, "Subject: a\r\n\r\nbody {5}\r\n", 24);
        break;
    case 2:
        assert_int_equal(f.uid, 4391);
        assert_int_equal(f.body_len, 3);
        assert_memory_equal(f.body, "xyz", 3);
        assert_int_equal(f.has_flags, 1);
        assert_string_equal(f.flags, "");
        break;
    case 3:
        assert_int_equal(f.uid, 4392);
        assert_string_equal(f.body, "quoted \"body\"");
        break;
    default:
        fail();
    }
    return 0;
}

static void test_fetch_items(void **state)
{
    (void)state;
    int n = 0;
    struct imap_parser *p = imap_parser_new(0, check_fetch_cb, &n);
    assert_int_equal(imap_parser_feed(p, STREAM, sizeof STREAM - 1), 0);
    imap_parser_free(p);
    assert_int_equal(n, 3);
}

static void test_tagged_and_codes(void **state)
{
    (void)state;
    struct rec *r = calloc(1, sizeof *r);
    assert_non_null(r);
    assert_int_equal(parse_all(STREAM, sizeof STREAM - 1, r, 0), 0);
    assert_non_null(strstr(r->log, "[k1 t=A12 st=1 w=OK n=0/0 code=READ-ONLY text=EXAMINE completed"));
    assert_non_null(strstr(r->log, "code=CAPABILITY text=ready args= cargs=A<IMAP4rev1> A<IDLE> A<QRESYNC>"));
    assert_non_null(strstr(r->log, "[k3 t=- st=0 w=- n=0/0 code=- text=idling"));
    assert_non_null(strstr(r->log, "w=EXISTS n=3/1"));
    assert_non_null(strstr(r->log, "w=VANISHED n=0/0 code=- text=- args=(A<EARLIER> ) A<41,43:116,118>"));
    free(r);
}

static int status_cb(void *arg, const struct imap_resp *r)
{
    struct imap_status_data *s = arg;
    imap_status_get(r, s);
    return 0;
}

static void test_select_status(void **state)
{
    (void)state;
    struct imap_status_data s;
    memset(&s, 0, sizeof s);
    struct imap_parser *p = imap_parser_new(0, status_cb, &s);
    assert_int_equal(imap_parser_feed(p, STREAM, sizeof STREAM - 1), 0);
    assert_int_equal(s.has_uidvalidity, 1);
    assert_int_equal(s.uidvalidity, 3857529045u);
    assert_int_equal(s.uidnext, 4392);
    assert_int_equal(s.highestmodseq, 715194045007ull);
    memset(&s, 0, sizeof s);
    const char st[] =
        "* STATUS \"Sent Items\" (MESSAGES 231 UIDNEXT 44292 UIDVALIDITY 7 HIGHESTMODSEQ 99)\r\n";
    assert_int_equal(imap_parser_feed(p, st, sizeof st - 1), 0);
    assert_int_equal(s.messages, 231);
    assert_int_equal(s.uidnext, 44292);
    assert_int_equal(s.uidvalidity, 7);
    assert_int_equal(s.highestmodseq, 99);
    assert_string_equal(s.raw_name, "Sent Items");
    imap_parser_free(p);
}

struct lists {
    int n;
    struct imap_list l[8];
    char names[8][64];
};

static int list_cb(void *arg, const struct imap_resp *r)
{
    struct lists *ls = arg;
    if (r->word == NULL || strcmp(r->word, "LIST") != 0)
        return 0;
    struct imap_list *l = &ls->l[ls->n];
    assert_int_equal(imap_list_get(r, l), 0);
    snprintf(ls->names[ls->n], sizeof ls->names[0], "%.*s", (int)l->raw_len, l->raw_name);
    l->raw_name = ls->names[ls->n];
    ls->n++;
    return 0;
}

static void test_list(void **state)
{
    (void)state;
    const char in[] = "* LIST (\\HasNoChildren) \"/\" INBOX\r\n"
                      "* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent Items\"\r\n"
                      "* LIST (\\Noselect \\HasChildren) \"/\" \"[Gmail]\"\r\n"
                      "* LIST (\\HasNoChildren) \".\" \"Entw&APw-rfe\"\r\n"
                      "* LIST () NIL {10}\r\nwith\"quote\r\n"
                      "* LIST (\\Trash \\HasNoChildren) \"/\" \"back\\\\slash\"\r\n"
                      "A1 OK LIST done\r\n";
    struct lists ls;
    memset(&ls, 0, sizeof ls);
    struct imap_parser *p = imap_parser_new(0, list_cb, &ls);
    assert_int_equal(imap_parser_feed(p, in, sizeof in - 1), 0);
    imap_parser_free(p);
    assert_int_equal(ls.n, 6);
    assert_string_equal(ls.l[0].raw_name, "INBOX");
    assert_int_equal(ls.l[0].delim, '/');
    assert_null(ls.l[0].special_use);
    assert_string_equal(ls.l[1].raw_name, "Sent Items");
    assert_string_equal(ls.l[1].special_use, "\\Sent");
    assert_int_equal(ls.l[2].noselect, 1);
    assert_int_equal(ls.l[3].delim, '.');
    assert_int_equal(ls.l[4].delim, 0);
    assert_string_equal(ls.l[4].raw_name, "with\"quote");
    assert_string_equal(ls.l[5].raw_name, "back\\slash");
    assert_string_equal(ls.l[5].special_use, "\\Trash");
}

static void test_bye_and_stop(void **state)
{
    (void)state;
    struct rec *r = calloc(1, sizeof *r);
    assert_non_null(r);
    const char in[] = "* BYE Server shutting down\r\n* 1 EXISTS\r\n";
    r->stop_after = 1;
    assert_int_equal(parse_all(in, sizeof in - 1, r, 0), 7); /* the callback's value */
    assert_int_equal(r->count, 1);
    assert_non_null(strstr(r->log, "st=4 w=BYE n=0/0 code=- text=Server shutting down"));
    free(r);
}

static void expect_error(const char *in, size_t len, uint64_t max_literal)
{
    struct rec *r = calloc(1, sizeof *r);
    assert_non_null(r);
    struct imap_parser *p = imap_parser_new(max_literal, rec_cb, r);
    assert_int_equal(imap_parser_feed(p, in, len), -1);
    assert_non_null(imap_parser_error(p));
    /* it stays failed until reset */
    assert_int_equal(imap_parser_feed(p, "* OK\r\n", 6), -1);
    imap_parser_reset(p);
    assert_null(imap_parser_error(p));
    int before = r->count;
    assert_int_equal(imap_parser_feed(p, "* OK fine\r\n", 11), 0);
    assert_int_equal(r->count, before + 1);
    imap_parser_free(p);
    free(r);
}

#define EXPECT_ERROR(s) expect_error((s), sizeof(s) - 1, 0)

static void test_lying_literal(void **state)
{
    (void)state;
    /* says 10, sends 3: the next response is swallowed and what is left does not parse */
    EXPECT_ERROR("* 1 FETCH (UID 5 BODY[] {10}\r\nabc)\r\n* 2 FETCH (UID 6 FLAGS ())\r\n");
    /* says 2, sends more: the rest of the "literal" is not a continuation */
    EXPECT_ERROR("* 1 FETCH (UID 5 BODY[] {2}\r\nabcdef)\r\n");
    /* a literal where none may be */
    EXPECT_ERROR("A1 {2}\r\nOK done\r\n");
    EXPECT_ERROR("* 1 FETCH (UID 1 BODY[] {3}\r\nabc {4}x)\r\n");
    /* announced size beyond the limit fails at once, before any byte of it */
    expect_error("* 1 FETCH (BODY[] {2000}\r\n", 26, 1000);
    expect_error("* 1 FETCH (BODY[] {99999999999999999999999}\r\n", 45, 0);
}

static void test_literal_grows_with_data(void **state)
{
    (void)state;
    /* announcing 200 MB costs nothing until the bytes arrive */
    struct rec *r = calloc(1, sizeof *r);
    assert_non_null(r);
    struct imap_parser *p = imap_parser_new(0, rec_cb, r);
    const char in[] = "* 1 FETCH (UID 1 BODY[] {200000000}\r\nonly a few bytes";
    assert_int_equal(imap_parser_feed(p, in, sizeof in - 1), 0);
    assert_true(imap_parser_pending(p) < 100000);
    assert_int_equal(r->count, 0);
    imap_parser_free(p);
    free(r);
}

static void test_long_line(void **state)
{
    (void)state;
    size_t n = (size_t)1 << 20;
    char *big = malloc(n + 16);
    assert_non_null(big);
    memcpy(big, "* OK ", 5);
    memset(big + 5, 'x', n);
    memcpy(big + 5 + n, "\r\n", 2);
    expect_error(big, n + 7, 0);
    /* fed in pieces too: the limit holds across reads, and memory stays bounded */
    struct rec *r = calloc(1, sizeof *r);
    struct imap_parser *p = imap_parser_new(0, rec_cb, r);
    int rc = 0;
    for (size_t off = 0; off < n + 7 && rc == 0; off += 4096)
        rc = imap_parser_feed(p, big + off, off + 4096 <= n + 7 ? 4096 : n + 7 - off);
    assert_int_equal(rc, -1);
    assert_true(imap_parser_pending(p) <= IMAP_MAX_LINE + 4096);
    imap_parser_free(p);
    free(r);
    /* just under the limit is fine */
    size_t ok = IMAP_MAX_LINE - 8;
    memset(big + 5, 'y', ok);
    memcpy(big + 5 + ok, "\r\n", 2);
    r = calloc(1, sizeof *r);
    assert_int_equal(parse_all(big, ok + 7, r, 0), 0);
    assert_int_equal(r->count, 1);
    free(r);
    free(big);
}

static void test_garbage(void **state)
{
    (void)state;
    EXPECT_ERROR("\r\n");
    EXPECT_ERROR("A1 FOO bar\r\n");
    EXPECT_ERROR("*\r\n");
    EXPECT_ERROR("* 1 FETCH (UID 1\r\n");
    EXPECT_ERROR("* 1 FETCH UID 1)\r\n");
    EXPECT_ERROR("* 1 FETCH (\"unterminated)\r\n");
    EXPECT_ERROR("* 1 FETCH (BODY[HEADER\r\n");
    EXPECT_ERROR("* 99999999999 EXISTS\r\n");
    EXPECT_ERROR("* X (a\0b)\r\n");
    EXPECT_ERROR("A\"1 OK x\r\n");
    char deep[200];
    size_t o = 0;
    o += (size_t)snprintf(deep, sizeof deep, "* X ");
    for (int i = 0; i < IMAP_MAX_DEPTH + 2; i++)
        deep[o++] = '(';
    for (int i = 0; i < IMAP_MAX_DEPTH + 2; i++)
        deep[o++] = ')';
    deep[o++] = '\r';
    deep[o++] = '\n';
    expect_error(deep, o, 0);
    /* random bytes: any result but a crash (ASan/UBSan builds run this too) */
    unsigned seed = 12345;
    char buf[4096];
    for (int round = 0; round < 500; round++) {
        size_t len = 1 + (seed % sizeof buf);
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            unsigned v = (seed >> 16) & 0xff;
            static const char alphabet[] = "* ()[]{}\"\\\r\n0123456789+ABCDEFUIDBODYFETCH";
            buf[i] = (v & 1) ? (char)v : alphabet[v % (sizeof alphabet - 1)];
        }
        struct rec *r = calloc(1, sizeof *r);
        (void)parse_all(buf, len, r, 4096);
        free(r);
    }
    /* odd but harmless: a response code that does not tokenise is kept as text */
    struct rec *r = calloc(1, sizeof *r);
    assert_int_equal(parse_all("* OK [ALERT \"unterminated] careful\r\n", 36, r, 0), 0);
    assert_non_null(strstr(r->log, "code=ALERT text=careful"));
    free(r);
}

static void test_sections(void **state)
{
    (void)state;
    struct rec *r = calloc(1, sizeof *r);
    const char in[] = "* 4 FETCH (UID 9 BODY[HEADER.FIELDS (FROM TO)]<0> {5}\r\nFrom:)\r\n";
    assert_int_equal(parse_all(in, sizeof in - 1, r, 0), 0);
    assert_non_null(strstr(r->log, "A<BODY[HEADER.FIELDS (FROM TO)]<0>> SL<5:From:>"));
    /* BODY[] only counts as the body when it is exactly that section */
    assert_non_null(strstr(r->log, "body=0/0"));
    free(r);
}

static int collect_range(void *arg, uint32_t lo, uint32_t hi)
{
    char *out = arg;
    size_t n = strlen(out);
    snprintf(out + n, 256 - n, "%u-%u;", lo, hi);
    return 0;
}

static void test_seqset(void **state)
{
    (void)state;
    char out[256] = "";
    assert_int_equal(imap_seqset_each("41,43:116,118,9:7,5:*", 21, collect_range, out), 0);
    assert_string_equal(out, "41-41;43-116;118-118;7-9;5-4294967295;");
    assert_int_equal(imap_seqset_each("1,,2", 4, collect_range, out), -1);
    assert_int_equal(imap_seqset_each("0", 1, collect_range, out), -1);
    assert_int_equal(imap_seqset_each("1:", 2, collect_range, out), -1);
    assert_int_equal(imap_seqset_each("1,", 2, collect_range, out), -1);
    assert_int_equal(imap_seqset_each("99999999999", 11, collect_range, out), -1);
    assert_int_equal(imap_seqset_each("", 0, collect_range, out), -1);
}

static void test_datetime(void **state)
{
    (void)state;
    const char *a = "17-Jul-1996 02:44:25 -0700";
    assert_int_equal(imap_parse_datetime(a, strlen(a)), 837596665);
    const char *b = " 1-Jan-2024 00:00:00 +0000";
    assert_int_equal(imap_parse_datetime(b, strlen(b)), 1704067200);
    const char *c = "29-Feb-2024 23:59:59 +0800";
    assert_int_equal(imap_parse_datetime(c, strlen(c)), 1709222399);
    const char *bad[] = {"",
                         "32-Jan-2024 00:00:00 +0000",
                         "1-Foo-2024 00:00:00 +0000",
                         "1-Jan-2024 00:00:00",
                         "1-Jan-2024 25:00:00 +0000",
                         "1-Jan-24 00:00:00 +0000"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(imap_parse_datetime(bad[i], strlen(bad[i])), -1);
}

static void check_mutf7(const char *enc, const char *utf8)
{
    char out[256];
    long n = imap_mutf7_decode(enc, strlen(enc), out, sizeof out);
    assert_int_equal(n, (long)strlen(utf8));
    assert_string_equal(out, utf8);
    n = imap_mutf7_encode(utf8, strlen(utf8), out, sizeof out);
    assert_int_equal(n, (long)strlen(enc));
    assert_string_equal(out, enc);
}

static void test_mutf7(void **state)
{
    (void)state;
    check_mutf7("INBOX", "INBOX");
    check_mutf7("Entw&APw-rfe", "Entw\xc3\xbc"
                                "rfe");                                /* Entwürfe */
    check_mutf7("&XfJT0ZAB-", "\xe5\xb7\xb2\xe5\x8f\x91\xe9\x80\x81"); /* 已发送 */
    check_mutf7("&ZeVnLIqe-", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"); /* 日本語 */
    check_mutf7("Tom &- Jerry", "Tom & Jerry");
    check_mutf7("&2D3eAA-", "\xf0\x9f\x98\x80"); /* U+1F600, a surrogate pair */
    check_mutf7("~peter/mail/&U,BTFw-/&ZeVnLIqe-",
                "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e");
    char out[64];
    const char *bad[] = {"&",      "&Jjo",  "&Jjo!-",    "&2D0-",     "&3gA-", /* lone surrogates */
                         "a\x80z", "&AAA-", "&ZeVnLIqe", "tab\there", "&2D3eAA"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(imap_mutf7_decode(bad[i], strlen(bad[i]), out, sizeof out), -1);
    /* too small an output buffer is an error, not an overflow */
    assert_int_equal(imap_mutf7_decode("&XfJT0ZAB-", 10, out, 5), -1);
    assert_int_equal(imap_mutf7_encode("\xff", 1, out, sizeof out), -1);
    assert_int_equal(imap_mutf7_encode("a\xe5\xb7", 3, out, sizeof out), -1); /* cut UTF-8 */
}

static void test_quote(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(imap_quote("a \"b\" \\c", 8, out, sizeof out), 13);
    assert_string_equal(out, "\"a \\\"b\\\" \\\\c\"");
    assert_int_equal(imap_quote("a\r\nb", 4, out, sizeof out), -1);
    assert_int_equal(imap_quote("abcdef", 6, out, 6), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_every_boundary),
        cmocka_unit_test(test_fetch_items),
        cmocka_unit_test(test_tagged_and_codes),
        cmocka_unit_test(test_select_status),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_bye_and_stop),
        cmocka_unit_test(test_lying_literal),
        cmocka_unit_test(test_literal_grows_with_data),
        cmocka_unit_test(test_long_line),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_sections),
        cmocka_unit_test(test_seqset),
        cmocka_unit_test(test_datetime),
        cmocka_unit_test(test_mutf7),
        cmocka_unit_test(test_quote),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

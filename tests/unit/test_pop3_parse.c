/*
 * The POP3 response parser (plugins/pop3/pop3_parse.c): status lines,
 * listings, messages with dot-stuffing, CRLF and bare LF, pipelined answers
 * cut at every byte boundary, and servers that lie or send garbage.
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

#include "pop3_parse.h"

/* Everything the callbacks saw, as one text: "S<kind><ok>:text|", "L:line|", data bytes, "D<kind><ok>|". */
struct rec {
    struct pop3_parser *p;
    char *log;
    size_t len, cap;
    int abort_at_done; /* return nonzero from the nth done (1-based); 0: never */
    int dones;
    uint64_t data_bytes;
    size_t max_data_call;
};

static void rec_add(struct rec *r, const char *s, size_t n)
{
    if (r->len + n + 1 > r->cap) {
        r->cap = (r->len + n + 1) * 2;
        r->log = realloc(r->log, r->cap);
        assert_non_null(r->log);
    }
    memcpy(r->log + r->len, s, n);
    r->len += n;
    r->log[r->len] = '\0';
}

static void rec_addf(struct rec *r, const char *fmt, ...)
{
    char buf[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    rec_add(r, buf, (size_t)n);
}

static int on_status(void *arg, enum pop3_kind kind, int ok, const char *text, size_t len)
{
    struct rec *r = arg;
    assert_int_equal(text[len], '\0');
    rec_addf(r, "S%d%d:", (int)kind, ok);
    rec_add(r, text, len);
    rec_add(r, "|", 1);
    return 0;
}

static int on_line(void *arg, const char *line, size_t len)
{
    struct rec *r = arg;
    assert_int_equal(line[len], '\0');
    rec_add(r, "L:", 2);
    rec_add(r, line, len);
    rec_add(r, "|", 1);
    return 0;
}

static int on_data(void *arg, const char *d, size_t len)
{
    struct rec *r = arg;
    assert_true(len > 0);
    rec_add(r, d, len);
    r->data_bytes += len;
    if (len > r->max_data_call)
        r->max_data_call = len;
    return 0;
}

static int on_done(void *arg, enum pop3_kind kind, int ok)
{
    struct rec *r = arg;
    rec_addf(r, "D%d%d|", (int)kind, ok);
    r->dones++;
    return r->abort_at_done > 0 && r->dones == r->abort_at_done;
}

static const struct pop3_callbacks cbs = {on_status, on_line, on_data, on_done};

static void rec_init(struct rec *r, const enum pop3_kind *kinds, size_t n)
{
    memset(r, 0, sizeof *r);
    r->p = pop3_parser_new(&cbs, r);
    assert_non_null(r->p);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(pop3_parser_expect(r->p, kinds[i]), 0);
}

static void rec_free(struct rec *r)
{
    pop3_parser_free(&r->p);
    assert_null(r->p);
    free(r->log);
}

/* Parse `in` in one call; returns the result. */
static int parse_all(struct rec *r, const enum pop3_kind *kinds, size_t nk, const char *in, size_t n)
{
    rec_init(r, kinds, nk);
    return pop3_parser_feed(r->p, in, n);
}

#define KINDS(...)                                                                                           \
    ((const enum pop3_kind[]){__VA_ARGS__}),                                                                 \
        (sizeof((const enum pop3_kind[]){__VA_ARGS__}) / sizeof(enum pop3_kind))

/* ------------------------------------------------------------ basics */

static void test_single(void **st)
{
    (void)st;
    struct rec r;
    const char in[] = "+OK maildrop locked and ready\r\n-ERR no such message\r\n+OK\r\n";
    assert_int_equal(parse_all(&r, KINDS(POP3_SINGLE, POP3_SINGLE, POP3_SINGLE), in, strlen(in)), POP3_OK);
    assert_string_equal(r.log, "S01:maildrop locked and ready|D01|S00:no such message|D00|S01:|D01|");
    assert_int_equal(pop3_parser_pending(r.p), 0);
    assert_null(pop3_parser_error(r.p));
    rec_free(&r);
}

static void test_capa_listing(void **st)
{
    (void)st;
    struct rec r;
    const char in[] = "+OK Capability list follows\r\nTOP\r\nUIDL\r\nPIPELINING\r\nSASL PLAIN\r\n.\r\n";
    assert_int_equal(parse_all(&r, KINDS(POP3_LINES), in, strlen(in)), POP3_OK);
    assert_string_equal(r.log, "S11:Capability list follows|L:TOP|L:UIDL|L:PIPELINING|L:SASL PLAIN|D11|");
    assert_true(pop3_capa_is("PIPELINING", 10, "PIPELINING"));
    assert_true(pop3_capa_is("pipelining", 10, "PIPELINING"));
    assert_true(pop3_capa_is("SASL PLAIN", 10, "sasl"));
    assert_false(pop3_capa_is("PIPELININGX", 11, "PIPELINING"));
    assert_false(pop3_capa_is("PIPE", 4, "PIPELINING"));
    rec_free(&r);
}

static void test_err_has_no_body(void **st)
{
    (void)st;
    struct rec r;
    /* A -ERR to a multi-line command ends it: the next line is the next answer. */
    const char in[] = "-ERR unknown command\r\n+OK\r\n1 a\r\n.\r\n";
    assert_int_equal(parse_all(&r, KINDS(POP3_LINES, POP3_LINES), in, strlen(in)), POP3_OK);
    assert_string_equal(r.log, "S10:unknown command|D10|S11:|L:1 a|D11|");
    rec_free(&r);
}

static void test_dot_stuffing(void **st)
{
    (void)st;
    struct rec r;
    const char in[] = "+OK 99 octets\r\n"
                      "Subject: dots\r\n"
                      "\r\n"
                      "..\r\n"       /* a line holding one dot */
                      "...three\r\n" /* "..three" */
                      ".x\r\n"       /* not stuffed by the server: the dot still goes */
                      "a.b.\r\n"     /* dots elsewhere stay */
                      " .\r\n"
                      ".\r\n"
                      "+OK\r\n"
                      "..odd\r\n" /* listings are unstuffed too */
                      ".\r\n";
    assert_int_equal(parse_all(&r, KINDS(POP3_DATA, POP3_LINES), in, strlen(in)), POP3_OK);
    assert_string_equal(r.log, "S21:99 octets|Subject: dots\r\n\r\n.\r\n..three\r\nx\r\na.b.\r\n .\r\nD21|"
                               "S11:|L:.odd|D11|");
    rec_free(&r);
}

static void test_line_ends(void **st)
{
    (void)st;
    struct rec r;
    /* Bare LF everywhere; message data keeps line ends as sent, a lone CR is data. */
    const char in[] = "+OK\n1 abc\n2 def\r\n.\n+OK\nA: b\r\nbare\nmixed\rcr\r\n.\n";
    assert_int_equal(parse_all(&r, KINDS(POP3_LINES, POP3_DATA), in, strlen(in)), POP3_OK);
    assert_string_equal(r.log, "S11:|L:1 abc|L:2 def|D11|S21:|A: b\r\nbare\nmixed\rcr\r\nD21|");
    rec_free(&r);
}

static void test_dot_cr_edge(void **st)
{
    (void)st;
    struct rec r;
    /* ".\r" not followed by LF is a stuffed line that begins with CR. */
    const char in[] = "+OK\r\n.\rx\r\n.\r\n+OK\r\n.\rq\r\n.\r\n";
    assert_int_equal(parse_all(&r, KINDS(POP3_DATA, POP3_LINES), in, strlen(in)), POP3_OK);
    assert_string_equal(r.log, "S21:|\rx\r\nD21|S11:|L:\rq|D11|");
    rec_free(&r);
}

static void test_empty_bodies(void **st)
{
    (void)st;
    struct rec r;
    const char in[] = "+OK 0 messages\r\n.\r\n+OK\r\n.\r\n+OK\r\n\r\n.\r\n";
    assert_int_equal(parse_all(&r, KINDS(POP3_LINES, POP3_DATA, POP3_LINES), in, strlen(in)), POP3_OK);
    assert_string_equal(r.log, "S11:0 messages|D11|S21:|D21|S11:|L:|D11|");
    rec_free(&r);
}

static void test_case_and_blanks(void **st)
{
    (void)st;
    struct rec r;
    const char in[] = "+ok\tfine\r\n-err   bad\r\n";
    assert_int_equal(parse_all(&r, KINDS(POP3_SINGLE, POP3_SINGLE), in, strlen(in)), POP3_OK);
    assert_string_equal(r.log, "S01:fine|D01|S00:bad|D00|");
    rec_free(&r);
}

/* ------------------------------------------------------------ every split */

static const char session[] =
    "+OK Capability list follows\r\nTOP\r\nUIDL\r\nPIPELINING\r\n.\r\n"
    "+OK\r\n1 000000015f2a1b3c\r\n2 000000025f2a1b3c\r\n3 x\r\n.\r\n"
    "+OK 3 messages\r\n1 120\r\n2 95\r\n3 7\r\n.\r\n"
    "+OK 120 octets\r\nFrom: a@example.com\r\nSubject: hi\r\n\r\n..dot-stuffed\r\nbody\r\n.\r\n"
    "+OK\r\nSubject: two\n\n..\n.\n"
    "-ERR no such message\r\n"
    "+OK\r\n.\r\n"
    "+OK message 1 deleted\r\n"
    "+OK bye\r\n";

static const enum pop3_kind session_kinds[] = {POP3_LINES, POP3_LINES, POP3_LINES,  POP3_DATA,  POP3_DATA,
                                               POP3_DATA,  POP3_DATA,  POP3_SINGLE, POP3_SINGLE};

static void test_every_split(void **st)
{
    (void)st;
    size_t nk = sizeof session_kinds / sizeof session_kinds[0], n = strlen(session);
    struct rec whole;
    assert_int_equal(parse_all(&whole, session_kinds, nk, session, n), POP3_OK);
    assert_int_equal(whole.dones, (int)nk);
    assert_non_null(strstr(whole.log,
                           "S21:120 octets|From: a@example.com\r\nSubject: hi\r\n\r\n.dot-stuffed\r\n"
                           "body\r\nD21|"));
    assert_non_null(strstr(whole.log, "S21:|Subject: two\n\n.\nD21|S20:no such message|D20|S21:|D21|"));

    /* Two pieces, cut at every byte. */
    for (size_t cut = 0; cut <= n; cut++) {
        struct rec r;
        rec_init(&r, session_kinds, nk);
        assert_int_equal(pop3_parser_feed(r.p, session, cut), POP3_OK);
        assert_int_equal(pop3_parser_feed(r.p, session + cut, n - cut), POP3_OK);
        assert_string_equal(r.log, whole.log);
        assert_int_equal(pop3_parser_pending(r.p), 0);
        rec_free(&r);
    }
    /* Three pieces, every pair of cuts. */
    for (size_t a = 0; a <= n; a += 3) {
        for (size_t b = a; b <= n; b += 5) {
            struct rec r;
            rec_init(&r, session_kinds, nk);
            assert_int_equal(pop3_parser_feed(r.p, session, a), POP3_OK);
            assert_int_equal(pop3_parser_feed(r.p, session + a, b - a), POP3_OK);
            assert_int_equal(pop3_parser_feed(r.p, session + b, n - b), POP3_OK);
            assert_string_equal(r.log, whole.log);
            rec_free(&r);
        }
    }
    /* One byte at a time, each in its own exact-size buffer. */
    struct rec r;
    rec_init(&r, session_kinds, nk);
    for (size_t i = 0; i < n; i++) {
        char *one = malloc(1);
        assert_non_null(one);
        *one = session[i];
        assert_int_equal(pop3_parser_feed(r.p, one, 1), POP3_OK);
        free(one);
    }
    assert_string_equal(r.log, whole.log);
    rec_free(&r);
    rec_free(&whole);
}

/* Expecting answers as they come (the provider's pipelining): pending goes down, then back up. */
static void test_expect_during_callbacks(void **st)
{
    (void)st;
    struct rec r;
    rec_init(&r, KINDS(POP3_SINGLE));
    assert_int_equal(pop3_parser_pending(r.p), 1);
    assert_int_equal(pop3_parser_feed(r.p, "+OK a\r\n+O", 9), POP3_EPROTO); /* nobody asked for the second */
    assert_non_null(strstr(pop3_parser_error(r.p), "no command asked for"));
    rec_free(&r);

    rec_init(&r, KINDS(POP3_SINGLE));
    assert_int_equal(pop3_parser_feed(r.p, "+OK a\r\n", 7), POP3_OK);
    assert_int_equal(pop3_parser_pending(r.p), 0);
    assert_int_equal(pop3_parser_expect(r.p, POP3_DATA), 0);
    assert_int_equal(pop3_parser_feed(r.p, "+OK\r\nx\r\n.\r\n", 11), POP3_OK);
    assert_string_equal(r.log, "S01:a|D01|S21:|x\r\nD21|");
    rec_free(&r);
}

/* ------------------------------------------------------------ garbage and lies */

static void test_garbage_status(void **st)
{
    (void)st;
    static const char *const bad[] = {
        "HTTP/1.1 200 OK\r\n", "* OK IMAP4rev1 ready\r\n", "\r\n",   "+OKAY\r\n",
        "-ERROR\r\n",          "+ continue\r\n",           "OK\r\n", "\x00+OK\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct rec r;
        size_t n = i == 7 ? 6 : strlen(bad[i]);
        assert_int_equal(parse_all(&r, KINDS(POP3_SINGLE), bad[i], n), POP3_EPROTO);
        const char *e = pop3_parser_error(r.p);
        assert_non_null(e);
        assert_non_null(strstr(e, "expected +OK or -ERR"));
        for (const char *c = e; *c; c++)
            assert_true(*c >= 0x20 && *c < 0x7f);
        assert_int_equal(r.len, 0);
        /* a failed parser stays failed */
        assert_int_equal(pop3_parser_feed(r.p, "+OK\r\n", 5), POP3_EPROTO);
        assert_int_equal(r.len, 0);
        rec_free(&r);
    }
}

static void test_unsolicited(void **st)
{
    (void)st;
    struct rec r;
    assert_int_equal(parse_all(&r, NULL, 0, "+OK hello\r\n", 11), POP3_EPROTO);
    assert_non_null(strstr(pop3_parser_error(r.p), "no command asked for: \"+OK hello??\""));
    rec_free(&r);
}

static void test_long_lines(void **st)
{
    (void)st;
    size_t n = POP3_LINE_MAX + 64;
    char *in = malloc(n + 16);
    assert_non_null(in);

    /* A status line over the limit, even with no line end in sight. */
    memcpy(in, "+OK ", 4);
    memset(in + 4, 'x', n - 4);
    struct rec r;
    rec_init(&r, KINDS(POP3_SINGLE));
    int rc = POP3_OK;
    for (size_t i = 0; i < n && rc == POP3_OK; i += 100)
        rc = pop3_parser_feed(r.p, in + i, n - i < 100 ? n - i : 100);
    assert_int_equal(rc, POP3_EPROTO);
    assert_non_null(strstr(pop3_parser_error(r.p), "status line is longer than 8192"));
    rec_free(&r);

    /* Exactly at the limit is fine. */
    memcpy(in, "+OK ", 4);
    memset(in + 4, 'x', POP3_LINE_MAX - 4);
    memcpy(in + POP3_LINE_MAX, "\r\n", 2);
    assert_int_equal(parse_all(&r, KINDS(POP3_SINGLE), in, POP3_LINE_MAX + 2), POP3_OK);
    assert_int_equal(r.dones, 1);
    rec_free(&r);

    /* A listing line over the limit. */
    memcpy(in, "+OK\r\n1 ", 7);
    memset(in + 7, 'y', n - 7);
    assert_int_equal(parse_all(&r, KINDS(POP3_LINES), in, n), POP3_EPROTO);
    assert_non_null(strstr(pop3_parser_error(r.p), "listing line is longer than 8192"));
    rec_free(&r);
    free(in);
}

/* A message of 64 MB on one line goes through without the parser holding it. */
static void test_huge_message_streamed(void **st)
{
    (void)st;
    enum { CHUNK = 1 << 16, N = 1024 };
    char *chunk = malloc(CHUNK);
    assert_non_null(chunk);
    memset(chunk, 'q', CHUNK);
    struct pop3_callbacks counting = {NULL, NULL, on_data, on_done};
    struct rec r;
    memset(&r, 0, sizeof r);
    r.p = pop3_parser_new(&counting, &r);
    assert_non_null(r.p);
    assert_int_equal(pop3_parser_expect(r.p, POP3_DATA), 0);
    assert_int_equal(pop3_parser_feed(r.p, "+OK\r\n", 5), POP3_OK);
    for (int i = 0; i < N; i++)
        assert_int_equal(pop3_parser_feed(r.p, chunk, CHUNK), POP3_OK);
    assert_int_equal(pop3_parser_feed(r.p, "\r\n.\r\n", 5), POP3_OK);
    assert_int_equal(r.data_bytes, (uint64_t)CHUNK * N + 2);
    assert_int_equal(pop3_parser_body_bytes(r.p), (uint64_t)CHUNK * N + 2);
    assert_true(r.max_data_call <= CHUNK); /* given straight from the input, never gathered */
    assert_int_equal(r.dones, 1);
    pop3_parser_free(&r.p);
    free(r.log);
    free(chunk);
}

static void test_truncated_is_pending(void **st)
{
    (void)st;
    struct rec r;
    const char in[] = "+OK\r\nSubject: cut\r\n\r\nno end";
    assert_int_equal(parse_all(&r, KINDS(POP3_DATA), in, strlen(in)), POP3_OK);
    assert_int_equal(r.dones, 0);
    assert_int_equal(pop3_parser_pending(r.p), 1); /* the caller's timeout handles a server that stops */
    rec_free(&r);
}

static void test_callback_abort(void **st)
{
    (void)st;
    struct rec r;
    rec_init(&r, KINDS(POP3_SINGLE, POP3_SINGLE));
    r.abort_at_done = 1;
    assert_int_equal(pop3_parser_feed(r.p, "+OK 1\r\n+OK 2\r\n", 14), POP3_ABORT);
    assert_string_equal(r.log, "S01:1|D01|");
    rec_free(&r);
}

static void test_expect_limits(void **st)
{
    (void)st;
    struct rec r;
    rec_init(&r, NULL, 0);
    for (int i = 0; i < POP3_PIPE_MAX; i++)
        assert_int_equal(pop3_parser_expect(r.p, POP3_SINGLE), 0);
    assert_int_equal(pop3_parser_expect(r.p, POP3_SINGLE), -1);
    assert_int_equal(pop3_parser_pending(r.p), POP3_PIPE_MAX);
    rec_free(&r);
    rec_init(&r, NULL, 0);
    assert_int_equal(pop3_parser_expect(r.p, (enum pop3_kind)7), -1);
    rec_free(&r);
    pop3_parser_free(NULL);
}

/* ------------------------------------------------------------ helpers */

static void test_uidl_lines(void **st)
{
    (void)st;
    uint32_t num;
    const char *uid;
    size_t ul;
    const char ok1[] = "1 000000015f2a1b3c";
    assert_true(pop3_parse_uidl(ok1, strlen(ok1), &num, &uid, &ul));
    assert_int_equal(num, 1);
    assert_int_equal(ul, 16);
    assert_memory_equal(uid, "000000015f2a1b3c", 16);
    const char ok2[] = "4294967295\t<abc@x>  ";
    assert_true(pop3_parse_uidl(ok2, strlen(ok2), &num, &uid, &ul));
    assert_int_equal(num, 4294967295u);
    assert_int_equal(ul, 7);
    assert_memory_equal(uid, "<abc@x>", 7);

    char longest[8 + POP3_UIDL_MAX + 1], toolong[8 + POP3_UIDL_MAX + 2];
    snprintf(longest, sizeof longest, "7 %0*d", POP3_UIDL_MAX, 0);
    snprintf(toolong, sizeof toolong, "7 %0*d", POP3_UIDL_MAX + 1, 0);
    assert_true(pop3_parse_uidl(longest, strlen(longest), &num, &uid, &ul));
    assert_int_equal(ul, POP3_UIDL_MAX);
    assert_false(pop3_parse_uidl(toolong, strlen(toolong), &num, &uid, &ul));

    static const char *const bad[] = {
        "",      "1",       "1 ",      "0 abc",        "x abc", "-1 abc",
        "1 a b", "1 a\x01", "1\x01 a", "4294967296 a", "1abc",  "99999999999999999999999 a",
        "1 \x7f"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(pop3_parse_uidl(bad[i], strlen(bad[i]), &num, &uid, &ul));
    /* a NUL inside the unique-id is not accepted either */
    assert_false(pop3_parse_uidl("1 a\0b", 5, &num, &uid, &ul));
}

static void test_list_lines(void **st)
{
    (void)st;
    uint32_t num;
    uint64_t size;
    assert_true(pop3_parse_list("1 120", 5, &num, &size));
    assert_int_equal(num, 1);
    assert_int_equal(size, 120);
    assert_true(pop3_parse_list("3 0 extra info", 14, &num, &size));
    assert_int_equal(num, 3);
    assert_int_equal(size, 0);
    assert_true(pop3_parse_list("2 9223372036854775807", 21, &num, &size));
    assert_int_equal(size, 9223372036854775807ull);
    static const char *const bad[] = {"",      "1",   "1 -5", "0 10", "1 10x", "1 9223372036854775808",
                                      "1 abc", "x 1", "1  ",  " "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(pop3_parse_list(bad[i], strlen(bad[i]), &num, &size));
}

static void test_printable(void **st)
{
    (void)st;
    char out[12];
    assert_string_equal(pop3_printable("ab\r\n\x01\xff", 6, out, sizeof out), "ab????");
    assert_string_equal(pop3_printable("0123456789abcdef", 16, out, sizeof out), "01234567...");
    assert_string_equal(pop3_printable("", 0, out, sizeof out), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single),
        cmocka_unit_test(test_capa_listing),
        cmocka_unit_test(test_err_has_no_body),
        cmocka_unit_test(test_dot_stuffing),
        cmocka_unit_test(test_line_ends),
        cmocka_unit_test(test_dot_cr_edge),
        cmocka_unit_test(test_empty_bodies),
        cmocka_unit_test(test_case_and_blanks),
        cmocka_unit_test(test_every_split),
        cmocka_unit_test(test_expect_during_callbacks),
        cmocka_unit_test(test_garbage_status),
        cmocka_unit_test(test_unsolicited),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_huge_message_streamed),
        cmocka_unit_test(test_truncated_is_pending),
        cmocka_unit_test(test_callback_abort),
        cmocka_unit_test(test_expect_limits),
        cmocka_unit_test(test_uidl_lines),
        cmocka_unit_test(test_list_lines),
        cmocka_unit_test(test_printable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * libFuzzer target for the POP3 response parser (plugins/pop3/pop3_parse.c):
 * arbitrary bytes as a server's answers to a pipeline of commands.
 *
 * Input: byte 0 seeds how the rest is cut into reads; bytes 1..4 say which
 * kind of response each command expects (2 bits each, cycled); the rest is
 * what the server sent.  The same bytes are parsed twice, whole and cut into
 * pieces of pseudo-random sizes (1 byte up to 4 KB): both runs must produce
 * the same callbacks (message data compared as one byte stream) and the same
 * result, and every promise of pop3_parse.h must hold (NUL-terminated lines of
 * at most POP3_LINE_MAX bytes, body counts that match, no callback after an
 * error).  Every listing line and status text also goes through the UIDL,
 * LIST and CAPA helpers.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pop3_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
    struct pop3_parser *p;
    uint32_t kinds;    /* 16 kinds of 2 bits */
    unsigned next;     /* next kind to expect */
    uint64_t hash;     /* of every callback, in order */
    uint64_t body;     /* bytes of the current body */
    int failed;        /* the parser reported an error */
    unsigned expected; /* responses expected in all */
};

static void mix(struct run *r, const void *d, size_t n)
{
    const unsigned char *b = d;
    for (size_t i = 0; i < n; i++) {
        r->hash ^= b[i];
        r->hash *= 1099511628211ull;
    }
}

static void expect_next(struct run *r)
{
    /* At most 64 responses in all, so some inputs also end with data nobody asked for. */
    if (r->expected >= 64)
        return;
    unsigned k = (r->kinds >> (2 * (r->next++ % 16))) & 3u;
    if (pop3_parser_expect(r->p, k == 3 ? POP3_DATA : (enum pop3_kind)k) != 0)
        abort();
    r->expected++;
}

static void check_helpers(const char *s, size_t len)
{
    uint32_t num;
    uint64_t sz;
    const char *uid;
    size_t ulen;
    if (pop3_parse_uidl(s, len, &num, &uid, &ulen)) {
        if (num == 0 || ulen == 0 || ulen > POP3_UIDL_MAX || uid < s || uid + ulen > s + len)
            abort();
        for (size_t i = 0; i < ulen; i++)
            if ((unsigned char)uid[i] < 0x21 || (unsigned char)uid[i] > 0x7e)
                abort();
    }
    if (pop3_parse_list(s, len, &num, &sz) && (num == 0 || sz > INT64_MAX))
        abort();
    (void)pop3_capa_is(s, len, "PIPELINING");
    char out[16];
    pop3_printable(s, len, out, sizeof out);
    if (strlen(out) >= sizeof out)
        abort();
}

static int on_status(void *arg, enum pop3_kind kind, int ok, const char *text, size_t len)
{
    struct run *r = arg;
    if (r->failed || text[len] != '\0' || len > POP3_LINE_MAX)
        abort();
    unsigned char tag[3] = {'S', (unsigned char)kind, (unsigned char)ok};
    mix(r, tag, sizeof tag);
    mix(r, text, len);
    r->body = 0;
    check_helpers(text, len);
    return 0;
}

static int on_line(void *arg, const char *line, size_t len)
{
    struct run *r = arg;
    if (r->failed || line[len] != '\0' || len > POP3_LINE_MAX)
        abort();
    mix(r, "L", 1);
    mix(r, line, len);
    r->body += len;
    if (pop3_parser_body_bytes(r->p) != r->body)
        abort();
    check_helpers(line, len);
    return 0;
}

static int on_data(void *arg, const char *d, size_t len)
{
    struct run *r = arg;
    if (r->failed || len == 0)
        abort();
    mix(r, d, len); /* no tag: the cut between calls must not matter */
    r->body += len;
    if (pop3_parser_body_bytes(r->p) != r->body)
        abort();
    return 0;
}

static int on_done(void *arg, enum pop3_kind kind, int ok)
{
    struct run *r = arg;
    if (r->failed)
        abort();
    unsigned char tag[3] = {'D', (unsigned char)kind, (unsigned char)ok};
    mix(r, tag, sizeof tag);
    expect_next(r);
    return 0;
}

static int run(const uint8_t *d, size_t n, uint32_t kinds, unsigned seed, int cut, uint64_t *hash_out)
{
    static const struct pop3_callbacks cbs = {on_status, on_line, on_data, on_done};
    struct run r = {.kinds = kinds, .hash = 1469598103934665603ull};
    r.p = pop3_parser_new(&cbs, &r);
    if (r.p == NULL)
        abort();
    expect_next(&r);
    int rc = POP3_OK;
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n && rc == POP3_OK;) {
        size_t len = n - i;
        if (cut) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            size_t max = (x & 0x100) ? 4096 : 8;
            len = 1 + (x % max);
            if (len > n - i)
                len = n - i;
        }
        /* an exact-size copy, so that ASan sees any read past the piece */
        char *piece = malloc(len);
        if (piece == NULL)
            abort();
        memcpy(piece, d + i, len);
        rc = pop3_parser_feed(r.p, piece, len);
        free(piece);
        i += len;
    }
    if (rc == POP3_EPROTO) {
        const char *e = pop3_parser_error(r.p);
        if (e == NULL || *e == '\0')
            abort();
        for (const char *c = e; *c; c++)
            if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
                abort();
        r.failed = 1;
        if (pop3_parser_feed(r.p, "+OK\r\n", 5) != POP3_EPROTO)
            abort(); /* a failed parser stays failed */
    } else if (rc != POP3_OK || pop3_parser_error(r.p) != NULL) {
        abort();
    }
    mix(&r, &rc, sizeof rc);
    *hash_out = r.hash;
    pop3_parser_free(&r.p);
    if (r.p != NULL)
        abort();
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5)
        return 0;
    unsigned seed = data[0];
    uint32_t kinds =
        (uint32_t)data[1] | (uint32_t)data[2] << 8 | (uint32_t)data[3] << 16 | (uint32_t)data[4] << 24;
    uint64_t whole, pieces;
    int a = run(data + 5, size - 5, kinds, seed, 0, &whole);
    int b = run(data + 5, size - 5, kinds, seed, 1, &pieces);
    if (a != b || whole != pieces)
        abort();
    return 0;
}

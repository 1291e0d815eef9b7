/*
 * libFuzzer target for the MIME header decoder: arbitrary bytes as a
 * message.  mh_mime_parse() must succeed and every value it returns must keep
 * the promises of mh_mime.h (valid UTF-8, no control characters, whitespace
 * collapsed, at most 998 bytes), the same for the same input, and the same
 * for the header block alone (the body is never looked at).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mh_mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts unless s is NULL or a clean value. */
static void check_value(const char *s)
{
    if (s == NULL)
        return;
    size_t n = strlen(s);
    if (n == 0 || n > 998 || s[0] == ' ' || s[n - 1] == ' ')
        abort();
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        uint32_t cp;
        size_t len;
        if (c < 0x80) {
            cp = c;
            len = 1;
        } else if (c >= 0xc2 && c <= 0xdf) {
            cp = c & 0x1fu;
            len = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            cp = c & 0x0fu;
            len = 3;
        } else if (c >= 0xf0 && c <= 0xf4) {
            cp = c & 0x07u;
            len = 4;
        } else {
            abort();
        }
        if (i + len > n)
            abort();
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                abort();
            cp = cp << 6 | (p[i + k] & 0x3fu);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            abort();
        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
            abort();
        if (c == ' ' && i + 1 < n && p[i + 1] == ' ')
            abort();
        i += len;
    }
}

static int same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int same_headers(const struct mh_mime_headers *a, const struct mh_mime_headers *b)
{
    return same(a->from, b->from) && same(a->to, b->to) && same(a->cc, b->cc) &&
           same(a->subject, b->subject) && same(a->message_id, b->message_id) && a->date == b->date;
}

/* Length of the header block with its empty line, or 0 when there is none. */
static size_t header_block_len(const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        if (i > 0 && data[i - 1] != '\n')
            continue;
        if (data[i] == '\n')
            return i + 1;
        if (data[i] == '\r' && i + 1 < size && data[i + 1] == '\n')
            return i + 2;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mh_mime_headers h, h2;

    mh_mime_init();
    if (mh_mime_parse(data, size, &h) != 0)
        abort(); /* only allocation failure may fail */
    check_value(h.from);
    check_value(h.to);
    check_value(h.cc);
    check_value(h.subject);
    check_value(h.message_id);

    if (mh_mime_parse(data, size, &h2) != 0)
        abort();
    if (!same_headers(&h, &h2))
        abort();
    mh_mime_headers_clear(&h2);

    size_t block = header_block_len(data, size);
    if (block > 0 && block < size) {
        if (mh_mime_parse(data, block, &h2) != 0)
            abort();
        if (!same_headers(&h, &h2))
            abort();
        mh_mime_headers_clear(&h2);
    }
    mh_mime_headers_clear(&h);
    if (h.from != NULL || h.subject != NULL)
        abort();
    return 0;
}

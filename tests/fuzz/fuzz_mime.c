/*
 * libFuzzer target for the MIME header decoder: arbitrary bytes as a
 * message.  mh_mime_parse() must succeed and every value it returns must keep
 * the promises of mh_mime.h (valid UTF-8, no control characters, whitespace
 * collapsed, at most 998 bytes), the same for the same input, and the same
 * for the header block alone (the body is never looked at).
 * mh_mime_parse_body() must succeed too, its text be valid UTF-8 without
 * controls but "\n" and "\t", at most MH_MIME_BODY_TEXT_MAX bytes, its
 * attachments a JSON array of {"name","type","size"}; and the search tokens
 * of that text (mh_search_tokens) valid UTF-8, unique, at most 64 bytes each.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mh_mime.h"
#include "mh_search.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Length of the valid UTF-8 character at p (n bytes left) and its code point, or 0. */
static size_t utf8_len(const unsigned char *p, size_t n, uint32_t *out)
{
    unsigned char c = p[0];
    uint32_t cp;
    size_t len;
    if (c < 0x80) {
        *out = c;
        return 1;
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
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((p[k] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[k] & 0x3fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    *out = cp;
    return len;
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Aborts unless the body text and attachments keep their promises, and the search tokens theirs. */
static void check_body(const struct mh_mime_body *b)
{
    if (b->text != NULL) {
        if (b->text_len == 0 || b->text_len != strlen(b->text) || b->text_len > MH_MIME_BODY_TEXT_MAX)
            abort();
        const unsigned char *p = (const unsigned char *)b->text;
        for (size_t i = 0; i < b->text_len;) {
            uint32_t cp;
            size_t len = utf8_len(p + i, b->text_len - i, &cp);
            if (len == 0 || (cp < 0x20 && cp != '\n' && cp != '\t') || (cp >= 0x7f && cp <= 0x9f))
                abort();
            i += len;
        }
        char *t = mh_search_tokens(b->text, b->text_len, 0);
        if (t == NULL)
            abort();
        size_t count = 0, cap = 0;
        char **v = NULL;
        for (char *save = NULL, *w = strtok_r(t, " ", &save); w != NULL; w = strtok_r(NULL, " ", &save)) {
            size_t tl = strlen(w);
            if (tl > MH_SEARCH_TOKEN_MAX)
                abort();
            for (size_t k = 0; k < tl;) {
                uint32_t cp;
                size_t len = utf8_len((const unsigned char *)w + k, tl - k, &cp);
                if (len == 0)
                    abort();
                k += len;
            }
            if (count == cap) {
                cap = cap ? 2 * cap : 64;
                char **nv = realloc(v, cap * sizeof *nv);
                if (nv == NULL)
                    abort();
                v = nv;
            }
            v[count++] = w;
        }
        if (count > 0)
            qsort(v, count, sizeof *v, cmp_str);
        for (size_t i = 1; i < count; i++)
            if (strcmp(v[i - 1], v[i]) == 0)
                abort(); /* unique */
        free(v);
        free(t);
    }
    if (b->attachments != NULL) {
        json_t *a = json_loads(b->attachments, 0, NULL);
        if (a == NULL || !json_is_array(a) || json_array_size(a) == 0)
            abort();
        size_t i;
        json_t *o;
        json_array_foreach(a, i, o)
        {
            json_t *name = json_object_get(o, "name"), *type = json_object_get(o, "type"),
                   *size = json_object_get(o, "size");
            if (!json_is_object(o) || json_object_size(o) != 3 ||
                (!json_is_string(name) && !json_is_null(name)) || !json_is_string(type) ||
                !json_is_integer(size) || json_integer_value(size) < 0)
                abort();
        }
        json_decref(a);
    }
}

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

    struct mh_mime_body b;
    if (mh_mime_parse_body(data, size, &b) != 0)
        abort();
    check_body(&b);
    mh_mime_body_clear(&b);
    if (b.text != NULL || b.attachments != NULL || b.attachment_names != NULL)
        abort();
    return 0;
}

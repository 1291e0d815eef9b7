/*
 * UTF-8 decoding shared by the MIME cleaner and the search tokeniser
 * (header-only, so that the fuzz targets and benches that compile those
 * files alone need nothing more).
 */
#ifndef MH_UTF8_H
#define MH_UTF8_H

#include <stddef.h>
#include <stdint.h>

/*
 * The well-formed UTF-8 character at p (at most n bytes available): its
 * length, with the code point in *cp; 0 for an invalid, overlong, surrogate
 * or truncated sequence.
 */
static inline size_t mh_utf8_decode(const unsigned char *p, size_t n, uint32_t *cp)
{
    unsigned char c = p[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        v = c & 0x1f;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        v = c & 0x0f;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        v = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (p[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}

#endif

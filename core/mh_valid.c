/* Validation of user-supplied identifiers: names, E.164 phone numbers, e-mail addresses. */
#include "config.h"

#include "mh_valid.h"

#include <stddef.h>
#include <string.h>

#define MH_NAME_MAX 64
#define MH_E164_MIN_DIGITS 7
#define MH_E164_MAX_DIGITS 15
#define MH_EMAIL_LOCAL_MAX 64
#define MH_EMAIL_DOMAIN_MAX 255
#define MH_EMAIL_MAX 254 /* RFC 5321 path: 256 octets including the angle brackets */
#define MH_LABEL_MAX 63

static int is_alnum(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

int mh_valid_name(const char *s)
{
    if (s == NULL || s[0] == '\0' || s[0] == '.' || s[0] == '-')
        return 0;
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++) {
        if (n >= MH_NAME_MAX)
            return 0;
        if (!is_alnum(*p) && strchr("._@+-", *p) == NULL)
            return 0;
    }
    return 1;
}

int mh_valid_e164(const char *s)
{
    if (s == NULL || s[0] != '+' || s[1] < '1' || s[1] > '9')
        return 0;
    size_t n = 0;
    for (const char *p = s + 1; *p; p++) {
        if (!is_digit((unsigned char)*p) || ++n > MH_E164_MAX_DIGITS)
            return 0;
    }
    return n >= MH_E164_MIN_DIGITS;
}

int mh_normalize_e164(const char *in, char out[17])
{
    size_t o = 0;
    int depth = 0, plus = 0;
    if (out != NULL)
        out[0] = '\0';
    if (in == NULL || out == NULL)
        return -1;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        unsigned char c = *p;
        if (c == ' ' || c == '\t' || c == '-' || c == '.')
            continue;
        if (c == '(') {
            if (depth++ > 0 || !plus)
                return -1;
            continue;
        }
        if (c == ')') {
            if (depth-- != 1)
                return -1;
            continue;
        }
        if (c == '+') {
            /* only once, before any digit */
            if (plus)
                return -1;
            plus = 1;
            out[o++] = '+';
            continue;
        }
        if (!is_digit(c) || !plus)
            return -1;
        if (o >= 1 + MH_E164_MAX_DIGITS) {
            out[0] = '\0';
            return -1;
        }
        out[o++] = (char)c;
    }
    out[o] = '\0';
    if (depth != 0 || !mh_valid_e164(out)) {
        out[0] = '\0';
        return -1;
    }
    return 0;
}

/* Length of the valid UTF-8 sequence of a non-ASCII character at p (2..4), or 0. */
static size_t utf8_len(const unsigned char *p)
{
    unsigned char c = p[0];
    if (c >= 0xc2 && c <= 0xdf)
        return (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        unsigned char lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        unsigned char lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 && (p[3] & 0xc0) == 0x80 ? 4 : 0;
    }
    return 0;
}

/* RFC 5322 atext, plus UTF-8 (RFC 6531); returns the length of the character or 0. */
static size_t atext_len(const unsigned char *p)
{
    if (*p >= 0x80)
        return utf8_len(p);
    return is_alnum(*p) || (*p != '\0' && strchr("!#$%&'*+/=?^_`{|}~-", *p) != NULL) ? 1 : 0;
}

/* Dot-atom local part of [s, e): 1..64 bytes, no leading, trailing or double dot. */
static int valid_local(const unsigned char *s, const unsigned char *e)
{
    size_t len = (size_t)(e - s);
    if (len == 0 || len > MH_EMAIL_LOCAL_MAX || *s == '.' || e[-1] == '.')
        return 0;
    for (const unsigned char *p = s; p < e;) {
        if (*p == '.') {
            if (p[1] == '.')
                return 0;
            p++;
            continue;
        }
        size_t n = atext_len(p);
        if (n == 0 || n > (size_t)(e - p))
            return 0;
        p += n;
    }
    return 1;
}

/* A domain name of [s, e): at least two labels of letters, digits, hyphens
 * (or UTF-8), each 1..63 bytes and not starting or ending with a hyphen. */
static int valid_domain(const unsigned char *s, const unsigned char *e)
{
    size_t len = (size_t)(e - s), label = 0, labels = 0;
    if (len == 0 || len > MH_EMAIL_DOMAIN_MAX)
        return 0;
    const unsigned char *start = s;
    for (const unsigned char *p = s; p <= e;) {
        if (p == e || *p == '.') {
            if (label == 0 || label > MH_LABEL_MAX || *start == '-' || p[-1] == '-')
                return 0;
            labels++;
            label = 0;
            if (p == e)
                break;
            p++;
            start = p;
            continue;
        }
        size_t n = 1;
        if (*p >= 0x80) {
            n = utf8_len(p);
            if (n == 0 || n > (size_t)(e - p))
                return 0;
        } else if (!is_alnum(*p) && *p != '-') {
            return 0;
        }
        label += n;
        p += n;
    }
    return labels >= 2;
}

int mh_valid_email(const char *s)
{
    if (s == NULL)
        return 0;
    size_t len = strlen(s);
    if (len > MH_EMAIL_MAX)
        return 0;
    const char *at = strrchr(s, '@');
    if (at == NULL)
        return 0;
    const unsigned char *b = (const unsigned char *)s, *a = (const unsigned char *)at;
    return valid_local(b, a) && valid_domain(a + 1, b + len);
}

/*
 * The blind search index: tokens (mh_search_tokens), keys and blind terms.
 *
 * The tokeniser reads UTF-8 one code point at a time and sorts each into a
 * class: a word character (letters, digits and combining marks of the
 * alphabetic scripts), a CJK character (Han, Hiragana, Katakana, Bopomofo,
 * Hangul), one to ignore (soft hyphen, joiners, variation selectors: they
 * neither end nor join anything), or a separator (everything else:
 * punctuation, symbols, emoji, spaces, controls, invalid bytes).  The
 * classes and the lower-case mapping are simple tables of ranges written
 * here, so the result does not depend on the process locale.
 *
 * The unique tokens are collected in the output buffer itself, with an
 * open-addressing hash table of their offsets for the duplicate check.
 *
 * A message's terms are blinded together: one AES-256 key schedule and one
 * ECB pass over all of its token blocks (see mh_search_blind).
 */
#include "config.h"

#include "mh_search.h"
#include "mh_utf8.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ code points */


static size_t utf8_encode(uint32_t cp, unsigned char *out)
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xc0 | cp >> 6);
        out[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xe0 | cp >> 12);
        out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (unsigned char)(0xf0 | cp >> 18);
    out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* In [lo, hi] with the parity of lo's upper-case letters: the lower case is the next code point. */
static int pair_upper(uint32_t cp, uint32_t lo, uint32_t hi)
{
    return cp >= lo && cp <= hi && ((cp - lo) & 1) == 0;
}

/* Simple lower-case mapping (and full-width Latin letters and digits to ASCII). */
static uint32_t lower_cp(uint32_t cp)
{
    if (cp < 0x80)
        return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    if (cp < 0x100)
        return cp >= 0xc0 && cp <= 0xde && cp != 0xd7 ? cp + 32 : cp;
    if (cp < 0x250) { /* Latin Extended-A and -B */
        if (cp == 0x130)
            return 'i';
        if (cp == 0x178)
            return 0xff;
        if (cp == 0x1c4 || cp == 0x1c5)
            return 0x1c6;
        if (cp == 0x1c7 || cp == 0x1c8)
            return 0x1c9;
        if (cp == 0x1ca || cp == 0x1cb)
            return 0x1cc;
        if (cp == 0x1f1 || cp == 0x1f2)
            return 0x1f3;
        if (pair_upper(cp, 0x100, 0x12f) || pair_upper(cp, 0x132, 0x137) || pair_upper(cp, 0x139, 0x148) ||
            pair_upper(cp, 0x14a, 0x177) || pair_upper(cp, 0x179, 0x17e) || pair_upper(cp, 0x1cd, 0x1dc) ||
            pair_upper(cp, 0x1de, 0x1ef) || pair_upper(cp, 0x1f8, 0x21f) || pair_upper(cp, 0x222, 0x233) ||
            pair_upper(cp, 0x246, 0x24f))
            return cp + 1;
        return cp;
    }
    if (cp >= 0x370 && cp < 0x400) { /* Greek */
        if ((cp >= 0x391 && cp <= 0x3a1) || (cp >= 0x3a3 && cp <= 0x3ab))
            return cp + 0x20;
        if (cp == 0x386)
            return 0x3ac;
        if (cp >= 0x388 && cp <= 0x38a)
            return cp + 0x25;
        if (cp == 0x38c)
            return 0x3cc;
        if (cp == 0x38e || cp == 0x38f)
            return cp + 0x3f;
        if (cp == 0x3c2)
            return 0x3c3; /* final sigma: one form, so a word matches wherever it ends */
        if (cp == 0x376)
            return 0x377;
        if (pair_upper(cp, 0x370, 0x373) || pair_upper(cp, 0x3d8, 0x3ef))
            return cp + 1;
        return cp;
    }
    if (cp >= 0x400 && cp < 0x530) { /* Cyrillic */
        if (cp <= 0x40f)
            return cp + 0x50;
        if (cp <= 0x42f)
            return cp + 0x20;
        if (cp == 0x4c0)
            return 0x4cf;
        if (pair_upper(cp, 0x460, 0x481) || pair_upper(cp, 0x48a, 0x4bf) || pair_upper(cp, 0x4c1, 0x4ce) ||
            pair_upper(cp, 0x4d0, 0x52f))
            return cp + 1;
        return cp;
    }
    if (cp >= 0x531 && cp <= 0x556) /* Armenian */
        return cp + 0x30;
    if (cp >= 0x1e00 && cp <= 0x1eff) { /* Latin Extended Additional (Vietnamese) */
        if (cp == 0x1e9e)
            return 0xdf;
        if (pair_upper(cp, 0x1e00, 0x1e95) || pair_upper(cp, 0x1ea0, 0x1eff))
            return cp + 1;
        return cp;
    }
    if (cp >= 0x1f00 && cp <= 0x1f6f && (cp & 0xf) >= 8) /* Greek Extended: 8..f are the capitals of 0..7 */
        return cp - 8;
    if (cp >= 0xff00 && cp <= 0xff5a) { /* full-width ASCII */
        if (cp >= 0xff21 && cp <= 0xff3a)
            return cp - 0xff21 + 'a';
        if (cp >= 0xff41)
            return cp - 0xff41 + 'a';
        if (cp >= 0xff10 && cp <= 0xff19)
            return cp - 0xff10 + '0';
    }
    return cp;
}

enum cls { SEP, WORD, CJK, IGNORE };

static int in(uint32_t cp, uint32_t lo, uint32_t hi)
{
    return cp >= lo && cp <= hi;
}

/* The class of a (lower-cased) code point. */
static enum cls classify(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9') || (cp >= 'A' && cp <= 'Z') ? WORD : SEP;
    if (cp < 0x100) {
        if (cp == 0xad)
            return IGNORE; /* soft hyphen */
        return cp == 0xaa || cp == 0xb5 || cp == 0xba || (cp >= 0xc0 && cp != 0xd7 && cp != 0xf7) ? WORD
                                                                                                  : SEP;
    }
    if (cp < 0x2000) {
        if (in(cp, 0x1100, 0x11ff))
            return CJK; /* Hangul Jamo */
        if (cp == 0x37e || cp == 0x387 || in(cp, 0x384, 0x385) || cp == 0x375 || cp == 0x482 ||
            in(cp, 0x55a, 0x55f) || in(cp, 0x589, 0x58a) || cp == 0x5be || cp == 0x5c0 || cp == 0x5c3 ||
            cp == 0x5c6 || in(cp, 0x5f3, 0x5f4) || in(cp, 0x600, 0x60f) || cp == 0x61b ||
            in(cp, 0x61d, 0x61f) || in(cp, 0x66a, 0x66d) || cp == 0x6d4 || cp == 0x6dd || cp == 0x6de ||
            in(cp, 0x964, 0x965) || cp == 0x970 || cp == 0xe3f || cp == 0xe4f || in(cp, 0xe5a, 0xe5b) ||
            in(cp, 0x1680, 0x1680) || in(cp, 0x180e, 0x180e))
            return SEP;
        if (cp == 0x34f || cp == 0x180b || cp == 0x180c || cp == 0x180d)
            return IGNORE;
        return WORD;
    }
    if (cp < 0x3000) {
        if (cp == 0x200c || cp == 0x200d || cp == 0x2060)
            return IGNORE; /* joiners: inside words (Persian, Indic, emoji sequences) */
        if (in(cp, 0x2c00, 0x2dff))
            return WORD; /* Glagolitic, Latin Extended-C, Coptic, Georgian, Tifinagh, Ethiopic, Cyrillic */
        if (in(cp, 0x2e80, 0x2fdf))
            return CJK; /* radicals */
        return SEP;     /* punctuation, symbols, arrows, box drawing, dingbats */
    }
    if (cp < 0xa000) {
        if (cp < 0x3040)
            return in(cp, 0x3005, 0x3007) || in(cp, 0x3021, 0x3029) || in(cp, 0x3031, 0x3035) ||
                           in(cp, 0x303b, 0x303c)
                       ? CJK
                       : SEP;
        if (cp < 0x3100)
            return cp == 0x30a0 || cp == 0x30fb ? SEP : CJK; /* kana, without ゠ and ・ */
        if (cp < 0x3190 || in(cp, 0x31a0, 0x31bf) || in(cp, 0x31f0, 0x31ff))
            return CJK; /* Bopomofo, Hangul compatibility Jamo, Katakana extension */
        if (cp < 0x3400)
            return SEP; /* kanbun, strokes, enclosed and compatibility symbols */
        if (in(cp, 0x4dc0, 0x4dff))
            return SEP; /* hexagrams */
        return CJK;     /* Han */
    }
    if (cp < 0xe000) {
        if (in(cp, 0xa960, 0xa97f) || cp >= 0xac00)
            return CJK; /* Hangul */
        if (in(cp, 0xa490, 0xa4cf))
            return SEP; /* Yi radicals */
        return WORD;
    }
    if (cp < 0x10000) {
        if (cp < 0xf900)
            return SEP; /* private use */
        if (cp < 0xfb00)
            return CJK; /* compatibility ideographs */
        if (in(cp, 0xfe00, 0xfe0f))
            return IGNORE; /* variation selectors */
        if (cp == 0xfd3e || cp == 0xfd3f || in(cp, 0xfe10, 0xfe6f) || cp == 0xfeff)
            return SEP;
        if (cp < 0xff00)
            return WORD; /* presentation forms */
        if (in(cp, 0xff66, 0xff9f) || in(cp, 0xffa0, 0xffdc))
            return CJK; /* half-width Katakana and Hangul */
        return SEP;
    }
    if (in(cp, 0x20000, 0x3ffff))
        return CJK;
    if (in(cp, 0xe0000, 0xe007f) || in(cp, 0xe0100, 0xe01ef))
        return IGNORE; /* tags, variation selectors */
    if (in(cp, 0x1d000, 0x1d24f) || in(cp, 0x1f000, 0x1fbff) || cp >= 0xf0000)
        return SEP; /* musical symbols, emoji and pictographs, private use */
    return WORD;
}

/* ------------------------------------------------------------ the token set */

struct tokset {
    char *buf; /* "tok tok tok" */
    size_t len, cap;
    size_t *slot; /* offset + 1 of each token in buf, 0: empty */
    uint32_t *slot_len;
    size_t nslot, count, max;
    int full, oom;
};

static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static int set_grow(struct tokset *s)
{
    size_t n = s->nslot ? 2 * s->nslot : 256;
    size_t *slot = calloc(n, sizeof *slot);
    uint32_t *slen = calloc(n, sizeof *slen);
    if (slot == NULL || slen == NULL) {
        free(slot);
        free(slen);
        return -1;
    }
    for (size_t i = 0; i < s->nslot; i++) {
        if (s->slot[i] == 0)
            continue;
        uint64_t h = fnv1a((const unsigned char *)s->buf + s->slot[i] - 1, s->slot_len[i]);
        size_t k = (size_t)h & (n - 1);
        while (slot[k] != 0)
            k = (k + 1) & (n - 1);
        slot[k] = s->slot[i];
        slen[k] = s->slot_len[i];
    }
    free(s->slot);
    free(s->slot_len);
    s->slot = slot;
    s->slot_len = slen;
    s->nslot = n;
    return 0;
}

/* Adds a token (valid UTF-8, no space) unless it is one ASCII letter or a duplicate; cuts it at 64 bytes. */
static void set_add(struct tokset *s, const unsigned char *p, size_t n)
{
    if (s->full || s->oom || n == 0)
        return;
    if (n > MH_SEARCH_TOKEN_MAX) {
        n = MH_SEARCH_TOKEN_MAX;
        while (n > 0 && (p[n] & 0xc0) == 0x80)
            n--; /* p[n] is a continuation byte: the character at n-1.. would be cut */
    }
    if (n == 1 && ((p[0] >= 'a' && p[0] <= 'z') || (p[0] >= 'A' && p[0] <= 'Z')))
        return;
    if ((s->count + 1) * 2 > s->nslot && set_grow(s) != 0) {
        s->oom = 1;
        return;
    }
    uint64_t h = fnv1a(p, n);
    size_t k = (size_t)h & (s->nslot - 1);
    while (s->slot[k] != 0) {
        if (s->slot_len[k] == n && memcmp(s->buf + s->slot[k] - 1, p, n) == 0)
            return;
        k = (k + 1) & (s->nslot - 1);
    }
    if (s->max > 0 && s->count >= s->max) {
        s->full = 1;
        return;
    }
    if (s->len + n + 2 > s->cap) {
        size_t cap = s->cap ? s->cap : 256;
        while (s->len + n + 2 > cap)
            cap *= 2;
        char *b = realloc(s->buf, cap);
        if (b == NULL) {
            s->oom = 1;
            return;
        }
        s->buf = b;
        s->cap = cap;
    }
    if (s->len > 0)
        s->buf[s->len++] = ' ';
    memcpy(s->buf + s->len, p, n);
    s->slot[k] = s->len + 1;
    s->slot_len[k] = (uint32_t)n;
    s->len += n;
    s->buf[s->len] = '\0';
    s->count++;
}

static char *set_finish(struct tokset *s)
{
    free(s->slot);
    free(s->slot_len);
    if (s->oom) {
        free(s->buf);
        return NULL;
    }
    if (s->buf == NULL)
        return calloc(1, 1);
    return s->buf;
}

/* ------------------------------------------------------------ e-mail addresses */

static int is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int is_local_char(unsigned char c)
{
    return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}

/*
 * An e-mail address starting at s[i]: local@domain, the local part of
 * [A-Za-z0-9._%+-] starting with a letter or digit and not ending with a
 * dot, the domain two or more labels of [A-Za-z0-9-] (not starting or
 * ending with '-') whose last one is two or more letters.  Returns its
 * length (a trailing dot is not part of it) with *at the offset of '@', or 0.
 */
static size_t email_at(const unsigned char *s, size_t n, size_t i, size_t *at)
{
    if (!is_alnum(s[i]))
        return 0;
    size_t j = i;
    while (j < n && is_local_char(s[j]))
        j++;
    if (j == n || s[j] != '@' || s[j - 1] == '.' || j - i > 64)
        return 0;
    size_t d = j + 1, e = d, labels = 0, label_start = d, last_start = d, last_end = d;
    for (;;) {
        while (e < n && (is_alnum(s[e]) || s[e] == '-'))
            e++;
        if (e == label_start || s[label_start] == '-' || s[e - 1] == '-')
            break;
        labels++;
        last_start = label_start;
        last_end = e;
        if (e + 1 < n && s[e] == '.' && (is_alnum(s[e + 1]))) {
            label_start = ++e;
            continue;
        }
        break;
    }
    if (labels < 2 || last_end - d > 253)
        return 0;
    if (last_end - last_start < 2)
        return 0;
    for (size_t k = last_start; k < last_end; k++)
        if (!((s[k] >= 'a' && s[k] <= 'z') || (s[k] >= 'A' && s[k] <= 'Z')))
            return 0;
    *at = j - i;
    return last_end - i;
}

/* Adds the ASCII text s[0..n) lower-cased as one token. */
static void add_ascii_lower(struct tokset *set, const unsigned char *s, size_t n)
{
    unsigned char tmp[MH_SEARCH_TOKEN_MAX];
    if (n > sizeof tmp)
        n = sizeof tmp;
    for (size_t k = 0; k < n; k++)
        tmp[k] = s[k] >= 'A' && s[k] <= 'Z' ? (unsigned char)(s[k] + 32) : s[k];
    set_add(set, tmp, n);
}

/* ------------------------------------------------------------ the tokeniser */

struct tokenizer {
    struct tokset *set;
    int query;
    unsigned char word[MH_SEARCH_TOKEN_MAX + 4];
    size_t wlen;
    int wfull;
    uint32_t cjk_prev; /* the previous CJK character of the run, 0: none */
    size_t cjk_run;
};

static void flush_word(struct tokenizer *t)
{
    if (t->wlen > 0)
        set_add(t->set, t->word, t->wlen);
    t->wlen = 0;
    t->wfull = 0;
}

static void flush_cjk(struct tokenizer *t)
{
    if (t->cjk_run == 1) {
        unsigned char u[4];
        set_add(t->set, u, utf8_encode(t->cjk_prev, u));
    }
    t->cjk_run = 0;
    t->cjk_prev = 0;
}

static void put_word(struct tokenizer *t, uint32_t cp)
{
    unsigned char u[4];
    size_t n = utf8_encode(cp, u);
    if (t->wfull || t->wlen + n > MH_SEARCH_TOKEN_MAX) {
        t->wfull = 1; /* the rest of the word is cut off */
        return;
    }
    memcpy(t->word + t->wlen, u, n);
    t->wlen += n;
}

static void put_cjk(struct tokenizer *t, uint32_t cp)
{
    if (t->cjk_prev != 0) {
        unsigned char b[8];
        size_t n = utf8_encode(t->cjk_prev, b);
        n += utf8_encode(cp, b + n);
        set_add(t->set, b, n);
    }
    t->cjk_prev = cp;
    t->cjk_run++;
}

static void tokenize(struct tokset *set, const char *text, size_t len, int query)
{
    const unsigned char *s = (const unsigned char *)text;
    struct tokenizer t = {.set = set, .query = query};
    enum cls prev = SEP;
    size_t email_end = 0;
    for (size_t i = 0; i < len && !set->full && !set->oom;) {
        /* an e-mail address starts where a word could start */
        if (i >= email_end && prev != WORD && is_alnum(s[i])) {
            size_t at = 0, n = email_at(s, len, i, &at);
            if (n > 0) {
                flush_word(&t);
                flush_cjk(&t);
                add_ascii_lower(set, s + i, n);
                if (query) { /* the whole address says it all */
                    i += n;
                    prev = SEP;
                    continue;
                }
                add_ascii_lower(set, s + i, at);
                add_ascii_lower(set, s + i + at + 1, n - at - 1);
                email_end = i + n; /* its words follow as usual */
            }
        }
        uint32_t cp;
        size_t n = mh_utf8_decode(s + i, len - i, &cp);
        if (n == 0) { /* an invalid byte separates */
            n = 1;
            cp = 0xfffd;
        }
        i += n;
        cp = lower_cp(cp);
        enum cls c = n == 1 && cp == 0xfffd ? SEP : classify(cp);
        if (c == IGNORE)
            continue;
        if (c == WORD) {
            if (prev == CJK)
                flush_cjk(&t);
            put_word(&t, cp);
        } else if (c == CJK) {
            if (prev == WORD)
                flush_word(&t);
            put_cjk(&t, cp);
        } else {
            flush_word(&t);
            flush_cjk(&t);
        }
        prev = c;
    }
    flush_word(&t);
    flush_cjk(&t);
}

char *mh_search_tokens(const char *utf8, size_t len, size_t max_terms)
{
    struct tokset set = {.max = max_terms};
    if (utf8 != NULL)
        tokenize(&set, utf8, len, 0);
    return set_finish(&set);
}

char *mh_search_query_tokens(const char *query)
{
    struct tokset set = {.max = MH_SEARCH_QUERY_MAX};
    if (query != NULL)
        tokenize(&set, query, strlen(query), 1);
    return set_finish(&set);
}

/* ------------------------------------------------------------ keys and terms */

void mh_search_key(const unsigned char data_key[32], unsigned char out[32])
{
    static const char label[] = "mailhub search v2";
    unsigned int n = 0;
    if (HMAC(EVP_sha256(), data_key, 32, (const unsigned char *)label, sizeof label - 1, out, &n) == NULL ||
        n != 32)
        OPENSSL_cleanse(out, 32); /* libcrypto cannot hash (never seen): an all-zero key */
}

/* The first 16 characters of the base32 (RFC 4648, lower case) of d: its first 10 bytes. */
static void term_of(const unsigned char d[16], char out[MH_SEARCH_TERM_LEN])
{
    static const char al[] = "abcdefghijklmnopqrstuvwxyz234567";
    for (int g = 0; g < 2; g++) {
        const unsigned char *b = d + 5 * g;
        uint64_t v =
            (uint64_t)b[0] << 32 | (uint64_t)b[1] << 24 | (uint64_t)b[2] << 16 | (uint64_t)b[3] << 8 | b[4];
        for (int k = 0; k < 8; k++)
            out[8 * g + k] = al[(v >> (35 - 5 * k)) & 31];
    }
}

/*
 * The block a token is encrypted as.  A token of at most 15 bytes (nearly
 * all: words, CJK pairs) is itself, zero-padded, with its length in the last
 * byte (0..15); a longer one is the first 16 bytes of SHA-256("mailhub
 * term" NUL token) with the high bit of the last byte set (128..255), so the
 * two kinds never give the same block.  0, or -1 if libcrypto fails.
 */
static int block_of(const char *t, size_t n, unsigned char b[16])
{
    memset(b, 0, 16);
    if (n <= 15) {
        memcpy(b, t, n);
        b[15] = (unsigned char)n;
        return 0;
    }
    static const char tag[] = "mailhub term"; /* with its NUL */
    unsigned char buf[sizeof tag + MH_SEARCH_TOKEN_MAX], d[32];
    size_t m = n < MH_SEARCH_TOKEN_MAX ? n : MH_SEARCH_TOKEN_MAX;
    memcpy(buf, tag, sizeof tag);
    memcpy(buf + sizeof tag, t, m);
    unsigned int dl = 0;
    int ok = EVP_Digest(buf, sizeof tag + m, d, &dl, EVP_sha256(), NULL) == 1 && dl == 32;
    memcpy(b, d, 16);
    b[15] |= 0x80;
    OPENSSL_cleanse(buf, sizeof buf);
    OPENSSL_cleanse(d, sizeof d);
    return ok ? 0 : -1;
}

/* A term's 80 bits as a number, for sorting: the first 8 bytes, then the next 2. */
struct term_val {
    uint64_t hi;
    uint32_t lo;
    uint32_t i; /* the block it came from */
};

static int val_less(const struct term_val *x, const struct term_val *y)
{
    return x->hi != y->hi ? x->hi < y->hi : x->lo < y->lo;
}

/* Shell sort (Ciura's gaps, then 2.25x): a message has about a hundred terms, where qsort's calls to a
 * comparison function cost more than the AES of them all; 20,000 (the most) still sort in a millisecond. */
static void sort_vals(struct term_val *v, size_t n)
{
    static const size_t ciura[] = {1, 4, 10, 23, 57, 132, 301, 701};
    size_t gaps[48];
    int ng = 0;
    for (int k = 0; k < 8 && ciura[k] < n; k++)
        gaps[ng++] = ciura[k];
    if (ng == 8) /* more than 701: gaps growing 2.25 times */
        for (size_t g = 701; ng < 48 && (g = g * 9 / 4) < n;)
            gaps[ng++] = g;
    for (int k = ng - 1; k >= 0; k--) {
        size_t gap = gaps[k];
        for (size_t i = gap; i < n; i++) {
            struct term_val t = v[i];
            size_t j = i;
            for (; j >= gap && val_less(&t, &v[j - gap]); j -= gap)
                v[j] = v[j - gap];
            v[j] = t;
        }
    }
}

/*
 * Blind terms: term(t) = base32(AES-256_K(block(t)))[0:16], K the user's
 * search key.  AES is a pseudo-random permutation, so on distinct blocks it
 * is a pseudo-random function: without K a term says nothing of its token,
 * as with the HMAC-SHA256 of the first scheme (v1), at a fraction of the
 * cost: every block of a message goes through one ECB call (AES-NI), about
 * 3 µs a message against 97 µs (bench/search_bench).
 */
char *mh_search_blind(const unsigned char key[32], const char *tokens)
{
    size_t count = 0;
    const char *p = tokens ? tokens : "";
    for (const char *q = p; *q;) {
        while (*q == ' ')
            q++;
        if (*q == '\0')
            break;
        count++;
        q += strcspn(q, " ");
    }
    char *out = malloc(count * (MH_SEARCH_TERM_LEN + 1) + 1);
    struct term_val *vals = malloc((count + 1) * sizeof *vals);
    unsigned char *blocks = malloc(count * 16 + 16), *enc = malloc(count * 16 + 32);
    EVP_CIPHER_CTX *cx = count > 0 ? EVP_CIPHER_CTX_new() : NULL;
    int ok = out != NULL && vals != NULL && blocks != NULL && enc != NULL && (count == 0 || cx != NULL);
    size_t n_terms = 0;
    for (const char *q = p; ok && *q;) {
        while (*q == ' ')
            q++;
        if (*q == '\0')
            break;
        size_t n = strcspn(q, " ");
        ok = block_of(q, n, blocks + 16 * n_terms++) == 0;
        q += n;
    }
    int outl = 0;
    if (ok && count > 0)
        ok = EVP_EncryptInit_ex(cx, EVP_aes_256_ecb(), NULL, key, NULL) == 1 &&
             EVP_CIPHER_CTX_set_padding(cx, 0) == 1 &&
             EVP_EncryptUpdate(cx, enc, &outl, blocks, (int)(16 * n_terms)) == 1 && outl == (int)(16 * n_terms);
    EVP_CIPHER_CTX_free(cx);
    if (blocks != NULL)
        OPENSSL_cleanse(blocks, count * 16 + 16); /* the tokens themselves, for short ones */
    free(blocks);
    if (!ok) {
        free(enc);
        free(out);
        free(vals);
        return NULL;
    }
    /* sorted by value, so the terms keep nothing of the order of the words */
    for (size_t i = 0; i < n_terms; i++) {
        const unsigned char *e = enc + 16 * i;
        uint64_t hi = 0;
        for (int k = 0; k < 8; k++)
            hi = hi << 8 | e[k];
        vals[i] = (struct term_val){.hi = hi, .lo = (uint32_t)e[8] << 8 | e[9], .i = (uint32_t)i};
    }
    sort_vals(vals, n_terms);
    size_t len = 0;
    for (size_t i = 0; i < n_terms; i++) {
        if (i > 0 && vals[i].hi == vals[i - 1].hi && vals[i].lo == vals[i - 1].lo)
            continue; /* the same token twice (or, once in 2^80, two tokens with one term) */
        if (len > 0)
            out[len++] = ' ';
        term_of(enc + 16 * vals[i].i, out + len);
        len += MH_SEARCH_TERM_LEN;
    }
    out[len] = '\0';
    free(vals);
    free(enc);
    return out;
}

char *mh_search_query(const unsigned char key[32], const char *query)
{
    char *tokens = mh_search_query_tokens(query);
    if (tokens == NULL || tokens[0] == '\0') {
        free(tokens);
        return NULL;
    }
    char *terms = mh_search_blind(key, tokens);
    free(tokens);
    return terms;
}

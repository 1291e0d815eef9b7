/*
 * The headers a mail client lists, decoded once on arrival.
 *
 * This runs once per stored message on the store lane, so it does not build
 * a GMimeMessage (GMime's parser, its GObjects and the IDNA conversion of
 * every address through libidn2 took about 15 times as long; see
 * bench/mime_bench.c).
 * The header block is scanned here: lines up to the first empty one; a
 * field is `name ":" value` (white space before the colon allowed),
 * continued on lines that start with SP or HTAB; names are case-insensitive;
 * lines that are not fields are skipped; the first occurrence of each of the
 * six fields wins and the scan stops once all six are found.  A value is
 * read as GMime's parser gave it (line breaks and lone carriage returns
 * dropped, cut at a NUL), and GMime is only called where it is needed:
 *
 * - text (Subject, and the fallbacks below): RFC 2047 words and raw 8-bit
 *   bytes are decoded by g_mime_utils_header_decode_text() with our parser
 *   options (their fallback charsets read raw 8-bit text; GMime's charset
 *   table maps gb2312 to GBK, a superset, so mislabelled GBK text decodes).
 *   Plain ASCII without "=?" needs no decoding.
 * - addresses (From, To, Cc): the common forms `addr-spec`, `<addr-spec>`,
 *   `phrase <addr-spec>` and groups `phrase ":" [those] ";"` (the phrase made
 *   of atoms, dots, raw 8-bit bytes, RFC 2047 words and quoted strings
 *   without backslashes; the addr-spec a dot-atom "@" dot-atom without
 *   "xn--") are formatted here exactly as GMime formats a parsed list: the
 *   display name converted from raw 8-bit when it is not UTF-8, unquoted,
 *   its RFC 2047 words decoded (g_mime_utils_header_decode_phrase()),
 *   stripped, and quoted again when it contains one of ()<>@,;:.[] (a
 *   backslash is escaped).  Anything else (comments, route addresses, quoted
 *   local parts, domain literals, IDNA or 8-bit domains, backslashes, stray
 *   characters) goes to GMime's parser as before, on a header block of just
 *   that field, so it gives what it always gave.
 * - Message-ID: `<dot-atom@dot-atom>` is the id; anything else goes to
 *   g_mime_utils_decode_message_id() (of the decoded text), and when that
 *   finds no id, the text without the angle brackets.
 * - Date: "[Day, ]D Mon YYYY HH:MM:SS ZONE [(comment)]" with a numeric zone
 *   or GMT/UT/UTC is converted here; anything else (named or military zones,
 *   two-digit years, no seconds, ...) by g_mime_utils_header_decode_date().
 *
 * What comes out is then made safe for JSON and for a terminal: valid UTF-8,
 * no control characters, whitespace collapsed, at most MH_MIME_MAX_VALUE
 * bytes (the cleaner below takes its input in pieces, so an address list is
 * formatted straight into it and formatting stops once it is full).
 *
 * The output was checked against the former GMime-only implementation by
 * differential fuzzing; the known differences are the first-occurrence rule
 * (GMime took the last Subject, Message-ID and Date and joined all From, To
 * and Cc fields) and malformed header blocks that GMime gave up on entirely
 * (a first line that is not a field, an unterminated last line without a
 * colon): they are read here.
 *
 * Thread safety: g_mime_init() runs once (pthread_once); the parser options
 * are created once and only read afterwards; everything else is per call.
 */
#include "config.h"

#include "mh_mime.h"
#include "mh_utf8.h"

#include <errno.h>
#include <gmime/gmime.h>
#include <iconv.h>
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* RFC 5322's line limit, a sensible cap for one value. */
#define MH_MIME_MAX_VALUE 998
/* The header block read at most (a message without an empty line is all
 * header block); no real header block comes near it. */
#define MH_MIME_MAX_HEADER_BLOCK ((size_t)4 << 20)
/* Values up to this size are unfolded on the stack. */
#define MH_MIME_STACK_VALUE 2048

static pthread_once_t mime_once = PTHREAD_ONCE_INIT;
static GMimeParserOptions *mime_options; /* written once under mime_once, then read-only */

static void mime_init_once(void)
{
    /* Raw 8-bit text is tried in this order: GMime takes the first charset
     * that converts it without errors (ISO-8859-1 always does). */
    static const char *fallback[] = {"UTF-8", "GB18030", "Big5", "ISO-8859-1", NULL};

    g_mime_init();
    mime_options = g_mime_parser_options_new();
    g_mime_parser_options_set_fallback_charsets(mime_options, fallback);
    /* accept what real mailers send (unquoted specials, broken words, ...) */
    g_mime_parser_options_set_address_compliance_mode(mime_options, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_rfc2047_compliance_mode(mime_options, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_parameter_compliance_mode(mime_options, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_allow_addresses_without_domain(mime_options, TRUE);
}

void mh_mime_init(void)
{
    pthread_once(&mime_once, mime_init_once);
}

/* ------------------------------------------------------------ the cleaner */


static int is_space_like(uint32_t cp)
{
    /* C0 and C1 controls, DEL, and Unicode line/paragraph separators; also
     * the BOM / zero-width no-break space, which only confuses listings */
    return cp <= 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 || cp == 0xfeff;
}

/*
 * A clean value built from pieces: invalid UTF-8 becomes U+FFFD (one per
 * byte), controls become spaces, runs of spaces become one, leading and
 * trailing spaces go, and it ends before the first character that would
 * take it past MH_MIME_MAX_VALUE bytes.  The result is the same whether the
 * text comes in one piece or several, as long as no piece ends inside a
 * character that the next one completes (the callers' pieces are whole
 * strings or ASCII).
 */
struct clean {
    size_t len;
    int pending_space;
    int full; /* a character did not fit: everything after it is dropped */
    char buf[MH_MIME_MAX_VALUE + 1];
};

static void clean_init(struct clean *c)
{
    c->len = 0;
    c->pending_space = 0;
    c->full = 0;
}

static void clean_put(struct clean *c, const void *text, size_t n)
{
    static const unsigned char replacement[] = {0xef, 0xbf, 0xbd};
    const unsigned char *p = text, *end = p + n;
    if (c->full)
        return;
    while (p < end) {
        uint32_t cp;
        const unsigned char *src = p;
        size_t emit;
        if (*p < 0x80) { /* the common case */
            cp = *p++;
            emit = 1;
        } else if ((emit = mh_utf8_decode(p, (size_t)(end - p), &cp)) != 0) {
            p += emit;
        } else { /* one invalid byte: U+FFFD */
            src = replacement;
            emit = sizeof replacement;
            cp = 0xfffd;
            p++;
        }
        if (is_space_like(cp)) {
            c->pending_space = c->len > 0;
            continue;
        }
        if (c->len + (c->pending_space ? 1 : 0) + emit > MH_MIME_MAX_VALUE) {
            c->full = 1;
            return;
        }
        if (c->pending_space) {
            c->buf[c->len++] = ' ';
            c->pending_space = 0;
        }
        if (emit == 1)
            c->buf[c->len++] = (char)*src;
        else {
            memcpy(c->buf + c->len, src, emit);
            c->len += emit;
        }
    }
}

static void clean_puts(struct clean *c, const char *s)
{
    clean_put(c, s, strlen(s));
}

/* The clean value as a malloc'ed string; NULL when it is empty (or on
 * allocation failure: *oom is set). */
static char *clean_finish(const struct clean *c, int *oom)
{
    if (c->len == 0)
        return NULL;
    char *s = malloc(c->len + 1);
    if (s == NULL) {
        *oom = 1;
        return NULL;
    }
    memcpy(s, c->buf, c->len);
    s[c->len] = '\0';
    return s;
}

/* ------------------------------------------------------------ the header block */

enum { F_FROM, F_TO, F_CC, F_SUBJECT, F_MESSAGE_ID, F_DATE, F_COUNT };

/* A field's raw value: from after the colon to the end of its last line
 * (without that line's end), folded line breaks included; p NULL if absent. */
struct span {
    const unsigned char *p;
    size_t len;
};

static int is_wsp(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static unsigned char ascii_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* name (n bytes) equals lower (lower-case ASCII) ignoring ASCII case */
static int name_is(const unsigned char *name, size_t n, const char *lower)
{
    for (size_t i = 0; i < n; i++)
        if (ascii_lower(name[i]) != (unsigned char)lower[i])
            return 0;
    return lower[n] == '\0';
}

/* Which of the six fields the name is, or -1. */
static int field_of(const unsigned char *name, size_t n)
{
    switch (n) {
    case 2:
        return name_is(name, n, "to") ? F_TO : name_is(name, n, "cc") ? F_CC : -1;
    case 4:
        return name_is(name, n, "from") ? F_FROM : name_is(name, n, "date") ? F_DATE : -1;
    case 7:
        return name_is(name, n, "subject") ? F_SUBJECT : -1;
    case 10:
        return name_is(name, n, "message-id") ? F_MESSAGE_ID : -1;
    default:
        return -1;
    }
}

/* Could a field name starting with c be one of ours? */
static int may_start_field(unsigned char c)
{
    c = ascii_lower(c);
    return c == 'f' || c == 't' || c == 'c' || c == 's' || c == 'm' || c == 'd';
}

/* The end of the line at p (its '\n', or end) and the start of the next one. */
static const unsigned char *line_end(const unsigned char *p, const unsigned char *end,
                                     const unsigned char **next)
{
    const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL) {
        *next = end;
        return end;
    }
    *next = nl + 1;
    return nl;
}

/* Finds the first occurrence of each field in the header block of raw. */
static void scan_header_block(const unsigned char *raw, size_t len, struct span f[F_COUNT])
{
    if (len > MH_MIME_MAX_HEADER_BLOCK)
        len = MH_MIME_MAX_HEADER_BLOCK;
    const unsigned char *p = raw, *end = raw + len, *next;
    int found = 0;
    while (p < end) {
        if (*p == '\n' || (*p == '\r' && p + 1 < end && p[1] == '\n'))
            break; /* the empty line: the body follows */
        const unsigned char *eol = line_end(p, end, &next);
        const unsigned char *colon;
        if (is_wsp(*p) || !may_start_field(*p) || (colon = memchr(p, ':', (size_t)(eol - p))) == NULL) {
            p = next; /* not a field of ours (or a continuation of one that is not) */
            continue;
        }
        const unsigned char *name_end = colon;
        while (name_end > p && is_wsp(name_end[-1]))
            name_end--;
        int which = field_of(p, (size_t)(name_end - p));
        const unsigned char *vend = eol;
        for (p = next; p < end && is_wsp(*p); p = next)
            vend = line_end(p, end, &next);
        if (which < 0 || f[which].p != NULL)
            continue;
        if (vend < end && vend > colon + 1 && vend[-1] == '\r')
            vend--; /* the CR of the last line's CRLF */
        f[which].p = colon + 1;
        f[which].len = (size_t)(vend - (colon + 1));
        /* a NUL ends the value, as it always did (GMime's values are C strings) */
        const unsigned char *nul = memchr(f[which].p, '\0', f[which].len);
        if (nul != NULL)
            f[which].len = (size_t)(nul - f[which].p);
        if (++found == F_COUNT)
            break;
    }
}

/* Does the text need GMime's decoder (an RFC 2047 word or a raw 8-bit byte)?
 * Carriage returns do not count: GMime drops them ("=\r?" is "=?"). */
static int needs_decoding(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] >= 0x80)
            return 1;
        if (s[i] == '=') {
            size_t k = i + 1;
            while (k < n && s[k] == '\r')
                k++;
            if (k < n && s[k] == '?')
                return 1;
        }
    }
    return 0;
}

/*
 * A value unfolded into a NUL-terminated string for GMime, as GMime's parser
 * gives it: line breaks and carriage returns go (the white space that starts
 * a continuation line stays), and leading and trailing white space is
 * trimmed.  Small values use the caller's stack buffer.  (Values hold no
 * NUL: scan_header_block() ends them there.)
 */
struct unfolded {
    char *s;
    size_t len;
    char *heap;
};

static int unfold(const struct span *v, char *stack, size_t stack_size, struct unfolded *u)
{
    u->heap = NULL;
    u->s = stack;
    if (v->len + 1 > stack_size) {
        u->heap = malloc(v->len + 1);
        if (u->heap == NULL)
            return -1;
        u->s = u->heap;
    }
    size_t o = 0;
    for (size_t i = 0; i < v->len; i++) {
        unsigned char c = v->p[i];
        if (c == '\n' || c == '\r' || (o == 0 && is_wsp(c)))
            continue;
        u->s[o++] = (char)c;
    }
    while (o > 0 && is_wsp((unsigned char)u->s[o - 1]))
        o--;
    u->s[o] = '\0';
    u->len = o;
    return 0;
}

static void unfolded_free(struct unfolded *u)
{
    free(u->heap);
    u->heap = NULL;
}

/* Puts the decoded text of an unfolded value into c. */
static void put_decoded_text(struct clean *c, const struct unfolded *u)
{
    if (!needs_decoding((const unsigned char *)u->s, u->len)) {
        clean_put(c, u->s, u->len);
        return;
    }
    char *d = g_mime_utils_header_decode_text(mime_options, u->s);
    if (d != NULL)
        clean_puts(c, d);
    g_free(d);
}

/* A text field (Subject): decoded when it needs it, cleaned. */
static char *text_value(const struct span *v, int *oom)
{
    struct clean c;
    clean_init(&c);
    if (!needs_decoding(v->p, v->len)) {
        /* as unfolded: without line breaks and carriage returns */
        const unsigned char *p = v->p, *end = v->p + v->len;
        while (p < end) {
            const unsigned char *run = p;
            while (p < end && *p != '\r' && *p != '\n')
                p++;
            clean_put(&c, run, (size_t)(p - run));
            while (p < end && (*p == '\r' || *p == '\n'))
                p++;
        }
        return clean_finish(&c, oom);
    }
    char stack[MH_MIME_STACK_VALUE];
    struct unfolded u;
    if (unfold(v, stack, sizeof stack, &u) != 0) {
        *oom = 1;
        return NULL;
    }
    put_decoded_text(&c, &u);
    unfolded_free(&u);
    return clean_finish(&c, oom);
}

/* ------------------------------------------------------------ addresses */

/* RFC 5322 atext (GMime's atom characters, ASCII): letters, digits and
 * !#$%&'*+-/=?^_`{|}~, as a bitmap of the 128 ASCII codes */
static int is_atext(unsigned char c)
{
    static const uint64_t atext[2] = {UINT64_C(0xa3ffacfa00000000), UINT64_C(0x7fffffffc7fffffe)};
    return c < 128 && (atext[c >> 6] >> (c & 63) & 1) != 0;
}

/* Is s[i] folding white space (SP, HTAB, LF, or the CR of a CRLF)?  A lone
 * CR is not: GMime drops it, joining what is around it. */
static int is_fws_at(const unsigned char *s, size_t n, size_t i)
{
    return s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n');
}

static size_t skip_fws(const unsigned char *s, size_t n, size_t i)
{
    while (i < n && is_fws_at(s, n, i))
        i++;
    return i;
}

/* Length of the dot-atom-text at s[i] (atext runs joined by single dots), or 0. */
static size_t dot_atom_len(const unsigned char *s, size_t n, size_t i)
{
    size_t start = i;
    for (;;) {
        size_t run = i;
        while (i < n && is_atext(s[i]))
            i++;
        if (i == run)
            return 0; /* empty, or a leading, doubled or trailing dot */
        if (i < n && s[i] == '.' && i + 1 < n && is_atext(s[i + 1]))
            i++;
        else
            return i - start;
    }
}

/* Length of the plain addr-spec (dot-atom "@" dot-atom, without an RFC 2047
 * word or "xn--") at s[i], or 0. */
static size_t addr_spec_len(const unsigned char *s, size_t n, size_t i)
{
    size_t local = dot_atom_len(s, n, i);
    if (local == 0 || i + local >= n || s[i + local] != '@')
        return 0;
    size_t domain = dot_atom_len(s, n, i + local + 1);
    if (domain == 0)
        return 0;
    size_t len = local + 1 + domain;
    for (size_t k = i; k + 1 < i + len; k++)
        if (s[k] == '=' && s[k + 1] == '?')
            return 0;
    /* GMime shows a domain with an IDNA label (xn--) through libidn2 */
    for (size_t k = i + local + 1; k + 4 <= i + len; k++)
        if (ascii_lower(s[k]) == 'x' && ascii_lower(s[k + 1]) == 'n' && s[k + 2] == '-' && s[k + 3] == '-')
            return 0;
    return len;
}

/* Does GMime's g_mime_utils_quote_string() quote the name? */
static int name_needs_quotes(const char *s)
{
    int quoted = 0;
    for (; *s; s++) {
        if (*s == '\\') {
            if (s[1] == '\0')
                break;
            s++;
        } else if (*s == '"') {
            quoted = !quoted;
        } else if (!quoted && strchr("()<>@,;:.[]", *s) != NULL) {
            return 1;
        }
    }
    return 0;
}

/* the white space GMime strips from a name (g_strstrip(): no vertical tab) */
static int is_strip_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

/*
 * Puts the display name of the raw phrase s[0..n) into c, made UTF-8 the way
 * GMime makes a parsed name (raw 8-bit text converted with the fallback
 * charsets when it is not UTF-8, quotes removed, RFC 2047 words decoded,
 * stripped) and quoted as GMime quotes it.  Returns 1 if it put a name, 0
 * when the name is empty (nothing put), -1 on allocation failure.
 */
static int put_display_name(struct clean *c, const unsigned char *s, size_t n)
{
    char stack[512];
    struct span v = {s, n};
    struct unfolded u;
    if (unfold(&v, stack, sizeof stack, &u) != 0)
        return -1;
    char *name = u.s, *converted = NULL, *decoded = NULL;
    if (needs_decoding((const unsigned char *)u.s, u.len) && !g_utf8_validate(u.s, (gssize)u.len, NULL)) {
        converted = g_mime_utils_decode_8bit(mime_options, u.s, u.len);
        if (converted != NULL)
            name = converted;
    }
    g_mime_utils_unquote_string(name);
    if (strstr(name, "=?") != NULL) {
        decoded = g_mime_utils_header_decode_phrase(mime_options, name);
        if (decoded != NULL)
            name = decoded;
    }
    size_t b = 0, e = strlen(name);
    while (b < e && is_strip_space(name[b]))
        b++;
    while (e > b && is_strip_space(name[e - 1]))
        e--;
    int put = e > b;
    if (put) {
        name[e] = '\0';
        int quote = name_needs_quotes(name + b);
        if (quote)
            clean_put(c, "\"", 1);
        for (size_t i = b; i < e;) {
            size_t run = i;
            while (i < e && name[i] != '\\' && (name[i] != '"' || !quote))
                i++;
            clean_put(c, name + run, i - run);
            if (i < e) {
                clean_put(c, "\\", 1);
                clean_put(c, name + i, 1);
                i++;
            }
        }
        if (quote)
            clean_put(c, "\"", 1);
    }
    g_free(decoded);
    g_free(converted);
    unfolded_free(&u);
    return put;
}

/* The end of the phrase at s[i] (atoms with dots, raw 8-bit bytes, RFC 2047
 * words, quoted strings without backslashes, separated by folding white
 * space), stopping before '<', ':' or anything else (i itself when there
 * is no phrase); SIZE_MAX when it is not one of those forms. */
static size_t phrase_end(const unsigned char *s, size_t n, size_t i)
{
    size_t end = i;
    if (i < n && s[i] == '.')
        return SIZE_MAX; /* to GMime, a phrase that starts with a dot is not one */
    while (i < n) {
        if (s[i] == '"') {
            size_t q = i + 1;
            while (q < n && s[q] != '"' && s[q] != '\\' && s[q] != '\0' &&
                   (s[q] != '\r' || is_fws_at(s, n, q)))
                q++;
            if (q == n || s[q] != '"')
                return SIZE_MAX;
            i = q + 1;
        } else if (is_atext(s[i]) || s[i] == '.' || s[i] >= 0x80) {
            while (i < n && (is_atext(s[i]) || s[i] == '.' || s[i] >= 0x80))
                i++;
        } else {
            break;
        }
        end = i;
        i = skip_fws(s, n, i);
    }
    return end;
}

/*
 * Formats the address list at s[*i] (up to the end, or in a group up to its
 * ';') into c the way GMime formats a parsed list, if it only has the common
 * forms: `addr-spec`, `<addr-spec>`, `phrase <addr-spec>` and, outside a
 * group, `phrase ":" [list] ";"`.  *count is the number of elements put.
 * Returns 1 when done, 0 when the list is not of those forms (c then holds a
 * part of it), -1 on allocation failure.
 */
static int put_list(struct clean *c, const unsigned char *s, size_t n, size_t *i, int in_group, int *count)
{
    *count = 0;
    for (;;) {
        *i = skip_fws(s, n, *i);
        if (*i == n || (in_group && s[*i] == ';'))
            return 1;
        if (s[*i] == ',') { /* an empty element, as GMime skips them */
            (*i)++;
            continue;
        }
        if (c->full && !in_group)
            return 1; /* nothing more would show */
        size_t alen = addr_spec_len(s, n, *i);
        size_t after = alen > 0 ? skip_fws(s, n, *i + alen) : 0;
        if (alen > 0 && (after == n || s[after] == ',' || (in_group && s[after] == ';'))) { /* addr-spec */
            if ((*count)++ > 0)
                clean_put(c, ", ", 2);
            clean_put(c, s + *i, alen);
            *i = after;
            continue;
        }
        size_t phrase = *i, pend = phrase_end(s, n, *i);
        if (pend == SIZE_MAX)
            return 0;
        size_t k = skip_fws(s, n, pend);
        if (k == n)
            return 0;
        if (s[k] == ':' && !in_group && pend > phrase) { /* a group */
            if ((*count)++ > 0)
                clean_put(c, ", ", 2);
            int r = put_display_name(c, s + phrase, pend - phrase);
            if (r <= 0)
                return r; /* a group without a name: left to GMime */
            clean_put(c, ": ", 2);
            int members;
            *i = k + 1;
            if ((r = put_list(c, s, n, i, 1, &members)) <= 0)
                return r;
            if (*i == n)
                return 0; /* no ';' */
            clean_put(c, ";", 1);
            (*i)++;
        } else if (s[k] == '<') { /* [phrase] <addr-spec> */
            size_t addr = k + 1;
            alen = addr_spec_len(s, n, addr);
            if (alen == 0 || addr + alen >= n || s[addr + alen] != '>')
                return 0;
            if ((*count)++ > 0)
                clean_put(c, ", ", 2);
            int r = pend > phrase ? put_display_name(c, s + phrase, pend - phrase) : 0;
            if (r < 0)
                return -1;
            if (r > 0) {
                clean_put(c, " <", 2);
                clean_put(c, s + addr, alen);
                clean_put(c, ">", 1);
            } else {
                clean_put(c, s + addr, alen);
            }
            *i = addr + alen + 1;
        } else {
            return 0;
        }
        *i = skip_fws(s, n, *i);
        if (*i < n && s[*i] != ',' && !(in_group && s[*i] == ';'))
            return 0;
    }
}

/* put_list() of a whole field: 0 also when it has no element at all. */
static int put_simple_addresses(struct clean *c, const unsigned char *s, size_t n)
{
    size_t i = 0;
    int count, r = put_list(c, s, n, &i, 0, &count);
    return r > 0 ? count > 0 : r;
}

/*
 * An address field the fast path does not take, the way it always was: a
 * GMimeMessage parsed from a header block of just this field, its address
 * list formatted, or when it has none, the field's decoded text.
 */
static char *gmime_address_value(const char *name, GMimeAddressType type, const struct span *v, int *oom)
{
    size_t name_len = strlen(name), len = name_len + 1 + v->len + 2;
    char stack[MH_MIME_STACK_VALUE];
    char *block = len <= sizeof stack ? stack : malloc(len);
    if (block == NULL) {
        *oom = 1;
        return NULL;
    }
    memcpy(block, name, name_len);
    block[name_len] = ':';
    memcpy(block + name_len + 1, v->p, v->len);
    memcpy(block + len - 2, "\n\n", 2);

    struct clean c;
    clean_init(&c);
    GMimeStream *stream = g_mime_stream_mem_new_with_buffer(block, len); /* copies block */
    GMimeParser *parser = g_mime_parser_new_with_stream(stream);
    g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
    g_mime_parser_set_respect_content_length(parser, FALSE);
    GMimeMessage *m = g_mime_parser_construct_message(parser, mime_options);
    if (m != NULL) {
        InternetAddressList *list = g_mime_message_get_addresses(m, type);
        if (list != NULL && internet_address_list_length(list) > 0) {
            char *s = internet_address_list_to_string(list, NULL, FALSE);
            if (s != NULL)
                clean_puts(&c, s);
            g_free(s);
        }
        if (c.len == 0) { /* not parseable as addresses at all: show the (decoded) text */
            const char *text = g_mime_object_get_header(GMIME_OBJECT(m), name);
            if (text != NULL)
                clean_puts(&c, text);
        }
        g_object_unref(m);
    }
    g_object_unref(parser);
    g_object_unref(stream);
    if (block != stack)
        free(block);
    return clean_finish(&c, oom);
}

/* An address field: "Name <addr>, ..." decoded; NULL if absent or empty. */
static char *address_value(const char *name, GMimeAddressType type, const struct span *v, int *oom)
{
    struct clean c;
    clean_init(&c);
    int r = put_simple_addresses(&c, v->p, v->len);
    if (r < 0) {
        *oom = 1;
        return NULL;
    }
    if (r > 0)
        return clean_finish(&c, oom);
    return gmime_address_value(name, type, v, oom);
}

/* ------------------------------------------------------------ Message-ID */

static char *message_id_value(const struct span *v, int *oom)
{
    struct clean c;
    clean_init(&c);
    /* the usual "<dot-atom@dot-atom>" */
    size_t b = skip_fws(v->p, v->len, 0), e = v->len;
    while (e > b && (is_wsp(v->p[e - 1]) || v->p[e - 1] == '\r' || v->p[e - 1] == '\n'))
        e--;
    if (e - b >= 2 && v->p[b] == '<' && v->p[e - 1] == '>' &&
        addr_spec_len(v->p, e - 1, b + 1) == e - b - 2) {
        clean_put(&c, v->p + b + 1, e - b - 2);
        return clean_finish(&c, oom);
    }

    char stack[MH_MIME_STACK_VALUE];
    struct unfolded u;
    if (unfold(v, stack, sizeof stack, &u) != 0) {
        *oom = 1;
        return NULL;
    }
    /* GMime takes the id from the decoded text of the field */
    char *text = needs_decoding((const unsigned char *)u.s, u.len)
                     ? g_mime_utils_header_decode_text(mime_options, u.s)
                     : NULL;
    char *id = g_mime_utils_decode_message_id(text != NULL ? text : u.s);
    g_free(text);
    int have_id = id != NULL && *id != '\0'; /* even if nothing of it is left after cleaning */
    if (have_id)
        clean_puts(&c, id);
    g_free(id);
    if (!have_id) {
        /* GMime could not parse it: the text without surrounding spaces and brackets */
        put_decoded_text(&c, &u);
        size_t s = 0, n = c.len;
        if (n > 0 && c.buf[0] == '<')
            s = 1;
        if (n > s && c.buf[n - 1] == '>')
            n--;
        while (s < n && c.buf[s] == ' ')
            s++;
        while (n > s && c.buf[n - 1] == ' ')
            n--;
        memmove(c.buf, c.buf + s, n - s);
        c.len = n - s;
    }
    unfolded_free(&u);
    return clean_finish(&c, oom);
}

/* ------------------------------------------------------------ Date */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    /* days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm) */
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static unsigned days_in_month(unsigned y, unsigned m)
{
    static const unsigned char days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
        return 29;
    return days[m - 1];
}

/* Reads exactly `digits` decimal digits at s[*i]. */
static int read_digits(const unsigned char *s, size_t n, size_t *i, int digits, unsigned *out)
{
    unsigned v = 0;
    for (int k = 0; k < digits; k++, (*i)++) {
        if (*i >= n || s[*i] < '0' || s[*i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[*i] - '0');
    }
    *out = v;
    return 0;
}

/* Matches one of the names (3 letters each, exact case) at s[*i]; returns its index or -1. */
static int read_name3(const unsigned char *s, size_t n, size_t *i, const char *names, int count)
{
    if (*i + 3 > n)
        return -1;
    for (int k = 0; k < count; k++) {
        if (memcmp(s + *i, names + 3 * k, 3) == 0) {
            *i += 3;
            return k;
        }
    }
    return -1;
}

/*
 * The usual form of an RFC 5322 date, "[Day, ]D Mon YYYY HH:MM:SS ZONE
 * [(comment)]" with a numeric zone or GMT/UT/UTC, as seconds since the
 * epoch.  Returns -1 for anything else (GMime's parser, which knows the
 * obsolete forms, then decides).
 */
static int fast_date(const unsigned char *s, size_t n, int64_t *out)
{
    unsigned day, year, hour, min, sec, zh, zm;
    size_t i = skip_fws(s, n, 0);
    if (read_name3(s, n, &i, "MonTueWedThuFriSatSun", 7) >= 0) {
        if (i >= n || s[i] != ',')
            return -1;
        i = skip_fws(s, n, i + 1);
    }
    if (read_digits(s, n, &i, 1, &day) != 0)
        return -1;
    if (i < n && s[i] >= '0' && s[i] <= '9')
        day = day * 10 + (unsigned)(s[i++] - '0');
    if (i >= n || !is_wsp(s[i]))
        return -1;
    i = skip_fws(s, n, i);
    int month = read_name3(s, n, &i, "JanFebMarAprMayJunJulAugSepOctNovDec", 12);
    if (month < 0 || i >= n || !is_wsp(s[i]))
        return -1;
    i = skip_fws(s, n, i);
    if (read_digits(s, n, &i, 4, &year) != 0 || i >= n || !is_wsp(s[i]))
        return -1;
    i = skip_fws(s, n, i);
    if (read_digits(s, n, &i, 2, &hour) != 0 || i >= n || s[i++] != ':' ||
        read_digits(s, n, &i, 2, &min) != 0 || i >= n || s[i++] != ':' ||
        read_digits(s, n, &i, 2, &sec) != 0 || i >= n || !is_wsp(s[i]))
        return -1;
    i = skip_fws(s, n, i);
    int64_t offset;
    if (i < n && (s[i] == '+' || s[i] == '-')) {
        int neg = s[i++] == '-';
        if (read_digits(s, n, &i, 2, &zh) != 0 || read_digits(s, n, &i, 2, &zm) != 0 || zh > 23 || zm > 59)
            return -1;
        offset = (int64_t)(zh * 3600 + zm * 60) * (neg ? -1 : 1);
    } else if (i + 3 <= n && memcmp(s + i, "GMT", 3) == 0) {
        i += 3;
        offset = 0;
    } else if (i + 3 <= n && memcmp(s + i, "UTC", 3) == 0) {
        i += 3;
        offset = 0;
    } else if (i + 2 <= n && memcmp(s + i, "UT", 2) == 0) {
        i += 2;
        offset = 0;
    } else {
        return -1;
    }
    /* nothing after the zone but white space and one comment without nesting */
    size_t j = skip_fws(s, n, i);
    if (j < n) {
        if (j == i || s[j] != '(')
            return -1;
        while (j < n && s[j] != ')' && s[j] != '(' && s[j] != '\\')
            j++;
        if (j == n || s[j] != ')' || skip_fws(s, n, j + 1) != n)
            return -1;
    }
    if (year < 1970 || day < 1 || day > days_in_month(year, (unsigned)month + 1) || hour > 23 || min > 59 ||
        sec > 59)
        return -1;
    *out = days_from_civil(year, (unsigned)month + 1, day) * 86400 + hour * 3600 + min * 60 + sec - offset;
    return 0;
}

/* The Date field as seconds since the epoch; 0 if unparsable (or on allocation failure: *oom). */
static int64_t date_value(const struct span *v, int *oom)
{
    int64_t t;
    int decode = needs_decoding(v->p, v->len);
    if (!decode && fast_date(v->p, v->len, &t) == 0)
        return t;
    char stack[256];
    struct unfolded u;
    if (unfold(v, stack, sizeof stack, &u) != 0) {
        *oom = 1;
        return 0;
    }
    /* GMime reads the date from the decoded text of the field */
    char *text = decode ? g_mime_utils_header_decode_text(mime_options, u.s) : NULL;
    GDateTime *d = g_mime_utils_header_decode_date(text != NULL ? text : u.s);
    g_free(text);
    t = d != NULL ? (int64_t)g_date_time_to_unix(d) : 0;
    if (d != NULL)
        g_date_time_unref(d);
    unfolded_free(&u);
    return t;
}

/* ------------------------------------------------------------ the interface */

int mh_mime_parse(const void *raw, size_t len, struct mh_mime_headers *h)
{
    memset(h, 0, sizeof *h);
    if (raw == NULL || len == 0)
        return 0;
    mh_mime_init();

    struct span f[F_COUNT] = {{NULL, 0}};
    scan_header_block(raw, len, f);
    int oom = 0;
    if (f[F_FROM].p != NULL)
        h->from = address_value("From", GMIME_ADDRESS_TYPE_FROM, &f[F_FROM], &oom);
    if (f[F_TO].p != NULL)
        h->to = address_value("To", GMIME_ADDRESS_TYPE_TO, &f[F_TO], &oom);
    if (f[F_CC].p != NULL)
        h->cc = address_value("Cc", GMIME_ADDRESS_TYPE_CC, &f[F_CC], &oom);
    if (f[F_SUBJECT].p != NULL)
        h->subject = text_value(&f[F_SUBJECT], &oom);
    if (f[F_MESSAGE_ID].p != NULL)
        h->message_id = message_id_value(&f[F_MESSAGE_ID], &oom);
    if (f[F_DATE].p != NULL)
        h->date = date_value(&f[F_DATE], &oom);
    if (oom) {
        mh_mime_headers_clear(h);
        return -1;
    }
    return 0;
}

void mh_mime_headers_clear(struct mh_mime_headers *h)
{
    if (h == NULL)
        return;
    free(h->from);
    free(h->to);
    free(h->cc);
    free(h->subject);
    free(h->message_id);
    memset(h, 0, sizeof *h);
}

/* ------------------------------------------------------------ the body */

/*
 * The body is read with GMime's MIME parser (a GMimeMessage), which is much
 * slower than the header scan above but is the only sane way through
 * nested multiparts, transfer encodings and charsets.  The parts are walked
 * depth-first (at most BODY_MAX_DEPTH deep and BODY_MAX_PARTS parts); text
 * is gathered into one buffer that stops growing at MH_MIME_BODY_TEXT_MAX.
 */
#define BODY_MAX_DEPTH 32
#define BODY_MAX_PARTS 1000

/* A growing text buffer with a cap (0: none); what does not fit is dropped. */
struct gbuf {
    char *p;
    size_t len, cap, max;
    int full, oom;
};

/* Appends n bytes; when the cap cuts them, the cut is on a UTF-8 character boundary. */
static void gbuf_put(struct gbuf *b, const void *data, size_t n)
{
    const unsigned char *s = data;
    if (b->full || b->oom || n == 0)
        return;
    if (b->max > 0 && b->len + n > b->max) {
        n = b->max - b->len; /* s[n] exists: n shrank */
        while (n > 0 && (s[n] & 0xc0) == 0x80)
            n--;
        b->full = 1;
        if (n == 0)
            return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (np == NULL) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void gbuf_free(struct gbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/*
 * Appends text as clean UTF-8: invalid bytes become U+FFFD, CRLF and a lone
 * CR become "\n", other controls (but "\n" and "\t") become spaces.
 */
static void put_clean_text(struct gbuf *b, const void *text, size_t n)
{
    static const unsigned char replacement[] = {0xef, 0xbf, 0xbd};
    const unsigned char *p = text, *end = p + n, *run = p;
    while (p < end && !b->full && !b->oom) {
        uint32_t cp;
        size_t k;
        if (*p >= 0x20 && *p < 0x7f) {
            p++;
            continue;
        }
        if (*p == '\n' || *p == '\t') {
            p++;
            continue;
        }
        if (*p >= 0x80 && (k = mh_utf8_decode(p, (size_t)(end - p), &cp)) != 0 && !(cp >= 0x80 && cp <= 0x9f)) {
            p += k;
            continue;
        }
        gbuf_put(b, run, (size_t)(p - run));
        if (*p == '\r') { /* CRLF is a line break, and so is a lone CR */
            if (p + 1 == end || p[1] != '\n')
                gbuf_put(b, "\n", 1);
            p++;
        } else if (*p < 0x80 || (mh_utf8_decode(p, (size_t)(end - p), &cp) != 0)) { /* a control character */
            size_t len = *p < 0x80 ? 1 : 2;
            gbuf_put(b, " ", 1);
            p += len;
        } else {
            gbuf_put(b, replacement, sizeof replacement);
            p++;
        }
        run = p;
    }
    gbuf_put(b, run, (size_t)(p - run));
}

static int utf8_valid(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = mh_utf8_decode(p + i, n - i, &cp);
        if (k == 0)
            return 0;
        i += k;
    }
    return 1;
}

/*
 * Converts in (n bytes) with cd into out.  strict: fail (-1) on the first
 * invalid or incomplete sequence; otherwise each bad byte becomes U+FFFD.
 */
static int iconv_into(struct gbuf *out, iconv_t cd, const unsigned char *in, size_t n, int strict)
{
    static const char replacement[] = "\xef\xbf\xbd";
    char obuf[8192];
    char *ip = (char *)(uintptr_t)in;
    size_t il = n;
    iconv(cd, NULL, NULL, NULL, NULL);
    while (il > 0 && !out->full && !out->oom) {
        char *op = obuf;
        size_t ol = sizeof obuf;
        size_t r = iconv(cd, &ip, &il, &op, &ol);
        int e = errno;
        gbuf_put(out, obuf, (size_t)(op - obuf));
        if (r != (size_t)-1)
            break;
        if (e == E2BIG)
            continue;
        if (strict || (e != EILSEQ && e != EINVAL))
            return -1;
        gbuf_put(out, replacement, 3);
        ip++;
        il--;
    }
    char *op = obuf;
    size_t ol = sizeof obuf;
    if (iconv(cd, NULL, NULL, &op, &ol) != (size_t)-1) /* the shift back of a stateful charset */
        gbuf_put(out, obuf, (size_t)(op - obuf));
    return 0;
}

/* Is charset a name of UTF-8 / US-ASCII (or absent)? */
static int charset_is(const char *charset, const char *const *names)
{
    for (; *names; names++)
        if (g_ascii_strcasecmp(charset, *names) == 0)
            return 1;
    return 0;
}

/*
 * The bytes of a text part in UTF-8 (not cleaned yet), appended to out.
 * A known charset is converted leniently; no charset, US-ASCII with 8-bit
 * bytes, or an unknown one: UTF-8 if valid, else the first of GB18030,
 * Big5 that converts without an error, else ISO-8859-1.
 */
static void to_utf8(struct gbuf *out, const char *charset, const unsigned char *in, size_t n)
{
    static const char *const utf8_names[] = {"utf-8", "utf8", NULL};
    static const char *const ascii_names[] = {"us-ascii", "ascii", "us_ascii", "ansi_x3.4-1968", NULL};
    if (charset != NULL && *charset != '\0' && !charset_is(charset, ascii_names)) {
        if (charset_is(charset, utf8_names)) {
            gbuf_put(out, in, n);
            return;
        }
        iconv_t cd = g_mime_iconv_open("UTF-8", charset);
        if (cd != (iconv_t)-1) {
            iconv_into(out, cd, in, n, 0);
            g_mime_iconv_close(cd);
            return;
        }
    }
    if (utf8_valid(in, n)) {
        gbuf_put(out, in, n);
        return;
    }
    static const char *const fallback[] = {"GB18030", "Big5", NULL};
    for (int i = 0; fallback[i] != NULL; i++) {
        iconv_t cd = g_mime_iconv_open("UTF-8", fallback[i]);
        if (cd == (iconv_t)-1)
            continue;
        struct gbuf tmp = {.max = out->max ? out->max - out->len + 4 : 0};
        int rc = iconv_into(&tmp, cd, in, n, 1);
        g_mime_iconv_close(cd);
        if (rc == 0 && !tmp.oom) {
            gbuf_put(out, tmp.p, tmp.len);
            gbuf_free(&tmp);
            return;
        }
        gbuf_free(&tmp);
    }
    for (size_t i = 0; i < n && !out->full; i++) { /* ISO-8859-1 */
        unsigned char u[2];
        if (in[i] < 0x80) {
            gbuf_put(out, in + i, 1);
        } else {
            u[0] = (unsigned char)(0xc0 | in[i] >> 6);
            u[1] = (unsigned char)(0x80 | (in[i] & 0x3f));
            gbuf_put(out, u, 2);
        }
    }
}

/* ------------------------------------------------------------ HTML to text */

struct entity {
    const char *name;
    uint32_t cp;
};

static const struct entity entities[] = {
    {"amp", '&'},       {"lt", '<'},       {"gt", '>'},        {"quot", '"'},     {"apos", '\''},
    {"nbsp", 0xa0},     {"shy", 0xad},     {"copy", 0xa9},     {"reg", 0xae},     {"trade", 0x2122},
    {"hellip", 0x2026}, {"mdash", 0x2014}, {"ndash", 0x2013},  {"lsquo", 0x2018}, {"rsquo", 0x2019},
    {"ldquo", 0x201c},  {"rdquo", 0x201d}, {"sbquo", 0x201a},  {"bdquo", 0x201e}, {"bull", 0x2022},
    {"middot", 0xb7},   {"euro", 0x20ac},  {"pound", 0xa3},    {"yen", 0xa5},     {"cent", 0xa2},
    {"sect", 0xa7},     {"para", 0xb6},    {"deg", 0xb0},      {"plusmn", 0xb1},  {"laquo", 0xab},
    {"raquo", 0xbb},    {"times", 0xd7},   {"divide", 0xf7},   {"iexcl", 0xa1},   {"iquest", 0xbf},
    {"ensp", 0x2002},   {"emsp", 0x2003},  {"thinsp", 0x2009}, {"zwnj", 0x200c},  {"zwj", 0x200d},
    {"Agrave", 0xc0},   {"Aacute", 0xc1},  {"Acirc", 0xc2},    {"Atilde", 0xc3},  {"Auml", 0xc4},
    {"Aring", 0xc5},    {"AElig", 0xc6},   {"Ccedil", 0xc7},   {"Egrave", 0xc8},  {"Eacute", 0xc9},
    {"Ecirc", 0xca},    {"Euml", 0xcb},    {"Igrave", 0xcc},   {"Iacute", 0xcd},  {"Icirc", 0xce},
    {"Iuml", 0xcf},     {"ETH", 0xd0},     {"Ntilde", 0xd1},   {"Ograve", 0xd2},  {"Oacute", 0xd3},
    {"Ocirc", 0xd4},    {"Otilde", 0xd5},  {"Ouml", 0xd6},     {"Oslash", 0xd8},  {"Ugrave", 0xd9},
    {"Uacute", 0xda},   {"Ucirc", 0xdb},   {"Uuml", 0xdc},     {"Yacute", 0xdd},  {"THORN", 0xde},
    {"szlig", 0xdf},    {"agrave", 0xe0},  {"aacute", 0xe1},   {"acirc", 0xe2},   {"atilde", 0xe3},
    {"auml", 0xe4},     {"aring", 0xe5},   {"aelig", 0xe6},    {"ccedil", 0xe7},  {"egrave", 0xe8},
    {"eacute", 0xe9},   {"ecirc", 0xea},   {"euml", 0xeb},     {"igrave", 0xec},  {"iacute", 0xed},
    {"icirc", 0xee},    {"iuml", 0xef},    {"eth", 0xf0},      {"ntilde", 0xf1},  {"ograve", 0xf2},
    {"oacute", 0xf3},   {"ocirc", 0xf4},   {"otilde", 0xf5},   {"ouml", 0xf6},    {"oslash", 0xf8},
    {"ugrave", 0xf9},   {"uacute", 0xfa},  {"ucirc", 0xfb},    {"uuml", 0xfc},    {"yacute", 0xfd},
    {"thorn", 0xfe},    {"yuml", 0xff},
};

static size_t put_cp(unsigned char *u, uint32_t cp)
{
    if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        cp = 0xfffd;
    if (cp < 0x80) {
        u[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        u[0] = (unsigned char)(0xc0 | cp >> 6);
        u[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        u[0] = (unsigned char)(0xe0 | cp >> 12);
        u[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        u[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    u[0] = (unsigned char)(0xf0 | cp >> 18);
    u[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
    u[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
    u[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

static int is_ascii_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_ascii_alnum(unsigned char c)
{
    return is_ascii_alpha(c) || (c >= '0' && c <= '9');
}

/* The character reference at s[i] ('&'): its length and code point, or 0. */
static size_t entity_at(const unsigned char *s, size_t n, size_t i, uint32_t *cp)
{
    size_t j = i + 1;
    if (j < n && s[j] == '#') {
        int hex = j + 1 < n && (s[j + 1] == 'x' || s[j + 1] == 'X');
        j += hex ? 2 : 1;
        uint32_t v = 0;
        size_t digits = 0;
        while (j < n && digits < 8) {
            unsigned char c = s[j];
            int d = c >= '0' && c <= '9'          ? c - '0'
                    : hex && c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : hex && c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                  : -1;
            if (d < 0)
                break;
            v = v * (hex ? 16u : 10u) + (uint32_t)d;
            digits++;
            j++;
        }
        if (digits == 0)
            return 0;
        if (j < n && s[j] == ';')
            j++;
        *cp = v;
        return j - i;
    }
    size_t start = j;
    while (j < n && j - start < 8 && is_ascii_alnum(s[j]))
        j++;
    if (j == start || j >= n || s[j] != ';')
        return 0;
    for (size_t k = 0; k < sizeof entities / sizeof entities[0]; k++) {
        if (strlen(entities[k].name) == j - start && memcmp(entities[k].name, s + start, j - start) == 0) {
            *cp = entities[k].cp;
            return j + 1 - i;
        }
    }
    return 0;
}

/* Case-insensitive search for the ASCII lower-case needle in s[from..n); n if absent. */
static size_t find_ci(const unsigned char *s, size_t n, size_t from, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = from; i + m <= n; i++) {
        size_t k = 0;
        while (k < m && ascii_lower(s[i + k]) == (unsigned char)needle[k])
            k++;
        if (k == m)
            return i;
    }
    return n;
}

/* Tags that do not break a word ("<b>W</b>ord" is one word). */
static int is_inline_tag(const unsigned char *name, size_t n)
{
    static const char *const tags[] = {
        "a",      "abbr", "b",   "bdi",  "bdo",  "big",  "cite", "code", "data",  "del",   "dfn",  "em",
        "font",   "i",    "ins", "kbd",  "mark", "nobr", "q",    "s",    "samp",  "small", "span", "strike",
        "strong", "sub",  "sup", "time", "tt",   "u",    "var",  "wbr",  "label", NULL};
    for (int k = 0; tags[k] != NULL; k++)
        if (name_is(name, n, tags[k]))
            return 1;
    return 0;
}

/* The readable text of HTML (UTF-8) appended to out, cleaned. */
static void html_to_text(struct gbuf *out, const unsigned char *s, size_t n)
{
    size_t i = 0, run = 0;
    size_t open_from[2] = {SIZE_MAX, SIZE_MAX}; /* a ' (0) or " (1) opened at or after this never closes */
    while (i < n && !out->full && !out->oom) {
        if (s[i] != '<' && s[i] != '&') {
            i++;
            continue;
        }
        put_clean_text(out, s + run, i - run);
        if (s[i] == '&') {
            uint32_t cp;
            size_t k = entity_at(s, n, i, &cp);
            if (k == 0) {
                put_clean_text(out, "&", 1);
                i++;
            } else {
                unsigned char u[4];
                put_clean_text(out, u, put_cp(u, cp));
                i += k;
            }
            run = i;
            continue;
        }
        /* '<' */
        if (i + 3 < n && memcmp(s + i + 1, "!--", 3) == 0) {
            size_t e = find_ci(s, n, i + 4, "-->");
            i = e < n ? e + 3 : n;
            run = i;
            continue;
        }
        size_t j = i + 1;
        int closing = j < n && s[j] == '/';
        if (closing)
            j++;
        if (j >= n || (!is_ascii_alpha(s[j]) && s[j] != '!' && s[j] != '?')) {
            i++; /* a literal '<' */
            run = i - 1;
            continue;
        }
        size_t name = j;
        while (j < n && (is_ascii_alnum(s[j]) || s[j] == '-' || s[j] == ':'))
            j++;
        size_t name_len = j - name;
        /*
         * The end of the tag: '>' outside quoted attribute values; when a
         * quote never closes, the first '>'.  A quote that did not close
         * from some position never closes from a later one (open_from), so
         * every byte is looked at a bounded number of times.
         */
        size_t k = j;
        for (;;) {
            while (k < n && s[k] != '>' && s[k] != '"' && s[k] != '\'')
                k++;
            if (k >= n || s[k] == '>')
                break;
            if (!(s[k - 1] == '=' || s[k - 1] == ' ')) { /* not the start of a value */
                k++;
                continue;
            }
            int dq = s[k] == '"';
            const unsigned char *qend = k + 1 < open_from[dq] ? memchr(s + k + 1, s[k], n - k - 1) : NULL;
            if (qend == NULL) {
                if (k + 1 < open_from[dq])
                    open_from[dq] = k + 1;
                const unsigned char *gt = memchr(s + j, '>', n - j);
                k = gt != NULL ? (size_t)(gt - s) : n;
                break;
            }
            k = (size_t)(qend - s) + 1;
        }
        size_t end = k < n ? k + 1 : n;
        if (!closing && (name_is(s + name, name_len, "script") || name_is(s + name, name_len, "style") ||
                         name_is(s + name, name_len, "title"))) {
            /* skipped with their content (a title is nearly always the subject again) */
            char close[16];
            snprintf(close, sizeof close, "</%.*s", (int)name_len, (const char *)s + name);
            for (char *c = close; *c; c++)
                *c = (char)ascii_lower((unsigned char)*c);
            size_t e = find_ci(s, n, end, close);
            if (e < n) {
                while (e < n && s[e] != '>')
                    e++;
                end = e < n ? e + 1 : n;
            } else {
                end = n;
            }
        }
        if (!is_inline_tag(s + name, name_len) && out->len > 0 && out->p[out->len - 1] != '\n')
            put_clean_text(out, "\n", 1);
        i = end;
        run = i;
    }
    put_clean_text(out, s + run, i - run);
}

/* The charset of a <meta> in the first 2 KiB of HTML without a declared one, or NULL. */
static char *html_meta_charset(const unsigned char *s, size_t n)
{
    size_t lim = n < 2048 ? n : 2048;
    size_t i = find_ci(s, lim, 0, "charset=");
    if (i >= lim)
        return NULL;
    i += 8;
    while (i < lim && (s[i] == '"' || s[i] == '\'' || s[i] == ' '))
        i++;
    size_t j = i;
    while (j < lim && j - i < 40 &&
           (is_ascii_alnum(s[j]) || s[j] == '-' || s[j] == '_' || s[j] == '.' || s[j] == ':'))
        j++;
    if (j == i)
        return NULL;
    return g_strndup((const char *)s + i, j - i);
}

/* ------------------------------------------------------------ walking the parts */

struct body_ctx {
    struct gbuf text, names;
    json_t *att;
    int parts, oom;
};

static void text_sep(struct body_ctx *c)
{
    if (c->text.len > 0 && c->text.p[c->text.len - 1] != '\n')
        gbuf_put(&c->text, "\n", 1);
}

/* The decoded content of a leaf part (transfer encoding undone), or NULL. */
static GByteArray *part_bytes(GMimePart *part)
{
    GMimeDataWrapper *w = g_mime_part_get_content(part);
    if (w == NULL)
        return NULL;
    GMimeStream *s = g_mime_stream_mem_new();
    g_mime_data_wrapper_write_to_stream(w, s);
    GByteArray *a = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(s));
    g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(s), FALSE);
    g_object_unref(s);
    return a;
}

static int64_t part_size(GMimePart *part)
{
    GMimeDataWrapper *w = g_mime_part_get_content(part);
    if (w == NULL)
        return 0;
    GMimeStream *s = g_mime_stream_null_new();
    g_mime_data_wrapper_write_to_stream(w, s);
    int64_t n = (int64_t)GMIME_STREAM_NULL(s)->written;
    g_object_unref(s);
    return n;
}

static int is_attachment(GMimeObject *o)
{
    GMimeContentDisposition *d = g_mime_object_get_content_disposition(o);
    if (d != NULL && g_mime_content_disposition_is_attachment(d))
        return 1;
    return GMIME_IS_PART(o) && g_mime_part_get_filename(GMIME_PART(o)) != NULL;
}

/* A text/plain (html 0) or text/html (html 1) part that is body text, not an attachment. */
static int is_body_text(GMimeObject *o, int html)
{
    if (!GMIME_IS_PART(o) || is_attachment(o))
        return 0;
    GMimeContentType *ct = g_mime_object_get_content_type(o);
    return ct != NULL && g_mime_content_type_is_type(ct, "text", html ? "html" : "plain");
}

static void add_attachment(struct body_ctx *c, const char *name, const char *type, int64_t size)
{
    json_t *o = json_object();
    char *clean_name = NULL;
    if (name != NULL) {
        struct clean cl;
        clean_init(&cl);
        clean_puts(&cl, name);
        int oom = 0;
        clean_name = clean_finish(&cl, &oom);
        if (oom)
            c->oom = 1;
    }
    if (o == NULL) {
        c->oom = 1;
        free(clean_name);
        return;
    }
    json_object_set_new(o, "name", clean_name != NULL ? json_string(clean_name) : json_null());
    json_object_set_new(o, "type", json_string(type));
    json_object_set_new(o, "size", json_integer((json_int_t)size));
    if (json_array_append_new(c->att, o) != 0)
        c->oom = 1;
    if (clean_name != NULL) {
        if (c->names.len > 0)
            gbuf_put(&c->names, "\n", 1);
        gbuf_put(&c->names, clean_name, strlen(clean_name));
    }
    free(clean_name);
}

static void leaf(struct body_ctx *c, GMimePart *part)
{
    GMimeObject *o = GMIME_OBJECT(part);
    GMimeContentType *ct = g_mime_object_get_content_type(o);
    int plain = is_body_text(o, 0), html = !plain && is_body_text(o, 1);
    if (plain || html) {
        if (c->text.full)
            return;
        GByteArray *a = part_bytes(part);
        if (a == NULL)
            return;
        const char *charset = g_mime_object_get_content_type_parameter(o, "charset");
        char *meta =
            html && (charset == NULL || *charset == '\0') ? html_meta_charset(a->data, a->len) : NULL;
        text_sep(c);
        if (plain) {
            struct gbuf u = {.max = MH_MIME_BODY_TEXT_MAX};
            to_utf8(&u, charset, a->data, a->len);
            put_clean_text(&c->text, u.p, u.len);
            c->oom |= u.oom;
            gbuf_free(&u);
        } else {
            struct gbuf u = {.max = 16 * MH_MIME_BODY_TEXT_MAX}; /* markup is longer than its text */
            to_utf8(&u, meta != NULL ? meta : charset, a->data, a->len);
            html_to_text(&c->text, (const unsigned char *)u.p, u.len);
            c->oom |= u.oom;
            gbuf_free(&u);
        }
        g_free(meta);
        g_byte_array_free(a, TRUE);
        return;
    }
    char *type = ct != NULL ? g_mime_content_type_get_mime_type(ct) : NULL;
    if (type != NULL)
        for (char *p = type; *p; p++)
            *p = (char)ascii_lower((unsigned char)*p);
    const char *t = type != NULL ? type : "application/octet-stream";
    if (strcmp(t, "application/pgp-signature") != 0 && strcmp(t, "application/pkcs7-signature") != 0 &&
        strcmp(t, "application/x-pkcs7-signature") != 0)
        add_attachment(c, g_mime_part_get_filename(part), t, part_size(part));
    g_free(type);
}

static void walk(struct body_ctx *c, GMimeObject *o, int depth);

static void embedded_message(struct body_ctx *c, GMimeMessagePart *mp, int depth)
{
    GMimeMessage *m = g_mime_message_part_get_message(mp);
    GMimeObject *o = GMIME_OBJECT(mp);
    const char *fname = NULL;
    GMimeContentDisposition *d = g_mime_object_get_content_disposition(o);
    if (d != NULL)
        fname = g_mime_content_disposition_get_parameter(d, "filename");
    if (fname == NULL)
        fname = g_mime_object_get_content_type_parameter(o, "name");
    int64_t size = 0;
    if (m != NULL) {
        GMimeStream *s = g_mime_stream_null_new();
        g_mime_object_write_to_stream(GMIME_OBJECT(m), NULL, s);
        size = (int64_t)GMIME_STREAM_NULL(s)->written;
        g_object_unref(s);
    }
    add_attachment(c,
                   fname != NULL ? fname
                   : m != NULL   ? g_mime_message_get_subject(m)
                                 : NULL,
                   "message/rfc822", size);
    if (m == NULL)
        return;
    /* an attached (forwarded) message: its subject and senders, then its parts */
    static const GMimeAddressType types[] = {GMIME_ADDRESS_TYPE_FROM, GMIME_ADDRESS_TYPE_TO,
                                             GMIME_ADDRESS_TYPE_CC};
    const char *subject = g_mime_message_get_subject(m);
    text_sep(c);
    if (subject != NULL) {
        put_clean_text(&c->text, subject, strlen(subject));
        text_sep(c);
    }
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        InternetAddressList *l = g_mime_message_get_addresses(m, types[i]);
        if (l == NULL || internet_address_list_length(l) == 0)
            continue;
        char *s = internet_address_list_to_string(l, NULL, FALSE);
        if (s != NULL) {
            put_clean_text(&c->text, s, strlen(s));
            text_sep(c);
        }
        g_free(s);
    }
    walk(c, g_mime_message_get_mime_part(m), depth + 1);
}

static void walk(struct body_ctx *c, GMimeObject *o, int depth)
{
    if (o == NULL || depth > BODY_MAX_DEPTH || c->parts >= BODY_MAX_PARTS || c->oom)
        return;
    c->parts++;
    if (GMIME_IS_MULTIPART(o)) {
        GMimeMultipart *mp = GMIME_MULTIPART(o);
        int n = g_mime_multipart_get_count(mp);
        GMimeContentType *ct = g_mime_object_get_content_type(o);
        if (ct != NULL && g_mime_content_type_is_type(ct, "multipart", "alternative") && n > 0) {
            /* the same text twice: the plain one if there is one, else the last (richest) */
            for (int i = 0; i < n; i++) {
                GMimeObject *part = g_mime_multipart_get_part(mp, i);
                if (is_body_text(part, 0)) {
                    walk(c, part, depth + 1);
                    return;
                }
            }
            walk(c, g_mime_multipart_get_part(mp, n - 1), depth + 1);
            return;
        }
        for (int i = 0; i < n; i++)
            walk(c, g_mime_multipart_get_part(mp, i), depth + 1);
    } else if (GMIME_IS_MESSAGE_PART(o)) {
        embedded_message(c, GMIME_MESSAGE_PART(o), depth);
    } else if (GMIME_IS_PART(o)) {
        leaf(c, GMIME_PART(o));
    }
}

int mh_mime_parse_body(const void *raw, size_t len, struct mh_mime_body *b)
{
    memset(b, 0, sizeof *b);
    if (raw == NULL || len == 0)
        return 0;
    mh_mime_init();
    struct body_ctx c = {.text = {.max = MH_MIME_BODY_TEXT_MAX}};
    c.att = json_array();
    if (c.att == NULL)
        return -1;

    GMimeStream *stream = g_mime_stream_mem_new_with_buffer(raw, len);
    GMimeParser *parser = g_mime_parser_new_with_stream(stream);
    g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
    g_mime_parser_set_respect_content_length(parser, FALSE);
    GMimeMessage *m = g_mime_parser_construct_message(parser, mime_options);
    if (m != NULL) {
        walk(&c, g_mime_message_get_mime_part(m), 0);
        g_object_unref(m);
    } else {
        /* not even a message to GMime: the bytes after the header block, as text */
        const unsigned char *p = raw, *end = p + len, *body = p;
        for (const unsigned char *q = p; q < end; q++) {
            if (*q == '\n' &&
                (q + 1 < end && (q[1] == '\n' || (q[1] == '\r' && q + 2 < end && q[2] == '\n')))) {
                body = q + 1;
                break;
            }
        }
        struct gbuf u = {.max = MH_MIME_BODY_TEXT_MAX};
        to_utf8(&u, NULL, body, (size_t)(end - body));
        put_clean_text(&c.text, u.p, u.len);
        c.oom |= u.oom;
        gbuf_free(&u);
    }
    g_object_unref(parser);
    g_object_unref(stream);

    int oom = c.oom || c.text.oom || c.names.oom;
    /* trailing newlines are no text */
    while (c.text.len > 0 && (c.text.p[c.text.len - 1] == '\n' || c.text.p[c.text.len - 1] == ' '))
        c.text.p[--c.text.len] = '\0';
    if (!oom && c.text.len > 0) {
        b->text = c.text.p;
        b->text_len = c.text.len;
        c.text.p = NULL;
    }
    if (!oom && json_array_size(c.att) > 0) {
        b->attachments = json_dumps(c.att, JSON_COMPACT);
        if (b->attachments == NULL)
            oom = 1;
        if (c.names.len > 0) {
            b->attachment_names = c.names.p;
            c.names.p = NULL;
        }
    }
    json_decref(c.att);
    gbuf_free(&c.text);
    gbuf_free(&c.names);
    if (oom) {
        mh_mime_body_clear(b);
        return -1;
    }
    return 0;
}

void mh_mime_body_clear(struct mh_mime_body *b)
{
    if (b == NULL)
        return;
    free(b->text);
    free(b->attachments);
    free(b->attachment_names);
    memset(b, 0, sizeof *b);
}

/*
 * imap_parse: streaming IMAP response parser.  See imap_parse.h.
 *
 * A response is assembled as its line text (CRLF removed; each "{n}" marker
 * kept where it was, the continuation appended right after it) plus one
 * buffer per literal, remembered with the offset of its '{'.  Once the last
 * line ends without a literal marker the text is tokenised into a tree that
 * lives in a per-response arena, and handed to the callback.
 */
#include "config.h"

#include "imap_parse.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_BLOCK ((size_t)16 << 10)

struct ablock {
    struct ablock *next;
    size_t used, cap;
    max_align_t data[];
};

struct lit {
    char *data;
    size_t len, cap;
    uint64_t want;
    size_t pos; /* offset of its '{' in the text */
};

struct imap_parser {
    uint64_t max_literal;
    imap_resp_cb cb;
    void *arg;
    int failed;
    char err[160];

    char *text;
    size_t tlen, tcap, seg_start;

    struct lit *lits;
    size_t nlits, lcap;
    int in_lit;

    struct ablock *arena;

    /* tokenizer cursor */
    size_t i;
    size_t k;
    int depth;
};

/* -------------------------------------------------------------- arena */

static void *arena_alloc(struct imap_parser *p, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    struct ablock *b = p->arena;
    if (b == NULL || b->cap - b->used < size) {
        size_t cap = size > ARENA_BLOCK ? size : ARENA_BLOCK;
        b = malloc(sizeof *b + cap);
        if (b == NULL)
            return NULL;
        b->cap = cap;
        b->used = 0;
        b->next = p->arena;
        p->arena = b;
    }
    void *r = (char *)b->data + b->used;
    b->used += size;
    return r;
}

static void arena_reset(struct imap_parser *p)
{
    /* keep one standard block for the next response */
    while (p->arena != NULL && (p->arena->next != NULL || p->arena->cap != ARENA_BLOCK)) {
        struct ablock *b = p->arena;
        p->arena = b->next;
        free(b);
    }
    if (p->arena != NULL)
        p->arena->used = 0;
}

static char *arena_strndup(struct imap_parser *p, const char *s, size_t n)
{
    char *d = arena_alloc(p, n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* ------------------------------------------------------------- parser */

static int perr(struct imap_parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int perr(struct imap_parser *p, const char *fmt, ...)
{
    if (!p->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err, sizeof p->err, fmt, ap);
        va_end(ap);
    }
    p->failed = 1;
    return -1;
}

struct imap_parser *imap_parser_new(uint64_t max_literal, imap_resp_cb cb, void *arg)
{
    struct imap_parser *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->max_literal = max_literal ? max_literal : IMAP_DEFAULT_MAX_LITERAL;
    p->cb = cb;
    p->arg = arg;
    return p;
}

static void clear_response(struct imap_parser *p)
{
    for (size_t j = 0; j < p->nlits; j++)
        free(p->lits[j].data);
    p->nlits = 0;
    p->in_lit = 0;
    p->tlen = p->seg_start = 0;
    if (p->tcap > 4 * IMAP_MAX_LINE) { /* do not keep a huge text buffer around */
        free(p->text);
        p->text = NULL;
        p->tcap = 0;
    }
    arena_reset(p);
}

void imap_parser_reset(struct imap_parser *p)
{
    if (p == NULL)
        return;
    clear_response(p);
    p->failed = 0;
    p->err[0] = '\0';
}

void imap_parser_free(struct imap_parser *p)
{
    if (p == NULL)
        return;
    clear_response(p);
    while (p->arena != NULL) {
        struct ablock *b = p->arena;
        p->arena = b->next;
        free(b);
    }
    free(p->lits);
    free(p->text);
    free(p);
}

const char *imap_parser_error(const struct imap_parser *p)
{
    return p->failed ? p->err : NULL;
}

size_t imap_parser_pending(const struct imap_parser *p)
{
    size_t n = p->tlen;
    for (size_t j = 0; j < p->nlits; j++)
        n += p->lits[j].len;
    return n;
}

static int text_reserve(struct imap_parser *p, size_t more)
{
    if (p->tlen + more + 1 <= p->tcap)
        return 0;
    size_t cap = p->tcap ? p->tcap : 1024;
    while (cap < p->tlen + more + 1)
        cap *= 2;
    char *t = realloc(p->text, cap);
    if (t == NULL)
        return perr(p, "out of memory");
    p->text = t;
    p->tcap = cap;
    return 0;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}
static char upper(char c)
{
    return c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
}

/* The segment just ended: does it end with {n} or {n+}?  1 and *n, 0 no. */
static int literal_marker(const struct imap_parser *p, uint64_t *n, size_t *pos)
{
    size_t e = p->tlen, s = p->seg_start;
    if (e - s < 3 || p->text[e - 1] != '}')
        return 0;
    size_t j = e - 1;
    if (j > s && p->text[j - 1] == '+')
        j--;
    size_t dend = j;
    while (j > s && is_digit(p->text[j - 1]))
        j--;
    if (j == dend || j == s || p->text[j - 1] != '{')
        return 0;
    if (dend - j > 19)
        return 2; /* absurd */
    uint64_t v = 0;
    for (size_t q = j; q < dend; q++)
        v = v * 10 + (uint64_t)(p->text[q] - '0');
    *n = v;
    *pos = j - 1;
    return 1;
}

static int dispatch(struct imap_parser *p);

int imap_parser_feed(struct imap_parser *p, const char *data, size_t len)
{
    if (p->failed)
        return -1;
    while (len > 0) {
        if (p->in_lit) {
            struct lit *l = &p->lits[p->nlits - 1];
            uint64_t left = l->want - l->len;
            size_t take = left < len ? (size_t)left : len;
            if (l->len + take + 1 > l->cap) {
                /* grow with the bytes that arrived, never to what was merely announced */
                size_t cap = l->cap ? l->cap : 4096;
                while (cap < l->len + take + 1)
                    cap *= 2;
                if (cap > l->want + 1)
                    cap = (size_t)l->want + 1;
                char *d = realloc(l->data, cap);
                if (d == NULL)
                    return perr(p, "out of memory for a literal of %llu bytes", (unsigned long long)l->want);
                l->data = d;
                l->cap = cap;
            }
            memcpy(l->data + l->len, data, take);
            l->len += take;
            data += take;
            len -= take;
            if (l->len == l->want) {
                l->data[l->len] = '\0';
                p->in_lit = 0;
                p->seg_start = p->tlen;
            }
            continue;
        }
        const char *nl = memchr(data, '\n', len);
        size_t chunk = nl != NULL ? (size_t)(nl - data) + 1 : len;
        if (p->tlen - p->seg_start + chunk > IMAP_MAX_LINE + 2)
            return perr(p, "response line longer than %zu bytes", IMAP_MAX_LINE);
        if (p->tlen + chunk > IMAP_MAX_TEXT)
            return perr(p, "response text longer than %zu bytes", IMAP_MAX_TEXT);
        if (text_reserve(p, chunk) < 0)
            return -1;
        memcpy(p->text + p->tlen, data, chunk);
        p->tlen += chunk;
        data += chunk;
        len -= chunk;
        if (nl == NULL)
            continue;
        p->tlen--; /* LF */
        if (p->tlen > p->seg_start && p->text[p->tlen - 1] == '\r')
            p->tlen--;
        p->text[p->tlen] = '\0';
        uint64_t n = 0;
        size_t pos = 0;
        int m = literal_marker(p, &n, &pos);
        if (m == 2)
            return perr(p, "literal size out of range");
        if (m == 1) {
            if (n > p->max_literal)
                return perr(p, "literal of %llu bytes is over the limit of %llu", (unsigned long long)n,
                            (unsigned long long)p->max_literal);
            if (p->nlits >= IMAP_MAX_LITERALS)
                return perr(p, "more than %d literals in one response", IMAP_MAX_LITERALS);
            if (p->nlits == p->lcap) {
                size_t cap = p->lcap ? p->lcap * 2 : 4;
                struct lit *a = realloc(p->lits, cap * sizeof *a);
                if (a == NULL)
                    return perr(p, "out of memory");
                p->lits = a;
                p->lcap = cap;
            }
            struct lit *l = &p->lits[p->nlits++];
            memset(l, 0, sizeof *l);
            l->want = n;
            l->pos = pos;
            if (n == 0) {
                l->data = malloc(1);
                if (l->data == NULL)
                    return perr(p, "out of memory");
                l->data[0] = '\0';
                l->cap = 1;
                p->seg_start = p->tlen;
            } else {
                p->in_lit = 1;
            }
            continue;
        }
        int rc = dispatch(p);
        clear_response(p);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---------------------------------------------------------- tokenizer */

#define IN_LIST 1
#define IN_CODE 2

static struct imap_val *parse_val(struct imap_parser *p, int ctx);

static int at_end(const struct imap_parser *p)
{
    return p->i >= p->tlen;
}
static char cur(const struct imap_parser *p)
{
    return p->i < p->tlen ? p->text[p->i] : '\0';
}

static void skip_sp(struct imap_parser *p)
{
    while (cur(p) == ' ')
        p->i++;
}

/* Tokens until `end` (')' in a list, ']' in a code, or the end of the text). */
static struct imap_val *parse_seq(struct imap_parser *p, int ctx, size_t *count)
{
    struct imap_val *first = NULL, **tail = &first;
    size_t n = 0;
    char end = ctx == IN_LIST ? ')' : ctx == IN_CODE ? ']' : '\0';
    for (;;) {
        skip_sp(p);
        if (at_end(p)) {
            if (end != '\0') {
                perr(p, end == ')' ? "unterminated list" : "unterminated response code");
                return NULL;
            }
            break;
        }
        if (end != '\0' && cur(p) == end)
            break;
        struct imap_val *v = parse_val(p, ctx);
        if (v == NULL)
            return NULL;
        *tail = v;
        tail = &v->next;
        n++;
        char c = cur(p);
        if (!at_end(p) && c != ' ' && c != end && c != '(' && c != ')') {
            /* tokens must be separated; be lenient only about list punctuation */
            if (!(v->type == IMAP_LIST || c == '"' || c == '{')) {
                perr(p, "unexpected character 0x%02x at offset %zu", (unsigned char)c, p->i);
                return NULL;
            }
        }
        if (c == ')' && ctx != IN_LIST) {
            perr(p, "unbalanced ')' at offset %zu", p->i);
            return NULL;
        }
    }
    *count = n;
    return first; /* NULL for an empty sequence too: callers check p->failed */
}

static struct imap_val *new_val(struct imap_parser *p, enum imap_val_type t)
{
    struct imap_val *v = arena_alloc(p, sizeof *v);
    if (v == NULL) {
        perr(p, "out of memory");
        return NULL;
    }
    memset(v, 0, sizeof *v);
    v->type = t;
    return v;
}

static struct imap_val *parse_val(struct imap_parser *p, int ctx)
{
    char c = cur(p);
    if (c == '(') {
        if (++p->depth > IMAP_MAX_DEPTH) {
            perr(p, "lists nested deeper than %d", IMAP_MAX_DEPTH);
            return NULL;
        }
        p->i++;
        struct imap_val *v = new_val(p, IMAP_LIST);
        if (v == NULL)
            return NULL;
        v->child = parse_seq(p, IN_LIST, &v->n);
        if (p->failed)
            return NULL;
        if (cur(p) != ')') {
            perr(p, "unterminated list");
            return NULL;
        }
        p->i++;
        p->depth--;
        return v;
    }
    if (c == '"') {
        size_t j = ++p->i;
        size_t n = 0;
        for (; j < p->tlen && p->text[j] != '"'; j++, n++) {
            if (p->text[j] == '\\') {
                j++;
                if (j >= p->tlen)
                    break;
            }
        }
        if (j >= p->tlen) {
            perr(p, "unterminated quoted string");
            return NULL;
        }
        struct imap_val *v = new_val(p, IMAP_STRING);
        char *s = v != NULL ? arena_alloc(p, n + 1) : NULL;
        if (s == NULL) {
            perr(p, "out of memory");
            return NULL;
        }
        size_t o = 0;
        for (size_t q = p->i; q < j; q++) {
            if (p->text[q] == '\\')
                q++;
            s[o++] = p->text[q];
        }
        s[o] = '\0';
        v->s = s;
        v->len = o;
        p->i = j + 1;
        return v;
    }
    if (c == '{') {
        if (p->k >= p->nlits || p->lits[p->k].pos != p->i) {
            perr(p, "unexpected '{' at offset %zu", p->i);
            return NULL;
        }
        const char *close = memchr(p->text + p->i, '}', p->tlen - p->i);
        if (close == NULL) { /* cannot happen: the marker was checked when the line ended */
            perr(p, "bad literal marker");
            return NULL;
        }
        struct imap_val *v = new_val(p, IMAP_STRING);
        if (v == NULL)
            return NULL;
        struct lit *l = &p->lits[p->k++];
        v->s = l->data;
        v->len = l->len;
        v->literal = 1;
        p->i = (size_t)(close - p->text) + 1;
        return v;
    }
    /* atom, with [...] sections taken whole (BODY[HEADER.FIELDS (FROM TO)]<0.100>) */
    size_t s = p->i;
    for (;;) {
        char a = cur(p);
        if (at_end(p) || a == ' ' || a == '(' || a == ')' || a == '"' || a == '{' ||
            (unsigned char)a < 0x20 || a == 0x7f)
            break;
        if (a == ']' && ctx == IN_CODE)
            break;
        if (a == '[' && ctx != IN_CODE) {
            int d = 0;
            for (; p->i < p->tlen; p->i++) {
                char b = p->text[p->i];
                if (b == '[')
                    d++;
                else if (b == ']' && --d == 0)
                    break;
                else if ((unsigned char)b < 0x20) {
                    perr(p, "control character in a section");
                    return NULL;
                }
            }
            if (p->i >= p->tlen) {
                perr(p, "unterminated '[' section");
                return NULL;
            }
        }
        p->i++;
    }
    if (p->i == s) {
        perr(p, "unexpected character 0x%02x at offset %zu", (unsigned char)cur(p), p->i);
        return NULL;
    }
    size_t n = p->i - s;
    if (n == 3 && upper(p->text[s]) == 'N' && upper(p->text[s + 1]) == 'I' && upper(p->text[s + 2]) == 'L')
        return new_val(p, IMAP_NIL);
    struct imap_val *v = new_val(p, IMAP_ATOM);
    if (v == NULL)
        return NULL;
    v->s = arena_strndup(p, p->text + s, n);
    if (v->s == NULL) {
        perr(p, "out of memory");
        return NULL;
    }
    v->len = n;
    return v;
}

/* A word up to SP or the end, upper-cased, in the arena. */
static char *take_word(struct imap_parser *p)
{
    size_t s = p->i;
    while (!at_end(p) && cur(p) != ' ')
        p->i++;
    char *w = arena_strndup(p, p->text + s, p->i - s);
    if (w == NULL) {
        perr(p, "out of memory");
        return NULL;
    }
    return w;
}

static enum imap_status status_of(const char *w)
{
    char u[8];
    size_t n = strlen(w);
    if (n >= sizeof u)
        return IMAP_ST_NONE;
    for (size_t j = 0; j <= n; j++)
        u[j] = upper(w[j]);
    if (strcmp(u, "OK") == 0)
        return IMAP_ST_OK;
    if (strcmp(u, "NO") == 0)
        return IMAP_ST_NO;
    if (strcmp(u, "BAD") == 0)
        return IMAP_ST_BAD;
    if (strcmp(u, "BYE") == 0)
        return IMAP_ST_BYE;
    if (strcmp(u, "PREAUTH") == 0)
        return IMAP_ST_PREAUTH;
    return IMAP_ST_NONE;
}

/* "[CODE args] text" or "text" after a status word. */
static int parse_status_rest(struct imap_parser *p, struct imap_resp *r)
{
    skip_sp(p);
    r->text = "";
    if (cur(p) == '[') {
        p->i++;
        size_t s = p->i;
        while (!at_end(p) && cur(p) != ' ' && cur(p) != ']')
            p->i++;
        char *code = arena_strndup(p, p->text + s, p->i - s);
        if (code == NULL)
            return perr(p, "out of memory");
        for (char *q = code; *q; q++)
            *q = upper(*q);
        r->code = code;
        size_t after_code = p->i;
        if (cur(p) == ' ') {
            size_t n = 0;
            size_t k0 = p->k;
            struct imap_val *args = parse_seq(p, IN_CODE, &n);
            if (p->failed) {
                /* an odd code is not worth dropping the connection: keep it as text */
                p->failed = 0;
                p->err[0] = '\0';
                p->k = k0;
                p->depth = 0;
                args = NULL;
                p->i = after_code;
                const char *close = memchr(p->text + p->i, ']', p->tlen - p->i);
                p->i = close != NULL ? (size_t)(close - p->text) : p->tlen;
            }
            r->code_args = args;
        }
        if (cur(p) == ']')
            p->i++;
        skip_sp(p);
    }
    r->text = p->text + p->i; /* NUL-terminated: the text buffer ends there */
    return 0;
}

static int dispatch(struct imap_parser *p)
{
    struct imap_resp r;
    memset(&r, 0, sizeof r);
    p->i = 0;
    p->k = 0;
    p->depth = 0;
    if (p->tlen == 0)
        return perr(p, "empty response line");
    if (p->text[0] == '+') {
        r.kind = IMAP_RESP_CONTINUE;
        p->i = 1;
        skip_sp(p);
        r.text = p->text + p->i;
        return p->cb(p->arg, &r);
    }
    if (p->text[0] == '*') {
        r.kind = IMAP_RESP_UNTAGGED;
        p->i = 1;
        if (cur(p) != ' ')
            return perr(p, "malformed untagged response");
        p->i++;
        if (is_digit(cur(p))) {
            uint64_t v = 0;
            while (is_digit(cur(p))) {
                v = v * 10 + (uint64_t)(cur(p) - '0');
                if (v > UINT32_MAX)
                    return perr(p, "message number out of range");
                p->i++;
            }
            if (cur(p) != ' ')
                return perr(p, "malformed numbered response");
            p->i++;
            r.num = (uint32_t)v;
            r.has_num = 1;
        }
        char *w = take_word(p);
        if (w == NULL)
            return -1;
        if (w[0] == '\0')
            return perr(p, "missing response word");
        for (char *q = w; *q; q++)
            *q = upper(*q);
        r.word = w;
        r.status = r.has_num ? IMAP_ST_NONE : status_of(w);
        if (r.status != IMAP_ST_NONE) {
            if (parse_status_rest(p, &r) < 0)
                return -1;
            return p->cb(p->arg, &r);
        }
        size_t n = 0;
        r.args = parse_seq(p, 0, &n);
        if (p->failed)
            return -1;
        if (p->k != p->nlits)
            return perr(p, "literal out of place");
        return p->cb(p->arg, &r);
    }
    r.kind = IMAP_RESP_TAGGED;
    char *tag = take_word(p);
    if (tag == NULL)
        return -1;
    for (const char *q = tag; *q; q++)
        if ((unsigned char)*q <= 0x20 || *q == '(' || *q == ')' || *q == '{' || *q == '"' || *q == '%' ||
            *q == '*' || *q == '+' || (unsigned char)*q >= 0x7f)
            return perr(p, "malformed response tag");
    if (tag[0] == '\0' || cur(p) != ' ')
        return perr(p, "malformed tagged response");
    p->i++;
    r.tag = tag;
    char *w = take_word(p);
    if (w == NULL)
        return -1;
    r.status = status_of(w);
    if (r.status == IMAP_ST_NONE || r.status == IMAP_ST_PREAUTH)
        return perr(p, "tagged response without OK/NO/BAD/BYE");
    for (char *q = w; *q; q++)
        *q = upper(*q);
    r.word = w;
    if (parse_status_rest(p, &r) < 0)
        return -1;
    return p->cb(p->arg, &r);
}

/* ------------------------------------------------------------ helpers */

int imap_val_is(const struct imap_val *v, const char *word)
{
    if (v == NULL || (v->type != IMAP_ATOM && v->type != IMAP_STRING))
        return 0;
    size_t n = strlen(word);
    if (v->len != n)
        return 0;
    for (size_t j = 0; j < n; j++)
        if (upper(v->s[j]) != upper(word[j]))
            return 0;
    return 1;
}

int imap_val_u64(const struct imap_val *v, uint64_t *out)
{
    if (v == NULL || v->type != IMAP_ATOM || v->len == 0 || v->len > 19)
        return 0;
    uint64_t x = 0;
    for (size_t j = 0; j < v->len; j++) {
        if (!is_digit(v->s[j]))
            return 0;
        x = x * 10 + (uint64_t)(v->s[j] - '0');
    }
    *out = x;
    return 1;
}

const struct imap_val *imap_list_at(const struct imap_val *list, size_t n)
{
    if (list == NULL || list->type != IMAP_LIST)
        return NULL;
    const struct imap_val *v = list->child;
    while (v != NULL && n-- > 0)
        v = v->next;
    return v;
}

static int starts_with_ci(const char *s, size_t len, const char *pre)
{
    size_t n = strlen(pre);
    if (len < n)
        return 0;
    for (size_t j = 0; j < n; j++)
        if (upper(s[j]) != upper(pre[j]))
            return 0;
    return 1;
}

int imap_fetch_get(const struct imap_resp *r, struct imap_fetch *f)
{
    memset(f, 0, sizeof *f);
    if (r->kind != IMAP_RESP_UNTAGGED || !r->has_num || r->word == NULL || strcmp(r->word, "FETCH") != 0)
        return -1;
    const struct imap_val *l = r->args;
    if (l == NULL || l->type != IMAP_LIST || l->next != NULL)
        return -1;
    f->seq = r->num;
    for (const struct imap_val *k = l->child; k != NULL; k = k->next->next) {
        const struct imap_val *v = k->next;
        if (k->type != IMAP_ATOM || v == NULL)
            return -1;
        uint64_t x;
        if (imap_val_is(k, "UID")) {
            if (!imap_val_u64(v, &x) || x == 0 || x > UINT32_MAX)
                return -1;
            f->uid = (uint32_t)x;
        } else if (imap_val_is(k, "FLAGS")) {
            if (v->type != IMAP_LIST)
                return -1;
            size_t o = 0;
            f->has_flags = 1;
            for (const struct imap_val *fl = v->child; fl != NULL; fl = fl->next) {
                if (fl->type != IMAP_ATOM)
                    return -1;
                if (o + fl->len + 2 > sizeof f->flags)
                    break;
                if (o > 0)
                    f->flags[o++] = ' ';
                memcpy(f->flags + o, fl->s, fl->len);
                o += fl->len;
            }
            f->flags[o] = '\0';
        } else if (imap_val_is(k, "RFC822.SIZE")) {
            if (!imap_val_u64(v, &x))
                return -1;
            f->size = x;
        } else if (imap_val_is(k, "INTERNALDATE")) {
            if (v->type != IMAP_STRING)
                return -1;
            int64_t t = imap_parse_datetime(v->s, v->len);
            f->internal_date = t > 0 ? t : 0;
        } else if (imap_val_is(k, "MODSEQ")) {
            if (v->type != IMAP_LIST || v->n != 1 || !imap_val_u64(v->child, &x))
                return -1;
            f->modseq = x;
        } else if (starts_with_ci(k->s, k->len, "BODY[]") || imap_val_is(k, "RFC822") ||
                   starts_with_ci(k->s, k->len, "BINARY[]")) {
            if (v->type == IMAP_NIL) {
                f->has_body = 1;
                f->body = NULL;
                f->body_len = 0;
            } else if (v->type == IMAP_STRING) {
                f->has_body = 1;
                f->body = v->s;
                f->body_len = v->len;
            } else {
                return -1;
            }
        }
        if (v->next == NULL)
            break;
    }
    return 0;
}

int imap_list_get(const struct imap_resp *r, struct imap_list *l)
{
    memset(l, 0, sizeof *l);
    if (r->kind != IMAP_RESP_UNTAGGED || r->word == NULL ||
        (strcmp(r->word, "LIST") != 0 && strcmp(r->word, "LSUB") != 0))
        return -1;
    const struct imap_val *fl = r->args;
    const struct imap_val *d = fl != NULL ? fl->next : NULL;
    const struct imap_val *nm = d != NULL ? d->next : NULL;
    if (fl == NULL || fl->type != IMAP_LIST || nm == NULL ||
        (nm->type != IMAP_ATOM && nm->type != IMAP_STRING))
        return -1;
    if (d->type == IMAP_NIL)
        l->delim = 0;
    else if (d->type == IMAP_STRING && d->len == 1)
        l->delim = d->s[0];
    else
        return -1;
    static const char *const special[] = {"\\All",  "\\Archive", "\\Drafts", "\\Flagged",
                                          "\\Junk", "\\Sent",    "\\Trash",  "\\Important"};
    for (const struct imap_val *f = fl->child; f != NULL; f = f->next) {
        if (f->type != IMAP_ATOM)
            return -1;
        if (imap_val_is(f, "\\Noselect") || imap_val_is(f, "\\NonExistent"))
            l->noselect = 1;
        for (size_t j = 0; j < sizeof special / sizeof special[0] && l->special_use == NULL; j++)
            if (imap_val_is(f, special[j]))
                l->special_use = special[j];
    }
    l->raw_name = nm->s;
    l->raw_len = nm->len;
    return 0;
}

static void status_item(struct imap_status_data *s, const struct imap_val *k, uint64_t x)
{
    if (imap_val_is(k, "MESSAGES")) {
        s->messages = x;
        s->has_messages = 1;
    } else if (imap_val_is(k, "UIDNEXT")) {
        s->uidnext = x;
        s->has_uidnext = 1;
    } else if (imap_val_is(k, "UIDVALIDITY")) {
        s->uidvalidity = x;
        s->has_uidvalidity = 1;
    } else if (imap_val_is(k, "UNSEEN")) {
        s->unseen = x;
    } else if (imap_val_is(k, "HIGHESTMODSEQ")) {
        s->highestmodseq = x;
        s->has_highestmodseq = 1;
    }
}

int imap_status_get(const struct imap_resp *r, struct imap_status_data *s)
{
    if (r->kind != IMAP_RESP_UNTAGGED)
        return -1;
    if (r->word != NULL && strcmp(r->word, "STATUS") == 0) {
        const struct imap_val *nm = r->args;
        const struct imap_val *l = nm != NULL ? nm->next : NULL;
        if (nm == NULL || (nm->type != IMAP_ATOM && nm->type != IMAP_STRING) || l == NULL ||
            l->type != IMAP_LIST)
            return -1;
        s->raw_name = nm->s;
        for (const struct imap_val *k = l->child; k != NULL; k = k->next->next) {
            uint64_t x;
            if (k->next == NULL || !imap_val_u64(k->next, &x))
                return -1;
            status_item(s, k, x);
            if (k->next->next == NULL)
                break;
        }
        return 0;
    }
    if (r->status != IMAP_ST_OK || r->code == NULL)
        return -1;
    if (strcmp(r->code, "NOMODSEQ") == 0) {
        s->highestmodseq = 0;
        s->has_highestmodseq = 1;
        return 0;
    }
    uint64_t x;
    if (r->code_args == NULL || !imap_val_u64(r->code_args, &x))
        return -1;
    struct imap_val k = {.type = IMAP_ATOM, .s = r->code, .len = strlen(r->code)};
    status_item(s, &k, x);
    return 0;
}

int imap_caps_have(const struct imap_val *caps, const char *cap)
{
    for (const struct imap_val *v = caps; v != NULL; v = v->next)
        if (imap_val_is(v, cap))
            return 1;
    return 0;
}

static int seq_num(const char *s, size_t len, size_t *j, uint32_t *out)
{
    if (*j < len && s[*j] == '*') {
        (*j)++;
        *out = UINT32_MAX;
        return 0;
    }
    uint64_t v = 0;
    size_t st = *j;
    while (*j < len && is_digit(s[*j])) {
        v = v * 10 + (uint64_t)(s[*j] - '0');
        if (v > UINT32_MAX)
            return -1;
        (*j)++;
    }
    if (*j == st || v == 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int imap_seqset_each(const char *set, size_t len, int (*cb)(void *arg, uint32_t lo, uint32_t hi), void *arg)
{
    size_t j = 0;
    if (len == 0)
        return -1;
    while (j < len) {
        uint32_t a, b;
        if (seq_num(set, len, &j, &a) < 0)
            return -1;
        b = a;
        if (j < len && set[j] == ':') {
            j++;
            if (seq_num(set, len, &j, &b) < 0)
                return -1;
        }
        if (j < len) {
            if (set[j] != ',')
                return -1;
            j++;
            if (j == len)
                return -1;
        }
        if (cb(arg, a < b ? a : b, a < b ? b : a) != 0)
            return 0;
    }
    return 0;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

int64_t imap_parse_datetime(const char *s, size_t len)
{
    /* dd-Mon-yyyy hh:mm:ss +zzzz, day possibly space-padded */
    char b[40];
    if (len >= sizeof b)
        return -1;
    memcpy(b, s, len);
    b[len] = '\0';
    const char *q = b;
    while (*q == ' ')
        q++;
    unsigned d = 0, y = 0, hh = 0, mm = 0, ss = 0;
    int nd = 0;
    while (is_digit(*q) && nd < 2) {
        d = d * 10 + (unsigned)(*q++ - '0');
        nd++;
    }
    if (nd == 0 || *q++ != '-')
        return -1;
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    unsigned mon = 0;
    for (unsigned j = 0; j < 12; j++)
        if (q[0] && q[1] && q[2] && upper(q[0]) == upper(months[j * 3]) &&
            upper(q[1]) == upper(months[j * 3 + 1]) && upper(q[2]) == upper(months[j * 3 + 2]))
            mon = j + 1;
    if (mon == 0)
        return -1;
    q += 3;
    if (*q++ != '-')
        return -1;
    for (int j = 0; j < 4; j++) {
        if (!is_digit(*q))
            return -1;
        y = y * 10 + (unsigned)(*q++ - '0');
    }
    if (*q++ != ' ')
        return -1;
    unsigned *parts[3] = {&hh, &mm, &ss};
    for (int j = 0; j < 3; j++) {
        if (!is_digit(q[0]) || !is_digit(q[1]))
            return -1;
        *parts[j] = (unsigned)((q[0] - '0') * 10 + (q[1] - '0'));
        q += 2;
        if (j < 2 && *q++ != ':')
            return -1;
    }
    if (*q++ != ' ')
        return -1;
    int sign = *q == '-' ? -1 : *q == '+' ? 1 : 0;
    if (sign == 0)
        return -1;
    q++;
    for (int j = 0; j < 4; j++)
        if (!is_digit(q[j]))
            return -1;
    int zh = (q[0] - '0') * 10 + (q[1] - '0'), zm = (q[2] - '0') * 10 + (q[3] - '0');
    if (d < 1 || d > 31 || hh > 23 || mm > 59 || ss > 60 || zm > 59)
        return -1;
    int64_t t = days_from_civil((int64_t)y, mon, d) * 86400 + hh * 3600 + mm * 60 + ss;
    return t - sign * (zh * 3600 + zm * 60);
}

/* ------------------------------------------------------ modified UTF-7 */

static const char mb64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int mb64_val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == ',')
        return 63;
    return -1;
}

static int put_utf8(char *out, size_t cap, size_t *o, uint32_t cp)
{
    char t[4];
    size_t n;
    if (cp < 0x80) {
        t[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        t[0] = (char)(0xc0 | (cp >> 6));
        t[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        t[0] = (char)(0xe0 | (cp >> 12));
        t[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        t[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        t[0] = (char)(0xf0 | (cp >> 18));
        t[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        t[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        t[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    if (*o + n + 1 > cap)
        return -1;
    memcpy(out + *o, t, n);
    *o += n;
    return 0;
}

long imap_mutf7_decode(const char *in, size_t len, char *out, size_t cap)
{
    size_t o = 0, i = 0;
    if (cap == 0)
        return -1;
    while (i < len) {
        unsigned char c = (unsigned char)in[i];
        if (c != '&') {
            if (c < 0x20 || c > 0x7e || o + 2 > cap)
                return -1;
            out[o++] = (char)c;
            i++;
            continue;
        }
        i++;
        if (i < len && in[i] == '-') {
            if (o + 2 > cap)
                return -1;
            out[o++] = '&';
            i++;
            continue;
        }
        uint32_t bits = 0, high = 0;
        int nbits = 0, units = 0;
        while (i < len && in[i] != '-') {
            int v = mb64_val(in[i]);
            if (v < 0)
                return -1;
            bits = ((bits << 6) | (uint32_t)v) & 0x3fffff;
            nbits += 6;
            if (nbits >= 16) {
                nbits -= 16;
                uint32_t u = (bits >> nbits) & 0xffff;
                units++;
                if (high != 0) {
                    if (u < 0xdc00 || u > 0xdfff)
                        return -1;
                    if (put_utf8(out, cap, &o, 0x10000 + ((high - 0xd800) << 10) + (u - 0xdc00)) < 0)
                        return -1;
                    high = 0;
                } else if (u >= 0xd800 && u <= 0xdbff) {
                    high = u;
                } else if (u >= 0xdc00 && u <= 0xdfff) {
                    return -1;
                } else {
                    if (u < 0x20 || u == 0x7f || put_utf8(out, cap, &o, u) < 0)
                        return -1;
                }
            }
            i++;
        }
        if (i >= len || high != 0 || units == 0 || nbits >= 6 || (bits & ((1u << nbits) - 1)) != 0)
            return -1;
        i++; /* '-' */
    }
    out[o] = '\0';
    return (long)o;
}

/* Next code point of UTF-8, or -1. */
static long utf8_next(const unsigned char *s, size_t len, size_t *i)
{
    unsigned char c = s[*i];
    uint32_t cp;
    int n;
    if (c < 0x80) {
        (*i)++;
        return c;
    }
    if ((c & 0xe0) == 0xc0) {
        cp = c & 0x1f;
        n = 1;
    } else if ((c & 0xf0) == 0xe0) {
        cp = c & 0x0f;
        n = 2;
    } else if ((c & 0xf8) == 0xf0) {
        cp = c & 0x07;
        n = 3;
    } else {
        return -1;
    }
    if (*i + (size_t)n >= len)
        return -1;
    for (int j = 1; j <= n; j++) {
        if ((s[*i + (size_t)j] & 0xc0) != 0x80)
            return -1;
        cp = (cp << 6) | (s[*i + (size_t)j] & 0x3f);
    }
    static const uint32_t minv[4] = {0, 0x80, 0x800, 0x10000};
    if (cp < minv[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return -1;
    *i += (size_t)n + 1;
    return (long)cp;
}

long imap_mutf7_encode(const char *in, size_t len, char *out, size_t cap)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t o = 0, i = 0;
    if (cap == 0)
        return -1;
    while (i < len) {
        if (s[i] >= 0x20 && s[i] <= 0x7e) {
            size_t need = s[i] == '&' ? 2 : 1;
            if (o + need + 1 > cap)
                return -1;
            out[o++] = (char)s[i];
            if (s[i] == '&')
                out[o++] = '-';
            i++;
            continue;
        }
        if (s[i] < 0x80)
            return -1; /* control characters have no place in a mailbox name */
        if (o + 2 > cap)
            return -1;
        out[o++] = '&';
        uint32_t bits = 0;
        int nbits = 0;
        while (i < len && (s[i] < 0x20 || s[i] > 0x7e)) {
            long cp = utf8_next(s, len, &i);
            if (cp < 0x80)
                return -1;
            uint32_t units[2];
            int nu = 0;
            if (cp >= 0x10000) {
                units[nu++] = 0xd800 + (((uint32_t)cp - 0x10000) >> 10);
                units[nu++] = 0xdc00 + (((uint32_t)cp - 0x10000) & 0x3ff);
            } else {
                units[nu++] = (uint32_t)cp;
            }
            for (int u = 0; u < nu; u++) {
                bits = (bits << 16) | units[u];
                nbits += 16;
                while (nbits >= 6) {
                    nbits -= 6;
                    if (o + 2 > cap)
                        return -1;
                    out[o++] = mb64[(bits >> nbits) & 0x3f];
                }
                bits &= (1u << nbits) - 1;
            }
        }
        if (nbits > 0) {
            if (o + 2 > cap)
                return -1;
            out[o++] = mb64[(bits << (6 - nbits)) & 0x3f];
        }
        if (o + 2 > cap)
            return -1;
        out[o++] = '-';
    }
    out[o] = '\0';
    return (long)o;
}

long imap_quote(const char *s, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    if (cap < 3)
        return -1;
    out[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '\r' || c == '\n' || c == '\0')
            return -1;
        if (c == '"' || c == '\\') {
            if (o + 1 >= cap)
                return -1;
            out[o++] = '\\';
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = c;
    }
    if (o + 2 > cap)
        return -1;
    out[o++] = '"';
    out[o] = '\0';
    return (long)o;
}

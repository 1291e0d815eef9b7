/* The POP3 response parser: see pop3_parse.h. */
#include "pop3_parse.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum pstate {
    ST_STATUS, /* reading a status line (or waiting for one) */
    ST_BOL,    /* at the beginning of a body line */
    ST_DOT,    /* after a body line's leading "." */
    ST_DOT_CR, /* after ".\r" at the beginning of a body line */
    ST_LINE,   /* inside a listing line */
    ST_DATA,   /* inside a message line */
    ST_DEAD,   /* failed */
};

struct pop3_parser {
    struct pop3_callbacks cb;
    void *arg;
    unsigned char kinds[POP3_PIPE_MAX]; /* a ring of expected kinds */
    size_t head, count;
    enum pstate st;
    enum pop3_kind cur; /* kind of the response being parsed */
    uint64_t body;
    size_t len;
    char error[200];
    char line[POP3_LINE_MAX + 2]; /* room for a CR and a NUL */
};

struct pop3_parser *pop3_parser_new(const struct pop3_callbacks *cbs, void *arg)
{
    struct pop3_parser *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    if (cbs != NULL)
        p->cb = *cbs;
    p->arg = arg;
    p->st = ST_STATUS;
    return p;
}

void pop3_parser_free(struct pop3_parser **pp)
{
    if (pp == NULL || *pp == NULL)
        return;
    free(*pp);
    *pp = NULL;
}

int pop3_parser_expect(struct pop3_parser *p, enum pop3_kind kind)
{
    if (p->count >= POP3_PIPE_MAX || (kind != POP3_SINGLE && kind != POP3_LINES && kind != POP3_DATA))
        return -1;
    p->kinds[(p->head + p->count) % POP3_PIPE_MAX] = (unsigned char)kind;
    p->count++;
    return 0;
}

size_t pop3_parser_pending(const struct pop3_parser *p)
{
    return p->count;
}

const char *pop3_parser_error(const struct pop3_parser *p)
{
    return p->st == ST_DEAD ? p->error : NULL;
}

uint64_t pop3_parser_body_bytes(const struct pop3_parser *p)
{
    return p->body;
}

char *pop3_printable(const char *s, size_t len, char *out, size_t out_size)
{
    if (out_size == 0)
        return out;
    size_t n = 0;
    int cut = 0;
    for (size_t i = 0; i < len; i++) {
        if (n + 1 >= out_size) {
            cut = 1;
            break;
        }
        unsigned char c = (unsigned char)s[i];
        out[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[n] = '\0';
    if (cut && out_size >= 4)
        memcpy(out + out_size - 4, "...", 4);
    return out;
}

static int fail(struct pop3_parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct pop3_parser *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->error, sizeof p->error, fmt, ap);
    va_end(ap);
    p->st = ST_DEAD;
    return POP3_EPROTO;
}

/* The current response is complete: pop its kind and wait for the next status line. */
static int finish(struct pop3_parser *p, int ok)
{
    enum pop3_kind kind = p->cur;
    p->head = (p->head + 1) % POP3_PIPE_MAX;
    p->count--;
    p->st = ST_STATUS;
    p->len = 0;
    if (p->cb.done != NULL && p->cb.done(p->arg, kind, ok) != 0)
        return POP3_ABORT;
    return POP3_OK;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Case-insensitive: does line[0..len) begin with the word `w` (then the end or a blank)? */
static int word_is(const char *line, size_t len, const char *w)
{
    size_t wl = strlen(w);
    if (len < wl)
        return 0;
    for (size_t i = 0; i < wl; i++) {
        char c = line[i], d = w[i];
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (d >= 'a' && d <= 'z')
            d = (char)(d - 'a' + 'A');
        if (c != d)
            return 0;
    }
    return len == wl || is_blank(line[wl]);
}

/* A complete status line is in p->line[0..p->len) (line end removed). */
static int status_line(struct pop3_parser *p)
{
    int ok;
    size_t skip;
    if (word_is(p->line, p->len, "+OK")) {
        ok = 1;
        skip = 3;
    } else if (word_is(p->line, p->len, "-ERR")) {
        ok = 0;
        skip = 4;
    } else {
        char show[64];
        return fail(p, "expected +OK or -ERR, the server sent \"%s\"",
                    pop3_printable(p->line, p->len, show, sizeof show));
    }
    while (skip < p->len && is_blank(p->line[skip]))
        skip++;
    p->cur = (enum pop3_kind)p->kinds[p->head];
    p->body = 0;
    if (p->cb.status != NULL && p->cb.status(p->arg, p->cur, ok, p->line + skip, p->len - skip) != 0)
        return POP3_ABORT;
    if (!ok || p->cur == POP3_SINGLE)
        return finish(p, ok);
    p->st = ST_BOL;
    p->len = 0;
    return POP3_OK;
}

/* A complete listing line is in p->line[0..p->len). */
static int listing_line(struct pop3_parser *p)
{
    size_t n = p->len;
    if (n > 0 && p->line[n - 1] == '\r')
        n--;
    if (n > POP3_LINE_MAX)
        return fail(p, "a listing line is longer than %d bytes", POP3_LINE_MAX);
    p->line[n] = '\0';
    p->body += n;
    p->len = 0;
    p->st = ST_BOL;
    if (p->cb.line != NULL && p->cb.line(p->arg, p->line, n) != 0)
        return POP3_ABORT;
    return POP3_OK;
}

static int emit(struct pop3_parser *p, const char *d, size_t n)
{
    p->body += n;
    if (n > 0 && p->cb.data != NULL && p->cb.data(p->arg, d, n) != 0)
        return POP3_ABORT;
    return POP3_OK;
}

/* Append one byte to the listing line being read. */
static int line_add(struct pop3_parser *p, char c)
{
    if (p->len >= POP3_LINE_MAX + 1)
        return fail(p, "a listing line is longer than %d bytes", POP3_LINE_MAX);
    p->line[p->len++] = c;
    return POP3_OK;
}

int pop3_parser_feed(struct pop3_parser *p, const char *buf, size_t len)
{
    size_t i = 0;
    int rc = POP3_OK;
    if (p->st == ST_DEAD)
        return POP3_EPROTO;
    while (i < len && rc == POP3_OK) {
        char c = buf[i];
        switch (p->st) {
        case ST_STATUS: {
            if (p->count == 0) {
                char show[48];
                return fail(p, "the server sent data no command asked for: \"%s\"",
                            pop3_printable(buf + i, len - i, show, sizeof show));
            }
            const char *nl = memchr(buf + i, '\n', len - i);
            size_t n = (nl != NULL ? (size_t)(nl - (buf + i)) : len - i);
            if (p->len + n > POP3_LINE_MAX + 1) /* + 1: the CR of a CRLF */
                return fail(p, "a status line is longer than %d bytes", POP3_LINE_MAX);
            memcpy(p->line + p->len, buf + i, n);
            p->len += n;
            i += n;
            if (nl == NULL)
                break;
            i++; /* the '\n' */
            if (p->len > 0 && p->line[p->len - 1] == '\r')
                p->len--;
            if (p->len > POP3_LINE_MAX)
                return fail(p, "a status line is longer than %d bytes", POP3_LINE_MAX);
            p->line[p->len] = '\0';
            rc = status_line(p);
            break;
        }
        case ST_BOL:
            if (c == '.') {
                p->st = ST_DOT;
                i++;
            } else {
                p->st = p->cur == POP3_LINES ? ST_LINE : ST_DATA;
            }
            break;
        case ST_DOT:
            if (c == '\r') {
                p->st = ST_DOT_CR;
                i++;
            } else if (c == '\n') {
                i++;
                rc = finish(p, 1);
            } else {
                /* A stuffed line: the dot goes, the line goes on. */
                p->st = p->cur == POP3_LINES ? ST_LINE : ST_DATA;
            }
            break;
        case ST_DOT_CR:
            if (c == '\n') {
                i++;
                rc = finish(p, 1);
                break;
            }
            /* ".\r" then something else: a stuffed line that begins with CR. */
            if (p->cur == POP3_LINES) {
                rc = line_add(p, '\r');
                p->st = ST_LINE;
            } else {
                rc = emit(p, "\r", 1);
                p->st = ST_DATA;
            }
            break;
        case ST_LINE: {
            const char *nl = memchr(buf + i, '\n', len - i);
            size_t n = (nl != NULL ? (size_t)(nl - (buf + i)) : len - i);
            if (p->len + n > POP3_LINE_MAX + 1)
                return fail(p, "a listing line is longer than %d bytes", POP3_LINE_MAX);
            memcpy(p->line + p->len, buf + i, n);
            p->len += n;
            i += n;
            if (nl != NULL) {
                i++;
                rc = listing_line(p);
            }
            break;
        }
        case ST_DATA: {
            const char *nl = memchr(buf + i, '\n', len - i);
            size_t n = (nl != NULL ? (size_t)(nl - (buf + i)) + 1 : len - i);
            rc = emit(p, buf + i, n);
            i += n;
            if (nl != NULL)
                p->st = ST_BOL;
            break;
        }
        case ST_DEAD:
            return POP3_EPROTO;
        }
    }
    return rc;
}

/* ------------------------------------------------------------ helpers */

/* Parse decimal digits at s[*i..len) into *v (no sign, no overflow past max).  1 ok, 0 not. */
static int parse_num(const char *s, size_t len, size_t *i, uint64_t max, uint64_t *v)
{
    size_t start = *i;
    uint64_t x = 0;
    while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
        unsigned d = (unsigned)(s[*i] - '0');
        if (x > (max - d) / 10)
            return 0;
        x = x * 10 + d;
        (*i)++;
    }
    if (*i == start || *i - start > 20)
        return 0;
    *v = x;
    return 1;
}

static void skip_blanks(const char *s, size_t len, size_t *i)
{
    while (*i < len && is_blank(s[*i]))
        (*i)++;
}

int pop3_parse_uidl(const char *line, size_t len, uint32_t *num_out, const char **uid_out,
                    size_t *uid_len_out)
{
    size_t i = 0;
    uint64_t num;
    skip_blanks(line, len, &i);
    if (!parse_num(line, len, &i, UINT32_MAX, &num) || num == 0 || i >= len || !is_blank(line[i]))
        return 0;
    skip_blanks(line, len, &i);
    size_t start = i;
    while (i < len && (unsigned char)line[i] >= 0x21 && (unsigned char)line[i] <= 0x7e)
        i++;
    size_t ulen = i - start;
    skip_blanks(line, len, &i);
    if (ulen == 0 || ulen > POP3_UIDL_MAX || i != len)
        return 0;
    *num_out = (uint32_t)num;
    *uid_out = line + start;
    *uid_len_out = ulen;
    return 1;
}

int pop3_parse_list(const char *line, size_t len, uint32_t *num_out, uint64_t *size_out)
{
    size_t i = 0;
    uint64_t num, size;
    skip_blanks(line, len, &i);
    if (!parse_num(line, len, &i, UINT32_MAX, &num) || num == 0 || i >= len || !is_blank(line[i]))
        return 0;
    skip_blanks(line, len, &i);
    if (!parse_num(line, len, &i, INT64_MAX, &size) || (i < len && !is_blank(line[i])))
        return 0;
    *num_out = (uint32_t)num;
    *size_out = size;
    return 1;
}

int pop3_capa_is(const char *line, size_t len, const char *name)
{
    size_t i = 0;
    skip_blanks(line, len, &i);
    return word_is(line + i, len - i, name);
}

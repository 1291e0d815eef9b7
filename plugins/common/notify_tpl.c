/*
 * notify_tpl: see notify_tpl.h.
 */
#include "notify_tpl.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ buffer */

struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
};

static void sb_add(struct sbuf *b, const void *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
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

static void sb_str(struct sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}
static void sb_chr(struct sbuf *b, char c)
{
    sb_add(b, &c, 1);
}

static char *sb_take(struct sbuf *b)
{
    if (b->oom) {
        free(b->p);
        return NULL;
    }
    if (b->p == NULL)
        return calloc(1, 1);
    return b->p;
}

static char *dup_or_empty(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    char *d = malloc(n + 1);
    if (d == NULL)
        return NULL;
    if (n)
        memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d == NULL)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* ------------------------------------------------------------- UTF-8 */

/* Decode one code point at s (n bytes left).  *cp = -1 for an invalid byte; returns bytes used (>= 1). */
static size_t utf8_next(const unsigned char *s, size_t n, long *cp)
{
    unsigned c = s[0];
    size_t need;
    long v, min;
    if (c < 0x80) {
        *cp = (long)c;
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        need = 1, v = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2, v = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3, v = c & 0x07, min = 0x10000;
    } else {
        *cp = -1;
        return 1;
    }
    if (n < need + 1) {
        *cp = -1;
        return 1;
    }
    for (size_t i = 1; i <= need; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            *cp = -1;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
        *cp = -1;
        return 1;
    }
    *cp = v;
    return need + 1;
}

/* ------------------------------------------------------------- event */

static const char *obj_str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void trim_span(const char **s, const char **e)
{
    while (*s < *e && (**s == ' ' || **s == '\t' || **s == '\r' || **s == '\n'))
        (*s)++;
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t' || (*e)[-1] == '\r' || (*e)[-1] == '\n'))
        (*e)--;
}

/* A display name without its quotes (and backslash escapes). */
static char *unquote(const char *s, const char *e)
{
    trim_span(&s, &e);
    if (e - s >= 2 && *s == '"' && e[-1] == '"') {
        s++;
        e--;
        char *d = malloc((size_t)(e - s) + 1);
        if (d == NULL)
            return NULL;
        size_t n = 0;
        for (const char *p = s; p < e; p++) {
            if (*p == '\\' && p + 1 < e)
                p++;
            d[n++] = *p;
        }
        d[n] = '\0';
        return d;
    }
    return dup_n(s, (size_t)(e - s));
}

void ntpl_split_address(const char *from, char **name_out, char **addr_out)
{
    *name_out = NULL;
    *addr_out = NULL;
    if (from == NULL)
        from = "";
    const char *lt = strrchr(from, '<');
    const char *gt = lt ? strchr(lt, '>') : NULL;
    if (lt && gt) {
        const char *as = lt + 1, *ae = gt;
        trim_span(&as, &ae);
        *addr_out = dup_n(as, (size_t)(ae - as));
        *name_out = unquote(from, lt);
        return;
    }
    const char *s = from, *e = from + strlen(from);
    trim_span(&s, &e);
    int has_at = memchr(s, '@', (size_t)(e - s)) != NULL;
    int has_space = memchr(s, ' ', (size_t)(e - s)) != NULL;
    if (has_at && !has_space) {
        *addr_out = dup_n(s, (size_t)(e - s));
        *name_out = dup_or_empty("");
    } else {
        *addr_out = dup_or_empty("");
        *name_out = unquote(s, e);
    }
}

void ntpl_event_clear(struct ntpl_event *ev)
{
    char **f[] = {&ev->id,   &ev->type,      &ev->time,      &ev->user,    &ev->account, &ev->folder,
                  &ev->from, &ev->from_name, &ev->from_addr, &ev->subject, &ev->phone,   &ev->message_id};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        free(*f[i]);
        *f[i] = NULL;
    }
    ev->store_id = -1;
}

int ntpl_event_parse(const char *json, size_t len, struct ntpl_event *ev, char *err, size_t err_len)
{
    memset(ev, 0, sizeof *ev);
    ev->store_id = -1;
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (root == NULL || !json_is_object(root)) {
        if (err && err_len)
            snprintf(err, err_len, "event is not a JSON object: %s", root ? "not an object" : jerr.text);
        json_decref(root);
        return -1;
    }
    json_t *data = json_object_get(root, "data");
    if (!json_is_object(data))
        data = NULL;
    ev->id = dup_or_empty(obj_str(root, "id"));
    ev->type = dup_or_empty(obj_str(root, "type"));
    ev->time = dup_or_empty(obj_str(root, "time"));
    ev->user = dup_or_empty(obj_str(root, "user"));
    ev->account = dup_or_empty(data ? obj_str(data, "account") : NULL);
    ev->folder = dup_or_empty(data ? obj_str(data, "folder") : NULL);
    ev->from = dup_or_empty(data ? obj_str(data, "from") : NULL);
    ev->subject = dup_or_empty(data ? obj_str(data, "subject") : NULL);
    ev->phone = dup_or_empty(data ? obj_str(data, "phone") : NULL);
    ev->message_id = dup_or_empty(data ? obj_str(data, "message_id") : NULL);
    json_t *sid = data ? json_object_get(data, "store_id") : NULL;
    if (json_is_integer(sid))
        ev->store_id = (int64_t)json_integer_value(sid);
    json_decref(root);
    if (ev->from) {
        ntpl_split_address(ev->from, &ev->from_name, &ev->from_addr);
    }
    if (!ev->id || !ev->type || !ev->time || !ev->user || !ev->account || !ev->folder || !ev->from ||
        !ev->subject || !ev->phone || !ev->message_id || !ev->from_name || !ev->from_addr) {
        ntpl_event_clear(ev);
        if (err && err_len)
            snprintf(err, err_len, "out of memory");
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------- escaping */

static void esc_append(struct sbuf *b, const char *s, enum ntpl_escape esc)
{
    static const char hex[] = "0123456789ABCDEF";
    if (esc == NTPL_RAW) {
        sb_str(b, s);
        return;
    }
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned c = *p;
        if (esc == NTPL_FORM) {
            if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                c == '.' || c == '_' || c == '~') {
                sb_chr(b, (char)c);
            } else {
                char t[3] = {'%', hex[c >> 4], hex[c & 15]};
                sb_add(b, t, 3);
            }
        } else {
            switch (c) {
            case '"':
                sb_str(b, "\\\"");
                break;
            case '\\':
                sb_str(b, "\\\\");
                break;
            case '\n':
                sb_str(b, "\\n");
                break;
            case '\r':
                sb_str(b, "\\r");
                break;
            case '\t':
                sb_str(b, "\\t");
                break;
            default:
                if (c < 0x20 || c == 0x7f) {
                    char t[8];
                    snprintf(t, sizeof t, "\\u%04x", c);
                    sb_str(b, t);
                } else {
                    sb_chr(b, (char)c);
                }
            }
        }
    }
}

char *ntpl_escape(const char *s, enum ntpl_escape esc)
{
    struct sbuf b = {0};
    esc_append(&b, s ? s : "", esc);
    return sb_take(&b);
}

/* ---------------------------------------------------------- templates */

static const char *const builtin_names[] = {"account", "folder", "from", "from_addr", "from_full", "subject",
                                            "user",    "type",   "id",   "phone",     "store_id",  NULL};

static const char *builtin_value(const struct ntpl_event *ev, const char *name, char *num, size_t num_len)
{
    if (strcmp(name, "account") == 0)
        return ev->account;
    if (strcmp(name, "folder") == 0)
        return ev->folder;
    if (strcmp(name, "from") == 0)
        return ev->from_name && *ev->from_name   ? ev->from_name
               : ev->from_addr && *ev->from_addr ? ev->from_addr
                                                 : ev->from;
    if (strcmp(name, "from_addr") == 0)
        return ev->from_addr;
    if (strcmp(name, "from_full") == 0)
        return ev->from;
    if (strcmp(name, "subject") == 0)
        return ev->subject;
    if (strcmp(name, "user") == 0)
        return ev->user;
    if (strcmp(name, "type") == 0)
        return ev->type;
    if (strcmp(name, "id") == 0)
        return ev->id;
    if (strcmp(name, "phone") == 0)
        return ev->phone;
    if (strcmp(name, "store_id") == 0) {
        if (ev->store_id < 0)
            return "";
        snprintf(num, num_len, "%lld", (long long)ev->store_id);
        return num;
    }
    return NULL;
}

/* Length of a placeholder name at s (lower-case letters, digits, '_'), 0 if none. */
static size_t name_len(const char *s)
{
    size_t n = 0;
    while ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '_')
        n++;
    return n;
}

char *ntpl_render(const char *tpl, const struct ntpl_event *ev, const struct ntpl_var *extra, size_t n_extra,
                  enum ntpl_escape esc)
{
    struct sbuf b = {0};
    char name[64], num[32];
    for (const char *p = tpl ? tpl : ""; *p;) {
        size_t nl = p[0] == '{' ? name_len(p + 1) : 0;
        if (nl > 0 && nl < sizeof name && p[1 + nl] == '}') {
            memcpy(name, p + 1, nl);
            name[nl] = '\0';
            const char *val = NULL;
            for (size_t i = 0; i < n_extra && val == NULL; i++)
                if (extra[i].name && strcmp(extra[i].name, name) == 0)
                    val = extra[i].value ? extra[i].value : "";
            if (val == NULL && ev != NULL)
                val = builtin_value(ev, name, num, sizeof num);
            if (val != NULL) {
                esc_append(&b, val, esc);
                p += nl + 2;
                continue;
            }
        }
        sb_chr(&b, *p++);
    }
    return sb_take(&b);
}

int ntpl_check(const char *tpl, const char *const *extra_names, char *bad, size_t bad_len)
{
    for (const char *p = tpl ? tpl : ""; *p; p++) {
        if (*p != '{')
            continue;
        size_t nl = name_len(p + 1);
        if (nl == 0 || p[1 + nl] != '}')
            continue; /* not a placeholder: a literal brace (JSON bodies are full of them) */
        int known = 0;
        for (const char *const *n = builtin_names; *n && !known; n++)
            known = strlen(*n) == nl && memcmp(*n, p + 1, nl) == 0;
        for (const char *const *n = extra_names; n && *n && !known; n++)
            known = strlen(*n) == nl && memcmp(*n, p + 1, nl) == 0;
        if (!known) {
            snprintf(bad, bad_len, "unknown placeholder {%.*s}", (int)(nl > 40 ? 40 : nl), p + 1);
            return -1;
        }
        p += nl + 1;
    }
    return 0;
}

/* --------------------------------------------------------------- SMS */

/* The GSM 03.38 default alphabet outside printable ASCII (LF and CR included). */
static const uint16_t gsm7_basic[] = {
    '\n',  '\r', 0xa3,  0xa5,  0xe8,  0xe9,  0xf9,  0xec,  0xf2,  0xc7,  0xd8,  0xf8, /* £¥èéùìòÇØø */
    0xc5,  0xe5, 0x394, 0x3a6, 0x393, 0x39b, 0x3a9, 0x3a0, 0x3a8, 0x3a3, 0x398, /* ÅåΔΦΓΛΩΠΨΣΘ */
    0x39e, 0xc6, 0xe6,  0xdf,  0xc9,  0xa4,  0xa1,  0xc4,  0xd6,  0xd1,  0xdc,  /* ΞÆæßÉ¤¡ÄÖÑÜ */
    0xa7,  0xbf, 0xe4,  0xf6,  0xf1,  0xfc,  0xe0,                              /* §¿äöñüà */
};

/* Septets a code point costs in GSM 03.38: 1 (basic table), 2 (extension table), 0 (not representable). */
static int gsm7_cost(long cp)
{
    if (cp < 0)
        return 0;
    if (cp >= 0x20 && cp < 0x7f) {
        if (cp == '`')
            return 0;
        return strchr("^{}\\[]~|", (int)cp) != NULL ? 2 : 1;
    }
    if (cp == 0x0c || cp == 0x20ac) /* form feed, euro sign: extension table */
        return 2;
    for (size_t i = 0; i < sizeof gsm7_basic / sizeof gsm7_basic[0]; i++)
        if (gsm7_basic[i] == cp)
            return 1;
    return 0;
}

long ntpl_gsm7_septets(const char *utf8)
{
    const unsigned char *s = (const unsigned char *)(utf8 ? utf8 : "");
    size_t n = strlen((const char *)s);
    long total = 0;
    for (size_t i = 0; i < n;) {
        long cp;
        i += utf8_next(s + i, n - i, &cp);
        int c = gsm7_cost(cp);
        if (c == 0)
            return -1;
        total += c;
    }
    return total;
}

void ntpl_sms_fit(const char *utf8, int max_parts, struct ntpl_sms_fit *out)
{
    const unsigned char *s = (const unsigned char *)(utf8 ? utf8 : "");
    size_t n = strlen((const char *)s);
    if (max_parts < 1)
        max_parts = 1;
    memset(out, 0, sizeof *out);
    long septets = ntpl_gsm7_septets((const char *)s);
    out->ucs2 = septets < 0;
    size_t single = out->ucs2 ? 70 : 160, multi = out->ucs2 ? 67 : 153;

    /* total units, to know whether it fits in one part */
    size_t total = 0;
    for (size_t i = 0; i < n;) {
        long cp;
        i += utf8_next(s + i, n - i, &cp);
        total += out->ucs2 ? (cp >= 0x10000 ? 2 : 1) : (size_t)gsm7_cost(cp);
    }
    if (total <= single) {
        out->len = n;
        out->units = total;
        out->parts = total > 0 ? 1 : 0;
        return;
    }
    size_t cap = max_parts == 1 ? single : multi;
    int part = 1;
    size_t used = 0, units = 0, i = 0;
    while (i < n) {
        long cp;
        size_t bl = utf8_next(s + i, n - i, &cp);
        size_t c = out->ucs2 ? (cp >= 0x10000 ? 2 : 1) : (size_t)gsm7_cost(cp);
        if (used + c > cap) {
            if (part == max_parts)
                break;
            part++;
            used = 0;
        }
        used += c;
        units += c;
        i += bl;
    }
    out->len = i;
    out->units = units;
    out->parts = units > 0 ? part : 0;
    out->truncated = i < n;
}

/* ------------------------------------------------------------ base64 */

char *ntpl_base64(const void *data, size_t len)
{
    size_t out_len = 4 * ((len + 2) / 3);
    char *out = malloc(out_len + 1);
    if (out == NULL)
        return NULL;
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    out[out_len] = '\0';
    return out;
}

static int b64_val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

long ntpl_whsec_decode(const char *secret, unsigned char *key, size_t cap)
{
    if (secret == NULL)
        return -1;
    if (strncmp(secret, "whsec_", 6) == 0)
        secret += 6;
    size_t n = strlen(secret);
    while (n > 0 && secret[n - 1] == '=')
        n--;
    if (n == 0 || n % 4 == 1)
        return -1;
    size_t out = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_val((unsigned char)secret[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (out >= cap)
                return -1;
            key[out++] = (unsigned char)(acc >> bits);
        }
    }
    return out > 0 ? (long)out : -1;
}

char *ntpl_webhook_sign(const unsigned char *key, size_t key_len, const char *id, int64_t timestamp,
                        const void *body, size_t body_len)
{
    char ts[32];
    int tl = snprintf(ts, sizeof ts, "%lld", (long long)timestamp);
    size_t il = strlen(id);
    size_t mlen = il + 1 + (size_t)tl + 1 + body_len;
    unsigned char *msg = malloc(mlen ? mlen : 1);
    if (msg == NULL)
        return NULL;
    memcpy(msg, id, il);
    msg[il] = '.';
    memcpy(msg + il + 1, ts, (size_t)tl);
    msg[il + 1 + (size_t)tl] = '.';
    if (body_len)
        memcpy(msg + il + 2 + (size_t)tl, body, body_len);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    unsigned char *r = HMAC(EVP_sha256(), key, (int)key_len, msg, mlen, mac, &mac_len);
    free(msg);
    if (r == NULL)
        return NULL;
    char *b64 = ntpl_base64(mac, mac_len);
    if (b64 == NULL)
        return NULL;
    size_t bl = strlen(b64);
    char *sig = malloc(bl + 4);
    if (sig != NULL) {
        memcpy(sig, "v1,", 3);
        memcpy(sig + 3, b64, bl + 1);
    }
    free(b64);
    return sig;
}

/* -------------------------------------------------------------- mail */

static int needs_encoding(const char *s)
{
    if (strstr(s, "=?") != NULL || strlen(s) > 900)
        return 1;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p >= 0x7f)
            return 1;
    return 0;
}

char *ntpl_rfc2047(const char *utf8)
{
    const char *s = utf8 ? utf8 : "";
    if (!needs_encoding(s))
        return dup_or_empty(s);
    struct sbuf b = {0};
    size_t n = strlen(s);
    const unsigned char *u = (const unsigned char *)s;
    int first = 1;
    for (size_t i = 0; i < n;) {
        /* up to 45 bytes (60 base64 characters: 72 with the markers) on a character boundary */
        size_t j = i;
        while (j < n) {
            long cp;
            size_t bl = utf8_next(u + j, n - j, &cp);
            if (j - i + bl > 45)
                break;
            j += bl;
        }
        if (j == i)
            j = i + 1;
        char *b64 = ntpl_base64(u + i, j - i);
        if (b64 == NULL) {
            b.oom = 1;
            break;
        }
        if (!first)
            sb_str(&b, "\r\n ");
        sb_str(&b, "=?UTF-8?B?");
        sb_str(&b, b64);
        sb_str(&b, "?=");
        free(b64);
        first = 0;
        i = j;
    }
    return sb_take(&b);
}

char *ntpl_mail_address(const char *name_addr)
{
    char *name = NULL, *addr = NULL;
    ntpl_split_address(name_addr, &name, &addr);
    char *res = NULL;
    if (name == NULL || addr == NULL)
        goto out;
    if (*addr == '\0') {
        res = dup_or_empty(name);
        goto out;
    }
    if (*name == '\0') {
        res = dup_or_empty(addr);
        goto out;
    }
    struct sbuf b = {0};
    if (needs_encoding(name)) {
        char *enc = ntpl_rfc2047(name);
        if (enc == NULL)
            goto out;
        sb_str(&b, enc);
        free(enc);
    } else if (strpbrk(name, "()<>[]:;@\\,.\"") != NULL) {
        sb_chr(&b, '"');
        for (const char *p = name; *p; p++) {
            if (*p == '"' || *p == '\\')
                sb_chr(&b, '\\');
            sb_chr(&b, *p);
        }
        sb_chr(&b, '"');
    } else {
        sb_str(&b, name);
    }
    sb_str(&b, " <");
    sb_str(&b, addr);
    sb_chr(&b, '>');
    res = sb_take(&b);
out:
    free(name);
    free(addr);
    return res;
}

char *ntpl_qp_encode(const char *text)
{
    static const char hex[] = "0123456789ABCDEF";
    struct sbuf b = {0};
    const unsigned char *p = (const unsigned char *)(text ? text : "");
    size_t col = 0;
    while (*p) {
        if (*p == '\r' && p[1] == '\n') {
            p++;
            continue;
        }
        if (*p == '\n') {
            sb_str(&b, "\r\n");
            col = 0;
            p++;
            continue;
        }
        char tok[4];
        size_t tl;
        int at_eol = p[1] == '\0' || p[1] == '\n' || (p[1] == '\r' && p[2] == '\n');
        if ((*p >= 33 && *p <= 126 && *p != '=') || ((*p == ' ' || *p == '\t') && !at_eol)) {
            tok[0] = (char)*p;
            tl = 1;
        } else {
            tok[0] = '=';
            tok[1] = hex[*p >> 4];
            tok[2] = hex[*p & 15];
            tl = 3;
        }
        /* a soft break keeps every line within 76 characters, "=" included */
        if (col + tl > 75 && !(at_eol && col + tl <= 76)) {
            sb_str(&b, "=\r\n");
            col = 0;
        }
        sb_add(&b, tok, tl);
        col += tl;
        p++;
    }
    return sb_take(&b);
}

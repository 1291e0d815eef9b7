/*
 * Declarative options: one code path turns a YAML map (or a table's default
 * text) into typed values, so that plugin options and the daemon's own
 * sections produce the same messages.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mh_config.h"
#include "mh_log.h"
#include "mh_options.h"
#include "mh_util.h"

struct mh_opt_value {
    const struct mh_option *opt;
    int is_set;    /* written in the YAML */
    int has_value; /* written or defaulted */
    char *text;    /* STR and ENUM: the value; other scalar types: the text as written */
    int64_t num;   /* INT; BOOL 0/1; DURATION in ms; ENUM: index of the choice */
    uint64_t size; /* SIZE in bytes */
    char **list;   /* STRLIST: n_list items, NULL-terminated */
    size_t n_list;
    const struct mh_cfg_node *node; /* MH_OPT_X_MAP: borrowed */
};

struct mh_opts {
    struct mh_config head; /* must stay first: plugins get &head */
    const struct mh_option *table;
    size_t n;
    struct mh_opt_value *vals;
};

/* ------------------------------------------------------- value parsers */

static int ci_equal(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
            return 0;
    return *a == *b;
}

int mh_parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    if (s == NULL)
        return -1;
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (ci_equal(s, yes[i])) {
            *out = 1;
            return 0;
        }
        if (ci_equal(s, no[i])) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

int mh_parse_int(const char *s, int64_t *out)
{
    const char *p = s;
    int neg = 0;
    uint64_t v = 0;
    if (s == NULL)
        return -1;
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (*p != '\0')
        return -1;
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1)
            return -1;
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX)
            return -1;
        *out = (int64_t)v;
    }
    return 0;
}

/*
 * A decimal number "12" or "1.5", scaled by `unit` and truncated.  The
 * fraction is limited to 9 digits, which is more precision than any unit
 * here needs.  Returns 0, or -1 on syntax error or overflow of `limit`.
 */
static int scaled_number(const char **pp, uint64_t unit, uint64_t limit, uint64_t *out)
{
    const char *p = *pp;
    uint64_t ip = 0, frac = 0, scale = 1;
    int digits = 0;
    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++, digits++) {
        unsigned d = (unsigned)(*p - '0');
        if (ip > (UINT64_MAX - d) / 10)
            return -1;
        ip = ip * 10 + d;
    }
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        for (; isdigit((unsigned char)*p); p++, digits++) {
            if (scale < 1000000000u) {
                frac = frac * 10 + (unsigned)(*p - '0');
                scale *= 10;
            }
        }
    }
    if (digits == 0)
        return -1;
    if (unit != 0 && ip > limit / unit)
        return -1;
    uint64_t v = ip * unit;
    /* frac < scale <= 1e9 and units are at most 2^40, so this cannot overflow */
    uint64_t f = frac * unit / scale;
    if (v > limit - f)
        return -1;
    *pp = p;
    *out = v + f;
    return 0;
}

/* Reads a unit word: letters only.  Returns its length. */
static size_t unit_word(const char *p, char *buf, size_t cap)
{
    size_t n = 0;
    while (isalpha((unsigned char)p[n])) {
        if (n + 1 < cap)
            buf[n] = (char)tolower((unsigned char)p[n]);
        n++;
    }
    buf[n < cap ? n : cap - 1] = '\0';
    return n;
}

int mh_parse_duration_ms(const char *s, int64_t *out)
{
    static const struct {
        const char *name;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    const char *p = s;
    uint64_t total = 0;
    int groups = 0;
    if (s == NULL || *s == '\0')
        return -1;
    while (*p) {
        /* the unit comes after the number but scales it, so look ahead */
        const char *q = p;
        while (isdigit((unsigned char)*q) || *q == '.')
            q++;
        if (q == p)
            return -1;
        const char *u = q;
        while (*u == ' ')
            u++;
        char word[8];
        size_t wl = unit_word(u, word, sizeof word);
        uint64_t unit = 0, v;
        if (wl == 0) {
            /* a bare number is seconds, and only on its own */
            if (groups > 0 || *q != '\0')
                return -1;
            unit = 1000;
        } else {
            for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
                if (strcmp(word, units[i].name) == 0)
                    unit = units[i].ms;
            if (unit == 0)
                return -1;
        }
        if (scaled_number(&p, unit, (uint64_t)INT64_MAX - total, &v) < 0 || p != q)
            return -1;
        total += v;
        groups++;
        p = u + wl;
        /* "1h 30m" */
        if (*p == ' ') {
            while (*p == ' ')
                p++;
            if (*p == '\0')
                return -1;
        }
    }
    *out = (int64_t)total;
    return 0;
}

int mh_parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *name;
        unsigned shift;
    } units[] = {
        {"b", 0},  {"k", 10},  {"kb", 10},  {"kib", 10}, {"m", 20},  {"mb", 20},  {"mib", 20},
        {"g", 30}, {"gb", 30}, {"gib", 30}, {"t", 40},   {"tb", 40}, {"tib", 40},
    };
    const char *p = s, *q;
    uint64_t unit = 1;
    char word[8];
    size_t wl;
    if (s == NULL)
        return -1;
    for (q = p; isdigit((unsigned char)*q) || *q == '.'; q++)
        ;
    if (q == p)
        return -1;
    const char *u = q;
    while (*u == ' ')
        u++;
    wl = unit_word(u, word, sizeof word);
    if (u[wl] != '\0' || (wl == 0 && u != q))
        return -1;
    if (wl > 0) {
        unit = 0;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
            if (strcmp(word, units[i].name) == 0)
                unit = (uint64_t)1 << units[i].shift;
        if (unit == 0)
            return -1;
    }
    if (scaled_number(&p, unit, UINT64_MAX, out) < 0 || p != q)
        return -1;
    return 0;
}

const char *mh_opt_type_name(enum mh_opt_type t)
{
    switch ((int)t) {
    case MH_OPT_STR:
        return "string";
    case MH_OPT_INT:
        return "integer";
    case MH_OPT_BOOL:
        return "boolean";
    case MH_OPT_DURATION:
        return "duration";
    case MH_OPT_SIZE:
        return "size";
    case MH_OPT_STRLIST:
        return "list";
    case MH_OPT_ENUM:
        return "enum";
    case (int)MH_OPT_X_MAP:
        return "map";
    default:
        return "unknown";
    }
}

/* ------------------------------------------------------- did you mean */

/* Optimal string alignment distance, case-insensitive: a swap of two
 * neighbours ("levle") counts as one edit, as people type it. */
static size_t osa_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t *rows = mh_xcalloc(3 * (lb + 1), sizeof *rows);
    size_t *prev2 = rows, *prev = rows + lb + 1, *cur = rows + 2 * (lb + 1);
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            size_t cost = ca == cb ? 0 : 1;
            size_t d = prev[j] + 1;
            if (cur[j - 1] + 1 < d)
                d = cur[j - 1] + 1;
            if (prev[j - 1] + cost < d)
                d = prev[j - 1] + cost;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && prev2[j - 2] + 1 < d)
                d = prev2[j - 2] + 1;
            cur[j] = d;
        }
        size_t *t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
    }
    size_t d = prev[lb];
    free(rows);
    return d;
}

const char *mh_did_you_mean(const char *word, const char *const *candidates)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    size_t len;
    if (word == NULL || candidates == NULL)
        return NULL;
    len = strlen(word);
    /* beyond this no key is a typo of another, and the cost is quadratic */
    if (len == 0 || len > 64)
        return NULL;
    size_t limit = len <= 3 ? 1 : len <= 6 ? 2 : 3;
    for (size_t i = 0; candidates[i] != NULL; i++) {
        size_t d = osa_distance(word, candidates[i]);
        if (d < best_d) {
            best_d = d;
            best = candidates[i];
        }
    }
    if (best == NULL || best_d > limit || best_d >= strlen(best))
        return NULL;
    return best;
}

/* ---------------------------------------------------------- formatting */

/* Exact multiples read best: 3600000 -> "1h", 1500 -> "1500ms". */
void mh_format_duration(int64_t ms, char *buf, size_t cap)
{
    static const struct {
        const char *name;
        int64_t ms;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (ms != 0 && ms % units[i].ms == 0) {
            snprintf(buf, cap, "%" PRId64 "%s", ms / units[i].ms, units[i].name);
            return;
        }
    }
    snprintf(buf, cap, "%" PRId64 "ms", ms);
}

void mh_format_size(uint64_t b, char *buf, size_t cap)
{
    static const char *const names[] = {"TB", "GB", "MB", "KB"};
    for (unsigned i = 0; i < 4; i++) {
        unsigned shift = 40 - 10 * i;
        uint64_t unit = (uint64_t)1 << shift;
        if (b != 0 && b % unit == 0) {
            snprintf(buf, cap, "%" PRIu64 "%s", b / unit, names[i]);
            return;
        }
    }
    snprintf(buf, cap, "%" PRIu64 "B", b);
}

static int has_range(const struct mh_option *opt)
{
    return opt->min < opt->max &&
           (opt->type == MH_OPT_INT || opt->type == MH_OPT_DURATION || opt->type == MH_OPT_SIZE);
}

static void format_bound(const struct mh_option *opt, int64_t v, char *buf, size_t cap)
{
    if (opt->type == MH_OPT_DURATION)
        mh_format_duration(v, buf, cap);
    else if (opt->type == MH_OPT_SIZE)
        mh_format_size(v < 0 ? 0 : (uint64_t)v, buf, cap);
    else
        snprintf(buf, cap, "%" PRId64, v);
}

/* "a, b or c" from "a|b|c"; malloc'ed. */
static char *choices_text(const char *choices, const char *last_sep)
{
    size_t n = 0, cap = 0;
    char *out;
    const char *p;
    if (choices == NULL || *choices == '\0')
        return mh_xstrdup("(no choices)");
    cap = strlen(choices) * 2 + 16;
    out = mh_xcalloc(1, cap);
    p = choices;
    for (;;) {
        const char *bar = strchr(p, '|');
        size_t wl = bar ? (size_t)(bar - p) : strlen(p);
        if (n > 0) {
            const char *sep = bar == NULL ? last_sep : ", ";
            n += (size_t)snprintf(out + n, cap - n, "%s", sep);
        }
        n += (size_t)snprintf(out + n, cap - n, "%.*s", (int)wl, p);
        if (bar == NULL)
            break;
        p = bar + 1;
    }
    return out;
}

/* What the user wrote, for "got ...", without ever echoing a secret. */
static char *describe(const struct mh_cfg_node *n, int secret)
{
    if (n == NULL)
        return mh_xstrdup("nothing");
    if (n->type == MH_CFG_MAP)
        return mh_xstrdup("a map");
    if (n->type == MH_CFG_SEQ)
        return mh_xstrdup("a list");
    if (n->is_null)
        return mh_xstrdup("an empty value");
    if (n->env_raw != NULL) {
        char *p = mh_cfg_printable(n->env_raw);
        char *s = mh_asprintf("the value of '%s' (not shown)", p);
        free(p);
        if (s == NULL)
            abort();
        return s;
    }
    if (secret)
        return mh_xstrdup("a value that is not shown (secret)");
    char *p = mh_cfg_printable(n->scalar);
    char *s = mh_asprintf("'%s'", p);
    free(p);
    if (s == NULL)
        abort();
    return s;
}

/* "expected an integer from 1 to 64" and so on. */
static char *expectation(const struct mh_option *opt)
{
    char lo[32], hi[32], *s = NULL;
    switch ((int)opt->type) {
    case MH_OPT_STR:
        return mh_xstrdup("expected a string");
    case MH_OPT_BOOL:
        return mh_xstrdup("expected true or false (or yes/no, on/off)");
    case MH_OPT_STRLIST:
        return mh_xstrdup("expected a string or a list of strings");
    case (int)MH_OPT_X_MAP:
        return mh_xstrdup("expected a map");
    case MH_OPT_ENUM: {
        char *c = choices_text(opt->choices, " or ");
        s = mh_asprintf("expected one of %s", c);
        free(c);
        break;
    }
    case MH_OPT_INT:
    case MH_OPT_DURATION:
    case MH_OPT_SIZE: {
        int is_int = opt->type == MH_OPT_INT, is_dur = opt->type == MH_OPT_DURATION;
        if (has_range(opt)) {
            format_bound(opt, opt->min, lo, sizeof lo);
            format_bound(opt, opt->max, hi, sizeof hi);
            s = mh_asprintf("expected %s from %s to %s",
                            is_int   ? "an integer"
                            : is_dur ? "a duration"
                                     : "a size",
                            lo, hi);
        } else {
            s = mh_asprintf("expected %s", is_int   ? "an integer"
                                           : is_dur ? "a duration such as 5s or 250ms"
                                                    : "a size such as 512KB or 30MB");
        }
        break;
    }
    default:
        s = mh_asprintf("has an unknown type (%d) in the option table", (int)opt->type);
        break;
    }
    if (s == NULL)
        abort();
    return s;
}

/* --------------------------------------------------------- conversion */

/* "expected X, got Y[hint]"; malloc'ed. */
static char *mismatch(const struct mh_option *opt, const struct mh_cfg_node *n, const char *hint)
{
    char *exp = expectation(opt), *got = describe(n, (opt->flags & MH_OPT_SECRET) != 0);
    char *s = mh_asprintf("%s, got %s%s", exp, got, hint ? hint : "");
    free(exp);
    free(got);
    if (s == NULL)
        abort();
    return s;
}

static void value_clear(struct mh_opt_value *v)
{
    free(v->text);
    if (v->list != NULL)
        for (size_t i = 0; i < v->n_list; i++)
            free(v->list[i]);
    free(v->list);
    const struct mh_option *opt = v->opt;
    memset(v, 0, sizeof *v);
    v->opt = opt;
}

static int enum_index(const char *choices, const char *s, const char **canon_out, size_t *len_out)
{
    const char *p = choices;
    size_t sl = strlen(s);
    for (int i = 0; p != NULL && *p != '\0'; i++) {
        const char *bar = strchr(p, '|');
        size_t wl = bar ? (size_t)(bar - p) : strlen(p);
        if (wl == sl) {
            size_t k = 0;
            while (k < wl && tolower((unsigned char)p[k]) == tolower((unsigned char)s[k]))
                k++;
            if (k == wl) {
                *canon_out = p;
                *len_out = wl;
                return i;
            }
        }
        p = bar ? bar + 1 : NULL;
    }
    return -1;
}

/* A did-you-mean among an enum's choices; malloc'ed suggestion or NULL. */
static char *enum_suggest(const char *choices, const char *s)
{
    char *copy, *tok, *save = NULL, *res = NULL;
    const char *cands[65];
    size_t n = 0;
    if (choices == NULL)
        return NULL;
    copy = mh_xstrdup(choices);
    for (tok = strtok_r(copy, "|", &save); tok != NULL && n < 64; tok = strtok_r(NULL, "|", &save))
        cands[n++] = tok;
    cands[n] = NULL;
    const char *best = mh_did_you_mean(s, cands);
    if (best != NULL)
        res = mh_xstrdup(best);
    free(copy);
    return res;
}

/*
 * Convert `n` for `opt` into `v`.  On failure returns -1 with a message in
 * *why_out (malloc'ed) and the node at fault in *where_out, which is `n` or
 * one of its items (*index_out then holds its index, else -1).
 */
static int convert(const struct mh_option *opt, const struct mh_cfg_node *n, struct mh_opt_value *v,
                   char **why_out, const struct mh_cfg_node **where_out, long *index_out)
{
    int secret = (opt->flags & MH_OPT_SECRET) != 0;
    const char *s = n->scalar;
    char *hint = NULL;

    *where_out = n;
    *index_out = -1;
    if ((int)opt->type == (int)MH_OPT_X_MAP) {
        if (n->type != MH_CFG_MAP)
            goto bad;
        v->node = n;
        return 0;
    }
    if (opt->type == MH_OPT_STRLIST) {
        if (n->type == MH_CFG_MAP)
            goto bad;
        if (n->type == MH_CFG_SCALAR) {
            v->list = mh_xcalloc(2, sizeof *v->list);
            v->list[0] = mh_xstrdup(s);
            v->n_list = 1;
            return 0;
        }
        v->list = mh_xcalloc(n->n + 1, sizeof *v->list);
        for (size_t i = 0; i < n->n; i++) {
            const struct mh_cfg_node *it = n->items[i];
            if (it->invalid) {
                *why_out = NULL; /* already reported */
                value_clear(v);
                return -1;
            }
            if (it->type != MH_CFG_SCALAR || it->is_null) {
                static const struct mh_option item = {"", MH_OPT_STR, NULL, 0, NULL, NULL, 0, 0};
                struct mh_option as_item = item;
                as_item.flags = opt->flags;
                *why_out = mismatch(&as_item, it, NULL);
                *where_out = it;
                *index_out = (long)i;
                value_clear(v);
                return -1;
            }
            v->list[i] = mh_xstrdup(it->scalar);
            v->n_list = i + 1;
        }
        return 0;
    }
    if (n->type != MH_CFG_SCALAR || opt->type == MH_OPT_END)
        goto bad;

    switch ((int)opt->type) {
    case MH_OPT_STR:
        break;
    case MH_OPT_INT:
        if (mh_parse_int(s, &v->num) < 0)
            goto bad;
        break;
    case MH_OPT_BOOL: {
        int b;
        if (mh_parse_bool(s, &b) < 0)
            goto bad;
        v->num = b;
        break;
    }
    case MH_OPT_DURATION:
        if (mh_parse_duration_ms(s, &v->num) < 0)
            goto bad;
        break;
    case MH_OPT_SIZE:
        if (mh_parse_size(s, &v->size) < 0)
            goto bad;
        break;
    case MH_OPT_ENUM: {
        const char *canon;
        size_t cl;
        int idx = opt->choices ? enum_index(opt->choices, s, &canon, &cl) : -1;
        if (idx < 0) {
            char *sug = secret || n->env_raw ? NULL : enum_suggest(opt->choices, s);
            if (sug != NULL) {
                hint = mh_asprintf("; did you mean '%s'?", sug);
                free(sug);
            }
            goto bad;
        }
        v->num = idx;
        v->text = mh_xcalloc(1, cl + 1);
        memcpy(v->text, canon, cl);
        return 0;
    }
    default:
        goto bad;
    }
    if (has_range(opt)) {
        int out_of_range;
        if (opt->type == MH_OPT_SIZE)
            out_of_range = (opt->min > 0 && v->size < (uint64_t)opt->min) || v->size > (uint64_t)opt->max;
        else
            out_of_range = v->num < opt->min || v->num > opt->max;
        if (out_of_range)
            goto bad;
    }
    v->text = mh_xstrdup(s);
    return 0;

bad:
    *why_out = mismatch(opt, n, hint);
    free(hint);
    value_clear(v);
    return -1;
}

/* A table default as a node: "[a, b]" is a list, anything else one scalar. */
static struct mh_cfg_node *default_node(const struct mh_option *opt)
{
    struct mh_cfg_node *n = mh_xcalloc(1, sizeof *n);
    const char *d = opt->def;
    size_t dl = strlen(d);
    n->type = MH_CFG_SCALAR;
    if (opt->type == MH_OPT_STRLIST && dl >= 2 && d[0] == '[' && d[dl - 1] == ']') {
        n->type = MH_CFG_SEQ;
        const char *p = d + 1, *end = d + dl - 1;
        while (p < end) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *e = comma ? comma : end;
            while (p < e && isspace((unsigned char)*p))
                p++;
            const char *t = e;
            while (t > p && isspace((unsigned char)t[-1]))
                t--;
            if (t - p >= 2 && (*p == '"' || *p == '\'') && t[-1] == *p) {
                p++;
                t--;
            }
            if (t > p || comma != NULL) {
                struct mh_cfg_node *it = mh_xcalloc(1, sizeof *it);
                it->type = MH_CFG_SCALAR;
                it->scalar = mh_xcalloc(1, (size_t)(t - p) + 1);
                memcpy(it->scalar, p, (size_t)(t - p));
                struct mh_cfg_node **items = realloc(n->items, (n->n + 1) * sizeof *items);
                if (items == NULL)
                    abort();
                n->items = items;
                n->items[n->n++] = it;
            }
            p = e + 1;
        }
    } else {
        n->scalar = mh_xstrdup(d);
    }
    return n;
}

/* -------------------------------------------------------------- build */

static char *child_path(const char *keypath, const char *key)
{
    char *pk = mh_cfg_printable(key);
    char *s = keypath && *keypath ? mh_asprintf("%s.%s", keypath, pk) : mh_xstrdup(pk);
    free(pk);
    if (s == NULL)
        abort();
    return s;
}

static size_t table_len(const struct mh_option *table)
{
    size_t n = 0;
    while (table != NULL && table[n].name != NULL && table[n].type != MH_OPT_END)
        n++;
    return n;
}

static void unknown_key(const struct mh_option *table, size_t n, const struct mh_cfg_pair *p,
                        const char *file, const char *keypath, struct mh_cfg_errors *errs)
{
    const char **names = mh_xcalloc(n + 1, sizeof *names);
    char *key = mh_cfg_printable(p->key);
    char *where = keypath && *keypath ? mh_asprintf("key '%s' in %s", key, keypath)
                                      : mh_asprintf("top-level key '%s'", key);
    if (where == NULL)
        abort();
    for (size_t i = 0; i < n; i++)
        names[i] = table[i].name;
    const char *best = mh_did_you_mean(p->key, names);
    if (best != NULL) {
        mh_cfg_errors_add(errs, file, p->line, p->col, NULL, "unknown %s; did you mean '%s'?", where, best);
    } else if (n == 0) {
        mh_cfg_errors_add(errs, file, p->line, p->col, NULL, "unknown %s; no keys are accepted here", where);
    } else {
        size_t cap = 64, len = 0;
        char *list = mh_xcalloc(1, cap);
        for (size_t i = 0; i < n; i++) {
            size_t need = len + strlen(names[i]) + 3;
            if (need >= cap) {
                cap = need * 2;
                char *t = realloc(list, cap);
                if (t == NULL)
                    abort();
                list = t;
            }
            len += (size_t)snprintf(list + len, cap - len, "%s%s", i ? ", " : "", names[i]);
        }
        mh_cfg_errors_add(errs, file, p->line, p->col, NULL, "unknown %s; expected one of: %s", where, list);
        free(list);
    }
    free(where);
    free(key);
    free(names);
}

int mh_opts_build_at(const struct mh_option *table, const struct mh_cfg_node *map, const char *file,
                     const char *keypath, int line, int col, const struct mh_host *host, struct mh_opts **out,
                     struct mh_cfg_errors *errs)
{
    size_t n = table_len(table), n_errs = errs->n;
    struct mh_opts *o = mh_xcalloc(1, sizeof *o);
    char *reported = mh_xcalloc(n + 1, 1); /* a required key already blamed */
    const char *path = keypath ? keypath : "";
    int failed = 0;

    *out = NULL;
    o->head.struct_size = sizeof o->head;
    o->head.host = host;
    o->table = table;
    o->n = n;
    o->vals = mh_xcalloc(n + 1, sizeof *o->vals);
    for (size_t i = 0; i < n; i++)
        o->vals[i].opt = &table[i];

    if (map != NULL && map->type == MH_CFG_SCALAR && map->is_null)
        map = NULL; /* "options:" with nothing after it: no options */
    if (map != NULL && map->type != MH_CFG_MAP) {
        char *got = describe(map, 0);
        mh_cfg_errors_add(errs, file, map->line, map->col, path, "expected a map, got %s", got);
        free(got);
        map = NULL;
        memset(reported, 1, n); /* one error is enough for a section of the wrong shape */
    }
    if (line <= 0 && map != NULL) {
        line = map->line;
        col = map->col;
    }

    for (size_t k = 0; map != NULL && k < map->n; k++) {
        const struct mh_cfg_pair *p = &map->pairs[k];
        size_t i;
        for (i = 0; i < n; i++)
            if (strcmp(table[i].name, p->key) == 0)
                break;
        if (i == n) {
            unknown_key(table, n, p, file, path, errs);
            continue;
        }
        const struct mh_cfg_node *val = p->value;
        if (val->invalid) {
            /* reported by the parser; fail without a second message */
            reported[i] = 1;
            failed = 1;
            continue;
        }
        if (val->type == MH_CFG_SCALAR && val->is_null) {
            /* an explicit null means "not set", but a required key needs a value */
            if (table[i].flags & MH_OPT_REQUIRED) {
                char *kp = child_path(path, p->key);
                char *why = mismatch(&table[i], val, NULL);
                mh_cfg_errors_add(errs, file, val->line, val->col, kp, "%s", why);
                free(why);
                free(kp);
                reported[i] = 1;
            }
            continue;
        }
        char *why = NULL;
        const struct mh_cfg_node *where;
        long idx;
        struct mh_opt_value *v = &o->vals[i];
        if (convert(&table[i], val, v, &why, &where, &idx) < 0) {
            reported[i] = 1;
            failed = 1;
            if (why == NULL)
                continue;
            char *kp = child_path(path, p->key);
            char *kpi = idx >= 0 ? mh_asprintf("%s[%ld]", kp, idx) : NULL;
            mh_cfg_errors_add(errs, file, where->line, where->col, kpi ? kpi : kp, "%s", why);
            free(kpi);
            free(kp);
            free(why);
            reported[i] = 1;
            continue;
        }
        v->is_set = v->has_value = 1;
    }

    for (size_t i = 0; i < n; i++) {
        struct mh_opt_value *v = &o->vals[i];
        if (v->has_value || reported[i])
            continue;
        if (table[i].def != NULL && (int)table[i].type != (int)MH_OPT_X_MAP) {
            struct mh_cfg_node *dn = default_node(&table[i]);
            char *why = NULL;
            const struct mh_cfg_node *where;
            long idx;
            if (convert(&table[i], dn, v, &why, &where, &idx) < 0) {
                char *kp = child_path(path, table[i].name);
                mh_cfg_errors_add(errs, file, line, col, kp,
                                  "the option table has an invalid default (a bug in the plugin): %s", why);
                free(kp);
                free(why);
            } else {
                v->has_value = 1;
            }
            mh_cfg_node_free(&dn);
        } else if (table[i].flags & MH_OPT_REQUIRED) {
            mh_cfg_errors_add(errs, file, line, col, path, "missing required key '%s'", table[i].name);
        }
    }
    free(reported);

    if (failed || errs->n > n_errs) {
        mh_opts_free(&o);
        return -1;
    }
    *out = o;
    return 0;
}

int mh_opts_build(const struct mh_option *table, const struct mh_cfg_node *map, const char *file,
                  const char *keypath, const struct mh_host *host, struct mh_opts **out,
                  struct mh_cfg_errors *errs)
{
    return mh_opts_build_at(table, map, file, keypath, 0, 0, host, out, errs);
}

void mh_opts_free(struct mh_opts **o)
{
    if (o == NULL || *o == NULL)
        return;
    for (size_t i = 0; i < (*o)->n; i++)
        value_clear(&(*o)->vals[i]);
    free((*o)->vals);
    free(*o);
    *o = NULL;
}

const struct mh_config *mh_opts_config(const struct mh_opts *o)
{
    return o ? &o->head : NULL;
}

static int node_equal(const struct mh_cfg_node *a, const struct mh_cfg_node *b)
{
    if (a == b)
        return 1;
    if (a == NULL || b == NULL || a->type != b->type || a->n != b->n)
        return 0;
    switch (a->type) {
    case MH_CFG_SCALAR:
        return a->is_null == b->is_null && strcmp(a->scalar, b->scalar) == 0;
    case MH_CFG_SEQ:
        for (size_t i = 0; i < a->n; i++)
            if (!node_equal(a->items[i], b->items[i]))
                return 0;
        return 1;
    case MH_CFG_MAP:
        for (size_t i = 0; i < a->n; i++)
            if (strcmp(a->pairs[i].key, b->pairs[i].key) != 0 ||
                !node_equal(a->pairs[i].value, b->pairs[i].value))
                return 0;
        return 1;
    }
    return 0;
}

static int str_equal(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

int mh_opts_equal(const struct mh_opts *a, const struct mh_opts *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++) {
        const struct mh_opt_value *x = &a->vals[i], *y = &b->vals[i];
        if (strcmp(x->opt->name, y->opt->name) != 0 || x->opt->type != y->opt->type)
            return 0;
        if (x->has_value != y->has_value)
            return 0;
        if (!x->has_value)
            continue;
        switch ((int)x->opt->type) {
        case MH_OPT_STR:
        case MH_OPT_ENUM:
            if (!str_equal(x->text, y->text))
                return 0;
            break;
        case MH_OPT_INT:
        case MH_OPT_BOOL:
        case MH_OPT_DURATION:
            if (x->num != y->num)
                return 0;
            break;
        case MH_OPT_SIZE:
            if (x->size != y->size)
                return 0;
            break;
        case MH_OPT_STRLIST:
            if (x->n_list != y->n_list)
                return 0;
            for (size_t k = 0; k < x->n_list; k++)
                if (strcmp(x->list[k], y->list[k]) != 0)
                    return 0;
            break;
        case (int)MH_OPT_X_MAP:
            if (!node_equal(x->node, y->node))
                return 0;
            break;
        default:
            break;
        }
    }
    return 1;
}

void mh_opts_register_secrets(const struct mh_opts *o)
{
    if (o == NULL)
        return;
    for (size_t i = 0; i < o->n; i++) {
        const struct mh_opt_value *v = &o->vals[i];
        if (!(v->opt->flags & MH_OPT_SECRET) || !v->has_value)
            continue;
        if (v->text != NULL)
            mh_log_add_secret(v->text);
        for (size_t k = 0; k < v->n_list; k++)
            mh_log_add_secret(v->list[k]);
    }
}

/* ----------------------------------------------------------- accessors */

static const struct mh_opt_value *find(const struct mh_config *cfg, const char *name)
{
    const struct mh_opts *o = (const struct mh_opts *)cfg;
    if (cfg == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->vals[i].opt->name, name) == 0)
            return o->vals[i].has_value ? &o->vals[i] : NULL;
    return NULL;
}

const char *mh_opts_str(const struct mh_config *cfg, const char *name)
{
    const struct mh_opt_value *v = find(cfg, name);
    return v ? v->text : NULL;
}

int64_t mh_opts_int(const struct mh_config *cfg, const char *name)
{
    const struct mh_opt_value *v = find(cfg, name);
    if (v == NULL)
        return 0;
    if (v->opt->type == MH_OPT_SIZE)
        return v->size > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v->size;
    return v->num;
}

int mh_opts_bool(const struct mh_config *cfg, const char *name)
{
    const struct mh_opt_value *v = find(cfg, name);
    return v != NULL && v->opt->type == MH_OPT_BOOL && v->num != 0;
}

int64_t mh_opts_duration_ms(const struct mh_config *cfg, const char *name)
{
    const struct mh_opt_value *v = find(cfg, name);
    return v != NULL && v->opt->type == MH_OPT_DURATION ? v->num : 0;
}

uint64_t mh_opts_size(const struct mh_config *cfg, const char *name)
{
    const struct mh_opt_value *v = find(cfg, name);
    return v != NULL && v->opt->type == MH_OPT_SIZE ? v->size : 0;
}

size_t mh_opts_list_len(const struct mh_config *cfg, const char *name)
{
    const struct mh_opt_value *v = find(cfg, name);
    return v ? v->n_list : 0;
}

const char *mh_opts_list_item(const struct mh_config *cfg, const char *name, size_t i)
{
    const struct mh_opt_value *v = find(cfg, name);
    return v != NULL && i < v->n_list ? v->list[i] : NULL;
}

int mh_opts_is_set(const struct mh_config *cfg, const char *name)
{
    const struct mh_opt_value *v = find(cfg, name);
    return v ? v->is_set : 0;
}

const struct mh_cfg_node *mh_opts_node(const struct mh_config *cfg, const char *name)
{
    const struct mh_opt_value *v = find(cfg, name);
    return v ? v->node : NULL;
}

/* ---------------------------------------------------------------- help */

void mh_opts_print_help(FILE *out, const struct mh_option *table)
{
    static const char *const head[4] = {"OPTION", "TYPE", "DEFAULT", "FLAGS"};
    size_t n = table_len(table), w[4];
    char(*cells)[4][96];

    if (n == 0) {
        fprintf(out, "This plugin has no options.\n");
        return;
    }
    cells = mh_xcalloc(n, sizeof *cells);
    for (int c = 0; c < 4; c++)
        w[c] = strlen(head[c]);
    for (size_t i = 0; i < n; i++) {
        const struct mh_option *o = &table[i];
        snprintf(cells[i][0], sizeof cells[i][0], "%s", o->name);
        snprintf(cells[i][1], sizeof cells[i][1], "%s", mh_opt_type_name(o->type));
        if (o->flags & MH_OPT_REQUIRED)
            snprintf(cells[i][2], sizeof cells[i][2], "(required)");
        else if (o->def == NULL)
            snprintf(cells[i][2], sizeof cells[i][2], "-");
        else if (o->flags & MH_OPT_SECRET)
            snprintf(cells[i][2], sizeof cells[i][2], "(hidden)");
        else if (*o->def == '\0')
            snprintf(cells[i][2], sizeof cells[i][2], "\"\"");
        else
            snprintf(cells[i][2], sizeof cells[i][2], "%s", o->def);
        snprintf(cells[i][3], sizeof cells[i][3], "%s%s%s", (o->flags & MH_OPT_REQUIRED) ? "required" : "",
                 (o->flags & MH_OPT_REQUIRED) && (o->flags & MH_OPT_SECRET) ? "," : "",
                 (o->flags & MH_OPT_SECRET) ? "secret" : "");
        for (int c = 0; c < 4; c++)
            if (strlen(cells[i][c]) > w[c])
                w[c] = strlen(cells[i][c]);
    }
    fprintf(out, "%-*s  %-*s  %-*s  %-*s  %s\n", (int)w[0], head[0], (int)w[1], head[1], (int)w[2], head[2],
            (int)w[3], head[3], "DESCRIPTION");
    for (size_t i = 0; i < n; i++) {
        const struct mh_option *o = &table[i];
        fprintf(out, "%-*s  %-*s  %-*s  %-*s  %s", (int)w[0], cells[i][0], (int)w[1], cells[i][1], (int)w[2],
                cells[i][2], (int)w[3], cells[i][3], o->help ? o->help : "");
        if (o->type == MH_OPT_ENUM) {
            char *c = choices_text(o->choices, ", ");
            fprintf(out, "%sone of: %s", o->help && *o->help ? "; " : "", c);
            free(c);
        } else if (has_range(o)) {
            char lo[32], hi[32];
            format_bound(o, o->min, lo, sizeof lo);
            format_bound(o, o->max, hi, sizeof hi);
            fprintf(out, "%srange %s..%s", o->help && *o->help ? "; " : "", lo, hi);
        }
        fputc('\n', out);
    }
    free(cells);
}

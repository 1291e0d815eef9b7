/*
 * Configuration: libyaml events into a tree that remembers where every node
 * and key was written, then the daemon's schema on top of mh_opts_build().
 *
 * The YAML subset is deliberately small (no anchors, aliases, tags or
 * multiple documents): an administrator should be able to read the file and
 * know exactly what the daemon sees.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include "mh_config.h"
#include "mh_options.h"
#include "mh_util.h"

#ifndef MH_PLUGINDIR
#define MH_PLUGINDIR "/usr/local/lib/mailhub/plugins"
#endif

/* Deeper than any sane configuration; also bounds the recursion below. */
#define MH_CFG_MAX_DEPTH 64
#define MH_CFG_MAX_FILE (16u * 1024u * 1024u)
#define MH_NAME_MAX 64

/* ------------------------------------------------------------- errors */

static char *xvasprintf(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        n = 0;
    char *s = malloc((size_t)n + 1);
    if (s == NULL)
        abort();
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

static char *xasprintf(const char *fmt, ...) MH_PRINTF(1, 2);
static char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = xvasprintf(fmt, ap);
    va_end(ap);
    return s;
}

void mh_cfg_errors_add(struct mh_cfg_errors *e, const char *file, int line, int col, const char *keypath,
                       const char *fmt, ...)
{
    va_list ap;
    char *msg, *full, **msgs;

    va_start(ap, fmt);
    msg = xvasprintf(fmt, ap);
    va_end(ap);
    if (file == NULL)
        file = "<config>";
    int has_path = keypath != NULL && *keypath != '\0';
    if (line > 0)
        full = xasprintf("%s:%d:%d: %s%s%s", file, line, col > 0 ? col : 1, has_path ? keypath : "",
                         has_path ? ": " : "", msg);
    else
        full = xasprintf("%s: %s%s%s", file, has_path ? keypath : "", has_path ? ": " : "", msg);
    free(msg);
    msgs = realloc(e->msgs, (e->n + 1) * sizeof *msgs);
    if (msgs == NULL)
        abort();
    e->msgs = msgs;
    e->msgs[e->n++] = full;
}

void mh_cfg_errors_clear(struct mh_cfg_errors *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->n; i++)
        free(e->msgs[i]);
    free(e->msgs);
    e->msgs = NULL;
    e->n = 0;
}

char *mh_cfg_printable(const char *s)
{
    enum { MAX_OUT = 60 };
    size_t cap = MAX_OUT * 4 + 8, n = 0;
    char *out = mh_xcalloc(1, cap);
    const unsigned char *p = (const unsigned char *)(s ? s : "");

    for (; *p; p++) {
        if (n >= MAX_OUT && (*p & 0xc0) != 0x80) {
            memcpy(out + n, "...", 4);
            return out;
        }
        if (*p == '\n')
            n += (size_t)snprintf(out + n, cap - n, "\\n");
        else if (*p == '\t')
            n += (size_t)snprintf(out + n, cap - n, "\\t");
        else if (*p < 0x20 || *p == 0x7f)
            n += (size_t)snprintf(out + n, cap - n, "\\x%02x", *p);
        else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
            /* C1 controls, which some terminals obey */
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", p[1]);
            p++;
        } else
            out[n++] = (char)*p;
    }
    out[n] = '\0';
    return out;
}

/* ---------------------------------------------------------------- tree */

struct parser {
    yaml_parser_t yp;
    const char *file;
    const char *text;
    size_t len;
    struct mh_cfg_errors *errs;
};

static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            n++;
    return n;
}

/* The byte at 0-based (line, column in characters), as libyaml counts them. */
static int char_at(const struct parser *p, size_t line, size_t col)
{
    size_t i = 0;
    for (size_t l = 0; l < line && i < p->len; i++) {
        if (p->text[i] == '\n' || (p->text[i] == '\r' && (i + 1 >= p->len || p->text[i + 1] != '\n')))
            l++;
    }
    for (size_t c = 0; i < p->len; i++) {
        if (((unsigned char)p->text[i] & 0xc0) == 0x80)
            continue;
        if (c++ == col)
            return (unsigned char)p->text[i];
    }
    return -1;
}

static void syntax_error(struct parser *p)
{
    yaml_parser_t *y = &p->yp;
    const char *problem = y->problem ? y->problem : "unknown error";

    if (y->error == YAML_MEMORY_ERROR) {
        mh_cfg_errors_add(p->errs, p->file, 0, 0, NULL, "out of memory while reading the file");
        return;
    }
    if (y->error == YAML_READER_ERROR) {
        /* the reader reports a byte offset, not a mark */
        int line = 1, col = 1;
        for (size_t i = 0; i < y->problem_offset && i < p->len; i++) {
            if (p->text[i] == '\n') {
                line++;
                col = 1;
            } else if (((unsigned char)p->text[i] & 0xc0) != 0x80) {
                col++;
            }
        }
        if (y->problem_value >= 0)
            mh_cfg_errors_add(p->errs, p->file, line, col, NULL, "cannot read the file: %s (byte 0x%02x)",
                              problem, (unsigned)y->problem_value & 0xffu);
        else
            mh_cfg_errors_add(p->errs, p->file, line, col, NULL, "cannot read the file: %s", problem);
        return;
    }
    const char *hint = "";
    if (char_at(p, y->problem_mark.line, y->problem_mark.column) == '\t')
        hint = "; YAML does not allow tabs for indentation, use spaces";
    if (y->context != NULL)
        mh_cfg_errors_add(p->errs, p->file, (int)y->problem_mark.line + 1, (int)y->problem_mark.column + 1,
                          NULL, "YAML syntax error: %s (%s started at line %d, column %d)%s", problem,
                          y->context, (int)y->context_mark.line + 1, (int)y->context_mark.column + 1, hint);
    else
        mh_cfg_errors_add(p->errs, p->file, (int)y->problem_mark.line + 1, (int)y->problem_mark.column + 1,
                          NULL, "YAML syntax error: %s%s", problem, hint);
}

/* 0, or -1 after reporting a syntax error (parsing cannot go on). */
static int next_event(struct parser *p, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&p->yp, ev)) {
        syntax_error(p);
        return -1;
    }
    return 0;
}

void mh_cfg_node_free(struct mh_cfg_node **np)
{
    struct mh_cfg_node *n;
    if (np == NULL || (n = *np) == NULL)
        return;
    for (size_t i = 0; n->type == MH_CFG_MAP && i < n->n; i++) {
        free(n->pairs[i].key);
        mh_cfg_node_free(&n->pairs[i].value);
    }
    for (size_t i = 0; n->type == MH_CFG_SEQ && i < n->n; i++)
        mh_cfg_node_free(&n->items[i]);
    free(n->pairs);
    free(n->items);
    free(n->scalar);
    free(n->env_raw);
    free(n);
    *np = NULL;
}

static char *path_key(const char *path, const char *key)
{
    char *pk = mh_cfg_printable(key);
    char *s = *path ? xasprintf("%s.%s", path, pk) : mh_xstrdup(pk);
    free(pk);
    return s;
}

static const char *node_kind(const struct mh_cfg_node *n)
{
    return n->type == MH_CFG_MAP ? "a map" : n->type == MH_CFG_SEQ ? "a list" : "a string";
}

struct buf {
    char *s;
    size_t n, cap;
};

static void buf_add(struct buf *b, const char *s, size_t len)
{
    if (b->n + len + 1 > b->cap) {
        size_t cap = (b->n + len + 1) * 2;
        char *t = realloc(b->s, cap);
        if (t == NULL)
            abort();
        b->s = t;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, len);
    b->n += len;
    b->s[b->n] = '\0';
}

/* Position of byte `off` of a scalar's value, exact when the scalar is on
 * one line and written without escapes or folding, else the scalar's start. */
static void scalar_pos(const yaml_event_t *ev, const char *v, size_t vl, size_t off, int *line, int *col)
{
    const yaml_mark_t *s = &ev->start_mark, *e = &ev->end_mark;
    size_t span = e->index - s->index, total = utf8_chars(v, vl), before = utf8_chars(v, off);
    *line = (int)s->line + 1;
    *col = (int)s->column + 1;
    if (s->line != e->line)
        return;
    if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && span == total)
        *col += (int)before;
    else if ((ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
              ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE) &&
             span == total + 2)
        *col += 1 + (int)before;
}

static int valid_env_name(const char *s, size_t len)
{
    if (len == 0 || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return 0;
    for (size_t i = 1; i < len; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '_'))
            return 0;
    return 1;
}

/*
 * ${NAME} -> the variable's value; $${ -> a literal ${.  Messages name the
 * variable, never its value: these are where passwords come from.
 */
static void substitute_env(struct parser *p, const yaml_event_t *ev, struct mh_cfg_node *n, const char *path)
{
    const char *v = (const char *)ev->data.scalar.value;
    size_t vl = ev->data.scalar.length, i = 0;
    struct buf b = {0};
    int ok = 1, used = 0, line, col;

    buf_add(&b, "", 0);
    while (i < vl) {
        if (v[i] == '$' && i + 2 < vl && v[i + 1] == '$' && v[i + 2] == '{') {
            buf_add(&b, "${", 2);
            i += 3;
            continue;
        }
        if (!(v[i] == '$' && i + 1 < vl && v[i + 1] == '{')) {
            buf_add(&b, v + i, 1);
            i++;
            continue;
        }
        const char *name = v + i + 2;
        const char *close = memchr(name, '}', vl - (i + 2));
        scalar_pos(ev, v, vl, i, &line, &col);
        if (close == NULL) {
            mh_cfg_errors_add(p->errs, p->file, line, col, path,
                              "'${' without a closing '}'; write ${NAME} for an environment variable, "
                              "or $${ for a literal ${");
            ok = 0;
            break;
        }
        size_t nl = (size_t)(close - name);
        char *nm = mh_xcalloc(1, nl + 1);
        memcpy(nm, name, nl);
        if (!valid_env_name(nm, nl)) {
            char *pn = mh_cfg_printable(nm);
            mh_cfg_errors_add(p->errs, p->file, line, col, path,
                              "'${%s}' is not a valid environment variable reference; names use letters, "
                              "digits and '_' (write $${ for a literal ${)",
                              pn);
            free(pn);
            ok = 0;
        } else {
            const char *val = getenv(nm);
            if (val == NULL) {
                mh_cfg_errors_add(p->errs, p->file, line, col, path, "environment variable '%s' is not set",
                                  nm);
                ok = 0;
            } else {
                buf_add(&b, val, strlen(val));
                used = 1;
            }
        }
        free(nm);
        i = (size_t)(close - v) + 1;
    }
    if (!ok) {
        free(b.s);
        n->scalar = mh_xstrdup("");
        n->invalid = 1;
        return;
    }
    n->scalar = b.s;
    if (used) {
        n->env_raw = mh_xcalloc(1, vl + 1);
        memcpy(n->env_raw, v, vl);
    }
}

static void scalar_node(struct parser *p, const yaml_event_t *ev, struct mh_cfg_node *n, const char *path,
                        int is_key)
{
    const char *v = (const char *)ev->data.scalar.value;
    size_t vl = ev->data.scalar.length;

    n->type = MH_CFG_SCALAR;
    n->quoted =
        ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE && ev->data.scalar.style != YAML_ANY_SCALAR_STYLE;
    n->is_null = !n->quoted && (vl == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
                                strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0);
    if (n->is_null) {
        n->scalar = mh_xstrdup("");
    } else if (memchr(v, '\0', vl) != NULL) {
        /* only reachable through a "\0" escape; C strings cannot carry it */
        mh_cfg_errors_add(p->errs, p->file, n->line, n->col, path,
                          "a NUL character (\\0) is not allowed here");
        n->scalar = mh_xstrdup("");
        n->invalid = 1;
    } else if (is_key || memchr(v, '$', vl) == NULL) {
        n->scalar = mh_xcalloc(1, vl + 1);
        memcpy(n->scalar, v, vl);
    } else {
        substitute_env(p, ev, n, path);
    }
}

static void check_anchor_tag(struct parser *p, const struct mh_cfg_node *n, const yaml_char_t *anchor,
                             const yaml_char_t *tag, const char *path)
{
    if (anchor != NULL) {
        char *a = mh_cfg_printable((const char *)anchor);
        mh_cfg_errors_add(p->errs, p->file, n->line, n->col, path,
                          "anchors (&%s) are not supported; write the value out in full", a);
        free(a);
    }
    if (tag != NULL) {
        char *t = mh_cfg_printable((const char *)tag);
        mh_cfg_errors_add(p->errs, p->file, n->line, n->col, path,
                          "YAML tags (%s) are not supported; remove the tag", t);
        free(t);
    }
}

/*
 * Build the node that starts with `ev` (consumed).  Returns NULL only when
 * parsing cannot continue (a syntax error, too deep); errors that leave the
 * structure intact are reported and parsing goes on, so that one run shows
 * them all.
 */
static struct mh_cfg_node *parse_node(struct parser *p, yaml_event_t *ev, const char *path, int depth,
                                      int is_key)
{
    struct mh_cfg_node *n = mh_xcalloc(1, sizeof *n);
    size_t cap = 0;
    yaml_event_t e;

    n->line = (int)ev->start_mark.line + 1;
    n->col = (int)ev->start_mark.column + 1;
    switch (ev->type) {
    case YAML_ALIAS_EVENT: {
        char *a = mh_cfg_printable((const char *)ev->data.alias.anchor);
        mh_cfg_errors_add(p->errs, p->file, n->line, n->col, path,
                          "aliases (*%s) are not supported; write the value out in full", a);
        free(a);
        n->type = MH_CFG_SCALAR;
        n->invalid = 1;
        n->scalar = mh_xstrdup("");
        yaml_event_delete(ev);
        return n;
    }
    case YAML_SCALAR_EVENT:
        check_anchor_tag(p, n, ev->data.scalar.anchor, ev->data.scalar.tag, path);
        scalar_node(p, ev, n, path, is_key);
        yaml_event_delete(ev);
        return n;
    case YAML_SEQUENCE_START_EVENT:
        check_anchor_tag(p, n, ev->data.sequence_start.anchor, ev->data.sequence_start.tag, path);
        n->type = MH_CFG_SEQ;
        break;
    case YAML_MAPPING_START_EVENT:
        check_anchor_tag(p, n, ev->data.mapping_start.anchor, ev->data.mapping_start.tag, path);
        n->type = MH_CFG_MAP;
        break;
    default:
        mh_cfg_errors_add(p->errs, p->file, n->line, n->col, path, "unexpected YAML structure");
        yaml_event_delete(ev);
        free(n);
        return NULL;
    }
    yaml_event_delete(ev);
    if (depth >= MH_CFG_MAX_DEPTH) {
        mh_cfg_errors_add(p->errs, p->file, n->line, n->col, path, "nesting deeper than %d levels",
                          MH_CFG_MAX_DEPTH);
        free(n);
        return NULL;
    }

    for (;;) {
        if (next_event(p, &e) < 0)
            goto fail;
        if (e.type == YAML_SEQUENCE_END_EVENT || e.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&e);
            return n;
        }
        if (n->n == cap) {
            cap = cap ? cap * 2 : 4;
            if (n->type == MH_CFG_SEQ) {
                struct mh_cfg_node **items = realloc(n->items, cap * sizeof *items);
                if (items == NULL)
                    abort();
                n->items = items;
            } else {
                struct mh_cfg_pair *pairs = realloc(n->pairs, cap * sizeof *pairs);
                if (pairs == NULL)
                    abort();
                n->pairs = pairs;
            }
        }
        if (n->type == MH_CFG_SEQ) {
            char *ipath = xasprintf("%s[%zu]", path, n->n);
            struct mh_cfg_node *item = parse_node(p, &e, ipath, depth + 1, 0);
            free(ipath);
            if (item == NULL)
                goto fail;
            n->items[n->n++] = item;
            continue;
        }

        struct mh_cfg_node *key = parse_node(p, &e, path, depth + 1, 1);
        if (key == NULL)
            goto fail;
        int keep = 1;
        char *vpath;
        if (key->type != MH_CFG_SCALAR) {
            mh_cfg_errors_add(p->errs, p->file, key->line, key->col, path,
                              "a key must be a plain string, not %s", node_kind(key));
            keep = 0;
            vpath = mh_xstrdup(path);
        } else if (key->invalid) {
            keep = 0;
            vpath = mh_xstrdup(path);
        } else {
            vpath = path_key(path, key->scalar);
            for (size_t i = 0; i < n->n; i++) {
                if (strcmp(n->pairs[i].key, key->scalar) == 0) {
                    char *pk = mh_cfg_printable(key->scalar);
                    mh_cfg_errors_add(p->errs, p->file, key->line, key->col, vpath,
                                      "duplicate key '%s' (first set at line %d, column %d)", pk,
                                      n->pairs[i].line, n->pairs[i].col);
                    free(pk);
                    keep = 0;
                    break;
                }
            }
        }
        if (next_event(p, &e) < 0) {
            free(vpath);
            mh_cfg_node_free(&key);
            goto fail;
        }
        struct mh_cfg_node *val = parse_node(p, &e, vpath, depth + 1, 0);
        free(vpath);
        if (val == NULL) {
            mh_cfg_node_free(&key);
            goto fail;
        }
        if (!keep) {
            mh_cfg_node_free(&key);
            mh_cfg_node_free(&val);
            continue;
        }
        struct mh_cfg_pair *pair = &n->pairs[n->n++];
        pair->key = key->scalar;
        pair->line = key->line;
        pair->col = key->col;
        pair->value = val;
        key->scalar = NULL;
        mh_cfg_node_free(&key);
    }

fail:
    mh_cfg_node_free(&n);
    return NULL;
}

static struct mh_cfg_node *empty_map(int line, int col)
{
    struct mh_cfg_node *n = mh_xcalloc(1, sizeof *n);
    n->type = MH_CFG_MAP;
    n->line = line;
    n->col = col;
    return n;
}

/*
 * The tree, or NULL when no usable tree could be built.  The tree may come
 * with errors that leave its shape intact (duplicate keys, unset variables,
 * anchors...): the schema still checks it, so that one run reports them all.
 */
static struct mh_cfg_node *parse_tree(const char *file, const char *text, size_t len,
                                      struct mh_cfg_errors *errs)
{
    struct parser p = {
        .file = file ? file : "<config>", .text = text ? text : "", .len = text ? len : 0, .errs = errs};
    struct mh_cfg_node *root = NULL;
    yaml_event_t ev;

    if (!yaml_parser_initialize(&p.yp)) {
        mh_cfg_errors_add(errs, p.file, 0, 0, NULL, "out of memory");
        return NULL;
    }
    yaml_parser_set_input_string(&p.yp, (const unsigned char *)p.text, p.len);

    if (next_event(&p, &ev) < 0) /* stream start */
        goto done;
    yaml_event_delete(&ev);
    if (next_event(&p, &ev) < 0)
        goto done;
    if (ev.type == YAML_STREAM_END_EVENT) {
        /* nothing but comments: every section takes its defaults */
        yaml_event_delete(&ev);
        root = empty_map(1, 1);
        goto done;
    }
    yaml_event_delete(&ev); /* document start */
    if (next_event(&p, &ev) < 0)
        goto done;
    root = parse_node(&p, &ev, "", 0, 0);
    if (root == NULL)
        goto done;
    if (next_event(&p, &ev) < 0) /* document end */
        goto done;
    yaml_event_delete(&ev);
    if (next_event(&p, &ev) < 0)
        goto done;
    if (ev.type == YAML_DOCUMENT_START_EVENT)
        mh_cfg_errors_add(errs, p.file, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1, NULL,
                          "a second YAML document starts here; the configuration must be a single document");
    yaml_event_delete(&ev);

done:
    yaml_parser_delete(&p.yp);
    if (root != NULL && root->type == MH_CFG_SCALAR && root->is_null) {
        int line = root->line, col = root->col;
        mh_cfg_node_free(&root);
        root = empty_map(line, col);
    }
    if (root != NULL && root->type != MH_CFG_MAP) {
        mh_cfg_errors_add(
            errs, p.file, root->line, root->col, NULL,
            "the configuration must be a map of sections such as 'daemon:' and 'store:', not %s",
            node_kind(root));
        mh_cfg_node_free(&root);
    }
    return root;
}

struct mh_cfg_node *mh_cfg_parse(const char *file, const char *text, size_t len, struct mh_cfg_errors *errs)
{
    size_t n_errs = errs->n;
    struct mh_cfg_node *root = parse_tree(file, text, len, errs);
    if (errs->n > n_errs)
        mh_cfg_node_free(&root);
    return root;
}

/* The whole file, NUL-terminated; NULL with an error added. */
static char *read_file(const char *path, size_t *len_out, struct mh_cfg_errors *errs)
{
    FILE *f = fopen(path, "rb");
    struct buf b = {0};
    char chunk[65536];
    size_t n;

    if (f == NULL) {
        mh_cfg_errors_add(errs, path, 0, 0, NULL, "cannot open the configuration file: %s", strerror(errno));
        return NULL;
    }
    buf_add(&b, "", 0);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.n + n > MH_CFG_MAX_FILE) {
            mh_cfg_errors_add(errs, path, 0, 0, NULL, "the configuration file is larger than %u MB",
                              MH_CFG_MAX_FILE >> 20);
            fclose(f);
            free(b.s);
            return NULL;
        }
        buf_add(&b, chunk, n);
    }
    if (ferror(f)) {
        mh_cfg_errors_add(errs, path, 0, 0, NULL, "cannot read the configuration file: %s", strerror(errno));
        fclose(f);
        free(b.s);
        return NULL;
    }
    fclose(f);
    *len_out = b.n;
    return b.s;
}

struct mh_cfg_node *mh_cfg_parse_file(const char *path, struct mh_cfg_errors *errs)
{
    size_t len;
    char *text = read_file(path, &len, errs);
    if (text == NULL)
        return NULL;
    struct mh_cfg_node *root = mh_cfg_parse(path, text, len, errs);
    free(text);
    return root;
}

const struct mh_cfg_pair *mh_cfg_get_pair(const struct mh_cfg_node *map, const char *key)
{
    if (map == NULL || map->type != MH_CFG_MAP || key == NULL)
        return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->pairs[i].key, key) == 0)
            return &map->pairs[i];
    return NULL;
}

const struct mh_cfg_node *mh_cfg_get(const struct mh_cfg_node *map, const char *key)
{
    const struct mh_cfg_pair *p = mh_cfg_get_pair(map, key);
    return p ? p->value : NULL;
}

/* ------------------------------------------------------ daemon schema */

static const struct mh_option top_opts[] = {
    {"daemon", MH_OPT_X_MAP, NULL, 0, "daemon settings", NULL, 0, 0},
    {"listeners", MH_OPT_X_MAP, NULL, 0, "HTTP listeners", NULL, 0, 0},
    {"plugins", MH_OPT_X_MAP, NULL, 0, "where plugins are found", NULL, 0, 0},
    {"store", MH_OPT_X_MAP, NULL, 0, "the message store", NULL, 0, 0},
    {"providers", MH_OPT_X_MAP, NULL, 0, "mailboxes to fetch from", NULL, 0, 0},
    {"notifiers", MH_OPT_X_MAP, NULL, 0, "where events are delivered", NULL, 0, 0},
    MH_OPT_TABLE_END,
};

static const struct mh_option daemon_opts[] = {
    {"data_dir", MH_OPT_STR, "./data", 0, "state directory", NULL, 0, 0},
    {"log_level", MH_OPT_ENUM, "info", 0, "minimum level logged", "error|warn|info|debug", 0, 0},
    {"log_target", MH_OPT_ENUM, "stderr", 0, "where logs go", "stderr|syslog", 0, 0},
    {"workers", MH_OPT_INT, "2", 0, "worker threads", NULL, 1, 64},
    {"shutdown_timeout", MH_OPT_DURATION, "10s", 0, "how long plugins get to stop", NULL, 0, 0},
    {"pid_file", MH_OPT_STR, NULL, 0, "PID file", NULL, 0, 0},
    {"tls_ca_file", MH_OPT_STR, NULL, 0, "extra CA bundle", NULL, 0, 0},
    {"registration", MH_OPT_ENUM, "closed", 0, "who may register: closed (an admin adds users) or open",
     "closed|open", 0, 0},
    {"max_upload", MH_OPT_SIZE, "10GB", 0, "largest mbox a user may upload through the API (0: no limit)", NULL, 0,
     0},
    {"public_url", MH_OPT_STR, NULL, 0,
     "the hub's API as the outside sees it (http(s)://host[:port]), for delivery reports (Kannel dlr-url)",
     NULL, 0, 0},
    {"notify_attempts", MH_OPT_INT, "10", 0,
     "deliveries tried per notification before it is dead-lettered (transient failures only)", NULL, 1, 100},
    {"notify_retry", MH_OPT_DURATION, "1s", 0,
     "first retry delay of a notification; doubled each time (with jitter), up to notify_retry_max", NULL, 10,
     3600000},
    {"notify_retry_max", MH_OPT_DURATION, "10m", 0, "longest delay between two deliveries of a notification", NULL,
     10, 86400000},
    {"notify_keep", MH_OPT_DURATION, "7d", 0, "how long delivered notifications stay listed in the outbox", NULL,
     0, 365 * 86400000LL},
    MH_OPT_TABLE_END,
};

static const struct mh_option listener_opts[] = {
    {"address", MH_OPT_STR, "127.0.0.1", 0, "address to bind", NULL, 0, 0},
    {"port", MH_OPT_INT, NULL, MH_OPT_REQUIRED, "TCP port", NULL, 1, 65535},
    MH_OPT_TABLE_END,
};

static const struct mh_option plugins_opts[] = {
    {"path", MH_OPT_STRLIST, MH_PLUGINDIR, 0, "plugin directories", NULL, 0, 0},
    MH_OPT_TABLE_END,
};

static const struct mh_option store_opts[] = {
    {"plugin", MH_OPT_STR, NULL, MH_OPT_REQUIRED, "store plugin", NULL, 0, 0},
    {"options", MH_OPT_X_MAP, NULL, 0, "the plugin's options", NULL, 0, 0},
    {"quota", MH_OPT_X_MAP, NULL, 0, "per-user allocation", NULL, 0, 0},
    MH_OPT_TABLE_END,
};

static const struct mh_option quota_opts[] = {
    {"initial", MH_OPT_SIZE, "30MB", 0, "first allocation", NULL, 0, 0},
    {"extend_when_free_below", MH_OPT_SIZE, "2MB", 0, "extend when less is free", NULL, 0, 0},
    {"extend_by", MH_OPT_SIZE, "30MB", 0, "extension step", NULL, 0, 0},
    {"max", MH_OPT_SIZE, "0", 0, "maximum allocation (0: none)", NULL, 0, 0},
    MH_OPT_TABLE_END,
};

static const struct mh_option provider_opts[] = {
    {"plugin", MH_OPT_STR, NULL, MH_OPT_REQUIRED, "provider plugin", NULL, 0, 0},
    {"user", MH_OPT_STR, NULL, 0, "hub user owning the mailbox", NULL, 0, 0},
    {"options", MH_OPT_X_MAP, NULL, 0, "the plugin's options", NULL, 0, 0},
    MH_OPT_TABLE_END,
};

static const struct mh_option notifier_opts[] = {
    {"plugin", MH_OPT_STR, NULL, MH_OPT_REQUIRED, "notifier plugin", NULL, 0, 0},
    {"events", MH_OPT_STRLIST, NULL, 0, "event patterns", NULL, 0, 0},
    {"options", MH_OPT_X_MAP, NULL, 0, "the plugin's options", NULL, 0, 0},
    MH_OPT_TABLE_END,
};

struct loader {
    struct mh_daemon_config *c;
    const char *file; /* as given, for messages */
    char *base;       /* the file's directory, absolute */
    struct mh_cfg_errors *errs;
};

/* Absolute; "./x" and "x" alike resolve against `base`. */
static char *resolve(const char *base, const char *path)
{
    while (path[0] == '.' && path[1] == '/') {
        path += 2;
        while (*path == '/')
            path++;
    }
    if (*path == '\0' || strcmp(path, ".") == 0)
        return mh_xstrdup(base);
    char *r = mh_path_resolve(base, path);
    if (r == NULL)
        abort();
    return r;
}

static char *absolute(const char *path)
{
    char cwd[PATH_MAX];
    if (path[0] == '/' || getcwd(cwd, sizeof cwd) == NULL)
        return mh_xstrdup(path);
    return resolve(cwd, path);
}

/* A path option: resolved, or NULL (unset, or empty: reported). */
static char *path_opt(struct loader *ld, const struct mh_config *cfg, const struct mh_cfg_node *sec,
                      const char *section, const char *name)
{
    const char *v = mh_opts_str(cfg, name);
    if (v == NULL)
        return NULL;
    if (*v == '\0') {
        const struct mh_cfg_node *n = mh_cfg_get(sec, name);
        char *kp = xasprintf("%s.%s", section, name);
        mh_cfg_errors_add(ld->errs, ld->file, n ? n->line : 0, n ? n->col : 0, kp,
                          "expected a path, got an empty string");
        free(kp);
        return NULL;
    }
    return resolve(ld->base, v);
}

/*
 * `value` quoted for a message, or, when `n` got it from ${VAR}, the
 * reference instead: environment values are often secrets.  Malloc'ed.
 */
static char *quoted_value(const struct mh_cfg_node *n, const char *value)
{
    const char *raw = n != NULL && n->env_raw != NULL ? n->env_raw : NULL;
    char *p = mh_cfg_printable(raw ? raw : value);
    char *s = raw ? xasprintf("(the value of '%s', not shown)", p) : xasprintf("'%s'", p);
    free(p);
    return s;
}

static int is_name_char(int ch, int first)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || (!first && (ch == '_' || ch == '-'));
}

/* Instance and listener names end up in logs, URLs and the store. */
static int check_name(struct loader *ld, const struct mh_cfg_pair *p, const char *section, const char *what)
{
    const char *s = p->key;
    size_t len = strlen(s);
    int ok = len > 0 && len <= MH_NAME_MAX;
    for (size_t i = 0; ok && i < len; i++)
        ok = is_name_char((unsigned char)s[i], i == 0);
    if (!ok) {
        char *pk = mh_cfg_printable(s);
        mh_cfg_errors_add(ld->errs, ld->file, p->line, p->col, section,
                          "invalid %s name '%s'; use lowercase letters, digits, '_' and '-', starting with a "
                          "letter or digit (at most %d characters)",
                          what, pk, MH_NAME_MAX);
        free(pk);
    }
    return ok;
}

/* Plugin names become module file names: nothing that could walk a path. */
static int check_plugin_name(struct loader *ld, const char *name, const struct mh_cfg_node *at,
                             const char *keypath)
{
    size_t len = strlen(name);
    int ok = len > 0 && len <= MH_NAME_MAX;
    for (size_t i = 0; ok && i < len; i++)
        ok = is_name_char((unsigned char)name[i], 0);
    if (!ok) {
        char *pn = quoted_value(at, name);
        mh_cfg_errors_add(ld->errs, ld->file, at ? at->line : 0, at ? at->col : 0, keypath,
                          "invalid plugin name %s; plugin names use lowercase letters, digits, '_' and '-'",
                          pn);
        free(pn);
    }
    return ok;
}

/* The section's node if it is a map, NULL if absent, null, or of the wrong
 * shape (the top-level check has reported that). */
static const struct mh_cfg_node *section(const struct mh_cfg_node *root, const char *name, int *present_out)
{
    const struct mh_cfg_node *n = mh_cfg_get(root, name);
    *present_out = n != NULL && !(n->type == MH_CFG_SCALAR && n->is_null);
    return n != NULL && n->type == MH_CFG_MAP ? n : NULL;
}

static void load_daemon(struct loader *ld, const struct mh_cfg_node *root)
{
    struct mh_daemon_config *c = ld->c;
    struct mh_opts *o;
    int present;
    const struct mh_cfg_node *sec = section(root, "daemon", &present);

    if (present && sec == NULL)
        return;
    if (mh_opts_build(daemon_opts, sec, ld->file, "daemon", NULL, &o, ld->errs) < 0)
        return;
    const struct mh_config *cfg = mh_opts_config(o);
    c->data_dir = path_opt(ld, cfg, sec, "daemon", "data_dir");
    c->log_level = (int)mh_opts_int(cfg, "log_level"); /* choices are in MH_LOG_* order */
    c->log_syslog = mh_opts_int(cfg, "log_target") == 1;
    c->workers = (unsigned)mh_opts_int(cfg, "workers");
    c->shutdown_timeout_ms = mh_opts_duration_ms(cfg, "shutdown_timeout");
    c->pid_file = path_opt(ld, cfg, sec, "daemon", "pid_file");
    c->ca_file = path_opt(ld, cfg, sec, "daemon", "tls_ca_file");
    c->registration_open = mh_opts_int(cfg, "registration") == 1;
    c->max_upload = mh_opts_size(cfg, "max_upload");
    const char *pu = mh_opts_str(cfg, "public_url");
    if (pu != NULL) {
        size_t n = strlen(pu);
        if ((strncmp(pu, "http://", 7) != 0 && strncmp(pu, "https://", 8) != 0) || n < 9 || n > 512 ||
            strpbrk(pu, " ?#\"'<>") != NULL) {
            const struct mh_cfg_node *nd = mh_cfg_get(sec, "public_url");
            mh_cfg_errors_add(ld->errs, ld->file, nd ? nd->line : 0, nd ? nd->col : 0, "daemon.public_url",
                              "expected an http:// or https:// URL without a query or fragment");
        } else {
            c->public_url = mh_xstrdup(pu);
            if (c->public_url[n - 1] == '/')
                c->public_url[n - 1] = '\0';
        }
    }
    c->notify_attempts = (int)mh_opts_int(cfg, "notify_attempts");
    c->notify_retry_ms = mh_opts_duration_ms(cfg, "notify_retry");
    c->notify_retry_max_ms = mh_opts_duration_ms(cfg, "notify_retry_max");
    c->notify_keep_ms = mh_opts_duration_ms(cfg, "notify_keep");
    mh_opts_free(&o);
}

static void load_listeners(struct loader *ld, const struct mh_cfg_node *root)
{
    struct mh_daemon_config *c = ld->c;
    int present;
    const struct mh_cfg_node *sec = section(root, "listeners", &present);

    if (sec == NULL)
        return;
    c->listeners = mh_xcalloc(sec->n + 1, sizeof *c->listeners);
    for (size_t i = 0; i < sec->n; i++) {
        const struct mh_cfg_pair *p = &sec->pairs[i];
        struct mh_opts *o;
        int name_ok = check_name(ld, p, "listeners", "listener");
        char *kp = path_key("listeners", p->key);
        int rc = mh_opts_build_at(listener_opts, p->value, ld->file, kp, p->line, p->col, NULL, &o, ld->errs);
        if (rc == 0 && name_ok) {
            const struct mh_config *cfg = mh_opts_config(o);
            const char *addr = mh_opts_str(cfg, "address");
            int port = (int)mh_opts_int(cfg, "port");
            for (size_t k = 0; k < c->n_listeners; k++) {
                if (c->listeners[k].port == port && strcmp(c->listeners[k].address, addr) == 0) {
                    const struct mh_cfg_node *pn = mh_cfg_get(p->value, "port");
                    char *pa = quoted_value(mh_cfg_get(p->value, "address"), addr);
                    mh_cfg_errors_add(ld->errs, ld->file, pn ? pn->line : p->line, pn ? pn->col : p->col, kp,
                                      "address %s, port %d is already used by listener '%s'", pa, port,
                                      c->listeners[k].name);
                    free(pa);
                    break;
                }
            }
            struct mh_listener_cfg *l = &c->listeners[c->n_listeners++];
            l->name = mh_xstrdup(p->key);
            l->address = mh_xstrdup(addr);
            l->port = port;
        }
        mh_opts_free(&o);
        free(kp);
    }
}

static void load_plugins(struct loader *ld, const struct mh_cfg_node *root)
{
    struct mh_daemon_config *c = ld->c;
    struct mh_opts *o;
    int present;
    const struct mh_cfg_node *sec = section(root, "plugins", &present);

    if (present && sec == NULL)
        return;
    if (mh_opts_build(plugins_opts, sec, ld->file, "plugins", NULL, &o, ld->errs) < 0)
        return;
    const struct mh_config *cfg = mh_opts_config(o);
    size_t n = mh_opts_list_len(cfg, "path");
    const struct mh_cfg_node *pn = mh_cfg_get(sec, "path");
    c->plugin_path = mh_xcalloc(n + 1, sizeof *c->plugin_path);
    for (size_t i = 0; i < n; i++) {
        const char *dir = mh_opts_list_item(cfg, "path", i);
        if (*dir == '\0') {
            const struct mh_cfg_node *at = pn && pn->type == MH_CFG_SEQ && i < pn->n ? pn->items[i] : pn;
            char *kp = xasprintf("plugins.path[%zu]", i);
            mh_cfg_errors_add(ld->errs, ld->file, at ? at->line : 0, at ? at->col : 0, kp,
                              "expected a directory, got an empty string");
            free(kp);
            continue;
        }
        c->plugin_path[c->n_plugin_path++] = resolve(ld->base, dir);
    }
    mh_opts_free(&o);
}

/* Reports a quota rule on the key the user wrote, falling back to the other one. */
static void quota_error(struct loader *ld, const struct mh_cfg_node *q, const char *key, const char *other,
                        const char *fmt_key, const char *fmt_other, uint64_t key_v, uint64_t other_v)
{
    char a[32], b[32];
    const struct mh_cfg_pair *p = mh_cfg_get_pair(q, key);
    const char *blame = key, *fmt = fmt_key;
    if (p == NULL && (p = mh_cfg_get_pair(q, other)) != NULL) {
        blame = other;
        fmt = fmt_other;
        uint64_t t = key_v;
        key_v = other_v;
        other_v = t;
    }
    mh_format_size(other_v, a, sizeof a);
    mh_format_size(key_v, b, sizeof b);
    char *kp = xasprintf("store.quota.%s", blame);
    char *msg = xasprintf(fmt, a);
    mh_cfg_errors_add(ld->errs, ld->file,
                      p   ? p->value->line
                      : q ? q->line
                          : 0,
                      p   ? p->value->col
                      : q ? q->col
                          : 0,
                      kp, "%s, got %s", msg, b);
    free(msg);
    free(kp);
}

static void load_quota(struct loader *ld, const struct mh_cfg_node *q, const struct mh_cfg_pair *qp)
{
    struct mh_quota_cfg *quota = &ld->c->quota;
    struct mh_opts *o;

    if (mh_opts_build_at(quota_opts, q, ld->file, "store.quota", qp ? qp->line : 0, qp ? qp->col : 0, NULL,
                         &o, ld->errs) < 0)
        return;
    const struct mh_config *cfg = mh_opts_config(o);
    quota->initial = mh_opts_size(cfg, "initial");
    quota->extend_when_free_below = mh_opts_size(cfg, "extend_when_free_below");
    quota->extend_by = mh_opts_size(cfg, "extend_by");
    quota->max = mh_opts_size(cfg, "max");
    mh_opts_free(&o);

    if (quota->extend_by == 0) {
        const struct mh_cfg_node *n = mh_cfg_get(q, "extend_by");
        mh_cfg_errors_add(ld->errs, ld->file, n ? n->line : 0, n ? n->col : 0, "store.quota.extend_by",
                          "must be greater than 0");
    }
    if (quota->extend_when_free_below >= quota->initial)
        quota_error(ld, q, "extend_when_free_below", "initial", "must be less than initial (%s)",
                    "must be greater than extend_when_free_below (%s)", quota->extend_when_free_below,
                    quota->initial);
    if (quota->max != 0 && quota->max < quota->initial)
        quota_error(ld, q, "max", "initial", "must be 0 (no maximum) or at least initial (%s)",
                    "must not be greater than max (%s)", quota->max, quota->initial);
}

static void instance_free(struct mh_instance_cfg *in)
{
    free(in->name);
    free(in->plugin);
    free(in->user);
    for (size_t i = 0; in->events != NULL && in->events[i] != NULL; i++)
        free(in->events[i]);
    free(in->events);
    memset(in, 0, sizeof *in);
}

/* Fills the fields common to every instance; 0 or -1. */
static int fill_instance(struct loader *ld, struct mh_instance_cfg *in, const struct mh_config *cfg,
                         const struct mh_cfg_node *map, const char *name, const char *kp, int line, int col)
{
    const char *plugin = mh_opts_str(cfg, "plugin");
    char *pkp = xasprintf("%s.plugin", kp);
    int ok = check_plugin_name(ld, plugin, mh_cfg_get(map, "plugin"), pkp);
    free(pkp);
    if (!ok)
        return -1;
    const struct mh_cfg_pair *op = mh_cfg_get_pair(map, "options");
    in->name = mh_xstrdup(name);
    in->plugin = mh_xstrdup(plugin);
    in->options = mh_opts_node(cfg, "options");
    in->line = line;
    in->col = col;
    in->options_line = op ? op->line : line;
    in->options_col = op ? op->col : col;
    return 0;
}

static void load_store(struct loader *ld, const struct mh_cfg_node *root)
{
    struct mh_daemon_config *c = ld->c;
    const struct mh_cfg_pair *sp = mh_cfg_get_pair(root, "store");
    int present;
    const struct mh_cfg_node *sec = section(root, "store", &present);
    struct mh_opts *o;

    c->store.kind = MH_KIND_STORE;
    if (!present) {
        c->store.name = mh_xstrdup("store");
        c->store.plugin = mh_xstrdup("sqlite");
        load_quota(ld, NULL, NULL);
        return;
    }
    if (sec == NULL)
        return;
    if (mh_opts_build_at(store_opts, sec, ld->file, "store", sp->line, sp->col, NULL, &o, ld->errs) == 0) {
        if (fill_instance(ld, &c->store, mh_opts_config(o), sec, "store", "store", sp->line, sp->col) < 0)
            instance_free(&c->store);
        c->store.kind = MH_KIND_STORE;
        mh_opts_free(&o);
    }
    /* checked even when the rest of the store failed, to report everything at once */
    const struct mh_cfg_pair *qp = mh_cfg_get_pair(sec, "quota");
    const struct mh_cfg_node *q = qp ? qp->value : NULL;
    if (q != NULL && q->type == MH_CFG_SCALAR && q->is_null)
        q = NULL;
    if (q == NULL || q->type == MH_CFG_MAP)
        load_quota(ld, q, qp);
}

static int valid_pattern(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '.' || *s == '*' || *s == '_' ||
              *s == '-'))
            return 0;
    return 1;
}

static int load_events(struct loader *ld, struct mh_instance_cfg *in, const struct mh_config *cfg,
                       const struct mh_cfg_node *map, const char *kp)
{
    const struct mh_cfg_pair *ep = mh_cfg_get_pair(map, "events");
    size_t n = mh_opts_list_len(cfg, "events");
    int ok = 1;

    if (!mh_opts_is_set(cfg, "events"))
        return 0;
    if (n == 0) {
        char *ekp = xasprintf("%s.events", kp);
        mh_cfg_errors_add(ld->errs, ld->file, ep->value->line, ep->value->col, ekp,
                          "the list is empty, so nothing would be delivered; remove 'events' to receive "
                          "every event");
        free(ekp);
        return -1;
    }
    in->events = mh_xcalloc(n + 1, sizeof *in->events);
    for (size_t i = 0, k = 0; i < n; i++) {
        const char *pat = mh_opts_list_item(cfg, "events", i);
        if (!valid_pattern(pat)) {
            const struct mh_cfg_node *at = ep->value->type == MH_CFG_SEQ ? ep->value->items[i] : ep->value;
            char *ikp = ep->value->type == MH_CFG_SEQ ? xasprintf("%s.events[%zu]", kp, i)
                                                      : xasprintf("%s.events", kp);
            char *pp = quoted_value(at, pat);
            mh_cfg_errors_add(ld->errs, ld->file, at->line, at->col, ikp,
                              "invalid event pattern %s; expected an event type such as 'mail.received', "
                              "or a pattern such as 'mail.*' or '*'",
                              pp);
            free(pp);
            free(ikp);
            ok = 0;
            continue;
        }
        in->events[k++] = mh_xstrdup(pat);
    }
    return ok ? 0 : -1;
}

static void load_instances(struct loader *ld, const struct mh_cfg_node *root, const char *name,
                           enum mh_plugin_kind kind, struct mh_instance_cfg **out, size_t *n_out)
{
    int present;
    const struct mh_cfg_node *sec = section(root, name, &present);
    const struct mh_option *table = kind == MH_KIND_PROVIDER ? provider_opts : notifier_opts;

    if (sec == NULL)
        return;
    *out = mh_xcalloc(sec->n + 1, sizeof **out);
    for (size_t i = 0; i < sec->n; i++) {
        const struct mh_cfg_pair *p = &sec->pairs[i];
        struct mh_opts *o;
        int ok = check_name(ld, p, name, "instance");
        char *kp = path_key(name, p->key);
        if (mh_opts_build_at(table, p->value, ld->file, kp, p->line, p->col, NULL, &o, ld->errs) == 0) {
            const struct mh_config *cfg = mh_opts_config(o);
            struct mh_instance_cfg *in = &(*out)[*n_out];
            if (fill_instance(ld, in, cfg, p->value, p->key, kp, p->line, p->col) < 0)
                ok = 0;
            in->kind = kind;
            if (kind == MH_KIND_PROVIDER && mh_opts_str(cfg, "user") != NULL)
                in->user = mh_xstrdup(mh_opts_str(cfg, "user"));
            if (kind == MH_KIND_NOTIFIER && load_events(ld, in, cfg, p->value, kp) < 0)
                ok = 0;
            if (ok)
                (*n_out)++;
            else
                instance_free(in);
            mh_opts_free(&o);
        }
        free(kp);
    }
}

/* Line and column of a message "FILE:LINE:COL: ..."; 0 when it has none. */
static long msg_pos(const char *msg, size_t prefix_len)
{
    char *end;
    if (strncmp(msg + prefix_len, ":", 1) != 0)
        return 0;
    long line = strtol(msg + prefix_len + 1, &end, 10);
    if (*end != ':')
        return 0;
    long col = strtol(end + 1, &end, 10);
    if (*end != ':')
        return 0;
    return line * 100000 + (col < 100000 ? col : 99999);
}

/* Parser and schema errors come out in two passes; show them in file order. */
static void sort_errors(struct mh_cfg_errors *errs, size_t from, const char *file)
{
    size_t pl = strlen(file);
    for (size_t i = from + 1; i < errs->n; i++) {
        char *m = errs->msgs[i];
        long pos = msg_pos(m, pl);
        size_t j = i;
        while (j > from && msg_pos(errs->msgs[j - 1], pl) > pos) {
            errs->msgs[j] = errs->msgs[j - 1];
            j--;
        }
        errs->msgs[j] = m;
    }
}

struct mh_daemon_config *mh_config_load_string(const char *file, const char *text, size_t len,
                                               struct mh_cfg_errors *errs)
{
    const char *fname = file ? file : "<config>";
    size_t n_errs = errs->n;
    struct mh_cfg_node *root = parse_tree(fname, text, len, errs);
    struct mh_opts *top = NULL;

    if (root == NULL)
        return NULL;
    struct mh_daemon_config *c = mh_xcalloc(1, sizeof *c);
    c->root = root;
    c->file = absolute(fname);
    c->log_level = MH_LOG_INFO;
    c->workers = 2;
    c->shutdown_timeout_ms = 10000;
    c->max_upload = (uint64_t)10 << 30;
    c->notify_attempts = 10;
    c->notify_retry_ms = 1000;
    c->notify_retry_max_ms = 600000;
    c->notify_keep_ms = 7 * 86400000LL;
    struct loader ld = {.c = c, .file = fname, .base = mh_dirname(c->file), .errs = errs};
    if (ld.base == NULL)
        abort();

    /* unknown sections and sections of the wrong shape; then each section on its own */
    mh_opts_build(top_opts, root, fname, "", NULL, &top, errs);
    mh_opts_free(&top);
    load_daemon(&ld, root);
    load_listeners(&ld, root);
    load_plugins(&ld, root);
    load_store(&ld, root);
    load_instances(&ld, root, "providers", MH_KIND_PROVIDER, &c->providers, &c->n_providers);
    load_instances(&ld, root, "notifiers", MH_KIND_NOTIFIER, &c->notifiers, &c->n_notifiers);
    free(ld.base);

    if (errs->n > n_errs) {
        sort_errors(errs, n_errs, fname);
        mh_config_free(&c);
    }
    return c;
}

struct mh_daemon_config *mh_config_load(const char *path, struct mh_cfg_errors *errs)
{
    size_t len;
    char *text = read_file(path, &len, errs);
    if (text == NULL)
        return NULL;
    struct mh_daemon_config *c = mh_config_load_string(path, text, len, errs);
    free(text);
    return c;
}

void mh_config_free(struct mh_daemon_config **cp)
{
    struct mh_daemon_config *c;
    if (cp == NULL || (c = *cp) == NULL)
        return;
    free(c->file);
    free(c->data_dir);
    free(c->pid_file);
    free(c->ca_file);
    free(c->public_url);
    for (size_t i = 0; i < c->n_listeners; i++) {
        free(c->listeners[i].name);
        free(c->listeners[i].address);
    }
    free(c->listeners);
    for (size_t i = 0; i < c->n_plugin_path; i++)
        free(c->plugin_path[i]);
    free(c->plugin_path);
    instance_free(&c->store);
    for (size_t i = 0; i < c->n_providers; i++)
        instance_free(&c->providers[i]);
    free(c->providers);
    for (size_t i = 0; i < c->n_notifiers; i++)
        instance_free(&c->notifiers[i]);
    free(c->notifiers);
    mh_cfg_node_free(&c->root);
    free(c);
    *cp = NULL;
}

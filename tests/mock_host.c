/* The mock host table for plugin unit tests: see mock_host.h. */
#define _GNU_SOURCE /* nftw, mkdtemp, vasprintf */
#include "mock_host.h"

#include <errno.h>
#include <stdint.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#define MOCK_START_TIME 1767225600.0 /* 2026-01-01T00:00:00Z */

struct mock_ctx {
    struct mh_plugin_ctx pub; /* first: the plugin's ctx pointer is this */
    struct mock_host *mh;
};

struct mock_cfg_val {
    const struct mh_option *opt;
    char *text; /* NULL: not set and no default */
    int is_set;
    int64_t i;  /* INT, BOOL, DURATION (ms) */
    uint64_t u; /* SIZE */
    char **items;
    size_t n_items;
};

struct mock_cfg {
    struct mh_config pub; /* first */
    struct mock_cfg_val *vals;
    size_t n;
    struct mock_cfg *next;
};

struct mh_timer {
    struct mock_host *mh;
    double due, repeat;
    int active;  /* armed */
    int deleted; /* deleted from inside its own callback */
    unsigned long seq;
    mh_timer_cb cb;
    void *arg;
    struct mh_timer *next;
};

struct mh_io {
    struct mock_host *mh;
    int fd, events;
    struct mh_io *next;
};

struct mock_put {
    struct mh_message msg; /* strings owned */
    mh_store_cb cb;
    void *arg;
    size_t nth;
    struct mock_put *next;
};

struct mock_work {
    mh_work_fn fn;
    mh_work_done_cb done;
    void *arg;
    struct mock_work *next;
};

struct mock_job {
    struct mh_job pub; /* first */
    int done, rc;
    char *detail;
    struct mock_job *next;
};

struct mock_fail {
    size_t nth;
    int rc;
};

struct mock_log {
    int level;
    char *text;
};

struct mock_host {
    struct mh_host host;
    struct mock_ctx ctx;
    char *instance, *plugin, *user;
    char data_dir[64];

    struct mock_cfg *cfgs;
    char *cfg_error;
    char **secrets;
    size_t n_secrets;

    int log_level;
    struct mock_log *logs;
    size_t n_logs;
    char *error;

    struct mock_event *events;
    size_t n_events;

    double now;
    struct mh_timer *timers;
    unsigned long timer_seq;
    struct mh_io *ios;

    struct mock_put *puts, **puts_tail;
    size_t n_pending, n_puts;
    struct mock_fail *fails;
    size_t n_fails;
    struct mock_message *msgs;
    size_t n_msgs;
    int64_t next_id;

    struct mock_work *work, **work_tail;
    struct mock_job *jobs;
    int stopped;
};

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        abort();
    return p;
}

static char *xstrdup(const char *s)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        abort();
    return d;
}

static void *xrealloc(void *p, size_t size)
{
    p = realloc(p, size ? size : 1);
    if (p == NULL)
        abort();
    return p;
}

static struct mock_host *ctx_host(struct mh_plugin_ctx *ctx)
{
    return ((struct mock_ctx *)ctx)->mh;
}

/* ----------------------------------------------------------- logging */

static char *redact(const struct mock_host *mh, const char *text)
{
    char *out = xstrdup(text);
    for (size_t s = 0; s < mh->n_secrets; s++) {
        const char *sec = mh->secrets[s];
        size_t sl = strlen(sec);
        char *hit;
        while ((hit = strstr(out, sec)) != NULL) {
            size_t pre = (size_t)(hit - out), rest = strlen(hit + sl);
            char *n = xcalloc(pre + 3 + rest + 1, 1);
            memcpy(n, out, pre);
            memcpy(n + pre, "***", 3);
            memcpy(n + pre + 3, hit + sl, rest);
            free(out);
            out = n;
        }
    }
    return out;
}

static void m_logv(struct mh_plugin_ctx *ctx, int level, const char *fmt, va_list ap)
{
    struct mock_host *mh = ctx_host(ctx);
    if (level > mh->log_level)
        return;
    char *raw = NULL;
    if (vasprintf(&raw, fmt, ap) < 0)
        abort();
    char *text = redact(mh, raw);
    free(raw);
    const char *v = getenv("MOCK_HOST_VERBOSE");
    if (v != NULL && *v != '\0' && strcmp(v, "0") != 0)
        fprintf(stderr, "mock %d [%s] %s\n", level, mh->instance, text);
    mh->logs = xrealloc(mh->logs, (mh->n_logs + 1) * sizeof *mh->logs);
    mh->logs[mh->n_logs].level = level;
    mh->logs[mh->n_logs].text = text;
    mh->n_logs++;
}

static int m_log_enabled(struct mh_plugin_ctx *ctx, int level)
{
    return level <= ctx_host(ctx)->log_level;
}

static void m_set_error(struct mh_plugin_ctx *ctx, const char *fmt, va_list ap)
{
    struct mock_host *mh = ctx_host(ctx);
    char *raw = NULL;
    if (vasprintf(&raw, fmt, ap) < 0)
        abort();
    free(mh->error);
    mh->error = redact(mh, raw);
    free(raw);
}

/* ------------------------------------------------------------ config */

static int parse_i64(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, int64_t *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return *out = 1, 0;
        if (strcasecmp(s, no[i]) == 0)
            return *out = 0, 0;
    }
    return -1;
}

/* "250ms", "5s", "2m", "1h", "1d"; a bare number is seconds. */
static int parse_duration(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || v < 0)
        return -1;
    double mult;
    if (strcmp(end, "") == 0 || strcmp(end, "s") == 0)
        mult = 1000;
    else if (strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "m") == 0)
        mult = 60000;
    else if (strcmp(end, "h") == 0)
        mult = 3600000;
    else if (strcmp(end, "d") == 0)
        mult = 86400000;
    else
        return -1;
    *out = (int64_t)(v * mult + 0.5);
    return 0;
}

static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *s == '-')
        return -1;
    static const char *const units[] = {"", "B", "KB", "MB", "GB", "TB"};
    static const char *const iec[] = {"", "B", "KiB", "MiB", "GiB", "TiB"};
    for (int i = 0; i < 6; i++) {
        if (strcasecmp(end, units[i]) == 0 || strcasecmp(end, iec[i]) == 0) {
            unsigned shift = i < 2 ? 0 : 10u * (unsigned)(i - 1);
            *out = (uint64_t)v << shift;
            return 0;
        }
    }
    return -1;
}

static int cfg_set_value(struct mock_cfg_val *v, const char *text, char **err_out)
{
    const struct mh_option *o = v->opt;
    free(v->text);
    v->text = xstrdup(text);
    int ok = 0;
    switch (o->type) {
    case MH_OPT_STR:
        break;
    case MH_OPT_INT:
        ok = parse_i64(text, &v->i);
        if (ok == 0 && o->min < o->max && (v->i < o->min || v->i > o->max)) {
            if (asprintf(err_out, "%s: %" PRId64 " is out of range %" PRId64 "..%" PRId64, o->name, v->i,
                         o->min, o->max) < 0)
                abort();
            return -1;
        }
        break;
    case MH_OPT_BOOL:
        ok = parse_bool(text, &v->i);
        break;
    case MH_OPT_DURATION:
        ok = parse_duration(text, &v->i);
        break;
    case MH_OPT_SIZE:
        ok = parse_size(text, &v->u);
        break;
    case MH_OPT_STRLIST: {
        for (size_t i = 0; i < v->n_items; i++)
            free(v->items[i]);
        free(v->items);
        v->items = NULL;
        v->n_items = 0;
        char *copy = xstrdup(text), *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
            v->items = xrealloc(v->items, (v->n_items + 1) * sizeof *v->items);
            v->items[v->n_items++] = xstrdup(tok);
        }
        free(copy);
        break;
    }
    case MH_OPT_ENUM: {
        ok = -1;
        const char *c = o->choices ? o->choices : "";
        size_t tl = strlen(text);
        while (*c != '\0') {
            size_t wl = strcspn(c, "|");
            if (wl == tl && strncmp(c, text, wl) == 0)
                ok = 0;
            c += wl + (c[wl] == '|');
        }
        break;
    }
    default:
        ok = -1;
    }
    if (ok != 0) {
        if (asprintf(err_out, "%s: invalid value \"%s\"", o->name, text) < 0)
            abort();
        return -1;
    }
    return 0;
}

static void cfg_free(struct mock_cfg *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->vals[i].text);
        for (size_t j = 0; j < c->vals[i].n_items; j++)
            free(c->vals[i].items[j]);
        free(c->vals[i].items);
    }
    free(c->vals);
    free(c);
}

const struct mh_config *mock_host_config(struct mock_host *mh, const struct mh_option *table,
                                         const char *const *kv)
{
    free(mh->cfg_error);
    mh->cfg_error = NULL;
    struct mock_cfg *c = xcalloc(1, sizeof *c);
    c->pub.struct_size = sizeof c->pub;
    c->pub.host = &mh->host;
    while (table != NULL && table[c->n].name != NULL)
        c->n++;
    c->vals = xcalloc(c->n, sizeof *c->vals);
    char *err = NULL;
    for (size_t i = 0; i < c->n && err == NULL; i++) {
        c->vals[i].opt = &table[i];
        if (table[i].def != NULL)
            cfg_set_value(&c->vals[i], table[i].def, &err);
    }
    for (size_t k = 0; kv != NULL && kv[k] != NULL && err == NULL; k += 2) {
        if (kv[k + 1] == NULL) {
            if (asprintf(&err, "%s: no value", kv[k]) < 0)
                abort();
            break;
        }
        struct mock_cfg_val *v = NULL;
        for (size_t i = 0; i < c->n; i++)
            if (strcmp(c->vals[i].opt->name, kv[k]) == 0)
                v = &c->vals[i];
        if (v == NULL) {
            if (asprintf(&err, "%s: unknown option", kv[k]) < 0)
                abort();
            break;
        }
        if (cfg_set_value(v, kv[k + 1], &err) != 0)
            break;
        v->is_set = 1;
        if ((v->opt->flags & MH_OPT_SECRET) && strlen(kv[k + 1]) >= 4) {
            mh->secrets = xrealloc(mh->secrets, (mh->n_secrets + 1) * sizeof *mh->secrets);
            mh->secrets[mh->n_secrets++] = xstrdup(kv[k + 1]);
        }
    }
    for (size_t i = 0; i < c->n && err == NULL; i++)
        if ((c->vals[i].opt->flags & MH_OPT_REQUIRED) && !c->vals[i].is_set)
            if (asprintf(&err, "%s: required option missing", c->vals[i].opt->name) < 0)
                abort();
    if (err != NULL) {
        mh->cfg_error = err;
        cfg_free(c);
        return NULL;
    }
    c->next = mh->cfgs;
    mh->cfgs = c;
    return &c->pub;
}

const char *mock_host_config_error(const struct mock_host *mh)
{
    return mh->cfg_error;
}

static const struct mock_cfg_val *cfg_find(const struct mh_config *cfg, const char *name)
{
    const struct mock_cfg *c = (const struct mock_cfg *)cfg;
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->vals[i].opt->name, name) == 0)
            return &c->vals[i];
    /* A plugin reading an option it did not declare is a bug the test should see. */
    fprintf(stderr, "mock_host: option \"%s\" is not in the plugin's table\n", name);
    abort();
}

static const char *m_cfg_str(const struct mh_config *cfg, const char *name)
{
    return cfg_find(cfg, name)->text;
}
static int64_t m_cfg_int(const struct mh_config *cfg, const char *name)
{
    const struct mock_cfg_val *v = cfg_find(cfg, name);
    return v->text ? v->i : 0;
}
static int m_cfg_bool(const struct mh_config *cfg, const char *name)
{
    const struct mock_cfg_val *v = cfg_find(cfg, name);
    return v->text ? (int)v->i : 0;
}
static int64_t m_cfg_duration_ms(const struct mh_config *cfg, const char *name)
{
    const struct mock_cfg_val *v = cfg_find(cfg, name);
    return v->text ? v->i : 0;
}
static uint64_t m_cfg_size(const struct mh_config *cfg, const char *name)
{
    const struct mock_cfg_val *v = cfg_find(cfg, name);
    return v->text ? v->u : 0;
}
static size_t m_cfg_list_len(const struct mh_config *cfg, const char *name)
{
    return cfg_find(cfg, name)->n_items;
}
static const char *m_cfg_list_item(const struct mh_config *cfg, const char *name, size_t i)
{
    const struct mock_cfg_val *v = cfg_find(cfg, name);
    return i < v->n_items ? v->items[i] : NULL;
}
static int m_cfg_is_set(const struct mh_config *cfg, const char *name)
{
    return cfg_find(cfg, name)->is_set;
}

/* -------------------------------------------------------------- loop */

static struct mh_timer *m_timer_add(struct mh_plugin_ctx *ctx, double after, double repeat, mh_timer_cb cb,
                                    void *arg)
{
    struct mock_host *mh = ctx_host(ctx);
    struct mh_timer *t = xcalloc(1, sizeof *t);
    t->mh = mh;
    t->due = mh->now + (after > 0 ? after : 0);
    t->repeat = repeat > 0 ? repeat : 0;
    t->active = 1;
    t->seq = ++mh->timer_seq;
    t->cb = cb;
    t->arg = arg;
    t->next = mh->timers;
    mh->timers = t;
    return t;
}

static void timer_unlink(struct mh_timer *t)
{
    for (struct mh_timer **pp = &t->mh->timers; *pp != NULL; pp = &(*pp)->next)
        if (*pp == t) {
            *pp = t->next;
            return;
        }
}

static void m_timer_del(struct mh_timer **tp)
{
    if (tp == NULL || *tp == NULL)
        return;
    struct mh_timer *t = *tp;
    *tp = NULL;
    t->active = 0;
    t->deleted = 1; /* freed by the run loop if it is running this timer */
    timer_unlink(t);
    if (t->seq != 0)
        free(t);
}

static struct mh_io *m_io_add(struct mh_plugin_ctx *ctx, int fd, int events, mh_io_cb cb, void *arg)
{
    struct mock_host *mh = ctx_host(ctx);
    struct mh_io *io = xcalloc(1, sizeof *io);
    io->mh = mh;
    io->fd = fd;
    io->events = events;
    io->next = mh->ios;
    mh->ios = io;
    (void)cb;
    (void)arg;
    return io;
}

static void m_io_set(struct mh_io *io, int events)
{
    io->events = events;
}

static void m_io_del(struct mh_io **iop)
{
    if (iop == NULL || *iop == NULL)
        return;
    struct mh_io *io = *iop;
    *iop = NULL;
    for (struct mh_io **pp = &io->mh->ios; *pp != NULL; pp = &(*pp)->next)
        if (*pp == io) {
            *pp = io->next;
            break;
        }
    free(io);
}

static double m_now(struct mh_plugin_ctx *ctx)
{
    return ctx_host(ctx)->now;
}

/* ------------------------------------------------------ http and curl */

static int m_http_request(struct mh_plugin_ctx *ctx, const struct mh_http_request *req, mh_http_cb cb,
                          void *arg, struct mh_http **handle_out)
{
    (void)ctx, (void)req, (void)cb, (void)arg;
    if (handle_out != NULL)
        *handle_out = NULL;
    return MH_ENOTSUP;
}

static void m_http_cancel(struct mh_http **h)
{
    if (h != NULL)
        *h = NULL;
}

static struct mh_curl *m_curl_add_take(struct mh_plugin_ctx *ctx, void *easy, mh_curl_cb cb, void *arg)
{
    (void)ctx, (void)cb, (void)arg;
    curl_easy_cleanup(easy); /* taken: cleaned up even on failure */
    return NULL;
}

static void m_curl_remove(struct mh_curl **h)
{
    if (h != NULL)
        *h = NULL;
}

static void *m_curl_easy(struct mh_curl *h)
{
    (void)h;
    return NULL;
}

/* ------------------------------------------------------------ events */

static int m_event_emit(struct mh_plugin_ctx *ctx, const char *type, const char *data_json)
{
    struct mock_host *mh = ctx_host(ctx);
    if (type == NULL || *type == '\0' || data_json == NULL)
        return MH_EINVAL;
    json_error_t jerr;
    json_t *j = json_loads(data_json, 0, &jerr);
    int is_obj = j != NULL && json_is_object(j);
    json_decref(j);
    if (!is_obj)
        return MH_EINVAL;
    mh->events = xrealloc(mh->events, (mh->n_events + 1) * sizeof *mh->events);
    mh->events[mh->n_events].type = xstrdup(type);
    mh->events[mh->n_events].data = xstrdup(data_json);
    mh->n_events++;
    return MH_OK;
}

/* -------------------------------------------------------- work, jobs */

static int m_work_submit(struct mh_plugin_ctx *ctx, mh_work_fn fn, mh_work_done_cb done, void *arg)
{
    struct mock_host *mh = ctx_host(ctx);
    struct mock_work *w = xcalloc(1, sizeof *w);
    w->fn = fn;
    w->done = done;
    w->arg = arg;
    *mh->work_tail = w;
    mh->work_tail = &w->next;
    return MH_PENDING;
}

static void m_job_done(struct mh_job *job, int rc, const char *detail)
{
    struct mock_job *j = (struct mock_job *)job;
    j->done++;
    j->rc = rc;
    free(j->detail);
    j->detail = xstrdup(detail);
}

/* ------------------------------------------------------------- store */

static void msg_copy(struct mh_message *dst, const struct mh_message *src, const struct mock_host *mh)
{
    dst->struct_size = sizeof *dst;
    dst->user = xstrdup(src->user ? src->user : mh->user);
    dst->account = xstrdup(src->account ? src->account : mh->instance);
    dst->folder = xstrdup(src->folder);
    dst->source_id = xstrdup(src->source_id);
    dst->flags = xstrdup(src->flags);
    char *raw = xcalloc(src->raw_len + 1, 1);
    if (src->raw_len > 0)
        memcpy(raw, src->raw, src->raw_len);
    dst->raw = raw;
    dst->raw_len = src->raw_len;
    dst->internal_date = src->internal_date;
}

static void msg_free(struct mh_message *m)
{
    free((char *)m->user);
    free((char *)m->account);
    free((char *)m->folder);
    free((char *)m->source_id);
    free((char *)m->flags);
    free((void *)m->raw);
}

static int m_store_put_message(struct mh_plugin_ctx *ctx, const struct mh_message *msg, mh_store_cb cb,
                               void *arg)
{
    struct mock_host *mh = ctx_host(ctx);
    if (msg == NULL || cb == NULL || msg->source_id == NULL || (msg->raw == NULL && msg->raw_len > 0))
        return MH_EINVAL;
    struct mock_put *p = xcalloc(1, sizeof *p);
    msg_copy(&p->msg, msg, mh);
    p->cb = cb;
    p->arg = arg;
    p->nth = ++mh->n_puts;
    *mh->puts_tail = p;
    mh->puts_tail = &p->next;
    mh->n_pending++;
    return MH_PENDING;
}

/* The in-memory store: dedup on (user, account, source_id). */
static int mem_put(struct mock_host *mh, const struct mh_message *m, struct mh_message_ref *ref)
{
    for (size_t i = 0; i < mh->n_msgs; i++) {
        const struct mock_message *s = &mh->msgs[i];
        if (strcmp(s->user, m->user) == 0 && strcmp(s->account, m->account) == 0 &&
            strcmp(s->source_id, m->source_id) == 0) {
            ref->id = s->id;
            ref->duplicate = 1;
            return MH_OK;
        }
    }
    mh->msgs = xrealloc(mh->msgs, (mh->n_msgs + 1) * sizeof *mh->msgs);
    struct mock_message *s = &mh->msgs[mh->n_msgs++];
    s->user = xstrdup(m->user);
    s->account = xstrdup(m->account);
    s->folder = xstrdup(m->folder);
    s->source_id = xstrdup(m->source_id);
    s->flags = xstrdup(m->flags);
    s->raw = xcalloc(m->raw_len + 1, 1);
    if (m->raw_len > 0)
        memcpy(s->raw, m->raw, m->raw_len);
    s->raw_len = m->raw_len;
    s->internal_date = m->internal_date;
    s->id = ++mh->next_id;
    ref->id = s->id;
    ref->duplicate = 0;
    return MH_OK;
}

static void m_stopped(struct mh_plugin_ctx *ctx)
{
    ctx_host(ctx)->stopped++;
}

static const char *m_data_dir(struct mh_plugin_ctx *ctx)
{
    return ctx_host(ctx)->data_dir;
}

/* ------------------------------------------------------------ public */

struct mock_host *mock_host_new(const char *instance, const char *plugin)
{
    struct mock_host *mh = xcalloc(1, sizeof *mh);
    mh->host = (struct mh_host){
        .struct_size = sizeof(struct mh_host),
        .abi_version = MH_ABI_VERSION,
        .logv = m_logv,
        .log_enabled = m_log_enabled,
        .set_error = m_set_error,
        .cfg_str = m_cfg_str,
        .cfg_int = m_cfg_int,
        .cfg_bool = m_cfg_bool,
        .cfg_duration_ms = m_cfg_duration_ms,
        .cfg_size = m_cfg_size,
        .cfg_list_len = m_cfg_list_len,
        .cfg_list_item = m_cfg_list_item,
        .cfg_is_set = m_cfg_is_set,
        .timer_add = m_timer_add,
        .timer_del = m_timer_del,
        .io_add = m_io_add,
        .io_set = m_io_set,
        .io_del = m_io_del,
        .now = m_now,
        .http_request = m_http_request,
        .http_cancel = m_http_cancel,
        .curl_add_take = m_curl_add_take,
        .curl_remove = m_curl_remove,
        .curl_easy = m_curl_easy,
        .event_emit = m_event_emit,
        .work_submit = m_work_submit,
        .job_done = m_job_done,
        .store_put_message = m_store_put_message,
        .stopped = m_stopped,
        .data_dir = m_data_dir,
    };
    mh->instance = xstrdup(instance);
    mh->plugin = xstrdup(plugin);
    mh->user = xstrdup("admin");
    mh->ctx.pub.struct_size = sizeof mh->ctx.pub;
    mh->ctx.pub.host = &mh->host;
    mh->ctx.pub.instance = mh->instance;
    mh->ctx.pub.plugin = mh->plugin;
    mh->ctx.mh = mh;
    mh->log_level = MH_LOG_DEBUG;
    mh->now = MOCK_START_TIME;
    mh->puts_tail = &mh->puts;
    mh->work_tail = &mh->work;
    const char *tmp = getenv("TMPDIR");
    snprintf(mh->data_dir, sizeof mh->data_dir, "%s/mh-mock-XXXXXX",
             tmp != NULL && *tmp != '\0' && strlen(tmp) < 40 ? tmp : "/tmp");
    if (mkdtemp(mh->data_dir) == NULL) {
        perror("mock_host: mkdtemp");
        abort();
    }
    return mh;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

void mock_host_cancel_handles(struct mock_host *mh)
{
    while (mh->timers != NULL) {
        struct mh_timer *t = mh->timers;
        mh->timers = t->next;
        free(t);
    }
    while (mh->ios != NULL) {
        struct mh_io *io = mh->ios;
        mh->ios = io->next;
        free(io);
    }
}

void mock_host_free(struct mock_host **mhp)
{
    if (mhp == NULL || *mhp == NULL)
        return;
    struct mock_host *mh = *mhp;
    *mhp = NULL;
    mock_host_cancel_handles(mh);
    while (mh->cfgs != NULL) {
        struct mock_cfg *c = mh->cfgs;
        mh->cfgs = c->next;
        cfg_free(c);
    }
    free(mh->cfg_error);
    for (size_t i = 0; i < mh->n_secrets; i++)
        free(mh->secrets[i]);
    free(mh->secrets);
    for (size_t i = 0; i < mh->n_logs; i++)
        free(mh->logs[i].text);
    free(mh->logs);
    free(mh->error);
    mock_host_clear_events(mh);
    while (mh->puts != NULL) {
        struct mock_put *p = mh->puts;
        mh->puts = p->next;
        msg_free(&p->msg);
        free(p);
    }
    free(mh->fails);
    for (size_t i = 0; i < mh->n_msgs; i++) {
        struct mock_message *s = &mh->msgs[i];
        free(s->user);
        free(s->account);
        free(s->folder);
        free(s->source_id);
        free(s->flags);
        free(s->raw);
    }
    free(mh->msgs);
    while (mh->work != NULL) {
        struct mock_work *w = mh->work;
        mh->work = w->next;
        free(w);
    }
    while (mh->jobs != NULL) {
        struct mock_job *j = mh->jobs;
        mh->jobs = j->next;
        free(j->detail);
        free(j);
    }
    if (getenv("MOCK_HOST_KEEP") == NULL)
        nftw(mh->data_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(mh->instance);
    free(mh->plugin);
    free(mh->user);
    free(mh);
}

struct mh_plugin_ctx *mock_host_ctx(struct mock_host *mh)
{
    return &mh->ctx.pub;
}
const struct mh_host *mock_host_table(struct mock_host *mh)
{
    return &mh->host;
}
const char *mock_host_data_dir(struct mock_host *mh)
{
    return mh->data_dir;
}

void mock_host_set_user(struct mock_host *mh, const char *user)
{
    free(mh->user);
    mh->user = xstrdup(user);
}

void mock_host_set_log_level(struct mock_host *mh, int level)
{
    mh->log_level = level;
}
size_t mock_host_log_count(const struct mock_host *mh)
{
    return mh->n_logs;
}
const char *mock_host_log_line(const struct mock_host *mh, size_t i)
{
    return i < mh->n_logs ? mh->logs[i].text : NULL;
}
int mock_host_log_line_level(const struct mock_host *mh, size_t i)
{
    return i < mh->n_logs ? mh->logs[i].level : -1;
}

const char *mock_host_log_find(const struct mock_host *mh, const char *needle)
{
    for (size_t i = 0; i < mh->n_logs; i++)
        if (strstr(mh->logs[i].text, needle) != NULL)
            return mh->logs[i].text;
    return NULL;
}

const char *mock_host_error(const struct mock_host *mh)
{
    return mh->error;
}
void mock_host_clear_error(struct mock_host *mh)
{
    free(mh->error);
    mh->error = NULL;
}

size_t mock_host_event_count(const struct mock_host *mh)
{
    return mh->n_events;
}
const struct mock_event *mock_host_event(const struct mock_host *mh, size_t i)
{
    return i < mh->n_events ? &mh->events[i] : NULL;
}

size_t mock_host_event_count_type(const struct mock_host *mh, const char *type)
{
    size_t n = 0;
    for (size_t i = 0; i < mh->n_events; i++)
        n += strcmp(mh->events[i].type, type) == 0;
    return n;
}

const struct mock_event *mock_host_event_find(const struct mock_host *mh, const char *type, size_t n)
{
    for (size_t i = 0; i < mh->n_events; i++)
        if (strcmp(mh->events[i].type, type) == 0 && n-- == 0)
            return &mh->events[i];
    return NULL;
}

void mock_host_clear_events(struct mock_host *mh)
{
    for (size_t i = 0; i < mh->n_events; i++) {
        free(mh->events[i].type);
        free(mh->events[i].data);
    }
    free(mh->events);
    mh->events = NULL;
    mh->n_events = 0;
}

double mock_host_now(const struct mock_host *mh)
{
    return mh->now;
}
void mock_host_advance(struct mock_host *mh, double seconds)
{
    mh->now += seconds;
}

size_t mock_host_run_timers(struct mock_host *mh)
{
    size_t ran = 0;
    for (;;) {
        /* The earliest due timer, oldest first on ties, as a loop would order them. */
        struct mh_timer *best = NULL;
        for (struct mh_timer *t = mh->timers; t != NULL; t = t->next)
            if (t->active && t->due <= mh->now &&
                (best == NULL || t->due < best->due || (t->due == best->due && t->seq < best->seq)))
                best = t;
        if (best == NULL)
            return ran;
        if (best->repeat > 0)
            best->due = mh->now + best->repeat;
        else
            best->active = 0;
        /* seq 0 tells m_timer_del not to free it while its callback runs. */
        unsigned long seq = best->seq;
        best->seq = 0;
        best->cb(best, best->arg);
        if (best->deleted)
            free(best);
        else
            best->seq = seq;
        if (++ran > 1000000) {
            fprintf(stderr, "mock_host: timers keep firing\n");
            abort();
        }
    }
}

size_t mock_host_timer_count(const struct mock_host *mh)
{
    size_t n = 0;
    for (const struct mh_timer *t = mh->timers; t != NULL; t = t->next)
        n++;
    return n;
}

size_t mock_host_run_puts(struct mock_host *mh, size_t max)
{
    size_t ran = 0;
    /* Only what is queued now: completions may queue more for the next call. */
    struct mock_put *puts = mh->puts;
    mh->puts = NULL;
    mh->puts_tail = &mh->puts;
    while (puts != NULL && ran < max) {
        struct mock_put *p = puts;
        puts = p->next;
        mh->n_pending--;
        int rc = MH_OK;
        for (size_t i = 0; i < mh->n_fails; i++)
            if (mh->fails[i].nth == p->nth)
                rc = mh->fails[i].rc;
        struct mh_message_ref ref = {.struct_size = sizeof ref};
        if (rc == MH_OK)
            rc = mem_put(mh, &p->msg, &ref);
        p->cb(p->arg, rc, rc == MH_OK ? &ref : NULL);
        msg_free(&p->msg);
        free(p);
        ran++;
    }
    if (puts != NULL) {
        /* Not run this time: put them back in front of what the callbacks queued. */
        struct mock_put *last = puts;
        while (last->next != NULL)
            last = last->next;
        last->next = mh->puts;
        if (mh->puts == NULL)
            mh->puts_tail = &last->next;
        mh->puts = puts;
    }
    return ran;
}

size_t mock_host_run(struct mock_host *mh)
{
    size_t ran = mock_host_run_puts(mh, SIZE_MAX);
    struct mock_work *work = mh->work;
    mh->work = NULL;
    mh->work_tail = &mh->work;
    while (work != NULL) {
        struct mock_work *w = work;
        work = w->next;
        w->fn(w->arg);
        if (w->done != NULL)
            w->done(w->arg, MH_OK);
        free(w);
        ran++;
    }
    return ran;
}

size_t mock_host_run_all(struct mock_host *mh)
{
    size_t total = 0, n;
    do {
        n = mock_host_run(mh);
        n += mock_host_run_timers(mh);
        total += n;
    } while (n > 0);
    return total;
}

size_t mock_host_pending_puts(const struct mock_host *mh)
{
    return mh->n_pending;
}
size_t mock_host_put_count(const struct mock_host *mh)
{
    return mh->n_puts;
}

void mock_host_fail_put(struct mock_host *mh, size_t nth, int rc)
{
    mh->fails = xrealloc(mh->fails, (mh->n_fails + 1) * sizeof *mh->fails);
    mh->fails[mh->n_fails].nth = nth;
    mh->fails[mh->n_fails].rc = rc;
    mh->n_fails++;
}

size_t mock_host_message_count(const struct mock_host *mh)
{
    return mh->n_msgs;
}
const struct mock_message *mock_host_message(const struct mock_host *mh, size_t i)
{
    return i < mh->n_msgs ? &mh->msgs[i] : NULL;
}

int mock_host_stopped_count(const struct mock_host *mh)
{
    return mh->stopped;
}

struct mh_job *mock_host_job_new(struct mock_host *mh)
{
    struct mock_job *j = xcalloc(1, sizeof *j);
    j->pub.struct_size = sizeof j->pub;
    j->pub.host = &mh->host;
    j->next = mh->jobs;
    mh->jobs = j;
    return &j->pub;
}

int mock_host_job_done(const struct mh_job *job, int *rc_out, const char **detail_out)
{
    const struct mock_job *j = (const struct mock_job *)job;
    if (rc_out != NULL)
        *rc_out = j->rc;
    if (detail_out != NULL)
        *detail_out = j->detail;
    return j->done;
}

struct mh_event mock_event_make(const char *id, const char *type, const char *json)
{
    return (struct mh_event){
        .struct_size = sizeof(struct mh_event),
        .id = id,
        .type = type,
        .version = 1,
        .json = json,
        .json_len = strlen(json),
        .user = NULL,
        .time = MOCK_START_TIME,
    };
}

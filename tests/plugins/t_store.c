/*
 * Loader test module: a tiny in-memory store implementing every store op.
 * Nothing survives free.  Also run through the store contract suite
 * (tests/store_contract.c) as its second, non-persistent backend.
 */
#define _POSIX_C_SOURCE 200809L /* plugin.h's mh_strdup() uses strdup(), hidden by -std=c11 */
#include <mailhub/plugin.h>
#include <mailhub/store.h>

struct t_store_msg {
    char *user, *account, *source_id;
    uint64_t size;
};

struct t_store_quota {
    char *user;
    uint64_t alloc;
};

struct t_store {
    struct mh_plugin_ctx *ctx;
    int open;
    struct t_store_msg *msgs;
    size_t n_msgs;
    struct t_store_quota *quota;
    size_t n_quota;
};

static int t_store_init(struct mh_plugin_ctx *ctx, const struct mh_config *cfg, void **state_out)
{
    (void)cfg;
    struct t_store *s = mh_calloc(1, sizeof *s);
    if (s == NULL)
        return MH_ENOMEM;
    s->ctx = ctx;
    *state_out = s;
    return MH_OK;
}

static int t_store_open(void *state)
{
    struct t_store *s = state;
    s->open = 1;
    return MH_OK;
}

static void t_store_close(void *state)
{
    ((struct t_store *)state)->open = 0;
}

static int t_store_str_eq(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

static struct t_store_msg *t_store_find(struct t_store *s, const char *user, const char *account,
                                        const char *source_id)
{
    for (size_t i = 0; i < s->n_msgs; i++)
        if (t_store_str_eq(s->msgs[i].user, user) && t_store_str_eq(s->msgs[i].account, account) &&
            t_store_str_eq(s->msgs[i].source_id, source_id))
            return &s->msgs[i];
    return NULL;
}

static int t_store_put(void *state, const struct mh_message *m, struct mh_message_ref *ref)
{
    struct t_store *s = state;
    if (!s->open || m->user == NULL || m->account == NULL || m->source_id == NULL)
        return MH_EINVAL;
    struct t_store_msg *old = t_store_find(s, m->user, m->account, m->source_id);
    if (old != NULL) {
        ref->id = (int64_t)(old - s->msgs) + 1;
        ref->duplicate = 1;
        return MH_OK;
    }
    struct t_store_msg *msgs = realloc(s->msgs, (s->n_msgs + 1) * sizeof *msgs);
    if (msgs == NULL)
        return MH_ENOMEM;
    s->msgs = msgs;
    struct t_store_msg *n = &s->msgs[s->n_msgs];
    n->user = mh_strdup(m->user);
    n->account = mh_strdup(m->account);
    n->source_id = mh_strdup(m->source_id);
    n->size = m->raw_len;
    if (n->user == NULL || n->account == NULL || n->source_id == NULL) {
        mh_free(n->user);
        mh_free(n->account);
        mh_free(n->source_id);
        return MH_ENOMEM;
    }
    s->n_msgs++;
    ref->id = (int64_t)s->n_msgs;
    ref->duplicate = 0;
    return MH_OK;
}

static int t_store_flush(void *state)
{
    return ((struct t_store *)state)->open ? MH_OK : MH_ERR;
}

static int t_store_usage(void *state, const char *user, uint64_t *bytes_out, uint64_t *count_out)
{
    struct t_store *s = state;
    uint64_t bytes = 0, count = 0;
    for (size_t i = 0; i < s->n_msgs; i++)
        if (t_store_str_eq(s->msgs[i].user, user)) {
            bytes += s->msgs[i].size;
            count++;
        }
    *bytes_out = bytes;
    *count_out = count;
    return MH_OK;
}

static int t_store_quota_get(void *state, const char *user, uint64_t *alloc_out)
{
    struct t_store *s = state;
    for (size_t i = 0; i < s->n_quota; i++)
        if (t_store_str_eq(s->quota[i].user, user)) {
            *alloc_out = s->quota[i].alloc;
            return 1;
        }
    return 0;
}

static int t_store_quota_set(void *state, const char *user, uint64_t alloc, const char *reason)
{
    struct t_store *s = state;
    (void)reason;
    for (size_t i = 0; i < s->n_quota; i++)
        if (t_store_str_eq(s->quota[i].user, user)) {
            s->quota[i].alloc = alloc;
            return MH_OK;
        }
    struct t_store_quota *q = realloc(s->quota, (s->n_quota + 1) * sizeof *q);
    if (q == NULL)
        return MH_ENOMEM;
    s->quota = q;
    if ((q[s->n_quota].user = mh_strdup(user)) == NULL)
        return MH_ENOMEM;
    q[s->n_quota++].alloc = alloc;
    return MH_OK;
}

static int t_store_has(void *state, const char *user, const char *account, const char *source_id)
{
    return t_store_find(state, user, account, source_id) != NULL;
}

static void t_store_free(void *state)
{
    struct t_store *s = state;
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n_msgs; i++) {
        mh_free(s->msgs[i].user);
        mh_free(s->msgs[i].account);
        mh_free(s->msgs[i].source_id);
    }
    for (size_t i = 0; i < s->n_quota; i++)
        mh_free(s->quota[i].user);
    mh_free(s->msgs);
    mh_free(s->quota);
    mh_free(s);
}

static const struct mh_store_ops t_store_ops = {
    .struct_size = sizeof(struct mh_store_ops),
    .open = t_store_open,
    .close = t_store_close,
    .put_message = t_store_put,
    .flush = t_store_flush,
    .usage = t_store_usage,
    .quota_get = t_store_quota_get,
    .quota_set = t_store_quota_set,
    .has_source_id = t_store_has,
};

MH_PLUGIN_DEFINE(t_store, .kind = MH_KIND_STORE, .name = "t_store", .version = "0.0.1",
                 .description = "loader test: an in-memory store", .init = t_store_init, .free = t_store_free,
                 .ops = &t_store_ops);

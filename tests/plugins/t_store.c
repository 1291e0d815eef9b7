/*
 * Loader test module: a small in-memory store implementing every store op
 * of SDK 1.1.  Nothing survives free; every write is immediate (flush has
 * nothing to do).  Also run through the store contract suite
 * (tests/store_contract.c) as its second, non-persistent backend, so it
 * keeps to the contract, but it is written for clarity, not speed: lookups
 * are linear scans.  Records are kept in arrays in ascending id order.
 */
#define _POSIX_C_SOURCE 200809L /* plugin.h's helpers and <string.h> under -std=c11 */
#include <time.h>

#include <mailhub/plugin.h>
#include <mailhub/store.h>

struct ts_user {
    int64_t id;
    char *name, *password_hash, *phone, *email;
    int admin;
    void *data_key;
    size_t data_key_len;
    int64_t created;
    int has_quota;
    uint64_t alloc;
};

struct ts_token {
    unsigned char hash[32];
    int64_t user_id;
    char *label;
    int64_t expires;
};

struct ts_account {
    int64_t id, user_id;
    char *name, *provider, *settings, *status, *origin;
    void *secret;
    size_t secret_len;
    int paused;
    int64_t created;
};

struct ts_folder {
    int64_t id, user_id, account_id;
    char *name;
    uint32_t uidvalidity, uidnext;
    uint64_t highestmodseq;
};

struct ts_msg {
    struct mh_msg_rec r; /* strings and blob owned; `folder` unused (looked up) */
};

struct ts_qlog {
    int64_t user_id;
    uint64_t alloc;
    char *reason;
    int64_t when;
};

/* A growable array of `type`: items, n, cap. */
#define TS_VEC(type)                                                                                         \
    struct {                                                                                                 \
        type *v;                                                                                             \
        size_t n, cap;                                                                                       \
    }

struct t_store {
    struct mh_plugin_ctx *ctx;
    int open;
    TS_VEC(struct ts_user) users;
    TS_VEC(struct ts_token) tokens;
    TS_VEC(struct ts_account) accounts;
    TS_VEC(struct ts_folder) folders;
    TS_VEC(struct ts_msg) msgs;
    TS_VEC(struct ts_qlog) qlog;
    int64_t next_user, next_account, next_folder, next_msg;
    uint32_t next_uidvalidity;
};

/* Room for one more element in a TS_VEC; 0 or -1. */
static int ts_grow(void **v, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 8;
    void *p = realloc(*v, nc * size);
    if (p == NULL)
        return -1;
    *v = p;
    *cap = nc;
    return 0;
}
/* A pointer to a new last element of vec (uninitialised), or NULL. */
#define TS_PUSH(vec)                                                                                         \
    (ts_grow((void **)&(vec).v, &(vec).cap, (vec).n, sizeof *(vec).v) == 0 ? &(vec).v[(vec).n++] : NULL)
/* Remove element i, keeping the order of the others. */
#define TS_REMOVE(vec, i) memmove(&(vec).v[i], &(vec).v[(i) + 1], ((vec).n-- - (i)-1) * sizeof *(vec).v)

/* Copies that report failure through *oom (a NULL input copies to NULL). */
static char *ts_str(const char *s, int *oom)
{
    char *d = mh_strdup(s);
    if (s != NULL && d == NULL)
        *oom = 1;
    return d;
}

static void *ts_mem(const void *p, size_t len, int *oom)
{
    if (p == NULL)
        return NULL;
    void *d = malloc(len ? len : 1);
    if (d == NULL)
        *oom = 1;
    else if (len > 0)
        memcpy(d, p, len);
    return d;
}

static int ts_eq(const char *a, const char *b)
{
    return a != NULL && b != NULL && strcmp(a, b) == 0;
}

static int ts_oom(struct t_store *s)
{
    mh_set_error(s->ctx, "t_store: out of memory");
    return MH_ENOMEM;
}

/* ------------------------------------------------------------- free */

static void ts_user_free(struct ts_user *u)
{
    mh_free(u->name);
    mh_free(u->password_hash);
    mh_free(u->phone);
    mh_free(u->email);
    mh_free(u->data_key);
}

static void ts_account_free(struct ts_account *a)
{
    mh_free(a->name);
    mh_free(a->provider);
    mh_free(a->settings);
    mh_free(a->status);
    mh_free(a->origin);
    mh_free(a->secret);
}

static void ts_msg_free(struct ts_msg *m)
{
    mh_free((char *)m->r.source_id);
    mh_free((void *)m->r.blob);
    mh_free((char *)m->r.flags);
    mh_free((char *)m->r.from);
    mh_free((char *)m->r.to);
    mh_free((char *)m->r.cc);
    mh_free((char *)m->r.subject);
    mh_free((char *)m->r.message_id);
}

/* ------------------------------------------------------------ finds */

static struct ts_user *ts_user(struct t_store *s, int64_t id)
{
    for (size_t i = 0; i < s->users.n; i++)
        if (s->users.v[i].id == id)
            return &s->users.v[i];
    return NULL;
}

static struct ts_user *ts_user_named(struct t_store *s, const char *name)
{
    for (size_t i = 0; i < s->users.n; i++)
        if (ts_eq(s->users.v[i].name, name))
            return &s->users.v[i];
    return NULL;
}

static struct ts_account *ts_account(struct t_store *s, int64_t user_id, int64_t id, const char *name)
{
    for (size_t i = 0; i < s->accounts.n; i++) {
        struct ts_account *a = &s->accounts.v[i];
        if ((user_id == 0 || a->user_id == user_id) && (id > 0 ? a->id == id : ts_eq(a->name, name)))
            return a;
    }
    return NULL;
}

static struct ts_folder *ts_folder(struct t_store *s, int64_t id)
{
    for (size_t i = 0; i < s->folders.n; i++)
        if (s->folders.v[i].id == id)
            return &s->folders.v[i];
    return NULL;
}

static struct ts_token *ts_token(struct t_store *s, const unsigned char hash[32])
{
    for (size_t i = 0; i < s->tokens.n; i++)
        if (memcmp(s->tokens.v[i].hash, hash, 32) == 0)
            return &s->tokens.v[i];
    return NULL;
}

static struct ts_msg *ts_msg_source(struct t_store *s, int64_t user_id, int64_t account_id,
                                    const char *source_id)
{
    for (size_t i = 0; i < s->msgs.n; i++) {
        struct mh_msg_rec *r = &s->msgs.v[i].r;
        if (r->user_id == user_id && r->account_id == account_id && ts_eq(r->source_id, source_id))
            return &s->msgs.v[i];
    }
    return NULL;
}

/* -------------------------------------------------------- lifecycle */

static int t_store_init(struct mh_plugin_ctx *ctx, const struct mh_config *cfg, void **state_out)
{
    (void)cfg;
    struct t_store *s = mh_calloc(1, sizeof *s);
    if (s == NULL)
        return MH_ENOMEM;
    s->ctx = ctx;
    s->next_uidvalidity = 1000;
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

static int t_store_flush(void *state)
{
    return ((struct t_store *)state)->open ? MH_OK : MH_ERR;
}

static void t_store_free(void *state)
{
    struct t_store *s = state;
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->users.n; i++)
        ts_user_free(&s->users.v[i]);
    for (size_t i = 0; i < s->tokens.n; i++)
        mh_free(s->tokens.v[i].label);
    for (size_t i = 0; i < s->accounts.n; i++)
        ts_account_free(&s->accounts.v[i]);
    for (size_t i = 0; i < s->folders.n; i++)
        mh_free(s->folders.v[i].name);
    for (size_t i = 0; i < s->msgs.n; i++)
        ts_msg_free(&s->msgs.v[i]);
    for (size_t i = 0; i < s->qlog.n; i++)
        mh_free(s->qlog.v[i].reason);
    mh_free(s->users.v);
    mh_free(s->tokens.v);
    mh_free(s->accounts.v);
    mh_free(s->folders.v);
    mh_free(s->msgs.v);
    mh_free(s->qlog.v);
    mh_free(s);
}

/* ------------------------------------------------------------ users */

static int t_store_user_put(void *state, struct mh_user_rec *u)
{
    struct t_store *s = state;
    if (!s->open || u == NULL || u->name == NULL || u->id < 0)
        return MH_EINVAL;
    struct ts_user *same = ts_user_named(s, u->name);
    if (same != NULL && same->id != u->id)
        return MH_EEXIST;
    int oom = 0;
    struct ts_user n = {
        .id = u->id,
        .name = ts_str(u->name, &oom),
        .password_hash = ts_str(u->password_hash, &oom),
        .phone = ts_str(u->phone, &oom),
        .email = ts_str(u->email, &oom),
        .admin = u->admin != 0,
        .data_key = ts_mem(u->data_key, u->data_key_len, &oom),
        .data_key_len = u->data_key != NULL ? u->data_key_len : 0,
        .created = u->created,
    };
    struct ts_user *dst = u->id > 0 ? ts_user(s, u->id) : NULL;
    if (u->id > 0 && dst == NULL) {
        ts_user_free(&n);
        return MH_ENOTFOUND;
    }
    if (dst == NULL && !oom)
        dst = TS_PUSH(s->users);
    if (oom || dst == NULL) {
        ts_user_free(&n);
        return ts_oom(s);
    }
    if (u->id > 0) {
        n.has_quota = dst->has_quota;
        n.alloc = dst->alloc;
        if (n.created == 0)
            n.created = dst->created;
        ts_user_free(dst);
    } else {
        n.id = u->id = ++s->next_user;
        if (n.created == 0)
            n.created = u->created = (int64_t)time(NULL);
    }
    *dst = n;
    return MH_OK;
}

static void ts_user_rec(const struct ts_user *u, struct mh_user_rec *r)
{
    *r = (struct mh_user_rec){
        .struct_size = sizeof *r,
        .id = u->id,
        .name = u->name,
        .password_hash = u->password_hash,
        .phone = u->phone,
        .email = u->email,
        .admin = u->admin,
        .data_key = u->data_key,
        .data_key_len = u->data_key_len,
        .created = u->created,
    };
}

static int t_store_user_get(void *state, int64_t id, const char *name, mh_user_each_cb cb, void *arg)
{
    struct t_store *s = state;
    const struct ts_user *u = id > 0 ? ts_user(s, id) : name != NULL ? ts_user_named(s, name) : NULL;
    if (u == NULL)
        return 0;
    struct mh_user_rec r;
    ts_user_rec(u, &r);
    if (cb != NULL)
        cb(arg, &r);
    return 1;
}

static int t_store_user_list(void *state, mh_user_each_cb cb, void *arg)
{
    struct t_store *s = state;
    for (size_t i = 0; i < s->users.n; i++) {
        struct mh_user_rec r;
        ts_user_rec(&s->users.v[i], &r);
        if (cb != NULL && cb(arg, &r) != 0)
            break;
    }
    return MH_OK;
}

/* Remove the messages of account_id (0: of every account of user_id), then its folders. */
static void ts_purge(struct t_store *s, int64_t user_id, int64_t account_id)
{
    for (size_t i = s->msgs.n; i-- > 0;) {
        struct mh_msg_rec *r = &s->msgs.v[i].r;
        if (r->user_id == user_id && (account_id == 0 || r->account_id == account_id)) {
            ts_msg_free(&s->msgs.v[i]);
            TS_REMOVE(s->msgs, i);
        }
    }
    for (size_t i = s->folders.n; i-- > 0;) {
        struct ts_folder *f = &s->folders.v[i];
        if (f->user_id == user_id && (account_id == 0 || f->account_id == account_id)) {
            mh_free(f->name);
            TS_REMOVE(s->folders, i);
        }
    }
}

static int t_store_user_delete(void *state, int64_t id)
{
    struct t_store *s = state;
    struct ts_user *u = ts_user(s, id);
    if (!s->open)
        return MH_ERR;
    if (u == NULL)
        return MH_ENOTFOUND;
    ts_purge(s, id, 0);
    for (size_t i = s->accounts.n; i-- > 0;)
        if (s->accounts.v[i].user_id == id) {
            ts_account_free(&s->accounts.v[i]);
            TS_REMOVE(s->accounts, i);
        }
    for (size_t i = s->tokens.n; i-- > 0;)
        if (s->tokens.v[i].user_id == id) {
            mh_free(s->tokens.v[i].label);
            TS_REMOVE(s->tokens, i);
        }
    for (size_t i = s->qlog.n; i-- > 0;)
        if (s->qlog.v[i].user_id == id) {
            mh_free(s->qlog.v[i].reason);
            TS_REMOVE(s->qlog, i);
        }
    ts_user_free(u);
    TS_REMOVE(s->users, (size_t)(u - s->users.v));
    return MH_OK;
}

/* ----------------------------------------------------------- tokens */

static int t_store_token_put(void *state, int64_t user_id, const unsigned char hash[32], const char *label,
                             int64_t expires)
{
    struct t_store *s = state;
    if (!s->open || hash == NULL)
        return MH_EINVAL;
    if (ts_user(s, user_id) == NULL)
        return MH_ENOTFOUND;
    if (ts_token(s, hash) != NULL)
        return MH_EEXIST;
    int oom = 0;
    char *l = ts_str(label, &oom);
    struct ts_token *t = oom ? NULL : TS_PUSH(s->tokens);
    if (t == NULL) {
        mh_free(l);
        return ts_oom(s);
    }
    memcpy(t->hash, hash, 32);
    t->user_id = user_id;
    t->label = l;
    t->expires = expires > 0 ? expires : 0;
    return MH_OK;
}

static int t_store_token_get(void *state, const unsigned char hash[32], int64_t now, int64_t *user_id_out)
{
    struct t_store *s = state;
    const struct ts_token *t = hash != NULL ? ts_token(s, hash) : NULL;
    if (t == NULL || (t->expires != 0 && t->expires <= now))
        return 0;
    if (user_id_out != NULL)
        *user_id_out = t->user_id;
    return 1;
}

static int t_store_token_delete(void *state, const unsigned char hash[32])
{
    struct t_store *s = state;
    struct ts_token *t = hash != NULL ? ts_token(s, hash) : NULL;
    if (t == NULL)
        return MH_ENOTFOUND;
    mh_free(t->label);
    TS_REMOVE(s->tokens, (size_t)(t - s->tokens.v));
    return MH_OK;
}

/* --------------------------------------------------------- accounts */

static int t_store_account_put(void *state, struct mh_account_rec *a)
{
    struct t_store *s = state;
    if (!s->open || a == NULL || a->name == NULL || a->provider == NULL || a->id < 0)
        return MH_EINVAL;
    if (ts_user(s, a->user_id) == NULL)
        return MH_ENOTFOUND;
    struct ts_account *dst = NULL;
    if (a->id > 0 && (dst = ts_account(s, a->user_id, a->id, NULL)) == NULL)
        return MH_ENOTFOUND;
    const struct ts_account *same = ts_account(s, a->user_id, 0, a->name);
    if (same != NULL && same != dst)
        return MH_EEXIST;
    int oom = 0;
    struct ts_account n = {
        .id = a->id,
        .user_id = a->user_id,
        .name = ts_str(a->name, &oom),
        .provider = ts_str(a->provider, &oom),
        .settings = ts_str(a->settings, &oom),
        .status = ts_str(a->status, &oom),
        .origin = ts_str(a->origin, &oom),
        .secret = ts_mem(a->secret, a->secret_len, &oom),
        .secret_len = a->secret != NULL ? a->secret_len : 0,
        .paused = a->paused != 0,
        .created = a->created,
    };
    if (dst == NULL && !oom)
        dst = TS_PUSH(s->accounts);
    if (oom || dst == NULL) {
        ts_account_free(&n);
        return ts_oom(s);
    }
    if (a->id > 0) {
        if (n.created == 0)
            n.created = dst->created;
        ts_account_free(dst);
    } else {
        n.id = a->id = ++s->next_account;
        if (n.created == 0)
            n.created = a->created = (int64_t)time(NULL);
    }
    *dst = n;
    return MH_OK;
}

static void ts_account_rec(const struct ts_account *a, struct mh_account_rec *r)
{
    *r = (struct mh_account_rec){
        .struct_size = sizeof *r,
        .id = a->id,
        .user_id = a->user_id,
        .name = a->name,
        .provider = a->provider,
        .settings = a->settings,
        .secret = a->secret,
        .secret_len = a->secret_len,
        .paused = a->paused,
        .status = a->status,
        .origin = a->origin,
        .created = a->created,
    };
}

static int t_store_account_get(void *state, int64_t user_id, int64_t id, const char *name,
                               mh_account_each_cb cb, void *arg)
{
    struct t_store *s = state;
    if (user_id < 0 || (id <= 0 && name == NULL))
        return 0;
    const struct ts_account *a = ts_account(s, user_id, id, name);
    if (a == NULL)
        return 0;
    struct mh_account_rec r;
    ts_account_rec(a, &r);
    if (cb != NULL)
        cb(arg, &r);
    return 1;
}

static int t_store_account_list(void *state, int64_t user_id, mh_account_each_cb cb, void *arg)
{
    struct t_store *s = state;
    for (size_t i = 0; i < s->accounts.n; i++) {
        if (user_id != 0 && s->accounts.v[i].user_id != user_id)
            continue;
        struct mh_account_rec r;
        ts_account_rec(&s->accounts.v[i], &r);
        if (cb != NULL && cb(arg, &r) != 0)
            break;
    }
    return MH_OK;
}

static int t_store_account_delete(void *state, int64_t user_id, int64_t id)
{
    struct t_store *s = state;
    struct ts_account *a = id > 0 && user_id > 0 ? ts_account(s, user_id, id, NULL) : NULL;
    if (a == NULL)
        return MH_ENOTFOUND;
    ts_purge(s, user_id, id);
    ts_account_free(a);
    TS_REMOVE(s->accounts, (size_t)(a - s->accounts.v));
    return MH_OK;
}

/* ---------------------------------------------------------- folders */

static int t_store_folder_list(void *state, int64_t user_id, int64_t account_id, mh_folder_each_cb cb,
                               void *arg)
{
    struct t_store *s = state;
    for (size_t i = 0; i < s->folders.n; i++) {
        const struct ts_folder *f = &s->folders.v[i];
        if (f->user_id != user_id || (account_id > 0 && f->account_id != account_id))
            continue;
        struct mh_folder_rec r = {
            .struct_size = sizeof r,
            .id = f->id,
            .user_id = f->user_id,
            .account_id = f->account_id,
            .name = f->name,
            .uidvalidity = f->uidvalidity,
            .uidnext = f->uidnext,
            .highestmodseq = f->highestmodseq,
        };
        for (size_t j = 0; j < s->msgs.n; j++)
            if (s->msgs.v[j].r.folder_id == f->id) {
                r.messages++;
                r.bytes += s->msgs.v[j].r.size;
            }
        if (cb != NULL && cb(arg, &r) != 0)
            break;
    }
    return MH_OK;
}

/* --------------------------------------------------------- messages */

static int t_store_put(void *state, const struct mh_msg_rec *m, struct mh_message_ref *ref)
{
    struct t_store *s = state;
    if (!s->open || m == NULL || ref == NULL || m->folder == NULL || m->blob == NULL)
        return MH_EINVAL;
    if (m->source_id != NULL) {
        const struct ts_msg *old = ts_msg_source(s, m->user_id, m->account_id, m->source_id);
        if (old != NULL) {
            ref->id = old->r.id;
            ref->duplicate = 1;
            return MH_OK;
        }
    }
    if (ts_account(s, m->user_id, m->account_id, NULL) == NULL || m->user_id <= 0)
        return MH_ENOTFOUND;
    struct ts_folder *f = NULL;
    for (size_t i = 0; i < s->folders.n && f == NULL; i++)
        if (s->folders.v[i].account_id == m->account_id && ts_eq(s->folders.v[i].name, m->folder))
            f = &s->folders.v[i];
    if (f == NULL) {
        int oom = 0;
        char *name = ts_str(m->folder, &oom);
        if (oom || (f = TS_PUSH(s->folders)) == NULL) {
            mh_free(name);
            return ts_oom(s);
        }
        *f = (struct ts_folder){.id = ++s->next_folder,
                                .user_id = m->user_id,
                                .account_id = m->account_id,
                                .name = name,
                                .uidvalidity = s->next_uidvalidity++,
                                .uidnext = 1};
    }
    int oom = 0;
    struct ts_msg n = {.r = *m};
    n.r.folder = NULL;
    n.r.source_id = ts_str(m->source_id, &oom);
    n.r.blob = ts_mem(m->blob, m->blob_len, &oom);
    n.r.flags = ts_str(m->flags, &oom);
    n.r.from = ts_str(m->from, &oom);
    n.r.to = ts_str(m->to, &oom);
    n.r.cc = ts_str(m->cc, &oom);
    n.r.subject = ts_str(m->subject, &oom);
    n.r.message_id = ts_str(m->message_id, &oom);
    struct ts_msg *dst = oom ? NULL : TS_PUSH(s->msgs);
    if (dst == NULL) {
        ts_msg_free(&n);
        return ts_oom(s);
    }
    n.r.struct_size = sizeof n.r;
    n.r.id = ++s->next_msg;
    n.r.folder_id = f->id;
    n.r.uid = f->uidnext++;
    n.r.modseq = ++f->highestmodseq;
    n.r.stored = (int64_t)time(NULL);
    *dst = n;
    ref->id = n.r.id;
    ref->duplicate = 0;
    return MH_OK;
}

static int t_store_has(void *state, int64_t user_id, int64_t account_id, const char *source_id)
{
    return source_id != NULL && ts_msg_source(state, user_id, account_id, source_id) != NULL;
}

static int t_store_msg_list(void *state, const struct mh_msg_query *q, mh_msg_each_cb cb, void *arg)
{
    struct t_store *s = state;
    if (q == NULL || q->user_id <= 0)
        return MH_EINVAL;
    uint32_t seen = 0;
    for (size_t i = 0; i < s->msgs.n && (q->limit == 0 || seen < q->limit); i++) {
        struct mh_msg_rec r = s->msgs.v[i].r;
        if (r.user_id != q->user_id || (q->id > 0 && r.id != q->id) || r.id <= q->after_id ||
            (q->account_id > 0 && r.account_id != q->account_id) ||
            (q->folder_id > 0 && r.folder_id != q->folder_id))
            continue;
        const struct ts_folder *f = ts_folder(s, r.folder_id);
        r.folder = f != NULL ? f->name : NULL;
        if (!q->with_blob) {
            r.blob = NULL;
            r.blob_len = 0;
        }
        seen++;
        if (cb != NULL && cb(arg, &r) != 0)
            break;
    }
    return MH_OK;
}

/* ------------------------------------------------------ usage, quota */

static int t_store_usage(void *state, int64_t user_id, uint64_t *bytes_out, uint64_t *count_out)
{
    struct t_store *s = state;
    uint64_t bytes = 0, count = 0;
    for (size_t i = 0; i < s->msgs.n; i++)
        if (s->msgs.v[i].r.user_id == user_id) {
            bytes += s->msgs.v[i].r.size;
            count++;
        }
    if (bytes_out != NULL)
        *bytes_out = bytes;
    if (count_out != NULL)
        *count_out = count;
    return MH_OK;
}

static int t_store_quota_get(void *state, int64_t user_id, uint64_t *alloc_out)
{
    const struct ts_user *u = ts_user(state, user_id);
    if (u == NULL || !u->has_quota)
        return 0;
    if (alloc_out != NULL)
        *alloc_out = u->alloc;
    return 1;
}

static int t_store_quota_set(void *state, int64_t user_id, uint64_t alloc, const char *reason)
{
    struct t_store *s = state;
    if (!s->open || alloc > (uint64_t)INT64_MAX)
        return MH_EINVAL;
    struct ts_user *u = ts_user(s, user_id);
    if (u == NULL)
        return MH_ENOTFOUND;
    int oom = 0;
    char *r = ts_str(reason != NULL ? reason : "", &oom);
    struct ts_qlog *l = oom ? NULL : TS_PUSH(s->qlog);
    if (l == NULL) {
        mh_free(r);
        return ts_oom(s);
    }
    *l = (struct ts_qlog){.user_id = user_id, .alloc = alloc, .reason = r, .when = (int64_t)time(NULL)};
    u->has_quota = 1;
    u->alloc = alloc;
    return MH_OK;
}

static int t_store_quota_history(void *state, int64_t user_id, mh_quota_each_cb cb, void *arg)
{
    struct t_store *s = state;
    for (size_t i = 0; i < s->qlog.n; i++) {
        const struct ts_qlog *l = &s->qlog.v[i];
        if (l->user_id == user_id && cb != NULL && cb(arg, l->alloc, l->reason, l->when) != 0)
            break;
    }
    return MH_OK;
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
    .user_put = t_store_user_put,
    .user_get = t_store_user_get,
    .user_list = t_store_user_list,
    .user_delete = t_store_user_delete,
    .token_put = t_store_token_put,
    .token_get = t_store_token_get,
    .token_delete = t_store_token_delete,
    .account_put = t_store_account_put,
    .account_get = t_store_account_get,
    .account_list = t_store_account_list,
    .account_delete = t_store_account_delete,
    .folder_list = t_store_folder_list,
    .msg_list = t_store_msg_list,
    .quota_history = t_store_quota_history,
};

MH_PLUGIN_DEFINE(t_store, .kind = MH_KIND_STORE, .name = "t_store", .version = "0.0.2",
                 .description = "loader test: an in-memory store", .init = t_store_init, .free = t_store_free,
                 .ops = &t_store_ops);

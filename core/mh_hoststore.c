/*
 * The host functions of SDK 1.2 through which providers keep their sync
 * state and mirror changes at the source (flags, expunges, folder renames).
 *
 * Each request runs on the store lane in order with the instance's puts and
 * completes on the loop once the batch it ran in is committed, so a
 * checkpoint is never ahead of the mail it describes.  The request is always
 * scoped to the instance's own user and account.
 */
#include "config.h"

#include "mh_daemon.h"
#include "mh_host.h"
#include "mh_hub.h"
#include "mh_hoststore.h"
#include "mh_storeq.h"
#include "mh_util.h"

#include <stdlib.h>
#include <string.h>

#define STATE_KEY_MAX 200
#define STATE_VALUE_MAX (1024 * 1024)

enum hs_op { HS_STATE_GET, HS_STATE_PUT, HS_FLAGS, HS_GONE, HS_FOLDER, HS_LIST };

struct hs_req {
    enum hs_op op;
    int64_t user_id, account_id;
    char *a, *b, *c; /* key value | folder source_id flags | folder new_name */
    int rc;
    char *value;     /* state_get's result */
    struct mh_source_msg *msgs;
    size_t n, cap;
    mh_done_cb done;
    mh_state_cb state_cb;
    mh_source_list_cb list_cb;
    void *arg;
};

static void hs_free(void *arg)
{
    struct hs_req *r = arg;
    for (size_t i = 0; i < r->n; i++) {
        free((char *)r->msgs[i].source_id);
        free((char *)r->msgs[i].flags);
    }
    free(r->msgs);
    free(r->a);
    free(r->b);
    free(r->c);
    free(r->value);
    free(r);
}

static int hs_collect(void *arg, const struct mh_source_msg *m)
{
    struct hs_req *r = arg;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 256;
        struct mh_source_msg *n = realloc(r->msgs, cap * sizeof *n);
        if (n == NULL) {
            r->rc = MH_ENOMEM;
            return 1;
        }
        r->msgs = n;
        r->cap = cap;
    }
    struct mh_source_msg *d = &r->msgs[r->n];
    d->struct_size = sizeof *d;
    d->source_id = m->source_id ? strdup(m->source_id) : NULL;
    d->flags = m->flags ? strdup(m->flags) : NULL;
    d->gone = m->gone;
    r->n++;
    return 0;
}

/* Store thread. */
static void hs_run(struct mh_hub *hub, void *arg)
{
    struct hs_req *r = arg;
    switch (r->op) {
    case HS_STATE_GET: {
        int rc = mh_hub_state_get(hub, r->user_id, r->account_id, r->a, &r->value);
        r->rc = rc < 0 ? rc : MH_OK;
        break;
    }
    case HS_STATE_PUT:
        r->rc = mh_hub_state_put(hub, r->user_id, r->account_id, r->a, r->b);
        break;
    case HS_FLAGS:
        r->rc = mh_hub_msg_set_source(hub, r->user_id, r->account_id, r->a, r->b, r->c ? r->c : "", -1);
        break;
    case HS_GONE:
        r->rc = mh_hub_msg_set_source(hub, r->user_id, r->account_id, r->a, r->b, NULL, 1);
        break;
    case HS_FOLDER:
        r->rc = mh_hub_folder_change(hub, r->user_id, r->account_id, r->a, r->b);
        break;
    case HS_LIST: {
        r->rc = MH_OK;
        int rc = mh_hub_source_list(hub, r->user_id, r->account_id, r->a, hs_collect, r);
        if (rc < 0)
            r->rc = rc;
        break;
    }
    }
}

/* Loop thread, after the commit. */
static void hs_done(void *arg, int rc)
{
    struct hs_req *r = arg;
    int res = rc != MH_OK ? rc : r->rc;
    switch (r->op) {
    case HS_STATE_GET:
        if (r->state_cb)
            r->state_cb(r->arg, res, res == MH_OK ? r->value : NULL);
        break;
    case HS_LIST:
        if (r->list_cb)
            r->list_cb(r->arg, res, res == MH_OK ? r->msgs : NULL, res == MH_OK ? r->n : 0);
        break;
    default:
        if (r->done)
            r->done(r->arg, res);
        break;
    }
    hs_free(r);
}

static int hs_submit(struct mh_plugin_ctx *ctx, struct hs_req *r)
{
    struct mh_instance *inst = (struct mh_instance *)ctx;
    struct mh_storeq *q = mh_daemon_storeq(inst->d);
    int rc = MH_OK;
    if (inst->kind != MH_KIND_PROVIDER || inst->user_id <= 0 || inst->account_id <= 0 || q == NULL)
        rc = MH_EINVAL; /* only a provider with a known account has sync state */
    else if (inst->stopped)
        rc = MH_ECANCELED;
    if (rc != MH_OK) {
        hs_free(r);
        return rc;
    }
    r->user_id = inst->user_id;
    r->account_id = inst->account_id;
    rc = mh_storeq_call_release(q, inst, hs_run, hs_done, hs_free, r);
    if (rc != MH_PENDING)
        hs_free(r);
    return rc;
}

static struct hs_req *hs_new(enum hs_op op, const char *a, const char *b, const char *c)
{
    struct hs_req *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->op = op;
    r->a = a ? strdup(a) : NULL;
    r->b = b ? strdup(b) : NULL;
    r->c = c ? strdup(c) : NULL;
    if ((a && !r->a) || (b && !r->b) || (c && !r->c)) {
        hs_free(r);
        return NULL;
    }
    return r;
}

static int key_ok(const char *key)
{
    size_t n = key ? strlen(key) : 0;
    return n >= 1 && n <= STATE_KEY_MAX;
}

int mh_hs_state_get(struct mh_plugin_ctx *ctx, const char *key, mh_state_cb cb, void *arg)
{
    if (!key_ok(key))
        return MH_EINVAL;
    struct hs_req *r = hs_new(HS_STATE_GET, key, NULL, NULL);
    if (r == NULL)
        return MH_ENOMEM;
    r->state_cb = cb;
    r->arg = arg;
    return hs_submit(ctx, r);
}

int mh_hs_state_put(struct mh_plugin_ctx *ctx, const char *key, const char *value, mh_done_cb cb, void *arg)
{
    if (!key_ok(key) || (value && strlen(value) > STATE_VALUE_MAX))
        return MH_EINVAL;
    struct hs_req *r = hs_new(HS_STATE_PUT, key, value, NULL);
    if (r == NULL)
        return MH_ENOMEM;
    r->done = cb;
    r->arg = arg;
    return hs_submit(ctx, r);
}

int mh_hs_set_flags(struct mh_plugin_ctx *ctx, const char *folder, const char *source_id, const char *flags,
                    mh_done_cb cb, void *arg)
{
    if (folder == NULL || source_id == NULL)
        return MH_EINVAL;
    struct hs_req *r = hs_new(HS_FLAGS, folder, source_id, flags ? flags : "");
    if (r == NULL)
        return MH_ENOMEM;
    r->done = cb;
    r->arg = arg;
    return hs_submit(ctx, r);
}

int mh_hs_mark_gone(struct mh_plugin_ctx *ctx, const char *folder, const char *source_id, mh_done_cb cb,
                    void *arg)
{
    if (folder == NULL || source_id == NULL)
        return MH_EINVAL;
    struct hs_req *r = hs_new(HS_GONE, folder, source_id, NULL);
    if (r == NULL)
        return MH_ENOMEM;
    r->done = cb;
    r->arg = arg;
    return hs_submit(ctx, r);
}

int mh_hs_folder_change(struct mh_plugin_ctx *ctx, const char *folder, const char *new_name, mh_done_cb cb,
                        void *arg)
{
    if (folder == NULL || folder[0] == '\0' || (new_name && new_name[0] == '\0'))
        return MH_EINVAL;
    struct hs_req *r = hs_new(HS_FOLDER, folder, new_name, NULL);
    if (r == NULL)
        return MH_ENOMEM;
    r->done = cb;
    r->arg = arg;
    return hs_submit(ctx, r);
}

int mh_hs_source_list(struct mh_plugin_ctx *ctx, const char *folder, mh_source_list_cb cb, void *arg)
{
    if (folder == NULL)
        return MH_EINVAL;
    struct hs_req *r = hs_new(HS_LIST, folder, NULL, NULL);
    if (r == NULL)
        return MH_ENOMEM;
    r->list_cb = cb;
    r->arg = arg;
    return hs_submit(ctx, r);
}

#include "config.h"

#include "mh_storeq.h"
#include "mh_bus.h"
#include "mh_log.h"
#include "mh_loop.h"
#include "mh_util.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STOREQ_MAX_BATCH 1024
#define QUOTA_EVENT_MAX 8

enum req_type { REQ_OPEN, REQ_PUT, REQ_CLOSE };

struct quota_event {
    int max_reached;
    uint64_t previous, allocation, usage;
};

struct req {
    enum req_type type;
    void *owner; /* NULL once cancelled */
    char *who;
    struct mh_message msg;
    char *user, *account, *folder, *source_id, *flags;
    void *raw;
    mh_store_cb cb;
    void *arg;
    int rc;
    struct mh_message_ref ref;
    struct quota_event qev[QUOTA_EVENT_MAX];
    int n_qev;
    char *err;
    struct req *next;
};

/* Per-user accounting, touched only on the store thread. */
struct user_acct {
    char *user;
    uint64_t usage, alloc;
    int max_reported;
    struct user_acct *next;
};

struct mh_storeq {
    struct mh_loop *loop;
    struct mh_bus *bus;
    const struct mh_store_ops *ops;
    void *state;

    pthread_mutex_t lock;
    pthread_cond_t cond;    /* work queued, or quit */
    pthread_cond_t idle;    /* the thread finished a batch */
    pthread_t thread;
    int quit, busy;
    struct req *in_head, *in_tail;   /* queued for the thread */
    struct req *out_head, *out_tail; /* done, for the loop */
    size_t pending;
    struct mh_quota_policy policy;
    struct mh_async *async;

    struct user_acct *accts; /* store thread only */
};

static void req_free(struct req *r)
{
    free(r->who);
    free(r->user);
    free(r->account);
    free(r->folder);
    free(r->source_id);
    free(r->flags);
    free(r->raw);
    free(r->err);
    free(r);
}

static struct user_acct *acct_get(struct mh_storeq *q, const char *user, const struct mh_quota_policy *pol, int *rc_out)
{
    for (struct user_acct *a = q->accts; a; a = a->next)
        if (strcmp(a->user, user) == 0)
            return a;
    uint64_t bytes = 0, count = 0, alloc = 0;
    int rc = q->ops->usage(q->state, user, &bytes, &count);
    if (rc < 0) {
        *rc_out = rc;
        return NULL;
    }
    rc = q->ops->quota_get(q->state, user, &alloc);
    if (rc < 0) {
        *rc_out = rc;
        return NULL;
    }
    if (rc == 0) {
        alloc = pol->initial;
        rc = q->ops->quota_set(q->state, user, alloc, "initial");
        if (rc < 0) {
            *rc_out = rc;
            return NULL;
        }
    }
    struct user_acct *a = mh_xcalloc(1, sizeof *a);
    a->user = mh_xstrdup(user);
    a->usage = bytes;
    a->alloc = alloc;
    a->next = q->accts;
    q->accts = a;
    return a;
}

/*
 * The quota policy: after this message, free space must not fall below
 * extend_when_free_below; grow by extend_by until it does, up to max.  Mail
 * is refused only when it would not fit under max.
 */
static int quota_admit(struct mh_storeq *q, struct req *r, const struct mh_quota_policy *pol)
{
    int rc = 0;
    struct user_acct *a = acct_get(q, r->user, pol, &rc);
    if (a == NULL)
        return rc;
    uint64_t after = a->usage + r->msg.raw_len;
    while ((a->alloc < after || a->alloc - after < pol->extend_when_free_below) &&
           (pol->max == 0 || a->alloc < pol->max) && pol->extend_by > 0) {
        uint64_t prev = a->alloc;
        uint64_t next = a->alloc + pol->extend_by;
        if (pol->max && next > pol->max)
            next = pol->max;
        rc = q->ops->quota_set(q->state, r->user, next, "extended");
        if (rc < 0)
            return rc;
        a->alloc = next;
        if (r->n_qev < QUOTA_EVENT_MAX)
            r->qev[r->n_qev++] = (struct quota_event){0, prev, next, after};
    }
    if (after > a->alloc) {
        if (!a->max_reported && r->n_qev < QUOTA_EVENT_MAX) {
            r->qev[r->n_qev++] = (struct quota_event){1, a->alloc, a->alloc, a->usage};
            a->max_reported = 1;
        }
        return MH_EQUOTA;
    }
    return MH_OK;
}

static void process_put(struct mh_storeq *q, struct req *r, const struct mh_quota_policy *pol)
{
    r->ref.struct_size = sizeof r->ref;
    if (q->ops->has_source_id && r->source_id) {
        int have = q->ops->has_source_id(q->state, r->user, r->account, r->source_id);
        if (have == 1) {
            /* let the store fill in the id; it writes nothing for a duplicate */
            r->rc = q->ops->put_message(q->state, &r->msg, &r->ref);
            r->ref.duplicate = 1;
            return;
        }
    }
    int rc = quota_admit(q, r, pol);
    if (rc != MH_OK) {
        r->rc = rc;
        return;
    }
    r->rc = q->ops->put_message(q->state, &r->msg, &r->ref);
    if (r->rc == MH_OK && !r->ref.duplicate) {
        for (struct user_acct *a = q->accts; a; a = a->next)
            if (strcmp(a->user, r->user) == 0)
                a->usage += r->msg.raw_len;
    }
}

static void *store_thread(void *arg)
{
    struct mh_storeq *q = arg;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (q->in_head == NULL && !q->quit)
            pthread_cond_wait(&q->cond, &q->lock);
        if (q->in_head == NULL && q->quit)
            break;
        /* take a batch */
        struct req *batch = q->in_head, *last = batch;
        size_t n = 1;
        while (last->next && n < STOREQ_MAX_BATCH) {
            last = last->next;
            n++;
        }
        q->in_head = last->next;
        if (q->in_head == NULL)
            q->in_tail = NULL;
        last->next = NULL;
        struct mh_quota_policy pol = q->policy;
        q->busy = 1;
        pthread_mutex_unlock(&q->lock);

        int any_put = 0;
        for (struct req *r = batch; r; r = r->next) {
            switch (r->type) {
            case REQ_OPEN:
                r->rc = q->ops->open(q->state);
                break;
            case REQ_PUT:
                process_put(q, r, &pol);
                any_put = 1;
                break;
            case REQ_CLOSE:
                if (q->ops->flush)
                    q->ops->flush(q->state);
                if (q->ops->close)
                    q->ops->close(q->state);
                r->rc = MH_OK;
                break;
            }
        }
        /* a message is acknowledged only once its batch is committed */
        if (any_put && q->ops->flush) {
            int frc = q->ops->flush(q->state);
            if (frc < 0) {
                for (struct req *r = batch; r; r = r->next)
                    if (r->type == REQ_PUT && r->rc == MH_OK)
                        r->rc = MH_ERETRY;
                /* accounting may be off now: reload it from the store on next use */
                while (q->accts) {
                    struct user_acct *a = q->accts;
                    q->accts = a->next;
                    free(a->user);
                    free(a);
                }
            }
        }

        pthread_mutex_lock(&q->lock);
        if (q->out_tail)
            q->out_tail->next = batch;
        else
            q->out_head = batch;
        q->out_tail = last;
        q->busy = 0;
        pthread_cond_broadcast(&q->idle);
        pthread_mutex_unlock(&q->lock);
        if (q->async)
            mh_async_send(q->async);
        pthread_mutex_lock(&q->lock);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

static void emit_quota_events(struct mh_storeq *q, struct req *r)
{
    for (int i = 0; i < r->n_qev && q->bus; i++) {
        char data[256];
        const struct quota_event *e = &r->qev[i];
        if (e->max_reached) {
            snprintf(data, sizeof data, "{\"allocation\":%" PRIu64 ",\"usage\":%" PRIu64 ",\"account\":\"\"}",
                     e->allocation, e->usage);
            mh_logf(MH_LOG_WARN, "core", "user's allocation is at its maximum (%" PRIu64 " bytes): new mail stays on "
                    "the source", e->allocation);
            mh_bus_emit(q->bus, "quota.max_reached", "core", r->user, data, NULL);
        } else {
            snprintf(data, sizeof data, "{\"previous\":%" PRIu64 ",\"allocation\":%" PRIu64 ",\"usage\":%" PRIu64 "}",
                     e->previous, e->allocation, e->usage);
            mh_logf(MH_LOG_INFO, "core", "quota extended from %" PRIu64 " to %" PRIu64 " bytes", e->previous,
                    e->allocation);
            mh_bus_emit(q->bus, "quota.extended", "core", r->user, data, NULL);
        }
    }
}

/* Deliver finished requests on the loop thread. */
static void deliver(struct mh_storeq *q)
{
    pthread_mutex_lock(&q->lock);
    struct req *r = q->out_head;
    q->out_head = q->out_tail = NULL;
    pthread_mutex_unlock(&q->lock);
    while (r) {
        struct req *next = r->next;
        if (r->type == REQ_PUT) {
            emit_quota_events(q, r);
            pthread_mutex_lock(&q->lock);
            void *owner = r->owner;
            q->pending--;
            pthread_mutex_unlock(&q->lock);
            if (owner && r->cb)
                r->cb(r->arg, r->rc, r->rc == MH_OK ? &r->ref : NULL);
        }
        req_free(r);
        r = next;
    }
}

static void async_cb(void *arg) { deliver(arg); }

static void enqueue(struct mh_storeq *q, struct req *r)
{
    pthread_mutex_lock(&q->lock);
    if (q->in_tail)
        q->in_tail->next = r;
    else
        q->in_head = r;
    q->in_tail = r;
    if (r->type == REQ_PUT)
        q->pending++;
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

/* Run one control request synchronously (open/close), waiting for the thread. */
static int run_sync(struct mh_storeq *q, enum req_type type)
{
    struct req *r = mh_xcalloc(1, sizeof *r);
    r->type = type;
    enqueue(q, r);
    int rc = MH_ERR;
    for (;;) {
        pthread_mutex_lock(&q->lock);
        while (q->out_head == NULL && (q->busy || q->in_head))
            pthread_cond_wait(&q->idle, &q->lock);
        struct req *found = NULL;
        for (struct req *o = q->out_head; o; o = o->next)
            if (o == r)
                found = o;
        pthread_mutex_unlock(&q->lock);
        if (found) {
            rc = r->rc;
            break;
        }
        deliver(q); /* other completions queued before ours */
    }
    deliver(q);
    return rc;
}

struct mh_storeq *mh_storeq_new(struct mh_loop *loop, struct mh_bus *bus, const struct mh_store_ops *ops, void *state,
                                const struct mh_quota_policy *policy, char **err_out)
{
    struct mh_storeq *q = mh_xcalloc(1, sizeof *q);
    q->loop = loop;
    q->bus = bus;
    q->ops = ops;
    q->state = state;
    q->policy = *policy;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond, NULL);
    pthread_cond_init(&q->idle, NULL);
    if (loop)
        q->async = mh_async_new(loop, async_cb, q);
    if (pthread_create(&q->thread, NULL, store_thread, q) != 0) {
        *err_out = mh_xstrdup("cannot start the store thread");
        mh_async_free(&q->async);
        free(q);
        return NULL;
    }
    int rc = run_sync(q, REQ_OPEN);
    if (rc != MH_OK) {
        *err_out = mh_asprintf("the store failed to open (code %d)", rc);
        pthread_mutex_lock(&q->lock);
        q->quit = 1;
        pthread_cond_signal(&q->cond);
        pthread_mutex_unlock(&q->lock);
        pthread_join(q->thread, NULL);
        mh_async_free(&q->async);
        pthread_mutex_destroy(&q->lock);
        pthread_cond_destroy(&q->cond);
        pthread_cond_destroy(&q->idle);
        free(q);
        return NULL;
    }
    return q;
}

void mh_storeq_set_policy(struct mh_storeq *q, const struct mh_quota_policy *policy)
{
    pthread_mutex_lock(&q->lock);
    q->policy = *policy;
    pthread_mutex_unlock(&q->lock);
}

static char *dup_or_null(const char *s) { return s ? mh_xstrdup(s) : NULL; }

int mh_storeq_put(struct mh_storeq *q, void *owner, const char *who, const struct mh_message *msg, mh_store_cb cb,
                  void *arg)
{
    if (msg == NULL || msg->raw == NULL || msg->user == NULL || msg->account == NULL)
        return MH_EINVAL;
    struct req *r = calloc(1, sizeof *r);
    if (r == NULL)
        return MH_ENOMEM;
    r->type = REQ_PUT;
    r->owner = owner;
    r->who = dup_or_null(who);
    r->user = dup_or_null(msg->user);
    r->account = dup_or_null(msg->account);
    r->folder = dup_or_null(msg->folder ? msg->folder : "INBOX");
    r->source_id = dup_or_null(msg->source_id);
    r->flags = dup_or_null(msg->flags);
    r->raw = malloc(msg->raw_len ? msg->raw_len : 1);
    if (r->raw == NULL) {
        req_free(r);
        return MH_ENOMEM;
    }
    memcpy(r->raw, msg->raw, msg->raw_len);
    r->msg = (struct mh_message){.struct_size = sizeof r->msg,
                                 .user = r->user,
                                 .account = r->account,
                                 .folder = r->folder,
                                 .source_id = r->source_id,
                                 .raw = r->raw,
                                 .raw_len = msg->raw_len,
                                 .flags = r->flags,
                                 .internal_date = msg->struct_size > offsetof(struct mh_message, internal_date)
                                                      ? msg->internal_date
                                                      : 0};
    r->cb = cb;
    r->arg = arg;
    enqueue(q, r);
    return MH_PENDING;
}

void mh_storeq_cancel_owner(struct mh_storeq *q, void *owner)
{
    pthread_mutex_lock(&q->lock);
    for (struct req *r = q->in_head; r; r = r->next)
        if (r->owner == owner)
            r->owner = NULL;
    for (struct req *r = q->out_head; r; r = r->next)
        if (r->owner == owner)
            r->owner = NULL;
    /* a batch being processed is neither list: wait for it to land in out */
    while (q->busy)
        pthread_cond_wait(&q->idle, &q->lock);
    for (struct req *r = q->out_head; r; r = r->next)
        if (r->owner == owner)
            r->owner = NULL;
    pthread_mutex_unlock(&q->lock);
}

size_t mh_storeq_pending(struct mh_storeq *q)
{
    pthread_mutex_lock(&q->lock);
    size_t n = q->pending;
    pthread_mutex_unlock(&q->lock);
    return n;
}

void mh_storeq_free(struct mh_storeq **qp)
{
    struct mh_storeq *q = qp ? *qp : NULL;
    if (q == NULL)
        return;
    run_sync(q, REQ_CLOSE); /* everything queued before it is processed and delivered too */
    pthread_mutex_lock(&q->lock);
    q->quit = 1;
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->lock);
    pthread_join(q->thread, NULL);
    deliver(q);
    mh_async_free(&q->async);
    while (q->accts) {
        struct user_acct *a = q->accts;
        q->accts = a->next;
        free(a->user);
        free(a);
    }
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->cond);
    pthread_cond_destroy(&q->idle);
    free(q);
    *qp = NULL;
}

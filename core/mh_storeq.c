#include "config.h"

#include "mh_storeq.h"
#include "mh_search.h"
#include "mh_bus.h"
#include "mh_log.h"
#include "mh_loop.h"
#include "mh_util.h"
#include "mh_hub.h"
#include "mh_crypto.h"

#include <jansson.h>
#include <stddef.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STOREQ_MAX_BATCH 1024
/* The prep thread hands work on in small chunks, so that the store thread starts on a batch while the
 * rest of it is still being parsed: the stages overlap instead of taking turns. */
#define STOREQ_PREP_CHUNK 32
/* Deferred analysis (mh_hub_index_fetch/analyse/store) runs once the lane has had nothing to do for this long, a few
 * messages at a time, so that new mail never waits long behind it. */
#define STOREQ_INDEX_IDLE_MS 20
#define STOREQ_INDEX_STEP 32
#define STOREQ_INDEX_STARVE_MS 1000
#define STOREQ_INDEX_BACKOFF_MS 5000 /* after a failure of the store */

enum req_type { REQ_OPEN, REQ_PUT, REQ_CALL, REQ_SYNC, REQ_CLOSE, REQ_ANALYSE };

struct req {
    enum req_type type;
    void *owner; /* NULL once cancelled */
    char *provider; /* puts: the plugin, recorded on an account created by name */
    struct mh_hub_ingest in;
    char *user, *account, *folder, *source_id, *flags;
    void *raw;
    mh_store_cb cb;
    void *arg;
    mh_storeq_fn fn;
    mh_storeq_done done;
    void (*release)(void *arg); /* calls: run instead of done when the owner was cancelled */
    char *rematch_prefix;
    int notify;
    int rc;
    int sync_done; /* REQ_SYNC: set under the lock when fn has run */
    struct mh_hub_analysis *an; /* REQ_ANALYSE: opened on the store thread, analysed on the prep thread */
    struct req *next;
};

struct mh_storeq {
    struct mh_loop *loop;
    struct mh_bus *bus;
    const struct mh_store_ops *ops;
    void *state;
    unsigned char master_key[32];
    struct mh_hub *hub; /* store thread only (created by REQ_OPEN) */

    pthread_mutex_t lock;
    pthread_cond_t cond;    /* work queued, or quit */
    pthread_cond_t idle;    /* the thread finished a batch */
    pthread_t thread;
    int quit, busy;
    /* the prep thread parses and hashes puts ahead of the store thread, in order */
    pthread_t prep_thread;
    pthread_cond_t prep_cond;
    int prep_quit, prep_busy, prep_started;
    int64_t last_put_ms, last_index_ms; /* store thread: when it last stored a message, analysed some */
    int64_t an_cursor;                  /* store thread: the highest queued id handed to the prep thread */
    int an_inflight;                    /* analyses on their way through the prep thread; under lock */
    size_t prep_other;                  /* other requests queued for or in the prep thread; under lock */
    int defer; /* the hub analyses bodies later (SDK 1.3 store): the prep thread leaves them; under lock */
    struct req *p_head, *p_tail;     /* queued for the prep thread */
    struct req *in_head, *in_tail;   /* queued for the store thread */
    struct req *out_head, *out_tail; /* done, for the loop */
    size_t pending;
    struct mh_quota_policy policy;
    int policy_changed;
    struct mh_async *async;
    /* users' search keys, published by the hub (store thread) for the prep thread; under lock */
    struct skey {
        int64_t user_id;
        unsigned char key[32];
    } *skeys;
    size_t n_skeys, cap_skeys;
};

/* Store thread (mh_hub_set_key_hook). */
static void key_hook(void *arg, int64_t user_id, const unsigned char key[32])
{
    struct mh_storeq *q = arg;
    pthread_mutex_lock(&q->lock);
    size_t i = 0;
    while (i < q->n_skeys && q->skeys[i].user_id != user_id)
        i++;
    if (i == q->n_skeys && q->n_skeys == q->cap_skeys) {
        size_t cap = q->cap_skeys ? q->cap_skeys * 2 : 16;
        struct skey *n = realloc(q->skeys, cap * sizeof *n);
        if (n == NULL) {
            pthread_mutex_unlock(&q->lock);
            return; /* the store thread blinds instead */
        }
        q->skeys = n;
        q->cap_skeys = cap;
    }
    if (i == q->n_skeys)
        q->n_skeys++;
    q->skeys[i].user_id = user_id;
    memcpy(q->skeys[i].key, key, 32);
    pthread_mutex_unlock(&q->lock);
}

/* Prep thread: blind a put's search terms now when its user's key is known. */
static void prep_blind(struct mh_storeq *q, struct req *r)
{
    if (!r->in.prepared || r->in.search_tokens == NULL || r->in.user_id <= 0)
        return;
    unsigned char key[32];
    int found = 0;
    pthread_mutex_lock(&q->lock);
    for (size_t i = 0; i < q->n_skeys && !found; i++)
        if (q->skeys[i].user_id == r->in.user_id) {
            memcpy(key, q->skeys[i].key, 32);
            found = 1;
        }
    pthread_mutex_unlock(&q->lock);
    if (!found)
        return;
    r->in.search_blind = mh_search_blind(key, r->in.search_tokens);
    mh_wipe(key, sizeof key);
    if (r->in.search_blind != NULL) {
        free(r->in.search_tokens);
        r->in.search_tokens = NULL;
    }
}

static void req_free(struct req *r)
{
    mh_hub_ingest_clear(&r->in);
    mh_hub_analysis_free(&r->an);
    free(r->provider);
    free(r->user);
    free(r->account);
    free(r->folder);
    free(r->source_id);
    free(r->flags);
    free(r->rematch_prefix);
    free(r->raw);
    free(r);
}

static void process_put(struct mh_storeq *q, struct req *r)
{
    r->in.ref.struct_size = sizeof r->in.ref;
    r->rc = mh_hub_ingest(q->hub, &r->in);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Store thread, lock NOT held: open the next few queued messages and hand them to the prep thread, which
 * parses and blinds them while this thread goes on; they come back as a REQ_ANALYSE for the store.
 * Returns how many were handed on (0: none left above the cursor).
 */
static int start_analysis(struct mh_storeq *q, int own)
{
    struct mh_hub_analysis *a = NULL;
    int64_t last = 0;
    int n = mh_hub_index_fetch(q->hub, q->an_cursor, STOREQ_INDEX_STEP, &a, &last);
    if (n < 0) {
        mh_logf(MH_LOG_ERROR, "core", "reading the messages waiting for analysis failed (code %d): retried "
                "in %d s", n, STOREQ_INDEX_BACKOFF_MS / 1000);
        pthread_mutex_lock(&q->lock);
        q->last_put_ms = mono_ms() + STOREQ_INDEX_BACKOFF_MS; /* as if busy: no retry at once */
        pthread_mutex_unlock(&q->lock);
        return 0;
    }
    pthread_mutex_lock(&q->lock);
    if (n == 0) {
        /* the end of the queue: look again from its start once nothing is on its way */
        if (q->an_inflight == 0)
            q->an_cursor = 0;
        pthread_mutex_unlock(&q->lock);
        return 0;
    }
    q->an_cursor = last;
    if (own) {
        /* the prep thread has some already: this thread analyses these itself, so both CPUs work */
        q->an_inflight++;
        pthread_mutex_unlock(&q->lock);
        mh_hub_index_analyse(a);
        int done = mh_hub_index_store(q->hub, a);
        mh_hub_analysis_free(&a);
        int frc = q->ops->flush ? q->ops->flush(q->state) : MH_OK;
        pthread_mutex_lock(&q->lock);
        q->an_inflight--;
        q->last_index_ms = mono_ms();
        if (done < 0 || frc < 0) {
            mh_logf(MH_LOG_ERROR, "core", "storing the analysis of stored messages failed (code %d): they stay "
                    "queued, retried in %d s", done < 0 ? done : frc, STOREQ_INDEX_BACKOFF_MS / 1000);
            q->last_put_ms = mono_ms() + STOREQ_INDEX_BACKOFF_MS;
            if (frc < 0)
                mh_hub_forget_accounting(q->hub);
        }
        pthread_mutex_unlock(&q->lock);
        return n;
    }
    struct req *r = mh_xcalloc(1, sizeof *r);
    r->type = REQ_ANALYSE;
    r->an = a;
    q->an_inflight++;
    if (q->p_tail)
        q->p_tail->next = r;
    else
        q->p_head = r;
    q->p_tail = r;
    pthread_cond_signal(&q->prep_cond);
    pthread_mutex_unlock(&q->lock);
    return n;
}

/* Store thread, lock held: start_analysis() with the lane marked busy. */
static void analyse_now(struct mh_storeq *q, int own)
{
    q->busy = 1;
    pthread_mutex_unlock(&q->lock);
    start_analysis(q, own);
    pthread_mutex_lock(&q->lock);
    q->busy = 0;
    pthread_cond_broadcast(&q->idle);
}

/* Lock held: 1 when the lane may start analysing: nothing waits, and no message was put for
 * STOREQ_INDEX_IDLE_MS (calls do not count: they are reads); *wait_ms: how long until then. */
static int may_analyse(struct mh_storeq *q, int64_t *wait_ms)
{
    *wait_ms = -1;
    if (q->hub == NULL || !mh_hub_index_wanted(q->hub) || q->quit || q->in_head != NULL || q->prep_other > 0 ||
        q->an_inflight > 1)
        return 0;
    int64_t wait = q->last_put_ms + STOREQ_INDEX_IDLE_MS - mono_ms();
    if (wait > 0) {
        *wait_ms = wait;
        return 0;
    }
    return 1;
}

/* Store thread, lock held, nothing queued for it, analysis wanted: start an analysis once the lane is
 * idle, else wait for that or for work. */
static void idle_index(struct mh_storeq *q)
{
    int64_t wait;
    if (may_analyse(q, &wait)) {
        analyse_now(q, q->an_inflight > 0);
        return;
    }
    if (wait < 0) {
        pthread_cond_wait(&q->cond, &q->lock); /* work on its way: the prep thread signals */
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)(wait % 1000) * 1000000L;
    ts.tv_sec += wait / 1000 + ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&q->cond, &q->lock, &ts);
}

static void *store_thread(void *arg)
{
    struct mh_storeq *q = arg;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (q->in_head == NULL && !q->quit) {
            if (q->hub != NULL && mh_hub_index_wanted(q->hub))
                idle_index(q);
            else
                pthread_cond_wait(&q->cond, &q->lock);
        }
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
        int pol_changed = q->policy_changed;
        q->policy_changed = 0;
        q->busy = 1;
        pthread_mutex_unlock(&q->lock);

        if (pol_changed && q->hub)
            mh_hub_set_policy(q->hub, &pol);
        int any_write = 0, any_put = 0;
        for (struct req *r = batch; r; r = r->next) {
            switch (r->type) {
            case REQ_OPEN:
                r->rc = q->ops->open(q->state);
                if (r->rc == MH_OK) {
                    q->hub = mh_hub_new(q->ops, q->state, q->master_key, &pol);
                    mh_hub_set_key_hook(q->hub, key_hook, q);
                    pthread_mutex_lock(&q->lock);
                    q->defer = mh_hub_defers_analysis(q->hub);
                    pthread_mutex_unlock(&q->lock);
                }
                mh_wipe(q->master_key, sizeof q->master_key);
                break;
            case REQ_PUT:
                process_put(q, r);
                any_write = any_put = 1;
                break;
            case REQ_CALL:
            case REQ_SYNC:
                r->fn(q->hub, r->arg);
                r->rc = MH_OK;
                any_write = 1;
                break;
            case REQ_ANALYSE: {
                /* the next few are parsed while these are written */
                int64_t wait;
                pthread_mutex_lock(&q->lock);
                int more = r->next == NULL && may_analyse(q, &wait);
                pthread_mutex_unlock(&q->lock);
                if (more)
                    start_analysis(q, 0);
                int done = q->hub ? mh_hub_index_store(q->hub, r->an) : 0;
                if (done < 0) {
                    mh_logf(MH_LOG_ERROR, "core", "storing the analysis of stored messages failed (code %d): they "
                            "stay queued, retried in %d s", done, STOREQ_INDEX_BACKOFF_MS / 1000);
                    pthread_mutex_lock(&q->lock);
                    q->last_put_ms = mono_ms() + STOREQ_INDEX_BACKOFF_MS;
                    pthread_mutex_unlock(&q->lock);
                }
                any_write = 1;
                break;
            }
            case REQ_CLOSE:
                if (q->ops->flush)
                    q->ops->flush(q->state);
                mh_hub_free(&q->hub);
                if (q->ops->close)
                    q->ops->close(q->state);
                r->rc = MH_OK;
                break;
            }
        }
        /* a message (or a call's writes) is acknowledged only once its batch is committed */
        if (any_write && q->ops->flush) {
            int frc = q->ops->flush(q->state);
            if (frc < 0) {
                mh_logf(MH_LOG_ERROR, "core", "the store failed to commit a batch of %zu requests (code %d): "
                        "they are reported as failed and will be retried", n, frc);
                for (struct req *r = batch; r; r = r->next)
                    if ((r->type == REQ_PUT || r->type == REQ_CALL || r->type == REQ_SYNC) && r->rc == MH_OK)
                        r->rc = MH_ERETRY;
                /* accounting may be off now: reload it from the store on next use */
                if (q->hub)
                    mh_hub_forget_accounting(q->hub);
            }
        }

        pthread_mutex_lock(&q->lock);
        for (struct req *r = batch, *next; r; r = next) {
            next = r->next;
            r->next = NULL;
            if (r->type == REQ_PUT || r->type == REQ_CALL) {
                if (q->out_tail)
                    q->out_tail->next = r;
                else
                    q->out_head = r;
                q->out_tail = r;
            } else if (r->type == REQ_ANALYSE) {
                q->an_inflight--;
                q->last_index_ms = mono_ms();
                req_free(r);
            } else {
                r->sync_done = 1; /* run_sync() owns it */
            }
        }
        q->busy = 0;
        pthread_cond_broadcast(&q->idle);
        pthread_mutex_unlock(&q->lock);
        if (q->async)
            mh_async_send(q->async);
        pthread_mutex_lock(&q->lock);
        if (any_put)
            q->last_put_ms = mono_ms();
        /* a lane that never goes idle still analyses a few messages a second */
        if (q->hub != NULL && mh_hub_index_wanted(q->hub) && q->an_inflight == 0 &&
            mono_ms() - q->last_index_ms >= STOREQ_INDEX_STARVE_MS)
            analyse_now(q, 1);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

static void emit_quota_events(struct mh_storeq *q, struct req *r)
{
    for (int i = 0; i < r->in.n_ev && q->bus; i++) {
        const struct mh_hub_quota_event *e = &r->in.ev[i];
        json_t *data;
        if (e->max_reached) {
            data = json_pack("{sI sI ss}", "allocation", (json_int_t)e->allocation, "usage", (json_int_t)e->usage,
                             "account", e->account);
            mh_logf(MH_LOG_WARN, "core", "user %s: the allocation is at its maximum (%" PRIu64 " bytes): new mail of "
                    "account %s stays on the source", e->user, e->allocation, e->account);
        } else {
            data = json_pack("{sI sI sI}", "previous", (json_int_t)e->previous, "allocation",
                             (json_int_t)e->allocation, "usage", (json_int_t)e->usage);
            mh_logf(MH_LOG_INFO, "core", "user %s: quota extended from %" PRIu64 " to %" PRIu64 " bytes", e->user,
                    e->previous, e->allocation);
        }
        char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
        if (text)
            mh_bus_emit(q->bus, e->max_reached ? "quota.max_reached" : "quota.extended", "core", e->user, text,
                        NULL);
        free(text);
        json_decref(data);
    }
}

/* New mail a provider flagged (mh_message.notify): the event names the user, account and folder, with the
 * headers decoded on the prep thread. */
static void emit_mail_received(struct mh_storeq *q, struct req *r)
{
    if (q->bus == NULL || r->user == NULL)
        return;
    const struct mh_mime_headers *h = &r->in.hdr;
    json_t *data = json_pack("{ss ss ss ss sI sI}", "account", r->account ? r->account : "", "folder",
                             r->folder ? r->folder : "INBOX", "from", h->from ? h->from : "", "subject",
                             h->subject ? h->subject : "", "size", (json_int_t)r->in.raw_len, "store_id",
                             (json_int_t)r->in.ref.id);
    if (data && h->message_id)
        json_object_set_new(data, "message_id", json_string(h->message_id));
    char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
    if (text)
        mh_bus_emit(q->bus, "mail.received", "core", r->user, text, NULL);
    free(text);
    json_decref(data);
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
        r->next = NULL;
        pthread_mutex_lock(&q->lock);
        void *owner = r->owner;
        q->pending--;
        pthread_mutex_unlock(&q->lock);
        if (r->type == REQ_PUT) {
            emit_quota_events(q, r);
            if (r->notify && r->rc == MH_OK && !r->in.ref.duplicate)
                emit_mail_received(q, r);
            if (owner && r->cb)
                r->cb(r->arg, r->rc, r->rc == MH_OK ? &r->in.ref : NULL);
        } else if (r->type == REQ_CALL) {
            if (owner && r->done)
                r->done(r->arg, r->rc);
            else if (!owner && r->release)
                r->release(r->arg);
        }
        req_free(r);
        r = next;
    }
}

static void async_cb(void *arg) { deliver(arg); }

static void enqueue(struct mh_storeq *q, struct req *r)
{
    pthread_mutex_lock(&q->lock);
    if (q->p_tail)
        q->p_tail->next = r;
    else
        q->p_head = r;
    q->p_tail = r;
    if (r->type == REQ_PUT || r->type == REQ_CALL)
        q->pending++;
    q->prep_other++;
    pthread_cond_signal(&q->prep_cond);
    pthread_mutex_unlock(&q->lock);
}

/* Parse and hash puts (no store, no keys needed), then pass everything on in order. */
static void *prep_thread(void *arg)
{
    struct mh_storeq *q = arg;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (q->p_head == NULL && !q->prep_quit)
            pthread_cond_wait(&q->prep_cond, &q->lock);
        if (q->p_head == NULL)
            break;
        struct req *batch = q->p_head, *last = batch;
        size_t n = 1;
        while (last->next && n < STOREQ_PREP_CHUNK) {
            last = last->next;
            n++;
        }
        q->p_head = last->next;
        if (q->p_head == NULL)
            q->p_tail = NULL;
        last->next = NULL;
        q->prep_busy = 1;
        int defer = q->defer;
        pthread_mutex_unlock(&q->lock);
        for (struct req *r = batch; r; r = r->next)
            if (r->type == REQ_ANALYSE) {
                mh_hub_index_analyse(r->an);
            } else if (r->type == REQ_PUT) {
                r->in.defer_analysis = defer;
                mh_hub_prepare(&r->in);
                prep_blind(q, r);
            }
        pthread_mutex_lock(&q->lock);
        for (struct req *r = batch; r; r = r->next)
            if (r->type != REQ_ANALYSE)
                q->prep_other--;
        if (q->in_tail)
            q->in_tail->next = batch;
        else
            q->in_head = batch;
        q->in_tail = last;
        q->prep_busy = 0;
        pthread_cond_signal(&q->cond);
        pthread_cond_broadcast(&q->idle);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

static void stop_threads(struct mh_storeq *q)
{
    pthread_mutex_lock(&q->lock);
    q->prep_quit = 1;
    pthread_cond_signal(&q->prep_cond);
    pthread_mutex_unlock(&q->lock);
    if (q->prep_started)
        pthread_join(q->prep_thread, NULL);
    pthread_mutex_lock(&q->lock);
    q->quit = 1;
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->lock);
    pthread_join(q->thread, NULL);
}

/*
 * Run one request synchronously, delivering other completions meanwhile.
 * The thread appends finished batches to `out`; we pick ours out of it.
 */
static int run_sync(struct mh_storeq *q, struct req *r)
{
    enqueue(q, r);
    for (;;) {
        pthread_mutex_lock(&q->lock);
        while (!r->sync_done && q->out_head == NULL)
            pthread_cond_wait(&q->idle, &q->lock);
        int done = r->sync_done;
        pthread_mutex_unlock(&q->lock);
        deliver(q); /* completions queued before ours, in order */
        if (done)
            break;
    }
    int rc = r->rc;
    req_free(r);
    return rc;
}

struct mh_storeq *mh_storeq_new(struct mh_loop *loop, struct mh_bus *bus, const struct mh_store_ops *ops, void *state,
                                const unsigned char master_key[32], const struct mh_quota_policy *policy,
                                char **err_out)
{
    struct mh_storeq *q = mh_xcalloc(1, sizeof *q);
    q->loop = loop;
    q->bus = bus;
    q->ops = ops;
    q->state = state;
    q->policy = *policy;
    memcpy(q->master_key, master_key, sizeof q->master_key);
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond, NULL);
    pthread_cond_init(&q->idle, NULL);
    if (loop)
        q->async = mh_async_new(loop, async_cb, q);
    pthread_cond_init(&q->prep_cond, NULL);
    if (pthread_create(&q->prep_thread, NULL, prep_thread, q) == 0) {
        q->prep_started = 1;
        pthread_setname_np(q->prep_thread, "store-prep");
    }
    if (!q->prep_started || pthread_create(&q->thread, NULL, store_thread, q) != 0) {
        if (q->prep_started) {
            pthread_mutex_lock(&q->lock);
            q->prep_quit = 1;
            pthread_cond_signal(&q->prep_cond);
            pthread_mutex_unlock(&q->lock);
            pthread_join(q->prep_thread, NULL);
        }
        *err_out = mh_xstrdup("cannot start the store threads");
        pthread_cond_destroy(&q->prep_cond);
        mh_wipe(q->master_key, sizeof q->master_key);
        mh_async_free(&q->async);
        free(q);
        return NULL;
    }
    pthread_setname_np(q->thread, "store");
    struct req *r = mh_xcalloc(1, sizeof *r);
    r->type = REQ_OPEN;
    int rc = run_sync(q, r);
    if (rc != MH_OK) {
        *err_out = mh_asprintf("the store failed to open (code %d)", rc);
        stop_threads(q);
        mh_async_free(&q->async);
        pthread_mutex_destroy(&q->lock);
        pthread_cond_destroy(&q->cond);
        pthread_cond_destroy(&q->idle);
        pthread_cond_destroy(&q->prep_cond);
        free(q);
        return NULL;
    }
    return q;
}

void mh_storeq_set_policy(struct mh_storeq *q, const struct mh_quota_policy *policy)
{
    pthread_mutex_lock(&q->lock);
    q->policy = *policy;
    q->policy_changed = 1;
    pthread_mutex_unlock(&q->lock);
}

static char *dup_or_null(const char *s) { return s ? mh_xstrdup(s) : NULL; }

int mh_storeq_put(struct mh_storeq *q, void *owner, const char *provider, int64_t user_id, int64_t account_id,
                  const struct mh_message *msg, mh_store_cb cb, void *arg)
{
    if (msg == NULL || msg->raw == NULL || (user_id <= 0 && msg->user == NULL) ||
        (account_id <= 0 && msg->account == NULL))
        return MH_EINVAL;
    struct req *r = calloc(1, sizeof *r);
    if (r == NULL)
        return MH_ENOMEM;
    r->type = REQ_PUT;
    r->owner = owner;
    r->provider = dup_or_null(provider);
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
    r->in.user_id = user_id;
    r->in.account_id = account_id;
    r->in.provider = r->provider;
    r->in.user = r->user;
    r->in.account = r->account;
    r->in.folder = r->folder;
    r->in.source_id = r->source_id;
    r->in.flags = r->flags;
    r->in.raw = r->raw;
    r->in.raw_len = msg->raw_len;
    r->in.internal_date =
        msg->struct_size > offsetof(struct mh_message, internal_date) ? msg->internal_date : 0;
    if (msg->struct_size >= offsetof(struct mh_message, rematch_prefix) + sizeof msg->rematch_prefix) {
        r->notify = msg->notify != 0;
        r->rematch_prefix = dup_or_null(msg->rematch_prefix);
        r->in.rematch_prefix = r->rematch_prefix;
    }
    r->cb = cb;
    r->arg = arg;
    enqueue(q, r);
    return MH_PENDING;
}

int mh_storeq_call(struct mh_storeq *q, void *owner, mh_storeq_fn fn, mh_storeq_done done, void *arg)
{
    return mh_storeq_call_release(q, owner, fn, done, NULL, arg);
}

int mh_storeq_call_release(struct mh_storeq *q, void *owner, mh_storeq_fn fn, mh_storeq_done done,
                           void (*release)(void *arg), void *arg)
{
    struct req *r = calloc(1, sizeof *r);
    if (r == NULL)
        return MH_ENOMEM;
    r->type = REQ_CALL;
    r->owner = owner;
    r->fn = fn;
    r->done = done;
    r->release = release;
    r->arg = arg;
    enqueue(q, r);
    return MH_PENDING;
}

void mh_storeq_call_sync(struct mh_storeq *q, mh_storeq_fn fn, void *arg)
{
    struct req *r = mh_xcalloc(1, sizeof *r);
    r->type = REQ_SYNC;
    r->fn = fn;
    r->arg = arg;
    run_sync(q, r);
}

void mh_storeq_cancel_owner(struct mh_storeq *q, void *owner)
{
    pthread_mutex_lock(&q->lock);
    /* a batch being prepared or stored is in no list: wait for it to land in the next one */
    while (q->busy || q->prep_busy)
        pthread_cond_wait(&q->idle, &q->lock);
    struct req *lists[3] = {q->p_head, q->in_head, q->out_head};
    for (int i = 0; i < 3; i++)
        for (struct req *r = lists[i]; r; r = r->next)
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
    struct req *r = mh_xcalloc(1, sizeof *r);
    r->type = REQ_CLOSE;
    run_sync(q, r); /* everything queued before it is processed and delivered too */
    stop_threads(q);
    deliver(q);
    mh_async_free(&q->async);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->cond);
    pthread_cond_destroy(&q->idle);
    pthread_cond_destroy(&q->prep_cond);
    if (q->skeys != NULL)
        mh_wipe(q->skeys, q->cap_skeys * sizeof *q->skeys);
    free(q->skeys);
    free(q);
    *qp = NULL;
}

/*
 * Worker pool: N threads take jobs from one FIFO queue; a finished job goes on a
 * "done" list and the loop is woken with an mh_async, whose callback runs the
 * completions on the loop thread.  One mutex guards the queue, the done list and
 * each worker's running job; two condition variables wake workers (new work,
 * shutdown) and the loop thread (a job finished, for cancel_owner and drain).
 *
 * Completions are taken off the done list one at a time, so a completion that calls
 * mh_pool_drain() or mh_pool_cancel_owner() finds the rest still there.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mh_loop.h"
#include "mh_pool.h"

#define MH_POOL_MAX_THREADS 64u

struct mh_pool_job {
    struct mh_pool_job *next;
    void *owner;
    mh_work_fn fn;
    mh_work_done_cb done;
    void *arg;
    int rc;
};

/* A FIFO of jobs. */
struct mh_pool_fifo {
    struct mh_pool_job *head, *tail;
    size_t n;
};

struct mh_pool_worker {
    struct mh_pool *pool;
    pthread_t tid;
    unsigned index;
    struct mh_pool_job *running;
};

struct mh_pool {
    struct mh_loop *loop;
    struct mh_async *async;
    char *name;
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* workers: a job was queued, or stopping */
    pthread_cond_t done_cv; /* loop thread: a job finished */
    struct mh_pool_fifo queue;
    struct mh_pool_fifo done;
    size_t n_running;
    int stopping;
    unsigned nthreads;
    struct mh_pool_worker *workers;
};

static void fifo_push(struct mh_pool_fifo *f, struct mh_pool_job *j)
{
    j->next = NULL;
    if (f->tail != NULL)
        f->tail->next = j;
    else
        f->head = j;
    f->tail = j;
    f->n++;
}

static struct mh_pool_job *fifo_pop(struct mh_pool_fifo *f)
{
    struct mh_pool_job *j = f->head;
    if (j != NULL) {
        f->head = j->next;
        if (f->head == NULL)
            f->tail = NULL;
        f->n--;
        j->next = NULL;
    }
    return j;
}

/* Move every job of `owner` (all jobs if `all`) from `from` to the end of `to`, in order. */
static void fifo_take_owner(struct mh_pool_fifo *from, struct mh_pool_fifo *to, void *owner, int all)
{
    struct mh_pool_fifo keep = {0};
    struct mh_pool_job *j;
    while ((j = fifo_pop(from)) != NULL)
        fifo_push((all || j->owner == owner) ? to : &keep, j);
    *from = keep;
}

/* Run a completion on the loop thread and release the job. */
static void job_finish(struct mh_pool_job *j, int rc)
{
    if (j->done != NULL)
        j->done(j->arg, rc);
    free(j);
}

static void fifo_finish_all(struct mh_pool_fifo *f, int rc_override)
{
    struct mh_pool_job *j;
    while ((j = fifo_pop(f)) != NULL)
        job_finish(j, rc_override ? rc_override : j->rc);
}

/* Deliver completions already on the done list when called (not those added meanwhile). */
static void pool_deliver(struct mh_pool *pool)
{
    pthread_mutex_lock(&pool->mu);
    size_t n = pool->done.n;
    pthread_mutex_unlock(&pool->mu);
    while (n-- > 0) {
        pthread_mutex_lock(&pool->mu);
        struct mh_pool_job *j = fifo_pop(&pool->done);
        pthread_mutex_unlock(&pool->mu);
        if (j == NULL)
            break; /* a nested cancel_owner or drain delivered it */
        job_finish(j, j->rc);
    }
}

static void pool_async_cb(void *arg)
{
    pool_deliver(arg);
}

static void *worker_main(void *arg)
{
    struct mh_pool_worker *w = arg;
    struct mh_pool *pool = w->pool;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (!pool->stopping && pool->queue.head == NULL)
            pthread_cond_wait(&pool->work_cv, &pool->mu);
        struct mh_pool_job *j = fifo_pop(&pool->queue);
        if (j == NULL)
            break; /* stopping, and the queue was emptied by mh_pool_free */
        w->running = j;
        pool->n_running++;
        pthread_mutex_unlock(&pool->mu);

        j->fn(j->arg);
        j->rc = MH_OK;

        pthread_mutex_lock(&pool->mu);
        w->running = NULL;
        pool->n_running--;
        fifo_push(&pool->done, j);
        pthread_cond_broadcast(&pool->done_cv);
        /* ev_async_send is thread-safe; a burst of sends collapses into one wake-up. */
        mh_async_send(pool->async);
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

struct mh_pool *mh_pool_new(struct mh_loop *loop, unsigned nthreads, const char *name)
{
    if (loop == NULL || nthreads < 1 || nthreads > MH_POOL_MAX_THREADS)
        return NULL;
    struct mh_pool *pool = calloc(1, sizeof *pool);
    if (pool == NULL)
        return NULL;
    pool->loop = loop;
    pool->name = strdup(name != NULL ? name : "pool");
    pool->workers = calloc(nthreads, sizeof *pool->workers);
    pool->async = mh_async_new(loop, pool_async_cb, pool);
    if (pool->name == NULL || pool->workers == NULL || pool->async == NULL) {
        mh_async_free(&pool->async);
        free(pool->workers);
        free(pool->name);
        free(pool);
        return NULL;
    }
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->work_cv, NULL);
    pthread_cond_init(&pool->done_cv, NULL);

    /* Workers block every signal, so that signals reach the loop thread's handlers. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (unsigned i = 0; i < nthreads; i++) {
        struct mh_pool_worker *w = &pool->workers[i];
        w->pool = pool;
        w->index = i;
        if (pthread_create(&w->tid, NULL, worker_main, w) != 0)
            break;
        pool->nthreads++;
#if defined(__GLIBC__)
        char tname[16];
        snprintf(tname, sizeof tname, "%.10s-%u", pool->name, i);
        pthread_setname_np(w->tid, tname);
#endif
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pool->nthreads == 0) {
        mh_pool_free(&pool);
        return NULL;
    }
    return pool;
}

int mh_pool_submit(struct mh_pool *pool, void *owner, mh_work_fn fn, mh_work_done_cb done, void *arg)
{
    if (pool == NULL || fn == NULL)
        return MH_EINVAL;
    struct mh_pool_job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return MH_ENOMEM;
    j->owner = owner;
    j->fn = fn;
    j->done = done;
    j->arg = arg;
    pthread_mutex_lock(&pool->mu);
    if (pool->stopping) {
        pthread_mutex_unlock(&pool->mu);
        free(j);
        return MH_ECANCELED;
    }
    fifo_push(&pool->queue, j);
    pthread_cond_signal(&pool->work_cv);
    pthread_mutex_unlock(&pool->mu);
    return MH_OK;
}

static int owner_running(struct mh_pool *pool, void *owner)
{
    for (unsigned i = 0; i < pool->nthreads; i++)
        if (pool->workers[i].running != NULL && pool->workers[i].running->owner == owner)
            return 1;
    return 0;
}

void mh_pool_cancel_owner(struct mh_pool *pool, void *owner)
{
    if (pool == NULL)
        return;
    struct mh_pool_fifo canceled = {0}, finished = {0};
    pthread_mutex_lock(&pool->mu);
    fifo_take_owner(&pool->queue, &canceled, owner, 0);
    while (owner_running(pool, owner))
        pthread_cond_wait(&pool->done_cv, &pool->mu);
    fifo_take_owner(&pool->done, &finished, owner, 0);
    pthread_mutex_unlock(&pool->mu);
    /* Submission order: what ran was queued before what was still waiting. */
    fifo_finish_all(&finished, 0);
    fifo_finish_all(&canceled, MH_ECANCELED);
}

void mh_pool_drain(struct mh_pool *pool)
{
    if (pool == NULL)
        return;
    for (;;) {
        pthread_mutex_lock(&pool->mu);
        while (pool->queue.n > 0 || pool->n_running > 0)
            pthread_cond_wait(&pool->done_cv, &pool->mu);
        int empty = pool->done.n == 0;
        pthread_mutex_unlock(&pool->mu);
        if (empty)
            break;
        /* Completions may submit more work: go round until nothing is left. */
        pool_deliver(pool);
    }
}

size_t mh_pool_pending(struct mh_pool *pool)
{
    if (pool == NULL)
        return 0;
    pthread_mutex_lock(&pool->mu);
    size_t n = pool->queue.n + pool->n_running + pool->done.n;
    pthread_mutex_unlock(&pool->mu);
    return n;
}

void mh_pool_free(struct mh_pool **poolp)
{
    if (poolp == NULL || *poolp == NULL)
        return;
    struct mh_pool *pool = *poolp;
    struct mh_pool_fifo canceled = {0}, finished = {0};
    pthread_mutex_lock(&pool->mu);
    pool->stopping = 1;
    fifo_take_owner(&pool->queue, &canceled, NULL, 1);
    pthread_cond_broadcast(&pool->work_cv);
    pthread_mutex_unlock(&pool->mu);
    for (unsigned i = 0; i < pool->nthreads; i++)
        pthread_join(pool->workers[i].tid, NULL);
    /* No worker is left: the lists are ours without the lock. */
    fifo_take_owner(&pool->done, &finished, NULL, 1);
    fifo_finish_all(&finished, 0);
    fifo_finish_all(&canceled, MH_ECANCELED);
    mh_async_free(&pool->async);
    pthread_cond_destroy(&pool->done_cv);
    pthread_cond_destroy(&pool->work_cv);
    pthread_mutex_destroy(&pool->mu);
    free(pool->workers);
    free(pool->name);
    free(pool);
    *poolp = NULL;
}

/*
 * A small pool of worker threads for blocking work.  Completions are posted
 * back to the loop (mh_async) and run there in submission order per worker.
 */
#ifndef MH_POOL_H
#define MH_POOL_H

#include <mailhub/plugin.h>

struct mh_loop;
struct mh_pool;

/** Start `nthreads` workers (1..64). */
struct mh_pool *mh_pool_new(struct mh_loop *loop, unsigned nthreads, const char *name);
/**
 * Queue fn(arg) for a worker; done(arg, MH_OK) then runs on the loop.
 * Returns MH_OK or MH_ENOMEM / MH_ECANCELED (pool shutting down).  Thread: loop.
 */
int mh_pool_submit(struct mh_pool *pool, void *owner, mh_work_fn fn, mh_work_done_cb done, void *arg);
/**
 * Cancel the owner's queued work (done runs with MH_ECANCELED, now) and
 * block until its running work has finished (its done then runs with MH_OK,
 * now).  After it returns no callback for `owner` is pending.  Thread: loop.
 */
void mh_pool_cancel_owner(struct mh_pool *pool, void *owner);
/** Block until every queued and running job is done and its completion has run.  Thread: loop. */
void mh_pool_drain(struct mh_pool *pool);
/** Queued + running + completed-but-not-delivered jobs. */
size_t mh_pool_pending(struct mh_pool *pool);
/**
 * Cancel queued work (done with MH_ECANCELED), join the workers, free; sets *pool NULL.
 * Running work is waited for (its done runs with MH_OK).  Call it before mh_loop_free().
 */
void mh_pool_free(struct mh_pool **pool);

#endif

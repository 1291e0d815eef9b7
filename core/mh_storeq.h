/*
 * The store lane: one thread that owns the store instance and the hub data
 * layer (mh_hub.h), runs every store operation, batches commits, and applies
 * the quota-extension policy the core enforces on top of every backend.
 */
#ifndef MH_STOREQ_H
#define MH_STOREQ_H

#include <mailhub/store.h>

struct mh_loop;
struct mh_bus;
struct mh_storeq;
struct mh_hub;

struct mh_quota_policy {
    uint64_t initial, extend_when_free_below, extend_by, max; /* max 0: none */
};

/**
 * Start the lane, open the store on it and create the hub over it
 * (blocking).  NULL with *err_out on failure.
 */
struct mh_storeq *mh_storeq_new(struct mh_loop *loop, struct mh_bus *bus, const struct mh_store_ops *ops,
                                void *state, const unsigned char master_key[32],
                                const struct mh_quota_policy *policy, char **err_out);
void mh_storeq_set_policy(struct mh_storeq *q, const struct mh_quota_policy *policy);

/**
 * Queue a put; cb runs on the loop after the message is durably committed.
 * user_id/account_id: 0 to resolve msg->user / msg->account by name (the
 * user and account are created if missing: mailhub.yaml's providers), with
 * `provider` the plugin's name recorded on such an account.
 */
int mh_storeq_put(struct mh_storeq *q, void *owner, const char *provider, int64_t user_id, int64_t account_id,
                  const struct mh_message *msg, mh_store_cb cb, void *arg);

/**
 * Run fn(hub, arg) on the store thread, in order with the puts, then
 * done(arg, rc) on the loop once the batch it ran in was committed: rc is
 * MH_OK, or MH_ERETRY when the commit failed (whatever fn wrote is lost:
 * report a failure).  Returns MH_PENDING.  `owner` as for puts:
 * mh_storeq_cancel_owner() suppresses done.
 */
typedef void (*mh_storeq_fn)(struct mh_hub *hub, void *arg);
typedef void (*mh_storeq_done)(void *arg, int rc);
int mh_storeq_call(struct mh_storeq *q, void *owner, mh_storeq_fn fn, mh_storeq_done done, void *arg);
/** As mh_storeq_call; when `owner` is cancelled, release(arg) runs on the loop instead of done. */
int mh_storeq_call_release(struct mh_storeq *q, void *owner, mh_storeq_fn fn, mh_storeq_done done,
                           void (*release)(void *arg), void *arg);
/** Run fn on the store thread and wait for it (start-up and tests only: blocks the loop). */
void mh_storeq_call_sync(struct mh_storeq *q, mh_storeq_fn fn, void *arg);

/** Forget callbacks for `owner` (it is being freed); the work itself still completes. */
void mh_storeq_cancel_owner(struct mh_storeq *q, void *owner);
size_t mh_storeq_pending(struct mh_storeq *q);
/** Finish queued work, deliver completions, close the store, join; sets *q to NULL. */
void mh_storeq_free(struct mh_storeq **q);

#endif

/*
 * The store lane: one thread that owns the store instance and runs every
 * store operation, batching commits, and the quota-extension policy that the
 * core enforces on top of every store backend.
 */
#ifndef MH_STOREQ_H
#define MH_STOREQ_H

#include <mailhub/store.h>

struct mh_loop;
struct mh_bus;
struct mh_storeq;

struct mh_quota_policy {
    uint64_t initial, extend_when_free_below, extend_by, max; /* max 0: none */
};

/** Start the lane and open the store on it (blocking).  NULL with *err_out on failure. */
struct mh_storeq *mh_storeq_new(struct mh_loop *loop, struct mh_bus *bus, const struct mh_store_ops *ops,
                                void *state, const struct mh_quota_policy *policy, char **err_out);
void mh_storeq_set_policy(struct mh_storeq *q, const struct mh_quota_policy *policy);
/** Queue a put; cb runs on the loop after the message is durably committed. */
int mh_storeq_put(struct mh_storeq *q, void *owner, const char *who, const struct mh_message *msg, mh_store_cb cb,
                  void *arg);
/** Forget callbacks for `owner` (it is being freed); the puts themselves still complete. */
void mh_storeq_cancel_owner(struct mh_storeq *q, void *owner);
size_t mh_storeq_pending(struct mh_storeq *q);
/** Finish queued work, deliver completions, close the store, join; sets *q to NULL. */
void mh_storeq_free(struct mh_storeq **q);

#endif

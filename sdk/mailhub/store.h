/*
 * mailhub plugin SDK: store plugins (SQLite embedded, PostgreSQL later).
 *
 * The core owns the one configured store instance and calls its operations
 * from a single dedicated store thread, one call at a time, never from the
 * loop; they may block (disk I/O, fsync).  The core enforces the quota
 * extension policy on top of every store: the store only reports usage and
 * persists the allocation.
 *
 * Mandatory: the descriptor's init and free, and `ops` pointing to a
 * struct mh_store_ops with open, put_message, usage, quota_get and quota_set.
 */
#ifndef MAILHUB_STORE_H
#define MAILHUB_STORE_H

#include <mailhub/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Store operations.  Fields are only appended.  Thread: the store thread. */
struct mh_store_ops {
    uint32_t struct_size; /* sizeof(struct mh_store_ops) */

    /** Open or create the store and migrate its schema.  Mandatory. */
    int (*open)(void *state);

    /** Flush and close.  Optional; `free` follows. */
    void (*close)(void *state);

    /**
     * Store one message durably and exactly once: if (user, account,
     * source_id) is already stored, write nothing and set ref_out->duplicate.
     * A store may batch commits; the message counts as acknowledged only
     * after the next flush() returns MH_OK (the core calls it before
     * reporting success to the provider).  Mandatory.
     */
    int (*put_message)(void *state, const struct mh_message *msg, struct mh_message_ref *ref_out);

    /** Commit whatever put_message batched.  Optional (then each put commits). */
    int (*flush)(void *state);

    /**
     * Usage of a user's space: the raw size of the stored messages (as the
     * user would see it, whatever the encoding) and their count.  Mandatory.
     */
    int (*usage)(void *state, const char *user, uint64_t *bytes_out, uint64_t *count_out);

    /** Read a user's current allocation in bytes: 1 found, 0 none yet.  Mandatory. */
    int (*quota_get)(void *state, const char *user, uint64_t *alloc_out);

    /**
     * Persist a user's new allocation and record why ("initial",
     * "extended").  Mandatory.
     */
    int (*quota_set)(void *state, const char *user, uint64_t alloc, const char *reason);

    /** 1 if (user, account, source_id) is stored, 0 if not.  Optional. */
    int (*has_source_id)(void *state, const char *user, const char *account, const char *source_id);
};

#ifdef __cplusplus
}
#endif
#endif /* MAILHUB_STORE_H */

/*
 * mailhub plugin SDK: store plugins (SQLite embedded, PostgreSQL later).
 *
 * A store persists records; it never sees a key or a plaintext message body.
 * The core owns the one configured store instance and calls its operations
 * from a single dedicated store thread, one call at a time, never from the
 * loop; they may block (disk I/O, fsync).  On top of every store the core
 * enforces the quota extension policy (the store only reports usage and
 * persists allocations), seals message bodies and credentials with
 * AES-256-GCM, hashes passwords, and checks who may see what.
 *
 * Every record is scoped by a user id: a store must never return a record of
 * another user than the one asked for (tenant isolation is tested by the
 * contract suite, tests/store_contract.c, which every backend must pass).
 *
 * Records are borrowed in both directions: what the core passes in is valid
 * for the call; what a store passes to a callback is valid only during that
 * callback.  Strings are UTF-8; NULL means "not set".  A callback may call the
 * store's read operations (user_get, msg_list, ...), never its writes.
 *
 * Writes and flush: a store may gather every write (not only put_message)
 * into one transaction that flush() commits; the store's own reads see the
 * writes not flushed yet.  When flush() fails, or a write fails in a way that
 * loses the batch (the next flush() then fails), everything written since the
 * last successful flush is gone: the core forgets what it cached and retries.
 *
 * Errors: MH_ENOTFOUND for an id that does not exist *for that user* (another
 * user's record is "not found", never "forbidden"), MH_EEXIST for a taken
 * name, MH_EINVAL for a missing mandatory field, MH_ERETRY for what may pass
 * (a locked or full database, I/O).
 *
 * Since SDK 1.1 (the store interface of 1.0 is no longer accepted): all ops
 * up to and including quota_history are mandatory except close, flush and
 * has_source_id.  The 1.2 ops (sync state, search, the outbox, preferences)
 * and the 1.3 ops (deferred analysis) come as a group each: a store has all
 * of a group or none.
 */
#ifndef MAILHUB_STORE_H
#define MAILHUB_STORE_H

#include <mailhub/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A hub user. */
struct mh_user_rec {
    uint32_t struct_size;
    int64_t id;                /* assigned by the store (user_put with id 0) */
    const char *name;          /* unique, [A-Za-z0-9._-@+], 1..64 bytes */
    const char *password_hash; /* PHC string ("$argon2id$..."), NULL: cannot log in */
    const char *phone;         /* E.164 ("+8613800138000"), or NULL */
    const char *email;         /* notification address, or NULL */
    int admin;                 /* 1: may manage users */
    const void *data_key;      /* the user's data key, sealed by the master key */
    size_t data_key_len;
    int64_t created;           /* seconds since the epoch */
};

/** A linked account: one source mailbox of a user. */
struct mh_account_rec {
    uint32_t struct_size;
    int64_t id;           /* assigned by the store (account_put with id 0) */
    int64_t user_id;
    const char *name;     /* unique per user, e.g. "work@corp.com" */
    const char *provider; /* provider plugin name, e.g. "imap", "mbox" */
    const char *settings; /* JSON object text: the provider's non-secret options */
    const void *secret;   /* sealed JSON object of the secret options, or NULL */
    size_t secret_len;
    int paused;           /* 1: not synced until resumed */
    const char *status;   /* "ok", "quota" (allocation at max), "error: <text>", "removed" */
    const char *origin;   /* "api" (linked by the user) or "config" (mailhub.yaml) */
    int64_t created;
};

/** A hub folder: the messages of one account's source folder. */
struct mh_folder_rec {
    uint32_t struct_size;
    int64_t id;
    int64_t user_id;
    int64_t account_id;
    const char *name;       /* the source folder's name, '/' separated */
    uint32_t uidvalidity;   /* fixed when the folder is created, never reused */
    uint32_t uidnext;       /* the next UID to assign */
    uint64_t highestmodseq;
    uint64_t messages;      /* number stored */
    uint64_t bytes;         /* their raw size */
    /* since 1.2: */
    int source_gone;        /* 1: the folder was deleted at the source (the hub keeps it) */
};

/**
 * A stored message.  put_message reads user_id, account_id, folder (the name,
 * mandatory), source_id, size, sha256, blob (mandatory; may be empty),
 * flags, the dates and the headers; it ignores id, folder_id, uid, modseq and
 * stored, which the store assigns (the id comes back in ref_out; msg_list
 * shows the rest).
 */
struct mh_msg_rec {
    uint32_t struct_size;
    int64_t id;
    int64_t user_id;
    int64_t account_id;
    int64_t folder_id;
    const char *folder;      /* the folder's name; put_message creates the folder on first use */
    uint32_t uid;            /* per folder, strictly increasing, stable */
    uint64_t modseq;
    const char *source_id;   /* identity at the source, for dedup (see struct mh_message); NULL: none */
    uint64_t size;           /* raw RFC 5322 size: what the quota counts */
    unsigned char sha256[32];/* of the raw bytes */
    const void *blob;        /* the raw bytes as sealed by the core (opaque to the store) */
    size_t blob_len;
    const char *flags;       /* space-separated IMAP flags, or NULL */
    int64_t internal_date;   /* seconds since the epoch, 0 if unknown */
    int64_t date;            /* the Date: header, 0 if absent or unparsable */
    const char *from;        /* decoded headers, UTF-8, or NULL */
    const char *to;
    const char *cc;
    const char *subject;
    const char *message_id;
    int64_t stored;          /* seconds since the epoch */
    /* since 1.2: */
    const char *search_terms;/* put: the blind search index of the message, space-separated opaque
                                terms (keyed hashes made by the core; never plaintext), or NULL */
    const char *attachments; /* JSON array of {"name","type","size"}, or NULL */
    int source_gone;         /* 1: removed at the source (the hub keeps its copy) */
    /* since 1.3: */
    int index_pending;       /* put: 1 = the core analyses the body later (search_terms and
                                attachments are NULL now; msg_index() sets them): the store
                                keeps the id in its queue for index_pending_list() */
};

/** What msg_list returns: always one user's messages, ascending by id. */
struct mh_msg_query {
    uint32_t struct_size;
    int64_t user_id;    /* mandatory */
    int64_t id;         /* >0: only this message */
    int64_t account_id; /* 0: every account */
    int64_t folder_id;  /* 0: every folder */
    int64_t after_id;   /* only ids greater than this (paging) */
    uint32_t limit;     /* 0: no limit */
    int with_blob;      /* 0: blob may be NULL in the records; 1: never NULL (empty: length 0) */
    /* since 1.2: */
    const char *search; /* space-separated terms (as in mh_msg_rec.search_terms) that must all be in
                           a message's search terms; NULL: no filter */
    int descending;     /* 1: newest first (descending id); after_id then means "ids below this" */
};

/**
 * One notification job of the durable outbox (since 1.2): one event for one
 * notifier instance.  Times are milliseconds since the epoch.
 */
struct mh_job_rec {
    uint32_t struct_size;
    int64_t id;             /* assigned by the store (job_put with id 0) */
    const char *key;        /* stable and unique: "<event id>/<notifier instance>" (dedup) */
    int64_t user_id;        /* the user it is for, 0: none (system events) */
    const char *notifier;   /* the notifier instance's name */
    const char *event_type; /* "mail.received", ... */
    const char *event;      /* the event envelope, JSON text, as the notifier receives it */
    const char *state;      /* "pending" (due at next_at), "held" (quiet hours or rate limit: folded into
                               a digest at next_at), "delivered", "dead" (retries exhausted or a
                               permanent failure), "folded" (merged into another job's digest) */
    int attempts;
    int64_t next_at;
    const char *fold;       /* jobs held under the same fold key become one digest, or NULL */
    int64_t created, updated;
    const char *detail;     /* the last outcome, e.g. "HTTP 503", or NULL */
};

struct mh_job_query {
    uint32_t struct_size;
    int64_t id;             /* >0: only this job */
    int64_t user_id;        /* >0: only this user's; 0: everyone's */
    const char *state;      /* only jobs in this state, or NULL */
    const char *fold;       /* only jobs with this fold key, or NULL */
    int64_t due_before;     /* >0: only jobs with next_at below this */
    int64_t after_id;       /* paging: ids above this */
    uint32_t limit;         /* 0: no limit */
};

/* Callbacks for list operations: return 0 to go on, nonzero to stop early. */
typedef int (*mh_user_each_cb)(void *arg, const struct mh_user_rec *u);
typedef int (*mh_account_each_cb)(void *arg, const struct mh_account_rec *a);
typedef int (*mh_folder_each_cb)(void *arg, const struct mh_folder_rec *f);
typedef int (*mh_msg_each_cb)(void *arg, const struct mh_msg_rec *m);
typedef int (*mh_quota_each_cb)(void *arg, uint64_t allocation, const char *reason, int64_t when);
typedef int (*mh_job_each_cb)(void *arg, const struct mh_job_rec *j);

/** Store operations.  Fields are only appended.  Thread: the store thread. */
struct mh_store_ops {
    uint32_t struct_size; /* sizeof(struct mh_store_ops) */

    /** Open or create the store and migrate its schema.  Mandatory. */
    int (*open)(void *state);

    /** Flush and close.  Optional; `free` follows. */
    void (*close)(void *state);

    /**
     * Store one message durably and exactly once.  If source_id is already
     * stored in this folder of (user_id, account_id) -- since 1.2 the scope is
     * the folder: IMAP UIDs are per folder and two folders may share a
     * UIDVALIDITY; a 1.1 store used the whole account -- write nothing, set
     * ref_out->duplicate and ref_out->id to the stored message's id.  Otherwise create the folder
     * if needed (a fresh UIDVALIDITY), assign the next UID and a new modseq,
     * and count the size in the user's usage in the same transaction.  A
     * store may batch commits; the message counts as acknowledged only after
     * the next flush() returns MH_OK.  MH_ENOTFOUND if the user or account
     * does not exist.  Mandatory.
     */
    int (*put_message)(void *state, const struct mh_msg_rec *msg, struct mh_message_ref *ref_out);

    /** Commit whatever was batched.  Optional (then every write commits at once). */
    int (*flush)(void *state);

    /** A user's usage: raw bytes and message count (0 and 0 for an unknown user).  Mandatory. */
    int (*usage)(void *state, int64_t user_id, uint64_t *bytes_out, uint64_t *count_out);

    /** A user's current allocation in bytes: 1 found, 0 none yet.  Mandatory. */
    int (*quota_get)(void *state, int64_t user_id, uint64_t *alloc_out);

    /**
     * Persist a new allocation and record it with a reason ("initial",
     * "extended", "admin").  MH_ENOTFOUND for an unknown user, MH_EINVAL for
     * an allocation over INT64_MAX.  Mandatory.
     */
    int (*quota_set)(void *state, int64_t user_id, uint64_t alloc, const char *reason);

    /** 1 if source_id is stored in any folder of (user_id, account_id), 0 if not.  Optional. */
    int (*has_source_id)(void *state, int64_t user_id, int64_t account_id, const char *source_id);

    /* ---- since 1.1 ---- */

    /**
     * Insert (u->id == 0: sets u->id; MH_EEXIST if the name is taken) or
     * replace every field of user u->id (MH_ENOTFOUND if none; MH_EEXIST if
     * the new name is another user's).  Ids are never reused.  created 0:
     * now (insert) or unchanged (replace).
     */
    int (*user_put)(void *state, struct mh_user_rec *u);
    /** Find a user by id (id > 0) or else by name: 1 and cb called once, or 0. */
    int (*user_get)(void *state, int64_t id, const char *name, mh_user_each_cb cb, void *arg);
    /** Every user, ascending by id. */
    int (*user_list)(void *state, mh_user_each_cb cb, void *arg);
    /** Delete a user with all their accounts, folders, messages, tokens and quota: MH_OK or MH_ENOTFOUND. */
    int (*user_delete)(void *state, int64_t id);

    /**
     * Remember an API token by its SHA-256 (the token itself is never
     * stored).  expires: seconds since the epoch, 0 for never.  MH_ENOTFOUND
     * for an unknown user, MH_EEXIST if that hash is stored already.
     */
    int (*token_put)(void *state, int64_t user_id, const unsigned char hash[32], const char *label,
                     int64_t expires);
    /** 1 and *user_id_out if the token is known and not expired (expires 0, or > now), else 0. */
    int (*token_get)(void *state, const unsigned char hash[32], int64_t now, int64_t *user_id_out);
    /** Forget one token: MH_OK, or MH_ENOTFOUND. */
    int (*token_delete)(void *state, const unsigned char hash[32]);

    /**
     * Insert (a->id == 0: sets a->id; MH_ENOTFOUND for an unknown user,
     * MH_EEXIST if the user has that name) or replace every field of account
     * a->id of user a->user_id (MH_ENOTFOUND if it is not theirs).  created
     * 0: now (insert) or unchanged (replace).
     */
    int (*account_put)(void *state, struct mh_account_rec *a);
    /**
     * Find an account of user_id (user_id 0: any user; by name then the
     * lowest id of that name) by id (> 0) or else by name: 1 and cb called
     * once, or 0.
     */
    int (*account_get)(void *state, int64_t user_id, int64_t id, const char *name, mh_account_each_cb cb,
                       void *arg);
    /** A user's accounts (user_id 0: everyone's), ascending by id. */
    int (*account_list)(void *state, int64_t user_id, mh_account_each_cb cb, void *arg);
    /** Delete account id of user_id with its folders and messages (usage drops): MH_OK or MH_ENOTFOUND. */
    int (*account_delete)(void *state, int64_t user_id, int64_t id);

    /** A user's folders (account_id 0: of every account), ascending by id. */
    int (*folder_list)(void *state, int64_t user_id, int64_t account_id, mh_folder_each_cb cb, void *arg);
    /** Messages matching every filter of q (with q->id too), ascending by id.  MH_OK or an error. */
    int (*msg_list)(void *state, const struct mh_msg_query *q, mh_msg_each_cb cb, void *arg);
    /** Every allocation recorded for a user (quota_set), oldest first. */
    int (*quota_history)(void *state, int64_t user_id, mh_quota_each_cb cb, void *arg);

    /* ---- since 1.2 (a store without them cannot serve providers that sync or search) ---- */

    /**
     * A provider's sync state for one account: key -> text.  state_get:
     * 1 and *value_out (malloc'ed; the caller frees it) or 0.  state_put with
     * value NULL deletes.  Removed with the account.  Part of the same batch
     * as put_message: acknowledged at the next flush.
     */
    int (*state_get)(void *state, int64_t user_id, int64_t account_id, const char *key, char **value_out);
    int (*state_put)(void *state, int64_t user_id, int64_t account_id, const char *key, const char *value);

    /**
     * Change the source-side attributes of the message source_id in folder
     * `folder` of (user_id, account_id): flags (NULL: unchanged) and gone (-1:
     * unchanged, 0 or 1).  A real change gives the message a new modseq.
     * MH_OK or MH_ENOTFOUND.
     */
    int (*msg_set_source)(void *state, int64_t user_id, int64_t account_id, const char *folder,
                          const char *source_id, const char *flags, int gone);

    /**
     * Re-key after the source renumbered a folder: find the lowest-UID message
     * of (user_id, account_id, folder) with this sha256 whose source_id does
     * not begin with keep_prefix, and set its source_id to new_source_id.
     * 1 (ref_out->id set, ref_out->duplicate 1) or 0 when there is none.
     */
    int (*msg_rekey)(void *state, int64_t user_id, int64_t account_id, const char *folder,
                     const unsigned char sha256[32], const char *keep_prefix, const char *new_source_id,
                     struct mh_message_ref *ref_out);

    /**
     * Rename folder `folder` of the account to new_name (MH_EEXIST if that
     * exists; UIDs and UIDVALIDITY are kept), or with new_name NULL mark it
     * deleted at the source (source_gone).  MH_OK or MH_ENOTFOUND.
     */
    int (*folder_change)(void *state, int64_t user_id, int64_t account_id, const char *folder,
                         const char *new_name);

    /** The messages of one folder of the account (source_id, flags, gone), ascending by UID. */
    int (*source_list)(void *state, int64_t user_id, int64_t account_id, const char *folder,
                       int (*cb)(void *arg, const struct mh_source_msg *m), void *arg);

    /** 1 if source_id is stored in `folder` of the account (the 1.2 dedup scope), 0 if not. */
    int (*has_source)(void *state, int64_t user_id, int64_t account_id, const char *folder, const char *source_id);

    /**
     * The outbox.  job_put with j->id 0 inserts (sets j->id; MH_EEXIST and
     * j->id set to the stored job when the key exists: a job is created once);
     * otherwise it updates state, attempts, next_at, fold, detail and updated
     * of job j->id (MH_ENOTFOUND if none).  Part of the batch: acknowledged at
     * the next flush.  Jobs of a deleted user go with the user.
     */
    int (*job_put)(void *state, struct mh_job_rec *j);
    /** Jobs matching every filter of q, ascending by id. */
    int (*job_list)(void *state, const struct mh_job_query *q, mh_job_each_cb cb, void *arg);
    /** How many jobs of user_id for `notifier` were created at or after `since` (rate limits). */
    int (*job_count)(void *state, int64_t user_id, const char *notifier, int64_t since, uint64_t *count_out);
    /** Delete "delivered" and "folded" jobs last updated before `before`; *count_out: how many. */
    int (*job_prune)(void *state, int64_t before, uint64_t *count_out);

    /** A user's preferences by key (e.g. "notify": the notification rules, JSON): 1 found, 0 none. */
    int (*user_pref_get)(void *state, int64_t user_id, const char *key, char **value_out);
    /** Set (value NULL: delete) a preference: MH_OK or MH_ENOTFOUND for an unknown user. */
    int (*user_pref_put)(void *state, int64_t user_id, const char *key, const char *value);

    /* ---- since 1.3: deferred analysis (a store without them gets every message analysed on put) ---- */

    /**
     * Messages put with index_pending 1 and not indexed since, of every user,
     * with id > after_id, ascending by id, at most `limit` (0: no limit),
     * with their blobs (id, user_id, account_id, size and blob are what the
     * core needs).  A message deleted meanwhile is no longer listed.
     */
    int (*index_pending_list)(void *state, int64_t after_id, uint32_t limit, mh_msg_each_cb cb, void *arg);
    /**
     * Finish a pending message: set its attachments (NULL: none), add its
     * search_terms (NULL or "": none) to the search index, and take it off
     * the queue.  MH_OK, or MH_ENOTFOUND when the message is not pending
     * (deleted, or indexed already).  Part of the batch: kept at the next flush.
     */
    int (*msg_index)(void *state, int64_t id, const char *search_terms, const char *attachments);
    /** How many of user_id's messages (0: of every user) are still pending. */
    int (*index_pending_count)(void *state, int64_t user_id, uint64_t *count_out);
};

#ifdef __cplusplus
}
#endif
#endif /* MAILHUB_STORE_H */

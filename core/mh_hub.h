/*
 * The hub's data layer, between the store lane and the store plugin: the
 * master key and each user's data key, message ingest (parse the headers,
 * hash, seal the body, enforce the quota policy, put), decrypted reads, and
 * the records the control API needs.  Everything here runs on the store
 * thread (mh_storeq_call() gets there from the loop), so it may block but
 * must not touch the loop.
 */
#ifndef MH_HUB_H
#define MH_HUB_H

#include <mailhub/store.h>
#include "mh_storeq.h"
#include "mh_mime.h"

struct mh_hub;

/** A new hub over an opened store.  The master key is copied. */
struct mh_hub *mh_hub_new(const struct mh_store_ops *ops, void *state, const unsigned char master_key[32],
                          const struct mh_quota_policy *policy);
void mh_hub_free(struct mh_hub **h);
void mh_hub_set_policy(struct mh_hub *h, const struct mh_quota_policy *policy);
const struct mh_store_ops *mh_hub_ops(struct mh_hub *h);
void *mh_hub_state(struct mh_hub *h);

/**
 * Seal/unseal an account's credentials (the text of a JSON object) under the
 * master key, bound to the account (user id and name), so a sealed secret
 * copied to another account does not open.  The binding is defined here
 * only.  *out is malloc'ed (unseal: NUL-terminated, not counted).  0 or -1.
 */
int mh_hub_account_seal(struct mh_hub *h, int64_t user_id, const char *name, const void *pt, size_t len,
                        unsigned char **out, size_t *out_len);
int mh_hub_account_unseal(struct mh_hub *h, int64_t user_id, const char *name, const void *sealed, size_t len,
                          unsigned char **out, size_t *out_len);

/**
 * Create a user with a fresh data key (wrapped by the master key) and the
 * policy's initial allocation.  password_hash (PHC, already computed off the
 * store thread) may be NULL.  MH_OK and *id_out, MH_EEXIST, or an error.
 */
int mh_hub_user_create(struct mh_hub *h, const char *name, const char *password_hash, int admin,
                       const char *phone, const char *email, int64_t *id_out);

/** A user's allocation, usage and message count; MH_ENOTFOUND for an unknown user. */
int mh_hub_quota(struct mh_hub *h, int64_t user_id, uint64_t *alloc, uint64_t *usage, uint64_t *count);

/**
 * Each message matching q (q->user_id is mandatory), with its decrypted raw
 * bytes when with_raw (raw is NULL otherwise).  When the body cannot be
 * opened, or (with verify) its SHA-256 differs from the stored one, cb gets
 * raw NULL and a short `problem` ("cannot decrypt", "hash mismatch");
 * otherwise problem is NULL.  cb returns nonzero to stop.  Returns MH_OK or
 * the store's error.
 */
typedef int (*mh_hub_msg_cb)(void *arg, const struct mh_msg_rec *m, const void *raw, size_t raw_len,
                             const char *problem);
int mh_hub_msg_each(struct mh_hub *h, const struct mh_msg_query *q, int with_raw, int verify, mh_hub_msg_cb cb,
                    void *arg);

/**
 * Ingest one message (the store lane's put path): resolve the user and
 * account (by id, or by name), admit it under the quota policy, parse,
 * hash and seal it, and put it.  The caller flushes.  Quota events are
 * appended to `ev` for the loop to emit.
 */
struct mh_hub_quota_event {
    int max_reached;
    int64_t user_id;
    char user[72];     /* the user's name */
    char account[136]; /* max_reached: the account whose mail stays on the source */
    uint64_t previous, allocation, usage;
};
struct mh_hub_ingest {
    int64_t user_id, account_id;  /* 0: resolve user/account names below */
    const char *user, *account;
    const char *provider;         /* recorded on an account created by name */
    const char *folder, *source_id, *flags;
    const void *raw;
    size_t raw_len;
    int64_t internal_date;
    const char *rematch_prefix;   /* see mh_message.rematch_prefix */
    int defer_analysis;           /* in: mh_hub_prepare() leaves the body alone (the store lane sets it
                                     when the store analyses later, SDK 1.3) */
    /* filled by mh_hub_prepare() (any thread), else by mh_hub_ingest() itself */
    int prepared;
    int analysed;                 /* the body too: search_tokens and attachments are set */
    unsigned char sha256[32];
    struct mh_mime_headers hdr;
    char *search_tokens;          /* plaintext words for the blind index (never stored as such) */
    char *search_blind;           /* the same, blinded with the user's search key, when the prep
                                     thread had the key (mh_hub_set_key_hook); else ingest blinds */
    char *attachments;            /* JSON array text, or NULL */
    /* out */
    struct mh_message_ref ref;
    struct mh_hub_quota_event ev[8];
    int n_ev;
};
int mh_hub_ingest(struct mh_hub *h, struct mh_hub_ingest *in);
/**
 * The part of ingest that needs no store and no key: parse the headers, hash
 * the bytes, and unless in->defer_analysis analyse the body (text for the
 * search index, attachments).  Thread-safe; the store lane runs it on its own
 * thread, ahead of the store thread.  Free with mh_hub_ingest_clear().
 *
 * With a store that has the SDK 1.3 queue (msg_index), mh_hub_ingest() stores
 * a message whose body was not analysed at once, queued, and the store lane
 * analyses it later (mh_hub_index_fetch and the two after it): an import writes mail at the speed
 * of the header scan, the hash and the seal, and the search index and the
 * attachment lists follow as soon as the store lane has nothing else to do.
 */
void mh_hub_prepare(struct mh_hub_ingest *in);
/** Free what mh_hub_prepare() allocated. */
void mh_hub_ingest_clear(struct mh_hub_ingest *in);
/** At most this many distinct words of one message are indexed. */
#define MH_HUB_SEARCH_TERMS_MAX 20000
/**
 * Called on the store thread whenever the hub opens a user's keys, with the
 * user's search key (32 bytes, borrowed), so that the prep thread can blind
 * search terms ahead of the store thread.
 */
typedef void (*mh_hub_key_hook)(void *arg, int64_t user_id, const unsigned char search_key[32]);
void mh_hub_set_key_hook(struct mh_hub *h, mh_hub_key_hook fn, void *arg);
/*
 * Deferred analysis, in three parts, so that the work that needs neither the
 * store nor the keys runs on another thread: fetch (store thread) lists up to `limit`
 * queued messages with an id above after_id and opens them (*last_id: the
 * highest id taken; 0 found with after_id 0: the queue is empty, analysis is
 * no longer wanted); analyse (any thread) parses and blinds; store (store
 * thread) hands the results to the store, uncommitted, and returns how many
 * left the queue (a message that could not be opened or parsed leaves it
 * unindexed, with a warning, so that it is never retried for ever).  Free
 * with mh_hub_analysis_free().
 */
struct mh_hub_analysis;
int mh_hub_index_fetch(struct mh_hub *h, int64_t after_id, unsigned limit, struct mh_hub_analysis **out,
                       int64_t *last_id);
void mh_hub_index_analyse(struct mh_hub_analysis *a);
int mh_hub_index_store(struct mh_hub *h, struct mh_hub_analysis *a);
void mh_hub_analysis_free(struct mh_hub_analysis **a);
/** 1 when queued messages may be waiting for analysis. */
int mh_hub_index_wanted(struct mh_hub *h);
/** How many of user_id's messages (0: every user's) wait for analysis; MH_ENOTSUP before SDK 1.3 stores. */
int mh_hub_index_pending(struct mh_hub *h, int64_t user_id, uint64_t *count_out);
/** 1 if the store analyses later (SDK 1.3): the prep thread may then leave bodies alone. */
int mh_hub_defers_analysis(struct mh_hub *h);
/** Forget cached accounting (after a failed flush): it is reloaded from the store. */
void mh_hub_forget_accounting(struct mh_hub *h);

/** Find or create a user by name (no password) and an account of it (origin "config"). */
int mh_hub_ensure_account(struct mh_hub *h, const char *user, const char *account, const char *provider,
                          int64_t *user_id_out, int64_t *account_id_out);
/*
 * Provider sync requests (SDK 1.2), run on the store lane for the account
 * (user_id, account_id).  MH_ENOTSUP when the store lacks the operation.
 */
int mh_hub_state_get(struct mh_hub *h, int64_t user_id, int64_t account_id, const char *key, char **value_out);
int mh_hub_state_put(struct mh_hub *h, int64_t user_id, int64_t account_id, const char *key, const char *value);
int mh_hub_msg_set_source(struct mh_hub *h, int64_t user_id, int64_t account_id, const char *folder,
                          const char *source_id, const char *flags, int gone);
int mh_hub_folder_change(struct mh_hub *h, int64_t user_id, int64_t account_id, const char *folder,
                         const char *new_name);
int mh_hub_source_list(struct mh_hub *h, int64_t user_id, int64_t account_id, const char *folder,
                       int (*cb)(void *arg, const struct mh_source_msg *m), void *arg);
/** 1 if the store has the operation `field` of struct mh_store_ops. */
#define MH_STORE_HAS(ops, field) \
    ((ops)->struct_size >= offsetof(struct mh_store_ops, field) + sizeof((ops)->field) && (ops)->field != NULL)

/**
 * A user's search query as the blind terms the store matches (store thread):
 * MH_OK and *terms_out (malloc'ed), MH_EINVAL when the query has no word,
 * MH_ENOTFOUND for an unknown user.
 */
int mh_hub_search_terms(struct mh_hub *h, int64_t user_id, const char *query, char **terms_out);

/** Set an account's status text ("ok", "quota", "error: ..."), keeping everything else. */
int mh_hub_account_set_status(struct mh_hub *h, int64_t account_id, const char *status);

#endif

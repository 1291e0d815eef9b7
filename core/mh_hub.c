/*
 * The hub's data layer on the store thread: keys, ingest, decrypted reads.
 *
 * Keys: the master key (mh_master_key_load) wraps each user's random 256-bit
 * data key (AES-256-GCM, aad "user:<name>"); a user's key seals that user's
 * message bodies (aad "msg:<user id>:<account id>", so a body cannot be
 * moved to another user's or account's row and still open).  Unwrapped data
 * keys are cached in memory on the store thread only, and wiped on free.
 */
#include "config.h"

#include "mh_hub.h"
#include "mh_search.h"
#include "mh_crypto.h"
#include "mh_log.h"
#include "mh_mime.h"
#include "mh_util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct hub_user {
    int64_t id;
    char *name;
    unsigned char key[MH_KEY_LEN];
    unsigned char search_key[32]; /* derived from key: blinds the search terms */
    int have_acct;         /* usage/alloc loaded */
    uint64_t usage, alloc;
    int max_reported;
    struct hub_user *next;
};

struct hub_account {
    int64_t id, user_id;
    char *name;
    char *status;
    struct hub_account *next;
};

struct mh_hub {
    const struct mh_store_ops *ops;
    void *state;
    unsigned char master[MH_KEY_LEN];
    struct mh_quota_policy policy;
    struct hub_user *users;
    struct hub_account *accounts;
    mh_hub_key_hook key_hook;
    void *key_arg;
    int index_wanted; /* queued messages may wait for analysis (mh_hub_index_fetch) */
    uint64_t index_done, index_failed;
};

void mh_hub_set_key_hook(struct mh_hub *h, mh_hub_key_hook fn, void *arg)
{
    h->key_hook = fn;
    h->key_arg = arg;
}

struct mh_hub *mh_hub_new(const struct mh_store_ops *ops, void *state, const unsigned char master_key[32],
                          const struct mh_quota_policy *policy)
{
    mh_mime_init();
    struct mh_hub *h = mh_xcalloc(1, sizeof *h);
    h->ops = ops;
    h->state = state;
    memcpy(h->master, master_key, MH_KEY_LEN);
    h->policy = *policy;
    uint64_t n = 0;
    if (MH_STORE_HAS(ops, index_pending_count) && ops->index_pending_count(state, 0, &n) == MH_OK && n > 0) {
        mh_logf(MH_LOG_INFO, "core", "%" PRIu64 " stored messages wait for analysis (search index, attachments): "
                "it runs whenever the store is idle", n);
        h->index_wanted = 1;
    }
    return h;
}

static void free_accounts(struct mh_hub *h)
{
    while (h->accounts) {
        struct hub_account *a = h->accounts;
        h->accounts = a->next;
        free(a->name);
        free(a->status);
        free(a);
    }
}

static void free_users(struct mh_hub *h)
{
    while (h->users) {
        struct hub_user *u = h->users;
        h->users = u->next;
        mh_wipe(u->key, sizeof u->key);
        mh_wipe(u->search_key, sizeof u->search_key);
        free(u->name);
        free(u);
    }
}

void mh_hub_free(struct mh_hub **hp)
{
    struct mh_hub *h = hp ? *hp : NULL;
    if (h == NULL)
        return;
    free_users(h);
    free_accounts(h);
    mh_wipe(h->master, sizeof h->master);
    free(h);
    *hp = NULL;
}

void mh_hub_set_policy(struct mh_hub *h, const struct mh_quota_policy *policy)
{
    h->policy = *policy;
    for (struct hub_user *u = h->users; u; u = u->next)
        u->max_reported = 0;
}

const struct mh_store_ops *mh_hub_ops(struct mh_hub *h) { return h->ops; }
void *mh_hub_state(struct mh_hub *h) { return h->state; }

void mh_hub_forget_accounting(struct mh_hub *h)
{
    for (struct hub_user *u = h->users; u; u = u->next)
        u->have_acct = 0;
    free_accounts(h);
    /* a lost batch may have taken analyses with it: look at the queue again */
    if (mh_hub_defers_analysis(h))
        h->index_wanted = 1;
}

/* ------------------------------------------------------------ sealing */

static int seal_alloc(const unsigned char *key, const char *aad, const void *pt, size_t len, unsigned char **out,
                      size_t *out_len)
{
    unsigned char *buf = malloc(len + MH_SEAL_OVERHEAD);
    if (buf == NULL)
        return -1;
    if (mh_seal(key, aad, aad ? strlen(aad) : 0, pt, len, buf, out_len) != 0) {
        free(buf);
        return -1;
    }
    *out = buf;
    return 0;
}

static int unseal_alloc(const unsigned char *key, const char *aad, const void *sealed, size_t len,
                        unsigned char **out, size_t *out_len)
{
    if (len < MH_SEAL_OVERHEAD)
        return -1;
    unsigned char *buf = malloc(len - MH_SEAL_OVERHEAD + 1);
    if (buf == NULL)
        return -1;
    if (mh_unseal(key, aad, aad ? strlen(aad) : 0, sealed, len, buf, out_len) != 0) {
        free(buf);
        return -1;
    }
    buf[*out_len] = '\0'; /* convenient for JSON text; not counted */
    *out = buf;
    return 0;
}

static char *account_aad(int64_t user_id, const char *name)
{
    return mh_asprintf("account:%" PRId64 ":%s", user_id, name ? name : "");
}

int mh_hub_account_seal(struct mh_hub *h, int64_t user_id, const char *name, const void *pt, size_t len,
                        unsigned char **out, size_t *out_len)
{
    char *aad = account_aad(user_id, name);
    int rc = seal_alloc(h->master, aad, pt, len, out, out_len);
    free(aad);
    return rc;
}

int mh_hub_account_unseal(struct mh_hub *h, int64_t user_id, const char *name, const void *sealed, size_t len,
                          unsigned char **out, size_t *out_len)
{
    char *aad = account_aad(user_id, name);
    int rc = unseal_alloc(h->master, aad, sealed, len, out, out_len);
    free(aad);
    return rc;
}

/* -------------------------------------------------------------- users */

struct user_copy {
    int found;
    int64_t id;
    char *name;
    unsigned char *wrapped;
    size_t wrapped_len;
};

static int user_copy_cb(void *arg, const struct mh_user_rec *u)
{
    struct user_copy *c = arg;
    c->found = 1;
    c->id = u->id;
    c->name = mh_xstrdup(u->name ? u->name : "");
    if (u->data_key && u->data_key_len) {
        c->wrapped = malloc(u->data_key_len);
        if (c->wrapped) {
            memcpy(c->wrapped, u->data_key, u->data_key_len);
            c->wrapped_len = u->data_key_len;
        }
    }
    return 1;
}

static void user_copy_clear(struct user_copy *c)
{
    free(c->name);
    free(c->wrapped);
    memset(c, 0, sizeof *c);
}

/* The cached user (with an unwrapped key), by id or by name; NULL with *rc_out. */
static struct hub_user *user_load(struct mh_hub *h, int64_t id, const char *name, int *rc_out)
{
    for (struct hub_user *u = h->users; u; u = u->next)
        if ((id > 0 && u->id == id) || (id <= 0 && name && strcmp(u->name, name) == 0))
            return u;
    struct user_copy c = {0};
    int rc = h->ops->user_get(h->state, id > 0 ? id : 0, id > 0 ? NULL : name, user_copy_cb, &c);
    if (rc < 0 || !c.found) {
        *rc_out = rc < 0 ? rc : MH_ENOTFOUND;
        user_copy_clear(&c);
        return NULL;
    }
    char aad[128];
    snprintf(aad, sizeof aad, "user:%s", c.name);
    unsigned char *key = NULL;
    size_t key_len = 0;
    if (c.wrapped == NULL || unseal_alloc(h->master, aad, c.wrapped, c.wrapped_len, &key, &key_len) != 0 ||
        key_len != MH_KEY_LEN) {
        mh_logf(MH_LOG_ERROR, "core", "user %s: the data key does not open with this master key (was master.key "
                "replaced, or MAILHUB_MASTER_KEY changed?)", c.name);
        if (key)
            mh_wipe(key, key_len);
        free(key);
        user_copy_clear(&c);
        *rc_out = MH_ERR;
        return NULL;
    }
    struct hub_user *u = mh_xcalloc(1, sizeof *u);
    u->id = c.id;
    u->name = c.name;
    c.name = NULL;
    memcpy(u->key, key, MH_KEY_LEN);
    mh_search_key(u->key, u->search_key);
    if (h->key_hook)
        h->key_hook(h->key_arg, u->id, u->search_key);
    mh_wipe(key, key_len);
    free(key);
    user_copy_clear(&c);
    u->next = h->users;
    h->users = u;
    return u;
}

static void user_forget(struct mh_hub *h, int64_t id)
{
    for (struct hub_user **p = &h->users; *p; p = &(*p)->next) {
        if ((*p)->id == id) {
            struct hub_user *u = *p;
            *p = u->next;
            mh_wipe(u->key, sizeof u->key);
            mh_wipe(u->search_key, sizeof u->search_key);
            free(u->name);
            free(u);
            return;
        }
    }
}

int mh_hub_user_create(struct mh_hub *h, const char *name, const char *password_hash, int admin,
                       const char *phone, const char *email, int64_t *id_out)
{
    unsigned char key[MH_KEY_LEN];
    if (mh_random(key, sizeof key) != 0)
        return MH_ERR;
    char aad[128];
    snprintf(aad, sizeof aad, "user:%s", name);
    unsigned char *wrapped = NULL;
    size_t wrapped_len = 0;
    int rc = seal_alloc(h->master, aad, key, sizeof key, &wrapped, &wrapped_len);
    mh_wipe(key, sizeof key);
    if (rc != 0)
        return MH_ERR;
    struct mh_user_rec u = {.struct_size = sizeof u,
                            .name = name,
                            .password_hash = password_hash,
                            .phone = phone,
                            .email = email,
                            .admin = admin,
                            .data_key = wrapped,
                            .data_key_len = wrapped_len,
                            .created = (int64_t)time(NULL)};
    rc = h->ops->user_put(h->state, &u);
    free(wrapped);
    if (rc != MH_OK)
        return rc;
    rc = h->ops->quota_set(h->state, u.id, h->policy.initial, "initial");
    if (rc != MH_OK)
        return rc;
    user_forget(h, u.id); /* a deleted user's id is never reused, but be safe */
    if (id_out)
        *id_out = u.id;
    return MH_OK;
}

/* Load usage and allocation; a user without an allocation gets the initial one. */
static int user_accounting(struct mh_hub *h, struct hub_user *u)
{
    if (u->have_acct)
        return MH_OK;
    uint64_t bytes = 0, count = 0, alloc = 0;
    int rc = h->ops->usage(h->state, u->id, &bytes, &count);
    if (rc < 0)
        return rc;
    rc = h->ops->quota_get(h->state, u->id, &alloc);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        alloc = h->policy.initial;
        rc = h->ops->quota_set(h->state, u->id, alloc, "initial");
        if (rc < 0)
            return rc;
    }
    u->usage = bytes;
    u->alloc = alloc;
    u->have_acct = 1;
    return MH_OK;
}

int mh_hub_quota(struct mh_hub *h, int64_t user_id, uint64_t *alloc, uint64_t *usage, uint64_t *count)
{
    uint64_t bytes = 0, n = 0, a = 0;
    int rc = h->ops->usage(h->state, user_id, &bytes, &n);
    if (rc < 0)
        return rc;
    rc = h->ops->quota_get(h->state, user_id, &a);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        int urc = 0;
        if (user_load(h, user_id, NULL, &urc) == NULL)
            return urc;
        a = h->policy.initial;
    }
    if (alloc)
        *alloc = a;
    if (usage)
        *usage = bytes;
    if (count)
        *count = n;
    /* keep the ingest cache honest after deletions made through the API */
    for (struct hub_user *u = h->users; u; u = u->next)
        if (u->id == user_id && u->have_acct) {
            u->usage = bytes;
            u->alloc = a;
        }
    return MH_OK;
}

/* ----------------------------------------------------------- accounts */

struct account_copy {
    int found;
    int64_t id, user_id;
    char *name, *status;
};

static int account_copy_cb(void *arg, const struct mh_account_rec *a)
{
    struct account_copy *c = arg;
    c->found = 1;
    c->id = a->id;
    c->user_id = a->user_id;
    c->name = mh_xstrdup(a->name ? a->name : "");
    c->status = mh_xstrdup(a->status ? a->status : "ok");
    return 1;
}

static struct hub_account *account_load(struct mh_hub *h, int64_t user_id, int64_t id, const char *name, int *rc_out)
{
    for (struct hub_account *a = h->accounts; a; a = a->next)
        if (a->user_id == user_id && ((id > 0 && a->id == id) || (id <= 0 && name && strcmp(a->name, name) == 0)))
            return a;
    struct account_copy c = {0};
    int rc = h->ops->account_get(h->state, user_id, id > 0 ? id : 0, id > 0 ? NULL : name, account_copy_cb, &c);
    if (rc < 0 || !c.found) {
        free(c.name);
        free(c.status);
        *rc_out = rc < 0 ? rc : MH_ENOTFOUND;
        return NULL;
    }
    struct hub_account *a = mh_xcalloc(1, sizeof *a);
    a->id = c.id;
    a->user_id = c.user_id;
    a->name = c.name;
    a->status = c.status;
    a->next = h->accounts;
    h->accounts = a;
    return a;
}

/* Copy of a whole account record, to rewrite one field. */
struct account_full {
    int found;
    struct mh_account_rec rec;
    char *name, *provider, *settings, *status, *origin;
    void *secret;
};

static int account_full_cb(void *arg, const struct mh_account_rec *a)
{
    struct account_full *f = arg;
    f->found = 1;
    f->rec = *a;
    f->rec.struct_size = sizeof f->rec;
    f->name = a->name ? mh_xstrdup(a->name) : NULL;
    f->provider = a->provider ? mh_xstrdup(a->provider) : NULL;
    f->settings = a->settings ? mh_xstrdup(a->settings) : NULL;
    f->status = a->status ? mh_xstrdup(a->status) : NULL;
    f->origin = a->origin ? mh_xstrdup(a->origin) : NULL;
    if (a->secret && a->secret_len) {
        f->secret = malloc(a->secret_len);
        if (f->secret)
            memcpy(f->secret, a->secret, a->secret_len);
    }
    f->rec.name = f->name;
    f->rec.provider = f->provider;
    f->rec.settings = f->settings;
    f->rec.status = f->status;
    f->rec.origin = f->origin;
    f->rec.secret = f->secret;
    f->rec.secret_len = f->secret ? a->secret_len : 0;
    return 1;
}

static void account_full_clear(struct account_full *f)
{
    free(f->name);
    free(f->provider);
    free(f->settings);
    free(f->status);
    free(f->origin);
    free(f->secret);
    memset(f, 0, sizeof *f);
}

int mh_hub_account_set_status(struct mh_hub *h, int64_t account_id, const char *status)
{
    struct account_full f = {0};
    int rc = h->ops->account_get(h->state, 0, account_id, NULL, account_full_cb, &f);
    if (rc < 0 || !f.found) {
        account_full_clear(&f);
        return rc < 0 ? rc : MH_ENOTFOUND;
    }
    if (f.rec.status && strcmp(f.rec.status, status) == 0) {
        account_full_clear(&f);
        return MH_OK;
    }
    f.rec.status = status;
    rc = h->ops->account_put(h->state, &f.rec);
    account_full_clear(&f);
    for (struct hub_account *a = h->accounts; a; a = a->next)
        if (a->id == account_id) {
            free(a->status);
            a->status = mh_xstrdup(status);
        }
    return rc;
}

int mh_hub_ensure_account(struct mh_hub *h, const char *user, const char *account, const char *provider,
                          int64_t *user_id_out, int64_t *account_id_out)
{
    int rc = 0;
    struct hub_user *u = user_load(h, 0, user, &rc);
    if (u == NULL && rc == MH_ENOTFOUND) {
        int64_t id = 0;
        rc = mh_hub_user_create(h, user, NULL, 0, NULL, NULL, &id);
        if (rc != MH_OK)
            return rc;
        mh_logf(MH_LOG_INFO, "core", "created user %s for the providers in the configuration (no password yet: "
                "set one with `mailhubctl user set %s --password-stdin`)", user, user);
        u = user_load(h, id, NULL, &rc);
    }
    if (u == NULL)
        return rc;
    struct hub_account *a = account_load(h, u->id, 0, account, &rc);
    if (a == NULL && rc == MH_ENOTFOUND) {
        struct mh_account_rec rec = {.struct_size = sizeof rec,
                                     .user_id = u->id,
                                     .name = account,
                                     .provider = provider,
                                     .settings = "{}",
                                     .status = "ok",
                                     .origin = "config",
                                     .created = (int64_t)time(NULL)};
        rc = h->ops->account_put(h->state, &rec);
        if (rc != MH_OK)
            return rc;
        a = account_load(h, u->id, rec.id, NULL, &rc);
    }
    if (a == NULL)
        return rc;
    if (user_id_out)
        *user_id_out = u->id;
    if (account_id_out)
        *account_id_out = a->id;
    return MH_OK;
}

/* ------------------------------------------------------------- ingest */

static void add_event(struct mh_hub_ingest *in, const struct hub_user *u, const struct hub_account *a, int max,
                      uint64_t prev, uint64_t alloc, uint64_t usage)
{
    if (in->n_ev >= (int)(sizeof in->ev / sizeof in->ev[0]))
        return;
    struct mh_hub_quota_event *e = &in->ev[in->n_ev++];
    memset(e, 0, sizeof *e);
    e->max_reached = max;
    e->user_id = u->id;
    snprintf(e->user, sizeof e->user, "%s", u->name);
    snprintf(e->account, sizeof e->account, "%s", a ? a->name : "");
    e->previous = prev;
    e->allocation = alloc;
    e->usage = usage;
}

/* Would storing `len` more bytes leave less free than the policy wants (extend, or refuse at max)? */
static int needs_room(const struct mh_hub *h, const struct hub_user *u, uint64_t len)
{
    uint64_t after = u->usage + len;
    return u->alloc < after || u->alloc - after < h->policy.extend_when_free_below;
}

/*
 * The quota policy: after this message, free space must not fall below
 * extend_when_free_below; grow by extend_by until it does, up to max.  Mail
 * is refused only when it would not fit under max.
 */
static int quota_admit(struct mh_hub *h, struct hub_user *u, struct hub_account *a, struct mh_hub_ingest *in)
{
    int rc = user_accounting(h, u);
    if (rc != MH_OK)
        return rc;
    const struct mh_quota_policy *pol = &h->policy;
    uint64_t after = u->usage + in->raw_len;
    while (needs_room(h, u, in->raw_len) && (pol->max == 0 || u->alloc < pol->max) && pol->extend_by > 0) {
        uint64_t prev = u->alloc;
        uint64_t next = u->alloc + pol->extend_by;
        if (pol->max && next > pol->max)
            next = pol->max;
        rc = h->ops->quota_set(h->state, u->id, next, "extended");
        if (rc < 0)
            return rc;
        u->alloc = next;
        add_event(in, u, NULL, 0, prev, next, after);
    }
    if (after > u->alloc) {
        if (!u->max_reported) {
            add_event(in, u, a, 1, u->alloc, u->alloc, u->usage);
            u->max_reported = 1;
        }
        if (strcmp(a->status, "quota") != 0)
            mh_hub_account_set_status(h, a->id, "quota");
        return MH_EQUOTA;
    }
    return MH_OK;
}

/* Is source_id stored where put_message would find it: in the folder (1.2 stores), else in the account? */
static int analyse(struct mh_hub_ingest *in);

static int has_source(struct mh_hub *h, int64_t user_id, int64_t account_id, const char *folder, const char *source_id)
{
    if (MH_STORE_HAS(h->ops, has_source))
        return h->ops->has_source(h->state, user_id, account_id, folder, source_id);
    if (h->ops->has_source_id)
        return h->ops->has_source_id(h->state, user_id, account_id, source_id);
    return MH_ENOTSUP;
}

int mh_hub_ingest(struct mh_hub *h, struct mh_hub_ingest *in)
{
    int rc = 0;
    in->ref.struct_size = sizeof in->ref;
    if (in->user_id <= 0 || in->account_id <= 0) {
        /* a provider of mailhub.yaml: its user and account exist once it stores mail */
        if (in->user == NULL || in->account == NULL)
            return MH_EINVAL;
        rc = mh_hub_ensure_account(h, in->user, in->account, in->provider ? in->provider : "", &in->user_id,
                                   &in->account_id);
        if (rc != MH_OK)
            return rc;
    }
    struct hub_user *u = user_load(h, in->user_id, in->user, &rc);
    if (u == NULL) {
        if (rc == MH_ENOTFOUND)
            mh_logf(MH_LOG_ERROR, "core", "message for unknown user %s: not stored",
                    in->user ? in->user : "(by id)");
        return rc == MH_ENOTFOUND ? MH_ERR : rc;
    }
    struct hub_account *a = account_load(h, u->id, in->account_id, in->account, &rc);
    if (a == NULL) {
        if (rc == MH_ENOTFOUND)
            mh_logf(MH_LOG_ERROR, "core", "message for unknown account %s of user %s: not stored",
                    in->account ? in->account : "(by id)", u->name);
        return rc == MH_ENOTFOUND ? MH_ERR : rc;
    }
    struct mh_msg_rec m = {.struct_size = sizeof m,
                           .user_id = u->id,
                           .account_id = a->id,
                           .folder = in->folder ? in->folder : "INBOX",
                           .source_id = in->source_id,
                           .size = in->raw_len,
                           .flags = in->flags,
                           .internal_date = in->internal_date};
    rc = user_accounting(h, u);
    if (rc != MH_OK)
        return rc;
    /*
     * The source renumbered the folder: a copy stored under an old number is
     * re-keyed to the new one instead of being stored twice.
     */
    if (in->rematch_prefix && in->source_id && MH_STORE_HAS(h->ops, msg_rekey) &&
        has_source(h, u->id, a->id, m.folder, in->source_id) == 0) {
        if (!in->prepared)
            mh_hub_prepare(in);
        if (!in->prepared)
            return MH_ENOMEM;
        rc = h->ops->msg_rekey(h->state, u->id, a->id, m.folder, in->sha256, in->rematch_prefix, in->source_id,
                               &in->ref);
        if (rc == 1)
            return MH_OK;
        if (rc < 0)
            return rc;
    }
    /*
     * A duplicate must never extend the allocation nor be refused for lack of
     * space.  When this message would do neither, the store's own dedup in
     * put_message answers the question and a lookup per message is saved.
     */
    if (needs_room(h, u, in->raw_len) && in->source_id &&
        has_source(h, u->id, a->id, m.folder, in->source_id) == 1) {
        /* already stored: the store writes nothing and tells us its id */
        static const unsigned char nothing[1];
        m.blob = nothing;
        m.blob_len = 0;
        rc = h->ops->put_message(h->state, &m, &in->ref);
        in->ref.duplicate = 1;
        return rc;
    }
    rc = quota_admit(h, u, a, in);
    if (rc != MH_OK)
        return rc;

    int deferred = MH_STORE_HAS(h->ops, msg_index) && (in->defer_analysis || in->prepared) && !in->analysed;
    if (!in->prepared) {
        in->defer_analysis = deferred;
        mh_hub_prepare(in);
    }
    if (!in->prepared)
        return MH_ENOMEM;
    if (!deferred && !in->analysed && analyse(in) != 0)
        return MH_ENOMEM;
    m.index_pending = deferred;
    const struct mh_mime_headers *hd = &in->hdr;
    memcpy(m.sha256, in->sha256, sizeof m.sha256);
    char aad[64];
    snprintf(aad, sizeof aad, "msg:%" PRId64 ":%" PRId64, u->id, a->id);
    unsigned char *blob = NULL;
    size_t blob_len = 0;
    if (seal_alloc(u->key, aad, in->raw, in->raw_len, &blob, &blob_len) != 0)
        return MH_ENOMEM;
    m.blob = blob;
    m.blob_len = blob_len;
    m.from = hd->from;
    m.to = hd->to;
    m.cc = hd->cc;
    m.subject = hd->subject;
    m.message_id = hd->message_id;
    m.date = hd->date;
    m.stored = (int64_t)time(NULL);
    m.attachments = in->attachments;
    char *terms = in->search_blind == NULL && in->search_tokens ? mh_search_blind(u->search_key, in->search_tokens)
                                                                 : NULL;
    m.search_terms = in->search_blind ? in->search_blind : terms;
    rc = h->ops->put_message(h->state, &m, &in->ref);
    free(terms);
    free(blob);
    if (rc == MH_OK && !in->ref.duplicate) {
        if (deferred)
            h->index_wanted = 1;
        u->usage += in->raw_len;
        if (strcmp(a->status, "quota") == 0)
            mh_hub_account_set_status(h, a->id, "ok");
    }
    return rc;
}

/* The words a search can find: the decoded headers, the body's text and the attachments' names. */
static char *search_tokens(const struct mh_mime_headers *hd, const struct mh_mime_body *b)
{
    const char *parts[] = {hd->subject, hd->from, hd->to, hd->cc, b->attachment_names, b->text};
    size_t len = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        len += parts[i] ? strlen(parts[i]) + 1 : 0;
    char *all = malloc(len + 1), *p = all;
    if (all == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        if (parts[i]) {
            size_t n = strlen(parts[i]);
            memcpy(p, parts[i], n);
            p += n;
            *p++ = '\n';
        }
    *p = '\0';
    char *tokens = mh_search_tokens(all, (size_t)(p - all), MH_HUB_SEARCH_TERMS_MAX);
    free(all);
    return tokens;
}

/* The body: its text as search tokens, its attachments.  0, or -1 when out of memory. */
static int analyse_body(const void *raw, size_t raw_len, const struct mh_mime_headers *hd, char **tokens_out,
                        char **attachments_out)
{
    *tokens_out = *attachments_out = NULL;
    struct mh_mime_body b;
    if (mh_mime_parse_body(raw, raw_len, &b) != 0)
        return -1;
    *tokens_out = getenv("MH_NO_SEARCH") ? NULL : search_tokens(hd, &b);
    *attachments_out = b.attachments;
    b.attachments = NULL;
    mh_mime_body_clear(&b);
    return 0;
}

static int analyse(struct mh_hub_ingest *in)
{
    if (analyse_body(in->raw, in->raw_len, &in->hdr, &in->search_tokens, &in->attachments) != 0)
        return -1;
    in->analysed = 1;
    return 0;
}

void mh_hub_prepare(struct mh_hub_ingest *in)
{
    if (in->prepared)
        return;
    if (mh_mime_parse(in->raw, in->raw_len, &in->hdr) != 0)
        return;
    if (!in->defer_analysis && analyse(in) != 0) {
        mh_mime_headers_clear(&in->hdr);
        return;
    }
    mh_sha256(in->raw, in->raw_len, in->sha256);
    in->prepared = 1;
}

void mh_hub_ingest_clear(struct mh_hub_ingest *in)
{
    mh_mime_headers_clear(&in->hdr);
    free(in->search_tokens);
    free(in->search_blind);
    free(in->attachments);
    in->search_tokens = in->search_blind = in->attachments = NULL;
    in->prepared = in->analysed = 0;
}

/* -------------------------------------------------------------- reads */

struct each_ctx {
    struct mh_hub *h;
    struct hub_user *u;
    int with_raw, verify;
    mh_hub_msg_cb cb;
    void *arg;
};

static int each_cb(void *arg, const struct mh_msg_rec *m)
{
    struct each_ctx *c = arg;
    if (!c->with_raw && !c->verify)
        return c->cb(c->arg, m, NULL, 0, NULL);
    char aad[64];
    snprintf(aad, sizeof aad, "msg:%" PRId64 ":%" PRId64, m->user_id, m->account_id);
    unsigned char *raw = NULL;
    size_t raw_len = 0;
    if (m->blob == NULL || unseal_alloc(c->u->key, aad, m->blob, m->blob_len, &raw, &raw_len) != 0)
        return c->cb(c->arg, m, NULL, 0, "cannot decrypt");
    if (c->verify) {
        unsigned char d[32];
        mh_sha256(raw, raw_len, d);
        if (memcmp(d, m->sha256, 32) != 0 || raw_len != m->size) {
            free(raw);
            return c->cb(c->arg, m, NULL, 0, "hash mismatch");
        }
    }
    int stop = c->cb(c->arg, m, c->with_raw ? raw : NULL, c->with_raw ? raw_len : 0, NULL);
    free(raw);
    return stop;
}

int mh_hub_msg_each(struct mh_hub *h, const struct mh_msg_query *q, int with_raw, int verify, mh_hub_msg_cb cb,
                    void *arg)
{
    if (q == NULL || q->user_id <= 0)
        return MH_EINVAL;
    struct each_ctx c = {.h = h, .with_raw = with_raw, .verify = verify, .cb = cb, .arg = arg};
    if (with_raw || verify) {
        int rc = 0;
        c.u = user_load(h, q->user_id, NULL, &rc);
        if (c.u == NULL)
            return rc;
    }
    struct mh_msg_query qq = *q;
    qq.struct_size = sizeof qq;
    qq.with_blob = with_raw || verify;
    return h->ops->msg_list(h->state, &qq, each_cb, &c);
}

/* ------------------------------------------------- provider sync (1.2) */

int mh_hub_state_get(struct mh_hub *h, int64_t user_id, int64_t account_id, const char *key, char **value_out)
{
    if (!MH_STORE_HAS(h->ops, state_get))
        return MH_ENOTSUP;
    return h->ops->state_get(h->state, user_id, account_id, key, value_out);
}

int mh_hub_state_put(struct mh_hub *h, int64_t user_id, int64_t account_id, const char *key, const char *value)
{
    if (!MH_STORE_HAS(h->ops, state_put))
        return MH_ENOTSUP;
    return h->ops->state_put(h->state, user_id, account_id, key, value);
}

int mh_hub_msg_set_source(struct mh_hub *h, int64_t user_id, int64_t account_id, const char *folder,
                          const char *source_id, const char *flags, int gone)
{
    if (!MH_STORE_HAS(h->ops, msg_set_source))
        return MH_ENOTSUP;
    return h->ops->msg_set_source(h->state, user_id, account_id, folder, source_id, flags, gone);
}

int mh_hub_folder_change(struct mh_hub *h, int64_t user_id, int64_t account_id, const char *folder,
                         const char *new_name)
{
    if (!MH_STORE_HAS(h->ops, folder_change))
        return MH_ENOTSUP;
    return h->ops->folder_change(h->state, user_id, account_id, folder, new_name);
}

int mh_hub_source_list(struct mh_hub *h, int64_t user_id, int64_t account_id, const char *folder,
                       int (*cb)(void *arg, const struct mh_source_msg *m), void *arg)
{
    if (!MH_STORE_HAS(h->ops, source_list))
        return MH_ENOTSUP;
    return h->ops->source_list(h->state, user_id, account_id, folder, cb, arg);
}

/* --------------------------------------------------------------- search */

int mh_hub_search_terms(struct mh_hub *h, int64_t user_id, const char *query, char **terms_out)
{
    *terms_out = NULL;
    if (query == NULL)
        return MH_EINVAL;
    int rc = 0;
    struct hub_user *u = user_load(h, user_id, NULL, &rc);
    if (u == NULL)
        return rc < 0 ? rc : MH_ENOTFOUND;
    char *t = mh_search_query(u->search_key, query);
    if (t == NULL || t[0] == '\0') {
        free(t);
        return MH_EINVAL; /* no word to look for */
    }
    *terms_out = t;
    return MH_OK;
}

/* ------------------------------------------------- deferred analysis */

static void index_caught_up(struct mh_hub *h)
{
    h->index_wanted = 0;
    /* after an import, say so; a message or two of new mail is routine */
    if (h->index_done + h->index_failed > 0)
        mh_logf(h->index_done >= 100 || h->index_failed ? MH_LOG_INFO : MH_LOG_DEBUG, "core",
                "analysis caught up: %" PRIu64 " messages indexed%s", h->index_done,
                h->index_failed ? " (some could not be: see the warnings above)" : "");
    h->index_done = h->index_failed = 0;
}

struct mh_hub_analysis {
    size_t n;
    struct analysis_item {
        int64_t id;
        struct mh_mime_headers hd;
        unsigned char *raw; /* opened; wiped and freed once analysed */
        size_t raw_len;
        unsigned char search_key[32];
        const char *why;    /* set: cannot be indexed (logged when stored) */
        char *terms, *attachments;
    } *v;
};

void mh_hub_analysis_free(struct mh_hub_analysis **ap)
{
    struct mh_hub_analysis *a = ap ? *ap : NULL;
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->n; i++) {
        struct analysis_item *it = &a->v[i];
        mh_mime_headers_clear(&it->hd);
        if (it->raw != NULL)
            mh_wipe(it->raw, it->raw_len);
        free(it->raw);
        free(it->terms);
        free(it->attachments);
        mh_wipe(it->search_key, sizeof it->search_key);
    }
    free(a->v);
    free(a);
    *ap = NULL;
}

static char *dup_or_null(const char *s) { return s ? mh_xstrdup(s) : NULL; }

struct fetch_ctx {
    struct mh_hub *h;
    struct mh_hub_analysis *a;
    size_t cap;
    int64_t last_id;
    int oom;
};

/* One queued message, opened straight from the store's record (a store callback may call its reads:
 * user_load does, for a user not cached yet). */
static int fetch_cb(void *arg, const struct mh_msg_rec *m)
{
    struct fetch_ctx *c = arg;
    struct mh_hub_analysis *a = c->a;
    if (a->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 32;
        struct analysis_item *v = realloc(a->v, cap * sizeof *v);
        if (v == NULL) {
            c->oom = 1;
            return 1;
        }
        a->v = v;
        c->cap = cap;
    }
    struct analysis_item *it = &a->v[a->n++];
    memset(it, 0, sizeof *it);
    it->id = m->id;
    /* the decoded headers the store keeps are words of the index too */
    it->hd.from = dup_or_null(m->from);
    it->hd.to = dup_or_null(m->to);
    it->hd.cc = dup_or_null(m->cc);
    it->hd.subject = dup_or_null(m->subject);
    int urc = 0;
    struct hub_user *u = user_load(c->h, m->user_id, NULL, &urc);
    char aad[64];
    snprintf(aad, sizeof aad, "msg:%" PRId64 ":%" PRId64, m->user_id, m->account_id);
    if (u == NULL)
        it->why = urc == MH_ENOTFOUND ? "its user is gone" : "its user's key does not open";
    else if (m->blob == NULL || unseal_alloc(u->key, aad, m->blob, m->blob_len, &it->raw, &it->raw_len) != 0)
        it->why = "it does not decrypt";
    else
        memcpy(it->search_key, u->search_key, sizeof it->search_key);
    c->last_id = m->id;
    return 0;
}

int mh_hub_index_fetch(struct mh_hub *h, int64_t after_id, unsigned limit, struct mh_hub_analysis **out,
                       int64_t *last_id)
{
    *out = NULL;
    if (!mh_hub_defers_analysis(h)) {
        h->index_wanted = 0;
        return 0;
    }
    struct fetch_ctx c = {.h = h, .a = mh_xcalloc(1, sizeof *c.a)};
    int rc = h->ops->index_pending_list(h->state, after_id, limit, fetch_cb, &c);
    if (rc == MH_OK && c.oom)
        rc = MH_ENOMEM;
    if (rc != MH_OK || c.a->n == 0) {
        if (rc == MH_OK && after_id <= 0)
            index_caught_up(h);
        mh_hub_analysis_free(&c.a);
        return rc;
    }
    if (last_id)
        *last_id = c.last_id;
    *out = c.a;
    return (int)c.a->n;
}

void mh_hub_index_analyse(struct mh_hub_analysis *a)
{
    for (size_t i = 0; a != NULL && i < a->n; i++) {
        struct analysis_item *it = &a->v[i];
        if (it->why == NULL) {
            char *tokens = NULL;
            if (analyse_body(it->raw, it->raw_len, &it->hd, &tokens, &it->attachments) != 0)
                it->why = "out of memory while parsing it";
            else if (tokens != NULL && (it->terms = mh_search_blind(it->search_key, tokens)) == NULL)
                it->why = "out of memory while indexing it";
            free(tokens);
        }
        if (it->raw != NULL)
            mh_wipe(it->raw, it->raw_len);
        free(it->raw);
        it->raw = NULL;
        mh_wipe(it->search_key, sizeof it->search_key);
    }
}

int mh_hub_index_store(struct mh_hub *h, struct mh_hub_analysis *a)
{
    int done = 0;
    for (size_t i = 0; a != NULL && i < a->n; i++) {
        struct analysis_item *it = &a->v[i];
        if (it->why != NULL) {
            mh_logf(MH_LOG_WARN, "core", "message %" PRId64 " is not searchable: %s", it->id, it->why);
            h->index_failed++;
        }
        int rc = h->ops->msg_index(h->state, it->id, it->why ? NULL : it->terms, it->why ? NULL : it->attachments);
        if (rc == MH_ENOTFOUND)
            continue; /* deleted meanwhile */
        if (rc != MH_OK)
            return rc;
        if (it->why == NULL)
            h->index_done++;
        done++;
    }
    return done;
}

int mh_hub_index_wanted(struct mh_hub *h) { return h != NULL && h->index_wanted; }

int mh_hub_defers_analysis(struct mh_hub *h)
{
    return h != NULL && MH_STORE_HAS(h->ops, msg_index) && MH_STORE_HAS(h->ops, index_pending_list);
}

int mh_hub_index_pending(struct mh_hub *h, int64_t user_id, uint64_t *count_out)
{
    *count_out = 0;
    if (!MH_STORE_HAS(h->ops, index_pending_count))
        return MH_ENOTSUP;
    return h->ops->index_pending_count(h->state, user_id, count_out);
}

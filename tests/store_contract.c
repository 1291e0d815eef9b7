/* The store contract suite: see store_contract.h.  Every op goes through c->ops. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store_contract.h"

#define SC_NULL "<NULL>" /* how a NULL string is recorded by the collectors below */
#define SC_MAX 1024      /* records a collector keeps */

struct sc {
    const struct store_contract *c;
    const struct mh_store_ops *ops;
    void *st;
};

static int sc_setup(void **state)
{
    const struct store_contract *c = *state;
    c->wipe(c->env);
    struct sc *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    f->c = c;
    f->ops = c->ops;
    f->st = c->open(c->env);
    if (f->st == NULL) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int sc_teardown(void **state)
{
    struct sc *f = *state;
    if (f->st != NULL)
        f->c->close(f->c->env, f->st);
    f->c->wipe(f->c->env);
    free(f);
    return 0;
}

static void sc_reopen(struct sc *f)
{
    f->c->close(f->c->env, f->st);
    f->st = f->c->open(f->c->env);
    assert_non_null(f->st);
}

static int sc_flush(struct sc *f)
{
    return f->ops->flush != NULL ? f->ops->flush(f->st) : MH_OK;
}

static void sc_cp(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src != NULL ? src : SC_NULL);
}

/* --------------------------------------------------------- builders */

static int64_t sc_user_full(struct sc *f, const char *name, int admin, const char *phone)
{
    static const unsigned char key[40] = {1, 2, 3, 0, 5, 6, 7, 8, 9, 10, 0, 0, 13};
    struct mh_user_rec u = {.struct_size = sizeof u,
                            .name = name,
                            .password_hash = "$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA",
                            .phone = phone,
                            .email = NULL,
                            .admin = admin,
                            .data_key = key,
                            .data_key_len = sizeof key,
                            .created = 1764000000};
    assert_int_equal(f->ops->user_put(f->st, &u), MH_OK);
    assert_true(u.id > 0);
    return u.id;
}

static int64_t sc_user(struct sc *f, const char *name)
{
    return sc_user_full(f, name, 0, NULL);
}

static int sc_account_put(struct sc *f, int64_t user_id, const char *name, int64_t *id_out)
{
    static const unsigned char secret[] = {0xde, 0xad, 0, 0xbe, 0xef};
    struct mh_account_rec a = {.struct_size = sizeof a,
                               .user_id = user_id,
                               .name = name,
                               .provider = "imap",
                               .settings = "{\"host\":\"imap.example.com\"}",
                               .secret = secret,
                               .secret_len = sizeof secret,
                               .paused = 0,
                               .status = "ok",
                               .origin = "api",
                               .created = 1764000100};
    int rc = f->ops->account_put(f->st, &a);
    if (id_out != NULL)
        *id_out = rc == MH_OK ? a.id : -1;
    return rc;
}

static int64_t sc_account(struct sc *f, int64_t user_id, const char *name)
{
    int64_t id = 0;
    assert_int_equal(sc_account_put(f, user_id, name, &id), MH_OK);
    assert_true(id > 0);
    return id;
}

/* A message with every field set; the "blob" stands for the sealed body (any bytes). */
static int sc_put_full(struct sc *f, int64_t user_id, int64_t account_id, const char *folder,
                       const char *source_id, const void *raw, size_t len, struct mh_message_ref *ref)
{
    struct mh_msg_rec m = {
        .struct_size = sizeof m,
        .user_id = user_id,
        .account_id = account_id,
        .folder = folder,
        .source_id = source_id,
        .size = len,
        .blob = raw,
        .blob_len = len,
        .flags = "\\Seen",
        .internal_date = 1700000000,
        .date = 1699999999,
        .from = "Alice <alice@example.com>",
        .to = "bob@example.com",
        .cc = NULL,
        .subject = "Grüße",
        .message_id = "<x@example.com>",
    };
    for (size_t i = 0; i < 32; i++)
        m.sha256[i] = (unsigned char)(len + i);
    *ref = (struct mh_message_ref){.struct_size = sizeof *ref, .id = -1, .duplicate = -1};
    return f->ops->put_message(f->st, &m, ref);
}

static int sc_put(struct sc *f, int64_t user_id, int64_t account_id, const char *source_id, const char *raw,
                  struct mh_message_ref *ref)
{
    return sc_put_full(f, user_id, account_id, "INBOX", source_id, raw, strlen(raw), ref);
}

static void sc_usage(struct sc *f, int64_t user_id, uint64_t bytes, uint64_t count)
{
    uint64_t b = 12345, n = 12345;
    assert_int_equal(f->ops->usage(f->st, user_id, &b, &n), MH_OK);
    assert_int_equal(b, bytes);
    assert_int_equal(n, count);
}

/* ------------------------------------------------------- collectors */

struct sc_msg {
    int64_t id, user_id, account_id, folder_id, internal_date, date, stored;
    uint32_t uid;
    uint64_t modseq, size;
    char folder[64], source_id[64], flags[64], from[64], to[64], cc[64], subject[64], message_id[64];
    unsigned char sha256[32];
    int source_gone;
    char attachments[128];
    int has_blob;
    unsigned char blob[640];
    size_t blob_len;
};

struct sc_msgs {
    size_t n;
    int stop_after; /* >0: the callback stops after this many */
    struct sc_msg v[SC_MAX];
};

static int sc_msg_cb(void *arg, const struct mh_msg_rec *m)
{
    struct sc_msgs *l = arg;
    assert_true(l->n < SC_MAX);
    assert_true(m->struct_size >= sizeof *m);
    struct sc_msg *d = &l->v[l->n++];
    memset(d, 0, sizeof *d);
    d->id = m->id;
    d->user_id = m->user_id;
    d->account_id = m->account_id;
    d->folder_id = m->folder_id;
    d->internal_date = m->internal_date;
    d->date = m->date;
    d->stored = m->stored;
    d->uid = m->uid;
    d->modseq = m->modseq;
    d->size = m->size;
    sc_cp(d->folder, sizeof d->folder, m->folder);
    sc_cp(d->source_id, sizeof d->source_id, m->source_id);
    sc_cp(d->flags, sizeof d->flags, m->flags);
    sc_cp(d->from, sizeof d->from, m->from);
    sc_cp(d->to, sizeof d->to, m->to);
    sc_cp(d->cc, sizeof d->cc, m->cc);
    sc_cp(d->subject, sizeof d->subject, m->subject);
    sc_cp(d->message_id, sizeof d->message_id, m->message_id);
    memcpy(d->sha256, m->sha256, 32);
    if (m->struct_size >= offsetof(struct mh_msg_rec, source_gone) + sizeof m->source_gone) {
        d->source_gone = m->source_gone;
        sc_cp(d->attachments, sizeof d->attachments, m->attachments);
    }
    d->has_blob = m->blob != NULL;
    if (m->blob != NULL) {
        assert_true(m->blob_len <= sizeof d->blob);
        memcpy(d->blob, m->blob, m->blob_len);
        d->blob_len = m->blob_len;
    }
    return l->stop_after > 0 && l->n >= (size_t)l->stop_after;
}

static struct sc_msgs *sc_msgs_new(void)
{
    struct sc_msgs *l = calloc(1, sizeof *l);
    assert_non_null(l);
    return l;
}

/* msg_list into l (emptied first); returns the count. */
static size_t sc_list(struct sc *f, struct sc_msgs *l, int64_t user_id, int64_t id, int64_t account_id,
                      int64_t folder_id, int64_t after_id, uint32_t limit, int with_blob)
{
    struct mh_msg_query q = {.struct_size = sizeof q,
                             .user_id = user_id,
                             .id = id,
                             .account_id = account_id,
                             .folder_id = folder_id,
                             .after_id = after_id,
                             .limit = limit,
                             .with_blob = with_blob};
    l->n = 0;
    assert_int_equal(f->ops->msg_list(f->st, &q, sc_msg_cb, l), MH_OK);
    for (size_t i = 1; i < l->n; i++)
        assert_true(l->v[i - 1].id < l->v[i].id); /* ascending */
    for (size_t i = 0; i < l->n; i++)
        assert_int_equal(l->v[i].user_id, user_id); /* never another user's */
    return l->n;
}

struct sc_folder {
    int64_t id, user_id, account_id;
    char name[64];
    uint32_t uidvalidity, uidnext;
    uint64_t highestmodseq, messages, bytes;
    int source_gone;
};

struct sc_folders {
    size_t n;
    struct sc_folder v[64];
};

static int sc_folder_cb(void *arg, const struct mh_folder_rec *r)
{
    struct sc_folders *l = arg;
    assert_true(l->n < 64);
    struct sc_folder *d = &l->v[l->n++];
    d->id = r->id;
    d->user_id = r->user_id;
    d->account_id = r->account_id;
    sc_cp(d->name, sizeof d->name, r->name);
    d->uidvalidity = r->uidvalidity;
    d->uidnext = r->uidnext;
    d->highestmodseq = r->highestmodseq;
    d->messages = r->messages;
    d->bytes = r->bytes;
    d->source_gone = r->struct_size >= offsetof(struct mh_folder_rec, source_gone) + sizeof r->source_gone
                         ? r->source_gone
                         : 0;
    return 0;
}

static size_t sc_folder_list(struct sc *f, struct sc_folders *l, int64_t user_id, int64_t account_id)
{
    l->n = 0;
    assert_int_equal(f->ops->folder_list(f->st, user_id, account_id, sc_folder_cb, l), MH_OK);
    for (size_t i = 0; i < l->n; i++) {
        assert_int_equal(l->v[i].user_id, user_id);
        if (i > 0)
            assert_true(l->v[i - 1].id < l->v[i].id);
    }
    return l->n;
}

static const struct sc_folder *sc_folder_named(const struct sc_folders *l, int64_t account_id,
                                               const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].account_id == account_id && strcmp(l->v[i].name, name) == 0)
            return &l->v[i];
    return NULL;
}

struct sc_account {
    int64_t id, user_id, created;
    char name[64], provider[32], settings[128], status[64], origin[16];
    unsigned char secret[64];
    size_t secret_len;
    int has_secret, paused;
};

struct sc_accounts {
    size_t n;
    struct sc_account v[32];
};

static int sc_account_cb(void *arg, const struct mh_account_rec *a)
{
    struct sc_accounts *l = arg;
    assert_true(l->n < 32);
    struct sc_account *d = &l->v[l->n++];
    memset(d, 0, sizeof *d);
    d->id = a->id;
    d->user_id = a->user_id;
    d->created = a->created;
    sc_cp(d->name, sizeof d->name, a->name);
    sc_cp(d->provider, sizeof d->provider, a->provider);
    sc_cp(d->settings, sizeof d->settings, a->settings);
    sc_cp(d->status, sizeof d->status, a->status);
    sc_cp(d->origin, sizeof d->origin, a->origin);
    d->has_secret = a->secret != NULL;
    if (a->secret != NULL) {
        assert_true(a->secret_len <= sizeof d->secret);
        memcpy(d->secret, a->secret, a->secret_len);
        d->secret_len = a->secret_len;
    }
    d->paused = a->paused;
    return 0;
}

/* account_get: 1 and *out, or 0. */
static int sc_account_get(struct sc *f, int64_t user_id, int64_t id, const char *name, struct sc_account *out)
{
    struct sc_accounts l = {0};
    int rc = f->ops->account_get(f->st, user_id, id, name, sc_account_cb, &l);
    assert_true(rc == 0 || rc == 1);
    assert_int_equal(l.n, (size_t)rc);
    if (rc == 1 && out != NULL)
        *out = l.v[0];
    return rc;
}

static size_t sc_account_list(struct sc *f, int64_t user_id, struct sc_accounts *l)
{
    l->n = 0;
    assert_int_equal(f->ops->account_list(f->st, user_id, sc_account_cb, l), MH_OK);
    for (size_t i = 1; i < l->n; i++)
        assert_true(l->v[i - 1].id < l->v[i].id);
    return l->n;
}

struct sc_user {
    int64_t id, created;
    char name[80], password_hash[128], phone[32], email[64];
    int admin, has_key;
    unsigned char key[64];
    size_t key_len;
};

struct sc_users {
    size_t n;
    struct sc_user v[32];
};

static int sc_user_cb(void *arg, const struct mh_user_rec *u)
{
    struct sc_users *l = arg;
    assert_true(l->n < 32);
    struct sc_user *d = &l->v[l->n++];
    memset(d, 0, sizeof *d);
    d->id = u->id;
    d->created = u->created;
    sc_cp(d->name, sizeof d->name, u->name);
    sc_cp(d->password_hash, sizeof d->password_hash, u->password_hash);
    sc_cp(d->phone, sizeof d->phone, u->phone);
    sc_cp(d->email, sizeof d->email, u->email);
    d->admin = u->admin;
    d->has_key = u->data_key != NULL;
    if (u->data_key != NULL) {
        assert_true(u->data_key_len <= sizeof d->key);
        memcpy(d->key, u->data_key, u->data_key_len);
        d->key_len = u->data_key_len;
    }
    return 0;
}

static int sc_user_get(struct sc *f, int64_t id, const char *name, struct sc_user *out)
{
    struct sc_users l = {0};
    int rc = f->ops->user_get(f->st, id, name, sc_user_cb, &l);
    assert_true(rc == 0 || rc == 1);
    assert_int_equal(l.n, (size_t)rc);
    if (rc == 1 && out != NULL)
        *out = l.v[0];
    return rc;
}

struct sc_quota {
    size_t n;
    uint64_t alloc[16];
    char reason[16][32];
    int64_t when[16];
};

static int sc_quota_cb(void *arg, uint64_t allocation, const char *reason, int64_t when)
{
    struct sc_quota *l = arg;
    assert_true(l->n < 16);
    l->alloc[l->n] = allocation;
    sc_cp(l->reason[l->n], sizeof l->reason[0], reason);
    l->when[l->n] = when;
    l->n++;
    return 0;
}

static size_t sc_quota_history(struct sc *f, int64_t user_id, struct sc_quota *l)
{
    memset(l, 0, sizeof *l);
    assert_int_equal(f->ops->quota_history(f->st, user_id, sc_quota_cb, l), MH_OK);
    return l->n;
}

/* -------------------------------------------------------------- users */

static void test_users(void **state)
{
    struct sc *f = *state;
    struct sc_user u;
    assert_int_equal(sc_user_get(f, 1, NULL, NULL), 0);
    assert_int_equal(sc_user_get(f, 0, "alice", NULL), 0);

    int64_t alice = sc_user_full(f, "alice", 1, "+8613800138000");
    int64_t bob = sc_user(f, "bob");
    assert_int_not_equal(alice, bob);

    assert_int_equal(sc_user_get(f, alice, NULL, &u), 1);
    assert_int_equal(u.id, alice);
    assert_string_equal(u.name, "alice");
    assert_string_equal(u.password_hash, "$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA");
    assert_string_equal(u.phone, "+8613800138000");
    assert_string_equal(u.email, SC_NULL);
    assert_int_equal(u.admin, 1);
    assert_int_equal(u.created, 1764000000);
    assert_true(u.has_key);
    assert_int_equal(u.key_len, 40);
    assert_int_equal(u.key[1], 2);
    assert_int_equal(u.key[3], 0);
    assert_int_equal(u.key[12], 13);
    /* By name; the id wins over the name. */
    assert_int_equal(sc_user_get(f, 0, "bob", &u), 1);
    assert_int_equal(u.id, bob);
    assert_int_equal(u.admin, 0);
    assert_int_equal(sc_user_get(f, bob, "alice", &u), 1);
    assert_int_equal(u.id, bob);
    assert_int_equal(sc_user_get(f, 0, "Alice", NULL), 0); /* names are exact */

    /* Names are unique. */
    struct mh_user_rec dup = {.struct_size = sizeof dup, .name = "alice"};
    assert_int_equal(f->ops->user_put(f->st, &dup), MH_EEXIST);

    /* Replace every field. */
    struct mh_user_rec up = {.struct_size = sizeof up,
                             .id = alice,
                             .name = "alice",
                             .password_hash = NULL,
                             .phone = NULL,
                             .email = "alice@example.org",
                             .admin = 0,
                             .data_key = "k2",
                             .data_key_len = 2,
                             .created = 1764000000};
    assert_int_equal(f->ops->user_put(f->st, &up), MH_OK);
    assert_int_equal(up.id, alice);
    assert_int_equal(sc_user_get(f, alice, NULL, &u), 1);
    assert_string_equal(u.password_hash, SC_NULL);
    assert_string_equal(u.phone, SC_NULL);
    assert_string_equal(u.email, "alice@example.org");
    assert_int_equal(u.admin, 0);
    assert_int_equal(u.key_len, 2);
    assert_memory_equal(u.key, "k2", 2);
    /* Renaming onto a taken name, or replacing a user that does not exist. */
    up.name = "bob";
    assert_int_equal(f->ops->user_put(f->st, &up), MH_EEXIST);
    up.name = "alice2";
    up.id = alice + bob + 1000;
    assert_int_equal(f->ops->user_put(f->st, &up), MH_ENOTFOUND);
    assert_int_equal(sc_user_get(f, 0, "alice2", NULL), 0);

    /* A created time of 0 on insert is "now" (the store fills it in). */
    struct mh_user_rec c = {.struct_size = sizeof c, .name = "carol"};
    assert_int_equal(f->ops->user_put(f->st, &c), MH_OK);
    assert_int_equal(sc_user_get(f, c.id, NULL, &u), 1);
    assert_true(u.created > 1600000000);
    assert_string_equal(u.password_hash, SC_NULL);
    assert_false(u.has_key);

    struct sc_users l = {0};
    assert_int_equal(f->ops->user_list(f->st, sc_user_cb, &l), MH_OK);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.v[0].id, alice);
    assert_int_equal(l.v[1].id, bob);
    assert_int_equal(l.v[2].id, c.id);
    assert_string_equal(l.v[2].name, "carol");

    assert_int_equal(f->ops->user_delete(f->st, bob), MH_OK);
    assert_int_equal(sc_user_get(f, bob, NULL, NULL), 0);
    assert_int_equal(sc_user_get(f, 0, "bob", NULL), 0);
    assert_int_equal(f->ops->user_delete(f->st, bob), MH_ENOTFOUND);
    /* The name is free again, under a new id. */
    int64_t bob2 = sc_user(f, "bob");
    assert_int_not_equal(bob2, bob);
    assert_int_equal(sc_flush(f), MH_OK);
    l.n = 0;
    assert_int_equal(f->ops->user_list(f->st, sc_user_cb, &l), MH_OK);
    assert_int_equal(l.n, 3);
}

/* ------------------------------------------------------------- tokens */

static void test_tokens(void **state)
{
    struct sc *f = *state;
    int64_t alice = sc_user(f, "alice"), bob = sc_user(f, "bob");
    unsigned char h1[32], h2[32], h3[32], h4[32];
    memset(h1, 0x11, 32);
    memset(h2, 0x22, 32);
    memset(h3, 0x33, 32);
    memset(h4, 0x11, 32);
    h4[31] = 0x12; /* differs from h1 in the last byte only */
    assert_int_equal(f->ops->token_put(f->st, alice, h1, "laptop", 0), MH_OK);
    assert_int_equal(f->ops->token_put(f->st, alice, h2, NULL, 2000000000), MH_OK);
    assert_int_equal(f->ops->token_put(f->st, bob, h3, "cli", 1800000000), MH_OK);
    assert_int_equal(f->ops->token_put(f->st, alice + bob + 1000, h4, "ghost", 0), MH_ENOTFOUND);

    int64_t uid = -1;
    assert_int_equal(f->ops->token_get(f->st, h1, 1900000000, &uid), 1);
    assert_int_equal(uid, alice);
    uid = -1;
    assert_int_equal(f->ops->token_get(f->st, h2, 1999999999, &uid), 1);
    assert_int_equal(uid, alice);
    uid = -1;
    assert_int_equal(f->ops->token_get(f->st, h3, 1700000000, &uid), 1);
    assert_int_equal(uid, bob);
    /* Expired at `now` (expires <= now); expires 0 never expires. */
    uid = -1;
    assert_int_equal(f->ops->token_get(f->st, h2, 2000000000, &uid), 0);
    assert_int_equal(f->ops->token_get(f->st, h3, 1900000000, &uid), 0);
    assert_int_equal(uid, -1);
    assert_int_equal(f->ops->token_get(f->st, h1, INT64_MAX, &uid), 1);
    assert_int_equal(f->ops->token_get(f->st, h4, 0, &uid), 0); /* unknown */

    assert_int_equal(f->ops->token_delete(f->st, h1), MH_OK);
    assert_int_equal(f->ops->token_get(f->st, h1, 0, &uid), 0);
    assert_int_equal(f->ops->token_delete(f->st, h1), MH_ENOTFOUND);
    assert_int_equal(f->ops->token_get(f->st, h2, 0, &uid), 1); /* the others stay */

    /* Deleting a user forgets their tokens. */
    assert_int_equal(f->ops->user_delete(f->st, bob), MH_OK);
    assert_int_equal(f->ops->token_get(f->st, h3, 0, &uid), 0);
    assert_int_equal(sc_flush(f), MH_OK);
    assert_int_equal(f->ops->token_get(f->st, h2, 0, &uid), 1);
}

/* ----------------------------------------------------------- accounts */

static void test_accounts(void **state)
{
    struct sc *f = *state;
    int64_t alice = sc_user(f, "alice"), bob = sc_user(f, "bob");
    int64_t work = sc_account(f, alice, "work@corp.com");
    int64_t home = sc_account(f, alice, "home");
    /* Unique per user; the same name for another user is fine. */
    assert_int_equal(sc_account_put(f, alice, "work@corp.com", NULL), MH_EEXIST);
    int64_t bwork = sc_account(f, bob, "work@corp.com");
    assert_true(work != home && work != bwork && home != bwork);
    /* No such user. */
    assert_int_equal(sc_account_put(f, alice + bob + 1000, "x", NULL), MH_ENOTFOUND);

    struct sc_account a;
    assert_int_equal(sc_account_get(f, alice, work, NULL, &a), 1);
    assert_int_equal(a.id, work);
    assert_int_equal(a.user_id, alice);
    assert_string_equal(a.name, "work@corp.com");
    assert_string_equal(a.provider, "imap");
    assert_string_equal(a.settings, "{\"host\":\"imap.example.com\"}");
    assert_true(a.has_secret);
    assert_int_equal(a.secret_len, 5);
    assert_memory_equal(a.secret, "\xde\xad\0\xbe\xef", 5);
    assert_int_equal(a.paused, 0);
    assert_string_equal(a.status, "ok");
    assert_string_equal(a.origin, "api");
    assert_int_equal(a.created, 1764000100);
    assert_int_equal(sc_account_get(f, alice, 0, "home", &a), 1);
    assert_int_equal(a.id, home);
    assert_int_equal(sc_account_get(f, bob, 0, "work@corp.com", &a), 1);
    assert_int_equal(a.id, bwork);
    assert_int_equal(sc_account_get(f, alice, 0, "nope", NULL), 0);
    /* user_id 0: any user's, by id. */
    assert_int_equal(sc_account_get(f, 0, bwork, NULL, &a), 1);
    assert_int_equal(a.user_id, bob);
    assert_int_equal(sc_account_get(f, 0, 0, "home", &a), 1);
    assert_int_equal(a.id, home);

    struct sc_accounts l;
    assert_int_equal(sc_account_list(f, alice, &l), 2);
    assert_int_equal(l.v[0].id, work);
    assert_int_equal(l.v[1].id, home);
    assert_int_equal(sc_account_list(f, bob, &l), 1);
    assert_int_equal(sc_account_list(f, 0, &l), 3);
    assert_int_equal(sc_account_list(f, alice + bob + 1000, &l), 0);

    /* Replace every field of one account. */
    struct mh_account_rec up = {.struct_size = sizeof up,
                                .id = home,
                                .user_id = alice,
                                .name = "home2",
                                .provider = "pop3",
                                .settings = "{}",
                                .secret = NULL,
                                .paused = 1,
                                .status = "error: login failed",
                                .origin = "config",
                                .created = 1764000100};
    assert_int_equal(f->ops->account_put(f->st, &up), MH_OK);
    assert_int_equal(up.id, home);
    assert_int_equal(sc_account_get(f, alice, home, NULL, &a), 1);
    assert_string_equal(a.name, "home2");
    assert_string_equal(a.provider, "pop3");
    assert_string_equal(a.settings, "{}");
    assert_false(a.has_secret);
    assert_int_equal(a.paused, 1);
    assert_string_equal(a.status, "error: login failed");
    assert_string_equal(a.origin, "config");
    assert_int_equal(sc_account_get(f, alice, 0, "home", NULL), 0);
    /* Onto a taken name: refused. */
    up.name = "work@corp.com";
    assert_int_equal(f->ops->account_put(f->st, &up), MH_EEXIST);
    /* Another user's account cannot be replaced. */
    up.name = "stolen";
    up.user_id = bob;
    assert_int_equal(f->ops->account_put(f->st, &up), MH_ENOTFOUND);
    assert_int_equal(sc_account_get(f, alice, home, NULL, &a), 1);
    assert_string_equal(a.name, "home2");
    assert_int_equal(sc_account_get(f, bob, 0, "stolen", NULL), 0);

    /* Delete: only by its own user. */
    assert_int_equal(f->ops->account_delete(f->st, bob, home), MH_ENOTFOUND);
    assert_int_equal(sc_account_get(f, alice, home, NULL, NULL), 1);
    assert_int_equal(f->ops->account_delete(f->st, alice, home), MH_OK);
    assert_int_equal(sc_account_get(f, alice, home, NULL, NULL), 0);
    assert_int_equal(f->ops->account_delete(f->st, alice, home), MH_ENOTFOUND);
    assert_int_equal(sc_account_list(f, alice, &l), 1);
    assert_int_equal(sc_flush(f), MH_OK);

    /* Deleting a user deletes their accounts. */
    assert_int_equal(f->ops->user_delete(f->st, bob), MH_OK);
    assert_int_equal(sc_account_get(f, 0, bwork, NULL, NULL), 0);
    assert_int_equal(sc_account_list(f, 0, &l), 1);
    assert_int_equal(l.v[0].id, work);
}

/* ---------------------------------------------------------- messages */

static void test_put_uids(void **state)
{
    struct sc *f = *state;
    int64_t u = sc_user(f, "alice");
    int64_t acc = sc_account(f, u, "work"), acc2 = sc_account(f, u, "home");
    struct mh_message_ref r[6];
    assert_int_equal(sc_put_full(f, u, acc, "INBOX", "uv:1:1", "one", 3, &r[0]), MH_OK);
    assert_int_equal(sc_put_full(f, u, acc, "INBOX", "uv:1:2", "two!", 4, &r[1]), MH_OK);
    assert_int_equal(sc_put_full(f, u, acc, "Sent", "uv:2:1", "sent", 4, &r[2]), MH_OK);
    assert_int_equal(sc_put_full(f, u, acc, "INBOX", "uv:1:3", "three", 5, &r[3]), MH_OK);
    assert_int_equal(sc_put_full(f, u, acc2, "INBOX", "uv:1:1", "other", 5, &r[4]), MH_OK);
    assert_int_equal(sc_put_full(f, u, acc, "Archive/2024", NULL, "arch", 4, &r[5]), MH_OK);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(r[i].duplicate, 0);
        assert_true(r[i].id > 0);
        if (i > 0)
            assert_true(r[i].id > r[i - 1].id); /* ids increase */
    }
    assert_int_equal(sc_flush(f), MH_OK);

    struct sc_msgs *l = sc_msgs_new();
    assert_int_equal(sc_list(f, l, u, 0, 0, 0, 0, 0, 0), 6);
    const struct sc_msg *m = l->v;
    /* INBOX of work: 1, 2, 3; Sent: 1; the other account's INBOX: 1. */
    assert_int_equal(m[0].uid, 1);
    assert_int_equal(m[1].uid, 2);
    assert_int_equal(m[2].uid, 1);
    assert_int_equal(m[3].uid, 3);
    assert_int_equal(m[4].uid, 1);
    assert_int_equal(m[5].uid, 1);
    assert_string_equal(m[0].folder, "INBOX");
    assert_string_equal(m[2].folder, "Sent");
    assert_string_equal(m[5].folder, "Archive/2024");
    assert_int_equal(m[0].folder_id, m[1].folder_id);
    assert_int_equal(m[0].folder_id, m[3].folder_id);
    assert_int_not_equal(m[0].folder_id, m[2].folder_id);
    assert_int_not_equal(m[0].folder_id, m[4].folder_id); /* same name, other account */
    assert_true(m[0].modseq > 0);
    assert_true(m[1].modseq > m[0].modseq);
    assert_true(m[3].modseq > m[1].modseq);

    struct sc_folders fl;
    assert_int_equal(sc_folder_list(f, &fl, u, 0), 4);
    assert_int_equal(sc_folder_list(f, &fl, u, acc2), 1);
    assert_int_equal(sc_folder_list(f, &fl, u, acc), 3);
    const struct sc_folder *inbox = sc_folder_named(&fl, acc, "INBOX");
    const struct sc_folder *sent = sc_folder_named(&fl, acc, "Sent");
    const struct sc_folder *arch = sc_folder_named(&fl, acc, "Archive/2024");
    assert_non_null(inbox);
    assert_non_null(sent);
    assert_non_null(arch);
    assert_int_equal(inbox->id, m[0].folder_id);
    assert_int_equal(inbox->uidnext, 4);
    assert_int_equal(inbox->highestmodseq, m[3].modseq);
    assert_int_equal(inbox->messages, 3);
    assert_int_equal(inbox->bytes, 12);
    assert_int_equal(sent->uidnext, 2);
    assert_int_equal(sent->messages, 1);
    assert_int_equal(sent->bytes, 4);
    assert_int_equal(inbox->account_id, acc);
    /* Every folder has its own UIDVALIDITY. */
    struct sc_folders all;
    sc_folder_list(f, &all, u, 0);
    for (size_t i = 0; i < all.n; i++) {
        assert_true(all.v[i].uidvalidity > 0);
        for (size_t j = i + 1; j < all.n; j++)
            assert_int_not_equal(all.v[i].uidvalidity, all.v[j].uidvalidity);
    }
    /* A new folder after an account was deleted and re-created: still a value never used. */
    assert_int_equal(f->ops->account_delete(f->st, u, acc2), MH_OK);
    int64_t acc3 = sc_account(f, u, "home");
    assert_int_equal(sc_put_full(f, u, acc3, "INBOX", "uv:1:1", "again", 5, &r[0]), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    struct sc_folders now;
    sc_folder_list(f, &now, u, acc3);
    assert_int_equal(now.n, 1);
    for (size_t i = 0; i < all.n; i++)
        assert_int_not_equal(now.v[0].uidvalidity, all.v[i].uidvalidity);
    free(l);
}

static void test_put_fields(void **state)
{
    struct sc *f = *state;
    int64_t u = sc_user(f, "alice"), acc = sc_account(f, u, "work");
    static const unsigned char bin[] = {'a', 0, 'b', 0, 0, 'c', '\r', '\n', 0xff};
    struct mh_message_ref r;
    assert_int_equal(sc_put_full(f, u, acc, "Lists/Grüße", "uv:5:10", bin, sizeof bin, &r), MH_OK);
    /* An empty body is a message too. */
    struct mh_message_ref e;
    assert_int_equal(sc_put_full(f, u, acc, "INBOX", "empty", "", 0, &e), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);

    struct sc_msgs *l = sc_msgs_new();
    assert_int_equal(sc_list(f, l, u, r.id, 0, 0, 0, 0, 1), 1);
    const struct sc_msg *m = &l->v[0];
    assert_int_equal(m->id, r.id);
    assert_int_equal(m->user_id, u);
    assert_int_equal(m->account_id, acc);
    assert_true(m->folder_id > 0);
    assert_string_equal(m->folder, "Lists/Grüße");
    assert_int_equal(m->uid, 1);
    assert_true(m->modseq > 0);
    assert_string_equal(m->source_id, "uv:5:10");
    assert_int_equal(m->size, sizeof bin);
    for (int i = 0; i < 32; i++)
        assert_int_equal(m->sha256[i], (unsigned char)(sizeof bin + (size_t)i));
    assert_true(m->has_blob);
    assert_int_equal(m->blob_len, sizeof bin);
    assert_memory_equal(m->blob, bin, sizeof bin);
    assert_string_equal(m->flags, "\\Seen");
    assert_int_equal(m->internal_date, 1700000000);
    assert_int_equal(m->date, 1699999999);
    assert_string_equal(m->from, "Alice <alice@example.com>");
    assert_string_equal(m->to, "bob@example.com");
    assert_string_equal(m->cc, SC_NULL);
    assert_string_equal(m->subject, "Grüße");
    assert_string_equal(m->message_id, "<x@example.com>");
    assert_true(m->stored > 1600000000); /* set by the store */

    /* Without the blob the rest is the same. */
    assert_int_equal(sc_list(f, l, u, r.id, 0, 0, 0, 0, 0), 1);
    assert_int_equal(l->v[0].size, sizeof bin);
    assert_string_equal(l->v[0].subject, "Grüße");

    assert_int_equal(sc_list(f, l, u, e.id, 0, 0, 0, 0, 1), 1);
    assert_true(l->v[0].has_blob);
    assert_int_equal(l->v[0].blob_len, 0);
    assert_int_equal(l->v[0].size, 0);
    sc_usage(f, u, sizeof bin, 2);
    free(l);
}

static void test_duplicate(void **state)
{
    struct sc *f = *state;
    int64_t alice = sc_user(f, "alice"), bob = sc_user(f, "bob");
    int64_t work = sc_account(f, alice, "work"), home = sc_account(f, alice, "home");
    int64_t bwork = sc_account(f, bob, "work");
    struct mh_message_ref a, b, c, d;
    assert_int_equal(sc_put(f, alice, work, "mid:<x@y>:00", "first", &a), MH_OK);
    assert_int_equal(a.duplicate, 0);
    assert_int_equal(sc_flush(f), MH_OK);
    /* Same identity, different bytes, same folder: still the one stored message, nothing written. */
    assert_int_equal(sc_put_full(f, alice, work, "INBOX", "mid:<x@y>:00", "second, longer", 14, &b), MH_OK);
    assert_int_equal(b.duplicate, 1);
    assert_int_equal(b.id, a.id);
    assert_int_equal(sc_flush(f), MH_OK);
    struct sc_folders fl;
    assert_int_equal(sc_folder_list(f, &fl, alice, work), 1);
    assert_int_equal(fl.v[0].uidnext, 2);
    assert_int_equal(fl.v[0].messages, 1);
    sc_usage(f, alice, 5, 1);
    /* Another folder: since SDK 1.2 the identity is per folder (IMAP UIDs are; two folders may share a
     * UIDVALIDITY), so it is another message; a 1.1 store kept one per account. */
    int per_folder = f->ops->struct_size >= offsetof(struct mh_store_ops, has_source) + sizeof f->ops->has_source &&
                     f->ops->has_source != NULL;
    assert_int_equal(sc_put_full(f, alice, work, "Elsewhere", "mid:<x@y>:00", "other", 5, &b), MH_OK);
    assert_int_equal(b.duplicate, per_folder ? 0 : 1);
    assert_int_equal(sc_flush(f), MH_OK);
    if (per_folder) {
        assert_int_not_equal(b.id, a.id);
        assert_int_equal(f->ops->has_source(f->st, alice, work, "Elsewhere", "mid:<x@y>:00"), 1);
        assert_int_equal(f->ops->has_source(f->st, alice, work, "INBOX", "mid:<x@y>:00"), 1);
        assert_int_equal(f->ops->has_source(f->st, alice, work, "Third", "mid:<x@y>:00"), 0);
        assert_int_equal(f->ops->has_source(f->st, bob, work, "INBOX", "mid:<x@y>:00"), 0); /* not bob's */
        sc_usage(f, alice, 10, 2);
        /* put it again in both: nothing more */
        assert_int_equal(sc_put_full(f, alice, work, "Elsewhere", "mid:<x@y>:00", "other", 5, &b), MH_OK);
        assert_int_equal(b.duplicate, 1);
        sc_usage(f, alice, 10, 2);
        assert_int_equal(f->ops->account_delete(f->st, alice, work), MH_OK); /* the rest as before */
        work = sc_account(f, alice, "work");
        assert_int_equal(sc_put(f, alice, work, "mid:<x@y>:00", "first", &a), MH_OK);
        assert_int_equal(sc_flush(f), MH_OK);
        sc_usage(f, alice, 5, 1);
    }
    /* Identity is per (user, account, source_id). */
    assert_int_equal(sc_put(f, alice, home, "mid:<x@y>:00", "first", &c), MH_OK);
    assert_int_equal(c.duplicate, 0);
    assert_int_not_equal(c.id, a.id);
    assert_int_equal(sc_put(f, bob, bwork, "mid:<x@y>:00", "first", &d), MH_OK);
    assert_int_equal(d.duplicate, 0);
    assert_int_equal(sc_flush(f), MH_OK);
    sc_usage(f, alice, 10, 2);
    sc_usage(f, bob, 5, 1);
    struct sc_msgs *l = sc_msgs_new();
    assert_int_equal(sc_list(f, l, alice, a.id, 0, 0, 0, 0, 1), 1);
    assert_memory_equal(l->v[0].blob, "first", 5); /* the first bytes stay */
    free(l);
}

static void test_duplicate_in_batch(void **state)
{
    struct sc *f = *state;
    int64_t u = sc_user(f, "alice"), acc = sc_account(f, u, "work");
    struct mh_message_ref a, b;
    /* A duplicate of a message that is not flushed yet is still a duplicate. */
    assert_int_equal(sc_put(f, u, acc, "uidl:42", "abc", &a), MH_OK);
    assert_int_equal(sc_put(f, u, acc, "uidl:42", "abc", &b), MH_OK);
    assert_int_equal(b.duplicate, 1);
    assert_int_equal(b.id, a.id);
    assert_int_equal(sc_flush(f), MH_OK);
    sc_usage(f, u, 3, 1);
}

static void test_no_source_id(void **state)
{
    struct sc *f = *state;
    int64_t u = sc_user(f, "alice"), acc = sc_account(f, u, "work");
    struct mh_message_ref a, b;
    /* Without a source identity there is no deduplication. */
    assert_int_equal(sc_put_full(f, u, acc, "INBOX", NULL, "same", 4, &a), MH_OK);
    assert_int_equal(sc_put_full(f, u, acc, "INBOX", NULL, "same", 4, &b), MH_OK);
    assert_int_equal(a.duplicate, 0);
    assert_int_equal(b.duplicate, 0);
    assert_int_not_equal(a.id, b.id);
    assert_int_equal(sc_flush(f), MH_OK);
    sc_usage(f, u, 8, 2);
    struct sc_msgs *l = sc_msgs_new();
    assert_int_equal(sc_list(f, l, u, 0, 0, 0, 0, 0, 0), 2);
    assert_string_equal(l->v[0].source_id, SC_NULL);
    free(l);
}

static void test_put_refused(void **state)
{
    struct sc *f = *state;
    int64_t alice = sc_user(f, "alice"), bob = sc_user(f, "bob");
    int64_t work = sc_account(f, alice, "work");
    struct mh_message_ref r;
    /* Unknown user, unknown account, another user's account: nothing is written. */
    assert_int_equal(sc_put(f, alice + bob + 1000, work, "a", "x", &r), MH_ENOTFOUND);
    assert_int_equal(sc_put(f, alice, work + 1000, "a", "x", &r), MH_ENOTFOUND);
    assert_int_equal(sc_put(f, bob, work, "a", "x", &r), MH_ENOTFOUND);
    /* A folder name is required. */
    assert_int_equal(sc_put_full(f, alice, work, NULL, "b", "x", 1, &r), MH_EINVAL);
    /* The batch goes on. */
    assert_int_equal(sc_put(f, alice, work, "ok", "fine", &r), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    sc_usage(f, alice, 4, 1);
    sc_usage(f, bob, 0, 0);
    struct sc_folders fl;
    assert_int_equal(sc_folder_list(f, &fl, bob, 0), 0);
    assert_int_equal(sc_folder_list(f, &fl, alice, 0), 1);
    assert_int_equal(fl.v[0].uidnext, 2);
}

static void test_usage_exact(void **state)
{
    struct sc *f = *state;
    int64_t alice = sc_user(f, "alice"), bob = sc_user(f, "bob"), carol = sc_user(f, "carol");
    int64_t work = sc_account(f, alice, "work"), bwork = sc_account(f, bob, "work");
    struct mh_message_ref r;
    sc_usage(f, alice, 0, 0);
    sc_usage(f, alice + bob + carol + 1000, 0, 0); /* no such user: nothing used */
    /* Binary content with NULs: the size is the byte count, not strlen. */
    static const char bin[] = {'a', 0, 'b', 0, 0, 'c', '\r', '\n'};
    uint64_t bytes = 0, count = 0;
    char sid[32], raw[600];
    for (int i = 0; i < 50; i++) {
        size_t len = (size_t)(i * 11 % 577);
        memset(raw, 'x', len);
        snprintf(sid, sizeof sid, "uv:7:%d", i);
        assert_int_equal(sc_put_full(f, alice, work, i % 2 ? "INBOX" : "Sent", sid, raw, len, &r), MH_OK);
        bytes += len;
        count++;
    }
    assert_int_equal(sc_put_full(f, alice, work, "INBOX", "bin", bin, sizeof bin, &r), MH_OK);
    bytes += sizeof bin;
    count++;
    /* Unflushed puts count already (on this instance). */
    sc_usage(f, alice, bytes, count);
    assert_int_equal(sc_put_full(f, alice, work, "INBOX", "bin", bin, sizeof bin, &r), MH_OK); /* duplicate */
    assert_int_equal(r.duplicate, 1);
    assert_int_equal(sc_put(f, bob, bwork, "uv:7:1", "12345", &r), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    sc_usage(f, alice, bytes, count);
    sc_usage(f, bob, 5, 1);
    sc_usage(f, carol, 0, 0);
    /* The folders add up to the usage. */
    struct sc_folders fl;
    sc_folder_list(f, &fl, alice, 0);
    uint64_t fb = 0, fc = 0;
    for (size_t i = 0; i < fl.n; i++) {
        fb += fl.v[i].bytes;
        fc += fl.v[i].messages;
    }
    assert_int_equal(fb, bytes);
    assert_int_equal(fc, count);
}

static void test_usage_after_deletes(void **state)
{
    struct sc *f = *state;
    int64_t alice = sc_user(f, "alice"), bob = sc_user(f, "bob");
    int64_t work = sc_account(f, alice, "work"), home = sc_account(f, alice, "home");
    int64_t bwork = sc_account(f, bob, "work");
    struct mh_message_ref r, keep;
    assert_int_equal(sc_put(f, alice, work, "w1", "12345", &r), MH_OK);
    assert_int_equal(sc_put_full(f, alice, work, "Sent", "w2", "123", 3, &r), MH_OK);
    assert_int_equal(sc_put(f, alice, home, "h1", "1234567", &keep), MH_OK);
    assert_int_equal(sc_put(f, bob, bwork, "b1", "12", &r), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    sc_usage(f, alice, 15, 3);

    /* Deleting an account takes its folders and messages, and their usage. */
    assert_int_equal(f->ops->account_delete(f->st, alice, work), MH_OK);
    sc_usage(f, alice, 7, 1);
    assert_int_equal(sc_flush(f), MH_OK);
    sc_usage(f, alice, 7, 1);
    sc_usage(f, bob, 2, 1);
    struct sc_msgs *l = sc_msgs_new();
    assert_int_equal(sc_list(f, l, alice, 0, 0, 0, 0, 0, 0), 1);
    assert_int_equal(l->v[0].id, keep.id);
    assert_int_equal(sc_list(f, l, alice, 0, work, 0, 0, 0, 0), 0);
    struct sc_folders fl;
    assert_int_equal(sc_folder_list(f, &fl, alice, 0), 1);
    assert_int_equal(fl.v[0].account_id, home);
    if (f->ops->has_source_id != NULL)
        assert_int_equal(f->ops->has_source_id(f->st, alice, work, "w1"), 0);
    /* A message stored again after the delete is new. */
    int64_t work2 = sc_account(f, alice, "work");
    assert_int_equal(sc_put(f, alice, work2, "w1", "12345", &r), MH_OK);
    assert_int_equal(r.duplicate, 0);
    sc_usage(f, alice, 12, 2);

    /* Deleting a user takes everything of theirs, and nothing of anyone else's. */
    assert_int_equal(f->ops->quota_set(f->st, alice, 1000, "initial"), MH_OK);
    assert_int_equal(f->ops->user_delete(f->st, alice), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    sc_usage(f, alice, 0, 0);
    assert_int_equal(sc_folder_list(f, &fl, alice, 0), 0);
    struct sc_accounts al;
    assert_int_equal(sc_account_list(f, alice, &al), 0);
    uint64_t alloc = 0;
    assert_int_equal(f->ops->quota_get(f->st, alice, &alloc), 0);
    struct sc_quota q;
    assert_int_equal(sc_quota_history(f, alice, &q), 0);
    sc_usage(f, bob, 2, 1);
    assert_int_equal(sc_list(f, l, bob, 0, 0, 0, 0, 0, 0), 1);
    /* A new user of the same name starts empty. */
    int64_t alice2 = sc_user(f, "alice");
    sc_usage(f, alice2, 0, 0);
    assert_int_equal(sc_list(f, l, alice2, 0, 0, 0, 0, 0, 0), 0);
    free(l);
}

static void test_has_source_id(void **state)
{
    struct sc *f = *state;
    if (f->ops->has_source_id == NULL)
        skip();
    int64_t alice = sc_user(f, "alice"), bob = sc_user(f, "bob");
    int64_t work = sc_account(f, alice, "work"), home = sc_account(f, alice, "home");
    int64_t bwork = sc_account(f, bob, "work");
    struct mh_message_ref r;
    assert_int_equal(f->ops->has_source_id(f->st, alice, work, "uv:9:9"), 0);
    assert_int_equal(sc_put(f, alice, work, "uv:9:9", "x", &r), MH_OK);
    assert_int_equal(f->ops->has_source_id(f->st, alice, work, "uv:9:9"), 1); /* before the flush too */
    assert_int_equal(sc_flush(f), MH_OK);
    assert_int_equal(f->ops->has_source_id(f->st, alice, work, "uv:9:9"), 1);
    assert_int_equal(f->ops->has_source_id(f->st, alice, home, "uv:9:9"), 0);
    assert_int_equal(f->ops->has_source_id(f->st, bob, bwork, "uv:9:9"), 0);
    assert_int_equal(f->ops->has_source_id(f->st, bob, work, "uv:9:9"), 0); /* not bob's */
    assert_int_equal(f->ops->has_source_id(f->st, alice, work, "uv:9:8"), 0);
}

/* -------------------------------------------------------------- quota */

static void test_quota(void **state)
{
    struct sc *f = *state;
    int64_t alice = sc_user(f, "alice"), bob = sc_user(f, "bob");
    uint64_t alloc = 77;
    struct sc_quota h;
    assert_int_equal(f->ops->quota_get(f->st, alice, &alloc), 0);
    assert_int_equal(sc_quota_history(f, alice, &h), 0);
    assert_int_equal(f->ops->quota_set(f->st, alice, 30u << 20, "initial"), MH_OK);
    assert_int_equal(f->ops->quota_get(f->st, alice, &alloc), 1);
    assert_int_equal(alloc, 30u << 20);
    assert_int_equal(f->ops->quota_set(f->st, alice, 60u << 20, "extended"), MH_OK);
    assert_int_equal(f->ops->quota_get(f->st, alice, &alloc), 1);
    assert_int_equal(alloc, 60u << 20);
    assert_int_equal(f->ops->quota_get(f->st, bob, &alloc), 0);
    assert_int_equal(f->ops->quota_set(f->st, bob, (uint64_t)1 << 40, "initial"), MH_OK);
    assert_int_equal(f->ops->quota_get(f->st, bob, &alloc), 1);
    assert_int_equal(alloc, (uint64_t)1 << 40);
    assert_int_equal(f->ops->quota_set(f->st, alice, 45u << 20, "admin"), MH_OK);
    assert_int_equal(f->ops->quota_get(f->st, alice, &alloc), 1);
    assert_int_equal(alloc, 45u << 20);
    /* Unknown user; an allocation no signed 64-bit column holds. */
    assert_int_equal(f->ops->quota_set(f->st, alice + bob + 1000, 1, "initial"), MH_ENOTFOUND);
    assert_int_equal(f->ops->quota_set(f->st, alice, UINT64_MAX, "too big"), MH_EINVAL);
    assert_int_equal(sc_flush(f), MH_OK);

    assert_int_equal(sc_quota_history(f, alice, &h), 3);
    assert_int_equal(h.alloc[0], 30u << 20);
    assert_string_equal(h.reason[0], "initial");
    assert_int_equal(h.alloc[1], 60u << 20);
    assert_string_equal(h.reason[1], "extended");
    assert_int_equal(h.alloc[2], 45u << 20);
    assert_string_equal(h.reason[2], "admin");
    for (int i = 0; i < 3; i++)
        assert_true(h.when[i] > 1600000000);
    assert_true(h.when[0] <= h.when[1] && h.when[1] <= h.when[2]);
    assert_int_equal(sc_quota_history(f, bob, &h), 1);
    assert_int_equal(h.alloc[0], (uint64_t)1 << 40);
}

static void test_quota_with_pending_puts(void **state)
{
    struct sc *f = *state;
    int64_t u = sc_user(f, "alice"), acc = sc_account(f, u, "work");
    struct mh_message_ref r;
    uint64_t alloc = 0;
    /* quota_set in the middle of a batch must neither lose the batch nor the allocation. */
    assert_int_equal(sc_put(f, u, acc, "a", "aaaa", &r), MH_OK);
    assert_int_equal(f->ops->quota_set(f->st, u, 1000, "initial"), MH_OK);
    assert_int_equal(sc_put(f, u, acc, "b", "bb", &r), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    sc_usage(f, u, 6, 2);
    assert_int_equal(f->ops->quota_get(f->st, u, &alloc), 1);
    assert_int_equal(alloc, 1000);
}

/* ----------------------------------------------------------- listing */

static void test_msg_list_filters(void **state)
{
    struct sc *f = *state;
    int64_t u = sc_user(f, "alice");
    int64_t work = sc_account(f, u, "work"), home = sc_account(f, u, "home");
    struct mh_message_ref r;
    int64_t ids[12];
    char sid[16];
    /* 12 messages: accounts alternate, folders INBOX/Sent in turns of three. */
    for (int i = 0; i < 12; i++) {
        snprintf(sid, sizeof sid, "m%d", i);
        assert_int_equal(
            sc_put_full(f, u, i % 2 ? home : work, (i / 3) % 2 ? "Sent" : "INBOX", sid, sid, strlen(sid), &r),
            MH_OK);
        ids[i] = r.id;
    }
    assert_int_equal(sc_flush(f), MH_OK);
    struct sc_folders fl;
    sc_folder_list(f, &fl, u, 0);
    const struct sc_folder *winbox = sc_folder_named(&fl, work, "INBOX");
    const struct sc_folder *hsent = sc_folder_named(&fl, home, "Sent");
    assert_non_null(winbox);
    assert_non_null(hsent);

    struct sc_msgs *l = sc_msgs_new();
    assert_int_equal(sc_list(f, l, u, 0, 0, 0, 0, 0, 0), 12);
    for (int i = 0; i < 12; i++)
        assert_int_equal(l->v[i].id, ids[i]);
    /* By account. */
    assert_int_equal(sc_list(f, l, u, 0, work, 0, 0, 0, 0), 6);
    for (size_t i = 0; i < l->n; i++) {
        assert_int_equal(l->v[i].account_id, work);
        assert_int_equal(l->v[i].id, ids[2 * i]);
    }
    /* By folder: work's INBOX holds m0, m2, m6, m8. */
    assert_int_equal(sc_list(f, l, u, 0, 0, winbox->id, 0, 0, 0), 4);
    assert_int_equal(l->v[0].id, ids[0]);
    assert_int_equal(l->v[1].id, ids[2]);
    assert_int_equal(l->v[2].id, ids[6]);
    assert_int_equal(l->v[3].id, ids[8]);
    assert_int_equal(l->v[3].uid, 4);
    /* Folder and account together; a folder of another account gives nothing. */
    assert_int_equal(sc_list(f, l, u, 0, work, winbox->id, 0, 0, 0), 4);
    assert_int_equal(sc_list(f, l, u, 0, work, hsent->id, 0, 0, 0), 0);
    /* Paging: after_id and limit. */
    assert_int_equal(sc_list(f, l, u, 0, 0, 0, ids[4], 0, 0), 7);
    assert_int_equal(l->v[0].id, ids[5]);
    assert_int_equal(sc_list(f, l, u, 0, 0, 0, ids[4], 3, 0), 3);
    assert_int_equal(l->v[2].id, ids[7]);
    assert_int_equal(sc_list(f, l, u, 0, work, 0, ids[4], 2, 0), 2);
    assert_int_equal(l->v[0].id, ids[6]);
    assert_int_equal(l->v[1].id, ids[8]);
    assert_int_equal(sc_list(f, l, u, 0, 0, winbox->id, ids[2], 1, 0), 1);
    assert_int_equal(l->v[0].id, ids[6]);
    assert_int_equal(sc_list(f, l, u, 0, 0, 0, ids[11], 0, 0), 0);
    /* Paging through everything, two at a time. */
    int64_t after = 0;
    size_t seen = 0;
    while (sc_list(f, l, u, 0, 0, 0, after, 2, 0) > 0) {
        for (size_t i = 0; i < l->n; i++)
            assert_int_equal(l->v[i].id, ids[seen++]);
        after = l->v[l->n - 1].id;
    }
    assert_int_equal(seen, 12);
    /* One message by id, with or without its blob; id and other filters must all match. */
    assert_int_equal(sc_list(f, l, u, ids[3], 0, 0, 0, 0, 1), 1);
    assert_true(l->v[0].has_blob);
    assert_memory_equal(l->v[0].blob, "m3", 2);
    assert_string_equal(l->v[0].folder, "Sent");
    assert_int_equal(sc_list(f, l, u, ids[3], home, 0, 0, 0, 0), 1);
    assert_int_equal(sc_list(f, l, u, ids[3], work, 0, 0, 0, 0), 0);
    assert_int_equal(sc_list(f, l, u, ids[3], 0, 0, ids[3], 0, 0), 0);
    assert_int_equal(sc_list(f, l, u, ids[11] + 1000, 0, 0, 0, 0, 0), 0);
    /* The callback stops the listing. */
    l->n = 0;
    l->stop_after = 2;
    struct mh_msg_query q = {.struct_size = sizeof q, .user_id = u};
    assert_int_equal(f->ops->msg_list(f->st, &q, sc_msg_cb, l), MH_OK);
    assert_int_equal(l->n, 2);
    free(l);
}

struct sc_nested {
    struct sc *f;
    int64_t user_id;
    int calls, inner_total, accounts_seen;
};

static int sc_nested_count(void *arg, const struct mh_msg_rec *m)
{
    (void)m;
    ((struct sc_nested *)arg)->inner_total++;
    return 0;
}

static int sc_nested_acc(void *arg, const struct mh_account_rec *a)
{
    (void)a;
    ((struct sc_nested *)arg)->accounts_seen++;
    return 0;
}

/* From inside a msg_list callback: the same listing again, and an account lookup. */
static int sc_nested_cb(void *arg, const struct mh_msg_rec *m)
{
    struct sc_nested *n = arg;
    n->calls++;
    struct mh_msg_query q = {.struct_size = sizeof q, .user_id = n->user_id};
    assert_int_equal(n->f->ops->msg_list(n->f->st, &q, sc_nested_count, n), MH_OK);
    assert_int_equal(n->f->ops->account_get(n->f->st, n->user_id, m->account_id, NULL, sc_nested_acc, n), 1);
    return 0;
}

static void test_reads_inside_callbacks(void **state)
{
    struct sc *f = *state;
    int64_t u = sc_user(f, "alice"), acc = sc_account(f, u, "work");
    struct mh_message_ref r;
    assert_int_equal(sc_put(f, u, acc, "a", "1", &r), MH_OK);
    assert_int_equal(sc_put(f, u, acc, "b", "2", &r), MH_OK);
    assert_int_equal(sc_put(f, u, acc, "c", "3", &r), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    struct sc_nested n = {.f = f, .user_id = u};
    struct mh_msg_query q = {.struct_size = sizeof q, .user_id = u};
    assert_int_equal(f->ops->msg_list(f->st, &q, sc_nested_cb, &n), MH_OK);
    assert_int_equal(n.calls, 3);
    assert_int_equal(n.inner_total, 9);
    assert_int_equal(n.accounts_seen, 3);
}

/* ---------------------------------------------------- tenant isolation */

static void test_tenant_isolation(void **state)
{
    struct sc *f = *state;
    int64_t a = sc_user(f, "alice"), b = sc_user(f, "bob");
    int64_t aacc = sc_account(f, a, "secret-work");
    int64_t bacc = sc_account(f, b, "mine");
    struct mh_message_ref am, bm;
    assert_int_equal(sc_put(f, a, aacc, "s1", "alice's mail", &am), MH_OK);
    assert_int_equal(sc_put(f, b, bacc, "s1", "bob's", &bm), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    struct sc_folders fl;
    assert_int_equal(sc_folder_list(f, &fl, a, 0), 1);
    int64_t afolder = fl.v[0].id;

    /* Bob asks for alice's message, account and folder in every way he can. */
    struct sc_msgs *l = sc_msgs_new();
    assert_int_equal(sc_list(f, l, b, am.id, 0, 0, 0, 0, 1), 0);
    assert_int_equal(sc_list(f, l, b, am.id, aacc, afolder, 0, 0, 1), 0);
    assert_int_equal(sc_list(f, l, b, 0, aacc, 0, 0, 0, 1), 0);
    assert_int_equal(sc_list(f, l, b, 0, 0, afolder, 0, 0, 1), 0);
    assert_int_equal(sc_list(f, l, b, 0, aacc, afolder, 0, 0, 1), 0);
    assert_int_equal(sc_list(f, l, b, 0, 0, 0, 0, 0, 1), 1); /* only his own */
    assert_int_equal(l->v[0].id, bm.id);
    assert_int_equal(sc_folder_list(f, &fl, b, aacc), 0);
    assert_int_equal(sc_folder_list(f, &fl, b, 0), 1);
    assert_int_not_equal(fl.v[0].id, afolder);
    assert_int_equal(sc_account_get(f, b, aacc, NULL, NULL), 0);
    assert_int_equal(sc_account_get(f, b, 0, "secret-work", NULL), 0);
    struct sc_accounts al;
    assert_int_equal(sc_account_list(f, b, &al), 1);
    assert_int_equal(al.v[0].id, bacc);
    if (f->ops->has_source_id != NULL)
        assert_int_equal(f->ops->has_source_id(f->st, b, aacc, "s1"), 0);
    /* Nor can he change or delete it, or file mail under it. */
    assert_int_equal(f->ops->account_delete(f->st, b, aacc), MH_ENOTFOUND);
    struct mh_account_rec steal = {.struct_size = sizeof steal,
                                   .id = aacc,
                                   .user_id = b,
                                   .name = "secret-work",
                                   .provider = "imap",
                                   .status = "ok",
                                   .origin = "api"};
    assert_int_equal(f->ops->account_put(f->st, &steal), MH_ENOTFOUND);
    struct mh_message_ref r;
    assert_int_equal(sc_put(f, b, aacc, "s2", "planted", &r), MH_ENOTFOUND);
    assert_int_equal(sc_put(f, b, aacc, "s1", "planted", &r), MH_ENOTFOUND); /* not even a "duplicate" */
    assert_int_equal(sc_flush(f), MH_OK);

    /* Alice's data is untouched, and her usage is hers alone. */
    assert_int_equal(sc_list(f, l, a, 0, 0, 0, 0, 0, 1), 1);
    assert_int_equal(l->v[0].id, am.id);
    assert_memory_equal(l->v[0].blob, "alice's mail", 12);
    struct sc_account acc;
    assert_int_equal(sc_account_get(f, a, aacc, NULL, &acc), 1);
    assert_int_equal(acc.user_id, a);
    sc_usage(f, a, 12, 1);
    sc_usage(f, b, 5, 1);
    /* Deleting bob leaves alice alone. */
    assert_int_equal(f->ops->user_delete(f->st, b), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    assert_int_equal(sc_list(f, l, a, 0, 0, 0, 0, 0, 0), 1);
    sc_usage(f, a, 12, 1);
    free(l);
}

/* ------------------------------------------------------- batching */

static void test_flush(void **state)
{
    struct sc *f = *state;
    int64_t u = sc_user(f, "alice"), acc = sc_account(f, u, "work");
    struct mh_message_ref r;
    char sid[32];
    assert_int_equal(sc_flush(f), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK); /* nothing pending */
    /* More than any sensible default batch, so commits happen both ways. */
    for (int i = 0; i < 700; i++) {
        snprintf(sid, sizeof sid, "uv:1:%d", i);
        assert_int_equal(sc_put(f, u, acc, sid, "0123456789", &r), MH_OK);
        assert_int_equal(r.duplicate, 0);
    }
    assert_int_equal(sc_flush(f), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    sc_usage(f, u, 7000, 700);
    struct sc_msgs *l = sc_msgs_new();
    assert_int_equal(sc_list(f, l, u, 0, 0, 0, 0, 0, 0), 700);
    for (size_t i = 0; i < 700; i++)
        assert_int_equal(l->v[i].uid, i + 1);
    free(l);
}

/* -------------------------------------------------------- persistence */

static void test_reopen(void **state)
{
    struct sc *f = *state;
    if (!f->c->persistent)
        skip();
    int64_t u = sc_user(f, "alice"), acc = sc_account(f, u, "work");
    unsigned char h[32];
    memset(h, 0x5a, 32);
    assert_int_equal(f->ops->token_put(f->st, u, h, "laptop", 0), MH_OK);
    struct mh_message_ref a, b;
    uint64_t alloc = 0;
    assert_int_equal(sc_put(f, u, acc, "uv:3:1", "hello", &a), MH_OK);
    assert_int_equal(sc_put(f, u, acc, "uv:3:2", "world!", &b), MH_OK);
    assert_int_equal(f->ops->quota_set(f->st, u, 4096, "initial"), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    struct sc_folders before;
    assert_int_equal(sc_folder_list(f, &before, u, 0), 1);

    sc_reopen(f);
    struct sc_user usr;
    assert_int_equal(sc_user_get(f, 0, "alice", &usr), 1);
    assert_int_equal(usr.id, u);
    assert_int_equal(usr.key_len, 40);
    struct sc_account ac;
    assert_int_equal(sc_account_get(f, u, 0, "work", &ac), 1);
    assert_int_equal(ac.id, acc);
    int64_t who = 0;
    assert_int_equal(f->ops->token_get(f->st, h, 0, &who), 1);
    assert_int_equal(who, u);
    sc_usage(f, u, 11, 2);
    assert_int_equal(f->ops->quota_get(f->st, u, &alloc), 1);
    assert_int_equal(alloc, 4096);
    struct sc_quota q;
    assert_int_equal(sc_quota_history(f, u, &q), 1);
    if (f->ops->has_source_id != NULL)
        assert_int_equal(f->ops->has_source_id(f->st, u, acc, "uv:3:2"), 1);
    struct mh_message_ref again;
    assert_int_equal(sc_put(f, u, acc, "uv:3:1", "hello", &again), MH_OK);
    assert_int_equal(again.duplicate, 1);
    assert_int_equal(again.id, a.id);
    /* UIDs, UIDVALIDITY and modseq are as they were; the next put continues from uidnext. */
    struct sc_folders after;
    assert_int_equal(sc_folder_list(f, &after, u, 0), 1);
    assert_int_equal(after.v[0].id, before.v[0].id);
    assert_int_equal(after.v[0].uidvalidity, before.v[0].uidvalidity);
    assert_int_equal(after.v[0].uidnext, 3);
    assert_int_equal(after.v[0].highestmodseq, before.v[0].highestmodseq);
    struct sc_msgs *l = sc_msgs_new();
    assert_int_equal(sc_list(f, l, u, 0, 0, 0, 0, 0, 1), 2);
    assert_int_equal(l->v[0].uid, 1);
    assert_int_equal(l->v[1].uid, 2);
    assert_memory_equal(l->v[1].blob, "world!", 6);
    struct mh_message_ref c;
    assert_int_equal(sc_put(f, u, acc, "uv:3:3", "abc", &c), MH_OK);
    assert_int_equal(c.duplicate, 0);
    assert_true(c.id > b.id);
    /* A put that close() ends without an explicit flush is kept too. */
    sc_reopen(f);
    sc_usage(f, u, 14, 3);
    assert_int_equal(sc_list(f, l, u, c.id, 0, 0, 0, 0, 0), 1);
    assert_int_equal(l->v[0].uid, 3);
    assert_true(l->v[0].modseq > before.v[0].highestmodseq);
    /* Ids are not reused after a delete, even of the newest message. */
    assert_int_equal(f->ops->account_delete(f->st, u, acc), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    sc_reopen(f);
    int64_t acc2 = sc_account(f, u, "work");
    assert_true(acc2 > acc);
    assert_int_equal(sc_put(f, u, acc2, "uv:3:3", "abc", &a), MH_OK);
    assert_true(a.id > c.id);
    assert_int_equal(sc_flush(f), MH_OK);
    struct sc_folders fresh;
    assert_int_equal(sc_folder_list(f, &fresh, u, 0), 1);
    assert_int_not_equal(fresh.v[0].uidvalidity, before.v[0].uidvalidity);
    free(l);
}

/* ------------------------------------------------------- SDK 1.2 ops */

#define SC_HAS(ops, field) \
    ((ops)->struct_size >= offsetof(struct mh_store_ops, field) + sizeof((ops)->field) && (ops)->field != NULL)

static int sc_need_12(struct sc *f)
{
    /* every 1.2 op, or none: a store that has some must have all */
    int n = SC_HAS(f->ops, state_get) + SC_HAS(f->ops, state_put) + SC_HAS(f->ops, msg_set_source) +
            SC_HAS(f->ops, msg_rekey) + SC_HAS(f->ops, folder_change) + SC_HAS(f->ops, source_list);
    assert_true(n == 0 || n == 6);
    return n == 6;
}

/* A message with given content (sha256 derived from it), search terms and attachments. */
static int sc_put_12(struct sc *f, int64_t u, int64_t acc, const char *folder, const char *source_id,
                     const char *raw, const char *terms, struct mh_message_ref *ref)
{
    struct mh_msg_rec m = {.struct_size = sizeof m,
                           .user_id = u,
                           .account_id = acc,
                           .folder = folder,
                           .source_id = source_id,
                           .size = strlen(raw),
                           .blob = raw,
                           .blob_len = strlen(raw),
                           .flags = "\\Seen",
                           .search_terms = terms,
                           .attachments = "[{\"name\":\"a.pdf\",\"type\":\"application/pdf\",\"size\":3}]"};
    for (size_t i = 0; i < 32; i++)
        m.sha256[i] = (unsigned char)(raw[0] + i);
    *ref = (struct mh_message_ref){.struct_size = sizeof *ref, .id = -1, .duplicate = -1};
    return f->ops->put_message(f->st, &m, ref);
}

static void test_sync_state(void **state)
{
    struct sc *f = *state;
    if (!sc_need_12(f))
        skip();
    int64_t a = sc_user(f, "alice"), b = sc_user(f, "bob");
    int64_t acc = sc_account(f, a, "work"), bacc = sc_account(f, b, "work");
    char *v = (char *)"untouched";
    assert_int_equal(f->ops->state_get(f->st, a, acc, "f:INBOX", &v), 0);
    assert_null(v);
    assert_int_equal(f->ops->state_put(f->st, a, acc, "f:INBOX", "uv=7 next=10"), MH_OK);
    assert_int_equal(f->ops->state_put(f->st, a, acc, "f:INBOX", "uv=7 next=12"), MH_OK);
    assert_int_equal(f->ops->state_put(f->st, a, acc, "folders", "f1=INBOX"), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    assert_int_equal(f->ops->state_get(f->st, a, acc, "f:INBOX", &v), 1);
    assert_string_equal(v, "uv=7 next=12");
    free(v);
    /* another user's account: neither readable nor writable */
    assert_int_equal(f->ops->state_get(f->st, b, acc, "f:INBOX", &v), 0);
    assert_int_equal(f->ops->state_put(f->st, b, acc, "f:INBOX", "evil"), MH_ENOTFOUND);
    assert_int_equal(f->ops->state_get(f->st, b, bacc, "f:INBOX", &v), 0);
    assert_int_equal(sc_flush(f), MH_OK);
    if (f->c->persistent) {
        sc_reopen(f);
        assert_int_equal(f->ops->state_get(f->st, a, acc, "f:INBOX", &v), 1);
        assert_string_equal(v, "uv=7 next=12");
        free(v);
    }
    /* delete one key; the account's removal takes the rest */
    assert_int_equal(f->ops->state_put(f->st, a, acc, "f:INBOX", NULL), MH_OK);
    assert_int_equal(f->ops->state_get(f->st, a, acc, "f:INBOX", &v), 0);
    assert_int_equal(f->ops->account_delete(f->st, a, acc), MH_OK);
    assert_int_equal(f->ops->state_get(f->st, a, acc, "folders", &v), 0);
    assert_int_equal(sc_flush(f), MH_OK);
}

struct sc_src {
    size_t n;
    char id[8][16];
    int gone[8];
};

static int src_cb(void *arg, const struct mh_source_msg *m)
{
    struct sc_src *s = arg;
    assert_true(s->n < 8);
    snprintf(s->id[s->n], sizeof s->id[0], "%s", m->source_id);
    s->gone[s->n] = m->gone;
    s->n++;
    return 0;
}

static void test_source_changes(void **state)
{
    struct sc *f = *state;
    if (!sc_need_12(f))
        skip();
    int64_t a = sc_user(f, "alice"), b = sc_user(f, "bob");
    int64_t acc = sc_account(f, a, "work");
    struct mh_message_ref r1, r2;
    assert_int_equal(sc_put_12(f, a, acc, "INBOX", "f1/7/1", "one", NULL, &r1), MH_OK);
    assert_int_equal(sc_put_12(f, a, acc, "INBOX", "f1/7/2", "two", NULL, &r2), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    struct sc_msgs *l = sc_msgs_new();
    assert_int_equal(sc_list(f, l, a, r1.id, 0, 0, 0, 0, 0), 1);
    uint64_t ms0 = l->v[0].modseq;
    assert_string_equal(l->v[0].attachments, "[{\"name\":\"a.pdf\",\"type\":\"application/pdf\",\"size\":3}]");
    assert_int_equal(l->v[0].source_gone, 0);

    /* flags mirrored: a new modseq, above every other in the folder */
    assert_int_equal(f->ops->msg_set_source(f->st, a, acc, "INBOX", "f1/7/1", "\\Seen \\Flagged", -1), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    assert_int_equal(sc_list(f, l, a, r1.id, 0, 0, 0, 0, 0), 1);
    assert_string_equal(l->v[0].flags, "\\Seen \\Flagged");
    uint64_t ms1 = l->v[0].modseq;
    assert_true(ms1 > ms0);
    struct sc_folders fl;
    sc_folder_list(f, &fl, a, acc);
    assert_int_equal(fl.v[0].highestmodseq, ms1);
    /* the same flags again: nothing changes */
    assert_int_equal(f->ops->msg_set_source(f->st, a, acc, "INBOX", "f1/7/1", "\\Seen \\Flagged", -1), MH_OK);
    assert_int_equal(sc_list(f, l, a, r1.id, 0, 0, 0, 0, 0), 1);
    assert_int_equal(l->v[0].modseq, ms1);
    /* no flags at all */
    assert_int_equal(f->ops->msg_set_source(f->st, a, acc, "INBOX", "f1/7/1", "", -1), MH_OK);
    assert_int_equal(sc_list(f, l, a, r1.id, 0, 0, 0, 0, 0), 1);
    assert_string_equal(l->v[0].flags, SC_NULL);
    /* expunged at the source: kept, marked, flags untouched */
    assert_int_equal(f->ops->msg_set_source(f->st, a, acc, "INBOX", "f1/7/2", NULL, 1), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    assert_int_equal(sc_list(f, l, a, r2.id, 0, 0, 0, 0, 0), 1);
    assert_int_equal(l->v[0].source_gone, 1);
    assert_string_equal(l->v[0].flags, "\\Seen");
    sc_usage(f, a, 6, 2);
    /* unknown, or another user's */
    assert_int_equal(f->ops->msg_set_source(f->st, a, acc, "INBOX", "f1/7/3", "", -1), MH_ENOTFOUND);
    assert_int_equal(f->ops->msg_set_source(f->st, b, acc, "INBOX", "f1/7/1", "\\Deleted", -1), MH_ENOTFOUND);
    assert_int_equal(sc_list(f, l, a, r1.id, 0, 0, 0, 0, 0), 1);
    assert_string_equal(l->v[0].flags, SC_NULL);

    /* source_list: what the provider compares with the server, by UID */
    struct sc_src src = {0};
    assert_int_equal(f->ops->source_list(f->st, a, acc, "INBOX", src_cb, &src), MH_OK);
    assert_int_equal(src.n, 2);
    assert_string_equal(src.id[0], "f1/7/1");
    assert_string_equal(src.id[1], "f1/7/2");
    assert_int_equal(src.gone[0], 0);
    assert_int_equal(src.gone[1], 1);
    src.n = 0;
    assert_int_equal(f->ops->source_list(f->st, b, acc, "INBOX", src_cb, &src), MH_OK);
    assert_int_equal(src.n, 0);
    assert_int_equal(f->ops->source_list(f->st, a, acc, "Nope", src_cb, &src), MH_OK);
    assert_int_equal(src.n, 0);
    free(l);
}


static void test_rekey(void **state)
{
    struct sc *f = *state;
    if (!sc_need_12(f))
        skip();
    int64_t a = sc_user(f, "alice"), b = sc_user(f, "bob");
    int64_t acc = sc_account(f, a, "work"), bacc = sc_account(f, b, "work");
    struct mh_message_ref r1, r2, r3, k;
    /* two identical messages and one other, under UIDVALIDITY 7 */
    assert_int_equal(sc_put_12(f, a, acc, "INBOX", "f1/7/1", "same", NULL, &r1), MH_OK);
    assert_int_equal(sc_put_12(f, a, acc, "INBOX", "f1/7/2", "same", NULL, &r2), MH_OK);
    assert_int_equal(sc_put_12(f, a, acc, "INBOX", "f1/7/3", "other", NULL, &r3), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    unsigned char same[32], none[32];
    for (size_t i = 0; i < 32; i++) {
        same[i] = (unsigned char)('s' + i);
        none[i] = (unsigned char)('z' + i);
    }
    /* UIDVALIDITY became 9: each identical copy is claimed once, lowest UID first */
    k = (struct mh_message_ref){.struct_size = sizeof k};
    assert_int_equal(f->ops->msg_rekey(f->st, a, acc, "INBOX", same, "f1/9/", "f1/9/1", &k), 1);
    assert_int_equal(k.id, r1.id);
    assert_int_equal(k.duplicate, 1);
    assert_int_equal(f->ops->msg_rekey(f->st, a, acc, "INBOX", same, "f1/9/", "f1/9/2", &k), 1);
    assert_int_equal(k.id, r2.id);
    assert_int_equal(f->ops->msg_rekey(f->st, a, acc, "INBOX", same, "f1/9/", "f1/9/3", &k), 0);
    assert_int_equal(f->ops->msg_rekey(f->st, a, acc, "INBOX", none, "f1/9/", "f1/9/4", &k), 0);
    assert_int_equal(f->ops->msg_rekey(f->st, a, acc, "Other", same, "f1/9/", "f1/9/5", &k), 0);
    /* not across users */
    assert_int_equal(f->ops->msg_rekey(f->st, b, bacc, "INBOX", same, "f1/9/", "f1/9/1", &k), 0);
    assert_int_equal(f->ops->msg_rekey(f->st, b, acc, "INBOX", same, "f1/9/", "f1/9/1", &k), 0);
    assert_int_equal(sc_flush(f), MH_OK);
    assert_int_equal(f->ops->has_source_id(f->st, a, acc, "f1/9/1"), 1);
    assert_int_equal(f->ops->has_source_id(f->st, a, acc, "f1/9/2"), 1);
    assert_int_equal(f->ops->has_source_id(f->st, a, acc, "f1/7/1"), 0);
    assert_int_equal(f->ops->has_source_id(f->st, a, acc, "f1/7/3"), 1);
    sc_usage(f, a, 13, 3); /* nothing stored twice */
}

static void test_folder_change(void **state)
{
    struct sc *f = *state;
    if (!sc_need_12(f))
        skip();
    int64_t a = sc_user(f, "alice"), b = sc_user(f, "bob");
    int64_t acc = sc_account(f, a, "work");
    struct mh_message_ref r;
    assert_int_equal(sc_put_12(f, a, acc, "Projects", "f2/5/1", "p1", NULL, &r), MH_OK);
    assert_int_equal(sc_put_12(f, a, acc, "INBOX", "f1/5/1", "i1", NULL, &r), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    struct sc_folders before, after;
    sc_folder_list(f, &before, a, acc);
    const struct sc_folder *p = sc_folder_named(&before, acc, "Projects");
    assert_non_null(p);
    assert_int_equal(f->ops->folder_change(f->st, a, acc, "Projects", "INBOX"), MH_EEXIST);
    assert_int_equal(f->ops->folder_change(f->st, b, acc, "Projects", "Mine"), MH_ENOTFOUND);
    assert_int_equal(f->ops->folder_change(f->st, a, acc, "Nope", "Mine"), MH_ENOTFOUND);
    assert_int_equal(f->ops->folder_change(f->st, a, acc, "Projects", "Archive/Projects"), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    sc_folder_list(f, &after, a, acc);
    const struct sc_folder *q = sc_folder_named(&after, acc, "Archive/Projects");
    assert_non_null(q);
    assert_null(sc_folder_named(&after, acc, "Projects"));
    assert_int_equal(q->id, p->id);
    assert_int_equal(q->uidvalidity, p->uidvalidity); /* clients keep their cache */
    assert_int_equal(q->messages, 1);
    /* new mail for the new name lands in the same folder */
    assert_int_equal(sc_put_12(f, a, acc, "Archive/Projects", "f2/5/2", "p2", NULL, &r), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    sc_folder_list(f, &after, a, acc);
    assert_int_equal(sc_folder_named(&after, acc, "Archive/Projects")->messages, 2);
    assert_int_equal(after.n, 2);
    /* deleted at the source: kept and marked */
    assert_int_equal(f->ops->folder_change(f->st, a, acc, "INBOX", NULL), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    sc_folder_list(f, &after, a, acc);
    assert_int_equal(sc_folder_named(&after, acc, "INBOX")->source_gone, 1);
    assert_int_equal(sc_folder_named(&after, acc, "INBOX")->messages, 1);
    assert_int_equal(sc_folder_named(&after, acc, "Archive/Projects")->source_gone, 0);
    sc_usage(f, a, 6, 3);
}

static size_t sc_search(struct sc *f, struct sc_msgs *l, int64_t user_id, int64_t account_id, const char *terms,
                        int desc, int64_t after_id, uint32_t limit)
{
    struct mh_msg_query q = {.struct_size = sizeof q,
                             .user_id = user_id,
                             .account_id = account_id,
                             .after_id = after_id,
                             .limit = limit,
                             .search = terms,
                             .descending = desc};
    l->n = 0;
    assert_int_equal(f->ops->msg_list(f->st, &q, sc_msg_cb, l), MH_OK);
    for (size_t i = 1; i < l->n; i++)
        assert_true(desc ? l->v[i - 1].id > l->v[i].id : l->v[i - 1].id < l->v[i].id);
    for (size_t i = 0; i < l->n; i++)
        assert_int_equal(l->v[i].user_id, user_id);
    return l->n;
}

static void test_search(void **state)
{
    struct sc *f = *state;
    if (!sc_need_12(f))
        skip();
    int64_t a = sc_user(f, "alice"), b = sc_user(f, "bob");
    int64_t acc = sc_account(f, a, "work"), acc2 = sc_account(f, a, "home"), bacc = sc_account(f, b, "work");
    struct mh_message_ref r1, r2, r3, r4;
    assert_int_equal(sc_put_12(f, a, acc, "INBOX", "s1", "m1", "AAAA1 BBBB2", &r1), MH_OK);
    assert_int_equal(sc_put_12(f, a, acc, "INBOX", "s2", "m2", "BBBB2 CCCC3", &r2), MH_OK);
    assert_int_equal(sc_put_12(f, a, acc2, "INBOX", "s3", "m3", "BBBB2", &r3), MH_OK);
    assert_int_equal(sc_put_12(f, b, bacc, "INBOX", "s4", "m4", "AAAA1 BBBB2", &r4), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    struct sc_msgs *l = sc_msgs_new();
    assert_int_equal(sc_search(f, l, a, 0, "BBBB2", 0, 0, 0), 3);
    assert_int_equal(sc_search(f, l, a, 0, "AAAA1 BBBB2", 0, 0, 0), 1);
    assert_int_equal(l->v[0].id, r1.id);
    assert_int_equal(sc_search(f, l, a, 0, "aaaa1", 0, 0, 0), 1); /* terms are case-blind */
    assert_int_equal(sc_search(f, l, a, 0, "ZZZZ9", 0, 0, 0), 0);
    assert_int_equal(sc_search(f, l, a, 0, "   ", 0, 0, 0), 0);
    assert_int_equal(sc_search(f, l, a, acc2, "BBBB2", 0, 0, 0), 1);
    assert_int_equal(l->v[0].id, r3.id);
    /* newest first, paged */
    assert_int_equal(sc_search(f, l, a, 0, "BBBB2", 1, 0, 2), 2);
    assert_int_equal(l->v[0].id, r3.id);
    assert_int_equal(l->v[1].id, r2.id);
    assert_int_equal(sc_search(f, l, a, 0, "BBBB2", 1, r2.id, 2), 1);
    assert_int_equal(l->v[0].id, r1.id);
    /* bob's index is bob's */
    assert_int_equal(sc_search(f, l, b, 0, "BBBB2", 0, 0, 0), 1);
    assert_int_equal(l->v[0].id, r4.id);
    /* a term that is not an opaque term is refused, not interpreted */
    struct mh_msg_query bad = {.struct_size = sizeof bad, .user_id = a, .search = "x\" OR \"y"};
    assert_int_equal(f->ops->msg_list(f->st, &bad, sc_msg_cb, l), MH_EINVAL);
    /* newest first without a search */
    assert_int_equal(sc_search(f, l, a, 0, NULL, 1, 0, 0), 3);
    assert_int_equal(l->v[0].id, r3.id);
    /* removed with the account */
    assert_int_equal(f->ops->account_delete(f->st, a, acc), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    assert_int_equal(sc_search(f, l, a, 0, "BBBB2", 0, 0, 0), 1);
    free(l);
}

/* ------------------------------------------------------- SDK 1.3 ops */

static int sc_need_13(struct sc *f)
{
    int n = SC_HAS(f->ops, index_pending_list) + SC_HAS(f->ops, msg_index) + SC_HAS(f->ops, index_pending_count);
    assert_true(n == 0 || n == 3);
    return n == 3 && sc_need_12(f);
}

static uint64_t sc_pending(struct sc *f, int64_t user_id)
{
    uint64_t n = 99;
    assert_int_equal(f->ops->index_pending_count(f->st, user_id, &n), MH_OK);
    return n;
}

static size_t sc_queue(struct sc *f, struct sc_msgs *l, int64_t after_id, uint32_t limit)
{
    l->n = 0;
    assert_int_equal(f->ops->index_pending_list(f->st, after_id, limit, sc_msg_cb, l), MH_OK);
    for (size_t i = 1; i < l->n; i++)
        assert_true(l->v[i - 1].id < l->v[i].id);
    return l->n;
}

/* Deferred analysis: a message put with index_pending waits in the queue, with its blob, until
 * msg_index gives it its terms and attachments; exactly once, per user, and gone with the message. */
static void test_index_queue(void **state)
{
    struct sc *f = *state;
    if (!sc_need_13(f))
        skip();
    int64_t a = sc_user(f, "alice"), b = sc_user(f, "bob");
    int64_t acc = sc_account(f, a, "work"), bacc = sc_account(f, b, "work");
    struct mh_message_ref r[4];
    const char *src[4] = {"q1", "q2", "q3", "q4"}, *raw[4] = {"m1 body", "m2 body", "m3", "m4 of bob"};
    for (int i = 0; i < 4; i++) {
        struct mh_msg_rec m = {.struct_size = sizeof m,
                               .user_id = i == 3 ? b : a,
                               .account_id = i == 3 ? bacc : acc,
                               .folder = "INBOX",
                               .source_id = src[i],
                               .size = strlen(raw[i]),
                               .blob = raw[i],
                               .blob_len = strlen(raw[i]),
                               .subject = "queued",
                               .index_pending = i != 2}; /* the third is analysed on arrival */
        if (i == 2) {
            m.search_terms = "CCCC3";
            m.attachments = "[]";
        }
        r[i] = (struct mh_message_ref){.struct_size = sizeof r[i]};
        assert_int_equal(f->ops->put_message(f->st, &m, &r[i]), MH_OK);
    }
    /* the store's own reads see the queue before the flush */
    assert_int_equal(sc_pending(f, a), 2);
    assert_int_equal(sc_flush(f), MH_OK);
    assert_int_equal(sc_pending(f, a), 2);
    assert_int_equal(sc_pending(f, b), 1);
    assert_int_equal(sc_pending(f, 0), 3);
    struct sc_msgs *l = sc_msgs_new();
    assert_int_equal(sc_queue(f, l, 0, 0), 3);
    assert_int_equal(l->v[0].id, r[0].id);
    assert_int_equal(l->v[1].id, r[1].id);
    assert_int_equal(l->v[2].id, r[3].id);
    /* with the blob (the core opens it) and the owner (the core picks the key) */
    assert_true(l->v[0].has_blob);
    assert_int_equal(l->v[0].blob_len, strlen(raw[0]));
    assert_memory_equal(l->v[0].blob, raw[0], strlen(raw[0]));
    assert_int_equal(l->v[0].user_id, a);
    assert_int_equal(l->v[0].account_id, acc);
    assert_int_equal(l->v[2].user_id, b);
    assert_string_equal(l->v[0].subject, "queued");
    /* paging */
    assert_int_equal(sc_queue(f, l, 0, 1), 1);
    assert_int_equal(sc_queue(f, l, r[0].id, 0), 2);
    assert_int_equal(l->v[0].id, r[1].id);
    /* not searchable yet */
    assert_int_equal(sc_search(f, l, a, 0, "AAAA1", 0, 0, 0), 0);
    assert_int_equal(sc_search(f, l, a, 0, "CCCC3", 0, 0, 0), 1);
    /* analysed: searchable, attachments set, off the queue; a second time is "not pending" */
    assert_int_equal(f->ops->msg_index(f->st, r[0].id, "AAAA1 BBBB2",
                                       "[{\"name\":\"x.pdf\",\"type\":\"application/pdf\",\"size\":3}]"),
                     MH_OK);
    assert_int_equal(f->ops->msg_index(f->st, r[0].id, "ZZZZ9", NULL), MH_ENOTFOUND);
    assert_int_equal(f->ops->msg_index(f->st, r[2].id, "ZZZZ9", NULL), MH_ENOTFOUND); /* never queued */
    assert_int_equal(f->ops->msg_index(f->st, 987654, "ZZZZ9", NULL), MH_ENOTFOUND);
    assert_int_equal(sc_pending(f, a), 1);
    assert_int_equal(sc_flush(f), MH_OK);
    assert_int_equal(sc_search(f, l, a, 0, "AAAA1 BBBB2", 0, 0, 0), 1);
    assert_int_equal(l->v[0].id, r[0].id);
    assert_non_null(strstr(l->v[0].attachments, "x.pdf"));
    assert_int_equal(sc_search(f, l, a, 0, "ZZZZ9", 0, 0, 0), 0);
    /* bob's queue entry and index are bob's */
    assert_int_equal(sc_search(f, l, b, 0, "AAAA1", 0, 0, 0), 0);
    /* nothing to index (a message that could not be opened) still leaves the queue */
    assert_int_equal(f->ops->msg_index(f->st, r[1].id, NULL, NULL), MH_OK);
    assert_int_equal(sc_pending(f, a), 0);
    assert_int_equal(sc_queue(f, l, 0, 0), 1);
    assert_int_equal(l->v[0].id, r[3].id);
    if (f->c->persistent) {
        assert_int_equal(sc_flush(f), MH_OK);
        sc_reopen(f);
        assert_int_equal(sc_pending(f, b), 1);
        assert_int_equal(sc_search(f, l, a, 0, "AAAA1", 0, 0, 0), 1);
    }
    /* a queued message deleted with its account leaves the queue too */
    assert_int_equal(f->ops->account_delete(f->st, b, bacc), MH_OK);
    assert_int_equal(sc_pending(f, b), 0);
    assert_int_equal(sc_queue(f, l, 0, 0), 0);
    assert_int_equal(sc_flush(f), MH_OK);
    free(l);
}

struct sc_jobs {
    size_t n;
    int64_t id[16];
    char state[16][16], key[16][64], detail[16][32];
    int attempts[16];
    int64_t next_at[16];
};

static int sc_job_cb(void *arg, const struct mh_job_rec *j)
{
    struct sc_jobs *l = arg;
    assert_true(l->n < 16);
    l->id[l->n] = j->id;
    sc_cp(l->state[l->n], sizeof l->state[0], j->state);
    sc_cp(l->key[l->n], sizeof l->key[0], j->key);
    sc_cp(l->detail[l->n], sizeof l->detail[0], j->detail);
    l->attempts[l->n] = j->attempts;
    l->next_at[l->n] = j->next_at;
    assert_non_null(j->event);
    assert_non_null(j->notifier);
    l->n++;
    return 0;
}

static size_t sc_jobs_of(struct sc *f, struct sc_jobs *l, int64_t user_id, const char *state, int64_t due)
{
    struct mh_job_query q = {.struct_size = sizeof q, .user_id = user_id, .state = state, .due_before = due};
    memset(l, 0, sizeof *l);
    assert_int_equal(f->ops->job_list(f->st, &q, sc_job_cb, l), MH_OK);
    return l->n;
}

static void test_outbox(void **state)
{
    struct sc *f = *state;
    if (!SC_HAS(f->ops, job_put))
        skip();
    int64_t a = sc_user(f, "alice"), b = sc_user(f, "bob");
    struct mh_job_rec j = {.struct_size = sizeof j, .key = "evt_1/sms", .user_id = a, .notifier = "sms",
                           .event_type = "mail.received", .event = "{\"id\":\"evt_1\"}", .state = "pending",
                           .next_at = 1000, .created = 5000};
    assert_int_equal(f->ops->job_put(f->st, &j), MH_OK);
    int64_t j1 = j.id;
    assert_true(j1 > 0);
    /* the same key again: created once */
    j.id = 0;
    assert_int_equal(f->ops->job_put(f->st, &j), MH_EEXIST);
    assert_int_equal(j.id, j1);
    struct mh_job_rec k = j;
    k.id = 0;
    k.key = "evt_1/webhook";
    k.notifier = "webhook";
    k.next_at = 3000;
    k.created = 6000;
    assert_int_equal(f->ops->job_put(f->st, &k), MH_OK);
    struct mh_job_rec sys = {.struct_size = sizeof sys, .key = "evt_2/webhook", .notifier = "webhook",
                             .event_type = "daemon.started", .event = "{}", .state = "pending", .next_at = 500};
    assert_int_equal(f->ops->job_put(f->st, &sys), MH_OK);
    struct mh_job_rec bj = j;
    bj.id = 0;
    bj.key = "evt_3/sms";
    bj.user_id = b;
    assert_int_equal(f->ops->job_put(f->st, &bj), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);

    struct sc_jobs l;
    assert_int_equal(sc_jobs_of(f, &l, 0, "pending", 0), 4);
    assert_int_equal(sc_jobs_of(f, &l, 0, "pending", 2000), 3); /* due before 2000 */
    assert_int_equal(sc_jobs_of(f, &l, a, NULL, 0), 2);
    assert_string_equal(l.key[0], "evt_1/sms");
    assert_int_equal(sc_jobs_of(f, &l, b, NULL, 0), 1);

    /* an attempt failed: retry later; then dead */
    j.id = j1;
    j.state = "pending";
    j.attempts = 1;
    j.next_at = 9000;
    j.detail = "HTTP 503";
    assert_int_equal(f->ops->job_put(f->st, &j), MH_OK);
    j.state = "dead";
    j.attempts = 8;
    j.detail = "HTTP 503 after 8 attempts";
    assert_int_equal(f->ops->job_put(f->st, &j), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    assert_int_equal(sc_jobs_of(f, &l, a, "dead", 0), 1);
    assert_int_equal(l.attempts[0], 8);
    assert_string_equal(l.detail[0], "HTTP 503 after 8 attempts");
    struct mh_job_rec ghost = j;
    ghost.id = 999999;
    assert_int_equal(f->ops->job_put(f->st, &ghost), MH_ENOTFOUND);

    /* rate limits count what was created for a user and channel */
    uint64_t n = 99;
    assert_int_equal(f->ops->job_count(f->st, a, "sms", 0, &n), MH_OK);
    assert_int_equal(n, 1);
    assert_int_equal(f->ops->job_count(f->st, a, "webhook", 6000, &n), MH_OK);
    assert_int_equal(n, 1);
    assert_int_equal(f->ops->job_count(f->st, a, "webhook", 6001, &n), MH_OK);
    assert_int_equal(n, 0);

    /* delivered jobs are pruned once old; dead ones stay for a replay */
    k.state = "delivered";
    k.updated = 7000;
    assert_int_equal(f->ops->job_put(f->st, &k), MH_OK);
    assert_int_equal(f->ops->job_prune(f->st, 8000, &n), MH_OK);
    assert_int_equal(n, 1);
    assert_int_equal(sc_flush(f), MH_OK);
    assert_int_equal(sc_jobs_of(f, &l, a, NULL, 0), 1);
    assert_string_equal(l.state[0], "dead");
    /* a user's jobs go with the user */
    assert_int_equal(f->ops->user_delete(f->st, b), MH_OK);
    assert_int_equal(sc_flush(f), MH_OK);
    assert_int_equal(sc_jobs_of(f, &l, 0, NULL, 0), 2);
}

static void test_user_prefs(void **state)
{
    struct sc *f = *state;
    if (!SC_HAS(f->ops, user_pref_get))
        skip();
    int64_t a = sc_user(f, "alice"), b = sc_user(f, "bob");
    char *v = NULL;
    assert_int_equal(f->ops->user_pref_get(f->st, a, "notify", &v), 0);
    assert_int_equal(f->ops->user_pref_put(f->st, a, "notify", "{\"mute\":[\"news\"]}"), MH_OK);
    assert_int_equal(f->ops->user_pref_put(f->st, a, "notify", "{\"mute\":[]}"), MH_OK);
    assert_int_equal(f->ops->user_pref_put(f->st, 424242, "notify", "{}"), MH_ENOTFOUND);
    assert_int_equal(sc_flush(f), MH_OK);
    assert_int_equal(f->ops->user_pref_get(f->st, a, "notify", &v), 1);
    assert_string_equal(v, "{\"mute\":[]}");
    free(v);
    assert_int_equal(f->ops->user_pref_get(f->st, b, "notify", &v), 0);
    assert_int_equal(f->ops->user_pref_put(f->st, a, "notify", NULL), MH_OK);
    assert_int_equal(f->ops->user_pref_get(f->st, a, "notify", &v), 0);
    assert_int_equal(sc_flush(f), MH_OK);
}

int store_contract_run(const struct store_contract *c)
{
    void *pre = (void *)c;
#define SC_TEST(fn) cmocka_unit_test_prestate_setup_teardown(fn, sc_setup, sc_teardown, pre)
    const struct CMUnitTest tests[] = {
        SC_TEST(test_users),
        SC_TEST(test_tokens),
        SC_TEST(test_accounts),
        SC_TEST(test_put_uids),
        SC_TEST(test_put_fields),
        SC_TEST(test_duplicate),
        SC_TEST(test_duplicate_in_batch),
        SC_TEST(test_no_source_id),
        SC_TEST(test_put_refused),
        SC_TEST(test_usage_exact),
        SC_TEST(test_usage_after_deletes),
        SC_TEST(test_has_source_id),
        SC_TEST(test_quota),
        SC_TEST(test_quota_with_pending_puts),
        SC_TEST(test_msg_list_filters),
        SC_TEST(test_reads_inside_callbacks),
        SC_TEST(test_tenant_isolation),
        SC_TEST(test_flush),
        SC_TEST(test_reopen),
        SC_TEST(test_sync_state),
        SC_TEST(test_source_changes),
        SC_TEST(test_rekey),
        SC_TEST(test_folder_change),
        SC_TEST(test_search),
        SC_TEST(test_outbox),
        SC_TEST(test_user_prefs),
        SC_TEST(test_index_queue),
    };
#undef SC_TEST
    return _cmocka_run_group_tests(c->name, tests, sizeof tests / sizeof tests[0], NULL, NULL);
}

/*
 * The sqlite store, against the mock host: its own behaviour (schema and
 * migrations, pragmas, file mode, batching and commit visibility, query
 * plans, crash safety, errors), then the store contract suite with a small
 * batch.  The plugin's source is included rather than linked, so that the
 * tests can read its SQL (query plans) and its migrations (a v1 database).
 */
#include "../../plugins/sqlite/sqlite.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <signal.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "mock_host.h"
#include "store_contract.h"

#define D (&mh_plugin_descriptor)
#define OPS ((const struct mh_store_ops *)mh_plugin_descriptor.ops)

struct fx {
    struct mock_host *mh;
    void *st;
    char db[512];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    f->mh = mock_host_new("store", "sqlite");
    snprintf(f->db, sizeof f->db, "%s/mailhub.db", mock_host_data_dir(f->mh));
    *state = f;
    return 0;
}

static void fx_close(struct fx *f)
{
    if (f->st != NULL) {
        OPS->close(f->st);
        D->free(f->st);
        f->st = NULL;
    }
}

static int teardown(void **state)
{
    struct fx *f = *state;
    fx_close(f);
    mock_host_free(&f->mh);
    free(f);
    return 0;
}

static int open_with(struct fx *f, const char *const *kv)
{
    fx_close(f);
    const struct mh_config *cfg = mock_host_config(f->mh, D->options, kv);
    assert_non_null(cfg);
    assert_int_equal(D->init(mock_host_ctx(f->mh), cfg, &f->st), MH_OK);
    return OPS->open(f->st);
}

static int64_t new_user(struct fx *f, const char *name)
{
    struct mh_user_rec u = {.struct_size = sizeof u, .name = name};
    assert_int_equal(OPS->user_put(f->st, &u), MH_OK);
    return u.id;
}

static int64_t new_account(struct fx *f, int64_t user_id, const char *name)
{
    struct mh_account_rec a = {.struct_size = sizeof a, .user_id = user_id, .name = name, .provider = "mbox"};
    assert_int_equal(OPS->account_put(f->st, &a), MH_OK);
    return a.id;
}

static int put(struct fx *f, int64_t user_id, int64_t account_id, const char *sid, const char *blob,
               struct mh_message_ref *ref)
{
    struct mh_msg_rec m = {.struct_size = sizeof m,
                           .user_id = user_id,
                           .account_id = account_id,
                           .folder = "Archive/2024",
                           .source_id = sid,
                           .size = strlen(blob) + 100,
                           .blob = blob,
                           .blob_len = strlen(blob),
                           .flags = "\\Seen \\Flagged",
                           .internal_date = 1704067200,
                           .date = 1704067100,
                           .from = "a@example.com",
                           .subject = "hi"};
    memset(m.sha256, 0xab, sizeof m.sha256);
    return OPS->put_message(f->st, &m, ref);
}

/* One integer from another connection, which sees only what is committed; -1 on error. */
static int64_t query_int(const char *db, const char *sql)
{
    sqlite3 *c = NULL;
    sqlite3_stmt *st = NULL;
    int64_t n = -1;
    if (sqlite3_open_v2(db, &c, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(c, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(c);
    return n;
}

static void exec_sql(const char *db, const char *sql)
{
    sqlite3 *c = NULL;
    assert_int_equal(sqlite3_open(db, &c), SQLITE_OK);
    char *err = NULL;
    int rc = sqlite3_exec(c, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        fprintf(stderr, "exec_sql: %s\n", err ? err : "?");
    sqlite3_free(err);
    sqlite3_close(c);
    assert_int_equal(rc, SQLITE_OK);
}

static size_t log_count(struct fx *f, const char *needle)
{
    size_t n = 0;
    for (size_t i = 0; i < mock_host_log_count(f->mh); i++)
        n += strstr(mock_host_log_line(f->mh, i), needle) != NULL;
    return n;
}

/* ------------------------------------------------------------ tests */

static void test_descriptor(void **state)
{
    (void)state;
    assert_int_equal(D->kind, MH_KIND_STORE);
    assert_string_equal(D->name, "sqlite");
    /* Every op of SDK 1.1. */
    const void *const ops[] = {
        OPS->open,        OPS->close,         OPS->put_message,   OPS->flush,          OPS->usage,
        OPS->quota_get,   OPS->quota_set,     OPS->has_source_id, OPS->user_put,       OPS->user_get,
        OPS->user_list,   OPS->user_delete,   OPS->token_put,     OPS->token_get,      OPS->token_delete,
        OPS->account_put, OPS->account_get,   OPS->account_list,  OPS->account_delete, OPS->folder_list,
        OPS->msg_list,    OPS->quota_history,
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        assert_non_null(ops[i]);
    assert_int_equal(OPS->struct_size, sizeof(struct mh_store_ops));
    /* Every option is documented (what --plugin-help prints). */
    size_t n = 0;
    for (const struct mh_option *o = D->options; o->name != NULL; o++, n++) {
        assert_non_null(o->help);
        assert_true(strlen(o->help) > 10);
    }
    assert_int_equal(n, 4);
}

static void test_schema_and_mode(void **state)
{
    struct fx *f = *state;
    mode_t old = umask(022);
    int rc = open_with(f, NULL);
    assert_int_equal(rc, MH_OK);
    struct mh_message_ref ref;
    int64_t u = new_user(f, "alice");
    assert_int_equal(put(f, u, new_account(f, u, "work"), "a", "x", &ref), MH_OK);
    assert_int_equal(OPS->flush(f->st), MH_OK);
    umask(old);
    /* The database and its WAL are private. */
    const char *suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s%s", f->db, suffix[i]);
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
    }
    assert_int_equal(query_int(f->db, "PRAGMA user_version"), SQ_SCHEMA_VERSION);
    assert_int_equal(SQ_SCHEMA_VERSION, 4);
    assert_int_equal(query_int(f->db,
                               "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                               "('meta','users','tokens','accounts','folders','messages','usage','quota',"
                               "'quota_log','sync_state','msg_search','index_queue')"),
                     12);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM sqlite_master WHERE name = 'messages_v3'"), 0);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM sqlite_master WHERE name = 'quota_events'"), 0);
    assert_int_equal(query_int(f->db, "PRAGMA page_size"), SQ_PAGE_SIZE);
    sqlite3 *c = NULL;
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_open_v2(f->db, &c, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(c, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    sqlite3_close(c);
    /* Its own settings, on its own connection. */
    struct sq *sq = f->st;
    assert_int_equal(sq_query_int(sq, "PRAGMA foreign_keys"), 1);
    assert_int_equal(sq_query_int(sq, "PRAGMA synchronous"), 1); /* NORMAL */
    assert_int_equal(sq_query_int(sq, "PRAGMA cache_size"), -16384);
    /* Opening again does not migrate again. */
    assert_int_equal(log_count(f, "schema migrated"), 4);
    OPS->close(f->st);
    assert_int_equal(OPS->open(f->st), MH_OK);
    assert_int_equal(log_count(f, "schema migrated"), 4);
    assert_int_equal(query_int(f->db, "PRAGMA user_version"), 4);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM messages"), 1);
}

static void test_loose_mode_tightened(void **state)
{
    struct fx *f = *state;
    exec_sql(f->db, "PRAGMA user_version = 0");
    assert_int_equal(chmod(f->db, 0644), 0);
    assert_int_equal(open_with(f, NULL), MH_OK);
    struct stat st;
    assert_int_equal(stat(f->db, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_non_null(mock_host_log_find(f->mh, "readable by others"));
}

/* A database as the SDK 1.0 plugin left it: schema 1. */
static void make_v1(const char *db, int with_row)
{
    exec_sql(db, sq_migrations[0].sql);
    exec_sql(db, "PRAGMA user_version = 1");
    if (with_row)
        exec_sql(db, "INSERT INTO messages (user, account, folder, source_id, size, sha256, raw, stored_at)"
                     " VALUES ('admin', 'mbox', 'INBOX', 'mid:1', 3, x'00', x'414243', 1700000000)");
}

static void test_migrate_empty_v1(void **state)
{
    struct fx *f = *state;
    make_v1(f->db, 0);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM sqlite_master WHERE name = 'quota_events'"), 1);
    assert_int_equal(open_with(f, NULL), MH_OK);
    assert_int_equal(query_int(f->db, "PRAGMA user_version"), 4);
    assert_int_equal(log_count(f, "schema migrated to version 2"), 1);
    assert_int_equal(log_count(f, "schema migrated to version 1"), 0);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM sqlite_master WHERE name IN ('quota_events',"
                                      " 'messages_usage_ins')"),
                     0);
    /* The new schema works. */
    struct mh_message_ref ref;
    int64_t u = new_user(f, "alice");
    assert_int_equal(put(f, u, new_account(f, u, "work"), "a", "xyz", &ref), MH_OK);
    assert_int_equal(OPS->flush(f->st), MH_OK);
    assert_int_equal(query_int(f->db, "SELECT bytes FROM usage"), 103);
}

/* A database of SDK 1.1 (schema 2) with mail in it: migrated to 3 and 4 without losing a byte or a counter. */
static void test_migrate_v2_with_data(void **state)
{
    struct fx *f = *state;
    exec_sql(f->db, sq_migrations[0].sql);
    exec_sql(f->db, sq_migrations[1].sql);
    exec_sql(f->db, "PRAGMA user_version = 2");
    exec_sql(f->db, "INSERT INTO users (id, name, admin, created) VALUES (4, 'alice', 0, 1700000000);"
                    "INSERT INTO accounts (id, user_id, name, provider, created) VALUES (9, 4, 'work', 'mbox', 1);"
                    "INSERT INTO folders (id, user_id, account_id, name, uidvalidity, uidnext, highestmodseq,"
                    "  messages, bytes) VALUES (3, 4, 9, 'Archive/2024', 1700000001, 3, 2, 2, 7);"
                    "INSERT INTO messages (id, user_id, account_id, folder_id, uid, modseq, source_id, size, sha256,"
                    "  flags, subject, stored, blob) VALUES"
                    "  (41, 4, 9, 3, 1, 1, 'mid:a', 3, x'aa', '\\Seen', 'one', 5, x'010203'),"
                    "  (42, 4, 9, 3, 2, 2, 'mid:b', 4, x'bb', NULL, 'two', 6, x'04050607');"
                    "INSERT INTO usage (user_id, bytes, count) VALUES (4, 7, 2);");
    assert_int_equal(open_with(f, NULL), MH_OK);
    assert_int_equal(query_int(f->db, "PRAGMA user_version"), 4);
    assert_int_equal(log_count(f, "schema migrated to version 3"), 1);
    assert_int_equal(log_count(f, "schema migrated to version 4"), 1);
    /* the old index's terms are of the first blinding scheme: gone, and every message queued to be
     * analysed again */
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM index_queue"), 2);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM index_queue WHERE user_id = 4 AND id IN (41, 42)"), 2);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM msg_search"), 0);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM messages"), 2);
    assert_int_equal(query_int(f->db, "SELECT sum(length(blob)) FROM messages"), 7);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM messages WHERE id = 42 AND subject = 'two'"
                                      " AND source_id = 'mid:b' AND blob = x'04050607' AND source_gone = 0"),
                     1);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM folders WHERE source_gone = 0"), 1);
    /* the blob is still the last column */
    assert_int_equal(query_int(f->db, "SELECT max(cid) = (SELECT cid FROM pragma_table_info('messages')"
                                      " WHERE name = 'blob') FROM pragma_table_info('messages')"),
                     1);
    uint64_t bytes = 0, count = 0;
    assert_int_equal(OPS->usage(f->st, 4, &bytes, &count), MH_OK);
    assert_int_equal(bytes, 7);
    assert_int_equal(count, 2);
    /* ids keep growing past the migrated ones; dedup still sees them; triggers still count */
    struct mh_message_ref ref;
    assert_int_equal(put(f, 4, 9, "mid:b", "dup", &ref), MH_OK);
    assert_int_equal(ref.duplicate, 1);
    assert_int_equal(ref.id, 42);
    assert_int_equal(put(f, 4, 9, "mid:c", "new", &ref), MH_OK);
    assert_true(ref.id > 42);
    assert_int_equal(OPS->flush(f->st), MH_OK);
    assert_int_equal(OPS->account_delete(f->st, 4, 9), MH_OK);
    assert_int_equal(OPS->flush(f->st), MH_OK);
    assert_int_equal(OPS->usage(f->st, 4, &bytes, &count), MH_OK);
    assert_int_equal(count, 0);
    assert_int_equal(bytes, 0);
}

static void test_refuse_nonempty_v1(void **state)
{
    struct fx *f = *state;
    make_v1(f->db, 1);
    assert_int_equal(open_with(f, NULL), MH_ERR);
    const char *err = mock_host_error(f->mh);
    assert_non_null(err);
    assert_non_null(strstr(err, f->db)); /* names the file */
    assert_non_null(strstr(err, "version 1"));
    /* Left exactly as it was. */
    assert_int_equal(query_int(f->db, "PRAGMA user_version"), 1);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM messages WHERE raw = x'414243'"), 1);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM sqlite_master WHERE name = 'users'"), 0);
    /* Not open: every op fails cleanly. */
    struct mh_message_ref ref;
    assert_int_equal(put(f, 1, 1, "a", "1", &ref), MH_ERR);
    assert_int_equal(OPS->flush(f->st), MH_ERR);
    struct mh_user_rec u = {.struct_size = sizeof u, .name = "x"};
    assert_int_equal(OPS->user_put(f->st, &u), MH_ERR);
}

static void test_newer_schema_refused(void **state)
{
    struct fx *f = *state;
    exec_sql(f->db, "PRAGMA user_version = 99");
    assert_int_equal(open_with(f, NULL), MH_ERR);
    assert_non_null(strstr(mock_host_error(f->mh), "newer"));
    assert_int_equal(query_int(f->db, "PRAGMA user_version"), 99);
}

static void test_stored_columns(void **state)
{
    struct fx *f = *state;
    assert_int_equal(open_with(f, NULL), MH_OK);
    int64_t u = new_user(f, "alice"), acc = new_account(f, u, "work");
    struct mh_message_ref ref = {.struct_size = sizeof ref};
    assert_int_equal(put(f, u, acc, "uv:5:10", "sealed\0bytes", &ref), MH_OK);
    assert_int_equal(OPS->flush(f->st), MH_OK);

    sqlite3 *c = NULL;
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_open_v2(f->db, &c, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(c,
                           "SELECT m.id, m.user_id, m.account_id, f.name, m.uid, m.modseq, m.source_id,"
                           " m.size, m.sha256, m.blob, m.flags, m.internal_date, m.date, m.\"from\","
                           " m.stored, f.uidvalidity"
                           " FROM messages m JOIN folders f ON f.id = m.folder_id",
                           -1, &s, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(s, 0), ref.id);
    assert_int_equal(sqlite3_column_int64(s, 1), u);
    assert_int_equal(sqlite3_column_int64(s, 2), acc);
    assert_string_equal((const char *)sqlite3_column_text(s, 3), "Archive/2024");
    assert_int_equal(sqlite3_column_int64(s, 4), 1);
    assert_int_equal(sqlite3_column_int64(s, 5), 1);
    assert_string_equal((const char *)sqlite3_column_text(s, 6), "uv:5:10");
    assert_int_equal(sqlite3_column_int64(s, 7), 106);
    assert_int_equal(sqlite3_column_bytes(s, 8), 32);
    assert_int_equal(((const unsigned char *)sqlite3_column_blob(s, 8))[31], 0xab);
    assert_int_equal(sqlite3_column_bytes(s, 9), 6); /* blob_len = strlen("sealed") */
    assert_memory_equal(sqlite3_column_blob(s, 9), "sealed", 6);
    assert_string_equal((const char *)sqlite3_column_text(s, 10), "\\Seen \\Flagged");
    assert_int_equal(sqlite3_column_int64(s, 11), 1704067200);
    assert_int_equal(sqlite3_column_int64(s, 12), 1704067100);
    assert_string_equal((const char *)sqlite3_column_text(s, 13), "a@example.com");
    assert_true(sqlite3_column_int64(s, 14) > 1600000000);
    /* UIDVALIDITY: from the clock (or past the last one). */
    assert_true(sqlite3_column_int64(s, 15) >= sqlite3_column_int64(s, 14) - 5);
    assert_int_equal(sqlite3_step(s), SQLITE_DONE);
    sqlite3_finalize(s);
    sqlite3_close(c);
    assert_int_equal(query_int(f->db, "SELECT value FROM meta WHERE key = 'uidvalidity'"),
                     query_int(f->db, "SELECT max(uidvalidity) FROM folders"));
}

static void test_uidvalidity_never_repeats(void **state)
{
    struct fx *f = *state;
    assert_int_equal(open_with(f, NULL), MH_OK);
    /* The clock is behind the last value handed out: the next is last + 1. */
    struct sq *sq = f->st;
    assert_int_equal(sq_exec(sq, "INSERT INTO meta (key, value) VALUES ('uidvalidity', 4000000000)"), MH_OK);
    int64_t u = new_user(f, "alice"), acc = new_account(f, u, "work");
    struct mh_message_ref ref;
    assert_int_equal(put(f, u, acc, "a", "1", &ref), MH_OK);
    struct mh_msg_rec m = {.struct_size = sizeof m,
                           .user_id = u,
                           .account_id = acc,
                           .folder = "Other",
                           .blob = "b",
                           .blob_len = 1,
                           .size = 1};
    assert_int_equal(OPS->put_message(f->st, &m, &ref), MH_OK);
    assert_int_equal(OPS->flush(f->st), MH_OK);
    assert_int_equal(query_int(f->db, "SELECT min(uidvalidity) FROM folders"), 4000000001);
    assert_int_equal(query_int(f->db, "SELECT max(uidvalidity) FROM folders"), 4000000002);
    /* Exhausted (past 2^32 - 1): refused, not wrapped. */
    assert_int_equal(sq_exec(sq, "UPDATE meta SET value = 4294967295 WHERE key = 'uidvalidity'"), MH_OK);
    m.folder = "Third";
    assert_int_equal(OPS->put_message(f->st, &m, &ref), MH_ERR);
    assert_non_null(strstr(mock_host_error(f->mh), "UIDVALIDITY"));
}

static void test_commit_visibility(void **state)
{
    struct fx *f = *state;
    assert_int_equal(open_with(f, NULL), MH_OK);
    /* Every write waits in the batch transaction: another connection sees nothing yet... */
    int64_t u = new_user(f, "alice"), acc = new_account(f, u, "work");
    unsigned char h[32] = {1};
    assert_int_equal(OPS->token_put(f->st, u, h, "t", 0), MH_OK);
    assert_int_equal(OPS->quota_set(f->st, u, 1000, "initial"), MH_OK);
    struct mh_message_ref ref;
    assert_int_equal(put(f, u, acc, "a", "1", &ref), MH_OK);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM users"), 0);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM accounts"), 0);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM tokens"), 0);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM quota_log"), 0);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM messages"), 0);
    /* ... while this connection reads its own writes. */
    int64_t who = 0;
    assert_int_equal(OPS->token_get(f->st, h, 0, &who), 1);
    assert_int_equal(who, u);
    /* After flush everything is there. */
    assert_int_equal(OPS->flush(f->st), MH_OK);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM users"), 1);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM accounts"), 1);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM tokens"), 1);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM quota_log"), 1);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM messages"), 1);
    assert_int_equal(query_int(f->db, "SELECT bytes FROM usage"), 101);
    /* Deletes too. */
    assert_int_equal(OPS->account_delete(f->st, u, acc), MH_OK);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM messages"), 1);
    assert_int_equal(OPS->flush(f->st), MH_OK);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM messages"), 0);
    assert_int_equal(query_int(f->db, "SELECT bytes FROM usage"), 0);
}

static void test_batch_commits(void **state)
{
    struct fx *f = *state;
    const char *kv[] = {"batch", "3", NULL};
    assert_int_equal(open_with(f, kv), MH_OK);
    int64_t u = new_user(f, "alice"), acc = new_account(f, u, "work");
    struct mh_message_ref ref;
    assert_int_equal(put(f, u, acc, "a", "1", &ref), MH_OK);
    assert_int_equal(put(f, u, acc, "b", "2", &ref), MH_OK);
    /* Batched: not visible to other connections before the commit. */
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM messages"), 0);
    assert_int_equal(put(f, u, acc, "c", "3", &ref), MH_OK); /* the third commits */
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM messages"), 3);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM users"), 1); /* with what came before */
    assert_int_equal(put(f, u, acc, "d", "4", &ref), MH_OK);
    assert_int_equal(put(f, u, acc, "a", "1", &ref),
                     MH_OK); /* a duplicate does not count towards the batch */
    assert_int_equal(ref.duplicate, 1);
    assert_int_equal(put(f, u, acc, "e", "5", &ref), MH_OK);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM messages"), 3);
    assert_int_equal(OPS->flush(f->st), MH_OK);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM messages"), 5);
}

/* A write that fails half-way through a put (injected with a trigger) rolls
 * back the whole batch, and the next flush says so: nothing half-counted stays. */
static void test_failed_put_rolls_back_batch(void **state)
{
    struct fx *f = *state;
    assert_int_equal(open_with(f, NULL), MH_OK);
    int64_t u = new_user(f, "alice"), acc = new_account(f, u, "work");
    struct mh_message_ref ref;
    assert_int_equal(put(f, u, acc, "a", "1", &ref), MH_OK);
    assert_int_equal(OPS->flush(f->st), MH_OK);
    exec_sql(f->db, "CREATE TRIGGER inject BEFORE UPDATE ON usage WHEN NEW.count > 3"
                    " BEGIN SELECT RAISE(ABORT, 'injected'); END");
    assert_int_equal(put(f, u, acc, "b", "2", &ref), MH_OK);
    assert_int_equal(put(f, u, acc, "c", "3", &ref), MH_OK);
    assert_int_not_equal(put(f, u, acc, "d", "4", &ref), MH_OK); /* its usage update fails */
    assert_int_equal(OPS->flush(f->st), MH_ERETRY);              /* b and c are gone too */
    assert_int_equal(OPS->flush(f->st), MH_OK);                  /* reported once */
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM messages"), 1);
    uint64_t bytes = 0, count = 0;
    assert_int_equal(OPS->usage(f->st, u, &bytes, &count), MH_OK);
    assert_int_equal(count, 1);
    assert_int_equal(query_int(f->db, "SELECT messages FROM folders"), 1);
    assert_int_equal(query_int(f->db, "SELECT uidnext FROM folders"), 2);
    /* Once the cause is gone, the same messages go in. */
    exec_sql(f->db, "DROP TRIGGER inject");
    assert_int_equal(put(f, u, acc, "b", "2", &ref), MH_OK);
    assert_int_equal(ref.duplicate, 0);
    assert_int_equal(OPS->flush(f->st), MH_OK);
    assert_int_equal(query_int(f->db, "SELECT messages FROM folders"), 2);
}

/* Does any plan row of `sql` match `needle`?  Prints the plan when asked (-v). */
static int plan_has(sqlite3 *c, const char *sql, const char *needle)
{
    char eqp[2048];
    snprintf(eqp, sizeof eqp, "EXPLAIN QUERY PLAN %s", sql);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c, eqp, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "plan_has: %s: %s\n", sql, sqlite3_errmsg(c));
        return -1;
    }
    int hit = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *detail = (const char *)sqlite3_column_text(st, 3);
        if (detail != NULL && strstr(detail, needle) != NULL) {
            hit = 1;
            if (getenv("SQ_TEST_VERBOSE") != NULL)
                fprintf(stderr, "%s\n  -> %s\n", sql, detail);
        }
    }
    sqlite3_finalize(st);
    return hit;
}

static void test_query_plans(void **state)
{
    struct fx *f = *state;
    assert_int_equal(open_with(f, NULL), MH_OK);
    struct sq *sq = f->st;
    sqlite3 *c = NULL;
    assert_int_equal(sqlite3_open_v2(f->db, &c, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    /* msg_list: always an index lookup on messages, in id order without sorting. */
    static const char *const want[SQ_N_MF] = {
        [SQ_MF_USER] = "SEARCH m USING INDEX messages_user (user_id=? AND rowid>?)",
        [SQ_MF_ACCOUNT] = "SEARCH m USING INDEX messages_account (account_id=? AND rowid>?)",
        [SQ_MF_FOLDER] = "SEARCH m USING INDEX messages_folder (folder_id=? AND rowid>?)",
        [SQ_MF_ID] = "SEARCH m USING INTEGER PRIMARY KEY (rowid=?)",
    };
    for (int i = 0; i < SQ_N_MF; i++)
        for (int b = 0; b < 2; b++) {
            const char *sql = sqlite3_sql(sq->msg_st[i][b]);
            assert_int_equal(plan_has(c, sql, want[i]), 1);
            assert_int_equal(plan_has(c, sql, "SEARCH f USING INTEGER PRIMARY KEY (rowid=?)"), 1);
            assert_int_equal(plan_has(c, sql, "TEMP B-TREE"), 0);
            assert_int_equal(plan_has(c, sql, "SCAN"), 0);
        }
    /* The put path and the lookups: never a scan of messages. */
    assert_int_equal(plan_has(c, sq_stmt_sql[SQ_MSG_FIND], "USING INDEX messages_account_source"), 1);
    assert_int_equal(plan_has(c, sq_stmt_sql[SQ_MSG_FIND_F], "USING COVERING INDEX messages_source"), 1);
    assert_int_equal(plan_has(c, sq_stmt_sql[SQ_MSG_SOURCE], "USING INDEX messages_source"), 1);
    assert_int_equal(plan_has(c, sq_stmt_sql[SQ_FOLDER_NEXT], "USING INDEX sqlite_autoindex_folders_1"), 1);
    assert_int_equal(plan_has(c, sq_stmt_sql[SQ_TOKEN_GET], "SEARCH tokens USING PRIMARY KEY"), 1);
    assert_int_equal(plan_has(c, sq_stmt_sql[SQ_ACC_BY_NAME], "sqlite_autoindex_accounts_1"), 1);
    assert_int_equal(plan_has(c, sq_stmt_sql[SQ_USER_BY_NAME], "sqlite_autoindex_users_1"), 1);
    assert_int_equal(plan_has(c, sq_stmt_sql[SQ_FOLDER_LIST], "USING INDEX folders_user"), 1);
    assert_int_equal(plan_has(c, sq_stmt_sql[SQ_QUOTA_HIST], "USING INDEX quota_log_user"), 1);
    /* SDK 1.2: re-keying finds a message by content; listing a folder walks it in UID order */
    assert_int_equal(plan_has(c, sq_stmt_sql[SQ_MSG_CONTENT], "USING INDEX messages_content (folder_id=? AND sha256=?)"), 1);
    assert_int_equal(plan_has(c, sq_stmt_sql[SQ_SOURCE_LIST], "TEMP B-TREE"), 0);
    assert_int_equal(plan_has(c, sq_stmt_sql[SQ_SOURCE_LIST], "USING COVERING INDEX messages_source_list"), 1);
    /* SDK 1.3: the analysis queue is walked in id order and joined to messages by id */
    assert_int_equal(plan_has(c, sq_stmt_sql[SQ_QUEUE_LIST], "SEARCH q USING INTEGER PRIMARY KEY (rowid>?)"), 1);
    assert_int_equal(plan_has(c, sq_stmt_sql[SQ_QUEUE_LIST], "SEARCH m USING INTEGER PRIMARY KEY (rowid=?)"), 1);
    assert_int_equal(plan_has(c, sq_stmt_sql[SQ_QUEUE_LIST], "TEMP B-TREE"), 0);
    assert_int_equal(plan_has(c, sq_stmt_sql[SQ_QUEUE_COUNT], "index_queue_user"), 1);
    for (int i = 0; i < SQ_N_STMTS; i++)
        if (i != SQ_USER_LIST && i != SQ_ACC_LIST_ALL && i != SQ_ACC_BY_NAME_ANY && i != SQ_QUEUE_COUNT_ALL)
            /* (an INSERT ... SELECT of one constant row reads no table) */
            assert_int_equal(plan_has(c, sq_stmt_sql[i], "SCAN") - plan_has(c, sq_stmt_sql[i], "SCAN CONSTANT ROW"),
                             0);
    sqlite3_close(c);
}

static void test_counters_follow_sql(void **state)
{
    struct fx *f = *state;
    assert_int_equal(open_with(f, NULL), MH_OK);
    int64_t u = new_user(f, "alice"), acc = new_account(f, u, "work");
    struct mh_message_ref a, b;
    assert_int_equal(put(f, u, acc, "a", "12345", &a), MH_OK);
    assert_int_equal(put(f, u, acc, "b", "123", &b), MH_OK);
    assert_int_equal(OPS->flush(f->st), MH_OK);
    /* Whatever removes or changes rows later (expiry, repair by hand), the counters stay exact. */
    exec_sql(f->db, "DELETE FROM messages WHERE source_id = 'a'");
    uint64_t bytes = 0, count = 0;
    assert_int_equal(OPS->usage(f->st, u, &bytes, &count), MH_OK);
    assert_int_equal(bytes, 103);
    assert_int_equal(count, 1);
    exec_sql(f->db, "UPDATE messages SET size = 50");
    assert_int_equal(OPS->usage(f->st, u, &bytes, &count), MH_OK);
    assert_int_equal(bytes, 50);
    assert_int_equal(count, 1);
    assert_int_equal(query_int(f->db, "SELECT bytes FROM folders"), 50);
    assert_int_equal(query_int(f->db, "SELECT messages FROM folders"), 1);
}

static void test_synchronous_option(void **state)
{
    struct fx *f = *state;
    const char *kv[] = {"synchronous", "full", "cache_size", "2MB", NULL};
    assert_int_equal(open_with(f, kv), MH_OK);
    assert_non_null(mock_host_log_find(f->mh, "synchronous=full"));
    assert_int_equal(sq_query_int(f->st, "PRAGMA synchronous"), 2); /* FULL */
    assert_int_equal(sq_query_int(f->st, "PRAGMA cache_size"), -2048);
    const char *bad[] = {"synchronous", "off", NULL};
    assert_null(mock_host_config(f->mh, D->options, bad));
    const char *zero[] = {"batch", "0", NULL};
    assert_null(mock_host_config(f->mh, D->options, zero));
}

static void test_invalid_input(void **state)
{
    struct fx *f = *state;
    assert_int_equal(open_with(f, NULL), MH_OK);
    int64_t u = new_user(f, "alice"), acc = new_account(f, u, "work");
    struct mh_message_ref ref;
    struct mh_msg_rec m = {.struct_size = sizeof m, .user_id = u, .account_id = acc, .folder = "INBOX"};
    assert_int_equal(OPS->put_message(f->st, &m, &ref), MH_EINVAL); /* no blob */
    m.blob = "x";
    m.blob_len = 1;
    m.user_id = 0;
    assert_int_equal(OPS->put_message(f->st, &m, &ref), MH_EINVAL);
    struct mh_user_rec nameless = {.struct_size = sizeof nameless};
    assert_int_equal(OPS->user_put(f->st, &nameless), MH_EINVAL);
    struct mh_msg_query q = {.struct_size = sizeof q};
    assert_int_equal(OPS->msg_list(f->st, &q, NULL, NULL), MH_EINVAL); /* no user */
    assert_int_equal(put(f, u, acc, "ok", "fine", &ref), MH_OK);       /* the batch goes on */
    assert_int_equal(OPS->flush(f->st), MH_OK);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM messages"), 1);
}

static void test_unopenable_path(void **state)
{
    struct fx *f = *state;
    /* A regular file where a directory should be: fails even for root. */
    char file[600];
    snprintf(file, sizeof file, "%s/plain", mock_host_data_dir(f->mh));
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fclose(fp);
    const char *kv[] = {"path", "plain/x.db", NULL};
    assert_int_equal(open_with(f, kv), MH_ERR);
    assert_non_null(strstr(mock_host_error(f->mh), "plain/x.db"));
}

/*
 * Crash safety: a process killed (SIGKILL) with a large unflushed batch,
 * part of it already spilled into the WAL by a small page cache, leaves a
 * database with exactly what was flushed, consistent counters, and UIDs that
 * go on from there.
 */
static void test_crash_keeps_flushed(void **state)
{
    struct fx *f = *state;
    const char *kv[] = {"cache_size", "1MB", "batch", "100000", NULL};
    static char blob[64 * 1024];
    memset(blob, 'z', sizeof blob - 1);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* No cmocka assertions in the child: a failure is its exit status. */
        const struct mh_config *cfg = mock_host_config(f->mh, D->options, kv);
        if (cfg == NULL || D->init(mock_host_ctx(f->mh), cfg, &f->st) != MH_OK || OPS->open(f->st) != MH_OK)
            _exit(2);
        struct mh_user_rec usr = {.struct_size = sizeof usr, .name = "alice"};
        struct mh_account_rec a = {.struct_size = sizeof a, .user_id = 1, .name = "work", .provider = "mbox"};
        if (OPS->user_put(f->st, &usr) != MH_OK || usr.id != 1 || OPS->account_put(f->st, &a) != MH_OK ||
            a.id != 1)
            _exit(2);
        int64_t u = usr.id, acc = a.id;
        struct mh_message_ref ref;
        char sid[32];
        for (int i = 0; i < 60; i++) {
            snprintf(sid, sizeof sid, "s%d", i);
            if (put(f, u, acc, sid, blob, &ref) != MH_OK)
                _exit(3);
            if (i == 9 && OPS->flush(f->st) != MH_OK)
                _exit(4);
        }
        raise(SIGKILL);
        _exit(5);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);

    assert_int_equal(open_with(f, NULL), MH_OK);
    assert_int_equal(sq_query_int(f->st, "SELECT count(*) FROM messages"), 10);
    assert_int_equal(
        query_int(f->db, "SELECT count(*) FROM pragma_integrity_check WHERE integrity_check = 'ok'"), 1);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
    uint64_t bytes = 0, count = 0;
    assert_int_equal(OPS->usage(f->st, 1, &bytes, &count), MH_OK);
    assert_int_equal(count, 10);
    assert_int_equal(bytes, 10 * (sizeof blob - 1 + 100));
    struct mh_message_ref ref;
    assert_int_equal(put(f, 1, 1, "s10", "again", &ref), MH_OK);
    assert_int_equal(OPS->flush(f->st), MH_OK);
    assert_int_equal(query_int(f->db, "SELECT uid FROM messages WHERE source_id = 's10'"), 11);
    assert_int_equal(query_int(f->db, "SELECT uidnext FROM folders"), 12);
}

/* ----------------------------------------------------- the contract */

struct env {
    struct mock_host *mh;
    const struct mh_config *cfg;
};

static void *env_open(void *arg)
{
    struct env *e = arg;
    void *st = NULL;
    if (D->init(mock_host_ctx(e->mh), e->cfg, &st) != MH_OK)
        return NULL;
    if (OPS->open(st) != MH_OK) {
        D->free(st);
        return NULL;
    }
    return st;
}

static void env_close(void *arg, void *st)
{
    (void)arg;
    OPS->close(st);
    D->free(st);
}

static void env_wipe(void *arg)
{
    struct env *e = arg;
    const char *suffix[] = {"", "-wal", "-shm"};
    char path[600];
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/c.db%s", mock_host_data_dir(e->mh), suffix[i]);
        unlink(path);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptor),
        cmocka_unit_test_setup_teardown(test_schema_and_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loose_mode_tightened, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_empty_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_nonempty_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_v2_with_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stored_columns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uidvalidity_never_repeats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_visibility, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_commits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_put_rolls_back_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_plans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counters_follow_sql, setup, teardown),
        cmocka_unit_test_setup_teardown(test_synchronous_option, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unopenable_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_keeps_flushed, setup, teardown),
    };
    int failed = cmocka_run_group_tests_name("plugin_sqlite", tests, NULL, NULL);

    /* The contract again with a batch of 2, so commits fall inside its tests. */
    struct env e = {.mh = mock_host_new("store", "sqlite")};
    const char *kv[] = {"path", "c.db", "batch", "2", NULL};
    e.cfg = mock_host_config(e.mh, D->options, kv);
    struct store_contract c = {.name = "sqlite_contract_batch2",
                               .ops = OPS,
                               .env = &e,
                               .open = env_open,
                               .close = env_close,
                               .wipe = env_wipe,
                               .persistent = 1};
    failed += store_contract_run(&c);
    mock_host_free(&e.mh);
    return failed;
}

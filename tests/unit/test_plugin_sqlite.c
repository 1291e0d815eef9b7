/*
 * The sqlite store, against the mock host: its own behaviour (schema,
 * pragmas, batching, file mode, errors), then the store contract suite.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <sqlite3.h>

#include <mailhub/plugin.h>
#include <mailhub/store.h>

#include "mock_host.h"
#include "store_contract.h"

extern const struct mh_plugin mh_plugin_descriptor;
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
    f->mh = mock_host_new("store", "sqlite");
    snprintf(f->db, sizeof f->db, "%s/mailhub.db", mock_host_data_dir(f->mh));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->st != NULL) {
        OPS->close(f->st);
        D->free(f->st);
    }
    mock_host_free(&f->mh);
    free(f);
    return 0;
}

static int open_with(struct fx *f, const char *const *kv)
{
    const struct mh_config *cfg = mock_host_config(f->mh, D->options, kv);
    assert_non_null(cfg);
    assert_int_equal(D->init(mock_host_ctx(f->mh), cfg, &f->st), MH_OK);
    return OPS->open(f->st);
}

static int put(struct fx *f, const char *sid, const char *raw, struct mh_message_ref *ref)
{
    const struct mh_message m = {.struct_size = sizeof m,
                                 .user = "alice",
                                 .account = "work",
                                 .folder = "Archive/2024",
                                 .source_id = sid,
                                 .raw = raw,
                                 .raw_len = strlen(raw),
                                 .flags = "\\Seen \\Flagged",
                                 .internal_date = 1704067200};
    return OPS->put_message(f->st, &m, ref);
}

/* Rows in `messages` as another connection sees them: only what is committed. */
static int64_t committed_rows(const char *db)
{
    sqlite3 *c = NULL;
    sqlite3_stmt *st = NULL;
    int64_t n = -1;
    if (sqlite3_open_v2(db, &c, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(c, "SELECT count(*) FROM messages", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(c);
    return n;
}

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

static void test_descriptor(void **state)
{
    (void)state;
    assert_int_equal(D->kind, MH_KIND_STORE);
    assert_string_equal(D->name, "sqlite");
    assert_non_null(OPS->open);
    assert_non_null(OPS->put_message);
    assert_non_null(OPS->flush);
    assert_non_null(OPS->usage);
    assert_non_null(OPS->quota_get);
    assert_non_null(OPS->quota_set);
    assert_non_null(OPS->has_source_id);
    assert_non_null(OPS->close);
}

static void test_schema_and_mode(void **state)
{
    struct fx *f = *state;
    mode_t old = umask(022);
    int rc = open_with(f, NULL);
    umask(old);
    assert_int_equal(rc, MH_OK);
    struct stat st;
    assert_int_equal(stat(f->db, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(query_int(f->db, "PRAGMA user_version"), 1);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM sqlite_master WHERE name IN "
                                      "('messages','quota','quota_events','usage')"),
                     4);
    sqlite3 *c = NULL;
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_open_v2(f->db, &c, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(c, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    sqlite3_close(c);
    /* Opening again does not migrate again. */
    OPS->close(f->st);
    assert_int_equal(OPS->open(f->st), MH_OK);
    assert_int_equal(query_int(f->db, "PRAGMA user_version"), 1);
}

static void test_stored_columns(void **state)
{
    struct fx *f = *state;
    assert_int_equal(open_with(f, NULL), MH_OK);
    const char *raw = "Subject: hi\r\n\r\nbody\r\n";
    struct mh_message_ref ref = {.struct_size = sizeof ref};
    assert_int_equal(put(f, "uv:5:10", raw, &ref), MH_OK);
    assert_int_equal(OPS->flush(f->st), MH_OK);

    sqlite3 *c = NULL;
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_open_v2(f->db, &c, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(c,
                           "SELECT id, user, account, folder, source_id, size, flags, internal_date,"
                           " sha256, raw, stored_at FROM messages",
                           -1, &s, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(s, 0), ref.id);
    assert_string_equal((const char *)sqlite3_column_text(s, 1), "alice");
    assert_string_equal((const char *)sqlite3_column_text(s, 2), "work");
    assert_string_equal((const char *)sqlite3_column_text(s, 3), "Archive/2024");
    assert_string_equal((const char *)sqlite3_column_text(s, 4), "uv:5:10");
    assert_int_equal(sqlite3_column_int64(s, 5), strlen(raw));
    assert_string_equal((const char *)sqlite3_column_text(s, 6), "\\Seen \\Flagged");
    assert_int_equal(sqlite3_column_int64(s, 7), 1704067200);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    assert_int_equal(EVP_Digest(raw, strlen(raw), md, &md_len, EVP_sha256(), NULL), 1);
    assert_int_equal(sqlite3_column_bytes(s, 8), 32);
    assert_memory_equal(sqlite3_column_blob(s, 8), md, 32);
    assert_int_equal(sqlite3_column_bytes(s, 9), strlen(raw));
    assert_memory_equal(sqlite3_column_blob(s, 9), raw, strlen(raw));
    assert_true(sqlite3_column_int64(s, 10) > 1600000000);
    assert_int_equal(sqlite3_step(s), SQLITE_DONE);
    sqlite3_finalize(s);
    sqlite3_close(c);
}

static void test_batch_commits(void **state)
{
    struct fx *f = *state;
    const char *kv[] = {"batch", "3", NULL};
    assert_int_equal(open_with(f, kv), MH_OK);
    struct mh_message_ref ref;
    assert_int_equal(put(f, "a", "1", &ref), MH_OK);
    assert_int_equal(put(f, "b", "2", &ref), MH_OK);
    /* Batched: not visible to other connections before the commit. */
    assert_int_equal(committed_rows(f->db), 0);
    assert_int_equal(put(f, "c", "3", &ref), MH_OK); /* the third commits */
    assert_int_equal(committed_rows(f->db), 3);
    assert_int_equal(put(f, "d", "4", &ref), MH_OK);
    assert_int_equal(put(f, "a", "1", &ref), MH_OK); /* a duplicate does not count towards the batch */
    assert_int_equal(ref.duplicate, 1);
    assert_int_equal(committed_rows(f->db), 3);
    assert_int_equal(OPS->flush(f->st), MH_OK);
    assert_int_equal(committed_rows(f->db), 4);
}

static void test_quota_history(void **state)
{
    struct fx *f = *state;
    assert_int_equal(open_with(f, NULL), MH_OK);
    assert_int_equal(OPS->quota_set(f->st, "alice", 30 << 20, "initial"), MH_OK);
    assert_int_equal(OPS->quota_set(f->st, "alice", 60 << 20, "extended"), MH_OK);
    assert_int_equal(query_int(f->db, "SELECT count(*) FROM quota_events WHERE user = 'alice'"), 2);
    assert_int_equal(query_int(f->db, "SELECT alloc FROM quota_events WHERE reason = 'extended'"), 60 << 20);
    assert_int_equal(query_int(f->db, "SELECT alloc FROM quota WHERE user = 'alice'"), 60 << 20);
    assert_int_equal(OPS->quota_set(f->st, "alice", UINT64_MAX, "too big"), MH_EINVAL);
}

static void test_usage_follows_deletes(void **state)
{
    struct fx *f = *state;
    assert_int_equal(open_with(f, NULL), MH_OK);
    struct mh_message_ref ref;
    assert_int_equal(put(f, "a", "12345", &ref), MH_OK);
    assert_int_equal(put(f, "b", "123", &ref), MH_OK);
    assert_int_equal(OPS->flush(f->st), MH_OK);
    /* Whatever removes messages later (expiry, the user), usage stays exact. */
    assert_int_equal(query_int(f->db, "DELETE FROM messages WHERE source_id = 'a' RETURNING id") > 0, 1);
    uint64_t bytes = 0, count = 0;
    assert_int_equal(OPS->usage(f->st, "alice", &bytes, &count), MH_OK);
    assert_int_equal(bytes, 3);
    assert_int_equal(count, 1);
}

static void test_synchronous_option(void **state)
{
    struct fx *f = *state;
    const char *kv[] = {"synchronous", "full", NULL};
    assert_int_equal(open_with(f, kv), MH_OK);
    assert_non_null(mock_host_log_find(f->mh, "synchronous=full"));
    const char *bad[] = {"synchronous", "off", NULL};
    assert_null(mock_host_config(f->mh, D->options, bad));
    const char *zero[] = {"batch", "0", NULL};
    assert_null(mock_host_config(f->mh, D->options, zero));
}

static void test_newer_schema_refused(void **state)
{
    struct fx *f = *state;
    sqlite3 *c = NULL;
    assert_int_equal(sqlite3_open(f->db, &c), SQLITE_OK);
    assert_int_equal(sqlite3_exec(c, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(c);
    assert_int_equal(open_with(f, NULL), MH_ERR);
    assert_non_null(strstr(mock_host_error(f->mh), "newer"));
    /* Not open: every op fails cleanly. */
    struct mh_message_ref ref;
    assert_int_not_equal(put(f, "a", "1", &ref), MH_OK);
    assert_int_not_equal(OPS->flush(f->st), MH_OK);
}

static void test_invalid_message(void **state)
{
    struct fx *f = *state;
    assert_int_equal(open_with(f, NULL), MH_OK);
    struct mh_message_ref ref;
    const struct mh_message m = {
        .struct_size = sizeof m, .user = "alice", .account = "work", .raw = "x", .raw_len = 1};
    assert_int_equal(OPS->put_message(f->st, &m, &ref), MH_EINVAL); /* no source_id */
    assert_int_equal(put(f, "ok", "fine", &ref), MH_OK);            /* the batch goes on */
    assert_int_equal(OPS->flush(f->st), MH_OK);
    assert_int_equal(committed_rows(f->db), 1);
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
        cmocka_unit_test_setup_teardown(test_stored_columns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_commits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quota_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_follows_deletes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_synchronous_option, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unopenable_path, setup, teardown),
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

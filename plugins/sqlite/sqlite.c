/*
 * sqlite: the embedded store.  One database file in WAL mode, used from the
 * core's single store thread (so the connection is opened without SQLite's
 * own mutexes).
 *
 * Durability: put_message() inserts inside a transaction that is committed
 * every `batch` messages and on flush(); the core calls flush() before it
 * tells a provider a message is stored.  With synchronous=normal a commit
 * survives a crash of the process; with synchronous=full also a power loss.
 *
 * Usage is kept exactly, in a `usage` table maintained by triggers on
 * `messages`, so it changes in the same transaction as the rows it counts and
 * reads in O(1) whatever the number of messages.
 *
 * Schema changes are appended to mig[] below; PRAGMA user_version records how
 * many have been applied.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sqlite3.h>

#include <mailhub/plugin.h>
#include <mailhub/store.h>

/* Schema migrations: entry i takes user_version i to i + 1.  Only append; keep
 * each entry in parentheses so a missing comma cannot merge two of them. */
static const char *const sq_migrations[] = {
    /* 1: messages, quota, usage */
    ("CREATE TABLE messages ("
     "  id INTEGER PRIMARY KEY,"
     "  user TEXT NOT NULL,"
     "  account TEXT NOT NULL,"
     "  folder TEXT,"
     "  source_id TEXT NOT NULL,"
     "  size INTEGER NOT NULL,"
     "  flags TEXT,"
     "  internal_date INTEGER NOT NULL DEFAULT 0,"
     "  sha256 BLOB NOT NULL,"
     "  raw BLOB NOT NULL,"
     "  stored_at INTEGER NOT NULL,"
     "  UNIQUE (user, account, source_id));"
     "CREATE TABLE quota ("
     "  user TEXT PRIMARY KEY,"
     "  alloc INTEGER NOT NULL);"
     "CREATE TABLE quota_events ("
     "  id INTEGER PRIMARY KEY,"
     "  user TEXT NOT NULL,"
     "  alloc INTEGER NOT NULL,"
     "  reason TEXT NOT NULL,"
     "  at INTEGER NOT NULL);"
     "CREATE INDEX quota_events_user ON quota_events (user, at);"
     "CREATE TABLE usage ("
     "  user TEXT PRIMARY KEY,"
     "  bytes INTEGER NOT NULL DEFAULT 0,"
     "  count INTEGER NOT NULL DEFAULT 0);"
     "CREATE TRIGGER messages_usage_ins AFTER INSERT ON messages BEGIN"
     "  INSERT INTO usage (user, bytes, count) VALUES (NEW.user, NEW.size, 1)"
     "    ON CONFLICT (user) DO UPDATE SET bytes = bytes + excluded.bytes, count = count + 1;"
     "END;"
     "CREATE TRIGGER messages_usage_del AFTER DELETE ON messages BEGIN"
     "  UPDATE usage SET bytes = bytes - OLD.size, count = count - 1 WHERE user = OLD.user;"
     "END;"
     "CREATE TRIGGER messages_usage_upd AFTER UPDATE OF user, size ON messages BEGIN"
     "  UPDATE usage SET bytes = bytes - OLD.size, count = count - 1 WHERE user = OLD.user;"
     "  INSERT INTO usage (user, bytes, count) VALUES (NEW.user, NEW.size, 1)"
     "    ON CONFLICT (user) DO UPDATE SET bytes = bytes + excluded.bytes, count = count + 1;"
     "END;"),
};
#define SQ_SCHEMA_VERSION ((int)(sizeof sq_migrations / sizeof sq_migrations[0]))

enum sq_stmt {
    SQ_INSERT,
    SQ_FIND,
    SQ_USAGE,
    SQ_QUOTA_GET,
    SQ_QUOTA_SET,
    SQ_QUOTA_EVENT,
    SQ_N_STMTS,
};

static const char *const sq_stmt_sql[SQ_N_STMTS] = {
    /* Parenthesised: one element split over lines, not several (clang -Wstring-concatenation). */
    [SQ_INSERT] =
        ("INSERT INTO messages (user, account, folder, source_id, size, flags, internal_date, sha256,"
         " raw, stored_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
         " ON CONFLICT (user, account, source_id) DO NOTHING"),
    [SQ_FIND] = "SELECT id FROM messages WHERE user = ?1 AND account = ?2 AND source_id = ?3",
    [SQ_USAGE] = "SELECT bytes, count FROM usage WHERE user = ?1",
    [SQ_QUOTA_GET] = "SELECT alloc FROM quota WHERE user = ?1",
    [SQ_QUOTA_SET] =
        "INSERT INTO quota (user, alloc) VALUES (?1, ?2) ON CONFLICT (user) DO UPDATE SET alloc = ?2",
    [SQ_QUOTA_EVENT] = "INSERT INTO quota_events (user, alloc, reason, at) VALUES (?1, ?2, ?3, ?4)",
};

struct sq {
    struct mh_plugin_ctx *ctx;
    char *path;
    int sync_full;
    int64_t batch;

    sqlite3 *db;
    sqlite3_stmt *st[SQ_N_STMTS];
    int in_tx;       /* a write transaction is open */
    int64_t pending; /* puts in the open transaction */
    int tx_lost;     /* a failure rolled back puts that were not flushed yet */
};

static const struct mh_option sq_options[] = {
    {"path", MH_OPT_STR, "mailhub.db", 0, "database file (relative to the data directory)", NULL, 0, 0},
    {"synchronous", MH_OPT_ENUM, "normal", 0,
     "normal: a commit survives a crash of the process (WAL); full: also a power loss (fsync per commit)",
     "normal|full", 0, 0},
    {"batch", MH_OPT_INT, "256", 0, "messages per commit during imports", NULL, 1, 100000},
    MH_OPT_TABLE_END,
};

/* Map an SQLite result to a mailhub code: what may pass (lock, full disk, I/O) is retried. */
static int sq_rc(int src)
{
    switch (src & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return MH_OK;
    case SQLITE_NOMEM:
        return MH_ENOMEM;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
        return MH_ERETRY;
    case SQLITE_CONSTRAINT:
    case SQLITE_TOOBIG:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
        return MH_EINVAL;
    default:
        return MH_ERR;
    }
}

static int sq_fail(struct sq *s, int src, const char *what)
{
    mh_set_error(s->ctx, "%s: %s: %s", s->path, what, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(src));
    int rc = sq_rc(src);
    return rc == MH_OK ? MH_ERR : rc;
}

static int sq_exec(struct sq *s, const char *sql)
{
    char *msg = NULL;
    int src = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
    if (src != SQLITE_OK) {
        mh_set_error(s->ctx, "%s: %s", s->path, msg ? msg : sqlite3_errstr(src));
        sqlite3_free(msg);
        int rc = sq_rc(src);
        return rc == MH_OK ? MH_ERR : rc;
    }
    return MH_OK;
}

static char *sq_resolve(struct mh_plugin_ctx *ctx, const char *path)
{
    return mh_data_path(ctx, path == NULL || *path == '\0' ? "mailhub.db" : path);
}

static int sq_init(struct mh_plugin_ctx *ctx, const struct mh_config *cfg, void **state_out)
{
    struct sq *s = mh_calloc(1, sizeof *s);
    if (s == NULL)
        return MH_ENOMEM;
    s->ctx = ctx;
    const char *sync = mh_cfg_str(cfg, "synchronous");
    s->sync_full = sync != NULL && strcmp(sync, "full") == 0;
    s->batch = mh_cfg_int(cfg, "batch");
    if (s->batch < 1)
        s->batch = 1;
    s->path = sq_resolve(ctx, mh_cfg_str(cfg, "path"));
    if (s->path == NULL) {
        mh_free(s);
        return MH_ENOMEM;
    }
    *state_out = s;
    return MH_OK;
}

static int sq_migrate(struct sq *s)
{
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL);
    if (src != SQLITE_OK)
        return sq_fail(s, src, "reading the schema version");
    int version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    if (version < 0)
        return sq_fail(s, sqlite3_errcode(s->db), "reading the schema version");
    if (version > SQ_SCHEMA_VERSION) {
        mh_set_error(s->ctx, "%s: schema version %d is newer than this plugin's (%d); use a newer mailhub",
                     s->path, version, SQ_SCHEMA_VERSION);
        return MH_ERR;
    }
    for (int v = version; v < SQ_SCHEMA_VERSION; v++) {
        char bump[64];
        snprintf(bump, sizeof bump, "PRAGMA user_version = %d", v + 1);
        int rc = sq_exec(s, "BEGIN IMMEDIATE");
        if (rc == MH_OK)
            rc = sq_exec(s, sq_migrations[v]);
        if (rc == MH_OK)
            rc = sq_exec(s, bump);
        if (rc == MH_OK)
            rc = sq_exec(s, "COMMIT");
        if (rc != MH_OK) {
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            return rc;
        }
        mh_log_info(s->ctx, "%s: schema migrated to version %d", s->path, v + 1);
    }
    return MH_OK;
}

static void sq_close_db(struct sq *s)
{
    for (int i = 0; i < SQ_N_STMTS; i++) {
        sqlite3_finalize(s->st[i]);
        s->st[i] = NULL;
    }
    if (s->db != NULL)
        sqlite3_close(s->db); /* rolls back an open transaction */
    s->db = NULL;
    s->in_tx = 0;
    s->pending = 0;
}

static int sq_open(void *state)
{
    struct sq *s = state;
    if (s->db != NULL)
        return MH_OK;
    /* Mail is private: create the file 0600 before SQLite does (it would use
     * 0644); SQLite gives the -wal and -shm files the database file's mode. */
    int fd = open(s->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        mh_set_error(s->ctx, "cannot open %s: %s", s->path, strerror(e));
        return e == ENOSPC || e == EMFILE || e == ENFILE ? MH_ERETRY : MH_ERR;
    }
    close(fd);

    int src = sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK) {
        int rc = sq_fail(s, src, "open");
        sq_close_db(s);
        return rc;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, 5000);

    int rc = MH_OK;
    sqlite3_stmt *st = NULL;
    src = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (src == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *mode = sqlite3_column_text(st, 0);
        if (mode == NULL || strcmp((const char *)mode, "wal") != 0) {
            mh_set_error(s->ctx, "%s: cannot switch to WAL mode (got %s)", s->path,
                         mode ? (const char *)mode : "?");
            rc = MH_ERR;
        }
    } else {
        rc = sq_fail(s, sqlite3_errcode(s->db), "setting WAL mode");
    }
    sqlite3_finalize(st);
    if (rc == MH_OK)
        rc = sq_exec(s, s->sync_full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
    if (rc == MH_OK)
        rc = sq_exec(s, "PRAGMA foreign_keys = ON");
    if (rc == MH_OK)
        rc = sq_migrate(s);
    for (int i = 0; i < SQ_N_STMTS && rc == MH_OK; i++) {
        src = sqlite3_prepare_v3(s->db, sq_stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL);
        if (src != SQLITE_OK)
            rc = sq_fail(s, src, "preparing statements");
    }
    if (rc != MH_OK) {
        sq_close_db(s);
        return rc;
    }
    mh_log_debug(s->ctx, "opened %s (schema %d, synchronous=%s, batch %lld)", s->path, SQ_SCHEMA_VERSION,
                 s->sync_full ? "full" : "normal", (long long)s->batch);
    return MH_OK;
}

static int sq_commit(struct sq *s)
{
    if (!s->in_tx)
        return MH_OK;
    int rc = sq_exec(s, "COMMIT");
    if (rc != MH_OK) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        if (s->pending > 0)
            s->tx_lost = 1;
    }
    s->in_tx = 0;
    s->pending = 0;
    return rc;
}

static int sq_flush(void *state)
{
    struct sq *s = state;
    if (s->db == NULL) {
        mh_set_error(s->ctx, "%s: store is not open", s->path);
        return MH_ERR;
    }
    int rc = sq_commit(s);
    if (rc == MH_OK && s->tx_lost) {
        /* Puts acknowledged to the core since the last flush were rolled back. */
        mh_set_error(s->ctx, "%s: a failed write rolled back the messages stored since the last flush",
                     s->path);
        rc = MH_ERETRY;
    }
    s->tx_lost = 0;
    return rc;
}

static void sq_close(void *state)
{
    struct sq *s = state;
    if (s->db == NULL)
        return;
    if (sq_commit(s) != MH_OK)
        mh_log_error(s->ctx, "%s: final commit failed", s->path);
    sq_close_db(s);
}

static int sq_begin(struct sq *s)
{
    if (s->in_tx)
        return MH_OK;
    int rc = sq_exec(s, "BEGIN IMMEDIATE");
    if (rc == MH_OK) {
        s->in_tx = 1;
        s->pending = 0;
    }
    return rc;
}

static int sq_bind_text(sqlite3_stmt *st, int i, const char *v)
{
    return v != NULL ? sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

/* After a failed statement inside the batch: if SQLite rolled the whole
 * transaction back, the earlier unflushed puts are gone too. */
static void sq_after_error(struct sq *s)
{
    if (s->in_tx && sqlite3_get_autocommit(s->db)) {
        s->in_tx = 0;
        if (s->pending > 0)
            s->tx_lost = 1;
        s->pending = 0;
    }
}

static int sq_put_message(void *state, const struct mh_message *msg, struct mh_message_ref *ref_out)
{
    struct sq *s = state;
    if (s->db == NULL) {
        mh_set_error(s->ctx, "%s: store is not open", s->path);
        return MH_ERR;
    }
    if (msg == NULL || ref_out == NULL || msg->user == NULL || msg->account == NULL ||
        msg->source_id == NULL || (msg->raw == NULL && msg->raw_len > 0) ||
        msg->raw_len > (size_t)INT32_MAX) {
        mh_set_error(s->ctx, "put_message: user, account, source_id and raw (< 2 GB) are required");
        return MH_EINVAL;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(msg->raw ? msg->raw : "", msg->raw_len, md, &md_len, EVP_sha256(), NULL) != 1) {
        mh_set_error(s->ctx, "SHA-256 failed");
        return MH_ERR;
    }
    int rc = sq_begin(s);
    if (rc != MH_OK)
        return rc;

    sqlite3_stmt *st = s->st[SQ_INSERT];
    sq_bind_text(st, 1, msg->user);
    sq_bind_text(st, 2, msg->account);
    sq_bind_text(st, 3, msg->folder);
    sq_bind_text(st, 4, msg->source_id);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)msg->raw_len);
    sq_bind_text(st, 6, msg->flags);
    sqlite3_bind_int64(st, 7, msg->internal_date);
    sqlite3_bind_blob(st, 8, md, (int)md_len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 9, msg->raw ? msg->raw : "", (int)msg->raw_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 10, (sqlite3_int64)time(NULL));
    int src = sqlite3_step(st);
    int inserted = src == SQLITE_DONE && sqlite3_changes(s->db) > 0;
    sqlite3_int64 id = inserted ? sqlite3_last_insert_rowid(s->db) : 0;
    if (src != SQLITE_DONE)
        rc = sq_fail(s, src, "storing a message");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != MH_OK) {
        sq_after_error(s);
        return rc;
    }

    if (!inserted) {
        st = s->st[SQ_FIND];
        sq_bind_text(st, 1, msg->user);
        sq_bind_text(st, 2, msg->account);
        sq_bind_text(st, 3, msg->source_id);
        src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            id = sqlite3_column_int64(st, 0);
        } else if (src == SQLITE_DONE) {
            mh_set_error(s->ctx, "%s: the conflicting message vanished", s->path);
            rc = MH_ERR;
        } else {
            rc = sq_fail(s, src, "finding a duplicate");
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (rc != MH_OK) {
            sq_after_error(s);
            return rc;
        }
    }
    ref_out->id = id;
    ref_out->duplicate = !inserted;
    if (inserted && ++s->pending >= s->batch) {
        rc = sq_commit(s);
        if (rc != MH_OK) {
            /* This message went with the batch: report it failed, and the rest
             * through the next flush (tx_lost). */
            s->tx_lost = 1;
            return rc;
        }
    }
    return MH_OK;
}

static int sq_usage(void *state, const char *user, uint64_t *bytes_out, uint64_t *count_out)
{
    struct sq *s = state;
    if (s->db == NULL || user == NULL)
        return MH_EINVAL;
    sqlite3_stmt *st = s->st[SQ_USAGE];
    sq_bind_text(st, 1, user);
    int src = sqlite3_step(st), rc = MH_OK;
    uint64_t bytes = 0, count = 0;
    if (src == SQLITE_ROW) {
        sqlite3_int64 b = sqlite3_column_int64(st, 0), c = sqlite3_column_int64(st, 1);
        bytes = b > 0 ? (uint64_t)b : 0;
        count = c > 0 ? (uint64_t)c : 0;
    } else if (src != SQLITE_DONE) {
        rc = sq_fail(s, src, "reading usage");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == MH_OK) {
        if (bytes_out != NULL)
            *bytes_out = bytes;
        if (count_out != NULL)
            *count_out = count;
    }
    return rc;
}

static int sq_quota_get(void *state, const char *user, uint64_t *alloc_out)
{
    struct sq *s = state;
    if (s->db == NULL || user == NULL)
        return MH_EINVAL;
    sqlite3_stmt *st = s->st[SQ_QUOTA_GET];
    sq_bind_text(st, 1, user);
    int src = sqlite3_step(st), rc = 0;
    if (src == SQLITE_ROW) {
        sqlite3_int64 a = sqlite3_column_int64(st, 0);
        if (alloc_out != NULL)
            *alloc_out = a > 0 ? (uint64_t)a : 0;
        rc = 1;
    } else if (src != SQLITE_DONE) {
        rc = sq_fail(s, src, "reading quota");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static int sq_step_once(struct sq *s, sqlite3_stmt *st, const char *what)
{
    int src = sqlite3_step(st);
    int rc = src == SQLITE_DONE ? MH_OK : sq_fail(s, src, what);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static int sq_quota_set(void *state, const char *user, uint64_t alloc, const char *reason)
{
    struct sq *s = state;
    if (s->db == NULL || user == NULL || alloc > (uint64_t)INT64_MAX) {
        if (s->db != NULL)
            mh_set_error(s->ctx, "quota_set: invalid user or allocation");
        return MH_EINVAL;
    }
    /* The allocation must be durable when this returns: commit the batch
     * first (harmless: it only makes those messages durable sooner), then
     * write the allocation and its history in their own transaction. */
    int rc = sq_commit(s);
    if (rc != MH_OK)
        return rc;
    rc = sq_begin(s);
    if (rc != MH_OK)
        return rc;
    sqlite3_stmt *st = s->st[SQ_QUOTA_SET];
    sq_bind_text(st, 1, user);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)alloc);
    rc = sq_step_once(s, st, "writing quota");
    if (rc == MH_OK) {
        st = s->st[SQ_QUOTA_EVENT];
        sq_bind_text(st, 1, user);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)alloc);
        sq_bind_text(st, 3, reason != NULL ? reason : "");
        sqlite3_bind_int64(st, 4, (sqlite3_int64)time(NULL));
        rc = sq_step_once(s, st, "writing quota history");
    }
    if (rc != MH_OK) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        s->in_tx = 0;
        s->pending = 0;
        return rc;
    }
    return sq_commit(s);
}

static int sq_has_source_id(void *state, const char *user, const char *account, const char *source_id)
{
    struct sq *s = state;
    if (s->db == NULL || user == NULL || account == NULL || source_id == NULL)
        return MH_EINVAL;
    sqlite3_stmt *st = s->st[SQ_FIND];
    sq_bind_text(st, 1, user);
    sq_bind_text(st, 2, account);
    sq_bind_text(st, 3, source_id);
    int src = sqlite3_step(st);
    int rc = src == SQLITE_ROW ? 1 : src == SQLITE_DONE ? 0 : sq_fail(s, src, "looking up a message");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static void sq_free(void *state)
{
    struct sq *s = state;
    if (s == NULL)
        return;
    sq_close(s);
    mh_free(s->path);
    mh_free(s);
}

static const struct mh_store_ops sq_ops = {
    .struct_size = sizeof(struct mh_store_ops),
    .open = sq_open,
    .close = sq_close,
    .put_message = sq_put_message,
    .flush = sq_flush,
    .usage = sq_usage,
    .quota_get = sq_quota_get,
    .quota_set = sq_quota_set,
    .has_source_id = sq_has_source_id,
};

MH_PLUGIN_DEFINE(sqlite, .kind = MH_KIND_STORE, .name = "sqlite", .version = "1.0.0",
                 .description = "embedded SQLite store (one file, WAL)", .options = sq_options,
                 .init = sq_init, .free = sq_free, .ops = &sq_ops);

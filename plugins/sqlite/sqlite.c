/*
 * sqlite: the embedded store.  One database file in WAL mode, used from the
 * core's single store thread (so the connection is opened without SQLite's
 * own mutexes).  It keeps users, API tokens, linked accounts, folders,
 * messages (bodies arrive sealed by the core: opaque blobs here) and quota
 * history; every query is scoped by a user id.
 *
 * Transactions: every write opens a transaction lazily (BEGIN IMMEDIATE);
 * flush() commits it, and so does a put_message() that brings the batch to
 * `batch` messages.  The core calls flush() after each batch of work and
 * counts nothing as stored before it returns MH_OK.  Reads on this connection
 * see the open transaction's writes.  With synchronous=normal a commit
 * survives a crash of the process; with synchronous=full also a power loss.
 *
 * Usage (bytes and count per user) and each folder's message count and bytes
 * are kept exactly, in the same transaction as the rows they count, and read
 * in O(1): put_message() adds to them (the only way messages are inserted),
 * triggers subtract whatever deletes or changes messages, including ON DELETE
 * CASCADE when an account or a user is deleted.  (No INSERT trigger: it would
 * make SQLite keep a statement journal for every insert, which costs about
 * half the throughput of small messages.)
 *
 * Ids come from AUTOINCREMENT: never reused, so paging by id (after_id) and
 * ids held by clients stay unambiguous after deletes.
 *
 * Schema changes are appended to sq_migrations[] below; PRAGMA user_version
 * records how many have been applied.
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

#include <sqlite3.h>

#include <mailhub/plugin.h>
#include <mailhub/store.h>

struct sq;

/* A new database file gets this page size (fixed at creation): large enough
 * that a message of a few hundred KB is a short overflow chain, small enough
 * for the index pages. */
#define SQ_PAGE_SIZE 16384

/* Schema migrations: entry i takes user_version i to i + 1.  Only append; keep
 * each SQL text in parentheses so a missing comma cannot merge two of them.
 * `check`, if set, runs first in the same transaction and may refuse. */
struct sq_migration {
    const char *sql;
    int (*check)(struct sq *s);
};

static int sq_check_v1_empty(struct sq *s);

static const struct sq_migration sq_migrations[] = {
    /* 1: messages, quota, usage, keyed by user and account names (mailhub 0.0). */
    {("CREATE TABLE messages ("
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
     NULL},
    /* 2: SDK 1.1 records scoped by user id.  Replaces schema 1, which must be
     * empty (pre-release: its data is not carried over). */
    {("DROP TABLE messages;"
      "DROP TABLE quota;"
      "DROP TABLE quota_events;"
      "DROP TABLE usage;"
      "CREATE TABLE meta ("
      "  key TEXT PRIMARY KEY,"
      "  value INTEGER NOT NULL) WITHOUT ROWID;"
      "CREATE TABLE users ("
      "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
      "  name TEXT NOT NULL UNIQUE,"
      "  password_hash TEXT,"
      "  phone TEXT,"
      "  email TEXT,"
      "  admin INTEGER NOT NULL DEFAULT 0,"
      "  data_key BLOB,"
      "  created INTEGER NOT NULL);"
      "CREATE TABLE tokens ("
      "  hash BLOB PRIMARY KEY,"
      "  user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
      "  label TEXT,"
      "  created INTEGER NOT NULL,"
      "  expires INTEGER NOT NULL) WITHOUT ROWID;"
      "CREATE INDEX tokens_user ON tokens (user_id);"
      "CREATE TABLE accounts ("
      "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
      "  user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
      "  name TEXT NOT NULL,"
      "  provider TEXT NOT NULL,"
      "  settings TEXT,"
      "  secret BLOB,"
      "  paused INTEGER NOT NULL DEFAULT 0,"
      "  status TEXT,"
      "  origin TEXT,"
      "  created INTEGER NOT NULL,"
      "  UNIQUE (user_id, name));"
      "CREATE TABLE folders ("
      "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
      "  user_id INTEGER NOT NULL,"
      "  account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,"
      "  name TEXT NOT NULL,"
      "  uidvalidity INTEGER NOT NULL,"
      "  uidnext INTEGER NOT NULL,"
      "  highestmodseq INTEGER NOT NULL,"
      "  messages INTEGER NOT NULL DEFAULT 0,"
      "  bytes INTEGER NOT NULL DEFAULT 0,"
      "  UNIQUE (account_id, name));"
      "CREATE INDEX folders_user ON folders (user_id);"
      /* The blob last: reading the other columns never walks its overflow pages. */
      "CREATE TABLE messages ("
      "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
      "  user_id INTEGER NOT NULL,"
      "  account_id INTEGER NOT NULL,"
      "  folder_id INTEGER NOT NULL REFERENCES folders (id) ON DELETE CASCADE,"
      "  uid INTEGER NOT NULL,"
      "  modseq INTEGER NOT NULL,"
      "  source_id TEXT,"
      "  size INTEGER NOT NULL,"
      "  sha256 BLOB NOT NULL,"
      "  flags TEXT,"
      "  internal_date INTEGER NOT NULL DEFAULT 0,"
      "  date INTEGER NOT NULL DEFAULT 0,"
      "  \"from\" TEXT,"
      "  \"to\" TEXT,"
      "  cc TEXT,"
      "  subject TEXT,"
      "  message_id TEXT,"
      "  stored INTEGER NOT NULL,"
      "  blob BLOB NOT NULL,"
      "  UNIQUE (folder_id, uid));"
      "CREATE UNIQUE INDEX messages_source ON messages (user_id, account_id, source_id)"
      "  WHERE source_id IS NOT NULL;"
      /* Each ends with the rowid (id): equality on the column, then a range and order on id. */
      "CREATE INDEX messages_user ON messages (user_id);"
      "CREATE INDEX messages_account ON messages (account_id);"
      "CREATE INDEX messages_folder ON messages (folder_id);"
      "CREATE TABLE usage ("
      "  user_id INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,"
      "  bytes INTEGER NOT NULL DEFAULT 0,"
      "  count INTEGER NOT NULL DEFAULT 0);"
      "CREATE TABLE quota ("
      "  user_id INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,"
      "  allocation INTEGER NOT NULL);"
      "CREATE TABLE quota_log ("
      "  id INTEGER PRIMARY KEY,"
      "  user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
      "  allocation INTEGER NOT NULL,"
      "  reason TEXT NOT NULL,"
      "  time INTEGER NOT NULL);"
      "CREATE INDEX quota_log_user ON quota_log (user_id);"
      /* Inserts are counted by put_message (see the top of the file). */
      "CREATE TRIGGER messages_del AFTER DELETE ON messages BEGIN"
      "  UPDATE usage SET bytes = bytes - OLD.size, count = count - 1 WHERE user_id = OLD.user_id;"
      "  UPDATE folders SET messages = messages - 1, bytes = bytes - OLD.size WHERE id = OLD.folder_id;"
      "END;"
      "CREATE TRIGGER messages_upd AFTER UPDATE OF user_id, folder_id, size ON messages BEGIN"
      "  UPDATE usage SET bytes = bytes - OLD.size, count = count - 1 WHERE user_id = OLD.user_id;"
      "  UPDATE folders SET messages = messages - 1, bytes = bytes - OLD.size WHERE id = OLD.folder_id;"
      "  INSERT INTO usage (user_id, bytes, count) VALUES (NEW.user_id, NEW.size, 1)"
      "    ON CONFLICT (user_id) DO UPDATE SET bytes = bytes + excluded.bytes, count = count + 1;"
      "  UPDATE folders SET messages = messages + 1, bytes = bytes + NEW.size WHERE id = NEW.folder_id;"
      "END;"),
     sq_check_v1_empty},
    /* 3: SDK 1.2.  Messages gain attachments and source_gone (rebuilt so that
     * the blob stays the last column), folders source_gone; providers' sync
     * state; the blind search index (opaque terms only, see docs/security.md). */
    {("DROP TRIGGER messages_del;"
      "DROP TRIGGER messages_upd;"
      "CREATE TABLE messages_v3 ("
      "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
      "  user_id INTEGER NOT NULL,"
      "  account_id INTEGER NOT NULL,"
      "  folder_id INTEGER NOT NULL REFERENCES folders (id) ON DELETE CASCADE,"
      "  uid INTEGER NOT NULL,"
      "  modseq INTEGER NOT NULL,"
      "  source_id TEXT,"
      "  size INTEGER NOT NULL,"
      "  sha256 BLOB NOT NULL,"
      "  flags TEXT,"
      "  internal_date INTEGER NOT NULL DEFAULT 0,"
      "  date INTEGER NOT NULL DEFAULT 0,"
      "  \"from\" TEXT,"
      "  \"to\" TEXT,"
      "  cc TEXT,"
      "  subject TEXT,"
      "  message_id TEXT,"
      "  stored INTEGER NOT NULL,"
      "  attachments TEXT,"
      "  source_gone INTEGER NOT NULL DEFAULT 0,"
      "  blob BLOB NOT NULL,"
      "  UNIQUE (folder_id, uid));"
      "INSERT INTO messages_v3 (id, user_id, account_id, folder_id, uid, modseq, source_id, size, sha256, flags,"
      "  internal_date, date, \"from\", \"to\", cc, subject, message_id, stored, blob)"
      "  SELECT id, user_id, account_id, folder_id, uid, modseq, source_id, size, sha256, flags,"
      "  internal_date, date, \"from\", \"to\", cc, subject, message_id, stored, blob FROM messages;"
      "DROP TABLE messages;"
      "ALTER TABLE messages_v3 RENAME TO messages;"
      /* SDK 1.2: a source id is unique within its folder (IMAP UIDs are per folder, and two
       * folders may share a UIDVALIDITY); a folder keeps its id when renamed at the source. */
      "CREATE UNIQUE INDEX messages_source ON messages (folder_id, source_id) WHERE source_id IS NOT NULL;"
      "CREATE INDEX messages_account_source ON messages (account_id, source_id) WHERE source_id IS NOT NULL;"
      "CREATE INDEX messages_user ON messages (user_id);"
      "CREATE INDEX messages_account ON messages (account_id);"
      "CREATE INDEX messages_folder ON messages (folder_id);"
      "CREATE INDEX messages_content ON messages (folder_id, sha256);"
      "ALTER TABLE folders ADD COLUMN source_gone INTEGER NOT NULL DEFAULT 0;"
      "CREATE TABLE sync_state ("
      "  account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,"
      "  key TEXT NOT NULL,"
      "  value TEXT NOT NULL,"
      "  PRIMARY KEY (account_id, key)) WITHOUT ROWID;"
      /* rowid = the message's id; only AND of whole terms is asked, so no positions */
      "CREATE VIRTUAL TABLE msg_search USING fts5(terms, tokenize = 'ascii', detail = 'none');"
      "CREATE TABLE user_prefs ("
      "  user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,"
      "  key TEXT NOT NULL,"
      "  value TEXT NOT NULL,"
      "  PRIMARY KEY (user_id, key)) WITHOUT ROWID;"
      "CREATE TABLE jobs ("
      "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
      "  key TEXT NOT NULL UNIQUE,"
      "  user_id INTEGER REFERENCES users (id) ON DELETE CASCADE,"
      "  notifier TEXT NOT NULL,"
      "  event_type TEXT NOT NULL,"
      "  state TEXT NOT NULL,"
      "  attempts INTEGER NOT NULL DEFAULT 0,"
      "  next_at INTEGER NOT NULL,"
      "  fold TEXT,"
      "  created INTEGER NOT NULL,"
      "  updated INTEGER NOT NULL,"
      "  detail TEXT,"
      "  event TEXT NOT NULL);"
      "CREATE INDEX jobs_state ON jobs (state, next_at);"
      "CREATE INDEX jobs_user ON jobs (user_id, notifier, created);"
      "CREATE INDEX jobs_fold ON jobs (fold) WHERE fold IS NOT NULL;"
      "CREATE TRIGGER messages_del AFTER DELETE ON messages BEGIN"
      "  UPDATE usage SET bytes = bytes - OLD.size, count = count - 1 WHERE user_id = OLD.user_id;"
      "  UPDATE folders SET messages = messages - 1, bytes = bytes - OLD.size WHERE id = OLD.folder_id;"
      "  DELETE FROM msg_search WHERE rowid = OLD.id;"
      "END;"
      "CREATE TRIGGER messages_upd AFTER UPDATE OF user_id, folder_id, size ON messages BEGIN"
      "  UPDATE usage SET bytes = bytes - OLD.size, count = count - 1 WHERE user_id = OLD.user_id;"
      "  UPDATE folders SET messages = messages - 1, bytes = bytes - OLD.size WHERE id = OLD.folder_id;"
      "  INSERT INTO usage (user_id, bytes, count) VALUES (NEW.user_id, NEW.size, 1)"
      "    ON CONFLICT (user_id) DO UPDATE SET bytes = bytes + excluded.bytes, count = count + 1;"
      "  UPDATE folders SET messages = messages + 1, bytes = bytes + NEW.size WHERE id = NEW.folder_id;"
      "END;"),
     NULL},
    /* 4: SDK 1.3.  The queue of messages whose body the core analyses after
     * the import (search terms, attachments): a table of its own, so that the
     * messages table (blob last) is not rebuilt; a covering index for
     * source_list; and every message queued, for the new blind terms. */
    {("CREATE TABLE index_queue ("
      "  id INTEGER PRIMARY KEY,"
      "  user_id INTEGER NOT NULL);"
      "CREATE INDEX index_queue_user ON index_queue (user_id);"
      "CREATE TRIGGER messages_unqueue AFTER DELETE ON messages BEGIN"
      "  DELETE FROM index_queue WHERE id = OLD.id;"
      "END;"
      "CREATE TRIGGER messages_requeue AFTER UPDATE OF user_id ON messages BEGIN"
      "  UPDATE index_queue SET user_id = NEW.user_id WHERE id = NEW.id;"
      "END;"
      /* source_list reads a folder's identities without walking the rows (and their blobs' first
       * pages): a re-sync of a POP3 mailbox or of an IMAP folder without CONDSTORE lists them all */
      "CREATE INDEX messages_source_list ON messages (folder_id, uid, source_id, flags, source_gone)"
      "  WHERE source_id IS NOT NULL;"
      /* the terms of schema 3 are of the first blinding scheme (HMAC-SHA256); 1.3 blinds with
       * AES-256 under another key: every message is analysed again, in the background */
      "DELETE FROM msg_search;"
      "INSERT INTO index_queue (id, user_id) SELECT id, user_id FROM messages;"),
     NULL},
};
#define SQ_SCHEMA_VERSION ((int)(sizeof sq_migrations / sizeof sq_migrations[0]))

/* ------------------------------------------------------- statements */

#define SQ_USER_COLS "id, name, password_hash, phone, email, admin, data_key, created"
#define SQ_ACCOUNT_COLS "id, user_id, name, provider, settings, secret, paused, status, origin, created"
#define SQ_FOLDER_COLS \
    "id, user_id, account_id, name, uidvalidity, uidnext, highestmodseq, messages, bytes, source_gone"

#define SQ_MSG_COLS                                                                                          \
    "m.id, m.user_id, m.account_id, m.folder_id, f.name, m.uid, m.modseq, m.source_id, m.size, m.sha256,"    \
    " m.flags, m.internal_date, m.date, m.\"from\", m.\"to\", m.cc, m.subject, m.message_id, m.stored,"     \
    " m.attachments, m.source_gone"

enum sq_stmt {
    SQ_USER_INS,
    SQ_USER_UPD,
    SQ_USER_BY_ID,
    SQ_USER_BY_NAME,
    SQ_USER_LIST,
    SQ_USER_DEL,
    SQ_USER_EXISTS,
    SQ_TOKEN_INS,
    SQ_TOKEN_GET,
    SQ_TOKEN_DEL,
    SQ_ACC_INS,
    SQ_ACC_UPD,
    SQ_ACC_BY_ID,
    SQ_ACC_BY_NAME,
    SQ_ACC_BY_NAME_ANY,
    SQ_ACC_LIST,
    SQ_ACC_LIST_ALL,
    SQ_ACC_DEL,
    SQ_ACC_OF_USER,
    SQ_FOLDER_LIST,
    SQ_FOLDER_LIST_ACC,
    SQ_FOLDER_NEXT,
    SQ_FOLDER_INS,
    SQ_UIDVALIDITY,
    SQ_MSG_FIND,
    SQ_MSG_FIND_F,
    SQ_MSG_INS,
    SQ_USAGE_ADD,
    SQ_USAGE,
    SQ_QUOTA_GET,
    SQ_QUOTA_SET,
    SQ_QUOTA_LOG,
    SQ_QUOTA_HIST,
    SQ_STATE_GET,
    SQ_STATE_PUT,
    SQ_STATE_DEL,
    SQ_MSG_SOURCE,
    SQ_MSG_SET_SOURCE,
    SQ_FOLDER_MODSEQ,
    SQ_MSG_CONTENT,
    SQ_MSG_REKEY,
    SQ_FOLDER_FIND,
    SQ_FOLDER_RENAME,
    SQ_FOLDER_GONE,
    SQ_SOURCE_LIST,
    SQ_SEARCH_INS,
    SQ_JOB_INS,
    SQ_JOB_UPD,
    SQ_JOB_BY_KEY,
    SQ_JOB_COUNT,
    SQ_JOB_PRUNE,
    SQ_PREF_GET,
    SQ_PREF_PUT,
    SQ_PREF_DEL,
    SQ_QUEUE_INS,
    SQ_QUEUE_DEL,
    SQ_QUEUE_LIST,
    SQ_QUEUE_COUNT,
    SQ_QUEUE_COUNT_ALL,
    SQ_MSG_SET_ATT,
    SQ_N_STMTS,
};

/* Parenthesised: one element split over lines, not several (clang -Wstring-concatenation). */
static const char *const sq_stmt_sql[SQ_N_STMTS] = {
    [SQ_USER_INS] = ("INSERT INTO users (name, password_hash, phone, email, admin, data_key, created)"
                     " VALUES (?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
    [SQ_USER_UPD] = ("UPDATE users SET name = ?2, password_hash = ?3, phone = ?4, email = ?5, admin = ?6,"
                     " data_key = ?7, created = CASE WHEN ?8 = 0 THEN created ELSE ?8 END WHERE id = ?1"),
    [SQ_USER_BY_ID] = "SELECT " SQ_USER_COLS " FROM users WHERE id = ?1",
    [SQ_USER_BY_NAME] = "SELECT " SQ_USER_COLS " FROM users WHERE name = ?1",
    [SQ_USER_LIST] = "SELECT " SQ_USER_COLS " FROM users ORDER BY id",
    [SQ_USER_DEL] = "DELETE FROM users WHERE id = ?1",
    [SQ_USER_EXISTS] = "SELECT 1 FROM users WHERE id = ?1",
    [SQ_TOKEN_INS] =
        "INSERT INTO tokens (hash, user_id, label, created, expires) VALUES (?1, ?2, ?3, ?4, ?5)",
    [SQ_TOKEN_GET] = "SELECT user_id FROM tokens WHERE hash = ?1 AND (expires = 0 OR expires > ?2)",
    [SQ_TOKEN_DEL] = "DELETE FROM tokens WHERE hash = ?1",
    [SQ_ACC_INS] = ("INSERT INTO accounts (user_id, name, provider, settings, secret, paused, status, origin,"
                    " created) VALUES (?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
    [SQ_ACC_UPD] = ("UPDATE accounts SET name = ?3, provider = ?4, settings = ?5, secret = ?6, paused = ?7,"
                    " status = ?8, origin = ?9, created = CASE WHEN ?10 = 0 THEN created ELSE ?10 END"
                    " WHERE id = ?1 AND user_id = ?2"),
    [SQ_ACC_BY_ID] = "SELECT " SQ_ACCOUNT_COLS " FROM accounts WHERE id = ?1 AND (?2 = 0 OR user_id = ?2)",
    [SQ_ACC_BY_NAME] = "SELECT " SQ_ACCOUNT_COLS " FROM accounts WHERE user_id = ?2 AND name = ?1",
    [SQ_ACC_BY_NAME_ANY] = "SELECT " SQ_ACCOUNT_COLS " FROM accounts WHERE name = ?1 ORDER BY id LIMIT 1",
    [SQ_ACC_LIST] = "SELECT " SQ_ACCOUNT_COLS " FROM accounts WHERE user_id = ?1 ORDER BY id",
    [SQ_ACC_LIST_ALL] = "SELECT " SQ_ACCOUNT_COLS " FROM accounts ORDER BY id",
    [SQ_ACC_DEL] = "DELETE FROM accounts WHERE id = ?1 AND user_id = ?2",
    [SQ_ACC_OF_USER] = "SELECT 1 FROM accounts WHERE id = ?1 AND user_id = ?2",
    [SQ_FOLDER_LIST] = "SELECT " SQ_FOLDER_COLS " FROM folders WHERE user_id = ?1 ORDER BY id",
    [SQ_FOLDER_LIST_ACC] =
        "SELECT " SQ_FOLDER_COLS " FROM folders WHERE account_id = ?2 AND user_id = ?1 ORDER BY id",
    /* The folder's next UID and modseq, and the new message counted, in one
     * step; RETURNING sees the updated row. */
    [SQ_FOLDER_NEXT] = ("UPDATE folders SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1,"
                        " messages = messages + 1, bytes = bytes + ?4"
                        " WHERE account_id = ?1 AND name = ?2 AND user_id = ?3"
                        " RETURNING id, uidnext - 1, highestmodseq"),
    [SQ_FOLDER_INS] = ("INSERT INTO folders (user_id, account_id, name, uidvalidity, uidnext, highestmodseq)"
                       " VALUES (?1, ?2, ?3, ?4, 1, 0)"),
    /* max(now, last + 1): never the same value twice in this database. */
    [SQ_UIDVALIDITY] =
        ("INSERT INTO meta (key, value) VALUES ('uidvalidity', ?1)"
         " ON CONFLICT (key) DO UPDATE SET value = max(excluded.value, value + 1) RETURNING value"),
    [SQ_MSG_FIND] = ("SELECT id FROM messages INDEXED BY messages_account_source"
                     " WHERE account_id = ?2 AND source_id = ?3 AND +user_id = ?1 ORDER BY id LIMIT 1"),
    [SQ_MSG_FIND_F] = ("SELECT m.id FROM folders AS f CROSS JOIN messages AS m INDEXED BY messages_source"
                       " ON m.folder_id = f.id AND m.source_id = ?3"
                       " WHERE f.account_id = ?2 AND f.name = ?4 AND f.user_id = ?1"),
    [SQ_MSG_INS] =
        ("INSERT INTO messages (user_id, account_id, folder_id, uid, modseq, source_id, size, sha256,"
         " flags, internal_date, date, \"from\", \"to\", cc, subject, message_id, stored, blob, attachments)"
         " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"),
    [SQ_USAGE_ADD] =
        ("INSERT INTO usage (user_id, bytes, count) VALUES (?1, ?2, 1)"
         " ON CONFLICT (user_id) DO UPDATE SET bytes = bytes + excluded.bytes, count = count + 1"),
    [SQ_USAGE] = "SELECT bytes, count FROM usage WHERE user_id = ?1",
    [SQ_QUOTA_GET] = "SELECT allocation FROM quota WHERE user_id = ?1",
    [SQ_QUOTA_SET] = ("INSERT INTO quota (user_id, allocation) VALUES (?1, ?2)"
                      " ON CONFLICT (user_id) DO UPDATE SET allocation = excluded.allocation"),
    [SQ_QUOTA_LOG] = "INSERT INTO quota_log (user_id, allocation, reason, time) VALUES (?1, ?2, ?3, ?4)",
    [SQ_QUOTA_HIST] = "SELECT allocation, reason, time FROM quota_log WHERE user_id = ?1 ORDER BY id",
    /* sync state is the account's: the account must be the user's */
    [SQ_STATE_GET] = ("SELECT value FROM sync_state WHERE account_id = ?2 AND key = ?3"
                      " AND EXISTS (SELECT 1 FROM accounts WHERE id = ?2 AND user_id = ?1)"),
    [SQ_STATE_PUT] = ("INSERT INTO sync_state (account_id, key, value) SELECT ?2, ?3, ?4"
                      " WHERE EXISTS (SELECT 1 FROM accounts WHERE id = ?2 AND user_id = ?1)"
                      " ON CONFLICT (account_id, key) DO UPDATE SET value = excluded.value"),
    [SQ_STATE_DEL] = ("DELETE FROM sync_state WHERE account_id = ?2 AND key = ?3"
                      " AND EXISTS (SELECT 1 FROM accounts WHERE id = ?2 AND user_id = ?1)"),
    [SQ_MSG_SOURCE] = ("SELECT m.id, m.folder_id, m.flags, m.source_gone FROM folders AS f CROSS JOIN messages AS m"
                       " INDEXED BY messages_source ON m.folder_id = f.id AND m.source_id = ?3"
                       " WHERE f.account_id = ?2 AND f.name = ?4 AND f.user_id = ?1"),
    [SQ_MSG_SET_SOURCE] = "UPDATE messages SET flags = ?2, source_gone = ?3, modseq = ?4 WHERE id = ?1",
    [SQ_FOLDER_MODSEQ] = "UPDATE folders SET highestmodseq = highestmodseq + 1 WHERE id = ?1 RETURNING highestmodseq",
    [SQ_MSG_CONTENT] = ("SELECT id, source_id FROM messages INDEXED BY messages_content"
                        " WHERE folder_id = ?1 AND sha256 = ?2 ORDER BY uid"),
    [SQ_MSG_REKEY] = "UPDATE messages SET source_id = ?2 WHERE id = ?1",
    [SQ_FOLDER_FIND] = "SELECT id FROM folders WHERE account_id = ?2 AND name = ?3 AND user_id = ?1",
    [SQ_FOLDER_RENAME] = "UPDATE folders SET name = ?2, source_gone = 0 WHERE id = ?1",
    [SQ_FOLDER_GONE] = "UPDATE folders SET source_gone = 1 WHERE id = ?1",
    [SQ_SOURCE_LIST] = ("SELECT source_id, flags, source_gone FROM messages"
                        " WHERE folder_id = ?1 AND source_id IS NOT NULL ORDER BY folder_id, uid"),
    [SQ_SEARCH_INS] = "INSERT INTO msg_search (rowid, terms) VALUES (?1, ?2)",
    [SQ_JOB_INS] = ("INSERT INTO jobs (key, user_id, notifier, event_type, state, attempts, next_at, fold, created,"
                    " updated, detail, event) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"),
    [SQ_JOB_UPD] = ("UPDATE jobs SET state = ?2, attempts = ?3, next_at = ?4, fold = ?5, updated = ?6, detail = ?7"
                    " WHERE id = ?1"),
    [SQ_JOB_BY_KEY] = "SELECT id FROM jobs WHERE key = ?1",
    [SQ_JOB_COUNT] = ("SELECT count(*) FROM jobs WHERE user_id = ?1 AND notifier = ?2 AND created >= ?3"
                      " AND state <> 'folded'"),
    [SQ_JOB_PRUNE] = "DELETE FROM jobs WHERE state IN ('delivered', 'folded') AND updated < ?1",
    [SQ_PREF_GET] = "SELECT value FROM user_prefs WHERE user_id = ?1 AND key = ?2",
    [SQ_PREF_PUT] = ("INSERT INTO user_prefs (user_id, key, value) VALUES (?1, ?2, ?3)"
                     " ON CONFLICT (user_id, key) DO UPDATE SET value = excluded.value"),
    [SQ_PREF_DEL] = "DELETE FROM user_prefs WHERE user_id = ?1 AND key = ?2",
    [SQ_QUEUE_INS] = "INSERT INTO index_queue (id, user_id) VALUES (?1, ?2)",
    [SQ_QUEUE_DEL] = "DELETE FROM index_queue WHERE id = ?1",
    [SQ_QUEUE_LIST] = ("SELECT " SQ_MSG_COLS ", m.blob FROM index_queue AS q CROSS JOIN messages AS m ON m.id = q.id"
                       " CROSS JOIN folders AS f ON f.id = m.folder_id WHERE q.id > ?1 ORDER BY q.id LIMIT ?2"),
    [SQ_QUEUE_COUNT] = "SELECT count(*) FROM index_queue WHERE user_id = ?1",
    [SQ_QUEUE_COUNT_ALL] = "SELECT count(*) FROM index_queue",
    [SQ_MSG_SET_ATT] = "UPDATE messages SET attachments = ?2 WHERE id = ?1",
};

/* msg_list: one statement per filter and per with_blob.  Each names its index
 * (INDEXED BY fails to prepare rather than silently scanning) and joins the
 * folder only for its name, after the message (CROSS JOIN keeps that order).
 * Parameters: ?1 user_id, ?2 after_id, ?3 limit (-1: none), ?4 id,
 * ?5 account_id, ?6 folder_id.  A unary + keeps a term from choosing an index. */
enum sq_msg_filter { SQ_MF_USER, SQ_MF_ACCOUNT, SQ_MF_FOLDER, SQ_MF_ID, SQ_N_MF };

static const char *const sq_msg_from[SQ_N_MF] = {
    [SQ_MF_USER] = "messages AS m INDEXED BY messages_user",
    [SQ_MF_ACCOUNT] = "messages AS m INDEXED BY messages_account",
    [SQ_MF_FOLDER] = "messages AS m INDEXED BY messages_folder",
    [SQ_MF_ID] = "messages AS m",
};

static const char *const sq_msg_where[SQ_N_MF] = {
    [SQ_MF_USER] = "m.user_id = ?1 AND m.id > ?2",
    [SQ_MF_ACCOUNT] = "m.account_id = ?5 AND +m.user_id = ?1 AND m.id > ?2",
    [SQ_MF_FOLDER] = "m.folder_id = ?6 AND +m.user_id = ?1 AND (?5 = 0 OR +m.account_id = ?5) AND m.id > ?2",
    [SQ_MF_ID] = ("m.id = ?4 AND +m.user_id = ?1 AND m.id > ?2 AND (?5 = 0 OR +m.account_id = ?5)"
                  " AND (?6 = 0 OR +m.folder_id = ?6)"),
};


/* ------------------------------------------------------------ state */

struct sq {
    struct mh_plugin_ctx *ctx;
    char *path;
    int sync_full;
    int64_t batch;
    int64_t cache_kib;

    sqlite3 *db;
    sqlite3_stmt *st[SQ_N_STMTS];
    sqlite3_stmt *msg_st[SQ_N_MF][2];
    int in_tx;      /* a write transaction is open */
    int64_t writes; /* write operations in the open transaction */
    int64_t puts;   /* messages inserted in the open transaction */
    int tx_lost;    /* a failure rolled back writes that were not flushed yet */
};

static const struct mh_option sq_options[] = {
    {"path", MH_OPT_STR, "mailhub.db", 0, "database file (relative to the data directory)", NULL, 0, 0},
    {"synchronous", MH_OPT_ENUM, "normal", 0,
     "normal: a commit survives a crash of the process (WAL); full: also a power loss (fsync per commit)",
     "normal|full", 0, 0},
    {"batch", MH_OPT_INT, "256", 0,
     "at most this many messages per transaction (the core's flush commits sooner)", NULL, 1, 100000},
    {"cache_size", MH_OPT_SIZE, "16MB", 0, "SQLite page cache of the connection", NULL, 1 << 20,
     (int64_t)1 << 40},
    MH_OPT_TABLE_END,
};

/* -------------------------------------------------------- utilities */

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

/* One integer from a query (for pragmas and checks); -1 on error. */
static int64_t sq_query_int(struct sq *s, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int sq_not_open(struct sq *s)
{
    if (s->db != NULL)
        return 0;
    mh_set_error(s->ctx, "%s: store is not open", s->path);
    return 1;
}

static void sq_bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v != NULL)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static void sq_bind_blob(sqlite3_stmt *st, int i, const void *v, size_t len)
{
    if (v != NULL)
        sqlite3_bind_blob64(st, i, v, (sqlite3_uint64)len, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static const char *sq_col_text(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

static uint64_t sq_col_u64(sqlite3_stmt *st, int i)
{
    sqlite3_int64 v = sqlite3_column_int64(st, i);
    return v > 0 ? (uint64_t)v : 0;
}

/*
 * The cached statement i, ready to bind; or, when it is in use by a caller
 * further up the stack (an op called from inside another op's callback), a
 * fresh copy in *tmp.  sq_put_stmt() gives it back.
 */
static sqlite3_stmt *sq_take(struct sq *s, sqlite3_stmt *cached, sqlite3_stmt **tmp)
{
    *tmp = NULL;
    if (!sqlite3_stmt_busy(cached))
        return cached;
    int src = sqlite3_prepare_v2(s->db, sqlite3_sql(cached), -1, tmp, NULL);
    if (src != SQLITE_OK) {
        sq_fail(s, src, "preparing a statement");
        return NULL;
    }
    return *tmp;
}

static void sq_give(sqlite3_stmt *st, sqlite3_stmt *tmp)
{
    if (tmp != NULL) {
        sqlite3_finalize(tmp);
    } else if (st != NULL) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
}

/* ------------------------------------------------- open and migrate */

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
    uint64_t cache = mh_cfg_size(cfg, "cache_size");
    s->cache_kib = cache < (1u << 20)            ? 1024
                   : cache > ((uint64_t)1 << 40) ? (int64_t)1 << 30
                                                 : (int64_t)(cache >> 10);
    s->path = sq_resolve(ctx, mh_cfg_str(cfg, "path"));
    if (s->path == NULL) {
        mh_free(s);
        return MH_ENOMEM;
    }
    *state_out = s;
    return MH_OK;
}

/* Migration 2 replaces schema 1 only if it holds nothing. */
static int sq_check_v1_empty(struct sq *s)
{
    int64_t rows = sq_query_int(s, "SELECT (SELECT count(*) FROM (SELECT 1 FROM messages LIMIT 1))"
                                   " + (SELECT count(*) FROM (SELECT 1 FROM quota LIMIT 1))"
                                   " + (SELECT count(*) FROM (SELECT 1 FROM quota_events LIMIT 1))");
    if (rows < 0)
        return sq_fail(s, sqlite3_errcode(s->db), "inspecting schema version 1");
    if (rows > 0) {
        mh_set_error(s->ctx,
                     "%s: holds messages or quotas in the schema of an earlier pre-release (version 1), "
                     "which this version cannot migrate; move the file away (or delete it) to start afresh",
                     s->path);
        return MH_ERR;
    }
    return MH_OK;
}

static int sq_migrate(struct sq *s)
{
    int64_t version = sq_query_int(s, "PRAGMA user_version");
    if (version < 0)
        return sq_fail(s, sqlite3_errcode(s->db), "reading the schema version");
    if (version > SQ_SCHEMA_VERSION) {
        mh_set_error(s->ctx, "%s: schema version %lld is newer than this plugin's (%d); use a newer mailhub",
                     s->path, (long long)version, SQ_SCHEMA_VERSION);
        return MH_ERR;
    }
    for (int v = (int)version; v < SQ_SCHEMA_VERSION; v++) {
        char bump[64];
        snprintf(bump, sizeof bump, "PRAGMA user_version = %d", v + 1);
        int rc = sq_exec(s, "BEGIN IMMEDIATE");
        if (rc != MH_OK)
            return rc;
        if (sq_migrations[v].check != NULL)
            rc = sq_migrations[v].check(s);
        if (rc == MH_OK)
            rc = sq_exec(s, sq_migrations[v].sql);
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
    for (int i = 0; i < SQ_N_MF; i++)
        for (int b = 0; b < 2; b++) {
            sqlite3_finalize(s->msg_st[i][b]);
            s->msg_st[i][b] = NULL;
        }
    if (s->db != NULL)
        sqlite3_close(s->db); /* rolls back an open transaction */
    s->db = NULL;
    s->in_tx = 0;
    s->writes = 0;
    s->puts = 0;
}

static int sq_prepare(struct sq *s, const char *sql, sqlite3_stmt **out)
{
    int src = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
    return src == SQLITE_OK ? MH_OK : sq_fail(s, src, "preparing statements");
}

static int sq_prepare_all(struct sq *s)
{
    int rc = MH_OK;
    for (int i = 0; i < SQ_N_STMTS && rc == MH_OK; i++)
        rc = sq_prepare(s, sq_stmt_sql[i], &s->st[i]);
    for (int i = 0; i < SQ_N_MF && rc == MH_OK; i++)
        for (int b = 0; b < 2 && rc == MH_OK; b++) {
            char sql[1024];
            int n =
                snprintf(sql, sizeof sql,
                         "SELECT " SQ_MSG_COLS ", %s FROM %s CROSS JOIN folders AS f ON f.id = m.folder_id"
                         " WHERE %s ORDER BY m.id LIMIT ?3",
                         b ? "m.blob" : "NULL", sq_msg_from[i], sq_msg_where[i]);
            if (n < 0 || (size_t)n >= sizeof sql) {
                mh_set_error(s->ctx, "%s: internal error: a query is too long", s->path);
                return MH_ERR;
            }
            rc = sq_prepare(s, sql, &s->msg_st[i][b]);
        }
    return rc;
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
    /* A file made by someone else (a restore, a copy) may be readable by others. */
    struct stat st_file;
    if (fstat(fd, &st_file) == 0 && (st_file.st_mode & 077) != 0) {
        if (fchmod(fd, st_file.st_mode & 0700) == 0)
            mh_log_warn(s->ctx, "%s was readable by others: now mode %o", s->path,
                        (unsigned)(st_file.st_mode & 0700));
        else
            mh_log_warn(s->ctx, "%s is readable by others (mode %o) and cannot be changed: %s", s->path,
                        (unsigned)(st_file.st_mode & 0777), strerror(errno));
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

    /* The page size only takes on a new (empty) file, so before WAL mode writes the header. */
    char pragma[96];
    snprintf(pragma, sizeof pragma, "PRAGMA page_size = %d", SQ_PAGE_SIZE);
    int rc = sq_exec(s, pragma);
    if (rc == MH_OK) {
        sqlite3_stmt *st = NULL;
        src = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
        if (src == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
            const char *mode = (const char *)sqlite3_column_text(st, 0);
            if (mode == NULL || strcmp(mode, "wal") != 0) {
                mh_set_error(s->ctx, "%s: cannot switch to WAL mode (got %s)", s->path, mode ? mode : "?");
                rc = MH_ERR;
            }
        } else {
            rc = sq_fail(s, sqlite3_errcode(s->db), "setting WAL mode");
        }
        sqlite3_finalize(st);
    }
    if (rc == MH_OK)
        rc = sq_exec(s, s->sync_full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
    if (rc == MH_OK) {
        snprintf(pragma, sizeof pragma, "PRAGMA cache_size = -%lld", (long long)s->cache_kib);
        rc = sq_exec(s, pragma);
    }
    /* Keep the WAL from staying large after a big import has been checkpointed. */
    if (rc == MH_OK)
        rc = sq_exec(s, "PRAGMA journal_size_limit = 67108864");
    /* Zero what a delete frees where that costs no extra I/O (headers on
     * b-tree pages); bodies are sealed anyway.  Builds differ in the default. */
    if (rc == MH_OK)
        rc = sq_exec(s, "PRAGMA secure_delete = FAST");
    /* Statement journals (a multi-row statement inside the batch transaction
     * keeps one to undo itself) in memory, not in a temporary file. */
    if (rc == MH_OK)
        rc = sq_exec(s, "PRAGMA temp_store = MEMORY");
    if (rc == MH_OK)
        rc = sq_exec(s, "PRAGMA foreign_keys = ON");
    if (rc == MH_OK)
        rc = sq_migrate(s);
    if (rc == MH_OK)
        rc = sq_prepare_all(s);
    if (rc != MH_OK) {
        sq_close_db(s);
        return rc;
    }
    mh_log_debug(s->ctx, "opened %s (schema %d, synchronous=%s, batch %lld, cache %lld KiB)", s->path,
                 SQ_SCHEMA_VERSION, s->sync_full ? "full" : "normal", (long long)s->batch,
                 (long long)s->cache_kib);
    return MH_OK;
}

/* ------------------------------------------------------ transactions */

static int sq_commit(struct sq *s)
{
    if (!s->in_tx)
        return MH_OK;
    int rc = sq_exec(s, "COMMIT");
    if (rc != MH_OK) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        if (s->writes > 0)
            s->tx_lost = 1;
    }
    s->in_tx = 0;
    s->writes = 0;
    s->puts = 0;
    return rc;
}

static int sq_flush(void *state)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    int rc = sq_commit(s);
    if (rc == MH_OK && s->tx_lost) {
        /* Writes done since the last flush were rolled back. */
        mh_set_error(s->ctx, "%s: a failed write rolled back what was written since the last flush", s->path);
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
    if (sq_commit(s) != MH_OK || s->tx_lost)
        mh_log_error(s->ctx, "%s: writes since the last flush were lost", s->path);
    s->tx_lost = 0;
    sq_close_db(s);
}

/* Before a write: open the batch transaction if none is. */
static int sq_begin(struct sq *s)
{
    if (s->in_tx)
        return MH_OK;
    int rc = sq_exec(s, "BEGIN IMMEDIATE");
    if (rc == MH_OK) {
        s->in_tx = 1;
        s->writes = 0;
        s->puts = 0;
    }
    return rc;
}

/* After a failed statement inside the batch: if SQLite rolled the whole
 * transaction back (full disk, I/O error), earlier unflushed writes are gone. */
static void sq_after_error(struct sq *s)
{
    if (s->in_tx && sqlite3_get_autocommit(s->db)) {
        s->in_tx = 0;
        if (s->writes > 0)
            s->tx_lost = 1;
        s->writes = 0;
        s->puts = 0;
    }
}

/* Roll back the whole batch: after a failure that would leave it inconsistent.
 * The next flush() reports the loss. */
static void sq_abort(struct sq *s)
{
    if (s->in_tx && !sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    s->in_tx = 0;
    s->tx_lost = 1;
    s->writes = 0;
    s->puts = 0;
}

/* Step a write statement once (it must not return rows), then reset it. */
static int sq_step_write(struct sq *s, sqlite3_stmt *st, const char *what)
{
    int src = sqlite3_step(st);
    int rc = src == SQLITE_DONE ? MH_OK : sq_fail(s, src, what);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != MH_OK)
        sq_after_error(s);
    return rc;
}

static int sq_is_unique_violation(struct sq *s)
{
    int e = sqlite3_extended_errcode(s->db);
    return e == SQLITE_CONSTRAINT_UNIQUE || e == SQLITE_CONSTRAINT_PRIMARYKEY;
}

/* 1 if the single-row lookup st (bound) finds a row, 0 if not, or an error; resets st. */
static int sq_exists(struct sq *s, sqlite3_stmt *st, const char *what)
{
    int src = sqlite3_step(st);
    int rc = src == SQLITE_ROW ? 1 : src == SQLITE_DONE ? 0 : sq_fail(s, src, what);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static int sq_user_exists(struct sq *s, int64_t user_id)
{
    sqlite3_stmt *st = s->st[SQ_USER_EXISTS];
    sqlite3_bind_int64(st, 1, user_id);
    return sq_exists(s, st, "looking up a user");
}

static int64_t sq_now(void)
{
    return (int64_t)time(NULL);
}

/* ------------------------------------------------------------ users */

static void sq_user_row(sqlite3_stmt *st, struct mh_user_rec *u)
{
    *u = (struct mh_user_rec){
        .struct_size = sizeof *u,
        .id = sqlite3_column_int64(st, 0),
        .name = sq_col_text(st, 1),
        .password_hash = sq_col_text(st, 2),
        .phone = sq_col_text(st, 3),
        .email = sq_col_text(st, 4),
        .admin = sqlite3_column_int(st, 5) != 0,
        .data_key = sqlite3_column_blob(st, 6),
        .created = sqlite3_column_int64(st, 7),
    };
    u->data_key_len = (size_t)sqlite3_column_bytes(st, 6);
    if (u->data_key_len == 0)
        u->data_key = NULL;
}

/* Run a user query (bound by bind_id/bind_name), calling cb for each row; returns rows seen or an error. */
static int sq_users_each(struct sq *s, sqlite3_stmt *cached, int64_t id, const char *name, int one,
                         mh_user_each_cb cb, void *arg)
{
    sqlite3_stmt *tmp, *st = sq_take(s, cached, &tmp);
    if (st == NULL)
        return MH_ERR;
    if (id > 0)
        sqlite3_bind_int64(st, 1, id);
    else if (name != NULL)
        sq_bind_text(st, 1, name);
    int rc = 0, src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        struct mh_user_rec u;
        sq_user_row(st, &u);
        rc++;
        if ((cb != NULL && cb(arg, &u) != 0) || one)
            break;
    }
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        rc = sq_fail(s, src, "reading users");
    sq_give(st, tmp);
    return rc;
}

static int sq_user_put(void *state, struct mh_user_rec *u)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    if (u == NULL || u->name == NULL || u->id < 0 || (u->data_key == NULL && u->data_key_len > 0)) {
        mh_set_error(s->ctx, "user_put: a name is required");
        return MH_EINVAL;
    }
    int rc = sq_begin(s);
    if (rc != MH_OK)
        return rc;
    int insert = u->id == 0;
    int64_t created = u->created;
    if (insert && created == 0)
        created = sq_now();
    sqlite3_stmt *st = s->st[insert ? SQ_USER_INS : SQ_USER_UPD];
    sqlite3_bind_int64(st, 1, u->id);
    sq_bind_text(st, 2, u->name);
    sq_bind_text(st, 3, u->password_hash);
    sq_bind_text(st, 4, u->phone);
    sq_bind_text(st, 5, u->email);
    sqlite3_bind_int(st, 6, u->admin != 0);
    sq_bind_blob(st, 7, u->data_key, u->data_key_len);
    sqlite3_bind_int64(st, 8, created);
    int src = sqlite3_step(st);
    if (src == SQLITE_DONE) {
        if (insert) {
            u->id = sqlite3_last_insert_rowid(s->db);
            u->created = created;
        } else if (sqlite3_changes(s->db) == 0) {
            mh_set_error(s->ctx, "user %lld does not exist", (long long)u->id);
            rc = MH_ENOTFOUND;
        }
    } else if ((src & 0xff) == SQLITE_CONSTRAINT && sq_is_unique_violation(s)) {
        mh_set_error(s->ctx, "user name \"%s\" is taken", u->name);
        rc = MH_EEXIST;
    } else {
        rc = sq_fail(s, src, "writing a user");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == MH_OK)
        s->writes++;
    else
        sq_after_error(s);
    return rc;
}

static int sq_user_get(void *state, int64_t id, const char *name, mh_user_each_cb cb, void *arg)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    if (id <= 0 && name == NULL)
        return 0;
    return sq_users_each(s, s->st[id > 0 ? SQ_USER_BY_ID : SQ_USER_BY_NAME], id, name, 1, cb, arg);
}

static int sq_user_list(void *state, mh_user_each_cb cb, void *arg)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    int rc = sq_users_each(s, s->st[SQ_USER_LIST], 0, NULL, 0, cb, arg);
    return rc < 0 ? rc : MH_OK;
}

/* Delete one row by the bound statement st; MH_ENOTFOUND if there was none. */
static int sq_delete(struct sq *s, sqlite3_stmt *st, const char *what)
{
    int src = sqlite3_step(st);
    int rc = MH_OK;
    if (src != SQLITE_DONE)
        rc = sq_fail(s, src, what);
    else if (sqlite3_changes(s->db) == 0)
        rc = MH_ENOTFOUND;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == MH_OK)
        s->writes++;
    else if (rc != MH_ENOTFOUND)
        sq_after_error(s);
    return rc;
}

static int sq_user_delete(void *state, int64_t id)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    int rc = sq_begin(s);
    if (rc != MH_OK)
        return rc;
    /* ON DELETE CASCADE takes tokens, accounts (their folders and messages,
     * whose triggers keep the counters), usage, quota and its history. */
    sqlite3_stmt *st = s->st[SQ_USER_DEL];
    sqlite3_bind_int64(st, 1, id);
    rc = sq_delete(s, st, "deleting a user");
    if (rc == MH_ENOTFOUND)
        mh_set_error(s->ctx, "user %lld does not exist", (long long)id);
    return rc;
}

/* ----------------------------------------------------------- tokens */

static int sq_token_put(void *state, int64_t user_id, const unsigned char hash[32], const char *label,
                        int64_t expires)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    if (hash == NULL) {
        mh_set_error(s->ctx, "token_put: no hash");
        return MH_EINVAL;
    }
    int rc = sq_begin(s);
    if (rc != MH_OK)
        return rc;
    rc = sq_user_exists(s, user_id);
    if (rc == 0) {
        mh_set_error(s->ctx, "user %lld does not exist", (long long)user_id);
        return MH_ENOTFOUND;
    }
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = s->st[SQ_TOKEN_INS];
    sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, user_id);
    sq_bind_text(st, 3, label);
    sqlite3_bind_int64(st, 4, sq_now());
    sqlite3_bind_int64(st, 5, expires > 0 ? expires : 0);
    int src = sqlite3_step(st);
    rc = MH_OK;
    if (src == SQLITE_DONE) {
        s->writes++;
    } else if ((src & 0xff) == SQLITE_CONSTRAINT && sq_is_unique_violation(s)) {
        mh_set_error(s->ctx, "token_put: that token is already stored");
        rc = MH_EEXIST;
    } else {
        rc = sq_fail(s, src, "storing a token");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != MH_OK)
        sq_after_error(s);
    return rc;
}

static int sq_token_get(void *state, const unsigned char hash[32], int64_t now, int64_t *user_id_out)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    if (hash == NULL)
        return 0;
    sqlite3_stmt *st = s->st[SQ_TOKEN_GET];
    sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    int src = sqlite3_step(st), rc = 0;
    if (src == SQLITE_ROW) {
        if (user_id_out != NULL)
            *user_id_out = sqlite3_column_int64(st, 0);
        rc = 1;
    } else if (src != SQLITE_DONE) {
        rc = sq_fail(s, src, "looking up a token");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static int sq_token_delete(void *state, const unsigned char hash[32])
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    if (hash == NULL)
        return MH_ENOTFOUND;
    int rc = sq_begin(s);
    if (rc != MH_OK)
        return rc;
    sqlite3_stmt *st = s->st[SQ_TOKEN_DEL];
    sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC);
    return sq_delete(s, st, "deleting a token");
}

/* --------------------------------------------------------- accounts */

static void sq_account_row(sqlite3_stmt *st, struct mh_account_rec *a)
{
    *a = (struct mh_account_rec){
        .struct_size = sizeof *a,
        .id = sqlite3_column_int64(st, 0),
        .user_id = sqlite3_column_int64(st, 1),
        .name = sq_col_text(st, 2),
        .provider = sq_col_text(st, 3),
        .settings = sq_col_text(st, 4),
        .secret = sqlite3_column_blob(st, 5),
        .paused = sqlite3_column_int(st, 6) != 0,
        .status = sq_col_text(st, 7),
        .origin = sq_col_text(st, 8),
        .created = sqlite3_column_int64(st, 9),
    };
    a->secret_len = (size_t)sqlite3_column_bytes(st, 5);
    if (a->secret_len == 0)
        a->secret = NULL;
}

static int sq_accounts_each(struct sq *s, sqlite3_stmt *cached, int64_t p1, const char *name, int64_t p2,
                            int one, mh_account_each_cb cb, void *arg)
{
    sqlite3_stmt *tmp, *st = sq_take(s, cached, &tmp);
    if (st == NULL)
        return MH_ERR;
    if (name != NULL)
        sq_bind_text(st, 1, name);
    else
        sqlite3_bind_int64(st, 1, p1);
    sqlite3_bind_int64(st, 2, p2);
    int rc = 0, src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        struct mh_account_rec a;
        sq_account_row(st, &a);
        rc++;
        if ((cb != NULL && cb(arg, &a) != 0) || one)
            break;
    }
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        rc = sq_fail(s, src, "reading accounts");
    sq_give(st, tmp);
    return rc;
}

static int sq_account_put(void *state, struct mh_account_rec *a)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    if (a == NULL || a->name == NULL || a->provider == NULL || a->id < 0 ||
        (a->secret == NULL && a->secret_len > 0)) {
        mh_set_error(s->ctx, "account_put: a name and a provider are required");
        return MH_EINVAL;
    }
    int rc = sq_begin(s);
    if (rc != MH_OK)
        return rc;
    int insert = a->id == 0;
    if (insert) {
        rc = sq_user_exists(s, a->user_id);
        if (rc == 0) {
            mh_set_error(s->ctx, "user %lld does not exist", (long long)a->user_id);
            return MH_ENOTFOUND;
        }
        if (rc < 0)
            return rc;
        rc = MH_OK;
    }
    int64_t created = a->created;
    if (insert && created == 0)
        created = sq_now();
    sqlite3_stmt *st = s->st[insert ? SQ_ACC_INS : SQ_ACC_UPD];
    sqlite3_bind_int64(st, 1, a->id);
    sqlite3_bind_int64(st, 2, a->user_id);
    sq_bind_text(st, 3, a->name);
    sq_bind_text(st, 4, a->provider);
    sq_bind_text(st, 5, a->settings);
    sq_bind_blob(st, 6, a->secret, a->secret_len);
    sqlite3_bind_int(st, 7, a->paused != 0);
    sq_bind_text(st, 8, a->status);
    sq_bind_text(st, 9, a->origin);
    sqlite3_bind_int64(st, 10, created);
    int src = sqlite3_step(st);
    if (src == SQLITE_DONE) {
        if (insert) {
            a->id = sqlite3_last_insert_rowid(s->db);
            a->created = created;
        } else if (sqlite3_changes(s->db) == 0) {
            mh_set_error(s->ctx, "account %lld of user %lld does not exist", (long long)a->id,
                         (long long)a->user_id);
            rc = MH_ENOTFOUND;
        }
    } else if ((src & 0xff) == SQLITE_CONSTRAINT && sq_is_unique_violation(s)) {
        mh_set_error(s->ctx, "the user already has an account named \"%s\"", a->name);
        rc = MH_EEXIST;
    } else {
        rc = sq_fail(s, src, "writing an account");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == MH_OK)
        s->writes++;
    else
        sq_after_error(s);
    return rc;
}

static int sq_account_get(void *state, int64_t user_id, int64_t id, const char *name, mh_account_each_cb cb,
                          void *arg)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    if (user_id < 0 || (id <= 0 && name == NULL))
        return 0;
    if (id > 0)
        return sq_accounts_each(s, s->st[SQ_ACC_BY_ID], id, NULL, user_id, 1, cb, arg);
    return sq_accounts_each(s, s->st[user_id > 0 ? SQ_ACC_BY_NAME : SQ_ACC_BY_NAME_ANY], 0, name, user_id, 1,
                            cb, arg);
}

static int sq_account_list(void *state, int64_t user_id, mh_account_each_cb cb, void *arg)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    if (user_id < 0)
        return MH_OK;
    int rc =
        sq_accounts_each(s, s->st[user_id > 0 ? SQ_ACC_LIST : SQ_ACC_LIST_ALL], user_id, NULL, 0, 0, cb, arg);
    return rc < 0 ? rc : MH_OK;
}

static int sq_account_delete(void *state, int64_t user_id, int64_t id)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    int rc = sq_begin(s);
    if (rc != MH_OK)
        return rc;
    /* Folders and messages go by ON DELETE CASCADE; the triggers adjust usage. */
    sqlite3_stmt *st = s->st[SQ_ACC_DEL];
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, user_id);
    rc = sq_delete(s, st, "deleting an account");
    if (rc == MH_ENOTFOUND)
        mh_set_error(s->ctx, "account %lld of user %lld does not exist", (long long)id, (long long)user_id);
    return rc;
}

/* ---------------------------------------------------------- folders */

static int sq_folder_list(void *state, int64_t user_id, int64_t account_id, mh_folder_each_cb cb, void *arg)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    sqlite3_stmt *tmp, *st = sq_take(s, s->st[account_id > 0 ? SQ_FOLDER_LIST_ACC : SQ_FOLDER_LIST], &tmp);
    if (st == NULL)
        return MH_ERR;
    sqlite3_bind_int64(st, 1, user_id);
    sqlite3_bind_int64(st, 2, account_id);
    int rc = MH_OK, src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        struct mh_folder_rec f = {
            .struct_size = sizeof f,
            .id = sqlite3_column_int64(st, 0),
            .user_id = sqlite3_column_int64(st, 1),
            .account_id = sqlite3_column_int64(st, 2),
            .name = sq_col_text(st, 3),
            .uidvalidity = (uint32_t)sq_col_u64(st, 4),
            .uidnext = (uint32_t)sq_col_u64(st, 5),
            .highestmodseq = sq_col_u64(st, 6),
            .messages = sq_col_u64(st, 7),
            .bytes = sq_col_u64(st, 8),
            .source_gone = sqlite3_column_int(st, 9) != 0,
        };
        if (cb != NULL && cb(arg, &f) != 0)
            break;
    }
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        rc = sq_fail(s, src, "reading folders");
    sq_give(st, tmp);
    return rc;
}

/* --------------------------------------------------------- messages */

/* The stored message id for (user, account, source_id) in `folder` (NULL: in any folder of the account):
 * >0, 0 if none, or an error. */
static int64_t sq_find_source(struct sq *s, int64_t user_id, int64_t account_id, const char *folder,
                              const char *source_id)
{
    sqlite3_stmt *st = s->st[folder ? SQ_MSG_FIND_F : SQ_MSG_FIND];
    sqlite3_bind_int64(st, 1, user_id);
    sqlite3_bind_int64(st, 2, account_id);
    sq_bind_text(st, 3, source_id);
    if (folder)
        sq_bind_text(st, 4, folder);
    int src = sqlite3_step(st);
    int64_t id = src == SQLITE_ROW    ? sqlite3_column_int64(st, 0)
                 : src == SQLITE_DONE ? 0
                                      : sq_fail(s, src, "looking up a message");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return id;
}

/* Create folder `name` of the account (checked to be the user's) with a fresh UIDVALIDITY. */
static int sq_folder_create(struct sq *s, int64_t user_id, int64_t account_id, const char *name)
{
    sqlite3_stmt *st = s->st[SQ_ACC_OF_USER];
    sqlite3_bind_int64(st, 1, account_id);
    sqlite3_bind_int64(st, 2, user_id);
    int rc = sq_exists(s, st, "looking up an account");
    if (rc == 0) {
        mh_set_error(s->ctx, "put_message: user %lld has no account %lld", (long long)user_id,
                     (long long)account_id);
        return MH_ENOTFOUND;
    }
    if (rc < 0)
        return rc;

    st = s->st[SQ_UIDVALIDITY];
    sqlite3_bind_int64(st, 1, sq_now());
    int src = sqlite3_step(st);
    int64_t uv = src == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    rc = src == SQLITE_ROW ? MH_OK : sq_fail(s, src, "assigning a UIDVALIDITY");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == MH_OK && (uv <= 0 || uv > (int64_t)UINT32_MAX)) {
        mh_set_error(s->ctx, "%s: UIDVALIDITY values are exhausted", s->path);
        rc = MH_ERR;
    }
    if (rc != MH_OK) {
        sq_after_error(s);
        return rc;
    }

    st = s->st[SQ_FOLDER_INS];
    sqlite3_bind_int64(st, 1, user_id);
    sqlite3_bind_int64(st, 2, account_id);
    sq_bind_text(st, 3, name);
    sqlite3_bind_int64(st, 4, uv);
    return sq_step_write(s, st, "creating a folder");
}

/* Assign the folder's next UID and modseq and count the message in the
 * folder (creating the folder on first use). */
static int sq_folder_next(struct sq *s, const struct mh_msg_rec *m, int64_t *folder_id, int64_t *uid,
                          int64_t *modseq)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        sqlite3_stmt *st = s->st[SQ_FOLDER_NEXT];
        sqlite3_bind_int64(st, 1, m->account_id);
        sq_bind_text(st, 2, m->folder);
        sqlite3_bind_int64(st, 3, m->user_id);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)m->size);
        int src = sqlite3_step(st), rc = MH_OK, found = 0;
        if (src == SQLITE_ROW) {
            found = 1;
            *folder_id = sqlite3_column_int64(st, 0);
            *uid = sqlite3_column_int64(st, 1);
            *modseq = sqlite3_column_int64(st, 2);
        } else if (src != SQLITE_DONE) {
            rc = sq_fail(s, src, "assigning a UID");
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (rc != MH_OK) {
            sq_after_error(s);
            return rc;
        }
        if (found) {
            if (*uid <= 0 || *uid > (int64_t)UINT32_MAX) {
                sq_abort(s); /* the folder counted a message it will not get */
                mh_set_error(s->ctx, "%s: folder %lld has no UIDs left", s->path, (long long)*folder_id);
                return MH_ERR;
            }
            return MH_OK;
        }
        if (attempt == 0 && (rc = sq_folder_create(s, m->user_id, m->account_id, m->folder)) != MH_OK)
            return rc;
    }
    mh_set_error(s->ctx, "%s: a folder vanished while it was created", s->path);
    return MH_ERR;
}

static int sq_put_message(void *state, const struct mh_msg_rec *m, struct mh_message_ref *ref_out)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    if (m == NULL || ref_out == NULL || m->user_id <= 0 || m->account_id <= 0 || m->folder == NULL ||
        m->blob == NULL || m->size > (uint64_t)INT64_MAX) {
        mh_set_error(s->ctx, "put_message: user_id, account_id, folder and blob are required");
        return MH_EINVAL;
    }
    /* Refused up front, so that the insert below fails only if the database does. */
    if (m->blob_len > (size_t)sqlite3_limit(s->db, SQLITE_LIMIT_LENGTH, -1) - 1024) {
        mh_set_error(s->ctx, "put_message: a blob of %zu bytes is larger than SQLite stores", m->blob_len);
        return MH_EINVAL;
    }
    int rc = sq_begin(s);
    if (rc != MH_OK)
        return rc;

    /* Exactly once: an identity already stored (committed or in this batch) writes nothing. */
    if (m->source_id != NULL) {
        int64_t old = sq_find_source(s, m->user_id, m->account_id, m->folder, m->source_id);
        if (old < 0) {
            sq_after_error(s);
            return (int)old;
        }
        if (old > 0) {
            ref_out->id = old;
            ref_out->duplicate = 1;
            return MH_OK;
        }
    }

    int64_t folder_id = 0, uid = 0, modseq = 0;
    rc = sq_folder_next(s, m, &folder_id, &uid, &modseq);
    if (rc != MH_OK)
        return rc;

    sqlite3_stmt *st = s->st[SQ_MSG_INS];
    sqlite3_bind_int64(st, 1, m->user_id);
    sqlite3_bind_int64(st, 2, m->account_id);
    sqlite3_bind_int64(st, 3, folder_id);
    sqlite3_bind_int64(st, 4, uid);
    sqlite3_bind_int64(st, 5, modseq);
    sq_bind_text(st, 6, m->source_id);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)m->size);
    sqlite3_bind_blob(st, 8, m->sha256, 32, SQLITE_STATIC);
    sq_bind_text(st, 9, m->flags);
    sqlite3_bind_int64(st, 10, m->internal_date);
    sqlite3_bind_int64(st, 11, m->date);
    sq_bind_text(st, 12, m->from);
    sq_bind_text(st, 13, m->to);
    sq_bind_text(st, 14, m->cc);
    sq_bind_text(st, 15, m->subject);
    sq_bind_text(st, 16, m->message_id);
    sqlite3_bind_int64(st, 17, sq_now());
    /* No copy here: SQLite reads the caller's bytes while it builds the row. */
    sq_bind_blob(st, 18, m->blob, m->blob_len);
    int v12 = m->struct_size >= offsetof(struct mh_msg_rec, source_gone) + sizeof m->source_gone;
    sq_bind_text(st, 19, v12 ? m->attachments : NULL);
    rc = sq_step_write(s, st, "storing a message");
    int64_t id = sqlite3_last_insert_rowid(s->db);
    if (rc == MH_OK && v12 && m->search_terms != NULL && m->search_terms[0] != '\0') {
        st = s->st[SQ_SEARCH_INS];
        sqlite3_bind_int64(st, 1, id);
        sq_bind_text(st, 2, m->search_terms);
        rc = sq_step_write(s, st, "indexing a message");
    }
    if (rc == MH_OK && m->struct_size >= offsetof(struct mh_msg_rec, index_pending) + sizeof m->index_pending &&
        m->index_pending) {
        st = s->st[SQ_QUEUE_INS];
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, m->user_id);
        rc = sq_step_write(s, st, "queueing a message for analysis");
    }
    if (rc == MH_OK) {
        st = s->st[SQ_USAGE_ADD];
        sqlite3_bind_int64(st, 1, m->user_id);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)m->size);
        rc = sq_step_write(s, st, "counting usage");
    }
    if (rc != MH_OK) {
        /* The folder already counts this message: nothing of the batch can stay. */
        sq_abort(s);
        return rc;
    }

    ref_out->id = id;
    ref_out->duplicate = 0;
    s->writes++;
    if (++s->puts >= s->batch) {
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

static int sq_has_source_id(void *state, int64_t user_id, int64_t account_id, const char *source_id)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    if (source_id == NULL)
        return 0;
    int64_t id = sq_find_source(s, user_id, account_id, NULL, source_id);
    return id < 0 ? (int)id : id > 0;
}

static int sq_has_source(void *state, int64_t user_id, int64_t account_id, const char *folder, const char *source_id)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    if (source_id == NULL || folder == NULL)
        return 0;
    int64_t id = sq_find_source(s, user_id, account_id, folder, source_id);
    return id < 0 ? (int)id : id > 0;
}

/* An FTS5 query for blind search terms: each a quoted string of [A-Za-z0-9], all required. */
static int sq_match_expr(const char *terms, char **out)
{
    sqlite3_str *b = sqlite3_str_new(NULL);
    int n = 0;
    for (const char *p = terms; *p;) {
        while (*p == ' ')
            p++;
        const char *t = p;
        while (*p && *p != ' ')
            p++;
        if (p == t)
            continue;
        for (const char *c = t; c < p; c++)
            if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9'))) {
                sqlite3_free(sqlite3_str_finish(b));
                return MH_EINVAL;
            }
        sqlite3_str_appendf(b, "%s\"%.*s\"", n++ ? " AND " : "", (int)(p - t), t);
    }
    *out = sqlite3_str_finish(b);
    if (n == 0) {
        sqlite3_free(*out);
        *out = NULL;
    }
    return *out != NULL || n == 0 ? MH_OK : MH_ENOMEM;
}

/* msg_list with a search or newest first: prepared per call (?7 the FTS5 match). */
static int sq_msg_dynamic(struct sq *s, enum sq_msg_filter f, int with_blob, const char *search, int desc,
                          sqlite3_stmt **st_out, char **match_out)
{
    *st_out = NULL;
    *match_out = NULL;
    if (search != NULL) {
        int rc = sq_match_expr(search, match_out);
        if (rc == MH_EINVAL)
            mh_set_error(s->ctx, "msg_list: a search term is not an opaque term");
        if (rc != MH_OK || *match_out == NULL)
            return rc;
    }
    char where[512];
    snprintf(where, sizeof where, "%s", sq_msg_where[f]);
    if (desc) {
        char *gt = strstr(where, "m.id > ?2");
        if (gt != NULL)
            gt[5] = '<';
    }
    char *sql = sqlite3_mprintf(
        "SELECT " SQ_MSG_COLS ", %s FROM %s%s CROSS JOIN folders AS f ON f.id = m.folder_id"
        " WHERE %s%s ORDER BY m.id %s LIMIT ?3",
        with_blob ? "m.blob" : "NULL",
        search ? "msg_search AS x CROSS JOIN " : "",
        search ? "messages AS m" : sq_msg_from[f],
        search ? "x.msg_search MATCH ?7 AND m.id = x.rowid AND " : "", where, desc ? "DESC" : "");
    if (sql == NULL)
        return MH_ENOMEM;
    int src = sqlite3_prepare_v2(s->db, sql, -1, st_out, NULL);
    sqlite3_free(sql);
    if (src != SQLITE_OK) {
        sqlite3_free(*match_out);
        *match_out = NULL;
        return sq_fail(s, src, "preparing a search");
    }
    return MH_OK;
}

/* One row of SQ_MSG_COLS (and the blob in column 21 when with_blob) as a record, borrowed from st. */
static void sq_msg_row(sqlite3_stmt *st, int with_blob, struct mh_msg_rec *m)
{
    *m = (struct mh_msg_rec){
        .struct_size = sizeof *m,
        .id = sqlite3_column_int64(st, 0),
        .user_id = sqlite3_column_int64(st, 1),
        .account_id = sqlite3_column_int64(st, 2),
        .folder_id = sqlite3_column_int64(st, 3),
        .folder = sq_col_text(st, 4),
        .uid = (uint32_t)sq_col_u64(st, 5),
        .modseq = sq_col_u64(st, 6),
        .source_id = sq_col_text(st, 7),
        .size = sq_col_u64(st, 8),
        .flags = sq_col_text(st, 10),
        .internal_date = sqlite3_column_int64(st, 11),
        .date = sqlite3_column_int64(st, 12),
        .from = sq_col_text(st, 13),
        .to = sq_col_text(st, 14),
        .cc = sq_col_text(st, 15),
        .subject = sq_col_text(st, 16),
        .message_id = sq_col_text(st, 17),
        .stored = sqlite3_column_int64(st, 18),
        .attachments = sq_col_text(st, 19),
        .source_gone = sqlite3_column_int(st, 20) != 0,
    };
    const void *sha = sqlite3_column_blob(st, 9);
    if (sha != NULL && sqlite3_column_bytes(st, 9) == 32)
        memcpy(m->sha256, sha, 32);
    if (with_blob) {
        m->blob = sqlite3_column_blob(st, 21);
        m->blob_len = (size_t)sqlite3_column_bytes(st, 21);
        if (m->blob == NULL)
            m->blob = ""; /* an empty blob is still a blob */
    }
}

static int sq_msg_list(void *state, const struct mh_msg_query *q, mh_msg_each_cb cb, void *arg)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    if (q == NULL || q->user_id <= 0) {
        mh_set_error(s->ctx, "msg_list: a user id is required");
        return MH_EINVAL;
    }
    enum sq_msg_filter f = q->id > 0           ? SQ_MF_ID
                           : q->folder_id > 0  ? SQ_MF_FOLDER
                           : q->account_id > 0 ? SQ_MF_ACCOUNT
                                               : SQ_MF_USER;
    int with_blob = q->with_blob != 0;
    int v12 = q->struct_size >= offsetof(struct mh_msg_query, descending) + sizeof q->descending;
    const char *search = v12 ? q->search : NULL;
    int desc = v12 && q->descending;
    sqlite3_stmt *tmp = NULL, *st;
    char *match = NULL;
    if (search != NULL || desc) {
        int rc = sq_msg_dynamic(s, f, with_blob, search, desc, &st, &match);
        if (rc != MH_OK)
            return rc;
        tmp = st;
        if (st == NULL)
            return MH_OK; /* a search without any term: nothing matches */
        if (match != NULL)
            sqlite3_bind_text(st, 7, match, -1, SQLITE_TRANSIENT);
        sqlite3_free(match);
    } else {
        st = sq_take(s, s->msg_st[f][with_blob], &tmp);
        if (st == NULL)
            return MH_ERR;
    }
    sqlite3_bind_int64(st, 1, q->user_id);
    sqlite3_bind_int64(st, 2, q->after_id > 0 ? q->after_id : desc ? INT64_MAX : 0);
    sqlite3_bind_int64(st, 3, q->limit > 0 ? (sqlite3_int64)q->limit : -1);
    sqlite3_bind_int64(st, 4, q->id);
    sqlite3_bind_int64(st, 5, q->account_id > 0 ? q->account_id : 0);
    sqlite3_bind_int64(st, 6, q->folder_id > 0 ? q->folder_id : 0);
    int rc = MH_OK, src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        struct mh_msg_rec m;
        sq_msg_row(st, with_blob, &m);
        if (cb != NULL && cb(arg, &m) != 0)
            break;
    }
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        rc = sq_fail(s, src, "reading messages");
    sq_give(st, tmp);
    return rc;
}

/* ------------------------------------------------- sync (SDK 1.2) */

static int sq_state_get(void *state, int64_t user_id, int64_t account_id, const char *key, char **value_out)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    if (key == NULL || value_out == NULL)
        return MH_EINVAL;
    *value_out = NULL;
    sqlite3_stmt *st = s->st[SQ_STATE_GET];
    sqlite3_bind_int64(st, 1, user_id);
    sqlite3_bind_int64(st, 2, account_id);
    sq_bind_text(st, 3, key);
    int src = sqlite3_step(st), rc = 0;
    if (src == SQLITE_ROW) {
        *value_out = mh_strdup(sq_col_text(st, 0) ? sq_col_text(st, 0) : "");
        rc = *value_out ? 1 : MH_ENOMEM;
    } else if (src != SQLITE_DONE) {
        rc = sq_fail(s, src, "reading sync state");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static int sq_state_put(void *state, int64_t user_id, int64_t account_id, const char *key, const char *value)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    if (key == NULL)
        return MH_EINVAL;
    int rc = sq_begin(s);
    if (rc != MH_OK)
        return rc;
    sqlite3_stmt *st = s->st[value ? SQ_STATE_PUT : SQ_STATE_DEL];
    sqlite3_bind_int64(st, 1, user_id);
    sqlite3_bind_int64(st, 2, account_id);
    sq_bind_text(st, 3, key);
    if (value)
        sq_bind_text(st, 4, value);
    rc = sq_step_write(s, st, "writing sync state");
    if (rc == MH_OK && value && sqlite3_changes(s->db) == 0)
        rc = MH_ENOTFOUND; /* not the user's account */
    if (rc == MH_OK)
        s->writes++;
    return rc;
}

static int64_t sq_folder_id(struct sq *s, int64_t user_id, int64_t account_id, const char *name)
{
    sqlite3_stmt *st = s->st[SQ_FOLDER_FIND];
    sqlite3_bind_int64(st, 1, user_id);
    sqlite3_bind_int64(st, 2, account_id);
    sq_bind_text(st, 3, name);
    int src = sqlite3_step(st);
    int64_t id = src == SQLITE_ROW    ? sqlite3_column_int64(st, 0)
                 : src == SQLITE_DONE ? 0
                                      : sq_fail(s, src, "looking up a folder");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return id;
}

static int sq_msg_set_source(void *state, int64_t user_id, int64_t account_id, const char *folder,
                             const char *source_id, const char *flags, int gone)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    if (source_id == NULL || folder == NULL)
        return MH_EINVAL;
    int rc = sq_begin(s);
    if (rc != MH_OK)
        return rc;
    sqlite3_stmt *st = s->st[SQ_MSG_SOURCE];
    sqlite3_bind_int64(st, 1, user_id);
    sqlite3_bind_int64(st, 2, account_id);
    sq_bind_text(st, 3, source_id);
    sq_bind_text(st, 4, folder);
    int src = sqlite3_step(st);
    int64_t id = 0, folder_id = 0;
    char *old_flags = NULL;
    int old_gone = 0;
    if (src == SQLITE_ROW) {
        id = sqlite3_column_int64(st, 0);
        folder_id = sqlite3_column_int64(st, 1);
        old_flags = mh_strdup(sq_col_text(st, 2) ? sq_col_text(st, 2) : "");
        old_gone = sqlite3_column_int(st, 3);
    } else if (src != SQLITE_DONE) {
        rc = sq_fail(s, src, "looking up a message");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != MH_OK || id == 0) {
        mh_free(old_flags);
        return rc != MH_OK ? rc : MH_ENOTFOUND;
    }
    if (old_flags == NULL)
        return MH_ENOMEM;
    const char *new_flags = flags ? flags : old_flags;
    int new_gone = gone < 0 ? old_gone : gone != 0;
    if (strcmp(new_flags, old_flags) == 0 && new_gone == old_gone) {
        mh_free(old_flags);
        return MH_OK; /* nothing changed: no new modseq */
    }
    st = s->st[SQ_FOLDER_MODSEQ];
    sqlite3_bind_int64(st, 1, folder_id);
    src = sqlite3_step(st);
    int64_t modseq = src == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    if (src != SQLITE_ROW)
        rc = sq_fail(s, src, "assigning a modseq");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == MH_OK) {
        st = s->st[SQ_MSG_SET_SOURCE];
        sqlite3_bind_int64(st, 1, id);
        sq_bind_text(st, 2, new_flags[0] ? new_flags : NULL);
        sqlite3_bind_int(st, 3, new_gone);
        sqlite3_bind_int64(st, 4, modseq);
        rc = sq_step_write(s, st, "updating a message");
    }
    mh_free(old_flags);
    if (rc == MH_OK)
        s->writes++;
    else
        sq_after_error(s);
    return rc;
}

static int sq_msg_rekey(void *state, int64_t user_id, int64_t account_id, const char *folder,
                        const unsigned char sha256[32], const char *keep_prefix, const char *new_source_id,
                        struct mh_message_ref *ref_out)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    if (folder == NULL || sha256 == NULL || keep_prefix == NULL || new_source_id == NULL || ref_out == NULL)
        return MH_EINVAL;
    int rc = sq_begin(s);
    if (rc != MH_OK)
        return rc;
    int64_t folder_id = sq_folder_id(s, user_id, account_id, folder);
    if (folder_id <= 0)
        return folder_id < 0 ? (int)folder_id : 0;
    sqlite3_stmt *st = s->st[SQ_MSG_CONTENT];
    sqlite3_bind_int64(st, 1, folder_id);
    sqlite3_bind_blob(st, 2, sha256, 32, SQLITE_STATIC);
    size_t plen = strlen(keep_prefix);
    int64_t id = 0;
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *sid = sq_col_text(st, 1);
        if (sid == NULL || strncmp(sid, keep_prefix, plen) != 0) {
            id = sqlite3_column_int64(st, 0);
            break;
        }
    }
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        rc = sq_fail(s, src, "matching a message by content");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != MH_OK || id == 0)
        return rc != MH_OK ? rc : 0;
    st = s->st[SQ_MSG_REKEY];
    sqlite3_bind_int64(st, 1, id);
    sq_bind_text(st, 2, new_source_id);
    rc = sq_step_write(s, st, "re-keying a message");
    if (rc != MH_OK) {
        sq_after_error(s);
        return rc;
    }
    s->writes++;
    ref_out->id = id;
    ref_out->duplicate = 1;
    return 1;
}

static int sq_folder_change(void *state, int64_t user_id, int64_t account_id, const char *folder,
                            const char *new_name)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    if (folder == NULL)
        return MH_EINVAL;
    int rc = sq_begin(s);
    if (rc != MH_OK)
        return rc;
    int64_t id = sq_folder_id(s, user_id, account_id, folder);
    if (id <= 0)
        return id < 0 ? (int)id : MH_ENOTFOUND;
    if (new_name != NULL) {
        int64_t other = sq_folder_id(s, user_id, account_id, new_name);
        if (other != 0)
            return other < 0 ? (int)other : MH_EEXIST;
    }
    sqlite3_stmt *st = s->st[new_name ? SQ_FOLDER_RENAME : SQ_FOLDER_GONE];
    sqlite3_bind_int64(st, 1, id);
    if (new_name)
        sq_bind_text(st, 2, new_name);
    rc = sq_step_write(s, st, new_name ? "renaming a folder" : "marking a folder deleted at the source");
    if (rc == MH_OK)
        s->writes++;
    else
        sq_after_error(s);
    return rc;
}

static int sq_source_list(void *state, int64_t user_id, int64_t account_id, const char *folder,
                          int (*cb)(void *arg, const struct mh_source_msg *m), void *arg)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    if (folder == NULL)
        return MH_EINVAL;
    int64_t folder_id = sq_folder_id(s, user_id, account_id, folder);
    if (folder_id <= 0)
        return folder_id < 0 ? (int)folder_id : MH_OK;
    sqlite3_stmt *tmp, *st = sq_take(s, s->st[SQ_SOURCE_LIST], &tmp);
    if (st == NULL)
        return MH_ERR;
    sqlite3_bind_int64(st, 1, folder_id);
    int rc = MH_OK, src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        struct mh_source_msg m = {.struct_size = sizeof m,
                                  .source_id = sq_col_text(st, 0),
                                  .flags = sq_col_text(st, 1),
                                  .gone = sqlite3_column_int(st, 2) != 0};
        if (cb != NULL && cb(arg, &m) != 0)
            break;
    }
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        rc = sq_fail(s, src, "listing a folder");
    sq_give(st, tmp);
    return rc;
}

/* ----------------------------------------------- outbox (SDK 1.2) */

static int sq_job_put(void *state, struct mh_job_rec *j)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    if (j == NULL || j->state == NULL || (j->id == 0 && (j->key == NULL || j->notifier == NULL ||
                                                         j->event_type == NULL || j->event == NULL))) {
        mh_set_error(s->ctx, "job_put: key, notifier, event_type, event and state are required");
        return MH_EINVAL;
    }
    int rc = sq_begin(s);
    if (rc != MH_OK)
        return rc;
    int64_t now = sq_now() * 1000;
    sqlite3_stmt *st;
    if (j->id == 0) {
        st = s->st[SQ_JOB_BY_KEY];
        sq_bind_text(st, 1, j->key);
        int src = sqlite3_step(st);
        int64_t old = src == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
        if (src != SQLITE_ROW && src != SQLITE_DONE)
            rc = sq_fail(s, src, "looking up a job");
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (rc != MH_OK)
            return rc;
        if (old > 0) {
            j->id = old;
            return MH_EEXIST;
        }
        st = s->st[SQ_JOB_INS];
        sq_bind_text(st, 1, j->key);
        if (j->user_id > 0)
            sqlite3_bind_int64(st, 2, j->user_id);
        sq_bind_text(st, 3, j->notifier);
        sq_bind_text(st, 4, j->event_type);
        sq_bind_text(st, 5, j->state);
        sqlite3_bind_int(st, 6, j->attempts);
        sqlite3_bind_int64(st, 7, j->next_at);
        sq_bind_text(st, 8, j->fold);
        sqlite3_bind_int64(st, 9, j->created ? j->created : now);
        sqlite3_bind_int64(st, 10, j->updated ? j->updated : now);
        sq_bind_text(st, 11, j->detail);
        sq_bind_text(st, 12, j->event);
        rc = sq_step_write(s, st, "queueing a notification");
        if (rc == MH_OK)
            j->id = sqlite3_last_insert_rowid(s->db);
    } else {
        st = s->st[SQ_JOB_UPD];
        sqlite3_bind_int64(st, 1, j->id);
        sq_bind_text(st, 2, j->state);
        sqlite3_bind_int(st, 3, j->attempts);
        sqlite3_bind_int64(st, 4, j->next_at);
        sq_bind_text(st, 5, j->fold);
        sqlite3_bind_int64(st, 6, j->updated ? j->updated : now);
        sq_bind_text(st, 7, j->detail);
        rc = sq_step_write(s, st, "updating a notification");
        if (rc == MH_OK && sqlite3_changes(s->db) == 0)
            rc = MH_ENOTFOUND;
    }
    if (rc == MH_OK)
        s->writes++;
    else if (rc != MH_ENOTFOUND)
        sq_after_error(s);
    return rc;
}

static int sq_job_list(void *state, const struct mh_job_query *q, mh_job_each_cb cb, void *arg)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    if (q == NULL)
        return MH_EINVAL;
    /* Few shapes, rarely run (start-up, the API): prepared per call. */
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(
        s->db,
        "SELECT id, key, user_id, notifier, event_type, event, state, attempts, next_at, fold, created, updated,"
        " detail FROM jobs WHERE (?1 = 0 OR id = ?1) AND (?2 = 0 OR user_id = ?2) AND (?3 IS NULL OR state = ?3)"
        " AND (?4 IS NULL OR fold = ?4) AND (?5 = 0 OR next_at < ?5) AND id > ?6 ORDER BY id LIMIT ?7",
        -1, &st, NULL);
    if (src != SQLITE_OK)
        return sq_fail(s, src, "preparing a job query");
    sqlite3_bind_int64(st, 1, q->id);
    sqlite3_bind_int64(st, 2, q->user_id);
    sq_bind_text(st, 3, q->state);
    sq_bind_text(st, 4, q->fold);
    sqlite3_bind_int64(st, 5, q->due_before);
    sqlite3_bind_int64(st, 6, q->after_id);
    sqlite3_bind_int64(st, 7, q->limit ? (sqlite3_int64)q->limit : -1);
    int rc = MH_OK;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        struct mh_job_rec j = {.struct_size = sizeof j,
                               .id = sqlite3_column_int64(st, 0),
                               .key = sq_col_text(st, 1),
                               .user_id = sqlite3_column_int64(st, 2),
                               .notifier = sq_col_text(st, 3),
                               .event_type = sq_col_text(st, 4),
                               .event = sq_col_text(st, 5),
                               .state = sq_col_text(st, 6),
                               .attempts = sqlite3_column_int(st, 7),
                               .next_at = sqlite3_column_int64(st, 8),
                               .fold = sq_col_text(st, 9),
                               .created = sqlite3_column_int64(st, 10),
                               .updated = sqlite3_column_int64(st, 11),
                               .detail = sq_col_text(st, 12)};
        if (cb != NULL && cb(arg, &j) != 0)
            break;
    }
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        rc = sq_fail(s, src, "reading notifications");
    sqlite3_finalize(st);
    return rc;
}

static int sq_job_count(void *state, int64_t user_id, const char *notifier, int64_t since, uint64_t *count_out)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    sqlite3_stmt *st = s->st[SQ_JOB_COUNT];
    sqlite3_bind_int64(st, 1, user_id);
    sq_bind_text(st, 2, notifier);
    sqlite3_bind_int64(st, 3, since);
    int src = sqlite3_step(st), rc = MH_OK;
    if (src == SQLITE_ROW)
        *count_out = sq_col_u64(st, 0);
    else
        rc = sq_fail(s, src, "counting notifications");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static int sq_job_prune(void *state, int64_t before, uint64_t *count_out)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    int rc = sq_begin(s);
    if (rc != MH_OK)
        return rc;
    sqlite3_stmt *st = s->st[SQ_JOB_PRUNE];
    sqlite3_bind_int64(st, 1, before);
    rc = sq_step_write(s, st, "pruning notifications");
    if (rc == MH_OK) {
        s->writes++;
        if (count_out)
            *count_out = (uint64_t)sqlite3_changes(s->db);
    } else {
        sq_after_error(s);
    }
    return rc;
}

static int sq_user_pref_get(void *state, int64_t user_id, const char *key, char **value_out)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    *value_out = NULL;
    sqlite3_stmt *st = s->st[SQ_PREF_GET];
    sqlite3_bind_int64(st, 1, user_id);
    sq_bind_text(st, 2, key);
    int src = sqlite3_step(st), rc = 0;
    if (src == SQLITE_ROW) {
        *value_out = mh_strdup(sq_col_text(st, 0) ? sq_col_text(st, 0) : "");
        rc = *value_out ? 1 : MH_ENOMEM;
    } else if (src != SQLITE_DONE) {
        rc = sq_fail(s, src, "reading a preference");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static int sq_user_pref_put(void *state, int64_t user_id, const char *key, const char *value)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    if (key == NULL)
        return MH_EINVAL;
    int rc = sq_user_exists(s, user_id);
    if (rc <= 0)
        return rc == 0 ? MH_ENOTFOUND : rc;
    rc = sq_begin(s);
    if (rc != MH_OK)
        return rc;
    sqlite3_stmt *st = s->st[value ? SQ_PREF_PUT : SQ_PREF_DEL];
    sqlite3_bind_int64(st, 1, user_id);
    sq_bind_text(st, 2, key);
    if (value)
        sq_bind_text(st, 3, value);
    rc = sq_step_write(s, st, "writing a preference");
    if (rc == MH_OK)
        s->writes++;
    else
        sq_after_error(s);
    return rc;
}

/* ------------------------------------------- deferred analysis (1.3) */

static int sq_index_pending_list(void *state, int64_t after_id, uint32_t limit, mh_msg_each_cb cb, void *arg)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    sqlite3_stmt *tmp, *st = sq_take(s, s->st[SQ_QUEUE_LIST], &tmp);
    if (st == NULL)
        return MH_ERR;
    sqlite3_bind_int64(st, 1, after_id > 0 ? after_id : 0);
    sqlite3_bind_int64(st, 2, limit > 0 ? (sqlite3_int64)limit : -1);
    int rc = MH_OK, src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        struct mh_msg_rec m;
        sq_msg_row(st, 1, &m);
        m.index_pending = 1;
        if (cb != NULL && cb(arg, &m) != 0)
            break;
    }
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        rc = sq_fail(s, src, "reading the analysis queue");
    sq_give(st, tmp);
    return rc;
}

static int sq_msg_index(void *state, int64_t id, const char *search_terms, const char *attachments)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    int rc = sq_begin(s);
    if (rc != MH_OK)
        return rc;
    sqlite3_stmt *st = s->st[SQ_QUEUE_DEL];
    sqlite3_bind_int64(st, 1, id);
    rc = sq_step_write(s, st, "taking a message off the analysis queue");
    if (rc != MH_OK)
        return rc;
    if (sqlite3_changes(s->db) == 0)
        return MH_ENOTFOUND;
    if (attachments != NULL) {
        st = s->st[SQ_MSG_SET_ATT];
        sqlite3_bind_int64(st, 1, id);
        sq_bind_text(st, 2, attachments);
        rc = sq_step_write(s, st, "recording attachments");
    }
    if (rc == MH_OK && search_terms != NULL && search_terms[0] != '\0') {
        st = s->st[SQ_SEARCH_INS];
        sqlite3_bind_int64(st, 1, id);
        sq_bind_text(st, 2, search_terms);
        rc = sq_step_write(s, st, "indexing a message");
    }
    if (rc != MH_OK) {
        sq_abort(s); /* the message is off the queue but not indexed: keep neither */
        return rc;
    }
    s->writes++;
    return MH_OK;
}

static int sq_index_pending_count(void *state, int64_t user_id, uint64_t *count_out)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    if (count_out == NULL)
        return MH_EINVAL;
    sqlite3_stmt *st = s->st[user_id > 0 ? SQ_QUEUE_COUNT : SQ_QUEUE_COUNT_ALL];
    if (user_id > 0)
        sqlite3_bind_int64(st, 1, user_id);
    int src = sqlite3_step(st), rc = MH_OK;
    *count_out = src == SQLITE_ROW ? sq_col_u64(st, 0) : 0;
    if (src != SQLITE_ROW)
        rc = sq_fail(s, src, "counting the analysis queue");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

/* ------------------------------------------------------ usage, quota */

static int sq_usage(void *state, int64_t user_id, uint64_t *bytes_out, uint64_t *count_out)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    sqlite3_stmt *st = s->st[SQ_USAGE];
    sqlite3_bind_int64(st, 1, user_id);
    int src = sqlite3_step(st), rc = MH_OK;
    uint64_t bytes = 0, count = 0;
    if (src == SQLITE_ROW) {
        bytes = sq_col_u64(st, 0);
        count = sq_col_u64(st, 1);
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

static int sq_quota_get(void *state, int64_t user_id, uint64_t *alloc_out)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    sqlite3_stmt *st = s->st[SQ_QUOTA_GET];
    sqlite3_bind_int64(st, 1, user_id);
    int src = sqlite3_step(st), rc = 0;
    if (src == SQLITE_ROW) {
        if (alloc_out != NULL)
            *alloc_out = sq_col_u64(st, 0);
        rc = 1;
    } else if (src != SQLITE_DONE) {
        rc = sq_fail(s, src, "reading quota");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static int sq_quota_set(void *state, int64_t user_id, uint64_t alloc, const char *reason)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    if (alloc > (uint64_t)INT64_MAX) {
        mh_set_error(s->ctx, "quota_set: allocation out of range");
        return MH_EINVAL;
    }
    int rc = sq_begin(s);
    if (rc != MH_OK)
        return rc;
    rc = sq_user_exists(s, user_id);
    if (rc == 0) {
        mh_set_error(s->ctx, "user %lld does not exist", (long long)user_id);
        return MH_ENOTFOUND;
    }
    if (rc < 0)
        return rc;
    sqlite3_stmt *st = s->st[SQ_QUOTA_LOG];
    sqlite3_bind_int64(st, 1, user_id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)alloc);
    sq_bind_text(st, 3, reason != NULL ? reason : "");
    sqlite3_bind_int64(st, 4, sq_now());
    rc = sq_step_write(s, st, "writing quota history");
    if (rc != MH_OK)
        return rc;
    st = s->st[SQ_QUOTA_SET];
    sqlite3_bind_int64(st, 1, user_id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)alloc);
    rc = sq_step_write(s, st, "writing quota");
    if (rc != MH_OK) {
        sq_abort(s); /* not a history entry without its allocation */
        return rc;
    }
    s->writes++;
    return MH_OK;
}

static int sq_quota_history(void *state, int64_t user_id, mh_quota_each_cb cb, void *arg)
{
    struct sq *s = state;
    if (sq_not_open(s))
        return MH_ERR;
    sqlite3_stmt *tmp, *st = sq_take(s, s->st[SQ_QUOTA_HIST], &tmp);
    if (st == NULL)
        return MH_ERR;
    sqlite3_bind_int64(st, 1, user_id);
    int rc = MH_OK, src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *reason = sq_col_text(st, 1);
        if (cb != NULL && cb(arg, sq_col_u64(st, 0), reason ? reason : "", sqlite3_column_int64(st, 2)) != 0)
            break;
    }
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        rc = sq_fail(s, src, "reading quota history");
    sq_give(st, tmp);
    return rc;
}

/* ------------------------------------------------------------- free */

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
    .has_source = sq_has_source,
    .user_put = sq_user_put,
    .user_get = sq_user_get,
    .user_list = sq_user_list,
    .user_delete = sq_user_delete,
    .token_put = sq_token_put,
    .token_get = sq_token_get,
    .token_delete = sq_token_delete,
    .account_put = sq_account_put,
    .account_get = sq_account_get,
    .account_list = sq_account_list,
    .account_delete = sq_account_delete,
    .folder_list = sq_folder_list,
    .msg_list = sq_msg_list,
    .quota_history = sq_quota_history,
    .state_get = sq_state_get,
    .state_put = sq_state_put,
    .msg_set_source = sq_msg_set_source,
    .msg_rekey = sq_msg_rekey,
    .folder_change = sq_folder_change,
    .source_list = sq_source_list,
    .job_put = sq_job_put,
    .job_list = sq_job_list,
    .job_count = sq_job_count,
    .job_prune = sq_job_prune,
    .user_pref_get = sq_user_pref_get,
    .user_pref_put = sq_user_pref_put,
    .index_pending_list = sq_index_pending_list,
    .msg_index = sq_msg_index,
    .index_pending_count = sq_index_pending_count,
};

MH_PLUGIN_DEFINE(sqlite, .kind = MH_KIND_STORE, .name = "sqlite", .version = "1.2.0",
                 .description = "embedded SQLite store (one file, WAL)", .options = sq_options,
                 .init = sq_init, .free = sq_free, .ops = &sq_ops);

/*
 * The store contract: behaviour every store plugin must have (SDK 1.1,
 * sdk/mailhub/store.h), as a cmocka suite that runs against any backend
 * through its struct mh_store_ops alone and a small factory.  SQLite and the
 * in-memory test store run it now; a PostgreSQL backend adds a factory that
 * creates a scratch database and runs the same suite.
 *
 * What it covers: users (CRUD, unique names), tokens (expiry, delete),
 * accounts (CRUD, names unique per user), put_message (UIDs 1, 2, 3 per
 * folder, increasing modseq, a fresh UIDVALIDITY per folder, exactly-once by
 * source_id), exact usage through puts, duplicates and deletes, quota and
 * its history, msg_list filters and order, tenant isolation (no query of
 * user B ever returns user A's records), reads from inside callbacks, and,
 * for persistent backends, that everything (UIDs included) survives close
 * and open.
 */
#ifndef MH_STORE_CONTRACT_H
#define MH_STORE_CONTRACT_H

#include <mailhub/store.h>

struct store_contract {
    const char *name; /* the cmocka group name */
    const struct mh_store_ops *ops;
    void *env; /* passed to the callbacks below */
    /** Create an instance and open it (init + ops->open) on the backend's current data; NULL on failure. */
    void *(*open)(void *env);
    /** Close and free an instance (ops->close + the descriptor's free). */
    void (*close)(void *env, void *state);
    /** Remove all data, so that the next open starts empty. */
    void (*wipe)(void *env);
    /** 1 if data survives close and open (otherwise the persistence tests are skipped). */
    int persistent;
};

/** Run the suite; returns the number of failed tests (cmocka's group result). */
int store_contract_run(const struct store_contract *c);

#endif

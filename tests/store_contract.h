/*
 * The store contract: behaviour every store plugin must have, as a cmocka
 * suite that runs against any backend through its struct mh_store_ops and a
 * small factory.  SQLite runs it now; a PostgreSQL backend adds a factory
 * that creates a scratch database and runs the same suite.
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
    /** 1 if data survives close and open (otherwise the persistence test is skipped). */
    int persistent;
};

/** Run the suite; returns the number of failed tests (cmocka's group result). */
int store_contract_run(const struct store_contract *c);

#endif

/*
 * Runs the store contract (tests/store_contract.c) against the store plugin
 * linked into this program: plugins/sqlite/sqlite.c for test_store_contract,
 * tests/plugins/t_store.c (in memory, so built with STORE_CONTRACT_VOLATILE)
 * for test_store_contract_mem.  A new backend gets its own program the same way.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <mailhub/plugin.h>
#include <mailhub/store.h>

#include "mock_host.h"
#include "store_contract.h"

extern const struct mh_plugin mh_plugin_descriptor;

struct env {
    struct mock_host *mh;
    const struct mh_config *cfg;
};

static void *env_open(void *arg)
{
    struct env *e = arg;
    const struct mh_plugin *d = &mh_plugin_descriptor;
    const struct mh_store_ops *ops = d->ops;
    void *st = NULL;
    if (d->init(mock_host_ctx(e->mh), e->cfg, &st) != MH_OK)
        return NULL;
    if (ops->open(st) != MH_OK) {
        fprintf(stderr, "open: %s\n", mock_host_error(e->mh) ? mock_host_error(e->mh) : "?");
        d->free(st);
        return NULL;
    }
    return st;
}

static void env_close(void *arg, void *st)
{
    (void)arg;
    const struct mh_plugin *d = &mh_plugin_descriptor;
    const struct mh_store_ops *ops = d->ops;
    if (ops->close != NULL)
        ops->close(st);
    d->free(st);
}

static void env_wipe(void *arg)
{
    struct env *e = arg;
    static const char *const files[] = {"contract.db", "contract.db-wal", "contract.db-shm"};
    char path[512];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", mock_host_data_dir(e->mh), files[i]);
        unlink(path);
    }
}

int main(void)
{
    const struct mh_plugin *d = &mh_plugin_descriptor;
    if (d->kind != MH_KIND_STORE) {
        fprintf(stderr, "%s is not a store\n", d->name);
        return 1;
    }
    struct env e = {.mh = mock_host_new("store", d->name)};
    /* Point a file-backed store at a file the wipe knows; an option-less store gets no options. */
    int has_path = 0;
    for (const struct mh_option *o = d->options; o != NULL && o->name != NULL; o++)
        has_path |= strcmp(o->name, "path") == 0;
    const char *kv[] = {"path", "contract.db", NULL};
    e.cfg = mock_host_config(e.mh, d->options, has_path ? kv : NULL);
    if (e.cfg == NULL) {
        fprintf(stderr, "config: %s\n", mock_host_config_error(e.mh));
        return 1;
    }
    struct store_contract c = {
        .name = d->name,
        .ops = d->ops,
        .env = &e,
        .open = env_open,
        .close = env_close,
        .wipe = env_wipe,
#ifdef STORE_CONTRACT_VOLATILE
        .persistent = 0,
#else
        .persistent = 1,
#endif
    };
    int failed = store_contract_run(&c);
    mock_host_free(&e.mh);
    return failed;
}

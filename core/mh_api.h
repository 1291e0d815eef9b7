/*
 * The control API: HTTP/1.1 with JSON bodies under /api/v1, served by
 * libmicrohttpd on the core's loop (no MHD threads).  Handlers run their
 * store work on the store lane (mh_storeq_call) with the connection
 * suspended, and CPU-heavy work (password hashing) on the worker pool.
 * Documented in docs/api.md and docs/openapi.yaml.
 */
#ifndef MH_API_H
#define MH_API_H

#include <stdint.h>

struct mh_daemon;
struct mh_loop;
struct mh_storeq;
struct mh_pool;
struct mh_api;

struct mh_api_opts {
    const char *name;         /* listener name, for logs */
    const char *address;      /* e.g. "127.0.0.1" or "::1" */
    int port;                 /* 0: an ephemeral port (tests; see mh_api_port) */
    const char *data_dir;     /* uploads go to data_dir/imports/<user_id>/ */
    int registration_open;    /* 1: POST /api/v1/register is allowed without a token */
    uint64_t max_upload;      /* bytes; 0: no limit */
};

/** Bind and start serving.  NULL with *err (names the address and port) on failure. */
struct mh_api *mh_api_new(struct mh_daemon *d, struct mh_loop *loop, struct mh_storeq *q, struct mh_pool *pool,
                          const struct mh_api_opts *opts, char **err);
int mh_api_port(const struct mh_api *a);
/**
 * Stop accepting and fail in-flight requests with 503 (no handler waits for
 * its work to finish); frees; sets *a to NULL.  It cancels its worker-pool
 * jobs (a running password hash is waited for) and lets the store lane finish
 * the store functions it queued (mh_storeq_call_sync() as a barrier), so call
 * it before mh_storeq_free() and mh_pool_free().  No callback of it is
 * pending afterwards.
 */
void mh_api_free(struct mh_api **a);

#endif

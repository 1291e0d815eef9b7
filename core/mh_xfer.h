/*
 * Transfers: the core's one curl multi handle, driven by the libev loop
 * (multi_socket_action; see ../shared/docs/TRANSPORT.md for the traps this
 * avoids).  The only file that owns a CURLM is mh_xfer.c.
 * Thread: loop.
 */
#ifndef MH_XFER_H
#define MH_XFER_H

#include <mailhub/plugin.h>

struct mh_loop;
struct mh_xfer;

/** Largest response body mh_xfer_http() accepts; a bigger one fails with MH_ERR. */
#define MH_XFER_MAX_BODY ((size_t)16 * 1024 * 1024)

struct mh_xfer_opts {
    long max_connects;          /* CURLMOPT_MAXCONNECTS; 0: 64 */
    long max_host_connections;  /* CURLMOPT_MAX_HOST_CONNECTIONS; 0: unlimited */
    int64_t default_timeout_ms; /* 0: 30000 */
    int64_t default_connect_timeout_ms; /* 0: 10000 */
    const char *ca_file;        /* extra CAs (PEM) for every transfer, in addition to the system store, or NULL */
};

struct mh_xfer *mh_xfer_new(struct mh_loop *loop, const struct mh_xfer_opts *opts);
/**
 * Cancel everything (http callbacks run with MH_ECANCELED; curl handles are removed
 * without a callback) and free; sets *x to NULL.  Call it before mh_loop_free(), and
 * not from inside one of its own callbacks.
 */
void mh_xfer_free(struct mh_xfer **x);

/** See mh_http_request() in plugin.h.  `owner` is the instance context or NULL. */
int mh_xfer_http(struct mh_xfer *x, void *owner, const struct mh_http_request *req, mh_http_cb cb,
                 void *arg, struct mh_http **handle_out);
void mh_xfer_http_cancel(struct mh_http **h);

/**
 * See mh_curl_add_take() in plugin.h.  libcurl cannot tell which options a plugin
 * set, so the core always sets CURLOPT_NOSIGNAL, CURLOPT_CONNECTTIMEOUT_MS (to the
 * default connect timeout) and, if opts->ca_file was given, CURLOPT_CAINFO_BLOB (so a
 * plugin's own CURLOPT_CAINFO is kept, and both are trusted); it never
 * sets a whole-transfer timeout (a CONNECT_ONLY/IDLE connection must not time out).
 * Every handle stays in the multi handle after its callback until
 * mh_xfer_curl_remove(), which a CONNECT_ONLY handle needs to keep its connection.
 */
struct mh_curl *mh_xfer_curl_add_take(struct mh_xfer *x, void *owner, void *easy, mh_curl_cb cb,
                                      void *arg);
void mh_xfer_curl_remove(struct mh_curl **h);
void *mh_xfer_curl_easy(struct mh_curl *h);

/** Cancel all of `owner`'s requests (http callbacks run with MH_ECANCELED) and curl handles. */
void mh_xfer_cancel_owner(struct mh_xfer *x, void *owner);
/** Transfers in flight (http requests + curl handles not yet removed). */
size_t mh_xfer_active(struct mh_xfer *x);
/** Diagnostics for tests: how often the loop woke the multi handle. */
unsigned long mh_xfer_wakeups(struct mh_xfer *x);

#endif

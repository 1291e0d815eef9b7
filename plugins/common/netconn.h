/*
 * netconn: a small byte-stream connection for protocol plugins (IMAP, POP3),
 * shared by plugins/imap and plugins/pop3 and linked into them as the libtool
 * convenience library plugins/common/libnetconn.la.
 *
 * libcurl does the parts that are hard to get right: DNS, TCP, TLS (implicit
 * or STARTTLS, certificate verification always on), the server greeting,
 * CAPABILITY/CAPA and the login (LOGIN, AUTHENTICATE PLAIN/LOGIN/XOAUTH2,
 * POP3 USER/PASS...).  It does them as a CURLOPT_CONNECT_ONLY transfer handed
 * to the core's multi handle with mh_curl_add_take(); once curl reports the
 * connection done, netconn takes the socket (CURLINFO_ACTIVESOCKET), watches
 * it with mh_io_add() and talks with curl_easy_send()/curl_easy_recv().  From
 * then on the plugin speaks the protocol itself (tags, pipelining, IDLE).
 * See ../shared/docs/TRANSPORT.md for why (curl's own IMAP commands cannot
 * pipeline, fetch BODY[] without PEEK, and break on large responses).
 *
 * What netconn guarantees:
 *  - reads: on each readiness event every byte available is drained
 *    (curl_easy_recv() in a loop until CURLE_AGAIN: TLS keeps decrypted bytes
 *    inside OpenSSL, so one read per wake-up would stall) and delivered, in
 *    order, to the read callback.  The plugin keeps what it needs; netconn
 *    keeps nothing once the callback returns.  nc_pause_read() applies
 *    back-pressure (the socket is not read while paused).
 *  - writes: nc_write() never blocks and never fails short: what the socket
 *    does not take at once is buffered and flushed by a write watcher.
 *  - an inactivity timeout: no byte received for `timeout_ms` while the
 *    plugin expects an answer (nc_expect(c, 1), the default) fails the
 *    connection with MH_ETIMEDOUT.  An IMAP IDLE connection sets
 *    nc_expect(c, 0) while it idles, so silence is not an error.
 *  - exactly one of `connected` or `closed` after nc_open(), then, after
 *    `connected`, exactly one `closed` unless the plugin calls nc_close()
 *    first (nc_close() never calls back).
 *
 * Ownership: struct nc_opts and its strings are copied by nc_open() (the
 * secrets only into curl's handle: netconn keeps no copy); the connection belongs
 * to the plugin, which releases it with nc_close() (also inside any of its
 * callbacks, including `closed`).  Secrets never reach a log line.
 * Thread: the loop thread only.
 */
#ifndef MH_PLUGINS_NETCONN_H
#define MH_PLUGINS_NETCONN_H

#include <mailhub/plugin.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct nc_conn;

/** How TLS is used. */
enum nc_tls {
    NC_TLS_IMPLICIT = 0, /* imaps:// / pop3s:// (TLS from the first byte) */
    NC_TLS_STARTTLS = 1, /* imap:// / pop3:// + STARTTLS/STLS, required (CURLUSESSL_ALL) */
    NC_TLS_NONE = 2,     /* plain text (tests, or a trusted local link) */
};

/** Connection parameters.  Borrowed: nc_open() copies what it keeps. */
struct nc_opts {
    const char *scheme; /* "imap" or "pop3"; the "s" for NC_TLS_IMPLICIT is added */
    const char *host;   /* host name or address literal (IPv6 without brackets) */
    int port;           /* 0: the scheme's default (993/143, 995/110) */
    enum nc_tls tls;
    const char *username;       /* required for IMAP; POP3: NULL means no login at all (curl stops
                                   after greeting, CAPA and STLS: `connected` fires in the
                                   AUTHORIZATION state and the plugin sends USER/PASS itself) */
    const char *password;       /* NULL when bearer is used */
    const char *bearer;         /* OAuth2 access token: CURLOPT_XOAUTH2_BEARER (SASL XOAUTH2); or NULL */
    const char *login_options;  /* CURLOPT_LOGIN_OPTIONS, e.g. "AUTH=PLAIN", "AUTH=LOGIN",
                                   "AUTH=XOAUTH2", "AUTH=+LOGIN" (IMAP LOGIN command),
                                   "AUTH=*"; NULL: curl chooses (POP3: USER/PASS or SASL) */
    const char *ca_file;        /* extra trust anchors (CURLOPT_CAINFO); NULL: the system store.
                                   Verification of peer and host name is always on. */
    int64_t connect_timeout_ms; /* TCP + TLS + greeting + login; 0: 30 s.  Enforced by a timer of
                                   netconn's own: the core gives curl handles its own connect
                                   timeout, which may be longer */
    int64_t timeout_ms;         /* inactivity timeout once connected (see nc_expect); 0: none */
    const char *label;          /* names the connection in log lines, e.g. "alice@imap.example.com";
                                   NULL: "user@host" */
};

/** Read callback: `len` (> 0) bytes arrived.  Borrowed for the call. */
typedef void (*nc_read_cb)(struct nc_conn *c, const char *data, size_t len, void *arg);
/** The connection is up and logged in: the plugin may write. */
typedef void (*nc_connected_cb)(struct nc_conn *c, void *arg);
/**
 * The connection failed or ended: rc is MH_ERETRY (refused, reset, closed by
 * the peer, DNS), MH_ETIMEDOUT (connect or inactivity timeout), MH_ERR for
 * what retrying will not fix (login refused, certificate verification
 * failed).  `msg` says which (never contains a secret).  The plugin must
 * still release the connection with nc_close() (here or later).
 */
typedef void (*nc_closed_cb)(struct nc_conn *c, int rc, const char *msg, void *arg);

struct nc_callbacks {
    nc_connected_cb connected;
    nc_read_cb read;
    nc_closed_cb closed;
};

/**
 * Start connecting.  Returns MH_PENDING and *out (one of the callbacks runs
 * later, never before nc_open() returns), or a negative code (no callback;
 * *out is NULL).  `cbs` is copied.
 */
int nc_open(struct mh_plugin_ctx *ctx, const struct nc_opts *o, const struct nc_callbacks *cbs, void *arg,
            struct nc_conn **out);

/**
 * Queue bytes for sending (copied).  MH_OK, MH_ENOMEM, or MH_ECANCELED when
 * the connection is not up (before `connected`, after `closed`).
 */
int nc_write(struct nc_conn *c, const void *data, size_t len);
/** nc_write() of a formatted string.  Never format a secret into it. */
int nc_printf(struct nc_conn *c, const char *fmt, ...) MH_PRINTF(2, 3);

/** Bytes queued and not yet taken by the socket. */
size_t nc_pending_out(const struct nc_conn *c);

/** 1: stop reading the socket (back-pressure); 0: resume. */
void nc_pause_read(struct nc_conn *c, int paused);

/**
 * 1 (default): the plugin waits for the server, so `timeout_ms` without a
 * byte fails the connection; 0: silence is fine (IMAP IDLE, an idle pool).
 * Either call restarts the inactivity clock.
 */
void nc_expect(struct nc_conn *c, int expecting);

/** The label given in nc_opts (or "user@host"), for the plugin's own log lines. */
const char *nc_label(const struct nc_conn *c);

/**
 * Close and release the connection (no callback runs afterwards; unsent
 * bytes are dropped: send LOGOUT/QUIT and wait for its answer first if the
 * server should see a clean end).  Safe inside any netconn callback.  Sets
 * *cp to NULL; NULL-safe.
 */
void nc_close(struct nc_conn **cp);

/**
 * Release the connection's memory only, touching none of its core handles:
 * for the plugin's `free` callback, when the core has already cancelled every
 * handle of the instance (see plugin.h, ownership rule 4).  Sets *cp to NULL.
 */
void nc_discard(struct nc_conn **cp);

#ifdef __cplusplus
}
#endif
#endif /* MH_PLUGINS_NETCONN_H */

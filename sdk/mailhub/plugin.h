/*
 * mailhub plugin SDK: the public, versioned ABI between mailhubd and its plugins.
 *
 * A plugin is a shared module (a libtool .la/.so) that exports exactly one data
 * symbol, `mh_plugin_descriptor`, of type `const struct mh_plugin`, best defined
 * with MH_PLUGIN_DEFINE().  Everything the plugin needs from the daemon (logging,
 * timers, fd watches, HTTP, curl, events, the worker pool, the store) is reached
 * through the host function table that the core hands to the plugin in
 * `struct mh_plugin_ctx`; a plugin links against no mailhub library and imports
 * no symbol from the daemon.  The static inline wrappers below (mh_log(),
 * mh_timer_add(), ...) hide the table.
 *
 * Versioning rules
 *  - MH_ABI_MAJOR changes when anything changes incompatibly; the core refuses a
 *    plugin with another major.
 *  - MH_ABI_MINOR grows when something is appended; the core refuses a plugin
 *    built against a newer minor than its own (the plugin could call host
 *    functions the core does not have).  An older minor is accepted.
 *  - Every struct that crosses the boundary starts with `struct_size` (the
 *    descriptor with `abi_version` before it).  Fields are only ever appended.
 *    The core copies min(struct_size, sizeof) and treats missing fields as zero.
 *
 * Conventions
 *  - Return codes: MH_OK (0) on success, MH_PENDING (1) when a result will be
 *    delivered later through a callback, and a negative MH_E* code on failure.
 *    MH_ERETRY means "transient, try again later": the core backs off.
 *  - Lookups return 1 found, 0 not found, negative on error.
 *  - Threads: every callback runs on the daemon's loop thread and must not
 *    block, except a work function given to mh_work_submit(), which runs on a
 *    worker thread and must touch nothing but its own argument.
 *  - Ownership, four rules everywhere:
 *      1. what the core passes into a callback is borrowed for that call;
 *      2. what a plugin passes to a host function is copied before it returns
 *         (only functions named *_take transfer ownership);
 *      3. plugin state is freed only in the descriptor's `free` callback;
 *      4. handles (timers, io watches, requests) belong to the core, which
 *         cancels whatever is still active before `free` is called.
 *
 * See docs/plugin-guide.md for a walk-through and sdk/examples/ for a plugin
 * that builds against the installed SDK alone.
 */
#ifndef MAILHUB_PLUGIN_H
#define MAILHUB_PLUGIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ ABI */

#define MH_ABI_MAJOR 1
#define MH_ABI_MINOR 3
/** The value a plugin stores in mh_plugin.abi_version. */
#define MH_ABI_VERSION (((uint32_t)MH_ABI_MAJOR << 16) | (uint32_t)MH_ABI_MINOR)
#define MH_ABI_VERSION_MAJOR(v) ((uint32_t)(v) >> 16)
#define MH_ABI_VERSION_MINOR(v) ((uint32_t)(v)&0xffffu)

/** Name of the one symbol every plugin exports. */
#define MH_PLUGIN_SYMBOL "mh_plugin_descriptor"

#if defined(__GNUC__)
#define MH_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define MH_EXPORT __attribute__((visibility("default")))
#else
#define MH_PRINTF(f, a)
#define MH_EXPORT
#endif

/* ------------------------------------------------------ return codes */

enum mh_rc {
    MH_OK = 0,
    MH_PENDING = 1,   /* accepted; the result arrives through a callback */
    MH_ERR = -1,      /* permanent failure; a message was set with mh_set_error() */
    MH_ENOMEM = -2,   /* out of memory */
    MH_EINVAL = -3,   /* invalid argument or configuration */
    MH_ERETRY = -4,   /* transient failure: the core retries later with backoff */
    MH_ENOTFOUND = -5,/* no such object */
    MH_EEXIST = -6,   /* object already exists (for example a duplicate message) */
    MH_ECANCELED = -7,/* the operation was cancelled (shutdown, handle removed) */
    MH_ETIMEDOUT = -8,/* the operation timed out */
    MH_EQUOTA = -9,   /* the user's allocation is at its maximum */
    MH_ENOTSUP = -10, /* not supported by this plugin or this core */
};

/* ----------------------------------------------------------- logging */

enum mh_log_level {
    MH_LOG_ERROR = 0,
    MH_LOG_WARN = 1,
    MH_LOG_INFO = 2,
    MH_LOG_DEBUG = 3,
};

/* ------------------------------------------------------------- kinds */

enum mh_plugin_kind {
    MH_KIND_PROVIDER = 1, /* fetches mail from a source mailbox */
    MH_KIND_NOTIFIER = 2, /* delivers events to the user (SMS, e-mail, webhook, ...) */
    MH_KIND_STORE = 3,    /* stores users, accounts and messages */
};

/* ----------------------------------------------------------- options */

/** Option types.  The core parses and validates the YAML value. */
enum mh_opt_type {
    MH_OPT_END = 0,      /* terminates an option table */
    MH_OPT_STR = 1,      /* any scalar, as a string */
    MH_OPT_INT = 2,      /* signed 64-bit integer */
    MH_OPT_BOOL = 3,     /* true/false, yes/no, on/off */
    MH_OPT_DURATION = 4, /* "250ms", "5s", "2m", "1h", "1d"; a bare number is seconds */
    MH_OPT_SIZE = 5,     /* "512", "64KB", "30MB", "1GB" (powers of 1024) */
    MH_OPT_STRLIST = 6,  /* a YAML sequence of scalars (a single scalar is a list of one) */
    MH_OPT_ENUM = 7,     /* one of the '|'-separated words in mh_option.choices */
};

/** Option flags. */
#define MH_OPT_REQUIRED 0x1u /* the key must be present (no default applies) */
#define MH_OPT_SECRET 0x2u   /* the value is a secret: never logged, never printed */

/**
 * One entry of a plugin's declarative option table.  The table ends with
 * MH_OPT_TABLE_END.  The core rejects unknown keys (with a did-you-mean),
 * values of the wrong type and missing required keys, naming file:line:column,
 * before any plugin is initialised; it fills in defaults; and it prints the
 * table for `mailhubd --plugin-help NAME`.
 *
 * Ownership: the table and its strings are static data of the plugin.
 */
struct mh_option {
    const char *name;     /* YAML key, [a-z0-9_]+ */
    enum mh_opt_type type;
    const char *def;      /* default, written as it would be in YAML; NULL: none */
    unsigned flags;       /* MH_OPT_REQUIRED | MH_OPT_SECRET */
    const char *help;     /* one line */
    const char *choices;  /* MH_OPT_ENUM only: "a|b|c" */
    int64_t min, max;     /* MH_OPT_INT, DURATION (ms), SIZE (bytes): range if min < max */
};
#define MH_OPT_TABLE_END { NULL, MH_OPT_END, NULL, 0, NULL, NULL, 0, 0 }

/* ------------------------------------------------- opaque core types */

struct mh_host;
struct mh_timer;
struct mh_io;
struct mh_http;
struct mh_curl;
struct mh_work;
struct mh_job;

/**
 * Per-instance context, created by the core for each YAML instance of a
 * plugin.  Only the public head is shown; the core owns the rest.
 * Ownership: the core's; valid from init until free returns.
 */
struct mh_plugin_ctx {
    uint32_t struct_size;
    const struct mh_host *host; /* the host function table */
    const char *instance;       /* the instance's name in the YAML */
    const char *plugin;         /* the plugin's name */
    /* since 1.1 (check struct_size): */
    const char *user;           /* providers: the hub user whose mailbox this is; else NULL */
    int64_t account_id;         /* providers: the store's id of the account (never reused; a removed and
                                   re-linked account gets a new one), set before start; else 0 */
};

/**
 * An instance's validated options.  Read them with mh_cfg_*().
 * Ownership: the core's; valid during init and reload.  Copy what you keep.
 */
struct mh_config {
    uint32_t struct_size;
    const struct mh_host *host;
};

/* --------------------------------------------------------- callbacks */

/** Timer callback.  Thread: loop. */
typedef void (*mh_timer_cb)(struct mh_timer *t, void *arg);

/** I/O readiness flags for mh_io_add(). */
#define MH_IO_READ 0x1
#define MH_IO_WRITE 0x2
/** fd callback; `revents` is a mask of MH_IO_*.  Thread: loop. */
typedef void (*mh_io_cb)(struct mh_io *io, int fd, int revents, void *arg);

/** One response header, borrowed. */
struct mh_http_header {
    const char *name;
    const char *value;
};

/**
 * An HTTP request for mh_http_request().
 * Ownership: borrowed; the core copies everything before mh_http_request returns.
 */
struct mh_http_request {
    uint32_t struct_size;        /* sizeof(struct mh_http_request) */
    const char *method;          /* "GET", "POST", ...; NULL means GET (POST with a body) */
    const char *url;
    const char *const *headers;  /* NULL-terminated "Name: value" lines, or NULL */
    const void *body;
    size_t body_len;
    int64_t timeout_ms;          /* whole request; 0 means the core's default (30 s) */
    int64_t connect_timeout_ms;  /* 0 means the core's default (10 s) */
    int insecure_allow_private;  /* reserved; 0 */
};

/**
 * An HTTP response, delivered to mh_http_cb.
 * Ownership: borrowed for the duration of the callback.
 */
struct mh_http_response {
    uint32_t struct_size;
    long status;           /* HTTP status, 0 if no response was received */
    const char *body;      /* NUL-terminated for convenience; may contain NULs */
    size_t body_len;
    const struct mh_http_header *headers;
    size_t n_headers;
    const char *error;     /* transport error text when rc != MH_OK, else NULL */
    double total_time;     /* seconds */
};

/**
 * Completion of mh_http_request().  rc is MH_OK when an HTTP response was
 * received (whatever its status), MH_ETIMEDOUT on timeout, MH_ERETRY on a
 * transport error (connection refused, reset, DNS), MH_ECANCELED on cancel or
 * shutdown, MH_ERR for a failure that retrying will not fix (TLS certificate
 * verification, a disallowed protocol, a body over 16 MiB); resp->error says which.
 * Thread: loop.
 */
typedef void (*mh_http_cb)(void *arg, const struct mh_http_response *resp, int rc);

/**
 * Completion of a curl easy handle given to mh_curl_add(): `result` is the
 * CURLcode.  For a CURLOPT_CONNECT_ONLY handle this fires once the connection
 * is established (and logged in, for IMAP/POP3/SMTP): the handle then stays in
 * the core's multi handle, keeping the connection, until mh_curl_remove().
 * Thread: loop.
 */
typedef void (*mh_curl_cb)(struct mh_curl *h, void *easy, int result, void *arg);

/** Work function for mh_work_submit().  Thread: a worker thread. */
typedef void (*mh_work_fn)(void *arg);
/** Completion for mh_work_submit(); rc is MH_OK or MH_ECANCELED.  Thread: loop. */
typedef void (*mh_work_done_cb)(void *arg, int rc);

/* ---------------------------------------------------------- messages */

/**
 * A message handed by a provider to the store (mh_store_put_message()).
 * Ownership: borrowed; the core copies what it keeps.
 */
struct mh_message {
    uint32_t struct_size;
    const char *user;       /* owner (hub user name); NULL: the instance's configured user */
    const char *account;    /* linked account (source mailbox) name; NULL: the instance name */
    const char *folder;     /* original folder, UTF-8, '/' separated, e.g. "INBOX" */
    const char *source_id;  /* stable identity at the source, for dedup within the folder (since 1.2;
                               the account before): "uv:UIDVALIDITY:UID", "uidl:...", or
                               "mid:<Message-ID>:sha256" */
    const void *raw;        /* RFC 5322 bytes, exactly as fetched */
    size_t raw_len;
    const char *flags;      /* space-separated IMAP flags, or NULL */
    int64_t internal_date;  /* seconds since the epoch, 0 if unknown */
    /* since 1.2: */
    int notify;             /* 1: new mail (arrived after the initial import): once stored (not a
                               duplicate), the core emits mail.received with the decoded sender and
                               subject, naming the user, account and folder */
    const char *rematch_prefix; /* the source renumbered the folder (IMAP UIDVALIDITY changed): when
                               source_id is not stored yet, a message of the same account and
                               folder with the same content whose source_id does not begin with
                               this prefix (e.g. "uv:NEWVALIDITY:") is re-keyed to source_id
                               instead of being stored twice (ref->duplicate is then 1).  NULL: off */
};

/** Result of storing one message. */
struct mh_message_ref {
    uint32_t struct_size;
    int64_t id;      /* the store's message id */
    int duplicate;   /* 1 when the source_id was already stored: nothing was written */
};

/**
 * Completion of mh_store_put_message().  rc: MH_OK (stored, or a duplicate),
 * MH_EQUOTA (the user's allocation is at its maximum: leave the mail on the
 * source), MH_ERETRY or MH_ERR.  `ref` is NULL unless rc == MH_OK.  Thread: loop.
 */
typedef void (*mh_store_cb)(void *arg, int rc, const struct mh_message_ref *ref);

/**
 * Completion of a store request that returns no data (since 1.2): rc MH_OK,
 * MH_ENOTFOUND, MH_ERETRY or MH_ERR.  Thread: loop.
 */
typedef void (*mh_done_cb)(void *arg, int rc);

/**
 * Completion of mh_state_get() (since 1.2): rc MH_OK with value the stored
 * text, or NULL when the key was never set.  Ownership: value is borrowed for
 * the call.  Thread: loop.
 */
typedef void (*mh_state_cb)(void *arg, int rc, const char *value);

/** One message of a source folder as the store knows it (since 1.2). */
struct mh_source_msg {
    uint32_t struct_size;
    const char *source_id;
    const char *flags;     /* as last mirrored from the source, or NULL */
    int gone;              /* 1: removed from the source (the hub keeps it) */
};

/**
 * Completion of mh_store_source_list() (since 1.2): the messages of one
 * folder of the instance's account, ascending by the store's UID.
 * Ownership: the array is borrowed for the call.  Thread: loop.
 */
typedef void (*mh_source_list_cb)(void *arg, int rc, const struct mh_source_msg *msgs, size_t n);

/* -------------------------------------------------------- host table */

/**
 * The host function table.  Functions are only appended (see struct_size).
 * Plugins call these through the inline wrappers further down.
 */
struct mh_host {
    uint32_t struct_size;
    uint32_t abi_version; /* the core's MH_ABI_VERSION */

    /* logging */
    void (*logv)(struct mh_plugin_ctx *ctx, int level, const char *fmt, va_list ap);
    int (*log_enabled)(struct mh_plugin_ctx *ctx, int level);
    void (*set_error)(struct mh_plugin_ctx *ctx, const char *fmt, va_list ap);

    /* configuration */
    const char *(*cfg_str)(const struct mh_config *cfg, const char *name);
    int64_t (*cfg_int)(const struct mh_config *cfg, const char *name);
    int (*cfg_bool)(const struct mh_config *cfg, const char *name);
    int64_t (*cfg_duration_ms)(const struct mh_config *cfg, const char *name);
    uint64_t (*cfg_size)(const struct mh_config *cfg, const char *name);
    size_t (*cfg_list_len)(const struct mh_config *cfg, const char *name);
    const char *(*cfg_list_item)(const struct mh_config *cfg, const char *name, size_t i);
    int (*cfg_is_set)(const struct mh_config *cfg, const char *name);

    /* loop */
    struct mh_timer *(*timer_add)(struct mh_plugin_ctx *ctx, double after, double repeat,
                                  mh_timer_cb cb, void *arg);
    void (*timer_del)(struct mh_timer **t);
    struct mh_io *(*io_add)(struct mh_plugin_ctx *ctx, int fd, int events, mh_io_cb cb, void *arg);
    void (*io_set)(struct mh_io *io, int events);
    void (*io_del)(struct mh_io **io);
    double (*now)(struct mh_plugin_ctx *ctx);

    /* HTTP and curl */
    int (*http_request)(struct mh_plugin_ctx *ctx, const struct mh_http_request *req,
                        mh_http_cb cb, void *arg, struct mh_http **handle_out);
    void (*http_cancel)(struct mh_http **h);
    struct mh_curl *(*curl_add_take)(struct mh_plugin_ctx *ctx, void *easy, mh_curl_cb cb, void *arg);
    void (*curl_remove)(struct mh_curl **h);
    void *(*curl_easy)(struct mh_curl *h);

    /* events */
    int (*event_emit)(struct mh_plugin_ctx *ctx, const char *type, const char *data_json);

    /* worker pool */
    int (*work_submit)(struct mh_plugin_ctx *ctx, mh_work_fn fn, mh_work_done_cb done, void *arg);

    /* notifier jobs (see notifier.h) */
    void (*job_done)(struct mh_job *job, int rc, const char *detail);

    /* store access for providers and notifiers */
    int (*store_put_message)(struct mh_plugin_ctx *ctx, const struct mh_message *msg,
                             mh_store_cb cb, void *arg);

    /* lifecycle */
    void (*stopped)(struct mh_plugin_ctx *ctx);
    const char *(*data_dir)(struct mh_plugin_ctx *ctx);

    /* since 1.2: sync state and changes at the source (providers) */
    int (*state_get)(struct mh_plugin_ctx *ctx, const char *key, mh_state_cb cb, void *arg);
    int (*state_put)(struct mh_plugin_ctx *ctx, const char *key, const char *value, mh_done_cb cb,
                     void *arg);
    int (*store_set_flags)(struct mh_plugin_ctx *ctx, const char *folder, const char *source_id,
                           const char *flags, mh_done_cb cb, void *arg);
    int (*store_mark_gone)(struct mh_plugin_ctx *ctx, const char *folder, const char *source_id,
                           mh_done_cb cb, void *arg);
    int (*store_folder_change)(struct mh_plugin_ctx *ctx, const char *folder, const char *new_name,
                               mh_done_cb cb, void *arg);
    int (*store_source_list)(struct mh_plugin_ctx *ctx, const char *folder, mh_source_list_cb cb,
                             void *arg);
    /* since 1.2: notifiers */
    void (*job_retry_after)(struct mh_job *job, double seconds);
};

/* ------------------------------------------------------- descriptor */

/**
 * The plugin descriptor.  `abi_version` and `struct_size` never move; new
 * fields are only appended.
 *
 * Mandatory for every kind: name, version, init, free, and `ops` with the
 * kind's mandatory callbacks (see provider.h, notifier.h, store.h).
 */
struct mh_plugin {
    uint32_t abi_version;  /* MH_ABI_VERSION */
    uint32_t struct_size;  /* sizeof(struct mh_plugin) */
    enum mh_plugin_kind kind;
    const char *name;        /* e.g. "imap"; [a-z0-9_-]+ */
    const char *version;     /* the plugin's own version, e.g. "1.0.0" */
    const char *description; /* one line */
    const struct mh_option *options;

    /**
     * Create one instance.  Called once per YAML instance, on the loop thread,
     * before the loop runs; do not start I/O here.  Store the state you
     * allocate in *state_out; all mutable state lives there (no static
     * mutable data: two instances must never share state).
     * Return MH_OK, or a negative code after mh_set_error().
     */
    int (*init)(struct mh_plugin_ctx *ctx, const struct mh_config *cfg, void **state_out);

    /** Begin work (open connections, add timers).  Optional.  Thread: loop. */
    int (*start)(void *state);

    /**
     * Stop accepting new work and finish or roll back what is in flight.
     * Return MH_OK when stopped, or MH_PENDING and call mh_stopped() later;
     * the core waits up to daemon.shutdown_timeout, then cancels the
     * instance's handles.  Optional.  Thread: loop.
     */
    int (*stop)(void *state);

    /** Free the state.  All handles have been cancelled.  Thread: loop. */
    void (*free)(void *state);

    /**
     * Apply changed options in place on SIGHUP.  Optional: without it, the
     * core restarts the instance (stop, free, init, start) when its options
     * change.  Return MH_OK, or MH_ENOTSUP to ask for a restart.
     */
    int (*reload)(void *state, const struct mh_config *cfg);

    /** The kind's operation table (struct mh_provider_ops, ...). */
    const void *ops;
};

/**
 * Define the plugin's descriptor.  `module` is the module's file name without
 * extension (e.g. `log` for log.la), used for the libltdl preload alias.
 * Example:
 *     MH_PLUGIN_DEFINE(log, .kind = MH_KIND_NOTIFIER, .name = "log", ...);
 */
#define MH_PLUGIN_DEFINE(module, ...)                                                      \
    MH_EXPORT extern const struct mh_plugin mh_plugin_descriptor;                           \
    const struct mh_plugin mh_plugin_descriptor = { .abi_version = MH_ABI_VERSION,           \
                                                    .struct_size = sizeof(struct mh_plugin), \
                                                    __VA_ARGS__ };                           \
    MH_EXPORT extern const struct mh_plugin module##_LTX_mh_plugin_descriptor                \
        __attribute__((alias("mh_plugin_descriptor")))

/* ------------------------------------------------- inline wrappers */

/** Memory helpers: plain libc; provided so plugins read like the examples. */
static inline void *mh_calloc(size_t n, size_t size) { return calloc(n, size); }
static inline void *mh_malloc(size_t size) { return malloc(size); }
static inline void mh_free(void *p) { free(p); }
static inline char *mh_strdup(const char *s)
{
    /* not strdup(): it is POSIX, hidden under -std=c11 */
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = (char *)malloc(n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

/**
 * Log a line.  The core prefixes time, level and "[kind/instance]", and
 * replaces the value of every MH_OPT_SECRET option that appears in the text.
 * Still: never pass secrets to mh_log.  Thread: loop (or worker; it is locked).
 */
static inline MH_PRINTF(3, 4) void mh_log(struct mh_plugin_ctx *ctx, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ctx->host->logv(ctx, level, fmt, ap);
    va_end(ap);
}
#define mh_log_error(ctx, ...) mh_log((ctx), MH_LOG_ERROR, __VA_ARGS__)
#define mh_log_warn(ctx, ...) mh_log((ctx), MH_LOG_WARN, __VA_ARGS__)
#define mh_log_info(ctx, ...) mh_log((ctx), MH_LOG_INFO, __VA_ARGS__)
#define mh_log_debug(ctx, ...) mh_log((ctx), MH_LOG_DEBUG, __VA_ARGS__)

/** 1 if a line at `level` would be written (avoid formatting costly debug text). */
static inline int mh_log_enabled(struct mh_plugin_ctx *ctx, int level)
{
    return ctx->host->log_enabled(ctx, level);
}

/**
 * Record the reason for the failure being returned; the core logs it with the
 * instance name or reports it in the API.  Ownership: the text is copied.
 */
static inline MH_PRINTF(2, 3) void mh_set_error(struct mh_plugin_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ctx->host->set_error(ctx, fmt, ap);
    va_end(ap);
}

/**
 * Option accessors.  `name` must be in the plugin's option table; an option
 * that is not set and has no default reads as NULL / 0 / empty.
 * Ownership: returned strings belong to the core and live as long as `cfg`.
 */
static inline const char *mh_cfg_str(const struct mh_config *cfg, const char *name)
{
    return cfg->host->cfg_str(cfg, name);
}
static inline int64_t mh_cfg_int(const struct mh_config *cfg, const char *name)
{
    return cfg->host->cfg_int(cfg, name);
}
static inline int mh_cfg_bool(const struct mh_config *cfg, const char *name)
{
    return cfg->host->cfg_bool(cfg, name);
}
static inline int64_t mh_cfg_duration_ms(const struct mh_config *cfg, const char *name)
{
    return cfg->host->cfg_duration_ms(cfg, name);
}
static inline uint64_t mh_cfg_size(const struct mh_config *cfg, const char *name)
{
    return cfg->host->cfg_size(cfg, name);
}
static inline size_t mh_cfg_list_len(const struct mh_config *cfg, const char *name)
{
    return cfg->host->cfg_list_len(cfg, name);
}
static inline const char *mh_cfg_list_item(const struct mh_config *cfg, const char *name, size_t i)
{
    return cfg->host->cfg_list_item(cfg, name, i);
}
/** 1 if the key was written in the YAML (not just defaulted). */
static inline int mh_cfg_is_set(const struct mh_config *cfg, const char *name)
{
    return cfg->host->cfg_is_set(cfg, name);
}

/**
 * Add a timer firing after `after` seconds, then every `repeat` seconds
 * (0: once; a one-shot timer stays valid until deleted or its instance is
 * freed).  Returns NULL on allocation failure.  Thread: loop.
 * Ownership: the core's; release it with mh_timer_del().
 */
static inline struct mh_timer *mh_timer_add(struct mh_plugin_ctx *ctx, double after, double repeat,
                                            mh_timer_cb cb, void *arg)
{
    return ctx->host->timer_add(ctx, after, repeat, cb, arg);
}
/** Cancel and release a timer; sets *t to NULL.  NULL-safe. */
static inline void mh_timer_del(struct mh_plugin_ctx *ctx, struct mh_timer **t)
{
    ctx->host->timer_del(t);
}

/**
 * Watch `fd` for MH_IO_READ and/or MH_IO_WRITE.  The fd stays the plugin's;
 * delete the watch before closing it.  Thread: loop.
 */
static inline struct mh_io *mh_io_add(struct mh_plugin_ctx *ctx, int fd, int events, mh_io_cb cb,
                                      void *arg)
{
    return ctx->host->io_add(ctx, fd, events, cb, arg);
}
/** Change the events watched (0 pauses the watch). */
static inline void mh_io_set(struct mh_plugin_ctx *ctx, struct mh_io *io, int events)
{
    ctx->host->io_set(io, events);
}
/** Stop and release a watch; sets *io to NULL.  NULL-safe. */
static inline void mh_io_del(struct mh_plugin_ctx *ctx, struct mh_io **io)
{
    ctx->host->io_del(io);
}
/** The loop's cached time, seconds since the epoch. */
static inline double mh_now(struct mh_plugin_ctx *ctx) { return ctx->host->now(ctx); }

/**
 * Start an HTTP(S) request on the core's curl multi handle.  TLS certificates
 * are always verified.  Returns MH_PENDING (cb will be called exactly once,
 * never before this returns) or a negative code (cb is not called).
 * `handle_out` may be NULL; otherwise it receives a handle for
 * mh_http_cancel(), valid until cb runs.
 */
static inline int mh_http_request(struct mh_plugin_ctx *ctx, const struct mh_http_request *req,
                                  mh_http_cb cb, void *arg, struct mh_http **handle_out)
{
    return ctx->host->http_request(ctx, req, cb, arg, handle_out);
}
/** Cancel a request: its callback runs with MH_ECANCELED; sets *h to NULL. */
static inline void mh_http_cancel(struct mh_plugin_ctx *ctx, struct mh_http **h)
{
    ctx->host->http_cancel(h);
}

/**
 * Hand a configured curl easy handle (`CURL *`) to the core's multi handle.
 * The core sets CURLOPT_NOSIGNAL and CURLOPT_CONNECTTIMEOUT_MS (its default:
 * run a timer of your own for another connect timeout; no whole-transfer
 * timeout, so a CONNECT_ONLY connection may live for hours), and adds the
 * daemon's extra CAs (daemon.tls_ca_file) with CURLOPT_CAINFO_BLOB, keeping a
 * CURLOPT_CAINFO of the plugin's own.  It keeps TLS verification as the
 * plugin configured it (on, by curl's default).  `cb` fires when the transfer completes (or, for
 * CURLOPT_CONNECT_ONLY, when connected).
 * Ownership: the easy handle is taken: the core cleans it up at
 * mh_curl_remove() or when the instance is freed.  Returns NULL on error
 * (the handle has then been cleaned up).
 */
static inline struct mh_curl *mh_curl_add_take(struct mh_plugin_ctx *ctx, void *easy, mh_curl_cb cb,
                                               void *arg)
{
    return ctx->host->curl_add_take(ctx, easy, cb, arg);
}
/** Remove the handle from the multi handle and clean it up; sets *h to NULL. */
static inline void mh_curl_remove(struct mh_plugin_ctx *ctx, struct mh_curl **h)
{
    ctx->host->curl_remove(h);
}
/** The `CURL *` behind a handle (borrowed), e.g. for curl_easy_send/recv. */
static inline void *mh_curl_easy(struct mh_plugin_ctx *ctx, struct mh_curl *h)
{
    return ctx->host->curl_easy(h);
}

/**
 * Emit an event on the core's bus.  `type` is a documented event type such
 * as "mail.received"; `data_json` is a JSON object with the type's fields.
 * The core wraps it in the versioned envelope (id, time, source...) described
 * in docs/events.md and delivers it asynchronously to subscribed notifiers.
 * Returns MH_OK or MH_EINVAL (unknown type or data that is not a JSON object).
 * Ownership: both strings are copied.
 */
static inline int mh_event_emit(struct mh_plugin_ctx *ctx, const char *type, const char *data_json)
{
    return ctx->host->event_emit(ctx, type, data_json);
}

/**
 * Run `fn(arg)` on a worker thread, then `done(arg, rc)` on the loop thread.
 * At shutdown, work not yet started completes with MH_ECANCELED.
 */
static inline int mh_work_submit(struct mh_plugin_ctx *ctx, mh_work_fn fn, mh_work_done_cb done,
                                 void *arg)
{
    return ctx->host->work_submit(ctx, fn, done, arg);
}

/**
 * Store one message through the configured store, under the core's quota
 * policy.  Returns MH_PENDING (cb will run exactly once, on the loop, never
 * before this returns) or a negative code.  Ownership: `msg` is copied.
 */
static inline int mh_store_put_message(struct mh_plugin_ctx *ctx, const struct mh_message *msg,
                                       mh_store_cb cb, void *arg)
{
    return ctx->host->store_put_message(ctx, msg, cb, arg);
}

/*
 * Sync state and source changes (since 1.2; providers only).
 *
 * Every function below returns MH_PENDING (cb runs exactly once, on the loop,
 * never before the function returns; cb may be NULL) or a negative code
 * (MH_ENOTSUP on a core older than 1.2, MH_EINVAL, MH_ENOMEM).  Requests of one
 * instance, mh_store_put_message() included, are carried out in the order they
 * were made, and a completion means the change is durable.  So a checkpoint
 * written with mh_state_put() after some puts is never ahead of the mail it
 * describes, even after kill -9.  Ownership: strings are copied.
 */
#define MH_HOST_HAS(host, field) \
    ((host)->struct_size >= offsetof(struct mh_host, field) + sizeof((host)->field) && (host)->field != NULL)

/**
 * Read a value the instance stored with mh_state_put() for its account (keys
 * are private to the account: e.g. "folder:INBOX" -> "uv=17 next=4021 ms=99").
 * Values survive restarts; they are removed with the account.
 */
static inline int mh_state_get(struct mh_plugin_ctx *ctx, const char *key, mh_state_cb cb, void *arg)
{
    if (!MH_HOST_HAS(ctx->host, state_get))
        return MH_ENOTSUP;
    return ctx->host->state_get(ctx, key, cb, arg);
}
/** Store (value NULL: delete) a value for the account.  Key: 1..200 bytes; value: up to 1 MiB. */
static inline int mh_state_put(struct mh_plugin_ctx *ctx, const char *key, const char *value,
                               mh_done_cb cb, void *arg)
{
    if (!MH_HOST_HAS(ctx->host, state_put))
        return MH_ENOTSUP;
    return ctx->host->state_put(ctx, key, value, cb, arg);
}
/**
 * Mirror the source's flags (space-separated IMAP flags; "" for none) on the
 * message source_id of `folder`; its modseq grows when they change.
 * MH_ENOTFOUND in cb when it is not stored there.
 */
static inline int mh_store_set_flags(struct mh_plugin_ctx *ctx, const char *folder, const char *source_id,
                                     const char *flags, mh_done_cb cb, void *arg)
{
    if (!MH_HOST_HAS(ctx->host, store_set_flags))
        return MH_ENOTSUP;
    return ctx->host->store_set_flags(ctx, folder, source_id, flags, cb, arg);
}
/**
 * The message source_id of `folder` was removed at the source (IMAP EXPUNGE,
 * POP3 UIDL gone).  The hub keeps its copy (mail is kept permanently) and
 * marks it; the mark shows in the API.  MH_ENOTFOUND in cb when it is not
 * stored there.
 */
static inline int mh_store_mark_gone(struct mh_plugin_ctx *ctx, const char *folder, const char *source_id,
                                     mh_done_cb cb, void *arg)
{
    if (!MH_HOST_HAS(ctx->host, store_mark_gone))
        return MH_ENOTSUP;
    return ctx->host->store_mark_gone(ctx, folder, source_id, cb, arg);
}
/**
 * A folder was renamed at the source (new_name set: the stored folder and its
 * mail follow; MH_EEXIST in cb if new_name is stored already) or deleted
 * there (new_name NULL: the hub keeps the folder and its mail and marks it).
 */
static inline int mh_store_folder_change(struct mh_plugin_ctx *ctx, const char *folder,
                                         const char *new_name, mh_done_cb cb, void *arg)
{
    if (!MH_HOST_HAS(ctx->host, store_folder_change))
        return MH_ENOTSUP;
    return ctx->host->store_folder_change(ctx, folder, new_name, cb, arg);
}
/** List what the store holds for one folder of the account (e.g. to find expunges). */
static inline int mh_store_source_list(struct mh_plugin_ctx *ctx, const char *folder, mh_source_list_cb cb,
                                       void *arg)
{
    if (!MH_HOST_HAS(ctx->host, store_source_list))
        return MH_ENOTSUP;
    return ctx->host->store_source_list(ctx, folder, cb, arg);
}

/** Tell the core that a stop() which returned MH_PENDING has finished. */
static inline void mh_stopped(struct mh_plugin_ctx *ctx) { ctx->host->stopped(ctx); }

/** The daemon's data directory (absolute path). */
static inline const char *mh_data_dir(struct mh_plugin_ctx *ctx) { return ctx->host->data_dir(ctx); }

/**
 * Resolve a path from a plugin option: an absolute path is kept, a relative
 * one is taken relative to the daemon's data directory.
 * Ownership: the result is malloc'ed; free it with mh_free().  NULL on ENOMEM.
 */
static inline char *mh_data_path(struct mh_plugin_ctx *ctx, const char *path)
{
    if (path[0] == '/')
        return mh_strdup(path);
    const char *dir = mh_data_dir(ctx);
    size_t dl = strlen(dir), pl = strlen(path);
    char *full = (char *)malloc(dl + 1 + pl + 1);
    if (full == NULL)
        return NULL;
    memcpy(full, dir, dl);
    full[dl] = '/';
    memcpy(full + dl + 1, path, pl + 1);
    return full;
}

#ifdef __cplusplus
}
#endif
#endif /* MAILHUB_PLUGIN_H */

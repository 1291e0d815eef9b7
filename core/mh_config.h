/*
 * Configuration: YAML (libyaml) into a position-annotated tree, ${ENV}
 * substitution, and the daemon's schema.  The only file that includes yaml.h
 * is mh_config.c.
 */
#ifndef MH_CONFIG_H
#define MH_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <mailhub/plugin.h>

/* ------------------------------------------------------------ errors */

/** A list of formatted errors: "FILE:LINE:COL: KEYPATH: message". */
struct mh_cfg_errors {
    size_t n;
    char **msgs;
};
void mh_cfg_errors_add(struct mh_cfg_errors *e, const char *file, int line, int col, const char *keypath,
                       const char *fmt, ...) MH_PRINTF(6, 7);
void mh_cfg_errors_clear(struct mh_cfg_errors *e);
/**
 * User text made safe to quote in a message: control characters escaped
 * (\n, \xNN), cut to about 60 characters.  Ownership: malloc'ed.
 */
char *mh_cfg_printable(const char *s);

/* -------------------------------------------------------------- tree */

enum mh_cfg_type { MH_CFG_SCALAR = 1, MH_CFG_MAP = 2, MH_CFG_SEQ = 3 };

struct mh_cfg_node;
struct mh_cfg_pair {
    char *key;
    int line, col; /* of the key, 1-based */
    struct mh_cfg_node *value;
};
struct mh_cfg_node {
    enum mh_cfg_type type;
    int line, col;   /* 1-based position of the node's start */
    char *scalar;    /* SCALAR: the text, ${VAR} substituted; "" for an empty/null value */
    int quoted;      /* SCALAR: was quoted in the YAML */
    int is_null;     /* SCALAR: plain "", "~" or "null" */
    size_t n;        /* MAP: pairs; SEQ: items */
    struct mh_cfg_pair *pairs;
    struct mh_cfg_node **items;
    char *env_raw;   /* SCALAR: the text as written when ${VAR} was substituted, else NULL;
                        messages show this, never `scalar` (the value may be a secret) */
    int invalid;     /* SCALAR: an error was already reported for it (unset ${VAR}, alias):
                        checks skip it rather than report it again */
};

/**
 * Parse YAML text.  `file` names the source in errors.  ${NAME} in plain and
 * quoted scalars is replaced by the environment variable (an unset variable
 * is an error naming it and its position); `$${` gives a literal `${`.
 * Anchors/aliases, multiple documents, duplicate keys, non-scalar keys and
 * tags are errors.  A YAML syntax error gives its position.
 * Returns the root (a MAP; an empty document gives an empty MAP) or NULL with
 * errors added.
 */
struct mh_cfg_node *mh_cfg_parse(const char *file, const char *text, size_t len, struct mh_cfg_errors *errs);
struct mh_cfg_node *mh_cfg_parse_file(const char *path, struct mh_cfg_errors *errs);
void mh_cfg_node_free(struct mh_cfg_node **n);
/** The value of `key` in MAP `map`, or NULL. */
const struct mh_cfg_node *mh_cfg_get(const struct mh_cfg_node *map, const char *key);
const struct mh_cfg_pair *mh_cfg_get_pair(const struct mh_cfg_node *map, const char *key);

/* ------------------------------------------------------ daemon schema */

/** A named plugin instance: providers.NAME, notifiers.NAME or store. */
struct mh_instance_cfg {
    char *name;          /* instance name (the map key; "store" for the store) */
    char *plugin;        /* plugin name (module file name) */
    enum mh_plugin_kind kind;
    char *user;          /* providers: the hub user that owns this mailbox, or NULL */
    char **events;       /* notifiers: event type patterns ("mail.*"), NULL-terminated; NULL = all */
    const struct mh_cfg_node *options; /* borrowed from the tree: the `options:` map or NULL */
    int line, col;       /* position of the instance's key (0 for a store left to its default) */
    int options_line, options_col; /* of `options:`, else the instance's; for mh_opts_build_at() */
};

struct mh_listener_cfg {
    char *name;
    char *address;
    int port;
};

struct mh_quota_cfg {
    uint64_t initial;                /* default 30 MB */
    uint64_t extend_when_free_below; /* default 2 MB */
    uint64_t extend_by;              /* default 30 MB */
    uint64_t max;                    /* 0 = no maximum */
};

struct mh_daemon_config {
    char *file;                  /* absolute path of the file */
    struct mh_cfg_node *root;    /* owned */

    /* daemon: */
    char *data_dir;              /* absolute (relative paths resolve against the file's directory) */
    int log_level;               /* MH_LOG_* */
    int log_syslog;              /* log_target: syslog */
    unsigned workers;            /* worker threads, default 2 */
    int64_t shutdown_timeout_ms; /* default 10 s */
    char *pid_file;              /* NULL: none */
    char *ca_file;               /* tls_ca_file: extra CA bundle for every transfer, or NULL */
    int registration_open;       /* registration: open */
    uint64_t max_upload;         /* bytes, 0: no limit (default 10 GB) */
    char *public_url;            /* the API as seen from outside (no trailing /), or NULL */
    int notify_attempts;         /* the outbox: deliveries per notification before it is dead (10) */
    int64_t notify_retry_ms, notify_retry_max_ms; /* first and longest retry delay (1 s, 10 min) */
    int64_t notify_keep_ms;      /* delivered notifications are pruned after this (7 days) */

    /* listeners: NAME: {address, port} */
    struct mh_listener_cfg *listeners;
    size_t n_listeners;

    /* plugins: path: [...] (relative entries resolve against the file's directory) */
    char **plugin_path;
    size_t n_plugin_path;

    /* store: {plugin, options, quota} */
    struct mh_instance_cfg store;
    struct mh_quota_cfg quota;

    /* providers: NAME: {plugin, user, options}; notifiers: NAME: {plugin, events, options} */
    struct mh_instance_cfg *providers;
    size_t n_providers;
    struct mh_instance_cfg *notifiers;
    size_t n_notifiers;
};

/**
 * Load and validate the daemon's schema (everything except each instance's
 * `options:`, which is checked against the plugin's own table once the
 * plugin is loaded, with mh_opts_build()).  Returns NULL with errors added.
 */
struct mh_daemon_config *mh_config_load(const char *path, struct mh_cfg_errors *errs);
struct mh_daemon_config *mh_config_load_string(const char *file, const char *text, size_t len,
                                               struct mh_cfg_errors *errs);
void mh_config_free(struct mh_daemon_config **c);

#endif

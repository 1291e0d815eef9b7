/* The daemon: owns the loop, the plugins and their lifecycle, signals and reload. */
#ifndef MH_DAEMON_H
#define MH_DAEMON_H

#include <stddef.h>
#include <stdint.h>

struct mh_daemon;
struct mh_instance;
struct mh_outbox;
struct mh_loop;
struct mh_xfer;
struct mh_pool;
struct mh_bus;
struct mh_storeq;
struct mh_daemon_config;
struct mh_instance;

struct mh_daemon_opts {
    const char *config_path;
    const char *const *extra_plugin_path; /* prepended, NULL-terminated */
    int log_level_override;               /* -1: from the config */
    int log_target_override;              /* -1: from the config */
};

/**
 * Load and validate the configuration, load every plugin and validate every
 * instance's options; nothing is initialised unless everything is valid (the
 * daemon never starts half-configured).  Returns NULL after logging why.
 */
struct mh_daemon *mh_daemon_new(const struct mh_daemon_opts *opts);
/** Initialise and start everything, run until SIGTERM/SIGINT; returns the exit code. */
int mh_daemon_run(struct mh_daemon *d);
void mh_daemon_free(struct mh_daemon **d);

/** --check-config: full validation, printing errors to stderr.  Returns 0 if valid. */
int mh_daemon_check_config(const struct mh_daemon_opts *opts, int quiet);
/** --list-plugins */
int mh_daemon_list_plugins(const struct mh_daemon_opts *opts);
/** --plugin-help NAME */
int mh_daemon_plugin_help(const struct mh_daemon_opts *opts, const char *name);

/* Accessors for the host table. */
struct mh_loop *mh_daemon_loop(struct mh_daemon *d);
struct mh_xfer *mh_daemon_xfer(struct mh_daemon *d);
struct mh_pool *mh_daemon_pool(struct mh_daemon *d);
struct mh_bus *mh_daemon_bus(struct mh_daemon *d);
struct mh_storeq *mh_daemon_storeq(struct mh_daemon *d);
const char *mh_daemon_data_dir(struct mh_daemon *d);
/** An instance reports that its pending stop finished. */
void mh_daemon_instance_stopped(struct mh_daemon *d, struct mh_instance *inst);
/** A notifier job finished (rc as for send). */
/** The notifier instances (the outbox delivers to them by name). */
struct mh_instance *const *mh_daemon_notifiers(struct mh_daemon *d, size_t *n);
struct mh_outbox *mh_daemon_outbox(struct mh_daemon *d);
/** The key of delivery-report URLs (32 bytes), and daemon.public_url (NULL if unset). */
const unsigned char *mh_daemon_report_key(struct mh_daemon *d);
const char *mh_daemon_public_url(struct mh_daemon *d);


/* ---- hooks for the control API (loop thread) ---- */
struct json_t;
/**
 * Validate an account's provider settings (a JSON object) against the
 * provider plugin's option table and split them: *public_out gets the
 * non-secret options, *secret_out the MH_OPT_SECRET ones (NULL if none).
 * An optional "smtp" object ({host, port, security, login, password}) is
 * validated by the core and split the same way.  0, or -1 with a malloc'ed
 * *err naming the key ("settings.port: expected an integer in 1..65535").
 */
int mh_daemon_account_check(struct mh_daemon *d, const char *provider, const struct json_t *settings,
                            struct json_t **public_out, struct json_t **secret_out, char **err);
/**
 * An account was created, changed, paused, resumed or deleted (its record is
 * committed): start, restart or stop its provider instance to match.
 */
void mh_daemon_account_changed(struct mh_daemon *d, int64_t account_id);
/** The provider's progress (status_json) for a running account, malloc'ed JSON text, or NULL. */
char *mh_daemon_account_progress(struct mh_daemon *d, int64_t account_id);
/** Ask a running account's provider to sync now: MH_OK, MH_ENOTFOUND (not running), or its error. */
int mh_daemon_account_sync_now(struct mh_daemon *d, int64_t account_id);

#endif

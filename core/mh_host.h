/*
 * Plugin instances and the host function table the core hands to plugins.
 */
#ifndef MH_HOST_H
#define MH_HOST_H

#include <mailhub/plugin.h>

struct mh_daemon;
struct mh_module;
struct mh_opts;
struct mh_bus_sub;
struct mh_timer;

/** One YAML instance of a plugin.  Starts with the public context head. */
struct mh_instance {
    struct mh_plugin_ctx pub;
    struct mh_daemon *d;
    const struct mh_module *mod;
    enum mh_plugin_kind kind;
    char *name;    /* instance name */
    char *who;     /* "provider/NAME", used in every log line */
    char *user;    /* providers: the owning hub user */
    int64_t user_id, account_id; /* providers: the store's ids, once known (0: resolve by name) */
    int from_api;  /* providers: an account linked through the API (not mailhub.yaml) */
    char **events; /* notifiers: patterns, NULL-terminated, or NULL for all */
    struct mh_opts *opts;
    void *state;
    char *error;   /* last mh_set_error() text */
    int initialised, started, stopping, stopped;
    double stop_deadline;
    struct mh_bus_sub *sub;
    unsigned jobs_in_flight;
};

/* The user that owns a provider of mailhub.yaml without `user:` (the bootstrap administrator). */
#define MH_DEFAULT_USER "admin"

const struct mh_host *mh_host_table(void);

/** Create an instance (no plugin callback is called).  Ownership: opts is taken. */
struct mh_instance *mh_instance_new(struct mh_daemon *d, const struct mh_module *mod, const char *name,
                                    const char *user, char *const *events, struct mh_opts *opts);
/** Call the plugin's init; logs and returns its code. */
int mh_instance_init(struct mh_instance *inst);
int mh_instance_start(struct mh_instance *inst);
/**
 * Ask the instance to stop: returns 1 when it has stopped (or had nothing to
 * stop), 0 when the plugin finishes later (mh_stopped).
 */
int mh_instance_stop(struct mh_instance *inst);
/** Cancel every handle the instance still owns, call free, release everything. */
void mh_instance_free(struct mh_instance **inst);

#endif

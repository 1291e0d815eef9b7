/*
 * A mock of the daemon's host table for plugin unit tests.
 *
 * It records what a plugin does (log lines, events, stored messages), builds
 * struct mh_config values from "name", "value" pairs checked against the
 * plugin's option table, runs timers only when the test says so against a
 * clock the test advances, completes mh_store_put_message() only in
 * mock_host_run(), and can make a chosen store put fail.  Everything is
 * single-threaded: the test is the loop.
 *
 * One mock host serves one plugin instance (one struct mh_plugin_ctx).  It
 * owns a fresh temporary data directory, removed by mock_host_free() unless
 * MOCK_HOST_KEEP is set in the environment.  MOCK_HOST_VERBOSE=1 copies log
 * lines to stderr.
 */
#ifndef MH_MOCK_HOST_H
#define MH_MOCK_HOST_H

#include <stddef.h>
#include <stdint.h>
#include <mailhub/plugin.h>
#include <mailhub/notifier.h>
#include <mailhub/store.h>

struct mock_host;

/** A new mock for instance `instance` of plugin `plugin`.  Aborts on allocation failure. */
struct mock_host *mock_host_new(const char *instance, const char *plugin);
/** Free everything the mock owns (timers, queued puts, configs, jobs); sets *mh to NULL. */
void mock_host_free(struct mock_host **mh);

/** The instance context to pass to the plugin's init. */
struct mh_plugin_ctx *mock_host_ctx(struct mock_host *mh);
const struct mh_host *mock_host_table(struct mock_host *mh);
/** The data directory (absolute, created). */
const char *mock_host_data_dir(struct mock_host *mh);
/** The user a provider's message with user == NULL is filed under ("admin" by default). */
void mock_host_set_user(struct mock_host *mh, const char *user);

/* ------------------------------------------------------------ config */

/**
 * Build a config from `kv` ("name", "value", ..., NULL) against `table`, the
 * way the core would: unknown names, unparsable values, values out of range or
 * not among an enum's choices and missing required options are errors;
 * defaults are filled in.  STRLIST values are comma-separated.  Values of
 * MH_OPT_SECRET options are redacted from later log lines.
 * Returns NULL on error (see mock_host_config_error()).  Ownership: the mock's,
 * valid until mock_host_free().
 */
const struct mh_config *mock_host_config(struct mock_host *mh, const struct mh_option *table,
                                         const char *const *kv);
/** Why the last mock_host_config() failed, or NULL. */
const char *mock_host_config_error(const struct mock_host *mh);

/* ----------------------------------------------------------- logging */

/** Only lines at this level or more important are recorded (default MH_LOG_DEBUG). */
void mock_host_set_log_level(struct mock_host *mh, int level);
size_t mock_host_log_count(const struct mock_host *mh);
/** Line i as the plugin wrote it (after redaction), without the level. */
const char *mock_host_log_line(const struct mock_host *mh, size_t i);
int mock_host_log_line_level(const struct mock_host *mh, size_t i);
/** The first recorded line containing `needle`, or NULL. */
const char *mock_host_log_find(const struct mock_host *mh, const char *needle);
/** The last text given to mh_set_error(), or NULL. */
const char *mock_host_error(const struct mock_host *mh);
void mock_host_clear_error(struct mock_host *mh);

/* ------------------------------------------------------------ events */

struct mock_event {
    char *type;
    char *data; /* the data_json given to mh_event_emit */
};
size_t mock_host_event_count(const struct mock_host *mh);
const struct mock_event *mock_host_event(const struct mock_host *mh, size_t i);
/** How many events of `type` were emitted. */
size_t mock_host_event_count_type(const struct mock_host *mh, const char *type);
/** The n-th (0-based) event of `type`, or NULL. */
const struct mock_event *mock_host_event_find(const struct mock_host *mh, const char *type, size_t n);
/** Forget the recorded events. */
void mock_host_clear_events(struct mock_host *mh);

/* ---------------------------------------------------- clock and timers */

/** The mock clock (mh_now()); starts at a fixed time and moves only with mock_host_advance(). */
double mock_host_now(const struct mock_host *mh);
void mock_host_advance(struct mock_host *mh, double seconds);
/**
 * Run every timer due at the current mock time, including timers that
 * callbacks add with a due time not after it; a repeating timer fires at most
 * once per call.  Returns the number of callbacks run.
 */
size_t mock_host_run_timers(struct mock_host *mh);
/** Timers added and not deleted (one-shot timers that fired still count until deleted). */
size_t mock_host_timer_count(const struct mock_host *mh);
/** Release every timer and io watch, as the core does before a plugin's free. */
void mock_host_cancel_handles(struct mock_host *mh);

/* ------------------------------------------------------------- store */

struct mock_message {
    char *user;
    char *account;
    char *folder;
    char *source_id;
    char *flags;
    char *raw;
    size_t raw_len;
    int64_t internal_date;
    int64_t id;
};

/**
 * Complete the store puts queued so far (in order) and queued work items.
 * Returns how many completions ran.
 */
size_t mock_host_run(struct mock_host *mh);
/** Complete at most `max` of the queued store puts (oldest first).  Returns how many ran. */
size_t mock_host_run_puts(struct mock_host *mh, size_t max);
/**
 * Alternate mock_host_run() and mock_host_run_timers() until neither has
 * anything to do (the clock does not move).  Returns the total.
 */
size_t mock_host_run_all(struct mock_host *mh);
/** Store puts accepted and not yet completed. */
size_t mock_host_pending_puts(const struct mock_host *mh);
/** Total store puts accepted so far. */
size_t mock_host_put_count(const struct mock_host *mh);
/** Make the nth (1-based, counted over the mock's life) store put complete with rc. */
void mock_host_fail_put(struct mock_host *mh, size_t nth, int rc);
/** Messages stored in the in-memory store (duplicates are not stored twice). */
size_t mock_host_message_count(const struct mock_host *mh);
const struct mock_message *mock_host_message(const struct mock_host *mh, size_t i);

/* --------------------------------------------------------- lifecycle */

/** How many times the plugin called mh_stopped(). */
int mock_host_stopped_count(const struct mock_host *mh);

/* ---------------------------------------------------- notifier jobs */

/** A job to pass to a notifier's send (freed by mock_host_free). */
struct mh_job *mock_host_job_new(struct mock_host *mh);
/** 1 if mh_job_done() was called on `job`, with its rc and detail. */
int mock_host_job_done(const struct mh_job *job, int *rc_out, const char **detail_out);

/** Build a struct mh_event around an envelope (for notifier tests); strings are borrowed. */
struct mh_event mock_event_make(const char *id, const char *type, const char *json);

#endif

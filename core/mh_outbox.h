/*
 * The durable notification outbox.
 *
 * Every event a notifier instance subscribes to becomes a job in the store
 * (one per event and instance, keyed "<event id>/<instance>") before it is
 * sent, after the user's rules (mh_rules.h) have said whether to send it now,
 * hold it (quiet hours, rate limits: folded into one digest later) or drop
 * it.  A job is delivered at least once: it survives restarts and kill -9,
 * is retried with exponential backoff and jitter on transient failures, and
 * is dead-lettered after the last attempt or a permanent failure, from where
 * it can be replayed.
 */
#ifndef MH_OUTBOX_H
#define MH_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

struct mh_daemon;
struct mh_outbox;
struct mh_instance;
struct mh_job;

struct mh_outbox_cfg {
    int attempts;             /* deliveries before a job is dead */
    int64_t retry_ms, retry_max_ms;
    int64_t keep_ms;          /* delivered jobs are pruned after this */
};

/** Subscribe to the bus; jobs are queued from then on. */
struct mh_outbox *mh_outbox_new(struct mh_daemon *d, const struct mh_outbox_cfg *cfg);
/** Load the jobs a previous run left pending or held, and start sending (once notifiers are started). */
void mh_outbox_start(struct mh_outbox *ob);
/** Stop queueing and sending new attempts (shutdown); what is in flight finishes. */
void mh_outbox_stop(struct mh_outbox *ob);
/** Deliveries in flight (in a notifier's send, or awaiting its mh_job_done). */
unsigned mh_outbox_active(const struct mh_outbox *ob);
/** Jobs waiting in memory for their time (a retry, quiet hours, a rate limit). */
size_t mh_outbox_waiting(const struct mh_outbox *ob);
/** A notifier instance is going away: its deliveries in flight count as transient failures. */
void mh_outbox_instance_gone(struct mh_outbox *ob, struct mh_instance *inst);
void mh_outbox_free(struct mh_outbox **ob);

/** The token that authenticates delivery reports for one job: 32 hex digits (and a NUL). */
void mh_outbox_report_token(const unsigned char key[32], int64_t job_id, char out[33]);

/** The host's mh_job_done() and mh_job_retry_after(). */
void mh_outbox_job_done(struct mh_job *job, int rc, const char *detail);
void mh_outbox_job_retry_after(struct mh_job *job, double seconds);

/**
 * Replay a dead job now (the API): user_id > 0 restricts to that user's
 * jobs.  done(arg, rc): MH_OK (queued again), MH_ENOTFOUND, MH_EINVAL (the
 * job is not dead), or a store error.  Returns MH_PENDING or an error.
 */
int mh_outbox_replay(struct mh_outbox *ob, void *owner, int64_t user_id, int64_t job_id,
                     void (*done)(void *arg, int rc), void *arg);

#endif

/*
 * mailhub plugin SDK: notifier plugins (SMS, e-mail, webhook, log, ...).
 *
 * A notifier instance subscribes to events (the `events:` list of its YAML
 * instance; all events when absent) and delivers each one it is given.  The
 * core calls `send` once per event and instance; the notifier reports the
 * outcome with the return value or, for asynchronous delivery, with
 * mh_job_done().
 *
 * Mandatory: the descriptor's init and free, and `ops` pointing to a
 * struct mh_notifier_ops with `send`.
 */
#ifndef MAILHUB_NOTIFIER_H
#define MAILHUB_NOTIFIER_H

#include <mailhub/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * An event as delivered to a notifier.  Since 1.2 every delivery goes
 * through the core's durable outbox: it is delivered at least once (again
 * after a restart if it was not acknowledged), so deduplicate by `id`.
 * Ownership: borrowed for the duration of `send`; copy what you keep.
 */
struct mh_event {
    uint32_t struct_size;
    const char *id;     /* stable unique id: use it to deduplicate deliveries */
    const char *type;   /* "mail.received", "quota.extended", ... */
    int version;        /* the payload version of this type (docs/events.md) */
    const char *json;   /* the whole envelope, a JSON object, NUL-terminated */
    size_t json_len;
    const char *user;   /* the hub user the event concerns, or NULL */
    double time;        /* seconds since the epoch */
    /* since 1.2: */
    const char *phone;  /* the user's bound phone number (E.164) when the notification was queued, or NULL */
    const char *email;  /* the user's notification address, or NULL */
    int64_t job_id;     /* the outbox job delivering it (listed by the API; 0 if none) */
    int attempt;        /* 1 for the first delivery, 2 for the first retry, ... */
    const char *report_url; /* where the channel may report the final delivery (Kannel dlr-url): an
                               http(s) URL of the hub's API for this job, or NULL when the daemon has no
                               daemon.public_url.  Add `status=...` (and `answer=...`) as query
                               parameters; the report is recorded on the job. */
};

/**
 * One delivery of one event to one notifier instance.  Only the public head
 * is shown.  Ownership: the core's; valid until mh_job_done() is called.
 */
struct mh_job {
    uint32_t struct_size;
    const struct mh_host *host;
};

/** Notifier operations.  Fields are only appended. */
struct mh_notifier_ops {
    uint32_t struct_size; /* sizeof(struct mh_notifier_ops) */

    /**
     * Deliver `ev`.  Return MH_OK (delivered), MH_PENDING (call
     * mh_job_done(job, ...) exactly once later), MH_ERETRY (transient: the
     * core retries with backoff) or another negative code (permanent).
     * Mandatory.  Thread: loop; must not block.
     */
    int (*send)(void *state, const struct mh_event *ev, struct mh_job *job);
};

/**
 * Report the outcome of a send that returned MH_PENDING: rc as for send's
 * return value; `detail` (may be NULL) is a short text kept with the job,
 * e.g. "HTTP 503".  Ownership: detail is copied.  Thread: loop.
 */
static inline void mh_job_done(struct mh_job *job, int rc, const char *detail)
{
    job->host->job_done(job, rc, detail);
}

/**
 * Ask for the next attempt of a job that is about to fail with MH_ERETRY to
 * wait at least `seconds` (e.g. an HTTP Retry-After); call it before
 * mh_job_done() or before send returns.  Since 1.2 (no-op before).
 */
static inline void mh_job_retry_after(struct mh_job *job, double seconds)
{
    if (MH_HOST_HAS(job->host, job_retry_after))
        job->host->job_retry_after(job, seconds);
}

#ifdef __cplusplus
}
#endif
#endif /* MAILHUB_NOTIFIER_H */

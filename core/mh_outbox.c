/*
 * The durable notification outbox: see mh_outbox.h and docs/notifications.md.
 *
 * Threads: everything here runs on the loop, except the *_fn functions,
 * which run on the store lane (mh_storeq_call) and touch only their argument
 * and the store.
 */
#include "config.h"

#include "mh_outbox.h"
#include "mh_bus.h"
#include "mh_daemon.h"
#include "mh_host.h"
#include "mh_hub.h"
#include "mh_loader.h"
#include "mh_log.h"
#include "mh_loop.h"
#include "mh_rules.h"
#include "mh_storeq.h"
#include "mh_util.h"
#include "mh_crypto.h"

#include <jansson.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mailhub/notifier.h>
#include <mailhub/store.h>

#define WHO "outbox"
#define PRUNE_EVERY 3600.0
#define DIGEST_LIST_MAX 10

struct ojob {
    struct mh_job pub; /* handed to the notifier; first, so the core finds the job from it */
    struct mh_outbox *ob;
    int64_t id, user_id;
    char *key, *notifier, *type, *event, *event_id, *user, *phone, *email, *fold, *detail, *report_url;
    int attempts;
    int64_t next_at, created;
    int held;          /* waiting for a digest (quiet hours, rate limit) */
    int folding;       /* part of a digest being written */
    int sending;       /* in send, or awaiting mh_job_done */
    int in_send, done_in_send, done_rc;
    char *done_detail;
    double retry_after;
    struct mh_instance *inst;
    struct mh_event ev;
    struct ojob *next;
};

struct mh_outbox {
    struct mh_daemon *d;
    struct mh_loop *loop;
    struct mh_bus *bus;
    struct mh_storeq *q;
    struct mh_outbox_cfg cfg;
    struct mh_bus_sub *sub;
    struct ojob *jobs; /* in memory: waiting or sending */
    struct mh_timer *timer, *prune;
    unsigned active;
    int started, stopping;
};

static int64_t now_ms(struct mh_outbox *ob) { return (int64_t)(mh_loop_now(ob->loop) * 1000.0); }

static char *dup0(const char *s) { return s ? mh_xstrdup(s) : NULL; }

static void ojob_free(struct ojob *j)
{
    free(j->key);
    free(j->notifier);
    free(j->type);
    free(j->event);
    free(j->event_id);
    free(j->user);
    free(j->phone);
    free(j->email);
    free(j->fold);
    free(j->detail);
    free(j->done_detail);
    free(j->report_url);
    free(j);
}

static void unlink_job(struct mh_outbox *ob, struct ojob *j)
{
    for (struct ojob **p = &ob->jobs; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            j->next = NULL;
            return;
        }
}

/* Fill id and user from the envelope. */
static void parse_envelope(struct ojob *j)
{
    json_t *env = json_loads(j->event, 0, NULL);
    if (env) {
        const char *id = json_string_value(json_object_get(env, "id"));
        const char *user = json_string_value(json_object_get(env, "user"));
        if (id && j->event_id == NULL)
            j->event_id = mh_xstrdup(id);
        if (user && j->user == NULL)
            j->user = mh_xstrdup(user);
    }
    json_decref(env);
    if (j->event_id == NULL)
        j->event_id = mh_xstrdup(j->key);
}

/* An in-memory job from a record (store thread or loop). */
static struct ojob *ojob_from(const struct mh_job_rec *r)
{
    struct ojob *j = mh_xcalloc(1, sizeof *j);
    j->id = r->id;
    j->user_id = r->user_id;
    j->key = dup0(r->key);
    j->notifier = dup0(r->notifier);
    j->type = dup0(r->event_type);
    j->event = dup0(r->event);
    j->fold = dup0(r->fold);
    j->detail = dup0(r->detail);
    j->attempts = r->attempts;
    j->next_at = r->next_at;
    j->created = r->created;
    j->held = r->state && strcmp(r->state, "held") == 0;
    parse_envelope(j);
    return j;
}

/* ------------------------------------------------------- store work */

struct contact {
    int64_t id;
    char *phone, *email;
};

static int contact_cb(void *arg, const struct mh_user_rec *u)
{
    struct contact *c = arg;
    c->id = u->id;
    c->phone = dup0(u->phone);
    c->email = dup0(u->email);
    return 1;
}

struct upd {
    int64_t id;
    char *state, *fold, *detail;
    int attempts;
    int64_t next_at;
};

static void upd_free(void *arg)
{
    struct upd *u = arg;
    free(u->state);
    free(u->fold);
    free(u->detail);
    free(u);
}

static void upd_fn(struct mh_hub *hub, void *arg)
{
    struct upd *u = arg;
    const struct mh_store_ops *ops = mh_hub_ops(hub);
    struct mh_job_rec r = {.struct_size = sizeof r,
                           .id = u->id,
                           .state = u->state,
                           .attempts = u->attempts,
                           .next_at = u->next_at,
                           .fold = u->fold,
                           .detail = u->detail};
    int rc = ops->job_put(mh_hub_state(hub), &r);
    if (rc != MH_OK)
        mh_logf(MH_LOG_ERROR, WHO, "could not record notification #%" PRId64 " as %s (code %d)", u->id, u->state, rc);
}

static void upd_done(void *arg, int rc)
{
    struct upd *u = arg;
    if (rc != MH_OK)
        mh_logf(MH_LOG_ERROR, WHO, "the store did not commit the state of notification #%" PRId64 " (%s)", u->id,
                u->state);
    upd_free(u);
}

static void record(struct mh_outbox *ob, const struct ojob *j, const char *state)
{
    struct upd *u = mh_xcalloc(1, sizeof *u);
    u->id = j->id;
    u->state = mh_xstrdup(state);
    u->fold = dup0(j->fold);
    u->detail = dup0(j->detail);
    u->attempts = j->attempts;
    u->next_at = j->next_at;
    if (mh_storeq_call_release(ob->q, ob, upd_fn, upd_done, upd_free, u) != MH_PENDING)
        upd_free(u);
}

/* -------------------------------------------------------- scheduling */

static void send_job(struct mh_outbox *ob, struct ojob *j);
static void release_held(struct mh_outbox *ob, struct ojob *first);

static void timer_cb(struct mh_timer *t, void *arg);

static void reschedule(struct mh_outbox *ob)
{
    if (ob->stopping || !ob->started)
        return;
    int64_t next = INT64_MAX;
    for (struct ojob *j = ob->jobs; j; j = j->next)
        if (!j->sending && !j->folding && j->next_at < next)
            next = j->next_at;
    if (next == INT64_MAX) {
        if (ob->timer)
            mh_timer_stop(ob->timer);
        return;
    }
    double delay = (double)(next - now_ms(ob)) / 1000.0;
    if (delay < 0)
        delay = 0;
    if (ob->timer == NULL)
        ob->timer = mh_timer_new(ob->loop, ob, delay, 0, timer_cb, ob);
    else
        mh_timer_again(ob->timer, delay);
}

static void timer_cb(struct mh_timer *t, void *arg)
{
    (void)t;
    struct mh_outbox *ob = arg;
    int64_t now = now_ms(ob);
    /* one due job at a time: sending may change the list */
    for (int progress = 1; progress && !ob->stopping;) {
        progress = 0;
        for (struct ojob *j = ob->jobs; j; j = j->next) {
            if (j->sending || j->folding || j->next_at > now)
                continue;
            if (j->held)
                release_held(ob, j);
            else
                send_job(ob, j);
            progress = 1;
            break;
        }
    }
    reschedule(ob);
}

/* ----------------------------------------------------------- sending */

static struct mh_instance *notifier_named(struct mh_outbox *ob, const char *name, int *exists)
{
    size_t n = 0;
    struct mh_instance *const *v = mh_daemon_notifiers(ob->d, &n);
    *exists = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i] && strcmp(v[i]->name, name) == 0) {
            *exists = 1;
            return v[i]->started && !v[i]->stopping && !v[i]->stopped ? v[i] : NULL;
        }
    return NULL;
}

static void finish_attempt(struct ojob *j, int rc, const char *detail);

static void send_job(struct mh_outbox *ob, struct ojob *j)
{
    int exists = 0;
    struct mh_instance *inst = notifier_named(ob, j->notifier, &exists);
    if (inst == NULL) {
        if (!exists) {
            free(j->detail);
            j->detail = mh_asprintf("notifier %s is not configured", j->notifier);
            mh_logf(MH_LOG_ERROR, WHO, "notification #%" PRId64 " (%s): %s; dead-lettered", j->id, j->type,
                    j->detail);
            record(ob, j, "dead");
            unlink_job(ob, j);
            ojob_free(j);
        } else {
            j->next_at = now_ms(ob) + 1000; /* restarting: try again shortly */
        }
        return;
    }
    const struct mh_event_type *t = mh_event_type_find(j->type);
    const char *pub = mh_daemon_public_url(ob->d);
    if (pub != NULL && j->report_url == NULL && j->id > 0) {
        char tok[33];
        mh_outbox_report_token(mh_daemon_report_key(ob->d), j->id, tok);
        j->report_url = mh_asprintf("%s/api/v1/reports/%" PRId64 "?t=%s", pub, j->id, tok);
    }
    j->ev = (struct mh_event){.struct_size = sizeof j->ev,
                              .id = j->event_id,
                              .type = j->type,
                              .version = t ? t->version : 1,
                              .json = j->event,
                              .json_len = strlen(j->event),
                              .user = j->user,
                              .time = (double)j->created / 1000.0,
                              .phone = j->phone,
                              .email = j->email,
                              .job_id = j->id,
                              .attempt = j->attempts + 1,
                              .report_url = j->report_url};
    j->pub.struct_size = sizeof j->pub;
    j->pub.host = mh_host_table();
    j->ob = ob;
    j->inst = inst;
    j->attempts++;
    j->sending = 1;
    j->retry_after = 0;
    ob->active++;
    inst->jobs_in_flight++;
    j->in_send = 1;
    j->done_in_send = 0;
    const struct mh_notifier_ops *ops = inst->mod->desc.ops;
    int rc = ops->send(inst->state, &j->ev, &j->pub);
    j->in_send = 0;
    if (rc == MH_PENDING) {
        if (j->done_in_send)
            finish_attempt(j, j->done_rc, j->done_detail);
        return;
    }
    finish_attempt(j, rc, NULL);
}

static void finish_attempt(struct ojob *j, int rc, const char *detail_in)
{
    struct mh_outbox *ob = j->ob;
    struct mh_instance *inst = j->inst;
    char *detail = detail_in ? mh_xstrdup(detail_in) : NULL;
    if (detail == NULL && rc != MH_OK && inst && inst->error)
        detail = mh_xstrdup(inst->error);
    ob->active--;
    if (inst)
        inst->jobs_in_flight--;
    j->sending = 0;
    j->inst = NULL;
    free(j->detail);
    j->detail = detail;
    const char *who = inst ? inst->who : WHO;
    if (rc == MH_OK) {
        mh_logf(MH_LOG_DEBUG, who, "delivered %s %s (notification #%" PRId64 ", attempt %d)", j->type, j->event_id,
                j->id, j->attempts);
        j->next_at = now_ms(ob);
        record(ob, j, "delivered");
        unlink_job(ob, j);
        ojob_free(j);
        return;
    }
    const char *why = j->detail ? j->detail : "no reason given";
    if (rc == MH_ERETRY && j->attempts < ob->cfg.attempts) {
        double base = (double)ob->cfg.retry_ms * pow(2.0, j->attempts - 1);
        if (base > (double)ob->cfg.retry_max_ms)
            base = (double)ob->cfg.retry_max_ms;
        unsigned char r = 0;
        mh_random(&r, 1);
        double delay = base * (0.5 + r / 255.0); /* jitter: x0.5 .. x1.5 */
        if (j->retry_after * 1000.0 > delay)
            delay = j->retry_after * 1000.0;
        j->next_at = now_ms(ob) + (int64_t)delay;
        mh_logf(MH_LOG_WARN, who, "delivery of %s %s failed (%s); attempt %d of %d in %.1fs", j->type, j->event_id, why,
                j->attempts + 1, ob->cfg.attempts, delay / 1000.0);
        record(ob, j, "pending");
        reschedule(ob);
        return;
    }
    mh_logf(MH_LOG_ERROR, who, "delivery of %s %s failed %s: %s; dead-lettered as notification #%" PRId64
            " (replay: mailhubctl notifications replay %" PRId64 ")",
            j->type, j->event_id, rc == MH_ERETRY ? "after every attempt" : "permanently", why, j->id, j->id);
    record(ob, j, "dead");
    unlink_job(ob, j);
    ojob_free(j);
}

void mh_outbox_job_done(struct mh_job *job, int rc, const char *detail)
{
    struct ojob *j = (struct ojob *)job;
    if (!j->sending)
        return; /* its instance went away: already counted as failed */
    if (j->in_send) {
        j->done_in_send = 1;
        j->done_rc = rc == MH_PENDING ? MH_ERR : rc;
        free(j->done_detail);
        j->done_detail = dup0(detail);
        return;
    }
    finish_attempt(j, rc == MH_PENDING ? MH_ERR : rc, detail);
}

void mh_outbox_job_retry_after(struct mh_job *job, double seconds)
{
    struct ojob *j = (struct ojob *)job;
    if (seconds > 0 && seconds < 86400)
        j->retry_after = seconds;
}

void mh_outbox_instance_gone(struct mh_outbox *ob, struct mh_instance *inst)
{
    if (ob == NULL)
        return;
    for (struct ojob *j = ob->jobs, *next; j; j = next) {
        next = j->next;
        if (j->sending && j->inst == inst && !j->in_send)
            finish_attempt(j, MH_ERETRY, "the notifier was restarted during delivery");
    }
}

/* ------------------------------------------------- queueing an event */

struct plan {
    struct mh_outbox *ob;
    char *event_id, *type, *json, *user;
    char **names;
    size_t n_names;
    int64_t now;
    int rc;
    struct ojob *out; /* created jobs */
};

static void plan_free(void *arg)
{
    struct plan *p = arg;
    for (size_t i = 0; i < p->n_names; i++)
        free(p->names[i]);
    free(p->names);
    while (p->out) {
        struct ojob *j = p->out;
        p->out = j->next;
        ojob_free(j);
    }
    free(p->event_id);
    free(p->type);
    free(p->json);
    free(p->user);
    free(p);
}

struct window {
    const struct mh_store_ops *ops;
    void *st;
    int64_t user_id;
    const char *notifier;
};

static uint64_t sent_in_window(void *arg, int64_t since)
{
    struct window *w = arg;
    uint64_t n = 0;
    if (w->ops->job_count(w->st, w->user_id, w->notifier, since, &n) != MH_OK)
        return 0;
    return n;
}

static void plan_fn(struct mh_hub *hub, void *arg)
{
    struct plan *p = arg;
    const struct mh_store_ops *ops = mh_hub_ops(hub);
    void *st = mh_hub_state(hub);
    if (!MH_STORE_HAS(ops, job_put) || !MH_STORE_HAS(ops, user_pref_get)) {
        p->rc = MH_ENOTSUP;
        return;
    }
    struct contact c = {0};
    if (p->user)
        ops->user_get(st, 0, p->user, contact_cb, &c);
    struct mh_rules *rules = NULL;
    if (c.id > 0) {
        char *text = NULL, *err = NULL;
        if (ops->user_pref_get(st, c.id, "notify", &text) == 1) {
            rules = mh_rules_parse(text, &err);
            if (rules == NULL)
                mh_logf(MH_LOG_WARN, WHO, "user %s: the stored notification rules are invalid (%s); using the defaults",
                        p->user, err ? err : "?");
            free(err);
        }
        free(text);
    }
    if (rules == NULL) {
        char *err = NULL;
        rules = mh_rules_parse(NULL, &err);
        free(err);
    }
    json_t *env = json_loads(p->json, 0, NULL);
    json_t *data = json_object_get(env, "data");
    struct mh_rules_event rev = {.type = p->type,
                                 .account = json_string_value(json_object_get(data, "account")),
                                 .folder = json_string_value(json_object_get(data, "folder")),
                                 .from = json_string_value(json_object_get(data, "from"))};
    p->rc = MH_OK;
    for (size_t i = 0; i < p->n_names; i++) {
        int64_t until = 0;
        const char *why = "";
        struct window w = {ops, st, c.id, p->names[i]};
        enum mh_rules_verdict v = c.id > 0 ? mh_rules_decide(rules, p->names[i], &rev, p->now, sent_in_window, &w, &until, &why)
                                           : MH_RULES_SEND;
        if (v == MH_RULES_DROP) {
            mh_logf(MH_LOG_DEBUG, WHO, "%s %s not sent to %s: %s", p->type, p->event_id, p->names[i], why);
            continue;
        }
        char *key = mh_asprintf("%s/%s", p->event_id, p->names[i]);
        char *fold = v == MH_RULES_HOLD ? mh_asprintf("%" PRId64 "/%s/%s", c.id, p->names[i],
                                                      rev.account ? rev.account : p->type)
                                        : NULL;
        struct mh_job_rec r = {.struct_size = sizeof r,
                               .key = key,
                               .user_id = c.id,
                               .notifier = p->names[i],
                               .event_type = p->type,
                               .event = p->json,
                               .state = v == MH_RULES_HOLD ? "held" : "pending",
                               .next_at = v == MH_RULES_HOLD ? until : p->now,
                               .fold = fold,
                               .created = p->now,
                               .updated = p->now,
                               .detail = v == MH_RULES_HOLD ? why : NULL};
        int rc = ops->job_put(st, &r);
        if (rc == MH_OK) {
            struct ojob *j = ojob_from(&r);
            j->phone = dup0(c.phone);
            j->email = dup0(c.email);
            j->next = p->out;
            p->out = j;
            if (v == MH_RULES_HOLD)
                mh_logf(MH_LOG_INFO, WHO, "%s for %s held for %s for %llds (%s)", p->type, p->user, p->names[i],
                        (long long)((until - p->now) / 1000), why);
        } else if (rc != MH_EEXIST) {
            p->rc = rc;
        }
        free(key);
        free(fold);
    }
    json_decref(env);
    mh_rules_free(&rules);
    free(c.phone);
    free(c.email);
}

static void adopt(struct mh_outbox *ob, struct ojob **list)
{
    while (*list) {
        struct ojob *j = *list;
        *list = j->next;
        j->ob = ob;
        j->next = ob->jobs;
        ob->jobs = j;
    }
}

static void plan_done(void *arg, int rc)
{
    struct plan *p = arg;
    struct mh_outbox *ob = p->ob;
    if (rc != MH_OK || p->rc != MH_OK)
        mh_logf(MH_LOG_ERROR, WHO, "could not queue the notifications of %s %s (%s)", p->type, p->event_id,
                p->rc == MH_ENOTSUP ? "the store has no outbox: it predates SDK 1.2" : "the store failed");
    if (rc == MH_OK) {
        /* due now: sent at once, not after a timer hop */
        struct ojob *fresh = p->out;
        p->out = NULL;
        while (fresh) {
            struct ojob *j = fresh;
            fresh = j->next;
            j->ob = ob;
            j->next = ob->jobs;
            ob->jobs = j;
            if (!j->held && ob->started && !ob->stopping)
                send_job(ob, j);
        }
        reschedule(ob);
    }
    plan_free(p);
}

static void on_event(const struct mh_event *ev, void *arg)
{
    struct mh_outbox *ob = arg;
    if (ob->stopping)
        return;
    size_t n = 0;
    struct mh_instance *const *v = mh_daemon_notifiers(ob->d, &n);
    struct plan *p = mh_xcalloc(1, sizeof *p);
    p->names = mh_xcalloc(n + 1, sizeof *p->names);
    for (size_t i = 0; i < n; i++) {
        struct mh_instance *inst = v[i];
        if (inst == NULL || !inst->initialised)
            continue;
        int match = inst->events == NULL;
        for (char **e = inst->events; e && *e && !match; e++)
            match = mh_event_pattern_match(*e, ev->type);
        if (match)
            p->names[p->n_names++] = mh_xstrdup(inst->name);
    }
    if (p->n_names == 0) {
        plan_free(p);
        return;
    }
    p->ob = ob;
    p->event_id = mh_xstrdup(ev->id);
    p->type = mh_xstrdup(ev->type);
    p->json = mh_xstrdup(ev->json);
    p->user = dup0(ev->user);
    p->now = (int64_t)(ev->time * 1000.0);
    if (mh_storeq_call_release(ob->q, ob, plan_fn, plan_done, plan_free, p) != MH_PENDING) {
        mh_logf(MH_LOG_ERROR, WHO, "could not queue the notifications of %s %s", ev->type, ev->id);
        plan_free(p);
    }
}

/* ----------------------------------------------------------- digests */

struct digest {
    struct mh_outbox *ob;
    struct ojob **parts;
    size_t n;
    struct ojob *made; /* the digest job */
    int rc;
};

static void digest_free(void *arg)
{
    struct digest *g = arg;
    if (g->made)
        ojob_free(g->made);
    free(g->parts);
    free(g);
}

static void digest_fn(struct mh_hub *hub, void *arg)
{
    struct digest *g = arg;
    const struct mh_store_ops *ops = mh_hub_ops(hub);
    void *st = mh_hub_state(hub);
    struct ojob *d = g->made;
    struct mh_job_rec r = {.struct_size = sizeof r,
                           .key = d->key,
                           .user_id = d->user_id,
                           .notifier = d->notifier,
                           .event_type = d->type,
                           .event = d->event,
                           .state = "pending",
                           .next_at = d->next_at,
                           .created = d->created,
                           .updated = d->created};
    g->rc = ops->job_put(st, &r);
    if (g->rc == MH_EEXIST)
        g->rc = MH_OK;
    d->id = r.id;
    char *detail = mh_asprintf("folded into digest #%" PRId64, r.id);
    for (size_t i = 0; i < g->n && g->rc == MH_OK; i++) {
        struct mh_job_rec f = {.struct_size = sizeof f,
                               .id = g->parts[i]->id,
                               .state = "folded",
                               .attempts = g->parts[i]->attempts,
                               .next_at = g->parts[i]->next_at,
                               .fold = g->parts[i]->fold,
                               .detail = detail};
        g->rc = ops->job_put(st, &f);
    }
    free(detail);
}

static void digest_done(void *arg, int rc)
{
    struct digest *g = arg;
    struct mh_outbox *ob = g->ob;
    if (rc != MH_OK || g->rc != MH_OK) {
        mh_logf(MH_LOG_ERROR, WHO, "could not write a digest of %zu notifications; trying again in a minute", g->n);
        for (size_t i = 0; i < g->n; i++) {
            g->parts[i]->folding = 0;
            g->parts[i]->next_at = now_ms(ob) + 60000;
        }
    } else {
        for (size_t i = 0; i < g->n; i++) {
            unlink_job(ob, g->parts[i]);
            ojob_free(g->parts[i]);
        }
        struct ojob *d = g->made;
        g->made = NULL;
        d->ob = ob;
        d->next = ob->jobs;
        ob->jobs = d;
        mh_logf(MH_LOG_INFO, WHO, "%zu held notifications for %s sent as one digest (#%" PRId64 ")", g->n,
                d->user ? d->user : "-", d->id);
        if (!ob->stopping)
            send_job(ob, d);
    }
    reschedule(ob);
    digest_free(g);
}

/* "Alice Chen" from "Alice Chen <alice@x>", else the address */
static void display_name(const char *from, char *buf, size_t n)
{
    const char *lt = from ? strchr(from, '<') : NULL;
    if (lt && lt > from) {
        size_t len = (size_t)(lt - from);
        while (len && from[len - 1] == ' ')
            len--;
        if (len >= 2 && from[0] == '"' && from[len - 1] == '"') {
            from++;
            len -= 2;
        }
        snprintf(buf, n, "%.*s", (int)len, from);
    } else {
        snprintf(buf, n, "%s", from ? from : "");
    }
}

static void release_held(struct mh_outbox *ob, struct ojob *first)
{
    int64_t now = now_ms(ob);
    size_t n = 0;
    for (struct ojob *j = ob->jobs; j; j = j->next)
        if (j->held && !j->folding && !j->sending && j->next_at <= now + 1000 && j->fold && first->fold &&
            strcmp(j->fold, first->fold) == 0)
            n++;
    if (n <= 1 || strcmp(first->type, "mail.received") != 0) {
        /* alone (or not mail): sent as it is */
        first->held = 0;
        send_job(ob, first);
        return;
    }
    struct digest *g = mh_xcalloc(1, sizeof *g);
    g->ob = ob;
    g->parts = mh_xcalloc(n, sizeof *g->parts);
    for (struct ojob *j = ob->jobs; j; j = j->next)
        if (j->held && !j->folding && !j->sending && j->next_at <= now + 1000 && j->fold &&
            strcmp(j->fold, first->fold) == 0) {
            j->folding = 1;
            g->parts[g->n++] = j;
        }
    /* oldest first */
    for (size_t i = 1; i < g->n; i++)
        for (size_t k = i; k > 0 && g->parts[k - 1]->id > g->parts[k]->id; k--) {
            struct ojob *t = g->parts[k];
            g->parts[k] = g->parts[k - 1];
            g->parts[k - 1] = t;
        }
    json_t *list = json_array();
    const char *account = NULL, *folder = NULL;
    int same_folder = 1;
    char names[512] = "";
    size_t shown = 0;
    for (size_t i = 0; i < g->n; i++) {
        json_t *env = json_loads(g->parts[i]->event, 0, NULL);
        json_t *data = json_object_get(env, "data");
        const char *acc = json_string_value(json_object_get(data, "account"));
        const char *fol = json_string_value(json_object_get(data, "folder"));
        const char *from = json_string_value(json_object_get(data, "from"));
        const char *subj = json_string_value(json_object_get(data, "subject"));
        if (i == 0) {
            account = acc ? mh_xstrdup(acc) : NULL;
            folder = fol ? mh_xstrdup(fol) : NULL;
        } else if (fol == NULL || folder == NULL || strcmp(fol, folder) != 0) {
            same_folder = 0;
        }
        char name[128];
        display_name(from, name, sizeof name);
        if (name[0] && shown < 3 && !strstr(names, name)) {
            size_t len = strlen(names);
            snprintf(names + len, sizeof names - len, "%s%s", len ? ", " : "", name);
            shown++;
        }
        if (json_array_size(list) < DIGEST_LIST_MAX)
            json_array_append_new(list, json_pack("{ss ss}", "from", from ? from : "", "subject", subj ? subj : ""));
        json_decref(env);
    }
    char subject[96];
    snprintf(subject, sizeof subject, "%zu new messages", g->n);
    json_t *data = json_pack("{ss sI ss ss so}", "account", account ? account : "", "count", (json_int_t)g->n, "from",
                             names, "subject", subject, "messages", list);
    if (same_folder && folder)
        json_object_set_new(data, "folder", json_string(folder));
    json_object_set_new(data, "reason", json_string(first->detail ? first->detail : "held"));
    char *text = json_dumps(data, JSON_COMPACT);
    json_decref(data);
    char *id = NULL, *env = NULL;
    int rc = text ? mh_bus_envelope(ob->bus, "mail.digest", "core", first->user, text, &id, &env) : MH_ENOMEM;
    free(text);
    free((char *)account);
    free((char *)folder);
    if (rc != MH_OK) {
        mh_logf(MH_LOG_ERROR, WHO, "could not build a digest (code %d): sending the held notifications one by one", rc);
        for (size_t i = 0; i < g->n; i++) {
            g->parts[i]->folding = 0;
            g->parts[i]->held = 0;
        }
        free(g->parts);
        free(g);
        return;
    }
    struct ojob *d = mh_xcalloc(1, sizeof *d);
    d->key = mh_asprintf("%s/%s", id, first->notifier);
    d->event_id = id;
    d->event = env;
    d->type = mh_xstrdup("mail.digest");
    d->notifier = mh_xstrdup(first->notifier);
    d->user = dup0(first->user);
    d->user_id = first->user_id;
    d->phone = dup0(first->phone);
    d->email = dup0(first->email);
    d->created = now;
    d->next_at = now;
    g->made = d;
    if (mh_storeq_call_release(ob->q, ob, digest_fn, digest_done, digest_free, g) != MH_PENDING) {
        for (size_t i = 0; i < g->n; i++)
            g->parts[i]->folding = 0;
        digest_free(g);
    }
}

/* ------------------------------------------------- start-up, replay */

struct load {
    struct mh_outbox *ob;
    struct ojob *out;
    const struct mh_store_ops *ops;
    void *st;
    int rc;
    size_t n;
};

static void load_free(void *arg)
{
    struct load *l = arg;
    while (l->out) {
        struct ojob *j = l->out;
        l->out = j->next;
        ojob_free(j);
    }
    free(l);
}

static int load_cb(void *arg, const struct mh_job_rec *r)
{
    struct load *l = arg;
    struct ojob *j = ojob_from(r);
    if (r->user_id > 0) {
        struct contact c = {0};
        l->ops->user_get(l->st, r->user_id, NULL, contact_cb, &c);
        j->phone = c.phone; /* the number bound now */
        j->email = c.email;
    }
    j->next = l->out;
    l->out = j;
    l->n++;
    return 0;
}

static void load_fn(struct mh_hub *hub, void *arg)
{
    struct load *l = arg;
    l->ops = mh_hub_ops(hub);
    l->st = mh_hub_state(hub);
    if (!MH_STORE_HAS(l->ops, job_list)) {
        l->rc = MH_ENOTSUP;
        return;
    }
    static const char *const states[] = {"pending", "held"};
    for (size_t i = 0; i < 2 && l->rc == MH_OK; i++) {
        struct mh_job_query q = {.struct_size = sizeof q, .state = states[i]};
        l->rc = l->ops->job_list(l->st, &q, load_cb, l);
    }
}

static void load_done(void *arg, int rc)
{
    struct load *l = arg;
    struct mh_outbox *ob = l->ob;
    if (rc != MH_OK || l->rc != MH_OK) {
        if (l->rc == MH_ENOTSUP)
            mh_logf(MH_LOG_WARN, WHO, "the store has no outbox (it predates SDK 1.2): notifications are not sent");
        else
            mh_logf(MH_LOG_ERROR, WHO, "could not load the notifications left by the last run (code %d)",
                    l->rc ? l->rc : rc);
    } else if (l->n) {
        mh_logf(MH_LOG_INFO, WHO, "%zu notification(s) left by the last run: delivering them", l->n);
    }
    adopt(ob, &l->out);
    ob->started = 1;
    reschedule(ob);
    load_free(l);
}

struct replay {
    struct mh_outbox *ob;
    int64_t user_id, job_id;
    int rc;
    struct ojob *out;
    void (*done)(void *arg, int rc);
    void *arg;
    const struct mh_store_ops *ops;
    void *st;
};

static void replay_free(void *arg)
{
    struct replay *r = arg;
    if (r->out)
        ojob_free(r->out);
    free(r);
}

static int replay_cb(void *arg, const struct mh_job_rec *rec)
{
    struct replay *r = arg;
    if (r->user_id > 0 && rec->user_id != r->user_id)
        return 1; /* another user's: as if it did not exist */
    if (strcmp(rec->state, "dead") != 0) {
        r->rc = MH_EINVAL;
        return 1;
    }
    r->out = ojob_from(rec);
    if (rec->user_id > 0) {
        struct contact c = {0};
        r->ops->user_get(r->st, rec->user_id, NULL, contact_cb, &c);
        r->out->phone = c.phone;
        r->out->email = c.email;
    }
    return 1;
}

static void replay_fn(struct mh_hub *hub, void *arg)
{
    struct replay *r = arg;
    r->ops = mh_hub_ops(hub);
    r->st = mh_hub_state(hub);
    if (!MH_STORE_HAS(r->ops, job_list)) {
        r->rc = MH_ENOTSUP;
        return;
    }
    struct mh_job_query q = {.struct_size = sizeof q, .id = r->job_id};
    r->rc = MH_ENOTFOUND;
    int rc = r->ops->job_list(r->st, &q, replay_cb, r);
    if (rc != MH_OK) {
        r->rc = rc;
        return;
    }
    if (r->out == NULL)
        return;
    struct ojob *j = r->out;
    j->attempts = 0;
    j->held = 0;
    j->next_at = (int64_t)(mh_time_now() * 1000.0);
    free(j->detail);
    j->detail = mh_xstrdup("replayed");
    struct mh_job_rec u = {.struct_size = sizeof u,
                           .id = j->id,
                           .state = "pending",
                           .attempts = 0,
                           .next_at = j->next_at,
                           .fold = j->fold,
                           .detail = j->detail};
    r->rc = r->ops->job_put(r->st, &u);
}

static void replay_done(void *arg, int rc)
{
    struct replay *r = arg;
    struct mh_outbox *ob = r->ob;
    int res = rc != MH_OK ? rc : r->rc;
    if (res == MH_OK && r->out) {
        struct ojob *j = r->out;
        r->out = NULL;
        j->ob = ob;
        j->next = ob->jobs;
        ob->jobs = j;
        mh_logf(MH_LOG_INFO, WHO, "notification #%" PRId64 " (%s) replayed", j->id, j->type);
        if (ob->started && !ob->stopping)
            send_job(ob, j);
        reschedule(ob);
    }
    if (r->done)
        r->done(r->arg, res);
    replay_free(r);
}

int mh_outbox_replay(struct mh_outbox *ob, void *owner, int64_t user_id, int64_t job_id,
                     void (*done)(void *arg, int rc), void *arg)
{
    (void)owner;
    if (ob == NULL || job_id <= 0)
        return MH_EINVAL;
    struct replay *r = mh_xcalloc(1, sizeof *r);
    r->ob = ob;
    r->user_id = user_id;
    r->job_id = job_id;
    r->done = done;
    r->arg = arg;
    int rc = mh_storeq_call_release(ob->q, ob, replay_fn, replay_done, replay_free, r);
    if (rc != MH_PENDING)
        replay_free(r);
    return rc;
}

/* ------------------------------------------------------------ prune */

struct prune {
    int64_t before;
    uint64_t n;
    int rc;
};

static void prune_fn(struct mh_hub *hub, void *arg)
{
    struct prune *p = arg;
    const struct mh_store_ops *ops = mh_hub_ops(hub);
    p->rc = MH_STORE_HAS(ops, job_prune) ? ops->job_prune(mh_hub_state(hub), p->before, &p->n) : MH_ENOTSUP;
}

static void prune_done(void *arg, int rc)
{
    struct prune *p = arg;
    if (rc == MH_OK && p->rc == MH_OK && p->n)
        mh_logf(MH_LOG_INFO, WHO, "pruned %" PRIu64 " delivered notification(s)", p->n);
    free(p);
}

static void prune_cb(struct mh_timer *t, void *arg)
{
    (void)t;
    struct mh_outbox *ob = arg;
    struct prune *p = mh_xcalloc(1, sizeof *p);
    p->before = now_ms(ob) - ob->cfg.keep_ms;
    if (mh_storeq_call_release(ob->q, ob, prune_fn, prune_done, free, p) != MH_PENDING)
        free(p);
}

/* ------------------------------------------------------------ public */

void mh_outbox_report_token(const unsigned char key[32], int64_t job_id, char out[33])
{
    char msg[48];
    int n = snprintf(msg, sizeof msg, "report:%" PRId64, job_id);
    unsigned char mac[32];
    mh_hmac_sha256(key, 32, msg, (size_t)n, mac);
    mh_hex(mac, 16, out);
    out[32] = '\0';
}

struct mh_outbox *mh_outbox_new(struct mh_daemon *d, const struct mh_outbox_cfg *cfg)
{
    struct mh_outbox *ob = mh_xcalloc(1, sizeof *ob);
    ob->d = d;
    ob->loop = mh_daemon_loop(d);
    ob->bus = mh_daemon_bus(d);
    ob->q = mh_daemon_storeq(d);
    ob->cfg = *cfg;
    if (ob->cfg.attempts < 1)
        ob->cfg.attempts = 1;
    ob->sub = mh_bus_subscribe(ob->bus, NULL, on_event, ob);
    return ob;
}

void mh_outbox_start(struct mh_outbox *ob)
{
    struct load *l = mh_xcalloc(1, sizeof *l);
    l->ob = ob;
    if (mh_storeq_call_release(ob->q, ob, load_fn, load_done, load_free, l) != MH_PENDING) {
        load_free(l);
        ob->started = 1;
    }
    ob->prune = mh_timer_new(ob->loop, ob, 60.0, PRUNE_EVERY, prune_cb, ob);
}

void mh_outbox_stop(struct mh_outbox *ob)
{
    if (ob == NULL || ob->stopping)
        return;
    ob->stopping = 1;
    if (ob->timer)
        mh_timer_stop(ob->timer);
    size_t waiting = mh_outbox_waiting(ob);
    if (waiting)
        mh_logf(MH_LOG_INFO, WHO, "%zu notification(s) wait for their time; they stay in the outbox and are sent "
                "after the restart", waiting);
}

unsigned mh_outbox_active(const struct mh_outbox *ob) { return ob ? ob->active : 0; }

size_t mh_outbox_waiting(const struct mh_outbox *ob)
{
    size_t n = 0;
    for (const struct ojob *j = ob ? ob->jobs : NULL; j; j = j->next)
        n += !j->sending;
    return n;
}

void mh_outbox_free(struct mh_outbox **obp)
{
    struct mh_outbox *ob = obp ? *obp : NULL;
    if (ob == NULL)
        return;
    mh_bus_unsubscribe(&ob->sub);
    if (ob->q)
        mh_storeq_cancel_owner(ob->q, ob);
    mh_timer_free(&ob->timer);
    mh_timer_free(&ob->prune);
    while (ob->jobs) {
        struct ojob *j = ob->jobs;
        ob->jobs = j->next;
        ojob_free(j);
    }
    free(ob);
    *obp = NULL;
}

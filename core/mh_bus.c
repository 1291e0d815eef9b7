#include "config.h"

#include "mh_bus.h"
#include "mh_log.h"
#include "mh_loop.h"
#include "mh_util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The registry of event types.  Each payload is versioned independently; a
 * change that removes or renames a field bumps the version, adding optional
 * fields does not.  docs/events.md documents every field.
 */
static const char *const req_mail_received[] = {"account", "folder", "from", "subject", NULL};
static const char *const req_mail_digest[] = {"account", "count", "from", "subject", NULL};
static const char *const req_account[] = {"account", NULL};
static const char *const req_account_error[] = {"account", "error", NULL};
static const char *const req_quota_extended[] = {"allocation", "previous", "usage", NULL};
static const char *const req_quota_max[] = {"allocation", "usage", NULL};
static const char *const req_started[] = {"version", NULL};
static const char *const req_none[] = {NULL};
static const char *const req_reloaded[] = {"applied", "not_applied", NULL};

static const struct mh_event_type event_types[] = {
    {"mail.received", 1, "a linked mailbox received a new message", req_mail_received},
    {"mail.digest", 1, "several new messages held by quiet hours or a rate limit, in one notification", req_mail_digest},
    {"account.synced", 1, "a linked mailbox finished a sync pass", req_account},
    {"account.progress", 1, "progress of a long import", req_account},
    {"account.error", 1, "a linked mailbox failed; the hub retries", req_account_error},
    {"quota.extended", 1, "a user's allocation grew under the quota policy", req_quota_extended},
    {"quota.max_reached", 1, "a user's allocation is at its maximum: new mail stays on the source", req_quota_max},
    {"daemon.started", 1, "mailhubd started", req_started},
    {"daemon.stopping", 1, "mailhubd is shutting down", req_none},
    {"config.reloaded", 1, "the configuration was reloaded (SIGHUP)", req_reloaded},
    {NULL, 0, NULL, NULL},
};

const struct mh_event_type *mh_event_types(void) { return event_types; }

const struct mh_event_type *mh_event_type_find(const char *name)
{
    for (const struct mh_event_type *t = event_types; name && t->name; t++)
        if (strcmp(t->name, name) == 0)
            return t;
    return NULL;
}

int mh_event_pattern_match(const char *pattern, const char *type)
{
    if (pattern == NULL || type == NULL)
        return 0;
    if (strcmp(pattern, "*") == 0)
        return 1;
    size_t pl = strlen(pattern);
    if (pl >= 2 && strcmp(pattern + pl - 2, ".*") == 0)
        return strncmp(pattern, type, pl - 1) == 0;
    return strcmp(pattern, type) == 0;
}

struct mh_bus_sub {
    struct mh_bus *bus;
    char **patterns; /* NULL = all */
    mh_bus_cb cb;
    void *arg;
    int dead;
    struct mh_bus_sub *next;
};

struct queued {
    struct mh_event ev;
    char *id, *type, *json, *user;
    struct queued *next;
};

struct mh_bus {
    struct mh_loop *loop;
    struct mh_timer *kick;
    struct queued *head, *tail;
    size_t n_queued;
    struct mh_bus_sub *subs;
    int dispatching;
    uint64_t seq;
};

static void free_sub(struct mh_bus_sub *s)
{
    if (s->patterns)
        for (char **p = s->patterns; *p; p++)
            free(*p);
    free(s->patterns);
    free(s);
}

static void reap(struct mh_bus *bus)
{
    struct mh_bus_sub **pp = &bus->subs;
    while (*pp) {
        if ((*pp)->dead) {
            struct mh_bus_sub *d = *pp;
            *pp = d->next;
            free_sub(d);
        } else
            pp = &(*pp)->next;
    }
}

static void free_queued(struct queued *q)
{
    free(q->id);
    free(q->type);
    free(q->json);
    free(q->user);
    free(q);
}

static int sub_matches(const struct mh_bus_sub *s, const char *type)
{
    if (s->patterns == NULL)
        return 1;
    for (char **p = s->patterns; *p; p++)
        if (mh_event_pattern_match(*p, type))
            return 1;
    return 0;
}

size_t mh_bus_flush(struct mh_bus *bus)
{
    size_t n = 0;
    if (bus->dispatching)
        return 0; /* re-entered from a subscriber: the outer loop delivers what it queued */
    bus->dispatching = 1;
    while (bus->head) {
        struct queued *q = bus->head;
        bus->head = q->next;
        if (bus->head == NULL)
            bus->tail = NULL;
        bus->n_queued--;
        for (struct mh_bus_sub *s = bus->subs; s; s = s->next)
            if (!s->dead && sub_matches(s, q->type))
                s->cb(&q->ev, s->arg);
        free_queued(q);
        n++;
    }
    bus->dispatching = 0;
    reap(bus);
    return n;
}

static void kick_cb(struct mh_timer *t, void *arg)
{
    (void)t;
    mh_bus_flush(arg);
}

struct mh_bus *mh_bus_new(struct mh_loop *loop)
{
    struct mh_bus *bus = mh_xcalloc(1, sizeof *bus);
    bus->loop = loop;
    return bus;
}

void mh_bus_free(struct mh_bus **bp)
{
    struct mh_bus *bus = bp ? *bp : NULL;
    if (bus == NULL)
        return;
    mh_timer_free(&bus->kick);
    while (bus->head) {
        struct queued *q = bus->head;
        bus->head = q->next;
        free_queued(q);
    }
    for (struct mh_bus_sub *s = bus->subs; s; s = s->next)
        s->dead = 1;
    reap(bus);
    free(bus);
    *bp = NULL;
}

struct mh_bus_sub *mh_bus_subscribe(struct mh_bus *bus, const char *const *patterns, mh_bus_cb cb, void *arg)
{
    struct mh_bus_sub *s = mh_xcalloc(1, sizeof *s);
    s->bus = bus;
    s->cb = cb;
    s->arg = arg;
    if (patterns) {
        size_t n = 0;
        while (patterns[n])
            n++;
        s->patterns = mh_xcalloc(n + 1, sizeof *s->patterns);
        for (size_t i = 0; i < n; i++)
            s->patterns[i] = mh_xstrdup(patterns[i]);
    }
    /* append, so delivery order is subscription order */
    struct mh_bus_sub **pp = &bus->subs;
    while (*pp)
        pp = &(*pp)->next;
    *pp = s;
    return s;
}

void mh_bus_unsubscribe(struct mh_bus_sub **sp)
{
    struct mh_bus_sub *s = sp ? *sp : NULL;
    if (s == NULL)
        return;
    s->dead = 1;
    if (!s->bus->dispatching)
        reap(s->bus);
    *sp = NULL;
}

int mh_bus_envelope(struct mh_bus *bus, const char *type, const char *source, const char *user, const char *data_json,
                    char **id_out, char **json_out)
{
    *id_out = NULL;
    *json_out = NULL;
    const struct mh_event_type *t = mh_event_type_find(type);
    if (t == NULL) {
        mh_logf(MH_LOG_WARN, source ? source : "core", "refused to emit unknown event type '%s'",
                type ? type : "(null)");
        return MH_EINVAL;
    }
    json_error_t jerr;
    json_t *data = json_loads(data_json ? data_json : "{}", JSON_REJECT_DUPLICATES, &jerr);
    if (data == NULL || !json_is_object(data)) {
        mh_logf(MH_LOG_WARN, source ? source : "core", "refused to emit %s: data is not a JSON object (%s)", type,
                data ? "not an object" : jerr.text);
        json_decref(data);
        return MH_EINVAL;
    }
    for (const char *const *k = t->required; *k; k++) {
        if (json_object_get(data, *k) == NULL) {
            mh_logf(MH_LOG_WARN, source ? source : "core", "refused to emit %s: data lacks required field '%s'",
                    type, *k);
            json_decref(data);
            return MH_EINVAL;
        }
    }

    unsigned char rnd[8];
    if (mh_random(rnd, sizeof rnd) != 0)
        memset(rnd, 0, sizeof rnd);
    double now = mh_time_now();
    char id[64], ts[40];
    /* time-ordered prefix + sequence + randomness: unique and sortable */
    snprintf(id, sizeof id, "evt_%011llx%05llx%02x%02x%02x%02x%02x%02x%02x%02x",
             (unsigned long long)(now * 1000.0), (unsigned long long)(bus->seq++ & 0xfffff), rnd[0], rnd[1], rnd[2],
             rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    mh_time_rfc3339(now, ts, sizeof ts);

    json_t *env = json_object();
    json_object_set_new(env, "id", json_string(id));
    json_object_set_new(env, "type", json_string(type));
    json_object_set_new(env, "version", json_integer(t->version));
    json_object_set_new(env, "time", json_string(ts));
    json_object_set_new(env, "source", json_string(source ? source : "core"));
    json_object_set_new(env, "user", user ? json_string(user) : json_null());
    json_object_set_new(env, "data", data);
    char *json = json_dumps(env, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(env);
    if (json == NULL)
        return MH_ENOMEM;
    *id_out = mh_xstrdup(id);
    *json_out = json;
    return MH_OK;
}

int mh_bus_emit(struct mh_bus *bus, const char *type, const char *source, const char *user, const char *data_json,
                char **id_out)
{
    if (id_out)
        *id_out = NULL;
    char *id = NULL, *json = NULL;
    int rc = mh_bus_envelope(bus, type, source, user, data_json, &id, &json);
    if (rc != MH_OK)
        return rc;
    const struct mh_event_type *t = mh_event_type_find(type);
    double now = mh_time_now();

    struct queued *q = mh_xcalloc(1, sizeof *q);
    q->id = id;
    q->type = mh_xstrdup(type);
    q->json = json;
    q->user = mh_xstrdup(user);
    q->ev.struct_size = sizeof q->ev;
    q->ev.id = q->id;
    q->ev.type = q->type;
    q->ev.version = t->version;
    q->ev.json = q->json;
    q->ev.json_len = strlen(json);
    q->ev.user = q->user;
    q->ev.time = now;
    if (bus->tail)
        bus->tail->next = q;
    else
        bus->head = q;
    bus->tail = q;
    bus->n_queued++;
    if (id_out)
        *id_out = mh_xstrdup(id);

    if (bus->loop && !bus->dispatching) {
        if (bus->kick == NULL)
            bus->kick = mh_timer_new(bus->loop, bus, 0, 0, kick_cb, bus);
        else if (!mh_timer_active(bus->kick))
            mh_timer_again(bus->kick, 0);
    }
    mh_logf(MH_LOG_DEBUG, source ? source : "core", "event %s %s", type, id);
    return MH_OK;
}

size_t mh_bus_queued(struct mh_bus *bus) { return bus->n_queued; }

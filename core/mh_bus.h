/*
 * The internal event bus.  Events have a documented, versioned JSON form
 * (docs/events.md); they are queued and dispatched from the loop, never from
 * inside mh_bus_emit().
 */
#ifndef MH_BUS_H
#define MH_BUS_H

#include <mailhub/notifier.h>

struct mh_loop;
struct mh_bus;
struct mh_bus_sub;

/** A registered event type. */
struct mh_event_type {
    const char *name;        /* "mail.received" */
    int version;             /* payload version */
    const char *description;
    const char *const *required; /* required keys of `data`, NULL-terminated */
};
/** The registry, terminated by an entry with name == NULL. */
const struct mh_event_type *mh_event_types(void);
const struct mh_event_type *mh_event_type_find(const char *name);
/** 1 if `pattern` ("*", "mail.*", "mail.received") matches `type`. */
int mh_event_pattern_match(const char *pattern, const char *type);

typedef void (*mh_bus_cb)(const struct mh_event *ev, void *arg);

struct mh_bus *mh_bus_new(struct mh_loop *loop);
void mh_bus_free(struct mh_bus **bus);
/** Subscribe to the types matching any of `patterns` (NULL-terminated; NULL = all). */
struct mh_bus_sub *mh_bus_subscribe(struct mh_bus *bus, const char *const *patterns, mh_bus_cb cb, void *arg);
void mh_bus_unsubscribe(struct mh_bus_sub **sub);
/**
 * Queue an event.  `type` must be registered and `data_json` must be a JSON
 * object holding the type's required keys.  `source` is "provider/NAME",
 * "core", ...; `user` may be NULL.  Returns MH_OK or MH_EINVAL.
 * If `id_out` is not NULL it receives a malloc'ed copy of the event id.
 */
int mh_bus_emit(struct mh_bus *bus, const char *type, const char *source, const char *user,
                const char *data_json, char **id_out);
/**
 * Build an event's envelope without queueing it (the outbox's digests):
 * MH_OK with *id_out and *json_out malloc'ed, or MH_EINVAL as for emit.
 */
int mh_bus_envelope(struct mh_bus *bus, const char *type, const char *source, const char *user, const char *data_json,
                    char **id_out, char **json_out);
/** Dispatch everything queued now (shutdown, tests).  Returns the number dispatched. */
size_t mh_bus_flush(struct mh_bus *bus);
size_t mh_bus_queued(struct mh_bus *bus);

#endif

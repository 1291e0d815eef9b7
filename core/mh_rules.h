/*
 * Per-user notification rules (docs/notifications.md): which channels hear of
 * which mail, VIP senders, quiet hours in the user's time zone, rate limits
 * per channel, muted accounts.  A pure function of the rules, the event and
 * the time, so that it is tested on its own; the outbox applies it.
 */
#ifndef MH_RULES_H
#define MH_RULES_H

#include <stddef.h>
#include <stdint.h>

struct mh_rules;

/**
 * Parse and validate a rules document (JSON text).  NULL or "" gives the
 * defaults (every channel, no quiet hours, no limits).  On error returns NULL
 * with *err_out a message naming the key, e.g. "quiet_hours.start: expected
 * HH:MM or HH:MM:SS, got \"25:00\"" (malloc'ed).
 */
struct mh_rules *mh_rules_parse(const char *json, char **err_out);
void mh_rules_free(struct mh_rules **r);

/** What the rules say about one event for one channel (notifier instance). */
struct mh_rules_event {
    const char *type;    /* "mail.received", ... */
    const char *account; /* mail.received: the account's name, else NULL */
    const char *folder;
    const char *from;    /* "Alice <alice@corp.example>" */
};

enum mh_rules_verdict {
    MH_RULES_SEND,  /* deliver now */
    MH_RULES_HOLD,  /* hold until *until_ms, then deliver as part of a digest (fold key) */
    MH_RULES_DROP,  /* muted or not for this channel: no job at all */
};

/**
 * Decide for `channel` at time now_ms.  sent_in_window(arg, since_ms) must
 * return how many notifications this channel already has for the user since
 * since_ms (it is only called when a rate limit applies).  *why_out names the
 * rule that held or dropped it (static text).
 */
enum mh_rules_verdict mh_rules_decide(const struct mh_rules *r, const char *channel, const struct mh_rules_event *ev,
                                      int64_t now_ms, uint64_t (*sent_in_window)(void *arg, int64_t since_ms),
                                      void *arg, int64_t *until_ms, const char **why_out);

/** The rules' time zone name ("UTC" by default). */
const char *mh_rules_timezone(const struct mh_rules *r);

#endif

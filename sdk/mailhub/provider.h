/*
 * mailhub plugin SDK: provider plugins (IMAP, POP3, JMAP, Graph, mbox, ...).
 *
 * A provider fetches mail from one linked source mailbox (one YAML instance),
 * hands every message to the store with mh_store_put_message(), and emits
 * events (mail.received, account.synced, account.error, see docs/events.md).
 * It never changes or deletes anything on the source unless the user asks.
 *
 * Mandatory: the descriptor's init, free and start, and `ops` pointing to a
 * struct mh_provider_ops with a valid struct_size.
 */
#ifndef MAILHUB_PROVIDER_H
#define MAILHUB_PROVIDER_H

#include <mailhub/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Provider operations.  Fields are only appended. */
struct mh_provider_ops {
    uint32_t struct_size; /* sizeof(struct mh_provider_ops) */

    /**
     * Start a sync now (the user asked for it, or the core learned of new
     * mail).  Optional.  Return MH_OK (started or already running) or a
     * negative code.  Thread: loop.
     */
    int (*sync_now)(void *state);

    /**
     * Describe progress as a JSON object, for the API and CLI, e.g.
     * {"state":"importing","done":1200,"total":5000,"rate":850.0}.
     * Optional.  Ownership: *json_out is malloc'ed by the plugin and freed by
     * the core.  Thread: loop.
     */
    int (*status_json)(void *state, char **json_out);
};

#ifdef __cplusplus
}
#endif
#endif /* MAILHUB_PROVIDER_H */

/*
 * hello: the smallest useful mailhub plugin.  A notifier that counts the
 * events it is given and logs one line for each.  It builds against the
 * installed SDK alone (see README.md); everything it needs from the daemon
 * comes through the host table behind mh_log() and friends.
 */
#define _POSIX_C_SOURCE 200809L /* plugin.h's mh_strdup() uses strdup(), hidden by -std=c11 */
#include <mailhub/plugin.h>
#include <mailhub/notifier.h>

/* All mutable state lives here, one per configured instance. */
struct hello {
    struct mh_plugin_ctx *ctx;
    char *greeting;
    unsigned long long events;
};

static const struct mh_option hello_options[] = {
    {"greeting", MH_OPT_STR, "hello", 0, "word logged before each event", NULL, 0, 0},
    MH_OPT_TABLE_END,
};

static int hello_init(struct mh_plugin_ctx *ctx, const struct mh_config *cfg, void **state_out)
{
    struct hello *h = mh_calloc(1, sizeof *h);
    if (h == NULL)
        return MH_ENOMEM;
    h->ctx = ctx;
    /* cfg is only valid during init: keep a copy of what we need. */
    h->greeting = mh_strdup(mh_cfg_str(cfg, "greeting"));
    if (h->greeting == NULL) {
        mh_free(h);
        return MH_ENOMEM;
    }
    *state_out = h;
    return MH_OK;
}

static int hello_send(void *state, const struct mh_event *ev, struct mh_job *job)
{
    struct hello *h = state;
    (void)job; /* delivered synchronously: no need for mh_job_done() */
    h->events++;
    mh_log_info(h->ctx, "%s: event #%llu %s (%s)", h->greeting, h->events, ev->type, ev->id ? ev->id : "-");
    return MH_OK;
}

static void hello_free(void *state)
{
    struct hello *h = state;
    if (h == NULL)
        return;
    mh_log_info(h->ctx, "saw %llu events", h->events);
    mh_free(h->greeting);
    mh_free(h);
}

static const struct mh_notifier_ops hello_ops = {
    .struct_size = sizeof(struct mh_notifier_ops),
    .send = hello_send,
};

MH_PLUGIN_DEFINE(hello, .kind = MH_KIND_NOTIFIER, .name = "hello", .version = "1.0.0",
                 .description = "log one line per event (SDK example)", .options = hello_options,
                 .init = hello_init, .free = hello_free, .ops = &hello_ops);

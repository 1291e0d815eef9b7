/*
 * Loader test module: a well-formed notifier with options.  Its init logs the
 * secret `token` on purpose, so a test can check that the core redacts it.
 */
#define _POSIX_C_SOURCE 200809L /* plugin.h's mh_strdup() uses strdup(), hidden by -std=c11 */
#include <mailhub/plugin.h>
#include <mailhub/notifier.h>

struct t_good {
    struct mh_plugin_ctx *ctx;
    char *greeting;
    int64_t count;
    int64_t sent; /* per-instance: two instances must count separately */
    int started;
};

static const struct mh_option t_good_options[] = {
    {"greeting", MH_OPT_STR, "hi", 0, "text logged for each event", NULL, 0, 0},
    {"token", MH_OPT_STR, NULL, MH_OPT_REQUIRED | MH_OPT_SECRET, "a secret", NULL, 0, 0},
    {"count", MH_OPT_INT, "3", 0, "a number", NULL, 0, 1000},
    MH_OPT_TABLE_END,
};

static int t_good_init(struct mh_plugin_ctx *ctx, const struct mh_config *cfg, void **state_out)
{
    struct t_good *g = mh_calloc(1, sizeof *g);
    if (g == NULL)
        return MH_ENOMEM;
    g->ctx = ctx;
    g->greeting = mh_strdup(mh_cfg_str(cfg, "greeting"));
    g->count = mh_cfg_int(cfg, "count");
    /* Deliberately wrong: the core must replace the secret with "***". */
    mh_log_info(ctx, "init greeting=%s count=%lld token=%s", g->greeting ? g->greeting : "",
                (long long)g->count, mh_cfg_str(cfg, "token"));
    *state_out = g;
    return MH_OK;
}

static int t_good_start(void *state)
{
    struct t_good *g = state;
    g->started = 1;
    mh_log_info(g->ctx, "started");
    return MH_OK;
}

static int t_good_stop(void *state)
{
    struct t_good *g = state;
    g->started = 0;
    mh_log_info(g->ctx, "stopped after %lld events", (long long)g->sent);
    return MH_OK;
}

static void t_good_free(void *state)
{
    struct t_good *g = state;
    if (g == NULL)
        return;
    mh_free(g->greeting);
    mh_free(g);
}

static int t_good_send(void *state, const struct mh_event *ev, struct mh_job *job)
{
    struct t_good *g = state;
    (void)job;
    g->sent++;
    mh_log_info(g->ctx, "%s #%lld: %s", g->greeting ? g->greeting : "", (long long)g->sent, ev->type);
    return MH_OK;
}

static const struct mh_notifier_ops t_good_ops = {.struct_size = sizeof(struct mh_notifier_ops),
                                                  .send = t_good_send};

MH_PLUGIN_DEFINE(t_good, .kind = MH_KIND_NOTIFIER, .name = "t_good", .version = "0.0.1",
                 .description = "loader test: a good notifier", .options = t_good_options,
                 .init = t_good_init, .start = t_good_start, .stop = t_good_stop, .free = t_good_free,
                 .ops = &t_good_ops);

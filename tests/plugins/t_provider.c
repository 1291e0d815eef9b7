/*
 * Loader test module: a provider whose start() emits one account.synced and
 * stores one message, to exercise the host's event bus and store path.
 */
#define _POSIX_C_SOURCE 200809L /* plugin.h's mh_strdup() uses strdup(), hidden by -std=c11 */
#include <stdio.h>

#include <mailhub/plugin.h>
#include <mailhub/provider.h>

struct t_provider {
    struct mh_plugin_ctx *ctx;
    int stored; /* 1 stored, 2 duplicate, < 0 the failure */
    int pending;
    int stopping;
};

static const char t_provider_raw[] = "From: a@example.org\r\n"
                                     "To: b@example.org\r\n"
                                     "Subject: t_provider\r\n"
                                     "Message-ID: <t_provider@example.org>\r\n"
                                     "\r\n"
                                     "hello\r\n";

static int t_provider_init(struct mh_plugin_ctx *ctx, const struct mh_config *cfg, void **state_out)
{
    (void)cfg;
    struct t_provider *p = mh_calloc(1, sizeof *p);
    if (p == NULL)
        return MH_ENOMEM;
    p->ctx = ctx;
    *state_out = p;
    return MH_OK;
}

static void t_provider_stored(void *arg, int rc, const struct mh_message_ref *ref)
{
    struct t_provider *p = arg;
    p->pending = 0;
    p->stored = rc != MH_OK ? rc : ref->duplicate ? 2 : 1;
    mh_log_info(p->ctx, "put completed: rc=%d id=%lld duplicate=%d", rc, ref ? (long long)ref->id : -1LL,
                ref ? ref->duplicate : 0);
    if (p->stopping)
        mh_stopped(p->ctx);
}

static int t_provider_start(void *state)
{
    struct t_provider *p = state;
    char data[256];
    snprintf(data, sizeof data,
             "{\"account\":\"%s\",\"folder\":\"INBOX\",\"messages\":0,\"new\":0,\"duplicates\":0}",
             p->ctx->instance);
    int rc = mh_event_emit(p->ctx, "account.synced", data);
    if (rc != MH_OK) {
        mh_set_error(p->ctx, "event_emit: %d", rc);
        return rc;
    }
    const struct mh_message m = {
        .struct_size = sizeof m,
        .folder = "INBOX",
        .source_id = "mid:<t_provider@example.org>:0",
        .raw = t_provider_raw,
        .raw_len = sizeof t_provider_raw - 1,
    };
    rc = mh_store_put_message(p->ctx, &m, t_provider_stored, p);
    if (rc < 0) {
        mh_set_error(p->ctx, "store_put_message: %d", rc);
        return rc;
    }
    p->pending = 1;
    return MH_OK;
}

static int t_provider_stop(void *state)
{
    struct t_provider *p = state;
    p->stopping = 1;
    return p->pending ? MH_PENDING : MH_OK;
}

static void t_provider_free(void *state)
{
    mh_free(state);
}

static int t_provider_status(void *state, char **json_out)
{
    struct t_provider *p = state;
    char buf[64];
    snprintf(buf, sizeof buf, "{\"state\":\"idle\",\"stored\":%d}", p->stored);
    *json_out = mh_strdup(buf);
    return *json_out ? MH_OK : MH_ENOMEM;
}

static const struct mh_provider_ops t_provider_ops = {.struct_size = sizeof(struct mh_provider_ops),
                                                      .status_json = t_provider_status};

MH_PLUGIN_DEFINE(t_provider, .kind = MH_KIND_PROVIDER, .name = "t_provider", .version = "0.0.1",
                 .description = "loader test: emits one event and stores one message",
                 .init = t_provider_init, .start = t_provider_start, .stop = t_provider_stop,
                 .free = t_provider_free, .ops = &t_provider_ops);

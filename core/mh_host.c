#include "config.h"

#include "mh_host.h"
#include "mh_hoststore.h"
#include "mh_outbox.h"
#include "mh_bus.h"
#include "mh_daemon.h"
#include "mh_loader.h"
#include "mh_log.h"
#include "mh_loop.h"
#include "mh_options.h"
#include "mh_pool.h"
#include "mh_storeq.h"
#include "mh_util.h"
#include "mh_xfer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mailhub/notifier.h>

static struct mh_instance *inst_of(struct mh_plugin_ctx *ctx) { return (struct mh_instance *)ctx; }

static void h_logv(struct mh_plugin_ctx *ctx, int level, const char *fmt, va_list ap)
{
    mh_vlogf(level, inst_of(ctx)->who, fmt, ap);
}

static int h_log_enabled(struct mh_plugin_ctx *ctx, int level)
{
    (void)ctx;
    return level <= mh_log_get_level();
}

static void h_set_error(struct mh_plugin_ctx *ctx, const char *fmt, va_list ap)
{
    struct mh_instance *inst = inst_of(ctx);
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap);
    free(inst->error);
    inst->error = mh_xstrdup(buf);
}

static struct mh_timer *h_timer_add(struct mh_plugin_ctx *ctx, double after, double repeat, mh_timer_cb cb, void *arg)
{
    struct mh_instance *inst = inst_of(ctx);
    return mh_timer_new(mh_daemon_loop(inst->d), inst, after, repeat, cb, arg);
}

static struct mh_io *h_io_add(struct mh_plugin_ctx *ctx, int fd, int events, mh_io_cb cb, void *arg)
{
    struct mh_instance *inst = inst_of(ctx);
    return mh_io_new(mh_daemon_loop(inst->d), inst, fd, events, cb, arg);
}

static double h_now(struct mh_plugin_ctx *ctx) { return mh_loop_now(mh_daemon_loop(inst_of(ctx)->d)); }

static int h_http_request(struct mh_plugin_ctx *ctx, const struct mh_http_request *req, mh_http_cb cb, void *arg,
                          struct mh_http **handle_out)
{
    struct mh_instance *inst = inst_of(ctx);
    if (req == NULL || req->struct_size < offsetof(struct mh_http_request, insecure_allow_private))
        return MH_EINVAL;
    return mh_xfer_http(mh_daemon_xfer(inst->d), inst, req, cb, arg, handle_out);
}

static struct mh_curl *h_curl_add_take(struct mh_plugin_ctx *ctx, void *easy, mh_curl_cb cb, void *arg)
{
    struct mh_instance *inst = inst_of(ctx);
    return mh_xfer_curl_add_take(mh_daemon_xfer(inst->d), inst, easy, cb, arg);
}

static int h_event_emit(struct mh_plugin_ctx *ctx, const char *type, const char *data_json)
{
    struct mh_instance *inst = inst_of(ctx);
    return mh_bus_emit(mh_daemon_bus(inst->d), type, inst->who, inst->user, data_json, NULL);
}

static int h_work_submit(struct mh_plugin_ctx *ctx, mh_work_fn fn, mh_work_done_cb done, void *arg)
{
    struct mh_instance *inst = inst_of(ctx);
    return mh_pool_submit(mh_daemon_pool(inst->d), inst, fn, done, arg);
}

static void h_job_done(struct mh_job *job, int rc, const char *detail)
{
    /* the job is the outbox's (see mh_outbox.c) */
    mh_outbox_job_done(job, rc, detail);
}

static int h_store_put_message(struct mh_plugin_ctx *ctx, const struct mh_message *msg, mh_store_cb cb, void *arg)
{
    struct mh_instance *inst = inst_of(ctx);
    struct mh_storeq *q = mh_daemon_storeq(inst->d);
    if (q == NULL || msg == NULL || msg->struct_size < offsetof(struct mh_message, internal_date))
        return MH_EINVAL;
    if (inst->stopped)
        return MH_ECANCELED;
    struct mh_message m = *msg;
    if (inst->from_api) {
        /* an account linked by a user files mail into that account only, whatever the plugin says */
        m.user = inst->user;
        m.account = inst->name;
        return mh_storeq_put(q, inst, inst->mod->name, inst->user_id, inst->account_id, &m, cb, arg);
    }
    if (m.user == NULL)
        m.user = inst->user ? inst->user : MH_DEFAULT_USER;
    if (m.account == NULL)
        m.account = inst->name;
    int same = strcmp(m.user, inst->user ? inst->user : MH_DEFAULT_USER) == 0 && strcmp(m.account, inst->name) == 0;
    return mh_storeq_put(q, inst, inst->mod->name, same ? inst->user_id : 0, same ? inst->account_id : 0, &m, cb, arg);
}

static void h_stopped(struct mh_plugin_ctx *ctx)
{
    struct mh_instance *inst = inst_of(ctx);
    mh_daemon_instance_stopped(inst->d, inst);
}

static const char *h_data_dir(struct mh_plugin_ctx *ctx) { return mh_daemon_data_dir(inst_of(ctx)->d); }

static const struct mh_host host_table = {
    .struct_size = sizeof(struct mh_host),
    .abi_version = MH_ABI_VERSION,
    .logv = h_logv,
    .log_enabled = h_log_enabled,
    .set_error = h_set_error,
    .cfg_str = mh_opts_str,
    .cfg_int = mh_opts_int,
    .cfg_bool = mh_opts_bool,
    .cfg_duration_ms = mh_opts_duration_ms,
    .cfg_size = mh_opts_size,
    .cfg_list_len = mh_opts_list_len,
    .cfg_list_item = mh_opts_list_item,
    .cfg_is_set = mh_opts_is_set,
    .timer_add = h_timer_add,
    .timer_del = mh_timer_free,
    .io_add = h_io_add,
    .io_set = mh_io_modify,
    .io_del = mh_io_free,
    .now = h_now,
    .http_request = h_http_request,
    .http_cancel = mh_xfer_http_cancel,
    .curl_add_take = h_curl_add_take,
    .curl_remove = mh_xfer_curl_remove,
    .curl_easy = mh_xfer_curl_easy,
    .event_emit = h_event_emit,
    .work_submit = h_work_submit,
    .job_done = h_job_done,
    .store_put_message = h_store_put_message,
    .stopped = h_stopped,
    .data_dir = h_data_dir,
    .state_get = mh_hs_state_get,
    .state_put = mh_hs_state_put,
    .store_set_flags = mh_hs_set_flags,
    .store_mark_gone = mh_hs_mark_gone,
    .store_folder_change = mh_hs_folder_change,
    .store_source_list = mh_hs_source_list,
    .job_retry_after = mh_outbox_job_retry_after,
};

const struct mh_host *mh_host_table(void) { return &host_table; }

static const char *kind_word(enum mh_plugin_kind k)
{
    return k == MH_KIND_PROVIDER ? "provider" : k == MH_KIND_NOTIFIER ? "notifier" : "store";
}

struct mh_instance *mh_instance_new(struct mh_daemon *d, const struct mh_module *mod, const char *name,
                                    const char *user, char *const *events, struct mh_opts *opts)
{
    struct mh_instance *inst = mh_xcalloc(1, sizeof *inst);
    inst->pub.struct_size = sizeof inst->pub;
    inst->pub.host = &host_table;
    inst->d = d;
    inst->mod = mod;
    inst->kind = mod->desc.kind;
    inst->name = mh_xstrdup(name);
    inst->who = mh_asprintf("%s/%s", kind_word(inst->kind), name);
    inst->user = user ? mh_xstrdup(user) : inst->kind == MH_KIND_PROVIDER ? mh_xstrdup(MH_DEFAULT_USER) : NULL;
    inst->pub.instance = inst->name;
    inst->pub.plugin = mod->name;
    inst->pub.user = inst->kind == MH_KIND_PROVIDER ? inst->user : NULL;
    if (events) {
        size_t n = 0;
        while (events[n])
            n++;
        inst->events = mh_xcalloc(n + 1, sizeof *inst->events);
        for (size_t i = 0; i < n; i++)
            inst->events[i] = mh_xstrdup(events[i]);
    }
    inst->opts = opts;
    return inst;
}

int mh_instance_init(struct mh_instance *inst)
{
    void *state = NULL;
    int rc = inst->mod->desc.init(&inst->pub, mh_opts_config(inst->opts), &state);
    if (rc != MH_OK) {
        mh_logf(MH_LOG_ERROR, inst->who, "initialisation failed: %s",
                inst->error ? inst->error : "the plugin gave no reason");
        if (state)
            mh_logf(MH_LOG_WARN, inst->who, "plugin returned state despite failing; it is leaked, not freed");
        return rc < 0 ? rc : MH_ERR;
    }
    inst->state = state;
    inst->initialised = 1;
    return MH_OK;
}

int mh_instance_start(struct mh_instance *inst)
{
    if (!inst->initialised || inst->started)
        return MH_OK;
    int rc = inst->mod->desc.start ? inst->mod->desc.start(inst->state) : MH_OK;
    if (rc < 0) {
        mh_logf(MH_LOG_ERROR, inst->who, "start failed: %s", inst->error ? inst->error : "no reason given");
        return rc;
    }
    inst->started = 1;
    mh_logf(MH_LOG_DEBUG, inst->who, "started (plugin %s %s)", inst->mod->name, inst->mod->desc.version);
    return MH_OK;
}

int mh_instance_stop(struct mh_instance *inst)
{
    if (inst->stopped)
        return 1;
    if (!inst->started || inst->mod->desc.stop == NULL) {
        inst->stopped = 1;
        return 1;
    }
    if (inst->stopping)
        return 0;
    inst->stopping = 1;
    int rc = inst->mod->desc.stop(inst->state);
    if (rc == MH_PENDING)
        return inst->stopped; /* mh_stopped() may already have been called from inside stop */
    if (rc < 0)
        mh_logf(MH_LOG_WARN, inst->who, "stop reported an error: %s", inst->error ? inst->error : "no reason");
    inst->stopped = 1;
    return 1;
}

void mh_instance_free(struct mh_instance **ip)
{
    struct mh_instance *inst = ip ? *ip : NULL;
    if (inst == NULL)
        return;
    struct mh_daemon *d = inst->d;
    inst->stopped = 1;
    /* handles belong to the core: cancel them before the plugin frees its state */
    if (d) {
        if (mh_daemon_xfer(d))
            mh_xfer_cancel_owner(mh_daemon_xfer(d), inst);
        if (mh_daemon_pool(d))
            mh_pool_cancel_owner(mh_daemon_pool(d), inst);
        if (mh_daemon_storeq(d))
            mh_storeq_cancel_owner(mh_daemon_storeq(d), inst);
        if (mh_daemon_loop(d))
            mh_loop_cancel_owner(mh_daemon_loop(d), inst);
    }
    if (inst->initialised)
        inst->mod->desc.free(inst->state);
    if (inst->events) {
        for (char **e = inst->events; *e; e++)
            free(*e);
        free(inst->events);
    }
    mh_opts_free(&inst->opts);
    free(inst->name);
    free(inst->who);
    free(inst->user);
    free(inst->error);
    free(inst);
    *ip = NULL;
}

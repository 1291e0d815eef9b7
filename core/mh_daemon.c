#include "config.h"

#include "mh_daemon.h"
#include "mh_api.h"
#include "mh_bus.h"
#include "mh_cfgjson.h"
#include "mh_crypto.h"
#include "mh_hub.h"
#include "mh_config.h"
#include "mh_host.h"
#include "mh_loader.h"
#include "mh_outbox.h"
#include "mh_log.h"
#include "mh_loop.h"
#include "mh_options.h"
#include "mh_pool.h"
#include "mh_storeq.h"
#include "mh_util.h"
#include "mh_xfer.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mailhub/notifier.h>
#include <mailhub/provider.h>
#include <mailhub/store.h>

#define SHUTDOWN_TICK 0.02

/* ------------------------------------------------------------ the plan */

/* A validated configuration with every plugin loaded and every option checked. */
struct plan_item {
    const struct mh_instance_cfg *icfg;
    const struct mh_module *mod;
    struct mh_opts *opts;
};

struct plan {
    struct mh_daemon_config *cfg;
    struct plan_item store;
    struct plan_item *providers, *notifiers;
    size_t n_providers, n_notifiers;
};

static void plan_free(struct plan **pp)
{
    struct plan *p = *pp;
    if (p == NULL)
        return;
    mh_opts_free(&p->store.opts);
    for (size_t i = 0; i < p->n_providers; i++)
        mh_opts_free(&p->providers[i].opts);
    for (size_t i = 0; i < p->n_notifiers; i++)
        mh_opts_free(&p->notifiers[i].opts);
    free(p->providers);
    free(p->notifiers);
    mh_config_free(&p->cfg);
    free(p);
    *pp = NULL;
}

static const char *kind_word(enum mh_plugin_kind k)
{
    return k == MH_KIND_PROVIDER ? "provider" : k == MH_KIND_NOTIFIER ? "notifier" : k == MH_KIND_STORE ? "store" : "?";
}

static const char *section_of(enum mh_plugin_kind k)
{
    return k == MH_KIND_PROVIDER ? "providers" : k == MH_KIND_NOTIFIER ? "notifiers" : "store";
}

static void check_event_patterns(const struct mh_daemon_config *cfg, const struct mh_instance_cfg *ic,
                                 struct mh_cfg_errors *errs)
{
    if (ic->events == NULL)
        return;
    const struct mh_event_type *types = mh_event_types();
    size_t nt = 0;
    while (types[nt].name)
        nt++;
    const char **names = mh_xcalloc(nt + 1, sizeof *names);
    for (size_t i = 0; i < nt; i++)
        names[i] = types[i].name;
    for (char **e = ic->events; *e; e++) {
        int ok = 0;
        for (size_t i = 0; i < nt && !ok; i++)
            ok = mh_event_pattern_match(*e, types[i].name);
        if (!ok) {
            char *kp = mh_asprintf("notifiers.%s.events", ic->name);
            const char *dym = mh_did_you_mean(*e, names);
            mh_cfg_errors_add(errs, cfg->file, ic->line, ic->col, kp,
                              "'%s' matches no event type%s%s%s (see docs/events.md)", *e,
                              dym ? "; did you mean '" : "", dym ? dym : "", dym ? "'?" : "");
            free(kp);
        }
    }
    free(names);
}

static int plan_item_build(struct mh_loader *loader, const struct mh_daemon_config *cfg,
                           const struct mh_instance_cfg *ic, enum mh_plugin_kind want, struct plan_item *out,
                           struct mh_cfg_errors *errs)
{
    out->icfg = ic;
    char *kp = want == MH_KIND_STORE ? mh_xstrdup("store.plugin") : mh_asprintf("%s.%s.plugin", section_of(want), ic->name);
    char *err = NULL;
    out->mod = mh_loader_open(loader, ic->plugin, &err);
    if (out->mod == NULL) {
        mh_cfg_errors_add(errs, cfg->file, ic->line, ic->col, kp, "%s", err);
        free(err);
        free(kp);
        return -1;
    }
    if (out->mod->desc.kind != want) {
        mh_cfg_errors_add(errs, cfg->file, ic->line, ic->col, kp, "plugin '%s' is a %s, not a %s", ic->plugin,
                          kind_word(out->mod->desc.kind), kind_word(want));
        out->mod = NULL;
        free(kp);
        return -1;
    }
    free(kp);
    kp = want == MH_KIND_STORE ? mh_xstrdup("store.options") : mh_asprintf("%s.%s.options", section_of(want), ic->name);
    int rc = mh_opts_build_at(out->mod->desc.options, ic->options, cfg->file, kp,
                           ic->options ? ic->options_line : ic->line, ic->options ? ic->options_col : ic->col,
                           mh_host_table(), &out->opts, errs);
    free(kp);
    return rc;
}

static struct plan *plan_build(struct mh_daemon_config *cfg, struct mh_loader *loader, struct mh_cfg_errors *errs)
{
    struct plan *p = mh_xcalloc(1, sizeof *p);
    p->cfg = cfg;
    int bad = 0;
    bad |= plan_item_build(loader, cfg, &cfg->store, MH_KIND_STORE, &p->store, errs) != 0;
    p->providers = mh_xcalloc(cfg->n_providers + 1, sizeof *p->providers);
    p->notifiers = mh_xcalloc(cfg->n_notifiers + 1, sizeof *p->notifiers);
    p->n_providers = cfg->n_providers;
    p->n_notifiers = cfg->n_notifiers;
    for (size_t i = 0; i < cfg->n_providers; i++)
        bad |= plan_item_build(loader, cfg, &cfg->providers[i], MH_KIND_PROVIDER, &p->providers[i], errs) != 0;
    for (size_t i = 0; i < cfg->n_notifiers; i++) {
        bad |= plan_item_build(loader, cfg, &cfg->notifiers[i], MH_KIND_NOTIFIER, &p->notifiers[i], errs) != 0;
        check_event_patterns(cfg, &cfg->notifiers[i], errs);
    }
    if (bad || errs->n) {
        p->cfg = NULL; /* the caller still owns cfg on failure */
        plan_free(&p);
        return NULL;
    }
    return p;
}

/* The plugin search path: --plugin-path entries, the config's, then the installed directory. */
static char **plugin_path(const struct mh_daemon_opts *o, const struct mh_daemon_config *cfg, size_t *n_out)
{
    size_t n = 0, cap = 8;
    char **v = mh_xcalloc(cap, sizeof *v);
#define PUSH(s)                                                                                                   \
    do {                                                                                                          \
        int dup_ = 0;                                                                                             \
        for (size_t k_ = 0; k_ < n; k_++)                                                                         \
            dup_ |= strcmp(v[k_], (s)) == 0;                                                                      \
        if (!dup_) {                                                                                              \
            if (n + 1 >= cap) {                                                                                   \
                cap *= 2;                                                                                         \
                char **nv_ = realloc(v, cap * sizeof *v);                                                         \
                if (nv_ == NULL)                                                                                  \
                    abort();                                                                                      \
                v = nv_;                                                                                          \
            }                                                                                                     \
            v[n++] = mh_xstrdup(s);                                                                               \
        }                                                                                                         \
    } while (0)
    if (o && o->extra_plugin_path)
        for (const char *const *e = o->extra_plugin_path; *e; e++)
            PUSH(*e);
    if (cfg)
        for (size_t i = 0; i < cfg->n_plugin_path; i++)
            PUSH(cfg->plugin_path[i]);
    PUSH(MH_PLUGINDIR);
#undef PUSH
    *n_out = n;
    return v;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void print_errors(const struct mh_cfg_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++)
        fprintf(stderr, "%s\n", errs->msgs[i]);
}

/* ------------------------------------------------------------ the daemon */


enum phase { RUNNING, STOP_PROVIDERS, DRAIN_NOTIFY, STOP_NOTIFIERS, DONE };

struct mh_daemon {
    struct mh_daemon_opts opts;
    char *config_path;
    struct plan *plan;
    char **ppath;
    size_t n_ppath;
    struct mh_loader *loader;
    struct mh_loop *loop;
    struct mh_xfer *xfer;
    struct mh_pool *pool;
    struct mh_bus *bus;
    struct mh_storeq *storeq;
    struct mh_instance *store;
    struct mh_instance **providers, **notifiers, **retiring;
    size_t n_providers, n_notifiers, n_retiring;
    struct mh_instance **accounts; /* providers of accounts linked through the API */
    size_t n_accounts;
    struct mh_api **apis;
    size_t n_apis;
    struct mh_outbox *outbox;
    unsigned char report_key[32]; /* authenticates delivery reports (derived from the master key) */
    struct mh_signal *sig_term, *sig_int, *sig_hup;
    struct mh_timer *tick;
    enum phase phase;
    double deadline;
    int exit_code;
    int pid_written;
};

struct mh_loop *mh_daemon_loop(struct mh_daemon *d) { return d->loop; }
struct mh_xfer *mh_daemon_xfer(struct mh_daemon *d) { return d->xfer; }
struct mh_pool *mh_daemon_pool(struct mh_daemon *d) { return d->pool; }
struct mh_bus *mh_daemon_bus(struct mh_daemon *d) { return d->bus; }
struct mh_storeq *mh_daemon_storeq(struct mh_daemon *d) { return d->storeq; }
const char *mh_daemon_data_dir(struct mh_daemon *d) { return d->plan->cfg->data_dir; }

static void apply_logging(const struct mh_daemon_opts *o, const struct mh_daemon_config *cfg)
{
    mh_log_set_level(o->log_level_override >= 0 ? o->log_level_override : cfg->log_level);
    int syslog_on = o->log_target_override >= 0 ? o->log_target_override == MH_LOGT_SYSLOG : cfg->log_syslog;
    mh_log_set_target(syslog_on ? MH_LOGT_SYSLOG : MH_LOGT_STDERR, "mailhubd");
}

static void register_secrets(const struct plan *p)
{
    mh_opts_register_secrets(p->store.opts);
    for (size_t i = 0; i < p->n_providers; i++)
        mh_opts_register_secrets(p->providers[i].opts);
    for (size_t i = 0; i < p->n_notifiers; i++)
        mh_opts_register_secrets(p->notifiers[i].opts);
}

/* Load config + plugins into a plan.  Returns NULL after printing/logging errors. */
static struct plan *load_plan(const struct mh_daemon_opts *o, struct mh_loader **loader_io, char ***ppath_out,
                              size_t *n_ppath_out, int to_stderr)
{
    struct mh_cfg_errors errs = {0};
    struct mh_daemon_config *cfg = mh_config_load(o->config_path, &errs);
    if (cfg == NULL)
        goto fail;
    if (*loader_io == NULL) {
        size_t n = 0;
        char **pp = plugin_path(o, cfg, &n);
        *loader_io = mh_loader_new((const char *const *)pp, n);
        if (ppath_out) {
            *ppath_out = pp;
            *n_ppath_out = n;
        } else
            free_strv(pp, n);
    }
    struct plan *p = plan_build(cfg, *loader_io, &errs);
    if (p == NULL) {
        mh_config_free(&cfg);
        goto fail;
    }
    return p;
fail:
    if (to_stderr)
        print_errors(&errs);
    else
        for (size_t i = 0; i < errs.n; i++)
            mh_logf(MH_LOG_ERROR, "core", "%s", errs.msgs[i]);
    mh_cfg_errors_clear(&errs);
    return NULL;
}

struct mh_daemon *mh_daemon_new(const struct mh_daemon_opts *o)
{
    struct mh_daemon *d = mh_xcalloc(1, sizeof *d);
    d->opts = *o;
    d->config_path = mh_xstrdup(o->config_path);
    d->opts.config_path = d->config_path;
    d->plan = load_plan(&d->opts, &d->loader, &d->ppath, &d->n_ppath, 1);
    if (d->plan == NULL) {
        fprintf(stderr, "mailhubd: %s: invalid configuration; not starting\n", o->config_path);
        mh_daemon_free(&d);
        return NULL;
    }
    struct mh_daemon_config *cfg = d->plan->cfg;
    apply_logging(o, cfg);
    register_secrets(d->plan);
    if (mh_mkdir_p(cfg->data_dir, 0700) != 0) {
        mh_core_error("cannot create the data directory %s: %s", cfg->data_dir, strerror(errno));
        mh_daemon_free(&d);
        return NULL;
    }
    d->loop = mh_loop_new();
    struct mh_xfer_opts xo = {.ca_file = cfg->ca_file};
    d->xfer = mh_xfer_new(d->loop, &xo);
    d->pool = mh_pool_new(d->loop, cfg->workers, "worker");
    d->bus = mh_bus_new(d->loop);
    if (d->loop == NULL || d->xfer == NULL || d->pool == NULL || d->bus == NULL) {
        mh_core_error("cannot set up the event loop");
        mh_daemon_free(&d);
        return NULL;
    }
    return d;
}

struct mh_instance *const *mh_daemon_notifiers(struct mh_daemon *d, size_t *n)
{
    *n = d->n_notifiers;
    return d->notifiers;
}

struct mh_outbox *mh_daemon_outbox(struct mh_daemon *d) { return d->outbox; }

const unsigned char *mh_daemon_report_key(struct mh_daemon *d) { return d->report_key; }

const char *mh_daemon_public_url(struct mh_daemon *d) { return d->plan ? d->plan->cfg->public_url : NULL; }

/* ----------------------------------------------------- instance set-up */

static struct mh_instance *make_instance(struct mh_daemon *d, struct plan_item *it)
{
    struct mh_instance *inst =
        mh_instance_new(d, it->mod, it->icfg->name, it->icfg->user, it->icfg->events, it->opts);
    it->opts = NULL; /* taken */
    return inst;
}

static void release_instance(struct mh_daemon *d, struct mh_instance **ip)
{
    struct mh_instance *inst = *ip;
    if (inst == NULL)
        return;
    mh_bus_unsubscribe(&inst->sub);
    if (inst->kind == MH_KIND_NOTIFIER)
        mh_outbox_instance_gone(d->outbox, inst);
    mh_instance_free(ip);
}

static int init_notifier(struct mh_daemon *d, struct mh_instance *inst)
{
    (void)d; /* events reach notifiers through the outbox (mh_outbox.c) */
    return mh_instance_init(inst) == MH_OK ? 0 : -1;
}

static const struct mh_quota_policy *policy_of(const struct mh_daemon_config *cfg, struct mh_quota_policy *p)
{
    p->initial = cfg->quota.initial;
    p->extend_when_free_below = cfg->quota.extend_when_free_below;
    p->extend_by = cfg->quota.extend_by;
    p->max = cfg->quota.max;
    return p;
}

static int write_pid_file(struct mh_daemon *d)
{
    const char *pf = d->plan->cfg->pid_file;
    if (pf == NULL)
        return 0;
    int fd = open(pf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        mh_core_error("cannot write the pid file %s: %s", pf, strerror(errno));
        return -1;
    }
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    int ok = write(fd, buf, (size_t)n) == n;
    close(fd);
    d->pid_written = ok;
    return ok ? 0 : -1;
}

/* ------------------------------------------------------------ shutdown */

static void begin_shutdown(struct mh_daemon *d, const char *why);

static int all_stopped(struct mh_instance **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] && !v[i]->stopped)
            return 0;
    return 1;
}

static void free_all(struct mh_daemon *d, struct mh_instance ***v, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        release_instance(d, &(*v)[i]);
    free(*v);
    *v = NULL;
    *n = 0;
}

static void reap_retiring(struct mh_daemon *d, int force)
{
    size_t k = 0;
    for (size_t i = 0; i < d->n_retiring; i++) {
        struct mh_instance *inst = d->retiring[i];
        if (force || inst->stopped || mh_loop_now(d->loop) > inst->stop_deadline) {
            if (!inst->stopped)
                mh_logf(MH_LOG_WARN, inst->who, "did not stop in time; cancelling what it still has in flight");
            release_instance(d, &inst);
        } else
            d->retiring[k++] = inst;
    }
    d->n_retiring = k;
}

static void finish(struct mh_daemon *d)
{
    mh_outbox_stop(d->outbox);
    for (size_t i = 0; i < d->n_apis; i++)
        mh_api_free(&d->apis[i]);
    free(d->apis);
    d->apis = NULL;
    d->n_apis = 0;
    free_all(d, &d->accounts, &d->n_accounts);
    free_all(d, &d->providers, &d->n_providers);
    mh_bus_flush(d->bus);
    free_all(d, &d->notifiers, &d->n_notifiers);
    reap_retiring(d, 1);
    /* before the lane: its completions for the outbox are released, not delivered */
    mh_outbox_free(&d->outbox);
    mh_storeq_free(&d->storeq);
    release_instance(d, &d->store);
    mh_timer_free(&d->tick);
    d->phase = DONE;
    mh_loop_break(d->loop);
}

static void tick_cb(struct mh_timer *t, void *arg)
{
    (void)t;
    struct mh_daemon *d = arg;
    reap_retiring(d, 0);
    if (d->phase == RUNNING) {
        if (d->n_retiring == 0)
            mh_timer_stop(d->tick);
        return;
    }
    if (mh_loop_now(d->loop) > d->deadline) {
        mh_core_warn("shutdown timeout reached: cancelling what is still in flight");
        finish(d);
        return;
    }
    if (d->phase == STOP_PROVIDERS) {
        if (!all_stopped(d->providers, d->n_providers) || !all_stopped(d->accounts, d->n_accounts) ||
            (d->storeq && mh_storeq_pending(d->storeq)))
            return;
        free_all(d, &d->accounts, &d->n_accounts);
        free_all(d, &d->providers, &d->n_providers);
        d->phase = DRAIN_NOTIFY;
    }
    if (d->phase == DRAIN_NOTIFY) {
        /* events still queued become jobs, and the deliveries in flight finish */
        if (mh_bus_flush(d->bus) > 0 || (d->storeq && mh_storeq_pending(d->storeq)) || mh_outbox_active(d->outbox))
            return;
        mh_outbox_stop(d->outbox);
        for (size_t i = 0; i < d->n_notifiers; i++)
            mh_instance_stop(d->notifiers[i]);
        d->phase = STOP_NOTIFIERS;
    }
    if (d->phase == STOP_NOTIFIERS) {
        if (!all_stopped(d->notifiers, d->n_notifiers))
            return;
        finish(d);
    }
}

static void begin_shutdown(struct mh_daemon *d, const char *why)
{
    if (d->phase != RUNNING) {
        mh_core_warn("%s again during shutdown: stopping now", why);
        finish(d);
        return;
    }
    mh_core_info("%s: shutting down (stop accepting work, finish what is in flight)", why);
    mh_bus_emit(d->bus, "daemon.stopping", "core", NULL, "{}", NULL);
    d->phase = STOP_PROVIDERS;
    d->deadline = mh_loop_now(d->loop) + (double)d->plan->cfg->shutdown_timeout_ms / 1000.0;
    /* no new requests; those in flight are answered 503 */
    for (size_t i = 0; i < d->n_apis; i++)
        mh_api_free(&d->apis[i]);
    d->n_apis = 0;
    for (size_t i = 0; i < d->n_accounts; i++)
        mh_instance_stop(d->accounts[i]);
    for (size_t i = 0; i < d->n_providers; i++)
        mh_instance_stop(d->providers[i]);
    if (d->tick == NULL)
        d->tick = mh_timer_new(d->loop, NULL, 0, SHUTDOWN_TICK, tick_cb, d);
    mh_timer_again(d->tick, 0);
}

void mh_daemon_instance_stopped(struct mh_daemon *d, struct mh_instance *inst)
{
    inst->stopped = 1;
    if (d->tick)
        mh_timer_again(d->tick, 0);
}

static void retire(struct mh_daemon *d, struct mh_instance *inst)
{
    if (mh_instance_stop(inst)) {
        release_instance(d, &inst);
        return;
    }
    inst->stop_deadline = mh_loop_now(d->loop) + (double)d->plan->cfg->shutdown_timeout_ms / 1000.0;
    struct mh_instance **nr = realloc(d->retiring, (d->n_retiring + 1) * sizeof *nr);
    if (nr == NULL)
        abort();
    d->retiring = nr;
    d->retiring[d->n_retiring++] = inst;
    if (d->tick == NULL)
        d->tick = mh_timer_new(d->loop, NULL, SHUTDOWN_TICK, SHUTDOWN_TICK, tick_cb, d);
    else
        mh_timer_again(d->tick, SHUTDOWN_TICK);
}

/* ------------------------------------------------------------ reload */

static int strv_equal(char *const *a, char *const *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    size_t i = 0;
    for (; a[i] && b[i]; i++)
        if (strcmp(a[i], b[i]) != 0)
            return 0;
    return a[i] == b[i];
}

static int str_equal(const char *a, const char *b)
{
    return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

static struct mh_instance *find_inst(struct mh_instance **v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] && strcmp(v[i]->name, name) == 0)
            return v[i];
    return NULL;
}

/* Rebuild one section (providers or notifiers) against the new plan. */
static void reload_section(struct mh_daemon *d, enum mh_plugin_kind kind, struct plan_item *items, size_t n_items,
                           json_t *applied, json_t *not_applied)
{
    struct mh_instance ***vp = kind == MH_KIND_PROVIDER ? &d->providers : &d->notifiers;
    size_t *np = kind == MH_KIND_PROVIDER ? &d->n_providers : &d->n_notifiers;
    const char *sect = section_of(kind);
    struct mh_instance **old = *vp;
    size_t n_old = *np;
    struct mh_instance **nv = mh_xcalloc(n_items + 1, sizeof *nv);
    size_t nn = 0;

    for (size_t i = 0; i < n_items; i++) {
        struct plan_item *it = &items[i];
        struct mh_instance *cur = find_inst(old, n_old, it->icfg->name);
        char *label = mh_asprintf("%s.%s", sect, it->icfg->name);
        if (cur && cur->mod == it->mod && str_equal(cur->user, it->icfg->user) &&
            strv_equal(cur->events, it->icfg->events) && mh_opts_equal(cur->opts, it->opts)) {
            /* unchanged; still offer reload, so a plugin can reopen files (log rotation) */
            if (cur->mod->desc.reload && cur->mod->desc.reload(cur->state, mh_opts_config(cur->opts)) != MH_OK)
                mh_logf(MH_LOG_WARN, cur->who, "reopen on SIGHUP failed: %s", cur->error ? cur->error : "no reason");
            nv[nn++] = cur;
            for (size_t k = 0; k < n_old; k++)
                if (old[k] == cur)
                    old[k] = NULL;
            free(label);
            continue;
        }
        if (cur && cur->mod == it->mod && str_equal(cur->user, it->icfg->user) &&
            strv_equal(cur->events, it->icfg->events) && cur->mod->desc.reload &&
            cur->mod->desc.reload(cur->state, mh_opts_config(it->opts)) == MH_OK) {
            mh_opts_free(&cur->opts);
            cur->opts = it->opts;
            it->opts = NULL;
            mh_opts_register_secrets(cur->opts);
            nv[nn++] = cur;
            for (size_t k = 0; k < n_old; k++)
                if (old[k] == cur)
                    old[k] = NULL;
            json_array_append_new(applied, json_sprintf("%s (reloaded in place)", label));
            free(label);
            continue;
        }
        /* new or changed: start a fresh instance; the old one (if any) retires */
        if (cur) {
            for (size_t k = 0; k < n_old; k++)
                if (old[k] == cur)
                    old[k] = NULL;
            retire(d, cur);
        }
        struct mh_instance *inst = make_instance(d, it);
        mh_opts_register_secrets(inst->opts);
        int ok = kind == MH_KIND_NOTIFIER ? init_notifier(d, inst) == 0 : mh_instance_init(inst) == MH_OK;
        if (ok && mh_instance_start(inst) == MH_OK) {
            nv[nn++] = inst;
            json_array_append_new(applied, json_sprintf("%s (%s)", label, cur ? "restarted" : "added"));
        } else {
            release_instance(d, &inst);
            json_array_append_new(not_applied, json_sprintf("%s (failed to start; see the log)", label));
        }
        free(label);
    }
    for (size_t k = 0; k < n_old; k++) {
        if (old[k] == NULL)
            continue;
        json_array_append_new(applied, json_sprintf("%s.%s (removed)", sect, old[k]->name));
        retire(d, old[k]);
    }
    free(old);
    *vp = nv;
    *np = nn;
}

static void reload(struct mh_daemon *d)
{
    if (d->phase != RUNNING)
        return;
    mh_core_info("SIGHUP: reloading %s", d->config_path);
    struct plan *np = load_plan(&d->opts, &d->loader, NULL, NULL, 0);
    if (np == NULL) {
        mh_core_error("reload failed: the configuration above is invalid; the running configuration is unchanged");
        return;
    }
    struct mh_daemon_config *oc = d->plan->cfg, *nc = np->cfg;
    json_t *applied = json_array(), *not_applied = json_array();

    apply_logging(&d->opts, nc);
    if (nc->log_level != oc->log_level || nc->log_syslog != oc->log_syslog)
        json_array_append_new(applied, json_string("daemon.log_level/log_target"));
    if (!str_equal(nc->data_dir, oc->data_dir))
        json_array_append_new(not_applied, json_string("daemon.data_dir (restart required)"));
    if (nc->workers != oc->workers)
        json_array_append_new(not_applied, json_string("daemon.workers (restart required)"));
    if (!str_equal(nc->pid_file, oc->pid_file))
        json_array_append_new(not_applied, json_string("daemon.pid_file (restart required)"));
    if (!str_equal(nc->ca_file, oc->ca_file))
        json_array_append_new(not_applied, json_string("daemon.tls_ca_file (restart required)"));
    if (nc->shutdown_timeout_ms != oc->shutdown_timeout_ms)
        json_array_append_new(applied, json_string("daemon.shutdown_timeout"));
    int lchanged = nc->n_listeners != oc->n_listeners;
    for (size_t i = 0; !lchanged && i < nc->n_listeners; i++)
        lchanged = !str_equal(nc->listeners[i].name, oc->listeners[i].name) ||
                   !str_equal(nc->listeners[i].address, oc->listeners[i].address) ||
                   nc->listeners[i].port != oc->listeners[i].port;
    if (lchanged)
        json_array_append_new(not_applied, json_string("listeners (restart required)"));
    int pchanged = nc->n_plugin_path != oc->n_plugin_path;
    for (size_t i = 0; !pchanged && i < nc->n_plugin_path; i++)
        pchanged = !str_equal(nc->plugin_path[i], oc->plugin_path[i]);
    if (pchanged)
        json_array_append_new(not_applied, json_string("plugins.path (restart required)"));
    if (np->store.mod != d->store->mod || !mh_opts_equal(np->store.opts, d->store->opts))
        json_array_append_new(not_applied, json_string("store.plugin/options (restart required)"));
    if (memcmp(&nc->quota, &oc->quota, sizeof nc->quota) != 0) {
        struct mh_quota_policy pol;
        mh_storeq_set_policy(d->storeq, policy_of(nc, &pol));
        json_array_append_new(applied, json_string("store.quota"));
    }
    register_secrets(np);
    reload_section(d, MH_KIND_NOTIFIER, np->notifiers, np->n_notifiers, applied, not_applied);
    reload_section(d, MH_KIND_PROVIDER, np->providers, np->n_providers, applied, not_applied);

    /* the new config becomes current; values that could not be applied keep running as before */
    if (!str_equal(nc->data_dir, oc->data_dir)) {
        free(nc->data_dir);
        nc->data_dir = mh_xstrdup(oc->data_dir);
    }
    nc->workers = oc->workers;
    plan_free(&d->plan);
    d->plan = np;

    char *a = json_dumps(applied, JSON_COMPACT), *na = json_dumps(not_applied, JSON_COMPACT);
    mh_core_info("reloaded: applied %s; not applied %s", json_array_size(applied) ? a : "nothing",
                 json_array_size(not_applied) ? na : "(none)");
    for (size_t i = 0; i < json_array_size(not_applied); i++)
        mh_core_warn("not applied: %s", json_string_value(json_array_get(not_applied, i)));
    json_t *data = json_pack("{s:o,s:o}", "applied", applied, "not_applied", not_applied);
    char *dj = json_dumps(data, JSON_COMPACT);
    mh_bus_emit(d->bus, "config.reloaded", "core", NULL, dj, NULL);
    free(dj);
    free(a);
    free(na);
    json_decref(data);
}

/* ------------------------------------------------------------ run */

static void signal_cb(int signum, void *arg)
{
    struct mh_daemon *d = arg;
    if (signum == SIGHUP)
        reload(d);
    else
        begin_shutdown(d, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ------------------------------------------- accounts linked through the API */

/* An account record as the daemon needs it to run its provider. */
struct acct_snap {
    int64_t id, user_id;
    char *user, *name, *provider, *settings, *status, *secret_json;
    int paused;
};

struct acct_load {
    struct mh_daemon *d;
    struct mh_hub *hub; /* store thread */
    int64_t id;         /* one account, or 0: every account linked through the API */
    struct acct_snap *v;
    size_t n, cap;
};

static void snap_clear(struct acct_snap *a)
{
    free(a->user);
    free(a->name);
    free(a->provider);
    free(a->settings);
    free(a->status);
    if (a->secret_json)
        mh_wipe(a->secret_json, strlen(a->secret_json));
    free(a->secret_json);
    memset(a, 0, sizeof *a);
}

static void acct_load_clear(struct acct_load *l)
{
    for (size_t i = 0; i < l->n; i++)
        snap_clear(&l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

static int user_name_cb(void *arg, const struct mh_user_rec *u)
{
    *(char **)arg = mh_xstrdup(u->name);
    return 1;
}

/* Store thread. */
static int acct_load_cb(void *arg, const struct mh_account_rec *a)
{
    struct acct_load *l = arg;
    if (a->origin == NULL || strcmp(a->origin, "api") != 0)
        return 0; /* the providers of mailhub.yaml run from the configuration */
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        struct acct_snap *nv = realloc(l->v, l->cap * sizeof *nv);
        if (nv == NULL)
            abort();
        l->v = nv;
    }
    struct acct_snap *s = &l->v[l->n++];
    memset(s, 0, sizeof *s);
    s->id = a->id;
    s->user_id = a->user_id;
    s->name = mh_xstrdup(a->name);
    s->provider = mh_xstrdup(a->provider ? a->provider : "");
    s->settings = mh_xstrdup(a->settings ? a->settings : "{}");
    s->status = mh_xstrdup(a->status ? a->status : "ok");
    s->paused = a->paused;
    const struct mh_store_ops *ops = mh_hub_ops(l->hub);
    ops->user_get(mh_hub_state(l->hub), a->user_id, NULL, user_name_cb, &s->user);
    if (s->user == NULL)
        s->user = mh_asprintf("user-%lld", (long long)a->user_id);
    if (a->secret && a->secret_len) {
        unsigned char *pt = NULL;
        size_t len = 0;
        if (mh_hub_account_unseal(l->hub, a->user_id, a->name, a->secret, a->secret_len, &pt, &len) == 0)
            s->secret_json = (char *)pt; /* NUL-terminated by mh_hub_account_unseal */
        else {
            free(s->status);
            s->status = mh_xstrdup("error: the stored credentials do not open with this master key");
        }
    }
    return 0;
}

static void acct_load_fn(struct mh_hub *hub, void *arg)
{
    struct acct_load *l = arg;
    l->hub = hub;
    const struct mh_store_ops *ops = mh_hub_ops(hub);
    if (l->id > 0)
        ops->account_get(mh_hub_state(hub), 0, l->id, NULL, acct_load_cb, l);
    else
        ops->account_list(mh_hub_state(hub), 0, acct_load_cb, l);
}

struct status_set {
    int64_t id;
    char *status;
};

static void status_set_fn(struct mh_hub *hub, void *arg)
{
    struct status_set *ss = arg;
    mh_hub_account_set_status(hub, ss->id, ss->status);
}

static void status_set_done(void *arg, int rc)
{
    (void)rc;
    struct status_set *ss = arg;
    free(ss->status);
    free(ss);
}

static void account_mark(struct mh_daemon *d, int64_t id, const char *status)
{
    struct status_set *ss = mh_xcalloc(1, sizeof *ss);
    ss->id = id;
    ss->status = mh_xstrdup(status);
    mh_storeq_call(d->storeq, d, status_set_fn, status_set_done, ss);
}

/* Strip the "account: " file prefix that mh_cfg_errors adds (there is no file here). */
static char *errors_text(const struct mh_cfg_errors *errs)
{
    size_t cap = 1;
    for (size_t i = 0; i < errs->n; i++)
        cap += strlen(errs->msgs[i]) + 2;
    char *out = mh_xcalloc(1, cap);
    for (size_t i = 0; i < errs->n; i++) {
        const char *m = errs->msgs[i];
        if (strncmp(m, "account: ", 9) == 0)
            m += 9;
        if (i)
            strcat(out, "; ");
        strcat(out, m);
    }
    return out;
}

static const struct mh_option smtp_opts[] = {
    {"host", MH_OPT_STR, NULL, MH_OPT_REQUIRED, "SMTP server", NULL, 0, 0},
    {"port", MH_OPT_INT, "587", 0, "SMTP port", NULL, 1, 65535},
    {"security", MH_OPT_ENUM, "starttls", 0, "starttls, tls (implicit) or none", "starttls|tls|none", 0, 0},
    {"login", MH_OPT_STR, NULL, 0, "login (default: the incoming login)", NULL, 0, 0},
    {"password", MH_OPT_STR, NULL, MH_OPT_SECRET, "password", NULL, 0, 0},
    MH_OPT_TABLE_END,
};

static const struct mh_option *opt_find(const struct mh_option *t, const char *name)
{
    for (; t && t->name; t++)
        if (strcmp(t->name, name) == 0)
            return t;
    return NULL;
}

/* Validate `obj` against `table`; errors collected under `keypath`. */
static int check_against(const struct mh_option *table, const json_t *obj, const char *keypath,
                         struct mh_cfg_errors *errs)
{
    struct mh_cfg_node *node = mh_cfg_from_json(obj);
    struct mh_opts *opts = NULL;
    int rc = mh_opts_build_at(table, node, "account", keypath, 0, 0, NULL, &opts, errs);
    mh_opts_free(&opts);
    mh_cfg_node_free(&node);
    return rc;
}

/* Move the secret options of obj (per table) into a new object. */
static json_t *split_secrets(const struct mh_option *table, json_t *obj)
{
    json_t *sec = json_object();
    const char *key;
    json_t *val;
    void *tmp;
    json_object_foreach_safe(obj, tmp, key, val) {
        const struct mh_option *o = opt_find(table, key);
        if (o && (o->flags & MH_OPT_SECRET)) {
            json_object_set(sec, key, val);
            json_object_del(obj, key);
        }
    }
    return sec;
}

int mh_daemon_account_check(struct mh_daemon *d, const char *provider, const struct json_t *settings,
                            struct json_t **public_out, struct json_t **secret_out, char **err)
{
    *public_out = NULL;
    *secret_out = NULL;
    if (!json_is_object(settings)) {
        *err = mh_xstrdup("settings: expected an object");
        return -1;
    }
    char *lerr = NULL;
    const struct mh_module *mod = provider ? mh_loader_open(d->loader, provider, &lerr) : NULL;
    if (mod == NULL || mod->desc.kind != MH_KIND_PROVIDER) {
        *err = mod ? mh_asprintf("provider: '%s' is not a provider plugin", provider)
                   : mh_asprintf("provider: no provider plugin '%s' (%s)", provider ? provider : "",
                                 lerr ? lerr : "not given");
        free(lerr);
        return -1;
    }
    json_t *pub = json_deep_copy(settings);
    json_t *smtp = json_object_get(pub, "smtp");
    if (smtp)
        json_incref(smtp);
    json_object_del(pub, "smtp");
    struct mh_cfg_errors errs = {0};
    int bad = check_against(mod->desc.options, pub, "settings", &errs) != 0;
    if (smtp && !json_is_object(smtp)) {
        mh_cfg_errors_add(&errs, "account", 0, 0, "settings.smtp", "expected an object");
        bad = 1;
    } else if (smtp && check_against(smtp_opts, smtp, "settings.smtp", &errs) != 0)
        bad = 1;
    if (bad) {
        *err = errors_text(&errs);
        mh_cfg_errors_clear(&errs);
        json_decref(pub);
        json_decref(smtp);
        return -1;
    }
    json_t *sec = split_secrets(mod->desc.options, pub);
    if (smtp) {
        json_t *ssec = split_secrets(smtp_opts, smtp);
        if (json_object_size(ssec))
            json_object_set(sec, "smtp", ssec);
        json_decref(ssec);
        json_object_set(pub, "smtp", smtp);
        json_decref(smtp);
    }
    if (json_object_size(sec) == 0) {
        json_decref(sec);
        sec = NULL;
    }
    *public_out = pub;
    *secret_out = sec;
    return 0;
}

static struct mh_instance *find_account(struct mh_daemon *d, int64_t id, size_t *index_out)
{
    for (size_t i = 0; i < d->n_accounts; i++)
        if (d->accounts[i] && d->accounts[i]->account_id == id) {
            if (index_out)
                *index_out = i;
            return d->accounts[i];
        }
    return NULL;
}

/* Build, init and start the provider of one account; 0, or -1 after marking the account's error. */
static int account_start(struct mh_daemon *d, const struct acct_snap *s)
{
    if (s->paused || strcmp(s->status, "removed") == 0 || strncmp(s->status, "error: the stored", 17) == 0)
        return 0;
    char *err = NULL;
    const struct mh_module *mod = mh_loader_open(d->loader, s->provider, &err);
    if (mod == NULL || mod->desc.kind != MH_KIND_PROVIDER) {
        char *st = mh_asprintf("error: provider plugin '%s' is not available%s%s", s->provider, err ? ": " : "",
                               err ? err : "");
        mh_logf(MH_LOG_ERROR, "core", "account %s/%s: %s", s->user, s->name, st + 7);
        account_mark(d, s->id, st);
        free(st);
        free(err);
        return -1;
    }
    json_error_t je;
    json_t *set = json_loads(s->settings, 0, &je);
    if (!json_is_object(set)) {
        json_decref(set);
        set = json_object();
    }
    if (s->secret_json) {
        json_t *sec = json_loads(s->secret_json, 0, &je);
        if (json_is_object(sec))
            json_object_update(set, sec);
        json_decref(sec);
    }
    json_object_del(set, "smtp"); /* for sending; not a provider option */
    struct mh_cfg_node *node = mh_cfg_from_json(set);
    json_decref(set);
    struct mh_cfg_errors errs = {0};
    struct mh_opts *opts = NULL;
    int rc = mh_opts_build_at(mod->desc.options, node, "account", "settings", 0, 0, mh_host_table(), &opts, &errs);
    mh_cfg_node_free(&node);
    if (rc != 0) {
        char *text = errors_text(&errs);
        char *st = mh_asprintf("error: %s", text);
        mh_logf(MH_LOG_ERROR, "core", "account %s/%s: %s", s->user, s->name, text);
        account_mark(d, s->id, st);
        free(st);
        free(text);
        mh_cfg_errors_clear(&errs);
        return -1;
    }
    mh_opts_register_secrets(opts);
    struct mh_instance *inst = mh_instance_new(d, mod, s->name, s->user, NULL, opts);
    inst->user_id = s->user_id;
    inst->account_id = s->id;
    inst->pub.account_id = s->id;
    inst->from_api = 1;
    free(inst->who);
    inst->who = mh_asprintf("provider/%s/%s", s->user, s->name);
    if (mh_instance_init(inst) != MH_OK || mh_instance_start(inst) != MH_OK) {
        char *st = mh_asprintf("error: %s", inst->error ? inst->error : "the provider failed to start");
        account_mark(d, s->id, st);
        free(st);
        if (inst->started && !mh_instance_stop(inst)) {
            retire(d, inst);
            return -1;
        }
        release_instance(d, &inst);
        return -1;
    }
    struct mh_instance **nv = realloc(d->accounts, (d->n_accounts + 1) * sizeof *nv);
    if (nv == NULL)
        abort();
    d->accounts = nv;
    d->accounts[d->n_accounts++] = inst;
    return 0;
}

static void account_changed_done(void *arg, int rc)
{
    struct acct_load *l = arg;
    struct mh_daemon *d = l->d;
    if (rc == MH_OK && d->phase == RUNNING) {
        size_t idx = 0;
        struct mh_instance *cur = find_account(d, l->id, &idx);
        if (cur) {
            d->accounts[idx] = d->accounts[--d->n_accounts];
            mh_logf(MH_LOG_INFO, cur->who, "account changed: stopping this provider");
            retire(d, cur);
        }
        if (l->n == 1)
            account_start(d, &l->v[0]);
    }
    acct_load_clear(l);
    free(l);
}

void mh_daemon_account_changed(struct mh_daemon *d, int64_t account_id)
{
    if (d->storeq == NULL || d->phase != RUNNING)
        return;
    struct acct_load *l = mh_xcalloc(1, sizeof *l);
    l->d = d;
    l->id = account_id;
    mh_storeq_call(d->storeq, d, acct_load_fn, account_changed_done, l);
}

char *mh_daemon_account_progress(struct mh_daemon *d, int64_t account_id)
{
    struct mh_instance *inst = find_account(d, account_id, NULL);
    if (inst == NULL) {
        /* a provider of mailhub.yaml? */
        for (size_t i = 0; i < d->n_providers && inst == NULL; i++)
            if (d->providers[i] && d->providers[i]->account_id == account_id)
                inst = d->providers[i];
    }
    if (inst == NULL || inst->state == NULL)
        return NULL;
    const struct mh_provider_ops *ops = inst->mod->desc.ops;
    if (ops == NULL || ops->status_json == NULL)
        return NULL;
    char *json = NULL;
    if (ops->status_json(inst->state, &json) != MH_OK)
        return NULL;
    return json;
}

int mh_daemon_account_sync_now(struct mh_daemon *d, int64_t account_id)
{
    struct mh_instance *inst = find_account(d, account_id, NULL);
    for (size_t i = 0; i < d->n_providers && inst == NULL; i++)
        if (d->providers[i] && d->providers[i]->account_id == account_id)
            inst = d->providers[i];
    if (inst == NULL)
        return MH_ENOTFOUND;
    const struct mh_provider_ops *ops = inst->mod->desc.ops;
    if (ops == NULL || ops->sync_now == NULL)
        return MH_ENOTSUP;
    return ops->sync_now(inst->state);
}

/* ------------------------------------------------------------ bootstrap */

struct boot_prov {
    const char *user, *name, *provider;
    int64_t user_id, account_id;
};

struct boot {
    const char *token_path;
    int created_admin, token_written;
    char *error;
    struct boot_prov *prov;
    size_t n_prov;
    struct acct_load accts;
};

static int admin_find_cb(void *arg, const struct mh_user_rec *u)
{
    if (u->admin) {
        *(int *)arg = 1;
        return 1;
    }
    return 0;
}

struct user_full {
    int found;
    struct mh_user_rec rec;
    char *name, *hash, *phone, *email;
    void *key;
};

static int user_full_cb(void *arg, const struct mh_user_rec *u)
{
    struct user_full *f = arg;
    f->found = 1;
    f->rec = *u;
    f->rec.struct_size = sizeof f->rec;
    f->rec.name = f->name = mh_xstrdup(u->name);
    f->rec.password_hash = f->hash = u->password_hash ? mh_xstrdup(u->password_hash) : NULL;
    f->rec.phone = f->phone = u->phone ? mh_xstrdup(u->phone) : NULL;
    f->rec.email = f->email = u->email ? mh_xstrdup(u->email) : NULL;
    f->key = malloc(u->data_key_len ? u->data_key_len : 1);
    if (f->key && u->data_key_len)
        memcpy(f->key, u->data_key, u->data_key_len);
    f->rec.data_key = f->key;
    return 1;
}

static void boot_fn(struct mh_hub *hub, void *arg)
{
    struct boot *b = arg;
    const struct mh_store_ops *ops = mh_hub_ops(hub);
    void *st = mh_hub_state(hub);
    int have_admin = 0;
    ops->user_list(st, admin_find_cb, &have_admin);
    if (!have_admin) {
        int64_t id = 0;
        int rc = mh_hub_user_create(hub, MH_DEFAULT_USER, NULL, 1, NULL, NULL, &id);
        if (rc == MH_EEXIST) {
            /* a user of that name exists (without the role): make it the administrator */
            struct user_full f = {0};
            ops->user_get(st, 0, MH_DEFAULT_USER, user_full_cb, &f);
            if (f.found) {
                f.rec.admin = 1;
                rc = ops->user_put(st, &f.rec);
                id = f.rec.id;
            }
            free(f.name);
            free(f.hash);
            free(f.phone);
            free(f.email);
            free(f.key);
        }
        if (rc != MH_OK) {
            b->error = mh_asprintf("cannot create the administrator user (code %d)", rc);
            return;
        }
        char tok[MH_TOKEN_LEN + 1];
        unsigned char h[32];
        if (mh_token_new(tok) != 0) {
            b->error = mh_xstrdup("cannot generate a token");
            return;
        }
        mh_sha256(tok, strlen(tok), h);
        rc = ops->token_put(st, id, h, "bootstrap", 0);
        if (rc == MH_OK && ops->flush)
            rc = ops->flush(st);
        if (rc != MH_OK) {
            b->error = mh_asprintf("cannot store the administrator's token (code %d)", rc);
            return;
        }
        b->created_admin = 1;
        int fd = open(b->token_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd >= 0) {
            size_t len = strlen(tok);
            tok[len] = '\n';
            b->token_written = fchmod(fd, 0600) == 0 && write(fd, tok, len + 1) == (ssize_t)(len + 1) &&
                               fsync(fd) == 0;
            close(fd);
        }
        mh_wipe(tok, sizeof tok);
    }
    for (size_t i = 0; i < b->n_prov; i++) {
        struct boot_prov *p = &b->prov[i];
        int rc = mh_hub_ensure_account(hub, p->user, p->name, p->provider, &p->user_id, &p->account_id);
        if (rc != MH_OK)
            mh_logf(MH_LOG_WARN, "core", "provider %s: cannot record its account (code %d)", p->name, rc);
    }
    b->accts.hub = hub;
    acct_load_fn(hub, &b->accts);
}

/* Create the administrator on first start, record the providers of mailhub.yaml, start the linked accounts. */
static int bootstrap(struct mh_daemon *d)
{
    struct mh_daemon_config *cfg = d->plan->cfg;
    struct boot b = {0};
    b.token_path = mh_asprintf("%s/admin.token", cfg->data_dir);
    b.prov = mh_xcalloc(d->n_providers + 1, sizeof *b.prov);
    for (size_t i = 0; i < d->n_providers; i++) {
        struct mh_instance *inst = d->providers[i];
        b.prov[b.n_prov++] = (struct boot_prov){.user = inst->user, .name = inst->name, .provider = inst->mod->name};
    }
    b.accts.d = d;
    mh_storeq_call_sync(d->storeq, boot_fn, &b);
    int ok = b.error == NULL;
    if (!ok)
        mh_core_error("%s", b.error);
    if (b.created_admin) {
        if (b.token_written)
            mh_core_info("created the administrator '%s'; its API token is in %s (mode 0600)", MH_DEFAULT_USER,
                         b.token_path);
        else
            mh_core_error("created the administrator '%s', but could not write its token to %s: %s",
                          MH_DEFAULT_USER, b.token_path, strerror(errno));
    }
    for (size_t i = 0; i < b.n_prov; i++) {
        d->providers[i]->user_id = b.prov[i].user_id;
        d->providers[i]->account_id = b.prov[i].account_id;
        d->providers[i]->pub.account_id = b.prov[i].account_id;
    }
    if (ok) {
        for (size_t i = 0; i < b.accts.n; i++)
            account_start(d, &b.accts.v[i]);
        if (b.accts.n)
            mh_core_info("%zu linked account(s), %zu provider(s) started", b.accts.n, d->n_accounts);
    }
    acct_load_clear(&b.accts);
    free(b.prov);
    free(b.error);
    free((char *)b.token_path);
    return ok ? 0 : -1;
}

static int start_listeners(struct mh_daemon *d)
{
    struct mh_daemon_config *cfg = d->plan->cfg;
    d->apis = mh_xcalloc(cfg->n_listeners + 1, sizeof *d->apis);
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        struct mh_api_opts ao = {.name = cfg->listeners[i].name,
                                 .address = cfg->listeners[i].address,
                                 .port = cfg->listeners[i].port,
                                 .data_dir = cfg->data_dir,
                                 .registration_open = cfg->registration_open,
                                 .max_upload = cfg->max_upload};
        char *err = NULL;
        struct mh_api *a = mh_api_new(d, d->loop, d->storeq, d->pool, &ao, &err);
        if (a == NULL) {
            mh_core_error("listener %s: %s", cfg->listeners[i].name, err ? err : "cannot start");
            free(err);
            return -1;
        }
        d->apis[d->n_apis++] = a;
        mh_core_info("listener %s: control API on http://%s%s%s:%d/api/v1", cfg->listeners[i].name,
                     strchr(cfg->listeners[i].address, ':') ? "[" : "", cfg->listeners[i].address,
                     strchr(cfg->listeners[i].address, ':') ? "]" : "", mh_api_port(a));
    }
    return 0;
}

int mh_daemon_run(struct mh_daemon *d)
{
    struct plan *p = d->plan;
    struct mh_daemon_config *cfg = p->cfg;
    signal(SIGPIPE, SIG_IGN);
    /* first, so that a SIGTERM during start-up is a clean stop once the loop runs, not a kill */
    d->sig_term = mh_signal_new(d->loop, SIGTERM, signal_cb, d);
    d->sig_int = mh_signal_new(d->loop, SIGINT, signal_cb, d);
    d->sig_hup = mh_signal_new(d->loop, SIGHUP, signal_cb, d);

    /* store first: everything else depends on it */
    d->store = make_instance(d, &p->store);
    if (mh_instance_init(d->store) != MH_OK)
        goto fail;
    char *err = NULL;
    struct mh_quota_policy pol;
    unsigned char master[MH_KEY_LEN];
    char *key_path = mh_asprintf("%s/master.key", cfg->data_dir);
    if (mh_master_key_load(key_path, master, &err) != 0) {
        mh_core_error("master key: %s", err ? err : "cannot load");
        free(err);
        free(key_path);
        goto fail;
    }
    free(key_path);
    /* delivery reports (Kannel dlr-url) are authenticated by a key only this hub can derive */
    static const char report_label[] = "mailhub delivery reports v1";
    mh_hmac_sha256(master, sizeof master, report_label, sizeof report_label - 1, d->report_key);
    d->storeq = mh_storeq_new(d->loop, d->bus, d->store->mod->desc.ops, d->store->state, master, policy_of(cfg, &pol),
                              &err);
    mh_wipe(master, sizeof master);
    if (d->storeq == NULL) {
        mh_logf(MH_LOG_ERROR, d->store->who, "%s%s%s", err, d->store->error ? ": " : "",
                d->store->error ? d->store->error : "");
        free(err);
        goto fail;
    }

    d->notifiers = mh_xcalloc(p->n_notifiers + 1, sizeof *d->notifiers);
    for (size_t i = 0; i < p->n_notifiers; i++) {
        d->notifiers[d->n_notifiers] = make_instance(d, &p->notifiers[i]);
        if (init_notifier(d, d->notifiers[d->n_notifiers++]) != 0)
            goto fail;
    }
    d->providers = mh_xcalloc(p->n_providers + 1, sizeof *d->providers);
    for (size_t i = 0; i < p->n_providers; i++) {
        d->providers[d->n_providers] = make_instance(d, &p->providers[i]);
        if (mh_instance_init(d->providers[d->n_providers++]) != MH_OK)
            goto fail;
    }
    struct mh_outbox_cfg ocfg = {.attempts = cfg->notify_attempts,
                                 .retry_ms = cfg->notify_retry_ms,
                                 .retry_max_ms = cfg->notify_retry_max_ms,
                                 .keep_ms = cfg->notify_keep_ms};
    d->outbox = mh_outbox_new(d, &ocfg);
    for (size_t i = 0; i < d->n_notifiers; i++)
        if (mh_instance_start(d->notifiers[i]) != MH_OK)
            goto fail;
    mh_outbox_start(d->outbox);
    if (bootstrap(d) != 0)
        goto fail;
    for (size_t i = 0; i < d->n_providers; i++)
        if (mh_instance_start(d->providers[i]) != MH_OK)
            goto fail;
    if (start_listeners(d) != 0)
        goto fail;
    if (write_pid_file(d) != 0)
        goto fail;


    mh_core_info("mailhubd %s started: config %s, data %s, store %s, %zu provider(s), %zu linked account(s), "
                 "%zu notifier(s)", VERSION, d->config_path, cfg->data_dir, d->store->mod->name, d->n_providers,
                 d->n_accounts, d->n_notifiers);
    char data[128];
    snprintf(data, sizeof data, "{\"version\":\"%s\",\"pid\":%ld}", VERSION, (long)getpid());
    mh_bus_emit(d->bus, "daemon.started", "core", NULL, data, NULL);

    d->phase = RUNNING;
    mh_loop_run(d->loop);
    if (d->phase != DONE)
        finish(d);
    mh_core_info("stopped");
    return d->exit_code;

fail:
    mh_core_error("start-up failed; stopping everything that was started");
    d->phase = STOP_PROVIDERS;
    for (size_t i = 0; i < d->n_accounts; i++)
        mh_instance_stop(d->accounts[i]);
    for (size_t i = 0; i < d->n_providers; i++)
        mh_instance_stop(d->providers[i]);
    finish(d);
    return 1;
}

void mh_daemon_free(struct mh_daemon **dp)
{
    struct mh_daemon *d = dp ? *dp : NULL;
    if (d == NULL)
        return;
    if (d->phase != DONE && (d->providers || d->accounts || d->notifiers || d->store || d->storeq))
        finish(d);
    mh_signal_free(&d->sig_term);
    mh_signal_free(&d->sig_int);
    mh_signal_free(&d->sig_hup);
    mh_outbox_free(&d->outbox);
    mh_wipe(d->report_key, sizeof d->report_key);
    mh_bus_free(&d->bus);
    mh_pool_free(&d->pool);
    mh_xfer_free(&d->xfer);
    mh_loop_free(&d->loop);
    free(d->retiring);
    if (d->pid_written && d->plan && d->plan->cfg->pid_file)
        unlink(d->plan->cfg->pid_file);
    plan_free(&d->plan);
    mh_loader_free(&d->loader);
    free_strv(d->ppath, d->n_ppath);
    free(d->config_path);
    mh_log_clear_secrets();
    free(d);
    *dp = NULL;
}

/* ------------------------------------------------------------ CLI helpers */

int mh_daemon_check_config(const struct mh_daemon_opts *o, int quiet)
{
    struct mh_loader *loader = NULL;
    struct plan *p = load_plan(o, &loader, NULL, NULL, 1);
    int rc = 1;
    if (p) {
        if (!quiet)
            printf("%s: configuration is valid (store %s, %zu provider(s), %zu notifier(s), data in %s)\n",
                   p->cfg->file, p->store.mod->name, p->n_providers, p->n_notifiers, p->cfg->data_dir);
        plan_free(&p);
        rc = 0;
    } else
        fprintf(stderr, "%s: invalid configuration\n", o->config_path);
    mh_loader_free(&loader);
    return rc;
}

/* The path for --list-plugins/--plugin-help: the config's if it can be read, else the defaults. */
static struct mh_loader *loader_for_cli(const struct mh_daemon_opts *o, char **path_text_out)
{
    struct mh_daemon_config *cfg = NULL;
    if (o->config_path && access(o->config_path, R_OK) == 0) {
        struct mh_cfg_errors errs = {0};
        cfg = mh_config_load(o->config_path, &errs);
        mh_cfg_errors_clear(&errs);
    }
    size_t n = 0;
    char **pp = plugin_path(o, cfg, &n);
    struct mh_loader *l = mh_loader_new((const char *const *)pp, n);
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(pp[i]) + 1;
    char *t = mh_xcalloc(1, len);
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(t, ":");
        strcat(t, pp[i]);
    }
    *path_text_out = t;
    free_strv(pp, n);
    mh_config_free(&cfg);
    return l;
}

struct list_ctx {
    int n_ok, n_bad;
};

static void list_cb(const char *name, const struct mh_module *m, const char *err, void *arg)
{
    struct list_ctx *lc = arg;
    if (m) {
        printf("%-9s %-16s %-10s ABI %u.%u  %s\n", kind_word(m->desc.kind), m->desc.name, m->desc.version,
               MH_ABI_VERSION_MAJOR(m->desc.abi_version), MH_ABI_VERSION_MINOR(m->desc.abi_version),
               m->desc.description ? m->desc.description : "");
        lc->n_ok++;
    } else {
        fprintf(stderr, "refused   %-16s %s\n", name, err ? err : "unknown error");
        lc->n_bad++;
    }
}

int mh_daemon_list_plugins(const struct mh_daemon_opts *o)
{
    char *path = NULL;
    struct mh_loader *l = loader_for_cli(o, &path);
    struct list_ctx lc = {0, 0};
    mh_loader_scan(l, list_cb, &lc);
    if (lc.n_ok + lc.n_bad == 0)
        fprintf(stderr, "no plugins found in %s\n", path);
    mh_loader_free(&l);
    free(path);
    return lc.n_ok > 0 ? 0 : 1;
}

int mh_daemon_plugin_help(const struct mh_daemon_opts *o, const char *name)
{
    char *path = NULL, *err = NULL;
    struct mh_loader *l = loader_for_cli(o, &path);
    const struct mh_module *m = mh_loader_open(l, name, &err);
    if (m == NULL) {
        fprintf(stderr, "mailhubd: %s\n", err);
        free(err);
        mh_loader_free(&l);
        free(path);
        return 1;
    }
    printf("%s %s: %s plugin, ABI %u.%u\n  %s\n  file: %s\n\nOptions:\n", m->desc.name, m->desc.version,
           kind_word(m->desc.kind), MH_ABI_VERSION_MAJOR(m->desc.abi_version),
           MH_ABI_VERSION_MINOR(m->desc.abi_version), m->desc.description ? m->desc.description : "", m->file);
    if (m->desc.options && m->desc.options[0].name)
        mh_opts_print_help(stdout, m->desc.options);
    else
        printf("  (none)\n");
    /* a ready-to-paste YAML snippet with the required options */
    printf("\nExample:\n");
    if (m->desc.kind == MH_KIND_STORE)
        printf("  store:\n    plugin: %s\n", m->desc.name);
    else
        printf("  %s:\n    my-%s:\n      plugin: %s\n", section_of(m->desc.kind), m->desc.name, m->desc.name);
    const char *ind = m->desc.kind == MH_KIND_STORE ? "    " : "      ";
    int any = 0;
    for (const struct mh_option *op = m->desc.options; op && op->name; op++) {
        if (!(op->flags & MH_OPT_REQUIRED))
            continue;
        if (!any)
            printf("%soptions:\n", ind);
        any = 1;
        printf("%s  %s: %s\n", ind, op->name, (op->flags & MH_OPT_SECRET) ? "${SECRET_FROM_ENV}" : "...");
    }
    mh_loader_free(&l);
    free(path);
    return 0;
}

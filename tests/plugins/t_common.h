/* Shared bits of the loader test modules: a do-nothing notifier (inline: not all use all). */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* plugin.h's mh_strdup() uses strdup(), hidden by -std=c11 */
#endif
#ifndef T_COMMON_H
#define T_COMMON_H

#include <mailhub/plugin.h>
#include <mailhub/notifier.h>

static inline int t_init(struct mh_plugin_ctx *ctx, const struct mh_config *cfg, void **state_out)
{
    (void)ctx, (void)cfg;
    *state_out = mh_calloc(1, 1);
    return *state_out ? MH_OK : MH_ENOMEM;
}

static inline void t_free(void *state)
{
    mh_free(state);
}

static inline int t_send(void *state, const struct mh_event *ev, struct mh_job *job)
{
    (void)state, (void)ev, (void)job;
    return MH_OK;
}

/* Not every module uses it. */
__attribute__((unused)) static const struct mh_notifier_ops t_ops = {
    .struct_size = sizeof(struct mh_notifier_ops), .send = t_send};

#endif

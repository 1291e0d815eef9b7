/*
 * Loader test module: calls a function nothing defines.  Linked without
 * -z defs but with -z now, so dlopen() itself must fail.
 */
#include "t_common.h"

void mh_no_such_function(void);

static int t_unresolved_init(struct mh_plugin_ctx *ctx, const struct mh_config *cfg, void **state_out)
{
    mh_no_such_function();
    return t_init(ctx, cfg, state_out);
}

MH_PLUGIN_DEFINE(t_unresolved, .kind = MH_KIND_NOTIFIER, .name = "t_unresolved", .version = "0.0.1",
                 .init = t_unresolved_init, .free = t_free, .ops = &t_ops);

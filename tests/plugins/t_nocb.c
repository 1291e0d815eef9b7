/* Loader test module: a notifier whose ops lack the mandatory send. */
#include "t_common.h"

static const struct mh_notifier_ops t_nocb_ops = {.struct_size = sizeof(struct mh_notifier_ops),
                                                  .send = NULL};

MH_PLUGIN_DEFINE(t_nocb, .kind = MH_KIND_NOTIFIER, .name = "t_nocb", .version = "0.0.1", .init = t_init,
                 .free = t_free, .ops = &t_nocb_ops);

/* Loader test module: no init callback. */
#include "t_common.h"

MH_PLUGIN_DEFINE(t_noinit, .kind = MH_KIND_NOTIFIER, .name = "t_noinit", .version = "0.0.1", .init = NULL,
                 .free = t_free, .ops = &t_ops);

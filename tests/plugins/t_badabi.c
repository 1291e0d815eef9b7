/* Loader test module: built against ABI major 99, which the core must refuse. */
#include "t_common.h"

MH_EXPORT extern const struct mh_plugin mh_plugin_descriptor;
const struct mh_plugin mh_plugin_descriptor = {
    .abi_version = (99u << 16) | 0u,
    .struct_size = sizeof(struct mh_plugin),
    .kind = MH_KIND_NOTIFIER,
    .name = "t_badabi",
    .version = "0.0.1",
    .init = t_init,
    .free = t_free,
    .ops = &t_ops,
};
MH_EXPORT extern const struct mh_plugin t_badabi_LTX_mh_plugin_descriptor
    __attribute__((alias("mh_plugin_descriptor")));

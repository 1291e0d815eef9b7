/* Loader test module: the core's major with minor 999, newer than any core: refused. */
#include "t_common.h"

MH_EXPORT extern const struct mh_plugin mh_plugin_descriptor;
const struct mh_plugin mh_plugin_descriptor = {
    .abi_version = ((uint32_t)MH_ABI_MAJOR << 16) | 999u,
    .struct_size = sizeof(struct mh_plugin),
    .kind = MH_KIND_NOTIFIER,
    .name = "t_newminor",
    .version = "0.0.1",
    .init = t_init,
    .free = t_free,
    .ops = &t_ops,
};
MH_EXPORT extern const struct mh_plugin t_newminor_LTX_mh_plugin_descriptor
    __attribute__((alias("mh_plugin_descriptor")));

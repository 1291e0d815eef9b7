/*
 * Loader test module: a descriptor of 8 bytes (abi_version and struct_size
 * only).  The core must read no further than struct_size, and refuse it.
 */
#define _POSIX_C_SOURCE 200809L /* plugin.h's mh_strdup() uses strdup(), hidden by -std=c11 */
#include <mailhub/plugin.h>

struct t_short_desc {
    uint32_t abi_version;
    uint32_t struct_size;
};

MH_EXPORT extern const struct t_short_desc mh_plugin_descriptor;
const struct t_short_desc mh_plugin_descriptor = {MH_ABI_VERSION, 8};
MH_EXPORT extern const struct t_short_desc t_short_LTX_mh_plugin_descriptor
    __attribute__((alias("mh_plugin_descriptor")));

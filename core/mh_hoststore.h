/*
 * Host functions of SDK 1.2 for providers' sync state and changes at the
 * source (see mh_state_get() and friends in sdk/mailhub/plugin.h).
 */
#ifndef MH_HOSTSTORE_H
#define MH_HOSTSTORE_H

#include <mailhub/plugin.h>

int mh_hs_state_get(struct mh_plugin_ctx *ctx, const char *key, mh_state_cb cb, void *arg);
int mh_hs_state_put(struct mh_plugin_ctx *ctx, const char *key, const char *value, mh_done_cb cb, void *arg);
int mh_hs_set_flags(struct mh_plugin_ctx *ctx, const char *folder, const char *source_id, const char *flags,
                    mh_done_cb cb, void *arg);
int mh_hs_mark_gone(struct mh_plugin_ctx *ctx, const char *folder, const char *source_id, mh_done_cb cb,
                    void *arg);
int mh_hs_folder_change(struct mh_plugin_ctx *ctx, const char *folder, const char *new_name, mh_done_cb cb,
                        void *arg);
int mh_hs_source_list(struct mh_plugin_ctx *ctx, const char *folder, mh_source_list_cb cb, void *arg);

#endif

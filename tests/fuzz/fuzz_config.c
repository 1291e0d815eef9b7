/*
 * libFuzzer target for the configuration loader: arbitrary bytes through the
 * YAML tree, the daemon's schema, a plugin option table and the value
 * parsers.  Everything must be rejected or accepted cleanly, and freed.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mh_config.h"
#include "mh_options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Something like a real plugin's table, so that options: maps meet every type. */
static const struct mh_option fuzz_opts[] = {
    {"host", MH_OPT_STR, NULL, MH_OPT_REQUIRED, "host", NULL, 0, 0},
    {"port", MH_OPT_INT, "993", 0, "port", NULL, 1, 65535},
    {"tls", MH_OPT_BOOL, "true", 0, "TLS", NULL, 0, 0},
    {"poll", MH_OPT_DURATION, "5m", 0, "interval", NULL, 1000, 86400000},
    {"max_size", MH_OPT_SIZE, "25MB", 0, "size", NULL, 0, 0},
    {"folders", MH_OPT_STRLIST, "[INBOX]", 0, "folders", NULL, 0, 0},
    {"mode", MH_OPT_ENUM, "idle", 0, "mode", "idle|poll|push", 0, 0},
    {"password", MH_OPT_STR, NULL, MH_OPT_SECRET, "password", NULL, 0, 0},
    MH_OPT_TABLE_END,
};

static void fuzz_options(const struct mh_instance_cfg *in, const char *kp)
{
    struct mh_cfg_errors errs = {0};
    struct mh_opts *o = NULL, *o2 = NULL;
    if (mh_opts_build_at(fuzz_opts, in->options, "fuzz.yaml", kp, in->options_line, in->options_col, NULL, &o,
                         &errs) == 0) {
        const struct mh_config *cfg = mh_opts_config(o);
        (void)mh_opts_str(cfg, "host");
        (void)mh_opts_list_item(cfg, "folders", mh_opts_list_len(cfg, "folders") - 1);
        mh_opts_build(fuzz_opts, in->options, "fuzz.yaml", kp, NULL, &o2, &errs);
        if (o2 != NULL && !mh_opts_equal(o, o2))
            abort(); /* the same input must give the same values */
    }
    mh_opts_free(&o);
    mh_opts_free(&o2);
    mh_cfg_errors_clear(&errs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mh_cfg_errors errs = {0};
    const char *text = (const char *)data;

    struct mh_cfg_node *root = mh_cfg_parse("fuzz.yaml", text, size, &errs);
    if ((root == NULL) != (errs.n > 0))
        abort(); /* NULL exactly when something was reported */
    mh_cfg_node_free(&root);
    mh_cfg_errors_clear(&errs);

    struct mh_daemon_config *c = mh_config_load_string("fuzz.yaml", text, size, &errs);
    if ((c == NULL) != (errs.n > 0))
        abort();
    if (c != NULL) {
        for (size_t i = 0; i < c->n_providers; i++)
            fuzz_options(&c->providers[i], "providers.x.options");
        fuzz_options(&c->store, "store.options");
    }
    mh_config_free(&c);
    mh_cfg_errors_clear(&errs);

    /* the scalar parsers take C strings */
    if (size <= 256) {
        char *s = malloc(size + 1);
        if (s == NULL)
            return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        int64_t i64;
        uint64_t u64;
        int b;
        (void)mh_parse_int(s, &i64);
        (void)mh_parse_bool(s, &b);
        if (mh_parse_duration_ms(s, &i64) == 0 && i64 < 0)
            abort();
        (void)mh_parse_size(s, &u64);
        free(s);
    }
    return 0;
}

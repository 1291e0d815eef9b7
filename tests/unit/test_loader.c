/* The plugin loader: a good plugin, and every way a module is refused. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <mailhub/notifier.h>
#include <mailhub/provider.h>
#include <mailhub/store.h>

#include "mh_config.h"
#include "mh_host.h"
#include "mh_loader.h"
#include "mh_log.h"
#include "mh_options.h"

static char plugdir[4096];

static struct mh_loader *new_loader(void)
{
    const char *dirs[] = {plugdir};
    return mh_loader_new(dirs, 1);
}

static void expect_refused(const char *name, const char *needle)
{
    struct mh_loader *l = new_loader();
    char *err = NULL;
    const struct mh_module *m = mh_loader_open(l, name, &err);
    assert_null(m);
    assert_non_null(err);
    if (strstr(err, needle) == NULL)
        fail_msg("refusal of %s says '%s', expected it to mention '%s'", name, err, needle);
    /* every refusal names the module's file, except "not found" which names the path */
    assert_non_null(strstr(err, strstr(needle, "not found") ? plugdir : name));
    free(err);
    mh_loader_free(&l);
}

static void test_good(void **s)
{
    (void)s;
    struct mh_loader *l = new_loader();
    char *err = NULL;
    const struct mh_module *m = mh_loader_open(l, "t_good", &err);
    if (m == NULL)
        fail_msg("t_good refused: %s", err);
    assert_string_equal(m->desc.name, "t_good");
    assert_int_equal(m->desc.kind, MH_KIND_NOTIFIER);
    assert_int_equal(MH_ABI_VERSION_MAJOR(m->desc.abi_version), MH_ABI_MAJOR);
    assert_non_null(m->desc.init);
    assert_non_null(strstr(m->file, "t_good"));
    /* opening twice gives the cached module */
    assert_ptr_equal(mh_loader_open(l, "t_good", &err), m);
    mh_loader_free(&l);
}

static void test_wrong_abi(void **s)
{
    (void)s;
    expect_refused("t_badabi", "ABI 99.");
}
static void test_newer_minor(void **s)
{
    (void)s;
    expect_refused("t_newminor", "newer than this mailhubd");
}
static void test_short_descriptor(void **s)
{
    (void)s;
    expect_refused("t_short", "descriptor too small");
}
static void test_missing_send(void **s)
{
    (void)s;
    expect_refused("t_nocb", "lacks the mandatory callback send");
}
static void test_missing_init(void **s)
{
    (void)s;
    expect_refused("t_noinit", "lacks the mandatory callback init");
}
static void test_unresolved_symbol(void **s)
{
    (void)s;
    expect_refused("t_unresolved", "mh_no_such_function");
}
static void test_no_descriptor(void **s)
{
    (void)s;
    expect_refused("t_nodesc", "exports no 'mh_plugin_descriptor'");
}
static void test_not_found(void **s)
{
    (void)s;
    expect_refused("t_does_not_exist", "not found");
}

/* mh_loader_check on hand-made descriptors */
static int ok_init(struct mh_plugin_ctx *c, const struct mh_config *cfg, void **st)
{
    (void)c;
    (void)cfg;
    *st = NULL;
    return 0;
}
static void ok_free(void *st) { (void)st; }
static int ok_send(void *st, const struct mh_event *ev, struct mh_job *j)
{
    (void)st;
    (void)ev;
    (void)j;
    return 0;
}
static const struct mh_notifier_ops nops = {.struct_size = sizeof nops, .send = ok_send};

static void test_check_pure(void **s)
{
    (void)s;
    struct mh_plugin d = {.abi_version = MH_ABI_VERSION, .struct_size = sizeof d, .kind = MH_KIND_NOTIFIER,
                          .name = "x", .version = "1", .init = ok_init, .free = ok_free, .ops = &nops};
    struct mh_plugin copy;
    char *err = NULL;
    assert_int_equal(mh_loader_check(&d, &copy, &err), 0);
    assert_null(err);
    assert_string_equal(copy.name, "x");

    struct mh_plugin bad = d;
    bad.kind = 42;
    assert_int_equal(mh_loader_check(&bad, &copy, &err), -1);
    assert_non_null(strstr(err, "unknown plugin kind"));
    free(err);

    bad = d;
    bad.name = "Bad Name";
    assert_int_equal(mh_loader_check(&bad, &copy, &err), -1);
    free(err);

    bad = d;
    bad.free = NULL;
    assert_int_equal(mh_loader_check(&bad, &copy, &err), -1);
    assert_non_null(strstr(err, "free"));
    free(err);

    static const struct mh_option badopts[] = {{"ok", MH_OPT_ENUM, NULL, 0, "enum without choices", NULL, 0, 0},
                                               MH_OPT_TABLE_END};
    bad = d;
    bad.options = badopts;
    assert_int_equal(mh_loader_check(&bad, &copy, &err), -1);
    assert_non_null(strstr(err, "no choices"));
    free(err);

    /* a store missing a mandatory op */
    static const struct mh_store_ops sops = {.struct_size = sizeof sops};
    bad = d;
    bad.kind = MH_KIND_STORE;
    bad.ops = &sops;
    assert_int_equal(mh_loader_check(&bad, &copy, &err), -1);
    assert_non_null(strstr(err, "lacks the mandatory callback open"));
    free(err);

    /* a provider without start */
    static const struct mh_provider_ops pops = {.struct_size = sizeof pops};
    bad = d;
    bad.kind = MH_KIND_PROVIDER;
    bad.ops = &pops;
    assert_int_equal(mh_loader_check(&bad, &copy, &err), -1);
    assert_non_null(strstr(err, "start"));
    free(err);
}

struct scan_result {
    int good, refused, saw_good, saw_badabi;
};
static void scan_cb(const char *name, const struct mh_module *m, const char *err, void *arg)
{
    struct scan_result *r = arg;
    if (m)
        r->good++;
    else {
        r->refused++;
        assert_non_null(err);
    }
    if (strcmp(name, "t_good") == 0)
        r->saw_good = m != NULL;
    if (strcmp(name, "t_badabi") == 0)
        r->saw_badabi = m == NULL;
}

static void test_scan(void **s)
{
    (void)s;
    struct mh_loader *l = new_loader();
    struct scan_result r = {0};
    mh_loader_scan(l, scan_cb, &r);
    assert_true(r.saw_good);
    assert_true(r.saw_badabi);
    assert_true(r.good >= 3);    /* t_good, t_provider, t_store */
    assert_true(r.refused >= 7); /* every bad module */
    mh_loader_free(&l);
}

/* Two instances of one plugin never share state, and secrets never reach the log. */
static void test_instances_and_secrets(void **s)
{
    (void)s;
    struct mh_loader *l = new_loader();
    char *err = NULL;
    const struct mh_module *m = mh_loader_open(l, "t_good", &err);
    assert_non_null(m);

    const char *yaml = "a: {token: s3cr3t-T0KEN-alpha, greeting: hello}\n"
                       "b: {token: s3cr3t-T0KEN-bravo, count: 7}\n";
    struct mh_cfg_errors errs = {0};
    struct mh_cfg_node *root = mh_cfg_parse("inline.yaml", yaml, strlen(yaml), &errs);
    assert_non_null(root);
    struct mh_opts *oa = NULL, *ob = NULL;
    assert_int_equal(mh_opts_build(m->desc.options, mh_cfg_get(root, "a"), "inline.yaml", "a", mh_host_table(), &oa,
                                   &errs), 0);
    assert_int_equal(mh_opts_build(m->desc.options, mh_cfg_get(root, "b"), "inline.yaml", "b", mh_host_table(), &ob,
                                   &errs), 0);
    mh_opts_register_secrets(oa);
    mh_opts_register_secrets(ob);

    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    mh_log_set_stream(mem);
    mh_log_set_level(MH_LOG_DEBUG);
    struct mh_instance *ia = mh_instance_new(NULL, m, "a", NULL, NULL, oa);
    struct mh_instance *ib = mh_instance_new(NULL, m, "b", NULL, NULL, ob);
    assert_int_equal(mh_instance_init(ia), MH_OK);
    assert_int_equal(mh_instance_init(ib), MH_OK);
    assert_non_null(ia->state);
    assert_non_null(ib->state);
    assert_ptr_not_equal(ia->state, ib->state);
    mh_instance_free(&ia);
    mh_instance_free(&ib);
    mh_log_set_stream(NULL);
    fclose(mem);

    /* the plugin logged its token on purpose: the core must have masked it */
    assert_non_null(strstr(buf, "[notifier/a]"));
    assert_non_null(strstr(buf, "[notifier/b]"));
    assert_null(strstr(buf, "s3cr3t-T0KEN-alpha"));
    assert_null(strstr(buf, "s3cr3t-T0KEN-bravo"));
    assert_non_null(strstr(buf, "***"));
    free(buf);
    mh_log_clear_secrets();
    mh_cfg_node_free(&root);
    mh_cfg_errors_clear(&errs);
    mh_loader_free(&l);
}

int main(void)
{
    const char *b = getenv("top_builddir");
    snprintf(plugdir, sizeof plugdir, "%s/tests/plugins", b ? b : ".");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_wrong_abi),
        cmocka_unit_test(test_newer_minor),
        cmocka_unit_test(test_short_descriptor),
        cmocka_unit_test(test_missing_send),
        cmocka_unit_test(test_missing_init),
        cmocka_unit_test(test_unresolved_symbol),
        cmocka_unit_test(test_no_descriptor),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_check_pure),
        cmocka_unit_test(test_scan),
        cmocka_unit_test(test_instances_and_secrets),
    };
    return cmocka_run_group_tests_name("loader", tests, NULL, NULL);
}

/*
 * Configuration: the YAML tree and its positions, ${ENV}, every error an
 * administrator can get (with its exact file:line:column and key path), the
 * value parsers, and option tables as plugins declare them.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mh_config.h"
#include "mh_log.h"
#include "mh_options.h"

#ifndef MH_TEST_SRCDIR
#define MH_TEST_SRCDIR "."
#endif

/* ------------------------------------------------------------ helpers */

static char *data_path(const char *name)
{
    const char *top = getenv("top_srcdir");
    char *p = malloc(4096);
    assert_non_null(p);
    snprintf(p, 4096, "%s/tests/data/config/%s", top && *top ? top : MH_TEST_SRCDIR, name);
    return p;
}

static struct mh_cfg_node *parse(const char *yaml, struct mh_cfg_errors *e)
{
    return mh_cfg_parse("t.yaml", yaml, strlen(yaml), e);
}

static struct mh_daemon_config *load(const char *yaml, struct mh_cfg_errors *e)
{
    return mh_config_load_string("/etc/mailhub/t.yaml", yaml, strlen(yaml), e);
}

static void dump_errors(const struct mh_cfg_errors *e)
{
    for (size_t i = 0; i < e->n; i++)
        print_message("    error: %s\n", e->msgs[i]);
}

static int has_error(const struct mh_cfg_errors *e, const char *msg)
{
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->msgs[i], msg) == 0)
            return 1;
    return 0;
}

static void assert_has_error(const struct mh_cfg_errors *e, const char *msg)
{
    if (!has_error(e, msg)) {
        print_message("expected error: %s\n", msg);
        dump_errors(e);
        fail();
    }
}

static void assert_no_error_contains(const struct mh_cfg_errors *e, const char *needle)
{
    for (size_t i = 0; i < e->n; i++)
        if (strstr(e->msgs[i], needle) != NULL) {
            print_message("error leaks '%s': %s\n", needle, e->msgs[i]);
            fail();
        }
}

/* The config must be rejected with exactly these errors, in this order. */
static void expect_errors(const char *yaml, ...)
{
    struct mh_cfg_errors e = {0};
    struct mh_daemon_config *c = load(yaml, &e);
    va_list ap;
    size_t n = 0;
    const char *msg;

    assert_null(c);
    va_start(ap, yaml);
    while ((msg = va_arg(ap, const char *)) != NULL) {
        if (n >= e.n || strcmp(e.msgs[n], msg) != 0) {
            print_message("expected error #%zu: %s\n", n, msg);
            dump_errors(&e);
            fail();
        }
        n++;
    }
    va_end(ap);
    if (n != e.n) {
        dump_errors(&e);
        fail_msg("expected %zu errors, got %zu", n, e.n);
    }
    mh_cfg_errors_clear(&e);
}

static struct mh_daemon_config *load_ok(const char *yaml)
{
    struct mh_cfg_errors e = {0};
    struct mh_daemon_config *c = load(yaml, &e);
    if (c == NULL || e.n != 0) {
        dump_errors(&e);
        fail();
    }
    return c;
}

/* ------------------------------------------------------------- tree */

static void test_tree_positions(void **state)
{
    (void)state;
    struct mh_cfg_errors e = {0};
    struct mh_cfg_node *root = parse("# comment\n"
                                     "daemon:\n"
                                     "  workers: 4\n"
                                     "  name: 'quoted'\n"
                                     "list: [a, \"b\"]\n"
                                     "block:\n"
                                     "  - x\n"
                                     "  - ~\n"
                                     "nothing:\n"
                                     "word: null\n"
                                     "text: \"\"\n",
                                     &e);
    assert_non_null(root);
    assert_int_equal(e.n, 0);
    assert_int_equal(root->type, MH_CFG_MAP);
    assert_int_equal(root->n, 6);

    const struct mh_cfg_pair *dp = mh_cfg_get_pair(root, "daemon");
    assert_non_null(dp);
    assert_int_equal(dp->line, 2);
    assert_int_equal(dp->col, 1);
    const struct mh_cfg_node *d = dp->value;
    assert_int_equal(d->type, MH_CFG_MAP);
    assert_int_equal(d->line, 3);
    assert_int_equal(d->col, 3);
    assert_int_equal(d->pairs[0].line, 3);
    assert_int_equal(d->pairs[0].col, 3);
    const struct mh_cfg_node *w = mh_cfg_get(d, "workers");
    assert_string_equal(w->scalar, "4");
    assert_int_equal(w->line, 3);
    assert_int_equal(w->col, 12);
    assert_false(w->quoted);
    const struct mh_cfg_node *nm = mh_cfg_get(d, "name");
    assert_string_equal(nm->scalar, "quoted");
    assert_true(nm->quoted);
    assert_int_equal(nm->col, 9);

    const struct mh_cfg_node *l = mh_cfg_get(root, "list");
    assert_int_equal(l->type, MH_CFG_SEQ);
    assert_int_equal(l->n, 2);
    assert_int_equal(l->col, 7);
    assert_string_equal(l->items[1]->scalar, "b");
    assert_int_equal(l->items[1]->line, 5);
    assert_int_equal(l->items[1]->col, 11);

    const struct mh_cfg_node *b = mh_cfg_get(root, "block");
    assert_int_equal(b->n, 2);
    assert_int_equal(b->items[0]->line, 7);
    assert_int_equal(b->items[0]->col, 5);
    assert_true(b->items[1]->is_null);
    assert_string_equal(b->items[1]->scalar, "");

    assert_true(mh_cfg_get(root, "nothing")->is_null);
    assert_true(mh_cfg_get(root, "word")->is_null);
    const struct mh_cfg_node *t = mh_cfg_get(root, "text");
    assert_false(t->is_null);
    assert_string_equal(t->scalar, "");
    assert_null(mh_cfg_get(root, "missing"));
    assert_null(mh_cfg_get(w, "workers")); /* not a map */
    assert_null(mh_cfg_get_pair(NULL, "x"));
    mh_cfg_node_free(&root);
    assert_null(root);
    mh_cfg_node_free(&root); /* NULL-safe */
}

static void test_tree_empty(void **state)
{
    (void)state;
    static const char *const empties[] = {"", "# only a comment\n", "---\n", "~\n", "---\n...\n"};
    for (size_t i = 0; i < sizeof empties / sizeof empties[0]; i++) {
        struct mh_cfg_errors e = {0};
        struct mh_cfg_node *root = parse(empties[i], &e);
        assert_non_null(root);
        assert_int_equal(e.n, 0);
        assert_int_equal(root->type, MH_CFG_MAP);
        assert_int_equal(root->n, 0);
        mh_cfg_node_free(&root);
    }
}

static void expect_parse_error(const char *yaml, const char *msg)
{
    struct mh_cfg_errors e = {0};
    struct mh_cfg_node *root = parse(yaml, &e);
    assert_null(root);
    assert_has_error(&e, msg);
    mh_cfg_errors_clear(&e);
    assert_int_equal(e.n, 0);
    assert_null(e.msgs);
}

static void test_tree_syntax_errors(void **state)
{
    (void)state;
    expect_parse_error("daemon:\n  workers: [1\n",
                       "t.yaml:3:1: YAML syntax error: did not find expected ',' or ']' "
                       "(while parsing a flow sequence started at line 2, column 12)");
    expect_parse_error("daemon:\n\tworkers: 2\n",
                       "t.yaml:2:1: YAML syntax error: found character that cannot start any token "
                       "(while scanning for the next token started at line 2, column 1); "
                       "YAML does not allow tabs for indentation, use spaces");
    expect_parse_error("a: b: c\n",
                       "t.yaml:1:5: YAML syntax error: mapping values are not allowed in this context");
    expect_parse_error("a: \"open\n", "t.yaml:2:1: YAML syntax error: found unexpected end of stream "
                                      "(while scanning a quoted scalar started at line 1, column 4)");
    /* invalid UTF-8: a reader error, positioned from its byte offset */
    expect_parse_error("a: 1\nb: x\xff\n",
                       "t.yaml:2:5: cannot read the file: invalid leading UTF-8 octet (byte 0xff)");
    expect_parse_error("a: \"x\\0y\"\n", "t.yaml:1:4: a: a NUL character (\\0) is not allowed here");
}

static void test_tree_structure_errors(void **state)
{
    (void)state;
    expect_parse_error("a: 1\nb: 2\na: 3\n",
                       "t.yaml:3:1: a: duplicate key 'a' (first set at line 1, column 1)");
    expect_parse_error("d:\n  x: 1\n  y: {x: 2, x: 3}\n",
                       "t.yaml:3:13: d.y.x: duplicate key 'x' (first set at line 3, column 7)");
    expect_parse_error("base: &b {port: 1}\n",
                       "t.yaml:1:7: base: anchors (&b) are not supported; write the value out in full");
    expect_parse_error("a: 1\nb: *x\n",
                       "t.yaml:2:4: b: aliases (*x) are not supported; write the value out in full");
    expect_parse_error("a: !!int 5\n",
                       "t.yaml:1:4: a: YAML tags (tag:yaml.org,2002:int) are not supported; remove the tag");
    expect_parse_error(
        "a: 1\n---\nb: 2\n",
        "t.yaml:2:1: a second YAML document starts here; the configuration must be a single document");
    expect_parse_error("? [a, b]\n: 1\n", "t.yaml:1:3: a key must be a plain string, not a list");
    expect_parse_error("- a\n- b\n",
                       "t.yaml:1:1: the configuration must be a map of sections such as 'daemon:' "
                       "and 'store:', not a list");
    expect_parse_error("just text\n",
                       "t.yaml:1:1: the configuration must be a map of sections such as 'daemon:' "
                       "and 'store:', not a string");

    /* bounded nesting */
    char deep[400] = "a: ";
    for (int i = 0; i < 70; i++)
        strcat(deep, "[");
    strcat(deep, "\n");
    struct mh_cfg_errors e = {0};
    assert_null(parse(deep, &e));
    assert_int_equal(e.n, 1);
    assert_non_null(strstr(e.msgs[0], "nesting deeper than 64 levels"));
    mh_cfg_errors_clear(&e);
}

static void test_tree_all_errors_reported(void **state)
{
    (void)state;
    struct mh_cfg_errors e = {0};
    assert_null(parse("a: 1\na: 2\nb: &x 3\nc: *x\n", &e));
    assert_int_equal(e.n, 3);
    assert_string_equal(e.msgs[0], "t.yaml:2:1: a: duplicate key 'a' (first set at line 1, column 1)");
    assert_string_equal(e.msgs[1],
                        "t.yaml:3:4: b: anchors (&x) are not supported; write the value out in full");
    assert_string_equal(e.msgs[2],
                        "t.yaml:4:4: c: aliases (*x) are not supported; write the value out in full");
    mh_cfg_errors_clear(&e);
}

static void test_tree_file(void **state)
{
    (void)state;
    struct mh_cfg_errors e = {0};
    char *path = data_path("full.yaml");
    setenv("MH_TEST_IMAP_PASSWORD", "pw-from-env", 1);
    struct mh_cfg_node *root = mh_cfg_parse_file(path, &e);
    assert_non_null(root);
    assert_non_null(mh_cfg_get(root, "providers"));
    mh_cfg_node_free(&root);

    assert_null(mh_cfg_parse_file("/nonexistent/mailhub.yaml", &e));
    assert_int_equal(e.n, 1);
    assert_string_equal(
        e.msgs[0],
        "/nonexistent/mailhub.yaml: cannot open the configuration file: No such file or directory");
    mh_cfg_errors_clear(&e);
    free(path);
}

static void test_errors_format(void **state)
{
    (void)state;
    struct mh_cfg_errors e = {0};
    mh_cfg_errors_add(&e, "f.yaml", 3, 7, "daemon.workers", "bad %d", 1);
    mh_cfg_errors_add(&e, "f.yaml", 0, 0, "daemon", "no position");
    mh_cfg_errors_add(&e, NULL, 2, 1, NULL, "no path");
    assert_int_equal(e.n, 3);
    assert_string_equal(e.msgs[0], "f.yaml:3:7: daemon.workers: bad 1");
    assert_string_equal(e.msgs[1], "f.yaml: daemon: no position");
    assert_string_equal(e.msgs[2], "<config>:2:1: no path");
    mh_cfg_errors_clear(&e);
    assert_int_equal(e.n, 0);

    char *p = mh_cfg_printable("a\nb\x01\xc2\x85z");
    assert_string_equal(p, "a\\nb\\x01\\u0085z");
    free(p);
    char long_text[200];
    memset(long_text, 'x', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    p = mh_cfg_printable(long_text);
    assert_int_equal(strlen(p), 63);
    assert_string_equal(p + 60, "...");
    free(p);
}

/* ---------------------------------------------------------------- env */

static void test_env_substitution(void **state)
{
    (void)state;
    struct mh_cfg_errors e = {0};
    setenv("MH_TEST_HOST", "imap.example.com", 1);
    setenv("MH_TEST_EMPTY", "", 1);
    struct mh_cfg_node *root = parse("a: ${MH_TEST_HOST}\n"
                                     "b: \"x-${MH_TEST_HOST}:993\"\n"
                                     "c: $${MH_TEST_HOST}\n"
                                     "d: cost $5 or $$5\n"
                                     "e: '${MH_TEST_EMPTY}'\n"
                                     "${MH_TEST_HOST}: key\n",
                                     &e);
    assert_non_null(root);
    assert_int_equal(e.n, 0);
    const struct mh_cfg_node *a = mh_cfg_get(root, "a");
    assert_string_equal(a->scalar, "imap.example.com");
    assert_string_equal(a->env_raw, "${MH_TEST_HOST}");
    assert_string_equal(mh_cfg_get(root, "b")->scalar, "x-imap.example.com:993");
    const struct mh_cfg_node *c = mh_cfg_get(root, "c");
    assert_string_equal(c->scalar, "${MH_TEST_HOST}");
    assert_null(c->env_raw); /* an escape, not a substitution */
    assert_string_equal(mh_cfg_get(root, "d")->scalar, "cost $5 or $$5");
    assert_string_equal(mh_cfg_get(root, "e")->scalar, "");
    /* keys are names, never substituted */
    assert_string_equal(mh_cfg_get(root, "${MH_TEST_HOST}")->scalar, "key");
    mh_cfg_node_free(&root);
}

static void test_env_errors(void **state)
{
    (void)state;
    unsetenv("MH_TEST_UNSET");
    expect_parse_error(
        "providers:\n  work:\n    password: x${MH_TEST_UNSET}\n",
        "t.yaml:3:16: providers.work.password: environment variable 'MH_TEST_UNSET' is not set");
    expect_parse_error("a: \"abc ${MH_TEST_UNSET}\"\n",
                       "t.yaml:1:9: a: environment variable 'MH_TEST_UNSET' is not set");
    /* multi-line: the scalar's own position */
    expect_parse_error("a: >\n  one\n  ${MH_TEST_UNSET}\n",
                       "t.yaml:1:4: a: environment variable 'MH_TEST_UNSET' is not set");
    expect_parse_error("a: ${MH TEST}\n",
                       "t.yaml:1:4: a: '${MH TEST}' is not a valid environment variable "
                       "reference; names use letters, digits and '_' (write $${ for a literal ${)");
    expect_parse_error("a: ${}\n",
                       "t.yaml:1:4: a: '${}' is not a valid environment variable "
                       "reference; names use letters, digits and '_' (write $${ for a literal ${)");
    expect_parse_error("a: x${OPEN\n",
                       "t.yaml:1:5: a: '${' without a closing '}'; write ${NAME} for an environment "
                       "variable, or $${ for a literal ${");
}

static void test_env_secret_never_shown(void **state)
{
    (void)state;
    struct mh_cfg_errors e = {0};
    setenv("MH_TEST_SECRET", "hunter2-very-secret", 1);
    unsetenv("MH_TEST_UNSET");
    struct mh_daemon_config *c = load("daemon:\n"
                                      "  workers: ${MH_TEST_SECRET}\n"
                                      "  log_level: ${MH_TEST_SECRET}\n"
                                      "  pid_file: ${MH_TEST_UNSET}\n"
                                      "listeners:\n"
                                      "  api: {port: \"${MH_TEST_SECRET}\"}\n",
                                      &e);
    assert_null(c);
    assert_has_error(&e,
                     "/etc/mailhub/t.yaml:2:12: daemon.workers: expected an integer from 1 to 64, got the "
                     "value of '${MH_TEST_SECRET}' (not shown)");
    assert_has_error(
        &e, "/etc/mailhub/t.yaml:3:14: daemon.log_level: expected one of error, warn, info or debug, "
            "got the value of '${MH_TEST_SECRET}' (not shown)");
    /* the unset variable is reported once, with no "missing value" after it */
    assert_has_error(
        &e, "/etc/mailhub/t.yaml:4:13: daemon.pid_file: environment variable 'MH_TEST_UNSET' is not set");
    assert_has_error(&e,
                     "/etc/mailhub/t.yaml:6:15: listeners.api.port: expected an integer from 1 to 65535, got "
                     "the value of '${MH_TEST_SECRET}' (not shown)");
    assert_int_equal(e.n, 4);
    assert_no_error_contains(&e, "hunter2");
    mh_cfg_errors_clear(&e);

    /* values that are echoed when written literally are not when they come from the environment */
    setenv("MH_TEST_SECRET_NAME", "Not A Plugin Name", 1);
    c = load("store: {plugin: '${MH_TEST_SECRET_NAME}'}\n"
             "notifiers:\n  n: {plugin: x, events: [\"${MH_TEST_SECRET_NAME}\"]}\n"
             "listeners:\n  a: {port: 1, address: '${MH_TEST_SECRET_NAME}'}\n"
             "  b: {port: 1, address: '${MH_TEST_SECRET_NAME}'}\n",
             &e);
    assert_null(c);
    assert_has_error(
        &e, "/etc/mailhub/t.yaml:1:17: store.plugin: invalid plugin name (the value of "
            "'${MH_TEST_SECRET_NAME}', not shown); plugin names use lowercase letters, digits, '_' and "
            "'-'");
    assert_has_error(
        &e, "/etc/mailhub/t.yaml:3:27: notifiers.n.events[0]: invalid event pattern (the value of "
            "'${MH_TEST_SECRET_NAME}', not shown); expected an event type such as 'mail.received', or a "
            "pattern such as 'mail.*' or '*'");
    assert_has_error(&e,
                     "/etc/mailhub/t.yaml:6:13: listeners.b: address (the value of '${MH_TEST_SECRET_NAME}', "
                     "not shown), port 1 is already used by listener 'a'");
    assert_int_equal(e.n, 3);
    assert_no_error_contains(&e, "Not A Plugin");
    mh_cfg_errors_clear(&e);
}

/* ------------------------------------------------------------- schema */

static void test_schema_full_file(void **state)
{
    (void)state;
    struct mh_cfg_errors e = {0};
    char *path = data_path("full.yaml");
    char *dir = data_path("");
    char expect[4200];
    dir[strlen(dir) - 1] = '\0'; /* no trailing slash */
    setenv("MH_TEST_IMAP_PASSWORD", "pw-from-env", 1);

    struct mh_daemon_config *c = mh_config_load(path, &e);
    if (c == NULL)
        dump_errors(&e);
    assert_non_null(c);
    assert_int_equal(e.n, 0);
    if (path[0] == '/')
        assert_string_equal(c->file, path);
    assert_int_equal(c->file[0], '/');

    snprintf(expect, sizeof expect, "%s/var/lib", dir);
    if (dir[0] == '/')
        assert_string_equal(c->data_dir, expect);
    else
        assert_non_null(strstr(c->data_dir, "tests/data/config/var/lib"));
    assert_int_equal(c->data_dir[0], '/');
    assert_int_equal(c->log_level, MH_LOG_DEBUG);
    assert_true(c->log_syslog);
    assert_int_equal(c->workers, 8);
    assert_int_equal(c->shutdown_timeout_ms, 90000);
    assert_non_null(strstr(c->pid_file, "tests/data/config/run/mailhubd.pid"));
    assert_int_equal(c->pid_file[0], '/');
    assert_string_equal(c->ca_file, "/etc/ssl/certs/extra.pem");

    assert_int_equal(c->n_listeners, 2);
    assert_string_equal(c->listeners[0].name, "api");
    assert_string_equal(c->listeners[0].address, "0.0.0.0");
    assert_int_equal(c->listeners[0].port, 8025);
    assert_string_equal(c->listeners[1].name, "metrics");
    assert_string_equal(c->listeners[1].address, "127.0.0.1");
    assert_int_equal(c->listeners[1].port, 9100);

    assert_int_equal(c->n_plugin_path, 2);
    assert_non_null(strstr(c->plugin_path[0], "tests/data/config/plugins"));
    assert_int_equal(c->plugin_path[0][0], '/');
    assert_string_equal(c->plugin_path[1], "/opt/mailhub/plugins");

    assert_string_equal(c->store.name, "store");
    assert_string_equal(c->store.plugin, "sqlite");
    assert_int_equal(c->store.kind, MH_KIND_STORE);
    assert_non_null(c->store.options);
    assert_string_equal(mh_cfg_get(c->store.options, "file")->scalar, "mail.db");
    assert_int_equal(c->store.line, 19);
    assert_int_equal(c->store.options_line, 21);
    assert_int_equal(c->store.options_col, 3);
    assert_int_equal(c->quota.initial, 64u << 20);
    assert_int_equal(c->quota.extend_when_free_below, 4u << 20);
    assert_int_equal(c->quota.extend_by, 32u << 20);
    assert_int_equal(c->quota.max, 1u << 30);

    assert_int_equal(c->n_providers, 2);
    const struct mh_instance_cfg *w = &c->providers[0];
    assert_string_equal(w->name, "work");
    assert_string_equal(w->plugin, "imap");
    assert_int_equal(w->kind, MH_KIND_PROVIDER);
    assert_string_equal(w->user, "alice");
    assert_int_equal(w->line, 30);
    assert_int_equal(w->col, 3);
    assert_int_equal(w->options_line, 33);
    assert_int_equal(w->options_col, 5);
    assert_string_equal(mh_cfg_get(w->options, "password")->scalar, "pw-from-env");
    assert_string_equal(mh_cfg_get(w->options, "note")->scalar, "costs ${HOME} nothing");
    const struct mh_instance_cfg *h = &c->providers[1];
    assert_string_equal(h->name, "home-2");
    assert_null(h->user);
    assert_null(h->options);
    assert_int_equal(h->options_line, h->line); /* no options: the instance's own position */

    assert_int_equal(c->n_notifiers, 2);
    assert_string_equal(c->notifiers[0].name, "sms");
    assert_int_equal(c->notifiers[0].kind, MH_KIND_NOTIFIER);
    assert_non_null(c->notifiers[0].events);
    assert_string_equal(c->notifiers[0].events[0], "mail.received");
    assert_string_equal(c->notifiers[0].events[1], "account.*");
    assert_null(c->notifiers[0].events[2]);
    assert_null(c->notifiers[1].events); /* all events */

    mh_config_free(&c);
    assert_null(c);
    mh_config_free(&c);
    free(path);
    free(dir);
}

static void test_schema_defaults(void **state)
{
    (void)state;
    static const char *const texts[] = {"", "daemon:\nlisteners:\nstore:\nproviders: {}\n"};
    for (size_t i = 0; i < 2; i++) {
        struct mh_daemon_config *c = load_ok(texts[i]);
        assert_string_equal(c->file, "/etc/mailhub/t.yaml");
        assert_string_equal(c->data_dir, "/etc/mailhub/data");
        assert_int_equal(c->log_level, MH_LOG_INFO);
        assert_false(c->log_syslog);
        assert_int_equal(c->workers, 2);
        assert_int_equal(c->shutdown_timeout_ms, 10000);
        assert_null(c->pid_file);
        assert_null(c->ca_file);
        assert_int_equal(c->n_listeners, 0);
        assert_int_equal(c->n_plugin_path, 1);
        assert_string_equal(c->plugin_path[0], MH_PLUGINDIR);
        assert_string_equal(c->store.plugin, "sqlite");
        assert_string_equal(c->store.name, "store");
        assert_int_equal(c->store.kind, MH_KIND_STORE);
        assert_null(c->store.options);
        assert_int_equal(c->quota.initial, 30u << 20);
        assert_int_equal(c->quota.extend_when_free_below, 2u << 20);
        assert_int_equal(c->quota.extend_by, 30u << 20);
        assert_int_equal(c->quota.max, 0);
        assert_int_equal(c->n_providers, 0);
        assert_int_equal(c->n_notifiers, 0);
        mh_config_free(&c);
    }

    char *path = data_path("minimal.yaml");
    struct mh_cfg_errors e = {0};
    struct mh_daemon_config *c = mh_config_load(path, &e);
    assert_non_null(c);
    assert_string_equal(c->store.plugin, "sqlite");
    mh_config_free(&c);
    free(path);
}

static void test_schema_relative_paths(void **state)
{
    (void)state;
    struct mh_daemon_config *c = load_ok("daemon:\n"
                                         "  data_dir: state\n"
                                         "  pid_file: ./run/x.pid\n"
                                         "  tls_ca_file: ca/extra.pem\n"
                                         "plugins:\n"
                                         "  path: [., ./lib/plugins, /opt/p]\n");
    assert_string_equal(c->data_dir, "/etc/mailhub/state");
    assert_string_equal(c->pid_file, "/etc/mailhub/run/x.pid");
    assert_string_equal(c->ca_file, "/etc/mailhub/ca/extra.pem");
    assert_int_equal(c->n_plugin_path, 3);
    assert_string_equal(c->plugin_path[0], "/etc/mailhub");
    assert_string_equal(c->plugin_path[1], "/etc/mailhub/lib/plugins");
    assert_string_equal(c->plugin_path[2], "/opt/p");
    mh_config_free(&c);

    /* one scalar is a list of one */
    c = load_ok("plugins: {path: /usr/lib/x}\n");
    assert_int_equal(c->n_plugin_path, 1);
    assert_string_equal(c->plugin_path[0], "/usr/lib/x");
    mh_config_free(&c);

    /* a relative file name resolves against the working directory */
    char cwd[4096], expect[4200];
    assert_non_null(getcwd(cwd, sizeof cwd));
    struct mh_cfg_errors e = {0};
    c = mh_config_load_string("conf/m.yaml", "", 0, &e);
    assert_non_null(c);
    snprintf(expect, sizeof expect, "%s/conf/m.yaml", cwd);
    assert_string_equal(c->file, expect);
    snprintf(expect, sizeof expect, "%s/conf/data", cwd);
    assert_string_equal(c->data_dir, expect);
    mh_config_free(&c);
}

static void test_schema_unknown_keys(void **state)
{
    (void)state;
    expect_errors("daemon:\n  log_levle: debug\n",
                  "/etc/mailhub/t.yaml:2:3: unknown key 'log_levle' in daemon; did you mean 'log_level'?",
                  NULL);
    expect_errors("provders: {}\n",
                  "/etc/mailhub/t.yaml:1:1: unknown top-level key 'provders'; did you mean 'providers'?",
                  NULL);
    expect_errors("listeners:\n  api: {prot: 80, port: 81}\n",
                  "/etc/mailhub/t.yaml:2:9: unknown key 'prot' in listeners.api; did you mean 'port'?", NULL);
    expect_errors("store:\n  plugin: sqlite\n  quota: {maximum: 1GB}\n",
                  "/etc/mailhub/t.yaml:3:11: unknown key 'maximum' in store.quota; expected one of: initial, "
                  "extend_when_free_below, extend_by, max",
                  NULL);
    expect_errors("notifiers:\n  n: {plugin: x, event: [a]}\n",
                  "/etc/mailhub/t.yaml:2:18: unknown key 'event' in notifiers.n; did you mean 'events'?",
                  NULL);
    expect_errors("zzz: 1\n",
                  "/etc/mailhub/t.yaml:1:1: unknown top-level key 'zzz'; expected one of: daemon, "
                  "listeners, plugins, store, providers, notifiers",
                  NULL);
}

static void test_schema_wrong_types(void **state)
{
    (void)state;
    expect_errors("daemon: [a]\n", "/etc/mailhub/t.yaml:1:9: daemon: expected a map, got a list", NULL);
    expect_errors("daemon:\n  workers: [1, 2]\n  data_dir: {a: 1}\n",
                  "/etc/mailhub/t.yaml:2:12: daemon.workers: expected an integer from 1 to 64, got a list",
                  "/etc/mailhub/t.yaml:3:13: daemon.data_dir: expected a string, got a map", NULL);
    expect_errors("listeners: [api]\n", "/etc/mailhub/t.yaml:1:12: listeners: expected a map, got a list",
                  NULL);
    expect_errors("listeners:\n  api: 8025\n",
                  "/etc/mailhub/t.yaml:2:8: listeners.api: expected a map, got '8025'", NULL);
    expect_errors("plugins: {path: {a: b}}\n",
                  "/etc/mailhub/t.yaml:1:17: plugins.path: expected a string or a list of strings, got a map",
                  NULL);
    expect_errors("plugins: {path: [a, [b]]}\n",
                  "/etc/mailhub/t.yaml:1:21: plugins.path[1]: expected a string, got a list", NULL);
    expect_errors("providers:\n  w: {plugin: imap, options: [a]}\n",
                  "/etc/mailhub/t.yaml:2:30: providers.w.options: expected a map, got a list", NULL);
    expect_errors("daemon:\n  data_dir: ''\n",
                  "/etc/mailhub/t.yaml:2:13: daemon.data_dir: expected a path, got an empty string", NULL);
}

static void test_schema_ranges_and_enums(void **state)
{
    (void)state;
    expect_errors("daemon:\n  workers: 0\n",
                  "/etc/mailhub/t.yaml:2:12: daemon.workers: expected an integer from 1 to 64, got '0'",
                  NULL);
    expect_errors("daemon:\n  workers: two\n",
                  "/etc/mailhub/t.yaml:2:12: daemon.workers: expected an integer from 1 to 64, got 'two'",
                  NULL);
    expect_errors(
        "listeners:\n  api: {port: 70000}\n",
        "/etc/mailhub/t.yaml:2:15: listeners.api.port: expected an integer from 1 to 65535, got '70000'",
        NULL);
    expect_errors(
        "daemon:\n  log_level: verbose\n",
        "/etc/mailhub/t.yaml:2:14: daemon.log_level: expected one of error, warn, info or debug, got "
        "'verbose'",
        NULL);
    expect_errors(
        "daemon:\n  log_level: deubg\n",
        "/etc/mailhub/t.yaml:2:14: daemon.log_level: expected one of error, warn, info or debug, got "
        "'deubg'; did you mean 'debug'?",
        NULL);
    expect_errors(
        "daemon:\n  shutdown_timeout: abc\n",
        "/etc/mailhub/t.yaml:2:21: daemon.shutdown_timeout: expected a duration such as 5s or 250ms, "
        "got 'abc'",
        NULL);
    expect_errors(
        "store:\n  plugin: sqlite\n  quota:\n    initial: 30XB\n",
        "/etc/mailhub/t.yaml:4:14: store.quota.initial: expected a size such as 512KB or 30MB, got '30XB'",
        NULL);

    /* enums are case-insensitive, and keep their canonical spelling */
    struct mh_daemon_config *c = load_ok("daemon: {log_level: WARN, log_target: Stderr}\n");
    assert_int_equal(c->log_level, MH_LOG_WARN);
    assert_false(c->log_syslog);
    mh_config_free(&c);
}

static void test_schema_missing_required(void **state)
{
    (void)state;
    expect_errors("listeners:\n  api:\n    address: 0.0.0.0\n",
                  "/etc/mailhub/t.yaml:2:3: listeners.api: missing required key 'port'", NULL);
    expect_errors("listeners:\n  api:\n",
                  "/etc/mailhub/t.yaml:2:3: listeners.api: missing required key 'port'", NULL);
    expect_errors("providers:\n  work:\n    user: bob\n",
                  "/etc/mailhub/t.yaml:2:3: providers.work: missing required key 'plugin'", NULL);
    expect_errors("providers:\n  work:\n    plugin:\n",
                  "/etc/mailhub/t.yaml:3:12: providers.work.plugin: expected a string, got an empty value",
                  NULL);
    expect_errors("store:\n  options: {file: x}\n",
                  "/etc/mailhub/t.yaml:1:1: store: missing required key 'plugin'", NULL);
    expect_errors("notifiers:\n  n: {events: [a]}\n",
                  "/etc/mailhub/t.yaml:2:3: notifiers.n: missing required key 'plugin'", NULL);
}

static void test_schema_names(void **state)
{
    (void)state;
    expect_errors(
        "providers:\n  Work: {plugin: imap}\n",
        "/etc/mailhub/t.yaml:2:3: providers: invalid instance name 'Work'; use lowercase letters, digits, "
        "'_' and '-', starting with a letter or digit (at most 64 characters)",
        NULL);
    expect_errors(
        "notifiers:\n  _sms: {plugin: x}\n",
        "/etc/mailhub/t.yaml:2:3: notifiers: invalid instance name '_sms'; use lowercase letters, digits, "
        "'_' and '-', starting with a letter or digit (at most 64 characters)",
        NULL);
    expect_errors(
        "listeners:\n  \"a b\": {port: 1}\n",
        "/etc/mailhub/t.yaml:2:3: listeners: invalid listener name 'a b'; use lowercase letters, digits, "
        "'_' and '-', starting with a letter or digit (at most 64 characters)",
        NULL);
    expect_errors(
        "providers:\n  w: {plugin: ../../tmp/evil}\n",
        "/etc/mailhub/t.yaml:2:15: providers.w.plugin: invalid plugin name '../../tmp/evil'; plugin "
        "names use lowercase letters, digits, '_' and '-'",
        NULL);
    expect_errors("store: {plugin: 'SQL ite'}\n",
                  "/etc/mailhub/t.yaml:1:17: store.plugin: invalid plugin name 'SQL ite'; plugin names use "
                  "lowercase letters, digits, '_' and '-'",
                  NULL);
    /* the longest valid name */
    char yaml[200];
    snprintf(yaml, sizeof yaml, "providers:\n  %s: {plugin: imap}\n",
             "a234567890123456789012345678901234567890123456789012345678901234");
    struct mh_daemon_config *c = load_ok(yaml);
    assert_int_equal(strlen(c->providers[0].name), 64);
    mh_config_free(&c);
    snprintf(yaml, sizeof yaml, "providers:\n  %s: {plugin: imap}\n",
             "a2345678901234567890123456789012345678901234567890123456789012345");
    struct mh_cfg_errors e = {0};
    assert_null(load(yaml, &e));
    assert_int_equal(e.n, 1);
    mh_cfg_errors_clear(&e);
}

static void test_schema_quota(void **state)
{
    (void)state;
    expect_errors("store:\n  plugin: sqlite\n  quota: {extend_by: 0}\n",
                  "/etc/mailhub/t.yaml:3:22: store.quota.extend_by: must be greater than 0", NULL);
    expect_errors(
        "store:\n  plugin: sqlite\n  quota: {extend_when_free_below: 30MB}\n",
        "/etc/mailhub/t.yaml:3:35: store.quota.extend_when_free_below: must be less than initial (30MB), "
        "got 30MB",
        NULL);
    expect_errors(
        "store:\n  plugin: sqlite\n  quota: {initial: 1MB}\n",
        "/etc/mailhub/t.yaml:3:20: store.quota.initial: must be greater than extend_when_free_below "
        "(2MB), got 1MB",
        NULL);
    expect_errors(
        "store:\n  plugin: sqlite\n  quota: {max: 10MB}\n",
        "/etc/mailhub/t.yaml:3:16: store.quota.max: must be 0 (no maximum) or at least initial (30MB), "
        "got 10MB",
        NULL);
    struct mh_daemon_config *c = load_ok("store:\n  plugin: sqlite\n  quota: {initial: 1GiB, max: 1024MB, "
                                         "extend_by: 1.5MB, extend_when_free_below: 512}\n");
    assert_int_equal(c->quota.initial, 1u << 30);
    assert_int_equal(c->quota.max, 1u << 30);
    assert_int_equal(c->quota.extend_by, 1572864);
    assert_int_equal(c->quota.extend_when_free_below, 512);
    mh_config_free(&c);
}

static void test_schema_listeners_and_events(void **state)
{
    (void)state;
    expect_errors("listeners:\n  a: {port: 8025}\n  b: {address: 127.0.0.1, port: 8025}\n",
                  "/etc/mailhub/t.yaml:3:33: listeners.b: address '127.0.0.1', port 8025 is already used by "
                  "listener 'a'",
                  NULL);
    expect_errors(
        "notifiers:\n  n:\n    plugin: x\n    events: [mail.received, Mail Received]\n",
        "/etc/mailhub/t.yaml:4:29: notifiers.n.events[1]: invalid event pattern 'Mail Received'; expected an "
        "event type such as 'mail.received', or a pattern such as 'mail.*' or '*'",
        NULL);
    expect_errors(
        "notifiers:\n  n: {plugin: x, events: []}\n",
        "/etc/mailhub/t.yaml:2:26: notifiers.n.events: the list is empty, so nothing would be delivered; "
        "remove 'events' to receive every event",
        NULL);
    struct mh_daemon_config *c = load_ok("notifiers:\n  n: {plugin: x, events: '*'}\n");
    assert_string_equal(c->notifiers[0].events[0], "*");
    assert_null(c->notifiers[0].events[1]);
    mh_config_free(&c);
}

static void test_schema_collects_all_errors(void **state)
{
    (void)state;
    struct mh_cfg_errors e = {0};
    char *path = data_path("errors.yaml");
    struct mh_daemon_config *c = mh_config_load(path, &e);
    char expect[5][4400];
    assert_null(c);
    snprintf(expect[0], sizeof expect[0],
             "%s:2:3: unknown key 'log_levle' in daemon; did you mean 'log_level'?", path);
    snprintf(expect[1], sizeof expect[1],
             "%s:3:12: daemon.workers: expected an integer from 1 to 64, got '100'", path);
    snprintf(expect[2], sizeof expect[2], "%s:5:3: listeners.api: missing required key 'port'", path);
    snprintf(expect[3], sizeof expect[3],
             "%s:9:20: store.quota.initial: must be greater than extend_when_free_below (2MB), got 1MB",
             path);
    snprintf(expect[4], sizeof expect[4],
             "%s:9:30: store.quota.max: must be 0 (no maximum) or at least initial (1MB), got 512KB", path);
    if (e.n != 5)
        dump_errors(&e);
    assert_int_equal(e.n, 5);
    for (int i = 0; i < 5; i++)
        assert_string_equal(e.msgs[i], expect[i]);
    mh_cfg_errors_clear(&e);
    free(path);

    /* parser-level and schema-level errors in one run, in file order */
    unsetenv("MH_TEST_UNSET");
    expect_errors(
        "daemon:\n  workers: 0\n  workers: 1\nproviders:\n  w: {plugin: imap, user: '${MH_TEST_UNSET}'}\n",
        "/etc/mailhub/t.yaml:2:12: daemon.workers: expected an integer from 1 to 64, got '0'",
        "/etc/mailhub/t.yaml:3:3: daemon.workers: duplicate key 'workers' (first set at line 2, column 3)",
        "/etc/mailhub/t.yaml:5:28: providers.w.user: environment variable 'MH_TEST_UNSET' is not set", NULL);

    assert_null(mh_config_load("/nonexistent/mailhub.yaml", &e));
    assert_int_equal(e.n, 1);
    mh_cfg_errors_clear(&e);
}

/* ------------------------------------------------------------ parsers */

static void test_parse_bool(void **state)
{
    (void)state;
    static const char *const yes[] = {"true", "True", "YES", "yes", "on", "On"};
    static const char *const no[] = {"false", "FALSE", "no", "No", "off", "OFF"};
    static const char *const bad[] = {"", "maybe", "1", "0", "y", "n", "truee", " true"};
    int v;
    for (size_t i = 0; i < 6; i++) {
        v = -1;
        assert_int_equal(mh_parse_bool(yes[i], &v), 0);
        assert_int_equal(v, 1);
        assert_int_equal(mh_parse_bool(no[i], &v), 0);
        assert_int_equal(v, 0);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(mh_parse_bool(bad[i], &v), -1);
    assert_int_equal(mh_parse_bool(NULL, &v), -1);
}

static void test_parse_int(void **state)
{
    (void)state;
    int64_t v;
    assert_int_equal(mh_parse_int("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(mh_parse_int("-5", &v), 0);
    assert_int_equal(v, -5);
    assert_int_equal(mh_parse_int("+7", &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(mh_parse_int("9223372036854775807", &v), 0);
    assert_true(v == INT64_MAX);
    assert_int_equal(mh_parse_int("-9223372036854775808", &v), 0);
    assert_true(v == INT64_MIN);
    static const char *const bad[] = {
        "",    "-",   "9223372036854775808",    "-9223372036854775809", "12a", " 1", "0x10",
        "1.0", "1e3", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(mh_parse_int(bad[i], &v), -1);
}

static void test_parse_duration(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int64_t ms;
    } good[] = {
        {"250ms", 250},      {"5s", 5000},  {"2m", 120000}, {"1h", 3600000},       {"1d", 86400000},
        {"10", 10000},       {"0", 0},      {"1.5s", 1500}, {"0.5", 500},          {"1h30m", 5400000},
        {"1h 30m", 5400000}, {"5 s", 5000}, {"2M", 120000}, {"1m30s500ms", 90500},
    };
    static const char *const bad[] = {"",
                                      "abc",
                                      "5x",
                                      "-1s",
                                      "5 ",
                                      "s",
                                      "1.s",
                                      "10ms5",
                                      "1h 5",
                                      ".5s",
                                      "5sec",
                                      "1h  ",
                                      "99999999999999999999d",
                                      "106751991168d"};
    int64_t v;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        v = -1;
        if (mh_parse_duration_ms(good[i].s, &v) != 0)
            fail_msg("'%s' should parse", good[i].s);
        assert_int_equal(v, good[i].ms);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (mh_parse_duration_ms(bad[i], &v) != -1)
            fail_msg("'%s' should be rejected", bad[i]);
    assert_int_equal(mh_parse_duration_ms("106751991167d", &v), 0); /* still fits int64 ms */
}

static void test_parse_size(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        uint64_t b;
    } good[] = {
        {"512", 512},       {"0", 0},          {"64KB", 65536},      {"64K", 65536},
        {"30MB", 31457280}, {"1GB", 1u << 30}, {"1TB", 1ull << 40},  {"1KiB", 1024},
        {"2mib", 2u << 20}, {"1.5KB", 1536},   {"10 MB", 10u << 20}, {"100B", 100},
    };
    static const char *const bad[] = {"",           "MB",  "5XB",   "-1", "1.5.5", "99999999999TB",
                                      "16777216TB", "10 ", "1 2MB", "1e3"};
    uint64_t v;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        v = 1;
        if (mh_parse_size(good[i].s, &v) != 0)
            fail_msg("'%s' should parse", good[i].s);
        assert_true(v == good[i].b);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (mh_parse_size(bad[i], &v) != -1)
            fail_msg("'%s' should be rejected", bad[i]);
    assert_int_equal(mh_parse_size("16777215TB", &v), 0);
    assert_true(v == 16777215ull << 40);
}

static void test_helpers(void **state)
{
    (void)state;
    static const char *const keys[] = {"data_dir", "log_level", "log_target", "workers", NULL};
    assert_string_equal(mh_did_you_mean("log_levle", keys), "log_level");
    assert_string_equal(mh_did_you_mean("LOG_LEVEL", keys), "log_level");
    assert_string_equal(mh_did_you_mean("worker", keys), "workers");
    assert_string_equal(mh_did_you_mean("datadir", keys), "data_dir");
    assert_null(mh_did_you_mean("port", keys));
    assert_null(mh_did_you_mean("", keys));
    assert_null(mh_did_you_mean("x", keys));
    assert_null(mh_did_you_mean(NULL, keys));

    assert_string_equal(mh_opt_type_name(MH_OPT_STR), "string");
    assert_string_equal(mh_opt_type_name(MH_OPT_INT), "integer");
    assert_string_equal(mh_opt_type_name(MH_OPT_BOOL), "boolean");
    assert_string_equal(mh_opt_type_name(MH_OPT_DURATION), "duration");
    assert_string_equal(mh_opt_type_name(MH_OPT_SIZE), "size");
    assert_string_equal(mh_opt_type_name(MH_OPT_STRLIST), "list");
    assert_string_equal(mh_opt_type_name(MH_OPT_ENUM), "enum");

    char buf[32];
    mh_format_duration(3600000, buf, sizeof buf);
    assert_string_equal(buf, "1h");
    mh_format_duration(90000, buf, sizeof buf);
    assert_string_equal(buf, "90s");
    mh_format_duration(1500, buf, sizeof buf);
    assert_string_equal(buf, "1500ms");
    mh_format_duration(0, buf, sizeof buf);
    assert_string_equal(buf, "0ms");
    mh_format_size(31457280, buf, sizeof buf);
    assert_string_equal(buf, "30MB");
    mh_format_size(1536, buf, sizeof buf);
    assert_string_equal(buf, "1536B");
    mh_format_size(0, buf, sizeof buf);
    assert_string_equal(buf, "0B");
}

/* ------------------------------------------------------------ options */

static const struct mh_option sample_opts[] = {
    {"host", MH_OPT_STR, NULL, MH_OPT_REQUIRED, "server host name", NULL, 0, 0},
    {"port", MH_OPT_INT, "993", 0, "server port", NULL, 1, 65535},
    {"tls", MH_OPT_BOOL, "true", 0, "use TLS", NULL, 0, 0},
    {"poll", MH_OPT_DURATION, "5m", 0, "poll interval", NULL, 1000, 86400000},
    {"max_size", MH_OPT_SIZE, "25MB", 0, "largest message fetched", NULL, 0, 0},
    {"folders", MH_OPT_STRLIST, "[INBOX, 'Sent Items']", 0, "folders to fetch", NULL, 0, 0},
    {"mode", MH_OPT_ENUM, "idle", 0, "how new mail is noticed", "idle|poll|push", 0, 0},
    {"password", MH_OPT_STR, NULL, MH_OPT_REQUIRED | MH_OPT_SECRET, "account password", NULL, 0, 0},
    {"token", MH_OPT_STR, "default-token-xyz", MH_OPT_SECRET, "API token", NULL, 0, 0},
    {"pin", MH_OPT_INT, NULL, MH_OPT_SECRET, "a numeric secret", NULL, 0, 0},
    MH_OPT_TABLE_END,
};

static struct mh_opts *build(const char *yaml, struct mh_cfg_errors *e)
{
    struct mh_cfg_node *root = parse(yaml, e);
    struct mh_opts *o = (struct mh_opts *)0x1;
    assert_non_null(root);
    int rc = mh_opts_build(sample_opts, mh_cfg_get(root, "options"), "t.yaml", "providers.work.options", NULL,
                           &o, e);
    /* options are copied out: the tree can go */
    mh_cfg_node_free(&root);
    assert_int_equal(rc, o ? 0 : -1);
    return o;
}

static void test_opts_defaults(void **state)
{
    (void)state;
    static const struct mh_host fake_host = {.struct_size = sizeof fake_host};
    struct mh_cfg_errors e = {0};
    struct mh_cfg_node *root = parse("options: {host: h.example, password: pw}\n", &e);
    struct mh_opts *o;
    assert_int_equal(
        mh_opts_build(sample_opts, mh_cfg_get(root, "options"), "t.yaml", "o", &fake_host, &o, &e), 0);
    mh_cfg_node_free(&root);
    const struct mh_config *cfg = mh_opts_config(o);
    assert_int_equal(cfg->struct_size, sizeof(struct mh_config));
    assert_ptr_equal(cfg->host, &fake_host);
    assert_ptr_equal((const void *)cfg, (const void *)o); /* the head comes first */

    assert_string_equal(mh_opts_str(cfg, "host"), "h.example");
    assert_int_equal(mh_opts_int(cfg, "port"), 993);
    assert_string_equal(mh_opts_str(cfg, "port"), "993");
    assert_true(mh_opts_bool(cfg, "tls"));
    assert_int_equal(mh_opts_duration_ms(cfg, "poll"), 300000);
    assert_true(mh_opts_size(cfg, "max_size") == 25u << 20);
    assert_int_equal(mh_opts_list_len(cfg, "folders"), 2);
    assert_string_equal(mh_opts_list_item(cfg, "folders", 0), "INBOX");
    assert_string_equal(mh_opts_list_item(cfg, "folders", 1), "Sent Items");
    assert_null(mh_opts_list_item(cfg, "folders", 2));
    assert_string_equal(mh_opts_str(cfg, "mode"), "idle");
    assert_int_equal(mh_opts_int(cfg, "mode"), 0);
    assert_string_equal(mh_opts_str(cfg, "token"), "default-token-xyz");
    /* no default, not set */
    assert_null(mh_opts_str(cfg, "pin"));
    assert_int_equal(mh_opts_int(cfg, "pin"), 0);

    assert_true(mh_opts_is_set(cfg, "host"));
    assert_true(mh_opts_is_set(cfg, "password"));
    assert_false(mh_opts_is_set(cfg, "port"));
    assert_false(mh_opts_is_set(cfg, "folders"));
    assert_false(mh_opts_is_set(cfg, "pin"));

    /* unknown names read as NULL / 0 */
    assert_null(mh_opts_str(cfg, "nope"));
    assert_int_equal(mh_opts_int(cfg, "nope"), 0);
    assert_false(mh_opts_bool(cfg, "nope"));
    assert_int_equal(mh_opts_duration_ms(cfg, "nope"), 0);
    assert_true(mh_opts_size(cfg, "nope") == 0);
    assert_int_equal(mh_opts_list_len(cfg, "nope"), 0);
    assert_null(mh_opts_list_item(cfg, "nope", 0));
    assert_false(mh_opts_is_set(cfg, "nope"));
    assert_null(mh_opts_str(NULL, "host"));
    mh_opts_free(&o);
    assert_null(o);
    mh_opts_free(&o);
}

static void test_opts_values(void **state)
{
    (void)state;
    struct mh_cfg_errors e = {0};
    struct mh_opts *o = build("options:\n"
                              "  host: mail\n"
                              "  port: 143\n"
                              "  tls: off\n"
                              "  poll: 90s\n"
                              "  max_size: 1GiB\n"
                              "  folders: Archive\n"
                              "  mode: PUSH\n"
                              "  password: pw\n"
                              "  pin: 1234\n",
                              &e);
    assert_non_null(o);
    const struct mh_config *cfg = mh_opts_config(o);
    assert_int_equal(mh_opts_int(cfg, "port"), 143);
    assert_false(mh_opts_bool(cfg, "tls"));
    assert_int_equal(mh_opts_int(cfg, "tls"), 0);
    assert_int_equal(mh_opts_duration_ms(cfg, "poll"), 90000);
    assert_true(mh_opts_size(cfg, "max_size") == 1u << 30);
    assert_int_equal(mh_opts_list_len(cfg, "folders"), 1);
    assert_string_equal(mh_opts_list_item(cfg, "folders", 0), "Archive");
    assert_string_equal(mh_opts_str(cfg, "mode"), "push");
    assert_int_equal(mh_opts_int(cfg, "mode"), 2);
    assert_int_equal(mh_opts_int(cfg, "pin"), 1234);
    assert_true(mh_opts_is_set(cfg, "pin"));
    mh_opts_free(&o);

    /* a null value is "not set": the default applies */
    o = build("options: {host: h, password: p, port: ~, folders: []}\n", &e);
    assert_non_null(o);
    assert_int_equal(mh_opts_int(mh_opts_config(o), "port"), 993);
    assert_false(mh_opts_is_set(mh_opts_config(o), "port"));
    assert_int_equal(mh_opts_list_len(mh_opts_config(o), "folders"), 0);
    assert_true(mh_opts_is_set(mh_opts_config(o), "folders"));
    mh_opts_free(&o);
    assert_int_equal(e.n, 0);
}

static void test_opts_errors(void **state)
{
    (void)state;
    struct mh_cfg_errors e = {0};
    struct mh_opts *o = build("options:\n"
                              "  host: {a: 1}\n"
                              "  port: 0\n"
                              "  tls: maybe\n"
                              "  poll: 500ms\n"
                              "  max_size: big\n"
                              "  folders: [INBOX, {a: 1}]\n"
                              "  mode: pol\n"
                              "  pin: abc-secret-pin\n"
                              "  pasword: x\n",
                              &e);
    assert_null(o);
    const char *const expect[] = {
        "t.yaml:2:9: providers.work.options.host: expected a string, got a map",
        "t.yaml:3:9: providers.work.options.port: expected an integer from 1 to 65535, got '0'",
        "t.yaml:4:8: providers.work.options.tls: expected true or false (or yes/no, on/off), got 'maybe'",
        "t.yaml:5:9: providers.work.options.poll: expected a duration from 1s to 1d, got '500ms'",
        "t.yaml:6:13: providers.work.options.max_size: expected a size such as 512KB or 30MB, got 'big'",
        "t.yaml:7:20: providers.work.options.folders[1]: expected a string, got a map",
        "t.yaml:8:9: providers.work.options.mode: expected one of idle, poll or push, got 'pol'; did you "
        "mean 'poll'?",
        "t.yaml:9:8: providers.work.options.pin: expected an integer, got a value that is not shown (secret)",
        "t.yaml:10:3: unknown key 'pasword' in providers.work.options; did you mean 'password'?",
        "t.yaml:2:3: providers.work.options: missing required key 'password'",
    };
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
        assert_has_error(&e, expect[i]);
    assert_int_equal(e.n, sizeof expect / sizeof expect[0]);
    assert_no_error_contains(&e, "abc-secret-pin");
    mh_cfg_errors_clear(&e);

    o = build("options: {host: h, password: p, poll: 2d}\n", &e);
    assert_null(o);
    assert_has_error(&e,
                     "t.yaml:1:39: providers.work.options.poll: expected a duration from 1s to 1d, got '2d'");
    mh_cfg_errors_clear(&e);

    o = build("options: [a]\n", &e);
    assert_null(o);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.msgs[0], "t.yaml:1:10: providers.work.options: expected a map, got a list");
    mh_cfg_errors_clear(&e);
}

static void test_opts_missing_map(void **state)
{
    (void)state;
    struct mh_cfg_errors e = {0};
    struct mh_opts *o;
    assert_int_equal(mh_opts_build(sample_opts, NULL, "t.yaml", "providers.w.options", NULL, &o, &e), -1);
    assert_null(o);
    assert_int_equal(e.n, 2);
    assert_string_equal(e.msgs[0], "t.yaml: providers.w.options: missing required key 'host'");
    assert_string_equal(e.msgs[1], "t.yaml: providers.w.options: missing required key 'password'");
    mh_cfg_errors_clear(&e);
    assert_int_equal(mh_opts_build_at(sample_opts, NULL, "t.yaml", "providers.w.options", 7, 5, NULL, &o, &e),
                     -1);
    assert_string_equal(e.msgs[0], "t.yaml:7:5: providers.w.options: missing required key 'host'");
    mh_cfg_errors_clear(&e);

    /* a table with no options accepts only nothing */
    static const struct mh_option none[] = {MH_OPT_TABLE_END};
    assert_int_equal(mh_opts_build(none, NULL, "t.yaml", "x", NULL, &o, &e), 0);
    assert_non_null(o);
    mh_opts_free(&o);
    struct mh_cfg_node *root = parse("options: {a: 1}\n", &e);
    assert_int_equal(
        mh_opts_build(none, mh_cfg_get(root, "options"), "t.yaml", "notifiers.n.options", NULL, &o, &e), -1);
    assert_string_equal(e.msgs[0],
                        "t.yaml:1:11: unknown key 'a' in notifiers.n.options; no keys are accepted here");
    mh_cfg_node_free(&root);
    mh_cfg_errors_clear(&e);

    /* a broken default is the plugin's bug, and says so */
    static const struct mh_option broken[] = {
        {"timeout", MH_OPT_DURATION, "soon", 0, "", NULL, 0, 0},
        MH_OPT_TABLE_END,
    };
    assert_int_equal(mh_opts_build_at(broken, NULL, "t.yaml", "p", 3, 1, NULL, &o, &e), -1);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.msgs[0],
                        "t.yaml:3:1: p.timeout: the option table has an invalid default (a bug in the "
                        "plugin): expected a duration such as 5s or 250ms, got 'soon'");
    mh_cfg_errors_clear(&e);
}

static void test_opts_equal(void **state)
{
    (void)state;
    struct mh_cfg_errors e = {0};
    struct mh_opts *a = build("options: {host: h, password: p}\n", &e);
    struct mh_opts *b =
        build("options: {host: h, password: p, port: 993, folders: [INBOX, Sent Items]}\n", &e);
    struct mh_opts *c = build("options: {host: h, password: q}\n", &e);
    struct mh_opts *d = build("options: {host: h, password: p, folders: [INBOX]}\n", &e);
    struct mh_opts *f = build("options: {host: h, password: p, poll: 300s, tls: yes, mode: IDLE}\n", &e);
    assert_int_equal(e.n, 0);
    assert_true(mh_opts_equal(a, a));
    assert_true(mh_opts_equal(a, b)); /* resolved values, written or defaulted */
    assert_true(mh_opts_equal(a, f));
    assert_false(mh_opts_equal(a, c));
    assert_false(mh_opts_equal(a, d));
    assert_false(mh_opts_equal(a, NULL));
    assert_true(mh_opts_equal(NULL, NULL));
    mh_opts_free(&a);
    mh_opts_free(&b);
    mh_opts_free(&c);
    mh_opts_free(&d);
    mh_opts_free(&f);
}

static char *read_stream(FILE *f)
{
    long n;
    fflush(f);
    n = ftell(f);
    assert_true(n >= 0);
    char *s = calloc(1, (size_t)n + 1);
    assert_non_null(s);
    rewind(f);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    return s;
}

static void test_opts_secrets(void **state)
{
    (void)state;
    struct mh_cfg_errors e = {0};
    struct mh_opts *o = build("options: {host: imap.example.com, password: s3cret-Passw0rd}\n", &e);
    assert_non_null(o);
    FILE *f = tmpfile();
    assert_non_null(f);
    mh_log_set_stream(f);
    mh_log_set_level(MH_LOG_INFO);

    mh_opts_register_secrets(o);
    mh_logf(MH_LOG_INFO, "provider/work", "login to %s with %s failed; token %s",
            mh_opts_str(mh_opts_config(o), "host"), mh_opts_str(mh_opts_config(o), "password"),
            mh_opts_str(mh_opts_config(o), "token"));
    char *out = read_stream(f);
    assert_non_null(strstr(out, "login to imap.example.com with *** failed; token ***"));
    assert_null(strstr(out, "s3cret-Passw0rd"));
    assert_null(strstr(out, "default-token-xyz")); /* a secret default is a secret too */
    free(out);

    mh_log_set_stream(NULL);
    fclose(f);
    mh_log_clear_secrets();
    mh_opts_free(&o);
    mh_opts_register_secrets(NULL);
}

static void test_opts_help(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    mh_opts_print_help(f, sample_opts);
    fclose(f);

    assert_null(strstr(text, "default-token-xyz"));
    /* one header and one line per option */
    const char *lines[16];
    size_t n = 0;
    for (char *p = text; *p != '\0' && n < 16;) {
        char *nl = strchr(p, '\n');
        assert_non_null(nl);
        *nl = '\0';
        lines[n++] = p;
        p = nl + 1;
    }
    assert_int_equal(n, 11);
    assert_string_equal(lines[0], "OPTION    TYPE      DEFAULT                FLAGS            DESCRIPTION");
    assert_string_equal(lines[1],
                        "host      string    (required)             required         server host name");
    assert_string_equal(lines[2], "port      integer   993                                     server port; "
                                  "range 1..65535");
    assert_string_equal(lines[4],
                        "poll      duration  5m                                      poll interval; "
                        "range 1s..1d");
    assert_string_equal(lines[6],
                        "folders   list      [INBOX, 'Sent Items']                   folders to fetch");
    assert_string_equal(lines[7],
                        "mode      enum      idle                                    how new mail is "
                        "noticed; one of: idle, poll, push");
    assert_string_equal(lines[8],
                        "password  string    (required)             required,secret  account password");
    assert_string_equal(lines[9], "token     string    (hidden)               secret           API token");
    assert_string_equal(lines[10],
                        "pin       integer   -                      secret           a numeric secret");
    free(text);

    static const struct mh_option none[] = {MH_OPT_TABLE_END};
    f = open_memstream(&text, &len);
    mh_opts_print_help(f, none);
    fclose(f);
    assert_string_equal(text, "This plugin has no options.\n");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tree_positions),
        cmocka_unit_test(test_tree_empty),
        cmocka_unit_test(test_tree_syntax_errors),
        cmocka_unit_test(test_tree_structure_errors),
        cmocka_unit_test(test_tree_all_errors_reported),
        cmocka_unit_test(test_tree_file),
        cmocka_unit_test(test_errors_format),
        cmocka_unit_test(test_env_substitution),
        cmocka_unit_test(test_env_errors),
        cmocka_unit_test(test_env_secret_never_shown),
        cmocka_unit_test(test_schema_full_file),
        cmocka_unit_test(test_schema_defaults),
        cmocka_unit_test(test_schema_relative_paths),
        cmocka_unit_test(test_schema_unknown_keys),
        cmocka_unit_test(test_schema_wrong_types),
        cmocka_unit_test(test_schema_ranges_and_enums),
        cmocka_unit_test(test_schema_missing_required),
        cmocka_unit_test(test_schema_names),
        cmocka_unit_test(test_schema_quota),
        cmocka_unit_test(test_schema_listeners_and_events),
        cmocka_unit_test(test_schema_collects_all_errors),
        cmocka_unit_test(test_parse_bool),
        cmocka_unit_test(test_parse_int),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_helpers),
        cmocka_unit_test(test_opts_defaults),
        cmocka_unit_test(test_opts_values),
        cmocka_unit_test(test_opts_errors),
        cmocka_unit_test(test_opts_missing_map),
        cmocka_unit_test(test_opts_equal),
        cmocka_unit_test(test_opts_secrets),
        cmocka_unit_test(test_opts_help),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

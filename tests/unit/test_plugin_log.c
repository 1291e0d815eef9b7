/* The log notifier, against the mock host. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <mailhub/plugin.h>
#include <mailhub/notifier.h>

#include "mock_host.h"

extern const struct mh_plugin mh_plugin_descriptor;
#define D (&mh_plugin_descriptor)
#define OPS ((const struct mh_notifier_ops *)mh_plugin_descriptor.ops)

struct fx {
    struct mock_host *mh;
    void *st;
    char path[512];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    f->mh = mock_host_new("events", "log");
    snprintf(f->path, sizeof f->path, "%s/ev.log", mock_host_data_dir(f->mh));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->st != NULL)
        D->free(f->st);
    mock_host_free(&f->mh);
    free(f);
    return 0;
}

static void start_with(struct fx *f, const char *const *kv)
{
    const struct mh_config *cfg = mock_host_config(f->mh, D->options, kv);
    assert_non_null(cfg);
    assert_int_equal(D->init(mock_host_ctx(f->mh), cfg, &f->st), MH_OK);
    assert_int_equal(D->start(f->st), MH_OK);
}

static int send_json(struct fx *f, const char *id, const char *json)
{
    struct mh_event ev = mock_event_make(id, "mail.received", json);
    return OPS->send(f->st, &ev, mock_host_job_new(f->mh));
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return NULL;
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static void test_descriptor(void **state)
{
    (void)state;
    assert_int_equal(D->kind, MH_KIND_NOTIFIER);
    assert_string_equal(D->name, "log");
    assert_non_null(OPS->send);
    assert_non_null(D->reload);
}

static void test_writes_lines(void **state)
{
    struct fx *f = *state;
    const char *kv[] = {"path", "ev.log", NULL};
    start_with(f, kv);
    assert_int_equal(send_json(f, "e1", "{\"id\":\"e1\",\"type\":\"mail.received\"}"), MH_OK);
    assert_int_equal(send_json(f, "e2", "{\"id\":\"e2\",\"data\":{\"subject\":\"a\\nb\"}}"), MH_OK);
    /* A pretty-printed envelope still becomes one line. */
    assert_int_equal(send_json(f, "e3", "{\n  \"id\": \"e3\",\r\n  \"n\": 1\n}"), MH_OK);
    char *text = slurp(f->path);
    assert_non_null(text);
    assert_string_equal(text, "{\"id\":\"e1\",\"type\":\"mail.received\"}\n"
                              "{\"id\":\"e2\",\"data\":{\"subject\":\"a\\nb\"}}\n"
                              "{   \"id\": \"e3\",    \"n\": 1 }\n");
    free(text);
}

static void test_default_path_and_mode(void **state)
{
    struct fx *f = *state;
    mode_t old = umask(0);
    start_with(f, NULL);
    umask(old);
    assert_int_equal(send_json(f, "e1", "{\"a\":1}"), MH_OK);
    char def[512];
    snprintf(def, sizeof def, "%s/events.log", mock_host_data_dir(f->mh));
    struct stat st;
    assert_int_equal(stat(def, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 8);
}

static void test_appends_to_existing(void **state)
{
    struct fx *f = *state;
    FILE *fp = fopen(f->path, "w");
    fputs("old\n", fp);
    fclose(fp);
    const char *kv[] = {"path", f->path, "fsync", "true", NULL}; /* absolute path */
    start_with(f, kv);
    assert_int_equal(send_json(f, "e1", "{\"b\":2}"), MH_OK);
    char *text = slurp(f->path);
    assert_string_equal(text, "old\n{\"b\":2}\n");
    free(text);
}

static void test_follows_rename(void **state)
{
    struct fx *f = *state;
    const char *kv[] = {"path", "ev.log", NULL};
    start_with(f, kv);
    assert_int_equal(send_json(f, "e1", "{\"n\":1}"), MH_OK);
    char rotated[600];
    snprintf(rotated, sizeof rotated, "%s.1", f->path);
    assert_int_equal(rename(f->path, rotated), 0);
    /* logrotate without copytruncate, and no SIGHUP: the next line goes to a new file. */
    assert_int_equal(send_json(f, "e2", "{\"n\":2}"), MH_OK);
    assert_int_equal(unlink(rotated), 0);
    assert_int_equal(send_json(f, "e3", "{\"n\":3}"), MH_OK);
    char *cur = slurp(f->path);
    assert_non_null(cur);
    assert_string_equal(cur, "{\"n\":2}\n{\"n\":3}\n");
    assert_non_null(mock_host_log_find(f->mh, "moved away"));
    free(cur);
}

static void test_reload_reopens_after_rename(void **state)
{
    struct fx *f = *state;
    const char *kv[] = {"path", "ev.log", NULL};
    start_with(f, kv);
    assert_int_equal(send_json(f, "e1", "{\"n\":1}"), MH_OK);
    char rotated[600];
    snprintf(rotated, sizeof rotated, "%s.1", f->path);
    assert_int_equal(rename(f->path, rotated), 0);
    mode_t old_mask = umask(0);
    const struct mh_config *cfg = mock_host_config(f->mh, D->options, kv);
    int rc = D->reload(f->st, cfg);
    umask(old_mask);
    assert_int_equal(rc, MH_OK);
    /* The reload itself created the new file, 0600. */
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_size, 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_non_null(mock_host_log_find(f->mh, "reopened"));
    assert_int_equal(send_json(f, "e2", "{\"n\":2}"), MH_OK);
    char *old = slurp(rotated), *cur = slurp(f->path);
    assert_string_equal(old, "{\"n\":1}\n");
    assert_string_equal(cur, "{\"n\":2}\n");
    free(old);
    free(cur);
}

static void test_reload_changes_path(void **state)
{
    struct fx *f = *state;
    const char *kv[] = {"path", "ev.log", NULL};
    start_with(f, kv);
    assert_int_equal(send_json(f, "e1", "{\"n\":1}"), MH_OK);
    const char *kv2[] = {"path", "other.log", NULL};
    assert_int_equal(D->reload(f->st, mock_host_config(f->mh, D->options, kv2)), MH_OK);
    assert_int_equal(send_json(f, "e2", "{\"n\":2}"), MH_OK);
    char other[512];
    snprintf(other, sizeof other, "%s/other.log", mock_host_data_dir(f->mh));
    char *a = slurp(f->path), *b = slurp(other);
    assert_string_equal(a, "{\"n\":1}\n");
    assert_string_equal(b, "{\"n\":2}\n");
    free(a);
    free(b);
}

static void test_reload_failure_keeps_old_file(void **state)
{
    struct fx *f = *state;
    const char *kv[] = {"path", "ev.log", NULL};
    start_with(f, kv);
    const char *bad[] = {"path", "no/such/dir/x.log", NULL};
    assert_int_not_equal(D->reload(f->st, mock_host_config(f->mh, D->options, bad)), MH_OK);
    assert_non_null(mock_host_error(f->mh));
    assert_int_equal(send_json(f, "e1", "{\"n\":1}"), MH_OK);
    char *a = slurp(f->path);
    assert_string_equal(a, "{\"n\":1}\n");
    free(a);
}

static void test_start_fails_on_missing_dir(void **state)
{
    struct fx *f = *state;
    const char *kv[] = {"path", "missing/ev.log", NULL};
    const struct mh_config *cfg = mock_host_config(f->mh, D->options, kv);
    assert_int_equal(D->init(mock_host_ctx(f->mh), cfg, &f->st), MH_OK);
    assert_int_equal(D->start(f->st), MH_ERR);
    assert_non_null(strstr(mock_host_error(f->mh), "missing/ev.log"));
}

static void test_write_error_is_retry(void **state)
{
    struct fx *f = *state;
    if (access("/dev/full", W_OK) != 0)
        skip();
    const char *kv[] = {"path", "/dev/full", NULL};
    start_with(f, kv);
    assert_int_equal(send_json(f, "e1", "{\"n\":1}"), MH_ERETRY);
    assert_non_null(mock_host_error(f->mh));
    assert_non_null(strstr(mock_host_error(f->mh), "/dev/full"));
}

static void test_instances_independent(void **state)
{
    struct fx *f = *state;
    /* Two instances in one process: each its own file, no shared state. */
    struct mock_host *mh2 = mock_host_new("events2", "log");
    const char *kv[] = {"path", "ev.log", NULL};
    start_with(f, kv);
    void *st2 = NULL;
    assert_int_equal(D->init(mock_host_ctx(mh2), mock_host_config(mh2, D->options, kv), &st2), MH_OK);
    assert_int_equal(D->start(st2), MH_OK);
    struct mh_event ev = mock_event_make("x", "mail.received", "{\"i\":2}");
    assert_int_equal(OPS->send(st2, &ev, mock_host_job_new(mh2)), MH_OK);
    assert_int_equal(send_json(f, "y", "{\"i\":1}"), MH_OK);
    char p2[512];
    snprintf(p2, sizeof p2, "%s/ev.log", mock_host_data_dir(mh2));
    char *a = slurp(f->path), *b = slurp(p2);
    assert_string_equal(a, "{\"i\":1}\n");
    assert_string_equal(b, "{\"i\":2}\n");
    free(a);
    free(b);
    D->free(st2);
    mock_host_free(&mh2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptor),
        cmocka_unit_test_setup_teardown(test_writes_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_path_and_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_appends_to_existing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follows_rename, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_reopens_after_rename, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_changes_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_failure_keeps_old_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_fails_on_missing_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_error_is_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_instances_independent, setup, teardown),
    };
    return cmocka_run_group_tests_name("plugin_log", tests, NULL, NULL);
}

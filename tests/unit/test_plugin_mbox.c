/* The mbox provider, against the mock host (its clock, timers and store). */
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
#include <jansson.h>
#include <openssl/evp.h>

#include <mailhub/plugin.h>
#include <mailhub/provider.h>

#include "mock_host.h"

extern const struct mh_plugin mh_plugin_descriptor;
#define D (&mh_plugin_descriptor)
#define OPS ((const struct mh_provider_ops *)mh_plugin_descriptor.ops)

/* Three messages: mboxrd escapes, a folded header, no Message-ID, CRLF lines. */
static const char MBOX[] = "From alice@example.org Tue Jan  2 10:00:00 2024\n"
                           "From: Alice <alice@example.org>\n"
                           "To: bob@example.org\n"
                           "Subject: first\n"
                           "Message-ID: <m1@example.org>\n"
                           "\n"
                           "Hello\n"
                           ">From here\n"
                           ">>From there\n"
                           ">not escaped\n"
                           "From-not-a-separator\n"
                           "\n"
                           "From bob@example.org Wed Jan  3 11:30:00 +0100 2024\n"
                           "From: Bob <bob@example.org>\n"
                           "Subject: second\n"
                           "Message-ID:\n"
                           " <m2@example.org>\n"
                           "\n"
                           "second body\n"
                           "\n"
                           "From - Thu Jan  4 00:00:00 2024\r\n"
                           "From: carol@example.org\r\n"
                           "Subject: no id\r\n"
                           "\r\n"
                           "third\r\n"
                           "\r\n";

static const char RAW1[] = "From: Alice <alice@example.org>\n"
                           "To: bob@example.org\n"
                           "Subject: first\n"
                           "Message-ID: <m1@example.org>\n"
                           "\n"
                           "Hello\n"
                           "From here\n"
                           ">From there\n"
                           ">not escaped\n"
                           "From-not-a-separator\n";

static const char RAW3[] = "From: carol@example.org\r\nSubject: no id\r\n\r\nthird\r\n";

static const char NEWMSG[] = "From dave@example.org Fri Jan  5 08:00:00 2024\n"
                             "From: Dave <dave@example.org>\n"
                             "Subject: appended\n"
                             "  and folded\n"
                             "Message-ID: <m4@example.org>\n"
                             "\n"
                             "new mail\n"
                             "\n";

struct fx {
    struct mock_host *mh;
    void *st;
    char path[512];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    f->mh = mock_host_new("takeout", "mbox");
    snprintf(f->path, sizeof f->path, "%s/in.mbox", mock_host_data_dir(f->mh));
    *state = f;
    return 0;
}

static void stop_free(struct fx *f)
{
    if (f->st == NULL)
        return;
    if (D->stop(f->st) == MH_PENDING) {
        mock_host_run(f->mh);
        assert_int_equal(mock_host_stopped_count(f->mh), 1);
    }
    mock_host_cancel_handles(f->mh);
    D->free(f->st);
    f->st = NULL;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    stop_free(f);
    mock_host_free(&f->mh);
    free(f);
    return 0;
}

static void write_file(const char *path, const char *mode, const char *text)
{
    FILE *fp = fopen(path, mode);
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
    assert_int_equal(fclose(fp), 0);
}

static void start_with(struct fx *f, const char *const *extra)
{
    const char *kv[16] = {"path", f->path};
    size_t n = 2;
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 14; i++)
        kv[n++] = extra[i];
    kv[n] = NULL;
    const struct mh_config *cfg = mock_host_config(f->mh, D->options, kv);
    if (cfg == NULL)
        fail_msg("config: %s", mock_host_config_error(f->mh));
    assert_int_equal(D->init(mock_host_ctx(f->mh), cfg, &f->st), MH_OK);
    assert_int_equal(D->start(f->st), MH_OK);
}

/* The n-th event of `type` as JSON (caller decrefs). */
static json_t *event_json(struct fx *f, const char *type, size_t n)
{
    const struct mock_event *ev = mock_host_event_find(f->mh, type, n);
    assert_non_null(ev);
    json_t *j = json_loads(ev->data, 0, NULL);
    assert_non_null(j);
    return j;
}

static json_int_t jint(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    if (!json_is_integer(v))
        fail_msg("%s is not an integer", key);
    return json_integer_value(v);
}

static const char *jstr(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    if (!json_is_string(v))
        fail_msg("%s is not a string", key);
    return json_string_value(v);
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    assert_int_equal(EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL), 1);
    for (unsigned i = 0; i < md_len; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void test_descriptor(void **state)
{
    (void)state;
    assert_int_equal(D->kind, MH_KIND_PROVIDER);
    assert_string_equal(D->name, "mbox");
    assert_non_null(D->start);
    assert_non_null(D->stop);
    assert_non_null(OPS->sync_now);
    assert_non_null(OPS->status_json);
}

static void test_import(void **state)
{
    struct fx *f = *state;
    write_file(f->path, "w", MBOX);
    start_with(f, NULL);
    mock_host_run_all(f->mh);

    assert_int_equal(mock_host_message_count(f->mh), 3);
    const struct mock_message *m1 = mock_host_message(f->mh, 0);
    const struct mock_message *m2 = mock_host_message(f->mh, 1);
    const struct mock_message *m3 = mock_host_message(f->mh, 2);
    /* mboxrd unescaping, and the writer's empty line after each message removed */
    assert_int_equal(m1->raw_len, strlen(RAW1));
    assert_memory_equal(m1->raw, RAW1, strlen(RAW1));
    assert_int_equal(m3->raw_len, strlen(RAW3));
    assert_memory_equal(m3->raw, RAW3, strlen(RAW3));
    assert_string_equal(m1->user, "admin");
    assert_string_equal(m1->account, "takeout");
    assert_string_equal(m1->folder, "INBOX");
    /* dedup identity: Message-ID (unfolded) + SHA-256, or the SHA-256 alone */
    char hex[65], want[128];
    sha256_hex(RAW1, strlen(RAW1), hex);
    snprintf(want, sizeof want, "mid:<m1@example.org>:%s", hex);
    assert_string_equal(m1->source_id, want);
    assert_non_null(strstr(m2->source_id, "mid:<m2@example.org>:"));
    sha256_hex(RAW3, strlen(RAW3), hex);
    snprintf(want, sizeof want, "sha256:%s", hex);
    assert_string_equal(m3->source_id, want);
    /* From_ line dates, with the zone applied */
    assert_int_equal(m1->internal_date, 1704189600);
    assert_int_equal(m2->internal_date, 1704277800);
    assert_int_equal(m3->internal_date, 1704326400);

    /* The import announces itself once, and floods nobody with mail.received. */
    assert_int_equal(mock_host_event_count_type(f->mh, "mail.received"), 0);
    assert_int_equal(mock_host_event_count_type(f->mh, "account.synced"), 1);
    json_t *j = event_json(f, "account.synced", 0);
    assert_string_equal(jstr(j, "account"), "takeout");
    assert_string_equal(jstr(j, "folder"), "INBOX");
    assert_int_equal(jint(j, "messages"), 3);
    assert_int_equal(jint(j, "new"), 3);
    assert_int_equal(jint(j, "duplicates"), 0);
    json_decref(j);

    char *status = NULL;
    assert_int_equal(OPS->status_json(f->st, &status), MH_OK);
    j = json_loads(status, 0, NULL);
    free(status);
    assert_non_null(j);
    assert_string_equal(jstr(j, "state"), "watching");
    assert_int_equal(jint(j, "messages"), 3);
    assert_int_equal(jint(j, "new"), 3);
    assert_int_equal(jint(j, "bytes_done"), (json_int_t)strlen(MBOX));
    assert_int_equal(jint(j, "bytes_total"), (json_int_t)strlen(MBOX));
    json_decref(j);
}

static void test_folder_and_user_options(void **state)
{
    struct fx *f = *state;
    write_file(f->path, "w", MBOX);
    const char *extra[] = {"folder", "Archive/Takeout", "user", "alice", NULL};
    start_with(f, extra);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_message_count(f->mh), 3);
    assert_string_equal(mock_host_message(f->mh, 2)->folder, "Archive/Takeout");
    assert_string_equal(mock_host_message(f->mh, 2)->user, "alice");
}

static void test_reimport_stores_nothing_twice(void **state)
{
    struct fx *f = *state;
    write_file(f->path, "w", MBOX);
    start_with(f, NULL);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_message_count(f->mh), 3);
    stop_free(f);

    start_with(f, NULL); /* a new instance over the same store */
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_message_count(f->mh), 3);
    assert_int_equal(mock_host_event_count_type(f->mh, "account.synced"), 2);
    json_t *j = event_json(f, "account.synced", 1);
    assert_int_equal(jint(j, "messages"), 3);
    assert_int_equal(jint(j, "new"), 0);
    assert_int_equal(jint(j, "duplicates"), 3);
    json_decref(j);
}

static void test_appended_message_is_received(void **state)
{
    struct fx *f = *state;
    write_file(f->path, "w", MBOX);
    start_with(f, NULL);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_message_count(f->mh), 3);

    write_file(f->path, "a", NEWMSG);
    mock_host_advance(f->mh, 5);
    mock_host_run_all(f->mh);
    /* The last message of a growing file waits one poll in case it is still being written. */
    assert_int_equal(mock_host_message_count(f->mh), 3);
    mock_host_advance(f->mh, 5);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_message_count(f->mh), 4);
    assert_int_equal(mock_host_event_count_type(f->mh, "mail.received"), 1);
    assert_int_equal(mock_host_event_count_type(f->mh, "account.synced"), 1);

    const struct mock_message *m = mock_host_message(f->mh, 3);
    json_t *j = event_json(f, "mail.received", 0);
    assert_string_equal(jstr(j, "account"), "takeout");
    assert_string_equal(jstr(j, "folder"), "INBOX");
    assert_string_equal(jstr(j, "from"), "Dave <dave@example.org>");
    assert_string_equal(jstr(j, "subject"), "appended  and folded");
    assert_string_equal(jstr(j, "message_id"), "<m4@example.org>");
    assert_int_equal(jint(j, "size"), (json_int_t)m->raw_len);
    assert_int_equal(jint(j, "store_id"), m->id);
    json_decref(j);
    assert_int_equal(m->raw_len,
                     strlen(NEWMSG) - strlen("From dave@example.org Fri Jan  5 08:00:00 2024\n") - 1);

    /* Nothing more appended: nothing more happens. */
    mock_host_advance(f->mh, 5);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_message_count(f->mh), 4);
    assert_int_equal(mock_host_event_count_type(f->mh, "mail.received"), 1);
}

static void test_message_written_in_two_parts(void **state)
{
    struct fx *f = *state;
    write_file(f->path, "w", MBOX);
    start_with(f, NULL);
    mock_host_run_all(f->mh);

    write_file(f->path, "a",
               "From x@example.org Mon Jan  1 00:00:00 2024\nFrom: x@example.org\nSubject: par");
    mock_host_advance(f->mh, 5);
    mock_host_run_all(f->mh);
    write_file(f->path, "a", "tial\n\nbody\n\n");
    mock_host_advance(f->mh, 5);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_message_count(f->mh), 3);
    mock_host_advance(f->mh, 5);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_message_count(f->mh), 4);
    const char want[] = "From: x@example.org\nSubject: partial\n\nbody\n";
    const struct mock_message *m = mock_host_message(f->mh, 3);
    assert_int_equal(m->raw_len, strlen(want));
    assert_memory_equal(m->raw, want, strlen(want));
}

static void test_missing_file_reports_and_retries(void **state)
{
    struct fx *f = *state;
    start_with(f, NULL);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_event_count_type(f->mh, "account.error"), 1);
    json_t *j = event_json(f, "account.error", 0);
    assert_string_equal(jstr(j, "account"), "takeout");
    assert_non_null(strstr(jstr(j, "error"), "in.mbox"));
    json_decref(j);

    char *status = NULL;
    assert_int_equal(OPS->status_json(f->st, &status), MH_OK);
    assert_non_null(strstr(status, "\"state\":\"error\""));
    free(status);

    /* Retried on the poll interval, reported once. */
    mock_host_advance(f->mh, 5);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_event_count_type(f->mh, "account.error"), 1);
    assert_int_equal(mock_host_message_count(f->mh), 0);

    write_file(f->path, "w", MBOX);
    mock_host_advance(f->mh, 5);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_message_count(f->mh), 3);
    assert_int_equal(mock_host_event_count_type(f->mh, "account.synced"), 1);
    assert_int_equal(mock_host_event_count_type(f->mh, "account.error"), 1);
    assert_non_null(mock_host_log_find(f->mh, "recovered"));
}

static void test_puts_in_flight_bounded(void **state)
{
    struct fx *f = *state;
    char *text = calloc(1, 64 * 1024);
    for (int i = 0; i < 9; i++)
        snprintf(text + strlen(text), 1024,
                 "From s Mon Jan  1 00:00:00 2024\nMessage-ID: <b%d@x>\nSubject: %d\n\nbody %d\n\n", i, i, i);
    write_file(f->path, "w", text);
    free(text);
    const char *extra[] = {"batch", "2", NULL};
    start_with(f, extra);
    /* Completing one put at a time lets the reader refill: it must stop at `batch`. */
    size_t max_pending = 0, rounds = 0;
    for (;;) {
        size_t n = mock_host_run_timers(f->mh);
        if (mock_host_pending_puts(f->mh) > max_pending)
            max_pending = mock_host_pending_puts(f->mh);
        n += mock_host_run_puts(f->mh, 1);
        if (n == 0 || ++rounds > 100)
            break;
    }
    assert_int_equal(max_pending, 2);
    assert_int_equal(mock_host_message_count(f->mh), 9);
    assert_int_equal(mock_host_event_count_type(f->mh, "account.synced"), 1);
}

static void test_transient_store_failure_resumes(void **state)
{
    struct fx *f = *state;
    write_file(f->path, "w", MBOX);
    mock_host_fail_put(f->mh, 2, MH_ERETRY);
    start_with(f, NULL);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_event_count_type(f->mh, "account.error"), 1);
    assert_int_equal(mock_host_event_count_type(f->mh, "account.synced"), 0);
    assert_true(mock_host_message_count(f->mh) < 3);

    mock_host_advance(f->mh, 5);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_message_count(f->mh), 3);
    assert_int_equal(mock_host_event_count_type(f->mh, "account.synced"), 1);
    json_t *j = event_json(f, "account.synced", 0);
    assert_int_equal(jint(j, "new"), 3);
    json_decref(j);
    /* The message stored last is the one that failed, read again. */
    assert_non_null(strstr(mock_host_message(f->mh, 2)->source_id, "<m2@example.org>"));
    assert_non_null(mock_host_log_find(f->mh, "recovered"));
}

static void test_permanent_failure_skips(void **state)
{
    struct fx *f = *state;
    write_file(f->path, "w", MBOX);
    mock_host_fail_put(f->mh, 1, MH_EINVAL);
    start_with(f, NULL);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_message_count(f->mh), 2);
    assert_int_equal(mock_host_event_count_type(f->mh, "account.error"), 0);
    assert_int_equal(mock_host_event_count_type(f->mh, "account.synced"), 1);
    assert_non_null(mock_host_log_find(f->mh, "skipped"));
    char *status = NULL;
    assert_int_equal(OPS->status_json(f->st, &status), MH_OK);
    assert_non_null(strstr(status, "\"failed\":1"));
    free(status);
}

static void test_stop_waits_for_puts(void **state)
{
    struct fx *f = *state;
    write_file(f->path, "w", MBOX);
    start_with(f, NULL);
    mock_host_run_timers(f->mh); /* one tick: the puts are in flight */
    assert_int_equal(mock_host_pending_puts(f->mh), 3);
    assert_int_equal(D->stop(f->st), MH_PENDING);
    assert_int_equal(mock_host_stopped_count(f->mh), 0);
    mock_host_run(f->mh);
    assert_int_equal(mock_host_stopped_count(f->mh), 1);
    /* Stopped means stopped: no timers left, no events after stop. */
    assert_int_equal(mock_host_timer_count(f->mh), 0);
    assert_int_equal(mock_host_event_count_type(f->mh, "account.synced"), 0);
    mock_host_cancel_handles(f->mh);
    D->free(f->st);
    f->st = NULL;
}

static void test_replaced_file_is_imported_again(void **state)
{
    struct fx *f = *state;
    write_file(f->path, "w", MBOX);
    start_with(f, NULL);
    mock_host_run_all(f->mh);

    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.new", f->path);
    write_file(tmp, "w", NEWMSG);
    write_file(tmp, "a", MBOX);
    assert_int_equal(rename(tmp, f->path), 0);
    mock_host_advance(f->mh, 5);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_message_count(f->mh), 4);
    /* A new file is a new import: a summary, not one notification per message. */
    assert_int_equal(mock_host_event_count_type(f->mh, "mail.received"), 0);
    assert_int_equal(mock_host_event_count_type(f->mh, "account.synced"), 2);
    json_t *j = event_json(f, "account.synced", 1);
    assert_int_equal(jint(j, "new"), 1);
    assert_int_equal(jint(j, "duplicates"), 3);
    json_decref(j);
}

static void test_no_watch_and_sync_now(void **state)
{
    struct fx *f = *state;
    write_file(f->path, "w", MBOX);
    const char *extra[] = {"watch", "false", NULL};
    start_with(f, extra);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_message_count(f->mh), 3);
    assert_int_equal(mock_host_timer_count(f->mh), 0); /* no polling */

    write_file(f->path, "a", NEWMSG);
    mock_host_advance(f->mh, 60);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_message_count(f->mh), 3);
    assert_int_equal(OPS->sync_now(f->st), MH_OK);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_message_count(f->mh), 4);
    assert_int_equal(mock_host_event_count_type(f->mh, "mail.received"), 1);
}

static void test_progress_is_logged(void **state)
{
    struct fx *f = *state;
    write_file(f->path, "w", MBOX);
    const char *extra[] = {"batch", "1", NULL};
    start_with(f, extra);
    mock_host_run_timers(f->mh);
    assert_int_equal(mock_host_pending_puts(f->mh), 1);
    mock_host_advance(f->mh, 6);
    mock_host_run(f->mh);
    const char *line = mock_host_log_find(f->mh, "imported 1/~");
    assert_non_null(line);
    assert_non_null(strstr(line, "msgs/s"));
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_message_count(f->mh), 3);
}

static void test_not_an_mbox(void **state)
{
    struct fx *f = *state;
    write_file(f->path, "w", "just some text\nwithout separators\n");
    start_with(f, NULL);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_message_count(f->mh), 0);
    json_t *j = event_json(f, "account.synced", 0);
    assert_int_equal(jint(j, "messages"), 0);
    json_decref(j);
    assert_non_null(mock_host_log_find(f->mh, "ignored"));
}

static void test_required_path(void **state)
{
    struct fx *f = *state;
    assert_null(mock_host_config(f->mh, D->options, NULL));
    assert_non_null(strstr(mock_host_config_error(f->mh), "path"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptor),
        cmocka_unit_test_setup_teardown(test_import, setup, teardown),
        cmocka_unit_test_setup_teardown(test_folder_and_user_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reimport_stores_nothing_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_appended_message_is_received, setup, teardown),
        cmocka_unit_test_setup_teardown(test_message_written_in_two_parts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file_reports_and_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_puts_in_flight_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transient_store_failure_resumes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permanent_failure_skips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_waits_for_puts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replaced_file_is_imported_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_watch_and_sync_now, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progress_is_logged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_an_mbox, setup, teardown),
        cmocka_unit_test_setup_teardown(test_required_path, setup, teardown),
    };
    return cmocka_run_group_tests_name("plugin_mbox", tests, NULL, NULL);
}

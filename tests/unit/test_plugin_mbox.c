/* The mbox provider, against the mock host (its clock, timers and store). */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
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

static void ckpt_path(struct fx *f, char *out, size_t cap)
{
    snprintf(out, cap, "%s/mbox/takeout.checkpoint", mock_host_data_dir(f->mh));
}

/* The value of `key` in the checkpoint file (static buffer), or NULL. */
static const char *ckpt_get(struct fx *f, const char *key)
{
    static char value[512];
    char path[600], line[600];
    ckpt_path(f, path, sizeof path);
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return NULL;
    const char *found = NULL;
    size_t kl = strlen(key);
    while (found == NULL && fgets(line, sizeof line, fp) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, key, kl) == 0 && line[kl] == ' ') {
            snprintf(value, sizeof value, "%s", line + kl + 1);
            found = value;
        }
    }
    fclose(fp);
    return found;
}

/* Replace `key`'s value in the checkpoint file. */
static void ckpt_set(struct fx *f, const char *key, const char *value)
{
    char path[600], line[600], text[8192] = "";
    ckpt_path(f, path, sizeof path);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, fp) != NULL) {
        if (strncmp(line, key, kl) == 0 && line[kl] == ' ')
            snprintf(line, sizeof line, "%s %s\n", key, value);
        strncat(text, line, sizeof text - strlen(text) - 1);
    }
    fclose(fp);
    write_file(path, "w", text);
}

static json_t *status(struct fx *f)
{
    char *text = NULL;
    assert_int_equal(OPS->status_json(f->st, &text), MH_OK);
    json_t *j = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(j);
    return j;
}

/* `n` messages of about `body` bytes each, Message-IDs <gK@x>. */
static char *gen_mbox_text(int n, size_t body, int first)
{
    size_t cap = (size_t)n * (body + 256) + 1;
    char *text = calloc(1, cap), *o = text;
    for (int i = first; i < first + n; i++) {
        o += snprintf(o, cap - (size_t)(o - text),
                      "From s Mon Jan  1 00:00:00 2024\nMessage-ID: <g%d@x>\nSubject: %d\n\n", i, i);
        for (size_t k = 0; k + 1 < body; k += 64)
            o += snprintf(o, cap - (size_t)(o - text), "%.*s\n", (int)(body - k < 64 ? body - k - 1 : 63),
                          "body text body text body text body text body text body text body");
        o += snprintf(o, cap - (size_t)(o - text), "\n");
    }
    return text;
}

static int has_mid(struct fx *f, int i)
{
    char want[64];
    snprintf(want, sizeof want, "mid:<g%d@x>:", i);
    int found = 0;
    for (size_t k = 0; k < mock_host_message_count(f->mh); k++)
        if (strncmp(mock_host_message(f->mh, k)->source_id, want, strlen(want)) == 0)
            found++;
    return found;
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
    assert_int_equal(jint(j, "duplicates"), 0);
    assert_int_equal(jint(j, "done_bytes"), (json_int_t)strlen(MBOX));
    assert_int_equal(jint(j, "total_bytes"), (json_int_t)strlen(MBOX));
    assert_int_equal(jint(j, "rate_bps"), 0); /* the mock clock did not move */
    assert_int_equal(jint(j, "eta_s"), 0);
    assert_null(json_object_get(j, "error"));
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

    /* Without the checkpoint, a new instance over the same store reads it all
     * again and the store's dedup keeps one copy. */
    char ck[600];
    ckpt_path(f, ck, sizeof ck);
    assert_int_equal(unlink(ck), 0);
    size_t puts = mock_host_put_count(f->mh);
    start_with(f, NULL);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_put_count(f->mh) - puts, 3);
    assert_int_equal(mock_host_message_count(f->mh), 3);
    assert_int_equal(mock_host_event_count_type(f->mh, "account.synced"), 2);
    json_t *j = event_json(f, "account.synced", 1);
    assert_int_equal(jint(j, "messages"), 3);
    assert_int_equal(jint(j, "new"), 0);
    assert_int_equal(jint(j, "duplicates"), 3);
    json_decref(j);
    stop_free(f);

    /* With it, nothing is read again; the counts are the import's. */
    puts = mock_host_put_count(f->mh);
    start_with(f, NULL);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_put_count(f->mh), puts);
    assert_int_equal(mock_host_message_count(f->mh), 3);
    assert_non_null(mock_host_log_find(f->mh, "resuming the import"));
    j = event_json(f, "account.synced", 2);
    assert_int_equal(jint(j, "messages"), 3);
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
    mock_host_run(f->mh); /* 6 s, and 1/3 of the file: a new tenth */
    const char *line = mock_host_log_find(f->mh, "imported 1 messages, ");
    assert_non_null(line);
    assert_non_null(strstr(line, " MB of "));
    assert_non_null(strstr(line, "MB/s, ETA "));
    assert_int_equal(mock_host_event_count_type(f->mh, "account.progress"), 1);
    json_t *j = event_json(f, "account.progress", 0);
    assert_int_equal(jint(j, "total"), (json_int_t)strlen(MBOX));
    assert_true(jint(j, "done") > 0);
    json_decref(j);
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

static void test_status_while_importing(void **state)
{
    struct fx *f = *state;
    char *text = gen_mbox_text(10, 1000, 0);
    write_file(f->path, "w", text);
    size_t size = strlen(text);
    free(text);
    const char *extra[] = {"batch", "2", NULL};
    start_with(f, extra);
    json_t *j = status(f);
    assert_string_equal(jstr(j, "state"), "starting");
    json_decref(j);

    mock_host_run_timers(f->mh);
    mock_host_advance(f->mh, 2);
    mock_host_run_puts(f->mh, 2);
    j = status(f);
    assert_string_equal(jstr(j, "state"), "importing");
    assert_int_equal(jint(j, "total_bytes"), (json_int_t)size);
    json_int_t done = jint(j, "done_bytes");
    assert_true(done > 0 && done < (json_int_t)size);
    assert_int_equal(jint(j, "messages"), 2);
    assert_int_equal(jint(j, "duplicates"), 0);
    /* bytes acknowledged over 2 s, and the rest at that rate */
    assert_int_equal(jint(j, "rate_bps"), (done + 1) / 2);
    json_t *eta = json_object_get(j, "eta_s");
    assert_true(json_is_integer(eta));
    assert_true(json_integer_value(eta) > 0);
    json_decref(j);

    mock_host_run_all(f->mh);
    j = status(f);
    assert_string_equal(jstr(j, "state"), "watching");
    assert_int_equal(jint(j, "messages"), 10);
    assert_int_equal(jint(j, "done_bytes"), (json_int_t)size);
    json_decref(j);
}

static void test_status_after_error_and_without_watch(void **state)
{
    struct fx *f = *state;
    const char *extra[] = {"watch", "false", NULL};
    start_with(f, extra);
    mock_host_run_all(f->mh);
    json_t *j = status(f);
    assert_string_equal(jstr(j, "state"), "error");
    assert_non_null(strstr(jstr(j, "error"), "in.mbox"));
    assert_true(json_is_null(json_object_get(j, "eta_s")));
    json_decref(j);

    write_file(f->path, "w", MBOX);
    mock_host_advance(f->mh, 5);
    mock_host_run_all(f->mh);
    j = status(f);
    assert_string_equal(jstr(j, "state"), "idle");
    assert_null(json_object_get(j, "error"));
    assert_int_equal(jint(j, "messages"), 3);
    json_decref(j);
}

static void test_inflight_bytes_bounded(void **state)
{
    struct fx *f = *state;
    char *text = gen_mbox_text(12, 10000, 0);
    write_file(f->path, "w", text);
    free(text);
    const char *extra[] = {"inflight_bytes", "16KB", "batch", "100", NULL};
    start_with(f, extra);
    size_t max_pending = 0, rounds = 0;
    for (;;) {
        size_t n = mock_host_run_timers(f->mh);
        if (mock_host_pending_puts(f->mh) > max_pending)
            max_pending = mock_host_pending_puts(f->mh);
        n += mock_host_run_puts(f->mh, 1);
        if (n == 0 || ++rounds > 200)
            break;
    }
    /* 10 KB each: a second put brings the bytes in flight past 16 KB, and the reader waits. */
    assert_int_equal(max_pending, 2);
    assert_int_equal(mock_host_message_count(f->mh), 12);

    /* One message larger than the limit still goes through. */
    stop_free(f);
    text = gen_mbox_text(2, 40000, 100);
    write_file(f->path, "w", text);
    free(text);
    start_with(f, extra);
    mock_host_run_all(f->mh);
    assert_int_equal(has_mid(f, 100), 1);
    assert_int_equal(has_mid(f, 101), 1);
}

static void test_checkpoint_resume(void **state)
{
    struct fx *f = *state;
    char *text = gen_mbox_text(20, 300, 0);
    write_file(f->path, "w", text);
    /* where message 10 (0-based) starts */
    const char *m10 = strstr(text, "From s Mon Jan  1 00:00:00 2024\nMessage-ID: <g10@x>");
    assert_non_null(m10);
    long off10 = (long)(m10 - text);
    free(text);
    const char *extra[] = {"batch", "4", NULL};
    /* The store "dies" at the 11th put: it and what follows are not acknowledged. */
    mock_host_fail_put(f->mh, 11, MH_ECANCELED);
    start_with(f, extra);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_event_count_type(f->mh, "account.error"), 1);
    stop_free(f);
    char want[32];
    snprintf(want, sizeof want, "%ld", off10);
    assert_string_equal(ckpt_get(f, "offset"), want);
    assert_string_equal(ckpt_get(f, "messages"), "10");
    size_t stored = mock_host_message_count(f->mh); /* the 12th was stored behind the failed 11th */
    assert_int_equal(stored, 11);

    /* A restart reads from message 10 on: 10 puts, one of them a duplicate. */
    size_t puts = mock_host_put_count(f->mh);
    start_with(f, extra);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_put_count(f->mh) - puts, 10);
    assert_int_equal(mock_host_message_count(f->mh), 20);
    for (int i = 0; i < 20; i++)
        assert_int_equal(has_mid(f, i), 1);
    json_t *j = event_json(f, "account.synced", 0);
    assert_int_equal(jint(j, "messages"), 20);
    assert_int_equal(jint(j, "new"), 19);
    assert_int_equal(jint(j, "duplicates"), 1);
    json_decref(j);
    j = status(f);
    assert_int_equal(jint(j, "messages"), 20);
    json_decref(j);
}

static void test_stale_checkpoint_loses_nothing(void **state)
{
    struct fx *f = *state;
    char *text = gen_mbox_text(20, 300, 0);
    write_file(f->path, "w", text);
    free(text);
    const char *extra[] = {"batch", "3", NULL};
    start_with(f, extra);
    /* Acknowledge a few, one at a time, as a kill -9 would find it: the
     * checkpoint on disk lags what the store has. */
    mock_host_run_timers(f->mh);
    mock_host_run_puts(f->mh, 2);
    char ck[600], saved[700];
    ckpt_path(f, ck, sizeof ck);
    snprintf(saved, sizeof saved, "%s.saved", ck);
    assert_int_equal(rename(ck, saved), 0);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_message_count(f->mh), 20);
    stop_free(f);
    assert_int_equal(rename(saved, ck), 0);
    assert_string_equal(ckpt_get(f, "messages"), "1"); /* written at the first ack, then once a second */

    size_t puts = mock_host_put_count(f->mh);
    start_with(f, extra);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_put_count(f->mh) - puts, 19);
    assert_int_equal(mock_host_message_count(f->mh), 20);
    for (int i = 0; i < 20; i++)
        assert_int_equal(has_mid(f, i), 1);
    json_t *j = event_json(f, "account.synced", 1);
    assert_int_equal(jint(j, "messages"), 20);
    assert_int_equal(jint(j, "duplicates"), 19);
    json_decref(j);
}

static void test_checkpoint_once_a_second(void **state)
{
    struct fx *f = *state;
    char *text = gen_mbox_text(8, 300, 0);
    write_file(f->path, "w", text);
    free(text);
    const char *extra[] = {"batch", "8", NULL};
    start_with(f, extra);
    mock_host_run_timers(f->mh);
    mock_host_run_puts(f->mh, 1);
    assert_string_equal(ckpt_get(f, "messages"), "1");
    mock_host_run_puts(f->mh, 3);
    assert_string_equal(ckpt_get(f, "messages"), "1");
    mock_host_advance(f->mh, 1.5);
    mock_host_run_puts(f->mh, 1);
    assert_string_equal(ckpt_get(f, "messages"), "5");
    mock_host_run_all(f->mh); /* the end of the import is always saved */
    assert_string_equal(ckpt_get(f, "messages"), "8");
    assert_string_equal(ckpt_get(f, "kind"), "mbox");
    assert_int_equal(strlen(ckpt_get(f, "head")), 64);
}

static void test_checkpoint_replaced_file(void **state)
{
    struct fx *f = *state;
    char *a = gen_mbox_text(5, 300, 0), *b = gen_mbox_text(7, 300, 50);
    write_file(f->path, "w", a);
    start_with(f, NULL);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_message_count(f->mh), 5);
    stop_free(f);

    /* Replaced by a larger, different file: the checkpoint's offset would fall
     * inside it, but its first bytes differ. */
    write_file(f->path, "w", b);
    start_with(f, NULL);
    mock_host_run_all(f->mh);
    assert_non_null(mock_host_log_find(f->mh, "replaced since the checkpoint"));
    assert_int_equal(mock_host_message_count(f->mh), 12);
    for (int i = 50; i < 57; i++)
        assert_int_equal(has_mid(f, i), 1);
    stop_free(f);

    /* Appended to while stopped: only the new messages are read. */
    char *c = gen_mbox_text(2, 300, 80);
    write_file(f->path, "a", c);
    size_t puts = mock_host_put_count(f->mh);
    start_with(f, NULL);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_put_count(f->mh) - puts, 2);
    assert_int_equal(mock_host_message_count(f->mh), 14);
    free(a);
    free(b);
    free(c);
}

/* ------------------------------------------------------------ Maildir */

static void mkdirs(struct fx *f, const char *rel)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", mock_host_data_dir(f->mh), rel);
    for (char *p = path + strlen(mock_host_data_dir(f->mh)) + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0700);
            *p = '/';
        }
    mkdir(path, 0700);
}

static void md_write(struct fx *f, const char *rel, const char *text, time_t mtime)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", mock_host_data_dir(f->mh), rel);
    write_file(path, "w", text);
    if (mtime > 0) {
        struct timespec ts[2] = {{.tv_sec = mtime}, {.tv_sec = mtime}};
        assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
    }
}

static void md_setup(struct fx *f)
{
    static const char *const dirs[] = {"md/cur",
                                       "md/new",
                                       "md/tmp",
                                       "md/.Sent/cur",
                                       "md/.Sent/new",
                                       "md/.Archive.2024/cur",
                                       "md/.Archive.2024/new",
                                       "md/.Caf&AOk-/cur",
                                       "md/.Caf&AOk-/new",
                                       "md/.notmaildir"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
        mkdirs(f, dirs[i]);
    md_write(f, "md/cur/1700000001.M1.host:2,S", "Message-ID: <a1@x>\nSubject: one\n\nbody 1\n", 1700000001);
    md_write(f, "md/cur/1700000002.M2.host:2,FRS", "Message-ID: <a2@x>\nSubject: two\n\nbody 2\n",
             1700000002);
    md_write(f, "md/new/1700000003.M3.host", "Subject: no id\r\n\r\nbody 3\r\n", 1700000003);
    md_write(f, "md/tmp/1700000004.M4.host", "Message-ID: <tmp@x>\n\nbeing delivered\n", 0);
    md_write(f, "md/cur/.hidden", "Message-ID: <hidden@x>\n\n\n", 0);
    md_write(f, "md/.Sent/cur/1700000005.M5.host:2,DST", "Message-ID: <s1@x>\n\nsent\n", 1700000005);
    md_write(f, "md/.Archive.2024/cur/1700000006.M6.host:2,", "Message-ID: <r1@x>\n\nold\n", 1700000006);
    md_write(f, "md/.Caf&AOk-/new/1700000007.M7.host", "Message-ID: <c1@x>\n\ncafe\n", 1700000007);
    md_write(f, "md/.notmaildir/1700000008.M8.host", "Message-ID: <n1@x>\n\nnot here\n", 0);
    snprintf(f->path, sizeof f->path, "%s/md", mock_host_data_dir(f->mh));
}

static const struct mock_message *find_msg(struct fx *f, const char *mid)
{
    for (size_t k = 0; k < mock_host_message_count(f->mh); k++) {
        const struct mock_message *m = mock_host_message(f->mh, k);
        if (strstr(m->raw, mid) != NULL)
            return m;
    }
    return NULL;
}

static void test_maildir_import(void **state)
{
    struct fx *f = *state;
    md_setup(f);
    const char *extra[] = {"folder", "Mail/Inbox", NULL};
    start_with(f, extra);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_message_count(f->mh), 6);

    const struct mock_message *m = find_msg(f, "<a2@x>");
    assert_non_null(m);
    assert_string_equal(m->folder, "Mail/Inbox");
    assert_string_equal(m->flags, "\\Flagged \\Answered \\Seen");
    assert_int_equal(m->internal_date, 1700000002);
    char hex[65], want[128];
    const char raw2[] = "Message-ID: <a2@x>\nSubject: two\n\nbody 2\n";
    sha256_hex(raw2, strlen(raw2), hex);
    snprintf(want, sizeof want, "mid:<a2@x>:%s", hex);
    assert_string_equal(m->source_id, want);
    assert_int_equal(m->raw_len, strlen(raw2));

    m = find_msg(f, "no id");
    assert_non_null(m);
    assert_null(m->flags); /* new/: no info */
    const char raw3[] = "Subject: no id\r\n\r\nbody 3\r\n";
    sha256_hex(raw3, strlen(raw3), hex);
    snprintf(want, sizeof want, "sha256:%s", hex);
    assert_string_equal(m->source_id, want);

    m = find_msg(f, "<s1@x>");
    assert_non_null(m);
    assert_string_equal(m->folder, "Sent");
    assert_string_equal(m->flags, "\\Draft \\Seen \\Deleted");
    m = find_msg(f, "<r1@x>");
    assert_non_null(m);
    assert_string_equal(m->folder, "Archive/2024");
    assert_null(m->flags);
    assert_int_equal(m->internal_date, 1700000006);
    m = find_msg(f, "<c1@x>");
    assert_non_null(m);
    assert_string_equal(m->folder, "Caf\xc3\xa9");
    assert_null(find_msg(f, "<tmp@x>"));
    assert_null(find_msg(f, "<hidden@x>"));
    assert_null(find_msg(f, "<n1@x>"));

    /* Folder order: the top one first, then the subfolders by name. */
    assert_string_equal(mock_host_message(f->mh, 0)->folder, "Mail/Inbox");
    assert_string_equal(mock_host_message(f->mh, 3)->folder, "Archive/2024");

    assert_int_equal(mock_host_event_count_type(f->mh, "mail.received"), 0);
    json_t *j = event_json(f, "account.synced", 0);
    assert_int_equal(jint(j, "messages"), 6);
    assert_int_equal(jint(j, "new"), 6);
    json_decref(j);
    j = status(f);
    assert_string_equal(jstr(j, "state"), "watching");
    assert_string_equal(jstr(j, "source"), "maildir");
    assert_int_equal(jint(j, "messages"), 6);
    assert_int_equal(jint(j, "done_bytes"), jint(j, "total_bytes"));
    assert_true(jint(j, "total_bytes") > 100);
    json_decref(j);
    assert_string_equal(ckpt_get(f, "kind"), "maildir");
    assert_string_equal(ckpt_get(f, "complete"), "1");
}

static void test_maildir_watch(void **state)
{
    struct fx *f = *state;
    md_setup(f);
    start_with(f, NULL);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_message_count(f->mh), 6);

    /* A delivery to new/ of a subfolder, and a reader moving a message to cur/ with flags. */
    md_write(f, "md/.Sent/new/1700000009.M9.host", "Message-ID: <w1@x>\nFrom: w@x\nSubject: later\n\nnew\n",
             0);
    char from[700], to[700];
    snprintf(from, sizeof from, "%s/md/new/1700000003.M3.host", mock_host_data_dir(f->mh));
    snprintf(to, sizeof to, "%s/md/cur/1700000003.M3.host:2,S", mock_host_data_dir(f->mh));
    assert_int_equal(rename(from, to), 0);
    mock_host_advance(f->mh, 5);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_message_count(f->mh), 7);
    assert_int_equal(mock_host_event_count_type(f->mh, "mail.received"), 1);
    json_t *j = event_json(f, "mail.received", 0);
    assert_string_equal(jstr(j, "folder"), "Sent");
    assert_string_equal(jstr(j, "subject"), "later");
    assert_string_equal(jstr(j, "message_id"), "<w1@x>");
    json_decref(j);
    assert_int_equal(mock_host_event_count_type(f->mh, "account.synced"), 1);

    /* Nothing new: nothing more. */
    mock_host_advance(f->mh, 5);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_message_count(f->mh), 7);
    assert_int_equal(mock_host_event_count_type(f->mh, "mail.received"), 1);
}

static void test_maildir_transient_failure_resumes(void **state)
{
    struct fx *f = *state;
    md_setup(f);
    mock_host_fail_put(f->mh, 4, MH_ERETRY);
    const char *extra[] = {"batch", "2", NULL};
    start_with(f, extra);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_event_count_type(f->mh, "account.error"), 1);
    assert_int_equal(mock_host_event_count_type(f->mh, "account.synced"), 0);
    assert_true(mock_host_message_count(f->mh) < 6);
    json_t *j = status(f);
    assert_string_equal(jstr(j, "state"), "error");
    assert_non_null(strstr(jstr(j, "error"), "not stored"));
    json_decref(j);

    mock_host_advance(f->mh, 5);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_message_count(f->mh), 6);
    assert_int_equal(mock_host_event_count_type(f->mh, "account.synced"), 1);
    assert_int_equal(mock_host_event_count_type(f->mh, "mail.received"), 0);
    assert_non_null(mock_host_log_find(f->mh, "recovered"));
    j = status(f);
    assert_string_equal(jstr(j, "state"), "watching");
    json_decref(j);
}

static void test_maildir_checkpoint_resume(void **state)
{
    struct fx *f = *state;
    mkdirs(f, "md/cur");
    mkdirs(f, "md/new");
    mkdirs(f, "md/.Sent/cur");
    mkdirs(f, "md/.Sent/new");
    for (int i = 0; i < 12; i++) {
        char rel[128], body[128];
        snprintf(rel, sizeof rel, "md/%scur/17000000%02d.M%d.host:2,S", i < 8 ? "" : ".Sent/", i, i);
        snprintf(body, sizeof body, "Message-ID: <g%d@x>\nSubject: %d\n\nbody\n", i, i);
        md_write(f, rel, body, 1700000000 + i);
    }
    snprintf(f->path, sizeof f->path, "%s/md", mock_host_data_dir(f->mh));
    const char *extra[] = {"batch", "4", NULL};
    mock_host_fail_put(f->mh, 6, MH_ERETRY);
    start_with(f, extra);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_event_count_type(f->mh, "account.error"), 1);
    stop_free(f);
    assert_string_equal(ckpt_get(f, "dir"), "");
    assert_string_equal(ckpt_get(f, "name"), "1700000004.M4.host:2,S");
    assert_string_equal(ckpt_get(f, "complete"), "0");
    assert_string_equal(ckpt_get(f, "messages"), "5");

    /* Files are re-read when their ctime is not older than the pass that wrote
     * the checkpoint (they may have come after it); these were all just made,
     * so a restart now reads them all again, and dedup keeps one copy. */
    size_t puts = mock_host_put_count(f->mh);
    start_with(f, extra);
    mock_host_run_all(f->mh);
    assert_int_equal(mock_host_put_count(f->mh) - puts, 12);
    assert_int_equal(mock_host_message_count(f->mh), 12);
    stop_free(f);

    /* As if that pass had begun well after the files were made: the restart
     * skips the five acknowledged ones. */
    char since[32];
    snprintf(since, sizeof since, "%lld", (long long)time(NULL) + 60);
    assert_string_equal(ckpt_get(f, "complete"), "1");
    ckpt_set(f, "complete", "0");
    ckpt_set(f, "name", "1700000004.M4.host:2,S");
    ckpt_set(f, "since", since);
    puts = mock_host_put_count(f->mh);
    start_with(f, extra);
    mock_host_run_all(f->mh);
    assert_non_null(mock_host_log_find(f->mh, "resuming the import"));
    assert_int_equal(mock_host_put_count(f->mh) - puts, 7);
    assert_int_equal(mock_host_message_count(f->mh), 12);
    for (int i = 0; i < 12; i++)
        assert_int_equal(has_mid(f, i), 1);
}

/* ------------------------------------------- generated mail (gen_mbox) */

struct manifest_line {
    char mid[128], sha[65], folder[64], flags[64];
    size_t size;
};

/* Run tests/tools/gen_mbox with `args`; NULL (the test is skipped) when it is not built. */
static struct manifest_line *generate(struct fx *f, const char *args, const char *out, size_t *n_out)
{
    const char *top = getenv("top_builddir");
    char gen[600], cmd[2048], man[600];
    snprintf(gen, sizeof gen, "%s/tests/tools/gen_mbox", top != NULL ? top : ".");
    if (access(gen, X_OK) != 0)
        return NULL;
    snprintf(man, sizeof man, "%s/manifest.txt", mock_host_data_dir(f->mh));
    snprintf(cmd, sizeof cmd, "'%s' %s --manifest '%s' %s", gen, args, man, out);
    assert_int_equal(system(cmd), 0);
    FILE *fp = fopen(man, "r");
    assert_non_null(fp);
    size_t cap = 64, n = 0;
    struct manifest_line *v = calloc(cap, sizeof *v);
    char line[4096];
    while (fgets(line, sizeof line, fp) != NULL) {
        if (n == cap)
            v = realloc(v, (cap *= 2) * sizeof *v);
        struct manifest_line *m = &v[n++];
        memset(m, 0, sizeof *m);
        line[strcspn(line, "\n")] = '\0';
        /* tab-separated; empty fields (no flags) are fields too */
        const char *field[8] = {"", "", "", "", "", "", "", ""};
        int k = 0;
        for (char *t = line; t != NULL && k < 8; k++) {
            field[k] = t;
            t = strchr(t, '\t');
            if (t != NULL)
                *t++ = '\0';
        }
        assert_true(k >= 5);
        snprintf(m->mid, sizeof m->mid, "%s", field[1]);
        m->size = (size_t)strtoul(field[2], NULL, 10);
        snprintf(m->sha, sizeof m->sha, "%s", field[3]);
        snprintf(m->folder, sizeof m->folder, "%s", field[5]);
        snprintf(m->flags, sizeof m->flags, "%s", field[6]);
    }
    fclose(fp);
    *n_out = n;
    return v;
}

/* Every manifest line has its stored message with the same bytes; nothing else is stored. */
static void check_against_manifest(struct fx *f, const struct manifest_line *v, size_t n, int maildir)
{
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++) {
        int first = 1;
        for (size_t k = 0; k < i && first; k++)
            if (strcmp(v[k].sha, v[i].sha) == 0)
                first = 0;
        distinct += first;
        const struct mock_message *m = NULL;
        for (size_t k = 0; k < mock_host_message_count(f->mh) && m == NULL; k++) {
            const struct mock_message *c = mock_host_message(f->mh, k);
            size_t sl = strlen(c->source_id);
            if (sl > 64 && strcmp(c->source_id + sl - 64, v[i].sha) == 0)
                m = c;
        }
        if (m == NULL)
            fail_msg("message %zu (%s) was not stored", i, v[i].mid);
        char hex[65], want[256];
        sha256_hex(m->raw, m->raw_len, hex);
        assert_string_equal(hex, v[i].sha);
        assert_int_equal(m->raw_len, v[i].size);
        snprintf(want, sizeof want, "mid:%s:%s", v[i].mid, v[i].sha);
        assert_string_equal(m->source_id, want);
        if (maildir) {
            assert_string_equal(m->folder, v[i].folder);
            assert_string_equal(m->flags != NULL ? m->flags : "", v[i].flags);
        }
    }
    assert_int_equal(mock_host_message_count(f->mh), distinct);
}

static void test_generated_mbox_round_trip(void **state)
{
    struct fx *f = *state;
    char out[600];
    snprintf(out, sizeof out, "> '%s'", f->path);
    size_t n = 0;
    struct manifest_line *v = generate(f, "--count 400 --seed 11 --dup-every 25", out, &n);
    if (v == NULL)
        skip();
    assert_int_equal(n, 400);
    const char *extra[] = {"batch", "16", "inflight_bytes", "256KB", NULL};
    start_with(f, extra);
    mock_host_run_all(f->mh);
    check_against_manifest(f, v, n, 0);
    json_t *j = event_json(f, "account.synced", 0);
    assert_int_equal(jint(j, "messages"), 400);
    assert_int_equal(jint(j, "duplicates"), 400 - (json_int_t)mock_host_message_count(f->mh));
    json_decref(j);
    free(v);
}

static void test_generated_maildir(void **state)
{
    struct fx *f = *state;
    char args[700];
    snprintf(f->path, sizeof f->path, "%s/gen-md", mock_host_data_dir(f->mh));
    snprintf(args, sizeof args, "--count 150 --seed 12 --maildir '%s'", f->path);
    size_t n = 0;
    struct manifest_line *v = generate(f, args, "", &n);
    if (v == NULL)
        skip();
    assert_int_equal(n, 150);
    start_with(f, NULL);
    mock_host_run_all(f->mh);
    check_against_manifest(f, v, n, 1);
    free(v);
}

static void test_directory_not_a_maildir(void **state)
{
    struct fx *f = *state;
    mkdirs(f, "plain/cur");
    snprintf(f->path, sizeof f->path, "%s/plain", mock_host_data_dir(f->mh));
    start_with(f, NULL);
    mock_host_run_all(f->mh);
    json_t *j = event_json(f, "account.error", 0);
    assert_non_null(strstr(jstr(j, "error"), "not a Maildir"));
    json_decref(j);
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
        cmocka_unit_test_setup_teardown(test_status_while_importing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_after_error_and_without_watch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inflight_bytes_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_checkpoint_loses_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_once_a_second, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_replaced_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_maildir_import, setup, teardown),
        cmocka_unit_test_setup_teardown(test_maildir_watch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_maildir_transient_failure_resumes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_maildir_checkpoint_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory_not_a_maildir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_generated_mbox_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_generated_maildir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_required_path, setup, teardown),
    };
    return cmocka_run_group_tests_name("plugin_mbox", tests, NULL, NULL);
}

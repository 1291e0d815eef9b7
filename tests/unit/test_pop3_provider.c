/*
 * The POP3 provider's passes, against the mock host (its clock, timers and
 * store) and a scripted POP3 server behind a fake netconn linked in place of
 * plugins/common/netconn.c.  The SDK 1.2 host functions the mock lacks (state,
 * source list, gone marks) are added here, completed in order like the core
 * does.  What the real transport does is tested against Dovecot and a fake
 * server (tests/integration/pop3.sh, pop3_faults.sh); this test drives the
 * state machine through what a real clock cannot: days for delete_after_days,
 * store failures at the n-th put, a stop with puts in flight, the pipelining
 * window while the store is slow.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <mailhub/plugin.h>
#include <mailhub/provider.h>

#include "netconn.h"
#include "mock_host.h"

extern const struct mh_plugin mh_plugin_descriptor;
#define D (&mh_plugin_descriptor)
#define OPS ((const struct mh_provider_ops *)mh_plugin_descriptor.ops)
#define DAY 86400.0

/* ------------------------------------------------------------ the server */

#define SRV_MAX 128

struct smsg {
    char uid[32];
    char *raw;
    int deleted;
};

static struct srv {
    int pipelining, uidl;
    struct smsg m[SRV_MAX];
    int n;
    int view[SRV_MAX]; /* the session's message numbers -> m[] */
    int n_view;
    int marked[SRV_MAX];
    char in[1 << 16]; /* commands written and not answered */
    size_t in_len;
    int max_waiting; /* most commands waiting for an answer at once */
    int retr, dele, quit, user, pass, sessions;
    int retr_err;       /* RETR of this message number answers -ERR (0: none) */
    int garbage_uidl;   /* answer the next UIDL with garbage */
    size_t chunk;       /* feed answers in pieces of this size (0: at once) */
    char last_pass[64]; /* the argument of the last PASS */
} S;

struct nc_conn {
    struct nc_callbacks cbs;
    void *arg;
    int open, connected, expecting;
};
static struct nc_conn C;
static int g_open_calls, g_username_null;

static void srv_reset(int pipelining, int uidl)
{
    for (int i = 0; i < S.n; i++)
        free(S.m[i].raw);
    memset(&S, 0, sizeof S);
    S.pipelining = pipelining;
    S.uidl = uidl;
    memset(&C, 0, sizeof C);
    g_open_calls = g_username_null = 0;
}

/* Add a message whose body has lines that need dot-stuffing. */
static void srv_add(int i, size_t pad)
{
    assert_true(S.n < SRV_MAX);
    struct smsg *m = &S.m[S.n++];
    snprintf(m->uid, sizeof m->uid, "uid-%04d", i);
    size_t cap = 256 + pad;
    m->raw = malloc(cap);
    assert_non_null(m->raw);
    int n =
        snprintf(m->raw, cap,
                 "From: s%d@example.com\r\nSubject: m%d\r\n\r\n.dot\r\n..two\r\n.\r\nbody %d\r\n", i, i, i);
    memset(m->raw + n, 'p', pad);
    m->raw[n + pad] = '\0';
    if (pad > 0)
        strcpy(m->raw + n + pad - 2, "\r\n");
}

static void out_add(char **out, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *out = realloc(*out, *cap);
        assert_non_null(*out);
    }
    memcpy(*out + *len, s, n);
    *len += n;
}
#define OUT(s) out_add(&out, &len, &cap, (s), strlen(s))

/* Answer every command waiting.  Returns how many were answered. */
static int srv_step(void)
{
    if (!C.open || !C.connected || S.in_len == 0)
        return 0;
    int waiting = 0;
    for (size_t i = 0; i < S.in_len; i++)
        waiting += S.in[i] == '\n';
    if (waiting > S.max_waiting)
        S.max_waiting = waiting;
    char *out = NULL, line[256], buf[512];
    size_t len = 0, cap = 0, pos = 0;
    int answered = 0;
    while (pos < S.in_len) {
        char *nl = memchr(S.in + pos, '\n', S.in_len - pos);
        assert_non_null(nl);
        size_t n = (size_t)(nl - (S.in + pos));
        assert_true(n < sizeof line);
        memcpy(line, S.in + pos, n);
        line[n > 0 && line[n - 1] == '\r' ? n - 1 : n] = '\0';
        pos += n + 1;
        answered++;
        int k = 0;
        if (strcmp(line, "CAPA") == 0) {
            OUT("+OK\r\nTOP\r\n");
            if (S.uidl)
                OUT("UIDL\r\n");
            if (S.pipelining)
                OUT("PIPELINING\r\n");
            OUT(".\r\n");
        } else if (strncmp(line, "USER ", 5) == 0) {
            S.user++;
            OUT("+OK\r\n");
        } else if (strncmp(line, "PASS ", 5) == 0) {
            S.pass++;
            snprintf(S.last_pass, sizeof S.last_pass, "%.60s", line + 5);
            OUT("+OK logged in\r\n");
        } else if (strcmp(line, "UIDL") == 0) {
            if (S.garbage_uidl) {
                S.garbage_uidl = 0;
                OUT("HTTP/1.1 200 OK\r\n");
                continue;
            }
            if (!S.uidl) {
                OUT("-ERR unknown command\r\n");
                continue;
            }
            OUT("+OK\r\n");
            for (int i = 0; i < S.n_view; i++) {
                snprintf(buf, sizeof buf, "%d %s\r\n", i + 1, S.m[S.view[i]].uid);
                OUT(buf);
            }
            OUT(".\r\n");
        } else if (strcmp(line, "LIST") == 0) {
            OUT("+OK\r\n");
            for (int i = 0; i < S.n_view; i++) {
                snprintf(buf, sizeof buf, "%d %zu\r\n", i + 1, strlen(S.m[S.view[i]].raw));
                OUT(buf);
            }
            OUT(".\r\n");
        } else if (sscanf(line, "RETR %d", &k) == 1 && k >= 1 && k <= S.n_view) {
            S.retr++;
            if (k == S.retr_err) {
                OUT("-ERR locked\r\n");
                continue;
            }
            OUT("+OK\r\n");
            for (const char *l = S.m[S.view[k - 1]].raw; *l;) {
                const char *e = strstr(l, "\r\n");
                size_t ll = e != NULL ? (size_t)(e - l) + 2 : strlen(l);
                if (*l == '.')
                    OUT(".");
                out_add(&out, &len, &cap, l, ll);
                l += ll;
            }
            OUT(".\r\n");
        } else if (sscanf(line, "DELE %d", &k) == 1 && k >= 1 && k <= S.n_view) {
            S.dele++;
            S.marked[S.view[k - 1]] = 1;
            OUT("+OK\r\n");
        } else if (strcmp(line, "QUIT") == 0) {
            S.quit++;
            for (int i = 0; i < S.n; i++)
                if (S.marked[i])
                    S.m[i].deleted = 1;
            OUT("+OK bye\r\n");
        } else {
            OUT("-ERR what?\r\n");
        }
    }
    S.in_len = 0;
    /* Feed the answers, in pieces when asked; the plugin may close the connection meanwhile. */
    size_t step = S.chunk > 0 ? S.chunk : len;
    for (size_t off = 0; off < len && C.open; off += step)
        C.cbs.read(&C, out + off, len - off < step ? len - off : step, C.arg);
    free(out);
    return answered;
}

/* ------------------------------------------------------------ fake netconn */

int nc_open(struct mh_plugin_ctx *ctx, const struct nc_opts *o, const struct nc_callbacks *cbs, void *arg,
            struct nc_conn **out)
{
    (void)ctx;
    assert_false(C.open);
    assert_non_null(o->host);
    assert_string_equal(o->scheme, "pop3");
    g_open_calls++;
    g_username_null = o->username == NULL;
    memset(&C, 0, sizeof C);
    C.cbs = *cbs;
    C.arg = arg;
    C.open = 1;
    C.expecting = 1;
    /* The session sees the maildrop as it is now. */
    S.n_view = 0;
    memset(S.marked, 0, sizeof S.marked);
    S.in_len = 0;
    for (int i = 0; i < S.n; i++)
        if (!S.m[i].deleted)
            S.view[S.n_view++] = i;
    S.sessions++;
    *out = &C;
    return MH_PENDING;
}

int nc_write(struct nc_conn *c, const void *data, size_t len)
{
    assert_ptr_equal(c, &C);
    if (!C.open || !C.connected)
        return MH_ECANCELED;
    assert_true(S.in_len + len <= sizeof S.in);
    memcpy(S.in + S.in_len, data, len);
    S.in_len += len;
    return MH_OK;
}

int nc_printf(struct nc_conn *c, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return nc_write(c, buf, (size_t)n);
}

size_t nc_pending_out(const struct nc_conn *c)
{
    (void)c;
    return 0;
}

void nc_pause_read(struct nc_conn *c, int paused)
{
    (void)c, (void)paused;
}

void nc_expect(struct nc_conn *c, int expecting)
{
    c->expecting = expecting;
}

const char *nc_label(const struct nc_conn *c)
{
    (void)c;
    return "fake";
}

void nc_close(struct nc_conn **cp)
{
    if (cp == NULL || *cp == NULL)
        return;
    assert_ptr_equal(*cp, &C);
    C.open = 0;
    S.in_len = 0; /* what was not answered is lost with the connection */
    *cp = NULL;
}

void nc_discard(struct nc_conn **cp)
{
    if (cp == NULL || *cp == NULL)
        return;
    C.open = 0;
    *cp = NULL;
}

/* ------------------------------------------------------------ SDK 1.2 host functions */

enum req_kind { R_GET, R_PUT, R_GONE, R_LIST };

struct req {
    enum req_kind kind;
    char *a, *b;
    int has_b;
    mh_state_cb state_cb;
    mh_done_cb done_cb;
    mh_source_list_cb list_cb;
    void *arg;
};

static struct {
    struct mock_host *mh;
    struct mh_host host;
    struct req q[4096];
    size_t nq;
    char *keys[256], *vals[256];
    size_t nkv;
    char *gone[SRV_MAX];
    size_t ngone;
    char *notify_sids[SRV_MAX * 4];
    int notify[SRV_MAX * 4];
    size_t nput;
} H;

static struct req *req_new(enum req_kind kind, const char *a, const char *b, int has_b, void *arg)
{
    assert_true(H.nq < sizeof H.q / sizeof H.q[0]);
    struct req *r = &H.q[H.nq++];
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->a = a ? strdup(a) : NULL;
    r->b = b ? strdup(b) : NULL;
    r->has_b = has_b;
    r->arg = arg;
    return r;
}

static int t_state_get(struct mh_plugin_ctx *ctx, const char *key, mh_state_cb cb, void *arg)
{
    (void)ctx;
    req_new(R_GET, key, NULL, 0, arg)->state_cb = cb;
    return MH_PENDING;
}

static int t_state_put(struct mh_plugin_ctx *ctx, const char *key, const char *value, mh_done_cb cb,
                       void *arg)
{
    (void)ctx;
    req_new(R_PUT, key, value, value != NULL, arg)->done_cb = cb;
    return MH_PENDING;
}

static int t_mark_gone(struct mh_plugin_ctx *ctx, const char *folder, const char *sid, mh_done_cb cb,
                       void *arg)
{
    (void)ctx;
    assert_string_equal(folder, "INBOX");
    req_new(R_GONE, sid, NULL, 0, arg)->done_cb = cb;
    return MH_PENDING;
}

static int t_source_list(struct mh_plugin_ctx *ctx, const char *folder, mh_source_list_cb cb, void *arg)
{
    (void)ctx;
    req_new(R_LIST, folder, NULL, 0, arg)->list_cb = cb;
    return MH_PENDING;
}

static int t_put(struct mh_plugin_ctx *ctx, const struct mh_message *msg, mh_store_cb cb, void *arg)
{
    assert_true(H.nput < sizeof H.notify / sizeof H.notify[0]);
    H.notify_sids[H.nput] = strdup(msg->source_id);
    H.notify[H.nput++] = msg->notify;
    return mock_host_table(H.mh)->store_put_message(ctx, msg, cb, arg);
}

static const char *kv_get(const char *key)
{
    for (size_t i = 0; i < H.nkv; i++)
        if (strcmp(H.keys[i], key) == 0)
            return H.vals[i];
    return NULL;
}

static void kv_set(const char *key, const char *value)
{
    for (size_t i = 0; i < H.nkv; i++) {
        if (strcmp(H.keys[i], key) == 0) {
            free(H.vals[i]);
            H.vals[i] = value ? strdup(value) : NULL;
            return;
        }
    }
    assert_true(H.nkv < 256);
    H.keys[H.nkv] = strdup(key);
    H.vals[H.nkv++] = value ? strdup(value) : NULL;
}

static int is_gone(const char *sid)
{
    for (size_t i = 0; i < H.ngone; i++)
        if (strcmp(H.gone[i], sid) == 0)
            return 1;
    return 0;
}

/* Complete the queued requests in order (those they queue wait for the next call). */
static size_t run_requests(void)
{
    size_t n = H.nq;
    static struct req batch[4096];
    memcpy(batch, H.q, n * sizeof *batch);
    H.nq = 0;
    for (size_t i = 0; i < n; i++) {
        struct req *r = &batch[i];
        switch (r->kind) {
        case R_GET:
            r->state_cb(r->arg, MH_OK, kv_get(r->a));
            break;
        case R_PUT:
            kv_set(r->a, r->has_b ? r->b : NULL);
            if (r->done_cb)
                r->done_cb(r->arg, MH_OK);
            break;
        case R_GONE:
            if (!is_gone(r->a))
                H.gone[H.ngone++] = strdup(r->a);
            if (r->done_cb)
                r->done_cb(r->arg, MH_OK);
            break;
        case R_LIST: {
            size_t nm = mock_host_message_count(H.mh);
            struct mh_source_msg *list = calloc(nm + 1, sizeof *list);
            assert_non_null(list);
            for (size_t j = 0; j < nm; j++) {
                list[j].struct_size = sizeof list[j];
                list[j].source_id = mock_host_message(H.mh, j)->source_id;
                list[j].gone = is_gone(list[j].source_id);
            }
            r->list_cb(r->arg, MH_OK, list, nm);
            free(list);
            break;
        }
        }
        free(r->a);
        free(r->b);
    }
    return n;
}

/* ------------------------------------------------------------ the harness */

static void *g_state;

static void h_setup(void)
{
    memset(&H, 0, sizeof H);
    H.mh = mock_host_new("pop", "pop3");
    H.host = *mock_host_table(H.mh);
    H.host.struct_size = sizeof H.host;
    H.host.state_get = t_state_get;
    H.host.state_put = t_state_put;
    H.host.store_mark_gone = t_mark_gone;
    H.host.store_source_list = t_source_list;
    H.host.store_put_message = t_put;
    mock_host_ctx(H.mh)->host = &H.host;
}

static void h_teardown(void)
{
    for (size_t i = 0; i < H.nkv; i++) {
        free(H.keys[i]);
        free(H.vals[i]);
    }
    for (size_t i = 0; i < H.ngone; i++)
        free(H.gone[i]);
    for (size_t i = 0; i < H.nput; i++)
        free(H.notify_sids[i]);
    mock_host_free(&H.mh);
    srv_reset(0, 0);
}

/* init + start with "name", "value", ... NULL (host, username and password are added). */
static void inst_start(const char *first, ...)
{
    const char *kv[40] = {"host", "pop.example.com", "username", "alice", "password", "s3cret-pw"};
    size_t n = 6;
    va_list ap;
    va_start(ap, first);
    for (const char *s = first; s != NULL && n < 38; s = va_arg(ap, const char *))
        kv[n++] = s;
    va_end(ap);
    kv[n] = NULL;
    const struct mh_config *cfg = mock_host_config(H.mh, D->options, kv);
    if (cfg == NULL)
        fail_msg("config: %s", mock_host_config_error(H.mh));
    g_state = NULL;
    assert_int_equal(D->init(mock_host_ctx(H.mh), cfg, &g_state), MH_OK);
    assert_int_equal(D->start(g_state), MH_OK);
}

static void inst_free(void)
{
    mock_host_cancel_handles(H.mh);
    D->free(g_state);
    g_state = NULL;
}

/* Run until nothing moves: timers due now, puts, store requests, the connection, the server. */
static void pump(void)
{
    for (int guard = 0; guard < 100000; guard++) {
        size_t n = mock_host_run_all(H.mh);
        n += run_requests();
        if (C.open && !C.connected) {
            C.connected = 1;
            C.cbs.connected(&C, C.arg);
            n++;
        }
        n += (size_t)srv_step();
        if (n == 0)
            return;
    }
    fail_msg("pump: no end");
}

/* The same, but store puts stay pending. */
static void pump_no_puts(void)
{
    for (int guard = 0; guard < 100000; guard++) {
        size_t n = mock_host_run_timers(H.mh) + run_requests();
        if (C.open && !C.connected) {
            C.connected = 1;
            C.cbs.connected(&C, C.arg);
            n++;
        }
        n += (size_t)srv_step();
        if (n == 0)
            return;
    }
    fail_msg("pump: no end");
}

static void advance(double secs)
{
    mock_host_advance(H.mh, secs);
    pump();
}

static size_t stored(void)
{
    return mock_host_message_count(H.mh);
}

static const struct mock_message *stored_sid(const char *sid)
{
    for (size_t i = 0; i < stored(); i++)
        if (strcmp(mock_host_message(H.mh, i)->source_id, sid) == 0)
            return mock_host_message(H.mh, i);
    return NULL;
}

static int notify_of(const char *sid)
{
    int v = -1;
    for (size_t i = 0; i < H.nput; i++)
        if (strcmp(H.notify_sids[i], sid) == 0)
            v = H.notify[i];
    return v;
}

static size_t events(const char *type)
{
    return mock_host_event_count_type(H.mh, type);
}

static char *status(void)
{
    char *j = NULL;
    assert_int_equal(OPS->status_json(g_state, &j), MH_OK);
    return j;
}

/* ------------------------------------------------------------ tests */

static void test_import_then_poll(void **st)
{
    (void)st;
    h_setup();
    srv_reset(1, 1);
    for (int i = 0; i < 100; i++)
        srv_add(i, (size_t)(i * 37 % 900));
    S.chunk = 101; /* answers cut in odd pieces */
    inst_start("poll_interval", "30s", NULL);
    pump();
    assert_int_equal(stored(), 100);
    for (int i = 0; i < 100; i++) {
        char sid[64];
        snprintf(sid, sizeof sid, "uidl:%s", S.m[i].uid);
        const struct mock_message *m = stored_sid(sid);
        assert_non_null(m);
        assert_int_equal(m->raw_len, strlen(S.m[i].raw)); /* unstuffed: byte for byte */
        assert_memory_equal(m->raw, S.m[i].raw, m->raw_len);
        assert_string_equal(m->folder, "INBOX");
        assert_null(m->flags);
        assert_int_equal(notify_of(sid), 0); /* the initial import is no news */
    }
    assert_true(S.max_waiting > 1);   /* pipelined */
    assert_true(S.max_waiting <= 64); /* ... within the window */
    assert_int_equal(S.quit, 1);
    assert_false(C.open);
    assert_int_equal(S.dele, 0);
    assert_int_equal(events("account.synced"), 1);
    assert_true(events("account.progress") >= 1);
    assert_int_equal(events("account.error"), 0);
    assert_string_equal(kv_get("synced"), "1");
    char *js = status();
    assert_non_null(strstr(js, "\"state\":\"idle\""));
    assert_non_null(strstr(js, "\"pipelining\":true"));
    free(js);

    /* The next poll: nothing new, nothing fetched. */
    int retr = S.retr;
    advance(29);
    assert_int_equal(S.sessions, 1);
    advance(1.5);
    assert_int_equal(S.sessions, 2);
    assert_int_equal(S.retr, retr);
    assert_int_equal(events("account.synced"), 2);

    /* New mail: stored with notify=1. */
    srv_add(100, 10);
    advance(31);
    assert_int_equal(stored(), 101);
    assert_int_equal(notify_of("uidl:uid-0100"), 1);
    assert_int_equal(S.retr, retr + 1);

    /* sync_now starts a pass at once. */
    assert_int_equal(OPS->sync_now(g_state), MH_OK);
    pump();
    assert_int_equal(S.sessions, 4);
    inst_free();
    assert_null(mock_host_log_find(H.mh, "s3cret-pw"));
    h_teardown();
}

static void test_no_uidl_no_pipelining(void **st)
{
    (void)st;
    h_setup();
    srv_reset(0, 0);
    for (int i = 0; i < 20; i++)
        srv_add(i, 50);
    inst_start("poll_interval", "10s", NULL);
    pump();
    assert_int_equal(stored(), 20);
    assert_int_equal(S.max_waiting, 1); /* one command at a time */
    for (size_t i = 0; i < stored(); i++) {
        const char *sid = mock_host_message(H.mh, i)->source_id;
        assert_int_equal(strncmp(sid, "sha:", 4), 0);
        assert_int_equal(strlen(sid), 4 + 64);
    }
    size_t puts = mock_host_put_count(H.mh);
    advance(11);
    assert_int_equal(S.retr, 40);                      /* everything read again */
    assert_int_equal(mock_host_put_count(H.mh), puts); /* nothing stored twice */
    /* A message gone from the server is marked gone (by content). */
    S.m[3].deleted = 1;
    advance(11);
    assert_int_equal(H.ngone, 1);
    assert_non_null(stored_sid(H.gone[0]));
    assert_memory_equal(stored_sid(H.gone[0])->raw, S.m[3].raw, strlen(S.m[3].raw));
    inst_free();
    h_teardown();
}

static void test_vanished_marked_gone(void **st)
{
    (void)st;
    h_setup();
    srv_reset(1, 1);
    for (int i = 0; i < 10; i++)
        srv_add(i, 0);
    inst_start("poll_interval", "10s", NULL);
    pump();
    assert_int_equal(stored(), 10);
    S.m[2].deleted = S.m[7].deleted = 1;
    advance(11);
    assert_int_equal(H.ngone, 2);
    assert_true(is_gone("uidl:uid-0002"));
    assert_true(is_gone("uidl:uid-0007"));
    assert_int_equal(stored(), 10); /* the hub keeps them */
    advance(11);
    assert_int_equal(H.ngone, 2); /* marked once */
    assert_int_equal(S.dele, 0);  /* never deleted without delete_after_days */
    inst_free();
    h_teardown();
}

static void test_delete_after_days(void **st)
{
    (void)st;
    h_setup();
    srv_reset(1, 1);
    for (int i = 0; i < 5; i++)
        srv_add(i, 0);
    inst_start("poll_interval", "1h", "delete_after_days", "2", NULL);
    pump();
    assert_int_equal(stored(), 5);
    assert_int_equal(S.dele, 0);
    assert_non_null(kv_get("seen"));
    /* A day later two more arrive; nothing is old enough yet. */
    advance(DAY - 3600);
    srv_add(5, 0);
    srv_add(6, 0);
    advance(3601);
    assert_int_equal(stored(), 7);
    assert_int_equal(S.dele, 0);
    /* Two days and a bit after the import: the first five go, the two newer stay. */
    advance(DAY + 2 * 3600);
    assert_int_equal(S.dele, 5);
    for (int i = 0; i < 5; i++)
        assert_true(S.m[i].deleted);
    assert_false(S.m[5].deleted);
    assert_false(S.m[6].deleted);
    assert_int_equal(stored(), 7); /* the hub keeps its copies */
    advance(3601);                 /* the next pass marks them gone */
    assert_int_equal(H.ngone, 5);
    assert_true(is_gone("uidl:uid-0000"));
    /* And a day later the other two. */
    advance(DAY);
    assert_true(S.m[5].deleted);
    assert_true(S.m[6].deleted);
    assert_int_equal(S.dele, 7);
    /* The first-seen map only keeps what is still on the server: nothing now. */
    advance(3601);
    assert_string_equal(kv_get("seen"), "chunks=0");
    inst_free();
    h_teardown();
}

static void test_delete_needs_quit(void **st)
{
    (void)st;
    h_setup();
    srv_reset(1, 1);
    for (int i = 0; i < 3; i++)
        srv_add(i, 0);
    inst_start("poll_interval", "1h", "delete_after_days", "1", NULL);
    pump();
    assert_int_equal(stored(), 3);
    /* The store fails while a later pass runs: no QUIT, so no DELE is applied. */
    srv_add(3, 0);
    mock_host_fail_put(H.mh, 4, MH_ERETRY);
    advance(2 * DAY);
    assert_int_equal(events("account.error"), 1);
    assert_int_equal(S.quit, 1);
    for (int i = 0; i < 3; i++)
        assert_false(S.m[i].deleted); /* whatever DELE was sent: the session ended without QUIT */
    advance(1.5);                     /* the retry */
    assert_int_equal(stored(), 4);
    for (int i = 0; i < 3; i++)
        assert_true(S.m[i].deleted);
    inst_free();
    h_teardown();
}

static void test_restart_keeps_state(void **st)
{
    (void)st;
    h_setup();
    srv_reset(1, 1);
    for (int i = 0; i < 4; i++)
        srv_add(i, 0);
    inst_start(NULL);
    pump();
    assert_int_equal(stored(), 4);
    assert_int_equal(D->stop(g_state), MH_OK);
    inst_free();
    /* A new instance (a restart): the import is done, so new mail is news at once. */
    srv_add(4, 0);
    inst_start(NULL);
    pump();
    assert_int_equal(stored(), 5);
    assert_int_equal(S.retr, 5);
    assert_int_equal(notify_of("uidl:uid-0004"), 1);
    inst_free();
    h_teardown();
}

static void test_store_failure_backoff(void **st)
{
    (void)st;
    h_setup();
    srv_reset(1, 1);
    for (int i = 0; i < 10; i++)
        srv_add(i, 0);
    mock_host_fail_put(H.mh, 3, MH_EQUOTA);
    mock_host_fail_put(H.mh, 11, MH_EQUOTA);
    inst_start("poll_interval", "1h", NULL);
    pump();
    assert_int_equal(S.quit, 0); /* the session was dropped */
    assert_int_equal(events("account.error"), 1);
    assert_non_null(strstr(mock_host_event_find(H.mh, "account.error", 0)->data, "allocation is full"));
    char *js = status();
    assert_non_null(strstr(js, "\"state\":\"error\""));
    free(js);
    assert_int_equal(stored(), 9); /* the puts already in flight completed */
    advance(1.01);                 /* retry after 1 s: the one missing message fails again (the 11th put) */
    assert_int_equal(S.sessions, 2);
    assert_int_equal(events("account.error"), 1); /* the same error is reported once */
    advance(1.01);                                /* then 2 s */
    assert_int_equal(S.sessions, 2);
    advance(1.01);
    assert_int_equal(S.sessions, 3);
    assert_int_equal(stored(), 10);
    assert_int_equal(events("account.synced"), 1);
    assert_non_null(mock_host_log_find(H.mh, "recovered"));
    for (size_t i = 0; i < stored(); i++)
        assert_int_equal(notify_of(mock_host_message(H.mh, i)->source_id), 0);
    inst_free();
    h_teardown();
}

static void test_window_while_store_is_slow(void **st)
{
    (void)st;
    h_setup();
    srv_reset(1, 1);
    for (int i = 0; i < 40; i++)
        srv_add(i, 1 << 20); /* 1 MB each */
    inst_start(NULL);
    pump_no_puts();
    /* 32 MB in flight at most, counting puts not yet acknowledged. */
    assert_true(S.retr >= 30 && S.retr <= 33);
    assert_int_equal(S.quit, 0);
    pump();
    assert_int_equal(stored(), 40);
    assert_int_equal(S.quit, 1);
    inst_free();
    h_teardown();
}

static void test_stop_waits_for_puts(void **st)
{
    (void)st;
    h_setup();
    srv_reset(1, 1);
    for (int i = 0; i < 8; i++)
        srv_add(i, 0);
    inst_start(NULL);
    pump_no_puts();
    assert_true(mock_host_pending_puts(H.mh) > 0);
    assert_int_equal(D->stop(g_state), MH_PENDING);
    assert_false(C.open);
    assert_int_equal(mock_host_stopped_count(H.mh), 0);
    mock_host_run(H.mh);
    assert_int_equal(mock_host_stopped_count(H.mh), 1);
    assert_int_equal(stored(), 8);
    advance(3600); /* nothing more after a stop */
    assert_int_equal(S.sessions, 1);
    inst_free();
    h_teardown();
}

static void test_garbage_and_refused_retr(void **st)
{
    (void)st;
    h_setup();
    srv_reset(1, 1);
    for (int i = 0; i < 6; i++)
        srv_add(i, 0);
    S.garbage_uidl = 1;
    S.retr_err = 2;
    inst_start("poll_interval", "1h", NULL);
    pump();
    assert_int_equal(events("account.error"), 1);
    assert_non_null(strstr(mock_host_event_find(H.mh, "account.error", 0)->data, "HTTP/1.1 200 OK"));
    assert_int_equal(stored(), 0);
    advance(1.01);
    assert_int_equal(stored(), 5); /* RETR 2 is refused: skipped, the pass ends */
    assert_int_equal(events("account.synced"), 1);
    assert_non_null(mock_host_log_find(H.mh, "RETR 2 refused: locked"));
    inst_free();
    h_teardown();
}

static void test_auth_user_logs_in_itself(void **st)
{
    (void)st;
    h_setup();
    srv_reset(1, 1);
    srv_add(0, 0);
    inst_start("auth", "user", NULL);
    pump();
    assert_int_equal(g_username_null, 1); /* curl was not asked to log in */
    assert_int_equal(S.user, 1);
    assert_int_equal(S.pass, 1);
    assert_string_equal(S.last_pass, "s3cret-pw");
    assert_int_equal(stored(), 1);
    assert_null(mock_host_log_find(H.mh, "s3cret-pw"));
    inst_free();
    h_teardown();
}

static void test_options(void **st)
{
    (void)st;
    h_setup();
    const char *bad[] = {"host", "h", "username", "a\r\nDELE 1", "password", "p", NULL};
    const struct mh_config *cfg = mock_host_config(H.mh, D->options, bad);
    assert_non_null(cfg);
    void *s = NULL;
    assert_int_equal(D->init(mock_host_ctx(H.mh), cfg, &s), MH_EINVAL);
    assert_non_null(strstr(mock_host_error(H.mh), "line breaks"));
    const char *tls[] = {"host", "h", "username", "a", "password", "p", "tls", "ssl", NULL};
    assert_null(mock_host_config(H.mh, D->options, tls));
    const char *days[] = {"host", "h", "username", "a", "password", "p", "delete_after_days", "-1", NULL};
    assert_null(mock_host_config(H.mh, D->options, days));
    h_teardown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_import_then_poll),         cmocka_unit_test(test_no_uidl_no_pipelining),
        cmocka_unit_test(test_vanished_marked_gone),     cmocka_unit_test(test_delete_after_days),
        cmocka_unit_test(test_delete_needs_quit),        cmocka_unit_test(test_restart_keeps_state),
        cmocka_unit_test(test_store_failure_backoff),    cmocka_unit_test(test_window_while_store_is_slow),
        cmocka_unit_test(test_stop_waits_for_puts),      cmocka_unit_test(test_garbage_and_refused_retr),
        cmocka_unit_test(test_auth_user_logs_in_itself), cmocka_unit_test(test_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

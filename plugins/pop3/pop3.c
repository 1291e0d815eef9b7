/*
 * pop3: a provider that imports a POP3 maildrop and keeps polling it.
 *
 * A pass.  Every poll_interval (and at start, and on sync_now) the provider
 * connects through netconn (libcurl does TCP, TLS or STLS, the greeting and
 * the login as a CONNECT_ONLY transfer; we speak POP3 on the socket; with
 * auth: user curl connects without logging in and we send USER/PASS), and at
 * the same time asks the store which source ids of the folder it holds
 * (mh_store_source_list), kept for the pass as a hash set.  Then CAPA, UIDL
 * and LIST; every message whose "uidl:<UIDL>" is not stored is fetched with
 * RETR (pipelined when CAPA lists PIPELINING: up to POP3_PIPE_RETR commands
 * and POP3_INFLIGHT_BYTES bytes in flight, counting the puts not yet
 * acknowledged; else one at a time) and handed to mh_store_put_message().
 * Then DELE for the messages that delete_after_days allows, QUIT (a POP3
 * server locks the maildrop while a session is open, and only applies DELE
 * at QUIT), and once every put is acknowledged: stored messages whose UIDL is
 * no longer listed are marked gone, the state is saved, account.synced.
 *
 * Servers without UIDL: every message is fetched each pass and identified by
 * "sha:<hex SHA-256 of its bytes>"; only the ones not stored are put.  That
 * costs a full download per pass, and deletion is off for such servers.
 *
 * Deleting.  Only with delete_after_days > 0 and UIDL: a message is deleted
 * when it was already stored when the pass began (so its put was
 * acknowledged in an earlier pass) and it was first seen stored at least that
 * many days ago.  First-seen times live in the state ("seen" -> "chunks=N",
 * "seen.<i>" -> lines "<unix time> <UIDL>"), written after the puts of the
 * pass; an entry that is missing (a crash before it was written) gets the
 * time of the pass that notices it, which only delays a deletion.
 *
 * Events: mail.received through mh_message.notify for mail found after the
 * first complete pass (remembered in the state key "synced"), account.progress
 * during the first pass, account.synced after each pass, account.error once
 * per distinct error, retried with backoff 1, 2, 4 ... 300 s.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include <mailhub/plugin.h>
#include <mailhub/provider.h>

#include "../common/netconn.h"
#include "pop3_parse.h"

#define POP3_PIPE_RETR 64                        /* RETR (and DELE) commands in flight when pipelining */
#define POP3_INFLIGHT_BYTES ((uint64_t)32 << 20) /* RETR sizes + unacknowledged puts at most */
#define POP3_PUTS_MAX 256                        /* puts not yet acknowledged at most */
#define POP3_MSG_MAX ((uint64_t)256 << 20)       /* a larger message is skipped */
#define POP3_LIST_MAX 5000000                    /* listing entries accepted */
#define POP3_BACKOFF_MAX 300.0
#define POP3_KNOWN_TTL 3600.0 /* a pass reads the stored list again at least this often */
#define POP3_PROGRESS_EVERY 10.0
#define POP3_CHUNK_MAX (900u << 10) /* bytes of one "seen.<i>" state value */

enum phase {
    PH_IDLE,  /* between passes, or not started */
    PH_PREP,  /* connecting; loading the stored set and the state */
    PH_USER,  /* USER sent (auth: user, when netconn connects without logging in) */
    PH_PASS,  /* PASS sent */
    PH_CAPA,  /* CAPA sent */
    PH_UIDL,  /* UIDL sent */
    PH_LIST,  /* LIST sent */
    PH_FETCH, /* RETR commands */
    PH_DELE,  /* DELE commands */
    PH_QUIT,  /* QUIT sent */
    PH_WAIT,  /* the session is over; waiting for the puts to be acknowledged */
    PH_ERROR, /* waiting to retry */
    PH_STOPPED,
};

enum auth_kind { AUTH_AUTO, AUTH_USER, AUTH_PLAIN, AUTH_XOAUTH2, AUTH_OAUTHBEARER };

#define E_STORED 0x1u /* stored (before the pass, or acknowledged during it) */
#define E_DELE 0x2u   /* DELE answered +OK */

/* One message of the maildrop. */
struct entry {
    uint32_t num;
    unsigned flags;
    uint64_t size; /* from LIST, 0 if unknown */
    char *uid;     /* UIDL, or NULL */
};

/* A string -> int64 hash map (open addressing; keys owned). */
struct strmap {
    char **keys;
    int64_t *vals;
    size_t cap, n;
};

struct pop3;

/* One store put not yet acknowledged. */
struct put {
    struct pop3 *p;
    struct put *prev, *next;
    unsigned gen; /* the pass it belongs to */
    size_t entry; /* index in p->entries */
    uint64_t bytes;
    char *sid;
};

struct pop3 {
    struct mh_plugin_ctx *ctx;
    /* options */
    char *host, *username, *password, *token, *ca_file, *folder, *label;
    int port;
    enum nc_tls tls;
    enum auth_kind auth;
    double poll_interval;
    int64_t timeout_ms, delete_days;

    enum phase phase;
    unsigned gen;    /* changes when a pass starts or fails: puts of an older one are stale */
    unsigned passes; /* passes started */
    int stopping, stop_pending, synced, state_ok, state_asked;
    struct mh_timer *timer; /* the next pass or retry */
    double backoff;
    char *error; /* reported with account.error, until a pass succeeds */

    /* the session */
    struct nc_conn *conn;
    struct pop3_parser *parser;
    int connected, known_ready, seen_ready, pipelining, have_uidl;
    int expecting; /* told netconn that an answer is due */
    int uidl_warned;
    int own_login;       /* this session: we send USER/PASS (curl did not log in) */
    int no_own_login;    /* netconn cannot connect without logging in */
    struct strmap known; /* source ids stored (value: 1 gone) */
    int known_keep;      /* known is kept from the last pass (which ended well), with its puts */
    double known_at;     /* when it was last read from the store */
    int known_ok;        /* the store gave the list (else: fetch everything, the store dedups) */

    /* the maildrop */
    struct entry *entries;
    size_t n_entries, cap_entries;
    size_t *fetch; /* indices of entries to fetch, in order */
    size_t n_fetch, next_fetch, next_recv;
    size_t *dele;
    size_t n_dele, next_dele, dele_answered;
    uint64_t retr_bytes; /* LIST sizes of RETRs sent and not answered */
    size_t retr_inflight;
    int retr_failed;   /* a RETR got -ERR or a message was skipped (no-UIDL: no gone marks) */
    int retr_oversize; /* ... and is over POP3_MSG_MAX */
    char *buf;
    size_t len, cap;
    struct strmap server; /* no-UIDL: sha source ids of this pass */

    /* puts */
    struct put *puts;
    size_t puts_inflight;
    uint64_t puts_bytes;
    int busy; /* store requests other than puts in flight (source list, state, gone marks) */

    /* first-seen times (delete_after_days) */
    struct strmap seen;
    int seen_loaded, seen_dirty;
    size_t seen_chunks, seen_loading;

    /* counts */
    int64_t pass_msgs, pass_new, pass_dups, pass_failed, pass_deleted, pass_gone;
    int64_t done, total;
    double pass_started, last_progress;
    int64_t reported; /* done at the last progress report */
    int last_decile;
};

static const struct mh_option pop3_options[] = {
    {"host", MH_OPT_STR, NULL, MH_OPT_REQUIRED, "POP3 server host name or address", NULL, 0, 0},
    {"port", MH_OPT_INT, NULL, 0, "server port (default 995 with tls: implicit, else 110)", NULL, 1, 65535},
    {"tls", MH_OPT_ENUM, "implicit", 0, "implicit (pop3s), starttls (STLS, required) or none",
     "implicit|starttls|none", 0, 0},
    {"username", MH_OPT_STR, NULL, MH_OPT_REQUIRED, "login name", NULL, 0, 0},
    {"password", MH_OPT_STR, NULL, MH_OPT_SECRET, "password (or use oauth2_token)", NULL, 0, 0},
    {"oauth2_token", MH_OPT_STR, NULL, MH_OPT_SECRET, "OAuth2 access token (SASL XOAUTH2 or OAUTHBEARER)", NULL,
     0, 0},
    {"auth", MH_OPT_ENUM, "auto", 0,
     "login method: auto (best offered), user (USER/PASS), plain (SASL PLAIN), xoauth2 or oauthbearer "
     "(with oauth2_token)",
     "auto|user|plain|xoauth2|oauthbearer", 0, 0},
    {"ca_file", MH_OPT_STR, NULL, 0, "extra CA certificates (PEM) to trust; verification is never off", NULL,
     0, 0},
    {"poll_interval", MH_OPT_DURATION, "2m", 0, "how often to look for new mail", NULL, 100, 86400000},
    {"delete_after_days", MH_OPT_INT, "0", 0,
     "delete a message from the server this many days after it was stored (0: never)", NULL, 0, 36500},
    {"timeout", MH_OPT_DURATION, "60s", 0, "a server silent this long fails the connection", NULL, 100,
     3600000},
    {"folder", MH_OPT_STR, "INBOX", 0, "hub folder the messages are filed under", NULL, 0, 0},
    MH_OPT_TABLE_END,
};

static const char *const phase_names[] = {"idle",      "connecting", "connecting", "connecting", "listing",
                                          "listing",   "listing",    "fetching",   "deleting",   "finishing",
                                          "finishing", "error",      "stopped"};

static void pass_start(struct pop3 *p);
static void pass_fail(struct pop3 *p, const char *fmt, ...) MH_PRINTF(2, 3);
static void pass_maybe_done(struct pop3 *p);
static void begin_dialogue(struct pop3 *p);
static void fetch_more(struct pop3 *p);
static void after_fetch(struct pop3 *p);

/* ------------------------------------------------------------ helpers */

static void emit(struct pop3 *p, const char *type, json_t *data)
{
    char *text = data != NULL ? json_dumps(data, JSON_COMPACT) : NULL;
    json_decref(data);
    if (text == NULL) {
        mh_log_error(p->ctx, "cannot build the %s event", type);
        return;
    }
    int rc = mh_event_emit(p->ctx, type, text);
    if (rc != MH_OK)
        mh_log_warn(p->ctx, "%s event refused (%d)", type, rc);
    free(text);
}

static void hex(const unsigned char *md, unsigned n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    out[2 * n] = '\0';
}

static const char *rc_text(int rc)
{
    switch (rc) {
    case MH_ERETRY:
        return "store temporarily unavailable";
    case MH_EQUOTA:
        return "the user's allocation is full (the mail stays on the server)";
    case MH_ENOMEM:
        return "out of memory";
    case MH_EINVAL:
        return "rejected as invalid";
    case MH_ECANCELED:
        return "cancelled";
    case MH_ETIMEDOUT:
        return "store timed out";
    case MH_ENOTSUP:
        return "not supported by this daemon";
    default:
        return "store error";
    }
}

static int rc_transient(int rc)
{
    return rc == MH_ERETRY || rc == MH_EQUOTA || rc == MH_ENOMEM || rc == MH_ETIMEDOUT || rc == MH_ECANCELED;
}

/* ------------------------------------------------------------ strmap */

static uint64_t str_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static size_t map_slot(const struct strmap *m, const char *k, size_t kl)
{
    size_t i = (size_t)str_hash(k, kl) & (m->cap - 1);
    while (m->keys[i] != NULL && !(strncmp(m->keys[i], k, kl) == 0 && m->keys[i][kl] == '\0'))
        i = (i + 1) & (m->cap - 1);
    return i;
}

static int64_t *map_find(const struct strmap *m, const char *k, size_t kl)
{
    if (m->cap == 0)
        return NULL;
    size_t i = map_slot(m, k, kl);
    return m->keys[i] != NULL ? &m->vals[i] : NULL;
}

static int map_grow(struct strmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    struct strmap g = {calloc(cap, sizeof(char *)), calloc(cap, sizeof(int64_t)), cap, 0};
    if (g.keys == NULL || g.vals == NULL) {
        free(g.keys);
        free(g.vals);
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i] == NULL)
            continue;
        size_t j = map_slot(&g, m->keys[i], strlen(m->keys[i]));
        g.keys[j] = m->keys[i];
        g.vals[j] = m->vals[i];
        g.n++;
    }
    free(m->keys);
    free(m->vals);
    *m = g;
    return 0;
}

/* Set k -> v (replacing).  0, or -1 on ENOMEM. */
static int map_put(struct strmap *m, const char *k, size_t kl, int64_t v)
{
    if ((m->n + 1) * 4 >= m->cap * 3 && map_grow(m) != 0)
        return -1;
    size_t i = map_slot(m, k, kl);
    if (m->keys[i] == NULL) {
        char *key = malloc(kl + 1);
        if (key == NULL)
            return -1;
        memcpy(key, k, kl);
        key[kl] = '\0';
        m->keys[i] = key;
        m->n++;
    }
    m->vals[i] = v;
    return 0;
}

static void map_clear(struct strmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->keys[i]);
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------ progress */

static double pass_rate(struct pop3 *p)
{
    double dt = mh_now(p->ctx) - p->pass_started;
    return dt > 0 && p->done > 0 ? (double)p->done / dt : 0.0;
}

static void progress(struct pop3 *p, int force)
{
    if (p->synced || p->total == 0)
        return;
    double now = mh_now(p->ctx);
    int decile = (int)(p->done * 10 / p->total);
    /* Every 10 s, or at each new tenth, a second apart at least. */
    if (!force && now - p->last_progress < POP3_PROGRESS_EVERY &&
        !(decile > p->last_decile && now - p->last_progress >= 1.0))
        return;
    if (force && p->done == p->reported)
        return;
    double rate = pass_rate(p);
    mh_log_info(p->ctx, "imported %" PRId64 " of %" PRId64 " messages from %s (%.0f msgs/s)", p->done,
                p->total, p->label, rate);
    emit(p, "account.progress",
         json_pack("{s:s, s:I, s:I, s:f}", "account", p->ctx->instance, "done", (json_int_t)p->done, "total",
                   (json_int_t)p->total, "rate", rate));
    p->last_progress = now;
    p->last_decile = decile;
    p->reported = p->done;
}

/* ------------------------------------------------------------ passes */

static void timer_cb(struct mh_timer *t, void *arg)
{
    struct pop3 *p = arg;
    (void)t;
    mh_timer_del(p->ctx, &p->timer);
    pass_start(p);
}

static void schedule(struct pop3 *p, double after)
{
    mh_timer_del(p->ctx, &p->timer);
    if (p->stopping)
        return;
    p->timer = mh_timer_add(p->ctx, after, 0, timer_cb, p);
    if (p->timer == NULL)
        mh_log_error(p->ctx, "cannot add a timer: %s will not be polled again", p->label);
}

static void session_close(struct pop3 *p)
{
    nc_close(&p->conn);
    p->connected = 0;
}

static void pass_reset(struct pop3 *p)
{
    for (size_t i = 0; i < p->n_entries; i++)
        free(p->entries[i].uid);
    p->n_entries = 0;
    free(p->fetch);
    free(p->dele);
    p->fetch = p->dele = NULL;
    p->n_fetch = p->next_fetch = p->next_recv = 0;
    p->n_dele = p->next_dele = p->dele_answered = 0;
    p->retr_bytes = 0;
    p->retr_inflight = 0;
    p->retr_failed = p->retr_oversize = 0;
    p->len = 0;
    if (!p->known_keep)
        map_clear(&p->known);
    map_clear(&p->server);
    p->known_ready = p->known_ok = 0;
}

/* Error texts equal but for numbers (curl says "after 207 ms"): one account.error for both. */
static int same_error(const char *a, const char *b)
{
    for (;;) {
        while (*a >= '0' && *a <= '9')
            a++;
        while (*b >= '0' && *b <= '9')
            b++;
        if (*a != *b)
            return 0;
        if (*a == '\0')
            return 1;
        a++, b++;
    }
}

/* The pass failed: drop the session (no QUIT: nothing is deleted) and retry with backoff. */
static void pass_fail(struct pop3 *p, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    session_close(p);
    if (p->phase == PH_ERROR || p->phase == PH_STOPPED)
        return;
    p->gen++; /* puts still in flight belong to a dead pass */
    p->phase = PH_ERROR;
    p->known_keep = 0; /* read the store again: the failed pass may have left it unlike the map */
    double delay = p->backoff;
    p->backoff = p->backoff * 2 > POP3_BACKOFF_MAX ? POP3_BACKOFF_MAX : p->backoff * 2;
    schedule(p, delay);
    if (p->error != NULL && same_error(p->error, text)) {
        mh_log_debug(p->ctx, "still failing: %s", text);
        return;
    }
    mh_log_warn(p->ctx, "%s (retrying in %.0f s)", text, delay);
    free(p->error);
    p->error = mh_strdup(text);
    emit(p, "account.error", json_pack("{s:s, s:s}", "account", p->ctx->instance, "error", text));
}

/* Send a command and expect its answer.  0, or -1 after pass_fail. */
static int send_cmd(struct pop3 *p, enum pop3_kind kind, const char *fmt, ...) MH_PRINTF(3, 4);
static int send_cmd(struct pop3 *p, enum pop3_kind kind, const char *fmt, ...)
{
    char cmd[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof cmd || pop3_parser_expect(p->parser, kind) != 0 ||
        nc_write(p->conn, cmd, (size_t)n) != MH_OK) {
        pass_fail(p, "%s: cannot send a command", p->label);
        return -1;
    }
    if (!p->expecting) {
        nc_expect(p->conn, 1); /* an answer is due: silence now is a stalled server */
        p->expecting = 1;
    }
    return 0;
}

/* USER or PASS with its argument (any length; the buffer is wiped: it may hold the password). */
static int send_login(struct pop3 *p, const char *verb, const char *arg)
{
    size_t vl = strlen(verb), al = strlen(arg);
    char *cmd = malloc(vl + al + 3);
    if (cmd == NULL) {
        pass_fail(p, "%s: out of memory", p->label);
        return -1;
    }
    memcpy(cmd, verb, vl);
    memcpy(cmd + vl, arg, al);
    memcpy(cmd + vl + al, "\r\n", 2);
    int rc =
        pop3_parser_expect(p->parser, POP3_SINGLE) == 0 ? nc_write(p->conn, cmd, vl + al + 2) : MH_EINVAL;
    volatile char *v = cmd;
    for (size_t i = 0; i < vl + al + 2; i++)
        v[i] = 0;
    free(cmd);
    if (rc != MH_OK) {
        pass_fail(p, "%s: cannot send a command", p->label);
        return -1;
    }
    return 0;
}

/* Everything is done for the pass (session closed, puts acknowledged). */
static void pass_done(struct pop3 *p)
{
    int first = !p->synced;
    /* What the store holds is the map as this pass left it (its puts, its gone marks): the next pass
     * starts from it instead of reading the whole list again, for at most POP3_KNOWN_TTL. */
    p->known_keep = p->known_ok && mh_now(p->ctx) - p->known_at < POP3_KNOWN_TTL;
    double secs = mh_now(p->ctx) - p->pass_started;
    p->phase = PH_IDLE;
    p->backoff = 1;
    if (p->error != NULL) {
        mh_log_info(p->ctx, "%s: recovered from: %s", p->label, p->error);
        free(p->error);
        p->error = NULL;
    }
    if (first || p->pass_new > 0 || p->pass_deleted > 0 || p->pass_gone > 0)
        mh_log_info(p->ctx,
                    "%s: %s pass: %" PRId64 " messages on the server, %" PRId64 " fetched, %" PRId64
                    " new, %" PRId64 " duplicates, %" PRId64 " failed, %" PRId64 " deleted, %" PRId64
                    " gone, %.1f s",
                    p->label, first ? "first" : "sync", (int64_t)p->n_entries, p->pass_msgs, p->pass_new,
                    p->pass_dups, p->pass_failed, p->pass_deleted, p->pass_gone, secs);
    progress(p, 1);
    if (first) {
        p->synced = 1;
        if (p->state_ok && mh_state_put(p->ctx, "synced", "1", NULL, NULL) < 0)
            mh_log_warn(p->ctx, "cannot save the sync state");
    }
    emit(p, "account.synced",
         json_pack("{s:s, s:s, s:I, s:I, s:I}", "account", p->ctx->instance, "folder", p->folder, "messages",
                   (json_int_t)p->pass_msgs, "new", (json_int_t)p->pass_new, "duplicates",
                   (json_int_t)p->pass_dups));
    pass_reset(p);
    schedule(p, p->poll_interval);
}

/* ------------------------------------------------------------ state */

/* A store request (not a put) completed: go on with what waited for it. */
static void store_settled(struct pop3 *p)
{
    if (p->stopping) {
        if (p->stop_pending && p->busy == 0 && p->puts_inflight == 0) {
            p->stop_pending = 0;
            mh_stopped(p->ctx);
        }
        return;
    }
    if (p->phase == PH_PREP)
        begin_dialogue(p);
    else if (p->phase == PH_WAIT)
        pass_maybe_done(p);
}

static void state_put_cb(void *arg, int rc)
{
    struct pop3 *p = arg;
    p->busy--;
    if (rc != MH_OK)
        mh_log_warn(p->ctx, "%s: cannot save the first-seen times: %s", p->label, rc_text(rc));
    store_settled(p);
}

static void state_put_busy(struct pop3 *p, const char *key, const char *value)
{
    int rc = mh_state_put(p->ctx, key, value, state_put_cb, p);
    if (rc == MH_PENDING)
        p->busy++;
    else
        mh_log_warn(p->ctx, "%s: cannot save %s: %s", p->label, key, rc_text(rc));
}

/* Save the first-seen map in chunks "seen.<i>" and their count in "seen". */
static void seen_save(struct pop3 *p)
{
    size_t cap = POP3_CHUNK_MAX + 512, len = 0, chunks = 0;
    char *buf = malloc(cap);
    char key[32];
    if (buf == NULL) {
        mh_log_warn(p->ctx, "%s: cannot save the first-seen times: out of memory", p->label);
        return;
    }
    for (size_t i = 0; i < p->seen.cap; i++) {
        const char *k = p->seen.keys[i];
        if (k == NULL)
            continue;
        if (len > 0 && len + strlen(k) + 24 > POP3_CHUNK_MAX) {
            snprintf(key, sizeof key, "seen.%zu", chunks++);
            state_put_busy(p, key, buf);
            len = 0;
        }
        len += (size_t)snprintf(buf + len, cap - len, "%" PRId64 " %s\n", p->seen.vals[i], k);
    }
    if (len > 0) {
        snprintf(key, sizeof key, "seen.%zu", chunks++);
        state_put_busy(p, key, buf);
    }
    free(buf);
    for (size_t i = chunks; i < p->seen_chunks; i++) {
        snprintf(key, sizeof key, "seen.%zu", i);
        state_put_busy(p, key, NULL);
    }
    char count[32];
    snprintf(count, sizeof count, "chunks=%zu", chunks);
    state_put_busy(p, "seen", count);
    p->seen_chunks = chunks;
    p->seen_dirty = 0;
}

static void seen_parse(struct pop3 *p, const char *text)
{
    const char *s = text;
    while (*s != '\0') {
        const char *nl = strchr(s, '\n');
        size_t n = nl != NULL ? (size_t)(nl - s) : strlen(s);
        char *end;
        long long t = strtoll(s, &end, 10);
        if (end > s && end < s + n && *end == ' ' && (size_t)(end + 1 - s) < n &&
            map_put(&p->seen, end + 1, n - (size_t)(end + 1 - s), (int64_t)t) != 0)
            mh_log_warn(p->ctx, "%s: out of memory reading the first-seen times", p->label);
        s += n;
        if (*s == '\n')
            s++;
    }
}

static void seen_chunk_cb(void *arg, int rc, const char *value);

static void seen_load_next(struct pop3 *p)
{
    if (p->seen_loading >= p->seen_chunks) {
        p->seen_loaded = p->seen_ready = 1;
        store_settled(p);
        return;
    }
    char key[32];
    snprintf(key, sizeof key, "seen.%zu", p->seen_loading);
    int rc = mh_state_get(p->ctx, key, seen_chunk_cb, p);
    if (rc != MH_PENDING) {
        pass_fail(p, "%s: cannot read the sync state: %s", p->label, rc_text(rc));
        store_settled(p);
        return;
    }
    p->busy++;
}

static void seen_chunk_cb(void *arg, int rc, const char *value)
{
    struct pop3 *p = arg;
    p->busy--;
    if (p->phase != PH_PREP) {
        store_settled(p);
        return;
    }
    if (rc != MH_OK) {
        pass_fail(p, "%s: cannot read the sync state: %s", p->label, rc_text(rc));
        store_settled(p);
        return;
    }
    if (value != NULL)
        seen_parse(p, value);
    p->seen_loading++;
    seen_load_next(p);
}

static void seen_count_cb(void *arg, int rc, const char *value)
{
    struct pop3 *p = arg;
    p->busy--;
    if (p->phase != PH_PREP) {
        store_settled(p);
        return;
    }
    if (rc != MH_OK) {
        pass_fail(p, "%s: cannot read the sync state: %s", p->label, rc_text(rc));
        store_settled(p);
        return;
    }
    unsigned long long n = 0;
    if (value != NULL && sscanf(value, "chunks=%llu", &n) != 1)
        n = 0;
    map_clear(&p->seen);
    p->seen_chunks = (size_t)n;
    p->seen_loading = 0;
    seen_load_next(p);
}

static void synced_cb(void *arg, int rc, const char *value)
{
    struct pop3 *p = arg;
    p->busy--;
    if (rc == MH_OK) {
        p->state_asked = 1;
        if (value != NULL && strcmp(value, "1") == 0)
            p->synced = 1;
    } else if (p->phase == PH_PREP) {
        pass_fail(p, "%s: cannot read the sync state: %s", p->label, rc_text(rc));
    }
    store_settled(p);
}

/* ------------------------------------------------------------ store list */

static void known_cb(void *arg, int rc, const struct mh_source_msg *msgs, size_t n)
{
    struct pop3 *p = arg;
    p->busy--;
    if (p->phase != PH_PREP) { /* the pass failed meanwhile */
        store_settled(p);
        return;
    }
    if (rc != MH_OK) {
        pass_fail(p, "%s: cannot list the stored messages of %s: %s", p->label, p->folder, rc_text(rc));
        store_settled(p);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *sid = msgs[i].source_id;
        if (sid != NULL && map_put(&p->known, sid, strlen(sid), msgs[i].gone ? 1 : 0) != 0) {
            pass_fail(p, "%s: out of memory listing the stored messages", p->label);
            store_settled(p);
            return;
        }
    }
    p->known_ready = p->known_ok = 1;
    store_settled(p);
}

/* ------------------------------------------------------------ the session */

/* The connection is up and the stored set known: begin the POP3 dialogue. */
static void begin_dialogue(struct pop3 *p)
{
    if (p->phase != PH_PREP || !p->connected || !p->known_ready || !p->seen_ready || p->busy > 0)
        return;
    if (p->own_login) {
        p->phase = PH_USER;
        send_login(p, "USER ", p->username);
        return;
    }
    p->phase = PH_CAPA;
    send_cmd(p, POP3_LINES, "CAPA\r\n");
}

/* 1 when the store holds every message UIDL listed (a re-sync with nothing new). */
static int all_known(struct pop3 *p)
{
    if (!p->known_ok)
        return 0;
    for (size_t i = 0; i < p->n_entries; i++) {
        const struct entry *e = &p->entries[i];
        char sid[POP3_UIDL_MAX + 8];
        if (e->uid == NULL)
            return 0;
        int n = snprintf(sid, sizeof sid, "uidl:%s", e->uid);
        if (map_find(&p->known, sid, (size_t)n) == NULL)
            return 0;
    }
    return 1;
}

static int entry_cmp(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    return x->num < y->num ? -1 : x->num > y->num;
}

static void entries_sort(struct pop3 *p)
{
    qsort(p->entries, p->n_entries, sizeof *p->entries, entry_cmp);
}

static struct entry *entry_by_num(struct pop3 *p, uint32_t num)
{
    size_t lo = 0, hi = p->n_entries;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->entries[mid].num == num)
            return &p->entries[mid];
        if (p->entries[mid].num < num)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static struct entry *entry_add(struct pop3 *p)
{
    if (p->n_entries >= POP3_LIST_MAX)
        return NULL;
    if (p->n_entries == p->cap_entries) {
        size_t cap = p->cap_entries ? p->cap_entries * 2 : 256;
        struct entry *e = realloc(p->entries, cap * sizeof *e);
        if (e == NULL)
            return NULL;
        p->entries = e;
        p->cap_entries = cap;
    }
    struct entry *e = &p->entries[p->n_entries++];
    memset(e, 0, sizeof *e);
    return e;
}

static char *uidl_sid(const char *uid)
{
    size_t n = strlen(uid);
    char *s = malloc(n + 6);
    if (s != NULL) {
        memcpy(s, "uidl:", 5);
        memcpy(s + 5, uid, n + 1);
    }
    return s;
}

/* The listings are in: choose what to fetch and what to delete. */
static void plan(struct pop3 *p)
{
    p->fetch = malloc((p->n_entries ? p->n_entries : 1) * sizeof *p->fetch);
    p->dele = malloc((p->n_entries ? p->n_entries : 1) * sizeof *p->dele);
    if (p->fetch == NULL || p->dele == NULL) {
        pass_fail(p, "%s: out of memory planning the pass", p->label);
        return;
    }
    double now = mh_now(p->ctx);
    for (size_t i = 0; i < p->n_entries; i++) {
        struct entry *e = &p->entries[i];
        if (!p->have_uidl || e->uid == NULL) {
            p->fetch[p->n_fetch++] = i;
            continue;
        }
        char sid[POP3_UIDL_MAX + 8];
        int n = snprintf(sid, sizeof sid, "uidl:%s", e->uid);
        if (p->known_ok && map_find(&p->known, sid, (size_t)n) != NULL) {
            e->flags |= E_STORED;
            if (p->delete_days > 0 && p->seen_loaded) {
                int64_t *t = map_find(&p->seen, e->uid, strlen(e->uid));
                if (t != NULL && (double)*t + (double)p->delete_days * 86400.0 <= now)
                    p->dele[p->n_dele++] = i;
            }
        } else {
            p->fetch[p->n_fetch++] = i;
        }
    }
    p->total = (int64_t)p->n_fetch;
    p->done = 0;
    if (p->n_fetch > 0)
        mh_log_debug(p->ctx, "%s: %zu of %zu messages to fetch%s", p->label, p->n_fetch, p->n_entries,
                     p->pipelining ? " (pipelined)" : "");
    p->phase = PH_FETCH;
    fetch_more(p);
}

/* Send RETR commands while the window allows. */
static void fetch_more(struct pop3 *p)
{
    if (p->phase != PH_FETCH)
        return;
    size_t max_cmds = p->pipelining ? POP3_PIPE_RETR : 1;
    while (p->next_fetch < p->n_fetch && p->retr_inflight < max_cmds &&
           p->puts_inflight + p->retr_inflight < POP3_PUTS_MAX) {
        struct entry *e = &p->entries[p->fetch[p->next_fetch]];
        uint64_t sz = e->size < POP3_MSG_MAX ? e->size : POP3_MSG_MAX;
        if (p->retr_inflight + p->puts_inflight > 0 &&
            p->retr_bytes + p->puts_bytes + sz > POP3_INFLIGHT_BYTES)
            break;
        if (send_cmd(p, POP3_DATA, "RETR %" PRIu32 "\r\n", e->num) != 0)
            return;
        p->retr_bytes += sz;
        p->retr_inflight++;
        p->next_fetch++;
    }
    if (p->next_recv >= p->n_fetch)
        after_fetch(p);
}

/* Every RETR was answered: DELE what may go, then QUIT. */
static void after_fetch(struct pop3 *p)
{
    if (p->phase == PH_FETCH) {
        p->phase = PH_DELE;
        if (p->n_dele > 0)
            mh_log_info(p->ctx, "%s: deleting %zu messages stored more than %" PRId64 " days ago", p->label,
                        p->n_dele, p->delete_days);
    }
    if (p->phase != PH_DELE)
        return;
    size_t max_cmds = p->pipelining ? POP3_PIPE_RETR : 1;
    while (p->next_dele < p->n_dele && p->next_dele - p->dele_answered < max_cmds) {
        struct entry *e = &p->entries[p->dele[p->next_dele]];
        if (send_cmd(p, POP3_SINGLE, "DELE %" PRIu32 "\r\n", e->num) != 0)
            return;
        p->next_dele++;
    }
    if (p->dele_answered < p->n_dele)
        return;
    p->phase = PH_QUIT;
    send_cmd(p, POP3_SINGLE, "QUIT\r\n");
}

/* Mark gone what the store holds and the server no longer lists; update the first-seen map. */
static void reconcile(struct pop3 *p)
{
    if (!p->known_ok)
        return;
    struct strmap listed = {0};
    int ok = 1;
    for (size_t i = 0; ok && p->have_uidl && i < p->n_entries; i++) {
        const struct entry *e = &p->entries[i];
        if (e->uid == NULL || (e->flags & E_DELE))
            continue;
        char sid[POP3_UIDL_MAX + 8];
        int n = snprintf(sid, sizeof sid, "uidl:%s", e->uid);
        ok = map_put(&listed, sid, (size_t)n, 0) == 0;
    }
    const struct strmap *on_server = p->have_uidl ? &listed : &p->server;
    const char *prefix = p->have_uidl ? "uidl:" : "sha:";
    size_t plen = strlen(prefix);
    /* Without UIDL, a message that could not be read leaves the picture incomplete. */
    if (ok && (p->have_uidl || !p->retr_failed)) {
        for (size_t i = 0; i < p->known.cap; i++) {
            const char *sid = p->known.keys[i];
            if (sid == NULL || p->known.vals[i] != 0 || strncmp(sid, prefix, plen) != 0 ||
                map_find(on_server, sid, strlen(sid)) != NULL)
                continue;
            int rc = mh_store_mark_gone(p->ctx, p->folder, sid, NULL, NULL);
            if (rc != MH_PENDING) {
                mh_log_warn(p->ctx, "%s: cannot mark %s gone: %s", p->label, sid, rc_text(rc));
                p->known_ok = 0; /* read the list again next time */
                break;
            }
            p->known.vals[i] = 1;
            p->pass_gone++;
        }
    }
    map_clear(&listed);
    if (p->delete_days <= 0 || !p->have_uidl || !p->seen_loaded || !p->state_ok)
        return;
    /* The map keeps exactly the stored messages still on the server. */
    struct strmap next = {0};
    int64_t now = (int64_t)mh_now(p->ctx);
    for (size_t i = 0; i < p->n_entries; i++) {
        const struct entry *e = &p->entries[i];
        if (e->uid == NULL || !(e->flags & E_STORED) || (e->flags & E_DELE))
            continue;
        size_t ul = strlen(e->uid);
        int64_t *t = map_find(&p->seen, e->uid, ul);
        if (t == NULL)
            p->seen_dirty = 1;
        if (map_put(&next, e->uid, ul, t != NULL ? *t : now) != 0) {
            mh_log_warn(p->ctx, "%s: out of memory updating the first-seen times", p->label);
            map_clear(&next);
            return;
        }
    }
    if (next.n != p->seen.n)
        p->seen_dirty = 1;
    map_clear(&p->seen);
    p->seen = next;
    if (p->seen_dirty)
        seen_save(p);
}

/* In PH_WAIT: once every put and store request is done, the pass is. */
static void pass_maybe_done(struct pop3 *p)
{
    if (p->phase != PH_WAIT || p->puts_inflight > 0 || p->busy > 0)
        return;
    reconcile(p); /* its state writes complete later, in order after the puts */
    pass_done(p);
}

/* ------------------------------------------------------------ puts */

static void put_unlink(struct pop3 *p, struct put *u)
{
    if (u->prev != NULL)
        u->prev->next = u->next;
    else
        p->puts = u->next;
    if (u->next != NULL)
        u->next->prev = u->prev;
    p->puts_inflight--;
    p->puts_bytes -= u->bytes;
}

static void put_cb(void *arg, int rc, const struct mh_message_ref *ref)
{
    struct put *u = arg;
    struct pop3 *p = u->p;
    put_unlink(p, u);
    int current = u->gen == p->gen;
    if (current) {
        p->done++;
        if (rc == MH_OK) {
            p->entries[u->entry].flags |= E_STORED;
            if (p->known_ok && map_put(&p->known, u->sid, strlen(u->sid), 0) != 0)
                p->known_ok = 0; /* out of memory: the next pass reads the list again */
            if (ref != NULL && ref->duplicate)
                p->pass_dups++;
            else
                p->pass_new++;
        } else if (rc_transient(rc)) {
            pass_fail(p, "%s: message %" PRIu32 " not stored: %s", p->label, p->entries[u->entry].num,
                      rc_text(rc));
        } else {
            p->pass_failed++;
            p->retr_failed = 1;
            mh_log_warn(p->ctx, "%s: message %" PRIu32 " (%s) not stored: %s; skipped", p->label,
                        p->entries[u->entry].num, u->sid, rc_text(rc));
        }
    }
    free(u->sid);
    free(u);
    if (p->stopping || !current) {
        store_settled(p);
        return;
    }
    progress(p, 0);
    if (p->phase == PH_FETCH)
        fetch_more(p);
    else
        pass_maybe_done(p);
}

/* A RETR answer is complete in p->buf. */
static int message_done(struct pop3 *p, struct entry *e, size_t idx)
{
    char sidbuf[80];
    const char *sid;
    char *owned = NULL;
    if (p->have_uidl && e->uid != NULL) {
        owned = uidl_sid(e->uid);
        sid = owned;
    } else {
        unsigned char md[32];
        unsigned mdlen = 0;
        if (EVP_Digest(p->buf, p->len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
            pass_fail(p, "%s: SHA-256 failed", p->label);
            return -1;
        }
        memcpy(sidbuf, "sha:", 4);
        hex(md, 32, sidbuf + 4);
        sid = sidbuf;
        if (map_put(&p->server, sid, strlen(sid), 0) != 0) {
            pass_fail(p, "%s: out of memory", p->label);
            return -1;
        }
        if (p->known_ok && map_find(&p->known, sid, strlen(sid)) != NULL) {
            e->flags |= E_STORED;
            p->done++;
            p->pass_dups++;
            return 0;
        }
    }
    struct put *u = calloc(1, sizeof *u);
    if (u == NULL || sid == NULL || (u->sid = mh_strdup(sid)) == NULL) {
        free(u);
        free(owned);
        pass_fail(p, "%s: out of memory", p->label);
        return -1;
    }
    free(owned);
    u->p = p;
    u->gen = p->gen;
    u->entry = idx;
    u->bytes = p->len;
    struct mh_message m = {
        .struct_size = sizeof m,
        .folder = p->folder,
        .source_id = u->sid,
        .raw = p->buf != NULL ? p->buf : "",
        .raw_len = p->len,
        .notify = p->synced,
    };
    int rc = mh_store_put_message(p->ctx, &m, put_cb, u);
    if (rc != MH_PENDING) {
        free(u->sid);
        free(u);
        if (rc_transient(rc) || rc == MH_ENOTSUP) {
            pass_fail(p, "%s: message %" PRIu32 " not stored: %s", p->label, e->num, rc_text(rc));
            return -1;
        }
        p->pass_failed++;
        p->retr_failed = 1;
        p->done++;
        mh_log_warn(p->ctx, "%s: message %" PRIu32 " not stored: %s; skipped", p->label, e->num, rc_text(rc));
        return 0;
    }
    u->next = p->puts;
    if (p->puts != NULL)
        p->puts->prev = u;
    p->puts = u;
    p->puts_inflight++;
    p->puts_bytes += u->bytes;
    return 0;
}

/* ------------------------------------------------------------ parser callbacks */

static int dead(struct pop3 *p)
{
    return p->conn == NULL; /* the pass failed inside a callback: stop parsing */
}

static int on_status(void *arg, enum pop3_kind kind, int ok, const char *text, size_t len)
{
    struct pop3 *p = arg;
    char show[160];
    switch (p->phase) {
    case PH_USER:
    case PH_PASS:
        if (!ok)
            pass_fail(p, "%s: login refused (%s): %s", p->label, p->phase == PH_USER ? "USER" : "PASS",
                      pop3_printable(text, len, show, sizeof show));
        break;
    case PH_CAPA:
        p->pipelining = 0;
        break;
    case PH_UIDL:
        p->have_uidl = ok;
        if (!ok && !p->uidl_warned++)
            mh_log_info(p->ctx, "%s: the server has no UIDL (\"%s\"): messages are identified by content",
                        p->label, pop3_printable(text, len, show, sizeof show));
        break;
    case PH_LIST:
        if (!ok)
            pass_fail(p, "%s: LIST refused: %s", p->label, pop3_printable(text, len, show, sizeof show));
        break;
    case PH_FETCH:
        p->retr_oversize = 0;
        p->len = 0;
        if (!ok) {
            const struct entry *e = &p->entries[p->fetch[p->next_recv]];
            mh_log_warn(p->ctx, "%s: RETR %" PRIu32 " refused: %s", p->label, e->num,
                        pop3_printable(text, len, show, sizeof show));
        }
        break;
    case PH_DELE:
        if (!ok) {
            const struct entry *e = &p->entries[p->dele[p->dele_answered]];
            mh_log_warn(p->ctx, "%s: DELE %" PRIu32 " refused: %s", p->label, e->num,
                        pop3_printable(text, len, show, sizeof show));
        }
        break;
    case PH_QUIT:
        if (!ok)
            pass_fail(p, "%s: QUIT refused (deletions not applied): %s", p->label,
                      pop3_printable(text, len, show, sizeof show));
        break;
    default:
        pass_fail(p, "%s: unexpected answer from the server", p->label);
        break;
    }
    (void)kind;
    return dead(p);
}

static int on_line(void *arg, const char *line, size_t len)
{
    struct pop3 *p = arg;
    switch (p->phase) {
    case PH_CAPA:
        if (pop3_capa_is(line, len, "PIPELINING"))
            p->pipelining = 1;
        break;
    case PH_UIDL: {
        uint32_t num;
        const char *uid;
        size_t ulen;
        char show[80];
        if (!pop3_parse_uidl(line, len, &num, &uid, &ulen)) {
            pass_fail(p, "%s: malformed UIDL line \"%s\"", p->label,
                      pop3_printable(line, len, show, sizeof show));
            break;
        }
        struct entry *e = entry_add(p);
        if (e == NULL || (e->uid = malloc(ulen + 1)) == NULL) {
            pass_fail(p, "%s: UIDL listing too long or out of memory", p->label);
            break;
        }
        memcpy(e->uid, uid, ulen);
        e->uid[ulen] = '\0';
        e->num = num;
        break;
    }
    case PH_LIST: {
        uint32_t num;
        uint64_t size;
        char show[80];
        if (!pop3_parse_list(line, len, &num, &size)) {
            pass_fail(p, "%s: malformed LIST line \"%s\"", p->label,
                      pop3_printable(line, len, show, sizeof show));
            break;
        }
        struct entry *e;
        if (p->have_uidl) {
            e = entry_by_num(p, num);
            if (e == NULL) {
                mh_log_debug(p->ctx, "%s: LIST names message %" PRIu32 " that UIDL did not", p->label, num);
                break;
            }
        } else if ((e = entry_add(p)) == NULL) {
            pass_fail(p, "%s: LIST listing too long or out of memory", p->label);
            break;
        } else {
            e->num = num;
        }
        e->size = size;
        break;
    }
    default:
        pass_fail(p, "%s: unexpected listing from the server", p->label);
        break;
    }
    return dead(p);
}

static int on_data(void *arg, const char *data, size_t len)
{
    struct pop3 *p = arg;
    if (p->phase != PH_FETCH) {
        pass_fail(p, "%s: unexpected message data from the server", p->label);
        return 1;
    }
    if (p->retr_oversize)
        return 0;
    if ((uint64_t)p->len + len > POP3_MSG_MAX) {
        p->retr_oversize = 1;
        p->len = 0;
        return 0;
    }
    if (p->len + len > p->cap) {
        size_t cap = p->cap ? p->cap : 65536;
        while (cap < p->len + len)
            cap *= 2;
        char *b = realloc(p->buf, cap);
        if (b == NULL) {
            pass_fail(p, "%s: out of memory reading a message", p->label);
            return 1;
        }
        p->buf = b;
        p->cap = cap;
    }
    memcpy(p->buf + p->len, data, len);
    p->len += len;
    return 0;
}

static int on_done(void *arg, enum pop3_kind kind, int ok)
{
    struct pop3 *p = arg;
    (void)kind;
    if (dead(p))
        return 1;
    switch (p->phase) {
    case PH_USER:
        p->phase = PH_PASS;
        send_login(p, "PASS ", p->password);
        break;
    case PH_PASS:
        mh_log_debug(p->ctx, "%s: logged in with USER/PASS", p->label);
        p->phase = PH_CAPA;
        send_cmd(p, POP3_LINES, "CAPA\r\n");
        break;
    case PH_CAPA:
        if (!ok)
            mh_log_debug(p->ctx, "%s: no CAPA; not pipelining", p->label);
        p->phase = PH_UIDL;
        send_cmd(p, POP3_LINES, "UIDL\r\n");
        break;
    case PH_UIDL:
        if (p->have_uidl)
            entries_sort(p);
        if (p->have_uidl && all_known(p)) {
            /* nothing to fetch: the sizes LIST would give are not needed */
            plan(p);
            break;
        }
        p->phase = PH_LIST;
        send_cmd(p, POP3_LINES, "LIST\r\n");
        break;
    case PH_LIST:
        if (!p->have_uidl)
            entries_sort(p);
        plan(p);
        break;
    case PH_FETCH: {
        size_t idx = p->fetch[p->next_recv];
        struct entry *e = &p->entries[idx];
        uint64_t sz = e->size < POP3_MSG_MAX ? e->size : POP3_MSG_MAX;
        p->retr_bytes -= sz;
        p->retr_inflight--;
        p->next_recv++;
        p->pass_msgs++;
        if (!ok) {
            p->retr_failed = 1;
            p->pass_failed++;
            p->done++;
        } else if (p->retr_oversize) {
            p->retr_failed = 1;
            p->pass_failed++;
            p->done++;
            mh_log_warn(p->ctx, "%s: message %" PRIu32 " is larger than %" PRIu64 " MB: skipped", p->label,
                        e->num, POP3_MSG_MAX >> 20);
        } else if (message_done(p, e, idx) != 0) {
            break;
        }
        p->len = 0;
        if (p->cap > ((size_t)4 << 20)) {
            free(p->buf);
            p->buf = NULL;
            p->cap = 0;
        }
        progress(p, 0);
        fetch_more(p);
        break;
    }
    case PH_DELE: {
        struct entry *e = &p->entries[p->dele[p->dele_answered++]];
        if (ok)
            e->flags |= E_DELE;
        after_fetch(p);
        break;
    }
    case PH_QUIT: {
        /* The server applied the DELEs and ends the session. */
        int64_t deleted = 0;
        for (size_t i = 0; i < p->n_entries; i++)
            deleted += (p->entries[i].flags & E_DELE) != 0;
        p->pass_deleted = deleted;
        session_close(p);
        p->phase = PH_WAIT;
        pass_maybe_done(p);
        return 1;
    }
    default:
        break;
    }
    if (!dead(p) && p->expecting && pop3_parser_pending(p->parser) == 0) {
        /* Waiting for the store, not the server (a slow store must not time the session out). */
        nc_expect(p->conn, 0);
        p->expecting = 0;
    }
    return dead(p);
}

/* ------------------------------------------------------------ netconn callbacks */

static void conn_connected(struct nc_conn *c, void *arg)
{
    struct pop3 *p = arg;
    (void)c;
    p->connected = 1;
    p->expecting = 1; /* netconn's default */
    mh_log_debug(p->ctx, "%s: logged in", p->label);
    begin_dialogue(p);
}

static void conn_read(struct nc_conn *c, const char *data, size_t len, void *arg)
{
    struct pop3 *p = arg;
    (void)c;
    int rc = pop3_parser_feed(p->parser, data, len);
    if (rc == POP3_EPROTO)
        pass_fail(p, "%s: protocol error: %s", p->label, pop3_parser_error(p->parser));
}

static void conn_closed(struct nc_conn *c, int rc, const char *msg, void *arg)
{
    struct pop3 *p = arg;
    (void)c;
    const char *why = !p->connected        ? "cannot connect"
                      : rc == MH_ETIMEDOUT ? "connection timed out"
                                           : "connection lost";
    if (msg == NULL)
        msg = "closed";
    /* netconn's messages begin with the label already */
    size_t ll = strlen(p->label);
    if (strncmp(msg, p->label, ll) == 0 && msg[ll] == ':')
        pass_fail(p, "%s: %s:%s", p->label, why, msg + ll + 1);
    else
        pass_fail(p, "%s: %s: %s", p->label, why, msg);
}

/* ------------------------------------------------------------ a pass */

static void pass_start(struct pop3 *p)
{
    if (p->stopping || p->phase == PH_STOPPED)
        return;
    if (p->phase != PH_IDLE && p->phase != PH_ERROR)
        return;
    if (p->puts_inflight > 0 || p->busy > 0) {
        schedule(p, 1.0); /* a failed pass still has store requests in flight */
        return;
    }
    mh_timer_del(p->ctx, &p->timer);
    pass_reset(p);
    p->gen++;
    p->phase = PH_PREP;
    p->pass_msgs = p->pass_new = p->pass_dups = p->pass_failed = p->pass_deleted = p->pass_gone = 0;
    p->done = p->total = 0;
    p->pass_started = p->last_progress = mh_now(p->ctx);
    p->last_decile = 0;
    p->reported = -1;
    p->connected = 0;

    pop3_parser_free(&p->parser);
    const struct pop3_callbacks pcb = {on_status, on_line, on_data, on_done};
    p->parser = pop3_parser_new(&pcb, p);
    if (p->parser == NULL) {
        pass_fail(p, "%s: out of memory", p->label);
        return;
    }

    /* What the store holds (unless the last pass left it known), and (once) the state. */
    int rc = MH_OK;
    if (p->known_keep) {
        p->known_ready = p->known_ok = 1;
    } else {
        map_clear(&p->known);
        p->known_at = mh_now(p->ctx);
        rc = mh_store_source_list(p->ctx, p->folder, known_cb, p);
    }
    p->known_keep = 0;
    if (rc == MH_OK) {
        /* known already */
    } else if (rc == MH_PENDING) {
        p->busy++;
    } else {
        if (rc != MH_ENOTSUP) {
            pass_fail(p, "%s: cannot list the stored messages: %s", p->label, rc_text(rc));
            return;
        }
        p->known_ready = 1; /* an old core: fetch everything, the store deduplicates */
    }
    p->seen_ready = 1;
    if (!p->state_asked) {
        rc = mh_state_get(p->ctx, "synced", synced_cb, p);
        p->state_ok = rc == MH_PENDING;
        if (rc == MH_PENDING) {
            p->busy++;
        } else {
            p->state_asked = 1;
            mh_log_warn(p->ctx, "%s: this daemon keeps no sync state (%s)%s", p->label, rc_text(rc),
                        p->delete_days > 0 ? ": delete_after_days is ignored" : "");
        }
    }
    if (p->delete_days > 0 && p->state_ok && !p->seen_loaded) {
        rc = mh_state_get(p->ctx, "seen", seen_count_cb, p);
        if (rc == MH_PENDING) {
            p->busy++;
            p->seen_ready = 0;
        }
    }

    /* auth: user: curl cannot be told to use USER/PASS, so it connects without logging in and we do. */
    p->own_login = p->auth == AUTH_USER && !p->no_own_login;
    struct nc_opts o = {
        .scheme = "pop3",
        .host = p->host,
        .port = p->port,
        .tls = p->tls,
        .username = p->own_login ? NULL : p->username,
        .password = p->own_login || p->password[0] == '\0' ? NULL : p->password,
        .bearer = p->own_login ? NULL : p->token,
        .login_options = p->auth == AUTH_PLAIN         ? "AUTH=PLAIN"
                         : p->auth == AUTH_XOAUTH2     ? "AUTH=XOAUTH2"
                         : p->auth == AUTH_OAUTHBEARER ? "AUTH=OAUTHBEARER"
                                                       : NULL,
        .ca_file = p->ca_file,
        .connect_timeout_ms = p->timeout_ms,
        .timeout_ms = p->timeout_ms,
        .label = p->label,
    };
    const struct nc_callbacks ncb = {conn_connected, conn_read, conn_closed};
    rc = nc_open(p->ctx, &o, &ncb, p, &p->conn);
    if (rc == MH_EINVAL && p->own_login) {
        mh_log_warn(p->ctx,
                    "%s: this build cannot connect without logging in: auth: user falls back to the "
                    "best method the server offers",
                    p->label);
        p->no_own_login = 1;
        p->own_login = 0;
        o.username = p->username;
        o.password = p->password;
        rc = nc_open(p->ctx, &o, &ncb, p, &p->conn);
    }
    if (rc != MH_PENDING) {
        p->conn = NULL;
        pass_fail(p, "%s: cannot connect: %s", p->label, rc_text(rc));
        return;
    }
    mh_log_debug(p->ctx, "%s: connecting (pass %u)", p->label, ++p->passes);
}

/* ------------------------------------------------------------ lifecycle */

static void pop3_free(void *state);

static int pop3_init(struct mh_plugin_ctx *ctx, const struct mh_config *cfg, void **state_out)
{
    const char *host = mh_cfg_str(cfg, "host"), *user = mh_cfg_str(cfg, "username");
    if (host == NULL || *host == '\0' || user == NULL || *user == '\0') {
        mh_set_error(ctx, "host and username are required");
        return MH_EINVAL;
    }
    const char *pw = mh_cfg_str(cfg, "password"), *ca = mh_cfg_str(cfg, "ca_file");
    const char *token = mh_cfg_str(cfg, "oauth2_token"), *auth_name = mh_cfg_str(cfg, "auth");
    if (strpbrk(user, "\r\n") != NULL || (pw != NULL && strpbrk(pw, "\r\n") != NULL)) {
        mh_set_error(ctx, "username and password must not contain line breaks");
        return MH_EINVAL;
    }
    if (pw != NULL && *pw == '\0')
        pw = NULL;
    if (token != NULL && *token == '\0')
        token = NULL;
    if (auth_name == NULL)
        auth_name = "auto";
    int bearer = strcmp(auth_name, "xoauth2") == 0 || strcmp(auth_name, "oauthbearer") == 0;
    if (bearer && token == NULL) {
        mh_set_error(ctx, "auth: %s needs oauth2_token (account %s on %s)", auth_name, user, host);
        return MH_EINVAL;
    }
    if (!bearer && strcmp(auth_name, "auto") != 0 && pw == NULL) {
        mh_set_error(ctx, "auth: %s needs a password (account %s on %s)", auth_name, user, host);
        return MH_EINVAL;
    }
    if (pw == NULL && token == NULL) {
        mh_set_error(ctx, "password or oauth2_token: one is required (account %s on %s)", user, host);
        return MH_EINVAL;
    }
    struct pop3 *p = calloc(1, sizeof *p);
    if (p == NULL)
        return MH_ENOMEM;
    p->ctx = ctx;
    const char *folder = mh_cfg_str(cfg, "folder"), *tls = mh_cfg_str(cfg, "tls");
    const char *auth = mh_cfg_str(cfg, "auth");
    p->host = mh_strdup(host);
    p->username = mh_strdup(user);
    p->password = mh_strdup(pw != NULL ? pw : "");
    p->ca_file = ca != NULL && *ca != '\0' ? mh_data_path(ctx, ca) : NULL;
    p->folder = mh_strdup(folder != NULL && *folder != '\0' ? folder : "INBOX");
    p->port = (int)mh_cfg_int(cfg, "port");
    p->tls = tls != NULL && strcmp(tls, "none") == 0       ? NC_TLS_NONE
             : tls != NULL && strcmp(tls, "starttls") == 0 ? NC_TLS_STARTTLS
                                                           : NC_TLS_IMPLICIT;
    p->auth = auth != NULL && strcmp(auth, "plain") == 0         ? AUTH_PLAIN
              : auth != NULL && strcmp(auth, "user") == 0        ? AUTH_USER
              : auth != NULL && strcmp(auth, "xoauth2") == 0     ? AUTH_XOAUTH2
              : auth != NULL && strcmp(auth, "oauthbearer") == 0 ? AUTH_OAUTHBEARER
                                                                 : AUTH_AUTO;
    p->token = token != NULL && p->auth != AUTH_USER && p->auth != AUTH_PLAIN ? mh_strdup(token) : NULL;
    int64_t poll_ms = mh_cfg_duration_ms(cfg, "poll_interval");
    p->poll_interval = poll_ms > 0 ? (double)poll_ms / 1000.0 : 120.0;
    p->timeout_ms = mh_cfg_duration_ms(cfg, "timeout");
    if (p->timeout_ms <= 0)
        p->timeout_ms = 60000;
    p->delete_days = mh_cfg_int(cfg, "delete_after_days");
    p->backoff = 1;
    size_t ll = strlen(user) + strlen(host) + 2;
    p->label = malloc(ll);
    if (p->label != NULL)
        snprintf(p->label, ll, "%s@%s", user, host);
    if (p->host == NULL || p->username == NULL || p->password == NULL || p->folder == NULL ||
        (token != NULL && p->token == NULL && p->auth != AUTH_USER && p->auth != AUTH_PLAIN) ||
        p->label == NULL || (ca != NULL && *ca != '\0' && p->ca_file == NULL)) {
        pop3_free(p);
        return MH_ENOMEM;
    }
    *state_out = p;
    return MH_OK;
}

static int pop3_start(void *state)
{
    struct pop3 *p = state;
    mh_log_info(p->ctx, "importing %s (%s) into folder %s, then polling every %.0f s%s", p->label,
                p->tls == NC_TLS_IMPLICIT   ? "TLS"
                : p->tls == NC_TLS_STARTTLS ? "STLS"
                                            : "no TLS",
                p->folder, p->poll_interval,
                p->delete_days > 0 ? ", deleting what was stored long enough ago" : "");
    p->timer = mh_timer_add(p->ctx, 0, 0, timer_cb, p);
    if (p->timer == NULL) {
        mh_set_error(p->ctx, "cannot add a timer");
        return MH_ENOMEM;
    }
    return MH_OK;
}

static int pop3_stop(void *state)
{
    struct pop3 *p = state;
    p->stopping = 1;
    mh_timer_del(p->ctx, &p->timer);
    /* No QUIT: whatever DELE was sent is not applied; the next start begins a fresh pass. */
    session_close(p);
    p->gen++;
    p->phase = PH_STOPPED;
    if (p->puts_inflight > 0 || p->busy > 0) {
        p->stop_pending = 1;
        return MH_PENDING;
    }
    return MH_OK;
}

static void pop3_free(void *state)
{
    struct pop3 *p = state;
    if (p == NULL)
        return;
    /* The core has cancelled every handle already: only the memory is left to release. */
    nc_discard(&p->conn);
    pop3_parser_free(&p->parser);
    /* Puts the core dropped at cancel time are ours to free. */
    while (p->puts != NULL) {
        struct put *u = p->puts;
        p->puts = u->next;
        free(u->sid);
        free(u);
    }
    pass_reset(p);
    map_clear(&p->known); /* kept between passes (known_keep) */
    free(p->entries);
    map_clear(&p->seen);
    free(p->buf);
    if (p->password != NULL) {
        volatile char *v = p->password;
        while (*v)
            *v++ = 0;
    }
    if (p->token != NULL) {
        volatile char *v = p->token;
        while (*v)
            *v++ = 0;
    }
    free(p->token);
    free(p->host);
    free(p->username);
    free(p->password);
    free(p->ca_file);
    free(p->folder);
    free(p->label);
    free(p->error);
    free(p);
}

static int pop3_sync_now(void *state)
{
    struct pop3 *p = state;
    if (p->stopping || p->phase == PH_STOPPED)
        return MH_ECANCELED;
    if (p->phase == PH_IDLE || p->phase == PH_ERROR)
        schedule(p, 0);
    return MH_OK;
}

static int pop3_status_json(void *state, char **json_out)
{
    struct pop3 *p = state;
    const char *st;
    switch (p->phase) {
    case PH_IDLE:
        st = "idle";
        break;
    case PH_ERROR:
        st = "error";
        break;
    case PH_STOPPED:
        st = "idle";
        break;
    default:
        st = p->synced ? "polling" : "importing";
        break;
    }
    int running = p->phase != PH_IDLE && p->phase != PH_ERROR && p->phase != PH_STOPPED;
    double rate = running ? pass_rate(p) : 0.0;
    int64_t left = p->total - p->done;
    json_t *eta = !running                ? json_integer(0)
                  : rate > 0 && left >= 0 ? json_integer((json_int_t)((double)left / rate + 0.5))
                                          : json_null();
    json_t *j =
        json_pack("{s:s, s:s, s:[{s:s, s:I, s:I}], s:I, s:I, s:f, s:o, s:I, s:I, s:b, s:b}", "state", st,
                  "phase", phase_names[p->phase], "folders", "name", p->folder, "done", (json_int_t)p->done,
                  "total", (json_int_t)p->total, "done", (json_int_t)p->done, "total", (json_int_t)p->total,
                  "rate", rate, "eta", eta, "new", (json_int_t)p->pass_new, "duplicates",
                  (json_int_t)p->pass_dups, "pipelining", p->pipelining, "uidl", p->have_uidl);
    if (j != NULL)
        json_object_set_new(j, "error", p->error != NULL ? json_string(p->error) : json_null());
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text == NULL)
        return MH_ENOMEM;
    *json_out = text;
    return MH_OK;
}

static const struct mh_provider_ops pop3_ops = {
    .struct_size = sizeof(struct mh_provider_ops),
    .sync_now = pop3_sync_now,
    .status_json = pop3_status_json,
};

MH_PLUGIN_DEFINE(pop3, .kind = MH_KIND_PROVIDER, .name = "pop3", .version = "1.0.0",
                 .description = "import a POP3 maildrop (pipelined RETR) and poll it for new mail",
                 .options = pop3_options, .init = pop3_init, .start = pop3_start, .stop = pop3_stop,
                 .free = pop3_free, .ops = &pop3_ops);

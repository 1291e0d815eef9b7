/*
 * imap: a provider that imports every folder of an IMAP mailbox into the
 * hub, keeps it in sync and reports new mail at once (IDLE).
 *
 * Transport.  netconn (plugins/common) lets libcurl connect, do TLS and log
 * in (CONNECT_ONLY); from then on this file speaks IMAP itself, with tags,
 * pipelining and the streaming parser of imap_parse.c.  The source is only
 * ever read: folders are opened with EXAMINE and bodies fetched with
 * BODY.PEEK[]; no STORE, EXPUNGE, CREATE or APPEND is ever sent.
 *
 * A sync pass, on one connection: CAPABILITY; ENABLE QRESYNC where offered;
 * LIST (RETURN (SPECIAL-USE) where offered); then, INBOX first, each folder:
 *  - EXAMINE, with (QRESYNC (uidvalidity modseq)) when the server has QRESYNC
 *    and the folder was synced before: the server answers with VANISHED
 *    (EARLIER) and the FETCH FLAGS of changed messages only, so an unchanged
 *    folder costs one round trip;
 *  - without QRESYNC, a folder whose UIDNEXT and (CONDSTORE) HIGHESTMODSEQ are
 *    unchanged is skipped; otherwise it is compared with what the store holds
 *    (mh_store_source_list): with CONDSTORE and ESEARCH, `UID FETCH 1:n (UID
 *    FLAGS) (CHANGEDSINCE ms)` gives the changed flags and `UID SEARCH RETURN
 *    (COUNT)` tells whether anything was expunged; otherwise (or when the
 *    count differs) `UID FETCH 1:n (UID FLAGS)` lists the folder.  Flags are
 *    mirrored (mh_store_set_flags), missing UIDs marked gone (mh_store_mark_gone);
 *  - new UIDs are fetched with pipelined `UID FETCH a:b (UID FLAGS
 *    INTERNALDATE RFC822.SIZE BODY.PEEK[])` batches (IMAP_PIPELINE in flight)
 *    and each message is handed to mh_store_put_message() as it arrives, with
 *    at most IMAP_INFLIGHT_BYTES in flight to the store (reading pauses);
 *  - when a batch completes (and every batch before it: servers may finish
 *    pipelined commands out of order), the folder's checkpoint "uv=.. next=..
 *    ms=.." is written with mh_state_put("f:NAME"); the core carries out an
 *    instance's requests in order, so it is never ahead of the mail, and a
 *    put that fails after all rolls the checkpoint back to its UID.
 * A restart resumes from the checkpoints; the store drops what it has already
 * (source_id "uv:UIDVALIDITY:UID").  A folder whose UIDVALIDITY changed is
 * fetched again with rematch_prefix "uv:NEW:" (the stored copies are re-keyed,
 * not duplicated); a folder that disappeared while a new one with its
 * UIDVALIDITY appeared was renamed (mh_store_folder_change(old, new)); one
 * that disappeared for good is marked deleted (mh_store_folder_change(old,
 * NULL)).  The folder list is kept in the state key "folders".
 *
 * Push.  Once a folder's first pass is done, INBOX and each `watch` folder get
 * a connection of their own (max_connections - 1 of them) that EXAMINEs it
 * and IDLEs; `* N EXISTS` makes it leave IDLE, fetch the new UIDs, store them
 * with notify = 1 (the core emits mail.received) and IDLE again.  IDLE is
 * re-issued every idle_restart; a dropped connection is re-opened with
 * backoff.  Expunges and flag changes seen there schedule a sync pass.
 * Without IDLE (or max_connections 1) the mailbox is polled every
 * poll_interval, which also runs as a safety re-sync with IDLE.
 *
 * Failures: the pass stops, account.error is emitted (once per distinct
 * error), and the pass is retried after 1, 2, 4 ... 300 s.
 */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include <fnmatch.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>

#include <mailhub/plugin.h>
#include <mailhub/provider.h>

#include "imap_parse.h"
#include "netconn.h"

#define IMAP_PIPELINE 4                         /* UID FETCH batches in flight */
#define IMAP_INFLIGHT_BYTES ((int64_t)64 << 20) /* message bytes handed to the store, not yet acknowledged   \
                                                 */
#define IMAP_BACKOFF_MAX 300.0
#define IMAP_PROGRESS_EVERY 5.0
#define IMAP_DIRTY_DELAY 2.0 /* seconds between a change seen while idling and the sync pass */
#define IMAP_STOP_GRACE 3.0  /* seconds given to LOGOUT at stop */
#define IMAP_NAME_MAX 1024

enum imap_run {
    RUN_IMPORTING, /* the first pass has not completed */
    RUN_IDLE,      /* synced; IDLE connections watch */
    RUN_POLLING,   /* synced; no IDLE: polling */
    RUN_ERROR,     /* waiting to retry */
    RUN_PAUSED,    /* the user's allocation is full: waiting to retry */
};
static const char *const run_names[] = {"importing", "idle", "polling", "error", "paused"};

struct imap;
struct iconn;
struct icmd;

typedef void (*cmd_done_fn)(struct iconn *c, struct icmd *cmd, const struct imap_resp *r);

struct icmd {
    struct icmd *next;
    unsigned tag;
    cmd_done_fn done;
    uint32_t lo, hi; /* UID FETCH batches */
};

struct ifolder {
    struct imap *im;
    int budget_logged; /* told once that the server's IDLE budget (server_idle_max) is spent */
    char *name;    /* hub name: UTF-8, '/' separated */
    char *raw;     /* the server's name, for commands */
    char *special; /* "\Sent"... or NULL */
    int present;   /* in the latest LIST */
    int noselect;
    int listed; /* in the latest LIST at all (excluded and Noselect ones included) */

    int state_loaded, have_state;
    uint32_t st_uv, st_next;
    uint64_t st_ms;
    uint32_t ck_next;            /* the highest next written in this run (guards against going back) */
    uint32_t seen_uv, seen_next; /* UIDVALIDITY and UIDNEXT the last pass found (IDLE fetches from there) */
    int first_done;              /* synced at least once in this run or before (has a checkpoint) */

    int64_t done, total;
    struct iconn *idle;
    int want_idle;
    double idle_backoff;
    struct mh_timer *idle_retry;
};

enum conn_role { ROLE_SYNC, ROLE_IDLE };

enum idle_phase {
    IP_CONNECTING,
    IP_EXAMINE,
    IP_IDLING,    /* IDLE sent (waiting for '+' or idling) */
    IP_DONE_SENT, /* left IDLE, waiting for its tagged OK */
    IP_FETCH,     /* fetching the new UIDs */
    IP_LOGOUT,
};

struct iconn {
    struct imap *im;
    enum conn_role role;
    struct nc_conn *nc;
    struct imap_parser *parser;
    int up;
    unsigned next_tag;
    struct icmd *cmds, *cmds_tail;
    int bye;
    int logout_sent;
    struct server_use *server; /* IDLE connections: counted in the server's budget */

    /* the folder selected, and what EXAMINE told */
    struct ifolder *sel;
    uint32_t uv, uidnext;
    uint64_t hms;
    int has_uv, has_uidnext, has_hms, nomodseq;
    uint32_t exists;

    /* IDLE connections */
    enum idle_phase phase;
    unsigned idle_tag;
    int need_fetch;
    uint32_t fetch_from, fetched_max;
    struct mh_timer *restart;

    int in_feed, dead; /* released inside a parser callback: freed when the feed returns */
    int examined_qresync;
    int reused;
};

/* A stored message, compared with the source without QRESYNC. */
struct scan_ent {
    char *id, *flags;
    int seen;
};

/* A previously known folder (state key "folders"). */
struct iknown {
    char *name;
    uint32_t uv;
    int present;
    int state_loaded, have_state;
    char *state; /* its checkpoint text */
    int renamed;
};

/* A store request in flight (a put or a state read): listed so that `free` can release
   those whose callback the core dropped at shutdown. */
struct ireq {
    struct ireq *prev, *next;
    struct imap *im;
    int64_t gen;
    size_t size;       /* puts: raw bytes */
    struct ifolder *f; /* state reads: a listed folder, or */
    size_t known_idx;  /* a known one */
    int is_known;
    uint32_t uv, uid; /* puts: the message */
};

struct imap {
    struct mh_plugin_ctx *ctx;
    /* options */
    char *host, *username, *password, *token, *ca_file, *user;
    int port;
    enum nc_tls tls;
    char *login_options;
    char **exclude, **watch;
    size_t n_exclude, n_watch;
    int64_t max_conns, fetch_batch, server_idle_max;
    double poll_interval, idle_restart, timeout;

    /* run state */
    enum imap_run run;
    int started, stopping, stopped_sent, in_stop;
    int in_pass, pass_again, first_pass_done;
    int64_t gen; /* pass generation: completions of an abandoned pass are ignored */
    struct iconn *sync;
    char *caps; /* " CAP1 CAP2 " upper-cased */
    int qresync_on, state_ok;
    struct mh_timer *poll_timer, *retry_timer, *dirty_timer, *stop_timer;
    double backoff;
    char *error;

    struct ifolder **folders;
    size_t n_folders, fi;
    /* LIST being gathered */
    struct ifolder **listed;
    size_t n_listed;
    struct iknown *known;
    size_t n_known;
    int known_loaded;
    int loads_pending;
    struct ireq reqs; /* list head of requests in flight */

    /* the folder step in progress on the sync connection */
    int step_rekey;  /* UIDVALIDITY changed: refetch with rematch_prefix */
    int step_notify; /* new mail: notify */
    uint32_t f_lo, f_hi, f_span, f_cursor;
    uint32_t f_acked;                   /* every batch below this UID has completed */
    uint32_t f_early[IMAP_PIPELINE][2]; /* batches completed ahead of an earlier one */
    int n_early;
    int f_batches;         /* batches in flight */
    int f_scan;            /* UID FETCH (UID FLAGS) compare in progress */
    struct scan_ent *scan; /* the store's messages (not gone) of the folder, sorted by source id */
    size_t n_scan;
    uint64_t scan_count; /* ESEARCH COUNT of the UIDs below the checkpoint */
    int has_scan_count;

    /* puts and checkpoints */
    uint64_t put_issued, put_done;
    int64_t inflight_bytes;
    int paused_read;
    int put_failed;

    /* progress */
    int64_t done, total, pass_new, pass_dup, pass_msgs;
    int64_t rate_done0;
    double pass_started, last_progress;
};

static const struct mh_option imap_options[] = {
    {"host", MH_OPT_STR, NULL, MH_OPT_REQUIRED, "IMAP server host name", NULL, 0, 0},
    {"port", MH_OPT_INT, NULL, 0, "server port (default: 993 with tls: implicit, 143 otherwise)", NULL, 0,
     65535},
    {"tls", MH_OPT_ENUM, "implicit", 0, "TLS mode (certificates are always verified)",
     "implicit|starttls|none", 0, 0},
    {"username", MH_OPT_STR, NULL, MH_OPT_REQUIRED, "login name", NULL, 0, 0},
    {"password", MH_OPT_STR, NULL, MH_OPT_SECRET, "password (or use oauth2_token)", NULL, 0, 0},
    {"oauth2_token", MH_OPT_STR, NULL, MH_OPT_SECRET, "OAuth2 access token (SASL XOAUTH2 or OAUTHBEARER)", NULL,
     0, 0},
    {"auth", MH_OPT_ENUM, "auto", 0, "login method", "auto|login|plain|xoauth2|oauthbearer", 0, 0},
    {"ca_file", MH_OPT_STR, NULL, 0, "extra CA certificates (PEM) to trust; verification is never off", NULL,
     0, 0},
    {"folders_exclude", MH_OPT_STRLIST, NULL, 0, "folders not imported (names with '/', shell patterns)",
     NULL, 0, 0},
    {"watch", MH_OPT_STRLIST, NULL, 0, "folders to IDLE on besides INBOX", NULL, 0, 0},
    {"max_connections", MH_OPT_INT, "3", 0, "connections at most: one to sync, the others IDLE", NULL, 1, 50},
    {"server_idle_max", MH_OPT_INT, "0", 0,
     "IDLE connections at most to this server (host:port) from all imap accounts of the daemon together "
     "(0: no limit); folders beyond it are polled",
     NULL, 0, 100000},
    {"poll_interval", MH_OPT_DURATION, "5m", 0, "re-sync interval (the only one without IDLE)", NULL, 1000,
     86400000},
    {"idle_restart", MH_OPT_DURATION, "25m", 0, "re-issue IDLE this often", NULL, 1000, 86400000},
    {"fetch_batch", MH_OPT_INT, "500", 0, "UIDs per UID FETCH command", NULL, 1, 100000},
    {"timeout", MH_OPT_DURATION, "60s", 0, "a server silent this long while answering fails the connection",
     NULL, 1000, 3600000},
    {"user", MH_OPT_STR, NULL, 0, "hub user that owns the mail (default: the instance's user)", NULL, 0, 0},
    MH_OPT_TABLE_END,
};

static void pass_start(struct imap *im);
static void pass_fail(struct imap *im, int rc, const char *fmt, ...) MH_PRINTF(3, 4);
static void folder_next(struct imap *im);
static void conn_free(struct iconn **cp);
static void server_release(struct iconn *c);
static void idle_open(struct imap *im, struct ifolder *f);
static void idle_enter(struct iconn *c);
static void maybe_stopped(struct imap *im);
static void fetch_pump(struct imap *im);
static void step_after_fetch(struct imap *im);

static void schedule_dirty(struct imap *im);
static int flags_equal(const char *a, const char *b);
static void on_esearch(struct imap *im, const struct imap_resp *r);
static void write_ckpt(struct imap *im, struct ifolder *f, uint32_t uv, uint32_t next, uint64_t ms,
                       int force);
static void idle_dropped(struct iconn *c, int rc, const char *msg);
static void idle_on_exists(struct iconn *c, uint32_t n);

/* ------------------------------------------------------------ helpers */

static void emit(struct imap *im, const char *type, json_t *data)
{
    char *text = data != NULL ? json_dumps(data, JSON_COMPACT) : NULL;
    json_decref(data);
    if (text == NULL) {
        mh_log_error(im->ctx, "%s: cannot build the %s event", im->host, type);
        return;
    }
    int rc = mh_event_emit(im->ctx, type, text);
    if (rc != MH_OK)
        mh_log_warn(im->ctx, "%s: %s event refused (%d)", im->host, type, rc);
    free(text);
}

static int transient(int rc)
{
    return rc == MH_ERETRY || rc == MH_EQUOTA || rc == MH_ENOMEM || rc == MH_ETIMEDOUT || rc == MH_ECANCELED;
}

static const char *rc_text(int rc)
{
    switch (rc) {
    case MH_ERETRY:
        return "temporarily unavailable";
    case MH_EQUOTA:
        return "the user's allocation is full";
    case MH_ENOMEM:
        return "out of memory";
    case MH_ETIMEDOUT:
        return "timed out";
    case MH_ECANCELED:
        return "cancelled";
    case MH_ENOTSUP:
        return "not supported by this core";
    case MH_EINVAL:
        return "invalid";
    default:
        return "error";
    }
}

static int has_cap(const struct imap *im, const char *cap)
{
    if (im->caps == NULL)
        return 0;
    char pat[64];
    snprintf(pat, sizeof pat, " %s ", cap);
    return strstr(im->caps, pat) != NULL;
}

static void caps_set(struct imap *im, const struct imap_val *v)
{
    size_t n = 2;
    for (const struct imap_val *x = v; x != NULL; x = x->next)
        if (x->type == IMAP_ATOM)
            n += x->len + 1;
    char *s = mh_malloc(n + 1);
    if (s == NULL)
        return;
    size_t o = 0;
    s[o++] = ' ';
    for (const struct imap_val *x = v; x != NULL; x = x->next) {
        if (x->type != IMAP_ATOM)
            continue;
        for (size_t j = 0; j < x->len; j++)
            s[o++] = (x->s[j] >= 'a' && x->s[j] <= 'z') ? (char)(x->s[j] - 32) : x->s[j];
        s[o++] = ' ';
    }
    s[o] = '\0';
    mh_free(im->caps);
    im->caps = s;
}

/* The state key of a folder: "f:NAME" (long names: a hash keeps it under 200 bytes). */
static void folder_key(const char *name, char *key, size_t cap)
{
    size_t n = strlen(name);
    if (n + 2 <= 190) {
        snprintf(key, cap, "f:%s", name);
        return;
    }
    uint64_t h = 1469598103934665603ull;
    for (size_t j = 0; j < n; j++) {
        h ^= (unsigned char)name[j];
        h *= 1099511628211ull;
    }
    snprintf(key, cap, "f#%016" PRIx64 ":%.150s", h, name);
}

static int parse_ckpt(const char *v, uint32_t *uv, uint32_t *next, uint64_t *ms)
{
    unsigned long long a = 0, b = 0, c = 0;
    if (v == NULL || sscanf(v, "uv=%llu next=%llu ms=%llu", &a, &b, &c) != 3 || a == 0 || a > UINT32_MAX ||
        b > UINT32_MAX)
        return -1;
    *uv = (uint32_t)a;
    *next = (uint32_t)b;
    *ms = c;
    return 0;
}

static struct ireq *req_new(struct imap *im)
{
    struct ireq *q = mh_calloc(1, sizeof *q);
    if (q == NULL)
        return NULL;
    q->im = im;
    q->gen = im->gen;
    q->next = im->reqs.next;
    q->prev = &im->reqs;
    im->reqs.next->prev = q;
    im->reqs.next = q;
    return q;
}

static void req_free(struct ireq *q)
{
    q->prev->next = q->next;
    q->next->prev = q->prev;
    mh_free(q);
}

/* ------------------------------------------------------------ progress */

static void totals(struct imap *im)
{
    im->done = im->total = 0;
    for (size_t j = 0; j < im->n_folders; j++) {
        if (!im->folders[j]->present)
            continue;
        im->done += im->folders[j]->done;
        im->total += im->folders[j]->total;
    }
}

static double rate_now(struct imap *im)
{
    double dt = mh_now(im->ctx) - im->pass_started;
    int64_t d = im->done - im->rate_done0;
    return dt > 0.2 && d > 0 ? (double)d / dt : 0.0;
}

static json_t *folders_json(const struct imap *im)
{
    json_t *a = json_array();
    for (size_t j = 0; j < im->n_folders && a != NULL; j++) {
        const struct ifolder *f = im->folders[j];
        if (f->present)
            json_array_append_new(a, json_pack("{s:s, s:I, s:I}", "name", f->name, "done",
                                               (json_int_t)f->done, "total", (json_int_t)f->total));
    }
    return a;
}

static void progress(struct imap *im, int force)
{
    if (im->run != RUN_IMPORTING)
        return;
    double now = mh_now(im->ctx);
    if (!force && now - im->last_progress < IMAP_PROGRESS_EVERY)
        return;
    im->last_progress = now;
    totals(im);
    double rate = rate_now(im);
    json_t *eta = rate > 0 && im->total >= im->done
                      ? json_integer((json_int_t)((double)(im->total - im->done) / rate))
                      : json_null();
    mh_log_info(im->ctx, "%s: imported %" PRId64 " of %" PRId64 " messages, %.0f msgs/s", im->host, im->done,
                im->total, rate);
    emit(im, "account.progress",
         json_pack("{s:s, s:I, s:I, s:f, s:o, s:o}", "account", im->ctx->instance, "done",
                   (json_int_t)im->done, "total", (json_int_t)im->total, "rate", rate, "eta", eta, "folders",
                   folders_json(im)));
}

/* ---------------------------------------------------------- connection */

static int conn_send(struct iconn *c, cmd_done_fn done, struct icmd **out, const char *fmt, ...)
    MH_PRINTF(4, 5);
static int conn_send(struct iconn *c, cmd_done_fn done, struct icmd **out, const char *fmt, ...)
{
    char line[IMAP_NAME_MAX * 2 + 256];
    if (c == NULL || c->nc == NULL || c->dead)
        return MH_ECANCELED;
    struct icmd *cmd = mh_calloc(1, sizeof *cmd);
    if (cmd == NULL)
        return MH_ENOMEM;
    cmd->tag = ++c->next_tag;
    cmd->done = done;
    int n = snprintf(line, sizeof line, "A%u ", cmd->tag);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 2, fmt, ap);
    va_end(ap);
    if (m < 0 || (size_t)(n + m) >= sizeof line - 2) {
        mh_free(cmd);
        return MH_EINVAL;
    }
    n += m;
    line[n++] = '\r';
    line[n++] = '\n';
    int rc = nc_write(c->nc, line, (size_t)n);
    if (rc != MH_OK) {
        mh_free(cmd);
        return rc;
    }
    if (mh_log_enabled(c->im->ctx, MH_LOG_DEBUG))
        mh_log_debug(c->im->ctx, "%s > %.*s", nc_label(c->nc), n - 2, line);
    nc_expect(c->nc, 1);
    if (c->cmds_tail != NULL)
        c->cmds_tail->next = cmd;
    else
        c->cmds = cmd;
    c->cmds_tail = cmd;
    if (out != NULL)
        *out = cmd;
    return MH_OK;
}

static void conn_free(struct iconn **cp)
{
    struct iconn *c = *cp;
    if (c == NULL)
        return;
    *cp = NULL;
    server_release(c);
    nc_close(&c->nc);
    mh_timer_del(c->im->ctx, &c->restart);
    while (c->cmds != NULL) {
        struct icmd *n = c->cmds->next;
        mh_free(c->cmds);
        c->cmds = n;
    }
    c->cmds_tail = NULL;
    if (c->in_feed) {
        c->dead = 1; /* the parser is on the stack: conn_read frees the rest */
        return;
    }
    imap_parser_free(c->parser);
    mh_free(c);
}

/*
 * The IDLE connections open to each server (host:port), from every imap
 * instance of the daemon: accounts on one server share its budget
 * (server_idle_max).  Instances all run on the loop thread.
 */
struct server_use {
    char *key;
    int64_t idle;
    struct server_use *next;
};
static struct server_use *servers;

static struct server_use *server_of(const struct imap *im, int create)
{
    char key[512];
    int port = im->port > 0 ? im->port : im->tls == NC_TLS_IMPLICIT ? 993 : 143;
    snprintf(key, sizeof key, "%s:%d", im->host, port);
    for (char *k = key; *k; k++)
        if (*k >= 'A' && *k <= 'Z')
            *k = (char)(*k - 'A' + 'a');
    for (struct server_use *u = servers; u; u = u->next)
        if (strcmp(u->key, key) == 0)
            return u;
    if (!create)
        return NULL;
    struct server_use *u = mh_calloc(1, sizeof *u);
    if (u == NULL || (u->key = mh_strdup(key)) == NULL) {
        mh_free(u);
        return NULL;
    }
    u->next = servers;
    servers = u;
    return u;
}

/* Forget a server no IDLE connection uses. */
static void server_drop_unused(struct server_use *u)
{
    if (u == NULL || u->idle > 0)
        return;
    for (struct server_use **p = &servers; *p; p = &(*p)->next)
        if (*p == u) {
            *p = u->next;
            mh_free(u->key);
            mh_free(u);
            return;
        }
}

static void server_release(struct iconn *c)
{
    struct server_use *u = c->server;
    if (u == NULL)
        return;
    c->server = NULL;
    u->idle--;
    server_drop_unused(u);
}

static int resp_cb(void *arg, const struct imap_resp *r);
static void conn_connected(struct nc_conn *nc, void *arg);
static void conn_read(struct nc_conn *nc, const char *data, size_t len, void *arg);
static void conn_closed(struct nc_conn *nc, int rc, const char *msg, void *arg);

static struct iconn *conn_open(struct imap *im, enum conn_role role, struct ifolder *f)
{
    struct iconn *c = mh_calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->im = im;
    c->role = role;
    c->sel = f;
    c->parser = imap_parser_new(0, resp_cb, c);
    if (c->parser == NULL) {
        mh_free(c);
        return NULL;
    }
    char label[300];
    snprintf(label, sizeof label, "%s@%s%s%.200s", im->username, im->host, role == ROLE_IDLE ? " IDLE " : "",
             role == ROLE_IDLE ? f->name : "");
    struct nc_opts o = {
        .scheme = "imap",
        .host = im->host,
        .port = im->port,
        .tls = im->tls,
        .username = im->username,
        .password = im->password,
        .bearer = im->token,
        .login_options = im->login_options,
        .ca_file = im->ca_file,
        .connect_timeout_ms = (int64_t)(im->timeout * 1000),
        .timeout_ms = (int64_t)(im->timeout * 1000),
        .label = label,
    };
    static const struct nc_callbacks cbs = {conn_connected, conn_read, conn_closed};
    int rc = nc_open(im->ctx, &o, &cbs, c, &c->nc);
    if (rc != MH_PENDING) {
        mh_log_error(im->ctx, "%s: cannot open a connection: %s", label, rc_text(rc));
        imap_parser_free(c->parser);
        mh_free(c);
        return NULL;
    }
    return c;
}

/* Connection c failed: drop it and report. */
static void conn_fail(struct iconn *c, int rc, const char *fmt, ...) MH_PRINTF(3, 4);
static void conn_fail(struct iconn *c, int rc, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct imap *im = c->im;
    if (c->role == ROLE_IDLE) {
        idle_dropped(c, rc, msg);
        return;
    }
    if (im->sync == c)
        conn_free(&im->sync);
    if (im->in_pass)
        pass_fail(im, rc, "%s", msg);
    else if (!im->stopping)
        mh_log_info(im->ctx, "%s: sync connection closed: %s", im->host, msg);
    maybe_stopped(im);
}

static void conn_connected(struct nc_conn *nc, void *arg)
{
    struct iconn *c = arg;
    struct imap *im = c->im;
    (void)nc;
    c->up = 1;
    mh_log_debug(im->ctx, "%s: connected and logged in", nc_label(c->nc));
    if (im->stopping) {
        if (c->role == ROLE_SYNC)
            conn_free(&im->sync);
        else if (c->sel != NULL)
            conn_free(&c->sel->idle);
        maybe_stopped(im);
        return;
    }
    if (c->role == ROLE_SYNC) {
        pass_start(im);
        return;
    }
    idle_enter(c);
}

static void conn_read(struct nc_conn *nc, const char *data, size_t len, void *arg)
{
    struct iconn *c = arg;
    (void)nc;
    c->in_feed = 1;
    int rc = imap_parser_feed(c->parser, data, len);
    c->in_feed = 0;
    if (c->dead) {
        imap_parser_free(c->parser);
        mh_free(c);
        return;
    }
    if (rc < 0)
        conn_fail(c, MH_ERETRY, "%s: bad response from the server: %s", nc_label(c->nc),
                  imap_parser_error(c->parser));
}

static void conn_closed(struct nc_conn *nc, int rc, const char *msg, void *arg)
{
    struct iconn *c = arg;
    struct imap *im = c->im;
    (void)nc;
    if ((c->logout_sent || c->bye) && im->stopping) {
        if (c->role == ROLE_SYNC)
            conn_free(&im->sync);
        else if (c->sel != NULL)
            conn_free(&c->sel->idle);
        maybe_stopped(im);
        return;
    }
    conn_fail(c, rc, "%s", msg); /* msg names the cause: refused login, untrusted certificate, ... */
}

/* ------------------------------------------------------------- events */

/* The same error, numbers aside ("after 0 ms" / "after 216 ms"). */
static int same_error(const char *a, const char *b)
{
    while (*a != '\0' && *b != '\0') {
        if (*a >= '0' && *a <= '9' && *b >= '0' && *b <= '9') {
            while (*a >= '0' && *a <= '9')
                a++;
            while (*b >= '0' && *b <= '9')
                b++;
            continue;
        }
        if (*a++ != *b++)
            return 0;
    }
    return *a == *b;
}

static void set_error(struct imap *im, const char *text)
{
    if (im->error != NULL && same_error(im->error, text)) {
        mh_log_debug(im->ctx, "still failing: %s", text);
        return;
    }
    mh_log_warn(im->ctx, "%s", text);
    mh_free(im->error);
    im->error = mh_strdup(text);
    emit(im, "account.error", json_pack("{s:s, s:s}", "account", im->ctx->instance, "error", text));
}

static void clear_error(struct imap *im)
{
    if (im->error == NULL)
        return;
    mh_log_info(im->ctx, "%s: recovered from: %s", im->host, im->error);
    mh_free(im->error);
    im->error = NULL;
}

/* ------------------------------------------------------------ storing */

static void resume_reading(struct imap *im)
{
    if (im->paused_read && im->inflight_bytes < IMAP_INFLIGHT_BYTES / 2) {
        im->paused_read = 0;
        if (im->sync != NULL && im->sync->nc != NULL) {
            nc_pause_read(im->sync->nc, 0);
            nc_expect(im->sync->nc, 1);
        }
    }
}

static void put_cb(void *arg, int rc, const struct mh_message_ref *ref)
{
    struct ireq *p = arg;
    struct imap *im = p->im;
    im->put_done++;
    im->inflight_bytes -= (int64_t)p->size;
    if (rc == MH_OK) {
        if (ref != NULL && ref->duplicate)
            im->pass_dup++;
        else
            im->pass_new++;
    } else if (transient(rc)) {
        /* the checkpoint written after this put is ahead of the mail: take it back to this UID */
        struct ifolder *f = p->f;
        if (f != NULL && f->have_state && f->st_uv == p->uv && p->uid < f->st_next) {
            write_ckpt(im, f, p->uv, p->uid, 0, 1);
            f->ck_next = p->uid;
        }
        if (!im->put_failed) {
            im->put_failed = 1;
            if (rc == MH_EQUOTA)
                im->run = RUN_PAUSED;
            if (im->in_pass)
                pass_fail(im, rc, "%s: a message was not stored: %s", im->host, rc_text(rc));
            else if (!im->stopping) {
                set_error(im, "a message was not stored: the store failed");
                schedule_dirty(im);
            }
        }
    } else {
        mh_log_warn(im->ctx, "%s: a message was skipped by the store: %s (%d)", im->host, rc_text(rc), rc);
    }
    req_free(p);
    resume_reading(im);
    if (im->in_pass && im->fi >= im->n_folders && im->put_done == im->put_issued)
        folder_next(im); /* the pass was waiting for its last puts */
    maybe_stopped(im);
}

static void put_message(struct iconn *c, struct ifolder *f, const struct imap_fetch *fe, uint32_t uv,
                        int notify, int rekey)
{
    struct imap *im = c->im;
    char sid[48], prefix[32];
    snprintf(sid, sizeof sid, "uv:%" PRIu32 ":%" PRIu32, uv, fe->uid);
    snprintf(prefix, sizeof prefix, "uv:%" PRIu32 ":", uv);
    struct mh_message m = {
        .struct_size = sizeof m,
        .user = im->user,
        .account = NULL,
        .folder = f->name,
        .source_id = sid,
        .raw = fe->body != NULL ? fe->body : "",
        .raw_len = fe->body != NULL ? fe->body_len : 0,
        .flags = fe->has_flags ? fe->flags : NULL,
        .internal_date = fe->internal_date,
        .notify = notify,
        .rematch_prefix = rekey ? prefix : NULL,
    };
    struct ireq *p = req_new(im);
    if (p == NULL) {
        conn_fail(c, MH_ENOMEM, "%s: out of memory", im->host);
        return;
    }
    p->size = m.raw_len;
    p->f = f;
    p->uv = uv;
    p->uid = fe->uid;
    int rc = mh_store_put_message(im->ctx, &m, put_cb, p);
    if (rc != MH_PENDING) {
        req_free(p);
        if (c->role == ROLE_SYNC && im->in_pass)
            pass_fail(im, rc, "%s: cannot store %s/%s: %s", im->host, f->name, sid, rc_text(rc));
        else
            mh_log_warn(im->ctx, "%s: cannot store %s/%s: %s", im->host, f->name, sid, rc_text(rc));
        return;
    }
    im->put_issued++;
    im->inflight_bytes += (int64_t)m.raw_len;
    im->pass_msgs++;
    f->done++;
    if (f->done > f->total)
        f->total = f->done;
    if (im->inflight_bytes > IMAP_INFLIGHT_BYTES && !im->paused_read && c == im->sync) {
        im->paused_read = 1;
        nc_pause_read(c->nc, 1);
        nc_expect(c->nc, 0); /* the store is the slow side now, not the server */
    }
    progress(im, 0);
}

static void state_put_cb(void *arg, int rc)
{
    struct imap *im = arg;
    if (rc != MH_OK)
        mh_log_warn(im->ctx, "%s: a sync checkpoint was not saved: %s", im->host, rc_text(rc));
}

static void write_ckpt(struct imap *im, struct ifolder *f, uint32_t uv, uint32_t next, uint64_t ms, int force)
{
    if (!im->state_ok)
        return;
    if (!force && f->have_state && uv == f->st_uv && next < f->ck_next)
        return; /* another connection got further already */
    if (f->have_state && uv == f->st_uv && next == f->st_next && ms == f->st_ms && f->ck_next == next)
        return; /* unchanged */
    char key[220], val[96];
    folder_key(f->name, key, sizeof key);
    snprintf(val, sizeof val, "uv=%" PRIu32 " next=%" PRIu32 " ms=%" PRIu64, uv, next, ms);
    int rc = mh_state_put(im->ctx, key, val, state_put_cb, im);
    if (rc != MH_PENDING) {
        mh_log_warn(im->ctx, "%s: cannot save the checkpoint of %s: %s", im->host, f->name, rc_text(rc));
        return;
    }
    f->have_state = 1;
    f->st_uv = uv;
    f->st_next = next;
    f->st_ms = ms;
    f->ck_next = next;
    mh_log_debug(im->ctx, "%s: checkpoint %s: %s", im->host, f->name, val);
}

/*
 * Record a checkpoint covering every put issued so far.  The core carries out
 * an instance's requests in order, so it is written right away: it becomes
 * durable only after those puts.  A put that failed after all rolls the
 * folder's checkpoint back to its UID (put_cb), and no checkpoint is written
 * until the next pass begins.
 */
static void ckpt_queue(struct imap *im, struct ifolder *f, uint32_t uv, uint32_t next, uint64_t ms)
{
    if (im->put_failed)
        return;
    write_ckpt(im, f, uv, next, ms, 0);
}

/* -------------------------------------------------------- folder names */

/* Server name -> hub name: modified UTF-7 decoded, the delimiter made '/'. */
static char *hub_name(const char *raw, size_t len, char delim)
{
    char *out = mh_malloc(len * 4 + 8);
    if (out == NULL)
        return NULL;
    long n = imap_mutf7_decode(raw, len, out, len * 4 + 8);
    if (n < 0) { /* not modified UTF-7 (8-bit, say): keep it as sent */
        memcpy(out, raw, len);
        out[len] = '\0';
        n = (long)len;
    }
    if (delim != 0 && delim != '/')
        for (long j = 0; j < n; j++)
            if (out[j] == delim)
                out[j] = '/';
    if (strncasecmp(out, "INBOX", 5) == 0 && (out[5] == '\0' || out[5] == '/'))
        memcpy(out, "INBOX", 5);
    return out;
}

static int excluded(const struct imap *im, const char *name)
{
    for (size_t j = 0; j < im->n_exclude; j++) {
        const char *p = im->exclude[j];
        size_t pl = strlen(p);
        if (strcmp(p, name) == 0 || (strncmp(p, name, pl) == 0 && name[pl] == '/') ||
            fnmatch(p, name, 0) == 0)
            return 1;
    }
    return 0;
}

static int watched(const struct imap *im, const char *name)
{
    if (strcmp(name, "INBOX") == 0)
        return 1;
    for (size_t j = 0; j < im->n_watch; j++)
        if (strcmp(im->watch[j], name) == 0)
            return 1;
    return 0;
}

static struct ifolder *folder_find(struct imap *im, const char *name)
{
    for (size_t j = 0; j < im->n_folders; j++)
        if (strcmp(im->folders[j]->name, name) == 0)
            return im->folders[j];
    return NULL;
}

static void folder_free(struct ifolder *f)
{
    if (f == NULL)
        return;
    mh_free(f->name);
    mh_free(f->raw);
    mh_free(f->special);
    mh_free(f);
}

/* ------------------------------------------------------ untagged data */

static void flags_changed(struct imap *im, struct ifolder *f, uint32_t uv, const struct imap_fetch *fe)
{
    char sid[48];
    snprintf(sid, sizeof sid, "uv:%" PRIu32 ":%" PRIu32, uv, fe->uid);
    int rc = mh_store_set_flags(im->ctx, f->name, sid, fe->flags, NULL, NULL);
    if (rc != MH_PENDING && rc != MH_ENOTSUP)
        mh_log_warn(im->ctx, "%s: cannot mirror the flags of %s/%s: %s", im->host, f->name, sid, rc_text(rc));
}

static void mark_gone(struct imap *im, struct ifolder *f, const char *sid)
{
    int rc = mh_store_mark_gone(im->ctx, f->name, sid, NULL, NULL);
    if (rc != MH_PENDING && rc != MH_ENOTSUP)
        mh_log_warn(im->ctx, "%s: cannot mark %s/%s gone: %s", im->host, f->name, sid, rc_text(rc));
}

struct vanish_ctx {
    struct imap *im;
    struct ifolder *f;
    uint32_t uv, below;
};

static int vanish_range(void *arg, uint32_t lo, uint32_t hi)
{
    struct vanish_ctx *v = arg;
    if (v->below == 0 || lo >= v->below)
        return 0;
    if (hi >= v->below)
        hi = v->below - 1; /* nothing was stored beyond the checkpoint */
    for (uint64_t u = lo; u <= hi; u++) {
        char sid[48];
        snprintf(sid, sizeof sid, "uv:%" PRIu32 ":%" PRIu64, v->uv, u);
        mark_gone(v->im, v->f, sid);
    }
    return 0;
}

static void on_vanished(struct iconn *c, const struct imap_resp *r)
{
    struct imap *im = c->im;
    struct ifolder *f = c->sel;
    const struct imap_val *a = r->args;
    if (a != NULL && a->type == IMAP_LIST) /* (EARLIER) */
        a = a->next;
    if (a == NULL || a->type != IMAP_ATOM || f == NULL)
        return;
    if (!f->have_state || !c->has_uv || c->uv != f->st_uv)
        return;
    struct vanish_ctx v = {im, f, f->st_uv, f->st_next};
    if (imap_seqset_each(a->s, a->len, vanish_range, &v) < 0)
        mh_log_warn(im->ctx, "%s: unparsable VANISHED set in %s", im->host, f->name);
}

/* \Recent belongs to a session, not to the message: never mirror it. */
static void strip_recent(char *flags)
{
    char *p = flags;
    while ((p = strstr(p, "\\Recent")) != NULL) {
        int start = p == flags || p[-1] == ' ';
        int end = p[7] == ' ' || p[7] == '\0';
        if (!start || !end) {
            p += 7;
            continue;
        }
        char *q = p + 7;
        if (*q == ' ')
            q++;
        else if (p > flags)
            p--; /* last flag: drop the space before it */
        memmove(p, q, strlen(q) + 1);
    }
}

static void on_fetch(struct iconn *c, const struct imap_resp *r)
{
    struct imap *im = c->im;
    struct imap_fetch fe;
    if (imap_fetch_get(r, &fe) < 0) {
        conn_fail(c, MH_ERETRY, "%s: malformed FETCH response", nc_label(c->nc));
        return;
    }
    strip_recent(fe.flags);
    struct ifolder *f = c->sel;
    if (f == NULL || im->stopping)
        return;
    if (c->role == ROLE_IDLE) {
        if (c->phase == IP_FETCH && fe.has_body && fe.uid != 0 && fe.uid >= c->fetch_from) {
            put_message(c, f, &fe, c->uv, 1, 0);
            if (fe.uid > c->fetched_max)
                c->fetched_max = fe.uid;
        } else if (!fe.has_body) {
            schedule_dirty(im); /* a flag changed: the sync pass mirrors it */
        }
        return;
    }
    if (fe.uid == 0)
        return; /* unsolicited and without UID: the next pass sees the change */
    if (fe.has_body) {
        if (im->f_batches > 0 && fe.uid >= im->f_lo && fe.uid <= im->f_hi)
            put_message(c, f, &fe, c->uv, im->step_notify, im->step_rekey);
        return;
    }
    if (im->f_scan) {
        char sid[48];
        snprintf(sid, sizeof sid, "uv:%" PRIu32 ":%" PRIu32, c->uv, fe.uid);
        size_t lo = 0, hi = im->n_scan;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            int cmp = strcmp(im->scan[mid].id, sid);
            if (cmp == 0) {
                im->scan[mid].seen = 1;
                const char *old = im->scan[mid].flags != NULL ? im->scan[mid].flags : "";
                if (fe.has_flags && !flags_equal(old, fe.flags))
                    flags_changed(im, f, c->uv, &fe);
                break;
            }
            if (cmp < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        return;
    }
    if (fe.has_flags && f->have_state && c->has_uv && c->uv == f->st_uv && fe.uid < f->st_next)
        flags_changed(im, f, c->uv, &fe); /* QRESYNC / CONDSTORE change */
}

static void on_list(struct imap *im, const struct imap_resp *r)
{
    struct imap_list l;
    if (imap_list_get(r, &l) < 0 || l.raw_len == 0 || l.raw_len > IMAP_NAME_MAX ||
        memchr(l.raw_name, '\0', l.raw_len) != NULL || memchr(l.raw_name, '\r', l.raw_len) != NULL ||
        memchr(l.raw_name, '\n', l.raw_len) != NULL) {
        mh_log_debug(im->ctx, "%s: LIST entry ignored", im->host);
        return;
    }
    struct ifolder *f = mh_calloc(1, sizeof *f);
    struct ifolder **a = f != NULL ? realloc(im->listed, (im->n_listed + 1) * sizeof *a) : NULL;
    if (a == NULL) {
        mh_free(f);
        return;
    }
    im->listed = a;
    f->im = im;
    f->raw = mh_malloc(l.raw_len + 1);
    f->name = hub_name(l.raw_name, l.raw_len, l.delim);
    f->special = l.special_use != NULL ? mh_strdup(l.special_use) : NULL;
    f->noselect = l.noselect;
    if (f->raw == NULL || f->name == NULL) {
        folder_free(f);
        return;
    }
    memcpy(f->raw, l.raw_name, l.raw_len);
    f->raw[l.raw_len] = '\0';
    im->listed[im->n_listed++] = f;
}

static int resp_cb(void *arg, const struct imap_resp *r)
{
    struct iconn *c = arg;
    struct imap *im = c->im;
    if (r->kind == IMAP_RESP_CONTINUE) {
        if (c->role == ROLE_IDLE && c->phase == IP_IDLING) {
            nc_expect(c->nc, 0); /* idling: silence is fine now */
            c->sel->idle_backoff = 0;
            return 0;
        }
        conn_fail(c, MH_ERETRY, "%s: unexpected continuation request", nc_label(c->nc));
        return 1;
    }
    if (r->kind == IMAP_RESP_TAGGED) {
        /* servers may finish pipelined commands out of order (RFC 3501 5.5): find it by tag */
        struct icmd *cmd = c->cmds, *prev = NULL;
        unsigned long t = r->tag[0] == 'A' ? strtoul(r->tag + 1, NULL, 10) : 0;
        while (cmd != NULL && cmd->tag != t) {
            prev = cmd;
            cmd = cmd->next;
        }
        if (cmd == NULL || t == 0) {
            conn_fail(c, MH_ERETRY, "%s: answer to a command not sent (tag %s)", nc_label(c->nc), r->tag);
            return 1;
        }
        if (prev != NULL)
            prev->next = cmd->next;
        else
            c->cmds = cmd->next;
        if (c->cmds_tail == cmd)
            c->cmds_tail = prev;
        if (r->status == IMAP_ST_BAD)
            mh_log_warn(im->ctx, "%s: command refused: %s", nc_label(c->nc), r->text);
        if (c->cmds == NULL && c->nc != NULL)
            nc_expect(c->nc, 0);
        if (cmd->done != NULL)
            cmd->done(c, cmd, r);
        mh_free(cmd);
        return c->dead;
    }
    if (r->status == IMAP_ST_BYE) {
        c->bye = 1;
        if (!c->logout_sent)
            mh_log_info(im->ctx, "%s: the server closes the connection: %s", nc_label(c->nc), r->text);
        return 0;
    }
    if (r->status != IMAP_ST_NONE) {
        if (r->code != NULL && strcmp(r->code, "CAPABILITY") == 0)
            caps_set(im, r->code_args);
        if (r->status == IMAP_ST_OK && r->code != NULL) {
            struct imap_status_data s;
            memset(&s, 0, sizeof s);
            if (imap_status_get(r, &s) == 0) {
                if (s.has_uidvalidity && s.uidvalidity > 0 && s.uidvalidity <= UINT32_MAX) {
                    c->uv = (uint32_t)s.uidvalidity;
                    c->has_uv = 1;
                }
                if (s.has_uidnext && s.uidnext <= UINT32_MAX) {
                    c->uidnext = (uint32_t)s.uidnext;
                    c->has_uidnext = 1;
                }
                if (s.has_highestmodseq) {
                    c->hms = s.highestmodseq;
                    c->has_hms = s.highestmodseq != 0;
                    c->nomodseq = s.highestmodseq == 0;
                }
            }
        }
        return 0;
    }
    const char *w = r->word;
    if (strcmp(w, "CAPABILITY") == 0) {
        caps_set(im, r->args);
    } else if (strcmp(w, "LIST") == 0 || strcmp(w, "LSUB") == 0) {
        if (c->role == ROLE_SYNC)
            on_list(im, r);
    } else if (r->has_num && strcmp(w, "EXISTS") == 0) {
        uint32_t before = c->exists;
        c->exists = r->num;
        if (c->role == ROLE_IDLE && r->num > before)
            idle_on_exists(c, r->num);
    } else if (r->has_num && strcmp(w, "FETCH") == 0) {
        on_fetch(c, r);
    } else if (strcmp(w, "ESEARCH") == 0) {
        if (c->role == ROLE_SYNC)
            on_esearch(im, r);
    } else if (strcmp(w, "VANISHED") == 0) {
        if (c->role == ROLE_IDLE)
            schedule_dirty(im);
        else
            on_vanished(c, r);
    } else if (r->has_num && strcmp(w, "EXPUNGE") == 0) {
        if (c->exists > 0)
            c->exists--;
        if (c->role == ROLE_IDLE)
            schedule_dirty(im);
    }
    return c->dead;
}

/* ------------------------------------------------------------ the pass */

static enum imap_run synced_run(const struct imap *im)
{
    return im->max_conns > 1 && has_cap(im, "IDLE") ? RUN_IDLE : RUN_POLLING;
}

static void retry_cb(struct mh_timer *t, void *arg)
{
    struct imap *im = arg;
    (void)t;
    mh_timer_del(im->ctx, &im->retry_timer);
    pass_start(im);
}

static void scan_clear(struct imap *im)
{
    for (size_t j = 0; j < im->n_scan; j++) {
        mh_free(im->scan[j].id);
        mh_free(im->scan[j].flags);
    }
    mh_free(im->scan);
    im->scan = NULL;
    im->n_scan = 0;
    im->f_scan = 0;
}

static void pass_fail(struct imap *im, int rc, const char *fmt, ...)
{
    char text[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (!im->in_pass && im->retry_timer != NULL)
        return;
    im->in_pass = 0;
    im->gen++;
    im->f_batches = 0;
    scan_clear(im);
    /* checkpoints of puts still in flight are kept: they are written if those puts succeed */
    if (im->sync != NULL)
        conn_free(&im->sync); /* a connection in an unknown state is not reused */
    im->paused_read = 0;      /* the connection it paused is gone */
    if (im->stopping) {
        maybe_stopped(im);
        return;
    }
    if (rc != MH_EQUOTA)
        im->run = RUN_ERROR;
    else
        im->run = RUN_PAUSED;
    im->backoff = im->backoff <= 0 ? 1.0 : im->backoff * 2;
    if (im->backoff > IMAP_BACKOFF_MAX)
        im->backoff = IMAP_BACKOFF_MAX;
    set_error(im, text);
    mh_log_info(im->ctx, "%s: next attempt in %.0f s", im->host, im->backoff);
    mh_timer_del(im->ctx, &im->retry_timer);
    im->retry_timer = mh_timer_add(im->ctx, im->backoff, 0, retry_cb, im);
}

static void cmd_logout_done(struct iconn *c, struct icmd *cmd, const struct imap_resp *r)
{
    (void)cmd;
    (void)r;
    struct imap *im = c->im;
    if (c->role == ROLE_SYNC)
        conn_free(&im->sync);
    else if (c->sel != NULL)
        conn_free(&c->sel->idle);
    maybe_stopped(im);
}

/* ------------------------------------------- folder list and checkpoints */

static void known_clear(struct imap *im)
{
    for (size_t j = 0; j < im->n_known; j++) {
        mh_free(im->known[j].name);
        mh_free(im->known[j].state);
    }
    mh_free(im->known);
    im->known = NULL;
    im->n_known = 0;
}

static void loads_done(struct imap *im)
{
    im->fi = 0;
    folder_next(im);
}

static void folder_state_cb(void *arg, int rc, const char *value)
{
    struct ireq *q = arg;
    struct imap *im = q->im;
    int stale = q->gen != im->gen;
    int is_known = q->is_known;
    size_t ki = q->known_idx;
    struct ifolder *f = q->f;
    req_free(q);
    if (stale)
        return;
    if (rc != MH_OK)
        mh_log_warn(im->ctx, "%s: cannot read a sync checkpoint: %s", im->host, rc_text(rc));
    if (is_known) {
        struct iknown *k = &im->known[ki];
        k->state_loaded = 1;
        if (rc == MH_OK && value != NULL) {
            k->state = mh_strdup(value);
            k->have_state = k->state != NULL;
        }
    } else {
        f->state_loaded = 1;
        uint32_t uv, next;
        uint64_t ms;
        if (rc == MH_OK && value != NULL && parse_ckpt(value, &uv, &next, &ms) == 0) {
            f->have_state = 1;
            f->st_uv = uv;
            f->st_next = next;
            f->st_ms = ms;
            f->ck_next = next;
            f->first_done = 1;
        }
    }
    if (--im->loads_pending == 0)
        loads_done(im);
}

static void load_state(struct imap *im, struct ifolder *f, size_t known_idx, int is_known)
{
    struct ireq *q = req_new(im);
    if (q == NULL)
        return;
    q->f = f;
    q->known_idx = known_idx;
    q->is_known = is_known;
    char key[220];
    folder_key(is_known ? im->known[known_idx].name : f->name, key, sizeof key);
    int rc = mh_state_get(im->ctx, key, folder_state_cb, q);
    if (rc != MH_PENDING) {
        req_free(q);
        mh_log_warn(im->ctx, "%s: cannot read a sync checkpoint: %s", im->host, rc_text(rc));
        return;
    }
    im->loads_pending++;
}

static void index_cb(void *arg, int rc, const char *value)
{
    struct ireq *q = arg;
    struct imap *im = q->im;
    int stale = q->gen != im->gen;
    req_free(q);
    if (stale)
        return;
    if (rc != MH_OK) {
        pass_fail(im, rc, "%s: cannot read the account's folder list: %s", im->host, rc_text(rc));
        return;
    }
    known_clear(im);
    for (const char *p = value; p != NULL && *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
        const char *tab = memchr(p, '\t', len);
        if (tab != NULL) {
            struct iknown *a = realloc(im->known, (im->n_known + 1) * sizeof *a);
            if (a != NULL) {
                im->known = a;
                struct iknown *k = &a[im->n_known];
                memset(k, 0, sizeof *k);
                k->uv = (uint32_t)strtoul(p, NULL, 10);
                size_t nl_len = len - (size_t)(tab + 1 - p);
                k->name = mh_malloc(nl_len + 1);
                if (k->name != NULL) {
                    memcpy(k->name, tab + 1, nl_len);
                    k->name[nl_len] = '\0';
                    im->n_known++;
                }
            }
        }
        p = nl != NULL ? nl + 1 : NULL;
    }
    /* read the checkpoints of the listed folders, and of the known ones that went away (renames) */
    im->loads_pending = 1;
    for (size_t j = 0; j < im->n_folders; j++) {
        struct ifolder *f = im->folders[j];
        if (f->present && !f->state_loaded)
            load_state(im, f, 0, 0);
    }
    for (size_t j = 0; j < im->n_known; j++) {
        struct ifolder *f = folder_find(im, im->known[j].name);
        im->known[j].present = f != NULL && f->listed;
        if (!im->known[j].present)
            load_state(im, NULL, j, 1);
    }
    if (--im->loads_pending == 0)
        loads_done(im);
}

static void cmd_list_done(struct iconn *c, struct icmd *cmd, const struct imap_resp *r)
{
    struct imap *im = c->im;
    (void)cmd;
    if (r->status != IMAP_ST_OK) {
        pass_fail(im, MH_ERETRY, "%s: LIST failed: %s", im->host, r->text);
        return;
    }
    for (size_t j = 0; j < im->n_folders; j++)
        im->folders[j]->present = im->folders[j]->listed = 0;
    for (size_t j = 0; j < im->n_listed; j++) {
        struct ifolder *l = im->listed[j];
        struct ifolder *f = folder_find(im, l->name);
        if (f != NULL) {
            if (f->listed) { /* listed twice */
                folder_free(l);
                continue;
            }
            mh_free(f->raw);
            f->raw = l->raw;
            l->raw = NULL;
            mh_free(f->special);
            f->special = l->special;
            l->special = NULL;
            f->noselect = l->noselect;
            folder_free(l);
        } else {
            struct ifolder **a = realloc(im->folders, (im->n_folders + 1) * sizeof *a);
            if (a == NULL) {
                folder_free(l);
                continue;
            }
            im->folders = a;
            f = l;
            im->folders[im->n_folders++] = f;
        }
        f->listed = 1;
        f->present = !f->noselect && !excluded(im, f->name);
        f->want_idle = f->present && watched(im, f->name);
    }
    mh_free(im->listed);
    im->listed = NULL;
    im->n_listed = 0;
    /* INBOX first (new mail there matters most), then the server's order */
    for (size_t j = 0; j < im->n_folders; j++)
        if (strcmp(im->folders[j]->name, "INBOX") == 0 && j > 0) {
            struct ifolder *t = im->folders[j];
            memmove(im->folders + 1, im->folders, j * sizeof *im->folders);
            im->folders[0] = t;
            break;
        }
    size_t n_present = 0;
    for (size_t j = 0; j < im->n_folders; j++)
        n_present += (size_t)im->folders[j]->present;
    mh_log_debug(im->ctx, "%s: %zu folders to sync", im->host, n_present);
    if (!im->state_ok) {
        loads_done(im);
        return;
    }
    struct ireq *q = req_new(im);
    if (q == NULL) {
        pass_fail(im, MH_ENOMEM, "%s: out of memory", im->host);
        return;
    }
    int rc = mh_state_get(im->ctx, "folders", index_cb, q);
    if (rc != MH_PENDING) {
        req_free(q);
        pass_fail(im, rc, "%s: cannot read the account's folder list: %s", im->host, rc_text(rc));
    }
}

static void send_list(struct iconn *c)
{
    struct imap *im = c->im;
    for (size_t j = 0; j < im->n_listed; j++)
        folder_free(im->listed[j]);
    mh_free(im->listed);
    im->listed = NULL;
    im->n_listed = 0;
    int rc = has_cap(im, "SPECIAL-USE") && has_cap(im, "LIST-EXTENDED")
                 ? conn_send(c, cmd_list_done, NULL, "LIST \"\" \"*\" RETURN (SPECIAL-USE)")
                 : conn_send(c, cmd_list_done, NULL, "LIST \"\" \"*\"");
    if (rc != MH_OK)
        pass_fail(im, rc, "%s: cannot send LIST", im->host);
}

static void cmd_enable_done(struct iconn *c, struct icmd *cmd, const struct imap_resp *r)
{
    (void)cmd;
    c->im->qresync_on = r->status == IMAP_ST_OK;
    send_list(c);
}

static void cmd_capa_done(struct iconn *c, struct icmd *cmd, const struct imap_resp *r)
{
    struct imap *im = c->im;
    (void)cmd;
    if (r->status != IMAP_ST_OK) {
        pass_fail(im, MH_ERETRY, "%s: CAPABILITY failed: %s", im->host, r->text);
        return;
    }
    if (!has_cap(im, "IMAP4REV1") && !has_cap(im, "IMAP4REV2")) {
        pass_fail(im, MH_ERR, "%s: not an IMAP4rev1 server", im->host);
        return;
    }
    if (has_cap(im, "QRESYNC") && !im->qresync_on) {
        if (conn_send(c, cmd_enable_done, NULL, "ENABLE QRESYNC") != MH_OK)
            pass_fail(im, MH_ENOMEM, "%s: cannot send ENABLE", im->host);
        return;
    }
    send_list(c);
}

static void pass_start(struct imap *im)
{
    if (im->stopping || im->retry_timer != NULL)
        return;
    if (!im->in_pass) {
        im->in_pass = 1;
        im->gen++;
        im->put_failed = 0;
        im->pass_new = im->pass_dup = im->pass_msgs = 0;
        im->pass_started = im->last_progress = mh_now(im->ctx);
        for (size_t j = 0; j < im->n_folders; j++)
            if (im->folders[j]->first_done)
                im->folders[j]->done = im->folders[j]->total = 0;
        totals(im);
        im->rate_done0 = im->done;
        if (im->run == RUN_ERROR || im->run == RUN_PAUSED)
            im->run = im->first_pass_done ? synced_run(im) : RUN_IMPORTING;
    }
    if (im->sync == NULL) {
        im->qresync_on = 0; /* ENABLE is per connection */
        im->sync = conn_open(im, ROLE_SYNC, NULL);
        if (im->sync == NULL)
            pass_fail(im, MH_ERETRY, "%s: cannot open a connection", im->host);
        return; /* conn_connected calls us again */
    }
    struct iconn *c = im->sync;
    if (!c->up)
        return; /* connecting: conn_connected calls us again */
    if (c->cmds != NULL) {
        /* still busy with something: start over on a fresh connection */
        conn_free(&im->sync);
        im->qresync_on = 0;
        im->sync = conn_open(im, ROLE_SYNC, NULL);
        if (im->sync == NULL)
            pass_fail(im, MH_ERETRY, "%s: cannot open a connection", im->host);
        return;
    }
    c->sel = NULL;
    if (c->reused && im->caps != NULL) {
        send_list(c);
        return;
    }
    c->reused = 1;
    if (conn_send(c, cmd_capa_done, NULL, "CAPABILITY") != MH_OK)
        pass_fail(im, MH_ENOMEM, "%s: cannot send CAPABILITY", im->host);
}

/* --------------------------------------------------------- one folder */

static void step_fetch(struct imap *im, uint32_t lo, uint32_t hi, int notify, int rekey)
{
    struct iconn *c = im->sync;
    struct ifolder *f = c->sel;
    im->step_notify = notify;
    im->step_rekey = rekey;
    im->f_lo = lo;
    im->f_hi = hi;
    im->f_cursor = lo;
    im->f_acked = lo;
    im->n_early = 0;
    im->f_batches = 0;
    uint64_t span = (uint64_t)im->fetch_batch;
    if (lo <= hi) {
        uint64_t width = (uint64_t)hi - lo + 1;
        uint64_t expect = c->exists > 0 ? c->exists : 1;
        if (width > expect) /* sparse UIDs: widen the batches so each holds about fetch_batch messages */
            span = span * (width / expect);
        if (span > 10u * 1000 * 1000)
            span = 10u * 1000 * 1000;
        int64_t todo = (int64_t)(width < expect ? width : expect);
        f->total = f->done + todo;
    }
    im->f_span = (uint32_t)span;
    if (lo <= hi)
        progress(im, 1);
    fetch_pump(im);
}

static void cmd_fetch_done(struct iconn *c, struct icmd *cmd, const struct imap_resp *r)
{
    struct imap *im = c->im;
    struct ifolder *f = c->sel;
    if (im->f_batches > 0)
        im->f_batches--;
    if (r->status == IMAP_ST_BAD) {
        pass_fail(im, MH_ERETRY, "%s: UID FETCH in %s refused: %s", im->host, f->name, r->text);
        return;
    }
    if (r->status == IMAP_ST_NO)
        mh_log_warn(im->ctx, "%s: UID FETCH %u:%u in %s: %s", im->host, cmd->lo, cmd->hi, f->name, r->text);
    /* the checkpoint covers the batches completed without a gap before them */
    if (cmd->lo == im->f_acked) {
        im->f_acked = cmd->hi + 1;
        for (int moved = 1; moved;) {
            moved = 0;
            for (int j = 0; j < im->n_early; j++)
                if (im->f_early[j][0] == im->f_acked) {
                    im->f_acked = im->f_early[j][1] + 1;
                    im->f_early[j][0] = im->f_early[--im->n_early][0];
                    im->f_early[j][1] = im->f_early[im->n_early][1];
                    moved = 1;
                    break;
                }
        }
        uint32_t next = im->f_acked;
        if (im->f_cursor > im->f_hi && im->f_batches == 0 && c->has_uidnext && c->uidnext > next)
            next = c->uidnext;
        ckpt_queue(im, f, c->uv, next, c->has_hms ? c->hms : 0);
    } else if (im->n_early < IMAP_PIPELINE) {
        im->f_early[im->n_early][0] = cmd->lo;
        im->f_early[im->n_early][1] = cmd->hi;
        im->n_early++;
    }
    fetch_pump(im);
}

static void fetch_pump(struct imap *im)
{
    struct iconn *c = im->sync;
    if (!im->in_pass || c == NULL)
        return;
    while (im->f_batches < IMAP_PIPELINE && im->f_cursor != 0 && im->f_cursor <= im->f_hi) {
        uint32_t a = im->f_cursor;
        uint64_t b = (uint64_t)a + im->f_span - 1;
        if (b > im->f_hi)
            b = im->f_hi;
        struct icmd *cmd = NULL;
        int rc = conn_send(
            c, cmd_fetch_done, &cmd,
            "UID FETCH %" PRIu32 ":%" PRIu64 " (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])", a, b);
        if (rc != MH_OK) {
            pass_fail(im, rc, "%s: cannot send UID FETCH", im->host);
            return;
        }
        cmd->lo = a;
        cmd->hi = (uint32_t)b;
        im->f_batches++;
        im->f_cursor = b >= UINT32_MAX ? 0 : (uint32_t)b + 1;
        if (b >= im->f_hi)
            im->f_cursor = im->f_hi + 1 == 0 ? 0 : im->f_hi + 1;
    }
    if (im->f_batches == 0)
        step_after_fetch(im);
}

static void rekey_list_cb(void *arg, int rc, const struct mh_source_msg *msgs, size_t n)
{
    struct ireq *q = arg;
    struct imap *im = q->im;
    struct ifolder *f = q->f;
    uint32_t uv = (uint32_t)q->size;
    req_free(q);
    if (rc != MH_OK)
        return;
    char prefix[32];
    int pl = snprintf(prefix, sizeof prefix, "uv:%" PRIu32 ":", uv);
    size_t gone = 0;
    for (size_t j = 0; j < n; j++)
        if (!msgs[j].gone && msgs[j].source_id != NULL &&
            strncmp(msgs[j].source_id, prefix, (size_t)pl) != 0) {
            mark_gone(im, f, msgs[j].source_id);
            gone++;
        }
    if (gone > 0)
        mh_log_info(im->ctx, "%s: %zu messages of %s were not found again after its renumbering", im->host,
                    gone, f->name);
}

static void step_after_fetch(struct imap *im)
{
    struct iconn *c = im->sync;
    struct ifolder *f = c->sel;
    if (im->step_rekey) {
        /* the stored copies the new numbering did not match are gone at the source */
        struct ireq *q = req_new(im);
        if (q != NULL) {
            q->f = f;
            q->size = c->uv;
            if (mh_store_source_list(im->ctx, f->name, rekey_list_cb, q) != MH_PENDING)
                req_free(q);
        }
        im->step_rekey = 0;
    }
    /* the final checkpoint of the folder: every UID below UIDNEXT was seen */
    if (c->has_uidnext)
        ckpt_queue(im, f, c->uv, c->uidnext, c->has_hms ? c->hms : 0);
    f->first_done = 1;
    f->total = f->done;
    if (f->want_idle && f->idle == NULL && f->idle_retry == NULL && synced_run(im) == RUN_IDLE)
        idle_open(im, f);
    im->fi++;
    folder_next(im);
}

static int scan_cmp(const void *a, const void *b)
{
    return strcmp(((const struct scan_ent *)a)->id, ((const struct scan_ent *)b)->id);
}

/* Same set of flags, whatever the order and case. */
static int flags_equal(const char *a, const char *b)
{
    for (int pass = 0; pass < 2; pass++) {
        const char *x = pass ? b : a, *y = pass ? a : b;
        for (const char *p = x; *p != '\0';) {
            while (*p == ' ')
                p++;
            size_t n = strcspn(p, " ");
            if (n == 0)
                break;
            int found = 0;
            for (const char *q = y; *q != '\0' && !found;) {
                while (*q == ' ')
                    q++;
                size_t m = strcspn(q, " ");
                if (m == 0)
                    break;
                found = m == n && strncasecmp(p, q, n) == 0;
                q += m;
            }
            if (!found)
                return 0;
            p += n;
        }
    }
    return 1;
}

static void step_new_mail(struct imap *im)
{
    struct iconn *c = im->sync;
    struct ifolder *f = c->sel;
    uint32_t hi = c->uidnext > 0 ? c->uidnext - 1 : 0;
    step_fetch(im, f->st_next > 0 ? f->st_next : 1, hi, 1, 0);
}

static void cmd_scan_done(struct iconn *c, struct icmd *cmd, const struct imap_resp *r)
{
    struct imap *im = c->im;
    struct ifolder *f = c->sel;
    (void)cmd;
    if (r->status != IMAP_ST_OK) {
        pass_fail(im, MH_ERETRY, "%s: UID FETCH (FLAGS) in %s failed: %s", im->host, f->name, r->text);
        return;
    }
    size_t gone = 0;
    for (size_t j = 0; j < im->n_scan; j++)
        if (!im->scan[j].seen) {
            mark_gone(im, f, im->scan[j].id);
            gone++;
        }
    if (gone > 0)
        mh_log_info(im->ctx, "%s: %zu messages of %s were removed at the source", im->host, gone, f->name);
    scan_clear(im);
    step_new_mail(im);
}

static void full_scan(struct iconn *c)
{
    struct imap *im = c->im;
    for (size_t j = 0; j < im->n_scan; j++)
        im->scan[j].seen = 0;
    im->f_scan = 1;
    if (conn_send(c, cmd_scan_done, NULL, "UID FETCH 1:%" PRIu32 " (UID FLAGS)", c->sel->st_next - 1) !=
        MH_OK)
        pass_fail(im, MH_ENOMEM, "%s: cannot send UID FETCH", im->host);
}

static void cmd_changed_done(struct iconn *c, struct icmd *cmd, const struct imap_resp *r)
{
    (void)cmd;
    if (r->status != IMAP_ST_OK)
        pass_fail(c->im, MH_ERETRY, "%s: UID FETCH (CHANGEDSINCE) in %s failed: %s", c->im->host,
                  c->sel->name, r->text);
}

/* The server's count of UIDs below the checkpoint: equal to what the store holds, nothing was expunged. */
static void cmd_count_done(struct iconn *c, struct icmd *cmd, const struct imap_resp *r)
{
    struct imap *im = c->im;
    (void)cmd;
    if (r->status == IMAP_ST_OK && im->has_scan_count && im->scan_count == im->n_scan) {
        scan_clear(im);
        step_new_mail(im);
        return;
    }
    full_scan(c);
}

static void on_esearch(struct imap *im, const struct imap_resp *r)
{
    for (const struct imap_val *v = r->args; v != NULL; v = v->next) {
        uint64_t x;
        if (imap_val_is(v, "COUNT") && imap_val_u64(v->next, &x)) {
            im->scan_count = x;
            im->has_scan_count = 1;
        }
    }
}

static void scan_list_cb(void *arg, int rc, const struct mh_source_msg *msgs, size_t n)
{
    struct ireq *q = arg;
    struct imap *im = q->im;
    int stale = q->gen != im->gen;
    req_free(q);
    if (stale || !im->in_pass || im->sync == NULL)
        return;
    struct iconn *c = im->sync;
    struct ifolder *f = c->sel;
    if (rc != MH_OK) {
        mh_log_warn(im->ctx, "%s: cannot list the stored messages of %s: %s", im->host, f->name, rc_text(rc));
        step_new_mail(im);
        return;
    }
    char prefix[32];
    int pl = snprintf(prefix, sizeof prefix, "uv:%" PRIu32 ":", c->uv);
    scan_clear(im);
    im->scan = n > 0 ? mh_calloc(n, sizeof *im->scan) : NULL;
    if (n > 0 && im->scan == NULL) {
        pass_fail(im, MH_ENOMEM, "%s: out of memory", im->host);
        return;
    }
    for (size_t j = 0; j < n; j++) {
        if (msgs[j].gone || msgs[j].source_id == NULL || strncmp(msgs[j].source_id, prefix, (size_t)pl) != 0)
            continue;
        unsigned long uid = strtoul(msgs[j].source_id + pl, NULL, 10);
        if (uid == 0 || uid >= f->st_next)
            continue;
        struct scan_ent *e = &im->scan[im->n_scan];
        e->id = mh_strdup(msgs[j].source_id);
        e->flags = mh_strdup(msgs[j].flags != NULL ? msgs[j].flags : "");
        if (e->id == NULL || e->flags == NULL) {
            mh_free(e->id);
            mh_free(e->flags);
            pass_fail(im, MH_ENOMEM, "%s: out of memory", im->host);
            return;
        }
        im->n_scan++;
    }
    qsort(im->scan, im->n_scan, sizeof *im->scan, scan_cmp);
    if (f->st_next <= 1) {
        scan_clear(im);
        step_new_mail(im);
        return;
    }
    if (has_cap(im, "CONDSTORE") && has_cap(im, "ESEARCH") && c->has_hms && f->st_ms > 0) {
        /* CONDSTORE: only the changed flags, and a count to tell whether anything was expunged */
        im->f_scan = 1;
        im->has_scan_count = 0;
        if (conn_send(c, cmd_changed_done, NULL,
                      "UID FETCH 1:%" PRIu32 " (UID FLAGS) (CHANGEDSINCE %" PRIu64 ")", f->st_next - 1,
                      f->st_ms) != MH_OK ||
            conn_send(c, cmd_count_done, NULL, "UID SEARCH RETURN (COUNT) UID 1:%" PRIu32, f->st_next - 1) !=
                MH_OK)
            pass_fail(im, MH_ENOMEM, "%s: cannot send UID FETCH", im->host);
        return;
    }
    full_scan(c);
}

/* Compare the folder with the store: flags and expunges (servers without QRESYNC). */
static void step_scan(struct imap *im)
{
    struct ifolder *f = im->sync->sel;
    struct ireq *q = req_new(im);
    if (q == NULL) {
        pass_fail(im, MH_ENOMEM, "%s: out of memory", im->host);
        return;
    }
    int rc = mh_store_source_list(im->ctx, f->name, scan_list_cb, q);
    if (rc != MH_PENDING) {
        req_free(q);
        if (rc != MH_ENOTSUP)
            mh_log_warn(im->ctx, "%s: cannot list the stored messages of %s: %s", im->host, f->name,
                        rc_text(rc));
        step_new_mail(im);
    }
}

static void folder_change_cb(void *arg, int rc)
{
    struct ireq *q = arg;
    struct imap *im = q->im;
    if (rc != MH_OK)
        mh_log_warn(im->ctx, "%s: the store did not record a folder change: %s", im->host,
                    rc == MH_EEXIST ? "the new name exists already" : rc_text(rc));
    req_free(q);
}

static void folder_change(struct imap *im, const char *old, const char *new_name)
{
    struct ireq *q = req_new(im);
    if (q == NULL)
        return;
    int rc = mh_store_folder_change(im->ctx, old, new_name, folder_change_cb, q);
    if (rc != MH_PENDING) {
        req_free(q);
        if (rc != MH_ENOTSUP)
            mh_log_warn(im->ctx, "%s: cannot record the change of folder %s: %s", im->host, old, rc_text(rc));
    }
}

/* A folder without a checkpoint: is it one that disappeared, renamed (same UIDVALIDITY)? */
static int try_rename(struct imap *im, struct ifolder *f, uint32_t uv)
{
    for (size_t j = 0; j < im->n_known; j++) {
        struct iknown *k = &im->known[j];
        uint32_t kuv, knext;
        uint64_t kms;
        if (k->present || k->renamed || !k->have_state || parse_ckpt(k->state, &kuv, &knext, &kms) < 0 ||
            kuv != uv)
            continue;
        mh_log_info(im->ctx, "%s: folder %s was renamed to %s", im->host, k->name, f->name);
        folder_change(im, k->name, f->name);
        k->renamed = 1;
        f->have_state = 1;
        f->st_uv = kuv;
        f->st_next = knext;
        f->st_ms = kms;
        f->ck_next = 0;
        f->first_done = 1;
        write_ckpt(im, f, kuv, knext, kms, 0);
        char key[220];
        folder_key(k->name, key, sizeof key);
        if (im->state_ok)
            mh_state_put(im->ctx, key, NULL, NULL, NULL);
        return 1;
    }
    return 0;
}

static void cmd_examine_done(struct iconn *c, struct icmd *cmd, const struct imap_resp *r)
{
    struct imap *im = c->im;
    struct ifolder *f = c->sel;
    (void)cmd;
    if (r->status != IMAP_ST_OK || !c->has_uv || !c->has_uidnext) {
        mh_log_warn(im->ctx, "%s: folder %s cannot be read: %s", im->host, f->name,
                    r->status != IMAP_ST_OK ? r->text : "no UIDVALIDITY/UIDNEXT");
        f->total = f->done;
        im->fi++;
        folder_next(im);
        return;
    }
    f->seen_uv = c->uv;
    f->seen_next = c->uidnext;
    if (!f->have_state && try_rename(im, f, c->uv))
        c->examined_qresync = 0; /* the changes since its checkpoint come from a comparison */
    if (!f->have_state) {
        /* first import of this folder */
        uint32_t hi = c->uidnext > 0 ? c->uidnext - 1 : 0;
        f->done = 0;
        step_fetch(im, 1, hi, 0, 0);
        return;
    }
    if (c->uv != f->st_uv) {
        mh_log_warn(im->ctx, "%s: UIDVALIDITY of %s changed (%" PRIu32 " -> %" PRIu32 "): fetching it again",
                    im->host, f->name, f->st_uv, c->uv);
        f->ck_next = 0;
        uint32_t hi = c->uidnext > 0 ? c->uidnext - 1 : 0;
        /* The folder was synced before, so a message that matches no stored copy by content came
         * since: it is news (notify); the re-matched ones are duplicates, which never notify. */
        step_fetch(im, 1, hi, 1, 1);
        return;
    }
    if (c->examined_qresync) {
        step_new_mail(im); /* VANISHED and changed flags came with EXAMINE */
        return;
    }
    if (c->has_hms && f->st_ms == c->hms && c->uidnext == f->st_next) {
        step_after_fetch(im); /* unchanged */
        return;
    }
    step_scan(im);
}

static void examine(struct imap *im, struct ifolder *f)
{
    struct iconn *c = im->sync;
    char q[IMAP_NAME_MAX * 2 + 8];
    c->sel = f;
    c->has_uv = c->has_uidnext = c->has_hms = c->nomodseq = 0;
    c->uv = c->uidnext = 0;
    c->hms = 0;
    c->exists = 0;
    c->examined_qresync = 0;
    im->f_batches = 0;
    im->f_scan = 0;
    if (imap_quote(f->raw, strlen(f->raw), q, sizeof q) < 0) {
        mh_log_warn(im->ctx, "%s: folder %s has a name that cannot be sent", im->host, f->name);
        im->fi++;
        folder_next(im);
        return;
    }
    int rc;
    if (im->qresync_on && f->have_state && f->st_ms > 0) {
        c->examined_qresync = 1;
        rc = conn_send(c, cmd_examine_done, NULL, "EXAMINE %s (QRESYNC (%" PRIu32 " %" PRIu64 "))", q,
                       f->st_uv, f->st_ms);
    } else if (has_cap(im, "CONDSTORE") && !im->qresync_on) {
        rc = conn_send(c, cmd_examine_done, NULL, "EXAMINE %s (CONDSTORE)", q);
    } else {
        rc = conn_send(c, cmd_examine_done, NULL, "EXAMINE %s", q);
    }
    if (rc != MH_OK)
        pass_fail(im, rc, "%s: cannot send EXAMINE", im->host);
}

static void pass_done(struct imap *im);

static void folder_next(struct imap *im)
{
    if (!im->in_pass || im->sync == NULL)
        return;
    while (im->fi < im->n_folders && !im->folders[im->fi]->present)
        im->fi++;
    if (im->fi < im->n_folders) {
        examine(im, im->folders[im->fi]);
        return;
    }
    if (im->put_done != im->put_issued)
        return; /* put_cb comes back here with the last completion */
    pass_done(im);
}

static void sync_now_cb(struct mh_timer *t, void *arg);

static void pass_done(struct imap *im)
{
    im->in_pass = 0;
    if (im->sync != NULL)
        im->sync->sel = NULL;
    /* folders gone from the server, renamed ones excepted */
    for (size_t j = 0; j < im->n_known; j++) {
        struct iknown *k = &im->known[j];
        if (k->present || k->renamed)
            continue;
        mh_log_info(im->ctx, "%s: folder %s was deleted at the source (its mail is kept)", im->host, k->name);
        folder_change(im, k->name, NULL);
        char key[220];
        folder_key(k->name, key, sizeof key);
        if (im->state_ok)
            mh_state_put(im->ctx, key, NULL, NULL, NULL);
    }
    /* the folder index */
    size_t cap = 64;
    for (size_t j = 0; j < im->n_folders; j++)
        cap += strlen(im->folders[j]->name) + 16;
    char *idx = mh_malloc(cap);
    if (idx != NULL && im->state_ok) {
        size_t o = 0;
        idx[0] = '\0';
        for (size_t j = 0; j < im->n_folders; j++) {
            const struct ifolder *f = im->folders[j];
            if (f->present && f->have_state)
                o += (size_t)snprintf(idx + o, cap - o, "%" PRIu32 "\t%s\n", f->st_uv, f->name);
        }
        if (mh_state_put(im->ctx, "folders", idx, state_put_cb, im) != MH_PENDING)
            mh_log_warn(im->ctx, "%s: cannot save the folder list", im->host);
    }
    mh_free(idx);
    known_clear(im);

    im->backoff = 0;
    clear_error(im);
    int first = !im->first_pass_done;
    im->first_pass_done = 1;
    im->run = synced_run(im);
    totals(im);
    double secs = mh_now(im->ctx) - im->pass_started;
    if (first || im->pass_msgs > 0)
        mh_log_info(im->ctx,
                    "%s: sync pass done: %" PRId64 " messages fetched, %" PRId64 " new, %" PRId64
                    " duplicates, in %.1f s",
                    im->host, im->pass_msgs, im->pass_new, im->pass_dup, secs);
    emit(im, "account.synced",
         json_pack("{s:s, s:I, s:I, s:I}", "account", im->ctx->instance, "messages",
                   (json_int_t)im->pass_msgs, "new", (json_int_t)im->pass_new, "duplicates",
                   (json_int_t)im->pass_dup));
    if (im->sync != NULL && im->sync->nc != NULL)
        nc_expect(im->sync->nc, 0);
    for (size_t j = 0; j < im->n_folders; j++) {
        struct ifolder *f = im->folders[j];
        if (f->present && f->want_idle && f->first_done && f->idle == NULL && f->idle_retry == NULL &&
            im->run == RUN_IDLE)
            idle_open(im, f);
    }
    if (im->pass_again) {
        im->pass_again = 0;
        mh_timer_del(im->ctx, &im->dirty_timer);
        im->dirty_timer = mh_timer_add(im->ctx, 0, 0, sync_now_cb, im);
    }
}

/* ---------------------------------------------------------------- IDLE */

static size_t idle_count(const struct imap *im)
{
    size_t n = 0;
    for (size_t j = 0; j < im->n_folders; j++)
        n += im->folders[j]->idle != NULL;
    return n;
}

static void idle_retry_cb(struct mh_timer *t, void *arg)
{
    struct ifolder *f = arg;
    (void)t;
    mh_timer_del(f->im->ctx, &f->idle_retry);
    if (f->present && f->want_idle)
        idle_open(f->im, f);
}

static void idle_dropped(struct iconn *c, int rc, const char *msg)
{
    struct imap *im = c->im;
    struct ifolder *f = c->sel;
    int was_idling = c->phase != IP_CONNECTING;
    if (f->idle == c)
        conn_free(&f->idle);
    else
        conn_free(&c);
    if (im->stopping) {
        maybe_stopped(im);
        return;
    }
    f->idle_backoff = f->idle_backoff <= 0 ? 1.0 : f->idle_backoff * 2;
    if (f->idle_backoff > IMAP_BACKOFF_MAX)
        f->idle_backoff = IMAP_BACKOFF_MAX;
    if (!was_idling && rc == MH_ERR) {
        char text[700];
        snprintf(text, sizeof text, "%s (IDLE on %s)", msg, f->name);
        set_error(im, text);
    } else {
        mh_log_warn(im->ctx, "%s: IDLE connection for %s lost: %s; reconnecting in %.0f s", im->host, f->name,
                    msg, f->idle_backoff);
    }
    mh_timer_del(im->ctx, &f->idle_retry);
    f->idle_retry = mh_timer_add(im->ctx, f->idle_backoff, 0, idle_retry_cb, f);
    /* what arrived while we were away is fetched when the connection is back; a pass covers the rest */
}

static void idle_open(struct imap *im, struct ifolder *f)
{
    if (im->stopping || f->idle != NULL || !has_cap(im, "IDLE"))
        return;
    if ((int64_t)idle_count(im) >= im->max_conns - 1) {
        mh_log_debug(im->ctx, "%s: no connection left to IDLE on %s (max_connections %" PRId64 ")", im->host,
                     f->name, im->max_conns);
        return;
    }
    struct server_use *u = server_of(im, 1);
    if (u != NULL && im->server_idle_max > 0 && u->idle >= im->server_idle_max) {
        if (!f->budget_logged)
            mh_log_info(im->ctx, "%s: no IDLE on %s: %" PRId64 " IDLE connections to %s are open already "
                        "(server_idle_max); the folder is synced every poll_interval instead", im->host, f->name,
                        u->idle, u->key);
        f->budget_logged = 1;
        return;
    }
    f->idle = conn_open(im, ROLE_IDLE, f);
    if (f->idle != NULL && u != NULL) {
        u->idle++;
        f->idle->server = u;
    } else {
        server_drop_unused(u); /* the entry was made for nothing */
    }
    if (f->idle == NULL) {
        f->idle_backoff = f->idle_backoff <= 0 ? 1.0 : f->idle_backoff * 2;
        if (f->idle_backoff > IMAP_BACKOFF_MAX)
            f->idle_backoff = IMAP_BACKOFF_MAX;
        f->idle_retry = mh_timer_add(im->ctx, f->idle_backoff, 0, idle_retry_cb, f);
        return;
    }
    f->idle->phase = IP_CONNECTING;
}

static void cmd_idle_done(struct iconn *c, struct icmd *cmd, const struct imap_resp *r);

static void idle_restart_cb(struct mh_timer *t, void *arg)
{
    struct iconn *c = arg;
    (void)t;
    if (c->phase == IP_IDLING && nc_write(c->nc, "DONE\r\n", 6) == MH_OK) {
        nc_expect(c->nc, 1);
        c->phase = IP_DONE_SENT;
    }
}

static void idle_send(struct iconn *c)
{
    struct imap *im = c->im;
    if (im->stopping)
        return;
    if (conn_send(c, cmd_idle_done, NULL, "IDLE") != MH_OK) {
        conn_fail(c, MH_ERETRY, "%s: cannot send IDLE", nc_label(c->nc));
        return;
    }
    c->phase = IP_IDLING;
    if (c->restart == NULL)
        c->restart = mh_timer_add(im->ctx, im->idle_restart, im->idle_restart, idle_restart_cb, c);
}

static void cmd_idle_fetch_done(struct iconn *c, struct icmd *cmd, const struct imap_resp *r)
{
    struct imap *im = c->im;
    struct ifolder *f = c->sel;
    (void)cmd;
    if (r->status != IMAP_ST_OK)
        mh_log_warn(im->ctx, "%s: fetching new mail in %s: %s", im->host, f->name, r->text);
    if (c->fetched_max >= c->fetch_from) {
        c->fetch_from = c->fetched_max + 1;
        /* a checkpoint only on top of the pass's own (which covers every UID below seen_next) */
        if (f->have_state && f->st_uv == c->uv && f->st_next >= f->seen_next)
            ckpt_queue(im, f, c->uv, c->fetch_from, f->st_ms);
    }
    if (c->need_fetch) {
        c->need_fetch = 0;
        c->phase = IP_FETCH;
        c->fetched_max = 0;
        uint32_t from = c->fetch_from;
        if (f->st_uv == c->uv && f->ck_next > from)
            from = f->ck_next;
        c->fetch_from = from;
        if (conn_send(c, cmd_idle_fetch_done, NULL,
                      "UID FETCH %" PRIu32 ":* (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])",
                      from) != MH_OK)
            conn_fail(c, MH_ERETRY, "%s: cannot send UID FETCH", nc_label(c->nc));
        return;
    }
    idle_send(c);
}

static void idle_fetch(struct iconn *c)
{
    struct ifolder *f = c->sel;
    c->need_fetch = 1;
    if (f->seen_uv != c->uv) {
        /* renumbered: that is the sync pass's work */
        c->need_fetch = 0;
        schedule_dirty(c->im);
        idle_send(c);
        return;
    }
    struct icmd fake = {0};
    struct imap_resp ok = {.kind = IMAP_RESP_TAGGED, .status = IMAP_ST_OK, .text = ""};
    c->fetched_max = 0;
    cmd_idle_fetch_done(c, &fake, &ok);
}

static void cmd_idle_done(struct iconn *c, struct icmd *cmd, const struct imap_resp *r)
{
    (void)cmd;
    if (c->im->stopping)
        return;
    if (r->status != IMAP_ST_OK) {
        conn_fail(c, MH_ERETRY, "%s: IDLE refused: %s", nc_label(c->nc), r->text);
        return;
    }
    if (c->need_fetch) {
        c->need_fetch = 0;
        idle_fetch(c);
        return;
    }
    idle_send(c);
}

/* `* N EXISTS` on an IDLE connection. */
static void idle_on_exists(struct iconn *c, uint32_t n)
{
    (void)n;
    if (c->phase == IP_IDLING) {
        if (nc_write(c->nc, "DONE\r\n", 6) != MH_OK)
            return;
        nc_expect(c->nc, 1);
        c->phase = IP_DONE_SENT;
        c->need_fetch = 1;
    } else if (c->phase == IP_DONE_SENT || c->phase == IP_FETCH) {
        c->need_fetch = 1;
    }
}

static void cmd_idle_examine_done(struct iconn *c, struct icmd *cmd, const struct imap_resp *r)
{
    struct ifolder *f = c->sel;
    (void)cmd;
    if (r->status != IMAP_ST_OK || !c->has_uv) {
        conn_fail(c, MH_ERR, "%s: cannot open %s: %s", nc_label(c->nc), f->name, r->text);
        return;
    }
    c->fetch_from = f->seen_next > 0 ? f->seen_next : 1;
    if (f->have_state && f->st_uv == c->uv && f->ck_next > c->fetch_from)
        c->fetch_from = f->ck_next;
    if (c->uv != f->seen_uv) {
        schedule_dirty(c->im);
    } else if (c->has_uidnext && c->uidnext > c->fetch_from) {
        idle_fetch(c); /* mail arrived since the pass */
        return;
    }
    idle_send(c);
}

static void idle_enter(struct iconn *c)
{
    struct ifolder *f = c->sel;
    char q[IMAP_NAME_MAX * 2 + 8];
    c->phase = IP_EXAMINE;
    if (imap_quote(f->raw, strlen(f->raw), q, sizeof q) < 0 ||
        conn_send(c, cmd_idle_examine_done, NULL, "EXAMINE %s", q) != MH_OK)
        conn_fail(c, MH_ERR, "%s: cannot send EXAMINE", nc_label(c->nc));
}

/* ----------------------------------------------------------- scheduling */

static void sync_now_cb(struct mh_timer *t, void *arg)
{
    struct imap *im = arg;
    (void)t;
    mh_timer_del(im->ctx, &im->dirty_timer);
    if (im->in_pass) {
        im->pass_again = 1;
        return;
    }
    pass_start(im);
}

static void schedule_dirty(struct imap *im)
{
    if (im->stopping || im->dirty_timer != NULL || im->retry_timer != NULL)
        return;
    im->dirty_timer = mh_timer_add(im->ctx, IMAP_DIRTY_DELAY, 0, sync_now_cb, im);
}

static void poll_cb(struct mh_timer *t, void *arg)
{
    struct imap *im = arg;
    (void)t;
    if (im->in_pass || im->retry_timer != NULL || im->stopping)
        return;
    pass_start(im);
}

/* ------------------------------------------------------------ lifecycle */

static void imap_free(void *state);

static char **copy_list(const struct mh_config *cfg, const char *name, size_t *n_out)
{
    size_t n = mh_cfg_list_len(cfg, name);
    *n_out = 0;
    char **a = mh_calloc(n + 1, sizeof *a);
    if (a == NULL)
        return NULL;
    for (size_t j = 0; j < n; j++) {
        const char *v = mh_cfg_list_item(cfg, name, j);
        /* a trailing '/' means the same subtree */
        size_t len = v != NULL ? strlen(v) : 0;
        while (len > 1 && v[len - 1] == '/')
            len--;
        a[j] = mh_malloc(len + 1);
        if (a[j] == NULL)
            return a;
        memcpy(a[j], v != NULL ? v : "", len);
        a[j][len] = '\0';
        if (strncasecmp(a[j], "INBOX", 5) == 0 && (a[j][5] == '\0' || a[j][5] == '/'))
            memcpy(a[j], "INBOX", 5);
        (*n_out)++;
    }
    return a;
}

static int imap_init(struct mh_plugin_ctx *ctx, const struct mh_config *cfg, void **state_out)
{
    const char *host = mh_cfg_str(cfg, "host"), *username = mh_cfg_str(cfg, "username");
    const char *password = mh_cfg_str(cfg, "password"), *token = mh_cfg_str(cfg, "oauth2_token");
    const char *auth = mh_cfg_str(cfg, "auth"), *tls = mh_cfg_str(cfg, "tls");
    if (host == NULL || *host == '\0' || strpbrk(host, "/@?#[] \t\r\n") != NULL) {
        mh_set_error(ctx, "host: a host name or address is required");
        return MH_EINVAL;
    }
    if (username == NULL || *username == '\0') {
        mh_set_error(ctx, "username: required (account on %s)", host);
        return MH_EINVAL;
    }
    if (auth == NULL)
        auth = "auto";
    if (password != NULL && *password == '\0')
        password = NULL;
    if (token != NULL && *token == '\0')
        token = NULL;
    int bearer = strcmp(auth, "xoauth2") == 0 || strcmp(auth, "oauthbearer") == 0;
    if (bearer && token == NULL) {
        mh_set_error(ctx, "auth: %s needs oauth2_token (account %s on %s)", auth, username, host);
        return MH_EINVAL;
    }
    if (!bearer && password == NULL && token == NULL) {
        mh_set_error(ctx, "password or oauth2_token: one is required (account %s on %s)", username, host);
        return MH_EINVAL;
    }
    if ((strcmp(auth, "login") == 0 || strcmp(auth, "plain") == 0) && password == NULL) {
        mh_set_error(ctx, "auth: %s needs a password (account %s on %s)", auth, username, host);
        return MH_EINVAL;
    }
    struct imap *im = mh_calloc(1, sizeof *im);
    if (im == NULL)
        return MH_ENOMEM;
    im->ctx = ctx;
    im->reqs.next = im->reqs.prev = &im->reqs;
    im->host = mh_strdup(host);
    im->username = mh_strdup(username);
    im->password = password != NULL ? mh_strdup(password) : NULL;
    im->token =
        token != NULL && (bearer || strcmp(auth, "auto") == 0 || password == NULL)
            ? mh_strdup(token)
            : NULL;
    const char *ca = mh_cfg_str(cfg, "ca_file");
    im->ca_file = ca != NULL && *ca != '\0' ? mh_data_path(ctx, ca) : NULL;
    const char *user = mh_cfg_str(cfg, "user");
    im->user = user != NULL && *user != '\0' ? mh_strdup(user) : NULL;
    im->tls = tls == NULL || strcmp(tls, "implicit") == 0 ? NC_TLS_IMPLICIT
              : strcmp(tls, "starttls") == 0              ? NC_TLS_STARTTLS
                                                          : NC_TLS_NONE;
    im->port = (int)mh_cfg_int(cfg, "port");
    if (strcmp(auth, "login") == 0) /* the IMAP LOGIN command: curl 8.2 and later; before, SASL LOGIN */
        im->login_options = mh_strdup(
            curl_version_info(CURLVERSION_NOW)->version_num >= 0x080200 ? "AUTH=+LOGIN" : "AUTH=LOGIN");
    else if (strcmp(auth, "plain") == 0)
        im->login_options = mh_strdup("AUTH=PLAIN");
    else if (strcmp(auth, "xoauth2") == 0)
        im->login_options = mh_strdup("AUTH=XOAUTH2");
    else if (strcmp(auth, "oauthbearer") == 0)
        im->login_options = mh_strdup("AUTH=OAUTHBEARER"); /* RFC 7628 */
    im->exclude = copy_list(cfg, "folders_exclude", &im->n_exclude);
    im->watch = copy_list(cfg, "watch", &im->n_watch);
    im->max_conns = mh_cfg_int(cfg, "max_connections");
    im->server_idle_max = mh_cfg_int(cfg, "server_idle_max");
    if (im->max_conns < 1)
        im->max_conns = 1;
    im->fetch_batch = mh_cfg_int(cfg, "fetch_batch");
    if (im->fetch_batch < 1)
        im->fetch_batch = 500;
    int64_t ms = mh_cfg_duration_ms(cfg, "poll_interval");
    im->poll_interval = ms > 0 ? (double)ms / 1000.0 : 300.0;
    ms = mh_cfg_duration_ms(cfg, "idle_restart");
    im->idle_restart = ms > 0 ? (double)ms / 1000.0 : 1500.0;
    ms = mh_cfg_duration_ms(cfg, "timeout");
    im->timeout = ms > 0 ? (double)ms / 1000.0 : 60.0;
    im->run = RUN_IMPORTING;
    if (im->host == NULL || im->username == NULL || (password != NULL && im->password == NULL) ||
        (ca != NULL && *ca != '\0' && im->ca_file == NULL) ||
        (user != NULL && *user != '\0' && im->user == NULL) || im->exclude == NULL || im->watch == NULL ||
        (strcmp(auth, "auto") != 0 && im->login_options == NULL) ||
        (token != NULL && im->token == NULL && (strcmp(auth, "xoauth2") == 0 || strcmp(auth, "auto") == 0))) {
        imap_free(im);
        return MH_ENOMEM;
    }
    *state_out = im;
    return MH_OK;
}

static int imap_start(void *state)
{
    struct imap *im = state;
    im->started = 1;
    im->state_ok = MH_HOST_HAS(im->ctx->host, state_get) && MH_HOST_HAS(im->ctx->host, state_put);
    if (!im->state_ok)
        mh_log_warn(im->ctx, "%s: this core keeps no sync state: every pass fetches every folder again",
                    im->host);
    im->poll_timer = mh_timer_add(im->ctx, im->poll_interval, im->poll_interval, poll_cb, im);
    if (im->poll_timer == NULL)
        return MH_ENOMEM;
    mh_log_info(im->ctx, "%s: syncing %s@%s:%d (%s)", im->ctx->instance, im->username, im->host,
                im->port > 0                 ? im->port
                : im->tls == NC_TLS_IMPLICIT ? 993
                                             : 143,
                im->tls == NC_TLS_IMPLICIT   ? "TLS"
                : im->tls == NC_TLS_STARTTLS ? "STARTTLS"
                                             : "no TLS");
    pass_start(im);
    return MH_OK;
}

static int all_closed(const struct imap *im)
{
    if (im->sync != NULL || im->put_done != im->put_issued)
        return 0;
    for (size_t j = 0; j < im->n_folders; j++)
        if (im->folders[j]->idle != NULL)
            return 0;
    return 1;
}

static void maybe_stopped(struct imap *im)
{
    if (!im->stopping || im->stopped_sent || !all_closed(im))
        return;
    im->stopped_sent = 1;
    mh_timer_del(im->ctx, &im->stop_timer);
    if (im->in_stop)
        return; /* imap_stop returns MH_OK itself */
    mh_stopped(im->ctx);
}

static void stop_timer_cb(struct mh_timer *t, void *arg)
{
    struct imap *im = arg;
    (void)t;
    mh_timer_del(im->ctx, &im->stop_timer);
    mh_log_info(im->ctx, "%s: the server did not answer LOGOUT in time; closing", im->host);
    conn_free(&im->sync);
    for (size_t j = 0; j < im->n_folders; j++)
        conn_free(&im->folders[j]->idle);
    if (im->put_done != im->put_issued)
        return; /* the last store completion finishes the stop */
    maybe_stopped(im);
}

static void logout(struct iconn **cp)
{
    struct iconn *c = *cp;
    if (c == NULL)
        return;
    if (!c->up) {
        conn_free(cp);
        return;
    }
    if (c->role == ROLE_IDLE && c->phase == IP_IDLING)
        nc_write(c->nc, "DONE\r\n", 6);
    if (conn_send(c, cmd_logout_done, NULL, "LOGOUT") != MH_OK) {
        conn_free(cp);
        return;
    }
    c->logout_sent = 1;
}

static int imap_stop(void *state)
{
    struct imap *im = state;
    if (im->stopping)
        return im->stopped_sent ? MH_OK : MH_PENDING;
    im->stopping = 1;
    im->in_stop = 1;
    im->in_pass = 0;
    im->gen++;
    mh_timer_del(im->ctx, &im->poll_timer);
    mh_timer_del(im->ctx, &im->retry_timer);
    mh_timer_del(im->ctx, &im->dirty_timer);
    if (im->paused_read && im->sync != NULL && im->sync->nc != NULL)
        nc_pause_read(im->sync->nc, 0); /* read the answer to LOGOUT */
    im->paused_read = 0;
    logout(&im->sync);
    for (size_t j = 0; j < im->n_folders; j++) {
        mh_timer_del(im->ctx, &im->folders[j]->idle_retry);
        logout(&im->folders[j]->idle);
    }
    im->in_stop = 0;
    if (all_closed(im)) {
        im->stopped_sent = 1;
        return MH_OK;
    }
    im->stop_timer = mh_timer_add(im->ctx, IMAP_STOP_GRACE, 0, stop_timer_cb, im);
    return MH_PENDING;
}

/* Release a connection's memory: its core handles were cancelled already. */
static void conn_discard(struct iconn **cp)
{
    struct iconn *c = *cp;
    if (c == NULL)
        return;
    *cp = NULL;
    nc_discard(&c->nc);
    imap_parser_free(c->parser);
    while (c->cmds != NULL) {
        struct icmd *n = c->cmds->next;
        mh_free(c->cmds);
        c->cmds = n;
    }
    mh_free(c);
}

static void free_list(char **a, size_t n)
{
    if (a == NULL)
        return;
    for (size_t j = 0; j <= n; j++)
        mh_free(a[j]);
    mh_free(a);
}

static void imap_free(void *state)
{
    struct imap *im = state;
    if (im == NULL)
        return;
    /* handles are the core's and already cancelled; requests it dropped are ours to free */
    conn_discard(&im->sync);
    for (size_t j = 0; j < im->n_folders; j++) {
        conn_discard(&im->folders[j]->idle);
        folder_free(im->folders[j]);
    }
    mh_free(im->folders);
    for (size_t j = 0; j < im->n_listed; j++)
        folder_free(im->listed[j]);
    mh_free(im->listed);
    while (im->reqs.next != NULL && im->reqs.next != &im->reqs)
        req_free(im->reqs.next);
    known_clear(im);
    scan_clear(im);
    free_list(im->exclude, im->n_exclude);
    free_list(im->watch, im->n_watch);
    mh_free(im->caps);
    mh_free(im->error);
    mh_free(im->host);
    mh_free(im->username);
    if (im->password != NULL)
        memset(im->password, 0, strlen(im->password));
    mh_free(im->password);
    if (im->token != NULL)
        memset(im->token, 0, strlen(im->token));
    mh_free(im->token);
    mh_free(im->ca_file);
    mh_free(im->user);
    mh_free(im->login_options);
    mh_free(im);
}

static int imap_sync_now(void *state)
{
    struct imap *im = state;
    if (im->stopping || !im->started)
        return MH_OK;
    if (im->in_pass) {
        im->pass_again = 1;
        return MH_OK;
    }
    mh_timer_del(im->ctx, &im->retry_timer);
    mh_timer_del(im->ctx, &im->dirty_timer);
    pass_start(im);
    return MH_OK;
}

static int imap_status_json(void *state, char **json_out)
{
    struct imap *im = state;
    totals(im);
    double rate = im->run == RUN_IMPORTING ? rate_now(im) : 0.0;
    json_t *eta = im->run == RUN_IMPORTING
                      ? (rate > 0 && im->total >= im->done
                             ? json_integer((json_int_t)((double)(im->total - im->done) / rate + 0.5))
                             : json_null())
                      : json_integer(0);
    json_t *j =
        json_pack("{s:s, s:o, s:I, s:I, s:f, s:o}", "state", run_names[im->run], "folders", folders_json(im),
                  "done", (json_int_t)im->done, "total", (json_int_t)im->total, "rate", rate, "eta", eta);
    if (j != NULL)
        json_object_set_new(j, "error", im->error != NULL ? json_string(im->error) : json_null());
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text == NULL)
        return MH_ENOMEM;
    *json_out = text;
    return MH_OK;
}

static const struct mh_provider_ops imap_ops = {
    .struct_size = sizeof(struct mh_provider_ops),
    .sync_now = imap_sync_now,
    .status_json = imap_status_json,
};

MH_PLUGIN_DEFINE(imap, .kind = MH_KIND_PROVIDER, .name = "imap", .version = "1.0.0",
                 .description = "import and sync an IMAP mailbox (every folder), with IDLE push",
                 .options = imap_options, .init = imap_init, .start = imap_start, .stop = imap_stop,
                 .free = imap_free, .ops = &imap_ops);

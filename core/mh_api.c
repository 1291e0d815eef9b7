/*
 * The control API (docs/api.md, docs/openapi.yaml): libmicrohttpd in
 * external-select mode with epoll, driven by the core's loop.  MHD has no
 * thread of its own: its epoll fd is one mh_io watch, its timeout one
 * mh_timer, and MHD_run() runs on the loop.
 *
 * A request goes through three kinds of calls of the access handler:
 *   the headers call (upload size 0)  -> start(): route, auth header, limits;
 *   the body calls (upload size > 0)  -> consume(): JSON buffer or upload file;
 *   the final call (upload size 0)    -> finish_body(): parse, run the handler.
 * A handler that needs the store suspends the connection and runs a function
 * on the store lane (mh_storeq_call); password hashing runs on the worker
 * pool.  Their completions run on the loop and either start the next step or
 * build the response, then resume the connection and run MHD again.  While a
 * request waits, nothing on the loop touches it, so the store and pool
 * functions may use it freely.
 *
 * An error found before the body was read (no token for an upload, a name
 * taken) is kept until the body has been read and thrown away, so that the
 * client reads the answer instead of a connection reset; except when the
 * body is larger than JSON_MAX (413 at once: such clients send
 * "Expect: 100-continue" and never send the body).
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mh_api.h"
#include "mh_crypto.h"
#include "mh_daemon.h"
#include "mh_hub.h"
#include "mh_log.h"
#include "mh_loop.h"
#include "mh_outbox.h"
#include "mh_pool.h"
#include "mh_rules.h"
#include "mh_search.h"
#include "mh_storeq.h"
#include "mh_util.h"
#include "mh_valid.h"

#define API_PREFIX "/api/v1"
#define JSON_MAX (1024u * 1024u)                     /* largest JSON request body */
#define DISCARD_MAX (64ull * 1024 * 1024)            /* most body bytes read and thrown away */
#define LIST_LIMIT_DEFAULT 100
#define LIST_LIMIT_MAX 1000
#define VERIFY_LIMIT_DEFAULT 1000
#define VERIFY_LIMIT_MAX 10000
#define EXPORT_DEFAULT (8ull * 1024 * 1024)
#define EXPORT_MAX (256ull * 1024 * 1024)
#define LABEL_MAX 100
#define FOLDER_MAX 255
#define SEARCH_QUERY_MAX 1000                        /* bytes of a search query */
#define CONN_TIMEOUT_S 120u
#define CONN_LIMIT 256u

struct req;
typedef void (*step_fn)(struct req *r);

enum body_kind { B_NONE, B_JSON, B_JSON_OPT, B_MBOX };
enum phase { PH_HEADERS, PH_BODY, PH_FINAL };

struct route {
    const char *method;
    const char *pattern; /* segments after /api/v1; '#' is a positive id */
    enum body_kind body;
    int auth;            /* 1: a token is required */
    step_fn handler;     /* runs on the final call, with the body parsed */
};

struct mh_api {
    struct mh_daemon *d;
    struct mh_loop *loop;
    struct mh_storeq *q;
    struct mh_pool *pool;
    char *name, *who, *data_dir;
    int registration_open;
    uint64_t max_upload;
    int port;
    struct MHD_Daemon *mhd;
    struct mh_io *io;
    struct mh_timer *timer;
    struct req *reqs; /* live requests */
    int in_run, run_again, closing;
};

/* An account record, copied out of a store callback. */
struct acct_copy {
    int64_t id, user_id, created;
    char *name, *provider, *settings, *status, *origin;
    unsigned char *secret;
    size_t secret_len;
    int paused;
};

struct acct_list {
    struct acct_copy *v;
    size_t n, cap;
    int oom;
};

struct req {
    struct mh_api *api;
    struct MHD_Connection *conn;
    struct req *prev, *next;
    double t0;
    char method[16];
    char *path;
    const struct route *route;
    int64_t path_id;
    enum phase phase;
    int started, suspended, waiting;
    step_fn then;

    /* the response */
    struct MHD_Response *resp;
    unsigned resp_status, status_sent;
    int resp_failed;

    /* an error from any step; the first one wins */
    unsigned err_status;
    const char *err_code;
    char *err_msg;
    const char *allow; /* for 405 */
    int deferred, no_defer;
    uint64_t discarded;

    /* the request body */
    uint64_t content_length;
    int has_length, has_body;
    char *body;
    size_t body_len, body_cap;
    json_t *in;

    /* an upload (POST /imports) */
    int up_fd, up_keep, up_sync_ok;
    char *up_path;
    uint64_t up_len;
    char up_head[5];

    /* who asks */
    unsigned char auth_hash[32];
    int authed, admin;
    int64_t uid, target;

    /* query parameters */
    int64_t q_user, q_account, q_folder, q_after, q_limit;
    uint64_t q_max_bytes;
    int q_purge;
    char *q_name, *q_folder_name;
    char *q_search, *q_account_name; /* GET /search: the query and ?account=NAME */
    char *q_text;                    /* notifications: ?state=; me/notify: the rules as text */
    int q_all;                       /* notifications: ?all=true (administrators) */
    int64_t q_before;

    /* results */
    json_t *out;
    unsigned ok_status;
    int progress; /* 1: out is an account, 2: out is {"accounts":[...]} */
    char *buf;
    size_t buf_len;
    const char *buf_type;
    int64_t next_after;
    int complete;
    int64_t *changed; /* accounts to report to the daemon */
    size_t n_changed;

    /* users, passwords, tokens */
    char *name, *password, *phc, *phone, *email, *label;
    int has_phone, has_email, has_admin, admin_val, pw_ok;
    int64_t login_uid;
    char token[MH_TOKEN_LEN + 1];
    unsigned char token_hash[32];

    /* accounts */
    char *provider;
    json_t *settings, *pub, *sec, *old_secret;
    int has_settings, has_paused, paused_val;
    int64_t account_id;
};

/* ---------------------------------------------------------------- helpers */

static void wipe_str(char *s)
{
    if (s != NULL)
        mh_wipe(s, strlen(s));
}

static void free_secret(char **s)
{
    wipe_str(*s);
    free(*s);
    *s = NULL;
}

/* Overwrite every string of a JSON value (passwords, sealed secrets) before it is freed. */
static void json_wipe(json_t *j)
{
    if (json_is_string(j)) {
        mh_wipe((char *)json_string_value(j), json_string_length(j));
    } else if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v) json_wipe(v);
    } else if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) json_wipe(v);
    }
}

static void json_wipe_decref(json_t **j)
{
    if (*j != NULL && (*j)->refcount == 1)
        json_wipe(*j);
    json_decref(*j);
    *j = NULL;
}

static char *dup_or_null(const char *s) { return s ? mh_xstrdup(s) : NULL; }

/* A JSON string of UTF-8 text; invalid sequences become U+FFFD.  NULL gives null. */
static json_t *jstr(const char *s)
{
    if (s == NULL)
        return json_null();
    json_t *j = json_string(s);
    if (j != NULL)
        return j;
    size_t n = strlen(s);
    char *o = malloc(3 * n + 1);
    if (o == NULL)
        return json_null();
    size_t k = 0;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        int ok = len > 0 && i + len <= n;
        for (size_t m = 1; ok && m < len; m++)
            ok = (p[i + m] & 0xc0) == 0x80;
        if (ok && len > 1) {
            /* reject overlong forms, surrogates and values above U+10FFFF */
            uint32_t cp = len == 2 ? (c & 0x1fu) : len == 3 ? (c & 0x0fu) : (c & 0x07u);
            for (size_t m = 1; m < len; m++)
                cp = (cp << 6) | (p[i + m] & 0x3fu);
            ok = !((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
                   (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff);
        }
        if (ok) {
            memcpy(o + k, p + i, len);
            k += len;
            i += len;
        } else {
            memcpy(o + k, "\xef\xbf\xbd", 3);
            k += 3;
            i++;
        }
    }
    j = json_stringn(o, k);
    free(o);
    return j ? j : json_null();
}

static json_t *jtime(int64_t t)
{
    if (t <= 0)
        return json_null();
    time_t tt = (time_t)t;
    struct tm tm;
    char buf[40];
    if (gmtime_r(&tt, &tm) == NULL || strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return json_null();
    return json_string(buf);
}

static void set_new(json_t *obj, const char *key, json_t *val)
{
    if (val == NULL)
        val = json_null();
    json_object_set_new(obj, key, val);
}

static int64_t now_s(void) { return (int64_t)time(NULL); }

/* "42" -> 42; anything else (signs, spaces, overflow, 0) -> -1. */
static int64_t parse_id(const char *s, size_t len)
{
    if (len == 0 || len > 18)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v > 0 ? v : -1;
}

/* ------------------------------------------------------------ errors */

static void vfail(struct req *r, unsigned status, const char *code, const char *fmt, va_list ap)
{
    if (r->err_status != 0)
        return; /* the first error wins */
    r->err_status = status;
    r->err_code = code;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    r->err_msg = mh_xstrdup(buf);
}

static void fail(struct req *r, unsigned status, const char *code, const char *fmt, ...) MH_PRINTF(4, 5);
static void fail(struct req *r, unsigned status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(r, status, code, fmt, ap);
    va_end(ap);
}

/* Map a store return code to an error; `what` names the object. */
static void fail_rc(struct req *r, int rc, const char *what)
{
    if (rc == MH_ENOTFOUND)
        fail(r, 404, "not_found", "%s not found", what);
    else if (rc == MH_EEXIST)
        fail(r, 409, "conflict", "%s already exists", what);
    else
        fail(r, 500, "internal", "the store failed (code %d)", rc);
}

/* ---------------------------------------------------------- MHD driving */

static void arm_timer(struct mh_api *a)
{
    if (a->mhd == NULL || a->timer == NULL)
        return;
    MHD_UNSIGNED_LONG_LONG ms = 0;
    if (MHD_get_timeout(a->mhd, &ms) == MHD_YES)
        mh_timer_again(a->timer, (double)ms / 1000.0);
    else
        mh_timer_stop(a->timer);
}

/* Let MHD do whatever is ready; never nested. */
static void kick(struct mh_api *a)
{
    if (a->mhd == NULL)
        return;
    if (a->in_run) {
        a->run_again = 1;
        return;
    }
    a->in_run = 1;
    do {
        a->run_again = 0;
        MHD_run(a->mhd);
    } while (a->run_again);
    a->in_run = 0;
    arm_timer(a);
}

static void io_cb(struct mh_io *io, int fd, int revents, void *arg) { kick(arg); }
static void timer_cb(struct mh_timer *t, void *arg) { kick(arg); }

static void resume(struct req *r)
{
    if (r->suspended) {
        r->suspended = 0;
        MHD_resume_connection(r->conn);
        kick(r->api);
    }
}

/* -------------------------------------------------------------- responses */

static void add_common_headers(struct MHD_Response *resp, const char *ctype)
{
    if (ctype != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
}

/* Takes `data` (malloc'ed) in every case. */
static void set_response(struct req *r, unsigned status, char *data, size_t len, const char *ctype)
{
    if (r->resp != NULL) {
        MHD_destroy_response(r->resp);
        r->resp = NULL;
    }
    struct MHD_Response *resp;
    if (data != NULL)
        resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    else
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (resp == NULL) {
        free(data);
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        status = 500;
        if (resp == NULL) {
            r->resp_failed = 1; /* the handler answers MHD_NO: MHD closes the connection */
            return;
        }
    }
    add_common_headers(resp, ctype);
    r->resp = resp;
    r->resp_status = status;
}

static void set_json_response(struct req *r, unsigned status, json_t *obj)
{
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    if (text == NULL) {
        static const char oom[] = "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
        set_response(r, 500, mh_xstrdup(oom), sizeof oom - 1, "application/json");
        return;
    }
    size_t len = strlen(text);
    /* json_dumps memory is malloc'ed (jansson's default allocator) */
    set_response(r, status, text, len, "application/json");
}

static void set_error_response(struct req *r)
{
    json_t *e = json_object();
    set_new(e, "code", json_string(r->err_code ? r->err_code : "internal"));
    set_new(e, "message", jstr(r->err_msg ? r->err_msg : "")); /* it may quote what the client sent */
    json_t *o = json_object();
    set_new(o, "error", e);
    set_json_response(r, r->err_status, o);
    json_decref(o);
    if (r->resp != NULL && r->err_status == 401)
        MHD_add_response_header(r->resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"mailhub\"");
    if (r->resp != NULL && r->err_status == 405 && r->allow != NULL)
        MHD_add_response_header(r->resp, MHD_HTTP_HEADER_ALLOW, r->allow);
}

static void fill_progress(struct req *r, json_t *acct)
{
    json_t *idj = json_object_get(acct, "id");
    if (!json_is_integer(idj))
        return;
    char *text = mh_daemon_account_progress(r->api->d, (int64_t)json_integer_value(idj));
    json_t *p = NULL;
    if (text != NULL) {
        json_error_t je;
        p = json_loads(text, JSON_DECODE_ANY, &je);
        free(text);
    }
    set_new(acct, "progress", p);
}

/*
 * Build the response from the request's outcome and hand it to MHD (loop
 * thread).  An error before the body was read waits for it (see the top).
 */
static void reply(struct req *r)
{
    if (r->err_status != 0) {
        if (r->phase == PH_HEADERS && r->has_body && !r->no_defer) {
            r->deferred = 1;
            resume(r); /* read and drop the body; the final call answers */
            return;
        }
        set_error_response(r);
    } else if (r->buf != NULL || r->buf_type != NULL) {
        char *data = r->buf;
        r->buf = NULL;
        set_response(r, r->ok_status ? r->ok_status : 200, data, r->buf_len, r->buf_type);
        if (r->resp != NULL && r->next_after >= 0) { /* an export page */
            char v[32];
            snprintf(v, sizeof v, "%" PRId64, r->next_after);
            MHD_add_response_header(r->resp, "Mailhub-Next-After", v);
            MHD_add_response_header(r->resp, "Mailhub-Complete", r->complete ? "1" : "0");
        }
    } else if (r->out != NULL) {
        if (r->progress == 1) {
            fill_progress(r, r->out);
        } else if (r->progress == 2) {
            size_t i;
            json_t *v;
            json_array_foreach(json_object_get(r->out, "accounts"), i, v) fill_progress(r, v);
        }
        set_json_response(r, r->ok_status ? r->ok_status : 200, r->out);
    } else {
        set_response(r, r->ok_status ? r->ok_status : 204, NULL, 0, NULL);
    }
    resume(r);
}

static void fail_reply(struct req *r, unsigned status, const char *code, const char *fmt, ...) MH_PRINTF(4, 5);
static void fail_reply(struct req *r, unsigned status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(r, status, code, fmt, ap);
    va_end(ap);
    reply(r);
}

/* ---------------------------------------------------- store and pool steps */

static void store_done(void *arg, int rc)
{
    struct req *r = arg;
    r->waiting = 0;
    step_fn then = r->then;
    r->then = NULL;
    if (r->api->closing)
        fail(r, 503, "unavailable", "the server is shutting down");
    if (rc != MH_OK) {
        /* the batch did not commit: whatever the step wrote is gone */
        r->up_keep = 0;
        r->n_changed = 0;
        fail(r, 500, "internal", "the store could not commit (code %d)", rc);
    }
    if (r->err_status != 0 || then == NULL)
        reply(r);
    else
        then(r);
}

/* Run fn on the store thread, then `then` (or the reply) on the loop. */
static void call_store(struct req *r, mh_storeq_fn fn, step_fn then)
{
    struct mh_api *a = r->api;
    if (a->closing) {
        fail_reply(r, 503, "unavailable", "the server is shutting down");
        return;
    }
    r->then = then;
    r->waiting = 1;
    int rc = mh_storeq_call(a->q, a, fn, store_done, r);
    if (rc != MH_PENDING && rc != MH_OK) {
        r->waiting = 0;
        r->then = NULL;
        fail_reply(r, 503, "unavailable", "the store is not available (code %d)", rc);
    }
}

static void pool_done(void *arg, int rc)
{
    struct req *r = arg;
    r->waiting = 0;
    step_fn then = r->then;
    r->then = NULL;
    if (rc == MH_ECANCELED || r->api->closing)
        fail(r, 503, "unavailable", "the server is shutting down");
    if (r->err_status != 0 || then == NULL)
        reply(r);
    else
        then(r);
}

static void call_pool(struct req *r, mh_work_fn fn, step_fn then)
{
    struct mh_api *a = r->api;
    if (a->closing) {
        fail_reply(r, 503, "unavailable", "the server is shutting down");
        return;
    }
    r->then = then;
    r->waiting = 1;
    int rc = mh_pool_submit(a->pool, a, fn, pool_done, r);
    if (rc != MH_OK) {
        r->waiting = 0;
        r->then = NULL;
        fail_reply(r, 503, "unavailable", "no worker is available (code %d)", rc);
    }
}

/* Tell the daemon about changed accounts, then reply (loop). */
static void changed_then_reply(struct req *r)
{
    for (size_t i = 0; i < r->n_changed; i++)
        mh_daemon_account_changed(r->api->d, r->changed[i]);
    reply(r);
}

static void add_changed(struct req *r, int64_t id)
{
    int64_t *nv = realloc(r->changed, (r->n_changed + 1) * sizeof *nv);
    if (nv == NULL)
        return;
    r->changed = nv;
    r->changed[r->n_changed++] = id;
}

/* ------------------------------------------------- store-thread records */

struct user_copy {
    int found;
    struct mh_user_rec rec; /* its strings point into the copies below */
    char *name, *hash, *phone, *email;
    unsigned char *key;
};

static int user_copy_cb(void *arg, const struct mh_user_rec *u)
{
    struct user_copy *c = arg;
    c->found = 1;
    c->rec = *u;
    c->rec.struct_size = sizeof c->rec;
    c->rec.name = c->name = dup_or_null(u->name);
    c->rec.password_hash = c->hash = dup_or_null(u->password_hash);
    c->rec.phone = c->phone = dup_or_null(u->phone);
    c->rec.email = c->email = dup_or_null(u->email);
    c->key = NULL;
    if (u->data_key != NULL && u->data_key_len > 0) {
        c->key = malloc(u->data_key_len);
        if (c->key == NULL)
            abort();
        memcpy(c->key, u->data_key, u->data_key_len);
    }
    c->rec.data_key = c->key;
    return 1;
}

static void user_copy_clear(struct user_copy *c)
{
    free(c->name);
    free_secret(&c->hash);
    free(c->phone);
    free(c->email);
    if (c->key != NULL)
        mh_wipe(c->key, c->rec.data_key_len);
    free(c->key);
    memset(c, 0, sizeof *c);
}

/* 1 found, 0 not, < 0 store error. */
static int st_user_get(struct mh_hub *h, int64_t id, const char *name, struct user_copy *c)
{
    memset(c, 0, sizeof *c);
    int rc = mh_hub_ops(h)->user_get(mh_hub_state(h), id, id > 0 ? NULL : name, user_copy_cb, c);
    if (rc < 0) {
        user_copy_clear(c);
        return rc;
    }
    return c->found;
}

static void acct_copy_clear(struct acct_copy *c)
{
    free(c->name);
    free(c->provider);
    free(c->settings);
    free(c->status);
    free(c->origin);
    free(c->secret);
    memset(c, 0, sizeof *c);
}

static int acct_list_cb(void *arg, const struct mh_account_rec *a)
{
    struct acct_list *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 8;
        struct acct_copy *nv = realloc(l->v, cap * sizeof *nv);
        if (nv == NULL) {
            l->oom = 1;
            return 1;
        }
        l->v = nv;
        l->cap = cap;
    }
    struct acct_copy *c = &l->v[l->n++];
    memset(c, 0, sizeof *c);
    c->id = a->id;
    c->user_id = a->user_id;
    c->created = a->created;
    c->name = mh_xstrdup(a->name ? a->name : "");
    c->provider = mh_xstrdup(a->provider ? a->provider : "");
    c->settings = mh_xstrdup(a->settings ? a->settings : "{}");
    c->status = mh_xstrdup(a->status ? a->status : "ok");
    c->origin = mh_xstrdup(a->origin ? a->origin : "api");
    c->paused = a->paused;
    if (a->secret != NULL && a->secret_len > 0) {
        c->secret = malloc(a->secret_len);
        if (c->secret == NULL)
            abort();
        memcpy(c->secret, a->secret, a->secret_len);
        c->secret_len = a->secret_len;
    }
    return 0;
}

static void acct_list_clear(struct acct_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        acct_copy_clear(&l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* One account of user_id by id: 1 and *out (to clear), 0 none, < 0 store error. */
static int st_account_get(struct mh_hub *h, int64_t user_id, int64_t id, const char *name, struct acct_copy *out)
{
    struct acct_list l = {0};
    int rc = mh_hub_ops(h)->account_get(mh_hub_state(h), user_id, id, id > 0 ? NULL : name, acct_list_cb, &l);
    if (rc < 0 || l.oom) {
        acct_list_clear(&l);
        return rc < 0 ? rc : MH_ENOMEM;
    }
    /* a store must scope by user; check anyway (tenant isolation) */
    if (l.n == 0 || l.v[0].user_id != user_id) {
        acct_list_clear(&l);
        return 0;
    }
    *out = l.v[0];
    for (size_t i = 1; i < l.n; i++)
        acct_copy_clear(&l.v[i]);
    free(l.v);
    return 1;
}

/* The sealed secret JSON of an account, opened (store thread); NULL if none or unreadable. */
static json_t *st_open_secret(struct mh_hub *h, const struct acct_copy *a, int *unreadable)
{
    if (unreadable != NULL)
        *unreadable = 0;
    if (a->secret == NULL || a->secret_len == 0)
        return NULL;
    unsigned char *pt = NULL;
    size_t len = 0;
    json_t *j = NULL;
    if (mh_hub_account_unseal(h, a->user_id, a->name, a->secret, a->secret_len, &pt, &len) == 0) {
        json_error_t je;
        j = json_loadb((const char *)pt, len, 0, &je);
        if (!json_is_object(j)) {
            json_decref(j);
            j = NULL;
        }
    }
    if (j == NULL && unreadable != NULL)
        *unreadable = 1;
    if (pt != NULL) {
        mh_wipe(pt, len);
        free(pt);
    }
    return j;
}

static int cmp_json_str(const void *x, const void *y)
{
    return strcmp(json_string_value(*(json_t *const *)x), json_string_value(*(json_t *const *)y));
}

/* ["password", "smtp.password"]: the names of the secret options, sorted. */
static json_t *secret_names(const json_t *sec)
{
    json_t *arr = json_array();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)sec, k, v) {
        if (json_is_object(v)) {
            const char *k2;
            json_t *v2;
            json_object_foreach(v, k2, v2) {
                char *n = mh_asprintf("%s.%s", k, k2);
                if (n != NULL)
                    json_array_append_new(arr, jstr(n));
                free(n);
            }
        } else {
            json_array_append_new(arr, jstr(k));
        }
    }
    size_t n = json_array_size(arr);
    json_t **items = n ? malloc(n * sizeof *items) : NULL;
    if (items == NULL)
        return arr;
    for (size_t i = 0; i < n; i++)
        items[i] = json_incref(json_array_get(arr, i));
    qsort(items, n, sizeof *items, cmp_json_str);
    json_array_clear(arr);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, items[i]);
    free(items);
    return arr;
}

static int folder_json_cb(void *arg, const struct mh_folder_rec *f)
{
    json_t *arr = arg;
    json_t *o = json_object();
    set_new(o, "id", json_integer(f->id));
    set_new(o, "name", jstr(f->name ? f->name : ""));
    set_new(o, "uidvalidity", json_integer((json_int_t)f->uidvalidity));
    set_new(o, "uidnext", json_integer((json_int_t)f->uidnext));
    set_new(o, "highestmodseq", json_integer((json_int_t)f->highestmodseq));
    set_new(o, "messages", json_integer((json_int_t)f->messages));
    set_new(o, "bytes", json_integer((json_int_t)f->bytes));
    json_array_append_new(arr, o);
    return 0;
}

/* The account object; "progress" is filled on the loop (reply). */
static json_t *st_account_json(struct mh_hub *h, const struct acct_copy *a)
{
    json_t *o = json_object();
    set_new(o, "id", json_integer(a->id));
    set_new(o, "user_id", json_integer(a->user_id));
    set_new(o, "name", jstr(a->name));
    set_new(o, "provider", jstr(a->provider));
    json_error_t je;
    json_t *set = json_loads(a->settings, 0, &je);
    if (!json_is_object(set)) {
        json_decref(set);
        set = json_object();
    }
    set_new(o, "settings", set);
    int unreadable = 0;
    json_t *sec = st_open_secret(h, a, &unreadable);
    set_new(o, "secrets", secret_names(sec));
    json_wipe_decref(&sec);
    if (unreadable)
        mh_logf(MH_LOG_WARN, "api", "account %" PRId64 ": its stored credentials do not open", a->id);
    set_new(o, "paused", json_boolean(a->paused));
    set_new(o, "status", jstr(a->status));
    set_new(o, "origin", jstr(a->origin));
    set_new(o, "created", jtime(a->created));
    set_new(o, "progress", json_null());
    json_t *folders = json_array();
    mh_hub_ops(h)->folder_list(mh_hub_state(h), a->user_id, a->id, folder_json_cb, folders);
    set_new(o, "folders", folders);
    return o;
}

static int count_ext_cb(void *arg, uint64_t allocation, const char *reason, int64_t when)
{
    if (reason != NULL && strcmp(reason, "extended") == 0)
        (*(int64_t *)arg)++;
    return 0;
}

static json_t *st_user_json(struct mh_hub *h, const struct user_copy *u)
{
    uint64_t alloc = 0, usage = 0, count = 0;
    mh_hub_quota(h, u->rec.id, &alloc, &usage, &count);
    int64_t ext = 0;
    mh_hub_ops(h)->quota_history(mh_hub_state(h), u->rec.id, count_ext_cb, &ext);
    json_t *o = json_object();
    set_new(o, "id", json_integer(u->rec.id));
    set_new(o, "name", jstr(u->rec.name));
    set_new(o, "admin", json_boolean(u->rec.admin));
    set_new(o, "phone", jstr(u->rec.phone));
    set_new(o, "email", jstr(u->rec.email));
    set_new(o, "created", jtime(u->rec.created));
    json_t *q = json_object();
    set_new(q, "allocation", json_integer((json_int_t)alloc));
    set_new(q, "usage", json_integer((json_int_t)usage));
    set_new(q, "messages", json_integer((json_int_t)count));
    set_new(q, "extensions", json_integer(ext));
    set_new(o, "quota", q);
    return o;
}

/* The user object of user `id`, or an error on r. */
static json_t *st_user_json_id(struct mh_hub *h, struct req *r, int64_t id)
{
    struct user_copy u;
    int rc = st_user_get(h, id, NULL, &u);
    if (rc < 0) {
        fail_rc(r, rc, "user");
        return NULL;
    }
    if (rc == 0) {
        fail(r, 404, "not_found", "no user %" PRId64, id);
        return NULL;
    }
    json_t *o = st_user_json(h, &u);
    user_copy_clear(&u);
    return o;
}

/* ------------------------------------------------- authentication (store) */

/*
 * Resolve the bearer token to its user (once per request), and the user the
 * request acts on: the token's, or ?user= for an administrator.  0 and an
 * error on r when it fails.
 */
static int st_auth(struct mh_hub *h, struct req *r)
{
    if (r->authed)
        return 1;
    const struct mh_store_ops *ops = mh_hub_ops(h);
    int64_t uid = 0;
    int rc = ops->token_get(mh_hub_state(h), r->auth_hash, now_s(), &uid);
    if (rc < 0) {
        fail_rc(r, rc, "token");
        return 0;
    }
    if (rc == 0 || uid <= 0) {
        fail(r, 401, "unauthorized", "unknown or expired token");
        return 0;
    }
    struct user_copy u;
    rc = st_user_get(h, uid, NULL, &u);
    if (rc <= 0) {
        if (rc < 0)
            fail_rc(r, rc, "user");
        else
            fail(r, 401, "unauthorized", "the token's user no longer exists");
        return 0;
    }
    r->uid = uid;
    r->admin = u.rec.admin != 0;
    user_copy_clear(&u);
    r->target = uid;
    if (r->q_user > 0 && r->q_user != uid) {
        if (!r->admin) {
            fail(r, 403, "forbidden", "only an administrator may act for another user (?user=)");
            return 0;
        }
        rc = st_user_get(h, r->q_user, NULL, &u);
        user_copy_clear(&u);
        if (rc <= 0) {
            if (rc < 0)
                fail_rc(r, rc, "user");
            else
                fail(r, 404, "not_found", "no user %" PRId64, r->q_user);
            return 0;
        }
        r->target = r->q_user;
    }
    r->authed = 1;
    return 1;
}

/* A user may see themselves; an administrator anyone.  Another user's record is 404. */
static int visible_user(struct req *r, int64_t id)
{
    if (id == r->uid || r->admin)
        return 1;
    fail(r, 404, "not_found", "no user %" PRId64, id);
    return 0;
}

static int require_admin(struct req *r)
{
    if (r->admin)
        return 1;
    fail(r, 403, "forbidden", "this needs the administrator role");
    return 0;
}

/* ------------------------------------------------------ request bodies */

static const char *in_str(struct req *r, const char *key, int required, int *present)
{
    json_t *v = json_object_get(r->in, key);
    if (present != NULL)
        *present = v != NULL;
    if (v == NULL || json_is_null(v)) {
        if (required)
            fail(r, 400, "bad_request", "missing field '%s'", key);
        return NULL;
    }
    if (!json_is_string(v)) {
        fail(r, 400, "bad_request", "field '%s' must be a string", key);
        return NULL;
    }
    return json_string_value(v);
}

static int in_bool(struct req *r, const char *key, int *present)
{
    json_t *v = json_object_get(r->in, key);
    *present = v != NULL;
    if (v == NULL)
        return 0;
    if (!json_is_boolean(v)) {
        fail(r, 400, "bad_request", "field '%s' must be true or false", key);
        *present = 0;
        return 0;
    }
    return json_is_true(v);
}

/* Every key of the body must be in `allowed` (NULL-terminated). */
static int only_keys(struct req *r, const char *const *allowed)
{
    const char *k;
    json_t *v;
    json_object_foreach(r->in, k, v) {
        int ok = 0;
        for (const char *const *p = allowed; *p && !ok; p++)
            ok = strcmp(*p, k) == 0;
        if (!ok) {
            fail(r, 400, "bad_request", "unknown field '%s'", k);
            return 0;
        }
    }
    return 1;
}

static int take_name(struct req *r, const char *key)
{
    const char *s = in_str(r, key, 1, NULL);
    if (s == NULL)
        return 0;
    if (!mh_valid_name(s)) {
        fail(r, 400, "invalid_name",
             "'%s' must be 1..64 characters of A-Z a-z 0-9 . _ - @ +, not starting with '.' or '-'", key);
        return 0;
    }
    r->name = mh_xstrdup(s);
    return 1;
}

static int take_password(struct req *r, int required)
{
    int present = 0;
    const char *s = in_str(r, "password", required, &present);
    if (s == NULL)
        return r->err_status == 0;
    if (strlen(s) < 8) {
        fail(r, 400, "weak_password", "the password must have at least 8 characters");
        return 0;
    }
    if (strlen(s) > 1024) {
        fail(r, 400, "bad_request", "the password is too long (1024 bytes at most)");
        return 0;
    }
    r->password = mh_xstrdup(s);
    return 1;
}

/* phone and email: absent (unchanged), null (cleared) or a value. */
static int take_contact(struct req *r)
{
    json_t *p = json_object_get(r->in, "phone");
    if (p != NULL) {
        r->has_phone = 1;
        if (json_is_string(p)) {
            char e164[17];
            if (mh_normalize_e164(json_string_value(p), e164) != 0) {
                fail(r, 400, "invalid_phone",
                     "the phone number must be in international E.164 form, e.g. +8613800138000");
                return 0;
            }
            r->phone = mh_xstrdup(e164);
        } else if (!json_is_null(p)) {
            fail(r, 400, "bad_request", "field 'phone' must be a string or null");
            return 0;
        }
    }
    json_t *e = json_object_get(r->in, "email");
    if (e != NULL) {
        r->has_email = 1;
        if (json_is_string(e)) {
            if (!mh_valid_email(json_string_value(e))) {
                fail(r, 400, "invalid_email", "the e-mail address must look like name@example.com");
                return 0;
            }
            r->email = mh_xstrdup(json_string_value(e));
        } else if (!json_is_null(e)) {
            fail(r, 400, "bad_request", "field 'email' must be a string or null");
            return 0;
        }
    }
    return 1;
}

static int take_label(struct req *r)
{
    const char *s = in_str(r, "label", 0, NULL);
    if (r->err_status)
        return 0;
    if (s != NULL) {
        if (strlen(s) > LABEL_MAX) {
            fail(r, 400, "bad_request", "the label is too long (%d bytes at most)", LABEL_MAX);
            return 0;
        }
        r->label = mh_xstrdup(s);
    }
    return 1;
}

/* ------------------------------------------------------- query strings */

static const char *qarg(struct req *r, const char *key)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

/* An integer parameter in [min, max], def when absent.  0, or -1 and an error. */
static int q_int(struct req *r, const char *key, int64_t min, int64_t max, int64_t def, int64_t *out)
{
    const char *s = qarg(r, key);
    if (s == NULL) {
        *out = def;
        return 0;
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno != 0 || v < min || v > max) {
        fail(r, 400, "bad_request", "query parameter '%s' must be an integer in %" PRId64 "..%" PRId64, key, min,
             max);
        return -1;
    }
    *out = v;
    return 0;
}

static int q_bool(struct req *r, const char *key, int *out)
{
    const char *s = qarg(r, key);
    *out = 0;
    if (s == NULL || strcmp(s, "false") == 0 || strcmp(s, "0") == 0 || strcmp(s, "no") == 0)
        return 0;
    if (*s == '\0' || strcmp(s, "true") == 0 || strcmp(s, "1") == 0 || strcmp(s, "yes") == 0) {
        *out = 1;
        return 0;
    }
    fail(r, 400, "bad_request", "query parameter '%s' must be true or false", key);
    return -1;
}

/* --------------------------------------------------------------- health */

static void h_health(struct req *r)
{
    r->out = json_pack("{ssss}", "status", "ok", "version", PACKAGE_VERSION);
    reply(r);
}

/* --------------------------------------------------- register and login */

static void w_hash(void *arg)
{
    struct req *r = arg;
    r->phc = mh_password_hash(r->password);
}

/* Login: compare; an unknown user costs the same (a hash is computed and thrown away). */
static void w_verify(void *arg)
{
    struct req *r = arg;
    if (r->phc != NULL) {
        r->pw_ok = mh_password_verify(r->phc, r->password) == 1;
    } else {
        char *x = mh_password_hash(r->password);
        if (x != NULL)
            wipe_str(x);
        free(x);
        r->pw_ok = 0;
    }
}

static int new_token(struct req *r)
{
    if (mh_token_new(r->token) != 0) {
        fail(r, 500, "internal", "cannot generate a token");
        return 0;
    }
    mh_sha256(r->token, strlen(r->token), r->token_hash);
    return 1;
}

static void st_name_free(struct mh_hub *h, void *arg)
{
    struct req *r = arg;
    if (r->route->auth && !(st_auth(h, r) && require_admin(r)))
        return;
    struct user_copy u;
    int rc = st_user_get(h, 0, r->name, &u);
    user_copy_clear(&u);
    if (rc < 0)
        fail_rc(r, rc, "user");
    else if (rc > 0)
        fail(r, 409, "conflict", "the name '%s' is taken", r->name);
}

/* Create the user of r (name, phc, phone, email, admin_val); MH_OK and *id, or an error on r. */
static int st_create_user(struct mh_hub *h, struct req *r, int64_t *id)
{
    int rc = mh_hub_user_create(h, r->name, r->phc, r->admin_val, r->phone, r->email, id);
    if (rc == MH_EEXIST)
        fail(r, 409, "conflict", "the name '%s' is taken", r->name);
    else if (rc != MH_OK)
        fail_rc(r, rc, "user");
    return rc;
}

static void st_register(struct mh_hub *h, void *arg)
{
    struct req *r = arg;
    int64_t id = 0;
    if (st_create_user(h, r, &id) != MH_OK)
        return;
    int rc = mh_hub_ops(h)->token_put(mh_hub_state(h), id, r->token_hash, "register", 0);
    if (rc != MH_OK) {
        fail_rc(r, rc, "token");
        return;
    }
    json_t *u = st_user_json_id(h, r, id);
    if (u == NULL)
        return;
    r->out = json_object();
    set_new(r->out, "user", u);
    set_new(r->out, "token", json_string(r->token));
    r->ok_status = 201;
}

static void register_create(struct req *r)
{
    if (r->phc == NULL) {
        fail_reply(r, 500, "internal", "cannot hash the password");
        return;
    }
    if (!new_token(r)) {
        reply(r);
        return;
    }
    call_store(r, st_register, NULL);
}

static void register_hash(struct req *r) { call_pool(r, w_hash, register_create); }

static void h_register(struct req *r)
{
    static const char *const keys[] = {"name", "password", "phone", "email", NULL};
    if (!r->api->registration_open) {
        fail_reply(r, 403, "forbidden", "registration is closed: ask an administrator for an account");
        return;
    }
    if (!only_keys(r, keys) || !take_name(r, "name") || !take_password(r, 1) || !take_contact(r)) {
        reply(r);
        return;
    }
    call_store(r, st_name_free, register_hash);
}

static void st_login_find(struct mh_hub *h, void *arg)
{
    struct req *r = arg;
    struct user_copy u;
    int rc = st_user_get(h, 0, r->name, &u);
    if (rc < 0) {
        fail_rc(r, rc, "user");
        return;
    }
    if (rc > 0 && u.rec.password_hash != NULL) {
        r->phc = mh_xstrdup(u.rec.password_hash);
        r->login_uid = u.rec.id;
    }
    user_copy_clear(&u);
}

static void st_login_token(struct mh_hub *h, void *arg)
{
    struct req *r = arg;
    int rc = mh_hub_ops(h)->token_put(mh_hub_state(h), r->login_uid, r->token_hash, r->label ? r->label : "login",
                                      0);
    if (rc != MH_OK) {
        fail_rc(r, rc, "token");
        return;
    }
    json_t *u = st_user_json_id(h, r, r->login_uid);
    if (u == NULL)
        return;
    r->out = json_object();
    set_new(r->out, "token", json_string(r->token));
    set_new(r->out, "user", u);
}

static void login_issue(struct req *r)
{
    if (!r->pw_ok || r->login_uid <= 0) {
        fail_reply(r, 401, "unauthorized", "wrong user name or password");
        return;
    }
    if (!new_token(r)) {
        reply(r);
        return;
    }
    call_store(r, st_login_token, NULL);
}

static void login_verify(struct req *r) { call_pool(r, w_verify, login_issue); }

static void h_login(struct req *r)
{
    static const char *const keys[] = {"name", "password", "label", NULL};
    if (!only_keys(r, keys)) {
        reply(r);
        return;
    }
    const char *name = in_str(r, "name", 1, NULL);
    const char *pw = name ? in_str(r, "password", 1, NULL) : NULL;
    if (name == NULL || pw == NULL || !take_label(r)) {
        reply(r);
        return;
    }
    if (strlen(pw) > 1024) {
        fail_reply(r, 401, "unauthorized", "wrong user name or password");
        return;
    }
    r->name = mh_xstrdup(name);
    r->password = mh_xstrdup(pw);
    call_store(r, st_login_find, login_verify);
}

static void st_logout(struct mh_hub *h, void *arg)
{
    struct req *r = arg;
    if (!st_auth(h, r))
        return;
    int rc = mh_hub_ops(h)->token_delete(mh_hub_state(h), r->auth_hash);
    if (rc != MH_OK && rc != MH_ENOTFOUND)
        fail_rc(r, rc, "token");
    r->ok_status = 204;
}

static void h_logout(struct req *r) { call_store(r, st_logout, NULL); }

static void st_me(struct mh_hub *h, void *arg)
{
    struct req *r = arg;
    if (st_auth(h, r))
        r->out = st_user_json_id(h, r, r->uid);
}

static void h_me(struct req *r) { call_store(r, st_me, NULL); }

/* ------------------------------------------------------------------ users */

struct user_list_ctx {
    struct mh_hub *h;
    int64_t *ids;
    size_t n, cap;
};

static int user_ids_cb(void *arg, const struct mh_user_rec *u)
{
    struct user_list_ctx *c = arg;
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        int64_t *nv = realloc(c->ids, cap * sizeof *nv);
        if (nv == NULL)
            return 1;
        c->ids = nv;
        c->cap = cap;
    }
    c->ids[c->n++] = u->id;
    return 0;
}

static void st_users_list(struct mh_hub *h, void *arg)
{
    struct req *r = arg;
    if (!st_auth(h, r) || !require_admin(r))
        return;
    struct user_list_ctx c = {.h = h};
    int rc = mh_hub_ops(h)->user_list(mh_hub_state(h), user_ids_cb, &c);
    if (rc < 0) {
        free(c.ids);
        fail_rc(r, rc, "user");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < c.n; i++) {
        struct user_copy u;
        if (st_user_get(h, c.ids[i], NULL, &u) > 0)
            json_array_append_new(arr, st_user_json(h, &u));
        user_copy_clear(&u);
    }
    free(c.ids);
    r->out = json_object();
    set_new(r->out, "users", arr);
}

static void h_users_list(struct req *r) { call_store(r, st_users_list, NULL); }

static void st_users_create(struct mh_hub *h, void *arg)
{
    struct req *r = arg;
    int64_t id = 0;
    if (st_create_user(h, r, &id) != MH_OK)
        return;
    r->out = st_user_json_id(h, r, id);
    r->ok_status = 201;
}

static void users_create_do(struct req *r)
{
    if (r->password != NULL && r->phc == NULL) {
        fail_reply(r, 500, "internal", "cannot hash the password");
        return;
    }
    call_store(r, st_users_create, NULL);
}

static void users_create_hash(struct req *r)
{
    if (r->password != NULL)
        call_pool(r, w_hash, users_create_do);
    else
        users_create_do(r);
}

static void h_users_create(struct req *r)
{
    static const char *const keys[] = {"name", "password", "admin", "phone", "email", NULL};
    int has_admin = 0;
    if (only_keys(r, keys) && take_name(r, "name") && take_password(r, 0) && take_contact(r))
        r->admin_val = in_bool(r, "admin", &has_admin);
    if (r->err_status) {
        reply(r);
        return;
    }
    call_store(r, st_name_free, users_create_hash);
}

static void st_user_get_h(struct mh_hub *h, void *arg)
{
    struct req *r = arg;
    if (st_auth(h, r) && visible_user(r, r->path_id))
        r->out = st_user_json_id(h, r, r->path_id);
}

static void h_user_get(struct req *r) { call_store(r, st_user_get_h, NULL); }

/* The checks of PATCH /users/{id} that come before any work. */
static int st_user_patch_allowed(struct mh_hub *h, struct req *r)
{
    if (!st_auth(h, r) || !visible_user(r, r->path_id))
        return 0;
    if (r->has_admin && !r->admin) {
        fail(r, 403, "forbidden", "only an administrator may change the administrator role");
        return 0;
    }
    if (r->has_admin && !r->admin_val && r->path_id == r->uid) {
        fail(r, 409, "conflict", "you cannot remove your own administrator role");
        return 0;
    }
    return 1;
}

static void st_user_patch_check(struct mh_hub *h, void *arg)
{
    struct req *r = arg;
    if (!st_user_patch_allowed(h, r))
        return;
    struct user_copy u;
    int rc = st_user_get(h, r->path_id, NULL, &u);
    user_copy_clear(&u);
    if (rc < 0)
        fail_rc(r, rc, "user");
    else if (rc == 0)
        fail(r, 404, "not_found", "no user %" PRId64, r->path_id);
}

static void st_user_patch(struct mh_hub *h, void *arg)
{
    struct req *r = arg;
    if (!st_user_patch_allowed(h, r))
        return;
    struct user_copy u;
    int rc = st_user_get(h, r->path_id, NULL, &u);
    if (rc <= 0) {
        if (rc < 0)
            fail_rc(r, rc, "user");
        else
            fail(r, 404, "not_found", "no user %" PRId64, r->path_id);
        return;
    }
    if (r->has_phone)
        u.rec.phone = r->phone;
    if (r->has_email)
        u.rec.email = r->email;
    if (r->has_admin)
        u.rec.admin = r->admin_val;
    if (r->phc != NULL)
        u.rec.password_hash = r->phc;
    rc = MH_OK;
    if (r->has_phone || r->has_email || r->has_admin || r->phc != NULL)
        rc = mh_hub_ops(h)->user_put(mh_hub_state(h), &u.rec);
    if (rc != MH_OK)
        fail_rc(r, rc, "user");
    else
        r->out = st_user_json(h, &u);
    user_copy_clear(&u);
}

static void user_patch_do(struct req *r)
{
    if (r->phc == NULL) {
        fail_reply(r, 500, "internal", "cannot hash the password");
        return;
    }
    call_store(r, st_user_patch, NULL);
}

static void user_patch_hash(struct req *r) { call_pool(r, w_hash, user_patch_do); }

static void h_user_patch(struct req *r)
{
    static const char *const keys[] = {"phone", "email", "password", "admin", NULL};
    if (only_keys(r, keys) && take_contact(r) && take_password(r, 0))
        r->admin_val = in_bool(r, "admin", &r->has_admin);
    if (r->err_status) {
        reply(r);
        return;
    }
    if (r->password != NULL)
        call_store(r, st_user_patch_check, user_patch_hash);
    else
        call_store(r, st_user_patch, NULL);
}

/* Remove a user's upload directory (store thread: it may block). */
static void remove_import_dir(const char *data_dir, int64_t uid)
{
    char *dir = mh_asprintf("%s/imports/%" PRId64, data_dir, uid);
    if (dir == NULL)
        return;
    DIR *dp = opendir(dir);
    if (dp != NULL) {
        struct dirent *e;
        while ((e = readdir(dp)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char *p = mh_asprintf("%s/%s", dir, e->d_name);
            if (p != NULL)
                unlink(p);
            free(p);
        }
        closedir(dp);
        rmdir(dir);
    }
    free(dir);
}

static void st_user_delete(struct mh_hub *h, void *arg)
{
    struct req *r = arg;
    if (!st_auth(h, r) || !require_admin(r))
        return;
    if (r->path_id == r->uid) {
        fail(r, 409, "conflict", "you cannot delete your own user");
        return;
    }
    const struct mh_store_ops *ops = mh_hub_ops(h);
    struct acct_list l = {0};
    ops->account_list(mh_hub_state(h), r->path_id, acct_list_cb, &l);
    int rc = ops->user_delete(mh_hub_state(h), r->path_id);
    if (rc != MH_OK) {
        acct_list_clear(&l);
        if (rc == MH_ENOTFOUND)
            fail(r, 404, "not_found", "no user %" PRId64, r->path_id);
        else
            fail_rc(r, rc, "user");
        return;
    }
    mh_hub_forget_accounting(h); /* usage and cached records of the deleted user */
    for (size_t i = 0; i < l.n; i++)
        if (l.v[i].user_id == r->path_id)
            add_changed(r, l.v[i].id);
    acct_list_clear(&l);
    remove_import_dir(r->api->data_dir, r->path_id);
    r->ok_status = 204;
}

static void h_user_delete(struct req *r) { call_store(r, st_user_delete, changed_then_reply); }

static int quota_hist_cb(void *arg, uint64_t allocation, const char *reason, int64_t when)
{
    json_t *o = json_object();
    set_new(o, "allocation", json_integer((json_int_t)allocation));
    set_new(o, "reason", jstr(reason ? reason : ""));
    set_new(o, "time", jtime(when));
    json_array_append_new(arg, o);
    return 0;
}

static void st_user_quota(struct mh_hub *h, void *arg)
{
    struct req *r = arg;
    if (!st_auth(h, r) || !visible_user(r, r->path_id))
        return;
    uint64_t alloc = 0, usage = 0, count = 0;
    int rc = mh_hub_quota(h, r->path_id, &alloc, &usage, &count);
    if (rc != MH_OK) {
        if (rc == MH_ENOTFOUND)
            fail(r, 404, "not_found", "no user %" PRId64, r->path_id);
        else
            fail_rc(r, rc, "quota");
        return;
    }
    json_t *hist = json_array();
    mh_hub_ops(h)->quota_history(mh_hub_state(h), r->path_id, quota_hist_cb, hist);
    int64_t ext = 0;
    size_t i;
    json_t *v;
    json_array_foreach(hist, i, v) {
        const char *reason = json_string_value(json_object_get(v, "reason"));
        if (reason != NULL && strcmp(reason, "extended") == 0)
            ext++;
    }
    r->out = json_object();
    set_new(r->out, "allocation", json_integer((json_int_t)alloc));
    set_new(r->out, "usage", json_integer((json_int_t)usage));
    set_new(r->out, "messages", json_integer((json_int_t)count));
    set_new(r->out, "extensions", json_integer(ext));
    set_new(r->out, "history", hist);
}

static void h_user_quota(struct req *r) { call_store(r, st_user_quota, NULL); }

/* ----------------------------------------------------------------- tokens */

static void st_tokens(struct mh_hub *h, void *arg)
{
    struct req *r = arg;
    if (!st_auth(h, r))
        return;
    int rc = mh_hub_ops(h)->token_put(mh_hub_state(h), r->uid, r->token_hash, r->label ? r->label : "api", 0);
    if (rc != MH_OK) {
        fail_rc(r, rc, "token");
        return;
    }
    r->out = json_object();
    set_new(r->out, "token", json_string(r->token));
    r->ok_status = 201;
}

static void h_tokens(struct req *r)
{
    static const char *const keys[] = {"label", NULL};
    if ((r->in != NULL && (!only_keys(r, keys) || !take_label(r))) || !new_token(r)) {
        reply(r);
        return;
    }
    call_store(r, st_tokens, NULL);
}

/* --------------------------------------------------------------- accounts */

/* A path with no "." or ".." component. */
static int path_is_plain(const char *p)
{
    const char *s = p;
    while (*s) {
        while (*s == '/')
            s++;
        const char *e = s;
        while (*e && *e != '/')
            e++;
        size_t n = (size_t)(e - s);
        if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
            return 0;
        s = e;
    }
    return 1;
}

static char *import_dir(const struct mh_api *a, int64_t uid)
{
    return mh_asprintf("%s/imports/%" PRId64, a->data_dir, uid);
}

/* Is `path` (relative: to data_dir) a file inside data_dir/imports/<uid>/? */
static int path_in_imports(const struct mh_api *a, int64_t uid, const char *path)
{
    if (path == NULL || *path == '\0')
        return 0;
    char *abs = mh_path_resolve(a->data_dir, path);
    char *dir = import_dir(a, uid);
    int ok = 0;
    if (abs != NULL && dir != NULL && path_is_plain(abs)) {
        char *rdir = realpath(dir, NULL);
        char *rp = realpath(abs, NULL);
        if (rdir != NULL && rp != NULL) {
            size_t n = strlen(rdir);
            ok = strncmp(rp, rdir, n) == 0 && rp[n] == '/' && rp[n + 1] != '\0' && strchr(rp + n + 1, '/') == NULL;
        } else if (rdir != NULL) {
            /* not there (yet): its directory must be the import directory itself */
            char *pd = mh_dirname(abs);
            char *rpd = pd ? realpath(pd, NULL) : NULL;
            const char *base = strrchr(abs, '/');
            ok = rpd != NULL && strcmp(rpd, rdir) == 0 && base != NULL && base[1] != '\0';
            free(rpd);
            free(pd);
        }
        free(rdir);
        free(rp);
    }
    free(abs);
    free(dir);
    return ok;
}

/*
 * Validate account settings (loop): the provider's option table through the
 * daemon, no "user" key, and for a non-admin an mbox path under their import
 * directory.  Fills r->pub and r->sec, or an error.
 */
static int check_settings(struct req *r, const char *provider, json_t *settings)
{
    struct mh_api *a = r->api;
    if (json_object_get(settings, "user") != NULL) {
        fail(r, 400, "invalid_setting", "settings.user: not allowed: an account's mail belongs to its user");
        return 0;
    }
    json_t *pub = NULL, *sec = NULL;
    char *err = NULL;
    if (mh_daemon_account_check(a->d, provider, settings, &pub, &sec, &err) != 0) {
        fail(r, 400, "invalid_setting", "%s", err ? err : "invalid settings");
        free(err);
        json_decref(pub);
        json_wipe_decref(&sec);
        return 0;
    }
    free(err);
    if (strcmp(provider, "mbox") == 0 && !r->admin) {
        const char *path = json_string_value(json_object_get(pub, "path"));
        if (!path_in_imports(a, r->target, path)) {
            json_decref(pub);
            json_wipe_decref(&sec);
            fail(r, 403, "forbidden",
                 "settings.path: you may only import files uploaded with POST /imports (imports/%" PRId64 "/ "
                 "under the data directory)",
                 r->target);
            return 0;
        }
    }
    json_decref(r->pub);
    json_wipe_decref(&r->sec);
    r->pub = pub;
    r->sec = sec;
    return 1;
}

/* Seal r->sec for account (user_id, name); 0, or -1 and an error.  *out NULL when there is nothing. */
static int st_seal_secret(struct mh_hub *h, struct req *r, int64_t user_id, const char *name, unsigned char **out,
                          size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (r->sec == NULL || json_object_size(r->sec) == 0)
        return 0;
    char *text = json_dumps(r->sec, JSON_COMPACT | JSON_SORT_KEYS);
    int rc = text ? mh_hub_account_seal(h, user_id, name, text, strlen(text), out, out_len) : -1;
    if (text != NULL)
        wipe_str(text);
    free(text);
    if (rc != 0) {
        fail(r, 500, "internal", "cannot seal the account's credentials");
        return -1;
    }
    return 0;
}

/* Look the account up again and make it r->out (store thread). */
static void st_account_out(struct mh_hub *h, struct req *r, int64_t id)
{
    struct acct_copy c;
    int rc = st_account_get(h, r->target, id, NULL, &c);
    if (rc <= 0) {
        if (rc < 0)
            fail_rc(r, rc, "account");
        else
            fail(r, 404, "not_found", "no account %" PRId64, id);
        return;
    }
    r->out = st_account_json(h, &c);
    r->progress = 1;
    acct_copy_clear(&c);
}

static void st_accounts_list(struct mh_hub *h, void *arg)
{
    struct req *r = arg;
    if (!st_auth(h, r))
        return;
    struct acct_list l = {0};
    int rc = mh_hub_ops(h)->account_list(mh_hub_state(h), r->target, acct_list_cb, &l);
    if (rc < 0 || l.oom) {
        acct_list_clear(&l);
        fail_rc(r, rc < 0 ? rc : MH_ENOMEM, "account");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < l.n; i++)
        if (l.v[i].user_id == r->target)
            json_array_append_new(arr, st_account_json(h, &l.v[i]));
    acct_list_clear(&l);
    r->out = json_object();
    set_new(r->out, "accounts", arr);
    r->progress = 2;
}

static void h_accounts_list(struct req *r) { call_store(r, st_accounts_list, NULL); }

/* Insert the account r->name of r->target with r->pub/r->sec (store thread). */
static void st_account_insert(struct mh_hub *h, struct req *r)
{
    unsigned char *sealed = NULL;
    size_t sealed_len = 0;
    if (st_seal_secret(h, r, r->target, r->name, &sealed, &sealed_len) != 0)
        return;
    char *settings = json_dumps(r->pub ? r->pub : json_object(), JSON_COMPACT | JSON_SORT_KEYS);
    struct mh_account_rec rec = {
        .struct_size = sizeof rec,
        .user_id = r->target,
        .name = r->name,
        .provider = r->provider,
        .settings = settings ? settings : "{}",
        .secret = sealed,
        .secret_len = sealed_len,
        .paused = r->paused_val,
        .status = "ok",
        .origin = "api",
        .created = now_s(),
    };
    int rc = mh_hub_ops(h)->account_put(mh_hub_state(h), &rec);
    free(settings);
    free(sealed);
    if (rc == MH_EEXIST) {
        fail(r, 409, "conflict", "you already have an account named '%s'", r->name);
        return;
    }
    if (rc != MH_OK) {
        fail_rc(r, rc, "account");
        return;
    }
    r->account_id = rec.id;
    r->up_keep = 1; /* an upload now belongs to the account */
    add_changed(r, rec.id);
    st_account_out(h, r, rec.id);
    r->ok_status = 201;
}

static void st_acct_name_free(struct mh_hub *h, void *arg)
{
    struct req *r = arg;
    if (!st_auth(h, r) || r->name == NULL)
        return;
    struct acct_copy c;
    int rc = st_account_get(h, r->target, 0, r->name, &c);
    if (rc > 0) {
        fail(r, 409, "conflict", "you already have an account named '%s'", r->name);
        acct_copy_clear(&c);
    } else if (rc < 0) {
        fail_rc(r, rc, "account");
    }
}

static void st_acct_create(struct mh_hub *h, void *arg) { st_account_insert(h, arg); }

static void acct_create_validate(struct req *r)
{
    if (!check_settings(r, r->provider, r->settings)) {
        reply(r);
        return;
    }
    call_store(r, st_acct_create, changed_then_reply);
}

static void h_accounts_create(struct req *r)
{
    static const char *const keys[] = {"name", "provider", "settings", "paused", NULL};
    if (!only_keys(r, keys) || !take_name(r, "name")) {
        reply(r);
        return;
    }
    const char *prov = in_str(r, "provider", 1, NULL);
    if (prov == NULL) {
        reply(r);
        return;
    }
    int ok = *prov != '\0' && strlen(prov) <= 32;
    for (const char *p = prov; ok && *p; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-';
    if (!ok) {
        fail_reply(r, 400, "invalid_setting", "provider: not a plugin name");
        return;
    }
    r->provider = mh_xstrdup(prov);
    json_t *set = json_object_get(r->in, "settings");
    if (set != NULL && !json_is_object(set)) {
        fail_reply(r, 400, "bad_request", "field 'settings' must be an object");
        return;
    }
    r->settings = set ? json_incref(set) : json_object();
    int has = 0;
    r->paused_val = in_bool(r, "paused", &has);
    if (r->err_status) {
        reply(r);
        return;
    }
    call_store(r, st_acct_name_free, acct_create_validate);
}

/* Load account r->path_id of r->target into c; 0 and an error if it cannot be changed. */
static int st_acct_load(struct mh_hub *h, struct req *r, struct acct_copy *c, int changing)
{
    if (!st_auth(h, r))
        return 0;
    int rc = st_account_get(h, r->target, r->path_id, NULL, c);
    if (rc <= 0) {
        if (rc < 0)
            fail_rc(r, rc, "account");
        else
            fail(r, 404, "not_found", "no account %" PRId64, r->path_id);
        return 0;
    }
    if (changing && strcmp(c->origin, "api") != 0) {
        fail(r, 409, "conflict", "account '%s' is defined in the configuration file; change it there", c->name);
        acct_copy_clear(c);
        return 0;
    }
    return 1;
}

static void st_account_get_h(struct mh_hub *h, void *arg)
{
    struct req *r = arg;
    struct acct_copy c;
    if (!st_acct_load(h, r, &c, 0))
        return;
    r->out = st_account_json(h, &c);
    r->progress = 1;
    acct_copy_clear(&c);
}

static void h_account_get(struct req *r) { call_store(r, st_account_get_h, NULL); }

static void st_acct_patch_load(struct mh_hub *h, void *arg)
{
    struct req *r = arg;
    struct acct_copy c;
    if (!st_acct_load(h, r, &c, 1))
        return;
    if (strcmp(c.status, "removed") == 0) {
        fail(r, 409, "conflict", "account '%s' was removed", c.name);
        acct_copy_clear(&c);
        return;
    }
    r->provider = mh_xstrdup(c.provider);
    r->name = mh_xstrdup(c.name);
    if (r->has_settings) {
        int unreadable = 0;
        r->old_secret = st_open_secret(h, &c, &unreadable);
        if (unreadable)
            mh_logf(MH_LOG_WARN, "api", "account %" PRId64 ": its stored credentials do not open; they are replaced",
                    c.id);
    }
    acct_copy_clear(&c);
}

static void st_acct_patch(struct mh_hub *h, void *arg)
{
    struct req *r = arg;
    struct acct_copy c;
    if (!st_acct_load(h, r, &c, 1))
        return;
    unsigned char *sealed = NULL;
    size_t sealed_len = 0;
    char *settings = NULL;
    if (r->has_settings) {
        if (st_seal_secret(h, r, c.user_id, c.name, &sealed, &sealed_len) != 0) {
            acct_copy_clear(&c);
            return;
        }
        settings = json_dumps(r->pub ? r->pub : json_object(), JSON_COMPACT | JSON_SORT_KEYS);
    }
    struct mh_account_rec rec = {
        .struct_size = sizeof rec,
        .id = c.id,
        .user_id = c.user_id,
        .name = c.name,
        .provider = c.provider,
        .settings = settings ? settings : c.settings,
        .secret = r->has_settings ? sealed : c.secret,
        .secret_len = r->has_settings ? sealed_len : c.secret_len,
        .paused = r->has_paused ? r->paused_val : c.paused,
        /* new settings are a new chance for an account that failed */
        .status = (r->has_settings && strncmp(c.status, "error", 5) == 0) ? "ok" : c.status,
        .origin = c.origin,
        .created = c.created,
    };
    int rc = mh_hub_ops(h)->account_put(mh_hub_state(h), &rec);
    free(settings);
    free(sealed);
    if (rc != MH_OK) {
        fail_rc(r, rc, "account");
    } else {
        add_changed(r, c.id);
        st_account_out(h, r, c.id);
    }
    acct_copy_clear(&c);
}

/* New settings keep the secrets they leave out (loop). */
static void acct_patch_validate(struct req *r)
{
    if (r->has_settings) {
        json_t *merged = json_deep_copy(r->settings);
        const char *k;
        json_t *v;
        json_object_foreach(r->old_secret, k, v) {
            json_t *cur = json_object_get(merged, k);
            if (json_is_object(v)) {
                if (!json_is_object(cur))
                    continue; /* the nested object (smtp) was dropped: so are its secrets */
                const char *k2;
                json_t *v2;
                json_object_foreach(v, k2, v2) {
                    if (json_object_get(cur, k2) == NULL)
                        json_object_set(cur, k2, v2);
                }
            } else if (cur == NULL) {
                json_object_set(merged, k, v);
            }
        }
        int ok = check_settings(r, r->provider, merged);
        json_wipe_decref(&merged);
        json_wipe_decref(&r->old_secret);
        if (!ok) {
            reply(r);
            return;
        }
    }
    call_store(r, st_acct_patch, changed_then_reply);
}

static void h_account_patch(struct req *r)
{
    static const char *const keys[] = {"settings", "paused", NULL};
    if (!only_keys(r, keys)) {
        reply(r);
        return;
    }
    json_t *set = json_object_get(r->in, "settings");
    if (set != NULL) {
        if (!json_is_object(set)) {
            fail_reply(r, 400, "bad_request", "field 'settings' must be an object");
            return;
        }
        r->has_settings = 1;
        r->settings = json_incref(set);
    }
    r->paused_val = in_bool(r, "paused", &r->has_paused);
    if (r->err_status) {
        reply(r);
        return;
    }
    call_store(r, st_acct_patch_load, acct_patch_validate);
}

static void st_acct_delete(struct mh_hub *h, void *arg)
{
    struct req *r = arg;
    struct acct_copy c;
    if (!st_acct_load(h, r, &c, 1))
        return;
    const struct mh_store_ops *ops = mh_hub_ops(h);
    int rc;
    if (r->q_purge) {
        rc = ops->account_delete(mh_hub_state(h), c.user_id, c.id);
        if (rc == MH_OK)
            mh_hub_forget_accounting(h); /* the user's usage dropped */
        if (rc == MH_OK && strcmp(c.provider, "mbox") == 0) {
            /* an uploaded file goes with its account */
            json_error_t je;
            json_t *set = json_loads(c.settings, 0, &je);
            const char *path = json_string_value(json_object_get(set, "path"));
            if (path_in_imports(r->api, c.user_id, path)) {
                char *abs = mh_path_resolve(r->api->data_dir, path);
                if (abs != NULL)
                    unlink(abs);
                free(abs);
            }
            json_decref(set);
        }
    } else if (strcmp(c.status, "removed") == 0) {
        rc = MH_OK;
    } else {
        struct mh_account_rec rec = {
            .struct_size = sizeof rec,
            .id = c.id,
            .user_id = c.user_id,
            .name = c.name,
            .provider = c.provider,
            .settings = c.settings,
            .secret = c.secret,
            .secret_len = c.secret_len,
            .paused = 1,
            .status = "removed",
            .origin = c.origin,
            .created = c.created,
        };
        rc = ops->account_put(mh_hub_state(h), &rec);
    }
    if (rc != MH_OK) {
        fail_rc(r, rc, "account");
    } else {
        add_changed(r, c.id);
        r->ok_status = 204;
    }
    acct_copy_clear(&c);
}

static void h_account_delete(struct req *r)
{
    if (q_bool(r, "purge", &r->q_purge) != 0) {
        reply(r);
        return;
    }
    call_store(r, st_acct_delete, changed_then_reply);
}

static void st_acct_sync_check(struct mh_hub *h, void *arg)
{
    struct req *r = arg;
    struct acct_copy c;
    if (!st_acct_load(h, r, &c, 0))
        return;
    if (strcmp(c.status, "removed") == 0)
        fail(r, 409, "conflict", "account '%s' was removed", c.name);
    else if (c.paused)
        fail(r, 409, "conflict", "account '%s' is paused", c.name);
    r->account_id = c.id;
    acct_copy_clear(&c);
}

static void acct_sync_do(struct req *r)
{
    int rc = mh_daemon_account_sync_now(r->api->d, r->account_id);
    if (rc == MH_OK || rc == MH_PENDING) {
        r->out = json_pack("{sIss}", "id", (json_int_t)r->account_id, "status", "sync requested");
        r->ok_status = 202;
    } else if (rc == MH_ENOTFOUND) {
        fail(r, 409, "conflict", "the account is not running (it failed to start, or is starting)");
    } else if (rc == MH_ENOTSUP) {
        fail(r, 409, "conflict", "this account's provider cannot sync on demand");
    } else {
        fail(r, 500, "internal", "the provider refused to sync (code %d)", rc);
    }
    reply(r);
}

static void h_account_sync(struct req *r) { call_store(r, st_acct_sync_check, acct_sync_do); }

/* ---------------------------------------------------------------- imports */

static void st_import_create(struct mh_hub *h, void *arg) { st_account_insert(h, arg); }

static void w_upload_sync(void *arg)
{
    struct req *r = arg;
    r->up_sync_ok = fsync(r->up_fd) == 0;
    if (close(r->up_fd) != 0)
        r->up_sync_ok = 0;
    r->up_fd = -1;
}

static void import_create(struct req *r)
{
    if (!r->up_sync_ok) {
        fail_reply(r, 500, "internal", "cannot write the upload to disk");
        return;
    }
    json_t *set = json_pack("{sssssb}", "path", r->up_path, "folder", r->q_folder_name, "watch", 0);
    if (set == NULL) {
        fail_reply(r, 400, "bad_request", "the folder name must be UTF-8 text");
        return;
    }
    r->provider = mh_xstrdup("mbox");
    int ok = check_settings(r, "mbox", set);
    json_decref(set);
    if (!ok) {
        reply(r);
        return;
    }
    call_store(r, st_import_create, changed_then_reply);
}

/* The final call of POST /imports: the whole body is in the file. */
static void h_import(struct req *r)
{
    if (r->up_fd < 0) {
        fail_reply(r, 500, "internal", "the upload was lost");
        return;
    }
    if (r->up_len == 0) {
        fail_reply(r, 400, "bad_request", "the upload is empty");
        return;
    }
    if (r->up_len < 5 || memcmp(r->up_head, "From ", 5) != 0) {
        fail_reply(r, 400, "bad_request", "not an mbox file: it must start with a \"From \" line");
        return;
    }
    if (r->name == NULL) {
        /* default account name: from the file's random name */
        const char *base = strrchr(r->up_path, '/');
        r->name = mh_asprintf("import-%.8s", base ? base + 1 : "upload");
    }
    call_pool(r, w_upload_sync, import_create);
}

/* After the token was checked (loop, headers stage): open the upload file. */
static void import_open(struct req *r)
{
    struct mh_api *a = r->api;
    char *top = mh_asprintf("%s/imports", a->data_dir);
    char *dir = import_dir(a, r->target);
    int ok = top != NULL && dir != NULL && (mkdir(top, 0700) == 0 || errno == EEXIST) &&
             (mkdir(dir, 0700) == 0 || errno == EEXIST);
    if (ok) {
        for (int tries = 0; tries < 8 && r->up_fd < 0; tries++) {
            unsigned char rnd[16];
            char hex[33];
            if (mh_random(rnd, sizeof rnd) != 0)
                break;
            mh_hex(rnd, sizeof rnd, hex);
            free(r->up_path);
            r->up_path = mh_asprintf("%s/%s.mbox", dir, hex);
            if (r->up_path == NULL)
                break;
            r->up_fd = open(r->up_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
            if (r->up_fd < 0 && errno != EEXIST)
                break;
        }
    }
    if (r->up_fd < 0) {
        int e = errno;
        free(r->up_path);
        r->up_path = NULL;
        mh_logf(MH_LOG_ERROR, a->who, "cannot create an upload file in %s: %s", dir ? dir : "?", strerror(e));
        free(top);
        free(dir);
        fail_reply(r, 500, "internal", "cannot store the upload");
        return;
    }
    free(top);
    free(dir);
    resume(r); /* now read the body */
}

static int ctype_is(struct req *r, const char *const *types)
{
    const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ct == NULL)
        return 0;
    while (*ct == ' ')
        ct++;
    size_t n = strcspn(ct, "; \t");
    for (; *types; types++)
        if (strlen(*types) == n && strncasecmp(ct, *types, n) == 0)
            return 1;
    return 0;
}

/* The headers stage of POST /imports: check, then authenticate before any byte is stored. */
static void import_start(struct req *r)
{
    static const char *const types[] = {"application/mbox", "application/octet-stream", NULL};
    struct mh_api *a = r->api;
    if (!ctype_is(r, types)) {
        fail_reply(r, 415, "unsupported_media_type", "send the mbox file as Content-Type: application/mbox");
        return;
    }
    if (a->max_upload > 0 && r->has_length && r->content_length > a->max_upload) {
        r->no_defer = 1;
        fail_reply(r, 413, "payload_too_large", "the upload is larger than %" PRIu64 " bytes", a->max_upload);
        return;
    }
    const char *acct = qarg(r, "account");
    if (acct != NULL) {
        if (!mh_valid_name(acct)) {
            fail_reply(r, 400, "invalid_name",
                       "'account' must be 1..64 characters of A-Z a-z 0-9 . _ - @ +, not starting with '.' or '-'");
            return;
        }
        r->name = mh_xstrdup(acct);
    }
    const char *folder = qarg(r, "folder");
    if (folder == NULL || *folder == '\0')
        folder = "INBOX";
    int ok = strlen(folder) <= FOLDER_MAX;
    for (const unsigned char *p = (const unsigned char *)folder; ok && *p; p++)
        ok = *p >= 0x20 && *p != 0x7f;
    if (!ok) {
        fail_reply(r, 400, "bad_request", "query parameter 'folder' must be a folder name (%d bytes at most)",
                   FOLDER_MAX);
        return;
    }
    r->q_folder_name = mh_xstrdup(folder);
    call_store(r, st_acct_name_free, import_open);
}

/* --------------------------------------------------------------- messages */

struct name_map {
    int64_t id;
    char *name;
};

struct names {
    struct name_map *v;
    size_t n, cap;
};

static void names_add(struct names *m, int64_t id, const char *name)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 16;
        struct name_map *nv = realloc(m->v, cap * sizeof *nv);
        if (nv == NULL)
            return;
        m->v = nv;
        m->cap = cap;
    }
    m->v[m->n].id = id;
    m->v[m->n].name = mh_xstrdup(name ? name : "");
    m->n++;
}

static const char *names_get(const struct names *m, int64_t id)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->v[i].id == id)
            return m->v[i].name;
    return NULL;
}

static void names_clear(struct names *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->v[i].name);
    free(m->v);
    memset(m, 0, sizeof *m);
}

static int acct_names_cb(void *arg, const struct mh_account_rec *a)
{
    names_add(arg, a->id, a->name);
    return 0;
}

static int folder_names_cb(void *arg, const struct mh_folder_rec *f)
{
    names_add(arg, f->id, f->name);
    return 0;
}

struct msg_ctx {
    struct req *r;
    struct names accounts, folders;
    json_t *arr;
    size_t count;
    int64_t last_id;
    int more;
    /* export */
    char *buf;
    size_t len, cap;
    uint64_t max_bytes;
    /* verify */
    int64_t ok;
};

static json_t *msg_json(const struct msg_ctx *c, const struct mh_msg_rec *m)
{
    char hex[65];
    mh_hex(m->sha256, 32, hex);
    const char *folder = m->folder ? m->folder : names_get(&c->folders, m->folder_id);
    json_t *o = json_object();
    set_new(o, "id", json_integer(m->id));
    set_new(o, "account_id", json_integer(m->account_id));
    set_new(o, "account", jstr(names_get(&c->accounts, m->account_id)));
    set_new(o, "folder", jstr(folder));
    set_new(o, "uid", json_integer((json_int_t)m->uid));
    set_new(o, "size", json_integer((json_int_t)m->size));
    set_new(o, "flags", jstr(m->flags));
    set_new(o, "internal_date", jtime(m->internal_date));
    set_new(o, "date", jtime(m->date));
    set_new(o, "from", jstr(m->from));
    set_new(o, "to", jstr(m->to));
    set_new(o, "cc", jstr(m->cc));
    set_new(o, "subject", jstr(m->subject));
    set_new(o, "message_id", jstr(m->message_id));
    set_new(o, "sha256", json_string(hex));
    /* since 1.2: what the core found in the body, and whether the source still has it */
    const char *att = NULL;
    int gone = 0;
    if (m->struct_size >= offsetof(struct mh_msg_rec, source_gone) + sizeof m->source_gone) {
        att = m->attachments;
        gone = m->source_gone != 0;
    }
    json_t *aj = att != NULL ? json_loads(att, JSON_REJECT_DUPLICATES, NULL) : NULL;
    if (aj != NULL && !json_is_array(aj)) {
        json_decref(aj);
        aj = NULL;
    }
    set_new(o, "attachments", aj != NULL ? aj : json_array());
    set_new(o, "source_gone", json_boolean(gone));
    return o;
}

/*
 * Common start of the message routes (store thread): authenticate, check
 * that ?account= and ?folder= are the user's own, and load the names.
 */
static int st_msg_prepare(struct mh_hub *h, struct req *r, struct msg_ctx *c)
{
    memset(c, 0, sizeof *c);
    c->r = r;
    if (!st_auth(h, r))
        return 0;
    const struct mh_store_ops *ops = mh_hub_ops(h);
    void *st = mh_hub_state(h);
    if (r->q_account > 0) {
        struct acct_copy a;
        int rc = st_account_get(h, r->target, r->q_account, NULL, &a);
        if (rc <= 0) {
            if (rc < 0)
                fail_rc(r, rc, "account");
            else
                fail(r, 404, "not_found", "no account %" PRId64, r->q_account);
            return 0;
        }
        acct_copy_clear(&a);
    }
    ops->account_list(st, r->target, acct_names_cb, &c->accounts);
    ops->folder_list(st, r->target, 0, folder_names_cb, &c->folders);
    if (r->q_folder > 0 && names_get(&c->folders, r->q_folder) == NULL) {
        fail(r, 404, "not_found", "no folder %" PRId64, r->q_folder);
        return 0;
    }
    return 1;
}

static void msg_ctx_clear(struct msg_ctx *c)
{
    names_clear(&c->accounts);
    names_clear(&c->folders);
    json_decref(c->arr);
    free(c->buf);
    memset(c, 0, sizeof *c);
}

static struct mh_msg_query msg_query(const struct req *r)
{
    struct mh_msg_query q = {
        .struct_size = sizeof q,
        .user_id = r->target,
        .account_id = r->q_account,
        .folder_id = r->q_folder,
        .after_id = r->q_after,
    };
    return q;
}

static int list_cb(void *arg, const struct mh_msg_rec *m, const void *raw, size_t raw_len, const char *problem)
{
    struct msg_ctx *c = arg;
    if (m->user_id != c->r->target)
        return 0; /* never another user's */
    if (c->count == (size_t)c->r->q_limit) {
        c->more = 1;
        return 1;
    }
    json_array_append_new(c->arr, msg_json(c, m));
    c->count++;
    c->last_id = m->id;
    return 0;
}

static void st_messages(struct mh_hub *h, void *arg)
{
    struct req *r = arg;
    struct msg_ctx c;
    if (!st_msg_prepare(h, r, &c)) {
        msg_ctx_clear(&c);
        return;
    }
    struct mh_msg_query q = msg_query(r);
    q.limit = (uint32_t)r->q_limit + 1;
    c.arr = json_array();
    int rc = mh_hub_msg_each(h, &q, 0, 0, list_cb, &c);
    if (rc != MH_OK) {
        fail_rc(r, rc, "message");
    } else {
        r->out = json_object();
        set_new(r->out, "messages", json_incref(c.arr));
        set_new(r->out, "next_after", c.more ? json_integer(c.last_id) : json_null());
    }
    msg_ctx_clear(&c);
}

static void h_messages(struct req *r)
{
    if (q_int(r, "account", 1, INT64_MAX, 0, &r->q_account) || q_int(r, "folder", 1, INT64_MAX, 0, &r->q_folder) ||
        q_int(r, "after", 0, INT64_MAX, 0, &r->q_after) ||
        q_int(r, "limit", 1, LIST_LIMIT_MAX, LIST_LIMIT_DEFAULT, &r->q_limit)) {
        reply(r);
        return;
    }
    call_store(r, st_messages, NULL);
}

static int one_cb(void *arg, const struct mh_msg_rec *m, const void *raw, size_t raw_len, const char *problem)
{
    struct msg_ctx *c = arg;
    struct req *r = c->r;
    if (m->user_id != r->target || m->id != r->path_id)
        return 0;
    c->count++;
    if (r->buf_type != NULL) { /* raw */
        if (raw == NULL) {
            fail(r, 500, "internal", "message %" PRId64 " cannot be read: %s", m->id, problem ? problem : "no body");
            return 1;
        }
        r->buf = malloc(raw_len ? raw_len : 1);
        if (r->buf == NULL) {
            fail(r, 500, "internal", "out of memory");
            return 1;
        }
        memcpy(r->buf, raw, raw_len);
        r->buf_len = raw_len;
    } else {
        r->out = msg_json(c, m);
    }
    return 1;
}

static void st_message(struct mh_hub *h, void *arg)
{
    struct req *r = arg;
    struct msg_ctx c;
    if (!st_msg_prepare(h, r, &c)) {
        msg_ctx_clear(&c);
        return;
    }
    struct mh_msg_query q = msg_query(r);
    q.id = r->path_id;
    q.limit = 1;
    int rc = mh_hub_msg_each(h, &q, r->buf_type != NULL, 0, one_cb, &c);
    if (rc != MH_OK)
        fail_rc(r, rc, "message");
    else if (c.count == 0)
        fail(r, 404, "not_found", "no message %" PRId64, r->path_id);
    msg_ctx_clear(&c);
}

static void h_message(struct req *r) { call_store(r, st_message, NULL); }

static void h_message_raw(struct req *r)
{
    r->buf_type = "message/rfc822";
    call_store(r, st_message, NULL);
}

/* ----------------------------------------------------------------- search */

/*
 * GET /search?q=&account=NAME&limit=&before=: the blind index (docs/security.md).
 * The query is tokenised on the loop (cheap: 400 when it has no word) and
 * blinded on the store thread with the user's search key; the store matches
 * the terms within the user's own messages, newest first.  "pending" counts
 * the user's messages that are stored but not analysed yet (the store lane
 * indexes them when it is idle): a search does not find those yet.
 */
static void st_search(struct mh_hub *h, void *arg)
{
    struct req *r = arg;
    struct msg_ctx c;
    char *terms = NULL;
    if (!st_msg_prepare(h, r, &c))
        goto out;
    const struct mh_store_ops *ops = mh_hub_ops(h);
    if (!MH_STORE_HAS(ops, source_list)) {
        fail(r, 501, "not_implemented", "the configured store cannot search (it predates SDK 1.2)");
        goto out;
    }
    if (r->q_account_name != NULL) {
        struct acct_copy a;
        int rc = st_account_get(h, r->target, 0, r->q_account_name, &a);
        if (rc == 0 && parse_id(r->q_account_name, strlen(r->q_account_name)) > 0)
            rc = st_account_get(h, r->target, parse_id(r->q_account_name, strlen(r->q_account_name)), NULL,
                                &a);
        if (rc <= 0) {
            if (rc < 0)
                fail_rc(r, rc, "account");
            else
                fail(r, 404, "not_found", "no account named '%s'", r->q_account_name);
            goto out;
        }
        r->q_account = a.id;
        acct_copy_clear(&a);
    }
    int rc = mh_hub_search_terms(h, r->target, r->q_search, &terms);
    if (rc == MH_EINVAL || (rc == MH_OK && terms == NULL)) {
        fail(r, 400, "bad_request", "the query has no word to search for");
        goto out;
    }
    if (rc != MH_OK) {
        fail_rc(r, rc, "user");
        goto out;
    }
    struct mh_msg_query q = msg_query(r);
    q.after_id = r->q_before; /* descending: ids below this */
    q.descending = 1;
    q.search = terms;
    q.limit = (uint32_t)r->q_limit + 1;
    c.arr = json_array();
    rc = mh_hub_msg_each(h, &q, 0, 0, list_cb, &c);
    if (rc != MH_OK) {
        fail_rc(r, rc, "message");
    } else {
        r->out = json_object();
        set_new(r->out, "messages", json_incref(c.arr));
        set_new(r->out, "next_before", c.more ? json_integer(c.last_id) : json_null());
        /* messages stored but not analysed yet (SDK 1.3): not found until they are */
        uint64_t pending = 0;
        mh_hub_index_pending(h, r->target, &pending);
        set_new(r->out, "pending", json_integer((json_int_t)pending));
    }
out:
    free(terms);
    msg_ctx_clear(&c);
}

static void h_search(struct req *r)
{
    const char *q = qarg(r, "q");
    if (q == NULL || *q == '\0') {
        fail_reply(r, 400, "bad_request", "query parameter 'q' (the words to search for) is missing");
        return;
    }
    if (strlen(q) > SEARCH_QUERY_MAX) {
        fail_reply(r, 400, "bad_request", "the query is longer than %d bytes", SEARCH_QUERY_MAX);
        return;
    }
    char *tokens = mh_search_query_tokens(q);
    int empty = tokens == NULL || tokens[0] == '\0';
    free(tokens);
    if (empty) {
        fail_reply(r, 400, "bad_request", "the query has no word to search for");
        return;
    }
    if (q_int(r, "before", 1, INT64_MAX, 0, &r->q_before) ||
        q_int(r, "limit", 1, LIST_LIMIT_MAX, LIST_LIMIT_DEFAULT, &r->q_limit)) {
        reply(r);
        return;
    }
    const char *acct = qarg(r, "account");
    if (acct != NULL) {
        if (!mh_valid_name(acct)) {
            fail_reply(r, 400, "bad_request", "query parameter 'account' must be an account name");
            return;
        }
        r->q_account_name = mh_xstrdup(acct);
    }
    r->q_search = mh_xstrdup(q);
    call_store(r, st_search, NULL);
}

static int buf_add(struct msg_ctx *c, const void *p, size_t n)
{
    if (c->len + n > c->cap) {
        size_t cap = c->cap ? c->cap : 65536;
        while (cap < c->len + n)
            cap *= 2;
        char *nb = realloc(c->buf, cap);
        if (nb == NULL)
            return -1;
        c->buf = nb;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, p, n);
    c->len += n;
    return 0;
}

static int export_cb(void *arg, const struct mh_msg_rec *m, const void *raw, size_t raw_len, const char *problem)
{
    struct msg_ctx *c = arg;
    struct req *r = c->r;
    if (m->user_id != r->target)
        return 0;
    if (c->count > 0 && (uint64_t)c->len + m->size > c->max_bytes) {
        c->more = 1; /* the page is full */
        return 1;
    }
    if (raw == NULL || raw_len != m->size) {
        fail(r, 500, "internal", "message %" PRId64 " cannot be read: %s (run verify)", m->id,
             problem ? problem : "size mismatch");
        return 1;
    }
    json_t *o = msg_json(c, m);
    char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    int bad = line == NULL || buf_add(c, line, strlen(line)) || buf_add(c, "\n", 1) || buf_add(c, raw, raw_len) ||
              buf_add(c, "\n", 1);
    free(line);
    if (bad) {
        fail(r, 500, "internal", "out of memory");
        return 1;
    }
    c->count++;
    c->last_id = m->id;
    return 0;
}

static void st_export(struct mh_hub *h, void *arg)
{
    struct req *r = arg;
    struct msg_ctx c;
    if (!st_msg_prepare(h, r, &c)) {
        msg_ctx_clear(&c);
        return;
    }
    struct mh_msg_query q = msg_query(r);
    c.max_bytes = r->q_max_bytes;
    int rc = mh_hub_msg_each(h, &q, 1, 0, export_cb, &c);
    if (rc != MH_OK)
        fail_rc(r, rc, "message");
    if (r->err_status == 0) {
        r->buf = c.buf ? c.buf : malloc(1);
        c.buf = NULL;
        r->buf_len = c.len;
        r->next_after = c.count > 0 ? c.last_id : r->q_after;
        r->complete = !c.more;
    }
    msg_ctx_clear(&c);
}

static void h_export(struct req *r)
{
    int64_t mb = 0;
    if (q_int(r, "account", 1, INT64_MAX, 0, &r->q_account) || q_int(r, "after", 0, INT64_MAX, 0, &r->q_after) ||
        q_int(r, "max_bytes", 1, (int64_t)EXPORT_MAX, (int64_t)EXPORT_DEFAULT, &mb)) {
        reply(r);
        return;
    }
    r->q_max_bytes = (uint64_t)mb;
    r->buf_type = "application/x-mailhub-batch";
    call_store(r, st_export, NULL);
}

static int verify_cb(void *arg, const struct mh_msg_rec *m, const void *raw, size_t raw_len, const char *problem)
{
    struct msg_ctx *c = arg;
    if (m->user_id != c->r->target)
        return 0;
    c->count++;
    c->last_id = m->id;
    if (problem == NULL && raw != NULL) {
        c->ok++;
    } else {
        json_t *o = json_object();
        set_new(o, "id", json_integer(m->id));
        set_new(o, "problem", jstr(problem ? problem : "cannot be read"));
        json_array_append_new(c->arr, o);
    }
    return 0;
}

static int any_cb(void *arg, const struct mh_msg_rec *m)
{
    *(int *)arg = 1;
    return 1;
}

static void st_verify(struct mh_hub *h, void *arg)
{
    struct req *r = arg;
    struct msg_ctx c;
    if (!st_msg_prepare(h, r, &c)) {
        msg_ctx_clear(&c);
        return;
    }
    struct mh_msg_query q = msg_query(r);
    q.limit = (uint32_t)r->q_limit;
    c.arr = json_array();
    int rc = mh_hub_msg_each(h, &q, 1, 1, verify_cb, &c);
    if (rc == MH_OK && c.count >= (size_t)r->q_limit) {
        /* is there more?  (records only, no bodies) */
        struct mh_msg_query probe = msg_query(r);
        probe.after_id = c.last_id;
        probe.limit = 1;
        rc = mh_hub_ops(h)->msg_list(mh_hub_state(h), &probe, any_cb, &c.more);
    }
    if (rc < 0) {
        fail_rc(r, rc, "message");
    } else {
        r->out = json_object();
        set_new(r->out, "checked", json_integer((json_int_t)c.count));
        set_new(r->out, "ok", json_integer(c.ok));
        set_new(r->out, "failed", json_incref(c.arr));
        set_new(r->out, "next_after", c.more ? json_integer(c.last_id) : json_null());
        set_new(r->out, "complete", json_boolean(!c.more));
        if (json_array_size(c.arr) > 0)
            mh_logf(MH_LOG_WARN, "api", "verify: user %" PRId64 ": %zu damaged message(s)", r->target,
                    json_array_size(c.arr));
    }
    msg_ctx_clear(&c);
}

static void h_verify(struct req *r)
{
    if (q_int(r, "account", 1, INT64_MAX, 0, &r->q_account) || q_int(r, "after", 0, INT64_MAX, 0, &r->q_after) ||
        q_int(r, "limit", 1, VERIFY_LIMIT_MAX, VERIFY_LIMIT_DEFAULT, &r->q_limit)) {
        reply(r);
        return;
    }
    call_store(r, st_verify, NULL);
}

/* ------------------------------------------------------ notifications */

#define NOTIFY_RULES_MAX (64 * 1024)
static const char *const job_states[] = {"pending", "held", "delivered", "dead", "folded", NULL};

struct job_list_ctx {
    struct req *r;
    json_t *arr;
    int with_event;
    size_t n;
    int64_t last_id;
};

static json_t *job_json(const struct mh_job_rec *j, int with_event)
{
    json_t *o = json_object();
    set_new(o, "id", json_integer(j->id));
    set_new(o, "type", json_string(j->event_type ? j->event_type : ""));
    set_new(o, "notifier", json_string(j->notifier ? j->notifier : ""));
    set_new(o, "state", json_string(j->state ? j->state : ""));
    set_new(o, "attempts", json_integer(j->attempts));
    set_new(o, "next_at", jtime(j->next_at / 1000));
    set_new(o, "created", jtime(j->created / 1000));
    set_new(o, "updated", jtime(j->updated / 1000));
    set_new(o, "detail", j->detail ? json_string(j->detail) : json_null());
    set_new(o, "user_id", j->user_id > 0 ? json_integer(j->user_id) : json_null());
    json_t *env = j->event ? json_loads(j->event, 0, NULL) : NULL;
    json_t *id = json_object_get(env, "id");
    set_new(o, "event_id", id ? json_incref(id) : json_null());
    json_t *data = json_object_get(env, "data");
    json_t *sum = json_object();
    static const char *const keys[] = {"account", "folder", "from", "subject", "count", NULL};
    for (const char *const *k = keys; *k; k++)
        if (json_object_get(data, *k))
            set_new(sum, *k, json_incref(json_object_get(data, *k)));
    set_new(o, "summary", sum);
    if (with_event && env)
        set_new(o, "event", json_incref(env));
    json_decref(env);
    return o;
}

static int job_list_cb(void *arg, const struct mh_job_rec *j)
{
    struct job_list_ctx *c = arg;
    json_array_append_new(c->arr, job_json(j, c->with_event));
    c->n++;
    c->last_id = j->id;
    return 0;
}

static void st_notifications(struct mh_hub *h, void *arg)
{
    struct req *r = arg;
    if (!st_auth(h, r))
        return;
    const struct mh_store_ops *ops = mh_hub_ops(h);
    if (!MH_STORE_HAS(ops, job_list)) {
        fail(r, 501, "not_implemented", "the store has no notification outbox (it predates SDK 1.2)");
        return;
    }
    int all = r->q_all; /* ?all=true, administrators only */
    if (all && !require_admin(r))
        return;
    struct mh_job_query q = {.struct_size = sizeof q,
                             .id = r->path_id,
                             .user_id = all ? 0 : r->target,
                             .state = r->q_text,
                             .after_id = r->q_after,
                             .limit = r->path_id > 0 ? 1 : (uint32_t)r->q_limit + 1};
    struct job_list_ctx c = {.r = r, .arr = json_array(), .with_event = r->path_id > 0};
    int rc = ops->job_list(mh_hub_state(h), &q, job_list_cb, &c);
    if (rc != MH_OK) {
        json_decref(c.arr);
        fail_rc(r, rc, "notification");
        return;
    }
    if (r->path_id > 0) {
        if (c.n == 0)
            fail(r, 404, "not_found", "no notification %" PRId64, r->path_id);
        else
            r->out = json_incref(json_array_get(c.arr, 0));
        json_decref(c.arr);
        return;
    }
    int more = c.n > (size_t)r->q_limit;
    if (more)
        json_array_remove(c.arr, json_array_size(c.arr) - 1);
    json_t *last = json_array_get(c.arr, json_array_size(c.arr) - 1);
    r->out = json_object();
    set_new(r->out, "notifications", c.arr);
    set_new(r->out, "next_after", more && last ? json_incref(json_object_get(last, "id")) : json_null());
}

static void h_notifications(struct req *r)
{
    int all = 0;
    const char *state = qarg(r, "state");
    if (q_int(r, "after", 0, INT64_MAX, 0, &r->q_after) ||
        q_int(r, "limit", 1, LIST_LIMIT_MAX, LIST_LIMIT_DEFAULT, &r->q_limit) || q_bool(r, "all", &all)) {
        reply(r);
        return;
    }
    if (state != NULL) {
        int ok = 0;
        for (const char *const *s = job_states; *s; s++)
            ok |= strcmp(*s, state) == 0;
        if (!ok) {
            fail_reply(r, 400, "bad_request", "query parameter 'state' must be pending, held, delivered, dead or folded");
            return;
        }
        r->q_text = mh_xstrdup(state);
    }
    r->q_all = all;
    call_store(r, st_notifications, NULL);
}

static void h_notification(struct req *r) { call_store(r, st_notifications, NULL); }

static void replay_done(void *arg, int rc)
{
    struct req *r = arg;
    r->waiting = 0;
    if (rc == MH_OK) {
        r->out = json_pack("{sIss}", "id", (json_int_t)r->path_id, "state", "pending");
        r->ok_status = 202;
    } else if (rc == MH_ENOTFOUND) {
        fail(r, 404, "not_found", "no notification %" PRId64, r->path_id);
    } else if (rc == MH_EINVAL) {
        fail(r, 409, "conflict", "only a dead notification can be replayed");
    } else if (rc == MH_ENOTSUP) {
        fail(r, 501, "not_implemented", "the store has no notification outbox (it predates SDK 1.2)");
    } else {
        fail(r, 500, "internal", "the replay could not be queued (code %d)", rc);
    }
    reply(r);
}

static void replay_step(struct req *r)
{
    struct mh_outbox *ob = mh_daemon_outbox(r->api->d);
    r->waiting = 1;
    int rc = ob ? mh_outbox_replay(ob, r->api, r->admin ? 0 : r->uid, r->path_id, replay_done, r) : MH_ENOTSUP;
    if (rc != MH_PENDING) {
        r->waiting = 0;
        replay_done(r, rc);
    }
}

static void st_auth_only(struct mh_hub *h, void *arg) { st_auth(h, arg); }

static void h_notification_replay(struct req *r) { call_store(r, st_auth_only, replay_step); }

static void st_rules_get(struct mh_hub *h, void *arg)
{
    struct req *r = arg;
    if (!st_auth(h, r))
        return;
    const struct mh_store_ops *ops = mh_hub_ops(h);
    if (!MH_STORE_HAS(ops, user_pref_get)) {
        fail(r, 501, "not_implemented", "the store keeps no preferences (it predates SDK 1.2)");
        return;
    }
    char *text = NULL;
    int rc = ops->user_pref_get(mh_hub_state(h), r->target, "notify", &text);
    if (rc < 0) {
        fail_rc(r, rc, "user");
        return;
    }
    json_t *rules = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    r->out = json_object();
    set_new(r->out, "rules", rules ? rules : json_object());
    set_new(r->out, "default", json_boolean(rules == NULL));
}

static void st_rules_put(struct mh_hub *h, void *arg)
{
    struct req *r = arg;
    if (!st_auth(h, r))
        return;
    const struct mh_store_ops *ops = mh_hub_ops(h);
    if (!MH_STORE_HAS(ops, user_pref_put)) {
        fail(r, 501, "not_implemented", "the store keeps no preferences (it predates SDK 1.2)");
        return;
    }
    int rc = ops->user_pref_put(mh_hub_state(h), r->target, "notify", r->q_text);
    if (rc != MH_OK) {
        fail_rc(r, rc, "user");
        return;
    }
    json_t *rules = r->q_text ? json_loads(r->q_text, 0, NULL) : NULL;
    r->out = json_object();
    set_new(r->out, "rules", rules ? rules : json_object());
    set_new(r->out, "default", json_boolean(rules == NULL));
}

static void h_rules_get(struct req *r) { call_store(r, st_rules_get, NULL); }

static void h_rules_put(struct req *r)
{
    char *err = NULL;
    char *text = json_dumps(r->in, JSON_COMPACT);
    struct mh_rules *rules = text ? mh_rules_parse(text, &err) : NULL;
    if (rules == NULL) {
        fail_reply(r, 400, "invalid_rules", "%s", err ? err : "out of memory");
        free(err);
        free(text);
        return;
    }
    mh_rules_free(&rules);
    if (strlen(text) > NOTIFY_RULES_MAX) {
        fail_reply(r, 413, "payload_too_large", "the rules are larger than %d bytes", NOTIFY_RULES_MAX);
        free(text);
        return;
    }
    r->q_text = text;
    call_store(r, st_rules_put, NULL);
}

static void h_rules_delete(struct req *r)
{
    r->q_text = NULL;
    call_store(r, st_rules_put, NULL);
}

/* Delivery reports (Kannel's dlr-url): no bearer token; the URL carries a MAC of the job id under a key
 * derived from the master key (mh_outbox_report_token), so only the hub could have made it. */
static const char *report_text(long long status)
{
    switch (status) {
    case 1: return "delivered to the phone";
    case 2: return "not delivered to the phone";
    case 4: return "queued at the SMSC";
    case 8: return "accepted by the SMSC";
    case 16: return "rejected by the SMSC";
    default: return "reported";
    }
}

struct report_ctx {
    struct req *r;
    struct mh_hub *h;
    int found, rc;
};

static int report_cb(void *arg, const struct mh_job_rec *j)
{
    struct report_ctx *c = arg;
    /* keep the delivery outcome, replace an earlier report */
    const char *d = j->detail ? j->detail : "";
    const char *cut = strstr(d, "; report: ");
    size_t keep = cut ? (size_t)(cut - d) : strlen(d);
    char *detail = mh_asprintf("%.*s%sreport: %s", (int)keep, d, keep ? "; " : "", c->r->q_text);
    struct mh_job_rec u = {.struct_size = sizeof u,
                           .id = j->id,
                           .state = j->state,
                           .attempts = j->attempts,
                           .next_at = j->next_at,
                           .fold = j->fold,
                           .detail = detail};
    c->found = 1;
    c->rc = mh_hub_ops(c->h)->job_put(mh_hub_state(c->h), &u);
    free(detail);
    return 1;
}

static void st_report(struct mh_hub *h, void *arg)
{
    struct req *r = arg;
    const struct mh_store_ops *ops = mh_hub_ops(h);
    if (!MH_STORE_HAS(ops, job_list)) {
        fail(r, 501, "not_implemented", "the store has no notification outbox (it predates SDK 1.2)");
        return;
    }
    struct report_ctx c = {.r = r, .h = h};
    struct mh_job_query q = {.struct_size = sizeof q, .id = r->path_id};
    int rc = ops->job_list(mh_hub_state(h), &q, report_cb, &c);
    if (rc == MH_OK)
        rc = c.rc;
    if (rc != MH_OK)
        fail_rc(r, rc, "notification");
    else if (!c.found)
        fail(r, 404, "not_found", "no notification %" PRId64, r->path_id);
    else
        r->out = json_pack("{sIss}", "id", (json_int_t)r->path_id, "recorded", r->q_text);
}

static void h_report(struct req *r)
{
    const char *t = qarg(r, "t");
    char want[33];
    mh_outbox_report_token(mh_daemon_report_key(r->api->d), r->path_id, want);
    if (t == NULL || strlen(t) != 32 || !mh_ct_equal(t, want, 32)) {
        fail_reply(r, 404, "not_found", "no notification %" PRId64, r->path_id);
        return;
    }
    int64_t status = 0;
    if (q_int(r, "status", 0, 1 << 20, 0, &status)) {
        reply(r);
        return;
    }
    char answer[128] = "";
    const char *ans = qarg(r, "answer");
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)(ans ? ans : ""); *p && k + 1 < sizeof answer; p++)
        answer[k++] = (*p >= 0x20 && *p < 0x7f) ? (char)*p : '?';
    answer[k] = '\0';
    r->q_text = mh_asprintf("%s (%lld)%s%s", report_text(status), (long long)status, answer[0] ? ": " : "", answer);
    mh_logf(MH_LOG_INFO, r->api->who, "delivery report for notification #%" PRId64 ": %s", r->path_id, r->q_text);
    call_store(r, st_report, NULL);
}

/* ------------------------------------------------------------------ routes */

static const struct route routes[] = {
    {"GET", "health", B_NONE, 0, h_health},
    {"POST", "register", B_JSON, 0, h_register},
    {"POST", "login", B_JSON, 0, h_login},
    {"POST", "logout", B_NONE, 1, h_logout},
    {"GET", "me", B_NONE, 1, h_me},
    {"GET", "users", B_NONE, 1, h_users_list},
    {"POST", "users", B_JSON, 1, h_users_create},
    {"GET", "users/#", B_NONE, 1, h_user_get},
    {"PATCH", "users/#", B_JSON, 1, h_user_patch},
    {"DELETE", "users/#", B_NONE, 1, h_user_delete},
    {"GET", "users/#/quota", B_NONE, 1, h_user_quota},
    {"POST", "tokens", B_JSON_OPT, 1, h_tokens},
    {"GET", "accounts", B_NONE, 1, h_accounts_list},
    {"POST", "accounts", B_JSON, 1, h_accounts_create},
    {"GET", "accounts/#", B_NONE, 1, h_account_get},
    {"PATCH", "accounts/#", B_JSON, 1, h_account_patch},
    {"DELETE", "accounts/#", B_NONE, 1, h_account_delete},
    {"POST", "accounts/#/sync", B_NONE, 1, h_account_sync},
    {"POST", "imports", B_MBOX, 1, h_import},
    {"GET", "messages", B_NONE, 1, h_messages},
    {"GET", "messages/#", B_NONE, 1, h_message},
    {"GET", "messages/#/raw", B_NONE, 1, h_message_raw},
    {"GET", "search", B_NONE, 1, h_search},
    {"GET", "export", B_NONE, 1, h_export},
    {"POST", "verify", B_NONE, 1, h_verify},
    {"GET", "notifications", B_NONE, 1, h_notifications},
    {"GET", "notifications/#", B_NONE, 1, h_notification},
    {"POST", "notifications/#/replay", B_NONE, 1, h_notification_replay},
    {"GET", "me/notify", B_NONE, 1, h_rules_get},
    {"PATCH", "me/notify", B_JSON, 1, h_rules_put},
    {"DELETE", "me/notify", B_NONE, 1, h_rules_delete},
    {"GET", "reports/#", B_NONE, 0, h_report},
};
#define N_ROUTES (sizeof routes / sizeof routes[0])

/* Does `path` (after the prefix, no leading '/') match `pattern`?  Sets *id for '#'. */
static int route_match(const char *pattern, const char *path, int64_t *id)
{
    const char *p = pattern, *s = path;
    while (*p && *s) {
        size_t pn = strcspn(p, "/"), sn = strcspn(s, "/");
        if (pn == 1 && *p == '#') {
            int64_t v = parse_id(s, sn);
            if (v <= 0)
                return 0;
            *id = v;
        } else if (pn != sn || strncmp(p, s, pn) != 0) {
            return 0;
        }
        p += pn;
        s += sn;
        if (*p != *s)
            return 0; /* one has a '/' and the other ends */
        if (*p == '/') {
            p++;
            s++;
        }
    }
    return *p == '\0' && *s == '\0';
}

/* The route for (method, path); NULL with a 404 or 405 on r. */
static const struct route *route_find(struct req *r)
{
    if (strncmp(r->path, API_PREFIX "/", sizeof API_PREFIX) != 0) {
        fail(r, 404, "not_found", "no such route (the API is under " API_PREFIX "/)");
        return NULL;
    }
    const char *sub = r->path + sizeof API_PREFIX;
    static const char *const allows[] = {
        "GET", "POST", "PATCH", "DELETE", "GET, PATCH, DELETE", "GET, POST",
    };
    int seen[4] = {0, 0, 0, 0}; /* GET POST PATCH DELETE */
    int any = 0;
    for (size_t i = 0; i < N_ROUTES; i++) {
        int64_t id = 0;
        if (!route_match(routes[i].pattern, sub, &id))
            continue;
        any = 1;
        if (strcmp(routes[i].method, r->method) == 0) {
            r->path_id = id;
            return &routes[i];
        }
        const char *m = routes[i].method;
        seen[strcmp(m, "GET") == 0 ? 0 : strcmp(m, "POST") == 0 ? 1 : strcmp(m, "PATCH") == 0 ? 2 : 3] = 1;
    }
    if (!any) {
        fail(r, 404, "not_found", "no such route");
        return NULL;
    }
    if (seen[0] && seen[2] && seen[3])
        r->allow = allows[4];
    else if (seen[0] && seen[1])
        r->allow = allows[5];
    else
        r->allow = seen[0] ? allows[0] : seen[1] ? allows[1] : seen[2] ? allows[2] : allows[3];
    fail(r, 405, "method_not_allowed", "%s is not allowed here (allowed: %s)", r->method, r->allow);
    return NULL;
}

/* "Bearer mh_..." -> its SHA-256.  0 if absent or malformed. */
static int take_token(struct req *r)
{
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return 0;
    h += 7;
    while (*h == ' ')
        h++;
    size_t n = strlen(h);
    while (n > 0 && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    if (n != MH_TOKEN_LEN || strncmp(h, "mh_", 3) != 0)
        return 0;
    for (size_t i = 3; i < n; i++) {
        char c = h[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return 0;
    }
    mh_sha256(h, n, r->auth_hash);
    return 1;
}

/* The headers stage (first call of the access handler). */
static void start(struct req *r)
{
    struct mh_api *a = r->api;
    const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (cl != NULL) {
        r->has_length = 1;
        r->content_length = strtoull(cl, NULL, 10);
        r->has_body = r->content_length > 0;
    } else if (te != NULL && strcasestr(te, "chunked") != NULL) {
        r->has_body = 1;
    }
    if (r->has_length && r->content_length > JSON_MAX)
        r->no_defer = 1; /* too much to read and drop: answer at once */
    if (a->closing) {
        fail_reply(r, 503, "unavailable", "the server is shutting down");
        return;
    }
    r->route = route_find(r);
    if (r->route == NULL) {
        reply(r);
        return;
    }
    if (r->route->auth) {
        if (!take_token(r)) {
            fail_reply(r, 401, "unauthorized", "this needs an API token (Authorization: Bearer mh_...)");
            return;
        }
        if (q_int(r, "user", 1, INT64_MAX, 0, &r->q_user) != 0) {
            reply(r);
            return;
        }
    }
    static const char *const json_types[] = {"application/json", NULL};
    switch (r->route->body) {
    case B_JSON:
    case B_JSON_OPT:
        if (r->has_body && !ctype_is(r, json_types)) {
            fail_reply(r, 415, "unsupported_media_type", "send the body as Content-Type: application/json");
            return;
        }
        if (r->has_length && r->content_length > JSON_MAX) {
            fail_reply(r, 413, "payload_too_large", "the JSON body is larger than %u bytes", JSON_MAX);
            return;
        }
        break;
    case B_MBOX:
        import_start(r);
        break;
    case B_NONE:
        if (r->has_length && r->content_length > JSON_MAX) {
            fail_reply(r, 413, "payload_too_large", "this request takes no body");
            return;
        }
        break;
    }
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* An error while the body is still coming: drop the rest, answer at the end. */
static void defer_error(struct req *r)
{
    r->deferred = 1;
    if (r->up_fd >= 0) {
        close(r->up_fd);
        r->up_fd = -1;
    }
    if (r->up_path != NULL && !r->up_keep) {
        unlink(r->up_path);
        free(r->up_path);
        r->up_path = NULL;
    }
    if (r->body != NULL) {
        mh_wipe(r->body, r->body_len);
        free(r->body);
        r->body = NULL;
        r->body_len = r->body_cap = 0;
    }
}

/* Body bytes (an upload-data call).  0: close the connection. */
static int consume(struct req *r, const char *data, size_t n)
{
    if (r->deferred || r->err_status != 0 || r->route == NULL || r->route->body == B_NONE) {
        if (r->err_status == 0 && r->route != NULL && r->discarded + n > JSON_MAX) {
            fail(r, 413, "payload_too_large", "this request takes no body");
            defer_error(r);
        }
        r->discarded += n;
        return r->discarded <= DISCARD_MAX;
    }
    if (r->route->body == B_MBOX) {
        struct mh_api *a = r->api;
        if (a->max_upload > 0 && r->up_len + n > a->max_upload) {
            fail(r, 413, "payload_too_large", "the upload is larger than %" PRIu64 " bytes", a->max_upload);
            defer_error(r);
            r->discarded += n;
            return 1;
        }
        if (r->up_fd < 0 || write_all(r->up_fd, data, n) != 0) {
            mh_logf(MH_LOG_ERROR, a->who, "cannot write an upload: %s", strerror(errno));
            fail(r, 500, "internal", "cannot store the upload");
            defer_error(r);
            return 1;
        }
        for (size_t i = 0; r->up_len + i < sizeof r->up_head && i < n; i++)
            r->up_head[r->up_len + i] = data[i];
        r->up_len += n;
        return 1;
    }
    /* JSON */
    if (r->body_len + n > JSON_MAX) {
        fail(r, 413, "payload_too_large", "the JSON body is larger than %u bytes", JSON_MAX);
        defer_error(r);
        r->discarded += n;
        return 1;
    }
    if (r->body_len + n + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 1024;
        while (cap < r->body_len + n + 1)
            cap *= 2;
        char *nb = malloc(cap);
        if (nb == NULL) {
            fail(r, 500, "internal", "out of memory");
            defer_error(r);
            return 1;
        }
        if (r->body != NULL) {
            memcpy(nb, r->body, r->body_len);
            mh_wipe(r->body, r->body_len);
            free(r->body);
        }
        r->body = nb;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return 1;
}

/* The final call: the body is complete. */
static void finish_body(struct req *r)
{
    if (r->err_status != 0 || r->route == NULL) {
        reply(r);
        return;
    }
    enum body_kind k = r->route->body;
    if (k == B_JSON || k == B_JSON_OPT) {
        if (r->body_len == 0) {
            if (k == B_JSON) {
                fail_reply(r, 400, "bad_request", "this request needs a JSON object as its body");
                return;
            }
        } else {
            json_error_t je;
            r->in = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &je);
            mh_wipe(r->body, r->body_len);
            if (r->in == NULL) {
                fail_reply(r, 400, "bad_request", "malformed JSON at line %d, column %d: %s", je.line, je.column,
                           je.text);
                return;
            }
            if (!json_is_object(r->in)) {
                fail_reply(r, 400, "bad_request", "the body must be a JSON object");
                return;
            }
        }
    }
    r->route->handler(r);
}

/* Queue the response if there is one, or suspend while work is pending. */
static enum MHD_Result settle(struct req *r)
{
    if (r->resp != NULL) {
        enum MHD_Result ret = MHD_queue_response(r->conn, r->resp_status, r->resp);
        MHD_destroy_response(r->resp);
        r->resp = NULL;
        r->status_sent = r->resp_status;
        return ret;
    }
    if (r->resp_failed)
        return MHD_NO; /* no memory for a response: close */
    if (r->waiting && !r->suspended) {
        MHD_suspend_connection(r->conn);
        r->suspended = 1;
    }
    return MHD_YES;
}

static void req_free(struct req *r)
{
    struct mh_api *a = r->api;
    if (r->prev != NULL)
        r->prev->next = r->next;
    else if (a->reqs == r)
        a->reqs = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    if (r->resp != NULL)
        MHD_destroy_response(r->resp);
    if (r->up_fd >= 0)
        close(r->up_fd);
    if (r->up_path != NULL && !r->up_keep)
        unlink(r->up_path);
    free(r->up_path);
    if (r->body != NULL)
        mh_wipe(r->body, r->body_len);
    free(r->body);
    json_wipe_decref(&r->in);
    json_decref(r->out);
    json_decref(r->settings);
    json_decref(r->pub);
    json_wipe_decref(&r->sec);
    json_wipe_decref(&r->old_secret);
    free(r->buf);
    free(r->changed);
    free(r->err_msg);
    free(r->path);
    free(r->q_name);
    free(r->q_folder_name);
    free(r->q_search);
    free(r->q_text);
    free(r->q_account_name);
    free(r->name);
    free_secret(&r->password);
    free_secret(&r->phc);
    free(r->phone);
    free(r->email);
    free(r->label);
    free(r->provider);
    mh_wipe(r->token, sizeof r->token);
    free(r);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_data_size,
                                 void **con_cls)
{
    struct mh_api *a = cls;
    struct req *r = *con_cls;
    if (r == NULL) {
        r = calloc(1, sizeof *r);
        if (r == NULL)
            return MHD_NO;
        r->api = a;
        r->conn = conn;
        r->up_fd = -1;
        r->next_after = -1;
        r->t0 = mh_time_now();
        snprintf(r->method, sizeof r->method, "%s", method ? method : "?");
        r->path = strdup(url ? url : "/");
        if (r->path == NULL) {
            free(r);
            return MHD_NO;
        }
        r->next = a->reqs;
        if (a->reqs != NULL)
            a->reqs->prev = r;
        a->reqs = r;
        *con_cls = r;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->phase == PH_HEADERS)
            r->phase = PH_BODY;
        return consume(r, upload_data, n) ? MHD_YES : MHD_NO;
    }
    if (r->phase == PH_HEADERS) {
        if (!r->started) {
            r->started = 1;
            start(r);
        }
        if (r->resp == NULL && !r->waiting)
            r->phase = PH_BODY;
        return settle(r);
    }
    if (r->phase == PH_BODY) {
        r->phase = PH_FINAL;
        finish_body(r);
    }
    return settle(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    struct mh_api *a = cls;
    struct req *r = *con_cls;
    if (r == NULL)
        return;
    *con_cls = NULL;
    double ms = (mh_time_now() - r->t0) * 1000.0;
    if (r->status_sent != 0)
        mh_logf(MH_LOG_DEBUG, a->who, "%s %s -> %u (%.1f ms)%s", r->method, r->path, r->status_sent, ms,
                toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (not delivered)");
    else
        mh_logf(MH_LOG_DEBUG, a->who, "%s %s -> no response (%.1f ms, connection closed)", r->method, r->path, ms);
    req_free(r);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct mh_api *a = cls;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    mh_logf(MH_LOG_DEBUG, a->who, "libmicrohttpd: %s", buf);
}

/* ------------------------------------------------------------- lifecycle */

static int listen_socket(const struct mh_api_opts *opts, char **err)
{
    char port[16];
    snprintf(port, sizeof port, "%d", opts->port);
    const char *addr = opts->address && *opts->address ? opts->address : "127.0.0.1";
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(addr, port, &hints, &res);
    if (gai != 0 || res == NULL) {
        *err = mh_asprintf("cannot resolve the address %s: %s", addr, gai_strerror(gai));
        return -1;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, res->ai_protocol);
    int on = 1;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
        if (res->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
    }
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 64) != 0) {
        int e = errno;
        *err = mh_asprintf("cannot listen on %s%s%s port %d: %s", strchr(addr, ':') ? "[" : "", addr,
                           strchr(addr, ':') ? "]" : "", opts->port, strerror(e));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

static int socket_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

struct mh_api *mh_api_new(struct mh_daemon *d, struct mh_loop *loop, struct mh_storeq *q, struct mh_pool *pool,
                          const struct mh_api_opts *opts, char **err)
{
    *err = NULL;
    if (loop == NULL || q == NULL || pool == NULL || opts == NULL || opts->data_dir == NULL) {
        *err = mh_xstrdup("the control API needs a loop, the store lane, the worker pool and a data directory");
        return NULL;
    }
    int fd = listen_socket(opts, err);
    if (fd < 0)
        return NULL;
    struct mh_api *a = mh_xcalloc(1, sizeof *a);
    a->d = d;
    a->loop = loop;
    a->q = q;
    a->pool = pool;
    a->name = mh_xstrdup(opts->name ? opts->name : "api");
    a->who = mh_asprintf("api/%s", a->name);
    a->data_dir = mh_xstrdup(opts->data_dir);
    a->registration_open = opts->registration_open;
    a->max_upload = opts->max_upload;
    a->port = socket_port(fd);
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    a->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_access, a, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, a,
                              MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_NOTIFY_COMPLETED, on_completed, a,
                              MHD_OPTION_CONNECTION_TIMEOUT, CONN_TIMEOUT_S, MHD_OPTION_CONNECTION_LIMIT,
                              CONN_LIMIT, MHD_OPTION_END);
    if (a->mhd == NULL) {
        close(fd);
        *err = mh_xstrdup("libmicrohttpd failed to start (epoll with suspend/resume is needed)");
        mh_api_free(&a);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    if (info == NULL || info->epoll_fd < 0) {
        *err = mh_xstrdup("libmicrohttpd has no epoll descriptor");
        mh_api_free(&a);
        return NULL;
    }
    a->io = mh_io_new(loop, a, info->epoll_fd, MH_IO_READ, io_cb, a);
    a->timer = mh_timer_new(loop, a, 3600, 0, timer_cb, a);
    if (a->io == NULL || a->timer == NULL) {
        *err = mh_xstrdup("cannot watch the listener");
        mh_api_free(&a);
        return NULL;
    }
    arm_timer(a);
    return a;
}

int mh_api_port(const struct mh_api *a) { return a ? a->port : -1; }

static void barrier_fn(struct mh_hub *hub, void *arg) {}

void mh_api_free(struct mh_api **ap)
{
    if (ap == NULL || *ap == NULL)
        return;
    struct mh_api *a = *ap;
    a->closing = 1;
    if (a->mhd != NULL) {
        MHD_socket lfd = MHD_quiesce_daemon(a->mhd);
        if (lfd != MHD_INVALID_SOCKET)
            close(lfd);
        /* hashing jobs: queued ones finish now as cancelled, running ones are waited for (503 either way) */
        if (a->pool != NULL)
            mh_pool_cancel_owner(a->pool, a);
        /* store work: no completion will come; wait until no store function still uses a request */
        if (a->q != NULL) {
            mh_storeq_cancel_owner(a->q, a);
            mh_storeq_call_sync(a->q, barrier_fn, NULL);
        }
        a->in_run = 1; /* no MHD_run while walking the list: it may free requests */
        for (struct req *r = a->reqs; r != NULL; r = r->next) {
            if (r->waiting) {
                r->waiting = 0;
                r->then = NULL;
                fail(r, 503, "unavailable", "the server is shutting down");
                r->no_defer = 1;
                reply(r);
            }
        }
        a->in_run = 0;
        /* give the 503s a chance to leave, without waiting */
        for (int i = 0; i < 4; i++)
            kick(a);
    }
    mh_io_free(&a->io);
    mh_timer_free(&a->timer);
    if (a->mhd != NULL) {
        struct MHD_Daemon *m = a->mhd;
        a->mhd = NULL;
        MHD_stop_daemon(m); /* completes (and frees) every request */
    }
    while (a->reqs != NULL)
        req_free(a->reqs);
    free(a->name);
    free(a->who);
    free(a->data_dir);
    free(a);
    *ap = NULL;
}

/*
 * netconn: libcurl CONNECT_ONLY connection driven by the host's loop.  See netconn.h.
 */
#include "config.h"

#include "netconn.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define NC_CHUNK 16384           /* one curl_easy_send() at most; the in-flight buffer never moves */
#define NC_RBUF 65536            /* one curl_easy_recv() */
#define NC_MAX_READS_PER_WAKE 64 /* then yield to the loop and come back through a 0 s timer */

struct nc_conn {
    struct mh_plugin_ctx *ctx;
    struct nc_callbacks cbs;
    void *arg;
    char *label;
    char *url;
    int64_t timeout_ms;
    double connect_timeout;

    struct mh_curl *curl;
    CURL *easy;
    curl_socket_t fd;
    struct mh_io *io;
    struct mh_timer *idle_timer; /* inactivity check */
    struct mh_timer *kick;       /* 0 s timer: read again (resumed, or yielded) */
    struct mh_timer *conn_timer; /* connect + login must finish within connect_timeout_ms */
    int io_events;

    int up;     /* connected, not failed */
    int failed; /* closed callback delivered (or due) */
    int paused;
    int expecting;
    int busy;   /* inside a callback to the plugin */
    int doomed; /* nc_close() called while busy */
    double last_rx;

    /* writes: `wbuf` is handed to curl_easy_send and stays put across CURLE_AGAIN retries
       (OpenSSL wants the same buffer back); `q` collects what comes after it. */
    char wbuf[NC_CHUNK];
    size_t woff, wlen;
    char *q;
    size_t qoff, qlen, qcap;

    char errbuf[CURL_ERROR_SIZE];
    char rbuf[NC_RBUF];
};

static void destroy(struct nc_conn *c)
{
    mh_timer_del(c->ctx, &c->conn_timer);
    mh_io_del(c->ctx, &c->io);
    mh_timer_del(c->ctx, &c->idle_timer);
    mh_timer_del(c->ctx, &c->kick);
    if (c->curl != NULL)
        mh_curl_remove(c->ctx, &c->curl); /* cleans up the easy handle and closes the socket */
    mh_free(c->q);
    mh_free(c->label);
    mh_free(c->url);
    mh_free(c);
}

/* Run after every callback into the plugin: honour an nc_close() made inside it. */
static int leave(struct nc_conn *c)
{
    c->busy--;
    if (c->busy == 0 && c->doomed) {
        destroy(c);
        return 1;
    }
    return c->doomed;
}

static void set_events(struct nc_conn *c)
{
    if (c->io == NULL)
        return;
    int ev = 0;
    if (!c->paused)
        ev |= MH_IO_READ;
    if (c->wlen > c->woff || c->qlen > c->qoff)
        ev |= MH_IO_WRITE;
    if (ev != c->io_events) {
        c->io_events = ev;
        mh_io_set(c->ctx, c->io, ev);
    }
}

/* Deliver the end of the connection once.  Returns 1 if c is gone. */
static int fail(struct nc_conn *c, int rc, const char *fmt, ...) MH_PRINTF(3, 4);
static int fail(struct nc_conn *c, int rc, const char *fmt, ...)
{
    if (c->failed || c->doomed)
        return c->doomed && c->busy == 0;
    c->failed = 1;
    c->up = 0;
    mh_timer_del(c->ctx, &c->conn_timer);
    mh_io_del(c->ctx, &c->io);
    mh_timer_del(c->ctx, &c->idle_timer);
    mh_timer_del(c->ctx, &c->kick);
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->cbs.closed == NULL)
        return 0;
    c->busy++;
    c->cbs.closed(c, rc, msg, c->arg);
    return leave(c);
}

static int map_curl_error(CURLcode cc)
{
    switch (cc) {
    case CURLE_LOGIN_DENIED:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_USE_SSL_FAILED:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_AUTH_ERROR:
        return MH_ERR;
    case CURLE_OPERATION_TIMEDOUT:
        return MH_ETIMEDOUT;
    default:
        return MH_ERETRY;
    }
}

/* Send what the socket takes.  Returns 1 if c is gone. */
static int flush(struct nc_conn *c)
{
    while (c->up) {
        if (c->woff == c->wlen) {
            size_t n = c->qlen - c->qoff;
            if (n == 0)
                break;
            if (n > NC_CHUNK)
                n = NC_CHUNK;
            memcpy(c->wbuf, c->q + c->qoff, n);
            c->qoff += n;
            c->woff = 0;
            c->wlen = n;
            if (c->qoff == c->qlen)
                c->qoff = c->qlen = 0;
        }
        size_t sent = 0;
        CURLcode cc = curl_easy_send(c->easy, c->wbuf + c->woff, c->wlen - c->woff, &sent);
        if (cc == CURLE_AGAIN)
            break;
        if (cc != CURLE_OK)
            return fail(c, MH_ERETRY, "%s: send failed: %s", c->label, curl_easy_strerror(cc));
        c->woff += sent;
        if (sent == 0)
            break;
    }
    if (c->woff == c->wlen)
        c->woff = c->wlen = 0;
    set_events(c);
    return 0;
}

static void kick_cb(struct mh_timer *t, void *arg);

static void schedule_kick(struct nc_conn *c)
{
    if (c->kick == NULL && c->up)
        c->kick = mh_timer_add(c->ctx, 0, 0, kick_cb, c);
}

/* Drain the socket (TLS may hold decrypted bytes: read until CURLE_AGAIN).  Returns 1 if c is gone. */
static int drain(struct nc_conn *c)
{
    int reads = 0;
    while (c->up && !c->paused && !c->doomed) {
        if (++reads > NC_MAX_READS_PER_WAKE) {
            schedule_kick(c); /* be fair to the other connections of the loop */
            break;
        }
        size_t n = 0;
        CURLcode cc = curl_easy_recv(c->easy, c->rbuf, sizeof c->rbuf, &n);
        if (cc == CURLE_AGAIN)
            break;
        if (cc != CURLE_OK)
            return fail(c, MH_ERETRY, "%s: receive failed: %s", c->label, curl_easy_strerror(cc));
        if (n == 0)
            return fail(c, MH_ERETRY, "%s: connection closed by the server", c->label);
        c->last_rx = mh_now(c->ctx);
        c->busy++;
        c->cbs.read(c, c->rbuf, n, c->arg);
        if (leave(c))
            return 1;
    }
    return 0;
}

static void kick_cb(struct mh_timer *t, void *arg)
{
    struct nc_conn *c = arg;
    (void)t;
    mh_timer_del(c->ctx, &c->kick);
    c->busy++;
    drain(c);
    if (!c->doomed && c->up)
        flush(c);
    leave(c);
}

static void io_cb(struct mh_io *io, int fd, int revents, void *arg)
{
    struct nc_conn *c = arg;
    (void)io;
    (void)fd;
    c->busy++; /* c stays allocated until the matching leave() */
    if ((revents & MH_IO_WRITE) && !c->doomed && c->up)
        flush(c);
    if ((revents & MH_IO_READ) && !c->doomed && c->up)
        drain(c);
    leave(c);
}

static void arm_idle(struct nc_conn *c, double after);

static void idle_cb(struct mh_timer *t, void *arg)
{
    struct nc_conn *c = arg;
    (void)t;
    mh_timer_del(c->ctx, &c->idle_timer);
    if (!c->up)
        return;
    double limit = (double)c->timeout_ms / 1000.0;
    double quiet = mh_now(c->ctx) - c->last_rx;
    if (c->expecting && quiet >= limit) {
        c->busy++;
        fail(c, MH_ETIMEDOUT, "%s: no answer from the server for %.0f s", c->label, quiet);
        leave(c);
        return;
    }
    arm_idle(c, c->expecting ? limit - quiet : limit);
}

static void arm_idle(struct nc_conn *c, double after)
{
    if (c->timeout_ms <= 0 || c->idle_timer != NULL)
        return;
    if (after < 0.05)
        after = 0.05;
    c->idle_timer = mh_timer_add(c->ctx, after, 0, idle_cb, c);
}

/*
 * The core gives every curl handle its own connect timeout, whatever the
 * plugin set; this one makes connect_timeout_ms hold (a server that accepts
 * and never greets, or stalls the login).
 */
static void conn_timer_cb(struct mh_timer *t, void *arg)
{
    struct nc_conn *c = arg;
    (void)t;
    mh_timer_del(c->ctx, &c->conn_timer);
    if (c->up || c->failed)
        return;
    c->busy++;
    fail(c, MH_ETIMEDOUT, "%s: no answer from the server within %.0f s (connect, TLS and login)", c->label,
         c->connect_timeout);
    leave(c);
}

static void connect_done(struct mh_curl *h, void *easy, int result, void *arg)
{
    struct nc_conn *c = arg;
    (void)h;
    (void)easy;
    mh_timer_del(c->ctx, &c->conn_timer);
    c->busy++;
    if (result != CURLE_OK) {
        CURLcode cc = (CURLcode)result;
        fail(c, map_curl_error(cc), "%s: %s%s%s", c->label, curl_easy_strerror(cc), c->errbuf[0] ? ": " : "",
             c->errbuf);
        leave(c);
        return;
    }
    curl_socket_t s = CURL_SOCKET_BAD;
    if (curl_easy_getinfo(c->easy, CURLINFO_ACTIVESOCKET, &s) != CURLE_OK || s == CURL_SOCKET_BAD) {
        fail(c, MH_ERETRY, "%s: connected, but curl has no socket", c->label);
        leave(c);
        return;
    }
    c->fd = s;
    c->io_events = MH_IO_READ;
    c->io = mh_io_add(c->ctx, (int)s, MH_IO_READ, io_cb, c);
    if (c->io == NULL) {
        fail(c, MH_ERETRY, "%s: cannot watch the socket", c->label);
        leave(c);
        return;
    }
    c->up = 1;
    c->last_rx = mh_now(c->ctx);
    arm_idle(c, (double)c->timeout_ms / 1000.0);
    if (c->cbs.connected != NULL)
        c->cbs.connected(c, c->arg);
    if (!c->doomed && c->up) {
        set_events(c);
        schedule_kick(c); /* bytes curl read past the login may already wait in TLS buffers */
    }
    leave(c);
}

static char *dup_printf(const char *fmt, ...) MH_PRINTF(1, 2);
static char *dup_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *s = mh_malloc((size_t)n + 1);
    if (s == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

int nc_open(struct mh_plugin_ctx *ctx, const struct nc_opts *o, const struct nc_callbacks *cbs, void *arg,
            struct nc_conn **out)
{
    *out = NULL;
    if (o == NULL || cbs == NULL || cbs->read == NULL || o->host == NULL || o->host[0] == '\0' ||
        o->scheme == NULL)
        return MH_EINVAL;
    int pop3 = strcmp(o->scheme, "pop3") == 0;
    if (!pop3 && strcmp(o->scheme, "imap") != 0)
        return MH_EINVAL;
    if (o->username == NULL && !pop3)
        return MH_EINVAL; /* POP3 only: no user name means "no login" (the plugin sends USER/PASS) */
    /* a host must not smuggle URL syntax (path, credentials, another port) */
    if (strpbrk(o->host, "/@?#[] \t\r\n") != NULL)
        return MH_EINVAL;

    struct nc_conn *c = mh_calloc(1, sizeof *c);
    if (c == NULL)
        return MH_ENOMEM;
    c->ctx = ctx;
    c->cbs = *cbs;
    c->arg = arg;
    c->timeout_ms = o->timeout_ms;
    c->expecting = 1;
    c->fd = CURL_SOCKET_BAD;
    int implicit = o->tls == NC_TLS_IMPLICIT;
    int port = o->port > 0 ? o->port : pop3 ? (implicit ? 995 : 110) : (implicit ? 993 : 143);
    int v6 = strchr(o->host, ':') != NULL;
    c->url = dup_printf("%s%s://%s%s%s:%d/", o->scheme, implicit ? "s" : "", v6 ? "[" : "", o->host,
                        v6 ? "]" : "", port);
    c->label = o->label != NULL ? mh_strdup(o->label)
                                : dup_printf("%s@%s", o->username != NULL ? o->username : "", o->host);
    CURL *e = curl_easy_init();
    if (c->url == NULL || c->label == NULL || e == NULL) {
        if (e != NULL)
            curl_easy_cleanup(e);
        destroy(c);
        return MH_ENOMEM;
    }

    CURLcode cc = CURLE_OK;
#define NC_SET(opt, val)                                                                                     \
    do {                                                                                                     \
        if (cc == CURLE_OK)                                                                                  \
            cc = curl_easy_setopt(e, opt, val);                                                              \
    } while (0)
    NC_SET(CURLOPT_URL, c->url);
    NC_SET(CURLOPT_PROTOCOLS_STR, pop3 ? "pop3,pop3s" : "imap,imaps");
    NC_SET(CURLOPT_CONNECT_ONLY, 1L);
    NC_SET(CURLOPT_NOSIGNAL, 1L);
    NC_SET(CURLOPT_ERRORBUFFER, c->errbuf);
    NC_SET(CURLOPT_SSL_VERIFYPEER, 1L);
    NC_SET(CURLOPT_SSL_VERIFYHOST, 2L);
    NC_SET(CURLOPT_USE_SSL, (long)(o->tls == NC_TLS_NONE ? CURLUSESSL_NONE : CURLUSESSL_ALL));
    NC_SET(CURLOPT_CONNECTTIMEOUT_MS, (long)(o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 30000));
    /* The login exchange counts against the connect timeout; a silent server must not hang it. */
    NC_SET(CURLOPT_SERVER_RESPONSE_TIMEOUT,
           (long)((o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 30000) / 1000 + 1));
    if (o->username != NULL)
        NC_SET(CURLOPT_USERNAME, o->username);
    if (o->password != NULL)
        NC_SET(CURLOPT_PASSWORD, o->password);
    if (o->bearer != NULL)
        NC_SET(CURLOPT_XOAUTH2_BEARER, o->bearer);
    if (o->login_options != NULL)
        NC_SET(CURLOPT_LOGIN_OPTIONS, o->login_options);
    if (o->ca_file != NULL && o->ca_file[0] != '\0')
        NC_SET(CURLOPT_CAINFO, o->ca_file);
    NC_SET(CURLOPT_TCP_KEEPALIVE, 1L);
#undef NC_SET
    if (cc != CURLE_OK) {
        mh_log_error(ctx, "%s: cannot configure the connection: %s", c->label, curl_easy_strerror(cc));
        curl_easy_cleanup(e);
        destroy(c);
        return cc == CURLE_OUT_OF_MEMORY ? MH_ENOMEM : MH_EINVAL;
    }
    c->easy = e;
    c->curl = mh_curl_add_take(ctx, e, connect_done, c);
    if (c->curl == NULL) {
        mh_log_error(ctx, "%s: the core refused the connection handle", c->label);
        c->easy = NULL;
        destroy(c);
        return MH_ERETRY;
    }
    c->connect_timeout = (double)(o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 30000) / 1000.0;
    c->conn_timer = mh_timer_add(ctx, c->connect_timeout + 0.5, 0, conn_timer_cb, c);
    *out = c;
    return MH_PENDING;
}

int nc_write(struct nc_conn *c, const void *data, size_t len)
{
    if (c == NULL || !c->up || c->doomed)
        return MH_ECANCELED;
    if (len == 0)
        return MH_OK;
    if (c->qoff > 0 && c->qoff == c->qlen)
        c->qoff = c->qlen = 0;
    if (c->qlen + len > c->qcap) {
        if (c->qoff > 0) { /* compact before growing */
            memmove(c->q, c->q + c->qoff, c->qlen - c->qoff);
            c->qlen -= c->qoff;
            c->qoff = 0;
        }
        if (c->qlen + len > c->qcap) {
            size_t cap = c->qcap ? c->qcap : 4096;
            while (cap < c->qlen + len)
                cap *= 2;
            char *q = realloc(c->q, cap);
            if (q == NULL)
                return MH_ENOMEM;
            c->q = q;
            c->qcap = cap;
        }
    }
    memcpy(c->q + c->qlen, data, len);
    c->qlen += len;
    /* sent when the loop finds the socket writable: commands written in one callback go out together */
    set_events(c);
    return MH_OK;
}

int nc_printf(struct nc_conn *c, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return MH_EINVAL;
    if ((size_t)n < sizeof small)
        return nc_write(c, small, (size_t)n);
    char *big = mh_malloc((size_t)n + 1);
    if (big == NULL)
        return MH_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = nc_write(c, big, (size_t)n);
    mh_free(big);
    return rc;
}

size_t nc_pending_out(const struct nc_conn *c)
{
    return c == NULL ? 0 : (c->wlen - c->woff) + (c->qlen - c->qoff);
}

void nc_pause_read(struct nc_conn *c, int paused)
{
    if (c == NULL || c->paused == !!paused)
        return;
    c->paused = !!paused;
    if (!c->up)
        return;
    set_events(c);
    if (!c->paused)
        schedule_kick(c); /* TLS may hold bytes that no readiness event will announce */
}

void nc_expect(struct nc_conn *c, int expecting)
{
    if (c == NULL)
        return;
    c->expecting = !!expecting;
    c->last_rx = mh_now(c->ctx);
}

const char *nc_label(const struct nc_conn *c)
{
    return c != NULL ? c->label : "";
}

void nc_close(struct nc_conn **cp)
{
    if (cp == NULL || *cp == NULL)
        return;
    struct nc_conn *c = *cp;
    *cp = NULL;
    c->up = 0;
    mh_io_del(c->ctx, &c->io);
    mh_timer_del(c->ctx, &c->idle_timer);
    mh_timer_del(c->ctx, &c->kick);
    mh_timer_del(c->ctx, &c->conn_timer);
    if (c->busy > 0) {
        c->doomed = 1; /* freed when the callback in progress returns */
        return;
    }
    destroy(c);
}

void nc_discard(struct nc_conn **cp)
{
    if (cp == NULL || *cp == NULL)
        return;
    struct nc_conn *c = *cp;
    *cp = NULL;
    mh_free(c->q);
    mh_free(c->label);
    mh_free(c->url);
    mh_free(c);
}

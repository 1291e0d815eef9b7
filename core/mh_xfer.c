/*
 * Transfers: the core's one curl multi handle, driven by the loop through
 * curl_multi_socket_action.  curl's socket callback maps each socket to one mh_io
 * (remembered with curl_multi_assign); curl's timer callback arms one mh_timer.
 *
 * The traps described in ../shared/docs/TRANSPORT.md, and how they are avoided:
 *  1. timeouts are converted with / 1000.0, so a sub-second timeout never becomes 0
 *     (which would make the loop spin);
 *  2. the timer is never stopped after reading completions: a completion callback that
 *     starts a new transfer makes curl ask for a 0 ms timeout, and stopping the timer
 *     then would leave that transfer unstarted.  Only curl stops it (timeout_ms == -1);
 *  3. curl_multi_socket_action is never called from curl's own socket or timer
 *     callbacks: a 0 ms timeout just re-arms the timer for 0 s.
 *
 * User callbacks only ever run from xfer_drain() (after curl_multi_socket_action has
 * returned), from a 0 s timer, or synchronously from a cancel: never from inside curl.
 * Thread: loop.
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mh_log.h"
#include "mh_loop.h"
#include "mh_xfer.h"

#define MH_XFER_DEFAULT_TIMEOUT_MS 30000
#define MH_XFER_DEFAULT_CONNECT_TIMEOUT_MS 10000
#define MH_XFER_DEFAULT_MAXCONNECTS 64L

#ifdef PACKAGE_VERSION
#define MH_XFER_USER_AGENT "mailhub/" PACKAGE_VERSION
#else
#define MH_XFER_USER_AGENT "mailhub"
#endif

enum xreq_kind { XREQ_HTTP = 1, XREQ_CURL = 2 };

/* Common head of an HTTP request and a taken curl handle. */
struct xreq {
    struct xreq *prev, *next;
    struct mh_xfer *x;
    void *owner;
    unsigned long seq; /* creation order, so cancel_owner skips what its callbacks add */
    enum xreq_kind kind;
    CURL *easy;
    int in_multi;
};

struct mh_http {
    struct xreq r;
    mh_http_cb cb;
    void *arg;
    struct curl_slist *req_headers;
    /* Set when curl refused the request synchronously: the failure is delivered from it. */
    struct mh_timer *fail_timer;
    int fail_rc;
    char *body;
    size_t body_len, body_cap;
    int body_too_big;
    int oom;
    struct mh_http_header *headers;
    size_t n_headers, cap_headers;
    char errbuf[CURL_ERROR_SIZE];
};

struct mh_curl {
    struct xreq r;
    mh_curl_cb cb;
    void *arg;
    int done;
};

struct mh_xfer {
    struct mh_loop *loop;
    CURLM *multi;
    struct mh_timer *timer;
    struct xreq https; /* sentinel: HTTP requests */
    struct xreq curls; /* sentinel: taken handles */
    size_t n_active;
    unsigned long seq;
    unsigned long wakeups;
    int64_t timeout_ms;
    int64_t connect_timeout_ms;
    char *ca_file;
    struct curl_blob ca_blob; /* ca_file's bytes: CURLOPT_CAINFO_BLOB adds them to the system store and leaves a
                                 plugin's own CURLOPT_CAINFO alone */
    int closing;
};

/* ------------------------------------------------------------------ lists */

static void xreq_list_init(struct xreq *head)
{
    head->next = head->prev = head;
}

static void xreq_link(struct mh_xfer *x, struct xreq *head, struct xreq *r, void *owner, enum xreq_kind kind,
                      CURL *easy)
{
    r->x = x;
    r->owner = owner;
    r->kind = kind;
    r->easy = easy;
    r->seq = ++x->seq;
    r->prev = head->prev;
    r->next = head;
    head->prev->next = r;
    head->prev = r;
    x->n_active++;
}

static void xreq_unlink(struct xreq *r)
{
    if (r->next == NULL)
        return;
    r->prev->next = r->next;
    r->next->prev = r->prev;
    r->next = r->prev = NULL;
    r->x->n_active--;
}

/* Leave the multi handle (curl may call the socket and timer callbacks from here). */
static void xreq_remove_from_multi(struct xreq *r)
{
    if (r->in_multi) {
        curl_multi_remove_handle(r->x->multi, r->easy);
        r->in_multi = 0;
    }
}

static struct mh_curl *curl_find(struct mh_xfer *x, CURL *easy)
{
    for (struct xreq *r = x->curls.next; r != &x->curls; r = r->next)
        if (r->easy == easy)
            return (struct mh_curl *)r;
    return NULL;
}

/* -------------------------------------------------------- HTTP requests */

static void http_headers_clear(struct mh_http *h)
{
    for (size_t i = 0; i < h->n_headers; i++)
        free((char *)h->headers[i].name); /* name and value share one allocation */
    h->n_headers = 0;
}

static void http_free(struct mh_http *h)
{
    mh_timer_free(&h->fail_timer);
    if (h->r.easy != NULL)
        curl_easy_cleanup(h->r.easy);
    curl_slist_free_all(h->req_headers);
    http_headers_clear(h);
    free(h->headers);
    free(h->body);
    free(h);
}

/* Take the request out of the multi handle and the lists: nothing can complete it now. */
static void http_detach(struct mh_http *h)
{
    mh_timer_free(&h->fail_timer);
    xreq_remove_from_multi(&h->r);
    xreq_unlink(&h->r);
}

static void http_deliver(struct mh_http *h, int rc, long status, const char *error, double total_time)
{
    struct mh_http_response resp = {
        .struct_size = sizeof resp,
        .status = status,
        .body = h->body != NULL ? h->body : "",
        .body_len = h->body_len,
        .headers = h->headers,
        .n_headers = h->n_headers,
        .error = rc == MH_OK ? NULL : (error != NULL ? error : "transfer failed"),
        .total_time = total_time,
    };
    h->cb(h->arg, &resp, rc);
}

static int http_map_error(CURLcode res)
{
    switch (res) {
    case CURLE_OK:
        return MH_OK;
    case CURLE_OPERATION_TIMEDOUT:
        return MH_ETIMEDOUT;
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
    case CURLE_QUIC_CONNECT_ERROR:
    case CURLE_AGAIN:
        return MH_ERETRY;
    default:
        return MH_ERR;
    }
}

static void http_complete(struct mh_http *h, CURLcode res)
{
    long status = 0;
    double total = 0;
    curl_easy_getinfo(h->r.easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(h->r.easy, CURLINFO_TOTAL_TIME, &total);
    http_detach(h);

    int rc = http_map_error(res);
    const char *error = NULL;
    if (h->body_too_big || res == CURLE_FILESIZE_EXCEEDED) {
        rc = MH_ERR;
        error = "response body larger than 16 MiB";
    } else if (h->oom) {
        rc = MH_ENOMEM;
        error = "out of memory";
    } else if (rc != MH_OK) {
        error = h->errbuf[0] != '\0' ? h->errbuf : curl_easy_strerror(res);
    }
    http_deliver(h, rc, status, error, total);
    http_free(h);
}

static void http_cancel(struct mh_http *h)
{
    http_detach(h);
    http_deliver(h, MH_ECANCELED, 0, "canceled", 0);
    http_free(h);
}

static void http_fail_cb(struct mh_timer *t, void *arg)
{
    struct mh_http *h = arg;
    http_detach(h);
    http_deliver(h, h->fail_rc, 0, h->errbuf[0] != '\0' ? h->errbuf : "request rejected", 0);
    http_free(h);
}

static size_t http_write_cb(char *buf, size_t size, size_t n, void *ud)
{
    struct mh_http *h = ud;
    size_t len = size * n;
    if (len > MH_XFER_MAX_BODY - h->body_len) {
        h->body_too_big = 1;
        return 0; /* makes curl fail the transfer with CURLE_WRITE_ERROR */
    }
    if (h->body_len + len + 1 > h->body_cap) {
        size_t cap = h->body_cap ? h->body_cap : 4096;
        while (cap < h->body_len + len + 1)
            cap *= 2;
        if (cap > MH_XFER_MAX_BODY + 1)
            cap = MH_XFER_MAX_BODY + 1;
        char *p = realloc(h->body, cap);
        if (p == NULL) {
            h->oom = 1;
            return 0;
        }
        h->body = p;
        h->body_cap = cap;
    }
    memcpy(h->body + h->body_len, buf, len);
    h->body_len += len;
    h->body[h->body_len] = '\0';
    return len;
}

static size_t http_header_cb(char *buf, size_t size, size_t n, void *ud)
{
    struct mh_http *h = ud;
    size_t len = size * n;
    /* A status line starts a new response (100 Continue, a redirect): keep the last one's. */
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        http_headers_clear(h);
        return len;
    }
    size_t end = len;
    while (end > 0 && (buf[end - 1] == '\r' || buf[end - 1] == '\n'))
        end--;
    if (end == 0 || buf[0] == ' ' || buf[0] == '\t') /* blank, or obsolete line folding */
        return len;
    const char *colon = memchr(buf, ':', end);
    if (colon == NULL)
        return len;
    size_t name_len = (size_t)(colon - buf);
    const char *v = colon + 1, *vend = buf + end;
    while (v < vend && (*v == ' ' || *v == '\t'))
        v++;
    while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
        vend--;
    size_t value_len = (size_t)(vend - v);

    if (h->n_headers == h->cap_headers) {
        size_t cap = h->cap_headers ? h->cap_headers * 2 : 16;
        struct mh_http_header *p = realloc(h->headers, cap * sizeof *p);
        if (p == NULL) {
            h->oom = 1;
            return 0;
        }
        h->headers = p;
        h->cap_headers = cap;
    }
    char *s = malloc(name_len + value_len + 2);
    if (s == NULL) {
        h->oom = 1;
        return 0;
    }
    memcpy(s, buf, name_len);
    s[name_len] = '\0';
    memcpy(s + name_len + 1, v, value_len);
    s[name_len + 1 + value_len] = '\0';
    h->headers[h->n_headers].name = s;
    h->headers[h->n_headers].value = s + name_len + 1;
    h->n_headers++;
    return len;
}

/* An HTTP method is a token (RFC 9110); anything else could smuggle a second request line. */
static int method_valid(const char *m)
{
    size_t n = strlen(m);
    if (n == 0 || n > 32)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)m[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              strchr("!#$%&'*+-.^_`|~", c) != NULL))
            return 0;
    }
    return 1;
}

/* Apply every option; returns the first CURLcode that failed. */
static CURLcode http_setup(struct mh_http *h, const struct mh_http_request *req, const char *method,
                           int has_body)
{
    struct mh_xfer *x = h->r.x;
    CURL *e = h->r.easy;
    CURLcode rc = CURLE_OK;
    int64_t timeout = req->timeout_ms > 0 ? req->timeout_ms : x->timeout_ms;
    int64_t ctimeout = req->connect_timeout_ms > 0 ? req->connect_timeout_ms : x->connect_timeout_ms;

#define MH_SETOPT(opt, val)                                                                                  \
    do {                                                                                                     \
        if (rc == CURLE_OK)                                                                                  \
            rc = curl_easy_setopt(e, opt, val);                                                              \
    } while (0)

    MH_SETOPT(CURLOPT_ERRORBUFFER, h->errbuf);
    MH_SETOPT(CURLOPT_PRIVATE, (void *)h);
    MH_SETOPT(CURLOPT_NOSIGNAL, 1L);
    MH_SETOPT(CURLOPT_URL, req->url);
#if LIBCURL_VERSION_NUM >= 0x075500
    MH_SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    MH_SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    MH_SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    MH_SETOPT(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    MH_SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    MH_SETOPT(CURLOPT_TIMEOUT_MS, (long)timeout);
    MH_SETOPT(CURLOPT_CONNECTTIMEOUT_MS, (long)ctimeout);
    MH_SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)MH_XFER_MAX_BODY);
    MH_SETOPT(CURLOPT_USERAGENT, MH_XFER_USER_AGENT);
    MH_SETOPT(CURLOPT_WRITEFUNCTION, http_write_cb);
    MH_SETOPT(CURLOPT_WRITEDATA, (void *)h);
    MH_SETOPT(CURLOPT_HEADERFUNCTION, http_header_cb);
    MH_SETOPT(CURLOPT_HEADERDATA, (void *)h);
    if (x->ca_blob.data != NULL)
        MH_SETOPT(CURLOPT_CAINFO_BLOB, &x->ca_blob);

    if (strcmp(method, "GET") == 0 && !has_body) {
        MH_SETOPT(CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0 && !has_body) {
        MH_SETOPT(CURLOPT_NOBODY, 1L);
    } else {
        if (strcmp(method, "POST") == 0 || has_body) {
            /* The size goes first: COPYPOSTFIELDS copies that many bytes. */
            MH_SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
            MH_SETOPT(CURLOPT_COPYPOSTFIELDS, req->body != NULL ? (const char *)req->body : "");
        }
        if (strcmp(method, "POST") != 0)
            MH_SETOPT(CURLOPT_CUSTOMREQUEST, method);
    }
    MH_SETOPT(CURLOPT_HTTPHEADER, h->req_headers);
#undef MH_SETOPT
    return rc;
}

int mh_xfer_http(struct mh_xfer *x, void *owner, const struct mh_http_request *req_in, mh_http_cb cb,
                 void *arg, struct mh_http **handle_out)
{
    if (handle_out != NULL)
        *handle_out = NULL;
    if (x == NULL || req_in == NULL || cb == NULL || req_in->struct_size == 0)
        return MH_EINVAL;
    if (x->closing)
        return MH_ECANCELED;

    /* A plugin built against an older SDK passes a shorter struct: missing fields read 0. */
    struct mh_http_request req;
    memset(&req, 0, sizeof req);
    memcpy(&req, req_in, req_in->struct_size < sizeof req ? req_in->struct_size : sizeof req);
    if (req.url == NULL || (req.body == NULL && req.body_len > 0))
        return MH_EINVAL;
    int has_body = req.body != NULL;
    const char *method = req.method != NULL ? req.method : (has_body ? "POST" : "GET");
    if (!method_valid(method))
        return MH_EINVAL;

    struct mh_http *h = calloc(1, sizeof *h);
    if (h == NULL)
        return MH_ENOMEM;
    h->cb = cb;
    h->arg = arg;

    /* Request headers: curl sends each line verbatim, so a CR or LF would inject more. */
    int have_expect = 0;
    for (const char *const *p = req.headers; p != NULL && *p != NULL; p++) {
        if (strpbrk(*p, "\r\n") != NULL || strchr(*p, ':') == NULL) {
            http_free(h);
            return MH_EINVAL;
        }
        if (strncasecmp(*p, "Expect:", 7) == 0)
            have_expect = 1;
        struct curl_slist *l = curl_slist_append(h->req_headers, *p);
        if (l == NULL) {
            http_free(h);
            return MH_ENOMEM;
        }
        h->req_headers = l;
    }
    if (has_body && !have_expect) {
        /* No "Expect: 100-continue" round trip (a server that ignores it costs 1 s). */
        struct curl_slist *l = curl_slist_append(h->req_headers, "Expect:");
        if (l == NULL) {
            http_free(h);
            return MH_ENOMEM;
        }
        h->req_headers = l;
    }

    h->r.easy = curl_easy_init();
    if (h->r.easy == NULL) {
        http_free(h);
        return MH_ENOMEM;
    }
    xreq_link(x, &x->https, &h->r, owner, XREQ_HTTP, h->r.easy);

    CURLcode cc = http_setup(h, &req, method, has_body);
    CURLMcode mc = CURLM_OK;
    if (cc == CURLE_OK) {
        mc = curl_multi_add_handle(x->multi, h->r.easy);
        if (mc == CURLM_OK)
            h->r.in_multi = 1;
    }
    if (cc != CURLE_OK || mc != CURLM_OK) {
        /* The callback must never run before we return: deliver the failure from a timer. */
        if (cc == CURLE_OUT_OF_MEMORY || mc == CURLM_OUT_OF_MEMORY)
            h->fail_rc = MH_ENOMEM;
        else if (cc == CURLE_BAD_FUNCTION_ARGUMENT || cc == CURLE_UNKNOWN_OPTION)
            h->fail_rc = MH_EINVAL; /* e.g. a URL over curl's 8 MB limit */
        else
            h->fail_rc = MH_ERR;
        if (h->errbuf[0] == '\0') {
            const char *msg = cc != CURLE_OK ? curl_easy_strerror(cc) : curl_multi_strerror(mc);
            snprintf(h->errbuf, sizeof h->errbuf, "%s", msg);
        }
        h->fail_timer = mh_timer_new(x->loop, x, 0, 0, http_fail_cb, h);
        if (h->fail_timer == NULL) {
            xreq_unlink(&h->r);
            http_free(h);
            return MH_ENOMEM;
        }
    }
    if (handle_out != NULL)
        *handle_out = h;
    return MH_PENDING;
}

void mh_xfer_http_cancel(struct mh_http **hp)
{
    if (hp == NULL || *hp == NULL)
        return;
    struct mh_http *h = *hp;
    *hp = NULL;
    http_cancel(h);
}

/* ------------------------------------------------------ taken curl handles */

static void curl_destroy(struct mh_curl *c)
{
    xreq_remove_from_multi(&c->r);
    xreq_unlink(&c->r);
    curl_easy_cleanup(c->r.easy);
    free(c);
}

struct mh_curl *mh_xfer_curl_add_take(struct mh_xfer *x, void *owner, void *easy, mh_curl_cb cb, void *arg)
{
    if (easy == NULL)
        return NULL;
    if (x == NULL || cb == NULL || x->closing) {
        curl_easy_cleanup(easy);
        return NULL;
    }
    if (curl_find(x, easy) != NULL)
        return NULL; /* already ours: cleaning it up would pull it from under its owner */
    struct mh_curl *c = calloc(1, sizeof *c);
    if (c == NULL) {
        curl_easy_cleanup(easy);
        return NULL;
    }
    c->cb = cb;
    c->arg = arg;
    /*
     * libcurl cannot report whether the plugin set an option, so only the connect
     * timeout gets the core's default: a whole-transfer timeout would cut a
     * CONNECT_ONLY connection (IMAP IDLE) that is meant to live for hours.  The
     * daemon's extra CAs go in as a blob, in addition to the plugin's own CAINFO.
     */
    CURLcode cc = curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)x->connect_timeout_ms);
    if (cc == CURLE_OK && x->ca_blob.data != NULL)
        cc = curl_easy_setopt(easy, CURLOPT_CAINFO_BLOB, &x->ca_blob);
    if (cc != CURLE_OK) {
        curl_easy_cleanup(easy);
        free(c);
        return NULL;
    }
    xreq_link(x, &x->curls, &c->r, owner, XREQ_CURL, easy);
    CURLMcode mc = curl_multi_add_handle(x->multi, easy);
    if (mc != CURLM_OK) {
        mh_core_warn("curl_multi_add_handle: %s", curl_multi_strerror(mc));
        xreq_unlink(&c->r);
        if (mc != CURLM_ADDED_ALREADY)
            curl_easy_cleanup(easy);
        free(c);
        return NULL;
    }
    c->r.in_multi = 1;
    return c;
}

void mh_xfer_curl_remove(struct mh_curl **cp)
{
    if (cp == NULL || *cp == NULL)
        return;
    struct mh_curl *c = *cp;
    *cp = NULL;
    curl_destroy(c);
}

void *mh_xfer_curl_easy(struct mh_curl *c)
{
    return c != NULL ? c->r.easy : NULL;
}

/* --------------------------------------------------------- multi driving */

/* Hand every finished transfer to its callback.  Callbacks may add, cancel or remove. */
static void xfer_drain(struct mh_xfer *x)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(x->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        /* m is invalid once a handle is removed: copy what we need first. */
        CURL *easy = m->easy_handle;
        CURLcode res = m->data.result;
        struct mh_curl *c = curl_find(x, easy);
        if (c != NULL) {
            /*
             * The handle stays in the multi handle until mh_xfer_curl_remove():
             * removing a CONNECT_ONLY handle would drop its connection.
             */
            if (!c->done) {
                c->done = 1;
                c->cb(c, easy, (int)res, c->arg); /* may remove c */
            }
            continue;
        }
        char *priv = NULL;
        if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv) == CURLE_OK && priv != NULL)
            http_complete((struct mh_http *)(void *)priv, res);
    }
}

static void xfer_action(struct mh_xfer *x, curl_socket_t s, int flags)
{
    int running = 0;
    CURLMcode mc = curl_multi_socket_action(x->multi, s, flags, &running);
    if (mc != CURLM_OK)
        mh_core_warn("curl_multi_socket_action: %s", curl_multi_strerror(mc));
    /* Trap 2: no "stop the timer when nothing runs" here; curl stops it itself. */
    xfer_drain(x);
}

static void xfer_io_cb(struct mh_io *io, int fd, int revents, void *arg)
{
    struct mh_xfer *x = arg;
    int flags = 0;
    if (revents & MH_IO_READ)
        flags |= CURL_CSELECT_IN;
    if (revents & MH_IO_WRITE)
        flags |= CURL_CSELECT_OUT;
    x->wakeups++;
    xfer_action(x, (curl_socket_t)fd, flags); /* may free io */
}

static void xfer_timer_fired(struct mh_timer *t, void *arg)
{
    struct mh_xfer *x = arg;
    x->wakeups++;
    xfer_action(x, CURL_SOCKET_TIMEOUT, 0);
}

/* CURLMOPT_SOCKETFUNCTION: keep one io watch per socket in step with what curl wants. */
static int xfer_socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct mh_xfer *x = userp;
    struct mh_io *io = socketp;
    if (what == CURL_POLL_REMOVE) {
        mh_io_free(&io);
        return 0;
    }
    int events = ((what & CURL_POLL_IN) ? MH_IO_READ : 0) | ((what & CURL_POLL_OUT) ? MH_IO_WRITE : 0);
    if (io != NULL) {
        mh_io_modify(io, events);
        return 0;
    }
    io = mh_io_new(x->loop, x, (int)s, events, xfer_io_cb, x);
    if (io == NULL)
        return -1;
    if (curl_multi_assign(x->multi, s, io) != CURLM_OK) {
        mh_io_free(&io);
        return -1;
    }
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: never act from here (trap 3), only arm or stop the timer. */
static int xfer_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct mh_xfer *x = userp;
    if (timeout_ms < 0)
        mh_timer_stop(x->timer);
    else
        mh_timer_again(x->timer, (double)timeout_ms / 1000.0); /* trap 1: not integer division */
    return 0;
}

/* ------------------------------------------------------------- lifecycle */

/* The whole file, NUL-terminated (malloc'ed), or NULL with errno; at most `max` bytes. */
static char *read_small_file(const char *path, size_t max, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            if (cap > max + 1) {
                if (len >= max) {
                    free(buf);
                    fclose(f);
                    errno = EFBIG;
                    return NULL;
                }
                cap = max + 1;
            }
            char *nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        errno = EIO;
        return NULL;
    }
    buf[len] = '\0';
    *len_out = len;
    return buf;
}

struct mh_xfer *mh_xfer_new(struct mh_loop *loop, const struct mh_xfer_opts *opts)
{
    if (loop == NULL)
        return NULL;
    struct mh_xfer_opts o = {0};
    if (opts != NULL)
        o = *opts;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return NULL;
    struct mh_xfer *x = calloc(1, sizeof *x);
    if (x == NULL) {
        curl_global_cleanup();
        return NULL;
    }
    x->loop = loop;
    xreq_list_init(&x->https);
    xreq_list_init(&x->curls);
    x->timeout_ms = o.default_timeout_ms > 0 ? o.default_timeout_ms : MH_XFER_DEFAULT_TIMEOUT_MS;
    x->connect_timeout_ms =
        o.default_connect_timeout_ms > 0 ? o.default_connect_timeout_ms : MH_XFER_DEFAULT_CONNECT_TIMEOUT_MS;
    if (o.ca_file != NULL) {
        if ((x->ca_file = strdup(o.ca_file)) == NULL)
            goto fail;
        size_t len = 0;
        char *pem = read_small_file(o.ca_file, 16 * 1024 * 1024, &len);
        if (pem == NULL || len == 0) {
            mh_core_error("daemon.tls_ca_file %s cannot be read: %s", o.ca_file, pem ? "it is empty" : strerror(errno));
            free(pem);
            goto fail;
        }
        x->ca_blob.data = pem;
        x->ca_blob.len = len;
        x->ca_blob.flags = CURL_BLOB_NOCOPY;
    }
    x->timer = mh_timer_new(loop, x, 0, 0, xfer_timer_fired, x);
    if (x->timer == NULL)
        goto fail;
    mh_timer_stop(x->timer);
    x->multi = curl_multi_init();
    if (x->multi == NULL)
        goto fail;
    curl_multi_setopt(x->multi, CURLMOPT_SOCKETFUNCTION, xfer_socket_cb);
    curl_multi_setopt(x->multi, CURLMOPT_SOCKETDATA, (void *)x);
    curl_multi_setopt(x->multi, CURLMOPT_TIMERFUNCTION, xfer_timer_cb);
    curl_multi_setopt(x->multi, CURLMOPT_TIMERDATA, (void *)x);
    curl_multi_setopt(x->multi, CURLMOPT_MAXCONNECTS,
                      o.max_connects > 0 ? o.max_connects : MH_XFER_DEFAULT_MAXCONNECTS);
    if (o.max_host_connections > 0)
        curl_multi_setopt(x->multi, CURLMOPT_MAX_HOST_CONNECTIONS, o.max_host_connections);
    return x;

fail:
    mh_timer_free(&x->timer);
    free(x->ca_file);
    free(x->ca_blob.data);
    free(x);
    curl_global_cleanup();
    return NULL;
}

/* The oldest of `owner`'s transfers created up to `limit` (any owner if `all`). */
static struct xreq *xfer_find_owned(struct mh_xfer *x, void *owner, int all, unsigned long limit)
{
    struct xreq *heads[2] = {&x->https, &x->curls};
    for (int i = 0; i < 2; i++)
        for (struct xreq *r = heads[i]->next; r != heads[i]; r = r->next)
            if ((all || r->owner == owner) && r->seq <= limit)
                return r;
    return NULL;
}

static void xfer_cancel_matching(struct mh_xfer *x, void *owner, int all)
{
    /*
     * Each cancel runs a callback that may start or cancel other transfers, so restart
     * the search after every one; what the callbacks start is left alone.
     */
    unsigned long limit = x->seq;
    struct xreq *r;
    while ((r = xfer_find_owned(x, owner, all, limit)) != NULL) {
        if (r->kind == XREQ_HTTP)
            http_cancel((struct mh_http *)r);
        else
            curl_destroy((struct mh_curl *)r);
    }
}

void mh_xfer_cancel_owner(struct mh_xfer *x, void *owner)
{
    if (x != NULL)
        xfer_cancel_matching(x, owner, 0);
}

void mh_xfer_free(struct mh_xfer **xp)
{
    if (xp == NULL || *xp == NULL)
        return;
    struct mh_xfer *x = *xp;
    x->closing = 1; /* callbacks can no longer start transfers */
    xfer_cancel_matching(x, NULL, 1);
    curl_multi_cleanup(x->multi);
    x->multi = NULL;
    /* Whatever watches curl did not release (and the timer) go with the owner. */
    mh_loop_cancel_owner(x->loop, x);
    x->timer = NULL;
    free(x->ca_file);
    free(x->ca_blob.data);
    free(x);
    curl_global_cleanup();
    *xp = NULL;
}

size_t mh_xfer_active(struct mh_xfer *x)
{
    return x != NULL ? x->n_active : 0;
}

unsigned long mh_xfer_wakeups(struct mh_xfer *x)
{
    return x != NULL ? x->wakeups : 0;
}

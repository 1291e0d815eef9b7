/*
 * webhook: a notifier that POSTs each event's JSON envelope (docs/events.md)
 * to an HTTP(S) endpoint, signed the Standard Webhooks way:
 *
 *     webhook-id: <event id>              (the same on every retry: deduplicate on it)
 *     webhook-timestamp: <unix seconds>   (of this attempt)
 *     webhook-signature: v1,<base64 HMAC-SHA256(key, id "." timestamp "." body)>
 *
 * with key the base64-decoded `secret` ("whsec_..."); while a secret is being
 * rotated, `secret_previous` signs too and both signatures are sent,
 * space-separated, so the consumer can accept either.
 *
 * Results: 2xx delivered; 408, 429, 5xx, timeouts and transport errors are
 * transient (MH_ERETRY: the core retries with backoff; a Retry-After header,
 * up to `retry_after_max`, is passed on with mh_job_retry_after(), or on a
 * core without it honoured by holding the failure that long before reporting
 * it); redirects and other 4xx are permanent.
 *
 * SSRF protection: the request runs on a curl handle of our own (given to the
 * core's multi handle with mh_curl_add_take) whose open-socket callback sees
 * every address curl is about to connect to, after DNS resolution, and refuses
 * loopback, private, link-local, unique-local and other non-public addresses
 * unless `allow_private: true`.  Checking there rather than resolving first
 * leaves no window for DNS rebinding and never blocks the loop.  Environment
 * proxies are not used.  TLS certificates are always verified.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mailhub/plugin.h>
#include <mailhub/notifier.h>

#include "../common/notify_tpl.h"

#define KEY_MAX 128

struct hook;

struct delivery {
    struct hook *wh;
    struct mh_job *job;
    struct mh_curl *h;
    struct curl_slist *hdrs;
    char *body;
    long retry_after;  /* seconds from a Retry-After header, -1 if none */
    char refused[160]; /* the address the SSRF check refused, if any */
    char errbuf[CURL_ERROR_SIZE];
    struct mh_timer *hold; /* holding a transient failure for Retry-After */
    char detail[256];
    struct delivery *prev, *next;
};

struct hook {
    struct mh_plugin_ctx *ctx;
    char *url;
    char *target; /* scheme://host[:port] for log lines (no path or query: they may hold tokens) */
    unsigned char key[KEY_MAX], key_prev[KEY_MAX];
    size_t key_len, key_prev_len;
    int64_t timeout_ms, retry_after_max_ms;
    int allow_private;
    char **headers;
    size_t n_headers;
    struct delivery *active;
    int stopping;
};

static const struct mh_option hook_options[] = {
    {"url", MH_OPT_STR, NULL, MH_OPT_REQUIRED, "endpoint URL (http:// or https://)", NULL, 0, 0},
    {"secret", MH_OPT_STR, NULL, MH_OPT_REQUIRED | MH_OPT_SECRET,
     "signing secret in the Standard Webhooks form whsec_<base64>", NULL, 0, 0},
    {"secret_previous", MH_OPT_STR, NULL, MH_OPT_SECRET,
     "the secret being rotated out: while set, both signatures are sent", NULL, 0, 0},
    {"timeout", MH_OPT_DURATION, "10s", 0, "whole request timeout", NULL, 100, 300000},
    {"headers", MH_OPT_STRLIST, NULL, 0, "extra request headers, each \"Name: value\"", NULL, 0, 0},
    {"allow_private", MH_OPT_BOOL, "false", 0,
     "allow loopback, private and link-local addresses (SSRF protection is on otherwise)", NULL, 0, 0},
    {"retry_after_max", MH_OPT_DURATION, "60s", 0,
     "longest Retry-After honoured (the next attempt waits at most this long for it)", NULL, 0, 3600000},
    MH_OPT_TABLE_END,
};

/* ------------------------------------------------------------ SSRF check */

/* Why an IPv4 address (host order) is not public, or NULL. */
static const char *v4_private(uint32_t a)
{
    if ((a >> 24) == 127)
        return "loopback";
    if ((a >> 24) == 10 || (a >> 20) == 0xac1 || (a >> 16) == 0xc0a8)
        return "private";
    if ((a >> 16) == 0xa9fe)
        return "link-local";
    if ((a >> 24) == 0)
        return "unspecified";
    if ((a >> 22) == (100u << 2 | 1)) /* 100.64.0.0/10 */
        return "shared (CGNAT)";
    if ((a >> 8) == 0xc00000 || (a >> 17) == (0xc612u >> 1)) /* 192.0.0.0/24, 198.18.0.0/15 */
        return "reserved";
    if ((a >> 28) >= 0xe)
        return "multicast or reserved";
    return NULL;
}

static const char *v6_private(const unsigned char *b)
{
    static const unsigned char zero[16] = {0};
    if (memcmp(b, zero, 15) == 0 && (b[15] == 0 || b[15] == 1))
        return b[15] ? "loopback" : "unspecified";
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    if (memcmp(b, mapped, 12) == 0 || memcmp(b, nat64, 12) == 0 || memcmp(b, zero, 12) == 0) {
        uint32_t a = (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15];
        return v4_private(a);
    }
    if ((b[0] & 0xfe) == 0xfc)
        return "unique-local";
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
        return "link-local";
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)
        return "site-local";
    if (b[0] == 0xff)
        return "multicast";
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)
        return "documentation";
    return NULL;
}

static curl_socket_t hook_opensocket_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
    struct delivery *d = clientp;
    (void)purpose;
    const char *why = NULL;
    char text[INET6_ADDRSTRLEN] = "?";
    if (address->family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)&address->addr;
        why = v4_private(ntohl(sin->sin_addr.s_addr));
        inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text);
    } else if (address->family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)&address->addr;
        why = v6_private(sin6->sin6_addr.s6_addr);
        inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof text);
    } else {
        why = "not an IP address";
    }
    if (why != NULL && !d->wh->allow_private) {
        snprintf(d->refused, sizeof d->refused, "%s (%s)", text, why);
        return CURL_SOCKET_BAD;
    }
    return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

/* ------------------------------------------------------------- delivery */

static size_t hook_header_cb(char *buf, size_t size, size_t n, void *arg)
{
    struct delivery *d = arg;
    size_t len = size * n;
    static const char name[] = "retry-after:";
    if (len > sizeof name - 1 && strncasecmp(buf, name, sizeof name - 1) == 0) {
        char val[128];
        size_t vl = len - (sizeof name - 1);
        if (vl >= sizeof val)
            vl = sizeof val - 1;
        memcpy(val, buf + sizeof name - 1, vl);
        val[vl] = '\0';
        char *v = val;
        while (*v == ' ' || *v == '\t')
            v++;
        v[strcspn(v, "\r\n")] = '\0';
        char *end = NULL;
        long secs = strtol(v, &end, 10);
        if (end != v && *end == '\0' && secs >= 0) {
            d->retry_after = secs;
        } else {
            time_t when = curl_getdate(v, NULL);
            if (when > 0) {
                double delta = (double)when - mh_now(d->wh->ctx);
                d->retry_after = delta > 0 ? (long)delta : 0;
            }
        }
    }
    return len;
}

static size_t hook_discard_cb(char *buf, size_t size, size_t n, void *arg)
{
    (void)buf;
    (void)arg;
    return size * n; /* the response body is not needed */
}

static void delivery_free(struct delivery *d)
{
    struct hook *wh = d->wh;
    if (d->prev)
        d->prev->next = d->next;
    else
        wh->active = d->next;
    if (d->next)
        d->next->prev = d->prev;
    mh_curl_remove(wh->ctx, &d->h);
    mh_timer_del(wh->ctx, &d->hold);
    curl_slist_free_all(d->hdrs);
    mh_free(d->body);
    mh_free(d);
}

static void delivery_finish(struct delivery *d, int rc)
{
    struct hook *wh = d->wh;
    struct mh_job *job = d->job;
    char detail[sizeof d->detail];
    memcpy(detail, d->detail, sizeof detail);
    delivery_free(d);
    mh_job_done(job, rc, detail[0] ? detail : NULL);
    if (wh->stopping && wh->active == NULL)
        mh_stopped(wh->ctx);
}

static void hook_hold_cb(struct mh_timer *t, void *arg)
{
    (void)t;
    delivery_finish(arg, MH_ERETRY);
}

static int curl_rc_permanent(int result)
{
    switch (result) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_TOO_MANY_REDIRECTS:
        return 1;
    default:
        return 0;
    }
}

static void hook_done_cb(struct mh_curl *h, void *easy, int result, void *arg)
{
    struct delivery *d = arg;
    struct hook *wh = d->wh;
    (void)h;
    long status = 0;
    int rc;
    if (result == CURLE_OK) {
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        snprintf(d->detail, sizeof d->detail, "HTTP %ld from %s", status, wh->target);
        if (status >= 200 && status < 300) {
            rc = MH_OK;
            mh_log_debug(wh->ctx, "delivered to %s (HTTP %ld)", wh->target, status);
        } else if (status == 408 || status == 429 || status >= 500) {
            rc = MH_ERETRY;
        } else {
            rc = MH_ERR;
            if (status >= 300 && status < 400)
                snprintf(d->detail, sizeof d->detail, "HTTP %ld from %s: redirects are not followed", status,
                         wh->target);
            mh_log_error(wh->ctx, "%s refused the event permanently: HTTP %ld", wh->target, status);
        }
    } else if (d->refused[0] && result == CURLE_COULDNT_CONNECT) { /* every address was refused */
        rc = MH_ERR;
        snprintf(
            d->detail, sizeof d->detail,
            "refused to connect to %s for %s: not a public address (set allow_private: true to allow it)",
            d->refused, wh->target);
        mh_log_error(wh->ctx, "%s", d->detail);
    } else {
        rc = curl_rc_permanent(result) ? MH_ERR : MH_ERETRY;
        snprintf(d->detail, sizeof d->detail, "%.100s: %.140s", wh->target,
                 d->errbuf[0] ? d->errbuf : curl_easy_strerror((CURLcode)result));
        if (rc == MH_ERR)
            mh_log_error(wh->ctx, "%s", d->detail);
    }
    if (rc == MH_ERETRY && d->retry_after > 0 && !wh->stopping) {
        double hold = (double)d->retry_after;
        if (hold * 1000.0 > (double)wh->retry_after_max_ms)
            hold = (double)wh->retry_after_max_ms / 1000.0;
        mh_curl_remove(wh->ctx, &d->h);
        if (hold > 0 && MH_HOST_HAS(d->job->host, job_retry_after)) {
            /* the core schedules the next attempt no earlier than asked */
            mh_log_info(wh->ctx, "%s asked to retry after %lds; the next attempt waits %.0fs", wh->target,
                        d->retry_after, hold);
            mh_job_retry_after(d->job, hold);
        } else if (hold > 0) {
            /* an older core: hold the failure for that long before reporting it */
            mh_log_info(wh->ctx, "%s asked to retry after %lds; waiting %.0fs before the retry", wh->target,
                        d->retry_after, hold);
            d->hold = mh_timer_add(wh->ctx, hold, 0, hook_hold_cb, d);
            if (d->hold != NULL)
                return;
        }
    }
    delivery_finish(d, rc);
}

#define SETOPT(opt, val)                                                                                     \
    do {                                                                                                     \
        if (curl_easy_setopt(easy, opt, val) != CURLE_OK)                                                    \
            goto fail;                                                                                       \
    } while (0)

static int hook_send(void *state, const struct mh_event *ev, struct mh_job *job)
{
    struct hook *wh = state;
    if (ev == NULL || ev->json == NULL || ev->id == NULL)
        return MH_EINVAL;
    if (wh->stopping) {
        mh_set_error(wh->ctx, "stopping");
        return MH_ERETRY;
    }
    size_t len = ev->json_len > 0 ? ev->json_len : strlen(ev->json);
    struct delivery *d = mh_calloc(1, sizeof *d);
    if (d == NULL)
        return MH_ENOMEM;
    d->wh = wh;
    d->job = job;
    d->retry_after = -1;
    d->body = mh_malloc(len + 1);
    CURL *easy = curl_easy_init();
    char *sig = NULL, *sig_prev = NULL;
    if (d->body == NULL || easy == NULL)
        goto fail;
    memcpy(d->body, ev->json, len);
    d->body[len] = '\0';

    int64_t ts = (int64_t)mh_now(wh->ctx);
    sig = ntpl_webhook_sign(wh->key, wh->key_len, ev->id, ts, d->body, len);
    if (sig == NULL)
        goto fail;
    if (wh->key_prev_len > 0 &&
        (sig_prev = ntpl_webhook_sign(wh->key_prev, wh->key_prev_len, ev->id, ts, d->body, len)) == NULL)
        goto fail;
    char line[512];
    struct curl_slist *l;
#define ADDHDR(...)                                                                                          \
    do {                                                                                                     \
        snprintf(line, sizeof line, __VA_ARGS__);                                                            \
        if ((l = curl_slist_append(d->hdrs, line)) == NULL)                                                  \
            goto fail;                                                                                       \
        d->hdrs = l;                                                                                         \
    } while (0)
    ADDHDR("Content-Type: application/json");
    ADDHDR("webhook-id: %s", ev->id);
    ADDHDR("webhook-timestamp: %lld", (long long)ts);
    ADDHDR("webhook-signature: %s%s%s", sig, sig_prev ? " " : "", sig_prev ? sig_prev : "");
    ADDHDR("Expect:"); /* no 100-continue round trip */
    for (size_t i = 0; i < wh->n_headers; i++) {
        if ((l = curl_slist_append(d->hdrs, wh->headers[i])) == NULL)
            goto fail;
        d->hdrs = l;
    }
#undef ADDHDR

    SETOPT(CURLOPT_URL, wh->url);
#if LIBCURL_VERSION_NUM >= 0x075500
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SETOPT(CURLOPT_PROXY, "");
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_POST, 1L);
    SETOPT(CURLOPT_POSTFIELDS, d->body);
    SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    SETOPT(CURLOPT_HTTPHEADER, d->hdrs);
    SETOPT(CURLOPT_USERAGENT, "mailhub-webhook/1.0");
    SETOPT(CURLOPT_TIMEOUT_MS, (long)wh->timeout_ms);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, (long)(wh->timeout_ms < 10000 ? wh->timeout_ms : 10000));
    SETOPT(CURLOPT_ERRORBUFFER, d->errbuf);
    SETOPT(CURLOPT_OPENSOCKETFUNCTION, hook_opensocket_cb);
    SETOPT(CURLOPT_OPENSOCKETDATA, (void *)d);
    SETOPT(CURLOPT_HEADERFUNCTION, hook_header_cb);
    SETOPT(CURLOPT_HEADERDATA, (void *)d);
    SETOPT(CURLOPT_WRITEFUNCTION, hook_discard_cb);
    SETOPT(CURLOPT_WRITEDATA, (void *)d);
    SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    mh_free(sig);
    mh_free(sig_prev);
    sig = sig_prev = NULL;

    d->h = mh_curl_add_take(wh->ctx, easy, hook_done_cb, d);
    easy = NULL; /* taken, even on failure */
    if (d->h == NULL) {
        mh_set_error(wh->ctx, "cannot start the request to %s", wh->target);
        curl_slist_free_all(d->hdrs);
        mh_free(d->body);
        mh_free(d);
        return MH_ERETRY;
    }
    d->next = wh->active;
    if (d->next)
        d->next->prev = d;
    wh->active = d;
    return MH_PENDING;

fail:
    if (easy != NULL)
        curl_easy_cleanup(easy);
    mh_free(sig);
    mh_free(sig_prev);
    curl_slist_free_all(d->hdrs);
    mh_free(d->body);
    mh_free(d);
    mh_set_error(wh->ctx, "cannot prepare the request to %s (out of memory or curl option)", wh->target);
    return MH_ERETRY;
}

/* ----------------------------------------------------------- lifecycle */

/* scheme://host[:port] of a URL, for log lines; NULL if the URL is not http(s). */
static char *url_target(const char *url)
{
    const char *p = NULL;
    if (strncasecmp(url, "https://", 8) == 0)
        p = url + 8;
    else if (strncasecmp(url, "http://", 7) == 0)
        p = url + 7;
    if (p == NULL || *p == '\0' || *p == '/')
        return NULL;
    const char *at = NULL, *e = p + strcspn(p, "/?#");
    for (const char *q = p; q < e; q++)
        if (*q == '@')
            at = q; /* drop user:password@ */
    size_t scheme = (size_t)(p - url);
    const char *host = at ? at + 1 : p;
    char *t = mh_malloc(scheme + (size_t)(e - host) + 1);
    if (t == NULL)
        return NULL;
    memcpy(t, url, scheme);
    memcpy(t + scheme, host, (size_t)(e - host));
    t[scheme + (size_t)(e - host)] = '\0';
    return t;
}

static void hook_free(void *state)
{
    struct hook *wh = state;
    if (wh == NULL)
        return;
    /* the core cancelled the handles (curl, timers) already: free only our memory */
    while (wh->active) {
        struct delivery *d = wh->active;
        wh->active = d->next;
        curl_slist_free_all(d->hdrs);
        mh_free(d->body);
        mh_free(d);
    }
    for (size_t i = 0; i < wh->n_headers; i++)
        mh_free(wh->headers[i]);
    mh_free(wh->headers);
    mh_free(wh->url);
    mh_free(wh->target);
    memset(wh->key, 0, sizeof wh->key);
    memset(wh->key_prev, 0, sizeof wh->key_prev);
    mh_free(wh);
}

static int hook_configure(struct hook *wh, const struct mh_config *cfg)
{
    struct mh_plugin_ctx *ctx = wh->ctx;
    const char *url = mh_cfg_str(cfg, "url");
    wh->target = url ? url_target(url) : NULL;
    if (wh->target == NULL) {
        mh_set_error(ctx, "url must be an http:// or https:// URL with a host");
        return MH_EINVAL;
    }
    if ((wh->url = mh_strdup(url)) == NULL)
        return MH_ENOMEM;
    long kl = ntpl_whsec_decode(mh_cfg_str(cfg, "secret"), wh->key, sizeof wh->key);
    if (kl < 0) {
        mh_set_error(ctx, "secret must be whsec_ followed by base64 (at most %d bytes decoded)", KEY_MAX);
        return MH_EINVAL;
    }
    wh->key_len = (size_t)kl;
    const char *prev = mh_cfg_str(cfg, "secret_previous");
    if (prev != NULL && *prev != '\0') {
        kl = ntpl_whsec_decode(prev, wh->key_prev, sizeof wh->key_prev);
        if (kl < 0) {
            mh_set_error(ctx, "secret_previous must be whsec_ followed by base64");
            return MH_EINVAL;
        }
        wh->key_prev_len = (size_t)kl;
    }
    wh->timeout_ms = mh_cfg_duration_ms(cfg, "timeout");
    wh->retry_after_max_ms = mh_cfg_duration_ms(cfg, "retry_after_max");
    wh->allow_private = mh_cfg_bool(cfg, "allow_private");
    size_t n = mh_cfg_list_len(cfg, "headers");
    if (n > 0 && (wh->headers = mh_calloc(n, sizeof *wh->headers)) == NULL)
        return MH_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *h = mh_cfg_list_item(cfg, "headers", i);
        const char *colon = h ? strchr(h, ':') : NULL;
        if (colon == NULL || colon == h || strpbrk(h, "\r\n") != NULL) {
            mh_set_error(ctx, "headers[%zu] must be one line \"Name: value\"", i);
            return MH_EINVAL;
        }
        if ((wh->headers[i] = mh_strdup(h)) == NULL)
            return MH_ENOMEM;
        wh->n_headers++;
    }
    return MH_OK;
}

static int hook_init(struct mh_plugin_ctx *ctx, const struct mh_config *cfg, void **state_out)
{
    struct hook *wh = mh_calloc(1, sizeof *wh);
    if (wh == NULL)
        return MH_ENOMEM;
    wh->ctx = ctx;
    int rc = hook_configure(wh, cfg);
    if (rc != MH_OK) {
        hook_free(wh);
        return rc;
    }
    mh_log_info(ctx, "posting signed events to %s%s%s", wh->target,
                wh->key_prev_len ? " (secret rotation: two signatures)" : "",
                wh->allow_private ? " (private addresses allowed)" : "");
    *state_out = wh;
    return MH_OK;
}

static int hook_stop(void *state)
{
    struct hook *wh = state;
    /* failures held for Retry-After are reported now: the core logs them as not delivered */
    for (struct delivery *d = wh->active, *next; d; d = next) {
        next = d->next;
        if (d->hold != NULL)
            delivery_finish(d, MH_ERETRY);
    }
    wh->stopping = 1; /* from here on, the last delivery to finish calls mh_stopped() */
    return wh->active == NULL ? MH_OK : MH_PENDING;
}

static const struct mh_notifier_ops hook_ops = {
    .struct_size = sizeof(struct mh_notifier_ops),
    .send = hook_send,
};

MH_PLUGIN_DEFINE(webhook, .kind = MH_KIND_NOTIFIER, .name = "webhook", .version = "1.0.0",
                 .description = "POST events, signed the Standard Webhooks way, to an HTTP(S) endpoint",
                 .options = hook_options, .init = hook_init, .stop = hook_stop, .free = hook_free,
                 .ops = &hook_ops);

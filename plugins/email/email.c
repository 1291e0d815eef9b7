/*
 * email: a notifier that sends one e-mail per event over SMTP.
 *
 * The message is built here (RFC 5322): Date, From, To, Subject (the rendered
 * `subject` template, "[work@corp.com] Alice Chen: Quarterly report" by
 * default, RFC 2047-encoded UTF-8), a Message-ID derived from the event id
 * (the same on every retry, so a receiver can deduplicate), MIME-Version and a
 * text/plain UTF-8 quoted-printable body naming the sender, the subject, the
 * source mailbox and folder, and a link (`link_base` followed by the store id)
 * when configured.  A mail.digest (notifications the core held and folded)
 * gets the same subject template ("[work] Alice, Bob: 7 new messages") and
 * lists the messages.  Other event types get a generic subject and their data.
 *
 * Transport: libcurl's SMTP on a curl easy handle given to the core's multi
 * handle (mh_curl_add_take): nothing blocks the loop.  smtp:// URLs require
 * STARTTLS unless `require_tls: false`; smtps:// is implicit TLS.  AUTH with
 * `username` / `password` (curl picks PLAIN or LOGIN from the server's list).
 * Certificates are always verified; `ca_file` adds a CA (e.g. a test CA) to
 * the system's.
 *
 * Recipients: `to`, or without it the user's notification address that the
 * core passes with the event (mh_event.email, since ABI 1.2).
 *
 * Results: delivered when the server accepted the message; a 5xx reply
 * (rejected recipient, failed AUTH), a server without STARTTLS when it is
 * required and certificate failures are permanent; everything else
 * (connection refused, timeouts, 4xx replies) is retried by the core.
 */
#define _POSIX_C_SOURCE 200809L
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <mailhub/plugin.h>
#include <mailhub/notifier.h>

#include "../common/notify_tpl.h"

struct mail;

struct sending {
    struct mail *em;
    struct mh_job *job;
    struct mh_curl *h;
    struct curl_slist *rcpt;
    char *msg;
    size_t len, off;
    char errbuf[CURL_ERROR_SIZE];
    struct sending *prev, *next;
};

struct mail {
    struct mh_plugin_ctx *ctx;
    char *url, *target, *username, *password;
    char *from;      /* as configured, "Name <addr>" */
    char *from_addr; /* addr-spec, for MAIL FROM and the Message-ID domain */
    char *from_hdr;  /* the From: header value */
    char **to_addr;  /* RCPT TO */
    char *to_hdr;    /* the To: header value */
    size_t n_to;
    char *subject_tpl, *link_base;
    int require_tls;
    int64_t timeout_ms;
    void *ca; /* the ca_file's bytes (CURLOPT_CAINFO_BLOB adds them to the system CAs) */
    size_t ca_len;
    struct sending *active;
    int stopping;
};

static const struct mh_option mail_options[] = {
    {"url", MH_OPT_STR, NULL, MH_OPT_REQUIRED, "smtp://host[:port] (STARTTLS) or smtps://host[:port]", NULL,
     0, 0},
    {"require_tls", MH_OPT_BOOL, "true", 0, "smtp://: refuse to send when the server does not offer STARTTLS",
     NULL, 0, 0},
    {"username", MH_OPT_STR, NULL, 0, "SMTP AUTH user name (no AUTH when unset)", NULL, 0, 0},
    {"password", MH_OPT_STR, NULL, MH_OPT_SECRET, "SMTP AUTH password", NULL, 0, 0},
    {"from", MH_OPT_STR, NULL, MH_OPT_REQUIRED, "sender, e.g. \"mailhub <hub@example.org>\"", NULL, 0, 0},
    {"to", MH_OPT_STRLIST, NULL, 0, "recipient address(es); default: the user's notification address", NULL,
     0, 0},
    {"subject", MH_OPT_STR, "[{account}] {from}: {subject}", 0, "subject template for mail.received", NULL, 0,
     0},
    {"link_base", MH_OPT_STR, NULL, 0,
     "URL prefix of a message in the web page; the store id is appended (e.g. https://hub.example/#/m/)",
     NULL, 0, 0},
    {"ca_file", MH_OPT_STR, NULL, 0, "extra CA certificate(s) to trust, PEM (verification is never off)",
     NULL, 0, 0},
    {"timeout", MH_OPT_DURATION, "60s", 0, "whole SMTP transaction timeout", NULL, 1000, 600000},
    MH_OPT_TABLE_END,
};

/* ------------------------------------------------------------ message */

struct buf {
    char *p;
    size_t len, cap;
    int oom;
};

static void b_add(struct buf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (np == NULL) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n + 1);
    b->len += n;
}

static MH_PRINTF(2, 3) void b_fmt(struct buf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        b_add(b, tmp);
        return;
    }
    char *big = mh_malloc((size_t)n + 1);
    if (big == NULL) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b_add(b, big);
    mh_free(big);
}

/* A header line "Name: value\r\n" with value's own line breaks removed (no header injection). */
static void b_header(struct buf *b, const char *name, const char *value)
{
    b_add(b, name);
    b_add(b, ": ");
    char *v = mh_strdup(value ? value : "");
    if (v == NULL) {
        b->oom = 1;
        return;
    }
    /* keep folding produced by the encoders ("\r\n "), blank any other CR or LF */
    for (char *p = v; *p; p++)
        if ((*p == '\r' && !(p[1] == '\n' && p[2] == ' ')) ||
            (*p == '\n' && !(p > v && p[-1] == '\r' && p[1] == ' ')))
            *p = ' ';
    b_add(b, v);
    b_add(b, "\r\n");
    mh_free(v);
}

static void rfc5322_date(double t, char *out, size_t cap)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    snprintf(out, cap, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* The plain-text body (UTF-8, LF line ends; quoted-printable later). */
static char *mail_body(struct mail *em, const struct ntpl_event *e, const struct mh_event *ev)
{
    struct buf b = {0};
    if (strcmp(e->type, "mail.received") == 0) {
        b_fmt(&b, "New mail in %s", e->account);
        if (*e->folder)
            b_fmt(&b, " (%s)", e->folder);
        b_add(&b, "\n\n");
        b_fmt(&b, "From:    %s\n", e->from);
        b_fmt(&b, "Subject: %s\n", e->subject);
        b_fmt(&b, "Mailbox: %s\n", e->account);
        b_fmt(&b, "Folder:  %s\n", e->folder);
        if (em->link_base != NULL && e->store_id >= 0)
            b_fmt(&b, "Open:    %s%lld\n", em->link_base, (long long)e->store_id);
    } else if (strcmp(e->type, "mail.digest") == 0) {
        /* held notifications folded by the core (quiet hours, rate limit): data.messages lists them */
        b_fmt(&b, "%s in %s", e->subject, e->account);
        if (*e->folder)
            b_fmt(&b, " (%s)", e->folder);
        b_add(&b, "\n\n");
        json_t *root = json_loadb(ev->json, ev->json_len ? ev->json_len : strlen(ev->json), 0, NULL);
        json_t *data = root ? json_object_get(root, "data") : NULL;
        json_t *list = data ? json_object_get(data, "messages") : NULL;
        json_t *count = data ? json_object_get(data, "count") : NULL;
        size_t i;
        json_t *m;
        json_array_foreach(list, i, m)
        {
            const char *f = json_string_value(json_object_get(m, "from"));
            const char *sj = json_string_value(json_object_get(m, "subject"));
            b_fmt(&b, "From:    %s\nSubject: %s\n\n", f ? f : "", sj ? sj : "");
        }
        if (json_is_integer(count) && (size_t)json_integer_value(count) > json_array_size(list))
            b_fmt(&b, "... and %zu more\n\n", (size_t)json_integer_value(count) - json_array_size(list));
        b_fmt(&b, "Mailbox: %s\n", e->account);
        json_decref(root);
    } else {
        b_fmt(&b, "mailhub event %s\n\n", e->type);
        json_t *root = json_loadb(ev->json, ev->json_len ? ev->json_len : strlen(ev->json), 0, NULL);
        json_t *data = root ? json_object_get(root, "data") : NULL;
        char *dump = data ? json_dumps(data, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
        if (dump != NULL) {
            b_add(&b, dump);
            b_add(&b, "\n");
            free(dump);
        }
        json_decref(root);
    }
    b_fmt(&b, "\n-- \nmailhub notification for %s (event %s)\n", *e->user ? e->user : "(no user)", e->id);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

static char *mail_message(struct mail *em, const struct ntpl_event *e, const struct mh_event *ev,
                          const char *to_hdr, size_t *len_out)
{
    struct buf b = {0};
    char date[64];
    rfc5322_date(ev->time > 0 ? ev->time : mh_now(em->ctx), date, sizeof date);
    int mail = strcmp(e->type, "mail.received") == 0 || strcmp(e->type, "mail.digest") == 0;
    char *subject = mail ? ntpl_render(em->subject_tpl, e, NULL, 0, NTPL_RAW)
                         : ntpl_render("[mailhub] {type} ({user})", e, NULL, 0, NTPL_RAW);
    char *subj_enc = subject ? ntpl_rfc2047(subject) : NULL;
    char *text = mail_body(em, e, ev);
    char *qp = text ? ntpl_qp_encode(text) : NULL;
    const char *at = strrchr(em->from_addr, '@');
    char *res = NULL;
    if (subj_enc == NULL || qp == NULL)
        goto out;
    b_header(&b, "Date", date);
    b_header(&b, "From", em->from_hdr);
    b_header(&b, "To", to_hdr);
    b_header(&b, "Subject", subj_enc);
    b_fmt(&b, "Message-ID: <%s.notify@%s>\r\n", e->id, at && at[1] ? at + 1 : "mailhub.invalid");
    b_add(&b, "MIME-Version: 1.0\r\n");
    b_add(&b, "Content-Type: text/plain; charset=UTF-8\r\n");
    b_add(&b, "Content-Transfer-Encoding: quoted-printable\r\n");
    b_add(&b, "Auto-Submitted: auto-generated\r\n");
    b_header(&b, "X-Mailhub-Event", e->type);
    b_header(&b, "X-Mailhub-Event-Id", e->id);
    if (*e->account)
        b_header(&b, "X-Mailhub-Account", e->account);
    b_add(&b, "\r\n");
    b_add(&b, qp);
    if (b.len < 2 || strcmp(b.p + b.len - 2, "\r\n") != 0)
        b_add(&b, "\r\n");
    if (!b.oom) {
        res = b.p;
        *len_out = b.len;
        b.p = NULL;
    }
out:
    free(b.p);
    free(subject);
    free(subj_enc);
    free(text);
    free(qp);
    return res;
}

/* ------------------------------------------------------------ sending */

static size_t mail_read_cb(char *dst, size_t size, size_t n, void *arg)
{
    struct sending *s = arg;
    size_t room = size * n, left = s->len - s->off;
    size_t k = left < room ? left : room;
    memcpy(dst, s->msg + s->off, k);
    s->off += k;
    return k;
}

static void sending_free(struct sending *s)
{
    struct mail *em = s->em;
    if (s->prev)
        s->prev->next = s->next;
    else
        em->active = s->next;
    if (s->next)
        s->next->prev = s->prev;
    mh_curl_remove(em->ctx, &s->h);
    curl_slist_free_all(s->rcpt);
    mh_free(s->msg);
    mh_free(s);
}

static void mail_done_cb(struct mh_curl *h, void *easy, int result, void *arg)
{
    struct sending *s = arg;
    struct mail *em = s->em;
    (void)h;
    long code = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    char detail[320];
    int rc;
    if (result == CURLE_OK) {
        rc = MH_OK;
        snprintf(detail, sizeof detail, "accepted by %s", em->target);
        mh_log_debug(em->ctx, "notification e-mail accepted by %s", em->target);
    } else {
        const char *why = s->errbuf[0] ? s->errbuf : curl_easy_strerror((CURLcode)result);
        if (code > 0)
            snprintf(detail, sizeof detail, "%.100s: %.160s (SMTP %ld)", em->target, why, code);
        else
            snprintf(detail, sizeof detail, "%.100s: %.160s", em->target, why);
        if (code >= 500 || result == CURLE_LOGIN_DENIED || result == CURLE_USE_SSL_FAILED ||
            result == CURLE_PEER_FAILED_VERIFICATION || result == CURLE_SSL_CACERT_BADFILE ||
            result == CURLE_UNSUPPORTED_PROTOCOL || result == CURLE_URL_MALFORMAT) {
            rc = MH_ERR;
            if (result == CURLE_USE_SSL_FAILED)
                snprintf(detail, sizeof detail,
                         "%s does not offer STARTTLS (set require_tls: false to send in clear)", em->target);
            mh_log_error(em->ctx, "notification e-mail refused permanently: %s", detail);
        } else {
            rc = MH_ERETRY;
        }
    }
    struct mh_job *job = s->job;
    sending_free(s);
    mh_job_done(job, rc, detail);
    if (em->stopping && em->active == NULL)
        mh_stopped(em->ctx);
}

#define SETOPT(opt, val)                                                                                     \
    do {                                                                                                     \
        if (curl_easy_setopt(easy, opt, val) != CURLE_OK)                                                    \
            goto fail;                                                                                       \
    } while (0)

static int mail_send(void *state, const struct mh_event *ev, struct mh_job *job)
{
    struct mail *em = state;
    if (ev == NULL || ev->json == NULL)
        return MH_EINVAL;
    if (em->stopping) {
        mh_set_error(em->ctx, "stopping");
        return MH_ERETRY;
    }
    struct ntpl_event e;
    char err[160];
    if (ntpl_event_parse(ev->json, ev->json_len ? ev->json_len : strlen(ev->json), &e, err, sizeof err) !=
        0) {
        mh_set_error(em->ctx, "%s", err);
        return MH_ERR;
    }
    struct sending *s = mh_calloc(1, sizeof *s);
    CURL *easy = curl_easy_init();
    if (s == NULL || easy == NULL)
        goto fail;
    s->em = em;
    s->job = job;
    if (em->n_to > 0) {
        s->msg = mail_message(em, &e, ev, em->to_hdr, &s->len);
        for (size_t i = 0; i < em->n_to && s->msg != NULL; i++) {
            struct curl_slist *l = curl_slist_append(s->rcpt, em->to_addr[i]);
            if (l == NULL)
                goto fail;
            s->rcpt = l;
        }
    } else {
        /* since 1.2 the core passes the user's notification address with the event */
        const char *user_addr =
            ev->struct_size >= offsetof(struct mh_event, email) + sizeof ev->email ? ev->email : NULL;
        char *name = NULL, *addr = NULL;
        if (user_addr != NULL)
            ntpl_split_address(user_addr, &name, &addr);
        int ok = addr != NULL && strchr(addr, '@') != NULL && strpbrk(addr, " <>\r\n") == NULL;
        if (ok) {
            char *hdr = ntpl_mail_address(user_addr);
            struct curl_slist *l = hdr ? curl_slist_append(NULL, addr) : NULL;
            s->rcpt = l;
            s->msg = l ? mail_message(em, &e, ev, hdr, &s->len) : NULL;
            mh_free(hdr);
        }
        mh_free(name);
        mh_free(addr);
        if (!ok) {
            mh_set_error(em->ctx,
                         "no recipient for user '%s': set option 'to' or the user's notification address",
                         e.user);
            mh_log_error(em->ctx, "not sending %s %s: no recipient address for user '%s'", e.type, e.id,
                         e.user);
            ntpl_event_clear(&e);
            curl_easy_cleanup(easy);
            mh_free(s);
            return MH_ERR;
        }
    }
    if (s->msg == NULL)
        goto fail;
    SETOPT(CURLOPT_URL, em->url);
#if LIBCURL_VERSION_NUM >= 0x075500
    SETOPT(CURLOPT_PROTOCOLS_STR, "smtp,smtps");
#else
    SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_SMTP | CURLPROTO_SMTPS));
#endif
    SETOPT(CURLOPT_PROXY, "");
    SETOPT(CURLOPT_MAIL_FROM, em->from_addr);
    SETOPT(CURLOPT_MAIL_RCPT, s->rcpt);
    SETOPT(CURLOPT_UPLOAD, 1L);
    SETOPT(CURLOPT_READFUNCTION, mail_read_cb);
    SETOPT(CURLOPT_READDATA, (void *)s);
    SETOPT(CURLOPT_INFILESIZE_LARGE, (curl_off_t)s->len);
    if (strncmp(em->url, "smtp://", 7) == 0)
        SETOPT(CURLOPT_USE_SSL, (long)(em->require_tls ? CURLUSESSL_ALL : CURLUSESSL_TRY));
    if (em->username != NULL) {
        SETOPT(CURLOPT_USERNAME, em->username);
        SETOPT(CURLOPT_PASSWORD, em->password ? em->password : "");
    }
    if (em->ca != NULL) {
        struct curl_blob blob = {.data = em->ca, .len = em->ca_len, .flags = CURL_BLOB_COPY};
        SETOPT(CURLOPT_CAINFO_BLOB, &blob);
    }
    SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
    SETOPT(CURLOPT_TIMEOUT_MS, (long)em->timeout_ms);
    SETOPT(CURLOPT_SERVER_RESPONSE_TIMEOUT, (long)(em->timeout_ms / 1000 > 0 ? em->timeout_ms / 1000 : 1));
    SETOPT(CURLOPT_ERRORBUFFER, s->errbuf);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    ntpl_event_clear(&e);
    s->h = mh_curl_add_take(em->ctx, easy, mail_done_cb, s);
    easy = NULL;
    if (s->h == NULL) {
        mh_set_error(em->ctx, "cannot start the SMTP transaction with %s", em->target);
        curl_slist_free_all(s->rcpt);
        mh_free(s->msg);
        mh_free(s);
        return MH_ERETRY;
    }
    s->next = em->active;
    if (s->next)
        s->next->prev = s;
    em->active = s;
    return MH_PENDING;

fail:
    ntpl_event_clear(&e);
    if (easy != NULL)
        curl_easy_cleanup(easy);
    if (s != NULL) {
        curl_slist_free_all(s->rcpt);
        mh_free(s->msg);
        mh_free(s);
    }
    mh_set_error(em->ctx, "cannot prepare the notification e-mail (out of memory or curl option)");
    return MH_ERETRY;
}

/* ----------------------------------------------------------- lifecycle */

static void mail_free(void *state)
{
    struct mail *em = state;
    if (em == NULL)
        return;
    while (em->active) { /* the core cleaned up the curl handles */
        struct sending *s = em->active;
        em->active = s->next;
        curl_slist_free_all(s->rcpt);
        mh_free(s->msg);
        mh_free(s);
    }
    for (size_t i = 0; i < em->n_to; i++)
        mh_free(em->to_addr[i]);
    mh_free(em->to_addr);
    mh_free(em->to_hdr);
    mh_free(em->url);
    mh_free(em->target);
    mh_free(em->username);
    mh_free(em->password);
    mh_free(em->from);
    mh_free(em->from_addr);
    mh_free(em->from_hdr);
    mh_free(em->subject_tpl);
    mh_free(em->link_base);
    mh_free(em->ca);
    mh_free(em);
}

static int read_file(struct mh_plugin_ctx *ctx, const char *path, void **out, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        mh_set_error(ctx, "ca_file %s: %s", path, strerror(errno));
        return MH_EINVAL;
    }
    struct buf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk - 1, f)) > 0) {
        chunk[n] = '\0';
        b_add(&b, chunk);
    }
    fclose(f);
    if (b.oom || b.len == 0) {
        free(b.p);
        mh_set_error(ctx, "ca_file %s: %s", path, b.oom ? "out of memory" : "empty");
        return MH_EINVAL;
    }
    *out = b.p;
    *len_out = b.len;
    return MH_OK;
}

static int mail_configure(struct mail *em, const struct mh_config *cfg)
{
    struct mh_plugin_ctx *ctx = em->ctx;
    const char *url = mh_cfg_str(cfg, "url");
    const char *p = NULL;
    if (url && strncmp(url, "smtp://", 7) == 0)
        p = url + 7;
    else if (url && strncmp(url, "smtps://", 8) == 0)
        p = url + 8;
    if (p == NULL || *p == '\0' || *p == '/') {
        mh_set_error(ctx, "url must be smtp://host[:port] or smtps://host[:port]");
        return MH_EINVAL;
    }
    if ((em->url = mh_strdup(url)) == NULL)
        return MH_ENOMEM;
    const char *host = p, *e = p + strcspn(p, "/?#");
    for (const char *q = p; q < e; q++)
        if (*q == '@')
            host = q + 1;
    size_t sl = (size_t)(p - url), hl = (size_t)(e - host);
    if ((em->target = mh_malloc(sl + hl + 1)) == NULL)
        return MH_ENOMEM;
    memcpy(em->target, url, sl);
    memcpy(em->target + sl, host, hl);
    em->target[sl + hl] = '\0';

    em->require_tls = mh_cfg_bool(cfg, "require_tls");
    em->timeout_ms = mh_cfg_duration_ms(cfg, "timeout");
    const char *v;
    if ((v = mh_cfg_str(cfg, "username")) != NULL && *v && (em->username = mh_strdup(v)) == NULL)
        return MH_ENOMEM;
    if ((v = mh_cfg_str(cfg, "password")) != NULL && (em->password = mh_strdup(v)) == NULL)
        return MH_ENOMEM;
    if ((v = mh_cfg_str(cfg, "link_base")) != NULL && *v && (em->link_base = mh_strdup(v)) == NULL)
        return MH_ENOMEM;
    if ((em->subject_tpl = mh_strdup(mh_cfg_str(cfg, "subject"))) == NULL)
        return MH_ENOMEM;
    char bad[96];
    if (ntpl_check(em->subject_tpl, NULL, bad, sizeof bad) != 0) {
        mh_set_error(ctx, "subject: %s", bad);
        return MH_EINVAL;
    }
    /* From: */
    char *name = NULL, *addr = NULL;
    ntpl_split_address(mh_cfg_str(cfg, "from"), &name, &addr);
    if (name == NULL || addr == NULL || strchr(addr, '@') == NULL || strpbrk(addr, " <>\r\n") != NULL) {
        mh_set_error(ctx, "from must be an address such as \"mailhub <hub@example.org>\"");
        mh_free(name);
        mh_free(addr);
        return MH_EINVAL;
    }
    mh_free(name);
    em->from_addr = addr;
    if ((em->from_hdr = ntpl_mail_address(mh_cfg_str(cfg, "from"))) == NULL)
        return MH_ENOMEM;
    /* To: */
    size_t n = mh_cfg_list_len(cfg, "to");
    if (n > 0 && (em->to_addr = mh_calloc(n, sizeof *em->to_addr)) == NULL)
        return MH_ENOMEM;
    struct buf hdr = {0};
    for (size_t i = 0; i < n; i++) {
        const char *item = mh_cfg_list_item(cfg, "to", i);
        ntpl_split_address(item, &name, &addr);
        if (name == NULL || addr == NULL || strchr(addr, '@') == NULL || strpbrk(addr, " <>\r\n") != NULL) {
            mh_set_error(ctx, "to[%zu] is not an e-mail address", i);
            mh_free(name);
            mh_free(addr);
            free(hdr.p);
            return MH_EINVAL;
        }
        mh_free(name);
        em->to_addr[em->n_to++] = addr;
        char *one = ntpl_mail_address(item);
        if (one == NULL) {
            free(hdr.p);
            return MH_ENOMEM;
        }
        if (i > 0)
            b_add(&hdr, ",\r\n ");
        b_add(&hdr, one);
        mh_free(one);
    }
    if (hdr.oom) {
        free(hdr.p);
        return MH_ENOMEM;
    }
    em->to_hdr = hdr.p; /* NULL without `to`: each event's user address is used */
    if ((v = mh_cfg_str(cfg, "ca_file")) != NULL && *v) {
        char *path = mh_data_path(ctx, v);
        if (path == NULL)
            return MH_ENOMEM;
        int rc = read_file(ctx, path, &em->ca, &em->ca_len);
        mh_free(path);
        if (rc != MH_OK)
            return rc;
    }
    if (strncmp(url, "smtp://", 7) == 0 && !em->require_tls)
        mh_log_warn(ctx, "require_tls is off: mail to %s may travel unencrypted%s", em->target,
                    em->username ? ", password included" : "");
    return MH_OK;
}

static int mail_init(struct mh_plugin_ctx *ctx, const struct mh_config *cfg, void **state_out)
{
    struct mail *em = mh_calloc(1, sizeof *em);
    if (em == NULL)
        return MH_ENOMEM;
    em->ctx = ctx;
    int rc = mail_configure(em, cfg);
    if (rc != MH_OK) {
        mail_free(em);
        return rc;
    }
    mh_log_info(ctx, "sending notification e-mail through %s%s", em->target,
                strncmp(em->url, "smtps://", 8) == 0 ? " (implicit TLS)"
                : em->require_tls                    ? " (STARTTLS required)"
                                                     : "");
    *state_out = em;
    return MH_OK;
}

static int mail_stop(void *state)
{
    struct mail *em = state;
    em->stopping = 1;
    return em->active == NULL ? MH_OK : MH_PENDING;
}

static const struct mh_notifier_ops mail_ops = {
    .struct_size = sizeof(struct mh_notifier_ops),
    .send = mail_send,
};

MH_PLUGIN_DEFINE(email, .kind = MH_KIND_NOTIFIER, .name = "email", .version = "1.0.0",
                 .description = "send a notification e-mail per event over SMTP (STARTTLS or TLS, AUTH)",
                 .options = mail_options, .init = mail_init, .stop = mail_stop, .free = mail_free,
                 .ops = &mail_ops);

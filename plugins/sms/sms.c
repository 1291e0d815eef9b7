/*
 * sms: a notifier that sends a short text message per event through an SMS
 * gateway's HTTP interface.
 *
 * mode: kannel (default) uses Kannel's sendsms interface:
 *     GET <url>?username=..&password=..&from=..&to=..&text=..[&coding=2&charset=UTF-8]
 * Kannel answers 202 "0: Accepted for delivery" (or "3: Queued for later
 * delivery" while its bearerbox is away: accepted, with a warning, since
 * Kannel keeps no store).
 *
 * mode: http drives any HTTP gateway (Twilio, Aliyun, an in-house one) from
 * configuration: `method`, a `url` and a `body` template, `body_format`
 * form or json (values escaped accordingly), an `auth_header` secret and
 * extra `headers`.  Templates see {to} {text} {sender} {coding} besides the
 * event's placeholders (plugins/common/notify_tpl.h).
 *
 * The text is `template` rendered (default "[{account}] {from}: {subject}")
 * and cut to at most `max_parts` segments on a character boundary: GSM-7
 * text is sent as is, anything else as UCS-2 (coding=2, charset UTF-8).
 * The number is `to` rendered: "{phone}" (the default) is the user's bound
 * phone number that the core passes with the event (mh_event.phone, since
 * ABI 1.2; the number current when the notification was queued), else the
 * event's data.phone.  Spaces, dashes and parentheses are removed.
 *
 * Results: 2xx delivered; 408, 429, 5xx and transport errors are retried by
 * the core with backoff; other 4xx (bad credentials, bad number) and a
 * missing or malformed number are permanent.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <mailhub/plugin.h>
#include <mailhub/notifier.h>

#include "../common/notify_tpl.h"

enum sms_mode { MODE_KANNEL, MODE_HTTP };

struct sms {
    struct mh_plugin_ctx *ctx;
    enum sms_mode mode;
    char *url, *username, *password, *from, *to, *tpl;
    char *method, *body, *auth_header;
    int json;
    int max_parts;
    int64_t timeout_ms;
    char **headers;
    size_t n_headers;
    char *target; /* scheme://host[:port] for logs */
};

struct sms_send {
    struct sms *sm;
    struct mh_job *job;
    char to[64];
};

static const struct mh_option sms_options[] = {
    {"mode", MH_OPT_ENUM, "kannel", 0, "kannel: Kannel's sendsms; http: a generic HTTP gateway",
     "kannel|http", 0, 0},
    {"url", MH_OPT_STR, NULL, MH_OPT_REQUIRED,
     "kannel: the sendsms URL, e.g. http://127.0.0.1:13013/cgi-bin/sendsms; http: the gateway URL (a "
     "template)",
     NULL, 0, 0},
    {"username", MH_OPT_STR, NULL, 0, "kannel: sendsms-user username", NULL, 0, 0},
    {"password", MH_OPT_STR, NULL, MH_OPT_SECRET, "kannel: sendsms-user password", NULL, 0, 0},
    {"from", MH_OPT_STR, NULL, 0, "sender number or name (kannel: from; http: {sender})", NULL, 0, 0},
    {"to", MH_OPT_STR, "{phone}", 0, "recipient number; {phone} is the user's bound number", NULL, 0, 0},
    {"template", MH_OPT_STR, "[{account}] {from}: {subject}", 0, "the text", NULL, 0, 0},
    {"max_parts", MH_OPT_INT, "3", 0, "at most this many SMS segments (the text is cut to fit)", NULL, 1, 10},
    {"method", MH_OPT_ENUM, "POST", 0, "http: request method", "GET|POST|PUT", 0, 0},
    {"body", MH_OPT_STR, NULL, 0, "http: body template, e.g. To={to}&From={sender}&Body={text}", NULL, 0, 0},
    {"body_format", MH_OPT_ENUM, "form", 0,
     "http: form (x-www-form-urlencoded) or json (values JSON-escaped)", "form|json", 0, 0},
    {"auth_header", MH_OPT_STR, NULL, MH_OPT_SECRET,
     "http: a header line such as \"Authorization: Basic ...\"", NULL, 0, 0},
    {"headers", MH_OPT_STRLIST, NULL, 0, "http: extra request headers, each \"Name: value\"", NULL, 0, 0},
    {"timeout", MH_OPT_DURATION, "10s", 0, "whole request timeout", NULL, 100, 300000},
    MH_OPT_TABLE_END,
};

static const char *const extra_names[] = {"to", "text", "sender", "coding", NULL};

/* ------------------------------------------------------------ sending */

/* Keep '+' and digits of a rendered number; 0 if it is not a plausible number. */
static int clean_number(const char *in, char *out, size_t cap)
{
    size_t n = 0, digits = 0;
    for (const char *p = in; *p; p++) {
        if (*p == ' ' || *p == '-' || *p == '(' || *p == ')' || *p == '.' || *p == '\t')
            continue;
        if (*p == '+' && n == 0) {
            out[n++] = '+';
            continue;
        }
        if (*p < '0' || *p > '9' || n + 1 >= cap)
            return 0;
        out[n++] = *p;
        digits++;
    }
    out[n] = '\0';
    return digits >= 3 && digits <= 20;
}

static void sms_done(void *arg, const struct mh_http_response *resp, int rc)
{
    struct sms_send *s = arg;
    struct sms *sm = s->sm;
    char detail[256];
    int out;
    if (rc == MH_OK) {
        long st = resp->status;
        char body[96] = "";
        if (resp->body != NULL) {
            size_t n = resp->body_len < sizeof body - 1 ? resp->body_len : sizeof body - 1;
            for (size_t i = 0; i < n; i++)
                body[i] = resp->body[i] >= 0x20 && resp->body[i] < 0x7f ? resp->body[i] : ' ';
            body[n] = '\0';
        }
        snprintf(detail, sizeof detail, "HTTP %ld from %s: %s", st, sm->target, body);
        if (st >= 200 && st < 300) {
            out = MH_OK;
            if (sm->mode == MODE_KANNEL && strncmp(body, "3:", 2) == 0)
                mh_log_warn(sm->ctx,
                            "Kannel at %s queued the SMS to %s for later delivery: it keeps no store",
                            sm->target, s->to);
            else
                mh_log_debug(sm->ctx, "SMS to %s accepted by %s (HTTP %ld)", s->to, sm->target, st);
        } else if (st == 408 || st == 429 || st >= 500) {
            out = MH_ERETRY;
            for (size_t i = 0; i < resp->n_headers; i++) {
                const struct mh_http_header *h = &resp->headers[i];
                char *end = NULL;
                long secs = h->name && h->value && strcasecmp(h->name, "Retry-After") == 0
                                ? strtol(h->value, &end, 10)
                                : -1;
                if (secs > 0 && secs <= 3600 && end != NULL && (*end == '\0' || *end == '\r' || *end == ' '))
                    mh_job_retry_after(s->job, (double)secs);
            }
        } else {
            out = MH_ERR;
            mh_log_error(sm->ctx, "gateway %s refused the SMS to %s permanently: %s", sm->target, s->to,
                         detail);
        }
    } else {
        out = rc == MH_ERR ? MH_ERR : MH_ERETRY;
        snprintf(detail, sizeof detail, "%s: %s", sm->target,
                 resp && resp->error ? resp->error : "request failed");
        if (out == MH_ERR)
            mh_log_error(sm->ctx, "%s", detail);
    }
    struct mh_job *job = s->job;
    mh_free(s);
    mh_job_done(job, out, detail);
}

static char *kannel_url(struct sms *sm, const char *to, const char *text, int ucs2, const char *report_url)
{
    /* a delivery report from Kannel comes back to the hub: dlr-url with %d (status) and %A (answer) */
    char *dlr = NULL;
    if (report_url != NULL && *report_url != '\0') {
        size_t n = strlen(report_url) + 32;
        char *u = mh_malloc(n);
        if (u != NULL) {
            snprintf(u, n, "%s&status=%%d&answer=%%A", report_url);
            char *e = ntpl_escape(u, NTPL_FORM);
            mh_free(u);
            if (e != NULL) {
                size_t m = strlen(e) + 32;
                dlr = mh_malloc(m);
                if (dlr != NULL)
                    snprintf(dlr, m, "&dlr-mask=31&dlr-url=%s", e);
                mh_free(e);
            }
        }
    }
    char *eu = ntpl_escape(sm->username ? sm->username : "", NTPL_FORM);
    char *ep = ntpl_escape(sm->password ? sm->password : "", NTPL_FORM);
    char *ef = ntpl_escape(sm->from ? sm->from : "", NTPL_FORM);
    char *et = ntpl_escape(to, NTPL_FORM);
    char *ex = ntpl_escape(text, NTPL_FORM);
    char *url = NULL;
    if (eu && ep && ef && et && ex) {
        size_t n = strlen(sm->url) + strlen(eu) + strlen(ep) + strlen(ef) + strlen(et) + strlen(ex) +
                   (dlr ? strlen(dlr) : 0) + 128;
        url = mh_malloc(n);
        if (url != NULL)
            snprintf(url, n, "%s%susername=%s&password=%s%s%s&to=%s&text=%s%s%s", sm->url,
                     strchr(sm->url, '?') ? "&" : "?", eu, ep, *ef ? "&from=" : "", ef, et, ex,
                     ucs2 ? "&coding=2&charset=UTF-8" : "", dlr ? dlr : "");
    }
    mh_free(dlr);
    mh_free(eu);
    mh_free(ep);
    mh_free(ef);
    mh_free(et);
    mh_free(ex);
    return url;
}

static int sms_send(void *state, const struct mh_event *ev, struct mh_job *job)
{
    struct sms *sm = state;
    if (ev == NULL || ev->json == NULL)
        return MH_EINVAL;
    struct ntpl_event e;
    char err[160];
    if (ntpl_event_parse(ev->json, ev->json_len ? ev->json_len : strlen(ev->json), &e, err, sizeof err) !=
        0) {
        mh_set_error(sm->ctx, "%s", err);
        return MH_ERR;
    }
    /* since 1.2 the core gives the user's bound number with the event: it wins over data.phone */
    const char *bound =
        ev->struct_size >= offsetof(struct mh_event, phone) + sizeof ev->phone ? ev->phone : NULL;
    if (bound != NULL && *bound != '\0') {
        char *p = mh_strdup(bound);
        if (p == NULL) {
            ntpl_event_clear(&e);
            return MH_ENOMEM;
        }
        mh_free(e.phone);
        e.phone = p;
    }
    int rc = MH_ENOMEM;
    char *to_raw = NULL, *text = NULL, *url = NULL, *body = NULL, *auth = NULL;
    struct sms_send *s = NULL;
    const char **hdrs = NULL;

    to_raw = ntpl_render(sm->to, &e, NULL, 0, NTPL_RAW);
    if (to_raw == NULL)
        goto out;
    char to[64];
    if (!clean_number(to_raw, to, sizeof to)) {
        if (*to_raw == '\0')
            mh_set_error(sm->ctx,
                         "no phone number for user '%s' (event %s): bind one (mailhubctl phone set) or set "
                         "option 'to'",
                         e.user, e.id);
        else
            mh_set_error(sm->ctx, "'%s' is not a phone number (user '%s')", to_raw, e.user);
        mh_log_error(sm->ctx, "not sending %s %s: no valid phone number for user '%s'", e.type, e.id, e.user);
        rc = MH_ERR;
        goto out;
    }
    char *full = ntpl_render(sm->tpl, &e, NULL, 0, NTPL_RAW);
    if (full == NULL)
        goto out;
    struct ntpl_sms_fit fit;
    ntpl_sms_fit(full, sm->max_parts, &fit);
    full[fit.len] = '\0';
    text = full;
    if (fit.truncated)
        mh_log_debug(sm->ctx, "text cut to %d part(s) (%zu %s)", fit.parts, fit.units,
                     fit.ucs2 ? "UTF-16 units" : "septets");

    struct mh_http_request req = {.struct_size = sizeof req, .timeout_ms = sm->timeout_ms};
    if (sm->mode == MODE_KANNEL) {
        const char *report = ev->struct_size >= offsetof(struct mh_event, report_url) + sizeof ev->report_url
                                 ? ev->report_url
                                 : NULL;
        url = kannel_url(sm, to, text, fit.ucs2, report);
        if (url == NULL)
            goto out;
        req.method = "GET";
    } else {
        struct ntpl_var vars[] = {{"to", to},
                                  {"text", text},
                                  {"sender", sm->from ? sm->from : ""},
                                  {"coding", fit.ucs2 ? "ucs2" : "gsm7"}};
        url = ntpl_render(sm->url, &e, vars, 4, NTPL_FORM);
        if (url == NULL)
            goto out;
        req.method = sm->method;
        if (strcmp(sm->method, "GET") != 0) {
            body = ntpl_render(sm->body ? sm->body : "", &e, vars, 4, sm->json ? NTPL_JSON : NTPL_FORM);
            if (body == NULL)
                goto out;
            req.body = body;
            req.body_len = strlen(body);
        }
        hdrs = mh_calloc(sm->n_headers + 3, sizeof *hdrs);
        if (hdrs == NULL)
            goto out;
        size_t k = 0;
        if (body != NULL)
            hdrs[k++] = sm->json ? "Content-Type: application/json"
                                 : "Content-Type: application/x-www-form-urlencoded";
        if (sm->auth_header != NULL)
            hdrs[k++] = sm->auth_header;
        for (size_t i = 0; i < sm->n_headers; i++)
            hdrs[k++] = sm->headers[i];
        req.headers = hdrs;
    }
    req.url = url;
    s = mh_calloc(1, sizeof *s);
    if (s == NULL)
        goto out;
    s->sm = sm;
    s->job = job;
    snprintf(s->to, sizeof s->to, "%s", to);
    rc = mh_http_request(sm->ctx, &req, sms_done, s, NULL);
    if (rc == MH_PENDING) {
        s = NULL;
    } else {
        mh_set_error(sm->ctx, "cannot start the request to %s", sm->target);
        rc = rc == MH_EINVAL ? MH_ERR : MH_ERETRY;
    }
out:
    if (rc == MH_ENOMEM)
        mh_set_error(sm->ctx, "out of memory");
    mh_free(s);
    mh_free(hdrs);
    mh_free(to_raw);
    mh_free(text);
    mh_free(url);
    mh_free(body);
    mh_free(auth);
    ntpl_event_clear(&e);
    return rc;
}

/* ----------------------------------------------------------- lifecycle */

static char *url_target(const char *url)
{
    const char *p = strstr(url, "://");
    if (p == NULL)
        return mh_strdup("(gateway)");
    p += 3;
    const char *e = p + strcspn(p, "/?#");
    const char *host = p;
    for (const char *q = p; q < e; q++)
        if (*q == '@')
            host = q + 1;
    size_t sl = (size_t)(p - url), hl = (size_t)(e - host);
    char *t = mh_malloc(sl + hl + 1);
    if (t != NULL) {
        memcpy(t, url, sl);
        memcpy(t + sl, host, hl);
        t[sl + hl] = '\0';
    }
    return t;
}

static void sms_free(void *state)
{
    struct sms *sm = state;
    if (sm == NULL)
        return;
    mh_free(sm->url);
    mh_free(sm->username);
    mh_free(sm->password);
    mh_free(sm->from);
    mh_free(sm->to);
    mh_free(sm->tpl);
    mh_free(sm->method);
    mh_free(sm->body);
    mh_free(sm->auth_header);
    mh_free(sm->target);
    for (size_t i = 0; i < sm->n_headers; i++)
        mh_free(sm->headers[i]);
    mh_free(sm->headers);
    mh_free(sm);
}

static int dup_opt(const struct mh_config *cfg, const char *name, char **out)
{
    const char *v = mh_cfg_str(cfg, name);
    if (v == NULL || *v == '\0')
        return MH_OK;
    *out = mh_strdup(v);
    return *out ? MH_OK : MH_ENOMEM;
}

static int check_tpl(struct mh_plugin_ctx *ctx, const char *name, const char *tpl)
{
    char bad[96];
    if (tpl != NULL && ntpl_check(tpl, extra_names, bad, sizeof bad) != 0) {
        mh_set_error(ctx, "%s: %s", name, bad);
        return MH_EINVAL;
    }
    return MH_OK;
}

static int sms_configure(struct sms *sm, const struct mh_config *cfg)
{
    struct mh_plugin_ctx *ctx = sm->ctx;
    const char *mode = mh_cfg_str(cfg, "mode");
    sm->mode = mode && strcmp(mode, "http") == 0 ? MODE_HTTP : MODE_KANNEL;
    int rc;
    if ((rc = dup_opt(cfg, "url", &sm->url)) || (rc = dup_opt(cfg, "username", &sm->username)) ||
        (rc = dup_opt(cfg, "password", &sm->password)) || (rc = dup_opt(cfg, "from", &sm->from)) ||
        (rc = dup_opt(cfg, "to", &sm->to)) || (rc = dup_opt(cfg, "template", &sm->tpl)) ||
        (rc = dup_opt(cfg, "method", &sm->method)) || (rc = dup_opt(cfg, "body", &sm->body)) ||
        (rc = dup_opt(cfg, "auth_header", &sm->auth_header)))
        return rc;
    if (sm->url == NULL || (strncmp(sm->url, "http://", 7) != 0 && strncmp(sm->url, "https://", 8) != 0)) {
        mh_set_error(ctx, "url must be an http:// or https:// URL");
        return MH_EINVAL;
    }
    if ((sm->target = url_target(sm->url)) == NULL)
        return MH_ENOMEM;
    if (sm->to == NULL && (sm->to = mh_strdup("{phone}")) == NULL)
        return MH_ENOMEM;
    if (sm->tpl == NULL && (sm->tpl = mh_strdup("[{account}] {from}: {subject}")) == NULL)
        return MH_ENOMEM;
    if (sm->method == NULL && (sm->method = mh_strdup("POST")) == NULL)
        return MH_ENOMEM;
    const char *bf = mh_cfg_str(cfg, "body_format");
    sm->json = bf && strcmp(bf, "json") == 0;
    sm->max_parts = (int)mh_cfg_int(cfg, "max_parts");
    if (sm->max_parts < 1)
        sm->max_parts = 1;
    sm->timeout_ms = mh_cfg_duration_ms(cfg, "timeout");
    if ((rc = check_tpl(ctx, "template", sm->tpl)) || (rc = check_tpl(ctx, "to", sm->to)) ||
        (rc = check_tpl(ctx, "url", sm->mode == MODE_HTTP ? sm->url : NULL)) ||
        (rc = check_tpl(ctx, "body", sm->body)))
        return rc;
    if (sm->mode == MODE_KANNEL && (sm->username == NULL || sm->password == NULL)) {
        mh_set_error(ctx, "mode kannel needs username and password (a sendsms-user of smsbox)");
        return MH_EINVAL;
    }
    if (sm->mode == MODE_HTTP && strcmp(sm->method, "GET") != 0 && sm->body == NULL) {
        mh_set_error(ctx, "mode http with method %s needs a body template", sm->method);
        return MH_EINVAL;
    }
    if (sm->auth_header != NULL &&
        (strchr(sm->auth_header, ':') == NULL || strpbrk(sm->auth_header, "\r\n"))) {
        mh_set_error(ctx, "auth_header must be one line \"Name: value\"");
        return MH_EINVAL;
    }
    size_t n = mh_cfg_list_len(cfg, "headers");
    if (n > 0 && (sm->headers = mh_calloc(n, sizeof *sm->headers)) == NULL)
        return MH_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *h = mh_cfg_list_item(cfg, "headers", i);
        if (h == NULL || strchr(h, ':') == NULL || strpbrk(h, "\r\n") != NULL) {
            mh_set_error(ctx, "headers[%zu] must be one line \"Name: value\"", i);
            return MH_EINVAL;
        }
        if ((sm->headers[i] = mh_strdup(h)) == NULL)
            return MH_ENOMEM;
        sm->n_headers++;
    }
    return MH_OK;
}

static int sms_init(struct mh_plugin_ctx *ctx, const struct mh_config *cfg, void **state_out)
{
    struct sms *sm = mh_calloc(1, sizeof *sm);
    if (sm == NULL)
        return MH_ENOMEM;
    sm->ctx = ctx;
    int rc = sms_configure(sm, cfg);
    if (rc != MH_OK) {
        sms_free(sm);
        return rc;
    }
    mh_log_info(ctx, "sending SMS through %s (%s, at most %d part(s))", sm->target,
                sm->mode == MODE_KANNEL ? "Kannel sendsms" : "HTTP gateway", sm->max_parts);
    *state_out = sm;
    return MH_OK;
}

static const struct mh_notifier_ops sms_ops = {
    .struct_size = sizeof(struct mh_notifier_ops),
    .send = sms_send,
};

MH_PLUGIN_DEFINE(sms, .kind = MH_KIND_NOTIFIER, .name = "sms", .version = "1.0.0",
                 .description = "send an SMS per event through Kannel or a configurable HTTP gateway",
                 .options = sms_options, .init = sms_init, .free = sms_free, .ops = &sms_ops);

/*
 * Per-user notification rules: parsing, validation and the decision for one
 * event and one channel.  See mh_rules.h and docs/notifications.md.
 */
#include "config.h"

#include "mh_rules.h"
#include "mh_util.h"

#include <glib.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RULES_MAX_LIST 256

struct strlist {
    char **v;
    size_t n;
};

struct channel {
    char *name;
    int enabled;
    struct strlist accounts, folders; /* empty: all */
    uint64_t rate_max;                /* 0: no limit */
    int64_t rate_per_ms;
};

struct mh_rules {
    char *tz_name;
    GTimeZone *tz;
    struct strlist mute, vip;
    int quiet;                /* quiet hours set */
    int quiet_start, quiet_end; /* seconds of the local day */
    struct strlist quiet_channels; /* empty: all */
    struct channel *ch;
    size_t n_ch;
};

static void list_free(struct strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

void mh_rules_free(struct mh_rules **rp)
{
    struct mh_rules *r = rp ? *rp : NULL;
    if (r == NULL)
        return;
    free(r->tz_name);
    if (r->tz)
        g_time_zone_unref(r->tz);
    list_free(&r->mute);
    list_free(&r->vip);
    list_free(&r->quiet_channels);
    for (size_t i = 0; i < r->n_ch; i++) {
        free(r->ch[i].name);
        list_free(&r->ch[i].accounts);
        list_free(&r->ch[i].folders);
    }
    free(r->ch);
    free(r);
    *rp = NULL;
}

static char *errf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *errf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

static int parse_list(json_t *v, const char *key, struct strlist *out, char **err)
{
    if (v == NULL)
        return 0;
    if (!json_is_array(v)) {
        *err = errf("%s: expected a list of strings", key);
        return -1;
    }
    if (json_array_size(v) > RULES_MAX_LIST) {
        *err = errf("%s: at most %d entries", key, RULES_MAX_LIST);
        return -1;
    }
    out->v = mh_xcalloc(json_array_size(v) + 1, sizeof *out->v);
    size_t i;
    json_t *it;
    json_array_foreach(v, i, it)
    {
        if (!json_is_string(it) || json_string_length(it) == 0 || json_string_length(it) > 320) {
            *err = errf("%s[%zu]: expected a non-empty string (at most 320 bytes)", key, i);
            return -1;
        }
        out->v[out->n++] = mh_xstrdup(json_string_value(it));
    }
    return 0;
}

/* "HH:MM" or "HH:MM:SS" -> seconds of the day */
static int parse_clock(const char *s, int *out)
{
    unsigned h, m, sec = 0;
    char tail;
    int n = sscanf(s, "%2u:%2u:%2u%c", &h, &m, &sec, &tail);
    if (n != 2 && n != 3)
        return -1;
    if (n == 2 && (strlen(s) != 5))
        return -1;
    if (n == 3 && strlen(s) != 8)
        return -1;
    if (h > 23 || m > 59 || sec > 59)
        return -1;
    *out = (int)(h * 3600 + m * 60 + sec);
    return 0;
}

/* "30s", "10m", "1h", "1d" -> milliseconds */
static int parse_period(const char *s, int64_t *ms)
{
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (end == s || v <= 0 || v > 1000000)
        return -1;
    int64_t unit = strcmp(end, "s") == 0 ? 1000 : strcmp(end, "m") == 0 ? 60000 : strcmp(end, "h") == 0 ? 3600000
                   : strcmp(end, "d") == 0 ? 86400000 : 0;
    if (unit == 0)
        return -1;
    *ms = v * unit;
    return 0;
}

static int check_keys(json_t *obj, const char *where, const char *const *allowed, char **err)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        (void)v;
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            ok |= strcmp(*a, k) == 0;
        if (!ok) {
            *err = errf("%s%s%s: unknown key", where, where[0] ? "." : "", k);
            return -1;
        }
    }
    return 0;
}

static int parse_channel(const char *name, json_t *o, struct channel *c, char **err)
{
    char where[200];
    snprintf(where, sizeof where, "channels.%s", name);
    c->name = mh_xstrdup(name);
    c->enabled = 1;
    if (!json_is_object(o)) {
        *err = errf("%s: expected an object", where);
        return -1;
    }
    static const char *const keys[] = {"enabled", "accounts", "folders", "rate", NULL};
    if (check_keys(o, where, keys, err) != 0)
        return -1;
    json_t *v = json_object_get(o, "enabled");
    if (v != NULL) {
        if (!json_is_boolean(v)) {
            *err = errf("%s.enabled: expected true or false", where);
            return -1;
        }
        c->enabled = json_is_true(v);
    }
    char key[240];
    snprintf(key, sizeof key, "%s.accounts", where);
    if (parse_list(json_object_get(o, "accounts"), key, &c->accounts, err) != 0)
        return -1;
    snprintf(key, sizeof key, "%s.folders", where);
    if (parse_list(json_object_get(o, "folders"), key, &c->folders, err) != 0)
        return -1;
    json_t *rate = json_object_get(o, "rate");
    if (rate != NULL) {
        static const char *const rkeys[] = {"max", "per", NULL};
        snprintf(key, sizeof key, "%s.rate", where);
        if (!json_is_object(rate)) {
            *err = errf("%s: expected an object such as {\"max\": 5, \"per\": \"1h\"}", key);
            return -1;
        }
        if (check_keys(rate, key, rkeys, err) != 0)
            return -1;
        json_t *max = json_object_get(rate, "max"), *per = json_object_get(rate, "per");
        if (!json_is_integer(max) || json_integer_value(max) < 1 || json_integer_value(max) > 100000) {
            *err = errf("%s.max: expected a whole number from 1 to 100000", key);
            return -1;
        }
        c->rate_max = (uint64_t)json_integer_value(max);
        c->rate_per_ms = 3600000;
        if (per != NULL && (!json_is_string(per) || parse_period(json_string_value(per), &c->rate_per_ms) != 0)) {
            *err = errf("%s.per: expected a period such as \"30s\", \"10m\", \"1h\" or \"1d\"", key);
            return -1;
        }
    }
    return 0;
}

struct mh_rules *mh_rules_parse(const char *text, char **err_out)
{
    *err_out = NULL;
    struct mh_rules *r = mh_xcalloc(1, sizeof *r);
    r->tz_name = mh_xstrdup("UTC");
    r->tz = g_time_zone_new_utc();
    if (text == NULL || text[0] == '\0')
        return r;
    json_error_t je;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    char *err = NULL;
    if (root == NULL || !json_is_object(root)) {
        err = root ? errf("the rules must be a JSON object") : errf("line %d: %s", je.line, je.text);
        goto fail;
    }
    static const char *const keys[] = {"timezone", "mute", "vip", "quiet_hours", "channels", NULL};
    if (check_keys(root, "", keys, &err) != 0)
        goto fail;
    json_t *v = json_object_get(root, "timezone");
    if (v != NULL) {
        const char *name = json_is_string(v) ? json_string_value(v) : NULL;
        GTimeZone *tz = name && name[0] && !strstr(name, "..") ? g_time_zone_new_identifier(name) : NULL;
        if (tz == NULL) {
            err = errf("timezone: unknown time zone %s%s%s; use an IANA name such as \"Asia/Shanghai\"",
                       name ? "\"" : "", name ? name : "(not a string)", name ? "\"" : "");
            goto fail;
        }
        g_time_zone_unref(r->tz);
        r->tz = tz;
        free(r->tz_name);
        r->tz_name = mh_xstrdup(name);
    }
    if (parse_list(json_object_get(root, "mute"), "mute", &r->mute, &err) != 0 ||
        parse_list(json_object_get(root, "vip"), "vip", &r->vip, &err) != 0)
        goto fail;
    json_t *q = json_object_get(root, "quiet_hours");
    if (q != NULL) {
        static const char *const qkeys[] = {"start", "end", "channels", NULL};
        if (!json_is_object(q)) {
            err = errf("quiet_hours: expected an object such as {\"start\": \"22:00\", \"end\": \"07:00\"}");
            goto fail;
        }
        if (check_keys(q, "quiet_hours", qkeys, &err) != 0)
            goto fail;
        const char *names[2] = {"start", "end"};
        int *dst[2] = {&r->quiet_start, &r->quiet_end};
        for (int i = 0; i < 2; i++) {
            json_t *t = json_object_get(q, names[i]);
            if (!json_is_string(t) || parse_clock(json_string_value(t), dst[i]) != 0) {
                err = errf("quiet_hours.%s: expected HH:MM or HH:MM:SS%s%s%s", names[i], json_is_string(t) ? ", got \"" : "",
                           json_is_string(t) ? json_string_value(t) : "", json_is_string(t) ? "\"" : "");
                goto fail;
            }
        }
        if (r->quiet_start == r->quiet_end) {
            err = errf("quiet_hours: start and end are the same time");
            goto fail;
        }
        if (parse_list(json_object_get(q, "channels"), "quiet_hours.channels", &r->quiet_channels, &err) != 0)
            goto fail;
        r->quiet = 1;
    }
    json_t *chs = json_object_get(root, "channels");
    if (chs != NULL) {
        if (!json_is_object(chs)) {
            err = errf("channels: expected an object keyed by notifier name");
            goto fail;
        }
        r->ch = mh_xcalloc(json_object_size(chs) + 1, sizeof *r->ch);
        const char *k;
        json_object_foreach(chs, k, v)
        {
            if (parse_channel(k, v, &r->ch[r->n_ch++], &err) != 0)
                goto fail;
        }
    }
    json_decref(root);
    return r;
fail:
    json_decref(root);
    mh_rules_free(&r);
    *err_out = err ? err : mh_xstrdup("out of memory");
    return NULL;
}

const char *mh_rules_timezone(const struct mh_rules *r) { return r->tz_name; }

static int in_list_ci(const struct strlist *l, const char *s)
{
    for (size_t i = 0; s && i < l->n; i++)
        if (strcasecmp(l->v[i], s) == 0)
            return 1;
    return 0;
}

/* The address of "Name <addr>" (or the whole text), in buf. */
static const char *address_of(const char *from, char *buf, size_t n)
{
    const char *lt = from ? strrchr(from, '<') : NULL, *gt = lt ? strchr(lt, '>') : NULL;
    if (lt && gt && gt > lt + 1)
        snprintf(buf, n, "%.*s", (int)(gt - lt - 1), lt + 1);
    else
        snprintf(buf, n, "%s", from ? from : "");
    return buf;
}

static int is_vip(const struct mh_rules *r, const char *from)
{
    char addr[400];
    address_of(from, addr, sizeof addr);
    if (addr[0] == '\0')
        return 0;
    const char *at = strrchr(addr, '@');
    for (size_t i = 0; i < r->vip.n; i++) {
        const char *v = r->vip.v[i];
        if (v[0] == '@' ? (at && strcasecmp(at, v) == 0) : strcasecmp(addr, v) == 0)
            return 1;
    }
    return 0;
}

static const struct channel *channel_of(const struct mh_rules *r, const char *name)
{
    for (size_t i = 0; i < r->n_ch; i++)
        if (strcmp(r->ch[i].name, name) == 0)
            return &r->ch[i];
    return NULL;
}

enum mh_rules_verdict mh_rules_decide(const struct mh_rules *r, const char *channel, const struct mh_rules_event *ev,
                                      int64_t now_ms, uint64_t (*sent_in_window)(void *arg, int64_t since_ms),
                                      void *arg, int64_t *until_ms, const char **why_out)
{
    static const char *const none = "";
    *why_out = none;
    *until_ms = 0;
    const struct channel *c = channel_of(r, channel);
    if (c && !c->enabled) {
        *why_out = "the channel is disabled";
        return MH_RULES_DROP;
    }
    int mail = ev->type && strcmp(ev->type, "mail.received") == 0;
    if (mail) {
        if (in_list_ci(&r->mute, ev->account)) {
            *why_out = "the account is muted";
            return MH_RULES_DROP;
        }
        if (c && c->accounts.n && !in_list_ci(&c->accounts, ev->account)) {
            *why_out = "the account is not among the channel's accounts";
            return MH_RULES_DROP;
        }
        if (c && c->folders.n && !in_list_ci(&c->folders, ev->folder)) {
            *why_out = "the folder is not among the channel's folders";
            return MH_RULES_DROP;
        }
        if (is_vip(r, ev->from))
            return MH_RULES_SEND; /* a VIP is never held */
    }
    if (r->quiet && (r->quiet_channels.n == 0 || in_list_ci(&r->quiet_channels, channel))) {
        int64_t secs = now_ms / 1000;
        gint iv = g_time_zone_find_interval(r->tz, G_TIME_TYPE_UNIVERSAL, secs);
        int32_t off = iv >= 0 ? g_time_zone_get_offset(r->tz, iv) : 0;
        int sod = (int)((((secs + off) % 86400) + 86400) % 86400);
        int in = r->quiet_start < r->quiet_end ? (sod >= r->quiet_start && sod < r->quiet_end)
                                               : (sod >= r->quiet_start || sod < r->quiet_end);
        if (in) {
            int left = (r->quiet_end - sod + 86400) % 86400;
            *until_ms = (secs + left) * 1000;
            *why_out = "quiet hours";
            return MH_RULES_HOLD;
        }
    }
    if (mail && c && c->rate_max > 0 && sent_in_window) {
        uint64_t n = sent_in_window(arg, now_ms - c->rate_per_ms);
        if (n >= c->rate_max) {
            *until_ms = now_ms + c->rate_per_ms;
            *why_out = "the channel's rate limit";
            return MH_RULES_HOLD;
        }
    }
    return MH_RULES_SEND;
}

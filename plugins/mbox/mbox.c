/*
 * mbox: a provider that imports an mbox file (Google Takeout, Thunderbird,
 * mutt, procmail...) and, with `watch`, the messages appended to it later.
 *
 * Format.  A message starts at a line beginning with "From " (the "From_"
 * line, which is not part of the message) and ends before the next one; the
 * one empty line a writer puts after each message is removed.  Body lines
 * are unescaped the mboxrd way: a line matching /^>+From / loses one '>'.
 * That is exactly the inverse of mboxrd writers (Takeout); for mboxo writers
 * it only differs on lines that were written as ">From " originally, which
 * mboxo cannot tell from escaped ones anyway.  Every line that begins with
 * "From " starts a message, as both variants escape such lines in bodies.
 * The From_ line's date, when it has one, becomes the internal date.
 *
 * Work is cut in ticks: a 0 s timer reads at most `batch` messages (and a few
 * MB) per loop iteration, with at most `batch` store puts in flight; store
 * completions schedule the next tick.  Each message's source_id is
 * "mid:<Message-ID>:<hex SHA-256 of the raw message>" ("sha256:<hex>" without
 * a Message-ID), so importing the same file again stores nothing twice.
 *
 * The first pass over a file (and a pass over a file that was replaced or
 * truncated) only ends with account.synced; messages found after it emit
 * mail.received.  A message at the end of the file is imported once the file
 * has not grown for one poll interval, so a message being appended is not cut.
 * A transient store failure or a read error stops reading; after the poll
 * interval, reading resumes at the first message that was not stored.
 * account.error is emitted once per distinct error until a pass succeeds.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <jansson.h>
#include <openssl/evp.h>

#include <mailhub/plugin.h>
#include <mailhub/provider.h>

#define MBOX_TICK_BYTES ((int64_t)8 << 20) /* bytes read per tick at most */
#define MBOX_PROGRESS_EVERY 5.0            /* seconds between progress lines */
#define MBOX_HDR_MAX 2048                  /* bytes of a header value kept for events */
#define MBOX_MID_MAX 512                   /* bytes of a Message-ID kept in a source_id */

enum mbox_state {
    MBOX_IDLE,      /* not started */
    MBOX_IMPORTING, /* first pass over the file */
    MBOX_WATCHING,  /* first pass done; importing what is appended */
    MBOX_DONE,      /* first pass done and not watching */
    MBOX_ERROR,     /* waiting for the poll interval to retry */
    MBOX_STOPPING,
    MBOX_STOPPED,
};

static const char *const mbox_state_names[] = {"idle",  "importing", "watching", "done",
                                               "error", "stopping",  "stopped"};

struct mbox_counts {
    int64_t messages, fresh, duplicates, failed;
};

struct mbox;

/* One store put in flight. */
struct mbox_put {
    struct mbox *mb;
    struct mbox_put *prev, *next;
    int64_t off; /* file offset of the message's From_ line */
    size_t size;
    int notify; /* emit mail.received if it is new */
    char *from, *subject, *message_id;
};

struct mbox {
    struct mh_plugin_ctx *ctx;
    char *path, *folder, *user;
    int watch;
    double poll_interval;
    int64_t batch;

    enum mbox_state state;
    struct mh_timer *tick_timer, *poll_timer;

    FILE *fp;
    int known; /* dev/ino describe the file we read */
    dev_t dev;
    ino_t ino;
    int64_t offset;      /* bytes consumed from fp */
    int64_t bytes_total; /* file size at the last look */
    int64_t resume_off;  /* where reading resumes after an error */
    int64_t settle_size; /* size at which an unfinished end of file was left to settle; -1: none */
    int at_eof;
    int initial_done; /* the first pass ended with account.synced */

    char *line;
    size_t line_cap;
    int have_msg; /* a message is being assembled in buf */
    int64_t msg_off;
    int64_t msg_date;
    char *buf;
    size_t len, cap;
    int64_t skipped; /* bytes before the first From_ line */

    struct mbox_put *puts;
    int64_t inflight;
    char *error; /* the error last reported with account.error, until a pass succeeds */

    struct mbox_counts pass, total;
    double pass_started, last_progress, rate;
    int64_t progress_messages;
};

static const struct mh_option mbox_options[] = {
    {"path", MH_OPT_STR, NULL, MH_OPT_REQUIRED, "the mbox file to import (relative: to daemon.data_dir)", NULL, 0, 0},
    {"folder", MH_OPT_STR, "INBOX", 0, "folder the messages are filed under", NULL, 0, 0},
    {"user", MH_OPT_STR, NULL, 0, "hub user that owns the messages (default: the instance's user)", NULL, 0,
     0},
    {"watch", MH_OPT_BOOL, "true", 0, "after the import, keep importing messages appended to the file", NULL,
     0, 0},
    {"poll_interval", MH_OPT_DURATION, "5s", 0, "how often to look for appended messages and to retry errors",
     NULL, 100, 86400000},
    {"batch", MH_OPT_INT, "256", 0, "messages read per loop iteration and store puts in flight at most", NULL,
     1, 100000},
    MH_OPT_TABLE_END,
};

static void mbox_read(struct mbox *mb);

/* ------------------------------------------------------------ helpers */

static const char *mbox_rc_text(int rc)
{
    switch (rc) {
    case MH_ERETRY:
        return "store temporarily unavailable";
    case MH_EQUOTA:
        return "the user's allocation is full";
    case MH_ENOMEM:
        return "out of memory";
    case MH_EINVAL:
        return "message rejected as invalid";
    case MH_ECANCELED:
        return "cancelled";
    case MH_ETIMEDOUT:
        return "store timed out";
    default:
        return "store error";
    }
}

static int mbox_is_transient(int rc)
{
    return rc == MH_ERETRY || rc == MH_EQUOTA || rc == MH_ENOMEM || rc == MH_ETIMEDOUT || rc == MH_ECANCELED;
}

static void mbox_emit(struct mbox *mb, const char *type, json_t *data)
{
    char *text = data != NULL ? json_dumps(data, JSON_COMPACT) : NULL;
    json_decref(data);
    if (text == NULL) {
        mh_log_error(mb->ctx, "cannot build the %s event", type);
        return;
    }
    int rc = mh_event_emit(mb->ctx, type, text);
    if (rc != MH_OK)
        mh_log_warn(mb->ctx, "%s event refused (%d)", type, rc);
    free(text);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (m 1..12). */
static int64_t mbox_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int mbox_all_digits(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

/*
 * The date of a From_ line: "From sender Tue Jan  3 12:00:00 2023", with an
 * optional zone ("+0000") anywhere after the time.  0 if there is none.
 */
static int64_t mbox_from_date(const char *line, size_t len)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    char buf[256];
    if (len >= sizeof buf)
        len = sizeof buf - 1;
    memcpy(buf, line, len);
    buf[len] = '\0';
    int month = -1, day = -1, hh = -1, mi = 0, ss = 0, zone = 0;
    int64_t year = -1;
    char *save = NULL, *tok = strtok_r(buf, " \t\r\n", &save); /* "From" */
    tok = tok ? strtok_r(NULL, " \t\r\n", &save) : NULL;       /* the sender */
    while (tok != NULL && (tok = strtok_r(NULL, " \t\r\n", &save)) != NULL) {
        size_t tl = strlen(tok);
        if (month < 0 && tl == 3) {
            for (int i = 0; i < 12; i++)
                if (strncmp(tok, months + 3 * i, 3) == 0)
                    month = i + 1;
        } else if (month > 0 && day < 0 && tl <= 2 && mbox_all_digits(tok)) {
            day = atoi(tok);
        } else if (hh < 0 && strchr(tok, ':') != NULL) {
            if (sscanf(tok, "%d:%d:%d", &hh, &mi, &ss) < 2)
                return 0;
        } else if ((tok[0] == '+' || tok[0] == '-') && tl == 5 && mbox_all_digits(tok + 1)) {
            int v = atoi(tok + 1);
            zone = (tok[0] == '-' ? -1 : 1) * ((v / 100) * 3600 + (v % 100) * 60);
        } else if (year < 0 && tl == 4 && mbox_all_digits(tok)) {
            year = atoi(tok);
        }
    }
    if (month < 1 || day < 1 || day > 31 || hh < 0 || hh > 23 || mi < 0 || mi > 59 || ss < 0 || ss > 60 ||
        year < 1970)
        return 0;
    return mbox_days_from_civil(year, (unsigned)month, (unsigned)day) * 86400 + hh * 3600 + mi * 60 + ss -
           zone;
}

/* Copy `s` as valid UTF-8: invalid bytes become U+FFFD, controls a space. */
static char *mbox_utf8_clean(const char *s, size_t n)
{
    char *out = mh_malloc(n * 3 + 1), *o = out;
    if (out == NULL)
        return NULL;
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p;
        size_t need = c < 0x80             ? 0
                      : (c & 0xe0) == 0xc0 ? 1
                      : (c & 0xf0) == 0xe0 ? 2
                      : (c & 0xf8) == 0xf0 ? 3
                                           : 9;
        int ok = need <= 3 && (size_t)(end - p) > need;
        uint32_t cp = need == 0 ? c : need == 1 ? (c & 0x1f) : need == 2 ? (c & 0x0f) : (c & 0x07);
        for (size_t i = 1; ok && i <= need; i++) {
            if ((p[i] & 0xc0) != 0x80)
                ok = 0;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        /* Reject overlong forms, surrogates and values past U+10FFFF. */
        if (ok &&
            ((need == 1 && cp < 0x80) || (need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
             (need == 3 && (cp < 0x10000 || cp > 0x10ffff))))
            ok = 0;
        if (!ok) {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            p++;
        } else if (need == 0 && (c < 0x20 || c == 0x7f)) {
            *o++ = ' ';
            p++;
        } else {
            memcpy(o, p, need + 1);
            o += need + 1;
            p += need + 1;
        }
    }
    *o = '\0';
    return out;
}

struct mbox_hdr {
    const char *name;
    char *value; /* raw, unfolded */
    size_t len;
    int seen, active;
};

static void mbox_hdr_append(struct mbox_hdr *h, const char *s, size_t n)
{
    if (h->value == NULL && (h->value = mh_malloc(MBOX_HDR_MAX + 1)) == NULL)
        return;
    if (n > MBOX_HDR_MAX - h->len)
        n = MBOX_HDR_MAX - h->len;
    memcpy(h->value + h->len, s, n);
    h->len += n;
    h->value[h->len] = '\0';
}

/* Trim spaces and tabs at both ends, in place; returns the new length. */
static size_t mbox_trim(char *s, size_t n)
{
    size_t a = 0;
    while (a < n && (s[a] == ' ' || s[a] == '\t'))
        a++;
    while (n > a && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    memmove(s, s + a, n - a);
    s[n - a] = '\0';
    return n - a;
}

/* The first From, Subject and Message-ID of the header, unfolded (RFC 5322 2.2.3). */
static void mbox_headers(const char *raw, size_t len, struct mbox_hdr *h, size_t nh)
{
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(raw + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - raw) : len, next = nl ? end + 1 : len;
        size_t ll = end - pos;
        if (ll > 0 && raw[pos + ll - 1] == '\r')
            ll--;
        const char *l = raw + pos;
        pos = next;
        if (ll == 0)
            break; /* end of the header */
        if (l[0] == ' ' || l[0] == '\t') {
            for (size_t i = 0; i < nh; i++)
                if (h[i].active)
                    mbox_hdr_append(&h[i], l, ll);
            continue;
        }
        const char *colon = memchr(l, ':', ll);
        size_t nl_len = colon ? (size_t)(colon - l) : 0;
        while (nl_len > 0 && (l[nl_len - 1] == ' ' || l[nl_len - 1] == '\t'))
            nl_len--;
        for (size_t i = 0; i < nh; i++) {
            h[i].active = 0;
            if (colon != NULL && !h[i].seen && strlen(h[i].name) == nl_len &&
                strncasecmp(h[i].name, l, nl_len) == 0) {
                h[i].seen = h[i].active = 1;
                mbox_hdr_append(&h[i], colon + 1, ll - (size_t)(colon + 1 - l));
            }
        }
    }
    for (size_t i = 0; i < nh; i++)
        if (h[i].value != NULL)
            h[i].len = mbox_trim(h[i].value, h[i].len);
}

/* "mid:<Message-ID>:<sha256>" or "sha256:<hex>"; bytes outside printable ASCII are %-escaped. */
static char *mbox_source_id(const char *mid, const unsigned char *md, unsigned md_len)
{
    static const char hex[] = "0123456789abcdef";
    size_t ml = mid != NULL ? strlen(mid) : 0;
    if (ml > MBOX_MID_MAX)
        ml = MBOX_MID_MAX;
    char *out = mh_malloc(4 + ml * 3 + 1 + 2 * md_len + 8), *o = out;
    if (out == NULL)
        return NULL;
    size_t kept = 0;
    if (ml > 0) {
        memcpy(o, "mid:", 4);
        o += 4;
        for (size_t i = 0; i < ml; i++) {
            unsigned char c = (unsigned char)mid[i];
            if (c == ' ' || c == '\t')
                continue; /* folding whitespace inside the id */
            if (c > 0x20 && c < 0x7f && c != '%') {
                *o++ = (char)c;
            } else {
                *o++ = '%';
                *o++ = hex[c >> 4];
                *o++ = hex[c & 15];
            }
            kept++;
        }
        *o++ = ':';
    }
    if (kept == 0) {
        o = out;
        memcpy(o, "sha256:", 7);
        o += 7;
    }
    for (unsigned i = 0; i < md_len; i++) {
        *o++ = hex[md[i] >> 4];
        *o++ = hex[md[i] & 15];
    }
    *o = '\0';
    return out;
}

static void mbox_put_free(struct mbox_put *p)
{
    mh_free(p->from);
    mh_free(p->subject);
    mh_free(p->message_id);
    mh_free(p);
}

static void mbox_put_unlink(struct mbox *mb, struct mbox_put *p)
{
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        mb->puts = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    p->prev = p->next = NULL;
}

static void mbox_schedule_tick(struct mbox *mb);
static void mbox_poll_cb(struct mh_timer *t, void *arg);

/* ------------------------------------------------------------- errors */

static void mbox_drop_message(struct mbox *mb)
{
    mb->have_msg = 0;
    mb->len = 0;
}

static void mbox_close_file(struct mbox *mb)
{
    if (mb->fp != NULL)
        fclose(mb->fp);
    mb->fp = NULL;
    mb->at_eof = 0;
    mbox_drop_message(mb);
}

/*
 * Stop reading until the next poll.  Reading resumes at the first message not
 * known to be stored: `resume` if it is not -1, else where reading stopped
 * (earlier still if the error state already noted an earlier message).  If
 * the file changed meanwhile, the retry reads it from the start.
 */
static MH_PRINTF(3, 4) void mbox_error(struct mbox *mb, int64_t resume, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (mb->fp != NULL) {
        int64_t here = mb->have_msg ? mb->msg_off : mb->offset;
        if (resume < 0 || resume > here)
            resume = here;
    }
    if (resume >= 0 && (mb->state != MBOX_ERROR || resume < mb->resume_off))
        mb->resume_off = resume;
    mbox_close_file(mb);
    mh_timer_del(mb->ctx, &mb->tick_timer);
    mb->state = MBOX_ERROR;
    if (mb->poll_timer == NULL)
        mb->poll_timer = mh_timer_add(mb->ctx, mb->poll_interval, mb->poll_interval, mbox_poll_cb, mb);
    if (mb->error != NULL && strcmp(mb->error, text) == 0) {
        mh_log_debug(mb->ctx, "still failing: %s", text);
        return;
    }
    mh_log_warn(mb->ctx, "%s (retrying every %.3g s)", text, mb->poll_interval);
    mh_free(mb->error);
    mb->error = mh_strdup(text);
    mbox_emit(mb, "account.error", json_pack("{s:s, s:s}", "account", mb->ctx->instance, "error", text));
}

/* A put failed: a transient failure stops the pass, a permanent one skips the message. */
static void mbox_put_failed(struct mbox *mb, int64_t off, int rc)
{
    if (mbox_is_transient(rc)) {
        if (mb->state == MBOX_ERROR) {
            if (off < mb->resume_off)
                mb->resume_off = off;
            return;
        }
        mbox_error(mb, off, "message at offset %" PRId64 " not stored: %s", off, mbox_rc_text(rc));
        return;
    }
    mb->pass.failed++;
    mb->total.failed++;
    mb->pass.messages++;
    mb->total.messages++;
    mh_log_warn(mb->ctx, "message at offset %" PRId64 " skipped: %s (%d)", off, mbox_rc_text(rc), rc);
}

/* ------------------------------------------------------------ progress */

static void mbox_progress(struct mbox *mb, int force)
{
    if (mb->initial_done)
        return;
    double now = mh_now(mb->ctx), dt = now - mb->last_progress;
    if (!force && dt < MBOX_PROGRESS_EVERY)
        return;
    if (dt > 0)
        mb->rate = (double)(mb->pass.messages - mb->progress_messages) / dt;
    /* Messages in the whole file, extrapolated from the bytes read so far. */
    int64_t estimate =
        mb->offset > 0 ? (int64_t)((double)mb->pass.messages * (double)mb->bytes_total / (double)mb->offset)
                       : 0;
    if (estimate < mb->pass.messages)
        estimate = mb->pass.messages;
    mh_log_info(mb->ctx,
                "imported %" PRId64 "/~%" PRId64 " messages (%.0f msgs/s; %" PRId64 "/%" PRId64 " bytes)",
                mb->pass.messages, estimate, mb->rate, mb->offset, mb->bytes_total);
    mb->last_progress = now;
    mb->progress_messages = mb->pass.messages;
}

/* The end of the file was reached and every put completed. */
static void mbox_pass_done(struct mbox *mb)
{
    if (mb->error != NULL) {
        mh_log_info(mb->ctx, "recovered from: %s", mb->error);
        mh_free(mb->error);
        mb->error = NULL;
    }
    if (!mb->initial_done) {
        double secs = mh_now(mb->ctx) - mb->pass_started;
        if (secs > 0)
            mb->rate = (double)mb->pass.messages / secs;
        mh_log_info(mb->ctx,
                    "imported %s: %" PRId64 " messages, %" PRId64 " new, %" PRId64 " duplicates, %" PRId64
                    " skipped, in %.1f s",
                    mb->path, mb->pass.messages, mb->pass.fresh, mb->pass.duplicates, mb->pass.failed, secs);
        if (mb->skipped > 0)
            mh_log_warn(mb->ctx, "%" PRId64 " bytes before the first \"From \" line were ignored",
                        mb->skipped);
        mb->initial_done = 1;
        mbox_emit(mb, "account.synced",
                  json_pack("{s:s, s:s, s:I, s:I, s:I}", "account", mb->ctx->instance, "folder", mb->folder,
                            "messages", (json_int_t)mb->pass.messages, "new", (json_int_t)mb->pass.fresh,
                            "duplicates", (json_int_t)mb->pass.duplicates));
    }
    mb->state = mb->watch ? MBOX_WATCHING : MBOX_DONE;
    if (!mb->watch)
        mh_timer_del(mb->ctx, &mb->poll_timer);
}

/* ------------------------------------------------------------- storing */

static void mbox_put_cb(void *arg, int rc, const struct mh_message_ref *ref)
{
    struct mbox_put *p = arg;
    struct mbox *mb = p->mb;
    mbox_put_unlink(mb, p);
    mb->inflight--;
    if (rc == MH_OK && ref != NULL) {
        mb->pass.messages++;
        mb->total.messages++;
        if (ref->duplicate) {
            mb->pass.duplicates++;
            mb->total.duplicates++;
        } else {
            mb->pass.fresh++;
            mb->total.fresh++;
            if (p->notify && mb->state != MBOX_STOPPING)
                mbox_emit(mb, "mail.received",
                          json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "account", mb->ctx->instance,
                                    "folder", mb->folder, "from", p->from ? p->from : "", "subject",
                                    p->subject ? p->subject : "", "message_id",
                                    p->message_id ? p->message_id : "", "size", (json_int_t)p->size,
                                    "store_id", (json_int_t)ref->id));
        }
    } else if (mb->state != MBOX_STOPPING) {
        mbox_put_failed(mb, p->off, rc == MH_OK ? MH_ERR : rc);
    }
    mbox_put_free(p);

    if (mb->state == MBOX_STOPPING) {
        if (mb->inflight == 0) {
            mb->state = MBOX_STOPPED;
            mh_stopped(mb->ctx);
        }
        return;
    }
    if (mb->state == MBOX_ERROR)
        return; /* the poll retries once nothing is in flight */
    mbox_progress(mb, 0);
    if (mb->at_eof) {
        if (mb->inflight == 0)
            mbox_pass_done(mb);
    } else {
        mbox_schedule_tick(mb);
    }
}

static int mbox_append(struct mbox *mb, const char *s, size_t n)
{
    if (n > mb->cap - mb->len) {
        size_t cap = mb->cap ? mb->cap : 64 * 1024;
        while (n > cap - mb->len) {
            if (cap > SIZE_MAX / 2)
                return MH_ENOMEM;
            cap *= 2;
        }
        char *b = realloc(mb->buf, cap);
        if (b == NULL)
            return MH_ENOMEM;
        mb->buf = b;
        mb->cap = cap;
    }
    memcpy(mb->buf + mb->len, s, n);
    mb->len += n;
    return MH_OK;
}

/* Hand the assembled message to the store.  Returns MH_OK unless the pass must stop. */
static int mbox_submit(struct mbox *mb)
{
    size_t len = mb->len;
    int64_t off = mb->msg_off;
    mbox_drop_message(mb);
    /* The empty line the writer put after the message is not part of it. */
    if (len >= 2 && mb->buf[len - 1] == '\n' && mb->buf[len - 2] == '\n')
        len--;
    else if (len >= 4 && memcmp(mb->buf + len - 4, "\r\n\r\n", 4) == 0)
        len -= 2;
    else if (len == 1 && mb->buf[0] == '\n')
        len = 0;
    if (len == 0)
        return MH_OK;

    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    if (EVP_Digest(mb->buf, len, md, &md_len, EVP_sha256(), NULL) != 1) {
        mbox_error(mb, off, "SHA-256 failed");
        return MH_ERR;
    }
    struct mbox_hdr h[3] = {{.name = "Message-ID"}, {.name = "From"}, {.name = "Subject"}};
    mbox_headers(mb->buf, len, h, 3);
    char *source_id = mbox_source_id(h[0].value, md, md_len);
    struct mbox_put *p = mh_calloc(1, sizeof *p);
    int rc = source_id != NULL && p != NULL ? MH_OK : MH_ENOMEM;
    if (rc == MH_OK) {
        p->mb = mb;
        p->off = off;
        p->size = len;
        p->notify = mb->initial_done;
        if (p->notify) {
            p->message_id = h[0].value ? mbox_utf8_clean(h[0].value, h[0].len) : NULL;
            p->from = h[1].value ? mbox_utf8_clean(h[1].value, h[1].len) : NULL;
            p->subject = h[2].value ? mbox_utf8_clean(h[2].value, h[2].len) : NULL;
        }
        const struct mh_message m = {
            .struct_size = sizeof m,
            .user = mb->user,
            .account = mb->ctx->instance,
            .folder = mb->folder,
            .source_id = source_id,
            .raw = mb->buf,
            .raw_len = len,
            .flags = NULL,
            .internal_date = mb->msg_date,
        };
        rc = mh_store_put_message(mb->ctx, &m, mbox_put_cb, p);
    }
    for (int i = 0; i < 3; i++)
        mh_free(h[i].value);
    mh_free(source_id);
    if (rc >= 0) {
        /* MH_PENDING: the callback owns p from now on. */
        p->next = mb->puts;
        if (mb->puts != NULL)
            mb->puts->prev = p;
        mb->puts = p;
        mb->inflight++;
        return MH_OK;
    }
    if (p != NULL)
        mbox_put_free(p);
    mbox_put_failed(mb, off, rc);
    return mb->state == MBOX_ERROR ? rc : MH_OK;
}

/* ------------------------------------------------------------- reading */

static int mbox_open(struct mbox *mb)
{
    FILE *fp = fopen(mb->path, "re");
    if (fp == NULL) {
        mbox_error(mb, -1, "cannot open %s: %s", mb->path, strerror(errno));
        return MH_ERR;
    }
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        mbox_error(mb, -1, "%s is not a regular file", mb->path);
        return MH_ERR;
    }
    setvbuf(fp, NULL, _IOFBF, 256 * 1024);
    int same =
        mb->known && st.st_dev == mb->dev && st.st_ino == mb->ino && (int64_t)st.st_size >= mb->resume_off;
    if (same && mb->resume_off > 0 && fseeko(fp, (off_t)mb->resume_off, SEEK_SET) != 0) {
        fclose(fp);
        mbox_error(mb, -1, "cannot seek in %s: %s", mb->path, strerror(errno));
        return MH_ERR;
    }
    if (!same) {
        if (mb->known)
            mh_log_info(mb->ctx, "%s was replaced or truncated: importing it again", mb->path);
        mb->initial_done = 0;
        memset(&mb->pass, 0, sizeof mb->pass);
        mb->pass_started = mb->last_progress = mh_now(mb->ctx);
        mb->progress_messages = 0;
        mb->skipped = 0;
        mb->resume_off = 0;
        mb->settle_size = -1;
    }
    mb->fp = fp;
    mb->known = 1;
    mb->dev = st.st_dev;
    mb->ino = st.st_ino;
    mb->offset = mb->resume_off;
    mb->bytes_total = (int64_t)st.st_size;
    mb->at_eof = 0;
    mbox_drop_message(mb);
    mb->state = mb->initial_done ? (mb->watch ? MBOX_WATCHING : MBOX_DONE) : MBOX_IMPORTING;
    return MH_OK;
}

/* Messages found after the first pass may still be being appended. */
static int mbox_must_settle(const struct mbox *mb)
{
    return mb->watch && mb->initial_done;
}

static void mbox_eof(struct mbox *mb)
{
    mb->at_eof = 1;
    if (mb->offset > mb->bytes_total)
        mb->bytes_total = mb->offset;
    if (mb->have_msg) {
        if (!mbox_must_settle(mb) || mb->settle_size == mb->offset) {
            mb->settle_size = -1;
            if (mbox_submit(mb) != MH_OK)
                return;
        } else {
            mb->settle_size = mb->offset; /* finish it at the next poll if the file did not grow */
        }
    }
    if (mb->inflight == 0)
        mbox_pass_done(mb);
}

static void mbox_read(struct mbox *mb)
{
    if (mb->state == MBOX_ERROR || mb->state == MBOX_STOPPING || mb->state == MBOX_STOPPED)
        return;
    if (mb->fp == NULL && mbox_open(mb) != MH_OK)
        return;
    int64_t n = 0, bytes = 0;
    int more = 1;
    while (mb->inflight < mb->batch && n < mb->batch && bytes < MBOX_TICK_BYTES) {
        ssize_t got = getline(&mb->line, &mb->line_cap, mb->fp);
        if (got <= 0) {
            if (ferror(mb->fp)) {
                mbox_error(mb, -1, "cannot read %s: %s", mb->path, strerror(errno));
                return;
            }
            mbox_eof(mb);
            more = 0;
            break;
        }
        size_t len = (size_t)got;
        int64_t line_off = mb->offset;
        if (mb->line[len - 1] != '\n' && mbox_must_settle(mb) && mb->settle_size != line_off + (int64_t)len) {
            /* An unfinished last line: read it again at the next poll. */
            mb->settle_size = line_off + (int64_t)len;
            if (fseeko(mb->fp, (off_t)line_off, SEEK_SET) != 0) {
                mbox_error(mb, -1, "cannot seek in %s: %s", mb->path, strerror(errno));
                return;
            }
            mb->at_eof = 1;
            more = 0;
            if (mb->inflight == 0)
                mbox_pass_done(mb);
            break;
        }
        mb->offset += (int64_t)len;
        bytes += (int64_t)len;
        const char *l = mb->line;
        int rc = MH_OK;
        if (len >= 5 && memcmp(l, "From ", 5) == 0) {
            if (mb->have_msg) {
                n++;
                if (mbox_submit(mb) != MH_OK)
                    return;
            }
            mb->have_msg = 1;
            mb->msg_off = line_off;
            mb->msg_date = mbox_from_date(l, len);
        } else if (mb->have_msg) {
            size_t k = 0;
            while (k < len && l[k] == '>')
                k++;
            if (k > 0 && len - k >= 5 && memcmp(l + k, "From ", 5) == 0)
                rc = mbox_append(mb, l + 1, len - 1); /* mboxrd: one '>' less */
            else
                rc = mbox_append(mb, l, len);
        } else {
            mb->skipped += (int64_t)len;
        }
        if (rc != MH_OK) {
            mbox_error(mb, -1, "out of memory reading the message at offset %" PRId64, mb->msg_off);
            return;
        }
    }
    if (mb->state == MBOX_ERROR)
        return;
    mbox_progress(mb, 0);
    /* Stopped by the per-tick limits: go on at the next loop iteration.  With
     * `batch` puts in flight, their completions schedule the next tick. */
    if (more && mb->inflight < mb->batch)
        mbox_schedule_tick(mb);
}

static void mbox_tick_cb(struct mh_timer *t, void *arg)
{
    struct mbox *mb = arg;
    (void)t;
    mh_timer_del(mb->ctx, &mb->tick_timer);
    mbox_read(mb);
}

static void mbox_schedule_tick(struct mbox *mb)
{
    if (mb->tick_timer != NULL || mb->state == MBOX_ERROR || mb->state == MBOX_STOPPING ||
        mb->state == MBOX_STOPPED)
        return;
    mb->tick_timer = mh_timer_add(mb->ctx, 0, 0, mbox_tick_cb, mb);
    if (mb->tick_timer == NULL)
        mbox_error(mb, -1, "cannot add a timer");
}

/* After the first pass: has the file grown, or been replaced? */
static void mbox_check(struct mbox *mb)
{
    struct stat st;
    if (stat(mb->path, &st) != 0) {
        mbox_error(mb, -1, "cannot open %s: %s", mb->path, strerror(errno));
        return;
    }
    if (mb->fp == NULL || !mb->known || st.st_dev != mb->dev || st.st_ino != mb->ino ||
        (int64_t)st.st_size < mb->offset) {
        if (mb->fp != NULL && (int64_t)st.st_size < mb->offset)
            mb->known = 0; /* truncated in place: read it from the start */
        mbox_close_file(mb);
        mbox_schedule_tick(mb);
        return;
    }
    mb->bytes_total = (int64_t)st.st_size;
    if ((int64_t)st.st_size > mb->offset || mb->have_msg) {
        clearerr(mb->fp);
        mb->at_eof = 0;
        mbox_schedule_tick(mb);
    }
}

static void mbox_poll(struct mbox *mb)
{
    if (mb->state == MBOX_ERROR) {
        if (mb->inflight > 0)
            return; /* resume once every put has reported */
        mb->state = mb->initial_done ? (mb->watch ? MBOX_WATCHING : MBOX_DONE) : MBOX_IMPORTING;
        mbox_schedule_tick(mb);
        return;
    }
    /* Busy: the pass in progress drives itself. */
    if (mb->tick_timer != NULL || mb->inflight > 0 || !mb->initial_done || mb->state == MBOX_IDLE ||
        mb->state >= MBOX_STOPPING)
        return;
    mbox_check(mb);
}

static void mbox_poll_cb(struct mh_timer *t, void *arg)
{
    (void)t;
    mbox_poll(arg);
}

/* ----------------------------------------------------------- lifecycle */

static int mbox_init(struct mh_plugin_ctx *ctx, const struct mh_config *cfg, void **state_out)
{
    const char *path = mh_cfg_str(cfg, "path");
    if (path == NULL || *path == '\0') {
        mh_set_error(ctx, "path: an mbox file is required");
        return MH_EINVAL;
    }
    struct mbox *mb = mh_calloc(1, sizeof *mb);
    if (mb == NULL)
        return MH_ENOMEM;
    mb->ctx = ctx;
    const char *folder = mh_cfg_str(cfg, "folder"), *user = mh_cfg_str(cfg, "user");
    mb->path = mh_data_path(ctx, path); /* relative: to daemon.data_dir, like every plugin path */
    mb->folder = mh_strdup(folder != NULL && *folder != '\0' ? folder : "INBOX");
    /* NULL lets the core file the messages under the instance's `user:`, the
     * user its events name too. */
    mb->user = user != NULL && *user != '\0' ? mh_strdup(user) : NULL;
    mb->watch = mh_cfg_bool(cfg, "watch");
    int64_t poll_ms = mh_cfg_duration_ms(cfg, "poll_interval");
    mb->poll_interval = poll_ms > 0 ? (double)poll_ms / 1000.0 : 5.0;
    mb->batch = mh_cfg_int(cfg, "batch");
    if (mb->batch < 1)
        mb->batch = 1;
    mb->settle_size = -1;
    mb->state = MBOX_IDLE;
    if (mb->path == NULL || mb->folder == NULL || (user != NULL && *user != '\0' && mb->user == NULL)) {
        mh_free(mb->path);
        mh_free(mb->folder);
        mh_free(mb->user);
        mh_free(mb);
        return MH_ENOMEM;
    }
    *state_out = mb;
    return MH_OK;
}

static int mbox_start(void *state)
{
    struct mbox *mb = state;
    mb->state = MBOX_IMPORTING;
    mb->pass_started = mb->last_progress = mh_now(mb->ctx);
    mb->tick_timer = mh_timer_add(mb->ctx, 0, 0, mbox_tick_cb, mb);
    mb->poll_timer = mh_timer_add(mb->ctx, mb->poll_interval, mb->poll_interval, mbox_poll_cb, mb);
    if (mb->tick_timer == NULL || mb->poll_timer == NULL) {
        mh_timer_del(mb->ctx, &mb->tick_timer);
        mh_timer_del(mb->ctx, &mb->poll_timer);
        mh_set_error(mb->ctx, "cannot add a timer");
        return MH_ENOMEM;
    }
    mh_log_info(mb->ctx, "importing %s into folder %s%s%s%s", mb->path, mb->folder, mb->user ? " of " : "",
                mb->user ? mb->user : "", mb->watch ? ", then watching it" : "");
    return MH_OK;
}

static int mbox_stop(void *state)
{
    struct mbox *mb = state;
    mh_timer_del(mb->ctx, &mb->tick_timer);
    mh_timer_del(mb->ctx, &mb->poll_timer);
    mbox_close_file(mb);
    if (mb->inflight > 0) {
        mb->state = MBOX_STOPPING;
        return MH_PENDING;
    }
    mb->state = MBOX_STOPPED;
    return MH_OK;
}

static void mbox_free(void *state)
{
    struct mbox *mb = state;
    if (mb == NULL)
        return;
    /* Handles are the core's and already cancelled; puts it dropped are ours to free. */
    while (mb->puts != NULL) {
        struct mbox_put *p = mb->puts;
        mbox_put_unlink(mb, p);
        mbox_put_free(p);
    }
    if (mb->fp != NULL)
        fclose(mb->fp);
    free(mb->line);
    free(mb->buf);
    mh_free(mb->error);
    mh_free(mb->path);
    mh_free(mb->folder);
    mh_free(mb->user);
    mh_free(mb);
}

static int mbox_sync_now(void *state)
{
    struct mbox *mb = state;
    if (mb->state == MBOX_IDLE || mb->state >= MBOX_STOPPING)
        return MH_ECANCELED;
    if (mb->poll_timer == NULL) {
        /* Not watching: errors of this sync are retried like the import's. */
        mb->poll_timer = mh_timer_add(mb->ctx, mb->poll_interval, mb->poll_interval, mbox_poll_cb, mb);
        if (mb->poll_timer == NULL)
            return MH_ENOMEM;
    }
    mbox_poll(mb);
    return MH_OK;
}

static int mbox_status_json(void *state, char **json_out)
{
    struct mbox *mb = state;
    json_t *j = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:f}", "state", mbox_state_names[mb->state],
                          "messages", (json_int_t)mb->total.messages, "new", (json_int_t)mb->total.fresh,
                          "duplicates", (json_int_t)mb->total.duplicates, "failed",
                          (json_int_t)mb->total.failed, "bytes_done", (json_int_t)mb->offset, "bytes_total",
                          (json_int_t)mb->bytes_total, "rate", mb->rate);
    if (j != NULL && mb->error != NULL)
        json_object_set_new(j, "error", json_string(mb->error));
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text == NULL)
        return MH_ENOMEM;
    /* The core frees it with free(); jansson allocates with malloc unless told otherwise. */
    *json_out = text;
    return MH_OK;
}

static const struct mh_provider_ops mbox_ops = {
    .struct_size = sizeof(struct mh_provider_ops),
    .sync_now = mbox_sync_now,
    .status_json = mbox_status_json,
};

MH_PLUGIN_DEFINE(mbox, .kind = MH_KIND_PROVIDER, .name = "mbox", .version = "1.0.0",
                 .description = "import an mbox file (Takeout, Thunderbird) and watch it for new mail",
                 .options = mbox_options, .init = mbox_init, .start = mbox_start, .stop = mbox_stop,
                 .free = mbox_free, .ops = &mbox_ops);

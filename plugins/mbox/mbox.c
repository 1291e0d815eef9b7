/*
 * mbox: a provider that imports an mbox file (Google Takeout, Thunderbird,
 * mutt, procmail...) or a Maildir (with its Maildir++ subfolders) and, with
 * `watch`, the mail added to it later.
 *
 * mbox.  A message starts at a line beginning with "From " (the "From_"
 * line, which is not part of the message) and ends before the next one; the
 * one empty line a writer puts after each message is removed.  Body lines
 * are unescaped the mboxrd way: a line matching /^>+From / loses one '>'.
 * That is exactly the inverse of mboxrd writers (Takeout); for mboxo writers
 * it only differs on lines that were written as ">From " originally, which
 * mboxo cannot tell from escaped ones anyway.  Every line that begins with
 * "From " starts a message, as both variants escape such lines in bodies.
 * The From_ line's date, when it has one, becomes the internal date.  The
 * file is read through a fixed buffer (MBOX_RBUF); only the message being
 * assembled is held in memory.
 *
 * Maildir.  When `path` is a directory with cur/ and new/, every message file
 * of it (folder `folder`) and of its Maildir++ subfolders (".Sent" -> "Sent",
 * ".Archive.2024" -> "Archive/2024", modified UTF-7 decoded) is imported, in
 * name order, folder by folder; the flags come from the ":2,DFRST" suffix
 * and the internal date from the file's mtime.
 *
 * Work is cut in ticks: a 0 s timer reads at most `batch` messages (and a few
 * MB) per loop iteration, with at most `batch` store puts and
 * `inflight_bytes` bytes in flight (at least one message); store completions
 * schedule the next tick.  Each message's source_id is
 * "mid:<Message-ID>:<hex SHA-256 of the raw message>" ("sha256:<hex>" without
 * a Message-ID), so importing the same mail again stores nothing twice.
 *
 * Checkpoint.  Puts are kept in a queue in file order; the position up to
 * which every message was acknowledged by the store (the frontier) only moves
 * when the oldest put completes.  It is saved atomically (tmp + rename), at
 * most once a second while importing and at every pause, error and stop, in
 * data_dir/mbox/<instance>.checkpoint: for an mbox the byte offset and the
 * SHA-256 of the file's first 64 KB (a replaced file is imported from the
 * start); for a Maildir the last acknowledged (folder, file name) and the time
 * the pass began, so that files added since are read again.  A restart
 * resumes there; what it reads twice is deduplicated by the store.
 *
 * The first pass over a source (and a pass over an mbox that was replaced or
 * truncated) only ends with account.synced; messages found after it emit
 * mail.received.  A message at the end of a watched mbox is imported once the
 * file has not grown for one poll interval, so a message being appended is
 * not cut.  A watched Maildir is scanned every poll interval for files whose
 * ctime is newer than the previous scan.  A transient store failure or a read
 * error stops reading; after the poll interval, reading resumes at the first
 * message that was not stored.  account.error is emitted once per distinct
 * error until a pass succeeds.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include <mailhub/plugin.h>
#include <mailhub/provider.h>

#define MBOX_TICK_BYTES ((int64_t)8 << 20) /* bytes read per tick at most */
#define MBOX_RBUF ((size_t)1 << 20)        /* the mbox read buffer */
#define MBOX_PROGRESS_EVERY 10.0           /* seconds between progress lines (or every 10 %) */
#define MBOX_CKPT_EVERY 1.0                /* seconds between checkpoint writes at most */
#define MBOX_HEAD_LEN ((int64_t)64 << 10)  /* bytes of an mbox hashed to recognise it */
#define MBOX_HDR_MAX 2048                  /* bytes of a header value kept for events */
#define MBOX_MID_MAX 512                   /* bytes of a Message-ID kept in a source_id */
#define MBOX_CTIME_SLACK 2                 /* seconds of clock slack when comparing file ctimes */
#define MBOX_MB 1e6

enum mbox_state {
    MBOX_IDLE,      /* not started */
    MBOX_STARTING,  /* started, the source not opened yet */
    MBOX_IMPORTING, /* first pass over the source */
    MBOX_WATCHING,  /* first pass done; importing what is added */
    MBOX_DONE,      /* first pass done and not watching */
    MBOX_ERROR,     /* waiting for the poll interval to retry */
    MBOX_STOPPING,
    MBOX_STOPPED,
};

/* As status_json reports them. */
static const char *const mbox_state_names[] = {"starting", "starting", "importing", "watching",
                                               "idle",     "error",    "idle",      "idle"};

enum mbox_kind { SRC_NONE, SRC_MBOX, SRC_MAILDIR };

struct mbox_counts {
    int64_t messages, fresh, duplicates, failed;
};

struct mbox;

enum put_state { PUT_INFLIGHT, PUT_DONE, PUT_RETRY };

/* One store put, queued in source order until the frontier passes it. */
struct mbox_put {
    struct mbox *mb;
    struct mbox_put *next;
    enum put_state st;
    int result;       /* once done: 0 stored, 1 duplicate, 2 skipped */
    int64_t off, end; /* mbox: the message's From_ line offset and where the next one starts */
    size_t size;
    int notify;        /* emit mail.received if it is new */
    size_t folder_idx; /* Maildir: the folder and file name (basename) */
    char *name;
    char *from, *subject, *message_id;
};

/* A Maildir folder: its directory relative to the root ("" or ".Sent") and its hub name. */
struct md_folder {
    char *dir, *name;
};

/* A message file of the folder being read: "cur/NAME" or "new/NAME". */
struct md_file {
    char *rel;
    int64_t size;
};

/*
 * Which Maildir files a pass leaves out: those at or before (dir, name) in
 * pass order (every file with `complete`) whose ctime is before `since`.
 */
struct md_rule {
    int active, complete;
    char *dir, *name;
    int64_t since;
};

struct mbox_ckpt {
    enum mbox_kind kind;
    char *path, *user, *folder;
    int64_t offset, head_len;
    char head[65];
    int64_t dev, ino;
    struct md_rule rule;
    int64_t done_bytes;
    struct mbox_counts counts;
};

struct mbox {
    struct mh_plugin_ctx *ctx;
    char *path, *folder, *user, *ckpt_path;
    int watch;
    double poll_interval;
    int64_t batch, max_inflight_bytes;

    enum mbox_state state;
    enum mbox_kind kind; /* of the source being read */
    struct mh_timer *tick_timer, *poll_timer;
    int at_eof;       /* the pass read everything; it ends when the puts complete */
    int initial_done; /* the first pass ended with account.synced */
    int known;        /* dev/ino describe the source we read */
    dev_t dev;
    ino_t ino;

    /* mbox reading */
    int fd;
    char *rbuf;
    size_t rstart, rend; /* unconsumed bytes of rbuf */
    int long_line;       /* 0, or what to do with the rest of a line longer than rbuf */
    int64_t offset;      /* file offset of rbuf[rstart]: bytes consumed */
    int64_t resume_off;  /* where reading resumes after an error */
    int64_t settle_size; /* size at which an unfinished end of file was left to settle; -1: none */
    int have_msg;        /* a message is being assembled in buf */
    int64_t msg_off;
    int64_t msg_date;
    int64_t skipped; /* bytes before the first From_ line */
    char head_hex[65];
    int64_t head_len;
    int64_t ck_off; /* the frontier: every message before it is acknowledged */

    /* Maildir reading */
    struct md_folder *folders;
    size_t n_folders, fi;
    struct md_file *files;
    size_t n_files, fj;
    int listed;           /* files[] lists folders[fi] */
    int pass_open;        /* a Maildir pass is in progress */
    struct md_rule rule;  /* what this pass leaves out */
    struct md_rule front; /* the frontier (checkpoint) of this pass */
    int64_t pass_since;   /* wall-clock time this pass began listing */
    int64_t last_since;   /* ... and the previous completed pass */
    int retrying;         /* the next open retries the pass that failed (it keeps pass_since) */

    char *buf; /* the message being assembled or read */
    size_t len, cap;

    struct mbox_put *head, *tail; /* puts in source order */
    int64_t inflight, inflight_bytes;
    char *error; /* the error last reported with account.error, until a pass succeeds */

    struct mbox_counts pass, total;
    struct mbox_counts ck; /* the messages before the frontier, as the checkpoint records them */
    int64_t done_bytes, total_bytes, pass_done0;
    double pass_started, last_progress;
    int last_decile;
    double ckpt_saved_at;
    int ckpt_dirty, ckpt_warned;
    struct mbox_ckpt *resume; /* the checkpoint read at start, until the first open uses it */
};

static const struct mh_option mbox_options[] = {
    {"path", MH_OPT_STR, NULL, MH_OPT_REQUIRED,
     "the mbox file or Maildir directory to import (relative: to daemon.data_dir)", NULL, 0, 0},
    {"folder", MH_OPT_STR, "INBOX", 0,
     "folder the messages (of a Maildir: of its top folder) are filed under", NULL, 0, 0},
    {"user", MH_OPT_STR, NULL, 0, "hub user that owns the messages (default: the instance's user)", NULL, 0,
     0},
    {"watch", MH_OPT_BOOL, "true", 0, "after the import, keep importing the mail added to the source", NULL,
     0, 0},
    {"poll_interval", MH_OPT_DURATION, "5s", 0, "how often to look for new mail and to retry errors", NULL,
     100, 86400000},
    {"batch", MH_OPT_INT, "256", 0, "messages read per loop iteration and store puts in flight at most", NULL,
     1, 100000},
    {"inflight_bytes", MH_OPT_SIZE, "32MB", 0,
     "bytes of messages in flight to the store at most (one message at least)", NULL, 1, (int64_t)1 << 40},
    MH_OPT_TABLE_END,
};

static void mbox_read(struct mbox *mb);
static void mbox_schedule_tick(struct mbox *mb);
static void mbox_poll_cb(struct mh_timer *t, void *arg);
static void mbox_ckpt_save(struct mbox *mb, int force);

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

static char *mbox_strcat3(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *s = mh_malloc(la + lb + lc + 1);
    if (s == NULL)
        return NULL;
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    memcpy(s + la + lb, c, lc + 1);
    return s;
}

static void mbox_hex(const unsigned char *md, unsigned n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[2 * n] = '\0';
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
    mbox_hex(md, md_len, o);
    return out;
}

/* ------------------------------------------------------ Maildir names */

/* IMAP flags of a Maildir file name's ":2,FLAGS" info; NULL when there are none. */
static char *md_flags(const char *name)
{
    static const struct {
        char c;
        const char *flag;
    } map[] = {
        {'D', "\\Draft"}, {'F', "\\Flagged"}, {'R', "\\Answered"}, {'S', "\\Seen"}, {'T', "\\Deleted"}};
    const char *info = strrchr(name, ':');
    if (info == NULL || strncmp(info, ":2,", 3) != 0)
        return NULL;
    char out[64] = "";
    size_t len = 0;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (strchr(info + 3, map[i].c) == NULL)
            continue;
        int n = snprintf(out + len, sizeof out - len, "%s%s", len ? " " : "", map[i].flag);
        if (n > 0)
            len += (size_t)n;
    }
    return len > 0 ? mh_strdup(out) : NULL;
}

static size_t md_put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

static int md_b64val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == ',')
        return 63;
    return -1;
}

/*
 * The hub folder of a Maildir++ directory: ".Archive.2024" -> "Archive/2024",
 * with IMAP modified UTF-7 ("&AOk-") decoded; a malformed sequence is kept as
 * it is.  The result is cleaned to valid UTF-8.
 */
static char *md_folder_name(const char *dir)
{
    const char *s = dir[0] == '.' ? dir + 1 : dir;
    size_t n = strlen(s);
    char *out = mh_malloc(n * 4 + 1), *o = out;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n;) {
        if (s[i] == '.') {
            *o++ = '/';
            i++;
            continue;
        }
        if (s[i] != '&') {
            *o++ = s[i++];
            continue;
        }
        const char *dash = strchr(s + i + 1, '-');
        if (dash == NULL) {
            *o++ = s[i++];
            continue;
        }
        if (dash == s + i + 1) { /* "&-" is '&' */
            *o++ = '&';
            i += 2;
            continue;
        }
        /* Decode UTF-16BE from modified base64 into a scratch buffer first. */
        char tmp[1024];
        size_t tl = 0;
        uint32_t acc = 0, hi = 0;
        int bits = 0, ok = 1;
        for (const char *p = s + i + 1; p < dash && ok; p++) {
            int v = md_b64val(*p);
            if (v < 0) {
                ok = 0;
                break;
            }
            acc = (acc << 6) | (uint32_t)v;
            bits += 6;
            if (bits >= 16) {
                bits -= 16;
                uint32_t u = (acc >> bits) & 0xffff;
                if (u >= 0xd800 && u < 0xdc00) {
                    if (hi != 0)
                        ok = 0;
                    hi = u;
                    continue;
                }
                uint32_t cp = u;
                if (u >= 0xdc00 && u < 0xe000) {
                    if (hi == 0) {
                        ok = 0;
                        break;
                    }
                    cp = 0x10000 + ((hi - 0xd800) << 10) + (u - 0xdc00);
                    hi = 0;
                } else if (hi != 0) {
                    ok = 0;
                    break;
                }
                if (tl + 4 > sizeof tmp) {
                    ok = 0;
                    break;
                }
                tl += md_put_utf8(tmp + tl, cp);
            }
        }
        if (!ok || hi != 0) {
            *o++ = s[i++];
            continue;
        }
        memcpy(o, tmp, tl);
        o += tl;
        i = (size_t)(dash - s) + 1;
    }
    *o = '\0';
    char *clean = mbox_utf8_clean(out, (size_t)(o - out));
    mh_free(out);
    return clean;
}

/* ------------------------------------------------------------ queue */

static void mbox_put_free(struct mbox_put *p)
{
    mh_free(p->name);
    mh_free(p->from);
    mh_free(p->subject);
    mh_free(p->message_id);
    mh_free(p);
}

static void mbox_queue_clear(struct mbox *mb)
{
    while (mb->head != NULL) {
        struct mbox_put *p = mb->head;
        mb->head = p->next;
        mbox_put_free(p);
    }
    mb->tail = NULL;
}

static void md_rule_clear(struct md_rule *r)
{
    mh_free(r->dir);
    mh_free(r->name);
    memset(r, 0, sizeof *r);
}

static int md_rule_copy(struct md_rule *dst, const struct md_rule *src)
{
    struct md_rule r = *src;
    r.dir = src->dir ? mh_strdup(src->dir) : NULL;
    r.name = src->name ? mh_strdup(src->name) : NULL;
    if ((src->dir && !r.dir) || (src->name && !r.name)) {
        mh_free(r.dir);
        mh_free(r.name);
        return MH_ENOMEM;
    }
    md_rule_clear(dst);
    *dst = r;
    return MH_OK;
}

/* Pop the acknowledged puts at the head of the queue: the frontier moves past them. */
static void mbox_advance(struct mbox *mb)
{
    int moved = 0;
    while (mb->head != NULL && mb->head->st == PUT_DONE) {
        struct mbox_put *p = mb->head;
        mb->head = p->next;
        if (mb->head == NULL)
            mb->tail = NULL;
        if (mb->kind == SRC_MAILDIR) {
            mb->done_bytes += (int64_t)p->size;
            if (mb->done_bytes > mb->total_bytes)
                mb->total_bytes = mb->done_bytes;
            if (mb->initial_done == 0 && p->folder_idx < mb->n_folders) {
                /* The first pass: the checkpoint follows the files acknowledged. */
                char *dir = mh_strdup(mb->folders[p->folder_idx].dir);
                if (dir != NULL) {
                    mh_free(mb->front.dir);
                    mh_free(mb->front.name);
                    mb->front.dir = dir;
                    mb->front.name = p->name;
                    p->name = NULL;
                    mb->front.active = 1;
                    mb->front.complete = 0;
                    mb->front.since = mb->pass_since;
                }
            }
        } else if (p->end > mb->ck_off) {
            mb->ck_off = p->end;
            mb->done_bytes = p->end;
        }
        mb->ck.messages++;
        if (p->result == 1)
            mb->ck.duplicates++;
        else if (p->result == 2)
            mb->ck.failed++;
        else
            mb->ck.fresh++;
        mbox_put_free(p);
        moved = 1;
    }
    if (moved)
        mb->ckpt_dirty = 1;
}

/* ------------------------------------------------------------- errors */

static void mbox_drop_message(struct mbox *mb)
{
    mb->have_msg = 0;
    mb->len = 0;
}

static void md_free_files(struct mbox *mb)
{
    for (size_t i = 0; i < mb->n_files; i++)
        mh_free(mb->files[i].rel);
    mh_free(mb->files);
    mb->files = NULL;
    mb->n_files = mb->fj = 0;
    mb->listed = 0;
}

static void md_free_folders(struct mbox *mb)
{
    for (size_t i = 0; i < mb->n_folders; i++) {
        mh_free(mb->folders[i].dir);
        mh_free(mb->folders[i].name);
    }
    mh_free(mb->folders);
    mb->folders = NULL;
    mb->n_folders = mb->fi = 0;
}

static void mbox_close_file(struct mbox *mb)
{
    if (mb->fd >= 0)
        close(mb->fd);
    mb->fd = -1;
    mb->rstart = mb->rend = 0;
    mb->long_line = 0;
    mb->at_eof = 0;
    mb->pass_open = 0;
    md_free_files(mb);
    mbox_drop_message(mb);
}

/*
 * Stop reading until the next poll.  Reading resumes at the first message not
 * known to be stored: `resume` if it is not -1, else where reading stopped
 * (earlier still if the error state already noted an earlier message).  If
 * the file changed meanwhile, the retry reads it from the start.  A Maildir
 * pass is retried from its checkpoint.
 */
static MH_PRINTF(3, 4) void mbox_error(struct mbox *mb, int64_t resume, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (mb->fd >= 0) {
        int64_t here = mb->have_msg ? mb->msg_off : mb->offset;
        if (resume < 0 || resume > here)
            resume = here;
    }
    if (resume >= 0 && (mb->state != MBOX_ERROR || resume < mb->resume_off))
        mb->resume_off = resume;
    mbox_close_file(mb);
    mh_timer_del(mb->ctx, &mb->tick_timer);
    mb->state = MBOX_ERROR;
    mbox_ckpt_save(mb, 1);
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
static void mbox_put_failed(struct mbox *mb, struct mbox_put *p, int rc)
{
    if (mbox_is_transient(rc)) {
        p->st = PUT_RETRY;
        if (mb->state == MBOX_ERROR) {
            if (mb->kind == SRC_MBOX && p->off < mb->resume_off)
                mb->resume_off = p->off;
            return;
        }
        if (mb->kind == SRC_MAILDIR)
            mbox_error(mb, -1, "%s/%s not stored: %s", mb->folders[p->folder_idx].name,
                       p->name ? p->name : "?", mbox_rc_text(rc));
        else
            mbox_error(mb, p->off, "message at offset %" PRId64 " not stored: %s", p->off, mbox_rc_text(rc));
        return;
    }
    p->st = PUT_DONE;
    p->result = 2;
    mb->pass.failed++;
    mb->total.failed++;
    mb->pass.messages++;
    mb->total.messages++;
    if (mb->kind == SRC_MAILDIR)
        mh_log_warn(mb->ctx, "message %s skipped: %s (%d)", p->name ? p->name : "?", mbox_rc_text(rc), rc);
    else
        mh_log_warn(mb->ctx, "message at offset %" PRId64 " skipped: %s (%d)", p->off, mbox_rc_text(rc), rc);
}

/* ------------------------------------------------------------ progress */

static double mbox_rate(struct mbox *mb)
{
    double dt = mh_now(mb->ctx) - mb->pass_started;
    int64_t db = mb->done_bytes - mb->pass_done0;
    return dt > 0 && db > 0 ? (double)db / dt : 0.0;
}

static void mbox_progress(struct mbox *mb, int force)
{
    if (mb->initial_done || mb->state != MBOX_IMPORTING)
        return;
    double now = mh_now(mb->ctx);
    int decile = mb->total_bytes > 0 ? (int)(mb->done_bytes * 10 / mb->total_bytes) : 0;
    /* Every 10 s, or at each new tenth of a file that takes more than a second. */
    if (!force && now - mb->last_progress < MBOX_PROGRESS_EVERY &&
        !(decile > mb->last_decile && now - mb->pass_started >= 1.0))
        return;
    double rate = mbox_rate(mb);
    int64_t left = mb->total_bytes - mb->done_bytes;
    char eta[32] = "unknown";
    if (rate > 0 && left >= 0)
        snprintf(eta, sizeof eta, "%.0fs", (double)left / rate);
    int pct = mb->total_bytes > 0 ? (int)(mb->done_bytes * 100 / mb->total_bytes) : 0;
    mh_log_info(mb->ctx, "imported %" PRId64 " messages, %.1f MB of %.1f MB (%d%%), %.1f MB/s, ETA %s",
                mb->pass.messages, (double)mb->done_bytes / MBOX_MB, (double)mb->total_bytes / MBOX_MB, pct,
                rate / MBOX_MB, eta);
    mbox_emit(mb, "account.progress",
              json_pack("{s:s, s:I, s:I, s:f}", "account", mb->ctx->instance, "done",
                        (json_int_t)mb->done_bytes, "total", (json_int_t)mb->total_bytes, "rate", rate));
    mb->last_progress = now;
    mb->last_decile = decile;
}

static void mbox_pass_begin(struct mbox *mb)
{
    mb->pass_started = mb->last_progress = mh_now(mb->ctx);
    mb->pass_done0 = mb->done_bytes;
    mb->last_decile = mb->total_bytes > 0 ? (int)(mb->done_bytes * 10 / mb->total_bytes) : 0;
}

/* The end of the source was reached and every put completed. */
static void mbox_pass_done(struct mbox *mb)
{
    if (mb->error != NULL) {
        mh_log_info(mb->ctx, "recovered from: %s", mb->error);
        mh_free(mb->error);
        mb->error = NULL;
    }
    if (mb->kind == SRC_MAILDIR) {
        /* Next time, only files newer than this pass. */
        md_rule_clear(&mb->front);
        mb->front.active = mb->front.complete = 1;
        mb->front.since = mb->pass_since;
        mb->last_since = mb->pass_since;
        mb->pass_open = 0;
        mb->ckpt_dirty = 1;
        if (mb->done_bytes > mb->total_bytes)
            mb->total_bytes = mb->done_bytes;
    } else {
        int64_t end = mb->have_msg ? mb->msg_off : mb->offset;
        if (end > mb->ck_off)
            mb->ck_off = end;
        mb->done_bytes = mb->offset;
        mb->ckpt_dirty = 1;
    }
    int first = !mb->initial_done;
    if (!mb->initial_done) {
        double secs = mh_now(mb->ctx) - mb->pass_started;
        mh_log_info(mb->ctx,
                    "imported %s: %" PRId64 " messages, %" PRId64 " new, %" PRId64 " duplicates, %" PRId64
                    " skipped, %.1f MB in %.1f s",
                    mb->path, mb->pass.messages, mb->pass.fresh, mb->pass.duplicates, mb->pass.failed,
                    (double)mb->done_bytes / MBOX_MB, secs);
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
    /* Later passes of a watched source save through the poll timer, once a second at most. */
    mbox_ckpt_save(mb, first || !mb->watch);
    if (!mb->watch)
        mh_timer_del(mb->ctx, &mb->poll_timer);
}

/* --------------------------------------------------------- checkpoint */

static void mbox_ckpt_free(struct mbox_ckpt *c)
{
    if (c == NULL)
        return;
    mh_free(c->path);
    mh_free(c->user);
    mh_free(c->folder);
    md_rule_clear(&c->rule);
    mh_free(c);
}

/*
 * data_dir/mbox/<key>.checkpoint: the key is the account's id when the core
 * gives one (SDK 1.1: unique and never reused, so a re-linked account starts
 * afresh), else the instance name, %-escaped to a safe file name.
 */
static char *mbox_ckpt_path(struct mh_plugin_ctx *ctx)
{
    char idbuf[32];
    const char *in = ctx->instance != NULL ? ctx->instance : "mbox";
    if (ctx->struct_size >= offsetof(struct mh_plugin_ctx, account_id) + sizeof ctx->account_id &&
        ctx->account_id > 0) {
        snprintf(idbuf, sizeof idbuf, "account-%lld", (long long)ctx->account_id);
        in = idbuf;
    }
    size_t n = strlen(in);
    char *esc = mh_malloc(n * 3 + 1), *o = esc;
    if (esc == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
            c == '-' || (c == '.' && i > 0)) {
            *o++ = (char)c;
        } else {
            snprintf(o, 4, "%%%02X", c);
            o += 3;
        }
    }
    *o = '\0';
    char *rel = mbox_strcat3("mbox/", esc, ".checkpoint");
    mh_free(esc);
    char *full = rel != NULL ? mh_data_path(ctx, rel) : NULL;
    mh_free(rel);
    return full;
}

static int mbox_has_newline(const char *s)
{
    return s != NULL && strpbrk(s, "\r\n") != NULL;
}

/* Write the checkpoint (tmp + rename).  Without `force`, at most once per MBOX_CKPT_EVERY. */
static void mbox_ckpt_save(struct mbox *mb, int force)
{
    if (mb->ckpt_path == NULL || !mb->ckpt_dirty || mb->kind == SRC_NONE || !mb->known)
        return;
    double now = mh_now(mb->ctx);
    if (!force && mb->ckpt_saved_at > 0 && now - mb->ckpt_saved_at < MBOX_CKPT_EVERY)
        return;
    const struct md_rule *r = &mb->front;
    if (mbox_has_newline(mb->path) || mbox_has_newline(mb->folder) || mbox_has_newline(mb->user) ||
        (mb->kind == SRC_MAILDIR && (!r->active || mbox_has_newline(r->dir) || mbox_has_newline(r->name))))
        return; /* nothing worth saving, or not representable */
    char *tmp = mbox_strcat3(mb->ckpt_path, ".tmp", "");
    if (tmp == NULL)
        return;
    /* The directory: data_dir/mbox. */
    char *slash = strrchr(tmp, '/');
    if (slash != NULL) {
        *slash = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
            *slash = '/';
            goto fail;
        }
        *slash = '/';
    }
    FILE *fp = fopen(tmp, "we");
    if (fp == NULL)
        goto fail;
    fprintf(fp, "mailhub-mbox-checkpoint 1\nkind %s\npath %s\nuser %s\nfolder %s\n",
            mb->kind == SRC_MAILDIR ? "maildir" : "mbox", mb->path, mb->user ? mb->user : "", mb->folder);
    if (mb->kind == SRC_MAILDIR)
        fprintf(fp, "dev %" PRId64 "\nino %" PRId64 "\ncomplete %d\nsince %" PRId64 "\ndir %s\nname %s\n",
                (int64_t)mb->dev, (int64_t)mb->ino, r->complete, r->since, r->dir ? r->dir : "",
                r->name ? r->name : "");
    else
        fprintf(fp, "offset %" PRId64 "\nhead_len %" PRId64 "\nhead %s\n", mb->ck_off, mb->head_len,
                mb->head_hex);
    fprintf(fp,
            "done_bytes %" PRId64 "\nmessages %" PRId64 "\nnew %" PRId64 "\nduplicates %" PRId64
            "\nfailed %" PRId64 "\nend\n",
            mb->kind == SRC_MAILDIR ? mb->done_bytes : mb->ck_off, mb->ck.messages, mb->ck.fresh,
            mb->ck.duplicates, mb->ck.failed);
    if (fclose(fp) != 0 || rename(tmp, mb->ckpt_path) != 0) {
        unlink(tmp);
        goto fail;
    }
    mh_free(tmp);
    mb->ckpt_saved_at = now;
    mb->ckpt_dirty = 0;
    return;
fail:
    if (!mb->ckpt_warned)
        mh_log_warn(mb->ctx, "cannot write the checkpoint %s: %s (a restart reads the source again)",
                    mb->ckpt_path, strerror(errno));
    mb->ckpt_warned = 1;
    mh_free(tmp);
}

static int64_t mbox_parse_i64(const char *s)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    return errno == 0 && end != s && *end == '\0' ? (int64_t)v : -1;
}

/* Read the checkpoint; NULL when there is none or it does not parse. */
static struct mbox_ckpt *mbox_ckpt_load(struct mbox *mb)
{
    if (mb->ckpt_path == NULL)
        return NULL;
    FILE *fp = fopen(mb->ckpt_path, "re");
    if (fp == NULL)
        return NULL;
    struct mbox_ckpt *c = mh_calloc(1, sizeof *c);
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int ok = c != NULL, first = 1, end = 0;
    while (ok && (got = getline(&line, &cap, fp)) > 0) {
        if (line[got - 1] == '\n')
            line[--got] = '\0';
        if (first) {
            ok = strcmp(line, "mailhub-mbox-checkpoint 1") == 0;
            first = 0;
            continue;
        }
        if (strcmp(line, "end") == 0) {
            end = 1;
            break;
        }
        char *sp = strchr(line, ' ');
        if (sp == NULL) {
            ok = 0;
            break;
        }
        *sp = '\0';
        const char *k = line, *v = sp + 1;
        int64_t n = mbox_parse_i64(v);
        char **str = NULL;
        if (strcmp(k, "kind") == 0)
            c->kind = strcmp(v, "maildir") == 0 ? SRC_MAILDIR : strcmp(v, "mbox") == 0 ? SRC_MBOX : SRC_NONE;
        else if (strcmp(k, "path") == 0)
            str = &c->path;
        else if (strcmp(k, "user") == 0)
            str = &c->user;
        else if (strcmp(k, "folder") == 0)
            str = &c->folder;
        else if (strcmp(k, "dir") == 0)
            str = &c->rule.dir;
        else if (strcmp(k, "name") == 0)
            str = &c->rule.name;
        else if (strcmp(k, "head") == 0 && strlen(v) == 64)
            memcpy(c->head, v, 65);
        else if (strcmp(k, "offset") == 0)
            c->offset = n;
        else if (strcmp(k, "head_len") == 0)
            c->head_len = n;
        else if (strcmp(k, "dev") == 0)
            c->dev = n;
        else if (strcmp(k, "ino") == 0)
            c->ino = n;
        else if (strcmp(k, "complete") == 0)
            c->rule.complete = n == 1;
        else if (strcmp(k, "since") == 0)
            c->rule.since = n;
        else if (strcmp(k, "done_bytes") == 0)
            c->done_bytes = n;
        else if (strcmp(k, "messages") == 0)
            c->counts.messages = n;
        else if (strcmp(k, "new") == 0)
            c->counts.fresh = n;
        else if (strcmp(k, "duplicates") == 0)
            c->counts.duplicates = n;
        else if (strcmp(k, "failed") == 0)
            c->counts.failed = n;
        if (str != NULL) {
            mh_free(*str);
            if ((*str = mh_strdup(v)) == NULL)
                ok = 0;
        }
    }
    free(line);
    fclose(fp);
    if (ok && end && c->kind != SRC_NONE && c->path != NULL && c->user != NULL && c->folder != NULL &&
        c->offset >= 0 && c->done_bytes >= 0 && c->counts.messages >= 0 && c->counts.fresh >= 0 &&
        c->counts.duplicates >= 0 && c->counts.failed >= 0 &&
        (c->kind == SRC_MBOX ? c->head[0] != '\0' && c->head_len >= 0
                             : c->rule.dir != NULL && c->rule.name != NULL && c->rule.since >= 0)) {
        c->rule.active = 1;
        return c;
    }
    mh_log_warn(mb->ctx, "ignoring the unreadable checkpoint %s", mb->ckpt_path);
    mbox_ckpt_free(c);
    return NULL;
}

/* Does the checkpoint describe this instance's source and options? */
static int mbox_ckpt_matches(const struct mbox *mb, const struct mbox_ckpt *c, enum mbox_kind kind)
{
    return c->kind == kind && strcmp(c->path, mb->path) == 0 &&
           strcmp(c->user, mb->user ? mb->user : "") == 0 && strcmp(c->folder, mb->folder) == 0;
}

static void mbox_take_counts(struct mbox *mb, const struct mbox_ckpt *c)
{
    mb->pass = c->counts;
    mb->total = c->counts;
    mb->ck = c->counts;
}

/* SHA-256 (hex) of the first `len` bytes of fd.  MH_OK, or MH_ERR on a short read. */
static int mbox_head_hash(int fd, int64_t len, char out[65])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return MH_ENOMEM;
    }
    char buf[16384];
    int64_t pos = 0;
    int rc = MH_OK;
    while (pos < len) {
        size_t want = (size_t)(len - pos < (int64_t)sizeof buf ? len - pos : (int64_t)sizeof buf);
        ssize_t n = pread(fd, buf, want, (off_t)pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = MH_ERR;
            break;
        }
        EVP_DigestUpdate(ctx, buf, (size_t)n);
        pos += n;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    if (rc == MH_OK && EVP_DigestFinal_ex(ctx, md, &md_len) == 1)
        mbox_hex(md, md_len, out);
    else
        rc = MH_ERR;
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* ------------------------------------------------------------- storing */

static int mbox_can_put(const struct mbox *mb)
{
    return mb->inflight < mb->batch && (mb->inflight == 0 || mb->inflight_bytes < mb->max_inflight_bytes);
}

static void mbox_put_cb(void *arg, int rc, const struct mh_message_ref *ref)
{
    struct mbox_put *p = arg;
    struct mbox *mb = p->mb;
    mb->inflight--;
    mb->inflight_bytes -= (int64_t)p->size;
    if (rc == MH_OK && ref != NULL) {
        p->st = PUT_DONE;
        mb->pass.messages++;
        mb->total.messages++;
        p->result = ref->duplicate ? 1 : 0;
        if (ref->duplicate) {
            mb->pass.duplicates++;
            mb->total.duplicates++;
        } else {
            mb->pass.fresh++;
            mb->total.fresh++;
            if (p->notify && mb->state != MBOX_STOPPING)
                mbox_emit(mb, "mail.received",
                          json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "account", mb->ctx->instance,
                                    "folder",
                                    mb->kind == SRC_MAILDIR && p->folder_idx < mb->n_folders
                                        ? mb->folders[p->folder_idx].name
                                        : mb->folder,
                                    "from", p->from ? p->from : "", "subject", p->subject ? p->subject : "",
                                    "message_id", p->message_id ? p->message_id : "", "size",
                                    (json_int_t)p->size, "store_id", (json_int_t)ref->id));
        }
    } else if (mb->state != MBOX_STOPPING) {
        mbox_put_failed(mb, p, rc == MH_OK ? MH_ERR : rc);
    } else {
        p->st = PUT_RETRY;
    }
    mbox_advance(mb);

    if (mb->state == MBOX_STOPPING) {
        if (mb->inflight == 0) {
            mbox_ckpt_save(mb, 1);
            mb->state = MBOX_STOPPED;
            mh_stopped(mb->ctx);
        }
        return;
    }
    if (mb->state == MBOX_ERROR)
        return; /* the poll retries once nothing is in flight */
    mbox_ckpt_save(mb, 0);
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

/* After a large message, give the memory back. */
static void mbox_shrink(struct mbox *mb)
{
    if (mb->cap > ((size_t)8 << 20) && mb->len == 0) {
        free(mb->buf);
        mb->buf = NULL;
        mb->cap = 0;
    }
}

/*
 * Hand mb->buf[0..len) to the store.  `p` (allocated by the caller, with its
 * position fields set) is queued.  Returns MH_OK unless the pass must stop.
 */
static int mbox_submit_raw(struct mbox *mb, struct mbox_put *p, size_t len, const char *folder,
                           const char *flags, int64_t date)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    if (EVP_Digest(mb->buf, len, md, &md_len, EVP_sha256(), NULL) != 1) {
        int64_t off = p->off;
        mbox_put_free(p);
        mbox_error(mb, off, "SHA-256 failed");
        return MH_ERR;
    }
    struct mbox_hdr h[3] = {{.name = "Message-ID"}, {.name = "From"}, {.name = "Subject"}};
    mbox_headers(mb->buf, len, h, 3);
    char *source_id = mbox_source_id(h[0].value, md, md_len);
    int rc = source_id != NULL ? MH_OK : MH_ENOMEM;
    p->mb = mb;
    p->size = len;
    p->notify = mb->initial_done;
    if (rc == MH_OK && p->notify) {
        p->message_id = h[0].value ? mbox_utf8_clean(h[0].value, h[0].len) : NULL;
        p->from = h[1].value ? mbox_utf8_clean(h[1].value, h[1].len) : NULL;
        p->subject = h[2].value ? mbox_utf8_clean(h[2].value, h[2].len) : NULL;
    }
    if (rc == MH_OK) {
        const struct mh_message m = {
            .struct_size = sizeof m,
            .user = mb->user,
            .account = mb->ctx->instance,
            .folder = folder,
            .source_id = source_id,
            .raw = mb->buf,
            .raw_len = len,
            .flags = flags,
            .internal_date = date,
        };
        rc = mh_store_put_message(mb->ctx, &m, mbox_put_cb, p);
    }
    for (int i = 0; i < 3; i++)
        mh_free(h[i].value);
    mh_free(source_id);
    /* Queued either way: a failed put holds the frontier like a pending one. */
    p->st = PUT_INFLIGHT;
    if (mb->tail != NULL)
        mb->tail->next = p;
    else
        mb->head = p;
    mb->tail = p;
    if (rc >= 0) {
        /* MH_PENDING: the callback completes p. */
        mb->inflight++;
        mb->inflight_bytes += (int64_t)len;
        return MH_OK;
    }
    mbox_put_failed(mb, p, rc);
    if (mb->state == MBOX_ERROR)
        return rc;
    mbox_advance(mb);
    return MH_OK;
}

/* Hand the assembled mbox message, which ends at file offset `end`, to the store. */
static int mbox_submit(struct mbox *mb, int64_t end)
{
    size_t len = mb->len;
    int64_t off = mb->msg_off;
    mb->have_msg = 0;
    /* The empty line the writer put after the message is not part of it. */
    if (len >= 2 && mb->buf[len - 1] == '\n' && mb->buf[len - 2] == '\n')
        len--;
    else if (len >= 4 && memcmp(mb->buf + len - 4, "\r\n\r\n", 4) == 0)
        len -= 2;
    else if (len == 1 && mb->buf[0] == '\n')
        len = 0;
    int rc = MH_OK;
    if (len > 0) {
        struct mbox_put *p = mh_calloc(1, sizeof *p);
        if (p == NULL) {
            mbox_error(mb, off, "out of memory");
            return MH_ENOMEM;
        }
        p->off = off;
        p->end = end;
        rc = mbox_submit_raw(mb, p, len, mb->folder, NULL, mb->msg_date);
    }
    mb->len = 0;
    mbox_shrink(mb);
    return rc;
}

/* ------------------------------------------------------- mbox reading */

static int mbox_open_mbox(struct mbox *mb, int fd, const struct stat *st)
{
    int same = mb->known && mb->kind == SRC_MBOX && st->st_dev == mb->dev && st->st_ino == mb->ino &&
               (int64_t)st->st_size >= mb->resume_off;
    int64_t head_len = (int64_t)st->st_size < MBOX_HEAD_LEN ? (int64_t)st->st_size : MBOX_HEAD_LEN;
    if (!same) {
        /* A new file: is it the one a checkpoint describes? */
        struct mbox_ckpt *c = mb->resume;
        mb->resume = NULL;
        int64_t start = 0;
        char hex[65];
        if (c != NULL && mbox_ckpt_matches(mb, c, SRC_MBOX)) {
            char at[5];
            int usable = c->offset <= (int64_t)st->st_size && c->head_len <= (int64_t)st->st_size &&
                         mbox_head_hash(fd, c->head_len, hex) == MH_OK && strcmp(hex, c->head) == 0 &&
                         (c->offset == (int64_t)st->st_size ||
                          (pread(fd, at, 5, (off_t)c->offset) == 5 && memcmp(at, "From ", 5) == 0));
            if (usable) {
                start = c->offset;
                head_len = c->head_len;
                memcpy(mb->head_hex, c->head, sizeof mb->head_hex);
                mbox_take_counts(mb, c);
                mh_log_info(mb->ctx,
                            "resuming the import of %s at byte %" PRId64 " (%" PRId64 " messages done)",
                            mb->path, start, c->counts.messages);
            } else {
                mh_log_info(mb->ctx, "%s was replaced since the checkpoint: importing it from the start",
                            mb->path);
            }
        } else if (mb->known) {
            mh_log_info(mb->ctx, "%s was replaced or truncated: importing it again", mb->path);
        }
        mbox_ckpt_free(c);
        if (start == 0) {
            if (mbox_head_hash(fd, head_len, hex) != MH_OK) {
                close(fd);
                mbox_error(mb, -1, "cannot read %s: %s", mb->path, strerror(errno));
                return MH_ERR;
            }
            memcpy(mb->head_hex, hex, sizeof mb->head_hex);
            memset(&mb->pass, 0, sizeof mb->pass);
            memset(&mb->ck, 0, sizeof mb->ck);
        }
        mb->head_len = head_len;
        mb->initial_done = 0;
        mb->skipped = 0;
        mb->resume_off = start;
        mb->ck_off = start;
        mb->done_bytes = start;
        mb->settle_size = -1;
        mb->ckpt_dirty = 1;
    }
    if (mb->resume_off > 0 && lseek(fd, (off_t)mb->resume_off, SEEK_SET) < 0) {
        close(fd);
        mbox_error(mb, -1, "cannot seek in %s: %s", mb->path, strerror(errno));
        return MH_ERR;
    }
    if (mb->rbuf == NULL && (mb->rbuf = mh_malloc(MBOX_RBUF)) == NULL) {
        close(fd);
        mbox_error(mb, -1, "out of memory");
        return MH_ERR;
    }
    mb->fd = fd;
    mb->kind = SRC_MBOX;
    mb->offset = mb->resume_off;
    mb->rstart = mb->rend = 0;
    mb->long_line = 0;
    mb->total_bytes = (int64_t)st->st_size;
    if (!same)
        mbox_pass_begin(mb);
    return MH_OK;
}

enum { LL_NONE, LL_APPEND, LL_DISCARD, LL_SKIP };

/*
 * One line of the mbox at file offset `line_off`; `complete` is 0 for the
 * first part of a line longer than the read buffer.  Returns MH_OK unless
 * the pass must stop.
 */
static int mbox_line(struct mbox *mb, const char *l, size_t len, int64_t line_off, int complete, int64_t *n)
{
    int rc = MH_OK;
    if (mb->long_line != LL_NONE) {
        /* The rest of a long line. */
        if (mb->long_line == LL_APPEND)
            rc = mbox_append(mb, l, len);
        else if (mb->long_line == LL_SKIP)
            mb->skipped += (int64_t)len;
        if (complete)
            mb->long_line = LL_NONE;
    } else if (len >= 5 && memcmp(l, "From ", 5) == 0) {
        if (mb->have_msg) {
            (*n)++;
            if (mbox_submit(mb, line_off) != MH_OK)
                return MH_ERR;
        }
        mb->have_msg = 1;
        mb->msg_off = line_off;
        mb->msg_date = mbox_from_date(l, len);
        mb->len = 0;
        if (!complete)
            mb->long_line = LL_DISCARD;
    } else if (mb->have_msg) {
        size_t k = 0;
        while (k < len && l[k] == '>')
            k++;
        if (k > 0 && len - k >= 5 && memcmp(l + k, "From ", 5) == 0)
            rc = mbox_append(mb, l + 1, len - 1); /* mboxrd: one '>' less */
        else
            rc = mbox_append(mb, l, len);
        if (!complete)
            mb->long_line = LL_APPEND;
    } else {
        mb->skipped += (int64_t)len;
        if (!complete)
            mb->long_line = LL_SKIP;
    }
    if (rc != MH_OK) {
        mbox_error(mb, -1, "out of memory reading the message at offset %" PRId64, mb->msg_off);
        return MH_ERR;
    }
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
    if (mb->offset > mb->total_bytes)
        mb->total_bytes = mb->offset;
    if (mb->have_msg) {
        if (!mbox_must_settle(mb) || mb->settle_size == mb->offset) {
            mb->settle_size = -1;
            if (mbox_submit(mb, mb->offset) != MH_OK)
                return;
        } else {
            mb->settle_size = mb->offset; /* finish it at the next poll if the file did not grow */
        }
    }
    if (mb->inflight == 0)
        mbox_pass_done(mb);
}

/* Read more into rbuf: >0 bytes read, 0 at the end of the file, -1 on error. */
static ssize_t mbox_fill(struct mbox *mb)
{
    if (mb->rstart > 0) {
        memmove(mb->rbuf, mb->rbuf + mb->rstart, mb->rend - mb->rstart);
        mb->rend -= mb->rstart;
        mb->rstart = 0;
    }
    for (;;) {
        ssize_t n = read(mb->fd, mb->rbuf + mb->rend, MBOX_RBUF - mb->rend);
        if (n < 0 && errno == EINTR)
            continue;
        if (n > 0)
            mb->rend += (size_t)n;
        return n;
    }
}

/* One tick over an mbox file. */
static void mbox_read_mbox(struct mbox *mb)
{
    int64_t n = 0, bytes = 0;
    int more = 1;
    while (mbox_can_put(mb) && n < mb->batch && bytes < MBOX_TICK_BYTES) {
        char *l = mb->rbuf + mb->rstart;
        size_t avail = mb->rend - mb->rstart;
        char *nl = avail > 0 ? memchr(l, '\n', avail) : NULL;
        size_t len;
        int complete = 1;
        if (nl != NULL) {
            len = (size_t)(nl - l) + 1;
        } else if (avail == MBOX_RBUF) {
            len = avail; /* a line longer than the buffer: take it in parts */
            complete = 0;
        } else {
            ssize_t got = mbox_fill(mb);
            if (got < 0) {
                mbox_error(mb, -1, "cannot read %s: %s", mb->path, strerror(errno));
                return;
            }
            if (got > 0)
                continue;
            if (avail == 0) {
                mbox_eof(mb);
                more = 0;
                break;
            }
            /* An unfinished last line. */
            if (mbox_must_settle(mb) && mb->settle_size != mb->offset + (int64_t)avail) {
                /* It may still be being written: read it again at the next poll. */
                mb->settle_size = mb->offset + (int64_t)avail;
                mb->at_eof = 1;
                more = 0;
                if (mb->inflight == 0)
                    mbox_pass_done(mb);
                break;
            }
            l = mb->rbuf + mb->rstart;
            len = avail;
        }
        int64_t line_off = mb->offset;
        mb->rstart += len;
        mb->offset += (int64_t)len;
        bytes += (int64_t)len;
        if (mbox_line(mb, l, len, line_off, complete, &n) != MH_OK)
            return;
    }
    if (mb->state == MBOX_ERROR)
        return;
    mbox_progress(mb, 0);
    /* Stopped by the per-tick limits: go on at the next loop iteration.  With
     * the puts in flight at their limit, their completions schedule the next tick. */
    if (more && mbox_can_put(mb))
        mbox_schedule_tick(mb);
}

/* ---------------------------------------------------- Maildir reading */

static int md_is_maildir(const char *dir)
{
    struct stat st;
    char *cur = mbox_strcat3(dir, "/cur", ""), *nw = mbox_strcat3(dir, "/new", "");
    int ok = cur != NULL && nw != NULL && stat(cur, &st) == 0 && S_ISDIR(st.st_mode) && stat(nw, &st) == 0 &&
             S_ISDIR(st.st_mode);
    mh_free(cur);
    mh_free(nw);
    return ok;
}

static int md_folder_cmp(const void *a, const void *b)
{
    return strcmp(((const struct md_folder *)a)->dir, ((const struct md_folder *)b)->dir);
}

static const char *md_base(const char *rel)
{
    const char *s = strchr(rel, '/');
    return s != NULL ? s + 1 : rel;
}

static int md_file_cmp(const void *a, const void *b)
{
    const char *x = ((const struct md_file *)a)->rel, *y = ((const struct md_file *)b)->rel;
    int c = strcmp(md_base(x), md_base(y));
    return c != 0 ? c : strcmp(x, y);
}

/* The root and its Maildir++ subfolders, sorted (the root, "", first). */
static int md_list_folders(struct mbox *mb)
{
    md_free_folders(mb);
    DIR *d = opendir(mb->path);
    if (d == NULL)
        return MH_ERR;
    size_t cap = 8;
    struct md_folder *v = mh_calloc(cap, sizeof *v);
    size_t n = 0;
    int rc = v != NULL ? MH_OK : MH_ENOMEM;
    if (rc == MH_OK) {
        v[0].dir = mh_strdup("");
        v[0].name = mh_strdup(mb->folder);
        n = 1;
        if (v[0].dir == NULL || v[0].name == NULL)
            rc = MH_ENOMEM;
    }
    struct dirent *de;
    while (rc == MH_OK && (de = readdir(d)) != NULL) {
        const char *nm = de->d_name;
        if (nm[0] != '.' || strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0)
            continue;
        char *full = mbox_strcat3(mb->path, "/", nm);
        int is = full != NULL && md_is_maildir(full);
        mh_free(full);
        if (!is)
            continue;
        if (n == cap) {
            struct md_folder *nv = realloc(v, cap * 2 * sizeof *nv);
            if (nv == NULL) {
                rc = MH_ENOMEM;
                break;
            }
            v = nv;
            cap *= 2;
        }
        v[n].dir = mh_strdup(nm);
        v[n].name = md_folder_name(nm);
        n++;
        if (v[n - 1].dir == NULL || v[n - 1].name == NULL)
            rc = MH_ENOMEM;
    }
    closedir(d);
    mb->folders = v;
    mb->n_folders = n;
    mb->fi = 0;
    if (rc != MH_OK)
        return rc;
    qsort(v, n, sizeof *v, md_folder_cmp);
    return MH_OK;
}

/* Is the whole folder `dir` before the rule's position? */
static int md_folder_before(const struct md_rule *r, const char *dir)
{
    return r->active && (r->complete || strcmp(dir, r->dir) < 0);
}

static int md_skip(const struct md_rule *r, const char *dir, const char *base, int64_t ctime_s)
{
    if (!r->active || ctime_s >= r->since - MBOX_CTIME_SLACK)
        return 0;
    if (r->complete)
        return 1;
    int c = strcmp(dir, r->dir);
    return c < 0 || (c == 0 && strcmp(base, r->name) <= 0);
}

/*
 * List the message files of folders[idx] that `rule` does not leave out into
 * files[] (sorted), or with `files` 0 only add up their count and bytes.
 */
static int md_list_files(struct mbox *mb, size_t idx, const struct md_rule *rule, int files, int64_t *count,
                         int64_t *bytes)
{
    static const char *const subs[] = {"cur", "new"};
    const struct md_folder *f = &mb->folders[idx];
    size_t cap = 0;
    int rc = MH_OK;
    for (int s = 0; s < 2 && rc == MH_OK; s++) {
        char *dirpath = *f->dir ? mbox_strcat3(mb->path, "/", f->dir) : mh_strdup(mb->path);
        char *sub = dirpath != NULL ? mbox_strcat3(dirpath, "/", subs[s]) : NULL;
        mh_free(dirpath);
        if (sub == NULL)
            return MH_ENOMEM;
        struct stat st;
        if (rule != NULL && md_folder_before(rule, f->dir) && stat(sub, &st) == 0 &&
            (int64_t)st.st_mtime < rule->since - MBOX_CTIME_SLACK &&
            (int64_t)st.st_ctime < rule->since - MBOX_CTIME_SLACK) {
            mh_free(sub); /* nothing was added to it since */
            continue;
        }
        DIR *d = opendir(sub);
        mh_free(sub);
        if (d == NULL) {
            if (errno == ENOENT)
                continue;
            return MH_ERR;
        }
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.')
                continue;
            if (fstatat(dirfd(d), de->d_name, &st, 0) != 0 || !S_ISREG(st.st_mode))
                continue;
            if (rule != NULL && md_skip(rule, f->dir, de->d_name, (int64_t)st.st_ctime))
                continue;
            if (count != NULL)
                (*count)++;
            if (bytes != NULL)
                *bytes += (int64_t)st.st_size;
            if (!files)
                continue;
            if (mb->n_files == cap) {
                size_t nc = cap ? cap * 2 : 64;
                struct md_file *nv = realloc(mb->files, nc * sizeof *nv);
                if (nv == NULL) {
                    rc = MH_ENOMEM;
                    break;
                }
                mb->files = nv;
                cap = nc;
            }
            char *rel = mbox_strcat3(subs[s], "/", de->d_name);
            if (rel == NULL) {
                rc = MH_ENOMEM;
                break;
            }
            mb->files[mb->n_files].rel = rel;
            mb->files[mb->n_files].size = (int64_t)st.st_size;
            mb->n_files++;
        }
        closedir(d);
    }
    if (files && mb->n_files > 1)
        qsort(mb->files, mb->n_files, sizeof *mb->files, md_file_cmp);
    return rc;
}

static int mbox_open_maildir(struct mbox *mb, const struct stat *st)
{
    int same = mb->known && mb->kind == SRC_MAILDIR && st->st_dev == mb->dev && st->st_ino == mb->ino;
    if (!same) {
        struct mbox_ckpt *c = mb->resume;
        mb->resume = NULL;
        md_rule_clear(&mb->front);
        memset(&mb->pass, 0, sizeof mb->pass);
        memset(&mb->ck, 0, sizeof mb->ck);
        mb->done_bytes = 0;
        if (c != NULL && mbox_ckpt_matches(mb, c, SRC_MAILDIR)) {
            if (c->dev == (int64_t)st->st_dev && c->ino == (int64_t)st->st_ino &&
                md_rule_copy(&mb->front, &c->rule) == MH_OK) {
                mbox_take_counts(mb, c);
                mb->done_bytes = c->done_bytes;
                mh_log_info(
                    mb->ctx, "resuming the import of %s after %s%s%s (%" PRId64 " messages done)", mb->path,
                    c->rule.complete ? "its last pass"
                    : *c->rule.dir   ? c->rule.dir
                                     : "cur",
                    c->rule.complete ? "" : "/", c->rule.complete ? "" : c->rule.name, c->counts.messages);
            } else {
                mh_log_info(mb->ctx, "%s was replaced since the checkpoint: importing it from the start",
                            mb->path);
            }
        } else if (mb->known) {
            mh_log_info(mb->ctx, "%s was replaced: importing it again", mb->path);
        }
        mbox_ckpt_free(c);
        mb->initial_done = 0;
        mb->last_since = 0;
    }
    /* This pass leaves out what its checkpoint says was done. */
    if (md_rule_copy(&mb->rule, &mb->front) != MH_OK) {
        mbox_error(mb, -1, "out of memory");
        return MH_ERR;
    }
    /* A retry keeps the time its pass began: files that came after it are
     * newer, files before it were listed by the pass or by an earlier one. */
    if (!same || !mb->retrying || mb->pass_since == 0)
        mb->pass_since = (int64_t)time(NULL);
    mb->retrying = 0;
    mb->kind = SRC_MAILDIR;
    if (md_list_folders(mb) != MH_OK) {
        mbox_error(mb, -1, "cannot list %s: %s", mb->path, strerror(errno));
        return MH_ERR;
    }
    if (!mb->initial_done) {
        /* The whole Maildir, for progress; what the checkpoint covers counts as done. */
        int64_t count = 0, bytes = 0;
        for (size_t i = 0; i < mb->n_folders; i++)
            if (md_list_files(mb, i, NULL, 0, &count, &bytes) != MH_OK) {
                mbox_error(mb, -1, "cannot list %s: %s", mb->path, strerror(errno));
                return MH_ERR;
            }
        mb->total_bytes = bytes > mb->done_bytes ? bytes : mb->done_bytes;
        if (!same) {
            mh_log_info(mb->ctx, "%s: %zu folders, %" PRId64 " messages, %.1f MB", mb->path, mb->n_folders,
                        count, (double)bytes / MBOX_MB);
            mbox_pass_begin(mb);
        }
    }
    mb->pass_open = 1;
    mb->listed = 0;
    mb->ckpt_dirty = 1;
    return MH_OK;
}

/* Open a Maildir message file; a file of new/ that a reader moved meanwhile is looked up in cur/. */
static int md_open_file(struct mbox *mb, const struct md_folder *f, const char *rel)
{
    char *dir = *f->dir ? mbox_strcat3(mb->path, "/", f->dir) : mh_strdup(mb->path);
    char *path = dir != NULL ? mbox_strcat3(dir, "/", rel) : NULL;
    int fd = path != NULL ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    mh_free(path);
    if (fd < 0 && errno == ENOENT && dir != NULL && strncmp(rel, "new/", 4) == 0) {
        const char *base = rel + 4;
        size_t bl = strlen(base);
        char *cur = mbox_strcat3(dir, "/cur", "");
        DIR *d = cur != NULL ? opendir(cur) : NULL;
        struct dirent *de;
        while (d != NULL && (de = readdir(d)) != NULL) {
            if (strncmp(de->d_name, base, bl) == 0 && de->d_name[bl] == ':') {
                fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC);
                break;
            }
        }
        if (d != NULL)
            closedir(d);
        mh_free(cur);
        if (fd < 0)
            errno = ENOENT;
    }
    mh_free(dir);
    return fd;
}

/* Read one Maildir file into mb->buf and submit it.  Returns MH_OK unless the pass must stop. */
static int md_import_file(struct mbox *mb, size_t fi, const struct md_file *file)
{
    const struct md_folder *f = &mb->folders[fi];
    int fd = md_open_file(mb, f, file->rel);
    if (fd < 0) {
        if (errno == ENOENT) {
            mh_log_debug(mb->ctx, "%s/%s disappeared before it was read", f->name, file->rel);
            return MH_OK;
        }
        mbox_error(mb, -1, "cannot open %s/%s/%s: %s", mb->path, f->dir, file->rel, strerror(errno));
        return MH_ERR;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return MH_OK;
    }
    mb->len = 0;
    int rc = MH_OK;
    size_t want = (size_t)st.st_size + 4096;
    for (;;) {
        if (mb->len == mb->cap || mb->cap < want) {
            size_t cap = mb->cap > want ? mb->cap * 2 : want;
            char *b = realloc(mb->buf, cap);
            if (b == NULL) {
                rc = MH_ENOMEM;
                break;
            }
            mb->buf = b;
            mb->cap = cap;
            want = 0;
        }
        ssize_t n = read(fd, mb->buf + mb->len, mb->cap - mb->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = MH_ERR;
            break;
        }
        if (n == 0)
            break;
        mb->len += (size_t)n;
    }
    int err = errno;
    close(fd);
    if (rc != MH_OK) {
        mbox_error(mb, -1, "cannot read %s/%s/%s: %s", mb->path, f->dir, file->rel,
                   rc == MH_ENOMEM ? "out of memory" : strerror(err));
        return MH_ERR;
    }
    if (mb->len == 0)
        return MH_OK;
    struct mbox_put *p = mh_calloc(1, sizeof *p);
    char *flags = md_flags(md_base(file->rel));
    if (p == NULL || (p->name = mh_strdup(md_base(file->rel))) == NULL) {
        mh_free(p);
        mh_free(flags);
        mbox_error(mb, -1, "out of memory");
        return MH_ERR;
    }
    p->folder_idx = fi;
    p->off = -1;
    rc = mbox_submit_raw(mb, p, mb->len, f->name, flags, (int64_t)st.st_mtime);
    mh_free(flags);
    mb->len = 0;
    mbox_shrink(mb);
    return rc;
}

/* One tick over a Maildir. */
static void mbox_read_maildir(struct mbox *mb)
{
    int64_t n = 0, bytes = 0;
    while (mbox_can_put(mb) && n < mb->batch && bytes < MBOX_TICK_BYTES) {
        if (mb->fi >= mb->n_folders) {
            mb->at_eof = 1;
            if (mb->inflight == 0)
                mbox_pass_done(mb);
            return;
        }
        if (!mb->listed) {
            md_free_files(mb);
            if (md_list_files(mb, mb->fi, &mb->rule, 1, NULL, NULL) != MH_OK) {
                mbox_error(mb, -1, "cannot list %s/%s: %s", mb->path, mb->folders[mb->fi].dir,
                           strerror(errno));
                return;
            }
            mb->listed = 1;
            mb->fj = 0;
        }
        if (mb->fj >= mb->n_files) {
            md_free_files(mb);
            mb->fi++;
            continue;
        }
        const struct md_file *file = &mb->files[mb->fj++];
        bytes += file->size;
        n++;
        if (md_import_file(mb, mb->fi, file) != MH_OK)
            return;
    }
    if (mb->state == MBOX_ERROR)
        return;
    mbox_progress(mb, 0);
    if (mbox_can_put(mb))
        mbox_schedule_tick(mb);
}

/* --------------------------------------------------------------- ticks */

/* Open the source for a pass: an mbox file or a Maildir directory. */
static int mbox_open(struct mbox *mb)
{
    struct stat st;
    if (stat(mb->path, &st) != 0) {
        mbox_error(mb, -1, "cannot open %s: %s", mb->path, strerror(errno));
        return MH_ERR;
    }
    int rc;
    if (S_ISDIR(st.st_mode)) {
        if (!md_is_maildir(mb->path)) {
            mbox_error(mb, -1, "%s is a directory but not a Maildir (no cur/ and new/)", mb->path);
            return MH_ERR;
        }
        rc = mbox_open_maildir(mb, &st);
    } else {
        int fd = open(mb->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            mbox_error(mb, -1, "cannot open %s: %s", mb->path, strerror(errno));
            return MH_ERR;
        }
        if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            close(fd);
            mbox_error(mb, -1, "%s is not a regular file or a Maildir", mb->path);
            return MH_ERR;
        }
        rc = mbox_open_mbox(mb, fd, &st);
    }
    if (rc != MH_OK)
        return rc;
    mb->known = 1;
    mb->dev = st.st_dev;
    mb->ino = st.st_ino;
    mb->at_eof = 0;
    mbox_drop_message(mb);
    mb->state = mb->initial_done ? (mb->watch ? MBOX_WATCHING : MBOX_DONE) : MBOX_IMPORTING;
    return MH_OK;
}

static void mbox_read(struct mbox *mb)
{
    if (mb->state == MBOX_ERROR || mb->state == MBOX_STOPPING || mb->state == MBOX_STOPPED)
        return;
    if (mb->fd < 0 && !mb->pass_open && mbox_open(mb) != MH_OK)
        return;
    if (mb->kind == SRC_MAILDIR)
        mbox_read_maildir(mb);
    else
        mbox_read_mbox(mb);
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

/* After the first pass: has the source grown, or been replaced? */
static void mbox_check(struct mbox *mb)
{
    struct stat st;
    if (stat(mb->path, &st) != 0) {
        mbox_error(mb, -1, "cannot open %s: %s", mb->path, strerror(errno));
        return;
    }
    if (mb->kind == SRC_MAILDIR) {
        /* A new scan for files added since the last one (or the whole of a new Maildir). */
        mbox_close_file(mb);
        mbox_schedule_tick(mb);
        return;
    }
    if (mb->fd < 0 || !mb->known || st.st_dev != mb->dev || st.st_ino != mb->ino ||
        (int64_t)st.st_size < mb->offset) {
        if (mb->fd >= 0 && (int64_t)st.st_size < mb->offset)
            mb->known = 0; /* truncated in place: read it from the start */
        mbox_close_file(mb);
        mbox_schedule_tick(mb);
        return;
    }
    mb->total_bytes = (int64_t)st.st_size;
    if ((int64_t)st.st_size > mb->offset || mb->have_msg) {
        mb->at_eof = 0;
        mbox_schedule_tick(mb);
    }
}

static void mbox_poll(struct mbox *mb)
{
    mbox_ckpt_save(mb, 0);
    if (mb->state == MBOX_ERROR) {
        if (mb->inflight > 0)
            return; /* resume once every put has reported */
        mbox_queue_clear(mb);
        mb->retrying = 1;
        mb->state = mb->initial_done ? (mb->watch ? MBOX_WATCHING : MBOX_DONE) : MBOX_IMPORTING;
        mbox_schedule_tick(mb);
        return;
    }
    /* Busy: the pass in progress drives itself. */
    if (mb->tick_timer != NULL || mb->inflight > 0 || !mb->initial_done || mb->state <= MBOX_STARTING ||
        mb->state >= MBOX_STOPPING || mb->pass_open)
        return;
    mbox_check(mb);
}

static void mbox_poll_cb(struct mh_timer *t, void *arg)
{
    (void)t;
    mbox_poll(arg);
}

/* ----------------------------------------------------------- lifecycle */

static void mbox_free(void *state);

static int mbox_init(struct mh_plugin_ctx *ctx, const struct mh_config *cfg, void **state_out)
{
    const char *path = mh_cfg_str(cfg, "path");
    if (path == NULL || *path == '\0') {
        mh_set_error(ctx, "path: an mbox file or a Maildir is required");
        return MH_EINVAL;
    }
    struct mbox *mb = mh_calloc(1, sizeof *mb);
    if (mb == NULL)
        return MH_ENOMEM;
    mb->ctx = ctx;
    mb->fd = -1;
    const char *folder = mh_cfg_str(cfg, "folder"), *user = mh_cfg_str(cfg, "user");
    mb->path = mh_data_path(ctx, path); /* relative: to daemon.data_dir, like every plugin path */
    mb->folder = mh_strdup(folder != NULL && *folder != '\0' ? folder : "INBOX");
    /* NULL lets the core file the messages under the instance's `user:`, the
     * user its events name too. */
    mb->user = user != NULL && *user != '\0' ? mh_strdup(user) : NULL;
    mb->ckpt_path = mbox_ckpt_path(ctx);
    mb->watch = mh_cfg_bool(cfg, "watch");
    int64_t poll_ms = mh_cfg_duration_ms(cfg, "poll_interval");
    mb->poll_interval = poll_ms > 0 ? (double)poll_ms / 1000.0 : 5.0;
    mb->batch = mh_cfg_int(cfg, "batch");
    if (mb->batch < 1)
        mb->batch = 1;
    uint64_t ib = mh_cfg_size(cfg, "inflight_bytes");
    mb->max_inflight_bytes = ib > 0 && ib < ((uint64_t)1 << 62) ? (int64_t)ib : (int64_t)32 << 20;
    mb->settle_size = -1;
    mb->state = MBOX_IDLE;
    if (mb->path == NULL || mb->folder == NULL || mb->ckpt_path == NULL ||
        (user != NULL && *user != '\0' && mb->user == NULL)) {
        mbox_free(mb);
        return MH_ENOMEM;
    }
    *state_out = mb;
    return MH_OK;
}

static int mbox_start(void *state)
{
    struct mbox *mb = state;
    mb->state = MBOX_STARTING;
    mb->resume = mbox_ckpt_load(mb);
    mbox_pass_begin(mb);
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
    mbox_ckpt_save(mb, 1);
    mb->state = MBOX_STOPPED;
    return MH_OK;
}

static void mbox_free(void *state)
{
    struct mbox *mb = state;
    if (mb == NULL)
        return;
    /* Handles are the core's and already cancelled; puts it dropped are ours to free. */
    mbox_queue_clear(mb);
    if (mb->fd >= 0)
        close(mb->fd);
    md_free_files(mb);
    md_free_folders(mb);
    md_rule_clear(&mb->rule);
    md_rule_clear(&mb->front);
    mbox_ckpt_free(mb->resume);
    mh_free(mb->rbuf);
    free(mb->buf);
    mh_free(mb->error);
    mh_free(mb->path);
    mh_free(mb->folder);
    mh_free(mb->user);
    mh_free(mb->ckpt_path);
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
    double rate = mb->state == MBOX_IMPORTING ? mbox_rate(mb) : 0.0;
    int64_t left = mb->total_bytes - mb->done_bytes;
    json_t *eta = mb->state == MBOX_WATCHING || mb->state == MBOX_DONE ? json_integer(0)
                  : mb->state == MBOX_IMPORTING && rate > 0 && left >= 0
                      ? json_integer((json_int_t)((double)left / rate + 0.5))
                      : json_null();
    json_t *j =
        json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "state", mbox_state_names[mb->state],
                  "done_bytes", (json_int_t)mb->done_bytes, "total_bytes", (json_int_t)mb->total_bytes,
                  "messages", (json_int_t)mb->total.messages, "new", (json_int_t)mb->total.fresh,
                  "duplicates", (json_int_t)mb->total.duplicates, "failed", (json_int_t)mb->total.failed,
                  "rate_bps", (json_int_t)(rate + 0.5), "eta_s", eta);
    if (j != NULL && mb->error != NULL)
        json_object_set_new(j, "error", json_string(mb->error));
    if (j != NULL)
        json_object_set_new(j, "source", json_string(mb->kind == SRC_MAILDIR ? "maildir" : "mbox"));
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

MH_PLUGIN_DEFINE(
    mbox, .kind = MH_KIND_PROVIDER, .name = "mbox", .version = "1.1.0",
    .description = "import an mbox file (Takeout, Thunderbird) or a Maildir and watch it for new mail",
    .options = mbox_options, .init = mbox_init, .start = mbox_start, .stop = mbox_stop, .free = mbox_free,
    .ops = &mbox_ops);

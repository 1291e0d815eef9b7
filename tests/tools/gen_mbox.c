/*
 * gen_mbox: a deterministic generator of realistic mail for tests and benchmarks.
 *
 *   gen_mbox --count N --seed S [--dup-every K] [--manifest FILE] > out.mbox
 *   gen_mbox --count N --seed S --maildir DIR [--dup-every K] [--manifest FILE]
 *
 * Without --maildir it writes an mboxrd file to stdout: each message is
 * preceded by a "From " line (the sender and the date in UTC), every line
 * that matches /^>*From / gets one more '>', and an empty line (LF, or CRLF
 * for a message written with CRLF line ends) follows each message.  With
 * --maildir it creates a Maildir++ tree instead (DIR/{cur,new,tmp} for the
 * inbox, DIR/.Sent, DIR/.Archive.2024 and DIR/.Drafts), with flags in the
 * file names (":2,FRS") and each file's mtime set to the message date.
 *
 * The messages vary the way real mail does: most are 2-20 KB, a few are
 * 100-500 KB (base64 attachments); text/plain (ASCII, UTF-8 quoted-printable,
 * GBK base64), text/html, multipart/alternative, multipart/mixed with
 * attachments; subjects in ASCII, UTF-8 (RFC 2047 B and Q) and GBK
 * (=?GBK?B?...?=, encoded with iconv); some body lines start with "From " or
 * ">From "; about one message in twenty uses CRLF line ends.  Every message
 * has a distinct Message-ID and a Date header.  The same count and seed give
 * the same bytes; 10,000 messages make about 42 MB.  --dup-every K makes every K-th message (K, 2K, ...) an
 * exact copy of an earlier one, as a re-export would.
 *
 * --manifest FILE writes one line per message, tab-separated:
 *   index  message_id  size  sha256  subject
 * where index counts from 0, size and sha256 are those of the raw message
 * (the bytes as they are after mboxrd unquoting, which the importer hands to
 * the store) and subject is the decoded Subject in UTF-8.  With --maildir two
 * more columns follow: the folder ("INBOX", "Sent", "Archive/2024", "Drafts")
 * and the IMAP flags (space-separated, may be empty).  A duplicate has the
 * same Message-ID and sha256 as the message it copies.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <iconv.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

/* ------------------------------------------------------------ basics */

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("gen_mbox: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

struct buf {
    char *p;
    size_t len, cap;
};

static void b_reserve(struct buf *b, size_t n)
{
    if (n <= b->cap - b->len)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (n > cap - b->len)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL)
        die("out of memory");
    b->p = p;
    b->cap = cap;
}

static void b_add(struct buf *b, const void *s, size_t n)
{
    b_reserve(b, n + 1);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void b_str(struct buf *b, const char *s)
{
    b_add(b, s, strlen(s));
}

static __attribute__((format(printf, 2, 3))) void b_fmt(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        die("format error");
    b_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static void b_reset(struct buf *b)
{
    b->len = 0;
    if (b->p != NULL)
        b->p[0] = '\0';
}

/* splitmix64: small, fast, and the same everywhere. */
struct rng {
    uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n). */
static size_t rnd_n(struct rng *r, size_t n)
{
    return n > 0 ? (size_t)(rnd(r) % n) : 0;
}

/* Uniform in [0, 1). */
static double rnd_d(struct rng *r)
{
    return (double)(rnd(r) >> 11) / 9007199254740992.0;
}

/* Log-uniform in [lo, hi]: small sizes are more frequent, as in real mail. */
static size_t rnd_logu(struct rng *r, double lo, double hi)
{
    return (size_t)(lo * pow(hi / lo, rnd_d(r)));
}

static const char *pick(struct rng *r, const char *const *v, size_t n)
{
    return v[rnd_n(r, n)];
}
#define PICK(r, arr) pick((r), (arr), sizeof(arr) / sizeof((arr)[0]))

/* ------------------------------------------------------------ word pools */

static const char *const WORDS[] = {
    "the",      "meeting",  "report",    "quarter",   "budget",  "project",  "schedule", "review",
    "please",   "attached", "find",      "thanks",    "regards", "update",   "team",     "customer",
    "order",    "invoice",  "shipping",  "delivery",  "account", "password", "security", "release",
    "version",  "server",   "database",  "migration", "weekend", "holiday",  "office",   "lunch",
    "call",     "tomorrow", "today",     "next",      "week",    "month",    "results",  "numbers",
    "growth",   "sales",    "marketing", "design",    "draft",   "final",    "approved", "pending",
    "question", "answer",   "issue",     "ticket",    "support", "service",  "contract", "signed",
    "legal",    "hiring",   "candidate", "interview", "travel",  "flight",   "hotel",    "booking",
    "confirm",  "cancel",   "agenda",    "notes",     "minutes", "action",   "items",    "deadline",
    "and",      "of",       "to",        "for",       "with",    "on",       "in",       "is",
    "we",       "you",      "our",       "your",      "this",    "that",     "will",     "can",
    "be",       "have",
};

static const char *const ZH[] = {
    "关于下周会议的通知", "季度财务报告",   "您的订单已发货", "项目进度更新", "欢迎加入我们的团队",
    "请查收附件",         "年终总结",       "系统维护通知",   "会议纪要",     "产品发布计划",
    "客户反馈汇总",       "请确认收货地址", "周末活动安排",   "合同已签署",   "招聘面试安排",
    "数据库迁移方案",     "安全更新提醒",   "出差行程确认",   "预算审批",     "新年快乐",
};

static const char *const UTF8_SUBJ[] = {
    "Réunion de l'équipe à 14h", "Grüße aus München",   "Добрый день, коллеги",   "Ελληνικά: σημειώσεις",
    "日本語のテスト件名",        "Café & crème brûlée", "Año nuevo, señor Muñoz", "🎉 Party on Friday 🎉",
    "Zürich → Genève: Fahrplan", "会议纪要 (draft)",    "Résumé — candidate #2",  "Smörgåsbord på fredag",
};

static const char *const ASCII_SUBJ[] = {
    "Quarterly report",      "Meeting tomorrow",  "Your order has shipped",  "Invoice attached",
    "Project status update", "Lunch on Friday?",  "Re: budget review",       "Fwd: travel booking",
    "Security notice",       "Weekly newsletter", "Action items from today", "Contract draft v3",
    "Welcome to the team",   "Password reset",    "Release notes",           "Server maintenance window",
};

static const char *const NAMES[] = {"alice", "bob",   "carol",    "dave",  "erin",      "frank",
                                    "grace", "heidi", "ivan",     "judy",  "mallory",   "oscar",
                                    "peggy", "trent", "wang.wei", "li.na", "zhang.min", "chen.jie"};
static const char *const DOMAINS[] = {"example.org", "example.com", "mail.example.net", "corp.example",
                                      "example.cn"};

/* ------------------------------------------------------------ encoders */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Base64 of s; with line > 0, wrapped at `line` characters with "\n". */
static void b64(struct buf *out, const unsigned char *s, size_t n, size_t line)
{
    size_t col = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        char q[4] = {B64[(v >> 18) & 63], B64[(v >> 12) & 63], i + 1 < n ? B64[(v >> 6) & 63] : '=',
                     i + 2 < n ? B64[v & 63] : '='};
        b_add(out, q, 4);
        col += 4;
        if (line > 0 && col >= line) {
            b_str(out, "\n");
            col = 0;
        }
    }
    if (line > 0 && col > 0)
        b_str(out, "\n");
}

/* Quoted-printable (RFC 2045) of text with "\n" line ends. */
static void qp(struct buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t col = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') {
            b_str(out, "\n");
            col = 0;
            continue;
        }
        int lit =
            (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && i + 1 < n && s[i + 1] != '\n');
        size_t w = lit ? 1 : 3;
        if (col + w > 75) {
            b_str(out, "=\n");
            col = 0;
        }
        if (lit) {
            b_add(out, &s[i], 1);
        } else {
            char e[3] = {'=', hex[c >> 4], hex[c & 15]};
            b_add(out, e, 3);
        }
        col += w;
    }
}

static size_t utf8_len(unsigned char c)
{
    return c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
}

/* Convert UTF-8 to `charset` with iconv (the conversion descriptor is cached by the caller). */
static void conv(iconv_t cd, struct buf *out, const char *s, size_t n)
{
    iconv(cd, NULL, NULL, NULL, NULL);
    b_reserve(out, n * 2 + 16);
    char *in = (char *)s, *o = out->p + out->len;
    size_t inl = n, outl = out->cap - out->len - 1;
    if (iconv(cd, &in, &inl, &o, &outl) == (size_t)-1)
        die("iconv: cannot convert \"%.*s\": %s", (int)n, s, strerror(errno));
    out->len = (size_t)(o - out->p);
    out->p[out->len] = '\0';
}

enum subj_kind { SUBJ_ASCII, SUBJ_UTF8_B, SUBJ_UTF8_Q, SUBJ_GBK };

/*
 * Append "Subject: ..." (folded into encoded words of at most 75 characters)
 * for the UTF-8 text `s`.  Encoded words separated by folding white space
 * decode to the concatenation of their texts (RFC 2047 6.2).
 */
static void subject_header(struct buf *out, const char *prefix, const char *s, enum subj_kind kind,
                           iconv_t gbk)
{
    b_str(out, "Subject: ");
    b_str(out, prefix);
    if (kind == SUBJ_ASCII) {
        b_str(out, s);
        b_str(out, "\n");
        return;
    }
    size_t n = strlen(s), i = 0;
    int first = 1;
    struct buf tmp = {0};
    while (i < n) {
        /* One encoded word's worth of whole characters: at most 39 bytes before
         * base64 (52 characters), or 45 characters once Q-encoded. */
        size_t j = i, enc = 0;
        while (j < n) {
            size_t cl = utf8_len((unsigned char)s[j]);
            size_t add = kind == SUBJ_UTF8_Q ? (cl > 1 ? 3 * cl : 3) : kind == SUBJ_GBK ? 2 : cl;
            if (enc + add > (kind == SUBJ_UTF8_Q ? 45 : 39))
                break;
            enc += add;
            j += cl;
        }
        if (j == i)
            j = i + utf8_len((unsigned char)s[i]);
        if (!first)
            b_str(out, "\n ");
        first = 0;
        if (kind == SUBJ_UTF8_Q) {
            static const char hex[] = "0123456789ABCDEF";
            b_str(out, "=?UTF-8?Q?");
            for (size_t k = i; k < j; k++) {
                unsigned char c = (unsigned char)s[k];
                if (c == ' ') {
                    b_str(out, "_");
                } else if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) {
                    b_add(out, &s[k], 1);
                } else {
                    char e[3] = {'=', hex[c >> 4], hex[c & 15]};
                    b_add(out, e, 3);
                }
            }
            b_str(out, "?=");
        } else {
            b_reset(&tmp);
            if (kind == SUBJ_GBK)
                conv(gbk, &tmp, s + i, j - i);
            else
                b_add(&tmp, s + i, j - i);
            b_str(out, kind == SUBJ_GBK ? "=?GBK?B?" : "=?UTF-8?B?");
            b64(out, (const unsigned char *)tmp.p, tmp.len, 0);
            b_str(out, "?=");
        }
        i = j;
    }
    b_str(out, "\n");
    free(tmp.p);
}

/* ------------------------------------------------------------ bodies */

/* English-ish text of about `size` bytes, wrapped at 72 columns; sometimes a line starting with "From ". */
static void text_para(struct rng *r, struct buf *out, size_t size, int utf8)
{
    size_t start = out->len, col = 0;
    while (out->len - start < size) {
        if (col == 0) {
            size_t roll = rnd_n(r, 400);
            if (roll == 0) {
                b_str(out, "From the desk of the director: please read this.\n");
                continue;
            }
            if (roll == 1) {
                b_str(out, ">From an earlier message, quoted by hand.\n");
                continue;
            }
            if (roll == 2) {
                b_str(out, ">>From deeper in the thread.\n");
                continue;
            }
        }
        const char *w = utf8 && rnd_n(r, 12) == 0 ? PICK(r, ZH) : PICK(r, WORDS);
        size_t wl = strlen(w);
        if (col > 0 && col + 1 + wl > 72) {
            b_str(out, rnd_n(r, 6) == 0 ? ".\n\n" : "\n");
            col = 0;
        }
        if (col > 0) {
            b_str(out, " ");
            col++;
        }
        b_add(out, w, wl);
        col += wl;
    }
    b_str(out, ".\n");
}

static void html_of(struct rng *r, struct buf *out, size_t size, int utf8)
{
    struct buf t = {0};
    text_para(r, &t, size > 200 ? size - 120 : size, utf8);
    b_str(out,
          "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>mail</title></head>\n<body>\n<p>");
    for (size_t i = 0; i < t.len; i++) {
        if (t.p[i] == '\n' && i + 1 < t.len && t.p[i + 1] == '\n') {
            b_str(out, "</p>\n<p>");
            i++;
        } else if (t.p[i] == '<') {
            b_str(out, "&lt;");
        } else if (t.p[i] == '>') {
            b_str(out, "&gt;");
        } else if (t.p[i] == '&') {
            b_str(out, "&amp;");
        } else {
            b_add(out, &t.p[i], 1);
        }
    }
    b_str(out, "</p>\n</body></html>\n");
    free(t.p);
}

/* A text part (headers and body) of about `size` bytes. */
static void text_part(struct rng *r, struct buf *out, size_t size, iconv_t gbk)
{
    size_t kind = rnd_n(r, 20);
    struct buf t = {0};
    if (kind < 2) {
        /* Chinese text in GBK, base64 */
        while (t.len < size * 3 / 4) {
            b_str(&t, PICK(r, ZH));
            b_str(&t, rnd_n(r, 5) == 0 ? "。\n" : "，");
        }
        b_str(&t, "\n");
        struct buf g = {0};
        conv(gbk, &g, t.p, t.len);
        b_str(out, "Content-Type: text/plain; charset=GBK\nContent-Transfer-Encoding: base64\n\n");
        b64(out, (const unsigned char *)g.p, g.len, 76);
        free(g.p);
    } else if (kind < 8) {
        text_para(r, &t, size, 1);
        b_str(out,
              "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n");
        qp(out, t.p, t.len);
    } else if (kind < 10) {
        text_para(r, &t, size, 1);
        b_str(out, "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n");
        b_add(out, t.p, t.len);
    } else {
        text_para(r, &t, size, 0);
        b_str(out, "Content-Type: text/plain; charset=us-ascii\nContent-Transfer-Encoding: 7bit\n\n");
        b_add(out, t.p, t.len);
    }
    free(t.p);
}

static void html_part(struct rng *r, struct buf *out, size_t size)
{
    struct buf t = {0};
    html_of(r, &t, size, 1);
    b_str(out, "Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n");
    qp(out, t.p, t.len);
    free(t.p);
}

static void attachment_part(struct rng *r, struct buf *out, size_t size, size_t index)
{
    static const char *const types[][2] = {
        {"application/pdf", "pdf"}, {"image/png", "png"}, {"application/zip", "zip"}, {"image/jpeg", "jpg"}};
    size_t t = rnd_n(r, 4), n = size * 3 / 4;
    unsigned char *bytes = malloc(n + 8);
    if (bytes == NULL)
        die("out of memory");
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = rnd(r);
        memcpy(bytes + i, &v, 8);
    }
    b_fmt(
        out,
        "Content-Type: %s; name=\"file-%zu.%s\"\nContent-Disposition: attachment; filename=\"file-%zu.%s\"\n"
        "Content-Transfer-Encoding: base64\n\n",
        types[t][0], index, types[t][1], index, types[t][1]);
    b64(out, bytes, n, 76);
    free(bytes);
}

/* ------------------------------------------------------------ messages */

struct msg {
    struct buf raw;     /* the message as the store gets it */
    struct buf subject; /* decoded, UTF-8 */
    char mid[128];
    char sender[128];
    int64_t date;
    const char *folder; /* Maildir++ directory name, "" for the inbox */
    char flags[8];      /* Maildir flag letters, sorted */
    int seen_dir_new;   /* Maildir: delivered to new/ (not yet seen) */
    int crlf;
};

static const char *const WDAY[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const MON[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static void gen_message(struct msg *m, uint64_t seed, size_t index, iconv_t gbk)
{
    struct rng r = {seed * 0x2545f4914f6cdd1dULL ^ (uint64_t)(index + 1) * 0x9e3779b97f4a7c15ULL};
    rnd(&r);
    b_reset(&m->raw);
    b_reset(&m->subject);

    /* Envelope. */
    const char *from = PICK(&r, NAMES), *fdom = PICK(&r, DOMAINS);
    const char *to = PICK(&r, NAMES), *tdom = PICK(&r, DOMAINS);
    snprintf(m->sender, sizeof m->sender, "%s@%s", from, fdom);
    snprintf(m->mid, sizeof m->mid, "<%zu.%016" PRIx64 "@gen.mailhub.test>", index, rnd(&r));
    m->date = 1577836800 + (int64_t)index * 1800 + (int64_t)rnd_n(&r, 1800);
    static const int zones[] = {0, 800, -500, 100, 530, -800};
    int zone = zones[rnd_n(&r, 6)];
    int zsec = (zone / 100) * 3600 + (zone % 100) * 60;
    time_t lt = (time_t)(m->date + zsec);
    struct tm tm;
    gmtime_r(&lt, &tm);

    /* Folder and flags (used by --maildir). */
    size_t fr = rnd_n(&r, 100);
    m->folder = fr < 60 ? "" : fr < 80 ? ".Sent" : fr < 95 ? ".Archive.2024" : ".Drafts";
    char *fl = m->flags;
    if (strcmp(m->folder, ".Drafts") == 0)
        *fl++ = 'D';
    if (rnd_n(&r, 10) == 0)
        *fl++ = 'F';
    if (rnd_n(&r, 4) == 0)
        *fl++ = 'R';
    int seen = strcmp(m->folder, "") != 0 || rnd_n(&r, 5) != 0;
    if (seen)
        *fl++ = 'S';
    if (rnd_n(&r, 50) == 0)
        *fl++ = 'T';
    *fl = '\0';
    m->seen_dir_new = strcmp(m->folder, "") == 0 && !seen && rnd_n(&r, 2) == 0;
    m->crlf = rnd_n(&r, 20) == 0;

    /* Size: most 2-20 KB (skewed to the small end), a few 100-500 KB. */
    size_t roll = rnd_n(&r, 1000), size;
    if (roll < 2)
        size = 100 * 1024 + rnd_n(&r, 400 * 1024);
    else if (roll < 882)
        size = rnd_logu(&r, 1500, 3600);
    else
        size = rnd_logu(&r, 3600, 18000);

    struct buf *o = &m->raw;
    b_fmt(o, "Return-Path: <%s>\n", m->sender);
    b_fmt(o,
          "Received: from mx%zu.%s (mx%zu.%s [192.0.2.%zu])\n\tby mail.example.org with ESMTPS id %016" PRIx64
          "\n\tfor <%s@%s>; %s, %02d %s %04d %02d:%02d:%02d %+05d\n",
          rnd_n(&r, 9), fdom, rnd_n(&r, 9), fdom, 1 + rnd_n(&r, 250), rnd(&r), to, tdom, WDAY[tm.tm_wday],
          tm.tm_mday, MON[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, zone);
    b_fmt(o, "Date: %s, %02d %s %04d %02d:%02d:%02d %+05d\n", WDAY[tm.tm_wday], tm.tm_mday, MON[tm.tm_mon],
          tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, zone);
    b_fmt(o, "From: %c%s <%s>\n", from[0] - 32, from + 1, m->sender);
    b_fmt(o, "To: %s@%s\n", to, tdom);
    if (rnd_n(&r, 3) == 0)
        b_fmt(o, "Cc: %s@%s, %s@%s\n", PICK(&r, NAMES), PICK(&r, DOMAINS), PICK(&r, NAMES),
              PICK(&r, DOMAINS));
    b_fmt(o, "Message-ID: %s\n", m->mid);

    /* Subject. */
    size_t sk = rnd_n(&r, 100);
    enum subj_kind kind = sk < 45 ? SUBJ_ASCII : sk < 60 ? SUBJ_UTF8_B : sk < 72 ? SUBJ_UTF8_Q : SUBJ_GBK;
    const char *prefix = rnd_n(&r, 6) == 0 ? "Re: " : "";
    struct buf subj = {0};
    if (kind == SUBJ_ASCII)
        b_fmt(&subj, "%s #%zu", PICK(&r, ASCII_SUBJ), index);
    else if (kind == SUBJ_GBK)
        b_fmt(&subj, "%s%s 第%zu期", PICK(&r, ZH), rnd_n(&r, 3) == 0 ? PICK(&r, ZH) : "", index);
    else
        b_fmt(&subj, "%s #%zu", PICK(&r, UTF8_SUBJ), index);
    subject_header(o, prefix, subj.p, kind, gbk);
    b_str(&m->subject, prefix);
    b_add(&m->subject, subj.p, subj.len);
    free(subj.p);
    b_str(o, "MIME-Version: 1.0\n");

    size_t hdr = o->len, body = size > hdr + 200 ? size - hdr - 200 : 200;
    size_t shape = roll < 2 ? 3 : rnd_n(&r, 100);
    char boundary[64];
    snprintf(boundary, sizeof boundary, "=_gen_%016" PRIx64, rnd(&r));
    if (shape == 3 || (shape >= 85)) {
        /* multipart/mixed: text + attachment(s) */
        size_t text = roll < 2 ? 1500 + rnd_n(&r, 3000) : body / 4 + 100;
        size_t att = body > text ? body - text : 256;
        b_fmt(o,
              "Content-Type: multipart/mixed; boundary=\"%s\"\n\nThis is a multi-part message in MIME "
              "format.\n",
              boundary);
        b_fmt(o, "\n--%s\n", boundary);
        text_part(&r, o, text, gbk);
        b_fmt(o, "\n--%s\n", boundary);
        attachment_part(&r, o, att, index);
        b_fmt(o, "\n--%s--\n", boundary);
    } else if (shape < 35) {
        text_part(&r, o, body, gbk);
    } else if (shape < 55) {
        html_part(&r, o, body);
    } else {
        b_fmt(o, "Content-Type: multipart/alternative; boundary=\"%s\"\n\n", boundary);
        b_fmt(o, "--%s\n", boundary);
        text_part(&r, o, body * 2 / 5, gbk);
        b_fmt(o, "\n--%s\n", boundary);
        html_part(&r, o, body * 3 / 5);
        b_fmt(o, "\n--%s--\n", boundary);
    }
    if (m->crlf) {
        struct buf c = {0};
        b_reserve(&c, o->len + o->len / 20 + 16);
        for (size_t i = 0; i < o->len; i++) {
            if (o->p[i] == '\n')
                b_add(&c, "\r\n", 2);
            else
                b_add(&c, &o->p[i], 1);
        }
        free(o->p);
        *o = c;
    }
}

/* ------------------------------------------------------------ output */

static void sha256_hex(const void *p, size_t n, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) != 1)
        die("SHA-256 failed");
    for (unsigned i = 0; i < len; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* The message as an mboxrd entry: From_ line, quoted lines, empty line. */
static void write_mboxrd(FILE *fp, const struct msg *m)
{
    time_t t = (time_t)m->date;
    struct tm tm;
    gmtime_r(&t, &tm);
    fprintf(fp, "From %s %s %s %2d %02d:%02d:%02d %04d\n", m->sender, WDAY[tm.tm_wday], MON[tm.tm_mon],
            tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, tm.tm_year + 1900);
    const char *p = m->raw.p, *end = p + m->raw.len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl + 1 : end;
        const char *q = p;
        while (q < le && *q == '>')
            q++;
        if ((size_t)(le - q) >= 5 && memcmp(q, "From ", 5) == 0)
            fputc('>', fp);
        fwrite(p, 1, (size_t)(le - p), fp);
        p = le;
    }
    fputs(m->crlf ? "\r\n" : "\n", fp);
}

static void mkdir_p(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        die("mkdir %s: %s", path, strerror(errno));
}

static void write_maildir(const char *dir, const struct msg *m, size_t index, uint64_t seed)
{
    char sub[4096], path[4096 + 256];
    snprintf(sub, sizeof sub, "%s%s%s", dir, *m->folder ? "/" : "", m->folder);
    static const char *const parts[] = {"cur", "new", "tmp"};
    mkdir_p(sub);
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", sub, parts[i]);
        mkdir_p(path);
    }
    if (*m->folder) {
        snprintf(path, sizeof path, "%s/maildirfolder", sub);
        FILE *mf = fopen(path, "w");
        if (mf != NULL)
            fclose(mf);
    }
    if (m->seen_dir_new)
        snprintf(path, sizeof path, "%s/new/%" PRId64 ".M%zuP%" PRIu64 ".gen", sub, m->date, index, seed);
    else
        snprintf(path, sizeof path, "%s/cur/%" PRId64 ".M%zuP%" PRIu64 ".gen:2,%s", sub, m->date, index, seed,
                 m->flags);
    FILE *fp = fopen(path, "wbx");
    if (fp == NULL)
        die("cannot create %s: %s", path, strerror(errno));
    if (fwrite(m->raw.p, 1, m->raw.len, fp) != m->raw.len || fclose(fp) != 0)
        die("cannot write %s: %s", path, strerror(errno));
    struct timespec ts[2] = {{.tv_sec = (time_t)m->date}, {.tv_sec = (time_t)m->date}};
    if (utimensat(AT_FDCWD, path, ts, 0) != 0)
        die("cannot set the time of %s: %s", path, strerror(errno));
}

static const char *imap_flags(const char *letters, char *out, size_t cap)
{
    static const struct {
        char c;
        const char *name;
    } map[] = {
        {'D', "\\Draft"}, {'F', "\\Flagged"}, {'R', "\\Answered"}, {'S', "\\Seen"}, {'T', "\\Deleted"}};
    out[0] = '\0';
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strchr(letters, map[i].c) != NULL) {
            size_t l = strlen(out);
            snprintf(out + l, cap - l, "%s%s", l ? " " : "", map[i].name);
        }
    return out;
}

static void usage(FILE *fp)
{
    fputs(
        "usage: gen_mbox --count N --seed S [--dup-every K] [--manifest FILE] [--maildir DIR] [> out.mbox]\n",
        fp);
}

static uint64_t parse_u64(const char *opt, const char *s)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-')
        die("%s: not a number: %s", opt, s);
    return (uint64_t)v;
}

int main(int argc, char **argv)
{
    uint64_t count = 0, seed = 1, dup_every = 0;
    const char *manifest = NULL, *maildir = NULL;
    int have_count = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            usage(stderr);
            return 2;
        }
        if (strcmp(a, "--count") == 0) {
            count = parse_u64(a, argv[++i]);
            have_count = 1;
        } else if (strcmp(a, "--seed") == 0) {
            seed = parse_u64(a, argv[++i]);
        } else if (strcmp(a, "--dup-every") == 0) {
            dup_every = parse_u64(a, argv[++i]);
        } else if (strcmp(a, "--manifest") == 0) {
            manifest = argv[++i];
        } else if (strcmp(a, "--maildir") == 0) {
            maildir = argv[++i];
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!have_count) {
        usage(stderr);
        return 2;
    }
    if (dup_every == 1)
        die("--dup-every must be at least 2");
    iconv_t gbk = iconv_open("GBK", "UTF-8");
    if (gbk == (iconv_t)-1)
        die("iconv cannot convert UTF-8 to GBK on this system: %s", strerror(errno));

    FILE *out = stdout, *man = NULL;
    static char obuf[1 << 20];
    setvbuf(out, obuf, _IOFBF, sizeof obuf);
    if (manifest != NULL && (man = fopen(manifest, "w")) == NULL)
        die("cannot create %s: %s", manifest, strerror(errno));
    if (maildir != NULL) {
        static const char *const parts[] = {"cur", "new", "tmp"};
        char path[4096];
        mkdir_p(maildir);
        for (int i = 0; i < 3; i++) {
            snprintf(path, sizeof path, "%s/%s", maildir, parts[i]);
            mkdir_p(path);
        }
    }

    struct msg m = {0};
    size_t distinct = 0;
    for (uint64_t i = 0; i < count; i++) {
        size_t src;
        if (dup_every > 1 && (i + 1) % dup_every == 0 && distinct > 0) {
            /* an exact copy of an earlier message */
            struct rng r = {seed ^ (i * 0xd1b54a32d192ed03ULL)};
            src = rnd_n(&r, distinct);
        } else {
            src = distinct++;
        }
        gen_message(&m, seed, src, gbk);
        if (maildir != NULL)
            write_maildir(maildir, &m, (size_t)i, seed);
        else
            write_mboxrd(out, &m);
        if (man != NULL) {
            char hex[65];
            sha256_hex(m.raw.p, m.raw.len, hex);
            fprintf(man, "%" PRIu64 "\t%s\t%zu\t%s\t%s", i, m.mid, m.raw.len, hex, m.subject.p);
            if (maildir != NULL) {
                char fl[128];
                const char *folder = *m.folder ? m.folder + 1 : "INBOX";
                fputc('\t', man);
                for (const char *c = folder; *c; c++)
                    fputc(*c == '.' ? '/' : *c, man);
                fprintf(man, "\t%s", imap_flags(m.seen_dir_new ? "" : m.flags, fl, sizeof fl));
            }
            fputc('\n', man);
        }
    }
    if (fflush(out) != 0 || ferror(out))
        die("cannot write the output: %s", strerror(errno));
    if (man != NULL && fclose(man) != 0)
        die("cannot write %s: %s", manifest, strerror(errno));
    iconv_close(gbk);
    free(m.raw.p);
    free(m.subject.p);
    return 0;
}

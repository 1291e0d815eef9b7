/*
 * mailhubctl: the command-line client of the mailhub control API (/api/v1).
 *
 * One blocking libcurl easy handle (reused, so requests share a connection)
 * and jansson; it does not link the daemon's core.  Every command maps to one
 * or a few API calls; `--json` prints the API's JSON, tables otherwise.
 *
 * Secrets: passwords and secret account options are read from a prompt with
 * echo off, or one line from standard input, never from argv; they are wiped
 * from memory after use.  A token is printed only by the commands that exist
 * to print one (login, register, token).  Redirects are not followed, so a
 * token is never sent anywhere but --url; https certificates are verified
 * (--cacert FILE adds a private CA; there is no way to switch checks off).
 *
 * Uploads (import) are streamed from the file by a read callback; downloads
 * (message raw, export) are streamed to their destination by a write
 * callback, so memory does not grow with the size of the mail.
 *
 * Exit status: 0 ok; 1 the API refused the request (400/404/409/413...) or a
 * local file error; 2 usage error; 3 not authenticated or not allowed
 * (401/403); 4 cannot connect, or a server error (5xx); 5 verify (or export)
 * found damaged messages.
 */
#include "config.h"

#include <curl/curl.h>
#include <jansson.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define PROG "mailhubctl"
#define DEFAULT_URL "http://127.0.0.1:8025"
#define API_BASE "/api/v1"
#define MAX_JSON_BODY (64u << 20) /* a JSON answer larger than this is refused */
#define MAX_BATCH_LINE (4u << 20) /* one export header line */
#define MAX_SECRET_LINE 4096

enum {
    EXIT_API = 1,     /* the API refused the request, or a local file error */
    EXIT_USAGE = 2,   /* bad command line */
    EXIT_AUTH = 3,    /* 401/403, or no token */
    EXIT_CONNECT = 4, /* cannot connect, or 5xx */
    EXIT_DAMAGED = 5, /* verify/export found damaged messages */
};

/* ------------------------------------------------------------------------ */
/* Small utilities                                                           */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(PROG ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void oom(void)
{
    fputs(PROG ": out of memory\n", stderr);
    exit(EXIT_API);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom();
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom();
    return q;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = xmalloc(n);
    memcpy(p, s, n);
    return p;
}

/* Zero a secret before freeing it. */
static void wipe_free(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

struct buf {
    char *p;
    size_t len, cap;
};

static void buf_add(struct buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_adds(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

static void buf_addf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_addf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom();
    char *tmp = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(tmp, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf_add(b, tmp, (size_t)n);
    free(tmp);
}

static void buf_free(struct buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* A malloc'ed copy of the buffer's text ("" when empty). */
static char *buf_take(struct buf *b)
{
    char *s = b->p != NULL ? b->p : xstrdup("");
    b->p = NULL;
    b->len = b->cap = 0;
    return s;
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom();
    char *s = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* "12 B", "1.5 KiB", "30.0 MiB" */
static void fmt_size(double bytes, char *out, size_t cap)
{
    static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB"};
    if (bytes < 1024) {
        snprintf(out, cap, "%.0f B", bytes);
        return;
    }
    int u = -1;
    while (bytes >= 1024 && u < 3) {
        bytes /= 1024;
        u++;
    }
    snprintf(out, cap, "%.1f %s", bytes, unit[u]);
}

/* A positive decimal id. */
static int parse_id(const char *s, long long *out)
{
    if (s == NULL || *s == '\0' || strlen(s) > 18)
        return -1;
    long long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (v <= 0)
        return -1;
    *out = v;
    return 0;
}

/* A non-negative decimal count. */
static int parse_count(const char *s, long long *out)
{
    if (s != NULL && strcmp(s, "0") == 0) {
        *out = 0;
        return 0;
    }
    return parse_id(s, out);
}

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "2026-11-28T10:00:00Z", "...T10:00:00.123+08:00" -> time_t.  0 ok, -1 not understood. */
static int parse_iso8601(const char *s, time_t *out)
{
    int y, mo, d, h, mi, sec, n = 0;
    if (s == NULL || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6)
        return -1;
    const char *p = s + n;
    if (*p == '.')
        for (p++; isdigit((unsigned char)*p); p++)
            ;
    long off = 0;
    if (*p == '+' || *p == '-') {
        int oh, om, k = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &k) != 2)
            return -1;
        off = (oh * 60L + om) * 60L * (*p == '-' ? -1 : 1);
    } else if (*p != 'Z' && *p != '\0') {
        return -1;
    }
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = sec};
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *out = t - off;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* SHA-256 (FIPS 180-4), to check exported bytes against the stored hash      */

struct sha256 {
    uint32_t h[8];
    uint64_t bits;
    unsigned char blk[64];
    size_t n;
};

static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR32(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_init(struct sha256 *s)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, iv, sizeof iv);
    s->bits = 0;
    s->n = 0;
}

static void sha256_block(uint32_t h[8], const unsigned char *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
               (uint32_t)p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR32(w[i - 15], 7) ^ ROR32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR32(w[i - 2], 17) ^ ROR32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 =
            hh + (ROR32(e, 6) ^ ROR32(e, 11) ^ ROR32(e, 25)) + ((e & f) ^ (~e & g)) + sha256_k[i] + w[i];
        uint32_t t2 = (ROR32(a, 2) ^ ROR32(a, 13) ^ ROR32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
}

static void sha256_update(struct sha256 *s, const void *data, size_t len)
{
    const unsigned char *p = data;
    s->bits += (uint64_t)len * 8;
    if (s->n > 0) {
        size_t k = 64 - s->n < len ? 64 - s->n : len;
        memcpy(s->blk + s->n, p, k);
        s->n += k;
        p += k;
        len -= k;
        if (s->n < 64)
            return;
        sha256_block(s->h, s->blk);
        s->n = 0;
    }
    for (; len >= 64; p += 64, len -= 64)
        sha256_block(s->h, p);
    memcpy(s->blk, p, len);
    s->n = len;
}

static void sha256_hex(struct sha256 *s, char out[65])
{
    uint64_t bits = s->bits;
    s->blk[s->n++] = 0x80;
    if (s->n > 56) {
        memset(s->blk + s->n, 0, 64 - s->n);
        sha256_block(s->h, s->blk);
        s->n = 0;
    }
    memset(s->blk + s->n, 0, 56 - s->n);
    for (int i = 0; i < 8; i++)
        s->blk[56 + i] = (unsigned char)(bits >> (56 - 8 * i));
    sha256_block(s->h, s->blk);
    for (int i = 0; i < 8; i++)
        snprintf(out + 8 * i, 9, "%08x", (unsigned)s->h[i]);
}

/* ------------------------------------------------------------------------ */
/* The client's state                                                        */

struct ctl {
    char *url;       /* base, without a trailing '/' or /api/v1 */
    char *url_shown; /* the same without user:password@ */
    char *host;      /* for the plain-HTTP warning */
    int https;
    const char *token_arg, *token_file_arg, *cacert, *url_arg, *as_user;
    char *token;          /* loaded lazily */
    char *token_path;     /* the file it came from, if any */
    int token_default;    /* it came from ~/.config/mailhub/token */
    long long as_user_id; /* --user, resolved */
    int json, quiet;
    int stderr_tty;
    int warned_plain;
    CURL *curl;
    char errbuf[CURL_ERROR_SIZE];
};

/* ------------------------------------------------------------------------ */
/* Terminal and secret input                                                 */

/*
 * A signal arriving while echo is off must not leave the terminal without
 * echo.  The saved state is process-wide by nature (one terminal, one
 * thread); the handler only restores it and re-raises.
 */
static struct termios saved_tio;
static volatile sig_atomic_t echo_is_off;

static void restore_echo_and_die(int sig)
{
    if (echo_is_off)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* One line from fp without its line ending; NULL at EOF with nothing read.  *toolong set if over the limit.
 */
static char *read_line(FILE *fp, int *toolong)
{
    struct buf b = {0};
    int ch;
    int any = 0;
    *toolong = 0;
    while ((ch = getc(fp)) != EOF) {
        any = 1;
        if (ch == '\n')
            break;
        if (b.len >= MAX_SECRET_LINE) {
            *toolong = 1;
            continue;
        }
        char cc = (char)ch;
        buf_add(&b, &cc, 1);
    }
    if (!any) {
        buf_free(&b);
        return NULL;
    }
    if (b.len > 0 && b.p[b.len - 1] == '\r')
        b.p[--b.len] = '\0';
    return buf_take(&b);
}

/* Prompt on stderr and read one line from the terminal on stdin with echo off. */
static char *prompt_noecho(const char *prompt)
{
    struct termios tio;
    if (tcgetattr(STDIN_FILENO, &tio) != 0)
        return NULL;
    saved_tio = tio;
    struct sigaction sa = {.sa_handler = restore_echo_and_die}, old[4];
    static const int sigs[4] = {SIGINT, SIGTERM, SIGQUIT, SIGHUP};
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 4; i++)
        sigaction(sigs[i], &sa, &old[i]);
    fputs(prompt, stderr);
    fflush(stderr);
    tio.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
    echo_is_off = 1;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &tio);
    int toolong = 0;
    char *line = read_line(stdin, &toolong);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
    echo_is_off = 0;
    for (int i = 0; i < 4; i++)
        sigaction(sigs[i], &old[i], NULL);
    fputc('\n', stderr);
    if (toolong) {
        wipe_free(line);
        say("the answer is longer than %d bytes", MAX_SECRET_LINE);
        exit(EXIT_USAGE);
    }
    return line != NULL ? line : xstrdup("");
}

/*
 * A password or secret: one line from stdin (from_stdin), or a prompt with
 * echo off when stdin is a terminal (twice when confirm).  Exits with a usage
 * error when neither is possible.  The caller wipe_free()s the result.
 */
static char *read_secret(const char *what, int from_stdin, int confirm)
{
    if (from_stdin) {
        int toolong = 0;
        char *line = read_line(stdin, &toolong);
        if (line == NULL) {
            say("no %s on standard input", what);
            exit(EXIT_USAGE);
        }
        if (toolong) {
            wipe_free(line);
            say("the %s on standard input is longer than %d bytes", what, MAX_SECRET_LINE);
            exit(EXIT_USAGE);
        }
        return line;
    }
    if (!isatty(STDIN_FILENO)) {
        say("standard input is not a terminal to ask for the %s: use --password-stdin (or pipe it in)", what);
        exit(EXIT_USAGE);
    }
    char *p = xasprintf("%c%s: ", toupper((unsigned char)what[0]), what + 1);
    char *s = prompt_noecho(p);
    free(p);
    if (confirm && s[0] != '\0') {
        p = xasprintf("Repeat the %s: ", what);
        char *again = prompt_noecho(p);
        free(p);
        int same = strcmp(s, again) == 0;
        wipe_free(again);
        if (!same) {
            wipe_free(s);
            say("the two %ss differ", what);
            exit(EXIT_USAGE);
        }
    }
    return s;
}

/* ------------------------------------------------------------------------ */
/* Token handling                                                            */

static char *default_token_path(void)
{
    const char *home = getenv("HOME");
    if (home == NULL || *home == '\0')
        return NULL;
    return xasprintf("%s/.config/mailhub/token", home);
}

/* The first line of a token file; NULL with a message printed when unreadable or empty. */
static char *read_token_file(const char *path, int quiet)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        say("cannot read the token file %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (!quiet && fstat(fileno(fp), &st) == 0 && (st.st_mode & 077) != 0)
        say("warning: the token file %s is readable by others (chmod 600 it)", path);
    int toolong = 0;
    char *line = read_line(fp, &toolong);
    fclose(fp);
    if (line != NULL) { /* trim blanks around it */
        size_t n = strlen(line);
        while (n > 0 && isspace((unsigned char)line[n - 1]))
            line[--n] = '\0';
        size_t skip = strspn(line, " \t");
        memmove(line, line + skip, n - skip + 1);
    }
    if (line == NULL || line[0] == '\0' || toolong) {
        wipe_free(line);
        say("the token file %s holds no token", path);
        return NULL;
    }
    return line;
}

/*
 * The token, from --token, --token-file, $MAILHUB_TOKEN, $MAILHUB_TOKEN_FILE,
 * then ~/.config/mailhub/token: the command line beats the environment, so
 * that `--token-file admin.token` means the admin even with MAILHUB_TOKEN
 * set.  0, or an exit code with a message printed.
 */
static int load_token(struct ctl *c)
{
    if (c->token != NULL)
        return 0;
    const char *env = getenv("MAILHUB_TOKEN");
    if (c->token_arg != NULL && c->token_arg[0] != '\0') {
        c->token = xstrdup(c->token_arg);
        return 0;
    }
    const char *file = c->token_file_arg;
    if ((file == NULL || file[0] == '\0') && env != NULL && env[0] != '\0') {
        c->token = xstrdup(env);
        return 0;
    }
    if (file == NULL || file[0] == '\0')
        file = getenv("MAILHUB_TOKEN_FILE");
    if (file != NULL && file[0] != '\0') {
        c->token = read_token_file(file, c->quiet);
        if (c->token == NULL)
            return EXIT_AUTH;
        c->token_path = xstrdup(file);
        return 0;
    }
    char *def = default_token_path();
    if (def != NULL && access(def, F_OK) == 0) {
        c->token = read_token_file(def, c->quiet);
        if (c->token == NULL) {
            free(def);
            return EXIT_AUTH;
        }
        c->token_path = def;
        c->token_default = 1;
        return 0;
    }
    free(def);
    say("not logged in: use 'mailhubctl login NAME --save', --token, --token-file, or set MAILHUB_TOKEN");
    return EXIT_AUTH;
}

static int mkdir_p(const char *path, mode_t mode)
{
    char *p = xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, mode) != 0 && errno != EEXIST) {
            free(p);
            return -1;
        }
        *s = '/';
    }
    int rc = mkdir(p, mode) != 0 && errno != EEXIST ? -1 : 0;
    free(p);
    return rc;
}

/* Write the token to ~/.config/mailhub/token (0600, atomically).  0 or an exit code. */
static int save_token(struct ctl *c, const char *token)
{
    char *path = default_token_path();
    if (path == NULL) {
        say("cannot save the token: HOME is not set");
        return EXIT_API;
    }
    char *dir = xstrdup(path);
    *strrchr(dir, '/') = '\0';
    char *tmp = xasprintf("%s/.token.%ld", dir, (long)getpid());
    int rc = EXIT_API;
    if (mkdir_p(dir, 0700) != 0) {
        say("cannot create %s: %s", dir, strerror(errno));
        goto out;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        say("cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    size_t n = strlen(token);
    int ok = write(fd, token, n) == (ssize_t)n && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    int err = errno;
    if (close(fd) != 0 && ok) {
        ok = 0;
        err = errno;
    }
    if (!ok || rename(tmp, path) != 0) {
        if (ok)
            err = errno;
        say("cannot write %s: %s", path, strerror(err));
        unlink(tmp);
        goto out;
    }
    if (!c->quiet)
        say("token saved to %s", path);
    rc = 0;
out:
    free(tmp);
    free(dir);
    free(path);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* HTTP                                                                      */

struct resp {
    long status;
    struct buf body;     /* JSON answers and error bodies */
    char ctype[128];     /* Content-Type */
    char next_after[32]; /* Mailhub-Next-After */
    int complete;        /* Mailhub-Complete: 1/0, -1 absent */
};

/* Streaming sink for a 2xx body: 0, or an exit code (the message printed) to abort. */
typedef int (*sink_fn)(void *ud, const char *p, size_t n);

struct req {
    const char *method;    /* GET, POST, PATCH, DELETE */
    const char *path;      /* below /api/v1, with the query */
    const char *body;      /* JSON text, or NULL */
    int auth;              /* send the token */
    FILE *upload;          /* stream this file as the body (POST) */
    long long upload_size; /* -1: unknown (chunked) */
    const char *upload_type;
    int progress; /* show upload progress on a terminal */
    sink_fn sink;
    void *sink_ud;
};

struct xfer {
    struct ctl *c;
    const struct req *rq;
    struct resp *rs;
    int mode; /* 0 undecided, 1 buffer, 2 sink */
    int sink_rc;
    int too_big;
    int read_err;
    double t0, last_shown;
    int shown;
};

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;
    if (x->mode == 0) {
        long st = 0;
        curl_easy_getinfo(x->c->curl, CURLINFO_RESPONSE_CODE, &st);
        x->mode = x->rq->sink != NULL && st >= 200 && st < 300 ? 2 : 1;
    }
    if (x->mode == 2) {
        int rc = x->rq->sink(x->rq->sink_ud, p, n);
        if (rc != 0) {
            x->sink_rc = rc;
            return 0;
        }
        return n;
    }
    if (x->rs->body.len + n > MAX_JSON_BODY) {
        x->too_big = 1;
        return 0;
    }
    buf_add(&x->rs->body, p, n);
    return n;
}

static void copy_header_value(char *dst, size_t cap, const char *v, size_t n)
{
    while (n > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)v[n - 1]))
        n--;
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;
    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) { /* a new response (after 100 Continue, too) */
        x->rs->ctype[0] = '\0';
        x->rs->next_after[0] = '\0';
        x->rs->complete = -1;
        return n;
    }
    const char *colon = memchr(p, ':', n);
    if (colon == NULL)
        return n;
    size_t kl = (size_t)(colon - p);
    const char *v = colon + 1;
    size_t vl = n - kl - 1;
    char tmp[16];
    if (kl == 12 && strncasecmp(p, "Content-Type", kl) == 0) {
        copy_header_value(x->rs->ctype, sizeof x->rs->ctype, v, vl);
    } else if (kl == 18 && strncasecmp(p, "Mailhub-Next-After", kl) == 0) {
        copy_header_value(x->rs->next_after, sizeof x->rs->next_after, v, vl);
    } else if (kl == 16 && strncasecmp(p, "Mailhub-Complete", kl) == 0) {
        copy_header_value(tmp, sizeof tmp, v, vl);
        x->rs->complete = strcmp(tmp, "1") == 0 || strcasecmp(tmp, "true") == 0;
    }
    return n;
}

static size_t on_read(char *p, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = fread(p, 1, size * nmemb, x->rq->upload);
    if (n == 0 && ferror(x->rq->upload)) {
        x->read_err = errno ? errno : EIO;
        return CURL_READFUNC_ABORT;
    }
    return n;
}

static void show_upload(struct xfer *x, curl_off_t done, int final)
{
    char a[32], b[32], r[48];
    double el = now_mono() - x->t0;
    fmt_size((double)done, a, sizeof a);
    r[0] = '\0';
    if (el >= 0.2) {
        fmt_size((double)done / el, b, sizeof b);
        snprintf(r, sizeof r, ", %s/s", b);
    }
    if (x->rq->upload_size > 0) {
        fmt_size((double)x->rq->upload_size, b, sizeof b);
        fprintf(stderr, "\ruploading: %s of %s (%.0f%%)%s\033[K", a, b,
                100.0 * (double)done / (double)x->rq->upload_size, r);
    } else {
        fprintf(stderr, "\ruploading: %s%s\033[K", a, r);
    }
    if (final)
        fputc('\n', stderr);
    fflush(stderr);
    x->shown = 1;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    struct xfer *x = ud;
    double t = now_mono();
    if (ulnow > 0 && t - x->last_shown >= 0.25) {
        x->last_shown = t;
        show_upload(x, ulnow, 0);
    }
    return 0;
}

/* The failure of a transfer, said plainly.  Returns the exit code. */
static int transport_error(struct ctl *c, CURLcode rc)
{
    long oserr = 0;
    curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &oserr);
    const char *detail = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        say("cannot connect to %s: %s (is mailhubd running?)", c->url_shown,
            oserr != 0 ? strerror((int)oserr) : detail);
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
        say("cannot connect to %s: unknown host '%s'", c->url_shown, c->host);
        break;
    case CURLE_OPERATION_TIMEDOUT:
        say("%s did not answer in time: %s", c->url_shown, detail);
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
        say("TLS failure talking to %s: %s%s", c->url_shown, detail,
            rc == CURLE_PEER_FAILED_VERIFICATION ? " (for a private CA, use --cacert FILE)" : "");
        break;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
        say("the connection to %s broke: %s", c->url_shown, detail);
        break;
    default:
        say("%s: %s", c->url_shown, detail);
        break;
    }
    return EXIT_CONNECT;
}

static int is_loopback(const char *host)
{
    return strcasecmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
           strcmp(host, "[::1]") == 0 || strcmp(host, "::1") == 0;
}

/*
 * Perform one request.  0 when an answer arrived (any status; rs filled), or
 * an exit code with the message printed (transport failure, sink failure,
 * upload read error).
 */
static int http(struct ctl *c, const struct req *rq, struct resp *rs)
{
    memset(rs, 0, sizeof *rs);
    rs->complete = -1;
    if (rq->auth) {
        int rc = load_token(c);
        if (rc != 0)
            return rc;
        if (!c->https && !is_loopback(c->host) && !c->warned_plain && !c->quiet) {
            say("warning: sending the token over plain HTTP to %s; use https unless the network is trusted",
                c->host);
            c->warned_plain = 1;
        }
    }
    CURL *h = c->curl;
    curl_easy_reset(h);
    c->errbuf[0] = '\0';
    char *url = xasprintf("%s%s%s", c->url, API_BASE, rq->path);
    struct xfer x = {.c = c, .rq = rq, .rs = rs};
    struct curl_slist *hdr = NULL;
    char *auth = NULL;
    struct curl_slist *tmp;
#define ADD_HEADER(s)                                                                                        \
    do {                                                                                                     \
        tmp = curl_slist_append(hdr, (s));                                                                   \
        if (tmp == NULL)                                                                                     \
            oom();                                                                                           \
        hdr = tmp;                                                                                           \
    } while (0)
    ADD_HEADER("Accept: application/json");
    if (rq->auth) {
        auth = xasprintf("Authorization: Bearer %s", c->token);
        ADD_HEADER(auth);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L); /* a server silent for 2 minutes is gone */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 120L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (c->cacert != NULL)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
    curl_easy_setopt(h, CURLOPT_USERAGENT, PROG "/" PACKAGE_VERSION);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
    if (rq->upload != NULL) {
        ADD_HEADER(rq->upload_type != NULL ? rq->upload_type : "Content-Type: application/octet-stream");
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, &x);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->upload_size);
        if (rq->upload_size < 0)
            ADD_HEADER("Transfer-Encoding: chunked");
        if (rq->progress && c->stderr_tty && !c->quiet) {
            x.t0 = now_mono();
            curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
            curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
            curl_easy_setopt(h, CURLOPT_XFERINFODATA, &x);
        }
    } else if (rq->body != NULL) {
        ADD_HEADER("Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(rq->body));
    } else if (strcmp(rq->method, "POST") == 0) {
        ADD_HEADER("Content-Type:"); /* an empty body has no type */
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
    }
    if (strcmp(rq->method, "GET") != 0 && strcmp(rq->method, "POST") != 0)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
#undef ADD_HEADER
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    CURLcode rc = curl_easy_perform(h);
    if (x.shown) {
        curl_off_t up = 0;
        curl_easy_getinfo(h, CURLINFO_SIZE_UPLOAD_T, &up);
        show_upload(&x, up, 1);
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &rs->status);
    for (struct curl_slist *l = hdr; l != NULL; l = l->next) /* the Authorization line holds the token */
        explicit_bzero(l->data, strlen(l->data));
    curl_slist_free_all(hdr);
    wipe_free(auth);
    int ret = 0;
    if (x.sink_rc != 0) {
        ret = x.sink_rc;
    } else if (x.read_err != 0) {
        say("cannot read the upload: %s", strerror(x.read_err));
        ret = EXIT_API;
    } else if (x.too_big) {
        say("the answer from %s is larger than %u MiB; refusing it", c->url_shown, MAX_JSON_BODY >> 20);
        ret = EXIT_CONNECT;
    } else if (rc != CURLE_OK && !(rs->status >= 400 && rs->body.len > 0)) {
        /* (a server may answer, say 413, and close before the upload is done: that answer counts) */
        ret = transport_error(c, rc);
    }
    free(url);
    return ret;
}

/* Print an API error answer.  Returns the exit code for its status. */
static int api_error(struct ctl *c, const struct resp *rs)
{
    json_t *j = rs->body.len > 0 ? json_loadb(rs->body.p, rs->body.len, 0, NULL) : NULL;
    json_t *e = json_object_get(j, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *message = json_string_value(json_object_get(e, "message"));
    if (c->json && j != NULL) {
        json_dumpf(j, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
    }
    if (message != NULL || code != NULL)
        say("%s (%s)", message != NULL ? message : "request failed", code != NULL ? code : "?");
    else if (rs->status >= 300 && rs->status < 400)
        say("%s answered with a redirect (HTTP %ld); check --url", c->url_shown, rs->status);
    else
        say("%s answered HTTP %ld", c->url_shown, rs->status);
    json_decref(j);
    if (rs->status == 401 || rs->status == 403)
        return EXIT_AUTH;
    if (rs->status >= 400 && rs->status < 500)
        return EXIT_API;
    return EXIT_CONNECT;
}

/*
 * A JSON request.  0 with *out (NULL for an empty answer such as 204), or an
 * exit code with the message printed.  `body` may be NULL.
 */
static int api_call(struct ctl *c, const char *method, const char *path, json_t *body, int auth, json_t **out)
{
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    if (body != NULL && text == NULL)
        oom();
    struct req rq = {.method = method, .path = path, .body = text, .auth = auth};
    struct resp rs;
    int rc = http(c, &rq, &rs);
    wipe_free(text); /* it may hold a password */
    if (out != NULL)
        *out = NULL;
    if (rc == 0 && (rs.status < 200 || rs.status >= 300))
        rc = api_error(c, &rs);
    if (rc == 0 && rs.body.len > 0) {
        json_error_t jerr;
        json_t *j = json_loadb(rs.body.p, rs.body.len, 0, &jerr);
        if (j == NULL) {
            say("%s sent invalid JSON (HTTP %ld): %s", c->url_shown, rs.status, jerr.text);
            rc = EXIT_CONNECT;
        } else if (out != NULL) {
            *out = j;
        } else {
            json_decref(j);
        }
    }
    buf_free(&rs.body);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Paths with queries                                                        */

struct path {
    struct buf b;
    int has_query;
};

static void path_init(struct path *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void path_init(struct path *p, const char *fmt, ...)
{
    memset(p, 0, sizeof *p);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf_adds(&p->b, s);
    free(s);
}

static void path_param(struct ctl *c, struct path *p, const char *key, const char *value)
{
    char *esc = curl_easy_escape(c->curl, value, 0);
    if (esc == NULL)
        oom();
    buf_addf(&p->b, "%c%s=%s", p->has_query ? '&' : '?', key, esc);
    p->has_query = 1;
    curl_free(esc);
}

static void path_param_ll(struct path *p, const char *key, long long v)
{
    buf_addf(&p->b, "%c%s=%lld", p->has_query ? '&' : '?', key, v);
    p->has_query = 1;
}

/* ------------------------------------------------------------------------ */
/* JSON helpers and output                                                   */

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static long long jint(const json_t *o, const char *k, long long def)
{
    json_t *v = json_object_get(o, k);
    if (json_is_integer(v))
        return (long long)json_integer_value(v);
    if (json_is_real(v))
        return (long long)json_real_value(v);
    return def;
}

static int jtrue(const json_t *o, const char *k)
{
    return json_is_true(json_object_get(o, k));
}

/* A field as text for display: strings as is, numbers, yes/no, "-" for null/absent. */
static void jtext(const json_t *v, char *out, size_t cap)
{
    if (json_is_string(v))
        snprintf(out, cap, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(out, cap, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(out, cap, "%g", json_real_value(v));
    else if (json_is_true(v))
        snprintf(out, cap, "yes");
    else if (json_is_false(v))
        snprintf(out, cap, "no");
    else if (v == NULL || json_is_null(v))
        snprintf(out, cap, "-");
    else {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        snprintf(out, cap, "%s", s != NULL ? s : "?");
        free(s);
    }
}

static void print_json(const json_t *j)
{
    json_dumpf(j, stdout, JSON_INDENT(2));
    fputc('\n', stdout);
}

/*
 * Server-provided text (subjects, names) must not drive the terminal:
 * C0 controls, DEL and the UTF-8-encoded C1 controls become '?'.
 */
static void sanitize(char *s)
{
    unsigned char *p = (unsigned char *)s;
    for (; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            *p = '?';
        else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
            p[0] = '?';
            p[1] = '?';
            p++;
        }
    }
}

/* Decode one UTF-8 sequence at s; returns its length (1 for invalid bytes) and the code point. */
static size_t utf8_next(const unsigned char *s, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    int n = s[0] >= 0xf0 && s[0] < 0xf8 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2 : 0;
    if (n == 0) {
        *cp = 0xfffd;
        return 1;
    }
    uint32_t v = s[0] & (0x7f >> n);
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            *cp = 0xfffd;
            return 1;
        }
        v = v << 6 | (s[i] & 0x3f);
    }
    *cp = v;
    return (size_t)n;
}

/* Terminal columns of a code point: 0 for combining marks, 2 for East Asian wide ones. */
static int cp_width(uint32_t c)
{
    if ((c >= 0x0300 && c <= 0x036f) || (c >= 0x200b && c <= 0x200f) || (c >= 0xfe00 && c <= 0xfe0f))
        return 0;
    if ((c >= 0x1100 && c <= 0x115f) || (c >= 0x2e80 && c <= 0xa4cf) || (c >= 0xac00 && c <= 0xd7a3) ||
        (c >= 0xf900 && c <= 0xfaff) || (c >= 0xfe30 && c <= 0xfe4f) || (c >= 0xff00 && c <= 0xff60) ||
        (c >= 0xffe0 && c <= 0xffe6) || (c >= 0x1f300 && c <= 0x1faff) || (c >= 0x20000 && c <= 0x3fffd))
        return 2;
    return 1;
}

static size_t str_width(const char *s)
{
    size_t w = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        uint32_t cp;
        p += utf8_next(p, &cp);
        w += (size_t)cp_width(cp);
    }
    return w;
}

/* Cut s (in place) to at most max columns, ending in "..." when cut. */
static void str_clip(char *s, size_t max)
{
    if (max < 4 || str_width(s) <= max)
        return;
    size_t w = 0;
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        uint32_t cp;
        size_t n = utf8_next(p, &cp);
        int cw = cp_width(cp);
        if (w + (size_t)cw > max - 3)
            break;
        w += (size_t)cw;
        p += n;
    }
    memcpy(p, "...", 4);
}

struct table {
    size_t ncol, nrow, cap;
    char **cell; /* nrow * ncol, row 0 = headers */
};

static void tbl_init(struct table *t, size_t ncol)
{
    memset(t, 0, sizeof *t);
    t->ncol = ncol;
}

/* Add a row of ncol strings (copied, sanitized, clipped to `clip` columns when clip > 0). */
static void tbl_row(struct table *t, const char *const *cols, size_t clip)
{
    if (t->nrow == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->cell = xrealloc(t->cell, t->cap * t->ncol * sizeof *t->cell);
    }
    for (size_t i = 0; i < t->ncol; i++) {
        char *s = xstrdup(cols[i] != NULL ? cols[i] : "-");
        sanitize(s);
        if (clip > 0)
            str_clip(s, clip);
        t->cell[t->nrow * t->ncol + i] = s;
    }
    t->nrow++;
}

static void tbl_print(struct table *t)
{
    size_t *w = xmalloc(t->ncol * sizeof *w);
    for (size_t i = 0; i < t->ncol; i++) {
        w[i] = 0;
        for (size_t r = 0; r < t->nrow; r++) {
            size_t cw = str_width(t->cell[r * t->ncol + i]);
            if (cw > w[i])
                w[i] = cw;
        }
    }
    for (size_t r = 0; r < t->nrow; r++) {
        for (size_t i = 0; i < t->ncol; i++) {
            const char *s = t->cell[r * t->ncol + i];
            fputs(s, stdout);
            if (i + 1 < t->ncol)
                for (size_t k = str_width(s); k < w[i] + 2; k++)
                    fputc(' ', stdout);
        }
        fputc('\n', stdout);
    }
    for (size_t k = 0; k < t->nrow * t->ncol; k++)
        free(t->cell[k]);
    free(t->cell);
    free(w);
}

/* "key   value" lines. */
static void kv(const char *key, const char *value)
{
    char *v = xstrdup(value != NULL && value[0] != '\0' ? value : "-");
    sanitize(v);
    printf("%-14s%s\n", key, v);
    free(v);
}

static void kvj(const char *key, const json_t *o, const char *field)
{
    char t[1024];
    jtext(json_object_get(o, field), t, sizeof t);
    kv(key, t);
}

/* "2026-11-28T10:00:00Z" -> "2026-11-28 10:00" */
static void short_time(const char *iso, char *out, size_t cap)
{
    if (iso == NULL) {
        snprintf(out, cap, "-");
        return;
    }
    snprintf(out, cap, "%.16s", iso);
    char *t = strchr(out, 'T');
    if (t != NULL)
        *t = ' ';
}

/* ------------------------------------------------------------------------ */
/* Command-line parsing                                                      */

struct optdef {
    const char *name; /* long name without "--" */
    int arg;          /* takes a value */
};

struct args {
    int npos;
    char **pos;
    int nocc;
    int *occ_opt; /* index into the command's optdefs */
    const char **occ_val;
    const struct optdef *defs;
};

struct cmd;
typedef int (*cmd_fn)(struct ctl *c, const struct cmd *cmd, const struct args *a);

struct cmd {
    const char *group; /* "user", or NULL for a top-level command */
    const char *name;
    cmd_fn fn;
    const struct optdef *opts;
    int min_pos, max_pos; /* max -1: any */
    const char *synopsis;
    const char *help;
};

static void cmd_try_help(const struct cmd *cmd)
{
    if (cmd != NULL && cmd->group != NULL)
        fprintf(stderr, "Try '" PROG " %s %s --help'.\n", cmd->group, cmd->name);
    else if (cmd != NULL)
        fprintf(stderr, "Try '" PROG " %s --help'.\n", cmd->name);
    else
        fputs("Try '" PROG " --help'.\n", stderr);
}

static int usage_error(const struct cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const struct cmd *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(PROG ": ", stderr);
    if (cmd != NULL && cmd->group != NULL)
        fprintf(stderr, "%s %s: ", cmd->group, cmd->name);
    else if (cmd != NULL)
        fprintf(stderr, "%s: ", cmd->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    cmd_try_help(cmd);
    return EXIT_USAGE;
}

/*
 * Match argv[*i] against --name (taking the next argument as the value) or
 * --name=value.  1 matched (*val set for options with a value), 0 not, -1
 * a usage error (printed).
 */
static int match_long(const struct cmd *cmd, int argc, char **argv, int *i, const char *name, int has_arg,
                      const char **val)
{
    const char *a = argv[*i];
    size_t nl = strlen(name);
    if (strncmp(a, "--", 2) != 0 || strncmp(a + 2, name, nl) != 0)
        return 0;
    const char *rest = a + 2 + nl;
    if (*rest == '\0') {
        if (!has_arg)
            return 1;
        if (*i + 1 >= argc) {
            usage_error(cmd, "option '--%s' needs a value", name);
            return -1;
        }
        *val = argv[++*i];
        return 1;
    }
    if (*rest != '=')
        return 0;
    if (!has_arg) {
        usage_error(cmd, "option '--%s' takes no value", name);
        return -1;
    }
    *val = rest + 1;
    return 1;
}

/* The options every command accepts.  1 consumed, 0 not ours, -1 usage error. */
static int global_option(struct ctl *c, const struct cmd *cmd, int argc, char **argv, int *i)
{
    const char *v = NULL;
    int m;
    if (strcmp(argv[*i], "-q") == 0 || strcmp(argv[*i], "--quiet") == 0) {
        c->quiet = 1;
        return 1;
    }
    if ((m = match_long(cmd, argc, argv, i, "json", 0, &v)) != 0) {
        if (m > 0)
            c->json = 1;
        return m;
    }
    if ((m = match_long(cmd, argc, argv, i, "url", 1, &v)) != 0) {
        if (m > 0)
            c->url_arg = v;
        return m;
    }
    if ((m = match_long(cmd, argc, argv, i, "token-file", 1, &v)) != 0) {
        if (m > 0)
            c->token_file_arg = v;
        return m;
    }
    if ((m = match_long(cmd, argc, argv, i, "token", 1, &v)) != 0) {
        if (m > 0)
            c->token_arg = v;
        return m;
    }
    if ((m = match_long(cmd, argc, argv, i, "cacert", 1, &v)) != 0) {
        if (m > 0)
            c->cacert = v;
        return m;
    }
    if ((m = match_long(cmd, argc, argv, i, "user", 1, &v)) != 0) {
        if (m > 0)
            c->as_user = v;
        return m;
    }
    return 0;
}

static void print_cmd_help(const struct cmd *cmd)
{
    printf("Usage: " PROG " [OPTION]... %s\n%s", cmd->synopsis, cmd->help);
    printf("\nGlobal options (--url, --token, --token-file, --cacert, --user, --json, -q): see '" PROG
           " --help'.\n");
}

/*
 * Parse a command's arguments: its own options (anywhere), the global
 * options, positionals.  Prints help and exits 0 for --help.  0 or
 * EXIT_USAGE.
 */
static int parse_args(struct ctl *c, const struct cmd *cmd, int argc, char **argv, struct args *a)
{
    memset(a, 0, sizeof *a);
    a->defs = cmd->opts;
    a->pos = xmalloc(((size_t)argc + 1) * sizeof *a->pos);
    a->occ_opt = xmalloc(((size_t)argc + 1) * sizeof *a->occ_opt);
    a->occ_val = xmalloc(((size_t)argc + 1) * sizeof *a->occ_val);
    int only_pos = 0;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (only_pos || s[0] != '-' || strcmp(s, "-") == 0) {
            a->pos[a->npos++] = argv[i];
            continue;
        }
        if (strcmp(s, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            print_cmd_help(cmd);
            exit(0);
        }
        int m = 0;
        for (int k = 0; cmd->opts != NULL && cmd->opts[k].name != NULL; k++) {
            const char *v = NULL;
            m = match_long(cmd, argc, argv, &i, cmd->opts[k].name, cmd->opts[k].arg, &v);
            if (m < 0)
                return EXIT_USAGE;
            if (m > 0) {
                a->occ_opt[a->nocc] = k;
                a->occ_val[a->nocc++] = v;
                break;
            }
        }
        if (m > 0)
            continue;
        m = global_option(c, cmd, argc, argv, &i);
        if (m < 0)
            return EXIT_USAGE;
        if (m > 0)
            continue;
        /* a negative-looking positional, such as a phone number, is still an option here: use "--" */
        return usage_error(cmd, "unknown option '%s'", s);
    }
    if (a->npos < cmd->min_pos)
        return usage_error(cmd, "missing argument (usage: %s)", cmd->synopsis);
    if (cmd->max_pos >= 0 && a->npos > cmd->max_pos)
        return usage_error(cmd, "unexpected argument '%s'", a->pos[cmd->max_pos]);
    return 0;
}

static void args_free(struct args *a)
{
    free(a->pos);
    free(a->occ_opt);
    free(a->occ_val);
}

static int opt_index(const struct args *a, const char *name)
{
    for (int k = 0; a->defs != NULL && a->defs[k].name != NULL; k++)
        if (strcmp(a->defs[k].name, name) == 0)
            return k;
    return -1;
}

/* The last value of --name (or "" for a flag that was given), NULL when absent. */
static const char *opt(const struct args *a, const char *name)
{
    int k = opt_index(a, name);
    const char *v = NULL;
    for (int i = 0; i < a->nocc; i++)
        if (a->occ_opt[i] == k)
            v = a->occ_val[i] != NULL ? a->occ_val[i] : "";
    return v;
}

static int flag(const struct args *a, const char *name)
{
    return opt(a, name) != NULL;
}

/* ------------------------------------------------------------------------ */
/* Resolving names                                                           */

static int get_me(struct ctl *c, json_t **me)
{
    return api_call(c, "GET", "/me", NULL, 1, me);
}

/* ID or NAME of a user -> id.  0 or an exit code. */
static int resolve_user(struct ctl *c, const char *spec, long long *id)
{
    if (parse_id(spec, id) == 0)
        return 0;
    json_t *me = NULL;
    int rc = get_me(c, &me);
    if (rc != 0)
        return rc;
    const char *myname = jstr(me, "name");
    if (myname != NULL && strcmp(myname, spec) == 0) {
        *id = jint(me, "id", 0);
        json_decref(me);
        return 0;
    }
    json_decref(me);
    json_t *list = NULL;
    rc = api_call(c, "GET", "/users", NULL, 1, &list);
    if (rc != 0)
        return rc;
    json_t *users = json_object_get(list, "users"), *u;
    size_t i;
    rc = EXIT_API;
    json_array_foreach(users, i, u)
    {
        const char *n = jstr(u, "name");
        if (n != NULL && strcmp(n, spec) == 0) {
            *id = jint(u, "id", 0);
            rc = 0;
            break;
        }
    }
    json_decref(list);
    if (rc != 0)
        say("no user named '%s' (not_found)", spec);
    return rc;
}

/* Add ?user=<id> for --user (admins acting on another user's data).  0 or an exit code. */
static int path_as_user(struct ctl *c, struct path *p)
{
    if (c->as_user == NULL)
        return 0;
    if (c->as_user_id == 0) {
        int rc = resolve_user(c, c->as_user, &c->as_user_id);
        if (rc != 0)
            return rc;
    }
    path_param_ll(p, "user", c->as_user_id);
    return 0;
}

/* ID or NAME of an account -> id (and the list entry when out != NULL).  0 or an exit code. */
static int resolve_account(struct ctl *c, const char *spec, long long *id)
{
    if (parse_id(spec, id) == 0)
        return 0;
    struct path p;
    path_init(&p, "/accounts");
    int rc = path_as_user(c, &p);
    json_t *list = NULL;
    if (rc == 0)
        rc = api_call(c, "GET", p.b.p, NULL, 1, &list);
    buf_free(&p.b);
    if (rc != 0)
        return rc;
    json_t *accounts = json_object_get(list, "accounts"), *acc;
    size_t i;
    rc = EXIT_API;
    json_array_foreach(accounts, i, acc)
    {
        const char *n = jstr(acc, "name");
        if (n != NULL && strcmp(n, spec) == 0) {
            *id = jint(acc, "id", 0);
            rc = 0;
            break;
        }
    }
    json_decref(list);
    if (rc != 0)
        say("no account named '%s' (not_found)", spec);
    return rc;
}

/* GET /accounts/{id}.  0 or an exit code. */
static int get_account(struct ctl *c, long long id, json_t **out)
{
    struct path p;
    path_init(&p, "/accounts/%lld", id);
    int rc = path_as_user(c, &p);
    if (rc == 0)
        rc = api_call(c, "GET", p.b.p, NULL, 1, out);
    buf_free(&p.b);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Users                                                                     */

static void print_user(const json_t *u)
{
    char t[256], a[32], b[32];
    kvj("id", u, "id");
    kvj("name", u, "name");
    kv("admin", jtrue(u, "admin") ? "yes" : "no");
    kvj("phone", u, "phone");
    kvj("email", u, "email");
    kvj("created", u, "created");
    json_t *q = json_object_get(u, "quota");
    if (json_is_object(q)) {
        long long alloc = jint(q, "allocation", 0), use = jint(q, "usage", 0);
        fmt_size((double)use, a, sizeof a);
        fmt_size((double)alloc, b, sizeof b);
        snprintf(t, sizeof t, "%s used of %s (%.0f%%), %lld messages, %lld extensions", a, b,
                 alloc > 0 ? 100.0 * (double)use / (double)alloc : 0.0, jint(q, "messages", 0),
                 jint(q, "extensions", 0));
        kv("quota", t);
    }
}

/* Show a user answer (or its JSON). */
static int show_user(struct ctl *c, json_t *u)
{
    if (c->json)
        print_json(u);
    else
        print_user(u);
    json_decref(u);
    return 0;
}

static int cmd_health(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    json_t *j = NULL;
    int rc = api_call(c, "GET", "/health", NULL, 0, &j);
    if (rc != 0)
        return rc;
    const char *st = jstr(j, "status");
    if (c->json)
        print_json(j);
    else if (!c->quiet)
        printf("%s: %s (mailhubd %s)\n", c->url_shown, st != NULL ? st : "?",
               jstr(j, "version") != NULL ? jstr(j, "version") : "?");
    rc = st != NULL && strcmp(st, "ok") == 0 ? 0 : EXIT_CONNECT;
    json_decref(j);
    return rc;
}

/* Print a token answer: the token alone (scripts capture it), or the JSON.  Saves it with --save. */
static int emit_token(struct ctl *c, json_t *j, int save)
{
    const char *tok = jstr(j, "token");
    if (tok == NULL) {
        say("the server's answer holds no token");
        return EXIT_CONNECT;
    }
    if (c->json)
        print_json(j);
    if (save)
        return save_token(c, tok);
    if (!c->json)
        printf("%s\n", tok);
    return 0;
}

static int cmd_register(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    json_t *body = json_pack("{s:s}", "name", a->pos[0]);
    if (body == NULL)
        return usage_error(cmd, "the name is not valid UTF-8");
    if (opt(a, "phone") != NULL)
        json_object_set_new(body, "phone", json_string(opt(a, "phone")));
    if (opt(a, "email") != NULL)
        json_object_set_new(body, "email", json_string(opt(a, "email")));
    char *pw = read_secret("password", flag(a, "password-stdin"), 1);
    json_object_set_new(body, "password", json_string(pw));
    wipe_free(pw);
    json_t *j = NULL;
    int rc = api_call(c, "POST", "/register", body, 0, &j);
    json_decref(body);
    if (rc == 0) {
        rc = emit_token(c, j, flag(a, "save"));
        if (rc == 0 && !c->quiet && !c->json)
            say("registered user '%s' (id %lld)", a->pos[0], jint(json_object_get(j, "user"), "id", 0));
    }
    json_decref(j);
    return rc;
}

static int cmd_login(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    json_t *body = json_pack("{s:s}", "name", a->pos[0]);
    if (body == NULL)
        return usage_error(cmd, "the name is not valid UTF-8");
    const char *label = opt(a, "label");
    char host[256] = "";
    if (label == NULL && gethostname(host, sizeof host - 1) == 0) {
        char *l = xasprintf("mailhubctl@%s", host);
        json_object_set_new(body, "label", json_string(l));
        free(l);
    } else if (label != NULL) {
        json_object_set_new(body, "label", json_string(label));
    }
    char *pw = read_secret("password", flag(a, "password-stdin"), 0);
    json_object_set_new(body, "password", json_string(pw));
    wipe_free(pw);
    json_t *j = NULL;
    int rc = api_call(c, "POST", "/login", body, 0, &j);
    json_decref(body);
    if (rc == 0)
        rc = emit_token(c, j, flag(a, "save"));
    json_decref(j);
    return rc;
}

static int cmd_logout(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    int rc = api_call(c, "POST", "/logout", NULL, 1, NULL);
    if (rc != 0)
        return rc;
    if (c->token_default && c->token_path != NULL) {
        if (unlink(c->token_path) != 0)
            say("warning: cannot remove %s: %s", c->token_path, strerror(errno));
        else if (!c->quiet)
            say("removed %s", c->token_path);
    }
    if (!c->quiet)
        say("logged out (the token is revoked)");
    return 0;
}

static int cmd_whoami(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    json_t *u = NULL;
    int rc = get_me(c, &u);
    return rc != 0 ? rc : show_user(c, u);
}

static int cmd_token(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    json_t *body = json_object();
    if (opt(a, "label") != NULL)
        json_object_set_new(body, "label", json_string(opt(a, "label")));
    json_t *j = NULL;
    int rc = api_call(c, "POST", "/tokens", body, 1, &j);
    json_decref(body);
    if (rc == 0)
        rc = emit_token(c, j, flag(a, "save"));
    json_decref(j);
    return rc;
}

static int cmd_user_list(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    json_t *j = NULL;
    int rc = api_call(c, "GET", "/users", NULL, 1, &j);
    if (rc != 0)
        return rc;
    if (c->json) {
        print_json(j);
    } else {
        struct table t;
        tbl_init(&t, 8);
        static const char *const hdr[8] = {"ID",    "NAME", "ADMIN",      "PHONE",
                                           "EMAIL", "USED", "ALLOCATION", "MESSAGES"};
        tbl_row(&t, hdr, 0);
        json_t *u;
        size_t i;
        json_array_foreach(json_object_get(j, "users"), i, u)
        {
            char id[24], ph[64], em[320], used[32], alloc[32], msgs[24];
            json_t *q = json_object_get(u, "quota");
            jtext(json_object_get(u, "id"), id, sizeof id);
            jtext(json_object_get(u, "phone"), ph, sizeof ph);
            jtext(json_object_get(u, "email"), em, sizeof em);
            fmt_size((double)jint(q, "usage", 0), used, sizeof used);
            fmt_size((double)jint(q, "allocation", 0), alloc, sizeof alloc);
            snprintf(msgs, sizeof msgs, "%lld", jint(q, "messages", 0));
            const char *row[8] = {id,  jstr(u, "name"), jtrue(u, "admin") ? "yes" : "no", ph, em, used, alloc,
                                  msgs};
            tbl_row(&t, row, 40);
        }
        tbl_print(&t);
    }
    json_decref(j);
    return 0;
}

static int cmd_user_add(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    json_t *body = json_pack("{s:s}", "name", a->pos[0]);
    if (body == NULL)
        return usage_error(cmd, "the name is not valid UTF-8");
    if (flag(a, "admin"))
        json_object_set_new(body, "admin", json_true());
    if (opt(a, "phone") != NULL)
        json_object_set_new(body, "phone", json_string(opt(a, "phone")));
    if (opt(a, "email") != NULL)
        json_object_set_new(body, "email", json_string(opt(a, "email")));
    /* A password from stdin, or asked on a terminal (empty: none); none otherwise. */
    if (flag(a, "password-stdin") || isatty(STDIN_FILENO)) {
        char *pw = read_secret(flag(a, "password-stdin") ? "password" : "password (empty for none)",
                               flag(a, "password-stdin"), 1);
        if (pw[0] != '\0')
            json_object_set_new(body, "password", json_string(pw));
        wipe_free(pw);
    }
    json_t *u = NULL;
    int rc = api_call(c, "POST", "/users", body, 1, &u);
    json_decref(body);
    return rc != 0 ? rc : show_user(c, u);
}

static int cmd_user_show(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    long long id;
    int rc = resolve_user(c, a->pos[0], &id);
    if (rc != 0)
        return rc;
    char path[64];
    snprintf(path, sizeof path, "/users/%lld", id);
    json_t *u = NULL;
    rc = api_call(c, "GET", path, NULL, 1, &u);
    return rc != 0 ? rc : show_user(c, u);
}

/* PATCH /users/{id} with body; shows the result. */
static int patch_user(struct ctl *c, long long id, json_t *body)
{
    char path[64];
    snprintf(path, sizeof path, "/users/%lld", id);
    json_t *u = NULL;
    int rc = api_call(c, "PATCH", path, body, 1, &u);
    json_decref(body);
    if (rc != 0)
        return rc;
    if (c->quiet && !c->json) {
        json_decref(u);
        return 0;
    }
    return show_user(c, u);
}

static int cmd_user_set(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    if (flag(a, "phone") && flag(a, "no-phone"))
        return usage_error(cmd, "--phone and --no-phone exclude each other");
    if (flag(a, "email") && flag(a, "no-email"))
        return usage_error(cmd, "--email and --no-email exclude each other");
    if (flag(a, "admin") && flag(a, "no-admin"))
        return usage_error(cmd, "--admin and --no-admin exclude each other");
    if (flag(a, "password") && flag(a, "password-stdin"))
        return usage_error(cmd, "--password and --password-stdin exclude each other");
    json_t *body = json_object();
    if (opt(a, "phone") != NULL)
        json_object_set_new(body, "phone", json_string(opt(a, "phone")));
    if (flag(a, "no-phone"))
        json_object_set_new(body, "phone", json_null());
    if (opt(a, "email") != NULL)
        json_object_set_new(body, "email", json_string(opt(a, "email")));
    if (flag(a, "no-email"))
        json_object_set_new(body, "email", json_null());
    if (flag(a, "admin") || flag(a, "no-admin"))
        json_object_set_new(body, "admin", json_boolean(flag(a, "admin")));
    if (json_object_size(body) == 0 && !flag(a, "password") && !flag(a, "password-stdin")) {
        json_decref(body);
        return usage_error(cmd, "nothing to change");
    }
    long long id;
    int rc = resolve_user(c, a->pos[0], &id);
    if (rc != 0) {
        json_decref(body);
        return rc;
    }
    if (flag(a, "password") || flag(a, "password-stdin")) {
        char *pw = read_secret("new password", flag(a, "password-stdin"), 1);
        json_object_set_new(body, "password", json_string(pw));
        wipe_free(pw);
    }
    return patch_user(c, id, body);
}

static int cmd_user_delete(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    long long id;
    int rc = resolve_user(c, a->pos[0], &id);
    if (rc != 0)
        return rc;
    char path[64];
    snprintf(path, sizeof path, "/users/%lld", id);
    rc = api_call(c, "DELETE", path, NULL, 1, NULL);
    if (rc == 0 && !c->quiet)
        say("deleted user %lld with all their data", id);
    return rc;
}

/* phone/email set|clear on the token's own user. */
static int set_own(struct ctl *c, const char *field, const char *value)
{
    json_t *me = NULL;
    int rc = get_me(c, &me);
    if (rc != 0)
        return rc;
    long long id = jint(me, "id", 0);
    json_decref(me);
    json_t *body = json_object();
    json_object_set_new(body, field, value != NULL ? json_string(value) : json_null());
    return patch_user(c, id, body);
}

static int cmd_phone_set(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    return set_own(c, "phone", a->pos[0]);
}

static int cmd_phone_clear(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    return set_own(c, "phone", NULL);
}

static int cmd_email_set(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    return set_own(c, "email", a->pos[0]);
}

static int cmd_email_clear(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    return set_own(c, "email", NULL);
}

static int cmd_quota(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    long long id;
    int rc;
    if (a->npos > 0) {
        rc = resolve_user(c, a->pos[0], &id);
    } else {
        json_t *me = NULL;
        rc = get_me(c, &me);
        id = jint(me, "id", 0);
        json_decref(me);
    }
    if (rc != 0)
        return rc;
    char path[64];
    snprintf(path, sizeof path, "/users/%lld/quota", id);
    json_t *q = NULL;
    rc = api_call(c, "GET", path, NULL, 1, &q);
    if (rc != 0)
        return rc;
    if (c->json) {
        print_json(q);
    } else {
        char s1[32], s2[32], s3[32], t[128];
        long long alloc = jint(q, "allocation", 0), use = jint(q, "usage", 0);
        fmt_size((double)alloc, s1, sizeof s1);
        fmt_size((double)use, s2, sizeof s2);
        fmt_size((double)(alloc > use ? alloc - use : 0), s3, sizeof s3);
        kv("allocation", s1);
        snprintf(t, sizeof t, "%s (%.1f%%)", s2, alloc > 0 ? 100.0 * (double)use / (double)alloc : 0.0);
        kv("usage", t);
        kv("free", s3);
        kvj("messages", q, "messages");
        json_t *hist = json_object_get(q, "history"), *h;
        size_t i;
        if (json_array_size(hist) > 0) {
            printf("\n");
            struct table tb;
            tbl_init(&tb, 3);
            static const char *const hdr[3] = {"TIME", "ALLOCATION", "REASON"};
            tbl_row(&tb, hdr, 0);
            json_array_foreach(hist, i, h)
            {
                char tm[32], al[32], reason[256];
                short_time(jstr(h, "time"), tm, sizeof tm);
                fmt_size((double)jint(h, "allocation", 0), al, sizeof al);
                jtext(json_object_get(h, "reason"), reason, sizeof reason);
                const char *row[3] = {tm, al, reason};
                tbl_row(&tb, row, 60);
            }
            tbl_print(&tb);
        }
    }
    json_decref(q);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Accounts                                                                  */

/* Sum of the folders' messages and bytes. */
static void account_totals(const json_t *acc, long long *msgs, long long *bytes)
{
    json_t *f;
    size_t i;
    *msgs = *bytes = 0;
    json_array_foreach(json_object_get(acc, "folders"), i, f)
    {
        *msgs += jint(f, "messages", 0);
        *bytes += jint(f, "bytes", 0);
    }
}

/* One line for a provider's progress object: whatever numbers it holds. */
static void progress_text(const json_t *p, char *out, size_t cap)
{
    struct buf b = {0};
    const char *st = jstr(p, "state");
    buf_adds(&b, st != NULL ? st : "running");
    long long done = jint(p, "done_bytes", jint(p, "bytes_done", -1));
    long long total = jint(p, "total_bytes", jint(p, "bytes_total", -1));
    char s1[32], s2[32];
    if (done >= 0) {
        fmt_size((double)done, s1, sizeof s1);
        if (total > 0) {
            fmt_size((double)total, s2, sizeof s2);
            buf_addf(&b, ", %s of %s (%.0f%%)", s1, s2, 100.0 * (double)done / (double)total);
        } else {
            buf_addf(&b, ", %s", s1);
        }
    }
    static const char *const counts[] = {"messages", "new", "duplicates", "failed"};
    for (size_t i = 0; i < sizeof counts / sizeof *counts; i++) {
        long long v = jint(p, counts[i], -1);
        if (v >= 0 && (v > 0 || i == 0))
            buf_addf(&b, ", %lld %s", v, counts[i]);
    }
    json_t *rate = json_object_get(p, "rate_bps");
    if (rate == NULL)
        rate = json_object_get(p, "rate");
    if (json_is_number(rate) && json_number_value(rate) > 0) {
        fmt_size(json_number_value(rate), s1, sizeof s1);
        buf_addf(&b, ", %s/s", s1);
    }
    long long eta = jint(p, "eta_s", -1);
    if (eta >= 0 && st != NULL && (strcmp(st, "importing") == 0 || strcmp(st, "starting") == 0))
        buf_addf(&b, ", %lld s left", eta);
    const char *err = jstr(p, "error");
    if (err != NULL)
        buf_addf(&b, ", error: %s", err);
    snprintf(out, cap, "%s", b.p);
    buf_free(&b);
    sanitize(out);
}

static void print_account(const json_t *acc)
{
    char t[1024];
    kvj("id", acc, "id");
    kvj("name", acc, "name");
    kvj("provider", acc, "provider");
    kvj("status", acc, "status");
    kv("paused", jtrue(acc, "paused") ? "yes" : "no");
    kvj("origin", acc, "origin");
    kvj("created", acc, "created");
    json_t *p = json_object_get(acc, "progress");
    if (json_is_object(p)) {
        progress_text(p, t, sizeof t);
        kv("progress", t);
    }
    const char *k;
    json_t *v;
    if (json_object_size(json_object_get(acc, "settings")) > 0)
        printf("settings\n");
    json_object_foreach(json_object_get(acc, "settings"), k, v)
    {
        char key[256];
        snprintf(key, sizeof key, "  %s", k);
        jtext(v, t, sizeof t);
        kv(key, t);
    }
    json_t *secrets = json_object_get(acc, "secrets");
    if (json_array_size(secrets) > 0) {
        struct buf b = {0};
        size_t i;
        json_array_foreach(secrets, i, v)
        {
            if (json_is_string(v))
                buf_addf(&b, "%s%s", b.len ? ", " : "", json_string_value(v));
        }
        kv("secrets", b.p != NULL ? b.p : "-");
        buf_free(&b);
    }
    json_t *folders = json_object_get(acc, "folders"), *f;
    size_t i;
    if (json_array_size(folders) > 0) {
        printf("\n");
        struct table tb;
        tbl_init(&tb, 5);
        static const char *const hdr[5] = {"FOLDER", "ID", "MESSAGES", "SIZE", "UIDVALIDITY"};
        tbl_row(&tb, hdr, 0);
        json_array_foreach(folders, i, f)
        {
            char id[24], n[24], sz[32], uv[24];
            jtext(json_object_get(f, "id"), id, sizeof id);
            jtext(json_object_get(f, "messages"), n, sizeof n);
            fmt_size((double)jint(f, "bytes", 0), sz, sizeof sz);
            jtext(json_object_get(f, "uidvalidity"), uv, sizeof uv);
            const char *row[5] = {jstr(f, "name"), id, n, sz, uv};
            tbl_row(&tb, row, 60);
        }
        tbl_print(&tb);
    }
}

static int show_account(struct ctl *c, json_t *acc)
{
    if (c->json)
        print_json(acc);
    else
        print_account(acc);
    json_decref(acc);
    return 0;
}

static int cmd_account_list(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    struct path p;
    path_init(&p, "/accounts");
    int rc = path_as_user(c, &p);
    json_t *j = NULL;
    if (rc == 0)
        rc = api_call(c, "GET", p.b.p, NULL, 1, &j);
    buf_free(&p.b);
    if (rc != 0)
        return rc;
    if (c->json) {
        print_json(j);
    } else {
        struct table t;
        tbl_init(&t, 7);
        static const char *const hdr[7] = {"ID", "NAME", "PROVIDER", "STATUS", "PAUSED", "MESSAGES", "SIZE"};
        tbl_row(&t, hdr, 0);
        json_t *acc;
        size_t i;
        json_array_foreach(json_object_get(j, "accounts"), i, acc)
        {
            char id[24], st[64], n[24], sz[32];
            long long msgs, bytes;
            account_totals(acc, &msgs, &bytes);
            jtext(json_object_get(acc, "id"), id, sizeof id);
            jtext(json_object_get(acc, "status"), st, sizeof st);
            snprintf(n, sizeof n, "%lld", msgs);
            fmt_size((double)bytes, sz, sizeof sz);
            const char *row[7] = {
                id, jstr(acc, "name"), jstr(acc, "provider"), st, jtrue(acc, "paused") ? "yes" : "no", n, sz};
            tbl_row(&t, row, 40);
        }
        tbl_print(&t);
    }
    json_decref(j);
    return 0;
}

/* Set settings[KEY] = value, where KEY may be dotted ("smtp.host") for nested objects. */
static int settings_put(json_t *settings, const char *key, json_t *value)
{
    json_t *obj = settings;
    char *k = xstrdup(key);
    char *s = k, *dot;
    while ((dot = strchr(s, '.')) != NULL) {
        *dot = '\0';
        if (*s == '\0')
            break;
        json_t *sub = json_object_get(obj, s);
        if (!json_is_object(sub)) {
            sub = json_object();
            json_object_set_new(obj, s, sub);
        }
        obj = sub;
        s = dot + 1;
    }
    int rc = *s == '\0' ? -1 : json_object_set_new(obj, s, value);
    if (*s == '\0')
        json_decref(value);
    free(k);
    return rc;
}

static void settings_del(json_t *settings, const char *key)
{
    json_t *obj = settings;
    char *k = xstrdup(key);
    char *s = k, *dot;
    while ((dot = strchr(s, '.')) != NULL && obj != NULL) {
        *dot = '\0';
        obj = json_object_get(obj, s);
        s = dot + 1;
    }
    if (json_is_object(obj))
        json_object_del(obj, s);
    free(k);
}

/*
 * Apply --set KEY=VALUE (a string), --set-json KEY=JSON, --unset KEY and
 * --secret KEY (asked, or one line each from stdin) in order.  0 or an exit code.
 */
static int apply_settings(const struct cmd *cmd, const struct args *a, json_t *settings)
{
    int iset = opt_index(a, "set"), ijson = opt_index(a, "set-json"), iunset = opt_index(a, "unset"),
        isecret = opt_index(a, "secret");
    for (int i = 0; i < a->nocc; i++) {
        int k = a->occ_opt[i];
        const char *v = a->occ_val[i];
        if (k == iset || k == ijson) {
            const char *eq = strchr(v, '=');
            if (eq == NULL || eq == v)
                return usage_error(cmd, "--%s wants KEY=VALUE, got '%s'", a->defs[k].name, v);
            char *key = xasprintf("%.*s", (int)(eq - v), v);
            json_t *val;
            if (k == iset) {
                val = json_string(eq + 1);
            } else {
                json_error_t jerr;
                val = json_loads(eq + 1, JSON_DECODE_ANY, &jerr);
                if (val == NULL) {
                    int rc = usage_error(cmd, "--set-json %s: %s", key, jerr.text);
                    free(key);
                    return rc;
                }
            }
            if (val == NULL || settings_put(settings, key, val) != 0) {
                int rc = usage_error(cmd, "cannot set '%s' (not UTF-8, or a bad key)", key);
                free(key);
                return rc;
            }
            free(key);
        } else if (k == iunset) {
            settings_del(settings, v);
        } else if (k == isecret) {
            char *what = xasprintf("value of %s", v);
            char *val = read_secret(what, !isatty(STDIN_FILENO), 0);
            free(what);
            json_t *js = json_string(val);
            wipe_free(val);
            if (js == NULL || settings_put(settings, v, js) != 0)
                return usage_error(cmd, "cannot set secret '%s' (not UTF-8, or a bad key)", v);
        }
    }
    return 0;
}

static int cmd_account_add(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    const char *provider = opt(a, "provider");
    if (provider == NULL || provider[0] == '\0')
        return usage_error(cmd, "--provider is required");
    json_t *settings = json_object();
    int rc = apply_settings(cmd, a, settings);
    if (rc != 0) {
        json_decref(settings);
        return rc;
    }
    json_t *body =
        json_pack("{s:s, s:s, s:o}", "name", a->pos[0], "provider", provider, "settings", settings);
    if (body == NULL)
        return usage_error(cmd, "the name or provider is not valid UTF-8");
    if (flag(a, "paused"))
        json_object_set_new(body, "paused", json_true());
    struct path p;
    path_init(&p, "/accounts");
    rc = path_as_user(c, &p);
    json_t *acc = NULL;
    if (rc == 0)
        rc = api_call(c, "POST", p.b.p, body, 1, &acc);
    buf_free(&p.b);
    json_decref(body);
    return rc != 0 ? rc : show_account(c, acc);
}

static int cmd_account_show(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    long long id;
    int rc = resolve_account(c, a->pos[0], &id);
    json_t *acc = NULL;
    if (rc == 0)
        rc = get_account(c, id, &acc);
    return rc != 0 ? rc : show_account(c, acc);
}

static int patch_account(struct ctl *c, long long id, json_t *body)
{
    struct path p;
    path_init(&p, "/accounts/%lld", id);
    int rc = path_as_user(c, &p);
    json_t *acc = NULL;
    if (rc == 0)
        rc = api_call(c, "PATCH", p.b.p, body, 1, &acc);
    buf_free(&p.b);
    json_decref(body);
    if (rc != 0)
        return rc;
    if (acc == NULL || (c->quiet && !c->json)) {
        json_decref(acc);
        return 0;
    }
    return show_account(c, acc);
}

static int cmd_account_set(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    if (a->nocc == 0)
        return usage_error(cmd, "nothing to change");
    long long id;
    int rc = resolve_account(c, a->pos[0], &id);
    json_t *acc = NULL;
    if (rc == 0)
        rc = get_account(c, id, &acc);
    if (rc != 0)
        return rc;
    /* The new settings replace the old: start from the current (non-secret) ones. */
    json_t *settings = json_deep_copy(json_object_get(acc, "settings"));
    json_decref(acc);
    if (!json_is_object(settings)) {
        json_decref(settings);
        settings = json_object();
    }
    rc = apply_settings(cmd, a, settings);
    if (rc != 0) {
        json_decref(settings);
        return rc;
    }
    json_t *body = json_object();
    json_object_set_new(body, "settings", settings);
    return patch_account(c, id, body);
}

static int account_pause(struct ctl *c, const struct args *a, int paused)
{
    long long id;
    int rc = resolve_account(c, a->pos[0], &id);
    if (rc != 0)
        return rc;
    json_t *body = json_object();
    json_object_set_new(body, "paused", json_boolean(paused));
    return patch_account(c, id, body);
}

static int cmd_account_pause(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    return account_pause(c, a, 1);
}

static int cmd_account_resume(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    return account_pause(c, a, 0);
}

static int cmd_account_remove(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    long long id;
    int rc = resolve_account(c, a->pos[0], &id);
    if (rc != 0)
        return rc;
    struct path p;
    path_init(&p, "/accounts/%lld", id);
    if (flag(a, "purge"))
        path_param(c, &p, "purge", "true");
    rc = path_as_user(c, &p);
    if (rc == 0)
        rc = api_call(c, "DELETE", p.b.p, NULL, 1, NULL);
    buf_free(&p.b);
    if (rc == 0 && !c->quiet)
        say(flag(a, "purge") ? "removed account %lld and deleted its mail"
                             : "removed account %lld (it stops syncing; its mail stays)",
            id);
    return rc;
}

static int cmd_account_sync(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    long long id;
    int rc = resolve_account(c, a->pos[0], &id);
    if (rc != 0)
        return rc;
    struct path p;
    path_init(&p, "/accounts/%lld/sync", id);
    rc = path_as_user(c, &p);
    json_t *j = NULL;
    if (rc == 0)
        rc = api_call(c, "POST", p.b.p, NULL, 1, &j);
    buf_free(&p.b);
    if (rc == 0 && c->json && j != NULL)
        print_json(j);
    else if (rc == 0 && !c->quiet)
        say("sync of account %lld requested", id);
    json_decref(j);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Import                                                                    */

/* A default account name from a file name: its base name without the extension, made a valid name. */
static char *name_from_file(const char *file)
{
    const char *base = strrchr(file, '/');
    base = base != NULL ? base + 1 : file;
    char *s = xstrdup(base);
    char *dot = strrchr(s, '.');
    if (dot != NULL && dot != s)
        *dot = '\0';
    for (char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && strchr("._@+-", *p) == NULL)
            *p = '-';
    char *start = s + strspn(s, ".-");
    memmove(s, start, strlen(start) + 1);
    if (strlen(s) > 64)
        s[64] = '\0';
    if (s[0] == '\0') {
        free(s);
        s = xstrdup("import");
    }
    return s;
}

/* Is the provider still importing?  No progress yet means it has not started. */
static int progress_busy(const json_t *p)
{
    const char *st = jstr(p, "state");
    return st == NULL || strcmp(st, "importing") == 0 || strcmp(st, "starting") == 0;
}

/* --wait: poll the account every second until its provider is done.  0, or an exit code. */
static int import_wait(struct ctl *c, long long id, json_t **final)
{
    int tty = c->stderr_tty && !c->quiet, rc;
    char line[1024] = "";
    *final = NULL;
    if (tty)
        fprintf(stderr,
                "waiting for account %lld to finish importing (Ctrl-C stops waiting, not the import)\n", id);
    for (;;) {
        json_t *acc = NULL;
        rc = get_account(c, id, &acc);
        if (rc != 0)
            return rc;
        json_t *p = json_object_get(acc, "progress");
        int busy = progress_busy(p);
        if (json_is_object(p)) {
            progress_text(p, line, sizeof line);
            if (!busy && strncmp(line, "idle", 4) == 0) /* idle after the first pass: done */
                memcpy(line, "done", 4);
        } else
            snprintf(line, sizeof line, "waiting for the provider to start");
        if (tty) {
            fprintf(stderr, "\r%s\033[K", line);
            fflush(stderr);
        }
        if (!busy) {
            if (tty)
                fputc('\n', stderr);
            else if (!c->quiet)
                fprintf(stderr, "%s\n", line);
            const char *st = jstr(p, "state");
            if (st != NULL && strcmp(st, "error") == 0) {
                const char *err = jstr(p, "error");
                say("the import of account %lld reports an error%s%s (it retries; see 'mailhubctl account "
                    "show %lld')",
                    id, err ? ": " : "", err ? err : "", id);
                json_decref(acc);
                return EXIT_API;
            }
            *final = acc;
            return 0;
        }
        json_decref(acc);
        sleep(1);
    }
}

static int cmd_import(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    const char *file = a->pos[0];
    const char *folder = opt(a, "folder");
    char *account = opt(a, "account") != NULL ? xstrdup(opt(a, "account")) : name_from_file(file);
    struct stat st;
    int is_stdin = strcmp(file, "-") == 0;
    int rc;
    json_t *acc = NULL;
    if (!is_stdin && stat(file, &st) != 0) {
        say("cannot read %s: %s", file, strerror(errno));
        free(account);
        return EXIT_API;
    }
    if (!is_stdin && S_ISDIR(st.st_mode)) {
        /* A Maildir on the server's file system: an mbox-provider account reading it (admins only). */
        char *abs = realpath(file, NULL);
        if (abs == NULL) {
            say("cannot resolve %s: %s", file, strerror(errno));
            free(account);
            return EXIT_API;
        }
        json_t *settings = json_pack("{s:s}", "path", abs);
        free(abs);
        if (folder != NULL)
            json_object_set_new(settings, "folder", json_string(folder));
        json_t *body =
            json_pack("{s:s, s:s, s:o}", "name", account, "provider", "mbox", "settings", settings);
        struct path p;
        path_init(&p, "/accounts");
        rc = body == NULL ? usage_error(cmd, "the path is not valid UTF-8") : path_as_user(c, &p);
        if (rc == 0)
            rc = api_call(c, "POST", p.b.p, body, 1, &acc);
        buf_free(&p.b);
        json_decref(body);
    } else {
        FILE *fp = is_stdin ? stdin : fopen(file, "rb");
        if (fp == NULL) {
            say("cannot open %s: %s", file, strerror(errno));
            free(account);
            return EXIT_API;
        }
        struct path p;
        path_init(&p, "/imports");
        path_param(c, &p, "account", account);
        if (folder != NULL)
            path_param(c, &p, "folder", folder);
        rc = path_as_user(c, &p);
        struct req rq = {.method = "POST",
                         .path = p.b.p,
                         .auth = 1,
                         .upload = fp,
                         .upload_size = is_stdin || !S_ISREG(st.st_mode) ? -1 : (long long)st.st_size,
                         .upload_type = "Content-Type: application/mbox",
                         .progress = 1};
        struct resp rs = {0};
        if (rc == 0)
            rc = http(c, &rq, &rs);
        if (fp != stdin)
            fclose(fp);
        buf_free(&p.b);
        if (rc == 0 && (rs.status < 200 || rs.status >= 300))
            rc = api_error(c, &rs);
        if (rc == 0) {
            acc = json_loadb(rs.body.p != NULL ? rs.body.p : "", rs.body.len, 0, NULL);
            if (acc == NULL) {
                say("%s sent invalid JSON for the import (HTTP %ld)", c->url_shown, rs.status);
                rc = EXIT_CONNECT;
            }
        }
        buf_free(&rs.body);
    }
    free(account);
    if (rc != 0)
        return rc;
    long long id = jint(acc, "id", 0);
    if (!c->quiet && !c->json)
        say("account '%s' (id %lld) created; its provider imports the file",
            jstr(acc, "name") ? jstr(acc, "name") : "?", id);
    if (flag(a, "wait")) {
        json_decref(acc);
        rc = import_wait(c, id, &acc);
        if (rc != 0)
            return rc;
    }
    if (c->json)
        print_json(acc);
    json_decref(acc);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Messages                                                                  */

static int cmd_messages(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    long long limit = 100, after = 0, account = 0, folder = 0;
    if (opt(a, "limit") != NULL && parse_count(opt(a, "limit"), &limit) != 0)
        return usage_error(cmd, "--limit wants a number (0: all), got '%s'", opt(a, "limit"));
    if (opt(a, "after") != NULL && parse_count(opt(a, "after"), &after) != 0)
        return usage_error(cmd, "--after wants a message id, got '%s'", opt(a, "after"));
    if (opt(a, "folder") != NULL && parse_id(opt(a, "folder"), &folder) != 0 && opt(a, "account") == NULL)
        return usage_error(cmd, "a folder given by name needs --account");
    int rc = 0;
    if (opt(a, "account") != NULL)
        rc = resolve_account(c, opt(a, "account"), &account);
    if (rc == 0 && opt(a, "folder") != NULL && folder == 0) {
        json_t *acc = NULL, *f;
        size_t i;
        rc = get_account(c, account, &acc);
        json_array_foreach(json_object_get(acc, "folders"), i, f)
        {
            const char *n = jstr(f, "name");
            if (n != NULL && strcmp(n, opt(a, "folder")) == 0)
                folder = jint(f, "id", 0);
        }
        json_decref(acc);
        if (rc == 0 && folder == 0) {
            say("account %lld has no folder named '%s' (not_found)", account, opt(a, "folder"));
            rc = EXIT_API;
        }
    }
    if (rc != 0)
        return rc;
    json_t *all = json_array();
    json_t *next = json_null();
    long long got = 0;
    struct table t;
    tbl_init(&t, 7);
    static const char *const hdr[7] = {"ID", "ACCOUNT", "FOLDER", "DATE", "SIZE", "FROM", "SUBJECT"};
    tbl_row(&t, hdr, 0);
    for (;;) {
        long long want = limit == 0 || limit - got > 1000 ? 1000 : limit - got;
        struct path p;
        path_init(&p, "/messages");
        if (account)
            path_param_ll(&p, "account", account);
        if (folder)
            path_param_ll(&p, "folder", folder);
        if (after)
            path_param_ll(&p, "after", after);
        path_param_ll(&p, "limit", want);
        rc = path_as_user(c, &p);
        json_t *j = NULL;
        if (rc == 0)
            rc = api_call(c, "GET", p.b.p, NULL, 1, &j);
        buf_free(&p.b);
        if (rc != 0)
            break;
        json_t *m;
        size_t i;
        json_array_foreach(json_object_get(j, "messages"), i, m)
        {
            json_array_append(all, m);
            char id[24], f[256], dt[32], sz[32];
            jtext(json_object_get(m, "id"), id, sizeof id);
            jtext(json_object_get(m, "folder"), f, sizeof f);
            short_time(jstr(m, "date") != NULL ? jstr(m, "date") : jstr(m, "internal_date"), dt, sizeof dt);
            fmt_size((double)jint(m, "size", 0), sz, sizeof sz);
            const char *row[7] = {id, jstr(m, "account"), f, dt, sz, jstr(m, "from"), jstr(m, "subject")};
            tbl_row(&t, row, 40);
            got++;
        }
        json_t *na = json_object_get(j, "next_after");
        json_decref(next);
        next = json_incref(na != NULL ? na : json_null());
        long long nv = jint(j, "next_after", 0);
        json_decref(j);
        if (!json_is_integer(next) || (limit > 0 && got >= limit))
            break;
        if (nv <= after) {
            say("the server's next_after did not advance (%lld)", nv);
            rc = EXIT_CONNECT;
            break;
        }
        after = nv;
    }
    if (rc == 0) {
        if (c->json) {
            json_t *doc = json_pack("{s:O, s:O}", "messages", all, "next_after", next);
            print_json(doc);
            json_decref(doc);
        } else {
            tbl_print(&t);
            t.cell = NULL;
            t.nrow = 0;
            if (json_is_integer(next) && !c->quiet)
                say("more messages follow: --after %lld (or --limit 0 for all)",
                    (long long)json_integer_value(next));
        }
    }
    for (size_t k = 0; k < t.nrow * t.ncol; k++)
        free(t.cell[k]);
    free(t.cell);
    json_decref(all);
    json_decref(next);
    return rc;
}

/* mailhubctl search WORDS...: GET /search, newest first, paging with before. */
static int cmd_search(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    long long limit = 100, before = 0;
    if (opt(a, "limit") != NULL && parse_count(opt(a, "limit"), &limit) != 0)
        return usage_error(cmd, "--limit wants a number (0: all), got '%s'", opt(a, "limit"));
    if (opt(a, "before") != NULL && parse_id(opt(a, "before"), &before) != 0)
        return usage_error(cmd, "--before wants a message id, got '%s'", opt(a, "before"));
    struct buf query = {0};
    for (int i = 0; i < a->npos; i++) {
        if (i > 0)
            buf_adds(&query, " ");
        buf_adds(&query, a->pos[i]);
    }
    char *q = buf_take(&query);
    if (strspn(q, " \t") == strlen(q)) {
        free(q);
        return usage_error(cmd, "the query is empty");
    }
    int rc = 0;
    json_t *all = json_array();
    json_t *next = json_null();
    long long got = 0, pending = 0;
    struct table t;
    tbl_init(&t, 7);
    static const char *const hdr[7] = {"ID", "ACCOUNT", "FOLDER", "DATE", "SIZE", "FROM", "SUBJECT"};
    tbl_row(&t, hdr, 0);
    for (;;) {
        long long want = limit == 0 || limit - got > 1000 ? 1000 : limit - got;
        struct path p;
        path_init(&p, "/search");
        path_param(c, &p, "q", q);
        if (opt(a, "account") != NULL)
            path_param(c, &p, "account", opt(a, "account"));
        if (before)
            path_param_ll(&p, "before", before);
        path_param_ll(&p, "limit", want);
        rc = path_as_user(c, &p);
        json_t *j = NULL;
        if (rc == 0)
            rc = api_call(c, "GET", p.b.p, NULL, 1, &j);
        buf_free(&p.b);
        if (rc != 0)
            break;
        json_t *m;
        size_t i;
        json_array_foreach(json_object_get(j, "messages"), i, m)
        {
            json_array_append(all, m);
            char id[24], f[256], dt[32], sz[32];
            jtext(json_object_get(m, "id"), id, sizeof id);
            jtext(json_object_get(m, "folder"), f, sizeof f);
            short_time(jstr(m, "date") != NULL ? jstr(m, "date") : jstr(m, "internal_date"), dt, sizeof dt);
            fmt_size((double)jint(m, "size", 0), sz, sizeof sz);
            const char *row[7] = {id, jstr(m, "account"), f, dt, sz, jstr(m, "from"), jstr(m, "subject")};
            tbl_row(&t, row, 40);
            got++;
        }
        if (json_is_integer(json_object_get(j, "pending")))
            pending = jint(j, "pending", 0);
        json_t *nb = json_object_get(j, "next_before");
        json_decref(next);
        next = json_incref(nb != NULL ? nb : json_null());
        long long nv = jint(j, "next_before", 0);
        json_decref(j);
        if (!json_is_integer(next) || (limit > 0 && got >= limit))
            break;
        if (before != 0 && nv >= before) {
            say("the server's next_before did not go down (%lld)", nv);
            rc = EXIT_CONNECT;
            break;
        }
        before = nv;
    }
    if (rc == 0) {
        if (c->json) {
            json_t *doc = json_pack("{s:O, s:O, s:I}", "messages", all, "next_before", next, "pending",
                                    (json_int_t)pending);
            print_json(doc);
            json_decref(doc);
        } else if (got == 0) {
            if (!c->quiet)
                say("no message matches");
        } else {
            tbl_print(&t);
            t.cell = NULL;
            t.nrow = 0;
            if (json_is_integer(next) && !c->quiet)
                say("more messages match: --before %lld (or --limit 0 for all)",
                    (long long)json_integer_value(next));
        }
        if (pending > 0 && !c->quiet && !c->json)
            say("%lld stored message%s not analysed yet: a search finds %s once the hub has indexed %s "
                "(seconds after an import)", pending, pending == 1 ? " is" : "s are", pending == 1 ? "it" : "them",
                pending == 1 ? "it" : "them");
    }
    for (size_t k = 0; k < t.nrow * t.ncol; k++)
        free(t.cell[k]);
    free(t.cell);
    json_decref(all);
    json_decref(next);
    free(q);
    return rc;
}

static int cmd_message_show(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    long long id;
    if (parse_id(a->pos[0], &id) != 0)
        return usage_error(cmd, "a message id is a positive number, got '%s'", a->pos[0]);
    struct path p;
    path_init(&p, "/messages/%lld", id);
    int rc = path_as_user(c, &p);
    json_t *m = NULL;
    if (rc == 0)
        rc = api_call(c, "GET", p.b.p, NULL, 1, &m);
    buf_free(&p.b);
    if (rc != 0)
        return rc;
    if (c->json) {
        print_json(m);
    } else {
        static const char *const keys[] = {"id",   "account", "account_id", "folder",        "uid",
                                           "size", "flags",   "date",       "internal_date", "from",
                                           "to",   "cc",      "subject",    "message_id",    "sha256"};
        for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
            if (json_object_get(m, keys[i]) != NULL)
                kvj(keys[i], m, keys[i]);
        json_t *att;
        size_t i;
        json_array_foreach(json_object_get(m, "attachments"), i, att)
        {
            char sz[32], line[600];
            fmt_size((double)jint(att, "size", 0), sz, sizeof sz);
            snprintf(line, sizeof line, "%s (%s, %s)",
                     jstr(att, "name") != NULL ? jstr(att, "name") : "(no name)",
                     jstr(att, "type") != NULL ? jstr(att, "type") : "?", sz);
            kv("attachment", line);
        }
        if (jtrue(m, "source_gone"))
            kv("source_gone", "yes (removed at the source; the hub keeps its copy)");
    }
    json_decref(m);
    return 0;
}

static int write_stdout(void *ud, const char *p, size_t n)
{
    if (fwrite(p, 1, n, stdout) != n) {
        say("cannot write to standard output: %s", strerror(errno));
        return EXIT_API;
    }
    return 0;
}

static int cmd_message_raw(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    long long id;
    if (parse_id(a->pos[0], &id) != 0)
        return usage_error(cmd, "a message id is a positive number, got '%s'", a->pos[0]);
    struct path p;
    path_init(&p, "/messages/%lld/raw", id);
    int rc = path_as_user(c, &p);
    struct req rq = {.method = "GET", .path = p.b.p, .auth = 1, .sink = write_stdout};
    struct resp rs = {0};
    if (rc == 0)
        rc = http(c, &rq, &rs);
    buf_free(&p.b);
    if (rc == 0 && (rs.status < 200 || rs.status >= 300))
        rc = api_error(c, &rs);
    buf_free(&rs.body);
    if (rc == 0 && fflush(stdout) != 0) {
        say("cannot write to standard output: %s", strerror(errno));
        rc = EXIT_API;
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Export                                                                    */

struct exporter {
    struct ctl *c;
    int maildir;
    const char *output;
    /* batch parser */
    int state; /* 0 header line, 1 body, 2 the "\n" after the body */
    struct buf line;
    unsigned long long remaining;
    json_t *meta;
    struct sha256 sha;
    unsigned char last; /* the message's last byte */
    unsigned long long count, bytes, damaged;
    /* mbox */
    FILE *out;
    int bol;                /* at the start of a body line */
    unsigned long long gts; /* pending '>' at the start of the line */
    int fm;                 /* how much of "From " follows them */
    /* Maildir */
    int fd;
    char *tmp_path, *final_path;
    char **dirs; /* folder directories created so far */
    size_t ndirs;
    double last_shown;
};

static int ex_write(struct exporter *e, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (e->maildir) {
        const char *s = p;
        while (n > 0) {
            ssize_t w = write(e->fd, s, n);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                say("cannot write %s: %s", e->tmp_path, strerror(errno));
                return EXIT_API;
            }
            s += w;
            n -= (size_t)w;
        }
        return 0;
    }
    if (fwrite(p, 1, n, e->out) != n) {
        say("cannot write %s: %s", e->output, strerror(errno));
        return EXIT_API;
    }
    return 0;
}

static int ex_repeat(struct exporter *e, char ch, unsigned long long n)
{
    char blk[256];
    memset(blk, ch, sizeof blk);
    while (n > 0) {
        size_t k = n > sizeof blk ? sizeof blk : (size_t)n;
        int rc = ex_write(e, blk, k);
        if (rc != 0)
            return rc;
        n -= k;
    }
    return 0;
}

/* The pending start of a line, written as it came (it did not become "From "). */
static int mbox_flush_pending(struct exporter *e)
{
    int rc = ex_repeat(e, '>', e->gts);
    if (rc == 0)
        rc = ex_write(e, "From ", (size_t)e->fm);
    e->gts = 0;
    e->fm = 0;
    return rc;
}

/* mboxrd: a body line matching ^>*From  gets one more '>'. */
static int mbox_body(struct exporter *e, const char *p, size_t n)
{
    size_t i = 0;
    int rc = 0;
    while (i < n && rc == 0) {
        if (!e->bol) {
            const char *nl = memchr(p + i, '\n', n - i);
            size_t k = nl != NULL ? (size_t)(nl - (p + i)) + 1 : n - i;
            rc = ex_write(e, p + i, k);
            i += k;
            e->bol = nl != NULL;
            continue;
        }
        char ch = p[i];
        if (e->fm == 0 && ch == '>') {
            e->gts++;
            i++;
        } else if (ch == "From "[e->fm]) {
            i++;
            if (++e->fm == 5) {
                e->gts++; /* the quoting '>' */
                rc = mbox_flush_pending(e);
                e->bol = 0;
            }
        } else {
            rc = mbox_flush_pending(e);
            e->bol = 0; /* ch is written by the branch above on the next turn */
        }
    }
    return rc;
}

/* The message's time: internal_date, else date, else now. */
static time_t meta_time(const json_t *m)
{
    time_t t;
    if (parse_iso8601(jstr(m, "internal_date"), &t) == 0 || parse_iso8601(jstr(m, "date"), &t) == 0)
        return t;
    return time(NULL);
}

/* Maildir info flags from IMAP flags, in ASCII order. */
static void maildir_flags(const char *imap, char out[8])
{
    static const struct {
        const char *flag;
        char letter;
    } map[] = {
        {"\\Draft", 'D'}, {"\\Flagged", 'F'}, {"\\Answered", 'R'}, {"\\Seen", 'S'}, {"\\Deleted", 'T'}};
    size_t n = 0;
    for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
        size_t fl = strlen(map[i].flag);
        for (const char *s = imap; s != NULL && *s;) {
            s += strspn(s, " ");
            size_t wl = strcspn(s, " ");
            if (wl == fl && strncasecmp(s, map[i].flag, fl) == 0) {
                out[n++] = map[i].letter;
                break;
            }
            s += wl;
        }
    }
    out[n] = '\0';
}

/*
 * The directory (below the output) of a source folder: "" for INBOX, else
 * Maildir++ ".A.B" for "A/B".  Control characters become '_'; the result
 * never leaves the output directory.
 */
static char *maildir_subdir(const char *folder)
{
    if (folder == NULL || folder[0] == '\0' || strcasecmp(folder, "INBOX") == 0)
        return xstrdup("");
    struct buf b = {0};
    buf_adds(&b, ".");
    for (const unsigned char *s = (const unsigned char *)folder; *s; s++) {
        char ch = *s == '/' ? '.' : *s < 0x20 || *s == 0x7f ? '_' : (char)*s;
        buf_add(&b, &ch, 1);
    }
    if (strcmp(b.p, "..") == 0)
        b.p[1] = '_';
    return buf_take(&b);
}

/* Create (once) output/sub/{cur,new,tmp}; "maildirfolder" marks a Maildir++ folder. */
static int maildir_ensure(struct exporter *e, const char *sub)
{
    for (size_t i = 0; i < e->ndirs; i++)
        if (strcmp(e->dirs[i], sub) == 0)
            return 0;
    static const char *const parts[3] = {"cur", "new", "tmp"};
    char *dir = xasprintf("%s%s%s", e->output, sub[0] ? "/" : "", sub);
    int rc = 0;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        say("cannot create %s: %s", dir, strerror(errno));
        rc = EXIT_API;
    }
    for (int i = 0; i < 3 && rc == 0; i++) {
        char *d = xasprintf("%s/%s", dir, parts[i]);
        if (mkdir(d, 0700) != 0 && errno != EEXIST) {
            say("cannot create %s: %s", d, strerror(errno));
            rc = EXIT_API;
        }
        free(d);
    }
    if (rc == 0 && sub[0] != '\0') {
        char *m = xasprintf("%s/maildirfolder", dir);
        int fd = open(m, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            say("cannot create %s: %s", m, strerror(errno));
            rc = EXIT_API;
        } else {
            close(fd);
        }
        free(m);
    }
    free(dir);
    if (rc == 0) {
        e->dirs = xrealloc(e->dirs, (e->ndirs + 1) * sizeof *e->dirs);
        e->dirs[e->ndirs++] = xstrdup(sub);
    }
    return rc;
}

static int ex_begin(struct exporter *e)
{
    sha256_init(&e->sha);
    e->last = '\n';
    time_t t = meta_time(e->meta);
    if (!e->maildir) {
        struct tm tm;
        char when[64];
        gmtime_r(&t, &tm);
        strftime(when, sizeof when, "%a %b %e %H:%M:%S %Y", &tm);
        e->bol = 1;
        e->gts = 0;
        e->fm = 0;
        char from[96];
        int n = snprintf(from, sizeof from, "From MAILER-DAEMON %s\n", when);
        return ex_write(e, from, (size_t)n);
    }
    char *sub = maildir_subdir(jstr(e->meta, "folder"));
    int rc = maildir_ensure(e, sub);
    if (rc == 0) {
        char fl[8];
        maildir_flags(jstr(e->meta, "flags"), fl);
        char *dir = xasprintf("%s%s%s", e->output, sub[0] ? "/" : "", sub);
        char *base = xasprintf("%lld.%lld_%llu.mailhub", (long long)t, jint(e->meta, "id", 0), e->count + 1);
        e->tmp_path = xasprintf("%s/tmp/%s", dir, base);
        e->final_path = xasprintf("%s/cur/%s:2,%s", dir, base, fl);
        free(base);
        free(dir);
        e->fd = open(e->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (e->fd < 0) {
            say("cannot create %s: %s", e->tmp_path, strerror(errno));
            rc = EXIT_API;
        }
    }
    free(sub);
    return rc;
}

static int ex_data(struct exporter *e, const char *p, size_t n)
{
    sha256_update(&e->sha, p, n);
    if (n > 0)
        e->last = (unsigned char)p[n - 1];
    e->bytes += n;
    return e->maildir ? ex_write(e, p, n) : mbox_body(e, p, n);
}

static int ex_end(struct exporter *e)
{
    int rc = 0;
    if (!e->maildir) {
        rc = mbox_flush_pending(e);
        if (rc == 0 && e->last != '\n')
            rc = ex_write(e, "\n", 1); /* a message must end a line before the separating blank line */
        if (rc == 0)
            rc = ex_write(e, "\n", 1);
    } else {
        if (close(e->fd) != 0 && rc == 0) {
            say("cannot write %s: %s", e->tmp_path, strerror(errno));
            rc = EXIT_API;
        }
        e->fd = -1;
        if (rc == 0 && rename(e->tmp_path, e->final_path) != 0) {
            say("cannot rename %s: %s", e->tmp_path, strerror(errno));
            rc = EXIT_API;
        }
        free(e->tmp_path);
        free(e->final_path);
        e->tmp_path = e->final_path = NULL;
    }
    char hex[65];
    sha256_hex(&e->sha, hex);
    const char *want = jstr(e->meta, "sha256");
    if (want != NULL && strcasecmp(want, hex) != 0) {
        say("message %lld: its bytes do not match its SHA-256 (exported anyway; run 'mailhubctl verify')",
            jint(e->meta, "id", 0));
        e->damaged++;
    }
    e->count++;
    json_decref(e->meta);
    e->meta = NULL;
    if (rc == 0 && e->c->stderr_tty && !e->c->quiet && now_mono() - e->last_shown >= 0.25) {
        char sz[32];
        fmt_size((double)e->bytes, sz, sizeof sz);
        fprintf(stderr, "\rexported %llu messages, %s\033[K", e->count, sz);
        fflush(stderr);
        e->last_shown = now_mono();
    }
    return rc;
}

/* The write callback: parse application/x-mailhub-batch as it streams in. */
static int ex_sink(void *ud, const char *p, size_t n)
{
    struct exporter *e = ud;
    int rc = 0;
    while (n > 0 && rc == 0) {
        if (e->state == 0) {
            const char *nl = memchr(p, '\n', n);
            size_t k = nl != NULL ? (size_t)(nl - p) : n;
            if (e->line.len + k > MAX_BATCH_LINE) {
                say("the export stream has an over-long header line");
                return EXIT_CONNECT;
            }
            buf_add(&e->line, p, k);
            p += k;
            n -= k;
            if (nl == NULL)
                break;
            p++;
            n--;
            json_error_t jerr;
            e->meta = json_loadb(e->line.p != NULL ? e->line.p : "", e->line.len, 0, &jerr);
            e->line.len = 0;
            json_t *size = json_object_get(e->meta, "size");
            if (!json_is_object(e->meta) || !json_is_integer(size) || json_integer_value(size) < 0) {
                say("the export stream is malformed (a message header without a size)");
                return EXIT_CONNECT;
            }
            e->remaining = (unsigned long long)json_integer_value(size);
            e->state = e->remaining > 0 ? 1 : 2;
            rc = ex_begin(e);
        } else if (e->state == 1) {
            size_t k = (unsigned long long)n < e->remaining ? n : (size_t)e->remaining;
            rc = ex_data(e, p, k);
            p += k;
            n -= k;
            e->remaining -= k;
            if (e->remaining == 0)
                e->state = 2;
        } else {
            if (*p != '\n') {
                say("the export stream is malformed (no newline after message %lld)", jint(e->meta, "id", 0));
                return EXIT_CONNECT;
            }
            p++;
            n--;
            e->state = 0;
            rc = ex_end(e);
        }
    }
    return rc;
}

/* Is the directory missing or empty?  1 yes, 0 no. */
static int dir_empty(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return 1;
    struct dirent *de;
    int empty = 1;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            empty = 0;
            break;
        }
    closedir(d);
    return empty;
}

static int cmd_export(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    const char *format = opt(a, "format"), *output = opt(a, "output");
    if (format == NULL || (strcmp(format, "mbox") != 0 && strcmp(format, "maildir") != 0))
        return usage_error(cmd, "--format mbox or --format maildir is required");
    if (output == NULL || output[0] == '\0')
        return usage_error(cmd, "--output PATH is required");
    struct exporter e = {
        .c = c, .maildir = strcmp(format, "maildir") == 0, .output = output, .fd = -1, .bol = 1};
    int to_stdout = strcmp(output, "-") == 0;
    if (to_stdout && e.maildir)
        return usage_error(cmd, "a Maildir cannot go to standard output");
    long long account = 0;
    int rc = 0;
    if (opt(a, "account") != NULL)
        rc = resolve_account(c, opt(a, "account"), &account);
    if (rc != 0)
        return rc;

    /* Refuse to overwrite anything that holds data, unless --force. */
    struct stat st;
    char *tmp_mbox = NULL;
    int exists = !to_stdout && stat(output, &st) == 0;
    if (e.maildir) {
        if (exists && !S_ISDIR(st.st_mode)) {
            say("%s exists and is not a directory", output);
            return EXIT_API;
        }
        if (exists && !dir_empty(output) && !flag(a, "force")) {
            say("%s exists and is not empty (use --force to write into it)", output);
            return EXIT_API;
        }
        if (mkdir_p(output, 0700) != 0) {
            say("cannot create %s: %s", output, strerror(errno));
            return EXIT_API;
        }
        rc = maildir_ensure(&e, "");
        if (rc != 0)
            return rc;
    } else if (to_stdout) {
        e.out = stdout;
    } else {
        if (exists && S_ISDIR(st.st_mode)) {
            say("%s is a directory", output);
            return EXIT_API;
        }
        if (exists && st.st_size > 0 && !flag(a, "force")) {
            say("%s exists and is not empty (use --force to overwrite it)", output);
            return EXIT_API;
        }
        /* Written next to it, renamed over it when complete. */
        tmp_mbox = xasprintf("%s.tmp-XXXXXX", output);
        int fd = mkstemp(tmp_mbox);
        if (fd < 0 || (e.out = fdopen(fd, "wb")) == NULL) {
            say("cannot create %s: %s", tmp_mbox, strerror(errno));
            if (fd >= 0) {
                close(fd);
                unlink(tmp_mbox);
            }
            free(tmp_mbox);
            return EXIT_API;
        }
        e.output = tmp_mbox;
    }

    long long after = 0;
    for (;;) {
        struct path p;
        path_init(&p, "/export");
        if (account)
            path_param_ll(&p, "account", account);
        if (after)
            path_param_ll(&p, "after", after);
        rc = path_as_user(c, &p);
        struct req rq = {.method = "GET", .path = p.b.p, .auth = 1, .sink = ex_sink, .sink_ud = &e};
        struct resp rs = {0};
        if (rc == 0)
            rc = http(c, &rq, &rs);
        buf_free(&p.b);
        if (rc == 0 && (rs.status < 200 || rs.status >= 300))
            rc = api_error(c, &rs);
        buf_free(&rs.body);
        if (rc != 0)
            break;
        if (e.state != 0 || e.line.len != 0) {
            say("the export page ended in the middle of a message");
            rc = EXIT_CONNECT;
            break;
        }
        if (strncasecmp(rs.ctype, "application/x-mailhub-batch", 27) != 0) {
            say("%s answered the export with '%s', not application/x-mailhub-batch", c->url_shown, rs.ctype);
            rc = EXIT_CONNECT;
            break;
        }
        if (rs.complete == 1)
            break;
        long long next;
        if (rs.complete != 0 || parse_id(rs.next_after, &next) != 0 || next <= after) {
            say("the export answer lacks a usable Mailhub-Next-After/Mailhub-Complete");
            rc = EXIT_CONNECT;
            break;
        }
        after = next;
    }
    if (e.meta != NULL) { /* cut off inside a message */
        json_decref(e.meta);
        if (e.fd >= 0) {
            close(e.fd);
            unlink(e.tmp_path);
        }
        free(e.tmp_path);
        free(e.final_path);
    }
    if (e.c->stderr_tty && !c->quiet && e.last_shown > 0)
        fputc('\n', stderr);
    if (!e.maildir && e.out != NULL) {
        if (fflush(e.out) != 0 || (!to_stdout && fsync(fileno(e.out)) != 0)) {
            if (rc == 0)
                say("cannot write %s: %s", e.output, strerror(errno));
            rc = rc ? rc : EXIT_API;
        }
        if (!to_stdout && fclose(e.out) != 0 && rc == 0) {
            say("cannot write %s: %s", e.output, strerror(errno));
            rc = EXIT_API;
        }
        if (tmp_mbox != NULL) {
            if (rc == 0 && rename(tmp_mbox, output) != 0) {
                say("cannot rename %s to %s: %s", tmp_mbox, output, strerror(errno));
                rc = EXIT_API;
            }
            if (rc != 0)
                unlink(tmp_mbox);
        }
    } else if (e.maildir && e.count > 0) {
        sync(); /* the files were renamed into place; make them durable once, not per file */
    } else if (e.maildir && rc != 0 && !exists) {
        /* nothing was written: take back the empty Maildir this run created */
        static const char *const parts[3] = {"cur", "new", "tmp"};
        for (int k = 0; k < 3; k++) {
            char *d = xasprintf("%s/%s", output, parts[k]);
            rmdir(d);
            free(d);
        }
        rmdir(output);
    }
    free(tmp_mbox);
    for (size_t i = 0; i < e.ndirs; i++)
        free(e.dirs[i]);
    free(e.dirs);
    buf_free(&e.line);
    if (rc == 0) {
        char sz[32];
        fmt_size((double)e.bytes, sz, sizeof sz);
        if (c->json && !to_stdout) {
            json_t *j = json_pack("{s:I, s:I, s:I, s:s, s:s}", "messages", (json_int_t)e.count, "bytes",
                                  (json_int_t)e.bytes, "damaged", (json_int_t)e.damaged, "format", format,
                                  "output", output);
            print_json(j);
            json_decref(j);
        } else if (!c->quiet) {
            say("exported %llu messages (%s) to %s", e.count, sz, to_stdout ? "standard output" : output);
        }
        if (e.damaged > 0) {
            say("%llu message(s) did not match their SHA-256", e.damaged);
            rc = EXIT_DAMAGED;
        }
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Verify                                                                    */

static int cmd_verify(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    long long after = 0, checked = 0, ok = 0;
    json_t *failed = json_array();
    int rc = 0, tty = c->stderr_tty && !c->quiet && !c->json;
    for (;;) {
        struct path p;
        path_init(&p, "/verify");
        if (after)
            path_param_ll(&p, "after", after);
        rc = path_as_user(c, &p);
        json_t *j = NULL;
        if (rc == 0)
            rc = api_call(c, "POST", p.b.p, NULL, 1, &j);
        buf_free(&p.b);
        if (rc != 0)
            break;
        checked += jint(j, "checked", 0);
        ok += jint(j, "ok", 0);
        json_array_extend(failed,
                          json_is_array(json_object_get(j, "failed")) ? json_object_get(j, "failed") : NULL);
        int complete = jtrue(j, "complete");
        long long next = jint(j, "next_after", 0);
        json_decref(j);
        if (tty) {
            fprintf(stderr, "\rchecked %lld messages\033[K", checked);
            fflush(stderr);
        }
        if (complete)
            break;
        if (next <= after) {
            say("the server's next_after did not advance (%lld)", next);
            rc = EXIT_CONNECT;
            break;
        }
        after = next;
    }
    if (tty && checked > 0)
        fputc('\n', stderr);
    if (rc == 0) {
        size_t nf = json_array_size(failed);
        if (c->json) {
            json_t *doc = json_pack("{s:I, s:I, s:O, s:b}", "checked", (json_int_t)checked, "ok",
                                    (json_int_t)ok, "failed", failed, "complete", 1);
            print_json(doc);
            json_decref(doc);
        } else {
            if (!c->quiet || nf > 0)
                printf("checked %lld messages: %lld ok, %zu failed\n", checked, ok, nf);
            json_t *f;
            size_t i;
            json_array_foreach(failed, i, f)
            {
                char prob[512];
                jtext(json_object_get(f, "problem"), prob, sizeof prob);
                sanitize(prob);
                printf("message %lld: %s\n", jint(f, "id", 0), prob);
            }
        }
        if (nf > 0)
            rc = EXIT_DAMAGED;
    }
    json_decref(failed);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The command table                                                         */

static const struct optdef o_none[] = {{NULL, 0}};
static const struct optdef o_notif_list[] = {{"state", 1}, {"limit", 1}, {"after", 1}, {"all", 0}, {NULL, 0}};
static const struct optdef o_register[] = {
    {"phone", 1}, {"email", 1}, {"password-stdin", 0}, {"save", 0}, {NULL, 0}};
static const struct optdef o_login[] = {{"password-stdin", 0}, {"save", 0}, {"label", 1}, {NULL, 0}};
static const struct optdef o_token[] = {{"label", 1}, {"save", 0}, {NULL, 0}};
static const struct optdef o_user_add[] = {
    {"admin", 0}, {"phone", 1}, {"email", 1}, {"password-stdin", 0}, {NULL, 0}};
static const struct optdef o_user_set[] = {{"phone", 1},    {"no-phone", 0},       {"email", 1},
                                           {"no-email", 0}, {"admin", 0},          {"no-admin", 0},
                                           {"password", 0}, {"password-stdin", 0}, {NULL, 0}};
static const struct optdef o_account_add[] = {{"provider", 1}, {"set", 1},    {"set-json", 1},
                                              {"secret", 1},   {"paused", 0}, {NULL, 0}};
static const struct optdef o_account_set[] = {
    {"set", 1}, {"set-json", 1}, {"unset", 1}, {"secret", 1}, {NULL, 0}};
static const struct optdef o_account_remove[] = {{"purge", 0}, {NULL, 0}};
static const struct optdef o_import[] = {{"account", 1}, {"folder", 1}, {"wait", 0}, {NULL, 0}};
static const struct optdef o_messages[] = {
    {"account", 1}, {"folder", 1}, {"limit", 1}, {"after", 1}, {NULL, 0}};
static const struct optdef o_search[] = {{"account", 1}, {"limit", 1}, {"before", 1}, {NULL, 0}};
static const struct optdef o_export[] = {
    {"account", 1}, {"format", 1}, {"output", 1}, {"force", 0}, {NULL, 0}};

/* ---------------------------------------------------------- notifications */

/* mailhubctl notifications list: GET /notifications, paged with after. */
static int cmd_notif_list(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    long long limit = 100, after = 0;
    if (opt(a, "limit") != NULL && parse_count(opt(a, "limit"), &limit) != 0)
        return usage_error(cmd, "--limit wants a number (0: all), got '%s'", opt(a, "limit"));
    if (opt(a, "after") != NULL && parse_count(opt(a, "after"), &after) != 0)
        return usage_error(cmd, "--after wants a notification id, got '%s'", opt(a, "after"));
    json_t *all = json_array();
    struct table t;
    tbl_init(&t, 7);
    static const char *const hdr[7] = {"ID", "STATE", "NOTIFIER", "TYPE", "TRIES", "WHEN", "ABOUT / LAST ERROR"};
    tbl_row(&t, hdr, 0);
    long long got = 0;
    int rc = 0;
    for (;;) {
        long long want = limit == 0 || limit - got > 1000 ? 1000 : limit - got;
        struct path p;
        path_init(&p, "/notifications");
        if (opt(a, "state") != NULL)
            path_param(c, &p, "state", opt(a, "state"));
        if (flag(a, "all"))
            path_param(c, &p, "all", "true");
        if (after)
            path_param_ll(&p, "after", after);
        path_param_ll(&p, "limit", want);
        rc = path_as_user(c, &p);
        json_t *j = NULL;
        if (rc == 0)
            rc = api_call(c, "GET", p.b.p, NULL, 1, &j);
        buf_free(&p.b);
        if (rc != 0)
            break;
        json_t *n;
        size_t i;
        json_array_foreach(json_object_get(j, "notifications"), i, n)
        {
            json_array_append(all, n);
            char id[24], tries[16], when[32], about[400];
            jtext(json_object_get(n, "id"), id, sizeof id);
            jtext(json_object_get(n, "attempts"), tries, sizeof tries);
            short_time(jstr(n, "updated"), when, sizeof when);
            json_t *sum = json_object_get(n, "summary");
            const char *detail = jstr(n, "detail");
            const char *state = jstr(n, "state");
            if (state != NULL && strcmp(state, "delivered") != 0 && detail != NULL)
                snprintf(about, sizeof about, "%s", detail);
            else
                snprintf(about, sizeof about, "%s%s%s%s%s", jstr(sum, "account") ? "[" : "",
                         jstr(sum, "account") ? jstr(sum, "account") : "", jstr(sum, "account") ? "] " : "",
                         jstr(sum, "from") ? jstr(sum, "from") : "", jstr(sum, "subject") ? ": " : "");
            if ((state == NULL || strcmp(state, "delivered") == 0 || detail == NULL) && jstr(sum, "subject")) {
                size_t len = strlen(about);
                snprintf(about + len, sizeof about - len, "%s", jstr(sum, "subject"));
            }
            const char *row[7] = {id, state, jstr(n, "notifier"), jstr(n, "type"), tries, when, about};
            tbl_row(&t, row, 60);
            got++;
        }
        long long nv = jint(j, "next_after", 0);
        int more = json_is_integer(json_object_get(j, "next_after"));
        json_decref(j);
        if (!more || (limit > 0 && got >= limit))
            break;
        if (nv <= after) {
            say("the server's next_after did not advance (%lld)", nv);
            rc = EXIT_CONNECT;
            break;
        }
        after = nv;
    }
    if (rc == 0) {
        if (c->json) {
            json_t *doc = json_pack("{s:O}", "notifications", all);
            print_json(doc);
            json_decref(doc);
        } else {
            tbl_print(&t);
            t.cell = NULL;
            t.nrow = 0;
        }
    }
    for (size_t k = 0; k < t.nrow * t.ncol; k++)
        free(t.cell[k]);
    free(t.cell);
    json_decref(all);
    return rc;
}

static int notif_id(const struct cmd *cmd, const char *s, long long *id)
{
    if (parse_id(s, id) != 0 || *id <= 0)
        return usage_error(cmd, "a notification id is a positive number, got '%s'", s);
    return 0;
}

static int cmd_notif_show(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    long long id;
    int rc = notif_id(cmd, a->pos[0], &id);
    if (rc != 0)
        return rc;
    struct path p;
    path_init(&p, "/notifications/%lld", id);
    rc = path_as_user(c, &p);
    json_t *j = NULL;
    if (rc == 0)
        rc = api_call(c, "GET", p.b.p, NULL, 1, &j);
    buf_free(&p.b);
    if (rc == 0)
        print_json(j); /* the job and the event it carries */
    json_decref(j);
    return rc;
}

static int cmd_notif_replay(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    long long id;
    int rc = notif_id(cmd, a->pos[0], &id);
    if (rc != 0)
        return rc;
    struct path p;
    path_init(&p, "/notifications/%lld/replay", id);
    rc = path_as_user(c, &p);
    if (rc == 0)
        rc = api_call(c, "POST", p.b.p, NULL, 1, NULL);
    buf_free(&p.b);
    if (rc == 0 && !c->quiet)
        say("notification %lld is queued again", id);
    return rc;
}

static int cmd_rules_show(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    (void)cmd;
    (void)a;
    struct path p;
    path_init(&p, "/me/notify");
    int rc = path_as_user(c, &p);
    json_t *j = NULL;
    if (rc == 0)
        rc = api_call(c, "GET", p.b.p, NULL, 1, &j);
    buf_free(&p.b);
    if (rc == 0) {
        if (!c->json && json_is_true(json_object_get(j, "default")) && !c->quiet)
            say("no rules set: every channel hears of everything at once");
        print_json(c->json ? j : json_object_get(j, "rules"));
    }
    json_decref(j);
    return rc;
}

static int cmd_rules_set(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    const char *file = a->pos[0];
    json_error_t je;
    json_t *rules = strcmp(file, "-") == 0 ? json_loadf(stdin, JSON_REJECT_DUPLICATES, &je)
                                           : json_load_file(file, JSON_REJECT_DUPLICATES, &je);
    if (rules == NULL) {
        say("%s:%d:%d: %s", strcmp(file, "-") == 0 ? "(stdin)" : file, je.line, je.column, je.text);
        return EXIT_API;
    }
    (void)cmd;
    struct path p;
    path_init(&p, "/me/notify");
    int rc = path_as_user(c, &p);
    json_t *j = NULL;
    if (rc == 0)
        rc = api_call(c, "PATCH", p.b.p, rules, 1, &j);
    buf_free(&p.b);
    json_decref(rules);
    if (rc == 0 && !c->quiet)
        say("notification rules set");
    json_decref(j);
    return rc;
}

static int cmd_rules_clear(struct ctl *c, const struct cmd *cmd, const struct args *a)
{
    (void)cmd;
    (void)a;
    struct path p;
    path_init(&p, "/me/notify");
    int rc = path_as_user(c, &p);
    if (rc == 0)
        rc = api_call(c, "DELETE", p.b.p, NULL, 1, NULL);
    buf_free(&p.b);
    if (rc == 0 && !c->quiet)
        say("notification rules removed: every channel hears of everything at once");
    return rc;
}

static const struct cmd commands[] = {
    {NULL, "health", cmd_health, o_none, 0, 0, "health",
     "Check that the server answers; prints its status and version (no token needed).\n"},
    {NULL, "register", cmd_register, o_register, 1, 1,
     "register NAME [--phone P] [--email E] [--password-stdin] [--save]",
     "Create user NAME on a server with open registration, and print a token for it.\n"
     "  --phone P          bind a phone number (E.164, e.g. +8613800138000)\n"
     "  --email E          an address for notifications\n"
     "  --password-stdin   read the password from standard input (one line);\n"
     "                     otherwise it is asked twice on the terminal\n"
     "  --save             keep the token in ~/.config/mailhub/token (0600) instead of printing it\n"},
    {NULL, "login", cmd_login, o_login, 1, 1, "login NAME [--password-stdin] [--save] [--label TEXT]",
     "Log in as NAME and print a new token (use it with --token or MAILHUB_TOKEN).\n"
     "  --password-stdin   read the password from standard input (one line)\n"
     "  --save             keep the token in ~/.config/mailhub/token (0600) instead of printing it;\n"
     "                     later commands use it\n"
     "  --label TEXT       a label for the token (default: mailhubctl@HOSTNAME)\n"},
    {NULL, "logout", cmd_logout, o_none, 0, 0, "logout",
     "Revoke the token in use; when it came from ~/.config/mailhub/token, remove that file.\n"},
    {NULL, "whoami", cmd_whoami, o_none, 0, 0, "whoami", "Show the token's user, with the quota.\n"},
    {NULL, "token", cmd_token, o_token, 0, 0, "token [--label TEXT] [--save]",
     "Issue another token for your user and print it (for another device or a script).\n"},
    {"user", "list", cmd_user_list, o_none, 0, 0, "user list", "List every user (admin).\n"},
    {"user", "add", cmd_user_add, o_user_add, 1, 1,
     "user add NAME [--admin] [--phone P] [--email E] [--password-stdin]",
     "Create a user (admin).  The password is read from standard input with\n"
     "--password-stdin, asked on a terminal otherwise (empty: none yet), and not set\n"
     "when neither is possible; 'user set NAME --password' sets it later.\n"},
    {"user", "show", cmd_user_show, o_none, 1, 1, "user show ID|NAME",
     "Show a user (yourself, or any as admin).\n"},
    {"user", "set", cmd_user_set, o_user_set, 1, 1,
     "user set ID|NAME [--phone P|--no-phone] [--email E|--no-email] [--password|--password-stdin] "
     "[--admin|--no-admin]",
     "Change a user (yourself, or any as admin; --admin and --no-admin are for admins).\n"
     "  --password         ask for the new password on the terminal\n"
     "  --password-stdin   read the new password from standard input (one line)\n"},
    {"user", "delete", cmd_user_delete, o_none, 1, 1, "user delete ID|NAME",
     "Delete a user with all their accounts, mail and tokens (admin).\n"},
    {"phone", "set", cmd_phone_set, o_none, 1, 1, "phone set NUMBER",
     "Bind your phone number (E.164: '+', country code, number).\n"},
    {"phone", "clear", cmd_phone_clear, o_none, 0, 0, "phone clear", "Remove your phone number.\n"},
    {"email", "set", cmd_email_set, o_none, 1, 1, "email set ADDR", "Set your notification address.\n"},
    {"email", "clear", cmd_email_clear, o_none, 0, 0, "email clear", "Remove your notification address.\n"},
    {"account", "list", cmd_account_list, o_none, 0, 0, "account list", "List your linked accounts.\n"},
    {"account", "add", cmd_account_add, o_account_add, 1, 1,
     "account add NAME --provider P [--set KEY=VALUE]... [--set-json KEY=JSON]... [--secret KEY]... "
     "[--paused]",
     "Link a mailbox through provider P ('mailhubd --plugin-help P' lists its settings).\n"
     "  --set KEY=VALUE    a setting, as a string; KEY may be dotted (smtp.host=...)\n"
     "  --set-json KEY=J   a setting as JSON (numbers, booleans, lists, objects)\n"
     "  --secret KEY       a secret setting (a password): asked on the terminal, or read\n"
     "                     from standard input, one line per --secret, in order; secrets\n"
     "                     are stored encrypted and never shown again\n"
     "  --paused           create it paused\n"},
    {"account", "show", cmd_account_show, o_none, 1, 1, "account show ID|NAME",
     "Show an account: settings (secrets by name only), progress and folders.\n"},
    {"account", "set", cmd_account_set, o_account_set, 1, 1,
     "account set ID|NAME [--set KEY=VALUE]... [--set-json KEY=JSON]... [--unset KEY]... [--secret KEY]...",
     "Change an account's settings (the others are kept, stored secrets too).\n"},
    {"account", "pause", cmd_account_pause, o_none, 1, 1, "account pause ID|NAME",
     "Stop syncing an account.\n"},
    {"account", "resume", cmd_account_resume, o_none, 1, 1, "account resume ID|NAME",
     "Resume a paused account.\n"},
    {"account", "remove", cmd_account_remove, o_account_remove, 1, 1, "account remove ID|NAME [--purge]",
     "Remove an account: it stops syncing and its mail stays, or with --purge its mail\n"
     "is deleted too.\n"},
    {"account", "sync", cmd_account_sync, o_none, 1, 1, "account sync ID|NAME",
     "Ask an account to sync now.\n"},
    {NULL, "import", cmd_import, o_import, 1, 1, "import FILE [--account NAME] [--folder F] [--wait]",
     "Upload an mbox file (Google Takeout, Thunderbird; '-' reads standard input) into a\n"
     "new account of provider mbox.  With a directory (a Maildir on the server's file\n"
     "system), create an mbox-provider account reading it in place (admin only).\n"
     "  --account NAME     the account's name (default: the file name without extension)\n"
     "  --folder F         the folder to file the messages under (default: INBOX)\n"
     "  --wait             show the provider's progress until the import is done\n"
     "Importing the same file again stores nothing twice.\n"},
    {NULL, "messages", cmd_messages, o_messages, 0, 0,
     "messages [--account ID|NAME] [--folder ID|NAME] [--limit N] [--after ID]",
     "List stored messages, oldest first.\n"
     "  --limit N          at most N (default 100; 0: all)\n"
     "  --after ID         start after message ID\n"},
    {NULL, "search", cmd_search, o_search, 1, -1, "search WORD... [--account NAME] [--limit N] [--before ID]",
     "Find your messages that contain every word given, newest first.  Words are\n"
     "matched whole, case-insensitively (Chinese, Japanese and Korean text by pairs\n"
     "of characters); an e-mail address matches as a whole.  The index is blind:\n"
     "the server stores keyed hashes of words, never the words.\n"
     "  --account NAME     only this account's messages\n"
     "  --limit N          at most N (default 100; 0: all)\n"
     "  --before ID        only messages older than message ID (the next page)\n"},
    {"message", "show", cmd_message_show, o_none, 1, 1, "message show ID",
     "Show a message's headers and metadata.\n"},
    {"message", "raw", cmd_message_raw, o_none, 1, 1, "message raw ID > FILE",
     "Write a message's exact stored bytes to standard output.\n"},
    {NULL, "export", cmd_export, o_export, 0, 0,
     "export [--account ID|NAME] --format mbox|maildir --output PATH [--force]",
     "Write your mail (or one account's) out, so nothing is locked in.\n"
     "  --format mbox      one mboxrd file ('From MAILER-DAEMON <date>' lines, '>From'\n"
     "                     quoting); --output - writes it to standard output\n"
     "  --format maildir   a Maildir: INBOX in PATH/{cur,new,tmp}, other folders as\n"
     "                     Maildir++ PATH/.Folder.Sub, IMAP flags in the file names\n"
     "  --force            write even if PATH exists and is not empty\n"
     "Each message is checked against its stored SHA-256 on the way (exit 5 if one\n"
     "does not match).\n"},
    {NULL, "verify", cmd_verify, o_none, 0, 0, "verify",
     "Re-check every stored message against its hash; prints the totals and each\n"
     "damaged message, and exits 5 if there is one.  Admins may add --user USER.\n"},
    {"notifications", "list", cmd_notif_list, o_notif_list, 0, 0,
     "notifications list [--state STATE] [--all] [--limit N] [--after ID]",
     "List your notifications, oldest first, with their state and last error.\n"
     "  --state STATE   only pending, held, delivered, dead or folded ones\n"
     "  --all           everyone's (admins)\n"
     "  --limit N       at most N (default 100; 0: all)\n"
     "  --after ID      start after notification ID\n"},
    {"notifications", "show", cmd_notif_show, o_none, 1, 1, "notifications show ID",
     "Show one notification with the event it carries, as JSON.\n"},
    {"notifications", "replay", cmd_notif_replay, o_none, 1, 1, "notifications replay ID",
     "Queue a dead notification again (its attempts start over).\n"},
    {"rules", "show", cmd_rules_show, o_none, 0, 0, "rules show",
     "Show your notification rules (docs/notifications.md).\n"},
    {"rules", "set", cmd_rules_set, o_none, 1, 1, "rules set FILE|-",
     "Replace your notification rules with the JSON document in FILE (- : standard input).\n"
     "The server checks them and names the key of any mistake.\n"},
    {"rules", "clear", cmd_rules_clear, o_none, 0, 0, "rules clear",
     "Remove your notification rules: every channel hears of everything at once.\n"},
    {NULL, "quota", cmd_quota, o_none, 0, 1, "quota [USER]",
     "Show the allocation, the usage and the history of extensions (yours, or USER's).\n"},
};

#define N_COMMANDS (sizeof commands / sizeof *commands)

static void usage(FILE *out)
{
    fputs("Usage: " PROG " [OPTION]... COMMAND [ARG]...\n"
          "Manage a mailhub server through its control API.\n"
          "\n"
          "Options (also accepted after the command):\n"
          "      --url URL          the server (default: $MAILHUB_URL, else " DEFAULT_URL ")\n"
          "      --token TOKEN      the API token; else --token-file, $MAILHUB_TOKEN,\n"
          "                         $MAILHUB_TOKEN_FILE, then ~/.config/mailhub/token\n"
          "      --token-file FILE  read the token from FILE (such as DATA_DIR/admin.token)\n"
          "      --cacert FILE      trust the CA certificate(s) in FILE for an https URL\n"
          "      --user ID|NAME     (admin) act on that user's accounts and mail\n"
          "      --json             print the API's JSON instead of tables\n"
          "  -q, --quiet            no progress or notes, only what was asked for\n"
          "  -V, --version          print the version and exit\n"
          "  -h, --help             print this help and exit\n"
          "\n"
          "Commands:\n"
          "  health                        is the server up?\n"
          "  register NAME                 create your user (when registration is open)\n"
          "  login NAME                    get a token (--save keeps it for later commands)\n"
          "  logout                        revoke the token in use\n"
          "  whoami                        show your user and quota\n"
          "  token                         issue another token\n"
          "  user list|add|show|set|delete manage users (admins; show/set also yourself)\n"
          "  phone set NUMBER|clear        bind or remove your phone number\n"
          "  email set ADDR|clear          set or remove your notification address\n"
          "  account list|add|show|set|pause|resume|remove|sync\n"
          "                                your linked mailboxes\n"
          "  import FILE                   upload an mbox (or link a Maildir) as an account\n"
          "  messages                      list stored messages\n"
          "  search WORD...                find messages that contain every word\n"
          "  message show|raw ID           a message's metadata, or its exact bytes\n"
          "  export                        write your mail out as mbox or Maildir\n"
          "  verify                        re-check stored messages against their hashes\n"
          "  quota [USER]                  allocation, usage and extensions\n"
          "  notifications list|show|replay\n"
          "                                what was sent, what failed, send a dead one again\n"
          "  rules show|set|clear          your notification rules (channels, quiet hours, VIP)\n"
          "  help [COMMAND]                help on a command\n"
          "\n"
          "Run '" PROG " COMMAND --help' for a command's options.  Passwords are never\n"
          "taken from the command line: they are asked with echo off, or read from\n"
          "standard input with --password-stdin.\n"
          "\n"
          "Exit status: 0 ok; 1 the server refused the request (or a local file error);\n"
          "2 usage error; 3 not authenticated or not allowed; 4 cannot connect, or a\n"
          "server error; 5 verify or export found damaged messages.\n",
          out);
}

static int is_group(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (commands[i].group != NULL && strcmp(commands[i].group, name) == 0)
            return 1;
    return 0;
}

static void group_help(FILE *out, const char *group)
{
    fprintf(out, "Usage:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (commands[i].group != NULL && strcmp(commands[i].group, group) == 0)
            fprintf(out, "  " PROG " %s\n", commands[i].synopsis);
    fprintf(out, "Run '" PROG " %s SUBCOMMAND --help' for details.\n", group);
}

static const struct cmd *find_cmd(const char *group, const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const struct cmd *k = &commands[i];
        if ((group == NULL) != (k->group == NULL))
            continue;
        if (group != NULL && strcmp(group, k->group) != 0)
            continue;
        if (strcmp(name, k->name) == 0)
            return k;
    }
    return NULL;
}

/* help [COMMAND [SUBCOMMAND]] */
static int do_help(int argc, char **argv)
{
    if (argc == 0) {
        usage(stdout);
        return 0;
    }
    if (is_group(argv[0])) {
        const struct cmd *k = argc > 1 ? find_cmd(argv[0], argv[1]) : NULL;
        if (k != NULL)
            print_cmd_help(k);
        else
            group_help(stdout, argv[0]);
        return 0;
    }
    const struct cmd *k = find_cmd(NULL, argv[0]);
    if (k == NULL) {
        say("unknown command '%s'", argv[0]);
        cmd_try_help(NULL);
        return EXIT_USAGE;
    }
    print_cmd_help(k);
    return 0;
}

/* Settle the URL: --url, $MAILHUB_URL, the default; http(s) only.  0 or EXIT_USAGE. */
static int setup_url(struct ctl *c)
{
    const char *u = c->url_arg;
    if (u == NULL || *u == '\0')
        u = getenv("MAILHUB_URL");
    if (u == NULL || *u == '\0')
        u = DEFAULT_URL;
    size_t skip;
    if (strncasecmp(u, "http://", 7) == 0)
        skip = 7;
    else if (strncasecmp(u, "https://", 8) == 0)
        skip = 8, c->https = 1;
    else {
        say("the URL must start with http:// or https://, got '%s'", u);
        return EXIT_USAGE;
    }
    if (strpbrk(u, " \t\r\n?#") != NULL) {
        say("the URL '%s' is not a plain server address (no spaces, query or fragment)", u);
        return EXIT_USAGE;
    }
    c->url = xstrdup(u);
    size_t n = strlen(c->url);
    while (n > skip && c->url[n - 1] == '/')
        c->url[--n] = '\0';
    if (n >= skip + strlen(API_BASE) && strcmp(c->url + n - strlen(API_BASE), API_BASE) == 0) {
        n -= strlen(API_BASE);
        c->url[n] = '\0';
        while (n > skip && c->url[n - 1] == '/')
            c->url[--n] = '\0';
    }
    /* shown without user:password@, host alone for messages */
    const char *auth_end = c->url + skip;
    size_t alen = strcspn(auth_end, "/");
    const char *at = memchr(auth_end, '@', alen);
    const char *hstart = at != NULL ? at + 1 : auth_end;
    c->url_shown = xasprintf("%.*s%s", (int)skip, c->url, hstart);
    size_t hlen = strcspn(hstart, "/");
    if (hstart[0] == '[') {
        const char *rb = memchr(hstart, ']', hlen);
        hlen = rb != NULL ? (size_t)(rb - hstart) + 1 : hlen;
    } else {
        const char *colon = memchr(hstart, ':', hlen);
        if (colon != NULL)
            hlen = (size_t)(colon - hstart);
    }
    if (hlen == 0) {
        say("the URL '%s' has no host", u);
        return EXIT_USAGE;
    }
    c->host = xasprintf("%.*s", (int)hlen, hstart);
    return 0;
}

int main(int argc, char **argv)
{
    struct ctl c = {.stderr_tty = isatty(STDERR_FILENO)};
    int i = 1;
    for (; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(s, "--version") == 0 || strcmp(s, "-V") == 0) {
            curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
            printf(PROG " " PACKAGE_VERSION " (control API v1; libcurl %s, jansson %s)\n", v->version,
                   jansson_version_str());
            return 0;
        }
        if (strcmp(s, "--") == 0) {
            i++;
            break;
        }
        if (s[0] != '-' || strcmp(s, "-") == 0)
            break;
        int m = global_option(&c, NULL, argc, argv, &i);
        if (m < 0)
            return EXIT_USAGE;
        if (m == 0)
            return usage_error(NULL, "unknown option '%s'", s);
    }
    if (i >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[i++];
    if (strcmp(name, "help") == 0)
        return do_help(argc - i, argv + i);
    const struct cmd *cmd;
    if (is_group(name)) {
        if (i >= argc || strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            group_help(i >= argc ? stderr : stdout, name);
            return i >= argc ? EXIT_USAGE : 0;
        }
        cmd = find_cmd(name, argv[i]);
        if (cmd == NULL) {
            say("unknown command '%s %s'", name, argv[i]);
            group_help(stderr, name);
            return EXIT_USAGE;
        }
        i++;
    } else {
        cmd = find_cmd(NULL, name);
        if (cmd == NULL) {
            say("unknown command '%s'", name);
            cmd_try_help(NULL);
            return EXIT_USAGE;
        }
    }
    struct args a;
    int rc = parse_args(&c, cmd, argc - i, argv + i, &a);
    if (rc == 0)
        rc = setup_url(&c);
    if (rc == 0 && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        say("cannot initialise libcurl");
        rc = EXIT_CONNECT;
    } else if (rc == 0) {
        c.curl = curl_easy_init();
        if (c.curl == NULL)
            oom();
        rc = cmd->fn(&c, cmd, &a);
        curl_easy_cleanup(c.curl);
        curl_global_cleanup();
    }
    if (fflush(stdout) != 0 && rc == 0) {
        say("cannot write to standard output: %s", strerror(errno));
        rc = EXIT_API;
    }
    args_free(&a);
    wipe_free(c.token);
    free(c.token_path);
    free(c.url);
    free(c.url_shown);
    free(c.host);
    return rc;
}

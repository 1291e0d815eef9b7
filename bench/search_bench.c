/*
 * search_bench: times what ingest adds for the search index, stage by stage,
 * over the messages of an mbox file: the body parse (mh_mime_parse_body:
 * GMime's MIME parser, charsets, HTML), the tokens (mh_search_tokens over
 * the text, at most 20,000) and the blind terms (mh_search_blind).
 *
 *   tests/tools/gen_mbox --count 10000 --seed 42 > /tmp/m.mbox
 *   bench/search_bench /tmp/m.mbox
 *
 * Each stage runs over every message once (after a warm-up pass of the
 * whole); MB/s are of message bytes (MB = 10^6 bytes).  Built by
 * `make check` (check_PROGRAMS) so that it keeps compiling, never run by it.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mh_mime.h"
#include "mh_search.h"

static void die(const char *what)
{
    fprintf(stderr, "search_bench: %s: %s\n", what, errno ? strerror(errno) : "failed");
    exit(1);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        die(path);
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        die("malloc");
    for (;;) {
        if (n == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (nb == NULL)
                die("realloc");
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    *len = n;
    return buf;
}

struct msg {
    const char *p;
    size_t len;
    char *text, *tokens;
    size_t text_len;
};

/* The messages of an mbox: split at "From " lines. */
static size_t split_mbox(const char *buf, size_t len, struct msg **out)
{
    size_t cap = 1024, n = 0;
    struct msg *m = calloc(cap, sizeof *m);
    const char *p = buf, *end = buf + len, *start = NULL;
    if (m == NULL)
        die("calloc");
    for (;;) {
        const char *nl = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
        const char *next = nl != NULL ? nl + 1 : end;
        int sep = p < end && (size_t)(end - p) >= 5 && memcmp(p, "From ", 5) == 0;
        if ((sep || p >= end) && start != NULL && p > start) {
            if (n == cap) {
                cap *= 2;
                struct msg *nm = realloc(m, cap * sizeof *m);
                if (nm == NULL)
                    die("realloc");
                m = nm;
            }
            memset(&m[n], 0, sizeof m[n]);
            m[n].p = start;
            m[n].len = (size_t)(p - start);
            n++;
        }
        if (p >= end)
            break;
        if (sep)
            start = next;
        p = next;
    }
    *out = m;
    return n;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report(const char *stage, double secs, size_t bytes, size_t n)
{
    printf("%-8s %8.3f s %9.1f MB/s %9.1f us/message\n", stage, secs, (double)bytes / 1e6 / secs,
           secs * 1e6 / (double)n);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fputs("usage: search_bench FILE.mbox\n", stderr);
        return 2;
    }
    size_t len, bytes = 0, text = 0, tokens = 0;
    char *buf = read_file(argv[1], &len);
    struct msg *m;
    size_t n = split_mbox(buf, len, &m);
    if (n == 0)
        die("no message in the file");
    for (size_t i = 0; i < n; i++)
        bytes += m[i].len;
    mh_mime_init();
    unsigned char key[32] = {1}, sk[32];
    mh_search_key(key, sk);

    for (int pass = 0; pass < 2; pass++) { /* pass 0 warms up */
        double t0 = now();
        for (size_t i = 0; i < n; i++) {
            struct mh_mime_body b;
            if (mh_mime_parse_body(m[i].p, m[i].len, &b) != 0)
                die("mh_mime_parse_body");
            free(m[i].text);
            m[i].text = b.text;
            m[i].text_len = b.text_len;
            b.text = NULL;
            mh_mime_body_clear(&b);
        }
        double t1 = now();
        for (size_t i = 0; i < n; i++) {
            free(m[i].tokens);
            m[i].tokens = mh_search_tokens(m[i].text ? m[i].text : "", m[i].text_len, 20000);
            if (m[i].tokens == NULL)
                die("mh_search_tokens");
        }
        double t2 = now();
        text = tokens = 0;
        for (size_t i = 0; i < n; i++) {
            char *terms = mh_search_blind(sk, m[i].tokens);
            if (terms == NULL)
                die("mh_search_blind");
            text += m[i].text_len;
            tokens += strlen(terms) / (MH_SEARCH_TERM_LEN + 1) + (terms[0] != '\0');
            free(terms);
        }
        double t3 = now();
        if (pass == 1) {
            printf("%zu messages, %.1f MB, %.1f MB of text, %.0f terms/message\n", n, (double)bytes / 1e6,
                   (double)text / 1e6, (double)tokens / (double)n);
            report("body", t1 - t0, bytes, n);
            report("tokens", t2 - t1, bytes, n);
            report("blind", t3 - t2, bytes, n);
            report("total", t3 - t0, bytes, n);
        }
    }
    for (size_t i = 0; i < n; i++) {
        free(m[i].text);
        free(m[i].tokens);
    }
    free(m);
    free(buf);
    return 0;
}

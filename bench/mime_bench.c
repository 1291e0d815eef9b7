/*
 * mime_bench: times mh_mime_parse() over the messages of an mbox file.
 *
 *   tests/tools/gen_mbox --count 10000 --seed 42 > /tmp/m.mbox
 *   bench/mime_bench [--repeat N] /tmp/m.mbox
 *   bench/mime_bench --dump /tmp/m.mbox > values.txt
 *   bench/mime_bench --dump --files msg1.eml msg2.eml ... > values.txt
 *
 * The file is read into memory and split at each line that starts with
 * "From " (the mbox separator; mboxrd ">From " quoting is irrelevant to the
 * header block).  Every message is parsed --repeat times (default 3) after
 * one warm-up pass; the fastest pass is reported as MB/s of message bytes
 * (MB = 10^6 bytes) and microseconds per message, wall and CPU time.
 *
 * --dump parses each message once and prints one line per message:
 * index, date, from, to, cc, subject, message_id, tab-separated, with tabs,
 * newlines and backslashes escaped ("-" for NULL), to compare the output of
 * two implementations with diff(1).  --files takes each file as one message.
 *
 * Built by `make check` (check_PROGRAMS) but not run by it.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mh_mime.h"

struct msg {
    const char *p;
    size_t len;
};

static void die(const char *what)
{
    fprintf(stderr, "mime_bench: %s: %s\n", what, errno ? strerror(errno) : "failed");
    exit(1);
}

/* Reads the whole file into a malloc'ed buffer. */
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
    if (ferror(f))
        die(path);
    fclose(f);
    *len = n;
    return buf;
}

/* Splits an mbox at its "From " lines; returns the number of messages. */
static size_t split_mbox(const char *buf, size_t len, struct msg **out)
{
    size_t cap = 1024, n = 0;
    struct msg *m = malloc(cap * sizeof *m);
    if (m == NULL)
        die("malloc");
    const char *p = buf, *end = buf + len, *start = NULL;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *next = nl != NULL ? nl + 1 : end;
        if ((size_t)(end - p) >= 5 && memcmp(p, "From ", 5) == 0) {
            if (start != NULL) {
                if (n == cap) {
                    cap *= 2;
                    struct msg *nm = realloc(m, cap * sizeof *m);
                    if (nm == NULL)
                        die("realloc");
                    m = nm;
                }
                m[n].p = start;
                m[n].len = (size_t)(p - start);
                n++;
            }
            start = next;
        }
        p = next;
    }
    if (start != NULL && start < end) {
        if (n == cap) {
            struct msg *nm = realloc(m, (cap + 1) * sizeof *m);
            if (nm == NULL)
                die("realloc");
            m = nm;
        }
        m[n].p = start;
        m[n].len = (size_t)(end - start);
        n++;
    }
    *out = m;
    return n;
}

static double now(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void put_value(const char *s)
{
    putchar('\t');
    if (s == NULL) {
        putchar('-');
        return;
    }
    for (; *s; s++) {
        if (*s == '\t')
            fputs("\\t", stdout);
        else if (*s == '\n')
            fputs("\\n", stdout);
        else if (*s == '\\')
            fputs("\\\\", stdout);
        else
            putchar(*s);
    }
}

static void dump(const struct msg *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct mh_mime_headers h;
        if (mh_mime_parse(m[i].p, m[i].len, &h) != 0)
            die("mh_mime_parse");
        printf("%zu\t%lld", i, (long long)h.date);
        put_value(h.from);
        put_value(h.to);
        put_value(h.cc);
        put_value(h.subject);
        put_value(h.message_id);
        putchar('\n');
        mh_mime_headers_clear(&h);
    }
}

static void run(const struct msg *m, size_t n, int repeat)
{
    size_t bytes = 0;
    for (size_t k = 0; k < n; k++)
        bytes += m[k].len;
    double best_wall = 0, best_cpu = 0;
    for (int r = -1; r < repeat; r++) { /* r == -1: warm-up */
        double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
        for (size_t k = 0; k < n; k++) {
            struct mh_mime_headers h;
            if (mh_mime_parse(m[k].p, m[k].len, &h) != 0)
                die("mh_mime_parse");
            mh_mime_headers_clear(&h);
        }
        double wall = now(CLOCK_MONOTONIC) - w0, cpu = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
        if (r >= 0 && (best_wall == 0 || wall < best_wall)) {
            best_wall = wall;
            best_cpu = cpu;
        }
    }
    printf("%zu messages, %.1f MB, best of %d: %.3f s wall (%.3f s CPU), %.1f MB/s, %.2f us/message\n", n,
           (double)bytes / 1e6, repeat, best_wall, best_cpu, (double)bytes / 1e6 / best_wall,
           best_wall * 1e6 / (double)n);
}

static void usage(void)
{
    fputs("usage: mime_bench [--repeat N] [--dump] FILE.mbox\n"
          "       mime_bench [--repeat N] [--dump] --files FILE...\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    int repeat = 3, do_dump = 0, files = 0, i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (strcmp(argv[i], "--dump") == 0)
            do_dump = 1;
        else if (strcmp(argv[i], "--files") == 0)
            files = 1;
        else
            usage();
    }
    if (i >= argc || repeat < 1)
        usage();

    struct msg *m;
    size_t n;
    char *buf = NULL;
    if (files) {
        n = (size_t)(argc - i);
        m = calloc(n, sizeof *m);
        if (m == NULL)
            die("calloc");
        for (size_t k = 0; k < n; k++)
            m[k].p = read_file(argv[i + (int)k], &m[k].len);
    } else {
        size_t len;
        buf = read_file(argv[i], &len);
        n = split_mbox(buf, len, &m);
    }
    if (n == 0) {
        fputs("mime_bench: no messages\n", stderr);
        return 1;
    }
    mh_mime_init();
    if (do_dump) {
        dump(m, n);
    } else {
        run(m, n, repeat);
    }
    if (files) {
        for (size_t k = 0; k < n; k++)
            free((char *)m[k].p);
    }
    free(buf);
    free(m);
    return 0;
}

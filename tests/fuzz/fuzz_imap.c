/*
 * libFuzzer target for the IMAP response parser (plugins/imap/imap_parse.c):
 * arbitrary bytes as a server's answer.  The parser must never crash, hang
 * or grow past its limits; the responses it reports must not depend on how
 * the bytes were cut into reads (the input is parsed whole and in pieces of
 * a size taken from its first byte, and the two runs must agree exactly, up
 * to the same error); and every helper (FETCH, LIST, STATUS, sequence sets,
 * dates, modified UTF-7) must cope with whatever the parser hands out, with
 * a decoded mailbox name encoding back to a name that decodes the same.
 *
 * Built two ways: with -fsanitize=fuzzer (tests/fuzz/fuzz_imap, see
 * tests/imap.mk), and as tests/fuzz/fuzz_imap_replay with the small main()
 * at the end (FUZZ_IMAP_REPLAY), which `make check` runs over
 * tests/fuzz/corpus/imap.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_LITERAL ((uint64_t)1 << 20)

struct digest {
    uint64_t h;
    unsigned long count;
};

static void mix(struct digest *d, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        d->h ^= s[i];
        d->h *= 1099511628211ull;
    }
}

static void mix_str(struct digest *d, const char *s)
{
    if (s == NULL)
        s = "\x01NULL";
    mix(d, s, strlen(s) + 1);
}

static void mix_val(struct digest *d, const struct imap_val *v, int depth)
{
    for (; v != NULL; v = v->next) {
        unsigned char t = (unsigned char)v->type;
        mix(d, &t, 1);
        if (v->type == IMAP_ATOM || v->type == IMAP_STRING) {
            if (v->s == NULL || v->s[v->len] != '\0')
                abort(); /* every string is NUL-terminated at len */
            mix(d, v->s, v->len);
        }
        if (v->type == IMAP_LIST) {
            if (depth > IMAP_MAX_DEPTH)
                abort();
            size_t n = 0;
            for (const struct imap_val *c = v->child; c != NULL; c = c->next)
                n++;
            if (n != v->n)
                abort();
            mix_val(d, v->child, depth + 1);
        }
    }
}

static int count_range(void *arg, uint32_t lo, uint32_t hi)
{
    unsigned long *n = arg;
    if (lo > hi || lo == 0)
        abort();
    return ++*n > 1000; /* stop early on huge sets */
}

static void check_name(const char *raw, size_t len)
{
    char dec[4096], enc[8192], again[4096];
    if (len > 1000)
        return;
    long n = imap_mutf7_decode(raw, len, dec, sizeof dec);
    if (n < 0)
        return;
    if ((size_t)n != strlen(dec))
        abort(); /* decoded names never hold a NUL */
    long m = imap_mutf7_encode(dec, (size_t)n, enc, sizeof enc);
    if (m < 0)
        abort(); /* what decodes is valid UTF-8 and encodes back */
    long k = imap_mutf7_decode(enc, (size_t)m, again, sizeof again);
    if (k != n || memcmp(dec, again, (size_t)n) != 0)
        abort();
}

static void exercise(const struct imap_resp *r)
{
    struct imap_fetch f;
    if (imap_fetch_get(r, &f) == 0) {
        if (f.has_body && f.body == NULL && f.body_len != 0)
            abort();
        if (strlen(f.flags) >= sizeof f.flags)
            abort();
    }
    struct imap_list l;
    if (imap_list_get(r, &l) == 0)
        check_name(l.raw_name, l.raw_len);
    struct imap_status_data s;
    memset(&s, 0, sizeof s);
    (void)imap_status_get(r, &s);
    (void)imap_caps_have(r->args, "IDLE");
    (void)imap_caps_have(r->code_args, "QRESYNC");
    for (const struct imap_val *v = r->args; v != NULL; v = v->next) {
        unsigned long n = 0;
        uint64_t x;
        if (v->type == IMAP_ATOM) {
            (void)imap_seqset_each(v->s, v->len, count_range, &n);
            (void)imap_val_u64(v, &x);
            check_name(v->s, v->len);
        } else if (v->type == IMAP_STRING) {
            (void)imap_parse_datetime(v->s, v->len);
        }
        (void)imap_list_at(v, 3);
    }
}

static int digest_cb(void *arg, const struct imap_resp *r)
{
    struct digest *d = arg;
    d->count++;
    unsigned char k[3] = {(unsigned char)r->kind, (unsigned char)r->status, (unsigned char)r->has_num};
    mix(d, k, sizeof k);
    mix(d, &r->num, sizeof r->num);
    mix_str(d, r->tag);
    mix_str(d, r->word);
    mix_str(d, r->code);
    mix_str(d, r->text);
    mix_val(d, r->args, 0);
    mix_val(d, r->code_args, 0);
    exercise(r);
    return 0;
}

/* Returns the feed result; *d gets the responses. */
static int run(const uint8_t *data, size_t size, size_t piece, struct digest *d)
{
    d->h = 1469598103934665603ull;
    d->count = 0;
    struct imap_parser *p = imap_parser_new(FUZZ_MAX_LITERAL, digest_cb, d);
    if (p == NULL)
        return -2;
    int rc = 0;
    for (size_t off = 0; off < size && rc == 0; off += piece) {
        size_t n = size - off < piece ? size - off : piece;
        rc = imap_parser_feed(p, (const char *)data + off, n);
        if (imap_parser_pending(p) > IMAP_MAX_TEXT + FUZZ_MAX_LITERAL * IMAP_MAX_LITERALS)
            abort();
    }
    if (rc == -1 && imap_parser_error(p) == NULL)
        abort();
    imap_parser_free(p);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t piece = (size_t)data[0] % 64 + 1;
    data++;
    size--;
    struct digest whole, cut;
    int a = run(data, size, size ? size : 1, &whole);
    int b = run(data, size, piece, &cut);
    if (a == -2 || b == -2)
        return 0; /* out of memory */
    if (a != b || whole.count != cut.count || whole.h != cut.h)
        abort();
    return 0;
}

#ifdef FUZZ_IMAP_REPLAY
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0, n;
    unsigned char *buf = malloc(cap);
    while (buf != NULL && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            unsigned char *t = realloc(buf, cap *= 2);
            if (t == NULL) {
                free(buf);
                buf = NULL;
            } else {
                buf = t;
            }
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (buf == NULL || bad) {
        free(buf);
        fprintf(stderr, "%s: cannot read\n", path);
        return -1;
    }
    /* an exact-size copy, so that ASan sees any read past the input */
    unsigned char *exact = malloc(len ? len : 1);
    if (exact == NULL) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    return 0;
}

int main(int argc, char **argv)
{
    char dflt[4096];
    const char *top = getenv("top_srcdir");
    snprintf(dflt, sizeof dflt, "%s/tests/fuzz/corpus/imap", top != NULL && *top ? top : ".");
    const char *dir = argc > 1 ? argv[1] : dflt;
    struct stat st;
    if (stat(dir, &st) != 0) {
        fprintf(stderr, "%s: %s\n", dir, strerror(errno));
        return 1;
    }
    if (!S_ISDIR(st.st_mode))
        return replay_file(dir) == 0 ? 0 : 1;
    DIR *d = opendir(dir);
    if (d == NULL)
        return 1;
    long count = 0;
    int failed = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (replay_file(path) < 0)
            failed = 1;
        count++;
    }
    closedir(d);
    printf("replayed %ld inputs from %s\n", count, dir);
    return failed || count == 0 ? 1 : 0;
}
#endif

#include "config.h"

#include "mh_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

char *mh_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (s == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

void *mh_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL) {
        fputs("mailhub: out of memory\n", stderr);
        abort();
    }
    return p;
}

char *mh_xstrdup(const char *s)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL) {
        fputs("mailhub: out of memory\n", stderr);
        abort();
    }
    return d;
}

char *mh_path_resolve(const char *base_dir, const char *path)
{
    if (path == NULL)
        return NULL;
    if (path[0] == '/' || base_dir == NULL || base_dir[0] == '\0')
        return mh_xstrdup(path);
    if (strcmp(path, ".") == 0)
        return mh_xstrdup(base_dir);
    if (strncmp(path, "./", 2) == 0)
        path += 2;
    size_t bl = strlen(base_dir);
    while (bl > 1 && base_dir[bl - 1] == '/')
        bl--;
    char *r = mh_asprintf("%.*s/%s", (int)bl, base_dir, path);
    if (r == NULL)
        abort();
    return r;
}

char *mh_dirname(const char *path)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    if (slash == NULL)
        return mh_xstrdup(".");
    if (slash == path)
        return mh_xstrdup("/");
    char *d = mh_xcalloc(1, (size_t)(slash - path) + 1);
    memcpy(d, path, (size_t)(slash - path));
    return d;
}

int mh_mkdir_p(const char *path, unsigned mode)
{
    char *p = strdup(path);
    if (p == NULL)
        return -1;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, (mode_t)mode) != 0 && errno != EEXIST) {
            free(p);
            return -1;
        }
        *s = '/';
    }
    int rc = mkdir(p, (mode_t)mode);
    free(p);
    if (rc != 0 && errno != EEXIST)
        return -1;
    return 0;
}

int mh_random(void *buf, size_t len)
{
    unsigned char *b = buf;
    while (len > 0) {
        ssize_t n = getrandom(b, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        b += n;
        len -= (size_t)n;
    }
    return 0;
}

double mh_time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void mh_time_rfc3339(double t, char *buf, size_t len)
{
    time_t secs = (time_t)t;
    int ms = (int)((t - (double)secs) * 1000.0);
    if (ms < 0)
        ms = 0;
    if (ms > 999)
        ms = 999;
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

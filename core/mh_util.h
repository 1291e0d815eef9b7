/* Small helpers shared by the core. */
#ifndef MH_UTIL_H
#define MH_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <mailhub/plugin.h>

/** malloc'ed printf. Returns NULL on allocation failure. */
char *mh_asprintf(const char *fmt, ...) MH_PRINTF(1, 2);
/** Abort on out-of-memory variants for the core's own small allocations. */
void *mh_xcalloc(size_t n, size_t size);
char *mh_xstrdup(const char *s);
/** Join dir and a relative path; absolute paths are returned as copies. */
char *mh_path_resolve(const char *base_dir, const char *path);
/** Directory part of a path (malloc'ed; "." if none). */
char *mh_dirname(const char *path);
/** mkdir -p with mode. 0 or -1 (errno set). */
int mh_mkdir_p(const char *path, unsigned mode);
/** Random bytes from the OS; 0 or -1. */
int mh_random(void *buf, size_t len);
/** RFC 3339 UTC time with milliseconds into buf (>= 32 bytes). */
void mh_time_rfc3339(double t, char *buf, size_t len);
/** Wall-clock seconds since the epoch. */
double mh_time_now(void);

#endif

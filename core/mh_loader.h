/*
 * The plugin loader.  The only file that includes ltdl.h is mh_loader.c.
 */
#ifndef MH_LOADER_H
#define MH_LOADER_H

#include <mailhub/plugin.h>

struct mh_loader;

/** A loaded, checked plugin module. */
struct mh_module {
    char *name;             /* module name, e.g. "log" */
    char *file;             /* the file that was opened */
    struct mh_plugin desc;  /* copy of the descriptor; fields past its struct_size are zero */
};

struct mh_loader *mh_loader_new(const char *const *search_path, size_t n);
/** Close every module and free; sets *l to NULL. */
void mh_loader_free(struct mh_loader **l);
/**
 * Open module `name` from the search path and check its descriptor.
 * Returns the module (cached: opening a name twice gives the same module),
 * or NULL with a malloc'ed message in *err_out that names the file and the
 * reason (wrong ABI major, newer minor, descriptor too small, a mandatory
 * callback missing, an unresolved symbol, no descriptor, not found).
 */
const struct mh_module *mh_loader_open(struct mh_loader *l, const char *name, char **err_out);
/**
 * Check a descriptor (pure; used by mh_loader_open and the tests).  `avail`
 * is how many bytes of it may be read (at least 8).  On success fills *copy.
 * Returns 0 or -1 with a malloc'ed reason (without the file name) in *err_out.
 */
int mh_loader_check(const struct mh_plugin *desc, struct mh_plugin *copy, char **err_out);
/**
 * Call cb for every module file found on the search path (each name once,
 * the first directory winning), loaded or refused.  `m` is NULL when refused;
 * then `err` says why.
 */
void mh_loader_scan(struct mh_loader *l,
                    void (*cb)(const char *name, const struct mh_module *m, const char *err, void *arg),
                    void *arg);

#endif

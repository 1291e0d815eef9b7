#include "config.h"

#include "mh_loader.h"
#include "mh_log.h"
#include "mh_util.h"

#include <dirent.h>
#include <dlfcn.h>
#include <ltdl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <mailhub/notifier.h>
#include <mailhub/provider.h>
#include <mailhub/store.h>

/* Size of an ABI 1.0 descriptor: every field up to and including `ops`. */
#define MH_PLUGIN_SIZE_1_0 (offsetof(struct mh_plugin, ops) + sizeof(const void *))
/* Smallest kind tables of ABI 1.0. */
#define MH_PROVIDER_OPS_SIZE_1_0 (offsetof(struct mh_provider_ops, status_json) + sizeof(void *))
#define MH_NOTIFIER_OPS_SIZE_1_0 (offsetof(struct mh_notifier_ops, send) + sizeof(void *))
/* Stores: the 1.0 table is no longer accepted (see store.h); 1.1 added the records. */
#define MH_STORE_OPS_SIZE_1_1 (offsetof(struct mh_store_ops, quota_history) + sizeof(void *))
#define MH_MAX_OPTIONS 512

struct mh_loader_entry {
    struct mh_module mod;
    lt_dlhandle handle;
};

struct mh_loader {
    char *search_path; /* ':'-separated, as libltdl wants it */
    char **dirs;
    size_t n_dirs;
    struct mh_loader_entry **mods;
    size_t n_mods;
};


struct mh_loader *mh_loader_new(const char *const *search_path, size_t n)
{
    struct mh_loader *l = mh_xcalloc(1, sizeof *l);
    /* lt_dlinit/lt_dlexit are reference counted by libltdl */
    lt_dlinit();
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(search_path[i]) + 1;
    l->search_path = mh_xcalloc(1, len);
    l->dirs = mh_xcalloc(n ? n : 1, sizeof *l->dirs);
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(l->search_path, ":");
        strcat(l->search_path, search_path[i]);
        l->dirs[l->n_dirs++] = mh_xstrdup(search_path[i]);
    }
    lt_dlsetsearchpath(l->search_path);
    return l;
}

void mh_loader_free(struct mh_loader **lp)
{
    struct mh_loader *l = lp ? *lp : NULL;
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n_mods; i++) {
        if (l->mods[i]->handle)
            lt_dlclose(l->mods[i]->handle);
        free(l->mods[i]->mod.name);
        free(l->mods[i]->mod.file);
        free(l->mods[i]);
    }
    free(l->mods);
    for (size_t i = 0; i < l->n_dirs; i++)
        free(l->dirs[i]);
    free(l->dirs);
    free(l->search_path);
    free(l);
    lt_dlexit();
    *lp = NULL;
}

static const char *kind_name(int kind)
{
    switch (kind) {
    case MH_KIND_PROVIDER:
        return "provider";
    case MH_KIND_NOTIFIER:
        return "notifier";
    case MH_KIND_STORE:
        return "store";
    default:
        return NULL;
    }
}

static int fail(char **err_out, const char *fmt, ...) MH_PRINTF(2, 3);
static int fail(char **err_out, const char *fmt, ...)
{
    if (err_out) {
        char buf[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        *err_out = mh_xstrdup(buf);
    }
    return -1;
}

static int valid_name(const char *s)
{
    if (s == NULL || *s == '\0' || strlen(s) > 64)
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
            return 0;
    return 1;
}

static int check_options(const struct mh_option *opts, char **err_out)
{
    if (opts == NULL)
        return 0;
    for (size_t i = 0; i < MH_MAX_OPTIONS; i++) {
        const struct mh_option *o = &opts[i];
        if (o->type == MH_OPT_END && o->name == NULL)
            return 0;
        if (!valid_name(o->name))
            return fail(err_out, "option %zu has an invalid name", i);
        if (o->type < MH_OPT_STR || o->type > MH_OPT_ENUM)
            return fail(err_out, "option '%s' has an unknown type %d", o->name, (int)o->type);
        if (o->type == MH_OPT_ENUM && (o->choices == NULL || *o->choices == '\0'))
            return fail(err_out, "enum option '%s' lists no choices", o->name);
    }
    return fail(err_out, "option table is not terminated with MH_OPT_TABLE_END (more than %d entries)",
                MH_MAX_OPTIONS);
}

int mh_loader_check(const struct mh_plugin *desc, struct mh_plugin *copy, char **err_out)
{
    if (err_out)
        *err_out = NULL;
    if (desc == NULL)
        return fail(err_out, "no descriptor");
    uint32_t major = MH_ABI_VERSION_MAJOR(desc->abi_version);
    uint32_t minor = MH_ABI_VERSION_MINOR(desc->abi_version);
    if (major != MH_ABI_MAJOR)
        return fail(err_out, "built for plugin ABI %u.%u, but this mailhubd speaks ABI %d.%d (major differs: rebuild it "
                    "against this SDK)", major, minor, MH_ABI_MAJOR, MH_ABI_MINOR);
    if (minor > MH_ABI_MINOR)
        return fail(err_out, "built for plugin ABI %u.%u, newer than this mailhubd's %d.%d: upgrade mailhubd",
                    major, minor, MH_ABI_MAJOR, MH_ABI_MINOR);
    if (desc->struct_size < MH_PLUGIN_SIZE_1_0)
        return fail(err_out, "descriptor too small: struct_size %u, ABI %d.0 needs at least %zu bytes",
                    desc->struct_size, MH_ABI_MAJOR, (size_t)MH_PLUGIN_SIZE_1_0);

    struct mh_plugin c;
    memset(&c, 0, sizeof c);
    memcpy(&c, desc, desc->struct_size < sizeof c ? desc->struct_size : sizeof c);

    const char *kn = kind_name(c.kind);
    if (kn == NULL)
        return fail(err_out, "unknown plugin kind %d", (int)c.kind);
    if (!valid_name(c.name))
        return fail(err_out, "descriptor has no valid name ([a-z0-9_-]+)");
    if (c.version == NULL || *c.version == '\0')
        return fail(err_out, "%s plugin '%s' has no version", kn, c.name);
    if (c.init == NULL)
        return fail(err_out, "%s plugin '%s' lacks the mandatory callback init", kn, c.name);
    if (c.free == NULL)
        return fail(err_out, "%s plugin '%s' lacks the mandatory callback free", kn, c.name);
    if (c.ops == NULL)
        return fail(err_out, "%s plugin '%s' has no ops table", kn, c.name);
    uint32_t ops_size = *(const uint32_t *)c.ops;
    switch (c.kind) {
    case MH_KIND_PROVIDER:
        if (ops_size < MH_PROVIDER_OPS_SIZE_1_0)
            return fail(err_out, "provider ops table too small (%u bytes)", ops_size);
        if (c.start == NULL)
            return fail(err_out, "provider plugin '%s' lacks the mandatory callback start", c.name);
        break;
    case MH_KIND_NOTIFIER: {
        if (ops_size < MH_NOTIFIER_OPS_SIZE_1_0)
            return fail(err_out, "notifier ops table too small (%u bytes)", ops_size);
        const struct mh_notifier_ops *n = c.ops;
        if (n->send == NULL)
            return fail(err_out, "notifier plugin '%s' lacks the mandatory callback send", c.name);
        break;
    }
    case MH_KIND_STORE: {
        if (ops_size < MH_STORE_OPS_SIZE_1_1)
            return fail(err_out,
                        "store ops table too small (%u bytes): stores must be built against SDK 1.1 or later "
                        "(the 1.0 store interface is no longer supported)",
                        ops_size);
        const struct mh_store_ops *s = c.ops;
        const char *missing = s->open == NULL          ? "open"
                              : s->put_message == NULL ? "put_message"
                              : s->usage == NULL       ? "usage"
                              : s->quota_get == NULL   ? "quota_get"
                              : s->quota_set == NULL   ? "quota_set"
                              : s->user_put == NULL    ? "user_put"
                              : s->user_get == NULL    ? "user_get"
                              : s->user_list == NULL   ? "user_list"
                              : s->user_delete == NULL ? "user_delete"
                              : s->token_put == NULL   ? "token_put"
                              : s->token_get == NULL   ? "token_get"
                              : s->token_delete == NULL ? "token_delete"
                              : s->account_put == NULL ? "account_put"
                              : s->account_get == NULL ? "account_get"
                              : s->account_list == NULL ? "account_list"
                              : s->account_delete == NULL ? "account_delete"
                              : s->folder_list == NULL ? "folder_list"
                              : s->msg_list == NULL    ? "msg_list"
                              : s->quota_history == NULL ? "quota_history"
                                                       : NULL;
        if (missing)
            return fail(err_out, "store plugin '%s' lacks the mandatory callback %s", c.name, missing);
        break;
    }
    }
    char *oerr = NULL;
    if (check_options(c.options, &oerr) != 0) {
        fail(err_out, "%s plugin '%s': %s", kn, c.name, oerr);
        free(oerr);
        return -1;
    }
    if (copy)
        *copy = c;
    return 0;
}

/* Find the shared object libltdl would open for `name`, by asking libltdl itself. */
static char *locate(const char *name)
{
    lt_dlhandle h = lt_dlopenext(name);
    if (h == NULL)
        return NULL;
    const lt_dlinfo *info = lt_dlgetinfo(h);
    char *path = info && info->filename ? mh_xstrdup(info->filename) : NULL;
    lt_dlclose(h);
    return path;
}

static struct mh_loader_entry *find_loaded(struct mh_loader *l, const char *name)
{
    for (size_t i = 0; i < l->n_mods; i++)
        if (strcmp(l->mods[i]->mod.name, name) == 0)
            return l->mods[i];
    return NULL;
}

static char *first_existing_file(struct mh_loader *l, const char *name)
{
    static const char *const exts[] = {".la", ".so"};
    for (size_t i = 0; i < l->n_dirs; i++) {
        for (size_t e = 0; e < 2; e++) {
            char *p = mh_asprintf("%s/%s%s", l->dirs[i], name, exts[e]);
            struct stat st;
            if (p && stat(p, &st) == 0 && S_ISREG(st.st_mode))
                return p;
            free(p);
        }
    }
    return NULL;
}

const struct mh_module *mh_loader_open(struct mh_loader *l, const char *name, char **err_out)
{
    if (err_out)
        *err_out = NULL;
    struct mh_loader_entry *e = find_loaded(l, name);
    if (e)
        return &e->mod;
    if (!valid_name(name)) {
        fail(err_out, "'%s' is not a valid plugin name", name);
        return NULL;
    }

    char *path = locate(name);
    if (path == NULL) {
        /* libltdl says "file not found" for every failure; find the real reason. */
        char *file = first_existing_file(l, name);
        if (file == NULL) {
            fail(err_out, "plugin '%s' not found in the plugin path (%s)", name, l->search_path);
            return NULL;
        }
        char *so = file;
        size_t fl = strlen(file);
        if (fl > 3 && strcmp(file + fl - 3, ".la") == 0) {
            /* an uninstalled or installed .la: try the .so beside it and in .libs/ */
            char *dir = mh_dirname(file);
            char *a = mh_asprintf("%s/%s.so", dir, name), *b = mh_asprintf("%s/.libs/%s.so", dir, name);
            struct stat st;
            so = (a && stat(a, &st) == 0) ? a : b;
            free(so == a ? b : a);
            free(dir);
        }
        void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
        if (h == NULL)
            fail(err_out, "%s: cannot be loaded: %s", file, dlerror());
        else {
            dlclose(h);
            fail(err_out, "%s: cannot be loaded: %s", file, lt_dlerror() ? lt_dlerror() : "unknown error");
        }
        if (so != file)
            free(so);
        free(file);
        return NULL;
    }

    /*
     * libltdl binds lazily: a module with an unresolved symbol opens fine and
     * the daemon would die at the first call.  Load it once with RTLD_NOW to
     * resolve everything up front, and keep that reference while libltdl
     * opens it, so the lazy open reuses the fully bound object.
     */
    void *now = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (now == NULL) {
        fail(err_out, "%s: refused: %s", path, dlerror());
        free(path);
        return NULL;
    }
    lt_dlhandle h = lt_dlopenext(name);
    dlclose(now);
    if (h == NULL) {
        fail(err_out, "%s: cannot be loaded: %s", path, lt_dlerror());
        free(path);
        return NULL;
    }
    const struct mh_plugin *desc = lt_dlsym(h, MH_PLUGIN_SYMBOL);
    if (desc == NULL) {
        fail(err_out, "%s: refused: it exports no '%s' symbol (is it a mailhub plugin? use MH_PLUGIN_DEFINE)",
             path, MH_PLUGIN_SYMBOL);
        lt_dlclose(h);
        free(path);
        return NULL;
    }
    struct mh_plugin copy;
    char *why = NULL;
    if (mh_loader_check(desc, &copy, &why) != 0) {
        fail(err_out, "%s: refused: %s", path, why);
        free(why);
        lt_dlclose(h);
        free(path);
        return NULL;
    }
    if (strcmp(copy.name, name) != 0) {
        fail(err_out, "%s: refused: its descriptor names it '%s', but the module is '%s' (they must match)", path,
             copy.name, name);
        lt_dlclose(h);
        free(path);
        return NULL;
    }
    e = mh_xcalloc(1, sizeof *e);
    e->mod.name = mh_xstrdup(name);
    e->mod.file = path;
    e->mod.desc = copy;
    e->handle = h;
    struct mh_loader_entry **nm = realloc(l->mods, (l->n_mods + 1) * sizeof *nm);
    if (nm == NULL)
        abort();
    l->mods = nm;
    l->mods[l->n_mods++] = e;
    return &e->mod;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void mh_loader_scan(struct mh_loader *l,
                    void (*cb)(const char *name, const struct mh_module *m, const char *err, void *arg), void *arg)
{
    char **names = NULL;
    size_t n = 0;
    for (size_t i = 0; i < l->n_dirs; i++) {
        DIR *d = opendir(l->dirs[i]);
        if (d == NULL)
            continue;
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            size_t len = strlen(de->d_name);
            const char *ext = len > 3 ? de->d_name + len - 3 : "";
            if (strcmp(ext, ".la") != 0 && strcmp(ext, ".so") != 0)
                continue;
            char *nm = mh_xcalloc(1, len - 2);
            memcpy(nm, de->d_name, len - 3);
            int dup = 0;
            for (size_t k = 0; k < n && !dup; k++)
                dup = strcmp(names[k], nm) == 0;
            if (dup || nm[0] == '\0') {
                free(nm);
                continue;
            }
            char **nn = realloc(names, (n + 1) * sizeof *nn);
            if (nn == NULL)
                abort();
            names = nn;
            names[n++] = nm;
        }
        closedir(d);
    }
    if (n > 1)
        qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        char *err = NULL;
        const struct mh_module *m = mh_loader_open(l, names[i], &err);
        cb(names[i], m, err, arg);
        free(err);
        free(names[i]);
    }
    free(names);
}

/*
 * log: a notifier that appends every event it is given, as the JSON envelope
 * the core built, to a file: one event per line (JSON Lines).
 *
 * The file is opened with O_APPEND, so a rotation that copies and truncates
 * works as is.  A rotation that renames or removes the file is noticed at the
 * next event (the path no longer names the open file) and the path is opened
 * again; reload() (SIGHUP with changed options) reopens it too.  A line is
 * written with one writev(); if it cannot be written whole (disk full...),
 * what was written of it is cut off again so the file stays line-oriented,
 * and send asks the core to retry later.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include <mailhub/plugin.h>
#include <mailhub/notifier.h>

struct evlog {
    struct mh_plugin_ctx *ctx;
    char *path; /* absolute */
    int fd;     /* -1 when not open */
    int fsync;
};

static const struct mh_option evlog_options[] = {
    {"path", MH_OPT_STR, "events.log", 0, "file to append events to (relative to the data directory)", NULL,
     0, 0},
    {"fsync", MH_OPT_BOOL, "false", 0, "fdatasync after every line: survives power loss, costs a disk flush",
     NULL, 0, 0},
    MH_OPT_TABLE_END,
};

static char *evlog_resolve(struct mh_plugin_ctx *ctx, const char *path)
{
    return mh_data_path(ctx, path == NULL || *path == '\0' ? "events.log" : path);
}

static int evlog_open_path(struct evlog *el, const char *path, int *fd_out)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        mh_set_error(el->ctx, "cannot open %s: %s", path, strerror(e));
        return e == ENOSPC || e == EINTR || e == EMFILE || e == ENFILE ? MH_ERETRY : MH_ERR;
    }
    *fd_out = fd;
    return MH_OK;
}

static int evlog_init(struct mh_plugin_ctx *ctx, const struct mh_config *cfg, void **state_out)
{
    struct evlog *el = mh_calloc(1, sizeof *el);
    if (el == NULL)
        return MH_ENOMEM;
    el->ctx = ctx;
    el->fd = -1;
    el->fsync = mh_cfg_bool(cfg, "fsync");
    el->path = evlog_resolve(ctx, mh_cfg_str(cfg, "path"));
    if (el->path == NULL) {
        mh_free(el);
        return MH_ENOMEM;
    }
    *state_out = el;
    return MH_OK;
}

static int evlog_start(void *state)
{
    struct evlog *el = state;
    if (el->fd >= 0)
        return MH_OK;
    int rc = evlog_open_path(el, el->path, &el->fd);
    if (rc == MH_OK)
        mh_log_info(el->ctx, "appending events to %s", el->path);
    return rc;
}

/* If the path was renamed away or removed, open it again (a new file). */
static void evlog_follow_rotation(struct evlog *el)
{
    struct stat open_st, path_st;
    if (fstat(el->fd, &open_st) != 0)
        return;
    int moved = stat(el->path, &path_st) != 0
                    ? errno == ENOENT
                    : path_st.st_dev != open_st.st_dev || path_st.st_ino != open_st.st_ino;
    if (!moved)
        return;
    int fd;
    if (evlog_open_path(el, el->path, &fd) != MH_OK) {
        /* Keep appending to the moved file rather than losing events. */
        mh_log_warn(el->ctx, "%s was moved away and cannot be created again; still writing to the old file",
                    el->path);
        return;
    }
    close(el->fd);
    el->fd = fd;
    mh_log_info(el->ctx, "%s was moved away: reopened", el->path);
}

/* writev until everything is written; 0, or -1 with errno. */
static int evlog_write_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t w = writev(fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        size_t left = (size_t)w;
        while (n > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

static int evlog_send(void *state, const struct mh_event *ev, struct mh_job *job)
{
    struct evlog *el = state;
    (void)job;
    if (ev == NULL || ev->json == NULL)
        return MH_EINVAL;
    if (el->fd < 0) {
        int rc = evlog_open_path(el, el->path, &el->fd);
        if (rc != MH_OK)
            return rc == MH_ERR ? MH_ERETRY : rc; /* the directory may come back */
    }
    evlog_follow_rotation(el);
    size_t len = ev->json_len > 0 ? ev->json_len : strlen(ev->json);
    const char *json = ev->json;
    char *copy = NULL;
    /* Raw newlines can only be whitespace between JSON tokens (they must be
     * escaped inside strings), so blanking them keeps the JSON and the line. */
    if (memchr(json, '\n', len) != NULL || memchr(json, '\r', len) != NULL) {
        copy = mh_malloc(len);
        if (copy == NULL)
            return MH_ENOMEM;
        for (size_t i = 0; i < len; i++)
            copy[i] = json[i] == '\n' || json[i] == '\r' ? ' ' : json[i];
        json = copy;
    }
    struct stat st;
    off_t before = fstat(el->fd, &st) == 0 ? st.st_size : -1;
    struct iovec iov[2] = {{(void *)json, len}, {(void *)"\n", 1}};
    int rc = MH_OK;
    const char *what = NULL;
    if (evlog_write_all(el->fd, iov, 2) != 0)
        what = "write";
    else if (el->fsync && fdatasync(el->fd) != 0)
        what = "fdatasync";
    if (what != NULL) {
        int e = errno;
        /* Cut a torn line off so the retry does not leave half a line before it. */
        if (before >= 0 && ftruncate(el->fd, before) != 0)
            mh_log_warn(el->ctx, "cannot truncate %s after a failed write: %s", el->path, strerror(errno));
        mh_set_error(el->ctx, "%s %s: %s", what, el->path, strerror(e));
        rc = MH_ERETRY;
    }
    mh_free(copy);
    return rc;
}

/* SIGHUP: apply a changed path or fsync, and reopen the file (rotation). */
static int evlog_reload(void *state, const struct mh_config *cfg)
{
    struct evlog *el = state;
    char *path = evlog_resolve(el->ctx, mh_cfg_str(cfg, "path"));
    if (path == NULL)
        return MH_ENOMEM;
    int fd;
    int rc = evlog_open_path(el, path, &fd);
    if (rc != MH_OK) {
        /* Keep writing to the old file rather than dropping events. */
        mh_free(path);
        return rc;
    }
    if (el->fd >= 0)
        close(el->fd);
    el->fd = fd;
    if (strcmp(path, el->path) != 0)
        mh_log_info(el->ctx, "appending events to %s (was %s)", path, el->path);
    else
        mh_log_info(el->ctx, "reopened %s", path);
    mh_free(el->path);
    el->path = path;
    el->fsync = mh_cfg_bool(cfg, "fsync");
    return MH_OK;
}

static void evlog_free(void *state)
{
    struct evlog *el = state;
    if (el == NULL)
        return;
    if (el->fd >= 0)
        close(el->fd);
    mh_free(el->path);
    mh_free(el);
}

static const struct mh_notifier_ops evlog_ops = {
    .struct_size = sizeof(struct mh_notifier_ops),
    .send = evlog_send,
};

MH_PLUGIN_DEFINE(log, .kind = MH_KIND_NOTIFIER, .name = "log", .version = "1.0.0",
                 .description = "append every event as one JSON line to a file", .options = evlog_options,
                 .init = evlog_init, .start = evlog_start, .free = evlog_free, .reload = evlog_reload,
                 .ops = &evlog_ops);

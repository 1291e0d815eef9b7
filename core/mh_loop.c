/*
 * The event loop: a thin layer over libev.  This is the only file that includes ev.h,
 * so that plugins and the rest of the core never depend on libev's watcher layout.
 *
 * The first loop created in the process wraps libev's default loop (EV_DEFAULT), as the
 * daemon's loop: only the default loop can watch child processes.  Beware that libev's
 * default loop installs a SIGCHLD handler that reaps every child (waitpid(-1)), so code
 * that spawns processes cannot waitpid() for them itself.  A loop created while the
 * default loop is taken (tests running two at once) gets its own ev_loop_new(EVFLAG_AUTO);
 * signals work on it too (libev 4), but a given signal can be watched by one loop at a
 * time.
 *
 * Timers and io watches are kept on one intrusive list per loop, tagged with their
 * owner, so that all of a plugin instance's watchers can be released at once.  The glue
 * callbacks never touch a watcher after calling its user callback: a callback may free
 * its own watcher (or any other one).
 */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <ev.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "mh_loop.h"

enum mh_watch_kind { MH_WATCH_TIMER = 1, MH_WATCH_IO = 2 };

/* Common head of timers and io watches: the owner list link. */
struct mh_watch {
    struct mh_watch *prev, *next;
    struct mh_loop *loop;
    void *owner;
    enum mh_watch_kind kind;
};

struct mh_timer {
    struct mh_watch w;
    ev_timer ev;
    double repeat;
    mh_timer_cb cb;
    void *arg;
};

struct mh_io {
    struct mh_watch w;
    ev_io ev;
    int fd;
    int events;
    mh_io_cb cb;
    void *arg;
};

struct mh_signal {
    struct mh_signal *prev, *next;
    struct mh_loop *loop;
    ev_signal ev;
    void (*cb)(int signum, void *arg);
    void *arg;
};

struct mh_async {
    struct mh_async *prev, *next;
    struct mh_loop *loop;
    ev_async ev;
    void (*cb)(void *arg);
    void *arg;
};

struct mh_loop {
    struct ev_loop *ev;
    int is_default;
    struct mh_watch watches; /* sentinel of the timer + io list */
    struct mh_signal *signals;
    struct mh_async *asyncs;
};

/* Whether some mh_loop currently wraps libev's default loop. */
static atomic_int mh_default_taken;

/* ------------------------------------------------------------ owner list */

static void watch_link(struct mh_loop *loop, struct mh_watch *w, void *owner, enum mh_watch_kind kind)
{
    w->loop = loop;
    w->owner = owner;
    w->kind = kind;
    w->next = loop->watches.next;
    w->prev = &loop->watches;
    loop->watches.next->prev = w;
    loop->watches.next = w;
}

static void watch_unlink(struct mh_watch *w)
{
    w->prev->next = w->next;
    w->next->prev = w->prev;
    w->prev = w->next = NULL;
}

/* ------------------------------------------------------------------ loop */

struct mh_loop *mh_loop_new(void)
{
    struct mh_loop *loop = calloc(1, sizeof *loop);
    if (loop == NULL)
        return NULL;
    int expected = 0;
    if (atomic_compare_exchange_strong(&mh_default_taken, &expected, 1)) {
        loop->ev = ev_default_loop(EVFLAG_AUTO);
        if (loop->ev == NULL)
            atomic_store(&mh_default_taken, 0);
        else
            loop->is_default = 1;
    } else {
        loop->ev = ev_loop_new(EVFLAG_AUTO);
    }
    if (loop->ev == NULL) {
        free(loop);
        return NULL;
    }
    loop->watches.next = loop->watches.prev = &loop->watches;
    return loop;
}

void mh_loop_free(struct mh_loop **loopp)
{
    if (loopp == NULL || *loopp == NULL)
        return;
    struct mh_loop *loop = *loopp;
    while (loop->watches.next != &loop->watches) {
        struct mh_watch *w = loop->watches.next;
        if (w->kind == MH_WATCH_TIMER) {
            struct mh_timer *t = (struct mh_timer *)w;
            mh_timer_free(&t);
        } else {
            struct mh_io *io = (struct mh_io *)w;
            mh_io_free(&io);
        }
    }
    while (loop->signals != NULL) {
        struct mh_signal *s = loop->signals;
        mh_signal_free(&s);
    }
    while (loop->asyncs != NULL) {
        struct mh_async *a = loop->asyncs;
        mh_async_free(&a);
    }
    ev_loop_destroy(loop->ev);
    if (loop->is_default)
        atomic_store(&mh_default_taken, 0);
    free(loop);
    *loopp = NULL;
}

int mh_loop_run(struct mh_loop *loop)
{
    ev_run(loop->ev, 0);
    return MH_OK;
}

void mh_loop_run_once(struct mh_loop *loop, int block)
{
    ev_run(loop->ev, block ? EVRUN_ONCE : EVRUN_NOWAIT);
}

void mh_loop_break(struct mh_loop *loop)
{
    ev_break(loop->ev, EVBREAK_ALL);
}

double mh_loop_now(struct mh_loop *loop)
{
    return ev_now(loop->ev);
}

void *mh_loop_ev(struct mh_loop *loop)
{
    return loop->ev;
}

/* ---------------------------------------------------------------- timers */

/*
 * Timers count from the loop's cached time.  Outside ev_run (start-up code, tests) that
 * time may be long stale and the timer would fire early, so refresh it there; inside a
 * callback the cached time is what libev wants.
 */
static void now_refresh(struct ev_loop *ev)
{
    if (ev_depth(ev) == 0)
        ev_now_update(ev);
}

static void timer_ev_cb(struct ev_loop *ev, ev_timer *w, int revents)
{
    struct mh_timer *t = w->data;
    /* The callback may free t: nothing below may touch it. */
    t->cb(t, t->arg);
}

struct mh_timer *mh_timer_new(struct mh_loop *loop, void *owner, double after, double repeat, mh_timer_cb cb,
                              void *arg)
{
    if (loop == NULL || cb == NULL)
        return NULL;
    struct mh_timer *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    if (!(after > 0))
        after = 0;
    if (!(repeat > 0))
        repeat = 0;
    t->repeat = repeat;
    t->cb = cb;
    t->arg = arg;
    ev_timer_init(&t->ev, timer_ev_cb, after, repeat);
    t->ev.data = t;
    watch_link(loop, &t->w, owner, MH_WATCH_TIMER);
    now_refresh(loop->ev);
    ev_timer_start(loop->ev, &t->ev);
    return t;
}

void mh_timer_again(struct mh_timer *t, double after)
{
    if (t == NULL)
        return;
    if (!(after > 0))
        after = 0;
    struct ev_loop *ev = t->w.loop->ev;
    ev_timer_stop(ev, &t->ev);
    now_refresh(ev);
    ev_timer_set(&t->ev, after, t->repeat);
    ev_timer_start(ev, &t->ev);
}

void mh_timer_stop(struct mh_timer *t)
{
    if (t != NULL)
        ev_timer_stop(t->w.loop->ev, &t->ev);
}

int mh_timer_active(const struct mh_timer *t)
{
    return t != NULL && (ev_is_active(&t->ev) || ev_is_pending(&t->ev));
}

void mh_timer_free(struct mh_timer **tp)
{
    if (tp == NULL || *tp == NULL)
        return;
    struct mh_timer *t = *tp;
    /* Stopping also clears a pending event, so freeing while pending is safe. */
    ev_timer_stop(t->w.loop->ev, &t->ev);
    watch_unlink(&t->w);
    free(t);
    *tp = NULL;
}

/* ------------------------------------------------------------- io watches */

static int io_ev_mask(int events)
{
    return ((events & MH_IO_READ) ? EV_READ : 0) | ((events & MH_IO_WRITE) ? EV_WRITE : 0);
}

static void io_ev_cb(struct ev_loop *ev, ev_io *w, int revents)
{
    struct mh_io *io = w->data;
    int mask = 0;
    if (revents & EV_READ)
        mask |= MH_IO_READ;
    if (revents & EV_WRITE)
        mask |= MH_IO_WRITE;
    if (revents & EV_ERROR) {
        /* libev stopped the watcher (bad fd): let the owner find out from its own I/O. */
        mask |= io->events & (MH_IO_READ | MH_IO_WRITE);
    }
    /* The callback may free io: nothing below may touch it. */
    io->cb(io, io->fd, mask, io->arg);
}

struct mh_io *mh_io_new(struct mh_loop *loop, void *owner, int fd, int events, mh_io_cb cb, void *arg)
{
    if (loop == NULL || fd < 0 || cb == NULL)
        return NULL;
    struct mh_io *io = calloc(1, sizeof *io);
    if (io == NULL)
        return NULL;
    io->fd = fd;
    io->events = events & (MH_IO_READ | MH_IO_WRITE);
    io->cb = cb;
    io->arg = arg;
    ev_io_init(&io->ev, io_ev_cb, fd, io_ev_mask(io->events));
    io->ev.data = io;
    watch_link(loop, &io->w, owner, MH_WATCH_IO);
    if (io->events != 0)
        ev_io_start(loop->ev, &io->ev);
    return io;
}

void mh_io_modify(struct mh_io *io, int events)
{
    if (io == NULL)
        return;
    events &= MH_IO_READ | MH_IO_WRITE;
    struct ev_loop *ev = io->w.loop->ev;
    if (events == io->events && (events == 0 || ev_is_active(&io->ev)))
        return;
    /* libev requires the watcher to be stopped before it is re-initialised. */
    ev_io_stop(ev, &io->ev);
    io->events = events;
    ev_io_set(&io->ev, io->fd, io_ev_mask(events));
    if (events != 0)
        ev_io_start(ev, &io->ev);
}

void mh_io_free(struct mh_io **iop)
{
    if (iop == NULL || *iop == NULL)
        return;
    struct mh_io *io = *iop;
    ev_io_stop(io->w.loop->ev, &io->ev);
    watch_unlink(&io->w);
    free(io);
    *iop = NULL;
}

/* ---------------------------------------------------------------- signals */

static void signal_ev_cb(struct ev_loop *ev, ev_signal *w, int revents)
{
    struct mh_signal *s = w->data;
    s->cb(w->signum, s->arg);
}

struct mh_signal *mh_signal_new(struct mh_loop *loop, int signum, void (*cb)(int signum, void *arg),
                                void *arg)
{
    if (loop == NULL || cb == NULL || signum <= 0)
        return NULL;
    struct mh_signal *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->loop = loop;
    s->cb = cb;
    s->arg = arg;
    ev_signal_init(&s->ev, signal_ev_cb, signum);
    s->ev.data = s;
    s->next = loop->signals;
    if (loop->signals != NULL)
        loop->signals->prev = s;
    loop->signals = s;
    ev_signal_start(loop->ev, &s->ev);
    return s;
}

void mh_signal_free(struct mh_signal **sp)
{
    if (sp == NULL || *sp == NULL)
        return;
    struct mh_signal *s = *sp;
    ev_signal_stop(s->loop->ev, &s->ev);
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        s->loop->signals = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    free(s);
    *sp = NULL;
}

/* ------------------------------------------------------------------ async */

static void async_ev_cb(struct ev_loop *ev, ev_async *w, int revents)
{
    struct mh_async *a = w->data;
    a->cb(a->arg);
}

struct mh_async *mh_async_new(struct mh_loop *loop, void (*cb)(void *arg), void *arg)
{
    if (loop == NULL || cb == NULL)
        return NULL;
    struct mh_async *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    a->loop = loop;
    a->cb = cb;
    a->arg = arg;
    ev_async_init(&a->ev, async_ev_cb);
    a->ev.data = a;
    a->next = loop->asyncs;
    if (loop->asyncs != NULL)
        loop->asyncs->prev = a;
    loop->asyncs = a;
    ev_async_start(loop->ev, &a->ev);
    return a;
}

void mh_async_send(struct mh_async *a)
{
    if (a != NULL)
        ev_async_send(a->loop->ev, &a->ev);
}

void mh_async_free(struct mh_async **ap)
{
    if (ap == NULL || *ap == NULL)
        return;
    struct mh_async *a = *ap;
    ev_async_stop(a->loop->ev, &a->ev);
    if (a->prev != NULL)
        a->prev->next = a->next;
    else
        a->loop->asyncs = a->next;
    if (a->next != NULL)
        a->next->prev = a->prev;
    free(a);
    *ap = NULL;
}

/* ----------------------------------------------------------------- owners */

void mh_loop_cancel_owner(struct mh_loop *loop, void *owner)
{
    if (loop == NULL)
        return;
    /* Freeing runs no callback, so the saved next pointer stays valid. */
    struct mh_watch *w = loop->watches.next;
    while (w != &loop->watches) {
        struct mh_watch *next = w->next;
        if (w->owner == owner) {
            if (w->kind == MH_WATCH_TIMER) {
                struct mh_timer *t = (struct mh_timer *)w;
                mh_timer_free(&t);
            } else {
                struct mh_io *io = (struct mh_io *)w;
                mh_io_free(&io);
            }
        }
        w = next;
    }
}

size_t mh_loop_owner_count(struct mh_loop *loop, void *owner)
{
    size_t n = 0;
    if (loop == NULL)
        return 0;
    for (struct mh_watch *w = loop->watches.next; w != &loop->watches; w = w->next)
        if (w->owner == owner)
            n++;
    return n;
}

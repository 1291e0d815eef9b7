/*
 * The event loop.  The only file that includes ev.h is mh_loop.c.
 * Every watcher has an `owner` (a plugin instance context, or NULL for the
 * core) so that all of an instance's watchers can be cancelled at once.
 * Thread: everything here runs on the loop thread, except mh_async_send().
 */
#ifndef MH_LOOP_H
#define MH_LOOP_H

#include <mailhub/plugin.h>

struct mh_loop;
struct mh_signal;
struct mh_async;

/**
 * The first loop of the process wraps libev's default loop (the daemon's loop; its
 * SIGCHLD handler reaps every child process); a loop made while that one exists gets
 * a loop of its own.
 */
struct mh_loop *mh_loop_new(void);
/**
 * Cancel every remaining watcher and free the loop; sets *loop to NULL.  Free the
 * transfer layer and the worker pool (which own watchers) before their loop.
 */
void mh_loop_free(struct mh_loop **loop);
/** Run until mh_loop_break() or no active watchers remain (signals and asyncs count). */
int mh_loop_run(struct mh_loop *loop);
/** Run one iteration, blocking for events if `block` (tests). */
void mh_loop_run_once(struct mh_loop *loop, int block);
void mh_loop_break(struct mh_loop *loop);
/** Cached loop time, seconds since the epoch. */
double mh_loop_now(struct mh_loop *loop);
/** Raw `struct ev_loop *`, for mh_xfer.c only. */
void *mh_loop_ev(struct mh_loop *loop);

/* Timers: after seconds, then every repeat seconds (0: one-shot, stays allocated). */
struct mh_timer *mh_timer_new(struct mh_loop *loop, void *owner, double after, double repeat,
                              mh_timer_cb cb, void *arg);
/** Re-arm a timer to fire after `after` seconds (then its repeat). */
void mh_timer_again(struct mh_timer *t, double after);
void mh_timer_stop(struct mh_timer *t);
int mh_timer_active(const struct mh_timer *t);
/** Stop and free; sets *t to NULL.  NULL-safe; safe from inside its own callback. */
void mh_timer_free(struct mh_timer **t);

/* fd watches (MH_IO_READ | MH_IO_WRITE; 0 pauses). */
struct mh_io *mh_io_new(struct mh_loop *loop, void *owner, int fd, int events, mh_io_cb cb, void *arg);
void mh_io_modify(struct mh_io *io, int events);
void mh_io_free(struct mh_io **io);

/* Signals, delivered on the loop. */
struct mh_signal *mh_signal_new(struct mh_loop *loop, int signum, void (*cb)(int signum, void *arg),
                                void *arg);
void mh_signal_free(struct mh_signal **s);

/* Cross-thread wake-up: mh_async_send() may be called from any thread; cb runs on the loop. */
struct mh_async *mh_async_new(struct mh_loop *loop, void (*cb)(void *arg), void *arg);
void mh_async_send(struct mh_async *a);
void mh_async_free(struct mh_async **a);

/** Free every timer and io watch whose owner is `owner` (an instance being freed). */
void mh_loop_cancel_owner(struct mh_loop *loop, void *owner);
/** Number of live timers + io watches owned by `owner` (tests). */
size_t mh_loop_owner_count(struct mh_loop *loop, void *owner);

#endif

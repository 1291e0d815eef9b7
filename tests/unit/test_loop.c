/* Unit tests for core/mh_loop.c: timers, io watches, signals, async, owners. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "mh_loop.h"

/* Run the loop until *flag reaches `want`, at most `max_iter` blocking iterations. */
static void run_until(struct mh_loop *loop, const int *flag, int want, int max_iter)
{
    for (int i = 0; i < max_iter && *flag < want; i++)
        mh_loop_run_once(loop, 1);
}

static int setup_loop(void **state)
{
    struct mh_loop *loop = mh_loop_new();
    if (loop == NULL)
        return -1;
    *state = loop;
    return 0;
}

static int teardown_loop(void **state)
{
    struct mh_loop *loop = *state;
    mh_loop_free(&loop);
    return loop == NULL ? 0 : -1;
}

/* ------------------------------------------------------------------ timers */

struct tstate {
    struct mh_loop *loop;
    int fired;
    int stop_after;
    struct mh_timer *self;
    double first_at;
};

static void count_cb(struct mh_timer *t, void *arg)
{
    struct tstate *s = arg;
    s->fired++;
    if (s->stop_after > 0 && s->fired >= s->stop_after)
        mh_timer_stop(t);
}

static void test_timer_oneshot(void **state)
{
    struct mh_loop *loop = *state;
    struct tstate s = {.loop = loop};
    struct mh_timer *t = mh_timer_new(loop, NULL, 0.01, 0, count_cb, &s);
    assert_non_null(t);
    assert_true(mh_timer_active(t));
    run_until(loop, &s.fired, 1, 100);
    assert_int_equal(s.fired, 1);
    /* A one-shot timer stays allocated and inactive after firing... */
    assert_false(mh_timer_active(t));
    assert_int_equal(mh_loop_owner_count(loop, NULL), 1);
    /* ...and never fires twice: with nothing else active the loop returns at once. */
    mh_loop_run(loop);
    assert_int_equal(s.fired, 1);
    /* It can be re-armed. */
    mh_timer_again(t, 0);
    assert_true(mh_timer_active(t));
    run_until(loop, &s.fired, 2, 100);
    assert_int_equal(s.fired, 2);
    mh_timer_free(&t);
    assert_null(t);
    assert_int_equal(mh_loop_owner_count(loop, NULL), 0);
    mh_timer_free(&t); /* NULL-safe */
}

static void test_timer_repeat(void **state)
{
    struct mh_loop *loop = *state;
    struct tstate s = {.loop = loop, .stop_after = 5};
    struct mh_timer *t = mh_timer_new(loop, NULL, 0.001, 0.001, count_cb, &s);
    assert_non_null(t);
    /* mh_loop_run returns once the callback stops the timer: nothing else is active. */
    mh_loop_run(loop);
    assert_int_equal(s.fired, 5);
    assert_false(mh_timer_active(t));
    mh_timer_free(&t);
}

static void test_timer_stop_before_fire(void **state)
{
    struct mh_loop *loop = *state;
    struct tstate s = {.loop = loop};
    struct mh_timer *t = mh_timer_new(loop, NULL, 0, 0, count_cb, &s);
    mh_timer_stop(t);
    assert_false(mh_timer_active(t));
    mh_loop_run(loop);
    assert_int_equal(s.fired, 0);
    mh_timer_free(&t);
}

static void free_self_cb(struct mh_timer *t, void *arg)
{
    struct tstate *s = arg;
    s->fired++;
    assert_ptr_equal(t, s->self);
    mh_timer_free(&s->self);
}

static void test_timer_free_in_callback(void **state)
{
    struct mh_loop *loop = *state;
    /* Once as a one-shot and once as a repeating timer (libev re-arms it before the call). */
    for (int repeat = 0; repeat < 2; repeat++) {
        struct tstate s = {.loop = loop};
        s.self = mh_timer_new(loop, &s, 0, repeat ? 0.001 : 0, free_self_cb, &s);
        assert_non_null(s.self);
        mh_loop_run(loop);
        assert_int_equal(s.fired, 1);
        assert_null(s.self);
        assert_int_equal(mh_loop_owner_count(loop, &s), 0);
    }
}

/* Two timers due in the same iteration: the first frees the second before it runs. */
struct pair {
    struct mh_timer *a, *b;
    int a_fired, b_fired;
};

static void pair_a_cb(struct mh_timer *t, void *arg)
{
    struct pair *p = arg;
    p->a_fired++;
    mh_timer_free(&p->b);
}

static void pair_b_cb(struct mh_timer *t, void *arg)
{
    struct pair *p = arg;
    p->b_fired++;
    mh_timer_free(&p->a);
}

static void test_timer_free_other_pending(void **state)
{
    struct mh_loop *loop = *state;
    struct pair p = {0};
    p.a = mh_timer_new(loop, NULL, 0, 0, pair_a_cb, &p);
    p.b = mh_timer_new(loop, NULL, 0, 0, pair_b_cb, &p);
    mh_loop_run(loop);
    /* Exactly one of them ran; the other was freed while pending and never called. */
    assert_int_equal(p.a_fired + p.b_fired, 1);
    mh_timer_free(&p.a);
    mh_timer_free(&p.b);
    assert_int_equal(mh_loop_owner_count(loop, NULL), 0);
}

/* -------------------------------------------------------------------- io */

struct iostate {
    int fd;
    int reads;
    int writes;
    char buf[64];
    size_t len;
};

static void io_read_cb(struct mh_io *io, int fd, int revents, void *arg)
{
    struct iostate *s = arg;
    assert_int_equal(fd, s->fd);
    if (revents & MH_IO_READ) {
        ssize_t n = read(fd, s->buf + s->len, sizeof s->buf - 1 - s->len);
        if (n > 0)
            s->len += (size_t)n;
        s->reads++;
    }
    if (revents & MH_IO_WRITE)
        s->writes++;
}

static void test_io_socketpair(void **state)
{
    struct mh_loop *loop = *state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct iostate s = {.fd = sv[0]};
    struct mh_io *io = mh_io_new(loop, NULL, sv[0], MH_IO_READ, io_read_cb, &s);
    assert_non_null(io);

    assert_int_equal(write(sv[1], "hello", 5), 5);
    run_until(loop, &s.reads, 1, 10);
    assert_int_equal(s.reads, 1);
    assert_int_equal(s.len, 5);
    assert_memory_equal(s.buf, "hello", 5);

    /* Paused: data waits, no callback. */
    mh_io_modify(io, 0);
    assert_int_equal(write(sv[1], "abc", 3), 3);
    mh_loop_run_once(loop, 0);
    mh_loop_run_once(loop, 0);
    assert_int_equal(s.reads, 1);

    /* Resumed: the waiting data is read. */
    mh_io_modify(io, MH_IO_READ);
    run_until(loop, &s.reads, 2, 10);
    assert_int_equal(s.len, 8);
    assert_memory_equal(s.buf, "helloabc", 8);

    /* A socket is writable at once. */
    mh_io_modify(io, MH_IO_WRITE);
    run_until(loop, &s.writes, 1, 10);
    assert_int_equal(s.writes, 1);

    mh_io_free(&io);
    assert_null(io);
    mh_io_free(&io); /* NULL-safe */
    close(sv[0]);
    close(sv[1]);
}

static void io_free_self_cb(struct mh_io *io, int fd, int revents, void *arg)
{
    struct mh_io **slot = arg;
    assert_ptr_equal(io, *slot);
    mh_io_free(slot);
}

static void test_io_free_in_callback(void **state)
{
    struct mh_loop *loop = *state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct mh_io *io = mh_io_new(loop, NULL, sv[0], MH_IO_WRITE, io_free_self_cb, &io);
    assert_non_null(io);
    /* The loop returns once the only watcher has freed itself. */
    mh_loop_run(loop);
    assert_null(io);
    close(sv[0]);
    close(sv[1]);
}

/* ----------------------------------------------------------------- async */

struct astate {
    struct mh_async *async;
    pthread_t loop_thread;
    int calls;
    int on_loop_thread;
    volatile int sent;
};

static void async_cb(void *arg)
{
    struct astate *s = arg;
    s->calls++;
    s->on_loop_thread = pthread_equal(pthread_self(), s->loop_thread);
}

static void *async_thread(void *arg)
{
    struct astate *s = arg;
    mh_async_send(s->async);
    return NULL;
}

static void test_async_from_thread(void **state)
{
    struct mh_loop *loop = *state;
    struct astate s = {.loop_thread = pthread_self()};
    s.async = mh_async_new(loop, async_cb, &s);
    assert_non_null(s.async);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, async_thread, &s), 0);
    run_until(loop, &s.calls, 1, 10);
    pthread_join(th, NULL);
    assert_int_equal(s.calls, 1);
    assert_true(s.on_loop_thread);
    mh_async_free(&s.async);
    assert_null(s.async);
}

/* ---------------------------------------------------------------- signals */

struct sigstate {
    int calls;
    int signum;
};

static void sig_cb(int signum, void *arg)
{
    struct sigstate *s = arg;
    s->calls++;
    s->signum = signum;
}

static void test_signal(void **state)
{
    struct mh_loop *loop = *state;
    struct sigstate s = {0};
    struct mh_signal *sig = mh_signal_new(loop, SIGUSR1, sig_cb, &s);
    assert_non_null(sig);
    assert_int_equal(raise(SIGUSR1), 0);
    /* The handler only records the signal: the callback runs on the loop. */
    assert_int_equal(s.calls, 0);
    run_until(loop, &s.calls, 1, 10);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.signum, SIGUSR1);
    mh_signal_free(&sig);
    assert_null(sig);
}

/* ----------------------------------------------------------------- owners */

static void never_timer_cb(struct mh_timer *t, void *arg)
{
    fail_msg("cancelled timer fired");
}
static void never_io_cb(struct mh_io *io, int fd, int revents, void *arg)
{
    fail_msg("cancelled io fired");
}

static void test_cancel_owner(void **state)
{
    struct mh_loop *loop = *state;
    int owner_a, owner_b;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);

    for (int i = 0; i < 3; i++)
        assert_non_null(mh_timer_new(loop, &owner_a, 0, 0, never_timer_cb, NULL));
    assert_non_null(mh_io_new(loop, &owner_a, sv[0], MH_IO_WRITE, never_io_cb, NULL));
    assert_non_null(mh_io_new(loop, &owner_a, sv[1], 0, never_io_cb, NULL));
    struct tstate sb = {.loop = loop};
    struct mh_timer *tb = mh_timer_new(loop, &owner_b, 0, 0, count_cb, &sb);
    assert_non_null(tb);

    assert_int_equal(mh_loop_owner_count(loop, &owner_a), 5);
    assert_int_equal(mh_loop_owner_count(loop, &owner_b), 1);

    mh_loop_cancel_owner(loop, &owner_a);
    assert_int_equal(mh_loop_owner_count(loop, &owner_a), 0);
    assert_int_equal(mh_loop_owner_count(loop, &owner_b), 1);

    /* owner_a's watchers were due at once; they must not run.  owner_b's does. */
    mh_loop_run(loop);
    assert_int_equal(sb.fired, 1);
    mh_loop_cancel_owner(loop, &owner_b);
    assert_int_equal(mh_loop_owner_count(loop, &owner_b), 0);
    close(sv[0]);
    close(sv[1]);
}

/* mh_loop_free releases whatever is left (checked by ASan / valgrind for leaks). */
static void test_free_with_watchers(void **state)
{
    struct mh_loop *loop = mh_loop_new();
    assert_non_null(loop);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct sigstate ss = {0};
    struct astate as = {0};
    assert_non_null(mh_timer_new(loop, NULL, 10, 1, never_timer_cb, NULL));
    assert_non_null(mh_io_new(loop, &sv, sv[0], MH_IO_READ, never_io_cb, NULL));
    assert_non_null(mh_signal_new(loop, SIGUSR2, sig_cb, &ss));
    assert_non_null(mh_async_new(loop, async_cb, &as));
    assert_int_equal(mh_loop_owner_count(loop, NULL), 1);
    mh_loop_free(&loop);
    assert_null(loop);
    close(sv[0]);
    close(sv[1]);
}

/* Two loops at once: the second one is not libev's default loop, and both work. */
static void test_two_loops(void **state)
{
    struct mh_loop *a = *state;
    struct mh_loop *b = mh_loop_new();
    assert_non_null(b);
    assert_ptr_not_equal(mh_loop_ev(a), mh_loop_ev(b));
    struct tstate sa = {.loop = a}, sb = {.loop = b};
    struct mh_timer *ta = mh_timer_new(a, NULL, 0, 0, count_cb, &sa);
    struct mh_timer *tb = mh_timer_new(b, NULL, 0, 0, count_cb, &sb);
    mh_loop_run(b);
    assert_int_equal(sb.fired, 1);
    assert_int_equal(sa.fired, 0);
    mh_loop_run(a);
    assert_int_equal(sa.fired, 1);
    mh_timer_free(&ta);
    mh_timer_free(&tb);
    mh_loop_free(&b);
}

static void break_cb(struct mh_timer *t, void *arg)
{
    struct tstate *s = arg;
    s->fired++;
    mh_loop_break(s->loop);
}

static void test_break(void **state)
{
    struct mh_loop *loop = *state;
    struct tstate s = {.loop = loop};
    /* A repeating timer would keep mh_loop_run going for ever without the break. */
    struct mh_timer *t = mh_timer_new(loop, NULL, 0, 0.001, break_cb, &s);
    mh_loop_run(loop);
    assert_int_equal(s.fired, 1);
    double now = mh_loop_now(loop);
    assert_true(now > 1e9); /* seconds since the epoch, not since boot */
    mh_timer_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_timer_oneshot, setup_loop, teardown_loop),
        cmocka_unit_test_setup_teardown(test_timer_repeat, setup_loop, teardown_loop),
        cmocka_unit_test_setup_teardown(test_timer_stop_before_fire, setup_loop, teardown_loop),
        cmocka_unit_test_setup_teardown(test_timer_free_in_callback, setup_loop, teardown_loop),
        cmocka_unit_test_setup_teardown(test_timer_free_other_pending, setup_loop, teardown_loop),
        cmocka_unit_test_setup_teardown(test_io_socketpair, setup_loop, teardown_loop),
        cmocka_unit_test_setup_teardown(test_io_free_in_callback, setup_loop, teardown_loop),
        cmocka_unit_test_setup_teardown(test_async_from_thread, setup_loop, teardown_loop),
        cmocka_unit_test_setup_teardown(test_signal, setup_loop, teardown_loop),
        cmocka_unit_test_setup_teardown(test_cancel_owner, setup_loop, teardown_loop),
        cmocka_unit_test(test_free_with_watchers),
        cmocka_unit_test_setup_teardown(test_two_loops, setup_loop, teardown_loop),
        cmocka_unit_test_setup_teardown(test_break, setup_loop, teardown_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

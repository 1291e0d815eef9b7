/* Unit tests for core/mh_pool.c: the worker pool and its completions on the loop. */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "mh_loop.h"
#include "mh_pool.h"

/* A one-shot latch: threads wait until it is opened. */
struct latch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open;
};

static void latch_init(struct latch *l)
{
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->open = 0;
}

static void latch_destroy(struct latch *l)
{
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
}

static void latch_open(struct latch *l)
{
    pthread_mutex_lock(&l->mu);
    l->open = 1;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

static void latch_wait(struct latch *l)
{
    pthread_mutex_lock(&l->mu);
    while (!l->open)
        pthread_cond_wait(&l->cv, &l->mu);
    pthread_mutex_unlock(&l->mu);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* One job's record. */
struct job {
    int id;
    int value;        /* written by the work function */
    pthread_t worker; /* thread the work ran on */
    int done_calls;
    int rc;
    int done_on_loop;       /* done ran on the loop thread */
    int order;              /* position in completion order */
    struct latch *started;  /* opened when the work starts (optional) */
    struct latch *release;  /* the work waits on it (optional) */
    struct latch *finished; /* opened when the work is over (optional) */
};

static pthread_t loop_thread;
static int completion_seq;

static void work_fn(void *arg)
{
    struct job *j = arg;
    j->worker = pthread_self();
    if (j->started != NULL)
        latch_open(j->started);
    if (j->release != NULL)
        latch_wait(j->release);
    j->value = j->id * 2;
    if (j->finished != NULL)
        latch_open(j->finished);
}

static void done_cb(void *arg, int rc)
{
    struct job *j = arg;
    j->done_calls++;
    j->rc = rc;
    j->done_on_loop = pthread_equal(pthread_self(), loop_thread);
    j->order = completion_seq++;
}

static int all_done(const struct job *jobs, int n)
{
    for (int i = 0; i < n; i++)
        if (jobs[i].done_calls == 0)
            return 0;
    return 1;
}

static void test_results_on_loop_thread(void **state)
{
    struct mh_loop *loop = mh_loop_new();
    assert_non_null(loop);
    loop_thread = pthread_self();
    struct mh_pool *pool = mh_pool_new(loop, 4, "test");
    assert_non_null(pool);

    enum { N = 1000 };
    struct job *jobs = calloc(N, sizeof *jobs);
    assert_non_null(jobs);
    for (int i = 0; i < N; i++) {
        jobs[i].id = i;
        assert_int_equal(mh_pool_submit(pool, NULL, work_fn, done_cb, &jobs[i]), MH_OK);
    }
    assert_true(mh_pool_pending(pool) > 0);
    /* Completions only arrive through the loop. */
    for (int iter = 0; iter < 100000 && !all_done(jobs, N); iter++)
        mh_loop_run_once(loop, 1);
    for (int i = 0; i < N; i++) {
        assert_int_equal(jobs[i].done_calls, 1);
        assert_int_equal(jobs[i].rc, MH_OK);
        assert_int_equal(jobs[i].value, i * 2);
        assert_true(jobs[i].done_on_loop);
        assert_false(pthread_equal(jobs[i].worker, loop_thread));
    }
    assert_int_equal(mh_pool_pending(pool), 0);
    free(jobs);
    mh_pool_free(&pool);
    assert_null(pool);
    mh_loop_free(&loop);
}

static void test_fifo_single_worker(void **state)
{
    struct mh_loop *loop = mh_loop_new();
    loop_thread = pthread_self();
    struct mh_pool *pool = mh_pool_new(loop, 1, "fifo");
    assert_non_null(pool);
    enum { N = 200 };
    struct job jobs[N];
    memset(jobs, 0, sizeof jobs);
    completion_seq = 0;
    for (int i = 0; i < N; i++) {
        jobs[i].id = i;
        assert_int_equal(mh_pool_submit(pool, NULL, work_fn, done_cb, &jobs[i]), MH_OK);
    }
    mh_pool_drain(pool);
    /* One worker: jobs run, and complete, in submission order. */
    for (int i = 0; i < N; i++) {
        assert_int_equal(jobs[i].done_calls, 1);
        assert_int_equal(jobs[i].order, i);
    }
    mh_pool_free(&pool);
    mh_loop_free(&loop);
}

static void test_drain(void **state)
{
    struct mh_loop *loop = mh_loop_new();
    loop_thread = pthread_self();
    struct mh_pool *pool = mh_pool_new(loop, 3, "drain");
    enum { N = 300 };
    struct job jobs[N];
    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < N; i++) {
        jobs[i].id = i;
        assert_int_equal(mh_pool_submit(pool, NULL, work_fn, done_cb, &jobs[i]), MH_OK);
    }
    /* No loop iteration: drain itself waits and runs every completion. */
    mh_pool_drain(pool);
    assert_int_equal(mh_pool_pending(pool), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(jobs[i].done_calls, 1);
        assert_int_equal(jobs[i].rc, MH_OK);
        assert_int_equal(jobs[i].value, i * 2);
        assert_true(jobs[i].done_on_loop);
    }
    /* Completions already delivered are not delivered again by the loop. */
    mh_loop_run_once(loop, 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(jobs[i].done_calls, 1);
    mh_pool_free(&pool);
    mh_loop_free(&loop);
}

/* A helper thread that opens a latch a little later (the loop thread is blocked meanwhile). */
struct opener {
    struct latch *wait_for;
    struct latch *to_open;
};

static void *opener_main(void *arg)
{
    struct opener *o = arg;
    latch_wait(o->wait_for);
    /* Not a timing assertion: the test passes whether or not the loop is already blocked. */
    sleep_ms(50);
    latch_open(o->to_open);
    return NULL;
}

static void test_cancel_owner(void **state)
{
    struct mh_loop *loop = mh_loop_new();
    loop_thread = pthread_self();
    struct mh_pool *pool = mh_pool_new(loop, 1, "cancel");
    int owner_a, owner_b;
    struct latch started, release;
    latch_init(&started);
    latch_init(&release);

    /* A's first job occupies the only worker; everything else queues behind it. */
    struct job running = {.id = 1, .started = &started, .release = &release};
    struct job queued_a[5], queued_b[3];
    memset(queued_a, 0, sizeof queued_a);
    memset(queued_b, 0, sizeof queued_b);
    assert_int_equal(mh_pool_submit(pool, &owner_a, work_fn, done_cb, &running), MH_OK);
    for (int i = 0; i < 5; i++) {
        queued_a[i].id = 10 + i;
        assert_int_equal(mh_pool_submit(pool, &owner_a, work_fn, done_cb, &queued_a[i]), MH_OK);
        if (i < 3) {
            queued_b[i].id = 20 + i;
            assert_int_equal(mh_pool_submit(pool, &owner_b, work_fn, done_cb, &queued_b[i]), MH_OK);
        }
    }
    latch_wait(&started);
    assert_int_equal(mh_pool_pending(pool), 9);

    struct latch go;
    latch_init(&go);
    struct opener o = {.wait_for = &go, .to_open = &release};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, opener_main, &o), 0);
    latch_open(&go);

    mh_pool_cancel_owner(pool, &owner_a);

    /* The running job finished and its completion ran (MH_OK) before cancel_owner returned... */
    assert_int_equal(running.done_calls, 1);
    assert_int_equal(running.rc, MH_OK);
    assert_int_equal(running.value, 2);
    assert_true(running.done_on_loop);
    /* ...the queued ones never ran and were told MH_ECANCELED... */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(queued_a[i].done_calls, 1);
        assert_int_equal(queued_a[i].rc, MH_ECANCELED);
        assert_int_equal(queued_a[i].value, 0);
    }
    /* ...and B's work is untouched. */
    mh_pool_drain(pool);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(queued_b[i].done_calls, 1);
        assert_int_equal(queued_b[i].rc, MH_OK);
        assert_int_equal(queued_b[i].value, (20 + i) * 2);
    }
    /* Nothing left for A: a second cancel is a no-op. */
    mh_pool_cancel_owner(pool, &owner_a);
    assert_int_equal(running.done_calls, 1);
    pthread_join(th, NULL);
    mh_pool_free(&pool);
    mh_loop_free(&loop);
    latch_destroy(&go);
    latch_destroy(&started);
    latch_destroy(&release);
}

/* A job that finished but whose completion was not yet delivered is delivered by cancel_owner. */
static void test_cancel_owner_completed_undelivered(void **state)
{
    struct mh_loop *loop = mh_loop_new();
    loop_thread = pthread_self();
    struct mh_pool *pool = mh_pool_new(loop, 2, "undeliv");
    int owner;
    struct latch finished;
    latch_init(&finished);
    struct job j = {.id = 7, .finished = &finished};
    assert_int_equal(mh_pool_submit(pool, &owner, work_fn, done_cb, &j), MH_OK);
    latch_wait(&finished);
    /* The work has run; the loop has not, so neither has done. */
    assert_int_equal(j.done_calls, 0);
    mh_pool_cancel_owner(pool, &owner);
    assert_int_equal(j.done_calls, 1);
    assert_int_equal(j.rc, MH_OK);
    assert_int_equal(mh_pool_pending(pool), 0);
    /* The async wake-up that is still pending finds nothing more to deliver. */
    mh_loop_run_once(loop, 0);
    assert_int_equal(j.done_calls, 1);
    mh_pool_free(&pool);
    mh_loop_free(&loop);
    latch_destroy(&finished);
}

static void test_free_with_queued(void **state)
{
    struct mh_loop *loop = mh_loop_new();
    loop_thread = pthread_self();
    struct mh_pool *pool = mh_pool_new(loop, 1, "free");
    struct latch started, release, go;
    latch_init(&started);
    latch_init(&release);
    latch_init(&go);
    struct job running = {.id = 3, .started = &started, .release = &release};
    struct job queued[10];
    memset(queued, 0, sizeof queued);
    assert_int_equal(mh_pool_submit(pool, NULL, work_fn, done_cb, &running), MH_OK);
    for (int i = 0; i < 10; i++) {
        queued[i].id = 100 + i;
        assert_int_equal(mh_pool_submit(pool, NULL, work_fn, done_cb, &queued[i]), MH_OK);
    }
    latch_wait(&started);
    struct opener o = {.wait_for = &go, .to_open = &release};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, opener_main, &o), 0);
    latch_open(&go);

    mh_pool_free(&pool);
    assert_null(pool);
    assert_int_equal(running.done_calls, 1);
    assert_int_equal(running.rc, MH_OK);
    assert_int_equal(running.value, 6);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(queued[i].done_calls, 1);
        assert_int_equal(queued[i].rc, MH_ECANCELED);
        assert_int_equal(queued[i].value, 0);
        assert_true(queued[i].done_on_loop);
    }
    pthread_join(th, NULL);
    mh_loop_free(&loop);
    latch_destroy(&go);
    latch_destroy(&started);
    latch_destroy(&release);
}

/* A completion that submits more work: drain waits for that too. */
struct chain {
    struct mh_pool *pool;
    int remaining;
    int completed;
};

static void chain_work(void *arg)
{
    (void)arg;
}

static void chain_done(void *arg, int rc)
{
    struct chain *c = arg;
    assert_int_equal(rc, MH_OK);
    c->completed++;
    if (--c->remaining > 0)
        assert_int_equal(mh_pool_submit(c->pool, NULL, chain_work, chain_done, c), MH_OK);
}

static void test_submit_from_completion(void **state)
{
    struct mh_loop *loop = mh_loop_new();
    struct chain c = {.remaining = 50};
    c.pool = mh_pool_new(loop, 2, "chain");
    assert_int_equal(mh_pool_submit(c.pool, NULL, chain_work, chain_done, &c), MH_OK);
    mh_pool_drain(c.pool);
    assert_int_equal(c.completed, 50);
    assert_int_equal(mh_pool_pending(c.pool), 0);
    mh_pool_free(&c.pool);
    mh_loop_free(&loop);
}

static void test_bad_args(void **state)
{
    struct mh_loop *loop = mh_loop_new();
    assert_null(mh_pool_new(loop, 0, "zero"));
    assert_null(mh_pool_new(loop, 65, "many"));
    struct mh_pool *pool = mh_pool_new(loop, 1, NULL);
    assert_non_null(pool);
    assert_int_equal(mh_pool_submit(pool, NULL, NULL, done_cb, NULL), MH_EINVAL);
    mh_pool_free(&pool);
    mh_pool_free(&pool); /* NULL-safe */
    mh_loop_free(&loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_results_on_loop_thread),
        cmocka_unit_test(test_fifo_single_worker),
        cmocka_unit_test(test_drain),
        cmocka_unit_test(test_cancel_owner),
        cmocka_unit_test(test_cancel_owner_completed_undelivered),
        cmocka_unit_test(test_free_with_queued),
        cmocka_unit_test(test_submit_from_completion),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

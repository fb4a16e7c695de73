/* test_xs_loop_mt: xensim's poll loop — fd callbacks (including removal
 * of another fd during dispatch), timers, work posted from other threads,
 * stop from another thread. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "xsim_loop.h"

struct fdctx {
    int calls;
    short last;
    int victim;          /* fd to remove when called, or -1 */
};

static void on_fd(struct xsim_loop *loop, int fd, short revents, void *arg)
{
    struct fdctx *c = arg;
    char buf[16];
    c->calls++;
    c->last = revents;
    ssize_t r = read(fd, buf, sizeof(buf));
    (void)r;
    if (c->victim >= 0)
        xsim_loop_del_fd(loop, c->victim);
}

static void test_fds(void **state)
{
    (void)state;
    struct xsim_loop *loop = xsim_loop_new();
    assert_non_null(loop);
    int a[2], b[2];
    assert_int_equal(pipe(a), 0);
    assert_int_equal(pipe(b), 0);
    struct fdctx ca = { 0, 0, b[0] }, cb = { 0, 0, -1 };
    assert_int_equal(xsim_loop_add_fd(loop, a[0], POLLIN, on_fd, &ca), 0);
    assert_int_equal(xsim_loop_add_fd(loop, b[0], POLLIN, on_fd, &cb), 0);
    assert_int_equal(xsim_loop_add_fd(loop, a[0], POLLIN, on_fd, &ca), -EEXIST);
    assert_int_equal(xsim_loop_set_events(loop, 12345, POLLIN), -ENOENT);
    /* Both readable; a's callback removes b before b is dispatched. */
    assert_int_equal(write(a[1], "x", 1), 1);
    assert_int_equal(write(b[1], "y", 1), 1);
    assert_int_equal(xsim_loop_run_once(loop, 1000), 1);
    assert_int_equal(ca.calls, 1);
    assert_true(ca.last & POLLIN);
    assert_int_equal(cb.calls, 0);
    /* Nothing ready: a bounded wait returns 0. */
    assert_int_equal(xsim_loop_run_once(loop, 0), 0);
    /* b can be registered again. */
    cb.victim = -1;
    assert_int_equal(xsim_loop_add_fd(loop, b[0], POLLIN, on_fd, &cb), 0);
    assert_int_equal(xsim_loop_run_once(loop, 1000), 1);
    assert_int_equal(cb.calls, 1);
    xsim_loop_free(loop);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
}

static void on_timer(struct xsim_loop *loop, void *arg)
{
    (void)loop;
    (*(int *)arg)++;
}

static void test_timers(void **state)
{
    (void)state;
    struct xsim_loop *loop = xsim_loop_new();
    int fired_a = 0, fired_b = 0;
    uint64_t ta = xsim_loop_add_timer(loop, 0, on_timer, &fired_a);
    uint64_t tb = xsim_loop_add_timer(loop, 60000, on_timer, &fired_b);
    assert_true(ta > 0 && tb > 0 && ta != tb);
    uint64_t t0 = xsim_now_ms();
    assert_int_equal(xsim_loop_run_once(loop, -1), 1);   /* does not wait for b */
    assert_true(xsim_now_ms() - t0 < 30000);
    assert_int_equal(fired_a, 1);
    xsim_loop_cancel_timer(loop, tb);
    xsim_loop_cancel_timer(loop, 999);                    /* unknown: ignored */
    assert_int_equal(xsim_loop_run_once(loop, 0), 0);
    assert_int_equal(fired_b, 0);
    xsim_loop_free(loop);
}

struct shared {
    struct xsim_loop *loop;
    int counter;          /* only touched on the loop thread */
    _Atomic int failures; /* cmocka asserts only on the main thread */
};

static void bump(struct xsim_loop *loop, void *arg)
{
    (void)loop;
    ((struct shared *)arg)->counter++;
}

static void *runner(void *arg)
{
    struct shared *s = arg;
    xsim_loop_run(s->loop);
    return NULL;
}

static void *poster(void *arg)
{
    struct shared *s = arg;
    for (int i = 0; i < 1000; i++)
        if (xsim_loop_call(s->loop, bump, s) != 0)
            s->failures++;
    return NULL;
}

static void read_counter(struct xsim_loop *loop, void *arg)
{
    (void)loop;
    struct shared *s = arg;
    /* Calling from the loop thread runs at once (no deadlock). */
    int before = s->counter;
    xsim_loop_call(loop, bump, s);
    assert_int_equal(s->counter, before + 1);
}

static void test_threads(void **state)
{
    (void)state;
    struct shared s = { .loop = xsim_loop_new() };
    pthread_t r, p1, p2;
    assert_int_equal(pthread_create(&r, NULL, runner, &s), 0);
    assert_int_equal(pthread_create(&p1, NULL, poster, &s), 0);
    assert_int_equal(pthread_create(&p2, NULL, poster, &s), 0);
    pthread_join(p1, NULL);
    pthread_join(p2, NULL);
    assert_int_equal(xsim_loop_call(s.loop, read_counter, &s), 0);
    xsim_loop_stop(s.loop);
    pthread_join(r, NULL);
    assert_int_equal(s.failures, 0);
    assert_int_equal(s.counter, 2001);
    assert_true(xsim_loop_stopping(s.loop));
    xsim_loop_free(s.loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fds),
        cmocka_unit_test(test_timers),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

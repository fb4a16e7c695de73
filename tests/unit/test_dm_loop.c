/*
 * dm_loop: fd watches, timers, signals, events and the re-entrancy rules
 * (add/remove/cancel/free from inside callbacks).  Waits are bounded by
 * iteration counts and poll timeouts, never by sleeps.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dm_loop.h"

typedef struct ctx {
    dm_loop *loop;
    int reads, writes;
    int fires;
    dm_watch *other;           /* removed by the first callback that runs */
    dm_timer *other_t;
    dm_watch *self;
    dm_timer *self_t;
    int last_signal;
    char order[32];
} ctx;

static void drain(int fd)
{
    char buf[64];
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
}

static void on_read_count(void *opaque, int fd)
{
    ctx *c = opaque;
    c->reads++;
    drain(fd);
}

static void test_read_watch(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK), 0);
    ctx c = { 0 };
    dm_loop *loop = dm_loop_new();
    dm_watch *w = dm_watch_add(loop, p[0], on_read_count, NULL, &c);
    assert_non_null(w);
    /* Nothing ready: a zero-timeout pass runs nothing. */
    assert_int_equal(dm_loop_iterate(loop, 0), 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(dm_loop_iterate(loop, 1000), 1);
    assert_int_equal(c.reads, 1);
    /* Read interest off: data stays, callback not run. */
    dm_watch_want_read(w, false);
    assert_int_equal(write(p[1], "y", 1), 1);
    assert_int_equal(dm_loop_iterate(loop, 0), 0);
    dm_watch_want_read(w, true);
    assert_int_equal(dm_loop_iterate(loop, 1000), 1);
    assert_int_equal(c.reads, 2);
    dm_loop_free(loop);
    close(p[0]);
    close(p[1]);
}

static void on_write_count(void *opaque, int fd)
{
    ctx *c = opaque;
    (void)fd;
    c->writes++;
    dm_watch_want_write(c->self, false);
}

static void test_write_interest(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK), 0);
    ctx c = { 0 };
    dm_loop *loop = dm_loop_new();
    c.self = dm_watch_add(loop, p[1], NULL, on_write_count, &c);
    assert_non_null(c.self);
    assert_int_equal(dm_loop_iterate(loop, 0), 0);          /* no write interest yet */
    dm_watch_want_write(c.self, true);
    assert_int_equal(dm_loop_iterate(loop, 1000), 1);
    assert_int_equal(c.writes, 1);
    assert_int_equal(dm_loop_iterate(loop, 0), 0);          /* callback turned it off */
    dm_loop_free(loop);
    close(p[0]);
    close(p[1]);
}

static void test_bad_watch_args(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    dm_loop *loop = dm_loop_new();
    errno = 0;
    assert_null(dm_watch_add(loop, -1, on_read_count, NULL, NULL));
    assert_int_equal(errno, EINVAL);
    assert_non_null(dm_watch_add(loop, p[0], on_read_count, NULL, NULL));
    errno = 0;
    assert_null(dm_watch_add(loop, p[0], on_read_count, NULL, NULL));   /* twice */
    assert_int_equal(errno, EINVAL);
    assert_null(dm_timer_new(loop, NULL, NULL));
    dm_loop_free(loop);
    close(p[0]);
    close(p[1]);
}

/* Both pipes are ready; whichever runs first removes the other, which must
 * then not run in the same pass, and removes itself too. */
static void on_read_remove_other(void *opaque, int fd)
{
    ctx *c = opaque;
    c->reads++;
    drain(fd);
    dm_watch_remove(c->other);
    dm_watch_remove(c->self);
}

static void test_remove_during_dispatch(void **state)
{
    (void)state;
    int a[2], b[2];
    assert_int_equal(pipe2(a, O_NONBLOCK), 0);
    assert_int_equal(pipe2(b, O_NONBLOCK), 0);
    ctx ca = { 0 }, cb = { 0 };
    dm_loop *loop = dm_loop_new();
    dm_watch *wa = dm_watch_add(loop, a[0], on_read_remove_other, NULL, &ca);
    dm_watch *wb = dm_watch_add(loop, b[0], on_read_remove_other, NULL, &cb);
    ca.self = wa, ca.other = wb;
    cb.self = wb, cb.other = wa;
    assert_int_equal(write(a[1], "x", 1), 1);
    assert_int_equal(write(b[1], "x", 1), 1);
    assert_int_equal(dm_loop_iterate(loop, 1000), 1);
    assert_int_equal(ca.reads + cb.reads, 1);
    /* Both are gone: new data wakes nobody, and the fds may be watched again. */
    assert_int_equal(write(a[1], "x", 1), 1);
    assert_int_equal(dm_loop_iterate(loop, 0), 0);
    assert_non_null(dm_watch_add(loop, a[0], on_read_count, NULL, &ca));
    dm_loop_free(loop);
    close(a[0]), close(a[1]), close(b[0]), close(b[1]);
}

static int added_reads;
static void on_read_added(void *opaque, int fd)
{
    (void)opaque;
    added_reads++;
    drain(fd);
}

static void on_read_add_watch(void *opaque, int fd)
{
    ctx *c = opaque;
    c->reads++;
    drain(fd);
    /* The fd in c->fires is ready already; it must wait for the next pass. */
    assert_non_null(dm_watch_add(c->loop, c->fires, on_read_added, NULL, NULL));
}

static void test_add_during_dispatch(void **state)
{
    (void)state;
    int a[2], b[2];
    assert_int_equal(pipe2(a, O_NONBLOCK), 0);
    assert_int_equal(pipe2(b, O_NONBLOCK), 0);
    dm_loop *loop = dm_loop_new();
    ctx c = { .loop = loop, .fires = b[0] };
    assert_non_null(dm_watch_add(loop, a[0], on_read_add_watch, NULL, &c));
    assert_int_equal(write(a[1], "x", 1), 1);
    assert_int_equal(write(b[1], "x", 1), 1);
    added_reads = 0;
    assert_int_equal(dm_loop_iterate(loop, 1000), 1);
    assert_int_equal(added_reads, 0);
    assert_int_equal(dm_loop_iterate(loop, 1000), 1);
    assert_int_equal(added_reads, 1);
    dm_loop_free(loop);
    close(a[0]), close(a[1]), close(b[0]), close(b[1]);
}

static void on_timer(void *opaque)
{
    ctx *c = opaque;
    size_t n = strlen(c->order);
    if (n + 1 < sizeof(c->order))
        c->order[n] = (char)('a' + c->fires);
    c->fires++;
}

static void test_timer_oneshot_and_periodic(void **state)
{
    (void)state;
    dm_loop *loop = dm_loop_new();
    ctx one = { 0 }, per = { 0 };
    dm_timer *t1 = dm_timer_new(loop, on_timer, &one);
    dm_timer *t2 = dm_timer_new(loop, on_timer, &per);
    assert_int_equal(dm_timer_arm(t1, -1, 0), -EINVAL);
    assert_int_equal(dm_timer_arm(t1, 0, -5), -EINVAL);
    assert_false(dm_timer_armed(t1));
    assert_int_equal(dm_timer_arm(t1, 1000000, 0), 0);        /* 1 ms */
    assert_int_equal(dm_timer_arm(t2, 0, 1000000), 0);        /* every 1 ms */
    int64_t start = dm_now_ns();
    for (int i = 0; i < 10000 && per.fires < 5; i++)
        assert_true(dm_loop_iterate(loop, 100) >= 0);
    assert_int_equal(per.fires, 5);
    assert_int_equal(one.fires, 1);
    assert_false(dm_timer_armed(t1));
    assert_true(dm_timer_armed(t2));
    /* Five periods of 1 ms cannot complete in less than 4 ms. */
    assert_true(dm_now_ns() - start >= 4000000);
    dm_timer_cancel(t2);
    assert_int_equal(dm_loop_iterate(loop, 5), 0);
    assert_int_equal(per.fires, 5);
    /* The poll timeout follows the timer: iterate(-1) returns when it fires. */
    assert_int_equal(dm_timer_arm(t1, 2000000, 0), 0);
    assert_int_equal(dm_loop_iterate(loop, -1), 1);
    assert_int_equal(one.fires, 2);
    dm_loop_free(loop);
}

static void on_timer_cancel_other(void *opaque)
{
    ctx *c = opaque;
    c->fires++;
    dm_timer_cancel(c->other_t);
    dm_timer_free(c->self_t);
}

static void test_timer_cancel_and_free_in_callback(void **state)
{
    (void)state;
    dm_loop *loop = dm_loop_new();
    ctx a = { 0 }, b = { 0 };
    dm_timer *ta = dm_timer_new(loop, on_timer_cancel_other, &a);
    dm_timer *tb = dm_timer_new(loop, on_timer_cancel_other, &b);
    a.self_t = ta, a.other_t = tb;
    b.self_t = tb, b.other_t = ta;
    /* Both due in the same pass: only the first one runs. */
    assert_int_equal(dm_timer_arm(ta, 0, 0), 0);
    assert_int_equal(dm_timer_arm(tb, 0, 0), 0);
    assert_int_equal(dm_loop_iterate(loop, 0), 1);
    assert_int_equal(a.fires + b.fires, 1);
    dm_loop_free(loop);
}

static void on_signal(void *opaque, int signo)
{
    ctx *c = opaque;
    c->last_signal = signo;
    dm_loop_stop(c->loop, 42);
}

static void test_signals(void **state)
{
    (void)state;
    dm_loop *loop = dm_loop_new();
    ctx c = { .loop = loop };
    assert_int_equal(dm_loop_handle_signals(loop, on_signal, &c), 0);
    assert_int_equal(dm_loop_handle_signals(loop, on_signal, &c), -EBUSY);
    /* Blocked, so it waits in the signalfd instead of killing the test. */
    assert_int_equal(raise(SIGTERM), 0);
    assert_int_equal(dm_loop_run(loop), 42);
    assert_int_equal(c.last_signal, SIGTERM);
    assert_int_equal(raise(SIGHUP), 0);
    assert_int_equal(dm_loop_run(loop), 42);
    assert_int_equal(c.last_signal, SIGHUP);
    dm_loop_free(loop);
    /* The old mask is back: SIGTERM is not blocked any more. */
    sigset_t cur;
    pthread_sigmask(SIG_SETMASK, NULL, &cur);
    assert_false(sigismember(&cur, SIGTERM));
}

static void on_event(void *opaque)
{
    ctx *c = opaque;
    c->fires++;
    dm_loop_stop(c->loop, 7);
}

static void *poster(void *arg)
{
    for (int i = 0; i < 100; i++)
        dm_event_post(arg);
    return NULL;
}

static void test_event_from_thread(void **state)
{
    (void)state;
    dm_loop *loop = dm_loop_new();
    ctx c = { .loop = loop };
    dm_event *ev = dm_event_new(loop, on_event, &c);
    assert_non_null(ev);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, poster, ev), 0);
    pthread_join(th, NULL);
    /* 100 posts before the loop ran: coalesced into one call. */
    assert_int_equal(dm_loop_run(loop), 7);
    assert_int_equal(c.fires, 1);
    assert_int_equal(dm_loop_iterate(loop, 0), 0);
    dm_event_free(ev);
    dm_loop_free(loop);
}

/* An fd closed behind the loop's back is reported once and dropped, not
 * polled in a busy loop. */
static void test_closed_fd_is_dropped(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK), 0);
    ctx c = { 0 };
    dm_loop *loop = dm_loop_new();
    assert_non_null(dm_watch_add(loop, p[0], on_read_count, NULL, &c));
    close(p[0]);
    assert_int_equal(dm_loop_iterate(loop, 0), 0);
    assert_int_equal(dm_loop_iterate(loop, 0), 0);
    assert_int_equal(c.reads, 0);
    dm_loop_free(loop);
    close(p[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_watch),
        cmocka_unit_test(test_write_interest),
        cmocka_unit_test(test_bad_watch_args),
        cmocka_unit_test(test_remove_during_dispatch),
        cmocka_unit_test(test_add_during_dispatch),
        cmocka_unit_test(test_timer_oneshot_and_periodic),
        cmocka_unit_test(test_timer_cancel_and_free_in_callback),
        cmocka_unit_test(test_signals),
        cmocka_unit_test(test_event_from_thread),
        cmocka_unit_test(test_closed_fd_is_dropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

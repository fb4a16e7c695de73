/*
 * dm_event under threads (run by the TSan pass): several threads post
 * while the loop runs; the loop must see every increment made before the
 * last post, i.e. no wakeup is lost, however posts coalesce.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dm_loop.h"

#define THREADS 4
#define POSTS 20000

typedef struct shared {
    dm_event *ev;
    atomic_uint produced;
    unsigned seen;               /* main loop only */
    unsigned calls;              /* main loop only */
} shared;

static void *poster(void *arg)
{
    shared *sh = arg;
    for (int i = 0; i < POSTS; i++) {
        atomic_fetch_add_explicit(&sh->produced, 1, memory_order_release);
        assert_int_equal(dm_event_post(sh->ev), 0);
    }
    return NULL;
}

static void on_event(void *opaque)
{
    shared *sh = opaque;
    sh->calls++;
    sh->seen = atomic_load_explicit(&sh->produced, memory_order_acquire);
}

static void test_no_lost_wakeup(void **state)
{
    (void)state;
    dm_loop *loop = dm_loop_new();
    shared sh = { 0 };
    sh.ev = dm_event_new(loop, on_event, &sh);
    assert_non_null(sh.ev);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, poster, &sh), 0);
    /* Each pass waits at most 1 s for a post; the final one must come. */
    for (int i = 0; i < 1000000 && sh.seen < THREADS * POSTS; i++)
        assert_true(dm_loop_iterate(loop, 1000) >= 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(sh.seen, THREADS * POSTS);
    assert_true(sh.calls >= 1 && sh.calls <= THREADS * POSTS);
    dm_event_free(sh.ev);
    dm_loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_lost_wakeup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

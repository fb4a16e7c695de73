/*
 * librunstate: change-state handlers (docs/runstate.md §11, reference §3).
 * Order by priority with ties in registration order, reversed on stop;
 * prepare callbacks first; cb_ret results ORed on stop and ignored on
 * start; add and remove from inside a pass; bad arguments; and the rule
 * that a handler or event sink cannot change the state itself.
 */
#include "../lib/rs_test.h"

/* ================================================================ order */

static void test_priority_order_and_ties(void **state)
{
    FIXTURE;
    rs_rec_handler(t, "a", 0);
    rs_rec_handler(t, "b", -5);
    rs_rec_handler(t, "c", 10);
    rs_rec_handler(t, "d", 0);
    rs_rec_handler(t, "e", 10);
    rs_rec_handler(t, "f", -5);

    OK(rs_cont(vm, &err));
    EXPECT("RESUME", "b(1,running)", "f(1,running)", "a(1,running)", "d(1,running)",
           "c(1,running)", "e(1,running)");
    /* Stop walks the same list backwards: ties in reverse too. */
    OK(rs_vm_stop(vm, RS_PAUSED, &err));
    EXPECT("e(0,paused)", "c(0,paused)", "d(0,paused)", "a(0,paused)", "f(0,paused)",
           "b(0,paused)", "STOP paused", "hook:drain");
}

static void test_extreme_priorities(void **state)
{
    FIXTURE;
    rs_rec_handler(t, "max", INT32_MAX);
    rs_rec_handler(t, "min", INT32_MIN);
    rs_rec_handler(t, "zero", 0);
    OK(rs_cont(vm, &err));
    EXPECT("RESUME", "min(1,running)", "zero(1,running)", "max(1,running)");
}

static void test_prepare_phase_first(void **state)
{
    FIXTURE;
    rs_rec_handler_full(t, "a", 0, true);
    rs_rec_handler(t, "b", -5);
    rs_rec_handler_full(t, "c", 10, true);

    OK(rs_cont(vm, &err));
    EXPECT("RESUME", "a.prep(1,running)", "c.prep(1,running)", "b(1,running)", "a(1,running)",
           "c(1,running)");
    OK(rs_vm_stop(vm, RS_IO_ERROR, &err));
    EXPECT("c.prep(0,io-error)", "a.prep(0,io-error)", "c(0,io-error)", "a(0,io-error)",
           "b(0,io-error)", "STOP io-error", "hook:drain");
}

/* ================================================================ cb_ret */

static void test_cb_ret_ored_on_stop(void **state)
{
    FIXTURE;
    rs_rec_handler_ret(t, "one", 0, 1, 0);
    rs_rec_handler(t, "plain", 5);
    rs_rec_handler_ret(t, "two", 10, 2, 0);
    rs_test_boot(t);

    /* Every handler runs even after one failed; STOP and the flush still
     * happen; the operation reports -EIO and the hold stays. */
    REFUSED(rs_vm_stop(vm, RS_PAUSED, &err), -EIO, NULL);
    EXPECT("two(0,paused)", "plain(0,paused)", "one(0,paused)", "STOP paused", "hook:drain");
    ASSERT_STATE(RS_PAUSED, RS_PAUSED);

    /* A stop of an already stopped VM runs no handler: nothing fails. */
    OK(rs_vm_stop(vm, RS_WATCHDOG, &err));
    EXPECT("x-hold-added watchdog", "hook:drain");

    OK(rs_cont(vm, &err));
    EXPECT("RESUME", "one(1,running)", "plain(1,running)", "two(1,running)");
    ASSERT_LIVE(RS_RUNNING);
}

static void test_cb_ret_failure_on_other_stops(void **state)
{
    FIXTURE;
    rs_rec_handler_ret(t, "bad", 0, 1, 0);
    rs_test_boot(t);
    /* An outgoing migration's stop: it reports the failure (QEMU's
     * migration fails on it) with a message, and keeps the hold. */
    REFUSED(rs_hold_acquire(vm, RS_FINISH_MIGRATE, &err), -EIO, NULL);
    EXPECT("bad(0,finish-migrate)", "STOP finish-migrate", "hook:drain");
    ASSERT_STATE(RS_FINISH_MIGRATE, RS_FINISH_MIGRATE);
    OK(rs_hold_release(vm, RS_FINISH_MIGRATE, &err));
    EXPECT("RESUME", "bad(1,running)");

    REFUSED(rs_vm_stop_force_state(vm, RS_PAUSED, &err), -EIO, NULL);
    EXPECT("bad(0,paused)", "STOP paused", "hook:drain");
    ASSERT_STATE(RS_PAUSED, RS_PAUSED);
    OK(rs_cont(vm, &err));
    rs_rec_clear(t);

    FAILS(rs_vm_shutdown(vm), -EIO);
    EXPECT("bad(0,shutdown)", "hook:drain");
    ASSERT_STATE(RS_SHUTDOWN, RS_SHUTDOWN);
}

static void test_flush_failure_on_a_stopped_vm(void **state)
{
    FIXTURE;
    rs_test_boot(t);
    OK(rs_vm_stop(vm, RS_PAUSED, &err));
    rs_rec_clear(t);
    t->drain_ret = -EIO;
    /* QEMU's vm_stop_force_state returns the flush result: so do these. */
    REFUSED(rs_vm_stop_force_state(vm, RS_POSTMIGRATE, &err), -EIO, NULL);
    EXPECT("x-hold-added postmigrate", "hook:drain");
    REFUSED(rs_hold_acquire(vm, RS_FINISH_MIGRATE, &err), -EIO, NULL);
    EXPECT("x-hold-added finish-migrate", "hook:drain");
    ASSERT_STATE(RS_FINISH_MIGRATE, RS_PAUSED, RS_POSTMIGRATE, RS_FINISH_MIGRATE);
    REFUSED(rs_vm_stop(vm, RS_WATCHDOG, &err), -EIO, NULL);
    EXPECT("x-hold-added watchdog", "hook:drain");
}

static void test_cb_ret_ignored_on_start(void **state)
{
    FIXTURE;
    rs_rec_handler_ret(t, "bad", 0, 0, -EIO);
    OK(rs_cont(vm, &err));
    EXPECT("RESUME", "bad(1,running)");
    ASSERT_LIVE(RS_RUNNING);
    /* Returning 0 on stop is success. */
    OK(rs_vm_stop(vm, RS_PAUSED, &err));
    EXPECT("bad(0,paused)", "STOP paused", "hook:drain");
}

static void test_cb_ret_failure_during_a_request(void **state)
{
    FIXTURE;
    rs_rec_handler_ret(t, "bad", 0, -1, 0);
    rs_test_boot(t);
    /* Through the main loop the failure cannot be returned; the hold and
     * the STOP are still there. */
    OK(rs_request_vmstop(vm, RS_IO_ERROR));
    PROCESS();
    EXPECT("bad(0,io-error)", "STOP io-error", "hook:drain");
    ASSERT_STATE(RS_IO_ERROR, RS_IO_ERROR);
}

/* ======================================================= add/del in a pass */

typedef struct del_plan {
    rs_rec_h *victim;
    int del_self, del_victim, del_victim_again;
} del_plan;

static void remove_self_and_victim(rs_rec_h *self, bool running, rs_state s)
{
    del_plan *p = self->arg;
    rs_vm *vm = self->rec->vm;
    p->del_self = rs_handler_del(vm, self->h);
    p->del_victim = rs_handler_del(vm, p->victim->h);
    p->del_victim_again = rs_handler_del(vm, p->victim->h);
    self->inside = NULL;
}

static void test_handler_removes_itself_and_a_later_one(void **state)
{
    FIXTURE;
    rs_rec_handler(t, "first", -1);
    rs_rec_h *x = rs_rec_handler(t, "x", 0);
    rs_rec_h *y = rs_rec_handler(t, "y", 10);
    rs_rec_handler(t, "last", 20);
    del_plan plan = { .victim = y, .del_self = 1, .del_victim = 1, .del_victim_again = 1 };
    x->arg = &plan;
    x->inside = remove_self_and_victim;

    /* y would come after x in this start pass: it is not called. */
    OK(rs_cont(vm, &err));
    EXPECT("RESUME", "first(1,running)", "x(1,running)", "last(1,running)");
    assert_int_equal(plan.del_self, 0);
    assert_int_equal(plan.del_victim, 0);
    assert_int_equal(plan.del_victim_again, -ENOENT);

    /* Neither is called again. */
    OK(rs_vm_stop(vm, RS_PAUSED, &err));
    EXPECT("last(0,paused)", "first(0,paused)", "STOP paused", "hook:drain");
}

static void test_handler_removes_one_already_called(void **state)
{
    FIXTURE;
    rs_rec_h *early = rs_rec_handler(t, "early", 30);   /* first on stop */
    rs_rec_h *z = rs_rec_handler(t, "z", 20);
    rs_rec_handler(t, "late", 0);
    rs_test_boot(t);
    del_plan plan = { .victim = early };
    z->arg = &plan;
    z->inside = remove_self_and_victim;

    OK(rs_vm_stop(vm, RS_PAUSED, &err));
    EXPECT("early(0,paused)", "z(0,paused)", "late(0,paused)", "STOP paused", "hook:drain");
    assert_int_equal(plan.del_self, 0);
    assert_int_equal(plan.del_victim, 0);
    OK(rs_cont(vm, &err));
    EXPECT("RESUME", "late(1,running)");
}

static void add_late(rs_rec_h *self, bool running, rs_state s)
{
    rs_rec_h **out = self->arg;
    *out = rs_rec_handler(self->rec, "new", 10);
    self->inside = NULL;
}

static void test_handler_added_in_a_pass_waits_for_the_next(void **state)
{
    FIXTURE;
    rs_rec_h *adder = rs_rec_handler(t, "adder", 0);
    rs_rec_handler(t, "other", 20);
    rs_rec_h *added = NULL;
    adder->arg = &added;
    adder->inside = add_late;

    /* "new" (priority 10) would sort between the two. */
    OK(rs_cont(vm, &err));
    EXPECT("RESUME", "adder(1,running)", "other(1,running)");
    assert_non_null(added);
    OK(rs_vm_stop(vm, RS_PAUSED, &err));
    EXPECT("other(0,paused)", "new(0,paused)", "adder(0,paused)", "STOP paused", "hook:drain");
    assert_int_equal(rs_handler_del(vm, added->h), 0);
    OK(rs_cont(vm, &err));
    EXPECT("RESUME", "adder(1,running)", "other(1,running)");
}

/* ================================================================ bad input */

static void noop(void *opaque, bool running, rs_state s) { (void)opaque; (void)running; (void)s; }
static int noop_ret(void *opaque, bool running, rs_state s) { (void)opaque; (void)running; (void)s; return 0; }

static void test_bad_arguments(void **state)
{
    FIXTURE;
    errno = 0;
    assert_null(rs_handler_add(NULL, noop, NULL, 0));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(rs_handler_add(vm, NULL, NULL, 0));
    assert_int_equal(errno, EINVAL);
    errno = 0;      /* both cb and cb_ret */
    assert_null(rs_handler_add_full(vm, noop, NULL, noop_ret, NULL, 0));
    assert_int_equal(errno, EINVAL);
    errno = 0;      /* neither, even with a prepare callback */
    assert_null(rs_handler_add_full(vm, NULL, noop, NULL, NULL, 0));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(rs_handler_add_full(NULL, noop, NULL, NULL, NULL, 0));
    assert_int_equal(errno, EINVAL);

    rs_handler *h = rs_handler_add(vm, noop, NULL, 0);
    assert_non_null(h);
    assert_int_equal(rs_handler_del(vm, NULL), -EINVAL);
    assert_int_equal(rs_handler_del(NULL, h), -EINVAL);
    assert_int_equal(rs_handler_del(vm, h), 0);

    /* A handler of another VM is unknown here. */
    rs_vm *other = rs_vm_new();
    assert_non_null(other);
    rs_handler *foreign = rs_handler_add(other, noop, NULL, 0);
    assert_non_null(foreign);
    assert_int_equal(rs_handler_del(vm, foreign), -ENOENT);
    assert_int_equal(rs_handler_del(other, foreign), 0);
    rs_vm_free(other);

    /* Event sinks. */
    assert_int_equal(rs_event_sink_add(vm, NULL, NULL), -EINVAL);
    assert_int_equal(rs_event_sink_add(NULL, NULL, NULL), -EINVAL);
    assert_int_equal(rs_event_sink_del(vm, NULL, NULL), -ENOENT);
    assert_int_equal(rs_event_sink_del(NULL, NULL, NULL), -EINVAL);
    EXPECT_NOTHING();
}

static void test_handlers_left_registered_are_freed(void **state)
{
    FIXTURE;
    /* The leak check of the sanitizer build is the assertion here. */
    rs_vm *other = rs_vm_new();
    assert_non_null(other);
    for (int i = 0; i < 100; i++)
        assert_non_null(rs_handler_add_full(other, noop, noop, NULL, NULL, i % 7));
    rs_err e;
    assert_int_equal(rs_cont(other, &e), 0);
    rs_vm_free(other);
}

/* ============================================ no state change from inside */

typedef struct busy_results {
    int stop, cont, retry, shutdown, force, resume, acquire, release, process, panic,
        watchdog, was_suspended, tried;
} busy_results;

static void try_everything(rs_vm *vm, busy_results *r)
{
    rs_err e;
    r->stop = rs_vm_stop(vm, RS_WATCHDOG, &e);
    r->cont = rs_cont(vm, &e);
    r->retry = rs_retry(vm, &e);
    r->shutdown = rs_vm_shutdown(vm);
    r->force = rs_vm_stop_force_state(vm, RS_PAUSED, &e);
    r->resume = rs_vm_resume(vm, RS_RUNNING, &e);
    r->acquire = rs_hold_acquire(vm, RS_FINISH_MIGRATE, &e);
    r->release = rs_hold_release(vm, RS_FINISH_MIGRATE, &e);
    r->process = rs_process_requests(vm, NULL);
    r->panic = rs_guest_panicked(vm);
    r->watchdog = rs_watchdog_expired(vm);
    r->was_suspended = rs_set_was_suspended(vm, true);
    r->tried++;
}

static void assert_all_busy(const busy_results *r)
{
    assert_true(r->tried > 0);
    assert_int_equal(r->stop, -EBUSY);
    assert_int_equal(r->cont, -EBUSY);
    assert_int_equal(r->retry, -EBUSY);
    assert_int_equal(r->shutdown, -EBUSY);
    assert_int_equal(r->force, -EBUSY);
    assert_int_equal(r->resume, -EBUSY);
    assert_int_equal(r->acquire, -EBUSY);
    assert_int_equal(r->release, -EBUSY);
    assert_int_equal(r->process, -EBUSY);
    assert_int_equal(r->panic, -EBUSY);
    assert_int_equal(r->watchdog, -EBUSY);
    assert_int_equal(r->was_suspended, -EBUSY);
}

static void busy_inside_handler(rs_rec_h *self, bool running, rs_state s)
{
    try_everything(self->rec->vm, self->arg);
}

static void test_state_changes_from_a_handler_are_refused(void **state)
{
    FIXTURE;
    busy_results on_start = { 0 }, on_stop = { 0 };
    rs_rec_h *h = rs_rec_handler(t, "h", 0);
    h->inside = busy_inside_handler;

    h->arg = &on_start;
    OK(rs_cont(vm, &err));
    EXPECT("RESUME", "h(1,running)");
    assert_all_busy(&on_start);
    ASSERT_LIVE(RS_RUNNING);

    h->arg = &on_stop;
    OK(rs_vm_stop(vm, RS_PAUSED, &err));
    EXPECT("h(0,paused)", "STOP paused", "hook:drain");
    assert_all_busy(&on_stop);
    ASSERT_STATE(RS_PAUSED, RS_PAUSED);
}

typedef struct sink_probe {
    rs_vm *vm;
    busy_results r;
} sink_probe;

static void busy_sink(void *opaque, const rs_event *ev)
{
    sink_probe *p = opaque;
    if (ev->type == RS_EV_STOP || ev->type == RS_EV_RESUME)
        try_everything(p->vm, &p->r);
}

static void test_state_changes_from_an_event_sink_are_refused(void **state)
{
    FIXTURE;
    sink_probe p = { .vm = vm };
    assert_int_equal(rs_event_sink_add(vm, busy_sink, &p), 0);
    OK(rs_cont(vm, &err));
    EXPECT("RESUME");
    assert_int_equal(p.r.tried, 1);
    assert_all_busy(&p.r);
    OK(rs_vm_stop(vm, RS_PAUSED, &err));
    EXPECT("STOP paused", "hook:drain");
    assert_int_equal(p.r.tried, 2);
    assert_all_busy(&p.r);
    /* Removed, it is no longer called. */
    assert_int_equal(rs_event_sink_del(vm, busy_sink, &p), 0);
    OK(rs_cont(vm, &err));
    assert_int_equal(p.r.tried, 2);
}

static void post_stop_inside(rs_rec_h *self, bool running, rs_state s)
{
    int *r = self->arg;
    *r = rs_request_vmstop(self->rec->vm, RS_IO_ERROR);
    self->inside = NULL;
}

static void test_a_handler_may_post_a_request(void **state)
{
    FIXTURE;
    int posted = 1;
    rs_rec_h *h = rs_rec_handler(t, "h", 0);
    h->arg = &posted;
    h->inside = post_stop_inside;
    OK(rs_cont(vm, &err));
    assert_int_equal(posted, 0);
    EXPECT("RESUME", "h(1,running)");
    PROCESS();
    EXPECT("h(0,io-error)", "STOP io-error", "hook:drain");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_priority_order_and_ties),
        TEST(test_extreme_priorities),
        TEST(test_prepare_phase_first),
        TEST(test_cb_ret_ored_on_stop),
        TEST(test_cb_ret_failure_on_other_stops),
        TEST(test_flush_failure_on_a_stopped_vm),
        TEST(test_cb_ret_ignored_on_start),
        TEST(test_cb_ret_failure_during_a_request),
        TEST(test_handler_removes_itself_and_a_later_one),
        TEST(test_handler_removes_one_already_called),
        TEST(test_handler_added_in_a_pass_waits_for_the_next),
        TEST(test_bad_arguments),
        TEST(test_handlers_left_registered_are_freed),
        TEST(test_state_changes_from_a_handler_are_refused),
        TEST(test_state_changes_from_an_event_sink_are_refused),
        TEST(test_a_handler_may_post_a_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

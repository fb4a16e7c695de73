/*
 * librunstate: stopping, starting and the hold rules (docs/runstate.md
 * §4–§10), as seen by change-state handlers and event sinks.
 *
 * Every step is followed by the exact sequence of handler calls, hooks and
 * events it must produce, and by the invariant "live iff no hold" (checked
 * in the step macros); the teardown asserts that the library never refused
 * a transition of its own.
 */
#include "../lib/rs_test.h"

#include <poll.h>
#include <stdio.h>

static const rs_state stop_reasons[] = {
    RS_PAUSED, RS_IO_ERROR, RS_WATCHDOG, RS_GUEST_PANICKED,
    RS_DEBUG, RS_SHUTDOWN, RS_INTERNAL_ERROR, RS_POSTMIGRATE,
};
#define NSTOP_REASONS (sizeof(stop_reasons) / sizeof(stop_reasons[0]))

/* The notify fd is readable right now (no waiting: single thread). */
static bool kicked(rs_vm *vm)
{
    struct pollfd p = { .fd = rs_notify_fd(vm), .events = POLLIN };
    return poll(&p, 1, 0) == 1;
}

static const char *line(char *buf, const char *prefix, rs_state s)
{
    snprintf(buf, RS_REC_LINE, "%s%s", prefix, rs_state_name(s));
    return buf;
}

/* ================================================================ basics */

static void test_new_vm_is_prelaunch_with_a_hold(void **state)
{
    FIXTURE;
    ASSERT_STATE(RS_PRELAUNCH, RS_PRELAUNCH);
    assert_false(rs_is_live(vm));
    assert_false(rs_is_running(vm));
    assert_false(rs_needs_reset(vm));
    assert_false(rs_was_suspended(vm));
    assert_false(rs_autostart_pending(vm));

    rs_hold_info hi[4];
    assert_int_equal(rs_list_holds(vm, hi, 4), 1);
    assert_int_equal(hi[0].reason, RS_PRELAUNCH);
    assert_int_equal(hi[0].group, RS_GROUP_USER);
    assert_true(hi[0].since_mono_ns > 0 && hi[0].since_wall_ns > 0);
    /* The count is returned even when nothing fits. */
    assert_int_equal(rs_list_holds(vm, NULL, 0), 1);
    EXPECT_NOTHING();
}

static void test_boot_is_a_cont(void **state)
{
    FIXTURE;
    rs_rec_handler(t, "a", 0);
    rs_rec_handler(t, "b", 5);
    OK(rs_cont(vm, &err));
    EXPECT("RESUME", "a(1,running)", "b(1,running)");
    ASSERT_LIVE(RS_RUNNING);
    assert_true(rs_is_running(vm));

    rs_transition_rec h[RS_HISTORY_LEN];
    size_t n = rs_history(vm, h, RS_HISTORY_LEN);
    assert_int_equal(n, 1);
    assert_int_equal(h[0].from, RS_PRELAUNCH);
    assert_int_equal(h[0].to, RS_RUNNING);
    assert_string_equal(h[0].cause, "cont");
    assert_true(h[0].mono_ns > 0);

    /* cont on a running VM: success, nothing happens (§6 step 7). */
    OK(rs_cont(vm, &err));
    EXPECT_NOTHING();
}

/* ================================================================ stopping */

static void test_stop_and_start_order(void **state)
{
    FIXTURE;
    rs_rec_handler(t, "a", 0);
    rs_rec_handler(t, "b", 10);
    rs_test_boot(t);

    /* Stop: display first (handlers see it), handlers in reverse, STOP,
     * then drain/flush. */
    OK(rs_vm_stop(vm, RS_PAUSED, &err));
    EXPECT("b(0,paused)", "a(0,paused)", "STOP paused", "hook:drain");
    ASSERT_STATE(RS_PAUSED, RS_PAUSED);
    const rs_event *stop = &t->ev[0];
    assert_int_equal(stop->type, RS_EV_STOP);
    assert_int_equal(stop->state, RS_PAUSED);
    assert_int_equal(stop->hold, RS_PAUSED);
    assert_false(rs_was_suspended(vm));

    /* Start: RESUME before the handlers, ascending; no drain on start. */
    OK(rs_cont(vm, &err));
    EXPECT("RESUME", "a(1,running)", "b(1,running)");
    ASSERT_LIVE(RS_RUNNING);
}

static void test_events_carry_the_state_after_them(void **state)
{
    FIXTURE;
    rs_test_boot(t);
    OK(rs_vm_stop(vm, RS_PAUSED, &err));
    OK(rs_cont(vm, &err));
    assert_int_equal(t->nev, 2);
    assert_int_equal(t->ev[0].type, RS_EV_STOP);
    assert_int_equal(t->ev[0].state, RS_PAUSED);
    assert_int_equal(t->ev[0].holds, RS_HOLD_BIT(RS_PAUSED));
    assert_int_equal(t->ev[1].type, RS_EV_RESUME);
    assert_int_equal(t->ev[1].state, RS_RUNNING);    /* §13: the display after it */
    assert_int_equal(t->ev[1].holds, 0);
    assert_int_equal(t->ev[1].hold, RS_STATE__MAX);
    assert_true(t->ev[0].mono_ns <= t->ev[1].mono_ns);
    assert_true(t->ev[0].wall_ns > 0 && t->ev[1].wall_ns > 0);
    EXPECT("STOP paused", "hook:drain", "RESUME");
}

static void test_stop_when_stopped_only_adds_the_hold(void **state)
{
    FIXTURE;
    rs_rec_handler(t, "a", 0);
    rs_test_boot(t);
    OK(rs_vm_stop(vm, RS_PAUSED, &err));
    EXPECT("a(0,paused)", "STOP paused", "hook:drain");

    /* A second reason: a hold and x-hold-added, the display stays, QEMU's
     * drain and flush still happen; no handler, no STOP. */
    OK(rs_vm_stop(vm, RS_WATCHDOG, &err));
    EXPECT("x-hold-added watchdog", "hook:drain");
    ASSERT_STATE(RS_PAUSED, RS_PAUSED, RS_WATCHDOG);

    /* A reason already held is not added again: same sequence number. */
    rs_hold_info before[4], after[4];
    assert_int_equal(rs_list_holds(vm, before, 4), 2);
    OK(rs_vm_stop(vm, RS_PAUSED, &err));
    EXPECT("hook:drain");
    assert_int_equal(rs_list_holds(vm, after, 4), 2);
    assert_memory_equal(before, after, sizeof(before[0]) * 2);
    assert_int_equal(after[0].reason, RS_PAUSED);    /* acquisition order */
    assert_int_equal(after[1].reason, RS_WATCHDOG);
    assert_true(after[0].seq < after[1].seq);

    /* cont releases both; RESUME announces them, no x-hold-released. */
    OK(rs_cont(vm, &err));
    EXPECT("RESUME", "a(1,running)");
    ASSERT_LIVE(RS_RUNNING);
}

static void test_stop_refuses_what_is_not_a_stop_reason(void **state)
{
    FIXTURE;
    rs_test_boot(t);
    const rs_state bad[] = {
        RS_RUNNING, RS_SUSPENDED, RS_PRELAUNCH, RS_INMIGRATE, RS_FINISH_MIGRATE,
        RS_SAVE_VM, RS_RESTORE_VM, RS_COLO, RS_STATE__MAX, (rs_state)99, (rs_state)-1,
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        REFUSED(rs_vm_stop(vm, bad[i], &err), -EINVAL, NULL);
    /* A NULL rs_err is allowed; a NULL vm is a clear error. */
    FAILS(rs_vm_stop(vm, RS_RUNNING, NULL), -EINVAL);
    assert_int_equal(rs_vm_stop(NULL, RS_PAUSED, &err), -EINVAL);
    EXPECT_NOTHING();
    ASSERT_LIVE(RS_RUNNING);
}

static void test_flush_failure_returns_eio_and_keeps_the_hold(void **state)
{
    FIXTURE;
    rs_test_boot(t);
    t->drain_ret = -EIO;
    REFUSED(rs_vm_stop(vm, RS_IO_ERROR, &err), -EIO, NULL);
    EXPECT("STOP io-error", "hook:drain");
    ASSERT_STATE(RS_IO_ERROR, RS_IO_ERROR);
    t->drain_ret = 0;
    OK(rs_cont(vm, &err));
    EXPECT("RESUME");
}

static void test_vm_shutdown_notifies_without_stop(void **state)
{
    FIXTURE;
    rs_rec_handler(t, "a", 0);
    rs_test_boot(t);
    OK(rs_vm_shutdown(vm));
    EXPECT("a(0,shutdown)", "hook:drain");
    ASSERT_STATE(RS_SHUTDOWN, RS_SHUTDOWN);
    assert_true(rs_needs_reset(vm));
    FAILS(rs_vm_shutdown(NULL), -EINVAL);
}

static void test_stop_force_state(void **state)
{
    FIXTURE;
    rs_rec_handler(t, "a", 0);
    rs_test_boot(t);
    /* Live: as a stop. */
    OK(rs_vm_stop_force_state(vm, RS_PAUSED, &err));
    EXPECT("a(0,paused)", "STOP paused", "hook:drain");
    /* Stopped: hold added and display moved along paused -> postmigrate,
     * no handlers, no STOP, drain and flush. */
    OK(rs_vm_stop_force_state(vm, RS_POSTMIGRATE, &err));
    EXPECT("x-hold-added postmigrate", "hook:drain");
    ASSERT_STATE(RS_POSTMIGRATE, RS_PAUSED, RS_POSTMIGRATE);
    /* No postmigrate -> io-error edge: the hold is taken, the display stays. */
    OK(rs_vm_stop_force_state(vm, RS_IO_ERROR, &err));
    EXPECT("x-hold-added io-error", "hook:drain");
    ASSERT_STATE(RS_POSTMIGRATE, RS_PAUSED, RS_POSTMIGRATE, RS_IO_ERROR);

    REFUSED(rs_vm_stop_force_state(vm, RS_RUNNING, &err), -EINVAL, NULL);
    REFUSED(rs_vm_stop_force_state(vm, (rs_state)99, &err), -EINVAL, NULL);
    EXPECT_NOTHING();

    OK(rs_cont(vm, &err));
    EXPECT("RESUME", "a(1,running)");
}

static void test_vm_resume_puts_back_a_held_state(void **state)
{
    FIXTURE;
    rs_test_boot(t);
    OK(rs_vm_stop(vm, RS_PAUSED, &err));
    OK(rs_vm_stop(vm, RS_POSTMIGRATE, &err));
    EXPECT("STOP paused", "hook:drain", "x-hold-added postmigrate", "hook:drain");
    ASSERT_STATE(RS_PAUSED, RS_PAUSED, RS_POSTMIGRATE);
    /* A held state, along a legal edge: shown; no event, no handler. */
    OK(rs_vm_resume(vm, RS_POSTMIGRATE, &err));
    EXPECT_NOTHING();
    ASSERT_STATE(RS_POSTMIGRATE, RS_PAUSED, RS_POSTMIGRATE);
    /* Already shown: nothing to do. */
    OK(rs_vm_resume(vm, RS_POSTMIGRATE, &err));
    /* Held but no postmigrate -> paused edge: refused, display kept. */
    REFUSED(rs_vm_resume(vm, RS_PAUSED, &err), -EINVAL, NULL);
    /* Not held, junk. */
    REFUSED(rs_vm_resume(vm, RS_WATCHDOG, &err), -EINVAL, NULL);
    REFUSED(rs_vm_resume(vm, (rs_state)99, &err), -EINVAL, NULL);
    /* A live state while something holds the VM. */
    memset(&err, 0, sizeof(err));
    assert_true(rs_vm_resume(vm, RS_RUNNING, &err) < 0);
    assert_true(err.code < 0 && err.msg[0]);
    EXPECT_NOTHING();
    ASSERT_STATE(RS_POSTMIGRATE, RS_PAUSED, RS_POSTMIGRATE);
}

static void test_vm_resume_during_an_internal_hold(void **state)
{
    FIXTURE;
    rs_test_boot(t);
    OK(rs_vm_stop(vm, RS_IO_ERROR, &err));
    EXPECT("STOP io-error", "hook:drain");
    /* An outgoing migration of the stopped VM, which then fails. */
    OK(rs_hold_acquire(vm, RS_FINISH_MIGRATE, &err));
    EXPECT("x-hold-added finish-migrate", "hook:drain");
    ASSERT_STATE(RS_FINISH_MIGRATE, RS_IO_ERROR, RS_FINISH_MIGRATE);
    /* §4 rule 5: the display keeps showing the internal state... */
    REFUSED(rs_vm_resume(vm, RS_IO_ERROR, &err), -EINVAL, NULL);
    EXPECT_NOTHING();
    /* ...and its release puts back the residual. */
    OK(rs_hold_release(vm, RS_FINISH_MIGRATE, &err));
    EXPECT("x-hold-released finish-migrate");
    ASSERT_STATE(RS_IO_ERROR, RS_IO_ERROR);
    OK(rs_vm_resume(vm, RS_IO_ERROR, &err));
    EXPECT_NOTHING();
}

static void test_history_ring_keeps_the_latest(void **state)
{
    FIXTURE;
    rs_test_boot(t);
    for (int i = 0; i < 40; i++) {
        OK(rs_vm_stop(vm, RS_PAUSED, &err));
        OK(rs_cont(vm, &err));
    }
    rs_transition_rec h[RS_HISTORY_LEN];
    assert_int_equal(rs_history(vm, h, RS_HISTORY_LEN), RS_HISTORY_LEN);
    /* Oldest first, each change starting where the previous one ended. */
    for (size_t i = 0; i + 1 < RS_HISTORY_LEN; i++) {
        assert_int_equal(h[i].to, h[i + 1].from);
        assert_true(h[i].mono_ns <= h[i + 1].mono_ns);
        assert_true(rs_transition_allowed(h[i].from, h[i].to));
    }
    assert_int_equal(h[RS_HISTORY_LEN - 1].from, RS_PAUSED);
    assert_int_equal(h[RS_HISTORY_LEN - 1].to, RS_RUNNING);
    assert_string_equal(h[RS_HISTORY_LEN - 1].cause, "cont");
    assert_string_equal(h[RS_HISTORY_LEN - 2].cause, "stop");
    /* Fewer asked: the most recent ones. */
    rs_transition_rec last[2];
    assert_int_equal(rs_history(vm, last, 2), RS_HISTORY_LEN);
    assert_memory_equal(&last[0], &h[RS_HISTORY_LEN - 2], sizeof(last));
}

/* ============================================ choosing the display (§4) */

static void test_io_error_in_suspended_shows_paused(void **state)
{
    FIXTURE;
    rs_rec_handler(t, "a", 0);
    rs_test_boot(t);
    OK(rs_request_suspend(vm));
    PROCESS();
    rs_rec_clear(t);
    /* No suspended -> io-error edge: paused shows, io-error is held, and
     * STOP names the reason. */
    OK(rs_vm_stop(vm, RS_IO_ERROR, &err));
    EXPECT("a(0,paused)", "STOP io-error", "hook:drain");
    ASSERT_STATE(RS_PAUSED, RS_IO_ERROR);
    assert_true(rs_was_suspended(vm));
    OK(rs_retry(vm, &err));
    EXPECT("RESUME", "a(1,suspended)");
    ASSERT_LIVE(RS_SUSPENDED);
}

static void test_debug_left_by_a_migration_shows_paused(void **state)
{
    FIXTURE;
    rs_test_boot(t);
    OK(rs_hold_acquire(vm, RS_FINISH_MIGRATE, &err));
    OK(rs_vm_stop(vm, RS_DEBUG, &err));
    rs_rec_clear(t);
    /* No finish-migrate -> debug edge: the residual falls back to paused. */
    OK(rs_hold_release(vm, RS_FINISH_MIGRATE, &err));
    EXPECT("x-hold-released finish-migrate");
    ASSERT_STATE(RS_PAUSED, RS_DEBUG);
    OK(rs_cont(vm, &err));
    EXPECT("RESUME");
}

/* ============================================ suspended (reference §2.4) */

static void test_suspended_table_line_by_line(void **state)
{
    FIXTURE;
    rs_rec_handler(t, "a", 0);
    rs_test_boot(t);

    /* guest S3: running -> suspended; suspend hook, SUSPEND; no handlers,
     * no STOP.  Only the main loop changes the state. */
    OK(rs_request_suspend(vm));
    ASSERT_LIVE(RS_RUNNING);
    PROCESS();
    EXPECT("hook:suspend", "SUSPEND");
    ASSERT_LIVE(RS_SUSPENDED);
    assert_true(rs_is_live(vm));
    assert_false(rs_is_running(vm));

    /* stop: suspended -> paused, W set, handlers (false, paused), STOP. */
    OK(rs_vm_stop(vm, RS_PAUSED, &err));
    EXPECT("a(0,paused)", "STOP paused", "hook:drain");
    ASSERT_STATE(RS_PAUSED, RS_PAUSED);
    assert_true(rs_was_suspended(vm));

    /* system_wakeup in paused (was suspended): QEMU's error. */
    memset(&err, 0, sizeof(err));
    assert_true(rs_request_wakeup(vm, RS_WAKEUP_OTHER, &err) < 0);
    assert_string_equal(err.msg, "Unable to wake up: guest is not in suspended state");
    PROCESS();
    EXPECT_NOTHING();

    /* cont: paused -> suspended, RESUME, handlers (true, suspended). */
    OK(rs_cont(vm, &err));
    EXPECT("RESUME", "a(1,suspended)");
    ASSERT_LIVE(RS_SUSPENDED);
    assert_false(rs_was_suspended(vm));

    /* cont in suspended: success, nothing. */
    OK(rs_cont(vm, &err));
    EXPECT_NOTHING();
    ASSERT_LIVE(RS_SUSPENDED);

    /* S3 again while in S3: ignored (§10). */
    OK(rs_request_suspend(vm));
    PROCESS();
    EXPECT_NOTHING();
    ASSERT_LIVE(RS_SUSPENDED);

    /* system_wakeup in suspended: -> running, wakeup hook, WAKEUP; no
     * RESUME, no handlers.  The state changes in the main loop. */
    OK(rs_request_wakeup(vm, RS_WAKEUP_OTHER, &err));
    ASSERT_LIVE(RS_SUSPENDED);
    PROCESS();
    const rs_event *ev = rs_rec_last_event(t, RS_EV_WAKEUP);
    assert_non_null(ev);
    assert_int_equal(ev->wakeup, RS_WAKEUP_OTHER);
    EXPECT("hook:wakeup other", "WAKEUP other");
    ASSERT_LIVE(RS_RUNNING);
}

static void test_reset_clears_was_suspended(void **state)
{
    FIXTURE;
    rs_rec_handler(t, "a", 0);
    rs_test_boot(t);
    OK(rs_request_suspend(vm));
    PROCESS();
    OK(rs_vm_stop(vm, RS_PAUSED, &err));
    assert_true(rs_was_suspended(vm));
    rs_rec_clear(t);

    OK(rs_request_reset(vm, RS_CAUSE_HOST_QMP_SYSTEM_RESET));
    PROCESS();
    EXPECT("hook:reset host-qmp-system-reset", "RESET host-qmp-system-reset",
           "x-hold-released paused", "x-hold-added prelaunch");
    ASSERT_STATE(RS_PRELAUNCH, RS_PRELAUNCH);
    assert_false(rs_was_suspended(vm));
    OK(rs_cont(vm, &err));
    EXPECT("RESUME", "a(1,running)");
    ASSERT_LIVE(RS_RUNNING);
}

static void test_reset_while_suspended_shows_running(void **state)
{
    FIXTURE;
    rs_test_boot(t);
    OK(rs_request_suspend(vm));
    PROCESS();
    rs_rec_clear(t);
    /* Decision (§9 step 7): the guest leaves S3 through its reset vector. */
    OK(rs_request_reset(vm, RS_CAUSE_GUEST_RESET));
    PROCESS();
    EXPECT("hook:reset guest-reset", "RESET guest-reset");
    ASSERT_LIVE(RS_RUNNING);
}

static void test_wakeup_reasons_and_mask(void **state)
{
    FIXTURE;
    rs_test_boot(t);
    OK(rs_request_suspend(vm));
    PROCESS();
    rs_rec_clear(t);

    /* A masked reason is accepted and ignored. */
    FAILS(rs_wakeup_enable(vm, RS_WAKEUP_RTC, false), 0);
    OK(rs_request_wakeup(vm, RS_WAKEUP_RTC, &err));
    PROCESS();
    EXPECT_NOTHING();
    ASSERT_LIVE(RS_SUSPENDED);

    /* OTHER is never masked (system_wakeup always works). */
    (void)rs_wakeup_enable(vm, RS_WAKEUP_OTHER, false);
    FAILS(rs_wakeup_enable(vm, RS_WAKEUP_RTC, true), 0);
    OK(rs_request_wakeup(vm, RS_WAKEUP_RTC, &err));
    PROCESS();
    EXPECT("hook:wakeup rtc", "WAKEUP rtc");
    ASSERT_LIVE(RS_RUNNING);

    OK(rs_request_suspend(vm));
    PROCESS();
    rs_rec_clear(t);
    OK(rs_request_wakeup(vm, RS_WAKEUP_OTHER, &err));
    PROCESS();
    EXPECT("hook:wakeup other", "WAKEUP other");

    /* Bad reasons. */
    REFUSED(rs_request_wakeup(vm, RS_WAKEUP_NONE, &err), -EINVAL, NULL);
    REFUSED(rs_request_wakeup(vm, RS_WAKEUP__MAX, &err), -EINVAL, NULL);
    REFUSED(rs_request_wakeup(vm, (rs_wakeup_reason)99, &err), -EINVAL, NULL);
    FAILS(rs_request_wakeup(NULL, RS_WAKEUP_OTHER, NULL), -EINVAL);
    FAILS(rs_wakeup_enable(vm, RS_WAKEUP_NONE, true), -EINVAL);
    FAILS(rs_wakeup_enable(vm, (rs_wakeup_reason)99, true), -EINVAL);
    FAILS(rs_wakeup_enable(NULL, RS_WAKEUP_RTC, true), -EINVAL);
    EXPECT_NOTHING();
}

static void test_wakeup_after_a_stop_in_s3(void **state)
{
    FIXTURE;
    rs_rec_handler(t, "a", 0);
    rs_test_boot(t);
    OK(rs_request_suspend(vm));
    PROCESS();
    rs_rec_clear(t);

    /* The wakeup is accepted while suspended, the VM stops before the main
     * loop takes it: W is cleared, WAKEUP, the display stays (§10). */
    OK(rs_request_wakeup(vm, RS_WAKEUP_RTC, &err));
    OK(rs_vm_stop(vm, RS_PAUSED, &err));
    EXPECT("a(0,paused)", "STOP paused", "hook:drain");
    PROCESS();
    EXPECT("hook:wakeup rtc", "WAKEUP rtc");
    ASSERT_STATE(RS_PAUSED, RS_PAUSED);
    assert_false(rs_was_suspended(vm));
    /* So the next cont goes to running. */
    OK(rs_cont(vm, &err));
    EXPECT("RESUME", "a(1,running)");
    ASSERT_LIVE(RS_RUNNING);
}

static void test_suspend_request_waits_for_a_running_vm(void **state)
{
    FIXTURE;
    rs_test_boot(t);
    OK(rs_vm_stop(vm, RS_PAUSED, &err));
    rs_rec_clear(t);
    /* Decision (§10): on a stopped VM the request stays pending. */
    OK(rs_request_suspend(vm));
    PROCESS();
    EXPECT_NOTHING();
    ASSERT_STATE(RS_PAUSED, RS_PAUSED);
    OK(rs_cont(vm, &err));
    EXPECT("RESUME");
    assert_true(kicked(vm));    /* the start wakes the main loop for it */
    PROCESS();
    EXPECT("hook:suspend", "SUSPEND");
    ASSERT_LIVE(RS_SUSPENDED);
}

/* ================================================================ cont */

static void check_needs_reset(rs_rec *t, rs_state fatal)
{
    rs_vm *vm = t->vm;
    rs_err err;
    char buf[RS_REC_LINE];
    rs_test_boot(t);
    OK(rs_vm_stop(vm, fatal, &err));
    EXPECT(line(buf, "STOP ", fatal), "hook:drain");
    assert_true(rs_needs_reset(vm));

    REFUSED(rs_cont(vm, &err), -EPERM, "Resetting the Virtual Machine is required");
    EXPECT_NOTHING();
    ASSERT_STATE(fatal, fatal);
    /* A user hold next to it changes nothing: still refused, both kept. */
    OK(rs_vm_stop(vm, RS_PAUSED, &err));
    REFUSED(rs_cont(vm, &err), -EPERM, "Resetting the Virtual Machine is required");
    ASSERT_STATE(fatal, fatal, RS_PAUSED);
    rs_rec_clear(t);

    OK(rs_request_reset(vm, RS_CAUSE_HOST_QMP_SYSTEM_RESET));
    PROCESS();
    ASSERT_STATE(RS_PRELAUNCH, RS_PRELAUNCH);
    assert_false(rs_needs_reset(vm));
    OK(rs_cont(vm, &err));
    ASSERT_LIVE(RS_RUNNING);
}

static void test_cont_after_shutdown_needs_reset(void **state)
{
    check_needs_reset(*state, RS_SHUTDOWN);
}

static void test_cont_after_internal_error_needs_reset(void **state)
{
    check_needs_reset(*state, RS_INTERNAL_ERROR);
}

static void test_cont_during_finish_migrate(void **state)
{
    FIXTURE;
    rs_rec_handler(t, "a", 0);
    rs_test_boot(t);
    OK(rs_hold_acquire(vm, RS_FINISH_MIGRATE, &err));
    EXPECT("a(0,finish-migrate)", "STOP finish-migrate", "hook:drain");
    REFUSED(rs_cont(vm, &err), -EBUSY, "Migration is not finalized yet");
    EXPECT_NOTHING();
    ASSERT_STATE(RS_FINISH_MIGRATE, RS_FINISH_MIGRATE);

    /* The fatal check comes first (§6 step 3 before step 4). */
    OK(rs_vm_stop(vm, RS_SHUTDOWN, &err));
    EXPECT("x-hold-added shutdown", "hook:drain");
    REFUSED(rs_cont(vm, &err), -EPERM, "Resetting the Virtual Machine is required");
    FAILS(rs_cont(NULL, &err), -EINVAL);
}

static void test_retry_rules(void **state)
{
    FIXTURE;
    rs_test_boot(t);
    REFUSED(rs_retry(vm, &err), -ENOENT, "No I/O error is parked");

    OK(rs_vm_stop(vm, RS_IO_ERROR, &err));
    OK(rs_vm_stop(vm, RS_PAUSED, &err));
    EXPECT("STOP io-error", "hook:drain", "x-hold-added paused", "hook:drain");
    REFUSED(rs_retry(vm, &err), -EBUSY, "also held by: paused");
    OK(rs_vm_stop(vm, RS_WATCHDOG, &err));
    rs_rec_clear(t);
    REFUSED(rs_retry(vm, &err), -EBUSY, "also held by: paused, watchdog");
    EXPECT_NOTHING();
    /* cont clears user and management holds alike. */
    OK(rs_cont(vm, &err));
    EXPECT("RESUME");
    ASSERT_LIVE(RS_RUNNING);

    /* io-error alone: retry starts the VM. */
    OK(rs_vm_stop(vm, RS_IO_ERROR, &err));
    rs_rec_clear(t);
    OK(rs_retry(vm, &err));
    EXPECT("RESUME");
    ASSERT_LIVE(RS_RUNNING);

    /* A pending io-error stop is taken first (step 2), then retried. */
    OK(rs_request_vmstop(vm, RS_IO_ERROR));
    OK(rs_retry(vm, &err));
    EXPECT("STOP io-error", "hook:drain", "RESUME");
    ASSERT_LIVE(RS_RUNNING);
    PROCESS();
    EXPECT_NOTHING();

    /* Never past a fatal hold. */
    OK(rs_vm_stop(vm, RS_IO_ERROR, &err));
    OK(rs_vm_stop(vm, RS_SHUTDOWN, &err));
    rs_rec_clear(t);
    REFUSED(rs_retry(vm, &err), -EBUSY, "also held by: shutdown");
    ASSERT_STATE(RS_IO_ERROR, RS_IO_ERROR, RS_SHUTDOWN);
    FAILS(rs_retry(NULL, &err), -EINVAL);
}

/* The activate hook (docs/runstate.md §6 step 8): asked only when the
 * start would happen; a refusal keeps every hold and emits nothing. */
static void test_activate_refuses_the_start(void **state)
{
    FIXTURE;
    rs_test_boot(t);                             /* prelaunch -> running: asked once */
    assert_int_equal(t->activate_calls, 1);
    t->activate_calls = 0;
    OK(rs_cont(vm, &err));                       /* nothing held: not asked */
    assert_int_equal(t->activate_calls, 0);
    OK(rs_vm_stop(vm, RS_IO_ERROR, &err));
    OK(rs_vm_stop(vm, RS_PAUSED, &err));
    rs_rec_clear(t);
    t->activate_ret = -EBUSY;
    REFUSED(rs_retry(vm, &err), -EBUSY, "also held by: paused");   /* refused before */
    assert_int_equal(t->activate_calls, 0);
    REFUSED(rs_cont(vm, &err), -EBUSY, "disk hda: image locked by another process");
    assert_int_equal(t->activate_calls, 1);
    EXPECT_NOTHING();
    ASSERT_STATE(RS_IO_ERROR, RS_IO_ERROR, RS_PAUSED);
    t->activate_ret = 0;
    OK(rs_cont(vm, &err));
    EXPECT("RESUME");
    ASSERT_LIVE(RS_RUNNING);

    /* retry: the same refusal, io-error kept. */
    OK(rs_vm_stop(vm, RS_IO_ERROR, &err));
    rs_rec_clear(t);
    t->activate_ret = -EBUSY;
    REFUSED(rs_retry(vm, &err), -EBUSY, "disk hda: image locked by another process");
    EXPECT_NOTHING();
    ASSERT_STATE(RS_IO_ERROR, RS_IO_ERROR);
    t->activate_ret = 0;
    OK(rs_retry(vm, &err));
    EXPECT("RESUME");
    ASSERT_LIVE(RS_RUNNING);
    assert_int_equal(t->activate_calls, 4);
}

/* ============================================================ inmigrate */

static void test_cont_during_inmigrate_is_remembered(void **state)
{
    FIXTURE;
    rs_rec_handler(t, "a", 0);
    OK(rs_hold_acquire(vm, RS_INMIGRATE, &err));
    EXPECT("x-hold-added inmigrate");
    ASSERT_STATE(RS_INMIGRATE, RS_PRELAUNCH, RS_INMIGRATE);

    OK(rs_cont(vm, &err));
    EXPECT_NOTHING();
    assert_true(rs_autostart_pending(vm));
    ASSERT_STATE(RS_INMIGRATE, RS_PRELAUNCH, RS_INMIGRATE);

    /* The load is done: the remembered cont starts the VM. */
    OK(rs_hold_release(vm, RS_INMIGRATE, &err));
    EXPECT("RESUME", "a(1,running)");
    ASSERT_LIVE(RS_RUNNING);
    assert_false(rs_autostart_pending(vm));
}

static void test_stop_during_inmigrate_forgets_cont(void **state)
{
    FIXTURE;
    OK(rs_hold_acquire(vm, RS_INMIGRATE, &err));
    OK(rs_cont(vm, &err));
    assert_true(rs_autostart_pending(vm));
    rs_rec_clear(t);

    OK(rs_vm_stop(vm, RS_PAUSED, &err));
    EXPECT("x-hold-added paused", "hook:drain");
    assert_false(rs_autostart_pending(vm));
    ASSERT_STATE(RS_INMIGRATE, RS_PRELAUNCH, RS_INMIGRATE, RS_PAUSED);

    OK(rs_hold_release(vm, RS_INMIGRATE, &err));
    EXPECT("x-hold-released inmigrate", "x-hold-released prelaunch");
    ASSERT_STATE(RS_PAUSED, RS_PAUSED);
}

static void test_other_stops_during_inmigrate_keep_cont(void **state)
{
    FIXTURE;
    OK(rs_hold_acquire(vm, RS_INMIGRATE, &err));
    OK(rs_cont(vm, &err));
    OK(rs_vm_stop(vm, RS_IO_ERROR, &err));
    assert_true(rs_autostart_pending(vm));
    rs_rec_clear(t);
    /* The remembered cont releases the io-error hold too. */
    OK(rs_hold_release(vm, RS_INMIGRATE, &err));
    EXPECT("RESUME");
    ASSERT_LIVE(RS_RUNNING);
}

static void test_fatal_hold_cancels_remembered_cont(void **state)
{
    FIXTURE;
    OK(rs_hold_acquire(vm, RS_INMIGRATE, &err));
    OK(rs_cont(vm, &err));
    OK(rs_vm_stop(vm, RS_SHUTDOWN, &err));
    rs_rec_clear(t);
    OK(rs_hold_release(vm, RS_INMIGRATE, &err));
    EXPECT("x-hold-released inmigrate");
    assert_false(rs_autostart_pending(vm));
    assert_true(rs_needs_reset(vm));
    assert_false(rs_is_live(vm));
    assert_int_equal(rs_get_holds(vm) & RS_HOLD_BIT(RS_INMIGRATE), 0);
}

static void test_incoming_with_S_ends_paused(void **state)
{
    FIXTURE;
    rs_rec_handler(t, "a", 0);
    OK(rs_hold_acquire(vm, RS_INMIGRATE, &err));
    rs_rec_clear(t);
    /* No cont during the load: QEMU's runstate_set(paused). */
    OK(rs_hold_release(vm, RS_INMIGRATE, &err));
    EXPECT("x-hold-released inmigrate", "x-hold-released prelaunch", "x-hold-added paused");
    ASSERT_STATE(RS_PAUSED, RS_PAUSED);
    OK(rs_cont(vm, &err));
    EXPECT("RESUME", "a(1,running)");
}

static void test_incoming_suspended_guest(void **state)
{
    FIXTURE;
    rs_rec_handler(t, "a", 0);
    FAILS(rs_set_was_suspended(vm, true), -EBUSY);     /* not inmigrate */
    OK(rs_hold_acquire(vm, RS_INMIGRATE, &err));
    OK(rs_set_was_suspended(vm, true));
    OK(rs_cont(vm, &err));
    rs_rec_clear(t);
    OK(rs_hold_release(vm, RS_INMIGRATE, &err));
    EXPECT("RESUME", "a(1,suspended)");
    ASSERT_LIVE(RS_SUSPENDED);
    /* And the wakeup works afterwards (QEMU's migration suspend test). */
    OK(rs_request_wakeup(vm, RS_WAKEUP_OTHER, &err));
    PROCESS();
    EXPECT("hook:wakeup other", "WAKEUP other");
    ASSERT_LIVE(RS_RUNNING);
}

static void test_incoming_suspended_guest_with_S(void **state)
{
    FIXTURE;
    rs_rec_handler(t, "a", 0);
    OK(rs_hold_acquire(vm, RS_INMIGRATE, &err));
    OK(rs_set_was_suspended(vm, true));
    rs_rec_clear(t);
    OK(rs_hold_release(vm, RS_INMIGRATE, &err));
    EXPECT("x-hold-released inmigrate", "x-hold-released prelaunch", "x-hold-added paused");
    ASSERT_STATE(RS_PAUSED, RS_PAUSED);
    OK(rs_cont(vm, &err));
    EXPECT("RESUME", "a(1,suspended)");
    ASSERT_LIVE(RS_SUSPENDED);
}

static void test_internal_hold_errors(void **state)
{
    FIXTURE;
    OK(rs_hold_acquire(vm, RS_INMIGRATE, &err));
    REFUSED(rs_hold_acquire(vm, RS_INMIGRATE, &err), -EBUSY, NULL);      /* already held */
    /* No outgoing migration during an incoming one (§8). */
    REFUSED(rs_hold_acquire(vm, RS_FINISH_MIGRATE, &err), -EBUSY, NULL);
    ASSERT_STATE(RS_INMIGRATE, RS_PRELAUNCH, RS_INMIGRATE);
    OK(rs_hold_release(vm, RS_INMIGRATE, &err));
    OK(rs_cont(vm, &err));
    rs_rec_clear(t);

    REFUSED(rs_hold_acquire(vm, RS_INMIGRATE, &err), -EBUSY, NULL);      /* not prelaunch */
    REFUSED(rs_hold_acquire(vm, RS_PAUSED, &err), -EINVAL, NULL);        /* not internal */
    REFUSED(rs_hold_acquire(vm, RS_RUNNING, &err), -EINVAL, NULL);
    REFUSED(rs_hold_acquire(vm, (rs_state)99, &err), -EINVAL, NULL);
    REFUSED(rs_hold_release(vm, RS_INMIGRATE, &err), -ENOENT, NULL);     /* not held */
    REFUSED(rs_hold_release(vm, RS_PAUSED, &err), -EINVAL, NULL);
    REFUSED(rs_hold_release(vm, (rs_state)-1, &err), -EINVAL, NULL);
    FAILS(rs_hold_acquire(NULL, RS_FINISH_MIGRATE, &err), -EINVAL);
    FAILS(rs_hold_release(NULL, RS_FINISH_MIGRATE, &err), -EINVAL);
    FAILS(rs_set_was_suspended(NULL, true), -EINVAL);
    EXPECT_NOTHING();
    ASSERT_LIVE(RS_RUNNING);
}

/* ======================================================= traditional save */

static void test_traditional_save(void **state)
{
    FIXTURE;
    rs_rec_handler(t, "a", 0);
    rs_test_boot(t);
    OK(rs_hold_acquire(vm, RS_FINISH_MIGRATE, &err));
    EXPECT("a(0,finish-migrate)", "STOP finish-migrate", "hook:drain");
    /* The file is written; postmigrate is held behind the display. */
    OK(rs_vm_stop(vm, RS_POSTMIGRATE, &err));
    EXPECT("x-hold-added postmigrate", "hook:drain");
    ASSERT_STATE(RS_FINISH_MIGRATE, RS_FINISH_MIGRATE, RS_POSTMIGRATE);
    OK(rs_hold_release(vm, RS_FINISH_MIGRATE, &err));
    EXPECT("x-hold-released finish-migrate");
    ASSERT_STATE(RS_POSTMIGRATE, RS_POSTMIGRATE);
    /* The traditional continue. */
    OK(rs_cont(vm, &err));
    EXPECT("RESUME", "a(1,running)");
    ASSERT_LIVE(RS_RUNNING);
}

static void test_traditional_save_of_a_guest_in_s3(void **state)
{
    FIXTURE;
    rs_rec_handler(t, "a", 0);
    rs_test_boot(t);
    OK(rs_request_suspend(vm));
    PROCESS();
    rs_rec_clear(t);
    OK(rs_hold_acquire(vm, RS_FINISH_MIGRATE, &err));
    EXPECT("a(0,finish-migrate)", "STOP finish-migrate", "hook:drain");
    assert_true(rs_was_suspended(vm));
    OK(rs_vm_stop(vm, RS_POSTMIGRATE, &err));
    EXPECT("x-hold-added postmigrate", "hook:drain");
    /* postmigrate has no edge back to suspended: the residual is paused,
     * postmigrate stays held (§4). */
    OK(rs_hold_release(vm, RS_FINISH_MIGRATE, &err));
    EXPECT("x-hold-released finish-migrate");
    ASSERT_STATE(RS_PAUSED, RS_POSTMIGRATE);
    /* The traditional continue goes back to S3, and the guest can wake. */
    OK(rs_cont(vm, &err));
    EXPECT("RESUME", "a(1,suspended)");
    ASSERT_LIVE(RS_SUSPENDED);
    OK(rs_request_wakeup(vm, RS_WAKEUP_OTHER, &err));
    PROCESS();
    EXPECT("hook:wakeup other", "WAKEUP other");
    ASSERT_LIVE(RS_RUNNING);
}

static void test_failed_save_goes_back(void **state)
{
    FIXTURE;
    rs_rec_handler(t, "a", 0);
    rs_test_boot(t);
    /* Running before: running again. */
    OK(rs_hold_acquire(vm, RS_FINISH_MIGRATE, &err));
    rs_rec_clear(t);
    OK(rs_hold_release(vm, RS_FINISH_MIGRATE, &err));
    EXPECT("RESUME", "a(1,running)");
    ASSERT_LIVE(RS_RUNNING);

    /* Paused before: paused again. */
    OK(rs_vm_stop(vm, RS_PAUSED, &err));
    rs_rec_clear(t);
    OK(rs_hold_acquire(vm, RS_FINISH_MIGRATE, &err));
    EXPECT("x-hold-added finish-migrate", "hook:drain");
    ASSERT_STATE(RS_FINISH_MIGRATE, RS_PAUSED, RS_FINISH_MIGRATE);
    OK(rs_hold_release(vm, RS_FINISH_MIGRATE, &err));
    EXPECT("x-hold-released finish-migrate");
    ASSERT_STATE(RS_PAUSED, RS_PAUSED);
}

static void test_transient_holds_defer_everything(void **state)
{
    FIXTURE;
    rs_rec_handler(t, "a", 0);
    rs_test_boot(t);
    OK(rs_hold_acquire(vm, RS_SAVE_VM, &err));
    EXPECT("a(0,save-vm)", "STOP save-vm", "hook:drain");
    ASSERT_STATE(RS_SAVE_VM, RS_SAVE_VM);

    /* A stop becomes a pending request; cont and retry are refused; the
     * main loop takes nothing. */
    OK(rs_vm_stop(vm, RS_PAUSED, &err));
    EXPECT_NOTHING();
    ASSERT_STATE(RS_SAVE_VM, RS_SAVE_VM);
    REFUSED(rs_cont(vm, &err), -EBUSY, "VM state is being saved or restored");
    REFUSED(rs_retry(vm, &err), -EBUSY, "VM state is being saved or restored");
    REFUSED(rs_hold_acquire(vm, RS_RESTORE_VM, &err), -EBUSY, NULL);
    PROCESS();
    EXPECT_NOTHING();

    /* The release finds nothing else held and starts the VM; the stop
     * is taken afterwards. */
    OK(rs_hold_release(vm, RS_SAVE_VM, &err));
    EXPECT("RESUME", "a(1,running)");
    ASSERT_LIVE(RS_RUNNING);
    assert_true(kicked(vm));    /* the release signals the main loop again */
    PROCESS();
    EXPECT("a(0,paused)", "STOP paused", "hook:drain");
    ASSERT_STATE(RS_PAUSED, RS_PAUSED);

    /* A stopped VM is saved without a state change: save-vm refused. */
    REFUSED(rs_hold_acquire(vm, RS_SAVE_VM, &err), -EBUSY, NULL);
    REFUSED(rs_hold_acquire(vm, RS_RESTORE_VM, &err), -EBUSY, NULL);
}

static void test_restore_vm_in_suspended_goes_back_to_suspended(void **state)
{
    FIXTURE;
    rs_rec_handler(t, "a", 0);
    rs_test_boot(t);
    OK(rs_request_suspend(vm));
    PROCESS();
    rs_rec_clear(t);
    OK(rs_hold_acquire(vm, RS_RESTORE_VM, &err));
    EXPECT("a(0,restore-vm)", "STOP restore-vm", "hook:drain");
    OK(rs_hold_release(vm, RS_RESTORE_VM, &err));
    EXPECT("RESUME", "a(1,suspended)");
    ASSERT_LIVE(RS_SUSPENDED);
}

/* ================================================================ reset */

static void test_reset_from_each_stopped_state(void **state)
{
    FIXTURE;
    char released[RS_REC_LINE];
    for (size_t i = 0; i < NSTOP_REASONS; i++) {
        rs_state r = stop_reasons[i];
        rs_test_boot(t);
        OK(rs_vm_stop(vm, r, &err));
        /* No running -> postmigrate edge: that one shows paused (§4). */
        assert_int_equal(rs_get_state(vm), r == RS_POSTMIGRATE ? RS_PAUSED : r);
        rs_rec_clear(t);
        OK(rs_request_reset(vm, RS_CAUSE_HOST_QMP_SYSTEM_RESET));
        PROCESS();
        EXPECT("hook:reset host-qmp-system-reset", "RESET host-qmp-system-reset",
               line(released, "x-hold-released ", r), "x-hold-added prelaunch");
        ASSERT_STATE(RS_PRELAUNCH, RS_PRELAUNCH);
    }
    /* From prelaunch itself: the hold is already there. */
    OK(rs_request_reset(vm, RS_CAUSE_GUEST_RESET));
    PROCESS();
    EXPECT("hook:reset guest-reset", "RESET guest-reset");
    ASSERT_STATE(RS_PRELAUNCH, RS_PRELAUNCH);
}

static void test_reset_keeps_a_prelaunch_hold(void **state)
{
    FIXTURE;
    /* Never started, stopped for another reason meanwhile. */
    OK(rs_vm_stop(vm, RS_PAUSED, &err));
    EXPECT("x-hold-added paused", "hook:drain");
    OK(rs_request_reset(vm, RS_CAUSE_GUEST_RESET));
    PROCESS();
    EXPECT("hook:reset guest-reset", "RESET guest-reset", "x-hold-released paused");
    ASSERT_STATE(RS_PRELAUNCH, RS_PRELAUNCH);
}

static void test_reset_releases_holds_in_acquisition_order(void **state)
{
    FIXTURE;
    rs_test_boot(t);
    OK(rs_vm_stop(vm, RS_WATCHDOG, &err));
    OK(rs_vm_stop(vm, RS_IO_ERROR, &err));
    OK(rs_vm_stop(vm, RS_SHUTDOWN, &err));
    OK(rs_vm_stop(vm, RS_PAUSED, &err));
    rs_rec_clear(t);
    OK(rs_request_reset(vm, RS_CAUSE_GUEST_RESET));
    PROCESS();
    const rs_event *ev = rs_rec_last_event(t, RS_EV_HOLD_ADDED);
    assert_non_null(ev);
    assert_int_equal(ev->hold, RS_PRELAUNCH);
    assert_int_equal(ev->holds, RS_HOLD_BIT(RS_PRELAUNCH));
    EXPECT("hook:reset guest-reset", "RESET guest-reset", "x-hold-released watchdog",
           "x-hold-released io-error", "x-hold-released shutdown", "x-hold-released paused",
           "x-hold-added prelaunch");
    ASSERT_STATE(RS_PRELAUNCH, RS_PRELAUNCH);
}

static void test_reset_keeps_inmigrate_and_finish_migrate(void **state)
{
    FIXTURE;
    /* inmigrate: the display stays, no prelaunch hold. */
    OK(rs_hold_acquire(vm, RS_INMIGRATE, &err));
    rs_rec_clear(t);
    OK(rs_request_reset(vm, RS_CAUSE_GUEST_RESET));
    PROCESS();
    EXPECT("hook:reset guest-reset", "RESET guest-reset", "x-hold-released prelaunch");
    ASSERT_STATE(RS_INMIGRATE, RS_INMIGRATE);
    OK(rs_hold_release(vm, RS_INMIGRATE, &err));
    EXPECT("x-hold-released inmigrate", "x-hold-added paused");
    ASSERT_STATE(RS_PAUSED, RS_PAUSED);

    /* finish-migrate: the display stays; the user hold goes. */
    OK(rs_cont(vm, &err));
    OK(rs_hold_acquire(vm, RS_FINISH_MIGRATE, &err));
    OK(rs_vm_stop(vm, RS_PAUSED, &err));
    rs_rec_clear(t);
    OK(rs_request_reset(vm, RS_CAUSE_GUEST_RESET));
    PROCESS();
    EXPECT("hook:reset guest-reset", "RESET guest-reset", "x-hold-released paused");
    ASSERT_STATE(RS_FINISH_MIGRATE, RS_FINISH_MIGRATE);
    OK(rs_hold_release(vm, RS_FINISH_MIGRATE, &err));
    EXPECT("RESUME");
    ASSERT_LIVE(RS_RUNNING);
}

static void test_reset_of_a_running_vm(void **state)
{
    FIXTURE;
    rs_rec_handler(t, "a", 0);
    rs_test_boot(t);
    OK(rs_request_reset(vm, RS_CAUSE_GUEST_RESET));
    PROCESS();
    EXPECT("hook:reset guest-reset", "RESET guest-reset");
    ASSERT_LIVE(RS_RUNNING);
    const rs_event *ev;

    /* No RESET event for none, subsystem-reset, snapshot-load. */
    const rs_cause quiet[] = { RS_CAUSE_NONE, RS_CAUSE_SUBSYSTEM_RESET, RS_CAUSE_SNAPSHOT_LOAD };
    char hook[RS_REC_LINE];
    for (size_t i = 0; i < 3; i++) {
        OK(rs_request_reset(vm, quiet[i]));
        PROCESS();
        snprintf(hook, sizeof(hook), "hook:reset %s", rs_cause_name(quiet[i]));
        EXPECT(hook);
        ASSERT_LIVE(RS_RUNNING);
    }
    /* The guest field follows the cause. */
    OK(rs_request_reset(vm, RS_CAUSE_HOST_QMP_SYSTEM_RESET));
    PROCESS();
    ev = rs_rec_last_event(t, RS_EV_RESET);
    assert_non_null(ev);
    assert_false(ev->guest);
    assert_int_equal(ev->cause, RS_CAUSE_HOST_QMP_SYSTEM_RESET);
    rs_rec_clear(t);
    OK(rs_request_reset(vm, RS_CAUSE_GUEST_RESET));
    PROCESS();
    ev = rs_rec_last_event(t, RS_EV_RESET);
    assert_non_null(ev);
    assert_true(ev->guest);
    FAILS(rs_request_reset(vm, RS_CAUSE__MAX), -EINVAL);
    FAILS(rs_request_reset(vm, (rs_cause)-1), -EINVAL);
    FAILS(rs_request_reset(NULL, RS_CAUSE_GUEST_RESET), -EINVAL);
}

/* ================================================================ colo */

static void test_colo_is_never_held(void **state)
{
    FIXTURE;
    /* Decision (§3): no COLO on Xen; the state exists for the table only. */
    rs_test_boot(t);
    REFUSED(rs_hold_acquire(vm, RS_COLO, &err), -ENOTSUP, NULL);
    REFUSED(rs_vm_stop_force_state(vm, RS_COLO, &err), -ENOTSUP, NULL);
    EXPECT_NOTHING();
    ASSERT_LIVE(RS_RUNNING);
    OK(rs_vm_stop(vm, RS_PAUSED, &err));
    rs_rec_clear(t);
    REFUSED(rs_hold_acquire(vm, RS_COLO, &err), -ENOTSUP, NULL);
    REFUSED(rs_hold_release(vm, RS_COLO, &err), -ENOENT, NULL);
    EXPECT_NOTHING();
    ASSERT_STATE(RS_PAUSED, RS_PAUSED);
}

/* ======================================================== bad input */

static void test_null_vm_everywhere(void **state)
{
    FIXTURE;
    rs_err e;
    assert_int_equal(rs_get_state(NULL), RS_STATE__MAX);
    assert_int_equal(rs_get_holds(NULL), 0);
    assert_false(rs_is_running(NULL));
    assert_false(rs_is_live(NULL));
    assert_false(rs_needs_reset(NULL));
    assert_false(rs_was_suspended(NULL));
    assert_false(rs_autostart_pending(NULL));
    assert_int_equal(rs_invalid_transitions(NULL), 0);
    assert_int_equal(rs_list_holds(NULL, NULL, 0), 0);
    assert_int_equal(rs_history(NULL, NULL, 0), 0);
    assert_int_equal(rs_vm_stop_force_state(NULL, RS_PAUSED, &e), -EINVAL);
    assert_int_equal(rs_vm_resume(NULL, RS_RUNNING, &e), -EINVAL);
    assert_int_equal(rs_process_requests(NULL, NULL), -EINVAL);
    assert_int_equal(rs_request_vmstop(NULL, RS_PAUSED), -EINVAL);
    assert_int_equal(rs_request_suspend(NULL), -EINVAL);
    assert_int_equal(rs_request_shutdown(NULL, RS_CAUSE_HOST_UI, -1), -EINVAL);
    assert_int_equal(rs_request_powerdown(NULL), -EINVAL);
    assert_int_equal(rs_request_debug(NULL), -EINVAL);
    assert_true(rs_notify_fd(NULL) < 0);
    rs_vm_free(NULL);
    rs_set_log(NULL, NULL, NULL);
    rs_set_hooks(NULL, NULL);
    /* Bad requests on a real VM. */
    FAILS(rs_request_vmstop(vm, RS_RUNNING), -EINVAL);
    FAILS(rs_request_vmstop(vm, (rs_state)99), -EINVAL);
    FAILS(rs_request_shutdown(vm, RS_CAUSE__MAX, -1), -EINVAL);
    PROCESS();
    EXPECT_NOTHING();
    ASSERT_STATE(RS_PRELAUNCH, RS_PRELAUNCH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_new_vm_is_prelaunch_with_a_hold),
        TEST(test_boot_is_a_cont),
        TEST(test_stop_and_start_order),
        TEST(test_events_carry_the_state_after_them),
        TEST(test_stop_when_stopped_only_adds_the_hold),
        TEST(test_stop_refuses_what_is_not_a_stop_reason),
        TEST(test_flush_failure_returns_eio_and_keeps_the_hold),
        TEST(test_vm_shutdown_notifies_without_stop),
        TEST(test_stop_force_state),
        TEST(test_vm_resume_puts_back_a_held_state),
        TEST(test_vm_resume_during_an_internal_hold),
        TEST(test_history_ring_keeps_the_latest),
        TEST(test_io_error_in_suspended_shows_paused),
        TEST(test_debug_left_by_a_migration_shows_paused),
        TEST(test_suspended_table_line_by_line),
        TEST(test_reset_clears_was_suspended),
        TEST(test_reset_while_suspended_shows_running),
        TEST(test_wakeup_reasons_and_mask),
        TEST(test_wakeup_after_a_stop_in_s3),
        TEST(test_suspend_request_waits_for_a_running_vm),
        TEST(test_cont_after_shutdown_needs_reset),
        TEST(test_cont_after_internal_error_needs_reset),
        TEST(test_cont_during_finish_migrate),
        TEST(test_retry_rules),
        TEST(test_activate_refuses_the_start),
        TEST(test_cont_during_inmigrate_is_remembered),
        TEST(test_stop_during_inmigrate_forgets_cont),
        TEST(test_other_stops_during_inmigrate_keep_cont),
        TEST(test_fatal_hold_cancels_remembered_cont),
        TEST(test_incoming_with_S_ends_paused),
        TEST(test_incoming_suspended_guest),
        TEST(test_incoming_suspended_guest_with_S),
        TEST(test_internal_hold_errors),
        TEST(test_traditional_save),
        TEST(test_traditional_save_of_a_guest_in_s3),
        TEST(test_failed_save_goes_back),
        TEST(test_transient_holds_defer_everything),
        TEST(test_restore_vm_in_suspended_goes_back_to_suspended),
        TEST(test_reset_from_each_stopped_state),
        TEST(test_reset_keeps_a_prelaunch_hold),
        TEST(test_reset_releases_holds_in_acquisition_order),
        TEST(test_reset_keeps_inmigrate_and_finish_migrate),
        TEST(test_reset_of_a_running_vm),
        TEST(test_colo_is_never_held),
        TEST(test_null_vm_everywhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * librunstate: action policies (docs/runstate.md §9, §12; reference §5):
 * reboot, shutdown, guest panic and watchdog, row by row, with the events
 * they emit and the main loop's exit status.
 */
#include "../lib/rs_test.h"

#include <stdio.h>

static void set_actions(rs_vm *vm, int reboot, int shutdown, int panic, int watchdog)
{
    rs_action_update u = {
        .has_reboot = reboot >= 0, .has_shutdown = shutdown >= 0,
        .has_panic = panic >= 0, .has_watchdog = watchdog >= 0,
        .value = { (rs_reboot_action)(reboot >= 0 ? reboot : 0),
                   (rs_shutdown_action)(shutdown >= 0 ? shutdown : 0),
                   (rs_panic_action)(panic >= 0 ? panic : 0),
                   (rs_watchdog_action)(watchdog >= 0 ? watchdog : 0) },
    };
    assert_int_equal(rs_set_actions(vm, &u), 0);
}

#define KEEP (-1)

/* Run the main loop once; returns its result, *status its exit status. */
static int loop_once(rs_vm *vm, int *status)
{
    *status = -1;
    int r = rs_process_requests(vm, status);
    assert_true(r == 0 || r == 1);
    assert_true(rs_rec_invariant(vm));
    return r;
}

/* ================================================================ knobs */

static void test_defaults_are_qemus(void **state)
{
    FIXTURE;
    rs_actions a;
    rs_get_actions(vm, &a);
    assert_int_equal(a.reboot, RS_REBOOT_RESET);
    assert_int_equal(a.shutdown, RS_SHUTDOWN_POWEROFF);
    assert_int_equal(a.panic, RS_PANIC_SHUTDOWN);
    assert_int_equal(a.watchdog, RS_WATCHDOG_RESET);
}

static void test_set_actions_applies_only_what_is_given(void **state)
{
    FIXTURE;
    set_actions(vm, RS_REBOOT_SHUTDOWN, KEEP, KEEP, RS_WATCHDOG_PAUSE);
    rs_actions a;
    rs_get_actions(vm, &a);
    assert_int_equal(a.reboot, RS_REBOOT_SHUTDOWN);
    assert_int_equal(a.shutdown, RS_SHUTDOWN_POWEROFF);
    assert_int_equal(a.panic, RS_PANIC_SHUTDOWN);
    assert_int_equal(a.watchdog, RS_WATCHDOG_PAUSE);

    /* An out-of-range value in any field: -EINVAL, and no field changes
     * (the update is checked as a whole before reboot, panic, watchdog,
     * shutdown are applied in QMP's order). */
    rs_action_update bad[4];
    memset(bad, 0, sizeof(bad));
    bad[0].has_reboot = true, bad[0].value.reboot = RS_REBOOT__MAX;
    bad[1].has_shutdown = true, bad[1].value.shutdown = (rs_shutdown_action)7;
    bad[2].has_panic = true, bad[2].value.panic = RS_PANIC__MAX;
    bad[3].has_watchdog = true, bad[3].value.watchdog = (rs_watchdog_action)-1;
    for (int i = 0; i < 4; i++) {
        bad[i].has_panic = true;
        if (i != 2)
            bad[i].value.panic = RS_PANIC_NONE;
        assert_int_equal(rs_set_actions(vm, &bad[i]), -EINVAL);
        rs_actions after;
        rs_get_actions(vm, &after);
        assert_memory_equal(&a, &after, sizeof(a));
    }
    assert_int_equal(rs_set_actions(vm, NULL), -EINVAL);
    assert_int_equal(rs_set_actions(NULL, &bad[0]), -EINVAL);
    rs_get_actions(vm, NULL);
    rs_get_actions(NULL, &a);
    EXPECT_NOTHING();
}

static void test_panic_and_shutdown_set_together(void **state)
{
    FIXTURE;
    rs_test_boot(t);
    /* One set-action with both: the panic decision sees shutdown=pause. */
    set_actions(vm, KEEP, RS_SHUTDOWN_PAUSE, RS_PANIC_SHUTDOWN, KEEP);
    OK(rs_guest_panicked(vm));
    EXPECT("GUEST_PANICKED pause", "STOP guest-panicked", "hook:drain");
    int status;
    assert_int_equal(loop_once(vm, &status), 0);
    EXPECT_NOTHING();
}

static void test_action_names(void **state)
{
    (void)state;
    static const char *const reboot[] = { "reset", "shutdown" };
    static const char *const shutdown[] = { "poweroff", "pause" };
    static const char *const panic[] = { "pause", "shutdown", "exit-failure", "none" };
    static const char *const watchdog[] = {
        "reset", "shutdown", "poweroff", "pause", "debug", "none", "inject-nmi",
    };
    assert_int_equal(RS_REBOOT__MAX, 2);
    assert_int_equal(RS_SHUTDOWN__MAX, 2);
    assert_int_equal(RS_PANIC__MAX, 4);
    assert_int_equal(RS_WATCHDOG__MAX, 7);
    for (int i = 0; i < RS_REBOOT__MAX; i++) {
        rs_reboot_action v = RS_REBOOT__MAX;
        assert_string_equal(rs_reboot_action_name((rs_reboot_action)i), reboot[i]);
        assert_int_equal(rs_reboot_action_from_name(reboot[i], &v), 0);
        assert_int_equal(v, i);
    }
    for (int i = 0; i < RS_SHUTDOWN__MAX; i++) {
        rs_shutdown_action v = RS_SHUTDOWN__MAX;
        assert_string_equal(rs_shutdown_action_name((rs_shutdown_action)i), shutdown[i]);
        assert_int_equal(rs_shutdown_action_from_name(shutdown[i], &v), 0);
        assert_int_equal(v, i);
    }
    for (int i = 0; i < RS_PANIC__MAX; i++) {
        rs_panic_action v = RS_PANIC__MAX;
        assert_string_equal(rs_panic_action_name((rs_panic_action)i), panic[i]);
        assert_int_equal(rs_panic_action_from_name(panic[i], &v), 0);
        assert_int_equal(v, i);
    }
    for (int i = 0; i < RS_WATCHDOG__MAX; i++) {
        rs_watchdog_action v = RS_WATCHDOG__MAX;
        assert_string_equal(rs_watchdog_action_name((rs_watchdog_action)i), watchdog[i]);
        assert_int_equal(rs_watchdog_action_from_name(watchdog[i], &v), 0);
        assert_int_equal(v, i);
    }
    assert_null(rs_reboot_action_name(RS_REBOOT__MAX));
    assert_null(rs_shutdown_action_name((rs_shutdown_action)-1));
    assert_null(rs_panic_action_name(RS_PANIC__MAX));
    assert_null(rs_watchdog_action_name((rs_watchdog_action)99));

    rs_reboot_action r = RS_REBOOT_RESET;
    rs_shutdown_action s = RS_SHUTDOWN_POWEROFF;
    rs_panic_action p = RS_PANIC_PAUSE;
    rs_watchdog_action w = RS_WATCHDOG_RESET;
    assert_int_equal(rs_reboot_action_from_name("Reset", &r), -EINVAL);
    assert_int_equal(rs_reboot_action_from_name(NULL, &r), -EINVAL);
    assert_int_equal(rs_shutdown_action_from_name("poweroff ", &s), -EINVAL);
    assert_int_equal(rs_shutdown_action_from_name("", &s), -EINVAL);
    assert_int_equal(rs_panic_action_from_name("exit_failure", &p), -EINVAL);
    assert_int_equal(rs_panic_action_from_name("run", &p), -EINVAL);
    assert_int_equal(rs_watchdog_action_from_name("inject_nmi", &w), -EINVAL);
    assert_int_equal(rs_watchdog_action_from_name(NULL, &w), -EINVAL);
    /* Failed look-ups leave the output alone. */
    assert_int_equal(r, RS_REBOOT_RESET);
    assert_int_equal(s, RS_SHUTDOWN_POWEROFF);
    assert_int_equal(p, RS_PANIC_PAUSE);
    assert_int_equal(w, RS_WATCHDOG_RESET);
}

/* ======================================================== reboot/shutdown */

static void test_reboot_reset(void **state)
{
    FIXTURE;
    rs_test_boot(t);
    OK(rs_request_reset(vm, RS_CAUSE_GUEST_RESET));
    int status;
    assert_int_equal(loop_once(vm, &status), 0);
    EXPECT("hook:reset guest-reset", "RESET guest-reset");
    ASSERT_LIVE(RS_RUNNING);
}

static void check_reboot_shutdown(rs_rec *t, rs_cause cause, bool guest)
{
    rs_vm *vm = t->vm;
    char shutdown[RS_REC_LINE], hook[RS_REC_LINE];
    OK_NOERR(rs_request_reset(vm, cause));
    int status;
    assert_int_equal(loop_once(vm, &status), 1);
    assert_int_equal(status, 0);
    const rs_event *ev = rs_rec_last_event(t, RS_EV_SHUTDOWN);
    assert_non_null(ev);
    assert_int_equal(ev->cause, cause);
    assert_int_equal(ev->guest, guest);
    snprintf(shutdown, sizeof(shutdown), "SHUTDOWN %s", rs_cause_name(cause));
    snprintf(hook, sizeof(hook), "hook:shutdown %s", rs_cause_name(cause));
    assert_true(rs_rec_expect(t, shutdown, hook));
    rs_rec_clear(t);
}

static void test_reboot_shutdown_turns_resets_into_shutdowns(void **state)
{
    FIXTURE;
    rs_test_boot(t);
    set_actions(vm, RS_REBOOT_SHUTDOWN, KEEP, KEEP, KEEP);
    check_reboot_shutdown(t, RS_CAUSE_GUEST_RESET, true);
    /* QMP system_reset too (reference §5.2). */
    check_reboot_shutdown(t, RS_CAUSE_HOST_QMP_SYSTEM_RESET, false);
    /* But not a subsystem reset: a reset without an event. */
    OK_NOERR(rs_request_reset(vm, RS_CAUSE_SUBSYSTEM_RESET));
    int status;
    assert_int_equal(loop_once(vm, &status), 0);
    EXPECT("hook:reset subsystem-reset");
    ASSERT_LIVE(RS_RUNNING);
}

static void test_no_reboot_no_shutdown(void **state)
{
    FIXTURE;
    rs_rec_handler(t, "h", 0);
    rs_test_boot(t);
    /* -no-reboot -no-shutdown: a guest reset leaves the VM in shutdown. */
    set_actions(vm, RS_REBOOT_SHUTDOWN, RS_SHUTDOWN_PAUSE, KEEP, KEEP);
    OK_NOERR(rs_request_reset(vm, RS_CAUSE_GUEST_RESET));
    int status;
    assert_int_equal(loop_once(vm, &status), 0);
    EXPECT("SHUTDOWN guest-reset", "hook:shutdown guest-reset", "h(0,shutdown)",
           "STOP shutdown", "hook:drain");
    ASSERT_STATE(RS_SHUTDOWN, RS_SHUTDOWN);
}

static void test_shutdown_pause(void **state)
{
    FIXTURE;
    rs_rec_handler(t, "h", 0);
    rs_test_boot(t);
    set_actions(vm, KEEP, RS_SHUTDOWN_PAUSE, KEEP, KEEP);
    OK(rs_request_shutdown(vm, RS_CAUSE_GUEST_SHUTDOWN, -1));
    int status;
    assert_int_equal(loop_once(vm, &status), 0);
    EXPECT("SHUTDOWN guest-shutdown", "hook:shutdown guest-shutdown", "h(0,shutdown)",
           "STOP shutdown", "hook:drain");
    ASSERT_STATE(RS_SHUTDOWN, RS_SHUTDOWN);
    assert_int_equal(rs_state_group(RS_SHUTDOWN), RS_GROUP_FATAL);
    assert_true(rs_needs_reset(vm));
    REFUSED(rs_cont(vm, &err), -EPERM, "Resetting the Virtual Machine is required");
    /* A second shutdown of the stopped VM: the hold is there already. */
    OK(rs_request_shutdown(vm, RS_CAUSE_HOST_UI, -1));
    assert_int_equal(loop_once(vm, &status), 0);
    EXPECT("SHUTDOWN host-ui", "hook:shutdown host-ui", "hook:drain");
}

static void test_quit_and_signal_force_poweroff(void **state)
{
    FIXTURE;
    rs_test_boot(t);
    set_actions(vm, KEEP, RS_SHUTDOWN_PAUSE, KEEP, KEEP);
    const rs_cause forced[] = { RS_CAUSE_HOST_QMP_QUIT, RS_CAUSE_HOST_SIGNAL };
    char ev[RS_REC_LINE], hook[RS_REC_LINE];
    for (int i = 0; i < 2; i++) {
        OK(rs_request_shutdown(vm, forced[i], -1));
        int status;
        assert_int_equal(loop_once(vm, &status), 1);
        assert_int_equal(status, 0);
        snprintf(ev, sizeof(ev), "SHUTDOWN %s", rs_cause_name(forced[i]));
        snprintf(hook, sizeof(hook), "hook:shutdown %s", rs_cause_name(forced[i]));
        EXPECT(ev, hook);
        ASSERT_LIVE(RS_RUNNING);
    }
    /* The exit code recorded with the request is the exit status. */
    OK(rs_request_shutdown(vm, RS_CAUSE_HOST_SIGNAL, 143));
    int status;
    assert_int_equal(loop_once(vm, &status), 1);
    assert_int_equal(status, 143);
}

/* ============================================================= panic rows */

typedef struct panic_row {
    rs_panic_action panic;
    rs_shutdown_action shutdown;
    const char *event;       /* GUEST_PANICKED line */
    bool stops;
    int loop_ret, status;    /* the next main-loop iteration */
    bool shutdown_event;
} panic_row;

/* Reference §5.3. */
static const panic_row panic_rows[] = {
    { RS_PANIC_PAUSE, RS_SHUTDOWN_POWEROFF, "GUEST_PANICKED pause", true, 0, -1, false },
    { RS_PANIC_PAUSE, RS_SHUTDOWN_PAUSE, "GUEST_PANICKED pause", true, 0, -1, false },
    { RS_PANIC_SHUTDOWN, RS_SHUTDOWN_PAUSE, "GUEST_PANICKED pause", true, 0, -1, false },
    { RS_PANIC_SHUTDOWN, RS_SHUTDOWN_POWEROFF, "GUEST_PANICKED poweroff", true, 1, 0, true },
    { RS_PANIC_EXIT_FAILURE, RS_SHUTDOWN_POWEROFF, "GUEST_PANICKED poweroff", true, 1,
      EXIT_FAILURE, true },
    { RS_PANIC_EXIT_FAILURE, RS_SHUTDOWN_PAUSE, "GUEST_PANICKED poweroff", true, 0, -1, true },
    { RS_PANIC_NONE, RS_SHUTDOWN_POWEROFF, "GUEST_PANICKED run", false, 0, -1, false },
    { RS_PANIC_NONE, RS_SHUTDOWN_PAUSE, "GUEST_PANICKED run", false, 0, -1, false },
};

static void test_guest_panic_rows(void **state)
{
    for (size_t i = 0; i < sizeof(panic_rows) / sizeof(panic_rows[0]); i++) {
        const panic_row *row = &panic_rows[i];
        print_message("panic=%s shutdown=%s\n", rs_panic_action_name(row->panic),
                      rs_shutdown_action_name(row->shutdown));
        rs_rec *t = rs_rec_new();
        assert_non_null(t);
        rs_vm *vm = t->vm;
        rs_rec_handler(t, "h", 0);
        rs_test_boot(t);
        set_actions(vm, KEEP, row->shutdown, row->panic, KEEP);

        assert_int_equal(rs_guest_panicked(vm), 0);
        assert_true(rs_rec_invariant(vm));
        if (row->stops) {
            /* The event first, then the stop. */
            assert_true(rs_rec_expect(t, row->event, "h(0,guest-panicked)",
                                      "STOP guest-panicked", "hook:drain"));
            assert_int_equal(rs_get_state(vm), RS_GUEST_PANICKED);
        } else {
            assert_true(rs_rec_expect(t, row->event));
            assert_int_equal(rs_get_state(vm), RS_RUNNING);
        }
        rs_rec_clear(t);

        int status;
        assert_int_equal(loop_once(vm, &status), row->loop_ret);
        if (row->loop_ret == 1)
            assert_int_equal(status, row->status);
        if (!row->shutdown_event)
            assert_true(rs_rec_expect_nothing(t));
        else if (row->loop_ret == 1)
            assert_true(rs_rec_expect(t, "SHUTDOWN guest-panic", "hook:shutdown guest-panic"));
        else    /* exit-failure with shutdown=pause: the pause branch (§4.2) */
            assert_true(rs_rec_expect(t, "SHUTDOWN guest-panic", "hook:shutdown guest-panic",
                                      "x-hold-added shutdown", "hook:drain"));
        if (row->stops && row->loop_ret == 0) {
            /* Still stopped; the panic hold is there. */
            assert_true(rs_get_holds(vm) & RS_HOLD_BIT(RS_GUEST_PANICKED));
        }
        assert_int_equal(rs_invalid_transitions(vm), 0);
        assert_int_equal(t->bad_events, 0);
        assert_int_equal(t->handler_state_mismatch, 0);
        rs_rec_free(t);
    }
}

static void test_panic_is_reversible_with_cont(void **state)
{
    FIXTURE;
    rs_test_boot(t);
    set_actions(vm, KEEP, KEEP, RS_PANIC_PAUSE, KEEP);
    OK(rs_guest_panicked(vm));
    assert_false(rs_needs_reset(vm));
    OK(rs_cont(vm, &err));
    ASSERT_LIVE(RS_RUNNING);
    rs_rec_clear(t);
    /* A panic of a stopped VM: its hold is added, the display stays. */
    OK(rs_vm_stop(vm, RS_PAUSED, &err));
    rs_rec_clear(t);
    OK(rs_guest_panicked(vm));
    EXPECT("GUEST_PANICKED pause", "x-hold-added guest-panicked", "hook:drain");
    ASSERT_STATE(RS_PAUSED, RS_PAUSED, RS_GUEST_PANICKED);
    FAILS(rs_guest_panicked(NULL), -EINVAL);
}

/* ========================================================== watchdog rows */

static void watchdog_fires(rs_rec *t, rs_watchdog_action a)
{
    set_actions(t->vm, KEEP, KEEP, KEEP, (int)a);
    assert_int_equal(rs_watchdog_expired(t->vm), 0);
    const rs_event *ev = rs_rec_last_event(t, RS_EV_WATCHDOG);
    assert_non_null(ev);
    assert_string_equal(ev->action, rs_watchdog_action_name(a));
}

static void test_watchdog_reset(void **state)
{
    FIXTURE;
    rs_test_boot(t);
    watchdog_fires(t, RS_WATCHDOG_RESET);
    EXPECT("WATCHDOG reset");
    int status;
    assert_int_equal(loop_once(vm, &status), 0);
    EXPECT("hook:reset guest-reset", "RESET guest-reset");
    /* With -no-reboot it becomes a SHUTDOWN. */
    set_actions(vm, RS_REBOOT_SHUTDOWN, KEEP, KEEP, KEEP);
    watchdog_fires(t, RS_WATCHDOG_RESET);
    assert_int_equal(loop_once(vm, &status), 1);
    assert_int_equal(status, 0);
    EXPECT("WATCHDOG reset", "SHUTDOWN guest-reset", "hook:shutdown guest-reset");
}

static void test_watchdog_shutdown_is_a_power_button(void **state)
{
    FIXTURE;
    rs_test_boot(t);
    watchdog_fires(t, RS_WATCHDOG_SHUTDOWN);
    int status;
    assert_int_equal(loop_once(vm, &status), 0);
    EXPECT("WATCHDOG shutdown", "POWERDOWN", "hook:powerdown");
    ASSERT_LIVE(RS_RUNNING);
}

static void test_watchdog_poweroff_exits_without_shutdown_event(void **state)
{
    FIXTURE;
    rs_test_boot(t);
    /* Even with shutdown=pause: QEMU calls exit(0). */
    set_actions(vm, KEEP, RS_SHUTDOWN_PAUSE, KEEP, KEEP);
    watchdog_fires(t, RS_WATCHDOG_POWEROFF);
    int status;
    assert_int_equal(loop_once(vm, &status), 1);
    assert_int_equal(status, 0);
    EXPECT("WATCHDOG poweroff");
}

static void test_watchdog_pause_event_before_stop(void **state)
{
    FIXTURE;
    rs_rec_handler(t, "h", 0);
    rs_test_boot(t);
    watchdog_fires(t, RS_WATCHDOG_PAUSE);
    ASSERT_LIVE(RS_RUNNING);    /* a request: the main loop stops the VM */
    int status;
    assert_int_equal(loop_once(vm, &status), 0);
    EXPECT("WATCHDOG pause", "h(0,watchdog)", "STOP watchdog", "hook:drain");
    ASSERT_STATE(RS_WATCHDOG, RS_WATCHDOG);
    OK(rs_cont(vm, &err));
    ASSERT_LIVE(RS_RUNNING);
}

static void test_watchdog_debug_none_nmi(void **state)
{
    FIXTURE;
    rs_test_boot(t);
    int status;
    watchdog_fires(t, RS_WATCHDOG_DEBUG);
    assert_int_equal(loop_once(vm, &status), 0);
    EXPECT("WATCHDOG debug", "hook:watchdog-debug");
    watchdog_fires(t, RS_WATCHDOG_NONE);
    assert_int_equal(loop_once(vm, &status), 0);
    EXPECT("WATCHDOG none");
    watchdog_fires(t, RS_WATCHDOG_INJECT_NMI);
    assert_int_equal(loop_once(vm, &status), 0);
    EXPECT("WATCHDOG inject-nmi", "hook:nmi");
    ASSERT_LIVE(RS_RUNNING);
    /* Without hooks nothing crashes. */
    rs_set_hooks(vm, NULL);
    watchdog_fires(t, RS_WATCHDOG_DEBUG);
    watchdog_fires(t, RS_WATCHDOG_INJECT_NMI);
    EXPECT("WATCHDOG debug", "WATCHDOG inject-nmi");
    FAILS(rs_watchdog_expired(NULL), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_defaults_are_qemus),
        TEST(test_set_actions_applies_only_what_is_given),
        TEST(test_panic_and_shutdown_set_together),
        TEST(test_action_names),
        TEST(test_reboot_reset),
        TEST(test_reboot_shutdown_turns_resets_into_shutdowns),
        TEST(test_no_reboot_no_shutdown),
        TEST(test_shutdown_pause),
        TEST(test_quit_and_signal_force_poweroff),
        cmocka_unit_test(test_guest_panic_rows),
        TEST(test_panic_is_reversible_with_cont),
        TEST(test_watchdog_reset),
        TEST(test_watchdog_shutdown_is_a_power_button),
        TEST(test_watchdog_poweroff_exits_without_shutdown_event),
        TEST(test_watchdog_pause_event_before_stop),
        TEST(test_watchdog_debug_none_nmi),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

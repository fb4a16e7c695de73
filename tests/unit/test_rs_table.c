/*
 * librunstate: states, QEMU's transition table, names and predicates.
 *
 * The table below is a literal copy of QEMU's runstate_transitions_def as
 * listed in reference qemu-runstate.md §1.5 (85 pairs, source order),
 * written with QAPI names so that it shares nothing with runstate/: not the
 * enum order, not the table.  Every one of the 16×16 pairs is checked
 * against it.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "runstate.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* QAPI RunState names in QAPI order (reference §1.1): the index is the value. */
static const char *const qapi_states[] = {
    "debug", "inmigrate", "internal-error", "io-error", "paused", "postmigrate",
    "prelaunch", "finish-migrate", "restore-vm", "running", "save-vm", "shutdown",
    "suspended", "watchdog", "guest-panicked", "colo",
};

/* Reference §1.5, in QEMU's source order. */
static const struct { const char *from, *to; } qemu_table[] = {
    { "debug", "running" },
    { "debug", "finish-migrate" },
    { "debug", "prelaunch" },
    { "inmigrate", "internal-error" },
    { "inmigrate", "io-error" },
    { "inmigrate", "paused" },
    { "inmigrate", "running" },
    { "inmigrate", "shutdown" },
    { "inmigrate", "suspended" },
    { "inmigrate", "watchdog" },
    { "inmigrate", "guest-panicked" },
    { "inmigrate", "finish-migrate" },
    { "inmigrate", "prelaunch" },
    { "inmigrate", "postmigrate" },
    { "inmigrate", "colo" },
    { "internal-error", "paused" },
    { "internal-error", "finish-migrate" },
    { "internal-error", "prelaunch" },
    { "io-error", "running" },
    { "io-error", "finish-migrate" },
    { "io-error", "prelaunch" },
    { "paused", "running" },
    { "paused", "finish-migrate" },
    { "paused", "postmigrate" },
    { "paused", "prelaunch" },
    { "paused", "colo" },
    { "paused", "suspended" },
    { "postmigrate", "running" },
    { "postmigrate", "finish-migrate" },
    { "postmigrate", "prelaunch" },
    { "prelaunch", "running" },
    { "prelaunch", "finish-migrate" },
    { "prelaunch", "inmigrate" },
    { "prelaunch", "suspended" },
    { "finish-migrate", "running" },
    { "finish-migrate", "paused" },
    { "finish-migrate", "postmigrate" },
    { "finish-migrate", "prelaunch" },
    { "finish-migrate", "colo" },
    { "finish-migrate", "internal-error" },
    { "finish-migrate", "io-error" },
    { "finish-migrate", "shutdown" },
    { "finish-migrate", "suspended" },
    { "finish-migrate", "watchdog" },
    { "finish-migrate", "guest-panicked" },
    { "restore-vm", "running" },
    { "restore-vm", "prelaunch" },
    { "restore-vm", "suspended" },
    { "colo", "running" },
    { "colo", "prelaunch" },
    { "colo", "shutdown" },
    { "running", "debug" },
    { "running", "internal-error" },
    { "running", "io-error" },
    { "running", "paused" },
    { "running", "finish-migrate" },
    { "running", "restore-vm" },
    { "running", "save-vm" },
    { "running", "shutdown" },
    { "running", "watchdog" },
    { "running", "guest-panicked" },
    { "running", "colo" },
    { "save-vm", "running" },
    { "save-vm", "suspended" },
    { "shutdown", "paused" },
    { "shutdown", "finish-migrate" },
    { "shutdown", "prelaunch" },
    { "shutdown", "colo" },
    { "debug", "suspended" },
    { "running", "suspended" },
    { "suspended", "running" },
    { "suspended", "finish-migrate" },
    { "suspended", "prelaunch" },
    { "suspended", "colo" },
    { "suspended", "paused" },
    { "suspended", "save-vm" },
    { "suspended", "restore-vm" },
    { "suspended", "shutdown" },
    { "watchdog", "running" },
    { "watchdog", "finish-migrate" },
    { "watchdog", "prelaunch" },
    { "watchdog", "colo" },
    { "guest-panicked", "running" },
    { "guest-panicked", "finish-migrate" },
    { "guest-panicked", "prelaunch" },
};

/* Reference §1.5, second table: allowed targets per source state. */
static const struct { const char *from; int count; } qemu_counts[] = {
    { "debug", 4 },          { "inmigrate", 12 },  { "internal-error", 3 },
    { "io-error", 3 },       { "paused", 6 },      { "postmigrate", 3 },
    { "prelaunch", 4 },      { "finish-migrate", 11 }, { "restore-vm", 3 },
    { "running", 12 },       { "save-vm", 2 },     { "shutdown", 4 },
    { "suspended", 8 },      { "watchdog", 4 },    { "guest-panicked", 3 },
    { "colo", 3 },
};

/* The index of a QAPI name in qapi_states, -1 if it is not one. */
static int qapi_index(const char *name)
{
    for (size_t i = 0; i < COUNT(qapi_states); i++)
        if (strcmp(qapi_states[i], name) == 0)
            return (int)i;
    return -1;
}

static bool in_qemu_table(int from, int to)
{
    for (size_t i = 0; i < COUNT(qemu_table); i++)
        if (qapi_index(qemu_table[i].from) == from && qapi_index(qemu_table[i].to) == to)
            return true;
    return false;
}

/* ------------------------------------------------------------ the table */

static void test_literal_table_is_well_formed(void **state)
{
    (void)state;
    /* Guards the copy itself: 85 distinct pairs of known names. */
    assert_int_equal(COUNT(qemu_table), 85);
    for (size_t i = 0; i < COUNT(qemu_table); i++) {
        assert_true(qapi_index(qemu_table[i].from) >= 0);
        assert_true(qapi_index(qemu_table[i].to) >= 0);
        assert_string_not_equal(qemu_table[i].from, qemu_table[i].to);
        for (size_t j = 0; j < i; j++)
            assert_false(strcmp(qemu_table[i].from, qemu_table[j].from) == 0 &&
                         strcmp(qemu_table[i].to, qemu_table[j].to) == 0);
    }
    int total = 0;
    for (size_t i = 0; i < COUNT(qemu_counts); i++) {
        int n = 0;
        for (size_t j = 0; j < COUNT(qemu_table); j++)
            n += strcmp(qemu_table[j].from, qemu_counts[i].from) == 0;
        assert_int_equal(n, qemu_counts[i].count);
        total += n;
    }
    assert_int_equal(total, 85);
}

static void test_all_pairs_match_qemu(void **state)
{
    (void)state;
    int allowed_pairs = 0;
    for (int from = 0; from < RS_STATE__MAX; from++) {
        for (int to = 0; to < RS_STATE__MAX; to++) {
            bool want = from == to || in_qemu_table(from, to);
            bool got = rs_transition_allowed((rs_state)from, (rs_state)to);
            if (want != got)
                fail_msg("%s -> %s: QEMU %s, librunstate %s", qapi_states[from], qapi_states[to],
                         want ? "allows" : "refuses", got ? "allows" : "refuses");
            allowed_pairs += got && from != to;
        }
    }
    assert_int_equal(allowed_pairs, 85);
}

static void test_absent_edges_are_refused(void **state)
{
    (void)state;
    /* The edges reference §1.5 singles out as absent. */
    assert_false(rs_transition_allowed(RS_RUNNING, RS_PRELAUNCH));
    assert_false(rs_transition_allowed(RS_SHUTDOWN, RS_RUNNING));
    assert_false(rs_transition_allowed(RS_INTERNAL_ERROR, RS_RUNNING));
    assert_false(rs_transition_allowed(RS_IO_ERROR, RS_PAUSED));
    assert_false(rs_transition_allowed(RS_WATCHDOG, RS_PAUSED));
    assert_false(rs_transition_allowed(RS_GUEST_PANICKED, RS_PAUSED));
    assert_false(rs_transition_allowed(RS_POSTMIGRATE, RS_PAUSED));
    assert_false(rs_transition_allowed(RS_SAVE_VM, RS_PRELAUNCH));
    assert_false(rs_transition_allowed(RS_SUSPENDED, RS_IO_ERROR));
    assert_false(rs_transition_allowed(RS_FINISH_MIGRATE, RS_DEBUG));
}

static void test_transition_at_in_source_order(void **state)
{
    (void)state;
    assert_int_equal(rs_transition_count(), COUNT(qemu_table));
    for (size_t i = 0; i < COUNT(qemu_table); i++) {
        rs_state from = RS_STATE__MAX, to = RS_STATE__MAX;
        assert_int_equal(rs_transition_at(i, &from, &to), 0);
        assert_string_equal(rs_state_name(from), qemu_table[i].from);
        assert_string_equal(rs_state_name(to), qemu_table[i].to);
    }
    rs_state from = RS_PAUSED, to = RS_PAUSED;
    assert_int_equal(rs_transition_at(COUNT(qemu_table), &from, &to), -EINVAL);
    assert_int_equal(rs_transition_at(SIZE_MAX, &from, &to), -EINVAL);
    assert_int_equal(from, RS_PAUSED);    /* untouched on error */
    assert_int_equal(to, RS_PAUSED);
    assert_int_equal(rs_transition_at(0, NULL, &to), -EINVAL);
    assert_int_equal(rs_transition_at(0, &from, NULL), -EINVAL);
}

static void test_self_transitions_and_out_of_range(void **state)
{
    (void)state;
    for (int s = 0; s < RS_STATE__MAX; s++)
        assert_true(rs_transition_allowed((rs_state)s, (rs_state)s));
    const int bad[] = { RS_STATE__MAX, RS_STATE__MAX + 1, 99, -1, INT32_MIN };
    for (size_t i = 0; i < COUNT(bad); i++) {
        rs_state b = (rs_state)bad[i];
        assert_false(rs_transition_allowed(b, b));
        assert_false(rs_transition_allowed(b, RS_RUNNING));
        assert_false(rs_transition_allowed(RS_RUNNING, b));
        assert_false(rs_transition_allowed(RS_PRELAUNCH, b));
    }
}

/* ------------------------------------------------------------ names */

static void test_state_names_round_trip(void **state)
{
    (void)state;
    assert_int_equal(RS_STATE__MAX, COUNT(qapi_states));
    for (int s = 0; s < RS_STATE__MAX; s++) {
        assert_non_null(rs_state_name((rs_state)s));
        assert_string_equal(rs_state_name((rs_state)s), qapi_states[s]);
        rs_state back = RS_STATE__MAX;
        assert_int_equal(rs_state_from_name(qapi_states[s], &back), 0);
        assert_int_equal(back, s);
    }
}

static void test_state_names_bad_input(void **state)
{
    (void)state;
    assert_null(rs_state_name((rs_state)99));
    assert_null(rs_state_name(RS_STATE__MAX));
    assert_null(rs_state_name((rs_state)-1));

    /* Exact QAPI names only: no case folding, no prefixes, no legacy alias. */
    const char *const unknown[] = {
        "", "Running", "RUNNING", "running ", " running", "run", "runningx", "io_error",
        "preconfig", "suspend", "x-hold-added",
    };
    for (size_t i = 0; i < COUNT(unknown); i++) {
        rs_state out = RS_PAUSED;
        assert_int_equal(rs_state_from_name(unknown[i], &out), -EINVAL);
        assert_int_equal(out, RS_PAUSED);
    }
    rs_state out = RS_PAUSED;
    assert_int_equal(rs_state_from_name(NULL, &out), -EINVAL);
    assert_int_equal(out, RS_PAUSED);
    assert_int_equal(rs_state_from_name("running", NULL), -EINVAL);
}

/* QAPI ShutdownCause (reference §4.5), in QAPI order. */
static const char *const qapi_causes[] = {
    "none", "host-error", "host-qmp-quit", "host-qmp-system-reset", "host-signal", "host-ui",
    "guest-shutdown", "guest-reset", "guest-panic", "subsystem-reset", "snapshot-load",
};

static void test_cause_names_and_guest(void **state)
{
    (void)state;
    assert_int_equal(RS_CAUSE__MAX, COUNT(qapi_causes));
    for (int c = 0; c < RS_CAUSE__MAX; c++) {
        assert_string_equal(rs_cause_name((rs_cause)c), qapi_causes[c]);
        rs_cause back = RS_CAUSE__MAX;
        assert_int_equal(rs_cause_from_name(qapi_causes[c], &back), 0);
        assert_int_equal(back, c);
        /* guest = value >= guest-shutdown, subsystem-reset and snapshot-load included */
        assert_int_equal(rs_cause_is_guest((rs_cause)c), c >= RS_CAUSE_GUEST_SHUTDOWN);
    }
    assert_null(rs_cause_name(RS_CAUSE__MAX));
    assert_null(rs_cause_name((rs_cause)-1));
    assert_false(rs_cause_is_guest(RS_CAUSE__MAX));
    assert_false(rs_cause_is_guest((rs_cause)99));
    rs_cause out = RS_CAUSE_NONE;
    assert_int_equal(rs_cause_from_name("guest_reset", &out), -EINVAL);
    assert_int_equal(rs_cause_from_name("", &out), -EINVAL);
    assert_int_equal(rs_cause_from_name(NULL, &out), -EINVAL);
    assert_int_equal(out, RS_CAUSE_NONE);
}

static void test_wakeup_and_event_names(void **state)
{
    (void)state;
    /* QAPI event names, and rsdm's x- events (docs/runstate.md §13). */
    static const char *const events[] = {
        "STOP", "RESUME", "SUSPEND", "WAKEUP", "RESET", "SHUTDOWN", "POWERDOWN",
        "GUEST_PANICKED", "WATCHDOG", "BLOCK_IO_ERROR", "x-hold-added", "x-hold-released",
    };
    assert_int_equal(RS_EV__MAX, COUNT(events));
    for (int e = 0; e < RS_EV__MAX; e++)
        assert_string_equal(rs_event_name((rs_event_type)e), events[e]);
    assert_null(rs_event_name(RS_EV__MAX));
    assert_null(rs_event_name((rs_event_type)-1));

    for (int r = 0; r < RS_WAKEUP__MAX; r++) {
        assert_non_null(rs_wakeup_reason_name((rs_wakeup_reason)r));
        for (int q = 0; q < r; q++)
            assert_string_not_equal(rs_wakeup_reason_name((rs_wakeup_reason)r),
                                    rs_wakeup_reason_name((rs_wakeup_reason)q));
    }
    assert_null(rs_wakeup_reason_name(RS_WAKEUP__MAX));
    assert_null(rs_wakeup_reason_name((rs_wakeup_reason)-1));
}

/* ------------------------------------------------------------ predicates */

static void test_live_and_needs_reset(void **state)
{
    (void)state;
    for (int s = 0; s < RS_STATE__MAX; s++) {
        const char *n = qapi_states[s];
        bool live = !strcmp(n, "running") || !strcmp(n, "suspended");
        bool needs_reset = !strcmp(n, "shutdown") || !strcmp(n, "internal-error");
        assert_int_equal(rs_state_is_live((rs_state)s), live);
        assert_int_equal(rs_state_needs_reset((rs_state)s), needs_reset);
    }
    /* guest-panicked is reversible with cont (reference §1.2). */
    assert_false(rs_state_needs_reset(RS_GUEST_PANICKED));
    assert_false(rs_state_is_live(RS_STATE__MAX));
    assert_false(rs_state_is_live((rs_state)99));
    assert_false(rs_state_needs_reset(RS_STATE__MAX));
    assert_false(rs_state_needs_reset((rs_state)-1));
}

static void test_groups(void **state)
{
    (void)state;
    /* docs/runstate.md §3, written out by name. */
    static const struct { const char *state; rs_group group; } groups[] = {
        { "finish-migrate", RS_GROUP_INTERNAL }, { "inmigrate", RS_GROUP_INTERNAL },
        { "save-vm", RS_GROUP_INTERNAL },        { "restore-vm", RS_GROUP_INTERNAL },
        { "colo", RS_GROUP_INTERNAL },           { "io-error", RS_GROUP_MANAGEMENT },
        { "paused", RS_GROUP_USER },             { "prelaunch", RS_GROUP_USER },
        { "postmigrate", RS_GROUP_USER },        { "watchdog", RS_GROUP_USER },
        { "guest-panicked", RS_GROUP_USER },     { "debug", RS_GROUP_USER },
        { "shutdown", RS_GROUP_FATAL },          { "internal-error", RS_GROUP_FATAL },
        { "running", RS_GROUP_NONE },            { "suspended", RS_GROUP_NONE },
    };
    assert_int_equal(COUNT(groups), RS_STATE__MAX);
    bool seen[RS_STATE__MAX] = { false };
    for (size_t i = 0; i < COUNT(groups); i++) {
        rs_state s;
        assert_int_equal(rs_state_from_name(groups[i].state, &s), 0);
        assert_false(seen[s]);
        seen[s] = true;
        assert_int_equal(rs_state_group(s), groups[i].group);
    }
    /* Fatal exactly when a reset is needed; none exactly when live. */
    for (int s = 0; s < RS_STATE__MAX; s++) {
        assert_int_equal(rs_state_group((rs_state)s) == RS_GROUP_FATAL,
                         rs_state_needs_reset((rs_state)s));
        assert_int_equal(rs_state_group((rs_state)s) == RS_GROUP_NONE,
                         rs_state_is_live((rs_state)s));
    }
    assert_int_equal(rs_state_group(RS_STATE__MAX), RS_GROUP_NONE);
    assert_int_equal(rs_state_group((rs_state)99), RS_GROUP_NONE);

    static const char *const names[] = { "none", "internal", "management", "user", "fatal" };
    for (int g = RS_GROUP_NONE; g <= RS_GROUP_FATAL; g++)
        assert_string_equal(rs_group_name((rs_group)g), names[g]);
    assert_null(rs_group_name((rs_group)(RS_GROUP_FATAL + 1)));
    assert_null(rs_group_name((rs_group)-1));
}

static void test_hold_bits_fit(void **state)
{
    (void)state;
    /* One bit per state in an rs_holdset, all distinct. */
    rs_holdset all = 0;
    for (int s = 0; s < RS_STATE__MAX; s++) {
        assert_int_equal(all & RS_HOLD_BIT(s), 0);
        all |= RS_HOLD_BIT(s);
    }
    assert_int_equal(__builtin_popcount(all), RS_STATE__MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal_table_is_well_formed),
        cmocka_unit_test(test_all_pairs_match_qemu),
        cmocka_unit_test(test_absent_edges_are_refused),
        cmocka_unit_test(test_transition_at_in_source_order),
        cmocka_unit_test(test_self_transitions_and_out_of_range),
        cmocka_unit_test(test_state_names_round_trip),
        cmocka_unit_test(test_state_names_bad_input),
        cmocka_unit_test(test_cause_names_and_guest),
        cmocka_unit_test(test_wakeup_and_event_names),
        cmocka_unit_test(test_live_and_needs_reset),
        cmocka_unit_test(test_groups),
        cmocka_unit_test(test_hold_bits_fit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

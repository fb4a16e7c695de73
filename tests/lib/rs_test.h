/*
 * Step macros shared by the librunstate cmocka tests.  A test reads as a
 * list of steps, each followed by the exact sequence it must record:
 *
 *     OK(rs_vm_stop(vm, RS_PAUSED, &err));
 *     EXPECT("a(0,paused)", "STOP paused", "hook:drain");
 *
 * Each test function declares `rs_rec *t`, `rs_vm *vm` and `rs_err err`
 * (FIXTURE does it).  After every step the invariant "live iff no hold" is
 * checked, and the library must never have refused a transition of its own.
 */
#ifndef RS_TEST_H
#define RS_TEST_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rs_record.h"
#include "runstate.h"

#define FIXTURE                 \
    rs_rec *t = *state;         \
    rs_vm *vm = t->vm;          \
    rs_err err;                 \
    memset(&err, 0, sizeof(err)); \
    (void)vm

/* A step that must succeed. */
#define OK(call)                                                              \
    do {                                                                      \
        memset(&err, 0, sizeof(err));                                         \
        int r_ = (call);                                                      \
        if (r_ != 0)                                                          \
            fail_msg("%s returned %d (%s)", #call, r_, err.msg);              \
        assert_true(rs_rec_invariant(vm));                                    \
    } while (0)

/* A step that must fail with `code`, filling err with `code` and `text`
 * (NULL: any message, but one must be there). */
#define REFUSED(call, want, text)                                             \
    do {                                                                      \
        memset(&err, 0, sizeof(err));                                         \
        int r_ = (call);                                                      \
        assert_int_equal(r_, (want));                                         \
        assert_int_equal(err.code, (want));                                   \
        if ((text) != NULL)                                                   \
            assert_string_equal(err.msg, (text));                             \
        else                                                                  \
            assert_true(err.msg[0] != '\0');                                  \
        assert_true(rs_rec_invariant(vm));                                    \
    } while (0)

/* A step without an rs_err that must succeed. */
#define OK_NOERR(call)                                                        \
    do {                                                                      \
        int r_ = (call);                                                      \
        if (r_ != 0)                                                          \
            fail_msg("%s returned %d", #call, r_);                            \
        assert_true(rs_rec_invariant(t->vm));                                 \
    } while (0)

/* A step without an rs_err that must fail with `code`. */
#define FAILS(call, want)                                                     \
    do {                                                                      \
        int r_ = (call);                                                      \
        assert_int_equal(r_, (want));                                         \
        assert_true(rs_rec_invariant(vm));                                    \
    } while (0)

/* The recorded sequence since the last EXPECT is exactly this. */
#define EXPECT(...)                                   \
    do {                                              \
        assert_true(rs_rec_expect(t, __VA_ARGS__));   \
        rs_rec_clear(t);                              \
    } while (0)
#define EXPECT_NOTHING()                              \
    do {                                              \
        assert_true(rs_rec_expect_nothing(t));        \
        rs_rec_clear(t);                              \
    } while (0)

#define ASSERT_STATE(s, ...)                                                  \
    do {                                                                      \
        assert_string_equal(rs_state_name(rs_get_state(vm)), rs_state_name(s)); \
        assert_int_equal(rs_get_holds(vm), rs_rec_holds(__VA_ARGS__));        \
    } while (0)
/* Running or suspended, with no hold. */
#define ASSERT_LIVE(s)                                                        \
    do {                                                                      \
        assert_string_equal(rs_state_name(rs_get_state(vm)), rs_state_name(s)); \
        assert_int_equal(rs_get_holds(vm), 0);                                \
    } while (0)

static inline int rs_test_setup(void **state)
{
    rs_rec *t = rs_rec_new();
    if (!t)
        return -1;
    *state = t;
    return 0;
}

/* Every test ends with: no refused transition, every event consistent
 * with the state it reports, every handler called with the state shown. */
static inline int rs_test_teardown(void **state)
{
    rs_rec *t = *state;
    bool ok = rs_rec_invariant(t->vm) && t->bad_events == 0 && t->handler_state_mismatch == 0;
    if (!ok)
        print_error("teardown: invalid transitions %llu, bad events %u, handler state mismatches %u\n",
                    (unsigned long long)rs_invalid_transitions(t->vm), t->bad_events,
                    t->handler_state_mismatch);
    rs_rec_free(t);
    return ok ? 0 : -1;
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, rs_test_setup, rs_test_teardown)

/* From prelaunch to running through cont, then forget what it recorded. */
static inline void rs_test_boot(rs_rec *t)
{
    rs_err e;
    assert_int_equal(rs_cont(t->vm, &e), 0);
    assert_int_equal(rs_get_state(t->vm), RS_RUNNING);
    rs_rec_clear(t);
}

/* Take what is pending; the main loop must not be asked to exit. */
#define PROCESS()                                                             \
    do {                                                                      \
        int st_ = -1;                                                         \
        assert_int_equal(rs_process_requests(vm, &st_), 0);                  \
        assert_true(rs_rec_invariant(vm));                                    \
    } while (0)

#endif /* RS_TEST_H */

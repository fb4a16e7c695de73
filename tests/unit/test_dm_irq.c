/*
 * dm_irq with the real librunstate: raises while the VM is not live are
 * latched and delivered at the next start; lowers go through at once; a
 * failing back-end is retried; bad line numbers are refused.  The back-end
 * is a recorder of calls as text.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dm_irq.h"

typedef struct recorder {
    char log[512];
    int fail;                    /* fail this many calls */
} recorder;

static void note(recorder *r, const char *s)
{
    size_t n = strlen(r->log);
    snprintf(r->log + n, sizeof(r->log) - n, "%s ", s);
}

static int rec_isa(void *opaque, unsigned irq, bool level)
{
    recorder *r = opaque;
    if (r->fail > 0) {
        r->fail--;
        return -EIO;
    }
    char s[32];
    snprintf(s, sizeof(s), "isa%u=%d", irq, level);
    note(r, s);
    return 0;
}

static int rec_pci(void *opaque, unsigned slot, unsigned intx, bool level)
{
    recorder *r = opaque;
    char s[32];
    snprintf(s, sizeof(s), "pci%u.%c=%d", slot, 'A' + intx, level);
    note(r, s);
    return 0;
}

static const dm_irq_backend rec_be = { rec_isa, rec_pci };

static void test_gate_with_runstate(void **state)
{
    (void)state;
    recorder r = { 0 };
    rs_vm *vm = rs_vm_new();
    dm_irq *irq = dm_irq_new(&rec_be, &r);
    assert_int_equal(dm_irq_attach_runstate(irq, vm, 0), 0);
    assert_false(dm_irq_gate_open(irq));          /* prelaunch */

    /* Prelaunch: a raise is latched, nothing reaches the back-end. */
    assert_int_equal(dm_irq_isa_set(irq, 4, true), 0);
    assert_int_equal(dm_irq_pci_set(irq, 3, 0, true), 0);
    assert_string_equal(r.log, "");
    assert_true(dm_irq_isa_wanted(irq, 4));
    assert_false(dm_irq_isa_delivered(irq, 4));

    rs_err err;
    assert_int_equal(rs_cont(vm, &err), 0);
    assert_true(dm_irq_gate_open(irq));
    assert_string_equal(r.log, "isa4=1 pci3.A=1 ");
    assert_true(dm_irq_isa_delivered(irq, 4));

    /* Running: straight through; setting the same level again is silent. */
    r.log[0] = 0;
    assert_int_equal(dm_irq_isa_set(irq, 4, true), 0);
    assert_int_equal(dm_irq_isa_set(irq, 14, true), 0);
    assert_string_equal(r.log, "isa14=1 ");

    /* Stopped: lowering goes through at once, raising waits. */
    assert_int_equal(rs_vm_stop(vm, RS_PAUSED, &err), 0);
    assert_false(dm_irq_gate_open(irq));
    r.log[0] = 0;
    assert_int_equal(dm_irq_isa_set(irq, 14, false), 0);
    assert_int_equal(dm_irq_isa_set(irq, 14, true), 0);
    assert_int_equal(dm_irq_pci_set(irq, 5, 3, true), 0);
    assert_string_equal(r.log, "isa14=0 ");
    /* A raise then a lower while stopped leaves nothing to deliver. */
    assert_int_equal(dm_irq_isa_set(irq, 7, true), 0);
    assert_int_equal(dm_irq_isa_set(irq, 7, false), 0);
    assert_string_equal(r.log, "isa14=0 ");

    r.log[0] = 0;
    assert_int_equal(rs_cont(vm, &err), 0);
    /* Delivered at start: ISA 14 gets its edge back, PCI 5 INTD raised. */
    assert_string_equal(r.log, "isa14=1 pci5.D=1 ");

    dm_irq_stats st;
    dm_irq_get_stats(irq, &st);
    assert_int_equal(st.latched, 5);
    assert_int_equal(st.failed, 0);
    dm_irq_free(irq);
    rs_vm_free(vm);
}

static void test_backend_failure_is_retried(void **state)
{
    (void)state;
    recorder r = { .fail = 1 };
    dm_irq *irq = dm_irq_new(&rec_be, &r);
    dm_irq_set_gate(irq, true);
    assert_int_equal(dm_irq_isa_set(irq, 1, true), 0);
    assert_string_equal(r.log, "");
    assert_false(dm_irq_isa_delivered(irq, 1));
    /* The next opening of the gate tries again. */
    dm_irq_set_gate(irq, true);
    assert_string_equal(r.log, "isa1=1 ");
    dm_irq_stats st;
    dm_irq_get_stats(irq, &st);
    assert_int_equal(st.failed, 1);
    assert_int_equal(st.delivered, 1);
    dm_irq_free(irq);
}

static void test_bad_lines(void **state)
{
    (void)state;
    recorder r = { 0 };
    dm_irq *irq = dm_irq_new(&rec_be, &r);
    dm_irq_set_gate(irq, true);
    assert_int_equal(dm_irq_isa_set(irq, 16, true), -EINVAL);
    assert_int_equal(dm_irq_isa_set(irq, 1000, true), -EINVAL);
    assert_int_equal(dm_irq_pci_set(irq, 32, 0, true), -EINVAL);
    assert_int_equal(dm_irq_pci_set(irq, 0, 4, true), -EINVAL);
    assert_false(dm_irq_isa_wanted(irq, 16));
    assert_false(dm_irq_pci_delivered(irq, 0, 4));
    assert_string_equal(r.log, "");
    /* A back-end without PCI support: the failure is counted, not fatal. */
    dm_irq_backend isa_only = { rec_isa, NULL };
    dm_irq *i2 = dm_irq_new(&isa_only, &r);
    dm_irq_set_gate(i2, true);
    assert_int_equal(dm_irq_pci_set(i2, 1, 0, true), 0);
    dm_irq_stats st;
    dm_irq_get_stats(i2, &st);
    assert_int_equal(st.failed, 1);
    assert_null(dm_irq_new(NULL, NULL));
    dm_irq_free(i2);
    dm_irq_free(irq);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gate_with_runstate),
        cmocka_unit_test(test_backend_failure_is_retried),
        cmocka_unit_test(test_bad_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

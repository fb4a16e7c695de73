/*
 * 1,000 stop/continue cycles of a real rsdm-sim, driven over xenstore as
 * the traditional dialect does, while a guest vCPU keeps accessing the
 * dm's UART: every access is answered by rsdm (never by Xen's null handler,
 * so no read of all-ones and no lost write), the register contents survive
 * every stop, and the dm's domain pause reference comes and goes with its
 * own stop (balanced at the end).
 *
 * The hypervisor runs in this process (tests/lib/xsim_emu); xenstore is a
 * `xensim run` daemon; rsdm-sim is a child process, as on a host.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <xenstore.h>

#include "../lib/rsdm_sim.h"
#include "../lib/xsim_emu.h"
#include "hv.h"

#define CYCLES 1000
#define WAIT_MS 10000

typedef struct fixture {
    rsdm_sim sim;
    rsdm_sim_guest g;
} fixture;

static int setup(void **state)
{
    static fixture f;
    memset(&f, 0, sizeof(f));
    if (rsdm_sim_start(&f.sim, "stopcont", 1) < 0)
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    int st = rsdm_sim_stop_dm(&f->sim);
    rsdm_sim_stop(&f->sim);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);   /* clean exit on SIGTERM */
    return 0;
}

static void test_stop_continue_cycles_during_guest_io(void **state)
{
    fixture *f = *state;
    assert_int_equal(rsdm_sim_guest_start(&f->g, &f->sim), 0);
    for (int i = 0; i < CYCLES; i++) {
        assert_true(xs_write(f->sim.xs, XBT_NULL, f->sim.command, "stop", 4));
        assert_int_equal(rsdm_sim_wait_value(&f->sim, f->sim.runstate, "paused holds=paused", WAIT_MS), 0);
        /* rsdm's own stop: one pause reference on the domain. */
        assert_int_equal(rsdm_sim_pause_count(&f->sim), 1);
        assert_true(xs_write(f->sim.xs, XBT_NULL, f->sim.command, "continue", 8));
        assert_int_equal(rsdm_sim_wait_value(&f->sim, f->sim.runstate, "running holds=", WAIT_MS), 0);
        /* A paused vCPU makes no progress: give the guest a moment of
         * running time each cycle by waiting for one more access. */
        rsdm_sim_guest_step(&f->g);
    }
    rsdm_sim_guest_stop(&f->g);

    assert_int_equal(atomic_load(&f->g.failures), 0);
    assert_int_equal(atomic_load(&f->g.mismatches), 0);
    assert_true(atomic_load(&f->g.accesses) >= CYCLES);
    /* Nothing the dm registered was ever answered by Xen's null handler. */
    assert_int_equal(hv_null_hits_total(f->sim.dom), 0);
    assert_int_equal(rsdm_sim_pause_count(&f->sim), 0);
    printf("%d stop/continue cycles, %lu guest accesses, 0 null-handler hits\n", CYCLES,
           atomic_load(&f->g.accesses));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stop_continue_cycles_during_guest_io, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

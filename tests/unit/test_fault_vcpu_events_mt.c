/*
 * Issue 13.5 on a real rsdm-sim with an IDE disk (vCPU 0) and an AHCI disk
 * (vCPU 1), both written by guest threads with checked data:
 *
 *  - dropped event notifications: Xen's notification for the next ioreq
 *    is lost (hv_fault_drop_events), many times while the guest writes;
 *    every access is still answered — by rsdm's ioreq scan timer, whose
 *    warning ("answered without a notification") is logged for each lost
 *    notification — and no data is lost;
 *  - a stalled vCPU (hv_fault_stall_vcpu, as `xensim fault stall-vcpu`):
 *    the other vCPU's disk keeps working; stop, continue, and a save
 *    restored into a new rsdm-sim all complete while it is stalled (no
 *    deadlock on the stalled vCPU); once unstalled its writes go on, and
 *    both disks read back clean.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <xenstore.h>

#include "../lib/dual_guest.h"
#include "hv.h"

#define SECTORS 8192u
#define WAIT_MS 10000
#define RESCUE_LOG "answered without a notification"

static dual_guest G;
static dual_writer w[DUAL_DISKS];

static int setup(void **state)
{
    *state = &G;
    return dual_guest_start(&G, "vcpu-events", SECTORS,
                            "[disk hda]\nwerror = stop\n[disk sda]\nwerror = stop\n");
}

static int teardown(void **state)
{
    (void)state;
    int st = dual_guest_stop(&G);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return 0;
}

static void assert_clean(void)
{
    for (unsigned d = 0; d < DUAL_DISKS; d++) {
        assert_int_equal(dual_guest_verify(&G, d), 0);
        struct guest_check_counters c;
        guest_check_snapshot(&G.chk[d], &c);
        printf("%s: %llu sectors written, %llu read commands; lost %llu stale %llu corrupted %llu "
               "all-ones %llu\n", dual_guest_vdev[d], (unsigned long long)c.writes,
               (unsigned long long)c.reads, (unsigned long long)c.lost_writes,
               (unsigned long long)c.stale_overwrites, (unsigned long long)c.corrupted_reads,
               (unsigned long long)G.bus[d].all_ones_reads);
        assert_int_equal(c.writes, w[d].sectors);
        assert_int_equal(c.lost_writes + c.stale_overwrites + c.corrupted_reads, 0);
        assert_int_equal(G.bus[d].all_ones_reads, 0);
    }
    assert_int_equal(G.ide.errors + G.ide.timeouts + G.hba.errors + G.hba.timeouts, 0);
}

static void test_dropped_events(void **state)
{
    (void)state;
    enum { DROPS = 40 };
    /* (On a slow machine the scan can already have beaten a notification
     * that was not lost: rescues are counted from here.) */
    long before = dual_guest_log_count(&G, RESCUE_LOG);
    assert_true(before >= 0);
    for (unsigned d = 0; d < DUAL_DISKS; d++)
        assert_int_equal(dual_writer_start(&w[d], &G, d, 0, 4, 77 + d, UINT_MAX), 0);
    for (unsigned i = 0; i < DROPS; i++) {
        /* Lose the next notification Xen sends to rsdm, on any port;
         * the access it belonged to must still be answered. */
        unsigned c0 = atomic_load(&w[0].cmds), c1 = atomic_load(&w[1].cmds);
        long r0 = dual_guest_log_count(&G, RESCUE_LOG);
        assert_int_equal(hv_fault_drop_events(G.sim.dom, 0, 1), 0);
        assert_int_equal(dual_guest_log_wait(&G, RESCUE_LOG, r0, WAIT_MS), 0);
        /* Both vCPUs go on: nobody waits for the lost notification. */
        assert_true(dual_writer_wait(&w[0], c0 + 2, WAIT_MS));
        assert_true(dual_writer_wait(&w[1], c1 + 2, WAIT_MS));
        assert_true(atomic_load(&w[0].cmds) >= c0 + 2 && atomic_load(&w[1].cmds) >= c1 + 2);
    }
    for (unsigned d = 0; d < DUAL_DISKS; d++)
        if (dual_writer_join(&w[d]) < 0)
            fail_msg("%s: %s", dual_guest_vdev[d], w[d].err);
    long rescued = dual_guest_log_count(&G, RESCUE_LOG) - before;
    printf("%d notifications dropped while the guest wrote (%u + %u commands): %ld scan-timer "
           "rescues logged\n", DROPS, atomic_load(&w[0].cmds), atomic_load(&w[1].cmds), rescued);
    /* A scan can also beat a notification that was not lost: at least one
     * rescue per lost notification. */
    assert_true(rescued >= DROPS);
    assert_clean();
}

/* The traditional save, the dm's exit and a new rsdm-sim from the file, as
 * libxl does; the domain stays paused across it. */
static void save_and_restore(void)
{
    assert_int_equal(hv_domain_pause(G.sim.dom), 0);
    assert_int_equal(dual_guest_command(&G, "save"), 0);
    assert_int_equal(rsdm_sim_wait_value(&G.sim, G.sim.state, "paused", WAIT_MS), 0);
    char file[512];
    rsdm_sim_save_path(&G.sim, file, sizeof(file));
    int st = rsdm_sim_stop_dm(&G.sim);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(rsdm_sim_restore_dm(&G.sim, file, G.conf), 0);
    assert_int_equal(hv_domain_unpause(G.sim.dom), 0);
}

static void test_stalled_vcpu(void **state)
{
    (void)state;
    for (unsigned d = 0; d < DUAL_DISKS; d++)
        assert_int_equal(dual_writer_start(&w[d], &G, d, 0, 4, 99 + d, UINT_MAX), 0);
    assert_true(dual_writer_wait(&w[DUAL_IDE], 20, WAIT_MS));
    assert_int_equal(hv_fault_stall_vcpu(G.sim.dom, DUAL_IDE, true), 0);
    unsigned ide0 = atomic_load(&w[DUAL_IDE].cmds);
    /* vCPU 1 keeps going: 50 more AHCI commands while vCPU 0 is stalled. */
    unsigned a = atomic_load(&w[DUAL_AHCI].cmds);
    assert_true(dual_writer_wait(&w[DUAL_AHCI], a + 50, WAIT_MS));
    assert_true(atomic_load(&w[DUAL_AHCI].cmds) >= a + 50);
    /* At most the command whose access was in flight finishes. */
    assert_true(atomic_load(&w[DUAL_IDE].cmds) <= ide0 + 1);
    ide0 = atomic_load(&w[DUAL_IDE].cmds);

    /* The run-state machinery does not wait for the stalled vCPU. */
    assert_int_equal(dual_guest_command(&G, "stop"), 0);
    assert_int_equal(rsdm_sim_wait_value(&G.sim, G.sim.runstate, "paused holds=paused", WAIT_MS), 0);
    assert_int_equal(dual_guest_command(&G, "continue"), 0);
    assert_int_equal(rsdm_sim_wait_value(&G.sim, G.sim.runstate, "running holds=", WAIT_MS), 0);
    a = atomic_load(&w[DUAL_AHCI].cmds);
    assert_true(dual_writer_wait(&w[DUAL_AHCI], a + 20, WAIT_MS));
    save_and_restore();
    a = atomic_load(&w[DUAL_AHCI].cmds);
    assert_true(dual_writer_wait(&w[DUAL_AHCI], a + 20, WAIT_MS));
    assert_true(atomic_load(&w[DUAL_AHCI].cmds) >= a + 20);
    assert_true(atomic_load(&w[DUAL_IDE].cmds) <= ide0 + 1);
    printf("vCPU 0 stalled: IDE at %u commands; AHCI went on to %u through stop, continue and a "
           "save restored into a new rsdm-sim\n", ide0, atomic_load(&w[DUAL_AHCI].cmds));

    assert_int_equal(hv_fault_stall_vcpu(G.sim.dom, DUAL_IDE, false), 0);
    assert_true(dual_writer_wait(&w[DUAL_IDE], ide0 + 50, WAIT_MS));
    assert_true(atomic_load(&w[DUAL_IDE].cmds) >= ide0 + 50);
    for (unsigned d = 0; d < DUAL_DISKS; d++)
        if (dual_writer_join(&w[d]) < 0)
            fail_msg("%s: %s", dual_guest_vdev[d], w[d].err);
    assert_clean();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dropped_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stalled_vcpu, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

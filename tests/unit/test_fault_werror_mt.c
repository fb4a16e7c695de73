/*
 * Issue 13.4: bursts of EIO and ENOSPC while a guest writes to an IDE disk
 * (PIIX3, vCPU 0) and an AHCI disk (ICH9, vCPU 1) of a real rsdm-sim with
 * werror=stop.  The injection rules are switched on while the guest
 * writes (config file + SIGUSR1), the VM stops in io-error, `continue`
 * with the rule still on fails the re-issued write again (0-2 times: a
 * burst), then the rules are switched off and `continue` re-issues the
 * parked or halted write, which completes.  The
 * guest never sees an error; at the end every sector is read back through
 * both devices and both images are checked from the host: 0 lost, 0 stale,
 * 0 corrupted, no all-ones read.
 *
 * FAULT_WRITES sets the number of write commands (default 1,000, half per
 * disk); tests/faults/fault_werror_bursts runs 10,000.  Also: a config file
 * that does not parse, re-read on SIGUSR1, leaves the rules in force.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>

#include "../lib/dual_guest.h"

#define SECTORS 8192u
#define WAIT_MS 10000

static dual_guest G;

static uint64_t next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static dual_writer w[DUAL_DISKS];

static const char *policy = "werror = stop\nrerror = stop\n";

static void config_text(char *out, size_t len, const char *rule, unsigned target)
{
    size_t n = 0;
    for (unsigned d = 0; d < DUAL_DISKS; d++) {
        n += (size_t)snprintf(out + n, len - n, "[disk %s]\n%s", dual_guest_vdev[d], policy);
        if (rule && (target == d || target == DUAL_DISKS))
            n += (size_t)snprintf(out + n, len - n, "inject = %s\n", rule);
    }
}

static int setup(void **state)
{
    char cfg[512];
    config_text(cfg, sizeof(cfg), NULL, 0);
    *state = &G;
    return dual_guest_start(&G, "werror", SECTORS, cfg);
}

static int teardown(void **state)
{
    (void)state;
    int st = dual_guest_stop(&G);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return 0;
}

static void test_werror_bursts(void **state)
{
    (void)state;
    const char *env = getenv("FAULT_WRITES");
    unsigned total = env ? (unsigned)strtoul(env, NULL, 10) : 1000;
    assert_true(total >= 100);
    /* The writers are held at command counts the driver moves on, so that
     * every round has a burst whatever the scheduling. */
    unsigned n = total / 2, allow[DUAL_DISKS] = { 0, 0 };
    for (unsigned d = 0; d < DUAL_DISKS; d++)
        assert_int_equal(dual_writer_start(&w[d], &G, d, n, 0, 0x9e3779b97f4a7c15ull * (d + 1), 0),
                         0);
    static const char *const errnos[] = { "EIO", "ENOSPC" };
    uint64_t rng = 0x2545f4914f6cdd1dull;
    unsigned bursts = 0, by_errno[2] = { 0 }, on_disk[DUAL_DISKS + 1] = { 0 }, again = 0, repeats = 0;
    unsigned extra = 0;
    char cfg[512], rule[128];
    while (true) {
        /* A stretch of healthy writes on both disks. */
        for (unsigned d = 0; d < DUAL_DISKS; d++) {
            allow[d] += 5 + (unsigned)(next(&rng) % 30);
            allow[d] = allow[d] > n ? n : allow[d];
            dual_writer_allow(&w[d], allow[d]);
        }
        for (unsigned d = 0; d < DUAL_DISKS; d++) {
            dual_writer_wait(&w[d], allow[d], 60000);
            if (atomic_load(&w[d].cmds) != allow[d])
                fail_msg("%s: %u of %u commands done: %s", dual_guest_vdev[d],
                         atomic_load(&w[d].cmds), allow[d], w[d].err);
        }
        unsigned e = (unsigned)(next(&rng) % 2), target = (unsigned)(next(&rng) % 3);
        if (target < DUAL_DISKS && allow[target] == n)
            target = 1 - target;
        if (allow[0] == n && allow[1] == n)
            break;
        if (target == DUAL_DISKS && (allow[0] == n || allow[1] == n))
            target = allow[0] == n ? 1 : 0;
        snprintf(rule, sizeof(rule), "op=write errno=%s", errnos[e]);
        config_text(cfg, sizeof(cfg), rule, target);
        assert_int_equal(dual_guest_inject(&G, cfg), 0);
        /* One command more at a time on the targeted disk(s) until one
         * fails: a write started before rsdm read the rules succeeds. */
        int stopped = -1;
        for (int tries = 0; tries < 100 && stopped < 0; tries++) {
            bool room = false;
            for (unsigned d = 0; d < DUAL_DISKS; d++)
                if ((target == d || target == DUAL_DISKS) && allow[d] < n) {
                    dual_writer_allow(&w[d], ++allow[d]);
                    room = true;
                }
            assert_true(room);
            extra += tries > 0;
            stopped = rsdm_sim_wait_value(&G.sim, G.sim.runstate, "io-error holds=io-error", 200);
            if (stopped < 0)
                for (unsigned d = 0; d < DUAL_DISKS; d++)
                    dual_writer_wait(&w[d], allow[d], WAIT_MS);
        }
        assert_int_equal(stopped, 0);
        bursts++;
        by_errno[e]++;
        on_disk[target]++;
        unsigned k = (unsigned)(next(&rng) % 3);
        for (unsigned i = 0; i < k; i++) {
            /* The re-issued write fails again: one more error, one more stop. */
            long errs = dual_guest_log_count(&G, "write error: ");
            assert_true(errs >= 0);
            assert_int_equal(dual_guest_command(&G, "continue"), 0);
            assert_int_equal(dual_guest_log_wait(&G, "write error: ", errs, WAIT_MS), 0);
            assert_int_equal(rsdm_sim_wait_value(&G.sim, G.sim.runstate,
                                                 "io-error holds=io-error", WAIT_MS), 0);
            repeats++;
        }
        config_text(cfg, sizeof(cfg), NULL, 0);
        assert_int_equal(dual_guest_inject(&G, cfg), 0);
        assert_int_equal(dual_guest_resume(&G, 20, &again), 0);
    }
    for (unsigned d = 0; d < DUAL_DISKS; d++) {
        if (dual_writer_join(&w[d]) < 0)
            fail_msg("the guest saw an error on %s: %s", dual_guest_vdev[d], w[d].err);
    }
    char rs[128];
    dual_guest_runstate(&G, rs, sizeof(rs));
    assert_string_equal(rs, "running holds=");
    for (unsigned d = 0; d < DUAL_DISKS; d++) {
        assert_int_equal(dual_guest_verify(&G, d), 0);
        struct guest_check_counters c;
        guest_check_snapshot(&G.chk[d], &c);
        printf("%s: %u write commands, %llu sectors acknowledged, %llu read commands; "
               "lost %llu stale %llu corrupted %llu all-ones %llu\n",
               dual_guest_vdev[d], w[d].n, (unsigned long long)c.writes,
               (unsigned long long)c.reads, (unsigned long long)c.lost_writes,
               (unsigned long long)c.stale_overwrites, (unsigned long long)c.corrupted_reads,
               (unsigned long long)G.bus[d].all_ones_reads);
        assert_int_equal(c.writes, w[d].sectors);
        assert_true(c.reads > 0);
        assert_int_equal(c.lost_writes, 0);
        assert_int_equal(c.stale_overwrites, 0);
        assert_int_equal(c.corrupted_reads, 0);
        assert_int_equal(G.bus[d].all_ones_reads, 0);
    }
    assert_int_equal(G.ide.errors + G.ide.timeouts + G.hba.errors + G.hba.timeouts, 0);
    long errs = dual_guest_log_count(&G, "write error: ");
    printf("%u bursts (EIO %u, ENOSPC %u; hda %u, sda %u, both %u), each stopped in io-error "
           "and resumed; %u re-issues failed again under the rule; %ld write errors logged; "
           "%u extra continues; %u commands released before rsdm had read the rule\n",
           bursts, by_errno[0], by_errno[1], on_disk[0], on_disk[1], on_disk[2], repeats, errs,
           again, extra);
    assert_true(errs >= (long)(bursts + repeats));
    assert_true(repeats > 0);
    /* A round every 5-35 commands per disk, each with its burst. */
    assert_true(bursts >= total / 100);
    assert_true(by_errno[0] > 0 && by_errno[1] > 0);
}

static int write_4000_rc = -1;

static void *write_4000(void *arg)
{
    (void)arg;
    write_4000_rc = dual_guest_write(&G, DUAL_IDE, 4000, 1);
    return NULL;
}

/* A config file that does not parse, re-read on SIGUSR1, changes nothing:
 * the rule in force stays in force, and removing it later still works. */
static void test_bad_reload_keeps_rules(void **state)
{
    (void)state;
    char cfg[512];
    config_text(cfg, sizeof(cfg), "op=write errno=EIO sectors=4000-4000", DUAL_IDE);
    assert_int_equal(dual_guest_inject(&G, cfg), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, write_4000, NULL), 0);
    /* The rule is in force once the write stops the VM. */
    assert_int_equal(rsdm_sim_wait_value(&G.sim, G.sim.runstate, "io-error holds=io-error",
                                         WAIT_MS), 0);
    assert_int_equal(dual_guest_log_count(&G, "SIGUSR1: injection rules kept"), 0);
    assert_int_equal(dual_guest_inject(&G, "[disk hda]\nwerror = stop\n"
                                           "inject = op=write errno=EWHAT\n"), 0);
    assert_int_equal(dual_guest_log_wait(&G, "SIGUSR1: injection rules kept", 0, WAIT_MS), 0);
    /* The old rule still fails the re-issued write. */
    long errs = dual_guest_log_count(&G, "write error: ");
    assert_int_equal(dual_guest_command(&G, "continue"), 0);
    assert_int_equal(dual_guest_log_wait(&G, "write error: ", errs, WAIT_MS), 0);
    assert_int_equal(rsdm_sim_wait_value(&G.sim, G.sim.runstate, "io-error holds=io-error",
                                         WAIT_MS), 0);
    config_text(cfg, sizeof(cfg), NULL, 0);
    assert_int_equal(dual_guest_inject(&G, cfg), 0);
    assert_int_equal(dual_guest_resume(&G, 20, NULL), 0);
    pthread_join(t, NULL);
    assert_int_equal(write_4000_rc, 0);
    assert_int_equal(dual_guest_verify(&G, DUAL_IDE), 0);
    struct guest_check_counters c;
    guest_check_snapshot(&G.chk[DUAL_IDE], &c);
    assert_int_equal(c.writes, 1);
    assert_int_equal(c.lost_writes + c.stale_overwrites + c.corrupted_reads, 0);
    printf("a bad config re-read on SIGUSR1 kept the rule in force: the re-issued write failed "
           "again; once the rule was removed it completed\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_werror_bursts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_reload_keeps_rules, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

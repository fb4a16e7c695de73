/*
 * guest_hv_freeze/guest_hv_move, a vCPU's bus carried to another domain
 * of the same hypervisor as a migration does it: an access and an
 * interrupt wait (threads, as vCPUs) that found the source suspended or
 * gone run again on the destination, whose RAM holds what the source's
 * did; a failed move keeps the vCPU; a powered-off domain's access, or a
 * suspended one's on a bus not made movable, fails at once.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "hv.h"
#include "guest_hv.h"
#include "../lib/xsim_emu.h"

static int new_domain(void)
{
    int id = hv_domain_create(0, 2, 16, NULL);
    assert_true(id > 0);
    assert_int_equal(hv_domain_unpause((uint32_t)id), 0);
    return id;
}

static uint64_t null_reads(uint32_t domid)
{
    struct hv_domain_info i;
    assert_int_equal(hv_domain_info(domid, &i), 0);
    return i.null_reads;
}

struct vcpu_op {
    struct guest_bus *b;
    pthread_t t;
    _Atomic pid_t tid;
    int rc;
    uint8_t v8;
};

static void *port_read(void *arg)
{
    struct vcpu_op *op = arg;
    op->rc = guest_inb(op->b, 0x3f8, &op->v8);
    return NULL;
}

static void *line_wait(void *arg)
{
    struct vcpu_op *op = arg;
    atomic_store(&op->tid, gettid());
    op->rc = guest_irq_wait(op->b, 5, 10000);
    return NULL;
}

/* Until both threads found the source suspended and wait for the move
 * (bounded, as rsdm_sim_guest_step waits). */
static void until_waiting(struct guest_bus *b, unsigned long n)
{
    for (long spins = 0; guest_hv_move_waits(b) < n && spins < 100000000; spins++)
        sched_yield();
    assert_int_equal(guest_hv_move_waits(b), n);
}

/* Until the thread sleeps (bounded): in the interrupt wait, the only
 * place it can block before a freeze. */
static void until_asleep(struct vcpu_op *op)
{
    char path[64], stat[512] = "";
    for (long spins = 0; spins < 100000000; spins++, sched_yield()) {
        pid_t tid = atomic_load(&op->tid);
        if (!tid)
            continue;
        snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        size_t n = fread(stat, 1, sizeof(stat) - 1, f);
        fclose(f);
        stat[n] = 0;
        const char *close_paren = strrchr(stat, ')');
        if (close_paren && close_paren[1] == ' ' && close_paren[2] == 'S')
            return;
    }
    fail_msg("the interrupt-waiting thread never slept");
}

static void test_move_to_another_domain(void **state)
{
    (void)state;
    uint32_t from = (uint32_t)new_domain();
    struct guest_bus b;
    char err[256];
    assert_int_equal(guest_hv_open(&b, from, 1, 1u << 20, err, sizeof(err)), 0);
    guest_hv_set_movable(&b, true);
    uint64_t gpa = guest_ram_alloc(&b, 4096, 4096);
    uint8_t out[4096], in[4096];
    for (unsigned i = 0; i < sizeof(out); i++)
        out[i] = (uint8_t)(i * 7 + 1);
    assert_int_equal(guest_mem_write(&b, gpa, out, sizeof(out)), 0);

    /* Suspended: the access is held until the move, then runs on the
     * destination (its null handler answers, not the source's). */
    assert_int_equal(hv_domain_shutdown(from, SHUTDOWN_suspend), 0);
    assert_int_equal(hv_domain_wait(from, HV_WAIT_SHUT_DOWN, 10000), 0);
    struct vcpu_op rd = { .b = &b }, wt = { .b = &b };
    assert_int_equal(pthread_create(&wt.t, NULL, line_wait, &wt), 0);
    until_asleep(&wt);
    assert_int_equal(pthread_create(&rd.t, NULL, port_read, &rd), 0);
    until_waiting(&b, 1);
    guest_hv_freeze(&b);
    uint32_t to = (uint32_t)new_domain();
    struct hv_domain *fd = hv_domain_get(from), *td = hv_domain_get(to);
    uint64_t fs = 0, ts = 0;
    uint8_t *fr = hv_domain_ram(fd, &fs), *tr = hv_domain_ram(td, &ts);
    assert_true(fr && tr && fs == ts);
    memcpy(tr, fr, fs);
    hv_domain_put(fd);
    hv_domain_put(td);
    /* The source goes before the move, as after a migration: the wait on
     * its line ends and goes on on the destination. */
    assert_int_equal(hv_domain_destroy(from), 0);
    assert_int_equal(guest_hv_move(&b, to, err, sizeof(err)), 0);
    assert_int_equal(hv_set_isa_irq_level(to, 5, 1), 0);
    assert_int_equal(pthread_join(rd.t, NULL), 0);
    assert_int_equal(pthread_join(wt.t, NULL), 0);
    assert_int_equal(rd.rc, 0);
    assert_int_equal(rd.v8, 0xff);
    assert_int_equal(wt.rc, 1);
    assert_int_equal(guest_hv_move_waits(&b), 2);
    assert_int_equal(null_reads(to), 1);
    assert_int_equal(guest_mem_read(&b, gpa, in, sizeof(in)), 0);
    assert_memory_equal(in, out, sizeof(out));
    assert_int_equal(guest_irq_level(&b, 5), 1);

    /* A move to a domain that does not exist fails and keeps the vCPU. */
    guest_hv_freeze(&b);
    assert_int_equal(guest_hv_move(&b, 999, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no such domain"));
    assert_int_equal(guest_inb(&b, 0x3f8, &rd.v8), 0);
    assert_int_equal(null_reads(to), 2);

    /* Suspended, a bus not made movable fails at once, as before moves. */
    guest_hv_set_movable(&b, false);
    assert_int_equal(hv_domain_shutdown(to, SHUTDOWN_suspend), 0);
    assert_int_equal(guest_inb(&b, 0x3f8, &rd.v8), -1);
    assert_non_null(strstr(guest_bus_error(&b), strerror(ESHUTDOWN)));
    assert_int_equal(guest_hv_move_waits(&b), 2);
    assert_int_equal(hv_domain_resume(to, false), 0);
    guest_bus_close(&b);
    assert_int_equal(guest_hv_open(&b, to, 1, 1u << 20, err, sizeof(err)), 0);
    guest_hv_set_movable(&b, true);

    /* Powered off, nothing continues elsewhere: the access fails at once. */
    assert_int_equal(hv_domain_shutdown(to, SHUTDOWN_poweroff), 0);
    assert_int_equal(guest_inb(&b, 0x3f8, &rd.v8), -1);
    assert_non_null(strstr(guest_bus_error(&b), strerror(ESHUTDOWN)));
    guest_bus_close(&b);
    assert_int_equal(hv_domain_destroy(to), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_move_to_another_domain, xsim_fixture_setup, xsim_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

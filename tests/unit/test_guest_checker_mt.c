/*
 * The checker against a minimal in-test emulator of the xensim test disk,
 * on an in-process guest_bus (guest RAM is an array, port accesses call the
 * emulator directly): 100,000 writes from 2 vCPU threads, 0 lost.  Then
 * deliberately broken emulators, each caught by the counter meant for it:
 * a dropped write (lost_writes), a stale sector returned once
 * (corrupted_reads), all-ones answers (all_ones_reads), an old write
 * replayed (stale_overwrites), an IRQ while "stopped" (irqs_while_stopped).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "guest_check.h"
#include "guest_testdisk.h"

#define RAM_SIZE (4u << 20)
#define NSECT 1024u
#define NVCPU 2u

enum fault { F_NONE, F_DROP, F_STALE_READ, F_ALL_ONES, F_REPLAY, F_IRQ_STOPPED };

struct emu {
    pthread_mutex_t lock;
    uint8_t *ram;
    uint8_t disk[NSECT][512];
    uint8_t prev[NSECT][512];   /* the version before the current one */
    uint8_t prev2[NSECT][512];  /* and the one before that */
    unsigned nwritten[NSECT];
    uint32_t lba[NVCPU], gpa[NVCPU];
    uint8_t status[NVCPU];
    uint64_t irqs;
    enum fault fault;
    uint64_t ops, fault_at;
    bool fired;
};

static struct emu E;

static void do_cmd(unsigned v, uint8_t cmd)
{
    uint32_t lba = E.lba[v], gpa = E.gpa[v];
    E.status[v] = 1;
    if (lba >= NSECT || gpa > RAM_SIZE - 512)
        return;
    E.ops++;
    bool fire = !E.fired && E.ops >= E.fault_at;
    if (cmd == GUEST_TD_WRITE) {
        if (fire && E.fault == F_DROP) {
            E.fired = true;         /* acknowledged, never written */
        } else {
            memcpy(E.prev2[lba], E.prev[lba], 512);
            memcpy(E.prev[lba], E.disk[lba], 512);
            memcpy(E.disk[lba], E.ram + gpa, 512);
            E.nwritten[lba]++;
            if (fire && E.fault == F_REPLAY && E.nwritten[lba] >= 3) {
                /* A queued old write lands after the newer ones. */
                memcpy(E.disk[lba], E.prev2[lba], 512);
                E.fired = true;
            }
        }
    } else if (cmd == GUEST_TD_READ) {
        if (fire && E.fault == F_STALE_READ && E.nwritten[lba] >= 2) {
            memcpy(E.ram + gpa, E.prev[lba], 512);
            E.fired = true;
        } else {
            memcpy(E.ram + gpa, E.disk[lba], 512);
        }
    } else if (cmd != GUEST_TD_FLUSH) {
        return;
    }
    E.status[v] = 0;
    E.irqs++;
}

static int b_in(struct guest_bus *b, uint16_t port, unsigned size, uint32_t *val)
{
    (void)b;
    pthread_mutex_lock(&E.lock);
    unsigned v = (port - GUEST_TESTDISK_PORT) / 16, reg = (port - GUEST_TESTDISK_PORT) % 16;
    *val = size == 1 ? 0xff : size == 2 ? 0xffff : 0xffffffffu;
    if (port >= GUEST_TESTDISK_PORT && v < NVCPU && reg == 12) {
        *val = E.status[v];
        if (E.fault == F_ALL_ONES && !E.fired && E.ops >= E.fault_at) {
            *val = 0xff;
            E.fired = true;
        }
    }
    pthread_mutex_unlock(&E.lock);
    return 0;
}

static int b_out(struct guest_bus *b, uint16_t port, unsigned size, uint32_t val)
{
    (void)b;
    (void)size;
    pthread_mutex_lock(&E.lock);
    unsigned v = (port - GUEST_TESTDISK_PORT) / 16, reg = (port - GUEST_TESTDISK_PORT) % 16;
    if (port >= GUEST_TESTDISK_PORT && v < NVCPU) {
        if (reg == 0)
            E.lba[v] = val;
        else if (reg == 4)
            E.gpa[v] = val;
        else if (reg == 8)
            do_cmd(v, (uint8_t)val);
    }
    pthread_mutex_unlock(&E.lock);
    return 0;
}

static int b_mmio_r(struct guest_bus *b, uint64_t a, unsigned s, uint64_t *v)
{
    (void)a; (void)s;
    *v = ~0ull;
    return guest_bus_fail(b, "no MMIO on this bus");
}

static int b_mmio_w(struct guest_bus *b, uint64_t a, unsigned s, uint64_t v)
{
    (void)a; (void)s; (void)v;
    return guest_bus_fail(b, "no MMIO on this bus");
}

static int b_mem_r(struct guest_bus *b, uint64_t gpa, void *buf, size_t len)
{
    if (gpa > RAM_SIZE || len > RAM_SIZE - gpa)
        return guest_bus_fail(b, "RAM read beyond the end");
    pthread_mutex_lock(&E.lock);
    memcpy(buf, E.ram + gpa, len);
    pthread_mutex_unlock(&E.lock);
    return 0;
}

static int b_mem_w(struct guest_bus *b, uint64_t gpa, const void *buf, size_t len)
{
    if (gpa > RAM_SIZE || len > RAM_SIZE - gpa)
        return guest_bus_fail(b, "RAM write beyond the end");
    pthread_mutex_lock(&E.lock);
    memcpy(E.ram + gpa, buf, len);
    pthread_mutex_unlock(&E.lock);
    return 0;
}

static int b_irq_wait(struct guest_bus *b, unsigned gsi, int t)
{
    (void)b; (void)gsi; (void)t;
    return 0;
}

static int b_irq_level(struct guest_bus *b, unsigned gsi)
{
    (void)b; (void)gsi;
    return 0;
}

static uint64_t b_irq_count(struct guest_bus *b, unsigned gsi)
{
    (void)b;
    pthread_mutex_lock(&E.lock);
    uint64_t n = gsi == GUEST_TESTDISK_GSI ? E.irqs : 0;
    pthread_mutex_unlock(&E.lock);
    return n;
}

static const struct guest_bus_ops ops = {
    .pio_in = b_in, .pio_out = b_out, .mmio_read = b_mmio_r, .mmio_write = b_mmio_w,
    .mem_read = b_mem_r, .mem_write = b_mem_w, .irq_wait = b_irq_wait,
    .irq_level = b_irq_level, .irq_count = b_irq_count,
};

struct vcpu_arg {
    struct guest_testdisk d;
    uint64_t nwrites;
    int rc;
};

static void *vcpu_main(void *p)
{
    struct vcpu_arg *a = p;
    a->rc = guest_testdisk_workload(&a->d, a->nwrites);
    return NULL;
}

/* Run the workload on NVCPU threads; returns the counters. */
static void run(enum fault f, uint64_t fault_at, uint64_t per_vcpu,
                struct guest_check_counters *out, bool expect_ok)
{
    memset(&E, 0, sizeof(E));
    pthread_mutex_init(&E.lock, NULL);
    E.ram = calloc(1, RAM_SIZE);
    assert_non_null(E.ram);
    E.fault = f;
    E.fault_at = fault_at;
    struct guest_bus bus;
    guest_bus_init(&bus, &ops, NULL, 1u << 20, RAM_SIZE);
    struct guest_check chk;
    assert_int_equal(guest_check_init(&chk, &bus, NSECT), 0);
    struct vcpu_arg a[NVCPU];
    pthread_t t[NVCPU];
    for (unsigned v = 0; v < NVCPU; v++) {
        assert_int_equal(guest_testdisk_init(&a[v].d, &bus, &chk, v, NVCPU), 0);
        a[v].nwrites = per_vcpu;
        assert_int_equal(pthread_create(&t[v], NULL, vcpu_main, &a[v]), 0);
    }
    for (unsigned v = 0; v < NVCPU; v++)
        pthread_join(t[v], NULL);
    if (expect_ok)
        for (unsigned v = 0; v < NVCPU; v++)
            if (a[v].rc != 0)
                fail_msg("vCPU %u: %s", v, guest_bus_error(&bus));
    /* The image itself: every acknowledged-and-flushed sector current. */
    for (unsigned l = 0; l < NSECT; l++)
        guest_check_count(&chk, guest_check_classify(&chk, l, E.disk[l]));
    guest_check_snapshot(&chk, out);
    char json[1024];
    assert_true(guest_check_json(out, json, sizeof(json)) > 0);
    printf("fault %d: %s\n", (int)f, json);
    guest_check_destroy(&chk);
    guest_bus_close(&bus);
    pthread_mutex_destroy(&E.lock);
    free(E.ram);
}

static void test_clean_100k(void **state)
{
    (void)state;
    struct guest_check_counters c;
    run(F_NONE, 0, 50000, &c, true);
    assert_int_equal(c.writes, 100000);
    assert_true(c.reads >= 100000);
    assert_int_equal(c.lost_writes, 0);
    assert_int_equal(c.stale_overwrites, 0);
    assert_int_equal(c.corrupted_reads, 0);
    assert_int_equal(c.all_ones_reads, 0);
    assert_int_equal(c.irqs_while_stopped, 0);
}

static void test_drop_write(void **state)
{
    (void)state;
    struct guest_check_counters c;
    run(F_DROP, 5000, 5000, &c, true);
    assert_true(c.lost_writes >= 1);
    assert_int_equal(c.stale_overwrites, 0);
    assert_int_equal(c.corrupted_reads, 0);
}

static void test_stale_read(void **state)
{
    (void)state;
    struct guest_check_counters c;
    run(F_STALE_READ, 5000, 5000, &c, true);
    assert_int_equal(c.corrupted_reads, 1);
    assert_int_equal(c.lost_writes, 0);
    assert_int_equal(c.stale_overwrites, 0);
}

static void test_all_ones(void **state)
{
    (void)state;
    struct guest_check_counters c;
    run(F_ALL_ONES, 5000, 5000, &c, false);
    assert_true(c.all_ones_reads >= 1);
}

static void test_replay(void **state)
{
    (void)state;
    struct guest_check_counters c;
    run(F_REPLAY, 5000, 5000, &c, true);
    assert_true(c.stale_overwrites >= 1);
    assert_int_equal(c.lost_writes, 0);
}

static void test_irq_while_stopped(void **state)
{
    (void)state;
    memset(&E, 0, sizeof(E));
    pthread_mutex_init(&E.lock, NULL);
    E.ram = calloc(1, RAM_SIZE);
    assert_non_null(E.ram);
    struct guest_bus bus;
    guest_bus_init(&bus, &ops, NULL, 1u << 20, RAM_SIZE);
    struct guest_check chk;
    assert_int_equal(guest_check_init(&chk, &bus, NSECT), 0);
    struct guest_testdisk d;
    assert_int_equal(guest_testdisk_init(&d, &bus, &chk, 0, 1), 0);
    assert_int_equal(guest_testdisk_workload(&d, 100), 0);
    guest_check_set_dm_stopped(&chk, true);
    guest_testdisk_poll_irqs(&d);
    /* The broken device completes something while the dm says stopped. */
    pthread_mutex_lock(&E.lock);
    E.irqs++;
    pthread_mutex_unlock(&E.lock);
    guest_testdisk_poll_irqs(&d);
    guest_check_set_dm_stopped(&chk, false);
    struct guest_check_counters c;
    guest_check_snapshot(&chk, &c);
    assert_int_equal(c.irqs_while_stopped, 1);
    assert_int_equal(c.lost_writes, 0);
    guest_check_destroy(&chk);
    guest_bus_close(&bus);
    pthread_mutex_destroy(&E.lock);
    free(E.ram);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_100k),
        cmocka_unit_test(test_drop_write),
        cmocka_unit_test(test_stale_read),
        cmocka_unit_test(test_all_ones),
        cmocka_unit_test(test_replay),
        cmocka_unit_test(test_irq_while_stopped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

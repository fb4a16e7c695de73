/*
 * The simulated hypervisor under threads (run under TSan by
 * `make check-threads`): vCPU threads doing synchronous I/O against a
 * minimal emulator on its own thread, an interrupt raised by the emulator
 * and waited for by a guest thread, and pause references taken and dropped
 * by another thread meanwhile.  Every wait is bounded; no sleeps.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../lib/xsim_emu.h"

#include "hv.h"

#define T XSIM_EMU_WAIT_MS
#define ROUNDS 5000

struct vcpu_arg {
    struct hv_domain *d;
    unsigned int vcpu;
    int failures;
    int rc;
};

static void *vcpu_main(void *p)
{
    struct vcpu_arg *a = p;
    /* each vCPU owns 16 scratch registers: write, read back, compare */
    for (unsigned int i = 0; i < ROUNDS; i++) {
        uint16_t port = (uint16_t)(XSIM_EMU_PORT + a->vcpu * 16 + (i % 16));
        uint64_t v = ((uint64_t)a->vcpu << 24) | i;
        uint64_t w = v & 0xffffffff, r = 0;
        int rc = xsim_pio(a->d, a->vcpu, true, port, 4, &w);
        if (rc == 0)
            rc = xsim_pio(a->d, a->vcpu, false, port, 4, &r);
        if (rc) {
            a->rc = rc;
            return NULL;
        }
        if (r != (v & 0xffffffff))
            a->failures++;
        uint64_t m = 0;
        if (xsim_mmio(a->d, a->vcpu, false, XSIM_EMU_MMIO + 8 * (128 + a->vcpu),
                      8, &m) != 0)
            a->failures++;
    }
    return NULL;
}

struct pauser_arg {
    uint32_t dom;
    atomic_bool stop;
    unsigned int cycles;
    int rc;
};

static void *pauser_main(void *p)
{
    struct pauser_arg *a = p;
    xc_interface *xc = xc_interface_open(NULL, NULL, 0);
    if (!xc) {
        a->rc = -errno;
        return NULL;
    }
    while (!atomic_load(&a->stop)) {
        if (xc_domain_pause(xc, a->dom) < 0 || xc_domain_unpause(xc, a->dom) < 0) {
            a->rc = -errno;
            break;
        }
        a->cycles++;
    }
    xc_interface_close(xc);
    return NULL;
}

static void test_vcpus_and_pauser(void **state)
{
    (void)state;
    int id = hv_domain_create(0, 4, 16, "mt");
    assert_true(id > 0);
    uint32_t dom = (uint32_t)id;
    struct hv_domain *d = hv_domain_get(dom);
    struct xsim_emu e;
    assert_int_equal(xsim_emu_setup(&e, dom), 0);
    assert_int_equal(xsim_emu_start_thread(&e), 0);
    assert_int_equal(hv_domain_unpause(dom), 0);

    struct pauser_arg pa = { .dom = dom };
    atomic_init(&pa.stop, false);
    pthread_t pt, vt[4];
    struct vcpu_arg va[4];
    assert_int_equal(pthread_create(&pt, NULL, pauser_main, &pa), 0);
    for (unsigned int i = 0; i < 4; i++) {
        va[i] = (struct vcpu_arg){ .d = d, .vcpu = i };
        assert_int_equal(pthread_create(&vt[i], NULL, vcpu_main, &va[i]), 0);
    }
    for (unsigned int i = 0; i < 4; i++) {
        pthread_join(vt[i], NULL);
        assert_int_equal(va[i].rc, 0);
        assert_int_equal(va[i].failures, 0);
    }
    atomic_store(&pa.stop, true);
    pthread_join(pt, NULL);
    assert_int_equal(pa.rc, 0);

    struct hv_domain_info info;
    assert_int_equal(hv_domain_info(dom, &info), 0);
    assert_int_equal(info.pause_count, 0);
    assert_int_equal(info.vcpus_pending, 0);
    assert_int_equal(info.null_reads + info.null_writes, 0);
    assert_int_equal(info.ioreqs_sent, 4u * ROUNDS * 3);
    xsim_emu_stop_thread(&e);
    assert_int_equal(e.handled, 4u * ROUNDS * 3);
    xsim_emu_close(&e);
    hv_domain_put(d);
    hv_domain_destroy(dom);
}

/* The emulator raises ISA IRQ 5 when the guest writes port 0x50ff; a guest
 * thread waits for the edge. */
static void irq_device(struct xsim_emu *e, unsigned int vcpu, ioreq_t *req,
                       void *opaque)
{
    (void)opaque;
    xsim_emu_scratch(e, vcpu, req, NULL);
    if (req->type == IOREQ_TYPE_PIO && req->addr == XSIM_EMU_PORT + 0xff &&
        req->dir == IOREQ_WRITE) {
        xendevicemodel_set_isa_irq_level(e->dm, (domid_t)e->domid, 5, 1);
        xendevicemodel_set_isa_irq_level(e->dm, (domid_t)e->domid, 5, 0);
    }
}

struct irq_arg {
    struct hv_domain *d;
    unsigned int got;
    int rc;
};

static void *irq_guest(void *p)
{
    struct irq_arg *a = p;
    struct hv_irq_state s;
    hv_irq_state(a->d, &s);
    uint64_t seq = s.seq, edges = s.edges[5];
    for (unsigned int i = 0; i < 100; i++) {
        uint64_t v = i;
        int rc = xsim_pio(a->d, 1, true, XSIM_EMU_PORT + 0xff, 1, &v);
        if (rc) {
            a->rc = rc;
            return NULL;
        }
        /* the edge was raised before the write was answered */
        hv_irq_state(a->d, &s);
        while (s.edges[5] == edges) {
            rc = hv_irq_wait(a->d, &seq, T);
            if (rc) {
                a->rc = rc;
                return NULL;
            }
            hv_irq_state(a->d, &s);
        }
        edges = s.edges[5];
        a->got++;
    }
    return NULL;
}

static void test_irq_across_threads(void **state)
{
    (void)state;
    int id = hv_domain_create(0, 2, 16, "irq");
    assert_true(id > 0);
    uint32_t dom = (uint32_t)id;
    struct hv_domain *d = hv_domain_get(dom);
    struct xsim_emu e;
    assert_int_equal(xsim_emu_setup(&e, dom), 0);
    e.fn = irq_device;
    assert_int_equal(xsim_emu_start_thread(&e), 0);
    assert_int_equal(hv_domain_unpause(dom), 0);
    struct irq_arg a = { .d = d };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, irq_guest, &a), 0);
    pthread_join(t, NULL);
    assert_int_equal(a.rc, 0);
    assert_int_equal(a.got, 100);
    struct hv_irq_state s;
    assert_int_equal(hv_irq_state(d, &s), 0);
    assert_int_equal(s.edges[5], 100);
    assert_int_equal(s.level[5], 0);
    xsim_emu_close(&e);
    hv_domain_put(d);
    hv_domain_destroy(dom);
}

/* A vCPU blocked on a pause wakes when another thread unpauses. */
struct wait_arg {
    struct hv_domain *d;
    int rc;
};

static void *runnable_waiter(void *p)
{
    struct wait_arg *a = p;
    a->rc = hv_vcpu_wait_runnable(a->d, 0, T);
    return NULL;
}

static void test_unpause_wakes(void **state)
{
    (void)state;
    int id = hv_domain_create(0, 1, 4, "wake");
    assert_true(id > 0);
    struct hv_domain *d = hv_domain_get((uint32_t)id);
    struct wait_arg a = { .d = d, .rc = 1 };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, runnable_waiter, &a), 0);
    assert_int_equal(hv_domain_unpause((uint32_t)id), 0);
    pthread_join(t, NULL);
    assert_int_equal(a.rc, 0);
    hv_domain_put(d);
    hv_domain_destroy((uint32_t)id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_vcpus_and_pauser, xsim_fixture_setup, xsim_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_irq_across_threads, xsim_fixture_setup, xsim_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_unpause_wakes, xsim_fixture_setup, xsim_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

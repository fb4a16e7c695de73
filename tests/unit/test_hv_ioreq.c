/*
 * The simulated hypervisor's ioreq servers, driven through the real Xen
 * library API (xensim's implementation linked in) by a minimal emulator,
 * with the guest side on the in-process hv_vcpu_io API.  Single-threaded:
 * each step is submitted, taken, answered and collected in a fixed order,
 * so nothing depends on timing.
 *
 * Proves: the order rules of reference §1.2 (vp_eport only on enable with
 * the page mapped, 8 servers, bufioreq modes, range errors, highest enabled
 * server wins), null handling while disabled with per-range hit counters,
 * a pending request surviving a disable, SHUTDOWN_suspend deferred by an
 * outstanding request, a server's destroy ending a pending wait (and so a
 * deferred shutdown), a backwards state move crashing the domain, and the
 * CF8/CFC translation into PCI_CONFIG.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#include "../lib/xsim_emu.h"

#include <xen/hvm/dm_op.h>
#include <xen/hvm/hvm_op.h>
#include <xen/memory.h>
#include <xen/sched.h>

#include "hv.h"

#define T XSIM_EMU_WAIT_MS

static uint32_t new_domain(unsigned int vcpus)
{
    int id = hv_domain_create(0, vcpus, 16, NULL);
    assert_true(id > 0);
    assert_int_equal(hv_domain_unpause((uint32_t)id), 0);   /* created paused */
    return (uint32_t)id;
}

static ioreq_t pio(bool write, uint16_t port, unsigned int size, uint64_t v)
{
    ioreq_t r;
    memset(&r, 0, sizeof(r));
    r.type = IOREQ_TYPE_PIO;
    r.addr = port;
    r.size = size;
    r.count = 1;
    r.dir = write ? IOREQ_WRITE : IOREQ_READ;
    r.data = v;
    return r;
}

/* A write then a read of the scratch register at port on vCPU vcpu, each
 * answered by the emulator: the server works end to end. */
static void round_trip(struct hv_domain *d, struct xsim_emu *e, unsigned int vcpu,
                       uint16_t port, uint64_t v)
{
    ioreq_t r = pio(true, port, 2, v);
    assert_int_equal(hv_vcpu_io_submit(d, vcpu, &r, T), 0);
    assert_int_equal(xsim_emu_poll(e, T), 1);
    assert_int_equal(hv_vcpu_io_wait(d, vcpu, &r, T), 0);
    r = pio(false, port, 2, 0);
    assert_int_equal(hv_vcpu_io_submit(d, vcpu, &r, T), 0);
    assert_int_equal(xsim_emu_poll(e, T), 1);
    assert_int_equal(hv_vcpu_io_wait(d, vcpu, &r, T), 0);
    assert_int_equal(r.data, v);
}

/* §1.2 steps 4-9: vp_eport appears only on enable, and only if the pages
 * were mapped first; the I/O of a server enabled too early fails as Xen's
 * "bad event channel". */
static void test_order_vp_eport(void **state)
{
    (void)state;
    uint32_t dom = new_domain(2);
    struct hv_domain *d = hv_domain_get(dom);
    struct xsim_emu e;
    assert_int_equal(xsim_emu_open(&e, dom, HVM_IOREQSRV_BUFIOREQ_OFF), 0);
    assert_int_equal(e.nr_vcpus, 2);
    assert_int_equal(xendevicemodel_map_io_range_to_ioreq_server(
                         e.dm, dom, e.id, 0, 0x5000, 0x50ff), 0);
    /* mapped but not enabled: no vp_eport yet */
    assert_int_equal(e.shared->vcpu_ioreq[0].vp_eport, 0);
    assert_int_equal(xsim_emu_set_state(&e, true), 0);
    assert_int_not_equal(e.shared->vcpu_ioreq[0].vp_eport, 0);
    assert_int_not_equal(e.shared->vcpu_ioreq[1].vp_eport, 0);
    assert_int_not_equal(e.shared->vcpu_ioreq[0].vp_eport,
                         e.shared->vcpu_ioreq[1].vp_eport);
    assert_int_equal(xsim_emu_bind(&e), 0);

    round_trip(d, &e, 1, 0x5004, 0xbeef);

    /* A second server enabled before mapping its pages never gets
     * vp_eport values, so Xen refuses to send to it. */
    xendevicemodel_handle *dm = xendevicemodel_open(NULL, 0);
    xenforeignmemory_handle *fm = xenforeignmemory_open(NULL, 0);
    ioservid_t id2;
    assert_int_equal(xendevicemodel_create_ioreq_server(dm, dom, 0, &id2), 0);
    assert_int_equal(id2, e.id + 1);
    assert_int_equal(xendevicemodel_map_io_range_to_ioreq_server(
                         dm, dom, id2, 0, 0x6000, 0x6007), 0);
    assert_int_equal(xendevicemodel_set_ioreq_server_state(dm, dom, id2, 1), 0);
    void *addr = NULL;
    xenforeignmemory_resource_handle *res = xenforeignmemory_map_resource(
        fm, dom, XENMEM_resource_ioreq_server, id2,
        XENMEM_resource_ioreq_server_frame_ioreq(0), 1, &addr,
        PROT_READ | PROT_WRITE, 0);
    assert_non_null(res);
    shared_iopage_t *sp = addr;
    assert_int_equal(sp->vcpu_ioreq[0].vp_eport, 0);
    hv_log_quiet(true);
    ioreq_t r = pio(false, 0x6000, 1, 0);
    assert_int_equal(hv_vcpu_io(d, 0, &r, T), -EIO);
    hv_log_quiet(false);
    /* disable + enable with the page mapped fixes it */
    assert_int_equal(xendevicemodel_set_ioreq_server_state(dm, dom, id2, 0), 0);
    assert_int_equal(xendevicemodel_set_ioreq_server_state(dm, dom, id2, 1), 0);
    assert_int_not_equal(sp->vcpu_ioreq[0].vp_eport, 0);

    xenforeignmemory_unmap_resource(fm, res);
    xendevicemodel_destroy_ioreq_server(dm, dom, id2);
    xendevicemodel_close(dm);
    xenforeignmemory_close(fm);
    xsim_emu_close(&e);
    hv_domain_put(d);
    hv_domain_destroy(dom);
}

/* 8 servers per domain; bufioreq modes; resource frames. */
static void test_server_limits(void **state)
{
    (void)state;
    uint32_t dom = new_domain(1);
    xendevicemodel_handle *dm = xendevicemodel_open(NULL, 0);
    xenforeignmemory_handle *fm = xenforeignmemory_open(NULL, 0);
    ioservid_t id;
    assert_int_equal(xendevicemodel_create_ioreq_server(dm, dom, 3, &id), -1);
    assert_int_equal(errno, EINVAL);
    for (unsigned int i = 0; i < 8; i++) {
        assert_int_equal(xendevicemodel_create_ioreq_server(dm, dom, i % 3, &id), 0);
        assert_int_equal(id, i);
    }
    assert_int_equal(xendevicemodel_create_ioreq_server(dm, dom, 0, &id), -1);
    assert_int_equal(errno, ENOSPC);
    /* lowest free slot is reused */
    assert_int_equal(xendevicemodel_destroy_ioreq_server(dm, dom, 4), 0);
    assert_int_equal(xendevicemodel_create_ioreq_server(dm, dom, 0, &id), 0);
    assert_int_equal(id, 4);
    assert_int_equal(xendevicemodel_destroy_ioreq_server(dm, dom, 9), -1);
    assert_int_equal(errno, ENOENT);

    /* frame 0 (buffered ring) exists only with bufioreq on */
    void *a = NULL;
    assert_null(xenforeignmemory_map_resource(fm, dom, XENMEM_resource_ioreq_server,
                                              0, 0, 1, &a, PROT_READ, 0));
    assert_int_equal(errno, ENOENT);
    a = NULL;
    xenforeignmemory_resource_handle *r = xenforeignmemory_map_resource(
        fm, dom, XENMEM_resource_ioreq_server, 1, 0, 2, &a,
        PROT_READ | PROT_WRITE, 0);
    assert_non_null(r);
    xenforeignmemory_unmap_resource(fm, r);
    a = NULL;
    assert_null(xenforeignmemory_map_resource(fm, dom, XENMEM_resource_ioreq_server,
                                              1, 1, 2, &a, PROT_READ, 0));
    assert_int_equal(errno, EINVAL);

    /* bufioreq port only with a ring */
    evtchn_port_t bp = 99;
    assert_int_equal(xendevicemodel_get_ioreq_server_info(dm, dom, 0, NULL, NULL, &bp), 0);
    assert_int_equal(bp, 0);
    assert_int_equal(xendevicemodel_get_ioreq_server_info(dm, dom, 1, NULL, NULL, &bp), 0);
    assert_int_not_equal(bp, 0);

    /* the largest domain still gets 8 servers with rings: 8 x 129 ports */
    uint32_t big = new_domain(128);
    for (unsigned int i = 0; i < 8; i++)
        assert_int_equal(xendevicemodel_create_ioreq_server(dm, big, 2, &id), 0);
    unsigned int n;
    assert_int_equal(xendevicemodel_nr_vcpus(dm, big, &n), 0);
    assert_int_equal(n, 128);
    hv_domain_destroy(big);

    xendevicemodel_close(dm);
    xenforeignmemory_close(fm);
    hv_domain_destroy(dom);
}

/* Range rules: start > end, overlap in one server, overlap across servers,
 * unmap containment, PCI SBDF checks. */
static void test_ranges(void **state)
{
    (void)state;
    uint32_t dom = new_domain(1);
    xendevicemodel_handle *dm = xendevicemodel_open(NULL, 0);
    ioservid_t a, b;
    assert_int_equal(xendevicemodel_create_ioreq_server(dm, dom, 0, &a), 0);
    assert_int_equal(xendevicemodel_create_ioreq_server(dm, dom, 0, &b), 0);
    assert_int_equal(xendevicemodel_map_io_range_to_ioreq_server(dm, dom, a, 0, 0x10, 0x0f), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(xendevicemodel_map_io_range_to_ioreq_server(dm, dom, a, 0, 0x1f0, 0x1f7), 0);
    assert_int_equal(xendevicemodel_map_io_range_to_ioreq_server(dm, dom, a, 0, 0x1f7, 0x1f8), -1);
    assert_int_equal(errno, EEXIST);
    /* ports and MMIO are separate spaces */
    assert_int_equal(xendevicemodel_map_io_range_to_ioreq_server(dm, dom, a, 1, 0x1f0, 0x1f7), 0);
    /* other servers may overlap */
    assert_int_equal(xendevicemodel_map_io_range_to_ioreq_server(dm, dom, b, 0, 0x1f0, 0x1f7), 0);
    /* adjacent ranges merge, so a sub-range of the union unmaps */
    assert_int_equal(xendevicemodel_map_io_range_to_ioreq_server(dm, dom, a, 0, 0x1f8, 0x1ff), 0);
    assert_int_equal(xendevicemodel_unmap_io_range_from_ioreq_server(dm, dom, a, 0, 0x1f4, 0x1fb), 0);
    assert_int_equal(xendevicemodel_unmap_io_range_from_ioreq_server(dm, dom, a, 0, 0x1f0, 0x1f4), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(xendevicemodel_unmap_io_range_from_ioreq_server(dm, dom, a, 0, 0x300, 0x300), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(xendevicemodel_map_pcidev_to_ioreq_server(dm, dom, a, 0, 0, 3, 0), 0);
    assert_int_equal(xendevicemodel_map_pcidev_to_ioreq_server(dm, dom, a, 0, 0, 3, 0), -1);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(xendevicemodel_map_pcidev_to_ioreq_server(dm, dom, a, 0, 0, 32, 0), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(xendevicemodel_unmap_pcidev_from_ioreq_server(dm, dom, a, 0, 0, 3, 0), 0);
    /* 256 ranges per type */
    for (unsigned int i = 0; i < 256 - 1; i++)
        assert_int_equal(xendevicemodel_map_io_range_to_ioreq_server(
                             dm, dom, b, 1, 0x100000 + i * 16, 0x100000 + i * 16 + 7), 0);
    assert_int_equal(xendevicemodel_map_io_range_to_ioreq_server(dm, dom, b, 1, 0x200000, 0x200007), 0);
    assert_int_equal(xendevicemodel_map_io_range_to_ioreq_server(dm, dom, b, 1, 0x300000, 0x300007), -1);
    assert_int_equal(errno, ENOSPC);
    /* unknown domain / server */
    assert_int_equal(xendevicemodel_map_io_range_to_ioreq_server(dm, dom, 7, 0, 1, 1), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(xendevicemodel_map_io_range_to_ioreq_server(dm, 999, a, 0, 1, 1), -1);
    assert_int_equal(errno, ESRCH);
    xendevicemodel_close(dm);
    hv_domain_destroy(dom);
}

/* Highest enabled server wins; a disabled one is skipped; an access must
 * fit entirely in one range. */
static void test_selection(void **state)
{
    (void)state;
    uint32_t dom = new_domain(1);
    struct hv_domain *d = hv_domain_get(dom);
    struct xsim_emu lo, hi;
    assert_int_equal(xsim_emu_setup(&lo, dom), 0);
    assert_int_equal(xsim_emu_setup(&hi, dom), 0);
    assert_true(hi.id > lo.id);
    hi.scratch[0] = 0x11;
    lo.scratch[0] = 0x22;
    ioreq_t r = pio(false, 0x5000, 1, 0);
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r, T), 0);
    assert_int_equal(xsim_emu_poll(&hi, T), 1);
    assert_int_equal(hv_vcpu_io_wait(d, 0, &r, T), 0);
    assert_int_equal(r.data, 0x11);
    assert_int_equal(xsim_emu_set_state(&hi, false), 0);
    r = pio(false, 0x5000, 1, 0);
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r, T), 0);
    assert_int_equal(xsim_emu_poll(&lo, T), 1);
    assert_int_equal(hv_vcpu_io_wait(d, 0, &r, T), 0);
    assert_int_equal(r.data, 0x22);
    /* a 4-byte access straddling the end of the range is not claimed */
    r = pio(false, 0x50fe, 4, 0);
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r, T), 1);
    assert_int_equal(r.data, 0xffffffffu);
    xsim_emu_close(&hi);
    xsim_emu_close(&lo);
    hv_domain_put(d);
    hv_domain_destroy(dom);
}

/* §1.3: while disabled, reads are all-ones and writes vanish; the hits are
 * counted against the range the server had registered. */
static void test_null_while_disabled(void **state)
{
    (void)state;
    uint32_t dom = new_domain(1);
    struct hv_domain *d = hv_domain_get(dom);
    struct xsim_emu e;
    assert_int_equal(xsim_emu_setup(&e, dom), 0);
    uint64_t v = 0x77;
    assert_int_equal(hv_null_hits_total(dom), 0);
    assert_int_equal(xsim_emu_set_state(&e, false), 0);
    ioreq_t r = pio(true, 0x5001, 1, 0x77);
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r, T), 1);     /* completed at once */
    r = pio(false, 0x5001, 2, 0);
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r, T), 1);
    assert_int_equal(r.data, 0xffff);
    assert_int_equal(xsim_mmio(d, 0, false, XSIM_EMU_MMIO, 8, &v), 0);
    assert_int_equal(v, ~0ull);
    assert_int_equal(e.handled, 0);
    assert_int_equal(e.scratch[1], 0);          /* the write was dropped */
    assert_int_equal(hv_null_hits_total(dom), 3);
    struct hv_null_hits h[8];
    int n = hv_null_hits(dom, h, 8);
    assert_int_equal(n, 3);                     /* port, MMIO, PCI ranges */
    for (int i = 0; i < n; i++) {
        if (h[i].type == XEN_DMOP_IO_RANGE_PORT)
            assert_int_equal(h[i].hits, 2);
        if (h[i].type == XEN_DMOP_IO_RANGE_MEMORY)
            assert_int_equal(h[i].hits, 1);
    }
    /* an access nobody ever registered is null too, but not a lost one */
    r = pio(false, 0x7000, 1, 0);
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r, T), 1);
    assert_int_equal(r.data, 0xff);
    assert_int_equal(hv_null_hits_total(dom), 3);
    struct hv_domain_info info;
    assert_int_equal(hv_domain_info(dom, &info), 0);
    assert_int_equal(info.null_reads, 3);
    assert_int_equal(info.null_writes, 1);
    /* enabled again: served */
    assert_int_equal(xsim_emu_set_state(&e, true), 0);
    r = pio(false, 0x5001, 1, 0);
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r, T), 0);
    assert_int_equal(xsim_emu_poll(&e, T), 1);
    assert_int_equal(hv_vcpu_io_wait(d, 0, &r, T), 0);
    assert_int_equal(r.data, 0);
    xsim_emu_close(&e);
    hv_domain_put(d);
    hv_domain_destroy(dom);
}

/* A request sent before a disable stays pending and is completed by the
 * emulator's answer after it. */
static void test_pending_survives_disable(void **state)
{
    (void)state;
    uint32_t dom = new_domain(1);
    struct hv_domain *d = hv_domain_get(dom);
    struct xsim_emu e;
    assert_int_equal(xsim_emu_setup(&e, dom), 0);
    ioreq_t r = pio(false, 0x5010, 4, 0), got;
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r, T), 0);
    assert_int_equal(xsim_emu_take(&e, T, &got), 0);
    assert_int_equal(got.addr, 0x5010);
    assert_int_equal(xsim_emu_set_state(&e, false), 0);
    /* still outstanding: nothing came back yet */
    assert_int_equal(hv_vcpu_io_wait(d, 0, &r, 0), -ETIMEDOUT);
    struct hv_domain_info info;
    assert_int_equal(hv_domain_info(dom, &info), 0);
    assert_int_equal(info.vcpus_pending, 1);
    assert_int_equal(xsim_emu_answer(&e, 0, 0xcafe), 0);
    assert_int_equal(hv_vcpu_io_wait(d, 0, &r, T), 0);
    assert_int_equal(r.data, 0xcafe);
    assert_int_equal(hv_null_hits_total(dom), 0);
    xsim_emu_close(&e);
    hv_domain_put(d);
    hv_domain_destroy(dom);
}

/* SHUTDOWN_suspend completes only once no vCPU has a request outstanding
 * (Xen's shutdown deferral); new I/O is refused meanwhile. */
static void test_suspend_waits_for_ioreq(void **state)
{
    (void)state;
    uint32_t dom = new_domain(2);
    struct hv_domain *d = hv_domain_get(dom);
    struct xsim_emu e;
    assert_int_equal(xsim_emu_setup(&e, dom), 0);
    xc_interface *xc = xc_interface_open(NULL, NULL, 0);
    assert_non_null(xc);
    ioreq_t r = pio(false, 0x5000, 1, 0), got;
    assert_int_equal(hv_vcpu_io_submit(d, 1, &r, T), 0);
    assert_int_equal(xsim_emu_take(&e, T, &got), 1);
    assert_int_equal(xendevicemodel_shutdown(e.dm, dom, SHUTDOWN_suspend), 0);
    xc_dominfo_t di;
    assert_int_equal(xc_domain_getinfo(xc, dom, 1, &di), 1);
    assert_int_equal(di.domid, dom);
    assert_int_equal(di.shutdown, 0);           /* deferred */
    assert_int_equal(hv_domain_wait(dom, HV_WAIT_SHUT_DOWN, 0), -ETIMEDOUT);
    /* vCPU 0 has nothing outstanding and may not start anything new */
    ioreq_t r0 = pio(false, 0x5000, 1, 0);
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r0, T), -ESHUTDOWN);
    assert_int_equal(xsim_emu_answer(&e, 1, 5), 0);
    assert_int_equal(hv_vcpu_io_wait(d, 1, &r, T), 0);
    assert_int_equal(r.data, 5);
    assert_int_equal(hv_domain_wait(dom, HV_WAIT_SHUT_DOWN, T), 0);
    assert_int_equal(xc_domain_getinfo(xc, dom, 1, &di), 1);
    assert_int_equal(di.shutdown, 1);
    assert_int_equal(di.shutdown_reason, SHUTDOWN_suspend);
    xc_domaininfo_t dl;
    assert_int_equal(xc_domain_getinfolist(xc, dom, 1, &dl), 1);
    assert_true(dl.flags & XEN_DOMINF_shutdown);
    assert_int_equal((dl.flags >> XEN_DOMINF_shutdownshift) & XEN_DOMINF_shutdownmask,
                     SHUTDOWN_suspend);
    xc_interface_close(xc);
    xsim_emu_close(&e);
    hv_domain_put(d);
    hv_domain_destroy(dom);
}

/* An emulator that answers the write which powered the guest off and then
 * exits, destroying its server before the vCPU took the answer (rsdm on
 * S5): the destroy ends the vCPU's wait, as Xen's does
 * (hvm_ioreq_server_deinit drops the vCPU's pending state), so the
 * deferred shutdown completes.  Kept pending, the domain would never be
 * shut down and xl's monitor never woken. */
static void test_destroy_ends_pending(void **state)
{
    (void)state;
    uint32_t dom = new_domain(1);
    struct hv_domain *d = hv_domain_get(dom);
    struct xsim_emu e;
    assert_int_equal(xsim_emu_setup(&e, dom), 0);
    ioreq_t r = pio(true, 0x5004, 2, 0x2000), got;
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r, T), 0);
    assert_int_equal(xsim_emu_take(&e, T, &got), 0);
    assert_int_equal(xendevicemodel_shutdown(e.dm, dom, SHUTDOWN_poweroff), 0);
    assert_int_equal(hv_domain_wait(dom, HV_WAIT_SHUT_DOWN, 0), -ETIMEDOUT);   /* deferred */
    assert_int_equal(xsim_emu_answer(&e, 0, 0), 0);
    xsim_emu_close(&e);   /* unbind, disable, unmap, destroy: the vCPU has not looked yet */
    assert_int_equal(hv_domain_wait(dom, HV_WAIT_SHUT_DOWN, T), 0);
    struct hv_domain_info info;
    assert_int_equal(hv_domain_info(dom, &info), 0);
    assert_true(info.shut_down);
    assert_int_equal(info.shutdown_reason, SHUTDOWN_poweroff);
    assert_int_equal(info.vcpus_pending, 0);
    assert_int_equal(hv_vcpu_io_wait(d, 0, &r, T), 0);
    hv_domain_put(d);
    hv_domain_destroy(dom);

    /* Destroyed without an answer: the read completes as all-ones, and a
     * server created next (the same id) starts with nothing pending. */
    dom = new_domain(1);
    d = hv_domain_get(dom);
    assert_int_equal(xsim_emu_setup(&e, dom), 0);
    ioservid_t old_id = e.id;
    r = pio(false, 0x5008, 2, 0);
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r, T), 0);
    assert_int_equal(xsim_emu_take(&e, T, &got), 0);
    xsim_emu_close(&e);
    assert_int_equal(hv_vcpu_io_wait(d, 0, &r, T), 0);
    assert_int_equal(r.data & 0xffff, 0xffff);
    assert_int_equal(hv_domain_info(dom, &info), 0);
    assert_int_equal(info.vcpus_pending, 0);
    assert_int_equal(xsim_emu_setup(&e, dom), 0);
    assert_int_equal(e.id, old_id);
    round_trip(d, &e, 0, 0x5008, 0x1234);
    xsim_emu_close(&e);
    hv_domain_put(d);
    hv_domain_destroy(dom);
}

/* NONE -> READY -> IORESP_READY only: an emulator moving a slot backwards
 * crashes the domain. */
static void test_backwards_crashes(void **state)
{
    (void)state;
    uint32_t dom = new_domain(1);
    struct hv_domain *d = hv_domain_get(dom);
    struct xsim_emu e;
    assert_int_equal(xsim_emu_setup(&e, dom), 0);
    ioreq_t r = pio(false, 0x5000, 1, 0), got;
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r, T), 0);
    assert_int_equal(xsim_emu_take(&e, T, &got), 0);
    /* the vCPU saw INPROCESS ... */
    assert_int_equal(hv_vcpu_io_wait(d, 0, &r, 0), -ETIMEDOUT);
    hv_log_quiet(true);
    /* ... and now READY again */
    assert_int_equal(xsim_emu_force_state(&e, 0, STATE_IOREQ_READY), 0);
    assert_int_equal(hv_vcpu_io_wait(d, 0, &r, T), -ESHUTDOWN);
    hv_log_quiet(false);
    struct hv_domain_info info;
    assert_int_equal(hv_domain_info(dom, &info), 0);
    assert_true(info.crashed);
    assert_true(info.shut_down);
    assert_int_equal(info.shutdown_reason, SHUTDOWN_crash);
    xsim_emu_close(&e);
    hv_domain_put(d);
    hv_domain_destroy(dom);
}

/* Xen's CF8/CFC translation: a registered SBDF gets PCI_CONFIG with
 * addr = SBDF << 32 | reg; an unregistered one reads all-ones and reaches
 * nobody; the CF8 write itself is ordinary port I/O. */
static void test_pci_config(void **state)
{
    (void)state;
    uint32_t dom = new_domain(1);
    struct hv_domain *d = hv_domain_get(dom);
    struct xsim_emu e;
    assert_int_equal(xsim_emu_setup(&e, dom), 0);
    ioreq_t r, got;
    /* CF8 latch: 00:03.0 register 0x10 */
    r = pio(true, 0xcf8, 4, 0x80000000u | (3 << 11) | 0x10);
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r, T), 1);    /* nobody claims 0xcf8 */
    r = pio(false, 0xcfe, 2, 0);
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r, T), 0);
    assert_int_equal(xsim_emu_take(&e, T, &got), 0);
    assert_int_equal(got.type, IOREQ_TYPE_PCI_CONFIG);
    assert_int_equal(got.addr, ((uint64_t)XEN_DMOP_PCI_SBDF(0, 0, 3, 0) << 32) | 0x12);
    assert_int_equal(got.size, 2);
    assert_int_equal(xsim_emu_answer(&e, 0, 0xabcd), 0);
    assert_int_equal(hv_vcpu_io_wait(d, 0, &r, T), 0);
    assert_int_equal(r.data, 0xabcd);
    /* vendor/device through the helper */
    uint64_t v = 0;
    assert_int_equal(hv_vcpu_io_submit(d, 0, &(ioreq_t){ .type = IOREQ_TYPE_PIO,
                         .addr = 0xcf8, .size = 4, .count = 1, .dir = IOREQ_WRITE,
                         .data = 0x80000000u | (3 << 11) }, T), 1);
    r = pio(false, 0xcfc, 4, 0);
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r, T), 0);
    assert_int_equal(xsim_emu_poll(&e, T), 1);
    assert_int_equal(hv_vcpu_io_wait(d, 0, &r, T), 0);
    assert_int_equal(r.data, 0x12345678u);
    /* 00:04.0 is nobody's: all-ones, nothing sent */
    uint64_t before = e.handled;
    assert_int_equal(xsim_pci_cfg(d, 0, false, 0, 4, 0, 0, 4, &v), 0);
    assert_int_equal(v, 0xffffffffu);
    assert_int_equal(e.handled, before);
    /* CF8 without the enable bit: 0xCFC is plain port I/O (unclaimed) */
    r = pio(true, 0xcf8, 4, (3 << 11));
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r, T), 1);
    r = pio(false, 0xcfc, 4, 0);
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r, T), 1);
    assert_int_equal(r.data, 0xffffffffu);
    /* a server claiming 0xcf8 sees the latch write as PIO */
    assert_int_equal(xendevicemodel_map_io_range_to_ioreq_server(e.dm, dom, e.id, 0,
                                                                 0xcf8, 0xcfb), 0);
    r = pio(true, 0xcf8, 4, 0x80000000u | (3 << 11) | 4);
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r, T), 0);
    assert_int_equal(xsim_emu_take(&e, T, &got), 0);
    assert_int_equal(got.type, IOREQ_TYPE_PIO);
    assert_int_equal(got.addr, 0xcf8);
    assert_int_equal(xsim_emu_answer(&e, 0, 0), 0);
    assert_int_equal(hv_vcpu_io_wait(d, 0, &r, T), 0);
    xsim_emu_close(&e);
    hv_domain_put(d);
    hv_domain_destroy(dom);
}

/* Malformed guest requests are refused, never dispatched. */
static void test_bad_requests(void **state)
{
    (void)state;
    uint32_t dom = new_domain(1);
    struct hv_domain *d = hv_domain_get(dom);
    ioreq_t r = pio(false, 0x5000, 3, 0);
    assert_int_equal(hv_vcpu_io(d, 0, &r, T), -EINVAL);
    r = pio(false, 0x5000, 1, 0);
    r.count = 0;
    assert_int_equal(hv_vcpu_io(d, 0, &r, T), -EINVAL);
    r = pio(false, 0x5000, 1, 0);
    assert_int_equal(hv_vcpu_io(d, 1, &r, T), -EINVAL);      /* no such vCPU */
    r = pio(false, 0x5000, 1, 0);
    r.data_is_ptr = 1;
    r.data = 1ull << 40;
    assert_int_equal(hv_vcpu_io(d, 0, &r, T), -EFAULT);
    r.type = IOREQ_TYPE_INVALIDATE;
    assert_int_equal(hv_vcpu_io(d, 0, &r, T), -EINVAL);
    assert_int_equal(hv_domain_create(0, 0, 16, NULL), -EINVAL);
    assert_int_equal(hv_domain_create(0, 1, 0, NULL), -EINVAL);
    assert_int_equal(hv_domain_create(dom, 1, 16, NULL), -EEXIST);
    hv_domain_put(d);
    hv_domain_destroy(dom);
}

/* INVALIDATE goes to every enabled server and waits for all answers. */
static void test_invalidate(void **state)
{
    (void)state;
    uint32_t dom = new_domain(1);
    struct hv_domain *d = hv_domain_get(dom);
    struct xsim_emu a, b;
    assert_int_equal(xsim_emu_setup(&a, dom), 0);
    assert_int_equal(xsim_emu_setup(&b, dom), 0);
    ioreq_t ga, gb;
    /* submit from a helper-free path: invalidate blocks, so take first
     * requires the submission to be visible; use timeout 0 for the wait */
    assert_int_equal(hv_vcpu_invalidate(d, 0, 0), -ETIMEDOUT);
    assert_int_equal(xsim_emu_take(&a, T, &ga), 0);
    assert_int_equal(xsim_emu_take(&b, T, &gb), 0);
    assert_int_equal(ga.type, IOREQ_TYPE_INVALIDATE);
    assert_int_equal(gb.type, IOREQ_TYPE_INVALIDATE);
    assert_int_equal(xsim_emu_answer(&a, 0, 0), 0);
    ioreq_t r;
    assert_int_equal(hv_vcpu_io_wait(d, 0, &r, 0), -ETIMEDOUT);  /* b pending */
    assert_int_equal(xsim_emu_answer(&b, 0, 0), 0);
    assert_int_equal(hv_vcpu_io_wait(d, 0, &r, T), 0);
    xsim_emu_close(&b);
    xsim_emu_close(&a);
    hv_domain_put(d);
    hv_domain_destroy(dom);
}

/* A vCPU whose access is answered while the domain is paused does not
 * resume the guest until the unpause. */
static void test_answer_while_paused(void **state)
{
    (void)state;
    uint32_t dom = new_domain(1);
    struct hv_domain *d = hv_domain_get(dom);
    struct xsim_emu e;
    assert_int_equal(xsim_emu_setup(&e, dom), 0);
    ioreq_t r = pio(false, 0x5020, 1, 0), got;
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r, T), 0);
    assert_int_equal(xsim_emu_take(&e, T, &got), 0);
    assert_int_equal(hv_domain_pause(dom), 0);
    assert_int_equal(xsim_emu_answer(&e, 0, 0x42), 0);
    assert_int_equal(hv_vcpu_io_wait(d, 0, &r, 0), -ETIMEDOUT);
    /* the slot was consumed (NONE) even though the vCPU is held */
    assert_int_equal(xsim_emu_slot_state(&e, 0), STATE_IOREQ_NONE);
    ioreq_t r2 = pio(false, 0x5020, 1, 0);
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r2, 0), -EBUSY);
    assert_int_equal(hv_domain_unpause(dom), 0);
    assert_int_equal(hv_vcpu_io_wait(d, 0, &r, T), 0);
    assert_int_equal(r.data, 0x42);
    xsim_emu_close(&e);
    hv_domain_put(d);
    hv_domain_destroy(dom);
}

/* rep / data_is_ptr / df: the null handler fills the guest buffer with
 * all-ones; a server sees the request unchanged (count, df, the guest
 * address in data); an MMIO rep must fit the range over its whole extent,
 * downwards too when df is set. */
static void test_rep_and_df(void **state)
{
    (void)state;
    uint32_t dom = new_domain(1);
    struct hv_domain *d = hv_domain_get(dom);
    uint64_t size;
    uint8_t *ram = hv_domain_ram(d, &size);
    ioreq_t r = pio(false, 0x7000, 2, 0x1000);
    r.count = 8;
    r.data_is_ptr = 1;
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r, T), 1);
    for (unsigned int i = 0; i < 16; i++)
        assert_int_equal(ram[0x1000 + i], 0xff);
    assert_int_equal(ram[0x1000 + 16], 0);
    /* df: the buffer runs downwards from data */
    r = pio(false, 0x7000, 4, 0x2000);
    r.count = 4;
    r.df = 1;
    r.data_is_ptr = 1;
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r, T), 1);
    assert_int_equal(ram[0x2000 - 12], 0xff);
    assert_int_equal(ram[0x2000 + 3], 0xff);
    assert_int_equal(ram[0x2000 - 13], 0);
    assert_int_equal(ram[0x2000 + 4], 0);

    struct xsim_emu e;
    assert_int_equal(xsim_emu_setup(&e, dom), 0);
    ioreq_t got;
    /* MMIO rep fully inside: forwarded as is */
    r = (ioreq_t){ .type = IOREQ_TYPE_COPY, .addr = XSIM_EMU_MMIO + 0x100, .size = 4,
                   .count = 16, .dir = IOREQ_WRITE, .data_is_ptr = 1, .data = 0x3000 };
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r, T), 0);
    assert_int_equal(xsim_emu_take(&e, T, &got), 0);
    assert_int_equal(got.count, 16);
    assert_int_equal(got.data, 0x3000);
    assert_int_equal(got.data_is_ptr, 1);
    assert_int_equal(xsim_emu_answer(&e, 0, 0), 0);
    assert_int_equal(hv_vcpu_io_wait(d, 0, &r, T), 0);
    /* the same extent running below the range start (df) is not claimed */
    r = (ioreq_t){ .type = IOREQ_TYPE_COPY, .addr = XSIM_EMU_MMIO + 8, .size = 4,
                   .count = 16, .df = 1, .dir = IOREQ_WRITE, .data = 1 };
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r, T), 1);
    /* nor one running past its end */
    r = (ioreq_t){ .type = IOREQ_TYPE_COPY, .addr = XSIM_EMU_MMIO + 0x7f0, .size = 8,
                   .count = 4, .dir = IOREQ_READ };
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r, T), 1);
    assert_int_equal(r.data, ~0ull);
    assert_int_equal(e.handled, 0);
    xsim_emu_close(&e);
    hv_domain_put(d);
    hv_domain_destroy(dom);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_order_vp_eport, xsim_fixture_setup, xsim_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_server_limits, xsim_fixture_setup, xsim_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_ranges, xsim_fixture_setup, xsim_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_selection, xsim_fixture_setup, xsim_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_null_while_disabled, xsim_fixture_setup, xsim_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_pending_survives_disable, xsim_fixture_setup, xsim_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_suspend_waits_for_ioreq, xsim_fixture_setup, xsim_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_destroy_ends_pending, xsim_fixture_setup, xsim_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_backwards_crashes, xsim_fixture_setup, xsim_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_pci_config, xsim_fixture_setup, xsim_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests, xsim_fixture_setup, xsim_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_invalidate, xsim_fixture_setup, xsim_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_answer_while_paused, xsim_fixture_setup, xsim_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_rep_and_df, xsim_fixture_setup, xsim_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

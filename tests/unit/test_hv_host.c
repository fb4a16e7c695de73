/*
 * The simulated hypervisor's host-level services through the real Xen
 * library API (xensim's implementation linked in): restriction by
 * xentoolcore_restrict_all (including the real libxenstore handle, killed
 * by Debian's libxentoolcore), pause nesting and S3, interrupt lines as the
 * guest sees them, the log-dirty bitmap, foreign mapping of guest frames
 * and event-channel masking.  Single-threaded and deterministic.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "../lib/xsim_emu.h"

#include <xenguest.h>
#include <xenstore.h>
#include <xentoolcore.h>
#include <xen/hvm/dm_op.h>
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/params.h>
#include <xen/memory.h>

#include "hv.h"
#include "hv_proto.h"

#define T XSIM_EMU_WAIT_MS

static uint32_t new_domain(unsigned int vcpus, bool unpause)
{
    int id = hv_domain_create(0, vcpus, 16, NULL);
    assert_true(id > 0);
    if (unpause)
        assert_int_equal(hv_domain_unpause((uint32_t)id), 0);
    return (uint32_t)id;
}

/* A socket that accepts connections (kernel backlog) and never answers:
 * enough for xs_open(), which only connects. */
static int fake_xenstored(char *path, size_t len)
{
    snprintf(path, len, "%s/xs-socket", xsim_fixture_rundir());
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    assert_true(strlen(path) < sizeof(sa.sun_path));
    memcpy(sa.sun_path, path, strlen(path) + 1);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 8), 0);
    return fd;
}

static void test_restrict_all(void **state)
{
    (void)state;
    uint32_t a = new_domain(1, true), b = new_domain(1, true);
    char xsp[512];
    int lfd = fake_xenstored(xsp, sizeof(xsp));
    setenv("XENSTORED_PATH", xsp, 1);
    struct xs_handle *xs = xs_open(0);
    assert_non_null(xs);
    /* our end of libxenstore's connection */
    int peer = accept(lfd, NULL, NULL);
    assert_true(peer >= 0);
    struct pollfd pp = { .fd = peer, .events = POLLIN };
    assert_int_equal(poll(&pp, 1, 0), 0);

    /* a server in b, made by an unrestricted emulator, to offer a port */
    struct xsim_emu eb;
    assert_int_equal(xsim_emu_open(&eb, b, 0), 0);
    assert_int_equal(xsim_emu_set_state(&eb, true), 0);
    evtchn_port_t b_port = eb.shared->vcpu_ioreq[0].vp_eport;
    assert_int_not_equal(b_port, 0);

    xendevicemodel_handle *dm = xendevicemodel_open(NULL, 0);
    xenforeignmemory_handle *fm = xenforeignmemory_open(NULL, 0);
    xenevtchn_handle *xce = xenevtchn_open(NULL, 0);
    xc_interface *xc = xc_interface_open(NULL, NULL, 0);
    assert_non_null(dm);
    assert_non_null(fm);
    assert_non_null(xce);
    assert_non_null(xc);
    assert_int_equal(xc_domain_pause(xc, b), 0);
    assert_int_equal(xc_domain_unpause(xc, b), 0);

    assert_int_equal(xentoolcore_restrict_all((domid_t)a), 0);

    unsigned int n;
    assert_int_equal(xendevicemodel_nr_vcpus(dm, a, &n), 0);
    assert_int_equal(xendevicemodel_nr_vcpus(dm, b, &n), -1);
    assert_int_equal(errno, EPERM);
    ioservid_t id;
    assert_int_equal(xendevicemodel_create_ioreq_server(dm, b, 0, &id), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(xendevicemodel_set_isa_irq_level(dm, b, 4, 1), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(xendevicemodel_create_ioreq_server(dm, a, 0, &id), 0);

    xen_pfn_t gfn = 1;
    void *p = xenforeignmemory_map(fm, a, PROT_READ, 1, &gfn, NULL);
    assert_non_null(p);
    xenforeignmemory_unmap(fm, p, 1);
    assert_null(xenforeignmemory_map(fm, b, PROT_READ, 1, &gfn, NULL));
    assert_int_equal(errno, EPERM);
    void *ra = NULL;
    assert_null(xenforeignmemory_map_resource(fm, b, XENMEM_resource_ioreq_server,
                                              eb.id, 1, 1, &ra, PROT_READ, 0));
    assert_int_equal(errno, EPERM);

    assert_int_equal(xenevtchn_bind_interdomain(xce, b, b_port), -1);
    assert_int_equal(errno, EPERM);

    /* xenctrl and xenstore handles are dead */
    assert_int_equal(xc_domain_pause(xc, a), -1);
    /* libxenstore's socket was dup2'ed onto /dev/null: the daemon sees the
     * connection close, and requests fail at once */
    assert_int_equal(poll(&pp, 1, T), 1);
    char c;
    assert_int_equal(read(peer, &c, 1), 0);
    assert_null(xs_read(xs, XBT_NULL, "/local/domain/0/name", NULL));
    close(peer);

    /* restriction cannot be widened */
    assert_int_equal(xendevicemodel_restrict(dm, b), -1);
    assert_int_equal(errno, EPERM);

    xs_close(xs);
    close(lfd);
    unsetenv("XENSTORED_PATH");
    xendevicemodel_destroy_ioreq_server(dm, a, id);
    xc_interface_close(xc);
    xenevtchn_close(xce);
    xenforeignmemory_close(fm);
    xendevicemodel_close(dm);
    xsim_emu_close(&eb);
    hv_domain_destroy(a);
    hv_domain_destroy(b);
}

/* Xen's controller pause count: created paused, nests across the toolstack
 * and the dm, unpause below zero is EINVAL; a paused vCPU does not run. */
static void test_pause_nesting(void **state)
{
    (void)state;
    uint32_t dom = new_domain(1, false);
    struct hv_domain *d = hv_domain_get(dom);
    xc_interface *xc = xc_interface_open(NULL, NULL, 0);
    struct hv_domain_info i;
    assert_int_equal(hv_domain_info(dom, &i), 0);
    assert_int_equal(i.pause_count, 1);
    assert_true(i.paused);
    assert_int_equal(xc_domain_pause(xc, dom), 0);          /* the dm's reference */
    assert_int_equal(hv_domain_unpause(dom), 0);            /* the toolstack's */
    assert_int_equal(hv_domain_info(dom, &i), 0);
    assert_int_equal(i.pause_count, 1);
    assert_true(i.paused);
    ioreq_t r = { .type = IOREQ_TYPE_PIO, .addr = 0x80, .size = 1, .count = 1,
                  .dir = IOREQ_WRITE };
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r, 0), -EAGAIN);
    assert_int_equal(hv_vcpu_io(d, 0, &r, 0), -EAGAIN);
    assert_int_equal(hv_vcpu_wait_runnable(d, 0, 0), -ETIMEDOUT);
    xc_dominfo_t di;
    assert_int_equal(xc_domain_getinfo(xc, dom, 1, &di), 1);
    assert_int_equal(di.paused, 1);
    assert_int_equal(xc_domain_unpause(xc, dom), 0);
    assert_int_equal(hv_domain_wait(dom, HV_WAIT_UNPAUSED, 0), 0);
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r, 0), 1);    /* ran (null) */
    assert_int_equal(xc_domain_unpause(xc, dom), -1);
    assert_int_equal(errno, EINVAL);
    /* S3 through the HVM param stops the vCPUs too */
    uint64_t v;
    assert_int_equal(xc_hvm_param_set(xc, dom, HVM_PARAM_ACPI_S_STATE, 3), 0);
    assert_int_equal(xc_hvm_param_get(xc, dom, HVM_PARAM_ACPI_S_STATE, &v), 0);
    assert_int_equal(v, 3);
    assert_int_equal(hv_vcpu_wait_runnable(d, 0, 0), -ETIMEDOUT);
    assert_int_equal(xc_hvm_param_set(xc, dom, HVM_PARAM_ACPI_S_STATE, 0), 0);
    assert_int_equal(hv_vcpu_wait_runnable(d, 0, 0), 0);
    assert_int_equal(xc_hvm_param_set(xc, dom, HVM_PARAM_ACPI_S_STATE, 5), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(xc_hvm_param_set(xc, dom, HVM_NR_PARAMS, 0), -1);
    assert_int_equal(errno, EINVAL);
    /* stall fault: one vCPU descheduled */
    assert_int_equal(hv_fault_stall_vcpu(dom, 0, true), 0);
    assert_int_equal(hv_vcpu_wait_runnable(d, 0, 0), -ETIMEDOUT);
    assert_int_equal(hv_fault_stall_vcpu(dom, 0, false), 0);
    assert_int_equal(hv_vcpu_wait_runnable(d, 0, 0), 0);
    xc_interface_close(xc);
    hv_domain_put(d);
    hv_domain_destroy(dom);
}

static void test_irq_delivery(void **state)
{
    (void)state;
    uint32_t dom = new_domain(1, true);
    struct hv_domain *d = hv_domain_get(dom);
    xendevicemodel_handle *dm = xendevicemodel_open(NULL, 0);
    struct hv_irq_state s;
    uint64_t seq;
    assert_int_equal(hv_irq_state(d, &s), 0);
    seq = s.seq;
    assert_int_equal(hv_irq_wait(d, &seq, 0), -ETIMEDOUT);

    /* ISA IRQ 4: an edge per raise, level follows */
    assert_int_equal(xendevicemodel_set_isa_irq_level(dm, dom, 4, 1), 0);
    assert_int_equal(hv_irq_wait(d, &seq, T), 0);
    assert_int_equal(xendevicemodel_set_isa_irq_level(dm, dom, 4, 1), 0);  /* no new edge */
    assert_int_equal(hv_irq_state(d, &s), 0);
    assert_int_equal(s.level[4], 1);
    assert_int_equal(s.edges[4], 1);
    assert_int_equal(xendevicemodel_set_isa_irq_level(dm, dom, 4, 0), 0);
    assert_int_equal(xendevicemodel_set_isa_irq_level(dm, dom, 4, 1), 0);
    assert_int_equal(hv_irq_state(d, &s), 0);
    assert_int_equal(s.edges[4], 2);
    /* ISA IRQ 0 is GSI 2 */
    assert_int_equal(xendevicemodel_set_isa_irq_level(dm, dom, 0, 1), 0);
    assert_int_equal(hv_irq_state(d, &s), 0);
    assert_int_equal(s.level[2], 1);

    /* PCI INTx: 00:03.0 INTA -> GSI 28, link 3; route link 3 to IRQ 11 */
    assert_int_equal(xendevicemodel_set_pci_link_route(dm, dom, 3, 11), 0);
    assert_int_equal(xendevicemodel_set_pci_intx_level(dm, dom, 0, 0, 3, 0, 1), 0);
    assert_int_equal(hv_irq_state(d, &s), 0);
    assert_int_equal(s.level[28], 1);
    assert_int_equal(s.level[11], 1);
    assert_int_equal(s.link_route[3], 11);
    assert_int_equal(xendevicemodel_set_pci_intx_level(dm, dom, 0, 0, 3, 0, 0), 0);
    assert_int_equal(hv_irq_state(d, &s), 0);
    assert_int_equal(s.level[28], 0);
    assert_int_equal(s.level[11], 0);
    /* wired-OR: 00:00.0 INTB and 00:08.0 INTA share GSI 17 */
    assert_int_equal(xendevicemodel_set_pci_intx_level(dm, dom, 0, 0, 0, 1, 1), 0);
    assert_int_equal(xendevicemodel_set_pci_intx_level(dm, dom, 0, 0, 8, 0, 1), 0);
    assert_int_equal(xendevicemodel_set_pci_intx_level(dm, dom, 0, 0, 0, 1, 0), 0);
    assert_int_equal(hv_irq_state(d, &s), 0);
    assert_int_equal(s.level[17], 1);
    assert_int_equal(s.edges[17], 1);
    assert_int_equal(xendevicemodel_set_pci_intx_level(dm, dom, 0, 0, 8, 0, 0), 0);
    assert_int_equal(hv_irq_state(d, &s), 0);
    assert_int_equal(s.level[17], 0);

    /* MSI */
    uint64_t addr;
    uint32_t data;
    seq = s.seq;
    assert_int_equal(xendevicemodel_inject_msi(dm, dom, 0xfee00000, 0x4041), 0);
    assert_int_equal(hv_irq_wait(d, &seq, T), 0);
    assert_int_equal(hv_msi_pop(d, &addr, &data), 1);
    assert_int_equal(addr, 0xfee00000);
    assert_int_equal(data, 0x4041);
    assert_int_equal(hv_msi_pop(d, &addr, &data), 0);

    /* bad arguments, as Xen's dm.c checks them */
    assert_int_equal(xendevicemodel_set_isa_irq_level(dm, dom, 16, 1), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(xendevicemodel_set_pci_intx_level(dm, dom, 0, 1, 3, 0, 1), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(xendevicemodel_set_pci_intx_level(dm, dom, 0, 0, 3, 4, 1), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(xendevicemodel_set_pci_link_route(dm, dom, 4, 5), -1);
    assert_int_equal(errno, EINVAL);
    xendevicemodel_close(dm);
    hv_domain_put(d);
    hv_domain_destroy(dom);
}

static void test_dirty_bitmap(void **state)
{
    (void)state;
    uint32_t dom = new_domain(1, true);
    xendevicemodel_handle *dm = xendevicemodel_open(NULL, 0);
    unsigned long bm[4096 / 64];
    /* log-dirty off: accepted, nothing recorded (Xen returns at once) */
    assert_int_equal(xendevicemodel_modified_memory(dm, dom, 5, 3), 0);
    assert_int_equal(hv_logdirty_peek_clean(dom, bm, 4096), 0);
    assert_int_equal(hv_logdirty_enable(dom, true), 0);
    assert_int_equal(xendevicemodel_modified_memory(dm, dom, 5, 3), 0);
    struct xen_dm_op_modified_memory_extent ext[2] = {
        { .first_pfn = 100, .nr = 1 }, { .first_pfn = 4095, .nr = 1 } };
    assert_int_equal(xendevicemodel_modified_memory_bulk(dm, dom, ext, 2), 0);
    assert_int_equal(hv_logdirty_peek_clean(dom, bm, 4096), 5);
    for (unsigned int p = 0; p < 4096; p++) {
        bool want = (p >= 5 && p <= 7) || p == 100 || p == 4095;
        assert_int_equal(!!(bm[p / 64] & (1ul << (p % 64))), want);
    }
    assert_int_equal(hv_logdirty_peek_clean(dom, bm, 4096), 0);     /* cleaned */
    /* 16 MiB = 4096 frames */
    assert_int_equal(xendevicemodel_modified_memory(dm, dom, 4095, 2), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(hv_logdirty_enable(dom, false), 0);
    assert_int_equal(xendevicemodel_modified_memory(dm, dom, 1, 1), 0);
    assert_int_equal(hv_logdirty_peek_clean(dom, bm, 4096), 0);
    xendevicemodel_close(dm);
    hv_domain_destroy(dom);
}

/* Guest stores are dirty-logged by the hypervisor itself; they need running
 * vCPUs; a suspend is cancelled by a resume, which tells a guest with PV
 * drivers (callback IRQ) that its suspend was cancelled only when fast. */
static void test_guest_write_resume(void **state)
{
    (void)state;
    uint32_t dom = new_domain(1, false);
    unsigned long bm[4096 / 64];
    assert_int_equal(hv_guest_write(dom, 0x5000, "ab", 2), -EAGAIN);  /* paused */
    assert_int_equal(hv_domain_unpause(dom), 0);
    assert_int_equal(hv_logdirty_enable(dom, true), 0);
    assert_int_equal(hv_guest_write(dom, 0x5fff, "ab", 2), 0);        /* spans 5, 6 */
    assert_int_equal(hv_guest_write(dom, (16u << 20) - 1, "ab", 2), -EINVAL);
    assert_int_equal(hv_logdirty_peek_clean(dom, bm, 4096), 2);
    assert_true(bm[0] & (1ul << 5) && bm[0] & (1ul << 6));
    struct hv_domain *d = hv_domain_get(dom);
    uint8_t *ram = hv_domain_ram(d, NULL);
    assert_memory_equal(ram + 0x5fff, "ab", 2);
    hv_domain_put(d);

    struct hv_domain_info i;
    assert_int_equal(hv_domain_shutdown(dom, SHUTDOWN_suspend), 0);
    assert_int_equal(hv_domain_wait(dom, HV_WAIT_SHUT_DOWN, 1000), 0);
    assert_int_equal(hv_guest_write(dom, 0, "x", 1), -ESHUTDOWN);
    assert_int_equal(hv_domain_resume(dom, true), 0);     /* no PV drivers */
    assert_int_equal(hv_domain_info(dom, &i), 0);
    assert_false(i.shutting_down || i.shut_down);
    assert_int_equal(i.resumes, 1);
    assert_int_equal(i.suspend_cancels, 0);
    assert_int_equal(i.pause_count, 0);                   /* untouched */
    assert_int_equal(hv_guest_write(dom, 0, "x", 1), 0);
    assert_int_equal(hv_hvm_param_set(dom, HVM_PARAM_CALLBACK_IRQ, 1), 0);
    assert_int_equal(hv_domain_shutdown(dom, SHUTDOWN_suspend), 0);
    assert_int_equal(hv_domain_resume(dom, false), 0);
    /* libxl's call, through the library */
    assert_int_equal(hv_domain_shutdown(dom, SHUTDOWN_suspend), 0);
    xc_interface *xch = xc_interface_open(NULL, NULL, 0);
    assert_non_null(xch);
    assert_int_equal(xc_domain_resume(xch, dom, 1), 0);
    assert_int_equal(xc_domain_resume(xch, 9999, 1), -1);
    assert_int_equal(errno, ESRCH);
    xc_interface_close(xch);
    assert_int_equal(hv_domain_info(dom, &i), 0);
    assert_int_equal(i.resumes, 3);
    assert_int_equal(i.suspend_cancels, 1);
    assert_int_equal(hv_domain_resume(9999, true), -ESRCH);
    hv_domain_destroy(dom);
}

/* The simulated guest's own state (xensim's workload runner) is stored
 * like a guest's store, dirty-logged, but also while the domain is paused
 * or suspended: written when the runner stops with the domain paused in
 * io-error, it must go in a live migration's last round (a plain copy
 * left the destination with the state of the run's start). */
static void test_guest_state_write_paused(void **state)
{
    (void)state;
    uint32_t dom = new_domain(1, false);   /* paused */
    unsigned long bm[4096 / 64];
    assert_int_equal(hv_logdirty_enable(dom, true), 0);
    assert_int_equal(hv_guest_write(dom, 0x100000, "st", 2), -EAGAIN);
    assert_int_equal(hv_guest_state_write(dom, 0x100000, "st", 2), 0);
    assert_int_equal(hv_guest_state_write(dom, (16u << 20) - 1, "st", 2), -EINVAL);
    assert_int_equal(hv_logdirty_peek_clean(dom, bm, 4096), 1);
    assert_true(bm[0x100 / 64] & (1ul << (0x100 % 64)));
    struct hv_domain *d = hv_domain_get(dom);
    assert_memory_equal(hv_domain_ram(d, NULL) + 0x100000, "st", 2);
    hv_domain_put(d);
    assert_int_equal(hv_domain_unpause(dom), 0);
    assert_int_equal(hv_domain_shutdown(dom, SHUTDOWN_suspend), 0);
    assert_int_equal(hv_domain_wait(dom, HV_WAIT_SHUT_DOWN, 1000), 0);
    assert_int_equal(hv_guest_state_write(dom, 0x101000, "st", 2), 0);
    assert_int_equal(hv_logdirty_peek_clean(dom, bm, 4096), 1);
    assert_true(bm[0x101 / 64] & (1ul << (0x101 % 64)));
    assert_int_equal(hv_guest_state_write(9999, 0, "x", 1), -ESRCH);
    hv_domain_destroy(dom);
}

static void test_foreign_map(void **state)
{
    (void)state;
    uint32_t dom = new_domain(1, true);
    struct hv_domain *d = hv_domain_get(dom);
    xenforeignmemory_handle *fm = xenforeignmemory_open(NULL, 0);
    uint64_t size;
    uint8_t *ram = hv_domain_ram(d, &size);
    assert_int_equal(size, 16u << 20);
    xen_pfn_t gfns[3] = { 7, 3, 4 };
    int err[3] = { 1, 1, 1 };
    uint8_t *p = xenforeignmemory_map(fm, dom, PROT_READ | PROT_WRITE, 3, gfns, err);
    assert_non_null(p);
    assert_int_equal(err[0], 0);
    assert_int_equal(err[1], 0);
    assert_int_equal(err[2], 0);
    p[0] = 0xa7;
    p[4096 + 5] = 0xa3;
    p[2 * 4096 + 4095] = 0xa4;
    assert_int_equal(ram[7 * 4096], 0xa7);
    assert_int_equal(ram[3 * 4096 + 5], 0xa3);
    assert_int_equal(ram[4 * 4096 + 4095], 0xa4);
    ram[3 * 4096] = 0x33;                       /* and the other way */
    assert_int_equal(p[4096], 0x33);
    assert_int_equal(xenforeignmemory_unmap(fm, p, 3), 0);
    /* a frame beyond guest RAM: per-page error, or the whole call fails */
    xen_pfn_t bad[2] = { 1, 5000 };
    p = xenforeignmemory_map(fm, dom, PROT_READ, 2, bad, err);
    assert_non_null(p);
    assert_int_equal(err[0], 0);
    assert_int_equal(err[1], -EINVAL);
    xenforeignmemory_unmap(fm, p, 2);
    assert_null(xenforeignmemory_map(fm, dom, PROT_READ, 2, bad, NULL));
    assert_int_equal(errno, EINVAL);
    assert_null(xenforeignmemory_map(fm, 999, PROT_READ, 1, bad, NULL));
    assert_int_equal(errno, ESRCH);
    xenforeignmemory_close(fm);
    hv_domain_put(d);
    hv_domain_destroy(dom);
}

/* pending() masks the port; an event while masked waits for unmask. */
static void test_evtchn_mask(void **state)
{
    (void)state;
    uint32_t dom = new_domain(1, true);
    struct hv_domain *d = hv_domain_get(dom);
    struct xsim_emu e;
    assert_int_equal(xsim_emu_setup(&e, dom), 0);
    int fd = xenevtchn_fd(e.xce);
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    ioreq_t r = { .type = IOREQ_TYPE_PIO, .addr = XSIM_EMU_PORT, .size = 1,
                  .count = 1, .dir = IOREQ_WRITE, .data = 1 };
    assert_int_equal(poll(&pfd, 1, 0), 0);
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r, T), 0);
    assert_int_equal(poll(&pfd, 1, T), 1);
    int port = xenevtchn_pending(e.xce);
    assert_int_equal(port, (int)e.local[0]);
    /* masked now: answer, send another; the fd stays quiet */
    assert_int_equal(xsim_emu_answer(&e, 0, 0), 0);
    assert_int_equal(hv_vcpu_io_wait(d, 0, &r, T), 0);
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r, T), 0);
    assert_int_equal(poll(&pfd, 1, 0), 0);
    assert_int_equal(xenevtchn_unmask(e.xce, (evtchn_port_t)port), 0);
    assert_int_equal(poll(&pfd, 1, T), 1);
    assert_int_equal(xsim_emu_poll(&e, T), 1);
    assert_int_equal(hv_vcpu_io_wait(d, 0, &r, T), 0);
    /* notify on an unbound port fails */
    assert_int_equal(xenevtchn_notify(e.xce, 4000), -1);
    /* binding the same remote port twice fails as in Xen */
    assert_int_equal(xenevtchn_bind_interdomain(e.xce, dom,
                                                e.shared->vcpu_ioreq[0].vp_eport), -1);
    assert_int_equal(errno, EINVAL);
    /* fault: drop the next event; the request stays READY, unnoticed */
    assert_int_equal(hv_fault_drop_events(dom, 0, 1), 0);
    hv_log_quiet(true);
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r, T), 0);
    hv_log_quiet(false);
    assert_int_equal(poll(&pfd, 1, 0), 0);
    assert_int_equal(xsim_emu_slot_state(&e, 0), STATE_IOREQ_READY);
    ioreq_t got;
    assert_int_equal(xsim_emu_take(&e, 0, &got), 0);    /* found by scanning */
    assert_int_equal(xsim_emu_answer(&e, 0, 0), 0);
    assert_int_equal(hv_vcpu_io_wait(d, 0, &r, T), 0);
    xsim_emu_close(&e);
    hv_domain_put(d);
    hv_domain_destroy(dom);
}

/* Destroying a domain tears down its servers and ports under a live
 * emulator; the handles stay usable and report the domain gone. */
static void test_destroy_under_emulator(void **state)
{
    (void)state;
    uint32_t dom = new_domain(1, true);
    struct hv_domain *d = hv_domain_get(dom);
    struct xsim_emu e;
    assert_int_equal(xsim_emu_setup(&e, dom), 0);
    ioreq_t r = { .type = IOREQ_TYPE_PIO, .addr = XSIM_EMU_PORT, .size = 1,
                  .count = 1, .dir = IOREQ_READ };
    assert_int_equal(hv_vcpu_io_submit(d, 0, &r, T), 0);
    assert_int_equal(hv_domain_destroy(dom), 0);
    assert_int_equal(hv_vcpu_io_wait(d, 0, &r, T), -ESHUTDOWN);
    assert_int_equal(hv_domain_wait(dom, HV_WAIT_GONE, 0), 0);
    unsigned int n;
    assert_int_equal(xendevicemodel_nr_vcpus(e.dm, dom, &n), -1);
    assert_int_equal(errno, ESRCH);
    hv_domain_put(d);
    xsim_emu_close(&e);
    /* the domid can be reused */
    assert_int_equal(hv_domain_create(dom, 1, 1, "again"), (int)dom);
    hv_domain_destroy(dom);
}

/* A raw control-socket client, as the xensim CLI is. */
static int raw_call(uint32_t op, uint32_t a0, uint64_t a64, char *out, size_t outlen)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/%s", xsim_fixture_rundir(), HV_SOCKET_NAME);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (fd < 0 || strlen(path) >= sizeof(sa.sun_path))
        return -1;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return -1;
    struct hv_req q = { .magic = HV_PROTO_MAGIC, .op = op, .a32 = { a0 },
                        .a64 = { a64 } };
    struct hv_rsp r;
    int rc = hv_proto_send(fd, &q, sizeof(q), NULL, 0);
    if (rc == 0)
        rc = hv_proto_recv(fd, &r, sizeof(r), NULL, 0, NULL);
    if (rc == 0 && r.len) {
        if (r.len >= outlen)
            rc = -1;
        else if ((rc = hv_proto_recv(fd, out, r.len, NULL, 0, NULL)) == 0)
            out[r.len] = 0;
    }
    close(fd);
    return rc ? -1 : (int)r.err;
}

/* fault close-conn: the hypervisor drops one library connection; that
 * handle's calls fail from then on, the others keep working. */
static void test_fault_close_conn(void **state)
{
    (void)state;
    uint32_t dom = new_domain(1, true);
    xc_interface *xc = xc_interface_open(NULL, NULL, 0);
    xendevicemodel_handle *dm = xendevicemodel_open(NULL, 0);
    assert_int_equal(xc_domain_pause(xc, dom), 0);
    char text[4096];
    assert_int_equal(raw_call(HV_OP_CONN_LIST, 0, 0, text, sizeof(text)), 0);
    unsigned long long id = 0, k;
    char kind[32];
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        if (sscanf(line, "%llu %31s", &k, kind) == 2 && strcmp(kind, "xenctrl") == 0)
            id = k;
    assert_true(id > 0);
    assert_int_equal(raw_call(HV_OP_FAULT, HV_FAULT_CLOSE_CONN, id, text, sizeof(text)), 0);
    assert_int_equal(raw_call(HV_OP_FAULT, HV_FAULT_CLOSE_CONN, 999999, text, sizeof(text)),
                     ENOENT);
    assert_int_equal(xc_domain_unpause(xc, dom), -1);
    unsigned int n;
    assert_int_equal(xendevicemodel_nr_vcpus(dm, dom, &n), 0);
    assert_int_equal(n, 1);
    xc_interface_close(xc);
    xendevicemodel_close(dm);
    hv_domain_destroy(dom);
}

/* A client that sends requests and never reads the answers is dropped once
 * its socket buffer is full; the control socket keeps serving the others. */
static void test_client_not_reading(void **state)
{
    (void)state;
    uint32_t dom = new_domain(1, true);
    char path[300];
    snprintf(path, sizeof(path), "%s/%s", xsim_fixture_rundir(), HV_SOCKET_NAME);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    assert_true(fd >= 0 && strlen(path) < sizeof(sa.sun_path));
    memcpy(sa.sun_path, path, strlen(path) + 1);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct hv_req q = { .magic = HV_PROTO_MAGIC, .op = HV_OP_NR_VCPUS, .domid = dom };
    hv_log_quiet(true);
    int rc = 0;
    unsigned int sent;
    for (sent = 0; sent < 1000000 && rc == 0; sent++)
        rc = hv_proto_send(fd, &q, sizeof(q), NULL, 0);
    hv_log_quiet(false);
    assert_true(rc == -EPIPE || rc == -ECONNRESET);
    close(fd);
    xendevicemodel_handle *dm = xendevicemodel_open(NULL, 0);
    unsigned int n = 0;
    assert_int_equal(xendevicemodel_nr_vcpus(dm, dom, &n), 0);
    assert_int_equal(n, 1);
    xendevicemodel_close(dm);
    hv_domain_destroy(dom);
}

/* Domain ids as Xen hands them out: a destroyed domain's id is not given to
 * the next domain (its dm may still be tearing down by domid), and a host
 * holds a few hundred guests at once (the scale benchmark runs 256 and
 * restores them while the dms of the saved ones exit). */
static void test_domid_rover_and_many_domains(void **state)
{
    (void)state;
    uint32_t a = new_domain(1, false);
    assert_int_equal(hv_domain_destroy(a), 0);
    uint32_t b = new_domain(1, false);
    assert_true(b > a);
    /* an explicit id is still allowed, and does not move the rover */
    assert_int_equal(hv_domain_create(a, 1, 1, "given"), (int)a);
    uint32_t c = new_domain(1, false);
    assert_int_equal(c, b + 1);
    hv_domain_destroy(a);
    hv_domain_destroy(b);
    hv_domain_destroy(c);

    enum { MANY = 600 };
    static uint32_t ids[MANY];
    for (unsigned int i = 0; i < MANY; i++) {
        int id = hv_domain_create(0, 1, 1, NULL);
        assert_true(id > 0);
        ids[i] = (uint32_t)id;
    }
    static uint32_t listed[MANY + 8];
    assert_int_equal(hv_domain_list(listed, MANY + 8), MANY);
    for (unsigned int i = 1; i < MANY; i++)
        assert_true(listed[i - 1] < listed[i]);
    for (unsigned int i = 0; i < MANY; i++)
        assert_int_equal(hv_domain_destroy(ids[i]), 0);
    assert_int_equal(hv_domain_list(listed, MANY + 8), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_restrict_all, xsim_fixture_setup, xsim_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_pause_nesting, xsim_fixture_setup, xsim_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_irq_delivery, xsim_fixture_setup, xsim_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_dirty_bitmap, xsim_fixture_setup, xsim_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_guest_write_resume, xsim_fixture_setup, xsim_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_guest_state_write_paused, xsim_fixture_setup, xsim_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_foreign_map, xsim_fixture_setup, xsim_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_evtchn_mask, xsim_fixture_setup, xsim_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_destroy_under_emulator, xsim_fixture_setup, xsim_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_fault_close_conn, xsim_fixture_setup, xsim_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_client_not_reading, xsim_fixture_setup, xsim_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_domid_rover_and_many_domains, xsim_fixture_setup, xsim_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

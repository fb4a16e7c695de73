/*
 * The platform devices of a real rsdm-sim on the simulated hypervisor: a
 * guest's CF8/CFC configuration reads (translated by the simulator into
 * PCI_CONFIG ioreqs) find the chipset where hvmloader looks; a reset write
 * makes the domain shut down for reboot; ACPI S5 powers it off and rsdm
 * exits cleanly.
 *
 * The hypervisor runs in this process (tests/lib/xsim_emu); xenstore is a
 * `xensim run` daemon; rsdm-sim is a child process, as on a host.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <xenstore.h>

#include "../lib/rsdm_sim.h"
#include "../lib/xsim_emu.h"
#include "guest_fw.h"
#include "hv.h"

#define WAIT_MS 10000
#define SHUTDOWN_POWEROFF 0
#define SHUTDOWN_REBOOT 1

/* The shared set-up is tests/lib/rsdm_sim; a test's fixture is that. */
typedef rsdm_sim fixture;

static int setup(void **state)
{
    static fixture f;
    if (rsdm_sim_start(&f, "platform", 1) < 0)
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->dm > 0) {
        int st = rsdm_sim_stop_dm(f);
        assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);  /* a clean exit on SIGTERM */
    }
    rsdm_sim_stop(f);
    return 0;
}

static uint32_t cfg(fixture *f, unsigned dev, unsigned fn, unsigned reg, unsigned size)
{
    uint64_t v = 0;
    assert_int_equal(xsim_pci_cfg(f->d, 0, false, 0, dev, fn, reg, size, &v), 0);
    return (uint32_t)v;
}

/* Until the domain is shut down (Xen's reason in *reason). */
static int wait_shutdown(fixture *f, unsigned *reason)
{
    for (int i = 0; i < WAIT_MS / 10; i++) {
        struct hv_domain_info info;
        if (hv_domain_info(f->dom, &info) == 0 && (info.shut_down || info.shutting_down)) {
            *reason = info.shutdown_reason;
            return 0;
        }
        nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
    }
    return -ETIMEDOUT;
}

static void test_scan_finds_chipset(void **state)
{
    fixture *f = *state;
    assert_int_equal(cfg(f, 0, 0, 0, 4), 0x12378086);         /* i440FX */
    assert_int_equal(cfg(f, 1, 0, 0, 4), 0x70008086);         /* PIIX3, hvmloader's check */
    assert_int_equal(cfg(f, 1, 0, 0x0e, 1) & 0x80, 0x80);     /* multifunction */
    assert_int_equal(cfg(f, 1, 3, 0, 4), 0x71138086);         /* PIIX4 PM */
    assert_int_equal(cfg(f, 2, 0, 0, 4), 0x00015853);         /* Xen platform */
    assert_int_equal(cfg(f, 4, 0, 0, 4), 0xffffffff);         /* empty slot */
    /* PIRQ routing write, read back through the same path. */
    uint64_t v = 10;
    assert_int_equal(xsim_pci_cfg(f->d, 0, true, 0, 1, 0, 0x60, 1, &v), 0);
    assert_int_equal(cfg(f, 1, 0, 0x60, 1), 10);
    /* The Xen platform magic on port 0x10. */
    v = 0;
    assert_int_equal(xsim_pio(f->d, 0, false, 0x10, 2, &v), 0);
    assert_int_equal(v, 0x49d2);
}

/* A guest_bus over the in-process hypervisor: ports and MMIO only, which
 * is all the firmware's PCI pass uses. */
static int hv_in(struct guest_bus *b, uint16_t port, unsigned size, uint32_t *val)
{
    uint64_t v = 0;
    int r = xsim_pio(((fixture *)b->priv)->d, 0, false, port, size, &v);
    *val = (uint32_t)v;
    return r;
}

static int hv_out(struct guest_bus *b, uint16_t port, unsigned size, uint32_t val)
{
    uint64_t v = val;
    return xsim_pio(((fixture *)b->priv)->d, 0, true, port, size, &v);
}

static int hv_mr(struct guest_bus *b, uint64_t addr, unsigned size, uint64_t *val)
{
    return xsim_mmio(((fixture *)b->priv)->d, 0, false, addr, size, val);
}

static int hv_mw(struct guest_bus *b, uint64_t addr, unsigned size, uint64_t val)
{
    return xsim_mmio(((fixture *)b->priv)->d, 0, true, addr, size, &val);
}

static const struct guest_bus_ops hv_bus_ops = {
    .pio_in = hv_in, .pio_out = hv_out, .mmio_read = hv_mr, .mmio_write = hv_mw,
};

/* issue 5's firmware driver: hvmloader's checks, PIRQ routes, BARs. */
static void test_firmware_pci_pass(void **state)
{
    fixture *f = *state;
    static struct guest_bus b;
    static struct guest_fw fw;
    memset(&fw, 0, sizeof(fw));
    guest_bus_init(&b, &hv_bus_ops, f, 0x100000, 0x200000);
    int r = guest_fw_scan(&b, &fw, true);
    if (r != 0)
        fprintf(stderr, "firmware: %s\n", guest_bus_error(&b));
    assert_int_equal(r, 0);
    assert_non_null(guest_fw_find(&fw, 0x8086, 0x1237));
    assert_non_null(guest_fw_find(&fw, 0x8086, 0x7000));
    assert_non_null(guest_fw_find(&fw, 0x8086, 0x7113));
    const struct guest_pci_dev *x = guest_fw_find(&fw, 0x5853, 0x0001);
    assert_non_null(x);
    assert_true(x->bar[0] != 0 && x->bar[1] != 0);
    /* The routes it chose are in the ISA bridge. */
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(cfg(f, 1, 0, 0x60 + i, 1), fw.pirq_irq[i]);
    /* Every CF8 write of the scan reached rsdm: none fell to Xen's null
     * handler inside a range rsdm claims (0xcf9 sits inside the dword). */
    assert_int_equal(hv_null_hits_total(f->dom), 0);
    /* Linux's type-1 probe reads its CF8 write back. */
    uint64_t v = 0x80000000u;
    assert_int_equal(xsim_pio(f->d, 0, true, 0xcf8, 4, &v), 0);
    v = 0;
    assert_int_equal(xsim_pio(f->d, 0, false, 0xcf8, 4, &v), 0);
    assert_int_equal(v, 0x80000000u);
    assert_int_equal(hv_null_hits_total(f->dom), 0);
}

static void test_reset_reboots_domain(void **state)
{
    fixture *f = *state;
    uint64_t v = 0x06;
    xsim_pio(f->d, 0, true, 0xcf9, 1, &v);
    unsigned reason = 99;
    assert_int_equal(wait_shutdown(f, &reason), 0);
    assert_int_equal(reason, SHUTDOWN_REBOOT);
}

static void test_s5_powers_off_and_dm_exits(void **state)
{
    fixture *f = *state;
    uint64_t v = 0x2000;                  /* SLP_TYP 0 (S5) | SLP_EN */
    xsim_pio(f->d, 0, true, 0xb004, 2, &v);
    unsigned reason = 99;
    assert_int_equal(wait_shutdown(f, &reason), 0);
    assert_int_equal(reason, SHUTDOWN_POWEROFF);
    int st = 0;
    pid_t r = 0;
    for (int i = 0; i < WAIT_MS / 10 && r == 0; i++) {
        r = waitpid(f->dm, &st, WNOHANG);
        if (r == 0)
            nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
    }
    assert_int_equal(r, f->dm);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    f->dm = 0;
}

/* Give the guest a /vm/<uuid> as libxl does: `vm` owned by dom0 and only
 * readable by the guest, unless `guest_writable`. */
static void write_vm_node(fixture *f, const char *uuid, bool guest_writable)
{
    char path[128], val[64];
    snprintf(path, sizeof(path), "/local/domain/%u/vm", f->dom);
    snprintf(val, sizeof(val), "/vm/%s", uuid);
    assert_true(xs_write(f->xs, XBT_NULL, path, val, (unsigned)strlen(val)));
    struct xs_permissions perms[2] = {
        { .id = 0, .perms = XS_PERM_NONE },
        { .id = f->dom, .perms = guest_writable ? XS_PERM_WRITE : XS_PERM_READ },
    };
    assert_true(xs_set_permissions(f->xs, XBT_NULL, path, perms, 2));
}

/* Issue 8: IOREQ_TYPE_TIMEOFFSET lands in /vm/<uuid>/rtc/timeoffset. */
static void test_rtc_change_recorded(void **state)
{
    fixture *f = *state;
    const char *uuid = "4f2a6c1e-9b3d-4e55-8a77-0123456789ab";
    char path[128];
    write_vm_node(f, uuid, false);
    snprintf(path, sizeof(path), "/vm/%s/rtc/timeoffset", uuid);
    assert_int_equal(hv_send_timeoffset(f->dom, 3600), 0);
    assert_int_equal(rsdm_sim_wait_value(f, path, "3600", WAIT_MS), 0);
    /* Offsets accumulate, as the guest's RTC moves again. */
    assert_int_equal(hv_send_timeoffset(f->dom, (uint64_t)-600), 0);
    assert_int_equal(rsdm_sim_wait_value(f, path, "3000", WAIT_MS), 0);
}

/* A `vm` node the guest can write is not followed: the guest could aim it
 * at another VM's record.  Once the next change (made with a safe node
 * naming the guest's own VM) is recorded, the first one must have left the
 * victim alone; the offset still accumulated inside rsdm (42 + 1). */
static void test_rtc_change_untrusted_vm_node(void **state)
{
    fixture *f = *state;
    const char *victim = "00000000-1111-2222-3333-444444444444";
    const char *own = "4f2a6c1e-9b3d-4e55-8a77-0123456789ab";
    char path[128];
    write_vm_node(f, victim, true);
    assert_int_equal(hv_send_timeoffset(f->dom, 42), 0);
    /* A synchronous access is answered only after the buffered ring before
     * it was drained (xen-ioreq.md §2.3): the first change is handled once
     * this read returns, before the node is changed below. */
    uint64_t v16 = 0;
    assert_int_equal(xsim_pio(f->d, 0, false, 0x10, 2, &v16), 0);
    assert_int_equal(v16, 0x49d2);
    write_vm_node(f, own, false);
    assert_int_equal(hv_send_timeoffset(f->dom, 1), 0);
    snprintf(path, sizeof(path), "/vm/%s/rtc/timeoffset", own);
    assert_int_equal(rsdm_sim_wait_value(f, path, "43", WAIT_MS), 0);
    snprintf(path, sizeof(path), "/vm/%s/rtc/timeoffset", victim);
    unsigned len = 0;
    char *v = xs_read(f->xs, XBT_NULL, path, &len);
    assert_null(v);
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_scan_finds_chipset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_firmware_pci_pass, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_reboots_domain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_s5_powers_off_and_dm_exits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rtc_change_recorded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rtc_change_untrusted_vm_node, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * The platform devices (dm_platform) on real dm_io/dm_pci/dm_irq/librunstate
 * modules with a recording Xen back-end: what hvmloader's PCI scan sees,
 * PIRQ writes becoming link routes, ACPI S3/S5/power button/wakeup, resets
 * reaching Xen only in before_answer, writes latched while stopped, bad
 * writes, and state save/load.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dm_platform.h"

typedef struct fx {
    dm_io_space *pio, *mmio;
    dm_irq *irq;
    dm_pci_bus *pci;
    rs_vm *vm;
    dm_state_reg *state;
    dm_platform *p;
    /* recorded back-end calls */
    int routes[4];
    int nroutes;
    int shutdowns;
    dm_platform_shutdown last;
    int s_state;
    int n_s_state;
    bool isa[16];
    int64_t rtc;
    int nrtc;
} fx;

static fx F;

static int rec_isa(void *opaque, unsigned irq, bool level)
{
    (void)opaque;
    assert_true(irq < 16);
    F.isa[irq] = level;
    return 0;
}

static int rec_intx(void *opaque, unsigned slot, unsigned intx, bool level)
{
    (void)opaque;
    (void)slot;
    (void)intx;
    (void)level;
    return 0;
}

static const dm_irq_backend irq_be = { rec_isa, rec_intx };

static int rec_route(void *opaque, unsigned link, unsigned irq)
{
    (void)opaque;
    assert_true(link < 4);
    F.routes[link] = (int)irq;
    F.nroutes++;
    return 0;
}

static int rec_shutdown(void *opaque, dm_platform_shutdown why)
{
    (void)opaque;
    F.shutdowns++;
    F.last = why;
    return 0;
}

static int rec_s_state(void *opaque, unsigned s)
{
    (void)opaque;
    F.s_state = (int)s;
    F.n_s_state++;
    return 0;
}

static const dm_platform_backend be = { rec_route, rec_shutdown, rec_s_state };

static void rec_rtc(void *opaque, int64_t off)
{
    (void)opaque;
    F.rtc = off;
    F.nrtc++;
}

static void fx_open(bool disable_pf, bool no_isa)
{
    memset(&F, 0, sizeof(F));
    F.s_state = -1;
    F.pio = dm_io_space_new(DM_IO_PORT);
    F.mmio = dm_io_space_new(DM_IO_MMIO);
    F.irq = dm_irq_new(&irq_be, NULL);
    F.vm = rs_vm_new();
    assert_non_null(F.vm);
    assert_int_equal(dm_irq_attach_runstate(F.irq, F.vm, 0), 0);
    F.pci = dm_pci_bus_new(F.pio, F.mmio, F.irq);
    F.state = dm_state_reg_new();
    assert_int_equal(dm_pci_bus_set_state_reg(F.pci, F.state), 0);
    dm_platform_cfg cfg = {
        .pio = F.pio, .pci = F.pci, .irq = F.irq, .vm = F.vm, .state = F.state, .be = &be,
        .disable_pf = disable_pf, .no_isa_bridge = no_isa, .pm1_evt = true,
        .on_rtc_change = rec_rtc,
    };
    char err[200];
    assert_int_equal(dm_platform_init(&cfg, &F.p, err, sizeof(err)), 0);
    rs_err e;
    assert_int_equal(rs_cont(F.vm, &e), 0);
}

static void fx_close(void)
{
    dm_platform_free(F.p);
    dm_pci_bus_free(F.pci);
    dm_state_reg_free(F.state);
    dm_irq_free(F.irq);
    rs_vm_free(F.vm);
    dm_io_space_free(F.mmio);
    dm_io_space_free(F.pio);
}

/* 1 when librunstate says the process should exit (a poweroff). */
static int process(void)
{
    int st = 0;
    return rs_process_requests(F.vm, &st);
}

static uint32_t cfg_rd(unsigned slot, unsigned fn, unsigned reg, unsigned size)
{
    uint32_t v = 0;
    dm_pci_config_read(F.pci, dm_pci_sbdf(0, 0, slot, fn), reg, size, &v);
    return v;
}

static void cfg_wr(unsigned slot, unsigned fn, unsigned reg, unsigned size, uint32_t v)
{
    assert_int_equal(dm_pci_config_write(F.pci, dm_pci_sbdf(0, 0, slot, fn), reg, size, v), 0);
}

static uint64_t in(unsigned port, unsigned size)
{
    uint64_t v = 0;
    assert_int_equal(dm_io_read(F.pio, port, size, &v), 0);
    return v;
}

static void out(unsigned port, unsigned size, uint64_t v)
{
    assert_int_equal(dm_io_write(F.pio, port, size, v), 0);
}

/* ------------------------------------------------------------- PCI scan */

static void test_pci_scan(void **s)
{
    (void)s;
    fx_open(false, false);
    /* hvmloader: 00:00.0 host bridge, 00:01.0 must be PIIX3 (8086:7000). */
    assert_int_equal(cfg_rd(0, 0, 0, 4), 0x12378086);
    assert_int_equal(cfg_rd(0, 0, 0x0a, 2), 0x0600);
    assert_int_equal(cfg_rd(1, 0, 0, 4), 0x70008086);
    assert_int_equal(cfg_rd(1, 0, 0x0a, 2), 0x0601);
    assert_int_equal(cfg_rd(1, 0, 0x0e, 1) & 0x80, 0x80);          /* multifunction */
    assert_int_equal(cfg_rd(1, 3, 0, 4), 0x71138086);
    assert_int_equal(cfg_rd(1, 3, 0x3c, 1), 9);
    assert_int_equal(cfg_rd(2, 0, 0, 4), 0x00015853);
    assert_int_equal(cfg_rd(2, 0, 0x2c, 4), 0x00015853);
    /* Nothing at 00:01.1 (no IDE yet) or 00:03.0. */
    uint32_t v;
    assert_int_equal(dm_pci_config_read(F.pci, dm_pci_sbdf(0, 0, 1, 1), 0, 4, &v), -ENOENT);
    assert_int_equal(dm_pci_config_read(F.pci, dm_pci_sbdf(0, 0, 3, 0), 0, 4, &v), -ENOENT);
    /* BAR sizing of the platform device: I/O 256, memory 16 MiB. */
    cfg_wr(2, 0, 0x10, 4, 0xffffffff);
    assert_int_equal(cfg_rd(2, 0, 0x10, 4), 0xffffff01);
    cfg_wr(2, 0, 0x14, 4, 0xffffffff);
    assert_int_equal(cfg_rd(2, 0, 0x14, 4) & 0xfffffff0u, 0xff000000);
    fx_close();
}

static void test_disable_pf_and_no_isa(void **s)
{
    (void)s;
    fx_open(true, true);
    uint32_t v;
    assert_int_equal(dm_pci_config_read(F.pci, dm_pci_sbdf(0, 0, 2, 0), 0, 4, &v), -ENOENT);
    assert_int_equal(dm_pci_config_read(F.pci, dm_pci_sbdf(0, 0, 1, 0), 0, 4, &v), -ENOENT);
    assert_int_equal(dm_io_read(F.pio, 0x10, 2, &(uint64_t){ 0 }), -ENOENT);
    fx_close();
}

/* ---------------------------------------------------------------- PIRQs */

static void test_pirq_routes(void **s)
{
    (void)s;
    fx_open(false, false);
    assert_int_equal(cfg_rd(1, 0, 0x60, 4), 0x80808080);            /* all disabled */
    /* hvmloader's byte writes: links A..D to 5, 10, 11, 5. */
    cfg_wr(1, 0, 0x60, 1, 5);
    assert_int_equal(F.nroutes, 1);
    assert_int_equal(F.routes[0], 5);
    cfg_wr(1, 0, 0x61, 1, 10);
    cfg_wr(1, 0, 0x62, 1, 11);
    cfg_wr(1, 0, 0x63, 1, 5);
    assert_int_equal(F.routes[1], 10);
    assert_int_equal(F.routes[2], 11);
    assert_int_equal(F.routes[3], 5);
    /* One dword write: four routes; bit 7 disables (route 0). */
    F.nroutes = 0;
    cfg_wr(1, 0, 0x60, 4, 0x0b80090a);
    assert_int_equal(F.nroutes, 4);
    assert_int_equal(F.routes[0], 10);
    assert_int_equal(F.routes[1], 9);
    assert_int_equal(F.routes[2], 0);
    assert_int_equal(F.routes[3], 11);
    /* A word write at 0x62 covers C and D only. */
    F.nroutes = 0;
    cfg_wr(1, 0, 0x62, 2, 0x0703);
    assert_int_equal(F.nroutes, 2);
    assert_int_equal(F.routes[2], 3);
    assert_int_equal(F.routes[3], 7);
    /* Neighbouring registers do not route. */
    F.nroutes = 0;
    cfg_wr(1, 0, 0x5c, 4, 0x12345678);
    assert_int_equal(F.nroutes, 0);
    fx_close();
}

/* --------------------------------------------------------------- resets */

static void expect_reboot_in_before_answer(void)
{
    assert_int_equal(F.shutdowns, 0);     /* not yet: the ioreq is not answered */
    dm_platform_before_answer(F.p);
    assert_int_equal(F.shutdowns, 1);
    assert_int_equal(F.last, DM_PLAT_REBOOT);
    dm_platform_before_answer(F.p);       /* once only */
    assert_int_equal(F.shutdowns, 1);
    process();
    F.shutdowns = 0;
}

static void test_resets(void **s)
{
    (void)s;
    fx_open(false, false);
    out(0xcf9, 1, 0x02);                  /* SYS_RST alone: no reset */
    dm_platform_before_answer(F.p);
    assert_int_equal(F.shutdowns, 0);
    assert_int_equal(in(0xcf9, 1), 0x02);
    out(0xcf9, 1, 0x06);
    expect_reboot_in_before_answer();
    out(0x92, 1, 0x01);
    expect_reboot_in_before_answer();
    out(0x64, 1, 0xfe);                   /* i8042 reset pulse */
    expect_reboot_in_before_answer();
    out(0x64, 1, 0xd1);                   /* output port with reset asserted */
    out(0x60, 1, 0x00);
    expect_reboot_in_before_answer();
    dm_platform_stats st;
    dm_platform_get_stats(F.p, &st);
    assert_int_equal(st.resets, 4);
    fx_close();
}

static void test_reset_policy_shutdown(void **s)
{
    (void)s;
    fx_open(false, false);
    rs_action_update u = { .has_reboot = true, .value.reboot = RS_REBOOT_SHUTDOWN };
    assert_int_equal(rs_set_actions(F.vm, &u), 0);
    out(0xcf9, 1, 0x06);
    dm_platform_before_answer(F.p);
    assert_int_equal(F.shutdowns, 1);
    assert_int_equal(F.last, DM_PLAT_POWEROFF);
    fx_close();
}

static void test_reset_latched_while_stopped(void **s)
{
    (void)s;
    fx_open(false, false);
    rs_err e;
    assert_int_equal(rs_vm_stop(F.vm, RS_PAUSED, &e), 0);
    out(0xcf9, 1, 0x06);
    dm_platform_before_answer(F.p);
    assert_int_equal(F.shutdowns, 0);
    assert_int_equal(rs_cont(F.vm, &e), 0);
    assert_int_equal(F.shutdowns, 1);
    assert_int_equal(F.last, DM_PLAT_REBOOT);
    fx_close();
}

/* ----------------------------------------------------------------- ACPI */

static void test_acpi_enable_and_s5(void **s)
{
    (void)s;
    fx_open(false, false);
    /* hvmloader's acpi_enable_sci: SCI_EN clear, ACPI_ENABLE at 0xb2, set. */
    assert_int_equal(in(0xb004, 1) & 1, 0);
    out(0xb2, 1, 0xf1);
    assert_int_equal(in(0xb004, 1) & 1, 1);
    assert_int_equal(in(0xb004, 2), 1);
    /* S5: SLP_TYP 0 | SLP_EN; the high byte alone works too. */
    out(0xb005, 1, 0x20);
    assert_int_equal(F.shutdowns, 0);
    dm_platform_before_answer(F.p);
    assert_int_equal(F.shutdowns, 1);
    assert_int_equal(F.last, DM_PLAT_POWEROFF);
    assert_int_equal(in(0xb004, 2) & 0x2000, 0);   /* SLP_EN reads 0 */
    assert_int_equal(process(), 1);             /* shutdown=poweroff: rsdm exits */
    fx_close();
}

static void test_s5_policy_pause(void **s)
{
    (void)s;
    fx_open(false, false);
    rs_action_update u = { .has_shutdown = true, .value.shutdown = RS_SHUTDOWN_PAUSE };
    assert_int_equal(rs_set_actions(F.vm, &u), 0);
    out(0xb004, 2, 0x2000);
    dm_platform_before_answer(F.p);
    assert_int_equal(F.shutdowns, 0);     /* pause: Xen is not told */
    process();
    assert_false(rs_is_running(F.vm));
    fx_close();
}

static void test_s3_wakeup(void **s)
{
    (void)s;
    fx_open(false, false);
    out(0xb2, 1, 0xf1);
    out(0xb004, 2, 0x2000 | (1u << 10) | 1);
    dm_platform_before_answer(F.p);
    assert_int_equal(F.shutdowns, 0);
    process();
    assert_int_equal(rs_get_state(F.vm), RS_SUSPENDED);
    assert_int_equal(F.s_state, 3);
    rs_err e;
    assert_int_equal(rs_request_wakeup(F.vm, RS_WAKEUP_OTHER, &e), 0);
    process();
    assert_int_equal(rs_get_state(F.vm), RS_RUNNING);
    assert_int_equal(F.s_state, 0);
    uint16_t sts = (uint16_t)in(0xb000, 2);
    assert_int_equal(sts & 0x8100, 0x8100);        /* WAK_STS | PWRBTN_STS (OTHER) */
    out(0xb000, 2, 0x8100);                        /* write 1 to clear */
    assert_int_equal(in(0xb000, 2), 0);
    fx_close();
}

static void test_s3_latched_while_stopped(void **s)
{
    (void)s;
    fx_open(false, false);
    rs_err e;
    assert_int_equal(rs_vm_stop(F.vm, RS_PAUSED, &e), 0);
    out(0xb004, 2, 0x2000 | (1u << 10));
    process();
    assert_int_equal(rs_get_state(F.vm), RS_PAUSED);
    assert_int_equal(in(0xb004, 2), 1u << 10);     /* the register answers */
    assert_int_equal(rs_cont(F.vm, &e), 0);
    process();
    assert_int_equal(rs_get_state(F.vm), RS_SUSPENDED);
    assert_int_equal(F.s_state, 3);
    fx_close();
}

static void test_powerdown_sci(void **s)
{
    (void)s;
    fx_open(false, false);
    out(0xb2, 1, 0xf1);                           /* SCI_EN */
    out(0xb002, 2, 0x0100);                       /* PWRBTN_EN */
    assert_false(F.isa[9]);
    assert_int_equal(rs_request_powerdown(F.vm), 0);
    process();
    assert_int_equal(in(0xb000, 2) & 0x0100, 0x0100);
    assert_true(F.isa[9]);
    out(0xb000, 2, 0x0100);
    assert_false(F.isa[9]);
    /* The guest's reaction: S5. */
    out(0xb004, 2, 0x2001);
    dm_platform_before_answer(F.p);
    assert_int_equal(F.last, DM_PLAT_POWEROFF);
    fx_close();
}

/* ------------------------------------------------ i8042, xen-platform */

static void test_i8042(void **s)
{
    (void)s;
    fx_open(false, false);
    out(0x64, 1, 0xaa);
    assert_int_equal(in(0x64, 1) & 0x05, 0x05);   /* OBF, SYS */
    assert_int_equal(in(0x60, 1), 0x55);
    assert_int_equal(in(0x64, 1) & 0x01, 0);
    out(0x64, 1, 0xdd);                            /* A20 off */
    assert_int_equal(in(0x92, 1) & 2, 0);
    out(0x64, 1, 0xdf);
    assert_int_equal(in(0x92, 1) & 2, 2);
    out(0x64, 1, 0xd0);
    assert_int_equal(in(0x60, 1) & 3, 3);
    out(0x60, 1, 0xff);                            /* keyboard reset: ack, BAT */
    assert_int_equal(in(0x60, 1), 0xfa);
    assert_int_equal(in(0x60, 1), 0xaa);
    dm_platform_before_answer(F.p);
    assert_int_equal(F.shutdowns, 0);
    fx_close();
}

static void test_xen_platform(void **s)
{
    (void)s;
    fx_open(false, false);
    assert_int_equal(in(0x10, 2), 0x49d2);
    assert_int_equal(in(0x12, 1), 1);
    out(0x12, 2, 3);                               /* product */
    out(0x10, 4, 0x1234);                          /* build */
    out(0x10, 2, 0x3);                             /* unplug disks and NICs */
    const char *msg = "pv drivers up\n";
    for (const char *c = msg; *c; c++)
        out(0x12, 1, (uint8_t)*c);
    dm_platform_stats st;
    dm_platform_get_stats(F.p, &st);
    assert_int_equal(st.unplugs, 1);
    assert_int_equal(st.unplug_mask, 3);
    fx_close();
}

/* ------------------------------------------------ CF8 config address */

/* The window 0xCF8-0xCFB: Linux's type-1 probe (a byte write to 0xCFB,
 * then 0x80000000 written to and read back from 0xCF8) must see its value,
 * and 0xCF9 stays the reset control byte inside it. */
static void test_cf8_window(void **s)
{
    (void)s;
    fx_open(false, false);
    out(0xcfb, 1, 0x01);                  /* ignored, as on i440FX */
    out(0xcf8, 4, 0x80000000u);
    assert_int_equal(in(0xcf8, 4), 0x80000000u);
    out(0xcf8, 4, 0x80000813u);           /* bits 1:0 are reserved */
    assert_int_equal(in(0xcf8, 4), 0x80000810u);
    assert_int_equal(in(0xcf8, 1), 0x10);
    assert_int_equal(in(0xcfa, 2), 0x8000);
    /* A byte at 0xcf9 is reset control, not the address. */
    assert_int_equal(in(0xcf9, 1), 0x00);
    out(0xcf9, 1, 0x02);
    assert_int_equal(in(0xcf9, 1), 0x02);
    assert_int_equal(in(0xcf8, 4), 0x80000810u);
    /* A dword write never resets the machine, whatever byte 1 holds. */
    out(0xcf8, 4, 0x80000600u);
    dm_platform_before_answer(F.p);
    assert_int_equal(F.shutdowns, 0);
    assert_int_equal(in(0xcf9, 1), 0x02);
    /* The address travels in the state file. */
    uint8_t *buf = NULL;
    size_t len = 0;
    char err[256];
    assert_int_equal(dm_state_save_mem(F.state, &buf, &len, err, sizeof(err)), 0);
    out(0xcf8, 4, 0);
    assert_int_equal(dm_state_load_mem(F.state, buf, len, err, sizeof(err)), 0);
    assert_int_equal(in(0xcf8, 4), 0x80000600u);
    assert_int_equal(in(0xcf9, 1), 0x02);
    free(buf);
    fx_close();
}

/* ---------------------------------------------------------- bad writes */

static void test_bad_writes(void **s)
{
    (void)s;
    fx_open(false, false);
    uint64_t v;
    /* Byte-wide ports refuse wider accesses at dispatch; the CF8 window
     * takes them but only a byte write at 0xcf9 reaches reset control. */
    assert_int_equal(dm_io_write(F.pio, 0xcf9, 2, 0x0606), 0);
    assert_int_equal(dm_io_write(F.pio, 0xcf8, 2, 0x0606), 0);
    assert_int_equal(dm_io_write(F.pio, 0xcfa, 2, 0x0606), 0);
    assert_int_equal(dm_io_write(F.pio, 0x92, 4, 1), -ENOENT);
    assert_int_equal(dm_io_write(F.pio, 0x64, 2, 0xfe), -ENOENT);
    assert_int_equal(dm_io_write(F.pio, 0xb004, 4, 0x2000), -ENOENT);
    assert_int_equal(dm_io_write(F.pio, 0xb005, 2, 0x20), -ENOENT);  /* crosses the end */
    assert_int_equal(dm_io_write(F.pio, 0xb004, 3, 0), -EINVAL);
    dm_platform_before_answer(F.p);
    assert_int_equal(F.shutdowns, 0);
    (void)v;
    /* Sleep types no _Sx names, unknown i8042 commands, odd platform ports. */
    out(0xb004, 2, 0x2000 | (6u << 10));
    out(0x64, 1, 0x77);
    out(0x11, 1, 0x55);
    out(0x10, 1, 0x55);
    assert_int_equal(dm_io_write(F.pio, 0x13, 2, 0), -ENOENT);
    dm_platform_before_answer(F.p);
    assert_int_equal(F.shutdowns, 0);
    process();
    assert_int_equal(rs_get_state(F.vm), RS_RUNNING);
    dm_platform_stats st;
    dm_platform_get_stats(F.p, &st);
    assert_true(st.bad_writes >= 3);
    /* Output queue overflow: never reads, never overruns. */
    for (int i = 0; i < 100; i++)
        out(0x64, 1, 0xaa);
    assert_int_equal(in(0x60, 1), 0x55);
    /* PCI config beyond the space. */
    assert_int_equal(dm_pci_config_write(F.pci, dm_pci_sbdf(0, 0, 1, 0), 0x100, 1, 0), -ERANGE);
    fx_close();
}

/* ------------------------------------------------------ state, RTC */

static void test_state_roundtrip(void **s)
{
    (void)s;
    fx_open(false, false);
    out(0xb2, 1, 0xf1);
    out(0xb002, 2, 0x0100);
    out(0x64, 1, 0xdd);
    out(0x64, 1, 0xaa);
    out(0x10, 2, 1);
    cfg_wr(1, 0, 0x60, 1, 11);
    uint8_t *buf;
    size_t len;
    char err[200];
    assert_int_equal(dm_state_save_mem(F.state, &buf, &len, err, sizeof(err)), 0);
    fx_close();
    fx_open(false, false);
    assert_int_equal(dm_state_load_mem(F.state, buf, len, err, sizeof(err)), 0);
    free(buf);
    assert_int_equal(in(0xb004, 2), 1);
    assert_int_equal(in(0xb002, 2), 0x0100);
    assert_int_equal(in(0x92, 1) & 2, 0);
    assert_int_equal(in(0x60, 1), 0x55);
    assert_int_equal(cfg_rd(1, 0, 0x60, 1), 11);
    dm_platform_stats st;
    dm_platform_get_stats(F.p, &st);
    assert_int_equal(st.unplug_mask, 1);
    fx_close();
}

static void test_timeoffset(void **s)
{
    (void)s;
    fx_open(false, false);
    dm_platform_timeoffset(F.p, 3600);
    dm_platform_timeoffset(F.p, -600);
    assert_int_equal(F.nrtc, 2);
    assert_int_equal(F.rtc, 3000);
    assert_int_equal(dm_platform_rtc_offset(F.p), 3000);
    fx_close();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pci_scan),
        cmocka_unit_test(test_disable_pf_and_no_isa),
        cmocka_unit_test(test_pirq_routes),
        cmocka_unit_test(test_resets),
        cmocka_unit_test(test_cf8_window),
        cmocka_unit_test(test_reset_policy_shutdown),
        cmocka_unit_test(test_reset_latched_while_stopped),
        cmocka_unit_test(test_acpi_enable_and_s5),
        cmocka_unit_test(test_s5_policy_pause),
        cmocka_unit_test(test_s3_wakeup),
        cmocka_unit_test(test_s3_latched_while_stopped),
        cmocka_unit_test(test_powerdown_sci),
        cmocka_unit_test(test_i8042),
        cmocka_unit_test(test_xen_platform),
        cmocka_unit_test(test_bad_writes),
        cmocka_unit_test(test_state_roundtrip),
        cmocka_unit_test(test_timeoffset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

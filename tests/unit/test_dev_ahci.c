/*
 * The ICH9 AHCI controller end to end in one thread (tests/lib/ahci_rig):
 * xensim's AHCI driver and data checker against rsdm's real modules and a
 * real block backend on a raw image.  DMA, flush and NCQ at depth 32 with
 * the data checked (0 lost / stale / corrupted), at least 8 commands in
 * flight at the backend and completions out of order; no progress while
 * stopped (a PxCI write is latched, no DMA, no interrupt, no block I/O);
 * EIO with `stop` on an NCQ write and on a DMA read (halted, cont,
 * completed, data right); a COMRESET or HBA reset while halted discards
 * the halted write; save with commands pending and with a halted slot,
 * restore into a new dm, continue; INTx and MSI; the loader's checks.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../lib/ahci_rig.h"
#include "dm_disks.h"
#include "dm_log.h"

#define DISK_MIB 64
#define NCQ_DEPTH 32

static void zero_counters(const ahci_rig *r)
{
    struct guest_check_counters c;
    guest_check_snapshot((struct guest_check *)&r->chk, &c);
    assert_int_equal(c.lost_writes, 0);
    assert_int_equal(c.stale_overwrites, 0);
    assert_int_equal(c.corrupted_reads, 0);
}

/* The rig of the running test; the teardown frees it even when an
 * assertion ended the test early. */
static ahci_rig *cur;

static ahci_rig *rig_new(dm_err_action rerror, dm_err_action werror, const char *inject,
                         bool msi)
{
    ahci_rig *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    cur = r;
    ahci_rig_opts o = { .disk_mib = DISK_MIB, .rerror = rerror, .werror = werror,
                        .inject = inject, .workers = NCQ_DEPTH, .msi = msi, .timeout_ms = 10000 };
    assert_int_equal(ahci_rig_start(r, &o), 0);
    return r;
}

static void rig_free(ahci_rig *r)
{
    ahci_rig_stop(r);
    free(r);
    cur = NULL;
}

static int teardown(void **state)
{
    (void)state;
    if (cur)
        rig_free(cur);
    return 0;
}

/* One NCQ batch of n commands of `count` sectors at lba + i * stride,
 * writes carrying checker data; acked or classified afterwards. */
static int ncq_batch(ahci_rig *r, bool write, uint64_t lba, unsigned stride, unsigned count,
                     unsigned n)
{
    static uint8_t bufs[NCQ_DEPTH][16 * 512];
    static uint64_t seqs[NCQ_DEPTH][16];
    struct guest_ahci_io io[NCQ_DEPTH];
    assert_true(n <= NCQ_DEPTH && count <= 16);
    for (unsigned t = 0; t < n; t++) {
        io[t] = (struct guest_ahci_io){ .write = write, .lba = lba + (uint64_t)t * stride,
                                        .count = count, .buf = bufs[t] };
        if (write)
            for (unsigned s = 0; s < count; s++)
                seqs[t][s] = guest_check_fill(&r->chk, io[t].lba + s, bufs[t] + 512 * s);
    }
    if (guest_ahci_ncq(&r->hba, io, n) < 0) {
        print_message("NCQ batch: %s\n", guest_bus_error(&r->bus));
        return -1;
    }
    for (unsigned t = 0; t < n; t++)
        for (unsigned s = 0; s < count; s++) {
            if (write)
                guest_check_acked(&r->chk, io[t].lba + s, seqs[t][s]);
            else
                guest_check_count(&r->chk, guest_check_classify(&r->chk, io[t].lba + s,
                                                                bufs[t] + 512 * s));
        }
    return 0;
}

/* ------------------------------------------------------------ basics */

static void test_identify_and_dma(void **state)
{
    (void)state;
    ahci_rig *r = rig_new(DM_ERR_REPORT, DM_ERR_ENOSPC, NULL, false);
    assert_int_equal(r->hba.sectors, (uint64_t)DISK_MIB << 11);
    assert_int_equal(r->hba.nslots, 32);
    assert_true(r->hba.ncq);
    /* Various sizes, an unaligned start, the last sectors of the disk. */
    assert_int_equal(ahci_rig_write_checked(r, 0, 300), 0);
    assert_int_equal(ahci_rig_write_checked(r, 1001, 7), 0);
    assert_int_equal(ahci_rig_write_checked(r, r->hba.sectors - 128, 128), 0);
    assert_int_equal(guest_ahci_flush(&r->hba), 0);
    assert_int_equal(ahci_rig_verify(r, 0, 300), 0);
    assert_int_equal(ahci_rig_verify(r, 1001, 7), 0);
    assert_int_equal(ahci_rig_verify(r, r->hba.sectors - 128, 128), 0);
    zero_counters(r);
    /* Beyond the disk: the command fails towards the guest, nothing else. */
    static uint8_t buf[512];
    assert_int_equal(guest_ahci_rw(&r->hba, false, r->hba.sectors, 1, buf), -1);
    dm_blk_stats bs;
    dm_blk_get_stats(r->blk, &bs);
    assert_true(bs.flushes >= 1);
    assert_int_equal(bs.errors, 0);
    rig_free(r);
}

static void test_ncq_depth32(void **state)
{
    (void)state;
    /* A disk that takes a few milliseconds per request, as a real one
     * does, so the queue fills. */
    ahci_rig *r = rig_new(DM_ERR_REPORT, DM_ERR_ENOSPC, "op=read delay=2ms; op=write delay=2ms",
                          false);
    for (unsigned round = 0; round < 8; round++) {
        /* Interleaved tags over a window, so neighbouring tags race. */
        assert_int_equal(ncq_batch(r, true, 4096 + round * 8, 256, 8, NCQ_DEPTH), 0);
        assert_int_equal(ncq_batch(r, false, 4096 + round * 8, 256, 8, NCQ_DEPTH), 0);
    }
    assert_int_equal(guest_ahci_flush(&r->hba), 0);
    struct guest_check_counters c;
    guest_check_snapshot(&r->chk, &c);
    assert_true(c.reads >= 8 * NCQ_DEPTH * 8 || c.reads == 0);
    zero_counters(r);
    dm_blk_stats bs;
    dm_blk_get_stats(r->blk, &bs);
    dm_ahci_stats as;
    dm_ahci_get_stats(r->ahci, &as);
    print_message("ncq: %llu commands, max %u NCQ at the device, backend max in flight %u, "
                  "%llu completions out of order\n",
                  (unsigned long long)as.ncq_commands, as.max_ncq_in_flight, bs.max_in_flight,
                  (unsigned long long)bs.out_of_order);
    assert_int_equal(as.ncq_commands, 16 * NCQ_DEPTH);
    assert_true(as.max_ncq_in_flight >= 8);
    assert_true(bs.max_in_flight >= 8);
    assert_true(bs.out_of_order > 0);
    rig_free(r);
}

/* ------------------------------------------------ stopped: no progress */

typedef struct stop_probe {
    bool armed, stopped, checked;
    unsigned polls;
    dm_blk_stats blk_at_stop;
    uint64_t intx_at_stop;
    uint8_t ram_at_stop[512];
    uint64_t data_gpa;
} stop_probe;

/* Stops the VM just before the guest's PxCI write reaches the device; a
 * number of polls later checks nothing moved and continues. */
static void hook_stop_before_ci(ahci_rig *r, bool write, uint64_t off, uint32_t val)
{
    stop_probe *p = r->hook_opaque;
    if (write && off == 0x100 + 0x38 && p->armed && !p->stopped) {
        rs_err e = { 0 };
        assert_int_equal(rs_vm_stop(r->vm, RS_PAUSED, &e), 0);
        p->stopped = true;
        dm_blk_get_stats(r->blk, &p->blk_at_stop);
        p->intx_at_stop = r->intx_raises;
        memcpy(p->ram_at_stop, r->ram + p->data_gpa, sizeof(p->ram_at_stop));
        return;
    }
    if (!write && p->stopped && !p->checked && ++p->polls == 50) {
        dm_blk_stats now;
        dm_blk_get_stats(r->blk, &now);
        assert_int_equal(now.reads + now.writes + now.flushes,
                         p->blk_at_stop.reads + p->blk_at_stop.writes + p->blk_at_stop.flushes);
        assert_int_equal(dm_blk_in_flight(r->blk), 0);
        assert_int_equal(r->intx_raises, p->intx_at_stop);
        assert_memory_equal(p->ram_at_stop, r->ram + p->data_gpa, sizeof(p->ram_at_stop));
        uint32_t ci = 0;
        uint64_t v;
        dm_io_read(r->mmio, AHCI_RIG_ABAR + 0x138, 4, &v);
        ci = (uint32_t)v;
        assert_int_equal(ci, 1);                 /* latched, not started */
        p->checked = true;
        rs_err e = { 0 };
        assert_int_equal(rs_cont(r->vm, &e), 0);
    }
}

static void enable_irqs(ahci_rig *r)
{
    /* GHC.IE and every completion cause on port 0. */
    assert_int_equal(guest_writel(&r->bus, AHCI_RIG_ABAR + 0x04, 0x80000002u), 0);
    assert_int_equal(guest_writel(&r->bus, AHCI_RIG_ABAR + 0x100 + 0x14, 0x4000000bu), 0);
}

static void ack_irqs(ahci_rig *r)
{
    assert_int_equal(guest_writel(&r->bus, AHCI_RIG_ABAR + 0x100 + 0x10, 0xffffffffu), 0);
    assert_int_equal(guest_writel(&r->bus, AHCI_RIG_ABAR + 0x08, 0xffffffffu), 0);
}

static void test_stopped_latches(void **state)
{
    (void)state;
    ahci_rig *r = rig_new(DM_ERR_REPORT, DM_ERR_ENOSPC, NULL, false);
    assert_int_equal(ahci_rig_write_checked(r, 50, 8), 0);
    enable_irqs(r);
    ack_irqs(r);
    stop_probe p = { .armed = true, .data_gpa = r->hba.data[0] };
    memset(r->ram + p.data_gpa, 0xa5, 512);
    r->hook = hook_stop_before_ci;
    r->hook_opaque = &p;
    uint64_t raises = r->intx_raises;
    /* A read whose data would land in the buffer if anything moved. */
    assert_int_equal(ahci_rig_verify(r, 50, 8), 0);
    r->hook = NULL;
    assert_true(p.checked);
    assert_false(r->intx_while_stopped);
    assert_true(r->intx_raises > raises);        /* delivered after the start */
    dm_ahci_stats as;
    dm_ahci_get_stats(r->ahci, &as);
    assert_int_equal(as.latched, 1);
    zero_counters(r);
    rig_free(r);
}

/* Stops the VM while commands are at the backend: the stop handler
 * drains them, the interrupt waits for the start. */
static void hook_stop_in_flight(ahci_rig *r, bool write, uint64_t off, uint32_t val)
{
    stop_probe *p = r->hook_opaque;
    if (!write && p->armed && !p->stopped && dm_blk_in_flight(r->blk) > 0) {
        rs_err e = { 0 };
        p->intx_at_stop = r->intx_raises;
        assert_int_equal(rs_vm_stop(r->vm, RS_PAUSED, &e), 0);
        assert_int_equal(dm_blk_in_flight(r->blk), 0);   /* drained before STOP */
        assert_int_equal(r->intx_raises, p->intx_at_stop);
        p->stopped = true;
        return;
    }
    if (!write && p->stopped && !p->checked && ++p->polls == 2) {
        assert_int_equal(r->intx_raises, p->intx_at_stop);
        p->checked = true;
        rs_err e = { 0 };
        assert_int_equal(rs_cont(r->vm, &e), 0);
    }
}

static void test_stop_drains_and_holds_irq(void **state)
{
    (void)state;
    ahci_rig *r = rig_new(DM_ERR_REPORT, DM_ERR_ENOSPC, "op=write delay=5ms", false);
    enable_irqs(r);
    ack_irqs(r);
    stop_probe p = { .armed = true };
    r->hook = hook_stop_in_flight;
    r->hook_opaque = &p;
    assert_int_equal(ncq_batch(r, true, 8192, 64, 16, NCQ_DEPTH), 0);
    r->hook = NULL;
    assert_true(p.checked);
    assert_false(r->intx_while_stopped);
    assert_true(r->intx_raises > p.intx_at_stop);    /* delivered after the start */
    ack_irqs(r);
    assert_false(r->intx);
    assert_int_equal(ncq_batch(r, false, 8192, 64, 16, NCQ_DEPTH), 0);
    zero_counters(r);
    rig_free(r);
}

static void test_msi(void **state)
{
    (void)state;
    ahci_rig *r = rig_new(DM_ERR_REPORT, DM_ERR_ENOSPC, NULL, true);
    unsigned bdf = GUEST_BDF(0, DM_AHCI_PCI_SLOT, 0);
    uint32_t cap = 0;
    assert_int_equal(guest_pci_read(&r->bus, bdf, 0x34, 1, &cap), 0);
    assert_int_equal(cap, 0x80);
    assert_int_equal(guest_pci_write(&r->bus, bdf, cap + 4, 4, 0xfee00000u), 0);
    assert_int_equal(guest_pci_write(&r->bus, bdf, cap + 8, 4, 0), 0);
    assert_int_equal(guest_pci_write(&r->bus, bdf, cap + 12, 2, 0x4051), 0);
    assert_int_equal(guest_pci_write(&r->bus, bdf, cap + 2, 2, 1), 0);
    enable_irqs(r);
    ack_irqs(r);
    assert_int_equal(ahci_rig_write_checked(r, 10, 4), 0);
    assert_true(r->msis >= 1);
    assert_int_equal(r->msi_addr, 0xfee00000u);
    assert_int_equal(r->msi_data, 0x4051);
    assert_int_equal(r->intx_raises, 0);
    uint64_t before = r->msis;
    ack_irqs(r);
    assert_int_equal(ncq_batch(r, true, 100, 16, 8, 8), 0);
    assert_true(r->msis > before);
    assert_false(r->msi_while_stopped);
    rig_free(r);
}

/* ------------------------------------------------ errors and retry */

typedef struct err_probe {
    bool allow_cont;              /* cont once the VM stopped on the error */
    bool need_ci;                 /* ... and a command was issued since (PxCI) */
    unsigned stops;
    uint32_t sact_at_stop, ci_at_stop;
    uint64_t halted_at_stop;
    uint8_t (*save)[1];
} err_probe;

static uint32_t port_reg(ahci_rig *r, unsigned reg)
{
    uint64_t v = 0;
    dm_io_read(r->mmio, AHCI_RIG_ABAR + 0x100 + reg, 4, &v);
    return (uint32_t)v;
}

/* Management's part: once the VM is in io-error, look and cont. */
static void hook_cont_on_error(ahci_rig *r, bool write, uint64_t off, uint32_t val)
{
    err_probe *p = r->hook_opaque;
    if (write || rs_get_state(r->vm) != RS_IO_ERROR || !p->allow_cont)
        return;
    if (p->need_ci && !port_reg(r, 0x38))
        return;     /* the guest waits for no newly issued command yet */
    p->stops++;
    p->sact_at_stop = port_reg(r, 0x34);
    p->ci_at_stop = port_reg(r, 0x38);
    dm_ahci_stats as;
    dm_ahci_get_stats(r->ahci, &as);
    p->halted_at_stop = as.halted;
    rs_err e = { 0 };
    assert_int_equal(rs_cont(r->vm, &e), 0);
}

static void test_eio_ncq_write_stop(void **state)
{
    (void)state;
    /* Tag 5 of the batch below writes sectors 2000+5*64 .. +15. */
    ahci_rig *r = rig_new(DM_ERR_REPORT, DM_ERR_STOP, "op=write errno=EIO sectors=2325-2325 once",
                          false);
    err_probe p = { .allow_cont = true };
    r->hook = hook_cont_on_error;
    r->hook_opaque = &p;
    assert_int_equal(ncq_batch(r, true, 2000, 64, 16, NCQ_DEPTH), 0);
    r->hook = NULL;
    assert_int_equal(p.stops, 1);
    assert_int_equal(p.halted_at_stop, 1);
    assert_true(p.sact_at_stop & (1u << 5));     /* the halted tag stays owned by the device */
    assert_int_equal(r->io_errors, 1);
    assert_int_equal(r->last_action, DM_BLK_ACTION_STOP);
    dm_ahci_stats as;
    dm_ahci_get_stats(r->ahci, &as);
    assert_int_equal(as.reissued, 1);
    assert_int_equal(as.failed, 0);
    assert_int_equal(ncq_batch(r, false, 2000, 64, 16, NCQ_DEPTH), 0);
    zero_counters(r);
    assert_true(rs_is_running(r->vm));
    rig_free(r);
}

static void test_eio_dma_read_stop(void **state)
{
    (void)state;
    ahci_rig *r = rig_new(DM_ERR_STOP, DM_ERR_ENOSPC, NULL, false);
    assert_int_equal(ahci_rig_write_checked(r, 300, 64), 0);
    char err[256];
    assert_int_equal(dm_blk_inject_set(r->blk, "op=read errno=EIO sectors=310-310 once", err,
                                       sizeof(err)), 0);
    err_probe p = { .allow_cont = true };
    r->hook = hook_cont_on_error;
    r->hook_opaque = &p;
    assert_int_equal(ahci_rig_verify(r, 300, 64), 0);
    r->hook = NULL;
    assert_int_equal(p.stops, 1);
    assert_int_equal(p.halted_at_stop, 1);
    assert_int_equal(p.ci_at_stop, 1);            /* non-NCQ: PxCI stays set while halted */
    assert_int_equal(r->last_action, DM_BLK_ACTION_STOP);
    zero_counters(r);
    rig_free(r);
}

static void test_eio_report(void **state)
{
    (void)state;
    ahci_rig *r = rig_new(DM_ERR_REPORT, DM_ERR_REPORT, "op=write errno=EIO sectors=700-700 once",
                          false);
    static uint8_t buf[512];
    guest_check_fill(&r->chk, 700, buf);
    assert_int_equal(guest_ahci_rw(&r->hba, true, 700, 1, buf), -1);   /* the guest sees it */
    assert_true(port_reg(r, 0x10) & (1u << 30) || r->hba.errors == 1);
    assert_int_equal(r->last_action, DM_BLK_ACTION_REPORT);
    assert_true(rs_is_running(r->vm));
    dm_ahci_stats as;
    dm_ahci_get_stats(r->ahci, &as);
    assert_int_equal(as.failed, 1);
    assert_int_equal(as.halted, 0);
    rig_free(r);
}

/* QEMU's default werror=enospc: a full disk stops the VM (and the write
 * completes after cont), any other error fails the command. */
static void test_enospc_default(void **state)
{
    (void)state;
    ahci_rig *r = rig_new(DM_ERR_REPORT, DM_ERR_ENOSPC,
                          "op=write errno=ENOSPC sectors=520-520 once", false);
    err_probe p = { .allow_cont = true };
    r->hook = hook_cont_on_error;
    r->hook_opaque = &p;
    assert_int_equal(ncq_batch(r, true, 500, 8, 8, 8), 0);
    r->hook = NULL;
    assert_int_equal(p.stops, 1);
    assert_int_equal(r->last_action, DM_BLK_ACTION_STOP);
    assert_int_equal(ncq_batch(r, false, 500, 8, 8, 8), 0);
    zero_counters(r);
    char err[256];
    assert_int_equal(dm_blk_inject_set(r->blk, "op=write errno=EIO sectors=600-600 once", err,
                                       sizeof(err)), 0);
    static uint8_t buf[512];
    guest_check_fill(&r->chk, 600, buf);
    assert_int_equal(guest_ahci_rw(&r->hba, true, 600, 1, buf), -1);
    assert_int_equal(r->last_action, DM_BLK_ACTION_REPORT);
    assert_true(rs_is_running(r->vm));
    rig_free(r);
}

/* A halted write, then the guest gives up on it, resets the port and
 * writes newer data to the same sectors: the halted write is discarded,
 * never replayed over the newer data. */
static void guest_gives_up_and_rewrites(ahci_rig *r, bool hba_reset)
{
    assert_int_equal(ahci_rig_write_checked(r, 900, 16), 0);
    char err[256];
    assert_int_equal(dm_blk_inject_set(r->blk, "op=write errno=EIO sectors=900-915", err,
                                       sizeof(err)), 0);
    static uint8_t stale[16 * 512];
    for (unsigned i = 0; i < 16; i++)
        guest_check_fill(&r->chk, 900 + i, stale + 512 * i);   /* never acked */
    struct guest_ahci_io io = { .write = true, .lba = 900, .count = 16, .buf = stale };
    r->bus.timeout_ms = 300;
    assert_int_equal(guest_ahci_ncq(&r->hba, &io, 1), -1);       /* times out: halted */
    r->bus.err[0] = '\0';
    r->bus.timeout_ms = 10000;
    assert_int_equal(rs_get_state(r->vm), RS_IO_ERROR);
    dm_blk_inject_clear(r->blk);
    /* Management continues once the guest waits for work issued while
     * the VM is stopped (latched): the re-init's IDENTIFY, or the newer
     * data itself; the halted write alone does not make it continue. */
    err_probe p = { .allow_cont = true, .need_ci = true };
    r->hook = hook_cont_on_error;
    r->hook_opaque = &p;
    if (hba_reset) {
        struct guest_ahci fresh;
        assert_int_equal(guest_ahci_init(&fresh, &r->bus, &r->fw), 0);  /* GHC.HR */
        r->hba = fresh;
    } else {
        assert_int_equal(guest_ahci_comreset(&r->hba), 0);
    }
    dm_ahci_stats as;
    dm_ahci_get_stats(r->ahci, &as);
    assert_int_equal(as.discarded, 1);
    assert_int_equal(ahci_rig_write_checked(r, 900, 16), 0);
    r->hook = NULL;
    assert_int_equal(p.stops, 1);
    for (int i = 0; i < 20; i++)
        ahci_rig_pump(r, 1);          /* room for a stale replay, were there one */
    assert_int_equal(ahci_rig_verify(r, 900, 16), 0);
    dm_ahci_get_stats(r->ahci, &as);
    assert_int_equal(as.reissued, 0);
    zero_counters(r);
}

static void test_comreset_discards_halted(void **state)
{
    (void)state;
    ahci_rig *r = rig_new(DM_ERR_REPORT, DM_ERR_STOP, NULL, false);
    guest_gives_up_and_rewrites(r, false);
    rig_free(r);
}

static void test_hba_reset_discards_halted(void **state)
{
    (void)state;
    ahci_rig *r = rig_new(DM_ERR_REPORT, DM_ERR_STOP, NULL, false);
    guest_gives_up_and_rewrites(r, true);
    rig_free(r);
}

/* --------------------------------------------------------- save/load */

typedef struct mig_probe {
    bool on_ci;                   /* stop and migrate right after a PxCI write */
    bool on_error;                /* migrate once stopped on an I/O error */
    bool ci_seen;
    unsigned migrations;
    uint32_t sact_saved, ci_saved;
    uint64_t halted_saved;
} mig_probe;

/* The VM stops (a save stops it), the device state goes to a buffer, the
 * dm side is torn down and a new one loads it and continues. */
static void migrate(ahci_rig *r, mig_probe *p)
{
    rs_err e = { 0 };
    if (rs_is_live(r->vm))
        assert_int_equal(rs_vm_stop(r->vm, RS_PAUSED, &e), 0);
    p->sact_saved = port_reg(r, 0x34);
    p->ci_saved = port_reg(r, 0x38);
    dm_ahci_stats as;
    dm_ahci_get_stats(r->ahci, &as);
    p->halted_saved = as.halted;
    uint8_t *buf;
    size_t len;
    assert_int_equal(ahci_rig_save(r, &buf, &len), 0);
    ahci_rig_dm_down(r);
    r->o.inject = NULL;                         /* the new host's disk is healthy */
    assert_int_equal(ahci_rig_dm_up(r, buf, len), 0);
    free(buf);
    p->migrations++;
}

static void hook_migrate(ahci_rig *r, bool write, uint64_t off, uint32_t val)
{
    mig_probe *p = r->hook_opaque;
    if (p->migrations)
        return;
    if (write && p->on_ci && off == 0x100 + 0x38) {
        /* Stop first: the PxCI write is latched, then saved. */
        rs_err e = { 0 };
        assert_int_equal(rs_vm_stop(r->vm, RS_PAUSED, &e), 0);
        p->ci_seen = true;
        return;
    }
    if (!write && p->on_ci && p->ci_seen) {
        migrate(r, p);
        return;
    }
    if (!write && p->on_error && rs_get_state(r->vm) == RS_IO_ERROR)
        migrate(r, p);
}

static void test_save_restore_pending(void **state)
{
    (void)state;
    ahci_rig *r = rig_new(DM_ERR_REPORT, DM_ERR_ENOSPC, NULL, false);
    assert_int_equal(ncq_batch(r, true, 5000, 40, 8, NCQ_DEPTH), 0);
    uint64_t resets = r->hba.resets;
    mig_probe p = { .on_ci = true };
    r->hook = hook_migrate;
    r->hook_opaque = &p;
    assert_int_equal(ncq_batch(r, true, 5000, 40, 8, NCQ_DEPTH), 0);
    r->hook = NULL;
    assert_int_equal(p.migrations, 1);
    assert_int_equal(p.ci_saved, 0xffffffffu);   /* all 32 issued, none started */
    assert_int_equal(p.sact_saved, 0xffffffffu);
    dm_ahci_stats as;
    dm_ahci_get_stats(r->ahci, &as);
    assert_int_equal(as.ncq_commands, NCQ_DEPTH); /* the new dm ran all of them */
    assert_int_equal(ncq_batch(r, false, 5000, 40, 8, NCQ_DEPTH), 0);
    assert_int_equal(r->hba.resets, resets);      /* no controller re-init */
    zero_counters(r);
    rig_free(r);
}

static void test_save_restore_halted(void **state)
{
    (void)state;
    ahci_rig *r = rig_new(DM_ERR_REPORT, DM_ERR_STOP, "op=write errno=EIO sectors=6000-6000",
                          false);
    uint64_t resets = r->hba.resets;
    mig_probe p = { .on_error = true };
    r->hook = hook_migrate;
    r->hook_opaque = &p;
    /* Tag 0 fails (stop) while the other tags are at the backend. */
    assert_int_equal(ncq_batch(r, true, 6000, 100, 16, NCQ_DEPTH), 0);
    r->hook = NULL;
    assert_int_equal(p.migrations, 1);
    assert_int_equal(p.halted_saved, 1);
    assert_true(p.sact_saved & 1u);
    dm_ahci_stats as;
    dm_ahci_get_stats(r->ahci, &as);
    assert_int_equal(as.reissued, 1);             /* rebuilt from guest memory */
    assert_int_equal(ncq_batch(r, false, 6000, 100, 16, NCQ_DEPTH), 0);
    assert_int_equal(r->hba.resets, resets);
    zero_counters(r);
    rig_free(r);
}

/* The loader refuses a halted NCQ command whose tag is not its slot,
 * naming the field, and applies nothing. */
typedef struct save_probe {
    uint8_t *buf;
    size_t len;
} save_probe;

/* Saves once the VM stopped on the error, heals the disk and continues. */
static void hook_save_on_error(ahci_rig *r, bool write, uint64_t off, uint32_t val)
{
    save_probe *p = r->hook_opaque;
    if (write || p->buf || rs_get_state(r->vm) != RS_IO_ERROR)
        return;
    assert_int_equal(ahci_rig_save(r, &p->buf, &p->len), 0);
    dm_blk_inject_clear(r->blk);
    rs_err e = { 0 };
    assert_int_equal(rs_cont(r->vm, &e), 0);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void test_load_refuses_bad_tag(void **state)
{
    (void)state;
    ahci_rig *r = rig_new(DM_ERR_REPORT, DM_ERR_STOP, "op=write errno=EIO sectors=7000-7000",
                          false);
    save_probe p = { 0 };
    r->hook = hook_save_on_error;
    r->hook_opaque = &p;
    assert_int_equal(ncq_batch(r, true, 7000, 16, 16, 4), 0);
    r->hook = NULL;
    assert_non_null(p.buf);
    uint8_t *buf = p.buf;
    size_t len = p.len;
    /* Find the "ahci" section: 'SECT', u16 4, "ahci", instance, version,
     * length, CRC, payload. */
    uint8_t *sec = NULL;
    for (size_t i = 0; i + 10 < len; i++)
        if (!memcmp(buf + i, "SECT", 4) && buf[i + 4] == 4 && buf[i + 5] == 0 &&
            !memcmp(buf + i + 6, "ahci", 4)) {
            sec = buf + i;
            break;
        }
    assert_non_null(sec);
    uint8_t *hdr = sec + 10;
    uint32_t plen = le32(hdr + 8);
    uint8_t *payload = hdr + 16;
    /* ghc is irq_pending | port 0: present clb fb 10 regs, settings,
     * halted mask, then the halted slot: ncq command kind lba nsect tag. */
    size_t tag_off = 4 + 4 + 1 + 1 + 8 + 8 + 40 + 3 + 4 + 1 + 1 + 1 + 8 + 4;
    assert_true(tag_off < plen);
    assert_int_equal(payload[tag_off], 0);
    payload[tag_off] = 7;
    put_le32(hdr + 12, dm_crc32(0, payload, plen));
    put_le32(buf + len - 4, dm_crc32(0, buf, len - 4));
    char err[512] = "";
    assert_int_equal(dm_state_load_mem(r->state, buf, len, err, sizeof(err)), -EINVAL);
    print_message("refused: %s\n", err);
    assert_non_null(strstr(err, "port0.slot0.tag"));
    free(buf);
    /* Nothing was applied: the device still works. */
    assert_int_equal(ncq_batch(r, false, 7000, 16, 16, 4), 0);
    zero_counters(r);
    rig_free(r);
}

/* --------------------------------------------------- registers, aborts */

static uint32_t hba_reg(ahci_rig *r, unsigned reg)
{
    uint64_t v = 0;
    assert_int_equal(dm_io_read(r->mmio, AHCI_RIG_ABAR + reg, 4, &v), 0);
    return (uint32_t)v;
}

/* Issues one hand-built command (no data) in slot 0 and waits for it. */
static uint32_t raw_command(ahci_rig *r, uint8_t cmd, uint8_t feature)
{
    uint8_t fis[20] = { 0x27, 0x80, cmd, feature };
    uint32_t hdr[8] = { 5 };      /* CFL 5 dwords, no PRD */
    hdr[2] = (uint32_t)r->hba.ctba[0];
    memcpy(r->ram + r->hba.ctba[0], fis, sizeof(fis));
    memcpy(r->ram + r->hba.clb, hdr, sizeof(hdr));
    assert_int_equal(guest_writel(&r->bus, r->hba.port + 0x10, 0xffffffffu), 0);
    assert_int_equal(guest_writel(&r->bus, r->hba.port + 0x38, 1), 0);
    for (int i = 0; i < 1000 && port_reg(r, 0x38); i++)
        ahci_rig_pump(r, 1);
    assert_int_equal(port_reg(r, 0x38), 0);
    return port_reg(r, 0x10);
}

static void test_registers_and_aborts(void **state)
{
    (void)state;
    ahci_rig *r = rig_new(DM_ERR_REPORT, DM_ERR_IGNORE, "op=write errno=EIO sectors=40-40 once",
                          false);
    uint32_t cap = hba_reg(r, 0x00);
    assert_true(cap & (1u << 31));               /* 64-bit addressing */
    assert_true(cap & (1u << 30));               /* NCQ */
    assert_int_equal((cap >> 8) & 0x1f, 31);     /* 32 slots */
    assert_int_equal(cap & 0x1f, 5);             /* 6 ports */
    assert_true(hba_reg(r, 0x04) & 0x80000000u); /* AHCI enabled */
    assert_int_equal(hba_reg(r, 0x0c), 0x3f);
    assert_int_equal(hba_reg(r, 0x10), 0x10300);
    /* Port 1 has no disk: no link, no signature. */
    assert_int_equal(hba_reg(r, 0x180 + 0x28), 0);
    assert_int_equal(hba_reg(r, 0x180 + 0x24), 0xffffffffu);
    assert_int_equal(port_reg(r, 0x28) & 0xf, 3);
    assert_int_equal(port_reg(r, 0x24), 0x101);
    /* An unimplemented command (READ LOG EXT) and a bad SET FEATURES are
     * aborted; a good one is not. */
    uint32_t is = raw_command(r, 0x2f, 0);
    assert_true(is & (1u << 30));
    assert_int_equal(port_reg(r, 0x20), 0x0441);          /* ABRT, DRDY|ERR */
    assert_true(raw_command(r, 0xef, 0x99) & (1u << 30));
    is = raw_command(r, 0xef, 0x82);                       /* write cache off */
    assert_false(is & (1u << 30));
    assert_true(is & 1u);                                  /* D2H FIS received */
    assert_int_equal(port_reg(r, 0x20), 0x50);
    uint16_t id[256];
    assert_int_equal(guest_ahci_identify(&r->hba, id), 0);
    assert_false(id[85] & (1u << 5));                      /* IDENTIFY reports it */
    /* werror=ignore: the failed write completes as if it had succeeded. */
    static uint8_t buf[512];
    guest_check_fill(&r->chk, 40, buf);
    assert_int_equal(guest_ahci_rw(&r->hba, true, 40, 1, buf), 0);
    assert_int_equal(r->last_action, DM_BLK_ACTION_IGNORE);
    assert_true(rs_is_running(r->vm));
    rig_free(r);
}

/* A guest asking for more bounce memory than the bound (8 NCQ reads of
 * 32 MiB against 128 MiB) gets its commands run a few at a time, all of
 * them completing. */
static void test_bounce_bound(void **state)
{
    (void)state;
    ahci_rig *r = rig_new(DM_ERR_REPORT, DM_ERR_ENOSPC, "op=read delay=20ms", false);
    const unsigned n = 8, prds = 8;
    const uint32_t chunk = 4u << 20;             /* the largest PRD */
    uint64_t data = guest_ram_alloc(&r->bus, chunk, 4096);
    assert_true(data != 0);
    for (unsigned t = 0; t < n; t++) {
        uint64_t ctba = guest_ram_alloc(&r->bus, 0x80 + 16 * prds, 128);
        assert_true(ctba != 0);
        uint8_t fis[20] = { 0x27, 0x80, 0x60, 0 /* 65536 sectors */ };
        fis[7] = 0x40;
        fis[12] = (uint8_t)(t << 3);
        memcpy(r->ram + ctba, fis, sizeof(fis));
        for (unsigned i = 0; i < prds; i++) {
            uint32_t prd[4] = { (uint32_t)data, 0, 0, chunk - 1 };
            memcpy(r->ram + ctba + 0x80 + 16 * i, prd, sizeof(prd));
        }
        uint32_t hdr[8] = { 5u | prds << 16, 0, (uint32_t)ctba };
        memcpy(r->ram + r->hba.clb + 32 * t, hdr, sizeof(hdr));
    }
    assert_int_equal(guest_writel(&r->bus, r->hba.port + 0x34, 0xff), 0);
    assert_int_equal(guest_writel(&r->bus, r->hba.port + 0x38, 0xff), 0);
    for (int i = 0; i < 10000 && port_reg(r, 0x34); i++)
        ahci_rig_pump(r, 5);
    assert_int_equal(port_reg(r, 0x34), 0);
    assert_false(port_reg(r, 0x10) & (1u << 30));
    dm_ahci_stats as;
    dm_ahci_get_stats(r->ahci, &as);
    assert_int_equal(as.ncq_commands, n);
    assert_int_equal(as.failed, 0);
    assert_true(as.bounce_waits > 0);
    assert_true(as.max_ncq_in_flight <= 4);
    rig_free(r);
}

/* ------------------------------------------------------- disk module */

/* dm_disks puts a disk with bus AHCI on an ICH9 AHCI function it creates
 * in the first free slot from 3 (here 4: the rig's own is at 3), refuses
 * ports beyond 5 and a taken port, and frees it all. */
static void test_disks_module(void **state)
{
    (void)state;
    ahci_rig *r = rig_new(DM_ERR_REPORT, DM_ERR_ENOSPC, NULL, false);
    char img[128];
    snprintf(img, sizeof(img), "%s/sdb.img", r->dir);
    FILE *f = fopen(img, "w");
    assert_non_null(f);
    assert_int_equal(ftruncate(fileno(f), 1 << 20), 0);
    fclose(f);
    dm_disks_cfg dc = { .loop = r->loop, .pio = r->pio, .pci = r->pci, .irq = r->irq,
                        .vm = r->vm, .gm = r->gm };
    dm_disks *ds;
    char err[512] = "";
    assert_int_equal(dm_disks_new(&dc, &ds, err, sizeof(err)), 0);
    dm_disk_list l = { .n = 1 };
    dm_disk_spec *s = &l.disk[0];
    snprintf(s->name, sizeof(s->name), "sdb");
    snprintf(s->path, sizeof(s->path), "%s", img);
    s->bus = DM_DISK_AHCI;
    s->unit = 6;
    assert_int_equal(dm_disks_attach(ds, &l, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "AHCI port 6 does not exist"));
    assert_null(dm_pci_find(r->pci, dm_pci_sbdf(0, 0, 4, 0)));
    s->unit = 1;
    assert_int_equal(dm_disks_attach(ds, &l, err, sizeof(err)), 0);
    dm_pci_dev *d = dm_pci_find(r->pci, dm_pci_sbdf(0, 0, 4, 0));
    assert_non_null(d);
    assert_int_equal(dm_pci_cfg_get(d, DM_PCI_DEVICE_ID, 2), 0x2922);
    assert_int_equal(dm_disks_count(ds), 1);
    assert_int_equal(dm_disks_parked(ds), 0);
    snprintf(s->name, sizeof(s->name), "sdc");
    assert_int_equal(dm_disks_attach(ds, &l, err, sizeof(err)), -EEXIST);
    assert_non_null(strstr(err, "AHCI port 1 is already taken by sdb"));
    dm_disks_free(ds);
    assert_null(dm_pci_find(r->pci, dm_pci_sbdf(0, 0, 4, 0)));
    unlink(img);
    rig_free(r);
}

int main(void)
{
    dm_log_set_level(DM_LOG_WARNING);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_identify_and_dma, teardown),
        cmocka_unit_test_teardown(test_ncq_depth32, teardown),
        cmocka_unit_test_teardown(test_stopped_latches, teardown),
        cmocka_unit_test_teardown(test_stop_drains_and_holds_irq, teardown),
        cmocka_unit_test_teardown(test_msi, teardown),
        cmocka_unit_test_teardown(test_eio_ncq_write_stop, teardown),
        cmocka_unit_test_teardown(test_eio_dma_read_stop, teardown),
        cmocka_unit_test_teardown(test_eio_report, teardown),
        cmocka_unit_test_teardown(test_enospc_default, teardown),
        cmocka_unit_test_teardown(test_comreset_discards_halted, teardown),
        cmocka_unit_test_teardown(test_hba_reset_discards_halted, teardown),
        cmocka_unit_test_teardown(test_save_restore_pending, teardown),
        cmocka_unit_test_teardown(test_save_restore_halted, teardown),
        cmocka_unit_test_teardown(test_load_refuses_bad_tag, teardown),
        cmocka_unit_test_teardown(test_registers_and_aborts, teardown),
        cmocka_unit_test_teardown(test_bounce_bound, teardown),
        cmocka_unit_test_teardown(test_disks_module, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

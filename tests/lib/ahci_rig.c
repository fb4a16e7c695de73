/*
 * The one-thread AHCI rig (ahci_rig.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ahci_rig.h"
#include "dm_log.h"
#include "hv.h"
#include "xsim_emu.h"

#define RIG_RAM_MIB 96
#define RIG_RAM_BASE (1u << 20)
#define RIG_PCI_SLOT DM_AHCI_PCI_SLOT

static int rig_fail(const char *what, const char *why)
{
    fprintf(stderr, "ahci rig: %s: %s\n", what, why);
    return -1;
}

/* ------------------------------------------------------ what the guest sees */

static int rec_isa(void *opaque, unsigned irq, bool level)
{
    (void)opaque, (void)irq, (void)level;
    return 0;
}

static int rec_intx(void *opaque, unsigned slot, unsigned intx, bool level)
{
    ahci_rig *r = opaque;
    if (slot != RIG_PCI_SLOT || intx != 0)
        return 0;
    if (level && !r->intx) {
        r->intx_raises++;
        if (!rs_is_live(r->vm))
            r->intx_while_stopped = true;
    }
    r->intx = level;
    return 0;
}

static const dm_irq_backend irq_be = { rec_isa, rec_intx };

static int rec_msi(void *opaque, uint64_t addr, uint32_t data)
{
    ahci_rig *r = opaque;
    r->msis++;
    r->msi_addr = addr;
    r->msi_data = data;
    if (!rs_is_live(r->vm))
        r->msi_while_stopped = true;
    return 0;
}

static void on_io_error(void *opaque, const dm_blk_io_error *e)
{
    ahci_rig *r = opaque;
    r->io_errors++;
    r->last_action = e->action;
}

/* ------------------------------------------------------------ the dm side */

static void on_requests(void *opaque, int fd)
{
    ahci_rig *r = opaque;
    (void)fd;
    int status;
    rs_process_requests(r->vm, &status);
}

void ahci_rig_pump(ahci_rig *r, int timeout_ms)
{
    dm_loop_iterate(r->loop, timeout_ms);
}

void ahci_rig_dm_down(ahci_rig *r)
{
    if (!r->up)
        return;
    r->up = false;
    dm_ahci_free(r->ahci);
    dm_blk_close(r->blk);
    dm_pci_bus_free(r->pci);
    dm_state_reg_free(r->state);
    dm_watch_remove(r->w_req);
    dm_irq_free(r->irq);
    dm_io_space_free(r->mmio);
    dm_io_space_free(r->pio);
    rs_vm_free(r->vm);
    dm_loop_free(r->loop);
    dm_guestmem_free(r->gm);
    dm_xen_close(&r->xen);
    r->ahci = NULL;
    r->blk = NULL;
}

int ahci_rig_dm_up(ahci_rig *r, const uint8_t *state, size_t len)
{
    char err[512] = "";
    if (dm_xen_open(&r->xen, (domid_t)r->dom, err, sizeof(err)) < 0)
        return rig_fail("Xen libraries", err);
    if (!(r->gm = dm_guestmem_new(&r->xen)) || !(r->loop = dm_loop_new()) ||
        !(r->vm = rs_vm_new()) || !(r->pio = dm_io_space_new(DM_IO_PORT)) ||
        !(r->mmio = dm_io_space_new(DM_IO_MMIO)) || !(r->irq = dm_irq_new(&irq_be, r)) ||
        !(r->state = dm_state_reg_new()))
        return rig_fail("dm modules", strerror(errno));
    rs_set_log(r->vm, NULL, NULL);
    if (!(r->w_req = dm_watch_add(r->loop, rs_notify_fd(r->vm), on_requests, NULL, r)) ||
        dm_irq_attach_runstate(r->irq, r->vm, 0) < 0 ||
        !(r->pci = dm_pci_bus_new(r->pio, r->mmio, r->irq)) ||
        dm_pci_bus_set_state_reg(r->pci, r->state) < 0)
        return rig_fail("dm wiring", strerror(errno));
    dm_blk_opts bo = {
        .path = r->img, .name = "sda", .cache = DM_CACHE_WRITEBACK,
        .rerror = r->o.rerror, .werror = r->o.werror, .inject = r->o.inject,
        .workers = r->o.workers, .vm = r->vm, .on_event = on_io_error, .event_opaque = r,
    };
    if (!(r->blk = dm_blk_open(r->loop, &bo, err, sizeof(err))))
        return rig_fail("block backend", err);
    dm_ahci_cfg ac = {
        .pci = r->pci, .pci_slot = RIG_PCI_SLOT, .gm = r->gm, .loop = r->loop, .vm = r->vm,
        .state = r->state, .inject_msi = r->o.msi ? rec_msi : NULL, .msi_opaque = r,
    };
    if (dm_ahci_new(&ac, &r->ahci, err, sizeof(err)) < 0 ||
        dm_ahci_attach(r->ahci, 0, r->blk, err, sizeof(err)) < 0)
        return rig_fail("AHCI", err);
    r->up = true;
    rs_err re = { 0 };
    if (state) {
        if (rs_hold_acquire(r->vm, RS_INMIGRATE, &re) < 0)
            return rig_fail("inmigrate hold", re.msg);
        if (dm_state_load_mem(r->state, state, len, err, sizeof(err)) < 0)
            return rig_fail("load device state", err);
    }
    if (rs_cont(r->vm, &re) < 0)
        return rig_fail("start", re.msg);
    if (state && rs_hold_release(r->vm, RS_INMIGRATE, &re) < 0)
        return rig_fail("release inmigrate", re.msg);
    return 0;
}

int ahci_rig_save(ahci_rig *r, uint8_t **buf, size_t *len)
{
    char err[512] = "";
    if (dm_state_save_mem(r->state, buf, len, err, sizeof(err)) < 0)
        return rig_fail("save device state", err);
    return 0;
}

/* ------------------------------------------------------ the guest's bus */

static int bus_pio_in(struct guest_bus *b, uint16_t port, unsigned size, uint32_t *val)
{
    ahci_rig *r = b->priv;
    ahci_rig_pump(r, 0);
    if (port == 0xcf8 && size == 4) {
        *val = r->cf8;
        return 0;
    }
    /* Xen turns CFC accesses under an enabled CF8 into PCI_CONFIG ioreqs. */
    if (port >= 0xcfc && port < 0xd00 && (r->cf8 & 0x80000000u)) {
        uint32_t sbdf = (r->cf8 >> 8) & 0xffff;
        unsigned reg = (r->cf8 & 0xfc) | (port & 3);
        if (dm_pci_config_read(r->pci, sbdf, reg, size, val) < 0)
            *val = (uint32_t)dm_io_ones(size);
        return 0;
    }
    uint64_t v;
    dm_io_read(r->pio, port, size, &v);
    *val = (uint32_t)v;
    return 0;
}

static int bus_pio_out(struct guest_bus *b, uint16_t port, unsigned size, uint32_t val)
{
    ahci_rig *r = b->priv;
    ahci_rig_pump(r, 0);
    if (port == 0xcf8 && size == 4) {
        r->cf8 = val;
        return 0;
    }
    if (port >= 0xcfc && port < 0xd00 && (r->cf8 & 0x80000000u)) {
        dm_pci_config_write(r->pci, (r->cf8 >> 8) & 0xffff, (r->cf8 & 0xfc) | (port & 3), size,
                            val);
        return 0;
    }
    dm_io_write(r->pio, port, size, val);
    return 0;
}

static int bus_mmio_read(struct guest_bus *b, uint64_t addr, unsigned size, uint64_t *val)
{
    ahci_rig *r = b->priv;
    if (r->hook)
        r->hook(r, false, addr - AHCI_RIG_ABAR, 0);
    /* A register polled again: wait (bounded) for the dm to have work,
     * as a vCPU spinning on it would give the dm time. */
    ahci_rig_pump(r, addr == r->last_read ? 1 : 0);
    r->last_read = addr;
    dm_io_read(r->mmio, addr, size, val);
    return 0;
}

static int bus_mmio_write(struct guest_bus *b, uint64_t addr, unsigned size, uint64_t val)
{
    ahci_rig *r = b->priv;
    r->last_read = UINT64_MAX;
    if (r->hook)
        r->hook(r, true, addr - AHCI_RIG_ABAR, (uint32_t)val);
    ahci_rig_pump(r, 0);
    dm_io_write(r->mmio, addr, size, val);
    return 0;
}

static int bus_mem_read(struct guest_bus *b, uint64_t gpa, void *buf, size_t len)
{
    ahci_rig *r = b->priv;
    if (gpa > r->ram_size || len > r->ram_size - gpa)
        return guest_bus_fail(b, "rig: RAM read beyond %llu", (unsigned long long)r->ram_size);
    memcpy(buf, r->ram + gpa, len);
    return 0;
}

static int bus_mem_write(struct guest_bus *b, uint64_t gpa, const void *buf, size_t len)
{
    ahci_rig *r = b->priv;
    if (gpa > r->ram_size || len > r->ram_size - gpa)
        return guest_bus_fail(b, "rig: RAM write beyond %llu", (unsigned long long)r->ram_size);
    memcpy(r->ram + gpa, buf, len);
    return 0;
}

static int bus_irq_level(struct guest_bus *b, unsigned gsi)
{
    ahci_rig *r = b->priv;
    (void)gsi;
    return r->intx;
}

static uint64_t bus_irq_count(struct guest_bus *b, unsigned gsi)
{
    ahci_rig *r = b->priv;
    (void)gsi;
    return r->intx_raises;
}

static int bus_irq_wait(struct guest_bus *b, unsigned gsi, int timeout_ms)
{
    ahci_rig *r = b->priv;
    int64_t end = dm_now_ns() + (int64_t)timeout_ms * 1000000;
    while (!r->intx && dm_now_ns() < end)
        ahci_rig_pump(r, 1);
    return bus_irq_level(b, gsi);
}

static int bus_clock_step(struct guest_bus *b, uint64_t ns)
{
    (void)b, (void)ns;
    return 0;
}

static void bus_close(struct guest_bus *b)
{
    (void)b;
}

static const struct guest_bus_ops rig_bus_ops = {
    .pio_in = bus_pio_in, .pio_out = bus_pio_out,
    .mmio_read = bus_mmio_read, .mmio_write = bus_mmio_write,
    .mem_read = bus_mem_read, .mem_write = bus_mem_write,
    .irq_wait = bus_irq_wait, .irq_level = bus_irq_level, .irq_count = bus_irq_count,
    .clock_step = bus_clock_step, .close = bus_close,
};

/* ------------------------------------------------------------ the rig */

int ahci_rig_start(ahci_rig *r, const ahci_rig_opts *o)
{
    memset(r, 0, sizeof(*r));
    r->o = *o;
    r->last_read = UINT64_MAX;
    snprintf(r->dir, sizeof(r->dir), "/tmp/ahci-rig.XXXXXX");
    if (!mkdtemp(r->dir))
        return rig_fail("temporary directory", strerror(errno));
    if (o->image) {
        snprintf(r->img, sizeof(r->img), "%s", o->image);
    } else {
        snprintf(r->img, sizeof(r->img), "%s/sda.img", r->dir);
        int fd = open(r->img, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || ftruncate(fd, (off_t)(o->disk_mib << 20)) < 0)
            return rig_fail("image", strerror(errno));
        close(fd);
        r->own_img = true;
    }
    if (xsim_fixture_start() < 0)
        return rig_fail("hypervisor", "cannot start the in-process hypervisor");
    hv_log_quiet(true);
    int id = hv_domain_create(0, 1, RIG_RAM_MIB, "ahci-rig");
    if (id <= 0)
        return rig_fail("domain", "cannot create");
    r->dom = (uint32_t)id;
    r->d = hv_domain_get(r->dom);
    r->ram = hv_domain_ram(r->d, &r->ram_size);
    if (hv_domain_unpause(r->dom) < 0)
        return rig_fail("domain", "cannot unpause");
    if (ahci_rig_dm_up(r, NULL, 0) < 0)
        return -1;
    guest_bus_init(&r->bus, &rig_bus_ops, r, RIG_RAM_BASE, r->ram_size);
    r->bus.timeout_ms = o->timeout_ms ? o->timeout_ms : 10000;
    /* The firmware puts the ABAR where the tests expect it. */
    if (guest_fw_scan(&r->bus, &r->fw, false) < 0)
        return rig_fail("firmware PCI pass", guest_bus_error(&r->bus));
    for (unsigned i = 0; i < r->fw.ndevs; i++)
        if (r->fw.dev[i].vendor == 0x8086 && r->fw.dev[i].device == 0x2922)
            r->fw.dev[i].bar[5] = AHCI_RIG_ABAR;
    unsigned bdf = GUEST_BDF(0, RIG_PCI_SLOT, 0);
    if (guest_pci_write(&r->bus, bdf, DM_PCI_BAR0 + 4 * 5, 4, AHCI_RIG_ABAR) < 0 ||
        guest_pci_write(&r->bus, bdf, DM_PCI_COMMAND, 2,
                        DM_PCI_COMMAND_MEMORY | DM_PCI_COMMAND_MASTER) < 0)
        return rig_fail("ABAR", guest_bus_error(&r->bus));
    if (guest_ahci_init(&r->hba, &r->bus, &r->fw) < 0)
        return rig_fail("AHCI driver init", guest_bus_error(&r->bus));
    if (guest_check_init(&r->chk, &r->bus, r->hba.sectors) < 0)
        return rig_fail("checker", guest_bus_error(&r->bus));
    return 0;
}

void ahci_rig_stop(ahci_rig *r)
{
    ahci_rig_dm_down(r);
    if (r->chk.bus)
        guest_check_destroy(&r->chk);
    if (r->d) {
        hv_domain_put(r->d);
        hv_domain_destroy(r->dom);
        xsim_fixture_stop();
    }
    if (r->own_img)
        unlink(r->img);
    if (r->dir[0])
        rmdir(r->dir);
}

int ahci_rig_write_checked(ahci_rig *r, uint64_t lba, unsigned n)
{
    static uint8_t buf[128 * 512];
    uint64_t seq[128];
    while (n) {
        unsigned c = n > 128 ? 128 : n;
        for (unsigned i = 0; i < c; i++)
            seq[i] = guest_check_fill(&r->chk, lba + i, buf + 512 * i);
        if (guest_ahci_rw(&r->hba, true, lba, c, buf) < 0)
            return -1;
        for (unsigned i = 0; i < c; i++)
            guest_check_acked(&r->chk, lba + i, seq[i]);
        lba += c;
        n -= c;
    }
    return 0;
}

int ahci_rig_verify(ahci_rig *r, uint64_t lba, unsigned n)
{
    static uint8_t buf[128 * 512];
    while (n) {
        unsigned c = n > 128 ? 128 : n;
        if (guest_ahci_rw(&r->hba, false, lba, c, buf) < 0)
            return -1;
        for (unsigned i = 0; i < c; i++)
            guest_check_count(&r->chk, guest_check_classify(&r->chk, lba + i, buf + 512 * i));
        lba += c;
        n -= c;
    }
    return 0;
}

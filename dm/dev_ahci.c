/*
 * The ICH9 AHCI function: PCI identity, the ABAR's generic host registers,
 * the interrupt (INTx or MSI, held while the VM is stopped) and the
 * run-state handler (drain on stop, deferred re-issue on start).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dev_ahci_int.h"
#include "dm_log.h"

#define ICH9_AHCI_MSI_CAP 0x80    /* where ICH9 (and QEMU's model) put it */

static uint32_t hba_cap(void)
{
    return AHCI_CAP_S64A | AHCI_CAP_SNCQ | AHCI_CAP_ISS_GEN1 | AHCI_CAP_SAM |
           (uint32_t)(DM_AHCI_SLOTS - 1) << 8 | (uint32_t)(DM_AHCI_PORTS - 1);
}

void ahci_update_irq(dm_ahci *a, bool from_event)
{
    for (unsigned i = 0; i < DM_AHCI_PORTS; i++)
        if (a->ports[i].is & a->ports[i].ie)
            a->is |= 1u << i;
    bool level = (a->ghc & AHCI_GHC_IE) && a->is;
    bool msi = a->has_msi && dm_pci_msi_enabled(&a->msi);
    if (!a->running) {
        /* Stopped: nothing reaches the guest; a raise waits for the start.
         * Lowering is the register-level answer to the guest and goes now. */
        if (level)
            a->irq_pending = true;
        if (!level && a->intx) {
            a->intx = false;
            dm_pci_set_irq(a->dev, false);
        }
        return;
    }
    a->irq_pending = false;
    if (msi) {
        if (a->intx) {
            a->intx = false;
            dm_pci_set_irq(a->dev, false);
        }
        if (level && from_event && dm_pci_msi_notify(&a->msi) > 0)
            a->stats.msis++;
        return;
    }
    if (level != a->intx) {
        a->intx = level;
        if (level)
            a->stats.irqs++;
        dm_pci_set_irq(a->dev, level);
    }
}

static void hba_reset(dm_ahci *a, const char *why)
{
    a->stats.hba_resets++;
    a->ghc = AHCI_GHC_AE;
    for (unsigned i = 0; i < DM_AHCI_PORTS; i++)
        ahci_port_reset(&a->ports[i], why);
    a->is = 0;
    a->irq_pending = false;
    ahci_update_irq(a, false);
}

static uint64_t abar_read(void *opaque, uint64_t off, unsigned size)
{
    dm_ahci *a = opaque;
    (void)size;
    if (off >= AHCI_PORT_BASE) {
        unsigned n = (unsigned)((off - AHCI_PORT_BASE) / AHCI_PORT_LEN);
        if (n < DM_AHCI_PORTS)
            return ahci_port_read(&a->ports[n], (unsigned)((off - AHCI_PORT_BASE) % AHCI_PORT_LEN));
        return 0;
    }
    switch (off) {
    case AHCI_CAP:
        return hba_cap();
    case AHCI_GHC:
        return a->ghc | AHCI_GHC_AE;
    case AHCI_IS:
        return a->is;
    case AHCI_PI:
        return (1u << DM_AHCI_PORTS) - 1;
    case AHCI_VS:
        return AHCI_VERSION;
    default:
        /* CCC, enclosure management, CAP2, BOHC: zero, as an HBA whose CAP
         * (CCCS, EMS clear) and CAP2 (0) offer none of these reads them. */
        return 0;
    }
}

static void abar_write(void *opaque, uint64_t off, uint64_t val64, unsigned size)
{
    dm_ahci *a = opaque;
    uint32_t val = (uint32_t)val64;
    (void)size;
    if (off >= AHCI_PORT_BASE) {
        unsigned n = (unsigned)((off - AHCI_PORT_BASE) / AHCI_PORT_LEN);
        if (n < DM_AHCI_PORTS)
            ahci_port_write(&a->ports[n], (unsigned)((off - AHCI_PORT_BASE) % AHCI_PORT_LEN), val);
        return;
    }
    switch (off) {
    case AHCI_GHC: {
        if (val & AHCI_GHC_HR) {
            /* The reset completes at once: HR reads 0 on the next access. */
            hba_reset(a, "HBA reset (GHC.HR)");
            return;
        }
        bool ie_rise = (val & AHCI_GHC_IE) && !(a->ghc & AHCI_GHC_IE);
        a->ghc = (val & AHCI_GHC_IE) | AHCI_GHC_AE;
        ahci_update_irq(a, ie_rise);
        return;
    }
    case AHCI_IS:
        a->is &= ~val;
        ahci_update_irq(a, false);
        return;
    default:
        return;     /* read-only or unimplemented */
    }
}

static const dm_io_ops abar_ops = {
    .read = abar_read,
    .write = abar_write,
    .sizes = DM_IO_SIZE_4,
};

/* Re-issue halted slots and start latched commands, from the main loop
 * after the start completed (QEMU's restart bottom half). */
static void on_restart(void *opaque)
{
    dm_ahci *a = opaque;
    if (!a->running)
        return;     /* stopped again before the timer fired: the next start re-arms it */
    for (unsigned i = 0; i < DM_AHCI_PORTS; i++) {
        ahci_port_restart_halted(&a->ports[i]);
        ahci_port_kick(&a->ports[i]);
    }
}

static void on_state_change(void *opaque, bool running, rs_state state)
{
    dm_ahci *a = opaque;
    (void)state;
    if (!running) {
        a->running = false;
        /* Every completion happens now, before STOP: none after it. */
        for (unsigned i = 0; i < DM_AHCI_PORTS; i++)
            if (a->ports[i].blk)
                dm_blk_drain(a->ports[i].blk);
        return;
    }
    a->running = true;
    if (a->irq_pending)
        ahci_update_irq(a, true);
    if (dm_timer_arm(a->restart, 0, 0) < 0)
        dm_err("ahci: cannot schedule the re-issue of halted commands");
}

int dm_ahci_new(const dm_ahci_cfg *cfg, dm_ahci **out, char *err, size_t errlen)
{
    if (!cfg || !cfg->pci || !cfg->gm || !cfg->loop || !cfg->vm || !out) {
        snprintf(err, errlen, "ahci: missing PCI bus, guest memory, loop or run state");
        return -EINVAL;
    }
    dm_ahci *a = calloc(1, sizeof(*a));
    if (!a) {
        snprintf(err, errlen, "ahci: out of memory");
        return -ENOMEM;
    }
    a->cfg = *cfg;
    for (unsigned i = 0; i < DM_AHCI_PORTS; i++) {
        ahci_port *p = &a->ports[i];
        p->a = a;
        p->n = i;
        for (unsigned s = 0; s < DM_AHCI_SLOTS; s++) {
            p->slots[s].p = p;
            p->slots[s].slot = s;
        }
    }
    const dm_pci_id id = {
        .vendor = 0x8086, .device = 0x2922,        /* 82801IR ICH9R 6-port AHCI */
        .subsys_vendor = 0x1af4, .subsys_id = 0x1100,
        .revision = 0x02, .class_code = 0x010601, .int_pin = 1,
    };
    int r = dm_pci_add(cfg->pci, "ich9-ahci", cfg->pci_slot, 0, &id, NULL, a, &a->dev);
    if (r < 0) {
        snprintf(err, errlen, "ahci: cannot add PCI function 00:%02x.0: %s", cfg->pci_slot,
                 strerror(-r));
        free(a);
        return r;
    }
    const char *what = "ABAR (BAR5)";
    if ((r = dm_pci_bar_init(a->dev, AHCI_BAR, false, AHCI_BAR_SIZE, &abar_ops, a)) < 0)
        goto fail;
    if (cfg->inject_msi) {
        what = "MSI capability";
        if ((r = dm_pci_msi_init(&a->msi, a->dev, ICH9_AHCI_MSI_CAP, cfg->inject_msi,
                                 cfg->msi_opaque)) < 0)
            goto fail;
        a->has_msi = true;
    }
    what = "re-issue timer";
    if (!(a->restart = dm_timer_new(cfg->loop, on_restart, a))) {
        r = -ENOMEM;
        goto fail;
    }
    what = "change-state handler";
    if (!(a->h = rs_handler_add(cfg->vm, on_state_change, a, cfg->priority))) {
        r = errno ? -errno : -ENOMEM;
        goto fail;
    }
    what = "state section";
    if (cfg->state && (r = ahci_state_register(a)) < 0)
        goto fail;
    a->running = rs_is_live(cfg->vm);
    hba_reset(a, "power-on");
    memset(&a->stats, 0, sizeof(a->stats));
    *out = a;
    return 0;
fail:
    snprintf(err, errlen, "ahci: %s: %s", what, strerror(-r));
    if (a->h)
        rs_handler_del(cfg->vm, a->h);
    if (a->restart)
        dm_timer_free(a->restart);
    dm_pci_remove(cfg->pci, a->dev);
    free(a);
    return r;
}

int dm_ahci_attach(dm_ahci *a, unsigned port, dm_blk *blk, char *err, size_t errlen)
{
    if (!a || !blk || port >= DM_AHCI_PORTS) {
        snprintf(err, errlen, "ahci: port %u does not exist (0..%u)", port, DM_AHCI_PORTS - 1);
        return -EINVAL;
    }
    if (a->ports[port].blk) {
        snprintf(err, errlen, "ahci: port %u already has disk %s", port,
                 dm_blk_name(a->ports[port].blk));
        return -EEXIST;
    }
    a->ports[port].blk = blk;
    ahci_port_reset(&a->ports[port], "disk attached");
    return 0;
}

void dm_ahci_free(dm_ahci *a)
{
    if (!a)
        return;
    a->dying = true;
    for (unsigned i = 0; i < DM_AHCI_PORTS; i++) {
        ahci_port *p = &a->ports[i];
        if (p->blk)
            dm_blk_drain(p->blk);
        for (unsigned s = 0; s < DM_AHCI_SLOTS; s++)
            ahci_slot_clear(&p->slots[s]);
    }
    if (a->cfg.state)
        ahci_state_unregister(a);
    rs_handler_del(a->cfg.vm, a->h);
    dm_timer_free(a->restart);
    dm_pci_remove(a->cfg.pci, a->dev);
    free(a);
}

void dm_ahci_get_stats(const dm_ahci *a, dm_ahci_stats *out)
{
    *out = a->stats;
}

dm_pci_dev *dm_ahci_pci_dev(const dm_ahci *a)
{
    return a->dev;
}

unsigned dm_ahci_parked(const dm_ahci *a)
{
    unsigned n = 0;
    for (unsigned i = 0; i < DM_AHCI_PORTS; i++)
        for (unsigned s = 0; s < DM_AHCI_SLOTS; s++)
            n += a->ports[i].slots[s].state == SLOT_HALTED;
    return n;
}

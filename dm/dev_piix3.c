/*
 * PIIX3 PCI-to-ISA bridge at 00:01.0 (8086:7000, multifunction: the PM
 * function sits at 00:01.3).  hvmloader refuses to boot without exactly
 * this ID, then programs the PIRQ route registers 0x60..0x63; each byte
 * names the ISA IRQ a PCI link (INTA#..INTD# barber-poled over the slots)
 * drives, bit 7 disabling it.  Xen does the routing: every change goes to
 * set_pci_link_route (0 = disabled), as QEMU's Xen machine does.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dev_platform.h"
#include "dm_log.h"

#define PIIX3_PIRQC 0x60
#define PIIX3_PIRQ_DISABLE 0x80

struct dev_piix3 {
    dm_platform *p;
    dm_pci_dev *dev;
};

/* The route Xen should use for a register value: IRQ 0 means "disabled". */
static unsigned route_of(uint8_t v)
{
    return (v & PIIX3_PIRQ_DISABLE) ? 0 : (v & 0x0f);
}

static void push_route(dev_piix3 *d, unsigned link)
{
    dm_platform *p = d->p;
    uint8_t v = (uint8_t)dm_pci_cfg_get(d->dev, PIIX3_PIRQC + link, 1);
    unsigned irq = route_of(v);
    p->stats.link_routes++;
    if (!p->cfg.be->set_link_route)
        return;
    int r = p->cfg.be->set_link_route(p->cfg.be_opaque, link, irq);
    if (r < 0)
        dm_err("piix3: routing PCI link %c to IRQ %u failed: %s", 'A' + link, irq, strerror(-r));
}

static void config_write(void *opaque, dm_pci_dev *dev, unsigned off, unsigned size, uint32_t val)
{
    dev_piix3 *d = opaque;
    (void)dev;
    (void)val;
    /* Any access overlapping 0x60..0x63, of any size, updates each byte it
     * covers (a 32-bit write at 0x60 sets all four links). */
    for (unsigned i = 0; i < size; i++) {
        unsigned o = off + i;
        if (o >= PIIX3_PIRQC && o < PIIX3_PIRQC + 4)
            push_route(d, o - PIIX3_PIRQC);
    }
}

static const dm_pci_dev_ops ops = { .config_write = config_write };

/* No state section of its own: the registers live in configuration space
 * (the bus's "pci-config" section) and Xen saves the routes in its own
 * HVM context (PCI_LINK), so a restored domain already has them. */

int dev_piix3_new(dm_platform *p, dev_piix3 **out)
{
    static const dm_pci_id id = {
        .vendor = 0x8086, .device = 0x7000, .revision = 0x00, .class_code = 0x060100,
        .multifunction = true,
    };
    dev_piix3 *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->p = p;
    int r = dm_pci_add(p->cfg.pci, "piix3", 1, 0, &id, &ops, d, &d->dev);
    if (r < 0) {
        free(d);
        return r;
    }
    /* Reset values: every link disabled (PIIX3 datasheet: 80h). */
    for (unsigned i = 0; i < 4; i++)
        dm_pci_cfg_set(d->dev, PIIX3_PIRQC + i, 1, PIIX3_PIRQ_DISABLE);
    *out = d;
    return 0;
}

void dev_piix3_free(dev_piix3 *d)
{
    if (!d)
        return;
    dm_pci_remove(d->p->cfg.pci, d->dev);
    free(d);
}

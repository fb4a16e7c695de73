/*
 * i440FX host bridge at 00:00.0 (8086:1237).  Firmware only needs it to be
 * there with the right IDs; the PAM/SMRAM bytes are plain storage because
 * Xen owns guest memory (QEMU's Xen machine ignores them too).  Its
 * configuration space is saved by the PCI bus's "pci-config" section.
 */
#include <errno.h>
#include <stdlib.h>

#include "dev_platform.h"

struct dev_i440fx {
    dm_pci_bus *bus;
    dm_pci_dev *dev;
};

int dev_i440fx_new(dm_platform *p, dev_i440fx **out)
{
    static const dm_pci_id id = {
        .vendor = 0x8086, .device = 0x1237, .revision = 0x02, .class_code = 0x060000,
    };
    dev_i440fx *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->bus = p->cfg.pci;
    int r = dm_pci_add(d->bus, "i440fx", 0, 0, &id, NULL, d, &d->dev);
    if (r < 0) {
        free(d);
        return r;
    }
    *out = d;
    return 0;
}

void dev_i440fx_free(dev_i440fx *d)
{
    if (!d)
        return;
    dm_pci_remove(d->bus, d->dev);
    free(d);
}

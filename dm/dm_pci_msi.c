/*
 * The MSI capability of a dm_pci function.
 */
#include <errno.h>
#include <string.h>

#include "dm_log.h"
#include "dm_pci_msi.h"
#include "dm_xen.h"

/* Offsets inside a 64-bit capability without masking. */
#define MSI_CTRL 2
#define MSI_ADDR_LO 4
#define MSI_ADDR_HI 8
#define MSI_DATA 12

int dm_pci_msi_init(dm_pci_msi *m, dm_pci_dev *dev, unsigned off, dm_pci_msi_inject_fn inject,
                    void *opaque)
{
    if (!m || !dev || !inject || off < 0x40 || (off & 3) || off + DM_PCI_MSI_SIZE > DM_PCI_CFG_SIZE)
        return -EINVAL;
    *m = (dm_pci_msi){ .dev = dev, .off = off, .inject = inject, .opaque = opaque };
    uint8_t next = (uint8_t)dm_pci_cfg_get(dev, DM_PCI_CAPABILITY_LIST, 1);
    dm_pci_cfg_set(dev, off, 1, DM_PCI_CAP_ID_MSI);
    dm_pci_cfg_set(dev, off + 1, 1, next);
    /* One vector requested (MMC 0); the guest may only write enable and
     * MME, and MME is kept at 0 by allowing no bits of it. */
    dm_pci_cfg_set(dev, off + MSI_CTRL, 2, DM_PCI_MSI_CTRL_64BIT);
    dm_pci_set_masks(dev, off, 2, 0, 0);
    dm_pci_set_masks(dev, off + MSI_CTRL, 2, DM_PCI_MSI_CTRL_ENABLE, 0);
    dm_pci_set_masks(dev, off + MSI_ADDR_LO, 4, 0xfffffffcu, 0);   /* dword-aligned address */
    dm_pci_set_masks(dev, off + MSI_ADDR_HI, 4, 0xffffffffu, 0);
    dm_pci_set_masks(dev, off + MSI_DATA, 2, 0xffffu, 0);
    dm_pci_cfg_set(dev, DM_PCI_CAPABILITY_LIST, 1, off);
    uint16_t status = (uint16_t)dm_pci_cfg_get(dev, DM_PCI_STATUS, 2);
    dm_pci_cfg_set(dev, DM_PCI_STATUS, 2, status | DM_PCI_STATUS_CAP_LIST);
    return 0;
}

bool dm_pci_msi_enabled(const dm_pci_msi *m)
{
    return m && m->dev &&
           (dm_pci_cfg_get(m->dev, m->off + MSI_CTRL, 2) & DM_PCI_MSI_CTRL_ENABLE);
}

int dm_pci_msi_notify(dm_pci_msi *m)
{
    if (!dm_pci_msi_enabled(m))
        return 0;
    /* Bus mastering off: the function may not write the message (PCI 3.0
     * §6.8.1.3), so nothing is sent. */
    if (!(dm_pci_cfg_get(m->dev, DM_PCI_COMMAND, 2) & DM_PCI_COMMAND_MASTER))
        return 0;
    uint64_t addr = (uint64_t)dm_pci_cfg_get(m->dev, m->off + MSI_ADDR_HI, 4) << 32 |
                    dm_pci_cfg_get(m->dev, m->off + MSI_ADDR_LO, 4);
    uint32_t data = dm_pci_cfg_get(m->dev, m->off + MSI_DATA, 2);
    int r = m->inject(m->opaque, addr, data);
    if (r < 0) {
        m->failed++;
        dm_warn("%s: MSI to 0x%llx data 0x%x failed: %s", dm_pci_dev_name(m->dev),
                (unsigned long long)addr, data, strerror(-r));
        return r;
    }
    m->sent++;
    return 1;
}

int dm_pci_msi_inject_xen(void *opaque, uint64_t addr, uint32_t data)
{
    dm_xen *x = opaque;
    if (xendevicemodel_inject_msi(x->dmod, x->domid, addr, data) < 0)
        return errno ? -errno : -EIO;
    return 0;
}

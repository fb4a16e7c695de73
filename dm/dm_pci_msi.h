/*
 * An MSI capability (PCI 3.0 §6.8.1) in a dm_pci function's configuration
 * space: one vector, 64-bit message address, no per-vector masking.  The
 * guest programs address, data and the enable bit through ordinary config
 * writes (the masks let exactly those bits through), so the capability
 * keeps no state of its own: it travels with configuration space in the
 * "pci-config" state section.  A message is sent through an inject
 * callback (on Xen xendevicemodel_inject_msi, dm_pci_msi_inject_xen).
 *
 * Interrupt gating while the VM is stopped is the device's business: MSI
 * has no level a gate could latch, so a device that wants to signal while
 * stopped remembers it and calls dm_pci_msi_notify at the next start.
 *
 * [main] throughout.
 */
#ifndef DM_PCI_MSI_H
#define DM_PCI_MSI_H

#include <stdbool.h>
#include <stdint.h>

#include "dm_pci.h"

#define DM_PCI_STATUS_CAP_LIST 0x0010
#define DM_PCI_CAPABILITY_LIST 0x34
#define DM_PCI_CAP_ID_MSI 0x05
#define DM_PCI_MSI_SIZE 14        /* bytes of a 64-bit, unmasked MSI capability */

/* Control register bits (capability offset + 2). */
#define DM_PCI_MSI_CTRL_ENABLE 0x0001
#define DM_PCI_MSI_CTRL_64BIT 0x0080

/* Sends one message; 0 or a negative errno. */
typedef int (*dm_pci_msi_inject_fn)(void *opaque, uint64_t addr, uint32_t data);

typedef struct dm_pci_msi {
    dm_pci_dev *dev;
    unsigned off;             /* capability offset in config space */
    dm_pci_msi_inject_fn inject;
    void *opaque;
    uint64_t sent, failed;
} dm_pci_msi;

/* Writes the capability at `off` (0x40..0xf0, dword aligned, room for
 * DM_PCI_MSI_SIZE bytes), links it at the head of the capability list and
 * sets the status register's capability bit.  -EINVAL for a bad offset or
 * a NULL inject callback. */
int dm_pci_msi_init(dm_pci_msi *m, dm_pci_dev *dev, unsigned off, dm_pci_msi_inject_fn inject,
                    void *opaque);
/* The guest set the enable bit. */
bool dm_pci_msi_enabled(const dm_pci_msi *m);
/* Sends the programmed message if enabled: 1 sent, 0 not enabled, or the
 * inject callback's negative errno (logged, counted in `failed`). */
int dm_pci_msi_notify(dm_pci_msi *m);

/* The Xen back-end: opaque is a dm_xen *. */
int dm_pci_msi_inject_xen(void *opaque, uint64_t addr, uint32_t data);

#endif

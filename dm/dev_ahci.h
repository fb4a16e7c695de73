/*
 * The ICH9 AHCI function (8086:2922, class 01.06.01): ABAR MMIO (BAR5,
 * 4 KiB), six SATA ports, 32 command slots each, NCQ (READ/WRITE FPDMA
 * QUEUED with every tag in flight at the block backend at once), INTx and
 * MSI, and QEMU's error policies with the halted-slot retry of
 * reference §6.5-§6.7.
 *
 * Run state.  While the VM is stopped the controller makes no progress: no
 * DMA into guest RAM, no interrupt (INTx and MSI are held by the device and
 * raised at the next start), no block I/O.  The stop handler drains every
 * backend so nothing completes after STOP; a PxCI write while stopped is
 * latched and started at the next start.  A command whose I/O failed with
 * the `stop` policy halts its slot (BLOCK_IO_ERROR, then the io-error stop);
 * the start handler defers the re-issue of every halted slot to the main
 * loop (a zero timer), so it runs after the start completed.  A port or HBA
 * reset by the guest (PxCMD.ST 1->0, COMRESET, GHC.HR) discards halted and
 * queued work, logged: a stale write is never replayed over newer data.
 *
 * Save/load: section "ahci" (instance = PCI slot << 3) holds the HBA and
 * port registers and, per busy slot, the command it holds (halted or issued
 * but not started); loading rebuilds the scatter-gather lists from guest
 * memory when the command is re-issued.
 *
 * [main] throughout.
 */
#ifndef DEV_AHCI_H
#define DEV_AHCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blk.h"
#include "dm_guestmem.h"
#include "dm_loop.h"
#include "dm_pci.h"
#include "dm_pci_msi.h"
#include "dm_statefile.h"
#include "runstate.h"

#define DM_AHCI_PORTS 6
#define DM_AHCI_SLOTS 32
/* Where rsdm puts the function: the first free slot from 3 on, after the
 * platform devices (00:00.0 i440FX, 00:01.x PIIX3/IDE/PM, 00:02.0
 * xen-platform); 00:03.0 on every machine rsdm builds today. */
#define DM_AHCI_PCI_SLOT 3

typedef struct dm_ahci dm_ahci;

typedef struct dm_ahci_cfg {
    dm_pci_bus *pci;
    unsigned pci_slot;            /* function 0 of this slot */
    dm_guestmem *gm;              /* command lists, FIS areas, PRDs, data */
    dm_loop *loop;                /* the deferred re-issue after a start */
    rs_vm *vm;
    int priority;                 /* change-state handler priority */
    dm_state_reg *state;          /* NULL: no save/load */
    /* NULL: no MSI capability, INTx only. */
    dm_pci_msi_inject_fn inject_msi;
    void *msi_opaque;
    /* A guest reset dropped halted commands (the owner may release the
     * io-error hold when nothing is parked anywhere); may be NULL.  Called
     * from inside a register access. */
    void (*parked_discarded)(void *opaque);
    void *opaque;
} dm_ahci_cfg;

/* Creates the function (no disks yet).  Negative errno and err on failure. */
int dm_ahci_new(const dm_ahci_cfg *cfg, dm_ahci **out, char *err, size_t errlen);
/* Puts a disk on `port` (0..5) before the guest runs; the backend stays the
 * caller's and is closed after dm_ahci_free.  -EINVAL, -EEXIST. */
int dm_ahci_attach(dm_ahci *a, unsigned port, dm_blk *blk, char *err, size_t errlen);
/* Drains the backends (their buffers are the controller's), removes the
 * function, the handler and the state section. */
void dm_ahci_free(dm_ahci *a);

typedef struct dm_ahci_stats {
    uint64_t commands;            /* commands started (re-issues included) */
    uint64_t ncq_commands;
    uint64_t completed, failed;   /* completed towards the guest; of which with an error */
    uint64_t halted, reissued;    /* slots halted by a stop policy / re-issued at start */
    uint64_t discarded;           /* halted or queued slots dropped by a guest reset */
    uint64_t latched;             /* PxCI writes latched while stopped */
    uint64_t bounce_waits;        /* commands held back: bounce buffers at their bound */
    uint64_t irqs, msis;          /* interrupt raises (INTx level rises / MSIs sent) */
    uint64_t hba_resets, port_resets;
    unsigned max_ncq_in_flight;   /* NCQ commands at the backend at once, max */
} dm_ahci_stats;
void dm_ahci_get_stats(const dm_ahci *a, dm_ahci_stats *out);

dm_pci_dev *dm_ahci_pci_dev(const dm_ahci *a);
/* Halted commands waiting for the next start, over every port. */
unsigned dm_ahci_parked(const dm_ahci *a);

#endif

/*
 * PIIX3 IDE (82371SB function 1, 8086:7010) at 00:01.1: two channels in
 * legacy compatibility mode (primary 0x1f0-0x1f7 / 0x3f6, ISA IRQ 14;
 * secondary 0x170-0x177 / 0x376, ISA IRQ 15), bus-master DMA through the
 * 16-byte I/O BAR4 with PRD tables in guest RAM, ATA disks on dm_blk.
 *
 * Files: dev_ide.c (task-file registers and the ATA state machine of a
 * channel, error policies, run-state handling), dev_ide_bmdma.c (the
 * bus-master registers and the PRD walk), dev_ide_state.c (save/load).
 *
 * Run state (DESIGN "Stopping a guest on Xen").  Every register access is
 * answered at once whatever the run state.  While the VM is not live the
 * device makes no progress: a command written is latched (BSY) and started
 * at the next start; a PIO block boundary or a bus-master start waits the
 * same way.  The stop handler cancels the request in flight and drains the
 * backend, so no completion, DMA into guest RAM or interrupt happens after
 * STOP; the cancelled command is re-issued at the next start exactly like a
 * command parked by an io-error stop (QEMU's retry bookkeeping, reference
 * qemu-runstate.md §6.3-§6.6: DMA from the command's first sector, PIO the
 * current block, flush).  The re-issue runs from a zero-delay timer after
 * the start path completed, as QEMU's restart bottom half.
 *
 * [main] throughout.
 */
#ifndef DEV_IDE_H
#define DEV_IDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blk.h"
#include "dm_guestmem.h"
#include "dm_io.h"
#include "dm_irq.h"
#include "dm_loop.h"
#include "dm_pci.h"
#include "dm_statefile.h"
#include "runstate.h"

#define DEV_IDE_SLOT 1
#define DEV_IDE_FN 1
#define DEV_IDE_UNITS 4          /* primary master/slave, secondary master/slave */

typedef struct dev_ide dev_ide;

typedef struct dev_ide_cfg {
    dm_loop *loop;
    dm_io_space *pio;
    dm_pci_bus *pci;
    dm_irq *irq;
    rs_vm *vm;
    dm_guestmem *gm;             /* bus-master DMA */
    dm_state_reg *state;         /* may be NULL: no save/load */
    /* Told whenever a channel's parked command is discarded by a guest
     * reset of the device (the disk module then releases the io-error hold
     * when nothing else is parked).  May be NULL. */
    void (*parked_discarded)(void *opaque);
    void *opaque;
} dev_ide_cfg;

/* Adds 00:01.1 with its ports, BAR4, change-state handler and state
 * section ("ide").  Negative errno with err set. */
int dev_ide_new(const dev_ide_cfg *cfg, dev_ide **out, char *err, size_t errlen);
/* Cancels what is in flight, removes the function and its ports.  The
 * backends stay open (they belong to the disk module). */
void dev_ide_free(dev_ide *d);

typedef struct dev_ide_disk {
    dm_blk *blk;
    const char *model;           /* IDENTIFY model string */
    const char *serial;
} dev_ide_disk;

/* Puts a disk on unit 0..3 (before the guest runs).  -EINVAL for a bad
 * unit, -EEXIST if the unit has a disk. */
int dev_ide_attach(dev_ide *d, unsigned unit, const dev_ide_disk *disk, char *err, size_t errlen);

/* A machine reset: every channel's command (in flight, parked or latched)
 * is dropped, logged with `why`, and the registers return to their
 * power-on values.  The disks stay attached. */
void dev_ide_reset(dev_ide *d, const char *why);

/* Commands parked by an io-error stop, waiting for the next start. */
unsigned dev_ide_parked(const dev_ide *d);

typedef struct dev_ide_stats {
    uint64_t commands, aborted;
    uint64_t dma_bytes, pio_bytes;
    uint64_t parked, retried, discarded;  /* parked commands and what became of them */
    uint64_t latched;                     /* commands or DMA starts that waited for a start */
    uint64_t irqs;                        /* interrupt raises */
} dev_ide_stats;
void dev_ide_get_stats(const dev_ide *d, dev_ide_stats *out);

#endif

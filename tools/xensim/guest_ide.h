/*
 * xensim guests: ATA driver for the PIIX3 IDE primary channel (legacy
 * ports 0x1f0/0x3f6, ISA IRQ 14) with bus-master DMA through the BMDMA
 * BAR and a PRD table in guest RAM.  Completion is taken from the
 * interrupt line, as an OS with nIEN clear does; every wait is bounded.
 */
#ifndef XENSIM_GUEST_IDE_H
#define XENSIM_GUEST_IDE_H

#include "guest_bus.h"
#include "guest_fw.h"

#define GUEST_IDE_MAX_SECTORS 128u   /* one 64 KiB PRD entry */

struct guest_ide {
    struct guest_bus *bus;
    uint16_t cmd, ctl, bmdma;
    unsigned gsi;
    uint64_t prdt;      /* guest physical: PRD table */
    uint64_t buf;       /* guest physical: 64 KiB DMA buffer, 64 KiB aligned */
    uint64_t sectors;   /* from IDENTIFY (LBA28) */
    char model[41];
    uint64_t timeouts, errors, resets;
    /* A DMA command issued and its completion not yet taken.  Kept with
     * the driver's state (in guest RAM for the runner), so a guest saved
     * while it waited takes the completion after a restore. */
    bool inflight, inflight_write;
    uint32_t inflight_lba;
    unsigned inflight_count;
};

/* Find the PIIX3 IDE function (8086:7010) in a scanned firmware view,
 * reset the channel and IDENTIFY the master. */
int guest_ide_init(struct guest_ide *d, struct guest_bus *b, const struct guest_fw *fw);
/* Software reset (SRST) of the channel; checks the ATA signature. */
int guest_ide_srst(struct guest_ide *d);
int guest_ide_identify(struct guest_ide *d, uint16_t id[256]);
/* PIO: READ/WRITE SECTORS, count 1..GUEST_IDE_MAX_SECTORS, host buffer. */
int guest_ide_pio(struct guest_ide *d, bool write, uint32_t lba, unsigned count, void *data);
/* DMA: READ/WRITE DMA through d->buf; data is copied to/from guest RAM.
 * GUEST_IDE_SUSPENDED (only with d->bus->may_suspend): the runner
 * suspended the paused vCPU while it waited; the command stays in flight
 * (d->inflight) for guest_ide_dma_finish after a restore. */
#define GUEST_IDE_SUSPENDED 1
int guest_ide_dma(struct guest_ide *d, bool write, uint32_t lba, unsigned count, void *data);
/* Takes the completion of the command in flight: 0, -1 or
 * GUEST_IDE_SUSPENDED as guest_ide_dma; a read's data to `data` unless
 * NULL. */
int guest_ide_dma_finish(struct guest_ide *d, void *data);
int guest_ide_flush(struct guest_ide *d);

#endif

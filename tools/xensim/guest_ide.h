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
 * 0, -1 (the error is in the bus) or GUEST_FROZEN from the completion wait
 * (then guest_ide_dma_finish continues it after a resume). */
int guest_ide_dma(struct guest_ide *d, bool write, uint32_t lba, unsigned count, void *data);
/* Its two halves: the command programmed and the bus master started; the
 * wait for its interrupt and the status checks (a read copies d->buf to
 * data). */
int guest_ide_dma_start(struct guest_ide *d, bool write, uint32_t lba, unsigned count,
                        const void *data);
int guest_ide_dma_finish(struct guest_ide *d, bool write, unsigned count, void *data);
int guest_ide_flush(struct guest_ide *d);

#endif

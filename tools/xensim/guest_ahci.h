/*
 * xensim guests: AHCI driver for the ICH9 HBA (8086:2922), port 0: HBA
 * reset, port stop/start, command list, received-FIS area and command
 * tables in guest RAM, READ/WRITE DMA EXT, FLUSH CACHE EXT, NCQ (READ/WRITE
 * FPDMA QUEUED) with many tags in flight, COMRESET.  Completion is polled
 * from PxCI/PxSACT with a bound (no interrupt line used yet).
 */
#ifndef XENSIM_GUEST_AHCI_H
#define XENSIM_GUEST_AHCI_H

#include "guest_bus.h"
#include "guest_fw.h"

#define GUEST_AHCI_SLOTS 32u
#define GUEST_AHCI_MAX_BYTES 65536u  /* per command: one PRD entry */

struct guest_ahci {
    struct guest_bus *bus;
    uint64_t abar, port;          /* MMIO: HBA and port 0 registers */
    unsigned nslots;              /* CAP.NCS + 1 */
    bool ncq;                     /* CAP.SNCQ */
    uint64_t clb, fb;             /* command list, received FIS */
    uint64_t ctba[GUEST_AHCI_SLOTS];
    uint64_t data[GUEST_AHCI_SLOTS];  /* 64 KiB data buffer per slot */
    uint64_t sectors;
    uint64_t timeouts, errors, resets;
};

struct guest_ahci_io {
    bool write;
    uint64_t lba;
    unsigned count;   /* sectors, 1..128 */
    void *buf;
};

int guest_ahci_init(struct guest_ahci *h, struct guest_bus *b, const struct guest_fw *fw);
int guest_ahci_comreset(struct guest_ahci *h);
int guest_ahci_identify(struct guest_ahci *h, uint16_t id[256]);
/* READ/WRITE DMA EXT, one command.  0, -1 (the error is in the bus) or
 * GUEST_FROZEN from the completion polls (then the _finish half continues
 * them after a resume). */
int guest_ahci_rw(struct guest_ahci *h, bool write, uint64_t lba, unsigned count, void *buf);
int guest_ahci_flush(struct guest_ahci *h);
/* n NCQ commands (n <= nslots, tags 0..n-1), all issued before any is
 * waited for; returns as guest_ahci_rw. */
int guest_ahci_ncq(struct guest_ahci *h, struct guest_ahci_io *io, unsigned n);
/* The halves of both: the data placed and the command(s) issued; the wait
 * for completion and the checks (a read copies the data back to buf). */
int guest_ahci_rw_start(struct guest_ahci *h, bool write, uint64_t lba, unsigned count,
                        const void *buf);
int guest_ahci_rw_finish(struct guest_ahci *h, bool write, unsigned count, void *buf);
int guest_ahci_ncq_start(struct guest_ahci *h, const struct guest_ahci_io *io, unsigned n);
int guest_ahci_ncq_finish(struct guest_ahci *h, struct guest_ahci_io *io, unsigned n);

#endif

/*
 * xensim guests: the checked load on an IDE or AHCI disk, as the workload
 * runner's vCPUs drive it: requests of random sizes at random places in
 * one part of the checked sectors (a vCPU's own), fresh sequence numbers
 * written, acknowledged into the ledger and read back (AHCI: `qd` NCQ
 * commands at once); a failed command resets the controller (a re-init,
 * counted) and is retried once.  Any guest_bus back-end: the runner uses
 * the ioreq path, the tests also QEMU.
 */
#ifndef XENSIM_GUEST_DISKLOAD_H
#define XENSIM_GUEST_DISKLOAD_H

#include <stdatomic.h>

#include "guest_ahci.h"
#include "guest_check.h"
#include "guest_ide.h"
#include "guest_spec.h"

/* Buffer a caller gives each step: GUEST_AHCI_SLOTS requests of 64 KiB. */
#define GUEST_DISKLOAD_BUF ((size_t)GUEST_AHCI_SLOTS * GUEST_IDE_MAX_SECTORS * 512)

struct guest_diskload {
    struct guest_ide *ide;       /* one of ide and ahci */
    struct guest_ahci *ahci;
    struct guest_check *chk;     /* its ledger covers the checked sectors */
    pthread_mutex_t *lock;       /* one command stream per controller */
    unsigned qd;                 /* AHCI commands in flight (NCQ when > 1) */
    enum guest_ide_mode ide_mode; /* IDE: DMA, PIO, or a random pick per request */
    unsigned size_min, size_max; /* sectors per request, 1..128 */
    const atomic_bool *stop;     /* set: no retry after a failure (NULL: none) */
};

/* A round whose vCPU was frozen (GUEST_FROZEN) while its command(s)
 * were in flight: what a resume needs to wait for them and finish the
 * round.  Kept by the runner in guest RAM with its other state; the data
 * written and read lies in the drivers' DMA buffers, also guest RAM, and
 * each sector carries its sequence number (guest_check_fill). */
enum { GUEST_DISKLOAD_IDLE, GUEST_DISKLOAD_WRITING, GUEST_DISKLOAD_READING };
struct guest_diskload_pending {
    uint32_t phase;      /* GUEST_DISKLOAD_* */
    uint32_t n;          /* commands (AHCI NCQ: n > 1, tags 0..n-1) */
    uint32_t attempt;    /* of the write: 1 after a failure and a re-init */
    uint32_t pad;
    struct { uint64_t lba; uint32_t count, pad; } io[GUEST_AHCI_SLOTS];
};

/* One round of requests in part `part` of `nparts`, made through `b`,
 * the calling vCPU's bus (the driver's accesses, the ledger, the error
 * on a failure: never another vCPU's, whose access may be in flight);
 * rng is the caller's xorshift state, buf GUEST_DISKLOAD_BUF bytes.
 * 0 or -1 (the error is in b); with `pend` (NULL: never) also
 * GUEST_FROZEN: the vCPU was frozen waiting for a command (guest_bus.h)
 * and *pend says what guest_diskload_resume must finish. */
int guest_diskload_step(struct guest_diskload *l, struct guest_bus *b, unsigned part,
                        unsigned nparts, uint64_t *rng, uint8_t *buf,
                        struct guest_diskload_pending *pend);
/* After a resume: waits for the frozen round's command(s) (the dm may have
 * completed them meanwhile, or re-issues them at its start) and finishes
 * the round as guest_diskload_step would; pend->phase is IDLE afterwards
 * unless frozen again.  Returns as guest_diskload_step. */
int guest_diskload_resume(struct guest_diskload *l, struct guest_bus *b, uint8_t *buf,
                          struct guest_diskload_pending *pend);
/* Flush, then read and classify every sector of the part (through b). */
int guest_diskload_verify(struct guest_diskload *l, struct guest_bus *b, unsigned part,
                          unsigned nparts, uint8_t *buf);

#endif

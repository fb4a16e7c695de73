/*
 * xensim guests: the checked IDE/AHCI load (see guest_diskload.h).
 */
#include <string.h>

#include "guest_diskload.h"

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* The controller's driver state is shared, but its accesses are made by
 * the vCPU running it: each vCPU has its own ioreq slot (one access in
 * flight at a time) and its own error slot.  Called with l->lock held,
 * so the driver runs on one vCPU at a time. */
static void run_on(struct guest_diskload *l, struct guest_bus *b)
{
    if (l->ide)
        l->ide->bus = b;
    else
        l->ahci->bus = b;
}

/* The channel of a controller, its driver then run through b: 0 with
 * l->lock held.  A DMA command a guest left in flight when it was
 * suspended (saved while the dm held it parked in io-error) is completed
 * first, once the guest runs again: a write is then acknowledged to the
 * ledger with the sequence numbers its sectors carry in the driver's
 * buffer in guest RAM, a read's data is not wanted any more.  While the
 * runner is suspending the guest, the command stays in flight and nothing
 * else is issued: 1 (GUEST_IDE_SUSPENDED), the lock not held.  -1 on a
 * failure (the error in b), the lock not held. */
static int take_channel(struct guest_diskload *l, struct guest_bus *b)
{
    pthread_mutex_lock(l->lock);
    run_on(l, b);
    b->may_suspend = l->ide && l->stop;
    struct guest_ide *d = l->ide;
    if (!d || !d->inflight)
        return 0;
    bool write = d->inflight_write;
    uint32_t lba = d->inflight_lba;
    unsigned n = d->inflight_count;
    int rc = l->stop && atomic_load(l->stop) ? GUEST_IDE_SUSPENDED
                                             : guest_ide_dma_finish(d, NULL);
    for (unsigned i = 0; rc == 0 && write && i < n; i++) {
        uint8_t sec[512];
        uint64_t seq;
        rc = guest_mem_read(b, d->buf + 512u * i, sec, sizeof(sec));
        memcpy(&seq, sec + 16, sizeof(seq));   /* guest_check_fill's header */
        if (rc == 0)
            rc = guest_check_acked_on(l->chk, b, lba + i, seq);
    }
    if (rc != 0) {
        b->may_suspend = false;
        pthread_mutex_unlock(l->lock);
    }
    return rc;
}

static void release_channel(struct guest_diskload *l, struct guest_bus *b)
{
    b->may_suspend = false;
    pthread_mutex_unlock(l->lock);
}

static int rw(struct guest_diskload *l, bool pio, bool write, uint64_t lba, unsigned n, void *buf)
{
    if (l->ide && pio)
        return guest_ide_pio(l->ide, write, (uint32_t)lba, n, buf);
    if (l->ide)
        return guest_ide_dma(l->ide, write, (uint32_t)lba, n, buf);
    return guest_ahci_rw(l->ahci, write, lba, n, buf);
}

/* A failed command: the driver resets the controller (a re-init, which
 * the checker counts), clearing the error it reported, and retries. */
static int recover(struct guest_diskload *l, struct guest_bus *b)
{
    GUEST_CHECK_ADD(l->chk, reinits, 1);
    pthread_mutex_lock(&b->lock);
    b->err[0] = '\0';
    pthread_mutex_unlock(&b->lock);
    return l->ide ? guest_ide_srst(l->ide) : guest_ahci_comreset(l->ahci);
}

static void classify(struct guest_diskload *l, struct guest_bus *b, uint64_t lba, unsigned n,
                     const uint8_t *buf)
{
    GUEST_CHECK_ADD(l->chk, reads, n);
    for (unsigned i = 0; i < n; i++)
        guest_check_count(l->chk, guest_check_classify_on(l->chk, b, lba + i, buf + 512 * i));
}

static int check_part(struct guest_diskload *l, struct guest_bus *b, unsigned part,
                      unsigned nparts, uint64_t *per)
{
    unsigned qd = l->ahci ? l->qd : 1;
    *per = nparts ? l->chk->nsectors / nparts : 0;
    if (part >= nparts || qd == 0 || qd > GUEST_AHCI_SLOTS || l->size_min == 0 ||
        l->size_max > GUEST_IDE_MAX_SECTORS || l->size_min > l->size_max ||
        *per / qd < l->size_max)
        return guest_bus_fail(b, "diskload: part %u of %u (%llu sectors) cannot hold "
                              "%u requests of up to %u sectors", part, nparts,
                              (unsigned long long)*per, qd, l->size_max);
    return 0;
}

int guest_diskload_step(struct guest_diskload *l, struct guest_bus *b, unsigned part,
                        unsigned nparts, uint64_t *rng, uint8_t *buf)
{
    uint64_t per;
    if (check_part(l, b, part, nparts, &per) < 0)
        return -1;
    struct guest_check *chk = l->chk;
    unsigned qd = l->ahci ? l->qd : 1;
    unsigned span = l->size_max - l->size_min + 1;
    const size_t stride = (size_t)GUEST_IDE_MAX_SECTORS * 512;
    struct guest_ahci_io io[GUEST_AHCI_SLOTS];
    uint64_t seqs[GUEST_AHCI_SLOTS][GUEST_IDE_MAX_SECTORS];
    /* qd requests, each in its own slice of the part so none overlap */
    uint64_t slice = per / qd, base = per * part;
    for (unsigned q = 0; q < qd; q++) {
        unsigned n = l->size_min + (unsigned)(rnd(rng) % span);
        uint64_t lba = base + slice * q + rnd(rng) % (slice - n + 1);
        io[q] = (struct guest_ahci_io){ .write = true, .lba = lba, .count = n,
                                        .buf = buf + stride * q };
        for (unsigned i = 0; i < n; i++)
            seqs[q][i] = guest_check_fill(chk, lba + i, buf + stride * q + 512 * i);
    }
    /* IDE: the write and its read-back each by PIO or DMA as the mode
     * says; the random pick only in mixed mode, so the other modes keep
     * the sequence of places and sizes a seed gives. */
    bool pio_w = l->ide_mode == GUEST_IDE_PIO, pio_r = pio_w;
    if (l->ide && l->ide_mode == GUEST_IDE_MIXED) {
        uint64_t r = rnd(rng);
        pio_w = r & 1;
        pio_r = (r >> 1) & 1;
    }
    int rc = take_channel(l, b);
    if (rc != 0)
        return rc;
    for (int attempt = 0; attempt < 2; attempt++) {
        rc = qd > 1 ? guest_ahci_ncq(l->ahci, io, qd)
                    : rw(l, pio_w, true, io[0].lba, io[0].count, io[0].buf);
        if (rc >= 0 || attempt == 1 || (l->stop && atomic_load(l->stop)) || recover(l, b) < 0)
            break;
    }
    for (unsigned q = 0; q < qd && rc == 0; q++)
        for (unsigned i = 0; i < io[q].count && rc == 0; i++)
            rc = guest_check_acked_on(chk, b, io[q].lba + i, seqs[q][i]);
    if (rc == 0) {
        for (unsigned q = 0; q < qd; q++)
            io[q].write = false;
        rc = qd > 1 ? guest_ahci_ncq(l->ahci, io, qd)
                    : rw(l, pio_r, false, io[0].lba, io[0].count, io[0].buf);
    }
    release_channel(l, b);
    if (rc != 0)
        return rc;
    for (unsigned q = 0; q < qd; q++)
        classify(l, b, io[q].lba, io[q].count, io[q].buf);
    return 0;
}

int guest_diskload_verify(struct guest_diskload *l, struct guest_bus *b, unsigned part,
                          unsigned nparts, uint8_t *buf)
{
    uint64_t per;
    if (check_part(l, b, part, nparts, &per) < 0)
        return -1;
    uint64_t base = per * part;
    int rc = take_channel(l, b);
    if (rc != 0)
        return rc;
    rc = l->ide ? guest_ide_flush(l->ide) : guest_ahci_flush(l->ahci);
    release_channel(l, b);
    if (rc < 0)
        return -1;
    GUEST_CHECK_ADD(l->chk, flushes, 1);
    for (uint64_t off = 0; off < per; off += GUEST_IDE_MAX_SECTORS) {
        unsigned n = per - off < GUEST_IDE_MAX_SECTORS ? (unsigned)(per - off)
                                                       : GUEST_IDE_MAX_SECTORS;
        /* mixed: the chunks alternate between DMA and PIO */
        bool pio = l->ide_mode == GUEST_IDE_PIO ||
                   (l->ide_mode == GUEST_IDE_MIXED && (off / GUEST_IDE_MAX_SECTORS) % 2);
        rc = take_channel(l, b);
        if (rc == 0) {
            rc = rw(l, pio, false, base + off, n, buf);
            release_channel(l, b);
        }
        if (rc != 0)
            return rc;
        classify(l, b, base + off, n, buf);
    }
    return 0;
}

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
    pthread_mutex_lock(l->lock);
    run_on(l, b);
    int rc = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        rc = qd > 1 ? guest_ahci_ncq(l->ahci, io, qd)
                    : rw(l, pio_w, true, io[0].lba, io[0].count, io[0].buf);
        if (rc == 0 || attempt == 1 || (l->stop && atomic_load(l->stop)) || recover(l, b) < 0)
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
    pthread_mutex_unlock(l->lock);
    if (rc < 0)
        return -1;
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
    pthread_mutex_lock(l->lock);
    run_on(l, b);
    int rc = l->ide ? guest_ide_flush(l->ide) : guest_ahci_flush(l->ahci);
    pthread_mutex_unlock(l->lock);
    if (rc < 0)
        return -1;
    GUEST_CHECK_ADD(l->chk, flushes, 1);
    for (uint64_t off = 0; off < per; off += GUEST_IDE_MAX_SECTORS) {
        unsigned n = per - off < GUEST_IDE_MAX_SECTORS ? (unsigned)(per - off)
                                                       : GUEST_IDE_MAX_SECTORS;
        pthread_mutex_lock(l->lock);
        run_on(l, b);
        /* mixed: the chunks alternate between DMA and PIO */
        bool pio = l->ide_mode == GUEST_IDE_PIO ||
                   (l->ide_mode == GUEST_IDE_MIXED && (off / GUEST_IDE_MAX_SECTORS) % 2);
        rc = rw(l, pio, false, base + off, n, buf);
        pthread_mutex_unlock(l->lock);
        if (rc < 0)
            return -1;
        classify(l, b, base + off, n, buf);
    }
    return 0;
}

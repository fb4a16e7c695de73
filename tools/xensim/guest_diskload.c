/*
 * xensim guests: the checked IDE/AHCI load (see guest_diskload.h).
 */
#include <string.h>

#include "guest_diskload.h"

/* Each request's slice of the caller's buffer. */
#define STRIDE ((size_t)GUEST_IDE_MAX_SECTORS * 512)

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

/* The round's command(s): started, or after a resume (`started`) only
 * waited for.  0, -1 or GUEST_FROZEN.  An IDE PIO transfer is never left
 * half-done: a vCPU in one is not frozen, it waits for the transfer to end
 * (so a PIO command parked in io-error holds up a save until `cont`). */
static int cmds(struct guest_diskload *l, struct guest_bus *b, struct guest_ahci_io *io,
                unsigned n, bool started, bool pio)
{
    /* A start frozen after it was sent (GUEST_FROZEN) is a started command:
     * the resume waits for its completion. */
    int rc = 0;
    if (l->ide && pio) {
        bool resumable = b->resumable;
        b->resumable = false;
        rc = guest_ide_pio(l->ide, io[0].write, (uint32_t)io[0].lba, io[0].count, io[0].buf);
        b->resumable = resumable;
        return rc;
    }
    if (l->ide) {
        if (!started)
            rc = guest_ide_dma_start(l->ide, io[0].write, (uint32_t)io[0].lba, io[0].count,
                                     io[0].buf);
        return rc < 0 ? rc : guest_ide_dma_finish(l->ide, io[0].write, io[0].count, io[0].buf);
    }
    if (n > 1) {
        if (!started)
            rc = guest_ahci_ncq_start(l->ahci, io, n);
        return rc < 0 ? rc : guest_ahci_ncq_finish(l->ahci, io, n);
    }
    if (!started)
        rc = guest_ahci_rw_start(l->ahci, io[0].write, io[0].lba, io[0].count, io[0].buf);
    return rc < 0 ? rc : guest_ahci_rw_finish(l->ahci, io[0].write, io[0].count, io[0].buf);
}

static void keep_pending(struct guest_diskload_pending *p, unsigned phase, unsigned attempt,
                         const struct guest_ahci_io *io, unsigned n)
{
    memset(p, 0, sizeof(*p));
    p->phase = phase;
    p->n = n;
    p->attempt = attempt;
    for (unsigned q = 0; q < n; q++) {
        p->io[q].lba = io[q].lba;
        p->io[q].count = io[q].count;
    }
}

/* A round from `phase` on: the write (its `attempt`; its command(s)
 * already started when `started`), the ledger, the read-back, the
 * verdicts.  Each sector's sequence number is the one in the data
 * written (guest_check_fill). */
static int round_from(struct guest_diskload *l, struct guest_bus *b, struct guest_ahci_io *io,
                      unsigned n, unsigned phase, unsigned attempt, bool started, bool pio_w,
                      bool pio_r, struct guest_diskload_pending *pend)
{
    int rc = 0;
    pthread_mutex_lock(l->lock);
    /* The runner is stopping (a save): a new round is not begun.  Another
     * vCPU may just have been frozen with its command in flight and the
     * domain paused, so this one's first access would never be answered. */
    if (!started && l->stop && atomic_load(l->stop)) {
        pthread_mutex_unlock(l->lock);
        return 0;
    }
    run_on(l, b);
    b->resumable = pend != NULL;
    if (phase == GUEST_DISKLOAD_WRITING) {
        for (;; attempt++, started = false) {
            rc = cmds(l, b, io, n, started, pio_w);
            if (rc == 0 || rc == GUEST_FROZEN || attempt >= 1 ||
                (l->stop && atomic_load(l->stop)) || recover(l, b) < 0)
                break;
        }
        if (rc == GUEST_FROZEN)
            keep_pending(pend, GUEST_DISKLOAD_WRITING, attempt, io, n);
        for (unsigned q = 0; q < n && rc == 0; q++)
            for (unsigned i = 0; i < io[q].count && rc == 0; i++)
                rc = guest_check_acked_on(l->chk, b, io[q].lba + i,
                                          guest_check_sector_seq((uint8_t *)io[q].buf + 512 * i));
        for (unsigned q = 0; q < n; q++)
            io[q].write = false;
        started = false;
    }
    if (rc == 0) {
        rc = cmds(l, b, io, n, started, pio_r);
        if (rc == GUEST_FROZEN)
            keep_pending(pend, GUEST_DISKLOAD_READING, 0, io, n);
    }
    b->resumable = false;
    pthread_mutex_unlock(l->lock);
    if (rc < 0)
        return rc;
    for (unsigned q = 0; q < n; q++)
        classify(l, b, io[q].lba, io[q].count, io[q].buf);
    return 0;
}

int guest_diskload_step(struct guest_diskload *l, struct guest_bus *b, unsigned part,
                        unsigned nparts, uint64_t *rng, uint8_t *buf,
                        struct guest_diskload_pending *pend)
{
    uint64_t per;
    if (check_part(l, b, part, nparts, &per) < 0)
        return -1;
    unsigned qd = l->ahci ? l->qd : 1;
    unsigned span = l->size_max - l->size_min + 1;
    struct guest_ahci_io io[GUEST_AHCI_SLOTS];
    /* qd requests, each in its own slice of the part so none overlap */
    uint64_t slice = per / qd, base = per * part;
    for (unsigned q = 0; q < qd; q++) {
        unsigned n = l->size_min + (unsigned)(rnd(rng) % span);
        uint64_t lba = base + slice * q + rnd(rng) % (slice - n + 1);
        io[q] = (struct guest_ahci_io){ .write = true, .lba = lba, .count = n,
                                        .buf = buf + STRIDE * q };
        for (unsigned i = 0; i < n; i++)
            (void)guest_check_fill(l->chk, lba + i, buf + STRIDE * q + 512 * i);
    }
    /* IDE: the write and its read-back each by PIO or DMA as the mode
     * says; the random pick only in mixed mode, so the other modes keep
     * the sequence of places and sizes a seed gives. */
    bool pio_w = l->ide && l->ide_mode == GUEST_IDE_PIO, pio_r = pio_w;
    if (l->ide && l->ide_mode == GUEST_IDE_MIXED) {
        uint64_t r = rnd(rng);
        pio_w = r & 1;
        pio_r = (r >> 1) & 1;
    }
    return round_from(l, b, io, qd, GUEST_DISKLOAD_WRITING, 0, false, pio_w, pio_r, pend);
}

int guest_diskload_resume(struct guest_diskload *l, struct guest_bus *b, uint8_t *buf,
                          struct guest_diskload_pending *pend)
{
    struct guest_diskload_pending p = *pend;
    if (p.phase == GUEST_DISKLOAD_IDLE)
        return 0;
    /* It came back from guest RAM: checked as any input. */
    if ((p.phase != GUEST_DISKLOAD_WRITING && p.phase != GUEST_DISKLOAD_READING) ||
        p.n == 0 || p.n > GUEST_AHCI_SLOTS || (l->ide && p.n != 1) || p.attempt > 1)
        return guest_bus_fail(b, "diskload: resume: a bad frozen round (phase %u, %u commands, "
                              "attempt %u)", p.phase, p.n, p.attempt);
    struct guest_ahci_io io[GUEST_AHCI_SLOTS];
    for (unsigned q = 0; q < p.n; q++) {
        unsigned c = p.io[q].count;
        if (c == 0 || c > GUEST_IDE_MAX_SECTORS || p.io[q].lba >= l->chk->nsectors ||
            c > l->chk->nsectors - p.io[q].lba)
            return guest_bus_fail(b, "diskload: resume: frozen command %u (sectors %llu+%u) "
                                  "outside the %llu checked sectors", q,
                                  (unsigned long long)p.io[q].lba, c,
                                  (unsigned long long)l->chk->nsectors);
        io[q] = (struct guest_ahci_io){ .write = p.phase == GUEST_DISKLOAD_WRITING,
                                        .lba = p.io[q].lba, .count = c, .buf = buf + STRIDE * q };
        /* The data of a write in flight is in the driver's DMA buffer. */
        uint64_t dma = l->ide ? l->ide->buf : l->ahci->data[q];
        if (io[q].write && guest_mem_read(b, dma, io[q].buf, (size_t)c * 512) < 0)
            return -1;
    }
    pend->phase = GUEST_DISKLOAD_IDLE;
    /* Only DMA commands are frozen in flight; the read-back is DMA too. */
    return round_from(l, b, io, p.n, p.phase, p.attempt, true, false, false, pend);
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

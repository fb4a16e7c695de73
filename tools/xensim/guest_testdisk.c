/*
 * xensim guests: test-disk driver and checker workload.
 */
#include <string.h>

#include "guest_testdisk.h"

int guest_testdisk_init(struct guest_testdisk *d, struct guest_bus *b, struct guest_check *chk,
                        unsigned vcpu, unsigned nvcpus)
{
    memset(d, 0, sizeof(*d));
    if (nvcpus == 0 || vcpu >= nvcpus || nvcpus > 64)
        return guest_bus_fail(b, "testdisk: vCPU %u of %u", vcpu, nvcpus);
    d->bus = b;
    d->chk = chk;
    d->vcpu = vcpu;
    d->nvcpus = nvcpus;
    d->base = (uint16_t)(GUEST_TESTDISK_PORT + 16 * vcpu);
    d->rng = 0x2545f4914f6cdd1dull * (vcpu + 1);
    d->buf = guest_ram_alloc(b, 512, 512);
    d->irqs_seen = guest_irq_count(b, GUEST_TESTDISK_GSI);
    return d->buf ? 0 : -1;
}

void guest_testdisk_poll_irqs(struct guest_testdisk *d)
{
    uint64_t n = guest_irq_count(d->bus, GUEST_TESTDISK_GSI);
    for (; d->irqs_seen < n; d->irqs_seen++)
        guest_check_irq(d->chk);
}

static int command(struct guest_testdisk *d, uint8_t cmd, uint64_t lba)
{
    uint8_t st;
    if (guest_outl(d->bus, d->base + 0, (uint32_t)lba) < 0 ||
        guest_outl(d->bus, d->base + 4, (uint32_t)d->buf) < 0 ||
        guest_outb(d->bus, d->base + 8, cmd) < 0 || guest_inb(d->bus, d->base + 12, &st) < 0)
        return -1;
    guest_testdisk_poll_irqs(d);
    if (st != 0)
        return guest_bus_fail(d->bus, "testdisk: command %u on LBA %llu: status 0x%02x", cmd,
                              (unsigned long long)lba, st);
    return 0;
}

/* Read and classify; a bad read is retried once so a transient wrong
 * answer (a corrupted read) is told from a wrong disk (lost/stale). */
static int read_check(struct guest_testdisk *d, uint64_t lba)
{
    uint8_t sec[512];
    enum guest_check_verdict v = GUEST_CHECK_OK;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (command(d, GUEST_TD_READ, lba) < 0 || guest_mem_read(d->bus, d->buf, sec, 512) < 0)
            return -1;
        GUEST_CHECK_ADD(d->chk, reads, 1);
        enum guest_check_verdict now = guest_check_classify_on(d->chk, d->bus, lba, sec);
        if (now == GUEST_CHECK_OK) {
            if (attempt == 1)
                guest_check_count(d->chk, GUEST_CHECK_CORRUPT);
            return 0;
        }
        v = now;
    }
    guest_check_count(d->chk, v);
    return 0;
}

static uint64_t next_rand(struct guest_testdisk *d)
{
    d->rng ^= d->rng << 13;
    d->rng ^= d->rng >> 7;
    d->rng ^= d->rng << 17;
    return d->rng;
}

static uint64_t per_vcpu(struct guest_testdisk *d)
{
    uint64_t per = d->chk->nsectors / d->nvcpus;
    if (per == 0)
        guest_bus_fail(d->bus, "testdisk: fewer sectors than vCPUs");
    return per;
}

int guest_testdisk_step(struct guest_testdisk *d)
{
    uint64_t per = per_vcpu(d);
    if (per == 0)
        return -1;
    uint8_t sec[512];
    uint64_t lba = d->vcpu + d->nvcpus * (next_rand(d) % per);
    uint64_t seq = guest_check_fill(d->chk, lba, sec);
    if (guest_mem_write(d->bus, d->buf, sec, 512) < 0 || command(d, GUEST_TD_WRITE, lba) < 0 ||
        guest_check_acked_on(d->chk, d->bus, lba, seq) < 0 || read_check(d, lba) < 0)
        return -1;
    if (++d->steps % 64 == 0 && read_check(d, d->vcpu + d->nvcpus * (next_rand(d) % per)) < 0)
        return -1;
    return 0;
}

int guest_testdisk_verify(struct guest_testdisk *d)
{
    uint64_t per = per_vcpu(d);
    if (per == 0 || command(d, GUEST_TD_FLUSH, 0) < 0)
        return -1;
    GUEST_CHECK_ADD(d->chk, flushes, 1);
    for (uint64_t k = 0; k < per; k++)
        if (read_check(d, d->vcpu + d->nvcpus * k) < 0)
            return -1;
    return 0;
}

int guest_testdisk_workload(struct guest_testdisk *d, uint64_t nwrites)
{
    for (uint64_t i = 0; i < nwrites; i++)
        if (guest_testdisk_step(d) < 0)
            return -1;
    return guest_testdisk_verify(d);
}

/*
 * xensim guests: the data checker (see guest_check.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "guest_check.h"

#define MAGIC 0x43475358u /* "XSGC" */

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

int guest_check_init(struct guest_check *k, struct guest_bus *b, uint64_t nsectors)
{
    memset(k, 0, sizeof(*k));
    k->bus = b;
    k->nsectors = nsectors;
    atomic_init(&k->next_seq, 1);
    atomic_init(&k->dm_stopped, false);
    pthread_mutex_init(&k->lock, NULL);
    if (nsectors == 0 || nsectors > (1u << 24))
        return guest_bus_fail(b, "checker: %llu sectors (1..16M)", (unsigned long long)nsectors);
    k->ledger = guest_ram_alloc(b, (size_t)nsectors * 16, 4096);
    if (!k->ledger)
        return -1;
    /* Zero the ledger through the bus: guest RAM may hold anything. */
    static const uint8_t zero[4096];
    for (uint64_t off = 0; off < nsectors * 16; off += sizeof(zero)) {
        size_t n = nsectors * 16 - off < sizeof(zero) ? (size_t)(nsectors * 16 - off) : sizeof(zero);
        if (guest_mem_write(b, k->ledger + off, zero, n) < 0)
            return -1;
    }
    return 0;
}

int guest_check_attach(struct guest_check *k, struct guest_bus *b, uint64_t ledger,
                       uint64_t nsectors, uint64_t next_seq)
{
    memset(k, 0, sizeof(*k));
    k->bus = b;
    k->nsectors = nsectors;
    k->ledger = ledger;
    atomic_init(&k->next_seq, next_seq ? next_seq : 1);
    atomic_init(&k->dm_stopped, false);
    pthread_mutex_init(&k->lock, NULL);
    if (nsectors == 0 || nsectors > (1u << 24) || ledger == 0)
        return guest_bus_fail(b, "checker: no ledger to attach to (%llu sectors at 0x%llx)",
                              (unsigned long long)nsectors, (unsigned long long)ledger);
    return 0;
}

void guest_check_sum(struct guest_check_counters *dst, const struct guest_check_counters *src)
{
    uint64_t *d = (uint64_t *)dst;
    const uint64_t *s = (const uint64_t *)src;
    for (size_t i = 0; i < sizeof(*dst) / sizeof(uint64_t); i++)
        d[i] += s[i];
}

void guest_check_destroy(struct guest_check *k)
{
    pthread_mutex_destroy(&k->lock);
}

uint64_t guest_check_fill(struct guest_check *k, uint64_t lba, uint8_t sec[512])
{
    uint64_t seq = atomic_fetch_add(&k->next_seq, 1);
    uint32_t magic = MAGIC;
    memset(sec, 0, 512);
    memcpy(sec, &magic, 4);
    memcpy(sec + 8, &lba, 8);
    memcpy(sec + 16, &seq, 8);
    /* Payload from the (lba, seq) pair, so a misplaced or mixed sector
     * fails the checksum or the header. */
    uint64_t x = lba * 0x9e3779b97f4a7c15ull ^ seq;
    for (unsigned i = 24; i < 508; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        sec[i] = (uint8_t)x;
    }
    uint32_t sum = fnv1a(sec, 508);
    memcpy(sec + 508, &sum, 4);
    return seq;
}

uint64_t guest_check_sector_seq(const uint8_t sec[512])
{
    uint64_t seq;
    memcpy(&seq, sec + 16, 8);
    return seq;
}

static int ledger_get(struct guest_check *k, struct guest_bus *b, uint64_t lba, uint64_t e[2])
{
    return guest_mem_read(b, k->ledger + lba * 16, e, 16);
}

int guest_check_acked(struct guest_check *k, uint64_t lba, uint64_t seq)
{
    return guest_check_acked_on(k, k->bus, lba, seq);
}

int guest_check_acked_on(struct guest_check *k, struct guest_bus *b, uint64_t lba, uint64_t seq)
{
    if (lba >= k->nsectors)
        return guest_bus_fail(b, "checker: LBA %llu beyond %llu sectors",
                              (unsigned long long)lba, (unsigned long long)k->nsectors);
    uint64_t e[2];
    if (ledger_get(k, b, lba, e) < 0)
        return -1;
    e[1] = e[0];
    e[0] = seq;
    if (guest_mem_write(b, k->ledger + lba * 16, e, 16) < 0)
        return -1;
    GUEST_CHECK_ADD(k, writes, 1);
    return 0;
}

enum guest_check_verdict guest_check_classify(struct guest_check *k, uint64_t lba,
                                              const uint8_t sec[512])
{
    return guest_check_classify_on(k, k->bus, lba, sec);
}

enum guest_check_verdict guest_check_classify_on(struct guest_check *k, struct guest_bus *b,
                                                 uint64_t lba, const uint8_t sec[512])
{
    uint64_t e[2];
    if (lba >= k->nsectors || ledger_get(k, b, lba, e) < 0)
        return GUEST_CHECK_CORRUPT;
    uint64_t seq = 0;
    static const uint8_t zero[512];
    if (memcmp(sec, zero, 512) != 0) {
        uint32_t magic, sum;
        uint64_t l;
        memcpy(&magic, sec, 4);
        memcpy(&l, sec + 8, 8);
        memcpy(&seq, sec + 16, 8);
        memcpy(&sum, sec + 508, 4);
        if (magic != MAGIC || l != lba || sum != fnv1a(sec, 508) || seq == 0)
            return GUEST_CHECK_CORRUPT;
    }
    if (seq == e[0])
        return GUEST_CHECK_OK;
    if (seq > e[0])
        return GUEST_CHECK_CORRUPT;  /* never acknowledged: not ours to see */
    if (seq == e[1])
        return GUEST_CHECK_LOST;     /* the latest acknowledged write is gone */
    return GUEST_CHECK_STALE;        /* an older write came back */
}

void guest_check_add(struct guest_check *k, size_t off, uint64_t n)
{
    pthread_mutex_lock(&k->lock);
    uint64_t *p = (uint64_t *)((char *)&k->c + off);
    *p += n;
    pthread_mutex_unlock(&k->lock);
}

void guest_check_count(struct guest_check *k, enum guest_check_verdict v)
{
    switch (v) {
    case GUEST_CHECK_OK: break;
    case GUEST_CHECK_LOST: GUEST_CHECK_ADD(k, lost_writes, 1); break;
    case GUEST_CHECK_STALE: GUEST_CHECK_ADD(k, stale_overwrites, 1); break;
    case GUEST_CHECK_CORRUPT: GUEST_CHECK_ADD(k, corrupted_reads, 1); break;
    }
}

void guest_check_set_dm_stopped(struct guest_check *k, bool stopped)
{
    atomic_store(&k->dm_stopped, stopped);
}

void guest_check_irq(struct guest_check *k)
{
    if (atomic_load(&k->dm_stopped))
        GUEST_CHECK_ADD(k, irqs_while_stopped, 1);
}

void guest_check_snapshot(struct guest_check *k, struct guest_check_counters *out)
{
    pthread_mutex_lock(&k->lock);
    *out = k->c;
    pthread_mutex_unlock(&k->lock);
    pthread_mutex_lock(&k->bus->lock);
    out->all_ones_reads += k->bus->all_ones_reads;
    pthread_mutex_unlock(&k->bus->lock);
}

int guest_check_json(const struct guest_check_counters *c, char *buf, size_t len)
{
    int n = snprintf(buf, len,
        "{\"writes\":%" PRIu64 ",\"reads\":%" PRIu64 ",\"flushes\":%" PRIu64
        ",\"lost_writes\":%" PRIu64 ",\"stale_overwrites\":%" PRIu64
        ",\"corrupted_reads\":%" PRIu64 ",\"all_ones_reads\":%" PRIu64
        ",\"timeouts\":%" PRIu64 ",\"irqs_while_stopped\":%" PRIu64
        ",\"ram_writes_while_stopped\":%" PRIu64 ",\"reinits\":%" PRIu64
        ",\"uart_missing\":%" PRIu64 ",\"uart_duplicated\":%" PRIu64
        ",\"uart_out_of_order\":%" PRIu64 "}",
        c->writes, c->reads, c->flushes, c->lost_writes, c->stale_overwrites,
        c->corrupted_reads, c->all_ones_reads, c->timeouts, c->irqs_while_stopped,
        c->ram_writes_while_stopped, c->reinits, c->uart_missing, c->uart_duplicated,
        c->uart_out_of_order);
    return n < 0 || (size_t)n >= len ? -1 : n;
}

/*
 * xensim guests: the data checker.  Every sector written carries a magic,
 * its LBA, a sequence number and a checksum; the ledger (per sector: the
 * last acknowledged sequence and the one before it) lives in guest RAM, so
 * a save, restore or migration carries it like any guest state.  A read is
 * classified against the ledger: current (fine), the previous write (the
 * latest one was lost), an older one (a stale write replayed over a newer
 * one), or garbage (corrupted).
 */
#ifndef XENSIM_GUEST_CHECK_H
#define XENSIM_GUEST_CHECK_H

#include <stdatomic.h>

#include "guest_bus.h"

struct guest_check_counters {
    uint64_t writes, reads, flushes;
    uint64_t lost_writes, stale_overwrites, corrupted_reads;
    uint64_t all_ones_reads, timeouts;
    uint64_t irqs_while_stopped, ram_writes_while_stopped;
    uint64_t reinits;
    uint64_t uart_missing, uart_duplicated, uart_out_of_order;
};

struct guest_check {
    struct guest_bus *bus;
    uint64_t ledger;          /* guest physical, 16 bytes per sector */
    uint64_t nsectors;
    atomic_uint_fast64_t next_seq;
    atomic_bool dm_stopped;   /* the dm's reported state, from a callback */
    pthread_mutex_t lock;     /* counters */
    struct guest_check_counters c;
};

enum guest_check_verdict {
    GUEST_CHECK_OK, GUEST_CHECK_LOST, GUEST_CHECK_STALE, GUEST_CHECK_CORRUPT,
};

int guest_check_init(struct guest_check *k, struct guest_bus *b, uint64_t nsectors);
/* Re-attach to a ledger already in guest RAM (after a restore): nothing
 * is zeroed; sequence numbers continue from next_seq. */
int guest_check_attach(struct guest_check *k, struct guest_bus *b, uint64_t ledger,
                       uint64_t nsectors, uint64_t next_seq);
void guest_check_destroy(struct guest_check *k);
/* dst += src, field by field (the struct is all uint64_t). */
void guest_check_sum(struct guest_check_counters *dst, const struct guest_check_counters *src);
/* A fresh sequence number and the sector image that carries it. */
uint64_t guest_check_fill(struct guest_check *k, uint64_t lba, uint8_t sec[512]);
/* The sequence number a sector image from guest_check_fill carries. */
uint64_t guest_check_sector_seq(const uint8_t sec[512]);
/* The device acknowledged the write of `seq` to `lba`: advance the ledger. */
int guest_check_acked(struct guest_check *k, uint64_t lba, uint64_t seq);
/* Classify a sector read back (does not count). */
enum guest_check_verdict guest_check_classify(struct guest_check *k, uint64_t lba,
                                              const uint8_t sec[512]);
/* The same through `b`: with several vCPUs on one ledger, each reaches
 * guest RAM through its own bus, so a failure (a paused vCPU, an error)
 * is that vCPU's and lands in its error slot, not the bus given at init. */
int guest_check_acked_on(struct guest_check *k, struct guest_bus *b, uint64_t lba, uint64_t seq);
enum guest_check_verdict guest_check_classify_on(struct guest_check *k, struct guest_bus *b,
                                                 uint64_t lba, const uint8_t sec[512]);
/* Add a verdict to the counters (OK counts nothing). */
void guest_check_count(struct guest_check *k, enum guest_check_verdict v);
/* The workload is told the dm's reported run state. */
void guest_check_set_dm_stopped(struct guest_check *k, bool stopped);
/* An interrupt was seen; counted if the dm reports stopped. */
void guest_check_irq(struct guest_check *k);
void guest_check_add(struct guest_check *k, size_t counter_offset, uint64_t n);
#define GUEST_CHECK_ADD(k, field, n) \
    guest_check_add((k), offsetof(struct guest_check_counters, field), (n))
void guest_check_snapshot(struct guest_check *k, struct guest_check_counters *out);
/* The counters as one JSON object; returns the length or -1 if too small. */
int guest_check_json(const struct guest_check_counters *c, char *buf, size_t len);

#endif

/*
 * xensim guests: the "test disk", a trivial device xensim defines for its
 * own self-tests, and the checker workload that drives it.
 *
 * Registers (port I/O), one bank of 16 bytes per vCPU at
 * GUEST_TESTDISK_PORT + 16 * vcpu, so vCPUs never share register state:
 *   +0  LBA     (outl)
 *   +4  GPA     (outl) of a 512-byte buffer in guest RAM
 *   +8  CMD     (outb) 1 read sector, 2 write sector, 3 flush; the command
 *               completes before the write returns
 *   +12 STATUS  (inb)  0 done, 1 error
 * On completion the device raises GUEST_TESTDISK_GSI (edge); a raise while
 * the dm reports stopped is a bug the checker counts.
 */
#ifndef XENSIM_GUEST_TESTDISK_H
#define XENSIM_GUEST_TESTDISK_H

#include "guest_check.h"

#define GUEST_TESTDISK_PORT 0x5000u
#define GUEST_TESTDISK_GSI 9u
#define GUEST_TD_READ 1u
#define GUEST_TD_WRITE 2u
#define GUEST_TD_FLUSH 3u

struct guest_testdisk {
    struct guest_bus *bus;
    struct guest_check *chk;
    unsigned vcpu, nvcpus;
    uint16_t base;
    uint64_t buf;        /* guest physical, 512 bytes */
    uint64_t irqs_seen;
    uint64_t rng;
    uint64_t steps;
};

int guest_testdisk_init(struct guest_testdisk *d, struct guest_bus *b, struct guest_check *chk,
                        unsigned vcpu, unsigned nvcpus);
/* nwrites sequence-numbered writes to this vCPU's sectors (lba % nvcpus ==
 * vcpu), each read back; then a flush and a read of every owned sector. */
int guest_testdisk_workload(struct guest_testdisk *d, uint64_t nwrites);
/* One write of a fresh sequence number to a random owned sector, read
 * back (and every 64th step a random owned sector read as well). */
int guest_testdisk_step(struct guest_testdisk *d);
/* Flush, then read and classify every owned sector. */
int guest_testdisk_verify(struct guest_testdisk *d);
/* Notice interrupts raised since the last look (counted if stopped). */
void guest_testdisk_poll_irqs(struct guest_testdisk *d);

#endif

/*
 * xensim guests: the back-end interface every guest driver runs on.
 *
 * A driver (firmware scan, UART, IDE, AHCI, ...) only ever touches the
 * machine through a guest_bus: port I/O, MMIO, guest RAM, interrupt lines
 * and a clock.  Two back-ends implement it: QEMU's qtest protocol
 * (guest_qtest.c), which proves the drivers against QEMU's own devices, and
 * the xensim ioreq path, which runs the same drivers against rsdm.  Because
 * the driver code is shared, a misreading of the hardware would show up
 * against QEMU first.
 *
 * Every call returns 0 on success or -1 with a message in bus->err (the
 * first failure is kept: it is the cause, later ones are consequences).
 * A bus may be used from several threads: back-ends serialise their own
 * transport; the RAM allocator and the error slot take bus->lock.
 */
#ifndef XENSIM_GUEST_BUS_H
#define XENSIM_GUEST_BUS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct guest_bus;

struct guest_bus_ops {
    int (*pio_in)(struct guest_bus *b, uint16_t port, unsigned size, uint32_t *val);
    int (*pio_out)(struct guest_bus *b, uint16_t port, unsigned size, uint32_t val);
    int (*mmio_read)(struct guest_bus *b, uint64_t addr, unsigned size, uint64_t *val);
    int (*mmio_write)(struct guest_bus *b, uint64_t addr, unsigned size, uint64_t val);
    /* Guest RAM as the CPU sees it (not through a device). */
    int (*mem_read)(struct guest_bus *b, uint64_t gpa, void *buf, size_t len);
    int (*mem_write)(struct guest_bus *b, uint64_t gpa, const void *buf, size_t len);
    /* Wait until interrupt line `gsi` is asserted, at most timeout_ms.
     * Returns 1 when asserted, 0 on timeout, -1 on a transport error,
     * GUEST_FROZEN (see below). */
    int (*irq_wait)(struct guest_bus *b, unsigned gsi, int timeout_ms);
    /* Current level of line `gsi` (0/1), -1 on error. */
    int (*irq_level)(struct guest_bus *b, unsigned gsi);
    /* Number of raise edges seen on `gsi` so far. */
    uint64_t (*irq_count)(struct guest_bus *b, unsigned gsi);
    /* Advance the guest's virtual clock (qtest) or no-op; ns. */
    int (*clock_step)(struct guest_bus *b, uint64_t ns);
    void (*close)(struct guest_bus *b);
};

#define GUEST_BUS_ERRLEN 512

/* Returned instead of -1 by an access or interrupt wait in which the vCPU
 * was frozen: the toolstack suspended the guest (SHUTDOWN_suspend, which
 * needs no guest cooperation) while the domain was paused and the vCPU
 * waited for a started command to complete.  No error is recorded; the
 * caller keeps what it needs to continue that wait after a resume.  Only
 * with `resumable` and `completing` both set (below); back-ends without a
 * notion of suspend never return it. */
#define GUEST_FROZEN (-2)
#define GUEST_NR_GSIS 48u

struct guest_bus {
    const struct guest_bus_ops *ops;
    void *priv;                 /* the back-end's state */
    pthread_mutex_t lock;       /* RAM allocator, error slot */
    uint64_t ram_next, ram_end; /* bump allocator over guest RAM */
    int timeout_ms;             /* default bound on every wait */
    char err[GUEST_BUS_ERRLEN];
    /* Counted by the accessors: a read of all-ones usually means the
     * access reached nothing (Xen's null handler, an unmapped BAR). */
    uint64_t all_ones_reads;
    /* A vCPU may be frozen (GUEST_FROZEN) only where both hold: the caller
     * can continue the command after a resume (`resumable`, the disk
     * load's requests), and the driver is waiting for that command to
     * complete or sends its start (`completing`: nothing of it is left to
     * issue once that write is sent; the back-end freezes a write only
     * after it was sent, a read before or after). */
    bool resumable, completing;
    /* Time the back-end's accesses waited with the vCPU paused (not the
     * guest's time: drivers do not count it against their bounds). */
    uint64_t paused_ms;
};

/* Set up the generic part; RAM [ram_base, ram_end) is handed out by
 * guest_ram_alloc().  Called by back-ends. */
void guest_bus_init(struct guest_bus *b, const struct guest_bus_ops *ops,
                    void *priv, uint64_t ram_base, uint64_t ram_end);
/* Record a failure (first one wins) and return -1. */
int guest_bus_fail(struct guest_bus *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
const char *guest_bus_error(struct guest_bus *b);
void guest_bus_close(struct guest_bus *b);

/* Port I/O and MMIO; size 1, 2 or 4 (MMIO also 8). */
int guest_inb(struct guest_bus *b, uint16_t port, uint8_t *v);
int guest_inw(struct guest_bus *b, uint16_t port, uint16_t *v);
int guest_inl(struct guest_bus *b, uint16_t port, uint32_t *v);
int guest_outb(struct guest_bus *b, uint16_t port, uint8_t v);
int guest_outw(struct guest_bus *b, uint16_t port, uint16_t v);
int guest_outl(struct guest_bus *b, uint16_t port, uint32_t v);
int guest_readl(struct guest_bus *b, uint64_t addr, uint32_t *v);
int guest_writel(struct guest_bus *b, uint64_t addr, uint32_t v);

/* PCI configuration space through 0xCF8/0xCFC, as firmware does it.  The
 * CF8 write and the CFC access must not be split by another vCPU's config
 * cycle, so both happen under a lock shared by all config accesses. */
int guest_pci_read(struct guest_bus *b, unsigned bdf, unsigned off,
                   unsigned size, uint32_t *v);
int guest_pci_write(struct guest_bus *b, unsigned bdf, unsigned off,
                    unsigned size, uint32_t v);
#define GUEST_BDF(bus, dev, fn) (((bus) << 8) | ((dev) << 3) | (fn))

/* Guest RAM: allocate `len` bytes aligned to `align` (a power of two);
 * returns the guest physical address or 0 when RAM is exhausted. */
uint64_t guest_ram_alloc(struct guest_bus *b, size_t len, size_t align);
int guest_mem_read(struct guest_bus *b, uint64_t gpa, void *buf, size_t len);
int guest_mem_write(struct guest_bus *b, uint64_t gpa, const void *buf, size_t len);

/* Interrupt lines. */
int guest_irq_wait(struct guest_bus *b, unsigned gsi, int timeout_ms);
int guest_irq_level(struct guest_bus *b, unsigned gsi);
uint64_t guest_irq_count(struct guest_bus *b, unsigned gsi);
int guest_clock_step(struct guest_bus *b, uint64_t ns);

#endif

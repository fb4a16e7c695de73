/*
 * xensim guests: the generic half of guest_bus (accessors, PCI config via
 * CF8/CFC, the guest-RAM allocator, the error slot).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "guest_bus.h"

/* CF8/CFC is one global register pair; two vCPUs interleaving an address
 * write and a data access would read the wrong device. */
static pthread_mutex_t cfg_lock = PTHREAD_MUTEX_INITIALIZER;

void guest_bus_init(struct guest_bus *b, const struct guest_bus_ops *ops,
                    void *priv, uint64_t ram_base, uint64_t ram_end)
{
    memset(b, 0, sizeof(*b));
    b->ops = ops;
    b->priv = priv;
    pthread_mutex_init(&b->lock, NULL);
    b->ram_next = ram_base;
    b->ram_end = ram_end;
    b->timeout_ms = 10000;
}

int guest_bus_fail(struct guest_bus *b, const char *fmt, ...)
{
    pthread_mutex_lock(&b->lock);
    if (b->err[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(b->err, sizeof(b->err), fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&b->lock);
    return -1;
}

const char *guest_bus_error(struct guest_bus *b)
{
    return b->err[0] ? b->err : "no error";
}

void guest_bus_close(struct guest_bus *b)
{
    if (b->ops && b->ops->close)
        b->ops->close(b);
    pthread_mutex_destroy(&b->lock);
}

static void note_value(struct guest_bus *b, uint64_t v, unsigned size)
{
    uint64_t ones = size >= 8 ? ~0ull : ((1ull << (size * 8)) - 1);
    if (v == ones) {
        pthread_mutex_lock(&b->lock);
        b->all_ones_reads++;
        pthread_mutex_unlock(&b->lock);
    }
}

static int pio_in(struct guest_bus *b, uint16_t port, unsigned size, uint32_t *v)
{
    int rc = b->ops->pio_in(b, port, size, v);
    if (rc < 0)
        return rc;
    note_value(b, *v, size);
    return 0;
}

int guest_inb(struct guest_bus *b, uint16_t port, uint8_t *v)
{
    uint32_t x = 0;
    int rc = pio_in(b, port, 1, &x);
    if (rc < 0)
        return rc;
    *v = (uint8_t)x;
    return 0;
}

int guest_inw(struct guest_bus *b, uint16_t port, uint16_t *v)
{
    uint32_t x = 0;
    int rc = pio_in(b, port, 2, &x);
    if (rc < 0)
        return rc;
    *v = (uint16_t)x;
    return 0;
}

int guest_inl(struct guest_bus *b, uint16_t port, uint32_t *v)
{
    return pio_in(b, port, 4, v);
}

int guest_outb(struct guest_bus *b, uint16_t port, uint8_t v)
{
    return b->ops->pio_out(b, port, 1, v);
}

int guest_outw(struct guest_bus *b, uint16_t port, uint16_t v)
{
    return b->ops->pio_out(b, port, 2, v);
}

int guest_outl(struct guest_bus *b, uint16_t port, uint32_t v)
{
    return b->ops->pio_out(b, port, 4, v);
}

int guest_readl(struct guest_bus *b, uint64_t addr, uint32_t *v)
{
    uint64_t x = 0;
    int rc = b->ops->mmio_read(b, addr, 4, &x);
    if (rc < 0)
        return rc;
    note_value(b, x, 4);
    *v = (uint32_t)x;
    return 0;
}

int guest_writel(struct guest_bus *b, uint64_t addr, uint32_t v)
{
    return b->ops->mmio_write(b, addr, 4, v);
}

static int cfg_check(struct guest_bus *b, unsigned bdf, unsigned off, unsigned size)
{
    if (bdf > 0xffff || off > 0xff || (size != 1 && size != 2 && size != 4) ||
        (off & (size - 1)) != 0)
        return guest_bus_fail(b, "PCI config access %04x+0x%x size %u: out of range or unaligned",
                              bdf, off, size);
    return 0;
}

int guest_pci_read(struct guest_bus *b, unsigned bdf, unsigned off,
                   unsigned size, uint32_t *v)
{
    if (cfg_check(b, bdf, off, size) < 0)
        return -1;
    uint32_t addr = 0x80000000u | (bdf << 8) | (off & 0xfc);
    pthread_mutex_lock(&cfg_lock);
    int r = b->ops->pio_out(b, 0xcf8, 4, addr);
    if (r == 0)
        r = b->ops->pio_in(b, (uint16_t)(0xcfc + (off & 3)), size, v);
    pthread_mutex_unlock(&cfg_lock);
    if (r == 0)
        note_value(b, *v, size);
    return r;
}

int guest_pci_write(struct guest_bus *b, unsigned bdf, unsigned off,
                    unsigned size, uint32_t v)
{
    if (cfg_check(b, bdf, off, size) < 0)
        return -1;
    uint32_t addr = 0x80000000u | (bdf << 8) | (off & 0xfc);
    pthread_mutex_lock(&cfg_lock);
    int r = b->ops->pio_out(b, 0xcf8, 4, addr);
    if (r == 0)
        r = b->ops->pio_out(b, (uint16_t)(0xcfc + (off & 3)), size, v);
    pthread_mutex_unlock(&cfg_lock);
    return r;
}

uint64_t guest_ram_alloc(struct guest_bus *b, size_t len, size_t align)
{
    if (align == 0 || (align & (align - 1)) != 0) {
        guest_bus_fail(b, "guest RAM alloc: alignment %zu is not a power of two", align);
        return 0;
    }
    pthread_mutex_lock(&b->lock);
    uint64_t at = (b->ram_next + align - 1) & ~(uint64_t)(align - 1);
    uint64_t gpa = 0;
    if (at >= b->ram_next && len <= b->ram_end - at && at <= b->ram_end) {
        gpa = at;
        b->ram_next = at + len;
    }
    pthread_mutex_unlock(&b->lock);
    if (gpa == 0)
        guest_bus_fail(b, "guest RAM alloc: %zu bytes do not fit below 0x%llx",
                       len, (unsigned long long)b->ram_end);
    return gpa;
}

int guest_mem_read(struct guest_bus *b, uint64_t gpa, void *buf, size_t len)
{
    return b->ops->mem_read(b, gpa, buf, len);
}

int guest_mem_write(struct guest_bus *b, uint64_t gpa, const void *buf, size_t len)
{
    return b->ops->mem_write(b, gpa, buf, len);
}

int guest_irq_wait(struct guest_bus *b, unsigned gsi, int timeout_ms)
{
    if (gsi >= GUEST_NR_GSIS)
        return guest_bus_fail(b, "interrupt line %u out of range", gsi);
    return b->ops->irq_wait(b, gsi, timeout_ms);
}

int guest_irq_level(struct guest_bus *b, unsigned gsi)
{
    if (gsi >= GUEST_NR_GSIS)
        return guest_bus_fail(b, "interrupt line %u out of range", gsi);
    return b->ops->irq_level(b, gsi);
}

uint64_t guest_irq_count(struct guest_bus *b, unsigned gsi)
{
    return gsi < GUEST_NR_GSIS ? b->ops->irq_count(b, gsi) : 0;
}

int guest_clock_step(struct guest_bus *b, uint64_t ns)
{
    return b->ops->clock_step ? b->ops->clock_step(b, ns) : 0;
}

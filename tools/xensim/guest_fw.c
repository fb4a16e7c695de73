/*
 * xensim guests: firmware PCI scan and BAR assignment (hvmloader's pci.c
 * order: check the PIIX3, program PIRQ routing and ELCR, size BARs, place
 * the biggest first so alignment costs nothing, enable I/O, memory and bus
 * mastering).
 */
#include <string.h>

#include "guest_fw.h"

#define PCI_IO_START   0xc000u      /* hvmloader's pci I/O window */
#define PCI_IO_END     0x10000u
#define PCI_MEM_START  0xf0000000u  /* hvmloader's default pci_mem_start */
#define PCI_MEM_END    0xfc000000u
/* hvmloader routes PIRQA..D to ISA IRQs 5, 10, 11, 5 (PCI_ISA_IRQ_MASK). */
static const uint8_t pirq_route[4] = { 5, 10, 11, 5 };

const struct guest_pci_dev *guest_fw_find(const struct guest_fw *fw,
                                          uint16_t vendor, uint16_t device)
{
    for (unsigned i = 0; i < fw->ndevs; i++)
        if (fw->dev[i].vendor == vendor && fw->dev[i].device == device)
            return &fw->dev[i];
    return NULL;
}

struct bar_ref { unsigned dev, bar; uint64_t size; bool io, is64; };

int guest_fw_scan(struct guest_bus *b, struct guest_fw *fw, bool require_piix3)
{
    memset(fw, 0, sizeof(*fw));
    uint32_t id;
    if (guest_pci_read(b, GUEST_BDF(0, 1, 0), 0, 4, &id) < 0)
        return -1;
    bool piix3 = id == 0x70008086u;
    if (require_piix3 && !piix3)
        return guest_bus_fail(b, "firmware: 00:01.0 is %04x:%04x, not the PIIX3 ISA bridge 8086:7000 "
                              "(hvmloader refuses to boot)", id & 0xffff, id >> 16);
    if (piix3) {
        /* PIRQ route control registers 0x60..0x63, then level-trigger the
         * routed IRQs in the ELCR (0x4d0/0x4d1), as hvmloader does. */
        uint16_t elcr = 0;
        for (unsigned i = 0; i < 4; i++) {
            if (guest_pci_write(b, GUEST_BDF(0, 1, 0), 0x60 + i, 1, pirq_route[i]) < 0)
                return -1;
            fw->pirq_irq[i] = pirq_route[i];
            elcr |= (uint16_t)(1u << pirq_route[i]);
        }
        if (guest_outb(b, 0x4d0, (uint8_t)elcr) < 0 || guest_outb(b, 0x4d1, (uint8_t)(elcr >> 8)) < 0)
            return -1;
        uint32_t v;
        if (guest_pci_read(b, GUEST_BDF(0, 1, 0), 0x60, 4, &v) < 0)
            return -1;
        if (v != (uint32_t)(pirq_route[0] | pirq_route[1] << 8 | pirq_route[2] << 16 |
                            (uint32_t)pirq_route[3] << 24))
            return guest_bus_fail(b, "firmware: PIRQ route registers read back 0x%08x", v);
    }

    struct bar_ref bars[GUEST_FW_MAX_DEVS * 6];
    unsigned nbars = 0;
    for (unsigned dev = 0; dev < 32; dev++) {
        for (unsigned fn = 0; fn < 8; fn++) {
            unsigned bdf = GUEST_BDF(0, dev, fn);
            if (guest_pci_read(b, bdf, 0, 4, &id) < 0)
                return -1;
            if ((id & 0xffff) == 0xffff || (id & 0xffff) == 0) {
                if (fn == 0)
                    break;
                continue;
            }
            if (fw->ndevs == GUEST_FW_MAX_DEVS)
                return guest_bus_fail(b, "firmware: more than %d PCI functions", GUEST_FW_MAX_DEVS);
            struct guest_pci_dev *d = &fw->dev[fw->ndevs];
            d->bdf = bdf;
            d->vendor = (uint16_t)id;
            d->device = (uint16_t)(id >> 16);
            uint32_t v, hdr;
            if (guest_pci_read(b, bdf, 8, 4, &d->class_rev) < 0 ||
                guest_pci_read(b, bdf, 0x0e, 1, &hdr) < 0 ||
                guest_pci_read(b, bdf, 0x3d, 1, &v) < 0)
                return -1;
            d->irq_pin = (uint8_t)v;
            if (d->irq_pin >= 1 && d->irq_pin <= 4) {
                /* The PIIX3 swizzle hvmloader assumes: (pin + dev) mod 4. */
                d->irq_line = pirq_route[((d->irq_pin - 1) + dev) & 3];
                if (guest_pci_write(b, bdf, 0x3c, 1, d->irq_line) < 0)
                    return -1;
            }
            if ((hdr & 0x7f) == 0) {
                /* Disable decoding while sizing, as firmware must. */
                uint32_t cmd;
                if (guest_pci_read(b, bdf, 4, 2, &cmd) < 0 ||
                    guest_pci_write(b, bdf, 4, 2, cmd & ~3u) < 0)
                    return -1;
                for (unsigned bi = 0; bi < 6; bi++) {
                    unsigned off = 0x10 + 4 * bi;
                    uint32_t orig, mask;
                    if (guest_pci_read(b, bdf, off, 4, &orig) < 0 ||
                        guest_pci_write(b, bdf, off, 4, 0xffffffffu) < 0 ||
                        guest_pci_read(b, bdf, off, 4, &mask) < 0)
                        return -1;
                    if (mask == 0 || mask == 0xffffffffu)
                        continue;
                    struct bar_ref *r = &bars[nbars];
                    r->dev = fw->ndevs;
                    r->bar = bi;
                    r->io = mask & 1;
                    r->is64 = !r->io && (mask & 6) == 4;
                    uint64_t m = r->io ? (mask & ~3u) | 0xffff0000u : mask & ~0xfu;
                    if (r->is64) {
                        uint32_t hi;
                        if (bi == 5)
                            return guest_bus_fail(b, "firmware: %02x:%02x.%x BAR5 claims 64 bits",
                                                  0, dev, fn);
                        if (guest_pci_write(b, bdf, off + 4, 4, 0xffffffffu) < 0 ||
                            guest_pci_read(b, bdf, off + 4, 4, &hi) < 0)
                            return -1;
                        m |= (uint64_t)hi << 32;
                    } else {
                        m |= 0xffffffff00000000ull;
                    }
                    r->size = ~m + 1;
                    if (r->size == 0 || (r->size & (r->size - 1)))
                        return guest_bus_fail(b, "firmware: %02x.%x BAR%u size mask 0x%08x is not a power of two",
                                              dev, fn, bi, mask);
                    d->bar_size[bi] = r->size;
                    d->bar_io[bi] = r->io;
                    nbars++;
                    if (r->is64)
                        bi++;
                }
            }
            fw->ndevs++;
            if (fn == 0 && !(hdr & 0x80))
                break;
        }
    }

    /* Biggest first: every base stays naturally aligned without gaps. */
    for (unsigned i = 1; i < nbars; i++)
        for (unsigned j = i; j > 0 && bars[j].size > bars[j - 1].size; j--) {
            struct bar_ref t = bars[j];
            bars[j] = bars[j - 1];
            bars[j - 1] = t;
        }
    uint64_t io = PCI_IO_START, mem = PCI_MEM_START;
    for (unsigned i = 0; i < nbars; i++) {
        struct bar_ref *r = &bars[i];
        struct guest_pci_dev *d = &fw->dev[r->dev];
        uint64_t *cur = r->io ? &io : &mem;
        uint64_t end = r->io ? PCI_IO_END : PCI_MEM_END;
        uint64_t size = r->size < 16 && !r->io ? 16 : r->size;
        uint64_t base = (*cur + size - 1) & ~(size - 1);
        if (base + size > end || base + size < base)
            return guest_bus_fail(b, "firmware: no room for %s BAR%u of %02x.%x (%llu bytes)",
                                  r->io ? "I/O" : "MMIO", r->bar, (d->bdf >> 3) & 31, d->bdf & 7,
                                  (unsigned long long)r->size);
        *cur = base + size;
        unsigned off = 0x10 + 4 * r->bar;
        if (guest_pci_write(b, d->bdf, off, 4, (uint32_t)base) < 0)
            return -1;
        if (r->is64 && guest_pci_write(b, d->bdf, off + 4, 4, (uint32_t)(base >> 32)) < 0)
            return -1;
        uint32_t back;
        if (guest_pci_read(b, d->bdf, off, 4, &back) < 0)
            return -1;
        if ((back & (r->io ? ~3u : ~0xfu)) != (uint32_t)base)
            return guest_bus_fail(b, "firmware: BAR%u of %02x.%x reads back 0x%08x after writing 0x%08x",
                                  r->bar, (d->bdf >> 3) & 31, d->bdf & 7, back, (uint32_t)base);
        d->bar[r->bar] = base;
    }
    for (unsigned i = 0; i < fw->ndevs; i++) {
        struct guest_pci_dev *d = &fw->dev[i];
        uint32_t cmd;
        bool has_io = false, has_mem = false;
        for (unsigned bi = 0; bi < 6; bi++)
            if (d->bar_size[bi]) {
                if (d->bar_io[bi])
                    has_io = true;
                else
                    has_mem = true;
            }
        if (guest_pci_read(b, d->bdf, 4, 2, &cmd) < 0)
            return -1;
        cmd |= 0x4u | (has_io ? 1u : 0) | (has_mem ? 2u : 0);
        /* The IDE function decodes its legacy ports only with I/O on. */
        if ((d->class_rev >> 16) == 0x0101)
            cmd |= 1u;
        if (guest_pci_write(b, d->bdf, 4, 2, cmd) < 0)
            return -1;
    }
    return 0;
}

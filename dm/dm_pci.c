/*
 * PCI bus 0 (dm_pci.h).  Configuration space is kept as bytes with two
 * per-byte masks, so every guest write is one rule: writable bits take the
 * new value, write-1-to-clear bits are cleared where a 1 is written, the
 * rest keep their value.  After a write, the BARs and the command register
 * are re-evaluated and the mappings in the io spaces follow.
 */
#include "dm_pci.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm_log.h"

#define MAX_LISTENERS 4
#define STATE_ID "pci-config"
#define STATE_VERSION 1u

typedef struct bar {
    bool present, io;
    uint32_t size;
    const dm_io_ops *ops;
    void *opaque;
    uint64_t mapped;             /* DM_PCI_BAR_UNMAPPED or the base in use */
    dm_io_range *range;
} bar;

struct dm_pci_dev {
    dm_pci_bus *bus;
    char name[32];
    unsigned slot, fn;
    dm_pci_id id;
    const dm_pci_dev_ops *ops;
    void *opaque;
    uint8_t cfg[DM_PCI_CFG_SIZE];
    uint8_t wmask[DM_PCI_CFG_SIZE];
    uint8_t w1c[DM_PCI_CFG_SIZE];
    bar bars[DM_PCI_NUM_BARS];
    bool irq_level;
};

typedef struct listener {
    dm_pci_listener_fn fn;
    void *opaque;
} listener;

struct dm_pci_bus {
    dm_io_space *pio, *mmio;
    dm_irq *irq;
    dm_pci_dev *devs[256];       /* by devfn */
    listener l[MAX_LISTENERS];
    size_t nl;
    dm_state_reg *state;
};

static unsigned devfn(const dm_pci_dev *d)
{
    return d->slot << 3 | d->fn;
}

/* ------------------------------------------------------------- raw bytes */

void dm_pci_cfg_set(dm_pci_dev *d, unsigned off, unsigned size, uint32_t val)
{
    for (unsigned i = 0; i < size && i < 4 && off + i < DM_PCI_CFG_SIZE; i++)
        d->cfg[off + i] = (uint8_t)(val >> (8 * i));
}

uint32_t dm_pci_cfg_get(const dm_pci_dev *d, unsigned off, unsigned size)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < size && i < 4 && off + i < DM_PCI_CFG_SIZE; i++)
        v |= (uint32_t)d->cfg[off + i] << (8 * i);
    return v;
}

void dm_pci_set_masks(dm_pci_dev *d, unsigned off, unsigned size, uint32_t wmask, uint32_t w1c)
{
    for (unsigned i = 0; i < size && i < 4 && off + i < DM_PCI_CFG_SIZE; i++) {
        d->wmask[off + i] = (uint8_t)(wmask >> (8 * i));
        d->w1c[off + i] = (uint8_t)(w1c >> (8 * i));
    }
}

/* ------------------------------------------------------------------ BARs */

/* Where the BAR would decode now (QEMU's pci_bar_address rules): the
 * decode bit for its type is on, and the address is neither 0 nor the
 * sizing pattern nor past the end of its space. */
static uint64_t bar_target(const dm_pci_dev *d, unsigned n)
{
    const bar *b = &d->bars[n];
    uint16_t cmd = (uint16_t)dm_pci_cfg_get(d, DM_PCI_COMMAND, 2);
    uint32_t v = dm_pci_cfg_get(d, DM_PCI_BAR0 + 4 * n, 4);
    if (!b->present)
        return DM_PCI_BAR_UNMAPPED;
    uint64_t base, lastb;
    if (b->io) {
        if (!(cmd & DM_PCI_COMMAND_IO))
            return DM_PCI_BAR_UNMAPPED;
        base = v & ~(uint32_t)(b->size - 1) & ~3u;
        lastb = base + b->size - 1;
        if (base == 0 || lastb > 0xffff)
            return DM_PCI_BAR_UNMAPPED;
    } else {
        if (!(cmd & DM_PCI_COMMAND_MEMORY))
            return DM_PCI_BAR_UNMAPPED;
        base = v & ~(uint32_t)(b->size - 1) & ~0xfu;
        lastb = base + b->size - 1;
        if (base == 0 || lastb >= UINT32_MAX)
            return DM_PCI_BAR_UNMAPPED;
    }
    return base;
}

static void bar_update(dm_pci_dev *d, unsigned n)
{
    bar *b = &d->bars[n];
    uint64_t want = bar_target(d, n);
    if (want == b->mapped)
        return;
    dm_io_space *space = b->io ? d->bus->pio : d->bus->mmio;
    if (b->range) {
        dm_io_unregister(space, b->range);
        b->range = NULL;
    }
    b->mapped = DM_PCI_BAR_UNMAPPED;
    if (want == DM_PCI_BAR_UNMAPPED || !space)
        return;
    char name[48];
    snprintf(name, sizeof(name), "%s bar%u", d->name, n);
    int rc = dm_io_register(space, name, want, b->size, b->ops, b->opaque, &b->range);
    if (rc < 0) {
        /* The guest placed it over something else; it decodes nothing
         * until moved (dm_io logged the clash). */
        dm_warn("pci %02x.%x %s: BAR%u at %#llx left unmapped: %s", d->slot, d->fn, d->name, n,
                (unsigned long long)want, strerror(-rc));
        return;
    }
    b->mapped = want;
}

static void bars_update(dm_pci_dev *d)
{
    for (unsigned n = 0; n < DM_PCI_NUM_BARS; n++)
        bar_update(d, n);
}

static void bars_unmap(dm_pci_dev *d)
{
    for (unsigned n = 0; n < DM_PCI_NUM_BARS; n++) {
        bar *b = &d->bars[n];
        if (b->range)
            dm_io_unregister(b->io ? d->bus->pio : d->bus->mmio, b->range);
        b->range = NULL;
        b->mapped = DM_PCI_BAR_UNMAPPED;
    }
}

static bool pow2(uint32_t v)
{
    return v && !(v & (v - 1));
}

int dm_pci_bar_init(dm_pci_dev *d, unsigned n, bool io, uint32_t size, const dm_io_ops *ops,
                    void *opaque)
{
    if (!d || n >= DM_PCI_NUM_BARS || !ops || !pow2(size) ||
        (io ? size < 4 || size > 256 : size < 16 || size > 0x80000000u)) {
        dm_err("pci: bad BAR%u declaration (%s, size %#x)", n, io ? "io" : "memory", size);
        return -EINVAL;
    }
    if (d->bars[n].present)
        return -EEXIST;
    d->bars[n] = (bar){ .present = true, .io = io, .size = size, .ops = ops, .opaque = opaque,
                        .mapped = DM_PCI_BAR_UNMAPPED };
    unsigned off = DM_PCI_BAR0 + 4 * n;
    /* Type bits are read-only; address bits below the size read as 0. */
    dm_pci_cfg_set(d, off, 4, io ? 1u : 0u);
    dm_pci_set_masks(d, off, 4, ~(size - 1) & (io ? ~3u : ~0xfu), 0);
    return 0;
}

uint64_t dm_pci_bar_addr(const dm_pci_dev *d, unsigned n)
{
    return n < DM_PCI_NUM_BARS ? d->bars[n].mapped : DM_PCI_BAR_UNMAPPED;
}

/* ------------------------------------------------------------------ INTx */

static void intx_update(dm_pci_dev *d)
{
    uint16_t status = (uint16_t)dm_pci_cfg_get(d, DM_PCI_STATUS, 2);
    status = d->irq_level ? status | DM_PCI_STATUS_INTERRUPT : status & ~DM_PCI_STATUS_INTERRUPT;
    dm_pci_cfg_set(d, DM_PCI_STATUS, 2, status);
    uint8_t pin = d->cfg[DM_PCI_INTERRUPT_PIN];
    if (!d->bus->irq || pin < 1 || pin > 4)
        return;
    bool disabled = dm_pci_cfg_get(d, DM_PCI_COMMAND, 2) & DM_PCI_COMMAND_INTX_DISABLE;
    dm_irq_pci_set(d->bus->irq, d->slot, pin - 1u, d->irq_level && !disabled);
}

void dm_pci_set_irq(dm_pci_dev *d, bool level)
{
    d->irq_level = level;
    intx_update(d);
}

/* ------------------------------------------------------------------- bus */

dm_pci_bus *dm_pci_bus_new(dm_io_space *pio, dm_io_space *mmio, dm_irq *irq)
{
    dm_pci_bus *bus = calloc(1, sizeof(*bus));
    if (!bus)
        return NULL;
    bus->pio = pio;
    bus->mmio = mmio;
    bus->irq = irq;
    return bus;
}

void dm_pci_bus_free(dm_pci_bus *bus)
{
    if (!bus)
        return;
    for (unsigned i = 0; i < 256; i++)
        if (bus->devs[i])
            dm_pci_remove(bus, bus->devs[i]);
    free(bus);
}

int dm_pci_listener_add(dm_pci_bus *bus, dm_pci_listener_fn fn, void *opaque, bool replay)
{
    if (!bus || !fn)
        return -EINVAL;
    if (bus->nl == MAX_LISTENERS)
        return -ENOSPC;
    for (unsigned i = 0; replay && i < 256; i++) {
        if (!bus->devs[i])
            continue;
        int rc = fn(opaque, dm_pci_dev_sbdf(bus->devs[i]), true, bus->devs[i]->name);
        if (rc < 0) {
            dm_err("pci: listener refused existing function %s: %s", bus->devs[i]->name,
                   strerror(-rc));
            while (i-- > 0)
                if (bus->devs[i])
                    fn(opaque, dm_pci_dev_sbdf(bus->devs[i]), false, bus->devs[i]->name);
            return rc;
        }
    }
    bus->l[bus->nl++] = (listener){ fn, opaque };
    return 0;
}

static void tell_removed(dm_pci_bus *bus, dm_pci_dev *d, size_t upto)
{
    for (size_t i = upto; i-- > 0;) {
        int rc = bus->l[i].fn(bus->l[i].opaque, dm_pci_dev_sbdf(d), false, d->name);
        if (rc < 0)
            dm_warn("pci: listener failed to drop function %s: %s", d->name, strerror(-rc));
    }
}

/* Function 0's multifunction bit: forced by its id, or set while any other
 * function of the slot exists (firmware scans functions 1-7 only then). */
static void multifunction_update(dm_pci_bus *bus, unsigned slot)
{
    dm_pci_dev *f0 = bus->devs[slot << 3];
    if (!f0)
        return;
    bool multi = f0->id.multifunction;
    for (unsigned fn = 1; fn < 8 && !multi; fn++)
        multi = bus->devs[slot << 3 | fn] != NULL;
    uint8_t h = f0->cfg[DM_PCI_HEADER_TYPE];
    f0->cfg[DM_PCI_HEADER_TYPE] = multi ? h | DM_PCI_HEADER_MULTIFUNCTION
                                        : h & (uint8_t)~DM_PCI_HEADER_MULTIFUNCTION;
}

/* The standard header's contents and masks (QEMU's pci_init_wmask etc.). */
static void header_init(dm_pci_dev *d)
{
    const dm_pci_id *id = &d->id;
    dm_pci_cfg_set(d, DM_PCI_VENDOR_ID, 2, id->vendor);
    dm_pci_cfg_set(d, DM_PCI_DEVICE_ID, 2, id->device);
    dm_pci_cfg_set(d, DM_PCI_REVISION, 1, id->revision);
    dm_pci_cfg_set(d, DM_PCI_CLASS_PROG, 1, id->class_code & 0xff);
    dm_pci_cfg_set(d, DM_PCI_CLASS_PROG + 1, 2, (id->class_code >> 8) & 0xffff);
    dm_pci_cfg_set(d, DM_PCI_HEADER_TYPE, 1, 0);
    dm_pci_cfg_set(d, DM_PCI_SUBSYSTEM_VENDOR_ID, 2, id->subsys_vendor);
    dm_pci_cfg_set(d, DM_PCI_SUBSYSTEM_ID, 2, id->subsys_id);
    dm_pci_cfg_set(d, DM_PCI_INTERRUPT_PIN, 1, id->int_pin);
    /* Command: I/O, memory, bus master, SERR, parity, INTx disable. */
    dm_pci_set_masks(d, DM_PCI_COMMAND, 2,
                     DM_PCI_COMMAND_IO | DM_PCI_COMMAND_MEMORY | DM_PCI_COMMAND_MASTER | 0x0040 |
                         0x0100 | DM_PCI_COMMAND_INTX_DISABLE,
                     0);
    /* Status: the error bits are write-1-to-clear, the rest read-only. */
    dm_pci_set_masks(d, DM_PCI_STATUS, 2, 0, 0xf900);
    dm_pci_set_masks(d, 0x0c, 2, 0xffff, 0);              /* cache line size, latency timer */
    dm_pci_set_masks(d, DM_PCI_INTERRUPT_LINE, 1, 0xff, 0);
    /* Device-specific space is writable unless the device says otherwise. */
    memset(d->wmask + 0x40, 0xff, DM_PCI_CFG_SIZE - 0x40);
}

static void state_register(dm_pci_bus *bus, dm_pci_dev *d);

int dm_pci_add(dm_pci_bus *bus, const char *name, unsigned slot, unsigned fn,
               const dm_pci_id *id, const dm_pci_dev_ops *ops, void *opaque, dm_pci_dev **out)
{
    if (out)
        *out = NULL;
    if (!bus || !id || slot >= 32 || fn >= 8 || id->vendor == 0 || id->vendor == 0xffff ||
        id->int_pin > 4) {
        dm_err("pci: bad function %s at %02x.%x (slot < 32, fn < 8, a real vendor id, pin 0-4)",
               name ? name : "?", slot, fn);
        return -EINVAL;
    }
    if (bus->devs[slot << 3 | fn]) {
        dm_err("pci: %02x.%x is taken by %s; cannot add %s", slot, fn,
               bus->devs[slot << 3 | fn]->name, name ? name : "?");
        return -EEXIST;
    }
    dm_pci_dev *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->bus = bus;
    snprintf(d->name, sizeof(d->name), "%s", name ? name : "?");
    d->slot = slot;
    d->fn = fn;
    d->id = *id;
    d->ops = ops;
    d->opaque = opaque;
    for (unsigned n = 0; n < DM_PCI_NUM_BARS; n++)
        d->bars[n].mapped = DM_PCI_BAR_UNMAPPED;
    header_init(d);
    bus->devs[slot << 3 | fn] = d;
    multifunction_update(bus, slot);
    for (size_t i = 0; i < bus->nl; i++) {
        int rc = bus->l[i].fn(bus->l[i].opaque, dm_pci_dev_sbdf(d), true, d->name);
        if (rc < 0) {
            dm_err("pci: function %s at %02x.%x refused by a listener: %s", d->name, slot, fn,
                   strerror(-rc));
            tell_removed(bus, d, i);
            bus->devs[slot << 3 | fn] = NULL;
            multifunction_update(bus, slot);
            free(d);
            return rc;
        }
    }
    if (bus->state)
        state_register(bus, d);
    if (out)
        *out = d;
    return 0;
}

void dm_pci_remove(dm_pci_bus *bus, dm_pci_dev *d)
{
    if (!bus || !d || bus->devs[devfn(d)] != d)
        return;
    tell_removed(bus, d, bus->nl);
    bars_unmap(d);
    if (d->irq_level) {
        d->irq_level = false;
        intx_update(d);
    }
    if (bus->state)
        dm_state_unregister(bus->state, STATE_ID, devfn(d));
    bus->devs[devfn(d)] = NULL;
    multifunction_update(bus, d->slot);
    free(d);
}

uint32_t dm_pci_dev_sbdf(const dm_pci_dev *d)
{
    return dm_pci_sbdf(0, 0, d->slot, d->fn);
}

const char *dm_pci_dev_name(const dm_pci_dev *d)
{
    return d->name;
}

dm_pci_dev *dm_pci_find(const dm_pci_bus *bus, uint32_t sbdf)
{
    if (sbdf >> 8)               /* segment 0, bus 0 only */
        return NULL;
    return bus->devs[sbdf & 0xff];
}

/* ------------------------------------------------------- config access */

/* Common checks; *d is the function or NULL. */
static int config_target(dm_pci_bus *bus, uint32_t sbdf, uint32_t reg, unsigned size,
                         dm_pci_dev **d)
{
    *d = NULL;
    if (size != 1 && size != 2 && size != 4)
        return -EINVAL;
    *d = dm_pci_find(bus, sbdf);
    if (!*d)
        return -ENOENT;
    if (reg >= DM_PCI_CFG_SIZE || size > DM_PCI_CFG_SIZE - reg)
        return -ERANGE;
    return 0;
}

int dm_pci_config_read(dm_pci_bus *bus, uint32_t sbdf, uint32_t reg, unsigned size, uint32_t *val)
{
    dm_pci_dev *d;
    int rc = config_target(bus, sbdf, reg, size, &d);
    if (rc < 0) {
        *val = (uint32_t)dm_io_ones(size == 1 || size == 2 ? size : 4);
        return rc;
    }
    uint32_t v = dm_pci_cfg_get(d, reg, size);
    if (d->ops && d->ops->config_read)
        v = d->ops->config_read(d->opaque, d, reg, size, v);
    *val = v & (uint32_t)dm_io_ones(size);
    return 0;
}

static bool touches(uint32_t reg, unsigned size, unsigned lo, unsigned hi)
{
    return reg <= hi && reg + size - 1 >= lo;
}

int dm_pci_config_write(dm_pci_bus *bus, uint32_t sbdf, uint32_t reg, unsigned size, uint32_t val)
{
    dm_pci_dev *d;
    int rc = config_target(bus, sbdf, reg, size, &d);
    if (rc < 0)
        return rc;
    for (unsigned i = 0; i < size; i++) {
        unsigned off = reg + i;
        uint8_t v = (uint8_t)(val >> (8 * i));
        uint8_t b = (uint8_t)((d->cfg[off] & ~d->wmask[off]) | (v & d->wmask[off]));
        d->cfg[off] = (uint8_t)(b & ~(v & d->w1c[off]));
    }
    if (touches(reg, size, DM_PCI_COMMAND, DM_PCI_COMMAND + 1) ||
        touches(reg, size, DM_PCI_BAR0, DM_PCI_BAR0 + 4 * DM_PCI_NUM_BARS - 1))
        bars_update(d);
    if (touches(reg, size, DM_PCI_COMMAND, DM_PCI_STATUS + 1))
        intx_update(d);           /* INTx disable, or a status write that cleared bit 3 */
    if (d->ops && d->ops->config_write)
        d->ops->config_write(d->opaque, d, reg, size, val & (uint32_t)dm_io_ones(size));
    return 0;
}

/* ----------------------------------------------------------- state file */

static const struct { unsigned off, len; const char *name; } fields[] = {
    { 0x00, 2, "vendor-id" },      { 0x02, 2, "device-id" },    { 0x04, 2, "command" },
    { 0x06, 2, "status" },         { 0x08, 1, "revision" },     { 0x09, 3, "class-code" },
    { 0x0c, 1, "cache-line-size" }, { 0x0d, 1, "latency-timer" }, { 0x0e, 1, "header-type" },
    { 0x0f, 1, "bist" },           { 0x10, 4, "bar0" },          { 0x14, 4, "bar1" },
    { 0x18, 4, "bar2" },           { 0x1c, 4, "bar3" },          { 0x20, 4, "bar4" },
    { 0x24, 4, "bar5" },           { 0x28, 4, "cardbus-cis" },   { 0x2c, 2, "subsystem-vendor-id" },
    { 0x2e, 2, "subsystem-id" },   { 0x30, 4, "rom-bar" },       { 0x34, 1, "capabilities" },
    { 0x3c, 1, "interrupt-line" }, { 0x3d, 1, "interrupt-pin" }, { 0x3e, 1, "min-gnt" },
    { 0x3f, 1, "max-lat" },
};

static void field_name(unsigned off, char *buf, size_t len)
{
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (off >= fields[i].off && off < fields[i].off + fields[i].len) {
            snprintf(buf, len, "%s", fields[i].name);
            return;
        }
    }
    snprintf(buf, len, "config[0x%02x]", off);
}

static int pci_save(void *opaque, dm_state_wr *w)
{
    dm_pci_dev *d = opaque;
    dm_state_put_bytes(w, d->cfg, DM_PCI_CFG_SIZE);
    dm_state_put_u8(w, d->irq_level);
    return 0;
}

/* Bits the guest cannot change must match this function: otherwise the
 * file was saved from a different device. */
static bool fixed_bit_mask(const dm_pci_dev *d, unsigned off, uint8_t *mask)
{
    uint8_t m = (uint8_t)~(d->wmask[off] | d->w1c[off]);
    if (off == DM_PCI_STATUS)
        m &= (uint8_t)~DM_PCI_STATUS_INTERRUPT;        /* follows the INTx level */
    if (off == DM_PCI_HEADER_TYPE)
        m &= (uint8_t)~DM_PCI_HEADER_MULTIFUNCTION;    /* follows the slot's functions */
    *mask = m;
    return m != 0;
}

static int pci_validate(void *opaque, uint32_t version, dm_state_rd *r)
{
    dm_pci_dev *d = opaque;
    uint8_t cfg[DM_PCI_CFG_SIZE];
    dm_state_get_bytes(r, cfg, sizeof(cfg), "config");
    uint8_t level = dm_state_get_u8(r, "intx-level");
    if (dm_state_failed(r))
        return -EINVAL;
    /* Device-owned registers beyond the header are the device's to check
     * in its own section; here only the bits fixed by the hardware. */
    for (unsigned off = 0; off < DM_PCI_CFG_SIZE; off++) {
        uint8_t m;
        if (!fixed_bit_mask(d, off, &m) || ((cfg[off] ^ d->cfg[off]) & m) == 0)
            continue;
        char name[32];
        field_name(off, name, sizeof(name));
        dm_state_fail(r, "field '%s' (byte %#x) is %#04x in the file but %#04x on %s: the file "
                      "was saved from a different device", name, off, cfg[off], d->cfg[off],
                      d->name);
        return -EINVAL;
    }
    dm_state_check(r, level <= 1, "intx-level", level, "is not 0 or 1");
    return 0;
}

static void pci_load(void *opaque, uint32_t version, dm_state_rd *r)
{
    dm_pci_dev *d = opaque;
    uint8_t hdr = d->cfg[DM_PCI_HEADER_TYPE];
    dm_state_get_bytes(r, d->cfg, DM_PCI_CFG_SIZE, "config");
    d->cfg[DM_PCI_HEADER_TYPE] = hdr;
    d->irq_level = dm_state_get_u8(r, "intx-level") != 0;
    bars_update(d);
    intx_update(d);
}

static void state_register(dm_pci_bus *bus, dm_pci_dev *d)
{
    int rc = dm_state_register(bus->state, STATE_ID, devfn(d), STATE_VERSION, pci_save,
                               pci_validate, pci_load, d);
    if (rc < 0)
        dm_err("pci: cannot register the state of %s: %s", d->name, strerror(-rc));
}

int dm_pci_bus_set_state_reg(dm_pci_bus *bus, dm_state_reg *reg)
{
    if (!bus || !reg || bus->state)
        return -EINVAL;
    bus->state = reg;
    for (unsigned i = 0; i < 256; i++)
        if (bus->devs[i])
            state_register(bus, bus->devs[i]);
    return 0;
}

/*
 * The Xen platform PCI device at 00:02.0 (5853:0001): its presence tells a
 * guest's PV drivers to load, and the fixed ports 0x10..0x13 carry the
 * unplug protocol (docs/misc/hvm-emulated-unplug.pandoc in Xen):
 *   read  0x10 (16 bit): magic 0x49d2 (byte-swapped if the drivers were
 *                        refused)              read 0x12 (8 bit): version 1
 *   write 0x12 (16 bit): product number        write 0x10 (32 bit): build
 *   write 0x10 (16 bit): unplug mask (1 IDE disks, 2 NICs, 4 aux IDE, 8 NVMe)
 *   write 0x12 (8 bit):  one character of the drivers' log
 * rsdm has no emulated disk or NIC yet, so an unplug is recorded and
 * logged only.  Absent when the toolstack set disable_pf (xen_platform_pci=0).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dev_platform.h"
#include "dm_log.h"

#define XPF_PORT 0x10
#define XPF_MAGIC 0x49d2
#define XPF_VERSION 1
#define XPF_LOG_MAX 120
#define STATE_VERSION 1

struct dev_xen_platform {
    dm_platform *p;
    dm_pci_dev *dev;
    dm_io_range *fixed;
    uint8_t flags;                /* read back at 0x13 */
    uint16_t product;
    uint16_t unplugged;
    char log[XPF_LOG_MAX + 1];
    size_t log_len;
};

static void log_char(dev_xen_platform *d, uint8_t c)
{
    /* The guest's text goes to our log a line at a time, printable only. */
    if (c == '\n' || d->log_len == XPF_LOG_MAX) {
        d->log[d->log_len] = '\0';
        dm_info("xen-platform: guest: %s", d->log);
        d->log_len = 0;
        if (c == '\n')
            return;
    }
    d->log[d->log_len++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
}

static uint64_t fixed_read(void *opaque, uint64_t off, unsigned size)
{
    dev_xen_platform *d = opaque;
    if (off == 0 && size == 2)
        return XPF_MAGIC;
    if (off == 2 && size == 1)
        return XPF_VERSION;
    if (off == 3 && size == 1)
        return d->flags;
    return dm_io_ones(size);
}

static void fixed_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
    dev_xen_platform *d = opaque;
    dm_platform *p = d->p;
    if (off == 0 && size == 2) {
        d->unplugged |= (uint16_t)(val & 0xf);
        p->stats.unplugs++;
        p->stats.unplug_mask = d->unplugged;
        dm_info("xen-platform: guest unplugs emulated devices, mask 0x%x (none emulated yet)",
                (unsigned)(val & 0xffff));
    } else if (off == 0 && size == 4) {
        dm_debug("xen-platform: PV drivers build %u", (unsigned)val);
    } else if (off == 2 && size == 2) {
        d->product = (uint16_t)val;
        dm_info("xen-platform: PV drivers product %u", d->product);
    } else if (off == 2 && size == 1) {
        log_char(d, (uint8_t)val);
    } else if (off == 3 && size == 1) {
        d->flags = (uint8_t)val;
    } else {
        p->stats.bad_writes++;
        dm_debug("xen-platform: %u-byte write at port 0x%x ignored", size,
                 (unsigned)(XPF_PORT + off));
    }
}

static const dm_io_ops fixed_ops = {
    .read = fixed_read, .write = fixed_write, .sizes = DM_IO_SIZE_1 | DM_IO_SIZE_2 | DM_IO_SIZE_4,
};

/* BAR0 (I/O, 256): QEMU logs byte writes at offset 8; nothing else. */
static uint64_t bar_read(void *opaque, uint64_t off, unsigned size)
{
    (void)opaque;
    (void)off;
    (void)size;
    return 0;
}

static void bar_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
    if (off == 8 && size == 1)
        log_char(opaque, (uint8_t)val);
}

static const dm_io_ops bar_io_ops = { .read = bar_read, .write = bar_write, .sizes = 0 };

/* BAR1 (memory, 16 MiB): where PV drivers map grant tables; the guest
 * only needs the address range, accesses read 0. */
static const dm_io_ops bar_mem_ops = { .read = bar_read, .write = bar_write, .sizes = 0 };

static int save(void *opaque, dm_state_wr *w)
{
    dev_xen_platform *d = opaque;
    dm_state_put_u8(w, d->flags);
    dm_state_put_u16(w, d->product);
    dm_state_put_u16(w, d->unplugged);
    return 0;
}

static int validate(void *opaque, uint32_t version, dm_state_rd *r)
{
    (void)opaque;
    (void)version;
    dm_state_get_u8(r, "flags");
    dm_state_get_u16(r, "product");
    uint16_t u = dm_state_get_u16(r, "unplugged");
    dm_state_check(r, u <= 0xf, "unplugged", u, "has undefined bits");
    return dm_state_failed(r) ? -EINVAL : 0;
}

static void load(void *opaque, uint32_t version, dm_state_rd *r)
{
    dev_xen_platform *d = opaque;
    (void)version;
    d->flags = dm_state_get_u8(r, "flags");
    d->product = dm_state_get_u16(r, "product");
    d->unplugged = dm_state_get_u16(r, "unplugged");
    d->p->stats.unplug_mask = d->unplugged;
}

int dev_xen_platform_new(dm_platform *p, dev_xen_platform **out)
{
    static const dm_pci_id id = {
        .vendor = 0x5853, .device = 0x0001, .subsys_vendor = 0x5853, .subsys_id = 0x0001,
        .revision = 0x01, .class_code = 0xff8000, .int_pin = 1,
    };
    int r;
    dev_xen_platform *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->p = p;
    if ((r = dm_pci_add(p->cfg.pci, "xen-platform", 2, 0, &id, NULL, d, &d->dev)) < 0 ||
        (r = dm_pci_bar_init(d->dev, 0, true, 0x100, &bar_io_ops, d)) < 0 ||
        (r = dm_pci_bar_init(d->dev, 1, false, 0x1000000, &bar_mem_ops, d)) < 0 ||
        (r = dm_io_register(p->cfg.pio, "xen-platform", XPF_PORT, 4, &fixed_ops, d,
                            &d->fixed)) < 0)
        goto fail;
    if (p->cfg.state &&
        (r = dm_state_register(p->cfg.state, "xen-platform", 0, STATE_VERSION, save, validate,
                               load, d)) < 0)
        goto fail;
    *out = d;
    return 0;
fail:
    dev_xen_platform_free(d);
    return r;
}

void dev_xen_platform_free(dev_xen_platform *d)
{
    if (!d)
        return;
    dm_platform *p = d->p;
    if (p->cfg.state)
        dm_state_unregister(p->cfg.state, "xen-platform", 0);
    dm_io_unregister(p->cfg.pio, d->fixed);
    if (d->dev)
        dm_pci_remove(p->cfg.pci, d->dev);
    free(d);
}

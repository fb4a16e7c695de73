/*
 * dm_pci on real dm_io spaces, a recording dm_irq back-end and the real
 * state file: config access by SBDF (claimed, unclaimed, bad sizes and
 * offsets), masks (read-only, RW1C), multifunction, BAR sizing and every
 * remapping path, INTx, listeners, and save/load with a mismatching device.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dm_pci.h"

typedef struct fixture {
    dm_io_space *pio, *mmio;
    dm_irq *irq;
    dm_pci_bus *bus;
    char iolog[512];             /* dm_io listener: "+name@base " / "-name@base " */
    char irqlog[256];
    char pcilog[256];
} fixture;

static fixture F;

static void append(char *log, size_t size, const char *s)
{
    size_t n = strlen(log);
    snprintf(log + n, size - n, "%s ", s);
}

static int io_listener(void *opaque, dm_io_kind kind, bool added, uint64_t base, uint64_t len,
                       const char *name)
{
    char s[96];
    snprintf(s, sizeof(s), "%c%s@%llx+%llx", added ? '+' : '-', name, (unsigned long long)base,
             (unsigned long long)len);
    append(F.iolog, sizeof(F.iolog), s);
    return 0;
}

static int rec_pci_irq(void *opaque, unsigned slot, unsigned intx, bool level)
{
    char s[32];
    snprintf(s, sizeof(s), "%u.%c=%d", slot, 'A' + intx, level);
    append(F.irqlog, sizeof(F.irqlog), s);
    return 0;
}

static const dm_irq_backend irq_be = { NULL, rec_pci_irq };

static int pci_listener(void *opaque, uint32_t sbdf, bool added, const char *name)
{
    char s[48];
    snprintf(s, sizeof(s), "%c%s=%04x", added ? '+' : '-', name, sbdf);
    append(F.pcilog, sizeof(F.pcilog), s);
    return opaque ? -EPERM : 0;
}

static int setup(void **state)
{
    (void)state;
    memset(&F, 0, sizeof(F));
    F.pio = dm_io_space_new(DM_IO_PORT);
    F.mmio = dm_io_space_new(DM_IO_MMIO);
    F.irq = dm_irq_new(&irq_be, NULL);
    dm_irq_set_gate(F.irq, true);
    F.bus = dm_pci_bus_new(F.pio, F.mmio, F.irq);
    assert_int_equal(dm_io_listener_add(F.pio, io_listener, NULL, false), 0);
    assert_int_equal(dm_io_listener_add(F.mmio, io_listener, NULL, false), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    dm_pci_bus_free(F.bus);
    dm_irq_free(F.irq);
    dm_io_space_free(F.pio);
    dm_io_space_free(F.mmio);
    return 0;
}

/* A device whose BAR reads return the offset. */
static uint64_t bar_read(void *opaque, uint64_t off, unsigned size)
{
    return off | 0xa0;
}

static void bar_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
    *(uint64_t *)opaque = off << 32 | val;
}

static const dm_io_ops bar_ops = { .read = bar_read, .write = bar_write };

static const dm_pci_id ide_id = {
    .vendor = 0x8086, .device = 0x7010, .class_code = 0x010180, .int_pin = 1,
};

static dm_pci_dev *add(unsigned slot, unsigned fn, const dm_pci_id *id)
{
    dm_pci_dev *d;
    assert_int_equal(dm_pci_add(F.bus, "dev", slot, fn, id, NULL, NULL, &d), 0);
    return d;
}

static uint32_t cfg_read(unsigned slot, unsigned fn, uint32_t reg, unsigned size)
{
    uint32_t v;
    assert_int_equal(dm_pci_config_read(F.bus, dm_pci_sbdf(0, 0, slot, fn), reg, size, &v), 0);
    return v;
}

static void cfg_write(unsigned slot, unsigned fn, uint32_t reg, unsigned size, uint32_t v)
{
    assert_int_equal(dm_pci_config_write(F.bus, dm_pci_sbdf(0, 0, slot, fn), reg, size, v), 0);
}

static void test_ids_and_unclaimed(void **state)
{
    (void)state;
    add(1, 1, &ide_id);
    assert_int_equal(cfg_read(1, 1, 0, 4), 0x70108086);
    assert_int_equal(cfg_read(1, 1, 0, 2), 0x8086);
    assert_int_equal(cfg_read(1, 1, 3, 1), 0x70);
    assert_int_equal(cfg_read(1, 1, 0x08, 4), 0x01018000);
    assert_int_equal(cfg_read(1, 1, DM_PCI_INTERRUPT_PIN, 1), 1);
    uint32_t v;
    /* Nothing at 01.2, on bus 1, or in segment 1. */
    assert_int_equal(dm_pci_config_read(F.bus, dm_pci_sbdf(0, 0, 1, 2), 0, 4, &v), -ENOENT);
    assert_int_equal(v, 0xffffffff);
    assert_int_equal(dm_pci_config_read(F.bus, dm_pci_sbdf(0, 1, 1, 1), 0, 2, &v), -ENOENT);
    assert_int_equal(v, 0xffff);
    assert_int_equal(dm_pci_config_read(F.bus, dm_pci_sbdf(1, 0, 1, 1), 0, 1, &v), -ENOENT);
    assert_int_equal(v, 0xff);
    /* Bad sizes and offsets past 256 (AMD extended registers). */
    unsigned bad_sizes[] = { 0, 3, 8 };
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(dm_pci_config_read(F.bus, dm_pci_sbdf(0, 0, 1, 1), 0, bad_sizes[i], &v),
                         -EINVAL);
        assert_int_equal(v, 0xffffffff);
        assert_int_equal(dm_pci_config_write(F.bus, dm_pci_sbdf(0, 0, 1, 1), 0, bad_sizes[i], 0),
                         -EINVAL);
    }
    assert_int_equal(dm_pci_config_read(F.bus, dm_pci_sbdf(0, 0, 1, 1), 0xfe, 4, &v), -ERANGE);
    assert_int_equal(dm_pci_config_read(F.bus, dm_pci_sbdf(0, 0, 1, 1), 0x100, 1, &v), -ERANGE);
    assert_int_equal(dm_pci_config_write(F.bus, dm_pci_sbdf(0, 0, 1, 1), 0xfff, 1, 0), -ERANGE);
    assert_int_equal(cfg_read(1, 1, 0xfc, 4), 0);            /* last dword is fine */
}

/* What Xen makes of `outl 0xcf8, 0x80000800; inw 0xcfe` (reference
 * xen-ioreq.md §1.2 step 7): PCI_CONFIG with addr = SBDF << 32 | reg. */
static void test_xen_cf8_translation(void **state)
{
    (void)state;
    add(1, 0, &(dm_pci_id){ .vendor = 0x8086, .device = 0x7000 });
    uint32_t cf8 = 0x80000800, port = 0xcfe;
    uint32_t sbdf = (cf8 >> 8) & 0xffff;            /* bus 0, devfn 8 */
    uint64_t addr = (uint64_t)sbdf << 32 | ((cf8 & 0xfc) | (port & 3));
    assert_int_equal(dm_pci_sbdf_bus(dm_pci_ioreq_sbdf(addr)), 0);
    assert_int_equal(dm_pci_sbdf_slot(dm_pci_ioreq_sbdf(addr)), 1);
    assert_int_equal(dm_pci_sbdf_fn(dm_pci_ioreq_sbdf(addr)), 0);
    uint32_t v;
    assert_int_equal(dm_pci_config_read(F.bus, dm_pci_ioreq_sbdf(addr), dm_pci_ioreq_reg(addr), 2, &v), 0);
    assert_int_equal(v, 0x7000);
}

static void test_add_errors(void **state)
{
    (void)state;
    dm_pci_id bad = ide_id;
    assert_int_equal(dm_pci_add(F.bus, "x", 32, 0, &ide_id, NULL, NULL, NULL), -EINVAL);
    assert_int_equal(dm_pci_add(F.bus, "x", 0, 8, &ide_id, NULL, NULL, NULL), -EINVAL);
    bad.vendor = 0xffff;
    assert_int_equal(dm_pci_add(F.bus, "x", 2, 0, &bad, NULL, NULL, NULL), -EINVAL);
    bad.vendor = 0x8086, bad.int_pin = 5;
    assert_int_equal(dm_pci_add(F.bus, "x", 2, 0, &bad, NULL, NULL, NULL), -EINVAL);
    add(2, 0, &ide_id);
    assert_int_equal(dm_pci_add(F.bus, "x", 2, 0, &ide_id, NULL, NULL, NULL), -EEXIST);
    dm_pci_dev *d = dm_pci_find(F.bus, dm_pci_sbdf(0, 0, 2, 0));
    assert_int_equal(dm_pci_bar_init(d, 6, true, 16, &bar_ops, NULL), -EINVAL);
    assert_int_equal(dm_pci_bar_init(d, 0, true, 12, &bar_ops, NULL), -EINVAL);   /* not 2^n */
    assert_int_equal(dm_pci_bar_init(d, 0, true, 512, &bar_ops, NULL), -EINVAL);
    assert_int_equal(dm_pci_bar_init(d, 0, false, 8, &bar_ops, NULL), -EINVAL);
    assert_int_equal(dm_pci_bar_init(d, 0, true, 16, NULL, NULL), -EINVAL);
    assert_int_equal(dm_pci_bar_init(d, 0, true, 16, &bar_ops, NULL), 0);
    assert_int_equal(dm_pci_bar_init(d, 0, true, 16, &bar_ops, NULL), -EEXIST);
}

static void test_masks(void **state)
{
    (void)state;
    dm_pci_dev *d = add(3, 0, &ide_id);
    /* Every register, every size, every alignment, all-ones then zeros:
     * the read-only identity never changes. */
    for (unsigned size = 1; size <= 4; size *= 2)
        for (unsigned reg = 0; reg + size <= 256; reg++) {
            cfg_write(3, 0, reg, size, 0xffffffff);
            cfg_write(3, 0, reg, size, 0);
        }
    assert_int_equal(cfg_read(3, 0, 0, 4), 0x70108086);
    assert_int_equal(cfg_read(3, 0, 0x08, 4), 0x01018000);
    assert_int_equal(cfg_read(3, 0, DM_PCI_INTERRUPT_PIN, 1), 1);
    assert_int_equal(cfg_read(3, 0, DM_PCI_HEADER_TYPE, 1), 0);
    /* Command: only the defined bits stick. */
    cfg_write(3, 0, DM_PCI_COMMAND, 2, 0xffff);
    assert_int_equal(cfg_read(3, 0, DM_PCI_COMMAND, 2), 0x0547);
    cfg_write(3, 0, DM_PCI_COMMAND, 2, 0);
    /* Status: RW1C error bits; writing 0 keeps them, 1 clears only that. */
    dm_pci_cfg_set(d, DM_PCI_STATUS, 2, 0xf910);
    cfg_write(3, 0, DM_PCI_STATUS, 2, 0);
    assert_int_equal(cfg_read(3, 0, DM_PCI_STATUS, 2), 0xf910);
    cfg_write(3, 0, DM_PCI_STATUS, 2, 0x0100);
    assert_int_equal(cfg_read(3, 0, DM_PCI_STATUS, 2), 0xf810);
    cfg_write(3, 0, DM_PCI_STATUS + 1, 1, 0xff);               /* byte write to the high half */
    assert_int_equal(cfg_read(3, 0, DM_PCI_STATUS, 2), 0x0010);
    /* Interrupt line and device-specific space are writable; a device
     * can make a register read-only. */
    cfg_write(3, 0, DM_PCI_INTERRUPT_LINE, 1, 0x0b);
    assert_int_equal(cfg_read(3, 0, DM_PCI_INTERRUPT_LINE, 1), 0x0b);
    cfg_write(3, 0, 0x40, 2, 0x8000);
    assert_int_equal(cfg_read(3, 0, 0x40, 2), 0x8000);
    dm_pci_set_masks(d, 0x44, 1, 0x0f, 0);
    cfg_write(3, 0, 0x44, 1, 0xff);
    assert_int_equal(cfg_read(3, 0, 0x44, 1), 0x0f);
}

static void test_multifunction(void **state)
{
    (void)state;
    add(1, 0, &(dm_pci_id){ .vendor = 0x8086, .device = 0x7000 });
    assert_int_equal(cfg_read(1, 0, DM_PCI_HEADER_TYPE, 1), 0x00);
    dm_pci_dev *f3 = add(1, 3, &(dm_pci_id){ .vendor = 0x8086, .device = 0x7113 });
    assert_int_equal(cfg_read(1, 0, DM_PCI_HEADER_TYPE, 1), 0x80);
    assert_int_equal(cfg_read(1, 3, DM_PCI_HEADER_TYPE, 1), 0x00);
    dm_pci_remove(F.bus, f3);
    assert_int_equal(cfg_read(1, 0, DM_PCI_HEADER_TYPE, 1), 0x00);
    /* Forced by the id (PIIX3 says multifunction even alone). */
    add(4, 0, &(dm_pci_id){ .vendor = 0x8086, .device = 0x7000, .multifunction = true });
    assert_int_equal(cfg_read(4, 0, DM_PCI_HEADER_TYPE, 1), 0x80);
    /* Function 1 first, then function 0: the bit is set when fn 0 appears. */
    add(5, 1, &ide_id);
    add(5, 0, &ide_id);
    assert_int_equal(cfg_read(5, 0, DM_PCI_HEADER_TYPE, 1), 0x80);
}

static void test_bar_sizing(void **state)
{
    (void)state;
    uint64_t last = 0;
    dm_pci_dev *d = add(1, 1, &ide_id);
    assert_int_equal(dm_pci_bar_init(d, 4, true, 16, &bar_ops, &last), 0);
    assert_int_equal(dm_pci_bar_init(d, 5, false, 4096, &bar_ops, &last), 0);
    assert_int_equal(dm_pci_bar_init(d, 0, false, 0x80000000u, &bar_ops, &last), 0);
    assert_int_equal(cfg_read(1, 1, 0x20, 4), 0x00000001);    /* I/O type bit */
    for (unsigned n = 0; n < 6; n++)
        cfg_write(1, 1, 0x10 + 4 * n, 4, 0xffffffff);
    assert_int_equal(cfg_read(1, 1, 0x20, 4), 0xfffffff1);    /* 16 bytes of I/O */
    assert_int_equal(cfg_read(1, 1, 0x24, 4), 0xfffff000);    /* 4 KiB memory */
    assert_int_equal(cfg_read(1, 1, 0x10, 4), 0x80000000);    /* 2 GiB memory */
    assert_int_equal(cfg_read(1, 1, 0x14, 4), 0);             /* not implemented */
    assert_int_equal(cfg_read(1, 1, 0x30, 4), 0);             /* no ROM */
    /* Sizing with decode on does not map the all-ones address. */
    cfg_write(1, 1, DM_PCI_COMMAND, 2, DM_PCI_COMMAND_IO | DM_PCI_COMMAND_MEMORY);
    for (unsigned n = 0; n < 6; n++)
        assert_true(dm_pci_bar_addr(d, n) == DM_PCI_BAR_UNMAPPED);
    assert_string_equal(F.iolog, "");
}

static void test_bar_remapping(void **state)
{
    (void)state;
    uint64_t last = 0;
    dm_pci_dev *d = add(1, 1, &ide_id);
    assert_int_equal(dm_pci_bar_init(d, 4, true, 16, &bar_ops, &last), 0);
    assert_int_equal(dm_pci_bar_init(d, 5, false, 4096, &bar_ops, &last), 0);
    /* Programmed while decode is off: nothing mapped. */
    cfg_write(1, 1, 0x20, 4, 0xc001);
    cfg_write(1, 1, 0x24, 4, 0xf0000000);
    assert_true(dm_pci_bar_addr(d, 4) == DM_PCI_BAR_UNMAPPED);
    assert_int_equal(cfg_read(1, 1, 0x20, 4), 0xc001);
    /* I/O enable maps BAR4 only. */
    cfg_write(1, 1, DM_PCI_COMMAND, 2, DM_PCI_COMMAND_IO);
    assert_int_equal(dm_pci_bar_addr(d, 4), 0xc000);
    assert_string_equal(F.iolog, "+dev bar4@c000+10 ");
    uint64_t v;
    assert_int_equal(dm_io_read(F.pio, 0xc00f, 1, &v), 0);
    assert_int_equal(v, 0xaf);
    assert_int_equal(dm_io_write(F.pio, 0xc002, 2, 0x1234), 0);
    assert_true(last == (2ull << 32 | 0x1234));
    /* Memory enable adds BAR5. */
    F.iolog[0] = 0;
    cfg_write(1, 1, DM_PCI_COMMAND, 2, DM_PCI_COMMAND_IO | DM_PCI_COMMAND_MEMORY);
    assert_string_equal(F.iolog, "+dev bar5@f0000000+1000 ");
    assert_int_equal(dm_io_read(F.mmio, 0xf0000ffc, 4, &v), 0);
    /* Moving BAR4 with a byte write to its second byte. */
    F.iolog[0] = 0;
    cfg_write(1, 1, 0x21, 1, 0xd0);
    assert_int_equal(dm_pci_bar_addr(d, 4), 0xd000);
    assert_string_equal(F.iolog, "-dev bar4@c000+10 +dev bar4@d000+10 ");
    assert_int_equal(dm_io_read(F.pio, 0xc000, 1, &v), -ENOENT);
    /* I/O decode off: unmapped; BAR value kept. */
    F.iolog[0] = 0;
    cfg_write(1, 1, DM_PCI_COMMAND, 2, DM_PCI_COMMAND_MEMORY);
    assert_string_equal(F.iolog, "-dev bar4@d000+10 ");
    assert_int_equal(cfg_read(1, 1, 0x20, 4), 0xd001);
    cfg_write(1, 1, DM_PCI_COMMAND, 2, DM_PCI_COMMAND_IO | DM_PCI_COMMAND_MEMORY);
    /* Edges: I/O address past 0xffff, address 0, memory touching 4 GiB. */
    cfg_write(1, 1, 0x20, 4, 0x10000);
    assert_true(dm_pci_bar_addr(d, 4) == DM_PCI_BAR_UNMAPPED);
    cfg_write(1, 1, 0x20, 4, 0xfff0);
    assert_int_equal(dm_pci_bar_addr(d, 4), 0xfff0);          /* last I/O block */
    cfg_write(1, 1, 0x20, 4, 0);
    assert_true(dm_pci_bar_addr(d, 4) == DM_PCI_BAR_UNMAPPED);
    cfg_write(1, 1, 0x24, 4, 0xfffff000);
    assert_true(dm_pci_bar_addr(d, 5) == DM_PCI_BAR_UNMAPPED); /* ends at 0xffffffff */
    cfg_write(1, 1, 0x24, 4, 0xffffe000);
    assert_int_equal(dm_pci_bar_addr(d, 5), 0xffffe000);
    cfg_write(1, 1, 0x24, 4, 0xe0000fff);                      /* low bits ignored */
    assert_int_equal(dm_pci_bar_addr(d, 5), 0xe0000000);
    assert_int_equal(cfg_read(1, 1, 0x24, 4), 0xe0000000);
    /* A BAR placed over another device's range stays unmapped until moved. */
    dm_io_range *other;
    assert_int_equal(dm_io_register(F.pio, "other", 0xb000, 0x100, &bar_ops, NULL, &other), 0);
    cfg_write(1, 1, 0x20, 4, 0xb010);
    assert_true(dm_pci_bar_addr(d, 4) == DM_PCI_BAR_UNMAPPED);
    cfg_write(1, 1, 0x20, 4, 0xb100);
    assert_int_equal(dm_pci_bar_addr(d, 4), 0xb100);
    /* Removing the function unmaps its BARs. */
    F.iolog[0] = 0;
    dm_pci_remove(F.bus, d);
    assert_string_equal(F.iolog, "-dev bar4@b100+10 -dev bar5@e0000000+1000 ");
    assert_int_equal(dm_io_count(F.pio), 1);
}

static void test_intx(void **state)
{
    (void)state;
    dm_pci_dev *d = add(3, 0, &ide_id);
    dm_pci_set_irq(d, true);
    assert_string_equal(F.irqlog, "3.A=1 ");
    assert_int_equal(cfg_read(3, 0, DM_PCI_STATUS, 2) & DM_PCI_STATUS_INTERRUPT, DM_PCI_STATUS_INTERRUPT);
    /* INTx disable lowers the line, status still shows the interrupt. */
    F.irqlog[0] = 0;
    cfg_write(3, 0, DM_PCI_COMMAND + 1, 1, 0x04);
    assert_string_equal(F.irqlog, "3.A=0 ");
    assert_int_equal(cfg_read(3, 0, DM_PCI_STATUS, 2) & DM_PCI_STATUS_INTERRUPT, DM_PCI_STATUS_INTERRUPT);
    /* The guest cannot write the interrupt status bit away. */
    cfg_write(3, 0, DM_PCI_STATUS, 2, 0xffff);
    assert_int_equal(cfg_read(3, 0, DM_PCI_STATUS, 2) & DM_PCI_STATUS_INTERRUPT, DM_PCI_STATUS_INTERRUPT);
    F.irqlog[0] = 0;
    cfg_write(3, 0, DM_PCI_COMMAND, 2, 0);
    assert_string_equal(F.irqlog, "3.A=1 ");
    F.irqlog[0] = 0;
    dm_pci_set_irq(d, false);
    assert_string_equal(F.irqlog, "3.A=0 ");
    assert_int_equal(cfg_read(3, 0, DM_PCI_STATUS, 2) & DM_PCI_STATUS_INTERRUPT, 0);
    /* No pin: never reaches dm_irq. */
    dm_pci_dev *nopin = add(4, 0, &(dm_pci_id){ .vendor = 0x5853, .device = 1 });
    F.irqlog[0] = 0;
    dm_pci_set_irq(nopin, true);
    assert_string_equal(F.irqlog, "");
}

static void test_listeners(void **state)
{
    (void)state;
    add(1, 0, &ide_id);
    assert_int_equal(dm_pci_listener_add(F.bus, pci_listener, NULL, true), 0);
    assert_string_equal(F.pcilog, "+dev=0008 ");
    F.pcilog[0] = 0;
    dm_pci_dev *d = add(2, 3, &ide_id);
    assert_string_equal(F.pcilog, "+dev=0013 ");
    F.pcilog[0] = 0;
    dm_pci_remove(F.bus, d);
    assert_string_equal(F.pcilog, "-dev=0013 ");
    /* A refusing listener (opaque != NULL) fails the add and undoes it. */
    int refuse = 1;
    assert_int_equal(dm_pci_listener_add(F.bus, pci_listener, &refuse, false), 0);
    F.pcilog[0] = 0;
    assert_int_equal(dm_pci_add(F.bus, "late", 6, 0, &ide_id, NULL, NULL, NULL), -EPERM);
    assert_string_equal(F.pcilog, "+late=0030 +late=0030 -late=0030 ");
    assert_null(dm_pci_find(F.bus, dm_pci_sbdf(0, 0, 6, 0)));
}

/* Device hooks: a register at 0x40 computed on read, writes recorded. */
static uint32_t hook_read(void *opaque, dm_pci_dev *d, unsigned off, unsigned size, uint32_t stored)
{
    return off == 0x40 ? 0x5a : stored;
}

static void hook_write(void *opaque, dm_pci_dev *d, unsigned off, unsigned size, uint32_t val)
{
    *(uint32_t *)opaque = off << 16 | val;
}

static void test_device_hooks(void **state)
{
    (void)state;
    uint32_t seen = 0;
    static const dm_pci_dev_ops ops = { hook_read, hook_write };
    assert_int_equal(dm_pci_add(F.bus, "hooked", 7, 0, &ide_id, &ops, &seen, NULL), 0);
    assert_int_equal(cfg_read(7, 0, 0x40, 1), 0x5a);
    cfg_write(7, 0, 0x42, 2, 0xbeef);
    assert_int_equal(seen, 0x42 << 16 | 0xbeef);
}

static void test_state_round_trip(void **state)
{
    (void)state;
    dm_state_reg *reg = dm_state_reg_new();
    assert_int_equal(dm_pci_bus_set_state_reg(F.bus, reg), 0);
    uint64_t last;
    dm_pci_dev *d = add(1, 1, &ide_id);
    assert_int_equal(dm_pci_bar_init(d, 4, true, 16, &bar_ops, &last), 0);
    cfg_write(1, 1, 0x20, 4, 0xc001);
    cfg_write(1, 1, DM_PCI_COMMAND, 2, DM_PCI_COMMAND_IO | DM_PCI_COMMAND_MASTER);
    cfg_write(1, 1, 0x40, 2, 0x8000);
    cfg_write(1, 1, DM_PCI_INTERRUPT_LINE, 1, 10);
    dm_pci_set_irq(d, true);
    uint8_t *buf;
    size_t len;
    char err[256];
    assert_int_equal(dm_state_save_mem(reg, &buf, &len, err, sizeof(err)), 0);

    /* A fresh bus with the same device: BAR mapped again, INTx raised. */
    dm_io_space *pio = dm_io_space_new(DM_IO_PORT);
    dm_irq *irq2 = dm_irq_new(&irq_be, NULL);
    dm_irq_set_gate(irq2, true);
    dm_pci_bus *bus2 = dm_pci_bus_new(pio, NULL, irq2);
    dm_state_reg *reg2 = dm_state_reg_new();
    assert_int_equal(dm_pci_bus_set_state_reg(bus2, reg2), 0);
    dm_pci_dev *d2;
    assert_int_equal(dm_pci_add(bus2, "dev", 1, 1, &ide_id, NULL, NULL, &d2), 0);
    assert_int_equal(dm_pci_bar_init(d2, 4, true, 16, &bar_ops, &last), 0);
    F.irqlog[0] = 0;
    assert_int_equal(dm_state_load_mem(reg2, buf, len, err, sizeof(err)), 0);
    assert_int_equal(dm_pci_bar_addr(d2, 4), 0xc000);
    assert_non_null(dm_io_find(pio, 0xc000));
    assert_int_equal(dm_pci_cfg_get(d2, 0x40, 2), 0x8000);
    assert_int_equal(dm_pci_cfg_get(d2, DM_PCI_INTERRUPT_LINE, 1), 10);
    assert_string_equal(F.irqlog, "1.A=1 ");
    dm_pci_bus_free(bus2);
    dm_irq_free(irq2);
    dm_io_space_free(pio);
    dm_state_reg_free(reg2);

    /* A different device at the same address: refused, naming the field,
     * nothing applied. */
    bus2 = dm_pci_bus_new(NULL, NULL, NULL);
    reg2 = dm_state_reg_new();
    assert_int_equal(dm_pci_bus_set_state_reg(bus2, reg2), 0);
    dm_pci_id other = ide_id;
    other.device = 0x7111;
    assert_int_equal(dm_pci_add(bus2, "piix4-ide", 1, 1, &other, NULL, NULL, &d2), 0);
    assert_int_equal(dm_state_load_mem(reg2, buf, len, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "field 'device-id'"));
    assert_int_equal(dm_pci_cfg_get(d2, DM_PCI_COMMAND, 2), 0);
    /* Same ids but BAR4 not declared here: the I/O type bit differs. */
    dm_pci_remove(bus2, d2);
    assert_int_equal(dm_pci_add(bus2, "dev", 1, 1, &ide_id, NULL, NULL, &d2), 0);
    assert_int_equal(dm_state_load_mem(reg2, buf, len, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "field 'bar4'"));
    dm_pci_bus_free(bus2);
    dm_state_reg_free(reg2);
    free(buf);
    dm_pci_bus_free(F.bus);       /* unregisters from reg before it is freed */
    F.bus = dm_pci_bus_new(F.pio, F.mmio, F.irq);
    dm_state_reg_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ids_and_unclaimed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_xen_cf8_translation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_masks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_multifunction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bar_sizing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bar_remapping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_intx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listeners, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_hooks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_round_trip, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

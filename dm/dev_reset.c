/*
 * The reset ports: 0xCF9 (PIIX3 reset control: SYS_RST bit 1 chooses hard
 * reset, RST_CPU bit 2 going 0 -> 1 fires it) and 0x92 (System Control
 * Port A: bit 0 fast reset, bit 1 A20).  On Xen every reset is a domain
 * reboot: the platform asks Xen before the write's ioreq is answered.
 *
 * 0xCF9 sits inside the i440FX's config-address register (dword at 0xCF8).
 * Xen latches CF8 writes for its own CFC decoding but still forwards every
 * CF8 access as port I/O to the server claiming the port
 * (reference xen-ioreq.md §1.2), and picks a server only when one range
 * covers the whole access.  A 1-byte range at 0xCF9 would leave dword CF8
 * accesses to Xen's null handler: reads all-ones, which breaks the guest's
 * type-1 probe (Linux writes 0x80000000 and reads it back).  So this
 * device claims 0xCF8-0xCFB as one window: a dword at 0xCF8 is the config
 * address (bits 1:0 reserved, read 0), a byte at 0xCF9 is the reset
 * control register (PIIX3: byte access only); other writes are ignored as
 * on QEMU's i440FX, other reads return the matching bytes of the address.
 */
#include <errno.h>
#include <stdlib.h>

#include "dev_platform.h"
#include "dm_log.h"

#define CF8_PORT 0xcf8
#define CF8_RESERVED 0x3u
#define RCR_OFF 1
#define RCR_SYS_RST 0x02
#define RCR_RST_CPU 0x04
#define PORT92 0x92
#define P92_RESET 0x01
#define P92_A20 0x02
/* 2: the config address (version 1 files restore it as 0). */
#define STATE_VERSION 2

struct dev_reset {
    dm_platform *p;
    dm_io_range *r_cf8, *r_92;
    uint32_t cf8;
    uint8_t rcr;
};

static uint64_t cf8_read(void *opaque, uint64_t off, unsigned size)
{
    dev_reset *d = opaque;
    /* As on the chipset: only a byte access at 0xCF9 is reset control; a
     * dword at 0xCF8 is the whole config address. */
    if (off == RCR_OFF && size == 1)
        return d->rcr;
    return (d->cf8 >> (8 * off)) & (size == 4 ? 0xffffffffu : (1u << (8 * size)) - 1);
}

static void rcr_write(dev_reset *d, uint8_t v)
{
    /* Soft (SYS_RST clear) or hard, the guest's whole machine resets. */
    if (v & RCR_RST_CPU) {
        d->rcr = v & RCR_SYS_RST;
        plat_guest_reset(d->p, (v & RCR_SYS_RST) ? "0xcf9 hard reset" : "0xcf9 soft reset");
        return;
    }
    d->rcr = v & RCR_SYS_RST;
}

static void cf8_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
    dev_reset *d = opaque;
    if (off == 0 && size == 4)
        d->cf8 = (uint32_t)val & ~CF8_RESERVED;
    else if (off == RCR_OFF && size == 1)
        rcr_write(d, (uint8_t)val);
}

static uint64_t p92_read(void *opaque, uint64_t off, unsigned size)
{
    dev_reset *d = opaque;
    (void)off;
    (void)size;
    return d->p->a20 ? P92_A20 : 0;
}

static void p92_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
    dev_reset *d = opaque;
    (void)off;
    (void)size;
    d->p->a20 = (val & P92_A20) != 0;
    if (val & P92_RESET)
        plat_guest_reset(d->p, "port 0x92 fast reset");
}

static const dm_io_ops cf8_ops = { .read = cf8_read, .write = cf8_write,
                                   .sizes = DM_IO_SIZE_1 | DM_IO_SIZE_2 | DM_IO_SIZE_4 };
static const dm_io_ops p92_ops = { .read = p92_read, .write = p92_write, .sizes = DM_IO_SIZE_1 };

static int save(void *opaque, dm_state_wr *w)
{
    dev_reset *d = opaque;
    dm_state_put_u8(w, d->rcr);
    dm_state_put_u8(w, d->p->a20);
    dm_state_put_u32(w, d->cf8);
    return 0;
}

static int validate(void *opaque, uint32_t version, dm_state_rd *r)
{
    (void)opaque;
    uint8_t rcr = dm_state_get_u8(r, "rcr");
    dm_state_check(r, (rcr & ~RCR_SYS_RST) == 0, "rcr", rcr, "has bits other than SYS_RST");
    uint8_t a20 = dm_state_get_u8(r, "a20");
    dm_state_check(r, a20 <= 1, "a20", a20, "is not 0 or 1");
    if (version >= 2) {
        uint32_t cf8 = dm_state_get_u32(r, "cf8");
        dm_state_check(r, (cf8 & CF8_RESERVED) == 0, "cf8", cf8, "has reserved bits 1:0 set");
    }
    return dm_state_failed(r) ? -EINVAL : 0;
}

static void load(void *opaque, uint32_t version, dm_state_rd *r)
{
    dev_reset *d = opaque;
    d->rcr = dm_state_get_u8(r, "rcr");
    d->p->a20 = dm_state_get_u8(r, "a20") != 0;
    d->cf8 = version >= 2 ? dm_state_get_u32(r, "cf8") : 0;
}

int dev_reset_new(dm_platform *p, dev_reset **out)
{
    int r;
    dev_reset *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->p = p;
    if ((r = dm_io_register(p->cfg.pio, "cf8-window", CF8_PORT, 4, &cf8_ops, d, &d->r_cf8)) < 0 ||
        (r = dm_io_register(p->cfg.pio, "port92", PORT92, 1, &p92_ops, d, &d->r_92)) < 0)
        goto fail;
    if (p->cfg.state &&
        (r = dm_state_register(p->cfg.state, "reset", 0, STATE_VERSION, save, validate, load,
                               d)) < 0)
        goto fail;
    *out = d;
    return 0;
fail:
    dev_reset_free(d);
    return r;
}

void dev_reset_free(dev_reset *d)
{
    if (!d)
        return;
    dm_platform *p = d->p;
    if (p->cfg.state)
        dm_state_unregister(p->cfg.state, "reset", 0);
    dm_io_unregister(p->cfg.pio, d->r_92);
    dm_io_unregister(p->cfg.pio, d->r_cf8);
    free(d);
}

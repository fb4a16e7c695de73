/*
 * The reset ports: 0xCF9 (PIIX3 reset control: SYS_RST bit 1 chooses hard
 * reset, RST_CPU bit 2 going 0 -> 1 fires it) and 0x92 (System Control
 * Port A: bit 0 fast reset, bit 1 A20).  On Xen every reset is a domain
 * reboot: the platform asks Xen before the write's ioreq is answered.
 * 0xCF9 is byte-wide; Xen itself takes the dword CF8 (config address).
 */
#include <errno.h>
#include <stdlib.h>

#include "dev_platform.h"
#include "dm_log.h"

#define RCR_PORT 0xcf9
#define RCR_SYS_RST 0x02
#define RCR_RST_CPU 0x04
#define PORT92 0x92
#define P92_RESET 0x01
#define P92_A20 0x02
#define STATE_VERSION 1

struct dev_reset {
    dm_platform *p;
    dm_io_range *r_rcr, *r_92;
    uint8_t rcr;
};

static uint64_t rcr_read(void *opaque, uint64_t off, unsigned size)
{
    dev_reset *d = opaque;
    (void)off;
    (void)size;
    return d->rcr;
}

static void rcr_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
    dev_reset *d = opaque;
    (void)off;
    (void)size;
    uint8_t v = (uint8_t)val;
    /* Soft (SYS_RST clear) or hard, the guest's whole machine resets. */
    if (v & RCR_RST_CPU) {
        d->rcr = v & RCR_SYS_RST;
        plat_guest_reset(d->p, (v & RCR_SYS_RST) ? "0xcf9 hard reset" : "0xcf9 soft reset");
        return;
    }
    d->rcr = v & RCR_SYS_RST;
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

static const dm_io_ops rcr_ops = { .read = rcr_read, .write = rcr_write, .sizes = DM_IO_SIZE_1 };
static const dm_io_ops p92_ops = { .read = p92_read, .write = p92_write, .sizes = DM_IO_SIZE_1 };

static int save(void *opaque, dm_state_wr *w)
{
    dev_reset *d = opaque;
    dm_state_put_u8(w, d->rcr);
    dm_state_put_u8(w, d->p->a20);
    return 0;
}

static int validate(void *opaque, uint32_t version, dm_state_rd *r)
{
    (void)opaque;
    (void)version;
    uint8_t rcr = dm_state_get_u8(r, "rcr");
    dm_state_check(r, (rcr & ~RCR_SYS_RST) == 0, "rcr", rcr, "has bits other than SYS_RST");
    uint8_t a20 = dm_state_get_u8(r, "a20");
    dm_state_check(r, a20 <= 1, "a20", a20, "is not 0 or 1");
    return dm_state_failed(r) ? -EINVAL : 0;
}

static void load(void *opaque, uint32_t version, dm_state_rd *r)
{
    dev_reset *d = opaque;
    (void)version;
    d->rcr = dm_state_get_u8(r, "rcr");
    d->p->a20 = dm_state_get_u8(r, "a20") != 0;
}

int dev_reset_new(dm_platform *p, dev_reset **out)
{
    int r;
    dev_reset *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->p = p;
    if ((r = dm_io_register(p->cfg.pio, "reset-cf9", RCR_PORT, 1, &rcr_ops, d, &d->r_rcr)) < 0 ||
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
    dm_io_unregister(p->cfg.pio, d->r_rcr);
    free(d);
}

/*
 * i8042 keyboard controller at 0x60 (data) / 0x64 (status, command), as
 * much as firmware and a guest's reset path need: controller self test
 * (0xAA -> 0x55), interface test, the command byte, the output port (A20
 * and the reset line), A20 on/off (0xDD/0xDF) and the reset pulse (0xFE, or
 * an output-port write with bit 0 clear).  There is no keyboard behind it:
 * keyboard commands are acknowledged (0xFA; reset adds 0xAA) so drivers
 * that probe it carry on.  IRQ 1 follows the output buffer when the command
 * byte enables it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dev_platform.h"
#include "dm_log.h"

#define KBD_DATA 0x60
#define KBD_CMD 0x64              /* KBD_DATA + 4 */

#define ST_OBF 0x01
#define ST_SYS 0x04
#define ST_CMD 0x08               /* last write was to the command port */
#define ST_UNLOCKED 0x10

#define CB_KBD_INT 0x01
#define CB_SYS 0x04

#define OUT_RESET 0x01            /* output port bit 0: 0 asserts CPU reset */
#define OUT_A20 0x02

#define QLEN 8
#define KBD_IRQ 1
#define STATE_VERSION 1

struct dev_i8042 {
    dm_platform *p;
    dm_io_range *r_data, *r_cmd;
    uint8_t status, cmdbyte, outport;
    uint8_t pending;              /* command waiting for its data byte, 0 none */
    uint8_t q[QLEN];
    uint8_t qlen;
    bool irq;
};

static void update_irq(dev_i8042 *d)
{
    bool level = d->qlen && (d->cmdbyte & CB_KBD_INT);
    if (level == d->irq)
        return;
    d->irq = level;
    if (d->p->cfg.irq)
        dm_irq_isa_set(d->p->cfg.irq, KBD_IRQ, level);
}

static void push(dev_i8042 *d, uint8_t v)
{
    if (d->qlen == QLEN)            /* a guest that never reads: drop the newest */
        return;
    d->q[d->qlen++] = v;
    update_irq(d);
}

static void set_outport(dev_i8042 *d, uint8_t v)
{
    d->outport = v;
    d->p->a20 = (v & OUT_A20) != 0;
    if (!(v & OUT_RESET))
        plat_guest_reset(d->p, "i8042 output port");
}

void dev_i8042_reset(dev_i8042 *d)
{
    d->status = ST_UNLOCKED;
    d->cmdbyte = CB_KBD_INT | CB_SYS;
    d->outport = OUT_RESET | OUT_A20;
    d->pending = 0;
    d->qlen = 0;
    update_irq(d);
}

static void command(dev_i8042 *d, uint8_t c)
{
    switch (c) {
    case 0x20:
        push(d, d->cmdbyte);
        break;
    case 0x60: case 0xd1: case 0xd2: case 0xd3: case 0xd4:
        d->pending = c;              /* the data byte follows at 0x60 */
        break;
    case 0xa7: case 0xa8: case 0xad: case 0xae:
        break;                       /* port enable/disable: no devices */
    case 0xa9:
        push(d, 0xff);               /* aux interface test: no mouse */
        break;
    case 0xaa:
        d->status |= ST_SYS;
        push(d, 0x55);
        break;
    case 0xab:
        push(d, 0x00);
        break;
    case 0xc0:
        push(d, 0x00);
        break;
    case 0xd0:
        push(d, d->outport);
        break;
    case 0xdd:
        set_outport(d, d->outport & (uint8_t)~OUT_A20);
        break;
    case 0xdf:
        set_outport(d, d->outport | OUT_A20);
        break;
    default:
        if (c >= 0xf0) {
            /* Pulse output lines: a 0 in bit 0 pulses reset. */
            if (!(c & 1))
                plat_guest_reset(d->p, "i8042 reset pulse");
            break;
        }
        d->p->stats.bad_writes++;
        dm_debug("i8042: command 0x%02x not emulated", c);
        break;
    }
}

static void data_write(dev_i8042 *d, uint8_t v)
{
    uint8_t c = d->pending;
    d->pending = 0;
    switch (c) {
    case 0x60:
        d->cmdbyte = v;
        d->status = (uint8_t)((d->status & ~ST_SYS) | (v & CB_SYS));
        update_irq(d);
        break;
    case 0xd1:
        set_outport(d, v);
        break;
    case 0xd2:
        push(d, v);                  /* write keyboard output buffer */
        break;
    case 0xd3: case 0xd4:
        break;                       /* aux: nothing behind it */
    default:
        /* A keyboard command: acknowledge; reset also passes its BAT. */
        push(d, 0xfa);
        if (v == 0xff)
            push(d, 0xaa);
        break;
    }
}

static uint64_t data_read(void *opaque, uint64_t off, unsigned size)
{
    dev_i8042 *d = opaque;
    (void)off;
    (void)size;
    if (!d->qlen)
        return 0;
    uint8_t v = d->q[0];
    memmove(d->q, d->q + 1, --d->qlen);
    update_irq(d);
    return v;
}

static void data_io_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
    dev_i8042 *d = opaque;
    (void)off;
    (void)size;
    d->status &= (uint8_t)~ST_CMD;
    data_write(d, (uint8_t)val);
}

static uint64_t cmd_read(void *opaque, uint64_t off, unsigned size)
{
    dev_i8042 *d = opaque;
    (void)off;
    (void)size;
    return d->status | (d->qlen ? ST_OBF : 0);
}

static void cmd_io_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
    dev_i8042 *d = opaque;
    (void)off;
    (void)size;
    d->status |= ST_CMD;
    command(d, (uint8_t)val);
}

/* The controller is byte-wide; wider accesses are refused by dispatch. */
static const dm_io_ops data_ops = { .read = data_read, .write = data_io_write, .sizes = DM_IO_SIZE_1 };
static const dm_io_ops cmd_ops = { .read = cmd_read, .write = cmd_io_write, .sizes = DM_IO_SIZE_1 };

static int save(void *opaque, dm_state_wr *w)
{
    dev_i8042 *d = opaque;
    dm_state_put_u8(w, d->status);
    dm_state_put_u8(w, d->cmdbyte);
    dm_state_put_u8(w, d->outport);
    dm_state_put_u8(w, d->pending);
    dm_state_put_u8(w, d->qlen);
    dm_state_put_bytes(w, d->q, QLEN);
    return 0;
}

static int validate(void *opaque, uint32_t version, dm_state_rd *r)
{
    (void)opaque;
    (void)version;
    uint8_t b[QLEN];
    dm_state_get_u8(r, "status");
    dm_state_get_u8(r, "cmdbyte");
    dm_state_get_u8(r, "outport");
    dm_state_get_u8(r, "pending");
    uint8_t n = dm_state_get_u8(r, "qlen");
    dm_state_check(r, n <= QLEN, "qlen", n, "exceeds the output queue");
    dm_state_get_bytes(r, b, QLEN, "queue");
    return dm_state_failed(r) ? -EINVAL : 0;
}

static void load(void *opaque, uint32_t version, dm_state_rd *r)
{
    dev_i8042 *d = opaque;
    (void)version;
    d->status = dm_state_get_u8(r, "status");
    d->cmdbyte = dm_state_get_u8(r, "cmdbyte");
    d->outport = dm_state_get_u8(r, "outport");
    d->pending = dm_state_get_u8(r, "pending");
    d->qlen = dm_state_get_u8(r, "qlen");
    dm_state_get_bytes(r, d->q, QLEN, "queue");
    d->p->a20 = (d->outport & OUT_A20) != 0;
    d->irq = false;
    update_irq(d);
}

int dev_i8042_new(dm_platform *p, dev_i8042 **out)
{
    int r;
    dev_i8042 *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->p = p;
    dev_i8042_reset(d);
    if ((r = dm_io_register(p->cfg.pio, "i8042-data", KBD_DATA, 1, &data_ops, d, &d->r_data)) < 0 ||
        (r = dm_io_register(p->cfg.pio, "i8042-cmd", KBD_CMD, 1, &cmd_ops, d, &d->r_cmd)) < 0)
        goto fail;
    if (p->cfg.state &&
        (r = dm_state_register(p->cfg.state, "i8042", 0, STATE_VERSION, save, validate, load,
                               d)) < 0)
        goto fail;
    *out = d;
    return 0;
fail:
    dev_i8042_free(d);
    return r;
}

void dev_i8042_free(dev_i8042 *d)
{
    if (!d)
        return;
    dm_platform *p = d->p;
    if (p->cfg.state)
        dm_state_unregister(p->cfg.state, "i8042", 0);
    if (d->irq && p->cfg.irq)
        dm_irq_isa_set(p->cfg.irq, KBD_IRQ, false);
    dm_io_unregister(p->cfg.pio, d->r_cmd);
    dm_io_unregister(p->cfg.pio, d->r_data);
    free(d);
}

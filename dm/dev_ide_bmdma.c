/*
 * PIIX3 IDE bus master (SFF-8038i): the command, status and PRD table
 * pointer registers of both channels in BAR4 (primary at +0, secondary at
 * +8), and the walk of a PRD table in guest RAM.
 *
 * PRD entry: dword 0 the buffer's physical address (bit 0 ignored), dword
 * 1 bits 15:0 the byte count (bit 0 ignored, 0 means 64 KiB) and bit 31
 * end of table.  The walk stops at the end-of-table entry or after one
 * 4 KiB table of 512 entries, as QEMU's does, so a guest cannot make the
 * dm loop on a table without an end.
 */
#include <errno.h>
#include <string.h>

#include "dev_ide_int.h"
#include "dm_log.h"

#define BM_REG_CMD 0
#define BM_REG_STATUS 2
#define BM_REG_PRDT 4

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void ide_prd_rewind(ide_channel *c)
{
    c->prd_addr = c->bm_prdt & ~3u;
    c->prd_base = 0;
    c->prd_left = 0;
    c->prd_entries = 0;
    c->prd_eot = false;
    c->nsg = 0;
}

/* Loads the next entry: 1, 0 at the end of the table, -EFAULT. */
static int prd_next(ide_channel *c)
{
    if (c->prd_eot || c->prd_entries >= IDE_PRD_MAX)
        return 0;
    uint8_t e[8];
    if (dm_guestmem_read(c->ide->cfg.gm, c->prd_addr, e, sizeof(e)) < 0)
        return -EFAULT;
    c->prd_addr += 8;
    c->prd_entries++;
    uint32_t cnt = le32(e + 4);
    c->prd_base = le32(e) & ~1u;
    c->prd_left = cnt & 0xfffeu;
    if (c->prd_left == 0)
        c->prd_left = 0x10000;
    c->prd_eot = (cnt & 0x80000000u) != 0;
    return 1;
}

/* Walks up to max bytes from the cursor; with sg, records the segments.
 * Returns the bytes walked or -EFAULT. */
static long prd_walk(ide_channel *c, uint32_t max, bool record)
{
    uint32_t total = 0;
    if (record)
        c->nsg = 0;
    while (total < max) {
        if (c->prd_left == 0) {
            int r = prd_next(c);
            if (r < 0)
                return r;
            if (r == 0)
                break;
        }
        uint32_t n = c->prd_left < max - total ? c->prd_left : max - total;
        if (record) {
            if (c->nsg > 0 && c->sg[c->nsg - 1].addr + c->sg[c->nsg - 1].len == c->prd_base)
                c->sg[c->nsg - 1].len += n;
            else
                c->sg[c->nsg++] = (ide_sg){ c->prd_base, n };
        }
        c->prd_base += n;
        c->prd_left -= n;
        total += n;
    }
    return total;
}

long ide_prd_take(ide_channel *c, uint32_t max_bytes)
{
    /* First measure without consuming, then take whole sectors only: a
     * sector split across two entries is fine, a partial one at the end
     * of the table is not moved (QEMU's prepare_buf does the same). */
    uint32_t addr = c->prd_addr, base = c->prd_base, left = c->prd_left;
    unsigned entries = c->prd_entries;
    bool eot = c->prd_eot;
    long avail = prd_walk(c, max_bytes, false);
    c->prd_addr = addr;
    c->prd_base = base;
    c->prd_left = left;
    c->prd_entries = entries;
    c->prd_eot = eot;
    if (avail < 0)
        return avail;
    uint32_t want = (uint32_t)avail & ~(ATA_SECTOR_SIZE - 1);
    if (want == 0)
        return 0;
    return prd_walk(c, want, true);
}

static int sg_copy(ide_channel *c, uint8_t *buf, size_t len, bool to_guest)
{
    size_t off = 0;
    for (unsigned i = 0; i < c->nsg && off < len; i++) {
        size_t n = c->sg[i].len < len - off ? c->sg[i].len : len - off;
        int r = to_guest ? dm_guestmem_write(c->ide->cfg.gm, c->sg[i].addr, buf + off, n)
                         : dm_guestmem_read(c->ide->cfg.gm, c->sg[i].addr, buf + off, n);
        if (r < 0) {
            c->prd_addr = c->sg[i].addr;
            return r;
        }
        off += n;
    }
    return 0;
}

int ide_sg_to_guest(ide_channel *c, const uint8_t *src, size_t len)
{
    return sg_copy(c, (uint8_t *)src, len, true);
}

int ide_sg_from_guest(ide_channel *c, uint8_t *dst, size_t len)
{
    return sg_copy(c, dst, len, false);
}

/* ------------------------------------------------------------ registers */

static void cmd_write(ide_channel *c, uint8_t v)
{
    uint8_t old = c->bm_cmd;
    c->bm_cmd = v & BM_CMD_MASK;
    if ((old & BM_CMD_START) && !(v & BM_CMD_START)) {
        if (c->bm_status & BM_ST_ACTIVE)
            ide_dma_halt(c);
    } else if (!(old & BM_CMD_START) && (v & BM_CMD_START)) {
        ide_prd_rewind(c);
        c->bm_status |= BM_ST_ACTIVE;
        ide_dma_kick(c);
    }
}

static uint8_t reg_read(ide_channel *c, unsigned off)
{
    switch (off) {
    case BM_REG_CMD:
        return c->bm_cmd;
    case BM_REG_STATUS:
        return c->bm_status;
    case BM_REG_PRDT:
    case BM_REG_PRDT + 1:
    case BM_REG_PRDT + 2:
    case BM_REG_PRDT + 3:
        return (uint8_t)(c->bm_prdt >> (8 * (off - BM_REG_PRDT)));
    default:
        return 0;
    }
}

static void reg_write(ide_channel *c, unsigned off, uint8_t v)
{
    switch (off) {
    case BM_REG_CMD:
        cmd_write(c, v);
        break;
    case BM_REG_STATUS:
        /* Bits 5-6 read-write, 1-2 write-1-to-clear, 0 and 7 read-only. */
        c->bm_status = (uint8_t)((v & BM_ST_CAP_MASK) | (c->bm_status & BM_ST_ACTIVE) |
                                 (c->bm_status & ~v & (BM_ST_ERROR | BM_ST_IRQ)));
        break;
    case BM_REG_PRDT:
    case BM_REG_PRDT + 1:
    case BM_REG_PRDT + 2:
    case BM_REG_PRDT + 3: {
        unsigned sh = 8 * (off - BM_REG_PRDT);
        c->bm_prdt = ((c->bm_prdt & ~(0xffu << sh)) | ((uint32_t)v << sh)) & ~3u;
        break;
    }
    default:
        break;
    }
}

static uint64_t bm_read(void *opaque, uint64_t off, unsigned size)
{
    dev_ide *d = opaque;
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++) {
        unsigned o = (unsigned)off + i;
        v |= (uint64_t)reg_read(&d->ch[(o >> 3) & 1], o & 7) << (8 * i);
    }
    return v;
}

static void bm_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
    dev_ide *d = opaque;
    for (unsigned i = 0; i < size; i++) {
        unsigned o = (unsigned)off + i;
        reg_write(&d->ch[(o >> 3) & 1], o & 7, (uint8_t)(val >> (8 * i)));
    }
}

const dm_io_ops ide_bmdma_ops = { .read = bm_read, .write = bm_write,
                                  .sizes = DM_IO_SIZE_1 | DM_IO_SIZE_2 | DM_IO_SIZE_4 };

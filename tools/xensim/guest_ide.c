/*
 * xensim guests: ATA on PIIX3 IDE (PIO, bus-master DMA, FLUSH, SRST).
 */
#include <string.h>
#include <time.h>

#include "guest_ide.h"

#define R_DATA 0
#define R_ERR 1
#define R_NSECT 2
#define R_LBAL 3
#define R_LBAM 4
#define R_LBAH 5
#define R_DEV 6
#define R_STATUS 7
#define R_CMD 7

#define ST_ERR 0x01
#define ST_DRQ 0x08
#define ST_DF 0x20
#define ST_DRDY 0x40
#define ST_BSY 0x80

#define BM_CMD 0
#define BM_STATUS 2
#define BM_PRDT 4
#define BM_START 0x01
#define BM_TO_MEM 0x08
#define BM_ST_ACTIVE 0x01
#define BM_ST_ERR 0x02
#define BM_ST_IRQ 0x04

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Poll the alternate status (which does not acknowledge the interrupt)
 * until BSY clears. */
static int wait_not_busy(struct guest_ide *d, uint8_t *st, const char *what)
{
    int64_t deadline = now_ms() + d->bus->timeout_ms;
    for (;;) {
        uint64_t paused = d->bus->paused_ms;
        if (guest_inb(d->bus, d->ctl, st) < 0)
            return -1;
        /* time held in the read with the vCPU paused is not the guest's */
        deadline += (int64_t)(d->bus->paused_ms - paused);
        if (*st == 0xff)
            return guest_bus_fail(d->bus, "ide: status reads all-ones during %s (nothing decodes 0x%x)",
                                  what, d->ctl);
        if (!(*st & ST_BSY))
            return 0;
        if (now_ms() > deadline) {
            d->timeouts++;
            return guest_bus_fail(d->bus, "ide: %s: BSY still set after %d ms", what,
                                  d->bus->timeout_ms);
        }
    }
}

/* Wait for the completion interrupt, then read STATUS (which lowers it). */
static int wait_irq(struct guest_ide *d, uint8_t *st, const char *what)
{
    int r = guest_irq_wait(d->bus, d->gsi, d->bus->timeout_ms);
    if (r < 0)
        return -1;
    if (r == 0) {
        d->timeouts++;
        return guest_bus_fail(d->bus, "ide: %s: no interrupt on line %u within %d ms", what,
                              d->gsi, d->bus->timeout_ms);
    }
    if (guest_inb(d->bus, d->cmd + R_STATUS, st) < 0)
        return -1;
    if (*st & (ST_ERR | ST_DF)) {
        uint8_t e = 0;
        guest_inb(d->bus, d->cmd + R_ERR, &e);
        d->errors++;
        return guest_bus_fail(d->bus, "ide: %s failed: status 0x%02x error 0x%02x", what, *st, e);
    }
    return 0;
}

static int issue(struct guest_ide *d, uint8_t cmd, uint32_t lba, unsigned count)
{
    uint8_t st;
    if (wait_not_busy(d, &st, "command setup") < 0)
        return -1;
    struct guest_bus *b = d->bus;
    if (guest_outb(b, d->cmd + R_DEV, (uint8_t)(0xe0 | ((lba >> 24) & 0x0f))) < 0 ||
        guest_outb(b, d->cmd + R_NSECT, (uint8_t)count) < 0 ||
        guest_outb(b, d->cmd + R_LBAL, (uint8_t)lba) < 0 ||
        guest_outb(b, d->cmd + R_LBAM, (uint8_t)(lba >> 8)) < 0 ||
        guest_outb(b, d->cmd + R_LBAH, (uint8_t)(lba >> 16)) < 0 ||
        guest_outb(b, d->cmd + R_CMD, cmd) < 0)
        return -1;
    return 0;
}

int guest_ide_srst(struct guest_ide *d)
{
    struct guest_bus *b = d->bus;
    uint8_t st;
    d->resets++;
    if (guest_outb(b, d->ctl, 0x04) < 0 || guest_outb(b, d->ctl, 0x00) < 0)
        return -1;
    if (wait_not_busy(d, &st, "software reset") < 0)
        return -1;
    uint8_t ns, ll, lm, lh;
    if (guest_inb(b, d->cmd + R_NSECT, &ns) < 0 || guest_inb(b, d->cmd + R_LBAL, &ll) < 0 ||
        guest_inb(b, d->cmd + R_LBAM, &lm) < 0 || guest_inb(b, d->cmd + R_LBAH, &lh) < 0)
        return -1;
    if (ns != 1 || ll != 1 || lm != 0 || lh != 0)
        return guest_bus_fail(b, "ide: after SRST the signature is %02x %02x %02x %02x, not an ATA disk "
                              "(01 01 00 00)", ns, ll, lm, lh);
    /* Select the master; interrupts on (nIEN clear). */
    if (guest_outb(b, d->cmd + R_DEV, 0xe0) < 0)
        return -1;
    return wait_not_busy(d, &st, "select after reset");
}

int guest_ide_identify(struct guest_ide *d, uint16_t id[256])
{
    uint8_t st;
    if (issue(d, 0xec, 0, 0) < 0 || wait_irq(d, &st, "IDENTIFY") < 0)
        return -1;
    if (!(st & ST_DRQ))
        return guest_bus_fail(d->bus, "ide: IDENTIFY completed without DRQ (status 0x%02x)", st);
    for (unsigned i = 0; i < 256; i++)
        if (guest_inw(d->bus, d->cmd + R_DATA, &id[i]) < 0)
            return -1;
    d->sectors = (uint32_t)id[60] | (uint32_t)id[61] << 16;
    for (unsigned i = 0; i < 20; i++) {
        d->model[2 * i] = (char)(id[27 + i] >> 8);
        d->model[2 * i + 1] = (char)id[27 + i];
    }
    d->model[40] = '\0';
    for (int i = 39; i >= 0 && d->model[i] == ' '; i--)
        d->model[i] = '\0';
    return 0;
}

static int check_range(struct guest_ide *d, uint32_t lba, unsigned count)
{
    if (count == 0 || count > GUEST_IDE_MAX_SECTORS)
        return guest_bus_fail(d->bus, "ide: %u sectors per command (1..%u)", count,
                              GUEST_IDE_MAX_SECTORS);
    if (lba >= (1u << 28) || (uint64_t)lba + count > d->sectors)
        return guest_bus_fail(d->bus, "ide: sectors %u+%u beyond the disk (%llu sectors)", lba,
                              count, (unsigned long long)d->sectors);
    return 0;
}

int guest_ide_pio(struct guest_ide *d, bool write, uint32_t lba, unsigned count, void *data)
{
    if (check_range(d, lba, count) < 0)
        return -1;
    uint16_t *w = data;
    uint8_t st;
    const char *what = write ? "WRITE SECTORS" : "READ SECTORS";
    if (issue(d, write ? 0x30 : 0x20, lba, count & 0xff) < 0)
        return -1;
    for (unsigned s = 0; s < count; s++) {
        if (write) {
            /* Data is wanted before any interrupt for the first sector;
             * later sectors follow the previous sector's interrupt. */
            if (s == 0 ? wait_not_busy(d, &st, what) < 0 : wait_irq(d, &st, what) < 0)
                return -1;
        } else if (wait_irq(d, &st, what) < 0) {
            return -1;
        }
        if (!(st & ST_DRQ))
            return guest_bus_fail(d->bus, "ide: %s sector %u: no DRQ (status 0x%02x)", what, s, st);
        for (unsigned i = 0; i < 256; i++) {
            int r = write ? guest_outw(d->bus, d->cmd + R_DATA, w[s * 256 + i])
                          : guest_inw(d->bus, d->cmd + R_DATA, &w[s * 256 + i]);
            if (r < 0)
                return -1;
        }
    }
    if (write ? wait_irq(d, &st, what) < 0 : wait_not_busy(d, &st, what) < 0)
        return -1;
    if (st & ST_DRQ)
        return guest_bus_fail(d->bus, "ide: %s: DRQ still set at the end (status 0x%02x)", what, st);
    return 0;
}

int guest_ide_dma_start(struct guest_ide *d, bool write, uint32_t lba, unsigned count,
                        const void *data)
{
    if (check_range(d, lba, count) < 0)
        return -1;
    struct guest_bus *b = d->bus;
    size_t len = (size_t)count * 512;
    if (write && guest_mem_write(b, d->buf, data, len) < 0)
        return -1;
    /* One PRD entry, end of table; byte count 0 would mean 64 KiB. */
    uint8_t prd[8];
    uint32_t addr = (uint32_t)d->buf;
    uint32_t cnt = (uint32_t)(len & 0xffff) | 0x80000000u;
    memcpy(prd, &addr, 4);
    memcpy(prd + 4, &cnt, 4);
    if (guest_mem_write(b, d->prdt, prd, sizeof(prd)) < 0)
        return -1;
    if (guest_outb(b, d->bmdma + BM_CMD, write ? 0 : BM_TO_MEM) < 0 ||
        guest_outl(b, d->bmdma + BM_PRDT, (uint32_t)d->prdt) < 0 ||
        guest_outb(b, d->bmdma + BM_STATUS, BM_ST_IRQ | BM_ST_ERR) < 0)
        return -1;
    if (issue(d, write ? 0xca : 0xc8, lba, count & 0xff) < 0)
        return -1;
    /* The start: once sent, nothing is left to issue (guest_bus.h). */
    b->completing = true;
    int rc = guest_outb(b, d->bmdma + BM_CMD, (uint8_t)((write ? 0 : BM_TO_MEM) | BM_START));
    b->completing = false;
    return rc == GUEST_FROZEN ? rc : rc < 0 ? -1 : 0;
}

int guest_ide_dma_finish(struct guest_ide *d, bool write, unsigned count, void *data)
{
    struct guest_bus *b = d->bus;
    const char *what = write ? "WRITE DMA" : "READ DMA";
    size_t len = (size_t)count * 512;
    /* Only this wait may be frozen by a suspend: the command is started,
     * nothing of it is left to issue (guest_bus.h). */
    b->completing = true;
    int r = guest_irq_wait(b, d->gsi, b->timeout_ms);
    b->completing = false;
    if (r == GUEST_FROZEN)
        return r;
    if (r < 0)
        return -1;
    uint8_t bst, st;
    if (guest_inb(b, d->bmdma + BM_STATUS, &bst) < 0)
        return -1;
    /* Stop the engine whatever happened, as every driver must. */
    if (guest_outb(b, d->bmdma + BM_CMD, write ? 0 : BM_TO_MEM) < 0)
        return -1;
    if (r == 0) {
        d->timeouts++;
        return guest_bus_fail(b, "ide: %s: no interrupt within %d ms (bm status 0x%02x)", what,
                              b->timeout_ms, bst);
    }
    if (guest_inb(b, d->cmd + R_STATUS, &st) < 0 ||
        guest_outb(b, d->bmdma + BM_STATUS, BM_ST_IRQ | BM_ST_ERR) < 0)
        return -1;
    if ((bst & BM_ST_ERR) || (st & (ST_ERR | ST_DF | ST_DRQ | ST_BSY))) {
        d->errors++;
        return guest_bus_fail(b, "ide: %s: bm status 0x%02x, status 0x%02x", what, bst, st);
    }
    if (!(bst & BM_ST_IRQ))
        return guest_bus_fail(b, "ide: %s: interrupt without the BMDMA interrupt bit (0x%02x)",
                              what, bst);
    if (!write && guest_mem_read(b, d->buf, data, len) < 0)
        return -1;
    return 0;
}

int guest_ide_dma(struct guest_ide *d, bool write, uint32_t lba, unsigned count, void *data)
{
    int rc = guest_ide_dma_start(d, write, lba, count, data);
    if (rc < 0)
        return rc;
    return guest_ide_dma_finish(d, write, count, data);
}

int guest_ide_flush(struct guest_ide *d)
{
    uint8_t st;
    if (issue(d, 0xe7, 0, 0) < 0)
        return -1;
    return wait_irq(d, &st, "FLUSH CACHE");
}

int guest_ide_init(struct guest_ide *d, struct guest_bus *b, const struct guest_fw *fw)
{
    memset(d, 0, sizeof(*d));
    d->bus = b;
    d->cmd = 0x1f0;
    d->ctl = 0x3f6;
    d->gsi = 14;
    const struct guest_pci_dev *p = guest_fw_find(fw, 0x8086, 0x7010);
    if (!p)
        return guest_bus_fail(b, "ide: no PIIX3 IDE function (8086:7010) on the bus");
    if (!p->bar_io[4] || !p->bar[4])
        return guest_bus_fail(b, "ide: PIIX3 IDE has no bus-master I/O BAR (BAR4)");
    d->bmdma = (uint16_t)p->bar[4];
    d->prdt = guest_ram_alloc(b, 4096, 4096);
    d->buf = guest_ram_alloc(b, 65536, 65536);
    if (!d->prdt || !d->buf)
        return -1;
    uint16_t id[256];
    if (guest_ide_srst(d) < 0 || guest_ide_identify(d, id) < 0)
        return -1;
    if (!(id[49] & (1u << 8)))
        return guest_bus_fail(b, "ide: IDENTIFY says no DMA support (word 49 0x%04x)", id[49]);
    if (d->sectors == 0)
        return guest_bus_fail(b, "ide: IDENTIFY reports 0 LBA sectors");
    return 0;
}

/*
 * xensim guests: AHCI on ICH9.
 */
#include <string.h>
#include <time.h>

#include "guest_ahci.h"

#define HBA_CAP 0x00
#define HBA_GHC 0x04
#define HBA_PI 0x0c
#define GHC_HR 0x1u
#define GHC_AE 0x80000000u

#define P_CLB 0x00
#define P_CLBU 0x04
#define P_FB 0x08
#define P_FBU 0x0c
#define P_IS 0x10
#define P_IE 0x14
#define P_CMD 0x18
#define P_TFD 0x20
#define P_SIG 0x24
#define P_SSTS 0x28
#define P_SCTL 0x2c
#define P_SERR 0x30
#define P_SACT 0x34
#define P_CI 0x38
#define CMD_ST 0x1u
#define CMD_FRE 0x10u
#define CMD_FR 0x4000u
#define CMD_CR 0x8000u
#define IS_TFES 0x40000000u
#define TFD_ERR 0x01u
#define TFD_DRQ 0x08u
#define TFD_BSY 0x80u

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int rd(struct guest_ahci *h, uint64_t reg, uint32_t *v)
{
    return guest_readl(h->bus, reg, v);
}

static int wr(struct guest_ahci *h, uint64_t reg, uint32_t v)
{
    return guest_writel(h->bus, reg, v);
}

/* Poll until (reg & mask) == want, bounded. */
static int wait_reg(struct guest_ahci *h, uint64_t reg, uint32_t mask, uint32_t want,
                    const char *what)
{
    int64_t deadline = now_ms() + h->bus->timeout_ms;
    for (;;) {
        uint32_t v;
        uint64_t paused = h->bus->paused_ms;
        int rc = rd(h, reg, &v);
        if (rc < 0)
            return rc;
        /* A read held while the vCPU was paused (the dm stopped, e.g. in
         * io-error) is time the guest did not run: not counted. */
        deadline += (int64_t)(h->bus->paused_ms - paused);
        /* All-ones usually means the access reached nothing; PxCI and
         * PxSACT legitimately read so with all 32 slots busy. */
        bool slot_reg = reg == h->port + P_CI || reg == h->port + P_SACT;
        if (v == 0xffffffffu && !slot_reg)
            return guest_bus_fail(h->bus, "ahci: %s: register reads all-ones", what);
        if ((v & mask) == want)
            return 0;
        if (now_ms() > deadline) {
            h->timeouts++;
            return guest_bus_fail(h->bus, "ahci: %s: register 0x%x is 0x%08x after %d ms", what,
                                  (unsigned)(reg - h->abar), v, h->bus->timeout_ms);
        }
    }
}

static int port_stop(struct guest_ahci *h)
{
    uint32_t cmd;
    if (rd(h, h->port + P_CMD, &cmd) < 0 || wr(h, h->port + P_CMD, cmd & ~CMD_ST) < 0 ||
        wait_reg(h, h->port + P_CMD, CMD_CR, 0, "port stop (CR)") < 0)
        return -1;
    if (rd(h, h->port + P_CMD, &cmd) < 0 || wr(h, h->port + P_CMD, cmd & ~CMD_FRE) < 0)
        return -1;
    return wait_reg(h, h->port + P_CMD, CMD_FR, 0, "port stop (FR)");
}

static int port_start(struct guest_ahci *h)
{
    uint32_t cmd;
    if (wr(h, h->port + P_CLB, (uint32_t)h->clb) < 0 || wr(h, h->port + P_CLBU, 0) < 0 ||
        wr(h, h->port + P_FB, (uint32_t)h->fb) < 0 || wr(h, h->port + P_FBU, 0) < 0 ||
        wr(h, h->port + P_SERR, 0xffffffffu) < 0 || wr(h, h->port + P_IS, 0xffffffffu) < 0 ||
        wr(h, h->port + P_IE, 0) < 0)
        return -1;
    if (rd(h, h->port + P_CMD, &cmd) < 0 || wr(h, h->port + P_CMD, cmd | CMD_FRE) < 0)
        return -1;
    if (wait_reg(h, h->port + P_TFD, TFD_BSY | TFD_DRQ, 0, "device ready") < 0)
        return -1;
    if (rd(h, h->port + P_CMD, &cmd) < 0 || wr(h, h->port + P_CMD, cmd | CMD_ST) < 0)
        return -1;
    return 0;
}

int guest_ahci_comreset(struct guest_ahci *h)
{
    h->resets++;
    if (port_stop(h) < 0)
        return -1;
    /* DET=1 asks for COMRESET, DET=0 releases it; the link comes back up
     * with DET=3 (device present, PHY established). */
    if (wr(h, h->port + P_SCTL, 0x301) < 0 || wr(h, h->port + P_SCTL, 0x300) < 0 ||
        wait_reg(h, h->port + P_SSTS, 0xf, 3, "link up after COMRESET") < 0)
        return -1;
    return port_start(h);
}

/* Build slot `slot`'s header, FIS and one PRD entry. */
static int build(struct guest_ahci *h, unsigned slot, const uint8_t fis[20], bool write,
                 size_t bytes)
{
    uint8_t hdr[32] = { 0 };
    uint32_t dw0 = 5u | (write ? 1u << 6 : 0) | (bytes ? 1u << 16 : 0);
    uint32_t ctba = (uint32_t)h->ctba[slot];
    memcpy(hdr, &dw0, 4);
    memcpy(hdr + 8, &ctba, 4);
    uint8_t tbl[0x90] = { 0 };
    memcpy(tbl, fis, 20);
    if (bytes) {
        uint32_t dba = (uint32_t)h->data[slot];
        uint32_t dbc = (uint32_t)(bytes - 1);
        memcpy(tbl + 0x80, &dba, 4);
        memcpy(tbl + 0x8c, &dbc, 4);
    }
    if (guest_mem_write(h->bus, h->ctba[slot], tbl, sizeof(tbl)) < 0 ||
        guest_mem_write(h->bus, h->clb + 32 * slot, hdr, sizeof(hdr)) < 0)
        return -1;
    return 0;
}

static void h2d(uint8_t fis[20], uint8_t cmd, uint64_t lba, uint16_t count, uint16_t feat)
{
    memset(fis, 0, 20);
    fis[0] = 0x27;
    fis[1] = 0x80;
    fis[2] = cmd;
    fis[3] = (uint8_t)feat;
    fis[4] = (uint8_t)lba;
    fis[5] = (uint8_t)(lba >> 8);
    fis[6] = (uint8_t)(lba >> 16);
    fis[7] = 0x40;
    fis[8] = (uint8_t)(lba >> 24);
    fis[9] = (uint8_t)(lba >> 32);
    fis[10] = (uint8_t)(lba >> 40);
    fis[11] = (uint8_t)(feat >> 8);
    fis[12] = (uint8_t)count;
    fis[13] = (uint8_t)(count >> 8);
}

/* Wait until none of `bits` is set in PxCI (and PxSACT), then check for a
 * task-file error. */
static int complete(struct guest_ahci *h, uint32_t bits, bool ncq, const char *what)
{
    /* Only these polls may be frozen by a suspend: the commands are
     * issued, nothing of them is left to send (guest_bus.h). */
    h->bus->completing = true;
    int rc = wait_reg(h, h->port + P_CI, bits, 0, what);
    if (rc == 0 && ncq)
        rc = wait_reg(h, h->port + P_SACT, bits, 0, what);
    h->bus->completing = false;
    if (rc < 0)
        return rc;
    uint32_t is, tfd;
    if (rd(h, h->port + P_IS, &is) < 0 || rd(h, h->port + P_TFD, &tfd) < 0 ||
        wr(h, h->port + P_IS, is) < 0)
        return -1;
    if ((is & IS_TFES) || (tfd & TFD_ERR)) {
        h->errors++;
        return guest_bus_fail(h->bus, "ahci: %s failed: PxIS 0x%08x PxTFD 0x%08x", what, is, tfd);
    }
    return 0;
}

/* The start: PxCI written; once sent, nothing is left to issue
 * (guest_bus.h).  0, -1 or GUEST_FROZEN. */
static int start(struct guest_ahci *h, uint32_t bits)
{
    h->bus->completing = true;
    int rc = wr(h, h->port + P_CI, bits);
    h->bus->completing = false;
    return rc == GUEST_FROZEN ? rc : rc < 0 ? -1 : 0;
}

static int issue_one(struct guest_ahci *h, uint8_t cmd, bool write, uint64_t lba,
                     unsigned count, size_t bytes)
{
    uint8_t fis[20];
    h2d(fis, cmd, lba, (uint16_t)count, 0);
    if (build(h, 0, fis, write, bytes) < 0)
        return -1;
    return start(h, 1);
}

static int one(struct guest_ahci *h, uint8_t cmd, bool write, uint64_t lba, unsigned count,
               size_t bytes, const char *what)
{
    if (issue_one(h, cmd, write, lba, count, bytes) < 0)
        return -1;
    return complete(h, 1, false, what);
}

static int check_io(struct guest_ahci *h, uint64_t lba, unsigned count)
{
    if (count == 0 || count * 512u > GUEST_AHCI_MAX_BYTES)
        return guest_bus_fail(h->bus, "ahci: %u sectors per command (1..%u)", count,
                              GUEST_AHCI_MAX_BYTES / 512);
    if (lba + count > h->sectors || lba + count < lba)
        return guest_bus_fail(h->bus, "ahci: sectors %llu+%u beyond the disk (%llu)",
                              (unsigned long long)lba, count, (unsigned long long)h->sectors);
    return 0;
}

int guest_ahci_identify(struct guest_ahci *h, uint16_t id[256])
{
    if (one(h, 0xec, false, 0, 0, 512, "IDENTIFY") < 0 ||
        guest_mem_read(h->bus, h->data[0], id, 512) < 0)
        return -1;
    h->sectors = (uint64_t)id[100] | (uint64_t)id[101] << 16 | (uint64_t)id[102] << 32 |
                 (uint64_t)id[103] << 48;
    return 0;
}

int guest_ahci_rw_start(struct guest_ahci *h, bool write, uint64_t lba, unsigned count,
                        const void *buf)
{
    if (check_io(h, lba, count) < 0)
        return -1;
    size_t bytes = (size_t)count * 512;
    if (write && guest_mem_write(h->bus, h->data[0], buf, bytes) < 0)
        return -1;
    return issue_one(h, write ? 0x35 : 0x25, write, lba, count, bytes);
}

int guest_ahci_rw_finish(struct guest_ahci *h, bool write, unsigned count, void *buf)
{
    int rc = complete(h, 1, false, write ? "WRITE DMA EXT" : "READ DMA EXT");
    if (rc < 0)
        return rc;
    return write ? 0 : guest_mem_read(h->bus, h->data[0], buf, (size_t)count * 512);
}

int guest_ahci_rw(struct guest_ahci *h, bool write, uint64_t lba, unsigned count, void *buf)
{
    int rc = guest_ahci_rw_start(h, write, lba, count, buf);
    if (rc < 0)
        return rc;
    return guest_ahci_rw_finish(h, write, count, buf);
}

int guest_ahci_flush(struct guest_ahci *h)
{
    return one(h, 0xea, false, 0, 0, 0, "FLUSH CACHE EXT");
}

int guest_ahci_ncq_start(struct guest_ahci *h, const struct guest_ahci_io *io, unsigned n)
{
    if (!h->ncq)
        return guest_bus_fail(h->bus, "ahci: the HBA does not support NCQ");
    if (n == 0 || n > h->nslots)
        return guest_bus_fail(h->bus, "ahci: %u NCQ commands (1..%u)", n, h->nslots);
    uint32_t bits = 0;
    for (unsigned t = 0; t < n; t++) {
        if (check_io(h, io[t].lba, io[t].count) < 0)
            return -1;
        size_t bytes = (size_t)io[t].count * 512;
        if (io[t].write && guest_mem_write(h->bus, h->data[t], io[t].buf, bytes) < 0)
            return -1;
        uint8_t fis[20];
        /* FPDMA: the sector count goes in FEATURES, the tag in COUNT[7:3]. */
        h2d(fis, io[t].write ? 0x61 : 0x60, io[t].lba, (uint16_t)(t << 3), (uint16_t)io[t].count);
        if (build(h, t, fis, io[t].write, bytes) < 0)
            return -1;
        bits |= 1u << t;
    }
    /* PxSACT before PxCI, as the spec requires, all tags at once. */
    if (wr(h, h->port + P_SACT, bits) < 0)
        return -1;
    return start(h, bits);
}

int guest_ahci_ncq_finish(struct guest_ahci *h, struct guest_ahci_io *io, unsigned n)
{
    int rc = complete(h, n >= 32 ? 0xffffffffu : (1u << n) - 1, true, "NCQ batch");
    if (rc < 0)
        return rc;
    for (unsigned t = 0; t < n; t++)
        if (!io[t].write &&
            guest_mem_read(h->bus, h->data[t], io[t].buf, (size_t)io[t].count * 512) < 0)
            return -1;
    return 0;
}

int guest_ahci_ncq(struct guest_ahci *h, struct guest_ahci_io *io, unsigned n)
{
    int rc = guest_ahci_ncq_start(h, io, n);
    if (rc < 0)
        return rc;
    return guest_ahci_ncq_finish(h, io, n);
}

int guest_ahci_init(struct guest_ahci *h, struct guest_bus *b, const struct guest_fw *fw)
{
    memset(h, 0, sizeof(*h));
    h->bus = b;
    const struct guest_pci_dev *p = guest_fw_find(fw, 0x8086, 0x2922);
    if (!p)
        return guest_bus_fail(b, "ahci: no ICH9 AHCI (8086:2922) on the bus");
    if (p->bar_io[5] || !p->bar[5])
        return guest_bus_fail(b, "ahci: ICH9 AHCI has no MMIO ABAR (BAR5)");
    h->abar = p->bar[5];
    h->port = h->abar + 0x100;
    h->clb = guest_ram_alloc(b, 1024, 1024);
    h->fb = guest_ram_alloc(b, 256, 256);
    if (!h->clb || !h->fb)
        return -1;
    for (unsigned s = 0; s < GUEST_AHCI_SLOTS; s++) {
        h->ctba[s] = guest_ram_alloc(b, 256, 128);
        h->data[s] = guest_ram_alloc(b, GUEST_AHCI_MAX_BYTES, 4096);
        if (!h->ctba[s] || !h->data[s])
            return -1;
    }
    /* HBA reset, then AHCI mode on (the reset clears GHC.AE). */
    h->resets++;
    if (wr(h, h->abar + HBA_GHC, GHC_AE) < 0 || wr(h, h->abar + HBA_GHC, GHC_AE | GHC_HR) < 0 ||
        wait_reg(h, h->abar + HBA_GHC, GHC_HR, 0, "HBA reset") < 0 ||
        wr(h, h->abar + HBA_GHC, GHC_AE) < 0)
        return -1;
    uint32_t cap, pi, ssts, sig;
    if (rd(h, h->abar + HBA_CAP, &cap) < 0 || rd(h, h->abar + HBA_PI, &pi) < 0)
        return -1;
    if (!(pi & 1))
        return guest_bus_fail(b, "ahci: port 0 not implemented (PI 0x%08x)", pi);
    h->nslots = ((cap >> 8) & 0x1f) + 1;
    h->ncq = cap & (1u << 30);
    if (port_stop(h) < 0 || rd(h, h->port + P_SSTS, &ssts) < 0)
        return -1;
    if ((ssts & 0xf) != 3)
        return guest_bus_fail(b, "ahci: no device on port 0 (PxSSTS 0x%08x)", ssts);
    if (port_start(h) < 0 || rd(h, h->port + P_SIG, &sig) < 0)
        return -1;
    if (sig != 0x00000101u)
        return guest_bus_fail(b, "ahci: port 0 signature 0x%08x is not an ATA disk", sig);
    uint16_t id[256];
    if (guest_ahci_identify(h, id) < 0)
        return -1;
    if (!(id[83] & (1u << 10)))
        return guest_bus_fail(b, "ahci: disk lacks 48-bit LBA (IDENTIFY word 83 0x%04x)", id[83]);
    if (h->ncq && !(id[76] & (1u << 8)))
        h->ncq = false;
    return 0;
}

/*
 * One AHCI port: its registers, link control (COMRESET), the command
 * list engine (headers, command FIS, PRDT, bounce buffers, FIS posting)
 * and the non-NCQ ATA commands.  NCQ commands are handed to
 * dev_ahci_ncq.c once parsed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dev_ahci_int.h"
#include "ata.h"
#include "dm_log.h"

static dm_guestmem *gm(const ahci_port *p)
{
    return p->a->cfg.gm;
}

static uint32_t busy_mask(const ahci_port *p)
{
    uint32_t m = 0;
    for (unsigned s = 0; s < DM_AHCI_SLOTS; s++)
        if (p->slots[s].state != SLOT_IDLE)
            m |= 1u << s;
    return m;
}

void ahci_port_raise(ahci_port *p, uint32_t is_bits)
{
    p->is |= is_bits;
    ahci_update_irq(p->a, true);
}

static void put_fis(ahci_port *p, unsigned off, const uint8_t *fis, size_t len)
{
    if (!(p->cmd & PX_CMD_FRE))
        return;     /* the guest did not enable FIS receive: nothing is written */
    if (dm_guestmem_write(gm(p), p->fb + off, fis, len) < 0)
        dm_warn("ahci: port %u: cannot write a FIS at guest 0x%llx", p->n,
                (unsigned long long)(p->fb + off));
}

/* A D2H register FIS with the port's status and error, I bit as asked,
 * and the address/count bytes of tf (NULL: zero). */
static void post_d2h(ahci_port *p, bool irq, const ata_taskfile *tf)
{
    uint8_t fis[20] = { FIS_D2H, irq ? 0x40 : 0, (uint8_t)p->tfd, (uint8_t)(p->tfd >> 8) };
    if (tf) {
        fis[4] = tf->lbal;
        fis[5] = tf->lbam;
        fis[6] = tf->lbah;
        fis[7] = tf->device;
        fis[8] = tf->hob_lbal;
        fis[9] = tf->hob_lbam;
        fis[10] = tf->hob_lbah;
        fis[12] = tf->nsect;
        fis[13] = tf->hob_nsect;
    }
    put_fis(p, RFIS_RFIS, fis, sizeof(fis));
}

static void free_buf(ahci_slot *s)
{
    s->p->a->bounce_bytes -= s->bounce;
    s->bounce = 0;
    free(s->buf);
    s->buf = NULL;
}

/* Whether a command moving `bytes` may take its bounce buffer now. */
static bool bounce_room(const dm_ahci *a, size_t bytes)
{
    return a->bounce_bytes == 0 || bytes <= AHCI_BOUNCE_MAX - a->bounce_bytes;
}

void ahci_slot_clear(ahci_slot *s)
{
    free(s->sg);
    free_buf(s);
    s->sg = NULL;
    s->nsg = 0;
    s->len = 0;
    s->req = NULL;
    s->discard = false;
    s->state = SLOT_IDLE;
}

/* Drops every command of the port: those at the backend (after a drain,
 * so no buffer is in use), halted ones and issued ones not started yet. */
static void discard_work(ahci_port *p, const char *why)
{
    uint32_t busy = busy_mask(p);
    unsigned halted = 0, running = 0;
    for (unsigned i = 0; i < DM_AHCI_SLOTS; i++) {
        ahci_slot *s = &p->slots[i];
        if (s->state == SLOT_RUNNING) {
            s->discard = true;
            running++;
        } else if (s->state == SLOT_HALTED) {
            halted++;
        }
    }
    if (running && p->blk)
        dm_blk_drain(p->blk);       /* the callbacks see `discard` and only free */
    uint32_t queued = (p->ci | p->sact) & ~busy;
    unsigned nqueued = (unsigned)__builtin_popcount(queued);
    if (halted || nqueued || running) {
        p->a->stats.discarded += halted + nqueued;
        dm_info("ahci: port %u: %s discards %u halted, %u queued and %u running command(s)",
                p->n, why, halted, nqueued, running);
    }
    for (unsigned i = 0; i < DM_AHCI_SLOTS; i++)
        ahci_slot_clear(&p->slots[i]);
    p->ci = 0;
    p->sact = 0;
    p->nonncq_busy = false;
    p->ncq_running = 0;
    if (halted && p->a->cfg.parked_discarded)
        p->a->cfg.parked_discarded(p->a->cfg.opaque);
}

static void link_up(ahci_port *p)
{
    if (!p->blk) {
        p->ssts = 0;
        p->tfd = 0x7f;
        p->sig = 0xffffffffu;
        return;
    }
    p->ssts = PX_SSTS_UP;
    p->tfd = AHCI_TFD_IDLE;
    p->sig = PX_SIG_ATA;
    p->serr |= PX_SERR_DIAG_X;      /* the device's COMINIT */
    ata_taskfile sig = { 0 };
    ata_tf_set_signature(&sig);
    post_d2h(p, false, &sig);
}

void ahci_port_reset(ahci_port *p, const char *why)
{
    discard_work(p, why);
    p->clb = p->fb = 0;
    p->is = p->ie = 0;
    p->cmd = p->blk ? PX_CMD_SUD | PX_CMD_POD : 0;
    p->sctl = 0;
    p->serr = 0;
    ata_settings_init(&p->settings);
    link_up(p);
    p->serr = 0;
}

/* ------------------------------------------------------- registers */

uint32_t ahci_port_read(ahci_port *p, unsigned reg)
{
    switch (reg) {
    case PX_CLB: return (uint32_t)p->clb;
    case PX_CLBU: return (uint32_t)(p->clb >> 32);
    case PX_FB: return (uint32_t)p->fb;
    case PX_FBU: return (uint32_t)(p->fb >> 32);
    case PX_IS: return p->is;
    case PX_IE: return p->ie;
    case PX_CMD: return p->cmd;
    case PX_TFD: return p->tfd;
    case PX_SIG: return p->sig;
    case PX_SSTS: return p->ssts;
    case PX_SCTL: return p->sctl;
    case PX_SERR: return p->serr;
    case PX_SACT: return p->sact;
    case PX_CI: return p->ci;
    default: return 0;
    }
}

static void write_cmd(ahci_port *p, uint32_t val)
{
    uint32_t old = p->cmd;
    p->cmd = (old & ~PX_CMD_RW) | (val & PX_CMD_RW);
    if ((old & PX_CMD_ST) && !(val & PX_CMD_ST)) {
        /* Stopping the engine: PxCI and PxSACT clear, CR drops once
         * nothing is outstanding (at once here: the drain waited). */
        p->a->stats.port_resets++;
        discard_work(p, "port stop (PxCMD.ST 1->0)");
        p->cmd &= ~PX_CMD_CR;
    }
    if (!(old & PX_CMD_FRE) && (val & PX_CMD_FRE)) {
        p->cmd |= PX_CMD_FR;
        post_d2h(p, false, NULL);
    } else if (!(val & PX_CMD_FRE)) {
        p->cmd &= ~PX_CMD_FR;
    }
    if (!(old & PX_CMD_ST) && (val & PX_CMD_ST)) {
        p->cmd |= PX_CMD_CR;
        ahci_port_kick(p);
    }
}

static void write_sctl(ahci_port *p, uint32_t val)
{
    uint32_t old_det = p->sctl & 0xf;
    p->sctl = val & 0xfff;
    if ((val & 0xf) == 1 && old_det != 1) {
        /* COMRESET asserted: the link drops and the device loses its work. */
        p->a->stats.port_resets++;
        discard_work(p, "COMRESET (PxSCTL.DET=1)");
        p->ssts = 0;
        p->tfd = ATA_STAT_BSY | 0x7f;
    } else if ((val & 0xf) == 0 && old_det == 1) {
        link_up(p);
    }
}

void ahci_port_write(ahci_port *p, unsigned reg, uint32_t val)
{
    switch (reg) {
    case PX_CLB: p->clb = (p->clb & ~0xffffffffull) | (val & ~0x3ffu); return;
    case PX_CLBU: p->clb = (p->clb & 0xffffffffull) | (uint64_t)val << 32; return;
    case PX_FB: p->fb = (p->fb & ~0xffffffffull) | (val & ~0xffu); return;
    case PX_FBU: p->fb = (p->fb & 0xffffffffull) | (uint64_t)val << 32; return;
    case PX_IS:
        p->is &= ~val;
        if (!(p->is & p->ie))
            p->a->is &= ~(1u << p->n);
        ahci_update_irq(p->a, false);
        return;
    case PX_IE:
        p->ie = val & PX_IS_MASK;
        ahci_update_irq(p->a, true);
        return;
    case PX_CMD: write_cmd(p, val); return;
    case PX_SCTL: write_sctl(p, val); return;
    case PX_SERR: p->serr &= ~val; return;
    case PX_SACT:
        if (p->cmd & PX_CMD_ST)
            p->sact |= val;
        return;
    case PX_CI:
        if (!(p->cmd & PX_CMD_ST))
            return;     /* AHCI §3.3.14: only valid while the engine runs */
        p->ci |= val;
        if (!p->a->running) {
            p->a->stats.latched++;
            return;     /* started at the next start */
        }
        ahci_port_kick(p);
        return;
    default:
        return;         /* read-only */
    }
}

/* ------------------------------------------------------- command engine */

int ahci_slot_load_prdt(ahci_slot *s, size_t need)
{
    ahci_port *p = s->p;
    uint8_t hdr[16];
    if (dm_guestmem_read(gm(p), p->clb + 32u * s->slot, hdr, sizeof(hdr)) < 0) {
        dm_warn("ahci: port %u slot %u: command header unreadable", p->n, s->slot);
        return -1;
    }
    uint32_t dw0, ctba_lo, ctba_hi;
    memcpy(&dw0, hdr, 4);
    memcpy(&ctba_lo, hdr + 8, 4);
    memcpy(&ctba_hi, hdr + 12, 4);
    uint64_t ctba = (uint64_t)ctba_hi << 32 | (ctba_lo & ~0x7fu);
    unsigned prdtl = dw0 >> HDR_PRDTL_SHIFT;
    free(s->sg);
    s->sg = NULL;
    s->nsg = 0;
    if (need == 0)
        return 0;
    if (prdtl == 0) {
        dm_warn("ahci: port %u slot %u: %zu bytes to move but no PRD entries", p->n, s->slot,
                need);
        return -1;
    }
    if (!(s->sg = calloc(prdtl, sizeof(*s->sg))))
        return -1;
    size_t total = 0;
    for (unsigned i = 0; i < prdtl && total < need; i++) {
        uint32_t prd[4];
        if (dm_guestmem_read(gm(p), ctba + CT_PRDT + 16u * i, prd, sizeof(prd)) < 0) {
            dm_warn("ahci: port %u slot %u: PRD %u unreadable", p->n, s->slot, i);
            return -1;
        }
        uint32_t len = (prd[3] & PRD_DBC_MASK) + 1;
        if (len > need - total)
            len = (uint32_t)(need - total);
        s->sg[s->nsg++] = (ahci_sg){ .addr = (uint64_t)prd[1] << 32 | (prd[0] & ~1u), .len = len };
        total += len;
    }
    if (total < need) {
        dm_warn("ahci: port %u slot %u: PRDT covers %zu of %zu bytes", p->n, s->slot, total, need);
        return -1;
    }
    return 0;
}

/* Copies between the bounce buffer and the guest along the sglist. */
static int sg_copy(ahci_slot *s, bool to_guest)
{
    size_t off = 0;
    for (unsigned i = 0; i < s->nsg && off < s->len; i++) {
        int r = to_guest ? dm_guestmem_write(gm(s->p), s->sg[i].addr, s->buf + off, s->sg[i].len)
                         : dm_guestmem_read(gm(s->p), s->sg[i].addr, s->buf + off, s->sg[i].len);
        if (r < 0) {
            dm_warn("ahci: port %u slot %u: DMA %s guest 0x%llx failed", s->p->n, s->slot,
                    to_guest ? "to" : "from", (unsigned long long)s->sg[i].addr);
            return -1;
        }
        off += s->sg[i].len;
    }
    return 0;
}

static void slot_done(void *opaque, int ret);

int ahci_slot_submit(ahci_slot *s)
{
    ahci_port *p = s->p;
    dm_blk_op op = s->kind == OP_READ ? DM_BLK_READ : s->kind == OP_WRITE ? DM_BLK_WRITE
                                                                          : DM_BLK_FLUSH;
    s->len = s->kind == OP_FLUSH ? 0 : (size_t)s->nsect * DM_BLK_SECTOR;
    free_buf(s);
    if (s->len && !(s->buf = calloc(1, s->len))) {
        dm_warn("ahci: port %u slot %u: no memory for %zu bytes", p->n, s->slot, s->len);
        return -1;
    }
    s->bounce = s->len;
    p->a->bounce_bytes += s->len;
    if (s->kind == OP_WRITE && sg_copy(s, false) < 0)
        return -1;
    s->state = SLOT_RUNNING;
    s->req = dm_blk_submit(p->blk, op, s->lba * DM_BLK_SECTOR, s->buf, s->len, slot_done, s);
    if (!s->req) {
        dm_warn("ahci: port %u slot %u: %s refused by the backend: %s", p->n, s->slot,
                dm_blk_name(p->blk), strerror(errno));
        s->state = SLOT_IDLE;
        return -1;
    }
    p->a->stats.commands++;
    if (s->ncq) {
        p->a->stats.ncq_commands++;
        if (++p->ncq_running > p->a->stats.max_ncq_in_flight)
            p->a->stats.max_ncq_in_flight = p->ncq_running;
    }
    return 0;
}

static void write_prdbc(ahci_port *p, unsigned slot, uint32_t bytes)
{
    if (dm_guestmem_write(gm(p), p->clb + 32u * slot + 4, &bytes, 4) < 0)
        dm_warn("ahci: port %u slot %u: cannot write PRDBC", p->n, slot);
}

void ahci_finish_nonncq(ahci_slot *s, bool ok, uint32_t bytes, const ata_taskfile *tf)
{
    ahci_port *p = s->p;
    write_prdbc(p, s->slot, ok ? bytes : 0);
    p->tfd = ok ? AHCI_TFD_IDLE : (uint32_t)ATA_ERR_ABRT << 8 | ATA_STAT_DRDY | ATA_STAT_ERR;
    post_d2h(p, true, tf);
    p->ci &= ~(1u << s->slot);
    p->nonncq_busy = false;
    p->a->stats.completed++;
    if (!ok)
        p->a->stats.failed++;
    ahci_slot_clear(s);
    ahci_port_raise(p, PX_IS_DHRS | (ok ? 0 : PX_IS_TFES));
}

static void finish_slot(ahci_slot *s, bool ok)
{
    uint32_t bytes = (uint32_t)s->len;
    if (s->ncq)
        ahci_ncq_finish(s, ok);
    else
        ahci_finish_nonncq(s, ok, bytes, NULL);
}

static void slot_done(void *opaque, int ret)
{
    ahci_slot *s = opaque;
    ahci_port *p = s->p;
    s->req = NULL;
    if (s->ncq && p->ncq_running)
        p->ncq_running--;
    if (s->discard || p->a->dying) {
        ahci_slot_clear(s);
        return;
    }
    bool ok = ret >= 0;
    if (!ok) {
        bool is_read = s->kind == OP_READ;
        int err = -ret;
        /* A request the backend found malformed is the guest's fault, not a
         * disk error: it fails without consulting the policy (QEMU). */
        dm_blk_action act = err == EINVAL ? DM_BLK_ACTION_REPORT
                                          : dm_blk_error_action(p->blk, is_read, err);
        if (err != EINVAL)
            dm_blk_report_error(p->blk, act, is_read, err);
        if (act == DM_BLK_ACTION_STOP) {
            /* The slot stays owned by the device (PxCI or PxSACT set, BSY
             * for non-NCQ); nothing reaches the guest until the re-issue. */
            free_buf(s);
            s->state = SLOT_HALTED;
            p->a->stats.halted++;
            dm_info("ahci: port %u slot %u: %s of %u sector(s) at %llu halted (%s); re-issued "
                    "when the VM runs again",
                    p->n, s->slot, is_read ? "read" : s->kind == OP_FLUSH ? "flush" : "write",
                    s->nsect, (unsigned long long)s->lba, strerror(err));
            return;
        }
        ok = act == DM_BLK_ACTION_IGNORE;
    }
    if (ok && s->kind == OP_READ && sg_copy(s, true) < 0)
        ok = false;
    finish_slot(s, ok);
    /* Its bounce buffer is free: any port may have a command waiting. */
    for (unsigned i = 0; i < DM_AHCI_PORTS; i++)
        ahci_port_kick(&p->a->ports[i]);
}

void ahci_port_restart_halted(ahci_port *p)
{
    for (unsigned i = 0; i < DM_AHCI_SLOTS; i++) {
        ahci_slot *s = &p->slots[i];
        if (s->state != SLOT_HALTED)
            continue;
        p->a->stats.reissued++;
        s->state = SLOT_IDLE;
        /* The PRDT is read again from guest memory: after a load the
         * sglist exists only there. */
        if (ahci_slot_load_prdt(s, s->kind == OP_FLUSH ? 0 : (size_t)s->nsect * DM_BLK_SECTOR) < 0 ||
            ahci_slot_submit(s) < 0) {
            s->len = 0;
            finish_slot(s, false);
        }
    }
}

/* ------------------------------------------------------- ATA commands */

/* The task file an H2D register FIS carries (SATA 1.0 §10.3.4). */
static void fis_to_tf(const uint8_t *b, ata_taskfile *tf)
{
    *tf = (ata_taskfile){
        .command = b[2], .feature = b[3],
        .lbal = b[4], .lbam = b[5], .lbah = b[6], .device = b[7],
        .hob_lbal = b[8], .hob_lbam = b[9], .hob_lbah = b[10], .hob_feature = b[11],
        .nsect = b[12], .hob_nsect = b[13],
    };
}

/* A command with no backend work completes now; tf (may be NULL) is what
 * the D2H FIS reports in its address and count bytes. */
static void finish_now(ahci_slot *s, bool ok, const ata_taskfile *tf)
{
    s->len = 0;
    ahci_finish_nonncq(s, ok, 0, tf);
}

static void start_rw(ahci_slot *s, const ata_taskfile *tf, const ata_cmd_info *ci)
{
    ahci_port *p = s->p;
    ata_geometry g = ata_geometry_for(dm_blk_sectors(p->blk));
    s->nsect = ata_tf_count(tf, ci);
    s->kind = ci->op == ATA_OP_WRITE ? OP_WRITE : OP_READ;
    if (!ata_tf_lba(tf, ci->lba48, &g, &s->lba) ||
        !ata_range_ok(s->lba, s->nsect, dm_blk_sectors(p->blk))) {
        dm_debug("ahci: port %u slot %u: %s of sectors %llu+%u beyond the disk", p->n, s->slot,
                 ci->name, (unsigned long long)s->lba, s->nsect);
        finish_now(s, false, NULL);
        return;
    }
    if (ci->op == ATA_OP_VERIFY) {
        finish_now(s, true, NULL);
        return;
    }
    if (s->kind == OP_WRITE && dm_blk_read_only(p->blk)) {
        finish_now(s, false, NULL);
        return;
    }
    p->nonncq_busy = true;
    p->tfd = ATA_STAT_BSY | ATA_STAT_DRDY;
    if (ahci_slot_load_prdt(s, (size_t)s->nsect * DM_BLK_SECTOR) < 0 || ahci_slot_submit(s) < 0)
        finish_now(s, false, NULL);
}

static void start_flush(ahci_slot *s)
{
    ahci_port *p = s->p;
    s->kind = OP_FLUSH;
    s->lba = 0;
    s->nsect = 0;
    p->nonncq_busy = true;
    p->tfd = ATA_STAT_BSY | ATA_STAT_DRDY;
    if (ahci_slot_load_prdt(s, 0) < 0 || ahci_slot_submit(s) < 0)
        finish_now(s, false, NULL);
}

/* IDENTIFY DEVICE: one PIO-in block through the PRDT, announced by a PIO
 * Setup FIS. */
static void identify(ahci_slot *s)
{
    ahci_port *p = s->p;
    char serial[21];
    snprintf(serial, sizeof(serial), "RSDM-%.15s", dm_blk_name(p->blk));
    uint8_t page[ATA_SECTOR_SIZE];
    ata_identify_device(page, &(ata_identify_params){
                                  .sectors = dm_blk_sectors(p->blk),
                                  .model = "RSDM HARDDISK",
                                  .serial = serial,
                                  .firmware = "1.0",
                                  .udma = true,
                                  .ncq_depth = DM_AHCI_SLOTS,
                                  .settings = &p->settings,
                              });
    if (ahci_slot_load_prdt(s, sizeof(page)) < 0) {
        finish_now(s, false, NULL);
        return;
    }
    s->len = sizeof(page);
    s->buf = malloc(sizeof(page));
    if (!s->buf || (memcpy(s->buf, page, sizeof(page)), sg_copy(s, true) < 0)) {
        finish_now(s, false, NULL);
        return;
    }
    /* I bit, direction device to host; E_Status is the status after it. */
    uint8_t pio[20] = { FIS_PIO_SETUP, 0x40 | 0x20, AHCI_TFD_IDLE | ATA_STAT_DRQ, 0 };
    pio[15] = AHCI_TFD_IDLE;
    pio[16] = (uint8_t)(sizeof(page) & 0xff);
    pio[17] = (uint8_t)(sizeof(page) >> 8);
    put_fis(p, RFIS_PSFIS, pio, sizeof(pio));
    p->is |= PX_IS_PSS;
    ahci_finish_nonncq(s, true, sizeof(page), NULL);
}

/* Completes with the device's reset signature in the D2H FIS. */
static void signature(ahci_slot *s, bool ok)
{
    ata_taskfile tf = { 0 };
    ata_tf_set_signature(&tf);
    s->p->sig = PX_SIG_ATA;
    finish_now(s, ok, &tf);
}

/* A FIS without the C bit updates the device control register: SRST
 * clearing ends a software reset and the device reports its signature. */
static void control_fis(ahci_slot *s, const uint8_t *b)
{
    ahci_port *p = s->p;
    if (b[15] & ATA_CTL_SRST) {
        write_prdbc(p, s->slot, 0);
        p->ci &= ~(1u << s->slot);
        ahci_slot_clear(s);
        return;
    }
    signature(s, true);
}

static void nondata(ahci_slot *s, const ata_taskfile *tf, const ata_cmd_info *ci)
{
    ahci_port *p = s->p;
    ata_taskfile out = *tf;
    switch (ci->op) {
    case ATA_OP_SET_FEATURES:
        finish_now(s, ata_set_features(&p->settings, tf->feature, tf->nsect, true), NULL);
        return;
    case ATA_OP_SET_MULTIPLE:
        finish_now(s, ata_set_multiple(&p->settings, tf->nsect), NULL);
        return;
    case ATA_OP_DEVICE_RESET:
        signature(s, true);
        return;
    case ATA_OP_EXEC_DIAG:
        signature(s, true);
        return;
    case ATA_OP_IDENTIFY_PACKET:
        signature(s, false);
        return;
    case ATA_OP_READ_NATIVE_MAX: {
        ata_geometry g = ata_geometry_for(dm_blk_sectors(p->blk));
        ata_tf_set_lba(&out, dm_blk_sectors(p->blk) - 1, ci->lba48, &g);
        finish_now(s, true, &out);
        return;
    }
    case ATA_OP_CHECK_POWER:
        out.nsect = 0xff;   /* active or idle */
        finish_now(s, true, &out);
        return;
    default:        /* ATA_OP_NONDATA_OK, ATA_OP_INIT_PARAMS */
        finish_now(s, true, NULL);
        return;
    }
}

/* Starts slot `slot`.  Returns false when it must wait (NCQ and non-NCQ
 * commands do not mix on the link). */
static bool start_slot(ahci_port *p, unsigned slot)
{
    ahci_slot *s = &p->slots[slot];
    uint8_t hdr[16], b[20];
    uint32_t lo, hi;
    if (dm_guestmem_read(gm(p), p->clb + 32u * slot, hdr, sizeof(hdr)) < 0)
        goto bad;
    memcpy(&lo, hdr + 8, 4);
    memcpy(&hi, hdr + 12, 4);
    if (dm_guestmem_read(gm(p), ((uint64_t)hi << 32 | (lo & ~0x7fu)), b, sizeof(b)) < 0)
        goto bad;
    if (b[0] != FIS_H2D) {
        dm_debug("ahci: port %u slot %u: FIS type 0x%02x is not H2D", p->n, slot, b[0]);
        goto bad;
    }
    bool cmd = b[1] & 0x80;
    const ata_cmd_info *ci = cmd ? ata_cmd_lookup(b[2]) : NULL;
    bool ncq = ci && ata_proto_is_ncq(ci->proto);
    if (cmd && !ncq && busy_mask(p))
        return false;
    s->ncq = ncq;
    s->command = b[2];
    s->len = 0;
    if (!cmd) {
        control_fis(s, b);
        return true;
    }
    if (!ci) {
        dm_debug("ahci: port %u slot %u: ATA command 0x%02x not supported", p->n, slot, b[2]);
        finish_now(s, false, NULL);
        return true;
    }
    ata_taskfile tf;
    fis_to_tf(b, &tf);
    if ((ncq || ci->op == ATA_OP_READ || ci->op == ATA_OP_WRITE) &&
        !bounce_room(p->a, (size_t)ata_tf_count(&tf, ci) * DM_BLK_SECTOR)) {
        p->a->stats.bounce_waits++;
        return false;   /* a completion kicks again */
    }
    if (ncq) {
        s->kind = ci->proto == ATA_PROTO_NCQ_OUT ? OP_WRITE : OP_READ;
        s->nsect = ata_tf_count(&tf, ci);
        s->tag = (uint8_t)ata_tf_ncq_tag(&tf);
        if (!ata_tf_lba(&tf, true, NULL, &s->lba))
            s->lba = UINT64_MAX;    /* refused by the range check */
        ahci_ncq_start(s);
        return true;
    }
    switch (ci->op) {
    case ATA_OP_READ:
    case ATA_OP_WRITE:
    case ATA_OP_VERIFY: start_rw(s, &tf, ci); break;
    case ATA_OP_FLUSH: start_flush(s); break;
    case ATA_OP_IDENTIFY: identify(s); break;
    default: nondata(s, &tf, ci); break;
    }
    return true;
bad:
    dm_warn("ahci: port %u slot %u: command list or table unreadable or malformed", p->n, slot);
    s->ncq = false;
    finish_now(s, false, NULL);
    return true;
}

void ahci_port_kick(ahci_port *p)
{
    if (!p->a->running || !(p->cmd & PX_CMD_ST) || !p->blk)
        return;
    uint32_t tried = 0;
    for (;;) {
        uint32_t issued = p->ci & ~busy_mask(p) & ~tried;
        if (!issued || p->nonncq_busy)
            return;
        unsigned slot = (unsigned)__builtin_ctz(issued);
        tried |= 1u << slot;
        if (!start_slot(p, slot))
            return;     /* wait for the link to drain; a completion kicks again */
    }
}

/*
 * PIIX3 IDE: the task-file registers and the ATA state machine of each
 * channel, the error policies and the run-state handling (dev_ide.h).
 *
 * One command per channel, one backend request per channel at a time.
 * Status bits follow QEMU's core.c, which SeaBIOS and Linux ata_piix are
 * tested against: DRDY|DSC when idle, BSY while the device works on a PIO
 * block or a flush, DRQ during a data phase and for a DMA command until it
 * completes, ERR with ABRT in the error register for a failed command.
 * The interrupt is raised at the end of a non-data command, for every PIO
 * block the host must move (except the first block of a write) and at the
 * end of a write or DMA command; reading Status acknowledges it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dev_ide_int.h"
#include "dm_log.h"

#define ST_READY (ATA_STAT_DRDY | ATA_STAT_DSC)

static const struct {
    uint16_t cmd, ctl;
    unsigned irq;
} legacy[2] = { { 0x1f0, 0x3f6, 14 }, { 0x170, 0x376, 15 } };

static const char *const chan_name[2] = { "primary", "secondary" };

ide_drive *ide_cur(ide_channel *c)
{
    return &c->drive[c->unit];
}

static ide_drive *cmd_drive(ide_channel *c)
{
    return &c->drive[c->cmd_unit];
}

static bool chan_empty(const ide_channel *c)
{
    return !c->drive[0].blk && !c->drive[1].blk;
}

static const char *drive_name(ide_channel *c, unsigned unit)
{
    return c->drive[unit].blk ? dm_blk_name(c->drive[unit].blk) : "(none)";
}

/* ------------------------------------------------------------ interrupts */

void ide_update_irq(ide_channel *c)
{
    bool level = c->irq_pending && !(c->devctl & ATA_CTL_NIEN);
    dm_irq_isa_set(c->ide->cfg.irq, c->isa_irq, level);
}

/* As QEMU's ide_bus_set_irq: nothing at all while nIEN masks it, else the
 * bus master's interrupt bit and the line. */
void ide_raise_irq(ide_channel *c)
{
    if (c->devctl & ATA_CTL_NIEN)
        return;
    c->irq_pending = true;
    c->bm_status |= BM_ST_IRQ;
    c->ide->stats.irqs++;
    ide_update_irq(c);
}

/* --------------------------------------------------- command completion */

static void set_retry(ide_channel *c, uint8_t op)
{
    c->retry_op = op;
    c->retry_unit = (uint8_t)c->cmd_unit;
    c->retry_lba = c->lba;
    c->retry_nsector = c->remaining;
}

static void clear_retry(ide_channel *c)
{
    c->retry_op = 0;
    c->retry_unit = IDE_RETRY_NONE_UNIT;
    c->retry_lba = 0;
    c->retry_nsector = 0;
}

static void cmd_end(ide_channel *c)
{
    c->cmd = NULL;
    c->pio_len = c->pio_pos = 0;
    c->dma_ready = false;
    clear_retry(c);
}

static void cmd_done(ide_channel *c, bool irq)
{
    cmd_drive(c)->status = ST_READY;
    cmd_end(c);
    if (irq)
        ide_raise_irq(c);
}

static void cmd_abort_with(ide_channel *c, uint8_t error)
{
    ide_drive *dr = cmd_drive(c);
    dr->status = ST_READY | ATA_STAT_ERR;
    dr->error = error;
    c->ide->stats.aborted++;
    if (c->dma_ready)
        c->bm_status &= (uint8_t)~BM_ST_ACTIVE;
    cmd_end(c);
    ide_raise_irq(c);
}

static void cmd_abort(ide_channel *c)
{
    cmd_abort_with(c, ATA_ERR_ABRT);
}

/* ------------------------------------------------------ backend requests */

static void io_done(void *opaque, int ret);

static void submit(ide_channel *c, ide_io io, dm_blk_op op, uint64_t lba, void *buf, size_t len)
{
    ide_drive *dr = cmd_drive(c);
    if (!dm_blk_locked(dr->blk)) {
        /* The image was handed over by a save and is not ours again yet (the
         * start that follows stops the VM again): no I/O without the lock.
         * The step waits, parked, for the next start. */
        c->parked = true;
        return;
    }
    dm_blk_req *r = dm_blk_submit(dr->blk, op, lba * ATA_SECTOR_SIZE, buf, len, io_done, c);
    if (!r) {
        dm_err("ide %s: %s on %s at sector %llu: the request was refused: %s", chan_name[c->idx],
               c->cmd ? c->cmd->name : "I/O", dm_blk_name(dr->blk), (unsigned long long)lba,
               strerror(errno));
        cmd_abort(c);
        return;
    }
    c->req = r;
    c->io = io;
}

/* A failed request under the disk's policy (QEMU's ide_handle_rw_error):
 * true when the caller stops here (parked or failed towards the guest),
 * false when the error is ignored and the command goes on. */
static bool io_failed(ide_channel *c, int ret, uint8_t op)
{
    ide_drive *dr = cmd_drive(c);
    int err = -ret;
    bool is_read = (op & IDE_RETRY_READ) != 0;
    if (err == EINVAL) {
        /* A request the backend calls malformed is the device's bug or the
         * guest's bad address, never a medium error: no policy (QEMU). */
        cmd_abort(c);
        return true;
    }
    dm_blk_action a = dm_blk_error_action(dr->blk, is_read, err);
    switch (a) {
    case DM_BLK_ACTION_STOP:
        c->parked = true;
        c->error_parked = true;
        c->ide->stats.parked++;
        dm_warn("ide %s: %s on %s (sectors %llu+%u) failed: %s; parked until the VM runs again",
                chan_name[c->idx], c->cmd ? c->cmd->name : "I/O", dm_blk_name(dr->blk),
                (unsigned long long)c->retry_lba, c->retry_nsector, strerror(err));
        dm_blk_report_error(dr->blk, a, is_read, err);
        return true;
    case DM_BLK_ACTION_REPORT:
        cmd_abort(c);
        dm_blk_report_error(dr->blk, a, is_read, err);
        return true;
    case DM_BLK_ACTION_IGNORE:
        dm_blk_report_error(dr->blk, a, is_read, err);
        return false;
    }
    return false;
}

/* ------------------------------------------------------------------ PIO */

static uint32_t pio_block_size(ide_channel *c)
{
    uint32_t bs = (c->cmd && c->cmd->multiple) ? cmd_drive(c)->set.multiple : 1;
    return c->remaining < bs ? c->remaining : bs;
}

static void pio_read_block(ide_channel *c)
{
    c->pio_block = pio_block_size(c);
    c->pio_len = c->pio_pos = 0;
    set_retry(c, IDE_RETRY_PIO | IDE_RETRY_READ);
    cmd_drive(c)->status = ST_READY | ATA_STAT_BSY;
    if (!c->ide->live) {
        c->parked = true;
        c->ide->stats.latched++;
        return;
    }
    submit(c, IDE_IO_PIO_READ, DM_BLK_READ, c->lba, c->pio_buf,
           (size_t)c->pio_block * ATA_SECTOR_SIZE);
}

static void pio_read_done(ide_channel *c, int ret)
{
    if (ret < 0 && io_failed(c, ret, IDE_RETRY_PIO | IDE_RETRY_READ))
        return;
    c->pio_pos = 0;
    c->pio_len = c->pio_block * ATA_SECTOR_SIZE;
    c->ide->stats.pio_bytes += c->pio_len;
    cmd_drive(c)->status = ST_READY | ATA_STAT_DRQ;
    ide_raise_irq(c);
}

/* Opens the data phase of the next block the host writes. */
static void pio_write_phase(ide_channel *c, bool irq)
{
    c->pio_block = pio_block_size(c);
    c->pio_pos = 0;
    c->pio_len = c->pio_block * ATA_SECTOR_SIZE;
    cmd_drive(c)->status = ST_READY | ATA_STAT_DRQ;
    if (irq)
        ide_raise_irq(c);
}

static void pio_write_block(ide_channel *c)
{
    set_retry(c, IDE_RETRY_PIO);
    cmd_drive(c)->status = ST_READY | ATA_STAT_BSY;
    if (!c->ide->live) {
        c->parked = true;
        c->ide->stats.latched++;
        return;
    }
    submit(c, IDE_IO_PIO_WRITE, DM_BLK_WRITE, c->lba, c->pio_buf,
           (size_t)c->pio_block * ATA_SECTOR_SIZE);
}

static void pio_write_done(ide_channel *c, int ret)
{
    if (ret < 0 && io_failed(c, ret, IDE_RETRY_PIO))
        return;
    c->ide->stats.pio_bytes += (uint64_t)c->pio_block * ATA_SECTOR_SIZE;
    c->lba += c->pio_block;
    c->remaining -= c->pio_block;
    if (c->remaining == 0)
        cmd_done(c, true);
    else
        pio_write_phase(c, true);
}

/* The host moved the last byte of the block. */
static void pio_phase_end(ide_channel *c)
{
    if (!c->cmd || c->cmd->op == ATA_OP_IDENTIFY) {
        cmd_done(c, false);
        return;
    }
    if (c->cmd->proto == ATA_PROTO_PIO_OUT) {
        pio_write_block(c);
        return;
    }
    c->lba += c->pio_block;
    c->remaining -= c->pio_block;
    if (c->remaining == 0)
        cmd_done(c, false);      /* no interrupt after the last PIO-in block */
    else
        pio_read_block(c);
}

static bool pio_phase(ide_channel *c, bool out)
{
    ide_drive *dr = ide_cur(c);
    if (!(dr->status & ATA_STAT_DRQ) || c->pio_pos >= c->pio_len || c->dma_ready)
        return false;
    if (!c->cmd)
        return !out;             /* IDENTIFY's data is read only */
    return (c->cmd->proto == ATA_PROTO_PIO_OUT) == out;
}

static uint32_t data_read(ide_channel *c, unsigned size)
{
    if (!pio_phase(c, false))
        return 0;
    uint32_t v = 0;
    unsigned n = size;
    if (n > c->pio_len - c->pio_pos)
        n = c->pio_len - c->pio_pos;
    memcpy(&v, c->pio_buf + c->pio_pos, n);
    c->pio_pos += n;
    if (c->pio_pos >= c->pio_len)
        pio_phase_end(c);
    return v;
}

static void data_write(ide_channel *c, uint32_t v, unsigned size)
{
    if (!pio_phase(c, true))
        return;
    unsigned n = size;
    if (n > c->pio_len - c->pio_pos)
        n = c->pio_len - c->pio_pos;
    memcpy(c->pio_buf + c->pio_pos, &v, n);
    c->pio_pos += n;
    if (c->pio_pos >= c->pio_len)
        pio_phase_end(c);
}

/* ------------------------------------------------------------------ DMA */

static void dma_finish(ide_channel *c)
{
    c->bm_status &= (uint8_t)~BM_ST_ACTIVE;
    cmd_done(c, true);
}

/* A guest address the PRDs named could not be reached: the bus master
 * reports it and the command fails. */
static void dma_fault(ide_channel *c)
{
    dm_warn("ide %s: bus-master DMA: a PRD table or buffer at 0x%08x is not guest RAM",
            chan_name[c->idx], c->prd_addr);
    c->bm_status |= BM_ST_ERROR;
    cmd_abort(c);
}

static void dma_step(ide_channel *c)
{
    if (c->remaining == 0) {
        dma_finish(c);
        return;
    }
    uint32_t n = c->remaining < IDE_DMA_CHUNK_SECTORS ? c->remaining : IDE_DMA_CHUNK_SECTORS;
    long got = ide_prd_take(c, n * ATA_SECTOR_SIZE);
    if (got < 0) {
        dma_fault(c);
        return;
    }
    if (got == 0) {
        /* The PRDs describe less than the command moves.  QEMU clears the
         * active bit without an interrupt; the guest's timeout handles it. */
        dm_debug("ide %s: PRD table shorter than the transfer", chan_name[c->idx]);
        c->bm_status &= (uint8_t)~BM_ST_ACTIVE;
        cmd_drive(c)->status = ST_READY;
        cmd_end(c);
        return;
    }
    c->chunk = (uint32_t)got / ATA_SECTOR_SIZE;
    bool to_mem = c->cmd->proto == ATA_PROTO_DMA_IN;
    if (!to_mem && ide_sg_from_guest(c, c->bounce, (size_t)got) < 0) {
        dma_fault(c);
        return;
    }
    submit(c, IDE_IO_DMA, to_mem ? DM_BLK_READ : DM_BLK_WRITE, c->lba, c->bounce, (size_t)got);
}

static void dma_done(ide_channel *c, int ret)
{
    bool to_mem = c->cmd->proto == ATA_PROTO_DMA_IN;
    if (ret < 0 && io_failed(c, ret, (uint8_t)(IDE_RETRY_DMA | (to_mem ? IDE_RETRY_READ : 0))))
        return;
    size_t len = (size_t)c->chunk * ATA_SECTOR_SIZE;
    if (to_mem && ide_sg_to_guest(c, c->bounce, len) < 0) {
        dma_fault(c);
        return;
    }
    c->ide->stats.dma_bytes += len;
    c->lba += c->chunk;
    c->remaining -= c->chunk;
    dma_step(c);
}

void ide_dma_kick(ide_channel *c)
{
    if (!c->dma_ready || c->req || c->parked || !(c->bm_status & BM_ST_ACTIVE))
        return;
    if (!c->ide->live) {
        c->ide->stats.latched++;
        return;                  /* the start timer kicks it again */
    }
    dma_step(c);
}

/* Cancels the request in flight and waits until its buffer is free. */
static void cancel_io(ide_channel *c)
{
    if (!c->req)
        return;
    dm_blk_cancel(c->req);
    c->req = NULL;
    c->io = IDE_IO_NONE;
    dm_blk_drain(cmd_drive(c)->blk);
}

void ide_dma_halt(ide_channel *c)
{
    bool was_dma = c->io == IDE_IO_DMA;
    cancel_io(c);
    c->bm_status &= (uint8_t)~BM_ST_ACTIVE;
    /* A restart by the guest redoes the command from its first sector. */
    if (was_dma && c->retry_op & IDE_RETRY_DMA) {
        c->lba = c->retry_lba;
        c->remaining = c->retry_nsector;
    }
}

/* -------------------------------------------------------------- flush */

static void flush_start(ide_channel *c)
{
    set_retry(c, IDE_RETRY_FLUSH);
    cmd_drive(c)->status = ST_READY | ATA_STAT_BSY;
    if (!c->ide->live) {
        c->parked = true;
        c->ide->stats.latched++;
        return;
    }
    submit(c, IDE_IO_FLUSH, DM_BLK_FLUSH, 0, NULL, 0);
}

static void flush_done(ide_channel *c, int ret)
{
    if (ret < 0 && io_failed(c, ret, IDE_RETRY_FLUSH))
        return;
    cmd_done(c, true);
}

static void io_done(void *opaque, int ret)
{
    ide_channel *c = opaque;
    ide_io io = c->io;
    c->req = NULL;
    c->io = IDE_IO_NONE;
    if (!c->ide->live) {
        /* The stop handler cancels what is in flight, so this is only a
         * completion racing it: redo the step at the next start. */
        c->parked = true;
        return;
    }
    switch (io) {
    case IDE_IO_PIO_READ:
        pio_read_done(c, ret);
        break;
    case IDE_IO_PIO_WRITE:
        pio_write_done(c, ret);
        break;
    case IDE_IO_DMA:
        dma_done(c, ret);
        break;
    case IDE_IO_FLUSH:
        flush_done(c, ret);
        break;
    case IDE_IO_NONE:
        break;
    }
}

/* ------------------------------------------------------------- resets */

/* Drops the channel's command, in flight, parked or latched (a guest reset
 * of the device: DESIGN "Stopping a guest on Xen").  Returns whether an
 * io-error parked command was discarded. */
static bool abandon(ide_channel *c, const char *why)
{
    bool had_error = c->error_parked;
    if (c->parked) {
        dm_warn("ide %s: %s discards the parked %s on %s (sectors %llu+%u): the guest reset "
                "the device",
                chan_name[c->idx], why, c->cmd ? c->cmd->name : "command",
                c->retry_unit < 2 ? drive_name(c, c->retry_unit) : "(none)",
                (unsigned long long)c->retry_lba, c->retry_nsector);
        c->ide->stats.discarded++;
    } else if (c->latched) {
        dm_warn("ide %s: %s discards command 0x%02x written while the VM was stopped",
                chan_name[c->idx], why, c->latched_opcode);
        c->ide->stats.discarded++;
    }
    cancel_io(c);
    c->parked = c->latched = c->error_parked = false;
    c->bm_status &= (uint8_t)~BM_ST_ACTIVE;
    cmd_end(c);
    return had_error;
}

static void drive_signature(ide_channel *c, ide_drive *dr)
{
    ata_tf_set_signature(&c->tf);
    dr->status = ST_READY;
    dr->error = 0x01;            /* diagnostics passed */
}

static void parked_discarded(ide_channel *c)
{
    if (c->ide->cfg.parked_discarded)
        c->ide->cfg.parked_discarded(c->ide->cfg.opaque);
}

static void device_reset(ide_channel *c)
{
    bool discarded = abandon(c, "DEVICE RESET");
    drive_signature(c, ide_cur(c));
    c->irq_pending = false;
    ide_update_irq(c);
    if (discarded)
        parked_discarded(c);
}

static void devctl_write(ide_channel *c, uint8_t v)
{
    uint8_t old = c->devctl;
    bool discarded = false;
    c->devctl = v;
    if (!(old & ATA_CTL_SRST) && (v & ATA_CTL_SRST)) {
        discarded = abandon(c, "software reset (SRST)");
        for (unsigned i = 0; i < 2; i++) {
            c->drive[i].status = ATA_STAT_BSY | ATA_STAT_DSC;
            c->drive[i].error = 0x01;
        }
        c->irq_pending = false;
    } else if ((old & ATA_CTL_SRST) && !(v & ATA_CTL_SRST)) {
        for (unsigned i = 0; i < 2; i++) {
            drive_signature(c, &c->drive[i]);
            c->drive[i].set.multiple = ATA_MAX_MULTIPLE;
        }
        c->unit = 0;
    }
    ide_update_irq(c);
    if (discarded)
        parked_discarded(c);
}

/* ------------------------------------------------------------ commands */

static void start_rw(ide_channel *c)
{
    ide_drive *dr = cmd_drive(c);
    const ata_cmd_info *ci = c->cmd;
    uint64_t lba;
    uint32_t count = ata_tf_count(&c->tf, ci);
    if (!ata_tf_lba(&c->tf, ci->lba48, &dr->geo, &lba) || !ata_range_ok(lba, count, dr->sectors)) {
        cmd_abort_with(c, ATA_ERR_ABRT | ATA_ERR_IDNF);
        return;
    }
    if (ci->multiple && dr->set.multiple == 0) {
        cmd_abort(c);
        return;
    }
    c->lba = lba;
    c->remaining = count;
    if (ci->op == ATA_OP_VERIFY) {
        cmd_done(c, true);
        return;
    }
    if (ci->op == ATA_OP_WRITE && dm_blk_read_only(dr->blk)) {
        cmd_abort(c);
        return;
    }
    switch (ci->proto) {
    case ATA_PROTO_PIO_IN:
        pio_read_block(c);
        break;
    case ATA_PROTO_PIO_OUT:
        pio_write_phase(c, false);
        break;
    case ATA_PROTO_DMA_IN:
    case ATA_PROTO_DMA_OUT:
        set_retry(c, (uint8_t)(IDE_RETRY_DMA | (ci->proto == ATA_PROTO_DMA_IN ? IDE_RETRY_READ : 0)));
        c->dma_ready = true;
        dr->status = ST_READY | ATA_STAT_DRQ;
        ide_dma_kick(c);
        break;
    default:
        cmd_abort(c);
        break;
    }
}

static void identify(ide_channel *c)
{
    ide_drive *dr = cmd_drive(c);
    ata_identify_params p = { .sectors = dr->sectors, .model = dr->model, .serial = dr->serial,
                              .firmware = "1.0", .settings = &dr->set };
    ata_identify_device(c->pio_buf, &p);
    c->pio_pos = 0;
    c->pio_len = ATA_SECTOR_SIZE;
    c->remaining = 0;
    dr->status = ST_READY | ATA_STAT_DRQ;
    ide_raise_irq(c);
}

/* Executes a command on the selected drive; the VM is live. */
static void start_cmd(ide_channel *c, uint8_t opcode)
{
    ide_drive *dr = ide_cur(c);
    const ata_cmd_info *ci = ata_cmd_lookup(opcode);
    c->ide->stats.commands++;
    c->cmd_unit = c->unit;
    c->cmd = ci;
    dr->error = 0;
    if (!ci || ata_proto_is_ncq(ci->proto)) {
        dm_debug("ide %s: command 0x%02x is not one this device executes: aborted", chan_name[c->idx], opcode);
        cmd_abort(c);
        return;
    }
    switch (ci->op) {
    case ATA_OP_READ:
    case ATA_OP_WRITE:
    case ATA_OP_VERIFY:
        start_rw(c);
        break;
    case ATA_OP_FLUSH:
        flush_start(c);
        break;
    case ATA_OP_IDENTIFY:
        identify(c);
        break;
    case ATA_OP_IDENTIFY_PACKET:
        ata_tf_set_signature(&c->tf);
        cmd_abort(c);
        break;
    case ATA_OP_SET_FEATURES:
        if (ata_set_features(&dr->set, c->tf.feature, c->tf.nsect, false))
            cmd_done(c, true);
        else
            cmd_abort(c);
        break;
    case ATA_OP_SET_MULTIPLE:
        if (ata_set_multiple(&dr->set, c->tf.nsect))
            cmd_done(c, true);
        else
            cmd_abort(c);
        break;
    case ATA_OP_DEVICE_RESET:
        device_reset(c);
        break;
    case ATA_OP_EXEC_DIAG:
        drive_signature(c, dr);
        cmd_end(c);
        ide_raise_irq(c);
        break;
    case ATA_OP_READ_NATIVE_MAX: {
        uint64_t max = dr->sectors;
        if (!ci->lba48 && max > ATA_LBA28_MAX)
            max = ATA_LBA28_MAX;
        if (max == 0) {
            cmd_abort(c);
            break;
        }
        ata_tf_set_lba(&c->tf, max - 1, ci->lba48, &dr->geo);
        cmd_done(c, true);
        break;
    }
    case ATA_OP_CHECK_POWER:
        c->tf.nsect = 0xff;      /* active or idle */
        cmd_done(c, true);
        break;
    case ATA_OP_NONDATA_OK:
    case ATA_OP_INIT_PARAMS:
        cmd_done(c, true);
        break;
    }
}

/* The guest wrote the Command register. */
static void command_write(ide_channel *c, uint8_t opcode)
{
    ide_drive *dr = ide_cur(c);
    if (!dr->blk)
        return;                  /* nothing answers on this position (QEMU) */
    if (opcode == ATA_CMD_DEVICE_RESET) {
        /* Accepted even while busy, and at register level while stopped:
         * it only drops work. */
        c->ide->stats.commands++;
        device_reset(c);
        return;
    }
    if (dr->status & (ATA_STAT_BSY | ATA_STAT_DRQ))
        return;                  /* only a reset is accepted while busy */
    c->irq_pending = false;
    ide_update_irq(c);
    if (!c->ide->live) {
        c->latched = true;
        c->latched_opcode = opcode;
        dr->status = ST_READY | ATA_STAT_BSY;
        c->ide->stats.latched++;
        return;
    }
    start_cmd(c, opcode);
}

/* ------------------------------------------------------- port handlers */

static uint8_t tf_read(ide_channel *c, unsigned reg)
{
    bool hob = (c->devctl & ATA_CTL_HOB) != 0;
    ide_drive *dr = ide_cur(c);
    const ata_taskfile *t = &c->tf;
    if (chan_empty(c))
        return 0;
    switch (reg) {
    case 1:
        return hob ? t->hob_feature : dr->error;
    case 2:
        return hob ? t->hob_nsect : t->nsect;
    case 3:
        return hob ? t->hob_lbal : t->lbal;
    case 4:
        return hob ? t->hob_lbam : t->lbam;
    case 5:
        return hob ? t->hob_lbah : t->lbah;
    case 6:
        return (uint8_t)((t->device & ~ATA_DEV_DEV) | ATA_DEV_OBS | (c->unit << 4));
    default:
        if (!dr->blk)
            return 0;
        c->irq_pending = false;
        ide_update_irq(c);
        return dr->status;
    }
}

static void tf_write(ide_channel *c, unsigned reg, uint8_t v)
{
    ata_taskfile *t = &c->tf;
    /* The command block is ignored while the selected drive is busy with a
     * command (QEMU's ide_ioport_write): a guest cannot move a latched or
     * running command to the other drive, or change its registers. */
    if (reg != 7 && (ide_cur(c)->status & (ATA_STAT_BSY | ATA_STAT_DRQ)))
        return;
    if (reg >= 1 && reg <= 6)
        c->devctl &= (uint8_t)~ATA_CTL_HOB;
    switch (reg) {
    case 1:
        t->hob_feature = t->feature;
        t->feature = v;
        break;
    case 2:
        t->hob_nsect = t->nsect;
        t->nsect = v;
        break;
    case 3:
        t->hob_lbal = t->lbal;
        t->lbal = v;
        break;
    case 4:
        t->hob_lbam = t->lbam;
        t->lbam = v;
        break;
    case 5:
        t->hob_lbah = t->lbah;
        t->lbah = v;
        break;
    case 6:
        t->device = v;
        c->unit = (v & ATA_DEV_DEV) ? 1 : 0;
        break;
    case 7:
        command_write(c, v);
        break;
    }
}

static uint64_t cmd_read(void *opaque, uint64_t off, unsigned size)
{
    ide_channel *c = opaque;
    if (off == 0)
        return size == 1 ? 0xff : data_read(c, size);
    return tf_read(c, (unsigned)off);
}

static void cmd_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
    ide_channel *c = opaque;
    if (off == 0) {
        if (size > 1)
            data_write(c, (uint32_t)val, size);
        return;
    }
    tf_write(c, (unsigned)off, (uint8_t)val);
}

static uint64_t ctl_read(void *opaque, uint64_t off, unsigned size)
{
    ide_channel *c = opaque;
    (void)off;
    (void)size;
    ide_drive *dr = ide_cur(c);
    if (chan_empty(c) || !dr->blk)
        return 0;
    return dr->status;           /* alternate status: no acknowledge */
}

static void ctl_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
    (void)off;
    (void)size;
    devctl_write(opaque, (uint8_t)val);
}

static const dm_io_ops cmd_ops = { .read = cmd_read, .write = cmd_write,
                                   .sizes = DM_IO_SIZE_1 | DM_IO_SIZE_2 | DM_IO_SIZE_4 };
static const dm_io_ops ctl_ops = { .read = ctl_read, .write = ctl_write, .sizes = DM_IO_SIZE_1 };

/* ------------------------------------------------------------ run state */

static void reissue(ide_channel *c)
{
    uint8_t op = c->retry_op;
    c->cmd_unit = c->retry_unit < 2 ? c->retry_unit : c->unit;
    c->lba = c->retry_lba;
    c->remaining = c->retry_nsector;
    c->ide->stats.retried++;
    dm_info("ide %s: re-issuing %s on %s (sectors %llu+%u)", chan_name[c->idx],
            c->cmd ? c->cmd->name : "the command", drive_name(c, c->cmd_unit),
            (unsigned long long)c->lba, c->remaining);
    if (op & IDE_RETRY_DMA) {
        ide_prd_rewind(c);
        c->dma_ready = true;
        ide_dma_kick(c);
    } else if (op & IDE_RETRY_PIO) {
        if (op & IDE_RETRY_READ)
            pio_read_block(c);
        else
            pio_write_block(c);
    } else if (op & IDE_RETRY_FLUSH) {
        flush_start(c);
    } else {
        cmd_done(c, false);
    }
}

/* QEMU's restart bottom half: after the start path completed. */
static void on_restart(void *opaque)
{
    dev_ide *d = opaque;
    for (unsigned i = 0; i < 2 && d->live; i++) {
        ide_channel *c = &d->ch[i];
        if (c->req)
            continue;
        if (c->parked) {
            c->parked = c->error_parked = false;
            reissue(c);
        } else if (c->latched) {
            c->latched = false;
            ide_cur(c)->status = ST_READY;
            start_cmd(c, c->latched_opcode);
        } else {
            ide_dma_kick(c);
        }
    }
}

static void on_runstate(void *opaque, bool running, rs_state state)
{
    dev_ide *d = opaque;
    (void)state;
    d->live = running;
    if (running) {
        dm_timer_arm(d->restart, 0, 0);
        return;
    }
    /* Nothing may complete after STOP: what is in flight is cancelled
     * and redone at the next start, as an io-error parked command is. */
    for (unsigned i = 0; i < 2; i++) {
        ide_channel *c = &d->ch[i];
        if (!c->req)
            continue;
        cancel_io(c);
        c->parked = true;
        d->stats.parked++;
    }
}

void ide_after_load(dev_ide *d)
{
    for (unsigned i = 0; i < 2; i++)
        ide_update_irq(&d->ch[i]);
    if (d->live)
        dm_timer_arm(d->restart, 0, 0);
}

void dev_ide_reset(dev_ide *d, const char *why)
{
    for (unsigned i = 0; i < 2; i++) {
        ide_channel *c = &d->ch[i];
        abandon(c, why);
        for (unsigned u = 0; u < 2; u++) {
            drive_signature(c, &c->drive[u]);
            ata_settings_init(&c->drive[u].set);
        }
        c->devctl = 0;
        c->unit = 0;
        c->irq_pending = false;
        c->bm_cmd = 0;
        c->bm_status &= BM_ST_CAP_MASK;
        c->bm_prdt = 0;
        ide_prd_rewind(c);
        ide_update_irq(c);
    }
}

/* ---------------------------------------------------------------- setup */

unsigned dev_ide_parked(const dev_ide *d)
{
    unsigned n = 0;
    for (unsigned i = 0; i < 2; i++)
        n += d->ch[i].error_parked;
    return n;
}

void dev_ide_get_stats(const dev_ide *d, dev_ide_stats *out)
{
    *out = d->stats;
}

int dev_ide_attach(dev_ide *d, unsigned unit, const dev_ide_disk *disk, char *err, size_t errlen)
{
    if (unit >= DEV_IDE_UNITS || !disk || !disk->blk) {
        snprintf(err, errlen, "IDE unit %u does not exist (0-3)", unit);
        return -EINVAL;
    }
    ide_channel *c = &d->ch[unit / 2];
    ide_drive *dr = &c->drive[unit % 2];
    if (dr->blk) {
        snprintf(err, errlen, "IDE unit %u already holds %s", unit, dm_blk_name(dr->blk));
        return -EEXIST;
    }
    dr->blk = disk->blk;
    dr->sectors = dm_blk_sectors(disk->blk);
    dr->geo = ata_geometry_for(dr->sectors);
    ata_settings_init(&dr->set);
    snprintf(dr->model, sizeof(dr->model), "%s", disk->model ? disk->model : "RSDM HARDDISK");
    snprintf(dr->serial, sizeof(dr->serial), "%s", disk->serial ? disk->serial : "");
    drive_signature(c, dr);
    /* Bus-master status: drive N is DMA capable (what firmware sets). */
    c->bm_status |= (uint8_t)(0x20u << (unit % 2));
    return 0;
}

static void chan_free(ide_channel *c)
{
    cancel_io(c);
    dm_io_unregister(c->ide->cfg.pio, c->r_cmd);
    dm_io_unregister(c->ide->cfg.pio, c->r_ctl);
    if (c->irq_pending)
        dm_irq_isa_set(c->ide->cfg.irq, c->isa_irq, false);
    free(c->pio_buf);
    free(c->bounce);
    free(c->sg);
}

static int chan_init(dev_ide *d, unsigned i, char *err, size_t errlen)
{
    ide_channel *c = &d->ch[i];
    c->ide = d;
    c->idx = i;
    c->isa_irq = legacy[i].irq;
    c->retry_unit = IDE_RETRY_NONE_UNIT;
    c->pio_buf = calloc(1, IDE_PIO_BUF);
    c->bounce = malloc((size_t)IDE_DMA_CHUNK_SECTORS * ATA_SECTOR_SIZE);
    c->sg = calloc(IDE_PRD_MAX + 2, sizeof(*c->sg));
    if (!c->pio_buf || !c->bounce || !c->sg) {
        snprintf(err, errlen, "IDE %s channel: out of memory", chan_name[i]);
        return -ENOMEM;
    }
    char name[32];
    snprintf(name, sizeof(name), "ide-%s", chan_name[i]);
    int r = dm_io_register(d->cfg.pio, name, legacy[i].cmd, 8, &cmd_ops, c, &c->r_cmd);
    if (r == 0) {
        snprintf(name, sizeof(name), "ide-%s-ctl", chan_name[i]);
        r = dm_io_register(d->cfg.pio, name, legacy[i].ctl, 1, &ctl_ops, c, &c->r_ctl);
    }
    if (r < 0)
        snprintf(err, errlen, "IDE %s channel: claiming ports 0x%x/0x%x: %s", chan_name[i],
                 legacy[i].cmd, legacy[i].ctl, strerror(-r));
    return r;
}

int dev_ide_new(const dev_ide_cfg *cfg, dev_ide **out, char *err, size_t errlen)
{
    static const dm_pci_id id = {
        .vendor = 0x8086, .device = 0x7010, .revision = 0x00, .class_code = 0x010180,
    };
    dev_ide *d = calloc(1, sizeof(*d));
    if (!d) {
        snprintf(err, errlen, "IDE: out of memory");
        return -ENOMEM;
    }
    d->cfg = *cfg;
    int r = 0;
    for (unsigned i = 0; i < 2 && r == 0; i++)
        r = chan_init(d, i, err, errlen);
    if (r == 0 && !(d->restart = dm_timer_new(cfg->loop, on_restart, d))) {
        snprintf(err, errlen, "IDE: creating the restart timer: %s", strerror(errno));
        r = -ENOMEM;
    }
    if (r == 0) {
        r = dm_pci_add(cfg->pci, "piix3-ide", DEV_IDE_SLOT, DEV_IDE_FN, &id, NULL, d, &d->pci);
        if (r < 0)
            snprintf(err, errlen, "IDE: adding PCI function 00:%02x.%x: %s", DEV_IDE_SLOT,
                     DEV_IDE_FN, strerror(-r));
    }
    if (r == 0) {
        r = dm_pci_bar_init(d->pci, 4, true, 16, &ide_bmdma_ops, d);
        if (r < 0)
            snprintf(err, errlen, "IDE: declaring the bus-master BAR: %s", strerror(-r));
    }
    if (r == 0 && !(d->h = rs_handler_add(cfg->vm, on_runstate, d, 0))) {
        snprintf(err, errlen, "IDE: adding the change-state handler: %s", strerror(errno));
        r = -ENOMEM;
    }
    if (r == 0 && cfg->state) {
        r = ide_register_state(d, cfg->state);
        if (r < 0)
            snprintf(err, errlen, "IDE: registering the state section: %s", strerror(-r));
    }
    if (r < 0) {
        dev_ide_free(d);
        return r;
    }
    d->live = rs_is_live(cfg->vm);
    *out = d;
    return 0;
}

void dev_ide_free(dev_ide *d)
{
    if (!d)
        return;
    if (d->cfg.state)
        dm_state_unregister(d->cfg.state, "ide", 0);
    if (d->h)
        rs_handler_del(d->cfg.vm, d->h);
    for (unsigned i = 0; i < 2; i++)
        if (d->ch[i].ide)
            chan_free(&d->ch[i]);
    if (d->pci)
        dm_pci_remove(d->cfg.pci, d->pci);
    if (d->restart)
        dm_timer_free(d->restart);
    free(d);
}

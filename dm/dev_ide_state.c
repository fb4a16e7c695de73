/*
 * PIIX3 IDE save/load: section "ide", instance 0, version 1.
 *
 * Per channel: which drives exist (must match the loading dm), the task
 * file, device control, the selected drive, the pending interrupt, each
 * drive's status/error/settings, the command in progress with its PIO
 * block (data included), the bus-master registers and the retry record.
 *
 * A save only happens with the VM stopped, and the stop handler turned
 * whatever was in flight into a parked command; so the file never holds a
 * half-done request, only a command to re-issue from its retry record at
 * the first start after the load (QEMU's ide_bus/error subsection, §6.7).
 */
#include <errno.h>
#include <string.h>

#include "dev_ide_int.h"

#define IDE_STATE_VERSION 1

/* One channel as the file holds it. */
typedef struct chan_image {
    uint8_t drives;                   /* bit 0 master, bit 1 slave */
    ata_taskfile tf;
    uint8_t devctl, unit, irq_pending;
    struct {
        uint8_t status, error, write_cache, xfer_mode, multiple;
    } dr[2];
    uint8_t has_cmd, opcode, cmd_unit;
    uint64_t lba;
    uint32_t remaining;
    uint32_t pio_pos, pio_len, pio_block;
    uint8_t pio_buf[IDE_PIO_BUF];
    uint8_t dma_ready, bm_cmd, bm_status;
    uint32_t bm_prdt;
    uint8_t retry_op, retry_unit;
    uint64_t retry_lba;
    uint32_t retry_nsector;
    uint8_t parked, latched, latched_opcode;
} chan_image;

static void put_tf(dm_state_wr *w, const ata_taskfile *t)
{
    const uint8_t b[12] = { t->feature, t->hob_feature, t->nsect, t->hob_nsect, t->lbal,
                            t->hob_lbal, t->lbam, t->hob_lbam, t->lbah, t->hob_lbah,
                            t->device, t->command };
    dm_state_put_bytes(w, b, sizeof(b));
}

static void get_tf(dm_state_rd *r, ata_taskfile *t)
{
    uint8_t b[12];
    dm_state_get_bytes(r, b, sizeof(b), "taskfile");
    *t = (ata_taskfile){ b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11] };
}

static void save_chan(dm_state_wr *w, const ide_channel *c)
{
    dm_state_put_u8(w, (uint8_t)((c->drive[0].blk ? 1 : 0) | (c->drive[1].blk ? 2 : 0)));
    put_tf(w, &c->tf);
    dm_state_put_u8(w, c->devctl);
    dm_state_put_u8(w, (uint8_t)c->unit);
    dm_state_put_u8(w, c->irq_pending);
    for (unsigned i = 0; i < 2; i++) {
        const ide_drive *dr = &c->drive[i];
        dm_state_put_u8(w, dr->status);
        dm_state_put_u8(w, dr->error);
        dm_state_put_u8(w, dr->set.write_cache);
        dm_state_put_u8(w, dr->set.xfer_mode);
        dm_state_put_u8(w, dr->set.multiple);
    }
    dm_state_put_u8(w, c->cmd != NULL);
    dm_state_put_u8(w, c->cmd ? c->cmd->opcode : 0);
    dm_state_put_u8(w, (uint8_t)c->cmd_unit);
    dm_state_put_u64(w, c->lba);
    dm_state_put_u32(w, c->remaining);
    dm_state_put_u32(w, c->pio_pos);
    dm_state_put_u32(w, c->pio_len);
    dm_state_put_u32(w, c->pio_block);
    dm_state_put_bytes(w, c->pio_buf, c->pio_len);
    dm_state_put_u8(w, c->dma_ready);
    dm_state_put_u8(w, c->bm_cmd);
    dm_state_put_u8(w, c->bm_status);
    dm_state_put_u32(w, c->bm_prdt);
    dm_state_put_u8(w, c->retry_op);
    dm_state_put_u8(w, c->retry_unit);
    dm_state_put_u64(w, c->retry_lba);
    dm_state_put_u32(w, c->retry_nsector);
    /* A request still in flight (a save of a live VM) is re-issued by the
     * loader like a parked command. */
    dm_state_put_u8(w, c->parked || c->req != NULL);
    dm_state_put_u8(w, c->latched);
    dm_state_put_u8(w, c->latched_opcode);
}

static void read_chan(dm_state_rd *r, chan_image *im)
{
    im->drives = dm_state_get_u8(r, "drives");
    get_tf(r, &im->tf);
    im->devctl = dm_state_get_u8(r, "devctl");
    im->unit = dm_state_get_u8(r, "unit");
    im->irq_pending = dm_state_get_u8(r, "irq_pending");
    for (unsigned i = 0; i < 2; i++) {
        im->dr[i].status = dm_state_get_u8(r, "status");
        im->dr[i].error = dm_state_get_u8(r, "error");
        im->dr[i].write_cache = dm_state_get_u8(r, "write_cache");
        im->dr[i].xfer_mode = dm_state_get_u8(r, "xfer_mode");
        im->dr[i].multiple = dm_state_get_u8(r, "multiple");
    }
    im->has_cmd = dm_state_get_u8(r, "has_cmd");
    im->opcode = dm_state_get_u8(r, "opcode");
    im->cmd_unit = dm_state_get_u8(r, "cmd_unit");
    im->lba = dm_state_get_u64(r, "lba");
    im->remaining = dm_state_get_u32(r, "remaining");
    im->pio_pos = dm_state_get_u32(r, "pio_pos");
    im->pio_len = dm_state_get_u32(r, "pio_len");
    im->pio_block = dm_state_get_u32(r, "pio_block");
    if (!dm_state_check(r, im->pio_len <= IDE_PIO_BUF, "pio_len", im->pio_len,
                        "is larger than the PIO buffer"))
        return;
    dm_state_get_bytes(r, im->pio_buf, im->pio_len, "pio_buf");
    im->dma_ready = dm_state_get_u8(r, "dma_ready");
    im->bm_cmd = dm_state_get_u8(r, "bm_cmd");
    im->bm_status = dm_state_get_u8(r, "bm_status");
    im->bm_prdt = dm_state_get_u32(r, "bm_prdt");
    im->retry_op = dm_state_get_u8(r, "retry_op");
    im->retry_unit = dm_state_get_u8(r, "retry_unit");
    im->retry_lba = dm_state_get_u64(r, "retry_lba");
    im->retry_nsector = dm_state_get_u32(r, "retry_nsector");
    im->parked = dm_state_get_u8(r, "parked");
    im->latched = dm_state_get_u8(r, "latched");
    im->latched_opcode = dm_state_get_u8(r, "latched_opcode");
}

static bool bool_ok(dm_state_rd *r, uint8_t v, const char *field)
{
    return dm_state_check(r, v <= 1, field, v, "is not 0 or 1");
}

static void check_chan(dm_state_rd *r, const ide_channel *c, const chan_image *im)
{
    uint8_t have = (uint8_t)((c->drive[0].blk ? 1 : 0) | (c->drive[1].blk ? 2 : 0));
    dm_state_check(r, im->drives == have, "drives", im->drives,
                   "does not match the disks attached to this channel");
    dm_state_check(r, im->unit <= 1, "unit", im->unit, "is not 0 or 1");
    bool_ok(r, im->irq_pending, "irq_pending");
    for (unsigned i = 0; i < 2; i++) {
        ata_settings s;
        ata_settings_init(&s);
        bool_ok(r, im->dr[i].write_cache, "write_cache");
        dm_state_check(r, ata_set_features(&s, ATA_SF_SET_XFER_MODE, im->dr[i].xfer_mode, false),
                       "xfer_mode", im->dr[i].xfer_mode, "is not a transfer mode PIIX3 offers");
        dm_state_check(r, ata_set_multiple(&s, im->dr[i].multiple), "multiple",
                       im->dr[i].multiple, "is not 0 or a power of two up to 16");
    }
    bool_ok(r, im->has_cmd, "has_cmd");
    dm_state_check(r, !im->has_cmd || ata_cmd_lookup(im->opcode), "opcode", im->opcode,
                   "is not a command this device implements");
    dm_state_check(r, im->cmd_unit <= 1, "cmd_unit", im->cmd_unit, "is not 0 or 1");
    dm_state_check(r, im->pio_pos <= im->pio_len, "pio_pos", im->pio_pos, "is past pio_len");
    dm_state_check(r, im->pio_block <= ATA_MAX_MULTIPLE, "pio_block", im->pio_block,
                   "is larger than the largest PIO block (16)");
    bool_ok(r, im->dma_ready, "dma_ready");
    dm_state_check(r, !(im->bm_cmd & ~BM_CMD_MASK), "bm_cmd", im->bm_cmd, "has reserved bits set");
    dm_state_check(r, !(im->bm_prdt & 3), "bm_prdt", im->bm_prdt, "is not dword aligned");
    dm_state_check(r, !(im->retry_op & ~(IDE_RETRY_DMA | IDE_RETRY_PIO | IDE_RETRY_READ |
                                         IDE_RETRY_FLUSH)),
                   "retry_op", im->retry_op, "has bits IDE does not use");
    dm_state_check(r, im->retry_unit <= 1 || im->retry_unit == IDE_RETRY_NONE_UNIT, "retry_unit",
                   im->retry_unit, "is not 0, 1 or 255");
    bool_ok(r, im->parked, "parked");
    bool_ok(r, im->latched, "latched");
    if (im->has_cmd) {
        const ide_drive *dr = &c->drive[im->cmd_unit & 1];
        dm_state_check(r, dr->blk != NULL, "cmd_unit", im->cmd_unit, "names a drive that is not attached");
        dm_state_check(r, ata_range_ok(im->lba, im->remaining, dr->sectors), "lba", im->lba,
                       "with the remaining sectors is beyond the disk");
    }
    const ata_cmd_info *ci = im->has_cmd ? ata_cmd_lookup(im->opcode) : NULL;
    dm_state_check(r, !im->dma_ready || (ci && ata_proto_is_dma(ci->proto)), "dma_ready",
                   im->dma_ready, "without a DMA command");
    if (im->parked && ci) {
        /* The retry record must be the command's own kind of transfer, or a
         * re-issue would move data the wrong way. */
        uint8_t want = ata_proto_is_dma(ci->proto) ? IDE_RETRY_DMA
                       : ata_proto_is_pio(ci->proto) ? IDE_RETRY_PIO
                       : ci->op == ATA_OP_FLUSH ? IDE_RETRY_FLUSH : 0;
        if (want != IDE_RETRY_FLUSH && (ci->proto == ATA_PROTO_DMA_IN || ci->proto == ATA_PROTO_PIO_IN))
            want |= IDE_RETRY_READ;
        dm_state_check(r, want != 0 && im->retry_op == want, "retry_op", im->retry_op,
                       "does not match the command in progress");
    }
    if (im->parked) {
        dm_state_check(r, im->has_cmd && im->retry_op != 0 && im->retry_unit <= 1, "parked",
                       im->parked, "without a command and retry record");
        const ide_drive *dr = &c->drive[im->retry_unit & 1];
        dm_state_check(r, dr->blk && ata_range_ok(im->retry_lba, im->retry_nsector, dr->sectors),
                       "retry_lba", im->retry_lba, "with retry_nsector is beyond the disk");
    }
}

static int ide_save(void *opaque, dm_state_wr *w)
{
    dev_ide *d = opaque;
    for (unsigned i = 0; i < 2; i++)
        save_chan(w, &d->ch[i]);
    return 0;
}

static int ide_validate(void *opaque, uint32_t version, dm_state_rd *r)
{
    dev_ide *d = opaque;
    (void)version;
    static chan_image im;         /* 8 KiB of PIO buffer: not on the stack */
    for (unsigned i = 0; i < 2 && !dm_state_failed(r); i++) {
        memset(&im, 0, sizeof(im));
        read_chan(r, &im);
        if (!dm_state_failed(r))
            check_chan(r, &d->ch[i], &im);
    }
    return dm_state_failed(r) ? -EINVAL : 0;
}

static void apply_chan(ide_channel *c, const chan_image *im)
{
    c->tf = im->tf;
    c->devctl = im->devctl;
    c->unit = im->unit;
    c->irq_pending = im->irq_pending;
    for (unsigned i = 0; i < 2; i++) {
        ide_drive *dr = &c->drive[i];
        dr->status = im->dr[i].status;
        dr->error = im->dr[i].error;
        dr->set.write_cache = im->dr[i].write_cache;
        dr->set.xfer_mode = im->dr[i].xfer_mode;
        dr->set.multiple = im->dr[i].multiple;
    }
    c->cmd = im->has_cmd ? ata_cmd_lookup(im->opcode) : NULL;
    c->cmd_unit = im->cmd_unit;
    c->lba = im->lba;
    c->remaining = im->remaining;
    c->pio_pos = im->pio_pos;
    c->pio_len = im->pio_len;
    c->pio_block = im->pio_block;
    memcpy(c->pio_buf, im->pio_buf, im->pio_len);
    c->dma_ready = im->dma_ready;
    c->bm_cmd = im->bm_cmd;
    c->bm_status = im->bm_status;
    c->bm_prdt = im->bm_prdt;
    ide_prd_rewind(c);
    c->retry_op = im->retry_op;
    c->retry_unit = im->retry_unit;
    c->retry_lba = im->retry_lba;
    c->retry_nsector = im->retry_nsector;
    c->parked = im->parked;
    c->latched = im->latched;
    c->latched_opcode = im->latched_opcode;
}

static void ide_load(void *opaque, uint32_t version, dm_state_rd *r)
{
    dev_ide *d = opaque;
    (void)version;
    static chan_image im;
    for (unsigned i = 0; i < 2; i++) {
        memset(&im, 0, sizeof(im));
        read_chan(r, &im);
        apply_chan(&d->ch[i], &im);
    }
    ide_after_load(d);
}

int ide_register_state(dev_ide *d, dm_state_reg *reg)
{
    return dm_state_register(reg, "ide", 0, IDE_STATE_VERSION, ide_save, ide_validate, ide_load, d);
}

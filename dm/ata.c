/*
 * The ATA command set shared by the IDE and AHCI controllers (ata.h).
 */
#include <string.h>

#include "ata.h"

#define C(op_, nm, k, pr, l48, mul) { .opcode = (op_), .name = (nm), .op = (k), .proto = (pr), \
                                      .lba48 = (l48), .multiple = (mul) }

static const ata_cmd_info cmds[] = {
    C(ATA_CMD_DEVICE_RESET, "DEVICE RESET", ATA_OP_DEVICE_RESET, ATA_PROTO_NONDATA, false, false),
    C(ATA_CMD_RECALIBRATE, "RECALIBRATE", ATA_OP_NONDATA_OK, ATA_PROTO_NONDATA, false, false),
    C(ATA_CMD_READ_SECTORS, "READ SECTORS", ATA_OP_READ, ATA_PROTO_PIO_IN, false, false),
    C(ATA_CMD_READ_SECTORS_NORETRY, "READ SECTORS", ATA_OP_READ, ATA_PROTO_PIO_IN, false, false),
    C(ATA_CMD_READ_SECTORS_EXT, "READ SECTORS EXT", ATA_OP_READ, ATA_PROTO_PIO_IN, true, false),
    C(ATA_CMD_READ_DMA_EXT, "READ DMA EXT", ATA_OP_READ, ATA_PROTO_DMA_IN, true, false),
    C(ATA_CMD_READ_NATIVE_MAX_EXT, "READ NATIVE MAX ADDRESS EXT", ATA_OP_READ_NATIVE_MAX,
      ATA_PROTO_NONDATA, true, false),
    C(ATA_CMD_READ_MULTIPLE_EXT, "READ MULTIPLE EXT", ATA_OP_READ, ATA_PROTO_PIO_IN, true, true),
    C(ATA_CMD_WRITE_SECTORS, "WRITE SECTORS", ATA_OP_WRITE, ATA_PROTO_PIO_OUT, false, false),
    C(ATA_CMD_WRITE_SECTORS_NORETRY, "WRITE SECTORS", ATA_OP_WRITE, ATA_PROTO_PIO_OUT, false, false),
    C(ATA_CMD_WRITE_SECTORS_EXT, "WRITE SECTORS EXT", ATA_OP_WRITE, ATA_PROTO_PIO_OUT, true, false),
    C(ATA_CMD_WRITE_DMA_EXT, "WRITE DMA EXT", ATA_OP_WRITE, ATA_PROTO_DMA_OUT, true, false),
    C(ATA_CMD_WRITE_MULTIPLE_EXT, "WRITE MULTIPLE EXT", ATA_OP_WRITE, ATA_PROTO_PIO_OUT, true, true),
    C(ATA_CMD_READ_VERIFY, "READ VERIFY SECTORS", ATA_OP_VERIFY, ATA_PROTO_NONDATA, false, false),
    C(ATA_CMD_READ_VERIFY_NORETRY, "READ VERIFY SECTORS", ATA_OP_VERIFY, ATA_PROTO_NONDATA, false,
      false),
    C(ATA_CMD_READ_VERIFY_EXT, "READ VERIFY SECTORS EXT", ATA_OP_VERIFY, ATA_PROTO_NONDATA, true,
      false),
    C(ATA_CMD_READ_FPDMA_QUEUED, "READ FPDMA QUEUED", ATA_OP_READ, ATA_PROTO_NCQ_IN, true, false),
    C(ATA_CMD_WRITE_FPDMA_QUEUED, "WRITE FPDMA QUEUED", ATA_OP_WRITE, ATA_PROTO_NCQ_OUT, true, false),
    C(ATA_CMD_SEEK, "SEEK", ATA_OP_NONDATA_OK, ATA_PROTO_NONDATA, false, false),
    C(ATA_CMD_EXEC_DEVICE_DIAGNOSTIC, "EXECUTE DEVICE DIAGNOSTIC", ATA_OP_EXEC_DIAG,
      ATA_PROTO_NONDATA, false, false),
    C(ATA_CMD_INIT_DEVICE_PARAMS, "INITIALIZE DEVICE PARAMETERS", ATA_OP_INIT_PARAMS,
      ATA_PROTO_NONDATA, false, false),
    C(ATA_CMD_IDENTIFY_PACKET, "IDENTIFY PACKET DEVICE", ATA_OP_IDENTIFY_PACKET, ATA_PROTO_NONDATA,
      false, false),
    C(ATA_CMD_READ_MULTIPLE, "READ MULTIPLE", ATA_OP_READ, ATA_PROTO_PIO_IN, false, true),
    C(ATA_CMD_WRITE_MULTIPLE, "WRITE MULTIPLE", ATA_OP_WRITE, ATA_PROTO_PIO_OUT, false, true),
    C(ATA_CMD_SET_MULTIPLE_MODE, "SET MULTIPLE MODE", ATA_OP_SET_MULTIPLE, ATA_PROTO_NONDATA, false,
      false),
    C(ATA_CMD_READ_DMA, "READ DMA", ATA_OP_READ, ATA_PROTO_DMA_IN, false, false),
    C(ATA_CMD_READ_DMA_NORETRY, "READ DMA", ATA_OP_READ, ATA_PROTO_DMA_IN, false, false),
    C(ATA_CMD_WRITE_DMA, "WRITE DMA", ATA_OP_WRITE, ATA_PROTO_DMA_OUT, false, false),
    C(ATA_CMD_WRITE_DMA_NORETRY, "WRITE DMA", ATA_OP_WRITE, ATA_PROTO_DMA_OUT, false, false),
    C(ATA_CMD_STANDBY_IMMEDIATE, "STANDBY IMMEDIATE", ATA_OP_NONDATA_OK, ATA_PROTO_NONDATA, false,
      false),
    C(ATA_CMD_IDLE_IMMEDIATE, "IDLE IMMEDIATE", ATA_OP_NONDATA_OK, ATA_PROTO_NONDATA, false, false),
    C(ATA_CMD_STANDBY, "STANDBY", ATA_OP_NONDATA_OK, ATA_PROTO_NONDATA, false, false),
    C(ATA_CMD_IDLE, "IDLE", ATA_OP_NONDATA_OK, ATA_PROTO_NONDATA, false, false),
    C(ATA_CMD_CHECK_POWER_MODE, "CHECK POWER MODE", ATA_OP_CHECK_POWER, ATA_PROTO_NONDATA, false,
      false),
    C(ATA_CMD_SLEEP, "SLEEP", ATA_OP_NONDATA_OK, ATA_PROTO_NONDATA, false, false),
    C(ATA_CMD_FLUSH_CACHE, "FLUSH CACHE", ATA_OP_FLUSH, ATA_PROTO_NONDATA, false, false),
    C(ATA_CMD_FLUSH_CACHE_EXT, "FLUSH CACHE EXT", ATA_OP_FLUSH, ATA_PROTO_NONDATA, true, false),
    C(ATA_CMD_IDENTIFY_DEVICE, "IDENTIFY DEVICE", ATA_OP_IDENTIFY, ATA_PROTO_PIO_IN, false, false),
    C(ATA_CMD_SET_FEATURES, "SET FEATURES", ATA_OP_SET_FEATURES, ATA_PROTO_NONDATA, false, false),
    C(ATA_CMD_READ_NATIVE_MAX, "READ NATIVE MAX ADDRESS", ATA_OP_READ_NATIVE_MAX,
      ATA_PROTO_NONDATA, false, false),
};

const ata_cmd_info *ata_cmd_lookup(uint8_t opcode)
{
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (cmds[i].opcode == opcode)
            return &cmds[i];
    return NULL;
}

ata_geometry ata_geometry_for(uint64_t total_sectors)
{
    ata_geometry g = { .heads = 16, .sectors = 63 };
    uint64_t c = total_sectors / (16 * 63);
    if (c > 16383)
        c = 16383;
    if (c == 0)
        c = 1;
    g.cylinders = (uint16_t)c;
    return g;
}

bool ata_tf_lba(const ata_taskfile *tf, bool lba48, const ata_geometry *g, uint64_t *lba)
{
    if (lba48) {
        *lba = (uint64_t)tf->hob_lbah << 40 | (uint64_t)tf->hob_lbam << 32 |
               (uint64_t)tf->hob_lbal << 24 | (uint64_t)tf->lbah << 16 | (uint64_t)tf->lbam << 8 |
               tf->lbal;
        return true;
    }
    if (tf->device & ATA_DEV_LBA) {
        *lba = (uint64_t)(tf->device & ATA_DEV_HEAD) << 24 | (uint64_t)tf->lbah << 16 |
               (uint64_t)tf->lbam << 8 | tf->lbal;
        return true;
    }
    unsigned cyl = (unsigned)tf->lbah << 8 | tf->lbam;
    unsigned head = tf->device & ATA_DEV_HEAD;
    unsigned sect = tf->lbal;
    if (sect == 0 || sect > g->sectors || head >= g->heads)
        return false;
    *lba = ((uint64_t)cyl * g->heads + head) * g->sectors + (sect - 1);
    return true;
}

uint32_t ata_tf_count(const ata_taskfile *tf, const ata_cmd_info *ci)
{
    if (ata_proto_is_ncq(ci->proto)) {
        uint32_t n = (uint32_t)tf->hob_feature << 8 | tf->feature;
        return n ? n : 65536;
    }
    if (ci->lba48) {
        uint32_t n = (uint32_t)tf->hob_nsect << 8 | tf->nsect;
        return n ? n : 65536;
    }
    return tf->nsect ? tf->nsect : 256;
}

void ata_tf_set_lba(ata_taskfile *tf, uint64_t lba, bool lba48, const ata_geometry *g)
{
    if (lba48) {
        tf->lbal = (uint8_t)lba;
        tf->lbam = (uint8_t)(lba >> 8);
        tf->lbah = (uint8_t)(lba >> 16);
        tf->hob_lbal = (uint8_t)(lba >> 24);
        tf->hob_lbam = (uint8_t)(lba >> 32);
        tf->hob_lbah = (uint8_t)(lba >> 40);
    } else if (tf->device & ATA_DEV_LBA) {
        tf->lbal = (uint8_t)lba;
        tf->lbam = (uint8_t)(lba >> 8);
        tf->lbah = (uint8_t)(lba >> 16);
        tf->device = (uint8_t)((tf->device & ~ATA_DEV_HEAD) | ((lba >> 24) & ATA_DEV_HEAD));
    } else {
        uint64_t per_cyl = (uint64_t)g->heads * g->sectors;
        uint64_t cyl = lba / per_cyl;
        unsigned rem = (unsigned)(lba % per_cyl);
        tf->lbam = (uint8_t)cyl;
        tf->lbah = (uint8_t)(cyl >> 8);
        tf->device = (uint8_t)((tf->device & ~ATA_DEV_HEAD) | (rem / g->sectors));
        tf->lbal = (uint8_t)(rem % g->sectors + 1);
    }
}

void ata_tf_set_signature(ata_taskfile *tf)
{
    tf->nsect = 1;
    tf->lbal = 1;
    tf->lbam = 0;
    tf->lbah = 0;
    tf->hob_nsect = tf->hob_lbal = tf->hob_lbam = tf->hob_lbah = 0;
    tf->device = 0;
}

void ata_settings_init(ata_settings *s)
{
    s->write_cache = true;
    s->xfer_mode = ATA_XFER_PIO_DEFAULT;
    s->multiple = ATA_MAX_MULTIPLE;
}

static bool xfer_mode_ok(uint8_t m, bool udma)
{
    switch (m & 0xf8) {
    case 0x00:
        return m <= ATA_XFER_PIO_NOIORDY;
    case 0x08:
        return (m & 7) <= 4;
    case 0x20:
        return (m & 7) <= 2;
    case 0x40:
        return udma && (m & 7) <= 5;
    default:
        return false;
    }
}

bool ata_set_features(ata_settings *s, uint8_t feature, uint8_t count, bool udma)
{
    switch (feature) {
    case ATA_SF_ENABLE_WCACHE:
        s->write_cache = true;
        return true;
    case ATA_SF_DISABLE_WCACHE:
        s->write_cache = false;
        return true;
    case ATA_SF_SET_XFER_MODE:
        if (!xfer_mode_ok(count, udma))
            return false;
        s->xfer_mode = count;
        return true;
    /* Read look-ahead and reverting to defaults have nothing to change in
     * an emulated disk; accepting them is what the guest expects. */
    case ATA_SF_DISABLE_RLA:
    case ATA_SF_ENABLE_RLA:
    case ATA_SF_DISABLE_REVERT:
    case ATA_SF_ENABLE_REVERT:
        return true;
    default:
        return false;
    }
}

bool ata_set_multiple(ata_settings *s, uint8_t count)
{
    if (count > ATA_MAX_MULTIPLE || (count & (count - 1)))
        return false;
    s->multiple = count;
    return true;
}

static void put16(uint8_t *buf, unsigned word, uint16_t v)
{
    buf[2 * word] = (uint8_t)v;
    buf[2 * word + 1] = (uint8_t)(v >> 8);
}

/* ATA strings: space-padded, the first character of each pair in the
 * word's high byte. */
static void put_string(uint8_t *buf, unsigned word, unsigned nwords, const char *s)
{
    size_t len = s ? strlen(s) : 0;
    for (unsigned i = 0; i < 2 * nwords; i++) {
        char c = i < len ? s[i] : ' ';
        if ((unsigned char)c < 0x20 || (unsigned char)c > 0x7e)
            c = ' ';
        buf[2 * word + (i ^ 1)] = (uint8_t)c;
    }
}

void ata_identify_device(uint8_t buf[ATA_SECTOR_SIZE], const ata_identify_params *p)
{
    ata_settings defaults;
    const ata_settings *st = p->settings;
    if (!st) {
        ata_settings_init(&defaults);
        st = &defaults;
    }
    uint64_t n = p->sectors > ATA_LBA48_MAX ? ATA_LBA48_MAX : p->sectors;
    uint64_t n28 = n > ATA_LBA28_MAX ? ATA_LBA28_MAX : n;
    ata_geometry g = ata_geometry_for(n);
    uint64_t chs = (uint64_t)g.cylinders * g.heads * g.sectors;
    if (chs > n)
        chs = n;

    memset(buf, 0, ATA_SECTOR_SIZE);
    put16(buf, 0, 0x0040);                        /* fixed, non-removable ATA device */
    put16(buf, 1, g.cylinders);
    put16(buf, 3, g.heads);
    put16(buf, 6, g.sectors);
    put_string(buf, 10, 10, p->serial);
    put_string(buf, 23, 4, p->firmware);
    put_string(buf, 27, 20, p->model);
    put16(buf, 47, (uint16_t)(0x8000 | ATA_MAX_MULTIPLE));
    put16(buf, 49, (1u << 11) | (1u << 9) | (1u << 8)); /* IORDY, LBA, DMA */
    put16(buf, 50, 0x4000);
    put16(buf, 51, 0x0200);
    put16(buf, 52, 0x0200);
    put16(buf, 53, 0x0007);                       /* words 54-58, 64-70 and 88 valid */
    put16(buf, 54, g.cylinders);
    put16(buf, 55, g.heads);
    put16(buf, 56, g.sectors);
    put16(buf, 57, (uint16_t)chs);
    put16(buf, 58, (uint16_t)(chs >> 16));
    if (st->multiple)
        put16(buf, 59, (uint16_t)(0x0100 | st->multiple));
    put16(buf, 60, (uint16_t)n28);
    put16(buf, 61, (uint16_t)(n28 >> 16));
    uint16_t mw = 0x0007;
    if ((st->xfer_mode & 0xf8) == 0x20)
        mw |= (uint16_t)(0x100u << (st->xfer_mode & 7));
    put16(buf, 63, mw);
    put16(buf, 64, 0x0003);                       /* PIO 3 and 4 */
    put16(buf, 65, 120);
    put16(buf, 66, 120);
    put16(buf, 67, 120);
    put16(buf, 68, 120);
    if (p->ncq_depth) {
        unsigned d = p->ncq_depth > 32 ? 32 : p->ncq_depth;
        put16(buf, 75, (uint16_t)(d - 1));
        put16(buf, 76, (1u << 8) | (1u << 2) | (1u << 1)); /* NCQ, SATA Gen2, Gen1 */
    }
    put16(buf, 80, 0x00f0);                       /* ATA/ATAPI-4 to -7 */
    put16(buf, 81, 0x0016);
    /* NOP, write cache, power management; FLUSH CACHE (EXT), LBA48. */
    put16(buf, 82, (1u << 14) | (1u << 5) | (1u << 3));
    put16(buf, 83, 0x4000 | (1u << 13) | (1u << 12) | (1u << 10));
    put16(buf, 84, 0x4000);
    put16(buf, 85, (uint16_t)((1u << 14) | (st->write_cache ? 1u << 5 : 0) | (1u << 3)));
    put16(buf, 86, (1u << 13) | (1u << 12) | (1u << 10));
    put16(buf, 87, 0x4000);
    if (p->udma) {
        uint16_t u = 0x003f;
        if ((st->xfer_mode & 0xf8) == 0x40)
            u |= (uint16_t)(0x100u << (st->xfer_mode & 7));
        put16(buf, 88, u);
    }
    put16(buf, 93, 0x6001);                       /* device 0 passed diagnostics, 80-wire cable */
    put16(buf, 100, (uint16_t)n);
    put16(buf, 101, (uint16_t)(n >> 16));
    put16(buf, 102, (uint16_t)(n >> 32));
    put16(buf, 103, (uint16_t)(n >> 48));

    uint8_t sum = 0xa5;
    for (unsigned i = 0; i < ATA_SECTOR_SIZE - 2; i++)
        sum = (uint8_t)(sum + buf[i]);
    buf[510] = 0xa5;
    buf[511] = (uint8_t)-sum;
}

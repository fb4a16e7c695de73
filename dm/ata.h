/*
 * The ATA command set as rsdm's disk controllers share it: the PIIX3 IDE
 * function (dev_ide*.c) feeds it task-file registers written through I/O
 * ports, the AHCI HBA feeds it Register H2D FISes.  What is here is what a
 * controller needs to decide before it touches a block backend:
 *
 *   - which commands exist and how each moves data (ata_cmd_lookup),
 *   - the LBA and sector count a task file names (LBA28, LBA48, CHS, NCQ),
 *   - the status/error bits and the reset signature a guest checks,
 *   - the IDENTIFY DEVICE page built from a disk's size, model and serial,
 *     with the words SeaBIOS (ata.c: LBA/LBA48 capability, sector counts,
 *     model string) and Linux (libata: words 49/53/63/80-88/93 and the
 *     integrity word; libahci: NCQ words 75/76) read,
 *   - SET FEATURES and SET MULTIPLE MODE, whose results IDENTIFY reports.
 *
 * Pure functions on caller-owned data; no I/O, no allocation, any thread.
 */
#ifndef DM_ATA_H
#define DM_ATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ATA_SECTOR_SIZE 512u

/* Status register (ATA8-ACS 6.2). */
#define ATA_STAT_ERR  0x01u   /* the command failed; see the error register */
#define ATA_STAT_DRQ  0x08u   /* the device wants a data block moved */
#define ATA_STAT_DSC  0x10u   /* seek complete (obsolete; always set when ready) */
#define ATA_STAT_DF   0x20u   /* device fault */
#define ATA_STAT_DRDY 0x40u   /* ready to accept commands */
#define ATA_STAT_BSY  0x80u   /* the device owns the task file */

/* Error register. */
#define ATA_ERR_AMNF  0x01u
#define ATA_ERR_ABRT  0x04u   /* command aborted (unsupported, bad parameter, I/O error) */
#define ATA_ERR_IDNF  0x10u   /* the address is outside the medium */
#define ATA_ERR_UNC   0x40u   /* uncorrectable data error */
#define ATA_ERR_ICRC  0x80u

/* Device register. */
#define ATA_DEV_OBS   0xa0u   /* bits 7 and 5: obsolete, set by convention */
#define ATA_DEV_LBA   0x40u   /* the address is an LBA, not CHS */
#define ATA_DEV_DEV   0x10u   /* device 1 (slave) selected */
#define ATA_DEV_HEAD  0x0fu   /* head (CHS) or LBA bits 27:24 (LBA28) */

/* Device control register. */
#define ATA_CTL_NIEN  0x02u   /* interrupts masked */
#define ATA_CTL_SRST  0x04u   /* software reset of both devices on the channel */
#define ATA_CTL_HOB   0x80u   /* reads return the previous (high-order) byte */

/* Command opcodes rsdm implements. */
#define ATA_CMD_DEVICE_RESET           0x08
#define ATA_CMD_RECALIBRATE            0x10
#define ATA_CMD_READ_SECTORS           0x20
#define ATA_CMD_READ_SECTORS_NORETRY   0x21
#define ATA_CMD_READ_SECTORS_EXT       0x24
#define ATA_CMD_READ_DMA_EXT           0x25
#define ATA_CMD_READ_NATIVE_MAX_EXT    0x27
#define ATA_CMD_READ_MULTIPLE_EXT      0x29
#define ATA_CMD_WRITE_SECTORS          0x30
#define ATA_CMD_WRITE_SECTORS_NORETRY  0x31
#define ATA_CMD_WRITE_SECTORS_EXT      0x34
#define ATA_CMD_WRITE_DMA_EXT          0x35
#define ATA_CMD_WRITE_MULTIPLE_EXT     0x39
#define ATA_CMD_READ_VERIFY            0x40
#define ATA_CMD_READ_VERIFY_NORETRY    0x41
#define ATA_CMD_READ_VERIFY_EXT        0x42
#define ATA_CMD_READ_FPDMA_QUEUED      0x60
#define ATA_CMD_WRITE_FPDMA_QUEUED     0x61
#define ATA_CMD_SEEK                   0x70
#define ATA_CMD_EXEC_DEVICE_DIAGNOSTIC 0x90
#define ATA_CMD_INIT_DEVICE_PARAMS     0x91
#define ATA_CMD_IDENTIFY_PACKET        0xa1
#define ATA_CMD_READ_MULTIPLE          0xc4
#define ATA_CMD_WRITE_MULTIPLE         0xc5
#define ATA_CMD_SET_MULTIPLE_MODE      0xc6
#define ATA_CMD_READ_DMA               0xc8
#define ATA_CMD_READ_DMA_NORETRY       0xc9
#define ATA_CMD_WRITE_DMA              0xca
#define ATA_CMD_WRITE_DMA_NORETRY      0xcb
#define ATA_CMD_STANDBY_IMMEDIATE      0xe0
#define ATA_CMD_IDLE_IMMEDIATE         0xe1
#define ATA_CMD_STANDBY                0xe2
#define ATA_CMD_IDLE                   0xe3
#define ATA_CMD_CHECK_POWER_MODE       0xe5
#define ATA_CMD_SLEEP                  0xe6
#define ATA_CMD_FLUSH_CACHE            0xe7
#define ATA_CMD_FLUSH_CACHE_EXT        0xea
#define ATA_CMD_IDENTIFY_DEVICE        0xec
#define ATA_CMD_SET_FEATURES           0xef
#define ATA_CMD_READ_NATIVE_MAX        0xf8

/* SET FEATURES subcommands (feature register). */
#define ATA_SF_ENABLE_WCACHE     0x02
#define ATA_SF_SET_XFER_MODE     0x03
#define ATA_SF_DISABLE_RLA       0x55
#define ATA_SF_DISABLE_REVERT    0x66
#define ATA_SF_DISABLE_WCACHE    0x82
#define ATA_SF_ENABLE_RLA        0xaa
#define ATA_SF_ENABLE_REVERT     0xcc

/* Transfer mode values of SET FEATURES 03h (count register). */
#define ATA_XFER_PIO_DEFAULT     0x00
#define ATA_XFER_PIO_NOIORDY     0x01
#define ATA_XFER_PIO(n)          (0x08 | (n))    /* n = 0..4 */
#define ATA_XFER_MWDMA(n)        (0x20 | (n))    /* n = 0..2 */
#define ATA_XFER_UDMA(n)         (0x40 | (n))    /* n = 0..5 */

/* The largest READ/WRITE MULTIPLE block rsdm offers (IDENTIFY word 47). */
#define ATA_MAX_MULTIPLE 16u
#define ATA_LBA28_MAX    0x0fffffffull   /* sectors addressable with LBA28 */
#define ATA_LBA48_MAX    0xffffffffffffull

/* What a command does. */
typedef enum ata_cmd_op {
    ATA_OP_READ,            /* sectors from the medium to the host */
    ATA_OP_WRITE,           /* sectors from the host to the medium */
    ATA_OP_VERIFY,          /* range check only; no data moves */
    ATA_OP_FLUSH,           /* write cache to the medium */
    ATA_OP_IDENTIFY,        /* IDENTIFY DEVICE: one PIO-in block */
    ATA_OP_IDENTIFY_PACKET, /* aborted by an ATA disk, with the signature set */
    ATA_OP_SET_FEATURES,
    ATA_OP_SET_MULTIPLE,
    ATA_OP_DEVICE_RESET,    /* resets the selected device (rsdm accepts it
                             * on disks too, and while BSY, as a guest's way
                             * to abandon a hung command) */
    ATA_OP_EXEC_DIAG,       /* diagnostics: signature, error register 01h */
    ATA_OP_READ_NATIVE_MAX, /* the last LBA into the address registers */
    ATA_OP_CHECK_POWER,     /* count register = FFh (active/idle) */
    ATA_OP_NONDATA_OK,      /* accepted without effect: NOP-like power/seek commands */
    ATA_OP_INIT_PARAMS,     /* INITIALIZE DEVICE PARAMETERS: accepted, CHS fixed */
} ata_cmd_op;

/* How the data moves. */
typedef enum ata_proto {
    ATA_PROTO_NONDATA,
    ATA_PROTO_PIO_IN,       /* device to host through the data register */
    ATA_PROTO_PIO_OUT,
    ATA_PROTO_DMA_IN,       /* device to host by the controller's DMA engine */
    ATA_PROTO_DMA_OUT,
    ATA_PROTO_NCQ_IN,       /* first-party DMA, queued (AHCI only) */
    ATA_PROTO_NCQ_OUT,
} ata_proto;

typedef struct ata_cmd_info {
    uint8_t opcode;
    const char *name;       /* for logs: "READ DMA EXT" */
    ata_cmd_op op;
    ata_proto proto;
    bool lba48;             /* the address and count use the HOB bytes */
    bool multiple;          /* PIO blocks of the SET MULTIPLE size */
} ata_cmd_info;

/* The command's description, or NULL for an opcode rsdm does not
 * implement (the controller aborts it: ERR + ABRT). */
const ata_cmd_info *ata_cmd_lookup(uint8_t opcode);

static inline bool ata_proto_is_dma(ata_proto p)
{
    return p == ATA_PROTO_DMA_IN || p == ATA_PROTO_DMA_OUT;
}
static inline bool ata_proto_is_ncq(ata_proto p)
{
    return p == ATA_PROTO_NCQ_IN || p == ATA_PROTO_NCQ_OUT;
}
static inline bool ata_proto_is_pio(ata_proto p)
{
    return p == ATA_PROTO_PIO_IN || p == ATA_PROTO_PIO_OUT;
}

/*
 * The task file as the device sees it: the current bytes and, for LBA48,
 * the previous ("high-order") bytes of the shadowed registers.  IDE keeps
 * one of these per drive; AHCI fills one from each H2D FIS.
 */
typedef struct ata_taskfile {
    uint8_t feature, hob_feature;
    uint8_t nsect, hob_nsect;
    uint8_t lbal, hob_lbal;
    uint8_t lbam, hob_lbam;
    uint8_t lbah, hob_lbah;
    uint8_t device;
    uint8_t command;
} ata_taskfile;

/* A disk's CHS translation (what IDENTIFY words 1/3/6 advertise). */
typedef struct ata_geometry {
    uint16_t cylinders, heads, sectors;
} ata_geometry;

/* The usual 16 heads x 63 sectors translation, cylinders capped at 16383
 * and at least 1. */
ata_geometry ata_geometry_for(uint64_t total_sectors);

/*
 * The first sector a command addresses: LBA28 (device bits 3:0 + lbah/m/l),
 * LBA48 (hob and current bytes), or CHS when the device register's LBA bit
 * is clear and the command is not LBA48 (NCQ commands are always LBA48).
 * Returns false for a CHS address naming sector 0 or a head/sector beyond
 * the geometry (IDNF): the caller aborts.
 */
bool ata_tf_lba(const ata_taskfile *tf, bool lba48, const ata_geometry *g, uint64_t *lba);
/* The sector count: 0 means 256 (LBA28) or 65536 (LBA48).  NCQ commands
 * carry it in the feature registers instead. */
uint32_t ata_tf_count(const ata_taskfile *tf, const ata_cmd_info *ci);
/* The NCQ tag (count register bits 7:3). */
static inline unsigned ata_tf_ncq_tag(const ata_taskfile *tf)
{
    return tf->nsect >> 3;
}
/* Writes an address back into the registers, in the form the command used
 * (after an error, the failing sector; after READ NATIVE MAX, the last
 * one).  CHS commands get it translated back through g. */
void ata_tf_set_lba(ata_taskfile *tf, uint64_t lba, bool lba48, const ata_geometry *g);
/* Whether [lba, lba+count) lies on a disk of `sectors` sectors. */
static inline bool ata_range_ok(uint64_t lba, uint64_t count, uint64_t sectors)
{
    return lba <= sectors && count <= sectors - lba;
}
/* The ATA device signature after power-on, hardware/software reset, DEVICE
 * RESET and EXECUTE DEVICE DIAGNOSTIC: count 1, LBA 1/0/0, device 0. */
void ata_tf_set_signature(ata_taskfile *tf);

/* What SET FEATURES and SET MULTIPLE MODE change; IDENTIFY reports it. */
typedef struct ata_settings {
    bool write_cache;       /* enabled (the default, as QEMU's disks) */
    uint8_t xfer_mode;      /* the last SET FEATURES 03h value */
    uint8_t multiple;       /* READ/WRITE MULTIPLE block size; 0 = not set */
} ata_settings;

/* Power-on defaults: write cache on, PIO default mode, multiple = 16. */
void ata_settings_init(ata_settings *s);
/* Applies a SET FEATURES command (feature subcommand, count).  False when
 * the subcommand or its argument is not supported: abort. */
bool ata_set_features(ata_settings *s, uint8_t feature, uint8_t count, bool udma);
/* SET MULTIPLE MODE: 0 disables, else a power of two up to
 * ATA_MAX_MULTIPLE.  False (abort) otherwise, settings unchanged. */
bool ata_set_multiple(ata_settings *s, uint8_t count);

typedef struct ata_identify_params {
    uint64_t sectors;       /* the disk's size in 512-byte sectors */
    const char *model;      /* up to 40 characters, padded with spaces */
    const char *serial;     /* up to 20 characters */
    const char *firmware;   /* up to 8 characters */
    bool udma;              /* offer Ultra DMA modes 0-5 (AHCI); PIIX3 IDE
                             * offers multiword DMA 0-2 only, like the chip */
    unsigned ncq_depth;     /* 0: no NCQ; 1..32: SATA NCQ with this depth */
    const ata_settings *settings;
} ata_identify_params;

/* Builds the 256-word IDENTIFY DEVICE page, little-endian words as the
 * host reads them from the data register or DMA buffer (buf: 512 bytes).
 * Word 255 carries the integrity signature A5h and its checksum. */
void ata_identify_device(uint8_t buf[ATA_SECTOR_SIZE], const ata_identify_params *p);

#endif

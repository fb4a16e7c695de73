/*
 * Internal to the PIIX3 IDE device (dev_ide.c, dev_ide_bmdma.c,
 * dev_ide_state.c): the channel and drive state they share.
 */
#ifndef DEV_IDE_INT_H
#define DEV_IDE_INT_H

#include "ata.h"
#include "dev_ide.h"

/* Retry bookkeeping, QEMU's values (reference qemu-runstate.md §6.3). */
#define IDE_RETRY_DMA   0x08u
#define IDE_RETRY_PIO   0x10u
#define IDE_RETRY_READ  0x20u
#define IDE_RETRY_FLUSH 0x40u
#define IDE_RETRY_NONE_UNIT 0xffu

/* Bus-master registers (SFF-8038i). */
#define BM_CMD_START   0x01u
#define BM_CMD_TO_MEM  0x08u          /* the controller writes memory: an ATA read */
#define BM_CMD_MASK    0x09u
#define BM_ST_ACTIVE   0x01u
#define BM_ST_ERROR    0x02u
#define BM_ST_IRQ      0x04u
#define BM_ST_CAP_MASK 0x60u          /* drive 0/1 DMA capable: read-write */

#define IDE_PIO_BUF (ATA_MAX_MULTIPLE * ATA_SECTOR_SIZE)
#define IDE_DMA_CHUNK_SECTORS 2048u   /* 1 MiB per backend request */
#define IDE_PRD_MAX 512u              /* one 4 KiB table, QEMU's safety net */

typedef struct ide_channel ide_channel;

typedef struct ide_drive {
    dm_blk *blk;                      /* NULL: no device at this position */
    uint64_t sectors;
    ata_geometry geo;
    ata_settings set;
    char model[41], serial[21];
    uint8_t status, error;
} ide_drive;

/* What the channel's one outstanding backend request is for. */
typedef enum ide_io {
    IDE_IO_NONE,
    IDE_IO_PIO_READ,
    IDE_IO_PIO_WRITE,
    IDE_IO_DMA,
    IDE_IO_FLUSH,
} ide_io;

/* One scatter/gather segment taken from the PRD table. */
typedef struct ide_sg {
    uint32_t addr, len;
} ide_sg;

struct ide_channel {
    dev_ide *ide;
    unsigned idx;
    unsigned isa_irq;
    dm_io_range *r_cmd, *r_ctl;
    ide_drive drive[2];
    unsigned unit;                    /* selected drive */
    ata_taskfile tf;
    uint8_t devctl;
    bool irq_pending;                 /* INTRQ, cleared by reading Status */

    /* The command in progress (cmd == NULL: none). */
    const ata_cmd_info *cmd;
    unsigned cmd_unit;
    uint64_t lba;                     /* next sector of the command */
    uint32_t remaining;               /* sectors still to move */

    /* PIO data phase: the block the guest reads or writes. */
    uint8_t *pio_buf;
    uint32_t pio_pos, pio_len;
    uint32_t pio_block;               /* sectors in the block */

    /* DMA: prepared by the command, moved once the bus master is started. */
    bool dma_ready;
    uint8_t *bounce;
    ide_sg *sg;
    unsigned nsg;
    uint32_t chunk;                   /* sectors of the request in flight */

    /* Bus-master registers and the PRD cursor. */
    uint8_t bm_cmd, bm_status;
    uint32_t bm_prdt;
    uint32_t prd_addr;                /* next entry to read */
    uint32_t prd_base, prd_left;      /* the current entry's unconsumed part */
    unsigned prd_entries;
    bool prd_eot;                     /* the EOT entry was consumed */

    /* The backend request in flight. */
    dm_blk_req *req;
    ide_io io;

    /* Retry bookkeeping: what to re-issue, and whether it waits. */
    uint8_t retry_op;                 /* IDE_RETRY_* bits; 0 = nothing recorded */
    uint8_t retry_unit;
    uint64_t retry_lba;
    uint32_t retry_nsector;
    bool parked;                      /* re-issue at the next start */
    bool error_parked;                /* ... because of an io-error stop */
    bool latched;                     /* a command written while stopped */
    uint8_t latched_opcode;
};

struct dev_ide {
    dev_ide_cfg cfg;
    dm_pci_dev *pci;
    rs_handler *h;
    dm_timer *restart;
    bool live;
    ide_channel ch[2];
    dev_ide_stats stats;
};

/* dev_ide.c */
ide_drive *ide_cur(ide_channel *c);
void ide_update_irq(ide_channel *c);
void ide_raise_irq(ide_channel *c);
/* The DMA engine was started by the guest (or a retry): move data if a
 * DMA command is ready and the VM is live. */
void ide_dma_kick(ide_channel *c);
/* The guest stopped the engine: cancel what is in flight. */
void ide_dma_halt(ide_channel *c);
/* After a load: re-drive the interrupt line from the loaded state. */
void ide_after_load(dev_ide *d);

/* dev_ide_bmdma.c */
extern const dm_io_ops ide_bmdma_ops;
/* Rewinds the PRD cursor to the table base (a new command or a retry). */
void ide_prd_rewind(ide_channel *c);
/* Takes up to max_bytes from the PRD table into c->sg, whole sectors
 * only.  Returns the bytes taken (0: the table is exhausted) or -EFAULT
 * when the table cannot be read. */
long ide_prd_take(ide_channel *c, uint32_t max_bytes);
/* Copies between the bounce buffer and the segments taken. */
int ide_sg_to_guest(ide_channel *c, const uint8_t *src, size_t len);
int ide_sg_from_guest(ide_channel *c, uint8_t *dst, size_t len);

/* dev_ide_state.c */
int ide_register_state(dev_ide *d, dm_state_reg *reg);

#endif

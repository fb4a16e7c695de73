/*
 * Internal to the AHCI controller (dev_ahci_*.c): register layout, the
 * per-port and per-slot state the register file, the command engine, NCQ
 * and save/load share.  [main] throughout.
 */
#ifndef DEV_AHCI_INT_H
#define DEV_AHCI_INT_H

#include "ata.h"
#include "dev_ahci.h"

/* Generic host control (AHCI 1.3 §3.1). */
#define AHCI_CAP 0x00
#define AHCI_GHC 0x04
#define AHCI_IS 0x08
#define AHCI_PI 0x0c
#define AHCI_VS 0x10
#define AHCI_PORT_BASE 0x100
#define AHCI_PORT_LEN 0x80
#define AHCI_BAR_SIZE 4096u
#define AHCI_BAR 5

#define AHCI_CAP_S64A (1u << 31)
#define AHCI_CAP_SNCQ (1u << 30)
#define AHCI_CAP_ISS_GEN1 (1u << 20)
#define AHCI_CAP_SAM (1u << 18)
#define AHCI_GHC_HR (1u << 0)
#define AHCI_GHC_IE (1u << 1)
#define AHCI_GHC_AE (1u << 31)
#define AHCI_VERSION 0x00010300u

/* Port registers (§3.3). */
#define PX_CLB 0x00
#define PX_CLBU 0x04
#define PX_FB 0x08
#define PX_FBU 0x0c
#define PX_IS 0x10
#define PX_IE 0x14
#define PX_CMD 0x18
#define PX_TFD 0x20
#define PX_SIG 0x24
#define PX_SSTS 0x28
#define PX_SCTL 0x2c
#define PX_SERR 0x30
#define PX_SACT 0x34
#define PX_CI 0x38

#define PX_IS_DHRS (1u << 0)
#define PX_IS_PSS (1u << 1)
#define PX_IS_SDBS (1u << 3)
#define PX_IS_TFES (1u << 30)
#define PX_IS_MASK 0xfdc000ffu       /* defined bits */

#define PX_CMD_ST (1u << 0)
#define PX_CMD_SUD (1u << 1)
#define PX_CMD_POD (1u << 2)
#define PX_CMD_FRE (1u << 4)
#define PX_CMD_FR (1u << 14)
#define PX_CMD_CR (1u << 15)
#define PX_CMD_RW (PX_CMD_ST | PX_CMD_SUD | PX_CMD_POD | PX_CMD_FRE)

#define PX_SIG_ATA 0x00000101u
#define PX_SSTS_UP 0x113u            /* DET 3 (device, PHY up), SPD Gen1, IPM active */
#define PX_SERR_DIAG_X (1u << 26)

#define AHCI_TFD_IDLE (ATA_STAT_DRDY | ATA_STAT_DSC)

/* FIS types and the received-FIS area (§4.2.1). */
#define FIS_H2D 0x27
#define FIS_D2H 0x34
#define FIS_PIO_SETUP 0x5f
#define FIS_SDB 0xa1
#define RFIS_PSFIS 0x20
#define RFIS_RFIS 0x40
#define RFIS_SDBFIS 0x58

/* Command header dw0 (§4.2.2): the PRDT length. */
#define HDR_PRDTL_SHIFT 16
#define CT_PRDT 0x80
#define PRD_DBC_MASK 0x3fffffu
/* Bounce buffers held by one controller at most.  A guest may ask for 32
 * MiB per command and 192 commands at once; beyond this, commands wait
 * for others to complete (one command alone always goes). */
#define AHCI_BOUNCE_MAX (128u << 20)

typedef struct ahci_sg {
    uint64_t addr;
    uint32_t len;
} ahci_sg;

typedef struct ahci_port ahci_port;

/* What a slot holds while the device owns it. */
typedef enum ahci_slot_state {
    SLOT_IDLE,         /* free, or issued and not started yet (PxCI) */
    SLOT_RUNNING,      /* at the backend */
    SLOT_HALTED,       /* failed with `stop`: re-issued at the next start */
} ahci_slot_state;

typedef enum ahci_op_kind {
    OP_READ, OP_WRITE, OP_FLUSH,
} ahci_op_kind;

typedef struct ahci_slot {
    ahci_port *p;
    unsigned slot;
    ahci_slot_state state;
    bool ncq;
    bool discard;           /* a reset dropped it while at the backend */
    uint8_t command;        /* ATA opcode */
    ahci_op_kind kind;
    uint64_t lba;
    uint32_t nsect;
    uint8_t tag;            /* NCQ tag (== slot) */
    ahci_sg *sg;
    unsigned nsg;
    uint8_t *buf;           /* bounce buffer, len bytes */
    size_t len;
    size_t bounce;          /* of which counted in dm_ahci.bounce_bytes */
    dm_blk_req *req;
} ahci_slot;

struct ahci_port {
    dm_ahci *a;
    unsigned n;
    dm_blk *blk;            /* NULL: no device, the link stays down */
    uint64_t clb, fb;
    uint32_t is, ie, cmd, tfd, sig, ssts, sctl, serr, sact, ci;
    ata_settings settings;  /* SET FEATURES / SET MULTIPLE results */
    bool nonncq_busy;       /* a non-NCQ command owns the port */
    unsigned ncq_running;   /* NCQ commands at the backend */
    ahci_slot slots[DM_AHCI_SLOTS];
};

struct dm_ahci {
    dm_ahci_cfg cfg;
    dm_pci_dev *dev;
    dm_pci_msi msi;
    bool has_msi;
    rs_handler *h;
    dm_timer *restart;      /* zero-delay: re-issue after a start */
    bool running;           /* device may make progress */
    bool irq_pending;       /* an interrupt to raise at the next start */
    bool intx;              /* INTx level the device drives */
    bool dying;
    uint32_t ghc, is;
    size_t bounce_bytes;    /* held by commands, bounded by AHCI_BOUNCE_MAX */
    ahci_port ports[DM_AHCI_PORTS];
    dm_ahci_stats stats;
};

/* dev_ahci.c: interrupts. from_event: a device event set status bits (an
 * MSI is sent only then); a guest clearing bits only lowers INTx. */
void ahci_update_irq(dm_ahci *a, bool from_event);

/* dev_ahci_port.c: the register file of one port and its command engine. */
uint32_t ahci_port_read(ahci_port *p, unsigned reg);
void ahci_port_write(ahci_port *p, unsigned reg, uint32_t val);
/* Device power-on / HBA reset: registers to their reset values, work
 * dropped (logged when halted or queued work was dropped). */
void ahci_port_reset(ahci_port *p, const char *why);
/* Starts whatever PxCI holds that is not started yet (no-op while stopped
 * or the port is not started). */
void ahci_port_kick(ahci_port *p);
/* Re-issues every halted slot of the port (after a start). */
void ahci_port_restart_halted(ahci_port *p);
/* Sets PxIS bits and re-evaluates the interrupt. */
void ahci_port_raise(ahci_port *p, uint32_t is_bits);
/* Reads the PRDT of slot `s` from guest memory into s->sg (bytes >= need).
 * 0, or -1 (the reason logged). */
int ahci_slot_load_prdt(ahci_slot *s, size_t need);
/* Allocates the bounce buffer, copies guest data in for a write and
 * submits to the backend.  0 or -1 (slot failed towards the guest by the
 * caller). */
int ahci_slot_submit(ahci_slot *s);
/* Frees a slot's sglist and bounce buffer and marks it idle. */
void ahci_slot_clear(ahci_slot *s);
/* Completes a non-NCQ command: PRDBC, D2H FIS, PxTFD, PxCI, interrupt. */
void ahci_finish_nonncq(ahci_slot *s, bool ok, uint32_t bytes, const ata_taskfile *tf);

/* dev_ahci_ncq.c */
/* Validates and starts an NCQ command already parsed into s. */
void ahci_ncq_start(ahci_slot *s);
/* A NCQ command completed (ok or failed with report): SDB FIS, PxSACT. */
void ahci_ncq_finish(ahci_slot *s, bool ok);

/* dev_ahci_state.c */
int ahci_state_register(dm_ahci *a);
void ahci_state_unregister(dm_ahci *a);

#endif

/*
 * Native command queuing: READ/WRITE FPDMA QUEUED.  Every queued command
 * goes to the block backend as soon as it is parsed, so up to 32 are at
 * the workers together and complete in whatever order the disk finishes
 * them; each completion posts a Set Device Bits FIS carrying its tag.
 */
#include <string.h>

#include "dev_ahci_int.h"
#include "dm_log.h"

static void post_sdb(ahci_port *p, uint32_t tags, uint8_t status, uint8_t error)
{
    if (!(p->cmd & PX_CMD_FRE))
        return;
    uint8_t fis[8] = { FIS_SDB, 0x40, status, error };
    memcpy(fis + 4, &tags, 4);
    if (dm_guestmem_write(p->a->cfg.gm, p->fb + RFIS_SDBFIS, fis, sizeof(fis)) < 0)
        dm_warn("ahci: port %u: cannot write the SDB FIS", p->n);
}

void ahci_ncq_finish(ahci_slot *s, bool ok)
{
    ahci_port *p = s->p;
    uint32_t bit = 1u << s->slot;
    uint32_t is = PX_IS_SDBS;
    p->a->stats.completed++;
    if (ok) {
        post_sdb(p, bit, AHCI_TFD_IDLE, 0);
    } else {
        /* The failed tag is reported as an error on the link: task file
         * ERR/ABRT and TFES; the guest reads the failed tag from SERR's
         * side (QEMU sets the tag bit there too) and recovers. */
        p->a->stats.failed++;
        p->tfd = (uint32_t)ATA_ERR_ABRT << 8 | ATA_STAT_DRDY | ATA_STAT_ERR;
        post_sdb(p, bit, ATA_STAT_DRDY | ATA_STAT_ERR, ATA_ERR_ABRT);
        is |= PX_IS_TFES;
    }
    p->sact &= ~bit;
    p->ci &= ~bit;
    ahci_slot_clear(s);
    ahci_port_raise(p, is);
}

void ahci_ncq_start(ahci_slot *s)
{
    ahci_port *p = s->p;
    uint32_t bit = 1u << s->slot;
    /* The spec makes the tag the slot number; a command breaking that
     * could collide with another tag's completion, so it is refused. */
    if (s->tag != s->slot) {
        dm_warn("ahci: port %u slot %u: NCQ tag %u differs from its slot: refused", p->n,
                s->slot, s->tag);
        goto fail;
    }
    if (!(p->sact & bit))
        p->sact |= bit;     /* the guest should have set PxSACT first; be lenient */
    uint64_t n = dm_blk_sectors(p->blk);
    if (s->lba >= n || s->nsect > n - s->lba) {
        dm_debug("ahci: port %u tag %u: sectors %llu+%u beyond the disk", p->n, s->tag,
                 (unsigned long long)s->lba, s->nsect);
        goto fail;
    }
    if (s->kind == OP_WRITE && dm_blk_read_only(p->blk))
        goto fail;
    if (ahci_slot_load_prdt(s, (size_t)s->nsect * DM_BLK_SECTOR) < 0 || ahci_slot_submit(s) < 0)
        goto fail;
    /* The device accepted the command: it clears BSY at once and the HBA
     * clears the slot's PxCI bit; PxSACT stays until the SDB FIS. */
    p->ci &= ~bit;
    p->tfd = AHCI_TFD_IDLE;
    return;
fail:
    s->len = 0;
    ahci_ncq_finish(s, false);
}

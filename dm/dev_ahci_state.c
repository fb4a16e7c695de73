/*
 * Save and load of the AHCI controller: section "ahci", instance = PCI
 * slot << 3.  A save happens with the VM stopped and the backends drained,
 * so no command is at a backend: a busy slot is either halted (its command
 * travels in the file) or issued and not started (PxCI / PxSACT only).
 * The loader checks that a halted slot is one the device owns (its PxCI
 * bit, or its PxSACT bit for NCQ), that an NCQ tag equals its slot and
 * that no NCQ and non-NCQ work is mixed, naming the bad field; the sglists are rebuilt from guest
 * memory when the commands are re-issued at the next start.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "dev_ahci_int.h"
#include "dm_log.h"

#define AHCI_STATE_ID "ahci"
#define AHCI_STATE_VERSION 1

static int ahci_save(void *opaque, dm_state_wr *w)
{
    dm_ahci *a = opaque;
    for (unsigned i = 0; i < DM_AHCI_PORTS; i++)
        for (unsigned s = 0; s < DM_AHCI_SLOTS; s++)
            if (a->ports[i].slots[s].state == SLOT_RUNNING) {
                dm_err("ahci: save refused: port %u slot %u is still at the backend (the VM "
                       "must be stopped and drained)", i, s);
                return -EBUSY;
            }
    dm_state_put_u32(w, a->ghc);
    dm_state_put_u32(w, a->is);
    dm_state_put_u8(w, a->irq_pending);
    for (unsigned i = 0; i < DM_AHCI_PORTS; i++) {
        const ahci_port *p = &a->ports[i];
        dm_state_put_u8(w, p->blk != NULL);
        dm_state_put_u64(w, p->clb);
        dm_state_put_u64(w, p->fb);
        const uint32_t regs[] = { p->is, p->ie, p->cmd, p->tfd, p->sig, p->ssts,
                                  p->sctl, p->serr, p->sact, p->ci };
        for (unsigned r = 0; r < sizeof(regs) / sizeof(regs[0]); r++)
            dm_state_put_u32(w, regs[r]);
        dm_state_put_u8(w, p->settings.write_cache);
        dm_state_put_u8(w, p->settings.xfer_mode);
        dm_state_put_u8(w, p->settings.multiple);
        uint32_t halted = 0;
        for (unsigned s = 0; s < DM_AHCI_SLOTS; s++)
            if (p->slots[s].state == SLOT_HALTED)
                halted |= 1u << s;
        dm_state_put_u32(w, halted);
        for (unsigned s = 0; s < DM_AHCI_SLOTS; s++) {
            const ahci_slot *c = &p->slots[s];
            if (c->state != SLOT_HALTED)
                continue;
            dm_state_put_u8(w, c->ncq);
            dm_state_put_u8(w, c->command);
            dm_state_put_u8(w, (uint8_t)c->kind);
            dm_state_put_u64(w, c->lba);
            dm_state_put_u32(w, c->nsect);
            dm_state_put_u8(w, c->tag);
        }
    }
    return 0;
}

typedef struct port_img {
    bool present;
    uint64_t clb, fb;
    uint32_t is, ie, cmd, tfd, sig, ssts, sctl, serr, sact, ci;
    ata_settings settings;
    uint32_t halted;
    ahci_slot cmds[DM_AHCI_SLOTS];
} port_img;

typedef struct ahci_img {
    uint32_t ghc, is;
    bool irq_pending;
    port_img port[DM_AHCI_PORTS];
} ahci_img;

/* Reads and checks the payload into img; false when the reader failed. */
static bool parse(dm_ahci *a, dm_state_rd *r, ahci_img *img)
{
    char f[64];
    img->ghc = dm_state_get_u32(r, "ghc");
    img->is = dm_state_get_u32(r, "is");
    img->irq_pending = dm_state_get_u8(r, "irq_pending");
    dm_state_check(r, !(img->ghc & ~(AHCI_GHC_IE | AHCI_GHC_AE)), "ghc", img->ghc,
                   "undefined bits");
    dm_state_check(r, img->is < (1u << DM_AHCI_PORTS), "is", img->is, "bits of absent ports");
    for (unsigned i = 0; i < DM_AHCI_PORTS && !dm_state_failed(r); i++) {
        port_img *p = &img->port[i];
#define NAME(x) (snprintf(f, sizeof(f), "port%u.%s", i, (x)), f)
        p->present = dm_state_get_u8(r, NAME("present"));
        dm_state_check(r, p->present == (a->ports[i].blk != NULL), NAME("present"), p->present,
                       "the file's disk configuration differs from this rsdm's");
        p->clb = dm_state_get_u64(r, NAME("clb"));
        p->fb = dm_state_get_u64(r, NAME("fb"));
        dm_state_check(r, !(p->clb & 0x3ff), NAME("clb"), p->clb, "not 1 KiB aligned");
        dm_state_check(r, !(p->fb & 0xff), NAME("fb"), p->fb, "not 256-byte aligned");
        uint32_t *regs[] = { &p->is, &p->ie, &p->cmd, &p->tfd, &p->sig, &p->ssts,
                             &p->sctl, &p->serr, &p->sact, &p->ci };
        static const char *const names[] = { "is", "ie", "cmd", "tfd", "sig", "ssts",
                                             "sctl", "serr", "sact", "ci" };
        for (unsigned k = 0; k < sizeof(regs) / sizeof(regs[0]); k++)
            *regs[k] = dm_state_get_u32(r, NAME(names[k]));
        p->settings.write_cache = dm_state_get_u8(r, NAME("write_cache"));
        p->settings.xfer_mode = dm_state_get_u8(r, NAME("xfer_mode"));
        p->settings.multiple = dm_state_get_u8(r, NAME("multiple"));
        dm_state_check(r, p->settings.multiple <= ATA_MAX_MULTIPLE &&
                              !(p->settings.multiple & (p->settings.multiple - 1)),
                       NAME("multiple"), p->settings.multiple, "not 0 or a power of two <= 16");
        p->halted = dm_state_get_u32(r, NAME("halted"));
        if (dm_state_failed(r))
            break;
        bool st = p->cmd & PX_CMD_ST;
        dm_state_check(r, st || !(p->ci | p->sact), NAME("ci"), p->ci,
                       "commands issued on a stopped port");
        dm_state_check(r, !(p->halted & ~(p->ci | p->sact)), NAME("halted"), p->halted,
                       "halted slots not owned by the device (PxCI/PxSACT)");
        unsigned nonncq = 0, ncq = 0;
        for (unsigned s = 0; s < DM_AHCI_SLOTS && !dm_state_failed(r); s++) {
            if (!(p->halted & (1u << s)))
                continue;
            ahci_slot *c = &p->cmds[s];
            char sf[64];
            snprintf(sf, sizeof(sf), "port%u.slot%u", i, s);
            c->ncq = dm_state_get_u8(r, sf);
            c->command = dm_state_get_u8(r, sf);
            c->kind = (ahci_op_kind)dm_state_get_u8(r, sf);
            c->lba = dm_state_get_u64(r, sf);
            c->nsect = dm_state_get_u32(r, sf);
            c->tag = dm_state_get_u8(r, sf);
            if (dm_state_failed(r))
                break;
            snprintf(sf, sizeof(sf), "port%u.slot%u.kind", i, s);
            dm_state_check(r, c->kind <= OP_FLUSH && (!c->ncq || c->kind != OP_FLUSH), sf,
                           c->kind, "not a read, write or (non-NCQ) flush");
            snprintf(sf, sizeof(sf), "port%u.slot%u.tag", i, s);
            dm_state_check(r, !c->ncq || c->tag == s, sf, c->tag, "NCQ tag differs from its slot");
            snprintf(sf, sizeof(sf), "port%u.slot%u.sectors", i, s);
            uint64_t n = p->present ? dm_blk_sectors(a->ports[i].blk) : 0;
            dm_state_check(r, c->kind == OP_FLUSH ||
                                  (c->nsect >= 1 && c->nsect <= 65536 && c->lba < n &&
                                   c->nsect <= n - c->lba),
                           sf, c->lba, "range beyond the disk");
            snprintf(sf, sizeof(sf), "port%u.slot%u", i, s);
            dm_state_check(r, c->ncq ? (p->sact >> s) & 1 : (p->ci >> s) & 1, sf, s,
                           c->ncq ? "halted NCQ command without its PxSACT bit"
                                  : "halted command without its PxCI bit");
            if (c->ncq)
                ncq++;
            else
                nonncq++;
        }
        dm_state_check(r, nonncq <= 1 && !(nonncq && ncq), NAME("halted"), p->halted,
                       "non-NCQ work mixed with other halted commands");
#undef NAME
    }
    return !dm_state_failed(r);
}

static int ahci_validate(void *opaque, uint32_t version, dm_state_rd *r)
{
    (void)version;
    ahci_img *img = calloc(1, sizeof(*img));
    if (!img)
        return -ENOMEM;
    bool ok = parse(opaque, r, img);
    free(img);
    return ok ? 0 : -EINVAL;
}

static void ahci_load(void *opaque, uint32_t version, dm_state_rd *r)
{
    dm_ahci *a = opaque;
    (void)version;
    ahci_img *img = calloc(1, sizeof(*img));
    if (!img || !parse(a, r, img)) {
        dm_err("ahci: state that validated failed to apply");   /* only on ENOMEM */
        free(img);
        return;
    }
    a->ghc = img->ghc | AHCI_GHC_AE;
    a->is = img->is;
    a->irq_pending = img->irq_pending;
    for (unsigned i = 0; i < DM_AHCI_PORTS; i++) {
        ahci_port *p = &a->ports[i];
        const port_img *q = &img->port[i];
        for (unsigned s = 0; s < DM_AHCI_SLOTS; s++)
            ahci_slot_clear(&p->slots[s]);
        p->clb = q->clb;
        p->fb = q->fb;
        p->is = q->is;
        p->ie = q->ie;
        p->cmd = q->cmd;
        p->tfd = q->tfd;
        p->sig = q->sig;
        p->ssts = q->ssts;
        p->sctl = q->sctl;
        p->serr = q->serr;
        p->sact = q->sact;
        p->ci = q->ci;
        p->settings = q->settings;
        p->nonncq_busy = false;
        p->ncq_running = 0;
        for (unsigned s = 0; s < DM_AHCI_SLOTS; s++) {
            if (!(q->halted & (1u << s)))
                continue;
            ahci_slot *c = &p->slots[s];
            c->state = SLOT_HALTED;
            c->ncq = q->cmds[s].ncq;
            c->command = q->cmds[s].command;
            c->kind = q->cmds[s].kind;
            c->lba = q->cmds[s].lba;
            c->nsect = q->cmds[s].nsect;
            c->tag = q->cmds[s].tag;
            if (!c->ncq)
                p->nonncq_busy = true;
        }
    }
    free(img);
}

int ahci_state_register(dm_ahci *a)
{
    return dm_state_register(a->cfg.state, AHCI_STATE_ID, a->cfg.pci_slot << 3,
                             AHCI_STATE_VERSION, ahci_save, ahci_validate, ahci_load, a);
}

void ahci_state_unregister(dm_ahci *a)
{
    dm_state_unregister(a->cfg.state, AHCI_STATE_ID, a->cfg.pci_slot << 3);
}

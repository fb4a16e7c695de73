/*
 * Interrupt lines and the stopped-VM gate (dm_irq.h).  Each line keeps two
 * levels: `want` (what the device set) and `seen` (what the back-end last
 * accepted).  Delivery makes seen follow want whenever the gate allows it.
 */
#include "dm_irq.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm_log.h"

#define NLINES (DM_IRQ_ISA_LINES + DM_IRQ_PCI_SLOTS * 4)

struct dm_irq {
    dm_irq_backend be;
    void *opaque;
    bool open;
    bool want[NLINES], seen[NLINES];
    rs_vm *vm;
    rs_handler *h;
    dm_irq_stats stats;
};

/* Lines 0..15 are ISA, then 4 per PCI slot. */
static unsigned pci_line(unsigned slot, unsigned intx)
{
    return DM_IRQ_ISA_LINES + slot * 4 + intx;
}

static void describe(unsigned line, char *buf, size_t len)
{
    if (line < DM_IRQ_ISA_LINES)
        snprintf(buf, len, "ISA IRQ %u", line);
    else
        snprintf(buf, len, "PCI slot %u INT%c", (line - DM_IRQ_ISA_LINES) / 4,
                 'A' + (line - DM_IRQ_ISA_LINES) % 4);
}

/* Brings the guest-visible level of a line to what the device wants, as
 * far as the gate allows. */
static void deliver(dm_irq *irq, unsigned line)
{
    bool level = irq->want[line];
    if (level == irq->seen[line])
        return;
    if (level && !irq->open) {
        irq->stats.latched++;
        return;
    }
    int rc;
    if (line < DM_IRQ_ISA_LINES)
        rc = irq->be.set_isa_level ? irq->be.set_isa_level(irq->opaque, line, level) : -ENOSYS;
    else
        rc = irq->be.set_pci_intx_level
                 ? irq->be.set_pci_intx_level(irq->opaque, (line - DM_IRQ_ISA_LINES) / 4,
                                              (line - DM_IRQ_ISA_LINES) % 4, level)
                 : -ENOSYS;
    if (rc < 0) {
        char name[32];
        describe(line, name, sizeof(name));
        dm_err("interrupt: setting %s %s failed: %s", name, level ? "high" : "low", strerror(-rc));
        irq->stats.failed++;
        return;
    }
    irq->seen[line] = level;
    irq->stats.delivered++;
}

dm_irq *dm_irq_new(const dm_irq_backend *be, void *opaque)
{
    if (!be) {
        errno = EINVAL;
        return NULL;
    }
    dm_irq *irq = calloc(1, sizeof(*irq));
    if (!irq)
        return NULL;
    irq->be = *be;
    irq->opaque = opaque;
    return irq;
}

void dm_irq_free(dm_irq *irq)
{
    if (!irq)
        return;
    if (irq->h)
        rs_handler_del(irq->vm, irq->h);
    free(irq);
}

void dm_irq_set_gate(dm_irq *irq, bool open)
{
    irq->open = open;
    if (open)
        for (unsigned i = 0; i < NLINES; i++)
            deliver(irq, i);
}

bool dm_irq_gate_open(const dm_irq *irq)
{
    return irq->open;
}

static void on_state_change(void *opaque, bool running, rs_state state)
{
    (void)state;
    dm_irq_set_gate(opaque, running);
}

int dm_irq_attach_runstate(dm_irq *irq, rs_vm *vm, int priority)
{
    if (!irq || !vm || irq->h)
        return -EINVAL;
    rs_handler *h = rs_handler_add(vm, on_state_change, irq, priority);
    if (!h) {
        int e = errno;
        dm_err("interrupt: cannot add the run-state handler: %s", strerror(e));
        return -e;
    }
    irq->vm = vm;
    irq->h = h;
    dm_irq_set_gate(irq, rs_is_live(vm));
    return 0;
}

int dm_irq_isa_set(dm_irq *irq, unsigned isa_irq, bool level)
{
    if (isa_irq >= DM_IRQ_ISA_LINES)
        return -EINVAL;
    irq->want[isa_irq] = level;
    deliver(irq, isa_irq);
    return 0;
}

int dm_irq_pci_set(dm_irq *irq, unsigned slot, unsigned intx, bool level)
{
    if (slot >= DM_IRQ_PCI_SLOTS || intx >= 4)
        return -EINVAL;
    unsigned line = pci_line(slot, intx);
    irq->want[line] = level;
    deliver(irq, line);
    return 0;
}

bool dm_irq_isa_wanted(const dm_irq *irq, unsigned isa_irq)
{
    return isa_irq < DM_IRQ_ISA_LINES && irq->want[isa_irq];
}

bool dm_irq_isa_delivered(const dm_irq *irq, unsigned isa_irq)
{
    return isa_irq < DM_IRQ_ISA_LINES && irq->seen[isa_irq];
}

bool dm_irq_pci_wanted(const dm_irq *irq, unsigned slot, unsigned intx)
{
    return slot < DM_IRQ_PCI_SLOTS && intx < 4 && irq->want[pci_line(slot, intx)];
}

bool dm_irq_pci_delivered(const dm_irq *irq, unsigned slot, unsigned intx)
{
    return slot < DM_IRQ_PCI_SLOTS && intx < 4 && irq->seen[pci_line(slot, intx)];
}

void dm_irq_get_stats(const dm_irq *irq, dm_irq_stats *out)
{
    *out = irq->stats;
}

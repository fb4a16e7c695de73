/*
 * Interrupt lines: ISA IRQ levels and PCI INTx levels, as devices set them,
 * delivered through a back-end (the ioreq module plugs in
 * xendevicemodel_set_isa_irq_level / _set_pci_intx_level; tests plug in a
 * recorder).
 *
 * The gate.  A dm stop does not stop Xen's vCPUs (DESIGN "Stopping a guest
 * on Xen"), so a stopped dm must not raise interrupts.  While the gate is
 * closed (run state not live) a raised line is latched, not delivered; the
 * gate applies every latched level when it opens at the next start.
 * Lowering a line is delivered at once even while closed: it is the
 * register-level answer to a guest access (reading a status register), and
 * an edge-triggered line (ISA 14/15 on the vPIC) must be low before the
 * next raise can be an edge.
 *
 * [main] throughout.
 */
#ifndef DM_IRQ_H
#define DM_IRQ_H

#include <stdbool.h>
#include <stdint.h>

#include "runstate.h"

#define DM_IRQ_ISA_LINES 16
#define DM_IRQ_PCI_SLOTS 32

/* Returns 0 or a negative errno; a failure is logged and counted, and the
 * line is retried at the next change or gate opening. */
typedef struct dm_irq_backend {
    int (*set_isa_level)(void *opaque, unsigned irq, bool level);
    int (*set_pci_intx_level)(void *opaque, unsigned slot, unsigned intx, bool level);
} dm_irq_backend;

typedef struct dm_irq dm_irq;

/* The gate starts closed (a new VM is in prelaunch).  NULL with errno. */
dm_irq *dm_irq_new(const dm_irq_backend *be, void *opaque);
/* Removes the change-state handler if attached. */
void dm_irq_free(dm_irq *irq);

/* Opens/closes the gate from librunstate: a change-state handler at
 * `priority`, and the gate set from rs_is_live(vm) now.  The priority
 * relative to the devices' handlers does not matter for correctness: a
 * device that raises its line from its own start handler before the gate
 * opened is delivered when the gate opens in the same pass.  [main] */
int dm_irq_attach_runstate(dm_irq *irq, rs_vm *vm, int priority);
/* Opens/closes the gate directly (what the handler calls). */
void dm_irq_set_gate(dm_irq *irq, bool open);
bool dm_irq_gate_open(const dm_irq *irq);

/* Device side.  -EINVAL for irq >= 16, slot >= 32, intx >= 4. */
int dm_irq_isa_set(dm_irq *irq, unsigned isa_irq, bool level);
int dm_irq_pci_set(dm_irq *irq, unsigned slot, unsigned intx, bool level);

/* The level the device wants, and the level the guest last saw. */
bool dm_irq_isa_wanted(const dm_irq *irq, unsigned isa_irq);
bool dm_irq_isa_delivered(const dm_irq *irq, unsigned isa_irq);
bool dm_irq_pci_wanted(const dm_irq *irq, unsigned slot, unsigned intx);
bool dm_irq_pci_delivered(const dm_irq *irq, unsigned slot, unsigned intx);

typedef struct dm_irq_stats {
    uint64_t delivered;       /* back-end calls that succeeded */
    uint64_t latched;         /* raises held by the closed gate */
    uint64_t failed;          /* back-end calls that failed */
} dm_irq_stats;
void dm_irq_get_stats(const dm_irq *irq, dm_irq_stats *out);

#endif

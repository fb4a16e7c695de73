/*
 * xensim guests: back-end (a), the simulated hypervisor's ioreq path.  One
 * guest_bus per vCPU: each access becomes an ioreq_t on that vCPU's slot
 * and blocks (bounded) in hv_vcpu_io() like a trapped vCPU; guest RAM is
 * the domain's shared memory; interrupts are the domain's lines.
 */
#ifndef XENSIM_GUEST_HV_H
#define XENSIM_GUEST_HV_H

#include <stdatomic.h>

#include "guest_bus.h"

/* Attach to domain `domid`, vCPU `vcpu`; RAM from `ram_base` up is handed
 * out by guest_ram_alloc().  0 or -1 with the reason in err. */
int guest_hv_open(struct guest_bus *b, uint32_t domid, unsigned vcpu, uint64_t ram_base,
                  char *err, size_t errlen);

/* For a runner's vCPU threads: accesses and interrupt waits wait out
 * pauses of any length (a paused guest's time does not run) until *abort
 * is set (NULL: give up after the bounds, as before); RAM writes happen
 * only while the vCPU may run, each under a read hold of `exec` (NULL: no
 * lock).  *suspend set (the toolstack suspends the guest) while the domain
 * is paused freezes a vCPU waiting for a command's completion
 * (GUEST_FROZEN, guest_bus.h); NULL: never. */
void guest_hv_set_guest(struct guest_bus *b, const atomic_bool *abort,
                        const atomic_bool *suspend, pthread_rwlock_t *exec);

/* Migration to another domain of the same hypervisor, as a toolstack
 * does it: it suspends the domain (SHUTDOWN_suspend, which Xen completes
 * only once no vCPU has an ioreq outstanding), the device model saves,
 * guest_hv_freeze waits until no access of this vCPU is in flight and
 * holds every further one, the toolstack copies the RAM into the new
 * domain, and guest_hv_move makes the vCPU continue there.  Accesses that
 * found the old domain suspended or gone (nothing was sent) and those
 * held by the freeze run again on the new domain, as a vCPU executes the
 * instruction it was suspended before; an interrupt wait moves with it.
 * Freeze and move from the same thread; a failed move (-1, reason in err)
 * leaves the vCPU on the old domain and releases the freeze.  Only a bus
 * made movable waits for a move (bounded by its timeout); on any other an
 * access to a suspended domain fails at once, as before. */
void guest_hv_set_movable(struct guest_bus *b, bool movable);
void guest_hv_freeze(struct guest_bus *b);
int guest_hv_move(struct guest_bus *b, uint32_t domid, char *err, size_t errlen);
/* Accesses and interrupt waits of this vCPU that found its domain
 * suspended or gone, and so waited for a move (or found it done). */
unsigned long guest_hv_move_waits(struct guest_bus *b);

#endif

/*
 * The ioreq server: Xen's channel for the guest's emulated I/O.  Set up in
 * the order Xen requires (create -> map pages -> map ranges -> enable ->
 * bind event channels), torn down in reverse, and every synchronous
 * request answered exactly once (an unanswered request hangs the vCPU).
 *
 * The server stays enabled while the dm is stopped: a disabled server sends
 * the guest's accesses to Xen's null handler (reads all-ones, writes lost).
 * Devices answer at register level while stopped instead.
 */
#ifndef DM_IOREQ_H
#define DM_IOREQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dm_guestmem.h"
#include "dm_xen.h"

/* Device dispatch.  Return 0 when handled, -ENOENT when no device claims
 * the address (a read then returns all-ones).  *data carries the write
 * value in and the read value out. */
typedef struct dm_ioreq_ops {
    int (*pio)(void *opaque, uint64_t port, unsigned size, bool write, uint64_t *data);
    int (*mmio)(void *opaque, uint64_t addr, unsigned size, bool write, uint64_t *data);
    int (*pci_config)(void *opaque, uint32_t sbdf, uint32_t reg, unsigned size, bool write,
                      uint64_t *data);
    void (*timeoffset)(void *opaque, int64_t offset);
    /* Runs after a request was handled and before it is answered: a guest
     * reset or poweroff must reach Xen before the vCPU continues. */
    void (*before_answer)(void *opaque);
} dm_ioreq_ops;

typedef struct dm_ioreq dm_ioreq;

/* create + map pages.  Nothing reaches the dm until dm_ioreq_enable. */
int dm_ioreq_create(dm_ioreq **out, dm_xen *x, dm_guestmem *gm, const dm_ioreq_ops *ops,
                    void *opaque, char *err, size_t errlen);
/* Register (or drop) what the dm emulates; end is inclusive. */
int dm_ioreq_map_range(dm_ioreq *io, bool mmio, uint64_t start, uint64_t end);
int dm_ioreq_unmap_range(dm_ioreq *io, bool mmio, uint64_t start, uint64_t end);
int dm_ioreq_map_pcidev(dm_ioreq *io, uint8_t bus, uint8_t dev, uint8_t fn);
int dm_ioreq_unmap_pcidev(dm_ioreq *io, uint8_t bus, uint8_t dev, uint8_t fn);
/* enable + bind every vCPU's event channel and the buffered-ring channel. */
int dm_ioreq_enable(dm_ioreq *io, char *err, size_t errlen);
/* Reverse order of everything done so far; safe at any point. */
void dm_ioreq_destroy(dm_ioreq *io);

/* The pollable fd; call dm_ioreq_handle when it is readable. */
int dm_ioreq_fd(const dm_ioreq *io);
/* Handles every notification that is pending.  Returns the number of
 * synchronous requests answered, or a negative errno on a fatal error. */
int dm_ioreq_handle(dm_ioreq *io);

/* Answers every slot that is READY now, notified or not (before a save
 * writes the device state, nothing already sent may be left behind). */
int dm_ioreq_scan(dm_ioreq *io);
/* A lost notification must not hang a vCPU forever: the main loop calls
 * this from a slow timer, and it answers a slot it found READY at the
 * previous call too without a notification answering it in between (a
 * slot seen READY once may have its notification merely queued).  Those
 * count as rescued.  The number answered, or a negative errno. */
int dm_ioreq_rescue(dm_ioreq *io);

unsigned dm_ioreq_nr_vcpus(const dm_ioreq *io);

typedef struct dm_ioreq_stats {
    uint64_t pio, mmio, pci_config, timeoffset, invalidate, buffered, unclaimed, bad;
    uint64_t rescued;                 /* answered by a scan or rescue, not by a notification */
} dm_ioreq_stats;
void dm_ioreq_get_stats(const dm_ioreq *io, dm_ioreq_stats *out);

#endif

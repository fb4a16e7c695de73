/*
 * Access to guest RAM through foreign mappings, with a map cache (mapping a
 * frame costs a hypercall) and log-dirty reporting: Xen's dirty bitmap does
 * not see writes made through foreign mappings, so every page the dm writes
 * while log-dirty is on is reported with modified_memory, or a live
 * migration would copy stale pages.
 */
#ifndef DM_GUESTMEM_H
#define DM_GUESTMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dm_xen.h"

typedef struct dm_guestmem dm_guestmem;

dm_guestmem *dm_guestmem_new(dm_xen *x);
void dm_guestmem_free(dm_guestmem *gm);

/* Copy between guest-physical memory and a buffer; the copy is split at
 * page boundaries.  -EFAULT when a frame cannot be mapped (nothing is
 * partially reported as success: the caller treats the access as failed). */
int dm_guestmem_read(dm_guestmem *gm, uint64_t gpa, void *buf, size_t len);
int dm_guestmem_write(dm_guestmem *gm, uint64_t gpa, const void *buf, size_t len);

void dm_guestmem_set_logdirty(dm_guestmem *gm, bool on);
bool dm_guestmem_logdirty(const dm_guestmem *gm);
/* IOREQ_TYPE_INVALIDATE: the guest's p2m changed; drop every mapping. */
void dm_guestmem_invalidate(dm_guestmem *gm);

typedef struct dm_guestmem_stats {
    uint64_t maps, hits, bytes_read, bytes_written, pages_reported;
} dm_guestmem_stats;
void dm_guestmem_get_stats(const dm_guestmem *gm, dm_guestmem_stats *out);

#endif

/*
 * The map cache: guest RAM is mapped in 1 MiB buckets (256 frames), kept in
 * a small direct-mapped table.  A bucket that straddles a hole keeps its
 * per-frame errors, so an access to the hole fails cleanly while the rest
 * of the bucket stays usable.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "dm_guestmem.h"
#include "dm_log.h"

#define PAGE_SHIFT 12
#define PAGE_SIZE (1u << PAGE_SHIFT)
#define BUCKET_SHIFT 8                      /* frames per bucket: 256 = 1 MiB */
#define BUCKET_FRAMES (1u << BUCKET_SHIFT)
#define NBUCKETS 64

typedef struct bucket {
    bool valid;
    uint64_t index;                         /* gfn >> BUCKET_SHIFT */
    uint8_t *va;
    int err[BUCKET_FRAMES];
} bucket;

struct dm_guestmem {
    dm_xen *x;
    bool logdirty;
    bucket buckets[NBUCKETS];
    dm_guestmem_stats stats;
};

dm_guestmem *dm_guestmem_new(dm_xen *x)
{
    dm_guestmem *gm = calloc(1, sizeof(*gm));
    if (gm)
        gm->x = x;
    return gm;
}

static void drop(dm_guestmem *gm, bucket *b)
{
    if (b->valid && b->va)
        xenforeignmemory_unmap(gm->x->fmem, b->va, BUCKET_FRAMES);
    b->valid = false;
    b->va = NULL;
}

void dm_guestmem_invalidate(dm_guestmem *gm)
{
    for (unsigned i = 0; i < NBUCKETS; i++)
        drop(gm, &gm->buckets[i]);
}

void dm_guestmem_free(dm_guestmem *gm)
{
    if (!gm)
        return;
    dm_guestmem_invalidate(gm);
    free(gm);
}

/* The host address of one guest frame, mapping its bucket if needed. */
static uint8_t *frame_va(dm_guestmem *gm, uint64_t gfn)
{
    uint64_t index = gfn >> BUCKET_SHIFT;
    bucket *b = &gm->buckets[index % NBUCKETS];
    if (!b->valid || b->index != index) {
        drop(gm, b);
        xen_pfn_t pfns[BUCKET_FRAMES];
        for (unsigned i = 0; i < BUCKET_FRAMES; i++)
            pfns[i] = (xen_pfn_t)((index << BUCKET_SHIFT) + i);
        void *va = xenforeignmemory_map(gm->x->fmem, gm->x->domid, PROT_READ | PROT_WRITE,
                                        BUCKET_FRAMES, pfns, b->err);
        if (!va) {
            dm_debug("mapping guest frames 0x%llx-0x%llx failed: %s",
                     (unsigned long long)(index << BUCKET_SHIFT),
                     (unsigned long long)((index << BUCKET_SHIFT) + BUCKET_FRAMES - 1),
                     strerror(errno));
            return NULL;
        }
        b->valid = true;
        b->index = index;
        b->va = va;
        gm->stats.maps++;
    } else {
        gm->stats.hits++;
    }
    unsigned off = (unsigned)(gfn & (BUCKET_FRAMES - 1));
    return b->err[off] ? NULL : b->va + ((size_t)off << PAGE_SHIFT);
}

static int copy(dm_guestmem *gm, uint64_t gpa, void *buf, size_t len, bool write)
{
    if (len && gpa + len < gpa)
        return -EFAULT;                     /* wraps the address space */
    uint8_t *p = buf;
    uint64_t first = gpa >> PAGE_SHIFT, last = len ? (gpa + len - 1) >> PAGE_SHIFT : first;
    while (len) {
        size_t off = gpa & (PAGE_SIZE - 1);
        size_t chunk = PAGE_SIZE - off < len ? PAGE_SIZE - off : len;
        uint8_t *va = frame_va(gm, gpa >> PAGE_SHIFT);
        if (!va)
            return -EFAULT;
        if (write)
            memcpy(va + off, p, chunk);
        else
            memcpy(p, va + off, chunk);
        p += chunk;
        gpa += chunk;
        len -= chunk;
    }
    if (write && gm->logdirty) {
        uint32_t nr = (uint32_t)(last - first + 1);
        if (xendevicemodel_modified_memory(gm->x->dmod, gm->x->domid, first, nr) < 0)
            dm_warn("modified_memory(0x%llx, %u) failed: %s; a live migration may copy a stale page",
                    (unsigned long long)first, nr, strerror(errno));
        else
            gm->stats.pages_reported += nr;
    }
    return 0;
}

int dm_guestmem_read(dm_guestmem *gm, uint64_t gpa, void *buf, size_t len)
{
    int r = copy(gm, gpa, buf, len, false);
    if (r == 0)
        gm->stats.bytes_read += len;
    return r;
}

int dm_guestmem_write(dm_guestmem *gm, uint64_t gpa, const void *buf, size_t len)
{
    int r = copy(gm, gpa, (void *)buf, len, true);
    if (r == 0)
        gm->stats.bytes_written += len;
    return r;
}

void dm_guestmem_set_logdirty(dm_guestmem *gm, bool on)
{
    gm->logdirty = on;
}

bool dm_guestmem_logdirty(const dm_guestmem *gm)
{
    return gm->logdirty;
}

void dm_guestmem_get_stats(const dm_guestmem *gm, dm_guestmem_stats *out)
{
    *out = gm->stats;
}

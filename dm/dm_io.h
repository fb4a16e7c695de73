/*
 * I/O spaces: the guest's port space and its MMIO space as the dm sees
 * them.  A device registers an address range with read/write callbacks;
 * the ioreq module dispatches every access by address.  An access no range
 * claims is "unclaimed": the caller answers a read with all-ones (what a
 * bus with nothing on it returns) and drops a write.
 *
 * Listeners hear every register and unregister, so the ioreq module can
 * map the range in Xen (xendevicemodel_map_io_range_to_ioreq_server) when
 * a device appears or a PCI BAR moves, and unmap it when it goes away.
 *
 * [main] throughout: one thread registers and dispatches.
 */
#ifndef DM_IO_H
#define DM_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum dm_io_kind { DM_IO_PORT, DM_IO_MMIO } dm_io_kind;

/* Sizes a range accepts, as a bit mask of byte counts. */
#define DM_IO_SIZE_1 (1u << 1)
#define DM_IO_SIZE_2 (1u << 2)
#define DM_IO_SIZE_4 (1u << 4)
#define DM_IO_SIZE_8 (1u << 8)
#define DM_IO_SIZES_ALL (DM_IO_SIZE_1 | DM_IO_SIZE_2 | DM_IO_SIZE_4 | DM_IO_SIZE_8)

/* offset is relative to the range's base; value carries size bytes.  An
 * access never crosses the range's end: dispatch guarantees it. */
typedef struct dm_io_ops {
    uint64_t (*read)(void *opaque, uint64_t offset, unsigned size);
    void (*write)(void *opaque, uint64_t offset, uint64_t value, unsigned size);
    /* DM_IO_SIZE_* mask; 0 means all.  An access of another size is
     * answered by dispatch (read all-ones, write dropped) and counted in
     * `rejected` without reaching the device. */
    unsigned sizes;
} dm_io_ops;

typedef struct dm_io_space dm_io_space;
typedef struct dm_io_range dm_io_range;

typedef struct dm_io_range_stats {
    uint64_t reads, writes, rejected;
} dm_io_range_stats;

typedef struct dm_io_space_stats {
    uint64_t unclaimed_reads, unclaimed_writes;
    uint64_t bad_size;            /* size not 1/2/4/8, or the access wraps the space */
} dm_io_space_stats;

/* A space of `kind`: ports 0..0xffff, MMIO the whole 64-bit space.
 * NULL with errno on failure. */
dm_io_space *dm_io_space_new(dm_io_kind kind);
/* Frees the space and every range still in it (listeners are not told:
 * at teardown the ioreq server is destroyed as a whole). */
void dm_io_space_free(dm_io_space *s);
dm_io_kind dm_io_space_kind(const dm_io_space *s);
const char *dm_io_kind_name(dm_io_kind kind);   /* "port" | "mmio" */

/* ------------------------------------------------------------ listeners */

/* Told after a range is inserted (added = true) and before it is removed.
 * An add listener returning < 0 makes the registration fail: the range is
 * removed again (earlier listeners hear the removal) and the error returned.
 * Removal results are logged only: the range goes away regardless. */
typedef int (*dm_io_listener_fn)(void *opaque, dm_io_kind kind, bool added, uint64_t base,
                                 uint64_t len, const char *name);

/* With replay, fn first hears every range already registered, lowest
 * first; a failure there is returned and the listener is not added.
 * -ENOSPC beyond DM_IO_MAX_LISTENERS. */
#define DM_IO_MAX_LISTENERS 4
int dm_io_listener_add(dm_io_space *s, dm_io_listener_fn fn, void *opaque, bool replay);
int dm_io_listener_del(dm_io_space *s, dm_io_listener_fn fn, void *opaque);

/* --------------------------------------------------------------- ranges */

/* Claims [base, base + len).  name is copied (for logs and errors).
 * Errors: -EINVAL (len 0, range past the space's limit, NULL ops or a
 * missing read/write callback), -EEXIST (overlaps a range; the log names
 * it), -ENOMEM, or a listener's error.  *out may be NULL. */
int dm_io_register(dm_io_space *s, const char *name, uint64_t base, uint64_t len,
                   const dm_io_ops *ops, void *opaque, dm_io_range **out);
/* Removes a range and frees it; NULL is a no-op.  Safe from inside the
 * range's own callback (dispatch does not touch the range afterwards). */
void dm_io_unregister(dm_io_space *s, dm_io_range *r);

uint64_t dm_io_range_base(const dm_io_range *r);
uint64_t dm_io_range_len(const dm_io_range *r);
const char *dm_io_range_name(const dm_io_range *r);
void dm_io_range_get_stats(const dm_io_range *r, dm_io_range_stats *out);

/* The range containing addr, or NULL. */
dm_io_range *dm_io_find(const dm_io_space *s, uint64_t addr);
size_t dm_io_count(const dm_io_space *s);

/* ------------------------------------------------------------- dispatch */

/* Returns 0 when a range claimed the access; -ENOENT when none did (no
 * range, or the access crosses a range's end); -EINVAL for a size other
 * than 1/2/4/8.  On any non-zero return a read's *value is all-ones of
 * `size` bytes (all 64 bits for a bad size).  -EINVAL also for an access
 * wrapping past the end of the space.  A claimed read is masked to
 * `size` bytes. */
int dm_io_read(dm_io_space *s, uint64_t addr, unsigned size, uint64_t *value);
int dm_io_write(dm_io_space *s, uint64_t addr, unsigned size, uint64_t value);

void dm_io_get_stats(const dm_io_space *s, dm_io_space_stats *out);

/* All-ones of size bytes (size 1..8); the answer to an unclaimed read. */
uint64_t dm_io_ones(unsigned size);

#endif

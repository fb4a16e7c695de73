/*
 * Block backends: one raw image per guest disk, read and written by worker
 * threads so a slow disk never blocks the main loop, with QEMU's error
 * policies (rerror/werror), an advisory image lock and an injection layer
 * in the spirit of QEMU's blkdebug.
 *
 * Threading.  Every function here is [main] (the dm's main loop thread)
 * except where marked.  Requests run on the backend's worker threads; their
 * completions are handed back to the main loop through a dm_event and the
 * callback runs there, so device code never sees another thread.
 *
 * Buffers.  A request reads into / writes from a buffer the caller owns,
 * which must stay valid and untouched until the callback ran (or
 * dm_blk_drain() / dm_blk_close() returned).  Devices use bounce buffers:
 * guest RAM is copied in before a write is submitted and copied out after a
 * read completed, in the main loop, so no worker thread ever touches guest
 * memory and "no DMA into guest RAM while stopped" is decided in one place.
 *
 * Errors from a request reach the device as `ret` = -errno in the callback;
 * the device asks dm_blk_error_action() what to do with it and, for STOP,
 * parks its command and calls dm_blk_report_error() (which emits
 * BLOCK_IO_ERROR and then requests the io-error stop, QEMU's order).
 */
#ifndef DM_BLK_H
#define DM_BLK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dm_config.h"
#include "dm_loop.h"
#include "runstate.h"

#define DM_BLK_SECTOR 512u

typedef struct dm_blk dm_blk;
typedef struct dm_blk_req dm_blk_req;

typedef enum dm_blk_op {
    DM_BLK_READ,
    DM_BLK_WRITE,
    DM_BLK_FLUSH,
} dm_blk_op;

/* What a device does with a failed request (QEMU's BlockErrorAction). */
typedef enum dm_blk_action {
    DM_BLK_ACTION_REPORT,   /* fail the command towards the guest */
    DM_BLK_ACTION_IGNORE,   /* complete the command as if it had succeeded */
    DM_BLK_ACTION_STOP,     /* park the command; the VM stops in io-error */
} dm_blk_action;

/* BLOCK_IO_ERROR as QMP and the xenstore event stream carry it. */
typedef struct dm_blk_io_error {
    const char *device;      /* the disk's name (vdev: hda, sda, ...) */
    const char *node_name;   /* the backend's node name ("rsdm-hda") */
    bool is_read;            /* operation "read" or "write" (flush: write) */
    dm_blk_action action;
    bool nospace;            /* errno was ENOSPC */
    int err;                 /* positive errno */
} dm_blk_io_error;
typedef void (*dm_blk_event_fn)(void *opaque, const dm_blk_io_error *e);

typedef struct dm_blk_opts {
    const char *path;        /* the raw image */
    const char *name;        /* the disk's name for messages and events */
    bool read_only;
    dm_cache_mode cache;     /* writeback: page cache, flush = fdatasync;
                              * none: O_DIRECT where the filesystem allows
                              * (falls back to buffered, logged), flush =
                              * fdatasync; unsafe: flush is a no-op */
    dm_err_action rerror;    /* DM_ERR_ENOSPC is not valid for reads */
    dm_err_action werror;
    const char *inject;      /* injection rules (docs/rsdm-config.md), or NULL */
    unsigned workers;        /* worker threads; 0 = default (8) */
    rs_vm *vm;               /* the io-error stop goes here */
    dm_blk_event_fn on_event;/* BLOCK_IO_ERROR sink, may be NULL */
    void *event_opaque;
} dm_blk_opts;

/*
 * Opens the image (regular file or block device; a size that is not a
 * whole number of sectors, another image format's magic (qcow2, vmdk,
 * vhdx, vdi, qed) or an unreadable file is refused with a message naming
 * the disk), takes the advisory lock (OFD lock: exclusive for read-write,
 * shared for read-only; a lock held elsewhere is refused naming the
 * image), parses the injection rules and starts the workers.  NULL with
 * err set.
 */
dm_blk *dm_blk_open(dm_loop *loop, const dm_blk_opts *opts, char *err, size_t errlen);
/* Waits for every request in flight (their callbacks are NOT called),
 * stops the workers, releases the lock and closes the image.  Before
 * dm_loop_free: the backend's dm_event belongs to the loop. */
void dm_blk_close(dm_blk *b);

const char *dm_blk_name(const dm_blk *b);
uint64_t dm_blk_sectors(const dm_blk *b);
bool dm_blk_read_only(const dm_blk *b);
/* cache=none got O_DIRECT (false: the page cache, also after a fallback). */
bool dm_blk_direct(const dm_blk *b);

/* The callback: ret is 0 or -errno; runs in the main loop. */
typedef void (*dm_blk_done_fn)(void *opaque, int ret);

/*
 * Queues a request: [offset, offset+len) in bytes (both multiples of
 * DM_BLK_SECTOR, inside the image); FLUSH ignores offset/buf/len.  The
 * callback runs once, later (never from inside this call).  Returns the
 * request (usable with dm_blk_cancel) or NULL with errno (EINVAL for a bad
 * range, EROFS for a write to a read-only disk, ENOMEM).
 */
dm_blk_req *dm_blk_submit(dm_blk *b, dm_blk_op op, uint64_t offset, void *buf, size_t len,
                          dm_blk_done_fn done, void *opaque);
/* Forgets a request's callback: it will not be called.  The request may
 * still be running on a worker: the buffer stays in use until
 * dm_blk_drain() returns. */
void dm_blk_cancel(dm_blk_req *r);
/* Waits until nothing is in flight and runs every pending callback now,
 * in this thread.  A change-state handler calls it when the VM stops, so
 * that no completion (and no DMA into guest RAM) happens after STOP. */
void dm_blk_drain(dm_blk *b);
unsigned dm_blk_in_flight(const dm_blk *b);

/* QEMU's table: stop → STOP; enospc → STOP for ENOSPC else REPORT;
 * report → REPORT; ignore → IGNORE.  `err` is a positive errno. */
dm_blk_action dm_blk_error_action(const dm_blk *b, bool is_read, int err);
/* Emits BLOCK_IO_ERROR for the action and, for STOP, requests the io-error
 * stop with the event emitted inside the request's prepare/commit window
 * (rs_request_vmstop_prepare/commit), so STOP always follows the event. */
void dm_blk_report_error(dm_blk *b, dm_blk_action action, bool is_read, int err);

/* The image lock: released on a live save of a stopped VM (the destination
 * may take it), re-taken before the VM runs again.  -errno with err set
 * when another process holds it. */
int dm_blk_lock_release(dm_blk *b);
int dm_blk_lock_acquire(dm_blk *b, char *err, size_t errlen);
bool dm_blk_locked(const dm_blk *b);

typedef struct dm_blk_stats {
    uint64_t reads, writes, flushes;          /* completed requests */
    uint64_t bytes_read, bytes_written;
    uint64_t errors;                          /* completed with ret < 0 */
    uint64_t injected;                        /* of which injected */
    unsigned in_flight, max_in_flight;        /* concurrent at the workers */
    uint64_t out_of_order;                    /* completed before an older request */
} dm_blk_stats;
void dm_blk_get_stats(const dm_blk *b, dm_blk_stats *out);

/*
 * Injection (syntax in docs/block.md): `rules` replaces the backend's rule
 * set (NULL or "" clears it); a bad rule is -EINVAL with err naming the rule
 * and the reason, and the old set stays.  Replacing or clearing the set cuts
 * short every injected delay in progress (the request then goes on: its
 * injected errno, if any, else its I/O).
 */
int dm_blk_inject_set(dm_blk *b, const char *rules, char *err, size_t errlen);
void dm_blk_inject_clear(dm_blk *b);
/* Only checks the syntax (the config parser uses it).  [any] */
int dm_blk_inject_check(const char *rules, char *err, size_t errlen);

#endif

/*
 * The guest's disks as rsdm attaches them, whichever dialect named them:
 * the traditional dialect reads them from the guest's vbd backends in
 * xenstore (xsc_disks_read), the qemu-xen dialect from `-drive`/`-device`
 * on the command line (dm_args).  Both fill dm_disk_spec entries; the
 * disk module opens one block backend per entry (dm/blk.h) and puts it on
 * the PIIX3 IDE function (IDE units 0-3) or the ICH9 AHCI function (ports
 * 0-5), with the error policies and cache mode from the entry, else from
 * the config file's `[disk NAME]` section, else QEMU's defaults.
 */
#ifndef DM_DISKS_H
#define DM_DISKS_H

#include <stdbool.h>
#include <stddef.h>

#include "blk.h"
#include "dm_config.h"
#include "dm_guestmem.h"
#include "dm_io.h"
#include "dm_irq.h"
#include "dm_loop.h"
#include "dm_pci.h"
#include "dm_pci_msi.h"
#include "dm_statefile.h"
#include "runstate.h"
#include "xsc_disks.h"

#define DM_DISKS_MAX 16
#define DM_DISK_PATH_MAX 1024

typedef enum dm_disk_bus {
    DM_DISK_IDE,             /* PIIX3 IDE 00:01.1, unit 0 = primary master .. 3 */
    DM_DISK_AHCI,            /* ICH9 AHCI, port 0-5 */
} dm_disk_bus;

typedef struct dm_disk_spec {
    char name[16];           /* vdev ("hda", "sdb") or the -drive id */
    char path[DM_DISK_PATH_MAX];
    char format[16];         /* "" or "raw"; anything else is refused */
    dm_disk_bus bus;
    unsigned unit;           /* IDE unit or AHCI port */
    bool read_only;
    bool cdrom;              /* refused: rsdm has no ATAPI */
    /* Set from the command line (qemu-xen `-drive rerror=,werror=,cache=`);
     * unset fields come from the config file, then QEMU's defaults. */
    bool has_rerror, has_werror, has_cache;
    dm_err_action rerror, werror;
    dm_cache_mode cache;
} dm_disk_spec;

typedef struct dm_disk_list {
    size_t n;
    dm_disk_spec disk[DM_DISKS_MAX];
} dm_disk_list;

/* ------------------------------------------------------------- module */

typedef struct dm_disks dm_disks;

typedef struct dm_disks_cfg {
    dm_loop *loop;
    dm_io_space *pio;
    dm_pci_bus *pci;
    dm_irq *irq;
    rs_vm *vm;
    dm_guestmem *gm;
    dm_state_reg *state;         /* may be NULL: no save/load */
    const dm_config *config;     /* `[disk NAME]` sections; NULL: none */
    /* BLOCK_IO_ERROR of every disk (QMP event, xenstore, ...); may be NULL. */
    dm_blk_event_fn on_event;
    void *event_opaque;
    /* MSI for the AHCI function (dm_pci_msi_inject_xen with the dm_xen);
     * NULL: INTx only. */
    dm_pci_msi_inject_fn inject_msi;
    void *msi_opaque;
} dm_disks_cfg;

/*
 * Creates the disk controllers the machine always has (PIIX3 IDE at
 * 00:01.1, as QEMU's xenfv machine, with or without disks) and a
 * change-state handler that re-takes the image locks before the VM runs
 * again.  Negative errno with err set.  [main]
 */
int dm_disks_new(const dm_disks_cfg *cfg, dm_disks **out, char *err, size_t errlen);
/* Detaches every disk (cancelling what is in flight, closing the images)
 * and removes the controllers.  [main] */
void dm_disks_free(dm_disks *ds);

/*
 * Opens one block backend per entry and puts it on its controller, before
 * the guest runs.  Refused with a message naming the disk: an image
 * format other than raw, a CD-ROM (rsdm has no ATAPI), an IDE unit beyond
 * 3 or an AHCI port beyond 5, or one already taken, an
 * image that cannot be opened or locked.  On failure nothing of `list` stays
 * attached.  The ICH9 AHCI function is created with the first AHCI disk.
 * [main]
 */
int dm_disks_attach(dm_disks *ds, const dm_disk_list *list, char *err, size_t errlen);

/* The traditional dialect: the guest's vbd disks from xenstore as specs
 * (no policies set: they come from the config file). */
void dm_disks_from_xenstore(const xsc_disk_list *in, dm_disk_list *out);

/* The policies and cache mode a spec ends up with: the spec's own, else
 * the config file's section for its name, else QEMU's defaults (rerror
 * report, werror enospc, cache writeback). */
void dm_disks_resolve(const dm_disk_spec *spec, const dm_config *config, dm_err_action *rerror,
                      dm_err_action *werror, dm_cache_mode *cache);

size_t dm_disks_count(const dm_disks *ds);
dm_blk *dm_disks_blk(const dm_disks *ds, size_t i);
const dm_disk_spec *dm_disks_spec(const dm_disks *ds, size_t i);
/* Replaces every disk's injection rules (docs/block.md) with those of its
 * `[disk NAME]` section in config (none: cleared).  All rules are checked
 * first: on a bad one nothing changes and -EINVAL names it.  [main] */
int dm_disks_set_inject(dm_disks *ds, const dm_config *config, char *err, size_t errlen);
/* Commands parked by an io-error stop on every controller. */
unsigned dm_disks_parked(const dm_disks *ds);

/*
 * Image locks around a save: flush and release every lock after a live
 * save of a stopped VM (the destination may then open the images), and re-take them
 * before the VM runs again.  The module's own start handler re-takes them
 * too; `cont` and `retry` (either dialect) call dm_disks_lock_acquire
 * first, through librunstate's activate hook, and fail with its message.
 * -errno with err naming the image another process holds.  [main]
 */
void dm_disks_lock_release(dm_disks *ds);
int dm_disks_lock_acquire(dm_disks *ds, char *err, size_t errlen);

#endif

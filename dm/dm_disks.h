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

#include "dm_config.h"

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

#endif

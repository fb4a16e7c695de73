/*
 * rsdm's config file (`--config FILE`, format in docs/rsdm-config.md):
 * `key = value` lines, `#` comment lines, and one `[disk NAME]` section per
 * disk for what libxl cannot pass to a traditional device model — the
 * rerror/werror policies and the cache mode — and for fault injection.
 *
 *   log-level = info
 *   save-dir = /var/lib/xen
 *
 *   [disk hda]
 *   werror = stop
 *   rerror = report
 *
 * Parsing is strict: an unknown section or key, a duplicate, a bad value,
 * a line that is not `key = value`, a NUL byte or an overlong line is an
 * error naming the file and line.  The command line overrides the file.
 */
#ifndef DM_CONFIG_H
#define DM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "dm_log.h"

#define DM_CONFIG_MAX_DISKS 16
#define DM_CONFIG_MAX_SIZE (64 * 1024)
#define DM_CONFIG_MAX_LINE 1024
#define DM_CONFIG_MAX_INJECT 1024

/* QEMU's BlockdevOnError values (werror=enospc stops only on ENOSPC). */
typedef enum dm_err_action {
    DM_ERR_REPORT,
    DM_ERR_IGNORE,
    DM_ERR_ENOSPC,
    DM_ERR_STOP,
} dm_err_action;

typedef enum dm_cache_mode {
    DM_CACHE_WRITEBACK,
    DM_CACHE_NONE,
    DM_CACHE_UNSAFE,
} dm_cache_mode;

typedef struct dm_config_disk {
    char name[16];                /* the guest's vdev name: hda, hdb, sda, ... */
    dm_err_action rerror;         /* default report (QEMU) */
    dm_err_action werror;         /* default enospc (QEMU) */
    dm_cache_mode cache;          /* default writeback (what libxl asks of qemu-xen) */
    char inject[DM_CONFIG_MAX_INJECT]; /* injection rules (docs/block.md), "" for none;
                                   * several `inject` lines are joined with "; " */
    unsigned line;                /* where the section starts */
} dm_config_disk;

typedef struct dm_config {
    bool has_log_level;
    dm_log_level log_level;
    bool has_save_dir;
    char save_dir[256];
    dm_config_disk disks[DM_CONFIG_MAX_DISKS];
    unsigned ndisks;
} dm_config;

/* Empty config: nothing set, no disks. */
void dm_config_init(dm_config *cfg);

/* Parses text (len bytes, need not be NUL-terminated); `name` is used in
 * messages ("rsdm.conf:12: ...").  On error cfg is left as it was and
 * -EINVAL returned with err set. */
int dm_config_parse(dm_config *cfg, const char *text, size_t len, const char *name, char *err,
                    size_t errlen);
/* Reads and parses a file of at most DM_CONFIG_MAX_SIZE bytes. */
int dm_config_load(dm_config *cfg, const char *path, char *err, size_t errlen);

/* The disk's settings: its section, or QEMU's defaults when it has none. */
dm_config_disk dm_config_disk_get(const dm_config *cfg, const char *name);

const char *dm_err_action_name(dm_err_action a);
const char *dm_cache_mode_name(dm_cache_mode m);

#endif

/*
 * xsc_disks: the guest's disks, read from its vbd devices in xenstore the
 * way qemu-traditional does (reference §1.1 "Disks", §2.1), for the dm's
 * IDE/AHCI devices.
 *
 * The set of disks comes from the backend directories of trusted backend
 * domains (/local/domain/<b>/backend/vbd/<domid>/<devid>, written by the
 * toolstack) and every disk's links are checked both ways: the backend's
 * `frontend` must name /local/domain/<domid>/device/vbd/<devid> and that
 * frontend's `backend` (and `backend-id`, when present) must point back.
 * The frontend directory belongs to the guest, so its values are only ever
 * compared, never followed: a guest cannot make the dm open a file some
 * other domain names.  `params`, `type`, `mode`, `dev` and `device-type`
 * are then read from the backend and validated (text only, bounded, known
 * values).  A disk that fails any check is skipped with a log line naming
 * the node and why; the others are kept.
 */
#ifndef XSC_DISKS_H
#define XSC_DISKS_H

#include <stdbool.h>
#include <stddef.h>

#include "xsc_log.h"
#include "xsc_paths.h"

struct xs_handle;

#define XSC_DISKS_MAX 16
#define XSC_DISK_PATH_MAX 1024
#define XSC_DISK_TRUSTED_MAX 4

typedef enum xsc_disk_bus {
    XSC_DISK_IDE,     /* dev hd[a-d] or xvd[a-d]: IDE unit 0-3 */
    XSC_DISK_SATA,    /* dev sd[a-z]: AHCI port 0-25 */
} xsc_disk_bus;

typedef struct xsc_disk {
    unsigned devid;                    /* vbd device id (directory name) */
    unsigned backend_domid;
    char backend[XSC_PATH_LEN];        /* backend directory */
    char frontend[XSC_PATH_LEN];       /* frontend directory */
    char dev[16];                      /* "hda", "xvda", "sdb" */
    xsc_disk_bus bus;
    unsigned unit;                     /* IDE: 0 = primary master ... 3; SATA: port */
    char type[16];                     /* backend `type`: "phy", "file", "qdisk", ...; "" if absent */
    char format[16];                   /* params prefix ("aio", "raw", "qcow2"); "" if none */
    char path[XSC_DISK_PATH_MAX];      /* params without prefix; "" = empty CD-ROM drive */
    bool readonly;                     /* mode "r" */
    bool cdrom;                        /* device-type "cdrom" */
} xsc_disk;

typedef struct xsc_disk_list {
    size_t n;
    xsc_disk disk[XSC_DISKS_MAX];      /* IDE first, then SATA, by unit */
    size_t skipped;                    /* entries refused (each logged) */
} xsc_disk_list;

typedef struct xsc_disks_opts {
    /* Backend domains whose backend directories are trusted; none given:
     * dom0 only. */
    unsigned trusted[XSC_DISK_TRUSTED_MAX];
    size_t ntrusted;
} xsc_disks_opts;

/* Read the disks of guest `domid`.  0 with *out filled (possibly empty),
 * or a negative errno when xenstore could not be read at all.  Invalid
 * disks are skipped, counted in out->skipped and logged. */
int xsc_disks_read(struct xs_handle *xs, unsigned domid, const xsc_disks_opts *opts,
                   const xsc_logger *lg, xsc_disk_list *out);

/* The validation rules on their own, for the fuzzer and unit tests. */
/* dev name -> bus and unit; -EINVAL for anything else. */
int xsc_disk_parse_dev(const char *dev, size_t len, xsc_disk_bus *bus, unsigned *unit);
/* params -> format prefix and absolute path; -EINVAL with why filled. */
int xsc_disk_parse_params(const char *params, size_t len, bool cdrom, char *format,
                          size_t format_len, char *path, size_t path_len);
/* Text a node may hold: no NUL, no control bytes, at most max bytes. */
bool xsc_disk_value_ok(const char *v, size_t len, size_t max);

#endif /* XSC_DISKS_H */

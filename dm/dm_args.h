/*
 * rsdm's command line.
 *
 * libxl starts a device model with one of two argv dialects
 * (reference xen-dm-protocol.md §4.2-§4.5).  This parser speaks the
 * traditional one (libxl__build_device_model_args_old: `-d DOMID`,
 * `-domain-name`, `-serial`, `-loadvm`, `-M xenfv`, ...) plus rsdm's own
 * long options (`--help`, `--version`, `--log-level`, `--save-dir`,
 * `--config`).  Options the traditional qemu-dm accepted but rsdm does not
 * serve (display, USB, sound, NICs, ...) are accepted and listed as ignored,
 * so a stock libxl command line starts.
 *
 * Every option is one entry of a table (dialects it belongs to, whether it
 * takes a value, its handler, its help line).  The qemu-xen dialect
 * (libxl__build_device_model_args_new, reference §4.3, and XenServer's
 * qemu-wrapper, §5.4) is recognised by options only it uses (`-xen-domid`,
 * `-chardev`, `-mon`, `-qmp`, `-S`, `-incoming`, `-machine`, ...); its
 * handlers live in dm_args_qemu.c.  In that dialect QEMU's option strings
 * (`key=value,...`, `,,` for a literal comma) are parsed into fixed
 * buffers, so dm_args stays valid after argv is gone.
 *
 * Option spellings follow QEMU: `-opt` and `--opt` are the same, and a
 * value may be given as `--opt=value` or as the next argument.  Strings in
 * dm_args point into argv.
 */
#ifndef DM_ARGS_H
#define DM_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dm_disks.h"
#include "dm_log.h"

typedef enum dm_dialect {
    DM_DIALECT_TRADITIONAL = 1,
    DM_DIALECT_QEMU_XEN = 2,
} dm_dialect;

#define DM_DOMID_MAX 32751           /* DOMID_FIRST_RESERVED - 1 */
#define DM_VCPUS_MAX 128             /* HVM_MAX_VCPUS */
#define DM_ARGS_MAX_SERIAL 4
#define DM_ARGS_MAX_IGNORED 64
#define DM_ARGS_MAX_MONITORS 4       /* qmp_server's listener limit */
#define DM_ARGS_MAX_SOCKETS 8        /* -chardev socket,... before -mon binds them */
#define DM_ARGS_PATH_MAX 108         /* sizeof(sun_path) */
#define DM_ARGS_ID_MAX 64

/* A QMP monitor: a Unix socket rsdm creates, or a listening socket it
 * inherits (libxl's pre-opened fd with dm_restrict, the probe run). */
typedef struct dm_monitor {
    char id[DM_ARGS_ID_MAX];         /* chardev id; "qmp0", "qmp1" for -qmp */
    char path[DM_ARGS_PATH_MAX];     /* "" when fd >= 0 */
    int fd;                          /* -1 when path is set */
} dm_monitor;

typedef struct dm_args_ignored {
    const char *opt;                 /* the option without its dash, e.g. "vnc" */
    const char *value;               /* NULL for flags */
} dm_args_ignored;

typedef struct dm_args {
    dm_dialect dialect;
    int domid;                       /* -1 until -d */
    const char *domain_name;
    /* For dm_chardev_open; "none" (QEMU: no port there) is left to the
     * caller, which then creates no UART for that slot. */
    const char *serial[DM_ARGS_MAX_SERIAL];
    unsigned nserial;
    const char *loadvm;              /* restore file, NULL for a fresh start */
    const char *machine;             /* "xenfv" */
    unsigned vcpus;                  /* 1 unless -vcpus */
    const char *vcpu_avail;          /* "0x..." bitmap, NULL if not given */
    uint64_t ram_mb;                 /* 0 unless -m */
    bool acpi;
    bool net_none;

    /* qemu-xen dialect */
    bool start_paused;               /* -S: stay in prelaunch until `cont` */
    int incoming_fd;                 /* -incoming fd:N, -1 if none */
    bool probe;                      /* -machine none: libxl's capability probe */
    bool no_shutdown;                /* -no-shutdown (QEMU: shutdown=pause) */
    dm_monitor monitors[DM_ARGS_MAX_MONITORS];
    unsigned nmonitors;
    dm_disk_list disks;              /* -drive / -device, for the disk module */
    bool restrict_xen;               /* -xen-domid-restrict */
    const char *runas;               /* -runas / -run-with user=: "user[:group]" or "uid:gid" */
    const char *chroot_dir;          /* -chroot / -run-with chroot= */
    char runas_buf[DM_ARGS_ID_MAX];  /* -run-with user= copied out of its option string */
    char chroot_buf[DM_ARGS_PATH_MAX * 4];
    /* Parser state: sockets named by -chardev, bound by -mon; AHCI
     * controllers and if=none drives waiting for their -device. */
    struct dm_args_socket {
        char id[DM_ARGS_ID_MAX];
        char path[DM_ARGS_PATH_MAX];
        int fd;
        bool used;
    } sockets[DM_ARGS_MAX_SOCKETS];
    unsigned nsockets;
    char ahci_ids[2][DM_ARGS_ID_MAX];
    unsigned nahci;
    bool disk_pending[DM_DISKS_MAX]; /* if=none drive not yet placed by -device */

    /* rsdm's own */
    bool help, version;
    bool has_log_level;
    dm_log_level log_level;
    const char *save_dir;
    const char *config;

    dm_args_ignored ignored[DM_ARGS_MAX_IGNORED];
    unsigned nignored;
} dm_args;

/* Parses argv[1..argc-1] into a (reset first).  0 on success; -EINVAL with
 * err naming the option and what is wrong ("-d: '0x' is not a domain id
 * (1-32751)", "unknown option '-vcpu'; did you mean '-vcpus'?").  With
 * --help or --version set, the caller prints and exits; other checks
 * (e.g. the required -d / -xen-domid, except for the -machine none probe)
 * are skipped. */
int dm_args_parse(dm_args *a, int argc, char *const argv[], char *err, size_t errlen);

/* The help text: every option, served ones first. */
void dm_args_usage(FILE *out, const char *prog);

/* The qemu-xen options rsdm accepts, for QMP query-command-line-options
 * (libxl 4.20's probe looks for run-with and its chroot and user): name
 * and QEMU parameter names ("a,b", NULL when none).  Fills up to max and
 * returns how many exist. */
typedef struct dm_args_option {
    const char *name;
    const char *params;
} dm_args_option;
size_t dm_args_qemu_options(dm_args_option *out, size_t max);

/* One log line listing the options accepted but not served, if any. */
void dm_args_log_ignored(const dm_args *a);

#endif

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
 * (`-xen-domid`, `-chardev`, `-mon`, `-S`, `-incoming`, `-machine`, ...) is
 * recognised today and refused with a clear message; supporting it means
 * adding table entries, not restructuring.
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

#include "dm_log.h"

typedef enum dm_dialect {
    DM_DIALECT_TRADITIONAL = 1,
    DM_DIALECT_QEMU_XEN = 2,
} dm_dialect;

#define DM_DOMID_MAX 32751           /* DOMID_FIRST_RESERVED - 1 */
#define DM_VCPUS_MAX 128             /* HVM_MAX_VCPUS */
#define DM_ARGS_MAX_SERIAL 4
#define DM_ARGS_MAX_IGNORED 64

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
 * (e.g. the required -d) are skipped. */
int dm_args_parse(dm_args *a, int argc, char *const argv[], char *err, size_t errlen);

/* The help text: every option, served ones first. */
void dm_args_usage(FILE *out, const char *prog);

/* One log line listing the options accepted but not served, if any. */
void dm_args_log_ignored(const dm_args *a);

#endif

/*
 * What dm_args.c (the table and walker) and dm_args_qemu.c (the qemu-xen
 * dialect's handlers) share.  Not for other modules.
 */
#ifndef DM_ARGS_INTERNAL_H
#define DM_ARGS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "dm_args.h"

typedef struct dm_opt_spec dm_opt_spec;
typedef int (*dm_opt_fn)(dm_args *a, const dm_opt_spec *o, const char *opt, const char *val,
                         char *err, size_t errlen);

struct dm_opt_spec {
    const char *name;                /* without dashes */
    unsigned dialects;
    bool has_arg;
    dm_opt_fn handle;
    const char *arg_name;            /* for --help */
    const char *help;                /* NULL: ignored, listed apart */
    bool own;                        /* rsdm's own option, shown as --name */
    const char *params;              /* QEMU parameter names ("a,b,c") for
                                      * query-command-line-options, or NULL */
};

/* A decimal number in [min, max], nothing else (no sign, no spaces). */
bool dm_args_parse_uint(const char *s, unsigned long long min, unsigned long long max,
                        unsigned long long *out);
/* Records o as accepted-but-ignored with its value. */
int dm_args_add_ignored(dm_args *a, const dm_opt_spec *o, const char *opt, const char *val,
                        char *err, size_t errlen);
/* Every option handler has this signature. */
#define DM_OPT_HANDLER(fn)                                                                     \
    int fn(dm_args *a, const dm_opt_spec *o, const char *opt, const char *val, char *err,    \
           size_t errlen)

/* The guest's domain id, shared by -d and -xen-domid. */
DM_OPT_HANDLER(dm_args_h_domid);

/* qemu-xen dialect (dm_args_qemu.c). */
DM_OPT_HANDLER(dm_argq_chardev);
DM_OPT_HANDLER(dm_argq_mon);
DM_OPT_HANDLER(dm_argq_qmp);
DM_OPT_HANDLER(dm_argq_flag);      /* -S, -no-shutdown, -no-acpi, -xen-domid-restrict */
DM_OPT_HANDLER(dm_argq_incoming);
DM_OPT_HANDLER(dm_argq_machine);
DM_OPT_HANDLER(dm_argq_memory);
DM_OPT_HANDLER(dm_argq_smp);
DM_OPT_HANDLER(dm_argq_drive);
DM_OPT_HANDLER(dm_argq_device);
DM_OPT_HANDLER(dm_argq_runas);
DM_OPT_HANDLER(dm_argq_chroot);
DM_OPT_HANDLER(dm_argq_run_with);
DM_OPT_HANDLER(dm_argq_refuse);
/* After the walk: every -mon bound, every if=none drive placed, limits. */
int dm_argq_finish(dm_args *a, char *err, size_t errlen);

#endif

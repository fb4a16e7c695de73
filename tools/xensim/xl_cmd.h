/*
 * xl_cmd.h: `xensim xl`, a simulated xl that performs libxl 4.17's steps for the
 * qemu-xen-traditional dialect against the running simulator.
 */
#ifndef XENSIM_XL_CMD_H
#define XENSIM_XL_CMD_H

#include <stddef.h>
#include <stdio.h>

#define XL_MAX_DISKS 16
#define XL_MAX_ARGS 32

struct xl_disk {
    char target[256];  /* params: image path */
    char vdev[32];     /* hda, hdb, … */
    char format[16];   /* raw */
    int cdrom;         /* devtype=cdrom */
};

/* on_poweroff / on_reboot / on_crash: what xl's monitor does when the
 * domain shuts down with that reason (xl.cfg(5); the rename-restart and
 * coredump actions are not simulated). */
enum xl_action { XL_ACTION_DESTROY, XL_ACTION_RESTART, XL_ACTION_PRESERVE };

struct xl_cfg {
    char name[64];
    unsigned memory;   /* MiB */
    unsigned vcpus;
    char hdtype[16];   /* ide | ahci */
    char serial[128];
    char dm_override[512];          /* device_model_override */
    char dm_version[32];            /* qemu-xen-traditional (default) or qemu-xen */
    int dm_version_set;             /* given in the config (else xl's --dialect) */
    unsigned dm_restrict;           /* 1: qemu-xen only (libxl refuses it otherwise) */
    char dm_args_hvm[XL_MAX_ARGS][256];
    int n_dm_args_hvm;
    struct xl_disk disks[XL_MAX_DISKS];
    int n_disks;
    char workload[1024];            /* xensim_workload: the guest's workload spec */
    enum xl_action on_poweroff, on_reboot, on_crash;
};

/* Parse xl.cfg text (strict: unknown keys and bad syntax are errors).
 * On error returns -1 with "FILE:LINE: reason" in err. */
int xl_cfg_parse(const char *text, const char *fname, struct xl_cfg *cfg,
                 char *err, size_t errlen);

/* xl_workload.c: the simulated guest's side of create/save/restore.
 * Start (or, after a restore, resume) the workload in the running
 * simulator: the config's xensim_workload, default firmware + UART, with
 * the console taken from a `unix:PATH,server` serial.  0 or -1 (said). */
int xl_wl_start(const char *rundir, unsigned domid, const struct xl_cfg *cfg, int resume);
/* The guest suspends: its vCPU threads stop issuing accesses once the one
 * in flight completes, waited for at most timeout_ms (an access to a dm
 * that died never completes).  0 also when there is no workload. */
int xl_wl_stop(const char *rundir, unsigned domid, int timeout_ms);
/* The guest carries on in the same domain (save -c, a failed migration):
 * its workload resumes from guest RAM.  0 also when it had none. */
int xl_wl_resume(const char *rundir, unsigned domid);

/* `xensim xl …` (argv[0] is "xl").  Returns the exit status. */
int xl_main(int argc, char **argv);

#endif

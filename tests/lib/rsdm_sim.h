/*
 * A real rsdm-sim on a simulated host, for tests and benchmarks: xenstore
 * from a `xensim run` daemon, the hypervisor in this process
 * (tests/lib/xsim_emu), one domain, and rsdm-sim as a child process started
 * as libxl starts it (traditional dialect), up to `running` and unpaused.
 * Every wait is bounded and woken by xenstore watch events.
 */
#ifndef RSDM_SIM_H
#define RSDM_SIM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct hv_domain;
struct xs_handle;

typedef struct rsdm_sim {
    char dir[64];                      /* temporary directory, removed at the end */
    char bin[4096];                    /* $RSDM_BUILD/bin */
    pid_t dm;                          /* rsdm-sim, 0 once reaped */
    uint32_t dom;
    struct hv_domain *d;
    struct xs_handle *xs;              /* watches state and runstate */
    char state[128], runstate[128], command[128];
} rsdm_sim;

/* 0, or -1 with the reason on stderr (everything started is stopped). */
int rsdm_sim_start(rsdm_sim *s, const char *name, unsigned vcpus);

/* A guest disk as the toolstack writes it: a vbd backend/frontend pair. */
typedef struct rsdm_sim_disk {
    const char *vdev;                  /* "hda" .. "hdd" (IDE), "sda" .. (AHCI port 0 ..) */
    const char *path;                  /* raw image */
} rsdm_sim_disk;

typedef struct rsdm_sim_opts {
    const char *name;
    unsigned vcpus;
    const rsdm_sim_disk *disks;
    unsigned ndisks;
    const char *config;                /* rsdm's --config FILE, or NULL */
} rsdm_sim_opts;

/* rsdm_sim_start with disks and a config file; rsdm-sim saves into s->dir
 * (--save-dir), so the traditional save file is rsdm_sim_save_path(). */
int rsdm_sim_start_opts(rsdm_sim *s, const rsdm_sim_opts *o);
/* Where a traditional `save` puts the device state. */
void rsdm_sim_save_path(const rsdm_sim *s, char *out, size_t len);
/* A new rsdm-sim for the same domain restoring `file` (-loadvm), as libxl
 * does after a restore; the previous one must be stopped.  config may be
 * NULL.  0 once it wrote `running`, or -1. */
int rsdm_sim_restore_dm(rsdm_sim *s, const char *file, const char *config);
/* SIGTERM to rsdm-sim and reap it: its wait status, or -1. */
int rsdm_sim_stop_dm(rsdm_sim *s);
/* rsdm-sim (if still running), the domain, the hypervisor, xensim, the directory. */
void rsdm_sim_stop(rsdm_sim *s);
/* Until path reads want, at most timeout_ms without an event: 0 or -ETIMEDOUT. */
int rsdm_sim_wait_value(rsdm_sim *s, const char *path, const char *want, int timeout_ms);

#endif

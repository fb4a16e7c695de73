/*
 * A real rsdm-sim on a simulated host, for tests and benchmarks: xenstore
 * from a `xensim run` daemon, the hypervisor in this process
 * (tests/lib/xsim_emu), one domain, and rsdm-sim as a child process started
 * as libxl starts it, up to `running` and unpaused: traditional dialect
 * (rsdm_sim_start), or qemu-xen with a QMP monitor (rsdm_sim_start_qmp;
 * restricted as libxl's dm_restrict: pre-opened socket fd, -S, readiness
 * by query-status, then `cont`).  Every wait is bounded and woken by
 * xenstore watch events or the QMP reply.
 *
 * Tests that hold in both dialects pick one in rsdm_sim_opts.dialect and
 * control the dm through rsdm_sim_command / rsdm_sim_save /
 * rsdm_sim_restore_dm, which speak xenstore or QMP as libxl would.  The
 * runstate node (s->runstate) is published in both dialects, but not by a
 * restricted dm (dm_restrict: no xenstore at all; ask QMP query-status).
 *
 * RSDM_SIM_KEEP=1 keeps the directory (rsdm-sim's log) at the end;
 * RSDM_SIM_LOG=LEVEL sets rsdm-sim's --log-level (default warning).
 */
#ifndef RSDM_SIM_H
#define RSDM_SIM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "xl_qmp.h"

struct hv_domain;
struct xs_handle;

typedef enum rsdm_sim_dialect {
    RSDM_SIM_TRADITIONAL,              /* xenstore commands, vbd nodes name the disks */
    RSDM_SIM_QEMU_XEN,                 /* QMP; the disks on the command line */
} rsdm_sim_dialect;

/* A guest disk as the toolstack writes it: a vbd backend/frontend pair
 * (both dialects, as libxl), and in qemu-xen also libxl's `-drive`:
 * hdX `if=ide,index=N`; sdX on an AHCI controller as `-drive if=none,
 * id=<vdev>` + `-device ide-hd,bus=ahci0.N` (the id is the vdev, not
 * libxl's ahcidisk-N, so one config file's `[disk sdX]` serves both). */
typedef struct rsdm_sim_disk {
    const char *vdev;                  /* "hda" .. "hdd" (IDE), "sda" .. (AHCI port 0 ..) */
    const char *path;                  /* raw image */
} rsdm_sim_disk;

#define RSDM_SIM_DISKS_MAX 8

typedef struct rsdm_sim {
    char dir[64];                      /* temporary directory, removed at the end */
    char bin[4096];                    /* $RSDM_BUILD/bin */
    pid_t dm;                          /* rsdm-sim, 0 once reaped */
    int dm_status;                     /* its wait status once it exited by itself */
    int dm_exited;                     /* ... seen by a wait */
    uint32_t dom;
    struct hv_domain *d;
    struct xs_handle *xs;              /* watches state and runstate */
    char state[128], runstate[128], command[128];
    char qmp_path[128];                /* qemu-xen: the monitor socket */
    char log[128];                     /* rsdm-sim's stdout/stderr */
    rsdm_sim_dialect dialect;
    bool restricted;                   /* qemu-xen: libxl's dm_restrict */
    rsdm_sim_disk disks[RSDM_SIM_DISKS_MAX];   /* the caller's strings, kept alive by it */
    unsigned ndisks;
    char config[320];                  /* --config of the running dm, "" for none */
} rsdm_sim;

/* 0, or -1 with the reason on stderr (everything started is stopped). */
int rsdm_sim_start(rsdm_sim *s, const char *name, unsigned vcpus);
/* The same with the qemu-xen command line. */
int rsdm_sim_start_qmp(rsdm_sim *s, const char *name, unsigned vcpus, bool restricted);
/* A new rsdm-sim (qemu-xen) for the same domain after rsdm_sim_stop_dm,
 * loading incoming_fd (-incoming fd:N, closed here) when >= 0, up to
 * running (`cont` sent as libxl_domain_unpause does).  0 or -1. */
int rsdm_sim_spawn_qmp(rsdm_sim *s, bool restricted, int incoming_fd);
/* A negotiated libxl-style QMP connection to the monitor (NULL: message
 * on stderr). */
xlq *rsdm_sim_qmp(rsdm_sim *s);
/* One command on a new connection; 0 or -1 (message on stderr). */
int rsdm_sim_qmp_exec(rsdm_sim *s, const char *cmd, json_t *args, int fd, json_t **ret);

/* The domain's pause count (the toolstack's and the dm's references). */
int rsdm_sim_pause_count(const rsdm_sim *s);

/* A guest vCPU (vCPU 0, a thread) writing the UART's scratch register and
 * reading it back until stopped; a mismatch means a lost write, a failure
 * an access nobody answered. */
#define RSDM_SIM_UART_SCR 0x3ff
typedef struct rsdm_sim_guest {
    rsdm_sim *sim;
    pthread_t thread;
    bool running;
    atomic_bool stop;
    atomic_ulong accesses, mismatches, failures;
} rsdm_sim_guest;
int rsdm_sim_guest_start(rsdm_sim_guest *g, rsdm_sim *s);    /* 0 or -errno */
void rsdm_sim_guest_stop(rsdm_sim_guest *g);
/* Until the guest made one more access (a stopped vCPU makes none). */
void rsdm_sim_guest_step(rsdm_sim_guest *g);


typedef struct rsdm_sim_opts {
    const char *name;
    unsigned vcpus;
    const rsdm_sim_disk *disks;
    unsigned ndisks;
    const char *config;                /* rsdm's --config FILE, or NULL */
    rsdm_sim_dialect dialect;
    bool restricted;                   /* qemu-xen: libxl's dm_restrict */
} rsdm_sim_opts;

/* rsdm-sim in o->dialect with disks (at most RSDM_SIM_DISKS_MAX) and a
 * config file, up to running and the domain unpaused.  The traditional
 * dm saves into s->dir (--save-dir); rsdm_sim_save_path() is where either
 * dialect's save goes.  0, or -1 with the reason on stderr. */
int rsdm_sim_start_opts(rsdm_sim *s, const rsdm_sim_opts *o);
/* "rsdm_sim: traditional" style name of s's dialect. */
const char *rsdm_sim_dialect_name(const rsdm_sim *s);
/* Where rsdm_sim_save (and a traditional `save`) puts the device state. */
void rsdm_sim_save_path(const rsdm_sim *s, char *out, size_t len);
/* "stop" or "continue" as the toolstack sends it: the traditional
 * `command` node, or QMP stop / cont (answered before this returns).  In
 * the traditional dialect any command is written as it is (e.g. "save",
 * acknowledged later by `paused`).  0 or -1 (message on stderr). */
int rsdm_sim_command(rsdm_sim *s, const char *cmd);
/* The device-state save of libxl (the domain's pause is the caller's):
 * traditional `save` and its `paused`; qemu-xen `stop`, `add-fd`,
 * `xen-save-devices-state` of that fd.  The file's path in path.  0 once
 * the file is complete, or -1 (message on stderr). */
int rsdm_sim_save(rsdm_sim *s, char *path, size_t len);
/* The same as the last step of a migration (qemu-xen `live: true`): the
 * stopped dm also gives up its image locks, so the destination's dm can
 * open the images while the source still runs (the traditional `save`
 * always does). */
int rsdm_sim_save_live(rsdm_sim *s, char *path, size_t len);
/* A new rsdm-sim for the same domain restoring `file`, as libxl does
 * after a restore, in s's dialect with s's disks: traditional -loadvm up
 * to `running`; qemu-xen -incoming fd:N, then `cont`.  A dm still running
 * is left alone (its pid is forgotten: a migration's source is the
 * caller's to stop).  config may be NULL.  0, or -1. */
int rsdm_sim_restore_dm(rsdm_sim *s, const char *file, const char *config);
/* SIGTERM to rsdm-sim and reap it: its wait status, or -1. */
int rsdm_sim_stop_dm(rsdm_sim *s);
/* rsdm-sim (if still running), the domain, the hypervisor, xensim, the directory. */
void rsdm_sim_stop(rsdm_sim *s);
/* Until path reads want, at most timeout_ms without an event: 0, -ETIMEDOUT,
 * or -ECHILD when rsdm-sim exited meanwhile (dm_exited, dm_status set). */
int rsdm_sim_wait_value(rsdm_sim *s, const char *path, const char *want, int timeout_ms);

#endif

/*
 * A guest with two disks on a real rsdm-sim, for the fault trials, the
 * werror bursts and the soak: `hda` on PIIX3 IDE driven from vCPU 0 with
 * xensim's ATA driver (bus-master DMA), `sda` on ICH9 AHCI driven from
 * vCPU 1 with xensim's AHCI driver.  Every sector written carries the
 * data checker's header (one checker per disk), so reads through the
 * device and the final host-side image check classify lost, stale and
 * corrupted data.
 *
 * Failures are switched on and off while the guest writes by rewriting
 * rsdm's config file (its `inject` rules) and sending SIGUSR1, which makes
 * rsdm re-read them (docs/block.md "Injection").
 */
#ifndef DUAL_GUEST_H
#define DUAL_GUEST_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "guest_ahci.h"
#include "guest_bus.h"
#include "guest_check.h"
#include "guest_fw.h"
#include "guest_ide.h"
#include "rsdm_sim.h"

enum { DUAL_IDE, DUAL_AHCI, DUAL_DISKS };

typedef struct dual_guest {
    rsdm_sim sim;
    char img[DUAL_DISKS][320];
    char conf[320];
    struct guest_bus bus[DUAL_DISKS];       /* vCPU d drives disk d */
    bool bus_open[DUAL_DISKS];
    struct guest_fw fw;
    struct guest_ide ide;
    struct guest_ahci hba;
    struct guest_check chk[DUAL_DISKS];
    bool chk_open[DUAL_DISKS];
    uint64_t sectors;                       /* of each disk */
    pthread_mutex_t mu;                     /* writers' progress */
    pthread_cond_t progressed;
} dual_guest;

/* A guest thread doing checked I/O on one disk: random writes of 1-16
 * sectors (every read_every-th command a read of the same size instead),
 * n commands or, with n = 0, until dual_writer_join.  A driver can hold
 * it at a command count (dual_writer_allow). */
typedef struct dual_writer {
    dual_guest *g;
    unsigned d, n, read_every;
    uint64_t rng;
    pthread_t t;
    bool started;
    atomic_bool stop, done;
    atomic_uint cmds;                       /* completed */
    atomic_uint allow;                      /* commands it may start (UINT_MAX: all) */
    uint64_t sectors;                       /* written and acknowledged */
    int rc;
    char err[GUEST_BUS_ERRLEN];
} dual_writer;

extern const char *const dual_guest_vdev[DUAL_DISKS];   /* "hda", "sda" */

/* Two zero-filled images of `sectors` sectors, rsdm-sim with both and a
 * config file holding `config` (the `[disk hda]` / `[disk sda]`
 * sections), the firmware PCI pass, both drivers' init, the checkers.
 * 0, or -1 with the reason on stderr (everything stopped). */
int dual_guest_start(dual_guest *g, const char *name, uint64_t sectors, const char *config);
/* Stops rsdm-sim (its exit status, or -1) and everything else. */
int dual_guest_stop(dual_guest *g);

/* Replaces the config file (a new file renamed over the old one, so rsdm
 * never reads half of it).  0 or -1. */
int dual_guest_config(dual_guest *g, const char *config);
/* dual_guest_config, then SIGUSR1 to rsdm-sim: it re-reads the rules. */
int dual_guest_inject(dual_guest *g, const char *config);

/* Checked I/O of count (1..128) sectors from lba on disk d (from vCPU d):
 * a write acknowledges each sector to the ledger on success; a read
 * classifies each.  0 or -1 (the driver's message in g->bus[d].err). */
int dual_guest_write(dual_guest *g, unsigned d, uint64_t lba, unsigned count);
int dual_guest_read(dual_guest *g, unsigned d, uint64_t lba, unsigned count);

/* Every sector of disk d read back through the device, then every
 * sector of its image file read from the host, all classified.  The
 * number of bad sectors from the host-side pass, or -1. */
long dual_guest_verify(dual_guest *g, unsigned d);

/* rsdm_sim_command: "stop" or "continue" in either dialect (traditional:
 * any command, e.g. "save").  0 or -1. */
int dual_guest_command(dual_guest *g, const char *cmd);
/* The runstate node's value (empty if unreadable). */
void dual_guest_runstate(dual_guest *g, char *out, size_t len);

/* Resumes a VM stopped in io-error: `continue` until the runstate is
 * running again (a rule still in force stops it again), at most `tries`
 * times; every `continue` after the first counts in *again.  0 or -1. */
int dual_guest_resume(dual_guest *g, int tries, unsigned *again);

/* allow: as dual_writer_allow (UINT_MAX: not held). */
int dual_writer_start(dual_writer *w, dual_guest *g, unsigned d, unsigned n, unsigned read_every,
                      uint64_t seed, unsigned allow);
/* Lets the writer start commands up to number `allow` (counted from 0). */
void dual_writer_allow(dual_writer *w, unsigned allow);
/* Until the writer completed `cmds` commands or ended, at most
 * timeout_ms: whether it is still running. */
bool dual_writer_wait(dual_writer *w, unsigned cmds, int timeout_ms);
/* Asks it to end, joins it: its result (0, or -1 with w->err). */
int dual_writer_join(dual_writer *w);

/* Lines of rsdm-sim's log (shared by every rsdm-sim of the fixture)
 * containing `what`, or -1. */
long dual_guest_log_count(dual_guest *g, const char *what);
/* Until more than `than` such lines, at most timeout_ms: 0 or -1. */
int dual_guest_log_wait(dual_guest *g, const char *what, long than, int timeout_ms);

#endif

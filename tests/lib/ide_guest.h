/*
 * IDE tests and benchmarks: a real rsdm-sim (tests/lib/rsdm_sim) with raw
 * images as the guest's IDE disks, and a guest on up to two vCPUs driving
 * the primary channel with xensim's ATA driver (tools/xensim/guest_ide),
 * which is proven against QEMU's PIIX3 IDE.  Every sector written carries
 * the data checker's header (tools/xensim/guest_check), so reads and the
 * final image check classify lost, stale and corrupted data.
 */
#ifndef IDE_GUEST_H
#define IDE_GUEST_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "guest_bus.h"
#include "guest_check.h"
#include "guest_fw.h"
#include "guest_ide.h"
#include "rsdm_sim.h"

#define IDE_GUEST_VCPUS 2

typedef struct ide_guest {
    rsdm_sim sim;
    unsigned nvcpus;
    struct guest_bus bus[IDE_GUEST_VCPUS];
    bool bus_open[IDE_GUEST_VCPUS];
    struct guest_fw fw;
    struct guest_ide ide[IDE_GUEST_VCPUS];   /* the primary channel, as each vCPU drives it */
    struct guest_check chk;
    bool chk_open;
    pthread_mutex_t chan;                    /* the guest OS's channel lock */
    uint64_t sectors;                        /* of the primary master */
    char image[256];                         /* the primary master's image */
} ide_guest;

/* A zero-filled (sparse) raw image of `sectors` sectors. */
int ide_guest_image(const char *path, uint64_t sectors);
/* Starts rsdm-sim with o (o->disks[0] must be hda), opens a guest bus per
 * vCPU, runs the firmware PCI pass and initialises the ATA driver (SRST,
 * IDENTIFY).  0, or -1 with the reason on stderr (everything stopped). */
int ide_guest_start(ide_guest *g, const rsdm_sim_opts *o);
void ide_guest_stop(ide_guest *g);

/* Checked I/O on vCPU v under the channel lock: a write fills each sector
 * with a fresh sequence and acknowledges it to the ledger on success; a
 * read classifies every sector.  0 or -1 (the driver's message in
 * g->bus[v].err). */
int ide_guest_write(ide_guest *g, unsigned v, bool dma, uint32_t lba, unsigned count);
int ide_guest_read(ide_guest *g, unsigned v, bool dma, uint32_t lba, unsigned count);
int ide_guest_flush(ide_guest *g, unsigned v);
/* The final image check: every sector of the image file, read from the
 * host, classified against the ledger.  Returns the number of bad sectors
 * (also counted in the checker) or -1 if the image cannot be read. */
long ide_guest_check_image(ide_guest *g);
/* FNV-1a of the image file's first `sectors` sectors, read from the host:
 * equal before and after means the device did no I/O on it meanwhile.
 * 0 when the file cannot be read whole (never a real hash here: the
 * caller compares two calls and fails on a read error by asserting
 * non-zero). */
uint32_t ide_guest_image_hash(const char *path, uint64_t sectors);

/* All-ones reads on every vCPU's bus since the start (an access that
 * nothing answered, e.g. Xen's null handler). */
uint64_t ide_guest_all_ones(ide_guest *g);

/* Accesses to the IDE ports and the bus-master BAR that Xen's null handler
 * took (nobody answered them). */
uint64_t ide_guest_null_hits(ide_guest *g);

/* Waits until the runstate node reads `want` ("io-error holds=io-error"). */
int ide_guest_wait_runstate(ide_guest *g, const char *want, int timeout_ms);
/* rsdm_sim_command: "stop" or "continue" in either dialect (traditional:
 * any command, e.g. "save"). */
int ide_guest_command(ide_guest *g, const char *cmd);

/* The dialect the IDE tests run in: each test binary runs its cases once
 * per dialect (IDE_GUEST_RUN_DIALECTS), its setups passing this one. */
extern rsdm_sim_dialect ide_guest_dialect;
/* In a cmocka main: the group `tests` (an array) as "traditional", then
 * as "qemu-xen"; the failed cases of both. */
#define IDE_GUEST_RUN_DIALECTS(tests)                                                   \
    ({                                                                                  \
        int failed_ = 0;                                                                \
        ide_guest_dialect = RSDM_SIM_TRADITIONAL;                                       \
        failed_ += cmocka_run_group_tests_name("traditional", tests, NULL, NULL);       \
        ide_guest_dialect = RSDM_SIM_QEMU_XEN;                                          \
        failed_ += cmocka_run_group_tests_name("qemu-xen", tests, NULL, NULL);          \
        failed_;                                                                        \
    })

/* qemu-xen: the QMP events of one monitor connection, in arrival order,
 * as "NAME" or, for BLOCK_IO_ERROR, "BLOCK_IO_ERROR device operation
 * action" (e.g. "BLOCK_IO_ERROR hda write stop"). */
#define IDE_GUEST_EVENTS 32
typedef struct ide_guest_events {
    xlq *c;
    unsigned n;
    char ev[IDE_GUEST_EVENTS][96];
} ide_guest_events;
/* 0, or -1 (message on stderr). */
int ide_guest_events_open(ide_guest *g, ide_guest_events *e);
/* Until `count` events whose text starts with `name` arrived (they may
 * already have): the index of the count-th, or -1 after timeout_ms or on a
 * closed connection. */
int ide_guest_events_wait(ide_guest_events *e, const char *name, unsigned count, int timeout_ms);
/* The index of the first event at or after `from` starting with name, or -1. */
int ide_guest_events_find(const ide_guest_events *e, const char *name, unsigned from);
void ide_guest_events_close(ide_guest_events *e);

#endif

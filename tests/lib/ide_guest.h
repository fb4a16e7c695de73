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

#endif

/*
 * bench_ahci: AHCI throughput through the whole device path — xensim's
 * AHCI driver issuing commands (MMIO registers, command list, PRDT and
 * FISes in guest RAM, NCQ), rsdm's AHCI controller moving the data between
 * guest RAM and its bounce buffers, the block backend's workers doing the
 * I/O — next to direct I/O on the same backend and image with the same
 * request size and depth (dm_blk_submit from the dm's thread, no device),
 * in the same run.  Workloads: 4 KiB random reads at depth 1 and 32 (NCQ),
 * 4 KiB random writes at depth 32 (NCQ), 1 MiB sequential reads (16
 * commands of 64 KiB issued together: the driver's largest command).
 *
 * Placement: the rig's thread (the guest's vCPU and the dm's main loop in
 * one, tests/lib/ahci_rig) is pinned to the first usable CPU; the backend's
 * workers are not pinned.  The image lives in the page cache (cache=
 * writeback), so the figures measure the device model, not a disk.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/ahci_rig.h"
#include "../lib/bench_util.h"
#include "dm_log.h"

#define DISK_MIB 128
#define REGION_SECTORS (64u * 2048u)   /* random I/O within the first 64 MiB */
#define DEPTH 32

typedef struct workload {
    const char *name;
    bool write;
    bool sequential;
    unsigned sectors;     /* per command */
    unsigned depth;       /* commands issued together */
    unsigned batches;
} workload;

static const workload loads[] = {
    { "4k-randread-qd1", false, false, 8, 1, 4000 },
    { "4k-randread-qd32", false, false, 8, DEPTH, 300 },
    { "4k-randwrite-qd32", true, false, 8, DEPTH, 300 },
    { "1m-seqread", false, true, 128, 16, 150 },
};

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

/* The LBA of command i of batch b. */
static uint64_t lba_of(const workload *w, unsigned b, unsigned i)
{
    if (w->sequential)
        return ((uint64_t)b * w->depth + i) * w->sectors % REGION_SECTORS;
    return rnd() % (REGION_SECTORS / w->sectors) * w->sectors;
}

static uint8_t *bufs[DEPTH];

static int run_ahci(ahci_rig *r, const workload *w, double *secs)
{
    struct guest_ahci_io io[DEPTH];
    uint64_t t0 = bench_now_ns();
    for (unsigned b = 0; b < w->batches; b++) {
        for (unsigned i = 0; i < w->depth; i++)
            io[i] = (struct guest_ahci_io){ .write = w->write, .lba = lba_of(w, b, i),
                                            .count = w->sectors, .buf = bufs[i] };
        int rc = w->depth == 1 ? guest_ahci_rw(&r->hba, w->write, io[0].lba, w->sectors, bufs[0])
                               : guest_ahci_ncq(&r->hba, io, w->depth);
        if (rc < 0) {
            fprintf(stderr, "bench_ahci: %s: %s\n", w->name, guest_bus_error(&r->bus));
            return -1;
        }
    }
    *secs = (double)(bench_now_ns() - t0) / 1e9;
    return 0;
}

typedef struct direct_ctx {
    unsigned pending;
    int err;
} direct_ctx;

static void direct_done(void *opaque, int ret)
{
    direct_ctx *c = opaque;
    c->pending--;
    if (ret < 0)
        c->err = ret;
}

static int run_direct(ahci_rig *r, const workload *w, double *secs)
{
    direct_ctx c = { 0 };
    uint64_t t0 = bench_now_ns();
    for (unsigned b = 0; b < w->batches; b++) {
        for (unsigned i = 0; i < w->depth; i++) {
            if (!dm_blk_submit(r->blk, w->write ? DM_BLK_WRITE : DM_BLK_READ,
                               lba_of(w, b, i) * DM_BLK_SECTOR, bufs[i],
                               (size_t)w->sectors * DM_BLK_SECTOR, direct_done, &c)) {
                fprintf(stderr, "bench_ahci: %s: direct submit failed\n", w->name);
                return -1;
            }
            c.pending++;
        }
        while (c.pending)
            ahci_rig_pump(r, 100);
        if (c.err) {
            fprintf(stderr, "bench_ahci: %s: direct I/O failed: %s\n", w->name, strerror(-c.err));
            return -1;
        }
    }
    *secs = (double)(bench_now_ns() - t0) / 1e9;
    return 0;
}

int main(void)
{
    dm_log_set_level(DM_LOG_WARNING);
    int cpus[2];
    int ncpu = bench_cpus(cpus);
    if (ncpu < 1 || bench_pin(cpus[0]) < 0) {
        fprintf(stderr, "bench_ahci: cannot pin to a CPU\n");
        return 1;
    }
    for (unsigned i = 0; i < DEPTH; i++)
        if (!(bufs[i] = calloc(1, 128 * 512)))
            return 1;
    static ahci_rig r;
    ahci_rig_opts o = { .disk_mib = DISK_MIB, .rerror = DM_ERR_REPORT, .werror = DM_ERR_ENOSPC,
                        .workers = DEPTH, .timeout_ms = 30000 };
    if (ahci_rig_start(&r, &o) < 0)
        return 1;
    /* Real data in the region, so reads are not served from a hole. */
    workload fill = { "fill", true, true, 128, 16, REGION_SECTORS / (128 * 16) };
    double t;
    if (run_direct(&r, &fill, &t) < 0)
        return 1;
    printf("placement: rig thread (vCPU + dm main loop) on CPU %d, %d backend workers "
           "unpinned; image %u MiB in the page cache\n", cpus[0], DEPTH, DISK_MIB);
    printf("%-20s %12s %12s %12s %12s %8s\n", "workload", "ahci IOPS", "ahci MB/s",
           "direct IOPS", "direct MB/s", "ratio");
    int rc = 0;
    for (size_t k = 0; k < sizeof(loads) / sizeof(loads[0]); k++) {
        const workload *w = &loads[k];
        double ta, td;
        if (run_direct(&r, w, &td) < 0 || run_ahci(&r, w, &ta) < 0) {
            rc = 1;
            break;
        }
        double n = (double)w->batches * w->depth;
        double bytes = n * w->sectors * 512;
        printf("%-20s %12.0f %12.1f %12.0f %12.1f %8.2f\n", w->name, n / ta, bytes / ta / 1e6,
               n / td, bytes / td / 1e6, td / ta);
    }
    dm_blk_stats bs;
    dm_blk_get_stats(r.blk, &bs);
    dm_ahci_stats as;
    dm_ahci_get_stats(r.ahci, &as);
    printf("backend: max %u in flight, %" PRIu64 " completions out of order; device: max %u "
           "NCQ commands at the backend\n",
           bs.max_in_flight, bs.out_of_order, as.max_ncq_in_flight);
    printf("ratio = ahci throughput / direct throughput (1.00: the device path costs nothing)\n");
    ahci_rig_stop(&r);
    for (unsigned i = 0; i < DEPTH; i++)
        free(bufs[i]);
    return rc;
}

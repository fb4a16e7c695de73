/*
 * bench_ahci: AHCI throughput through the device path — xensim's AHCI
 * driver issuing commands (MMIO registers, command list, PRDT and FISes in
 * guest RAM, NCQ), rsdm's AHCI controller moving the data between guest
 * RAM and its bounce buffers, the block backend's workers doing the I/O —
 * next to direct I/O on the same backend and image with the same request
 * size and depth (dm_blk_submit from the dm's thread, no device), in the
 * same run.  Workloads: 4 KiB random reads at depth 1 and 32 (NCQ), 4 KiB
 * random writes at depth 32 (NCQ), 1 MiB sequential reads (16 commands of
 * 64 KiB issued together: the driver's largest command).
 *
 * Two device figures per workload: "rig", the controller in this process
 * with the guest's register accesses as function calls (tests/lib/ahci_rig:
 * the device model's own cost), and "rsdm-sim", a real rsdm-sim serving
 * the image as its vbd `sda` with the guest on vCPU 0 of the simulated
 * hypervisor, every register access an ioreq round trip (the whole path).
 * The three paths take turns in five rounds of slices of each workload
 * (ROUNDS below), so the machine's load changes hit them alike.
 *
 * Placement: this process's thread (the rig's vCPU and main loop, then the
 * rsdm-sim guest's vCPU) is pinned to the first usable CPU before anything
 * starts, so the backend's workers, rsdm-sim and the xensim daemon inherit
 * the mask: everything runs on that CPU, the direct baseline too.  The
 * image lives in the page cache (cache=writeback), so the figures measure
 * the device model, not a disk.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "../lib/ahci_rig.h"
#include "../lib/bench_util.h"
#include "../lib/rsdm_sim.h"
#include "dm_log.h"
#include "guest_hv.h"

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

/* Batches [b0, b1) of the workload through xensim's driver on `hba`; the
 * time taken is added to *secs. */
static int run_guest(struct guest_ahci *hba, const workload *w, unsigned b0, unsigned b1,
                     double *secs)
{
    struct guest_ahci_io io[DEPTH];
    uint64_t t0 = bench_now_ns();
    for (unsigned b = b0; b < b1; b++) {
        for (unsigned i = 0; i < w->depth; i++)
            io[i] = (struct guest_ahci_io){ .write = w->write, .lba = lba_of(w, b, i),
                                            .count = w->sectors, .buf = bufs[i] };
        int rc = w->depth == 1 ? guest_ahci_rw(hba, w->write, io[0].lba, w->sectors, bufs[0])
                               : guest_ahci_ncq(hba, io, w->depth);
        if (rc < 0) {
            fprintf(stderr, "bench_ahci: %s: %s\n", w->name, guest_bus_error(hba->bus));
            return -1;
        }
    }
    *secs += (double)(bench_now_ns() - t0) / 1e9;
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

/* The same batches straight to the rig's backend (no device). */
static int run_direct(ahci_rig *r, const workload *w, unsigned b0, unsigned b1, double *secs)
{
    direct_ctx c = { 0 };
    uint64_t t0 = bench_now_ns();
    for (unsigned b = b0; b < b1; b++) {
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
    *secs += (double)(bench_now_ns() - t0) / 1e9;
    return 0;
}

#define NLOADS (sizeof(loads) / sizeof(loads[0]))

typedef struct figures {
    double direct, rig, sim;      /* seconds per workload */
} figures;

/* A real rsdm-sim serving `image` as sda, its guest's AHCI driver ready
 * on vCPU 0; stopped again by sim_close (by sim_open itself on failure). */
static rsdm_sim sim;
static struct guest_bus sim_bus;
static struct guest_fw sim_fw;
static struct guest_ahci sim_hba;

static void sim_close(void)
{
    guest_bus_close(&sim_bus);
    rsdm_sim_stop_dm(&sim);
    rsdm_sim_stop(&sim);
}

static int sim_open(const char *image)
{
    static rsdm_sim_disk disk;
    disk = (rsdm_sim_disk){ "sda", image };
    rsdm_sim_opts o = { .name = "bench-ahci", .vcpus = 1, .disks = &disk, .ndisks = 1 };
    if (rsdm_sim_start_opts(&sim, &o) < 0)
        return -1;
    char err[256];
    if (guest_hv_open(&sim_bus, sim.dom, 0, 1u << 20, err, sizeof(err)) < 0) {
        fprintf(stderr, "bench_ahci: %s\n", err);
        rsdm_sim_stop_dm(&sim);
        rsdm_sim_stop(&sim);
        return -1;
    }
    sim_bus.timeout_ms = 30000;
    if (guest_fw_scan(&sim_bus, &sim_fw, true) < 0 ||
        guest_ahci_init(&sim_hba, &sim_bus, &sim_fw) < 0) {
        fprintf(stderr, "bench_ahci: rsdm-sim guest: %s\n", guest_bus_error(&sim_bus));
        sim_close();
        return -1;
    }
    return 0;
}

/* Each workload runs in ROUNDS slices of its batches.  A round: the rig
 * runs every workload's slice directly and through the device, one after
 * the other on the same LBAs; then (the in-process hypervisor is one per
 * process, so the rig makes way) rsdm-sim runs the same slices.  A change
 * of the machine's load thus hits the three paths of a figure alike. */
#define ROUNDS 5

typedef struct rig_totals {
    unsigned max_in_flight, max_ncq;
    uint64_t out_of_order;
} rig_totals;

static int rig_round(const ahci_rig_opts *o, unsigned rd, uint64_t *seeds, figures *f,
                     rig_totals *tot)
{
    static ahci_rig r;
    if (ahci_rig_start(&r, o) < 0)
        return -1;
    int rc = 0;
    if (rd == 0) {   /* real data in the region, so reads are not served from a hole */
        workload fill = { "fill", true, true, 128, 16, REGION_SECTORS / (128 * 16) };
        double t = 0;
        rc = run_direct(&r, &fill, 0, fill.batches, &t);
    }
    for (size_t k = 0; k < NLOADS && rc == 0; k++) {
        const workload *w = &loads[k];
        unsigned b0 = w->batches * rd / ROUNDS, b1 = w->batches * (rd + 1) / ROUNDS;
        rnd_state = seeds[k];
        rc = run_direct(&r, w, b0, b1, &f[k].direct);
        rnd_state = seeds[k];
        if (rc == 0)
            rc = run_guest(&r.hba, w, b0, b1, &f[k].rig);
    }
    dm_blk_stats bs;
    dm_blk_get_stats(r.blk, &bs);
    dm_ahci_stats as;
    dm_ahci_get_stats(r.ahci, &as);
    if (bs.max_in_flight > tot->max_in_flight)
        tot->max_in_flight = bs.max_in_flight;
    if (as.max_ncq_in_flight > tot->max_ncq)
        tot->max_ncq = as.max_ncq_in_flight;
    tot->out_of_order += bs.out_of_order;
    ahci_rig_stop(&r);                 /* releases the image for rsdm-sim */
    return rc;
}

static int sim_round(const char *image, unsigned rd, uint64_t *seeds, figures *f)
{
    if (sim_open(image) < 0)
        return -1;
    int rc = 0;
    for (size_t k = 0; k < NLOADS && rc == 0; k++) {
        const workload *w = &loads[k];
        unsigned b0 = w->batches * rd / ROUNDS, b1 = w->batches * (rd + 1) / ROUNDS;
        rnd_state = seeds[k];
        rc = run_guest(&sim_hba, w, b0, b1, &f[k].sim);
        seeds[k] = rnd_state;          /* the next slice goes on from here */
    }
    sim_close();
    return rc;
}

/* One device figure of w for the report, against the direct run's: IOPS
 * for the random 4 KiB workloads, MB/s for the sequential 1 MiB one. */
static void emit_workload(const workload *w, double secs, double direct_secs, const char *path,
                          const char *placement)
{
    double n = (double)w->batches * w->depth;
    bool iops = !w->sequential;
    double scale = iops ? n : n * w->sectors * 512 / 1e6;
    char name[64], base[64];
    snprintf(name, sizeof(name), "%s through %s", w->name, path);
    snprintf(base, sizeof(base), "direct dm_blk, %s", w->name);
    bench_emit(name, scale / secs, iops ? "IOPS" : "MB/s", base, scale / direct_secs, placement,
               false);
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
    char dir[] = "/tmp/bench-ahci.XXXXXX", image[64];
    if (!mkdtemp(dir))
        return 1;
    snprintf(image, sizeof(image), "%s/sda.img", dir);
    FILE *img = fopen(image, "w");
    if (!img || ftruncate(fileno(img), (off_t)DISK_MIB << 20) < 0 || fclose(img) != 0) {
        fprintf(stderr, "bench_ahci: cannot create %s\n", image);
        return 1;
    }
    ahci_rig_opts o = { .disk_mib = DISK_MIB, .image = image, .rerror = DM_ERR_REPORT,
                        .werror = DM_ERR_ENOSPC, .workers = DEPTH, .timeout_ms = 30000 };
    static figures f[NLOADS];
    uint64_t seeds[NLOADS];
    for (size_t k = 0; k < NLOADS; k++)
        seeds[k] = 0x9e3779b97f4a7c15ull;
    rig_totals tot = { 0 };
    int rc = 0;
    for (unsigned rd = 0; rd < ROUNDS && rc == 0; rd++)
        if (rig_round(&o, rd, seeds, f, &tot) < 0 || sim_round(image, rd, seeds, f) < 0)
            rc = -1;
    unlink(image);
    rmdir(dir);
    if (rc < 0)
        return 1;
    printf("placement: this thread (rig vCPU + dm main loop, then the rsdm-sim guest's vCPU 0) "
           "pinned to CPU %d; backend workers (%d in the rig, rsdm-sim's default), rsdm-sim and "
           "xensim inherit it; image %u MiB in the page cache\n", cpus[0], DEPTH, DISK_MIB);
    char placement[32];
    snprintf(placement, sizeof(placement), "all-on-cpu%d", cpus[0]);
    printf("%-18s %11s %9s %11s %9s %11s %9s %7s %7s\n", "workload", "direct IOPS", "MB/s",
           "rig IOPS", "MB/s", "sim IOPS", "MB/s", "rig", "sim");
    for (size_t k = 0; k < NLOADS; k++) {
        const workload *w = &loads[k];
        double n = (double)w->batches * w->depth;
        double mb = n * w->sectors * 512 / 1e6;
        printf("%-18s %11.0f %9.1f %11.0f %9.1f %11.0f %9.1f %7.2f %7.2f\n", w->name,
               n / f[k].direct, mb / f[k].direct, n / f[k].rig, mb / f[k].rig, n / f[k].sim,
               mb / f[k].sim, f[k].direct / f[k].rig, f[k].direct / f[k].sim);
        emit_workload(w, f[k].rig, f[k].direct, "rig", placement);
        emit_workload(w, f[k].sim, f[k].direct, "rsdm-sim", placement);
    }
    printf("rig backend: max %u in flight, %" PRIu64 " completions out of order; device: max %u "
           "NCQ commands at the backend\n",
           tot.max_in_flight, tot.out_of_order, tot.max_ncq);
    printf("ratios = device throughput / direct throughput (1.00: the device path costs "
           "nothing)\n");
    for (unsigned i = 0; i < DEPTH; i++)
        free(bufs[i]);
    return 0;
}

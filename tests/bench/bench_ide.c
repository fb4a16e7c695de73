/*
 * bench_ide: PIIX3 IDE bus-master DMA throughput of a real rsdm-sim, next
 * to direct pread/pwrite of the same image file in this process, measured
 * in the same run: 64 KiB commands (READ/WRITE DMA, one PRD entry) and
 * 1 MiB commands (READ/WRITE DMA EXT, sixteen 64 KiB PRD entries), read
 * and write.  The guest is xensim's vCPU 0 on the simulated hypervisor;
 * every port access is an ioreq round trip to rsdm-sim, and the data moves
 * image -> rsdm's bounce buffer -> guest RAM.  The baseline moves the same
 * bytes with the same request sizes between the image and a buffer.
 *
 * A second rsdm-sim (2 vCPUs) measures what a slow disk costs the other
 * vCPUs (issue 10 point 7): its config holds one write for 1 s in the
 * block backend (`inject = op=write delay=1000ms ... once`); while vCPU 0
 * waits for that DMA write, vCPU 1 reads the alternate status register
 * (0x3f6) back to back, each read an ioreq round trip answered by rsdm's
 * main loop.  The figure is the latency distribution of those reads; the
 * baseline is the same reads for the same time with the disk idle.  A main
 * loop held by the write would answer after ~1 s.
 *
 * Placement: this process (guest vCPU threads, baseline), rsdm-sim, its
 * block workers and the xensim daemon all on one CPU (pinned before they
 * start; children and threads inherit the mask), so neither side pays
 * cross-CPU wake-ups (~10x a same-CPU one on a 2-vCPU VM).  The image is a
 * regular file in /tmp, warm in the page cache (one untimed pass first),
 * cache=writeback: the figures compare the device path with the same
 * page-cache copies, not with a disk.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/bench_util.h"
#include "../lib/ide_guest.h"

#define SECTORS (64u * 2048u)          /* a 64 MiB disk */
#define TOTAL (64ull << 20)            /* bytes moved per figure */

static ide_guest g;
static int cpu;

/* One DMA command of `bytes` (64 KiB or 1 MiB) at lba, through PRD
 * entries of 64 KiB in the guest's buffer. */
static uint64_t gbuf;
static uint64_t gprdt;

static int dma(bool write, uint32_t lba, uint32_t bytes)
{
    struct guest_bus *b = &g.bus[0];
    uint16_t bm = g.ide[0].bmdma;
    unsigned n = bytes / 65536;
    for (unsigned i = 0; i < n; i++) {
        uint32_t e[2] = { (uint32_t)(gbuf + i * 65536u), i + 1 == n ? 0x80000000u : 0 };
        if (guest_mem_write(b, gprdt + 8 * i, e, sizeof(e)) < 0)
            return -1;
    }
    uint32_t count = bytes / 512;
    bool ext = count > 256;
    uint8_t dir = write ? 0 : 0x08;
    if (guest_outb(b, bm, dir) < 0 || guest_outl(b, bm + 4, (uint32_t)gprdt) < 0 ||
        guest_outb(b, bm + 2, 0x06) < 0 || guest_outb(b, 0x1f6, 0xe0 | (ext ? 0 : lba >> 24)) < 0)
        return -1;
    if (ext && (guest_outb(b, 0x1f2, (uint8_t)(count >> 8)) < 0 ||
                guest_outb(b, 0x1f3, (uint8_t)(lba >> 24)) < 0 ||
                guest_outb(b, 0x1f4, 0) < 0 || guest_outb(b, 0x1f5, 0) < 0))
        return -1;
    if (guest_outb(b, 0x1f2, (uint8_t)count) < 0 || guest_outb(b, 0x1f3, (uint8_t)lba) < 0 ||
        guest_outb(b, 0x1f4, (uint8_t)(lba >> 8)) < 0 ||
        guest_outb(b, 0x1f5, (uint8_t)(lba >> 16)) < 0)
        return -1;
    uint8_t cmd = ext ? (write ? 0x35 : 0x25) : (write ? 0xca : 0xc8);
    if (guest_outb(b, 0x1f7, cmd) < 0 || guest_outb(b, bm, dir | 1) < 0)
        return -1;
    if (guest_irq_wait(b, 14, 10000) != 1)
        return guest_bus_fail(b, "no completion interrupt");
    uint8_t st, bst;
    if (guest_inb(b, bm + 2, &bst) < 0 || guest_outb(b, bm, dir) < 0 ||
        guest_inb(b, 0x1f7, &st) < 0 || guest_outb(b, bm + 2, 0x06) < 0)
        return -1;
    if ((st & 0x89) || (bst & 0x02))
        return guest_bus_fail(b, "status 0x%02x bm 0x%02x", st, bst);
    return 0;
}

/* Every thread of rsdm-sim (main loop and block workers) on our CPU. */
static void pin_process(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d) {
        bench_pin_pid(pid, cpu);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            bench_pin_pid((pid_t)atoi(e->d_name), cpu);
    closedir(d);
}

static double mbps(uint64_t bytes, uint64_t ns)
{
    return (double)bytes / (1 << 20) / ((double)ns / 1e9);
}

static double run_ide(bool write, uint32_t bytes)
{
    uint32_t per = bytes / 512, span = SECTORS / per;
    uint64_t n = TOTAL / bytes;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++)
        if (dma(write, (uint32_t)(i % span) * per, bytes) < 0) {
            fprintf(stderr, "bench_ide: %s\n", guest_bus_error(&g.bus[0]));
            exit(1);
        }
    return mbps(TOTAL, bench_now_ns() - t0);
}

static double run_direct(int fd, bool write, uint32_t bytes, uint8_t *buf)
{
    uint32_t span = (uint32_t)((uint64_t)SECTORS * 512 / bytes);
    uint64_t n = TOTAL / bytes;
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        off_t off = (off_t)(i % span) * bytes;
        ssize_t r = write ? pwrite(fd, buf, bytes, off) : pread(fd, buf, bytes, off);
        if (r != (ssize_t)bytes) {
            perror("bench_ide: direct I/O");
            exit(1);
        }
    }
    return mbps(TOTAL, bench_now_ns() - t0);
}

/* ------------------------------------------- a write held by the backend */

#define HELD_SECTORS 2048u             /* the second rsdm-sim's disk */
#define HELD_LBA 600u
#define HELD_COUNT 8u
#define HELD_MS 1000u
#define MAX_READS 1000000u

static ide_guest hg;
static uint64_t lat_held[MAX_READS], lat_idle[MAX_READS];

typedef struct held_write {
    int rc;
    uint64_t ns;                       /* how long the guest waited for it */
    atomic_bool done;
} held_write;

static void *held_write_main(void *arg)
{
    held_write *h = arg;
    static uint8_t data[HELD_COUNT * 512];
    memset(data, 0xa5, sizeof(data));
    uint64_t t0 = bench_now_ns();
    h->rc = guest_ide_dma(&hg.ide[0], true, HELD_LBA, HELD_COUNT, data);
    h->ns = bench_now_ns() - t0;
    atomic_store(&h->done, true);
    return NULL;
}

/* vCPU 1's alternate-status reads, back to back, until *done (when done is
 * given) or the clock passes `until` (when non-zero).  How many, or -1. */
static long read_alt_status(uint64_t *lat, atomic_bool *done, uint64_t until)
{
    struct guest_bus *b = &hg.bus[1];
    size_t n = 0;
    while (n < MAX_READS && !(done && atomic_load(done))) {
        uint8_t st;
        uint64_t t0 = bench_now_ns();
        if (guest_inb(b, 0x3f6, &st) < 0) {
            fprintf(stderr, "bench_ide: vCPU 1 alt-status read: %s\n", guest_bus_error(b));
            return -1;
        }
        uint64_t t1 = bench_now_ns();
        lat[n++] = t1 - t0;
        if (until && t1 >= until)
            break;
    }
    return (long)n;
}

/* Until vCPU 1 sees the bus master active: the write is at the backend. */
static int wait_bm_active(void)
{
    struct guest_bus *b = &hg.bus[1];
    uint64_t limit = bench_now_ns() + 10ull * 1000 * 1000 * 1000;
    uint8_t bst = 0;
    while (!(bst & 1)) {
        if (guest_inb(b, hg.ide[1].bmdma + 2, &bst) < 0)
            return guest_bus_fail(b, "bus-master status: %s", guest_bus_error(b));
        if (bench_now_ns() > limit)
            return guest_bus_fail(b, "the DMA write never became active");
    }
    return 0;
}

static void held_row(const char *what, uint64_t held, uint64_t idle)
{
    printf("  %-34s %12.1f %12.1f %8.2f\n", what, (double)held / 1e3, (double)idle / 1e3,
           idle ? (double)held / (double)idle : 0.0);
}

/* Issue 10 point 7 on its own rsdm-sim; 0 or -1. */
static int run_held_write(const char *placement)
{
    char img[128], conf[128];
    snprintf(img, sizeof(img), "/tmp/rsdm-bench-ide-held-%d.img", (int)getpid());
    snprintf(conf, sizeof(conf), "/tmp/rsdm-bench-ide-held-%d.conf", (int)getpid());
    FILE *c = fopen(conf, "w");
    if (!c) {
        perror("bench_ide: creating the config file");
        return -1;
    }
    fprintf(c, "[disk hda]\ninject = op=write delay=%ums sectors=%u-%u once\n", HELD_MS,
            HELD_LBA, HELD_LBA + HELD_COUNT - 1);
    if (fclose(c) != 0 || ide_guest_image(img, HELD_SECTORS) < 0) {
        fprintf(stderr, "bench_ide: cannot write %s or %s\n", conf, img);
        unlink(conf);
        return -1;
    }
    rsdm_sim_disk disk = { "hda", img };
    rsdm_sim_opts o = { .name = "bench-ide-held", .vcpus = 2, .disks = &disk, .ndisks = 1,
                        .config = conf };
    int rc = -1;
    if (ide_guest_start(&hg, &o) < 0)
        goto out_files;
    pin_process(hg.sim.dm);
    held_write h = { .rc = -1 };
    pthread_t t;
    if (pthread_create(&t, NULL, held_write_main, &h) != 0) {
        fprintf(stderr, "bench_ide: cannot start vCPU 0's writer\n");
        goto out_guest;
    }
    long nh = -1, ni = -1;
    uint64_t span = 0;
    if (wait_bm_active() < 0) {
        fprintf(stderr, "bench_ide: %s\n", guest_bus_error(&hg.bus[1]));
    } else {
        uint64_t t0 = bench_now_ns();
        nh = read_alt_status(lat_held, &h.done, 0);
        span = bench_now_ns() - t0;
    }
    pthread_join(t, NULL);
    if (h.rc < 0) {
        fprintf(stderr, "bench_ide: the held DMA write failed: %s\n", guest_bus_error(&hg.bus[0]));
        goto out_guest;
    }
    if (nh < 100)
        goto out_guest;
    if (h.ns < (uint64_t)HELD_MS * 900 * 1000) {
        fprintf(stderr, "bench_ide: the write took %.1f ms: the delay rule did not hold it\n",
                (double)h.ns / 1e6);
        goto out_guest;
    }
    /* The baseline: the same reads for as long, the disk idle. */
    ni = read_alt_status(lat_idle, NULL, bench_now_ns() + span);
    if (ni < 100)
        goto out_guest;
    bench_stats sh = bench_summarise(lat_held, (size_t)nh);
    bench_stats si = bench_summarise(lat_idle, (size_t)ni);
    uint64_t mh = lat_held[nh - 1], mi = lat_idle[ni - 1];
    size_t slow_h = 0, slow_i = 0;
    for (long i = 0; i < nh; i++)
        slow_h += lat_held[i] > 10 * 1000 * 1000;
    for (long i = 0; i < ni; i++)
        slow_i += lat_idle[i] > 10 * 1000 * 1000;
    printf("\nheld write (2 vCPUs): vCPU 0's DMA write of %u sectors held %u ms by the backend "
           "(the guest waited %.1f ms); vCPU 1 read alt-status 0x3f6 back to back: %ld reads "
           "meanwhile, %ld in as long with the disk idle\n",
           HELD_COUNT, HELD_MS, (double)h.ns / 1e6, nh, ni);
    printf("  %-34s %12s %12s %8s\n", "vCPU 1 register read", "held us", "idle us", "ratio");
    held_row("p50", sh.p50, si.p50);
    held_row("p99", sh.p99, si.p99);
    held_row("max", mh, mi);
    printf("  %-34s %12zu %12zu\n", "reads over 10 ms", slow_h, slow_i);
    bench_emit("vCPU 1 register read during a 1 s held write (p99)", (double)sh.p99 / 1e3, "us",
               "same reads, disk idle (p99)", (double)si.p99 / 1e3, placement, true);
    bench_emit("vCPU 1 register read during a 1 s held write (max)", (double)mh / 1e3, "us",
               "same reads, disk idle (max)", (double)mi / 1e3, placement, true);
    rc = 0;
out_guest:
    ide_guest_stop(&hg);
out_files:
    unlink(img);
    unlink(conf);
    return rc;
}

int main(void)
{
    int cpus[2];
    if (bench_cpus(cpus) < 1) {
        fprintf(stderr, "bench_ide: no usable CPU\n");
        return 1;
    }
    cpu = cpus[0];
    if (bench_pin(cpu))
        return 1;
    char img[128];
    snprintf(img, sizeof(img), "/tmp/rsdm-bench-ide-%d.img", (int)getpid());
    if (ide_guest_image(img, SECTORS) < 0)
        return 1;
    rsdm_sim_disk disk = { "hda", img };
    rsdm_sim_opts o = { .name = "bench-ide", .vcpus = 1, .disks = &disk, .ndisks = 1 };
    if (ide_guest_start(&g, &o) < 0) {
        unlink(img);
        return 1;
    }
    pin_process(g.sim.dm);
    gprdt = guest_ram_alloc(&g.bus[0], 4096, 4096);
    gbuf = guest_ram_alloc(&g.bus[0], 1 << 20, 65536);
    int fd = open(img, O_RDWR);
    uint8_t *buf = malloc(1 << 20);
    if (!gprdt || !gbuf || fd < 0 || !buf) {
        fprintf(stderr, "bench_ide: set-up failed\n");
        return 1;
    }
    memset(buf, 0x5a, 1 << 20);
    /* Warm the page cache: the whole image written once, untimed. */
    run_direct(fd, true, 1 << 20, buf);
    printf("placement: this process (guest vCPUs and baseline), rsdm-sim, its workers and the "
           "xensim daemon on CPU %d\n", cpu);
    char placement[32];
    snprintf(placement, sizeof(placement), "all-on-cpu%d", cpu);
    printf("image: %s, %u MiB, page cache warm; %llu MiB moved per figure\n", img,
           SECTORS / 2048, (unsigned long long)(TOTAL >> 20));
    printf("%-22s %14s %16s %8s\n", "figure", "IDE DMA MiB/s", "pread/pwrite MiB/s", "ratio");
    static const struct { bool write; uint32_t bytes; const char *name; } rows[] = {
        { false, 65536, "read 64 KiB" },  { true, 65536, "write 64 KiB" },
        { false, 1 << 20, "read 1 MiB" }, { true, 1 << 20, "write 1 MiB" },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        double ide = run_ide(rows[i].write, rows[i].bytes);
        double direct = run_direct(fd, rows[i].write, rows[i].bytes, buf);
        printf("%-22s %14.1f %16.1f %7.2fx\n", rows[i].name, ide, direct, direct / ide);
        char name[64], base[64];
        snprintf(name, sizeof(name), "IDE DMA %s", rows[i].name);
        snprintf(base, sizeof(base), "%s same image, %s", rows[i].write ? "pwrite" : "pread",
                 rows[i].bytes == 65536 ? "64 KiB" : "1 MiB");
        bench_emit(name, ide, "MiB/s", base, direct, placement, false);
    }
    close(fd);
    free(buf);
    ide_guest_stop(&g);
    unlink(img);
    return run_held_write(placement) < 0;
}

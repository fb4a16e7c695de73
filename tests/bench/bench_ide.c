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
 * Placement: this process (guest vCPU thread, baseline), rsdm-sim and its
 * block workers all pinned to one CPU, so neither side pays cross-CPU
 * wake-ups.  The image is a regular file in /tmp, warm in the page cache
 * (one untimed pass first), cache=writeback: the figures compare the
 * device path with the same page-cache copies, not with a disk.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
    printf("placement: this process (guest vCPU and baseline), rsdm-sim and its workers on CPU %d\n",
           cpu);
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
    }
    close(fd);
    free(buf);
    ide_guest_stop(&g);
    unlink(img);
    return 0;
}

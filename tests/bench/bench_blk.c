/*
 * bench_blk: the block backend's throughput (dm/blk.h: worker threads,
 * completions through a dm_event to a dm_loop) next to plain pread/pwrite
 * of the same image with the same block sizes and the same number of
 * threads, in the same run and the same CPU placement.  Reads and writes,
 * 64 KiB and 1 MiB blocks, queue depth 1 (one request at a time) and 8
 * (eight in flight: the backend's eight workers, or eight pread/pwrite
 * threads).  The image (64 MiB, cache=writeback, so mostly the page cache)
 * lives in the build directory.  Each figure is the median of RUNS passes,
 * each going over the whole image four times; the two sides alternate.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/bench_util.h"

#include "blk.h"
#include "dm_log.h"

#define IMAGE_BYTES (64ull << 20)
#define PASS_BYTES (4 * IMAGE_BYTES)   /* a pass goes over the image 4 times */
#define RUNS 5
#define MAX_DEPTH 8

static char image[4096];

/* ------------------------------------------------------------ baseline */

typedef struct direct_job {
    int fd;
    bool write;
    size_t bs;
    atomic_ullong next;          /* next block to transfer */
    atomic_int failed;
} direct_job;

static void *direct_thread(void *arg)
{
    direct_job *j = arg;
    char *buf = malloc(j->bs);
    if (!buf) {
        atomic_store(&j->failed, 1);
        return NULL;
    }
    memset(buf, 0x5a, j->bs);
    for (;;) {
        unsigned long long blk = atomic_fetch_add(&j->next, 1);
        if (blk * j->bs >= PASS_BYTES)
            break;
        off_t off = (off_t)(blk * j->bs % IMAGE_BYTES);
        size_t done = 0;
        while (done < j->bs) {
            ssize_t k = j->write ? pwrite(j->fd, buf + done, j->bs - done, off + (off_t)done)
                                 : pread(j->fd, buf + done, j->bs - done, off + (off_t)done);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                atomic_store(&j->failed, 1);
                free(buf);
                return NULL;
            }
            done += (size_t)k;
        }
    }
    free(buf);
    return NULL;
}

/* One pass over the image with `depth` threads; ns, or 0 on failure. */
static uint64_t direct_pass(bool write, size_t bs, unsigned depth)
{
    direct_job j = { .write = write, .bs = bs };
    j.fd = open(image, O_RDWR | O_CLOEXEC);
    if (j.fd < 0)
        return 0;
    pthread_t th[MAX_DEPTH];
    uint64_t t0 = bench_now_ns();
    unsigned started = 0;
    if (depth == 1) {
        direct_thread(&j);
    } else {
        for (; started < depth; started++)
            if (pthread_create(&th[started], NULL, direct_thread, &j) != 0)
                break;
        for (unsigned i = 0; i < started; i++)
            pthread_join(th[i], NULL);
    }
    uint64_t t = bench_now_ns() - t0;
    close(j.fd);
    return atomic_load(&j.failed) || (depth > 1 && started < depth) ? 0 : t;
}

/* -------------------------------------------------------------- dm_blk */

typedef struct blk_job {
    dm_blk *b;
    dm_blk_op op;
    size_t bs;
    uint64_t next, done, total;  /* blocks; main loop only */
    char *bufs[MAX_DEPTH];
    int failed;
} blk_job;

typedef struct blk_slot {
    blk_job *j;
    unsigned i;
} blk_slot;

static void blk_issue(blk_slot *s);

static void blk_done(void *opaque, int ret)
{
    blk_slot *s = opaque;
    if (ret < 0)
        s->j->failed = 1;
    s->j->done++;
    blk_issue(s);
}

static void blk_issue(blk_slot *s)
{
    blk_job *j = s->j;
    if (j->failed || j->next == j->total)
        return;
    uint64_t off = j->next++ * j->bs % IMAGE_BYTES;
    if (!dm_blk_submit(j->b, j->op, off, j->bufs[s->i], j->bs, blk_done, s))
        j->failed = 1;
}

static uint64_t blk_pass(dm_loop *loop, dm_blk *b, bool write, size_t bs, unsigned depth)
{
    blk_job j = { .b = b, .op = write ? DM_BLK_WRITE : DM_BLK_READ, .bs = bs,
                  .total = PASS_BYTES / bs };
    blk_slot slots[MAX_DEPTH];
    for (unsigned i = 0; i < depth; i++) {
        j.bufs[i] = malloc(bs);
        if (!j.bufs[i])
            j.failed = 1;
        else
            memset(j.bufs[i], 0x5a, bs);
        slots[i] = (blk_slot){ &j, i };
    }
    uint64_t t0 = bench_now_ns();
    for (unsigned i = 0; i < depth && !j.failed; i++)
        blk_issue(&slots[i]);
    while (!j.failed && j.done < j.total)
        if (dm_loop_iterate(loop, 1000) < 0)
            j.failed = 1;
    uint64_t t = bench_now_ns() - t0;
    dm_blk_drain(b);
    for (unsigned i = 0; i < depth; i++)
        free(j.bufs[i]);
    return j.failed ? 0 : t;
}

/* ---------------------------------------------------------------- main */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double mib_s(uint64_t ns)
{
    return (double)PASS_BYTES / (1024.0 * 1024.0) / ((double)ns / 1e9);
}

static int make_image(void)
{
    const char *dir = getenv("RSDM_BUILD");
    snprintf(image, sizeof(image), "%s/bench/bench_blk.img", dir && *dir ? dir : "build");
    char mk[sizeof(image) + 32];
    snprintf(mk, sizeof(mk), "mkdir -p '%s/bench'", dir && *dir ? dir : "build");
    if (system(mk) != 0)
        return -1;
    int fd = open(image, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    int rc = posix_fallocate(fd, 0, (off_t)IMAGE_BYTES) == 0 ? 0 : -1;
    close(fd);
    return rc;
}

int main(void)
{
    dm_log_set_level(DM_LOG_WARNING);
    int cpus[2];
    int ncpu = bench_cpus(cpus);
    if (ncpu < 1) {
        fprintf(stderr, "bench_blk: no usable CPU\n");
        return 1;
    }
    /* Every thread created from here on inherits this set. */
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int i = 0; i < ncpu; i++)
        CPU_SET(cpus[i], &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0) {
        fprintf(stderr, "bench_blk: sched_setaffinity: %s\n", strerror(errno));
        return 1;
    }
    if (make_image() < 0) {
        fprintf(stderr, "bench_blk: cannot create the image %s: %s\n", image, strerror(errno));
        return 1;
    }
    dm_loop *loop = dm_loop_new();
    char err[512];
    dm_blk_opts o = { .path = image, .name = "bench", .cache = DM_CACHE_WRITEBACK,
                      .rerror = DM_ERR_REPORT, .werror = DM_ERR_ENOSPC, .workers = MAX_DEPTH };
    dm_blk *b = loop ? dm_blk_open(loop, &o, err, sizeof(err)) : NULL;
    if (!b) {
        fprintf(stderr, "bench_blk: %s\n", loop ? err : "cannot create the main loop");
        return 1;
    }
    printf("CPU placement: every thread (the main loop, the backend's %d workers, the "
           "baseline's pread/pwrite threads) on CPU%s %d%s%.0d, not pinned within the set\n",
           MAX_DEPTH, ncpu > 1 ? "s" : "", cpus[0], ncpu > 1 ? "," : "", ncpu > 1 ? cpus[1] : 0);
    printf("image: %s, %llu MiB, cache=writeback; median of %d passes of %llu MiB each\n",
           image, IMAGE_BYTES >> 20, RUNS, PASS_BYTES >> 20);
    printf("  %-5s %6s %5s %16s %16s %7s\n", "op", "block", "depth", "pread/pwrite MiB/s",
           "dm_blk MiB/s", "ratio");
    static const size_t sizes[] = { 64 * 1024, 1024 * 1024 };
    static const unsigned depths[] = { 1, MAX_DEPTH };
    int rc = 0;
    char where[32];
    if (ncpu > 1)
        snprintf(where, sizeof(where), "cpu%d,cpu%d-unpinned", cpus[0], cpus[1]);
    else
        snprintf(where, sizeof(where), "cpu%d", cpus[0]);
    for (int w = 0; w < 2 && !rc; w++)
        for (int s = 0; s < 2 && !rc; s++)
            for (int d = 0; d < 2 && !rc; d++) {
                uint64_t base[RUNS], ours[RUNS];
                /* Interleaved, so a drift of the machine hits both alike. */
                for (int r = 0; r < RUNS && !rc; r++) {
                    base[r] = direct_pass(w, sizes[s], depths[d]);
                    ours[r] = blk_pass(loop, b, w, sizes[s], depths[d]);
                    if (!base[r] || !ours[r])
                        rc = 1;
                }
                if (rc) {
                    fprintf(stderr, "bench_blk: a %s pass failed\n", w ? "write" : "read");
                    break;
                }
                qsort(base, RUNS, sizeof(base[0]), cmp_u64);
                qsort(ours, RUNS, sizeof(ours[0]), cmp_u64);
                double mb = mib_s(base[RUNS / 2]), mo = mib_s(ours[RUNS / 2]);
                printf("  %-5s %5zuK %5u %16.0f %16.0f %7.2f\n", w ? "write" : "read",
                       sizes[s] / 1024, depths[d], mb, mo, mo / mb);
                char name[64];
                snprintf(name, sizeof(name), "dm_blk %s %zuK depth %u", w ? "write" : "read",
                         sizes[s] / 1024, depths[d]);
                bench_emit(name, mo, "MiB/s", "pread/pwrite threads", mb, where, false);
                printf("RESULT bench_blk op=%s block=%zu depth=%u direct_mib_s=%.0f "
                       "blk_mib_s=%.0f ratio=%.2f\n", w ? "write" : "read", sizes[s],
                       depths[d], mb, mo, mo / mb);
            }
    dm_blk_close(b);
    dm_loop_free(loop);
    unlink(image);
    return rc;
}

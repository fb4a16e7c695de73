/*
 * bench_ioreq: the simulator's own ioreq round trip — a vCPU thread's
 * synchronous port write through hv_vcpu_io() → the minimal emulator
 * (tests/lib/xsim_emu.c, real Xen library API on xensim) → answer — next
 * to a raw two-thread eventfd ping-pong with the same CPU placement, in the
 * same run.  Two placements: both threads pinned to one CPU, and pinned to
 * two different CPUs (skipped with a reason when only one CPU is usable).
 * A third row puts the emulator in a forked process, as rsdm-sim runs.
 * Prints the placement, per-round-trip mean and percentiles, and the ratio.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lib/bench_util.h"
#include "../lib/xsim_emu.h"

#include "hv.h"

#define WARMUP 2000
#define ROUNDS 50000

/* ------------------------------------------------------------ ioreq */

struct emu_thread {
    struct xsim_emu *e;
    int cpu;
    int rc;
};

static void *emu_main(void *arg)
{
    struct emu_thread *t = arg;
    if (bench_pin(t->cpu)) {
        t->rc = -1;
        return NULL;
    }
    for (;;) {
        int n = xsim_emu_poll(t->e, -1);
        if (n == -ECANCELED)
            break;
        if (n < 0) {
            t->rc = n;
            break;
        }
    }
    return NULL;
}

static int ioreq_roundtrip(int cpu_vcpu, int cpu_emu, uint64_t *lat)
{
    int id = hv_domain_create(0, 1, 16, "bench");
    if (id < 0)
        return -1;
    uint32_t dom = (uint32_t)id;
    struct hv_domain *d = hv_domain_get(dom);
    struct xsim_emu e;
    int rc = -1;
    if (xsim_emu_setup(&e, dom) < 0)
        goto out;
    e.stop_fd = eventfd(0, EFD_CLOEXEC);
    struct emu_thread et = { &e, cpu_emu, 0 };
    pthread_t t;
    if (e.stop_fd < 0 || pthread_create(&t, NULL, emu_main, &et))
        goto out_emu;
    hv_domain_unpause(dom);
    if (bench_pin(cpu_vcpu) == 0) {
        rc = 0;
        for (unsigned int i = 0; i < WARMUP + ROUNDS; i++) {
            uint64_t v = i;
            uint64_t t0 = bench_now_ns();
            if (xsim_pio(d, 0, true, XSIM_EMU_PORT, 4, &v) != 0) {
                rc = -1;
                break;
            }
            if (i >= WARMUP)
                lat[i - WARMUP] = bench_now_ns() - t0;
        }
    }
    uint64_t one = 1;
    if (write(e.stop_fd, &one, sizeof(one)) < 0)
        rc = -1;
    pthread_join(t, NULL);
    if (et.rc)
        rc = -1;
out_emu:
    if (e.stop_fd > 0)
        close(e.stop_fd);
    e.stop_fd = -1;
    xsim_emu_close(&e);
out:
    hv_domain_put(d);
    hv_domain_destroy(dom);
    return rc;
}

/* The same, with the emulator in a forked process (as rsdm-sim runs): only
 * the library's fds connect the two. */
static int ioreq_roundtrip_xproc(int cpu_vcpu, int cpu_emu, uint64_t *lat)
{
    int id = hv_domain_create(0, 1, 16, "bench-xproc");
    if (id < 0)
        return -1;
    uint32_t dom = (uint32_t)id;
    int ready[2], stop[2];
    if (pipe(ready) < 0 || pipe(stop) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(ready[0]);
        close(stop[1]);
        struct xsim_emu e;
        if (bench_pin(cpu_emu) || xsim_emu_setup(&e, dom) < 0)
            _exit(1);
        e.stop_fd = stop[0];
        if (write(ready[1], "R", 1) != 1)
            _exit(1);
        int n;
        while ((n = xsim_emu_poll(&e, -1)) >= 0)
            ;
        e.stop_fd = -1;
        xsim_emu_close(&e);
        _exit(n == -ECANCELED ? 0 : 1);
    }
    close(ready[1]);
    close(stop[0]);
    char c;
    int rc = read(ready[0], &c, 1) == 1 ? 0 : -1;
    struct hv_domain *d = hv_domain_get(dom);
    hv_domain_unpause(dom);
    if (rc == 0 && bench_pin(cpu_vcpu) == 0) {
        for (unsigned int i = 0; i < WARMUP + ROUNDS; i++) {
            uint64_t v = i;
            uint64_t t0 = bench_now_ns();
            if (xsim_pio(d, 0, true, XSIM_EMU_PORT, 4, &v) != 0) {
                rc = -1;
                break;
            }
            if (i >= WARMUP)
                lat[i - WARMUP] = bench_now_ns() - t0;
        }
    } else {
        rc = -1;
    }
    close(stop[1]);
    close(ready[0]);
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        rc = -1;
    hv_domain_put(d);
    hv_domain_destroy(dom);
    return rc;
}

/* ------------------------------------------------------------ main */

static int run_placement(const char *label, int c0, int c1)
{
    static uint64_t a[ROUNDS], b[ROUNDS], x[ROUNDS];
    if (bench_eventfd_pingpong(c0, c1, a, ROUNDS, WARMUP) < 0) {
        fprintf(stderr, "bench_ioreq: eventfd ping-pong failed: %s\n", strerror(errno));
        return -1;
    }
    if (ioreq_roundtrip(c0, c1, b) < 0) {
        fprintf(stderr, "bench_ioreq: ioreq round trip failed\n");
        return -1;
    }
    if (ioreq_roundtrip_xproc(c0, c1, x) < 0) {
        fprintf(stderr, "bench_ioreq: cross-process ioreq round trip failed\n");
        return -1;
    }
    bench_stats sa = bench_summarise(a, ROUNDS), sb = bench_summarise(b, ROUNDS);
    bench_stats sx = bench_summarise(x, ROUNDS);
    printf("placement: %s (CPU %d and CPU %d), %d round trips after %d warm-up\n",
           label, c0, c1, ROUNDS, WARMUP);
    printf("  %-34s %10s %10s %10s\n", "", "mean_ns", "p50_ns", "p99_ns");
    printf("  %-34s %10.0f %10" PRIu64 " %10" PRIu64 "\n",
           "eventfd ping-pong (baseline)", sa.mean, sa.p50, sa.p99);
    printf("  %-34s %10.0f %10" PRIu64 " %10" PRIu64 "\n",
           "xensim ioreq round trip", sb.mean, sb.p50, sb.p99);
    printf("  %-34s %10.0f %10" PRIu64 " %10" PRIu64 "\n",
           "  same, emulator in a 2nd process", sx.mean, sx.p50, sx.p99);
    printf("  ratio ioreq/eventfd: mean %.2f, p50 %.2f; 2nd process: mean %.2f, "
           "p50 %.2f\n", sb.mean / sa.mean, (double)sb.p50 / (double)sa.p50,
           sx.mean / sa.mean, (double)sx.p50 / (double)sa.p50);
    char where[32];
    if (c0 == c1)
        snprintf(where, sizeof(where), "cpu%d", c0);
    else
        snprintf(where, sizeof(where), "cpu%d+cpu%d", c0, c1);
    bench_emit("xensim ioreq round trip (p50)", (double)sb.p50, "ns", "eventfd ping-pong (p50)",
               (double)sa.p50, where, true);
    bench_emit("xensim ioreq round trip, emulator in 2nd process (p50)", (double)sx.p50, "ns",
               "eventfd ping-pong (p50)", (double)sa.p50, where, true);
    printf("RESULT bench_ioreq placement=%s baseline_mean_ns=%.0f "
           "ioreq_mean_ns=%.0f ratio=%.2f xproc_mean_ns=%.0f xproc_ratio=%.2f\n",
           label, sa.mean, sb.mean, sb.mean / sa.mean, sx.mean, sx.mean / sa.mean);
    return 0;
}

int main(void)
{
    if (xsim_fixture_start() < 0) {
        fprintf(stderr, "bench_ioreq: cannot start the in-process hypervisor\n");
        return 1;
    }
    hv_log_quiet(true);
    int cpus[2];
    int n = bench_cpus(cpus);
    int rc = 0;
    if (n < 1) {
        fprintf(stderr, "bench_ioreq: no usable CPU in the affinity mask\n");
        rc = 1;
    } else {
        if (run_placement("same-cpu", cpus[0], cpus[0]) < 0)
            rc = 1;
        if (n < 2)
            printf("placement: two-cpus skipped: only CPU %d is usable\n", cpus[0]);
        else if (run_placement("two-cpus", cpus[0], cpus[1]) < 0)
            rc = 1;
    }
    xsim_fixture_stop();
    return rc;
}

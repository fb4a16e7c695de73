/*
 * make bench: the cost of librunstate's stop+start cycle per change-state
 * handler, against a baseline measured in the same run.
 *
 * For N = 1, 10, 100, 1000 handlers, one cycle is rs_vm_stop(paused) +
 * rs_cont, which calls each handler twice (stop pass, start pass).  The
 * baseline is a bare loop that calls the same N functions twice through
 * function pointers.  Each figure is the median of several runs; the
 * process is pinned to one CPU first and says which.
 */
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../lib/bench_util.h"
#include "runstate.h"

#define RUNS 9                       /* median of this many runs */
#define MIN_RUN_NS (20 * 1000 * 1000) /* each run lasts at least 20 ms */

/* Every handler call writes here, so neither loop can be optimised away. */
static volatile uintptr_t sink;

static void handler(void *opaque, bool running, rs_state state)
{
    sink += (uintptr_t)opaque + (uintptr_t)running + (uintptr_t)state;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
    return v[n / 2];
}

/* Pin to the first CPU we may run on; returns it, or -1. */
static int pin_one_cpu(void)
{
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0)
        return -1;
    for (int k = 0; k < CPU_SETSIZE; k++) {
        if (!CPU_ISSET(k, &allowed))
            continue;
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(k, &one);
        return sched_setaffinity(0, sizeof(one), &one) == 0 ? k : -1;
    }
    return -1;
}

/* ------------------------------------------------------------ librunstate */

typedef struct bench_vm {
    rs_vm *vm;
    size_t n;
} bench_vm;

static int bench_vm_init(bench_vm *b, size_t n)
{
    b->vm = rs_vm_new();
    b->n = n;
    if (!b->vm)
        return -errno;
    for (size_t i = 0; i < n; i++)
        if (!rs_handler_add(b->vm, handler, (void *)(uintptr_t)i, (int)(i % 7)))
            return -errno;
    return rs_cont(b->vm, NULL);    /* prelaunch -> running */
}

/* ns per stop+start cycle over `iters` cycles; <0 on a library error. */
static double run_cycles(bench_vm *b, long iters)
{
    int64_t t0 = now_ns();
    for (long i = 0; i < iters; i++) {
        if (rs_vm_stop(b->vm, RS_PAUSED, NULL) != 0 || rs_cont(b->vm, NULL) != 0)
            return -1;
    }
    return (double)(now_ns() - t0) / (double)iters;
}

/* ------------------------------------------------------------ baseline */

/* The function pointers are read through a volatile pointer: the compiler
 * cannot inline or hoist the calls. */
static double run_baseline(rs_handler_fn *volatile const *fns, size_t n, long iters)
{
    int64_t t0 = now_ns();
    for (long i = 0; i < iters; i++) {
        for (size_t j = n; j-- > 0;)
            (*fns)[j]((void *)(uintptr_t)j, false, RS_PAUSED);
        for (size_t j = 0; j < n; j++)
            (*fns)[j]((void *)(uintptr_t)j, true, RS_RUNNING);
    }
    return (double)(now_ns() - t0) / (double)iters;
}

/* Iterations so that one run lasts at least MIN_RUN_NS. */
static long calibrate(double (*once)(void *ctx, long iters), void *ctx)
{
    long iters = 16;
    for (;;) {
        double ns = once(ctx, iters);
        if (ns < 0)
            return -1;
        if (ns * (double)iters >= MIN_RUN_NS || iters > (1L << 30))
            return iters;
        iters *= 2;
    }
}

typedef struct base_ctx {
    rs_handler_fn *fns;
    size_t n;
} base_ctx;

static double cycles_once(void *ctx, long iters) { return run_cycles(ctx, iters); }

static double baseline_once(void *ctx, long iters)
{
    base_ctx *c = ctx;
    rs_handler_fn *volatile fns = c->fns;
    return run_baseline(&fns, c->n, iters);
}

int main(void)
{
    static const size_t sizes[] = { 1, 10, 100, 1000 };
    int cpu = pin_one_cpu();
    char placement[32];
    if (cpu >= 0)
        snprintf(placement, sizeof(placement), "cpu%d", cpu);
    else
        snprintf(placement, sizeof(placement), "unpinned");
    if (cpu >= 0)
        printf("CPU placement: pinned to CPU %d (1 thread)\n", cpu);
    else
        printf("CPU placement: not pinned (sched_setaffinity: %s), 1 thread\n", strerror(errno));
    printf("cycle = rs_vm_stop(paused) + rs_cont: every handler called twice\n");
    printf("baseline = the same N functions called twice through function pointers\n");
    printf("median of %d runs of >= %d ms each\n\n", RUNS, MIN_RUN_NS / 1000000);
    printf("%6s %14s %14s %8s %16s %16s\n", "N", "ns/cycle", "ns baseline", "ratio",
           "ns/handler", "base ns/handler");

    double cyc[sizeof(sizes) / sizeof(sizes[0])];
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t n = sizes[s];
        bench_vm b;
        int r = bench_vm_init(&b, n);
        if (r < 0) {
            fprintf(stderr, "bench: setting up %zu handlers failed: %s\n", n, strerror(-r));
            return 1;
        }
        rs_handler_fn *fns = malloc(n * sizeof(*fns));
        if (!fns)
            return 1;
        for (size_t i = 0; i < n; i++)
            fns[i] = handler;
        base_ctx bc = { fns, n };

        long it_c = calibrate(cycles_once, &b), it_b = calibrate(baseline_once, &bc);
        if (it_c < 0) {
            fprintf(stderr, "bench: a stop/cont cycle failed\n");
            return 1;
        }
        double vc[RUNS], vb[RUNS];
        for (int k = 0; k < RUNS; k++) {
            vc[k] = run_cycles(&b, it_c);
            vb[k] = baseline_once(&bc, it_b);
            if (vc[k] < 0) {
                fprintf(stderr, "bench: a stop/cont cycle failed\n");
                return 1;
            }
        }
        if (rs_get_state(b.vm) != RS_RUNNING || rs_invalid_transitions(b.vm) != 0) {
            fprintf(stderr, "bench: the machine ended in a wrong state\n");
            return 1;
        }
        double mc = median(vc, RUNS), mb = median(vb, RUNS);
        cyc[s] = mc;
        printf("%6zu %14.1f %14.1f %8.1f %16.2f %16.2f\n", n, mc, mb, mb > 0 ? mc / mb : 0.0,
               mc / (double)n, mb / (double)n);
        char name[64];
        snprintf(name, sizeof(name), "stop+cont cycle, %zu handlers", n);
        bench_emit(name, mc, "ns", "2N calls through function pointers", mb, placement, true);
        free(fns);
        rs_vm_free(b.vm);
    }
    size_t last = sizeof(sizes) / sizeof(sizes[0]) - 1;
    double marginal = (cyc[last] - cyc[0]) / (double)(sizes[last] - sizes[0]);
    printf("\nper-handler cost (N=%zu -> %zu): %.2f ns per cycle (2 calls)\n", sizes[0],
           sizes[last], marginal);
    printf("fixed cost of a cycle without handlers: ~%.0f ns\n", cyc[0] - marginal);
    return 0;
}

/*
 * What every benchmark shares: a monotonic clock, CPU pinning, latency
 * summaries, and the eventfd ping-pong that is the baseline for every
 * cross-thread or cross-process round trip (measured in the same run, with
 * the same CPU placement as the figure it is compared with).
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

uint64_t bench_now_ns(void);
/* Pin the calling thread (or, with bench_pin_pid, a process) to one CPU. */
int bench_pin(int cpu);
int bench_pin_pid(pid_t pid, int cpu);
/* The first (up to) two CPUs this process may run on; returns how many. */
int bench_cpus(int cpus[2]);

typedef struct bench_stats {
    double mean;
    uint64_t p50, p99;
} bench_stats;
/* Sorts lat in place. */
bench_stats bench_summarise(uint64_t *lat, size_t n);

/* Two threads bouncing an eventfd counter: the main thread on cpu_main, the
 * peer on cpu_peer; lat gets `rounds` round trips after `warmup`. */
int bench_eventfd_pingpong(int cpu_main, int cpu_peer, uint64_t *lat, unsigned rounds,
                           unsigned warmup);

/* One figure of the report `make bench` ends with (tests/bench/run collects
 * these lines from every benchmark, over several runs, into one table and
 * build/bench/report.json; docs/hacking.md "Benchmarks").  Prints one line
 *   BENCH {"name":N,"value":V,"unit":U,"baseline":B,"baseline_value":BV,
 *          "placement":P,"better":"lower"|"higher"}
 * on stdout (JSON after the word BENCH).  name says what was
 * measured (unique within the benchmark), baseline what it is compared
 * with (measured in the same run), placement where the threads and
 * processes ran ("cpu0", "cpu0+cpu1", "unpinned"). */
void bench_emit(const char *name, double value, const char *unit, const char *baseline,
                double baseline_value, const char *placement, bool lower_is_better);

#endif

/*
 * What every benchmark shares: a monotonic clock, CPU pinning, latency
 * summaries, and the eventfd ping-pong that is the baseline for every
 * cross-thread or cross-process round trip (measured in the same run, with
 * the same CPU placement as the figure it is compared with).
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

uint64_t bench_now_ns(void);
/* Pin the calling thread (or, with bench_pin_pid, a process) to one CPU. */
int bench_pin(int cpu);
int bench_pin_pid(pid_t pid, int cpu);
/* The first (up to) two CPUs this process may run on; returns how many. */
int bench_cpus(int cpus[2]);

/* A process's resident memory (VmRSS) in KiB, or -1. */
long bench_rss_kib(pid_t pid);

/* SIGTERM to the daemon whose pid is in pidfile (xensim run --pidfile),
 * then the benchmark's scratch directory removed; 0 or -1. */
int bench_daemon_cleanup(const char *pidfile, const char *dir);

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

#endif

/*
 * Shared benchmark helpers (bench_util.h).
 */
#include "bench_util.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int bench_pin(int cpu)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    return pthread_setaffinity_np(pthread_self(), sizeof(s), &s);
}

int bench_pin_pid(pid_t pid, int cpu)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    return sched_setaffinity(pid, sizeof(s), &s);
}

int bench_cpus(int cpus[2])
{
    cpu_set_t s;
    int n = 0;
    cpus[0] = cpus[1] = -1;
    if (sched_getaffinity(0, sizeof(s), &s) == 0)
        for (int i = 0; i < CPU_SETSIZE && n < 2; i++)
            if (CPU_ISSET(i, &s))
                cpus[n++] = i;
    return n;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

bench_stats bench_summarise(uint64_t *lat, size_t n)
{
    bench_stats s = { 0, 0, 0 };
    if (n == 0)
        return s;
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (double)lat[i];
    qsort(lat, n, sizeof(*lat), cmp_u64);
    s.mean = sum / (double)n;
    s.p50 = lat[n / 2];
    s.p99 = lat[n * 99 / 100];
    return s;
}

struct pong {
    int a, b, cpu, rc;
    unsigned total;
};

static void *pong_main(void *arg)
{
    struct pong *p = arg;
    if (bench_pin(p->cpu)) {
        p->rc = -1;
        return NULL;
    }
    for (unsigned i = 0; i < p->total; i++) {
        uint64_t v;
        if (read(p->a, &v, sizeof(v)) != sizeof(v) || write(p->b, &v, sizeof(v)) != sizeof(v)) {
            p->rc = -1;
            return NULL;
        }
    }
    return NULL;
}

int bench_eventfd_pingpong(int cpu_main, int cpu_peer, uint64_t *lat, unsigned rounds,
                           unsigned warmup)
{
    struct pong p = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC), cpu_peer, 0,
                      rounds + warmup };
    int rc = -1;
    pthread_t t;
    if (p.a < 0 || p.b < 0 || bench_pin(cpu_main) || pthread_create(&t, NULL, pong_main, &p))
        goto out;
    rc = 0;
    for (unsigned i = 0; i < rounds + warmup; i++) {
        uint64_t one = 1, v, t0 = bench_now_ns();
        if (write(p.a, &one, sizeof(one)) != sizeof(one) || read(p.b, &v, sizeof(v)) != sizeof(v)) {
            rc = -1;
            break;
        }
        if (i >= warmup)
            lat[i - warmup] = bench_now_ns() - t0;
    }
    if (rc < 0) {               /* unblock the peer if we stopped early */
        uint64_t big = 1;
        for (unsigned i = 0; i < p.total; i++)
            if (write(p.a, &big, sizeof(big)) != sizeof(big))
                break;
    }
    pthread_join(t, NULL);
    if (p.rc)
        rc = -1;
out:
    if (p.a >= 0)
        close(p.a);
    if (p.b >= 0)
        close(p.b);
    return rc;
}

/* s as a JSON string. */
static void put_json(const char *s)
{
    putchar('"');
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

void bench_emit(const char *name, double value, const char *unit, const char *baseline,
                double baseline_value, const char *placement, bool lower_is_better)
{
    printf("BENCH {\"name\":");
    put_json(name);
    printf(",\"value\":%.6g,\"unit\":", value);
    put_json(unit);
    printf(",\"baseline\":");
    put_json(baseline);
    printf(",\"baseline_value\":%.6g,\"placement\":", baseline_value);
    put_json(placement);
    printf(",\"better\":\"%s\"}\n", lower_is_better ? "lower" : "higher");
    fflush(stdout);
}

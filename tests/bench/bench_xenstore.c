/* bench_xenstore: xensim's xenstore daemon through the real libxenstore —
 * read and write round trips per second and watch-fire latency (write at
 * one client -> event at a second) — each next to a raw Unix-socket echo
 * round trip measured in the same run with the same CPU placement: the
 * benchmark, the daemon (a forked child) and the echo server (another
 * forked child) are all pinned to one CPU, so every figure includes the
 * same context switches.  Ratios are xenstore/echo. */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xenstore.h>

#include "../lib/bench_util.h"
#include "xs_testd.h"

#define RUN_NS 1000000000ull   /* each figure runs for about 1 s */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int die(const char *what)
{
    fprintf(stderr, "bench_xenstore: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* Echo server over a socketpair, in a child: the baseline. */
static pid_t start_echo(int *fd)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        die("socketpair");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        close(sv[0]);
        char buf[4096];
        for (;;) {
            ssize_t n = read(sv[1], buf, sizeof(buf));
            if (n <= 0)
                _exit(0);
            if (write(sv[1], buf, (size_t)n) != n)
                _exit(1);
        }
    }
    close(sv[1]);
    *fd = sv[0];
    return pid;
}

/* One echo round trip of a message the size of a small xenstore request. */
static void echo_rt(int fd, size_t len)
{
    char buf[64] = { 0 };
    if (write(fd, buf, len) != (ssize_t)len)
        die("echo write");
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n <= 0)
            die("echo read");
        got += (size_t)n;
    }
}

static double echo_rate(int fd, size_t len, double *lat_us)
{
    uint64_t start = now_ns(), n = 0, t;
    do {
        for (int i = 0; i < 256; i++)
            echo_rt(fd, len);
        n += 256;
        t = now_ns() - start;
    } while (t < RUN_NS);
    if (lat_us)
        *lat_us = (double)t / (double)n / 1000.0;
    return (double)n * 1e9 / (double)t;
}

static char placement[32];

/* A table row, and the same figure for the report (bench_emit). */
static void row(const char *what, const char *unit, double xs, double base, bool lower_better)
{
    printf("%-34s %14.2f %14.2f %-8s %8.3f\n", what, xs, base, unit, xs / base);
    bench_emit(what, xs, unit, "unix-socket echo", base, placement, lower_better);
}

int main(void)
{
    /* Pin to the first CPU we may use; children inherit it. */
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) < 0)
        die("sched_getaffinity");
    int cpu = 0;
    while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &set))
        cpu++;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) < 0)
        die("sched_setaffinity");
    signal(SIGPIPE, SIG_IGN);
    setenv("XENSIM_LOG", "error", 1);

    struct xs_testd d;
    if (xs_testd_start(&d, XS_TESTD_FORK, NULL) < 0)
        return 1;
    int efd;
    pid_t echo = start_echo(&efd);

    setenv("XENSTORED_PATH", d.sock, 1);
    struct xs_handle *a = xs_open(0), *b = xs_open(0);
    if (!a || !b)
        die("xs_open");
    if (!xs_write(a, XBT_NULL, "/bench/node", "value", 5))
        die("xs_write");

    /* Echo sizes as on the wire: READ "/bench/node" = 16 + 12 bytes in,
     * 16 + 5 out; we echo the request size. */
    double echo_lat;
    double echo_rps = echo_rate(efd, 28, &echo_lat);

    uint64_t start = now_ns(), n = 0, t;
    do {
        for (int i = 0; i < 256; i++) {
            unsigned len;
            char *v = xs_read(a, XBT_NULL, "/bench/node", &len);
            if (!v)
                die("xs_read");
            free(v);
        }
        n += 256;
        t = now_ns() - start;
    } while (t < RUN_NS);
    double read_rps = (double)n * 1e9 / (double)t;

    start = now_ns();
    n = 0;
    do {
        for (int i = 0; i < 256; i++)
            if (!xs_write(a, XBT_NULL, "/bench/node", "value", 5))
                die("xs_write");
        n += 256;
        t = now_ns() - start;
    } while (t < RUN_NS);
    double write_rps = (double)n * 1e9 / (double)t;

    /* Watch latency: b watches, a writes; time until b has the event. */
    if (!xs_watch(b, "/bench/w", "tok"))
        die("xs_watch");
    int wfd = xs_fileno(b);
    char **ev;
    /* Consume the registration event. */
    for (;;) {
        struct pollfd p = { wfd, POLLIN, 0 };
        if (poll(&p, 1, 5000) <= 0)
            die("waiting for the registration event");
        if ((ev = xs_check_watch(b))) {
            free(ev);
            break;
        }
    }
    uint64_t total = 0;
    n = 0;
    start = now_ns();
    do {
        uint64_t t0 = now_ns();
        if (!xs_write(a, XBT_NULL, "/bench/w", "1", 1))
            die("xs_write");
        while (!(ev = xs_check_watch(b))) {
            struct pollfd p = { wfd, POLLIN, 0 };
            if (poll(&p, 1, 5000) <= 0)
                die("waiting for a watch event");
        }
        free(ev);
        total += now_ns() - t0;
        n++;
    } while (now_ns() - start < RUN_NS);
    double watch_us = (double)total / (double)n / 1000.0;

    xs_close(a);
    xs_close(b);
    close(efd);
    waitpid(echo, NULL, 0);
    int rc = xs_testd_stop(&d, false);

    printf("xenstore through libxenstore vs a raw Unix-socket echo (28-byte messages)\n");
    printf("CPU placement: benchmark, xensim daemon and echo server all pinned to CPU %d "
           "(sched_setaffinity)\n", cpu);
    printf("%-34s %14s %14s %-8s %8s\n", "figure", "xensim", "echo", "unit", "ratio");
    snprintf(placement, sizeof(placement), "all-on-cpu%d", cpu);
    row("read round trips", "rt/s", read_rps, echo_rps, false);
    row("write round trips", "rt/s", write_rps, echo_rps, false);
    row("watch fire latency (write->event)", "us", watch_us, echo_lat, true);
    return rc == 0 ? 0 : 1;
}

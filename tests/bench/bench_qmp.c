/*
 * The qemu-xen dialect's control latency on rsdm-sim, next to the
 * traditional dialect's in the same run, with the same CPU placement:
 *
 *   status round trip       QMP query-status on an open connection, next to
 *                           a toolstack reading the traditional `runstate`
 *                           node (one xenstore round trip) and to an
 *                           eventfd ping-pong between two threads;
 *   connect + negotiate     libxl's per-operation cost: connect, greeting,
 *                           qmp_capabilities;
 *   stop..save..cont        QMP stop, add-fd, xen-save-devices-state on
 *                           /dev/fdset/N, cont (libxl's sequence, each on a
 *                           new connection as libxl sends them, and on one
 *                           connection), next to the traditional `save`
 *                           until `paused`, then `continue` until `running`.
 *
 * Placement: this process, rsdm-sim and xensim pinned to one CPU (children
 * inherit the mask), as bench_rsdm does.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xenstore.h>

#include "../lib/bench_util.h"
#include "../lib/rsdm_sim.h"
#include "hv.h"

#define ROUNDS 5000
#define WARMUP 200
#define CYCLES 200
#define TIMEOUT_MS 10000

static int cpu;
static char placement[32];

static void die(const char *what)
{
    fprintf(stderr, "bench_qmp: %s\n", what);
    exit(1);
}

/* A table row of medians and its baseline's name, and the same figure for
 * the report (bench_emit; `what` is unique within the benchmark). */
static void row(const char *what, const char *base_name, const bench_stats *v,
                const bench_stats *base, double scale, const char *unit)
{
    printf("  %-44s %10.1f %10.1f %-4s %8.2f\n", what, (double)v->p50 / scale,
           (double)base->p50 / scale, unit, (double)v->p50 / (double)base->p50);
    printf("    baseline: %s\n", base_name);
    bench_emit(what, (double)v->p50 / scale, unit, base_name, (double)base->p50 / scale,
               placement, true);
}

static void exec_ok(xlq *c, const char *cmd, json_t *args, int fd, json_t **ret)
{
    char err[512];
    if (xlq_exec(c, cmd, args, fd, ret, TIMEOUT_MS, err, sizeof(err)) < 0) {
        fprintf(stderr, "bench_qmp: %s\n", err);
        exit(1);
    }
}

static xlq *connect_qmp(rsdm_sim *s)
{
    xlq *c = rsdm_sim_qmp(s);
    if (!c)
        die("cannot connect to rsdm-sim's monitor");
    return c;
}

/* libxl's save of the dm: stop, add-fd, xen-save-devices-state, then the
 * unpause's cont.  On `one` connection, or a new one per command (NULL). */
static void save_cycle(rsdm_sim *s, xlq *one, const char *path)
{
    const char *cmds[] = { "stop", "add-fd", "xen-save-devices-state", "cont" };
    long long set = 0;
    for (int k = 0; k < 4; k++) {
        xlq *c = one ? one : connect_qmp(s);
        json_t *args = NULL, *ret = NULL;
        int fd = -1;
        if (k == 1 && (fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) < 0)
            die("opening the save file");
        if (k == 2) {
            char fn[64];
            snprintf(fn, sizeof(fn), "/dev/fdset/%lld", set);
            args = json_pack("{s:s,s:b}", "filename", fn, "live", 0);
        }
        exec_ok(c, cmds[k], args, fd, &ret);
        if (k == 1) {
            set = json_integer_value(json_object_get(ret, "fdset-id"));
            close(fd);
        }
        json_decref(ret);
        if (k == 2 && one) {   /* one connection: the set would pile up */
            char a[64];
            snprintf(a, sizeof(a), "{\"fdset-id\": %lld}", set);
            exec_ok(c, "remove-fd", json_loads(a, 0, NULL), -1, NULL);
        }
        if (!one)
            xlq_close(c);      /* a closing monitor releases nothing of the set:
                                * libxl leaves it too (QEMU frees unused sets) */
    }
}

int main(void)
{
    int cpus[2];
    if (bench_cpus(cpus) < 1 || bench_pin(cpus[0]))
        die("pinning");
    cpu = cpus[0];
    static uint64_t lat[ROUNDS], base[ROUNDS];

    /* ---- traditional dialect */
    rsdm_sim t;
    if (rsdm_sim_start(&t, "bench-trad", 1) < 0)
        die("traditional rsdm-sim did not start");
    for (unsigned i = 0; i < ROUNDS + WARMUP; i++) {
        uint64_t t0 = bench_now_ns();
        unsigned len;
        free(xs_read(t.xs, XBT_NULL, t.runstate, &len));
        if (i >= WARMUP)
            lat[i - WARMUP] = bench_now_ns() - t0;
    }
    bench_stats s_xsread = bench_summarise(lat, ROUNDS);
    for (unsigned i = 0; i < CYCLES; i++) {
        uint64_t t0 = bench_now_ns();
        if (!xs_write(t.xs, XBT_NULL, t.command, "save", 4) ||
            rsdm_sim_wait_value(&t, t.state, "paused", TIMEOUT_MS) < 0 ||
            !xs_write(t.xs, XBT_NULL, t.command, "continue", 8) ||
            rsdm_sim_wait_value(&t, t.state, "running", TIMEOUT_MS) < 0)
            die("traditional save/continue");
        lat[i] = bench_now_ns() - t0;
    }
    bench_stats s_tsave = bench_summarise(lat, CYCLES);
    rsdm_sim_stop(&t);

    /* ---- qemu-xen dialect */
    rsdm_sim q;
    if (rsdm_sim_start_qmp(&q, "bench-qmp", 1, false) < 0)
        die("qemu-xen rsdm-sim did not start");
    xlq *c = connect_qmp(&q);
    for (unsigned i = 0; i < ROUNDS + WARMUP; i++) {
        uint64_t t0 = bench_now_ns();
        json_t *ret = NULL;
        exec_ok(c, "query-status", NULL, -1, &ret);
        json_decref(ret);
        if (i >= WARMUP)
            lat[i - WARMUP] = bench_now_ns() - t0;
    }
    bench_stats s_status = bench_summarise(lat, ROUNDS);
    for (unsigned i = 0; i < CYCLES; i++) {
        uint64_t t0 = bench_now_ns();
        xlq_close(connect_qmp(&q));
        lat[i] = bench_now_ns() - t0;
    }
    bench_stats s_conn = bench_summarise(lat, CYCLES);
    char path[200];
    snprintf(path, sizeof(path), "%s/qemu-save", q.dir);
    for (unsigned i = 0; i < CYCLES; i++) {
        uint64_t t0 = bench_now_ns();
        save_cycle(&q, c, path);
        lat[i] = bench_now_ns() - t0;
    }
    bench_stats s_qsave1 = bench_summarise(lat, CYCLES);
    for (unsigned i = 0; i < CYCLES; i++) {
        uint64_t t0 = bench_now_ns();
        save_cycle(&q, NULL, path);
        lat[i] = bench_now_ns() - t0;
    }
    bench_stats s_qsave = bench_summarise(lat, CYCLES);
    xlq_close(c);
    rsdm_sim_stop(&q);

    if (bench_eventfd_pingpong(cpu, cpu, base, ROUNDS, WARMUP) < 0)
        die("eventfd ping-pong");
    bench_stats s_pp = bench_summarise(base, ROUNDS);

    printf("rsdm-sim on xensim, both dialects; CPU placement: this process, rsdm-sim and "
           "xensim pinned to CPU %d\n", cpu);
    snprintf(placement, sizeof(placement), "all-on-cpu%d", cpu);
    printf("  %-44s %10s %10s %-4s %8s\n", "figure (median)", "qemu-xen", "baseline", "unit",
           "ratio");
    row("query-status round trip, open conn. (p50)",
        "traditional `runstate` xenstore read (p50)", &s_status, &s_xsread,
        1000.0, "us");
    row("query-status round trip vs ping-pong (p50)", "eventfd ping-pong (p50)",
        &s_status, &s_pp, 1000.0, "us");
    row("connect + greeting + qmp_capabilities (p50)", "one query-status on an open conn. (p50)",
        &s_conn, &s_status, 1000.0, "us");
    row("stop..save..cont, a conn. per cmd, libxl (p50)",
        "traditional save->paused, continue->running (p50)", &s_qsave, &s_tsave,
        1e6, "ms");
    row("stop..save..cont, one connection (p50)",
        "traditional save->paused, continue->running (p50)", &s_qsave1, &s_tsave,
        1e6, "ms");
    printf("RESULT bench_qmp cpu=%d status_p50_ns=%" PRIu64 " xsread_p50_ns=%" PRIu64
           " connect_p50_ns=%" PRIu64 " qmp_save_cycle_p50_ns=%" PRIu64
           " qmp_save_cycle_oneconn_p50_ns=%" PRIu64 " trad_save_cycle_p50_ns=%" PRIu64 "\n",
           cpu, s_status.p50, s_xsread.p50, s_conn.p50, s_qsave.p50, s_qsave1.p50, s_tsave.p50);
    return 0;
}

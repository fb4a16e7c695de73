/*
 * rsdm-sim on the simulated host (issue 7's figures), each next to a
 * baseline measured in the same run with the same CPU placement:
 *
 *   ioreq round trip  a vCPU's port access answered by rsdm-sim (the UART's
 *                     scratch register), next to xensim's minimal emulator
 *                     in a second process and a two-thread eventfd
 *                     ping-pong;
 *   save -> paused    the traditional `save` command until `paused`, next
 *                     to a bare xenstore write -> watch round trip plus one
 *                     fsync of a file of the same size;
 *   start-up          spawn until `state` = `running`, next to spawning
 *                     /bin/true until it exits;
 *   resident memory   rsdm-sim's VmRSS (no guest mappings: the UART never
 *                     maps guest RAM), next to a `sleep` process's.
 *
 * Placement: everything (this process, rsdm-sim, the emulator, xensim) on
 * one CPU, so no figure pays the ~10x cross-CPU wake-up of this machine.
 * The hypervisor runs in this process (tests/lib/xsim_emu); xenstore is a
 * separate `xensim run` daemon.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xenstore.h>

#include "../lib/bench_util.h"
#include "../lib/proc_util.h"
#include "../lib/xsim_emu.h"
#include "hv.h"

#define UART_SCR 0x3ff       /* 16550 scratch register: no side effects */
#define ROUNDS 20000
#define WARMUP 1000
#define SAVES 15
#define STARTS 9
#define WAIT_MS 10000

static char rundir[] = "/tmp/bench-rsdm.XXXXXX";
static char bin[4096];
static int cpu;

static void die(const char *what)
{
    fprintf(stderr, "bench_rsdm: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* The child inherits this thread's pinning (main pins it to `cpu`). */
static pid_t spawn(char *const argv[], const char *log)
{
    pid_t pid = proc_spawn_logged(argv, log);
    if (pid < 0)
        die("fork");
    return pid;
}

/* Blocks on xenstore watch events until path reads want (bounded). */
static int wait_value(struct xs_handle *xs, const char *path, const char *want)
{
    uint64_t end = bench_now_ns() + (uint64_t)WAIT_MS * 1000000;
    for (;;) {
        unsigned len;
        char *v = xs_read(xs, XBT_NULL, path, &len);
        int match = v && strcmp(v, want) == 0;
        free(v);
        if (match)
            return 0;
        int64_t left = (int64_t)(end - bench_now_ns()) / 1000000;
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = { xs_fileno(xs), POLLIN, 0 };
        if (poll(&p, 1, (int)left) > 0) {
            unsigned n;
            char **ev = xs_read_watch(xs, &n);
            free(ev);
        }
    }
}

static char placement[32];

/* A table row, and the same figure for the report (bench_emit). */
static void row(const char *what, double value, double base, const char *unit,
                const char *base_name, const char *base_line)
{
    printf("  %-36s %12.1f %12.1f %-6s %8.2f\n", what, value, base, unit, value / base);
    printf("    baseline: %s\n", base_line);
    bench_emit(what, value, unit, base_name, base, placement, true);
}

int main(void)
{
    const char *b = getenv("RSDM_BUILD");
    snprintf(bin, sizeof(bin), "%s/bin", b ? b : "build");
    if (!mkdtemp(rundir))
        die("mkdtemp");
    int cpus[2];
    if (bench_cpus(cpus) < 1)
        die("sched_getaffinity");
    cpu = cpus[0];
    if (bench_pin(cpu))
        die("pinning");

    /* xenstore: a xensim daemon; the hypervisor: in this process. */
    char xsdir[4200], sock[4300], pidfile[4300], xsbin[4200], log[4300];
    snprintf(xsdir, sizeof(xsdir), "%s/xs", rundir);
    snprintf(sock, sizeof(sock), "%s/xenstored/socket", xsdir);
    snprintf(pidfile, sizeof(pidfile), "%s/xensim.pid", rundir);
    snprintf(xsbin, sizeof(xsbin), "%s/xensim", bin);
    snprintf(log, sizeof(log), "%s/log", rundir);
    char *xsargv[] = { xsbin, "run", "--rundir", xsdir, "--daemon", "--pidfile", pidfile, NULL };
    pid_t xsd = spawn(xsargv, log);
    int st;
    if (waitpid(xsd, &st, 0) != xsd || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "bench_rsdm: xensim did not start (log %s)\n", log);
        return 1;
    }
    setenv("XENSTORED_PATH", sock, 1);
    if (xsim_fixture_start() < 0) {
        fprintf(stderr, "bench_rsdm: cannot start the in-process hypervisor\n");
        return 1;
    }
    hv_log_quiet(true);
    struct xs_handle *xs = xs_open(0);
    if (!xs)
        die("xs_open");

    int id = hv_domain_create(0, 1, 16, "bench-rsdm");
    if (id < 0)
        die("hv_domain_create");
    uint32_t dom = (uint32_t)id;
    char dmdir[128], state[160], cmd[160];
    snprintf(dmdir, sizeof(dmdir), "/local/domain/0/device-model/%u", dom);
    snprintf(state, sizeof(state), "%s/state", dmdir);
    snprintf(cmd, sizeof(cmd), "%s/command", dmdir);
    if (!xs_mkdir(xs, XBT_NULL, dmdir) || !xs_watch(xs, state, "s"))
        die("xenstore setup");

    char rsdm[4200], domarg[16];
    snprintf(rsdm, sizeof(rsdm), "%s/rsdm-sim", bin);
    snprintf(domarg, sizeof(domarg), "%u", dom);
    char *dmargv[] = { rsdm, "-d", domarg, "-serial", "null", "--save-dir", rundir,
                       "--log-level", "warning", NULL };
    char *trueargv[] = { "/bin/true", NULL };

    /* Start-up to `running`, against spawning /bin/true. */
    uint64_t start[STARTS], tstart[STARTS];
    pid_t dm = -1;
    for (int i = 0; i < STARTS; i++) {
        xs_rm(xs, XBT_NULL, state);
        uint64_t t0 = bench_now_ns();
        dm = spawn(dmargv, log);
        if (wait_value(xs, state, "running") < 0) {
            fprintf(stderr, "bench_rsdm: rsdm-sim never wrote running (log %s)\n", log);
            return 1;
        }
        start[i] = bench_now_ns() - t0;
        if (i < STARTS - 1) {
            kill(dm, SIGTERM);
            waitpid(dm, &st, 0);
        }
        t0 = bench_now_ns();
        pid_t t = spawn(trueargv, "/dev/null");
        waitpid(t, &st, 0);
        tstart[i] = bench_now_ns() - t0;
    }
    bench_stats s_start = bench_summarise(start, STARTS), s_true = bench_summarise(tstart, STARTS);

    /* Resident memory, against a sleeping process. */
    char *sleepargv[] = { "/bin/sleep", "30", NULL };
    pid_t sl = spawn(sleepargv, "/dev/null");
    long rss_dm = proc_rss_kib(dm), rss_sleep = -1;
    for (int i = 0; i < 1000 && rss_sleep <= 0; i++) {
        rss_sleep = proc_rss_kib(sl);    /* until exec has replaced the child */
        char exe[64], target[256];
        snprintf(exe, sizeof(exe), "/proc/%d/exe", (int)sl);
        ssize_t n = readlink(exe, target, sizeof(target) - 1);
        if (n <= 0 || strstr(target, "sleep") == NULL)
            rss_sleep = -1;
    }
    kill(sl, SIGTERM);
    waitpid(sl, &st, 0);

    /* ioreq round trips through rsdm-sim. */
    hv_domain_unpause(dom);
    struct hv_domain *d = hv_domain_get(dom);
    static uint64_t lat_dm[ROUNDS], lat_pp[ROUNDS];
    for (unsigned i = 0; i < ROUNDS + WARMUP; i++) {
        uint64_t v = i & 0xff, t0 = bench_now_ns();
        if (xsim_pio(d, 0, (i & 1) == 0, UART_SCR, 1, &v) != 0) {
            fprintf(stderr, "bench_rsdm: port access %u through rsdm-sim failed\n", i);
            return 1;
        }
        if (i >= WARMUP)
            lat_dm[i - WARMUP] = bench_now_ns() - t0;
    }
    if (bench_eventfd_pingpong(cpu, cpu, lat_pp, ROUNDS, WARMUP) < 0)
        die("eventfd ping-pong");
    bench_stats s_dm = bench_summarise(lat_dm, ROUNDS), s_pp = bench_summarise(lat_pp, ROUNDS);

    /* save -> paused, against write -> watch event + fsync of the same size. */
    uint64_t save[SAVES], base[SAVES];
    char probe[160], scratch[4300], savefile[4300];
    snprintf(probe, sizeof(probe), "%s/probe", dmdir);
    snprintf(scratch, sizeof(scratch), "%s/fsync-probe", rundir);
    snprintf(savefile, sizeof(savefile), "%s/qemu-save.%u", rundir, dom);
    if (!xs_watch(xs, probe, "p"))
        die("xs_watch");
    for (int i = 0; i < SAVES; i++) {
        hv_domain_pause(dom);                    /* libxl pauses before it saves */
        uint64_t t0 = bench_now_ns();
        if (!xs_write(xs, XBT_NULL, cmd, "save", 4) || wait_value(xs, state, "paused") < 0) {
            fprintf(stderr, "bench_rsdm: save never acknowledged (log %s)\n", log);
            return 1;
        }
        save[i] = bench_now_ns() - t0;
        if (!xs_write(xs, XBT_NULL, cmd, "continue", 8) || wait_value(xs, state, "running") < 0)
            die("continue");
        hv_domain_unpause(dom);

        long size = 0;                           /* the state file just written */
        FILE *f = fopen(savefile, "r");
        if (f) {
            fseek(f, 0, SEEK_END);
            size = ftell(f);
            fclose(f);
        }
        char val[16];
        snprintf(val, sizeof(val), "%d", i);
        t0 = bench_now_ns();
        if (!xs_write(xs, XBT_NULL, probe, val, strlen(val)) || wait_value(xs, probe, val) < 0)
            die("probe write");
        int fd = open(scratch, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        static char zero[1 << 16];
        if (fd < 0 || write(fd, zero, (size_t)(size > 0 && size < (long)sizeof(zero) ? size : 128)) < 0 ||
            fsync(fd) < 0)
            die("fsync probe");
        close(fd);
        base[i] = bench_now_ns() - t0;
    }
    bench_stats s_save = bench_summarise(save, SAVES), s_base = bench_summarise(base, SAVES);

    printf("rsdm-sim on xensim; CPU placement: this process, rsdm-sim, xensim and the "
           "eventfd peer all pinned to CPU %d\n", cpu);
    printf("  %-36s %12s %12s %-6s %8s\n", "figure (median)", "rsdm", "baseline", "unit", "ratio");
    snprintf(placement, sizeof(placement), "all-on-cpu%d", cpu);
    char pp_line[96];
    snprintf(pp_line, sizeof(pp_line), "eventfd ping-pong between two threads (%d round trips)",
             ROUNDS);
    row("ioreq round trip (UART scratch reg)", (double)s_dm.p50 / 1000.0,
        (double)s_pp.p50 / 1000.0, "us", "eventfd ping-pong", pp_line);
    row("save -> paused", (double)s_save.p50 / 1e6, (double)s_base.p50 / 1e6, "ms",
        "xenstore write->watch + fsync",
        "xenstore write -> watch event + one fsync of the same size");
    row("start-up to running", (double)s_start.p50 / 1e6, (double)s_true.p50 / 1e6, "ms",
        "fork+exec of /bin/true", "fork+exec+exit of /bin/true");
    row("resident memory", (double)rss_dm, (double)rss_sleep, "KiB", "VmRSS of /bin/sleep",
        "VmRSS of /bin/sleep");
    printf("RESULT bench_rsdm cpu=%d ioreq_p50_ns=%" PRIu64 " eventfd_p50_ns=%" PRIu64
           " save_p50_ns=%" PRIu64 " save_base_p50_ns=%" PRIu64 " start_p50_ns=%" PRIu64
           " rss_kib=%ld\n", cpu, s_dm.p50, s_pp.p50, s_save.p50, s_base.p50, s_start.p50, rss_dm);

    kill(dm, SIGTERM);
    waitpid(dm, &st, 0);
    hv_domain_put(d);
    hv_domain_destroy(dom);
    xs_close(xs);
    xsim_fixture_stop();
    FILE *pf = fopen(pidfile, "r");
    int xpid = 0;
    if (pf && fscanf(pf, "%d", &xpid) == 1 && xpid > 0)
        kill(xpid, SIGTERM);
    if (pf)
        fclose(pf);
    char rm[4300];
    snprintf(rm, sizeof(rm), "rm -rf '%s'", rundir);
    return system(rm) == 0 ? 0 : 1;
}

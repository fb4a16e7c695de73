/*
 * Many guests on one simulated host (issue 13.7): N guests of 4-8 MiB, one
 * rsdm-sim each, on one xensim, driven by `xensim xl` as a toolstack would:
 *
 *   create   N `xl create` at once (dm spawned, `running`, unpaused)
 *   save     N `xl save` at once (suspend, the dm's `save`, guest memory
 *            and the dm's state into a file, domain destroyed)
 *   restore  N `xl restore -p` at once (new domain, memory, a new rsdm-sim
 *            with -loadvm, `running`)
 *   resume   N `xl unpause` at once
 *
 * Every page of every guest carries a tag written through the foreign map
 * before the save and compared after the restore, so the streams move the
 * guests' full 4-8 MiB and a lost page fails the benchmark.
 *
 * Baseline, measured in the same run: one guest through the same phases
 * (median of BASE_REPS cycles), times N - what doing the N guests one after
 * another would cost.  A ratio below 1 is what running them together saves.
 * Resident memory: the sum of the rsdm-sim processes' VmRSS over N, next to
 * the single guest's rsdm-sim.
 *
 * Placement: nothing pinned; every process floats over the CPUs this one
 * may use (printed), because the point is N processes sharing the machine.
 *
 * RSDM_BENCH_SCALE=64,256 picks the guest counts; by default 64 and 256 in
 * make bench's first run (BENCH_RUN=1) or alone, 64 in the others.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xenctrl.h>
#include <xenforeignmemory.h>
#include <xenstore.h>

#include "../lib/bench_util.h"
#include "../lib/proc_util.h"

#define MAX_GUESTS 1024
#define MAX_SIZES 8
#define BASE_REPS 3
#define PAGE 4096u
#define XL_TIMEOUT "120"

enum phase { PH_CREATE, PH_SAVE, PH_RESTORE, PH_RESUME, PH_DESTROY, PH_COUNT };
static const char *const phase_name[PH_COUNT] = { "create", "save", "restore", "resume (unpause)",
                                                  "destroy" };

struct guest {
    unsigned idx, mib, domid;
    pid_t pid;
};

static char tmpdir[] = "/tmp/bench-scale.XXXXXX";
static char rundir[4200], xensim[4200], rsdm[4200];
static struct guest guests[MAX_GUESTS];
static xenforeignmemory_handle *fmem;
static struct xs_handle *xs;

static char pidfile[4300];
static unsigned live_guests;   /* guests [0, live_guests) have a domain and a dm */

/* A failed run leaves no processes behind: the dms (which would wait for
 * their xenstored to come back) and the daemon; the files stay. */
static void stop_everything(void)
{
    for (unsigned i = 0; xs && i < live_guests; i++) {
        char p[128];
        unsigned len;
        snprintf(p, sizeof(p), "/local/domain/%u/image/device-model-pid", guests[i].domid);
        char *v = xs_read(xs, XBT_NULL, p, &len);
        if (v && atol(v) > 1)
            kill((pid_t)atol(v), SIGKILL);
        free(v);
    }
    bench_daemon_stop(pidfile);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench_scale: ");
    vfprintf(stderr, fmt, ap);
    if (strstr(tmpdir, "XXXXXX"))
        fputc('\n', stderr);
    else
        fprintf(stderr, " (files in %s)\n", tmpdir);
    va_end(ap);
    stop_everything();
    exit(1);
}

static void guest_file(const struct guest *g, const char *what, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s.%u", tmpdir, what, g->idx);
}

/* Starts `xensim xl --rundir R --timeout T args...` for one guest, stdout to
 * out.<idx>, stderr appended to log.<idx>. */
static pid_t start_xl(const struct guest *g, const char *a1, const char *a2, const char *a3)
{
    char out[4300], log[4300];
    guest_file(g, "out", out, sizeof(out));
    guest_file(g, "log", log, sizeof(log));
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (o < 0 || e < 0)
            _exit(126);
        dup2(o, 1);
        dup2(e, 2);
        execl(xensim, xensim, "xl", "--rundir", rundir, "--timeout", XL_TIMEOUT, a1, a2, a3,
              (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* The domid xl printed for a guest; 0 when it printed none. */
static unsigned read_domid(const struct guest *g)
{
    char out[4300];
    guest_file(g, "out", out, sizeof(out));
    FILE *f = fopen(out, "r");
    unsigned d = 0;
    if (!f || fscanf(f, "%u", &d) != 1)
        d = 0;
    if (f)
        fclose(f);
    return d;
}

/* One phase for guests [0, n), all xl commands started together; returns
 * the wall time from the first start to the last exit. */
static uint64_t run_phase(enum phase ph, unsigned n)
{
    uint64_t t0 = bench_now_ns();
    for (unsigned i = 0; i < n; i++) {
        struct guest *g = &guests[i];
        char cfg[4300], sav[4300], dom[16];
        guest_file(g, "cfg", cfg, sizeof(cfg));
        guest_file(g, "sav", sav, sizeof(sav));
        snprintf(dom, sizeof(dom), "%u", g->domid);
        switch (ph) {
        case PH_CREATE: g->pid = start_xl(g, "create", cfg, NULL); break;
        case PH_SAVE: g->pid = start_xl(g, "save", dom, sav); break;
        case PH_RESTORE: g->pid = start_xl(g, "restore", "-p", sav); break;
        case PH_RESUME: g->pid = start_xl(g, "unpause", dom, NULL); break;
        case PH_DESTROY: g->pid = start_xl(g, "destroy", dom, NULL); break;
        case PH_COUNT: break;
        }
    }
    unsigned failed = 0, first = 0;
    for (unsigned i = 0; i < n; i++) {
        int st;
        while (waitpid(guests[i].pid, &st, 0) < 0)
            if (errno != EINTR)
                die("waitpid: %s", strerror(errno));
        bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
        /* A new domain's id, also when others failed: their dms must be
         * stopped by die(). */
        if (ph == PH_CREATE || ph == PH_RESTORE) {
            guests[i].domid = ok ? read_domid(&guests[i]) : 0;
            ok = ok && guests[i].domid != 0;
        }
        if (!ok && !failed++)
            first = i;
    }
    uint64_t t = bench_now_ns() - t0;
    live_guests = ph == PH_SAVE || ph == PH_DESTROY ? 0 : n;
    if (failed)
        die("%s: %u of %u xl commands failed or printed no domid, the first for guest %u "
            "(see %s/log.%u)", phase_name[ph], failed, n, first, tmpdir, first);
    return t;
}

/* Maps all of a guest's RAM; the tag of each page is its guest and frame. */
static uint64_t *map_guest(const struct guest *g, xen_pfn_t *pfns, int *err)
{
    size_t pages = (size_t)g->mib * (1u << 20) / PAGE;
    for (size_t p = 0; p < pages; p++)
        pfns[p] = p;
    void *m = xenforeignmemory_map(fmem, g->domid, PROT_READ | PROT_WRITE, pages, pfns, err);
    if (!m)
        die("guest %u (domain %u): mapping its RAM: %s", g->idx, g->domid, strerror(errno));
    return m;
}

static uint64_t tag(const struct guest *g, size_t pfn)
{
    return 0x5ca1e00000000000ull | (uint64_t)g->idx << 24 | pfn;
}

static void fill_or_check(unsigned n, bool check)
{
    static xen_pfn_t pfns[(8u << 20) / PAGE];
    static int err[(8u << 20) / PAGE];
    for (unsigned i = 0; i < n; i++) {
        const struct guest *g = &guests[i];
        size_t pages = (size_t)g->mib * (1u << 20) / PAGE, words = PAGE / sizeof(uint64_t);
        uint64_t *m = map_guest(g, pfns, err);
        for (size_t p = 0; p < pages; p++) {
            uint64_t *w = m + p * words;
            if (!check)
                w[0] = w[words - 1] = tag(g, p);
            else if (w[0] != tag(g, p) || w[words - 1] != tag(g, p))
                die("guest %u (domain %u): page %zu not restored (%#" PRIx64 ")", g->idx,
                    g->domid, p, w[0]);
        }
        xenforeignmemory_unmap(fmem, m, pages);
    }
}

/* Sum of the guests' rsdm-sim VmRSS, found through the pid libxl records. */
static long rss_sum(unsigned n)
{
    long sum = 0;
    for (unsigned i = 0; i < n; i++) {
        char p[128];
        unsigned len;
        snprintf(p, sizeof(p), "/local/domain/%u/image/device-model-pid", guests[i].domid);
        char *v = xs_read(xs, XBT_NULL, p, &len);
        long kib = v ? proc_rss_kib((pid_t)atol(v)) : -1;
        free(v);
        if (kib < 0)
            die("guest %u (domain %u): no device model process to measure", i, guests[i].domid);
        sum += kib;
    }
    return sum;
}

/* No simulated guest workload (xensim_workload = "none"): its runner keeps
 * its state page at 1 MiB of guest RAM, where this benchmark's own tags
 * are checked after the restore. */
static void write_cfg(struct guest *g)
{
    char cfg[4300];
    guest_file(g, "cfg", cfg, sizeof(cfg));
    FILE *f = fopen(cfg, "w");
    if (!f || fprintf(f,
                      "name = \"scale%u\"\nmemory = %u\nvcpus = 1\nserial = \"null\"\n"
                      "xensim_workload = \"none\"\n"
                      "device_model_override = \"%s\"\n"
                      "device_model_args_hvm = [ \"--save-dir\", \"%s/xl/lib\", "
                      "\"--log-level\", \"warning\" ]\n",
                      g->idx, g->mib, rsdm, rundir) < 0 || fclose(f) != 0)
        die("writing %s: %s", cfg, strerror(errno));
}

struct cycle {
    uint64_t ns[PH_COUNT];
    long rss_created, rss_restored;   /* sums, KiB */
    uint64_t tag_ns;                  /* tagging and checking the pages */
    uint64_t total_ns;                /* the whole cycle, RSS reads included */
};

/* The whole cycle for guests [0, n); destroy is untimed housekeeping. */
static struct cycle run_cycle(unsigned n)
{
    struct cycle c;
    uint64_t start = bench_now_ns();
    c.ns[PH_CREATE] = run_phase(PH_CREATE, n);
    c.rss_created = rss_sum(n);
    uint64_t t0 = bench_now_ns();
    fill_or_check(n, false);
    c.tag_ns = bench_now_ns() - t0;
    c.ns[PH_SAVE] = run_phase(PH_SAVE, n);
    c.ns[PH_RESTORE] = run_phase(PH_RESTORE, n);
    c.ns[PH_RESUME] = run_phase(PH_RESUME, n);
    c.rss_restored = rss_sum(n);
    t0 = bench_now_ns();
    fill_or_check(n, true);
    c.tag_ns += bench_now_ns() - t0;
    c.ns[PH_DESTROY] = run_phase(PH_DESTROY, n);
    c.total_ns = bench_now_ns() - start;
    return c;
}

static unsigned parse_sizes(unsigned *sizes)
{
    const char *s = getenv("RSDM_BENCH_SCALE"), *run = getenv("BENCH_RUN");
    /* 256 guests take minutes on two CPUs: measured in make bench's first
     * run, the other runs repeat 64 (the report counts runs per figure). */
    if (!s || !*s)
        s = !run || strcmp(run, "1") == 0 ? "64,256" : "64";
    unsigned n = 0;
    while (*s) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno || end == s || v < 1 || v > MAX_GUESTS || n == MAX_SIZES ||
            (*end && *end != ','))
            die("RSDM_BENCH_SCALE='%s': expected up to %d guest counts 1-%d separated by commas",
                getenv("RSDM_BENCH_SCALE"), MAX_SIZES, MAX_GUESTS);
        sizes[n++] = (unsigned)v;
        s = *end ? end + 1 : end;
    }
    return n;
}

/* Each guest needs about ten fds in xensim (its dm's connections and
 * memfds) and the dm's own; raise the soft limit to the hard one for this
 * process and everything it starts, xensim included. */
static void raise_nofile(unsigned guests_max)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        die("getrlimit: %s", strerror(errno));
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        die("setrlimit: %s", strerror(errno));
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 64 + (rlim_t)guests_max * 16)
        die("RLIMIT_NOFILE hard limit %llu is too low for %u guests (need ~%u)",
            (unsigned long long)rl.rlim_cur, guests_max, 64 + guests_max * 16);
}

/* A table row, and the same figure for the report (bench_emit). */
static void row(const char *what, unsigned n, double value, double base, const char *unit,
                const char *base_name)
{
    char label[64];
    snprintf(label, sizeof(label), "%s, N=%u", what, n);
    printf("  %-34s %12.1f %12.1f %-4s %8.2f\n", label, value, base, unit, value / base);
    bench_emit(label, value, unit, base_name, base, "unpinned", true);
}

int main(void)
{
    unsigned sizes[MAX_SIZES], nsizes = parse_sizes(sizes), nmax = 0;
    for (unsigned i = 0; i < nsizes; i++)
        nmax = sizes[i] > nmax ? sizes[i] : nmax;
    raise_nofile(nmax);

    const char *b = getenv("RSDM_BUILD");
    if (!mkdtemp(tmpdir))
        die("mkdtemp: %s", strerror(errno));
    char rel[4200];
    snprintf(rel, sizeof(rel), "%s/bin/xensim", b ? b : "build");
    if (!realpath(rel, xensim))
        die("cannot find %s: %s", rel, strerror(errno));
    snprintf(rel, sizeof(rel), "%s/bin/rsdm-sim", b ? b : "build");
    if (!realpath(rel, rsdm))
        die("cannot find %s: %s", rel, strerror(errno));
    snprintf(rundir, sizeof(rundir), "%s/run", tmpdir);
    char sock[4300];
    snprintf(sock, sizeof(sock), "%s/xenstored/socket", rundir);
    snprintf(pidfile, sizeof(pidfile), "%s/xensim.pid", tmpdir);
    setenv("XENSIM_RUNDIR", rundir, 1);
    setenv("XENSTORED_PATH", sock, 1);

    pid_t d = fork();
    if (d == 0) {
        char log[4300];
        snprintf(log, sizeof(log), "%s/xensim.log", tmpdir);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(xensim, xensim, "run", "--rundir", rundir, "--daemon", "--pidfile", pidfile,
              "--no-persist", (char *)NULL);
        _exit(127);
    }
    int st;
    if (d < 0 || waitpid(d, &st, 0) != d || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        die("xensim did not start");
    if (!(xs = xs_open(0)) || !(fmem = xenforeignmemory_open(NULL, 0)))
        die("connecting to xensim: %s", strerror(errno));

    for (unsigned i = 0; i < nmax; i++) {
        guests[i] = (struct guest){ .idx = i, .mib = 4 + i % 5 };
        write_cfg(&guests[i]);
    }

    /* Baseline: guest 0 alone (8 MiB would favour N; 4-8 averages 6, so
     * the single guest is one of 6 MiB). */
    guests[0].mib = 6;
    write_cfg(&guests[0]);
    uint64_t base[PH_COUNT][BASE_REPS];
    long base_rss_created = 0, base_rss_restored = 0;
    for (int r = 0; r < BASE_REPS; r++) {
        struct cycle c = run_cycle(1);
        for (int p = 0; p < PH_COUNT; p++)
            base[p][r] = c.ns[p];
        base_rss_created = c.rss_created;
        base_rss_restored = c.rss_restored;
    }
    double base_ms[PH_COUNT];
    for (int p = 0; p < PH_COUNT; p++)
        base_ms[p] = (double)bench_summarise(base[p], BASE_REPS).p50 / 1e6;
    guests[0].mib = 4;
    write_cfg(&guests[0]);

    int cpus[2];
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) < 0 || bench_cpus(cpus) < 1)
        die("sched_getaffinity: %s", strerror(errno));
    printf("N guests of 4-8 MiB, one rsdm-sim each, on one xensim through `xensim xl`; "
           "CPU placement: nothing pinned, %d CPUs available (first %d)\n",
           CPU_COUNT(&set), cpus[0]);
    printf("  %-34s %12s %12s %-4s %8s\n", "phase (wall time)", "N together", "1 x N", "unit",
           "ratio");
    for (unsigned s = 0; s < nsizes; s++) {
        unsigned n = sizes[s];
        struct cycle c = run_cycle(n);
        for (int p = 0; p < PH_DESTROY; p++)
            row(phase_name[p], n, (double)c.ns[p] / 1e6, base_ms[p] * n, "ms",
                "one guest alone x N");
        row("rsdm RSS per guest, created", n, (double)c.rss_created / n, (double)base_rss_created,
            "KiB", "one guest's rsdm-sim alone");
        row("rsdm RSS per guest, restored", n, (double)c.rss_restored / n,
            (double)base_rss_restored, "KiB", "one guest's rsdm-sim alone");
        printf("RESULT bench_scale n=%u create_ms=%.1f save_ms=%.1f restore_ms=%.1f "
               "resume_ms=%.1f destroy_ms=%.1f tag_check_ms=%.1f cycle_ms=%.1f rss_created_kib=%.0f "
               "rss_restored_kib=%.0f\n",
               n, (double)c.ns[PH_CREATE] / 1e6, (double)c.ns[PH_SAVE] / 1e6,
               (double)c.ns[PH_RESTORE] / 1e6, (double)c.ns[PH_RESUME] / 1e6,
               (double)c.ns[PH_DESTROY] / 1e6, (double)c.tag_ns / 1e6,
               (double)c.total_ns / 1e6, (double)c.rss_created / n, (double)c.rss_restored / n);
    }
    printf("    baseline: one 6 MiB guest through the same phases alone (median of %d), "
           "times N; RSS: that guest's rsdm-sim\n", BASE_REPS);
    printf("    every page of every guest tagged before the save and checked after the "
           "restore\n");

    xs_close(xs);
    xenforeignmemory_close(fmem);
    return bench_daemon_cleanup(pidfile, tmpdir) == 0 ? 0 : 1;
}

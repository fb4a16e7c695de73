/*
 * The soak (issue 13.6, `make soak`): a guest writes and reads checked
 * data continuously on two disks of a real rsdm-sim — `hda` on PIIX3 IDE
 * from vCPU 0 and `sda` on ICH9 AHCI from vCPU 1, werror=stop and
 * rerror=stop — while a driver issues, at random, for SOAK_SECONDS
 * (default 1800):
 *
 *   stop/cont       `stop`, then `continue`;
 *   burst           EIO or ENOSPC on one or both disks, switched on (config
 *                   file + SIGUSR1) until the VM stops in io-error, 0-2
 *                   re-issues failing again, switched off, `continue`;
 *   save/restore    the traditional `save`, rsdm-sim exits, a new one
 *                   restores the file (-loadvm), as libxl does;
 *   save in error   a save/restore while the VM is stopped in io-error
 *                   with the failing command parked or halted: the new
 *                   rsdm-sim (on a healthy disk) re-issues it;
 *   migrate         as libxl's migration: the domain suspended, the dm
 *                   saves, a new domain (new domid) on the same in-process
 *                   hypervisor receives the guest RAM, a new rsdm-sim for
 *                   it restores the file, both vCPUs (the writers, in the
 *                   middle of a command or not) continue there, the source
 *                   domain and dm go (rsdm_sim_migrate_*, guest_hv_move);
 *   migrate in error  the same while stopped in io-error: the parked
 *                   command completes on the destination.
 *
 * Dialect: traditional only (xenstore commands); the soak does not drive
 * the qemu-xen dialect (QMP) yet.
 *
 * At the end every sector of both disks is read back through the devices
 * and both images are checked from the host: 0 lost, 0 stale, 0
 * corrupted, 0 all-ones reads, no error seen by the guest.  Each rsdm-sim's
 * open fds (/proc/PID/fd) and RSS (VmRSS) are sampled at the start of its
 * life (once the guest has done some I/O on it) and at its end: growth is
 * bounded by SOAK_FD_SLACK fds (default 2) and SOAK_RSS_SLACK_KB
 * (default 16384; 4 GiB in a sanitizer build, whose runtime keeps freed
 * memory) per life, and the last rsdm-sim's against the first's.
 * Every other phase (a quarter of the run, at most 60 s) has no
 * save/restore, so one rsdm-sim serves thousands of actions.  SOAK_SEED
 * fixes the random choices (default: the time).
 * Exit status 0 when every check holds, 1 otherwise.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lib/dual_guest.h"
#include "guest_hv.h"
#include "hv.h"

#define SECTORS 16384u

/* Sanitizer runtimes hold freed memory back (ASan's quarantine), so RSS
 * says nothing about leaks there; LeakSanitizer at rsdm-sim's exit does. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifdef SANITIZED
#define RSS_SLACK_KB (4L << 20)
#else
#define RSS_SLACK_KB 16384L
#endif
#define WAIT_MS 30000

typedef struct sample {
    long fds, rss_kb;
} sample;

typedef struct life {
    pid_t pid;
    sample start, end;
    unsigned ops;                     /* driver actions it served */
} life;

static dual_guest G;
static dual_writer W[DUAL_DISKS];
/* The current life, the first, the longest (most actions) and the
 * largest growths seen in any life. */
static life cur, first, longest;
static unsigned nlives;
static long max_dfd, max_drss;
static uint64_t rng = 0x853c49e6748fea9bull;
static unsigned n_stopcont, n_burst, n_refail, n_save, n_save_err, n_migrate, n_migrate_err,
    n_nostop;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("soak: FAILED: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (rsdm/xensim log: %s/log)\n", G.sim.dir);
    for (unsigned d = 0; d < DUAL_DISKS; d++)
        if (W[d].err[0])
            fprintf(stderr, "soak: %s writer: %s\n", dual_guest_vdev[d], W[d].err);
    /* Leave the directory with the log for a post-mortem. */
    exit(1);
}

#define CHECK(cond, ...) do { if (!(cond)) die(__VA_ARGS__); } while (0)

static sample take_sample(pid_t pid)
{
    sample s = { -1, -1 };
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *dir = opendir(path);
    if (dir) {
        s.fds = 0;
        for (struct dirent *e; (e = readdir(dir));)
            s.fds += e->d_name[0] != '.';
        closedir(dir);
    }
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f) {
        while (fgets(line, sizeof(line), f))
            if (sscanf(line, "VmRSS: %ld kB", &s.rss_kb) == 1)
                break;
        fclose(f);
    }
    CHECK(s.fds > 0 && s.rss_kb > 0, "cannot sample rsdm-sim %d's fds and RSS", (int)pid);
    return s;
}

/* Until both writers did `n` more commands (bounded): the guest runs. */
static void let_guest_run(unsigned n)
{
    for (unsigned d = 0; d < DUAL_DISKS; d++) {
        unsigned c = atomic_load(&W[d].cmds);
        CHECK(dual_writer_wait(&W[d], c + n, WAIT_MS), "%s writer ended", dual_guest_vdev[d]);
        CHECK(atomic_load(&W[d].cmds) >= c + n, "%s made no progress in %d ms",
              dual_guest_vdev[d], WAIT_MS);
    }
}

static void life_begins(void)
{
    let_guest_run(10);   /* buffers and caches of a working dm in place */
    cur = (life){ .pid = G.sim.dm, .start = take_sample(G.sim.dm) };
    nlives++;
}

static void life_ends(void)
{
    CHECK(cur.pid == G.sim.dm, "rsdm-sim changed behind the driver's back");
    cur.end = take_sample(G.sim.dm);
    long dfd = cur.end.fds - cur.start.fds, drss = cur.end.rss_kb - cur.start.rss_kb;
    max_dfd = dfd > max_dfd ? dfd : max_dfd;
    max_drss = drss > max_drss ? drss : max_drss;
    if (nlives == 1)
        first = cur;
    if (cur.ops >= longest.ops)
        longest = cur;
}

static void config_text(char *out, size_t len, const char *rule, unsigned target)
{
    size_t n = 0;
    for (unsigned d = 0; d < DUAL_DISKS; d++) {
        n += (size_t)snprintf(out + n, len - n, "[disk %s]\nwerror = stop\nrerror = stop\n",
                              dual_guest_vdev[d]);
        if (rule && (target == d || target == DUAL_DISKS))
            n += (size_t)snprintf(out + n, len - n, "inject = %s\n", rule);
    }
}

static void wait_runstate(const char *want)
{
    char rs[128];
    if (rsdm_sim_wait_value(&G.sim, G.sim.runstate, want, WAIT_MS) < 0) {
        dual_guest_runstate(&G, rs, sizeof(rs));
        die("runstate is '%s', not '%s', after %d ms", rs, want, WAIT_MS);
    }
}

static void stop_cont(void)
{
    CHECK(dual_guest_command(&G, "stop") == 0, "stop");
    wait_runstate("paused holds=paused");
    CHECK(dual_guest_command(&G, "continue") == 0, "continue");
    wait_runstate("running holds=");
    n_stopcont++;
}

/* Switches a rule on until the VM stops in io-error.  false if it did not
 * stop (the rule then is off again). */
static bool error_on(char *cfg, size_t len)
{
    static const char *const errnos[] = { "EIO", "ENOSPC" };
    char rule[128];
    unsigned target = (unsigned)(next() % 3);
    snprintf(rule, sizeof(rule), "op=%s errno=%s", next() % 3 ? "write" : "any",
             errnos[next() % 2]);
    config_text(cfg, len, rule, target);
    CHECK(dual_guest_inject(&G, cfg) == 0, "switching injection on");
    if (rsdm_sim_wait_value(&G.sim, G.sim.runstate, "io-error holds=io-error", 5000) < 0) {
        /* Both writers are always busy: a rule on a disk must stop the VM. */
        n_nostop++;
        config_text(cfg, len, NULL, 0);
        CHECK(dual_guest_inject(&G, cfg) == 0, "switching injection off");
        return false;
    }
    return true;
}

static void burst(void)
{
    char cfg[512];
    if (!error_on(cfg, sizeof(cfg)))
        return;
    unsigned k = (unsigned)(next() % 3);
    for (unsigned i = 0; i < k; i++) {
        long errs = dual_guest_log_count(&G, " error: ");
        CHECK(errs >= 0 && dual_guest_command(&G, "continue") == 0, "continue under the rule");
        CHECK(dual_guest_log_wait(&G, " error: ", errs, WAIT_MS) == 0,
              "a re-issued command under the rule did not fail again");
        wait_runstate("io-error holds=io-error");
        n_refail++;
    }
    config_text(cfg, sizeof(cfg), NULL, 0);
    CHECK(dual_guest_inject(&G, cfg) == 0, "switching injection off");
    CHECK(dual_guest_resume(&G, 20, NULL) == 0, "resume after a burst");
    n_burst++;
}

/* The VM stopped in io-error with the failing command parked or halted,
 * and the config a new rsdm-sim reads healthy (this one keeps its rule):
 * false if the rule did not stop the VM. */
static bool park_in_error(void)
{
    char cfg[512];
    if (!error_on(cfg, sizeof(cfg)))
        return false;
    config_text(cfg, sizeof(cfg), NULL, 0);
    CHECK(dual_guest_config(&G, cfg) == 0, "config");
    return true;
}

static void save_restore(bool in_error)
{
    if (in_error && !park_in_error())
        return;
    CHECK(hv_domain_pause(G.sim.dom) == 0, "pausing the domain");
    CHECK(dual_guest_command(&G, "save") == 0, "save");
    if (rsdm_sim_wait_value(&G.sim, G.sim.state, "paused", WAIT_MS) < 0)
        die("save: no `paused` within %d ms", WAIT_MS);
    life_ends();
    char file[512];
    rsdm_sim_save_path(&G.sim, file, sizeof(file));
    int st = rsdm_sim_stop_dm(&G.sim);
    CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "rsdm-sim's exit after save: %d", st);
    CHECK(rsdm_sim_restore_dm(&G.sim, file, G.conf) == 0, "restore into a new rsdm-sim");
    CHECK(hv_domain_unpause(G.sim.dom) == 0, "unpausing the domain");
    wait_runstate("running holds=");
    if (in_error)
        n_save_err++;
    else
        n_save++;
    life_begins();
}

/* As libxl's migration: the source suspended, the dm saves, a new domain
 * on the same host receives the RAM, a new rsdm-sim for it restores the
 * file, both vCPUs (the writers, mid-command or not) continue there and
 * the source goes.  In io-error the parked command completes on the
 * destination's healthy disk. */
static void migrate(bool in_error)
{
    if (in_error && !park_in_error())
        return;
    uint32_t from = G.sim.dom;
    char file[512];
    CHECK(rsdm_sim_migrate_begin(&G.sim, file, sizeof(file)) == 0, "migrate: suspend and save");
    life_ends();
    for (unsigned d = 0; d < DUAL_DISKS; d++)
        guest_hv_freeze(&G.bus[d]);
    int rc = rsdm_sim_migrate_finish(&G.sim, file, G.conf);
    for (unsigned d = 0; d < DUAL_DISKS; d++) {
        char err[256];
        CHECK(guest_hv_move(&G.bus[d], G.sim.dom, err, sizeof(err)) == 0, "%s", err);
    }
    CHECK(rc == 0 && G.sim.dom != from, "migrate from domain %u: the destination", from);
    wait_runstate("running holds=");
    if (in_error)
        n_migrate_err++;
    else
        n_migrate++;
    life_begins();
}

static void report(double elapsed)
{
    printf("soak: %.0f s: writes %u+%u commands, %u stop/cont, %u bursts (%u re-failures), "
           "%u save/restore, %u save/restore in io-error, %u migrations, %u migrations in "
           "io-error (vCPU accesses continued on the destination: %lu), %u rsdm-sim lives, "
           "domain %u\n",
           elapsed, atomic_load(&W[0].cmds), atomic_load(&W[1].cmds), n_stopcont, n_burst,
           n_refail, n_save, n_save_err, n_migrate, n_migrate_err,
           guest_hv_move_waits(&G.bus[0]) + guest_hv_move_waits(&G.bus[1]), nlives, G.sim.dom);
    fflush(stdout);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    char *end;
    if (!v || !*v)
        return dflt;
    long n = strtol(v, &end, 10);
    if (*end || n < 0) {
        fprintf(stderr, "soak: %s='%s' is not a number of seconds\n", name, v);
        exit(2);
    }
    return n;
}

int main(void)
{
    long seconds = env_long("SOAK_SECONDS", 1800);
    long fd_slack = env_long("SOAK_FD_SLACK", 2), rss_slack = env_long("SOAK_RSS_SLACK_KB", RSS_SLACK_KB);
    long seed = env_long("SOAK_SEED", (long)time(NULL));
    rng ^= (uint64_t)seed;
    printf("soak: %ld s, traditional dialect only (the qemu-xen dialect is not driven yet), SOAK_SEED=%ld, "
           "bounds per rsdm-sim life: %ld fds, %ld kB RSS\n", seconds, seed, fd_slack, rss_slack);
    char cfg[512];
    config_text(cfg, sizeof(cfg), NULL, 0);
    if (dual_guest_start(&G, "soak", SECTORS, cfg) < 0)
        return 1;
    for (unsigned d = 0; d < DUAL_DISKS; d++)
        CHECK(dual_writer_start(&W[d], &G, d, 0, 4, next(), UINT_MAX) == 0, "writer");
    life_begins();
    double t0 = now_s(), last_report = t0;
    /* Every other phase has no save/restore, so that one rsdm-sim serves
     * many stops, bursts and continues: a leak per action shows there. */
    double phase = seconds / 4 < 60 ? (seconds / 4 > 0 ? (double)(seconds / 4) : 1) : 60;
    while (now_s() - t0 < (double)seconds) {
        bool long_life = (long)((now_s() - t0) / phase) % 2 == 1;
        cur.ops++;
        switch (next() % (long_life ? 6 : 10)) {
        case 0: case 1: case 2: stop_cont(); break;
        case 3: case 4: case 5: burst(); break;
        case 6: save_restore(false); break;
        case 7: save_restore(true); break;
        case 8: migrate(false); break;
        default: migrate(true); break;
        }
        let_guest_run(5 + (unsigned)(next() % 40));
        if (now_s() - last_report >= 60) {
            report(now_s() - t0);
            last_report = now_s();
        }
    }
    life_ends();
    for (unsigned d = 0; d < DUAL_DISKS; d++)
        CHECK(dual_writer_join(&W[d]) == 0, "the guest saw an error on %s", dual_guest_vdev[d]);
    report(now_s() - t0);

    int bad = 0;
    for (unsigned d = 0; d < DUAL_DISKS; d++) {
        struct guest_check_counters during;
        guest_check_snapshot(&G.chk[d], &during);
        long b = dual_guest_verify(&G, d);
        struct guest_check_counters c;
        guest_check_snapshot(&G.chk[d], &c);
        printf("soak: %s: %llu sectors written, %llu read commands; lost %llu, stale %llu, "
               "corrupted %llu, all-ones %llu (bad sectors in reads during the run: %llu; "
               "in the image file at the end: %ld)\n", dual_guest_vdev[d],
               (unsigned long long)c.writes, (unsigned long long)c.reads,
               (unsigned long long)c.lost_writes, (unsigned long long)c.stale_overwrites,
               (unsigned long long)c.corrupted_reads, (unsigned long long)G.bus[d].all_ones_reads,
               (unsigned long long)(during.lost_writes + during.stale_overwrites +
                                    during.corrupted_reads), b);
        bad |= b != 0 || c.writes != W[d].sectors || c.lost_writes || c.stale_overwrites ||
               c.corrupted_reads || G.bus[d].all_ones_reads;
    }
    bad |= G.ide.errors + G.ide.timeouts + G.hba.errors + G.hba.timeouts != 0;
    life *last = &cur;
    printf("soak: rsdm-sim: %u lives; fds %ld..%ld (first life) .. %ld (last end), largest growth "
           "in a life %+ld; RSS %ld..%ld kB (first life) .. %ld kB (last end), largest growth in a "
           "life %+ld kB; the longest life (%u actions): fds %+ld, RSS %+ld kB\n", nlives,
           first.start.fds, first.end.fds, last->end.fds, max_dfd, first.start.rss_kb,
           first.end.rss_kb, last->end.rss_kb, max_drss, longest.ops,
           longest.end.fds - longest.start.fds, longest.end.rss_kb - longest.start.rss_kb);
    bad |= max_dfd > fd_slack || last->end.fds - first.start.fds > fd_slack;
    bad |= max_drss > rss_slack || last->end.rss_kb - first.start.rss_kb > rss_slack;
    bad |= n_nostop != 0;
    if (n_nostop)
        printf("soak: %u error rules never stopped the VM\n", n_nostop);
    int st = dual_guest_stop(&G);
    bad |= !(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    printf("soak: %s\n", bad ? "FAILED" : "passed: 0 lost, 0 stale, 0 corrupted, 0 all-ones, "
                                          "fd and RSS growth bounded");
    return bad ? 1 : 0;
}

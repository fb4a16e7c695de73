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
 * Dialects: the run is two parts, each on a new host and guest with
 * every check at its end: the first half of SOAK_SECONDS in the
 * traditional dialect (xenstore commands, -loadvm), the second half in
 * qemu-xen (QMP stop/cont, stop + xen-save-devices-state, -incoming and
 * `cont`; not restricted, since a restricted dm has no xenstore and so
 * no runstate node to wait on).  SOAK_DIALECT=traditional or qemu-xen
 * runs only that part, for all of SOAK_SECONDS.
 *
 * A burst's `continue` may re-issue the failing command before rsdm has
 * re-read its rules (SIGUSR1 is handled in its own time): the VM then
 * stops again just after it ran, and the driver continues once more
 * (counted as a late switch-off).
 *
 * At the end every sector of both disks is read back through the devices
 * and both images are checked from the host: 0 lost, 0 stale, 0
 * corrupted, 0 all-ones reads, no error seen by the guest.  Each rsdm-sim's
 * open fds (/proc/PID/fd) and RSS (VmRSS) are sampled at the start of its
 * life (once the guest has done some I/O on it) and at its end (before
 * the save or migration that ends it): growth is
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

/* One part of the soak: one guest, one dialect. */
static dual_guest G;
static dual_writer W[DUAL_DISKS];
/* The current life, the first, the longest (most actions) and the
 * largest growths seen in any life. */
static life cur, first, longest;
static unsigned nlives;
static long max_dfd, max_drss;
static unsigned n_stopcont, n_burst, n_refail, n_late_off, n_save, n_save_err, n_migrate,
    n_migrate_err, n_nostop;
static uint64_t rng = 0x853c49e6748fea9bull;

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

/* `continue` once a rule is off.  rsdm re-reads its rules on SIGUSR1 in
 * its own time, so a command re-issued by this `continue` may still meet
 * the rule and stop the VM again right after it ran: then once more,
 * until both disks make progress (counted as late switch-offs). */
static void resume_after_rule(void)
{
    for (int tries = 0;; tries++) {
        CHECK(tries < 20 && dual_guest_resume(&G, 20, NULL) == 0, "resume after a burst");
        unsigned c[DUAL_DISKS];
        for (unsigned d = 0; d < DUAL_DISKS; d++)
            c[d] = atomic_load(&W[d].cmds);
        bool stopped = false;
        for (unsigned d = 0; d < DUAL_DISKS && !stopped; d++) {
            for (int ms = 0; atomic_load(&W[d].cmds) <= c[d] && ms < WAIT_MS; ms += 100) {
                CHECK(dual_writer_wait(&W[d], c[d] + 1, 100), "%s writer ended",
                      dual_guest_vdev[d]);
                char rs[128];
                dual_guest_runstate(&G, rs, sizeof(rs));
                if ((stopped = strncmp(rs, "io-error", 8) == 0))
                    break;
            }
        }
        if (!stopped) {
            for (unsigned d = 0; d < DUAL_DISKS; d++)
                CHECK(atomic_load(&W[d].cmds) > c[d], "%s made no progress in %d ms after a burst",
                      dual_guest_vdev[d], WAIT_MS);
            return;
        }
        n_late_off++;
    }
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
    resume_after_rule();
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
    /* The life's end is sampled before the save: a QMP save's connection
     * and the fd it passed are still being closed when it returns. */
    life_ends();
    /* libxl: the domain paused, then the dm saves (either dialect). */
    CHECK(hv_domain_pause(G.sim.dom) == 0, "pausing the domain");
    char file[512];
    CHECK(rsdm_sim_save(&G.sim, file, sizeof(file)) == 0, "save");
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
    life_ends();
    char file[512];
    CHECK(rsdm_sim_migrate_begin(&G.sim, file, sizeof(file)) == 0, "migrate: suspend and save");
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

static const char *dialect(void)
{
    return rsdm_sim_dialect_name(&G.sim);
}

static void report(double elapsed)
{
    printf("soak[%s]: %.0f s: writes %u+%u commands, %u stop/cont, %u bursts (%u re-failures, "
           "%u late switch-offs), %u save/restore, %u save/restore in io-error, %u migrations, "
           "%u migrations in io-error (vCPU accesses continued on the destination: %lu), "
           "%u rsdm-sim lives, domain %u\n",
           dialect(), elapsed, atomic_load(&W[0].cmds), atomic_load(&W[1].cmds), n_stopcont,
           n_burst, n_refail, n_late_off, n_save, n_save_err, n_migrate, n_migrate_err,
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

/* One part: a new guest on a new host in `dia`, `seconds` of actions,
 * then every check.  Whether all held. */
static bool run_part(rsdm_sim_dialect dia, long seconds, long fd_slack, long rss_slack)
{
    cur = first = longest = (life){ 0 };
    nlives = 0;
    max_dfd = max_drss = 0;
    n_stopcont = n_burst = n_refail = n_late_off = n_save = n_save_err = n_migrate =
        n_migrate_err = n_nostop = 0;
    char cfg[512];
    config_text(cfg, sizeof(cfg), NULL, 0);
    /* Not restricted: a restricted dm has no xenstore, so no runstate
     * node the driver could wait on. */
    if (dual_guest_start_dialect(&G, "soak", SECTORS, cfg, dia, false) < 0)
        return false;
    printf("soak[%s]: %ld s\n", dialect(), seconds);
    for (unsigned d = 0; d < DUAL_DISKS; d++)
        CHECK(dual_writer_start(&W[d], &G, d, 0, 4, next(), UINT_MAX) == 0, "writer");
    life_begins();
    double t0 = now_s(), last_report = t0;
    /* Every other phase has no save/restore or migration, so that one
     * rsdm-sim serves many stops, bursts and continues: a leak per action
     * shows there. */
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
        printf("soak[%s]: %s: %llu sectors written, %llu read commands; lost %llu, stale %llu, "
               "corrupted %llu, all-ones %llu (bad sectors in reads during the run: %llu; "
               "in the image file at the end: %ld)\n", dialect(), dual_guest_vdev[d],
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
    printf("soak[%s]: rsdm-sim: %u lives; fds %ld..%ld (first life) .. %ld (last end), largest "
           "growth in a life %+ld; RSS %ld..%ld kB (first life) .. %ld kB (last end), largest "
           "growth in a life %+ld kB; the longest life (%u actions): fds %+ld, RSS %+ld kB\n",
           dialect(), nlives, first.start.fds, first.end.fds, last->end.fds, max_dfd,
           first.start.rss_kb, first.end.rss_kb, last->end.rss_kb, max_drss, longest.ops,
           longest.end.fds - longest.start.fds, longest.end.rss_kb - longest.start.rss_kb);
    bad |= max_dfd > fd_slack || last->end.fds - first.start.fds > fd_slack;
    bad |= max_drss > rss_slack || last->end.rss_kb - first.start.rss_kb > rss_slack;
    bad |= n_nostop != 0;
    if (n_nostop)
        printf("soak[%s]: %u error rules never stopped the VM\n", dialect(), n_nostop);
    const char *name = dialect();
    int st = dual_guest_stop(&G);
    bad |= !(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    printf("soak[%s]: %s\n", name, bad ? "FAILED" : "passed: 0 lost, 0 stale, 0 corrupted, "
                                                   "0 all-ones, fd and RSS growth bounded");
    fflush(stdout);
    return !bad;
}

int main(void)
{
    long seconds = env_long("SOAK_SECONDS", 1800);
    long fd_slack = env_long("SOAK_FD_SLACK", 2), rss_slack = env_long("SOAK_RSS_SLACK_KB", RSS_SLACK_KB);
    long seed = env_long("SOAK_SEED", (long)time(NULL));
    rng ^= (uint64_t)seed;
    const char *which = getenv("SOAK_DIALECT");
    enum { BOTH, TRADITIONAL_ONLY, QEMU_XEN_ONLY } parts = BOTH;
    if (which && *which && strcmp(which, "both") != 0) {
        if (strcmp(which, "traditional") == 0) {
            parts = TRADITIONAL_ONLY;
        } else if (strcmp(which, "qemu-xen") == 0) {
            parts = QEMU_XEN_ONLY;
        } else {
            fprintf(stderr, "soak: SOAK_DIALECT='%s' is not both, traditional or qemu-xen\n",
                    which);
            return 2;
        }
    }
    printf("soak: %ld s, %s, SOAK_SEED=%ld, bounds per rsdm-sim life: %ld fds, %ld kB RSS\n",
           seconds, parts == BOTH ? "half in each dialect (traditional, then qemu-xen)"
                    : parts == TRADITIONAL_ONLY ? "traditional dialect" : "qemu-xen dialect",
           seed, fd_slack, rss_slack);
    fflush(stdout);
    bool ok = true;
    if (parts != QEMU_XEN_ONLY)
        ok &= run_part(RSDM_SIM_TRADITIONAL, parts == BOTH ? seconds - seconds / 2 : seconds,
                       fd_slack, rss_slack);
    if (parts != TRADITIONAL_ONLY)
        ok &= run_part(RSDM_SIM_QEMU_XEN, parts == BOTH ? seconds / 2 : seconds, fd_slack,
                       rss_slack);
    printf("soak: %s\n", ok ? "passed" : "FAILED");
    return ok ? 0 : 1;
}

/*
 * bench_qemu: QEMU beside rsdm, in the same run -- Debian's
 * qemu-system-x86_64 is the baseline each rsdm figure is compared with:
 *
 *   start-up     fork+exec until the control interface answers: QEMU
 *                (-machine pc -S -nodefaults -display none, one IDE disk)
 *                until QMP query-status returns; rsdm-sim until its QMP
 *                query-status returns when this build serves the qemu-xen
 *                dialect, else until it writes `running` (what libxl waits
 *                for in the traditional dialect);
 *   memory       VmRSS at that moment (QEMU in prelaunch);
 *   round trip   QMP query-status for QEMU; for rsdm QMP query-status, or
 *                without QMP the traditional control path: an unknown
 *                `command` written until rsdm's `error` node names it.
 *
 * Both monitors get a listening socket the bench opened and passes by fd
 * (as libxl does with -chardev socket,fd=N), so connecting never races
 * the start.  rsdm-sim runs on a simulated host (tests/lib/rsdm_sim);
 * every process is pinned to the same CPU.  Without qemu-system-x86_64
 * the bench says so and reports nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xenstore.h>

#include "../lib/bench_util.h"
#include "../lib/proc_util.h"
#include "../lib/rsdm_sim.h"

#define STARTS 5
#define ROUNDS 1000          /* QMP round trips */
#define XS_ROUNDS 200        /* traditional control round trips (each a few xenstore ops) */
#define WAIT_MS 10000
#define QEMU "/usr/bin/qemu-system-x86_64"

typedef struct mon {
    int fd;
    pid_t child;
    char buf[16384];
    size_t len;
} mon;

/* The next CRLF-terminated line; -1 when the child exited or nothing came
 * for WAIT_MS. */
static int mon_line(mon *m, char *out, size_t cap)
{
    for (int idle = 0; idle < WAIT_MS;) {
        char *eol = memmem(m->buf, m->len, "\r\n", 2);
        if (eol) {
            size_t n = (size_t)(eol - m->buf);
            snprintf(out, cap, "%.*s", (int)n, m->buf);
            memmove(m->buf, eol + 2, m->len - n - 2);
            m->len -= n + 2;
            return 0;
        }
        struct pollfd p = { m->fd, POLLIN, 0 };
        int r = poll(&p, 1, 100);
        if (r == 0) {
            idle += 100;
            if (waitpid(m->child, NULL, WNOHANG) == m->child) {
                m->child = 0;
                return -1;
            }
            continue;
        }
        ssize_t k = read(m->fd, m->buf + m->len, sizeof(m->buf) - m->len);
        if (k <= 0)
            return -1;
        m->len += (size_t)k;
    }
    return -1;
}

/* Sends one command and reads up to its reply (events are skipped):
 * 0 for a "return", -1 otherwise. */
static int mon_cmd(mon *m, const char *cmd)
{
    size_t n = strlen(cmd);
    if (write(m->fd, cmd, n) != (ssize_t)n)
        return -1;
    char line[4096];
    do
        if (mon_line(m, line, sizeof(line)) < 0)
            return -1;
    while (strncmp(line, "{\"event\"", 8) == 0 || strncmp(line, "{\"timestamp\"", 12) == 0);
    return strstr(line, "\"return\"") ? 0 : -1;
}

/* A listening socket at path, inheritable by the monitor's process. */
static int listen_at(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Starts argv (whose monitor is the listening socket lfd bound to path)
 * and takes its monitor to command mode with one query-status answered.
 * *ns: from fork to that answer.  0, or -1 (the process is reaped). */
static int monitor_start(char *const argv[], int lfd, const char *path, const char *log, mon *m,
                         uint64_t *ns)
{
    memset(m, 0, sizeof(*m));
    m->fd = -1;
    uint64_t t0 = bench_now_ns();
    m->child = proc_spawn_logged(argv, log);
    close(lfd);      /* the child holds it now: if it dies, connect is refused */
    if (m->child < 0)
        return -1;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    char line[4096];
    m->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (m->fd < 0 || connect(m->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        mon_line(m, line, sizeof(line)) < 0 || strncmp(line, "{\"QMP\"", 6) != 0 ||
        mon_cmd(m, "{\"execute\":\"qmp_capabilities\"}\r\n") < 0 ||
        mon_cmd(m, "{\"execute\":\"query-status\"}\r\n") < 0)
        goto fail;
    *ns = bench_now_ns() - t0;
    return 0;
fail:
    if (m->fd >= 0)
        close(m->fd);
    m->fd = -1;
    if (m->child > 0) {
        kill(m->child, SIGKILL);
        waitpid(m->child, NULL, 0);
    }
    m->child = 0;
    return -1;
}

static void monitor_stop(mon *m)
{
    if (m->fd >= 0)
        close(m->fd);
    if (m->child > 0) {
        kill(m->child, SIGTERM);
        waitpid(m->child, NULL, 0);
    }
    m->child = 0;
}

/* query-status round trips, median in ns. */
static int qmp_rtt(mon *m, uint64_t *p50)
{
    static uint64_t lat[ROUNDS];
    for (unsigned i = 0; i < ROUNDS; i++) {
        uint64_t t0 = bench_now_ns();
        if (mon_cmd(m, "{\"execute\":\"query-status\"}\r\n") < 0)
            return -1;
        lat[i] = bench_now_ns() - t0;
    }
    *p50 = bench_summarise(lat, ROUNDS).p50;
    return 0;
}

typedef struct figures {
    uint64_t start[STARTS];
    long rss;
    uint64_t rtt;
} figures;

/* STARTS starts of argv, whose argv[slot] becomes the -chardev option
 * (a socket named chardev_id on the listening fd); after the last, its memory and
 * query-status round trip.  what names the program in messages. */
static int monitor_figures(char **argv, int slot, const char *chardev_id, const char *sock,
                           const char *log, const char *what, figures *f)
{
    char chardev[128];
    for (int i = 0; i < STARTS; i++) {
        int lfd = listen_at(sock);
        if (lfd < 0)
            return -1;
        snprintf(chardev, sizeof(chardev), "socket,id=%s,fd=%d,server=on,wait=off", chardev_id,
                 lfd);
        argv[slot] = chardev;
        mon m;
        if (monitor_start(argv, lfd, sock, log, &m, &f->start[i]) < 0) {
            if (what)
                fprintf(stderr, "bench_qemu: %s did not answer query-status (log %s)\n", what,
                        log);
            return -1;
        }
        int rc = 0;
        if (i == STARTS - 1) {
            f->rss = proc_rss_kib(m.child);
            rc = qmp_rtt(&m, &f->rtt);
        }
        monitor_stop(&m);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int run_qemu(const char *dir, figures *f)
{
    char img[128], sock[128], log[128], drive[192];
    snprintf(img, sizeof(img), "%s/disk.img", dir);
    snprintf(sock, sizeof(sock), "%s/qemu.qmp", dir);
    snprintf(log, sizeof(log), "%s/qemu.log", dir);
    int fd = open(img, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ftruncate(fd, 64 << 20) < 0) {
        perror("bench_qemu: disk image");
        return -1;
    }
    close(fd);
    snprintf(drive, sizeof(drive), "file=%s,if=ide,format=raw", img);
    char *argv[] = { QEMU, "-machine", "pc", "-S", "-nodefaults", "-display", "none",
                     "-chardev", NULL, "-mon", "chardev=mon,mode=control", "-drive", drive, NULL };
    return monitor_figures(argv, 8, "mon", sock, log, "QEMU", f);
}

/* rsdm-sim with the qemu-xen dialect's QMP monitor; -1 when this build
 * does not serve it (the process refuses the command line). */
static int run_rsdm_qmp(rsdm_sim *s, figures *f)
{
    char sock[128], log[128], dom[16], rsdm[4200];
    snprintf(sock, sizeof(sock), "%s/rsdm.qmp", s->dir);
    snprintf(log, sizeof(log), "%s/rsdm-qmp.log", s->dir);
    snprintf(dom, sizeof(dom), "%u", s->dom);
    snprintf(rsdm, sizeof(rsdm), "%s/rsdm-sim", s->bin);
    char *argv[] = { rsdm, "-xen-domid", dom, "-chardev", NULL, "-mon",
                     "chardev=libxl-cmd,mode=control", "-nodefaults", "-serial", "null",
                     "-machine", "xenfv", "-S", "--log-level", "warning", NULL };
    return monitor_figures(argv, 4, "libxl-cmd", sock, log, NULL, f);
}

/* The traditional dialect: start-up to `running`, and the control path's
 * round trip through xenstore. */
static int run_rsdm_traditional(rsdm_sim *s, figures *f)
{
    char log[128], dom[16], rsdm[4200], err[160];
    snprintf(log, sizeof(log), "%s/rsdm-trad.log", s->dir);
    snprintf(dom, sizeof(dom), "%u", s->dom);
    snprintf(rsdm, sizeof(rsdm), "%s/rsdm-sim", s->bin);
    snprintf(err, sizeof(err), "/local/domain/0/device-model/%u/error", s->dom);
    if (!xs_watch(s->xs, err, "e"))
        return -1;
    for (int i = 0; i < STARTS; i++) {
        xs_rm(s->xs, XBT_NULL, s->state);       /* a stale `running` must not count */
        char *argv[] = { rsdm, "-d", dom, "-serial", "null", "--log-level", "warning", NULL };
        uint64_t t0 = bench_now_ns();
        s->dm = proc_spawn_logged(argv, log);
        if (s->dm < 0 || rsdm_sim_wait_value(s, s->state, "running", WAIT_MS) < 0) {
            fprintf(stderr, "bench_qemu: rsdm-sim never wrote running (log %s)\n", log);
            return -1;
        }
        f->start[i] = bench_now_ns() - t0;
        if (i == STARTS - 1) {
            f->rss = proc_rss_kib(s->dm);
            static uint64_t lat[XS_ROUNDS];
            for (unsigned k = 0; k < XS_ROUNDS; k++) {
                /* Each dm numbers its refusals from 1 (docs/protocol.md, `error`). */
                char cmd[32], want[128];
                snprintf(cmd, sizeof(cmd), "probe-%u", k);
                snprintf(want, sizeof(want),
                         "%u command \"%s\": unknown command (exact match required)", k + 1, cmd);
                uint64_t t1 = bench_now_ns();
                if (!xs_write(s->xs, XBT_NULL, s->command, cmd, strlen(cmd)) ||
                    rsdm_sim_wait_value(s, err, want, WAIT_MS) < 0) {
                    fprintf(stderr, "bench_qemu: rsdm-sim never reported command %s\n", cmd);
                    return -1;
                }
                lat[k] = bench_now_ns() - t1;
            }
            f->rtt = bench_summarise(lat, XS_ROUNDS).p50;
        }
        rsdm_sim_stop_dm(s);
    }
    return 0;
}

int main(void)
{
    if (access(QEMU, X_OK) != 0) {
        printf("bench_qemu: %s not installed (Debian's qemu-system-x86): no QEMU figures\n",
               QEMU);
        return 0;
    }
    int cpus[2];
    if (bench_cpus(cpus) < 1 || bench_pin(cpus[0]) != 0) {
        fprintf(stderr, "bench_qemu: cannot pin to a CPU\n");
        return 1;
    }
    char placement[32];
    snprintf(placement, sizeof(placement), "all-on-cpu%d", cpus[0]);

    rsdm_sim s;
    if (rsdm_sim_start(&s, "bench-qemu", 1) < 0)
        return 1;
    rsdm_sim_stop_dm(&s);
    figures q, r;
    int rc = 1;
    if (run_qemu(s.dir, &q) < 0)
        goto out;
    bool qmp = run_rsdm_qmp(&s, &r) == 0;
    if (!qmp && run_rsdm_traditional(&s, &r) < 0)
        goto out;
    rc = 0;

    double qs = (double)bench_summarise(q.start, STARTS).p50 / 1e6;
    double rs = (double)bench_summarise(r.start, STARTS).p50 / 1e6;
    printf("QEMU %s beside rsdm-sim; every process pinned to CPU %d; median of %d starts\n",
           QEMU, cpus[0], STARTS);
    printf("QEMU: -machine pc -S -nodefaults -display none, one 64 MiB raw IDE disk, "
           "QMP over an inherited listening socket\n");
    printf("rsdm-sim: %s\n", qmp ? "qemu-xen dialect (-xen-domid, -S), QMP the same way"
                                 : "this build has no QMP monitor: traditional dialect, "
                                   "control through xenstore `command`/`error`");
    printf("  %-56s %12s %12s %-4s %7s\n", "figure", "rsdm-sim", "QEMU", "unit", "ratio");
    const char *start_name = qmp ? "start-up to QMP query-status answered"
                                 : "start-up to running (rsdm) / query-status (QEMU)";
    const char *rtt_name = qmp ? "QMP query-status round trip"
                               : "control round trip: command->error (rsdm) / query-status";
    printf("  %-56.56s %12.2f %12.2f %-4s %7.2f\n", start_name, rs, qs, "ms", rs / qs);
    const char *rss_name = qmp ? "resident memory at prelaunch"
                               : "resident memory at running, no disk (rsdm)";
    printf("  %-56.56s %12ld %12ld %-4s %7.2f\n", rss_name, r.rss, q.rss, "KiB",
           (double)r.rss / (double)q.rss);
    printf("  %-56.56s %12.1f %12.1f %-4s %7.2f\n", rtt_name, (double)r.rtt / 1000.0,
           (double)q.rtt / 1000.0, "us", (double)r.rtt / (double)q.rtt);
    bench_emit(start_name, rs, "ms", "QEMU -S to query-status", qs, placement, true);
    bench_emit(rss_name, (double)r.rss, "KiB", "QEMU prelaunch, one IDE disk", (double)q.rss, placement,
               true);
    bench_emit(rtt_name, (double)r.rtt / 1000.0, "us", "QEMU query-status round trip",
               (double)q.rtt / 1000.0, placement, true);
out:
    rsdm_sim_stop(&s);
    return rc;
}

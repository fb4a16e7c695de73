/* xl_main.c: `xensim xl` commands, following libxl 4.17's traditional-dialect
 * steps (see docs/xensim.md, "xl").  The simulated hypervisor is reached
 * through xensim's own `domain` CLI (a child process), xenstore through
 * libxenstore on the simulator's socket. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xenstore.h>

#include "xl_cmd.h"
#include "xl_internal.h"
#include "xl_qmp.h"

const char *g_rundir;
int g_timeout = -1;  /* --timeout: caps every wait */
struct xs_handle *g_xs;

int bound(int libxl_secs)
{
    return (g_timeout >= 0 && g_timeout < libxl_secs) ? g_timeout : libxl_secs;
}

int die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("libxl: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

/* Run `xensim domain ARGS…`; its stdout into out. 0 or -1. */
int hv(char *out, size_t outlen, const char *a1, const char *a2,
              const char *a3, const char *a4, const char *a5, const char *a6,
              const char *a7, const char *a8)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        const char *argv[] = { "xensim", "domain", a1, a2, a3, a4, a5, a6, a7, a8, NULL };
        execv("/proc/self/exe", (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    size_t n = 0;
    ssize_t r;
    char sink[256];
    while ((r = read(p[0], out && n + 1 < outlen ? out + n : sink,
                     out && n + 1 < outlen ? outlen - 1 - n : sizeof(sink))) > 0 ||
           (r < 0 && errno == EINTR))
        if (r > 0 && out && n + 1 < outlen)
            n += (size_t)r;
    close(p[0]);
    if (out)
        out[n] = '\0';
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

int xs_w(const char *path, const char *val)
{
    if (!xs_write(g_xs, XBT_NULL, path, val, strlen(val)))
        return die("xenstore write %s: %s", path, strerror(errno)), -1;
    return 0;
}

char *xs_r(const char *path)
{
    unsigned len;
    return xs_read(g_xs, XBT_NULL, path, &len);
}

int xs_perm(const char *path, unsigned owner, int guest, int guest_perm)
{
    struct xs_permissions p[2] = { { .id = owner, .perms = XS_PERM_NONE },
                                   { .id = (unsigned)guest, .perms = (unsigned)guest_perm } };
    if (!xs_set_permissions(g_xs, XBT_NULL, path, p, guest >= 0 ? 2 : 1))
        return die("xenstore set_permissions %s: %s", path, strerror(errno)), -1;
    return 0;
}

/* Wait (bounded) until path holds one of want (NULL-terminated set of
 * values; NULL want = any change).  A watch is registered before the first
 * read, as libxl does.  Returns the index matched, -1 timeout, -2 error,
 * -3 the pid given died. */
int wait_value(const char *path, const char *want, int secs, pid_t dm,
                      char *got, size_t gotlen)
{
    if (!xs_watch(g_xs, path, "xl"))
        return -2;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = -1;
    for (;;) {
        char *v = xs_r(path);
        if (got)
            snprintf(got, gotlen, "%s", v ? v : "");
        int match = v && strcmp(v, want) == 0;
        free(v);
        if (match) {
            rc = 0;
            break;
        }
        if (dm > 0 && waitpid(dm, NULL, WNOHANG) == dm) {
            rc = -3;
            break;
        }
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long left = (long)secs * 1000 - ((t.tv_sec - t0.tv_sec) * 1000 +
                                         (t.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0)
            break;
        /* wake at least every 100 ms to notice the dm's death */
        struct pollfd pfd = { .fd = xs_fileno(g_xs), .events = POLLIN };
        int pr = poll(&pfd, 1, left < 100 ? (int)left : 100);
        if (pr > 0) {
            unsigned n;
            char **ev = xs_read_watch(g_xs, &n);
            free(ev);
        }
    }
    xs_unwatch(g_xs, path, "xl");
    return rc;
}

void paths(unsigned domid, const char *leaf, char *buf, size_t len)
{
    snprintf(buf, len, "/local/domain/0/device-model/%u%s%s", domid, *leaf ? "/" : "", leaf);
}

void libdir_file(const char *base, unsigned domid, char *buf, size_t len)
{
    snprintf(buf, len, "%s/xl/lib/%s.%u", g_rundir, base, domid);
}

/* ------------------------------------------------------------ create */

/* The simulated guest's workload starts once its vCPUs run (xl_workload.c);
 * after a restore it resumes from the state it keeps in guest RAM.  A
 * workload that does not start is reported; the domain stays. */
static void xl_start_workload(unsigned domid, const struct xl_cfg *cfg, int resume)
{
    xl_wl_start(g_rundir, domid, cfg, resume);
}

static int write_domain_nodes(unsigned domid, const struct xl_cfg *cfg)
{
    char p[256], v[256];
    snprintf(p, sizeof(p), "/local/domain/%u/name", domid);
    if (xs_w(p, cfg->name) < 0)
        return -1;
    snprintf(p, sizeof(p), "/libxl/%u/dm-version", domid);
    if (xs_w(p, xlq_dm_version_node(cfg)) < 0 || xs_perm(p, 0, -1, 0) < 0)
        return -1;
    snprintf(p, sizeof(p), "/local/domain/%u/platform/device-model", domid);
    if (xs_w(p, xlq_dm_version_node(cfg)) < 0 || xs_perm(p, 0, (int)domid, XS_PERM_READ) < 0)
        return -1;
    snprintf(p, sizeof(p), "/local/domain/%u/hvmloader/allow-memory-relocate", domid);
    if (xs_w(p, "1") < 0 || xs_perm(p, 0, (int)domid, XS_PERM_READ) < 0)
        return -1;
    for (int i = 0; i < cfg->n_disks; i++) {
        const struct xl_disk *d = &cfg->disks[i];
        /* xen_vdev_to_devid: hdX -> (3 << 8) | (X << 6) for a..b, …;
         * sdX -> (8 << 8) | (X << 4) */
        int idx = d->vdev[2] - 'a';
        unsigned devid = d->vdev[0] == 's' ? (8u << 8) | ((unsigned)idx << 4)
                         : idx < 2         ? (3u << 8) | ((unsigned)idx << 6)
                                           : (22u << 8) | ((unsigned)(idx - 2) << 6);
        char be[200], fe[200];
        snprintf(be, sizeof(be), "/local/domain/0/backend/vbd/%u/%u", domid, devid);
        snprintf(fe, sizeof(fe), "/local/domain/%u/device/vbd/%u", domid, devid);
        struct { const char *k, *v; } bkv[] = {
            { "frontend", fe }, { "params", d->target }, { "type", "phy" },
            { "dev", d->vdev }, { "mode", "w" }, { "removable", d->cdrom ? "1" : "0" },
            { "device-type", d->cdrom ? "cdrom" : "disk" }, { "state", "1" },
            { "online", "1" },
        };
        if (xs_w(be, "") < 0 || xs_perm(be, 0, (int)domid, XS_PERM_READ) < 0)
            return -1;
        for (size_t k = 0; k < sizeof(bkv) / sizeof(bkv[0]); k++) {
            snprintf(p, sizeof(p), "%s/%s", be, bkv[k].k);
            if (xs_w(p, bkv[k].v) < 0)
                return -1;
        }
        snprintf(v, sizeof(v), "%u", 0u);
        snprintf(p, sizeof(p), "%s/frontend-id", be);
        if (xs_w(p, "") < 0)
            return -1;
        snprintf(v, sizeof(v), "%u", domid);
        if (xs_w(p, v) < 0)
            return -1;
        if (xs_w(fe, "") < 0 || xs_perm(fe, domid, 0, XS_PERM_READ) < 0)
            return -1;
        struct { const char *k, *v; } fkv[] = {
            { "backend", be }, { "backend-id", "0" }, { "state", "1" },
            { "virtual-device", v }, { "device-type", d->cdrom ? "cdrom" : "disk" },
        };
        snprintf(v, sizeof(v), "%u", devid);
        for (size_t k = 0; k < sizeof(fkv) / sizeof(fkv[0]); k++) {
            snprintf(p, sizeof(p), "%s/%s", fe, fkv[k].k);
            if (xs_w(p, fkv[k].v) < 0)
                return -1;
        }
    }
    return 0;
}

pid_t xl_exec_dm(const char *const argv[], unsigned domid, const char *name, const int *keep,
                 int nkeep, char *logpath, size_t loglen)
{
    snprintf(logpath, loglen, "%s/xl/log/qemu-dm-%s.log", g_rundir, name);
    int logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (logfd < 0)
        return die("opening dm log %s: %s", logpath, strerror(errno)), -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(logfd);
        return die("fork: %s", strerror(errno)), -1;
    }
    if (pid == 0) {
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0)
            dup2(nul, 0);
        dup2(logfd, 1);
        dup2(logfd, 2);
        for (int i = 0; i < nkeep; i++)
            fcntl(keep[i], F_SETFD, 0);
        if (!getenv("XEN_QEMU_CONSOLE_LIMIT"))
            setenv("XEN_QEMU_CONSOLE_LIMIT", "1048576", 1);
        char sock[4200], sdomid[16];
        snprintf(sdomid, sizeof(sdomid), "%u", domid);
        setenv("XEN_DOMAIN_ID", sdomid, 1);
        snprintf(sock, sizeof(sock), "%s/xenstored/socket", g_rundir);
        setenv("XENSTORED_PATH", sock, 1);
        setenv("XENSIM_RUNDIR", g_rundir, 1);
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(logfd);
    return pid;
}

/* libxl__spawn_local_dm for the traditional dialect: mkdir device-model,
 * disable_pf, watch `state`, fork/exec, record the pid, wait `running`. */
static int spawn_dm(unsigned domid, const struct xl_cfg *cfg, const char *loadvm, pid_t *dmpid)
{
    if (xlq_cfg_is_qemu_xen(cfg))
        return xlq_spawn_dm(domid, cfg, loadvm, dmpid);
    if (cfg->dm_restrict)
        return die("dm_restrict is only supported with device_model_version=\"qemu-xen\""), -1;
    char p[256], dmdir[128], v[64];
    paths(domid, "", dmdir, sizeof(dmdir));
    if (xs_w(dmdir, "") < 0)
        return -1;
    paths(domid, "disable_pf", p, sizeof(p));
    if (xs_w(p, "0") < 0)
        return -1;

    const char *argv[64 + XL_MAX_ARGS];
    int n = 0;
    char sdomid[16], vcpus[16], avail[32];
    snprintf(sdomid, sizeof(sdomid), "%u", domid);
    snprintf(vcpus, sizeof(vcpus), "%u", cfg->vcpus);
    unsigned long long mask = cfg->vcpus >= 64 ? ~0ull : (1ull << cfg->vcpus) - 1;
    snprintf(avail, sizeof(avail), "0x%llx", mask);
    argv[n++] = cfg->dm_override;
    argv[n++] = "-d";
    argv[n++] = sdomid;
    argv[n++] = "-domain-name";
    argv[n++] = cfg->name;
    argv[n++] = "-nographic";
    if (cfg->serial[0]) {
        argv[n++] = "-serial";
        argv[n++] = cfg->serial;
    }
    argv[n++] = "-std-vga";
    if (cfg->vcpus > 1) {
        argv[n++] = "-vcpus";
        argv[n++] = vcpus;
    }
    argv[n++] = "-vcpu_avail";
    argv[n++] = avail;
    argv[n++] = "-net";
    argv[n++] = "none";
    if (loadvm) {
        argv[n++] = "-loadvm";
        argv[n++] = loadvm;
    }
    argv[n++] = "-M";
    argv[n++] = "xenfv";
    for (int i = 0; i < cfg->n_dm_args_hvm; i++)
        argv[n++] = cfg->dm_args_hvm[i];
    argv[n] = NULL;

    char logpath[4400];
    paths(domid, "state", p, sizeof(p));
    pid_t pid = xl_exec_dm(argv, domid, cfg->name, NULL, 0, logpath, sizeof(logpath));
    if (pid < 0)
        return -1;
    *dmpid = pid;
    char ip[128];
    snprintf(ip, sizeof(ip), "/local/domain/%u/image/device-model-pid", domid);
    snprintf(v, sizeof(v), "%ld", (long)pid);
    if (xs_w(ip, v) < 0)
        return -1;
    int r = wait_value(p, "running", bound(DM_START_TIMEOUT), pid, NULL, 0);
    if (r == -3)
        return die("device model (pid %ld) died before it was ready; see %s", (long)pid, logpath), -1;
    if (r < 0) {
        kill(pid, SIGKILL);  /* libxl kills the spawn on timeout */
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        return die("Device Model startup timed out (domain %u); see %s", domid, logpath), -1;
    }
    return 0;
}

/* `xl destroy` returns once the dm is gone: it holds the guest's image
 * locks until it exits, and the next `xl create` on the same images would
 * find them in use.  SIGHUP as libxl sends it, a bounded wait on a pidfd
 * (the dm is not our child), then SIGKILL. */
static void stop_dm_of(unsigned domid, long pid)
{
    int pfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
    if (kill((pid_t)pid, SIGHUP) < 0) {
        if (errno != ESRCH)
            fprintf(stderr, "libxl: warning: SIGHUP to dm %ld: %s\n", pid, strerror(errno));
    } else if (pfd >= 0) {
        struct pollfd p = { .fd = pfd, .events = POLLIN };
        if (poll(&p, 1, bound(DM_STOP_TIMEOUT) * 1000) <= 0) {
            fprintf(stderr, "libxl: warning: domain %u: device model %ld still running %d s "
                    "after SIGHUP; SIGKILL\n", domid, pid, bound(DM_STOP_TIMEOUT));
            kill((pid_t)pid, SIGKILL);
            poll(&p, 1, bound(DM_STOP_TIMEOUT) * 1000);
        }
    }
    if (pfd >= 0)
        close(pfd);
}

int destroy_domain(unsigned domid)
{
    char p[256], ip[128];
    snprintf(ip, sizeof(ip), "/local/domain/%u/image/device-model-pid", domid);
    char *pid = xs_r(ip);
    paths(domid, "", p, sizeof(p));
    xs_rm(g_xs, XBT_NULL, p);
    if (pid) {
        char *end;
        long v = strtol(pid, &end, 10);
        if (*end || v <= 1)
            fprintf(stderr, "libxl: warning: bad device-model-pid '%s'\n", pid);
        else
            stop_dm_of(domid, v);
        free(pid);
    }
    char f[4300];
    libdir_file("qemu-save", domid, f, sizeof(f));
    unlink(f);
    libdir_file("qemu-resume", domid, f, sizeof(f));
    unlink(f);
    snprintf(p, sizeof(p), "/libxl/%u", domid);
    xs_rm(g_xs, XBT_NULL, p);
    char sd[16];
    snprintf(sd, sizeof(sd), "%u", domid);
    if (hv(NULL, 0, "destroy", sd, NULL, NULL, NULL, NULL, NULL, NULL) < 0)
        return die("Domain %u: destroy failed", domid);
    return 0;
}

int read_file(const char *path, char **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap + 1);
    size_t r;
    while (b && (r = fread(b + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *nb = realloc(b, cap * 2 + 1);
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
            cap *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!b || bad) {
        free(b);
        errno = bad ? EIO : ENOMEM;
        return -1;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return 0;
}

int xl_create(const char *cfgtext, const char *cfgname, struct xl_restore_src *rs,
              int paused, unsigned *domid_out)
{
    struct xl_cfg cfg;
    char err[512];
    if (xl_cfg_parse(cfgtext, cfgname, &cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "Failed to parse config: %s\n", err);
        return 1;
    }
    if (rs && rs->name_suffix) {
        /* xl: a migration lands as <name>--incoming until "go" */
        size_t nl = strlen(cfg.name);
        if (nl + strlen(rs->name_suffix) >= sizeof(cfg.name))
            return die("domain name %s%s too long", cfg.name, rs->name_suffix);
        strcpy(cfg.name + nl, rs->name_suffix);
    }
    char out[64], mem[16], vc[16];
    snprintf(mem, sizeof(mem), "%u", cfg.memory);
    snprintf(vc, sizeof(vc), "%u", cfg.vcpus);
    if (hv(out, sizeof(out), "create", "--vcpus", vc, "--memory", mem, "--name", cfg.name, NULL) < 0)
        return die("domain creation failed (is xensim running in %s?)", g_rundir);
    char *end;
    unsigned long domid = strtoul(out, &end, 10);
    if (end == out || (*end && *end != '\n'))
        return die("domain creation: unexpected reply '%s'", out);
    if (write_domain_nodes((unsigned)domid, &cfg) < 0)
        goto fail;
    /* xl keeps the config with the domain (libxl's domain userdata); save
     * puts it into the header of the save file */
    char cp[64];
    snprintf(cp, sizeof(cp), "/libxl/%lu/xl-config", domid);
    if (xs_w(cp, cfgtext) < 0)
        goto fail;
    char resume[4300];
    const char *loadvm = NULL;
    char *dmblob = NULL;
    size_t dmlen = 0;
    /* libxl's restore stream: guest memory, then the emulator context into
     * qemu-resume.<domid>, before the dm is spawned */
    if (rs) {
        rs->domid = (unsigned)domid;
        if (xl_stream_load(rs->fd, rs->what, (unsigned)domid, &dmblob, &dmlen, rs->secs) < 0)
            goto fail;
    }
    if (dmblob) {
        libdir_file("qemu-resume", (unsigned)domid, resume, sizeof(resume));
        int fd = open(resume, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        int bad = fd < 0 || write(fd, dmblob, dmlen) != (ssize_t)dmlen;
        if (bad)
            die("writing %s: %s", resume, strerror(errno));
        if (fd >= 0)
            close(fd);
        free(dmblob);
        if (bad)
            goto fail;
        loadvm = resume;
    }
    pid_t dm;
    int r = spawn_dm((unsigned)domid, &cfg, loadvm, &dm);
    if (loadvm)
        unlink(loadvm);  /* device_model_spawn_outcome: success or not */
    if (r < 0)
        goto fail;
    if (!paused) {
        char sd[16];
        snprintf(sd, sizeof(sd), "%lu", domid);
        if (dm_resume((unsigned)domid) < 0)   /* libxl_domain_unpause */
            goto fail;
        if (hv(NULL, 0, "unpause", sd, NULL, NULL, NULL, NULL, NULL, NULL) < 0) {
            die("unpausing domain %lu failed", domid);
            goto fail;
        }
        xl_start_workload((unsigned)domid, &cfg, rs != NULL);
    }
    printf("%lu\n", domid);
    *domid_out = (unsigned)domid;
    return 0;
fail:
    destroy_domain((unsigned)domid);
    return 1;
}

int create_common(const char *cfgtext, const char *cfgname, struct xl_restore_src *rs,
                  int paused)
{
    unsigned domid;
    return xl_create(cfgtext, cfgname, rs, paused, &domid);
}

static int cmd_create(int argc, char **argv)
{
    int paused = 0, foreground = 0, i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-p") == 0)
            paused = 1;
        else if (strcmp(argv[i], "-F") == 0)
            foreground = 1;
        else
            break;
    }
    if (i + 1 != argc)
        return fprintf(stderr, "usage: xensim xl create [-p] [-F] CFG\n"), 2;
    char *text;
    size_t len;
    if (read_file(argv[i], &text, &len) < 0)
        return die("cannot read config %s: %s", argv[i], strerror(errno));
    if (strlen(text) != len) {
        free(text);
        return die("config %s contains a NUL byte", argv[i]);
    }
    unsigned domid;
    int r = xl_create(text, argv[i], NULL, paused, &domid);
    free(text);
    if (r)
        return r;
    fflush(stdout);
    /* xl: the monitor applies on_reboot etc.; -F keeps it in the foreground */
    if (foreground)
        return xl_monitor_run(domid);
    char p[64];
    snprintf(p, sizeof(p), "/local/domain/%u/name", domid);
    char *name = xs_r(p);
    r = xl_monitor_spawn(domid, name ? name : "unknown") < 0;
    free(name);
    return r;
}

int parse_domid(const char *s, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v == 0 || v >= 0x7ff0) {
        fprintf(stderr, "invalid domain identifier '%s'\n", s);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

/* libxl__dm_resume: `continue` only if state is exactly `paused`. */
int dm_resume(unsigned domid)
{
    if (xlq_domain_is_qemu_xen(domid))
        return xlq_dm_resume(domid);
    char p[256];
    paths(domid, "state", p, sizeof(p));
    char *st = xs_r(p);
    int paused = st && strcmp(st, "paused") == 0;
    free(st);
    if (!paused)
        return 0;
    char c[256];
    paths(domid, "command", c, sizeof(c));
    if (xs_w(c, "continue") < 0)
        return -1;
    if (wait_value(p, "running", bound(DM_START_TIMEOUT), 0, NULL, 0) < 0)
        return die("Device Model not ready (domain %u: no 'running' after continue)", domid), -1;
    return 0;
}

static int cmd_simple(int argc, char **argv)
{
    if (argc != 2)
        return fprintf(stderr, "usage: xensim xl %s DOMID\n", argv[0]), 2;
    unsigned domid;
    if (parse_domid(argv[1], &domid) < 0)
        return 2;
    char sd[16];
    snprintf(sd, sizeof(sd), "%u", domid);
    if (strcmp(argv[0], "pause") == 0)
        return hv(NULL, 0, "pause", sd, NULL, NULL, NULL, NULL, NULL, NULL) < 0
                   ? die("Domain %u: pause failed", domid) : 0;
    if (strcmp(argv[0], "unpause") == 0) {
        if (dm_resume(domid) < 0)
            return 1;
        return hv(NULL, 0, "unpause", sd, NULL, NULL, NULL, NULL, NULL, NULL) < 0
                   ? die("Domain %u: unpause failed", domid) : 0;
    }
    return destroy_domain(domid);
}

static void xl_usage(FILE *f)
{
    fprintf(f,
        "usage: xensim xl [--rundir DIR] [--timeout S] [--dialect traditional|qemu-xen]\n"
        "                 [--manager libxl|xenopsd] COMMAND ...\n"
        "  create [-p] [-F] CFG       create from an xl.cfg, dm spawned, unpaused unless -p;\n"
        "                             a monitor stays (in the foreground with -F) and\n"
        "                             applies on_poweroff/on_reboot/on_crash\n"
        "  monitor DOMID              that monitor, for an existing domain\n"
        "  save [-c] [-p] DOMID FILE  suspend into FILE, then destroy; -c: resume it\n"
        "                             (checkpoint), -p: leave it paused\n"
        "  restore [-p] FILE          a new domain from a save file\n"
        "  pause|unpause|destroy DOMID\n"
        "  list\n"
        "  migrate [--live] DOMID [--to RUNDIR|HOST:PORT]\n"
        "                             to another rundir (default: this one) or to a\n"
        "                             migrate-receive listening on HOST:PORT; --live copies\n"
        "                             memory in rounds while the guest runs\n"
        "  migrate-receive [--listen HOST:PORT | --fd N]\n"
        "                             the target side: one incoming migration on a TCP\n"
        "                             port (port 0: any, announced on stderr), on fd N, or\n"
        "                             on stdin/stdout\n"
        "--rundir: the xensim run directory (default $XENSIM_RUNDIR); --timeout S caps\n"
        "every wait (libxl's bounds: 60 s dm/guest, 10 s logdirty).  --dialect: the dm's\n"
        "command line and control when the config has no device_model_version\n"
        "(qemu-xen: QMP, as libxl 4.17); --manager xenopsd: XenServer's sequences.\n"
        "Exit status 0,\n"
        "1 on failure (with libxl's message), 2 on a usage error.\n");
}

int xl_main(int argc, char **argv)
{
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--rundir") == 0 && i + 1 < argc)
            g_rundir = argv[++i];
        else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 0 || v > 3600)
                return fprintf(stderr, "xensim xl: bad --timeout '%s'\n", argv[i]), 2;
            g_timeout = (int)v;
        } else if (strcmp(argv[i], "--dialect") == 0 && i + 1 < argc) {
            if (xlq_set_dialect(argv[++i]) < 0)
                return fprintf(stderr, "xensim xl: --dialect traditional or qemu-xen\n"), 2;
        } else if (strcmp(argv[i], "--manager") == 0 && i + 1 < argc) {
            if (xlq_set_manager(argv[++i]) < 0)
                return fprintf(stderr, "xensim xl: --manager libxl or xenopsd\n"), 2;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            xl_usage(stdout);
            return 0;
        } else
            return fprintf(stderr, "xensim xl: unknown option %s\n", argv[i]), 2;
    }
    if (i < argc && strcmp(argv[i], "help") == 0) {
        xl_usage(stdout);
        return 0;
    }
    if (!g_rundir)
        g_rundir = getenv("XENSIM_RUNDIR");
    if (!g_rundir || i >= argc) {
        xl_usage(stderr);
        return 2;
    }
    setenv("XENSIM_RUNDIR", g_rundir, 1);
    char sock[4200], d[4200];
    snprintf(sock, sizeof(sock), "%s/xenstored/socket", g_rundir);
    setenv("XENSTORED_PATH", sock, 1);
    snprintf(d, sizeof(d), "%s/xl", g_rundir);
    mkdir(d, 0755);
    snprintf(d, sizeof(d), "%s/xl/lib", g_rundir);
    mkdir(d, 0700);
    snprintf(d, sizeof(d), "%s/xl/log", g_rundir);
    mkdir(d, 0755);
    const char *cmd = argv[i];
    if (strcmp(cmd, "list") == 0) {
        static char out[1 << 16];
        if (hv(out, sizeof(out), "list", NULL, NULL, NULL, NULL, NULL, NULL, NULL) < 0)
            return die("listing domains failed (is xensim running in %s?)", g_rundir);
        fputs(out, stdout);
        return 0;
    }
    g_xs = xs_open(0);
    if (!g_xs)
        return die("cannot connect to xenstore at %s: %s", sock, strerror(errno));
    int r;
    if (strcmp(cmd, "create") == 0)
        r = cmd_create(argc - i, argv + i);
    else if (strcmp(cmd, "save") == 0)
        r = cmd_save(argc - i, argv + i);
    else if (strcmp(cmd, "migrate") == 0)
        r = cmd_migrate(argc - i, argv + i);
    else if (strcmp(cmd, "migrate-receive") == 0)
        r = cmd_migrate_receive(argc - i, argv + i);
    else if (strcmp(cmd, "monitor") == 0)
        r = cmd_monitor(argc - i, argv + i);
    else if (strcmp(cmd, "restore") == 0)
        r = cmd_restore(argc - i, argv + i);
    else if (strcmp(cmd, "pause") == 0 || strcmp(cmd, "unpause") == 0 ||
             strcmp(cmd, "destroy") == 0)
        r = cmd_simple(argc - i, argv + i);
    else
        r = (fprintf(stderr, "xensim xl: unknown command %s\n", cmd), 2);
    xs_close(g_xs);
    return r;
}

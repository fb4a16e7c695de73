/*
 * rsdm-sim on a simulated host (rsdm_sim.h).
 */
#include "rsdm_sim.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xenstore.h>

#include "hv.h"
#include "proc_util.h"
#include "xsim_emu.h"

#define START_WAIT_MS 10000

int rsdm_sim_wait_value(rsdm_sim *s, const char *path, const char *want, int timeout_ms)
{
    for (int left = timeout_ms; left > 0;) {
        unsigned len;
        char *v = xs_read(s->xs, XBT_NULL, path, &len);
        int match = v && strcmp(v, want) == 0;
        free(v);
        if (match)
            return 0;
        if (s->dm > 0 && waitpid(s->dm, &s->dm_status, WNOHANG) == s->dm) {
            s->dm = 0;
            s->dm_exited = 1;
            return -ECHILD;
        }
        struct pollfd p = { xs_fileno(s->xs), POLLIN, 0 };
        if (poll(&p, 1, 100) > 0) {
            unsigned k;
            free(xs_read_watch(s->xs, &k));
        } else {
            left -= 100;    /* only a wait without any event counts against the bound */
        }
    }
    return -ETIMEDOUT;
}

/* The vbd nodes `xl create` writes for a disk (tools/xensim/xl_main.c). */
static int write_vbd(rsdm_sim *s, uint32_t domid, const rsdm_sim_disk *d)
{
    int idx = d->vdev[2] - 'a';
    /* Linux's numbering: hda/hdb major 3, hdc/hdd major 22, sdX major 8. */
    unsigned devid = d->vdev[0] == 's' ? (8u << 8) | ((unsigned)idx << 4)
                     : idx < 2         ? (3u << 8) | ((unsigned)idx << 6)
                                       : (22u << 8) | ((unsigned)(idx - 2) << 6);
    char be[128], fe[128], p[192], v[32];
    snprintf(be, sizeof(be), "/local/domain/0/backend/vbd/%u/%u", domid, devid);
    snprintf(fe, sizeof(fe), "/local/domain/%u/device/vbd/%u", domid, devid);
    snprintf(v, sizeof(v), "%u", devid);
    const char *kv[][2] = {
        { be, "" }, { "frontend", fe }, { "params", d->path }, { "type", "phy" },
        { "dev", d->vdev }, { "mode", "w" }, { "device-type", "disk" }, { "state", "1" },
        { fe, "" }, { "backend", be }, { "backend-id", "0" }, { "virtual-device", v },
    };
    const char *dir = be;
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) {
        if (kv[i][0][0] == '/') {
            dir = kv[i][0];
            snprintf(p, sizeof(p), "%s", dir);
        } else {
            snprintf(p, sizeof(p), "%s/%s", dir, kv[i][0]);
        }
        if (!xs_write(s->xs, XBT_NULL, p, kv[i][1], strlen(kv[i][1]))) {
            perror("rsdm_sim: writing the vbd nodes");
            return -1;
        }
    }
    return 0;
}

void rsdm_sim_save_path(const rsdm_sim *s, char *out, size_t len)
{
    snprintf(out, len, "%s/qemu-save.%u", s->dir, s->dom);
}

/* rsdm-sim's --log-level: RSDM_SIM_LOG, else warning. */
static const char *log_level(void)
{
    const char *l = getenv("RSDM_SIM_LOG");
    return l && *l ? l : "warning";
}

static int set_config(rsdm_sim *s, const char *config)
{
    if (config && strlen(config) >= sizeof(s->config)) {
        fprintf(stderr, "rsdm_sim: config path %s is too long\n", config);
        return -1;
    }
    snprintf(s->config, sizeof(s->config), "%s", config ? config : "");
    return 0;
}

/* The traditional dialect's dm, up to `running`. */
static int spawn_dm(rsdm_sim *s, const char *loadvm)
{
    char rsdm[4200], domarg[16];
    snprintf(rsdm, sizeof(rsdm), "%s/rsdm-sim", s->bin);
    snprintf(domarg, sizeof(domarg), "%u", s->dom);
    char *argv[16] = { rsdm, "-d", domarg, "-serial", "null", "--log-level", (char *)log_level(),
                       "--save-dir", s->dir };
    int n = 9;
    if (s->config[0]) {
        argv[n++] = "--config";
        argv[n++] = s->config;
    }
    if (loadvm) {
        argv[n++] = "-loadvm";
        argv[n++] = (char *)loadvm;
    }
    argv[n] = NULL;
    xs_rm(s->xs, XBT_NULL, s->state);
    s->dm_exited = 0;
    s->dm = proc_spawn_logged(argv, s->log);
    if (rsdm_sim_wait_value(s, s->state, "running", START_WAIT_MS) < 0) {
        fprintf(stderr, "rsdm_sim: rsdm-sim %s (log %s)\n",
                s->dm_exited ? "exited before it wrote running" : "never wrote running", s->log);
        return -1;
    }
    return 0;
}


/* s->dom becomes domid: its device-model/<domid>/ paths, watched. */
static int use_domain(rsdm_sim *s, uint32_t domid)
{
    s->dom = domid;
    s->d = hv_domain_get(s->dom);
    char dir[96];
    snprintf(dir, sizeof(dir), "/local/domain/0/device-model/%u", s->dom);
    snprintf(s->state, sizeof(s->state), "%s/state", dir);
    snprintf(s->runstate, sizeof(s->runstate), "%s/runstate", dir);
    snprintf(s->command, sizeof(s->command), "%s/command", dir);
    if (!s->d || !xs_mkdir(s->xs, XBT_NULL, dir) || !xs_watch(s->xs, s->state, "s") ||
        !xs_watch(s->xs, s->runstate, "r")) {
        fprintf(stderr, "rsdm_sim: domain %u: %s\n", domid,
                s->d ? "xenstore set-up failed" : "not found");
        return -1;
    }
    return 0;
}

/* xensim, the hypervisor, the domain and the watches; no dm yet. */
static int start_host(rsdm_sim *s, const char *name, unsigned vcpus)
{
    memset(s, 0, sizeof(*s));
    const char *b = getenv("RSDM_BUILD");
    snprintf(s->bin, sizeof(s->bin), "%s/bin", b ? b : "build");
    snprintf(s->dir, sizeof(s->dir), "/tmp/rsdm-sim.XXXXXX");
    if (!mkdtemp(s->dir)) {
        perror("rsdm_sim: mkdtemp");
        return -1;
    }
    char xsbin[4200], rundir[128], pidfile[128], sock[160];
    snprintf(xsbin, sizeof(xsbin), "%s/xensim", s->bin);
    snprintf(rundir, sizeof(rundir), "%s/xs", s->dir);
    snprintf(pidfile, sizeof(pidfile), "%s/xensim.pid", s->dir);
    snprintf(s->log, sizeof(s->log), "%s/log", s->dir);
    snprintf(sock, sizeof(sock), "%s/xenstored/socket", rundir);
    snprintf(s->qmp_path, sizeof(s->qmp_path), "%s/qmp", s->dir);
    char *xsargv[] = { xsbin, "run", "--rundir", rundir, "--daemon", "--pidfile", pidfile, NULL };
    int st;
    pid_t p = proc_spawn_logged(xsargv, s->log);
    if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "rsdm_sim: xensim did not start (is %s built? log %s)\n", xsbin, s->log);
        return -1;
    }
    setenv("XENSTORED_PATH", sock, 1);
    if (xsim_fixture_start() < 0) {
        fprintf(stderr, "rsdm_sim: the in-process hypervisor did not start\n");
        return -1;
    }
    hv_log_quiet(true);
    if (!(s->xs = xs_open(0))) {
        perror("rsdm_sim: xs_open");
        return -1;
    }
    int id = hv_domain_create(0, vcpus, 16, name);
    if (id <= 0) {
        fprintf(stderr, "rsdm_sim: hv_domain_create: %s\n", strerror(-id));
        return -1;
    }
    return use_domain(s, (uint32_t)id);
}

/* The host, the vbd nodes, the dm by `spawn_fn`, then the domain unpaused
 * as libxl does once the dm is ready. */
static int start_with(rsdm_sim *s, const rsdm_sim_opts *o,
                      int (*spawn_fn)(rsdm_sim *, const rsdm_sim_opts *))
{
    if (start_host(s, o->name, o->vcpus) < 0)
        goto fail;
    if (o->ndisks > RSDM_SIM_DISKS_MAX) {
        fprintf(stderr, "rsdm_sim: %u disks, at most %d\n", o->ndisks, RSDM_SIM_DISKS_MAX);
        goto fail;
    }
    s->dialect = o->dialect;
    s->restricted = o->restricted;
    for (unsigned i = 0; i < o->ndisks; i++)
        s->disks[i] = o->disks[i];
    s->ndisks = o->ndisks;
    if (set_config(s, o->config) < 0)
        goto fail;
    for (unsigned i = 0; i < o->ndisks; i++)
        if (write_vbd(s, s->dom, &o->disks[i]) < 0)
            goto fail;
    if (spawn_fn(s, o) < 0)
        goto fail;
    if (hv_domain_unpause(s->dom) < 0) {
        fprintf(stderr, "rsdm_sim: unpausing the domain failed\n");
        goto fail;
    }
    return 0;
fail:
    rsdm_sim_stop(s);
    return -1;
}

static int spawn_traditional(rsdm_sim *s, const rsdm_sim_opts *o)
{
    (void)o;
    return spawn_dm(s, NULL);
}

int rsdm_sim_start(rsdm_sim *s, const char *name, unsigned vcpus)
{
    rsdm_sim_opts o = { .name = name, .vcpus = vcpus };
    return rsdm_sim_start_opts(s, &o);
}

static int spawn_qmp_fresh(rsdm_sim *s, const rsdm_sim_opts *o)
{
    return rsdm_sim_spawn_qmp(s, o->restricted, -1);
}

int rsdm_sim_start_opts(rsdm_sim *s, const rsdm_sim_opts *o)
{
    return start_with(s, o, o->dialect == RSDM_SIM_QEMU_XEN ? spawn_qmp_fresh : spawn_traditional);
}

int rsdm_sim_pause_count(const rsdm_sim *s)
{
    struct hv_domain_info info;
    return hv_domain_info(s->dom, &info) == 0 ? (int)info.pause_count : -1;
}

static void *uart_guest(void *arg)
{
    rsdm_sim_guest *g = arg;
    uint8_t value = 0;
    while (!atomic_load(&g->stop)) {
        uint64_t w = ++value, r = 0;
        if (xsim_pio(g->sim->d, 0, true, RSDM_SIM_UART_SCR, 1, &w) != 0 ||
            xsim_pio(g->sim->d, 0, false, RSDM_SIM_UART_SCR, 1, &r) != 0) {
            atomic_fetch_add(&g->failures, 1);
            continue;
        }
        if (r != w)
            atomic_fetch_add(&g->mismatches, 1);
        atomic_fetch_add(&g->accesses, 2);
    }
    return NULL;
}

int rsdm_sim_guest_start(rsdm_sim_guest *g, rsdm_sim *s)
{
    memset(g, 0, sizeof(*g));
    g->sim = s;
    int r = pthread_create(&g->thread, NULL, uart_guest, g);
    g->running = r == 0;
    return -r;
}

void rsdm_sim_guest_stop(rsdm_sim_guest *g)
{
    if (!g->running)
        return;
    atomic_store(&g->stop, true);
    pthread_join(g->thread, NULL);
    g->running = false;
}

void rsdm_sim_guest_step(rsdm_sim_guest *g)
{
    unsigned long seen = atomic_load(&g->accesses);
    for (int spins = 0; atomic_load(&g->accesses) == seen && spins < 1000000; spins++)
        sched_yield();
}

xlq *rsdm_sim_qmp(rsdm_sim *s)
{
    char err[512];
    xlq *c = xlq_open(s->qmp_path, XLQ_LIBXL, s->dom, START_WAIT_MS, err, sizeof(err));
    if (!c)
        fprintf(stderr, "rsdm_sim: %s (log %s)\n", err, s->log);
    return c;
}

int rsdm_sim_qmp_exec(rsdm_sim *s, const char *cmd, json_t *args, int fd, json_t **ret)
{
    xlq *c = rsdm_sim_qmp(s);
    if (!c) {
        json_decref(args);
        return -1;
    }
    char err[512];
    int r = xlq_exec(c, cmd, args, fd, ret, START_WAIT_MS, err, sizeof(err));
    xlq_close(c);
    if (r < 0)
        fprintf(stderr, "rsdm_sim: %s\n", err);
    return r;
}

/* libxl__pre_open_qmp_socket: bound and listening, inherited by the dm. */
static int pre_open(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "rsdm_sim: socket path %s is too long\n", path);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    unlink(path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
        perror("rsdm_sim: pre-opening the QMP socket");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* libxl__build_device_model_args_new's disks (see rsdm_sim.h for the
 * AHCI drive id); the strings live in buf.  The number of arguments. */
static int disk_args(const rsdm_sim *s, char **argv, char buf[][2][1200])
{
    int n = 0;
    bool ahci = false;
    for (unsigned i = 0; i < s->ndisks; i++) {
        const rsdm_sim_disk *d = &s->disks[i];
        int idx = d->vdev[2] - 'a';
        if (d->vdev[0] == 's') {
            if (!ahci) {
                argv[n++] = "-device";
                argv[n++] = "ahci,id=ahci0";
                ahci = true;
            }
            snprintf(buf[i][0], sizeof(buf[i][0]),
                     "file=%s,if=none,id=%s,format=raw,cache=writeback", d->path, d->vdev);
            snprintf(buf[i][1], sizeof(buf[i][1]), "ide-hd,bus=ahci0.%d,unit=0,drive=%s", idx,
                     d->vdev);
            argv[n++] = "-drive";
            argv[n++] = buf[i][0];
            argv[n++] = "-device";
            argv[n++] = buf[i][1];
        } else {
            snprintf(buf[i][0], sizeof(buf[i][0]),
                     "file=%s,if=ide,index=%d,readonly=off,media=disk,format=raw,cache=writeback",
                     d->path, idx);
            argv[n++] = "-drive";
            argv[n++] = buf[i][0];
        }
    }
    return n;
}

int rsdm_sim_spawn_qmp(rsdm_sim *s, bool restricted, int incoming_fd)
{
    char rsdm[4200], domarg[16], chardev[256], incoming[32];
    snprintf(rsdm, sizeof(rsdm), "%s/rsdm-sim", s->bin);
    snprintf(domarg, sizeof(domarg), "%u", s->dom);
    int qfd = restricted ? pre_open(s->qmp_path) : -1;
    if (restricted && qfd < 0)
        return -1;
    if (restricted)
        snprintf(chardev, sizeof(chardev), "socket,id=libxl-cmd,fd=%d,server=on,wait=off", qfd);
    else
        snprintf(chardev, sizeof(chardev), "socket,id=libxl-cmd,path=%s,server=on,wait=off",
                 s->qmp_path);
    snprintf(incoming, sizeof(incoming), "fd:%d", incoming_fd);
    char *argv[32 + 4 * RSDM_SIM_DISKS_MAX];
    char diskargs[RSDM_SIM_DISKS_MAX][2][1200];
    int n = 0;
    char *fixed[] = { rsdm, "-xen-domid", domarg, "-no-shutdown", "-chardev", chardev, "-mon",
                      "chardev=libxl-cmd,mode=control", "-nodefaults", "-serial", "null",
                      "-machine", "xenfv,suppress-vmdesc=on", "--log-level", (char *)log_level() };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        argv[n++] = fixed[i];
    if (restricted) {
        argv[n++] = "-S";
        argv[n++] = "-xen-domid-restrict";
    }
    if (incoming_fd >= 0) {
        argv[n++] = "-incoming";
        argv[n++] = incoming;
    }
    n += disk_args(s, argv + n, diskargs);
    if (s->config[0]) {
        argv[n++] = "--config";
        argv[n++] = s->config;
    }
    argv[n] = NULL;
    xs_rm(s->xs, XBT_NULL, s->state);        /* a stale `running` must not count */
    s->dm_exited = 0;
    s->dm = proc_spawn_logged(argv, s->log);
    if (qfd >= 0)
        close(qfd);
    if (incoming_fd >= 0)
        close(incoming_fd);
    if (s->dm < 0)
        return -1;
    if (restricted) {
        json_t *ret = NULL;
        if (rsdm_sim_qmp_exec(s, "query-status", NULL, -1, &ret) < 0)
            return -1;
        const char *st = json_string_value(json_object_get(ret, "status"));
        const char *want = incoming_fd >= 0 ? "paused" : "prelaunch";
        int ok = st && !strcmp(st, want);
        if (!ok)
            fprintf(stderr, "rsdm_sim: status '%s', expected '%s'\n", st ? st : "?", want);
        json_decref(ret);
        if (!ok)
            return -1;
    } else if (rsdm_sim_wait_value(s, s->state, "running", START_WAIT_MS) < 0) {
        fprintf(stderr, "rsdm_sim: rsdm-sim %s (log %s)\n",
                s->dm_exited ? "exited before it wrote running" : "never wrote running", s->log);
        return -1;
    }
    /* libxl_domain_unpause: `cont` (whatever the state), then Xen. */
    if (rsdm_sim_qmp_exec(s, "cont", NULL, -1, NULL) < 0)
        return -1;
    return 0;
}

const char *rsdm_sim_dialect_name(const rsdm_sim *s)
{
    return s->dialect == RSDM_SIM_QEMU_XEN ? "qemu-xen" : "traditional";
}

int rsdm_sim_command(rsdm_sim *s, const char *cmd)
{
    if (s->dialect == RSDM_SIM_QEMU_XEN) {
        const char *q = !strcmp(cmd, "continue") ? "cont" : !strcmp(cmd, "stop") ? "stop" : NULL;
        if (!q) {
            fprintf(stderr, "rsdm_sim: no QMP command for '%s' (a save is rsdm_sim_save)\n", cmd);
            return -1;
        }
        return rsdm_sim_qmp_exec(s, q, NULL, -1, NULL);
    }
    if (!xs_write(s->xs, XBT_NULL, s->command, cmd, strlen(cmd))) {
        fprintf(stderr, "rsdm_sim: writing command %s: %s\n", cmd, strerror(errno));
        return -1;
    }
    return 0;
}

/* libxl__qmp_suspend_save on one connection: stop, add-fd,
 * xen-save-devices-state of /dev/fdset/N (a restricted dm opens nothing). */
static int save_qmp(rsdm_sim *s, const char *path, bool live)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "rsdm_sim: creating %s: %s\n", path, strerror(errno));
        return -1;
    }
    xlq *c = rsdm_sim_qmp(s);
    if (!c) {
        close(fd);
        return -1;
    }
    char err[512], fn[64];
    json_t *ret = NULL;
    int r = xlq_exec(c, "stop", NULL, -1, NULL, START_WAIT_MS, err, sizeof(err));
    if (r == 0)
        r = xlq_exec(c, "add-fd", NULL, fd, &ret, START_WAIT_MS, err, sizeof(err));
    if (r == 0) {
        snprintf(fn, sizeof(fn), "/dev/fdset/%lld",
                 (long long)json_integer_value(json_object_get(ret, "fdset-id")));
        r = xlq_exec(c, "xen-save-devices-state", json_pack("{s:s,s:b}", "filename", fn, "live", live),
                     -1, NULL, 30000, err, sizeof(err));
    }
    json_decref(ret);
    xlq_close(c);
    close(fd);
    if (r < 0)
        fprintf(stderr, "rsdm_sim: the QMP save: %s\n", err);
    return r;
}

static int save(rsdm_sim *s, bool live, char *path, size_t len)
{
    rsdm_sim_save_path(s, path, len);
    if (s->dialect == RSDM_SIM_QEMU_XEN)
        return save_qmp(s, path, live);
    if (rsdm_sim_command(s, "save") < 0)
        return -1;
    if (rsdm_sim_wait_value(s, s->state, "paused", 30000) < 0) {
        fprintf(stderr, "rsdm_sim: no `paused` after `save` (log %s)\n", s->log);
        return -1;
    }
    return 0;
}

int rsdm_sim_save(rsdm_sim *s, char *path, size_t len)
{
    return save(s, false, path, len);
}

int rsdm_sim_save_live(rsdm_sim *s, char *path, size_t len)
{
    return save(s, true, path, len);
}

int rsdm_sim_restore_dm(rsdm_sim *s, const char *file, const char *config)
{
    if (set_config(s, config) < 0)
        return -1;
    if (s->dialect != RSDM_SIM_QEMU_XEN)
        return spawn_dm(s, file);
    int fd = open(file, O_RDONLY);     /* inherited: -incoming fd:N */
    if (fd < 0) {
        fprintf(stderr, "rsdm_sim: opening %s: %s\n", file, strerror(errno));
        return -1;
    }
    return rsdm_sim_spawn_qmp(s, s->restricted, fd);
}

int rsdm_sim_start_qmp(rsdm_sim *s, const char *name, unsigned vcpus, bool restricted)
{
    rsdm_sim_opts o = { .name = name, .vcpus = vcpus, .restricted = restricted,
                        .dialect = RSDM_SIM_QEMU_XEN };
    return rsdm_sim_start_opts(s, &o);
}

int rsdm_sim_migrate_begin(rsdm_sim *s, char *file, size_t len)
{
    int rc = hv_domain_shutdown(s->dom, SHUTDOWN_suspend);
    if (rc == 0)
        rc = hv_domain_wait(s->dom, HV_WAIT_SHUT_DOWN, START_WAIT_MS);
    if (rc < 0) {
        fprintf(stderr, "rsdm_sim: domain %u did not suspend: %s\n", s->dom, strerror(-rc));
        return -1;
    }
    /* libxl saves the dm of a migration `live` (qemu-xen: the image
     * locks go with it; traditional: the same `save`). */
    return rsdm_sim_save_live(s, file, len);
}

/* The destination domain as `xl migrate-receive` builds it: paused, the
 * source's shape, its RAM copied (the suspended source changes no more).
 * Its domid, or -1. */
static int receive_domain(rsdm_sim *s)
{
    struct hv_domain_info info;
    int id = hv_domain_info(s->dom, &info);
    if (id == 0)
        id = hv_domain_create(0, info.nr_vcpus, (unsigned)(info.mem_bytes >> 20), info.name);
    if (id <= 0) {
        fprintf(stderr, "rsdm_sim: creating the destination domain: %s\n", strerror(-id));
        return -1;
    }
    struct hv_domain *to = hv_domain_get((uint32_t)id);
    uint64_t from_size = 0, to_size = 0;
    void *from_ram = hv_domain_ram(s->d, &from_size);
    void *to_ram = to ? hv_domain_ram(to, &to_size) : NULL;
    if (!from_ram || !to_ram || to_size != from_size) {
        fprintf(stderr, "rsdm_sim: guest RAM of domain %u or %d not mapped\n", s->dom, id);
        hv_domain_put(to);
        hv_domain_destroy((uint32_t)id);
        return -1;
    }
    memcpy(to_ram, from_ram, from_size);
    hv_domain_put(to);
    for (unsigned i = 0; i < s->ndisks; i++)
        if (write_vbd(s, (uint32_t)id, &s->disks[i]) < 0)
            return -1;
    return id;
}

int rsdm_sim_migrate_finish(rsdm_sim *s, const char *file, const char *config)
{
    int id = receive_domain(s);
    if (id < 0)
        return -1;
    /* The source goes as after `xl migrate`: its dm, its domain, its nodes. */
    uint32_t old = s->dom;
    int st = rsdm_sim_stop_dm(s);
    if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "rsdm_sim: the source's rsdm-sim ended with status %d (log %s)\n", st,
                s->log);
        return -1;
    }
    xs_unwatch(s->xs, s->state, "s");
    xs_unwatch(s->xs, s->runstate, "r");
    char p[96];
    const char *dirs[] = { "/local/domain/0/device-model/", "/local/domain/0/backend/vbd/",
                           "/local/domain/" };
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(p, sizeof(p), "%s%u", dirs[i], old);
        xs_rm(s->xs, XBT_NULL, p);
    }
    hv_domain_put(s->d);
    s->d = NULL;
    int rc = hv_domain_destroy(old);
    if (rc < 0)
        fprintf(stderr, "rsdm_sim: destroying the source domain %u: %s\n", old, strerror(-rc));
    if (use_domain(s, (uint32_t)id) < 0 || rc < 0 || rsdm_sim_restore_dm(s, file, config) < 0)
        return -1;
    if ((rc = hv_domain_unpause(s->dom)) < 0) {
        fprintf(stderr, "rsdm_sim: unpausing domain %u: %s\n", s->dom, strerror(-rc));
        return -1;
    }
    return 0;
}

int rsdm_sim_stop_dm(rsdm_sim *s)
{
    if (s->dm <= 0)
        return -1;
    int st;
    kill(s->dm, SIGTERM);
    /* A dm still reading its -incoming stream takes signals only from its
     * loop: after a bound it is killed, so a failing test cannot hang. */
    pid_t r = 0;
    for (int ms = 0; ms < START_WAIT_MS && (r = waitpid(s->dm, &st, WNOHANG)) == 0; ms += 10)
        poll(NULL, 0, 10);
    if (r == 0) {
        fprintf(stderr, "rsdm_sim: rsdm-sim %ld ignored SIGTERM; killing it\n", (long)s->dm);
        kill(s->dm, SIGKILL);
        r = waitpid(s->dm, &st, 0);
    }
    s->dm = 0;
    return r > 0 ? st : -1;
}

void rsdm_sim_stop(rsdm_sim *s)
{
    rsdm_sim_stop_dm(s);
    if (s->xs)
        xs_close(s->xs);
    s->xs = NULL;
    if (s->d) {
        hv_domain_put(s->d);
        hv_domain_destroy(s->dom);
        s->d = NULL;
    }
    xsim_fixture_stop();
    char pidfile[128];
    snprintf(pidfile, sizeof(pidfile), "%s/xensim.pid", s->dir);
    FILE *pf = fopen(pidfile, "r");
    int xpid = 0;
    if (pf && fscanf(pf, "%d", &xpid) == 1 && xpid > 0)
        kill(xpid, SIGTERM);
    if (pf)
        fclose(pf);
    if (s->dir[0] && getenv("RSDM_SIM_KEEP")) {
        fprintf(stderr, "rsdm_sim: kept %s (RSDM_SIM_KEEP)\n", s->dir);
    } else if (s->dir[0]) {
        char rm[160];
        snprintf(rm, sizeof(rm), "rm -rf '%s'", s->dir);
        if (system(rm) != 0)
            fprintf(stderr, "rsdm_sim: could not remove %s\n", s->dir);
    }
}

/*
 * The qemu-xen dialect's options (dm_args.h): libxl 4.17's
 * libxl__build_device_model_args_new (reference §4.3), its -machine none
 * probe (§4.4) and XenServer's qemu-wrapper (§5.4).  QEMU's option strings
 * are `key=value` lists separated by commas (`,,` is a literal comma), the
 * first element possibly naming the option's implied key.
 */
#include "dm_args_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#define QKEY_MAX 32

typedef struct qopt {
    char key[QKEY_MAX];
    char val[DM_DISK_PATH_MAX];
    bool has_val;
} qopt;

/* The next element of *p into q; the first one without '=' gets `implied`
 * as its key (when given).  1 for an element, 0 at the end, -EINVAL with
 * err for an overlong key or value. */
static int qopt_next(const char **p, qopt *q, const char *implied, bool first, const char *opt,
                     char *err, size_t errlen)
{
    const char *s = *p;
    if (!s || !*s)
        return 0;
    char buf[DM_DISK_PATH_MAX + QKEY_MAX + 2];
    size_t n = 0;
    while (*s) {
        if (*s == ',') {
            if (s[1] != ',')
                break;
            s++;                                  /* ",," -> "," */
        }
        if (n + 1 >= sizeof(buf)) {
            snprintf(err, errlen, "%s: an element of '%.60s...' is too long", opt, *p);
            return -EINVAL;
        }
        buf[n++] = *s++;
    }
    buf[n] = 0;
    *p = *s ? s + 1 : s;
    char *eq = strchr(buf, '=');
    const char *key = buf, *val = NULL;
    if (eq) {
        *eq = 0;
        val = eq + 1;
    } else if (first && implied) {
        key = implied;
        val = buf;
    }
    if (strlen(key) >= sizeof(q->key) || (val && strlen(val) >= sizeof(q->val))) {
        snprintf(err, errlen, "%s: '%.40s' is too long", opt, key);
        return -EINVAL;
    }
    strcpy(q->key, key);
    q->has_val = val != NULL;
    strcpy(q->val, val ? val : "");
    return 1;
}

/* Walks an option string: for each element calls fn(ctx, q), stopping at
 * its first error. */
typedef int (*qopt_fn)(dm_args *a, void *ctx, const qopt *q, const char *opt, char *err,
                       size_t errlen);

static int qopt_walk(dm_args *a, const char *val, const char *implied, qopt_fn fn, void *ctx,
                     const char *opt, char *err, size_t errlen)
{
    const char *p = val;
    qopt q;
    int r;
    bool first = true;
    while ((r = qopt_next(&p, &q, implied, first, opt, err, errlen)) > 0) {
        first = false;
        if ((r = fn(a, ctx, &q, opt, err, errlen)) < 0)
            return r;
    }
    return r;
}

/* QEMU's booleans: on/off/yes/no/true/false; a bare key means on. */
static int qbool(const qopt *q, bool *out, const char *opt, char *err, size_t errlen)
{
    static const char *const on[] = { "on", "yes", "true" }, *const off[] = { "off", "no", "false" };
    if (!q->has_val) {
        *out = true;
        return 0;
    }
    for (size_t i = 0; i < 3; i++) {
        if (!strcmp(q->val, on[i])) {
            *out = true;
            return 0;
        }
        if (!strcmp(q->val, off[i])) {
            *out = false;
            return 0;
        }
    }
    snprintf(err, errlen, "%s: %s='%s' is not on or off", opt, q->key, q->val);
    return -EINVAL;
}

static int unknown_key(const qopt *q, const char *opt, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: unknown parameter '%s'", opt, q->key);
    return -EINVAL;
}

static int copy_to(char *dst, size_t len, const char *src, const char *what, const char *opt,
                   char *err, size_t errlen)
{
    if (strlen(src) >= len) {
        snprintf(err, errlen, "%s: %s '%.60s...' is too long (max %zu bytes)", opt, what, src,
                 len - 1);
        return -EINVAL;
    }
    strcpy(dst, src);
    return 0;
}

static int parse_fd(const char *s, int *out, const char *opt, char *err, size_t errlen)
{
    unsigned long long v;
    if (!dm_args_parse_uint(s, 0, INT_MAX, &v)) {
        snprintf(err, errlen, "%s: '%s' is not a file descriptor number", opt, s);
        return -EINVAL;
    }
    *out = (int)v;
    return 0;
}

static int add_monitor(dm_args *a, const char *id, const char *path, int fd, const char *opt,
                       char *err, size_t errlen)
{
    if (a->nmonitors == DM_ARGS_MAX_MONITORS) {
        snprintf(err, errlen, "%s: more than %d QMP monitors", opt, DM_ARGS_MAX_MONITORS);
        return -EINVAL;
    }
    dm_monitor *m = &a->monitors[a->nmonitors];
    /* id and path may live in a->sockets: bounded copies, no snprintf. */
    size_t n = strnlen(id, sizeof(m->id) - 1);
    memcpy(m->id, id, n);
    m->id[n] = 0;
    n = path ? strnlen(path, sizeof(m->path) - 1) : 0;
    if (n)
        memcpy(m->path, path, n);
    m->path[n] = 0;
    m->fd = fd;
    a->nmonitors++;
    return 0;
}

/* ------------------------------------------------------------- -chardev */

typedef struct chardev_ctx {
    char backend[16];
    char id[DM_ARGS_ID_MAX];
    char path[DM_ARGS_PATH_MAX];
    int fd;
    bool server, wait_set, wait;
} chardev_ctx;

static int chardev_el(dm_args *a, void *ctx, const qopt *q, const char *opt, char *err,
                      size_t errlen)
{
    (void)a;
    chardev_ctx *c = ctx;
    if (!strcmp(q->key, "backend"))
        return copy_to(c->backend, sizeof(c->backend), q->val, "backend", opt, err, errlen);
    if (!strcmp(q->key, "id"))
        return copy_to(c->id, sizeof(c->id), q->val, "id", opt, err, errlen);
    if (!strcmp(q->key, "path"))
        return copy_to(c->path, sizeof(c->path), q->val, "socket path", opt, err, errlen);
    if (!strcmp(q->key, "fd"))
        return parse_fd(q->val, &c->fd, opt, err, errlen);
    if (!strcmp(q->key, "server"))
        return qbool(q, &c->server, opt, err, errlen);
    if (!strcmp(q->key, "wait")) {
        c->wait_set = true;
        return qbool(q, &c->wait, opt, err, errlen);
    }
    if (!strcmp(q->key, "nowait")) {
        c->wait_set = true;
        c->wait = false;
        return 0;
    }
    /* Parameters of chardevs rsdm does not serve (channels): not checked. */
    if (strcmp(c->backend, "socket") != 0)
        return 0;
    return unknown_key(q, opt, err, errlen);
}

int dm_argq_chardev(dm_args *a, const dm_opt_spec *o, const char *opt, const char *val,
                    char *err, size_t errlen)
{
    chardev_ctx c = { .fd = -1 };
    int r = qopt_walk(a, val, "backend", chardev_el, &c, opt, err, errlen);
    if (r < 0)
        return r;
    if (!c.id[0]) {
        snprintf(err, errlen, "%s %s: no id=", opt, val);
        return -EINVAL;
    }
    if (strcmp(c.backend, "socket") != 0)
        /* libxl's channels (pty/socket for the guest's virtio consoles):
         * rsdm has no virtio-serial, so they are listed as ignored. */
        return dm_args_add_ignored(a, o, opt, val, err, errlen);
    if (!c.server) {
        snprintf(err, errlen, "%s id=%s: rsdm serves sockets as a server only (server=on)", opt,
                 c.id);
        return -EINVAL;
    }
    bool has_path = c.path[0] != 0, has_fd = c.fd >= 0;
    if (has_path == has_fd) {
        snprintf(err, errlen, "%s id=%s: give exactly one of path= and fd=", opt, c.id);
        return -EINVAL;
    }
    for (unsigned i = 0; i < a->nsockets; i++)
        if (!strcmp(a->sockets[i].id, c.id)) {
            snprintf(err, errlen, "%s: duplicate chardev id '%s'", opt, c.id);
            return -EINVAL;
        }
    if (a->nsockets == DM_ARGS_MAX_SOCKETS) {
        snprintf(err, errlen, "%s: more than %d socket chardevs", opt, DM_ARGS_MAX_SOCKETS);
        return -EINVAL;
    }
    /* wait=on would block start-up until a client connects; rsdm never
     * waits (libxl and xenopsd always pass wait=off / nowait). */
    struct dm_args_socket *s = &a->sockets[a->nsockets++];
    memcpy(s->id, c.id, sizeof(s->id));
    memcpy(s->path, c.path, sizeof(s->path));
    s->fd = c.fd;
    s->used = false;
    return 0;
}

/* ----------------------------------------------------------------- -mon */

typedef struct mon_ctx {
    char chardev[DM_ARGS_ID_MAX];
    char mode[16];
} mon_ctx;

static int mon_el(dm_args *a, void *ctx, const qopt *q, const char *opt, char *err,
                  size_t errlen)
{
    (void)a;
    mon_ctx *m = ctx;
    if (!strcmp(q->key, "chardev"))
        return copy_to(m->chardev, sizeof(m->chardev), q->val, "chardev", opt, err, errlen);
    if (!strcmp(q->key, "mode"))
        return copy_to(m->mode, sizeof(m->mode), q->val, "mode", opt, err, errlen);
    if (!strcmp(q->key, "pretty")) {
        bool b;
        return qbool(q, &b, opt, err, errlen);
    }
    return unknown_key(q, opt, err, errlen);
}

int dm_argq_mon(dm_args *a, const dm_opt_spec *o, const char *opt, const char *val, char *err,
                size_t errlen)
{
    (void)o;
    mon_ctx m = { "", "readline" };
    int r = qopt_walk(a, val, "chardev", mon_el, &m, opt, err, errlen);
    if (r < 0)
        return r;
    if (strcmp(m.mode, "control") != 0) {
        snprintf(err, errlen, "%s %s: rsdm serves QMP monitors only (mode=control), not %s", opt,
                 val, m.mode);
        return -EINVAL;
    }
    for (unsigned i = 0; i < a->nsockets; i++) {
        struct dm_args_socket *s = &a->sockets[i];
        if (strcmp(s->id, m.chardev) != 0)
            continue;
        if (s->used) {
            snprintf(err, errlen, "%s: chardev '%s' already has a monitor", opt, s->id);
            return -EINVAL;
        }
        s->used = true;
        return add_monitor(a, s->id, s->path, s->fd, opt, err, errlen);
    }
    snprintf(err, errlen, "%s: no -chardev socket with id '%s' before it", opt, m.chardev);
    return -EINVAL;
}

/* -qmp unix:PATH[,server][,nowait] (QEMU's legacy chardev syntax; xenopsd). */
int dm_argq_qmp(dm_args *a, const dm_opt_spec *o, const char *opt, const char *val, char *err,
                size_t errlen)
{
    (void)o;
    if (strncmp(val, "unix:", 5) != 0) {
        snprintf(err, errlen, "%s %s: rsdm serves QMP on Unix sockets only (unix:PATH,server,nowait)",
                 opt, val);
        return -EINVAL;
    }
    const char *path = val + 5, *comma = strchr(path, ',');
    size_t plen = comma ? (size_t)(comma - path) : strlen(path);
    if (plen == 0 || plen >= DM_ARGS_PATH_MAX) {
        snprintf(err, errlen, "%s: socket path must be 1-%d bytes", opt, DM_ARGS_PATH_MAX - 1);
        return -EINVAL;
    }
    bool server = false;
    for (const char *p = comma; p && *p;) {
        p++;
        size_t n = strcspn(p, ",");
        if ((n == 6 && !strncmp(p, "server", 6)) || (n == 9 && !strncmp(p, "server=on", 9)))
            server = true;
        else if (!((n == 6 && !strncmp(p, "nowait", 6)) || (n == 8 && !strncmp(p, "wait=off", 8)))) {
            snprintf(err, errlen, "%s: unknown parameter '%.*s'", opt, (int)n, p);
            return -EINVAL;
        }
        p += n;
    }
    if (!server) {
        snprintf(err, errlen, "%s %s: rsdm serves sockets as a server only (add ,server)", opt, val);
        return -EINVAL;
    }
    char id[16], spath[DM_ARGS_PATH_MAX];
    snprintf(id, sizeof(id), "qmp%u", a->nmonitors);
    memcpy(spath, val + 5, plen);
    spath[plen] = 0;
    return add_monitor(a, id, spath, -1, opt, err, errlen);
}

/* ------------------------------------------------------- simple options */

int dm_argq_flag(dm_args *a, const dm_opt_spec *o, const char *opt, const char *val,
                 char *err, size_t errlen)
{
    (void)opt; (void)val;
    if (!strcmp(o->name, "S"))
        a->start_paused = true;
    else if (!strcmp(o->name, "no-shutdown"))
        a->no_shutdown = true;
    else if (!strcmp(o->name, "no-acpi"))
        a->acpi = false;
    else if (!strcmp(o->name, "xen-domid-restrict"))
        a->restrict_xen = true;
    else {
        snprintf(err, errlen, "-%s: no flag of that name (a table error)", o->name);
        return -EINVAL;
    }
    return 0;
}

int dm_argq_incoming(dm_args *a, const dm_opt_spec *o, const char *opt, const char *val,
                     char *err, size_t errlen)
{
    (void)o;
    if (strncmp(val, "fd:", 3) != 0) {
        snprintf(err, errlen, "%s %s: rsdm takes the incoming state as fd:N only (what libxl "
                 "and xenopsd pass)", opt, val);
        return -EINVAL;
    }
    if (a->incoming_fd >= 0) {
        snprintf(err, errlen, "%s given twice", opt);
        return -EINVAL;
    }
    return parse_fd(val + 3, &a->incoming_fd, opt, err, errlen);
}

int dm_argq_refuse(dm_args *a, const dm_opt_spec *o, const char *opt, const char *val,
                   char *err, size_t errlen)
{
    (void)a; (void)o; (void)val;
    snprintf(err, errlen, "%s: not served by rsdm (HVM guests booted by hvmloader only; no PV "
             "or direct kernel boot)", opt);
    return -EINVAL;
}

/* ------------------------------------------------------------- -machine */

typedef struct machine_ctx {
    char type[16];
    bool accel_xen, accel_set;
} machine_ctx;

static int machine_el(dm_args *a, void *ctx, const qopt *q, const char *opt, char *err,
                      size_t errlen)
{
    (void)a;
    machine_ctx *m = ctx;
    if (!strcmp(q->key, "type"))
        return copy_to(m->type, sizeof(m->type), q->val, "machine type", opt, err, errlen);
    if (!strcmp(q->key, "accel")) {
        m->accel_set = true;
        m->accel_xen = !strcmp(q->val, "xen");
        if (!m->accel_xen) {
            snprintf(err, errlen, "%s: accel=%s: rsdm runs on Xen only (accel=xen)", opt, q->val);
            return -EINVAL;
        }
        return 0;
    }
    /* rsdm's state file never carries a vmdesc; hvmloader lays out RAM. */
    if (!strcmp(q->key, "suppress-vmdesc")) {
        bool b;
        return qbool(q, &b, opt, err, errlen);
    }
    if (!strcmp(q->key, "max-ram-below-4g"))
        return 0;
    if (!strcmp(q->key, "igd-passthru")) {
        bool b;
        int r = qbool(q, &b, opt, err, errlen);
        if (r == 0 && b) {
            snprintf(err, errlen, "%s: igd-passthru=on: rsdm has no PCI passthrough", opt);
            return -EINVAL;
        }
        return r;
    }
    return unknown_key(q, opt, err, errlen);
}

int dm_argq_machine(dm_args *a, const dm_opt_spec *o, const char *opt, const char *val,
                    char *err, size_t errlen)
{
    (void)o;
    machine_ctx m = { "", false, false };
    int r = qopt_walk(a, val, "type", machine_el, &m, opt, err, errlen);
    if (r < 0)
        return r;
    if (!strcmp(m.type, "xenfv")) {
        a->machine = "xenfv";
        return 0;
    }
    if (!strcmp(m.type, "none")) {
        a->machine = "none";
        a->probe = true;
        return 0;
    }
    if (!strcmp(m.type, "pc") && m.accel_xen)
        snprintf(err, errlen, "%s %s (xen_platform_pci=0): rsdm always provides the Xen "
                 "platform device; use xen_platform_pci=1", opt, val);
    else if (!strcmp(m.type, "xenpv"))
        snprintf(err, errlen, "%s xenpv: rsdm emulates devices for HVM guests only (xenfv)", opt);
    else
        snprintf(err, errlen, "%s: unknown machine '%s' (rsdm provides xenfv, and none for "
                 "libxl's probe)", opt, m.type);
    return -EINVAL;
}

/* ---------------------------------------------------------- -m and -smp */

/* QEMU's sizes: a number of MiB, or with a suffix M or G. */
static bool parse_mib(const char *s, uint64_t *out)
{
    char num[24];
    size_t n = strspn(s, "0123456789");
    if (n == 0 || n >= sizeof(num))
        return false;
    memcpy(num, s, n);
    num[n] = 0;
    unsigned long long v;
    if (!dm_args_parse_uint(num, 1, 1ull << 32, &v))
        return false;
    const char *suf = s + n;
    if (!*suf || !strcmp(suf, "M") || !strcmp(suf, "m"))
        *out = v;
    else if ((!strcmp(suf, "G") || !strcmp(suf, "g")) && v <= (1ull << 22))
        *out = v * 1024;
    else
        return false;
    return true;
}

static int memory_el(dm_args *a, void *ctx, const qopt *q, const char *opt, char *err,
                     size_t errlen)
{
    (void)ctx;
    if (strcmp(q->key, "size") != 0) {
        if (!strcmp(q->key, "slots") || !strcmp(q->key, "maxmem"))
            return 0;                         /* memory hotplug: not used on Xen */
        return unknown_key(q, opt, err, errlen);
    }
    if (!parse_mib(q->val, &a->ram_mb)) {
        snprintf(err, errlen, "%s: '%s' is not a memory size (MiB, or with M or G)", opt, q->val);
        return -EINVAL;
    }
    return 0;
}

int dm_argq_memory(dm_args *a, const dm_opt_spec *o, const char *opt, const char *val,
                   char *err, size_t errlen)
{
    (void)o;
    return qopt_walk(a, val, "size", memory_el, NULL, opt, err, errlen);
}

typedef struct smp_ctx {
    unsigned long long cpus, maxcpus;
} smp_ctx;

static int smp_el(dm_args *a, void *ctx, const qopt *q, const char *opt, char *err,
                  size_t errlen)
{
    (void)a;
    smp_ctx *c = ctx;
    unsigned long long *dst = !strcmp(q->key, "cpus") ? &c->cpus
                              : !strcmp(q->key, "maxcpus") ? &c->maxcpus : NULL;
    if (!dst) {
        if (!strcmp(q->key, "sockets") || !strcmp(q->key, "cores") || !strcmp(q->key, "threads"))
            return 0;                         /* topology: Xen's CPUID, not the dm */
        return unknown_key(q, opt, err, errlen);
    }
    if (!dm_args_parse_uint(q->val, 1, DM_VCPUS_MAX, dst)) {
        snprintf(err, errlen, "%s: %s='%s' is not a vCPU count (1-%d)", opt, q->key, q->val,
                 DM_VCPUS_MAX);
        return -EINVAL;
    }
    return 0;
}

int dm_argq_smp(dm_args *a, const dm_opt_spec *o, const char *opt, const char *val, char *err,
                size_t errlen)
{
    (void)o;
    smp_ctx c = { 0, 0 };
    int r = qopt_walk(a, val, "cpus", smp_el, &c, opt, err, errlen);
    if (r < 0)
        return r;
    if (c.maxcpus && c.cpus > c.maxcpus) {
        snprintf(err, errlen, "%s %s: cpus (%llu) exceeds maxcpus (%llu)", opt, val, c.cpus,
                 c.maxcpus);
        return -EINVAL;
    }
    /* The dm serves every vCPU that can come online (one ioreq slot each). */
    a->vcpus = (unsigned)(c.maxcpus ? c.maxcpus : c.cpus ? c.cpus : 1);
    return 0;
}

/* ------------------------------------------------------------ -drive */

typedef struct drive_ctx {
    dm_disk_spec d;
    char iface[8];
    char media[8];
    long index, bus, unit;
    char id[DM_ARGS_ID_MAX];
} drive_ctx;

static int err_action(const qopt *q, bool read, dm_err_action *out, const char *opt, char *err,
                      size_t errlen)
{
    for (int v = DM_ERR_REPORT; v <= DM_ERR_STOP; v++)
        if (!strcmp(q->val, dm_err_action_name((dm_err_action)v)) &&
            !(read && v == DM_ERR_ENOSPC)) {          /* QEMU refuses rerror=enospc */
            *out = (dm_err_action)v;
            return 0;
        }
    snprintf(err, errlen, "%s: %s='%s' is not one of ignore, report, stop%s", opt, q->key,
             q->val, read ? "" : ", enospc");
    return -EINVAL;
}

static int parse_long(const qopt *q, long max, long *out, const char *opt, char *err,
                      size_t errlen)
{
    unsigned long long v;
    if (!dm_args_parse_uint(q->val, 0, (unsigned long long)max, &v)) {
        snprintf(err, errlen, "%s: %s='%s' is not a number (0-%ld)", opt, q->key, q->val, max);
        return -EINVAL;
    }
    *out = (long)v;
    return 0;
}

static int drive_el(dm_args *a, void *ctx, const qopt *q, const char *opt, char *err,
                    size_t errlen)
{
    (void)a;
    drive_ctx *c = ctx;
    const char *k = q->key;
    if (!strcmp(k, "file"))
        return copy_to(c->d.path, sizeof(c->d.path), q->val, "file", opt, err, errlen);
    if (!strcmp(k, "if"))
        return copy_to(c->iface, sizeof(c->iface), q->val, "if", opt, err, errlen);
    if (!strcmp(k, "media"))
        return copy_to(c->media, sizeof(c->media), q->val, "media", opt, err, errlen);
    if (!strcmp(k, "format"))
        return copy_to(c->d.format, sizeof(c->d.format), q->val, "format", opt, err, errlen);
    if (!strcmp(k, "id"))
        return copy_to(c->id, sizeof(c->id), q->val, "id", opt, err, errlen);
    if (!strcmp(k, "index"))
        return parse_long(q, 3, &c->index, opt, err, errlen);
    if (!strcmp(k, "bus"))
        return parse_long(q, 1, &c->bus, opt, err, errlen);
    if (!strcmp(k, "unit"))
        return parse_long(q, 1, &c->unit, opt, err, errlen);
    if (!strcmp(k, "readonly"))
        return qbool(q, &c->d.read_only, opt, err, errlen);
    if (!strcmp(k, "rerror")) {
        c->d.has_rerror = true;
        return err_action(q, true, &c->d.rerror, opt, err, errlen);
    }
    if (!strcmp(k, "werror")) {
        c->d.has_werror = true;
        return err_action(q, false, &c->d.werror, opt, err, errlen);
    }
    if (!strcmp(k, "cache")) {
        for (int v = DM_CACHE_WRITEBACK; v <= DM_CACHE_UNSAFE; v++)
            if (!strcmp(q->val, dm_cache_mode_name((dm_cache_mode)v))) {
                c->d.has_cache = true;
                c->d.cache = (dm_cache_mode)v;
                return 0;
            }
        snprintf(err, errlen, "%s: cache='%s' is not served (writeback, none or unsafe)", opt,
                 q->val);
        return -EINVAL;
    }
    /* Tuning QEMU's block layer offers that rsdm's backend does not have:
     * accepted so a line written for QEMU starts, without effect. */
    if (!strcmp(k, "aio") || !strcmp(k, "discard") || !strcmp(k, "detect-zeroes") ||
        !strcmp(k, "serial") || !strcmp(k, "snapshot") || !strcmp(k, "locking") ||
        !strcmp(k, "file.locking"))
        return 0;
    return unknown_key(q, opt, err, errlen);
}

static bool unit_taken(const dm_args *a, dm_disk_bus bus, unsigned unit)
{
    for (size_t i = 0; i < a->disks.n; i++)
        if (!a->disk_pending[i] && a->disks.disk[i].bus == bus && a->disks.disk[i].unit == unit)
            return true;
    return false;
}

int dm_argq_drive(dm_args *a, const dm_opt_spec *o, const char *opt, const char *val,
                  char *err, size_t errlen)
{
    (void)o;
    drive_ctx c = { .iface = "ide", .media = "disk", .index = -1, .bus = -1, .unit = -1 };
    int r = qopt_walk(a, val, NULL, drive_el, &c, opt, err, errlen);
    if (r < 0)
        return r;
    if (a->disks.n == DM_DISKS_MAX) {
        snprintf(err, errlen, "%s: more than %d disks", opt, DM_DISKS_MAX);
        return -EINVAL;
    }
    if (strcmp(c.media, "disk") != 0 && strcmp(c.media, "cdrom") != 0) {
        snprintf(err, errlen, "%s: media='%s' is not disk or cdrom", opt, c.media);
        return -EINVAL;
    }
    c.d.cdrom = !strcmp(c.media, "cdrom");
    if (!c.d.path[0] && !c.d.cdrom) {
        snprintf(err, errlen, "%s %s: a disk needs file=", opt, val);
        return -EINVAL;
    }
    size_t slot = a->disks.n;
    if (!strcmp(c.iface, "none")) {
        if (!c.id[0] || strlen(c.id) >= sizeof(c.d.name)) {
            snprintf(err, errlen, "%s: if=none needs an id= of 1-%zu bytes (the -device names it)",
                     opt, sizeof(c.d.name) - 1);
            return -EINVAL;
        }
        for (size_t i = 0; i < a->disks.n; i++)
            if (!strcmp(a->disks.disk[i].name, c.id)) {
                snprintf(err, errlen, "%s: duplicate drive id '%s'", opt, c.id);
                return -EINVAL;
            }
        strcpy(c.d.name, c.id);
        a->disk_pending[slot] = true;      /* placed by its -device */
    } else if (!strcmp(c.iface, "ide")) {
        long unit = c.index;
        if (unit < 0 && c.bus >= 0)
            unit = c.bus * 2 + (c.unit < 0 ? 0 : c.unit);
        for (long u = 0; unit < 0 && u < 4; u++)       /* QEMU: the next free unit */
            if (!unit_taken(a, DM_DISK_IDE, (unsigned)u))
                unit = u;
        if (unit < 0) {
            snprintf(err, errlen, "%s: all 4 IDE units are taken", opt);
            return -EINVAL;
        }
        if (unit_taken(a, DM_DISK_IDE, (unsigned)unit)) {
            snprintf(err, errlen, "%s: IDE unit %ld is given twice", opt, unit);
            return -EINVAL;
        }
        c.d.bus = DM_DISK_IDE;
        c.d.unit = (unsigned)unit;
        snprintf(c.d.name, sizeof(c.d.name), "hd%c", (char)('a' + unit));
        a->disk_pending[slot] = false;
    } else {
        snprintf(err, errlen, "%s: if=%s: rsdm emulates IDE and AHCI disks only (if=ide, or "
                 "if=none with -device ide-hd on an ahci bus)", opt, c.iface);
        return -EINVAL;
    }
    a->disks.disk[slot] = c.d;
    a->disks.n++;
    return 0;
}

/* ------------------------------------------------------------- -device */

/* Devices libxl or xenopsd may add that rsdm does not emulate and that a
 * guest can do without (display, USB, sound, NICs: PV drivers serve the
 * guest; the platform device rsdm always has): listed as ignored. */
static const char *const ignored_devices[] = {
    "VGA", "cirrus-vga", "qxl-vga", "qxl", "secondary-vga", "xen-pvdevice", "xen-platform",
    "piix3-usb-uhci", "ich9-usb-ehci1", "ich9-usb-uhci1", "ich9-usb-uhci2", "ich9-usb-uhci3",
    "nec-usb-xhci", "qemu-xhci", "usb-ehci", "usb-tablet", "usb-mouse", "usb-kbd", "usb-host",
    "e1000", "e1000e", "rtl8139", "ne2k_pci", "pcnet", "virtio-net-pci", "intel-hda",
    "hda-duplex", "hda-micro", "hda-output", "AC97", "ES1370", "sb16", "virtio-serial",
    "virtserialport", "virtconsole",
};

typedef struct device_ctx {
    char driver[32];
    char id[DM_ARGS_ID_MAX];
    char drive[DM_ARGS_ID_MAX];
    char bus[DM_ARGS_ID_MAX];
    long unit;
    bool check;                 /* a driver rsdm serves: parameters checked */
} device_ctx;

static int device_el(dm_args *a, void *ctx, const qopt *q, const char *opt, char *err,
                     size_t errlen)
{
    (void)a;
    device_ctx *c = ctx;
    if (!strcmp(q->key, "driver")) {
        int r = copy_to(c->driver, sizeof(c->driver), q->val, "driver", opt, err, errlen);
        c->check = !strcmp(c->driver, "ahci") || !strcmp(c->driver, "ich9-ahci") ||
                   !strncmp(c->driver, "ide-", 4);
        return r;
    }
    if (!c->check)
        return 0;
    if (!strcmp(q->key, "id"))
        return copy_to(c->id, sizeof(c->id), q->val, "id", opt, err, errlen);
    if (!strcmp(q->key, "drive"))
        return copy_to(c->drive, sizeof(c->drive), q->val, "drive", opt, err, errlen);
    if (!strcmp(q->key, "bus"))
        return copy_to(c->bus, sizeof(c->bus), q->val, "bus", opt, err, errlen);
    if (!strcmp(q->key, "unit"))
        return parse_long(q, 1, &c->unit, opt, err, errlen);
    if (!strcmp(q->key, "addr") || !strcmp(q->key, "serial") || !strcmp(q->key, "model") ||
        !strcmp(q->key, "bootindex") || !strcmp(q->key, "wwn"))
        return 0;
    return unknown_key(q, opt, err, errlen);
}

/* Places an if=none drive on the bus a -device ide-* names. */
static int place_drive(dm_args *a, const device_ctx *c, const char *opt, char *err,
                       size_t errlen)
{
    size_t i;
    for (i = 0; i < a->disks.n; i++)
        if (a->disk_pending[i] && !strcmp(a->disks.disk[i].name, c->drive))
            break;
    if (!c->drive[0] || i == a->disks.n) {
        snprintf(err, errlen, "%s %s: no unattached -drive if=none,id=%s before it", opt,
                 c->driver, c->drive[0] ? c->drive : "(no drive=)");
        return -EINVAL;
    }
    dm_disk_spec *d = &a->disks.disk[i];
    const char *dot = strrchr(c->bus, '.');
    unsigned long long n = 0;
    if (!dot || !dm_args_parse_uint(dot + 1, 0, 5, &n)) {
        snprintf(err, errlen, "%s %s: bus='%s' is not CONTROLLER.N", opt, c->driver, c->bus);
        return -EINVAL;
    }
    size_t clen = (size_t)(dot - c->bus);
    bool ahci = false;
    for (unsigned k = 0; k < a->nahci; k++)
        if (strlen(a->ahci_ids[k]) == clen && !strncmp(a->ahci_ids[k], c->bus, clen))
            ahci = true;
    if (ahci) {
        d->bus = DM_DISK_AHCI;
        d->unit = (unsigned)n;
    } else if (clen == 3 && !strncmp(c->bus, "ide", 3) && n <= 1) {
        d->bus = DM_DISK_IDE;
        d->unit = (unsigned)n * 2 + (c->unit < 0 ? 0 : (unsigned)c->unit);
    } else {
        snprintf(err, errlen, "%s %s: bus='%s' is neither ide.0/ide.1 nor a port of a -device "
                 "ahci given before it", opt, c->driver, c->bus);
        return -EINVAL;
    }
    if (unit_taken(a, d->bus, d->unit)) {
        snprintf(err, errlen, "%s: %s %s unit %u is given twice", opt, c->driver,
                 ahci ? "AHCI" : "IDE", d->unit);
        return -EINVAL;
    }
    if (!strcmp(c->driver, "ide-cd"))
        d->cdrom = true;
    a->disk_pending[i] = false;
    return 0;
}

int dm_argq_device(dm_args *a, const dm_opt_spec *o, const char *opt, const char *val,
                   char *err, size_t errlen)
{
    device_ctx c = { .unit = -1 };
    int r = qopt_walk(a, val, "driver", device_el, &c, opt, err, errlen);
    if (r < 0)
        return r;
    if (!strcmp(c.driver, "ahci") || !strcmp(c.driver, "ich9-ahci")) {
        if (!c.id[0]) {
            snprintf(err, errlen, "%s %s: needs an id= (the disks' bus= names it)", opt, val);
            return -EINVAL;
        }
        if (a->nahci == 1) {
            snprintf(err, errlen, "%s %s: rsdm has one AHCI controller", opt, val);
            return -EINVAL;
        }
        memcpy(a->ahci_ids[a->nahci++], c.id, sizeof(c.id));
        return 0;
    }
    if (!strcmp(c.driver, "ide-hd") || !strcmp(c.driver, "ide-cd") ||
        !strcmp(c.driver, "ide-drive"))
        return place_drive(a, &c, opt, err, errlen);
    for (size_t i = 0; i < sizeof(ignored_devices) / sizeof(ignored_devices[0]); i++)
        if (!strcmp(c.driver, ignored_devices[i]))
            return dm_args_add_ignored(a, o, opt, val, err, errlen);
    snprintf(err, errlen, "%s %s: rsdm does not emulate '%s' (disks: -drive if=ide, or "
             "-device ahci with ide-hd)", opt, val, c.driver);
    return -EINVAL;
}

/* ------------------------------------------------------- privilege drop */

int dm_argq_runas(dm_args *a, const dm_opt_spec *o, const char *opt, const char *val,
                  char *err, size_t errlen)
{
    (void)o;
    if (!*val || strlen(val) >= sizeof(a->runas_buf)) {
        snprintf(err, errlen, "%s: the user must be 1-%zu bytes", opt, sizeof(a->runas_buf) - 1);
        return -EINVAL;
    }
    strcpy(a->runas_buf, val);
    a->runas = a->runas_buf;
    return 0;
}

int dm_argq_chroot(dm_args *a, const dm_opt_spec *o, const char *opt, const char *val,
                   char *err, size_t errlen)
{
    (void)o;
    if (*val != '/')
        snprintf(err, errlen, "%s: '%s' is not an absolute directory", opt, val);
    else if (copy_to(a->chroot_buf, sizeof(a->chroot_buf), val, "directory", opt, err,
                     errlen) == 0) {
        a->chroot_dir = a->chroot_buf;
        return 0;
    }
    return -EINVAL;
}

static int run_with_el(dm_args *a, void *ctx, const qopt *q, const char *opt, char *err,
                       size_t errlen)
{
    (void)ctx;
    if (!strcmp(q->key, "chroot"))
        return dm_argq_chroot(a, NULL, opt, q->val, err, errlen);
    if (!strcmp(q->key, "user"))
        return dm_argq_runas(a, NULL, opt, q->val, err, errlen);
    if (!strcmp(q->key, "async-teardown")) {
        bool b;
        return qbool(q, &b, opt, err, errlen);
    }
    return unknown_key(q, opt, err, errlen);
}

int dm_argq_run_with(dm_args *a, const dm_opt_spec *o, const char *opt, const char *val,
                     char *err, size_t errlen)
{
    (void)o;
    return qopt_walk(a, val, NULL, run_with_el, NULL, opt, err, errlen);
}

/* ---------------------------------------------------------------- end */

int dm_argq_finish(dm_args *a, char *err, size_t errlen)
{
    for (size_t i = 0; i < a->disks.n; i++)
        if (a->disk_pending[i]) {
            snprintf(err, errlen, "-drive id=%s (if=none) is not attached by any -device "
                     "ide-hd/ide-cd", a->disks.disk[i].name);
            return -EINVAL;
        }
    if (a->probe && (a->disks.n || a->incoming_fd >= 0)) {
        snprintf(err, errlen, "-machine none (the capability probe) takes no disks and no "
                 "-incoming");
        return -EINVAL;
    }
    if (a->probe && a->nmonitors == 0) {
        snprintf(err, errlen, "-machine none (the capability probe) needs a QMP monitor "
                 "(-chardev socket,... -mon ...,mode=control)");
        return -EINVAL;
    }
    return 0;
}
